/* Endpoint cores (endpoint/ep_core.h) with their connections in the simulator (sim_net.h):
 * nodes on the internet 10 ms apart, each link delaying (a base delay plus a random
 * jitter, which reorders) and losing datagrams, and a node's address can change under it
 * (NAT rebinding); one seeded generator, so a run is repeatable (test_determinism checks
 * that).
 *
 * Tests: a handshake and an echo over a lossy, reordering link with a NAT rebinding; Retry
 * under the half-open cap; the handshake deadline at its exact virtual time; a stateless
 * reset from a restarted endpoint; version negotiation for an unknown version; the idle
 * timeout at exactly the configured virtual time; the first flight to several candidate
 * addresses; a connection over a relay path (a relay server core); routing among 2,000
 * connections by the connection-id table, a retired or released id answered with a
 * stateless reset. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "sim_net.h" /* the simulator */

#include "quic/conn_internal.h" /* ir_conn_dcid: the id path 0 sends to */
#include "quic/packet.h"

/* one way between two nodes: 5 ms on each one's link to the router */
#define ONE_WAY (10 * MS)

/* a node at 10.0.0.host:port on the internet; cfg NULL: a raw node */
static node *sim_node(sim *s, uint8_t host, uint16_t port, const ir_ep_config *cfg)
{
    node *n = add_node_cfg(s, cfg);
    node_udp(n, 0, sim_ip(10, 0, 0, host), port, ONE_WAY / 2);
    return n;
}

static ir_conn *dial(node *from, node *to)
{
    ir_conn *c = NULL;
    CHECK(ir_epc_connect(from->core, &to->addr, 1, &to->id, ALPNS, ALPN_LENS, 1, from->s->now,
                         &c) == IROH_OK);
    return c;
}

/* ---- an echo application on top ----------------------------------------------------------- */

/* Echoes every stream of every accepted connection of node n (all the data, then FIN). */
static void echo_app(node *n)
{
    ir_conn *c;
    while ((c = ir_epc_accept(n->core)) != NULL)
        ;
    for (size_t i = 0; i < ir_epc_conn_count(n->core); i++) {
        c = ir_epc_conn_at(n->core, i);
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
                CHECK(w == r); /* the test keeps what it sends below the send buffer */
            }
            if (r == 0)
                ir_conn_stream_write(c, id, NULL, 0, 1);
        }
    }
}

typedef struct client_stream {
    uint64_t id;
    size_t sent, got;
    uint8_t *out, *in;
    size_t total;
    int fin_seen;
} client_stream;

static void stream_start(ir_conn *c, client_stream *st, size_t total, uint8_t fill)
{
    memset(st, 0, sizeof *st);
    st->total = total;
    st->out = malloc(total);
    st->in = calloc(1, total + 1);
    for (size_t i = 0; i < total; i++)
        st->out[i] = (uint8_t)(fill + i * 7 + (i >> 9));
    CHECK(ir_conn_stream_open(c, 1, &st->id) == 0);
}

static void stream_pump(ir_conn *c, client_stream *st)
{
    ir_event ev;
    while (ir_conn_poll_event(c, &ev))
        ;
    if (st->sent < st->total) {
        long w = ir_conn_stream_write(c, st->id, st->out + st->sent, st->total - st->sent, 1);
        if (w > 0)
            st->sent += (size_t)w;
    }
    uint64_t code;
    long r;
    while (!st->fin_seen &&
           (r = ir_conn_stream_read(c, st->id, st->in + st->got, st->total + 1 - st->got,
                                    &code)) >= 0) {
        if (r == 0)
            st->fin_seen = 1;
        st->got += (size_t)r;
    }
}

/* A server endpoint's configuration: the test ALPN, everything else default. */
static void server_config(ir_ep_config *cfg)
{
    sim_ep_config(cfg);
}

/* Runs the network until the client stream st has read back its end from the echoing
 * node sn (or nothing is left to happen within 10 s of virtual time). */
