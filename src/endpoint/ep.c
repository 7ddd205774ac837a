#include "endpoint/ep.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/blake3.h"
#include "base/log.h"
#include "base/util.h"
#include "crypto/crypto.h"
#include "endpoint/ep_core.h"
#include "endpoint/netreport_shell.h"
#include "endpoint/qad.h"
#include "endpoint/relay_link.h"
#include "net/udp.h"
#include "tls/tls.h"

#define MAX_SOCKS 2
#define MAX_DGRAM 1500
#define IR_EP_BATCH IR_EP_READ_MAX /* datagrams per recvmmsg and per sendmmsg */
#define MAX_CAND 8     /* candidate addresses of a peer for one connect */

struct ir_ep {
    ir_ep_config cfg;
    ir_epc *core; /* connections, routing, stateless answers: ep_core.c */
    iroh_endpoint_id id;
    int fd[MAX_SOCKS];
    iroh_socket_addr bound[MAX_SOCKS];
    int nsock;
    int gso_off; /* the kernel refused UDP GSO (__atomic: the deferred sends run unlocked) */
    /* deferred sends (ir_ep_defer_sends): UDP batches copied out of the core's flush, for
     * ir_ep_send_deferred to send without the caller's lock */
    int defer;
    uint8_t *sq_buf;
    size_t sq_len, sq_cap;
    struct sq_entry {
        ir_netaddr to;
        size_t off, len, seg;
    } *sq;
    size_t nsq, capsq;
    uint8_t rbuf[IR_EP_BATCH][MAX_DGRAM + 1];
    /* the datagrams the last ir_ep_read got, for ir_ep_deliver */
    ir_netaddr rx_from[IR_EP_BATCH];
    uint8_t *rx_buf[IR_EP_BATCH];
    size_t rx_len[IR_EP_BATCH];
    int nrx;
    /* relays: the configured ones first, then those dialed to reach peers */
    ir_rlink *links[IR_EP_MAX_RELAYS];
    size_t nlinks, nconfigured;
    int home;                      /* index of the home relay, -1 before one is chosen */
    int pf_link[IR_EP_MAX_RELAYS]; /* the links polled by the last prepare, in order */
    int pf_fd[IR_EP_MAX_RELAYS];
    int npf_links;
    char *relay_token;
    char *relay_ca_file;
    /* QUIC address discovery with the home relay: one internal connection of the core */
    ir_conn *qad;
    int qad_link;             /* the link it went to */
    uint64_t qad_retry_at;
    ir_tls_identity *qad_ident;
    iroh_socket_addr public_addr;
    int have_public;
    /* the net report (netreport_shell.h) over the configured relays, or NULL */
    ir_nrs *nrs;
    const char *nr_urls[IR_EP_MAX_RELAYS];
    /* network changes: a netlink socket that reports address and link changes (-1 where
     * there is none: then the interfaces are read again every IF_POLL_NS), and when the
     * interfaces are to be read next */
    iroh_socket_addr asked[MAX_SOCKS]; /* what each socket was bound to (for a rebind) */
    int nl_fd;
    int pf_nl; /* the netlink socket's index in the last prepare's pollfds, -1: none */
    int pf_nrs; /* the net report's wake-up (a probe job ended), the same */
    uint64_t if_check_at;
    uint64_t links_check_at; /* next look at which relay links connections use as paths */
    ir_ep_metrics m; /* the metrics' counters (ir_ep_get_metrics; relaxed atomics) */
};

#define COUNT(ep, field, n) __atomic_fetch_add(&(ep)->m.field, (uint64_t)(n), __ATOMIC_RELAXED)

/* links dialed for peers close after 60 s unused (IR_RLC_IDLE_CLOSE_NS); one a connection
 * has a path through is kept: looked at this often */
#define LINK_KEEP_NS (10ull * 1000000000ull)

#define IF_POLL_NS (5ull * 1000000000ull)

uint64_t ir_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}


/* A datagram that came through relay link idx from peer src. */
static void relay_recv(void *ctx, unsigned idx, const uint8_t src[32], uint8_t *data, size_t len,
                       uint64_t now)
{
    ir_ep *ep = ctx;
    ir_netaddr from;
    ir_netaddr_relay(&from, idx, src);
    COUNT(ep, recv_data_relay, len);
    COUNT(ep, recv_datagrams, 1);
    ir_epc_recv(ep->core, &from, data, len, now);
}

/* The link for a relay URL (normalized here), made if new: its index, or a negative
 * IROH_ERR_* code. */
static int link_for_url(ir_ep *ep, const char *url)
{
    char norm[512];
    int rc = iroh_relay_url_normalize(url, norm, sizeof norm);
    if (rc != IROH_OK)
        return rc;
    for (size_t i = 0; i < ep->nlinks; i++)
        if (strcmp(ir_rlink_url(ep->links[i]), norm) == 0)
            return (int)i;
    if (ep->nlinks == IR_EP_MAX_RELAYS)
        return ir_fail(IROH_ERR_INVALID_ADDR, "too many relays (at most %d)", IR_EP_MAX_RELAYS);
    ir_rlink_config lc;
    memset(&lc, 0, sizeof lc);
    lc.url = norm;
    lc.idx = (unsigned)ep->nlinks;
    lc.key = ep->cfg.key;
    lc.auth_token = ep->relay_token;
    lc.ca_file = ep->relay_ca_file;
    lc.recv = relay_recv;
    lc.recv_ctx = ep;
    rc = ir_rlink_new(&lc, &ep->links[ep->nlinks]);
    if (rc != IROH_OK)
        return rc;
    return (int)ep->nlinks++;
}

/* The home relay (spec relay.md 6): the configured relay with the lowest latency; a
 * new one replaces the current home only below 2/3 of its latency, or when the home is
 * down. */
