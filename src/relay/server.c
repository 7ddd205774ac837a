/* The relay server: a sans-IO core (connections as state machines, routing between them)
 * and a thin epoll shell. See server.h and spec relay.md. */
#include "server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "base/log.h"
#include "base/util.h"
#include "frame.h"
#include "net/netaddr.h"
#include "handshake.h"
#include "http.h"
#include "ws.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
/* Largest WebSocket message taken from a client: a relay frame (a type varint of up to 8
 * bytes and a body of up to 65536) - a longer one is a protocol error either way, so
 * there is no point in buffering up to the 1 MiB WebSocket limit first. */
#define WS_MAX_MESSAGE (IR_RELAY_MAX_PACKET_SIZE + 8)
#define NPOS ((size_t)-1)

void ir_relay_server_config_init(ir_relay_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = IR_RELAY_DEFAULT_LISTEN;
    cfg->header_timeout_ms = 5000;
    cfg->keepalive_idle_ms = 30000;
    cfg->handshake_timeout_ms = 30000;
    cfg->write_timeout_ms = 2000;
    cfg->ping_interval_ms = 15000;
    cfg->pong_timeout_ms = 5000;
    cfg->linger_ms = 2000;
    cfg->queue_datagrams = 512;
    cfg->queue_control = 512;
    cfg->queue_bytes = 4u << 20;
    cfg->max_connections = 100000;
}

/* ======================================================================================
 * The core
 * ====================================================================================== */

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

/* The rate limiter's refill period (spec 3.5: upstream refills every 100 ms). */
#define RL_TICK (100 * NS_PER_MS)

/* The set of EndpointIds an endpoint sent datagrams to (for EndpointGone). */
typedef struct id_set {
    uint8_t (*keys)[32];
    uint8_t *used;
    size_t n, cap;
} id_set;

/* The connections of one EndpointId. */
typedef struct ep_entry {
    iroh_endpoint_id id;
    uint64_t hash;
    struct ep_entry *hnext;
    ir_relay_conn *active;
    ir_relay_conn *inactive; /* most recent first, through inactive_next */
    id_set sent_to;
} ep_entry;

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
    gnutls_session_t tls;   /* HTTPS: the TLS session over fd */
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


