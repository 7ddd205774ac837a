/* The socket shell of the mDNS core (see mdns_io.h). */
#include "mdns_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/util.h"

#define READS_PER_PROCESS 64 /* datagrams read per socket per call: others wait a turn */

struct ir_mdns_io {
    ir_mdns *core;
    int fd4, fd6;
    uint16_t port;
    unsigned ifindex;
};

static int set_int(int fd, int level, int opt, int v)
{
    return setsockopt(fd, level, opt, &v, sizeof v);
}

static int open_v4(uint16_t port, unsigned ifindex, char *why, size_t whylen)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "IPv4 socket: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    struct ip_mreqn mr;
    memset(&mr, 0, sizeof mr);
    inet_pton(AF_INET, IR_MDNS_GROUP_V4, &mr.imr_multiaddr);
    mr.imr_ifindex = (int)ifindex;
    const char *step = "SO_REUSEADDR";
    if (set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) || (step = "SO_REUSEPORT",
                                                      set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1)) ||
        (step = "bind", bind(fd, (struct sockaddr *)&sa, sizeof sa)) ||
        (step = "IP_ADD_MEMBERSHIP", setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr)) ||
        (step = "IP_MULTICAST_TTL", set_int(fd, IPPROTO_IP, IP_MULTICAST_TTL, 16)) ||
        (step = "IP_MULTICAST_LOOP", set_int(fd, IPPROTO_IP, IP_MULTICAST_LOOP, 1)) ||
        (ifindex && (step = "IP_MULTICAST_IF",
                     setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof mr)))) {
        snprintf(why, whylen, "IPv4 %s: %s", step, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int open_v6(uint16_t port, unsigned ifindex, char *why, size_t whylen)
{
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "IPv6 socket: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
    struct ipv6_mreq mr;
    memset(&mr, 0, sizeof mr);
    inet_pton(AF_INET6, IR_MDNS_GROUP_V6, &mr.ipv6mr_multiaddr);
    mr.ipv6mr_interface = ifindex;
    int idx = (int)ifindex;
    const char *step = "IPV6_V6ONLY";
    if (set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1) ||
        (step = "SO_REUSEADDR", set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1)) ||
        (step = "SO_REUSEPORT", set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1)) ||
        (step = "bind", bind(fd, (struct sockaddr *)&sa, sizeof sa)) ||
        (step = "IPV6_JOIN_GROUP", setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof mr)) ||
        (step = "IPV6_MULTICAST_LOOP", set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 1)) ||
        (ifindex && (step = "IPV6_MULTICAST_IF",
                     setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof idx)))) {
        snprintf(why, whylen, "IPv6 %s: %s", step, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int ir_mdns_io_open(const uint8_t id[32], const ir_mdns_io_config *cfg, uint64_t now,
                    ir_mdns_io **out)
{
    if (!id || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "mdns: NULL argument");
    *out = NULL;
    ir_mdns_io_config c = { 0 };
    if (cfg)
        c = *cfg;
    if (c.no_ipv4 && c.no_ipv6)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "mdns: both address families left out");
    ir_mdns_io *io = calloc(1, sizeof *io);
    if (!io)
        return ir_fail(IROH_ERR_NO_MEMORY, "mdns: out of memory");
    io->port = c.port ? c.port : IR_MDNS_PORT;
    io->ifindex = c.ifindex;
    char why4[160] = "IPv4 left out", why6[160] = "IPv6 left out";
    io->fd4 = c.no_ipv4 ? -1 : open_v4(io->port, io->ifindex, why4, sizeof why4);
    io->fd6 = c.no_ipv6 ? -1 : open_v6(io->port, io->ifindex, why6, sizeof why6);
    if (io->fd4 < 0 && io->fd6 < 0) {
        free(io);
        return ir_fail(IROH_ERR_IO, "mdns: no socket (%s; %s)", why4, why6);
    }
    io->core = ir_mdns_new(id, ir_random_bytes, NULL, now);
    if (!io->core) {
        ir_mdns_io_close(io);
        return ir_fail(IROH_ERR_NO_MEMORY, "mdns: out of memory");
    }
    *out = io;
    return IROH_OK;
}

int ir_mdns_io_fd(const ir_mdns_io *io, int family)
{
    if (!io)
        return -1;
    return family == 6 ? io->fd6 : family == 4 ? io->fd4 : -1;
}

ir_mdns *ir_mdns_io_core(ir_mdns_io *io)
{
    return io ? io->core : NULL;
}

uint64_t ir_mdns_io_next_timeout(const ir_mdns_io *io)
{
    return ir_mdns_next_timeout(io->core);
}

static void send_v4(ir_mdns_io *io, const uint8_t *buf, size_t n)
{
    if (io->fd4 < 0)
        return;
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(io->port) };
    inet_pton(AF_INET, IR_MDNS_GROUP_V4, &to.sin_addr);
    (void)sendto(io->fd4, buf, n, MSG_NOSIGNAL, (struct sockaddr *)&to, sizeof to);
}

static void send_v6(ir_mdns_io *io, const uint8_t *buf, size_t n)
{
    if (io->fd6 < 0)
        return;
    struct sockaddr_in6 to = { .sin6_family = AF_INET6, .sin6_port = htons(io->port),
                               .sin6_scope_id = io->ifindex };
    inet_pton(AF_INET6, IR_MDNS_GROUP_V6, &to.sin6_addr);
    (void)sendto(io->fd6, buf, n, MSG_NOSIGNAL, (struct sockaddr *)&to, sizeof to);
}

static void read_all(ir_mdns_io *io, int fd, int family, uint64_t now)
{
    uint8_t buf[IR_MDNS_MAX_MSG];
    for (int i = 0; fd >= 0 && i < READS_PER_PROCESS; i++) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0)
            return; /* EAGAIN, or an error to try again at the next call */
        if ((size_t)n > sizeof buf)
            continue; /* longer than any mDNS message of ours: dropped */
        ir_mdns_recv(io->core, buf, (size_t)n, family, now);
    }
}

void ir_mdns_io_process(ir_mdns_io *io, uint64_t now)
{
    if (!io)
        return;
    read_all(io, io->fd4, 4, now);
    read_all(io, io->fd6, 6, now);
    if (now >= ir_mdns_next_timeout(io->core))
        ir_mdns_handle_timeout(io->core, now);
    uint8_t buf[IR_MDNS_MAX_MSG];
    ir_mdns_dest dest;
    size_t n;
    while ((n = ir_mdns_poll_send(io->core, buf, sizeof buf, &dest)) > 0) {
        if (dest != IR_MDNS_TO_V6)
            send_v4(io, buf, n);
        if (dest != IR_MDNS_TO_V4)
            send_v6(io, buf, n);
    }
}

void ir_mdns_io_close(ir_mdns_io *io)
{
    if (!io)
        return;
    if (io->fd4 >= 0)
        close(io->fd4);
    if (io->fd6 >= 0)
        close(io->fd6);
    ir_mdns_free(io->core);
    free(io);
}
