/* Internal state of a QUIC connection, shared by its files: conn.c (lifecycle, close,
 * events, timers), conn_hs.c, conn_keys.c, conn_recv.c, conn_send.c,
 * conn_cid.c, conn_path.c, conn_stream.c, conn_dgram.c and recovery.c (RTT, loss
 * detection, congestion control); docs/ARCHITECTURE.md has the layout. */
#ifndef IR_QUIC_CONN_INTERNAL_H
#define IR_QUIC_CONN_INTERNAL_H

#include "quic/cc.h"
#include "quic/conn.h"
#include "quic/frame.h"
#include "quic/ranges.h"
#include "quic/stream.h"
#include "quic/stream_map.h"

#define NS_PER_MS 1000000ull
#define NS_PER_US 1000ull

#define CID_LEN 8
#define CLIENT_DCID_LEN 16
#define MIN_PAYLOAD 4 /* pn + payload must allow a header-protection sample */
#define ACK_RANGES_MAX 32

/* ranges of received packet numbers kept exactly for duplicate detection (16 bytes each):
 * beyond them the oldest gap is filled, so at most 4 KiB per packet number space */
#define SEEN_RANGES_MAX 256
#define MAX_CLOSE_REASON 200

/* transport error codes: IR_QERR_* of tls/quic_errors.h (through quic/frame.h) */

enum { SP_INITIAL = 0, SP_HANDSHAKE = 1, SP_APP = 2, SP_COUNT = 3 };

/* What a sent packet carried, so that a loss can be repaired and an ack can release:
 * one record per frame, typed by a sent_kind that the module writing the frame defines
 * with its handlers (conn_stream.c the STREAM kinds, conn_cid.c the connection id ones,
 * ...). Recovery calls the handlers and knows nothing of the frames. A new frame type is
 * a new sent_kind next to the code that writes it. */
typedef struct sent_frame sent_frame;
typedef struct qpath qpath;

typedef struct sent_kind {
    const char *name;
    /* the packet (sent on `path` in `space`) was acknowledged / declared lost (NULL:
     * nothing to do) */
    void (*on_acked)(ir_conn *c, qpath *path, int space, const sent_frame *f);
    void (*on_lost)(ir_conn *c, qpath *path, int space, const sent_frame *f);
    /* a PTO probe sends its data again at once (CRYPTO, STREAM; RFC 9002 6.2.4) */
    int probe_repair;
} sent_kind;

struct sent_frame {
    const sent_kind *kind;
    uint64_t a, b, c; /* the kind's own: a stream id, an offset, a length, a sequence... */
    uint8_t fin;
};

/* the kinds, by the module that writes them */
extern const sent_kind ir_sf_stream;          /* conn_stream.c: a = id, b = offset, c = length, fin */
extern const sent_kind ir_sf_reset_stream;    /* a = stream id */
extern const sent_kind ir_sf_stop_sending;    /* a = stream id */
extern const sent_kind ir_sf_max_data;
extern const sent_kind ir_sf_max_stream_data; /* a = stream id */
extern const sent_kind ir_sf_max_streams;     /* a = 1 bidi, 0 uni */
extern const sent_kind ir_sf_crypto;          /* conn_hs.c: b = offset, c = length */
extern const sent_kind ir_sf_handshake_done;
extern const sent_kind ir_sf_ack;             /* conn_send.c: a = largest acknowledged */
extern const sent_kind ir_sf_ping;
extern const sent_kind ir_sf_new_cid;         /* conn_cid.c: a = sequence number */
extern const sent_kind ir_sf_retire_cid;      /* a = sequence number */
extern const sent_kind ir_sf_path_challenge;  /* conn_path.c: a = its data (8 bytes) */
extern const sent_kind ir_sf_observed_address; /* a = sequence number */
extern const sent_kind ir_sf_mtu_probe;       /* a = the probe's size */
extern const sent_kind ir_sf_datagram;        /* conn_dgram.c */
extern const sent_kind ir_sf_nat_add;         /* conn_nat.c: a = sequence number */
extern const sent_kind ir_sf_nat_remove;      /* a = sequence number */
extern const sent_kind ir_sf_nat_reach_out;   /* a = round, b = index in the round */

typedef struct sent_pkt {
    uint64_t pn;
    uint64_t time;
    size_t first_frame; /* its frames: the space's frames[first_frame .. + nframes) */
    uint32_t nframes;
    uint32_t size;
    uint8_t ack_eliciting;
    uint8_t in_flight;
    uint8_t gone;       /* acknowledged or lost: a hole in the list until it is compacted */
    uint8_t mtu_probe;  /* a path MTU probe: its loss says nothing about congestion */
} sent_pkt;

