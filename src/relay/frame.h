/* Relay frames (iroh-relay 1.0.x, protos/relay.rs and handshake.rs): a sans-IO codec.
 *
 * One frame is one binary WebSocket message: a QUIC varint frame type, then a body.
 * Types 0x00-0x03 are the handshake messages (postcard bodies), 0x04-0x0d the relay
 * protocol. Decoding never allocates: variable-length fields point into the decoded
 * buffer, which must outlive the frame. Encoding writes into a caller buffer.
 *
 * Receive loop of a relay server (after the handshake):
 *
 *     ir_relay_frame f;
 *     int rc = ir_relay_frame_decode(msg, len, IR_RELAY_FROM_CLIENT, cache, &f);
 *     if (rc < 0)
 *         close the connection (any error is fatal, spec section 3.2);
 *     switch (f.type) { case IR_RELAY_FT_C2R_DATAGRAM: ... }
 *
 * Errors (negative, with a detail for iroh_last_error()):
 *   IROH_ERR_INVALID_ARGUMENT  malformed frame (truncated, wrong fixed length, bad UTF-8,
 *                              a bad postcard body), or a frame the encoder refuses
 *                              (empty datagram contents, ECN > 3, invalid UTF-8 text)
 *   IROH_ERR_UNSUPPORTED       unknown frame type, or a type the `allowed` mask excludes
 *                              (wrong direction, Health on v2, Status on v1)
 *   IROH_ERR_TOO_LONG          relay frame body over IR_RELAY_MAX_PACKET_SIZE (decode) or
 *                              whole encoding over it (encode)
 *   IROH_ERR_INVALID_KEY       a public key that is not a curve point
 *   IROH_ERR_BUFFER_TOO_SMALL  the encode buffer is too small
 */
#ifndef IR_RELAY_FRAME_H
#define IR_RELAY_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "iroh.h"

/* Largest relay frame: decoders take bodies (after the type) up to this size, encoders
 * whole encodings (type included) up to it. */
#define IR_RELAY_MAX_PACKET_SIZE 65536
/* Largest WebSocket message either side accepts (tokio-websockets max_payload_len). */
#define IR_RELAY_MAX_FRAME_SIZE (1024 * 1024)
/* Largest datagram payload one frame can carry (type 1 + id 32 + ecn 1 [+ segment 2]). */
#define IR_RELAY_MAX_DATAGRAM_SINGLE (IR_RELAY_MAX_PACKET_SIZE - 34)
#define IR_RELAY_MAX_DATAGRAM_BATCH (IR_RELAY_MAX_PACKET_SIZE - 36)

/* Frame types. */
#define IR_RELAY_FT_SERVER_CHALLENGE 0x00      /* S->C challenge[16] */
#define IR_RELAY_FT_CLIENT_AUTH 0x01           /* C->S key[32] 0x40 sig[64] */
#define IR_RELAY_FT_SERVER_CONFIRMS_AUTH 0x02  /* S->C empty */
#define IR_RELAY_FT_SERVER_DENIES_AUTH 0x03    /* S->C varint len, UTF-8 reason */
#define IR_RELAY_FT_C2R_DATAGRAM 0x04          /* C->S dst[32] ecn datagram */
#define IR_RELAY_FT_C2R_DATAGRAM_BATCH 0x05    /* C->S dst[32] ecn seg_u16 datagrams */
#define IR_RELAY_FT_R2C_DATAGRAM 0x06          /* S->C src[32] ecn datagram */
#define IR_RELAY_FT_R2C_DATAGRAM_BATCH 0x07    /* S->C src[32] ecn seg_u16 datagrams */
#define IR_RELAY_FT_ENDPOINT_GONE 0x08         /* S->C id[32] */
#define IR_RELAY_FT_PING 0x09                  /* both, 8 bytes */
#define IR_RELAY_FT_PONG 0x0a                  /* both, 8 bytes */
#define IR_RELAY_FT_HEALTH 0x0b                /* S->C UTF-8 text, protocol v1 only */
#define IR_RELAY_FT_RESTARTING 0x0c            /* S->C u32 BE ms, u32 BE ms */
#define IR_RELAY_FT_STATUS 0x0d                /* S->C 1 byte, protocol v2 only */
#define IR_RELAY_FT_MAX 0x0d

