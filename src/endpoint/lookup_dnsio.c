/* The DNS client's I/O for address lookup (lookup_jobs.h): nameservers from
 * /etc/resolv.conf, one query over UDP, again over TCP when the response is truncated.
 * The messages are built and read by the dns layer (dns/txt_query.h, on ldns); the
 * caller's classify function says which datagram is the response. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/util.h"
#include "endpoint/ep.h"
#include "endpoint/lookup_jobs.h"
#include "net/netaddr.h"

size_t ir_lookup_resolv_conf(const char *path, iroh_socket_addr *out, size_t cap)
{
    size_t n = 0;
    FILE *f = fopen(path ? path : "/etc/resolv.conf", "re");
    char line[512];
    while (f && n < cap && fgets(line, sizeof line, f)) {
        char ip[256];
        if (sscanf(line, " nameserver %255s", ip) != 1)
            continue;
        char *pct = strchr(ip, '%'); /* a scope (fe80::1%eth0): not kept */
        if (pct)
            *pct = 0;
        char text[300];
        snprintf(text, sizeof text, strchr(ip, ':') ? "[%s]:53" : "%s:53", ip);
        if (iroh_socket_addr_parse(text, &out[n]) == IROH_OK)
            n++;
    }
    if (f)
        fclose(f);
    if (n == 0 && cap > 0)
        n = iroh_socket_addr_parse("127.0.0.1:53", &out[0]) == IROH_OK;
    return n;
}

/* ---- socket steps the lookup's jobs share (lookup_jobs.h) ------------------------------ */

int ir_lookup_wait_fd(int fd, short events, uint64_t deadline, const atomic_int *stop)
{
    for (;;) {
        if (stop && atomic_load(stop))
            return 0;
        uint64_t now = ir_now_ns();
        if (now >= deadline)
            return 0;
        uint64_t left = (deadline - now) / 1000000 + 1;
        struct pollfd pf = {.fd = fd, .events = events};
        int r = poll(&pf, 1, left < 50 ? (int)left : 50); /* stop is looked at every 50 ms */
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return 0;
    }
}

int ir_lookup_tcp_connect(const struct sockaddr_storage *ss, socklen_t len, uint64_t deadline,
                          const atomic_int *stop, int *fd_out, char *why, size_t whylen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return IROH_ERR_IO;
    }
    int one = 1, err = 0;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)ss, len) != 0 && errno != EINPROGRESS) {
        snprintf(why, whylen, "%s", strerror(errno));
        close(fd);
        return IROH_ERR_IO;
    }
    if (!ir_lookup_wait_fd(fd, POLLOUT, deadline, stop)) {
        snprintf(why, whylen, "timed out");
        close(fd);
        return IROH_ERR_TIMEOUT;
    }
    socklen_t el = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        snprintf(why, whylen, "%s", strerror(err));
        close(fd);
        return IROH_ERR_IO;
    }
    *fd_out = fd;
    return IROH_OK;
}

/* ---- DNS ------------------------------------------------------------------------------------ */

static int over_tcp(const struct sockaddr_storage *ss, socklen_t sl, const uint8_t *q, size_t qlen,
                    ir_lookup_dns_classify classify, void *ctx, uint64_t deadline,
                    const atomic_int *stop, uint8_t *out, size_t cap, size_t *len)
{
    int fd = -1;
    char why[160];
    int rc = ir_lookup_tcp_connect(ss, sl, deadline, stop, &fd, why, sizeof why);
    if (rc != IROH_OK)
        return ir_fail(rc, "DNS over TCP: connect: %s", why);
    /* two bytes of length, then the message */
    uint8_t hdr[2] = {(uint8_t)(qlen >> 8), (uint8_t)qlen};
    struct iovec iov[2] = {{hdr, 2}, {(void *)q, qlen}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    if (rc == IROH_OK && sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)(qlen + 2))
        rc = ir_fail(IROH_ERR_IO, "DNS over TCP: send failed");
    size_t got = 0, want = 2;
    uint8_t lenb[2];
    while (rc == IROH_OK && got < want) {
        if (!ir_lookup_wait_fd(fd, POLLIN, deadline, stop)) {
            rc = ir_fail(IROH_ERR_TIMEOUT, "DNS over TCP: no answer in time");
            break;
        }
        uint8_t *dst = want == 2 && got < 2 ? lenb + got : out + (got - 2);
        size_t room = want == 2 && got < 2 ? 2 - got : want - got;
        ssize_t n = recv(fd, dst, room, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            rc = ir_fail(IROH_ERR_IO, "DNS over TCP: the server closed");
            break;
        }
        got += (size_t)n;
        if (got == 2 && want == 2) {
            size_t mlen = (size_t)lenb[0] << 8 | lenb[1];
            if (mlen > cap) {
                rc = ir_fail(IROH_ERR_TOO_LONG, "DNS over TCP: a %zu-byte answer", mlen);
                break;
            }
            want = 2 + mlen;
        }
    }
    close(fd);
    if (rc == IROH_OK) {
        *len = want - 2;
        if (classify(ctx, out, *len) != 0)
            rc = ir_fail(IROH_ERR_IO, "DNS over TCP: not the response to the query");
    }
    return rc;
}

int ir_lookup_dns_exchange(const iroh_socket_addr *server, const uint8_t *query, size_t qlen,
                           ir_lookup_dns_classify classify, void *ctx, uint64_t deadline,
                           const atomic_int *stop, uint8_t *out, size_t cap, size_t *len)
{
    if (qlen < 12 || qlen > 65535)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "a DNS query of %zu bytes", qlen);
    struct sockaddr_storage ss;
    socklen_t sl;
    if (ir_sockaddr_from_socket_addr(server, &ss, &sl) != 0)
        return ir_fail(IROH_ERR_INVALID_ADDR, "bad DNS server address");
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ir_fail(IROH_ERR_IO, "socket: %s", strerror(errno));
    /* connected: the kernel drops datagrams from other addresses */
    int rc = IROH_OK;
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0 || send(fd, query, qlen, 0) != (ssize_t)qlen)
        rc = ir_fail(IROH_ERR_IO, "DNS over UDP: %s", strerror(errno));
    int truncated = 0;
    while (rc == IROH_OK) {
        if (!ir_lookup_wait_fd(fd, POLLIN, deadline, stop)) {
            rc = ir_fail(IROH_ERR_TIMEOUT, "no DNS answer in time");
            break;
        }
        ssize_t n = recv(fd, out, cap, MSG_TRUNC);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0) { /* e.g. ECONNREFUSED: nobody listens there */
            rc = ir_fail(IROH_ERR_IO, "DNS over UDP: %s", strerror(errno));
            break;
        }
        int kind = (size_t)n > cap ? -1 : classify(ctx, out, (size_t)n);
        if (kind < 0)
            continue; /* not ours: wait on */
        if (kind == 1) {
            truncated = 1;
            break;
        }
        *len = (size_t)n;
        break;
    }
    close(fd);
    if (rc == IROH_OK && truncated)
        rc = over_tcp(&ss, sl, query, qlen, classify, ctx, deadline, stop, out, cap, len);
    return rc;
}
