/* The DNS server's shell: sockets, one epoll loop, clocks. See dnsserver.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "net/netaddr.h"
#include "net/tcp.h"
#include "net/udp.h"

#define MAX_CONNS 1024
/* DNS over TCP may hold at most this many of them, so that a client keeping DNS
 * connections open cannot shut the pkarr relay, DoH and metrics out */
#define MAX_DNS_TCP_CONNS (MAX_CONNS * 3 / 4)
/* one client IP (an IPv6 /64 counts as one) may hold at most this many connections of
 * each kind (DNS over TCP, HTTP, metrics), so that one host cannot take every slot */
#define MAX_CONNS_PER_IP 128
#define CONN_TIMEOUT_NS (10ULL * 1000000000)  /* a request (or an idle DNS TCP connection) */
#define MAX_PENDING_OUT (256 * 1024)           /* DNS TCP answers not yet read: stop reading */

/* UDP: recvmmsg / sendmmsg batches; queries over UDP_IN bytes are junk anyway, answers
 * over UDP never exceed IR_DNSS_UDP_MAX */
#define UDP_BATCH 32
#define UDP_IN 4096
#define UDP_OUT IR_DNSS_UDP_MAX
typedef struct udp_batch {
    uint8_t in[UDP_BATCH][UDP_IN];
    uint8_t out[UDP_BATCH][UDP_OUT];
    struct sockaddr_storage from[UDP_BATCH];
    struct mmsghdr rm[UDP_BATCH], sm[UDP_BATCH];
    struct iovec riov[UDP_BATCH], siov[UDP_BATCH];
} udp_batch;

enum { K_UDP = 1, K_DNS_LISTEN, K_HTTP_LISTEN, K_METRICS_LISTEN, K_STOP, K_DNS_TCP, K_HTTP, K_METRICS };

typedef struct conn {
    int kind; /* first member: epoll data points at it as at the listeners' tags */
    int fd;
    uint8_t ip[16];
    uint64_t deadline;
    int closing;             /* write what is queued, then close */
    int reading_paused;
    int more;                /* unread bytes may be left: serve again without an event */
    /* DNS over TCP: length-prefixed messages */
    uint8_t *in;
    size_t in_len;
    /* HTTP */
    ir_http_reader *head;
    ir_http_request req;
    int have_head;
    uint8_t *body;
    size_t body_len, body_have;
    ir_buf out;
    size_t out_off;
} conn;

struct ir_dnss_server {
    ir_dnss_store *store;
    ir_dnss *core;
    int epfd, efd;
    int udp, dns_l, http_l, metrics_l;
    int tags[8];
    iroh_socket_addr dns_addr, http_addr, metrics_addr;
    conn *conns[MAX_CONNS];
    size_t n_conns;
    size_t n_dns_tcp; /* of them DNS over TCP */
    /* out of file descriptors (EMFILE below MAX_CONNS, ENFILE): the listeners are not
     * watched until then (a readable listener we cannot accept from would wake epoll
     * at once, again and again), or until a connection closes */
    uint64_t accept_paused_until;
    volatile int stop;
    uint8_t *abuf;
    udp_batch *udp_buf;
};

static uint64_t clock_of(clockid_t id, uint64_t div)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) / div;
}
static uint64_t mono_ns(void) { return clock_of(CLOCK_MONOTONIC, 1); }
static uint64_t unix_us(void) { return clock_of(CLOCK_REALTIME, 1000); }

static void ip16_of(const struct sockaddr_storage *ss, uint8_t ip[16])
{
    iroh_socket_addr a;
    ir_socket_addr_from_sockaddr(&a, (const struct sockaddr *)ss);
    memset(ip, 0, 16);
    if (a.family == 4) {
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, a.ip, 4);
    } else {
        memcpy(ip, a.ip, 16);
    }
}

