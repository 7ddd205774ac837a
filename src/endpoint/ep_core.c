/* The endpoint's sans-IO core (ep_core.h): the connection table, routing, the stateless
 * answers (Retry, Version Negotiation, stateless reset), admission of new clients and the
 * accept queue. No sockets and no clock: time comes in with every call, datagrams leave
 * through io.send. */
#include "endpoint/ep_core.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/blake3.h"
#include "base/log.h"
#include "base/util.h"
#include "crypto/crypto.h"
#include "endpoint/ep_cidmap.h"
#include "endpoint/relay_link.h" /* ir_netaddr_is_relay: relay path addresses */
#include "tls/tls.h"

#define MAX_DGRAM 1500
#define OUR_CID_LEN 8
#define IR_EPC_BATCH 32 /* datagrams per GSO send (64 KiB at most: 43 x 1500) */
#define MAX_AUX 12      /* internal connections: the home relay's QAD and the net report's
                         * QAD probes (5 relays, 2 families) */

typedef struct conn_slot conn_slot;

struct conn_slot {
    ir_conn *c;
    ir_epc *core;
    int inbound;
    int internal;
    int accepted;               /* handed out by ir_epc_accept (or never to be) */
    conn_slot *acc_prev, *acc_next; /* the accept queue, while waiting there */
    ir_netaddr remote;          /* the address the connection started with */
    /* what routes to this connection in the core's table: our connection ids (as the
     * connection reported them), a client's Initial DCID, the peer's reset token */
    ir_cid *cids;
    size_t ncids, capcids;
    int has_initial, has_token;
    int half;                   /* counted in the core's nhalf */
    ir_cid initial;
    uint8_t token[16];
};

struct ir_epc {
    ir_ep_config cfg; /* settings only: pointers the core does not own are cleared */
    ir_epc_io io;
    ir_tls_identity *ident;
    uint8_t *alpn_store;
    const uint8_t **alpns;
    size_t *alpn_lens;
    conn_slot **conns; /* listed connections, in the order they came */
    size_t nconns, capconns;
    conn_slot *aux[MAX_AUX];
    conn_slot *acc_head, *acc_tail;
    ir_cidmap map; /* routing: ep_cidmap.h */
    size_t nhalf;  /* half-open incoming connections (slot_update_half) */
    uint8_t batch[IR_EPC_BATCH * MAX_DGRAM];
    uint8_t reset_key[32];
    uint64_t reset_window_start; /* stateless resets sent in the current second */
    unsigned resets_in_window;
    ir_ep_counters counters;
    size_t freed_since_trim; /* connections freed since the last malloc_trim */
    uint64_t last_trim;
    /* our own addresses, as the shell reports them (ep_core.h), and the candidates made
     * of them that the connections were last given */
    ir_epc_iface ifs[IR_EPC_MAX_LOCAL];
    size_t nifs;
    iroh_socket_addr socks[2];
    size_t nsocks;
    iroh_socket_addr public_addr;
    int has_public;
    iroh_socket_addr ext[IR_EPC_MAX_EXTERNAL];
    size_t next;
    iroh_socket_addr local[IR_EPC_MAX_LOCAL];
    size_t nlocal;
    uint64_t local_gen;
};

static void rnd(const ir_epc *e, uint8_t *buf, size_t len)
{
    e->io.random(e->io.random_ctx, buf, len);
}

static void send_raw(ir_epc *e, const ir_netaddr *to, const uint8_t *buf, size_t len)
{
    e->io.send(e->io.send_ctx, to, buf, len, len);
}

int ir_epc_new(const ir_ep_config *cfg, const ir_epc_io *io, ir_epc **out)
{
    ir_epc *e = calloc(1, sizeof *e);
    if (!e)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    e->cfg = *cfg;
    e->io = *io;
    if (!e->io.random)
        e->io.random = ir_random_bytes;
    uint8_t secret[16];
    e->io.random(e->io.random_ctx, secret, sizeof secret);
    ir_cidmap_init(&e->map, secret);
    /* derived from the identity, so that a restarted endpoint with the same key can still
     * reset connections its previous run had (the point of stateless resets) */
    ir_blake3_derive_key("iroh-c 2026-11 stateless reset key", cfg->key.bytes, 32, e->reset_key,
                         sizeof e->reset_key);
    int rc = cfg->x509_cert_file ? ir_tls_identity_new_x509_server(cfg->x509_cert_file,
                                                                    cfg->x509_key_file, &e->ident)
                                 : ir_tls_identity_new(&cfg->key, &e->ident);
    if (rc != IROH_OK)
        goto fail;
    /* our own copy of the ALPN list */
    if (cfg->n_alpns) {
        size_t total = 0;
        for (size_t i = 0; i < cfg->n_alpns; i++)
            total += cfg->alpn_lens[i];
        e->alpn_store = malloc(total + 1);
        e->alpns = calloc(cfg->n_alpns, sizeof *e->alpns);
        e->alpn_lens = calloc(cfg->n_alpns, sizeof *e->alpn_lens);
        if (!e->alpn_store || !e->alpns || !e->alpn_lens) {
            rc = ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
            goto fail;
        }
        size_t o = 0;
        for (size_t i = 0; i < cfg->n_alpns; i++) {
            memcpy(e->alpn_store + o, cfg->alpns[i], cfg->alpn_lens[i]);
            e->alpns[i] = e->alpn_store + o;
            e->alpn_lens[i] = cfg->alpn_lens[i];
            o += cfg->alpn_lens[i];
        }
    }
    e->cfg.alpns = e->alpns;
    e->cfg.alpn_lens = e->alpn_lens;
    e->cfg.relay_urls = NULL; /* the shell's */
    e->cfg.n_relays = 0;
    e->cfg.relay_token = e->cfg.relay_ca_file = NULL;
    e->cfg.x509_cert_file = e->cfg.x509_key_file = NULL;
    *out = e;
    return IROH_OK;
fail:
    ir_epc_free(e);
    return rc;
}

