/* The relay server's sans-IO core from the inside (server.h says what it offers): the
 * connection and core records, and what the core's files share. For src/relay/server*.c
 * only. The files, one concern each (also in docs/ARCHITECTURE.md):
 *
 *   server.c            the core object and a connection's life: accept, input by state,
 *                       graceful finish and linger, close, release; the change list
 *   server_http.c       HTTP/1.1 requests: the small pages, keep-alive, the WebSocket
 *                       upgrade (keying-material header, challenge)
 *   server_relay.c      the relay protocol after the upgrade: ClientAuth, access control,
 *                       ServerConfirmsAuth, client frames, keepalive pings
 *   server_routing.c    the EndpointId table: registration, same-id replacement,
 *                       EndpointGone, forwarding datagrams into a recipient's queue
 *   server_output.c     a connection's output queues (control, datagrams) and the frames
 *                       and responses put on them
 *   server_ratelimit.c  the receive rate limiter (a token bucket per client, spec 3.5)
 *   server_timers.c     a connection's timers, the deadline heap over all of them
 *   server_metrics.c    the counters as a stats line and as OpenMetrics text, and the
 *                       metrics listener of the shell
 *   server_shell.c      the epoll shell: sockets, TLS, the clock (server_shell.h)
 *
 * Functions one file offers the others are prefixed ir_rs_; everything else is static. */
#ifndef IR_RELAY_SERVER_CORE_H
#define IR_RELAY_SERVER_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "frame.h"
#include "http.h"
#include "server.h"
#include "ws.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define NPOS ((size_t)-1)

/* One queued output frame: a whole WebSocket message (or an HTTP response). */
typedef struct out_frame {
    struct out_frame *next;
    size_t len;
    uint8_t data[];
} out_frame;

typedef struct out_queue {
    out_frame *head, *tail;
    uint32_t n;
    size_t bytes;
} out_queue;

enum { OUT_CTL, OUT_DGRAM };

enum conn_state {
    CS_HTTP,    /* reading a request head */
    CS_AUTH,    /* 101 and challenge sent, waiting for ClientAuth */
    CS_RELAY,   /* registered: the relay protocol */
    CS_CLOSING, /* flushing the last output, input ignored */
    CS_LINGER,  /* write side shut down, waiting for the peer to close */
    CS_CLOSED,
};

enum conn_timer { T_HEAD, T_HANDSHAKE, T_WRITE, T_PING, T_PONG, T_LINGER, T_RATE, T_COUNT };

/* The connections of one EndpointId (server_routing.c). */
typedef struct ep_entry ep_entry;

struct ir_relay_conn {
    uint64_t conn_id;
    int state;
    uint64_t t[T_COUNT];
    uint64_t deadline; /* min of t[], 0: none */
    size_t heap_idx;
    /* HTTP */
    ir_http_reader *http;
    int http_started;   /* bytes of the current request arrived */
    uint64_t request_at; /* when they did */
    /* WebSocket and relay */
    ir_ws_parser ws;
    int ws_init;
    int version;
    uint8_t challenge[16];
    iroh_endpoint_id key;
    ep_entry *entry;
    ir_relay_conn *inactive_next;
    char *token;
    size_t token_len;
    ir_relay_export_fn exporter;
    void *exporter_ctx;
    /* keepalive */
    uint8_t ping_data[8];
    int ping_out;
    uint64_t ping_sent_at, rtt, ping_period;
    /* output */
    out_frame *cur;
    size_t cur_off;
    out_queue ctl, dg;
    uint32_t ctl_limit; /* the control queue's length limit */
    /* receive rate limit (token bucket) once upgraded */
    int rl_on;
    int64_t rl_tokens;    /* may go negative: a debt from an over-long read */
    uint64_t rl_tick_at;  /* time of the last refill tick */
    int rl_held;          /* held back in the last refill period */
    int rl_counted;       /* counted in conns_rx_ratelimited */
    int rl_status_sent;   /* Status 2 sent */
    int eof;          /* the peer closed its side */
    int shutdown_wr;  /* the write side is to be shut down */
    /* bookkeeping */
    ir_relay_conn *all_prev, *all_next;
    ir_relay_conn *changed_next;
    int changed;
    /* the shell's */
    void *user;
    int fd;
    uint32_t events;
    int shut, write_blocked;
    ir_relay_conn *grave_next;
    struct gnutls_session_int *tls; /* HTTPS: the TLS session over fd (gnutls_session_t) */
    int tls_ready;          /* its handshake is done */
};

struct ir_relay_core {
    ir_relay_server_config cfg;
    uint64_t rl_rate, rl_burst; /* bytes per second, bucket size; rate 0: off */
    uint64_t header_timeout, keepalive_idle, hs_timeout, write_timeout, ping_interval,
        pong_timeout, linger;
    ir_relay_random_fn rnd;
    void *rnd_ctx;
    uint64_t prng;            /* splitmix64 state for jitter and ping payloads */
    uint64_t hash_k0, hash_k1; /* secret keys of the EndpointId hash */
    ep_entry **buckets;
    size_t nbuckets, nentries;
    ir_relay_conn **heap;
    size_t heap_n, heap_cap;
    ir_relay_conn *all;
    size_t nconns;
    ir_relay_conn *changed_head, *changed_tail;
    ir_relay_keycache keys;
    uint64_t next_conn_id;
    uint64_t now; /* the latest time the caller gave */
    ir_relay_server_stats st;
};