static int watch(ir_dnss_server *srv, int fd, uint32_t events, void *p)
{
    struct epoll_event ev = {.events = events, .data.ptr = p};
    return epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int ir_dnss_server_new(const ir_dnss_config *cfg, ir_dnss_server **out)
{
    *out = NULL;
    ir_dnss_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    srv->epfd = srv->efd = srv->udp = srv->dns_l = srv->http_l = srv->metrics_l = -1;
    int rc = ir_dnss_store_open(cfg->db_path, cfg->cache_capacity, &srv->store);
    if (rc == IROH_OK)
        rc = ir_dnss_new(cfg, srv->store, &srv->core);
    if (rc != IROH_OK)
        goto fail;
    srv->udp_buf = malloc(sizeof *srv->udp_buf);
    srv->abuf = malloc(65536);
    srv->epfd = epoll_create1(EPOLL_CLOEXEC);
    srv->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!srv->udp_buf || !srv->abuf || srv->epfd < 0 || srv->efd < 0) {
        rc = ir_fail(IROH_ERR_IO, "setup: %s", strerror(errno));
        goto fail;
    }
    iroh_socket_addr a;
    const char *dl = cfg->dns_listen ? cfg->dns_listen : "127.0.0.1:5300";
    if (iroh_socket_addr_parse(dl, &a) != IROH_OK) {
        rc = ir_fail(IROH_ERR_INVALID_ADDR, "invalid listen address '%s'", dl);
        goto fail;
    }
    /* TCP on the port UDP got. With port 0 the kernel picks UDP's, which TCP may have in
     * use: then another pick, a few times. */
    for (int attempt = 0;; attempt++) {
        if ((srv->udp = ir_udp_open(&a, &srv->dns_addr)) < 0) {
            rc = IROH_ERR_IO;
            goto fail;
        }
        char text[64];
        iroh_socket_addr_to_string(&srv->dns_addr, text, sizeof text);
        iroh_socket_addr bound;
        if ((rc = srv->dns_l = ir_tcp_listen(text, 1024, &bound)) >= 0)
            break;
        if (a.port != 0 || attempt == 20)
            goto fail;
        close(srv->udp);
        srv->udp = -1;
    }
    if (cfg->http_listen && (rc = srv->http_l = ir_tcp_listen(cfg->http_listen, 1024, &srv->http_addr)) < 0)
        goto fail;
    if (cfg->metrics_listen && (rc = srv->metrics_l = ir_tcp_listen(cfg->metrics_listen, 64, &srv->metrics_addr)) < 0)
        goto fail;
    srv->tags[0] = K_UDP;
    srv->tags[1] = K_DNS_LISTEN;
    srv->tags[2] = K_HTTP_LISTEN;
    srv->tags[3] = K_METRICS_LISTEN;
    srv->tags[4] = K_STOP;
    if (watch(srv, srv->udp, EPOLLIN, &srv->tags[0]) < 0 || watch(srv, srv->dns_l, EPOLLIN, &srv->tags[1]) < 0 ||
        (srv->http_l >= 0 && watch(srv, srv->http_l, EPOLLIN, &srv->tags[2]) < 0) ||
        (srv->metrics_l >= 0 && watch(srv, srv->metrics_l, EPOLLIN, &srv->tags[3]) < 0) ||
        watch(srv, srv->efd, EPOLLIN, &srv->tags[4]) < 0) {
        rc = ir_fail(IROH_ERR_IO, "epoll: %s", strerror(errno));
        goto fail;
    }
    *out = srv;
    return IROH_OK;
fail:
    ir_dnss_server_free(srv);
    return rc < 0 ? rc : IROH_ERR_IO;
}

void ir_dnss_server_addrs(const ir_dnss_server *srv, iroh_socket_addr *dns, iroh_socket_addr *http,
                          iroh_socket_addr *metrics)
{
    if (dns)
        *dns = srv->dns_addr;
    if (http)
        *http = srv->http_addr;
    if (metrics)
        *metrics = srv->metrics_addr;
}

void ir_dnss_server_stop(ir_dnss_server *srv)
{
    srv->stop = 1;
    uint64_t one = 1;
    ssize_t w = write(srv->efd, &one, sizeof one);
    (void)w;
}

void ir_dnss_server_get_stats(const ir_dnss_server *srv, ir_dnss_stats *out)
{
    ir_dnss_get_stats(srv->core, out);
}

static void accept_resume(ir_dnss_server *srv);

static void conn_free(ir_dnss_server *srv, conn *c)
{
    epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    accept_resume(srv); /* a descriptor is free again */
    free(c->in);
    free(c->head);
    free(c->body);
    ir_buf_free(&c->out);
    for (size_t i = 0; i < srv->n_conns; i++)
        if (srv->conns[i] == c) {
            srv->conns[i] = srv->conns[--srv->n_conns];
            srv->n_dns_tcp -= c->kind == K_DNS_TCP;
            break;
        }
    free(c);
}

