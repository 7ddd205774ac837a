/* The endpoint's relay link (endpoint/relay_link.h) against our relay server in-process
 * on loopback: two links come up and exchange datagrams (single and batched), datagrams
 * sent before a link is up wait for it, a refused connection backs off, and after the
 * relay restarts on the same port the links reconnect by themselves. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "endpoint/ep.h"
#include "endpoint/relay_link.h"
#include "relay/server.h"
#include "test.h"

typedef struct got {
    unsigned n;
    uint8_t src[32];
    uint8_t last[2000];
    size_t last_len;
    size_t total;
} got;

static void on_recv(void *ctx, unsigned idx, const uint8_t src[32], uint8_t *data, size_t len,
                    uint64_t now)
{
    (void)idx;
    (void)now;
    got *g = ctx;
    g->n++;
    memcpy(g->src, src, 32);
    g->last_len = len < sizeof g->last ? len : sizeof g->last;
    memcpy(g->last, data, g->last_len);
    g->total += len;
}

typedef struct relay {
    ir_relay_server *srv;
    pthread_t th;
    char url[64];
    uint16_t port;
} relay;

static void *relay_main(void *arg)
{
    ir_relay_server_run(arg);
    return NULL;
}

static int relay_start(relay *r, uint16_t port)
{
    ir_relay_server_config cfg;
    ir_relay_server_config_init(&cfg);
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
    cfg.listen = listen;
    if (ir_relay_server_new(&cfg, &r->srv) != IROH_OK)
        return -1;
    iroh_socket_addr a;
    ir_relay_server_local_addr(r->srv, &a);
    r->port = a.port;
    snprintf(r->url, sizeof r->url, "http://127.0.0.1:%u/", a.port);
    return pthread_create(&r->th, NULL, relay_main, r->srv);
}

static void relay_stop(relay *r)
{
    ir_relay_server_stop(r->srv);
    pthread_join(r->th, NULL);
    ir_relay_server_free(r->srv);
}

/* drives links for up to ms, until done() says so */
static int run_links(ir_rlink **l, int n, int ms, int (*done)(void *), void *ctx)
{
    uint64_t end = ir_now_ns() + (uint64_t)ms * 1000000ull;
    while (ir_now_ns() < end) {
        if (done && done(ctx))
            return 1;
        struct pollfd pf[4];
        int map[4], np = 0;
        for (int i = 0; i < n; i++)
            if (ir_rlink_pollfd(l[i], &pf[np]))
                map[np++] = i;
        poll(pf, (nfds_t)np, 5);
        uint64_t now = ir_now_ns();
        for (int i = 0; i < n; i++) {
            short rev = 0;
            for (int k = 0; k < np; k++)
                if (map[k] == i)
                    rev = pf[k].revents;
            uint64_t t = ir_rlink_timeout(l[i]);
            if (rev || (t && t <= now))
                ir_rlink_process(l[i], rev, now);
        }
    }
    return done ? done(ctx) : 1;
}

static ir_rlink *links2[2];
static int both_established(void *ctx)
{
    (void)ctx;
    return ir_rlink_established(links2[0]) && ir_rlink_established(links2[1]);
}
static int one_established(void *ctx)
{
    (void)ctx;
    return ir_rlink_established(links2[1]);
}
static int got_n(void *ctx)
{
    const unsigned *want = ctx;
    extern got g_b;
    return g_b.n >= *want;
}
got g_a, g_b;

static ir_rlink *make_link(const char *url, uint8_t seed, got *g, unsigned idx)
{
    ir_rlink_config c;
    memset(&c, 0, sizeof c);
    c.url = url;
    c.idx = idx;
    memset(c.key.bytes, seed, 32);
    c.recv = on_recv;
    c.recv_ctx = g;
    ir_rlink *l = NULL;
    if (ir_rlink_new(&c, &l) != IROH_OK)
        return NULL;
    return l;
}

