/* n0's NAT traversal (QNT) and iroh's path policy in the connection (conn_nat.c,
 * path_select.c): two ir_conn talking through a small network on a virtual clock, where
 * the test decides which address reaches which.
 *
 * The network has routes: route k joins the server's address S_k (what the client sends
 * to) and the client's address C_k (where its datagrams come from, as the server sees
 * them, and what the server sends to); each direction of a route can be cut. Route 0 is
 * the path of the handshake. Every datagram is shown to a tap, which decrypts a copy with
 * the receiver's keys and counts the frames in it; the tap may drop it. */
#include <stdlib.h>

#include "net/netaddr.h"
#include "quic/conn_internal.h"
#include "quic/path_select.h"
#include "test.h"

#define MS 1000000ull
#define SEC 1000000000ull

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static void rand_bytes(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        buf[i] = (uint8_t)rng_state;
    }
}

/* ---- addresses ------------------------------------------------------------------------------ */

static iroh_socket_addr sa4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
    iroh_socket_addr s;
    memset(&s, 0, sizeof s);
    s.family = 4;
    s.ip[0] = a;
    s.ip[1] = b;
    s.ip[2] = c;
    s.ip[3] = d;
    s.port = port;
    return s;
}

static ir_netaddr na(iroh_socket_addr s)
{
    ir_netaddr n;
    ir_netaddr_from_socket_addr(&n, &s);
    return n;
}

/* a relay path address: not an IP one to addr_of */
static ir_netaddr relay_addr(const char *name)
{
    ir_netaddr n;
    memset(&n, 0, sizeof n);
    n.len = (uint8_t)strlen(name);
    memcpy(n.data, name, n.len);
    return n;
}

/* ---- the network ---------------------------------------------------------------------------- */

#define MAXQ 4096
#define MAXROUTES 8

typedef struct dgram_q {
    uint64_t at;
    int to; /* 0 client, 1 server */
    ir_netaddr from;
    size_t len;
    uint8_t d[1500];
} dgram_q;

typedef struct route {
    ir_netaddr s, c;
    int c2s, s2c; /* 1: that direction gets through */
    ir_netaddr s_from; /* len > 0: what the server sends to c arrives from there, not s */
} route;

/* what went over the wire, by sender */
typedef struct counts {
    unsigned add, remove, reach, challenge, response, dgrams;
} counts;

typedef struct net {
    ir_conn *c[2];
    uint64_t now, delay;
    dgram_q *q;
    size_t qhead, qn;
    route r[MAXROUTES];
    int nr;
    counts cnt[2];
    int stuck;
    /* sees each datagram (from: the sending side; to: its destination) with its frame types;
     * 1 drops it */
    int (*tap)(struct net *nw, int from, const ir_netaddr *to, const uint64_t *types, size_t nt,
               const uint8_t *d, size_t len);
    ir_conn_config cfg[2];
    iroh_socket_addr client_local[4], server_local[4];
    size_t nclient_local, nserver_local;
    uint64_t t_up; /* when the client's handshake completed */
} net;

static ir_tls_identity *cid_, *sid_;
static iroh_endpoint_id server_id;
static const uint8_t *alpns[] = {(const uint8_t *)"test/1"};
static const size_t alpn_lens[] = {6};

static void setup_identities(void)
{
    iroh_secret_key a, b;
    memset(a.bytes, 0x31, 32);
    memset(b.bytes, 0x42, 32);
    ir_tls_identity_new(&a, &cid_);
    ir_tls_identity_new(&b, &sid_);
    iroh_secret_key_public(&b, &server_id);
}

static void config(ir_conn_config *cfg, int server)
{
    ir_conn_config_defaults(cfg); /* offers initial_max_path_id 7 and NAT traversal 32 */
    cfg->identity = server ? sid_ : cid_;
    cfg->alpns = alpns;
    cfg->alpn_lens = alpn_lens;
    cfg->n_alpns = 1;
    cfg->remote_id = server ? NULL : &server_id;
    cfg->random = rand_bytes;
    cfg->addr_of = ir_netaddr_to_socket_addr;
    memset(cfg->reset_key, server ? 2 : 1, 32);
}

static void net_init(net *nw, uint64_t delay_ms)
{
    memset(nw, 0, sizeof *nw);
    nw->q = calloc(MAXQ, sizeof *nw->q);
    nw->now = 1000 * SEC;
    nw->delay = delay_ms * MS;
    nw->r[0].s = na(sa4(198, 51, 100, 1, 4433));
    nw->r[0].c = na(sa4(203, 0, 113, 1, 5000));
    nw->r[0].c2s = nw->r[0].s2c = 1;
    nw->nr = 1;
    config(&nw->cfg[0], 0);
    config(&nw->cfg[1], 1);
}

static int add_route(net *nw, ir_netaddr s, ir_netaddr c, int c2s, int s2c)
{
    nw->r[nw->nr].s = s;
    nw->r[nw->nr].c = c;
    nw->r[nw->nr].c2s = c2s;
    nw->r[nw->nr].s2c = s2c;
    return nw->nr++;
}

static void net_free(net *nw)
{
    ir_conn_free(nw->c[0]);
    ir_conn_free(nw->c[1]);
    free(nw->q);
}

/* The frame types of a 1-RTT datagram, decrypted (a copy) with the receiver's keys of
 * path 0; 0 if it cannot be read that way. */
static size_t peek(const ir_conn *rx, const uint8_t *d, size_t len, uint64_t *types, size_t cap,
                   uint8_t chal[8], ir_cid *dcid)
{
    if (!rx || !rx->epoch[SP_APP].have_rx)
        return 0;
    uint8_t copy[1500];
    /* the 1-RTT packet of the datagram: the last one, after any coalesced long headers */
    ir_pkt_hdr h;
    size_t off = 0;
    for (;;) {
        if (off >= len || ir_pkt_parse(d + off, len - off, 8, &h) != 0)
            return 0;
        if (h.type == IR_PT_1RTT)
            break;
        off += h.pkt_len;
    }
    len -= off;
    memcpy(copy, d + off, len);
    if (ir_pkt_parse(copy, len, 8, &h) != 0)
        return 0;
    const pn_space *sp = &PNS(rx, rx->paths[0], SP_APP);
    const qepoch *e = &rx->epoch[SP_APP];
    uint64_t pn;
    size_t pn_len;
    if (ir_pkt_unprotect_header(copy, &h, &e->rx.hp, sp->largest_recv, &pn, &pn_len) != 0)
        return 0;
    const uint8_t *payload;
    size_t plen;
    if (ir_pkt_decrypt(copy, &h, pn_len, &e->rx.aead, 0, pn, &payload, &plen) != 0)
        return 0;
    if (dcid)
        *dcid = h.dcid;
    ir_cursor cur;
    ir_cursor_init(&cur, payload, plen);
    size_t n = 0;
    while (ir_cursor_left(&cur) > 0) {
        ir_frame f;
        if (ir_frame_decode(&cur, &f) != 0)
            break;
        if (f.type == IR_FT_PATH_CHALLENGE && chal)
            memcpy(chal, f.u.path_data, 8);
        if (n < cap)
            types[n++] = f.type;
    }
    return n;
}

static void count(counts *k, const uint64_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        k->add += t[i] == IR_FT_ADD_ADDRESS_V4 || t[i] == IR_FT_ADD_ADDRESS_V6;
        k->remove += t[i] == IR_FT_REMOVE_ADDRESS;
        k->reach += t[i] == IR_FT_REACH_OUT_V4 || t[i] == IR_FT_REACH_OUT_V6;
        k->challenge += t[i] == IR_FT_PATH_CHALLENGE;
        k->response += t[i] == IR_FT_PATH_RESPONSE;
    }
}

static void enqueue(net *nw, int to, const ir_netaddr *from, const uint8_t *d, size_t len)
{
    if (nw->qn == MAXQ)
        return;
    dgram_q *q = &nw->q[(nw->qhead + nw->qn++) % MAXQ];
    q->at = nw->now + nw->delay;
    q->to = to;
    q->from = *from;
    q->len = len;
    memcpy(q->d, d, len);
}

/* routes a datagram of side i to `to` */
static void route_dgram(net *nw, int i, const ir_netaddr *to, const uint8_t *d, size_t len)
{
    for (int k = 0; k < nw->nr; k++) {
        route *r = &nw->r[k];
        if (i == 0 && ir_netaddr_eq(to, &r->s)) {
            if (r->c2s)
                enqueue(nw, 1, &r->c, d, len);
            return;
        }
        if (i == 1 && ir_netaddr_eq(to, &r->c)) {
            if (r->s2c)
                enqueue(nw, 0, r->s_from.len ? &r->s_from : &r->s, d, len);
            return;
        }
    }
}

static void drain(net *nw)
{
    uint8_t buf[1500];
    ir_netaddr to;
    for (int i = 0; i < 2; i++) {
        if (!nw->c[i])
            continue;
        size_t n;
        while ((n = ir_conn_send(nw->c[i], buf, sizeof buf, &to, nw->now)) > 0) {
            uint64_t types[64];
            size_t nt = peek(nw->c[1 - i], buf, n, types, 64, NULL, NULL);
            count(&nw->cnt[i], types, nt);
            nw->cnt[i].dgrams++;
            if (nw->tap && nw->tap(nw, i, &to, types, nt, buf, n))
                continue;
            route_dgram(nw, i, &to, buf, n);
        }
    }
}

