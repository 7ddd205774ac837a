/* The captive-portal check's answer reader (endpoint/netreport.c, ir_nr_captive_answer):
 * a relay or a portal sends any bytes; every prefix gives a decision or "more", never a
 * read past the data, and once decided a longer input never goes back to "more". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "endpoint/netreport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t next_len(size_t n, size_t size)
{
    if (n == size)
        return size + 1;
    size_t next = n + 1 + n / 8;
    if (n < 4088 && next > 4088)
        next = 4088;
    if (n >= 4088 && n < 4104)
        next = n + 1;
    return next > size ? size : next;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly size bytes, so that ASan sees any read past the end */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    int decided = -1;
    /* growing prefixes: every length from 4088 to 4104 (around the 4 KiB head limit),
     * steps of an eighth elsewhere, the whole input last */
    for (size_t n = 0; n <= size; n = next_len(n, size)) {
        int v = ir_nr_captive_answer("relay.example", copy, n, 0);
        if (v < -1 || v > 1 || (decided >= 0 && v != decided))
            abort();
        if (v >= 0)
            decided = v;
    }
    int end = ir_nr_captive_answer("relay.example", copy, size, 1);
    if (end != 0 && end != 1)
        abort();
    free(copy);
    return 0;
}