static void echo_until_end(sim *s, ir_conn *c, client_stream *st, node *sn)
{
    do {
        stream_pump(c, st);
        echo_app(sn);
    } while (!st->fin_seen && sim_step(s, s->now + 10 * SEC));
}

static void stream_free(client_stream *st)
{
    free(st->out);
    free(st->in);
}

static int established(ir_conn *c)
{
    return c && ir_conn_get_state(c) == IR_CONN_ESTABLISHED;
}

/* runs until both ends of c are established (the server's accepted), or the limit */
static ir_conn *handshake(sim *s, node *cn, node *sn, ir_conn *c, uint64_t limit)
{
    ir_conn *sc = NULL;
    while (sim_step(s, limit)) {
        ir_conn *a = ir_epc_accept(sn->core);
        if (a)
            sc = a;
        if (established(c) && established(sc))
            break;
    }
    (void)cn;
    return sc;
}

/* ---- tests -------------------------------------------------------------------------------- */

/* A handshake and a 200 kB echo over a link with 10-25 ms delay (reordering) and 3%
 * loss; halfway the client's NAT gives it a new address: the server follows. Returns the
 * trace of deliveries for test_determinism. */
static uint64_t echo_run(uint64_t seed, int check)
{
    sim s;
    sim_init(&s, seed);
    ir_ep_config scfg;
    server_config(&scfg);
    ir_ep_config ccfg;
    memset(&ccfg, 0, sizeof ccfg);
    node *sn = sim_node(&s, 2, 4433, &scfg);
    node *cn = sim_node(&s, 1, 5000, &ccfg);
    /* 10-25 ms one way, about 3% lost */
    sn->link.jitter = cn->link.jitter = 15 * MS / 2;
    sn->link.loss_permille = cn->link.loss_permille = 15;
    ir_conn *c = dial(cn, sn);
    ir_conn *sc = handshake(&s, cn, sn, c, s.now + 10 * SEC);
    if (check) {
        CHECK(established(c));
        CHECK(established(sc));
    }
    client_stream st;
    stream_start(c, &st, 200000, 3);
    int rebound = 0;
    uint64_t limit = s.now + 60 * SEC;
    do {
        stream_pump(c, &st);
        echo_app(sn);
        if (!rebound && st.got >= st.total / 2) {
            /* the NAT forgets the mapping: a new public port, the old one is gone */
            sim_addr(&cn->addr, sim_ip(10, 0, 0, 1), 6000);
            rebound = 1;
        }
    } while (!st.fin_seen && sim_step(&s, limit));
    if (check) {
        CHECK(rebound);
        CHECK(st.fin_seen);
        CHECK_EQ_INT(st.got, st.total);
        CHECK(memcmp(st.in, st.out, st.total) == 0);
        CHECK(s.udp_lost > 0); /* the link did lose datagrams */
        /* the server moved its path to the client's new address */
        ir_netaddr now_at;
        sim_addr(&now_at, sim_ip(10, 0, 0, 1), 6000);
        CHECK(sc && ir_netaddr_eq(ir_conn_path_addr(sc), &now_at));
        CHECK(established(c) && established(sc));
    }
    stream_free(&st);
    uint64_t trace = s.trace ^ s.now;
    sim_free(&s);
    return trace;
}


static void test_echo(void)
{
    echo_run(42, 1);
}

/* The same seed gives the same run: every delivery at the same virtual time. */
static void test_determinism(void)
{
    uint64_t a = echo_run(7, 0), b = echo_run(7, 0);
    CHECK(a == b);
}

/* Retry under the half-open cap: the server makes state for the first client; from then
 * on (retry_above 1) new clients must come back with a Retry token, and at the cap
 * (half_open_max 2) a client with a valid token is dropped until a handshake completes.
 * Four clients, 1 ms apart, 10 ms one way: the first completes at 30 ms, the other three
 * come back with tokens at 31-33 ms, so the last finds two handshakes half open. All four
 * get connected; at no time are more than two handshakes half open. */