typedef struct pn_space {
    uint64_t next_pn;
    uint64_t largest_acked;      /* UINT64_MAX: none */
    uint64_t largest_recv;       /* UINT64_MAX: none */
    uint64_t largest_recv_time;
    /* received packet numbers, twice: `seen` discards duplicates (RFC 9000 12.3; exact
     * above a floor, bounded); `ack_ranges` is what our ACK frames report: at most
     * ACK_RANGES_MAX ranges (the lowest dropped beyond), and everything below the largest
     * acknowledged of an ACK frame of ours is dropped once the peer acknowledges the
     * packet that carried it (RFC 9000 13.2.4), except the largest received */
    ir_pn_seen seen;
    ir_ranges ack_ranges;
    int ack_pending;             /* an ACK should go out */
    unsigned ack_eliciting_since; /* ack-eliciting packets since our last ACK */
    uint64_t ack_deadline;       /* UINT64_MAX: none */
    sent_pkt *sent;              /* in pn order, with holes (gone) */
    size_t nsent, capsent;
    size_t sent_first;           /* every entry before this one is gone */
    size_t sent_gone;            /* entries gone */
    /* the frame records of the sent packets, in the same order (a gone packet's stay
     * until the list is compacted): one pool per space, no allocation per packet */
    sent_frame *frames;
    size_t nframes, capframes;
    uint64_t loss_time;          /* UINT64_MAX: none */
    uint64_t last_ack_eliciting_time;
    uint64_t in_flight_ack_eliciting; /* count of ack-eliciting packets in flight */
    int discarded;               /* Initial, Handshake: dropped with the epoch's keys */
    int probe_pending;           /* PTO: send an ack-eliciting packet now */
    /* where the 1-RTT key phase changed, in this space's numbers (RFC 9001 6): the first
     * packet we sent in our current phase, the first received in the current receive
     * phase, and the largest received under older keys than that (UINT64_MAX: none) */
    uint64_t key_phase_start_pn;
    uint64_t rx_phase_start_pn;
    uint64_t rx_old_largest;
} pn_space;

/* An encryption epoch (Initial, Handshake, 1-RTT): what belongs to the keys, not to a
 * path. Its packet protection keys (each counting its own use, RFC 9001 6.6) and its
 * CRYPTO stream. The Initial and Handshake epochs have one packet number space each (the
 * connection's, c->sp); the 1-RTT epoch is shared by every path's 1-RTT space. */
typedef struct qepoch {
    ir_pkt_keys rx, tx;
    int have_rx, have_tx;
    ir_sendbuf crypto_send;
    ir_recvbuf crypto_recv;
} qepoch;

/* The 1-RTT epoch's key update (RFC 9001 6): the key phases and the keys around the
 * current receive keys. The packet numbers where a phase began are per packet number
 * space (pn_space). */
typedef struct qkeyupdate {
    int key_phase;       /* phase of our send keys */
    int rx_phase;        /* phase of the current receive keys */
    int pending_ack;     /* our update (or the one we followed) not yet acknowledged */
    uint64_t confirmed;  /* when the last update was acknowledged (0: never) */
    uint64_t updates;    /* count */
    ir_pkt_keys rx_next;
    int have_rx_next;
    ir_pkt_keys rx_prev;
    int have_rx_prev;
    uint64_t rx_prev_expiry;
} qkeyupdate;

typedef struct qstream {
    uint64_t id;
    int local;          /* we opened it */
    int has_send, has_recv;
    ir_sendbuf send;
    ir_recvbuf recv;
    uint64_t send_max;  /* the peer's limit for our data */
    uint64_t recv_max;  /* our advertised limit */
    uint64_t recv_window;
    uint64_t last_window_update;
    int max_data_pending;
    int reset_pending, reset_sent_acked, reset_sent;
    uint64_t reset_code, reset_final;
    int stop_pending, stop_sent;
    uint64_t stop_code;
    int peer_reset;
    uint64_t peer_reset_code;
    int peer_stopped;
    int held;           /* an application handle may still ask how the sending ended
                           (ir_conn_stream_hold): one that ended by a reset is kept */
    int fin_read;       /* the application read the end */
    int counted_closed; /* counted toward MAX_STREAMS credit */
    int blocked_event;  /* writable event owed */
    /* scheduling (conn_stream.c): data_link is in the connection's send_q (stream data
     * to send within the stream's limit) or conn_blocked_q (that data waits for MAX_DATA);
     * ctrl_link in ctrl_q (RESET_STREAM, STOP_SENDING or MAX_STREAM_DATA to send) */
    ir_qlink data_link, ctrl_link;
    uint8_t ev_queued;  /* its READABLE (1) / WRITABLE (2) event waits in the queue */
} qstream;

typedef struct local_cid {
    uint64_t seq;
    ir_cid cid;
    uint8_t token[IR_RESET_TOKEN_LEN];
    int retired;
    int announce_pending; /* NEW_CONNECTION_ID to (re)send */
} local_cid;

typedef struct remote_cid {
    uint64_t seq;
    ir_cid cid;
    uint8_t token[IR_RESET_TOKEN_LEN];
    int has_token;
    int retire_pending;
} remote_cid;

#define MAX_LOCAL_CIDS 8
#define MAX_REMOTE_CIDS 8

/* the connection ids of one path id: ours (the peer sends to them) and the peer's */
typedef struct qcids {
    local_cid lcid[MAX_LOCAL_CIDS];
    size_t nlcid;
    uint64_t next_lcid_seq;
    remote_cid rcid[MAX_REMOTE_CIDS];
    size_t nrcid;
    size_t active_rcid;
    uint64_t rcid_retire_prior_to;
} qcids;

/* A latent path id (multipath): one up to our MAX_PATH_ID that is not open yet. It has
 * only connection ids (so that the peer can open it, and we can); its full qpath is made
 * when the path opens (struct ir_conn, latent[]). */