static int step(net *nw, uint64_t limit)
{
    drain(nw);
    uint64_t next = nw->qn ? nw->q[nw->qhead].at : UINT64_MAX;
    int timer_side = -1;
    for (int i = 0; i < 2; i++) {
        if (!nw->c[i])
            continue;
        uint64_t t = ir_conn_timeout(nw->c[i]);
        if (t < next) {
            next = t;
            timer_side = i;
        }
    }
    if (next == UINT64_MAX || next > limit)
        return 0;
    static int spin;
    if (next > nw->now) {
        nw->now = next;
        spin = 0;
    } else if (++spin > 100000) {
        nw->stuck = 1;
        return 0;
    }
    if (timer_side >= 0) {
        ir_conn_on_timeout(nw->c[timer_side], nw->now);
        return 1;
    }
    dgram_q q = nw->q[nw->qhead];
    nw->qhead = (nw->qhead + 1) % MAXQ;
    nw->qn--;
    if (!nw->c[1] && q.to == 1) {
        ir_pkt_hdr h;
        if (ir_pkt_parse(q.d, q.len, 8, &h) == 0 && h.type == IR_PT_INITIAL) {
            CHECK_EQ_INT(ir_conn_server_new(&nw->cfg[1], &h, &q.from, nw->now, &nw->c[1]), IROH_OK);
            if (nw->c[1] && nw->nserver_local)
                ir_conn_set_local_addrs(nw->c[1], nw->server_local, nw->nserver_local, nw->now);
        }
    }
    if (nw->c[q.to])
        ir_conn_recv(nw->c[q.to], &q.from, q.d, q.len, nw->now);
    return 1;
}

static void run_for(net *nw, uint64_t ns)
{
    uint64_t limit = nw->now + ns;
    while (step(nw, limit)) {
    }
    if (nw->now < limit)
        nw->now = limit;
}

static int run_until(net *nw, int (*done)(net *), uint64_t max_ns)
{
    uint64_t limit = nw->now + max_ns;
    while (!done(nw))
        if (!step(nw, limit))
            return done(nw);
    return 1;
}

static int confirmed(net *nw)
{
    return nw->c[0] && nw->c[1] && ir_conn_get_state(nw->c[0]) == IR_CONN_ESTABLISHED &&
           ir_conn_get_state(nw->c[1]) == IR_CONN_ESTABLISHED && nw->c[0]->handshake_confirmed;
}

/* the client connects over route 0 and both sides come up (and give their candidates) */
static int client_up(net *nw)
{
    return nw->c[0] && ir_conn_handshake_complete(nw->c[0]);
}

static void start(net *nw)
{
    CHECK_EQ_INT(ir_conn_client_new(&nw->cfg[0], &nw->r[0].s, nw->now, &nw->c[0]), IROH_OK);
    if (nw->nclient_local)
        ir_conn_set_local_addrs(nw->c[0], nw->client_local, nw->nclient_local, nw->now);
    CHECK(run_until(nw, client_up, 5 * SEC));
    nw->t_up = nw->now;
    CHECK(run_until(nw, confirmed, 5 * SEC));
}

static int closed_by(const ir_conn *c, uint64_t code)
{
    const ir_close_info *ci = ir_conn_close_info(c);
    return ci->closed && !ci->by_peer && !ci->application && ci->code == code;
}

/* a 1-RTT packet from c (path 0, its next packet number) with the frames */
static size_t forge(ir_conn *c, const ir_frame *fr, size_t nf, uint8_t *out, size_t cap)
{
    uint8_t payload[1200];
    size_t n = 0;
    for (size_t i = 0; i < nf; i++) {
        size_t k = ir_frame_encode(payload + n, sizeof payload - n, &fr[i]);
        CHECK(k > 0);
        n += k;
    }
    qpath *p = c->paths[0];
    uint64_t pn = PNS(c, p, SP_APP).next_pn++;
    size_t h = ir_pkt_write_short(out, cap, &p->cids.rcid[p->cids.active_rcid].cid, c->ku.key_phase, 0, pn, 4);
    memcpy(out + h, payload, n);
    return ir_pkt_protect(out, h, 4, 0, n, &c->epoch[SP_APP].tx, 0, pn);
}

/* delivers forged frames from side `from` to the other over route 0 */
static void inject(net *nw, int from, const ir_frame *fr, size_t nf)
{
    uint8_t d[1500];
    size_t n = forge(nw->c[from], fr, nf, d, sizeof d);
    ir_conn_recv(nw->c[1 - from], from == 0 ? &nw->r[0].c : &nw->r[0].s, d, n, nw->now);
}

/* the same from another address of the sender (as the receiver sees it) */
static void inject_from(net *nw, int from, const ir_netaddr *src, const ir_frame *fr, size_t nf)
{
    uint8_t d[1500];
    size_t n = forge(nw->c[from], fr, nf, d, sizeof d);
    ir_conn_recv(nw->c[1 - from], src, d, n, nw->now);
}

static ir_frame addr_frame(uint64_t type, uint64_t seq, iroh_socket_addr a)
{
    ir_frame f;
    memset(&f, 0, sizeof f);
    f.type = type;
    f.u.addr.seq = seq;
    memcpy(f.u.addr.ip, a.ip, a.family == 4 ? 4 : 16);
    f.u.addr.port = a.port;
    return f;
}

/* ---- path selection (iroh's biased_rtt_path_selector.rs cases and more) ----------------------- */

static ir_path_cand pc(uint64_t id, int relay, int v6, uint64_t rtt_ms)
{
    ir_path_cand c = {id, relay, v6, rtt_ms * MS};
    return c;
}

static void test_path_select(void)
{
    /* nothing to choose from */
    CHECK_EQ_INT(ir_path_select(NULL, 0, -1), -1);
    /* IPv6 wins over IPv4 by up to 3 ms */
    ir_path_cand a[2] = {pc(1, 0, 0, 10), pc(2, 0, 1, 10)};
    CHECK_EQ_INT(ir_path_select(a, 2, -1), 1);
    a[1] = pc(2, 0, 1, 12);
    CHECK_EQ_INT(ir_path_select(a, 2, -1), 1);
    a[1] = pc(2, 0, 1, 13);
    CHECK_EQ_INT(ir_path_select(a, 2, -1), 0); /* 13 - 3 = 10: not lower; the first stays */
    a[1] = pc(2, 0, 1, 20);
    CHECK_EQ_INT(ir_path_select(a, 2, -1), 0);
    /* the primary tier wins whatever the RTTs */
    ir_path_cand b[2] = {pc(0, 1, 0, 10), pc(1, 0, 0, 100)};
    CHECK_EQ_INT(ir_path_select(b, 2, -1), 1);
    b[0] = pc(0, 1, 0, 1);
    b[1] = pc(1, 0, 0, 1000);
    CHECK_EQ_INT(ir_path_select(b, 2, -1), 1);
    /* across tiers at once, from the relay to a slower direct path */
    CHECK_EQ_INT(ir_path_select(b, 2, 0), 1);
    /* a selected direct path is not left for the relay, however fast */
    CHECK_EQ_INT(ir_path_select(b, 2, 1), -1);
    /* within a tier only for a gain of 5 ms or more */
    ir_path_cand s[2] = {pc(1, 0, 0, 20), pc(2, 0, 0, 18)};
    CHECK_EQ_INT(ir_path_select(s, 2, 0), -1);
    s[1] = pc(2, 0, 0, 16);
    CHECK_EQ_INT(ir_path_select(s, 2, 0), -1);
    s[1] = pc(2, 0, 0, 15);
    CHECK_EQ_INT(ir_path_select(s, 2, 0), 1);
    s[1] = pc(2, 0, 0, 14);
    CHECK_EQ_INT(ir_path_select(s, 2, 0), 1);
    /* the IPv6 advantage counts in the 5 ms: 17 - 3 = 14 vs 20 */
    s[1] = pc(2, 0, 1, 17);
    CHECK_EQ_INT(ir_path_select(s, 2, 0), 1);
    s[1] = pc(2, 0, 1, 18); /* 15 + 5 <= 20 */
    CHECK_EQ_INT(ir_path_select(s, 2, 0), 1);
    s[1] = pc(2, 0, 1, 19);
    CHECK_EQ_INT(ir_path_select(s, 2, 0), -1);
    /* two relays: the same 5 ms rule within the backup tier */
    ir_path_cand r[2] = {pc(0, 1, 0, 50), pc(1, 1, 0, 46)};
    CHECK_EQ_INT(ir_path_select(r, 2, 0), -1);
    r[1] = pc(1, 1, 0, 45);
    CHECK_EQ_INT(ir_path_select(r, 2, 0), 1);
    /* no current: the best, and the best is kept (-1) when it is current */
    ir_path_cand t[3] = {pc(0, 1, 0, 5), pc(1, 0, 0, 20), pc(2, 0, 0, 10)};
    CHECK_EQ_INT(ir_path_select(t, 3, -1), 2);
    CHECK_EQ_INT(ir_path_select(t, 3, 2), -1);
    /* an IPv6 path under 3 ms goes below zero and still sorts first */
    ir_path_cand u[2] = {pc(1, 0, 0, 1), pc(2, 0, 1, 1)};
    CHECK_EQ_INT(ir_path_select(u, 2, -1), 1);
    /* a current index out of range counts as none */
    CHECK_EQ_INT(ir_path_select(t, 3, 7), 2);
}


/* ---- connections ---------------------------------------------------------------------------- */

static void poll_all(ir_conn *c, unsigned *path_changed)
{
    ir_event ev;
    while (ir_conn_poll_event(c, &ev))
        if (ev.type == IR_EV_PATH_CHANGED && path_changed)
            (*path_changed)++;
}

/* QNT is on only if both sides offer it and multipath is on; without it no QNT frame
 * ever goes out, whatever the endpoint asks for */
