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

/* ---- events --------------------------------------------------------------------------------- */

void ir_api_lookup_event(iroh_endpoint *ep, iroh_event_kind kind, const iroh_endpoint_id *peer,
                         const char *service, uint64_t code, const iroh_endpoint_addr *a,
                         uint64_t elapsed_us)
{
    if (kind == IROH_EVENT_LOOKUP_FOUND && a) { /* the remote table keeps the find */
        pthread_mutex_lock(&ep->mu);
        ir_api_remote_note_addr(ep, a, IROH_ADDR_SOURCE_LOOKUP, service);
        pthread_mutex_unlock(&ep->mu);
    }
    if (!ep->event_cb)
        return;
    pthread_mutex_lock(&ep->mu);
    size_t cap = sizeof ep->lk_events / sizeof ep->lk_events[0];
    if (ep->lk_count == cap) { /* the oldest goes */
        ep->lk_head = (ep->lk_head + 1) % cap;
        ep->lk_count--;
    }
    struct lookup_event *e = &ep->lk_events[(ep->lk_head + ep->lk_count++) % cap];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->peer = *peer;
    e->service = service;
    e->code = code;
    e->elapsed_us = elapsed_us;
    size_t n = a ? iroh_endpoint_addr_len(a) : 0;
    for (size_t i = 0; i < n; i++) {
        iroh_transport_addr t;
        iroh_endpoint_addr_get(a, i, &t);
        if (t.kind == IROH_TRANSPORT_RELAY && !e->relay[0])
            snprintf(e->relay, sizeof e->relay, "%s", t.relay_url);
        else if (t.kind == IROH_TRANSPORT_IP && !e->path.family)
            e->path = t.ip;
    }
    pthread_mutex_unlock(&ep->mu);
    ir_api_wake(ep);
}

void ir_api_lookup_dispatch(iroh_endpoint *ep)
{
    size_t cap = sizeof ep->lk_events / sizeof ep->lk_events[0];
    while (ep->lk_count) {
        struct lookup_event *e = &ep->lk_events[ep->lk_head];
        ep->lk_head = (ep->lk_head + 1) % cap;
        ep->lk_count--;
        if (!ep->event_cb)
            continue;
        iroh_event ev;
        memset(&ev, 0, sizeof ev);
        ev.kind = e->kind;
        ev.peer = e->peer;
        ev.code = e->code;
        ev.path = e->path;
        ev.relay_url = e->relay[0] ? e->relay : NULL;
        ev.elapsed_us = e->elapsed_us;
        ev.lookup = e->service;
        ep->event_cb(ep->event_ctx, &ev);
    }
}

/* ---- resolving ------------------------------------------------------------------------------ */

int iroh_endpoint_resolve(iroh_endpoint *ep, const iroh_endpoint_id *id, int timeout_ms,
                          iroh_endpoint_addr **out)
{
    if (!ep || !id || !out || timeout_ms == 0 || timeout_ms < -1)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT,
                       "NULL argument or a timeout that is neither -1 nor positive");
    pthread_mutex_lock(&ep->mu);
    if (ep->closed) {
        pthread_mutex_unlock(&ep->mu);
        return ir_fail(IROH_ERR_CLOSED, "the endpoint was closed");
    }
    ep->users++; /* iroh_endpoint_free waits for this thread */
    pthread_mutex_unlock(&ep->mu);
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX / 2 : ir_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    int rc = ep->lookup ? ir_lookup_resolve(ep->lookup, id, deadline, 0, NULL, NULL, NULL, out)
                        : ir_fail(IROH_ERR_NOT_FOUND, "no address lookup is configured");
    if (rc == IROH_ERR_TIMEOUT)
        rc = ir_fail(IROH_ERR_NOT_FOUND, "no lookup found an address within %d ms", timeout_ms);
    pthread_mutex_lock(&ep->mu);
    if (--ep->users == 0)
        pthread_cond_broadcast(&ep->cv);
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

int ir_api_lookup_start(iroh_endpoint *ep, const iroh_endpoint_builder *b)
{
    ir_lookup_config eff;
    int rc = ir_lookup_config_resolve(&b->lookup, &eff);
    if (rc != IROH_OK)
        return rc;
    eff.wait_home_relay = b->relay_mode == IROH_RELAY_MODE_DEFAULT ||
                          (b->relay_mode == IROH_RELAY_MODE_CUSTOM && b->n_relays > 0);
    ir_lookup *lk = NULL;
    if (eff.pkarr_url || eff.origin || eff.n_user || eff.mdns)
        rc = ir_lookup_new(&eff, &b->key, b->relay_ca_file, ep, &lk);
    pthread_mutex_lock(&ep->mu); /* the I/O thread tells it of address changes */
    ep->lookup = lk;
    /* a change the I/O thread saw while the lookup started (ep->lookup still NULL) was
     * told to nobody: the publisher looks at the address once more */
    if (lk)
        ir_lookup_addr_changed(lk);
    pthread_mutex_unlock(&ep->mu);
    ir_lookup_config_clear(&eff);
    return rc;
}
