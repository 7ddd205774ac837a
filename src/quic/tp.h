/* QUIC transport parameters (RFC 9000 section 18) with the extensions iroh 1.x uses:
 * max_datagram_frame_size (RFC 9221), min_ack_delay (ack-frequency draft-07),
 * initial_max_path_id (multipath), n0 NAT traversal, address discovery, grease_quic_bit
 * (RFC 9287). A sans-IO codec: no allocation, no randomness, no global state. */
#ifndef IR_QUIC_TP_H
#define IR_QUIC_TP_H

#include <stddef.h>
#include <stdint.h>

#include "tls/quic_errors.h"

/* parameter ids */
#define IR_TP_ORIGINAL_DCID 0x00
#define IR_TP_MAX_IDLE_TIMEOUT 0x01
#define IR_TP_STATELESS_RESET_TOKEN 0x02
#define IR_TP_MAX_UDP_PAYLOAD_SIZE 0x03
#define IR_TP_INITIAL_MAX_DATA 0x04
#define IR_TP_INITIAL_MAX_STREAM_DATA_BIDI_LOCAL 0x05
#define IR_TP_INITIAL_MAX_STREAM_DATA_BIDI_REMOTE 0x06
#define IR_TP_INITIAL_MAX_STREAM_DATA_UNI 0x07
#define IR_TP_INITIAL_MAX_STREAMS_BIDI 0x08
#define IR_TP_INITIAL_MAX_STREAMS_UNI 0x09
#define IR_TP_ACK_DELAY_EXPONENT 0x0a
#define IR_TP_MAX_ACK_DELAY 0x0b
#define IR_TP_DISABLE_ACTIVE_MIGRATION 0x0c
#define IR_TP_PREFERRED_ADDRESS 0x0d
#define IR_TP_ACTIVE_CONNECTION_ID_LIMIT 0x0e
#define IR_TP_INITIAL_SCID 0x0f
#define IR_TP_RETRY_SCID 0x10
#define IR_TP_MAX_DATAGRAM_FRAME_SIZE 0x20
#define IR_TP_INITIAL_MAX_PATH_ID 0x3e
#define IR_TP_GREASE_QUIC_BIT 0x2ab2
#define IR_TP_OBSERVED_ADDRESS 0x9f81a176
#define IR_TP_MIN_ACK_DELAY 0xff04de1b
#define IR_TP_N0_NAT_TRAVERSAL 0x3d7f91120401

/* RFC defaults (18.2) */
#define IR_TP_DEFAULT_MAX_UDP_PAYLOAD_SIZE 65527
#define IR_TP_DEFAULT_ACK_DELAY_EXPONENT 3
#define IR_TP_DEFAULT_MAX_ACK_DELAY 25
#define IR_TP_DEFAULT_ACTIVE_CID_LIMIT 2

typedef struct ir_tp_cid {
    uint8_t len; /* 0..20 */
    uint8_t id[20];
} ir_tp_cid;

typedef struct ir_tp_preferred_address {
    uint8_t ipv4[4];
    uint16_t ipv4_port;
    uint8_t ipv6[16];
    uint16_t ipv6_port;
    ir_tp_cid cid; /* 1..20 bytes */
    uint8_t reset_token[16];
} ir_tp_preferred_address;

