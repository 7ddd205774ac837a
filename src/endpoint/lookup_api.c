/* The public API of address lookup: the builder's settings (iroh.h "Address lookup") and
 * the effective configuration an endpoint binds with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/url.h"
#include "base/util.h"
#include "endpoint/api_internal.h"
#include "endpoint/lookup.h"

void ir_lookup_config_clear(ir_lookup_config *c)
{
    free(c->pkarr_url);
    free(c->origin);
    c->pkarr_url = c->origin = NULL;
}

/* IROH_C_ADDRESS_LOOKUP: 1 when it turns the n0 defaults off */
static int env_lookup_none(void)
{
    static int warned;
    const char *v = getenv("IROH_C_ADDRESS_LOOKUP");
    if (!v || !*v || strcmp(v, "n0") == 0)
        return 0;
    if (strcmp(v, "none") == 0)
        return 1;
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        fprintf(stderr, "iroh: IROH_C_ADDRESS_LOOKUP=%s is not one of none, n0: using n0\n", v);
    return 0;
}

int ir_lookup_config_resolve(const ir_lookup_config *in, ir_lookup_config *out)
{
    *out = *in;
    int none = env_lookup_none();
    const char *pk = in->pkarr_set ? in->pkarr_url : none ? NULL : IR_LOOKUP_DEFAULT_PKARR;
    const char *org = in->origin_set ? in->origin : none ? NULL : IR_LOOKUP_DEFAULT_ORIGIN;
    out->pkarr_set = out->origin_set = 1;
    out->pkarr_url = pk ? strdup(pk) : NULL;
    out->origin = org ? strdup(org) : NULL;
    if ((pk && !out->pkarr_url) || (org && !out->origin)) {
        ir_lookup_config_clear(out);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    return IROH_OK;
}

int ir_lookup_url_split(const char *url, ir_lookup_url *out)
{
    memset(out, 0, sizeof *out);
    const char *auth;
    if (strncmp(url, "https://", 8) == 0) {
        out->tls = 1;
        auth = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        auth = url + 7;
    } else {
        return -1;
    }
    const char *end = auth + strcspn(auth, "/?#");
    if (memchr(auth, '@', (size_t)(end - auth)))
        return -1; /* no credentials in a pkarr relay URL */
    if ((size_t)(end - auth) >= sizeof out->host_hdr || end == auth)
        return -1;
    memcpy(out->host_hdr, auth, (size_t)(end - auth));
    const char *hend, *port = NULL;
    if (*auth == '[') {
        const char *rb = memchr(auth, ']', (size_t)(end - auth));
        if (!rb || rb == auth + 1)
            return -1;
        hend = rb + 1;
        if (hend < end && *hend == ':')
            port = hend + 1;
        else if (hend != end)
            return -1;
        memcpy(out->host, auth + 1, (size_t)(rb - auth - 1));
    } else {
        const char *colon = memchr(auth, ':', (size_t)(end - auth));
        hend = colon ? colon : end;
        if (hend == auth || (size_t)(hend - auth) >= sizeof out->host)
            return -1;
        memcpy(out->host, auth, (size_t)(hend - auth));
        port = colon ? colon + 1 : NULL;
    }
    out->port = out->tls ? 443 : 80;
    if (port && port < end) {
        unsigned long v = 0;
        for (const char *c = port; c < end; c++) {
            if (*c < '0' || *c > '9')
                return -1;
            if ((v = v * 10 + (unsigned long)(*c - '0')) > 65535)
                return -1;
        }
        if (!v)
            return -1;
        out->port = (uint16_t)v;
    }
    const char *frag = strchr(end, '#');
    size_t plen = frag ? (size_t)(frag - end) : strlen(end);
    if (plen + 2 > sizeof out->path)
        return -1;
    if (plen == 0 || *end != '/') {
        out->path[0] = '/';
        memcpy(out->path + 1, end, plen);
    } else {
        memcpy(out->path, end, plen);
    }
    return 0;
}

/* ---- builder ------------------------------------------------------------------------------ */

int iroh_endpoint_builder_pkarr_relay(iroh_endpoint_builder *b, const char *url)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    char *norm = NULL;
    if (url) {
        ir_lookup_url u;
        int rc = ir_url_normalize(url, strlen(url), &norm);
        if (rc != IROH_OK)
            return rc;
        if (ir_lookup_url_split(norm, &u) != 0) {
            free(norm);
            return ir_fail(IROH_ERR_INVALID_ADDR,
                           "a pkarr relay URL is http(s)://HOST[:PORT]/PATH, not %s", url);
        }
    }
    free(b->lookup.pkarr_url);
    b->lookup.pkarr_url = norm;
    b->lookup.pkarr_set = 1;
    return IROH_OK;
}

