// P/Invoke layer over the Tsunagi C ABI (bindings/c/tsunagi.h), written by hand.
// No UnityEngine here, so it also compiles with plain Mono/.NET (see ffi/tests/cs).
// IL2CPP-safe: only blittable types (byte[], IntPtr, UIntPtr, ints, structs of them),
// no delegates passed to native code, so no reverse P/Invoke.
using System;
using System.Runtime.InteropServices;
using System.Text;

namespace Tsunagi
{
    /// <summary>Result codes of the C API (tsunagi_result).</summary>
    public enum TsunagiResult
    {
        Ok = 0,
        NoEvent = 1,
        NullPointer = -1,
        InvalidArgument = -2,
        BufferTooSmall = -3,
        NotSupported = -4,
        NotConnected = -5,
        TooLarge = -6,
        QueueFull = -7,
        NoSuchChannel = -8,
        Socket = -9,
        Network = -10,
        Closed = -11,
        DatagramsUnavailable = -12,
        AddressFamily = -13,
        Internal = -99,
    }

    /// <summary>tsunagi_event_kind.</summary>
    public enum TsunagiEventKind { None = 0, Connected = 1, ConnectFailed = 2, Disconnected = 3, PathChanged = 4, Message = 5, Datagram = 6 }

    /// <summary>tsunagi_path_kind.</summary>
    public enum TsunagiPathKind { None = 0, DirectIpv6 = 1, DirectIpv4 = 2, Relay = 3 }

    /// <summary>tsunagi_disconnect_reason.</summary>
    public enum TsunagiDisconnectReason { None = 0, ClosedByPeer = 1, ClosedLocally = 2, TimedOut = 3, Reset = 4, Replaced = 5, ProtocolViolation = 6, Transport = 7 }

    /// <summary>tsunagi_log_level.</summary>
    public enum TsunagiLogLevel { Off = 0, Error = 1, Warn = 2, Info = 3, Debug = 4, Trace = 5 }

    /// <summary>Mirror of the C struct tsunagi_event.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct NativeEvent
    {
        public int kind;
        public int path;
        public int reason;
        public ushort channel;
        public byte outgoing;
        public byte truncated;
        public UIntPtr payload_len;
        public fixed byte peer_id[64];
    }

    /// <summary>Mirror of the C struct tsunagi_stats.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct NativeStats
    {
        public ulong rtt_us;
        public ulong packets_sent;
        public ulong packets_lost;
        public double loss;
        public ulong bytes_sent;
        public ulong bytes_received;
        public ulong datagram_limit;
        public int path;
        public fixed byte remote[64];
    }

    /// <summary>The raw C functions. Prefer TsunagiEndpoint.</summary>
    public static class Native
    {
#if UNITY_IOS && !UNITY_EDITOR
        const string Lib = "__Internal";
#else
        const string Lib = "tsunagi_ffi";
#endif

        /// <summary>TSUNAGI_SIGNAL_MAX_SIZE: the largest offer or answer blob.</summary>
        public const int SignalMaxSize = 1100;

        [DllImport(Lib)] public static extern IntPtr tsunagi_version();
        [DllImport(Lib)] public static extern IntPtr tsunagi_last_error();
        [DllImport(Lib)] public static extern IntPtr tsunagi_result_name(int result);

        [DllImport(Lib)] public static extern IntPtr tsunagi_config_new();
        [DllImport(Lib)] public static extern void tsunagi_config_free(IntPtr config);
        [DllImport(Lib)] public static extern int tsunagi_config_set_identity_bytes(IntPtr config, byte[] secret, UIntPtr len);
        [DllImport(Lib)] public static extern int tsunagi_config_set_identity_text(IntPtr config, byte[] secret);
        [DllImport(Lib)] public static extern int tsunagi_config_set_ipv4_only(IntPtr config, [MarshalAs(UnmanagedType.U1)] bool enabled);
        [DllImport(Lib)] public static extern int tsunagi_config_set_ipv6_only(IntPtr config, [MarshalAs(UnmanagedType.U1)] bool enabled);
        [DllImport(Lib)] public static extern int tsunagi_config_set_loopback_only(IntPtr config, [MarshalAs(UnmanagedType.U1)] bool enabled);
        [DllImport(Lib)] public static extern int tsunagi_config_set_bind_port(IntPtr config, ushort port);
        [DllImport(Lib)] public static extern int tsunagi_config_set_connect_timeout_ms(IntPtr config, uint milliseconds);
        [DllImport(Lib)] public static extern int tsunagi_config_set_channels(IntPtr config, ushort channels);
        [DllImport(Lib)] public static extern int tsunagi_config_set_log_level(IntPtr config, int level);
        [DllImport(Lib)] public static extern int tsunagi_config_set_relay_server(IntPtr config, byte[] server);
        [DllImport(Lib)] public static extern int tsunagi_config_set_relay_credentials(IntPtr config, byte[] username, byte[] password);
        [DllImport(Lib)] public static extern int tsunagi_config_set_relay_token(IntPtr config, byte[] token);
        [DllImport(Lib)] public static extern int tsunagi_config_set_rendezvous_server(IntPtr config, byte[] server);

