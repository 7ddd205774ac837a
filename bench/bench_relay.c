/* The relay server under many clients, on loopback: our server (src/relay/server*.c) runs
 * in a child process (fork; so that its memory can be measured apart from the clients'),
 * and N sans-IO relay clients (src/relay/client.h, default 1000) run over non-blocking
 * TCP sockets in one epoll loop here. Prints:
 *   - handshake: time until all N are READY (connect, upgrade, challenge, Ed25519 signature
 *     and verification, registration), and the median / 99th percentile per client;
 *   - server memory per client: the child's VmRSS (/proc/PID/status) before the clients
 *     connect and once all are READY, divided by N (kernel socket buffers are not in it);
 *   - forwarding: pairs of clients (2i <-> 2i+1) send each other 1200-byte datagrams as
 *     fast as the relay takes them, first as single datagram frames (0x04), then as batch
 *     frames of 10 segments (0x05, segment size 1200); datagrams/s and MB/s (payload)
 *     received by the clients (each phase counts only its own kind of frame; client send
 *     buffers are 128 KiB), and the server's own counters (via its metrics port).
 * The load generator is one thread and shares the machine with the server, so the figures
 * are a floor for the server. Asserts nothing.
 *
 * Usage: bench_relay [clients] [seconds per phase] [--rate-limit BYTES_PER_SEC] */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "relay/client.h"
#include "relay/server.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define DGRAM 1200
#define BATCH_SEGS 10
#define HIGH_WATER (32 * 1024) /* client output kept queued while sending */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void rnd(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    while (len) {
        ssize_t n = getrandom(buf, len, 0);
        if (n <= 0)
            abort();
        buf += n;
        len -= (size_t)n;
    }
}

/* ---- the server, in a child process ------------------------------------------------- */

static ir_relay_server *volatile g_srv;

static void on_term(int sig)
{
    (void)sig;
    if (g_srv)
        ir_relay_server_stop(g_srv);
}

/* Forks the server; returns its pid and ports (relay, metrics). */
static pid_t start_server(uint32_t rate, uint16_t *port, uint16_t *mport)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(p[0]);
        ir_relay_server_config cfg;
        ir_relay_server_config_init(&cfg);
        cfg.listen = "127.0.0.1:0";
        cfg.metrics_listen = "127.0.0.1:0";
        cfg.rx_bytes_per_second = rate;
        ir_relay_server *srv;
        if (ir_relay_server_new(&cfg, &srv) != IROH_OK) {
            fprintf(stderr, "server: %s\n", iroh_last_error());
            _exit(1);
        }
        g_srv = srv;
        signal(SIGTERM, on_term);
        signal(SIGPIPE, SIG_IGN);
        iroh_socket_addr a[2];
        ir_relay_server_local_addr(srv, &a[0]);
        ir_relay_server_metrics_addr(srv, &a[1]);
        uint16_t ports[2] = {a[0].port, a[1].port};
        if (write(p[1], ports, sizeof ports) != (ssize_t)sizeof ports)
            _exit(1);
        close(p[1]);
        ir_relay_server_run(srv);
        ir_relay_server_free(srv);
        _exit(0);
    }
    close(p[1]);
    uint16_t ports[2];
    ssize_t r = read(p[0], ports, sizeof ports);
    close(p[0]);
    if (r != (ssize_t)sizeof ports)
        return -1;
    *port = ports[0];
    *mport = ports[1];
    return pid;
}

/* The child's resident set in KiB (VmRSS), or -1. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
            break;
    fclose(f);
    return v;
}

/* One sample of the server's metrics text (a blocking GET on loopback); -1 if missing. */
static char g_metrics[16384];

static int scrape(uint16_t mport)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(mport),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    g_metrics[0] = 0;
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    if (write(fd, req, sizeof req - 1) < 0) {
        close(fd);
        return -1;
    }
    size_t n = 0;
    ssize_t r;
    while (n + 1 < sizeof g_metrics && (r = read(fd, g_metrics + n, sizeof g_metrics - 1 - n)) > 0)
        n += (size_t)r;
    g_metrics[n] = 0;
    close(fd);
    return 0;
}

static long long metric(const char *name)
{
    size_t l = strlen(name);
    for (const char *p = g_metrics; (p = strstr(p, name)) != NULL; p += l)
        if ((p == g_metrics || p[-1] == '\n') && p[l] == ' ')
            return atoll(p + l + 1);
    return -1;
}

/* ---- the clients ---------------------------------------------------------------------- */