/* ---- the routing table -------------------------------------------------------------------- */

/* A connection made or retired one of our connection ids (ir_conn_config.on_cid). */
static void slot_on_cid(void *ctx, const ir_cid *cid, int live)
{
    conn_slot *s = ctx;
    ir_epc *e = s->core;
    if (!live) {
        for (size_t i = 0; i < s->ncids; i++) {
            if (ir_cid_eq(&s->cids[i], cid)) {
                ir_cidmap_del(&e->map, IR_CIDMAP_OURS, cid->data, cid->len, s);
                s->cids[i] = s->cids[--s->ncids];
                break;
            }
        }
        return;
    }
    if (s->ncids == s->capcids) {
        size_t cap = s->capcids ? s->capcids * 2 : 4;
        ir_cid *p = realloc(s->cids, cap * sizeof *p);
        if (!p) {
            IR_LOG(IR_LOG_WARN, "out of memory: a connection id not routed");
            return; /* not in the table: datagrams to it are not routed here */
        }
        s->cids = p;
        s->capcids = cap;
    }
    int rc = ir_cidmap_put(&e->map, IR_CIDMAP_OURS, cid->data, cid->len, s);
    if (rc == 0)
        s->cids[s->ncids++] = *cid;
    else if (rc < 0)
        IR_LOG(IR_LOG_WARN, "out of memory: a connection id not routed");
    /* rc 1: another connection has the same 64 random bits; the first keeps them */
}

/* Keeps the table's entry of the peer's stateless reset token current (it changes when
 * the connection processes frames, or when the application rotates the peer id: after
 * ir_conn_recv, and after a flush that sent something). */
static void slot_sync_token(ir_epc *e, conn_slot *s)
{
    uint8_t t[16];
    int has = ir_conn_peer_reset_token(s->c, t);
    if (has == s->has_token && (!has || memcmp(t, s->token, 16) == 0))
        return;
    if (s->has_token)
        ir_cidmap_del(&e->map, IR_CIDMAP_TOKEN, s->token, 16, s);
    s->has_token = has && ir_cidmap_put(&e->map, IR_CIDMAP_TOKEN, t, 16, s) == 0;
    if (s->has_token)
        memcpy(s->token, t, 16);
}

/* Takes everything of the slot out of the table. */
static void slot_unmap(ir_epc *e, conn_slot *s)
{
    for (size_t i = 0; i < s->ncids; i++)
        ir_cidmap_del(&e->map, IR_CIDMAP_OURS, s->cids[i].data, s->cids[i].len, s);
    s->ncids = 0;
    if (s->has_initial)
        ir_cidmap_del(&e->map, IR_CIDMAP_INITIAL, s->initial.data, s->initial.len, s);
    if (s->has_token)
        ir_cidmap_del(&e->map, IR_CIDMAP_TOKEN, s->token, 16, s);
    s->has_initial = s->has_token = 0;
}

/* Incoming connections whose handshake is not complete and that still hold memory (also
 * those closing without ever completing: a ClientHello we refuse) are counted as they
 * change, which happens only in ir_conn_recv and ir_conn_on_timeout: call after those
 * (and a flush checks the counted ones, in case someone else called them). */
static void slot_update_half(ir_epc *e, conn_slot *s)
{
    int half = s->inbound && s->c && !ir_conn_handshake_complete(s->c) &&
               ir_conn_get_state(s->c) != IR_CONN_CLOSED;
    if (half != s->half) {
        if (half)
            e->nhalf++;
        else
            e->nhalf--;
        s->half = half;
    }
}

static void slot_free(conn_slot *s)
{
    if (s->half)
        s->core->nhalf--;
    slot_unmap(s->core, s);
    ir_conn_free(s->c);
    free(s->cids);
    free(s);
}

size_t ir_epc_cid_entries(const ir_epc *e)
{
    return e->map.n;
}

void ir_epc_free(ir_epc *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nconns; i++)
        slot_free(e->conns[i]);
    for (int i = 0; i < MAX_AUX; i++)
        if (e->aux[i])
            slot_free(e->aux[i]);
    free(e->conns);
    ir_cidmap_free(&e->map);
    ir_tls_identity_free(e->ident);
    free(e->alpn_store);
    free(e->alpns);
    free(e->alpn_lens);
    free(e);
}

