/* The socket shell of the mDNS core (mdns.h): UDP port 5353 on 224.0.0.251 and ff02::fb,
 * multicast loopback on, IPv4 multicast TTL 16 (spec section 5). Non-blocking: the owner
 * (the endpoint's I/O thread) polls the file descriptors for reading and calls
 * ir_mdns_io_process when one is readable or ir_mdns_io_next_timeout has come. The core
 * is reached through ir_mdns_io_core for set_local, poll_event and lookup. */
#ifndef IR_DNS_MDNS_IO_H
#define IR_DNS_MDNS_IO_H

#include <stdint.h>

#include "mdns.h"

typedef struct ir_mdns_io ir_mdns_io;

typedef struct ir_mdns_io_config {
    uint16_t port;   /* 0: IR_MDNS_PORT; tests may choose another */
    int no_ipv4;     /* leave out the IPv4 socket */
    int no_ipv6;     /* leave out the IPv6 socket */
    unsigned ifindex; /* the interface to join and send on; 0: the kernel's choice */
} ir_mdns_io_config;

/* Opens the sockets (SO_REUSEADDR/SO_REUSEPORT, so several instances and other mDNS
 * responders share the port), joins the groups and makes the core. Succeeds when at
 * least one family works; IROH_ERR_IO with the reason when none does. cfg may be NULL. */
int ir_mdns_io_open(const uint8_t id[32], const ir_mdns_io_config *cfg, uint64_t now,
                    ir_mdns_io **out);

/* The socket of a family (4 or 6) to poll for reading, or -1 when that family is off. */
int ir_mdns_io_fd(const ir_mdns_io *io, int family);

/* Reads every waiting datagram, runs the timers due at now and sends what is due. Never
 * blocks; send errors (no route for a family, ...) are dropped as lost datagrams. */
void ir_mdns_io_process(ir_mdns_io *io, uint64_t now);

/* When ir_mdns_io_process must next run (absolute ns on the caller's clock). */
uint64_t ir_mdns_io_next_timeout(const ir_mdns_io *io);

ir_mdns *ir_mdns_io_core(ir_mdns_io *io);

/* Closes the sockets and frees the core. NULL is fine. */
void ir_mdns_io_close(ir_mdns_io *io);

#endif
