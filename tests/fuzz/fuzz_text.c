/* The small text decoders: socket addresses (Rust's grammar) and key text. Parsed values
 * print to text that parses to the same value. */
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
    iroh_socket_addr sa, sb;
    if (iroh_socket_addr_parse(text, &sa) == IROH_OK) {
        char buf[IROH_SOCKET_ADDR_LEN];
        if (iroh_socket_addr_to_string(&sa, buf, sizeof buf) != IROH_OK ||
            iroh_socket_addr_parse(buf, &sb) != IROH_OK || sa.family != sb.family ||
            sa.port != sb.port || memcmp(sa.ip, sb.ip, sa.family == 4 ? 4 : 16) != 0)
            abort();
    }
    iroh_endpoint_id id, id2;
    if (iroh_endpoint_id_parse(text, &id) == IROH_OK) {
        char hex[IROH_ID_HEX_LEN];
        iroh_endpoint_id_to_hex(&id, hex, sizeof hex);
        if (iroh_endpoint_id_parse(hex, &id2) != IROH_OK || !iroh_endpoint_id_equal(&id, &id2))
            abort();
    }
    free(text);
    return 0;
}