void ir_epc_base_config(const ir_epc *e, ir_conn_config *cfg)
{
    ir_conn_config_defaults(cfg);
    /* multipath and NAT traversal are offered only when asked for (holepunching mode,
     * iroh_endpoint_builder_holepunching / IROH_C_HOLEPUNCHING) */
    if (e->cfg.holepunching < 1)
        cfg->tp.has_initial_max_path_id = 0;
    if (e->cfg.holepunching < 2)
        cfg->tp.nat_traversal = 0;
    if (e->cfg.idle_timeout_ms)
        cfg->tp.max_idle_timeout = e->cfg.idle_timeout_ms;
    if (e->cfg.keep_alive_ns)
        cfg->keep_alive_ns = e->cfg.keep_alive_ns;
    if (e->cfg.max_streams_bidi)
        cfg->tp.initial_max_streams_bidi = e->cfg.max_streams_bidi;
    if (e->cfg.max_streams_uni)
        cfg->tp.initial_max_streams_uni = e->cfg.max_streams_uni;
    if (e->cfg.stream_window) {
        cfg->tp.initial_max_stream_data_bidi_local = e->cfg.stream_window;
        cfg->tp.initial_max_stream_data_bidi_remote = e->cfg.stream_window;
        cfg->tp.initial_max_stream_data_uni = e->cfg.stream_window;
    }
    if (e->cfg.max_stream_window)
        cfg->max_stream_window = e->cfg.max_stream_window;
    if (e->cfg.max_datagram_frame)
        cfg->tp.max_datagram_frame_size = e->cfg.max_datagram_frame;
    /* tells IP paths (an address) from relay paths (none): NAT traversal advertises and
     * probes IP addresses only, relay paths idle out later, QAD reports IP addresses */
    cfg->addr_of = ir_netaddr_to_socket_addr;
    if (e->cfg.qad_server) {
        /* report each client's address; nothing else is offered */
        cfg->tp.has_observed_address = 1;
        cfg->tp.observed_address_role = 0;
        cfg->tp.initial_max_streams_bidi = cfg->tp.initial_max_streams_uni = 0;
    }
    cfg->identity = e->ident;
    cfg->random = e->io.random;
    cfg->random_ctx = e->io.random_ctx;
    memcpy(cfg->reset_key, e->reset_key, 32);
}

/* ---- the connection table ----------------------------------------------------------------- */

static conn_slot *slot_new(ir_epc *e, int inbound, int internal, const ir_netaddr *remote)
{
    if (internal) {
        int k = 0;
        while (k < MAX_AUX && e->aux[k])
            k++;
        if (k == MAX_AUX) {
            ir_fail(IROH_ERR_INVALID_ARGUMENT, "too many internal connections");
            return NULL;
        }
    } else if (e->nconns == e->capconns) {
        size_t cap = e->capconns ? e->capconns * 2 : 8;
        conn_slot **p = realloc(e->conns, cap * sizeof *p);
        if (!p) {
            ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
            return NULL;
        }
        e->conns = p;
        e->capconns = cap;
    }
    conn_slot *s = calloc(1, sizeof *s);
    if (!s) {
        /* an internal connection's caller reports IROH_ERR_INVALID_ARGUMENT for both */
        ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    s->core = e;
    s->inbound = inbound;
    s->internal = internal;
    s->accepted = !inbound;
    s->remote = *remote;
    return s;
}

/* Puts a slot whose connection exists into the table (cannot fail: slot_new made room). */
static void slot_insert(ir_epc *e, conn_slot *s)
{
    if (s->internal) {
        for (int k = 0; k < MAX_AUX; k++) {
            if (!e->aux[k]) {
                e->aux[k] = s;
                break;
            }
        }
        return;
    }
    e->conns[e->nconns++] = s;
    if (s->inbound) {
        s->acc_prev = e->acc_tail;
        if (e->acc_tail)
            e->acc_tail->acc_next = s;
        else
            e->acc_head = s;
        e->acc_tail = s;
    }
}

static void acc_unlink(ir_epc *e, conn_slot *s)
{
    if (s->acc_prev)
        s->acc_prev->acc_next = s->acc_next;
    else if (e->acc_head == s)
        e->acc_head = s->acc_next;
    if (s->acc_next)
        s->acc_next->acc_prev = s->acc_prev;
    else if (e->acc_tail == s)
        e->acc_tail = s->acc_prev;
    s->acc_prev = s->acc_next = NULL;
}

/* Takes a slot out of the table (the caller frees it). */
static void slot_remove(ir_epc *e, conn_slot *s, size_t idx)
{
    if (s->internal) {
        for (int k = 0; k < MAX_AUX; k++)
            if (e->aux[k] == s)
                e->aux[k] = NULL;
        return;
    }
    if (!s->accepted)
        acc_unlink(e, s);
    memmove(&e->conns[idx], &e->conns[idx + 1], (e->nconns - idx - 1) * sizeof *e->conns);
    e->nconns--;
}

static conn_slot *find_slot(const ir_epc *e, const ir_conn *c, size_t *idx)
{
    for (size_t i = 0; i < e->nconns; i++) {
        if (e->conns[i]->c == c) {
            *idx = i;
            return e->conns[i];
        }
    }
    for (int k = 0; k < MAX_AUX; k++) {
        if (e->aux[k] && e->aux[k]->c == c) {
            *idx = 0;
            return e->aux[k];
        }
    }
    return NULL;
}

ir_conn *ir_epc_accept(ir_epc *e)
{
    conn_slot *s = e->acc_head;
    if (!s)
        return NULL;
    acc_unlink(e, s);
    s->accepted = 1;
    return s->c;
}

size_t ir_epc_conn_count(const ir_epc *e)
{
    return e->nconns;
}

ir_conn *ir_epc_conn_at(const ir_epc *e, size_t i)
{
    return i < e->nconns ? e->conns[i]->c : NULL;
}

const ir_netaddr *ir_epc_conn_remote(const ir_epc *e, const ir_conn *c)
{
    size_t idx;
    conn_slot *s = find_slot(e, c, &idx);
    return s ? &s->remote : NULL;
}

/* ---- our own candidate addresses --------------------------------------------------------- */

static int ip_len(int family)
{
    return family == 4 ? 4 : 16;
}

static int same_sa(const iroh_socket_addr *a, const iroh_socket_addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->ip, b->ip, (size_t)ip_len(a->family)) == 0;
}

