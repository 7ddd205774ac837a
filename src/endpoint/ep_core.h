/* The endpoint's sans-IO core: the connections of one endpoint and everything between
 * them and the datagrams, with no socket, no clock and no thread of its own.
 *
 * Datagrams come in with ir_epc_recv (from which path address, at which time); what the
 * core and its connections have to send leaves through the send callback of ir_epc_io
 * (to which path address, the bytes, the segment size of a GSO-style batch) when the
 * caller calls ir_epc_flush; ir_epc_timeout is the next deadline and ir_epc_on_timeout
 * runs what is due. The core owns: the connection table and the routing of datagrams by
 * destination connection id (a hash table the connections keep up to date through their
 * CID callback), Retry and its tokens, stateless resets, version negotiation, the
 * half-open cap and handshake deadlines, the accept queue; a client connection gets the
 * peer's candidate addresses (and sends its first flight to each). The shell (ep.c) owns sockets, recvmmsg/sendmmsg/GSO, poll and the
 * relay links: a relayed datagram enters here like any other, with a relay path address.
 *
 * Path addresses are opaque to the core (ir_netaddr), so a simulator can feed it
 * datagrams between virtual addresses on a virtual clock (tests/unit/test_sim.c).
 *
 * Nothing here locks: the caller serializes every call on one core. */
#ifndef IR_ENDPOINT_EP_CORE_H
#define IR_ENDPOINT_EP_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "endpoint/ep.h"
#include "quic/conn.h"

typedef struct ir_epc ir_epc;

typedef struct ir_epc_io {
    /* A datagram to send: len bytes to `to`, as consecutive datagrams of seg bytes each
     * (the last may be shorter); seg >= len for a single one. buf is valid during the
     * call only. */
    void (*send)(void *ctx, const ir_netaddr *to, const uint8_t *buf, size_t len, size_t seg);
    void *send_ctx;
    /* Randomness for connection ids, Retry and reset packets, and the connections; NULL:
     * the system's (ir_random_bytes). */
    void (*random)(void *ctx, uint8_t *buf, size_t len);
    void *random_ctx;
} ir_epc_io;

/* A core with cfg's identity, ALPNs, admission limits (retry, retry_above, half_open_max,
 * max_connections, handshake_timeout_ms) and transport limits; cfg's socket and relay
 * fields are the shell's and are ignored here. */
int ir_epc_new(const ir_ep_config *cfg, const ir_epc_io *io, ir_epc **out);
/* Frees the core and every connection in it, without sending anything. */
void ir_epc_free(ir_epc *e);

/* ---- the three steps of the I/O loop ---------------------------------------------------- */

/* One received datagram from path address `from` (a UDP address or a relay path) at
 * `now`: routed to its connection by destination CID, or answered at once through
 * io.send (Retry, Version Negotiation, stateless reset), or made into a new incoming
 * connection, or dropped. data is modified (decrypted in place). */
void ir_epc_recv(ir_epc *e, const ir_netaddr *from, uint8_t *data, size_t len, uint64_t now);
/* Hands what every connection has ready to io.send (packets are built and encrypted
 * here). */
void ir_epc_flush(ir_epc *e, uint64_t now);
/* The next deadline (absolute ns), UINT64_MAX if none. */
uint64_t ir_epc_timeout(const ir_epc *e);
/* Runs the connection timers that are due and frees incoming connections that closed
 * before anyone accepted them. Sends nothing: flush after it. */
void ir_epc_on_timeout(ir_epc *e, uint64_t now);

/* ---- connections -------------------------------------------------------------------------- */

/* A connection's configuration as this core makes them (identity, transport limits, reset
 * key, randomness), to adjust before ir_epc_connect_cfg. */
void ir_epc_base_config(const ir_epc *e, ir_conn_config *cfg);

/* Starts a client connection to the peer `remote_id` with candidate path addresses cand
 * (by preference, at least one, IR_CONN_MAX_CANDIDATES at most): path 0 starts at the
 * first, and the connection sends its first flight to all of them (ir_conn_config
 * candidates). The connection stays the core's: ir_epc_release it. */
int ir_epc_connect(ir_epc *e, const ir_netaddr *cand, size_t ncand,
                   const iroh_endpoint_id *remote_id, const uint8_t *const *alpns,
                   const size_t *alpn_lens, size_t n_alpns, uint64_t now, ir_conn **out);
/* The same with a full configuration (from ir_epc_base_config). internal = 1: the
 * connection is routed and timed but not listed (ir_epc_conn_at) nor accepted (the QUIC
 * address discovery connection of the shell). */
