/* Handshakes under a flood of client Initials: a listener endpoint (public API, an accept
 * loop that takes and drops each connection), honest clients connecting in a loop from
 * their own endpoints, and a flooder thread sending 1200-byte Initials to the listener at
 * a given rate over loopback: junk (a valid header, a random payload) or valid ones (a
 * real ClientHello under fresh DCIDs, never continued). Prints handshakes completed per
 * second without and with each flood, then two costs behind them: the check that an
 * Initial decrypts (per datagram) and the memory of one half-open incoming connection.
 * Figures only; asserts nothing.
 *
 * Usage: bench_flood [SECONDS_PER_RUN] [CLIENTS] [RATE] [RUN]
 * RUN (1-4) makes only that run: no flood, junk at RATE, junk at 4 x RATE, valid at RATE;
 * 5: only the costs
 * (each figure is printed before the run's endpoints are torn down, which can take long
 * on a flooded endpoint without the Initial check). */
#include <arpa/inet.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <iroh.h>

#include "endpoint/ep.h"

#include "../tests/tools/initials.h"

static const char ALPN[] = "bench/flood/0";

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static iroh_endpoint *bind_ep(int listen)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    iroh_endpoint_builder_connect_timeout_ms(b, 2000);
    if (listen)
        iroh_endpoint_builder_alpn(b, ALPN);
    iroh_endpoint *ep;
    if (iroh_endpoint_bind(b, &ep) != IROH_OK) {
        fprintf(stderr, "bind: %s\n", iroh_last_error());
        exit(1);
    }
    iroh_endpoint_builder_free(b);
    return ep;
}

static atomic_int stop;
static atomic_long handshakes, failures;

static void *accept_loop(void *arg)
{
    iroh_endpoint *ep = arg;
    for (;;) {
        iroh_incoming *inc;
        int rc = iroh_endpoint_accept(ep, 200, &inc);
        if (rc == IROH_ERR_TIMEOUT)
            continue;
        if (rc != IROH_OK)
            return NULL;
        iroh_connection *c;
        if (iroh_incoming_accept(inc, &c) == IROH_OK)
            iroh_connection_free(c);
    }
}

typedef struct client {
    pthread_t th;
    iroh_endpoint *ep;
    const iroh_endpoint_addr *to;
} client;

static void *client_loop(void *arg)
{
    client *cl = arg;
    while (!atomic_load(&stop)) {
        iroh_connection *c;
        if (iroh_endpoint_connect(cl->ep, cl->to, ALPN, &c) == IROH_OK) {
            if (!atomic_load(&stop))
                atomic_fetch_add(&handshakes, 1);
            iroh_connection_free(c);
        } else {
            atomic_fetch_add(&failures, 1);
        }
    }
    return NULL;
}

typedef struct flooder {
    pthread_t th;
    struct sockaddr_in to;
    long rate;
    int valid;
    ir_flood_hello_t hello;
    long sent;
} flooder;

