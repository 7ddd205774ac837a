/* The whole-stack simulator: endpoint cores (endpoint/ep_core.h) with their connections,
 * relay links (endpoint/relay_link_core.h) to relay server cores (relay/server.h), UDP
 * paths between endpoints, and NAT boxes (sim_nat.h) in between, on one virtual clock, in
 * one thread and without sockets. Included by the simulator tests (test_sim_relay,
 * test_sim_nat); everything is static.
 *
 * UDP. Address spaces ("realms"): realm 0 is the internet; each NAT box adds one, its
 * inside, and sits in an outer realm (0, or another box's inside). A node has an IPv4
 * address:port in one realm and a link to that realm's router; a box has a link to its
 * outer router (its WAN side; the inside side costs nothing). A link has a one-way delay,
 * a random jitter (which reorders), a loss rate and a blackhole switch, all changeable
 * mid-test; each datagram pays the links it crosses (sender's, boxes' WAN links, the
 * receiver's). A router delivers to the node with the destination address in its realm,
 * hands a datagram for a box's public address to that box (its filter may drop it), and
 * sends anything else out through the box it is the inside of (which rewrites the source;
 * to its own public address: dropped, no hairpinning); otherwise it is dropped.
 *
 * Relays. A relay server core is reachable from every node by a virtual byte stream (TCP:
 * reliable, in order, a fixed one-way delay per relay; NAT boxes are not modelled on it).
 * A transport comes up one round trip after the link asks for it, or fails then
 * ("connection refused") while the relay is down or the node offline. A relay going down
 * closes its streams (each end sees the end one way later). A datagram to a relay path
 * address goes to the node's link of that index, as ep.c does.
 *
 * Determinism: one seeded generator (sim_rng.h) gives every random choice (keys,
 * connection ids, the relay client's WebSocket keys and masks, the server's challenges,
 * the links' backoff jitter, the UDP links' jitter and losses); events at the same
 * virtual time run in the order they were made. The trace is an FNV-1a hash over every
 * datagram that reaches an endpoint (by UDP or by relay): the time, from, to and length;
 * the same seed gives the same trace. (TLS key shares come from GnuTLS, but they change
 * neither sizes nor timing.) SIM_TRACE=1 in the environment prints each such datagram on
 * stderr (virtual seconds, udp/relay, from, to, length). */
#ifndef IR_TEST_SIM_NET_H
#define IR_TEST_SIM_NET_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "test.h"
#include "sim_nat.h"
#include "sim_rng.h"

#include "endpoint/ep_core.h"
#include "endpoint/relay_link.h"
#include "endpoint/relay_link_core.h"
#include "relay/server.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define MAX_NODES 8
#define MAX_RELAYS 2
#define MAX_NATS 4
#define MAX_STREAMS 256
#define SIM_RAW 128

static const char SIM_ALPN[] = "sim/0";
static const uint8_t *ALPNS[1] = {(const uint8_t *)SIM_ALPN};
static const size_t ALPN_LENS[1] = {sizeof SIM_ALPN - 1};

typedef struct sim sim;

/* a UDP link between a node (or a box's WAN side) and its realm's router */
typedef struct sim_link {
    uint64_t delay, jitter; /* one way, ns */
    unsigned loss_permille;
    int blackhole;          /* carries nothing */
} sim_link;

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
    ir_epc *core; /* NULL: what reaches it is recorded instead */
    int offline;  /* its network is down: its relay streams broke, connects fail */
    int down;     /* gone: its core runs no more (no flush, no timers), receives nothing */
    vlink links[MAX_RELAYS];
    int nlinks;
    /* UDP */
    int has_udp;
    int realm;
    ir_netaddr addr; /* its own address (inside its realm) */
    sim_link link;
    size_t udp_recv, udp_sent;
    uint64_t last_recv;
    /* raw nodes: datagrams received through a relay (text), and by UDP (the sources) */
    char got[SIM_RAW][32];
    int ngot;
    ir_netaddr udp_from[SIM_RAW];
    int nudp;
    uint8_t raw[16][1500]; /* the first 16 UDP datagrams themselves */
    size_t raw_len[16];
    size_t nraw;
} node;

typedef struct relay {
    ir_relay_core *core; /* NULL while down */
    uint64_t one_way;
} relay;

typedef struct sim_natbox {
    sim_nat box;
    int outer;    /* its WAN side's realm */
    sim_link wan;
} sim_natbox;

