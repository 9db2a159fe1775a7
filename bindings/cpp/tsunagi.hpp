// Tsunagi C++17 wrapper: header-only RAII over the C API in bindings/c/tsunagi.h.
//
// - Move-only handles (tsunagi::Config, tsunagi::Endpoint) free themselves.
// - No exceptions: every call returns tsunagi::Status or tsunagi::Result<T>
//   (an expected-like type); works with -fno-exceptions and -fno-rtti.
// - SendReliable/SendUnreliable (not SendMessage: a Win32 macro) take
//   strings as std::string_view, bytes in as tsunagi::Bytes (pointer + size;
//   constructible from std::span under C++20).
// - Thread-safe like the C API; no callbacks: call Endpoint::Pump and
//   Endpoint::PollEvent on your game tick.
// - Three ways to connect: Connect (peer id + addresses), ConnectPeer (peer id through
//   a rendezvous server), CreateOffer/ApplySignal (blobs your lobby carries).
#ifndef TSUNAGI_HPP
#define TSUNAGI_HPP

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if __cplusplus >= 202002L
#include <span>
#endif

#include "tsunagi.h"

namespace tsunagi {

/// The outcome of a call: a tsunagi_result code and, on error, the message.
class Status {
public:
    Status() = default;
    explicit Status(tsunagi_result code)
        : code_(code), message_(code < 0 ? tsunagi_last_error() : "") {}
    bool ok() const { return code_ >= 0; }
    explicit operator bool() const { return ok(); }
    tsunagi_result code() const { return code_; }
    /// The error message (what happened and what to do); empty on success.
    const std::string& message() const { return message_; }
    /// The code's name, e.g. "TSUNAGI_ERR_QUEUE_FULL".
    const char* name() const { return tsunagi_result_name(code_); }

private:
    tsunagi_result code_ = TSUNAGI_OK;
    std::string message_;
};

/// A value or an error Status (like std::expected, without exceptions).
template <typename T>
class Result {
public:
    Result(T value) : value_(std::move(value)) {}
    Result(Status status) : status_(std::move(status)) {}
    bool ok() const { return status_.ok(); }
    explicit operator bool() const { return ok(); }
    const Status& status() const { return status_; }
    /// The value; only meaningful when ok().
    T& value() { return value_; }
    const T& value() const { return value_; }
    T value_or(T fallback) const { return ok() ? value_ : std::move(fallback); }

private:
    T value_{};
    Status status_;
};

/// A read-only byte range (pointer + size).
struct Bytes {
    const uint8_t* data = nullptr;
    size_t size = 0;
    Bytes() = default;
    Bytes(const void* d, size_t n) : data(static_cast<const uint8_t*>(d)), size(n) {}
    Bytes(std::string_view s) : data(reinterpret_cast<const uint8_t*>(s.data())), size(s.size()) {}
    Bytes(const std::vector<uint8_t>& v) : data(v.data()), size(v.size()) {}
#if __cplusplus >= 202002L
    Bytes(std::span<const uint8_t> s) : data(s.data()), size(s.size()) {}
#endif
};

/// One event. `payload` holds the message bytes, or text for Connected (remote address),
/// ConnectFailed and Disconnected (reason).
struct Event {
    tsunagi_event_kind kind = TSUNAGI_EVENT_NONE;
    std::string peer;
    uint16_t channel = 0;
    tsunagi_path_kind path = TSUNAGI_PATH_NONE;
    tsunagi_disconnect_reason reason = TSUNAGI_DISCONNECT_NONE;
    bool outgoing = false;
    std::vector<uint8_t> payload;
    std::string_view text() const {
        return {reinterpret_cast<const char*>(payload.data()), payload.size()};
    }
};

namespace detail {
// Calls f(buf, len, &needed) twice if needed: first to learn the size, then to fill.
template <typename F>
Result<std::string> text(F&& f) {
    size_t needed = 0;
    char small[128];
    tsunagi_result r = f(small, sizeof small, &needed);
    if (r == TSUNAGI_OK) return std::string(small);
    if (r != TSUNAGI_ERR_BUFFER_TOO_SMALL) return Status(r);
    std::string out(needed, '\0');
    r = f(&out[0], out.size(), &needed);
    if (r != TSUNAGI_OK) return Status(r);
    out.resize(needed - 1);
    return out;
}
}  // namespace detail

/// Endpoint settings (see the tsunagi_config_set_* functions).
class Config {
public:
    Config() : raw_(tsunagi_config_new()) {}
    ~Config() { tsunagi_config_free(raw_); }
    Config(Config&& o) noexcept : raw_(std::exchange(o.raw_, nullptr)) {}
    Config& operator=(Config&& o) noexcept {
        if (this != &o) { tsunagi_config_free(raw_); raw_ = std::exchange(o.raw_, nullptr); }
        return *this;
    }
    Config(const Config&) = delete;
    Config& operator=(const Config&) = delete;

