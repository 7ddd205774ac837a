/* The NAT model of the simulator (sim_nat.h) on its own, on a virtual clock: mappings
 * (endpoint-independent, port-preserving with a fallback on a clash; symmetric), filters
 * (none, address-restricted, port-restricted), idle timeouts, no hairpinning; then the
 * whole stack in the simulator (sim_net.h): endpoints behind NAT boxes reaching each other
 * through a relay server. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "sim_nat.h"
#include "sim_net.h"

static const uint32_t PUB = 0xcb007101; /* 203.0.113.1 */

static void nat_cfg(sim_nat_config *c, sim_nat_mapping m, sim_nat_filter f)
{
    memset(c, 0, sizeof *c);
    c->public_ip = PUB;
    c->mapping = m;
    c->filter = f;
    c->port_preserving = 1;
    c->timeout_ns = 30 * SEC;
}

static int port_of(const ir_netaddr *a)
{
    uint32_t ip;
    uint16_t port;
    return sim_addr_parts(a, &ip, &port) == 0 ? port : -1;
}

static int is_at(const ir_netaddr *a, uint32_t ip, uint16_t port)
{
    ir_netaddr b;
    sim_addr(&b, ip, port);
    return ir_netaddr_eq(a, &b);
}

/* Endpoint-independent, port-preserving: the inside port is kept, the same mapping serves
 * every destination; a second inside host with the same port falls back to the counter. */
static void test_nat_ei_mapping(void)
{
    sim_nat n;
    sim_nat_config c;
    nat_cfg(&c, SIM_NAT_MAP_EI, SIM_NAT_FILTER_PORT);
    c.first_port = 50000;
    sim_nat_init(&n, &c);
    uint64_t t = 1000 * SEC;
    ir_netaddr h1, h2, x, y, out;
    sim_addr(&h1, sim_ip(192, 168, 1, 2), 4000);
    sim_addr(&h2, sim_ip(192, 168, 1, 3), 4000);
    sim_addr(&x, sim_ip(198, 51, 100, 7), 443);
    sim_addr(&y, sim_ip(198, 51, 100, 8), 9000);
    CHECK(sim_nat_out(&n, &h1, &x, t, &out) == 0);
    CHECK(is_at(&out, PUB, 4000));
    CHECK(sim_nat_out(&n, &h1, &y, t, &out) == 0);
    CHECK(is_at(&out, PUB, 4000)); /* the same mapping for another destination */
    CHECK_EQ_INT(n.st.new_mappings, 1);
    CHECK(sim_nat_out(&n, &h2, &x, t, &out) == 0);
    CHECK(is_at(&out, PUB, 50000)); /* 4000 taken: the counter */
    CHECK_EQ_INT(n.st.port_clashes, 1);
    CHECK_EQ_INT(sim_nat_count(&n, t), 2);
    /* replies reach the right inside host */
    ir_netaddr to, pub;
    sim_addr(&pub, PUB, 50000);
    CHECK(sim_nat_in(&n, &x, &pub, t, &to) == 0);
    CHECK(ir_netaddr_eq(&to, &h2));
    sim_addr(&pub, PUB, 4000);
    CHECK(sim_nat_in(&n, &y, &pub, t, &to) == 0);
    CHECK(ir_netaddr_eq(&to, &h1));
    /* without port preservation the counter is used at once */
    c.port_preserving = 0;
    sim_nat_init(&n, &c);
    CHECK(sim_nat_out(&n, &h1, &x, t, &out) == 0);
    CHECK_EQ_INT(port_of(&out), 50000);
}

/* Symmetric: a new outside port for each destination address:port; a reply through the
 * wrong mapping is dropped. */
static void test_nat_symmetric(void)
{
    sim_nat n;
    sim_nat_config c;
    nat_cfg(&c, SIM_NAT_MAP_SYMMETRIC, SIM_NAT_FILTER_PORT);
    c.port_preserving = 0;
    sim_nat_init(&n, &c);
    uint64_t t = 5 * SEC;
    ir_netaddr h, x, x2, y, o1, o2, o3, o4, to;
    sim_addr(&h, sim_ip(10, 1, 0, 2), 4000);
    sim_addr(&x, sim_ip(198, 51, 100, 7), 443);
    sim_addr(&x2, sim_ip(198, 51, 100, 7), 444);
    sim_addr(&y, sim_ip(198, 51, 100, 8), 443);
    CHECK(sim_nat_out(&n, &h, &x, t, &o1) == 0);
    CHECK(sim_nat_out(&n, &h, &x2, t, &o2) == 0);
    CHECK(sim_nat_out(&n, &h, &y, t, &o3) == 0);
    CHECK(sim_nat_out(&n, &h, &x, t, &o4) == 0);
    CHECK(!ir_netaddr_eq(&o1, &o2));
    CHECK(!ir_netaddr_eq(&o1, &o3));
    CHECK(!ir_netaddr_eq(&o2, &o3));
    CHECK(ir_netaddr_eq(&o1, &o4)); /* the same destination: the same mapping */
    CHECK_EQ_INT(n.st.new_mappings, 3);
    CHECK(sim_nat_in(&n, &x, &o1, t, &to) == 0);
    CHECK(ir_netaddr_eq(&to, &h));
    CHECK(sim_nat_in(&n, &y, &o1, t, &to) == -1); /* y's mapping is o3 */
    CHECK(sim_nat_in(&n, &y, &o3, t, &to) == 0);
    CHECK_EQ_INT(n.st.drop_filtered, 1);
    /* port preserving: the first mapping keeps the inside port, the next cannot */
    c.port_preserving = 1;
    sim_nat_init(&n, &c);
    CHECK(sim_nat_out(&n, &h, &x, t, &o1) == 0);
    CHECK(sim_nat_out(&n, &h, &y, t, &o2) == 0);
    CHECK_EQ_INT(port_of(&o1), 4000);
    CHECK(port_of(&o2) != 4000);
}

