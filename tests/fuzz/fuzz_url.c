/* The URL parser (src/base/url.c): any input either fails cleanly or normalizes to text
 * that normalizes to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *once = NULL, *twice = NULL;
    if (ir_url_normalize((const char *)data, size, &once) != IROH_OK) {
        if (once)
            abort();
        return 0;
    }
    if (!once || ir_url_normalize(once, strlen(once), &twice) != IROH_OK ||
        strcmp(once, twice) != 0)
        abort();
    /* The public entry point gives the same text. */
    size_t n = strlen(once);
    char *buf = malloc(n + 1);
    if (buf) {
        if (iroh_relay_url_normalize(once, buf, n + 1) != IROH_OK || strcmp(buf, once) != 0 ||
            iroh_relay_url_normalize(once, buf, n) != IROH_ERR_BUFFER_TOO_SMALL)
            abort();
        free(buf);
    }
    free(once);
    free(twice);
    return 0;
}
