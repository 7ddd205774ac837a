/* One QUIC connection as a sans-IO state machine (RFC 9000, 9001, 9002, 9221).
 *
 * The caller owns sockets and clocks: it hands in received datagrams with the time
 * (ir_conn_recv), asks for datagrams to send (ir_conn_send), and calls
 * ir_conn_on_timeout when ir_conn_timeout's deadline passes. Time is in nanoseconds on
 * any monotonic clock. Nothing here blocks, sleeps, opens sockets or keeps global state.
 *
 * Paths: a path is identified by an opaque network address (ir_netaddr) that the caller
 * gives with each datagram; the connection answers on the path a datagram came from.
 * State is kept per path (path 0 today) so that multipath adds paths, not a redesign. */
#ifndef IR_QUIC_CONN_H
#define IR_QUIC_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "iroh.h"
#include "net/netaddr.h"
#include "quic/packet.h"
#include "quic/tp.h"
#include "tls/quic_errors.h"
#include "tls/tls.h"

typedef struct ir_conn ir_conn;

typedef enum ir_cc_algo { IR_CC_CUBIC = 0, IR_CC_NEWRENO = 1 } ir_cc_algo;

typedef struct ir_conn_config {
    const ir_tls_identity *identity;
    const uint8_t *const *alpns; /* client: offered; server: accepted, by preference */
    const size_t *alpn_lens;
    size_t n_alpns;
    const iroh_endpoint_id *remote_id; /* client: the EndpointId dialed */
    int send_sni;                      /* client: iroh 1.0.2-style SNI */
    /* X.509 client (an X.509 identity, remote_id NULL): the name the server's certificate
     * must carry (QUIC address discovery with a relay) */
    const char *tls_server_name;
    /* QUIC address discovery (draft-seemann-quic-address-discovery as noq, spec relay.md
     * 4.3), on when tp.has_observed_address: a sender role (0 or 2) reports the peer's
     * address on each new path with OBSERVED_ADDRESS; addr_of turns a path address into
     * an IP address (returns 0) for that. A receiver role (1 or 2) gets
     * IR_EV_OBSERVED_ADDRESS and ir_conn_observed_addr. */
    int (*addr_of)(const ir_netaddr *a, iroh_socket_addr *out);
    ir_tp tp;                          /* our transport parameters (ir_tp_set_iroh_defaults) */
    uint64_t keep_alive_ns;            /* PING after this much send idleness; 0 = off */
    ir_cc_algo cc;
    /* The endpoint's routing table: called with live = 1 for each connection id of ours
     * when it is made (also the first, during ir_conn_client_new / _server_new), and with
     * live = 0 when the peer retires it; NULL: not told. The ids of a freed connection are
     * not reported: the caller forgets them itself. */
    void (*on_cid)(void *ctx, const ir_cid *cid, int live);
    void *cid_ctx;
    /* Client: the peer's candidate addresses (direct ones, relay paths), path 0's among
     * them or not; NULL/0: none. Copied. While the handshake runs, every datagram also
     * goes to each of them (iroh's first-flight fan-out, spec quic-tls.md 2.4), and path 0
     * moves to wherever the first answer comes from; multipath will make them paths. At
     * most IR_CONN_MAX_CANDIDATES are kept. */
    const ir_netaddr *candidates;
    size_t n_candidates;
    /* Randomness for connection ids, path challenges and grease. */
    void (*random)(void *ctx, uint8_t *buf, size_t len);
    void *random_ctx;
    /* Key for stateless reset tokens: token = keyed BLAKE3(reset_key, cid)[0..16). */
    uint8_t reset_key[32];
    /* Stream receive window limits (bytes): start at the TP values, grow up to these. */
    uint64_t max_stream_window, max_conn_window;
    /* Send buffer limit per stream; writes beyond it are refused until acked. */
    uint64_t max_stream_send_buffer;
    /* Server only: the client came back with a valid Retry token; original_dcid is the
     * DCID of its very first Initial (from the token) and retry_scid the SCID our Retry
     * carried (the DCID of this Initial). */
    int retried;
    ir_cid original_dcid, retry_scid;
    /* Server only: a handshake not complete this long after the connection was made ends
     * it silently (close reason "handshake timed out"), whatever the idle timeout; 0: none */
    uint64_t handshake_timeout_ns;
    /* AEAD usage limits (RFC 9001 6.6), 0 for the negotiated suite's: packets sealed with
     * one key (AES-GCM 2^23; ChaCha20-Poly1305 none below 2^62) and packets failing
     * authentication in the whole connection (AES-GCM 2^52, ChaCha20-Poly1305 2^36). A
     * lower value replaces the suite's (tests; at least 16). From half the confidentiality
     * limit on the 1-RTT keys are updated as soon as that is allowed; a key that reaches
     * 15/16 of it (no update possible in time, or Initial and Handshake keys, which never
     * update) closes the connection with AEAD_LIMIT_REACHED, and no key seals more than
     * the limit. More failed opens than the integrity limit close it likewise. */
    uint64_t aead_conf_limit;
    uint64_t aead_integrity_limit;
} ir_conn_config;

