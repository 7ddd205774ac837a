/* The relay as a path of a connection, through the endpoint cores (ep_core.h) on a small
 * virtual network: UDP between two addresses, and a relay that carries a datagram sent to
 * relay path (link 0, peer id) to that peer, where it arrives from relay path (link 0,
 * sender id), as the shell's relay links do. With holepunching on (multipath and NAT
 * traversal) a client whose path 0 is direct opens a relay path to its relay candidate:
 * the datagrams of that path (their own path ids and connection ids) are routed by the
 * cores to the connection on both sides, the path is validated, both cores report the
 * relay link in use (so the shell keeps it up), and, the direct path blackholed, the
 * data still arrives over the relay. Virtual clock, one thread. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "sim_rng.h"

#include "endpoint/ep_core.h"
#include "endpoint/relay_link.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define MAXQ 4096

static const char ALPN[] = "relaypath/0";
static const uint8_t *ALPNS[1] = {(const uint8_t *)ALPN};
static const size_t ALPN_LENS[1] = {sizeof ALPN - 1};

static uint64_t rng_state = 7;

static void sim_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    sim_rng_fill(&rng_state, buf, len);
}

typedef struct node {
    struct net *net;
    ir_epc *core;
    iroh_secret_key key;
    iroh_endpoint_id id;
    ir_netaddr udp;
    uint64_t relay_in; /* datagrams that came over the relay */
} node;

typedef struct pkt {
    uint64_t at;
    int to;
    ir_netaddr from;
    size_t len;
    uint8_t data[1500];
} pkt;

typedef struct net {
    node n[2];
    pkt *q;
    size_t nq;
    uint64_t now;
    int direct_down; /* UDP between the two is dropped */
    uint64_t udp_delay, relay_delay;
} net;

static void enqueue(net *w, int to, const ir_netaddr *from, const uint8_t *b, size_t len,
                    uint64_t delay)
{
    if (w->nq == MAXQ || len > sizeof w->q[0].data)
        return;
    pkt *p = &w->q[w->nq++];
    p->at = w->now + delay;
    p->to = to;
    p->from = *from;
    p->len = len;
    memcpy(p->data, b, len);
}

static void node_send(void *ctx, const ir_netaddr *to, const uint8_t *buf, size_t len, size_t seg)
{
    node *me = ctx;
    net *w = me->net;
    int self = me == &w->n[0] ? 0 : 1, other = 1 - self;
    for (size_t off = 0; off < len; off += seg) {
        size_t n = len - off < seg ? len - off : seg;
        unsigned idx;
        const uint8_t *id;
        if (ir_netaddr_is_relay(to, &idx, &id)) {
            if (idx == 0 && memcmp(id, w->n[other].id.bytes, 32) == 0) {
                ir_netaddr from;
                ir_netaddr_relay(&from, 0, me->id.bytes);
                enqueue(w, other, &from, buf + off, n, w->relay_delay);
            }
        } else if (ir_netaddr_eq(to, &w->n[other].udp) && !w->direct_down) {
            enqueue(w, other, &me->udp, buf + off, n, w->udp_delay);
        }
    }
}

static void node_init(net *w, int i, const char *udp, int accept, uint64_t seed)
{
    node *n = &w->n[i];
    n->net = w;
    for (int k = 0; k < 32; k++)
        n->key.bytes[k] = (uint8_t)(seed * 31 + (uint64_t)k * 7 + (uint64_t)i);
    iroh_secret_key_public(&n->key, &n->id);
    iroh_socket_addr a;
    iroh_socket_addr_parse(udp, &a);
    ir_netaddr_from_socket_addr(&n->udp, &a);
    ir_ep_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.key = n->key;
    cfg.holepunching = 2;
    if (accept) {
        cfg.alpns = ALPNS;
        cfg.alpn_lens = ALPN_LENS;
        cfg.n_alpns = 1;
    }
    ir_epc_io io = {.send = node_send, .send_ctx = n, .random = sim_random,
                    .random_ctx = NULL};
    CHECK_EQ_INT(ir_epc_new(&cfg, &io, &n->core), IROH_OK);
    /* its own candidate: the UDP address */
    ir_epc_set_sockets(n->core, &a, 1, 0);
}

/* one step: the earliest of the next delivery and the cores' timers; 0 past limit */
static int step(net *w, uint64_t limit)
{
    uint64_t t = UINT64_MAX;
    size_t qi = SIZE_MAX;
    for (size_t i = 0; i < w->nq; i++) {
        if (w->q[i].at < t) {
            t = w->q[i].at;
            qi = i;
        }
    }
    for (int i = 0; i < 2; i++) {
        uint64_t d = ir_epc_timeout(w->n[i].core);
        if (d < t) {
            t = d;
            qi = SIZE_MAX;
        }
    }
    if (t > limit)
        return 0;
    if (t > w->now)
        w->now = t;
    if (qi != SIZE_MAX) {
        pkt p = w->q[qi];
        w->q[qi] = w->q[--w->nq];
        node *n = &w->n[p.to];
        if (ir_netaddr_is_relay(&p.from, NULL, NULL))
            n->relay_in++;
        ir_epc_recv(n->core, &p.from, p.data, p.len, w->now);
    } else {
        for (int i = 0; i < 2; i++)
            ir_epc_on_timeout(w->n[i].core, w->now);
    }
    for (int i = 0; i < 2; i++)
        ir_epc_flush(w->n[i].core, w->now);
    return 1;
}

