/* Internal state of a QUIC connection, shared by its files: conn.c (lifecycle, close,
 * events, timers), conn_hs.c, conn_keys.c, conn_recv.c, conn_send.c, conn_sent.c,
 * conn_cid.c, conn_path.c, conn_stream.c, conn_dgram.c and recovery.c (RTT, loss
 * detection, congestion control); docs/ARCHITECTURE.md has the layout. */
#ifndef IR_QUIC_CONN_INTERNAL_H
#define IR_QUIC_CONN_INTERNAL_H

#include "quic/cc.h"
#include "quic/conn.h"
#include "quic/frame.h"
#include "quic/ranges.h"
#include "quic/stream.h"

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

/* transport error codes (RFC 9000 20.1) */
enum {
    E_NO_ERROR = 0x0,
    E_INTERNAL = 0x1,
    E_CONNECTION_REFUSED = 0x2,
    E_FLOW_CONTROL = 0x3,
    E_STREAM_LIMIT = 0x4,
    E_STREAM_STATE = 0x5,
    E_FINAL_SIZE = 0x6,
    E_FRAME_ENCODING = 0x7,
    E_TRANSPORT_PARAMETER = 0x8,
    E_CONNECTION_ID_LIMIT = 0x9,
    E_PROTOCOL_VIOLATION = 0xa,
    E_KEY_UPDATE = 0xe,
    E_AEAD_LIMIT_REACHED = 0xf,
};

enum { SP_INITIAL = 0, SP_HANDSHAKE = 1, SP_APP = 2, SP_COUNT = 3 };

/* what a sent packet carried, so that a loss can be repaired and an ack can release */
enum sent_kind {
    SF_STREAM,          /* a = stream id, b = offset, c = length, fin */
    SF_CRYPTO,          /* b = offset, c = length (space of the packet) */
    SF_ACK,             /* a = largest acknowledged in that ACK (its ack prunes ack_ranges) */
    SF_RESET_STREAM,    /* a = stream id */
    SF_STOP_SENDING,    /* a = stream id */
    SF_MAX_DATA,
    SF_MAX_STREAM_DATA, /* a = stream id */
    SF_MAX_STREAMS,     /* a = 1 bidi, 0 uni */
    SF_NEW_CID,         /* a = sequence number */
    SF_RETIRE_CID,      /* a = sequence number */
    SF_HANDSHAKE_DONE,
    SF_PING,
    SF_DATAGRAM,
    SF_PATH_CHALLENGE,
    SF_OBSERVED_ADDRESS, /* a = sequence number */
    SF_MTU_PROBE,        /* a = the probe's size */
};

typedef struct sent_frame {
    uint8_t kind;
    uint8_t fin;
    uint64_t a, b, c;
} sent_frame;

#define MAX_SENT_FRAMES 8

typedef struct sent_pkt {
    uint64_t pn;
    uint64_t time;
    uint32_t size;
    uint8_t ack_eliciting;
    uint8_t in_flight;
    uint8_t gone;       /* acknowledged or lost: a hole in the list until it is compacted */
    uint8_t mtu_probe;  /* a path MTU probe: its loss says nothing about congestion */
    uint8_t nframes;
    sent_frame f[MAX_SENT_FRAMES];
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
    uint64_t loss_time;          /* UINT64_MAX: none */
    uint64_t last_ack_eliciting_time;
    uint64_t in_flight_ack_eliciting; /* count of ack-eliciting packets in flight */
    ir_pkt_keys rx, tx;
    int have_rx, have_tx;
    ir_sendbuf crypto_send;
    ir_recvbuf crypto_recv;
    int discarded;
    int probe_pending;           /* PTO: send an ack-eliciting packet now */
} pn_space;

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