static void choose_home(ir_ep *ep, uint64_t now)
{
    (void)now;
    int est[IR_EP_MAX_RELAYS];
    uint64_t lat[IR_EP_MAX_RELAYS];
    for (size_t i = 0; i < ep->nconfigured; i++) {
        est[i] = ir_rlink_established(ep->links[i]);
        lat[i] = ir_rlink_latency(ep->links[i]);
    }
    int best = ir_rlc_choose_home(ep->home, est, lat, ep->nconfigured);
    if (best == ep->home)
        return;
    ep->home = best;
    COUNT(ep, relay_home_change, 1);
    IR_LOG(IR_LOG_INFO, "home relay: %s (%.1f ms)", ir_rlink_url(ep->links[best]),
           (double)lat[best] / 1e6);
}

const char *ir_ep_home_relay(const ir_ep *ep)
{
    if (ep->home < 0 || !ir_rlink_established(ep->links[ep->home]))
        return NULL;
    return ir_rlink_url(ep->links[ep->home]);
}

int ir_ep_relay_problem(const ir_ep *ep, const char **url, const char **why)
{
    for (size_t i = 0; i < ep->nlinks; i++) {
        const ir_rlink *l = ep->links[i];
        if (!ir_rlink_established(l) && ir_rlink_last_error(l)[0]) {
            *url = ir_rlink_url(l);
            *why = ir_rlink_last_error(l);
            return 1;
        }
    }
    return 0;
}

size_t ir_ep_relay_count(const ir_ep *ep)
{
    return ep->nconfigured;
}

int ir_ep_path_info(const ir_ep *ep, const ir_netaddr *a, iroh_socket_addr *out,
                    const char **relay_url)
{
    unsigned idx;
    if (ir_netaddr_is_relay(a, &idx, NULL)) {
        if (idx >= ep->nlinks)
            return -1;
        if (relay_url)
            *relay_url = ir_rlink_url(ep->links[idx]);
        if (out)
            memset(out, 0, sizeof *out);
        return 1;
    }
    if (relay_url)
        *relay_url = NULL;
    iroh_socket_addr tmp;
    return ir_netaddr_to_socket_addr(a, out ? out : &tmp);
}

static void shell_send(void *ctx, const ir_netaddr *to, const uint8_t *buf, size_t len,
                       size_t seg);

static int unspecified(const iroh_socket_addr *a);

/* ---- our own addresses and network changes ----------------------------------------------- */

/* The interfaces' addresses, to the core (which makes the candidates of them). */
static void read_interfaces(ir_ep *ep, uint64_t now)
{
    ir_epc_iface ifs[IR_EPC_MAX_LOCAL];
    size_t n = 0;
    struct ifaddrs *all, *i;
    ep->if_check_at = ep->nl_fd >= 0 ? UINT64_MAX : now + IF_POLL_NS;
    if (getifaddrs(&all) != 0) {
        IR_LOG(IR_LOG_DEBUG, "getifaddrs: %s", strerror(errno));
        return;
    }
    for (i = all; i && n < IR_EPC_MAX_LOCAL; i = i->ifa_next) {
        if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) ||
            (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
            continue;
        ir_socket_addr_from_sockaddr(&ifs[n].addr, i->ifa_addr);
        ifs[n].loopback = (i->ifa_flags & IFF_LOOPBACK) != 0;
        n++;
    }
    freeifaddrs(all);
    ir_epc_set_interfaces(ep->core, ifs, n, now);
}

/* rtnetlink: the kernel tells of new and removed addresses and links, so the candidates
 * follow the network at once (iroh's netmon); -1 if not available */