static uint64_t prng_next(ir_relay_core *core)
{
    uint64_t z = (core->prng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t ms(uint32_t v)
{
    return (uint64_t)v * NS_PER_MS;
}

int ir_relay_core_new(const ir_relay_server_config *cfg, ir_relay_random_fn rnd, void *rnd_ctx,
                      ir_relay_core **out)
{
    *out = NULL;
    ir_relay_core *core = calloc(1, sizeof *core);
    if (!core)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    ir_relay_server_config_init(&core->cfg);
    if (cfg) {
        core->cfg = *cfg;
        ir_relay_server_config d;
        ir_relay_server_config_init(&d);
#define DEFAULT(f) if (!core->cfg.f) core->cfg.f = d.f
        DEFAULT(header_timeout_ms);
        DEFAULT(keepalive_idle_ms);
        DEFAULT(handshake_timeout_ms);
        DEFAULT(write_timeout_ms);
        DEFAULT(ping_interval_ms);
        DEFAULT(pong_timeout_ms);
        DEFAULT(linger_ms);
        DEFAULT(queue_datagrams);
        DEFAULT(queue_control);
        DEFAULT(queue_bytes);
        DEFAULT(max_connections);
#undef DEFAULT
    }
    core->header_timeout = ms(core->cfg.header_timeout_ms);
    core->keepalive_idle = ms(core->cfg.keepalive_idle_ms);
    core->hs_timeout = ms(core->cfg.handshake_timeout_ms);
    core->write_timeout = ms(core->cfg.write_timeout_ms);
    core->ping_interval = ms(core->cfg.ping_interval_ms);
    core->pong_timeout = ms(core->cfg.pong_timeout_ms);
    core->linger = ms(core->cfg.linger_ms);
    core->rl_rate = core->cfg.rx_bytes_per_second;
    core->rl_burst = core->cfg.rx_max_burst_bytes ? core->cfg.rx_max_burst_bytes : core->rl_rate / 10;
    if (core->rl_rate && !core->rl_burst)
        core->rl_burst = 1;
    core->rnd = rnd ? rnd : ir_random_bytes;
    core->rnd_ctx = rnd_ctx;
    uint64_t seed[3];
    core->rnd(core->rnd_ctx, (uint8_t *)seed, sizeof seed);
    core->prng = seed[0];
    core->hash_k0 = seed[1];
    core->hash_k1 = seed[2];
    ir_relay_keycache_init(&core->keys);
    core->nbuckets = 64;
    core->buckets = calloc(core->nbuckets, sizeof *core->buckets);
    if (!core->buckets) {
        free(core);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    *out = core;
    return IROH_OK;
}

/* ---- change list and timers -------------------------------------------------------------- */

static void mark_changed(ir_relay_core *core, ir_relay_conn *c)
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

ir_relay_conn *ir_relay_core_next_changed(ir_relay_core *core)
{
    ir_relay_conn *c = core->changed_head;
    if (!c)
        return NULL;
    core->changed_head = c->changed_next;
    if (!core->changed_head)
        core->changed_tail = NULL;
    c->changed = 0;
    c->changed_next = NULL;
    return c;
}

static void heap_set(ir_relay_core *core, size_t i, ir_relay_conn *c)
{
    core->heap[i] = c;
    c->heap_idx = i;
}

static void heap_up(ir_relay_core *core, size_t i)
{
    ir_relay_conn *c = core->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (core->heap[parent]->deadline <= c->deadline)
            break;
        heap_set(core, i, core->heap[parent]);
        i = parent;
    }
    heap_set(core, i, c);
}

static void heap_down(ir_relay_core *core, size_t i)
{
    ir_relay_conn *c = core->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        uint64_t md = c->deadline;
        if (l < core->heap_n && core->heap[l]->deadline < md) {
            m = l;
            md = core->heap[l]->deadline;
        }
        if (r < core->heap_n && core->heap[r]->deadline < md)
            m = r;
        if (m == i)
            break;
        heap_set(core, i, core->heap[m]);
        i = m;
    }
    heap_set(core, i, c);
}

static void heap_remove(ir_relay_core *core, ir_relay_conn *c)
{
    size_t i = c->heap_idx;
    if (i == NPOS)
        return;
    c->heap_idx = NPOS;
    ir_relay_conn *last = core->heap[--core->heap_n];
    if (i == core->heap_n)
        return;
    heap_set(core, i, last);
    heap_up(core, i);
    heap_down(core, last->heap_idx);
}

/* Recomputes c's deadline from its timers and places it in the heap (whose capacity was
 * reserved when the connection was accepted). */
static void reschedule(ir_relay_core *core, ir_relay_conn *c)
{
    uint64_t d = 0;
    for (int i = 0; i < T_COUNT; i++)
        if (c->t[i] && (!d || c->t[i] < d))
            d = c->t[i];
    if (!d) {
        heap_remove(core, c);
        c->deadline = 0;
        return;
    }
    if (c->heap_idx == NPOS) {
        c->deadline = d;
        heap_set(core, core->heap_n++, c);
        heap_up(core, c->heap_idx);
    } else if (d != c->deadline) {
        uint64_t old = c->deadline;
        c->deadline = d;
        if (d < old)
            heap_up(core, c->heap_idx);
        else
            heap_down(core, c->heap_idx);
    }
}

uint64_t ir_relay_core_next_timeout(const ir_relay_core *core)
{
    return core->heap_n ? core->heap[0]->deadline : 0;
}

/* ---- the EndpointId table ---------------------------------------------------------------- */

/* A keyed mix of the id (the keys are secret, so ids cannot be chosen to collide cheaply). */
static uint64_t id_hash(const ir_relay_core *core, const uint8_t k[32])
{
    uint64_t a, b, c;
    memcpy(&a, k, 8);
    memcpy(&b, k + 8, 8);
    memcpy(&c, k + 16, 8);
    uint64_t h = (a ^ core->hash_k0) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    h = (h ^ b ^ core->hash_k1) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    h = (h ^ c) * 0x94d049bb133111ebull;
    return h ^ (h >> 32);
}

static ep_entry *entry_find(const ir_relay_core *core, const uint8_t id[32])
{
    uint64_t h = id_hash(core, id);
    for (ep_entry *e = core->buckets[h & (core->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && memcmp(e->id.bytes, id, 32) == 0)
            return e;
    return NULL;
}

static void entry_grow(ir_relay_core *core)
{
    size_t nb = core->nbuckets * 2;
    ep_entry **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < core->nbuckets; i++) {
        ep_entry *e = core->buckets[i];
        while (e) {
            ep_entry *next = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    free(core->buckets);
    core->buckets = b;
    core->nbuckets = nb;
}

static ep_entry *entry_add(ir_relay_core *core, const iroh_endpoint_id *id)
{
    ep_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    if (core->nentries >= core->nbuckets)
        entry_grow(core);
    e->id = *id;
    e->hash = id_hash(core, id->bytes);
    size_t b = e->hash & (core->nbuckets - 1);
    e->hnext = core->buckets[b];
    core->buckets[b] = e;
    core->nentries++;
    return e;
}

static void entry_remove(ir_relay_core *core, ep_entry *e)
{
    ep_entry **p = &core->buckets[e->hash & (core->nbuckets - 1)];
    while (*p && *p != e)
        p = &(*p)->hnext;
    if (*p)
        *p = e->hnext;
    core->nentries--;
    free(e->sent_to.keys);
    free(e->sent_to.used);
    free(e);
}

static void id_set_add(const ir_relay_core *core, id_set *s, const uint8_t id[32])
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        uint8_t(*keys)[32] = malloc(cap * 32);
        uint8_t *used = calloc(cap, 1);
        if (!keys || !used) {
            free(keys);
            free(used);
            return; /* best effort, as upstream's notification */
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->used[i])
                continue;
            size_t j = id_hash(core, s->keys[i]) & (cap - 1);
            while (used[j])
                j = (j + 1) & (cap - 1);
            memcpy(keys[j], s->keys[i], 32);
            used[j] = 1;
        }
        free(s->keys);
        free(s->used);
        s->keys = keys;
        s->used = used;
        s->cap = cap;
    }
    size_t j = id_hash(core, id) & (s->cap - 1);
    while (s->used[j]) {
        if (memcmp(s->keys[j], id, 32) == 0)
            return;
        j = (j + 1) & (s->cap - 1);
    }
    memcpy(s->keys[j], id, 32);
    s->used[j] = 1;
    s->n++;
}

/* ---- output ---------------------------------------------------------------------------------- */

static out_frame *frame_new(size_t len)
{
    out_frame *f = malloc(sizeof *f + len);
    if (f) {
        f->next = NULL;
        f->len = len;
    }
    return f;
}

static void q_push(out_queue *q, out_frame *f)
{
    f->next = NULL;
    if (q->tail)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
    q->n++;
    q->bytes += f->len;
}

static out_frame *q_pop(out_queue *q)
{
    out_frame *f = q->head;
    if (!f)
        return NULL;
    q->head = f->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    q->bytes -= f->len;
    return f;
}

static void q_free(out_queue *q)
{
    out_frame *f;
    while ((f = q_pop(q)))
        free(f);
}

static int has_output(const ir_relay_conn *c)
{
    return c->cur || c->ctl.head || c->dg.head;
}

static void enqueue(ir_relay_core *core, ir_relay_conn *c, out_frame *f, int kind, uint64_t now)
{
    if (!has_output(c)) {
        c->t[T_WRITE] = now + core->write_timeout;
        reschedule(core, c);
    }
    q_push(kind == OUT_DGRAM ? &c->dg : &c->ctl, f);
    mark_changed(core, c);
}

static int ctl_full(const ir_relay_core *core, const ir_relay_conn *c)
{
    return c->ctl.n >= core->cfg.queue_control;
}

/* Queues raw bytes (an HTTP response) as a control frame. */
static int send_raw(ir_relay_core *core, ir_relay_conn *c, const void *data, size_t len,
                    uint64_t now)
{
    out_frame *f = frame_new(len);
    if (!f)
        return -1;
    memcpy(f->data, data, len);
    enqueue(core, c, f, OUT_CTL, now);
    return 0;
}

/* Queues one WebSocket message (server frames are not masked) on the control queue. */
static int send_ws(ir_relay_core *core, ir_relay_conn *c, uint8_t opcode, const uint8_t *payload,
                   size_t len, uint64_t now)
{
    if (ctl_full(core, c)) {
        core->st.control_dropped++;
        return -1;
    }
    size_t h = ir_ws_header_len(len, 0);
    out_frame *f = frame_new(h + len);
    if (!f)
        return -1;
    ir_ws_write_header(f->data, 1, opcode, len, NULL);
    if (len)
        memcpy(f->data + h, payload, len);
    enqueue(core, c, f, OUT_CTL, now);
    return 0;
}

/* Queues a relay frame (a binary message) on the control queue. */
static int send_frame(ir_relay_core *core, ir_relay_conn *c, const ir_relay_frame *rf, uint64_t now)
{
    if (ctl_full(core, c)) {
        core->st.control_dropped++;
        return -1;
    }
    size_t n = ir_relay_frame_encoded_len(rf);
    size_t h = ir_ws_header_len(n, 0);
    out_frame *f = frame_new(h + n);
    if (!f)
        return -1;
    ir_ws_write_header(f->data, 1, IR_WS_OP_BINARY, n, NULL);
    size_t w;
    if (ir_relay_frame_encode(rf, f->data + h, n, &w) != IROH_OK) {
        free(f);
        return -1;
    }
    enqueue(core, c, f, OUT_CTL, now);
    return 0;
}

/* Status (v2) or the same news as Health text (v1), never the other way round. */
static void send_status(ir_relay_core *core, ir_relay_conn *c, uint8_t status, uint64_t now)
{
    ir_relay_frame f;
    memset(&f, 0, sizeof f);
    if (c->version == IR_RELAY_V2) {
        f.type = IR_RELAY_FT_STATUS;
        f.u.status = status;
    } else {
        f.type = IR_RELAY_FT_HEALTH;
        f.u.text.text = ir_relay_status_text(status);
        f.u.text.len = strlen(f.u.text.text);
    }
    send_frame(core, c, &f, now);
}

size_t ir_relay_conn_output(const ir_relay_conn *c, struct iovec *iov, size_t max)
{
    size_t n = 0;
    if (c->state == CS_CLOSED)
        return 0;
    if (c->cur && n < max) {
        iov[n].iov_base = (void *)(c->cur->data + c->cur_off);
        iov[n].iov_len = c->cur->len - c->cur_off;
        n++;
    }
    for (const out_frame *f = c->ctl.head; f && n < max; f = f->next, n++) {
        iov[n].iov_base = (void *)f->data;
        iov[n].iov_len = f->len;
    }
    for (const out_frame *f = c->dg.head; f && n < max; f = f->next, n++) {
        iov[n].iov_base = (void *)f->data;
        iov[n].iov_len = f->len;
    }
    return n;
}

/* ---- connection lifecycle ----------------------------------------------------------------- */

static void unregister(ir_relay_core *core, ir_relay_conn *c, uint64_t now);
static void start_linger(ir_relay_core *core, ir_relay_conn *c, uint64_t now);

ir_relay_conn *ir_relay_core_accept(ir_relay_core *core, uint64_t now)
{
    core->now = now;
    if (core->heap_cap < core->nconns + 1) {
        size_t cap = core->heap_cap ? core->heap_cap * 2 : 64;
        ir_relay_conn **h = realloc(core->heap, cap * sizeof *h);
        if (!h)
            return NULL;
        core->heap = h;
        core->heap_cap = cap;
    }
    ir_relay_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->conn_id = ++core->next_conn_id;
    c->state = CS_HTTP;
    c->heap_idx = NPOS;
    c->fd = -1;
    c->ctl_limit = core->cfg.queue_control;
    c->http_started = 1;
    c->request_at = now;
    c->t[T_HEAD] = now + core->header_timeout;
    c->all_next = core->all;
    if (core->all)
        core->all->all_prev = c;
    core->all = c;
    core->nconns++;
    core->st.accepts++;
    reschedule(core, c);
    mark_changed(core, c);
    return c;
}

static void free_io_state(ir_relay_conn *c)
{
    free(c->cur);
    c->cur = NULL;
    q_free(&c->ctl);
    q_free(&c->dg);
    free(c->http);
    c->http = NULL;
    if (c->ws_init) {
        ir_ws_parser_free(&c->ws);
        c->ws_init = 0;
    }
    free(c->token);
    c->token = NULL;
}

static void conn_close(ir_relay_core *core, ir_relay_conn *c, uint64_t now, const char *why)
{
    if (c->state == CS_CLOSED)
        return;
    IR_LOG(IR_LOG_DEBUG, "relay: connection %llu closed: %s", (unsigned long long)c->conn_id, why);
    if (c->entry)
        unregister(core, c, now);
    c->state = CS_CLOSED;
    memset(c->t, 0, sizeof c->t);
    heap_remove(core, c);
    c->deadline = 0;
    free_io_state(c);
    mark_changed(core, c);
}

/* Ends the connection gracefully: what is queued is written, then the write side is shut
 * down and the peer gets a moment to close first (so that a response is not lost to a
 * reset). Input is ignored from now on. */
static void conn_finish(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    if (c->state >= CS_CLOSING)
        return;
    if (c->entry)
        unregister(core, c, now);
    c->state = CS_CLOSING;
    uint64_t w = c->t[T_WRITE];
    memset(c->t, 0, sizeof c->t);
    c->t[T_WRITE] = w;
    free(c->http);
    c->http = NULL;
    if (c->ws_init) {
        ir_ws_parser_free(&c->ws);
        c->ws_init = 0;
    }
    if (!has_output(c))
        start_linger(core, c, now);
    reschedule(core, c);
    mark_changed(core, c);
}

static void start_linger(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    if (c->eof) {
        conn_close(core, c, now, "finished");
        return;
    }
    c->state = CS_LINGER;
    c->shutdown_wr = 1;
    c->t[T_WRITE] = 0;
    c->t[T_LINGER] = now + core->linger;
    reschedule(core, c);
    mark_changed(core, c);
}

void ir_relay_core_sent(ir_relay_core *core, ir_relay_conn *c, size_t n, uint64_t now)
{
    core->now = now;
    int completed = 0;
    core->st.bytes_sent += n;
    while (n > 0) {
        if (!c->cur) {
            c->cur = q_pop(&c->ctl);
            if (!c->cur)
                c->cur = q_pop(&c->dg);
            c->cur_off = 0;
            if (!c->cur)
                break;
        }
        size_t left = c->cur->len - c->cur_off;
        size_t take = n < left ? n : left;
        c->cur_off += take;
        n -= take;
        if (c->cur_off == c->cur->len) {
            free(c->cur);
            c->cur = NULL;
            completed = 1;
        }
    }
    if (!has_output(c)) {
        c->t[T_WRITE] = 0;
        if (c->state == CS_CLOSING) {
            start_linger(core, c, now);
            return;
        }
    } else if (completed) {
        c->t[T_WRITE] = now + core->write_timeout;
    }
    reschedule(core, c);
    mark_changed(core, c);
}

/* ---- the receive rate limiter (spec 3.5) ------------------------------------------------ */

/* The limit applies to the upgraded stream (WebSocket frames), as upstream's. */
static int rl_applies(const ir_relay_conn *c)
{
    return c->rl_on && (c->state == CS_AUTH || c->state == CS_RELAY);
}

static int rl_holding(const ir_relay_conn *c)
{
    return rl_applies(c) && c->rl_tokens <= 0;
}

static void rl_start(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    if (!core->rl_rate)
        return;
    c->rl_on = 1;
    c->rl_tokens = (int64_t)core->rl_burst;
    c->rl_tick_at = now;
}

/* Adds the tokens of the ticks since the last one, up to the bucket's size. */
static void rl_refill(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    if (now < c->rl_tick_at + RL_TICK)
        return;
    uint64_t ticks = (now - c->rl_tick_at) / RL_TICK;
    c->rl_tick_at += ticks * RL_TICK;
    if (c->rl_tokens > 0)
        c->rl_held = 0; /* the bucket lasted a whole period: not held back any more */
    if (ticks > 1000)
        ticks = 1000; /* 100 s: more than any bucket holds */
    uint64_t add = core->rl_rate * ticks / 10;
    if (!add)
        add = ticks;
    int64_t t = c->rl_tokens + (int64_t)add;
    if (t > (int64_t)core->rl_burst)
        t = (int64_t)core->rl_burst;
    c->rl_tokens = t;
}

/* len bytes are about to be read; 1 if this empties the bucket (the client is held back). */
static int rl_take(ir_relay_core *core, ir_relay_conn *c, size_t len, uint64_t now)
{
    rl_refill(core, c, now);
    if (c->rl_held)
        core->st.bytes_rx_ratelimited += len;
    c->rl_tokens -= len > INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)len;
    if (c->rl_tokens > 0)
        return 0;
    c->rl_held = 1;
    if (!c->rl_counted) {
        c->rl_counted = 1;
        core->st.conns_rx_ratelimited++;
    }
    c->t[T_RATE] = c->rl_tick_at + RL_TICK;
    return 1;
}