int ir_epc_connect_cfg(ir_epc *e, const ir_conn_config *cfg, const ir_netaddr *cand,
                       size_t ncand, int internal, uint64_t now, ir_conn **out);

/* The next incoming connection not yet handed out, oldest first; NULL if none. */
ir_conn *ir_epc_accept(ir_epc *e);
/* The listed connections (all but internal ones). */
size_t ir_epc_conn_count(const ir_epc *e);
ir_conn *ir_epc_conn_at(const ir_epc *e, size_t i);
/* What one connection has ready, to io.send (after closing it with a code of one's own,
 * before releasing it quietly). */
void ir_epc_flush_conn(ir_epc *e, ir_conn *c, uint64_t now);
/* Forgets and frees a connection; unless quiet, one still open is closed first (its
 * CONNECTION_CLOSE sent through io.send). */
void ir_epc_release(ir_epc *e, ir_conn *c, int quiet, uint64_t now);
/* The path address a connection started with; NULL if c is not the core's. */
const ir_netaddr *ir_epc_conn_remote(const ir_epc *e, const ir_conn *c);

/* ---- our own candidate addresses --------------------------------------------------------- */

/* The direct addresses this endpoint can be reached at, gathered by the shell and kept
 * here: the interface addresses (ir_epc_set_interfaces), the UDP sockets' bound addresses
 * (ir_epc_set_sockets), the public address QUIC address discovery found
 * (ir_epc_set_public) and the ones the user configured (ir_epc_add_external). From them
 * the core makes two lists:
 *  - the candidates (ir_epc_local_addrs), as iroh gathers its direct addresses: a socket
 *    bound to a specific address gives that address; one bound to 0.0.0.0 / [::] gives
 *    the interface addresses of its family with its port: the regular ones, else (none
 *    on any interface) IPv4 link-local ones, else loopback ones (iroh advertises
 *    loopback only when nothing else exists: a peer elsewhere would reach its own
 *    host). IPv6 link-local addresses never (they need a scope id). Then the public and
 *    the configured addresses. Every live connection is handed the candidates
 *    (ir_conn_set_local_addrs, which advertises them over NAT traversal) when it is made
 *    and whenever they change.
 *  - the addresses for tickets (ir_epc_addrs): the same with the loopback addresses
 *    always included, so that peers on the same host (and loopback tests) reach us.
 * At most IR_EPC_MAX_LOCAL of each; duplicates are dropped. */
#define IR_EPC_MAX_LOCAL 32
#define IR_EPC_MAX_EXTERNAL 16
typedef struct ir_epc_iface {
    iroh_socket_addr addr; /* the port is ignored */
    int loopback;          /* on a loopback interface */
} ir_epc_iface;
void ir_epc_set_interfaces(ir_epc *e, const ir_epc_iface *ifs, size_t n, uint64_t now);
void ir_epc_set_sockets(ir_epc *e, const iroh_socket_addr *bound, size_t n, uint64_t now);
/* NULL: none (any more) */
void ir_epc_set_public(ir_epc *e, const iroh_socket_addr *a, uint64_t now);
/* IROH_OK (also when already there); IROH_ERR_INVALID_ADDR for port 0 or an unspecified
 * IP, IROH_ERR_BUFFER_TOO_SMALL beyond IR_EPC_MAX_EXTERNAL. */
int ir_epc_add_external(ir_epc *e, const iroh_socket_addr *a, uint64_t now);
/* 1 if it was configured (and is removed), 0 if not */
int ir_epc_remove_external(ir_epc *e, const iroh_socket_addr *a, uint64_t now);
size_t ir_epc_local_addrs(const ir_epc *e, iroh_socket_addr *out, size_t cap);
size_t ir_epc_addrs(const ir_epc *e, iroh_socket_addr *out, size_t cap);
/* Counts the changes of the candidates (tests: 0 before the first list). */
uint64_t ir_epc_local_addrs_gen(const ir_epc *e);

/* The relay links (the index in relay path addresses, ir_netaddr_relay) that live
 * connections use as paths (open, not abandoned), each once; up to cap, returns how
 * many. The shell keeps these links connected: a relay path is a path like any other,
 * also while no datagram goes through it (a backup path). */
size_t ir_epc_relay_links_in_use(const ir_epc *e, unsigned *out, size_t cap);

/* Counters (half_open: now). */
void ir_epc_get_counters(const ir_epc *e, ir_ep_counters *out);

/* After a burst of frees the heap is trimmed (malloc_trim); this runs a trim that is
 * due (ir_epc_on_timeout does too). */
void ir_epc_maybe_trim(ir_epc *e, uint64_t now);

/* Routing statistics: entries in the connection-id table (tests). */
size_t ir_epc_cid_entries(const ir_epc *e);

#endif