typedef struct qlatent {
    uint64_t id;
    int cids_blocked_pending; /* PATH_CIDS_BLOCKED to send (we have no id of the peer's) */
    qcids cids;
} qlatent;

/* Path validation (RFC 9000 8.2) of one address: the PATH_CHALLENGEs sent to it. Each
 * (re)transmission carries new data; the newest IR_PROBE_CHALLENGES stay outstanding, and
 * a PATH_RESPONSE to any of them validates the address. */
#define IR_PROBE_CHALLENGES 4
/* addresses a path probes at once (its own, after a migration, and candidates) */
#define IR_MAX_PROBES 4
/* PATH_RESPONSEs waiting to go out on a path; beyond, the oldest is dropped (a peer's
 * PATH_CHALLENGEs cost it bytes, never our memory) */
#define IR_MAX_RESPONSES 4

enum { PROBE_FREE = 0, PROBE_ACTIVE, PROBE_VALIDATED, PROBE_FAILED };

typedef struct qprobe {
    ir_netaddr addr;
    uint8_t state;          /* PROBE_* */
    uint8_t for_path;       /* validates the path's own address (path->addr) */
    uint8_t pending;        /* a PATH_CHALLENGE should go out */
    uint8_t small;          /* the last went out in a datagram under 1200 bytes */
    uint8_t nchal;          /* challenges outstanding, the newest last */
    uint8_t chal[IR_PROBE_CHALLENGES][8];
    unsigned count;         /* times sent */
    uint64_t sent;          /* when one was last sent */
    uint64_t deadline;      /* given up then */
} qprobe;

typedef struct qresponse {
    uint8_t data[8];
    ir_netaddr addr;        /* where the PATH_CHALLENGE came from: the response goes there */
    size_t allow;           /* 3 x the datagram that carried it: the anti-amplification
                             * limit of a response to another address (RFC 9000 8.2.2) */
} qresponse;

/* A path slot's state (multipath): free (or, with latent[] of the slot set, a latent
 * path id: qlatent); PS_LATENT only while a latent id's slot is being made (to open it,
 * or to abandon it); open; abandoned (PATH_ABANDON sent or received: its packet number
 * space is kept for 3 PTOs to acknowledge stragglers, then the slot is freed and
 * MAX_PATH_ID raised by one, the new id taking the slot as latent). */
enum { PS_FREE = 0, PS_LATENT, PS_OPEN, PS_ABANDONED };

struct qpath {
    uint64_t id;                     /* path id (multipath draft): 0 for the first */
    uint8_t state;                   /* PS_* */
    ir_netaddr addr;
    int validated;
    int initiated;                   /* we opened it toward an address we chose */
    /* multipath status: ours and the peer's (PATH_STATUS_*), abandoned (PATH_ABANDON
     * sent or received) */
    int available, peer_available, abandoned;
    uint64_t status_seq;             /* the next PATH_STATUS sequence number we send */
    int status_pending;              /* PATH_STATUS_* to (re)send */
    uint64_t peer_status_seq;        /* the newest the peer sent */
    int have_peer_status;
    int abandon_pending;             /* PATH_ABANDON to (re)send */
    uint64_t abandon_code;
    uint64_t drain_deadline;         /* abandoned: the slot is freed then */
    uint64_t last_recv;              /* multipath idle timeout: the last packet on it */
    uint64_t last_eliciting_sent;    /* per-path keep-alive */
    /* fallback (multipath): no acknowledgement for IR_PATH_DEGRADE_PTOS PTOs (and at least
     * IR_PATH_DEGRADE_MIN_NS) while another validated path works: skipped by the scheduler
     * and the path selection, its packets in flight declared lost, probed with PINGs until
     * an acknowledgement clears the mark */
    int degraded;
    uint64_t last_acked;             /* when the path last had a packet newly acknowledged */
    uint64_t peer_backup_at;         /* when the peer last turned it from Available to Backup */
    /* what went over it (ir_conn_paths) */
    uint64_t pkts_sent, pkts_recv, pkts_lost, tx_bytes, rx_bytes;
    uint64_t bytes_recv, bytes_sent; /* for the anti-amplification limit */
    ir_netaddr prev_addr;            /* the last validated address, to return to */
    int have_prev;
    /* addresses being validated, and PATH_RESPONSEs to send (in arrival order) */
    qprobe probes[IR_MAX_PROBES];
    qresponse resp[IR_MAX_RESPONSES];
    size_t nresp;

    /* the path's 1-RTT packet number space (its own numbers, ACKs and sent packets) */
    pn_space app;

    /* its connection ids (those it had as a latent id, and on) */
    qcids cids;

    /* its recovery and congestion control (RFC 9002; Initial and Handshake packets
     * count on path 0) */
    uint64_t latest_rtt, smoothed_rtt, rttvar, min_rtt;
    int have_rtt;
    unsigned pto_count;
    uint64_t bytes_in_flight;
    uint64_t max_datagram;
    uint64_t pace_tokens;     /* pacing credit in bytes (RFC 9002 7.7) */
    uint64_t pace_time;       /* when the credit was last topped up */
    ir_cc cc;                 /* its congestion controller (cc.h: cc.cwnd, cc.ssthresh) */