static void negotiation_case(int client_tp, int server_tp, int multipath, int expect)
{
    net nw;
    net_init(&nw, 10);
    nw.cfg[0].tp.nat_traversal = (uint8_t)client_tp;
    nw.cfg[1].tp.nat_traversal = (uint8_t)server_tp;
    if (!multipath)
        nw.cfg[1].tp.has_initial_max_path_id = 0;
    nw.client_local[0] = sa4(10, 0, 0, 2, 7000);
    nw.nclient_local = 1;
    nw.server_local[0] = sa4(10, 0, 0, 1, 7001);
    nw.nserver_local = 1;
    start(&nw);
    run_for(&nw, 1 * SEC);
    CHECK_EQ_INT(ir_conn_nat_traversal(nw.c[0]), expect);
    CHECK_EQ_INT(ir_conn_nat_traversal(nw.c[1]), expect);
    int rc = ir_conn_holepunch(nw.c[0], nw.now);
    CHECK_EQ_INT(rc, expect ? IR_QUIC_OK : IR_QUIC_STREAM_ERR);
    /* the server never starts a round */
    CHECK_EQ_INT(ir_conn_holepunch(nw.c[1], nw.now), IR_QUIC_STREAM_ERR);
    iroh_socket_addr more[2] = {sa4(10, 0, 0, 1, 7001), sa4(10, 0, 0, 3, 7003)};
    CHECK_EQ_INT(ir_conn_set_local_addrs(nw.c[1], more, 2, nw.now), IR_QUIC_OK);
    run_for(&nw, 10 * SEC);
    /* a side that does not offer NAT traversal keeps no QNT state for its addresses */
    if (!client_tp)
        CHECK(nw.c[0]->nat == NULL);
    if (!server_tp)
        CHECK(nw.c[1]->nat == NULL);
    if (expect) {
        /* both addresses, or one at a time within the client's limit */
        CHECK(nw.cnt[1].add >= (unsigned)(client_tp < 2 ? client_tp : 2));
        CHECK(nw.cnt[0].reach >= 1);
        CHECK(ir_conn_nat_round(nw.c[0]) >= 2);
        CHECK_EQ_INT(ir_conn_nat_round(nw.c[1]), ir_conn_nat_round(nw.c[0]));
    } else {
        CHECK_EQ_INT(nw.cnt[0].add + nw.cnt[0].remove + nw.cnt[0].reach, 0);
        CHECK_EQ_INT(nw.cnt[1].add + nw.cnt[1].remove + nw.cnt[1].reach, 0);
        CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 0);
        CHECK_EQ_INT(ir_conn_nat_round(nw.c[1]), 0);
        CHECK_EQ_INT(nw.cnt[0].challenge + nw.cnt[1].challenge, 0); /* no probes */
    }
    CHECK(!ir_conn_close_info(nw.c[0])->closed);
    CHECK(!ir_conn_close_info(nw.c[1])->closed);
    CHECK(!nw.stuck);
    net_free(&nw);
}

static void test_negotiation(void)
{
    negotiation_case(32, 32, 1, 1);
    negotiation_case(32, 0, 1, 0); /* a server without the parameter */
    negotiation_case(0, 32, 1, 0); /* a client without it */
    negotiation_case(32, 32, 0, 0); /* both, but no multipath */
    negotiation_case(1, 255, 1, 1);
}

static void test_set_local_addrs_args(void)
{
    net nw;
    net_init(&nw, 10);
    start(&nw);
    iroh_socket_addr bad = sa4(1, 2, 3, 4, 5);
    bad.family = 5;
    CHECK_EQ_INT(ir_conn_set_local_addrs(nw.c[1], &bad, 1, nw.now), IR_QUIC_STREAM_ERR);
    /* an IPv4-mapped IPv6 address is the IPv4 one; duplicates count once; at most 32 */
    iroh_socket_addr many[40];
    for (int i = 0; i < 40; i++)
        many[i] = sa4(10, 1, 0, (uint8_t)i, 9000);
    iroh_socket_addr mapped;
    memset(&mapped, 0, sizeof mapped);
    mapped.family = 6;
    mapped.ip[10] = mapped.ip[11] = 0xff;
    mapped.ip[12] = 10;
    mapped.ip[13] = 1;
    mapped.ip[14] = 0;
    mapped.ip[15] = 0;
    mapped.port = 9000;
    many[1] = mapped; /* the same as many[0] */
    CHECK_EQ_INT(ir_conn_set_local_addrs(nw.c[1], many, 40, nw.now), IR_QUIC_OK);
    run_for(&nw, 2 * SEC);
    iroh_socket_addr got[40];
    size_t n = ir_conn_nat_remote_addrs(nw.c[0], got, 40);
    CHECK_EQ_INT(n, 32);
    for (size_t i = 0; i < n && i < 40; i++)
        CHECK(got[i].family == 4);
    CHECK_EQ_INT(nw.cnt[1].add, 32);
    net_free(&nw);
}

/* a side that receives a QNT frame it must not: PROTOCOL_VIOLATION */
static void violation_case(int server_tp, int from, ir_frame f, int expect_close)
{
    net nw;
    net_init(&nw, 10);
    nw.cfg[1].tp.nat_traversal = (uint8_t)server_tp;
    start(&nw);
    run_for(&nw, 100 * MS);
    inject(&nw, from, &f, 1);
    CHECK_EQ_INT(closed_by(nw.c[1 - from], IR_QERR_PROTOCOL_VIOLATION), expect_close);
    net_free(&nw);
}

static void test_violations(void)
{
    iroh_socket_addr a = sa4(192, 0, 2, 1, 4433);
    ir_frame rm;
    memset(&rm, 0, sizeof rm);
    rm.type = IR_FT_REMOVE_ADDRESS;
    /* wrong side */
    violation_case(32, 0, addr_frame(IR_FT_ADD_ADDRESS_V4, 0, a), 1);
    violation_case(32, 0, addr_frame(IR_FT_ADD_ADDRESS_V6, 0, a), 1);
    violation_case(32, 0, rm, 1);
    violation_case(32, 1, addr_frame(IR_FT_REACH_OUT_V4, 1, a), 1);
    violation_case(32, 1, addr_frame(IR_FT_REACH_OUT_V6, 1, a), 1);
    /* the right side, negotiated: fine */
    violation_case(32, 1, addr_frame(IR_FT_ADD_ADDRESS_V4, 0, a), 0);
    violation_case(32, 1, rm, 0);
    violation_case(32, 0, addr_frame(IR_FT_REACH_OUT_V4, 1, a), 0);
    /* not negotiated (the server did not offer it) */
    violation_case(0, 1, addr_frame(IR_FT_ADD_ADDRESS_V4, 0, a), 1);
    violation_case(0, 1, rm, 1);
    violation_case(0, 0, addr_frame(IR_FT_REACH_OUT_V4, 1, a), 1);

    /* REACH_OUT over the limit (the server's own parameter, 2) in one round */
    net nw;
    net_init(&nw, 10);
    nw.cfg[1].tp.nat_traversal = 2;
    start(&nw);
    ir_frame f[3] = {addr_frame(IR_FT_REACH_OUT_V4, 5, sa4(10, 9, 0, 1, 1)),
                     addr_frame(IR_FT_REACH_OUT_V4, 5, sa4(10, 9, 0, 2, 1)),
                     addr_frame(IR_FT_REACH_OUT_V4, 5, sa4(10, 9, 0, 1, 1))};
    inject(&nw, 0, f, 3); /* two addresses, one sent twice */
    CHECK(!ir_conn_close_info(nw.c[1])->closed);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[1]), 5);
    /* a newer round starts over: two more */
    ir_frame g[2] = {addr_frame(IR_FT_REACH_OUT_V4, 6, sa4(10, 9, 0, 3, 1)),
                     addr_frame(IR_FT_REACH_OUT_V6, 6, sa4(10, 9, 0, 4, 1))};
    g[1].u.addr.ip[10] = g[1].u.addr.ip[11] = 0xff; /* (an IPv4-mapped IPv6 address) */
    memcpy(g[1].u.addr.ip + 12, (uint8_t[]){10, 9, 0, 4}, 4);
    inject(&nw, 0, g, 2);
    CHECK(!ir_conn_close_info(nw.c[1])->closed);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[1]), 6);
    /* an older round is dropped, whatever it holds */
    ir_frame old = addr_frame(IR_FT_REACH_OUT_V4, 5, sa4(10, 9, 0, 5, 1));
    inject(&nw, 0, &old, 1);
    CHECK(!ir_conn_close_info(nw.c[1])->closed);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[1]), 6);
    /* the third address of round 6 */
    ir_frame third = addr_frame(IR_FT_REACH_OUT_V4, 6, sa4(10, 9, 0, 6, 1));
    inject(&nw, 0, &third, 1);
    CHECK(closed_by(nw.c[1], IR_QERR_PROTOCOL_VIOLATION));
    net_free(&nw);

    /* excess ADD_ADDRESS is ignored (the client's parameter, 2) */
    net_init(&nw, 10);
    nw.cfg[0].tp.nat_traversal = 2;
    start(&nw);
    ir_frame h[3] = {addr_frame(IR_FT_ADD_ADDRESS_V4, 0, sa4(10, 8, 0, 1, 1)),
                     addr_frame(IR_FT_ADD_ADDRESS_V4, 1, sa4(10, 8, 0, 2, 1)),
                     addr_frame(IR_FT_ADD_ADDRESS_V4, 2, sa4(10, 8, 0, 3, 1))};
    inject(&nw, 1, h, 3);
    CHECK(!ir_conn_close_info(nw.c[0])->closed);
    iroh_socket_addr got[4];
    CHECK_EQ_INT(ir_conn_nat_remote_addrs(nw.c[0], got, 4), 2);
    /* a removal makes room */
    ir_frame r2;
    memset(&r2, 0, sizeof r2);
    r2.type = IR_FT_REMOVE_ADDRESS;
    r2.u.remove_seq = 0;
    inject(&nw, 1, &r2, 1);
    inject(&nw, 1, &h[2], 1);
    CHECK_EQ_INT(ir_conn_nat_remote_addrs(nw.c[0], got, 4), 2);
    CHECK(got[0].ip[3] == 3 || got[1].ip[3] == 3);
    CHECK(!ir_conn_close_info(nw.c[0])->closed);
    net_free(&nw);
}

