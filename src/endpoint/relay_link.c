#include "endpoint/relay_link.h"
#include "endpoint/relay_link_core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "net/udp.h"
#include "relay/client.h"
#include "relay/handshake.h"
#include "relay/tls_stream.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define DNS_TIMEOUT_NS (3 * NS_PER_S)
#define DNS_POLL_NS (10 * NS_PER_MS)
#define CONNECT_TIMEOUT_NS (1500 * NS_PER_MS) /* per TCP attempt, as iroh */
#define MAX_ADDRS 8
#define TLS_TIMEOUT_NS (10 * NS_PER_S)

void ir_netaddr_relay(ir_netaddr *out, unsigned idx, const uint8_t id[32])
{
    memset(out, 0, sizeof *out);
    out->len = IR_NETADDR_RELAY_LEN;
    out->data[0] = IR_NETADDR_RELAY;
    out->data[1] = (uint8_t)(idx >> 8);
    out->data[2] = (uint8_t)idx;
    memcpy(out->data + 3, id, 32);
}

int ir_netaddr_is_relay(const ir_netaddr *a, unsigned *idx, const uint8_t **id)
{
    if (a->len != IR_NETADDR_RELAY_LEN || a->data[0] != IR_NETADDR_RELAY)
        return 0;
    if (idx)
        *idx = (unsigned)a->data[1] << 8 | a->data[2];
    if (id)
        *id = a->data + 3;
    return 1;
}

/* ---- name resolution on a helper thread ------------------------------------------- */

typedef struct dns_job {
    atomic_int refs; /* the link and the thread */
    atomic_int done;
    char host[256];
    char port[8];
    struct addrinfo *res;
    int err;
} dns_job;

static void dns_job_put(dns_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) == 1) {
        if (j->res)
            freeaddrinfo(j->res);
        free(j);
    }
}

static void *dns_thread(void *arg)
{
    dns_job *j = arg;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    j->err = getaddrinfo(j->host, j->port, &hints, &j->res);
    atomic_store(&j->done, 1);
    dns_job_put(j);
    return NULL;
}

/* ---- the link: the I/O of the core's attempts ----------------------------------------- */

typedef enum iostate {
    IO_NONE = 0,   /* no transport */
    IO_RESOLVING,  /* the name is being resolved */
    IO_CONNECTING, /* TCP connect in progress */
    IO_TLS,        /* TLS handshake (https relays) */
    IO_UP,         /* the core's relay client runs over it */
} iostate;

struct ir_rlink {
    ir_rlink_config cfg;
    ir_rlc *core;
    char url[512];
    char host[256];     /* without brackets for IPv6 */
    char host_hdr[300]; /* Host header: as in the URL, ":port" only if explicit */
    char path[512];     /* "/relay" plus "?query" */
    uint16_t port;
    int tls;
    char *token;
    iostate io;
    uint64_t io_attempt; /* the core's attempt the transport belongs to */
    /* resolution and connecting */
    dns_job *dns;
    uint64_t deadline; /* of the current step */
    uint64_t dns_check_at;
    struct sockaddr_storage addrs[MAX_ADDRS];
    socklen_t addr_lens[MAX_ADDRS];
    int naddrs, next_addr;
    int fd;
    ir_tls_stream *tls_s;
    size_t tls_held; /* bytes of a TLS write that must be offered again */
    char *ca_file;
    char attempt_err[200]; /* what went wrong so far in the current attempt */
    uint8_t rbuf[65536];
};

/* Splits a normalized URL: scheme://[userinfo@]host[:port][/path][?query][#fragment].
 * The path is replaced by /relay (spec 1.1); the query is kept. */