static int ip_unspecified(const iroh_socket_addr *a)
{
    static const uint8_t zero[16];
    return memcmp(a->ip, zero, (size_t)ip_len(a->family)) == 0;
}

/* the kinds of interface address (iroh's netwatch LocalAddresses) */
enum { IF_SKIP, IF_LOOPBACK, IF_LINKLOCAL4, IF_REGULAR };

static int if_class(const ir_epc_iface *f)
{
    const uint8_t *ip = f->addr.ip;
    if (f->addr.family == 6 && ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80)
        return IF_SKIP; /* fe80::/10: needs a scope id, which an address cannot carry */
    if (f->addr.family != 4 && f->addr.family != 6)
        return IF_SKIP;
    if (ip_unspecified(&f->addr))
        return IF_SKIP;
    static const uint8_t loop6[16] = {[15] = 1};
    if (f->loopback || (f->addr.family == 4 && ip[0] == 127) ||
        (f->addr.family == 6 && memcmp(ip, loop6, 16) == 0))
        return IF_LOOPBACK;
    if (f->addr.family == 4 && ip[0] == 169 && ip[1] == 254)
        return IF_LINKLOCAL4;
    return IF_REGULAR;
}

static void add_unique(iroh_socket_addr *out, size_t *n, size_t cap, const iroh_socket_addr *a)
{
    for (size_t i = 0; i < *n; i++)
        if (same_sa(&out[i], a))
            return;
    if (*n < cap)
        out[(*n)++] = *a;
}

/* the candidates (all = 0) or the addresses for tickets (all = 1); see ep_core.h */
static size_t gather(const ir_epc *e, int all, iroh_socket_addr *out, size_t cap)
{
    size_t n = 0;
    /* which kind of interface address the unspecified sockets offer: the best there is */
    int best = IF_LOOPBACK;
    for (size_t k = 0; k < e->nsocks; k++) {
        if (!ip_unspecified(&e->socks[k]))
            continue;
        for (size_t i = 0; i < e->nifs; i++) {
            int c = if_class(&e->ifs[i]);
            if (e->ifs[i].addr.family == e->socks[k].family && c > best)
                best = c;
        }
    }
    for (size_t k = 0; k < e->nsocks; k++) {
        const iroh_socket_addr *sk = &e->socks[k];
        if (!ip_unspecified(sk)) {
            add_unique(out, &n, cap, sk);
            continue;
        }
        for (size_t i = 0; i < e->nifs; i++) {
            int c = if_class(&e->ifs[i]);
            if (e->ifs[i].addr.family != sk->family || c == IF_SKIP || (!all && c != best))
                continue;
            iroh_socket_addr a = e->ifs[i].addr;
            a.port = sk->port;
            add_unique(out, &n, cap, &a);
        }
    }
    if (e->has_public)
        add_unique(out, &n, cap, &e->public_addr);
    for (size_t i = 0; i < e->next; i++)
        add_unique(out, &n, cap, &e->ext[i]);
    return n;
}

size_t ir_epc_local_addrs(const ir_epc *e, iroh_socket_addr *out, size_t cap)
{
    size_t n = e->nlocal < cap ? e->nlocal : cap;
    memcpy(out, e->local, n * sizeof *out);
    return n;
}

size_t ir_epc_addrs(const ir_epc *e, iroh_socket_addr *out, size_t cap)
{
    return gather(e, 1, out, cap);
}

uint64_t ir_epc_local_addrs_gen(const ir_epc *e)
{
    return e->local_gen;
}

/* a connection learns our candidates (NAT traversal advertises them) */
static void give_addrs(ir_epc *e, conn_slot *s, uint64_t now)
{
    if (s->internal || !s->c)
        return;
    if (ir_conn_set_local_addrs(s->c, e->local, e->nlocal, now) != 0)
        IR_LOG(IR_LOG_WARN, "a connection could not take our candidate addresses");
}

/* after any change of what the candidates are made of: the connections get the new list
 * if it differs */
