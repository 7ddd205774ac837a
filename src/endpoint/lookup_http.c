/* The pkarr relay's HTTP client (spec 4.3): one request per call, HTTP/1.1 over TCP or
 * TLS (relay/tls_stream.h), run on a job thread of the lookup shell (never the I/O
 * thread). Every step is bounded by the caller's deadline and ends early when *stop is
 * set. The answer's head goes through the relay's HTTP parser (relay/http.h); the body is
 * read by Content-Length (or to the end of the connection) up to the caller's cap. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "dns/pkarr.h"
#include "endpoint/ep.h"
#include "endpoint/lookup_jobs.h"
#include "net/netaddr.h"
#include "relay/http.h"
#include "relay/tls_stream.h"

/* getaddrinfo on a thread of its own, so that the job can give up at its deadline (or
 * when the lookup stops) while the system's resolver still waits for its servers (glibc:
 * 5 s per server and try): whichever of the two is left last frees the call. */
typedef struct gai_call {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, abandoned, err, socktype, flags;
    char host[256], port[8];
    struct addrinfo *res;
} gai_call;

static void gai_call_free(gai_call *g)
{
    if (g->res)
        freeaddrinfo(g->res);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static void *gai_main(void *arg)
{
    gai_call *g = arg;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = g->socktype;
    hints.ai_flags = g->flags;
    int err = getaddrinfo(g->host, g->port[0] ? g->port : NULL, &hints, &res);
    pthread_mutex_lock(&g->mu);
    g->err = err;
    g->res = err ? NULL : res;
    g->done = 1;
    int gone = g->abandoned;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (gone)
        gai_call_free(g);
    return NULL;
}

int ir_lookup_getaddrinfo(const char *host, uint16_t port, int socktype, int flags,
                          uint64_t deadline, const atomic_int *stop, struct addrinfo **res)
{
    *res = NULL;
    gai_call *g = calloc(1, sizeof *g);
    if (!g || strlen(host) >= sizeof g->host) {
        free(g);
        return EAI_MEMORY;
    }
    snprintf(g->host, sizeof g->host, "%s", host);
    if (port)
        snprintf(g->port, sizeof g->port, "%u", port);
    g->socktype = socktype;
    g->flags = flags;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, gai_main, g);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        gai_call_free(g);
        return EAI_SYSTEM;
    }
    pthread_mutex_lock(&g->mu);
    for (;;) {
        if (g->done)
            break;
        uint64_t now = ir_now_ns();
        if (now >= deadline || (stop && atomic_load(stop)))
            break;
        uint64_t until = deadline - now > 100000000ull ? now + 100000000ull : deadline;
        struct timespec ts = {.tv_sec = (time_t)(until / 1000000000ull), .tv_nsec = (long)(until % 1000000000ull)};
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    if (!g->done) {
        int stopped = stop && atomic_load(stop);
        g->abandoned = 1; /* the thread frees it */
        pthread_mutex_unlock(&g->mu);
        return stopped ? -1 : EAI_AGAIN;
    }
    int err = g->err;
    *res = g->res;
    g->res = NULL;
    pthread_mutex_unlock(&g->mu);
    gai_call_free(g);
    return err;
}