/* ADD_ADDRESS and REMOVE_ADDRESS lost on the way are sent again */
static int drop_adds, drop_removes, drop_reach;
static int tap_drop_qnt(net *nw, int from, const ir_netaddr *to, const uint64_t *t, size_t nt,
                        const uint8_t *d, size_t len)
{
    (void)nw, (void)to, (void)d, (void)len;
    for (size_t i = 0; i < nt; i++) {
        if ((t[i] == IR_FT_ADD_ADDRESS_V4 || t[i] == IR_FT_ADD_ADDRESS_V6) && drop_adds && from == 1) {
            drop_adds--;
            return 1;
        }
        if (t[i] == IR_FT_REMOVE_ADDRESS && drop_removes && from == 1) {
            drop_removes--;
            return 1;
        }
        if ((t[i] == IR_FT_REACH_OUT_V4 || t[i] == IR_FT_REACH_OUT_V6) && drop_reach && from == 0) {
            drop_reach--;
            return 1;
        }
    }
    return 0;
}

static int has_addr(const iroh_socket_addr *set, size_t n, iroh_socket_addr a)
{
    for (size_t i = 0; i < n; i++)
        if (set[i].family == a.family && set[i].port == a.port && memcmp(set[i].ip, a.ip, 4) == 0)
            return 1;
    return 0;
}

static void test_add_address_retransmit(void)
{
    net nw;
    net_init(&nw, 10);
    iroh_socket_addr a1 = sa4(10, 7, 0, 1, 1000), a2 = sa4(10, 7, 0, 2, 1000);
    nw.server_local[0] = a1;
    nw.server_local[1] = a2;
    nw.nserver_local = 2;
    nw.tap = tap_drop_qnt;
    drop_adds = 2;
    start(&nw);
    run_for(&nw, 3 * SEC);
    CHECK_EQ_INT(drop_adds, 0);
    iroh_socket_addr got[4];
    size_t n = ir_conn_nat_remote_addrs(nw.c[0], got, 4);
    CHECK_EQ_INT(n, 2);
    CHECK(has_addr(got, n, a1) && has_addr(got, n, a2));
    CHECK(nw.cnt[1].add >= 4); /* lost, then again */
    /* a removal, lost once */
    drop_removes = 1;
    CHECK_EQ_INT(ir_conn_set_local_addrs(nw.c[1], &a2, 1, nw.now), IR_QUIC_OK);
    run_for(&nw, 3 * SEC);
    CHECK_EQ_INT(drop_removes, 0);
    CHECK(nw.cnt[1].remove >= 2);
    n = ir_conn_nat_remote_addrs(nw.c[0], got, 4);
    CHECK_EQ_INT(n, 1);
    CHECK(has_addr(got, n, a2));
    net_free(&nw);

    /* the peer's limit: one advertised at a time, the next once it is removed */
    net_init(&nw, 10);
    nw.cfg[0].tp.nat_traversal = 1;
    nw.server_local[0] = a1;
    nw.server_local[1] = a2;
    nw.nserver_local = 2;
    start(&nw);
    run_for(&nw, 1 * SEC);
    n = ir_conn_nat_remote_addrs(nw.c[0], got, 4);
    CHECK_EQ_INT(n, 1);
    CHECK(has_addr(got, n, a1));
    CHECK_EQ_INT(nw.cnt[1].add, 1);
    CHECK_EQ_INT(ir_conn_set_local_addrs(nw.c[1], &a2, 1, nw.now), IR_QUIC_OK);
    run_for(&nw, 1 * SEC);
    n = ir_conn_nat_remote_addrs(nw.c[0], got, 4);
    CHECK_EQ_INT(n, 1);
    CHECK(has_addr(got, n, a2));
    CHECK(!ir_conn_close_info(nw.c[0])->closed);
    net_free(&nw);
}

/* round numbers and iroh's triggers */
static void test_rounds(void)
{
    net nw;
    net_init(&nw, 10); /* RTT 20 ms: not good enough, so the 60 s check starts rounds */
    nw.client_local[0] = sa4(10, 6, 0, 2, 2000);
    nw.nclient_local = 1;
    nw.server_local[0] = sa4(10, 6, 0, 1, 2001);
    nw.nserver_local = 1;
    start(&nw);
    uint64_t t0 = nw.t_up;
    run_for(&nw, 1 * SEC);
    /* the first round when the connection came up (at the end of the client's
     * handshake, before the server's addresses came), the second when they came */
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 2);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[1]), 2);
    /* asked for */
    CHECK_EQ_INT(ir_conn_holepunch(nw.c[0], nw.now), IR_QUIC_OK);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 3);
    run_for(&nw, 1 * SEC);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[1]), 3);
    /* the same candidates again: nothing new, no round */
    ir_conn_set_local_addrs(nw.c[0], nw.client_local, 1, nw.now);
    run_for(&nw, 1 * SEC);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 3);
    /* a new one of ours: a round at once */
    iroh_socket_addr two[2] = {nw.client_local[0], sa4(10, 6, 0, 3, 2000)};
    ir_conn_set_local_addrs(nw.c[0], two, 2, nw.now);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 4);
    uint64_t t4 = nw.now;
    run_for(&nw, 100 * MS);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[1]), 4);
    /* a removal on the server's side: no new candidate, so 5 s after the last round */
    ir_conn_set_local_addrs(nw.c[1], NULL, 0, nw.now);
    run_for(&nw, t4 + 5 * SEC - 1 - nw.now);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 4);
    run_for(&nw, 2);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 5);
    /* a new address of the server: at once */
    iroh_socket_addr s2 = sa4(10, 6, 0, 9, 2001);
    ir_conn_set_local_addrs(nw.c[1], &s2, 1, nw.now);
    run_for(&nw, 50 * MS);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 6);
    /* the 60 s check: the only direct path has an RTT over 10 ms: another round */
    run_for(&nw, t0 + 60 * SEC - 1 - nw.now);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 6);
    run_for(&nw, 2 * MS);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 7);
    run_for(&nw, 60 * SEC + 100 * MS);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 8);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[1]), 8);
    CHECK(!ir_conn_close_info(nw.c[0])->closed);
    CHECK(!nw.stuck);
    net_free(&nw);

    /* the first round starts when the client's handshake completes, before it is
     * confirmed (iroh: when the connection is handed over) */
    net_init(&nw, 10);
    nw.client_local[0] = sa4(10, 6, 0, 2, 2000);
    nw.nclient_local = 1;
    CHECK_EQ_INT(ir_conn_client_new(&nw.cfg[0], &nw.r[0].s, nw.now, &nw.c[0]), IROH_OK);
    ir_conn_set_local_addrs(nw.c[0], nw.client_local, 1, nw.now);
    CHECK(run_until(&nw, client_up, 5 * SEC));
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 0);
    run_for(&nw, 1 * MS);
    CHECK(!nw.c[0]->handshake_confirmed);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 1);
    net_free(&nw);

    /* RTT 2 ms: good enough, no rounds from the 60 s check */
    net_init(&nw, 1);
    nw.client_local[0] = sa4(10, 6, 0, 2, 2000);
    nw.nclient_local = 1;
    start(&nw);
    run_for(&nw, 1 * SEC);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 1);
    run_for(&nw, 130 * SEC);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 1);
    CHECK(!ir_conn_close_info(nw.c[0])->closed);
    net_free(&nw);

    /* no candidate of our own: no round (REACH_OUT needs one), tried again */
    net_init(&nw, 10);
    start(&nw);
    run_for(&nw, 1 * SEC);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 0);
    CHECK_EQ_INT(ir_conn_holepunch(nw.c[0], nw.now), IR_QUIC_AGAIN);
    CHECK(ir_conn_timeout(nw.c[0]) <= nw.now + 100 * MS);
    run_for(&nw, 1 * SEC);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 0);
    CHECK_EQ_INT(nw.cnt[0].reach, 0);
    ir_conn_set_local_addrs(nw.c[0], nw.client_local, 0, nw.now);
    iroh_socket_addr one = sa4(10, 6, 0, 2, 2000);
    ir_conn_set_local_addrs(nw.c[0], &one, 1, nw.now);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 1);
    run_for(&nw, 1 * SEC);
    CHECK_EQ_INT(nw.cnt[0].reach, 1);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[1]), 1);
    net_free(&nw);
}

/* ---- probes ---------------------------------------------------------------------------------- */

#define MAXREC 64
typedef struct probe_rec {
    uint64_t at[MAXREC];
    size_t n;
    int bad; /* not exactly one PATH_CHALLENGE, padded, or another connection id */
} probe_rec;

static probe_rec rec_c, rec_s;       /* probes to the dead addresses */
static ir_netaddr dead_s, dead_c;
static int tap_probes(net *nw, int from, const ir_netaddr *to, const uint64_t *t, size_t nt,
                      const uint8_t *d, size_t len)
{
    probe_rec *r = NULL;
    if (from == 0 && ir_netaddr_eq(to, &dead_s))
        r = &rec_c;
    if (from == 1 && ir_netaddr_eq(to, &dead_c))
        r = &rec_s;
    if (!r)
        return 0;
    if (r->n < MAXREC)
        r->at[r->n++] = nw->now;
    /* a short header with the path's active peer connection id, one PATH_CHALLENGE */
    const qpath *p0 = nw->c[from]->paths[0];
    const ir_cid *dc = &p0->cids.rcid[p0->cids.active_rcid].cid;
    if (nt != 1 || t[0] != IR_FT_PATH_CHALLENGE || len >= 200 || len < 1 + (size_t)dc->len ||
        memcmp(d + 1, dc->data, dc->len) != 0)
        r->bad = 1;
    return 0;
}