    /// False if creation failed (out of memory); every setter then returns an error.
    bool valid() const { return raw_ != nullptr; }
    tsunagi_config* raw() const { return raw_; }

    Status SetIdentity(Bytes secret) { return Status(tsunagi_config_set_identity_bytes(raw_, secret.data, secret.size)); }
    Status SetIdentityText(std::string_view secret) { return Status(tsunagi_config_set_identity_text(raw_, std::string(secret).c_str())); }
    Status SetIpv4Only(bool on) { return Status(tsunagi_config_set_ipv4_only(raw_, on)); }
    Status SetIpv6Only(bool on) { return Status(tsunagi_config_set_ipv6_only(raw_, on)); }
    Status SetLoopbackOnly(bool on) { return Status(tsunagi_config_set_loopback_only(raw_, on)); }
    Status SetBindPort(uint16_t port) { return Status(tsunagi_config_set_bind_port(raw_, port)); }
    Status SetConnectTimeoutMs(uint32_t ms) { return Status(tsunagi_config_set_connect_timeout_ms(raw_, ms)); }
    Status SetChannels(uint16_t n) { return Status(tsunagi_config_set_channels(raw_, n)); }
    Status SetLogLevel(tsunagi_log_level level) { return Status(tsunagi_config_set_log_level(raw_, level)); }
    /// TURN relay "host:port"; needs SetRelayToken or SetRelayCredentials. Applied at Create.
    Status SetRelayServer(std::string_view server) { return Status(tsunagi_config_set_relay_server(raw_, std::string(server).c_str())); }
    /// A `tsunagi1.` token: relay credentials and the rendezvous login.
    Status SetRelayToken(std::string_view token) { return Status(tsunagi_config_set_relay_token(raw_, std::string(token).c_str())); }
    /// Static TURN username and password (instead of a token).
    Status SetRelayCredentials(std::string_view user, std::string_view pass) {
        return Status(tsunagi_config_set_relay_credentials(raw_, std::string(user).c_str(), std::string(pass).c_str()));
    }
    /// Rendezvous server "host:port"; with a token, Create registers this endpoint there
    /// and tsunagi_endpoint_connect_peer connects by peer id.
    Status SetRendezvousServer(std::string_view server) { return Status(tsunagi_config_set_rendezvous_server(raw_, std::string(server).c_str())); }

private:
    tsunagi_config* raw_;
};

/// A player's endpoint. Create with Endpoint::Create; destroyed (sessions closed) when
/// it goes out of scope.
class Endpoint {
public:
    Endpoint() = default;
    ~Endpoint() { tsunagi_endpoint_destroy(raw_); }
    Endpoint(Endpoint&& o) noexcept : raw_(std::exchange(o.raw_, nullptr)) {}
    Endpoint& operator=(Endpoint&& o) noexcept {
        if (this != &o) { tsunagi_endpoint_destroy(raw_); raw_ = std::exchange(o.raw_, nullptr); }
        return *this;
    }
    Endpoint(const Endpoint&) = delete;
    Endpoint& operator=(const Endpoint&) = delete;

    /// Binds the sockets; `config` may be null for the defaults.
    static Result<Endpoint> Create(const Config* config = nullptr) {
        tsunagi_endpoint* raw = nullptr;
        tsunagi_result r = tsunagi_endpoint_create(config ? config->raw() : nullptr, &raw);
        if (r != TSUNAGI_OK) return Status(r);
        Endpoint e;
        e.raw_ = raw;
        return e;
    }

    bool valid() const { return raw_ != nullptr; }
    tsunagi_endpoint* raw() const { return raw_; }