typedef struct qpath {
    uint64_t id;                     /* path id (multipath draft): 0 for the first */
    ir_netaddr addr;
    int validated;
    uint64_t bytes_recv, bytes_sent; /* for the anti-amplification limit */
    int challenge_pending;           /* send PATH_CHALLENGE */
    uint8_t challenge[8];
    int challenge_outstanding;
    int challenge_small;             /* it went out in a datagram under 1200 bytes */
    unsigned challenge_count;        /* times sent in this validation */
    uint64_t challenge_sent;         /* when it was last sent */
    uint64_t validation_deadline;    /* give up then (UINT64_MAX: none) */
    ir_netaddr prev_addr;            /* the last validated address, to return to */
    int have_prev;
    int response_pending;
    uint8_t response[8];
    ir_netaddr response_addr;

    /* the path's 1-RTT packet number space (its own numbers, ACKs and sent packets) */
    pn_space app;

    /* its connection ids: ours (the peer sends to them) and the peer's */
    local_cid lcid[MAX_LOCAL_CIDS];
    size_t nlcid;
    uint64_t next_lcid_seq;
    remote_cid rcid[MAX_REMOTE_CIDS];
    size_t nrcid;
    size_t active_rcid;
    uint64_t rcid_retire_prior_to;

    /* its recovery and congestion control (RFC 9002; Initial and Handshake packets
     * count on path 0) */
    uint64_t latest_rtt, smoothed_rtt, rttvar, min_rtt;
    int have_rtt;
    unsigned pto_count;
    uint64_t bytes_in_flight;
    uint64_t max_datagram;
    uint64_t pace_tokens;     /* pacing credit in bytes (RFC 9002 7.7) */
    uint64_t pace_time;       /* when the credit was last topped up */
    /* its congestion controller (cc.h: cc.cwnd, cc.ssthresh). Until conn.c is split it
     * reads the window as `cwnd`: the anonymous struct shares cc's first field */
    union {
        ir_cc cc;
        struct {
            uint64_t cwnd;
        };
    };

    /* path MTU discovery (RFC 9000 14.3, RFC 8899 in brief): one probe size, tried up to
     * three times once the path is validated; max_datagram grows when one is acknowledged
     * and falls back to 1200 when the larger packets stop getting through */
    uint8_t mtu_state; /* MTU_IDLE, MTU_DUE, MTU_IN_FLIGHT, MTU_DONE */
    uint8_t mtu_tries;
    uint64_t mtu_next; /* earliest time of the next probe */
} qpath;

enum { MTU_IDLE = 0, MTU_DUE, MTU_IN_FLIGHT, MTU_DONE };
/* the size probed: 1500-byte links under IPv6 (and IPv4) carry it; at most the peer's
 * max_udp_payload_size */
#define IR_MTU_PROBE_SIZE 1452

/* paths a connection can have at once (1 until multipath is negotiated) */
#define IR_MAX_PATHS 1

/* The packet number space `space` (SP_*) of connection c: Initial and Handshake are the
 * connection's, 1-RTT is the current path's. An lvalue: SP(c, s).next_pn, &SP(c, s). */
#define SP(c, space) (*((space) == SP_APP ? &(c)->path->app : &(c)->sp[(space)]))
/* The space holding the keys of `space`: the 1-RTT keys (and key phase) belong to the
 * connection and are shared by all paths (multipath draft), kept in path 0's space. */
