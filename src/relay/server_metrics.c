/* The relay server's counters as text: the one-line stats, the OpenMetrics exposition, and
 * the shell's metrics listener that serves it (plain HTTP, one response per connection). */
#include "server_shell.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "openmetrics.h"

#define METRICS_TIMEOUT (10 * NS_PER_S)

int ir_relay_stats_format(const ir_relay_server_stats *st, char *buf, size_t cap)
{
#define F(name) " " #name "=%llu"
#define V(name) (unsigned long long)st->name
    return snprintf(
        buf, cap,
        "conns=%llu" F(accepts) F(refused) F(http_requests) F(http_bad) F(upgrades)
            F(upgrades_refused) F(handshakes) F(handshake_failures) F(clients) F(clients_inactive)
                F(clients_replaced) F(clients_inactive_removed) F(disconnects) F(frames_recv) F(frames_relayed) F(bytes_relayed) F(dgram_bytes_recv) F(dropped_absent)
                    F(dropped_full) F(dropped_invalid) F(control_dropped) F(pings_recv) F(pongs_sent)
                        F(pings_sent) F(pongs_recv) F(endpoint_gone_sent) F(protocol_errors)
                            F(header_timeouts) F(handshake_timeouts) F(pong_timeouts)
                                F(write_timeouts) F(bytes_recv) F(bytes_sent)
                                    F(bytes_rx_ratelimited) F(conns_rx_ratelimited),
        V(conns), V(accepts), V(refused), V(http_requests), V(http_bad), V(upgrades),
        V(upgrades_refused), V(handshakes), V(handshake_failures), V(clients), V(clients_inactive),
        V(clients_replaced), V(clients_inactive_removed), V(disconnects), V(frames_recv),
        V(frames_relayed), V(bytes_relayed), V(dgram_bytes_recv), V(dropped_absent),
        V(dropped_full), V(dropped_invalid), V(control_dropped), V(pings_recv), V(pongs_sent),
        V(pings_sent), V(pongs_recv), V(endpoint_gone_sent), V(protocol_errors), V(header_timeouts),
        V(handshake_timeouts), V(pong_timeouts), V(write_timeouts), V(bytes_recv), V(bytes_sent),
        V(bytes_rx_ratelimited), V(conns_rx_ratelimited));
#undef F
#undef V
}

