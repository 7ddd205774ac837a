/* ir_netaddr and socket addresses (see netaddr.h). */
#include "net/netaddr.h"

#include <arpa/inet.h>
#include <string.h>

#include "base/addr.h"

int ir_netaddr_eq(const ir_netaddr *a, const ir_netaddr *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

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