/* Filtering: who may send in through a mapping. */
static void test_nat_filtering(void)
{
    uint64_t t = 7 * SEC;
    ir_netaddr h, x, x_other_port, z, pub, to, out;
    sim_addr(&h, sim_ip(192, 168, 1, 2), 4000);
    sim_addr(&x, sim_ip(198, 51, 100, 7), 443);
    sim_addr(&x_other_port, sim_ip(198, 51, 100, 7), 8443);
    sim_addr(&z, sim_ip(198, 51, 100, 9), 443);
    sim_addr(&pub, PUB, 4000);
    sim_nat_filter f[3] = {SIM_NAT_FILTER_NONE, SIM_NAT_FILTER_ADDR, SIM_NAT_FILTER_PORT};
    /* expected admission of: x, x on another port, z */
    int want[3][3] = {{1, 1, 1}, {1, 1, 0}, {1, 0, 0}};
    for (int i = 0; i < 3; i++) {
        sim_nat n;
        sim_nat_config c;
        nat_cfg(&c, SIM_NAT_MAP_EI, f[i]);
        sim_nat_init(&n, &c);
        /* nothing gets in before the inside sent anything */
        CHECK(sim_nat_in(&n, &x, &pub, t, &to) == -1);
        CHECK_EQ_INT(n.st.drop_no_mapping, 1);
        CHECK(sim_nat_out(&n, &h, &x, t, &out) == 0);
        CHECK_EQ_INT(sim_nat_in(&n, &x, &pub, t, &to) == 0, want[i][0]);
        CHECK_EQ_INT(sim_nat_in(&n, &x_other_port, &pub, t, &to) == 0, want[i][1]);
        CHECK_EQ_INT(sim_nat_in(&n, &z, &pub, t, &to) == 0, want[i][2]);
        /* the inside sends to z: now z may answer (a holepunch) */
        CHECK(sim_nat_out(&n, &h, &z, t, &out) == 0);
        CHECK(sim_nat_in(&n, &z, &pub, t, &to) == 0);
        CHECK(ir_netaddr_eq(&to, &h));
        /* another public port of the box: no mapping */
        ir_netaddr pub2;
        sim_addr(&pub2, PUB, 4001);
        CHECK(sim_nat_in(&n, &x, &pub2, t, &to) == -1);
    }
}

/* Timeouts: an idle mapping is gone at exactly timeout_ns after its last outbound
 * datagram (inbound ones do not refresh it unless refresh_inbound); its port is free and
 * nothing gets in any more; a permission expires the same way. */
static void test_nat_timeouts(void)
{
    sim_nat n;
    sim_nat_config c;
    nat_cfg(&c, SIM_NAT_MAP_EI, SIM_NAT_FILTER_PORT);
    c.timeout_ns = 2 * SEC;
    c.first_port = 61000;
    sim_nat_init(&n, &c);
    uint64_t t = 100 * SEC;
    ir_netaddr h, x, y, pub, to, out;
    sim_addr(&h, sim_ip(192, 168, 1, 2), 4000);
    sim_addr(&x, sim_ip(198, 51, 100, 7), 443);
    sim_addr(&y, sim_ip(198, 51, 100, 8), 443);
    sim_addr(&pub, PUB, 4000);
    CHECK(sim_nat_out(&n, &h, &x, t, &out) == 0);
    CHECK(sim_nat_in(&n, &x, &pub, t + 1 * SEC, &to) == 0);
    CHECK(sim_nat_in(&n, &x, &pub, t + 2 * SEC - 1, &to) == 0);
    CHECK_EQ_INT(sim_nat_count(&n, t + 2 * SEC - 1), 1);
    CHECK(sim_nat_in(&n, &x, &pub, t + 2 * SEC, &to) == -1); /* gone: inbound did not refresh */
    CHECK_EQ_INT(n.st.expired, 1);
    CHECK_EQ_INT(sim_nat_count(&n, t + 2 * SEC), 0);
    /* outbound refreshes; a permission not used for the timeout expires on its own */
    t += 10 * SEC;
    CHECK(sim_nat_out(&n, &h, &x, t, &out) == 0);
    CHECK(sim_nat_out(&n, &h, &y, t + 1 * SEC, &out) == 0);
    CHECK(sim_nat_out(&n, &h, &y, t + 2 * SEC, &out) == 0);
    CHECK(sim_nat_in(&n, &y, &pub, t + 2 * SEC, &to) == 0);
    CHECK(sim_nat_in(&n, &x, &pub, t + 2 * SEC, &to) == -1); /* x's permission expired */
    CHECK_EQ_INT(sim_nat_count(&n, t + 2 * SEC), 1);
    /* with refresh_inbound, inbound traffic keeps the mapping */
    c.refresh_inbound = 1;
    sim_nat_init(&n, &c);
    CHECK(sim_nat_out(&n, &h, &x, t, &out) == 0);
    for (int i = 1; i <= 5; i++)
        CHECK(sim_nat_in(&n, &x, &pub, t + (uint64_t)i * SEC, &to) == 0);
    CHECK(sim_nat_in(&n, &x, &pub, t + 8 * SEC, &to) == -1);
    /* a mapping that expired gives its port back: port preserved again; a flush with new
     * ports makes the next mapping take another */
    CHECK(sim_nat_out(&n, &h, &x, t + 9 * SEC, &out) == 0);
    CHECK_EQ_INT(port_of(&out), 4000);
    sim_nat_flush(&n, 1);
    CHECK_EQ_INT(sim_nat_count(&n, t + 9 * SEC), 0);
    CHECK(sim_nat_out(&n, &h, &x, t + 9 * SEC, &out) == 0);
    CHECK_EQ_INT(port_of(&out), 61000);
}

/* No hairpinning: the inside cannot reach the box's own public address, not even its own
 * mapping; the table is bounded. */
static void test_nat_hairpin_and_table(void)
{
    sim_nat n;
    sim_nat_config c;
    nat_cfg(&c, SIM_NAT_MAP_SYMMETRIC, SIM_NAT_FILTER_NONE);
    sim_nat_init(&n, &c);
    uint64_t t = 3 * SEC;
    ir_netaddr h, pub, out, x;
    sim_addr(&h, sim_ip(192, 168, 1, 2), 4000);
    sim_addr(&x, sim_ip(198, 51, 100, 7), 443);
    CHECK(sim_nat_out(&n, &h, &x, t, &out) == 0);
    sim_addr(&pub, PUB, 4000);
    CHECK(sim_nat_out(&n, &h, &pub, t, &out) == -1);
    CHECK_EQ_INT(n.st.drop_hairpin, 1);
    for (int i = 0; i < SIM_NAT_MAPPINGS + 5; i++) {
        sim_addr(&x, sim_ip(198, 51, 100, 7), (uint16_t)(1000 + i));
        sim_nat_out(&n, &h, &x, t, &out);
    }
    CHECK_EQ_INT(sim_nat_count(&n, t), SIM_NAT_MAPPINGS);
    CHECK_EQ_INT(n.st.drop_table_full, 6); /* the first destination's mapping was reused */
    /* a relay path address is not IPv4 UDP: dropped */
    ir_netaddr r;
    memset(&r, 0, sizeof r);
    r.len = 35;
    r.data[0] = 'R';
    CHECK(sim_nat_out(&n, &h, &r, t, &out) == -1);
}

