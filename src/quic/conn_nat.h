/* n0's NAT traversal ("QNT", spec quic-tls.md section 4) and iroh's path policy inside a
 * QUIC connection (sections 3.5, 4.4): the calls the endpoint makes. conn.h includes this
 * header; the connection's own hooks are in conn_internal.h.
 *
 * Roles: the server advertises its candidate addresses with ADD_ADDRESS /
 * REMOVE_ADDRESS; the client runs rounds: REACH_OUT with its own candidates, and probes
 * of the server's (a PATH_CHALLENGE on an existing path's connection id, sent to the
 * candidate); the server probes the REACH_OUT addresses of the newest round. A probe
 * answered from the probed address makes the client open a path there (Backup). When
 * multipath is negotiated and our config offers NAT traversal, both sides also run
 * iroh's selection over the usable paths (path_select.h) and mark the selected one
 * Available, the others Backup; the client keeps one direct path (the others are
 * abandoned with APPLICATION_ABANDON_PATH) and, when path 0 is direct, opens a relay path
 * to a relay candidate of cfg.candidates as a backup. */
#ifndef IR_QUIC_CONN_NAT_H
#define IR_QUIC_CONN_NAT_H

#include <stddef.h>
#include <stdint.h>

#include "iroh.h"
#include "quic/conn.h"

#define IR_NAT_MAX_ADDRS 32          /* iroh's MAX_QNT_ADDRESSES: what one table holds */
#define IR_NAT_PROBE_TRIES 9         /* noq's MAX_NAT_PROBE_ATTEMPTS: per address and round */
/* the probe schedule (noq n0_nat_traversal.rs retry_delay): the base is initial_rtt / 10
 * (333 ms / 10), the gap after the k-th sending base for k = 1 and base * 2^(k-2) after,
 * at most 2 s: 33.3, 33.3, 66.6, 133.2, 266.4, 532.8, 1065.6, 2000 ms */
#define IR_NAT_PROBE_BASE_NS 33300000ull
#define IR_NAT_PROBE_MAX_GAP_NS 2000000000ull
/* iroh's round policy (remote_state.rs) */
#define IR_NAT_ROUND_INTERVAL_NS 5000000000ull    /* HOLEPUNCH_ATTEMPTS_INTERVAL */
#define IR_NAT_UPGRADE_INTERVAL_NS 60000000000ull /* UPGRADE_INTERVAL */
#define IR_NAT_GOOD_RTT_NS 10000000ull            /* GOOD_ENOUGH_LATENCY */
#define IR_NAT_NO_LOCAL_RETRY_NS 100000000ull     /* no local candidates: again then */

/* 1 once QNT is negotiated (both sent TP 0x3d7f91120401, and multipath on) */
int ir_conn_nat_traversal(const ir_conn *c);
/* Our own candidate direct addresses (interfaces, QAD, configured), replacing the last
 * set; copied, in canonical form (an IPv4-mapped IPv6 address counts as IPv4), duplicates
 * dropped, at most IR_NAT_MAX_ADDRS kept. Server: sent as ADD_ADDRESS / REMOVE_ADDRESS
 * (at most as many as the peer's transport parameter allows at once, a removed one counting
 * until its REMOVE_ADDRESS is acknowledged); client: sent as
 * REACH_OUT in its rounds (as many), and a set with a new address starts a round. May be
 * called before QNT is negotiated; without cfg.tp.nat_traversal nothing is kept (no
 * state is allocated). 0, or IR_QUIC_STREAM_ERR (an address of another family
 * than 4 or 6: nothing is changed), IR_QUIC_NO_MEMORY. */
int ir_conn_set_local_addrs(ir_conn *c, const iroh_socket_addr *addrs, size_t n, uint64_t now);
/* Client: starts a holepunch round now (the connection starts them itself too, with
 * iroh's triggers and timers). 0; IR_QUIC_AGAIN when we have no candidate of our own
 * (the connection tries again in 100 ms); IR_QUIC_STREAM_ERR when QNT is not negotiated,
 * we are the server, or the connection is closing. */
int ir_conn_holepunch(ir_conn *c, uint64_t now);

/* ---- what the state is (tests, the endpoint's reports) ---- */

/* client: the number of our current round (0: none yet); server: the newest round of the
 * peer's REACH_OUT frames */
uint64_t ir_conn_nat_round(const ir_conn *c);
/* client: the server's advertised addresses (ADD_ADDRESS), up to cap; returns how many */
size_t ir_conn_nat_remote_addrs(const ir_conn *c, iroh_socket_addr *out, size_t cap);
/* the path iroh's selection chose (UINT64_MAX: none yet) */
uint64_t ir_conn_nat_selected(const ir_conn *c);
/* the bytes the NAT traversal state holds (0: none allocated); its tables grow with use */
size_t ir_nat_state_bytes(const ir_conn *c);

#endif