/* The refill timer of a held-back client. */
static void rl_timer(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    rl_refill(core, c, now);
    if (c->rl_tokens > 0) {
        c->t[T_RATE] = 0;
        mark_changed(core, c); /* readable again */
    } else {
        c->t[T_RATE] = c->rl_tick_at + RL_TICK;
    }
}

size_t ir_relay_conn_read_max(const ir_relay_conn *c)
{
    if (!rl_applies(c))
        return SIZE_MAX;
    return c->rl_tokens > 0 ? (size_t)c->rl_tokens : 0;
}

unsigned ir_relay_conn_status(const ir_relay_conn *c)
{
    if (c->state == CS_CLOSED)
        return IR_RELAY_CLOSED;
    unsigned s = 0;
    /* backpressure: a client that does not read its pongs (or HTTP responses) is not read,
     * nor one over its rate limit */
    if (!c->eof && (c->state >= CS_CLOSING || (c->ctl.n < c->ctl_limit && !rl_holding(c))))
        s |= IR_RELAY_WANT_READ;
    if (has_output(c))
        s |= IR_RELAY_WANT_WRITE;
    if (c->shutdown_wr)
        s |= IR_RELAY_WANT_SHUTDOWN;
    return s;
}

void ir_relay_core_abort(ir_relay_core *core, ir_relay_conn *c, const char *why, uint64_t now)
{
    core->now = now;
    conn_close(core, c, now, why);
}

void ir_relay_core_eof(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    core->now = now;
    if (c->state == CS_CLOSED)
        return;
    c->eof = 1;
    if (c->state == CS_LINGER) {
        conn_close(core, c, now, "closed by the peer");
    } else if ((c->state == CS_HTTP && has_output(c)) || c->state == CS_CLOSING) {
        /* a client that half-closed after its request still gets the response */
        conn_finish(core, c, now);
        mark_changed(core, c);
    } else {
        conn_close(core, c, now, "closed by the peer");
    }
}

void ir_relay_core_release(ir_relay_core *core, ir_relay_conn *c)
{
    if (c->state != CS_CLOSED)
        conn_close(core, c, core->now, "released");
    if (c->changed) {
        /* unlink from the change list */
        ir_relay_conn **p = &core->changed_head, *prev = NULL;
        while (*p && *p != c) {
            prev = *p;
            p = &(*p)->changed_next;
        }
        if (*p) {
            *p = c->changed_next;
            if (core->changed_tail == c)
                core->changed_tail = prev;
        }
    }
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        core->all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    core->nconns--;
    free(c);
}

void ir_relay_core_close_all(ir_relay_core *core, uint64_t now)
{
    core->now = now;
    for (ir_relay_conn *c = core->all; c; c = c->all_next)
        conn_close(core, c, now, "server shutting down");
}

void ir_relay_core_free(ir_relay_core *core)
{
    if (!core)
        return;
    ir_relay_conn *c = core->all;
    while (c) {
        ir_relay_conn *next = c->all_next;
        free_io_state(c);
        free(c);
        c = next;
    }
    for (size_t i = 0; i < core->nbuckets; i++) {
        ep_entry *e = core->buckets[i];
        while (e) {
            ep_entry *next = e->hnext;
            free(e->sent_to.keys);
            free(e->sent_to.used);
            free(e);
            e = next;
        }
    }
    free(core->buckets);
    free(core->heap);
    free(core);
}

void ir_relay_conn_set_user(ir_relay_conn *c, void *user)
{
    c->user = user;
}

void *ir_relay_conn_user(const ir_relay_conn *c)
{
    return c->user;
}

void ir_relay_conn_set_exporter(ir_relay_conn *c, ir_relay_export_fn fn, void *ctx)
{
    c->exporter = fn;
    c->exporter_ctx = ctx;
}

void ir_relay_core_stats(const ir_relay_core *core, ir_relay_server_stats *out)
{
    *out = core->st;
    out->conns = core->nconns;
}

/* ---- registration and routing (server/clients.rs) ------------------------------------------ */

static int register_conn(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    ep_entry *e = entry_find(core, c->key.bytes);
    if (!e) {
        e = entry_add(core, &c->key);
        if (!e)
            return -1;
    } else if (e->active) {
        /* the newest connection of an EndpointId gets the traffic; the old one stays
         * open, inactive, and is told so */
        ir_relay_conn *old = e->active;
        send_status(core, old, IR_RELAY_STATUS_SAME_ENDPOINT_ID_CONNECTED, now);
        old->inactive_next = e->inactive;
        e->inactive = old;
        core->st.clients_inactive++;
        core->st.clients_replaced++;
    }
    e->active = c;
    c->entry = e;
    core->st.clients++;
    return 0;
}

static void notify_gone(ir_relay_core *core, ep_entry *e, uint64_t now)
{
    ir_relay_frame f;
    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_ENDPOINT_GONE;
    f.u.endpoint_gone = e->id;
    for (size_t i = 0; i < e->sent_to.cap; i++) {
        if (!e->sent_to.used[i])
            continue;
        ep_entry *p = entry_find(core, e->sent_to.keys[i]);
        if (!p || p == e || !p->active)
            continue;
        if (send_frame(core, p->active, &f, now) == 0)
            core->st.endpoint_gone_sent++;
    }
}

static void unregister(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    ep_entry *e = c->entry;
    c->entry = NULL;
    core->st.clients--;
    core->st.disconnects++;
    if (e->active == c) {
        if (e->inactive) {
            ir_relay_conn *p = e->inactive;
            e->inactive = p->inactive_next;
            p->inactive_next = NULL;
            e->active = p;
            core->st.clients_inactive--;
            core->st.clients_inactive_removed++;
            send_status(core, p, IR_RELAY_STATUS_HEALTHY, now);
        } else {
            e->active = NULL;
            notify_gone(core, e, now);
            entry_remove(core, e);
        }
    } else {
        ir_relay_conn **p = &e->inactive;
        while (*p && *p != c)
            p = &(*p)->inactive_next;
        if (*p) {
            *p = c->inactive_next;
            core->st.clients_inactive--;
            core->st.clients_inactive_removed++;
        }
        c->inactive_next = NULL;
    }
}

/* A 0x04/0x05 frame from c: forwarded as 0x06/0x07 with the source id, or dropped. */
static void forward(ir_relay_core *core, ir_relay_conn *c, const ir_relay_frame *f, uint64_t now)
{
    const ir_relay_datagrams *d = &f->u.dgram.d;
    core->st.frames_recv++;
    core->st.dgram_bytes_recv += d->len;
    size_t hl = ir_relay_dgram_header_len(d->segment_size);
    if (d->len == 0 || hl + d->len > IR_RELAY_MAX_PACKET_SIZE) {
        /* upstream would forward these and break the recipient's connection (spec 3.1) */
        core->st.dropped_invalid++;
        return;
    }
    ep_entry *e = entry_find(core, f->u.dgram.id.bytes);
    if (!e || !e->active) {
        core->st.dropped_absent++;
        return;
    }
    ir_relay_conn *r = e->active;
    size_t body = hl + d->len;
    size_t wh = ir_ws_header_len(body, 0);
    if (r->dg.n >= core->cfg.queue_datagrams || r->dg.bytes + wh + body > core->cfg.queue_bytes) {
        core->st.dropped_full++;
        return;
    }
    out_frame *of = frame_new(wh + body);
    if (!of) {
        core->st.dropped_full++;
        return;
    }
    ir_ws_write_header(of->data, 1, IR_WS_OP_BINARY, body, NULL);
    ir_relay_dgram_header_write(of->data + wh, 0, &c->key, d->ecn, d->segment_size);
    memcpy(of->data + wh + hl, d->contents, d->len);
    enqueue(core, r, of, OUT_DGRAM, now);
    core->st.frames_relayed++;
    core->st.bytes_relayed += d->len;
    id_set_add(core, &c->entry->sent_to, f->u.dgram.id.bytes);
}

/* ---- keepalive -------------------------------------------------------------------------------- */

static void schedule_ping(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    /* 15 s plus 1..5 s of jitter, so that pings of many clients do not bunch up */
    c->ping_period = core->ping_interval + NS_PER_S + prng_next(core) % (4 * NS_PER_S + 1);
    c->t[T_PING] = now + c->ping_period;
}

static void send_ping(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    ir_relay_frame f;
    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_PING;
    uint64_t r = prng_next(core);
    memcpy(f.u.ping, &r, 8);
    memcpy(c->ping_data, f.u.ping, 8);
    uint64_t timeout = core->pong_timeout;
    if (c->rtt) {
        uint64_t lo = 500 * NS_PER_MS < timeout ? 500 * NS_PER_MS : timeout;
        uint64_t t3 = c->rtt > UINT64_MAX / 3 ? UINT64_MAX : 3 * c->rtt;
        timeout = t3 < lo ? lo : t3 > timeout ? timeout : t3;
    }
    if (send_frame(core, c, &f, now) == 0) {
        /* (a ping dropped on a full control queue is not waited for; a client that does
         * not read is cut off by the write timeout instead) */
        core->st.pings_sent++;
        c->ping_out = 1;
        c->ping_sent_at = now;
        c->t[T_PONG] = now + timeout;
    }
    schedule_ping(core, c, now);
}