/* ---- the whole stack ------------------------------------------------------------------- */

/* The NAT kinds of the scenarios. */
typedef struct nat_kind {
    const char *name;
    sim_nat_mapping mapping;
    sim_nat_filter filter;
    int port_preserving;
    uint64_t timeout_ns; /* 0: 30 s */
} nat_kind;

static const nat_kind KINDS[] = {
    {"full-cone", SIM_NAT_MAP_EI, SIM_NAT_FILTER_NONE, 1, 0},
    {"address-restricted", SIM_NAT_MAP_EI, SIM_NAT_FILTER_ADDR, 1, 0},
    {"port-restricted", SIM_NAT_MAP_EI, SIM_NAT_FILTER_PORT, 1, 0}, /* Linux conntrack */
    {"symmetric", SIM_NAT_MAP_SYMMETRIC, SIM_NAT_FILTER_PORT, 0, 0},
};
#define NKINDS (sizeof KINDS / sizeof KINDS[0])

/* The world of a scenario: one relay (15 ms one way), a reflector on the internet, and two
 * endpoints a (the client) and b (the server), each behind a NAT box of its kind (NULL:
 * on the internet itself): inside 192.168.1.2:4000 and 192.168.2.2:4000 (a private address
 * does not route on the internet). Links: 1 ms from an endpoint to its router, 5 ms over a box's WAN side. */
typedef struct world {
    sim s;
    node *a, *b, *refl;
    int ra, rb;         /* realms */
    uint64_t t_connect; /* when a dialed b */
} world;

static void world_init(world *w, uint64_t seed, const nat_kind *ka, const nat_kind *kb,
                       const ir_ep_config *acfg, const ir_ep_config *bcfg)
{
    sim *s = &w->s;
    sim_init(s, seed);
    add_relay(s, 15 * MS);
    const nat_kind *k[2] = {ka, kb};
    int realm[2];
    for (int i = 0; i < 2; i++) {
        realm[i] = 0;
        if (k[i]) {
            sim_nat_config c;
            memset(&c, 0, sizeof c);
            c.public_ip = sim_ip(203, 0, 113, (unsigned)(1 + i));
            c.mapping = k[i]->mapping;
            c.filter = k[i]->filter;
            c.port_preserving = k[i]->port_preserving;
            c.timeout_ns = k[i]->timeout_ns ? k[i]->timeout_ns : 30 * SEC;
            realm[i] = add_nat(s, 0, &c, 5 * MS);
        }
    }
    ir_ep_config def;
    sim_ep_config(&def);
    w->a = add_node_cfg(s, acfg ? acfg : &def);
    w->b = add_node_cfg(s, bcfg ? bcfg : &def);
    w->refl = add_node_cfg(s, NULL);
    w->ra = realm[0];
    w->rb = realm[1];
    node_udp(w->a, realm[0], realm[0] ? sim_ip(192, 168, 1, 2) : sim_ip(198, 51, 100, 10), 4000,
             1 * MS);
    node_udp(w->b, realm[1], realm[1] ? sim_ip(192, 168, 2, 2) : sim_ip(198, 51, 100, 11), 4000,
             1 * MS);
    node_udp(w->refl, 0, sim_ip(198, 51, 100, 1), 3478, 1 * MS);
    relays_up(s, 0, s->now + 5 * SEC);
    CHECK(all_established(s, 0));
}

/* Echoes every stream of every connection of node n (all the data, then FIN). */
static void echo_app(node *n)
{
    while (ir_epc_accept(n->core))
        ;
    for (size_t i = 0; i < ir_epc_conn_count(n->core); i++) {
        ir_conn *c = ir_epc_conn_at(n->core, i);
        ir_event ev;
        while (ir_conn_poll_event(c, &ev))
            ;
        uint64_t nb = ir_conn_peer_streams(c, 0);
        for (uint64_t k = 0; k < nb; k++) {
            uint64_t id = ir_conn_peer_stream_id(c, 0, k);
            uint8_t buf[4096];
            uint64_t code;
            long r;
            while ((r = ir_conn_stream_read(c, id, buf, sizeof buf, &code)) > 0) {
                long w = ir_conn_stream_write(c, id, buf, (size_t)r, 0);
                CHECK(w == r); /* the transfers stay below the send buffer */
            }
            if (r == 0)
                ir_conn_stream_write(c, id, NULL, 0, 1);
        }
    }
}

/* A client stream: total bytes out (a pattern), echoed back, compared byte by byte. */
typedef struct xfer {
    ir_conn *c;
    uint64_t id;
    size_t total, sent, got;
    uint8_t *out, *in;
    int fin;
} xfer;

static void xfer_start(xfer *x, ir_conn *c, size_t total, uint8_t seed)
{
    memset(x, 0, sizeof *x);
    x->c = c;
    x->total = total;
    x->out = malloc(total);
    x->in = calloc(1, total + 1);
    CHECK(x->out && x->in);
    for (size_t i = 0; i < total; i++)
        x->out[i] = (uint8_t)(seed + i * 7 + (i >> 9));
    CHECK(ir_conn_stream_open(c, 1, &x->id) == 0);
}

static void xfer_pump(xfer *x)
{
    ir_event ev;
    while (ir_conn_poll_event(x->c, &ev))
        ;
    if (x->sent < x->total) {
        long w = ir_conn_stream_write(x->c, x->id, x->out + x->sent, x->total - x->sent, 1);
        if (w > 0)
            x->sent += (size_t)w;
    }
    uint64_t code;
    long r;
    while (!x->fin && (r = ir_conn_stream_read(x->c, x->id, x->in + x->got,
                                                x->total + 1 - x->got, &code)) >= 0) {
        if (r == 0)
            x->fin = 1;
        x->got += (size_t)r;
    }
}