/* Fills a config with iroh's defaults (transport parameters, 5 s keep-alive, CUBIC). */
void ir_conn_config_defaults(ir_conn_config *cfg);

/* Client: a new connection to a peer at `path`. The first flight is ready to send. */
int ir_conn_client_new(const ir_conn_config *cfg, const ir_netaddr *path, uint64_t now,
                       ir_conn **out);

/* Server: a new connection for a client Initial (its parsed header). The caller routes
 * later datagrams to it by destination CID (ir_conn_owns_cid). */
int ir_conn_server_new(const ir_conn_config *cfg, const ir_pkt_hdr *initial,
                       const ir_netaddr *path, uint64_t now, ir_conn **out);

void ir_conn_free(ir_conn *c);

/* Processes one received datagram (it is decrypted in place, so it must be writable). */
void ir_conn_recv(ir_conn *c, const ir_netaddr *from, uint8_t *data, size_t len, uint64_t now);

/* Writes the next datagram to send into buf (cap >= 1200 bytes, ideally 1472) and its
 * destination into *to. Returns its length, or 0 when there is nothing to send now. */
size_t ir_conn_send(ir_conn *c, uint8_t *buf, size_t cap, ir_netaddr *to, uint64_t now);
/* The same in batches ready for UDP GSO: consecutive datagrams of at most dgram_cap
 * bytes each (1200 <= dgram_cap <= IR_CONN_MAX_DGRAM) to one destination, all of *seg
 * bytes but the last, which may be shorter; at most cap bytes. Returns the total (0:
 * nothing to send). A datagram that cannot join the batch (another destination, a larger
 * one) is kept and comes first in the next call, so call until it returns 0. */
#define IR_CONN_MAX_DGRAM 1500
#define IR_CONN_MAX_CANDIDATES 8
size_t ir_conn_send_batch(ir_conn *c, uint8_t *buf, size_t cap, size_t dgram_cap, ir_netaddr *to,
                          size_t *seg, uint64_t now);

/* The next deadline (absolute ns), UINT64_MAX if none; then call ir_conn_on_timeout. */
uint64_t ir_conn_timeout(const ir_conn *c);
void ir_conn_on_timeout(ir_conn *c, uint64_t now);

/* 1 if a datagram whose destination CID is `cid` belongs to this connection. */
int ir_conn_owns_cid(const ir_conn *c, const uint8_t *cid, size_t len);
/* The stateless reset token of the peer's connection id in use (the only one a reset
 * from the peer may carry, RFC 9000 10.3.1): 1 and *token, or 0 if none is known. */
int ir_conn_peer_reset_token(const ir_conn *c, uint8_t token[16]);
/* Moves to another of the peer's connection ids and retires the one in use (RFC 9000
 * 5.1.2; a migrating endpoint does so, 9.5): 0, or -1 when the handshake is not complete
 * or the peer gave no unused id. */