    /* path MTU discovery (RFC 9000 14.3, RFC 8899 in brief): one probe size, tried up to
     * three times once the path is validated; max_datagram grows when one is acknowledged
     * and falls back to 1200 when the larger packets stop getting through */
    uint8_t mtu_state; /* MTU_IDLE, MTU_DUE, MTU_IN_FLIGHT, MTU_DONE */
    uint8_t mtu_tries;
    uint64_t mtu_next; /* earliest time of the next probe */
};

enum { MTU_IDLE = 0, MTU_DUE, MTU_IN_FLIGHT, MTU_DONE };
/* the size probed: 1500-byte links under IPv6 (and IPv4) carry it; at most the peer's
 * max_udp_payload_size */
#define IR_MTU_PROBE_SIZE 1452

/* path slots of a connection: path 0, and with multipath the path ids up to our
 * MAX_PATH_ID not yet freed (open, latent or abandoned) */
#define IR_MAX_PATHS IR_CONN_MAX_PATHS
/* multipath idle timeouts (iroh: PATH_MAX_IDLE_TIMEOUT, RELAY_PATH_MAX_IDLE_TIMEOUT) */
#define IR_PATH_IDLE_NS (15000 * NS_PER_MS)
#define IR_RELAY_PATH_IDLE_NS (30000 * NS_PER_MS)
/* fallback from a path that stopped answering: the PTO count that marks it degraded, the
 * least time without an acknowledgement before it is, and the cap on the probe backoff of
 * a degraded path (a PING every 2^3 PTOs at most) */
#define IR_PATH_DEGRADE_PTOS 2
#define IR_PATH_DEGRADE_MIN_NS (100 * NS_PER_MS)
#define IR_PATH_DEGRADED_MAX_BACKOFF 3

/* what a slot not allocated points at (struct ir_conn, paths) */
extern const qpath ir_path_free_slot;
#define IR_PATH_FREE_SLOT ((qpath *)&ir_path_free_slot)

/* a slot with packet state: open or abandoned (draining) */
static inline int ir_path_live(const qpath *p)
{
    return p->state == PS_OPEN || p->state == PS_ABANDONED;
}

/* The packet number space `space` (SP_*) on `path`: Initial and Handshake are the
 * connection's (they count on path 0), 1-RTT is the path's own. An lvalue:
 * PNS(c, path, s).next_pn, &PNS(c, path, s). */
#define PNS(c, path, space) (*((space) == SP_APP ? &(path)->app : &(c)->sp[(space)]))

typedef struct dgram {
    uint8_t *data;
    size_t len;
} dgram;

#define DGRAM_QUEUE 64

struct ir_conn {
    ir_conn_config cfg;
    int is_server;
    ir_conn_state state;
    ir_tls *tls;
    int handshake_complete, handshake_confirmed;
    int handshake_done_pending;
    int peer_tp_ok;
    ir_tp peer_tp;
    int multipath; /* negotiated (both sent initial_max_path_id) and the handshake done */
    /* multipath: the largest path ids allowed, by us (MAX_PATH_ID sent) and by the peer;
     * the next path id we open; frames to send */
    uint64_t local_max_path_id, remote_max_path_id, next_path_id;
    int max_path_id_pending, paths_blocked_pending;
    /* client: addresses waiting for a path (ir_conn_add_path), oldest first, in a table
     * of IR_CONN_PATH_QUEUE allocated with the first; tried at want_at (UINT64_MAX: when
     * something frees a path id or brings connection ids) */
    ir_netaddr *want;
    size_t nwant;
    uint64_t want_at;
    uint64_t no_path_deadline; /* the peer abandoned our last path: closed then */
    uint64_t now;

    ir_cid odcid;       /* client's first DCID */
    ir_cid initial_scid; /* the peer's SCID from its first long header */
    int got_first_server_packet;
    int retried;              /* client: followed a Retry; server: validated through one */
    ir_cid retry_scid;        /* the SCID of that Retry */
    uint8_t *retry_token;     /* client: the token to repeat in Initials */
    size_t retry_token_len;
    /* the encryption epochs (SP_INITIAL, SP_HANDSHAKE, SP_APP): keys, CRYPTO streams */
    qepoch epoch[SP_COUNT];
    qkeyupdate ku; /* the 1-RTT epoch's key phases */
    /* the Initial and Handshake packet number spaces (path 0's, as the multipath draft
     * has it); each path has its own 1-RTT space: PNS(c, path, space) names either */
    pn_space sp[SP_APP];
    /* packets that failed authentication, across all keys (RFC 9001 6.6 integrity limit);
     * each key counts its own sealed packets and failures (ir_pkt_keys) */
    uint64_t aead_failures;
    size_t rx_dgram_len; /* the datagram ir_conn_recv is processing */

