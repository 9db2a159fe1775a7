// Console test of the Unity package's core (Native.cs + TsunagiEndpoint.cs) under Mono:
// two endpoints connect on loopback and exchange a reliable message and a datagram;
// two more connect by offer/answer blobs carried "by the lobby".
using System;
using System.Text;
using System.Threading;
using Tsunagi;

static class TwoEndpoints
{
    static int passed, failed;
    static void Check(bool ok, string what) { if (ok) passed++; else { failed++; Console.Error.WriteLine("FAILED: " + what); } }

    static TsunagiEventData WaitFor(TsunagiEndpoint ep, TsunagiEventKind kind)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            ep.Pump();
            TsunagiEventData ev;
            while (ep.PollEvent(out ev)) if (ev.Kind == kind) return ev;
            Thread.Sleep(2);
        }
        throw new Exception("no " + kind + " within 30 s");
    }

    static int Main()
    {
        using (var config = new TsunagiConfig())
        {
            Check(config.SetLoopbackOnly(true) == TsunagiResult.Ok, "loopback");
            Check(config.SetRelayToken("garbage") == TsunagiResult.InvalidArgument, "bad token rejected");
            Check(config.SetRelayServer("no-port") == TsunagiResult.InvalidArgument, "relay server without port rejected");
            Check(Native.LastError().Contains("host:port"), "message says host:port");
            using (var alice = new TsunagiEndpoint(config))
            using (var bob = new TsunagiEndpoint(config))
            {
                string bobId = bob.PeerId;
                Check(bobId.StartsWith("tsu") && bobId.Length == 58, "peer id");
                try { alice.Connect("nonsense", "127.0.0.1:1"); Check(false, "bad id throws"); }
                catch (TsunagiException e) { Check(e.Result == TsunagiResult.InvalidArgument, "bad id code"); }
                alice.Connect(bobId, bob.LocalAddresses);
                Check(WaitFor(alice, TsunagiEventKind.Connected).Outgoing, "alice connected");
                var inbound = WaitFor(bob, TsunagiEventKind.Connected);
                string aliceId = inbound.PeerId;

                var big = new byte[5000];
                for (int i = 0; i < big.Length; i++) big[i] = (byte)i;
                Check(alice.SendMessage(bobId, 2, big) == TsunagiResult.Ok, "send message");
                var msg = WaitFor(bob, TsunagiEventKind.Message);
                Check(msg.Channel == 2 && msg.Payload.Length == big.Length && msg.Payload[4999] == big[4999], "message content");

                Check(bob.DatagramLimit(aliceId) > 1000, "datagram limit");
                Check(bob.SendDatagram(aliceId, Encoding.UTF8.GetBytes("tick")) == TsunagiResult.Ok, "send datagram");
                Check(WaitFor(alice, TsunagiEventKind.Datagram).Text == "tick", "datagram content");

                NativeStats stats;
                Check(alice.TryGetStats(bobId, out stats) && stats.bytes_sent > 0, "stats");
                Check(bob.ExportIdentity().Length == 32, "identity export");
                try { alice.ConnectPeer(bobId); Check(false, "ConnectPeer without a rendezvous server throws"); }
                catch (TsunagiException e) { Check(e.Result == TsunagiResult.InvalidArgument, "ConnectPeer code"); }
            }
            using (var carol = new TsunagiEndpoint(config))
            using (var dave = new TsunagiEndpoint(config))
            {
                string daveId = dave.PeerId;
                byte[] offer = carol.CreateOffer(daveId);
                Check(offer.Length > 0 && offer.Length <= Native.SignalMaxSize, "offer size");
                try { dave.ApplySignal(Encoding.UTF8.GetBytes("not a blob")); Check(false, "junk blob throws"); }
                catch (TsunagiException e) { Check(e.Result == TsunagiResult.InvalidArgument && e.Message.Contains("blob"), "junk blob code"); }
                byte[] answer = dave.ApplySignal(offer);
                Check(answer != null && answer.Length > 0, "answer");
                Check(carol.ApplySignal(answer) == null, "an answer gives nothing to send");
                var up = WaitFor(carol, TsunagiEventKind.Connected);
                Check(up.Outgoing && up.PeerId == daveId, "carol connected to dave");
                WaitFor(dave, TsunagiEventKind.Connected);
                Check(carol.SendMessage(daveId, 0, Encoding.UTF8.GetBytes("lobby")) == TsunagiResult.Ok, "send over blob session");
                Check(WaitFor(dave, TsunagiEventKind.Message).Text == "lobby", "lobby message");
            }
        }
        Console.WriteLine("tsunagi " + TsunagiEndpoint.Version + ": " + passed + " passed, " + failed + " failed");
        return failed == 0 ? 0 : 1;
    }
}