static int netlink_open(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -1;
    struct sockaddr_nl sa;
    memset(&sa, 0, sizeof sa);
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* the netlink socket became readable: its messages only say that something changed */
static void netlink_drain(ir_ep *ep, uint64_t now)
{
    uint8_t buf[8192];
    int got = 0;
    for (;;) {
        ssize_t r = recv(ep->nl_fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) {
            got = 1;
            continue;
        }
        if (r < 0 && errno == ENOBUFS) {
            got = 1; /* messages were lost: read everything again anyway */
            continue;
        }
        break;
    }
    if (got) {
        COUNT(ep, link_change, 1);
        IR_LOG(IR_LOG_DEBUG, "network change: reading the interfaces again");
        read_interfaces(ep, now);
    }
}

/* the sockets' bound addresses, to the core */
static void sockets_changed(ir_ep *ep, uint64_t now)
{
    ir_epc_set_sockets(ep->core, ep->bound, (size_t)ep->nsock, now);
}

void ir_ep_network_change(ir_ep *ep)
{
    read_interfaces(ep, ir_now_ns());
    if (ep->nrs)
        ir_nrs_trigger(ep->nrs, ir_now_ns());
}

int ir_ep_add_external_addr(ir_ep *ep, const iroh_socket_addr *a)
{
    return ir_epc_add_external(ep->core, a, ir_now_ns());
}

int ir_ep_remove_external_addr(ir_ep *ep, const iroh_socket_addr *a)
{
    return ir_epc_remove_external(ep->core, a, ir_now_ns());
}

size_t ir_ep_local_addrs(const ir_ep *ep, iroh_socket_addr *out, size_t max)
{
    return ir_epc_local_addrs(ep->core, out, max);
}

int ir_ep_rebind(ir_ep *ep)
{
    uint64_t now = ir_now_ns();
    for (int i = 0; i < ep->nsock; i++) {
        iroh_socket_addr bound;
        int fd = ir_udp_open(&ep->asked[i], &bound);
        if (fd < 0) {
            sockets_changed(ep, now); /* those rebound before */
            return IROH_ERR_IO;
        }
        close(ep->fd[i]);
        ep->fd[i] = fd;
        ep->bound[i] = bound;
        if (ir_log_enabled(IR_LOG_INFO)) {
            char text[IROH_SOCKET_ADDR_LEN];
            iroh_socket_addr_to_string(&bound, text, sizeof text);
            ir_log(IR_LOG_INFO, "UDP socket rebound to %s", text);
        }
    }
    sockets_changed(ep, now);
    read_interfaces(ep, now);
    /* the peers see us at a new address: each connection moves to a fresh connection id
     * of the peer (RFC 9000 9.5) and says something there, so that the peer validates
     * the new path at once */
    for (size_t i = 0; i < ir_epc_conn_count(ep->core); i++)
        (void)ir_conn_rotate_dcid(ir_epc_conn_at(ep->core, i));
    return IROH_OK;
}

int ir_ep_new(const ir_ep_config *cfg, ir_ep **out)
{
    ir_ep *ep = calloc(1, sizeof *ep);
    if (!ep)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    ep->cfg = *cfg;
    ep->fd[0] = ep->fd[1] = -1;
    ep->nl_fd = -1;
    ep->pf_nl = -1;
    ep->pf_nrs = -1;
    ep->home = -1;
    ep->qad_link = -1;
    iroh_secret_key_public(&cfg->key, &ep->id);
    ir_epc_io io = {.send = shell_send, .send_ctx = ep};
    int rc = ir_epc_new(cfg, &io, &ep->core);
    if (rc != IROH_OK)
        goto fail;
    ep->cfg.alpns = NULL; /* the core's copy is the one */
    ep->cfg.alpn_lens = NULL;
    /* exactly the addresses asked for; none: both families, as iroh (0.0.0.0:0 and
     * [::]:0), and IPv4 alone where the host has no IPv6 */
    iroh_socket_addr binds[MAX_SOCKS];
    int nb = 0, optional6 = 0;
    if (cfg->bind4.family == 4)
        binds[nb++] = cfg->bind4;
    if (cfg->bind6.family == 6)
        binds[nb++] = cfg->bind6;
    if (nb == 0) {
        memset(binds, 0, 2 * sizeof binds[0]);
        binds[0].family = 4;
        binds[1].family = 6;
        nb = 2;
        optional6 = 1;
    }
    for (int i = 0; i < nb; i++) {
        int fd = ir_udp_open(&binds[i], &ep->bound[ep->nsock]);
        if (fd < 0 && optional6 && binds[i].family == 6) {
            IR_LOG(IR_LOG_DEBUG, "no IPv6 socket (%s): IPv4 only", iroh_last_error());
            continue;
        }
        if (fd < 0) {
            rc = IROH_ERR_IO;
            goto fail;
        }
        if (ir_log_enabled(IR_LOG_DEBUG)) {
            char text[IROH_SOCKET_ADDR_LEN];
            iroh_socket_addr_to_string(&ep->bound[ep->nsock], text, sizeof text);
            ir_log(IR_LOG_DEBUG, "UDP socket bound to %s", text);
        }
        ep->asked[ep->nsock] = binds[i];
        ep->fd[ep->nsock++] = fd;
    }
    {
        uint64_t t0 = ir_now_ns();
        int any_unspecified = 0;
        for (int i = 0; i < ep->nsock; i++)
            any_unspecified |= unspecified(&ep->bound[i]);
        /* the interfaces matter only to a socket bound to 0.0.0.0 or [::] */
        if (any_unspecified)
            ep->nl_fd = netlink_open();
        sockets_changed(ep, t0);
        if (any_unspecified)
            read_interfaces(ep, t0);
        else
            ep->if_check_at = UINT64_MAX;
        for (size_t i = 0; i < cfg->n_external; i++) {
            rc = ir_epc_add_external(ep->core, &cfg->external_addrs[i], t0);
            if (rc != IROH_OK)
                goto fail;
        }
        ep->cfg.external_addrs = NULL;
        ep->cfg.n_external = 0;
    }
    if ((cfg->relay_token && !(ep->relay_token = strdup(cfg->relay_token))) ||
        (cfg->relay_ca_file && !(ep->relay_ca_file = strdup(cfg->relay_ca_file)))) {
        rc = ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
        goto fail;
    }
    uint64_t now = ir_now_ns();
    for (size_t i = 0; i < cfg->n_relays; i++) {
        int idx = link_for_url(ep, cfg->relay_urls[i]);
        if (idx < 0) {
            rc = idx;
            goto fail;
        }
        /* configured relays stay connected (reconnecting with backoff for as long as it
         * takes): their keepalive round trips keep the latencies current, and the home
         * fails over to another when it goes down */
        ir_rlink_want(ep->links[idx], 1, now);
    }
    ep->nconfigured = ep->nlinks;
    if (cfg->net_report && ep->nconfigured) {
        int have4 = 0, have6 = 0;
        for (int i = 0; i < ep->nsock; i++) {
            have4 |= ep->bound[i].family == 4;
            have6 |= ep->bound[i].family == 6;
        }
        for (size_t i = 0; i < ep->nconfigured; i++)
            ep->nr_urls[i] = ir_rlink_url(ep->links[i]);
        ep->nrs = ir_nrs_new(ep, ep->nr_urls, ep->nconfigured, ep->relay_ca_file, have4, have6,
                             !cfg->no_captive_check);
        if (!ep->nrs) {
            rc = ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
            goto fail;
        }
    }
    ep->cfg.relay_urls = NULL; /* not kept: the links have their own copies */
    ep->cfg.relay_token = NULL;
    ep->cfg.relay_ca_file = NULL;
    ep->cfg.x509_cert_file = ep->cfg.x509_key_file = NULL;
    *out = ep;
    return IROH_OK;
fail:
    ir_ep_free(ep);
    return rc;
}

void ir_ep_free(ir_ep *ep)
{
    if (!ep)
        return;
    ir_nrs_free(ep->nrs, ir_now_ns()); /* its threads, its QAD connections */
    ir_epc_free(ep->core); /* the connections (also the address discovery one) */
    for (int i = 0; i < MAX_SOCKS; i++)
        if (ep->fd[i] >= 0)
            close(ep->fd[i]);
    if (ep->nl_fd >= 0)
        close(ep->nl_fd);
    for (size_t i = 0; i < ep->nlinks; i++)
        ir_rlink_free(ep->links[i]);
    ir_tls_identity_free(ep->qad_ident);
    free(ep->relay_token);
    free(ep->relay_ca_file);
    free(ep->sq_buf);
    free(ep->sq);
    free(ep);
}

const iroh_endpoint_id *ir_ep_id(const ir_ep *ep)
{
    return &ep->id;
}

static int unspecified(const iroh_socket_addr *a)
{
    static const uint8_t zero[16];
    return memcmp(a->ip, zero, a->family == 4 ? 4 : 16) == 0;
}

static int same_socket_addr(const iroh_socket_addr *a, const iroh_socket_addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16) == 0;
}