/* every byte came back, in order */
static int xfer_intact(const xfer *x)
{
    return x->fin && x->got == x->total && memcmp(x->in, x->out, x->total) == 0;
}

static void xfer_free(xfer *x)
{
    free(x->out);
    free(x->in);
}

static int established(ir_conn *c)
{
    return c && ir_conn_get_state(c) == IR_CONN_ESTABLISHED;
}

static int on_relay(const ir_netaddr *a)
{
    unsigned idx;
    const uint8_t *peer;
    return ir_netaddr_is_relay(a, &idx, &peer);
}

/* a dials b with candidates cand; runs until both ends are established (b's accepted) */
static ir_conn *world_dial(world *w, const ir_netaddr *cand, size_t ncand, ir_conn **server)
{
    sim *s = &w->s;
    ir_conn *c = NULL, *sc = NULL;
    w->t_connect = s->now;
    CHECK(ir_epc_connect(w->a->core, cand, ncand, &w->b->id, ALPNS, ALPN_LENS, 1, s->now, &c) ==
          IROH_OK);
    uint64_t limit = s->now + 10 * SEC;
    while (!(established(c) && established(sc)) && sim_step(s, limit)) {
        ir_conn *x = ir_epc_accept(w->b->core);
        if (x)
            sc = x;
    }
    CHECK(established(c));
    CHECK(established(sc));
    *server = sc;
    return c;
}

/* runs x to its end (b echoing), at most `limit` of virtual time */
static void world_echo(world *w, xfer *x, uint64_t limit)
{
    uint64_t end = w->s.now + limit;
    do {
        xfer_pump(x);
        echo_app(w->b);
    } while (!x->fin && sim_step(&w->s, end));
}

/* The network itself: a through two NATs of each kind reaches the reflector (which sees
 * the box's public address: port 4000 where it is preserved), and b on the internet by
 * UDP: a QUIC connection and a 100 kB echo directly, the server's path is a's public
 * address. A third node behind the same box: its port clashes and is mapped elsewhere. */
static void test_udp_through_nat(void)
{
    for (size_t k = 0; k < NKINDS; k++) {
        world w;
        world_init(&w, 100 + k, &KINDS[k], NULL, NULL, NULL);
        sim *s = &w.s;
        ir_netaddr seen;
        CHECK(observe(s, w.a, w.refl, &seen) == 0);
        uint32_t ip = 0;
        uint16_t port = 0;
        CHECK(sim_addr_parts(&seen, &ip, &port) == 0);
        CHECK(ip == sim_ip(203, 0, 113, 1));
        if (KINDS[k].port_preserving)
            CHECK_EQ_INT(port, 4000);
        else
            CHECK(port != 4000);
        ir_conn *sc = NULL;
        ir_conn *c = world_dial(&w, &w.b->addr, 1, &sc);
        CHECK(!on_relay(ir_conn_path_addr(c)));
        if (sc) {
            uint32_t sip = 0;
            uint16_t sport = 0;
            CHECK(sim_addr_parts(ir_conn_path_addr(sc), &sip, &sport) == 0);
            CHECK(sip == sim_ip(203, 0, 113, 1));
            if (KINDS[k].mapping == SIM_NAT_MAP_EI)
                CHECK(ir_netaddr_eq(ir_conn_path_addr(sc), &seen)); /* the same mapping */
            else
                CHECK(!ir_netaddr_eq(ir_conn_path_addr(sc), &seen)); /* a new port */
        }
        xfer x;
        xfer_start(&x, c, 100000, (uint8_t)k);
        world_echo(&w, &x, 20 * SEC);
        CHECK(xfer_intact(&x));
        CHECK_EQ_INT(w.s.relayed, 0); /* nothing went through the relay */
        xfer_free(&x);
        sim_free(s);
    }
}

/* b behind a NAT, a on the internet dials b's inside address and b's box's public address
 * (nobody inside sent anything out: no mapping) and b's relay path: the direct ones lead
 * nowhere (the box drops the datagrams), the connection ends on the relay; 100 kB echoed.
 * No hairpinning: a's datagram to its own box's public address never arrives. */
static void test_nat_blocks_unsolicited(void)
{
    for (size_t k = 0; k < NKINDS; k++) {
        world w;
        world_init(&w, 200 + k, NULL, &KINDS[k], NULL, NULL);
        sim *s = &w.s;
        ir_netaddr cand[2];
        sim_addr(&cand[0], sim_ip(203, 0, 113, 2), 4000);
        cand[1] = relay_addr(w.b, 0);
        ir_conn *sc = NULL;
        ir_conn *c = world_dial(&w, cand, 2, &sc);
        CHECK(on_relay(ir_conn_path_addr(c)));
        CHECK(sc && on_relay(ir_conn_path_addr(sc)));
        sim_nat *nb = nat_of(s, w.rb);
        CHECK(nb->st.drop_no_mapping >= 1);
        CHECK_EQ_INT(nb->st.in, 0);
        xfer x;
        xfer_start(&x, c, 100000, (uint8_t)k);
        world_echo(&w, &x, 20 * SEC);
        CHECK(xfer_intact(&x));
        xfer_free(&x);
        /* hairpin: b to its own box's public address */
        size_t before = w.b->udp_recv;
        uint8_t d[8] = {0};
        ir_netaddr self;
        sim_addr(&self, sim_ip(203, 0, 113, 2), 4000);
        udp_send(s, w.b, &self, d, sizeof d);
        run_until(s, s->now + 1 * SEC);
        CHECK_EQ_INT(w.b->udp_recv, before);
        CHECK(nb->st.drop_hairpin >= 1);
        sim_free(s);
    }
}

/* Both behind NATs (every pair of kinds), connecting with relay-only addresses: the
 * connection runs on the relay and a 200 kB echo arrives intact. Returns the trace. */