#define KEYS(c, space) (*((space) == SP_APP ? &(c)->paths[0].app : &(c)->sp[(space)]))

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
    uint64_t now;

    ir_cid odcid;       /* client's first DCID */
    ir_cid initial_scid; /* the peer's SCID from its first long header */
    int got_first_server_packet;
    int retried;              /* client: followed a Retry; server: validated through one */
    ir_cid retry_scid;        /* the SCID of that Retry */
    uint8_t *retry_token;     /* client: the token to repeat in Initials */
    size_t retry_token_len;
    /* the Initial and Handshake packet number spaces (path 0's, as the multipath draft
     * has it); each path has its own 1-RTT space: use SP(c, space) for any of them */
    pn_space sp[SP_APP];
    /* 1-RTT key update */
    int key_phase;              /* phase of our send keys */
    int rx_phase;               /* phase of the current receive keys */
    uint64_t rx_phase_start_pn; /* first pn received in rx_phase */
    uint64_t rx_old_largest;    /* largest pn opened with older keys than rx_phase's
                                 * (UINT64_MAX: none), for RFC 9001 6.4 */
    int key_update_pending_ack; /* our update not yet acknowledged */
    uint64_t key_phase_start_pn; /* first pn sent in the current phase */
    ir_pkt_keys rx_next;
    int have_rx_next;
    ir_pkt_keys rx_prev;
    int have_rx_prev;
    uint64_t rx_prev_expiry;
    uint64_t key_updates;
    uint64_t key_update_confirmed; /* when our last update was acknowledged (0: never) */
    /* packets that failed authentication, across all keys (RFC 9001 6.6 integrity limit);
     * each key counts its own sealed packets and failures (ir_pkt_keys) */
    uint64_t aead_failures;

    /* paths (multipath draft): all per-path state lives in qpath; today a connection
     * has path 0 only and `path` points at it. The multipath issue adds paths here. */
    qpath paths[IR_MAX_PATHS];
    size_t npaths;
    qpath *path;

    /* flow control */
    uint64_t max_data_local;   /* what we allow the peer */
    uint64_t conn_window;
    uint64_t recv_data;        /* highest offsets summed */
    uint64_t read_data;        /* consumed by the application */
    int max_data_pending;
    uint64_t last_conn_window_update;
    uint64_t max_data_remote;  /* what the peer allows us */
    uint64_t sent_data;        /* new stream bytes sent */

    /* streams */
    qstream **streams;
    size_t nstreams, capstreams;
    size_t rr_next;            /* round robin position */
    uint64_t next_stream[2];   /* our next stream number, [0] bidi, [1] uni */
    uint64_t peer_max_streams[2]; /* how many we may open */
    uint64_t peer_opened[2];   /* peer streams opened (count) */
    uint64_t local_max_streams[2]; /* how many the peer may open */
    uint64_t peer_closed[2];   /* peer streams fully done */
    int max_streams_pending[2];

    /* datagrams */
    dgram dg_in[DGRAM_QUEUE];
    size_t dg_in_head, dg_in_n;
    dgram dg_out[DGRAM_QUEUE];
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

    int mtu_probe_writing; /* write_packet is building a path MTU probe */

    /* ir_conn_send_batch: a datagram built but not joining the last batch */
    uint8_t held[IR_CONN_MAX_DGRAM];
    size_t held_len;
    ir_netaddr held_to;
};

static inline void ir_conn_rnd(ir_conn *c, void *buf, size_t len)
{
    c->cfg.random(c->cfg.random_ctx, buf, len);
}

/* ---- between the files of the connection (docs/ARCHITECTURE.md) ---- */

/* a packet being written (conn_send.c builds it; each module writes its frames) */
typedef struct pktw {
    uint8_t *buf;     /* start of the packet */
    size_t hdr_len;   /* header incl. packet number */
    size_t pn_len;
    size_t len_off;   /* long header length field, 0 for short */
    size_t pos;       /* write position (absolute within buf) */
    size_t end;       /* last byte for frames (tag excluded) */
    sent_pkt rec;
} pktw;

static inline size_t pktw_room(const pktw *w)
{
    return w->end > w->pos ? w->end - w->pos : 0;
}

static inline int pktw_can_record(const pktw *w)
{
    return w->rec.nframes < MAX_SENT_FRAMES;
}

