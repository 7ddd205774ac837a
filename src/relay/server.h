/* The relay server (iroh-relay 1.0.x behaviour, spec relay.md): plain HTTP/1.1 with the
 * WebSocket upgrade on GET /relay, the challenge handshake, and the relay protocol
 * (forwarding datagrams between authenticated endpoints, pings, EndpointGone,
 * same-EndpointId replacement), plus the small HTTP endpoints (/ping, /generate_204,
 * /healthz, /, /robots.txt).
 *
 * Two parts:
 *
 *  - ir_relay_core, sans-IO: every connection is a state machine fed with the bytes read
 *    from its socket and the current time, and giving the bytes to write, what it wants
 *    from its socket (read, write, shut down, close) and its next deadline. The core also
 *    routes datagrams between the connections it holds. It opens no socket, reads no
 *    clock and takes its randomness from a callback.
 *  - ir_relay_server, the shell: a TCP listener, one epoll loop with non-blocking sockets
 *    (no thread per client), the clock, getrandom, and a self-pipe (eventfd) so that
 *    ir_relay_server_stop can be called from a signal handler. Optionally a second
 *    listener on another address serves the counters as Prometheus/OpenMetrics text
 *    (plain HTTP, never on the relay port), from the same loop.
 *
 * The core is server.c and server_*.c, the shell server_shell.c (server_core.h lists the
 * files and their concerns).
 *
 * Typical use (what `iroh-c relay` does):
 *
 *     ir_relay_server_config cfg;
 *     ir_relay_server_config_init(&cfg);
 *     cfg.listen = "127.0.0.1:3340";
 *     ir_relay_server *srv;
 *     if (ir_relay_server_new(&cfg, &srv) != IROH_OK) fail (iroh_last_error());
 *     signal handler: ir_relay_server_stop(srv);
 *     ir_relay_server_run(srv);          // returns after stop, all clients closed
 *     ir_relay_server_free(srv);
 *
 * Hooks for later work:
 *  - TLS (https relays): the core only ever sees plaintext, so an HTTPS listener wraps
 *    each accepted socket in a TLS session inside the shell (decrypt before
 *    ir_relay_core_recv, encrypt what ir_relay_conn_output gives). The keying-material
 *    authentication of spec 2.3 is already handled by the core once the shell installs an
 *    exporter on the connection (ir_relay_conn_set_exporter); without one the header is
 *    decoded (an undecodable header drops the connection, as upstream) and the challenge
 *    is used.
 *  - QUIC address discovery (spec 4.3) is not part of this server: `iroh-c relay` runs
 *    endpoint/qad.h on a thread of its own next to it.
 *  - Access control (spec 2.4): the `access` callback of the configuration.
 */
#ifndef IR_RELAY_SERVER_H
#define IR_RELAY_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "iroh.h"

#define IR_RELAY_DEFAULT_LISTEN "127.0.0.1:3340"

/* Access control after authentication: return 1 to allow, 0 to deny (then *reason may be
 * set to a static text; NULL means "not authorized"). token is the Bearer token of the
 * upgrade request's Authorization header, or NULL. */
typedef int (*ir_relay_access_fn)(void *ctx, const iroh_endpoint_id *id, int version,
                                  const char *token, size_t token_len, const char **reason);

/* Exports 32 bytes of TLS keying material (label IR_RELAY_EXPORT_LABEL, the given 32-byte
 * context); 0 on success. Installed by a TLS shell on each connection. */
typedef int (*ir_relay_export_fn)(void *ctx, const uint8_t context[32], uint8_t out[32]);

/* Randomness for the core: fill buf with len unpredictable bytes (challenges). */
typedef void (*ir_relay_random_fn)(void *ctx, uint8_t *buf, size_t len);

