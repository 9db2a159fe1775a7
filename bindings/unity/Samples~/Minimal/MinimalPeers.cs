// Minimal sample: two TsunagiBehaviours in one scene connect over loopback, then
// exchange a reliable "hello" and an unreliable position update every frame.
// Add this script to an empty GameObject and press Play; watch the Console.
using System.Text;
using Tsunagi;
using UnityEngine;

public sealed class MinimalPeers : MonoBehaviour
{
    TsunagiBehaviour host, guest;
    string hostId;

    void Start()
    {
        host = NewPeer("Host");
        guest = NewPeer("Guest");
        hostId = host.Endpoint.PeerId;
        host.MessageReceived += (peer, channel, bytes) => Debug.Log("host got on channel " + channel + ": " + Encoding.UTF8.GetString(bytes));
        host.DatagramReceived += (peer, bytes) => Debug.Log("host got a datagram of " + bytes.Length + " bytes");
        guest.ConnectFailed += (peer, why) => Debug.LogError("connect failed: " + why);
        guest.Connected += (peer, path) =>
        {
            Debug.Log("guest connected over " + path);
            guest.Send(peer, 0, Encoding.UTF8.GetBytes("hello from the guest"));
        };
        // In a real game the host's id and addresses come from your lobby or matchmaking.
        guest.Connect(hostId, host.Endpoint.LocalAddresses);
    }

    TsunagiBehaviour NewPeer(string name)
    {
        var go = new GameObject(name);
        go.SetActive(false); // set the fields before Awake runs
        var peer = go.AddComponent<TsunagiBehaviour>();
        peer.loopbackOnly = true;
        go.SetActive(true);
        return peer;
    }

    void Update()
    {
        if (guest != null && guest.Endpoint.DatagramLimit(hostId) > 0)
        {
            var p = transform.position;
            guest.SendUnreliable(hostId, Encoding.UTF8.GetBytes(p.x + "," + p.y + "," + p.z));
        }
    }
}
