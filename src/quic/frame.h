/* QUIC frames: a sans-IO codec for every frame iroh 1.x can meet (RFC 9000 section 19,
 * DATAGRAM of RFC 9221, IMMEDIATE_ACK / ACK_FREQUENCY of draft-ietf-quic-ack-frequency,
 * the multipath frames, n0's NAT-traversal frames and OBSERVED_ADDRESS), plus a table of
 * per-type properties (ack-eliciting, in flight, probing, permitted packet types, the
 * extension a type needs).
 *
 * Decoding never allocates: variable-length fields (stream data, tokens, reasons, CIDs,
 * raw ACK ranges) point into the buffer being decoded, which must outlive the frame.
 *
 * Typical receive loop over a decrypted payload:
 *
 *     ir_cursor c;
 *     ir_cursor_init(&c, payload, len);
 *     while (ir_cursor_left(&c) > 0) {
 *         ir_frame f;
 *         int rc = ir_frame_decode(&c, &f);
 *         if (rc < 0)
 *             return close_with((uint64_t)-rc, f.type);  // transport error code, frame type
 *         if (!(ir_frame_info(f.type) & packet_type_bit))
 *             return close_with(IR_QERR_PROTOCOL_VIOLATION, f.type);
 *         ...
 *     }
 */
#ifndef IR_QUIC_FRAME_H
#define IR_QUIC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "tls/quic_errors.h"
#include "varint.h"

/* The codecs report a QUIC transport error code (tls/quic_errors.h) negated:
 * -IR_QERR_FRAME_ENCODING_ERROR, -IR_QERR_PROTOCOL_VIOLATION (transport parameters:
 * -IR_QERR_TRANSPORT_PARAMETER_ERROR). */

/* ---- frame types ---------------------------------------------------------------------- */

#define IR_FT_PADDING 0x00
#define IR_FT_PING 0x01
#define IR_FT_ACK 0x02
#define IR_FT_ACK_ECN 0x03
#define IR_FT_RESET_STREAM 0x04
#define IR_FT_STOP_SENDING 0x05
#define IR_FT_CRYPTO 0x06
#define IR_FT_NEW_TOKEN 0x07
#define IR_FT_STREAM 0x08 /* 0x08..0x0f: 0x08 | OFF | LEN | FIN */
#define IR_FT_STREAM_OFF 0x04
#define IR_FT_STREAM_LEN 0x02
#define IR_FT_STREAM_FIN 0x01
#define IR_FT_MAX_DATA 0x10
#define IR_FT_MAX_STREAM_DATA 0x11
#define IR_FT_MAX_STREAMS_BIDI 0x12
#define IR_FT_MAX_STREAMS_UNI 0x13
#define IR_FT_DATA_BLOCKED 0x14
#define IR_FT_STREAM_DATA_BLOCKED 0x15
#define IR_FT_STREAMS_BLOCKED_BIDI 0x16
#define IR_FT_STREAMS_BLOCKED_UNI 0x17
#define IR_FT_NEW_CONNECTION_ID 0x18
#define IR_FT_RETIRE_CONNECTION_ID 0x19
#define IR_FT_PATH_CHALLENGE 0x1a
#define IR_FT_PATH_RESPONSE 0x1b
#define IR_FT_CONNECTION_CLOSE 0x1c  /* transport: error code, frame type, reason */
#define IR_FT_APPLICATION_CLOSE 0x1d /* application: error code, reason */
#define IR_FT_HANDSHAKE_DONE 0x1e
#define IR_FT_IMMEDIATE_ACK 0x1f /* ack-frequency draft */
#define IR_FT_DATAGRAM 0x30      /* RFC 9221, data to the end of the packet */
#define IR_FT_DATAGRAM_LEN 0x31  /* RFC 9221, with a length (what iroh sends) */
#define IR_FT_ACK_FREQUENCY 0xaf /* ack-frequency draft */
/* multipath (draft-ietf-quic-multipath, final IANA codepoints; 1-RTT only) */
#define IR_FT_PATH_ACK 0x3e
#define IR_FT_PATH_ACK_ECN 0x3f
#define IR_FT_PATH_ABANDON 0x3e75
#define IR_FT_PATH_STATUS_BACKUP 0x3e76
#define IR_FT_PATH_STATUS_AVAILABLE 0x3e77
#define IR_FT_PATH_NEW_CONNECTION_ID 0x3e78
#define IR_FT_PATH_RETIRE_CONNECTION_ID 0x3e79
#define IR_FT_MAX_PATH_ID 0x3e7a
#define IR_FT_PATHS_BLOCKED 0x3e7b
#define IR_FT_PATH_CIDS_BLOCKED 0x3e7c
/* n0 NAT traversal (1-RTT only) */
#define IR_FT_ADD_ADDRESS_V4 0x3d7f90
#define IR_FT_ADD_ADDRESS_V6 0x3d7f91
#define IR_FT_REACH_OUT_V4 0x3d7f92
#define IR_FT_REACH_OUT_V6 0x3d7f93
#define IR_FT_REMOVE_ADDRESS 0x3d7f94
/* QUIC address discovery (draft-seemann-quic-address-discovery), used toward relays */
#define IR_FT_OBSERVED_ADDRESS_V4 0x9f81a6
#define IR_FT_OBSERVED_ADDRESS_V6 0x9f81a7

