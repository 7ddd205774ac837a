/* Whole QUIC connections between two iroh-c endpoints on a simulated network with a
 * virtual clock: handshake, streams, loss, reordering, duplication, flow control. */
#include <stdlib.h>

#include "quic/conn.h"
#include "test.h"

/* ---- a deterministic random source -------------------------------------------------- */

static uint64_t rng_state = 0x1234567;
static uint64_t rng64(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static void rand_bytes(void *ctx, uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)rng64();
}

/* ---- the network ---------------------------------------------------------------------- */

#define MAXQ 20000
typedef struct pkt {
    uint64_t at, seq;
    int to; /* 0 client, 1 server */
    ir_netaddr from;
    size_t len;
    uint8_t data[1500];
} pkt;

typedef struct net {
    pkt *q;
    size_t n;
    uint64_t now;
    double loss, dup, reorder;
    uint64_t delay;
    uint64_t delivered, dropped, seq;
} net;

static void net_send(net *nw, int to, const ir_netaddr *from, const uint8_t *d, size_t len)
{
    if ((double)(rng64() % 10000) / 10000.0 < nw->loss) {
        nw->dropped++;
        return;
    }
    int copies = (double)(rng64() % 10000) / 10000.0 < nw->dup ? 2 : 1;
    for (int k = 0; k < copies && nw->n < MAXQ; k++) {
        pkt *p = &nw->q[nw->n++];
        p->at = nw->now + nw->delay;
        p->seq = nw->seq++;
        if ((double)(rng64() % 10000) / 10000.0 < nw->reorder)
            p->at += nw->delay / 2 + rng64() % (nw->delay + 1);
        p->to = to;
        p->from = *from;
        p->len = len;
        memcpy(p->data, d, len);
    }
}

typedef struct side {
    ir_conn *c;
    ir_netaddr addr;
} side;

static ir_tls_identity *cid_, *sid_;
static iroh_endpoint_id server_id;
static const uint8_t *alpns[] = {(const uint8_t *)"test/1"};
static const size_t alpn_lens[] = {6};

static void setup_identities(void)
{
    iroh_secret_key a, b;
    memset(a.bytes, 0x11, 32);
    memset(b.bytes, 0x22, 32);
    ir_tls_identity_new(&a, &cid_);
    ir_tls_identity_new(&b, &sid_);
    iroh_secret_key_public(&b, &server_id);
}

static void config(ir_conn_config *cfg, int server)
{
    ir_conn_config_defaults(cfg);
    cfg->identity = server ? sid_ : cid_;
    cfg->alpns = alpns;
    cfg->alpn_lens = alpn_lens;
    cfg->n_alpns = 1;
    cfg->remote_id = server ? NULL : &server_id;
    cfg->random = rand_bytes;
    memset(cfg->reset_key, server ? 2 : 1, 32);
}

/* moves time forward to the next event and processes it; returns 0 when idle */
static int step(net *nw, side *s, uint64_t limit)
{
    uint8_t buf[1500];
    ir_netaddr to;
    int did = 0;
    /* drain what both sides want to send now */
    for (int i = 0; i < 2; i++) {
        if (!s[i].c)
            continue;
        size_t n;
        while ((n = ir_conn_send(s[i].c, buf, sizeof buf, &to, nw->now)) > 0) {
            net_send(nw, 1 - i, &s[i].addr, buf, n);
            did = 1;
        }
    }
    /* next event: earliest packet or timer */
    uint64_t next = UINT64_MAX;
    size_t idx = SIZE_MAX;
    for (size_t k = 0; k < nw->n; k++)
        if (nw->q[k].at < next || (nw->q[k].at == next && nw->q[k].seq < nw->q[idx].seq)) {
            next = nw->q[k].at;
            idx = k;
        }
    int timer_side = -1;
    for (int i = 0; i < 2; i++) {
        if (!s[i].c)
            continue;
        uint64_t t = ir_conn_timeout(s[i].c);
        if (t < next) {
            next = t;
            timer_side = i;
            idx = SIZE_MAX;
        }
    }
    if (next == UINT64_MAX || next > limit)
        return did;
    if (next > nw->now)
        nw->now = next;
    if (idx != SIZE_MAX) {
        pkt p = nw->q[idx];
        nw->q[idx] = nw->q[--nw->n];
        side *dst = &s[p.to];
        if (!dst->c && p.to == 1) {
            /* the server's first Initial creates its connection */
            ir_pkt_hdr h;
            if (ir_pkt_parse(p.data, p.len, 8, &h) == 0 && h.type == IR_PT_INITIAL) {
                ir_conn_config cfg;
                config(&cfg, 1);
                ir_conn_server_new(&cfg, &h, &p.from, nw->now, &dst->c);
            }
        }
        if (dst->c)
            ir_conn_recv(dst->c, &p.from, p.data, p.len, nw->now);
        nw->delivered++;
    } else if (timer_side >= 0) {
        ir_conn_on_timeout(s[timer_side].c, nw->now);
    }
    return 1;
}