int ir_conn_rotate_dcid(ir_conn *c);
/* Server side: the DCID of the client's Initials, to route its retransmits: the one it
 * chose for its first Initial or, after our Retry, the Retry's SCID. */
const ir_cid *ir_conn_initial_dcid(const ir_conn *c);

/* ---- state and events ------------------------------------------------------------------- */

typedef enum ir_conn_state {
    IR_CONN_HANDSHAKE,
    IR_CONN_ESTABLISHED,
    IR_CONN_CLOSING,  /* we sent CONNECTION_CLOSE */
    IR_CONN_DRAINING, /* the peer closed */
    IR_CONN_CLOSED,   /* nothing more to do: free it */
} ir_conn_state;

ir_conn_state ir_conn_get_state(const ir_conn *c);
/* 1 once the handshake completed (it stays 1 after the connection closes). */
int ir_conn_handshake_complete(const ir_conn *c);

typedef enum ir_event_type {
    IR_EV_NONE = 0,
    IR_EV_CONNECTED,       /* handshake complete */
    IR_EV_STREAM_OPENED,   /* the peer opened stream `stream_id` */
    IR_EV_STREAM_READABLE, /* data or FIN (or a reset) can be read */
    IR_EV_STREAM_WRITABLE, /* flow control or buffer space opened up */
    IR_EV_STREAM_STOPPED,  /* the peer sent STOP_SENDING (code) */
    IR_EV_STREAMS_AVAILABLE, /* more streams may be opened */
    IR_EV_DATAGRAM,        /* a datagram can be read */
    IR_EV_CLOSED,          /* the connection is closed (see ir_conn_close_info) */
    /* path events: stream_id carries the path id (0 without multipath), code the
     * PATH_ABANDON error code (IR_EV_PATH_ABANDONED) */
    IR_EV_PATH_CHANGED,    /* a path moved to a new peer address (ir_conn_path_addr for
                              path 0, ir_conn_paths for any) */
    IR_EV_PATH_VALIDATED,  /* a path's current address answered a PATH_CHALLENGE */
    IR_EV_OBSERVED_ADDRESS, /* the peer told us our address (ir_conn_observed_addr) */
    IR_EV_PATH_OPENED,     /* a new path (multipath): ours (ir_conn_open_path) or the peer's */
    IR_EV_PATH_ABANDONED,  /* PATH_ABANDON sent or received for the path (code) */
    IR_EV_PATH_SELECTED,   /* application data now goes out on this path */
} ir_event_type;

typedef struct ir_event {
    ir_event_type type;
    uint64_t stream_id; /* the stream, or the path id of a path event */
    uint64_t code;
} ir_event;

/* Takes the next event; returns 0 when there is none. CONNECTED, STREAM_OPENED and CLOSED
 * never get lost (they need no memory); the other events are hints that may be dropped
 * when memory runs out (state is always there to read). */
int ir_conn_poll_event(ir_conn *c, ir_event *ev);
/* How many hints were dropped so far (the queue could not grow): one who sleeps until a
 * hint names what it waits for looks again at everything when this changes. */
uint64_t ir_conn_hints_dropped(const ir_conn *c);

/* The number of streams the peer has opened so far (uni 0: bidirectional, 1:
 * unidirectional), and the id of the k-th of them (0-based). */
uint64_t ir_conn_peer_streams(const ir_conn *c, int uni);
uint64_t ir_conn_peer_stream_id(const ir_conn *c, int uni, uint64_t k);

typedef struct ir_close_info {
    int closed;        /* 1 once closing started */
    int by_peer;       /* 1: the peer's CONNECTION_CLOSE; 0: ours (or a local error/timeout) */
    int application;   /* 1: application close (0x1d) */
    int idle_timeout;  /* 1: closed by idle timeout, silently */
    int reset;         /* 1: the peer sent a stateless reset */
    uint64_t code;
    char reason[256];
} ir_close_info;