static void *flood_loop(void *arg)
{
    flooder *f = arg;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    uint8_t p[16][IR_FLOOD_DGRAM];
    struct mmsghdr msgs[16];
    struct iovec iov[16];
    double t0 = secs();
    while (!atomic_load(&stop)) {
        long due = (long)((secs() - t0) * (double)f->rate) + 1;
        if (due <= f->sent) {
            struct timespec ts = {0, 500000};
            nanosleep(&ts, NULL);
            continue;
        }
        int n = due - f->sent > 16 ? 16 : (int)(due - f->sent);
        for (int k = 0; k < n; k++) {
            if (f->valid)
                ir_flood_valid(&f->hello, p[k], NULL, NULL, 0);
            else
                ir_flood_junk(p[k]);
            iov[k].iov_base = p[k];
            iov[k].iov_len = IR_FLOOD_DGRAM;
            memset(&msgs[k], 0, sizeof msgs[k]);
            msgs[k].msg_hdr.msg_name = &f->to;
            msgs[k].msg_hdr.msg_namelen = sizeof f->to;
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(fd, msgs, (unsigned)n, 0);
        if (r > 0)
            f->sent += r;
    }
    close(fd);
    return NULL;
}

/* one run: a fresh listener, nclients connecting in a loop for secs_run seconds, a flood
 * of rate Initials a second (0: none) */
static void run(const char *what, double secs_run, int nclients, long rate, int valid)
{
    iroh_endpoint *srv = bind_ep(1);
    iroh_endpoint_addr *to;
    iroh_endpoint_get_addr(srv, &to);
    pthread_t acc;
    pthread_create(&acc, NULL, accept_loop, srv);
    atomic_store(&stop, 0);
    atomic_store(&handshakes, 0);
    atomic_store(&failures, 0);
    flooder *f = calloc(1, sizeof *f);
    if (rate) {
        iroh_transport_addr t;
        for (size_t i = 0; i < iroh_endpoint_addr_len(to); i++) {
            iroh_endpoint_addr_get(to, i, &t);
            if (t.kind == IROH_TRANSPORT_IP && t.ip.family == 4) {
                f->to.sin_family = AF_INET;
                f->to.sin_port = htons(t.ip.port);
                memcpy(&f->to.sin_addr, t.ip.ip, 4);
            }
        }
        f->rate = rate;
        f->valid = valid;
        if (valid && ir_flood_hello(ALPN, &f->hello) != 0) {
            fprintf(stderr, "no ClientHello\n");
            exit(1);
        }
        pthread_create(&f->th, NULL, flood_loop, f);
        usleep(500000); /* the flood is on before the clients start */
    }
    client *cl = calloc((size_t)nclients, sizeof *cl);
    for (int i = 0; i < nclients; i++) {
        cl[i].ep = bind_ep(0);
        cl[i].to = to;
    }
    double t0 = secs();
    for (int i = 0; i < nclients; i++)
        pthread_create(&cl[i].th, NULL, client_loop, &cl[i]);
    usleep((useconds_t)(secs_run * 1e6));
    double el = secs() - t0;
    long hs = atomic_load(&handshakes);
    atomic_store(&stop, 1);
    for (int i = 0; i < nclients; i++)
        pthread_join(cl[i].th, NULL);
    if (rate)
        pthread_join(f->th, NULL);
    printf("  %-34s %7.0f handshakes/s (%ld in %.1f s, %ld failed)\n", what, (double)hs / el, hs,
           el, atomic_load(&failures));
    fflush(stdout);
    for (int i = 0; i < nclients; i++)
        iroh_endpoint_free(cl[i].ep);
    iroh_endpoint_close(srv);
    pthread_join(acc, NULL);
    iroh_endpoint_addr_free(to);
    iroh_endpoint_free(srv);
    free(cl);
    free(f);
}

static size_t heap(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* The endpoint core alone: n valid Initials from a client that never goes on, each a
 * half-open connection (no cap, no Retry); the heap it holds per connection. */
static void half_open_memory(int n)
{
    static const uint8_t *alpns[1] = {(const uint8_t *)ALPN};
    static size_t lens[1] = {sizeof ALPN - 1};
    ir_ep_config cfg;
    memset(&cfg, 0, sizeof cfg);
    iroh_secret_key_generate(&cfg.key);
    cfg.alpns = alpns;
    cfg.alpn_lens = lens;
    cfg.n_alpns = 1;
    iroh_socket_addr_parse("127.0.0.1:0", &cfg.bind4);
#ifdef IR_EP_HALF_OPEN_MAX
    cfg.retry_above = cfg.half_open_max = (size_t)n + 1;
#endif
    ir_ep *ep;
    if (ir_ep_new(&cfg, &ep) != IROH_OK)
        return;
    iroh_socket_addr a;
    ir_ep_addrs(ep, &a, 1);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(a.port);
    memcpy(&sa.sin_addr, a.ip, 4);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ir_flood_hello_t hl;
    ir_flood_hello(ALPN, &hl);
    uint8_t p[IR_FLOOD_DGRAM];
    for (int i = 0; i < 20; i++) { /* warm up */
        ir_flood_valid(&hl, p, NULL, NULL, 0);
        sendto(fd, p, sizeof p, 0, (struct sockaddr *)&sa, sizeof sa);
        ir_ep_poll(ep, 5, NULL, 0);
    }
    size_t c0 = ir_ep_conn_count(ep), h0 = heap();
    for (int i = 0; i < n; i++) {
        ir_flood_valid(&hl, p, NULL, NULL, 0);
        sendto(fd, p, sizeof p, 0, (struct sockaddr *)&sa, sizeof sa);
        if (i % 16 == 15)
            ir_ep_poll(ep, 1, NULL, 0);
    }
    for (int i = 0; i < 50; i++)
        ir_ep_poll(ep, 2, NULL, 0);
    size_t made = ir_ep_conn_count(ep) - c0;
    if (made)
        printf("  half-open incoming connection:     %.1f KiB of heap each (%zu made)\n",
               (double)(heap() - h0) / 1024.0 / (double)made, made);
    close(fd);
    ir_ep_free(ep);
}

#ifdef IR_INITIAL_CHECK_MAX
/* the check a new-connection Initial passes before any state: its cost per datagram */
static void check_cost(void)
{
    enum { N = 20000 };
    uint8_t(*p)[IR_FLOOD_DGRAM] = malloc((size_t)N * IR_FLOOD_DGRAM);
    ir_pkt_hdr *h = malloc(N * sizeof *h);
    for (int i = 0; i < N; i++) {
        ir_flood_junk(p[i]);
        ir_pkt_parse(p[i], IR_FLOOD_DGRAM, 8, &h[i]);
    }
    int ok = 0;
    double t0 = secs();
    for (int i = 0; i < N; i++)
        ok += ir_pkt_initial_opens(p[i], &h[i]);
    double junk = (secs() - t0) / N;
    ir_flood_hello_t hl;
    ir_flood_hello(ALPN, &hl);
    for (int i = 0; i < N; i++) {
        ir_flood_valid(&hl, p[i], NULL, NULL, 0);
        ir_pkt_parse(p[i], IR_FLOOD_DGRAM, 8, &h[i]);
    }
    t0 = secs();
    for (int i = 0; i < N; i++)
        ok += ir_pkt_initial_opens(p[i], &h[i]);
    double valid = (secs() - t0) / N;
    printf("  decrypt check of a new Initial:    %.2f us junk, %.2f us valid (%d of %d opened)\n",
           junk * 1e6, valid * 1e6, ok, 2 * N);
    free(p);
    free(h);
}
#endif

int main(int argc, char **argv)
{
    double secs_run = argc > 1 ? atof(argv[1]) : 3.0;
    int nclients = argc > 2 ? atoi(argv[2]) : 4;
    long rate = argc > 3 ? atol(argv[3]) : 5000;
    int only = argc > 4 ? atoi(argv[4]) : 0;
    printf("handshakes under an Initial flood (%d clients in a loop, %.0f s per run, loopback)\n",
           nclients, secs_run);
    char what[64];
    if (!only || only == 1)
        run("no flood", secs_run, nclients, 0, 0);
    snprintf(what, sizeof what, "junk Initials, %ld/s", rate);
    if (!only || only == 2)
        run(what, secs_run, nclients, rate, 0);
    snprintf(what, sizeof what, "junk Initials, %ld/s", 4 * rate);
    if (!only || only == 3)
        run(what, secs_run, nclients, 4 * rate, 0);
    snprintf(what, sizeof what, "valid Initials, %ld/s", rate);
    if (!only || only == 4)
        run(what, secs_run, nclients, rate, 1);
    if (only && only != 5)
        return 0;
#ifdef IR_INITIAL_CHECK_MAX
    check_cost();
#endif
    half_open_memory(1000);
    return 0;
}