static void net_init(net *nw, double loss, uint64_t delay_ms)
{
    memset(nw, 0, sizeof *nw);
    nw->q = calloc(MAXQ, sizeof *nw->q);
    nw->loss = loss;
    nw->delay = delay_ms * 1000000ull;
    nw->now = 1000000000ull;
}

static void sides_init(side *s, net *nw)
{
    memset(s, 0, 2 * sizeof *s);
    s[0].addr.len = 6;
    memcpy(s[0].addr.data, "client", 6);
    s[1].addr.len = 6;
    memcpy(s[1].addr.data, "server", 6);
    ir_conn_config cfg;
    config(&cfg, 0);
    CHECK_EQ_INT(ir_conn_client_new(&cfg, &s[1].addr, nw->now, &s[0].c), IROH_OK);
}

static void sides_free(side *s, net *nw)
{
    ir_conn_free(s[0].c);
    ir_conn_free(s[1].c);
    free(nw->q);
}

static int run_until(net *nw, side *s, int (*done)(side *), uint64_t max_ns)
{
    uint64_t limit = nw->now + max_ns;
    while (!done(s)) {
        if (!step(nw, s, limit))
            return 0;
    }
    return 1;
}

static int both_established(side *s)
{
    return s[0].c && s[1].c && ir_conn_get_state(s[0].c) == IR_CONN_ESTABLISHED &&
           ir_conn_get_state(s[1].c) == IR_CONN_ESTABLISHED;
}

TEST(handshake)
{
    net nw;
    side s[2];
    net_init(&nw, 0, 10);
    sides_init(s, &nw);
    CHECK(run_until(&nw, s, both_established, 5000000000ull));
    iroh_endpoint_id got;
    CHECK_EQ_INT(ir_conn_peer_id(s[0].c, &got), 0);
    CHECK(iroh_endpoint_id_equal(&got, &server_id));
    CHECK_EQ_INT(ir_conn_peer_id(s[1].c, &got), 0);
    ir_event ev;
    int connected = 0;
    while (ir_conn_poll_event(s[0].c, &ev))
        connected += ev.type == IR_EV_CONNECTED;
    CHECK_EQ_INT(connected, 1);
    sides_free(s, &nw);
}

/* ---- bulk transfer: client sends N bytes on a bidi stream, server echoes them ------- */

typedef struct xfer {
    uint8_t *src, *echo, *srv;
    size_t n, sent, srv_got, srv_sent, got;
    uint64_t sid;
    int srv_fin, cli_fin, opened;
} xfer;

static xfer X;

static int pump_app(side *s)
{
    ir_conn *cl = s[0].c, *sv = s[1].c;
    if (!cl || !sv)
        return 0;
    if (!X.opened && ir_conn_get_state(cl) == IR_CONN_ESTABLISHED) {
        if (ir_conn_stream_open(cl, 1, &X.sid) == 0)
            X.opened = 1;
    }
    if (X.opened && X.sent < X.n) {
        long w = ir_conn_stream_write(cl, X.sid, X.src + X.sent, X.n - X.sent, 1);
        if (w > 0)
            X.sent += (size_t)w;
    }
    /* server: read everything and write it back */
    ir_event ev;
    while (ir_conn_poll_event(sv, &ev)) {
    }
    if (X.opened) {
        long r;
        while ((r = ir_conn_stream_read(sv, X.sid, X.srv + X.srv_got, X.n - X.srv_got + 1, NULL)) > 0)
            X.srv_got += (size_t)r;
        if (r == 0)
            X.srv_fin = 1;
        if (X.srv_sent < X.srv_got || (X.srv_fin && X.srv_sent == X.srv_got)) {
            long w = ir_conn_stream_write(sv, X.sid, X.srv + X.srv_sent, X.srv_got - X.srv_sent,
                                          X.srv_fin);
            if (w > 0)
                X.srv_sent += (size_t)w;
        }
        while ((r = ir_conn_stream_read(cl, X.sid, X.echo + X.got, X.n - X.got + 1, NULL)) > 0)
            X.got += (size_t)r;
        if (r == 0)
            X.cli_fin = 1;
    }
    while (ir_conn_poll_event(cl, &ev)) {
    }
    return X.cli_fin;
}