static uint64_t relayed_run(uint64_t seed, const nat_kind *ka, const nat_kind *kb, int lossy)
{
    world w;
    world_init(&w, seed, ka, kb, NULL, NULL);
    sim *s = &w.s;
    if (lossy) {
        w.a->link.jitter = 3 * MS;
        w.b->link.loss_permille = 20;
    }
    ir_netaddr via = relay_addr(w.b, 0);
    ir_conn *sc = NULL;
    ir_conn *c = world_dial(&w, &via, 1, &sc);
    CHECK(on_relay(ir_conn_path_addr(c)));
    CHECK(sc && on_relay(ir_conn_path_addr(sc)));
    xfer x;
    xfer_start(&x, c, 200000, (uint8_t)seed);
    world_echo(&w, &x, 30 * SEC);
    CHECK(xfer_intact(&x));
    CHECK(established(c) && established(sc));
    CHECK(w.s.relayed > 100);
    xfer_free(&x);
    uint64_t trace = s->trace ^ s->now;
    sim_free(s);
    return trace;
}

static void test_both_nat_relayed(void)
{
    for (size_t i = 0; i < NKINDS; i++)
        for (size_t j = 0; j < NKINDS; j++)
            relayed_run(300 + i * NKINDS + j, &KINDS[i], &KINDS[j], 0);
}

/* Same seed, same trace (every datagram's time, from, to, length); another seed, another
 * one. UDP and relay traffic both: a direct connection through a lossy, jittery NAT and a
 * relayed one. */
static uint64_t direct_run(uint64_t seed)
{
    world w;
    world_init(&w, seed, &KINDS[2], NULL, NULL, NULL);
    w.a->link.jitter = 4 * MS;
    w.a->link.loss_permille = 30;
    ir_conn *sc = NULL;
    ir_conn *c = world_dial(&w, &w.b->addr, 1, &sc);
    xfer x;
    xfer_start(&x, c, 100000, 1);
    world_echo(&w, &x, 30 * SEC);
    CHECK(xfer_intact(&x));
    CHECK(w.s.udp_lost > 0);
    xfer_free(&x);
    uint64_t trace = w.s.trace ^ w.s.now ^ w.s.delivered;
    sim_free(&w.s);
    return trace;
}

static void test_determinism(void)
{
    uint64_t a = direct_run(7), b = direct_run(7), c = direct_run(8);
    CHECK(a == b);
    CHECK(a != c);
    a = relayed_run(9, &KINDS[2], &KINDS[3], 1);
    b = relayed_run(9, &KINDS[2], &KINDS[3], 1);
    c = relayed_run(10, &KINDS[2], &KINDS[3], 1);
    CHECK(a == b);
    CHECK(a != c);
}

/* Mapping timeouts on the whole stack: a behind a NAT box that forgets an idle mapping
 * after 3 s and does not keep ports, b on the internet, a direct connection. With a's
 * keep-alive (1 s) below the timeout, 10 s of silence keep the mapping: b sees one
 * address. With keep-alives 10 s apart the mapping expires; a's next datagram leaves
 * from a new public port and b's path follows it (RFC 9000 9.3, NAT rebinding): a
 * second echo arrives intact, and what b sent to the old port meanwhile was dropped. */
static void mapping_timeout_run(uint64_t keep_alive, int expect_expiry)
{
    nat_kind k = {"short-lived", SIM_NAT_MAP_EI, SIM_NAT_FILTER_PORT, 0, 3 * SEC};
    ir_ep_config acfg, bcfg;
    sim_ep_config(&acfg);
    acfg.keep_alive_ns = keep_alive;
    bcfg = acfg;
    world w;
    world_init(&w, 400 + expect_expiry, &k, NULL, &acfg, &bcfg);
    sim *s = &w.s;
    ir_conn *sc = NULL;
    ir_conn *c = world_dial(&w, &w.b->addr, 1, &sc);
    xfer x;
    xfer_start(&x, c, 20000, 1);
    world_echo(&w, &x, 10 * SEC);
    CHECK(xfer_intact(&x));
    xfer_free(&x);
    ir_netaddr first = sc ? *ir_conn_path_addr(sc) : w.b->addr;
    sim_nat *nat = nat_of(s, w.ra);
    uint64_t expired = nat->st.expired;
    run_until(s, s->now + 10 * SEC);
    CHECK(established(c) && established(sc));
    xfer_start(&x, c, 20000, 2);
    world_echo(&w, &x, 10 * SEC);
    CHECK(xfer_intact(&x));
    xfer_free(&x);
    CHECK(established(c) && established(sc));
    if (!sc)
        return;
    if (expect_expiry) {
        CHECK(nat->st.expired > expired);
        CHECK(!ir_netaddr_eq(ir_conn_path_addr(sc), &first));
        uint32_t ip = 0;
        uint16_t port = 0;
        CHECK(sim_addr_parts(ir_conn_path_addr(sc), &ip, &port) == 0);
        CHECK(ip == sim_ip(203, 0, 113, 1));
    } else {
        CHECK_EQ_INT(nat->st.expired, expired);
        CHECK(ir_netaddr_eq(ir_conn_path_addr(sc), &first));
    }
    sim_free(s);
}

static void test_mapping_timeout(void)
{
    mapping_timeout_run(1 * SEC, 0);
    mapping_timeout_run(10 * SEC, 1);
}

/* A link blackholed for 2 s in the middle of a direct transfer (a behind a
 * port-restricted box, b on the internet), then back: nothing reaches a meanwhile, and
 * the connection recovers by itself with every byte of 300 kB echoed. Also a link that
 * loses 10% for a while. */
static void test_link_controls(void)
{
    world w;
    world_init(&w, 450, &KINDS[2], NULL, NULL, NULL);
    sim *s = &w.s;
    ir_conn *sc = NULL;
    ir_conn *c = world_dial(&w, &w.b->addr, 1, &sc);
    xfer x;
    xfer_start(&x, c, 300000, 3);
    uint64_t t_dark = 0, end = s->now + 60 * SEC;
    size_t recv_dark = 0;
    int phase = 0;
    do {
        xfer_pump(&x);
        echo_app(w.b);
        if (phase == 0 && x.got >= x.total / 3) {
            w.a->link.blackhole = 1;
            t_dark = s->now;
            recv_dark = w.a->udp_recv;
            phase = 1;
        } else if (phase == 1 && s->now >= t_dark + 2 * SEC) {
            CHECK_EQ_INT(w.a->udp_recv, recv_dark); /* nothing arrived */
            w.a->link.blackhole = 0;
            w.a->link.loss_permille = 100;
            phase = 2;
        } else if (phase == 2 && x.got >= 2 * x.total / 3) {
            w.a->link.loss_permille = 0;
            phase = 3;
        }
    } while (!x.fin && sim_step(s, end));
    CHECK_EQ_INT(phase, 3);
    CHECK(xfer_intact(&x));
    CHECK(established(c) && established(sc));
    CHECK(s->udp_lost > 0);
    xfer_free(&x);
    sim_free(s);
}