static void test_retry_half_open(void)
{
    sim s;
    sim_init(&s, 11);
    ir_ep_config scfg;
    server_config(&scfg);
    scfg.retry_above = 1;
    scfg.half_open_max = 2;
    ir_ep_config ccfg;
    memset(&ccfg, 0, sizeof ccfg);
    node *sn = sim_node(&s, 2, 4433, &scfg);
    node *cn[4];
    ir_conn *c[4];
    for (int i = 0; i < 4; i++) {
        cn[i] = sim_node(&s, (uint8_t)(10 + i), 5000, &ccfg);
        c[i] = dial(cn[i], sn);
        s.now += 1 * MS; /* one after the other, all before the first answer */
    }
    size_t max_half = 0, accepted = 0;
    uint64_t limit = s.now + 20 * SEC;
    while (sim_step(&s, limit)) {
        ir_ep_counters k;
        ir_epc_get_counters(sn->core, &k);
        if (k.half_open > max_half)
            max_half = k.half_open;
        /* the core counts them as they change: the same as a count now */
        size_t half = 0;
        for (size_t i = 0; i < ir_epc_conn_count(sn->core); i++) {
            ir_conn *x = ir_epc_conn_at(sn->core, i);
            half += !ir_conn_handshake_complete(x) && ir_conn_get_state(x) != IR_CONN_CLOSED;
        }
        CHECK_EQ_INT(k.half_open, half);
        while (ir_epc_accept(sn->core))
            accepted++;
        if (established(c[0]) && established(c[1]) && established(c[2]) &&
            established(c[3]) && accepted == 4)
            break;
    }
    for (int i = 0; i < 4; i++)
        CHECK(established(c[i]));
    CHECK_EQ_INT(accepted, 4);
    CHECK(max_half <= 2);
    ir_ep_counters k;
    ir_epc_get_counters(sn->core, &k);
    CHECK_EQ_INT(k.retries_sent, 3);
    CHECK(k.initials_full >= 1); /* the fourth client's token came back at the cap */
    CHECK_EQ_INT(k.incoming, 4);
    ir_conn_stats st;
    ir_conn_get_stats(c[0], &st);
    CHECK_EQ_INT(st.retried, 0);
    ir_conn_get_stats(c[1], &st);
    CHECK_EQ_INT(st.retried, 1);
    ir_conn_get_stats(c[2], &st);
    CHECK_EQ_INT(st.retried, 1);
    ir_conn_get_stats(c[3], &st);
    CHECK_EQ_INT(st.retried, 1);
    sim_free(&s);
}

/* A client that goes silent after its first Initial: the server's half-open connection
 * ends exactly handshake_timeout_ms after it was made, and is freed (nobody accepted it). */
static void test_handshake_deadline(void)
{
    sim s;
    sim_init(&s, 12);
    ir_ep_config scfg;
    server_config(&scfg);
    scfg.handshake_timeout_ms = 1500;
    scfg.idle_timeout_ms = 30000;
    ir_ep_config ccfg;
    memset(&ccfg, 0, sizeof ccfg);
    node *sn = sim_node(&s, 2, 4433, &scfg);
    node *cn = sim_node(&s, 1, 5000, &ccfg);
    dial(cn, sn);
    cn->down = 1; /* gone after its first flight */
    uint64_t made = 0, gone = 0;
    while (sim_step(&s, s.now + 10 * SEC)) {
        size_t n = ir_epc_conn_count(sn->core);
        if (n && !made)
            made = s.now;
        if (made && !n && !gone)
            gone = s.now;
    }
    CHECK(made != 0);
    CHECK_EQ_INT(gone - made, 1500 * MS);
    ir_ep_counters k;
    ir_epc_get_counters(sn->core, &k);
    CHECK_EQ_INT(k.half_open, 0);
    sim_free(&s);
}

/* The server restarts (same key, same address, no state): the client's next packet is
 * answered with a stateless reset, and the client's connection ends with "reset". */