static void echo_test(double loss, double reorder, double dup, size_t n, uint64_t delay_ms)
{
    net nw;
    side s[2];
    net_init(&nw, loss, delay_ms);
    nw.reorder = reorder;
    nw.dup = dup;
    sides_init(s, &nw);
    memset(&X, 0, sizeof X);
    X.n = n;
    X.src = malloc(n);
    X.echo = malloc(n + 1);
    X.srv = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        X.src[i] = (uint8_t)(rng64() >> 13);
    uint64_t start = nw.now, limit = nw.now + 600000000000ull;
    int ok = 0;
    while (nw.now < limit) {
        if (pump_app(s)) {
            ok = 1;
            break;
        }
        if (!step(&nw, s, limit))
            break;
    }
    CHECK(ok);
    CHECK_EQ_INT(X.got, n);
    CHECK(X.got == n && memcmp(X.echo, X.src, n) == 0);
    ir_conn_stats st;
    ir_conn_get_stats(s[0].c, &st);
    printf("    %zu bytes echoed, loss %.0f%%, reorder %.0f%%, dup %.0f%%: %.2f s virtual, "
           "%llu lost, rtt %.1f ms\n",
           n, loss * 100, reorder * 100, dup * 100, (double)(nw.now - start) / 1e9,
           (unsigned long long)st.pkts_lost, (double)st.rtt_ns / 1e6);
    free(X.src);
    free(X.echo);
    free(X.srv);
    sides_free(s, &nw);
}

TEST(echo_small)
{
    echo_test(0, 0, 0, 13, 5);
}

TEST(echo_1mib_clean)
{
    echo_test(0, 0, 0, 1 << 20, 5);
}

TEST(echo_1mib_lossy)
{
    echo_test(0.02, 0.05, 0.02, 1 << 20, 10);
}

TEST(echo_256k_heavy_loss)
{
    echo_test(0.10, 0.10, 0.05, 256 << 10, 10);
}

TEST(close_and_idle)
{
    net nw;
    side s[2];
    net_init(&nw, 0, 10);
    sides_init(s, &nw);
    CHECK(run_until(&nw, s, both_established, 5000000000ull));
    ir_conn_close(s[0].c, 1, 42, "bye", nw.now);
    for (int i = 0; i < 1000 && ir_conn_get_state(s[1].c) < IR_CONN_DRAINING; i++)
        if (!step(&nw, s, nw.now + 10000000000ull))
            break;
    const ir_close_info *ci = ir_conn_close_info(s[1].c);
    CHECK(ci->closed && ci->by_peer && ci->application);
    CHECK_EQ_INT(ci->code, 42);
    CHECK_STR(ci->reason, "bye");
    sides_free(s, &nw);

    /* idle timeout: keep-alive off, network cut after the handshake */
    net_init(&nw, 0, 10);
    sides_init(s, &nw);
    CHECK(run_until(&nw, s, both_established, 5000000000ull));
    nw.loss = 1.0;
    for (int i = 0; i < 100000 && ir_conn_get_state(s[0].c) != IR_CONN_CLOSED; i++)
        if (!step(&nw, s, nw.now + 100000000000ull))
            break;
    CHECK_EQ_INT(ir_conn_get_state(s[0].c), IR_CONN_CLOSED);
    CHECK(ir_conn_close_info(s[0].c)->idle_timeout);
    sides_free(s, &nw);
}

int main(void)
{
    setup_identities();
    RUN(handshake);
    RUN(echo_small);
    RUN(echo_1mib_clean);
    RUN(echo_1mib_lossy);
    RUN(echo_256k_heavy_loss);
    RUN(close_and_idle);
    ir_tls_identity_free(cid_);
    ir_tls_identity_free(sid_);
    TEST_EXIT();
}