/* ---- the handshake ----------------------------------------------------------------------------- */

static void deny(ir_relay_core *core, ir_relay_conn *c, const char *reason, uint64_t now)
{
    ir_relay_frame f;
    ir_relay_deny_frame(reason, &f);
    send_frame(core, c, &f, now);
    core->st.handshake_failures++;
    conn_finish(core, c, now);
}

/* The client proved its key: access control, then ServerConfirmsAuth and registration. */
static void authorized(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    if (core->cfg.access) {
        const char *reason = NULL;
        if (!core->cfg.access(core->cfg.access_ctx, &c->key, c->version, c->token, c->token_len,
                              &reason)) {
            deny(core, c, reason, now);
            return;
        }
    }
    free(c->token);
    c->token = NULL;
    ir_relay_frame f;
    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_SERVER_CONFIRMS_AUTH;
    if (send_frame(core, c, &f, now) < 0 || register_conn(core, c, now) < 0) {
        conn_close(core, c, now, "out of memory");
        return;
    }
    c->state = CS_RELAY;
    c->t[T_HANDSHAKE] = 0;
    schedule_ping(core, c, now);
    core->st.handshakes++;
    char hex[IROH_ID_HEX_LEN];
    if (ir_log_enabled(IR_LOG_DEBUG)) {
        iroh_endpoint_id_to_hex(&c->key, hex, sizeof hex);
        IR_LOG(IR_LOG_DEBUG, "relay: connection %llu registered as %s (v%d)",
               (unsigned long long)c->conn_id, hex, c->version);
    }
}

static void auth_message(ir_relay_core *core, ir_relay_conn *c, const uint8_t *data, size_t len,
                         uint64_t now)
{
    ir_relay_frame f;
    if (ir_relay_frame_decode(data, len, IR_RELAY_HS_FROM_CLIENT, &core->keys, &f) != IROH_OK) {
        /* wrong type, undecodable body, invalid key: close without a deny frame */
        core->st.handshake_failures++;
        conn_close(core, c, now, iroh_last_error());
        return;
    }
    if (ir_relay_client_auth_verify(&f, c->challenge) != IROH_OK) {
        deny(core, c, IR_RELAY_DENY_SIGNATURE, now);
        return;
    }
    c->key = f.u.client_auth.key;
    authorized(core, c, now);
}

/* ---- the relay protocol ------------------------------------------------------------------------ */

static void relay_message(ir_relay_core *core, ir_relay_conn *c, const uint8_t *data, size_t len,
                          uint64_t now)
{
    ir_relay_frame f;
    if (ir_relay_frame_decode(data, len, IR_RELAY_FROM_CLIENT, &core->keys, &f) != IROH_OK) {
        core->st.protocol_errors++;
        conn_close(core, c, now, iroh_last_error());
        return;
    }
    /* any frame from the client restarts the ping timer */
    c->t[T_PING] = now + c->ping_period;
    switch (f.type) {
    case IR_RELAY_FT_C2R_DATAGRAM:
    case IR_RELAY_FT_C2R_DATAGRAM_BATCH:
        forward(core, c, &f, now);
        break;
    case IR_RELAY_FT_PING:
        core->st.pings_recv++;
        f.type = IR_RELAY_FT_PONG;
        if (send_frame(core, c, &f, now) == 0)
            core->st.pongs_sent++;
        break;
    case IR_RELAY_FT_PONG:
        if (c->ping_out && memcmp(f.u.ping, c->ping_data, 8) == 0) {
            c->rtt = now - c->ping_sent_at;
            if (!c->rtt)
                c->rtt = 1;
            c->ping_out = 0;
            c->t[T_PONG] = 0;
            core->st.pongs_recv++;
        }
        break;
    }
}

static void ws_input(ir_relay_core *core, ir_relay_conn *c, uint8_t *data, size_t len, uint64_t now)
{
    size_t off = 0;
    while (off < len && (c->state == CS_AUTH || c->state == CS_RELAY)) {
        size_t used;
        ir_ws_message m;
        int rc = ir_ws_parser_feed(&c->ws, data + off, len - off, &used, &m);
        off += used;
        if (rc < 0) {
            core->st.protocol_errors++;
            if (c->state == CS_AUTH)
                core->st.handshake_failures++;
            conn_close(core, c, now, iroh_last_error());
            return;
        }
        if (rc == 0)
            break;
        switch (m.opcode) {
        case IR_WS_OP_BINARY:
            if (c->state == CS_AUTH)
                auth_message(core, c, m.data, m.len, now);
            else
                relay_message(core, c, m.data, m.len, now);
            break;
        case IR_WS_OP_TEXT:
            IR_LOG(IR_LOG_DEBUG, "relay: connection %llu: text message ignored",
                   (unsigned long long)c->conn_id);
            break;
        case IR_WS_OP_PING:
            send_ws(core, c, IR_WS_OP_PONG, m.data, m.len, now);
            break;
        case IR_WS_OP_PONG:
            break;
        case IR_WS_OP_CLOSE: {
            /* answer the close (echoing its code) and end the connection */
            uint8_t pl[2] = {(uint8_t)(m.close_code >> 8), (uint8_t)m.close_code};
            send_ws(core, c, IR_WS_OP_CLOSE, pl, m.close_code ? 2 : 0, now);
            conn_finish(core, c, now);
            return;
        }
        }
    }
}

/* ---- HTTP ---------------------------------------------------------------------------------------- */

static const char INDEX_HTML[] = "<html><body>\n<h1>Iroh Relay</h1>\n<p>\n  This is an <a "
                                 "href=\"https://iroh.computer/\">Iroh</a> Relay server.\n</p>\n";
static const char ROBOTS_TXT[] = "User-agent: *\nDisallow: /\n";

/* Queues a whole response. extra: more header lines, each ending in CRLF (or NULL). */
static void respond(ir_relay_core *core, ir_relay_conn *c, int status, const char *phrase,
                    const char *extra, const char *ctype, const char *body, size_t body_len,
                    int head_only, int keep_alive, uint64_t now)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\n"
                     "strict-transport-security: " IR_RELAY_HSTS "\r\n"
                     "content-security-policy: " IR_RELAY_CSP "\r\n"
                     "%s%s%s%s",
                     status, phrase, extra ? extra : "", ctype ? "content-type: " : "",
                     ctype ? ctype : "", ctype ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof buf)
        goto fail;
    if (status != 204 && status != 304) {
        int m = snprintf(buf + n, sizeof buf - (size_t)n, "content-length: %zu\r\n", body_len);
        if (m < 0 || (size_t)m >= sizeof buf - (size_t)n)
            goto fail;
        n += m;
    }
    int m = snprintf(buf + n, sizeof buf - (size_t)n, "%s\r\n", keep_alive ? "" : "connection: close\r\n");
    if (m < 0 || (size_t)m >= sizeof buf - (size_t)n)
        goto fail;
    n += m;
    if (!head_only && body_len) {
        if (body_len > sizeof buf - (size_t)n)
            goto fail;
        memcpy(buf + n, body, body_len);
        n += (int)body_len;
    }
    if (send_raw(core, c, buf, (size_t)n, now) == 0)
        return;
fail:
    conn_close(core, c, now, "cannot build a response");
}

static int is_challenge_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '-' || ch == '_';
}

static int path_is(const ir_http_request *req, const char *p)
{
    return req->path_len == strlen(p) && memcmp(req->path, p, req->path_len) == 0;
}

/* 1 if a comma-separated header value lists the token (ASCII case-insensitive). */
static int has_token(const ir_http_header *h, const char *tok)
{
    size_t tl = strlen(tok);
    const char *s = h->value, *end = h->value + h->value_len;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *e = comma ? comma : end;
        const char *a = s, *b = e;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if ((size_t)(b - a) == tl && strncasecmp(a, tok, tl) == 0)
            return 1;
        s = e + 1;
    }
    return 0;
}

/* The refused upgrade: 400 with upstream's text (or a 404 routed elsewhere). */
static void reject_upgrade(ir_relay_core *core, ir_relay_conn *c, const ir_ws_upgrade *u, uint64_t now)
{
    char buf[1024];
    size_t n;
    core->st.upgrades_refused++;
    if (ir_ws_build_reject(u, buf, sizeof buf, &n) != IROH_OK || send_raw(core, c, buf, n, now) < 0) {
        conn_close(core, c, now, "cannot build a response");
        return;
    }
    conn_finish(core, c, now);
}

static void upgrade(ir_relay_core *core, ir_relay_conn *c, const ir_ws_upgrade *u, size_t leftover,
                    uint64_t now)
{
    if (leftover) {
        /* the client talked before it saw the 101 (spec 1.3) */
        ir_ws_upgrade bad = *u;
        bad.status = 400;
        bad.send_version = 0;
        snprintf(bad.error, sizeof bad.error, "unexpected bytes before the handshake");
        reject_upgrade(core, c, &bad, now);
        return;
    }
    int km_ok = 0;
    ir_relay_km_auth km;
    if (u->client_auth) {
        /* spec 2.3: undecodable drops the connection; a decodable one is checked against
         * the TLS exporter when there is one, else the challenge is used */
        if (ir_relay_km_auth_decode(u->client_auth->value, u->client_auth->value_len, &km) != IROH_OK) {
            core->st.handshake_failures++;
            conn_close(core, c, now, "undecodable client auth header");
            return;
        }
        uint8_t material[IR_RELAY_EXPORT_LEN];
        if (c->exporter && c->exporter(c->exporter_ctx, km.key.bytes, material) == 0 &&
            ir_relay_km_auth_verify(&km, material) == IROH_OK)
            km_ok = 1;
    }
    if (core->cfg.access && u->authorization) {
        const ir_http_header *a = u->authorization;
        if (a->value_len > 7 && strncasecmp(a->value, "Bearer ", 7) == 0) {
            c->token = malloc(a->value_len - 7 + 1);
            if (c->token) {
                c->token_len = a->value_len - 7;
                memcpy(c->token, a->value + 7, c->token_len);
                c->token[c->token_len] = 0;
            }
        }
    }
    char buf[1024];
    size_t n;
    if (ir_ws_build_response_101(u, buf, sizeof buf - 32, &n) != IROH_OK) {
        conn_close(core, c, now, "cannot build the 101");
        return;
    }
    c->version = u->version;
    if (!km_ok) {
        ir_relay_frame f;
        core->rnd(core->rnd_ctx, c->challenge, sizeof c->challenge);
        ir_relay_challenge_frame(c->challenge, &f);
        size_t fl = ir_relay_frame_encoded_len(&f), w;
        n += ir_ws_write_header((uint8_t *)buf + n, 1, IR_WS_OP_BINARY, fl, NULL);
        ir_relay_frame_encode(&f, (uint8_t *)buf + n, fl, &w);
        n += w;
    }
    if (send_raw(core, c, buf, n, now) < 0) {
        conn_close(core, c, now, "out of memory");
        return;
    }
    /* u points into the request head: done with it */
    free(c->http);
    c->http = NULL;
    c->state = CS_AUTH;
    rl_start(core, c, now);
    ir_ws_parser_init(&c->ws, IR_WS_ROLE_SERVER, WS_MAX_MESSAGE);
    c->ws_init = 1;
    c->t[T_HEAD] = 0;
    c->t[T_HANDSHAKE] = c->request_at + core->hs_timeout;
    core->st.upgrades++;
    if (km_ok) {
        c->key = km.key;
        authorized(core, c, now);
    }
}