static void test_stateless_reset(void)
{
    sim s;
    sim_init(&s, 13);
    ir_ep_config scfg;
    server_config(&scfg);
    ir_ep_config ccfg;
    memset(&ccfg, 0, sizeof ccfg);
    node *sn = sim_node(&s, 2, 4433, &scfg);
    node *cn = sim_node(&s, 1, 5000, &ccfg);
    ir_conn *c = dial(cn, sn);
    ir_conn *sc = handshake(&s, cn, sn, c, s.now + 10 * SEC);
    CHECK(established(c) && established(sc));
    /* let everything in flight settle */
    while (sim_step(&s, s.now + 1 * SEC))
        ;
    /* the restart: a new core with the same key */
    node_start(sn, &scfg);
    client_stream st;
    stream_start(c, &st, 1000, 5);
    uint64_t start = s.now;
    do
        stream_pump(c, &st);
    while (!ir_conn_close_info(c)->closed && sim_step(&s, start + 5 * SEC));
    const ir_close_info *ci = ir_conn_close_info(c);
    CHECK(ci->closed);
    CHECK(ci->reset);
    /* one round trip: the packet there, the reset back */
    CHECK(ir_conn_get_state(c) >= IR_CONN_DRAINING);
    CHECK(s.now - start <= 2 * ONE_WAY + 1 * MS);
    stream_free(&st);
    sim_free(&s);
}

/* The first flight to several candidate addresses: the first candidate leads nowhere
 * (a silent address), the second is the server; the connection sends its Initials to
 * both, path 0 moves to the server's address with its first answer, and once the
 * handshake is over nothing more goes to the silent one. */
static void test_candidates(void)
{
    sim s;
    sim_init(&s, 17);
    ir_ep_config scfg;
    server_config(&scfg);
    ir_ep_config ccfg;
    memset(&ccfg, 0, sizeof ccfg);
    node *sn = sim_node(&s, 2, 4433, &scfg);
    node *cn = sim_node(&s, 1, 5000, &ccfg);
    node *silent = sim_node(&s, 7, 4433, NULL);
    ir_netaddr cand[2] = {silent->addr, sn->addr};
    iroh_endpoint_id id;
    iroh_secret_key_public(&sn->key, &id);
    ir_conn *c = NULL;
    CHECK(ir_epc_connect(cn->core, cand, 2, &id, ALPNS, ALPN_LENS, 1, s.now, &c) == IROH_OK);
    CHECK(ir_netaddr_eq(ir_conn_path_addr(c), &silent->addr));
    ir_conn *sc = handshake(&s, cn, sn, c, s.now + 10 * SEC);
    CHECK(established(c) && established(sc));
    CHECK(ir_netaddr_eq(ir_conn_path_addr(c), &sn->addr));
    CHECK(silent->udp_recv >= 1);
    CHECK(silent->nraw >= 1 && silent->raw_len[0] >= 1200); /* the client's Initial */
    size_t before = silent->udp_recv;
    client_stream st;
    stream_start(c, &st, 20000, 1);
    echo_until_end(&s, c, &st, sn);
    CHECK(st.fin_seen && st.got == st.total);
    CHECK_EQ_INT(silent->udp_recv, before);
    stream_free(&st);
    sim_free(&s);
}

/* A connection over a relay path only (the peer's relay: a virtual relay that forwards
 * by EndpointId, 30 ms one way): the datagrams enter the server's core with the relay
 * path address, a new connection starts on it, and both ends echo over it. */