/* n probes; the last 9 (one round) 33.3 ms ... 2 s apart */
static void check_schedule(const probe_rec *r, size_t n)
{
    static const uint64_t gaps_us[8] = {33300, 33300, 66600, 133200, 266400, 532800, 1065600, 2000000};
    CHECK_EQ_INT(r->n, n);
    CHECK(!r->bad);
    size_t first = r->n >= IR_NAT_PROBE_TRIES ? r->n - IR_NAT_PROBE_TRIES : 0;
    for (size_t i = first + 1; i < r->n && i - first <= 8; i++)
        CHECK_EQ_INT(r->at[i] - r->at[i - 1], gaps_us[i - first - 1] * 1000);
}

static void test_probe_schedule(void)
{
    net nw;
    net_init(&nw, 10);
    /* the server's second address and the client's second one are dead ends */
    dead_s = na(sa4(10, 5, 0, 1, 3000));
    dead_c = na(sa4(10, 5, 0, 2, 3000));
    add_route(&nw, dead_s, dead_c, 0, 0);
    nw.server_local[0] = sa4(10, 5, 0, 1, 3000);
    nw.nserver_local = 1;
    nw.client_local[0] = sa4(10, 5, 0, 2, 3000);
    nw.nclient_local = 1;
    memset(&rec_c, 0, sizeof rec_c);
    memset(&rec_s, 0, sizeof rec_s);
    nw.tap = tap_probes;
    start(&nw);
    run_for(&nw, 4 * SEC); /* (the next round, 60 s on, is not reached) */
    run_for(&nw, 6 * SEC);
    /* both sides: 9 probes, 33.3 ms ... 2 s apart, then no more in this round (round 2:
     * round 1 started before the server's address came, and the server sent one probe of
     * it before round 2 replaced it) */
    check_schedule(&rec_c, IR_NAT_PROBE_TRIES);
    check_schedule(&rec_s, IR_NAT_PROBE_TRIES + 1);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[0]), 2);
    /* a new round probes again from the start */
    memset(&rec_c, 0, sizeof rec_c);
    memset(&rec_s, 0, sizeof rec_s);
    CHECK_EQ_INT(ir_conn_holepunch(nw.c[0], nw.now), IR_QUIC_OK);
    run_for(&nw, 10 * SEC);
    check_schedule(&rec_c, IR_NAT_PROBE_TRIES);
    check_schedule(&rec_s, IR_NAT_PROBE_TRIES);
    CHECK(!nw.stuck);
    net_free(&nw);
}

/* a probe is answered toward its source on the path's connection id, padded, and the path
 * does not move; a client adds its own challenge; success stops the probing */
static unsigned srv_answers, srv_answers_ok, cli_answers, cli_answers_ok, to_live_s;
static ir_netaddr live_s, live_c;
static int tap_answers(net *nw, int from, const ir_netaddr *to, const uint64_t *t, size_t nt,
                       const uint8_t *d, size_t len)
{
    int resp = 0, chal = 0;
    for (size_t i = 0; i < nt; i++) {
        resp += t[i] == IR_FT_PATH_RESPONSE;
        chal += t[i] == IR_FT_PATH_CHALLENGE;
    }
    const qpath *p0 = nw->c[from]->paths[0];
    const ir_cid *dc = &p0->cids.rcid[p0->cids.active_rcid].cid;
    int cid_ok = len > dc->len && memcmp(d + 1, dc->data, dc->len) == 0;
    if (from == 1 && ir_netaddr_eq(to, &live_c) && resp) {
        srv_answers++;
        srv_answers_ok += len >= 1200 && !chal && cid_ok;
    }
    if (from == 0 && ir_netaddr_eq(to, &live_s) && resp) {
        cli_answers++;
        cli_answers_ok += len >= 1200 && chal == 1 && cid_ok;
    }
    if (from == 0 && ir_netaddr_eq(to, &live_s) && chal && !resp)
        to_live_s++;
    return 0;
}

static void test_probe_answered(void)
{
    net nw;
    net_init(&nw, 10);
    live_s = na(sa4(10, 4, 0, 1, 4000));
    live_c = na(sa4(10, 4, 0, 2, 4000));
    add_route(&nw, live_s, live_c, 1, 1);
    nw.server_local[0] = sa4(10, 4, 0, 1, 4000);
    nw.nserver_local = 1;
    nw.client_local[0] = sa4(10, 4, 0, 2, 4000);
    nw.nclient_local = 1;
    nw.tap = tap_answers;
    srv_answers = srv_answers_ok = cli_answers = cli_answers_ok = to_live_s = 0;
    start(&nw);
    ir_netaddr p0s = nw.c[1]->paths[0]->addr, p0c = nw.c[0]->paths[0]->addr;
    run_for(&nw, 10 * SEC);
    CHECK(srv_answers >= 1);
    CHECK_EQ_INT(srv_answers_ok, srv_answers);
    CHECK(cli_answers >= 1);
    CHECK_EQ_INT(cli_answers_ok, cli_answers);
    /* answered at once: the client's probes stop long before 9 */
    CHECK(to_live_s >= 1 && to_live_s < 4);
    /* nobody moved */
    CHECK(ir_netaddr_eq(&nw.c[1]->paths[0]->addr, &p0s));
    CHECK(ir_netaddr_eq(&nw.c[0]->paths[0]->addr, &p0c));
    unsigned changed = 0;
    poll_all(nw.c[0], &changed);
    poll_all(nw.c[1], &changed);
    CHECK_EQ_INT(changed, 0);
    CHECK(!ir_conn_close_info(nw.c[0])->closed);
    CHECK(!ir_conn_close_info(nw.c[1])->closed);
    CHECK(!nw.stuck);
    net_free(&nw);
}

/* ---- success: paths and the policy ------------------------------------------------------------ */

static size_t paths_of(const ir_conn *c, ir_conn_path_info *out)
{
    size_t n = ir_conn_paths(c, out, IR_CONN_MAX_PATHS);
    return n < IR_CONN_MAX_PATHS ? n : IR_CONN_MAX_PATHS;
}

/* the live (not abandoned) path to addr, or NULL */
static const ir_conn_path_info *path_to(const ir_conn_path_info *p, size_t n, const ir_netaddr *a)
{
    for (size_t i = 0; i < n; i++)
        if (!p[i].abandoned && ir_netaddr_eq(&p[i].addr, a))
            return &p[i];
    return NULL;
}

static ir_netaddr want_s, want_c;
static int direct_selected(net *nw)
{
    ir_conn_path_info p[IR_CONN_MAX_PATHS], q[IR_CONN_MAX_PATHS];
    size_t n = paths_of(nw->c[0], p), m = paths_of(nw->c[1], q);
    const ir_conn_path_info *a = path_to(p, n, &want_s), *b = path_to(q, m, &want_c);
    return a && b && a->validated && a->available && b->available &&
           ir_conn_nat_selected(nw->c[0]) == a->id && ir_conn_nat_selected(nw->c[1]) == b->id;
}

/* relay first, then a direct path found by probing: opened by the client as Backup,
 * validated, selected by both sides (across tiers at once); the relay path stays as a
 * backup */
static void test_relay_to_direct(void)
{
    net nw;
    net_init(&nw, 10);
    nw.r[0].s = relay_addr("relay-to-server");
    nw.r[0].c = relay_addr("relay-from-client");
    want_s = na(sa4(10, 3, 0, 1, 5000));
    want_c = na(sa4(10, 3, 0, 2, 5000));
    add_route(&nw, want_s, want_c, 1, 1);
    nw.server_local[0] = sa4(10, 3, 0, 1, 5000);
    nw.nserver_local = 1;
    nw.client_local[0] = sa4(10, 3, 0, 2, 5000);
    nw.nclient_local = 1;
    start(&nw);
    CHECK(ir_conn_multipath(nw.c[0]));
    CHECK(run_until(&nw, direct_selected, 5 * SEC));
    /* within a few round trips of the first round (virtual time) */
    CHECK(nw.now - nw.t_up < 500 * MS);
    printf("relay to direct (RTT 20 ms): the direct path selected on both sides %llu ms after "
           "the client's handshake completed\n", (unsigned long long)((nw.now - nw.t_up) / MS));
    ir_conn_path_info p[IR_CONN_MAX_PATHS], q[IR_CONN_MAX_PATHS];
    size_t n = paths_of(nw.c[0], p), m = paths_of(nw.c[1], q);
    const ir_conn_path_info *relay_c = path_to(p, n, &nw.r[0].s), *relay_s = path_to(q, m, &nw.r[0].c);
    const ir_conn_path_info *direct = path_to(p, n, &want_s);
    CHECK(relay_c && relay_s && direct);
    if (relay_c && relay_s && direct) {
        CHECK(!relay_c->available && !relay_s->available); /* Backup */
        CHECK(direct->id != 0);
        CHECK(direct->sending);
    }
    /* it stays so: nothing flaps, the relay is kept */
    run_for(&nw, 20 * SEC);
    CHECK(direct_selected(&nw));
    n = paths_of(nw.c[0], p);
    CHECK(path_to(p, n, &nw.r[0].s) != NULL);
    /* the direct path dies: once it is abandoned (idle, 15 s) both sides select the relay
     * again */
    nw.r[1].c2s = nw.r[1].s2c = 0;
    run_for(&nw, 20 * SEC);
    n = paths_of(nw.c[0], p);
    m = paths_of(nw.c[1], q);
    CHECK(path_to(p, n, &want_s) == NULL);
    relay_c = path_to(p, n, &nw.r[0].s);
    relay_s = path_to(q, m, &nw.r[0].c);
    CHECK(relay_c && relay_c->available && relay_c->sending);
    CHECK(relay_s && relay_s->available);
    CHECK_EQ_INT(ir_conn_nat_selected(nw.c[0]), 0);
    CHECK_EQ_INT(ir_conn_nat_selected(nw.c[1]), 0);
    /* the way opens again: the next 60 s check finds it (no direct path) */
    nw.r[1].c2s = nw.r[1].s2c = 1;
    CHECK(run_until(&nw, direct_selected, 65 * SEC));
    CHECK(!ir_conn_close_info(nw.c[0])->closed);
    CHECK(!nw.stuck);
    net_free(&nw);
}

