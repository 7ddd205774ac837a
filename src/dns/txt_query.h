/* The resolver's DNS messages (spec 4.5, iroh's DnsAddressLookup): a TXT query for
 * `_iroh.<z32>.<origin>` and the reading of its response, with ldns. Sans-IO: the caller
 * sends over UDP (and TCP with the 2-byte length prefix of RFC 1035 4.2.2 when the
 * response says TC) and picks the query id from a random source. */
#ifndef IR_DNS_TXT_QUERY_H
#define IR_DNS_TXT_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "endpoint_info.h"

#define IR_DNS_EDNS_UDP_SIZE 1232 /* what we offer in EDNS0 (the DNS flag day size) */

/* The query: ID qid, RD=1, one question `_iroh.<z32>.<origin>` IN TXT, and an EDNS0 OPT
 * record offering IR_DNS_EDNS_UDP_SIZE bytes. IROH_ERR_INVALID_ARGUMENT for an empty or
 * too long origin, IROH_ERR_BUFFER_TOO_SMALL (with *len the size needed). */
int ir_dns_txt_query(const uint8_t id[32], const char *origin, uint16_t qid, uint8_t *out,
                     size_t cap, size_t *len);

typedef enum ir_dns_txt_status {
    IR_DNS_TXT_FOUND = 0,     /* iroh TXT records read into out */
    IR_DNS_TXT_NONE = 1,      /* NXDOMAIN, or NOERROR without iroh TXT records */
    IR_DNS_TXT_TRUNCATED = 2, /* TC set: ask again over TCP (out untouched) */
    IR_DNS_TXT_FAILED = 3,    /* SERVFAIL, REFUSED, any other RCODE, or records that fail
                               * iroh's parse rules (an unknown key, no '='): try again */
} ir_dns_txt_status;

/* Reads msg as the response to the query (id, origin, qid). Returns
 *  - a status >= 0 when msg is that response (for FOUND, out holds the records);
 *  - IROH_ERR_INVALID_ARGUMENT with a detail when it is not: it does not parse, QR is not
 *    set, the ID or the question differ (name compared case-insensitively, type TXT,
 *    class IN), the opcode is not QUERY. A resolver ignores such a datagram and keeps
 *    waiting (it may be spoofed or stale).
 * rcode (may be NULL) receives the response code when msg is the response. */
int ir_dns_txt_response(const uint8_t id[32], const char *origin, uint16_t qid,
                        const uint8_t *msg, size_t len, ir_endpoint_info *out, int *rcode);

#endif