typedef struct vstream {
    int used;
    int relay;
    node *node;
    int link;
    ir_relay_conn *sc; /* NULL once released */
    int eof_to_client, eof_to_server;
} vstream;

enum {
    E_CONNECT,
    E_TO_SERVER,
    E_TO_CLIENT,
    E_EOF_CLIENT,
    E_EOF_SERVER,
    E_UDP_ROUTER, /* a datagram at the router of `realm` */
    E_UDP_NODE,   /* ... at node `target` */
    E_UDP_NAT_IN, /* ... at the public side of box `target` */
};

typedef struct event {
    uint64_t at, seq;
    int kind;
    int stream;
    node *node;
    int link;
    uint64_t attempt;
    int realm, target;
    ir_netaddr from, to;
    size_t len;
    uint8_t *data;
} event;

struct sim {
    uint64_t now, rng, seq;
    node nodes[MAX_NODES];
    int nnodes;
    relay relays[MAX_RELAYS];
    int nrelays;
    sim_natbox nats[MAX_NATS];
    int nnats;
    vstream streams[MAX_STREAMS];
    event *q;
    size_t nq, cap;
    int home[MAX_NODES];
    uint64_t stall_at, stall_steps; /* steps without the clock moving */
    uint64_t trace;                 /* FNV-1a over every datagram delivered */
    uint64_t delivered, relayed, udp_lost, udp_unroutable, udp_nat_dropped;
    int verbose;                    /* print every datagram delivered */
};

static inline void sim_random(void *ctx, uint8_t *buf, size_t len)
{
    sim *s = ctx;
    sim_rng_fill(&s->rng, buf, len);
}

static inline int ev_before(const event *a, const event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static inline void q_push(sim *s, event e)
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

static inline event q_pop(sim *s)
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

static inline void push_bytes(sim *s, int kind, int stream, const uint8_t *p, size_t n,
                              uint64_t delay)
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

static inline void fnv(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        *h ^= b[i];
        *h *= 1099511628211ull;
    }
}

static inline void addr_str(const ir_netaddr *a, char *out, size_t cap)
{
    uint32_t ip;
    uint16_t port;
    unsigned idx;
    const uint8_t *peer;
    if (sim_addr_parts(a, &ip, &port) == 0)
        snprintf(out, cap, "%u.%u.%u.%u:%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255,
                 ip & 255, port);
    else if (ir_netaddr_is_relay(a, &idx, &peer))
        snprintf(out, cap, "relay%u/%02x%02x%02x", idx, peer[0], peer[1], peer[2]);
    else
        snprintf(out, cap, "?");
}

/* one datagram reaching an endpoint: into the trace */
static inline void trace_dgram(sim *s, const char *how, const ir_netaddr *from,
                               const ir_netaddr *to,
                        size_t len)
{
    s->delivered++;
    fnv(&s->trace, &s->now, sizeof s->now);
    fnv(&s->trace, from->data, from->len);
    fnv(&s->trace, to->data, to->len);
    uint64_t l = len;
    fnv(&s->trace, &l, sizeof l);
    if (s->verbose) {
        char f[64], t[64];
        addr_str(from, f, sizeof f);
        addr_str(to, t, sizeof t);
        fprintf(stderr, "%12.6f %s %s -> %s %zu\n", (double)(s->now % (1000 * SEC)) / 1e9, how,
                f, t, len);
    }
}

/* ---- the relay servers ------------------------------------------------------------------- */

static inline void relay_up(sim *s, int r)
{
    ir_relay_server_config cfg;
    ir_relay_server_config_init(&cfg);
    CHECK(ir_relay_core_new(&cfg, sim_random, s, &s->relays[r].core) == IROH_OK);
}

/* A crash: every stream of the relay ends (both ends see it after the one-way delay). */
static inline void relay_down(sim *s, int r)
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
static inline void node_offline(sim *s, node *n, int off)
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
static inline void relay_drain(sim *s, int r)
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

/* ---- the links' shell -------------------------------------------------------------------- */

static inline void link_out(sim *s, vlink *l)
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

static inline void close_stream(sim *s, vlink *l)
{
    vstream *v = &s->streams[l->stream];
    if (!v->eof_to_server) {
        v->eof_to_server = 1;
        push_bytes(s, E_EOF_SERVER, l->stream, NULL, 0, s->relays[l->relay].one_way);
    }
    l->stream = -1;
}

/* as relay_link.c sync_io: follow the core's attempts */
static inline void link_sync(sim *s, vlink *l)
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