const ir_close_info *ir_conn_close_info(const ir_conn *c);

/* The peer address path 0 uses now. */
const ir_netaddr *ir_conn_path_addr(const ir_conn *c);
/* Our address as the peer last reported it (QUIC address discovery): 0, or -1 if none. */
int ir_conn_observed_addr(const ir_conn *c, iroh_socket_addr *out);

/* ---- paths (draft-ietf-quic-multipath as noq 1.0 speaks it) ------------------------------
 *
 * Without multipath a connection has one path, id 0, which follows the peer (migration,
 * NAT rebinding). With multipath negotiated each path has its own id, connection ids,
 * 1-RTT packet number space, ACKs (PATH_ACK), recovery and congestion control; the
 * client opens paths, either side sets its status and abandons them. The calls below
 * return IR_QUIC_STREAM_ERR (ir_quic_status) while multipath is not negotiated. */

#define IR_CONN_MAX_PATHS 8 /* iroh's MAX_MULTIPATH_PATHS: open paths at once */

/* 1 once multipath is negotiated: both sent initial_max_path_id, handshake done */
int ir_conn_multipath(const ir_conn *c);
/* Client: opens a new path to addr (a new path id, a fresh peer CID of that path id, its
 * own PN space), validated with a PATH_CHALLENGE before data uses it; status Available
 * (available = 1) or Backup. 0 and *path_id; IR_QUIC_AGAIN when path ids or the peer's
 * CIDs for the next id are exhausted (PATHS_BLOCKED / PATH_CIDS_BLOCKED is sent);
 * IR_QUIC_STREAM_ERR when multipath is not negotiated or we are the server. */
int ir_conn_open_path(ir_conn *c, const ir_netaddr *addr, int available, uint64_t now,
                      uint64_t *path_id);
/* Client: a path to addr (Backup) now if the connection can open one, else as soon as it
 * can: the address is kept and opened when the peer's connection ids for the next path id
 * arrive, its MAX_PATH_ID rises or one of our path slots frees (the connection's timer
 * does it; IR_EV_PATH_OPENED tells). An address that is already an open path's, or already
 * kept, is taken as is. At most IR_CONN_PATH_QUEUE addresses wait at once. 0 (opened or
 * kept); IR_QUIC_AGAIN when that many wait already (nothing kept); IR_QUIC_NO_MEMORY;
 * IR_QUIC_STREAM_ERR when multipath is not negotiated, we are the server, or the
 * connection is closing. */
#define IR_CONN_PATH_QUEUE 8
int ir_conn_add_path(ir_conn *c, const ir_netaddr *addr, uint64_t now);
/* how many addresses wait for a path (ir_conn_add_path) */
size_t ir_conn_paths_waiting(const ir_conn *c);
/* Local path status (PATH_STATUS_AVAILABLE / _BACKUP is sent). 0, or IR_QUIC_STREAM_ERR
 * (no such open path, or no multipath). */
int ir_conn_path_set_status(ir_conn *c, uint64_t path_id, int available);
/* PATH_ABANDON with code (e.g. 0x3e APPLICATION_ABANDON_PATH): nothing more is sent on
 * the path, what was in flight on it is sent again on the others, and its state goes 3
 * PTOs later (then MAX_PATH_ID rises by one). 0, or IR_QUIC_STREAM_ERR (no such open path,
 * no multipath, or the last open path: as noq, close the connection instead). When the
 * peer abandons our last path the connection waits 3 initial PTOs for a new one, then
 * closes with NO_VIABLE_PATH (0x10). With multipath a path that received nothing for
 * 15 s (30 s if cfg.addr_of says it is not an IP path: a relay path) is abandoned with
 * 0x3e76, unless it is the last open one; each validated path sends a keep-alive PING
 * after keep_alive_ns without ack-eliciting packets. */