static void local_changed(ir_epc *e, uint64_t now)
{
    iroh_socket_addr tmp[IR_EPC_MAX_LOCAL];
    size_t n = gather(e, 0, tmp, IR_EPC_MAX_LOCAL);
    int same = n == e->nlocal;
    for (size_t i = 0; same && i < n; i++)
        same = same_sa(&tmp[i], &e->local[i]);
    if (same)
        return;
    memcpy(e->local, tmp, n * sizeof *tmp);
    e->nlocal = n;
    e->local_gen++;
    if (ir_log_enabled(IR_LOG_DEBUG)) {
        char line[IR_EPC_MAX_LOCAL * (IROH_SOCKET_ADDR_LEN + 1)] = "";
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            char text[IROH_SOCKET_ADDR_LEN];
            iroh_socket_addr_to_string(&tmp[i], text, sizeof text);
            o += (size_t)snprintf(line + o, sizeof line - o, "%s%s", i ? " " : "", text);
        }
        ir_log(IR_LOG_DEBUG, "local candidate addresses: %s", n ? line : "(none)");
    }
    for (size_t i = 0; i < e->nconns; i++)
        give_addrs(e, e->conns[i], now);
}

void ir_epc_set_interfaces(ir_epc *e, const ir_epc_iface *ifs, size_t n, uint64_t now)
{
    if (n > IR_EPC_MAX_LOCAL)
        n = IR_EPC_MAX_LOCAL;
    memcpy(e->ifs, ifs, n * sizeof *ifs);
    e->nifs = n;
    local_changed(e, now);
}

void ir_epc_set_sockets(ir_epc *e, const iroh_socket_addr *bound, size_t n, uint64_t now)
{
    if (n > 2)
        n = 2;
    memcpy(e->socks, bound, n * sizeof *bound);
    e->nsocks = n;
    local_changed(e, now);
}

void ir_epc_set_public(ir_epc *e, const iroh_socket_addr *a, uint64_t now)
{
    e->has_public = a != NULL;
    if (a)
        e->public_addr = *a;
    local_changed(e, now);
}

int ir_epc_add_external(ir_epc *e, const iroh_socket_addr *a, uint64_t now)
{
    if ((a->family != 4 && a->family != 6) || a->port == 0 || ip_unspecified(a))
        return ir_fail(IROH_ERR_INVALID_ADDR,
                       "an external address needs a specified IP and a port other than 0");
    for (size_t i = 0; i < e->next; i++)
        if (same_sa(&e->ext[i], a))
            return IROH_OK;
    if (e->next == IR_EPC_MAX_EXTERNAL)
        return ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "at most %d external addresses",
                       IR_EPC_MAX_EXTERNAL);
    e->ext[e->next++] = *a;
    local_changed(e, now);
    return IROH_OK;
}

int ir_epc_remove_external(ir_epc *e, const iroh_socket_addr *a, uint64_t now)
{
    for (size_t i = 0; i < e->next; i++) {
        if (same_sa(&e->ext[i], a)) {
            memmove(&e->ext[i], &e->ext[i + 1], (e->next - i - 1) * sizeof *e->ext);
            e->next--;
            local_changed(e, now);
            return 1;
        }
    }
    return 0;
}

size_t ir_epc_relay_links_in_use(const ir_epc *e, unsigned *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < e->nconns; i++) {
        ir_conn *c = e->conns[i]->c;
        if (ir_conn_get_state(c) >= IR_CONN_CLOSING)
            continue;
        ir_conn_path_info p[IR_CONN_MAX_PATHS * 2];
        size_t np = ir_conn_paths(c, p, sizeof p / sizeof p[0]);
        if (np > sizeof p / sizeof p[0])
            np = sizeof p / sizeof p[0];
        for (size_t k = 0; k < np; k++) {
            unsigned idx;
            if (p[k].abandoned || !ir_netaddr_is_relay(&p[k].addr, &idx, NULL))
                continue;
            size_t j = 0;
            while (j < n && out[j] != idx)
                j++;
            if (j == n && n < cap)
                out[n++] = idx;
        }
    }
    return n;
}

/* ---- sending ------------------------------------------------------------------------------ */

static void flush_conn(ir_epc *e, conn_slot *s, uint64_t now)
{
    if (s->half)
        slot_update_half(e, s); /* a timer run by someone else may have closed it */
    /* batches of equal-size datagrams to one place: one GSO send (or relay frame) each */
    ir_netaddr to;
    size_t seg, len;
    int budget = 16, sent = 0; /* batches per call: keep the loop responsive under bulk sends */
    while (budget-- > 0 &&
           (len = ir_conn_send_batch(s->c, e->batch, sizeof e->batch, MAX_DGRAM, &to, &seg,
                                     now)) > 0) {
        e->io.send(e->io.send_ctx, &to, e->batch, len, seg);
        sent = 1;
    }
    /* the application may have moved to another peer id (which sends a retirement); idle
     * connections cost nothing more here */
    if (sent)
        slot_sync_token(e, s);
}

void ir_epc_flush(ir_epc *e, uint64_t now)
{
    for (int k = 0; k < MAX_AUX; k++)
        if (e->aux[k])
            flush_conn(e, e->aux[k], now);
    for (size_t i = 0; i < e->nconns; i++)
        flush_conn(e, e->conns[i], now);
}

/* ---- new connections ---------------------------------------------------------------------- */

