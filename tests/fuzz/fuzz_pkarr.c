/* pkarr glue: the relay payload reader (a signed packet, key || sig || ts || dns, as
 * input) and the iroh TXT reader on its DNS bytes without the signature check (so the
 * fuzzer reaches it). Whatever reads back is
 * written again and must read back the same. */
#include <stdlib.h>
#include <string.h>

#include "dns/endpoint_info.h"
#include "dns/pkarr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_info(const ir_endpoint_info *a, const ir_endpoint_info *b)
{
    if (memcmp(a->id, b->id, 32) || strcmp(a->relay, b->relay) || a->n_addrs != b->n_addrs ||
        a->has_user_data != b->has_user_data ||
        (a->has_user_data && strcmp(a->user_data, b->user_data)))
        abort();
    for (size_t i = 0; i < a->n_addrs; i++)
        if (a->addrs[i].family != b->addrs[i].family || a->addrs[i].port != b->addrs[i].port ||
            memcmp(a->addrs[i].ip, b->addrs[i].ip, 16))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 32)
        return 0;
    static ir_pkarr_packet p;
    int rc = ir_pkarr_from_relay_payload(data, data + 32, size - 32, &p);
    if (rc == 0) {
        static uint8_t body[IR_PKARR_MAX_PAYLOAD];
        size_t n = ir_pkarr_relay_payload(&p, body, sizeof body);
        if (n != size - 32 || memcmp(body, data + 32, n))
            abort();
    } else if (rc > 0) {
        abort();
    }
    /* the records of the DNS part (after key, signature and timestamp), read as a pkarr
     * packet of key data[0..32] */
    if (size < IR_PKARR_HEADER)
        return 0;
    static ir_endpoint_info ei, back;
    int n = ir_endpoint_info_from_dns(data, NULL, data + IR_PKARR_HEADER, size - IR_PKARR_HEADER, &ei);
    if (n > 0) {
        static uint8_t dns[65536];
        size_t len = 0;
        rc = ir_endpoint_info_to_dns(&ei, 30, dns, sizeof dns, &len);
        if (rc == 0) {
            if (ir_endpoint_info_from_dns(data, "", dns, len, &back) < 0)
                abort();
            same_info(&ei, &back);
        } else if (rc != IROH_ERR_TOO_LONG) {
            abort();
        }
    }
    return 0;
}
