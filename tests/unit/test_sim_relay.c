/* The simulator with relays: relay link cores (endpoint/relay_link_core.h) of virtual
 * endpoints talk to virtual relay servers (the sans-IO relay server core, relay/server.h)
 * over virtual byte streams, on a virtual clock, in one thread and without sockets; the
 * endpoints' cores (endpoint/ep_core.h) send and receive their datagrams through these
 * links as ep.c does. A stream carries bytes after a fixed one-way delay per relay; a
 * transport comes up one round trip after the link asks for it, or fails then ("connection
 * refused") while the relay is down. A relay going down closes its streams (each end
 * sees the end of stream after the one-way delay). Randomness (the links' backoff jitter,
 * the relay client's WebSocket keys and masks, the server's challenges, the cores'
 * connection ids) comes from one seeded generator.
 *
 * Tests: a QUIC connection between two endpoints over a relay end to end (relay
 * handshake included) and the keepalive latency, which survives a relay restart (both
 * links reconnect, a second stream is echoed); the reconnection backoff after the relay
 * went down, each delay within its jitter bounds at exact virtual times, up to the 16 s
 * cap, and the same times again for the same seed; datagrams queued while the link is
 * down (delivered after the reconnect within 3 s, dropped after, at most 64); the home
 * relay among two relays of different latency, its failover and the 2/3 rule; the close of
 * a link unused for 60 s. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "test.h"
#include "sim_rng.h"

#include "endpoint/ep_core.h"
#include "endpoint/relay_link.h"
#include "endpoint/relay_link_core.h"
#include "relay/server.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define MAX_NODES 4
#define MAX_RELAYS 2
#define MAX_STREAMS 256

static const char ALPN[] = "simr/0";
static const uint8_t *ALPNS[1] = {(const uint8_t *)ALPN};
static const size_t ALPN_LENS[1] = {sizeof ALPN - 1};

typedef struct sim sim;

typedef struct vlink {
    struct node *node;
    int relay;
    ir_rlc *core;
    int stream;          /* the current virtual stream, -1: none */
    uint64_t io_attempt; /* the core's attempt the shell has started */
    /* for the tests: when attempts started and failed */
    uint64_t started_at[64], failed_at[64];
    int nstarted, nfailed;
} vlink;

typedef struct node {
    sim *s;
    int idx;
    iroh_secret_key key;
    iroh_endpoint_id id;
    ir_epc *core; /* NULL: the links' datagrams are recorded instead */
    int offline;  /* its network is down: its streams broke, connects fail */
    vlink links[MAX_RELAYS];
    int nlinks;
    /* raw nodes: datagrams received through a relay */
    char got[128][32];
    int ngot;
} node;

typedef struct relay {
    ir_relay_core *core; /* NULL while down */
    uint64_t one_way;
} relay;

typedef struct vstream {
    int used;
    int relay;
    node *node;
    int link;
    ir_relay_conn *sc; /* NULL once released */
    int eof_to_client, eof_to_server;
} vstream;

enum { E_CONNECT, E_TO_SERVER, E_TO_CLIENT, E_EOF_CLIENT, E_EOF_SERVER };

typedef struct event {
    uint64_t at, seq;
    int kind;
    int stream;
    node *node;
    int link;
    uint64_t attempt;
    size_t len;
    uint8_t *data;
} event;

struct sim {
    uint64_t now, rng, seq;
    node nodes[MAX_NODES];
    int nnodes;
    relay relays[MAX_RELAYS];
    int nrelays;
    vstream streams[MAX_STREAMS];
    event *q;
    size_t nq, cap;
    int home[MAX_NODES];
    uint64_t stall_at, stall_steps; /* steps without the clock moving */
};

static void sim_random(void *ctx, uint8_t *buf, size_t len)
{
    sim *s = ctx;
    sim_rng_fill(&s->rng, buf, len);
}