size_t ir_ep_addrs(const ir_ep *ep, iroh_socket_addr *out, size_t max)
{
    return ir_epc_addrs(ep->core, out, max);
}

int ir_ep_connect(ir_ep *ep, const iroh_endpoint_addr *addr, const uint8_t *alpn,
                  size_t alpn_len, ir_conn **out)
{
    const uint8_t *alpns[1] = {alpn};
    size_t lens[1] = {alpn_len};
    return ir_ep_connect_alpns(ep, addr, alpns, lens, 1, out);
}

int ir_ep_connect_alpns(ir_ep *ep, const iroh_endpoint_addr *addr, const uint8_t *const *alpns,
                        const size_t *alpn_lens, size_t n_alpns, ir_conn **out)
{
    /* path 0 is the first direct address of a family we have a socket for, else the
     * first relay; the first flight also goes to every other such address and relay
     * (iroh's Initial fan-out, spec quic-tls.md 2.4) */
    ir_netaddr cand[MAX_CAND];
    int ncand = 0;
    size_t n = iroh_endpoint_addr_len(addr);
    const iroh_endpoint_id *rid = iroh_endpoint_addr_id(addr);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n && ncand < MAX_CAND; i++) {
            iroh_transport_addr t;
            iroh_endpoint_addr_get(addr, i, &t);
            if (pass == 0 && t.kind == IROH_TRANSPORT_IP) {
                for (int k = 0; k < ep->nsock; k++) {
                    if (ep->bound[k].family == t.ip.family) {
                        ir_netaddr_from_socket_addr(&cand[ncand++], &t.ip);
                        break;
                    }
                }
            } else if (pass == 1 && t.kind == IROH_TRANSPORT_RELAY && !ep->cfg.relays_disabled) {
                int idx = link_for_url(ep, t.relay_url);
                if (idx < 0) {
                    IR_LOG(IR_LOG_WARN, "relay %s not usable: %s", t.relay_url,
                           iroh_last_error());
                    continue;
                }
                ir_netaddr_relay(&cand[ncand++], (unsigned)idx, rid->bytes);
            }
        }
    }
    if (ncand == 0)
        return ir_fail(IROH_ERR_INVALID_ADDR,
                       "the address has no direct address this endpoint can reach and no relay");
    return ir_epc_connect(ep->core, cand, (size_t)ncand, rid, alpns, alpn_lens, n_alpns,
                          ir_now_ns(), out);
}

/* Addresses a lookup found after the connection began (spec 4.5: added as candidates):
 * each direct address of a family we have a socket for, and each relay, that is no path
 * of c yet becomes a new path (Backup; validated before use, selection then follows
 * iroh's rules). When the connection cannot open one yet (right after the handshake the
 * peer's connection ids for the next path id may still be on their way; all path ids may
 * be in use) the connection keeps the address and opens it when it can (ir_conn_add_path,
 * a bounded queue). Needs multipath (a connection without it keeps its one path). Returns
 * how many addresses were opened or kept. */
int ir_ep_add_candidates(ir_ep *ep, ir_conn *c, const iroh_endpoint_addr *addr, uint64_t now)
{
    if (!ir_conn_multipath(c))
        return 0;
    ir_conn_path_info info[IR_CONN_MAX_PATHS];
    size_t np = ir_conn_paths(c, info, IR_CONN_MAX_PATHS);
    if (np > IR_CONN_MAX_PATHS)
        np = IR_CONN_MAX_PATHS;
    const iroh_endpoint_id *rid = iroh_endpoint_addr_id(addr);
    size_t n = iroh_endpoint_addr_len(addr);
    int opened = 0;
    for (size_t i = 0; i < n; i++) {
        iroh_transport_addr t;
        ir_netaddr a;
        iroh_endpoint_addr_get(addr, i, &t);
        if (t.kind == IROH_TRANSPORT_IP) {
            int ok = 0;
            for (int k = 0; k < ep->nsock; k++)
                ok |= ep->bound[k].family == t.ip.family;
            if (!ok)
                continue;
            ir_netaddr_from_socket_addr(&a, &t.ip);
        } else if (t.kind == IROH_TRANSPORT_RELAY && !ep->cfg.relays_disabled) {
            int idx = link_for_url(ep, t.relay_url);
            if (idx < 0)
                continue;
            ir_netaddr_relay(&a, (unsigned)idx, rid->bytes);
        } else {
            continue;
        }
        int known = 0;
        for (size_t k = 0; k < np; k++)
            known |= !info[k].abandoned && ir_netaddr_eq(&info[k].addr, &a);
        if (!known && ir_conn_add_path(c, &a, now) == 0)
            opened++;
    }
    return opened;
}

/* The UDP socket for a direct address: the one of its family. */
static int sock_for(const ir_ep *ep, const ir_netaddr *to)
{
    for (int i = 0; i < ep->nsock; i++)
        if (ep->bound[i].family == to->data[0])
            return i;
    return -1;
}