/* Masks of the types a receiver accepts (bit 1 << type). */
#define IR_RELAY_BIT(t) (1u << (t))
/* the server reading the handshake: only ClientAuth */
#define IR_RELAY_HS_FROM_CLIENT IR_RELAY_BIT(IR_RELAY_FT_CLIENT_AUTH)
/* the client reading the handshake: challenge, confirm, deny */
#define IR_RELAY_HS_FROM_SERVER                                                            \
    (IR_RELAY_BIT(IR_RELAY_FT_SERVER_CHALLENGE) | IR_RELAY_BIT(IR_RELAY_FT_SERVER_CONFIRMS_AUTH) | \
     IR_RELAY_BIT(IR_RELAY_FT_SERVER_DENIES_AUTH))
/* the server after the handshake (ClientToRelayMsg) */
#define IR_RELAY_FROM_CLIENT                                                               \
    (IR_RELAY_BIT(IR_RELAY_FT_C2R_DATAGRAM) | IR_RELAY_BIT(IR_RELAY_FT_C2R_DATAGRAM_BATCH) | \
     IR_RELAY_BIT(IR_RELAY_FT_PING) | IR_RELAY_BIT(IR_RELAY_FT_PONG))
/* the client after the handshake (RelayToClientMsg), per negotiated protocol version */
#define IR_RELAY_FROM_SERVER_COMMON                                                        \
    (IR_RELAY_BIT(IR_RELAY_FT_R2C_DATAGRAM) | IR_RELAY_BIT(IR_RELAY_FT_R2C_DATAGRAM_BATCH) | \
     IR_RELAY_BIT(IR_RELAY_FT_ENDPOINT_GONE) | IR_RELAY_BIT(IR_RELAY_FT_PING) |             \
     IR_RELAY_BIT(IR_RELAY_FT_PONG) | IR_RELAY_BIT(IR_RELAY_FT_RESTARTING))
#define IR_RELAY_FROM_SERVER_V1 (IR_RELAY_FROM_SERVER_COMMON | IR_RELAY_BIT(IR_RELAY_FT_HEALTH))
#define IR_RELAY_FROM_SERVER_V2 (IR_RELAY_FROM_SERVER_COMMON | IR_RELAY_BIT(IR_RELAY_FT_STATUS))
#define IR_RELAY_ALLOW_ALL 0x3fffu

/* Negotiated relay protocol versions (Sec-WebSocket-Protocol). */
#define IR_RELAY_V1 1 /* "iroh-relay-v1" */
#define IR_RELAY_V2 2 /* "iroh-relay-v2" */
/* The receive mask of a client speaking version v. */
#define IR_RELAY_FROM_SERVER(v) ((v) == IR_RELAY_V1 ? IR_RELAY_FROM_SERVER_V1 : IR_RELAY_FROM_SERVER_V2)

/* Status codes (type 0x0d). Any other byte is accepted as "unknown". */
#define IR_RELAY_STATUS_HEALTHY 0
#define IR_RELAY_STATUS_SAME_ENDPOINT_ID_CONNECTED 1
#define IR_RELAY_STATUS_RATE_LIMITED 2

/* ECN codepoints (low 2 bits of the ECN byte; decoders drop the other bits). */
#define IR_RELAY_ECN_NONE 0
#define IR_RELAY_ECN_ECT1 1
#define IR_RELAY_ECN_ECT0 2
#define IR_RELAY_ECN_CE 3

/* The datagram part of types 0x04-0x07. segment_size 0 means one datagram (a batch frame
 * with segment size 0 decodes as one datagram); otherwise the contents are datagrams of
 * segment_size bytes, the last possibly shorter (GSO semantics). */
typedef struct ir_relay_datagrams {
    uint8_t ecn;           /* IR_RELAY_ECN_* */
    uint16_t segment_size; /* 0: a single datagram */
    const uint8_t *contents;
    size_t len;
} ir_relay_datagrams;

typedef struct ir_relay_frame {
    uint8_t type; /* IR_RELAY_FT_*; for datagrams the type on the wire */
    union {
        uint8_t challenge[16]; /* SERVER_CHALLENGE */
        struct {
            iroh_endpoint_id key;
            iroh_signature sig;
        } client_auth; /* CLIENT_AUTH */
        struct {
            iroh_endpoint_id id; /* destination (0x04/0x05) or source (0x06/0x07) */
            ir_relay_datagrams d;
        } dgram;
        iroh_endpoint_id endpoint_gone; /* ENDPOINT_GONE */
        uint8_t ping[8];                /* PING and PONG */
        struct {
            const char *text; /* not NUL-terminated; valid UTF-8 */
            size_t len;
        } text; /* SERVER_DENIES_AUTH reason, HEALTH problem */
        struct {
            uint32_t reconnect_in_ms, try_for_ms;
        } restarting; /* RESTARTING */
        uint8_t status; /* STATUS */
    } u;
} ir_relay_frame;

