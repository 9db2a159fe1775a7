// Managed wrapper over Native: TsunagiConfig, TsunagiEndpoint (IDisposable) and
// events as plain C# values. No UnityEngine here (TsunagiBehaviour adds the Unity glue).
using System;
using System.Text;

namespace Tsunagi
{
    /// <summary>A failed call: the result code and the library's message (what to do).</summary>
    public sealed class TsunagiException : Exception
    {
        public TsunagiResult Result { get; private set; }
        public TsunagiException(TsunagiResult result, string message) : base(result + ": " + message) { Result = result; }

        internal static void Check(int code)
        {
            if (code < 0) throw new TsunagiException((TsunagiResult)code, Native.LastError());
        }
    }

    /// <summary>One event from TsunagiEndpoint.PollEvent.</summary>
    public struct TsunagiEventData
    {
        public TsunagiEventKind Kind;
        public string PeerId;
        public ushort Channel;
        public TsunagiPathKind Path;
        public TsunagiDisconnectReason Reason;
        public bool Outgoing;
        /// <summary>Message bytes, or UTF-8 text for Connected/ConnectFailed/Disconnected. A new array per event.</summary>
        public byte[] Payload;
        public string Text { get { return Payload == null ? string.Empty : Encoding.UTF8.GetString(Payload); } }
    }

    /// <summary>Endpoint settings. Relay and rendezvous settings are applied when the endpoint is created (see docs/src/integration-unity.md).</summary>
    public sealed class TsunagiConfig : IDisposable
    {
        internal IntPtr Handle;
        public TsunagiConfig() { Handle = Native.tsunagi_config_new(); if (Handle == IntPtr.Zero) throw new TsunagiException(TsunagiResult.Internal, Native.LastError()); }
        ~TsunagiConfig() { Dispose(); }
        public void Dispose() { if (Handle != IntPtr.Zero) { Native.tsunagi_config_free(Handle); Handle = IntPtr.Zero; } GC.SuppressFinalize(this); }

        public TsunagiResult SetIdentity(byte[] secret) { return (TsunagiResult)Native.tsunagi_config_set_identity_bytes(Handle, secret, (UIntPtr)(secret == null ? 0 : secret.Length)); }
        public TsunagiResult SetIdentityText(string secret) { return (TsunagiResult)Native.tsunagi_config_set_identity_text(Handle, Native.Utf8(secret)); }
        public TsunagiResult SetIpv4Only(bool on) { return (TsunagiResult)Native.tsunagi_config_set_ipv4_only(Handle, on); }
        public TsunagiResult SetIpv6Only(bool on) { return (TsunagiResult)Native.tsunagi_config_set_ipv6_only(Handle, on); }
        public TsunagiResult SetLoopbackOnly(bool on) { return (TsunagiResult)Native.tsunagi_config_set_loopback_only(Handle, on); }
        public TsunagiResult SetBindPort(ushort port) { return (TsunagiResult)Native.tsunagi_config_set_bind_port(Handle, port); }
        public TsunagiResult SetConnectTimeoutMs(uint ms) { return (TsunagiResult)Native.tsunagi_config_set_connect_timeout_ms(Handle, ms); }
        public TsunagiResult SetChannels(ushort channels) { return (TsunagiResult)Native.tsunagi_config_set_channels(Handle, channels); }
        public TsunagiResult SetLogLevel(TsunagiLogLevel level) { return (TsunagiResult)Native.tsunagi_config_set_log_level(Handle, (int)level); }
        public TsunagiResult SetRelayServer(string hostPort) { return (TsunagiResult)Native.tsunagi_config_set_relay_server(Handle, Native.Utf8(hostPort)); }
        public TsunagiResult SetRelayToken(string token) { return (TsunagiResult)Native.tsunagi_config_set_relay_token(Handle, Native.Utf8(token)); }
        public TsunagiResult SetRelayCredentials(string user, string pass) { return (TsunagiResult)Native.tsunagi_config_set_relay_credentials(Handle, Native.Utf8(user), Native.Utf8(pass)); }
        public TsunagiResult SetRendezvousServer(string hostPort) { return (TsunagiResult)Native.tsunagi_config_set_rendezvous_server(Handle, Native.Utf8(hostPort)); }
    }

