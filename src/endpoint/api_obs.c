/* What the endpoint sees, for programs and for --metrics-addr: the own-address watcher
 * (IROH_EVENT_ADDR_CHANGED, iroh_endpoint_addr_generation), what the endpoint knows of
 * each peer (iroh_endpoint_remote_info, as iroh's RemoteInfo) and the metrics snapshot
 * (iroh_endpoint_metrics, named after iroh's "socket" metrics group).
 *
 * Everything here runs under the endpoint's mutex: the I/O thread's hooks
 * (ir_api_obs_round, ir_api_obs_conn) are called from its round, the public calls take
 * the mutex themselves. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "endpoint/api_internal.h"
#include "endpoint/ep.h"
#include "endpoint/lookup.h"
#include "relay/openmetrics.h"

/* ---- the own-address watcher --------------------------------------------------------- */

static int same_ip(const iroh_socket_addr *a, const iroh_socket_addr *b)
{
    size_t n = a->family == 4 ? 4 : 16;
    return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, n) == 0;
}

int ir_api_obs_round(iroh_endpoint *ep)
{
    iroh_socket_addr now[32];
    size_t n = ir_ep_addrs(ep->ep, now, 32);
    const char *home = ir_ep_home_relay(ep->ep);
    /* (the last look starts empty: an endpoint without any address has nothing to tell) */
    int changed = n != ep->addr_n ||
                  strncmp(home ? home : "", ep->addr_relay, sizeof ep->addr_relay) != 0;
    for (size_t i = 0; i < n && !changed; i++)
        changed = !same_ip(&now[i], &ep->addr_last[i]);
    if (!changed)
        return 0;
    ep->addr_gen++;
    memcpy(ep->addr_last, now, n * sizeof now[0]);
    ep->addr_n = n;
    snprintf(ep->addr_relay, sizeof ep->addr_relay, "%s", home ? home : "");
    /* the publisher reads the address when told (lookup_shell.c); it reads it once at
     * its start anyway */
    if (ep->lookup)
        ir_lookup_addr_changed(ep->lookup);
    if (!ep->event_cb)
        return 1;
    iroh_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = IROH_EVENT_ADDR_CHANGED;
    ev.peer = ep->id;
    ev.code = n;
    if (n)
        ev.path = now[0];
    ev.relay_url = home;
    ep->event_cb(ep->event_ctx, &ev);
    return 1;
}

uint64_t iroh_endpoint_addr_generation(iroh_endpoint *ep)
{
    if (!ep)
        return 0;
    pthread_mutex_lock(&ep->mu);
    uint64_t g = ep->addr_gen;
    pthread_mutex_unlock(&ep->mu);
    return g;
}

/* ---- the remote table ------------------------------------------------------------------ */

#define REMOTES_MAX 256

typedef struct raddr {
    iroh_transport_kind kind;
    iroh_socket_addr ip;
    char relay[IROH_RELAY_URL_LEN];
    unsigned sources;
    const char *lookup;
    uint64_t rtt_ns;
    uint64_t last_recv_ns; /* 0: never */
    uint64_t touched;      /* learned or used last (for replacing the oldest) */
} raddr;

typedef struct remote {
    iroh_endpoint_id id;
    raddr addrs[IROH_REMOTE_MAX_ADDRS];
    size_t n;
    char relay[IROH_RELAY_URL_LEN];
    uint64_t latency_ns;
    uint64_t last_seen_ns; /* 0: never */
    uint64_t touched;
} remote;

struct ir_remotes {
    remote *r[REMOTES_MAX];
    size_t n;
};

static remote *find_remote(iroh_endpoint *ep, const iroh_endpoint_id *id)
{
    struct ir_remotes *t = ep->remotes;
    for (size_t i = 0; t && i < t->n; i++)
        if (memcmp(t->r[i]->id.bytes, id->bytes, 32) == 0)
            return t->r[i];
    return NULL;
}

/* the peer's entry, made if new (the one used longest ago goes when the table is full);
 * NULL when out of memory */
static remote *get_remote(iroh_endpoint *ep, const iroh_endpoint_id *id, uint64_t now)
{
    remote *r = find_remote(ep, id);
    if (r) {
        r->touched = now;
        return r;
    }
    if (!ep->remotes && !(ep->remotes = calloc(1, sizeof *ep->remotes)))
        return NULL;
    struct ir_remotes *t = ep->remotes;
    if (t->n == REMOTES_MAX) {
        size_t old = 0;
        for (size_t i = 1; i < t->n; i++)
            if (t->r[i]->touched < t->r[old]->touched)
                old = i;
        r = t->r[old];
    } else {
        if (!(r = malloc(sizeof *r)))
            return NULL;
        t->r[t->n++] = r;
    }
    memset(r, 0, sizeof *r);
    r->id = *id;
    r->touched = now;
    return r;
}

