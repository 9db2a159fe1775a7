/* C test of the Tsunagi ABI: argument checks, caller-owned buffers (short buffers
 * never overrun and lose nothing), identity round trip, two endpoints exchanging
 * reliable and unreliable messages on loopback, two endpoints connecting by
 * offer/answer blobs carried "by the game" (here: local variables), and, when run as
 * `api_test SERVER TOKEN_A TOKEN_B` (a tsunagi-relay with --auth-secret), the same
 * with the relay configured and connecting by peer id through the rendezvous server.
 * Run by ffi/tests/c_abi.rs under valgrind. Prints "N passed, 0 failed" and exits 0
 * on success. */
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
    CHECK(tsunagi_endpoint_create_offer(ep, id, NULL, 0, &needed) == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tsunagi_last_error(), "made by this endpoint") != NULL); /* an offer to itself */
    CHECK(tsunagi_endpoint_create_offer(ep, "tsunope", NULL, 0, &needed) == TSUNAGI_ERR_INVALID_ARGUMENT);
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

/* Connected both ways, then one reliable message from a to b. */
static void check_session(tsunagi_endpoint *a, const char *a_id, tsunagi_endpoint *b,
                          const char *b_id) {
    tsunagi_event ev;
    size_t n;
    free(wait_for(a, TSUNAGI_EVENT_CONNECTED, &ev, &n));
    CHECK(ev.outgoing == 1 && strcmp(ev.peer_id, b_id) == 0);
    CHECK(ev.path != TSUNAGI_PATH_NONE);
    free(wait_for(b, TSUNAGI_EVENT_CONNECTED, &ev, &n));
    CHECK(ev.outgoing == 0 && strcmp(ev.peer_id, a_id) == 0);
    const char *msg = "hello through the lobby";
    CHECK(tsunagi_endpoint_send_message(a, b_id, 0, (const uint8_t *)msg, strlen(msg)) == TSUNAGI_OK);
    uint8_t *got = wait_for(b, TSUNAGI_EVENT_MESSAGE, &ev, &n);
    CHECK(n == strlen(msg) && memcmp(got, msg, n) == 0);
    free(got);
}

/* a offers to b, b answers, a applies the answer: the game carries the bytes. */
static void connect_by_blobs(tsunagi_endpoint *a, tsunagi_endpoint *b) {
    char a_id[TSUNAGI_PEER_ID_SIZE], b_id[TSUNAGI_PEER_ID_SIZE];
    REQUIRE(tsunagi_endpoint_peer_id(a, a_id, sizeof a_id, NULL) == TSUNAGI_OK);
    REQUIRE(tsunagi_endpoint_peer_id(b, b_id, sizeof b_id, NULL) == TSUNAGI_OK);

    /* Size query first: the offer made is kept and returned by the next call. */
    size_t needed = 0;
    CHECK(tsunagi_endpoint_create_offer(a, b_id, NULL, 0, &needed) == TSUNAGI_ERR_BUFFER_TOO_SMALL);
    CHECK(needed > 0 && needed <= TSUNAGI_SIGNAL_MAX_SIZE);
    uint8_t *offer = malloc(needed + 1);
    size_t offer_len = 0;
    offer[needed] = 0xAB;
    REQUIRE(tsunagi_endpoint_create_offer(a, b_id, offer, needed, &offer_len) == TSUNAGI_OK);
    CHECK(offer_len == needed && offer[needed] == 0xAB);

    /* Garbage and truncated blobs are refused with a message. */
    uint8_t junk[3] = {9, 9, 9};
    uint8_t answer[TSUNAGI_SIGNAL_MAX_SIZE];
    size_t answer_len = 7;
    CHECK(tsunagi_endpoint_apply_signal(b, junk, sizeof junk, answer, sizeof answer, &answer_len) == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tsunagi_last_error(), "version 9") != NULL);
    CHECK(tsunagi_endpoint_apply_signal(b, offer, offer_len / 2, answer, sizeof answer, &answer_len) == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(tsunagi_endpoint_apply_signal(a, offer, offer_len, answer, sizeof answer, &answer_len) == TSUNAGI_ERR_INVALID_ARGUMENT);
    CHECK(tsunagi_endpoint_apply_signal(b, NULL, 5, answer, sizeof answer, &answer_len) == TSUNAGI_ERR_NULL_POINTER);

    /* The answer: too small a buffer first, then applying the same offer again. */
    uint8_t tiny[4] = {0xCD, 0xCD, 0xCD, 0xCD};
    CHECK(tsunagi_endpoint_apply_signal(b, offer, offer_len, tiny, sizeof tiny, &answer_len) == TSUNAGI_ERR_BUFFER_TOO_SMALL);
    CHECK(answer_len > sizeof tiny && tiny[0] == 0xCD);
    REQUIRE(tsunagi_endpoint_apply_signal(b, offer, offer_len, answer, sizeof answer, &answer_len) == TSUNAGI_OK);
    CHECK(answer_len > 0 && answer_len <= TSUNAGI_SIGNAL_MAX_SIZE);
    free(offer);

    size_t none = 99;
    REQUIRE(tsunagi_endpoint_apply_signal(a, answer, answer_len, NULL, 0, &none) == TSUNAGI_OK);
    CHECK(none == 0);
    check_session(a, a_id, b, b_id);
}

