/* TCP listeners (the relay server's and the DNS server's). */
#ifndef IR_NET_TCP_H
#define IR_NET_TCP_H

#include "iroh.h"

/* A non-blocking listening TCP socket (SO_REUSEADDR, close-on-exec) on text ("IP:PORT");
 * its bound address in *bound. Returns the fd, or a negative IROH_ERR_* code with the
 * detail set ("invalid listen address 'x'", "cannot bind x: ..."). */
int ir_tcp_listen(const char *text, int backlog, iroh_socket_addr *bound);

#endif