/* Relayed datagrams: to the peer through the link the path names. */
static int send_relay(ir_ep *ep, const ir_netaddr *to, const uint8_t *buf, size_t len, size_t seg)
{
    unsigned idx;
    const uint8_t *id;
    if (!ir_netaddr_is_relay(to, &idx, &id))
        return 0;
    if (idx < ep->nlinks) {
        COUNT(ep, send_relay, len);
        ir_rlink_send(ep->links[idx], id, buf, len, seg, ir_now_ns());
    }
    return 1;
}

/* Sends a batch of datagrams to one destination: all of seg bytes but the last, which
 * may be shorter. With UDP GSO (Linux 4.18+) that is one system call for the batch;
 * without it (or if the kernel refuses), one sendmmsg. */
static void send_batch(ir_ep *ep, const ir_netaddr *to, const uint8_t *cbuf, size_t len,
                       size_t seg)
{
    uint8_t *buf = (uint8_t *)cbuf; /* iovecs are not const; nothing writes to it */
    if (send_relay(ep, to, buf, len, seg))
        return;
    struct sockaddr_storage ss;
    socklen_t sl;
    int sock = sock_for(ep, to);
    if (sock < 0 || ir_netaddr_to_sockaddr(to, &ss, &sl) != 0)
        return;
    if (ep->bound[sock].family == 6)
        COUNT(ep, send_ipv6, len);
    else
        COUNT(ep, send_ipv4, len);
    if (len <= seg) {
        (void)sendto(ep->fd[sock], buf, len, 0, (struct sockaddr *)&ss, sl);
        return;
    }
    if (!__atomic_load_n(&ep->gso_off, __ATOMIC_RELAXED)) {
        struct iovec iov = {buf, len};
        union {
            char b[CMSG_SPACE(sizeof(uint16_t))];
            struct cmsghdr align;
        } ctl;
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        memset(&ctl, 0, sizeof ctl);
        mh.msg_name = &ss;
        mh.msg_namelen = sl;
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctl.b;
        mh.msg_controllen = sizeof ctl.b;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t gso = (uint16_t)seg;
        memcpy(CMSG_DATA(cm), &gso, sizeof gso);
        if (sendmsg(ep->fd[sock], &mh, 0) >= 0 || errno == EAGAIN || errno == ENOBUFS)
            return;
        if (errno != EIO && errno != EINVAL && errno != ENOPROTOOPT && errno != EOPNOTSUPP)
            return;
        __atomic_store_n(&ep->gso_off, 1, __ATOMIC_RELAXED); /* no GSO: fall back for good */
        IR_LOG(IR_LOG_INFO, "UDP GSO unavailable (%s): sending datagrams one by one",
               strerror(errno));
    }
    struct mmsghdr msgs[IR_EP_BATCH];
    struct iovec iovs[IR_EP_BATCH];
    unsigned n = 0;
    for (size_t off = 0; off < len && n < IR_EP_BATCH; off += seg, n++) {
        iovs[n].iov_base = buf + off;
        iovs[n].iov_len = len - off < seg ? len - off : seg;
        memset(&msgs[n], 0, sizeof msgs[n]);
        msgs[n].msg_hdr.msg_name = &ss;
        msgs[n].msg_hdr.msg_namelen = sl;
        msgs[n].msg_hdr.msg_iov = &iovs[n];
        msgs[n].msg_hdr.msg_iovlen = 1;
    }
    (void)sendmmsg(ep->fd[sock], msgs, n, 0);
}

/* a UDP batch into the deferred queue; 0 if it does not fit (then it is sent at once) */
static int defer_send(ir_ep *ep, const ir_netaddr *to, const uint8_t *buf, size_t len,
                      size_t seg)
{
    if (ep->sq_len + len > IR_EP_SENDQ_MAX)
        return 0;
    if (ep->sq_len + len > ep->sq_cap) {
        size_t cap = ep->sq_cap ? ep->sq_cap : 64 * 1024;
        while (cap < ep->sq_len + len)
            cap *= 2;
        uint8_t *p = realloc(ep->sq_buf, cap);
        if (!p)
            return 0;
        ep->sq_buf = p;
        ep->sq_cap = cap;
    }
    if (ep->nsq == ep->capsq) {
        size_t cap = ep->capsq ? ep->capsq * 2 : 32;
        struct sq_entry *p = realloc(ep->sq, cap * sizeof *p);
        if (!p)
            return 0;
        ep->sq = p;
        ep->capsq = cap;
    }
    memcpy(ep->sq_buf + ep->sq_len, buf, len);
    ep->sq[ep->nsq++] = (struct sq_entry){.to = *to, .off = ep->sq_len, .len = len, .seg = seg};
    ep->sq_len += len;
    return 1;
}

/* The core's output: to a relay link or a UDP socket (or, deferred, the send queue). */
static void shell_send(void *ctx, const ir_netaddr *to, const uint8_t *buf, size_t len,
                       size_t seg)
{
    ir_ep *ep = ctx;
    if (ep->defer && !ir_netaddr_is_relay(to, NULL, NULL) && defer_send(ep, to, buf, len, seg))
        return;
    send_batch(ep, to, buf, len, seg);
}

void ir_ep_defer_sends(ir_ep *ep, int on)
{
    ep->defer = on;
}

int ir_ep_send_deferred(ir_ep *ep)
{
    size_t n = ep->nsq;
    for (size_t i = 0; i < n; i++)
        send_batch(ep, &ep->sq[i].to, ep->sq_buf + ep->sq[i].off, ep->sq[i].len, ep->sq[i].seg);
    ep->nsq = 0;
    ep->sq_len = 0;
    return (int)n;
}

int ir_ep_socket_count(const ir_ep *ep)
{
    return ep->nsock;
}

void ir_ep_flush(ir_ep *ep)
{
    ir_epc_flush(ep->core, ir_now_ns());
}

void ir_ep_get_counters(const ir_ep *ep, ir_ep_counters *out)
{
    ir_epc_get_counters(ep->core, out);
}