static inline void link_run(sim *s, vlink *l)
{
    ir_rlc_pump(l->core, s->now);
    link_out(s, l);
    ir_rlc_settle(l->core, s->now);
    link_sync(s, l);
}

static inline void link_recv(void *ctx, unsigned idx, const uint8_t src[32], uint8_t *data,
                             size_t len, uint64_t now)
{
    node *n = ctx;
    ir_netaddr from, to;
    ir_netaddr_relay(&from, idx, src);
    ir_netaddr_relay(&to, idx, n->id.bytes);
    if (n->down)
        return;
    n->s->relayed++;
    trace_dgram(n->s, "relay", &from, &to, len);
    if (n->core) {
        ir_epc_recv(n->core, &from, data, len, now);
    } else if (n->ngot < SIM_RAW) {
        size_t k = len < 31 ? len : 31;
        memcpy(n->got[n->ngot], data, k);
        n->got[n->ngot++][k] = 0;
    }
}

/* ---- UDP --------------------------------------------------------------------------------- */

/* a datagram onto a link towards event kind/realm/target: lost, blackholed, or delayed */
static inline void udp_hop(sim *s, const sim_link *l, int kind, int realm, int target,
                    const ir_netaddr *from, const ir_netaddr *to, const uint8_t *p, size_t n)
{
    if (l->blackhole || (l->loss_permille && sim_rng_next(&s->rng) % 1000 < l->loss_permille)) {
        s->udp_lost++;
        return;
    }
    event e;
    memset(&e, 0, sizeof e);
    e.at = s->now + l->delay + (l->jitter ? sim_rng_next(&s->rng) % l->jitter : 0);
    e.kind = kind;
    e.realm = realm;
    e.target = target;
    e.from = *from;
    e.to = *to;
    e.data = malloc(n ? n : 1);
    CHECK(e.data != NULL);
    if (!e.data)
        return;
    memcpy(e.data, p, n);
    e.len = n;
    q_push(s, e);
}

/* a node's datagram from its own address onto its link */
static inline void udp_send(sim *s, node *n, const ir_netaddr *to, const uint8_t *p, size_t len)
{
    if (!n->has_udp)
        return;
    n->udp_sent++;
    udp_hop(s, &n->link, E_UDP_ROUTER, n->realm, 0, &n->addr, to, p, len);
}

/* the router of a realm: to a node here, to a box's public side here, or out through the
 * box this realm is the inside of */
static inline void udp_route(sim *s, int realm, const ir_netaddr *from, const ir_netaddr *to,
                      const uint8_t *p, size_t len)
{
    uint32_t tip;
    uint16_t tport;
    if (sim_addr_parts(to, &tip, &tport) != 0) {
        s->udp_unroutable++;
        return;
    }
    for (int i = 0; i < s->nnodes; i++) {
        node *n = &s->nodes[i];
        if (n->has_udp && n->realm == realm && ir_netaddr_eq(&n->addr, to)) {
            udp_hop(s, &n->link, E_UDP_NODE, realm, i, from, to, p, len);
            return;
        }
    }
    for (int k = 0; k < s->nnats; k++) {
        sim_natbox *b = &s->nats[k];
        if (b->outer == realm && b->box.cfg.public_ip == tip) {
            udp_hop(s, &b->wan, E_UDP_NAT_IN, realm, k, from, to, p, len);
            return;
        }
    }
    if (realm > 0) {
        sim_natbox *b = &s->nats[realm - 1];
        ir_netaddr out;
        if (sim_nat_out(&b->box, from, to, s->now, &out) != 0) {
            s->udp_nat_dropped++;
            return;
        }
        udp_hop(s, &b->wan, E_UDP_ROUTER, b->outer, 0, &out, to, p, len);
        return;
    }
    s->udp_unroutable++;
}

static inline void udp_deliver(sim *s, node *n, const ir_netaddr *from, const ir_netaddr *to,
                        uint8_t *p, size_t len)
{
    if (n->link.blackhole || n->down)
        return; /* blackholed while in flight, or gone */
    trace_dgram(s, "udp", from, to, len);
    n->udp_recv++;
    n->last_recv = s->now;
    if (n->core) {
        ir_epc_recv(n->core, from, p, len, s->now);
        return;
    }
    if (n->nudp < SIM_RAW)
        n->udp_from[n->nudp++] = *from;
    if (n->nraw < 16 && len <= sizeof n->raw[0]) {
        memcpy(n->raw[n->nraw], p, len);
        n->raw_len[n->nraw++] = len;
    }
}