        [DllImport(Lib)] public static extern int tsunagi_endpoint_create(IntPtr config, out IntPtr endpoint);
        [DllImport(Lib)] public static extern void tsunagi_endpoint_destroy(IntPtr endpoint);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_peer_id(IntPtr endpoint, byte[] buf, UIntPtr len, out UIntPtr needed);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_export_identity_bytes(IntPtr endpoint, byte[] buf, UIntPtr len);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_export_identity_text(IntPtr endpoint, byte[] buf, UIntPtr len, out UIntPtr needed);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_local_addresses(IntPtr endpoint, byte[] buf, UIntPtr len, out UIntPtr needed);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_connect(IntPtr endpoint, byte[] peerId, byte[] addresses);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_connect_peer(IntPtr endpoint, byte[] peerId);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_relayed_addresses(IntPtr endpoint, byte[] buf, UIntPtr len, out UIntPtr needed);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_create_offer(IntPtr endpoint, byte[] peerId, byte[] buf, UIntPtr len, out UIntPtr needed);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_apply_signal(IntPtr endpoint, byte[] blob, UIntPtr blobLen, byte[] answer, UIntPtr answerLen, out UIntPtr needed);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_send_message(IntPtr endpoint, byte[] peerId, ushort channel, byte[] data, UIntPtr len);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_send_datagram(IntPtr endpoint, byte[] peerId, byte[] data, UIntPtr len);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_datagram_limit(IntPtr endpoint, byte[] peerId, out UIntPtr limit);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_stats(IntPtr endpoint, byte[] peerId, out NativeStats stats);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_disconnect(IntPtr endpoint, byte[] peerId, byte[] reason);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_pump(IntPtr endpoint, out UIntPtr pending);
        [DllImport(Lib)] public static extern int tsunagi_endpoint_poll_event(IntPtr endpoint, out NativeEvent ev, byte[] buf, UIntPtr len);
        [DllImport(Lib)] public static extern int tsunagi_natcheck(byte[] server, [MarshalAs(UnmanagedType.U1)] bool quick, byte[] buf, UIntPtr len, out UIntPtr needed);
        [DllImport(Lib)] public static extern int tsunagi_natcheck_last_report(byte[] buf, UIntPtr len, out UIntPtr needed);

        /// <summary>NUL-terminated UTF-8 bytes of a string (null stays null).</summary>
        public static byte[] Utf8(string s)
        {
            if (s == null) return null;
            int n = Encoding.UTF8.GetByteCount(s);
            var bytes = new byte[n + 1];
            Encoding.UTF8.GetBytes(s, 0, s.Length, bytes, 0);
            return bytes;
        }

        /// <summary>Reads a NUL-terminated UTF-8 string owned by the library.</summary>
        public static string FromUtf8(IntPtr p)
        {
            if (p == IntPtr.Zero) return string.Empty;
            int n = 0;
            while (Marshal.ReadByte(p, n) != 0) n++;
            var bytes = new byte[n];
            Marshal.Copy(p, bytes, 0, n);
            return Encoding.UTF8.GetString(bytes);
        }

        /// <summary>Reads a NUL-terminated UTF-8 string from a buffer.</summary>
        public static unsafe string FromUtf8(byte* p, int max)
        {
            int n = 0;
            while (n < max && p[n] != 0) n++;
            return Encoding.UTF8.GetString(p, n);
        }

        public static string LastError() { return FromUtf8(tsunagi_last_error()); }
    }
}
