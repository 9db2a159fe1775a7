// Links the Tsunagi static library (built by `cargo build --release -p tsunagi-ffi`)
// for each platform, and exposes bindings/c/tsunagi.h + bindings/cpp/tsunagi.hpp
// (copied into Source/ThirdParty/TsunagiLibrary/include).
using System.IO;
using UnrealBuildTool;

public class Tsunagi : ModuleRules
{
    public Tsunagi(ReadOnlyTargetRules Target) : base(Target)
    {
        PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
        PublicDependencyModuleNames.AddRange(new string[] { "Core", "CoreUObject", "Engine" });

        string ThirdParty = Path.GetFullPath(Path.Combine(ModuleDirectory, "..", "ThirdParty", "TsunagiLibrary"));
        PublicIncludePaths.Add(Path.Combine(ThirdParty, "include"));
        string Lib = Path.Combine(ThirdParty, "lib");

        if (Target.Platform == UnrealTargetPlatform.Win64)
        {
            // x86_64-pc-windows-msvc
            PublicAdditionalLibraries.Add(Path.Combine(Lib, "Win64", "tsunagi_ffi.lib"));
            PublicSystemLibraries.AddRange(new string[] { "ws2_32.lib", "userenv.lib", "ntdll.lib", "bcrypt.lib", "advapi32.lib", "iphlpapi.lib" });
        }
        else if (Target.Platform == UnrealTargetPlatform.Linux)
        {
            // x86_64-unknown-linux-gnu
            PublicAdditionalLibraries.Add(Path.Combine(Lib, "Linux", "libtsunagi_ffi.a"));
            PublicSystemLibraries.AddRange(new string[] { "pthread", "dl", "m", "rt" });
        }
        else if (Target.Platform == UnrealTargetPlatform.Mac)
        {
            // universal (lipo of aarch64- and x86_64-apple-darwin)
            PublicAdditionalLibraries.Add(Path.Combine(Lib, "Mac", "libtsunagi_ffi.a"));
            PublicFrameworks.AddRange(new string[] { "Security", "SystemConfiguration", "CoreFoundation" });
        }
        else if (Target.Platform == UnrealTargetPlatform.Android)
        {
            // aarch64-linux-android (add armv7 / x86_64 folders if you ship them)
            PublicAdditionalLibraries.Add(Path.Combine(Lib, "Android", "arm64-v8a", "libtsunagi_ffi.a"));
            PublicSystemLibraries.AddRange(new string[] { "log", "dl", "m" });
        }
        else if (Target.Platform == UnrealTargetPlatform.IOS)
        {
            // aarch64-apple-ios
            PublicAdditionalLibraries.Add(Path.Combine(Lib, "IOS", "libtsunagi_ffi.a"));
            PublicFrameworks.AddRange(new string[] { "Security", "SystemConfiguration", "CoreFoundation" });
        }
    }
}