static void run_until(net *w, uint64_t t)
{
    while (step(w, t))
        ;
    if (w->now < t)
        w->now = t;
}

static int count_relay_paths(const ir_conn *c, int *validated)
{
    ir_conn_path_info p[16];
    size_t n = ir_conn_paths(c, p, 16);
    int k = 0;
    *validated = 0;
    for (size_t i = 0; i < n && i < 16; i++) {
        if (!p[i].abandoned && ir_netaddr_is_relay(&p[i].addr, NULL, NULL)) {
            k++;
            *validated += p[i].validated;
        }
    }
    return k;
}

TEST(relay_path_beside_a_direct_one)
{
    rng_state = 7;
    net w;
    memset(&w, 0, sizeof w);
    w.q = calloc(MAXQ, sizeof *w.q);
    w.udp_delay = 5 * MS;
    w.relay_delay = 20 * MS;
    w.now = 1 * SEC;
    node_init(&w, 0, "10.0.0.1:1000", 0, 7);
    node_init(&w, 1, "10.0.0.2:2000", 1, 7);
    ir_netaddr cand[2];
    cand[0] = w.n[1].udp;
    ir_netaddr_relay(&cand[1], 0, w.n[1].id.bytes);
    ir_conn *c = NULL;
    CHECK_EQ_INT(ir_epc_connect(w.n[0].core, cand, 2, &w.n[1].id, ALPNS, ALPN_LENS, 1, w.now, &c),
                 IROH_OK);
    run_until(&w, w.now + 2 * SEC);
    ir_conn *sc = ir_epc_accept(w.n[1].core);
    CHECK(c && sc);
    if (!c || !sc)
        goto out;
    CHECK_EQ_INT(ir_conn_get_state(c), IR_CONN_ESTABLISHED);
    CHECK_EQ_INT(ir_conn_multipath(c), 1);
    CHECK_EQ_INT(ir_conn_nat_traversal(c), 1);
    /* path 0 went direct (the UDP answer comes first) */
    CHECK(ir_netaddr_eq(ir_conn_path_addr(c), &w.n[1].udp));
    /* the client opened a relay path as a backup, validated over relay datagrams that
     * both cores routed to the connection by their connection ids */
    int v_c = 0, v_s = 0;
    CHECK_EQ_INT(count_relay_paths(c, &v_c), 1);
    CHECK_EQ_INT(v_c, 1);
    CHECK_EQ_INT(count_relay_paths(sc, &v_s), 1);
    CHECK(w.n[0].relay_in > 0 && w.n[1].relay_in > 0);
    /* both cores say the link carries a path */
    unsigned idx[4];
    CHECK_EQ_INT((int)ir_epc_relay_links_in_use(w.n[0].core, idx, 4), 1);
    CHECK_EQ_INT((int)idx[0], 0);
    CHECK_EQ_INT((int)ir_epc_relay_links_in_use(w.n[1].core, idx, 4), 1);
    /* the relay path stays through a quiet minute (backup, not abandoned) */
    run_until(&w, w.now + 60 * SEC);
    CHECK_EQ_INT(count_relay_paths(c, &v_c), 1);
    CHECK_EQ_INT((int)ir_epc_relay_links_in_use(w.n[0].core, idx, 4), 1);

    /* the direct path dies: data still arrives, over the relay */
    w.direct_down = 1;
    uint64_t sid;
    CHECK_EQ_INT(ir_conn_stream_open(c, 1, &sid), 0);
    static uint8_t msg[20000], got[20000];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 13);
    CHECK_EQ_INT((int)ir_conn_stream_write(c, sid, msg, sizeof msg, 1), (int)sizeof msg);
    uint64_t relay_before = w.n[1].relay_in;
    size_t have = 0;
    uint64_t end = w.now + 30 * SEC;
    while (have < sizeof msg && w.now < end) {
        run_until(&w, w.now + 50 * MS);
        for (;;) {
            uint64_t code;
            long n = ir_conn_stream_read(sc, sid, got + have, sizeof got - have, &code);
            if (n <= 0)
                break;
            have += (size_t)n;
        }
    }
    CHECK_EQ_INT((int)have, (int)sizeof msg);
    CHECK(memcmp(got, msg, sizeof msg) == 0);
    CHECK(w.n[1].relay_in > relay_before);
    CHECK(ir_conn_get_state(c) == IR_CONN_ESTABLISHED);
out:
    ir_epc_free(w.n[0].core);
    ir_epc_free(w.n[1].core);
    free(w.q);
}

int main(void)
{
    RUN(relay_path_beside_a_direct_one);
    TEST_EXIT();
}