/* the entry of one address of r, made if new (replacing the oldest when full) */
static raddr *get_addr(remote *r, iroh_transport_kind kind, const iroh_socket_addr *ip,
                       const char *relay, uint64_t now)
{
    for (size_t i = 0; i < r->n; i++) {
        raddr *a = &r->addrs[i];
        if (a->kind == kind && (kind == IROH_TRANSPORT_IP ? same_ip(&a->ip, ip)
                                                           : strcmp(a->relay, relay) == 0)) {
            a->touched = now;
            return a;
        }
    }
    raddr *a;
    if (r->n == IROH_REMOTE_MAX_ADDRS) {
        a = &r->addrs[0];
        for (size_t i = 1; i < r->n; i++)
            if (r->addrs[i].touched < a->touched)
                a = &r->addrs[i];
    } else {
        a = &r->addrs[r->n++];
    }
    memset(a, 0, sizeof *a);
    a->kind = kind;
    if (kind == IROH_TRANSPORT_IP)
        a->ip = *ip;
    else
        snprintf(a->relay, sizeof a->relay, "%s", relay);
    a->touched = now;
    return a;
}

void ir_api_remote_note_addr(iroh_endpoint *ep, const iroh_endpoint_addr *addr, unsigned source,
                             const char *service)
{
    uint64_t now = ir_now_ns();
    size_t n = iroh_endpoint_addr_len(addr);
    if (n == 0)
        return;
    remote *r = get_remote(ep, iroh_endpoint_addr_id(addr), now);
    if (!r)
        return;
    for (size_t i = 0; i < n; i++) {
        iroh_transport_addr t;
        if (iroh_endpoint_addr_get(addr, i, &t) != IROH_OK)
            continue;
        if (t.kind == IROH_TRANSPORT_RELAY && strlen(t.relay_url) >= IROH_RELAY_URL_LEN)
            continue;
        if (t.kind != IROH_TRANSPORT_IP && t.kind != IROH_TRANSPORT_RELAY)
            continue;
        raddr *a = get_addr(r, t.kind, &t.ip, t.relay_url, now);
        a->sources |= source;
        if (source & IROH_ADDR_SOURCE_LOOKUP)
            a->lookup = service;
        if (t.kind == IROH_TRANSPORT_RELAY)
            snprintf(r->relay, sizeof r->relay, "%s", t.relay_url);
    }
}

/* a connection's paths and the addresses its peer advertised, into its entry */
static void note_conn(iroh_endpoint *ep, iroh_connection *h, uint64_t now)
{
    if (!h->connected)
        return;
    remote *r = get_remote(ep, &h->peer, now);
    if (!r)
        return;
    ir_conn_path_info p[16];
    size_t np = ir_conn_paths(h->c, p, 16);
    if (np > 16)
        np = 16;
    ir_conn_path_info sel;
    int have_sel = ir_api_selected_path(h->c, &sel);
    for (size_t i = 0; i < np; i++) {
        iroh_socket_addr ip;
        const char *relay = NULL;
        int kind = ir_ep_path_info(ep->ep, &p[i].addr, &ip, &relay);
        if (kind < 0 || (kind == 1 && (!relay || strlen(relay) >= IROH_RELAY_URL_LEN)))
            continue;
        raddr *a = get_addr(r, kind ? IROH_TRANSPORT_RELAY : IROH_TRANSPORT_IP, &ip, relay, now);
        a->sources |= IROH_ADDR_SOURCE_CONNECTION;
        if (p[i].rtt_ns && p[i].pkts_recv)
            a->rtt_ns = p[i].rtt_ns;
        if (p[i].last_recv_ns > a->last_recv_ns)
            a->last_recv_ns = p[i].last_recv_ns;
        if (a->last_recv_ns > r->last_seen_ns)
            r->last_seen_ns = a->last_recv_ns;
        if (kind == 1)
            snprintf(r->relay, sizeof r->relay, "%s", relay);
        if (have_sel && sel.id == p[i].id && p[i].rtt_ns && p[i].pkts_recv)
            r->latency_ns = p[i].rtt_ns;
    }
    iroh_socket_addr adv[16];
    size_t na = ir_conn_nat_remote_addrs(h->c, adv, 16);
    for (size_t i = 0; i < na && i < 16; i++)
        get_addr(r, IROH_TRANSPORT_IP, &adv[i], NULL, now)->sources |= IROH_ADDR_SOURCE_HOLEPUNCH;
}