/* ---- holepunching ------------------------------------------------------------------------ */

/* An endpoint that offers multipath and n0 NAT traversal (holepunching mode 2). */
static void hp_config(ir_ep_config *cfg)
{
    sim_ep_config(cfg);
    cfg->holepunching = 2;
}

/* Tells node n's core its candidate addresses as the endpoint's shell does: its socket's
 * address and the public address the reflector saw (QUIC address discovery). */
static void learn_addrs(world *w, node *n)
{
    sim *s = &w->s;
    iroh_socket_addr sock, pub;
    CHECK(ir_netaddr_to_socket_addr(&n->addr, &sock) == 0);
    ir_epc_set_sockets(n->core, &sock, 1, s->now);
    ir_netaddr seen;
    CHECK(observe(s, n, w->refl, &seen) == 0);
    CHECK(ir_netaddr_to_socket_addr(&seen, &pub) == 0);
    ir_epc_set_public(n->core, &pub, s->now);
}

/* The path application data goes out on: 1 direct, 0 relay, -1 none; *info its state. */
static int sending_on(const ir_conn *c, ir_conn_path_info *info)
{
    ir_conn_path_info p[2 * IR_CONN_MAX_PATHS];
    size_t n = ir_conn_paths(c, p, 2 * IR_CONN_MAX_PATHS);
    if (n > 2 * IR_CONN_MAX_PATHS)
        n = 2 * IR_CONN_MAX_PATHS;
    for (size_t i = 0; i < n; i++) {
        if (p[i].sending && !p[i].abandoned) {
            if (info)
                *info = p[i];
            return on_relay(&p[i].addr) ? 0 : 1;
        }
    }
    return -1;
}

/* A holepunch world: a and b behind boxes of kinds ka and kb (inside 192.168.1.2 and
 * 192.168.2.2, port 4000), both offering holepunching and knowing their candidates; a
 * dials b with b's relay path only. Returns the client connection, *server b's. */
static ir_conn *hp_connect(world *w, uint64_t seed, const nat_kind *ka, const nat_kind *kb,
                           ir_conn **server)
{
    ir_ep_config cfg;
    hp_config(&cfg);
    world_init(w, seed, ka, kb, &cfg, &cfg);
    learn_addrs(w, w->a);
    learn_addrs(w, w->b);
    ir_netaddr via = relay_addr(w->b, 0);
    return world_dial(w, &via, 1, server);
}

/* Runs until both ends send on a direct path (or until t0 + limit): the virtual time from
 * t0, UINT64_MAX if never. */
static uint64_t until_direct(world *w, ir_conn *c, ir_conn *sc, uint64_t t0, uint64_t limit)
{
    sim *s = &w->s;
    do {
        echo_app(w->b);
        ir_event ev;
        while (ir_conn_poll_event(c, &ev))
            ;
        if (sending_on(c, NULL) == 1 && sending_on(sc, NULL) == 1)
            return s->now - t0;
    } while (sim_step(s, t0 + limit));
    return UINT64_MAX;
}

/* Relay first, then direct: both ends behind port-preserving boxes (each filter), the
 * connection starts on the relay and ends selected on a direct path; the relay path stays
 * as a backup; 300 kB echoed intact over the direct path. Prints the upgrade time. */
static void test_hp_upgrade(void)
{
    for (size_t k = 0; k < 3; k++) {
        world w;
        ir_conn *sc = NULL;
        ir_conn *c = hp_connect(&w, 500 + k, &KINDS[k], &KINDS[k], &sc);
        uint64_t t_hs = w.s.now - w.t_connect;
        CHECK(ir_conn_multipath(c));
        CHECK(ir_conn_nat_traversal(c));
        CHECK(sending_on(c, NULL) == 0); /* relay first */
        uint64_t dt = until_direct(&w, c, sc, w.t_connect, 20 * SEC);
        CHECK(dt != UINT64_MAX);
        printf("upgrade, %s boxes: handshake (relay) %.1f ms, direct path selected %.1f ms "
               "after connect\n",
               KINDS[k].name, (double)t_hs / 1e6, dt == UINT64_MAX ? -1.0 : (double)dt / 1e6);
        ir_conn_path_info pi;
        if (sending_on(c, &pi) == 1) {
            uint32_t ip = 0;
            uint16_t port = 0;
            CHECK(sim_addr_parts(&pi.addr, &ip, &port) == 0);
            CHECK(ip == sim_ip(203, 0, 113, 2));
            CHECK_EQ_INT(port, 4000);
        }
        uint64_t relayed = w.s.relayed;
        size_t udp = w.b->udp_recv;
        xfer x;
        xfer_start(&x, c, 300000, (uint8_t)k);
        world_echo(&w, &x, 20 * SEC);
        CHECK(xfer_intact(&x));
        CHECK(w.b->udp_recv - udp > 200);    /* the data went direct */
        CHECK(w.s.relayed - relayed < 50);    /* not over the relay */
        CHECK(sending_on(c, NULL) == 1);
        xfer_free(&x);
        sim_free(&w.s);
    }
}

/* Both behind the same port-restricted box (one LAN, no hairpinning): the public
 * addresses lead nowhere from inside, but the inside addresses are candidates too, so
 * the connection leaves the relay for a direct path on the LAN (192.168.1.x); 300 kB
 * echoed over it. */
