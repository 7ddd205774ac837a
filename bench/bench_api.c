/* The public API: memory per endpoint and per idle connection (malloc'd bytes, from
 * mallinfo2), and bulk throughput through the blocking calls (compare bench_quic, the
 * core alone), direct and through a relay (our relay server on a thread of this process,
 * so the CPU figure covers both endpoints and the relay). Prints figures; asserts
 * nothing.  Usage: bench_api [MiB] [CONNS] */
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

static void *relay_thread(void *arg)
{
    ir_relay_server_run(arg);
    return NULL;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 256;
    int conns = argc > 2 ? atoi(argv[2]) : 200;

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
    return st;
}