int ir_conn_path_abandon(ir_conn *c, uint64_t path_id, uint64_t code, uint64_t now);

/* abandon codes (multipath draft; noq's transport_error.rs) */
#define IR_PATH_APPLICATION_ABANDON 0x3e
#define IR_PATH_RESOURCE_LIMIT_REACHED 0x3e75
#define IR_PATH_UNSTABLE_OR_POOR 0x3e76
#define IR_PATH_NO_CID_AVAILABLE 0x3e77

typedef struct ir_conn_path_info {
    uint64_t id;           /* path id; 0 without multipath */
    ir_netaddr addr;       /* the peer's address on it (UDP or a relay netaddr) */
    int validated;         /* answered a PATH_CHALLENGE (or the handshake ran on it) */
    int available;         /* our status: 1 Available, 0 Backup */
    int peer_available;    /* the peer's status */
    int abandoned;         /* PATH_ABANDON sent or received; it goes away soon */
    int sending;           /* application data goes out on it now ("selected") */
    int degraded;          /* multipath: stopped getting acknowledgements while another
                            * path works; skipped by selection, probed until it answers */
    uint64_t rtt_ns, min_rtt_ns, cwnd, max_datagram;
    uint64_t pkts_sent, pkts_recv, pkts_lost, bytes_sent, bytes_recv;
    uint64_t last_recv_ns; /* when the last packet came on it (the caller's clock); 0: none */
} ir_conn_path_info;
/* Up to cap paths (open and abandoned-not-yet-gone), by path id; returns how many exist. */
size_t ir_conn_paths(const ir_conn *c, ir_conn_path_info *out, size_t cap);

/* Peer identity and ALPN, once the handshake is complete. */
int ir_conn_peer_id(const ir_conn *c, iroh_endpoint_id *out);
const uint8_t *ir_conn_alpn(const ir_conn *c, size_t *len);

/* Closes with an application (app = 1) or transport error code. Queues CONNECTION_CLOSE. */
void ir_conn_close(ir_conn *c, int app, uint64_t code, const char *reason, uint64_t now);

/* Starts a key update (RFC 9001 section 6) at the next 1-RTT packet; -1 if not allowed
 * now: the handshake is not confirmed, or the previous update is not acknowledged yet
 * (6.1), or it was acknowledged less than three PTOs ago (6.5). */
int ir_conn_initiate_key_update(ir_conn *c);

/* ---- streams ---------------------------------------------------------------------------- */

/* What the stream and datagram calls below return instead of a count: the QUIC layer's
 * own status codes. Their values lie far below every IROH_ERR_* (which run from -1 down
 * to the -20s), so that one can never pass for the other; the public API converts them
 * in one place (ir_api_status_from_quic, endpoint/api_status.h). */
typedef enum ir_quic_status {
    IR_QUIC_OK = 0,
    IR_QUIC_AGAIN = -1001,          /* nothing now: wait for an event */
    IR_QUIC_STREAM_ERR = -1002,     /* unknown stream, wrong direction, finished, or closed */
    IR_QUIC_STREAM_RESET = -1003,   /* the peer reset the stream (code in *code) */
    IR_QUIC_NO_MEMORY = -1004,      /* an allocation failed (nothing was taken) */
    IR_QUIC_STREAM_STOPPED = -1005, /* the peer sent STOP_SENDING: nothing more is sent */
} ir_quic_status;

/* Opens a stream (bidi or uni); IR_QUIC_AGAIN when the peer's MAX_STREAMS does not allow it,
 * IR_QUIC_NO_MEMORY (nothing used up), IR_QUIC_STREAM_ERR when the connection cannot have one. */
int ir_conn_stream_open(ir_conn *c, int bidi, uint64_t *id);
/* Buffers up to len bytes; returns how many were taken (maybe 0 if the buffer is full),
 * IR_QUIC_STREAM_STOPPED after the peer's STOP_SENDING, IR_QUIC_NO_MEMORY, or
 * IR_QUIC_STREAM_ERR. fin marks the end when all len bytes were taken. */