/* ---- server.c: the core and a connection's life ----------------------------------------- */

/* splitmix64 on the core's seed: ping payloads and jitter */
uint64_t ir_rs_prng_next(ir_relay_core *core);
/* Puts c on the change list (ir_relay_core_next_changed), once. Inline, as
 * ir_rs_frame_new: both are on the path of every datagram. */
static inline void ir_rs_mark_changed(ir_relay_core *core, ir_relay_conn *c)
{
    if (c->changed)
        return;
    c->changed = 1;
    c->changed_next = NULL;
    if (core->changed_tail)
        core->changed_tail->changed_next = c;
    else
        core->changed_head = c;
    core->changed_tail = c;
}
/* Closes c at once (unregistering it); its socket is to be closed. */
void ir_rs_conn_close(ir_relay_core *core, ir_relay_conn *c, uint64_t now, const char *why);
/* Ends c gracefully: queued output first, then shutdown and linger. */
void ir_rs_conn_finish(ir_relay_core *core, ir_relay_conn *c, uint64_t now);
/* The output of a finishing connection is written: shut down, wait for the peer. */
void ir_rs_start_linger(ir_relay_core *core, ir_relay_conn *c, uint64_t now);

/* ---- server_timers.c: the deadline heap ----------------------------------------------- */

/* Makes room in the heap for n connections; -1 when out of memory. */
int ir_rs_heap_reserve(ir_relay_core *core, size_t n);
/* Recomputes c's deadline from c->t[] and moves it in the heap. */
void ir_rs_reschedule(ir_relay_core *core, ir_relay_conn *c);
void ir_rs_heap_remove(ir_relay_core *core, ir_relay_conn *c);

/* ---- server_routing.c: the EndpointId table ------------------------------------------- */

int ir_rs_routing_init(ir_relay_core *core);
void ir_rs_routing_free(ir_relay_core *core);
/* c authenticated as c->key: it becomes the active connection of its id. -1: no memory. */
int ir_rs_register(ir_relay_core *core, ir_relay_conn *c, uint64_t now);
void ir_rs_unregister(ir_relay_core *core, ir_relay_conn *c, uint64_t now);
/* A datagram frame (0x04, 0x05) from c, to its recipient's queue or dropped. */
void ir_rs_forward(ir_relay_core *core, ir_relay_conn *c, const ir_relay_frame *f, uint64_t now);

/* ---- server_output.c: output queues --------------------------------------------------- */

static inline out_frame *ir_rs_frame_new(size_t len)
{
    out_frame *f = malloc(sizeof *f + len);
    if (f) {
        f->next = NULL;
        f->len = len;
    }
    return f;
}
void ir_rs_q_free(out_queue *q);
/* Queues f (OUT_CTL or OUT_DGRAM) and starts the write timer if the queues were empty. */
void ir_rs_enqueue(ir_relay_core *core, ir_relay_conn *c, out_frame *f, int kind, uint64_t now);
int ir_rs_send_raw(ir_relay_core *core, ir_relay_conn *c, const void *data, size_t len,
                   uint64_t now);
int ir_rs_send_ws(ir_relay_core *core, ir_relay_conn *c, uint8_t opcode, const uint8_t *payload,
                  size_t len, uint64_t now);
int ir_rs_send_frame(ir_relay_core *core, ir_relay_conn *c, const ir_relay_frame *rf,
                     uint64_t now);
void ir_rs_send_status(ir_relay_core *core, ir_relay_conn *c, uint8_t status, uint64_t now);

static inline int has_output(const ir_relay_conn *c)
{
    return c->cur || c->ctl.head || c->dg.head;
}

static inline int ctl_full(const ir_relay_core *core, const ir_relay_conn *c)
{
    return c->ctl.n >= core->cfg.queue_control;
}

/* server_http.c: the "x-iroh-response: response CHALLENGE\r\n" header line answering a
 * well-formed X-Iroh-Challenge (1..63 of [A-Za-z0-9._-]) of a /generate_204 request, into
 * out; its length, or 0 (out "") when there is no such challenge or cap (>= 128) is short. */
size_t ir_rs_challenge_response(const ir_http_request *req, char *out, size_t cap);

/* ---- server_ratelimit.c: the receive rate limiter --------------------------------------- */

int ir_rs_rl_applies(const ir_relay_conn *c);
int ir_rs_rl_holding(const ir_relay_conn *c);
void ir_rs_rl_start(ir_relay_core *core, ir_relay_conn *c, uint64_t now);
int ir_rs_rl_take(ir_relay_core *core, ir_relay_conn *c, size_t len, uint64_t now);
void ir_rs_rl_timer(ir_relay_core *core, ir_relay_conn *c, uint64_t now);

/* ---- server_relay.c and server_http.c: input by state ---------------------------------- */

void ir_rs_ws_input(ir_relay_core *core, ir_relay_conn *c, uint8_t *data, size_t len,
                    uint64_t now);
void ir_rs_authorized(ir_relay_core *core, ir_relay_conn *c, uint64_t now);
void ir_rs_send_ping(ir_relay_core *core, ir_relay_conn *c, uint64_t now);
void ir_rs_http_input(ir_relay_core *core, ir_relay_conn *c, const uint8_t *data, size_t len,
                      uint64_t now);

#endif
