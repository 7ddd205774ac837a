/* The resolver's reading of a DNS response: the first two bytes are the query id we
 * expect, the rest is the datagram. Any input is refused cleanly or read; a FOUND answer
 * holds at most IR_ENDPOINT_INFO_MAX_ADDRS addresses and terminated strings. */
#include <stdlib.h>
#include <string.h>

#include "dns/endpoint_info.h"
#include "dns/txt_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* spec 7.1: the id of iroh's endpoint_info.rs test */
static const uint8_t ID[32] = { 0x19, 0x92, 0xd5, 0x3c, 0x02, 0xcd, 0xc0, 0x45, 0x66, 0xe5, 0xc0,
                                0xed, 0xb1, 0xce, 0x83, 0x30, 0x5c, 0xd5, 0x50, 0x29, 0x79, 0x53,
                                0xa0, 0x47, 0xa4, 0x45, 0xea, 0x32, 0x64, 0xb5, 0x4b, 0x18 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint16_t qid = (uint16_t)(data[0] << 8 | data[1]);
    static ir_endpoint_info ei;
    int rcode = -1;
    int rc = ir_dns_txt_response(ID, "dns.iroh.link.", qid, data + 2, size - 2, &ei, &rcode);
    if (rc > IR_DNS_TXT_FAILED || (rc < 0 && rc != IROH_ERR_INVALID_ARGUMENT))
        abort();
    if (rc >= 0 && (rcode < 0 || rcode > 15))
        abort();
    if (rc == IR_DNS_TXT_FOUND) {
        if (ei.n_addrs > IR_ENDPOINT_INFO_MAX_ADDRS || memcmp(ei.id, ID, 32) ||
            !memchr(ei.relay, 0, sizeof ei.relay) || !memchr(ei.user_data, 0, sizeof ei.user_data))
            abort();
    }
    /* the same bytes without the header checks, as an answer for the origin */
    int n = ir_endpoint_info_from_dns(ID, "dns.iroh.link", data + 2, size - 2, &ei);
    if (n < 0 && n != IROH_ERR_INVALID_ARGUMENT)
        abort();
    return 0;
}