static void test_relayed(void)
{
    sim s;
    sim_init(&s, 18);
    add_relay(&s, 15 * MS);
    ir_ep_config scfg;
    server_config(&scfg);
    ir_ep_config ccfg;
    memset(&ccfg, 0, sizeof ccfg);
    node *sn = sim_node(&s, 2, 4433, &scfg);
    node *cn = sim_node(&s, 1, 5000, &ccfg);
    relays_up(&s, 0, s.now + 5 * SEC);
    CHECK(all_established(&s, 0));
    ir_netaddr via = relay_addr(sn, 0);
    ir_conn *c = NULL;
    uint64_t t0 = s.now;
    CHECK(ir_epc_connect(cn->core, &via, 1, &sn->id, ALPNS, ALPN_LENS, 1, s.now, &c) ==
          IROH_OK);
    ir_conn *sc = handshake(&s, cn, sn, c, s.now + 10 * SEC);
    CHECK(established(c) && established(sc));
    /* Initial, answer, Finished: each up to the relay and down again */
    CHECK(s.now - t0 >= 3 * 2 * s.relays[0].one_way);
    ir_netaddr back = relay_addr(cn, 0);
    CHECK(sc && ir_netaddr_eq(ir_conn_path_addr(sc), &back));
    CHECK(sc && ir_netaddr_eq(ir_epc_conn_remote(sn->core, sc), &back));
    client_stream st;
    stream_start(c, &st, 50000, 4);
    echo_until_end(&s, c, &st, sn);
    CHECK(st.fin_seen && st.got == st.total);
    CHECK(memcmp(st.in, st.out, st.total) == 0);
    CHECK_EQ_INT(cn->udp_sent + sn->udp_sent, 0); /* all of it through the relay */
    stream_free(&st);
    sim_free(&s);
}

/* A full-size long-header packet of an unknown version gets a Version Negotiation
 * packet that echoes the CIDs and lists version 1; a short one gets nothing. */
static void test_version_negotiation(void)
{
    sim s;
    sim_init(&s, 14);
    ir_ep_config scfg;
    server_config(&scfg);
    node *sn = sim_node(&s, 2, 4433, &scfg);
    node *raw = sim_node(&s, 1, 5000, NULL);
    uint8_t pkt[1200];
    memset(pkt, 0, sizeof pkt);
    size_t o = 0;
    pkt[o++] = 0xc0;
    pkt[o++] = 0x1a, pkt[o++] = 0x2a, pkt[o++] = 0x3a, pkt[o++] = 0x4a; /* a reserved version */
    pkt[o++] = 9;
    memcpy(pkt + o, "dcid-9876", 9);
    o += 9;
    pkt[o++] = 5;
    memcpy(pkt + o, "scid5", 5);
    uint8_t copy[1200];
    memcpy(copy, pkt, sizeof pkt);
    ir_epc_recv(sn->core, &raw->addr, copy, 1199, s.now); /* short: no answer */
    while (sim_step(&s, s.now + 1 * SEC))
        ;
    CHECK_EQ_INT(raw->nraw, 0);
    memcpy(copy, pkt, sizeof pkt);
    ir_epc_recv(sn->core, &raw->addr, copy, sizeof copy, s.now);
    while (sim_step(&s, s.now + 1 * SEC))
        ;
    CHECK_EQ_INT(raw->nraw, 1);
    if (raw->nraw == 1) {
        const uint8_t *v = raw->raw[0];
        ir_pkt_hdr h;
        CHECK(ir_pkt_parse(v, raw->raw_len[0], 8, &h) == 0);
        CHECK(h.type == IR_PT_VN);
        CHECK(h.dcid.len == 5 && memcmp(h.dcid.data, "scid5", 5) == 0);
        CHECK(h.scid.len == 9 && memcmp(h.scid.data, "dcid-9876", 9) == 0);
        size_t vo = 7 + 5 + 9;
        int has_v1 = 0;
        for (; vo + 4 <= raw->raw_len[0]; vo += 4)
            has_v1 |= v[vo] == 0 && v[vo + 1] == 0 && v[vo + 2] == 0 && v[vo + 3] == 1;
        CHECK(has_v1);
    }
    sim_free(&s);
}

/* Idle timeout (RFC 9000 10.1) of 3 s, keep-alive off: after the last exchange each end
 * closes silently at exactly 3 s after the last datagram it received. */