static void test_blobs(void) {
    tsunagi_config *config = tsunagi_config_new();
    tsunagi_endpoint *a = loopback_endpoint(config);
    tsunagi_endpoint *b = loopback_endpoint(config);
    tsunagi_config_free(config);
    connect_by_blobs(a, b);
    tsunagi_endpoint_destroy(a);
    tsunagi_endpoint_destroy(b);
}

static tsunagi_endpoint *relay_endpoint(const char *server, const char *token, int rendezvous) {
    tsunagi_config *config = tsunagi_config_new();
    REQUIRE(tsunagi_config_set_relay_server(config, server) == TSUNAGI_OK);
    REQUIRE(tsunagi_config_set_relay_token(config, token) == TSUNAGI_OK);
    if (rendezvous) {
        REQUIRE(tsunagi_config_set_rendezvous_server(config, server) == TSUNAGI_OK);
    }
    tsunagi_endpoint *ep = loopback_endpoint(config);
    tsunagi_config_free(config);
    return ep;
}

/* Blobs with the relay configured on both sides (relayed candidates in the blobs),
   then connecting by peer id through the rendezvous server. */
static void test_relay(const char *server, const char *token_a, const char *token_b) {
    tsunagi_endpoint *a = relay_endpoint(server, token_a, 0);
    tsunagi_endpoint *b = relay_endpoint(server, token_b, 0);
    connect_by_blobs(a, b);
    tsunagi_endpoint_destroy(a);
    tsunagi_endpoint_destroy(b);

    a = relay_endpoint(server, token_a, 1);
    b = relay_endpoint(server, token_b, 1);
    char a_id[TSUNAGI_PEER_ID_SIZE], b_id[TSUNAGI_PEER_ID_SIZE];
    REQUIRE(tsunagi_endpoint_peer_id(a, a_id, sizeof a_id, NULL) == TSUNAGI_OK);
    REQUIRE(tsunagi_endpoint_peer_id(b, b_id, sizeof b_id, NULL) == TSUNAGI_OK);
    REQUIRE(tsunagi_endpoint_connect_peer(a, b_id) == TSUNAGI_OK);
    check_session(a, a_id, b, b_id);
    tsunagi_endpoint_destroy(a);
    tsunagi_endpoint_destroy(b);
}

int main(int argc, char **argv) {
    test_arguments();
    test_exchange();
    test_blobs();
    if (argc == 4) {
        test_relay(argv[1], argv[2], argv[3]);
    } else {
        printf("SKIPPED(relay tests: run as api_test SERVER TOKEN_A TOKEN_B)\n");
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