int ir_epc_connect_cfg(ir_epc *e, const ir_conn_config *cfg, const ir_netaddr *cand,
                       size_t ncand, int internal, uint64_t now, ir_conn **out)
{
    if (ncand == 0)
        return ir_fail(IROH_ERR_INVALID_ADDR, "no address to connect to");
    conn_slot *s = slot_new(e, 0, internal, &cand[0]);
    if (!s)
        return internal ? IROH_ERR_INVALID_ARGUMENT : IROH_ERR_NO_MEMORY;
    ir_conn_config ccfg = *cfg;
    ccfg.on_cid = slot_on_cid;
    ccfg.cid_ctx = s;
    /* the first flight goes to every candidate (the connection copies it) */
    ccfg.candidates = ncand > 1 ? cand : NULL;
    ccfg.n_candidates = ncand > 1 ? ncand : 0;
    int rc = ir_conn_client_new(&ccfg, &cand[0], now, &s->c);
    if (rc != IROH_OK) {
        slot_free(s); /* c is NULL: ir_conn_free takes that */
        return rc;
    }
    slot_insert(e, s);
    give_addrs(e, s, now);
    *out = s->c;
    flush_conn(e, s, now); /* the first flight, at once */
    return IROH_OK;
}

int ir_epc_connect(ir_epc *e, const ir_netaddr *cand, size_t ncand,
                   const iroh_endpoint_id *remote_id, const uint8_t *const *alpns,
                   const size_t *alpn_lens, size_t n_alpns, uint64_t now, ir_conn **out)
{
    ir_conn_config cfg;
    ir_epc_base_config(e, &cfg);
    cfg.alpns = alpns;
    cfg.alpn_lens = alpn_lens;
    cfg.n_alpns = n_alpns;
    cfg.remote_id = remote_id;
    return ir_epc_connect_cfg(e, &cfg, cand, ncand, 0, now, out);
}

/* ---- stateless answers -------------------------------------------------------------------- */

/* RFC 9000 10.3: a short-header packet for a connection we do not know gets a stateless
 * reset carrying the token we gave out with that CID (keyed BLAKE3 of the CID under the
 * endpoint's reset key, as ir_conn computes it). It is shorter than the packet that
 * caused it, so two endpoints cannot loop, and at most 100 go out per second. */
static void send_stateless_reset(ir_epc *e, const ir_netaddr *to, const ir_cid *dcid,
                                 size_t trigger_len, uint64_t now)
{
    enum { MIN_LEN = 21, MAX_LEN = 43, PER_SECOND = 100 };
    if (trigger_len <= MIN_LEN || dcid->len != OUR_CID_LEN)
        return;
    if (now - e->reset_window_start >= 1000000000ull) {
        e->reset_window_start = now;
        e->resets_in_window = 0;
    }
    if (e->resets_in_window >= PER_SECOND)
        return;
    e->resets_in_window++;
    size_t len = trigger_len - 1 < MAX_LEN ? trigger_len - 1 : MAX_LEN;
    uint8_t pkt[MAX_LEN], token[32];
    rnd(e, pkt, len - IR_RESET_TOKEN_LEN);
    pkt[0] = (uint8_t)((pkt[0] & 0x3f) | 0x40); /* looks like a short header */
    ir_blake3_keyed_hash(e->reset_key, dcid->data, dcid->len, token);
    memcpy(pkt + len - IR_RESET_TOKEN_LEN, token, IR_RESET_TOKEN_LEN);
    send_raw(e, to, pkt, len);
    IR_LOG(IR_LOG_DEBUG, "stateless reset sent for an unknown connection id (%zu bytes)", len);
}

/* Retry tokens: expiry (8 bytes, ns) || odcid length (1) || odcid || keyed BLAKE3 of
 * (client address || those bytes), 16 bytes. Only this endpoint can make them; they are
 * bound to the client's address and valid for RETRY_TOKEN_NS. */
#define RETRY_TOKEN_NS (10ull * 1000000000ull)

static void retry_mac(const ir_epc *e, const ir_netaddr *from, const uint8_t *body, size_t len,
                      uint8_t mac[16])
{
    uint8_t key[32], full[32];
    ir_blake3 h;
    ir_blake3_derive_key("iroh-c 2026-11 retry token key", e->reset_key, 32, key, 32);
    ir_blake3_init_keyed(&h, key);
    ir_blake3_update(&h, &from->len, 1);
    ir_blake3_update(&h, from->data, from->len);
    ir_blake3_update(&h, body, len);
    ir_blake3_finalize(&h, full, 32);
    memcpy(mac, full, 16);
}

static void send_retry(ir_epc *e, const ir_netaddr *from, const ir_pkt_hdr *h, uint64_t now)
{
    uint8_t token[8 + 1 + IR_MAX_CID_LEN + 16], pkt[256], r;
    uint64_t expiry = now + RETRY_TOKEN_NS;
    for (int i = 0; i < 8; i++)
        token[i] = (uint8_t)(expiry >> (56 - 8 * i));
    token[8] = h->dcid.len;
    memcpy(token + 9, h->dcid.data, h->dcid.len);
    size_t body = 9 + h->dcid.len;
    retry_mac(e, from, token, body, token + body);
    ir_cid scid;
    scid.len = OUR_CID_LEN;
    rnd(e, scid.data, OUR_CID_LEN);
    rnd(e, &r, 1);
    size_t n = ir_pkt_write_retry(pkt, sizeof pkt, &h->scid, &scid, &h->dcid, token, body + 16, r);
    if (n) {
        send_raw(e, from, pkt, n);
        IR_LOG(IR_LOG_DEBUG, "Retry sent to validate a new client");
    }
}