static void test_idle_timeout(void)
{
    sim s;
    sim_init(&s, 15);
    ir_ep_config scfg;
    server_config(&scfg);
    scfg.idle_timeout_ms = 3000;
    scfg.keep_alive_ns = 3600 * SEC;
    ir_ep_config ccfg = scfg;
    ccfg.n_alpns = 0;
    node *sn = sim_node(&s, 2, 4433, &scfg);
    node *cn = sim_node(&s, 1, 5000, &ccfg);
    ir_conn *c = dial(cn, sn);
    ir_conn *sc = handshake(&s, cn, sn, c, s.now + 10 * SEC);
    CHECK(established(c) && established(sc));
    client_stream st;
    stream_start(c, &st, 5000, 9);
    uint64_t c_closed = 0, s_closed = 0, c_last = 0, s_last = 0;
    uint64_t limit = s.now + 30 * SEC;
    do {
        if (!c_closed) {
            stream_pump(c, &st);
            echo_app(sn);
        }
        if (!c_closed && ir_conn_get_state(c) == IR_CONN_CLOSED) {
            c_closed = s.now;
            c_last = cn->last_recv;
        }
        if (!s_closed && ir_conn_get_state(sc) == IR_CONN_CLOSED) {
            s_closed = s.now;
            s_last = sn->last_recv;
        }
        if (c_closed && s_closed)
            break;
    } while (sim_step(&s, limit));
    CHECK(st.fin_seen && st.got == st.total);
    CHECK(c_closed && s_closed);
    CHECK(ir_conn_close_info(c)->idle_timeout);
    CHECK(ir_conn_close_info(sc)->idle_timeout);
    CHECK_EQ_INT(c_closed - c_last, 3000 * MS);
    CHECK_EQ_INT(s_closed - s_last, 3000 * MS);
    stream_free(&st);
    sim_free(&s);
}

/* A 1-RTT-looking datagram with destination id `dcid` from the raw node `from` to node
 * `to`: 1 if `to` answered it with a stateless reset (a short header, shorter than the
 * trigger), 0 if nothing came back (it was routed to a connection, which dropped it). */
static int reset_for(sim *s, node *from, node *to, const ir_cid *dcid)
{
    uint8_t pkt[60];
    sim_random(s, pkt, sizeof pkt);
    pkt[0] = (uint8_t)((pkt[0] & 0x3f) | 0x40);
    memcpy(pkt + 1, dcid->data, dcid->len);
    size_t before = from->nraw;
    ir_epc_recv(to->core, &from->addr, pkt, sizeof pkt, s->now);
    while (sim_step(s, s->now + 100 * MS))
        ;
    if (from->nraw == before)
        return 0;
    CHECK_EQ_INT(from->nraw, before + 1);
    const uint8_t *r = from->raw[from->nraw - 1];
    CHECK((r[0] & 0xc0) == 0x40);
    CHECK(from->raw_len[from->nraw - 1] < sizeof pkt);
    return 1;
}

#if defined(__SANITIZE_ADDRESS__)
#define MANY 400 /* sanitizers: the same paths, fewer handshakes */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MANY 400
#endif
#endif
#ifndef MANY
#define MANY 2000
#endif

/* Routing by the connection-id table among MANY connections from one client endpoint:
 * all get connected and echo on their own stream; a connection id the client retired
 * is no longer routed (a datagram to it gets a stateless reset), nor are those of a
 * released connection; one that is live is routed; unknown ids get a reset. */