/* ---- connection hooks: the table and the metrics' counters ----------------------------- */

/* 0 direct, 1 relay, -1 unknown: the kind of path id of h */
static int path_kind(iroh_endpoint *ep, iroh_connection *h, uint64_t id)
{
    ir_conn_path_info p[16];
    size_t np = ir_conn_paths(h->c, p, 16);
    for (size_t i = 0; i < np && i < 16; i++) {
        if (p[i].id != id)
            continue;
        iroh_socket_addr ip;
        const char *relay;
        return ir_ep_path_info(ep->ep, &p[i].addr, &ip, &relay);
    }
    return -1;
}

static void count_path(iroh_endpoint *ep, int kind, int added)
{
    if (kind == 0) {
        if (added) {
            ep->mc.paths_direct++;
            ep->mc.ip_paths_added++;
        } else {
            ep->mc.ip_paths_removed++;
        }
    } else if (kind == 1) {
        if (added) {
            ep->mc.paths_relay++;
            ep->mc.relay_paths_added++;
        } else {
            ep->mc.relay_paths_removed++;
        }
    }
}

void ir_api_obs_conn(iroh_endpoint *ep, iroh_connection *h, int kind, uint64_t path_id)
{
    uint64_t now = ir_now_ns();
    switch (kind) {
    case IR_EV_CONNECTED: {
        if (h->obs_opened)
            break;
        h->obs_opened = 1;
        ep->mc.conns_opened++;
        ir_conn_path_info p[16];
        size_t np = ir_conn_paths(h->c, p, 16);
        for (size_t i = 0; i < np && i < 16; i++)
            count_path(ep, path_kind(ep, h, p[i].id), 1);
        break;
    }
    case IR_EV_PATH_OPENED:
        if (h->obs_opened)
            count_path(ep, path_kind(ep, h, path_id), 1);
        break;
    case IR_EV_PATH_ABANDONED:
        if (h->obs_opened)
            count_path(ep, path_kind(ep, h, path_id), 0);
        break;
    case IR_EV_CLOSED: {
        if (!h->obs_opened || h->obs_opened == 2)
            break;
        note_conn(ep, h, now); /* what it knew, kept */
        h->obs_opened = 2;
        ep->mc.conns_closed++;
        if (!h->inbound) /* a client's rounds are its own holepunching attempts */
            ep->mc.holepunch_closed += ir_conn_nat_round(h->c);
        ir_conn_path_info p[16];
        size_t np = ir_conn_paths(h->c, p, 16);
        for (size_t i = 0; i < np && i < 16; i++)
            if (!p[i].abandoned)
                count_path(ep, path_kind(ep, h, p[i].id), 0);
        return;
    }
    default:
        break;
    }
    if (h->obs_opened != 1)
        return;
    note_conn(ep, h, now);
    ir_conn_path_info sel;
    if (!h->obs_direct && ir_api_selected_path(h->c, &sel)) {
        iroh_socket_addr ip;
        const char *relay;
        if (ir_ep_path_info(ep->ep, &sel.addr, &ip, &relay) == 0) {
            h->obs_direct = 1;
            ep->mc.conns_direct++;
        }
    }
}

void ir_api_obs_free(iroh_endpoint *ep)
{
    struct ir_remotes *t = ep->remotes;
    for (size_t i = 0; t && i < t->n; i++)
        free(t->r[i]);
    free(t);
    ep->remotes = NULL;
}

/* ---- iroh_endpoint_remote_info ------------------------------------------------------------ */

static int64_t ago_ms(uint64_t then, uint64_t now)
{
    if (!then)
        return -1;
    return then >= now ? 0 : (int64_t)((now - then) / 1000000u);
}