void ir_dnss_server_free(ir_dnss_server *srv)
{
    if (!srv)
        return;
    while (srv->n_conns)
        conn_free(srv, srv->conns[0]);
    int fds[] = {srv->udp, srv->dns_l, srv->http_l, srv->metrics_l, srv->efd, srv->epfd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    ir_dnss_free(srv->core);
    ir_dnss_store_free(srv->store);
    free(srv->udp_buf);
    free(srv->abuf);
    free(srv);
}

/* ---- UDP ------------------------------------------------------------------------------ */

static void udp_ready(ir_dnss_server *srv)
{
    uint64_t now = unix_us();
    udp_batch *u = srv->udp_buf;
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < UDP_BATCH; i++) {
            u->riov[i] = (struct iovec){.iov_base = u->in[i], .iov_len = UDP_IN};
            u->rm[i].msg_hdr = (struct msghdr){.msg_name = &u->from[i], .msg_namelen = sizeof u->from[i],
                                               .msg_iov = &u->riov[i], .msg_iovlen = 1};
        }
        int got = recvmmsg(srv->udp, u->rm, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0)
            return;
        unsigned n_out = 0;
        for (int i = 0; i < got; i++) {
            size_t alen;
            /* a datagram over UDP_IN bytes arrives cut (MSG_TRUNC): junk, answered as such */
            if (!ir_dnss_dns(srv->core, IR_DNSS_UDP, u->in[i], u->rm[i].msg_len, now, u->out[n_out],
                             UDP_OUT, &alen))
                continue;
            u->siov[n_out] = (struct iovec){.iov_base = u->out[n_out], .iov_len = alen};
            u->sm[n_out].msg_hdr = (struct msghdr){.msg_name = &u->from[i], .msg_namelen = u->rm[i].msg_hdr.msg_namelen,
                                                   .msg_iov = &u->siov[n_out], .msg_iovlen = 1};
            n_out++;
        }
        if (n_out)
            (void)sendmmsg(srv->udp, u->sm, n_out, MSG_DONTWAIT); /* a full socket drops: UDP */
        if (got < UDP_BATCH)
            return;
    }
}

/* ---- TCP connections ------------------------------------------------------------------- */

#define ACCEPT_PAUSE_NS (100ULL * 1000000)

/* the listeners watched (on) or not (off) */
static void listeners_watch(ir_dnss_server *srv, int on)
{
    int fds[3] = {srv->dns_l, srv->http_l, srv->metrics_l};
    for (int i = 0; i < 3; i++) {
        struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = &srv->tags[1 + i]};
        if (fds[i] >= 0)
            epoll_ctl(srv->epfd, EPOLL_CTL_MOD, fds[i], &ev);
    }
}

static void accept_resume(ir_dnss_server *srv)
{
    if (srv->accept_paused_until) {
        srv->accept_paused_until = 0;
        listeners_watch(srv, 1);
    }
}

/* the open connections of this kind from ip's host (IPv4) or /64 (IPv6) */
static size_t conns_of(const ir_dnss_server *srv, const uint8_t ip[16], int kind)
{
    static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    size_t cmp = memcmp(ip, v4, 12) == 0 ? 16 : 8;
    size_t n = 0;
    for (size_t i = 0; i < srv->n_conns; i++)
        n += srv->conns[i]->kind == kind && memcmp(srv->conns[i]->ip, ip, cmp) == 0;
    return n;
}

static void accept_ready(ir_dnss_server *srv, int lfd, int kind)
{
    for (int k = 0; k < 64; k++) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        int fd = accept4(lfd, (struct sockaddr *)&from, &fl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
            /* the clients wait in the backlog until a descriptor frees */
            srv->accept_paused_until = mono_ns() + ACCEPT_PAUSE_NS;
            listeners_watch(srv, 0);
            return;
        }
        if (fd < 0)
            return;
        uint8_t ip[16];
        ip16_of(&from, ip);
        int room = srv->n_conns < MAX_CONNS &&
                   (kind != K_DNS_TCP || srv->n_dns_tcp < MAX_DNS_TCP_CONNS) &&
                   conns_of(srv, ip, kind) < MAX_CONNS_PER_IP;
        conn *c = room ? calloc(1, sizeof *c) : NULL;
        if (c && kind != K_DNS_TCP && !(c->head = malloc(sizeof *c->head))) {
            free(c);
            c = NULL;
        }
        if (!c || watch(srv, fd, EPOLLIN | EPOLLOUT | EPOLLET, c) < 0) {
            if (c)
                free(c->head);
            free(c);
            close(fd);
            ir_dnss_count_tcp(srv->core, 0);
            continue;
        }
        ir_dnss_count_tcp(srv->core, 1);
        c->kind = kind;
        c->fd = fd;
        memcpy(c->ip, ip, 16);
        c->deadline = mono_ns() + CONN_TIMEOUT_NS;
        if (c->head)
            ir_http_reader_init(c->head);
        ir_buf_init(&c->out);
        srv->conns[srv->n_conns++] = c;
        srv->n_dns_tcp += kind == K_DNS_TCP;
    }
}

