/* Memory of a QUIC connection by holepunching mode and number of paths: malloc'd bytes
 * (mallinfo2) of N idle connection pairs driven sans-IO on a virtual clock (two ir_conn
 * per pair, datagrams carried in a static buffer, nothing else allocated), measured after
 * the handshake and the paths settled, per connection and per side (the clients freed
 * first: what goes is the client side, what is left the server side). Scenarios:
 *   mode 0: neither initial_max_path_id nor NAT traversal offered, one path;
 *   mode 1: multipath, one path; then three paths (path 0 and two more opened by the
 *           client with ir_conn_open_path to other addresses, all validated);
 *   mode 2: multipath + n0 NAT traversal, one path (the QNT state comes with it).
 * Also the sizes of the structures behind the figures (sizeof ir_conn and its parts).
 * Prints figures; asserts nothing.  Usage: bench_mem [CONNS]   (1 to 10000; default 100) */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quic/conn_internal.h"

#define MS 1000000ull
#define DELAY (5 * MS) /* one way */
#define QCAP 512

static size_t heap(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* ---- addresses: {side 'c' or 's', k}; the client's k-th address talks to the server's */
static ir_netaddr addr(char side, int k)
{
    ir_netaddr a;
    memset(&a, 0, sizeof a);
    a.len = 2;
    a.data[0] = (uint8_t)side;
    a.data[1] = (uint8_t)k;
    return a;
}

/* direct paths, as the endpoint's addr_of tells them: 127.0.0.(k+1), port 1 (client) or 2 */
static int addr_of(const ir_netaddr *a, iroh_socket_addr *out)
{
    if (a->len != 2)
        return -1;
    memset(out, 0, sizeof *out);
    out->family = 4;
    out->ip[0] = 127;
    out->ip[3] = (uint8_t)(a->data[1] + 1);
    out->port = a->data[0] == 'c' ? 1 : 2;
    return 0;
}

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

/* ---- the network: a FIFO (every hop takes DELAY), static so that it is not counted */
typedef struct pkt {
    uint64_t at;
    int to; /* 0 client, 1 server */
    ir_netaddr from;
    size_t len;
    uint8_t data[IR_CONN_MAX_DGRAM];
} pkt;
static pkt q[QCAP];
static size_t qhead, qn;

static ir_tls_identity *cid_, *sid_;
static iroh_endpoint_id server_id;
static const uint8_t *alpns[] = {(const uint8_t *)"bench/mem/0"};
static const size_t alpn_lens[] = {11};

static void config(ir_conn_config *cfg, int server, int mode)
{
    ir_conn_config_defaults(cfg);
    cfg->identity = server ? sid_ : cid_;
    cfg->alpns = alpns;
    cfg->alpn_lens = alpn_lens;
    cfg->n_alpns = 1;
    cfg->remote_id = server ? NULL : &server_id;
    cfg->random = rand_bytes;
    cfg->addr_of = addr_of;
    memset(cfg->reset_key, server ? 2 : 1, 32);
    /* as the endpoint does it (ep_core.c) for each holepunching mode */
    if (mode < 1)
        cfg->tp.has_initial_max_path_id = 0;
    if (mode < 2)
        cfg->tp.nat_traversal = 0;
}

typedef struct pair {
    ir_conn *c[2];
    uint64_t now;
} pair;

static void send_all(pair *p)
{
    for (int i = 0; i < 2; i++) {
        if (!p->c[i])
            continue;
        ir_netaddr to;
        uint8_t buf[IR_CONN_MAX_DGRAM];
        size_t n;
        while ((n = ir_conn_send(p->c[i], buf, sizeof buf, &to, p->now)) > 0) {
            if (qn == QCAP || to.len != 2)
                continue; /* lost */
            pkt *k = &q[(qhead + qn++) % QCAP];
            k->at = p->now + DELAY;
            k->to = 1 - i;
            k->from = addr(i == 0 ? 'c' : 's', to.data[1]);
            k->len = n;
            memcpy(k->data, buf, n);
        }
    }
}

static void drop_events(pair *p)
{
    ir_event ev;
    for (int i = 0; i < 2; i++)
        while (p->c[i] && ir_conn_poll_event(p->c[i], &ev))
            ;
}

/* runs the pair's virtual clock until `until` */
static int run(pair *p, uint64_t until, int mode)
{
    for (;;) {
        send_all(p);
        uint64_t next = qn ? q[qhead].at : UINT64_MAX;
        int timer = -1;
        for (int i = 0; i < 2; i++) {
            uint64_t t = p->c[i] ? ir_conn_timeout(p->c[i]) : UINT64_MAX;
            if (t < next) {
                next = t;
                timer = i;
            }
        }
        if (next == UINT64_MAX || next > until)
            break;
        if (next > p->now)
            p->now = next;
        if (timer >= 0) {
            ir_conn_on_timeout(p->c[timer], p->now);
            continue;
        }
        pkt *k = &q[qhead];
        qhead = (qhead + 1) % QCAP;
        qn--;
        if (!p->c[1] && k->to == 1) {
            ir_pkt_hdr h;
            ir_conn_config cfg;
            config(&cfg, 1, mode);
            if (ir_pkt_parse(k->data, k->len, 8, &h) == 0 && h.type == IR_PT_INITIAL &&
                ir_conn_server_new(&cfg, &h, &k->from, p->now, &p->c[1]) != IROH_OK)
                return -1;
        }
        if (p->c[k->to])
            ir_conn_recv(p->c[k->to], &k->from, k->data, k->len, p->now);
        drop_events(p);
    }
    p->now = until;
    drop_events(p);
    return 0;
}

/* one idle pair: handshake, then (npaths - 1) more paths from the client, settled */
static int make_pair(pair *p, int mode, int npaths)
{
    memset(p, 0, sizeof *p);
    qhead = qn = 0;
    p->now = 1000000 * MS;
    ir_conn_config cfg;
    config(&cfg, 0, mode);
    ir_netaddr s0 = addr('s', 0);
    if (ir_conn_client_new(&cfg, &s0, p->now, &p->c[0]) != IROH_OK)
        return -1;
    if (run(p, p->now + 500 * MS, mode) != 0 || !p->c[1] ||
        ir_conn_get_state(p->c[0]) != IR_CONN_ESTABLISHED || ir_conn_get_state(p->c[1]) != IR_CONN_ESTABLISHED)
        return -1;
    for (int k = 1; k < npaths; k++) {
        uint64_t id;
        ir_netaddr sk = addr('s', k);
        if (ir_conn_open_path(p->c[0], &sk, 1, p->now, &id) != 0)
            return -1;
    }
    /* paths validated, ACKs and NEW_CONNECTION_IDs done, the QNT timers quiet */
    if (run(p, p->now + 2000 * MS, mode) != 0)
        return -1;
    ir_conn_path_info info[IR_CONN_MAX_PATHS];
    for (int i = 0; i < 2; i++) {
        size_t n = ir_conn_paths(p->c[i], info, IR_CONN_MAX_PATHS);
        size_t ok = 0;
        for (size_t j = 0; j < n && j < IR_CONN_MAX_PATHS; j++)
            ok += info[j].validated && !info[j].abandoned;
        if (ok != (size_t)npaths || ir_conn_get_state(p->c[i]) != IR_CONN_ESTABLISHED)
            return -1;
    }
    return 0;
}

static int scenario(const char *name, int mode, int npaths, int conns)
{
    pair *ps = calloc((size_t)conns, sizeof *ps);
    if (!ps)
        return -1;
    /* one pair first, freed again: lazily made global state (TLS, caches) not counted */
    pair warm;
    if (make_pair(&warm, mode, npaths) != 0) {
        fprintf(stderr, "bench_mem: %s: the connection did not come up as expected\n", name);
        free(ps);
        return -1;
    }
    ir_conn_free(warm.c[0]);
    ir_conn_free(warm.c[1]);
    size_t h0 = heap();
    for (int i = 0; i < conns; i++)
        if (make_pair(&ps[i], mode, npaths) != 0) {
            fprintf(stderr, "bench_mem: %s: connection %d did not come up as expected\n", name, i);
            for (int j = 0; j <= i; j++) {
                ir_conn_free(ps[j].c[0]);
                ir_conn_free(ps[j].c[1]);
            }
            free(ps);
            return -1;
        }
    size_t h1 = heap();
    for (int i = 0; i < conns; i++)
        ir_conn_free(ps[i].c[0]);
    size_t h2 = heap();
    for (int i = 0; i < conns; i++)
        ir_conn_free(ps[i].c[1]);
    free(ps);
    double both = (double)(h1 - h0) / conns / 1024, cli = (double)(h1 - h2) / conns / 1024;
    printf("%-34s %6.1f KiB per connection (both ends): client %5.1f KiB, server %5.1f KiB\n",
           name, both, cli, both - cli);
    return 0;
}

int main(int argc, char **argv)
{
    int conns = 100;
    if (argc > 2 || (argc == 2 && (atol(argv[1]) < 1 || atol(argv[1]) > 10000 ||
                                   strspn(argv[1], "0123456789") != strlen(argv[1])))) {
        fprintf(stderr, "usage: bench_mem [CONNS]   (1 to 10000; default 100)\n");
        return 2;
    }
    if (argc == 2)
        conns = atoi(argv[1]);
    iroh_secret_key a, b;
    memset(a.bytes, 0x11, 32);
    memset(b.bytes, 0x22, 32);
    if (ir_tls_identity_new(&a, &cid_) != IROH_OK || ir_tls_identity_new(&b, &sid_) != IROH_OK)
        return 1;
    iroh_secret_key_public(&b, &server_id);

    printf("idle QUIC connections, sans-IO (%d pairs each; malloc'd bytes, mallinfo2):\n", conns);
    int st = 0;
    st |= scenario("mode 0 (no multipath), 1 path:", 0, 1, conns);
    st |= scenario("mode 1 (multipath), 1 path:", 1, 1, conns);
    st |= scenario("mode 1 (multipath), 3 paths:", 1, 3, conns);
    st |= scenario("mode 2 (multipath + QNT), 1 path:", 2, 1, conns);

    qpath *pp = NULL;
    ir_conn *cc = NULL;
    printf("where the bytes go: sizeof(ir_conn) %.1f KiB, with path slot 0 inline (qpath %zu B: "
           "packet-number space %zu B, connection ids %zu B, probes+responses %zu B; the other "
           "slots' qpath allocated when a path opens, a latent path id's ids alone %zu B), held "
           "datagram %zu B, epochs %zu B; datagram queues %zu B once a datagram comes or goes\n",
           sizeof(ir_conn) / 1024.0, sizeof(qpath), sizeof pp->app, sizeof pp->cids,
           sizeof pp->probes + sizeof pp->resp, sizeof(qlatent), sizeof cc->held, sizeof cc->epoch,
           sizeof *cc->dg_in * DGRAM_QUEUE * 2);
    ir_tls_identity_free(cid_);
    ir_tls_identity_free(sid_);
    return st ? 1 : 0;
}