/* A complete request head is in c->http; leftover bytes of this read follow it. */
static void handle_request(ir_relay_core *core, ir_relay_conn *c, size_t leftover, uint64_t now)
{
    ir_http_request req;
    core->st.http_requests++;
    int rc = ir_http_parse_request(c->http->buf, c->http->len, &req);
    if (rc != IROH_OK) {
        core->st.http_bad++;
        if (rc == IROH_ERR_TOO_LONG)
            respond(core, c, 431, "Request Header Fields Too Large", NULL, "text/plain",
                    "Too many headers", 16, 0, 0, now);
        else
            respond(core, c, 400, "Bad Request", NULL, "text/plain", "Bad Request", 11, 0, 0, now);
        conn_finish(core, c, now);
        return;
    }
    if (path_is(&req, IR_RELAY_PATH)) {
        ir_ws_upgrade u;
        rc = ir_ws_check_upgrade(&req, &u);
        if (rc == IROH_OK) {
            upgrade(core, c, &u, leftover, now);
            return;
        }
        if (rc != IROH_ERR_UNSUPPORTED) {
            reject_upgrade(core, c, &u, now);
            return;
        }
        /* not a GET: a plain 404 below */
    }
    int is_get = req.method_len == 3 && memcmp(req.method, "GET", 3) == 0;
    int is_head = req.method_len == 4 && memcmp(req.method, "HEAD", 4) == 0;
    const ir_http_header *conn_h = ir_http_find(req.headers, req.n_headers, "connection");
    const ir_http_header *cl = ir_http_find(req.headers, req.n_headers, "content-length");
    const ir_http_header *te = ir_http_find(req.headers, req.n_headers, "transfer-encoding");
    /* keep-alive for HTTP/1.1 requests without a body; bodies are never read */
    int keep = req.minor_version == 1 && !(conn_h && has_token(conn_h, "close")) && !te &&
               !(cl && !ir_http_value_is(cl, "0"));
    if (!is_get && !is_head) {
        respond(core, c, 404, "Not Found", NULL, NULL, "Not Found", 9, 0, keep, now);
    } else if (path_is(&req, "/") || path_is(&req, "/index.html")) {
        respond(core, c, 200, "OK", NULL, "text/html; charset=utf-8", INDEX_HTML,
                sizeof INDEX_HTML - 1, is_head, keep, now);
    } else if (path_is(&req, "/ping")) {
        respond(core, c, 200, "OK", "access-control-allow-origin: *\r\n", NULL, "", 0, is_head, keep,
                now);
    } else if (path_is(&req, "/generate_204")) {
        char extra[128] = "";
        const ir_http_header *ch = ir_http_find(req.headers, req.n_headers, "x-iroh-challenge");
        if (ch && ch->value_len > 0 && ch->value_len < 64) {
            int ok = 1;
            for (size_t i = 0; i < ch->value_len; i++)
                ok &= is_challenge_char(ch->value[i]);
            if (ok)
                snprintf(extra, sizeof extra, "x-iroh-response: response %.*s\r\n",
                         (int)ch->value_len, ch->value);
        }
        respond(core, c, 204, "No Content", extra, NULL, "", 0, is_head, keep, now);
    } else if (path_is(&req, "/healthz")) {
        char body[160];
        int n = snprintf(body, sizeof body, "{\"status\":\"ok\",\"version\":\"%s\",\"git_hash\":\"unknown\"}",
                         iroh_version());
        respond(core, c, 200, "OK", NULL, "application/json", body, (size_t)n, is_head, keep, now);
    } else if (path_is(&req, "/robots.txt")) {
        respond(core, c, 200, "OK", NULL, "text/plain; charset=utf-8", ROBOTS_TXT,
                sizeof ROBOTS_TXT - 1, is_head, keep, now);
    } else {
        respond(core, c, 404, "Not Found", NULL, NULL, "Not Found", 9, is_head, keep, now);
    }
    if (c->state != CS_HTTP)
        return;
    if (!keep) {
        conn_finish(core, c, now);
        return;
    }
    /* the next request on this connection */
    ir_http_reader_init(c->http);
    c->http_started = 0;
    c->t[T_HEAD] = now + core->keepalive_idle;
}

static void http_input(ir_relay_core *core, ir_relay_conn *c, const uint8_t *data, size_t len,
                       uint64_t now)
{
    while (len > 0 && c->state == CS_HTTP) {
        if (!c->http) {
            c->http = malloc(sizeof *c->http);
            if (!c->http) {
                conn_close(core, c, now, "out of memory");
                return;
            }
            ir_http_reader_init(c->http);
        }
        if (!c->http_started) {
            c->http_started = 1;
            c->request_at = now;
            c->t[T_HEAD] = now + core->header_timeout;
        }
        if (ctl_full(core, c)) {
            /* pipelining far ahead of reading the responses */
            conn_close(core, c, now, "too many pipelined requests");
            return;
        }
        size_t used;
        int rc = ir_http_reader_feed(c->http, data, len, &used);
        data += used;
        len -= used;
        if (rc < 0) {
            core->st.http_bad++;
            respond(core, c, 431, "Request Header Fields Too Large", NULL, "text/plain",
                    "Request head too large", 22, 0, 0, now);
            conn_finish(core, c, now);
            return;
        }
        if (rc == 0)
            return;
        handle_request(core, c, len, now);
    }
}

void ir_relay_core_recv(ir_relay_core *core, ir_relay_conn *c, uint8_t *data, size_t len, uint64_t now)
{
    core->now = now;
    if (c->state == CS_CLOSED)
        return;
    core->st.bytes_recv += len;
    if (c->state == CS_HTTP) {
        http_input(core, c, data, len, now);
    } else if (c->state == CS_AUTH || c->state == CS_RELAY) {
        int held = rl_applies(c) && rl_take(core, c, len, now);
        ws_input(core, c, data, len, now);
        if (held && c->state == CS_RELAY && !c->rl_status_sent && c->version == IR_RELAY_V2) {
            /* upstream main tells v2 clients once (1.0.x clients log the unknown status);
             * v1 has no such news (a Health text would be wrong) */
            ir_relay_frame f;
            memset(&f, 0, sizeof f);
            f.type = IR_RELAY_FT_STATUS;
            f.u.status = IR_RELAY_STATUS_RATE_LIMITED;
            if (send_frame(core, c, &f, now) == 0)
                c->rl_status_sent = 1;
        }
    }
    /* CLOSING, LINGER: input is discarded */
    if (c->state != CS_CLOSED)
        reschedule(core, c);
    mark_changed(core, c);
}

/* ---- timers ------------------------------------------------------------------------------------- */

static int expired(const ir_relay_conn *c, int t, uint64_t now)
{
    return c->t[t] && c->t[t] <= now;
}

void ir_relay_core_on_timeout(ir_relay_core *core, uint64_t now)
{
    core->now = now;
    while (core->heap_n && core->heap[0]->deadline <= now) {
        ir_relay_conn *c = core->heap[0];
        if (expired(c, T_WRITE, now)) {
            core->st.write_timeouts++;
            conn_close(core, c, now, "write timeout");
        } else if (expired(c, T_HEAD, now)) {
            if (c->http_started)
                core->st.header_timeouts++;
            conn_close(core, c, now, c->http_started ? "request header timeout" : "idle");
        } else if (expired(c, T_HANDSHAKE, now)) {
            core->st.handshake_timeouts++;
            core->st.handshake_failures++;
            conn_close(core, c, now, "handshake timeout");
        } else if (expired(c, T_LINGER, now)) {
            conn_close(core, c, now, "finished");
        } else if (expired(c, T_PONG, now)) {
            core->st.pong_timeouts++;
            conn_close(core, c, now, "pong timeout");
        } else if (expired(c, T_PING, now)) {
            send_ping(core, c, now);
        } else if (expired(c, T_RATE, now)) {
            rl_timer(core, c, now);
        }
        if (c->state == CS_CLOSED)
            continue;
        reschedule(core, c);
        if (c->deadline && c->deadline <= now) /* cannot happen; never spin */
            conn_close(core, c, now, "timer");
    }
}

/* ---- stats ------------------------------------------------------------------------------------- */