int iroh_endpoint_remote_info(iroh_endpoint *ep, const iroh_endpoint_id *id, iroh_remote_info *out)
{
    if (!ep || !id || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    memset(out, 0, sizeof *out);
    out->id = *id;
    out->conn_type = -1;
    uint64_t now = ir_now_ns();
    pthread_mutex_lock(&ep->mu);
    /* the open connections with the peer: fresh paths, which are active, the newest one's
     * selected path */
    iroh_connection *newest = NULL;
    struct {
        iroh_transport_kind kind;
        iroh_socket_addr ip;
        const char *relay;
    } act[64];
    size_t nact = 0;
    for (size_t i = 0; i < ep->nconns; i++) {
        iroh_connection *h = ep->conns[i];
        if (!h->connected || memcmp(h->peer.bytes, id->bytes, 32) != 0 ||
            ir_conn_get_state(h->c) >= IR_CONN_CLOSING)
            continue;
        note_conn(ep, h, now);
        out->connections++;
        if (!newest || h->started_ns > newest->started_ns)
            newest = h;
        ir_conn_path_info p[16];
        size_t np = ir_conn_paths(h->c, p, 16);
        for (size_t k = 0; k < np && k < 16 && nact < 64; k++) {
            if (p[k].abandoned)
                continue;
            const char *relay = NULL;
            int kind = ir_ep_path_info(ep->ep, &p[k].addr, &act[nact].ip, &relay);
            if (kind < 0)
                continue;
            act[nact].kind = kind ? IROH_TRANSPORT_RELAY : IROH_TRANSPORT_IP;
            act[nact++].relay = relay;
        }
    }
    if (newest) {
        ir_conn_path_info sel;
        iroh_socket_addr ip;
        const char *relay;
        if (ir_api_selected_path(newest->c, &sel)) {
            out->conn_type = ir_ep_path_info(ep->ep, &sel.addr, &ip, &relay) == 1
                                 ? IROH_PATH_RELAY
                                 : IROH_PATH_DIRECT;
            if (sel.rtt_ns)
                out->latency_us = sel.rtt_ns / 1000;
        }
    }
    remote *r = find_remote(ep, id);
    if (!r) {
        pthread_mutex_unlock(&ep->mu);
        return ir_fail(IROH_ERR_NOT_FOUND, "the endpoint knows nothing of that peer");
    }
    snprintf(out->relay_url, sizeof out->relay_url, "%s", r->relay);
    if (!out->latency_us)
        out->latency_us = r->latency_ns / 1000;
    out->last_seen_ms = ago_ms(r->last_seen_ns, now);
    /* the active addresses first, then the rest, each in the table's order */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < r->n; i++) {
            const raddr *a = &r->addrs[i];
            int active = 0;
            for (size_t k = 0; k < nact && !active; k++)
                active = act[k].kind == a->kind &&
                         (a->kind == IROH_TRANSPORT_IP ? same_ip(&act[k].ip, &a->ip)
                                                       : act[k].relay && strcmp(act[k].relay, a->relay) == 0);
            if (active != (pass == 0))
                continue;
            iroh_remote_addr *o = &out->addrs[out->n_addrs++];
            o->kind = a->kind;
            o->ip = a->ip;
            memcpy(o->relay_url, a->relay, sizeof o->relay_url);
            o->sources = a->sources;
            o->lookup = a->lookup;
            o->active = active;
            o->rtt_us = a->rtt_ns / 1000;
            o->last_seen_ms = ago_ms(a->last_recv_ns, now);
        }
    }
    pthread_mutex_unlock(&ep->mu);
    return IROH_OK;
}

/* ---- metrics ------------------------------------------------------------------------------- */

/* iroh's socket metrics (iroh/src/socket/metrics.rs) where we count the same thing; the
 * help texts say what we count */