#define IR_MAX_CID_LEN 20
#define IR_RESET_TOKEN_LEN 16
#define IR_MAX_STREAMS_LIMIT ((uint64_t)1 << 60) /* MAX_STREAMS / STREAMS_BLOCKED ceiling */
#define IR_MAX_PATH_ID ((uint64_t)0xffffffff)     /* path ids are 32-bit (nonce layout) */

/* STREAM frame type for the given bits. */
static inline uint64_t ir_stream_frame_type(int has_offset, int has_len, int fin)
{
    return IR_FT_STREAM | (has_offset ? IR_FT_STREAM_OFF : 0) |
           (has_len ? IR_FT_STREAM_LEN : 0) | (fin ? IR_FT_STREAM_FIN : 0);
}

/* ---- frame bodies --------------------------------------------------------------------- */

typedef struct ir_ack_ecn {
    uint64_t ect0, ect1, ce;
} ir_ack_ecn;

/* ACK, ACK_ECN, PATH_ACK, PATH_ACK_ECN. The additional ranges stay in wire form; walk
 * them with ir_ack_iter. */
typedef struct ir_frame_ack {
    uint64_t path_id;     /* PATH_ACK(_ECN) only; 0 for ACK */
    uint64_t largest;     /* Largest Acknowledged */
    uint64_t ack_delay;   /* as sent: multiply by 2^ack_delay_exponent for microseconds */
    uint64_t range_count; /* ACK Range Count: (gap, length) pairs after the first range */
    uint64_t first_range; /* First ACK Range */
    const uint8_t *ranges; /* the range_count (gap, length) varint pairs, raw */
    size_t ranges_len;
    uint64_t smallest;     /* decode only: the smallest packet number acknowledged */
    ir_ack_ecn ecn;        /* ACK_ECN / PATH_ACK_ECN only */
} ir_frame_ack;

typedef struct ir_frame_reset_stream {
    uint64_t stream_id, error_code, final_size;
} ir_frame_reset_stream;

typedef struct ir_frame_stop_sending {
    uint64_t stream_id, error_code;
} ir_frame_stop_sending;

typedef struct ir_frame_crypto {
    uint64_t offset;
    const uint8_t *data;
    size_t len;
} ir_frame_crypto;

typedef struct ir_frame_new_token {
    const uint8_t *token; /* never empty */
    size_t len;
} ir_frame_new_token;

/* STREAM: which fields are on the wire is given by the OFF / LEN / FIN bits of the frame
 * type, both when decoding and when encoding (without OFF the offset must be 0; without
 * LEN the data runs to the end of the packet, so such a frame must come last). */
typedef struct ir_frame_stream {
    uint64_t stream_id, offset;
    const uint8_t *data;
    size_t len;
} ir_frame_stream;

