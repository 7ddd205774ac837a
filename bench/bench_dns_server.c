/* iroh-c dns-server throughput with N stored records (default 100,000) in an SQLite file:
 *
 *  - pkarr PUTs per second: the core (verify + newer-only store write, one SQLite commit
 *    each) and over HTTP (one loopback TCP connection per PUT, as clients do it);
 *  - DNS queries per second over UDP against the real server on a thread, a window of 64
 *    queries in flight from one socket: hot (one name again and again: the cache) and
 *    cold (random names among the N, a cache of 1,000 keys: almost every query reads the
 *    file).
 * Prints figures; asserts nothing.  Usage: bench_dns_server [N] [SECONDS per figure] */
#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dns/endpoint_info.h"
#include "dns/pkarr.h"
#include "dnsserver/dnsserver.h"
#include "net/netaddr.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t unix_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void make_packet(uint32_t i, uint64_t ts, ir_pkarr_packet *p, char z[64])
{
    iroh_secret_key sk;
    memset(&sk, 0, sizeof sk);
    memcpy(sk.bytes, &i, sizeof i);
    sk.bytes[31] = 0x5a;
    iroh_endpoint_id id;
    iroh_secret_key_public(&sk, &id);
    static ir_endpoint_info ei;
    memset(&ei, 0, sizeof ei);
    memcpy(ei.id, id.bytes, 32);
    snprintf(ei.relay, sizeof ei.relay, "https://relay%u.example./", i % 7);
    uint8_t dns[1000];
    size_t len;
    ir_endpoint_info_to_dns(&ei, 30, dns, sizeof dns, &len);
    ir_pkarr_sign(&sk, ts, dns, len, p);
    if (z)
        iroh_endpoint_id_to_z32(&id, z, 64);
}

static void *run(void *arg)
{
    pthread_setname_np(pthread_self(), "dns-server"); /* for perf --sort comm */
    ir_dnss_server_run(arg);
    return NULL;
}

/* queries/s over UDP for `secs`: names[pick] with a window of 64 in flight */
static double udp_qps(const iroh_socket_addr *to, char (*zs)[64], uint32_t n, int hot, double secs)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_storage ss;
    socklen_t sl;
    ir_sockaddr_from_socket_addr(to, &ss, &sl);
    connect(fd, (struct sockaddr *)&ss, sl);
    /* hot: one name; cold: 16,384 random names of all n (a cache of 1,000 keys holds few) */
    enum { NQ = 16384 };
    uint8_t **qs = malloc(NQ * sizeof *qs);
    size_t *ql = malloc(NQ * sizeof *ql);
    uint32_t seed = 12345;
    for (int k = 0; k < NQ; k++) {
        uint32_t pick = hot ? 0 : (seed = seed * 1103515245 + 12345) % n;
        char name[200];
        snprintf(name, sizeof name, "_iroh.%s.dns.iroh.link.", zs[pick]);
        ldns_pkt *q = NULL;
        ldns_pkt_query_new_frm_str(&q, name, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, 0);
        ldns_pkt2wire(&qs[k], q, &ql[k]);
        ldns_pkt_free(q);
    }
    long sent = 0, got = 0, answered = 0;
    uint8_t buf[2048];
    double t0 = now_s(), end = t0 + secs;
    while (now_s() < end) {
        while (sent - got < 64) {
            int k = (int)(sent % NQ);
            send(fd, qs[k], ql[k], 0);
            sent++;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0) {
            got = sent; /* lost ones: open the window again */
            continue;
        }
        while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
            got++;
            answered += (buf[3] & 0xf) == 0 && (buf[6] | buf[7]) != 0;
        }
    }
    double el = now_s() - t0;
    for (int k = 0; k < NQ; k++)
        free(qs[k]);
    free(qs);
    free(ql);
    close(fd);
    if (answered < got * 9 / 10)
        printf("  (warning: only %ld of %ld answers had records)\n", answered, got);
    return (double)answered / el;
}

static double http_puts(const iroh_socket_addr *to, uint32_t base, uint32_t count)
{
    static ir_pkarr_packet p;
    char z[64];
    struct sockaddr_storage ss;
    socklen_t sl;
    ir_sockaddr_from_socket_addr(to, &ss, &sl);
    /* signed first: the client's cost is not the server's */
    uint8_t(*bodies)[IR_PKARR_MAX_PAYLOAD] = malloc((size_t)count * IR_PKARR_MAX_PAYLOAD);
    size_t *lens = malloc(count * sizeof *lens);
    char(*zs)[64] = malloc((size_t)count * 64);
    uint64_t ts = unix_us();
    for (uint32_t i = 0; i < count; i++) {
        make_packet(base + i, ts, &p, z);
        lens[i] = ir_pkarr_relay_payload(&p, bodies[i], IR_PKARR_MAX_PAYLOAD);
        memcpy(zs[i], z, 64);
    }
    long ok = 0;
    double t0 = now_s();
    for (uint32_t i = 0; i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
            close(fd);
            continue;
        }
        char head[300];
        int hl = snprintf(head, sizeof head, "PUT /pkarr/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", zs[i],
                          lens[i]);
        send(fd, head, (size_t)hl, 0);
        send(fd, bodies[i], lens[i], 0);
        char resp[512];
        ssize_t n = recv(fd, resp, sizeof resp - 1, 0);
        if (n > 12 && memcmp(resp, "HTTP/1.1 204", 12) == 0)
            ok++;
        close(fd);
    }
    double el = now_s() - t0;
    free(bodies);
    free(lens);
    free(zs);
    if (ok != count)
        printf("  (warning: %ld of %u PUTs answered 204)\n", ok, count);
    return (double)ok / el;
}