typedef struct cl {
    int fd;
    ir_relay_client *c;
    uint32_t events;
    int ready, failed;
    uint64_t ready_at;
    uint64_t dgrams[2], bytes[2]; /* received: [0] single frames, [1] batch frames */
    uint64_t send_fail;
    uint8_t peer[32];
} cl;

static int g_ep;
static cl *g_cl;
static int g_n;
static int g_nready, g_nfailed;
static uint8_t g_buf[1 << 16];

static void set_events(cl *c)
{
    const uint8_t *p;
    uint32_t want = EPOLLIN | (ir_relay_client_pending(c->c, &p) ? EPOLLOUT : 0u);
    if (want != c->events) {
        struct epoll_event ev = {.events = want, .data.ptr = c};
        epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->events = want;
    }
}

static void take_events(cl *c, uint64_t now)
{
    ir_relay_client_event ev;
    while (ir_relay_client_poll(c->c, &ev)) {
        switch (ev.kind) {
        case IR_RELAY_EV_READY:
            c->ready = 1;
            c->ready_at = now;
            g_nready++;
            break;
        case IR_RELAY_EV_DATAGRAM:
            if (ev.dgrams.segment_size) {
                c->dgrams[1] += (ev.dgrams.len + ev.dgrams.segment_size - 1) / ev.dgrams.segment_size;
                c->bytes[1] += ev.dgrams.len;
            } else {
                c->dgrams[0]++;
                c->bytes[0] += ev.dgrams.len;
            }
            break;
        case IR_RELAY_EV_FAILED:
            if (!c->failed) {
                c->failed = 1;
                g_nfailed++;
                if (g_nfailed <= 5)
                    fprintf(stderr, "client %d failed: %s\n", (int)(c - g_cl), ev.reason);
            }
            break;
        default:
            break;
        }
    }
}

static void flush(cl *c)
{
    const uint8_t *p;
    size_t n;
    while ((n = ir_relay_client_pending(c->c, &p)) > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                ir_relay_client_eof(c->c, "write error");
            break;
        }
        ir_relay_client_consumed(c->c, (size_t)w);
    }
}

/* One round of the loop: I/O for the ready sockets, timers. */
static void step(int wait_ms)
{
    struct epoll_event evs[512];
    int k = epoll_wait(g_ep, evs, 512, wait_ms);
    uint64_t now = now_ns();
    for (int i = 0; i < k; i++) {
        cl *c = evs[i].data.ptr;
        if (c->failed)
            continue;
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            for (int r = 0; r < 8; r++) {
                ssize_t got = recv(c->fd, g_buf, sizeof g_buf, MSG_DONTWAIT);
                if (got > 0) {
                    ir_relay_client_recv(c->c, g_buf, (size_t)got, now);
                    take_events(c, now);
                    continue;
                }
                if (got == 0)
                    ir_relay_client_eof(c->c, "relay closed the connection");
                else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    ir_relay_client_eof(c->c, "read error");
                break;
            }
        }
        flush(c);
        take_events(c, now);
        if (!c->failed)
            set_events(c);
    }
}

static void timers(void)
{
    uint64_t now = now_ns();
    for (int i = 0; i < g_n; i++) {
        cl *c = &g_cl[i];
        uint64_t t = ir_relay_client_timeout(c->c);
        if (!c->failed && t && t <= now) {
            ir_relay_client_on_timeout(c->c, now);
            flush(c);
            take_events(c, now);
            if (!c->failed)
                set_events(c);
        }
    }
}

/* Keeps each ready client's output queue filled to HIGH_WATER with datagrams to its peer. */
static void top_up(int batch)
{
    static uint8_t data[DGRAM * BATCH_SEGS];
    for (int i = 0; i < g_n; i++) {
        cl *c = &g_cl[i];
        if (!c->ready || c->failed)
            continue;
        const uint8_t *p;
        int sent = 0;
        while (ir_relay_client_pending(c->c, &p) < HIGH_WATER && sent < 32) {
            int rc = batch ? ir_relay_client_send_batch(c->c, c->peer, 0, DGRAM, data, sizeof data)
                           : ir_relay_client_send(c->c, c->peer, 0, data, DGRAM);
            if (rc != IROH_OK) {
                c->send_fail++;
                break;
            }
            sent++;
        }
        if (sent) {
            flush(c);
            set_events(c);
        }
    }
}

static char g_host[32];
static struct sockaddr_in g_sa;
static ir_relay_client_config *g_cfgs;

