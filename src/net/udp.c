#include "net/udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <string.h>
#include <unistd.h>

#include "base/addr.h"
#include "base/util.h"

int ir_sockaddr_from_socket_addr(const iroh_socket_addr *a, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (a->family != 4 && a->family != 6)
        return -1;
    if (a->family == 4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(a->port);
        memcpy(&s4->sin_addr, a->ip, 4);
        *len = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a->port);
        memcpy(&s6->sin6_addr, a->ip, 16);
        *len = sizeof *s6;
    }
    return 0;
}

void ir_socket_addr_from_sockaddr(iroh_socket_addr *a, const struct sockaddr *sa)
{
    memset(a, 0, sizeof *a);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        a->family = 4;
        a->port = ntohs(s4->sin_port);
        memcpy(a->ip, &s4->sin_addr, 4);
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        /* an IPv4-mapped peer on a dual-stack socket is an IPv4 peer */
        if (ir_ip6_is_v4_mapped((const uint8_t *)&s6->sin6_addr)) {
            a->family = 4;
            memcpy(a->ip, (const uint8_t *)&s6->sin6_addr + 12, 4);
        } else {
            a->family = 6;
            memcpy(a->ip, &s6->sin6_addr, 16);
        }
        a->port = ntohs(s6->sin6_port);
    }
}

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

void ir_netaddr_from_socket_addr(ir_netaddr *out, const iroh_socket_addr *a)
{
    memset(out, 0, sizeof *out);
    out->data[0] = a->family;
    out->data[1] = (uint8_t)(a->port >> 8);
    out->data[2] = (uint8_t)a->port;
    size_t n = a->family == 4 ? 4 : 16;
    memcpy(out->data + 3, a->ip, n);
    out->len = (uint8_t)(3 + n);
}

void ir_netaddr_from_sockaddr(ir_netaddr *out, const struct sockaddr *sa)
{
    iroh_socket_addr a;
    ir_socket_addr_from_sockaddr(&a, sa);
    ir_netaddr_from_socket_addr(out, &a);
}

int ir_netaddr_to_socket_addr(const ir_netaddr *a, iroh_socket_addr *out)
{
    memset(out, 0, sizeof *out);
    if (a->len == 7 && a->data[0] == 4) {
        out->family = 4;
        memcpy(out->ip, a->data + 3, 4);
    } else if (a->len == 19 && a->data[0] == 6) {
        out->family = 6;
        memcpy(out->ip, a->data + 3, 16);
    } else {
        return -1;
    }
    out->port = (uint16_t)(a->data[1] << 8 | a->data[2]);
    return 0;
}

int ir_netaddr_to_sockaddr(const ir_netaddr *a, struct sockaddr_storage *ss, socklen_t *len)
{
    iroh_socket_addr s;
    if (ir_netaddr_to_socket_addr(a, &s) != 0)
        return -1;
    ir_sockaddr_from_socket_addr(&s, ss, len);
    return 0;
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
