/* UDP sockets and the machine's interface addresses. The address conversions are in
 * net/netaddr.h (included). */
#ifndef IR_NET_UDP_H
#define IR_NET_UDP_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "iroh.h"
#include "net/netaddr.h"

/* Opens a non-blocking UDP socket bound to addr (port 0 = any). Returns the fd or -1
 * (with iroh_last_error set). The bound address (with the real port) goes to *bound. */
int ir_udp_open(const iroh_socket_addr *addr, iroh_socket_addr *bound);

/* The machine's interface addresses with the given port, for tickets of an endpoint bound
 * to an unspecified address; loopback included. Returns how many were written. */
size_t ir_local_addrs(int family, uint16_t port, iroh_socket_addr *out, size_t max);

#endif