static int ev_before(const event *a, const event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void q_push(sim *s, event e)
{
    if (s->nq == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 1024;
        event *nq = realloc(s->q, nc * sizeof *nq);
        CHECK(nq != NULL);
        if (!nq) {
            free(e.data);
            return;
        }
        s->q = nq;
        s->cap = nc;
    }
    e.seq = s->seq++;
    size_t i = s->nq++;
    while (i > 0 && ev_before(&e, &s->q[(i - 1) / 2])) {
        s->q[i] = s->q[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->q[i] = e;
}

static event q_pop(sim *s)
{
    event top = s->q[0], last = s->q[--s->nq];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const event *mv = &last;
        if (l < s->nq && ev_before(&s->q[l], mv))
            m = l, mv = &s->q[l];
        if (r < s->nq && ev_before(&s->q[r], mv))
            m = r;
        if (m == i)
            break;
        s->q[i] = s->q[m];
        i = m;
    }
    if (s->nq)
        s->q[i] = last;
    return top;
}

static void push_bytes(sim *s, int kind, int stream, const uint8_t *p, size_t n, uint64_t delay)
{
    event e;
    memset(&e, 0, sizeof e);
    e.at = s->now + delay;
    e.kind = kind;
    e.stream = stream;
    if (n) {
        e.data = malloc(n);
        CHECK(e.data != NULL);
        if (!e.data)
            return;
        memcpy(e.data, p, n);
        e.len = n;
    }
    q_push(s, e);
}

/* ---- the relay servers ---------------------------------------------------------------------- */

static void relay_up(sim *s, int r)
{
    ir_relay_server_config cfg;
    ir_relay_server_config_init(&cfg);
    CHECK(ir_relay_core_new(&cfg, sim_random, s, &s->relays[r].core) == IROH_OK);
}

/* A crash: every stream of the relay ends (both ends see it after the one-way delay). */
static void relay_down(sim *s, int r)
{
    for (int i = 0; i < MAX_STREAMS; i++) {
        vstream *v = &s->streams[i];
        if (!v->used || v->relay != r || !v->sc)
            continue;
        v->sc = NULL;
        if (!v->eof_to_client) {
            v->eof_to_client = 1;
            push_bytes(s, E_EOF_CLIENT, i, NULL, 0, s->relays[r].one_way);
        }
    }
    ir_relay_core_free(s->relays[r].core);
    s->relays[r].core = NULL;
}

/* The node's network goes down (its streams break: the relay and the link each see the
 * end one way later, and its connects fail) or comes back. */
static void node_offline(sim *s, node *n, int off)
{
    n->offline = off;
    if (!off)
        return;
    for (int i = 0; i < MAX_STREAMS; i++) {
        vstream *v = &s->streams[i];
        if (!v->used || v->node != n)
            continue;
        if (!v->eof_to_client) {
            v->eof_to_client = 1;
            push_bytes(s, E_EOF_CLIENT, i, NULL, 0, s->relays[v->relay].one_way);
        }
        if (!v->eof_to_server) {
            v->eof_to_server = 1;
            push_bytes(s, E_EOF_SERVER, i, NULL, 0, s->relays[v->relay].one_way);
        }
    }
}

/* Moves what the relay's connections have to write onto their streams. */
static void relay_drain(sim *s, int r)
{
    ir_relay_core *core = s->relays[r].core;
    if (!core)
        return;
    ir_relay_conn *c;
    while ((c = ir_relay_core_next_changed(core)) != NULL) {
        int i = (int)(intptr_t)ir_relay_conn_user(c);
        vstream *v = &s->streams[i];
        struct iovec iov[16];
        size_t n;
        while ((n = ir_relay_conn_output(c, iov, 16)) > 0) {
            size_t total = 0;
            for (size_t k = 0; k < n; k++) {
                push_bytes(s, E_TO_CLIENT, i, iov[k].iov_base, iov[k].iov_len,
                           s->relays[r].one_way);
                total += iov[k].iov_len;
            }
            ir_relay_core_sent(core, c, total, s->now);
        }
        unsigned st = ir_relay_conn_status(c);
        if ((st & (IR_RELAY_WANT_SHUTDOWN | IR_RELAY_CLOSED)) && !v->eof_to_client) {
            v->eof_to_client = 1;
            push_bytes(s, E_EOF_CLIENT, i, NULL, 0, s->relays[r].one_way);
        }
        if (st & IR_RELAY_CLOSED) {
            v->sc = NULL;
            ir_relay_core_release(core, c);
        }
    }
}

/* ---- the links' shell ------------------------------------------------------------------------ */

static void link_out(sim *s, vlink *l)
{
    if (l->stream < 0)
        return;
    const uint8_t *p;
    size_t n;
    while ((n = ir_rlc_pending(l->core, &p)) > 0) {
        push_bytes(s, E_TO_SERVER, l->stream, p, n, s->relays[l->relay].one_way);
        ir_rlc_consumed(l->core, n);
    }
}

static void close_stream(sim *s, vlink *l)
{
    vstream *v = &s->streams[l->stream];
    if (!v->eof_to_server) {
        v->eof_to_server = 1;
        push_bytes(s, E_EOF_SERVER, l->stream, NULL, 0, s->relays[l->relay].one_way);
    }
    l->stream = -1;
}

/* as relay_link.c sync_io: follow the core's attempts */
static void link_sync(sim *s, vlink *l)
{
    ir_rlc_state st = ir_rlc_get_state(l->core);
    uint64_t att = ir_rlc_attempt(l->core);
    if (l->stream >= 0 && (l->io_attempt != att || (st != IR_RLC_CONNECTING && st != IR_RLC_UP)))
        close_stream(s, l);
    if (st == IR_RLC_CONNECTING && l->io_attempt != att) {
        l->io_attempt = att;
        if (l->nstarted < 64)
            l->started_at[l->nstarted++] = s->now;
        event e;
        memset(&e, 0, sizeof e);
        e.at = s->now + 2 * s->relays[l->relay].one_way; /* SYN, SYN-ACK */
        e.kind = E_CONNECT;
        e.node = l->node;
        e.link = (int)(l - l->node->links);
        e.attempt = att;
        q_push(s, e);
    }
}

static void link_run(sim *s, vlink *l)
{
    ir_rlc_pump(l->core, s->now);
    link_out(s, l);
    ir_rlc_settle(l->core, s->now);
    link_sync(s, l);
}

static void link_recv(void *ctx, unsigned idx, const uint8_t src[32], uint8_t *data, size_t len,
                      uint64_t now)
{
    node *n = ctx;
    if (n->core) {
        ir_netaddr from;
        ir_netaddr_relay(&from, idx, src);
        ir_epc_recv(n->core, &from, data, len, now);
    } else if (n->ngot < 128) {
        size_t k = len < 31 ? len : 31;
        memcpy(n->got[n->ngot], data, k);
        n->got[n->ngot++][k] = 0;
    }
}

/* the endpoint core's output: relay paths go to the link of their index (ep.c shell_send) */
static void node_send(void *ctx, const ir_netaddr *to, const uint8_t *buf, size_t len, size_t seg)
{
    node *n = ctx;
    unsigned idx;
    const uint8_t *peer;
    CHECK(ir_netaddr_is_relay(to, &idx, &peer));
    if (!ir_netaddr_is_relay(to, &idx, &peer) || idx >= (unsigned)n->nlinks)
        return;
    vlink *l = &n->links[idx];
    ir_rlc_send(l->core, peer, buf, len, seg, n->s->now);
    link_out(n->s, l);
    link_sync(n->s, l);
}

/* ---- the simulator ---------------------------------------------------------------------------- */

static void sim_init(sim *s, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->rng = seed ? seed : 1;
    s->now = 1000 * SEC;
    for (int i = 0; i < MAX_NODES; i++)
        s->home[i] = -1;
}

static int add_relay(sim *s, uint64_t one_way)
{
    int r = s->nrelays++;
    s->relays[r].one_way = one_way;
    relay_up(s, r);
    return r;
}

/* a node with a link to every relay; with_core: an endpoint core on top */
static node *add_node(sim *s, int with_core)
{
    node *n = &s->nodes[s->nnodes];
    memset(n, 0, sizeof *n);
    n->s = s;
    n->idx = s->nnodes++;
    sim_random(s, n->key.bytes, sizeof n->key.bytes);
    iroh_secret_key_public(&n->key, &n->id);
    for (int r = 0; r < s->nrelays; r++) {
        vlink *l = &n->links[n->nlinks++];
        l->node = n;
        l->relay = r;
        l->stream = -1;
        char url[64];
        snprintf(url, sizeof url, "http://relay%d.sim", r);
        ir_rlc_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.url = url;
        cfg.idx = (unsigned)r;
        cfg.key = n->key;
        cfg.host = url + 7;
        cfg.random = sim_random;
        cfg.random_ctx = s;
        cfg.recv = link_recv;
        cfg.recv_ctx = n;
        CHECK(ir_rlc_new(&cfg, &l->core) == IROH_OK);
    }
    if (with_core) {
        ir_ep_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.key = n->key;
        cfg.alpns = ALPNS;
        cfg.alpn_lens = ALPN_LENS;
        cfg.n_alpns = 1;
        ir_epc_io io = {.send = node_send, .send_ctx = n, .random = sim_random, .random_ctx = s};
        CHECK(ir_epc_new(&cfg, &io, &n->core) == IROH_OK);
    }
    return n;
}

static int new_stream(sim *s)
{
    for (int i = 0; i < MAX_STREAMS; i++)
        if (!s->streams[i].used)
            return i;
    CHECK(0 && "out of virtual streams");
    return -1;
}

static void handle(sim *s, event *e)
{
    switch (e->kind) {
    case E_CONNECT: {
        vlink *l = &e->node->links[e->link];
        if (ir_rlc_get_state(l->core) != IR_RLC_CONNECTING || ir_rlc_attempt(l->core) != e->attempt)
            break; /* given up meanwhile */
        relay *r = &s->relays[l->relay];
        int i = r->core && !l->node->offline ? new_stream(s) : -1;
        if (i < 0) {
            if (l->nfailed < 64)
                l->failed_at[l->nfailed++] = s->now;
            ir_rlc_transport_failed(l->core, "connect: Connection refused", s->now);
            link_sync(s, l);
            break;
        }
        vstream *v = &s->streams[i];
        memset(v, 0, sizeof *v);
        v->used = 1;
        v->relay = l->relay;
        v->node = l->node;
        v->link = e->link;
        v->sc = ir_relay_core_accept(r->core, s->now);
        CHECK(v->sc != NULL);
        ir_relay_conn_set_user(v->sc, (void *)(intptr_t)i);
        l->stream = i;
        ir_rlc_transport_up(l->core, NULL, s->now);
        link_run(s, l);
        break;
    }
    case E_TO_SERVER: {
        vstream *v = &s->streams[e->stream];
        if (v->sc && !v->eof_to_server && s->relays[v->relay].core)
            ir_relay_core_recv(s->relays[v->relay].core, v->sc, e->data, e->len, s->now);
        break;
    }
    case E_EOF_SERVER: {
        vstream *v = &s->streams[e->stream];
        if (v->sc && s->relays[v->relay].core)
            ir_relay_core_eof(s->relays[v->relay].core, v->sc, s->now);
        break;
    }
    case E_TO_CLIENT:
    case E_EOF_CLIENT: {
        vstream *v = &s->streams[e->stream];
        vlink *l = &v->node->links[v->link];
        if (l->stream != e->stream)
            break; /* the link closed it */
        if (e->kind == E_TO_CLIENT && v->node->offline)
            break;
        if (e->kind == E_TO_CLIENT)
            ir_rlc_recv(l->core, e->data, e->len, s->now);
        else
            ir_rlc_eof(l->core, "the relay closed the connection");
        link_run(s, l);
        break;
    }
    }
    free(e->data);
    /* a stream both ends are done with is free again */
    if (e->kind != E_CONNECT) {
        vstream *v = &s->streams[e->stream];
        if (v->used && !v->sc && v->eof_to_client && v->eof_to_server &&
            v->node->links[v->link].stream != e->stream) {
            int pending = 0;
            for (size_t k = 0; k < s->nq && !pending; k++)
                pending = s->q[k].kind != E_CONNECT && s->q[k].stream == e->stream;
            if (!pending)
                v->used = 0;
        }
    }
}

/* as ep.c choose_home, for every node with links */
static void choose_homes(sim *s)
{
    for (int i = 0; i < s->nnodes; i++) {
        node *n = &s->nodes[i];
        int est[MAX_RELAYS];
        uint64_t lat[MAX_RELAYS];
        for (int r = 0; r < n->nlinks; r++) {
            est[r] = ir_rlc_established(n->links[r].core);
            lat[r] = ir_rlc_latency(n->links[r].core);
        }
        s->home[i] = ir_rlc_choose_home(s->home[i], est, lat, (size_t)n->nlinks);
    }
}

/* One step: flush, jump to the next event or deadline (not beyond limit), run what is
 * due. 0 once the clock stands at limit. */
static int sim_step(sim *s, uint64_t limit)
{
    for (int i = 0; i < s->nnodes; i++)
        if (s->nodes[i].core)
            ir_epc_flush(s->nodes[i].core, s->now);
    for (int r = 0; r < s->nrelays; r++)
        relay_drain(s, r);
    uint64_t next = s->nq ? s->q[0].at : UINT64_MAX;
    for (int i = 0; i < s->nnodes; i++) {
        node *n = &s->nodes[i];
        if (n->core && ir_epc_timeout(n->core) < next)
            next = ir_epc_timeout(n->core);
        for (int k = 0; k < n->nlinks; k++) {
            uint64_t t = ir_rlc_timeout(n->links[k].core);
            if (t && t < next)
                next = t;
        }
    }
    for (int r = 0; r < s->nrelays; r++) {
        uint64_t t = s->relays[r].core ? ir_relay_core_next_timeout(s->relays[r].core) : 0;
        if (t && t < next)
            next = t;
    }
    if (next > limit) {
        s->now = limit;
        return 0;
    }
    if (next > s->now)
        s->now = next;
    /* a deadline that does not go away once run would spin here: fail instead */
    if (s->now != s->stall_at) {
        s->stall_at = s->now;
        s->stall_steps = 0;
    } else if (++s->stall_steps > 100000) {
        CHECK(0 && "the clock stands still");
        return 0;
    }
    while (s->nq && s->q[0].at <= s->now) {
        event e = q_pop(s);
        handle(s, &e);
        for (int r = 0; r < s->nrelays; r++)
            relay_drain(s, r);
    }
    for (int r = 0; r < s->nrelays; r++) {
        uint64_t t = s->relays[r].core ? ir_relay_core_next_timeout(s->relays[r].core) : 0;
        if (t && t <= s->now) {
            ir_relay_core_on_timeout(s->relays[r].core, s->now);
            relay_drain(s, r);
        }
    }
    for (int i = 0; i < s->nnodes; i++) {
        node *n = &s->nodes[i];
        for (int k = 0; k < n->nlinks; k++) {
            vlink *l = &n->links[k];
            uint64_t t = ir_rlc_timeout(l->core);
            if (t && t <= s->now) {
                ir_rlc_tick(l->core, s->now);
                link_sync(s, l);
                link_run(s, l);
            }
        }
        if (n->core && ir_epc_timeout(n->core) <= s->now)
            ir_epc_on_timeout(n->core, s->now);
    }
    choose_homes(s);
    return 1;
}

static void run_until(sim *s, uint64_t t)
{
    while (sim_step(s, t))
        ;
}

static void sim_free(sim *s)
{
    for (int i = 0; i < s->nnodes; i++) {
        ir_epc_free(s->nodes[i].core);
        for (int k = 0; k < s->nodes[i].nlinks; k++)
            ir_rlc_free(s->nodes[i].links[k].core);
    }
    for (int r = 0; r < s->nrelays; r++)
        ir_relay_core_free(s->relays[r].core);
    while (s->nq) {
        event e = q_pop(s);
        free(e.data);
    }
    free(s->q);
}

static int all_established(sim *s, int r)
{
    for (int i = 0; i < s->nnodes; i++)
        if (!ir_rlc_established(s->nodes[i].links[r].core))
            return 0;
    return 1;
}

static void run_until_established(sim *s, int r, uint64_t limit)
{
    while (!all_established(s, r) && sim_step(s, limit))
        ;
}

/* ---- tests -------------------------------------------------------------------------------- */

static int conn_established(ir_conn *c)
{
    return c && ir_conn_get_state(c) == IR_CONN_ESTABLISHED;
}

/* Client c opens its next bidirectional stream and sends 30 kB on it; the server
 * connection sc echoes its peer stream number k back; the network runs until the client
 * has read the end, within 20 s of virtual time. Checks the bytes that came back. */
static void echo_round(sim *s, ir_conn *c, ir_conn *sc, uint64_t k)
{
    CHECK(sc != NULL);
    if (!sc)
        return;
    uint64_t sid = 0;
    CHECK(ir_conn_stream_open(c, 1, &sid) == 0);
    static uint8_t out[30000], in[30001], echo[4096];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (uint8_t)(i * 13 + (i >> 8));
    memset(in, 0, sizeof in);
    size_t sent = 0, got = 0;
    int fin = 0;
    while (!fin && sim_step(s, s->now + 20 * SEC)) {
        ir_event ev;
        while (ir_conn_poll_event(c, &ev))
            ;
        while (ir_conn_poll_event(sc, &ev))
            ;
        if (sent < sizeof out) {
            long w = ir_conn_stream_write(c, sid, out + sent, sizeof out - sent, 1);
            if (w > 0)
                sent += (size_t)w;
        }
        uint64_t code;
        long r;
        if (ir_conn_peer_streams(sc, 0) > k) {
            uint64_t id = ir_conn_peer_stream_id(sc, 0, k);
            while ((r = ir_conn_stream_read(sc, id, echo, sizeof echo, &code)) > 0)
                CHECK(ir_conn_stream_write(sc, id, echo, (size_t)r, 0) == r);
            if (r == 0)
                ir_conn_stream_write(sc, id, NULL, 0, 1);
        }
        while ((r = ir_conn_stream_read(c, sid, in + got, sizeof in - got, &code)) >= 0) {
            if (r == 0) {
                fin = 1;
                break;
            }
            got += (size_t)r;
        }
    }
    CHECK(fin && got == sizeof out);
    CHECK(memcmp(in, out, sizeof out) == 0);
}

/* A QUIC connection between two endpoint cores over one relay, from the links' first
 * connect: relay handshakes, then QUIC, a stream echoed back. */
static void test_connection_over_relay(void)
{
    sim s;
    sim_init(&s, 7);
    add_relay(&s, 10 * MS);
    node *a = add_node(&s, 1), *b = add_node(&s, 1);
    uint64_t t0 = s.now;
    ir_rlc_want(a->links[0].core, 1, s.now);
    ir_rlc_want(b->links[0].core, 1, s.now);
    link_sync(&s, &a->links[0]);
    link_sync(&s, &b->links[0]);
    run_until_established(&s, 0, s.now + 5 * SEC);
    CHECK(all_established(&s, 0));
    /* connect (1 RTT), upgrade (1), challenge/auth/confirm (1.5), first ping (1) */
    CHECK(s.now - t0 >= 4 * 20 * MS);
    CHECK(s.now - t0 < 10 * 20 * MS);
    CHECK_EQ_INT(ir_rlc_latency(a->links[0].core), 20 * MS); /* the keepalive round trip */
    CHECK_EQ_INT(ir_rlc_connects(a->links[0].core), 1);

    ir_netaddr via;
    ir_netaddr_relay(&via, 0, b->id.bytes);
    ir_conn *c = NULL, *sc = NULL;
    uint64_t t1 = s.now;
    CHECK(ir_epc_connect(a->core, &via, 1, &b->id, ALPNS, ALPN_LENS, 1, s.now, &c) == IROH_OK);
    while (!(conn_established(c) && conn_established(sc)) && sim_step(&s, t1 + 10 * SEC)) {
        ir_conn *x = ir_epc_accept(b->core);
        if (x)
            sc = x;
    }
    CHECK(conn_established(c) && conn_established(sc));
    CHECK(s.now - t1 >= 3 * 20 * MS); /* Initial, answer, Finished: each via the relay */
    ir_netaddr back;
    ir_netaddr_relay(&back, 0, a->id.bytes);
    CHECK(sc && ir_netaddr_eq(ir_conn_path_addr(sc), &back));

    /* a 30 kB stream there and back */
    echo_round(&s, c, sc, 0);
    ir_relay_server_stats st;
    ir_relay_core_stats(s.relays[0].core, &st);
    CHECK_EQ_INT(st.handshakes, 2);
    CHECK(st.frames_relayed >= 20); /* 30 kB both ways in QUIC packets */
    CHECK_EQ_INT(st.dropped_absent, 0);

    /* the relay restarts (down 200 ms): both links reconnect and the connection goes on;
     * a second stream is echoed too */
    relay_down(&s, 0);
    run_until(&s, s.now + 200 * MS);
    relay_up(&s, 0);
    echo_round(&s, c, sc, 1);
    CHECK(conn_established(c) && conn_established(sc));
    CHECK_EQ_INT(ir_rlc_connects(a->links[0].core), 2);
    CHECK_EQ_INT(ir_rlc_connects(b->links[0].core), 2);
    sim_free(&s);
}

/* Backoff after the relay went down: at once after the established connection broke,
 * then 10 ms doubling to 16 s, each delay in [b/2, b] after the failed attempt; same
 * seed, same times. Returns a hash of the attempt times. */
static uint64_t backoff_run(uint64_t seed)
{
    sim s;
    sim_init(&s, seed);
    add_relay(&s, 5 * MS);
    node *a = add_node(&s, 0);
    vlink *l = &a->links[0];
    ir_rlc_want(l->core, 1, s.now);
    link_sync(&s, l);
    run_until_established(&s, 0, s.now + 5 * SEC);
    CHECK(all_established(&s, 0));
    CHECK_EQ_INT(l->nstarted, 1);
    uint64_t down_at = s.now;
    relay_down(&s, 0);
    /* 16 failed attempts: 10, 20, ..., 10240, 16000, 16000, 16000, 16000 ms */
    while (l->nfailed < 17 && sim_step(&s, down_at + 200 * SEC))
        ;
    CHECK_EQ_INT(l->nfailed, 17);
    /* the broken connection: noticed after one way, retried at once */
    CHECK_EQ_INT(l->started_at[1], down_at + 5 * MS);
    uint64_t h = 1469598103934665603ull;
    uint32_t b = 0;
    for (int k = 1; k < 17; k++) {
        /* attempt k started, failed one round trip later (refused) */
        CHECK_EQ_INT(l->failed_at[k - 1], l->started_at[k] + 10 * MS);
        b = b ? b * 2 : 10;
        if (b > 16000)
            b = 16000;
        uint64_t gap = l->started_at[k + 1] - l->failed_at[k - 1];
        CHECK(gap >= (uint64_t)(b / 2) * MS && gap <= (uint64_t)b * MS);
        if (!(gap >= (uint64_t)(b / 2) * MS && gap <= (uint64_t)b * MS))
            fprintf(stderr, "attempt %d: gap %llu ns, backoff %u ms\n", k,
                    (unsigned long long)gap, b);
        h = (h ^ l->started_at[k + 1]) * 1099511628211ull;
    }
    CHECK(!ir_rlc_established(l->core));
    CHECK(strstr(ir_rlc_last_error(l->core), "refused") != NULL);
    /* back up: the next attempt connects; the backoff starts again from 10 ms after */
    relay_up(&s, 0);
    uint64_t next = ir_rlc_retry_at(l->core);
    CHECK(next > s.now && next <= s.now + 16 * SEC);
    run_until_established(&s, 0, next + 1 * SEC);
    CHECK(all_established(&s, 0));
    CHECK_EQ_INT(ir_rlc_connects(l->core), 2);
    CHECK(ir_rlc_last_error(l->core)[0] == 0);
    sim_free(&s);
    return h;
}

static void test_backoff(void)
{
    uint64_t h1 = backoff_run(11), h2 = backoff_run(11), h3 = backoff_run(12);
    CHECK(h1 == h2);
    CHECK(h1 != h3); /* the jitter comes from the injected source */
}

/* Datagrams sent while the link is down wait for it: within 3 s they are delivered after
 * the reconnect, older ones are dropped, and at most 64 wait. The sender's network goes
 * down (the relay and the receiver stay up). */
static void test_queue_while_down(void)
{
    sim s;
    sim_init(&s, 21);
    add_relay(&s, 5 * MS);
    node *a = add_node(&s, 0), *b = add_node(&s, 0);
    vlink *la = &a->links[0], *lb = &b->links[0];
    ir_rlc_want(la->core, 1, s.now);
    ir_rlc_want(lb->core, 1, s.now);
    link_sync(&s, la);
    link_sync(&s, lb);
    run_until_established(&s, 0, s.now + 5 * SEC);
    CHECK(all_established(&s, 0));
    /* up: straight through */
    ir_rlc_send(la->core, b->id.bytes, (const uint8_t *)"now", 3, 3, s.now);
    link_out(&s, la);
    run_until(&s, s.now + 100 * MS);
    CHECK(b->ngot == 1 && strcmp(b->got[0], "now") == 0);

    /* a is offline for 0.5 s: what it sent meanwhile goes out after its reconnect */
    node_offline(&s, a, 1);
    run_until(&s, s.now + 20 * MS);
    CHECK(!ir_rlc_ready(la->core));
    uint64_t t0 = s.now;
    ir_rlc_send(la->core, b->id.bytes, (const uint8_t *)"early", 5, 5, s.now);
    link_sync(&s, la);
    CHECK_EQ_INT(ir_rlc_queued(la->core), 1);
    run_until(&s, t0 + 500 * MS);
    CHECK_EQ_INT(b->ngot, 1);
    node_offline(&s, a, 0);
    run_until_established(&s, 0, t0 + 2900 * MS);
    CHECK(all_established(&s, 0));
    CHECK(s.now < t0 + 3 * SEC);
    CHECK_EQ_INT(ir_rlc_connects(la->core), 2);
    run_until(&s, s.now + 100 * MS);
    CHECK_EQ_INT(b->ngot, 2);
    CHECK(b->ngot >= 2 && strcmp(b->got[1], "early") == 0);
    CHECK_EQ_INT(ir_rlc_queued(la->core), 0);

    /* offline for longer: what waited 3 s is dropped at exactly 3 s, never delivered */
    node_offline(&s, a, 1);
    run_until(&s, s.now + 20 * MS);
    uint64_t t1 = s.now;
    for (int i = 0; i < 70; i++)
        ir_rlc_send(la->core, b->id.bytes, (const uint8_t *)"late", 4, 4, s.now);
    CHECK_EQ_INT(ir_rlc_queued(la->core), IR_RLC_QUEUE_MAX);
    run_until(&s, t1 + 3 * SEC - 1);
    CHECK_EQ_INT(ir_rlc_queued(la->core), IR_RLC_QUEUE_MAX);
    run_until(&s, t1 + 3 * SEC);
    CHECK_EQ_INT(ir_rlc_queued(la->core), 0);
    run_until(&s, t1 + 5 * SEC);
    node_offline(&s, a, 0);
    run_until_established(&s, 0, s.now + 20 * SEC);
    CHECK(all_established(&s, 0));
    CHECK_EQ_INT(ir_rlc_connects(la->core), 3);
    run_until(&s, s.now + 100 * MS);
    CHECK_EQ_INT(b->ngot, 2);
    sim_free(&s);
}

/* The home relay: the lower latency wins; a lower one replaces the home only below 2/3
 * of its latency; when the home goes down the other takes over. */
static void test_home_relay(void)
{
    /* the rule itself */
    int est[2] = {1, 1};
    uint64_t lat[2] = {40 * MS, 30 * MS};
    CHECK_EQ_INT(ir_rlc_choose_home(-1, est, lat, 2), 1);
    CHECK_EQ_INT(ir_rlc_choose_home(0, est, lat, 2), 0); /* 30 is not below 2/3 of 40 */
    lat[1] = 26 * MS;
    CHECK_EQ_INT(ir_rlc_choose_home(0, est, lat, 2), 1);
    est[0] = 0;
    lat[1] = 100 * MS;
    CHECK_EQ_INT(ir_rlc_choose_home(0, est, lat, 2), 1); /* the home is down */
    est[1] = 0;
    CHECK_EQ_INT(ir_rlc_choose_home(0, est, lat, 2), 0); /* none up: no change */
    CHECK_EQ_INT(ir_rlc_choose_home(-1, est, lat, 2), -1);

    sim s;
    sim_init(&s, 31);
    add_relay(&s, 20 * MS); /* 40 ms round trip */
    add_relay(&s, 15 * MS); /* 30 ms */
    node *a = add_node(&s, 0);
    for (int r = 0; r < 2; r++) {
        ir_rlc_want(a->links[r].core, 1, s.now);
        link_sync(&s, &a->links[r]);
    }
    /* relay 1 answers sooner: home first */
    while (s.home[0] < 0 && sim_step(&s, s.now + 5 * SEC))
        ;
    CHECK_EQ_INT(s.home[0], 1);
    run_until_established(&s, 0, s.now + 5 * SEC);
    CHECK_EQ_INT(ir_rlc_latency(a->links[0].core), 40 * MS);
    CHECK_EQ_INT(ir_rlc_latency(a->links[1].core), 30 * MS);
    CHECK_EQ_INT(s.home[0], 1);
    /* the home goes down: failover once its link notices (one way later) */
    uint64_t t = s.now;
    relay_down(&s, 1);
    run_until(&s, t + 15 * MS - 1);
    CHECK_EQ_INT(s.home[0], 1);
    run_until(&s, t + 15 * MS);
    CHECK_EQ_INT(s.home[0], 0);
    /* back, 30 ms against 40: not below 2/3, the home stays */
    relay_up(&s, 1);
    run_until_established(&s, 1, s.now + 20 * SEC);
    CHECK(ir_rlc_established(a->links[1].core));
    run_until(&s, s.now + 1 * SEC);
    CHECK_EQ_INT(s.home[0], 0);
    /* relay 1 gets faster (5 ms one way): its next keepalive (15 s) shows 10 ms, below
     * 2/3 of 40: it becomes the home again */
    s.relays[1].one_way = 5 * MS;
    run_until(&s, s.now + 20 * SEC);
    CHECK_EQ_INT(ir_rlc_latency(a->links[1].core), 10 * MS);
    CHECK_EQ_INT(s.home[0], 1);
    sim_free(&s);
}

/* A link not kept for good closes 60 s after its last use (keepalives do not count) and
 * the relay sees its connection end. */
static void test_unused_close(void)
{
    sim s;
    sim_init(&s, 41);
    add_relay(&s, 5 * MS);
    node *a = add_node(&s, 0), *b = add_node(&s, 0);
    vlink *la = &a->links[0];
    ir_rlc_want(b->links[0].core, 1, s.now);
    link_sync(&s, &b->links[0]);
    uint64_t t0 = s.now;
    ir_rlc_send(la->core, b->id.bytes, (const uint8_t *)"hi", 2, 2, s.now);
    link_sync(&s, la);
    run_until(&s, t0 + 1 * SEC);
    CHECK(ir_rlc_established(la->core));
    CHECK(b->ngot == 1 && strcmp(b->got[0], "hi") == 0);
    uint64_t t1 = s.now;
    ir_rlc_send(la->core, b->id.bytes, (const uint8_t *)"again", 5, 5, t1); /* a use */
    link_out(&s, la);
    run_until(&s, t1 + 60 * SEC - 1);
    CHECK(ir_rlc_established(la->core));
    CHECK(la->stream >= 0);
    run_until(&s, t1 + 60 * SEC);
    CHECK_EQ_INT(ir_rlc_get_state(la->core), IR_RLC_IDLE);
    CHECK(la->stream < 0);
    CHECK_EQ_INT(ir_rlc_timeout(la->core), 0);
    /* the relay sees the end one way later and drops the connection */
    run_until(&s, s.now + 100 * MS);
    ir_relay_server_stats st;
    ir_relay_core_stats(s.relays[0].core, &st);
    CHECK_EQ_INT(st.conns, 1); /* b's, kept for good */
    CHECK_EQ_INT(st.disconnects, 1);
    int open = 0;
    for (int i = 0; i < MAX_STREAMS; i++)
        open += s.streams[i].used && s.streams[i].sc != NULL;
    CHECK_EQ_INT(open, 1); /* b's, kept for good */
    CHECK(ir_rlc_established(b->links[0].core));
    /* used again: it connects again */
    ir_rlc_send(la->core, b->id.bytes, (const uint8_t *)"later", 5, 5, s.now);
    link_sync(&s, la);
    run_until(&s, s.now + 1 * SEC);
    CHECK_EQ_INT(ir_rlc_connects(la->core), 2);
    CHECK(b->ngot == 3 && strcmp(b->got[2], "later") == 0);
    sim_free(&s);
}

int main(void)
{
    RUN(test_connection_over_relay);
    RUN(test_backoff);
    RUN(test_queue_while_down);
    RUN(test_home_relay);
    RUN(test_unused_close);
    TEST_EXIT();
}