int main(int argc, char **argv)
{
    uint32_t n = argc > 1 ? (uint32_t)atoi(argv[1]) : 100000;
    double secs = argc > 2 ? atof(argv[2]) : 3;
    char path[] = "/tmp/bench_dns_server_XXXXXX";
    int tfd = mkstemp(path);
    close(tfd);
    char(*zs)[64] = malloc((size_t)n * 64);
    printf("bench_dns_server: %u records in %s\n", n, path);
    /* fill the file through the store (signing is the client's cost) */
    ir_dnss_store *st;
    if (ir_dnss_store_open(path, 1000, &st) != IROH_OK) {
        fprintf(stderr, "%s\n", iroh_last_error());
        return 1;
    }
    static ir_pkarr_packet p;
    uint64_t ts = unix_us();
    double t0 = now_s();
    for (uint32_t i = 0; i < n; i++) {
        make_packet(i, ts, &p, zs[i]);
        ir_dnss_store_put(st, &p);
    }
    printf("filled: %.1f s (signing included)\n", now_s() - t0);
    /* the core's PUT path: verify the payload, store newer-only (one commit each) */
    uint32_t m = n < 5000 ? n : 5000;
    uint8_t(*bodies)[IR_PKARR_MAX_PAYLOAD] = malloc((size_t)m * IR_PKARR_MAX_PAYLOAD);
    size_t *lens = malloc(m * sizeof *lens);
    for (uint32_t i = 0; i < m; i++) {
        make_packet(i, ts + 1, &p, NULL);
        lens[i] = ir_pkarr_relay_payload(&p, bodies[i], IR_PKARR_MAX_PAYLOAD);
    }
    t0 = now_s();
    long stored = 0;
    for (uint32_t i = 0; i < m; i++) {
        static ir_pkarr_packet v;
        /* the key is the first 32 bytes of the signed packet: recompute from the index */
        iroh_secret_key sk;
        memset(&sk, 0, sizeof sk);
        memcpy(sk.bytes, &i, sizeof i);
        sk.bytes[31] = 0x5a;
        iroh_endpoint_id id;
        iroh_secret_key_public(&sk, &id);
        if (ir_pkarr_from_relay_payload(id.bytes, bodies[i], lens[i], &v) == IROH_OK)
            stored += ir_dnss_store_put(st, &v) == 1;
    }
    double el = now_s() - t0;
    printf("core PUTs (verify + store, key derivation of the bench included): %.0f /s (%ld stored)\n",
           (double)stored / el, stored);
    free(bodies);
    free(lens);
    ir_dnss_store_free(st);

    for (int hot = 1; hot >= 0; hot--) {
        ir_dnss_config cfg;
        ir_dnss_config_init(&cfg);
        cfg.dns_listen = "127.0.0.1:0";
        cfg.http_listen = "127.0.0.1:0";
        cfg.origins[0] = "dns.iroh.link";
        cfg.n_origins = 1;
        cfg.db_path = path;
        cfg.cache_capacity = 1000;
        cfg.rate_limit = IR_DNSS_RATE_DISABLED;
        ir_dnss_server *srv;
        if (ir_dnss_server_new(&cfg, &srv) != IROH_OK) {
            fprintf(stderr, "%s\n", iroh_last_error());
            return 1;
        }
        iroh_socket_addr dns, http;
        ir_dnss_server_addrs(srv, &dns, &http, NULL);
        pthread_t th;
        pthread_create(&th, NULL, run, srv);
        double q = udp_qps(&dns, zs, n, hot, secs);
        printf("UDP queries, %s: %.0f answers/s\n", hot ? "hot (one name, cached)" : "cold (random names of all, cache 1,000)", q);
        if (!hot) {
            double ps = http_puts(&http, n + 1, 2000);
            printf("pkarr PUTs over HTTP (a connection each, new keys): %.0f /s\n", ps);
        }
        ir_dnss_stats s;
        ir_dnss_server_get_stats(srv, &s);
        printf("  cache hits %llu, misses %llu\n", (unsigned long long)s.store.cache_hits,
               (unsigned long long)s.store.cache_misses);
        ir_dnss_server_stop(srv);
        pthread_join(th, NULL);
        ir_dnss_server_free(srv);
    }
    free(zs);
    unlink(path);
    char aux[64];
    snprintf(aux, sizeof aux, "%s-wal", path);
    unlink(aux);
    snprintf(aux, sizeof aux, "%s-shm", path);
    unlink(aux);
    return 0;
}