/* ---- the endpoints' output --------------------------------------------------------------- */

/* relay paths go to the link of their index (ep.c shell_send), the rest is UDP */
static inline void node_send(void *ctx, const ir_netaddr *to, const uint8_t *buf, size_t len,
                             size_t seg)
{
    node *n = ctx;
    sim *s = n->s;
    unsigned idx;
    const uint8_t *peer;
    if (!ir_netaddr_is_relay(to, &idx, &peer)) {
        for (size_t off = 0; off < len; off += seg)
            udp_send(s, n, to, buf + off, len - off < seg ? len - off : seg);
        return;
    }
    if (idx >= (unsigned)n->nlinks)
        return;
    vlink *l = &n->links[idx];
    ir_rlc_send(l->core, peer, buf, len, seg, s->now);
    link_out(s, l);
    link_sync(s, l);
}

/* ---- building a network ------------------------------------------------------------------ */

static inline void sim_init(sim *s, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->rng = seed ? seed : 1;
    s->now = 1000 * SEC; /* any start; not 0, so that "0 = none" bugs show */
    s->trace = 1469598103934665603ull;
    s->verbose = getenv("SIM_TRACE") != NULL;
    for (int i = 0; i < MAX_NODES; i++)
        s->home[i] = -1;
}

static inline int add_relay(sim *s, uint64_t one_way)
{
    int r = s->nrelays++;
    s->relays[r].one_way = one_way;
    relay_up(s, r);
    return r;
}

/* A NAT box in realm `outer` (its public address cfg->public_ip there); returns the realm
 * of its inside. */
static inline int add_nat(sim *s, int outer, const sim_nat_config *cfg, uint64_t wan_delay)
{
    int k = s->nnats++;
    CHECK(k < MAX_NATS);
    sim_nat_init(&s->nats[k].box, cfg);
    s->nats[k].outer = outer;
    memset(&s->nats[k].wan, 0, sizeof s->nats[k].wan);
    s->nats[k].wan.delay = wan_delay;
    return k + 1;
}

static inline sim_nat *nat_of(sim *s, int realm)
{
    return realm > 0 ? &s->nats[realm - 1].box : NULL;
}

/* (Re)starts node n's endpoint core with cfg and the node's key: a restart loses all its
 * state. */
static inline int node_start(node *n, const ir_ep_config *cfg)
{
    ir_epc_free(n->core);
    n->core = NULL;
    ir_ep_config c = *cfg;
    c.key = n->key;
    ir_epc_io io = {.send = node_send, .send_ctx = n, .random = sim_random, .random_ctx = n->s};
    int rc = ir_epc_new(&c, &io, &n->core);
    CHECK(rc == IROH_OK);
    return rc;
}

/* A node with a link to every relay; cfg: an endpoint core with that configuration (its
 * key is the node's), NULL: a raw node, which records what reaches it. */
static inline node *add_node_cfg(sim *s, const ir_ep_config *cfg)
{
    CHECK(s->nnodes < MAX_NODES);
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
        ir_rlc_config rc;
        memset(&rc, 0, sizeof rc);
        rc.url = url;
        rc.idx = (unsigned)r;
        rc.key = n->key;
        rc.host = url + 7;
        rc.random = sim_random;
        rc.random_ctx = s;
        rc.recv = link_recv;
        rc.recv_ctx = n;
        CHECK(ir_rlc_new(&rc, &l->core) == IROH_OK);
    }
    if (cfg)
        node_start(n, cfg);
    return n;
}

/* An endpoint configuration: the simulator's ALPN accepted, everything else default. */
static inline void sim_ep_config(ir_ep_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->alpns = ALPNS;
    cfg->alpn_lens = ALPN_LENS;
    cfg->n_alpns = 1;
}

static inline node *add_node(sim *s, int with_core)
{
    ir_ep_config cfg;
    sim_ep_config(&cfg);
    return add_node_cfg(s, with_core ? &cfg : NULL);
}

/* gives node n a UDP address ip:port in realm, behind a link of one-way delay */
static inline void node_udp(node *n, int realm, uint32_t ip, uint16_t port, uint64_t delay)
{
    n->has_udp = 1;
    n->realm = realm;
    sim_addr(&n->addr, ip, port);
    memset(&n->link, 0, sizeof n->link);
    n->link.delay = delay;
}