/* ---- fallback: the direct path dies mid-transfer -------------------------------------------- */

/* a client-to-server stream of `total` bytes of a known pattern, read in order */
typedef struct xfer {
    uint64_t id, total, sent, got, bad;
    int opened, done;
} xfer;

static uint8_t pat_byte(uint64_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

static void xfer_pump(net *nw, xfer *x)
{
    poll_all(nw->c[0], NULL);
    poll_all(nw->c[1], NULL);
    uint8_t buf[16384];
    if (!x->opened && ir_conn_stream_open(nw->c[0], 1, &x->id) == 0)
        x->opened = 1;
    while (x->opened && x->sent < x->total) {
        size_t n = x->total - x->sent < sizeof buf ? (size_t)(x->total - x->sent) : sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = pat_byte(x->sent + i);
        long w = ir_conn_stream_write(nw->c[0], x->id, buf, n, x->sent + n == x->total);
        if (w <= 0)
            break;
        x->sent += (uint64_t)w;
    }
    if (!x->opened)
        return;
    for (;;) {
        uint64_t code;
        long r = ir_conn_stream_read(nw->c[1], x->id, buf, sizeof buf, &code);
        if (r == 0) {
            x->done = 1;
            break;
        }
        if (r < 0)
            break; /* (not there yet, or nothing ready) */
        for (long i = 0; i < r; i++)
            x->bad += buf[i] != pat_byte(x->got + (uint64_t)i);
        x->got += (uint64_t)r;
    }
}

typedef void (*xfer_watch)(net *nw, xfer *x);

static int run_xfer(net *nw, xfer *x, uint64_t max_ns, xfer_watch watch)
{
    uint64_t limit = nw->now + max_ns;
    for (;;) {
        xfer_pump(nw, x);
        if (watch)
            watch(nw, x);
        if (x->done || x->bad)
            return x->done && !x->bad;
        if (!step(nw, limit))
            return 0;
    }
}

/* both sides select the relay path (path 0) and send their data on it */
static int relay_selected(net *nw)
{
    ir_conn_path_info p[IR_CONN_MAX_PATHS], q[IR_CONN_MAX_PATHS];
    size_t n = paths_of(nw->c[0], p), m = paths_of(nw->c[1], q);
    const ir_conn_path_info *a = path_to(p, n, &nw->r[0].s), *b = path_to(q, m, &nw->r[0].c);
    return a && b && a->sending && b->sending && ir_conn_nat_selected(nw->c[0]) == a->id &&
           ir_conn_nat_selected(nw->c[1]) == b->id;
}

static uint64_t fb_dead_at, fb_relay_at, fb_left_direct;
static void watch_blackhole(net *nw, xfer *x)
{
    if (!fb_dead_at && x->got > 300000) {
        nw->r[1].c2s = nw->r[1].s2c = 0; /* the direct route: a blackhole */
        fb_dead_at = nw->now;
    }
    if (fb_dead_at && !fb_relay_at && relay_selected(nw))
        fb_relay_at = nw->now;
}

static void watch_stays_direct(net *nw, xfer *x)
{
    (void)x;
    if (!direct_selected(nw))
        fb_left_direct++;
}

/* relay first, then direct (RTT 20 ms on both); returns with the direct path selected */
static void relay_then_direct(net *nw)
{
    net_init(nw, 10);
    nw->r[0].s = relay_addr("relay-to-server");
    nw->r[0].c = relay_addr("relay-from-client");
    want_s = na(sa4(10, 3, 0, 1, 5000));
    want_c = na(sa4(10, 3, 0, 2, 5000));
    add_route(nw, want_s, want_c, 1, 1);
    nw->server_local[0] = sa4(10, 3, 0, 1, 5000);
    nw->nserver_local = 1;
    nw->client_local[0] = sa4(10, 3, 0, 2, 5000);
    nw->nclient_local = 1;
    start(nw);
    CHECK(run_until(nw, direct_selected, 5 * SEC));
}

/* The direct path is blackholed mid-transfer: both sides mark it degraded after 2 PTOs
 * without an acknowledgement, select the relay (PATH_STATUS) and repair what was in flight
 * on it there at once, instead of waiting 15 s for the path idle timeout (iroh); every
 * byte arrives in order. When the blackhole ends, the direct path's probes are answered
 * and both sides select it again. */
static void test_direct_dies_mid_transfer(void)
{
    net nw;
    relay_then_direct(&nw);
    xfer x = {.total = 2u << 20};
    fb_dead_at = fb_relay_at = 0;
    CHECK(run_xfer(&nw, &x, 60 * SEC, watch_blackhole));
    CHECK_EQ_INT(x.bad, 0);
    CHECK_EQ_INT(x.got, x.total);
    CHECK(fb_dead_at && fb_relay_at);
    CHECK(fb_relay_at - fb_dead_at < 3 * SEC);
    CHECK(nw.now - fb_dead_at < 5 * SEC);
    printf("direct path blackholed mid-transfer (RTT 20 ms): the relay selected on both sides "
           "%llu ms later, the transfer complete %llu ms later\n",
           (unsigned long long)((fb_relay_at - fb_dead_at) / MS),
           (unsigned long long)((nw.now - fb_dead_at) / MS));
    /* the direct path is kept (degraded, Backup) and probed */
    ir_conn_path_info p[IR_CONN_MAX_PATHS], q[IR_CONN_MAX_PATHS];
    size_t n = paths_of(nw.c[0], p), m = paths_of(nw.c[1], q);
    const ir_conn_path_info *dc = path_to(p, n, &want_s), *ds = path_to(q, m, &want_c);
    CHECK(dc && ds);
    if (dc && ds) {
        CHECK(dc->degraded && ds->degraded);
        CHECK(!dc->available && !ds->available && !dc->sending && !ds->sending);
    }
    /* the blackhole ends after 2 s: the direct path is selected again */
    run_for(&nw, fb_dead_at + 2 * SEC > nw.now ? fb_dead_at + 2 * SEC - nw.now : 0);
    nw.r[1].c2s = nw.r[1].s2c = 1;
    uint64_t open_at = nw.now;
    CHECK(run_until(&nw, direct_selected, 3 * SEC));
    printf("  the direct route open again: the direct path selected %llu ms later\n",
           (unsigned long long)((nw.now - open_at) / MS));
    n = paths_of(nw.c[0], p);
    dc = path_to(p, n, &want_s);
    CHECK(dc && !dc->degraded && dc->sending);
    /* and data goes over it again */
    xfer y = {.total = 256u << 10};
    uint64_t before = dc ? dc->pkts_sent : 0;
    CHECK(run_xfer(&nw, &y, 30 * SEC, watch_stays_direct));
    CHECK_EQ_INT(y.bad, 0);
    n = paths_of(nw.c[0], p);
    dc = path_to(p, n, &want_s);
    CHECK(dc && dc->pkts_sent > before + 100);
    CHECK(!ir_conn_close_info(nw.c[0])->closed);
    CHECK(!nw.stuck);
    net_free(&nw);
}

/* The peer turns our data path Backup (as its policy does when it marks the path
 * degraded) while that path is dead and idle: a PING goes on it at once and one PTO
 * without an acknowledgement marks it degraded; the relay is selected, the client is told
 * Backup in turn and does the same. Without the hint nothing would be noticed before the
 * keep-alive (5 s) and its two PTOs. */
static void test_peer_backup_hint(void)
{
    net nw;
    relay_then_direct(&nw);
    run_for(&nw, 1 * SEC);
    ir_conn_path_info q[IR_CONN_MAX_PATHS];
    size_t m = paths_of(nw.c[1], q);
    const ir_conn_path_info *ds = path_to(q, m, &want_c);
    CHECK(ds && ds->sending && !ds->degraded);
    if (!ds) {
        net_free(&nw);
        return;
    }
    nw.r[1].c2s = nw.r[1].s2c = 0;
    ir_frame f = {.type = IR_FT_PATH_STATUS_BACKUP};
    f.u.path_status.path_id = ds->id;
    f.u.path_status.seq = 1000;
    inject(&nw, 0, &f, 1);
    uint64_t t0 = nw.now;
    int ok = run_until(&nw, relay_selected, 1 * SEC);
    CHECK(ok);
    if (ok)
        printf("the peer's PATH_STATUS_BACKUP for a dead idle data path: the relay selected on both "
               "sides %llu ms later\n", (unsigned long long)((nw.now - t0) / MS));
    m = paths_of(nw.c[1], q);
    ds = path_to(q, m, &want_c);
    CHECK(ds && ds->degraded);
    CHECK(!ir_conn_close_info(nw.c[0])->closed);
    net_free(&nw);
}

/* The direct path dies while the connection is idle: the next keep-alive PING on it (every
 * 5 s) goes unanswered, and 2 PTOs later the relay is selected, well before the idle
 * timeout (15 s) abandons the path, which it still does later. */
static void test_idle_direct_dies(void)
{
    net nw;
    relay_then_direct(&nw);
    run_for(&nw, 1 * SEC);
    nw.r[1].c2s = nw.r[1].s2c = 0;
    uint64_t t0 = nw.now;
    int ok = run_until(&nw, relay_selected, 8 * SEC);
    CHECK(ok);
    if (ok)
        printf("an idle direct path dead: the relay selected on both sides %llu ms later\n",
               (unsigned long long)((nw.now - t0) / MS));
    ir_conn_path_info p[IR_CONN_MAX_PATHS];
    size_t n = paths_of(nw.c[0], p);
    const ir_conn_path_info *dc = path_to(p, n, &want_s);
    CHECK(dc && dc->degraded);
    run_for(&nw, 20 * SEC);
    n = paths_of(nw.c[0], p);
    CHECK(path_to(p, n, &want_s) == NULL); /* abandoned when idle, as before */
    CHECK(relay_selected(&nw));
    CHECK(!ir_conn_close_info(nw.c[0])->closed);
    net_free(&nw);
}

/* 1 % and 3 % random loss on the direct path (both ways) during a transfer: the selection
 * stays on the direct path all along (no flapping), every byte arrives */
static uint64_t loss_ppm, loss_rng = 12345;
static int tap_lossy_direct(net *nw, int from, const ir_netaddr *to, const uint64_t *t, size_t nt,
                            const uint8_t *d, size_t len)
{
    (void)t;
    (void)nt;
    (void)d;
    (void)len;
    if (!ir_netaddr_eq(to, from == 0 ? &nw->r[1].s : &nw->r[1].c))
        return 0;
    loss_rng = loss_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (loss_rng >> 33) % 1000000 < loss_ppm;
}

static void test_lossy_direct_stays(void)
{
    static const uint64_t ppm[] = {10000, 30000};
    for (int k = 0; k < 2; k++) {
        net nw;
        relay_then_direct(&nw);
        loss_ppm = ppm[k];
        nw.tap = tap_lossy_direct;
        fb_left_direct = 0;
        xfer x = {.total = 2u << 20};
        CHECK(run_xfer(&nw, &x, 60 * SEC, watch_stays_direct));
        CHECK_EQ_INT(x.bad, 0);
        CHECK_EQ_INT(x.got, x.total);
        CHECK_EQ_INT(fb_left_direct, 0);
        ir_conn_stats st;
        ir_conn_get_stats(nw.c[0], &st);
        CHECK(st.pkts_lost > 0); /* (the loss was there) */
        CHECK_EQ_INT(st.paths_degraded, 0);
        ir_conn_get_stats(nw.c[1], &st);
        CHECK_EQ_INT(st.paths_degraded, 0);
        CHECK(!nw.stuck);
        net_free(&nw);
    }
}

/* two direct paths found: the client keeps the selected one and abandons the other with
 * APPLICATION_ABANDON_PATH (0x3e); the relay path stays */
static void test_one_direct_path(void)
{
    net nw;
    net_init(&nw, 10);
    nw.r[0].s = relay_addr("relay-to-server");
    nw.r[0].c = relay_addr("relay-from-client");
    ir_netaddr s1 = na(sa4(10, 2, 0, 1, 6000)), c1 = na(sa4(10, 2, 0, 2, 6000));
    ir_netaddr s2 = na(sa4(10, 2, 1, 1, 6000)), c2 = na(sa4(10, 2, 1, 2, 6000));
    add_route(&nw, s1, c1, 1, 1);
    add_route(&nw, s2, c2, 1, 1);
    nw.server_local[0] = sa4(10, 2, 0, 1, 6000);
    nw.server_local[1] = sa4(10, 2, 1, 1, 6000);
    nw.nserver_local = 2;
    nw.client_local[0] = sa4(10, 2, 0, 2, 6000);
    nw.nclient_local = 1;
    start(&nw);
    run_for(&nw, 3 * SEC);
    ir_conn_path_info p[IR_CONN_MAX_PATHS];
    size_t n = paths_of(nw.c[0], p);
    unsigned direct = 0, abandoned_direct = 0;
    for (size_t i = 0; i < n; i++) {
        iroh_socket_addr ip;
        if (ir_netaddr_to_socket_addr(&p[i].addr, &ip) != 0)
            continue;
        if (p[i].abandoned)
            abandoned_direct++;
        else
            direct++;
    }
    CHECK_EQ_INT(direct, 1);
    const ir_conn_path_info *relay = path_to(p, n, &nw.r[0].s);
    CHECK(relay && !relay->available);
    /* the server heard the abandonment, with code 0x3e */
    unsigned code_ok = 0, abandons = 0;
    ir_event ev;
    while (ir_conn_poll_event(nw.c[1], &ev))
        if (ev.type == IR_EV_PATH_ABANDONED) {
            abandons++;
            code_ok += ev.code == IR_PATH_APPLICATION_ABANDON;
        }
    CHECK(abandons >= 1); /* both direct addresses answered: one path was too many */
    CHECK_EQ_INT(code_ok, abandons);
    CHECK(!ir_conn_close_info(nw.c[0])->closed);
    CHECK(!nw.stuck);
    net_free(&nw);
}

/* path 0 is direct and the peer has a relay: the client opens a relay path as a backup */
static int relay_open(net *nw)
{
    ir_conn_path_info p[IR_CONN_MAX_PATHS];
    size_t n = paths_of(nw->c[0], p);
    ir_netaddr r = relay_addr("relay-s");
    const ir_conn_path_info *a = path_to(p, n, &r);
    return a && a->validated;
}

static void test_relay_backup_opened(void)
{
    net nw;
    net_init(&nw, 10);
    ir_netaddr rs = relay_addr("relay-s"), rc = relay_addr("relay-c");
    add_route(&nw, rs, rc, 1, 1);
    nw.cfg[0].candidates = &rs;
    nw.cfg[0].n_candidates = 1;
    start(&nw);
    CHECK(run_until(&nw, relay_open, 5 * SEC));
    ir_conn_path_info p[IR_CONN_MAX_PATHS];
    size_t n = paths_of(nw.c[0], p);
    const ir_conn_path_info *relay = path_to(p, n, &rs), *direct = path_to(p, n, &nw.r[0].s);
    CHECK(relay && direct);
    if (relay && direct) {
        CHECK(!relay->available);
        CHECK(direct->available && direct->sending);
        CHECK_EQ_INT(ir_conn_nat_selected(nw.c[0]), direct->id);
    }
    /* without NAT traversal in our config, no policy: no relay path */
    net_free(&nw);
    net_init(&nw, 10);
    add_route(&nw, rs, rc, 1, 1);
    nw.cfg[0].candidates = &rs;
    nw.cfg[0].n_candidates = 1;
    nw.cfg[0].tp.nat_traversal = 0;
    start(&nw);
    run_for(&nw, 2 * SEC);
    n = paths_of(nw.c[0], p);
    CHECK(path_to(p, n, &rs) == NULL);
    CHECK_EQ_INT(ir_conn_nat_selected(nw.c[0]), UINT64_MAX);
    net_free(&nw);
}

/* no path id free for a successful probe (the server allows ids 0 and 1): the opening is
 * tried again, and goes through once a path id is free */
static void test_open_retry(void)
{
    net nw;
    net_init(&nw, 10);
    nw.cfg[1].tp.initial_max_path_id = 1;
    nw.r[0].s = relay_addr("relay-to-server");
    nw.r[0].c = relay_addr("relay-from-client");
    ir_netaddr s1 = na(sa4(10, 1, 0, 1, 6000)), c1 = na(sa4(10, 1, 0, 2, 6000));
    ir_netaddr s2 = na(sa4(10, 1, 1, 1, 6000)), c2 = na(sa4(10, 1, 1, 2, 6000));
    add_route(&nw, s1, c1, 1, 1);
    add_route(&nw, s2, c2, 1, 1);
    nw.server_local[0] = sa4(10, 1, 0, 1, 6000);
    nw.server_local[1] = sa4(10, 1, 1, 1, 6000);
    nw.nserver_local = 2;
    nw.client_local[0] = sa4(10, 1, 0, 2, 6000);
    nw.nclient_local = 1;
    start(&nw);
    run_for(&nw, 3 * SEC);
    ir_conn_path_info p[IR_CONN_MAX_PATHS];
    size_t n = paths_of(nw.c[0], p);
    const ir_conn_path_info *a = path_to(p, n, &s1), *b = path_to(p, n, &s2);
    CHECK((a != NULL) + (b != NULL) == 1); /* one direct path: id 1 */
    const ir_conn_path_info *first = a ? a : b;
    const ir_netaddr *other = a ? &s2 : &s1;
    CHECK(first && first->id == 1 && first->available);
    /* the application gives path 1 up: its id is freed, MAX_PATH_ID raised, and the other
     * address, still waiting, gets path 2 */
    CHECK_EQ_INT(ir_conn_path_abandon(nw.c[0], 1, IR_PATH_APPLICATION_ABANDON, nw.now), 0);
    run_for(&nw, 3 * SEC);
    n = paths_of(nw.c[0], p);
    const ir_conn_path_info *second = path_to(p, n, other);
    CHECK(second && second->id == 2 && second->validated && second->available);
    CHECK(!ir_conn_close_info(nw.c[0])->closed);
    CHECK(!nw.stuck);
    net_free(&nw);
}

/* an answer to a probe that comes back from another address than the one probed is no
 * success (a server whose NAT maps its replies elsewhere): no path is opened */
static void test_response_from_elsewhere(void)
{
    net nw;
    net_init(&nw, 10);
    nw.r[0].s = relay_addr("relay-to-server");
    nw.r[0].c = relay_addr("relay-from-client");
    ir_netaddr s1 = na(sa4(10, 0, 7, 1, 6000)), c1 = na(sa4(10, 0, 7, 2, 6000));
    int k = add_route(&nw, s1, c1, 1, 1);
    nw.r[k].s_from = na(sa4(10, 0, 7, 9, 6001));
    nw.server_local[0] = sa4(10, 0, 7, 1, 6000);
    nw.nserver_local = 1;
    nw.client_local[0] = sa4(10, 0, 7, 2, 6000);
    nw.nclient_local = 1;
    start(&nw);
    run_for(&nw, 5 * SEC);
    CHECK(nw.cnt[1].response >= 1); /* the server did answer */
    ir_conn_path_info p[IR_CONN_MAX_PATHS];
    size_t n = paths_of(nw.c[0], p);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ir_conn_nat_selected(nw.c[0]), 0);
    CHECK(!nw.stuck);
    net_free(&nw);
}

