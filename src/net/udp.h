/* UDP sockets and the conversion between socket addresses and the QUIC layer's opaque
 * path addresses. */
#ifndef IR_NET_UDP_H
#define IR_NET_UDP_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "iroh.h"
#include "quic/conn.h"

/* Opens a non-blocking UDP socket bound to addr (port 0 = any). Returns the fd or -1
 * (with iroh_last_error set). The bound address (with the real port) goes to *bound. */
int ir_udp_open(const iroh_socket_addr *addr, iroh_socket_addr *bound);

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

/* The machine's interface addresses with the given port, for tickets of an endpoint bound
 * to an unspecified address; loopback included. Returns how many were written. */
size_t ir_local_addrs(int family, uint16_t port, iroh_socket_addr *out, size_t max);

#endif
