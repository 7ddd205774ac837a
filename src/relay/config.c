/* The relay server's configuration file: upstream's keys over the TOML reader of toml.h.
 * See config.h for the keys. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "toml.h"

/* what the key handlers share */
typedef struct relay_ctx {
    ir_relay_file_config *cfg;
    int access_line; /* where access was given (0: not yet) */
    int burst_line;
} relay_ctx;
#define RC(ps) ((relay_ctx *)(ps)->ctx)

static int set_access(ir_toml_reader *ps, int mode)
{
    if (RC(ps)->access_line)
        return ir_toml_fail(ps, "access is given twice (first on line %d)", RC(ps)->access_line);
    RC(ps)->access_line = ps->line;
    RC(ps)->cfg->access_given = 1;
    RC(ps)->cfg->access = mode;
    return 0;
}

static int apply(ir_toml_reader *ps, void *ctx, const char *key, ir_toml_value *v)
{
    ir_relay_file_config *c = ((relay_ctx *)ctx)->cfg;
    if (strncmp(key, "tls.", 4) == 0)
        c->tls = 1;
    if (!strcmp(key, "enable_relay")) {
        if (ir_toml_want(ps, key, v, IR_TOML_BOOL) < 0)
            return -1;
        if (!v->b)
            return ir_toml_fail(ps, "enable_relay = false is not supported (there would be nothing to serve)");
        c->enable_relay = 1;
    } else if (!strcmp(key, "http_bind_addr")) {
        return ir_toml_take_addr(ps, key, v, &c->http_bind_addr);
    } else if (!strcmp(key, "metrics_bind_addr")) {
        return ir_toml_take_addr(ps, key, v, &c->metrics_bind_addr);
    } else if (!strcmp(key, "enable_metrics")) {
        if (ir_toml_want(ps, key, v, IR_TOML_BOOL) < 0)
            return -1;
        c->enable_metrics = v->b;
    } else if (!strcmp(key, "enable_quic_addr_discovery")) {
        if (ir_toml_want(ps, key, v, IR_TOML_BOOL) < 0)
            return -1;
        c->enable_qad = v->b;
    } else if (!strcmp(key, "key_cache_capacity")) {
        if (ir_toml_want(ps, key, v, IR_TOML_INT) < 0)
            return -1;
        if (v->i < 0)
            return ir_toml_fail(ps, "'%s' must not be negative", key);
        ir_toml_note(ps, key, "the key cache has a fixed size");
    } else if (!strcmp(key, "access")) {
        if (ir_toml_want(ps, key, v, IR_TOML_STR) < 0)
            return -1;
        if (strcmp(v->s, "everyone") != 0) {
            if (!strcmp(v->s, "allowlist") || !strcmp(v->s, "denylist") || !strcmp(v->s, "shared_token"))
                return ir_toml_fail(ps, "access = \"%s\" needs a list: access.%s = [ ... ]", v->s, v->s);
            return ir_toml_fail(ps, "access must be \"everyone\", allowlist, denylist or shared_token");
        }
        return set_access(ps, IR_RELAY_ACCESS_EVERYONE);
    } else if (!strcmp(key, "access.allowlist") || !strcmp(key, "access.denylist")) {
        if (ir_toml_want(ps, key, v, IR_TOML_ARRAY) < 0)
            return -1;
        if (set_access(ps, key[7] == 'a' ? IR_RELAY_ACCESS_ALLOWLIST : IR_RELAY_ACCESS_DENYLIST) < 0)
            return -1;
        c->ids = calloc(v->n ? v->n : 1, sizeof *c->ids);
        if (!c->ids)
            return ir_toml_fail(ps, "out of memory");
        for (size_t k = 0; k < v->n; k++)
            if (iroh_endpoint_id_parse(v->items[k], &c->ids[c->n_ids++]) != IROH_OK)
                return ir_toml_fail(ps, "'%s': '%.80s' is not an EndpointId", key, v->items[k]);
    } else if (!strcmp(key, "access.shared_token")) {
        if (ir_toml_want(ps, key, v, IR_TOML_ARRAY) < 0 || set_access(ps, IR_RELAY_ACCESS_SHARED_TOKEN) < 0)
            return -1;
        for (size_t k = 0; k < v->n; k++)
            if (!v->items[k][0])
                return ir_toml_fail(ps, "'%s': tokens must not be empty", key);
        c->tokens = v->items;
        c->n_tokens = v->n;
        v->items = NULL;
        v->n = 0;
    } else if (!strncmp(key, "access.", 7)) {
        if (!strcmp(key, "access.http") || !strncmp(key, "access.http.", 12))
            return ir_toml_fail(ps, "access.http (asking an HTTP service) is not supported");
        return ir_toml_fail(ps, "unknown access mode '%s' (everyone, allowlist, denylist, shared_token)", key + 7);
    } else if (!strcmp(key, "tls.https_bind_addr")) {
        return ir_toml_take_addr(ps, key, v, &c->https_bind_addr);
    } else if (!strcmp(key, "tls.quic_bind_addr")) {
        return ir_toml_take_addr(ps, key, v, &c->quic_bind_addr);
    } else if (!strcmp(key, "tls.cert_mode")) {
        if (ir_toml_want(ps, key, v, IR_TOML_STR) < 0)
            return -1;
        if (!strcmp(v->s, "LetsEncrypt") || !strcmp(v->s, "Reloading"))
            return ir_toml_fail(ps, "cert_mode \"%s\" is not supported (only \"Manual\")", v->s);
        if (strcmp(v->s, "Manual") != 0)
            return ir_toml_fail(ps, "unknown cert_mode \"%.40s\" (Manual, LetsEncrypt, Reloading)", v->s);
    } else if (!strcmp(key, "tls.cert_dir")) {
        return ir_toml_take_path(ps, key, v, &c->cert_dir);
    } else if (!strcmp(key, "tls.manual_cert_path")) {
        return ir_toml_take_path(ps, key, v, &c->manual_cert_path);
    } else if (!strcmp(key, "tls.manual_key_path")) {
        return ir_toml_take_path(ps, key, v, &c->manual_key_path);
    } else if (!strcmp(key, "tls.hostname")) {
        if (v->type != IR_TOML_STR && v->type != IR_TOML_ARRAY)
            return ir_toml_fail(ps, "'%s' must be a string or an array of strings", key);
        ir_toml_note(ps, key, "only used by LetsEncrypt");
    } else if (!strcmp(key, "tls.contact")) {
        if (ir_toml_want(ps, key, v, IR_TOML_STR) < 0)
            return -1;
        ir_toml_note(ps, key, "only used by LetsEncrypt");
    } else if (!strcmp(key, "tls.prod_tls")) {
        if (ir_toml_want(ps, key, v, IR_TOML_BOOL) < 0)
            return -1;
        ir_toml_note(ps, key, "only used by LetsEncrypt");
    } else if (!strcmp(key, "limits.accept_conn_limit") || !strcmp(key, "limits.accept_conn_burst")) {
        if (ir_toml_want(ps, key, v, key[19] == 'l' ? IR_TOML_FLOAT : IR_TOML_INT) < 0)
            return -1;
        if ((v->type == IR_TOML_INT && v->i < 0) || (v->type == IR_TOML_FLOAT && !(v->f >= 0)))
            return ir_toml_fail(ps, "'%s' must not be negative", key);
        ir_toml_note(ps, key, "not implemented, as upstream");
    } else if (!strcmp(key, "limits.client.rx.bytes_per_second")) {
        return ir_toml_take_u32(ps, key, v, &c->rx_bytes_per_second);
    } else if (!strcmp(key, "limits.client.rx.max_burst_bytes")) {
        RC(ps)->burst_line = ps->line;
        return ir_toml_take_u32(ps, key, v, &c->rx_max_burst_bytes);
    } else {
        return ir_toml_fail(ps, "unknown key '%s'", key);
    }
    return 0;
}

