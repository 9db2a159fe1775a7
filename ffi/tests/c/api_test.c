/* C test of the Tsunagi ABI: argument checks, caller-owned buffers (short buffers
 * never overrun and lose nothing), identity round trip, and two endpoints exchanging
 * reliable and unreliable messages on loopback. Run by ffi/tests/c_abi.rs under
 * valgrind. Prints "N passed, 0 failed" and exits 0 on success. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tsunagi.h"

static int passed, failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            passed++;                                                                \
        } else {                                                                     \
            failed++;                                                                \
            fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__,   \
                    __LINE__, #cond, tsunagi_last_error());                          \
        }                                                                            \
    } while (0)

/* Evaluates `cond` once (it may create things), stops the test if it is false. */
#define REQUIRE(cond)                                                                \
    do {                                                                             \
        int required_ = (cond) ? 1 : 0;                                              \
        CHECK(required_);                                                            \
        if (!required_) {                                                            \
            printf("%d passed, %d failed\n", passed, failed);                        \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static tsunagi_endpoint *loopback_endpoint(tsunagi_config *config) {
    tsunagi_endpoint *ep = NULL;
    REQUIRE(tsunagi_config_set_loopback_only(config, true) == TSUNAGI_OK);
    REQUIRE(tsunagi_config_set_connect_timeout_ms(config, 60000) == TSUNAGI_OK);
    REQUIRE(tsunagi_endpoint_create(config, &ep) == TSUNAGI_OK && ep != NULL);
    return ep;
}

/* Waits for an event of `kind` with a deliberately tiny buffer first, growing it on
 * TSUNAGI_ERR_BUFFER_TOO_SMALL. Returns the payload (malloc'd) and its size. */
static uint8_t *wait_for(tsunagi_endpoint *ep, tsunagi_event_kind kind, tsunagi_event *ev,
                         size_t *len_out) {
    size_t cap = 2;
    uint8_t *buf = malloc(cap + 1);
    /* Generous: valgrind on a busy machine runs this 20-50 times slower. */
    time_t deadline = time(NULL) + 90;
    while (time(NULL) < deadline) {
        REQUIRE(tsunagi_endpoint_pump(ep, NULL) == TSUNAGI_OK);
        for (;;) {
            memset(buf, 0xAB, cap + 1);
            tsunagi_result r = tsunagi_endpoint_poll_event(ep, ev, buf, cap);
            CHECK(buf[cap] == 0xAB); /* the byte past the buffer is never touched */
            if (r == TSUNAGI_ERR_BUFFER_TOO_SMALL) {
                CHECK(ev->truncated == 1 && ev->payload_len > cap);
                cap = ev->payload_len;
                buf = realloc(buf, cap + 1);
                continue; /* the same event comes again */
            }
            if (r == TSUNAGI_NO_EVENT) {
                CHECK(ev->kind == TSUNAGI_EVENT_NONE);
                break;
            }
            REQUIRE(r == TSUNAGI_OK);
            CHECK(ev->truncated == 0);
            if (ev->kind == TSUNAGI_EVENT_CONNECT_FAILED || ev->kind == TSUNAGI_EVENT_DISCONNECTED) {
                fprintf(stderr, "event %d from %s: %.*s\n", (int)ev->kind, ev->peer_id,
                        (int)ev->payload_len, (const char *)buf);
            }
            if (ev->kind == kind) {
                *len_out = ev->payload_len;
                return buf;
            }
        }
        sleep_ms(2);
    }
    fprintf(stderr, "no event %d in time\n", (int)kind);
    REQUIRE(0);
    return NULL;
}

static void test_arguments(void) {
    tsunagi_endpoint *ep = NULL;
    CHECK(tsunagi_endpoint_create(NULL, NULL) == TSUNAGI_ERR_NULL_POINTER);
    CHECK(strstr(tsunagi_last_error(), "NULL") != NULL);
    CHECK(tsunagi_endpoint_pump(NULL, NULL) == TSUNAGI_ERR_NULL_POINTER);
    CHECK(tsunagi_endpoint_poll_event(NULL, NULL, NULL, 0) == TSUNAGI_ERR_NULL_POINTER);
    CHECK(tsunagi_config_set_bind_port(NULL, 1) == TSUNAGI_ERR_NULL_POINTER);
    tsunagi_endpoint_destroy(NULL);
    tsunagi_config_free(NULL);
    CHECK(strcmp(tsunagi_result_name(TSUNAGI_ERR_QUEUE_FULL), "TSUNAGI_ERR_QUEUE_FULL") == 0);

    tsunagi_config *config = tsunagi_config_new();
    REQUIRE(config != NULL);
    CHECK(tsunagi_config_set_ipv4_only(config, true) == TSUNAGI_OK);
    CHECK(tsunagi_config_set_ipv6_only(config, true) == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(tsunagi_config_set_ipv4_only(config, false) == TSUNAGI_OK);
    CHECK(tsunagi_config_set_log_level(config, 42) == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(tsunagi_config_set_channels(config, 0) == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(tsunagi_config_set_connect_timeout_ms(config, 0) == TSUNAGI_ERR_INVALID_ARGUMENT);
    uint8_t short_secret[5] = {0};
    CHECK(tsunagi_config_set_identity_bytes(config, short_secret, 5) == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(tsunagi_config_set_identity_text(config, "tsusecretnope") == TSUNAGI_ERR_INVALID_ARGUMENT);
    /* Relay and rendezvous settings: checked and stored; applied at endpoint creation.
       A rendezvous server needs a token (user/password is not enough), which creation
       reports before any name is resolved. */
    tsunagi_config *relay_config = tsunagi_config_new();
    REQUIRE(relay_config != NULL);
    CHECK(tsunagi_config_set_relay_server(relay_config, "no-port") == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(tsunagi_config_set_relay_server(relay_config, "relay.example.net:3478") == TSUNAGI_OK);
    CHECK(tsunagi_config_set_relay_token(relay_config, "garbage") == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(tsunagi_config_set_relay_credentials(relay_config, "user", "pass") == TSUNAGI_OK);
    CHECK(tsunagi_config_set_rendezvous_server(relay_config, "[::1]:3478") == TSUNAGI_OK);
    tsunagi_endpoint *no_ep = NULL;
    CHECK(tsunagi_endpoint_create(relay_config, &no_ep) == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(no_ep == NULL);
    CHECK(strstr(tsunagi_last_error(), "without a token") != NULL);
    tsunagi_config_free(relay_config);

    ep = loopback_endpoint(config);
    tsunagi_config_free(config);

    /* Text outputs: size query, short buffer untouched, then the real call. */
    size_t needed = 0;
    CHECK(tsunagi_endpoint_peer_id(ep, NULL, 0, &needed) == TSUNAGI_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == 59);
    char small[8];
    memset(small, 'x', sizeof small);
    CHECK(tsunagi_endpoint_peer_id(ep, small, sizeof small, &needed) == TSUNAGI_ERR_BUFFER_TOO_SMALL);
    CHECK(small[0] == 'x');
    CHECK(tsunagi_endpoint_peer_id(ep, NULL, 10, NULL) == TSUNAGI_ERR_NULL_POINTER);
    char id[TSUNAGI_PEER_ID_SIZE];
    CHECK(tsunagi_endpoint_peer_id(ep, id, sizeof id, NULL) == TSUNAGI_OK);
    CHECK(strncmp(id, "tsu", 3) == 0 && strlen(id) == 58);

    CHECK(tsunagi_endpoint_connect(ep, "tsunot-a-peer", "127.0.0.1:1") == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(tsunagi_endpoint_connect(ep, id, "") == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(tsunagi_endpoint_connect(ep, id, "localhost:80") == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(tsunagi_endpoint_send_message(ep, id, 0, NULL, 4) == TSUNAGI_ERR_NULL_POINTER);
    CHECK(tsunagi_endpoint_send_message(ep, id, 0, (const uint8_t *)"x", 1) == TSUNAGI_ERR_NOT_CONNECTED);
    CHECK(tsunagi_endpoint_send_message(ep, id, 0, (const uint8_t *)"x", (size_t)-1) == TSUNAGI_ERR_INVALID_ARGUMENT);
    size_t limit;
    CHECK(tsunagi_endpoint_datagram_limit(ep, id, &limit) == TSUNAGI_ERR_NOT_CONNECTED);
    tsunagi_stats stats;
    CHECK(tsunagi_endpoint_stats(ep, id, &stats) == TSUNAGI_ERR_NOT_CONNECTED);
    uint8_t blob[4] = {1, 2, 3, 4};
    CHECK(tsunagi_endpoint_apply_signal(ep, blob, sizeof blob, NULL, 0, NULL) == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(tsunagi_endpoint_create_offer(ep, id, NULL, 0, &needed) == TSUNAGI_ERR_NOT_SUPPORTED);
    CHECK(tsunagi_endpoint_connect_peer(ep, id) == TSUNAGI_ERR_INVALID_ARGUMENT); /* no rendezvous server */

    /* Identity round trip: the same secret gives the same peer id. */
    char secret[128];
    CHECK(tsunagi_endpoint_export_identity_text(ep, secret, sizeof secret, NULL) == TSUNAGI_OK);
    tsunagi_endpoint_destroy(ep);
    config = tsunagi_config_new();
    CHECK(tsunagi_config_set_identity_text(config, secret) == TSUNAGI_OK);
    ep = loopback_endpoint(config);
    tsunagi_config_free(config);
    char again[TSUNAGI_PEER_ID_SIZE];
    CHECK(tsunagi_endpoint_peer_id(ep, again, sizeof again, NULL) == TSUNAGI_OK);
    CHECK(strcmp(id, again) == 0);
    tsunagi_endpoint_destroy(ep);
}

static void test_exchange(void) {
    tsunagi_config *config = tsunagi_config_new();
    tsunagi_endpoint *a = loopback_endpoint(config);
    tsunagi_endpoint *b = loopback_endpoint(config);
    tsunagi_config_free(config);
    char b_id[TSUNAGI_PEER_ID_SIZE], a_id[TSUNAGI_PEER_ID_SIZE], b_addrs[200];
    REQUIRE(tsunagi_endpoint_peer_id(b, b_id, sizeof b_id, NULL) == TSUNAGI_OK);
    REQUIRE(tsunagi_endpoint_peer_id(a, a_id, sizeof a_id, NULL) == TSUNAGI_OK);
    REQUIRE(tsunagi_endpoint_local_addresses(b, b_addrs, sizeof b_addrs, NULL) == TSUNAGI_OK);
    REQUIRE(tsunagi_endpoint_connect(a, b_id, b_addrs) == TSUNAGI_OK);

    tsunagi_event ev;
    size_t n;
    free(wait_for(a, TSUNAGI_EVENT_CONNECTED, &ev, &n));
    CHECK(ev.outgoing == 1 && strcmp(ev.peer_id, b_id) == 0);
    free(wait_for(b, TSUNAGI_EVENT_CONNECTED, &ev, &n));
    CHECK(ev.outgoing == 0 && strcmp(ev.peer_id, a_id) == 0);

    const char *msg = "reliable hello on channel 2";
    CHECK(tsunagi_endpoint_send_message(a, b_id, 2, (const uint8_t *)msg, strlen(msg)) == TSUNAGI_OK);
    CHECK(tsunagi_endpoint_send_message(a, b_id, 200, (const uint8_t *)msg, 1) == TSUNAGI_ERR_NO_SUCH_CHANNEL);
    uint8_t *got = wait_for(b, TSUNAGI_EVENT_MESSAGE, &ev, &n);
    CHECK(ev.channel == 2 && n == strlen(msg) && memcmp(got, msg, n) == 0);
    free(got);

    size_t limit = 0;
    CHECK(tsunagi_endpoint_datagram_limit(b, a_id, &limit) == TSUNAGI_OK && limit > 1000);
    /* Far above any limit (the limit itself can grow while path MTU discovery runs). */
    uint8_t *big = calloc(1, 65536);
    CHECK(tsunagi_endpoint_send_datagram(b, a_id, big, 65536) == TSUNAGI_ERR_TOO_LARGE);
    free(big);
    CHECK(tsunagi_endpoint_send_datagram(b, a_id, (const uint8_t *)"tick", 4) == TSUNAGI_OK);
    got = wait_for(a, TSUNAGI_EVENT_DATAGRAM, &ev, &n);
    CHECK(n == 4 && memcmp(got, "tick", 4) == 0);
    free(got);

    tsunagi_stats stats;
    CHECK(tsunagi_endpoint_stats(a, b_id, &stats) == TSUNAGI_OK);
    CHECK(stats.path == TSUNAGI_PATH_DIRECT_IPV6 && stats.bytes_sent > 0 && stats.remote[0] != 0);

    CHECK(tsunagi_endpoint_disconnect(a, b_id, "game over") == TSUNAGI_OK);
    got = wait_for(b, TSUNAGI_EVENT_DISCONNECTED, &ev, &n);
    CHECK(ev.reason == TSUNAGI_DISCONNECT_CLOSED_BY_PEER);
    free(got);
    tsunagi_endpoint_destroy(a);
    tsunagi_endpoint_destroy(b);
}

int main(void) {
    test_arguments();
    test_exchange();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