static void test_hp_same_lan(void)
{
    world w;
    ir_ep_config cfg;
    hp_config(&cfg);
    world_init(&w, 550, &KINDS[2], NULL, &cfg, &cfg);
    node_udp(w.b, w.ra, sim_ip(192, 168, 1, 3), 4000, 1 * MS);
    learn_addrs(&w, w.a);
    learn_addrs(&w, w.b);
    ir_netaddr via = relay_addr(w.b, 0);
    ir_conn *sc = NULL;
    ir_conn *c = world_dial(&w, &via, 1, &sc);
    uint64_t dt = until_direct(&w, c, sc, w.t_connect, 20 * SEC);
    CHECK(dt != UINT64_MAX);
    ir_conn_path_info pi;
    if (sending_on(c, &pi) == 1)
        CHECK(ir_netaddr_eq(&pi.addr, &w.b->addr));
    xfer x;
    xfer_start(&x, c, 300000, 4);
    world_echo(&w, &x, 20 * SEC);
    CHECK(xfer_intact(&x));
    CHECK(sending_on(c, NULL) == 1);
    CHECK(nat_of(&w.s, w.ra)->st.drop_hairpin >= 1); /* the public candidates were tried */
    printf("same LAN: direct path selected %.1f ms after connect\n",
           dt == UINT64_MAX ? -1.0 : (double)dt / 1e6);
    xfer_free(&x);
    sim_free(&w.s);
}

/* Symmetric boxes on both sides: no probe gets through (each box maps a new port per
 * destination), the connection stays on the relay the whole time and 300 kB arrive intact;
 * also one symmetric and one port-restricted box. */
static void test_hp_symmetric_stays_relayed(void)
{
    const nat_kind *pairs[2][2] = {{&KINDS[3], &KINDS[3]}, {&KINDS[3], &KINDS[2]}};
    for (int k = 0; k < 2; k++) {
        world w;
        ir_conn *sc = NULL;
        ir_conn *c = hp_connect(&w, 600 + (uint64_t)k, pairs[k][0], pairs[k][1], &sc);
        CHECK(ir_conn_nat_traversal(c));
        int ever_direct = 0;
        xfer x;
        xfer_start(&x, c, 300000, (uint8_t)k);
        uint64_t end = w.s.now + 30 * SEC;
        do {
            xfer_pump(&x);
            echo_app(w.b);
            ever_direct |= sending_on(c, NULL) == 1 || (sc && sending_on(sc, NULL) == 1);
        } while (!x.fin && sim_step(&w.s, end));
        CHECK(xfer_intact(&x));
        /* holepunch rounds go on every 5 s: give them time */
        run_until(&w.s, w.s.now + 15 * SEC);
        ever_direct |= sending_on(c, NULL) == 1;
        CHECK(!ever_direct);
        CHECK(sending_on(c, NULL) == 0);
        CHECK(ir_conn_nat_round(c) >= 1); /* it did try */
        CHECK(established(c) && established(sc));
        xfer_free(&x);
        sim_free(&w.s);
    }
}

/* A symmetric box on one side only, the other end on the internet: a's probe to b's
 * address opens a mapping b can answer through, so the connection goes direct. */
static void test_hp_symmetric_to_public(void)
{
    world w;
    ir_conn *sc = NULL;
    ir_conn *c = hp_connect(&w, 650, &KINDS[3], NULL, &sc);
    uint64_t dt = until_direct(&w, c, sc, w.t_connect, 20 * SEC);
    CHECK(dt != UINT64_MAX);
    ir_conn_path_info pi;
    if (sc && sending_on(sc, &pi) == 1) {
        ir_netaddr seen;
        CHECK(observe(&w.s, w.a, w.refl, &seen) == 0);
        CHECK(!ir_netaddr_eq(&pi.addr, &seen)); /* a mapping of its own */
    }
    xfer x;
    xfer_start(&x, c, 100000, 6);
    world_echo(&w, &x, 20 * SEC);
    CHECK(xfer_intact(&x));
    CHECK(sending_on(c, NULL) == 1);
    printf("symmetric box to the internet: direct path selected %.1f ms after connect\n",
           dt == UINT64_MAX ? -1.0 : (double)dt / 1e6);
    xfer_free(&x);
    sim_free(&w.s);
}

/* The direct path blackholed mid-transfer (a's UDP link drops everything): the
 * connection falls back to the relay and every byte of 1 MB arrives. Prints the virtual
 * time from the blackhole to the relay path selected. */
static void test_hp_fallback(void)
{
    world w;
    ir_conn *sc = NULL;
    ir_conn *c = hp_connect(&w, 700, &KINDS[2], &KINDS[2], &sc);
    uint64_t dt = until_direct(&w, c, sc, w.s.now, 20 * SEC);
    CHECK(dt != UINT64_MAX);
    xfer x;
    xfer_start(&x, c, 1000000, 7);
    uint64_t t_bh = 0, t_fb = 0, end = w.s.now + 60 * SEC;
    do {
        xfer_pump(&x);
        echo_app(w.b);
        if (!t_bh && x.got >= x.total / 4) {
            w.a->link.blackhole = 1;
            t_bh = w.s.now;
        }
        if (t_bh && !t_fb && sending_on(c, NULL) == 0)
            t_fb = w.s.now;
    } while (!x.fin && sim_step(&w.s, end));
    CHECK(t_bh != 0);
    CHECK(t_fb != 0);
    CHECK(xfer_intact(&x));
    printf("fallback: relay selected %.1f ms after the direct path went dark; 1 MB done "
           "%.1f ms after\n",
           t_fb ? (double)(t_fb - t_bh) / 1e6 : -1.0, (double)(w.s.now - t_bh) / 1e6);
    CHECK(established(c) && established(sc));
    xfer_free(&x);
    sim_free(&w.s);
}

/* A path's address changes: a's box forgets its mappings and gives new ports (a rebind)
 * in the middle of a 500 kB transfer on the direct path; every byte arrives.
 *  - b behind a full-cone box: a's datagrams on the direct path now come from a new port,
 *    b's path follows it (validated anew) and the transfer goes on directly;
 *  - b behind a port-restricted box: that box drops a's datagrams from the new port, the
 *    direct path is dead; a learns its new public address (as QUIC address discovery
 *    would tell it), the connection goes on over the relay and holepunches a new direct
 *    path from the new port.
 * Prints the virtual times. */
