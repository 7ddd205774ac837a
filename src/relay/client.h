/* The relay client (iroh-relay 1.0.x behaviour, spec relay.md 1.2, 1.3, 2.2, 3, 6) as a
 * sans-IO state machine: no sockets, no clock, no threads. The caller moves bytes between
 * the transport and the client and brings the time (nanoseconds of a monotonic clock, the
 * unit of the relay server core).
 *
 * The byte interface is that of a plaintext stream, so a TLS layer can sit in between
 * (decrypt what the socket reads before ir_relay_client_recv, encrypt what
 * ir_relay_client_pending gives before writing it):
 *
 *     ir_relay_client_config cfg;
 *     ir_relay_client_config_init(&cfg);
 *     cfg.secret_key = key; cfg.host = "127.0.0.1:3340"; cfg.random = rnd; cfg.now = now();
 *     ir_relay_client *c;
 *     ir_relay_client_new(&cfg, &c);            // the upgrade request is pending at once
 *     loop:
 *         const uint8_t *p; size_t n = ir_relay_client_pending(c, &p);
 *         if (n) { w = write(fd, p, n); ir_relay_client_consumed(c, w); }
 *         r = read(fd, buf, ...);  r > 0: ir_relay_client_recv(c, buf, r, now())
 *                                   r == 0: ir_relay_client_eof(c)
 *         if (ir_relay_client_timeout(c) && now() >= it) ir_relay_client_on_timeout(c, now())
 *         while (ir_relay_client_poll(c, &ev)) handle ev;
 *         ir_relay_client_state(c) == IR_RELAY_CLIENT_FAILED: close, reconnect with backoff
 *     ir_relay_client_free(c);
 *
 * Behaviour: the request of spec 1.2 (subprotocols "iroh-relay-v2, iroh-relay-v1", an
 * optional Bearer token), the 101 checked as tokio-websockets does (bytes after the head
 * are kept), the challenge handshake (ServerChallenge -> ClientAuth; ServerConfirmsAuth
 * -> READY; ServerDeniesAuth -> FAILED with the reason), masked binary WebSocket frames,
 * WebSocket pings answered, relay Pings answered with Pongs at once, a Ping sent right
 * after READY and then every ping_interval (the timer restarts on every received frame),
 * FAILED when its Pong is not back within pong_timeout, FAILED on any undecodable or
 * unexpected frame (spec 3.2) or a WebSocket Close. */
#ifndef IR_RELAY_CLIENT_H
#define IR_RELAY_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "iroh.h"

/* Fill buf with len unpredictable bytes (WebSocket key, masks, ping payloads). */
typedef void (*ir_relay_client_random_fn)(void *ctx, uint8_t *buf, size_t len);

typedef struct ir_relay_client_config {
    iroh_secret_key secret_key;
    const char *host;       /* Host header: "host" or "host:port" (port only if explicit) */
    const char *path;       /* NULL: "/relay"; else "/relay?query" when the URL had a query */
    const char *auth_token; /* NULL or the Bearer token */
    /* NULL, or the x-iroh-relay-client-auth-v1 value (spec 2.3; TLS only): the server may
     * then confirm at once instead of sending a challenge (both are handled) */
    const char *client_auth;
    ir_relay_client_random_fn random; /* required */
    void *random_ctx;
    uint64_t now;                  /* creation time (ns): start of the handshake deadline */
    uint32_t handshake_timeout_ms; /* upgrade + handshake must finish within this (10000) */
    uint32_t ping_interval_ms;     /* 15000 */
    uint32_t pong_timeout_ms;      /* 5000 */
    size_t max_queued;             /* datagram sends refused above this much output (1 MiB) */
} ir_relay_client_config;

/* Zeroes cfg and fills the defaults above. */
void ir_relay_client_config_init(ir_relay_client_config *cfg);

typedef enum ir_relay_client_state_t {
    IR_RELAY_CLIENT_CONNECTING = 0, /* the request is written or queued; awaiting the 101 */
    IR_RELAY_CLIENT_HANDSHAKE = 1,  /* upgraded; challenge / ClientAuth / confirmation */
    IR_RELAY_CLIENT_READY = 2,      /* authenticated: datagrams flow */
    IR_RELAY_CLIENT_FAILED = 3,     /* ir_relay_client_failure says why; close the socket */
} ir_relay_client_state_t;

