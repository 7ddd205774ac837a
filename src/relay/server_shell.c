/* The relay server's epoll shell around the sans-IO core: the TCP listener, non-blocking
 * sockets in one epoll loop, TLS (HTTPS) per connection, the clock, and an eventfd so
 * that stop can come from a signal handler. */
#include "server_shell.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "handshake.h"
#include "net/netaddr.h"
#include "net/tcp.h"

#define READ_BUF (256 * 1024)
#define MAX_EVENTS 256
#define IOV_BATCH 64

static int tls_export(void *ctx, const uint8_t context[32], uint8_t out[32])
{
    gnutls_session_t s = ctx;
    return gnutls_prf_rfc5705(s, IR_RELAY_EXPORT_LABEL_LEN, IR_RELAY_EXPORT_LABEL, 32,
                              (const char *)context, 32, (char *)out) == 0 ? 0 : -1;
}

static void tls_drop(ir_relay_conn *c)
{
    if (c->tls) {
        gnutls_deinit(c->tls);
        c->tls = NULL;
    }
}

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

int ir_relay_server_new(const ir_relay_server_config *cfg, ir_relay_server **out)
{
    *out = NULL;
    ir_relay_server_config c;
    if (cfg)
        c = *cfg;
    else
        ir_relay_server_config_init(&c);
    const char *listen_text = c.listen ? c.listen : IR_RELAY_DEFAULT_LISTEN;
    iroh_socket_addr addr;
    if (iroh_socket_addr_parse(listen_text, &addr) != IROH_OK || (addr.family != 4 && addr.family != 6))
        return ir_fail(IROH_ERR_INVALID_ADDR, "invalid listen address '%s'", listen_text);
    if (c.metrics_listen && iroh_socket_addr_parse(c.metrics_listen, &addr) != IROH_OK)
        return ir_fail(IROH_ERR_INVALID_ADDR, "invalid metrics address '%s'", c.metrics_listen);

    ir_relay_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    srv->lfd = srv->epfd = srv->evfd = srv->mfd = -1;
    for (int i = 0; i < METRICS_SLOTS; i++)
        srv->mc[i].fd = -1;
    srv->max_conns = c.max_connections ? c.max_connections : 100000;
    srv->rbuf = malloc(READ_BUF);
    int rc = IROH_ERR_NO_MEMORY;
    if (!srv->rbuf || (rc = ir_relay_core_new(&c, NULL, NULL, &srv->core)) != IROH_OK) {
        ir_fail(rc, "out of memory");
        goto fail;
    }
    if (c.tls_cert_file || c.tls_key_file) {
        int grc;
        if (!c.tls_cert_file || !c.tls_key_file) {
            rc = ir_fail(IROH_ERR_INVALID_ARGUMENT, "HTTPS needs both a certificate and a key file");
            goto fail;
        }
        if ((grc = gnutls_certificate_allocate_credentials(&srv->cred)) < 0 ||
            (grc = gnutls_certificate_set_x509_key_file(srv->cred, c.tls_cert_file, c.tls_key_file,
                                                        GNUTLS_X509_FMT_PEM)) < 0) {
            rc = ir_fail(IROH_ERR_INVALID_ARGUMENT, "TLS certificate %s / key %s: %s",
                         c.tls_cert_file, c.tls_key_file, gnutls_strerror(grc));
            goto fail;
        }
    }
    srv->lfd = ir_tcp_listen(listen_text, 4096, &srv->local);
    if (srv->lfd < 0) {
        rc = srv->lfd;
        srv->lfd = -1;
        goto fail;
    }
    if (c.metrics_listen) {
        srv->mfd = ir_tcp_listen(c.metrics_listen, 64, &srv->mlocal);
        if (srv->mfd < 0) {
            rc = srv->mfd;
            srv->mfd = -1;
            goto fail;
        }
    }
    rc = IROH_ERR_IO;
    srv->epfd = epoll_create1(EPOLL_CLOEXEC);
    srv->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->epfd < 0 || srv->evfd < 0) {
        ir_fail(IROH_ERR_IO, "epoll/eventfd: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &srv->lfd};
    struct epoll_event ev2 = {.events = EPOLLIN, .data.ptr = &srv->evfd};
    struct epoll_event ev3 = {.events = EPOLLIN, .data.ptr = &srv->mfd};
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->lfd, &ev) < 0 ||
        epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->evfd, &ev2) < 0 ||
        (srv->mfd >= 0 && epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->mfd, &ev3) < 0)) {
        ir_fail(IROH_ERR_IO, "epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    *out = srv;
    return IROH_OK;
fail:
    ir_relay_server_free(srv);
    return rc;
}

void ir_relay_server_local_addr(const ir_relay_server *srv, iroh_socket_addr *out)
{
    *out = srv->local;
}

int ir_relay_server_metrics_addr(const ir_relay_server *srv, iroh_socket_addr *out)
{
    if (srv->mfd < 0)
        return 0;
    *out = srv->mlocal;
    return 1;
}

void ir_relay_server_stop(ir_relay_server *srv)
{
    srv->stop = 1;
    uint64_t one = 1;
    ssize_t r = write(srv->evfd, &one, sizeof one);
    (void)r;
}

void ir_relay_server_request_stats(ir_relay_server *srv)
{
    srv->want_stats = 1;
    uint64_t one = 1;
    ssize_t r = write(srv->evfd, &one, sizeof one);
    (void)r;
}

void ir_relay_server_get_stats(const ir_relay_server *srv, ir_relay_server_stats *out)
{
    ir_relay_core_stats(srv->core, out);
    out->refused += srv->refused;
}

static void print_stats(const ir_relay_server *srv)
{
    ir_relay_server_stats st;
    char line[2048];
    ir_relay_server_get_stats(srv, &st);
    ir_relay_stats_format(&st, line, sizeof line);
    fprintf(stderr, "relay stats: %s\n", line);
    fflush(stderr);
}

static void set_listening(ir_relay_server *srv, int on)
{
    struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = &srv->lfd};
    epoll_ctl(srv->epfd, EPOLL_CTL_MOD, srv->lfd, &ev);
    srv->listen_paused = !on;
}

