/* The public API: memory per endpoint and per idle connection (malloc'd bytes, from
 * mallinfo2), and bulk throughput through the blocking calls (compare bench_quic, the
 * core alone), direct and through a relay (our relay server on a thread of this process,
 * so the CPU figure covers both endpoints and the relay), and contention: one stream's
 * throughput while other threads sit blocked in reads of other streams and connections of
 * the same endpoint, and how often those idle threads were woken (voluntary context
 * switches of each, from getrusage(RUSAGE_THREAD)). Prints figures; asserts nothing.
 * Usage: bench_api [MiB] [CONNS] [IDLE_CONNS] [IDLE_STREAMS_PER_CONN]; with
 * BENCH_API_CONTENTION_ONLY set, only the contention figures (MiB / 4 each). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <iroh.h>

#include "relay/server.h"
#include <pthread.h>

static const char ALPN[] = "bench/api/0";

static size_t heap(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static iroh_endpoint *bind_relayed(int accept, const char *relay)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    if (relay)
        iroh_endpoint_builder_relay_url(b, relay);
    else
        iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED); /* loopback only */
    iroh_endpoint *ep;
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    if (accept)
        iroh_endpoint_builder_alpn(b, ALPN);
    if (iroh_endpoint_bind(b, &ep) != IROH_OK) {
        fprintf(stderr, "bind: %s\n", iroh_last_error());
        exit(1);
    }
    iroh_endpoint_builder_free(b);
    return ep;
}

static iroh_endpoint *bind_ep(int accept)
{
    return bind_relayed(accept, NULL);
}

/* the sink: reads every stream to the end, answers with one byte */
static int sink(void *ctx, iroh_connection *conn)
{
    (void)ctx;
    iroh_send_stream *s;
    iroh_recv_stream *r;
    while (iroh_connection_accept_bi(conn, -1, &s, &r) == IROH_OK) {
        static uint8_t buf[1 << 16];
        size_t n;
        while (iroh_recv_stream_read(r, buf, sizeof buf, &n) == IROH_OK && n)
            ;
        iroh_send_stream_write_all(s, "k", 1);
        iroh_send_stream_finish(s);
        iroh_send_stream_free(s);
        iroh_recv_stream_free(r);
    }
    return 0;
}

/* one stream, blocking writes of 64 KiB, to a sink that answers when it has it all */
static int upload(iroh_endpoint *cli, const iroh_endpoint_addr *addr, size_t mib, const char *how)
{
    double t0, dt;
    iroh_connection *c;
    if (iroh_endpoint_connect(cli, addr, ALPN, &c) != IROH_OK) {
        fprintf(stderr, "connect: %s\n", iroh_last_error());
        return 1;
    }
    static uint8_t chunk[1 << 16];
    memset(chunk, 7, sizeof chunk);
    iroh_send_stream *s;
    iroh_recv_stream *r;
    iroh_connection_open_bi(c, &s, &r);
    size_t total = mib << 20;
    double c0 = cpu();
    t0 = secs();
    for (size_t done = 0; done < total; done += sizeof chunk)
        if (iroh_send_stream_write_all(s, chunk, sizeof chunk) != IROH_OK) {
            fprintf(stderr, "write: %s\n", iroh_last_error());
            return 1;
        }
    iroh_send_stream_finish(s);
    uint8_t ack;
    iroh_recv_stream_read_exact(r, &ack, 1); /* the sink read everything */
    dt = secs() - t0;
    double used = cpu() - c0;
    printf("upload %zu MiB through the API, %s: %.2f s, %.0f MB/s; CPU %.2f s per GB "
           "(this process: both ends%s)\n",
           mib, how, dt, (double)total / dt / 1e6, used / ((double)total / 1e9),
           strcmp(how, "relayed") == 0 ? " and the relay" : "");
    iroh_send_stream_free(s);
    iroh_recv_stream_free(r);
    iroh_connection_close(c, 0, "");
    iroh_connection_free(c);
    return 0;
}