void ir_ep_get_metrics(const ir_ep *ep, ir_ep_metrics *out)
{
    const uint64_t *from = (const uint64_t *)&ep->m;
    uint64_t *to = (uint64_t *)out;
    for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
        to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
    out->relay_conns_success = out->relay_conns_failed = out->relay_conns_closed = 0;
    for (size_t i = 0; i < ep->nlinks; i++) {
        uint64_t f, c;
        ir_rlink_counts(ep->links[i], &f, &c);
        out->relay_conns_success += ir_rlink_connects(ep->links[i]);
        out->relay_conns_failed += f;
        out->relay_conns_closed += c;
    }
}

/* QUIC address discovery (spec relay.md 4.3): a connection from our UDP socket to the
 * home relay's UDP port 7842, ALPN /iroh-qad/0, the relay's certificate checked as for
 * its https URL; the relay reports the address it sees us at (OBSERVED_ADDRESS), which
 * becomes one of our direct addresses. Kept open (keep-alive 25 s, idle 35 s) for
 * updates; retried a minute after it fails. https relays only (QAD needs TLS). */
#define QAD_RETRY_NS (60ull * 1000000000ull)

static void qad_close(ir_ep *ep, uint64_t now, int retry_soon)
{
    if (ep->qad) {
        if (ir_conn_get_state(ep->qad) < IR_CONN_CLOSING) {
            /* as iroh's client: application error 1, "finished" */
            ir_conn_close(ep->qad, 1, 1, "finished", now);
            ir_epc_flush_conn(ep->core, ep->qad, now);
        }
        ir_epc_release(ep->core, ep->qad, 1, now);
    }
    ep->qad = NULL;
    ep->qad_link = -1;
    ep->qad_retry_at = now + (retry_soon ? 0 : QAD_RETRY_NS);
}

/* An internal QAD connection from our socket of ip's family to ip (port: the QAD port),
 * the relay's certificate checked for host. */
static int qad_connect(ir_ep *ep, const char *host, const iroh_socket_addr *ip_in, uint64_t now,
                       uint64_t keep_alive_ns, ir_conn **out)
{
    iroh_socket_addr ip = *ip_in;
    ip.port = ep->cfg.qad_port ? ep->cfg.qad_port : IR_QAD_DEFAULT_PORT;
    ir_netaddr path;
    ir_netaddr_from_socket_addr(&path, &ip);
    if (sock_for(ep, &path) < 0)
        return ir_fail(IROH_ERR_INVALID_ADDR, "no socket of the relay's family");
    if (!ep->qad_ident) {
        int rc = ir_tls_identity_new_x509_client(ep->relay_ca_file, &ep->qad_ident);
        if (rc != IROH_OK)
            return rc;
    }
    static const uint8_t alpn[] = IR_QAD_ALPN;
    const uint8_t *alpns[1] = {alpn};
    size_t lens[1] = {sizeof alpn - 1};
    ir_conn_config cfg;
    ir_epc_base_config(ep->core, &cfg);
    cfg.identity = ep->qad_ident;
    cfg.tls_server_name = host;
    cfg.alpns = alpns;
    cfg.alpn_lens = lens;
    cfg.n_alpns = 1;
    cfg.remote_id = NULL;
    cfg.tp.has_observed_address = 1;
    cfg.tp.observed_address_role = 1; /* receive only */
    /* one path to the relay's QAD server: no multipath, no NAT traversal */
    cfg.tp.has_initial_max_path_id = 0;
    cfg.tp.nat_traversal = 0;
    cfg.tp.max_idle_timeout = 35000;
    cfg.keep_alive_ns = keep_alive_ns;
    cfg.tp.initial_max_streams_bidi = cfg.tp.initial_max_streams_uni = 0;
    return ir_epc_connect_cfg(ep->core, &cfg, &path, 1, 1, now, out);
}

static void qad_start(ir_ep *ep, ir_rlink *l, uint64_t now)
{
    iroh_socket_addr ip;
    if (ir_rlink_remote_ip(l, &ip) != 0)
        return;
    ep->qad_retry_at = now + QAD_RETRY_NS; /* if this fails at once */
    if (qad_connect(ep, ir_rlink_host(l), &ip, now, 25ull * 1000000000ull, &ep->qad) != IROH_OK) {
        ep->qad = NULL;
        IR_LOG(IR_LOG_DEBUG, "address discovery: %s", iroh_last_error());
        return;
    }
    IR_LOG(IR_LOG_DEBUG, "address discovery with %s started", ir_rlink_url(l));
}

int ir_ep_qad_probe_open(ir_ep *ep, const char *host, const iroh_socket_addr *ip, uint64_t now,
                         ir_conn **out)
{
    *out = NULL;
    int rc = qad_connect(ep, host, ip, now, 0, out);
    if (rc != IROH_OK) {
        *out = NULL;
        IR_LOG(IR_LOG_DEBUG, "net report: QAD with %s: %s", host, iroh_last_error());
    }
    return rc;
}

void ir_ep_qad_probe_close(ir_ep *ep, ir_conn *c, uint64_t now)
{
    if (ir_conn_get_state(c) < IR_CONN_CLOSING) {
        ir_conn_close(c, 1, 1, "finished", now); /* as iroh's client */
        ir_epc_flush_conn(ep->core, c, now);
    }
    ir_epc_release(ep->core, c, 1, now);
}

const ir_nr_report *ir_ep_net_report(const ir_ep *ep, uint64_t *generation, const char **urls,
                                     size_t *n)
{
    *n = 0;
    if (generation)
        *generation = 0;
    if (!ep->nrs)
        return NULL;
    *n = ir_nrs_relays(ep->nrs);
    for (size_t i = 0; i < *n; i++)
        urls[i] = ir_nrs_url(ep->nrs, i);
    return ir_nrs_report(ep->nrs, generation);
}