static void accept_ready(ir_relay_server *srv, uint64_t now)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of descriptors: stop accepting for a moment rather than spin */
                IR_LOG(IR_LOG_WARN, "relay: accept: %s; pausing for 100 ms", strerror(errno));
                set_listening(srv, 0);
                srv->listen_resume_at = now + 100 * NS_PER_MS;
            }
            return;
        }
        ir_relay_conn *c = NULL;
        if (srv->core->nconns < srv->max_conns)
            c = ir_relay_core_accept(srv->core, now);
        if (!c) {
            srv->refused++;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        c->events = EPOLLIN;
        if (srv->cred) {
            if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0 ||
                gnutls_set_default_priority(c->tls) < 0 ||
                gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, srv->cred) < 0) {
                tls_drop(c);
                ir_relay_core_abort(srv->core, c, "TLS setup failed", now);
                close(fd);
                c->fd = -1;
                continue;
            }
            gnutls_transport_set_int(c->tls, fd);
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            ir_relay_core_abort(srv->core, c, "epoll_ctl failed", now);
    }
}

static void flush(ir_relay_server *srv, ir_relay_conn *c, uint64_t now)
{
    struct iovec iov[IOV_BATCH];
    while (!c->write_blocked && c->state != CS_CLOSED) {
        size_t n = ir_relay_conn_output(c, iov, IOV_BATCH);
        if (!n)
            return;
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
            total += iov[i].iov_len;
        if (c->tls) {
            if (!c->tls_ready)
                return; /* the handshake first */
            ssize_t w = gnutls_record_send(c->tls, iov[0].iov_base, iov[0].iov_len);
            if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
                c->write_blocked = 1; /* called again with the same bytes, as GnuTLS asks */
                return;
            }
            if (w < 0) {
                char why[96];
                snprintf(why, sizeof why, "TLS send: %s", gnutls_strerror((int)w));
                ir_relay_core_abort(srv->core, c, why, now);
                return;
            }
            ir_relay_core_sent(srv->core, c, (size_t)w, now);
            continue;
        }
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = iov;
        mh.msg_iovlen = n;
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->write_blocked = 1;
                return;
            }
            char why[96];
            snprintf(why, sizeof why, "send: %s", strerror(errno));
            ir_relay_core_abort(srv->core, c, why, now);
            return;
        }
        ir_relay_core_sent(srv->core, c, (size_t)w, now);
        if ((size_t)w < total)
            c->write_blocked = 1; /* the socket buffer is full: wait for EPOLLOUT */
    }
}