int ir_relay_stats_format(const ir_relay_server_stats *st, char *buf, size_t cap)
{
#define F(name) " " #name "=%llu"
#define V(name) (unsigned long long)st->name
    return snprintf(
        buf, cap,
        "conns=%llu" F(accepts) F(refused) F(http_requests) F(http_bad) F(upgrades)
            F(upgrades_refused) F(handshakes) F(handshake_failures) F(clients) F(clients_inactive)
                F(clients_replaced) F(clients_inactive_removed) F(disconnects) F(frames_recv) F(frames_relayed) F(bytes_relayed) F(dgram_bytes_recv) F(dropped_absent)
                    F(dropped_full) F(dropped_invalid) F(control_dropped) F(pings_recv) F(pongs_sent)
                        F(pings_sent) F(pongs_recv) F(endpoint_gone_sent) F(protocol_errors)
                            F(header_timeouts) F(handshake_timeouts) F(pong_timeouts)
                                F(write_timeouts) F(bytes_recv) F(bytes_sent)
                                    F(bytes_rx_ratelimited) F(conns_rx_ratelimited),
        V(conns), V(accepts), V(refused), V(http_requests), V(http_bad), V(upgrades),
        V(upgrades_refused), V(handshakes), V(handshake_failures), V(clients), V(clients_inactive),
        V(clients_replaced), V(clients_inactive_removed), V(disconnects), V(frames_recv),
        V(frames_relayed), V(bytes_relayed), V(dgram_bytes_recv), V(dropped_absent),
        V(dropped_full), V(dropped_invalid), V(control_dropped), V(pings_recv), V(pongs_sent),
        V(pings_sent), V(pongs_recv), V(endpoint_gone_sent), V(protocol_errors), V(header_timeouts),
        V(handshake_timeouts), V(pong_timeouts), V(write_timeouts), V(bytes_recv), V(bytes_sent),
        V(bytes_rx_ratelimited), V(conns_rx_ratelimited));
#undef F
#undef V
}

/* One metric family of the OpenMetrics text: counters get the sample suffix "_total". */
typedef struct metric_line {
    const char *name, *help;
    int gauge;
    uint64_t v;
} metric_line;

int ir_relay_metrics_format(const ir_relay_server_stats *st, char *buf, size_t cap)
{
    /* upstream's group "relayserver" (iroh-relay server/metrics.rs) where ours count the
     * same thing; "accepts" upstream counts registered clients, not TCP accepts */
    const metric_line m[] = {
        {"relayserver_bytes_sent", "Number of bytes sent.", 0, st->bytes_relayed},
        {"relayserver_bytes_recv", "Number of bytes received.", 0, st->dgram_bytes_recv},
        {"relayserver_send_packets_sent", "Number of 'send' packets relayed.", 0, st->frames_relayed},
        {"relayserver_send_packets_recv", "Number of 'send' packets received.", 0, st->frames_recv},
        {"relayserver_send_packets_dropped", "Number of 'send' packets dropped.", 0,
         st->dropped_absent + st->dropped_full + st->dropped_invalid},
        {"relayserver_other_packets_dropped",
         "Number of times a non-disco, non-send packet was dropped.", 0, st->control_dropped},
        {"relayserver_got_ping", "Number of times the server has received a Ping from a client.",
         0, st->pings_recv},
        {"relayserver_sent_pong", "Number of times the server has sent a Pong to a client.", 0,
         st->pongs_sent},
        {"relayserver_bytes_rx_ratelimited",
         "Number of bytes received from client connection which have been rate-limited.", 0,
         st->bytes_rx_ratelimited},
        {"relayserver_conns_rx_ratelimited",
         "Number of client connections which have had any frames rate-limited.", 0,
         st->conns_rx_ratelimited},
        {"relayserver_accepts", "Number of times this server has accepted a connection.", 0,
         st->handshakes},
        {"relayserver_disconnects", "Number of clients that have then disconnected.", 0,
         st->disconnects},
        {"relayserver_websocket_accepts", "Number of accepted websocket connections", 0,
         st->upgrades},
        {"relayserver_clients_inactive_added",
         "Number of client connections that became inactive (same EndpointId connected again)", 0,
         st->clients_replaced},
        {"relayserver_clients_inactive_removed",
         "Number of inactive client connections that were promoted or went away", 0,
         st->clients_inactive_removed},
        /* ours */
        {"irohc_relay_conns", "Open TCP connections.", 1, st->conns},
        {"irohc_relay_clients", "Registered relay clients (active and inactive).", 1, st->clients},
        {"irohc_relay_clients_inactive", "Registered relay clients replaced by a newer one.", 1,
         st->clients_inactive},
        {"irohc_relay_tcp_accepts", "TCP connections accepted.", 0, st->accepts},
        {"irohc_relay_tcp_refused", "TCP connections refused at accept (limit, memory).", 0,
         st->refused},
        {"irohc_relay_http_requests", "HTTP request heads parsed.", 0, st->http_requests},
        {"irohc_relay_http_bad", "Malformed or oversized HTTP request heads.", 0, st->http_bad},
        {"irohc_relay_upgrades_refused", "Upgrade requests answered with 400.", 0,
         st->upgrades_refused},
        {"irohc_relay_handshake_failures", "Bad ClientAuth frames, bad signatures, denials.", 0,
         st->handshake_failures},
        {"irohc_relay_datagrams_dropped_absent", "Datagram frames for endpoints not connected.", 0,
         st->dropped_absent},
        {"irohc_relay_datagrams_dropped_full", "Datagram frames dropped on a full queue.", 0,
         st->dropped_full},
        {"irohc_relay_datagrams_dropped_invalid", "Empty or oversized datagram frames dropped.", 0,
         st->dropped_invalid},
        {"irohc_relay_pings_sent", "Pings sent to clients.", 0, st->pings_sent},
        {"irohc_relay_pongs_recv", "Pongs received for them.", 0, st->pongs_recv},
        {"irohc_relay_endpoint_gone_sent", "EndpointGone frames sent.", 0, st->endpoint_gone_sent},
        {"irohc_relay_protocol_errors", "Connections closed for a bad frame or WebSocket error.", 0,
         st->protocol_errors},
        {"irohc_relay_header_timeouts", "Request heads not complete in time.", 0,
         st->header_timeouts},
        {"irohc_relay_handshake_timeouts", "Handshakes not complete in time.", 0,
         st->handshake_timeouts},
        {"irohc_relay_pong_timeouts", "Clients closed for a missing pong.", 0, st->pong_timeouts},
        {"irohc_relay_write_timeouts", "Clients closed for not reading.", 0, st->write_timeouts},
        {"irohc_relay_socket_bytes_recv", "Bytes read from client sockets (after TLS).", 0,
         st->bytes_recv},
        {"irohc_relay_socket_bytes_sent", "Bytes written to client sockets (before TLS).", 0,
         st->bytes_sent},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        int w = snprintf(buf ? buf + (n < cap ? n : cap) : NULL, n < cap ? cap - n : 0,
                         "# HELP %s %s\n# TYPE %s %s\n%s%s %llu\n", m[i].name, m[i].help,
                         m[i].name, m[i].gauge ? "gauge" : "counter", m[i].name,
                         m[i].gauge ? "" : "_total", (unsigned long long)m[i].v);
        if (w < 0)
            return w;
        n += (size_t)w;
    }
    int w = snprintf(buf ? buf + (n < cap ? n : cap) : NULL, n < cap ? cap - n : 0, "# EOF\n");
    if (w < 0)
        return w;
    n += (size_t)w;
    return (int)n;
}

/* ======================================================================================
 * The epoll shell
 * ====================================================================================== */

#define READ_BUF (256 * 1024)
#define MAX_EVENTS 256
#define IOV_BATCH 64

/* A scrape of the metrics listener: read the request head, write one response, close. */
#define METRICS_SLOTS 16
#define METRICS_HEAD_MAX 4096
#define METRICS_TIMEOUT (10 * NS_PER_S)
typedef struct metrics_conn {
    int fd; /* -1: a free slot */
    uint64_t deadline;
    size_t in_len;
    uint8_t in[METRICS_HEAD_MAX];
    char *out;
    size_t out_len, out_off;
} metrics_conn;

struct ir_relay_server {
    ir_relay_core *core;
    int epfd, lfd, evfd;
    int mfd; /* the metrics listener, -1: none */
    iroh_socket_addr mlocal;
    metrics_conn mc[METRICS_SLOTS];
    volatile sig_atomic_t stop, want_stats;
    iroh_socket_addr local;
    uint32_t max_conns;
    int listen_paused;
    uint64_t listen_resume_at;
    uint64_t refused;
    ir_relay_conn *grave;
    uint8_t *rbuf;
    gnutls_certificate_credentials_t cred; /* HTTPS when set */
};

/* ---- TLS (HTTPS) in the shell: the core only ever sees the plaintext bytes ------------ */

static int tls_export(void *ctx, const uint8_t context[32], uint8_t out[32])
{
    gnutls_session_t s = ctx;
    return gnutls_prf_rfc5705(s, IR_RELAY_EXPORT_LABEL_LEN, IR_RELAY_EXPORT_LABEL, 32,
                              (const char *)context, 32, (char *)out) == 0 ? 0 : -1;
}

static void tls_drop(ir_relay_conn *c)
{
    if (c->tls) {
        gnutls_deinit(c->tls);
        c->tls = NULL;
    }
}

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* A non-blocking listening TCP socket on text; its bound address in *bound. On failure a
 * negative IROH_ERR_* code (error detail set). */
static int listen_on(const char *text, int backlog, iroh_socket_addr *bound)
{
    iroh_socket_addr addr;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (iroh_socket_addr_parse(text, &addr) != IROH_OK || ir_sockaddr_from_socket_addr(&addr, &ss, &sl) < 0) {
        return ir_fail(IROH_ERR_INVALID_ADDR, "invalid listen address '%s'", text);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return ir_fail(IROH_ERR_IO, "socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        int rc = ir_fail(IROH_ERR_IO, "cannot bind %s: %s", text, strerror(errno));
        close(fd);
        return rc;
    }
    if (listen(fd, backlog) < 0) {
        int rc = ir_fail(IROH_ERR_IO, "cannot listen on %s: %s", text, strerror(errno));
        close(fd);
        return rc;
    }
    sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        int rc = ir_fail(IROH_ERR_IO, "getsockname: %s", strerror(errno));
        close(fd);
        return rc;
    }
    ir_socket_addr_from_sockaddr(bound, (struct sockaddr *)&ss);
    return fd;
}