/* a DNS name: labels of 1 to 63 letters, digits, '-' or '_', dot-separated, at most 190
 * characters so that "_iroh.<52 characters>." fits before it in 253 */
static int valid_origin(const char *s, size_t len)
{
    if (len == 0 || len > 190)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
        if (++label > 63)
            return 0;
    }
    return label > 0;
}

int iroh_endpoint_builder_dns_origin(iroh_endpoint_builder *b, const char *origin)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    char *copy = NULL;
    if (origin) {
        size_t len = strlen(origin);
        if (len > 1 && origin[len - 1] == '.')
            len--;
        if (!valid_origin(origin, len))
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "not a DNS name: \"%s\"", origin);
        if (!(copy = strndup(origin, len)))
            return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    free(b->lookup.origin);
    b->lookup.origin = copy;
    b->lookup.origin_set = 1;
    return IROH_OK;
}

int iroh_endpoint_builder_dns_server(iroh_endpoint_builder *b, const char *ip_port)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    iroh_socket_addr a;
    memset(&a, 0, sizeof a);
    if (ip_port) {
        int rc = iroh_socket_addr_parse(ip_port, &a);
        if (rc != IROH_OK)
            return rc;
        if (a.port == 0)
            return ir_fail(IROH_ERR_INVALID_ADDR, "a DNS server needs a port");
    }
    b->lookup.dns_server = a;
    return IROH_OK;
}

int iroh_endpoint_builder_publish_addrs(iroh_endpoint_builder *b, int on)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    b->lookup.publish_addrs = on != 0;
    return IROH_OK;
}

int iroh_endpoint_builder_user_data(iroh_endpoint_builder *b, const char *data)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    size_t len = data ? strlen(data) : 0;
    if (len > IR_LOOKUP_USER_DATA_MAX)
        return ir_fail(IROH_ERR_TOO_LONG, "user data has at most %d bytes, not %zu",
                       IR_LOOKUP_USER_DATA_MAX, len);
    memcpy(b->lookup.user_data, data ? data : "", len + 1);
    return IROH_OK;
}

int iroh_endpoint_builder_mdns(iroh_endpoint_builder *b, int on)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    b->lookup.mdns = on != 0;
    return IROH_OK;
}

int iroh_endpoint_builder_no_lookup(iroh_endpoint_builder *b)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    ir_lookup_config_clear(&b->lookup);
    b->lookup.pkarr_set = b->lookup.origin_set = 1;
    b->lookup.mdns = 0;
    b->lookup.n_user = 0;
    return IROH_OK;
}

int iroh_endpoint_builder_address_lookup(iroh_endpoint_builder *b, iroh_lookup_fn fn, void *ctx)
{
    if (!b || !fn)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    if (b->lookup.n_user == IR_LOOKUP_MAX_USER)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "at most %d lookups of the user's",
                       IR_LOOKUP_MAX_USER);
    b->lookup.user[b->lookup.n_user] = fn;
    b->lookup.user_ctx[b->lookup.n_user++] = ctx;
    return IROH_OK;
}