static int check_retry_token(const ir_epc *e, const ir_netaddr *from, const ir_pkt_hdr *h,
                             uint64_t now, ir_cid *odcid)
{
    const uint8_t *t = h->token;
    size_t len = h->token_len;
    if (len < 9 + 16 || t[8] > IR_MAX_CID_LEN || len != 9u + t[8] + 16u)
        return -1;
    uint8_t mac[16];
    retry_mac(e, from, t, len - 16, mac);
    if (!ir_ct_equal(mac, t + len - 16, 16))
        return -1;
    uint64_t expiry = 0;
    for (int i = 0; i < 8; i++)
        expiry = expiry << 8 | t[i];
    if (now > expiry)
        return -1;
    odcid->len = t[8];
    memcpy(odcid->data, t + 9, t[8]);
    return 0;
}

static size_t half_open(const ir_epc *e)
{
    return e->nhalf;
}

void ir_epc_get_counters(const ir_epc *e, ir_ep_counters *out)
{
    *out = e->counters;
    out->half_open = half_open(e);
}

/* ---- receiving ---------------------------------------------------------------------------- */

/* By destination CID: one of ours, or a client's Initial DCID for an Initial. */
static conn_slot *route(ir_epc *e, const ir_pkt_hdr *h)
{
    conn_slot *s = ir_cidmap_get(&e->map, IR_CIDMAP_OURS, h->dcid.data, h->dcid.len);
    if (!s && h->type == IR_PT_INITIAL)
        s = ir_cidmap_get(&e->map, IR_CIDMAP_INITIAL, h->dcid.data, h->dcid.len);
    return s;
}

/* A client Initial that may start a connection (it decrypts, and we accept clients). */
static void new_client(ir_epc *e, const ir_netaddr *from, uint8_t *buf, size_t len,
                       const ir_pkt_hdr *h, uint64_t now)
{
    size_t half = half_open(e);
    if ((e->cfg.max_connections && e->nconns >= e->cfg.max_connections) ||
        half >= (e->cfg.half_open_max ? e->cfg.half_open_max : IR_EP_HALF_OPEN_MAX)) {
        e->counters.initials_full++;
        IR_LOG(IR_LOG_DEBUG, "new client dropped: %zu handshakes in progress, %zu connections",
               half, e->nconns);
        return; /* full: the client will try again */
    }
    ir_conn_config cfg;
    ir_epc_base_config(e, &cfg);
    /* RFC 9000 8.1.2: when configured, or under load (many handshakes in progress), no
     * state until the client proves its address with our token */
    int need_retry = e->cfg.retry ||
                     half >= (e->cfg.retry_above ? e->cfg.retry_above : IR_EP_RETRY_ABOVE);
    if (h->token_len) {
        if (check_retry_token(e, from, h, now, &cfg.original_dcid) == 0) {
            cfg.retried = 1;
            cfg.retry_scid = h->dcid;
        } else {
            e->counters.bad_tokens++;
            if (need_retry) {
                IR_LOG(IR_LOG_DEBUG, "invalid or expired Retry token: dropped");
                return;
            }
            /* not one of our Retry tokens (we issue no NEW_TOKEN): as if it had none */
        }
    } else if (need_retry) {
        send_retry(e, from, h, now);
        e->counters.retries_sent++;
        return;
    }
    cfg.handshake_timeout_ns =
        (e->cfg.handshake_timeout_ms ? e->cfg.handshake_timeout_ms : IR_EP_HANDSHAKE_TIMEOUT_MS) *
        1000000ull;
    cfg.alpns = e->cfg.alpns;
    cfg.alpn_lens = e->cfg.alpn_lens;
    cfg.n_alpns = e->cfg.n_alpns;
    conn_slot *s = slot_new(e, 1, 0, from);
    if (!s)
        return;
    cfg.on_cid = slot_on_cid;
    cfg.cid_ctx = s;
    if (ir_conn_server_new(&cfg, h, from, now, &s->c) != IROH_OK) {
        IR_LOG(IR_LOG_WARN, "cannot start an incoming connection: %s", iroh_last_error());
        slot_free(s);
        return;
    }
    /* the client's retransmitted Initials still carry the DCID it chose (or our Retry's
     * SCID); a second client with the same one is routed to the first, as a retransmit */
    s->initial = *ir_conn_initial_dcid(s->c);
    s->has_initial = ir_cidmap_put(&e->map, IR_CIDMAP_INITIAL, s->initial.data,
                                   s->initial.len, s) == 0;
    IR_LOG(IR_LOG_DEBUG, "incoming connection attempt");
    e->counters.incoming++;
    slot_insert(e, s);
    give_addrs(e, s, now);
    ir_conn_recv(s->c, from, buf, len, now);
    slot_sync_token(e, s);
    slot_update_half(e, s);
}