int ir_relay_server_new(const ir_relay_server_config *cfg, ir_relay_server **out)
{
    *out = NULL;
    ir_relay_server_config c;
    if (cfg)
        c = *cfg;
    else
        ir_relay_server_config_init(&c);
    const char *listen_text = c.listen ? c.listen : IR_RELAY_DEFAULT_LISTEN;
    iroh_socket_addr addr;
    if (iroh_socket_addr_parse(listen_text, &addr) != IROH_OK || (addr.family != 4 && addr.family != 6))
        return ir_fail(IROH_ERR_INVALID_ADDR, "invalid listen address '%s'", listen_text);
    if (c.metrics_listen && iroh_socket_addr_parse(c.metrics_listen, &addr) != IROH_OK)
        return ir_fail(IROH_ERR_INVALID_ADDR, "invalid metrics address '%s'", c.metrics_listen);

    ir_relay_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    srv->lfd = srv->epfd = srv->evfd = srv->mfd = -1;
    for (int i = 0; i < METRICS_SLOTS; i++)
        srv->mc[i].fd = -1;
    srv->max_conns = c.max_connections ? c.max_connections : 100000;
    srv->rbuf = malloc(READ_BUF);
    int rc = IROH_ERR_NO_MEMORY;
    if (!srv->rbuf || (rc = ir_relay_core_new(&c, NULL, NULL, &srv->core)) != IROH_OK) {
        ir_fail(rc, "out of memory");
        goto fail;
    }
    if (c.tls_cert_file || c.tls_key_file) {
        int grc;
        if (!c.tls_cert_file || !c.tls_key_file) {
            rc = ir_fail(IROH_ERR_INVALID_ARGUMENT, "HTTPS needs both a certificate and a key file");
            goto fail;
        }
        if ((grc = gnutls_certificate_allocate_credentials(&srv->cred)) < 0 ||
            (grc = gnutls_certificate_set_x509_key_file(srv->cred, c.tls_cert_file, c.tls_key_file,
                                                        GNUTLS_X509_FMT_PEM)) < 0) {
            rc = ir_fail(IROH_ERR_INVALID_ARGUMENT, "TLS certificate %s / key %s: %s",
                         c.tls_cert_file, c.tls_key_file, gnutls_strerror(grc));
            goto fail;
        }
    }
    srv->lfd = listen_on(listen_text, 4096, &srv->local);
    if (srv->lfd < 0) {
        rc = srv->lfd;
        srv->lfd = -1;
        goto fail;
    }
    if (c.metrics_listen) {
        srv->mfd = listen_on(c.metrics_listen, 64, &srv->mlocal);
        if (srv->mfd < 0) {
            rc = srv->mfd;
            srv->mfd = -1;
            goto fail;
        }
    }
    rc = IROH_ERR_IO;
    srv->epfd = epoll_create1(EPOLL_CLOEXEC);
    srv->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->epfd < 0 || srv->evfd < 0) {
        ir_fail(IROH_ERR_IO, "epoll/eventfd: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &srv->lfd};
    struct epoll_event ev2 = {.events = EPOLLIN, .data.ptr = &srv->evfd};
    struct epoll_event ev3 = {.events = EPOLLIN, .data.ptr = &srv->mfd};
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->lfd, &ev) < 0 ||
        epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->evfd, &ev2) < 0 ||
        (srv->mfd >= 0 && epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->mfd, &ev3) < 0)) {
        ir_fail(IROH_ERR_IO, "epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    *out = srv;
    return IROH_OK;
fail:
    ir_relay_server_free(srv);
    return rc;
}

void ir_relay_server_local_addr(const ir_relay_server *srv, iroh_socket_addr *out)
{
    *out = srv->local;
}

int ir_relay_server_metrics_addr(const ir_relay_server *srv, iroh_socket_addr *out)
{
    if (srv->mfd < 0)
        return 0;
    *out = srv->mlocal;
    return 1;
}

void ir_relay_server_stop(ir_relay_server *srv)
{
    srv->stop = 1;
    uint64_t one = 1;
    ssize_t r = write(srv->evfd, &one, sizeof one);
    (void)r;
}

void ir_relay_server_request_stats(ir_relay_server *srv)
{
    srv->want_stats = 1;
    uint64_t one = 1;
    ssize_t r = write(srv->evfd, &one, sizeof one);
    (void)r;
}

void ir_relay_server_get_stats(const ir_relay_server *srv, ir_relay_server_stats *out)
{
    ir_relay_core_stats(srv->core, out);
    out->refused += srv->refused;
}

static void print_stats(const ir_relay_server *srv)
{
    ir_relay_server_stats st;
    char line[2048];
    ir_relay_server_get_stats(srv, &st);
    ir_relay_stats_format(&st, line, sizeof line);
    fprintf(stderr, "relay stats: %s\n", line);
    fflush(stderr);
}

static void set_listening(ir_relay_server *srv, int on)
{
    struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = &srv->lfd};
    epoll_ctl(srv->epfd, EPOLL_CTL_MOD, srv->lfd, &ev);
    srv->listen_paused = !on;
}

static void accept_ready(ir_relay_server *srv, uint64_t now)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of descriptors: stop accepting for a moment rather than spin */
                IR_LOG(IR_LOG_WARN, "relay: accept: %s; pausing for 100 ms", strerror(errno));
                set_listening(srv, 0);
                srv->listen_resume_at = now + 100 * NS_PER_MS;
            }
            return;
        }
        ir_relay_conn *c = NULL;
        if (srv->core->nconns < srv->max_conns)
            c = ir_relay_core_accept(srv->core, now);
        if (!c) {
            srv->refused++;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        c->events = EPOLLIN;
        if (srv->cred) {
            if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0 ||
                gnutls_set_default_priority(c->tls) < 0 ||
                gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, srv->cred) < 0) {
                tls_drop(c);
                ir_relay_core_abort(srv->core, c, "TLS setup failed", now);
                close(fd);
                c->fd = -1;
                continue;
            }
            gnutls_transport_set_int(c->tls, fd);
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            ir_relay_core_abort(srv->core, c, "epoll_ctl failed", now);
    }
}

static void flush(ir_relay_server *srv, ir_relay_conn *c, uint64_t now)
{
    struct iovec iov[IOV_BATCH];
    while (!c->write_blocked && c->state != CS_CLOSED) {
        size_t n = ir_relay_conn_output(c, iov, IOV_BATCH);
        if (!n)
            return;
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
            total += iov[i].iov_len;
        if (c->tls) {
            if (!c->tls_ready)
                return; /* the handshake first */
            ssize_t w = gnutls_record_send(c->tls, iov[0].iov_base, iov[0].iov_len);
            if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
                c->write_blocked = 1; /* called again with the same bytes, as GnuTLS asks */
                return;
            }
            if (w < 0) {
                char why[96];
                snprintf(why, sizeof why, "TLS send: %s", gnutls_strerror((int)w));
                ir_relay_core_abort(srv->core, c, why, now);
                return;
            }
            ir_relay_core_sent(srv->core, c, (size_t)w, now);
            continue;
        }
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = iov;
        mh.msg_iovlen = n;
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->write_blocked = 1;
                return;
            }
            char why[96];
            snprintf(why, sizeof why, "send: %s", strerror(errno));
            ir_relay_core_abort(srv->core, c, why, now);
            return;
        }
        ir_relay_core_sent(srv->core, c, (size_t)w, now);
        if ((size_t)w < total)
            c->write_blocked = 1; /* the socket buffer is full: wait for EPOLLOUT */
    }
}

static void tls_event(ir_relay_server *srv, ir_relay_conn *c, uint32_t events, uint64_t now);

/* Brings each changed connection's socket in line with what the core wants. */
static void sync_changed(ir_relay_server *srv, uint64_t now)
{
    ir_relay_conn *c;
    while ((c = ir_relay_core_next_changed(srv->core))) {
        unsigned s = ir_relay_conn_status(c);
        if ((s & IR_RELAY_WANT_WRITE) && !c->write_blocked) {
            flush(srv, c, now);
            s = ir_relay_conn_status(c);
        }
        if (s & IR_RELAY_CLOSED) {
            tls_drop(c);
            if (c->fd >= 0) {
                epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                c->grave_next = srv->grave;
                srv->grave = c;
            }
            continue;
        }
        if ((s & IR_RELAY_WANT_SHUTDOWN) && !c->shut) {
            shutdown(c->fd, SHUT_WR);
            c->shut = 1;
        }
        uint32_t want = ((s & IR_RELAY_WANT_READ) ? EPOLLIN : 0u) |
                        ((s & IR_RELAY_WANT_WRITE) ? EPOLLOUT : 0u);
        if (want != c->events) {
            struct epoll_event ev = {.events = want, .data.ptr = c};
            epoll_ctl(srv->epfd, EPOLL_CTL_MOD, c->fd, &ev);
            c->events = want;
        }
        /* readable again (rate limit, backpressure) with plaintext already decrypted by
         * GnuTLS: the socket may never become readable for it, so read it now */
        if (c->tls && c->tls_ready && (s & IR_RELAY_WANT_READ) && gnutls_record_check_pending(c->tls))
            tls_event(srv, c, 0, now);
    }
}

static void tls_event(ir_relay_server *srv, ir_relay_conn *c, uint32_t events, uint64_t now)
{
    if (!c->tls_ready) {
        int rc = gnutls_handshake(c->tls);
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            uint32_t want = gnutls_record_get_direction(c->tls) ? EPOLLIN | EPOLLOUT : EPOLLIN;
            if (want != c->events) {
                struct epoll_event ev = {.events = want, .data.ptr = c};
                epoll_ctl(srv->epfd, EPOLL_CTL_MOD, c->fd, &ev);
                c->events = want;
            }
            return;
        }
        if (rc < 0) {
            char why[96];
            snprintf(why, sizeof why, "TLS handshake: %s", gnutls_strerror(rc));
            ir_relay_core_abort(srv->core, c, why, now);
            return;
        }
        c->tls_ready = 1;
        ir_relay_conn_set_exporter(c, tls_export, c->tls);
        mark_changed(srv->core, c); /* back to the events the core wants */
    }
    if (events & EPOLLOUT) {
        c->write_blocked = 0;
        mark_changed(srv->core, c);
    }
    /* GnuTLS may hold decrypted bytes beyond one read: drain them */
    for (int k = 0; k < 64; k++) {
        if (!(ir_relay_conn_status(c) & IR_RELAY_WANT_READ) || c->state == CS_CLOSED)
            return;
        size_t cap = ir_relay_conn_read_max(c);
        ssize_t r = gnutls_record_recv(c->tls, srv->rbuf, cap < READ_BUF ? cap : READ_BUF);
        if (r > 0) {
            ir_relay_core_recv(srv->core, c, srv->rbuf, (size_t)r, now);
        } else if (r == 0) {
            ir_relay_core_eof(srv->core, c, now);
            return;
        } else if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
            return;
        } else {
            char why[96];
            snprintf(why, sizeof why, "TLS recv: %s", gnutls_strerror((int)r));
            ir_relay_core_abort(srv->core, c, why, now);
            return;
        }
        if (!gnutls_record_check_pending(c->tls))
            return;
    }
}