    /* paths (multipath draft): all per-path state lives in qpath, and every operation
     * names the path it is about. Slot 0 is path 0 (the handshake's); with multipath the
     * other slots hold the other path ids (PS_*). `send_path` is the path application
     * data goes out on (the scheduler's choice, ir_conn_mp_schedule). Slot 0 points at
     * path0, inline; the others are allocated when their path id becomes latent
     * (ir_conn_mp_on_handshake, free_slot raising MAX_PATH_ID) and freed with the slot,
     * so a connection without multipath does not pay for them. A slot not allocated
     * points at ir_path_free_slot (read-only, state PS_FREE): loops over the slots read
     * its state and skip it, and a write to it faults instead of corrupting state. */
    qpath path0;
    qpath *paths[IR_MAX_PATHS];
    /* a slot whose paths[] is the free placeholder may hold a latent path id instead: its
     * connection ids only (allocated when the id becomes latent, freed when the path opens
     * and the slot gets its qpath: path0 for slot 0, else allocated then) */
    qlatent *latent[IR_MAX_PATHS];
    size_t npaths; /* slots to look at: 1 without multipath, IR_MAX_PATHS with */
    qpath *send_path;
    /* a (PATH_)NEW_CONNECTION_ID or (PATH_)RETIRE_CONNECTION_ID of some path may be due:
     * set wherever such a flag is set or the active remote id changes
     * (ir_conn_cid_frames_due), cleared when a look through every path's tables finds
     * none left, so that the send path does not scan them for every packet */
    int cid_frames_due;
    size_t send_rr; /* ir_conn_send: the slot to try first (round robin over paths) */

    /* flow control */
    uint64_t max_data_local;   /* what we allow the peer */
    uint64_t conn_window;
    uint64_t recv_data;        /* highest offsets summed */
    uint64_t read_data;        /* consumed by the application */
    int max_data_pending;
    uint64_t last_conn_window_update;
    uint64_t max_data_remote;  /* what the peer allows us */
    uint64_t sent_data;        /* new stream bytes sent */

    /* streams: found by id in a hash table; the send loop takes them from queues, so
     * that nothing scans every stream per packet or per ACK */
    ir_idmap streams;          /* id -> qstream */
    ir_queue send_q;           /* streams with data to send, in round robin order */
    ir_queue conn_blocked_q;   /* streams whose new data waits for connection credit */
    ir_queue ctrl_q;           /* streams with control frames to send */
    uint64_t next_stream[2];   /* our next stream number, [0] bidi, [1] uni */
    uint64_t peer_max_streams[2]; /* how many we may open */
    uint64_t peer_opened[2];   /* peer streams opened (count) */
    uint64_t local_max_streams[2]; /* how many the peer may open */
    uint64_t peer_closed[2];   /* peer streams fully done */
    int max_streams_pending[2];

    /* datagrams */
    /* (each ring of DGRAM_QUEUE entries is allocated with its first datagram: most
     * connections never carry one) */
    dgram *dg_in;
    size_t dg_in_head, dg_in_n;
    dgram *dg_out;
    size_t dg_out_head, dg_out_n;


    /* timers */
    uint64_t idle_timeout_ns;
    uint64_t last_activity;
    uint64_t handshake_deadline; /* server: cfg.handshake_timeout_ns after creation */
    uint64_t last_ack_eliciting_sent;
    int keepalive_pending;    /* the keep-alive timer fired: send a PING when we can */
    uint64_t close_deadline;
    int close_pending;        /* (re)send CONNECTION_CLOSE */
    ir_close_info close;
    int closed_event_sent;    /* CLOSED was raised (once per connection) */

    /* events. CONNECTED, STREAM_OPENED and CLOSED never go through the queue (which
     * allocates and may drop on failure): flags and counters raise them */
    ir_event *ev;
    uint8_t ev_queued;         /* DATAGRAM (1) / STREAMS_AVAILABLE (2) waits in the queue */
    size_t ev_head, ev_n, ev_cap;
    uint64_t hints_dropped; /* hints the queue could not take (ir_conn_hints_dropped) */
    int connected_pending, closed_pending;
    uint64_t opened_reported[2]; /* peer streams (bidi, uni) STREAM_OPENED has named */

    ir_conn_stats stats;

    /* QUIC address discovery */
    int qad_send, qad_recv;     /* negotiated roles: we report / we are told */
    int observed_pending;       /* send OBSERVED_ADDRESS for the current path */
    uint64_t observed_seq;      /* next sequence number we send */
    uint64_t observed_sent_seq; /* the one in flight */
    int have_observed;          /* what the peer told us */
    uint64_t observed_recv_seq;
    iroh_socket_addr observed;


    /* ir_conn_send_batch: a datagram built but not joining the last batch */
    uint8_t held[IR_CONN_MAX_DGRAM];
    size_t held_len;
    ir_netaddr held_to;

    /* client: the first flight to the peer's candidate addresses (config candidates);
     * freed when the handshake leaves IR_CONN_HANDSHAKE */
    struct ir_fanout *fanout;

    /* n0 NAT traversal and iroh's path policy (conn_nat.c): allocated when first needed */
    struct ir_nat *nat;
    int nat_nomem; /* that allocation failed: no NAT traversal on this connection */
};

/* The last datagram sent during the handshake and the candidates it still goes to. */
typedef struct ir_fanout {
    ir_netaddr cand[IR_CONN_MAX_CANDIDATES];
    size_t ncand;
    uint8_t buf[IR_CONN_MAX_DGRAM];
    size_t len;  /* 0: none */
    ir_netaddr to; /* where it went first */
    size_t next; /* the next candidate to copy it to */
} ir_fanout;

static inline void ir_conn_rnd(ir_conn *c, void *buf, size_t len)
{
    c->cfg.random(c->cfg.random_ctx, buf, len);
}

/* the first packet number space (SP_*) counted on a path: Initial and Handshake packets
 * count on path 0 */
static inline int ir_conn_first_space(const ir_conn *c, const qpath *path)
{
    return path == &c->path0 ? SP_INITIAL : SP_APP;
}

