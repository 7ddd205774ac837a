/* mDNS address lookup as iroh's opt-in iroh-mdns-address-lookup speaks it, on top of
 * swarm-discovery 0.6 (spec identity-tickets-discovery.md section 5): a sans-IO core.
 *
 * Service `_irohv1._udp.local.`; a peer is named by the lowercase unpadded RFC 4648 base32
 * of its id. The core sends a PTR query for the service on a randomized timer, answers
 * queries it hears (its own included, which multicast loopback brings back) after a
 * randomized delay unless enough others answered first, keeps the peers it hears with the
 * time last heard, and expires them on swarm-discovery's schedule. Times are nanoseconds
 * on the caller's clock (monotonic); randomness comes from the caller's callback, so a
 * test drives it on a virtual clock with a fixed random source. Messages are built and
 * parsed with ldns. No sockets here: mdns_io.h is the shell. */
#ifndef IR_DNS_MDNS_H
#define IR_DNS_MDNS_H

#include <stddef.h>
#include <stdint.h>

#include "endpoint_info.h"

#define IR_MDNS_PORT 5353
#define IR_MDNS_GROUP_V4 "224.0.0.251"
#define IR_MDNS_GROUP_V6 "ff02::fb"
#define IR_MDNS_SERVICE "_irohv1._udp.local."
#define IR_MDNS_MAX_PEERS 256   /* peers kept at once; more are not taken in */
#define IR_MDNS_MAX_EVENTS 32   /* events queued; the oldest is dropped beyond */
#define IR_MDNS_MAX_MSG 1472    /* largest datagram read or written */

/* swarm-discovery's interactive timing: tau = 700 ms, phi = 2.5, cutoff = ceil(tau*phi) = 2 */
#define IR_MDNS_TAU_NS 700000000ull
#define IR_MDNS_CUTOFF 2
#define IR_MDNS_RESPONSE_DELAY_NS 100000000ull
#define IR_MDNS_GC_NS (IR_MDNS_TAU_NS * 12345 / 9999) /* the expiry sweep, about 864 ms */

typedef struct ir_mdns ir_mdns;

/* Where a datagram goes: both groups, or the family a query came from. */
typedef enum ir_mdns_dest {
    IR_MDNS_TO_ANY = 0,
    IR_MDNS_TO_V4 = 4,
    IR_MDNS_TO_V6 = 6,
} ir_mdns_dest;

typedef enum ir_mdns_event_kind {
    IR_MDNS_EV_DISCOVERED = 1, /* a peer answered: info holds what it announced (every
                                * answer, as swarm-discovery's callback, not only news) */
    IR_MDNS_EV_EXPIRED = 2,    /* a peer was not heard in time: info holds only the id */
} ir_mdns_event_kind;

typedef struct ir_mdns_event {
    ir_mdns_event_kind kind;
    ir_endpoint_info info; /* addrs: the IP addresses with their ports; relay and user
                            * data from the TXT record */
} ir_mdns_event;

/* A new core for our id at time now. random fills bytes (ir_random_bytes fits); it may
 * not be NULL. NULL when out of memory. */
ir_mdns *ir_mdns_new(const uint8_t id[32], void (*random)(void *ctx, uint8_t *buf, size_t len),
                     void *random_ctx, uint64_t now);
void ir_mdns_free(ir_mdns *m);

/* What we announce (iroh: every IP address with its port, the first relay, user data;
 * the id field is ignored). Until addresses are set, we only ask and never answer, as
 * swarm-discovery does for a peer without addresses. Takes effect at the next answer.
 * IROH_ERR_INVALID_ARGUMENT for NULL. */
int ir_mdns_set_local(ir_mdns *m, const ir_endpoint_info *self);

/* A datagram received from a peer of the given family (4 or 6) on the mDNS port. Bad or
 * foreign messages are ignored. May make a datagram due (see ir_mdns_poll_send). */
void ir_mdns_recv(ir_mdns *m, const uint8_t *msg, size_t len, int family, uint64_t now);

/* Runs the timers due at now (query, answer, expiry sweep). */
void ir_mdns_handle_timeout(ir_mdns *m, uint64_t now);

/* The next datagram to send, if one is due: writes it to out (cap >= IR_MDNS_MAX_MSG),
 * sets *dest, returns its length; 0 when nothing is due. Call after recv and
 * handle_timeout until it returns 0. */
size_t ir_mdns_poll_send(ir_mdns *m, uint8_t *out, size_t cap, ir_mdns_dest *dest);

/* When handle_timeout must next run (absolute, ns); never 0. */
uint64_t ir_mdns_next_timeout(const ir_mdns *m);

/* The next event: 1 and *ev filled, or 0 when none. Our own id never makes events. */
int ir_mdns_poll_event(ir_mdns *m, ir_mdns_event *ev);

/* What the last answer of id said, while it has not expired: 1 and *out filled, else 0. */
int ir_mdns_lookup(const ir_mdns *m, const uint8_t id[32], ir_endpoint_info *out);

/* Peers currently known (our own id counts once we heard ourselves, as in
 * swarm-discovery's swarm size). */
size_t ir_mdns_peer_count(const ir_mdns *m);

#endif