static void test_many_connections(void)
{
    sim s;
    sim_init(&s, 16);
    ir_ep_config scfg;
    server_config(&scfg);
    scfg.half_open_max = MANY + 1;
    scfg.retry_above = MANY + 1;
    scfg.keep_alive_ns = 3600 * SEC;
    ir_ep_config ccfg = scfg;
    ccfg.n_alpns = 0;
    node *sn = sim_node(&s, 2, 4433, &scfg);
    node *cn = sim_node(&s, 1, 5000, &ccfg);
    node *raw = sim_node(&s, 3, 7000, NULL);
    ir_conn **c = calloc(MANY, sizeof *c);
    for (size_t i = 0; i < MANY; i++)
        c[i] = dial(cn, sn);
    size_t up = 0, sup = 0;
    uint64_t limit = s.now + 60 * SEC;
    while ((up < MANY || sup < MANY) && sim_step(&s, limit)) {
        while (ir_epc_accept(sn->core))
            ;
        up = sup = 0;
        for (size_t i = 0; i < MANY; i++)
            up += established(c[i]);
        for (size_t i = 0; i < ir_epc_conn_count(sn->core); i++)
            sup += ir_conn_handshake_complete(ir_epc_conn_at(sn->core, i));
    }
    CHECK_EQ_INT(up, MANY);
    CHECK_EQ_INT(sup, MANY);
    ir_ep_counters kc;
    ir_epc_get_counters(sn->core, &kc);
    CHECK_EQ_INT(kc.half_open, 0);
    CHECK_EQ_INT(kc.incoming, MANY);
    CHECK_EQ_INT(ir_epc_conn_count(sn->core), MANY);
    /* each server connection: its ids, the client's Initial DCID, the client's token */
    CHECK(ir_epc_cid_entries(sn->core) >= 3 * MANY);
    /* an echo on 16 connections spread over the table */
    client_stream st[16];
    for (int k = 0; k < 16; k++)
        stream_start(c[(size_t)k * (MANY / 16)], &st[k], 3000, (uint8_t)k);
    int done = 0;
    limit = s.now + 20 * SEC;
    do {
        done = 1;
        for (int k = 0; k < 16; k++) {
            stream_pump(c[(size_t)k * (MANY / 16)], &st[k]);
            done &= st[k].fin_seen;
        }
        echo_app(sn);
    } while (!done && sim_step(&s, limit));
    for (int k = 0; k < 16; k++) {
        CHECK(st[k].fin_seen && st[k].got == st[k].total);
        CHECK(memcmp(st[k].in, st[k].out, st[k].total) == 0);
        stream_free(&st[k]);
    }
    /* the client of connection 7 retires the server's id it used */
    ir_conn *r = c[7];
    ir_cid old = *ir_conn_dcid(r->paths[0]);
    CHECK(reset_for(&s, raw, sn, &old) == 0); /* live: routed */
    size_t entries = ir_epc_cid_entries(sn->core);
    CHECK(ir_conn_rotate_dcid(r) == 0);
    ir_cid now_id = *ir_conn_dcid(r->paths[0]);
    CHECK(!ir_cid_eq(&old, &now_id));
    while (sim_step(&s, s.now + 1 * SEC))
        ;
    CHECK(established(r));
    /* the server retired it and issued a new one in its place */
    CHECK_EQ_INT(ir_epc_cid_entries(sn->core), entries);
    CHECK(reset_for(&s, raw, sn, &old) == 1);
    CHECK(reset_for(&s, raw, sn, &now_id) == 0);
    /* a released server connection's ids: no longer routed */
    ir_cid gone = *ir_conn_dcid(c[MANY - 1]->paths[0]);
    ir_conn *victim = NULL;
    for (size_t i = 0; i < ir_epc_conn_count(sn->core) && !victim; i++)
        if (ir_conn_owns_cid(ir_epc_conn_at(sn->core, i), gone.data, gone.len))
            victim = ir_epc_conn_at(sn->core, i);
    CHECK(victim != NULL);
    CHECK(reset_for(&s, raw, sn, &gone) == 0);
    ir_epc_release(sn->core, victim, 1, s.now);
    CHECK(reset_for(&s, raw, sn, &gone) == 1);
    CHECK_EQ_INT(ir_epc_conn_count(sn->core), MANY - 1);
    /* an id nobody issued */
    ir_cid unknown = {.len = 8, .data = {1, 2, 3, 4, 5, 6, 7, 8}};
    CHECK(reset_for(&s, raw, sn, &unknown) == 1);
    free(c);
    sim_free(&s);
}

int main(void)
{
    RUN(test_echo);
    RUN(test_determinism);
    RUN(test_retry_half_open);
    RUN(test_handshake_deadline);
    RUN(test_stateless_reset);
    RUN(test_candidates);
    RUN(test_relayed);
    RUN(test_version_negotiation);
    RUN(test_idle_timeout);
    RUN(test_many_connections);
    TEST_EXIT();
}