/* the connection ids in use in slot i, an open path's or a latent id's, and their path
 * id; NULL when the slot has neither */
static inline qcids *ir_conn_slot_cids(ir_conn *c, size_t i, uint64_t *id)
{
    qpath *p = c->paths[i];
    if (p->state == PS_OPEN) {
        *id = p->id;
        return &p->cids;
    }
    if (c->latent[i]) {
        *id = c->latent[i]->id;
        return &c->latent[i]->cids;
    }
    return NULL;
}

/* a connection-id frame may be due (struct ir_conn, cid_frames_due) */
static inline void ir_conn_cid_frames_due(ir_conn *c)
{
    c->cid_frames_due = 1;
}

/* ---- between the files of the connection (docs/ARCHITECTURE.md) ---- */

/* What a packet is for: where its datagram goes and what may go in it. On the path's
 * address (on_path) everything may; to another address only the path frames for that
 * address (PATH_RESPONSE, PATH_CHALLENGE), padded, and the packet is not in flight. */
struct pktw;
typedef struct pkt_plan {
    const ir_netaddr *to;
    int on_path;
    size_t mtu_probe;  /* > 0: a path MTU probe of this size (PING first, padded) */
    /* off path: writes the packet's frames instead of the path's probing frames (NAT
     * traversal probes and their answers, conn_nat.c); arg is its own */
    void (*write_frames)(ir_conn *c, qpath *path, struct pktw *w, const struct pkt_plan *plan);
    const void *arg;
} pkt_plan;

/* a packet being written (conn_send.c builds it; each module writes its frames) */
typedef struct pktw {
    uint8_t *buf;     /* start of the packet */
    size_t hdr_len;   /* header incl. packet number */
    size_t pn_len;
    size_t len_off;   /* long header length field, 0 for short */
    size_t pos;       /* write position (absolute within buf) */
    size_t end;       /* last byte for frames (tag excluded) */
    pn_space *sp;     /* its space: the frame records go to its pool */
    sent_pkt rec;
} pktw;

static inline size_t pktw_room(const pktw *w)
{
    return w->end > w->pos ? w->end - w->pos : 0;
}

/* room for one more frame record in the space's pool (conn_send.c); 0: out of memory */
int ir_sent_frames_reserve(pn_space *sp);

/* a frame may be written: its record will fit (checked before writing the frame) */
static inline int pktw_can_record(const pktw *w)
{
    return w->sp->nframes < w->sp->capframes || ir_sent_frames_reserve(w->sp);
}

/* the record of a frame just written (after pktw_can_record) */
static inline void pktw_record(pktw *w, const sent_kind *kind, uint64_t a, uint64_t b, uint64_t cc, int fin,
                               int eliciting)
{
    sent_frame *f = &w->sp->frames[w->sp->nframes++];
    w->rec.nframes++;
    f->kind = kind;
    f->a = a;
    f->b = b;
    f->c = cc;
    f->fin = (uint8_t)fin;
    if (eliciting)
        w->rec.ack_eliciting = 1;
}

static inline int pktw_put_frame(pktw *w, const ir_frame *f)
{
    size_t n = ir_frame_encode(w->buf + w->pos, pktw_room(w), f);
    w->pos += n;
    return n > 0;
}

/* conn.c: closing */
void ir_conn_close_with(ir_conn *c, int app, uint64_t code, const char *reason);
void ir_conn_enter_draining(ir_conn *c, int app, uint64_t code, const uint8_t *reason, size_t len);
void ir_conn_set_closed(ir_conn *c);

/* conn_cid.c */
/* one more id of ours in k (reported through on_cid), or NULL when the table is full */
local_cid *ir_conn_issue_cid(ir_conn *c, qcids *k);
/* the peer's connection id we send to on the path */
const ir_cid *ir_conn_dcid(const qpath *path);
/* ours up to the peer's active_connection_id_limit (callers: not for a path going away,
 * multipath draft 3.2.2) */
void ir_conn_issue_more_cids(ir_conn *c, qcids *k);
/* (PATH_)NEW_CONNECTION_ID, (PATH_)RETIRE_CONNECTION_ID for the ids k of a path id */
void ir_conn_new_cid_frame(ir_conn *c, qcids *k, const ir_frame_new_cid *f);
void ir_conn_retire_cid_frame(ir_conn *c, qcids *k, uint64_t seq, const ir_cid *pkt_dcid);

/* conn_hs.c */
int ir_conn_start_tls(ir_conn *c);
int ir_conn_install_initial_keys(ir_conn *c, const ir_cid *cid);
void ir_conn_discard_space(ir_conn *c, int s);
void ir_conn_crypto_received(ir_conn *c, int space, const ir_frame_crypto *f);
/* 1 if p is a Retry the client followed */
int ir_conn_follow_retry(ir_conn *c, const uint8_t *p, const ir_pkt_hdr *h);

/* conn_keys.c */
void ir_conn_check_conf_limits(ir_conn *c);
int ir_conn_can_seal(const ir_conn *c, int s);
int ir_conn_decrypt_packet(ir_conn *c, qpath *path, uint8_t *p, const ir_pkt_hdr *h, int space,
                           uint64_t *pn_out, const uint8_t **payload, size_t *plen);
int ir_conn_start_key_update(ir_conn *c);