int ir_relay_metrics_format(const ir_relay_server_stats *st, char *buf, size_t cap)
{
    /* upstream's group "relayserver" (iroh-relay server/metrics.rs) where ours count the
     * same thing; "accepts" upstream counts registered clients, not TCP accepts */
    const ir_metric m[] = {
        {"relayserver_bytes_sent", "Number of bytes sent.", 0, st->bytes_relayed},
        {"relayserver_bytes_recv", "Number of bytes received.", 0, st->dgram_bytes_recv},
        {"relayserver_send_packets_sent", "Number of 'send' packets relayed.", 0, st->frames_relayed},
        {"relayserver_send_packets_recv", "Number of 'send' packets received.", 0, st->frames_recv},
        {"relayserver_send_packets_dropped", "Number of 'send' packets dropped.", 0,
         st->dropped_absent + st->dropped_full + st->dropped_invalid},
        {"relayserver_other_packets_dropped",
         "Number of times a non-disco, non-send packet was dropped.", 0, st->control_dropped},
        {"relayserver_got_ping", "Number of times the server has received a Ping from a client.",
         0, st->pings_recv},
        {"relayserver_sent_pong", "Number of times the server has sent a Pong to a client.", 0,
         st->pongs_sent},
        {"relayserver_bytes_rx_ratelimited",
         "Number of bytes received from client connection which have been rate-limited.", 0,
         st->bytes_rx_ratelimited},
        {"relayserver_conns_rx_ratelimited",
         "Number of client connections which have had any frames rate-limited.", 0,
         st->conns_rx_ratelimited},
        {"relayserver_accepts", "Number of times this server has accepted a connection.", 0,
         st->handshakes},
        {"relayserver_disconnects", "Number of clients that have then disconnected.", 0,
         st->disconnects},
        {"relayserver_websocket_accepts", "Number of accepted websocket connections", 0,
         st->upgrades},
        {"relayserver_clients_inactive_added",
         "Number of client connections that became inactive (same EndpointId connected again)", 0,
         st->clients_replaced},
        {"relayserver_clients_inactive_removed",
         "Number of inactive client connections that were promoted or went away", 0,
         st->clients_inactive_removed},
        /* ours */
        {"irohc_relay_conns", "Open TCP connections.", 1, st->conns},
        {"irohc_relay_clients", "Registered relay clients (active and inactive).", 1, st->clients},
        {"irohc_relay_clients_inactive", "Registered relay clients replaced by a newer one.", 1,
         st->clients_inactive},
        {"irohc_relay_tcp_accepts", "TCP connections accepted.", 0, st->accepts},
        {"irohc_relay_tcp_refused", "TCP connections refused at accept (limit, memory).", 0,
         st->refused},
        {"irohc_relay_http_requests", "HTTP request heads parsed.", 0, st->http_requests},
        {"irohc_relay_http_bad", "Malformed or oversized HTTP request heads.", 0, st->http_bad},
        {"irohc_relay_upgrades_refused", "Upgrade requests answered with 400.", 0,
         st->upgrades_refused},
        {"irohc_relay_handshake_failures", "Bad ClientAuth frames, bad signatures, denials.", 0,
         st->handshake_failures},
        {"irohc_relay_datagrams_dropped_absent", "Datagram frames for endpoints not connected.", 0,
         st->dropped_absent},
        {"irohc_relay_datagrams_dropped_full", "Datagram frames dropped on a full queue.", 0,
         st->dropped_full},
        {"irohc_relay_datagrams_dropped_invalid", "Empty or oversized datagram frames dropped.", 0,
         st->dropped_invalid},
        {"irohc_relay_pings_sent", "Pings sent to clients.", 0, st->pings_sent},
        {"irohc_relay_pongs_recv", "Pongs received for them.", 0, st->pongs_recv},
        {"irohc_relay_endpoint_gone_sent", "EndpointGone frames sent.", 0, st->endpoint_gone_sent},
        {"irohc_relay_protocol_errors", "Connections closed for a bad frame or WebSocket error.", 0,
         st->protocol_errors},
        {"irohc_relay_header_timeouts", "Request heads not complete in time.", 0,
         st->header_timeouts},
        {"irohc_relay_handshake_timeouts", "Handshakes not complete in time.", 0,
         st->handshake_timeouts},
        {"irohc_relay_pong_timeouts", "Clients closed for a missing pong.", 0, st->pong_timeouts},
        {"irohc_relay_write_timeouts", "Clients closed for not reading.", 0, st->write_timeouts},
        {"irohc_relay_socket_bytes_recv", "Bytes read from client sockets (after TLS).", 0,
         st->bytes_recv},
        {"irohc_relay_socket_bytes_sent", "Bytes written to client sockets (before TLS).", 0,
         st->bytes_sent},
    };
    return ir_openmetrics_format(m, sizeof m / sizeof m[0], buf, cap);
}

static void metrics_close(ir_relay_server *srv, metrics_conn *m)
{
    epoll_ctl(srv->epfd, EPOLL_CTL_DEL, m->fd, NULL);
    close(m->fd);
    m->fd = -1;
    free(m->out);
    m->out = NULL;
    m->out_len = m->out_off = m->in_len = 0;
    m->deadline = 0;
}

void ir_rs_metrics_accept(ir_relay_server *srv, uint64_t now)
{
    for (int k = 0; k < 16; k++) {
        int fd = accept4(srv->mfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        metrics_conn *m = NULL;
        for (int i = 0; i < METRICS_SLOTS && !m; i++)
            if (srv->mc[i].fd < 0)
                m = &srv->mc[i];
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = m};
        if (!m || epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd); /* all slots busy: scrapes are rare, this one can retry */
            continue;
        }
        m->fd = fd;
        m->in_len = 0;
        m->deadline = now + METRICS_TIMEOUT;
    }
}

