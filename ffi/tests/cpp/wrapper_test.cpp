// C++ wrapper test: two endpoints connect on loopback and exchange a reliable message
// and a datagram; two more connect by offer/answer blobs; built with -std=c++17 (and
// c++20) -Wall -Wextra -Werror -fno-exceptions.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "tsunagi.hpp"

static int passed, failed;
#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (cond) passed++;                                                             \
        else { failed++; std::fprintf(stderr, "%d: CHECK(%s) failed\n", __LINE__, #cond); } \
    } while (0)

static bool wait_for(tsunagi::Endpoint& ep, tsunagi_event_kind kind, tsunagi::Event& ev) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
        ep.Pump();
        while (ep.PollEvent(ev)) {
            if (ev.kind == kind) return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
}

int main() {
    tsunagi::Config config;
    CHECK(config.SetLoopbackOnly(true).ok());
    tsunagi::Status st = config.SetIpv6Only(true);
    CHECK(st.ok());
    CHECK(!config.SetIpv4Only(true).ok());
    CHECK(config.SetIpv6Only(false).ok());
    tsunagi::Status relay = config.SetRelayServer("no-port");
    CHECK(relay.code() == TSUNAGI_ERR_INVALID_ARGUMENT && !relay.message().empty());

    auto a = tsunagi::Endpoint::Create(&config);
    auto b = tsunagi::Endpoint::Create(&config);
    CHECK(a.ok() && b.ok());
    if (!a.ok() || !b.ok()) return 1;
    tsunagi::Endpoint alice = std::move(a.value());
    tsunagi::Endpoint bob = std::move(b.value());
    CHECK(!a.value().valid());  // moved-from handles are empty

    std::string bob_id = bob.PeerId().value();
    CHECK(bob_id.size() == 58);
    CHECK(alice.Connect(bob_id, bob.LocalAddresses().value()).ok());
    tsunagi::Event ev;
    CHECK(wait_for(alice, TSUNAGI_EVENT_CONNECTED, ev) && ev.outgoing);
    CHECK(wait_for(bob, TSUNAGI_EVENT_CONNECTED, ev) && !ev.outgoing);
    std::string alice_id = ev.peer;

    std::vector<uint8_t> big(3000, 7);  // larger than the first payload buffer
    CHECK(alice.SendReliable(bob_id, 1, big).ok());
    CHECK(wait_for(bob, TSUNAGI_EVENT_MESSAGE, ev) && ev.channel == 1 && ev.payload == big);

    CHECK(bob.DatagramLimit(alice_id).value_or(0) > 1000);
    CHECK(bob.SendUnreliable(alice_id, std::string_view("tick")).ok());
    CHECK(wait_for(alice, TSUNAGI_EVENT_DATAGRAM, ev) && ev.text() == "tick");

    auto stats = alice.Stats(bob_id);
    CHECK(stats.ok() && stats.value().bytes_sent > 0);
    tsunagi::Status nc = alice.SendReliable("tsunot-a-peer", 0, std::string_view("x"));
    CHECK(nc.code() == TSUNAGI_ERR_INVALID_ARGUMENT && std::strlen(nc.name()) > 0);

    // Connecting by peer id needs a rendezvous server.
    tsunagi::Status no_server = alice.ConnectPeer(bob_id);
    CHECK(no_server.code() == TSUNAGI_ERR_INVALID_ARGUMENT && !no_server.message().empty());

    // Blobs carried by "the lobby": carol offers, dave answers, carol applies the answer.
    auto c = tsunagi::Endpoint::Create(&config);
    auto d = tsunagi::Endpoint::Create(&config);
    CHECK(c.ok() && d.ok());
    if (!c.ok() || !d.ok()) return 1;
    tsunagi::Endpoint carol = std::move(c.value());
    tsunagi::Endpoint dave = std::move(d.value());
    std::string dave_id = dave.PeerId().value();
    auto offer = carol.CreateOffer(dave_id);
    CHECK(offer.ok() && !offer.value().empty() && offer.value().size() <= TSUNAGI_SIGNAL_MAX_SIZE);
    auto junk = dave.ApplySignal(std::string_view("not a blob"));
    CHECK(junk.status().code() == TSUNAGI_ERR_INVALID_ARGUMENT && !junk.status().message().empty());
    auto answer = dave.ApplySignal(offer.value());
    CHECK(answer.ok() && !answer.value().empty());
    auto applied = carol.ApplySignal(answer.value());
    CHECK(applied.ok() && applied.value().empty());
    CHECK(wait_for(carol, TSUNAGI_EVENT_CONNECTED, ev) && ev.outgoing && ev.peer == dave_id);
    CHECK(wait_for(dave, TSUNAGI_EVENT_CONNECTED, ev) && !ev.outgoing);
    CHECK(carol.SendReliable(dave_id, 0, std::string_view("lobby")).ok());
    CHECK(wait_for(dave, TSUNAGI_EVENT_MESSAGE, ev) && ev.text() == "lobby");

    std::printf("tsunagi %.*s: %d passed, %d failed\n", static_cast<int>(tsunagi::Version().size()),
                tsunagi::Version().data(), passed, failed);
    return failed == 0 ? 0 : 1;
}