/* conn_path.c */
/* validates the path's own address (after a migration, or its MTU): a new probe */
void ir_conn_start_validation(ir_conn *c, qpath *path);
/* the validation of the path's address is over (validated, or given up) */
void ir_conn_abandon_validation(ir_conn *c, qpath *path);
/* Starts probing `addr` on the path with PATH_CHALLENGEs (the multipath and NAT traversal
 * issues call it for candidate addresses). 0, or -1 when IR_MAX_PROBES are busy. Its
 * outcome: ir_conn_probe_state (PROBE_ACTIVE, PROBE_VALIDATED, PROBE_FAILED; PROBE_FREE
 * for an address not probed). */
int ir_conn_probe_addr(ir_conn *c, qpath *path, const ir_netaddr *addr);
int ir_conn_probe_state(const qpath *path, const ir_netaddr *addr);
/* the active probe of the path's own address, or NULL */
qprobe *ir_conn_path_probe(qpath *path);
uint64_t ir_conn_path_timer(const ir_conn *c, const qpath *path);
void ir_conn_path_on_timeout(ir_conn *c, qpath *path, uint64_t now);
/* a PATH_CHALLENGE from `from` on the path, and a PATH_RESPONSE (any path's probe) */
void ir_conn_path_challenge_frame(ir_conn *c, qpath *path, const uint8_t data[8],
                                  const ir_netaddr *from);
void ir_conn_path_response_frame(ir_conn *c, const uint8_t data[8]);
/* the path frames for `to`: PATH_RESPONSEs to it, then a PATH_CHALLENGE of its probe */
void ir_conn_write_path_frames(ir_conn *c, qpath *path, pktw *w, const ir_netaddr *to);
/* path frames (to any address) may be waiting: the quick test on every packet */
static inline int ir_conn_path_frames_any(const qpath *path)
{
    if (path->nresp)
        return 1;
    for (int i = 0; i < IR_MAX_PROBES; i++)
        if (path->probes[i].pending && path->probes[i].state == PROBE_ACTIVE)
            return 1;
    return 0;
}
/* path frames for `to` are waiting */
int ir_conn_path_frames_pending(const ir_conn *c, const qpath *path, const ir_netaddr *to);
/* an address other than the path's own with path frames waiting, or NULL */
const ir_netaddr *ir_conn_path_frames_elsewhere(const ir_conn *c, const qpath *path);
void ir_conn_observed_address_frame(ir_conn *c, const ir_frame *f);
size_t ir_conn_send_mtu_probe(ir_conn *c, qpath *path, uint8_t *buf, size_t cap, ir_netaddr *to);

/* conn_send.c */
int ir_conn_cwnd_allows(const qpath *path);
int ir_conn_pace_allows(const ir_conn *c, const qpath *path);
uint64_t ir_conn_pace_deadline(const ir_conn *c, const qpath *path);
/* Writes one packet of space s on the path at buf; pad_to > 0 pads it so that it ends at
 * least pad_to bytes after buf. Returns its length (0: nothing written). */
size_t ir_conn_write_packet(ir_conn *c, qpath *path, int s, uint8_t *buf, size_t cap, size_t pad_to,
                            const pkt_plan *plan);

/* conn_stream.c */
void ir_conn_stream_free(qstream *s);
qstream *ir_conn_find_stream(const ir_conn *c, uint64_t id);
qstream *ir_conn_peer_stream(ir_conn *c, uint64_t id, int sending, uint64_t *err);
void ir_conn_maybe_release_stream(ir_conn *c, qstream *s);
void ir_conn_update_conn_window(ir_conn *c);
void ir_conn_stream_frame(ir_conn *c, const ir_frame *f);
/* something of s may have become sendable (data written or lost, a larger limit, a
 * control frame due): queue it */
void ir_conn_stream_schedule(ir_conn *c, qstream *s);
/* MAX_DATA from the peer raised the connection's credit */
void ir_conn_streams_unblocked(ir_conn *c);
int ir_conn_app_data_pending(const ir_conn *c);
/* the queued streams' control frames, then (data != 0) their data, round robin */
void ir_conn_write_streams(ir_conn *c, pktw *w, int data);

/* conn_dgram.c */
void ir_conn_datagram_received(ir_conn *c, const uint8_t *data, size_t len);
void ir_conn_write_datagrams(ir_conn *c, pktw *w);

/* recovery.c: RTT, loss detection and PTO of a path's packet number spaces (the Initial
 * and Handshake spaces count on path 0) */
void ir_rec_init(ir_conn *c, qpath *path);
uint64_t ir_rec_pto(const ir_conn *c, const qpath *path, int space);
uint64_t ir_rec_initial_pto(const ir_conn *c);
void ir_rec_on_sent(ir_conn *c, qpath *path, int space, const sent_pkt *p);
int ir_rec_on_ack(ir_conn *c, qpath *path, int space, const ir_frame_ack *ack, uint64_t now);
void ir_rec_detect_lost(ir_conn *c, qpath *path, int space, uint64_t now);
/* the earliest loss or PTO timer of all paths */
uint64_t ir_rec_timer(const ir_conn *c);
void ir_rec_on_timeout(ir_conn *c, uint64_t now);
/* drops the Initial or Handshake space */
void ir_rec_discard_space(ir_conn *c, int space);
/* the path moved to a new address: congestion control starts over */
void ir_rec_new_path(ir_conn *c, qpath *path, uint64_t now);
/* forgets every sent packet of the space (nothing declared lost) */
void ir_rec_discard_sent(ir_conn *c, qpath *path, int space);
/* an abandoned path: what is in flight on it is declared lost (its frames repaired on
 * other paths), without a congestion signal */