typedef struct ir_relay_server_config {
    const char *listen;            /* "IP:PORT" (shell only); NULL: IR_RELAY_DEFAULT_LISTEN */
    uint32_t header_timeout_ms;    /* a request head must be complete within this (5000) */
    uint32_t keepalive_idle_ms;    /* idle HTTP keep-alive connections are closed (30000) */
    uint32_t handshake_timeout_ms; /* request to registration (30000, spec 1.3) */
    uint32_t write_timeout_ms;     /* a queued frame must be written within this (2000) */
    uint32_t ping_interval_ms;     /* server pings every this + 1..5 s (15000) */
    uint32_t pong_timeout_ms;      /* longest wait for a pong (5000; 3 x RTT once known) */
    uint32_t linger_ms;            /* after a final response: wait for the peer's close (2000) */
    uint32_t queue_datagrams;      /* per-recipient datagram queue (512) */
    uint32_t queue_control;        /* per-connection control queue (512) */
    uint32_t queue_bytes;          /* per-recipient datagram queue in bytes (4 MiB) */
    uint32_t max_connections;      /* TCP connections at once (shell; 100000) */
    /* Per-client receive rate limit (spec 3.5): a token bucket on the bytes read from each
     * upgraded connection (after TLS), refilled every 100 ms; a client over it is not
     * read from until it has tokens again (backpressure, nothing is dropped). v2 clients
     * get Status 2 (RateLimited) once, on the first throttle. 0: off. */
    uint32_t rx_bytes_per_second;
    uint32_t rx_max_burst_bytes;   /* the bucket's size; 0: rx_bytes_per_second / 10 */
    const char *tls_cert_file;     /* shell: PEM certificate chain; with tls_key_file, HTTPS */
    const char *tls_key_file;      /* shell: PEM private key */
    const char *metrics_listen;    /* shell: "IP:PORT" of a plain-HTTP Prometheus/OpenMetrics
                                    * endpoint (GET / or /metrics); NULL: none */
    const char *captive_listen;    /* shell: "IP:PORT" of a plain-HTTP listener that answers
                                    * only GET /generate_204 (the captive-portal check, with
                                    * X-Iroh-Challenge/-Response) and 404 to anything else,
                                    * as iroh-relay's http_bind_addr next to HTTPS; NULL: none */
    ir_relay_access_fn access;     /* NULL: everyone is allowed */
    void *access_ctx;
} ir_relay_server_config;

/* Fills the defaults above. */
void ir_relay_server_config_init(ir_relay_server_config *cfg);

/* Counters (since start) and gauges (now). */
typedef struct ir_relay_server_stats {
    uint64_t accepts;             /* TCP connections accepted */
    uint64_t conns;               /* open TCP connections now */
    uint64_t refused;             /* connections refused at accept (limit, memory) */
    uint64_t http_requests;       /* request heads parsed */
    uint64_t http_bad;            /* malformed or oversized request heads */
    uint64_t upgrades;            /* 101 Switching Protocols sent */
    uint64_t upgrades_refused;    /* upgrade requests answered with 400 */
    uint64_t handshakes;          /* clients authenticated and registered */
    uint64_t handshake_failures;  /* bad ClientAuth frames, bad signatures, denials */
    uint64_t clients;             /* registered connections now (active and inactive) */
    uint64_t clients_inactive;    /* of which replaced by a newer one of the same id */
    uint64_t clients_replaced;    /* same EndpointId connected again (total) */
    uint64_t clients_inactive_removed; /* inactive connections promoted or gone (total) */
    uint64_t disconnects;         /* registered connections that went away (total) */
    uint64_t frames_recv;         /* datagram frames received (0x04, 0x05) */
    uint64_t frames_relayed;      /* datagram frames forwarded (0x06, 0x07) */
    uint64_t bytes_relayed;       /* datagram payload bytes forwarded */
    uint64_t dgram_bytes_recv;    /* datagram payload bytes received */
    uint64_t dropped_absent;      /* datagram frames for endpoints not connected */
    uint64_t dropped_full;        /* datagram frames dropped on a full queue */
    uint64_t dropped_invalid;     /* empty or oversized datagram frames dropped */
    uint64_t control_dropped;     /* control frames dropped on a full queue */
    uint64_t pings_recv, pongs_sent, pings_sent, pongs_recv;
    uint64_t endpoint_gone_sent;
    uint64_t protocol_errors;     /* connections closed for a bad frame or WebSocket error */
    uint64_t header_timeouts, handshake_timeouts, pong_timeouts, write_timeouts;
    uint64_t bytes_recv, bytes_sent; /* on the sockets */
    uint64_t bytes_rx_ratelimited; /* bytes read after the rate limiter held a client back */
    uint64_t conns_rx_ratelimited; /* connections the rate limiter held back at least once */
} ir_relay_server_stats;

/* One line "key=value key=value ..." (no newline); returns the length (snprintf). */
int ir_relay_stats_format(const ir_relay_server_stats *st, char *buf, size_t cap);

/* The stats in the OpenMetrics text format (what Prometheus scrapes), ending in "# EOF\n".
 * Names follow upstream's metrics group "relayserver" where there is an equivalent
 * (relayserver_<name>_total for counters); the rest are prefixed "irohc_". Returns the
 * length (snprintf semantics: >= cap means truncated). */
int ir_relay_metrics_format(const ir_relay_server_stats *st, char *buf, size_t cap);

/* ---- the sans-IO core ------------------------------------------------------------------ */

typedef struct ir_relay_core ir_relay_core;
typedef struct ir_relay_conn ir_relay_conn;

/* What a connection wants from its socket (ir_relay_conn_status). */
#define IR_RELAY_WANT_READ 1u     /* feed it what the socket reads */
#define IR_RELAY_WANT_WRITE 2u    /* it has output (ir_relay_conn_output) */
#define IR_RELAY_WANT_SHUTDOWN 4u /* shut down the socket's write side (once) */
#define IR_RELAY_CLOSED 8u        /* close the socket, then ir_relay_core_release */