static void qad_tick(ir_ep *ep, uint64_t now)
{
    if (!ep->cfg.qad_client)
        return;
    int home = ep->home;
    int usable = home >= 0 && ir_rlink_established(ep->links[home]) &&
                 ir_rlink_is_tls(ep->links[home]);
    if (ep->qad && ep->qad_link != home) {
        qad_close(ep, now, 1); /* the home relay changed */
    }
    if (!ep->qad) {
        if (usable && now >= ep->qad_retry_at) {
            qad_start(ep, ep->links[home], now);
            if (ep->qad)
                ep->qad_link = home;
        }
        return;
    }
    ir_event ev;
    while (ir_conn_poll_event(ep->qad, &ev)) {
        if (ev.type != IR_EV_OBSERVED_ADDRESS)
            continue;
        iroh_socket_addr a;
        if (ir_conn_observed_addr(ep->qad, &a) != 0)
            continue;
        if (!ep->have_public || !same_socket_addr(&a, &ep->public_addr)) {
            char text[IROH_SOCKET_ADDR_LEN];
            iroh_socket_addr_to_string(&a, text, sizeof text);
            IR_LOG(IR_LOG_INFO, "public address (QUIC address discovery): %s", text);
        }
        ep->public_addr = a;
        ep->have_public = 1;
        ir_epc_set_public(ep->core, &a, now);
    }
    if (ir_conn_get_state(ep->qad) == IR_CONN_CLOSED) {
        const ir_close_info *ci = ir_conn_close_info(ep->qad);
        IR_LOG(IR_LOG_DEBUG, "address discovery closed: %s", ci->reason[0] ? ci->reason : "-");
        qad_close(ep, now, 0);
    }
}


/* The relay links connections have paths through stay up (a relay path is a backup path
 * of a direct connection, quiet for long stretches): each counts as used now. */
static void keep_used_links(ir_ep *ep, uint64_t now)
{
    ep->links_check_at = now + LINK_KEEP_NS;
    unsigned idx[IR_EP_MAX_RELAYS];
    size_t n = ir_epc_relay_links_in_use(ep->core, idx, IR_EP_MAX_RELAYS);
    for (size_t i = 0; i < n; i++)
        if (idx[i] < ep->nlinks && idx[i] >= ep->nconfigured)
            ir_rlink_want(ep->links[idx[i]], 0, now);
}

/* Relay links: their descriptors' readiness (from the last prepare) and deadlines. */
static void run_links(ir_ep *ep, const struct pollfd *pf, uint64_t now)
{
    if (ep->nlinks > ep->nconfigured && now >= ep->links_check_at)
        keep_used_links(ep, now);
    short rev[IR_EP_MAX_RELAYS] = {0};
    for (int k = 0; pf && k < ep->npf_links; k++) {
        int li = ep->pf_link[k];
        struct pollfd cur;
        /* a link whose socket changed since prepare gets no stale readiness */
        if (ir_rlink_pollfd(ep->links[li], &cur) && cur.fd == ep->pf_fd[k])
            rev[li] = pf[ep->nsock + k].revents;
    }
    for (size_t i = 0; i < ep->nlinks; i++) {
        uint64_t t = ir_rlink_timeout(ep->links[i]);
        if (rev[i] || (t && t <= now))
            ir_rlink_process(ep->links[i], rev[i], now);
    }
    choose_home(ep, now);
    qad_tick(ep, now);
    if (ep->nrs) {
        if (pf && ep->pf_nrs >= 0 && pf[ep->pf_nrs].revents)
            ir_nrs_woken(ep->nrs);
        ir_nrs_tick(ep->nrs, now);
    }
}

static int next_timeout_ms(ir_ep *ep, uint64_t now, int cap_ms)
{
    uint64_t t = ir_epc_timeout(ep->core);
    for (size_t i = 0; i < ep->nlinks; i++) {
        uint64_t d = ir_rlink_timeout(ep->links[i]);
        if (d && d < t)
            t = d;
    }
    if (ep->cfg.qad_client && !ep->qad && ep->home >= 0 && ep->qad_retry_at > now &&
        ep->qad_retry_at < t)
        t = ep->qad_retry_at;
    if (ep->if_check_at < t)
        t = ep->if_check_at;
    if (ep->nrs) {
        uint64_t d = ir_nrs_timeout(ep->nrs, now);
        if (d < t)
            t = d;
    }
    if (ep->nlinks > ep->nconfigured && ep->links_check_at < t)
        t = ep->links_check_at;
    if (t == UINT64_MAX)
        return cap_ms;
    if (t <= now)
        return 0;
    uint64_t ms = (t - now + 999999) / 1000000;
    if (cap_ms >= 0 && ms > (uint64_t)cap_ms)
        return cap_ms;
    return ms > 60000 ? 60000 : (int)ms;
}

int ir_ep_prepare(ir_ep *ep, struct pollfd *pf, int *timeout_ms)
{
    ir_ep_flush(ep);
    ir_epc_maybe_trim(ep->core, ir_now_ns());
    *timeout_ms = next_timeout_ms(ep, ir_now_ns(), *timeout_ms);
    for (int i = 0; i < ep->nsock; i++) {
        pf[i].fd = ep->fd[i];
        pf[i].events = POLLIN;
        pf[i].revents = 0;
    }
    int n = ep->nsock;
    ep->npf_links = 0;
    for (size_t i = 0; i < ep->nlinks; i++) {
        if (ir_rlink_pollfd(ep->links[i], &pf[n])) {
            ep->pf_link[ep->npf_links] = (int)i;
            ep->pf_fd[ep->npf_links++] = pf[n].fd;
            n++;
        }
    }
    ep->pf_nl = -1;
    if (ep->nl_fd >= 0) {
        pf[n].fd = ep->nl_fd;
        pf[n].events = POLLIN;
        pf[n].revents = 0;
        ep->pf_nl = n++;
    }
    ep->pf_nrs = -1;
    if (ep->nrs && ir_nrs_pollfd(ep->nrs, &pf[n]))
        ep->pf_nrs = n++;
    return n;
}

