/* The relay configuration file parser (src/relay/config.c): any input either parses or
 * fails with an error naming its line; what parses is consistent (addresses parse, ids
 * and tokens as counted, a burst only with a rate), and everything is freed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ir_relay_file_config c;
    int rc = ir_relay_file_config_parse((const char *)data, size, &c);
    if (rc != IROH_OK) {
        if (rc != IROH_ERR_INVALID_ARGUMENT || strncmp(c.error, "line ", 5) != 0)
            abort();
    } else {
        iroh_socket_addr a;
        if (c.error[0] || !c.enable_relay)
            abort();
        if ((c.http_bind_addr && iroh_socket_addr_parse(c.http_bind_addr, &a) != IROH_OK) ||
            (c.metrics_bind_addr && iroh_socket_addr_parse(c.metrics_bind_addr, &a) != IROH_OK) ||
            (c.https_bind_addr && iroh_socket_addr_parse(c.https_bind_addr, &a) != IROH_OK))
            abort();
        if (c.rx_max_burst_bytes && !c.rx_bytes_per_second)
            abort();
        for (size_t i = 0; i < c.n_tokens; i++)
            if (!c.tokens[i][0])
                abort();
        if ((c.n_ids && c.access != IR_RELAY_ACCESS_ALLOWLIST && c.access != IR_RELAY_ACCESS_DENYLIST) ||
            (c.n_tokens && c.access != IR_RELAY_ACCESS_SHARED_TOKEN))
            abort();
        if (strlen(c.notes) >= sizeof c.notes)
            abort();
    }
    ir_relay_file_config_free(&c);
    return 0;
}