/* the node's relay path address as its peers use it (relay r, its EndpointId) */
static inline ir_netaddr relay_addr(const node *n, int r)
{
    ir_netaddr a;
    ir_netaddr_relay(&a, (unsigned)r, n->id.bytes);
    return a;
}

static inline int new_stream(sim *s)
{
    for (int i = 0; i < MAX_STREAMS; i++)
        if (!s->streams[i].used)
            return i;
    CHECK(0 && "out of virtual streams");
    return -1;
}

/* ---- running ----------------------------------------------------------------------------- */

static inline void handle(sim *s, event *e)
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
    case E_UDP_ROUTER:
        udp_route(s, e->realm, &e->from, &e->to, e->data, e->len);
        break;
    case E_UDP_NODE:
        udp_deliver(s, &s->nodes[e->target], &e->from, &e->to, e->data, e->len);
        break;
    case E_UDP_NAT_IN: {
        sim_natbox *b = &s->nats[e->target];
        ir_netaddr in_to;
        if (sim_nat_in(&b->box, &e->from, &e->to, s->now, &in_to) != 0)
            s->udp_nat_dropped++;
        else
            udp_route(s, e->target + 1, &e->from, &in_to, e->data, e->len);
        break;
    }
    }
    free(e->data);
    /* a stream both ends are done with is free again */
    if (e->kind >= E_TO_SERVER && e->kind <= E_EOF_SERVER) {
        vstream *v = &s->streams[e->stream];
        if (v->used && !v->sc && v->eof_to_client && v->eof_to_server &&
            v->node->links[v->link].stream != e->stream) {
            int pending = 0;
            for (size_t k = 0; k < s->nq && !pending; k++)
                pending = s->q[k].kind >= E_TO_SERVER && s->q[k].kind <= E_EOF_SERVER &&
                          s->q[k].stream == e->stream;
            if (!pending)
                v->used = 0;
        }
    }
}

/* as ep.c choose_home, for every node with links */
static inline void choose_homes(sim *s)
{
    for (int i = 0; i < s->nnodes; i++) {
        node *n = &s->nodes[i];
        if (!n->nlinks)
            continue;
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
static inline int sim_step(sim *s, uint64_t limit)
{
    for (int i = 0; i < s->nnodes; i++)
        if (s->nodes[i].core && !s->nodes[i].down)
            ir_epc_flush(s->nodes[i].core, s->now);
    for (int r = 0; r < s->nrelays; r++)
        relay_drain(s, r);
    uint64_t next = s->nq ? s->q[0].at : UINT64_MAX;
    for (int i = 0; i < s->nnodes; i++) {
        node *n = &s->nodes[i];
        if (n->core && !n->down && ir_epc_timeout(n->core) < next)
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
        if (n->core && !n->down && ir_epc_timeout(n->core) <= s->now)
            ir_epc_on_timeout(n->core, s->now);
    }
    choose_homes(s);
    return 1;
}

static inline void run_until(sim *s, uint64_t t)
{
    while (sim_step(s, t))
        ;
}

static inline void sim_free(sim *s)
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

static inline int all_established(sim *s, int r)
{
    for (int i = 0; i < s->nnodes; i++)
        if (!ir_rlc_established(s->nodes[i].links[r].core))
            return 0;
    return 1;
}

static inline void run_until_established(sim *s, int r, uint64_t limit)
{
    while (!all_established(s, r) && sim_step(s, limit))
        ;
}

/* Every node keeps its link to relay r for good; runs until all are established. */
static inline void relays_up(sim *s, int r, uint64_t limit)
{
    for (int i = 0; i < s->nnodes; i++) {
        ir_rlc_want(s->nodes[i].links[r].core, 1, s->now);
        link_sync(s, &s->nodes[i].links[r]);
    }
    run_until_established(s, r, limit);
}

/* What a reflector (a raw node on the internet: a STUN server, a relay's QUIC address
 * discovery) sees as node n's address: n sends it one datagram (through n's NATs, making
 * or refreshing their mappings); the source it arrives with. Runs the network up to 1 s. */
static inline int observe(sim *s, node *n, node *reflector, ir_netaddr *seen)
{
    int before = reflector->nudp;
    uint8_t probe[32] = "where am i";
    udp_send(s, n, &reflector->addr, probe, sizeof probe);
    uint64_t limit = s->now + 1 * SEC;
    while (reflector->nudp == before && sim_step(s, limit))
        ;
    if (reflector->nudp == before)
        return -1;
    *seen = reflector->udp_from[reflector->nudp - 1];
    return 0;
}

#endif