static size_t collect(iroh_endpoint *ep, iroh_metric *m, size_t cap)
{
    ir_ep_metrics s;
    ir_ep_counters c;
    struct ir_api_counters a;
    size_t conns = 0;
    pthread_mutex_lock(&ep->mu);
    ir_ep_get_metrics(ep->ep, &s);
    ir_ep_get_counters(ep->ep, &c);
    a = ep->mc;
    uint64_t holepunch = a.holepunch_closed;
    for (size_t i = 0; i < ep->nconns; i++) {
        iroh_connection *h = ep->conns[i];
        conns += h->connected && ir_conn_get_state(h->c) < IR_CONN_CLOSING;
        if (h->obs_opened == 1 && !h->inbound)
            holepunch += ir_conn_nat_round(h->c);
    }
    pthread_mutex_unlock(&ep->mu);
    const struct {
        const char *name, *help;
        iroh_metric_kind kind;
        uint64_t v;
    } all[] = {
        {"socket_send_ipv4", "Number of bytes sent over IPv4.", IROH_METRIC_COUNTER, s.send_ipv4},
        {"socket_send_ipv6", "Number of bytes sent over IPv6.", IROH_METRIC_COUNTER, s.send_ipv6},
        {"socket_send_relay", "Number of bytes sent over the relay transport.",
         IROH_METRIC_COUNTER, s.send_relay},
        {"socket_recv_data_relay", "Number of data bytes received over the relay transport.",
         IROH_METRIC_COUNTER, s.recv_data_relay},
        {"socket_recv_data_ipv4", "Number of data bytes received over IPv4.",
         IROH_METRIC_COUNTER, s.recv_data_ipv4},
        {"socket_recv_data_ipv6", "Number of data bytes received over IPv6.",
         IROH_METRIC_COUNTER, s.recv_data_ipv6},
        {"socket_recv_datagrams", "Number of QUIC datagrams received.", IROH_METRIC_COUNTER,
         s.recv_datagrams},
        {"socket_relay_home_change",
         "Number of times the home relay changed to a different relay.", IROH_METRIC_COUNTER,
         s.relay_home_change},
        {"socket_relay_conns_success",
         "Number of connections to a relay server that were established.",
         IROH_METRIC_COUNTER, s.relay_conns_success},
        {"socket_relay_conns_failed", "Number of failed attempts to connect to a relay server.",
         IROH_METRIC_COUNTER, s.relay_conns_failed},
        {"socket_relay_conns_closed", "Number of connections to a relay server that ended.",
         IROH_METRIC_COUNTER, s.relay_conns_closed},
        {"socket_holepunch_attempts",
         "The number of times holepunching is initiated on a connection (client side).",
         IROH_METRIC_COUNTER, holepunch},
        {"socket_paths_direct", "The number of network paths to peers that are direct.",
         IROH_METRIC_COUNTER, a.paths_direct},
        {"socket_paths_relay", "The number of network paths to peers that are relayed.",
         IROH_METRIC_COUNTER, a.paths_relay},
        {"socket_num_conns_direct", "The number of connections that have been direct connections.",
         IROH_METRIC_COUNTER, a.conns_direct},
        {"socket_num_conns_opened",
         "Number of connections opened (only handshaked connections are counted).",
         IROH_METRIC_COUNTER, a.conns_opened},
        {"socket_num_conns_closed",
         "Number of connections closed (only handshaked connections are counted).",
         IROH_METRIC_COUNTER, a.conns_closed},
        {"socket_transport_ip_paths_added", "Number of IP transport paths opened.",
         IROH_METRIC_COUNTER, a.ip_paths_added},
        {"socket_transport_ip_paths_removed", "Number of IP transport paths closed.",
         IROH_METRIC_COUNTER, a.ip_paths_removed},
        {"socket_transport_relay_paths_added", "Number of relay transport paths opened.",
         IROH_METRIC_COUNTER, a.relay_paths_added},
        {"socket_transport_relay_paths_removed", "Number of relay transport paths closed.",
         IROH_METRIC_COUNTER, a.relay_paths_removed},
        {"socket_actor_link_change",
         "Number of local network interface (link) change events handled.",
         IROH_METRIC_COUNTER, s.link_change},
        {"irohc_conns", "Connections open now (handshake complete).", IROH_METRIC_GAUGE, conns},
        {"irohc_incoming", "Incoming connections started (handshakes begun).",
         IROH_METRIC_COUNTER, c.incoming},
        {"irohc_half_open", "Incoming handshakes under way now.", IROH_METRIC_GAUGE, c.half_open},
        {"irohc_retries_sent", "Client Initials answered with a Retry.", IROH_METRIC_COUNTER,
         c.retries_sent},
        {"irohc_initials_undecryptable",
         "Datagrams that would start a connection and did not decrypt.", IROH_METRIC_COUNTER,
         c.initials_undecryptable},
        {"irohc_initials_full",
         "Client Initials dropped at the half-open or connection limit.", IROH_METRIC_COUNTER,
         c.initials_full},
    };
    size_t n = sizeof all / sizeof all[0];
    for (size_t i = 0; i < n && i < cap && m; i++) {
        m[i].name = all[i].name;
        m[i].help = all[i].help;
        m[i].kind = all[i].kind;
        m[i].value = all[i].v;
    }
    return n;
}

size_t iroh_endpoint_metrics(iroh_endpoint *ep, iroh_metric *out, size_t cap)
{
    if (!ep)
        return 0;
    return collect(ep, out, cap);
}

int iroh_endpoint_metrics_text(iroh_endpoint *ep, char *buf, size_t buflen, size_t *needed)
{
    if (!ep)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    iroh_metric m[64];
    size_t n = collect(ep, m, 64);
    if (n > 64)
        n = 64;
    ir_metric om[64];
    for (size_t i = 0; i < n; i++)
        om[i] = (ir_metric){.name = m[i].name, .help = m[i].help,
                            .gauge = m[i].kind == IROH_METRIC_GAUGE, .v = m[i].value};
    int len = ir_openmetrics_format(om, n, buf, buf ? buflen : 0);
    if (len < 0)
        return ir_fail(IROH_ERR_NO_MEMORY, "the metrics text could not be written");
    if (needed)
        *needed = (size_t)len + 1;
    if (!buf || (size_t)len >= buflen)
        return ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "the metrics text needs %d bytes", len + 1);
    return IROH_OK;
}
