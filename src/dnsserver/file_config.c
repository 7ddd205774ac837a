/* iroh-dns-server's configuration keys: see file_config.h. */
#include "file_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "relay/toml.h"

static int take_port(ir_toml_reader *r, const char *key, const ir_toml_value *v, uint32_t *dst)
{
    if (ir_toml_want(r, key, v, IR_TOML_INT) < 0)
        return -1;
    if (v->i < 0 || v->i > 65535)
        return ir_toml_fail(r, "'%s' must be a port, 0 to 65535", key);
    *dst = v->i ? (uint32_t)v->i : 65536; /* 65536: port 0 given */
    return 0;
}

static int take_ip(ir_toml_reader *r, const char *key, ir_toml_value *v, char **dst)
{
    if (ir_toml_want(r, key, v, IR_TOML_STR) < 0)
        return -1;
    char buf[80];
    iroh_socket_addr a;
    snprintf(buf, sizeof buf, strchr(v->s, ':') ? "[%s]:1" : "%s:1", v->s);
    if (iroh_socket_addr_parse(buf, &a) != IROH_OK)
        return ir_toml_fail(r, "'%s': '%s' is not an IP address", key, v->s);
    free(*dst);
    *dst = v->s;
    v->s = NULL;
    return 0;
}

static int key_fn(ir_toml_reader *r, void *ctx, const char *key, ir_toml_value *v)
{
    ir_dnss_file_config *c = ctx;
    if (!strcmp(key, "http.port"))
        return take_port(r, key, v, &c->http_port);
    if (!strcmp(key, "http.bind_addr"))
        return take_ip(r, key, v, &c->http_bind);
    if (!strcmp(key, "http.rate_limit")) {
        if (ir_toml_want(r, key, v, IR_TOML_STR) < 0)
            return -1;
        if (!strcasecmp(v->s, "simple"))
            c->rate_limit = IR_DNSS_RATE_SIMPLE;
        else if (!strcasecmp(v->s, "smart"))
            c->rate_limit = IR_DNSS_RATE_SMART;
        else if (!strcasecmp(v->s, "disabled"))
            c->rate_limit = IR_DNSS_RATE_DISABLED;
        else
            return ir_toml_fail(r, "'%s' must be \"simple\", \"smart\" or \"disabled\"", key);
        return 0;
    }
    if (!strncmp(key, "https.", 6)) {
        ir_toml_note(r, key, "no HTTPS here: put a TLS proxy in front of the HTTP port");
        return 0;
    }
    if (!strcmp(key, "dns.port"))
        return take_port(r, key, v, &c->dns_port);
    if (!strcmp(key, "dns.bind_addr"))
        return take_ip(r, key, v, &c->dns_bind);
    if (!strcmp(key, "dns.default_soa"))
        return ir_toml_take_path(r, key, v, &c->soa);
    if (!strcmp(key, "dns.default_ttl"))
        return ir_toml_take_u32(r, key, v, &c->default_ttl);
    if (!strcmp(key, "dns.rr_a"))
        return take_ip(r, key, v, &c->rr_a);
    if (!strcmp(key, "dns.rr_aaaa"))
        return take_ip(r, key, v, &c->rr_aaaa);
    if (!strcmp(key, "dns.rr_ns"))
        return ir_toml_take_path(r, key, v, &c->rr_ns);
    if (!strcmp(key, "dns.origins")) {
        if (ir_toml_want(r, key, v, IR_TOML_ARRAY) < 0)
            return -1;
        if (v->n == 0 || v->n > IR_DNSS_MAX_ORIGINS)
            return ir_toml_fail(r, "'%s' must list 1 to %d origins", key, IR_DNSS_MAX_ORIGINS);
        c->origins = v->items;
        c->n_origins = v->n;
        v->items = NULL;
        v->n = 0;
        return 0;
    }
    if (!strcmp(key, "metrics.disabled")) {
        if (ir_toml_want(r, key, v, IR_TOML_BOOL) < 0)
            return -1;
        c->metrics_disabled = v->b;
        return 0;
    }
    if (!strcmp(key, "metrics.bind_addr"))
        return ir_toml_take_addr(r, key, v, &c->metrics_bind);
    if (!strcmp(key, "mainline.enabled")) {
        if (ir_toml_want(r, key, v, IR_TOML_BOOL) < 0)
            return -1;
        if (v->b)
            ir_toml_note(r, key, "no mainline DHT fallback here");
        return 0;
    }
    if (!strcmp(key, "mainline.bootstrap")) {
        ir_toml_note(r, key, "no mainline DHT fallback here");
        return 0;
    }
    return ir_toml_fail(r, "unknown key '%s'", key);
}