static int split_url(ir_rlink *l, const char *url)
{
    const char *p = strstr(url, "://");
    if (!p)
        return -1;
    size_t slen = (size_t)(p - url);
    int plain = (slen == 4 && memcmp(url, "http", 4) == 0) || (slen == 2 && memcmp(url, "ws", 2) == 0);
    l->tls = !plain;
    const char *auth = p + 3;
    const char *end = auth + strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', (size_t)(end - auth));
    if (at)
        auth = at + 1;
    const char *hend;
    const char *port = NULL;
    if (*auth == '[') {
        const char *rb = memchr(auth, ']', (size_t)(end - auth));
        if (!rb)
            return -1;
        if ((size_t)(rb - auth - 1) >= sizeof l->host)
            return -1;
        memcpy(l->host, auth + 1, (size_t)(rb - auth - 1));
        l->host[rb - auth - 1] = 0;
        hend = rb + 1;
        if (hend < end && *hend == ':')
            port = hend + 1;
        else if (hend != end)
            return -1;
    } else {
        const char *colon = memchr(auth, ':', (size_t)(end - auth));
        hend = colon ? colon : end;
        if ((size_t)(hend - auth) >= sizeof l->host || hend == auth)
            return -1;
        memcpy(l->host, auth, (size_t)(hend - auth));
        l->host[hend - auth] = 0;
        if (colon)
            port = colon + 1;
    }
    if (port && port < end) {
        unsigned long v = 0;
        for (const char *c = port; c < end; c++) {
            if (*c < '0' || *c > '9')
                return -1;
            v = v * 10 + (unsigned long)(*c - '0');
            if (v > 65535)
                return -1;
        }
        l->port = (uint16_t)v;
    } else {
        port = NULL;
        l->port = l->tls ? 443 : 80;
    }
    /* Host header: the authority without userinfo, as written */
    const char *hstart = at ? at + 1 : p + 3;
    if ((size_t)(end - hstart) >= sizeof l->host_hdr)
        return -1;
    memcpy(l->host_hdr, hstart, (size_t)(end - hstart));
    l->host_hdr[end - hstart] = 0;
    const char *q = strchr(end, '?');
    const char *frag = strchr(end, '#');
    if (q && (!frag || q < frag)) {
        size_t qlen = frag ? (size_t)(frag - q) : strlen(q);
        if (qlen + 7 > sizeof l->path)
            return -1;
        memcpy(l->path, "/relay", 6);
        memcpy(l->path + 6, q, qlen);
        l->path[6 + qlen] = 0;
    } else {
        strcpy(l->path, "/relay");
    }
    return 0;
}

