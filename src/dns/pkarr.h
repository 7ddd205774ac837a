/* pkarr SignedPacket (spec identity-tickets-discovery.md 4.2, iroh-dns pkarr.rs):
 *   signed packet  = key(32) || sig(64) || timestamp_us(8, big-endian) || dns(<= 1000)
 *   relay payload  = sig || timestamp || dns          (the body of a pkarr PUT / GET)
 *   signed message = "3:seqi" <ts decimal> "e1:v" <dns length decimal> ":" || dns
 * The DNS packet inside is parsed with ldns when a packet is read. No clock is read here:
 * the caller passes the timestamp (iroh's is microseconds since the Unix epoch, strictly
 * increasing per process). */
#ifndef IR_DNS_PKARR_H
#define IR_DNS_PKARR_H

#include <stddef.h>
#include <stdint.h>

#include "iroh.h"

#define IR_PKARR_MAX_DNS 1000
#define IR_PKARR_HEADER 104 /* key || sig || timestamp */
#define IR_PKARR_MIN_PAYLOAD 72 /* sig || timestamp, empty DNS packet */
#define IR_PKARR_MAX_PAYLOAD (IR_PKARR_MIN_PAYLOAD + IR_PKARR_MAX_DNS)

typedef struct ir_pkarr_packet {
    uint8_t key[32];
    uint8_t sig[64];
    uint64_t timestamp_us;
    size_t dns_len;
    uint8_t dns[IR_PKARR_MAX_DNS];
} ir_pkarr_packet;

/* Signs dns (<= 1000 bytes) with sk at timestamp_us. IROH_ERR_TOO_LONG beyond 1000 bytes,
 * IROH_ERR_INVALID_ARGUMENT for NULL pointers. The DNS bytes are not checked here. */
int ir_pkarr_sign(const iroh_secret_key *sk, uint64_t timestamp_us, const uint8_t *dns,
                  size_t dns_len, ir_pkarr_packet *out);

/* The relay payload (PUT/GET body: sig || ts || dns) for key; verifies (spec 4.2 order)
 * and that the DNS packet parses. Returns 0 or a negative IROH_ERR_* with a detail:
 *   IROH_ERR_INVALID_ARGUMENT  shorter than 72 bytes ("too short"), or the DNS packet
 *                              does not parse
 *   IROH_ERR_TOO_LONG          longer than 1072 bytes (a DNS packet over 1000 bytes)
 *   IROH_ERR_INVALID_KEY       key is not a curve point
 *   IROH_ERR_INVALID_SIGNATURE the signature does not verify (strictly)
 * out is written only on success. */
int ir_pkarr_from_relay_payload(const uint8_t key[32], const uint8_t *body, size_t len,
                                ir_pkarr_packet *out);

/* The same for a whole signed packet (key || payload, 104..1104 bytes). */
int ir_pkarr_from_bytes(const uint8_t *bytes, size_t len, ir_pkarr_packet *out);

/* Writes the relay payload (72 + dns_len bytes) and returns its length, or 0 when cap is
 * too small. */
size_t ir_pkarr_relay_payload(const ir_pkarr_packet *p, uint8_t *out, size_t cap);

/* The BEP 44 message the signature covers; returns its length (at most
 * IR_PKARR_SIGNABLE_MAX), written to out. */
#define IR_PKARR_SIGNABLE_MAX (40 + IR_PKARR_MAX_DNS)
size_t ir_pkarr_signable(uint64_t timestamp_us, const uint8_t *dns, size_t dns_len,
                         uint8_t out[IR_PKARR_SIGNABLE_MAX]);

/* 1 when a is more recent than b (larger timestamp; tie: larger DNS packet bytes) */
int ir_pkarr_more_recent(const ir_pkarr_packet *a, const ir_pkarr_packet *b);

/* 1 if the bytes parse as a DNS message (ldns), else 0. */
int ir_dns_msg_parses(const uint8_t *msg, size_t len);

#endif
