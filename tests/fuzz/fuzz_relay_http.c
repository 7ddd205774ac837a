/* The relay server's HTTP side: request heads, the WebSocket upgrade (with the
 * keying-material header of spec relay.md 2.3 and access control) and the plain pages in
 * the sans-IO core, and the real epoll shell's two listeners, the relay port and the
 * /metrics endpoint, fed hostile requests over TCP on 127.0.0.1.
 *
 * Mode byte: bits 0-1 where the rest of the input goes: 0 and 1 the core in memory, 2
 * the metrics listener, 3 the relay port of a real server (both on a thread of this
 * process, started once); bits 2-4 the size of the pieces it is sent in (1, 2, 7, 64,
 * 300, 1500, 4096, all); bit 5 (sockets) keep our side open instead of closing it after
 * the request (the server must answer a complete head by itself); bit 6 (core) an access
 * callback that denies the token "deny". In the input, "@KM@" is replaced by a valid
 * x-iroh-relay-client-auth-v1 value for the core's keying material, so that the
 * upgrade without a challenge is reached.
 *
 * Checked: sanitizers and leaks; every answer is HTTP/1.1 with a three-digit status and,
 * for the metrics listener, one of 200/400/404/405 with a content-length equal to the
 * body (OpenMetrics text ending in "# EOF" for 200); the servers close a connection whose
 * client is done within 10 s. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "relay/handshake.h"
#include "relay/server.h"
#include "fuzz_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NS_MS 1000000ull

static ir_relay_server *srv;
static iroh_socket_addr relay_addr, metrics_addr;
static char km_text[IR_RELAY_KM_AUTH_TEXT_LEN + 1];
static const uint8_t material[32] = {7, 7, 7};

static void *serve(void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    ir_relay_server_run(arg);
    return NULL;
}

static void setup(void)
{
    if (srv)
        return;
    signal(SIGPIPE, SIG_IGN);
    ir_relay_server_config cfg;
    ir_relay_server_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.metrics_listen = "127.0.0.1:0";
    cfg.linger_ms = 100;
    cfg.header_timeout_ms = 2000;
    if (ir_relay_server_new(&cfg, &srv) != IROH_OK)
        abort();
    ir_relay_server_local_addr(srv, &relay_addr);
    if (ir_relay_server_metrics_addr(srv, &metrics_addr) != 1)
        abort();
    pthread_t t;
    if (pthread_create(&t, NULL, serve, srv) != 0)
        abort();
    pthread_detach(t);
    iroh_secret_key k;
    memset(k.bytes, 0x29, 32);
    ir_relay_km_auth a;
    ir_relay_km_auth_make(&k, material, &a);
    if (ir_relay_km_auth_encode(&a, km_text, sizeof km_text) != IROH_OK)
        abort();
}

static int exporter(void *ctx, const uint8_t context[32], uint8_t out[32])
{
    memcpy(out, material, 32);
    return 0;
}

static int access_cb(void *ctx, const iroh_endpoint_id *id, int version, const char *token,
                     size_t token_len, const char **reason)
{
    return !(token && token_len == 4 && memcmp(token, "deny", 4) == 0);
}

/* the input with "@KM@" replaced */
static uint8_t *expand(const uint8_t *d, size_t len, size_t *out_len)
{
    uint8_t *o = malloc(len * (IR_RELAY_KM_AUTH_TEXT_LEN / 4 + 1) + 1);
    if (!o)
        abort();
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (len - i >= 4 && memcmp(d + i, "@KM@", 4) == 0) {
            memcpy(o + n, km_text, IR_RELAY_KM_AUTH_TEXT_LEN);
            n += IR_RELAY_KM_AUTH_TEXT_LEN;
            i += 4;
        } else {
            o[n++] = d[i++];
        }
    }
    *out_len = n;
    return o;
}

static int starts_http(const uint8_t *b, size_t n)
{
    return n >= 13 && memcmp(b, "HTTP/1.1 ", 9) == 0 && b[9] >= '1' && b[9] <= '5' &&
           b[10] >= '0' && b[10] <= '9' && b[11] >= '0' && b[11] <= '9' && b[12] == ' ';
}

/* ---- the core in memory ------------------------------------------------------------------ */

