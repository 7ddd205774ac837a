/* Network addresses: the opaque path address (ir_netaddr) by which the QUIC layer and the
 * endpoint tell paths apart, and the conversions between it, iroh_socket_addr and struct
 * sockaddr. A leaf of the net layer: it includes nothing of the library but the public
 * header, so the QUIC layer, the relay server and the endpoint can all use it. */
#ifndef IR_NET_NETADDR_H
#define IR_NET_NETADDR_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "iroh.h"

/* An opaque network address: the caller's encoding (e.g. a sockaddr), compared bytewise. */
typedef struct ir_netaddr {
    uint8_t len;
    uint8_t data[39]; /* UDP: family, port, IP; relay: see endpoint/relay_link.h */
} ir_netaddr;

int ir_netaddr_eq(const ir_netaddr *a, const ir_netaddr *b);

/* iroh_socket_addr <-> struct sockaddr. From: an IPv4-mapped IPv6 address (a dual-stack
 * socket's IPv4 peer) becomes IPv4. To: -1 for a family that is neither 4 nor 6. */
void ir_socket_addr_from_sockaddr(iroh_socket_addr *a, const struct sockaddr *sa);
int ir_sockaddr_from_socket_addr(const iroh_socket_addr *a, struct sockaddr_storage *ss,
                                 socklen_t *len);

/* ir_netaddr <-> socket address: family byte, port (big-endian), address bytes. */
void ir_netaddr_from_sockaddr(ir_netaddr *out, const struct sockaddr *sa);
void ir_netaddr_from_socket_addr(ir_netaddr *out, const iroh_socket_addr *a);
int ir_netaddr_to_sockaddr(const ir_netaddr *a, struct sockaddr_storage *ss, socklen_t *len);
int ir_netaddr_to_socket_addr(const ir_netaddr *a, iroh_socket_addr *out);

#endif