/* Builds the whole response to the request head in m->in. */
static void metrics_respond(ir_relay_server *srv, metrics_conn *m)
{
    ir_http_request req;
    int status = 200;
    const char *phrase = "OK";
    int head_only = 0;
    if (ir_http_parse_request(m->in, m->in_len, &req) != IROH_OK) {
        status = 400;
        phrase = "Bad Request";
    } else {
        int get = req.method_len == 3 && memcmp(req.method, "GET", 3) == 0;
        head_only = req.method_len == 4 && memcmp(req.method, "HEAD", 4) == 0;
        if (!get && !head_only) {
            status = 405;
            phrase = "Method Not Allowed";
        } else if (!((req.path_len == 1 && req.path[0] == '/') ||
                     (req.path_len == 8 && memcmp(req.path, "/metrics", 8) == 0))) {
            status = 404;
            phrase = "Not Found";
        }
    }
    char *body = NULL;
    size_t body_len = 0;
    if (status == 200) {
        ir_relay_server_stats st;
        ir_relay_server_get_stats(srv, &st);
        int n = ir_relay_metrics_format(&st, NULL, 0);
        if (n > 0 && (body = malloc((size_t)n + 1)) != NULL) {
            ir_relay_metrics_format(&st, body, (size_t)n + 1);
            body_len = (size_t)n;
        } else {
            status = 500;
            phrase = "Internal Server Error";
        }
    } else {
        body = malloc(64);
        if (body)
            body_len = (size_t)snprintf(body, 64, "%s\n", phrase);
    }
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n"
                      "connection: close\r\n\r\n",
                      status, phrase,
                      status == 200 ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                    : "text/plain; charset=utf-8",
                      body_len);
    size_t total = (size_t)hl + (head_only ? 0 : body_len);
    m->out = malloc(total);
    if (m->out) {
        memcpy(m->out, head, (size_t)hl);
        if (!head_only && body_len)
            memcpy(m->out + hl, body, body_len);
        m->out_len = total;
        m->out_off = 0;
    }
    free(body);
}

void ir_rs_metrics_event(ir_relay_server *srv, metrics_conn *m, uint32_t events)
{
    if (m->fd < 0)
        return;
    if (!m->out) {
        ssize_t r = recv(m->fd, m->in + m->in_len, sizeof m->in - m->in_len, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (r <= 0) {
            metrics_close(srv, m);
            return;
        }
        m->in_len += (size_t)r;
        ir_http_reader hr;
        size_t used;
        ir_http_reader_init(&hr);
        int rc = ir_http_reader_feed(&hr, m->in, m->in_len, &used);
        if (rc == 0 && m->in_len < sizeof m->in)
            return; /* more of the head to come */
        if (rc == 1)
            m->in_len = used;
        else
            m->in_len = 0; /* too large: answered 400 */
        metrics_respond(srv, m);
        if (!m->out) {
            metrics_close(srv, m);
            return;
        }
    }
    (void)events;
    while (m->out_off < m->out_len) {
        ssize_t w = send(m->fd, m->out + m->out_off, m->out_len - m->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = m};
            epoll_ctl(srv->epfd, EPOLL_CTL_MOD, m->fd, &ev);
            return;
        }
        if (w <= 0)
            break;
        m->out_off += (size_t)w;
    }
    shutdown(m->fd, SHUT_WR);
    metrics_close(srv, m);
}

metrics_conn *ir_rs_as_metrics_conn(ir_relay_server *srv, void *p)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)&srv->mc[0], hi = (uintptr_t)&srv->mc[METRICS_SLOTS];
    return a >= lo && a < hi ? p : NULL;
}

/* The earliest metrics deadline (0: none); closes the expired ones. */
uint64_t ir_rs_metrics_timers(ir_relay_server *srv, uint64_t now)
{
    uint64_t next = 0;
    for (int i = 0; i < METRICS_SLOTS; i++) {
        metrics_conn *m = &srv->mc[i];
        if (m->fd < 0)
            continue;
        if (m->deadline <= now) {
            metrics_close(srv, m);
            continue;
        }
        if (!next || m->deadline < next)
            next = m->deadline;
    }
    return next;
}