static void core_mode(const uint8_t *d, size_t len, size_t chunk, int with_access)
{
    ir_relay_server_config cfg;
    ir_relay_server_config_init(&cfg);
    if (with_access)
        cfg.access = access_cb;
    ir_relay_core *core;
    if (ir_relay_core_new(&cfg, fx_random, NULL, &core) != IROH_OK)
        abort();
    uint64_t now = 1000 * NS_MS;
    ir_relay_conn *c = ir_relay_core_accept(core, now);
    ir_relay_conn_set_exporter(c, exporter, NULL);
    static uint8_t out[1 << 16];
    size_t out_len = 0;
    static uint8_t piece[4096];
    for (size_t off = 0; off < len;) {
        size_t n = len - off < chunk ? len - off : chunk;
        if (n > sizeof piece)
            n = sizeof piece;
        memcpy(piece, d + off, n); /* the core may change what it is given */
        off += n;
        if (!(ir_relay_conn_status(c) & IR_RELAY_WANT_READ))
            break;
        ir_relay_core_recv(core, c, piece, n, now);
        struct iovec iov[16];
        size_t k;
        while ((k = ir_relay_conn_output(c, iov, 16)) > 0) {
            size_t total = 0;
            for (size_t i = 0; i < k; i++) {
                size_t l = iov[i].iov_len;
                if (out_len + l <= sizeof out) {
                    memcpy(out + out_len, iov[i].iov_base, l);
                    out_len += l;
                }
                total += l;
            }
            ir_relay_core_sent(core, c, total, now);
        }
        now += 100 * NS_MS;
        uint64_t t = ir_relay_core_next_timeout(core);
        if (t && t <= now)
            ir_relay_core_on_timeout(core, now);
        while (ir_relay_core_next_changed(core))
            ;
        if (ir_relay_conn_status(c) & IR_RELAY_CLOSED)
            break;
    }
    if (out_len && !starts_http(out, out_len))
        abort(); /* whatever the core says first is an HTTP response */
    if (!(ir_relay_conn_status(c) & IR_RELAY_CLOSED))
        ir_relay_core_eof(core, c, now);
    ir_relay_core_free(core);
}

/* ---- the real server over TCP --------------------------------------------------------------- */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void check_metrics(const uint8_t *b, size_t n)
{
    if (!n)
        return; /* closed without an answer: the head never completed */
    if (!starts_http(b, n))
        abort();
    int status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
    if (status != 200 && status != 400 && status != 404 && status != 405)
        abort();
    const uint8_t *end = memmem(b, n, "\r\n\r\n", 4);
    if (!end)
        abort();
    size_t head = (size_t)(end - b) + 4, body = n - head;
    const char *cl = memmem(b, head, "content-length: ", 16);
    if (!cl)
        abort();
    size_t want = strtoul(cl + 16, NULL, 10);
    if (body != want && body != 0) /* 0: a HEAD request */
        abort();
    if (status == 200 && body && (body < 6 || memcmp(b + n - 6, "# EOF\n", 6) != 0))
        abort();
}

static void socket_mode(const iroh_socket_addr *to, const uint8_t *d, size_t len, size_t chunk,
                        int keep_open, int metrics)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(to->port);
    memcpy(&sin.sin_addr, to->ip, 4);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
        if (fd >= 0)
            close(fd);
        return; /* the accept queue is full for a moment: not this input's concern */
    }
    static uint8_t resp[1 << 17];
    size_t rlen = 0;
    int closed = 0;
    for (size_t off = 0; off < len && !closed;) {
        size_t n = len - off < chunk ? len - off : chunk;
        ssize_t w = send(fd, d + off, n, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server closed: fine */
        off += (size_t)w;
    }
    if (!keep_open)
        shutdown(fd, SHUT_WR);
    uint64_t start = mono_ms();
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        int wait = keep_open ? 20 : 10000;
        int pr = poll(&pf, 1, wait);
        if (pr == 0) {
            if (keep_open)
                break; /* the server may wait for more of the request */
            abort(); /* the server kept a finished client for 10 s */
        }
        ssize_t r = recv(fd, rlen < sizeof resp ? resp + rlen : resp,
                         rlen < sizeof resp ? sizeof resp - rlen : sizeof resp, 0);
        if (r <= 0) {
            closed = 1;
            break;
        }
        if (rlen < sizeof resp)
            rlen += (size_t)r;
        if (mono_ms() - start > 20000)
            abort();
    }
    close(fd);
    if (metrics) {
        if (closed && rlen < sizeof resp)
            check_metrics(resp, rlen);
    } else if (rlen && !starts_http(resp, rlen)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    setup();
    uint8_t mode = data[0];
    static const size_t chunks[8] = {1, 2, 7, 64, 300, 1500, 4096, (size_t)-1};
    size_t chunk = chunks[(mode >> 2) & 7];
    size_t len;
    uint8_t *d = expand(data + 1, size - 1, &len);
    switch (mode & 3) {
    case 0:
    case 1:
        core_mode(d, len, chunk, (mode >> 6) & 1);
        break;
    case 2:
        socket_mode(&metrics_addr, d, len, chunk, (mode >> 5) & 1, 1);
        break;
    case 3:
        socket_mode(&relay_addr, d, len, chunk, (mode >> 5) & 1, 0);
        break;
    }
    free(d);
    return 0;
}
