/* QUIC between two iroh-c endpoints on loopback, each on its own thread: handshake time,
 * bulk throughput of one stream in each direction, and CPU time per GB (both ends).
 * Prints figures; asserts nothing about speed.  Usage: bench_quic [MiB] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "endpoint/ep.h"

static const uint8_t ALPN[] = "bench/0";

typedef struct server_ctx {
    ir_ep *ep;
    volatile int stop;
} server_ctx;

typedef struct sstream {
    ir_conn *c;
    uint64_t id;
    uint8_t hdr[9];
    size_t hdr_len;
    uint64_t todo;   /* download bytes still to write */
    uint64_t got;    /* upload bytes received */
    int upload, fin_sent, done;
} sstream;

static uint8_t junk[1 << 16];

static void *server_main(void *arg)
{
    server_ctx *sc = arg;
    sstream *ss = calloc(4096, sizeof *ss);
    size_t n = 0;
    uint8_t buf[1 << 16];
    while (!sc->stop) {
        ir_ep_poll(sc->ep, 50, NULL, 0);
        while (ir_ep_accept(sc->ep)) {
        }
        for (size_t i = 0; i < ir_ep_conn_count(sc->ep); i++) {
            ir_conn *c = ir_ep_conn_at(sc->ep, i);
            ir_event ev;
            while (ir_conn_poll_event(c, &ev))
                if (ev.type == IR_EV_STREAM_OPENED && n < 4096) {
                    memset(&ss[n], 0, sizeof ss[n]);
                    ss[n].c = c;
                    ss[n].id = ev.stream_id;
                    n++;
                }
        }
        for (size_t k = 0; k < n; k++) {
            sstream *s = &ss[k];
            if (s->done || ir_conn_get_state(s->c) >= IR_CONN_CLOSING) {
                s->done = 1;
                continue;
            }
            long r;
            while (s->hdr_len < 9 && (r = ir_conn_stream_read(s->c, s->id, s->hdr + s->hdr_len, 9 - s->hdr_len, NULL)) > 0)
                s->hdr_len += (size_t)r;
            if (s->hdr_len < 9)
                continue;
            if (!s->upload && !s->todo && !s->fin_sent) {
                s->upload = s->hdr[0] == 'U';
                for (int b = 1; b < 9; b++)
                    s->todo = s->todo << 8 | s->hdr[b];
                if (s->upload)
                    s->todo = 0;
            }
            if (s->upload) {
                while ((r = ir_conn_stream_read(s->c, s->id, buf, sizeof buf, NULL)) > 0)
                    s->got += (uint64_t)r;
                if (r == 0 && !s->fin_sent) {
                    ir_conn_stream_write(s->c, s->id, (const uint8_t *)"k", 1, 1);
                    s->fin_sent = 1;
                }
            } else {
                while (s->todo) {
                    size_t want = s->todo < sizeof junk ? (size_t)s->todo : sizeof junk;
                    long w = ir_conn_stream_write(s->c, s->id, junk, want, want == s->todo);
                    if (w <= 0)
                        break;
                    s->todo -= (uint64_t)w;
                }
                if (!s->todo)
                    s->fin_sent = 1;
            }
        }
        for (size_t i = 0; i < ir_ep_conn_count(sc->ep);) {
            ir_conn *c = ir_ep_conn_at(sc->ep, i);
            if (ir_conn_get_state(c) == IR_CONN_CLOSED) {
                for (size_t k = 0; k < n; k++)
                    if (ss[k].c == c)
                        ss[k].done = 1, ss[k].c = NULL;
                size_t m = 0;
                for (size_t k = 0; k < n; k++)
                    if (ss[k].c)
                        ss[m++] = ss[k];
                n = m;
                ir_ep_release(sc->ep, c);
                continue;
            }
            i++;
        }
    }
    free(ss);
    return NULL;
}

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_secs(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static ir_conn *dial(ir_ep *ep, const iroh_endpoint_addr *to)
{
    ir_conn *c;
    if (ir_ep_connect(ep, to, ALPN, sizeof ALPN - 1, &c) != IROH_OK)
        return NULL;
    for (int i = 0; i < 1000 && ir_conn_get_state(c) == IR_CONN_HANDSHAKE; i++)
        ir_ep_poll(ep, 10, NULL, 0);
    return ir_conn_get_state(c) == IR_CONN_ESTABLISHED ? c : NULL;
}

static double transfer(ir_ep *ep, ir_conn *c, int upload, uint64_t size, double *cpu)
{
    uint64_t sid;
    while (ir_conn_stream_open(c, 1, &sid) != 0)
        ir_ep_poll(ep, 10, NULL, 0);
    uint8_t hdr[9];
    hdr[0] = upload ? 'U' : 'D';
    for (int b = 0; b < 8; b++)
        hdr[1 + b] = (uint8_t)(size >> (56 - 8 * b));
    ir_conn_stream_write(c, sid, hdr, 9, !upload);
    double t0 = secs(), c0 = cpu_secs();
    uint64_t sent = 0, got = 0;
    uint8_t buf[1 << 16];
    int done = 0;
    while (!done && ir_conn_get_state(c) == IR_CONN_ESTABLISHED) {
        if (upload && sent < size) {
            size_t want = size - sent < sizeof junk ? (size_t)(size - sent) : sizeof junk;
            long w = ir_conn_stream_write(c, sid, junk, want, sent + want == size);
            if (w > 0)
                sent += (uint64_t)w;
        }
        ir_ep_poll(ep, sent < size && upload ? 0 : 5, NULL, 0);
        long r;
        while ((r = ir_conn_stream_read(c, sid, buf, sizeof buf, NULL)) > 0)
            got += (uint64_t)r;
        if (r == 0)
            done = 1;
        ir_event ev;
        while (ir_conn_poll_event(c, &ev)) {
        }
    }
    double dt = secs() - t0;
    *cpu = cpu_secs() - c0;
    if (!done || (!upload && got != size)) {
        fprintf(stderr, "transfer failed (got %llu of %llu)\n", (unsigned long long)got,
                (unsigned long long)size);
        return -1;
    }
    return dt;
}

int main(int argc, char **argv)
{
    uint64_t mib = 256;
    if (argc > 1) {
        char *end;
        mib = strtoull(argv[1], &end, 10);
        if (argc > 2 || end == argv[1] || *end || mib == 0 || mib > (1u << 20)) {
            fprintf(stderr, "usage: bench_quic [MiB]   (1 to 1048576; default 256)\n");
            return 2;
        }
    }
    uint64_t size = mib << 20;
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 13);
    ir_ep_config scfg, ccfg;
    memset(&scfg, 0, sizeof scfg);
    memset(&ccfg, 0, sizeof ccfg);
    iroh_secret_key_generate(&scfg.key);
    iroh_secret_key_generate(&ccfg.key);
    const uint8_t *alpns[1] = {ALPN};
    size_t lens[1] = {sizeof ALPN - 1};
    scfg.alpns = alpns;
    scfg.alpn_lens = lens;
    scfg.n_alpns = 1;
    iroh_socket_addr_parse("127.0.0.1:0", &scfg.bind4);
    iroh_socket_addr_parse("127.0.0.1:0", &ccfg.bind4);
    ir_ep *sep, *cep;
    if (ir_ep_new(&scfg, &sep) != IROH_OK || ir_ep_new(&ccfg, &cep) != IROH_OK) {
        fprintf(stderr, "endpoints: %s\n", iroh_last_error());
        return 1;
    }
    iroh_endpoint_addr *to = iroh_endpoint_addr_new(ir_ep_id(sep));
    iroh_socket_addr a;
    ir_ep_addrs(sep, &a, 1);
    iroh_endpoint_addr_add_ip(to, &a);
    server_ctx sc = {sep, 0};
    pthread_t th;
    pthread_create(&th, NULL, server_main, &sc);

    /* handshakes */
    const int H = 50;
    double t0 = secs();
    int ok = 0;
    for (int i = 0; i < H; i++) {
        ir_conn *c = dial(cep, to);
        if (c)
            ok++;
        if (c)
            ir_ep_release(cep, c);
    }
    double hs = (secs() - t0) / H;
    printf("handshake: %.2f ms per connection (%d of %d sequential handshakes, loopback)\n",
           hs * 1e3, ok, H);

    ir_conn *c = dial(cep, to);
    if (!c) {
        fprintf(stderr, "connect failed\n");
        return 1;
    }
    for (int up = 1; up >= 0; up--) {
        double cpu;
        double dt = transfer(cep, c, up, size, &cpu);
        if (dt < 0)
            return 1;
        double mbps = (double)size / dt / 1e6;
        ir_conn_stats st;
        ir_conn_get_stats(c, &st);
        printf("%s %llu MiB: %.2f s, %.0f MB/s (%.2f Gbit/s); CPU %.2f s per GB"
               " (both ends, user + system); lost packets so far %llu\n",
               up ? "upload  " : "download", (unsigned long long)mib, dt, mbps, mbps * 8 / 1000,
               cpu / ((double)size / 1e9), (unsigned long long)st.pkts_lost);
    }
    ir_ep_release(cep, c);
    sc.stop = 1;
    pthread_join(th, NULL);
    iroh_endpoint_addr_free(to);
    ir_ep_free(cep);
    ir_ep_free(sep);
    return 0;
}