/* A small cache of public keys already known to be valid curve points, so that a busy
 * connection does not decompress the same key for every datagram (upstream's KeyCache).
 * Caller-owned, direct-mapped; zero-initialise it (or call init). Not thread-safe. */
#define IR_RELAY_KEYCACHE_SLOTS 64
typedef struct ir_relay_keycache {
    uint8_t keys[IR_RELAY_KEYCACHE_SLOTS][32];
    uint8_t used[IR_RELAY_KEYCACHE_SLOTS];
} ir_relay_keycache;
void ir_relay_keycache_init(ir_relay_keycache *c);
/* Like iroh_endpoint_id_from_bytes, through the cache (cache may be NULL). */
int ir_relay_key_from_bytes(ir_relay_keycache *c, const uint8_t bytes[32], iroh_endpoint_id *out);

/* Decodes one whole frame (one WebSocket message). `allowed` is a mask of IR_RELAY_BIT
 * (types); cache may be NULL. On success f's pointers point into buf.
 * Rules (upstream's): the type may use any varint length; relay frames (types >= 0x04)
 * with a body over 65536 bytes are refused; datagram frames need >= 33 body bytes (single)
 * or >= 35 (batch) and may carry empty contents; EndpointGone, Ping, Pong, Restarting have
 * exact lengths; Status takes its first byte and ignores any more; Health and the deny
 * reason must be UTF-8. Handshake bodies are postcard as upstream reads them
 * (postcard::from_bytes): trailing bytes are ignored and the length varints may be
 * non-minimal. */
int ir_relay_frame_decode(const uint8_t *buf, size_t len, uint32_t allowed,
                          ir_relay_keycache *cache, ir_relay_frame *f);

/* Bytes ir_relay_frame_encode will write (0 for an unknown type). */
size_t ir_relay_frame_encoded_len(const ir_relay_frame *f);
/* Encodes f into out[0..cap) in canonical form (one-byte type, minimal varints) and sets
 * *written. Datagram frames are written as the batch type iff segment_size != 0 (0x04 and
 * 0x05 are "client to relay", 0x06 and 0x07 "relay to client"). Relay frames over 65536
 * bytes and datagram frames with empty contents are refused. */
int ir_relay_frame_encode(const ir_relay_frame *f, uint8_t *out, size_t cap, size_t *written);

/* The prefix of a datagram frame, for writing the contents in place after it (e.g. a
 * server turning a received 0x04 into a 0x06 without copying): type, id, ecn and, for
 * segment_size != 0, the segment size. c2r selects 0x04/0x05 over 0x06/0x07. Returns the
 * bytes written (34 or 36); out must have room for 36. */
size_t ir_relay_dgram_header_len(uint16_t segment_size);
size_t ir_relay_dgram_header_write(uint8_t *out, int c2r, const iroh_endpoint_id *id, uint8_t ecn,
                                   uint16_t segment_size);

/* Iterates the datagrams of a datagram frame: segment_size pieces (the last may be
 * shorter), or the whole contents when segment_size is 0. Empty contents give nothing. */
typedef struct ir_relay_dgram_iter {
    const uint8_t *p;
    size_t left;
    uint16_t seg;
} ir_relay_dgram_iter;
void ir_relay_dgram_iter_init(ir_relay_dgram_iter *it, const ir_relay_datagrams *d);
/* 1 and the next datagram, or 0 when there are no more. */
int ir_relay_dgram_iter_next(ir_relay_dgram_iter *it, const uint8_t **dgram, size_t *len);
/* How many datagrams the iterator will give. */
size_t ir_relay_dgram_count(const ir_relay_datagrams *d);

/* A static name for a frame type ("ClientToRelayDatagram", ...; "Unknown" otherwise). */
const char *ir_relay_frame_type_name(uint64_t type);
/* A static description of a status code (upstream's Display texts; NULL for unknown). */
const char *ir_relay_status_text(uint8_t status);

#endif
