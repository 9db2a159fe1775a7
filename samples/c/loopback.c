/* Two Tsunagi endpoints on this machine connect over loopback and exchange a
 * reliable message and an unreliable one. Build (see README.md):
 *   cargo build --release -p tsunagi-ffi
 *   gcc -std=c99 -Wall -Wextra -I bindings/c samples/c/loopback.c \
 *       target/release/libtsunagi_ffi.a -lpthread -ldl -lm -lrt -o loopback
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tsunagi.h"

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Prints the error and exits when a call fails. */
static void check(tsunagi_result r, const char *what) {
    if (r < 0) {
        fprintf(stderr, "%s failed: %s: %s\n", what, tsunagi_result_name(r), tsunagi_last_error());
        exit(1);
    }
}

static tsunagi_endpoint *make_endpoint(void) {
    tsunagi_config *config = tsunagi_config_new();
    tsunagi_endpoint *ep = NULL;
    check(tsunagi_config_set_loopback_only(config, true), "set_loopback_only");
    check(tsunagi_endpoint_create(config, &ep), "endpoint_create");
    tsunagi_config_free(config); /* the endpoint keeps its own copy */
    return ep;
}

/* Pumps `ep` (as a game does every frame) until an event of `kind` arrives. */
static size_t wait_for(tsunagi_endpoint *ep, tsunagi_event_kind kind, tsunagi_event *ev,
                       uint8_t *buf, size_t len) {
    for (int tick = 0; tick < 10000; tick++) {
        check(tsunagi_endpoint_pump(ep, NULL), "pump");
        tsunagi_result r;
        while ((r = tsunagi_endpoint_poll_event(ep, ev, buf, len)) == TSUNAGI_OK) {
            if (ev->kind == kind) return ev->payload_len;
        }
        check(r, "poll_event");
        sleep_ms(2);
    }
    fprintf(stderr, "timed out waiting for event %d\n", (int)kind);
    exit(1);
}

int main(void) {
    printf("tsunagi %s\n", tsunagi_version());
    tsunagi_endpoint *alice = make_endpoint();
    tsunagi_endpoint *bob = make_endpoint();

    char bob_id[TSUNAGI_PEER_ID_SIZE], bob_addrs[256];
    check(tsunagi_endpoint_peer_id(bob, bob_id, sizeof bob_id, NULL), "peer_id");
    check(tsunagi_endpoint_local_addresses(bob, bob_addrs, sizeof bob_addrs, NULL), "local_addresses");
    printf("bob is %s at %s\n", bob_id, bob_addrs);

    /* Alice dials; Bob needs no call, the session appears as an event. */
    check(tsunagi_endpoint_connect(alice, bob_id, bob_addrs), "connect");
    tsunagi_event ev;
    uint8_t buf[2048];
    wait_for(alice, TSUNAGI_EVENT_CONNECTED, &ev, buf, sizeof buf);
    printf("alice connected (path %d)\n", (int)ev.path);
    wait_for(bob, TSUNAGI_EVENT_CONNECTED, &ev, buf, sizeof buf);
    char alice_id[TSUNAGI_PEER_ID_SIZE];
    memcpy(alice_id, ev.peer_id, sizeof alice_id);

    const char *hello = "hello over a reliable channel";
    check(tsunagi_endpoint_send_message(alice, bob_id, 0, (const uint8_t *)hello, strlen(hello)), "send_message");
    size_t n = wait_for(bob, TSUNAGI_EVENT_MESSAGE, &ev, buf, sizeof buf);
    printf("bob got on channel %u: %.*s\n", (unsigned)ev.channel, (int)n, (const char *)buf);

    size_t limit = 0;
    check(tsunagi_endpoint_datagram_limit(bob, alice_id, &limit), "datagram_limit");
    const char *tick = "state tick 1";
    check(tsunagi_endpoint_send_datagram(bob, alice_id, (const uint8_t *)tick, strlen(tick)), "send_datagram");
    n = wait_for(alice, TSUNAGI_EVENT_DATAGRAM, &ev, buf, sizeof buf);
    printf("alice got a datagram (limit %zu): %.*s\n", limit, (int)n, (const char *)buf);

    tsunagi_endpoint_destroy(alice);
    tsunagi_endpoint_destroy(bob);
    printf("ok\n");
    return 0;
}