static void http_finish(ir_dnss_server *srv, conn *c)
{
    if (c->kind == K_METRICS) {
        int get = c->req.method_len == 3 && memcmp(c->req.method, "GET", 3) == 0;
        int path = (c->req.path_len == 8 && memcmp(c->req.path, "/metrics", 8) == 0) ||
                   (c->req.path_len == 1 && c->req.path[0] == '/');
        if (!get || !path) {
            ir_dnss_http_error(srv->core, get ? 404 : 405, NULL, &c->out);
        } else {
            ir_dnss_stats st;
            ir_dnss_get_stats(srv->core, &st);
            int n = ir_dnss_metrics_format(&st, NULL, 0);
            char *body = n > 0 ? malloc((size_t)n + 1) : NULL;
            if (!body) {
                ir_dnss_http_error(srv->core, 500, "out of memory", &c->out);
            } else {
                ir_dnss_metrics_format(&st, body, (size_t)n + 1);
                char head[200];
                int h = snprintf(head, sizeof head,
                                 "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; "
                                 "version=1.0.0; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
                                 n);
                ir_buf_append(&c->out, head, (size_t)h);
                ir_buf_append(&c->out, body, (size_t)n);
                free(body);
            }
        }
    } else {
        ir_dnss_http(srv->core, &c->req, c->body, c->body_len, c->ip, mono_ns(), unix_us(), &c->out);
    }
    c->closing = 1;
}

/* Bytes read on an HTTP connection. Returns -1 to close at once. */
static int http_input(ir_dnss_server *srv, conn *c, const uint8_t *data, size_t len)
{
    if (c->closing)
        return 0; /* after the answer: ignored */
    if (!c->have_head) {
        size_t used = 0;
        int rc = ir_http_reader_feed(c->head, data, len, &used);
        if (rc < 0) {
            ir_dnss_http_error(srv->core, 431, "request head too large", &c->out);
            c->closing = 1;
            return 0;
        }
        if (rc == 0)
            return 0;
        c->have_head = 1;
        if (ir_http_parse_request(c->head->buf, c->head->len, &c->req) != IROH_OK) {
            ir_dnss_http_error(srv->core, 400, "malformed request", &c->out);
            c->closing = 1;
            return 0;
        }
        int st = ir_dnss_http_body_len(&c->req, &c->body_len);
        if (st) {
            ir_dnss_http_error(srv->core, st,
                               st == 413 ? "body too large" : st == 411 ? "a Content-Length is needed" : "bad Content-Length",
                               &c->out);
            c->closing = 1;
            return 0;
        }
        if (c->body_len && !(c->body = malloc(c->body_len))) {
            ir_dnss_http_error(srv->core, 503, "out of memory", &c->out);
            c->closing = 1;
            return 0;
        }
        data += used;
        len -= used;
    }
    size_t take = c->body_len - c->body_have < len ? c->body_len - c->body_have : len;
    memcpy(c->body + c->body_have, data, take);
    c->body_have += take;
    if (c->body_have == c->body_len)
        http_finish(srv, c);
    return 0;
}

/* Bytes read on a DNS TCP connection: every complete message is answered in order. */
static int dns_tcp_input(ir_dnss_server *srv, conn *c, const uint8_t *data, size_t len)
{
    if (!c->in && !(c->in = malloc(2 + 65535)))
        return -1;
    while (len) {
        size_t need = c->in_len < 2 ? 2 : 2 + ((size_t)c->in[0] << 8 | c->in[1]);
        size_t take = need - c->in_len < len ? need - c->in_len : len;
        memcpy(c->in + c->in_len, data, take);
        c->in_len += take;
        data += take;
        len -= take;
        if (c->in_len < 2 || c->in_len < 2 + ((size_t)c->in[0] << 8 | c->in[1]))
            continue;
        size_t alen;
        if (ir_dnss_dns(srv->core, IR_DNSS_TCP, c->in + 2, c->in_len - 2, unix_us(), srv->abuf, 65535, &alen)) {
            uint8_t l2[2] = {(uint8_t)(alen >> 8), (uint8_t)alen};
            ir_buf_append(&c->out, l2, 2);
            ir_buf_append(&c->out, srv->abuf, alen);
        }
        c->in_len = 0;
        c->deadline = mono_ns() + CONN_TIMEOUT_NS;
    }
    return 0;
}