    /// <summary>
    /// One player's endpoint. Call Pump and PollEvent every frame (TsunagiBehaviour does).
    /// Thread-safe; Dispose closes every session.
    /// </summary>
    public sealed class TsunagiEndpoint : IDisposable
    {
        IntPtr handle;
        byte[] buffer = new byte[2048];
        readonly object gate = new object();

        /// <summary>Creates an endpoint; config may be null for the defaults. Throws TsunagiException on failure.</summary>
        public TsunagiEndpoint(TsunagiConfig config = null)
        {
            TsunagiException.Check(Native.tsunagi_endpoint_create(config == null ? IntPtr.Zero : config.Handle, out handle));
        }
        ~TsunagiEndpoint() { Destroy(); }
        public void Dispose() { Destroy(); GC.SuppressFinalize(this); }
        void Destroy() { lock (gate) { if (handle != IntPtr.Zero) { Native.tsunagi_endpoint_destroy(handle); handle = IntPtr.Zero; } } }

        IntPtr H { get { if (handle == IntPtr.Zero) throw new ObjectDisposedException("TsunagiEndpoint"); return handle; } }

        delegate int TextCall(IntPtr ep, byte[] buf, UIntPtr len, out UIntPtr needed);
        string Text(TextCall call)
        {
            UIntPtr needed;
            var buf = new byte[128];
            int r = call(H, buf, (UIntPtr)buf.Length, out needed);
            if (r == (int)TsunagiResult.BufferTooSmall) { buf = new byte[(int)needed]; r = call(H, buf, (UIntPtr)buf.Length, out needed); }
            TsunagiException.Check(r);
            return Encoding.UTF8.GetString(buf, 0, (int)needed - 1);
        }

        /// <summary>This player's id (tsu…), to give to other players.</summary>
        public string PeerId { get { return Text(Native.tsunagi_endpoint_peer_id); } }
        /// <summary>Local IP:port list, comma-separated, IPv6 first.</summary>
        public string LocalAddresses { get { return Text(Native.tsunagi_endpoint_local_addresses); } }
        /// <summary>The identity secret as text (tsusecret…): save it like a password.</summary>
        public string ExportIdentityText() { return Text(Native.tsunagi_endpoint_export_identity_text); }
        /// <summary>The 32-byte identity secret.</summary>
        public byte[] ExportIdentity() { var s = new byte[32]; TsunagiException.Check(Native.tsunagi_endpoint_export_identity_bytes(H, s, (UIntPtr)32)); return s; }

        /// <summary>Starts connecting; the outcome arrives as a Connected or ConnectFailed event.</summary>
        public void Connect(string peerId, string addresses) { TsunagiException.Check(Native.tsunagi_endpoint_connect(H, Native.Utf8(peerId), Native.Utf8(addresses))); }

        /// <summary>
        /// Connects by peer id through the rendezvous server (TsunagiConfig.SetRendezvousServer);
        /// the outcome arrives as a Connected or ConnectFailed event.
        /// </summary>
        public void ConnectPeer(string peerId) { TsunagiException.Check(Native.tsunagi_endpoint_connect_peer(H, Native.Utf8(peerId))); }

        /// <summary>This endpoint's relayed addresses on the configured relay ("" until allocated).</summary>
        public string RelayedAddresses { get { return Text(Native.tsunagi_endpoint_relayed_addresses); } }

        /// <summary>
        /// An offer to peerId for your game to carry (lobby data, your own server): binary, at
        /// most Native.SignalMaxSize bytes. Blocks while a relay allocation is still being made
        /// (at most about 3 s). Pass the answer that comes back to ApplySignal.
        /// </summary>
        public byte[] CreateOffer(string peerId)
        {
            var buf = new byte[Native.SignalMaxSize];
            UIntPtr n;
            TsunagiException.Check(Native.tsunagi_endpoint_create_offer(H, Native.Utf8(peerId), buf, (UIntPtr)buf.Length, out n));
            var blob = new byte[(int)n];
            Buffer.BlockCopy(buf, 0, blob, 0, blob.Length);
            return blob;
        }

