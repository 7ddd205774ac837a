/* The relay server's configuration file (`iroh-c relay -c FILE`): upstream
 * iroh-relay's TOML keys (spec relay.md 5), read by a small TOML-subset parser.
 *
 * The subset: `key = value` lines, bare and quoted keys, dotted keys (`access.allowlist`),
 * `[table]` and `[a.b.c]` headers, `#` comments, basic strings ("..." with the TOML escapes)
 * and literal strings ('...'), decimal integers (with `_` separators), floats, booleans,
 * arrays of strings (over several lines, trailing comma allowed) and inline tables
 * (`{ k = v, ... }`). Not supported (an error naming the line): multi-line strings,
 * arrays of tables, dates, hex/octal/binary integers, arrays of anything but strings.
 *
 * Keys (anything else is an error naming the line):
 *   enable_relay (bool, true; false is refused: there would be nothing to serve)
 *   http_bind_addr, metrics_bind_addr (socket address strings), enable_metrics (bool, true);
 *         with [tls], http_bind_addr is the plain-HTTP captive-portal port (default: port
 *         80), and with --dev the relay's own plain-HTTP address (default [::]:3340)
 *   enable_quic_addr_discovery (bool, false; true needs [tls])
 *   key_cache_capacity (integer; accepted, ignored: our key cache has a fixed size)
 *   access = "everyone" | { allowlist = [ids] } | { denylist = [ids] } |
 *            { shared_token = [tokens] }   (also as `access.allowlist = [...]` or an
 *            [access] table, as serde reads upstream's externally tagged enum; `http` is
 *            refused)
 *   [tls] https_bind_addr, cert_mode ("Manual" only; "LetsEncrypt" and "Reloading" are
 *         refused; default "Manual"), cert_dir, manual_cert_path, manual_key_path;
 *         quic_bind_addr (QUIC address discovery; default: the HTTPS IP, port 7842);
 *         hostname, contact, prod_tls are accepted and ignored (ACME)
 *   [limits] accept_conn_limit, accept_conn_burst (accepted, ignored: upstream does not
 *         implement them either)
 *   [limits.client.rx] bytes_per_second, max_burst_bytes (1 .. 2^32-1; a burst needs a
 *         rate)
 * Ignored keys are listed in `notes`, one line each, for the command to print. */
#ifndef IR_RELAY_CONFIG_H
#define IR_RELAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "iroh.h"

enum {
    IR_RELAY_ACCESS_EVERYONE = 0,
    IR_RELAY_ACCESS_ALLOWLIST = 1,
    IR_RELAY_ACCESS_DENYLIST = 2,
    IR_RELAY_ACCESS_SHARED_TOKEN = 3,
};

typedef struct ir_relay_file_config {
    int enable_relay;              /* 1 */
    char *http_bind_addr;          /* NULL: not given */
    int enable_metrics;            /* 1 (upstream's default) */
    char *metrics_bind_addr;       /* NULL: not given */
    int access_given;              /* the file has an `access` key */
    int access;                    /* IR_RELAY_ACCESS_* */
    iroh_endpoint_id *ids;         /* allowlist / denylist */
    size_t n_ids;
    char **tokens;                 /* shared_token */
    size_t n_tokens;
    int tls;                       /* a [tls] table is present */
    int enable_qad;                /* enable_quic_addr_discovery */
    char *quic_bind_addr;          /* NULL: not given */
    char *https_bind_addr, *cert_dir, *manual_cert_path, *manual_key_path; /* NULL: not given */
    uint32_t rx_bytes_per_second;  /* 0: no limit */
    uint32_t rx_max_burst_bytes;   /* 0: not given */
    char notes[1024];              /* "line N: key ignored (...)\n" lines */
    char error[256];               /* on failure: "line N: what is wrong" */
} ir_relay_file_config;

/* Parses the text of a configuration file into *out (which is initialized first). On
 * failure returns IROH_ERR_INVALID_ARGUMENT with out->error set; *out must be freed
 * either way. */
int ir_relay_file_config_parse(const char *text, size_t len, ir_relay_file_config *out);
void ir_relay_file_config_free(ir_relay_file_config *c);

#endif