/* Creates clients [from, to) and starts their TCP connects, all at once. */
static int connect_clients(int from, int to)
{
    for (int i = from; i < to; i++) {
        cl *c = &g_cl[i];
        g_cfgs[i].now = now_ns();
        if (ir_relay_client_new(&g_cfgs[i], &c->c) != IROH_OK) {
            fprintf(stderr, "client: %s\n", iroh_last_error());
            return -1;
        }
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1, sndbuf = 128 * 1024;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* a bounded send buffer: what a throttled client has in flight stays small */
        setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        if (c->fd < 0 || (connect(c->fd, (struct sockaddr *)&g_sa, sizeof g_sa) < 0 && errno != EINPROGRESS)) {
            fprintf(stderr, "connect: %s\n", strerror(errno));
            return -1;
        }
        c->events = EPOLLIN | EPOLLOUT;
        struct epoll_event ev = {.events = c->events, .data.ptr = c};
        epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &ev);
        if (i % 64 == 63)
            step(0); /* keep the early ones moving */
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void phase(const char *name, int batch, double secs, uint16_t mport)
{
    scrape(mport);
    long long relayed0 = metric("relayserver_send_packets_sent_total");
    long long full0 = metric("irohc_relay_datagrams_dropped_full_total");
    long long absent0 = metric("irohc_relay_datagrams_dropped_absent_total");
    /* warm up for a moment, then count */
    uint64_t t = now_ns(), warm = t + NS_PER_S / 2;
    while (now_ns() < warm) {
        top_up(batch);
        step(1);
    }
    uint64_t d0 = 0, b0 = 0;
    for (int i = 0; i < g_n; i++) {
        d0 += g_cl[i].dgrams[batch];
        b0 += g_cl[i].bytes[batch];
    }
    uint64_t start = now_ns(), end = start + (uint64_t)(secs * NS_PER_S), last_t = start;
    while (now_ns() < end) {
        top_up(batch);
        step(1);
        if (now_ns() - last_t > 100 * NS_PER_MS) {
            timers();
            last_t = now_ns();
        }
    }
    double el = (double)(now_ns() - start) / NS_PER_S;
    uint64_t d1 = 0, b1 = 0;
    for (int i = 0; i < g_n; i++) {
        d1 += g_cl[i].dgrams[batch];
        b1 += g_cl[i].bytes[batch];
    }
    /* let the queues drain (no new sends) until nothing arrives for 300 ms (at most 20 s),
     * so that the next phase starts empty */
    uint64_t drain_end = now_ns() + 20 * NS_PER_S, quiet_since = now_ns(), seen = 0;
    while (now_ns() < drain_end && now_ns() - quiet_since < 300 * NS_PER_MS) {
        step(5);
        uint64_t total = 0;
        for (int i = 0; i < g_n; i++)
            total += g_cl[i].dgrams[0] + g_cl[i].dgrams[1];
        if (total != seen) {
            seen = total;
            quiet_since = now_ns();
        }
        timers();
    }
    scrape(mport);
    printf("%s: %.0f datagrams/s, %.1f MB/s of payload received (%d clients in %d pairs, "
           "%.1f s)\n",
           name, (double)(d1 - d0) / el, (double)(b1 - b0) / el / 1e6, g_n, g_n / 2, el);
    printf("  server: %lld frames relayed in the phase, dropped on full queues %lld, "
           "to absent %lld\n",
           metric("relayserver_send_packets_sent_total") - relayed0,
           metric("irohc_relay_datagrams_dropped_full_total") - full0,
           metric("irohc_relay_datagrams_dropped_absent_total") - absent0);
}

int main(int argc, char **argv)
{
    int n = 1000;
    double secs = 3;
    uint32_t rate = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rate-limit") == 0 && i + 1 < argc)
            rate = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (n == 1000 && i == 1)
            n = atoi(argv[i]);
        else
            secs = atof(argv[i]);
    }
    if (n < 2 || n % 2)
        n = n < 2 ? 2 : n + 1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
        fprintf(stderr, "bench_relay: only %llu file descriptors for %d clients\n",
                (unsigned long long)rl.rlim_cur, n);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    uint16_t port, mport;
    pid_t pid = start_server(rate, &port, &mport);
    if (pid < 0) {
        fprintf(stderr, "bench_relay: cannot start the server\n");
        return 1;
    }
    usleep(100000);

    g_ep = epoll_create1(EPOLL_CLOEXEC);
    g_cl = calloc((size_t)n + 2, sizeof *g_cl);
    g_n = n;
    snprintf(g_host, sizeof g_host, "127.0.0.1:%u", port);
    g_sa.sin_family = AF_INET;
    g_sa.sin_port = htons(port);
    g_sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* keys first: their cost is not the relay's */
    g_cfgs = calloc((size_t)n + 2, sizeof *g_cfgs);
    for (int i = 0; i < n + 2; i++) {
        ir_relay_client_config_init(&g_cfgs[i]);
        rnd(NULL, g_cfgs[i].secret_key.bytes, 32);
        g_cfgs[i].host = g_host;
        g_cfgs[i].random = rnd;
        g_cfgs[i].handshake_timeout_ms = 60000;
        g_cfgs[i].max_queued = 4u << 20;
    }
    /* two throwaway clients first, so that the server's one-time allocations (its read
     * buffer, table growth, libc) are not counted per client */
    if (connect_clients(n, n + 2) < 0)
        return 1;
    uint64_t limit = now_ns() + 10 * NS_PER_S;
    while (g_nready + g_nfailed < 2 && now_ns() < limit)
        step(10);
    for (int i = n; i < n + 2; i++) {
        close(g_cl[i].fd);
        ir_relay_client_free(g_cl[i].c);
    }
    if (g_nready != 2) {
        fprintf(stderr, "bench_relay: the warm-up clients did not get ready\n");
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return 1;
    }
    g_nready = g_nfailed = 0;
    for (int i = 0; i < 20; i++)
        step(10);
    long rss0 = rss_kib(pid);

    uint64_t t0 = now_ns();
    if (connect_clients(0, n) < 0)
        return 1;
    limit = now_ns() + 60 * NS_PER_S;
    while (g_nready + g_nfailed < n && now_ns() < limit) {
        step(10);
        timers();
    }
    uint64_t t1 = now_ns();
    if (g_nready < n) {
        fprintf(stderr, "bench_relay: only %d of %d clients ready (%d failed)\n", g_nready, n, g_nfailed);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return 1;
    }
    uint64_t *lat = malloc((size_t)n * sizeof *lat);
    for (int i = 0; i < n; i++)
        lat[i] = g_cl[i].ready_at - t0;
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    printf("handshake: %d clients READY in %.0f ms (all connecting at once; client at "
           "median %.0f ms, 99th percentile %.0f ms; %.0f handshakes/s)\n",
           n, (double)(t1 - t0) / 1e6, (double)lat[n / 2] / 1e6, (double)lat[n * 99 / 100] / 1e6,
           n / ((double)(t1 - t0) / 1e9));
    /* idle a moment so that the server's heap settles */
    for (int i = 0; i < 20; i++)
        step(10);
    long rss1 = rss_kib(pid);
    scrape(mport);
    printf("server memory: VmRSS %ld KiB before the clients (after 2 warm-up clients came and "
           "went), %ld KiB with %lld registered: %.2f KiB per client (user space only; socket "
           "buffers are kernel memory)\n",
           rss0, rss1, metric("irohc_relay_clients"), (double)(rss1 - rss0) / n);

    for (int i = 0; i < n; i++)
        memcpy(g_cl[i].peer, ir_relay_client_id(g_cl[i ^ 1].c)->bytes, 32);
    if (rate)
        printf("(server rate limit: %u bytes/s per client)\n", rate);
    phase("single datagrams (0x04, 1200 B)", 0, secs, mport);
    long rss2 = rss_kib(pid);
    phase("batches (0x05, 10 x 1200 B)", 1, secs, mport);
    long rss3 = rss_kib(pid);
    printf("server memory after traffic: VmRSS %ld KiB after singles, %ld KiB after batches "
           "(%.1f KiB per client)\n",
           rss2, rss3, (double)(rss3 - rss0) / n);
    uint64_t fails = 0;
    for (int i = 0; i < n; i++)
        fails += g_cl[i].send_fail;
    if (g_nfailed || fails)
        printf("clients failed: %d; sends refused by a full client queue: %llu\n", g_nfailed,
               (unsigned long long)fails);

    kill(pid, SIGTERM);
    struct rusage ru;
    if (wait4(pid, NULL, 0, &ru) == pid)
        printf("server CPU time over the whole run: %.2f s user, %.2f s system\n",
               ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    for (int i = 0; i < n; i++) {
        close(g_cl[i].fd);
        ir_relay_client_free(g_cl[i].c);
    }
    free(g_cl);
    free(g_cfgs);
    free(lat);
    close(g_ep);
    return 0;
}