/* Writes what is queued; 1 when everything is written, 0 when the socket is full, -1 on
 * an error. */
static int flush(conn *c)
{
    if (c->out.oom)
        return -1;
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        c->out_off += (size_t)n;
    }
    c->out.len = c->out_off = 0;
    return 1;
}

/* Reads (at most READ_ROUNDS buffers, so that one busy client cannot hold the loop),
 * answers and writes. Edge-triggered: a connection left with unread bytes is marked
 * `more` and served again after the next epoll_wait, which then does not sleep. */
#define READ_ROUNDS 16
static void conn_event(ir_dnss_server *srv, conn *c, uint32_t events)
{
    int gone = (events & (EPOLLERR | EPOLLHUP)) != 0;
    uint8_t buf[16384];
    c->more = 0;
    for (int round = 0; !gone && !c->closing; round++) {
        if (c->reading_paused)
            break;
        if (round == READ_ROUNDS) {
            c->more = 1;
            break;
        }
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            /* the peer is done sending: keep the connection only to deliver an answer */
            gone = c->out.len == c->out_off && (!c->closing || c->kind == K_DNS_TCP || n < 0);
            if (!gone && !c->closing)
                gone = c->kind != K_DNS_TCP; /* an HTTP request cut short */
            if (!gone)
                c->closing = 1;
            break;
        }
        if (n < 0)
            break;
        int rc = c->kind == K_DNS_TCP ? dns_tcp_input(srv, c, buf, (size_t)n) : http_input(srv, c, buf, (size_t)n);
        if (rc < 0) {
            gone = 1;
            break;
        }
        if (c->out.len - c->out_off > MAX_PENDING_OUT)
            c->reading_paused = 1; /* a client that sends queries and reads no answers */
    }
    if (!gone) {
        int f = flush(c);
        if (f < 0 || (f == 1 && c->closing))
            gone = 1;
        else if (f == 1 && c->reading_paused) {
            c->reading_paused = 0; /* everything written: read again (next round) */
            c->more = 1;
        }
    }
    if (gone)
        conn_free(srv, c);
}

static void timers(ir_dnss_server *srv)
{
    uint64_t now = mono_ns();
    for (size_t i = 0; i < srv->n_conns;) {
        conn *c = srv->conns[i];
        if (now >= c->deadline) {
            if (c->kind != K_DNS_TCP && !c->closing && c->out.len == 0) {
                ir_dnss_http_error(srv->core, 408, "request not complete in time", &c->out);
                flush(c);
            }
            conn_free(srv, c); /* moves the last one here */
            continue;
        }
        i++;
    }
    ir_dnss_tick(srv->core, unix_us());
}

int ir_dnss_server_run(ir_dnss_server *srv)
{
    struct epoll_event evs[64];
    uint64_t next_timers = 0;
    while (!srv->stop) {
        int busy = 0;
        for (size_t i = 0; i < srv->n_conns && !busy; i++)
            busy = srv->conns[i]->more;
        int n = epoll_wait(srv->epfd, evs, 64, busy ? 0 : 250);
        if (n < 0 && errno != EINTR)
            return ir_fail(IROH_ERR_IO, "epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            int kind = *(int *)evs[i].data.ptr;
            switch (kind) {
            case K_UDP: udp_ready(srv); break;
            case K_DNS_LISTEN: accept_ready(srv, srv->dns_l, K_DNS_TCP); break;
            case K_HTTP_LISTEN: accept_ready(srv, srv->http_l, K_HTTP); break;
            case K_METRICS_LISTEN: accept_ready(srv, srv->metrics_l, K_METRICS); break;
            case K_STOP: break;
            default: conn_event(srv, evs[i].data.ptr, evs[i].events); break;
            }
        }
        for (size_t i = 0; i < srv->n_conns;) { /* the connections left with more to read */
            conn *c = srv->conns[i];
            size_t before = srv->n_conns;
            if (c->more)
                conn_event(srv, c, 0);
            if (srv->n_conns == before)
                i++; /* else c was freed and the last one moved here */
        }
        uint64_t now = mono_ns();
        if (srv->accept_paused_until && now >= srv->accept_paused_until)
            accept_resume(srv);
        if (now >= next_timers) {
            timers(srv);
            next_timers = now + 250000000ULL;
        }
    }
    return IROH_OK;
}
