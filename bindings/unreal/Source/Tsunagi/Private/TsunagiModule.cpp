#include "TsunagiModule.h"

#include "tsunagi.h"

DEFINE_LOG_CATEGORY(LogTsunagi);

void FTsunagiModule::StartupModule()
{
	UE_LOG(LogTsunagi, Log, TEXT("Tsunagi native library %s"), UTF8_TO_TCHAR(tsunagi_version()));
}

void FTsunagiModule::ShutdownModule()
{
	// Endpoints belong to UTsunagiSubsystem instances, which Deinitialize before this.
}

IMPLEMENT_MODULE(FTsunagiModule, Tsunagi)