/* Step 1 of the loop, system calls only: up to IR_EP_BATCH datagrams from socket i into
 * the shell's receive buffers (ep->rx). Touches nothing the core or another thread uses. */
int ir_ep_read(ir_ep *ep, int i)
{
    struct mmsghdr msgs[IR_EP_BATCH];
    struct iovec iovs[IR_EP_BATCH];
    struct sockaddr_storage from_ss[IR_EP_BATCH];
    for (int k = 0; k < IR_EP_BATCH; k++) {
        iovs[k].iov_base = ep->rbuf[k];
        iovs[k].iov_len = MAX_DGRAM + 1;
        memset(&msgs[k], 0, sizeof msgs[k]);
        msgs[k].msg_hdr.msg_name = &from_ss[k];
        msgs[k].msg_hdr.msg_namelen = sizeof from_ss[k];
        msgs[k].msg_hdr.msg_iov = &iovs[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
    }
    ep->nrx = 0;
    int got = recvmmsg(ep->fd[i], msgs, IR_EP_BATCH, MSG_DONTWAIT, NULL);
    if (got <= 0)
        return 0;
    for (int k = 0; k < got; k++) {
        size_t n = msgs[k].msg_len;
        if (n > MAX_DGRAM || (msgs[k].msg_hdr.msg_flags & MSG_TRUNC))
            continue; /* larger than any QUIC datagram we accept */
        ir_netaddr_from_sockaddr(&ep->rx_from[ep->nrx], (struct sockaddr *)&from_ss[k]);
        ep->rx_buf[ep->nrx] = ep->rbuf[k];
        ep->rx_len[ep->nrx++] = n;
    }
    return got;
}

/* Step 2, the core (the caller's lock): what ir_ep_read read, into the core. */
void ir_ep_deliver(ir_ep *ep, uint64_t now)
{
    for (int k = 0; k < ep->nrx; k++) {
        if (ep->rx_from[k].data[0] == 6)
            COUNT(ep, recv_data_ipv6, ep->rx_len[k]);
        else
            COUNT(ep, recv_data_ipv4, ep->rx_len[k]);
        ir_epc_recv(ep->core, &ep->rx_from[k], ep->rx_buf[k], ep->rx_len[k], now);
    }
    COUNT(ep, recv_datagrams, ep->nrx);
    ep->nrx = 0;
}

void ir_ep_process(ir_ep *ep, const struct pollfd *pf)
{
    uint64_t now = ir_now_ns();
    for (int i = 0; i < ep->nsock; i++) {
        if (!(pf[i].revents & POLLIN))
            continue;
        /* up to 16 rounds of IR_EP_BATCH datagrams per system call */
        for (int round = 0; round < 16; round++) {
            int got = ir_ep_read(ep, i);
            ir_ep_deliver(ep, now);
            if (got < IR_EP_BATCH)
                break;
        }
    }
    ir_ep_process_rest(ep, pf);
}

void ir_ep_process_rest(ir_ep *ep, const struct pollfd *pf)
{
    uint64_t now = ir_now_ns();
    if (pf && ep->pf_nl >= 0 && pf[ep->pf_nl].fd == ep->nl_fd && pf[ep->pf_nl].revents)
        netlink_drain(ep, now);
    if (ep->if_check_at <= now)
        read_interfaces(ep, now);
    run_links(ep, pf, ir_now_ns());
    ir_epc_on_timeout(ep->core, ir_now_ns());
    /* what this produced goes out in the next ir_ep_prepare, before anything waits */
}

int ir_ep_poll(ir_ep *ep, int timeout_ms, struct pollfd *extra, size_t nextra)
{
    struct pollfd pf[IR_EP_MAX_FDS + 16];
    if (nextra > 16)
        nextra = 16;
    int wait = timeout_ms;
    int n = ir_ep_prepare(ep, pf, &wait);
    for (size_t i = 0; i < nextra; i++) {
        pf[n + (int)i] = extra[i];
        pf[n + (int)i].revents = 0;
    }
    int rc = poll(pf, (nfds_t)(n + (int)nextra), wait);
    if (rc < 0 && errno != EINTR)
        return ir_fail(IROH_ERR_IO, "poll: %s", strerror(errno)), -1;
    ir_ep_process(ep, pf);
    int ready = 0;
    for (size_t i = 0; i < nextra; i++) {
        extra[i].revents = pf[n + (int)i].revents;
        ready += extra[i].revents != 0;
    }
    return ready;
}

ir_conn *ir_ep_accept(ir_ep *ep)
{
    return ir_epc_accept(ep->core);
}

int ir_ep_conn_remote(const ir_ep *ep, const ir_conn *c, iroh_socket_addr *out,
                      const char **relay_url)
{
    const ir_netaddr *r = ir_epc_conn_remote(ep->core, c);
    return r ? ir_ep_path_info(ep, r, out, relay_url) : -1;
}

size_t ir_ep_conn_count(const ir_ep *ep)
{
    return ir_epc_conn_count(ep->core);
}

ir_conn *ir_ep_conn_at(const ir_ep *ep, size_t i)
{
    return ir_epc_conn_at(ep->core, i);
}

void ir_ep_release(ir_ep *ep, ir_conn *c)
{
    ir_ep_release_quiet(ep, c, 0);
}

void ir_ep_release_quiet(ir_ep *ep, ir_conn *c, int quiet)
{
    ir_epc_release(ep->core, c, quiet, ir_now_ns());
}

/* Test hook (tests/fuzz/fuzz_ep.c): one datagram into the demux as if a socket had read it
 * from `from` at `now`, without sockets. */
void ir_ep_inject_datagram(ir_ep *ep, const ir_netaddr *from, uint8_t *data, size_t len,
                           uint64_t now)
{
    ir_epc_recv(ep->core, from, data, len, now);
}