/* an off-path PATH_CHALLENGE is answered only once the handshake is confirmed */
static unsigned answers_to_s9;
static ir_netaddr s9;
static int tap_s9(net *nw, int from, const ir_netaddr *to, const uint64_t *t, size_t nt,
                  const uint8_t *d, size_t len)
{
    (void)nw, (void)d, (void)len;
    for (size_t i = 0; i < nt; i++)
        if (from == 0 && ir_netaddr_eq(to, &s9) && t[i] == IR_FT_PATH_RESPONSE)
            answers_to_s9++;
    return 0;
}

static void test_probe_before_confirmation(void)
{
    net nw;
    net_init(&nw, 10);
    s9 = na(sa4(10, 0, 9, 9, 6009));
    add_route(&nw, s9, na(sa4(10, 0, 9, 8, 6008)), 1, 1);
    nw.tap = tap_s9;
    answers_to_s9 = 0;
    CHECK_EQ_INT(ir_conn_client_new(&nw.cfg[0], &nw.r[0].s, nw.now, &nw.c[0]), IROH_OK);
    CHECK(run_until(&nw, client_up, 5 * SEC));
    CHECK(ir_conn_nat_traversal(nw.c[0]));
    CHECK(!nw.c[0]->handshake_confirmed);
    ir_frame ch = {.type = IR_FT_PATH_CHALLENGE};
    memset(ch.u.path_data, 0x5a, 8);
    inject_from(&nw, 1, &s9, &ch, 1);
    drain(&nw);
    CHECK_EQ_INT(answers_to_s9, 0);
    CHECK(run_until(&nw, confirmed, 5 * SEC));
    inject_from(&nw, 1, &s9, &ch, 1);
    drain(&nw);
    CHECK_EQ_INT(answers_to_s9, 1);
    CHECK(!ir_conn_close_info(nw.c[0])->closed);
    net_free(&nw);
}