/* cfg is copied (listen and max_connections are the shell's). rnd may be NULL: getrandom. */
int ir_relay_core_new(const ir_relay_server_config *cfg, ir_relay_random_fn rnd, void *rnd_ctx,
                      ir_relay_core **out);
/* Frees the core and every connection it still holds. */
void ir_relay_core_free(ir_relay_core *core);

/* A new connection (a TCP connection was accepted at `now`); NULL when out of memory. */
ir_relay_conn *ir_relay_core_accept(ir_relay_core *core, uint64_t now);
/* Bytes read from the connection's socket. The buffer may be modified (WebSocket payloads
 * are unmasked in place) and need not outlive the call. */
void ir_relay_core_recv(ir_relay_core *core, ir_relay_conn *c, uint8_t *data, size_t len,
                        uint64_t now);
/* The peer closed its side (read returned 0). */
void ir_relay_core_eof(ir_relay_core *core, ir_relay_conn *c, uint64_t now);
/* The socket failed; the connection is closed at once. */
void ir_relay_core_abort(ir_relay_core *core, ir_relay_conn *c, const char *why, uint64_t now);
/* The bytes to write next, as up to max iovecs (whole frames, in order). Returns the count. */
size_t ir_relay_conn_output(const ir_relay_conn *c, struct iovec *iov, size_t max);
/* n bytes of that output were written. */
void ir_relay_core_sent(ir_relay_core *core, ir_relay_conn *c, size_t n, uint64_t now);
/* IR_RELAY_WANT_* / IR_RELAY_CLOSED flags. */
unsigned ir_relay_conn_status(const ir_relay_conn *c);
/* At most this many bytes should be read for the connection now (the rate limiter's
 * tokens; SIZE_MAX without a limit). While a client is held back, its status has no
 * IR_RELAY_WANT_READ and its deadline is the next refill. More may be given to
 * ir_relay_core_recv; the excess is then a debt paid back before it is read again. */
size_t ir_relay_conn_read_max(const ir_relay_conn *c);
/* The next connection whose status may have changed since it was last returned (new
 * output, closed, ...), or NULL. A shell drains this after every call into the core. */
ir_relay_conn *ir_relay_core_next_changed(ir_relay_core *core);
/* The earliest deadline of any connection (0: none); call on_timeout once it passed. */
uint64_t ir_relay_core_next_timeout(const ir_relay_core *core);
void ir_relay_core_on_timeout(ir_relay_core *core, uint64_t now);
/* Closes every connection (server shutdown). */
void ir_relay_core_close_all(ir_relay_core *core, uint64_t now);
/* Frees a connection whose status is IR_RELAY_CLOSED (after its socket was closed). */
void ir_relay_core_release(ir_relay_core *core, ir_relay_conn *c);
void ir_relay_core_stats(const ir_relay_core *core, ir_relay_server_stats *out);

/* The shell's per-connection pointer, and the TLS exporter hook (see above). */
void ir_relay_conn_set_user(ir_relay_conn *c, void *user);
void *ir_relay_conn_user(const ir_relay_conn *c);
void ir_relay_conn_set_exporter(ir_relay_conn *c, ir_relay_export_fn fn, void *ctx);

/* ---- the epoll shell ------------------------------------------------------------------- */

typedef struct ir_relay_server ir_relay_server;

/* Binds and listens (errors: IROH_ERR_INVALID_ADDR, IROH_ERR_IO with a detail). */
int ir_relay_server_new(const ir_relay_server_config *cfg, ir_relay_server **out);
/* The address actually bound (the real port when 0 was asked for). */
void ir_relay_server_local_addr(const ir_relay_server *srv, iroh_socket_addr *out);
/* The metrics listener's address; 0 when there is none (metrics_listen was NULL). */
int ir_relay_server_metrics_addr(const ir_relay_server *srv, iroh_socket_addr *out);
/* The captive-portal listener's address; 0 when there is none (captive_listen was NULL). */
int ir_relay_server_captive_addr(const ir_relay_server *srv, iroh_socket_addr *out);
/* Serves until ir_relay_server_stop; then closes every connection and returns IROH_OK
 * (or IROH_ERR_IO if epoll itself failed). */
int ir_relay_server_run(ir_relay_server *srv);
/* Async-signal-safe: makes run return. */
void ir_relay_server_stop(ir_relay_server *srv);
/* Async-signal-safe: makes the loop print one "relay stats: ..." line to stderr. */
void ir_relay_server_request_stats(ir_relay_server *srv);
void ir_relay_server_get_stats(const ir_relay_server *srv, ir_relay_server_stats *out);
void ir_relay_server_free(ir_relay_server *srv);

#endif
