/* The postcard reader and the EndpointAddr decoder on raw bytes: rejected cleanly, or
 * decoded to an address whose canonical encoding is stable. */
#include <stdlib.h>
#include <string.h>

#include "base/addr.h"
#include "base/postcard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* raw varints of each width */
    ir_pc_reader r;
    static const uint64_t max[] = {UINT16_MAX, UINT32_MAX, UINT64_MAX};
    for (int i = 0; i < 3; i++) {
        uint64_t v;
        ir_pc_reader_init(&r, data, size);
        while (ir_pc_get_varint(&r, max[i], &v) == 0)
            if (v > max[i] || r.pos > size)
                abort();
    }
    ir_pc_reader_init(&r, data, size);
    iroh_endpoint_addr *a = NULL;
    if (ir_endpoint_addr_decode(&r, IROH_ERR_INVALID_TICKET, &a) != IROH_OK) {
        if (a)
            abort();
        return 0;
    }
    ir_buf b1, b2;
    ir_buf_init(&b1);
    ir_buf_init(&b2);
    ir_endpoint_addr_encode(a, &b1);
    iroh_endpoint_addr *c = NULL;
    ir_pc_reader_init(&r, b1.data, b1.len);
    if (b1.oom || ir_endpoint_addr_decode(&r, IROH_ERR_INVALID_TICKET, &c) != IROH_OK ||
        r.pos != b1.len)
        abort();
    ir_endpoint_addr_encode(c, &b2);
    if (b2.len != b1.len || memcmp(b1.data, b2.data, b1.len) != 0)
        abort();
    ir_buf_free(&b1);
    ir_buf_free(&b2);
    iroh_endpoint_addr_free(a);
    iroh_endpoint_addr_free(c);
    return 0;
}