/* REACH_OUT lost is sent again; no more REACH_OUT addresses in a round than the
 * server's parameter allows */
static void test_reach_out_retransmit_and_limit(void)
{
    net nw;
    net_init(&nw, 10);
    nw.cfg[1].tp.nat_traversal = 2;
    nw.client_local[0] = sa4(10, 0, 5, 1, 1);
    nw.client_local[1] = sa4(10, 0, 5, 2, 1);
    nw.client_local[2] = sa4(10, 0, 5, 3, 1);
    nw.nclient_local = 3;
    nw.tap = tap_drop_qnt;
    drop_reach = 0;
    start(&nw);
    run_for(&nw, 1 * SEC);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[1]), 1);
    /* (the first round's REACH_OUT went with the client's Finished, before the server could
     * read 1-RTT packets: the tap cannot count it) */
    unsigned before = nw.cnt[0].reach;
    drop_reach = 1; /* the next round's REACH_OUT frames are lost once */
    CHECK_EQ_INT(ir_conn_holepunch(nw.c[0], nw.now), IR_QUIC_OK);
    run_for(&nw, 3 * SEC);
    CHECK_EQ_INT(drop_reach, 0);
    CHECK_EQ_INT(ir_conn_nat_round(nw.c[1]), 2); /* it got there the second time */
    CHECK_EQ_INT(nw.cnt[0].reach - before, 4);   /* 2 per sending: the server's limit */
    CHECK(!ir_conn_close_info(nw.c[1])->closed);
    net_free(&nw);
}

/* The NAT traversal state grows with use: two candidates each way cost each side under
 * 2 KiB (it was 11 KiB whatever the use), and 32 each way (iroh's MAX_QNT_ADDRESSES, the
 * bound) all still fit: the client learns the server's 32, the server probes the client's
 * 32 REACH_OUT addresses. */
static void test_state_grows_with_use(void)
{
    net nw;
    net_init(&nw, 10);
    nw.client_local[0] = sa4(10, 8, 0, 2, 2000);
    nw.client_local[1] = sa4(10, 8, 1, 2, 2000);
    nw.nclient_local = 2;
    nw.server_local[0] = sa4(10, 8, 0, 1, 2001);
    nw.server_local[1] = sa4(10, 8, 1, 1, 2001);
    nw.nserver_local = 2;
    start(&nw);
    run_for(&nw, 1 * SEC);
    size_t small[2];
    for (int i = 0; i < 2; i++) {
        small[i] = ir_nat_state_bytes(nw.c[i]);
        CHECK(small[i] > 0 && small[i] <= 2048);
    }
    iroh_socket_addr got[40];
    CHECK_EQ_INT(ir_conn_nat_remote_addrs(nw.c[0], got, 40), 2);
    iroh_socket_addr many[2][IR_NAT_MAX_ADDRS];
    for (int i = 0; i < IR_NAT_MAX_ADDRS; i++) {
        many[0][i] = sa4(10, 9, (uint8_t)i, 2, 2000);
        many[1][i] = sa4(10, 9, (uint8_t)i, 1, 2001);
    }
    for (int i = 0; i < 2; i++)
        CHECK_EQ_INT(ir_conn_set_local_addrs(nw.c[i], many[i], IR_NAT_MAX_ADDRS, nw.now), IR_QUIC_OK);
    run_for(&nw, 2 * SEC);
    size_t n = ir_conn_nat_remote_addrs(nw.c[0], got, 40);
    CHECK_EQ_INT(n, IR_NAT_MAX_ADDRS);
    for (int i = 0; i < IR_NAT_MAX_ADDRS; i++)
        CHECK(has_addr(got, n, many[1][i]));
    CHECK(ir_conn_nat_round(nw.c[1]) >= 2);
    size_t big[2];
    for (int i = 0; i < 2; i++) {
        big[i] = ir_nat_state_bytes(nw.c[i]);
        CHECK(big[i] > small[i] && big[i] <= 12 * 1024);
    }
    for (int i = 0; i < 2; i++)
        CHECK(!ir_conn_close_info(nw.c[i])->closed);
    printf("    NAT traversal state: %zu / %zu bytes (client / server) with 2 candidates each way, "
           "%zu / %zu with 32\n", small[0], small[1], big[0], big[1]);
    net_free(&nw);
}

/* The server replaces all its candidates while the client holds the most it takes (32,
 * its transport parameter): the new ones are advertised only as the removals of the old
 * ones are acknowledged, so the client, which ignores an ADD_ADDRESS beyond its limit,
 * ends with exactly the new set, twice over. */
static void test_candidates_replaced_at_the_limit(void)
{
    net nw;
    net_init(&nw, 10);
    nw.client_local[0] = sa4(10, 8, 0, 2, 2000);
    nw.nclient_local = 1;
    start(&nw);
    iroh_socket_addr set[IR_NAT_MAX_ADDRS], got[40];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < IR_NAT_MAX_ADDRS; i++)
            set[i] = sa4(10, 9, (uint8_t)i, 1, (uint16_t)(3000 + round));
        CHECK_EQ_INT(ir_conn_set_local_addrs(nw.c[1], set, IR_NAT_MAX_ADDRS, nw.now), IR_QUIC_OK);
        run_for(&nw, 2 * SEC);
        size_t n = ir_conn_nat_remote_addrs(nw.c[0], got, 40);
        CHECK_EQ_INT(n, IR_NAT_MAX_ADDRS);
        int missing = 0;
        for (int i = 0; i < IR_NAT_MAX_ADDRS; i++)
            missing += !has_addr(got, n, set[i]);
        if (missing)
            printf("    round %d: %d of the server's new candidates missing at the client\n", round, missing);
        CHECK_EQ_INT(missing, 0);
    }
    CHECK(!ir_conn_close_info(nw.c[0])->closed && !ir_conn_close_info(nw.c[1])->closed);
    net_free(&nw);
}

int main(void)
{
    setup_identities();
    RUN(test_path_select);
    RUN(test_negotiation);
    RUN(test_set_local_addrs_args);
    RUN(test_violations);
    RUN(test_add_address_retransmit);
    RUN(test_reach_out_retransmit_and_limit);
    RUN(test_rounds);
    RUN(test_probe_schedule);
    RUN(test_probe_answered);
    RUN(test_relay_to_direct);
    RUN(test_direct_dies_mid_transfer);
    RUN(test_lossy_direct_stays);
    RUN(test_peer_backup_hint);
    RUN(test_idle_direct_dies);
    RUN(test_one_direct_path);
    RUN(test_relay_backup_opened);
    RUN(test_open_retry);
    RUN(test_response_from_elsewhere);
    RUN(test_probe_before_confirmation);
    RUN(test_state_grows_with_use);
    RUN(test_candidates_replaced_at_the_limit);
    ir_tls_identity_free(cid_);
    ir_tls_identity_free(sid_);
    TEST_EXIT();
}