/* MAX_STREAM_DATA, STREAM_DATA_BLOCKED */
typedef struct ir_frame_stream_limit {
    uint64_t stream_id, limit;
} ir_frame_stream_limit;

/* NEW_CONNECTION_ID, PATH_NEW_CONNECTION_ID */
typedef struct ir_frame_new_cid {
    uint64_t path_id; /* PATH_NEW_CONNECTION_ID only; 0 otherwise */
    uint64_t seq, retire_prior_to;
    const uint8_t *cid; /* cid_len bytes, 1..20 */
    uint8_t cid_len;
    const uint8_t *reset_token; /* IR_RESET_TOKEN_LEN bytes */
} ir_frame_new_cid;

/* RETIRE_CONNECTION_ID, PATH_RETIRE_CONNECTION_ID */
typedef struct ir_frame_retire_cid {
    uint64_t path_id; /* PATH_RETIRE_CONNECTION_ID only; 0 otherwise */
    uint64_t seq;
} ir_frame_retire_cid;

/* CONNECTION_CLOSE (0x1c, with frame_type) and APPLICATION_CLOSE (0x1d) */
typedef struct ir_frame_close {
    uint64_t error_code;
    uint64_t frame_type; /* 0x1c only */
    const uint8_t *reason;
    size_t reason_len;
} ir_frame_close;

typedef struct ir_frame_datagram {
    const uint8_t *data;
    size_t len;
} ir_frame_datagram;

typedef struct ir_frame_ack_frequency {
    uint64_t seq;
    uint64_t ack_eliciting_threshold;
    uint64_t request_max_ack_delay; /* microseconds */
    uint64_t reordering_threshold;
} ir_frame_ack_frequency;

/* PATH_ABANDON */
typedef struct ir_frame_path_abandon {
    uint64_t path_id, error_code;
} ir_frame_path_abandon;

/* PATH_STATUS_BACKUP, PATH_STATUS_AVAILABLE */
typedef struct ir_frame_path_status {
    uint64_t path_id, seq;
} ir_frame_path_status;

/* PATH_CIDS_BLOCKED */
typedef struct ir_frame_path_cids_blocked {
    uint64_t path_id, next_seq;
} ir_frame_path_cids_blocked;

/* ADD_ADDRESS (seq = sequence number), REACH_OUT (seq = round), OBSERVED_ADDRESS
 * (seq = sequence number). The family comes from the frame type; an IPv4 address is in
 * ip[0..3]. */
typedef struct ir_frame_addr {
    uint64_t seq;
    uint8_t ip[16]; /* network order */
    uint16_t port;
} ir_frame_addr;

typedef struct ir_frame {
    uint64_t type; /* IR_FT_*; for STREAM the exact type 0x08..0x0f */
    union {
        size_t padding_len;                    /* PADDING: run of zero bytes, >= 1 */
        ir_frame_ack ack;                      /* ACK, ACK_ECN, PATH_ACK, PATH_ACK_ECN */
        ir_frame_reset_stream reset_stream;    /* RESET_STREAM */
        ir_frame_stop_sending stop_sending;    /* STOP_SENDING */
        ir_frame_crypto crypto;                /* CRYPTO */
        ir_frame_new_token new_token;          /* NEW_TOKEN */
        ir_frame_stream stream;                /* STREAM */
        uint64_t limit;                        /* MAX_DATA, DATA_BLOCKED, MAX_STREAMS_*,
                                                  STREAMS_BLOCKED_*, MAX_PATH_ID,
                                                  PATHS_BLOCKED */
        ir_frame_stream_limit stream_limit;    /* MAX_STREAM_DATA, STREAM_DATA_BLOCKED */
        ir_frame_new_cid new_cid;              /* (PATH_)NEW_CONNECTION_ID */
        ir_frame_retire_cid retire_cid;        /* (PATH_)RETIRE_CONNECTION_ID */
        uint8_t path_data[8];                  /* PATH_CHALLENGE, PATH_RESPONSE */
        ir_frame_close close;                  /* CONNECTION_CLOSE, APPLICATION_CLOSE */
        ir_frame_datagram datagram;            /* DATAGRAM, DATAGRAM_LEN */
        ir_frame_ack_frequency ack_frequency;  /* ACK_FREQUENCY */
        ir_frame_path_abandon path_abandon;    /* PATH_ABANDON */
        ir_frame_path_status path_status;      /* PATH_STATUS_BACKUP / _AVAILABLE */
        ir_frame_path_cids_blocked path_cids_blocked; /* PATH_CIDS_BLOCKED */
        ir_frame_addr addr;                    /* ADD_ADDRESS_*, REACH_OUT_*,
                                                  OBSERVED_ADDRESS_* */
        uint64_t remove_seq;                   /* REMOVE_ADDRESS */
    } u;
} ir_frame;