typedef enum ir_relay_client_event_kind {
    IR_RELAY_EV_NONE = 0,
    IR_RELAY_EV_READY = 1,
    IR_RELAY_EV_DATAGRAM = 2,      /* id = source, dgrams = ecn, segment size, contents */
    IR_RELAY_EV_ENDPOINT_GONE = 3, /* id */
    IR_RELAY_EV_STATUS = 4,        /* status (IR_RELAY_STATUS_*; others are "unknown") */
    IR_RELAY_EV_RESTARTING = 5,    /* reconnect_in_ms, try_for_ms */
    IR_RELAY_EV_FAILED = 6,        /* reason */
} ir_relay_client_event_kind;

typedef struct ir_relay_client_event {
    ir_relay_client_event_kind kind;
    iroh_endpoint_id id;
    /* DATAGRAM: segment_size 0 is one datagram, else GSO-style segments (split them with
     * ir_relay_dgram_iter_init / _next). contents are owned by the client and valid until
     * the next poll or free. */
    ir_relay_datagrams dgrams;
    uint8_t status;
    uint32_t reconnect_in_ms, try_for_ms;
    const char *reason; /* FAILED: valid until free */
} ir_relay_client_event;

typedef struct ir_relay_client_stats {
    uint64_t pings_sent, pongs_recv; /* our keepalive */
    uint64_t pings_recv, pongs_sent; /* the server's (relay Ping frames) */
    uint64_t ws_pings_recv;          /* WebSocket-level pings answered */
    uint64_t frames_sent, frames_recv;
    uint64_t datagrams_recv;      /* datagram frames received */
    uint64_t events_dropped;      /* datagram events dropped: the event queue was full */
    uint64_t bytes_recv, bytes_sent;
} ir_relay_client_stats;

typedef struct ir_relay_client ir_relay_client;

/* IROH_ERR_INVALID_ARGUMENT (no host or random source, a host or token with control
 * characters), IROH_ERR_NO_MEMORY. */
int ir_relay_client_new(const ir_relay_client_config *cfg, ir_relay_client **out);
void ir_relay_client_free(ir_relay_client *c);

/* Bytes read from the stream (plaintext). Ignored once FAILED. */
void ir_relay_client_recv(ir_relay_client *c, const uint8_t *data, size_t len, uint64_t now);
/* The stream ended (read returned 0) or broke: FAILED. */
void ir_relay_client_eof(ir_relay_client *c, const char *why);

/* The bytes to write next (*data valid until the next call into the client); 0: none. */
size_t ir_relay_client_pending(const ir_relay_client *c, const uint8_t **data);
/* n bytes of the pending output were written. */
void ir_relay_client_consumed(ir_relay_client *c, size_t n);

/* The next deadline (ns), 0 for none; call on_timeout once it has passed. */
uint64_t ir_relay_client_timeout(const ir_relay_client *c);
void ir_relay_client_on_timeout(ir_relay_client *c, uint64_t now);

ir_relay_client_state_t ir_relay_client_state(const ir_relay_client *c);
/* Why the client FAILED ("" otherwise). */
const char *ir_relay_client_failure(const ir_relay_client *c);
/* The negotiated protocol version (IR_RELAY_V1 / V2) once upgraded, else 0. */
int ir_relay_client_version(const ir_relay_client *c);
/* Round-trip time of the last answered keepalive Ping (ns); 0 before the first Pong. */
uint64_t ir_relay_client_rtt(const ir_relay_client *c);
/* Our EndpointId. */
const iroh_endpoint_id *ir_relay_client_id(const ir_relay_client *c);
void ir_relay_client_stats_get(const ir_relay_client *c, ir_relay_client_stats *out);

/* Takes the next event: 1 with *ev set, 0 when there is none. The previous event's
 * data is released. */
int ir_relay_client_poll(ir_relay_client *c, ir_relay_client_event *ev);

/* Queues one datagram (ClientToRelayDatagram, 0x04) / a batch of segment_size pieces
 * (0x05; segment_size 0 sends 0x04). IROH_ERR_STATE before READY or after FAILED,
 * IROH_ERR_INVALID_ARGUMENT for an empty datagram or ecn > 3, IROH_ERR_TOO_LONG above
 * IR_RELAY_MAX_DATAGRAM_SINGLE / _BATCH, IROH_ERR_BUFFER_TOO_SMALL when more than
 * max_queued bytes of output are waiting (drop the datagram, as UDP would). */
int ir_relay_client_send(ir_relay_client *c, const uint8_t dst[32], uint8_t ecn,
                         const uint8_t *data, size_t len);
int ir_relay_client_send_batch(ir_relay_client *c, const uint8_t dst[32], uint8_t ecn,
                               uint16_t segment_size, const uint8_t *data, size_t len);

#endif