typedef struct ir_tp {
    /* integers, with RFC defaults applied when absent */
    uint64_t max_idle_timeout;          /* ms, 0 = none */
    uint64_t max_udp_payload_size;      /* default 65527, >= 1200 */
    uint64_t initial_max_data;
    uint64_t initial_max_stream_data_bidi_local;
    uint64_t initial_max_stream_data_bidi_remote;
    uint64_t initial_max_stream_data_uni;
    uint64_t initial_max_streams_bidi;  /* <= 2^60 */
    uint64_t initial_max_streams_uni;   /* <= 2^60 */
    uint64_t ack_delay_exponent;        /* default 3, <= 20 */
    uint64_t max_ack_delay;             /* ms, default 25, < 2^14 */
    uint64_t active_connection_id_limit; /* default 2, >= 2 */
    uint64_t max_datagram_frame_size;   /* 0 = no DATAGRAM support (default) */

    /* connection ids and other non-integer parameters: present only if has_* */
    int has_original_dcid, has_initial_scid, has_retry_scid;
    ir_tp_cid original_dcid, initial_scid, retry_scid;
    int has_stateless_reset_token;
    uint8_t stateless_reset_token[16];
    int has_preferred_address;
    ir_tp_preferred_address preferred_address;
    int disable_active_migration;

    /* extensions */
    int has_min_ack_delay;
    uint64_t min_ack_delay;             /* microseconds, <= max_ack_delay * 1000 */
    int has_initial_max_path_id;        /* multipath offered */
    uint64_t initial_max_path_id;       /* <= 2^32-1 */
    uint8_t nat_traversal;              /* n0 NAT traversal: max addresses, 0 = absent */
    int has_observed_address;           /* address discovery offered */
    uint64_t observed_address_role;     /* 0 send only, 1 receive only, 2 both */
    int grease_quic_bit;                /* peer tolerates a cleared fixed bit */
} ir_tp;

/* RFC defaults: every integer at its default, nothing present. */
void ir_tp_init(ir_tp *tp);

/* iroh's values (spec/quic-tls.md 2.2): idle 30000 ms, max_udp_payload 1472,
 * initial_max_data 2^62-1, each stream window 1250000, 100 bidi / 100 uni streams,
 * active_connection_id_limit 5, max_datagram_frame_size 65535, min_ack_delay 1000 us,
 * initial_max_path_id 7, n0 NAT traversal 32. CIDs and tokens are left for the caller. */
void ir_tp_set_iroh_defaults(ir_tp *tp);

/* Decodes a quic_transport_parameters extension body into out (defaults applied first).
 * from_server: the parameters were sent by the server (we are the client). Returns 0 or
 * -IR_QERR_TRANSPORT_PARAMETER_ERROR for: a truncated or malformed encoding, an integer
 * whose varint does not fill its length exactly, a known parameter given twice, a
 * server-only parameter from a client, max_udp_payload_size < 1200, ack_delay_exponent >
 * 20, max_ack_delay >= 2^14, active_connection_id_limit < 2, initial_max_streams_* >
 * 2^60, a CID longer than 20, a reset token not of 16 bytes, a bad preferred_address
 * (wrong length, zero-length or > 20 CID), zero-length parameters (disable_active_
 * migration, grease_quic_bit) with a value, min_ack_delay > max_ack_delay * 1000,
 * initial_max_path_id > 2^32-1, an observed-address role > 2, and the n0 NAT parameter
 * not exactly one non-zero byte. Unknown ids are skipped (so duplicates among them are
 * not detected). Presence checks that need the connection (initial_source_connection_id
 * always, original_destination_connection_id from a server, retry_source_connection_id
 * after Retry, and their values; initial_max_path_id with zero-length CIDs) are the
 * caller's. */
int ir_tp_decode(const uint8_t *p, size_t len, int from_server, ir_tp *out);

/* Encodes tp as a server (is_server) or client would send it: integers only when they
 * differ from the RFC default; CIDs, tokens and flags when present; server-only
 * parameters are skipped for a client. One reserved parameter (id 31*N+27 with 0..15
 * bytes) derived from grease_seed is inserted at a seed-derived position; the caller
 * passes a random seed per connection. Returns the bytes written, or 0 if cap is too
 * small or a value is out of range (a varint above 2^62-1, a CID length above 20, a
 * preferred-address CID of length 0). */
size_t ir_tp_encode(uint8_t *p, size_t cap, const ir_tp *tp, int is_server,
                    uint64_t grease_seed);

#endif