/* the host's addresses: an IP literal, else getaddrinfo within the deadline */
static int host_addrs(const ir_lookup_url *u, uint64_t deadline, const atomic_int *stop,
                      struct sockaddr_storage *out, socklen_t *lens, int cap, int *n)
{
    iroh_socket_addr ip;
    memset(&ip, 0, sizeof ip);
    ip.port = u->port;
    if (inet_pton(AF_INET, u->host, ip.ip) == 1)
        ip.family = 4;
    else if (inet_pton(AF_INET6, u->host, ip.ip) == 1)
        ip.family = 6;
    if (ip.family) {
        *n = ir_sockaddr_from_socket_addr(&ip, &out[0], &lens[0]) == 0;
        return *n ? IROH_OK : ir_fail(IROH_ERR_INVALID_ADDR, "bad address %s", u->host);
    }
    struct addrinfo *res = NULL;
    int err = ir_lookup_getaddrinfo(u->host, u->port, SOCK_STREAM, AI_ADDRCONFIG, deadline,
                                    stop, &res);
    if (err == EAI_AGAIN && !res && ir_now_ns() >= deadline)
        return ir_fail(IROH_ERR_TIMEOUT, "cannot resolve %s: no answer in time", u->host);
    if (err == -1)
        return ir_fail(IROH_ERR_TIMEOUT, "cannot resolve %s: stopped", u->host);
    if (err)
        return ir_fail(IROH_ERR_IO, "cannot resolve %s: %s", u->host, gai_strerror(err));
    *n = 0;
    for (struct addrinfo *ai = res; ai && *n < cap; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        memcpy(&out[*n], ai->ai_addr, ai->ai_addrlen);
        lens[(*n)++] = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    return *n ? IROH_OK : ir_fail(IROH_ERR_IO, "%s has no address", u->host);
}

static int tcp_connect(const ir_lookup_url *u, uint64_t deadline, const atomic_int *stop, int *fd_out)
{
    struct sockaddr_storage addrs[8];
    socklen_t lens[8];
    int n = 0;
    int rc = host_addrs(u, deadline, stop, addrs, lens, 8, &n);
    if (rc != IROH_OK)
        return rc;
    char why[160] = "no address";
    for (int i = 0; i < n; i++) {
        rc = ir_lookup_tcp_connect(&addrs[i], lens[i], deadline, stop, fd_out, why, sizeof why);
        if (rc == IROH_OK)
            return IROH_OK;
        if (rc == IROH_ERR_TIMEOUT)
            break;
    }
    return ir_fail(IROH_ERR_IO, "cannot connect to %s:%u (%s)", u->host, u->port, why);
}

/* the stream: plain TCP or TLS over it */
typedef struct conn {
    int fd;
    ir_tls_stream *tls;
    uint64_t deadline;
    const atomic_int *stop;
} conn;

static int conn_write(conn *c, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t n;
        if (c->tls) {
            n = ir_tls_stream_write(c->tls, p, len);
            if (n == IR_TLS_STREAM_AGAIN) {
                if (!ir_lookup_wait_fd(c->fd, ir_tls_stream_poll_events(c->tls), c->deadline, c->stop))
                    return ir_fail(IROH_ERR_TIMEOUT, "sending the request timed out");
                continue;
            }
            if (n < 0)
                return (int)n;
        } else {
            n = send(c->fd, p, len, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                if (!ir_lookup_wait_fd(c->fd, POLLOUT, c->deadline, c->stop))
                    return ir_fail(IROH_ERR_TIMEOUT, "sending the request timed out");
                continue;
            }
            if (n < 0)
                return ir_fail(IROH_ERR_IO, "send: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
    }
    return IROH_OK;
}

/* > 0 bytes, 0 at the end, < 0 an error */
static ssize_t conn_read(conn *c, uint8_t *buf, size_t cap)
{
    for (;;) {
        ssize_t n;
        if (c->tls) {
            n = ir_tls_stream_read(c->tls, buf, cap);
            if (n == IR_TLS_STREAM_AGAIN) {
                if (ir_tls_stream_pending(c->tls))
                    continue;
                if (!ir_lookup_wait_fd(c->fd, ir_tls_stream_poll_events(c->tls), c->deadline, c->stop))
                    return ir_fail(IROH_ERR_TIMEOUT, "no answer in time");
                continue;
            }
            return n;
        }
        n = recv(c->fd, buf, cap, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!ir_lookup_wait_fd(c->fd, POLLIN, c->deadline, c->stop))
                return ir_fail(IROH_ERR_TIMEOUT, "no answer in time");
            continue;
        }
        if (n < 0)
            return ir_fail(IROH_ERR_IO, "recv: %s", strerror(errno));
        return n;
    }
}

void ir_lookup_http_reader_init(ir_lookup_http_reader *r, ir_lookup_http_answer *ans)
{
    ir_http_reader_init(&r->head);
    r->state = 0;
    r->clen = -1;
    r->ans = ans;
    ans->status = 0;
    ans->len = 0;
}

/* the body bytes of data: up to Content-Length, at most the answer's room */
static int take_body(ir_lookup_http_reader *r, const uint8_t *data, size_t len)
{
    ir_lookup_http_answer *ans = r->ans;
    if (r->clen >= 0 && (uint64_t)ans->len + len > (uint64_t)r->clen)
        len = (size_t)r->clen - ans->len; /* what follows the body is not ours */
    if (ans->len + len > sizeof ans->body) {
        r->state = 3;
        return ir_fail(IROH_ERR_TOO_LONG, "the answer's body is over %zu bytes", sizeof ans->body);
    }
    memcpy(ans->body + ans->len, data, len);
    ans->len += len;
    if (r->clen >= 0 && ans->len == (size_t)r->clen)
        r->state = 2;
    return r->state == 2;
}

int ir_lookup_http_reader_feed(ir_lookup_http_reader *r, const uint8_t *data, size_t len)
{
    if (r->state == 2)
        return 1;
    if (r->state == 3)
        return ir_fail(IROH_ERR_STATE, "the answer was bad");
    if (r->state == 1)
        return take_body(r, data, len);
    size_t used = 0;
    int f = ir_http_reader_feed(&r->head, data, len, &used);
    if (f < 0) {
        r->state = 3;
        return ir_fail(IROH_ERR_TOO_LONG, "the answer's head is too large");
    }
    if (f == 0)
        return 0;
    ir_http_response resp;
    if (ir_http_parse_response(r->head.buf, r->head.len, &resp) != IROH_OK ||
        resp.status < 100 || resp.status > 599) { /* RFC 9110 15: 100 to 599 */
        r->state = 3;
        return ir_fail(IROH_ERR_IO, "a malformed HTTP answer");
    }
    r->ans->status = resp.status;
    const ir_http_header *h = ir_http_find(resp.headers, resp.n_headers, "content-length");
    if (ir_http_find(resp.headers, resp.n_headers, "transfer-encoding")) {
        r->state = 3; /* the pkarr relay sends a length; chunked bodies are not read */
        return ir_fail(IROH_ERR_IO, "a Transfer-Encoding answer");
    }
    if (h) {
        long v = 0;
        for (size_t i = 0; i < h->value_len; i++) {
            char ch = h->value[i];
            if (ch < '0' || ch > '9' || v > 100000000) {
                r->state = 3;
                return ir_fail(IROH_ERR_IO, "a malformed Content-Length");
            }
            v = v * 10 + (ch - '0');
        }
        if (h->value_len == 0) {
            r->state = 3;
            return ir_fail(IROH_ERR_IO, "a malformed Content-Length");
        }
        r->clen = v;
    }
    r->state = 1;
    if (r->clen == 0 || (resp.status >= 100 && resp.status < 200) || resp.status == 204 ||
        resp.status == 304) {
        r->state = 2; /* no body (RFC 9112 6.3) */
        return 1;
    }
    return take_body(r, data + used, len - used);
}

int ir_lookup_http_reader_eof(ir_lookup_http_reader *r)
{
    if (r->state == 2)
        return 1;
    if (r->state == 1 && r->clen < 0) {
        r->state = 2; /* the body ends with the connection */
        return 1;
    }
    const char *why = r->state == 0 ? "the server closed before answering"
                                    : "the answer ended early";
    r->state = 3;
    return ir_fail(IROH_ERR_IO, "%s", why);
}

static int exchange(conn *c, const ir_lookup_url *u, const char *method, const uint8_t *body,
                    size_t body_len, ir_lookup_http_answer *ans)
{
    char head[1600];
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: iroh-c/" IROH_VERSION_STRING
                      "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      method, u->path, u->host_hdr, body_len);
    if (hl < 0 || (size_t)hl >= sizeof head)
        return ir_fail(IROH_ERR_INVALID_ADDR, "the URL is too long");
    int rc = conn_write(c, (const uint8_t *)head, (size_t)hl);
    if (rc == IROH_OK && body_len)
        rc = conn_write(c, body, body_len);
    if (rc != IROH_OK)
        return rc;
    ir_lookup_http_reader *r = malloc(sizeof *r);
    if (!r)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    ir_lookup_http_reader_init(r, ans);
    uint8_t buf[4096];
    for (rc = 0; rc == 0;) {
        ssize_t n = conn_read(c, buf, sizeof buf);
        if (n < 0)
            rc = (int)n;
        else if (n == 0)
            rc = ir_lookup_http_reader_eof(r);
        else
            rc = ir_lookup_http_reader_feed(r, buf, (size_t)n);
    }
    free(r);
    return rc < 0 ? rc : IROH_OK;
}

int ir_lookup_http(const char *url, const char *method, const uint8_t *body, size_t body_len,
                   const char *ca_file, uint64_t deadline, const atomic_int *stop,
                   ir_lookup_http_answer *ans)
{
    ir_lookup_url *u = malloc(sizeof *u);
    if (!u)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    if (ir_lookup_url_split(url, u) != 0) {
        free(u);
        return ir_fail(IROH_ERR_INVALID_ADDR, "not an http(s) URL: %s", url);
    }
    conn c = {.fd = -1, .deadline = deadline, .stop = stop};
    int rc = tcp_connect(u, deadline, stop, &c.fd);
    if (rc == IROH_OK && u->tls) {
        ir_tls_stream_config tc;
        memset(&tc, 0, sizeof tc);
        tc.server_name = u->host;
        tc.ca_file = ca_file;
        rc = ir_tls_stream_new(c.fd, &tc, &c.tls);
        while (rc == IROH_OK) {
            int h = ir_tls_stream_handshake(c.tls);
            if (h == IROH_OK)
                break;
            if (h < 0) {
                rc = h;
                break;
            }
            if (!ir_lookup_wait_fd(c.fd, ir_tls_stream_poll_events(c.tls), deadline, stop))
                rc = ir_fail(IROH_ERR_TIMEOUT, "TLS handshake with %s timed out", u->host);
        }
    }
    if (rc == IROH_OK)
        rc = exchange(&c, u, method, body, body_len, ans);
    ir_tls_stream_free(c.tls);
    if (c.fd >= 0)
        close(c.fd);
    free(u);
    return rc;
}

int ir_lookup_pkarr_answer(const uint8_t id[32], const ir_lookup_http_answer *ans,
                           ir_endpoint_info *out)
{
    if (ans->status == 404)
        return 0;
    if (ans->status != 200)
        return ir_fail(IROH_ERR_IO, "HTTP %d", ans->status);
    ir_pkarr_packet *p = malloc(sizeof *p);
    if (!p)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    int rc = ir_pkarr_from_relay_payload(id, ans->body, ans->len, p);
    if (rc == IROH_OK)
        rc = ir_endpoint_info_from_dns(id, NULL, p->dns, p->dns_len, out);
    free(p);
    if (rc < 0)
        return rc;
    return rc > 0 && (out->relay[0] || out->n_addrs);
}