/* The tables a header may name. */
static int apply_table(ir_toml_reader *ps, void *ctx, const char *name)
{
    static const char *const known[] = {"tls", "limits", "limits.client", "limits.client.rx", "access"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(name, known[i])) {
            if (i == 0)
                RC(ps)->cfg->tls = 1;
            return 0;
        }
    if (!strcmp(name, "access.http") || !strncmp(name, "access.http.", 12))
        return ir_toml_fail(ps, "access.http (asking an HTTP service) is not supported");
    return ir_toml_fail(ps, "unknown table [%s]", name);
}

static void config_init(ir_relay_file_config *c)
{
    memset(c, 0, sizeof *c);
    c->enable_relay = 1;
    c->enable_metrics = 1;
}

void ir_relay_file_config_free(ir_relay_file_config *c)
{
    free(c->http_bind_addr);
    free(c->metrics_bind_addr);
    free(c->https_bind_addr);
    free(c->quic_bind_addr);
    c->quic_bind_addr = NULL;
    free(c->cert_dir);
    free(c->manual_cert_path);
    free(c->manual_key_path);
    free(c->ids);
    for (size_t k = 0; k < c->n_tokens; k++)
        free(c->tokens[k]);
    free(c->tokens);
    c->http_bind_addr = c->metrics_bind_addr = c->https_bind_addr = NULL;
    c->cert_dir = c->manual_cert_path = c->manual_key_path = NULL;
    c->ids = NULL;
    c->tokens = NULL;
    c->n_ids = c->n_tokens = 0;
}

int ir_relay_file_config_parse(const char *text, size_t len, ir_relay_file_config *out)
{
    config_init(out);
    relay_ctx rc = {.cfg = out};
    ir_toml_reader ps;
    memset(&ps, 0, sizeof ps);
    ps.error = out->error;
    ps.error_cap = sizeof out->error;
    ps.notes = out->notes;
    ps.notes_cap = sizeof out->notes;
    ps.key = apply;
    ps.table = apply_table;
    ps.ctx = &rc;
    ir_toml_parse(&ps, text, len);
    if (!ps.failed && out->rx_max_burst_bytes && !out->rx_bytes_per_second) {
        ps.line = rc.burst_line;
        ir_toml_fail(&ps, "max_burst_bytes needs bytes_per_second ([limits.client.rx])");
    }
    return ps.failed ? IROH_ERR_INVALID_ARGUMENT : IROH_OK;
}
