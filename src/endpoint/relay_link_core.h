/* The state machine of a relay link (relay_link.h), sans-IO: no sockets, no clock, no
 * resolver, no TLS. What it owns: the sans-IO relay client (relay/client.h) once the
 * transport is up, the reconnection backoff (10 ms doubling to 16 s, a delay drawn in
 * [b/2, b] from an injectable random source; at once after an established connection
 * broke, spec relay.md 6), the queue of datagrams sent while the link is down (3 s, 64
 * datagrams), the 60 s close of a link nobody uses (unless kept for good), and the latency
 * of its keepalive pings. The time is always the caller's (`now`, ns).
 *
 * The shell (relay_link.c: DNS, TCP, TLS; or the simulator's virtual streams) follows the
 * core's state:
 *
 *   - state CONNECTING with an attempt number it has not started: resolve and connect,
 *     then ir_rlc_transport_up (the plaintext stream is ready) or ir_rlc_transport_failed;
 *   - state neither CONNECTING nor UP, or another attempt number: close its transport;
 *   - state UP: bytes read go to ir_rlc_recv (end of stream: ir_rlc_eof), then
 *     ir_rlc_pump; the bytes of ir_rlc_pending are written (ir_rlc_consumed), then
 *     ir_rlc_settle;
 *   - at ir_rlc_timeout: ir_rlc_tick, then as above.
 *
 * Also the home relay choice (ir_rlc_choose_home), a pure function of the links' states
 * and latencies. */
#ifndef IR_ENDPOINT_RELAY_LINK_CORE_H
#define IR_ENDPOINT_RELAY_LINK_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "iroh.h"
#include "relay/client.h"

/* Received datagrams (one QUIC datagram each) from peer `src`. data may be modified. */
typedef void (*ir_rlink_recv_fn)(void *ctx, unsigned idx, const uint8_t src[32], uint8_t *data,
                                 size_t len, uint64_t now);

#define IR_RLC_BACKOFF_MIN_MS 10
#define IR_RLC_BACKOFF_MAX_MS 16000
#define IR_RLC_IDLE_CLOSE_NS (60ull * 1000000000ull) /* a link not kept, unused this long */
#define IR_RLC_QUEUE_MAX 64
#define IR_RLC_QUEUE_AGE_NS (3ull * 1000000000ull)

typedef struct ir_rlc_config {
    const char *url;        /* for log lines (copied) */
    unsigned idx;           /* passed to recv */
    iroh_secret_key key;    /* our identity, for the relay handshake */
    const char *host;       /* Host header (copied) */
    const char *path;       /* "/relay" or "/relay?query" (copied) */
    const char *auth_token; /* NULL or a Bearer token (copied) */
    ir_relay_client_random_fn random; /* NULL: getrandom; the client's and the jitter's */
    void *random_ctx;
    ir_rlink_recv_fn recv;
    void *recv_ctx;
} ir_rlc_config;

typedef enum ir_rlc_state {
    IR_RLC_IDLE = 0,       /* not connected and not wanted */
    IR_RLC_BACKOFF = 1,    /* waiting before the next attempt */
    IR_RLC_CONNECTING = 2, /* the shell is bringing a transport up for ir_rlc_attempt */
    IR_RLC_UP = 3,         /* the relay client runs (upgrade, handshake, then datagrams) */
} ir_rlc_state;

typedef struct ir_rlc ir_rlc;

/* IROH_ERR_NO_MEMORY, IROH_ERR_INVALID_ARGUMENT (a field too long). */
int ir_rlc_new(const ir_rlc_config *cfg, ir_rlc **out);
void ir_rlc_free(ir_rlc *c);

/* As ir_rlink_want / ir_rlink_send (relay_link.h). */
void ir_rlc_want(ir_rlc *c, int forever, uint64_t now);
void ir_rlc_send(ir_rlc *c, const uint8_t dst[32], const uint8_t *data, size_t len, size_t seg,
                 uint64_t now);

ir_rlc_state ir_rlc_get_state(const ir_rlc *c);
/* Counts the attempts started (the first is 1). */
uint64_t ir_rlc_attempt(const ir_rlc *c);

/* The transport of the current attempt is up (a plaintext byte stream): the relay
 * client starts (its upgrade request is pending at once). client_auth: NULL or the
 * keying-material header (spec relay.md 2.3). */
void ir_rlc_transport_up(ir_rlc *c, const char *client_auth, uint64_t now);
/* The attempt failed before the transport was up (why: the story for last_error). */
void ir_rlc_transport_failed(ir_rlc *c, const char *why, uint64_t now);

/* Plaintext bytes read from the transport; its end (or an error). State UP only. */
void ir_rlc_recv(ir_rlc *c, const uint8_t *data, size_t len, uint64_t now);
void ir_rlc_eof(ir_rlc *c, const char *why);
/* The bytes to write (valid until the next call into the core); n of them were written. */
size_t ir_rlc_pending(const ir_rlc *c, const uint8_t **data);
void ir_rlc_consumed(ir_rlc *c, size_t n);

/* Deadlines: expires queued datagrams, closes a link unused for 60 s, starts the next
 * attempt once the backoff is over. */
void ir_rlc_tick(ir_rlc *c, uint64_t now);
/* The client's timers and events (delivers datagrams through recv; sends the queue once
 * authenticated), the latency. */
void ir_rlc_pump(ir_rlc *c, uint64_t now);
/* Gives up a failed client (after its output was written): backoff. */
void ir_rlc_settle(ir_rlc *c, uint64_t now);
/* tick + pump + settle, for shells with nothing to write in between. */
void ir_rlc_process(ir_rlc *c, uint64_t now);
/* The next deadline of the core (ns), 0 for none. */
uint64_t ir_rlc_timeout(const ir_rlc *c);

/* Authenticated by the relay: datagrams flow. */
int ir_rlc_ready(const ir_rlc *c);
/* Authenticated and its first keepalive Pong arrived. */
int ir_rlc_established(const ir_rlc *c);
uint64_t ir_rlc_latency(const ir_rlc *c);
const char *ir_rlc_last_error(const ir_rlc *c);
uint64_t ir_rlc_connects(const ir_rlc *c);
/* Attempts that failed before the relay authenticated us (the transport, the handshake),
 * and authenticated connections that ended (broken, refused later, closed unused). */
void ir_rlc_counts(const ir_rlc *c, uint64_t *failures, uint64_t *closes);
/* Datagrams waiting for the link to come up. */
int ir_rlc_queued(const ir_rlc *c);
/* The time the next attempt starts (state BACKOFF), else 0. */
uint64_t ir_rlc_retry_at(const ir_rlc *c);

/* The home relay (spec relay.md 6): of n links (established[i], latency[i] in ns), the
 * established one with the lowest latency; it replaces the current home only below 2/3
 * of the home's latency, or when the home is not established. Returns the new home index
 * (home itself when nothing changes; -1 stays -1 while no link is established). */
int ir_rlc_choose_home(int home, const int *established, const uint64_t *latency, size_t n);

#endif