static void conn_event(ir_relay_server *srv, ir_relay_conn *c, uint32_t events, uint64_t now)
{
    if (c->state == CS_CLOSED)
        return;
    if (c->tls) {
        if (events & (EPOLLHUP | EPOLLERR) && !(events & EPOLLIN)) {
            ir_relay_core_abort(srv->core, c, "connection reset", now);
            return;
        }
        tls_event(srv, c, events, now);
        return;
    }
    if (events & EPOLLOUT) {
        c->write_blocked = 0;
        mark_changed(srv->core, c);
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    if (!(ir_relay_conn_status(c) & IR_RELAY_WANT_READ)) {
        if (events & (EPOLLHUP | EPOLLERR))
            ir_relay_core_abort(srv->core, c, "connection reset", now);
        return;
    }
    size_t cap = ir_relay_conn_read_max(c);
    if (cap > READ_BUF)
        cap = READ_BUF;
    ssize_t r = recv(c->fd, srv->rbuf, cap, MSG_DONTWAIT);
    if (r > 0) {
        ir_relay_core_recv(srv->core, c, srv->rbuf, (size_t)r, now);
    } else if (r == 0) {
        ir_relay_core_eof(srv->core, c, now);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        char why[96];
        snprintf(why, sizeof why, "recv: %s", strerror(errno));
        ir_relay_core_abort(srv->core, c, why, now);
    }
}

/* ---- the metrics listener (plain HTTP, one response per connection) ------------------- */

static void metrics_close(ir_relay_server *srv, metrics_conn *m)
{
    epoll_ctl(srv->epfd, EPOLL_CTL_DEL, m->fd, NULL);
    close(m->fd);
    m->fd = -1;
    free(m->out);
    m->out = NULL;
    m->out_len = m->out_off = m->in_len = 0;
    m->deadline = 0;
}

static void metrics_accept(ir_relay_server *srv, uint64_t now)
{
    for (int k = 0; k < 16; k++) {
        int fd = accept4(srv->mfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        metrics_conn *m = NULL;
        for (int i = 0; i < METRICS_SLOTS && !m; i++)
            if (srv->mc[i].fd < 0)
                m = &srv->mc[i];
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = m};
        if (!m || epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd); /* all slots busy: scrapes are rare, this one can retry */
            continue;
        }
        m->fd = fd;
        m->in_len = 0;
        m->deadline = now + METRICS_TIMEOUT;
    }
}

/* Builds the whole response to the request head in m->in. */
static void metrics_respond(ir_relay_server *srv, metrics_conn *m)
{
    ir_http_request req;
    int status = 200;
    const char *phrase = "OK";
    int head_only = 0;
    if (ir_http_parse_request(m->in, m->in_len, &req) != IROH_OK) {
        status = 400;
        phrase = "Bad Request";
    } else {
        int get = req.method_len == 3 && memcmp(req.method, "GET", 3) == 0;
        head_only = req.method_len == 4 && memcmp(req.method, "HEAD", 4) == 0;
        if (!get && !head_only) {
            status = 405;
            phrase = "Method Not Allowed";
        } else if (!((req.path_len == 1 && req.path[0] == '/') ||
                     (req.path_len == 8 && memcmp(req.path, "/metrics", 8) == 0))) {
            status = 404;
            phrase = "Not Found";
        }
    }
    char *body = NULL;
    size_t body_len = 0;
    if (status == 200) {
        ir_relay_server_stats st;
        ir_relay_server_get_stats(srv, &st);
        int n = ir_relay_metrics_format(&st, NULL, 0);
        if (n > 0 && (body = malloc((size_t)n + 1)) != NULL) {
            ir_relay_metrics_format(&st, body, (size_t)n + 1);
            body_len = (size_t)n;
        } else {
            status = 500;
            phrase = "Internal Server Error";
        }
    } else {
        body = malloc(64);
        if (body)
            body_len = (size_t)snprintf(body, 64, "%s\n", phrase);
    }
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n"
                      "connection: close\r\n\r\n",
                      status, phrase,
                      status == 200 ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                    : "text/plain; charset=utf-8",
                      body_len);
    size_t total = (size_t)hl + (head_only ? 0 : body_len);
    m->out = malloc(total);
    if (m->out) {
        memcpy(m->out, head, (size_t)hl);
        if (!head_only && body_len)
            memcpy(m->out + hl, body, body_len);
        m->out_len = total;
        m->out_off = 0;
    }
    free(body);
}

static void metrics_event(ir_relay_server *srv, metrics_conn *m, uint32_t events)
{
    if (m->fd < 0)
        return;
    if (!m->out) {
        ssize_t r = recv(m->fd, m->in + m->in_len, sizeof m->in - m->in_len, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (r <= 0) {
            metrics_close(srv, m);
            return;
        }
        m->in_len += (size_t)r;
        ir_http_reader hr;
        size_t used;
        ir_http_reader_init(&hr);
        int rc = ir_http_reader_feed(&hr, m->in, m->in_len, &used);
        if (rc == 0 && m->in_len < sizeof m->in)
            return; /* more of the head to come */
        if (rc == 1)
            m->in_len = used;
        else
            m->in_len = 0; /* too large: answered 400 */
        metrics_respond(srv, m);
        if (!m->out) {
            metrics_close(srv, m);
            return;
        }
    }
    (void)events;
    while (m->out_off < m->out_len) {
        ssize_t w = send(m->fd, m->out + m->out_off, m->out_len - m->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = m};
            epoll_ctl(srv->epfd, EPOLL_CTL_MOD, m->fd, &ev);
            return;
        }
        if (w <= 0)
            break;
        m->out_off += (size_t)w;
    }
    shutdown(m->fd, SHUT_WR);
    metrics_close(srv, m);
}

static metrics_conn *as_metrics_conn(ir_relay_server *srv, void *p)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)&srv->mc[0], hi = (uintptr_t)&srv->mc[METRICS_SLOTS];
    return a >= lo && a < hi ? p : NULL;
}

/* The earliest metrics deadline (0: none); closes the expired ones. */
static uint64_t metrics_timers(ir_relay_server *srv, uint64_t now)
{
    uint64_t next = 0;
    for (int i = 0; i < METRICS_SLOTS; i++) {
        metrics_conn *m = &srv->mc[i];
        if (m->fd < 0)
            continue;
        if (m->deadline <= now) {
            metrics_close(srv, m);
            continue;
        }
        if (!next || m->deadline < next)
            next = m->deadline;
    }
    return next;
}

static void reap(ir_relay_server *srv)
{
    while (srv->grave) {
        ir_relay_conn *c = srv->grave;
        srv->grave = c->grave_next;
        ir_relay_core_release(srv->core, c);
    }
}

int ir_relay_server_run(ir_relay_server *srv)
{
    struct epoll_event evs[MAX_EVENTS];
    int rc = IROH_OK;
    while (!srv->stop) {
        uint64_t now = clock_ns();
        uint64_t next = ir_relay_core_next_timeout(srv->core);
        if (srv->listen_paused && (!next || srv->listen_resume_at < next))
            next = srv->listen_resume_at;
        uint64_t mnext = srv->mfd >= 0 ? metrics_timers(srv, now) : 0;
        if (mnext && (!next || mnext < next))
            next = mnext;
        int timeout = -1;
        if (next) {
            uint64_t d = next > now ? next - now : 0;
            uint64_t msec = (d + NS_PER_MS - 1) / NS_PER_MS;
            timeout = msec > 60000 ? 60000 : (int)msec;
        }
        int n = epoll_wait(srv->epfd, evs, MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = ir_fail(IROH_ERR_IO, "epoll_wait: %s", strerror(errno));
            break;
        }
        now = clock_ns();
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &srv->lfd) {
                accept_ready(srv, now);
            } else if (p == &srv->evfd) {
                uint64_t v;
                ssize_t r = read(srv->evfd, &v, sizeof v);
                (void)r;
            } else if (p == &srv->mfd) {
                metrics_accept(srv, now);
            } else if (as_metrics_conn(srv, p)) {
                metrics_event(srv, p, evs[i].events);
            } else {
                conn_event(srv, p, evs[i].events, now);
            }
        }
        if (srv->want_stats) {
            srv->want_stats = 0;
            print_stats(srv);
        }
        ir_relay_core_on_timeout(srv->core, now);
        sync_changed(srv, now);
        reap(srv);
        if (srv->listen_paused && now >= srv->listen_resume_at)
            set_listening(srv, 1);
    }
    uint64_t now = clock_ns();
    ir_relay_core_close_all(srv->core, now);
    sync_changed(srv, now);
    reap(srv);
    return rc;
}

void ir_relay_server_free(ir_relay_server *srv)
{
    if (!srv)
        return;
    if (srv->core) {
        for (ir_relay_conn *c = srv->core->all; c; c = c->all_next) {
            tls_drop(c);
            if (c->fd >= 0) {
                close(c->fd);
                c->fd = -1;
            }
        }
        ir_relay_core_free(srv->core);
    }
    if (srv->lfd >= 0)
        close(srv->lfd);
    for (int i = 0; i < METRICS_SLOTS; i++) {
        if (srv->mc[i].fd >= 0)
            close(srv->mc[i].fd);
        free(srv->mc[i].out);
    }
    if (srv->mfd >= 0)
        close(srv->mfd);
    if (srv->epfd >= 0)
        close(srv->epfd);
    if (srv->evfd >= 0)
        close(srv->evfd);
    free(srv->rbuf);
    if (srv->cred)
        gnutls_certificate_free_credentials(srv->cred);
    free(srv);
}