long ir_conn_stream_write(ir_conn *c, uint64_t id, const uint8_t *data, size_t len, int fin);
/* Reads up to cap bytes. Returns the count (> 0), 0 at the end of the stream (all data
 * and FIN read), IR_QUIC_AGAIN when nothing is ready, IR_QUIC_STREAM_RESET (with *code), or
 * IR_QUIC_STREAM_ERR. */
long ir_conn_stream_read(ir_conn *c, uint64_t id, uint8_t *buf, size_t cap, uint64_t *code);
int ir_conn_stream_reset(ir_conn *c, uint64_t id, uint64_t code);
int ir_conn_stream_stop(ir_conn *c, uint64_t id, uint64_t code);
/* 1 when everything written (and the FIN) is acknowledged by the peer. */
int ir_conn_stream_send_done(const ir_conn *c, uint64_t id);

/* How the sending half of a stream ended (ir_conn_stream_send_result). */
#define IR_SEND_OPEN 0      /* not yet */
#define IR_SEND_DELIVERED 1 /* everything and the FIN acknowledged (or the stream is gone) */
#define IR_SEND_STOPPED 2   /* the peer sent STOP_SENDING before that (*code: its code) */
#define IR_SEND_RESET 3     /* we reset it (*code: our code) */
int ir_conn_stream_send_result(const ir_conn *c, uint64_t id, uint64_t *code);
/* hold = 1: an application handle needs the answer above for as long as it lives, so a
 * stream whose sending ended by a reset is not freed when both halves are done (its
 * MAX_STREAMS credit is still given back at once); hold = 0 lets it go. */
void ir_conn_stream_hold(ir_conn *c, uint64_t id, int hold);

/* ---- datagrams (RFC 9221) --------------------------------------------------------------- */

/* Queues a datagram; IR_QUIC_STREAM_ERR if the peer does not take them or it is too big
 * for one packet, IR_QUIC_AGAIN if the queue is full, IR_QUIC_NO_MEMORY. */
int ir_conn_datagram_send(ir_conn *c, const uint8_t *data, size_t len);
/* Takes the next received datagram: its length, or IR_QUIC_AGAIN. Longer ones are cut. */
long ir_conn_datagram_recv(ir_conn *c, uint8_t *buf, size_t cap);
/* The largest datagram payload that fits now. */
size_t ir_conn_datagram_max(const ir_conn *c);

/* ---- statistics ------------------------------------------------------------------------- */

typedef struct ir_conn_stats {
    uint64_t rtt_ns, rtt_var_ns, min_rtt_ns;
    uint64_t cwnd, bytes_in_flight;
    uint64_t pkts_sent, pkts_recv, pkts_lost, bytes_sent, bytes_recv;
    uint64_t key_updates;
    uint64_t max_datagram; /* the current path's datagram size (1200, or more after PMTUD) */
    int retried;           /* the handshake went through a Retry (client followed, server sent) */
    /* multipath frames (ir_conn_multipath): PATH_ACK and PATH_NEW_CONNECTION_ID sent and
     * received, paths opened (by either side) and abandoned */
    uint64_t path_acks_sent, path_acks_recv, path_cids_sent, path_cids_recv;
    uint64_t paths_opened, paths_abandoned;
    /* paths marked degraded (no acknowledgement while another path works) and back */
    uint64_t paths_degraded, paths_recovered;
    /* work, not protocol: scans of every path's connection-id tables by the send side
     * (looking for (PATH_)NEW/RETIRE_CONNECTION_ID to send) */
    uint64_t cid_table_scans;
} ir_conn_stats;

void ir_conn_get_stats(const ir_conn *c, ir_conn_stats *out);

/* n0 NAT traversal: ir_conn_nat_traversal, ir_conn_set_local_addrs, ir_conn_holepunch */
#include "quic/conn_nat.h"

#endif
