/* QUIC packets (RFC 9000 section 17, RFC 9001 section 5): header parsing before
 * decryption, packet number encoding, header protection and packet protection, Version
 * Negotiation, Retry and stateless resets. Stateless helpers over caller buffers. */
#ifndef IR_QUIC_PACKET_H
#define IR_QUIC_PACKET_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"

#define IR_QUIC_V1 0x00000001u
#define IR_MAX_CID_LEN 20
#define IR_MIN_INITIAL_SIZE 1200
#define IR_RESET_TOKEN_LEN 16
/* smallest stateless reset we send or recognise (RFC 9000 10.3: 5 + 16 bytes at least) */
#define IR_MIN_RESET_SIZE 21

typedef struct ir_cid {
    uint8_t len;
    uint8_t data[IR_MAX_CID_LEN];
} ir_cid;

int ir_cid_eq(const ir_cid *a, const ir_cid *b);

typedef enum ir_pkt_type {
    IR_PT_INITIAL = 0,
    IR_PT_0RTT = 1,
    IR_PT_HANDSHAKE = 2,
    IR_PT_RETRY = 3,
    IR_PT_1RTT = 4,
    IR_PT_VN = 5, /* version negotiation */
} ir_pkt_type;

typedef struct ir_pkt_hdr {
    ir_pkt_type type;
    uint32_t version;
    ir_cid dcid, scid;
    const uint8_t *token; /* Initial: token; Retry: retry token */
    size_t token_len;
    size_t pn_offset; /* offset of the protected packet number */
    size_t pkt_len;   /* bytes of this packet in the datagram */
} ir_pkt_hdr;

/* Parses the header of the packet at p (len bytes left in the datagram). short_dcid_len is
 * the length of our connection ids, used for short headers. Only the invariants and the
 * version-1 long header layout are checked; returns 0, or -1 when the packet must be
 * dropped (short, fixed bit clear, length beyond the datagram, CID over 20 bytes). A
 * packet of an unknown version parses as far as the invariant header (pkt_len = len). */
int ir_pkt_parse(const uint8_t *p, size_t len, size_t short_dcid_len, ir_pkt_hdr *h);

/* 1 if the version-1 client Initial at p (h from ir_pkt_parse) opens under the Initial
 * keys of its own DCID (RFC 9001 5.2): header protection removed and the payload
 * authenticated on a copy, p left as it is (a failed in-place open would destroy it).
 * What a server checks before it keeps any state for a new client. 0 for anything else,
 * including packets over IR_INITIAL_CHECK_MAX bytes. */
#define IR_INITIAL_CHECK_MAX 1500
int ir_pkt_initial_opens(const uint8_t *p, const ir_pkt_hdr *h);

/* Packet numbers (RFC 9000 A.2, A.3). largest_acked is UINT64_MAX when nothing was acked. */
size_t ir_pn_encode_len(uint64_t pn, uint64_t largest_acked);
uint64_t ir_pn_decode(uint64_t largest_pn, uint64_t truncated, size_t pn_len);

/* Removes header protection in place: unmasks the first byte and the packet number.
 * largest_pn is the largest packet number received in the space (UINT64_MAX if none).
 * Returns 0, or -1 when the packet is too short to sample. */
int ir_pkt_unprotect_header(uint8_t *p, const ir_pkt_hdr *h, const ir_hp *hp,
                            uint64_t largest_pn, uint64_t *pn, size_t *pn_len);

/* Decrypts the payload in place after ir_pkt_unprotect_header. On success *payload and
 * *payload_len give the plaintext frames (inside p). Returns 0, or -1 on failure to
 * authenticate. */
int ir_pkt_decrypt(uint8_t *p, const ir_pkt_hdr *h, size_t pn_len, const ir_aead *a,
                   uint32_t path_id, uint64_t pn, const uint8_t **payload, size_t *payload_len);

/* Writes a long header with a 2-byte length field (filled in by ir_pkt_protect) and the
 * packet number; returns the header length, or 0 if cap is too small. *length_offset
 * receives the position of the length field. */
size_t ir_pkt_write_long(uint8_t *p, size_t cap, ir_pkt_type type, uint32_t version,
                         const ir_cid *dcid, const ir_cid *scid, const uint8_t *token,
                         size_t token_len, uint64_t pn, size_t pn_len, size_t *length_offset);

/* Writes a short header; returns its length or 0. */
size_t ir_pkt_write_short(uint8_t *p, size_t cap, const ir_cid *dcid, int key_phase, int spin,
                          uint64_t pn, size_t pn_len);

/* Seals a packet in place: p[0 .. hdr_len) is the header written above (ending with the
 * packet number of pn_len bytes), p[hdr_len .. hdr_len + payload_len) the plaintext
 * frames, and p must have 16 more bytes of room for the tag. length_offset is 0 for short
 * headers. pn_len + payload_len must be at least 4 (pad with PADDING frames). Returns the
 * packet's total length. */
size_t ir_pkt_protect(uint8_t *p, size_t hdr_len, size_t pn_len, size_t length_offset,
                      size_t payload_len, const ir_pkt_keys *k, uint32_t path_id, uint64_t pn);

/* A Version Negotiation packet answering a client's dcid/scid, offering version 1. */
size_t ir_pkt_write_vn(uint8_t *p, size_t cap, const ir_cid *client_dcid,
                       const ir_cid *client_scid, uint8_t unused_bits);

/* Retry (RFC 9000 17.2.5, RFC 9001 5.8): writes one carrying token; returns its length. */
size_t ir_pkt_write_retry(uint8_t *p, size_t cap, const ir_cid *client_scid, const ir_cid *new_scid,
                          const ir_cid *odcid, const uint8_t *token, size_t token_len,
                          uint8_t unused_bits);
/* 1 if the Retry packet's integrity tag is right for the original dcid. */
int ir_pkt_retry_valid(const uint8_t *p, size_t len, const ir_cid *odcid);

/* 1 if the datagram ends with the stateless reset token (compared in constant time). */
int ir_pkt_is_stateless_reset(const uint8_t *p, size_t len, const uint8_t token[16]);

#endif