static int table_fn(ir_toml_reader *r, void *ctx, const char *name)
{
    ir_dnss_file_config *c = ctx;
    if (!strcmp(name, "http"))
        c->http = 1;
    else if (!strcmp(name, "metrics"))
        c->metrics = 1;
    else if (strcmp(name, "dns") && strcmp(name, "https") && strcmp(name, "mainline"))
        return ir_toml_fail(r, "unknown table [%s]", name);
    return 0;
}

static void listen_text(char *out, size_t cap, const char *ip, uint32_t port, uint32_t def)
{
    const char *i = ip ? ip : "0.0.0.0";
    unsigned p = port == 65536 ? 0 : port ? port : def;
    snprintf(out, cap, strchr(i, ':') ? "[%s]:%u" : "%s:%u", i, p);
}

int ir_dnss_file_config_parse(const char *text, size_t len, ir_dnss_file_config *out)
{
    memset(out, 0, sizeof *out);
    out->rate_limit = -1;
    ir_toml_reader r;
    memset(&r, 0, sizeof r);
    r.error = out->error;
    r.error_cap = sizeof out->error;
    r.notes = out->notes;
    r.notes_cap = sizeof out->notes;
    r.key = key_fn;
    r.table = table_fn;
    r.ctx = out;
    if (ir_toml_parse(&r, text, len) < 0)
        return IROH_ERR_INVALID_ARGUMENT;
    listen_text(out->dns_listen, sizeof out->dns_listen, out->dns_bind, out->dns_port, 5300);
    listen_text(out->http_listen, sizeof out->http_listen, out->http_bind, out->http_port, 8080);
    return IROH_OK;
}

void ir_dnss_file_config_free(ir_dnss_file_config *c)
{
    free(c->http_bind);
    free(c->dns_bind);
    free(c->soa);
    for (size_t i = 0; i < c->n_origins; i++)
        free(c->origins[i]);
    free(c->origins);
    free(c->rr_a);
    free(c->rr_aaaa);
    free(c->rr_ns);
    free(c->metrics_bind);
    memset(c, 0, sizeof *c);
}

void ir_dnss_file_config_apply(ir_dnss_file_config *fc, ir_dnss_config *cfg)
{
    cfg->dns_listen = fc->dns_listen;
    if (fc->http)
        cfg->http_listen = fc->http_listen;
    if (fc->metrics && !fc->metrics_disabled)
        cfg->metrics_listen = fc->metrics_bind ? fc->metrics_bind : "127.0.0.1:9117";
    if (fc->rate_limit >= 0)
        cfg->rate_limit = fc->rate_limit;
    if (fc->soa)
        cfg->soa = fc->soa;
    if (fc->default_ttl)
        cfg->default_ttl = fc->default_ttl;
    for (size_t i = 0; i < fc->n_origins; i++)
        cfg->origins[i] = fc->origins[i];
    if (fc->n_origins)
        cfg->n_origins = fc->n_origins;
    cfg->rr_a = fc->rr_a;
    cfg->rr_aaaa = fc->rr_aaaa;
    cfg->rr_ns = fc->rr_ns;
}