int ir_rlink_new(const ir_rlink_config *cfg, ir_rlink **out)
{
    ir_rlink *l = calloc(1, sizeof *l);
    if (!l)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    l->cfg = *cfg;
    l->fd = -1;
    if (strlen(cfg->url) >= sizeof l->url || split_url(l, cfg->url) != 0) {
        free(l);
        return ir_fail(IROH_ERR_INVALID_ADDR, "cannot dial relay URL %s", cfg->url);
    }
    strcpy(l->url, cfg->url);
    l->cfg.url = l->url;
    if (cfg->auth_token && !(l->token = strdup(cfg->auth_token))) {
        free(l);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    l->cfg.auth_token = l->token;
    if (cfg->ca_file && !(l->ca_file = strdup(cfg->ca_file))) {
        free(l->token);
        free(l);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    l->cfg.ca_file = l->ca_file;
    ir_rlc_config cc;
    memset(&cc, 0, sizeof cc);
    cc.url = l->url;
    cc.idx = cfg->idx;
    cc.key = cfg->key;
    cc.host = l->host_hdr;
    cc.path = l->path;
    cc.auth_token = l->token;
    cc.random = ir_random_bytes;
    cc.recv = cfg->recv;
    cc.recv_ctx = cfg->recv_ctx;
    int rc = ir_rlc_new(&cc, &l->core);
    if (rc != IROH_OK) {
        free(l->ca_file);
        free(l->token);
        free(l);
        return rc;
    }
    *out = l;
    return IROH_OK;
}

static void close_io(ir_rlink *l)
{
    ir_tls_stream_free(l->tls_s);
    l->tls_s = NULL;
    l->tls_held = 0;
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    if (l->dns) {
        dns_job_put(l->dns);
        l->dns = NULL;
    }
    l->io = IO_NONE;
}

void ir_rlink_free(ir_rlink *l)
{
    if (!l)
        return;
    close_io(l);
    ir_rlc_free(l->core);
    free(l->token);
    free(l->ca_file);
    free(l);
}

const char *ir_rlink_url(const ir_rlink *l)
{
    return l->url;
}

int ir_rlink_established(const ir_rlink *l)
{
    return ir_rlc_established(l->core);
}

uint64_t ir_rlink_latency(const ir_rlink *l)
{
    return ir_rlc_latency(l->core);
}

const char *ir_rlink_last_error(const ir_rlink *l)
{
    return ir_rlc_last_error(l->core);
}

const char *ir_rlink_host(const ir_rlink *l)
{
    return l->host;
}

int ir_rlink_is_tls(const ir_rlink *l)
{
    return l->tls;
}

int ir_rlink_remote_ip(const ir_rlink *l, iroh_socket_addr *out)
{
    if (l->io != IO_UP || l->fd < 0)
        return -1;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(l->fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    ir_socket_addr_from_sockaddr(out, (struct sockaddr *)&ss);
    return 0;
}

uint64_t ir_rlink_connects(const ir_rlink *l)
{
    return ir_rlc_connects(l->core);
}

void ir_rlink_counts(const ir_rlink *l, uint64_t *failures, uint64_t *closes)
{
    ir_rlc_counts(l->core, failures, closes);
}

/* The attempt failed before the transport was up: close, and the core backs off. */
static void failed(ir_rlink *l, uint64_t now, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failed(ir_rlink *l, uint64_t now, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    close_io(l);
    ir_rlc_transport_failed(l->core, text, now);
}

static void start_tcp(ir_rlink *l, uint64_t now);

static void start(ir_rlink *l, uint64_t now)
{
    l->naddrs = l->next_addr = 0;
    l->attempt_err[0] = 0; /* each attempt tells its own story */
    /* an IP literal needs no resolution */
    iroh_socket_addr ip;
    memset(&ip, 0, sizeof ip);
    ip.port = l->port;
    if (inet_pton(AF_INET, l->host, ip.ip) == 1)
        ip.family = 4;
    else if (inet_pton(AF_INET6, l->host, ip.ip) == 1)
        ip.family = 6;
    if (ip.family && ir_sockaddr_from_socket_addr(&ip, &l->addrs[0], &l->addr_lens[0]) == 0) {
        l->naddrs = 1;
        start_tcp(l, now);
        return;
    }
    dns_job *j = calloc(1, sizeof *j);
    if (!j) {
        failed(l, now, "out of memory");
        return;
    }
    atomic_init(&j->refs, 2);
    atomic_init(&j->done, 0);
    snprintf(j->host, sizeof j->host, "%s", l->host);
    snprintf(j->port, sizeof j->port, "%u", l->port);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, dns_thread, j);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(j);
        failed(l, now, "cannot start name resolution: %s", strerror(rc));
        return;
    }
    l->dns = j;
    l->io = IO_RESOLVING;
    l->deadline = now + DNS_TIMEOUT_NS;
    l->dns_check_at = now + DNS_POLL_NS;
}

/* Follows the core: closes a transport it no longer wants, starts one for a new attempt. */
static void sync_io(ir_rlink *l, uint64_t now)
{
    ir_rlc_state st = ir_rlc_get_state(l->core);
    uint64_t att = ir_rlc_attempt(l->core);
    if (l->io != IO_NONE &&
        (l->io_attempt != att || (st != IR_RLC_CONNECTING && st != IR_RLC_UP)))
        close_io(l);
    if (st == IR_RLC_CONNECTING && l->io == IO_NONE && l->io_attempt != att) {
        l->io_attempt = att;
        start(l, now);
    }
}

static void dns_check(ir_rlink *l, uint64_t now)
{
    dns_job *j = l->dns;
    if (!atomic_load(&j->done)) {
        if (now >= l->deadline)
            failed(l, now, "resolving %s timed out", l->host);
        return;
    }
    if (j->err) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s", gai_strerror(j->err));
        failed(l, now, "cannot resolve %s: %s", l->host, msg);
        return;
    }
    /* IPv6 and IPv4 alternated, in the resolver's order within each family */
    struct addrinfo *v6[MAX_ADDRS], *v4[MAX_ADDRS];
    int n6 = 0, n4 = 0;
    for (struct addrinfo *ai = j->res; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET6 && n6 < MAX_ADDRS)
            v6[n6++] = ai;
        else if (ai->ai_family == AF_INET && n4 < MAX_ADDRS)
            v4[n4++] = ai;
    }
    l->naddrs = 0;
    for (int i = 0; (i < n6 || i < n4) && l->naddrs < MAX_ADDRS; i++) {
        if (i < n6 && l->naddrs < MAX_ADDRS) {
            memcpy(&l->addrs[l->naddrs], v6[i]->ai_addr, v6[i]->ai_addrlen);
            l->addr_lens[l->naddrs++] = v6[i]->ai_addrlen;
        }
        if (i < n4 && l->naddrs < MAX_ADDRS) {
            memcpy(&l->addrs[l->naddrs], v4[i]->ai_addr, v4[i]->ai_addrlen);
            l->addr_lens[l->naddrs++] = v4[i]->ai_addrlen;
        }
    }
    dns_job_put(j);
    l->dns = NULL;
    l->next_addr = 0;
    if (!l->naddrs) {
        failed(l, now, "%s has no address", l->host);
        return;
    }
    start_tcp(l, now);
}