/* ---- decoding ------------------------------------------------------------------------- */

/* Decodes one frame at the cursor and advances past it. A run of PADDING bytes is one
 * frame. Returns 0, or the negated QUIC transport error code:
 *   -IR_QERR_FRAME_ENCODING_ERROR  truncated or malformed frame, unknown type, or a field
 *                                  outside the limits RFC 9000 gives (stream offset +
 *                                  length > 2^62-1, CID length not 1..20, retire_prior_to
 *                                  > seq, MAX_STREAMS / STREAMS_BLOCKED > 2^60, ACK ranges
 *                                  below 0, empty NEW_TOKEN, a length past the packet);
 *   -IR_QERR_PROTOCOL_VIOLATION    a frame type not in its shortest encoding (RFC 9000
 *                                  12.4 allows this), or a multipath path id /
 *                                  MAX_PATH_ID / PATHS_BLOCKED value above 2^32-1 (the
 *                                  multipath draft names PROTOCOL_VIOLATION).
 * On failure the cursor is left where it was and f->type holds the frame type if it could
 * be read (for the Frame Type field of CONNECTION_CLOSE), else 0. Checks that need
 * connection state (packet type, negotiated extensions, stream direction, flow control)
 * are the caller's. */
int ir_frame_decode(ir_cursor *c, ir_frame *f);

/* Walks the ranges of a decoded ACK from the largest downward. */
typedef struct ir_ack_iter {
    ir_cursor c;
    uint64_t left;       /* ranges not yet returned */
    uint64_t next_top;   /* largest of the first range */
    uint64_t first_range;
    uint64_t prev_smallest;
    int started;
} ir_ack_iter;

void ir_ack_iter_init(ir_ack_iter *it, const ir_frame_ack *ack);
/* Returns 1 with the next range in [*smallest, *largest], 0 when done, or -1 if a range
 * would go below 0 or the raw ranges are short (never after a successful decode). */
int ir_ack_iter_next(ir_ack_iter *it, uint64_t *smallest, uint64_t *largest);

/* ---- per-type properties -------------------------------------------------------------- */

/* packet types a frame may appear in (RFC 9000 Table 3, extensions as noted in frame.c) */
#define IR_PKT_INITIAL 0x01u
#define IR_PKT_0RTT 0x02u
#define IR_PKT_HANDSHAKE 0x04u
#define IR_PKT_1RTT 0x08u
#define IR_PKT_MASK 0x0fu
/* properties */
#define IR_FRAME_ACK_ELICITING 0x10u  /* a packet with one is ack-eliciting */
#define IR_FRAME_IN_FLIGHT 0x20u      /* a packet with one counts in bytes in flight
                                          (RFC 9002: ack-eliciting or PADDING) */