/* ---- contention: idle readers on the receiving endpoint ------------------------------- */

typedef struct idle_reader {
    pthread_t t;
    iroh_send_stream *s;
    iroh_recv_stream *r;
    long switches; /* voluntary context switches while blocked: its wakeups */
} idle_reader;

static long my_switches(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_nvcsw;
}

/* reads the stream's first byte, then blocks in a read until the stream ends */
static void *idle_main(void *arg)
{
    idle_reader *ir = arg;
    uint8_t b[64];
    size_t n;
    iroh_recv_stream_read_exact(ir->r, b, 1);
    long before = my_switches();
    while (iroh_recv_stream_read(ir->r, b, sizeof b, &n) == IROH_OK && n)
        ;
    ir->switches = my_switches() - before;
    return NULL;
}

typedef struct active_reader {
    iroh_recv_stream *r;
    size_t got;
    long reads; /* reads that returned data */
} active_reader;

static void *active_main(void *arg)
{
    active_reader *ar = arg;
    static uint8_t buf[1 << 16];
    size_t n;
    while (iroh_recv_stream_read(ar->r, buf, sizeof buf, &n) == IROH_OK && n) {
        ar->got += n;
        ar->reads++;
    }
    return NULL;
}

/* One stream of `mib` MiB from cli to srv while conns x per_conn other threads of srv are
 * blocked reading streams that stay silent (per_conn on the stream's own connection when
 * conns is 1, else spread over conns connections). Prints throughput and wakeups. */
static int contention(size_t mib, int conns, int per_conn)
{
    iroh_endpoint *srv = bind_ep(1), *cli = bind_ep(0);
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(srv, &addr);
    int nc = conns > 0 ? conns : 1;
    iroh_connection **cc = calloc((size_t)nc, sizeof *cc), **sc = calloc((size_t)nc, sizeof *sc);
    int nidle = conns * per_conn;
    idle_reader *idle = calloc((size_t)(nidle ? nidle : 1), sizeof *idle);
    iroh_send_stream **cs = calloc((size_t)(nidle ? nidle : 1), sizeof *cs);
    iroh_recv_stream **cr = calloc((size_t)(nidle ? nidle : 1), sizeof *cr);
    for (int i = 0; i < nc; i++) {
        iroh_incoming *inc;
        if (iroh_endpoint_connect(cli, addr, ALPN, &cc[i]) != IROH_OK ||
            iroh_endpoint_accept(srv, 5000, &inc) != IROH_OK ||
            iroh_incoming_accept(inc, &sc[i]) != IROH_OK) {
            fprintf(stderr, "contention: connect: %s\n", iroh_last_error());
            return 1;
        }
    }
    for (int k = 0; k < nidle; k++) {
        int i = k / per_conn;
        if (iroh_connection_open_bi(cc[i], &cs[k], &cr[k]) != IROH_OK ||
            iroh_send_stream_write_all(cs[k], "i", 1) != IROH_OK ||
            iroh_connection_accept_bi(sc[i], 5000, &idle[k].s, &idle[k].r) != IROH_OK) {
            fprintf(stderr, "contention: streams: %s\n", iroh_last_error());
            return 1;
        }
        pthread_create(&idle[k].t, NULL, idle_main, &idle[k]);
    }
    struct timespec settle = {0, 200000000};
    nanosleep(&settle, NULL); /* the idle readers block */

    iroh_send_stream *s, *ss;
    iroh_recv_stream *r, *sr;
    iroh_connection_open_bi(cc[0], &s, &r);
    static uint8_t chunk[1 << 16];
    memset(chunk, 7, sizeof chunk);
    size_t total = mib << 20, got = 0;
    double t0 = secs(), c0 = cpu();
    iroh_send_stream_write_all(s, chunk, sizeof chunk); /* the server sees the stream */
    total -= sizeof chunk;
    if (iroh_connection_accept_bi(sc[0], 5000, &ss, &sr) != IROH_OK) {
        fprintf(stderr, "contention: accept: %s\n", iroh_last_error());
        return 1;
    }
    /* the writer on this thread, the reader on another: both block in the API */
    active_reader ar = {sr, 0, 0};
    pthread_t rt;
    pthread_create(&rt, NULL, active_main, &ar);
    for (size_t done = 0; done < total; done += sizeof chunk)
        if (iroh_send_stream_write_all(s, chunk, sizeof chunk) != IROH_OK) {
            fprintf(stderr, "contention: write: %s\n", iroh_last_error());
            return 1;
        }
    iroh_send_stream_finish(s);
    pthread_join(rt, NULL);
    double dt = secs() - t0, used = cpu() - c0;
    got = ar.got;
    /* the idle streams end: their readers return */
    for (int k = 0; k < nidle; k++) {
        iroh_send_stream_finish(cs[k]);
        pthread_join(idle[k].t, NULL);
    }
    long sw = 0;
    for (int k = 0; k < nidle; k++)
        sw += idle[k].switches;
    printf("contention: %zu MiB on one stream, %d other readers blocked (%d connection%s x %d "
           "stream%s): %.0f MB/s, CPU %.2f s per GB; %ld reads delivered; the idle readers "
           "were woken %ld times (%.2f per delivered read, %.1f per idle reader)\n",
           mib, nidle, conns, conns == 1 ? "" : "s", per_conn, per_conn == 1 ? "" : "s",
           (double)got / dt / 1e6, used / ((double)got / 1e9), ar.reads, sw,
           ar.reads ? (double)sw / (double)ar.reads : 0.0, nidle ? (double)sw / nidle : 0.0);
    for (int k = 0; k < nidle; k++) {
        iroh_send_stream_free(cs[k]);
        iroh_recv_stream_free(cr[k]);
        iroh_send_stream_free(idle[k].s);
        iroh_recv_stream_free(idle[k].r);
    }
    iroh_send_stream_free(s);
    iroh_recv_stream_free(r);
    iroh_send_stream_free(ss);
    iroh_recv_stream_free(sr);
    for (int i = 0; i < nc; i++) {
        iroh_connection_free(cc[i]);
        iroh_connection_free(sc[i]);
    }
    free(cc);
    free(sc);
    free(idle);
    free(cs);
    free(cr);
    iroh_endpoint_addr_free(addr);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(srv);
    return 0;
}