/* Connects to the next address of the list (one at a time, 1.5 s each). */
static void start_tcp(ir_rlink *l, uint64_t now)
{
    while (l->next_addr < l->naddrs) {
        struct sockaddr_storage *ss = &l->addrs[l->next_addr];
        socklen_t sl = l->addr_lens[l->next_addr++];
        int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(l->attempt_err, sizeof l->attempt_err, "socket: %s", strerror(errno));
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)ss, sl) != 0 && errno != EINPROGRESS) {
            snprintf(l->attempt_err, sizeof l->attempt_err, "connect: %s", strerror(errno));
            close(fd);
            continue;
        }
        l->fd = fd;
        l->io = IO_CONNECTING;
        l->deadline = now + CONNECT_TIMEOUT_NS;
        return;
    }
    char why[sizeof l->attempt_err];
    snprintf(why, sizeof why, "%s", l->attempt_err[0] ? l->attempt_err : "no address");
    failed(l, now, "cannot connect to %s:%u (%s)", l->host, l->port, why);
}

/* The transport is up: the core's relay client starts. Over TLS, the keying-material
 * header (spec relay.md 2.3) lets the relay skip the challenge round trip. */
static void transport_up(ir_rlink *l, uint64_t now)
{
    char auth[IR_RELAY_KM_AUTH_TEXT_LEN + 1];
    const char *client_auth = NULL;
    if (l->tls_s) {
        iroh_endpoint_id me;
        uint8_t material[32];
        iroh_secret_key_public(&l->cfg.key, &me);
        if (ir_tls_stream_export(l->tls_s, IR_RELAY_EXPORT_LABEL, me.bytes, 32, material, 32) ==
            IROH_OK) {
            ir_relay_km_auth a;
            ir_relay_km_auth_make(&l->cfg.key, material, &a);
            if (ir_relay_km_auth_encode(&a, auth, sizeof auth) == IROH_OK)
                client_auth = auth;
        }
    }
    l->io = IO_UP;
    ir_rlc_transport_up(l->core, client_auth, now);
}

/* Writes what the core's client has queued. Never delivers anything and never frees the
 * client, so it is safe while the endpoint walks its connections or the core walks its
 * events. */
