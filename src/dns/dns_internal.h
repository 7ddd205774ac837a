/* Shared inside the dns layer only: the readers that work on a message ldns has parsed. */
#ifndef IR_DNS_INTERNAL_H
#define IR_DNS_INTERNAL_H

#include <ldns/ldns.h>

#include "endpoint_info.h"

/* ir_endpoint_info_from_dns on a parsed message; len bounds the TXT text (the wire
 * length is enough). */
int ir_dns_endpoint_info_from_pkt(const uint8_t id[32], const char *origin, const ldns_pkt *pkt,
                                  size_t len, ir_endpoint_info *out);

#endif