void ir_rec_abandon_sent(ir_conn *c, qpath *path);
/* path MTU: back to 1200-byte datagrams after losses say the larger ones vanish */
void ir_conn_mtu_black_hole(ir_conn *c, qpath *path);
/* conn.c */
void ir_conn_push_event(ir_conn *c, ir_event_type t, uint64_t id, uint64_t code);

/* conn_mp.c: multipath */
extern const sent_kind ir_sf_path_abandon;   /* a = path id */
extern const sent_kind ir_sf_path_status;    /* a = path id, b = sequence number */
extern const sent_kind ir_sf_max_path_id;    /* a = the value */
extern const sent_kind ir_sf_mp_blocked;     /* PATHS_BLOCKED, PATH_CIDS_BLOCKED (a = path id + 1) */
/* the handshake completed: multipath is on if both offered it */
void ir_conn_mp_on_handshake(ir_conn *c);
/* the slot of path id, or NULL (freed, or never a slot) */
qpath *ir_conn_path_by_id(ir_conn *c, uint64_t id);
/* the slot whose connection id of ours is dcid, or NULL (see ir_conn_latent_by_dcid) */
qpath *ir_conn_path_by_dcid(ir_conn *c, const ir_cid *dcid);
/* the latent path id whose connection id of ours is dcid, or NULL */
qlatent *ir_conn_latent_by_dcid(ir_conn *c, const ir_cid *dcid);
/* the latent path id `id`, or NULL */
qlatent *ir_conn_latent_by_id(ir_conn *c, uint64_t id);
/* the connection ids of path id `id` while they are in use: a latent id's, or an open
 * path's; NULL for an abandoned path or an id without a slot */
qcids *ir_conn_cids_by_id(ir_conn *c, uint64_t id);
/* a packet arrived on a latent path id: the server opens it and returns its new path slot,
 * else NULL (drop the packet) */
qpath *ir_conn_mp_accept_path(ir_conn *c, qlatent *l, const ir_netaddr *from);
/* a multipath frame (or PATH_ACK, PATH_(RETIRE_)CONNECTION_ID): 0, or -1 after closing */
int ir_conn_mp_frame(ir_conn *c, const ir_frame *f, const ir_cid *pkt_dcid);
/* picks the path application data goes out on (validated, open, not degraded, Available
 * first) */
void ir_conn_mp_schedule(ir_conn *c);
/* fallback: the path's PTO fired again; marks it degraded when it qualifies (1) */
int ir_conn_mp_maybe_degrade(ir_conn *c, qpath *path, uint64_t now);
/* an acknowledgement arrived for a degraded path: the mark goes */
void ir_conn_mp_recovered(ir_conn *c, qpath *path, uint64_t now);
/* the multipath frames to send (in any 1-RTT packet), and whether any are pending */
int ir_conn_mp_frames_pending(const ir_conn *c);
void ir_conn_mp_write_frames(ir_conn *c, pktw *w);
/* multipath timers: path idle timeouts, abandoned paths to free, the no-path grace */
uint64_t ir_conn_mp_timer(const ir_conn *c);
void ir_conn_mp_on_timeout(ir_conn *c, uint64_t now);
/* sets up a slot's packet number space and recovery for a path that opens */
void ir_conn_path_init(ir_conn *c, qpath *path, uint64_t id, const ir_netaddr *addr);
/* frees a slot's memory (its 1-RTT space) */
void ir_conn_path_release(ir_conn *c, qpath *path);

/* conn_nat.c: n0 NAT traversal and iroh's path policy (conn_nat.h has the calls) */
typedef struct ir_nat ir_nat;
void ir_nat_free(ir_conn *c);
/* ADD_ADDRESS, REMOVE_ADDRESS, REACH_OUT (negotiation checked): 0, or -1 after closing */
int ir_nat_frame(ir_conn *c, const ir_frame *f);
/* a PATH_CHALLENGE from another address than the path's with QNT on: answered here (1),
 * or 0: RFC 9000 probing (conn_path.c) */
int ir_nat_path_challenge(ir_conn *c, qpath *path, const uint8_t data[8], const ir_netaddr *from);
/* a PATH_RESPONSE to one of our probes from the probed address: 1 (taken) */
int ir_nat_path_response(ir_conn *c, const uint8_t data[8], const ir_netaddr *from);
/* ADD_ADDRESS / REMOVE_ADDRESS / REACH_OUT frames waiting, and writing them */
int ir_nat_frames_pending(const ir_conn *c);
void ir_nat_write_frames(ir_conn *c, qpath *path, pktw *w);
/* a probe or an answer to one, in a datagram of its own (0: none) */
size_t ir_nat_send(ir_conn *c, uint8_t *buf, size_t cap, ir_netaddr *to, uint64_t now);
uint64_t ir_nat_timer(const ir_conn *c);
void ir_nat_on_timeout(ir_conn *c, uint64_t now);
/* the handshake completed (conn_hs.c) */
void ir_nat_handshake_done(ir_conn *c);

#endif
