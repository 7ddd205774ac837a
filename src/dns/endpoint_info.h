/* iroh's EndpointInfo as DNS TXT records (spec identity-tickets-discovery.md 4.1, iroh-dns
 * attrs.rs / endpoint_info.rs): `_iroh.<z32 id>[.<origin>] TXT "key=value"`, one
 * attribute per record, keys relay, addr and user-data. Messages are built and parsed with
 * ldns; everything read here is untrusted. */
#ifndef IR_DNS_ENDPOINT_INFO_H
#define IR_DNS_ENDPOINT_INFO_H

#include <stddef.h>
#include <stdint.h>

#include "iroh.h"

#define IR_ENDPOINT_INFO_RELAY_MAX 256 /* a relay URL with its NUL ("relay=" + URL <= 255) */
#define IR_ENDPOINT_INFO_MAX_ADDRS 32  /* more addr= records than this are dropped */
#define IR_ENDPOINT_INFO_USER_DATA_MAX 245
#define IR_DNS_TXT_NAME "_iroh"

typedef struct ir_endpoint_info {  /* iroh's EndpointInfo: what a record says */
    uint8_t id[32];
    char relay[IR_ENDPOINT_INFO_RELAY_MAX]; /* "" when none (first usable relay=) */
    iroh_socket_addr addrs[IR_ENDPOINT_INFO_MAX_ADDRS];
    size_t n_addrs;
    char user_data[IR_ENDPOINT_INFO_USER_DATA_MAX + 1];
    int has_user_data;
} ir_endpoint_info;

/* The TXT strings of ei in iroh's order (relay, addr..., user-data) as one NUL-separated
 * callback each; used by to_dns and by mDNS. Returns 0 or the callback's error. */
typedef int (*ir_endpoint_info_txt_fn)(void *ctx, const char *kv, size_t len);
int ir_endpoint_info_txt_strings(const ir_endpoint_info *ei, ir_endpoint_info_txt_fn fn,
                                 void *ctx);

/* The pkarr DNS packet as iroh builds it (spec 4.2: header 8000, answers _iroh.<z32>
 * TXT ttl, compression). IROH_ERR_TOO_LONG when a "key=value" exceeds 255 bytes,
 * IROH_ERR_BUFFER_TOO_SMALL when the message exceeds cap (pkarr: cap 1000),
 * IROH_ERR_INVALID_ARGUMENT for a relay that is no URL or user data over 245 bytes. The
 * relay is written normalized (iroh_relay_url_normalize), as iroh prints a RelayUrl. */
int ir_endpoint_info_to_dns(const ir_endpoint_info *ei, uint32_t ttl, uint8_t *out,
                            size_t cap, size_t *len);

/* Reads the iroh TXT records of id from a DNS message (a pkarr packet: owner
 * _iroh.<z32>; a DNS answer: owner _iroh.<z32>.<origin>, origin given), spec 4.1 rules:
 *  - only TXT records of the answer section whose owner is that name (case-insensitive;
 *    in a DNS answer also the target of a CNAME chain from it) are read; others ignored;
 *  - a record's character-strings are concatenated; a record that is not UTF-8 is skipped;
 *  - "key=value": the value ends at a second '='; a string without '=' or with a key other
 *    than relay, addr, user-data fails the whole set (IROH_ERR_INVALID_ARGUMENT);
 *  - relay values that are no URL and addr values that are no socket address (custom
 *    addresses included) are skipped; duplicates dropped; relay = the first usable one,
 *    normalized; at most IR_ENDPOINT_INFO_MAX_ADDRS addresses;
 *  - only the first user-data counts, and only when it has at most 245 bytes.
 * origin NULL or "" reads a pkarr packet. Returns the number of iroh TXT records read
 * (0: none; out then holds only the id), or a negative IROH_ERR_* with a detail
 * (IROH_ERR_INVALID_ARGUMENT for a message that does not parse). */
int ir_endpoint_info_from_dns(const uint8_t id[32], const char *origin, const uint8_t *msg,
                              size_t len, ir_endpoint_info *out);

/* The DNS name "_iroh.<z32>[.<origin>]" without a trailing dot; returns its length, or 0
 * when cap is too small or origin is too long for a DNS name. */
size_t ir_endpoint_info_name(const uint8_t id[32], const char *origin, char *out, size_t cap);

#endif