static void hp_rebind_run(uint64_t seed, const nat_kind *kb, int relearn)
{
    world w;
    ir_conn *sc = NULL;
    ir_conn *c = hp_connect(&w, seed, &KINDS[2], kb, &sc);
    uint64_t dt = until_direct(&w, c, sc, w.s.now, 20 * SEC);
    CHECK(dt != UINT64_MAX);
    ir_conn_path_info before;
    CHECK(sending_on(sc, &before) == 1);
    xfer x;
    xfer_start(&x, c, 500000, 8);
    int rebound = 0;
    uint64_t t_rb = 0, end = w.s.now + 60 * SEC;
    do {
        xfer_pump(&x);
        echo_app(w.b);
        if (!rebound && x.got >= x.total / 3) {
            sim_nat_flush(nat_of(&w.s, w.ra), 1);
            rebound = 1;
            t_rb = w.s.now;
            if (relearn)
                learn_addrs(&w, w.a);
        }
    } while (!x.fin && sim_step(&w.s, end));
    CHECK(rebound);
    CHECK(xfer_intact(&x));
    CHECK(established(c) && established(sc));
    uint64_t t_done = w.s.now;
    /* direct (again), from a's new public port */
    uint64_t again = until_direct(&w, c, sc, w.s.now, 30 * SEC);
    CHECK(again != UINT64_MAX);
    ir_conn_path_info after;
    CHECK(sending_on(sc, &after) == 1);
    uint32_t ip = 0;
    uint16_t port = 0;
    CHECK(sim_addr_parts(&after.addr, &ip, &port) == 0);
    CHECK(ip == sim_ip(203, 0, 113, 1));
    CHECK(port != 4000);
    printf("rebind, b behind a %s box: transfer done %.1f ms after the rebind, direct from "
           "the new port %.1f ms after\n",
           kb->name, (double)(t_done - t_rb) / 1e6, (double)(w.s.now - t_rb) / 1e6);
    xfer_free(&x);
    sim_free(&w.s);
}

static void test_hp_rebind(void)
{
    hp_rebind_run(800, &KINDS[0], 0);
    hp_rebind_run(801, &KINDS[2], 1);
}

/* Same seed, same trace with holepunching too (relay, probes, the direct path). */
static uint64_t hp_trace(uint64_t seed)
{
    world w;
    ir_conn *sc = NULL;
    ir_conn *c = hp_connect(&w, seed, &KINDS[2], &KINDS[1], &sc);
    w.a->link.jitter = 2 * MS;
    CHECK(until_direct(&w, c, sc, w.s.now, 20 * SEC) != UINT64_MAX);
    xfer x;
    xfer_start(&x, c, 50000, 5);
    world_echo(&w, &x, 20 * SEC);
    CHECK(xfer_intact(&x));
    xfer_free(&x);
    uint64_t t = w.s.trace ^ w.s.now ^ w.s.delivered;
    sim_free(&w.s);
    return t;
}

static void test_hp_determinism(void)
{
    uint64_t a = hp_trace(31), b = hp_trace(31), c = hp_trace(32);
    CHECK(a == b);
    CHECK(a != c);
}

/* Many paths opened and abandoned: the client opens paths to 40 addresses that never
 * answer, abandoning each, while the connection runs on its direct path; what is left
 * afterwards is the few live paths, the routing table is back to its size, the connection
 * still echoes intact, and the sanitizer build finds no leak. */
static void test_hp_many_paths(void)
{
    world w;
    ir_conn *sc = NULL;
    ir_conn *c = hp_connect(&w, 900, &KINDS[2], &KINDS[2], &sc);
    uint64_t dt = until_direct(&w, c, sc, w.s.now, 20 * SEC);
    CHECK(dt != UINT64_MAX);
    run_until(&w.s, w.s.now + 1 * SEC);
    ir_conn_path_info p[4 * IR_CONN_MAX_PATHS];
    size_t paths0 = ir_conn_paths(c, p, 4 * IR_CONN_MAX_PATHS);
    size_t cids_a = ir_epc_cid_entries(w.a->core), cids_b = ir_epc_cid_entries(w.b->core);
    int opened = 0;
    for (int i = 0; i < 40; i++) {
        ir_netaddr nowhere;
        sim_addr(&nowhere, sim_ip(198, 51, 100, (unsigned)(100 + i)), 9000);
        uint64_t id = 0;
        int rc = IR_QUIC_AGAIN;
        uint64_t end = w.s.now + 5 * SEC;
        while ((rc = ir_conn_open_path(c, &nowhere, 0, w.s.now, &id)) == IR_QUIC_AGAIN &&
               sim_step(&w.s, end))
            echo_app(w.b);
        CHECK(rc == 0);
        if (rc != 0)
            continue;
        opened++;
        run_until(&w.s, w.s.now + 50 * MS);
        CHECK(ir_conn_path_abandon(c, id, IR_PATH_APPLICATION_ABANDON, w.s.now) == 0);
        run_until(&w.s, w.s.now + 50 * MS);
        CHECK(ir_conn_paths(c, p, 4 * IR_CONN_MAX_PATHS) <= IR_CONN_MAX_PATHS);
    }
    CHECK_EQ_INT(opened, 40);
    run_until(&w.s, w.s.now + 10 * SEC);
    CHECK(established(c) && established(sc));
    CHECK(ir_conn_paths(c, p, 4 * IR_CONN_MAX_PATHS) <= paths0);
    CHECK(ir_epc_cid_entries(w.a->core) <= cids_a + 4);
    CHECK(ir_epc_cid_entries(w.b->core) <= cids_b + 4);
    xfer x;
    xfer_start(&x, c, 100000, 9);
    world_echo(&w, &x, 20 * SEC);
    CHECK(xfer_intact(&x));
    CHECK(sending_on(c, NULL) == 1);
    xfer_free(&x);
    sim_free(&w.s);
}

int main(void)
{
    RUN(test_nat_ei_mapping);
    RUN(test_nat_symmetric);
    RUN(test_nat_filtering);
    RUN(test_nat_timeouts);
    RUN(test_nat_hairpin_and_table);
    RUN(test_udp_through_nat);
    RUN(test_nat_blocks_unsolicited);
    RUN(test_both_nat_relayed);
    RUN(test_mapping_timeout);
    RUN(test_link_controls);
    RUN(test_determinism);
    RUN(test_hp_upgrade);
    RUN(test_hp_same_lan);
    RUN(test_hp_symmetric_stays_relayed);
    RUN(test_hp_symmetric_to_public);
    RUN(test_hp_fallback);
    RUN(test_hp_rebind);
    RUN(test_hp_many_paths);
    RUN(test_hp_determinism);
    TEST_EXIT();
}