static void write_out(ir_rlink *l)
{
    if (l->io != IO_UP)
        return;
    const uint8_t *p;
    size_t n;
    while ((n = ir_rlc_pending(l->core, &p)) > 0) {
        if (l->tls_s) {
            /* a write GnuTLS held must be offered again with the same length */
            size_t len = l->tls_held ? l->tls_held : n;
            ssize_t w = ir_tls_stream_write(l->tls_s, p, len);
            if (w > 0) {
                l->tls_held = 0;
                ir_rlc_consumed(l->core, (size_t)w);
                continue;
            }
            if (w == IR_TLS_STREAM_AGAIN) {
                l->tls_held = len;
                break;
            }
            char why[300];
            snprintf(why, sizeof why, "TLS: %s", iroh_last_error());
            ir_rlc_eof(l->core, why);
            break;
        }
        ssize_t w = send(l->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            ir_rlc_consumed(l->core, (size_t)w);
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        char why[128];
        snprintf(why, sizeof why, "write: %s", w < 0 ? strerror(errno) : "nothing written");
        ir_rlc_eof(l->core, why);
        break;
    }
    /* a failure found here is handled by the next process (the core's timeout makes it
     * due at once): this may run inside the core's event loop, from a datagram callback
     * that sends through this very link, while the client and its events are in use */
}

/* Moves bytes between the socket and the core and lets it handle its events. */
static void pump(ir_rlink *l, short revents, uint64_t now)
{
    /* a TLS read may be blocked on a write (GnuTLS answering the server): POLLOUT
     * resumes it too */
    if (revents & (POLLIN | POLLERR | POLLHUP) || (l->tls_s && (revents & POLLOUT))) {
        for (int round = 0; round < 16; round++) {
            ssize_t n;
            if (l->tls_s) {
                n = ir_tls_stream_read(l->tls_s, l->rbuf, sizeof l->rbuf);
                if (n == IR_TLS_STREAM_AGAIN) {
                    if (ir_tls_stream_pending(l->tls_s))
                        continue;
                    break;
                }
                if (n < 0) {
                    char why[300];
                    snprintf(why, sizeof why, "TLS: %s", iroh_last_error());
                    ir_rlc_eof(l->core, why);
                    break;
                }
            } else {
                n = read(l->fd, l->rbuf, sizeof l->rbuf);
            }
            if (n > 0) {
                ir_rlc_recv(l->core, l->rbuf, (size_t)n, now);
                /* a short plain read emptied the socket; a TLS read returns one record
                 * at most, so read on until the stream says AGAIN */
                if (!l->tls_s && (size_t)n < sizeof l->rbuf)
                    break;
                continue;
            }
            if (n == 0) {
                ir_rlc_eof(l->core, "the relay closed the connection");
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                char why[128];
                snprintf(why, sizeof why, "read: %s", strerror(errno));
                ir_rlc_eof(l->core, why);
            }
            break;
        }
    }
    ir_rlc_pump(l->core, now);
    write_out(l);
    ir_rlc_settle(l->core, now);
    sync_io(l, now);
}

void ir_rlink_want(ir_rlink *l, int forever, uint64_t now)
{
    ir_rlc_want(l->core, forever, now);
    sync_io(l, now);
}

void ir_rlink_send(ir_rlink *l, const uint8_t dst[32], const uint8_t *data, size_t len,
                   size_t seg, uint64_t now)
{
    int ready = ir_rlc_ready(l->core);
    ir_rlc_send(l->core, dst, data, len, seg, now);
    if (ready)
        write_out(l);
    else
        sync_io(l, now);
}

int ir_rlink_pollfd(const ir_rlink *l, struct pollfd *pf)
{
    if (l->fd < 0)
        return 0;
    pf->fd = l->fd;
    pf->revents = 0;
    if (l->io == IO_CONNECTING) {
        pf->events = POLLOUT;
    } else if (l->io == IO_TLS) {
        pf->events = ir_tls_stream_poll_events(l->tls_s);
    } else {
        const uint8_t *p;
        pf->events = POLLIN;
        if (ir_rlc_pending(l->core, &p))
            pf->events |= POLLOUT;
        if (l->tls_s)
            pf->events |= ir_tls_stream_poll_events(l->tls_s);
    }
    return 1;
}

uint64_t ir_rlink_timeout(const ir_rlink *l)
{
    uint64_t t = ir_rlc_timeout(l->core);
    switch (l->io) {
    case IO_RESOLVING:
        /* the resolver thread has no descriptor: look every 10 ms */
        t = ir_earliest(t, l->dns_check_at);
        break;
    case IO_CONNECTING:
    case IO_TLS:
        t = ir_earliest(t, l->deadline);
        break;
    default:
        break;
    }
    return t;
}

static void tls_step(ir_rlink *l, uint64_t now)
{
    int rc = ir_tls_stream_handshake(l->tls_s);
    if (rc == 1)
        return;
    if (rc != IROH_OK) {
        failed(l, now, "%s", iroh_last_error());
        return;
    }
    transport_up(l, now);
    pump(l, 0, now);
}

void ir_rlink_process(ir_rlink *l, short revents, uint64_t now)
{
    ir_rlc_tick(l->core, now);
    sync_io(l, now);
    switch (l->io) {
    case IO_NONE:
        break;
    case IO_RESOLVING:
        l->dns_check_at = now + DNS_POLL_NS;
        dns_check(l, now);
        break;
    case IO_CONNECTING: {
        if (revents & (POLLOUT | POLLERR | POLLHUP)) {
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            if (err) {
                snprintf(l->attempt_err, sizeof l->attempt_err, "connect: %s", strerror(err));
                close(l->fd);
                l->fd = -1;
                start_tcp(l, now);
                break;
            }
            if (l->tls) {
                ir_tls_stream_config tc;
                memset(&tc, 0, sizeof tc);
                tc.server_name = l->host;
                tc.ca_file = l->ca_file;
                tc.insecure_skip_verify = l->cfg.insecure_skip_verify;
                if (ir_tls_stream_new(l->fd, &tc, &l->tls_s) != IROH_OK) {
                    failed(l, now, "%s", iroh_last_error());
                    break;
                }
                l->io = IO_TLS;
                l->deadline = now + TLS_TIMEOUT_NS;
                tls_step(l, now);
                break;
            }
            transport_up(l, now);
            pump(l, 0, now);
        } else if (now >= l->deadline) {
            snprintf(l->attempt_err, sizeof l->attempt_err, "connect: timed out");
            close(l->fd);
            l->fd = -1;
            start_tcp(l, now);
        }
        break;
    }
    case IO_TLS:
        if (now >= l->deadline)
            failed(l, now, "TLS handshake with %s timed out", l->host);
        else
            tls_step(l, now);
        break;
    case IO_UP:
        pump(l, revents, now);
        break;
    }
}