void ir_epc_recv(ir_epc *e, const ir_netaddr *from, uint8_t *buf, size_t len, uint64_t now)
{
    ir_pkt_hdr h;
    if (ir_pkt_parse(buf, len, OUR_CID_LEN, &h) != 0)
        return;
    conn_slot *s = route(e, &h);
    if (s) {
        ir_conn_recv(s->c, from, buf, len, now);
        slot_sync_token(e, s);
        slot_update_half(e, s);
        return;
    }
    if (h.type == IR_PT_1RTT) {
        /* a stateless reset from a peer (RFC 9000 10.3.1) carries a DCID we never
         * issued: it is recognised by its last 16 bytes, the token of the peer's id in
         * use, and goes to that connection, which checks it and ends */
        if (len >= IR_MIN_RESET_SIZE &&
            (s = ir_cidmap_get(&e->map, IR_CIDMAP_TOKEN, buf + len - 16, 16)) != NULL) {
            ir_conn_recv(s->c, from, buf, len, now);
            slot_update_half(e, s);
            return;
        }
        send_stateless_reset(e, from, &h.dcid, len, now);
        return;
    }
    if (h.type == IR_PT_VN)
        return;
    if (h.version != IR_QUIC_V1) {
        if (len >= IR_MIN_INITIAL_SIZE) {
            uint8_t vn[128];
            uint8_t r;
            rnd(e, &r, 1);
            size_t n = ir_pkt_write_vn(vn, sizeof vn, &h.dcid, &h.scid, r);
            if (n)
                send_raw(e, from, vn, n);
            IR_LOG(IR_LOG_DEBUG, "version negotiation for version 0x%08x", h.version);
        }
        return;
    }
    /* a new connection: only a full-size client Initial, and only if we accept */
    if (h.type != IR_PT_INITIAL || len < IR_MIN_INITIAL_SIZE || !e->cfg.n_alpns)
        return;
    /* nothing is kept, and nothing is answered, before the Initial decrypts: anyone can
     * derive its keys from the DCID, but random bytes do not authenticate (a copy is
     * opened: the datagram stays as it came for the connection) */
    if (!ir_pkt_initial_opens(buf, &h)) {
        e->counters.initials_undecryptable++;
        IR_LOG(IR_LOG_TRACE, "an Initial that does not decrypt: dropped");
        return;
    }
    new_client(e, from, buf, len, &h, now);
}

/* ---- timers and memory -------------------------------------------------------------------- */

/* Incoming connections that closed before anyone accepted them (handshakes that never
 * completed) belong to nobody: freed here. After a burst of frees the heap is trimmed:
 * glibc keeps freed memory in its arenas (also pages in the middle of a heap) until asked,
 * and a flood's memory should go back to the system. */
#define TRIM_AFTER 64               /* connections freed */
#define TRIM_EVERY_NS 1000000000ull /* at most once a second */

void ir_epc_maybe_trim(ir_epc *e, uint64_t now)
{
    if (e->freed_since_trim >= TRIM_AFTER && now - e->last_trim >= TRIM_EVERY_NS) {
#ifdef __GLIBC__
        malloc_trim(0);
#endif
        e->counters.trims++;
        e->freed_since_trim = 0;
        e->last_trim = now;
    }
}

static void reap(ir_epc *e, uint64_t now)
{
    size_t k = 0;
    for (size_t i = 0; i < e->nconns; i++) {
        conn_slot *s = e->conns[i];
        if (s->inbound && !s->accepted && ir_conn_get_state(s->c) == IR_CONN_CLOSED) {
            acc_unlink(e, s);
            slot_free(s);
            e->freed_since_trim++;
            continue;
        }
        e->conns[k++] = s;
    }
    e->nconns = k;
    ir_epc_maybe_trim(e, now);
}

void ir_epc_on_timeout(ir_epc *e, uint64_t now)
{
    for (int k = 0; k < MAX_AUX; k++)
        if (e->aux[k] && ir_conn_timeout(e->aux[k]->c) <= now)
            ir_conn_on_timeout(e->aux[k]->c, now);
    for (size_t i = 0; i < e->nconns; i++) {
        if (ir_conn_timeout(e->conns[i]->c) <= now) {
            ir_conn_on_timeout(e->conns[i]->c, now);
            slot_update_half(e, e->conns[i]);
        }
    }
    reap(e, now);
}

uint64_t ir_epc_timeout(const ir_epc *e)
{
    uint64_t t = UINT64_MAX;
    for (size_t i = 0; i < e->nconns; i++) {
        uint64_t d = ir_conn_timeout(e->conns[i]->c);
        if (d < t)
            t = d;
    }
    for (int k = 0; k < MAX_AUX; k++) {
        if (e->aux[k]) {
            uint64_t d = ir_conn_timeout(e->aux[k]->c);
            if (d < t)
                t = d;
        }
    }
    /* a trim that waits for its turn (frees also happen between rounds, by the API) */
    if (e->freed_since_trim >= TRIM_AFTER && e->last_trim + TRIM_EVERY_NS < t)
        t = e->last_trim + TRIM_EVERY_NS;
    return t;
}

void ir_epc_flush_conn(ir_epc *e, ir_conn *c, uint64_t now)
{
    size_t idx;
    conn_slot *s = find_slot(e, c, &idx);
    if (s)
        flush_conn(e, s, now);
}

void ir_epc_release(ir_epc *e, ir_conn *c, int quiet, uint64_t now)
{
    size_t idx;
    conn_slot *s = find_slot(e, c, &idx);
    if (!s)
        return;
    if (!quiet && ir_conn_get_state(c) < IR_CONN_CLOSING) {
        ir_conn_close(c, 1, 0, "", now);
        flush_conn(e, s, now);
    }
    slot_remove(e, s, idx);
    slot_free(s);
    e->freed_since_trim++;
}