        /// <summary>
        /// Applies a blob from the other player. An offer returns the answer to send back; an
        /// answer returns null and starts connecting (a Connected or ConnectFailed event follows).
        /// Throws TsunagiException (InvalidArgument) for a foreign, corrupted or stale blob.
        /// </summary>
        public byte[] ApplySignal(byte[] blob)
        {
            var buf = new byte[Native.SignalMaxSize];
            UIntPtr n;
            TsunagiException.Check(Native.tsunagi_endpoint_apply_signal(H, blob, (UIntPtr)(blob == null ? 0 : blob.Length), buf, (UIntPtr)buf.Length, out n));
            if ((int)n == 0) return null;
            var answer = new byte[(int)n];
            Buffer.BlockCopy(buf, 0, answer, 0, answer.Length);
            return answer;
        }

        /// <summary>Reliable, ordered per channel. Returns QueueFull/NotConnected/... instead of throwing (hot path).</summary>
        public TsunagiResult SendMessage(string peerId, ushort channel, byte[] data)
        {
            return (TsunagiResult)Native.tsunagi_endpoint_send_message(H, Native.Utf8(peerId), channel, data, (UIntPtr)(data == null ? 0 : data.Length));
        }

        /// <summary>Unreliable; at most DatagramLimit bytes.</summary>
        public TsunagiResult SendDatagram(string peerId, byte[] data)
        {
            return (TsunagiResult)Native.tsunagi_endpoint_send_datagram(H, Native.Utf8(peerId), data, (UIntPtr)(data == null ? 0 : data.Length));
        }

        /// <summary>The largest datagram the peer can be sent now (0 if not connected).</summary>
        public int DatagramLimit(string peerId)
        {
            UIntPtr limit;
            return Native.tsunagi_endpoint_datagram_limit(H, Native.Utf8(peerId), out limit) == 0 ? (int)limit : 0;
        }

        /// <summary>Session statistics; false if not connected.</summary>
        public bool TryGetStats(string peerId, out NativeStats stats) { return Native.tsunagi_endpoint_stats(H, Native.Utf8(peerId), out stats) == 0; }

        public void Disconnect(string peerId, string reason = null) { TsunagiException.Check(Native.tsunagi_endpoint_disconnect(H, Native.Utf8(peerId), Native.Utf8(reason))); }

        /// <summary>Collects what arrived; returns how many events wait.</summary>
        public int Pump() { UIntPtr n; TsunagiException.Check(Native.tsunagi_endpoint_pump(H, out n)); return (int)n; }

        /// <summary>The next event, or false when none is waiting.</summary>
        public unsafe bool PollEvent(out TsunagiEventData data)
        {
            data = default(TsunagiEventData);
            NativeEvent ev;
            int r;
            lock (gate)
            {
                r = Native.tsunagi_endpoint_poll_event(H, out ev, buffer, (UIntPtr)buffer.Length);
                if (r == (int)TsunagiResult.BufferTooSmall && ev.truncated != 0)
                {
                    buffer = new byte[(int)ev.payload_len];
                    r = Native.tsunagi_endpoint_poll_event(H, out ev, buffer, (UIntPtr)buffer.Length);
                }
                if (r == (int)TsunagiResult.NoEvent) return false;
                TsunagiException.Check(r);
                var payload = new byte[(int)ev.payload_len];
                Buffer.BlockCopy(buffer, 0, payload, 0, payload.Length);
                data.Payload = payload;
            }
            data.Kind = (TsunagiEventKind)ev.kind;
            data.PeerId = Native.FromUtf8(ev.peer_id, 64);
            data.Channel = ev.channel;
            data.Path = (TsunagiPathKind)ev.path;
            data.Reason = (TsunagiDisconnectReason)ev.reason;
            data.Outgoing = ev.outgoing != 0;
            return true;
        }

        public static string Version { get { return Native.FromUtf8(Native.tsunagi_version()); } }
    }
}