#define IR_FRAME_PROBING 0x40u        /* probing frame (RFC 9000 9.1 + extensions) */
#define IR_FRAME_FLOW_CONTROLLED 0x80u /* STREAM */
/* the extension that must have been negotiated to receive the frame */
#define IR_FRAME_NEEDS_DATAGRAM 0x100u      /* we sent max_datagram_frame_size > 0 */
#define IR_FRAME_NEEDS_ACK_FREQUENCY 0x200u /* we sent min_ack_delay */
#define IR_FRAME_NEEDS_MULTIPATH 0x400u     /* both sent initial_max_path_id */
#define IR_FRAME_NEEDS_NAT_TRAVERSAL 0x800u /* both sent the n0 NAT TP, and multipath on */
#define IR_FRAME_NEEDS_ADDR_DISCOVERY 0x1000u /* we asked for observations (role 1 or 2) */

/* Properties of a frame type (any of 0x08..0x0f for STREAM); 0 for unknown types. */
unsigned ir_frame_info(uint64_t type);

static inline int ir_frame_allowed_in(uint64_t type, unsigned pkt)
{
    return (ir_frame_info(type) & pkt & IR_PKT_MASK) != 0;
}
static inline int ir_frame_is_ack_eliciting(uint64_t type)
{
    return (ir_frame_info(type) & IR_FRAME_ACK_ELICITING) != 0;
}
static inline int ir_frame_is_in_flight(uint64_t type)
{
    return (ir_frame_info(type) & IR_FRAME_IN_FLIGHT) != 0;
}

/* A name for logs ("STREAM", "PATH_ACK", ...), or "UNKNOWN". */
const char *ir_frame_type_name(uint64_t type);

/* ---- encoding ------------------------------------------------------------------------- */

/* Writes f at p (at most cap bytes; p may be NULL when cap is 0). Returns the bytes
 * written, or 0 if the frame does not fit or is not valid (the values the decoder would
 * refuse, an unknown type, PADDING of length 0). Varints are written minimally; ACK
 * ranges are copied as they are (build new ACKs with ir_ack_encode). */
size_t ir_frame_encode(uint8_t *p, size_t cap, const ir_frame *f);

/* STREAM: the header bytes (type, stream id, offset when non-zero, length when with_len)
 * of a frame carrying data_len bytes at offset. */
size_t ir_stream_frame_overhead(uint64_t stream_id, uint64_t offset, size_t data_len,
                                int with_len);
/* How many of avail bytes at offset fit in a STREAM frame of at most cap bytes. Returns
 * -1 if not even the header with no data fits; else 0 with *n set (possibly 0: a bare
 * FIN). Without LEN the frame must be the last in the packet: if *n < avail the frame
 * fills cap exactly; otherwise put padding before it or use LEN. */
int ir_stream_frame_fit(size_t cap, uint64_t stream_id, uint64_t offset, size_t avail,
                        int with_len, size_t *n);

/* CRYPTO: same, always with a length. */
size_t ir_crypto_frame_overhead(uint64_t offset, size_t data_len);
int ir_crypto_frame_fit(size_t cap, uint64_t offset, size_t avail, size_t *n);

/* DATAGRAM: the whole frame's size for data_len bytes (DATAGRAM_LEN if with_len), and the
 * largest payload that fits in cap (-1 if none, not even an empty one). */
size_t ir_datagram_frame_size(size_t data_len, int with_len);
int ir_datagram_frame_fit(size_t cap, int with_len, size_t *max_data);

/* An acknowledged range of packet numbers, inclusive. */
typedef struct ir_ack_range {
    uint64_t smallest, largest;
} ir_ack_range;

/* Builds an ACK (or PATH_ACK for path_id when multipath is non-zero) from n ranges in
 * descending order, disjoint and not adjacent (there is at least one missing packet
 * between two ranges). ack_delay is the field value (already shifted by the exponent);
 * ecn, if not NULL, makes it ACK_ECN / PATH_ACK_ECN. Encodes as many of the ranges as fit
 * in cap, largest first, and stores how many in *n_encoded (if not NULL). Returns the
 * bytes written, or 0 if not even the first range fits or the ranges are invalid. */
size_t ir_ack_encode(uint8_t *p, size_t cap, int multipath, uint64_t path_id,
                     const ir_ack_range *ranges, size_t n, uint64_t ack_delay,
                     const ir_ack_ecn *ecn, size_t *n_encoded);

#endif