static void *relay_thread(void *arg)
{
    ir_relay_server_run(arg);
    return NULL;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 256;
    int conns = argc > 2 ? atoi(argv[2]) : 200;
    int idle_conns = argc > 3 ? atoi(argv[3]) : 4;
    int idle_streams = argc > 4 ? atoi(argv[4]) : 8;
    size_t cmib = mib / 4 ? mib / 4 : 1;
    if (getenv("BENCH_API_CONTENTION_ONLY")) /* just the contention figures */
        return contention(cmib, 1, 0) || contention(cmib, 1, idle_streams) ||
               contention(cmib, idle_conns, idle_streams);

    /* memory per endpoint */
    const int E = 20;
    iroh_endpoint *eps[20];
    size_t h0 = heap();
    for (int i = 0; i < E; i++)
        eps[i] = bind_ep(0);
    size_t h1 = heap();
    printf("endpoint: %.1f KiB of heap each (%d endpoints, I/O thread stacks not counted)\n",
           (double)(h1 - h0) / E / 1024, E);
    for (int i = 0; i < E; i++)
        iroh_endpoint_free(eps[i]);

    /* memory per idle connection: both ends in this process, accepted by this thread
     * (a Router would add one handler thread per connection) */
    iroh_endpoint *msrv = bind_ep(1), *mcli = bind_ep(0);
    iroh_endpoint_addr *maddr;
    iroh_endpoint_get_addr(msrv, &maddr);
    iroh_connection **cs = calloc((size_t)conns, sizeof *cs), **ss = calloc((size_t)conns, sizeof *ss);
    size_t m0 = heap();
    double t0 = secs();
    int made = 0;
    for (int i = 0; i < conns; i++) {
        iroh_incoming *inc;
        if (iroh_endpoint_connect(mcli, maddr, ALPN, &cs[i]) != IROH_OK)
            continue;
        if (iroh_endpoint_accept(msrv, 2000, &inc) == IROH_OK && iroh_incoming_accept(inc, &ss[i]) == IROH_OK)
            made++;
    }
    double dt = secs() - t0;
    struct timespec settle = {0, 300000000};
    nanosleep(&settle, NULL); /* let the last acknowledgements arrive */
    size_t m1 = heap();
    printf("idle connection: %.1f KiB of heap per connection, both ends together (%d connections); "
           "%.2f ms per connect + accept through the API\n",
           (double)(m1 - m0) / made / 1024, made, dt * 1e3 / made);
    for (int i = 0; i < conns; i++) {
        iroh_connection_free(cs[i]);
        iroh_connection_free(ss[i]);
    }
    free(cs);
    free(ss);
    iroh_endpoint_addr_free(maddr);
    iroh_endpoint_free(mcli);
    iroh_endpoint_free(msrv);

    iroh_endpoint *srv = bind_ep(1), *cli = bind_ep(0);
    iroh_router_builder *rb = iroh_router_builder_new(srv);
    iroh_router *router;
    iroh_router_builder_accept(rb, ALPN, sink, NULL);
    iroh_router_spawn(rb, &router);
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(srv, &addr);

    if (upload(cli, addr, mib, "direct") != 0)
        return 1;
    iroh_endpoint_addr_free(addr);
    iroh_endpoint_free(cli);
    iroh_router_free(router);

    /* the same through a relay: our relay server on a thread, plain HTTP on loopback */
    ir_relay_server_config rc;
    ir_relay_server_config_init(&rc);
    rc.listen = "127.0.0.1:0";
    ir_relay_server *rs;
    if (ir_relay_server_new(&rc, &rs) != IROH_OK) {
        fprintf(stderr, "relay: %s\n", iroh_last_error());
        return 1;
    }
    iroh_socket_addr ra;
    ir_relay_server_local_addr(rs, &ra);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", ra.port);
    pthread_t rt;
    pthread_create(&rt, NULL, relay_thread, rs);
    srv = bind_relayed(1, url);
    cli = bind_relayed(0, url);
    if (iroh_endpoint_online(srv, 5000) != IROH_OK || iroh_endpoint_online(cli, 5000) != IROH_OK) {
        fprintf(stderr, "relay: %s\n", iroh_last_error());
        return 1;
    }
    rb = iroh_router_builder_new(srv);
    iroh_router_builder_accept(rb, ALPN, sink, NULL);
    iroh_router_spawn(rb, &router);
    iroh_endpoint_id sid;
    iroh_endpoint_get_id(srv, &sid);
    addr = iroh_endpoint_addr_new(&sid); /* the id and the relay, no direct address */
    iroh_endpoint_addr_add_relay(addr, url);
    int st = upload(cli, addr, mib / 4 ? mib / 4 : 1, "relayed");
    ir_relay_server_stats rst;
    ir_relay_server_get_stats(rs, &rst);
    printf("  the relay forwarded %llu frames, %.1f MiB (%.1f KiB per frame)\n",
           (unsigned long long)rst.frames_relayed, (double)rst.bytes_relayed / (1 << 20),
           rst.frames_relayed ? (double)rst.bytes_relayed / rst.frames_relayed / 1024 : 0.0);
    iroh_endpoint_addr_free(addr);
    iroh_endpoint_free(cli);
    iroh_router_free(router);
    ir_relay_server_stop(rs);
    pthread_join(rt, NULL);
    ir_relay_server_free(rs);
    if (st == 0)
        st = contention(cmib, 1, 0) || contention(cmib, 1, idle_streams) ||
             contention(cmib, idle_conns, idle_streams);
    return st;
}
