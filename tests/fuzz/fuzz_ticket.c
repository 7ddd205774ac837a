/* Ticket text decoding: any input is rejected cleanly or decodes to an address whose
 * ticket decodes to the same ticket again. */
#include <stdlib.h>
#include <string.h>

#include "iroh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    iroh_endpoint_addr *a = NULL;
    if (iroh_endpoint_ticket_decode(text, &a) == IROH_OK) {
        size_t need = 0;
        iroh_endpoint_ticket_encode(a, NULL, 0, &need);
        char *t1 = malloc(need);
        if (!t1 || iroh_endpoint_ticket_encode(a, t1, need, NULL) != IROH_OK)
            abort();
        iroh_endpoint_addr *b = NULL;
        if (iroh_endpoint_ticket_decode(t1, &b) != IROH_OK)
            abort();
        char *t2 = malloc(need);
        if (!t2 || iroh_endpoint_ticket_encode(b, t2, need, NULL) != IROH_OK || strcmp(t1, t2))
            abort();
        free(t1);
        free(t2);
        iroh_endpoint_addr_free(b);
    } else if (a != NULL) {
        abort();
    }
    iroh_endpoint_addr_free(a);
    free(text);
    return 0;
}