    Result<std::string> PeerId() const {
        return detail::text([&](char* b, size_t l, size_t* n) { return tsunagi_endpoint_peer_id(raw_, b, l, n); });
    }
    Result<std::string> LocalAddresses() const {
        return detail::text([&](char* b, size_t l, size_t* n) { return tsunagi_endpoint_local_addresses(raw_, b, l, n); });
    }
    Result<std::string> ExportIdentityText() const {
        return detail::text([&](char* b, size_t l, size_t* n) { return tsunagi_endpoint_export_identity_text(raw_, b, l, n); });
    }
    Result<std::vector<uint8_t>> ExportIdentity() const {
        std::vector<uint8_t> secret(TSUNAGI_IDENTITY_SIZE);
        tsunagi_result r = tsunagi_endpoint_export_identity_bytes(raw_, secret.data(), secret.size());
        if (r != TSUNAGI_OK) return Status(r);
        return secret;
    }
    /// `addresses`: one or more IP:port, comma-separated.
    Status Connect(std::string_view peer, std::string_view addresses) {
        return Status(tsunagi_endpoint_connect(raw_, std::string(peer).c_str(), std::string(addresses).c_str()));
    }
    /// Connects by peer id through the rendezvous server (Config::SetRendezvousServer);
    /// the outcome arrives as a Connected or ConnectFailed event.
    Status ConnectPeer(std::string_view peer) {
        return Status(tsunagi_endpoint_connect_peer(raw_, std::string(peer).c_str()));
    }
    /// An offer to `peer` for the game to carry through its own lobby or server (binary,
    /// at most TSUNAGI_SIGNAL_MAX_SIZE bytes). Blocks while a relay allocation is still
    /// being made (at most about 3 s). Give the answer that comes back to ApplySignal.
    Result<std::vector<uint8_t>> CreateOffer(std::string_view peer) {
        std::vector<uint8_t> blob(TSUNAGI_SIGNAL_MAX_SIZE);
        size_t len = 0;
        tsunagi_result r = tsunagi_endpoint_create_offer(raw_, std::string(peer).c_str(), blob.data(), blob.size(), &len);
        if (r != TSUNAGI_OK) return Status(r);
        blob.resize(len);
        return blob;
    }
    /// Applies a blob from the other player. An offer gives the answer to send back; an
    /// answer gives an empty vector and starts connecting (Connected or ConnectFailed).
    Result<std::vector<uint8_t>> ApplySignal(Bytes blob) {
        std::vector<uint8_t> answer(TSUNAGI_SIGNAL_MAX_SIZE);
        size_t len = 0;
        tsunagi_result r = tsunagi_endpoint_apply_signal(raw_, blob.data, blob.size, answer.data(), answer.size(), &len);
        if (r != TSUNAGI_OK) return Status(r);
        answer.resize(len);
        return answer;
    }
    /// This endpoint's relayed addresses on the configured relay ("" until allocated).
    Result<std::string> RelayedAddresses() const {
        return detail::text([&](char* b, size_t l, size_t* n) { return tsunagi_endpoint_relayed_addresses(raw_, b, l, n); });
    }
    Status SendReliable(std::string_view peer, uint16_t channel, Bytes data) {
        return Status(tsunagi_endpoint_send_message(raw_, std::string(peer).c_str(), channel, data.data, data.size));
    }
    Status SendUnreliable(std::string_view peer, Bytes data) {
        return Status(tsunagi_endpoint_send_datagram(raw_, std::string(peer).c_str(), data.data, data.size));
    }
    Result<size_t> DatagramLimit(std::string_view peer) const {
        size_t limit = 0;
        tsunagi_result r = tsunagi_endpoint_datagram_limit(raw_, std::string(peer).c_str(), &limit);
        if (r != TSUNAGI_OK) return Status(r);
        return limit;
    }
    Result<tsunagi_stats> Stats(std::string_view peer) const {
        tsunagi_stats stats{};
        tsunagi_result r = tsunagi_endpoint_stats(raw_, std::string(peer).c_str(), &stats);
        if (r != TSUNAGI_OK) return Status(r);
        return stats;
    }
    Status Disconnect(std::string_view peer, std::string_view reason = {}) {
        return Status(tsunagi_endpoint_disconnect(raw_, std::string(peer).c_str(), std::string(reason).c_str()));
    }
    /// Collects what arrived; returns how many events wait.
    Result<size_t> Pump() {
        size_t pending = 0;
        tsunagi_result r = tsunagi_endpoint_pump(raw_, &pending);
        if (r != TSUNAGI_OK) return Status(r);
        return pending;
    }
    /// The next event into `out`; false when none is waiting or on error (see `status`).
    /// The payload buffer grows as needed and is reused between calls.
    bool PollEvent(Event& out, Status* status = nullptr) {
        if (buffer_.empty()) buffer_.resize(1500);
        for (;;) {
            tsunagi_event ev{};
            tsunagi_result r = tsunagi_endpoint_poll_event(raw_, &ev, buffer_.data(), buffer_.size());
            if (r == TSUNAGI_ERR_BUFFER_TOO_SMALL && ev.truncated) {
                buffer_.resize(ev.payload_len);
                continue;
            }
            if (status) *status = Status(r);
            if (r != TSUNAGI_OK) return false;
            out.kind = ev.kind;
            out.peer.assign(ev.peer_id);
            out.channel = ev.channel;
            out.path = ev.path;
            out.reason = ev.reason;
            out.outgoing = ev.outgoing != 0;
            out.payload.assign(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(ev.payload_len));
            return true;
        }
    }

private:
    tsunagi_endpoint* raw_ = nullptr;
    std::vector<uint8_t> buffer_;
};

inline std::string_view Version() { return tsunagi_version(); }

/// Blocking NAT diagnosis as JSON (see tsunagi_natcheck): run it off the game thread.
inline Result<std::string> NatCheck(std::string_view server, bool quick) {
    std::string s(server);
    size_t needed = 0;
    tsunagi_result r = tsunagi_natcheck(s.c_str(), quick, nullptr, 0, &needed);
    if (r != TSUNAGI_ERR_BUFFER_TOO_SMALL) return Status(r);
    return detail::text([](char* b, size_t l, size_t* n) { return tsunagi_natcheck_last_report(b, l, n); });
}

}  // namespace tsunagi

#endif  // TSUNAGI_HPP
