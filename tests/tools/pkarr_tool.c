/* Signed pkarr packets for the dns-server tests and benchmarks:
 *
 *   pkarr_tool z32 SECRET                      the z32 form of SECRET's EndpointId
 *   pkarr_tool payload SECRET TS_US [--relay URL] [--addr IP:PORT]... [--ttl N]
 *                                              the relay payload (PUT body) on stdout:
 *                                              iroh's record (spec 4.2) signed at TS_US
 *   pkarr_tool rawdns SECRET TS_US HEX         a payload signing these DNS bytes as they are
 *
 * SECRET: 64 hex or 52 base32 characters. Exit 0, or 2 on bad arguments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/endpoint_info.h"
#include "dns/pkarr.h"
#include "iroh.h"

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    iroh_secret_key sk;
    if (iroh_secret_key_parse(argv[2], &sk) != IROH_OK)
        return 2;
    iroh_endpoint_id id;
    iroh_secret_key_public(&sk, &id);
    if (!strcmp(argv[1], "z32")) {
        char z[64];
        iroh_endpoint_id_to_z32(&id, z, sizeof z);
        puts(z);
        return 0;
    }
    if (argc < 4)
        return 2;
    uint64_t ts = strtoull(argv[3], NULL, 10);
    static uint8_t dns[4096];
    size_t len = 0;
    if (!strcmp(argv[1], "rawdns")) {
        if (argc != 5)
            return 2;
        len = strlen(argv[4]) / 2;
        if (len > sizeof dns)
            return 2;
        for (size_t k = 0; k < len; k++)
            sscanf(argv[4] + 2 * k, "%2hhx", &dns[k]);
    } else if (!strcmp(argv[1], "payload")) {
        static ir_endpoint_info ei;
        memcpy(ei.id, id.bytes, 32);
        uint32_t ttl = 30;
        for (int i = 4; i < argc; i++) {
            if (!strcmp(argv[i], "--relay") && i + 1 < argc) {
                snprintf(ei.relay, sizeof ei.relay, "%s", argv[++i]);
            } else if (!strcmp(argv[i], "--addr") && i + 1 < argc && ei.n_addrs < IR_ENDPOINT_INFO_MAX_ADDRS) {
                if (iroh_socket_addr_parse(argv[++i], &ei.addrs[ei.n_addrs++]) != IROH_OK)
                    return 2;
            } else if (!strcmp(argv[i], "--ttl") && i + 1 < argc) {
                ttl = (uint32_t)strtoul(argv[++i], NULL, 10);
            } else {
                return 2;
            }
        }
        if (ir_endpoint_info_to_dns(&ei, ttl, dns, sizeof dns, &len) != IROH_OK) {
            fprintf(stderr, "pkarr_tool: %s\n", iroh_last_error());
            return 2;
        }
    } else {
        return 2;
    }
    static ir_pkarr_packet p;
    if (ir_pkarr_sign(&sk, ts, dns, len, &p) != IROH_OK) {
        fprintf(stderr, "pkarr_tool: %s\n", iroh_last_error());
        return 2;
    }
    uint8_t out[IR_PKARR_MAX_PAYLOAD];
    size_t n = ir_pkarr_relay_payload(&p, out, sizeof out);
    fwrite(out, 1, n, stdout);
    return 0;
}