static inline void pktw_record(pktw *w, uint8_t kind, uint64_t a, uint64_t b, uint64_t cc, int fin, int eliciting)
{
    sent_frame *f = &w->rec.f[w->rec.nframes++];
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
local_cid *ir_conn_issue_cid(ir_conn *c);
/* the peer's connection id we send to */
const ir_cid *ir_conn_dcid(const ir_conn *c);
void ir_conn_issue_more_cids(ir_conn *c);
void ir_conn_new_cid_frame(ir_conn *c, const ir_frame_new_cid *f);
void ir_conn_retire_cid_frame(ir_conn *c, uint64_t seq, const ir_cid *pkt_dcid);

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
int ir_conn_decrypt_packet(ir_conn *c, uint8_t *p, const ir_pkt_hdr *h, int space, uint64_t *pn_out,
                           const uint8_t **payload, size_t *plen);
int ir_conn_start_key_update(ir_conn *c);

/* conn_path.c */
void ir_conn_start_validation(ir_conn *c);
void ir_conn_abandon_validation(ir_conn *c);
uint64_t ir_conn_path_timer(const ir_conn *c);
void ir_conn_path_on_timeout(ir_conn *c, uint64_t now);
void ir_conn_observed_address_frame(ir_conn *c, const ir_frame *f);
void ir_conn_write_path_frames(ir_conn *c, pktw *w);
size_t ir_conn_send_path_response_elsewhere(ir_conn *c, uint8_t *buf, size_t cap, ir_netaddr *to);
size_t ir_conn_send_mtu_probe(ir_conn *c, uint8_t *buf, size_t cap, ir_netaddr *to);

/* conn_send.c */
int ir_conn_cwnd_allows(const ir_conn *c);
int ir_conn_pace_allows(const ir_conn *c);
uint64_t ir_conn_pace_deadline(const ir_conn *c);
size_t ir_conn_write_packet(ir_conn *c, int s, uint8_t *buf, size_t cap, size_t pad_to);

/* conn_stream.c */
void ir_conn_stream_free(qstream *s);
qstream *ir_conn_find_stream(const ir_conn *c, uint64_t id);
qstream *ir_conn_peer_stream(ir_conn *c, uint64_t id, int sending, uint64_t *err);
void ir_conn_maybe_release_stream(ir_conn *c, qstream *s);
void ir_conn_update_conn_window(ir_conn *c);
void ir_conn_stream_frame(ir_conn *c, const ir_frame *f);
int ir_conn_write_stream(ir_conn *c, qstream *s, pktw *w, int control_only);
int ir_conn_app_data_pending(const ir_conn *c);
void ir_conn_write_streams(ir_conn *c, pktw *w);

/* conn_dgram.c */
void ir_conn_datagram_received(ir_conn *c, const uint8_t *data, size_t len);
void ir_conn_write_datagrams(ir_conn *c, pktw *w);

/* recovery.c */
void ir_rec_init(ir_conn *c);
uint64_t ir_rec_pto(const ir_conn *c, int space);
uint64_t ir_rec_initial_pto(const ir_conn *c);
void ir_rec_on_sent(ir_conn *c, int space, const sent_pkt *p);
int ir_rec_on_ack(ir_conn *c, int space, const ir_frame_ack *ack, uint64_t now);
void ir_rec_detect_lost(ir_conn *c, int space, uint64_t now);
uint64_t ir_rec_timer(const ir_conn *c);
void ir_rec_on_timeout(ir_conn *c, uint64_t now);
void ir_rec_discard_space(ir_conn *c, int space);
/* the current path moved to a new address: congestion control starts over */
void ir_rec_new_path(ir_conn *c, uint64_t now);
/* forgets every sent packet of the space (nothing declared lost) */
void ir_rec_discard_sent(ir_conn *c, int space);
/* path MTU: back to 1200-byte datagrams after losses say the larger ones vanish */
void ir_conn_mtu_black_hole(ir_conn *c);
/* conn_sent.c, called by recovery */
void ir_conn_on_frame_acked(ir_conn *c, int space, const sent_frame *f);
void ir_conn_on_frame_lost(ir_conn *c, int space, const sent_frame *f);
/* conn.c */
void ir_conn_push_event(ir_conn *c, ir_event_type t, uint64_t id, uint64_t code);

#endif
