#include "net/udp.h"

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

int ir_udp_open(const iroh_socket_addr *addr, iroh_socket_addr *bound)
{
    int fd = socket(addr->family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ir_fail(IROH_ERR_IO, "socket: %s", strerror(errno)), -1;
    int one = 1;
    if (addr->family == 6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    /* QUIC does its own path MTU discovery: never fragment, and do not let the
     * kernel's PMTU cache shrink what we send (RFC 9000 14) */
    int probe = addr->family == 4 ? IP_PMTUDISC_PROBE : IPV6_PMTUDISC_PROBE;
    if (addr->family == 4)
        setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof probe);
    else
        setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &probe, sizeof probe);
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    struct sockaddr_storage ss;
    socklen_t len;
    ir_sockaddr_from_socket_addr(addr, &ss, &len);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        char text[IROH_SOCKET_ADDR_LEN];
        iroh_socket_addr_to_string(addr, text, sizeof text);
        ir_fail(IROH_ERR_IO, "cannot bind %s: %s", text, strerror(errno));
        close(fd);
        return -1;
    }
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    ir_socket_addr_from_sockaddr(bound, (struct sockaddr *)&ss);
    return fd;
}

size_t ir_local_addrs(int family, uint16_t port, iroh_socket_addr *out, size_t max)
{
    struct ifaddrs *ifs, *i;
    size_t n = 0;
    if (getifaddrs(&ifs) != 0)
        return 0;
    for (i = ifs; i && n < max; i = i->ifa_next) {
        if (!i->ifa_addr || !(i->ifa_flags & IFF_UP))
            continue;
        int f = i->ifa_addr->sa_family;
        if ((family == 4 && f != AF_INET) || (family == 6 && f != AF_INET6))
            continue;
        if (f == AF_INET6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)i->ifa_addr;
            if (IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr))
                continue; /* needs a scope id, which tickets cannot carry */
        }
        ir_socket_addr_from_sockaddr(&out[n], i->ifa_addr);
        out[n].port = port;
        n++;
    }
    freeifaddrs(ifs);
    return n;
}