static void tls_event(ir_relay_server *srv, ir_relay_conn *c, uint32_t events, uint64_t now);

/* Brings each changed connection's socket in line with what the core wants. */
static void sync_changed(ir_relay_server *srv, uint64_t now)
{
    ir_relay_conn *c;
    while ((c = ir_relay_core_next_changed(srv->core))) {
        unsigned s = ir_relay_conn_status(c);
        if ((s & IR_RELAY_WANT_WRITE) && !c->write_blocked) {
            flush(srv, c, now);
            s = ir_relay_conn_status(c);
        }
        if (s & IR_RELAY_CLOSED) {
            tls_drop(c);
            if (c->fd >= 0) {
                epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                c->grave_next = srv->grave;
                srv->grave = c;
            }
            continue;
        }
        if ((s & IR_RELAY_WANT_SHUTDOWN) && !c->shut) {
            shutdown(c->fd, SHUT_WR);
            c->shut = 1;
        }
        uint32_t want = ((s & IR_RELAY_WANT_READ) ? EPOLLIN : 0u) |
                        ((s & IR_RELAY_WANT_WRITE) ? EPOLLOUT : 0u);
        if (want != c->events) {
            struct epoll_event ev = {.events = want, .data.ptr = c};
            epoll_ctl(srv->epfd, EPOLL_CTL_MOD, c->fd, &ev);
            c->events = want;
        }
        /* readable again (rate limit, backpressure) with plaintext already decrypted by
         * GnuTLS: the socket may never become readable for it, so read it now */
        if (c->tls && c->tls_ready && (s & IR_RELAY_WANT_READ) && gnutls_record_check_pending(c->tls))
            tls_event(srv, c, 0, now);
    }
}

static void tls_event(ir_relay_server *srv, ir_relay_conn *c, uint32_t events, uint64_t now)
{
    if (!c->tls_ready) {
        int rc = gnutls_handshake(c->tls);
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            uint32_t want = gnutls_record_get_direction(c->tls) ? EPOLLIN | EPOLLOUT : EPOLLIN;
            if (want != c->events) {
                struct epoll_event ev = {.events = want, .data.ptr = c};
                epoll_ctl(srv->epfd, EPOLL_CTL_MOD, c->fd, &ev);
                c->events = want;
            }
            return;
        }
        if (rc < 0) {
            char why[96];
            snprintf(why, sizeof why, "TLS handshake: %s", gnutls_strerror(rc));
            ir_relay_core_abort(srv->core, c, why, now);
            return;
        }
        c->tls_ready = 1;
        ir_relay_conn_set_exporter(c, tls_export, c->tls);
        ir_rs_mark_changed(srv->core, c); /* back to the events the core wants */
    }
    if (events & EPOLLOUT) {
        c->write_blocked = 0;
        ir_rs_mark_changed(srv->core, c);
    }
    /* GnuTLS may hold decrypted bytes beyond one read: drain them */
    for (int k = 0; k < 64; k++) {
        if (!(ir_relay_conn_status(c) & IR_RELAY_WANT_READ) || c->state == CS_CLOSED)
            return;
        size_t cap = ir_relay_conn_read_max(c);
        ssize_t r = gnutls_record_recv(c->tls, srv->rbuf, cap < READ_BUF ? cap : READ_BUF);
        if (r > 0) {
            ir_relay_core_recv(srv->core, c, srv->rbuf, (size_t)r, now);
        } else if (r == 0) {
            ir_relay_core_eof(srv->core, c, now);
            return;
        } else if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
            return;
        } else {
            char why[96];
            snprintf(why, sizeof why, "TLS recv: %s", gnutls_strerror((int)r));
            ir_relay_core_abort(srv->core, c, why, now);
            return;
        }
        if (!gnutls_record_check_pending(c->tls))
            return;
    }
}

