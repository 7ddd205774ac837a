/* `iroh-c dns-server --config FILE`: iroh-dns-server's TOML keys (config.rs, dns.rs,
 * http.rs) where they apply, read with the TOML reader of relay/toml.h.
 *
 *   [http]    port (8080), bind_addr (IP; 0.0.0.0), rate_limit ("simple" | "smart" |
 *             "disabled", case-insensitive)
 *   [https]   accepted and ignored, with a note (no TLS: put a TLS proxy in front)
 *   [dns]     port (5300), bind_addr (IP; 0.0.0.0), default_soa, default_ttl, origins
 *             (array), rr_a, rr_aaaa, rr_ns
 *   [metrics] disabled (bool), bind_addr ("IP:PORT"; default 127.0.0.1:9117): a metrics
 *             listener only when this table is present and not disabled (iroh also
 *             starts one without the table)
 *   [mainline] enabled = false accepted; true is ignored with a note (no DHT here)
 * Anything else is an error naming the line. Command-line options win over the file. */
#ifndef IR_DNSSERVER_FILE_CONFIG_H
#define IR_DNSSERVER_FILE_CONFIG_H

#include "dnsserver.h"

typedef struct ir_dnss_file_config {
    int http;                 /* an [http] table */
    uint32_t http_port;       /* 0: not given */
    char *http_bind;
    int rate_limit;           /* -1: not given */
    uint32_t dns_port;
    char *dns_bind;
    char *soa;
    uint32_t default_ttl;     /* 0: not given */
    char **origins;
    size_t n_origins;
    char *rr_a, *rr_aaaa, *rr_ns;
    int metrics, metrics_disabled;
    char *metrics_bind;
    /* the listen addresses made of bind_addr and port */
    char dns_listen[64], http_listen[64];
    char notes[1024];
    char error[256];
} ir_dnss_file_config;

/* Parses text into *out (initialized first; free it either way). IROH_OK or
 * IROH_ERR_INVALID_ARGUMENT with out->error. */
int ir_dnss_file_config_parse(const char *text, size_t len, ir_dnss_file_config *out);
void ir_dnss_file_config_free(ir_dnss_file_config *c);
/* Sets the fields of cfg that the file gives (pointers into fc: keep fc alive). */
void ir_dnss_file_config_apply(ir_dnss_file_config *fc, ir_dnss_config *cfg);

#endif