int main(void)
{
    /* relay path addresses */
    uint8_t id[32];
    for (int i = 0; i < 32; i++)
        id[i] = (uint8_t)i;
    ir_netaddr na;
    ir_netaddr_relay(&na, 258, id);
    unsigned idx = 0;
    const uint8_t *pid = NULL;
    CHECK(ir_netaddr_is_relay(&na, &idx, &pid) && idx == 258 && memcmp(pid, id, 32) == 0);
    ir_netaddr udp;
    memset(&udp, 0, sizeof udp);
    udp.len = 7;
    udp.data[0] = 4;
    CHECK(!ir_netaddr_is_relay(&udp, NULL, NULL));

    /* URLs it cannot dial */
    CHECK(make_link("not a url", 1, &g_a, 0) == NULL);
    CHECK(make_link("http://[::1/", 1, &g_a, 0) == NULL);

    relay r;
    CHECK(relay_start(&r, 0) == 0);
    iroh_secret_key ka, kb;
    memset(ka.bytes, 0xa1, 32);
    memset(kb.bytes, 0xb2, 32);
    iroh_endpoint_id ida, idb;
    iroh_secret_key_public(&ka, &ida);
    iroh_secret_key_public(&kb, &idb);
    links2[0] = make_link(r.url, 0xa1, &g_a, 0);
    links2[1] = make_link(r.url, 0xb2, &g_b, 1);
    CHECK(links2[0] && links2[1]);
    uint64_t now = ir_now_ns();
    /* the receiver first: the relay drops datagrams for a peer it does not know yet, so
     * "early" must not overtake B's registration (under load it could) */
    ir_rlink_want(links2[1], 1, now);
    CHECK(run_links(&links2[1], 1, 10000, one_established, NULL));
    /* sent before its link is connected: queued until the link is up */
    CHECK(!ir_rlink_established(links2[0]));
    ir_rlink_send(links2[0], idb.bytes, (const uint8_t *)"early", 5, 5, ir_now_ns());
    CHECK(run_links(links2, 2, 10000, both_established, NULL));
    CHECK(ir_rlink_latency(links2[0]) > 0);
    unsigned want = 1;
    CHECK(run_links(links2, 2, 3000, got_n, &want));
    CHECK(g_b.n == 1 && g_b.last_len == 5 && memcmp(g_b.last, "early", 5) == 0);
    CHECK(memcmp(g_b.src, ida.bytes, 32) == 0);

    /* a batch of 3 x 1200 + 100 arrives as 4 datagrams */
    static uint8_t batch[3700];
    for (size_t i = 0; i < sizeof batch; i++)
        batch[i] = (uint8_t)(i * 7);
    ir_rlink_send(links2[0], idb.bytes, batch, sizeof batch, 1200, ir_now_ns());
    want = 5;
    CHECK(run_links(links2, 2, 3000, got_n, &want));
    CHECK(g_b.n == 5 && g_b.last_len == 100 && memcmp(g_b.last, batch + 3600, 100) == 0);
    CHECK(g_b.total == 5 + sizeof batch);
    CHECK(ir_rlink_connects(links2[0]) == 1);

    /* the relay restarts on the same port: both links come back by themselves */
    uint16_t port = r.port;
    relay_stop(&r);
    run_links(links2, 2, 300, NULL, NULL);
    CHECK(!ir_rlink_established(links2[0]));
    CHECK(ir_rlink_last_error(links2[0])[0] != 0);
    CHECK(relay_start(&r, port) == 0);
    CHECK(run_links(links2, 2, 10000, both_established, NULL));
    CHECK(ir_rlink_connects(links2[0]) == 2 && ir_rlink_connects(links2[1]) == 2);
    ir_rlink_send(links2[0], idb.bytes, (const uint8_t *)"again", 5, 5, ir_now_ns());
    want = 6;
    CHECK(run_links(links2, 2, 3000, got_n, &want));
    CHECK(g_b.last_len == 5 && memcmp(g_b.last, "again", 5) == 0);
    relay_stop(&r);
    ir_rlink_free(links2[0]);
    ir_rlink_free(links2[1]);

    /* nothing listens: the link backs off and says why */
    ir_rlink *dead = make_link("http://127.0.0.1:1/", 0xc3, &g_a, 0);
    CHECK(dead != NULL);
    ir_rlink_want(dead, 1, ir_now_ns());
    run_links(&dead, 1, 200, NULL, NULL);
    CHECK(!ir_rlink_established(dead));
    CHECK(strstr(ir_rlink_last_error(dead), "connect") != NULL);
    uint64_t t = ir_rlink_timeout(dead);
    CHECK(t > ir_now_ns()); /* waiting for the next attempt, not spinning */
    /* kept for good (a configured relay): still retrying two minutes later (the clock is
     * the caller's, so the future can be handed in) */
    uint64_t later = ir_now_ns() + 120ull * 1000000000ull;
    ir_rlink_process(dead, 0, later);
    CHECK(ir_rlink_timeout(dead) != 0);
    CHECK(strstr(ir_rlink_last_error(dead), "connect") != NULL);
    ir_rlink_free(dead);

    /* dialed on demand (a peer's relay) and unused: closed after 60 s, and dialed again
     * by the next send */
    ir_rlink *ondemand = make_link("http://127.0.0.1:1/", 0xc4, &g_a, 0);
    CHECK(ondemand != NULL);
    uint64_t t0 = ir_now_ns();
    ir_rlink_send(ondemand, idb.bytes, (const uint8_t *)"x", 1, 1, t0);
    CHECK(ir_rlink_timeout(ondemand) != 0);
    ir_rlink_process(ondemand, 0, t0 + 61ull * 1000000000ull);
    CHECK(ir_rlink_timeout(ondemand) == 0); /* idle: nothing to do */
    struct pollfd pfd;
    CHECK(!ir_rlink_pollfd(ondemand, &pfd));
    ir_rlink_send(ondemand, idb.bytes, (const uint8_t *)"y", 1, 1, t0 + 62ull * 1000000000ull);
    CHECK(ir_rlink_timeout(ondemand) != 0); /* trying again */
    ir_rlink_free(ondemand);
    TEST_EXIT();
}