static void conn_event(ir_relay_server *srv, ir_relay_conn *c, uint32_t events, uint64_t now)
{
    if (c->state == CS_CLOSED)
        return;
    if (c->tls) {
        if (events & (EPOLLHUP | EPOLLERR) && !(events & EPOLLIN)) {
            ir_relay_core_abort(srv->core, c, "connection reset", now);
            return;
        }
        tls_event(srv, c, events, now);
        return;
    }
    if (events & EPOLLOUT) {
        c->write_blocked = 0;
        ir_rs_mark_changed(srv->core, c);
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    if (!(ir_relay_conn_status(c) & IR_RELAY_WANT_READ)) {
        if (events & (EPOLLHUP | EPOLLERR))
            ir_relay_core_abort(srv->core, c, "connection reset", now);
        return;
    }
    size_t cap = ir_relay_conn_read_max(c);
    if (cap > READ_BUF)
        cap = READ_BUF;
    ssize_t r = recv(c->fd, srv->rbuf, cap, MSG_DONTWAIT);
    if (r > 0) {
        ir_relay_core_recv(srv->core, c, srv->rbuf, (size_t)r, now);
    } else if (r == 0) {
        ir_relay_core_eof(srv->core, c, now);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        char why[96];
        snprintf(why, sizeof why, "recv: %s", strerror(errno));
        ir_relay_core_abort(srv->core, c, why, now);
    }
}

static void reap(ir_relay_server *srv)
{
    while (srv->grave) {
        ir_relay_conn *c = srv->grave;
        srv->grave = c->grave_next;
        ir_relay_core_release(srv->core, c);
    }
}

int ir_relay_server_run(ir_relay_server *srv)
{
    struct epoll_event evs[MAX_EVENTS];
    int rc = IROH_OK;
    while (!srv->stop) {
        uint64_t now = clock_ns();
        uint64_t next = ir_relay_core_next_timeout(srv->core);
        if (srv->listen_paused && (!next || srv->listen_resume_at < next))
            next = srv->listen_resume_at;
        uint64_t mnext = srv->mfd >= 0 ? ir_rs_metrics_timers(srv, now) : 0;
        if (mnext && (!next || mnext < next))
            next = mnext;
        int timeout = -1;
        if (next) {
            uint64_t d = next > now ? next - now : 0;
            uint64_t msec = (d + NS_PER_MS - 1) / NS_PER_MS;
            timeout = msec > 60000 ? 60000 : (int)msec;
        }
        int n = epoll_wait(srv->epfd, evs, MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = ir_fail(IROH_ERR_IO, "epoll_wait: %s", strerror(errno));
            break;
        }
        now = clock_ns();
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &srv->lfd) {
                accept_ready(srv, now);
            } else if (p == &srv->evfd) {
                uint64_t v;
                ssize_t r = read(srv->evfd, &v, sizeof v);
                (void)r;
            } else if (p == &srv->mfd) {
                ir_rs_metrics_accept(srv, now);
            } else if (ir_rs_as_metrics_conn(srv, p)) {
                ir_rs_metrics_event(srv, p, evs[i].events);
            } else {
                conn_event(srv, p, evs[i].events, now);
            }
        }
        if (srv->want_stats) {
            srv->want_stats = 0;
            print_stats(srv);
        }
        ir_relay_core_on_timeout(srv->core, now);
        sync_changed(srv, now);
        reap(srv);
        if (srv->listen_paused && now >= srv->listen_resume_at)
            set_listening(srv, 1);
    }
    uint64_t now = clock_ns();
    ir_relay_core_close_all(srv->core, now);
    sync_changed(srv, now);
    reap(srv);
    return rc;
}

void ir_relay_server_free(ir_relay_server *srv)
{
    if (!srv)
        return;
    if (srv->core) {
        for (ir_relay_conn *c = srv->core->all; c; c = c->all_next) {
            tls_drop(c);
            if (c->fd >= 0) {
                close(c->fd);
                c->fd = -1;
            }
        }
        ir_relay_core_free(srv->core);
    }
    if (srv->lfd >= 0)
        close(srv->lfd);
    for (int i = 0; i < METRICS_SLOTS; i++) {
        if (srv->mc[i].fd >= 0)
            close(srv->mc[i].fd);
        free(srv->mc[i].out);
    }
    if (srv->mfd >= 0)
        close(srv->mfd);
    if (srv->epfd >= 0)
        close(srv->epfd);
    if (srv->evfd >= 0)
        close(srv->evfd);
    free(srv->rbuf);
    if (srv->cred)
        gnutls_certificate_free_credentials(srv->cred);
    free(srv);
}
