// Unity glue: a MonoBehaviour that owns a TsunagiEndpoint, pumps it in Update and
// raises C# events on the main thread. The only file here that uses UnityEngine.
using System;
using UnityEngine;

namespace Tsunagi
{
    /// <summary>
    /// Add to a GameObject; subscribe to the events; call Connect, ConnectPeer or
    /// CreateOffer/ApplySignal, then Send. Everything is
    /// raised from Update on the main thread, so handlers may touch the scene.
    /// </summary>
    public sealed class TsunagiBehaviour : MonoBehaviour
    {
        [Tooltip("Open no IPv6 socket (console builds without IPv6).")]
        public bool ipv4Only;
        [Tooltip("Open no IPv4 socket.")]
        public bool ipv6Only;
        [Tooltip("Bind 127.0.0.1/::1 only (local tests).")]
        public bool loopbackOnly;
        [Tooltip("UDP port; 0 lets the OS choose (recommended).")]
        public ushort bindPort;
        [Tooltip("Saved identity secret (tsusecret…); empty for a new identity each run.")]
        public string identitySecret = "";
        [Tooltip("TURN relay host:port (tsunagi-relay); empty for none. Needs relayToken.")]
        public string relayServer = "";
        [Tooltip("A tsunagi1. token from your backend: relay credentials and the rendezvous login.")]
        public string relayToken = "";
        [Tooltip("Rendezvous server host:port for ConnectPeer (usually the relay); empty for none.")]
        public string rendezvousServer = "";
        [Tooltip("Events handled per frame at most (the rest wait for the next frame).")]
        public int maxEventsPerFrame = 256;

        public event Action<string, TsunagiPathKind> Connected;
        public event Action<string, string> ConnectFailed;
        public event Action<string, TsunagiDisconnectReason, string> Disconnected;
        public event Action<string, TsunagiPathKind> PathChanged;
        public event Action<string, ushort, byte[]> MessageReceived;
        public event Action<string, byte[]> DatagramReceived;

        public TsunagiEndpoint Endpoint { get; private set; }

        void Awake()
        {
            using (var config = new TsunagiConfig())
            {
                Warn(config.SetIpv4Only(ipv4Only), "ipv4Only");
                Warn(config.SetIpv6Only(ipv6Only), "ipv6Only");
                Warn(config.SetLoopbackOnly(loopbackOnly), "loopbackOnly");
                Warn(config.SetBindPort(bindPort), "bindPort");
                if (!string.IsNullOrEmpty(identitySecret)) Warn(config.SetIdentityText(identitySecret), "identitySecret");
                if (!string.IsNullOrEmpty(relayServer)) Warn(config.SetRelayServer(relayServer), "relayServer");
                if (!string.IsNullOrEmpty(relayToken)) Warn(config.SetRelayToken(relayToken), "relayToken");
                if (!string.IsNullOrEmpty(rendezvousServer)) Warn(config.SetRendezvousServer(rendezvousServer), "rendezvousServer");
                Endpoint = new TsunagiEndpoint(config);
            }
            Debug.Log("Tsunagi " + TsunagiEndpoint.Version + ": peer id " + Endpoint.PeerId + " at " + Endpoint.LocalAddresses);
        }

        static void Warn(TsunagiResult r, string what)
        {
            if (r != TsunagiResult.Ok) Debug.LogWarning("Tsunagi " + what + ": " + r + ": " + Native.LastError());
        }

        public void Connect(string peerId, string addresses) { Endpoint.Connect(peerId, addresses); }
        /// <summary>Connects by peer id through rendezvousServer.</summary>
        public void ConnectPeer(string peerId) { Endpoint.ConnectPeer(peerId); }
        /// <summary>An offer for your lobby to carry to peerId (blocks up to about 3 s while the relay allocates).</summary>
        public byte[] CreateOffer(string peerId) { return Endpoint.CreateOffer(peerId); }
        /// <summary>Applies a blob from the other player: returns the answer to an offer, null for an answer.</summary>
        public byte[] ApplySignal(byte[] blob) { return Endpoint.ApplySignal(blob); }
        public TsunagiResult Send(string peerId, ushort channel, byte[] data) { return Endpoint.SendMessage(peerId, channel, data); }
        public TsunagiResult SendUnreliable(string peerId, byte[] data) { return Endpoint.SendDatagram(peerId, data); }

        void Update()
        {
            if (Endpoint == null) return;
            Endpoint.Pump();
            TsunagiEventData ev;
            for (int i = 0; i < maxEventsPerFrame && Endpoint.PollEvent(out ev); i++)
            {
                switch (ev.Kind)
                {
                    case TsunagiEventKind.Connected: if (Connected != null) Connected(ev.PeerId, ev.Path); break;
                    case TsunagiEventKind.ConnectFailed: if (ConnectFailed != null) ConnectFailed(ev.PeerId, ev.Text); break;
                    case TsunagiEventKind.Disconnected: if (Disconnected != null) Disconnected(ev.PeerId, ev.Reason, ev.Text); break;
                    case TsunagiEventKind.PathChanged: if (PathChanged != null) PathChanged(ev.PeerId, ev.Path); break;
                    case TsunagiEventKind.Message: if (MessageReceived != null) MessageReceived(ev.PeerId, ev.Channel, ev.Payload); break;
                    case TsunagiEventKind.Datagram: if (DatagramReceived != null) DatagramReceived(ev.PeerId, ev.Payload); break;
                }
            }
        }

        void OnDestroy()
        {
            if (Endpoint != null) { Endpoint.Dispose(); Endpoint = null; }
        }
    }
}
