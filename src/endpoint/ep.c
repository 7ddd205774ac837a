#include "endpoint/ep.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/blake3.h"
#include "base/log.h"
#include "base/util.h"
#include "crypto/crypto.h"
#include "endpoint/qad.h"
#include "endpoint/relay_link.h"
#include "net/udp.h"
#include "tls/tls.h"

#define MAX_SOCKS 2
#define MAX_DGRAM 1500
#define OUR_CID_LEN 8
#define IR_EP_BATCH 32 /* datagrams per GSO send (64 KiB at most: 43 x 1500) */

typedef struct conn_slot {
    ir_conn *c;
    int accepted;   /* handed out by ir_ep_accept */
    int inbound;
    ir_netaddr remote; /* the address the connection started with */
    ir_netaddr also[7];  /* client: the peer's other addresses (direct, relay), tried at once */
    int nalso;
} conn_slot;

struct ir_ep {
    ir_ep_config cfg;
    iroh_endpoint_id id;
    ir_tls_identity *ident;
    int fd[MAX_SOCKS];
    iroh_socket_addr bound[MAX_SOCKS];
    int nsock;
    conn_slot *conns;
    size_t nconns, capconns;
    int gso_off;                  /* the kernel refused UDP GSO */
    uint8_t batch[IR_EP_BATCH * MAX_DGRAM];
    uint8_t rbuf[IR_EP_BATCH][MAX_DGRAM + 1];
    uint8_t reset_key[32];
    uint64_t reset_window_start; /* stateless resets sent in the current second */
    unsigned resets_in_window;
    uint8_t *alpn_store;
    const uint8_t **alpns;
    size_t *alpn_lens;
    /* relays: the configured ones first, then those dialed to reach peers */
    ir_rlink *links[IR_EP_MAX_RELAYS];
    size_t nlinks, nconfigured;
    int home;                      /* index of the home relay, -1 before one is chosen */
    int pf_link[IR_EP_MAX_RELAYS]; /* the links polled by the last prepare, in order */
    int pf_fd[IR_EP_MAX_RELAYS];
    int npf_links;
    char *relay_token;
    char *relay_ca_file;
    /* QUIC address discovery with the home relay: one internal connection, not in conns */
    conn_slot qad;
    int qad_link;             /* the link it went to */
    uint64_t qad_retry_at;
    ir_tls_identity *qad_ident;
    iroh_socket_addr public_addr;
    int have_public;
    ir_ep_counters counters;
    size_t freed_since_trim; /* connections freed since the last malloc_trim */
    uint64_t last_trim;
};

uint64_t ir_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}


static void handle_datagram(ir_ep *ep, const ir_netaddr *from, uint8_t *buf, size_t len,
                            uint64_t now);

/* A datagram that came through relay link idx from peer src. */
static void relay_recv(void *ctx, unsigned idx, const uint8_t src[32], uint8_t *data, size_t len,
                       uint64_t now)
{
    ir_netaddr from;
    ir_netaddr_relay(&from, idx, src);
    handle_datagram(ctx, &from, data, len, now);
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
    int best = -1;
    uint64_t best_lat = 0;
    for (size_t i = 0; i < ep->nconfigured; i++) {
        ir_rlink *l = ep->links[i];
        if (!ir_rlink_established(l))
            continue;
        uint64_t lat = ir_rlink_latency(l);
        if (best < 0 || lat < best_lat) {
            best = (int)i;
            best_lat = lat;
        }
    }
    if (best < 0 || best == ep->home)
        return;
    if (ep->home >= 0 && ir_rlink_established(ep->links[ep->home]) &&
        best_lat * 3 >= ir_rlink_latency(ep->links[ep->home]) * 2)
        return;
    ep->home = best;
    IR_LOG(IR_LOG_INFO, "home relay: %s (%.1f ms)", ir_rlink_url(ep->links[best]),
           (double)best_lat / 1e6);
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

int ir_ep_new(const ir_ep_config *cfg, ir_ep **out)
{
    ir_ep *ep = calloc(1, sizeof *ep);
    if (!ep)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    ep->cfg = *cfg;
    ep->fd[0] = ep->fd[1] = -1;
    ep->home = -1;
    iroh_secret_key_public(&cfg->key, &ep->id);
    /* derived from the identity, so that a restarted endpoint with the same key can still
     * reset connections its previous run had (the point of stateless resets) */
    ir_blake3_derive_key("iroh-c 2026-11 stateless reset key", cfg->key.bytes, 32,
                         ep->reset_key, sizeof ep->reset_key);
    int rc = cfg->x509_cert_file
                 ? ir_tls_identity_new_x509_server(cfg->x509_cert_file, cfg->x509_key_file, &ep->ident)
                 : ir_tls_identity_new(&cfg->key, &ep->ident);
    if (rc != IROH_OK)
        goto fail;
    ep->qad_link = -1;
    /* our own copy of the ALPN list */
    if (cfg->n_alpns) {
        size_t total = 0;
        for (size_t i = 0; i < cfg->n_alpns; i++)
            total += cfg->alpn_lens[i];
        ep->alpn_store = malloc(total + 1);
        ep->alpns = calloc(cfg->n_alpns, sizeof *ep->alpns);
        ep->alpn_lens = calloc(cfg->n_alpns, sizeof *ep->alpn_lens);
        if (!ep->alpn_store || !ep->alpns || !ep->alpn_lens) {
            rc = ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
            goto fail;
        }
        size_t o = 0;
        for (size_t i = 0; i < cfg->n_alpns; i++) {
            memcpy(ep->alpn_store + o, cfg->alpns[i], cfg->alpn_lens[i]);
            ep->alpns[i] = ep->alpn_store + o;
            ep->alpn_lens[i] = cfg->alpn_lens[i];
            o += cfg->alpn_lens[i];
        }
        ep->cfg.alpns = ep->alpns;
        ep->cfg.alpn_lens = ep->alpn_lens;
    }
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
        ep->fd[ep->nsock++] = fd;
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
    for (size_t i = 0; i < ep->nconns; i++)
        ir_conn_free(ep->conns[i].c);
    free(ep->conns);
    for (int i = 0; i < MAX_SOCKS; i++)
        if (ep->fd[i] >= 0)
            close(ep->fd[i]);
    for (size_t i = 0; i < ep->nlinks; i++)
        ir_rlink_free(ep->links[i]);
    ir_conn_free(ep->qad.c);
    ir_tls_identity_free(ep->qad_ident);
    free(ep->relay_token);
    free(ep->relay_ca_file);
    ir_tls_identity_free(ep->ident);
    free(ep->alpn_store);
    free(ep->alpns);
    free(ep->alpn_lens);
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
    size_t n = 0;
    for (int i = 0; i < ep->nsock && n < max; i++) {
        if (unspecified(&ep->bound[i]))
            n += ir_local_addrs(ep->bound[i].family, ep->bound[i].port, out + n, max - n);
        else
            out[n++] = ep->bound[i];
    }
    /* the address the home relay sees us at, when it is not one of those */
    if (ep->have_public && n < max) {
        const iroh_socket_addr *p = &ep->public_addr;
        int known = 0;
        for (size_t i = 0; i < n; i++)
            known |= same_socket_addr(&out[i], p);
        if (!known)
            out[n++] = ep->public_addr;
    }
    return n;
}

static void base_config(ir_ep *ep, ir_conn_config *cfg)
{
    ir_conn_config_defaults(cfg);
    /* multipath and NAT traversal are not implemented yet: do not offer them */
    cfg->tp.has_initial_max_path_id = 0;
    cfg->tp.nat_traversal = 0;
    if (ep->cfg.idle_timeout_ms)
        cfg->tp.max_idle_timeout = ep->cfg.idle_timeout_ms;
    if (ep->cfg.keep_alive_ns)
        cfg->keep_alive_ns = ep->cfg.keep_alive_ns;
    if (ep->cfg.max_streams_bidi)
        cfg->tp.initial_max_streams_bidi = ep->cfg.max_streams_bidi;
    if (ep->cfg.max_streams_uni)
        cfg->tp.initial_max_streams_uni = ep->cfg.max_streams_uni;
    if (ep->cfg.stream_window) {
        cfg->tp.initial_max_stream_data_bidi_local = ep->cfg.stream_window;
        cfg->tp.initial_max_stream_data_bidi_remote = ep->cfg.stream_window;
        cfg->tp.initial_max_stream_data_uni = ep->cfg.stream_window;
    }
    if (ep->cfg.max_stream_window)
        cfg->max_stream_window = ep->cfg.max_stream_window;
    if (ep->cfg.max_datagram_frame)
        cfg->tp.max_datagram_frame_size = ep->cfg.max_datagram_frame;
    if (ep->cfg.qad_server) {
        /* report each client's address; nothing else is offered */
        cfg->tp.has_observed_address = 1;
        cfg->tp.observed_address_role = 0;
        cfg->addr_of = ir_netaddr_to_socket_addr;
        cfg->tp.initial_max_streams_bidi = cfg->tp.initial_max_streams_uni = 0;
    }
    cfg->identity = ep->ident;
    cfg->random = ir_random_bytes;
    memcpy(cfg->reset_key, ep->reset_key, 32);
}

static conn_slot *add_conn(ir_ep *ep, ir_conn *c, int inbound, const ir_netaddr *remote)
{
    if (ep->nconns == ep->capconns) {
        size_t cap = ep->capconns ? ep->capconns * 2 : 8;
        conn_slot *p = realloc(ep->conns, cap * sizeof *p);
        if (!p)
            return NULL;
        ep->conns = p;
        ep->capconns = cap;
    }
    conn_slot *s = &ep->conns[ep->nconns++];
    memset(s, 0, sizeof *s);
    s->c = c;
    s->inbound = inbound;
    s->remote = *remote;
    return s;
}

int ir_ep_connect(ir_ep *ep, const iroh_endpoint_addr *addr, const uint8_t *alpn,
                  size_t alpn_len, ir_conn **out)
{
    const uint8_t *alpns[1] = {alpn};
    size_t lens[1] = {alpn_len};
    return ir_ep_connect_alpns(ep, addr, alpns, lens, 1, out);
}

static void flush_conn(ir_ep *ep, conn_slot *s, uint64_t now);

int ir_ep_connect_alpns(ir_ep *ep, const iroh_endpoint_addr *addr, const uint8_t *const *alpns,
                        const size_t *alpn_lens, size_t n_alpns, ir_conn **out)
{
    /* path 0 is the first direct address of a family we have a socket for, else the
     * first relay; the first flight also goes to every other such address and relay
     * (iroh's Initial fan-out, spec quic-tls.md 2.4) */
    ir_netaddr cand[8];
    int ncand = 0;
    size_t n = iroh_endpoint_addr_len(addr);
    const iroh_endpoint_id *rid = iroh_endpoint_addr_id(addr);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n && ncand < 8; i++) {
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
    ir_conn_config cfg;
    base_config(ep, &cfg);
    cfg.alpns = alpns;
    cfg.alpn_lens = alpn_lens;
    cfg.n_alpns = n_alpns;
    cfg.remote_id = rid;
    ir_conn *c;
    int rc = ir_conn_client_new(&cfg, &cand[0], ir_now_ns(), &c);
    if (rc != IROH_OK)
        return rc;
    conn_slot *slot = add_conn(ep, c, 0, &cand[0]);
    if (!slot) {
        ir_conn_free(c);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    for (int i = 1; i < ncand; i++)
        slot->also[slot->nalso++] = cand[i];
    *out = c;
    flush_conn(ep, slot, ir_now_ns()); /* the first flight, at once */
    return IROH_OK;
}

static conn_slot *route(ir_ep *ep, const ir_pkt_hdr *h)
{
    if (ep->qad.c && ir_conn_owns_cid(ep->qad.c, h->dcid.data, h->dcid.len))
        return &ep->qad;
    for (size_t i = 0; i < ep->nconns; i++) {
        ir_conn *c = ep->conns[i].c;
        if (ir_conn_owns_cid(c, h->dcid.data, h->dcid.len))
            return &ep->conns[i];
        /* a client's retransmitted first Initial still carries its chosen DCID */
        if (h->type == IR_PT_INITIAL && ep->conns[i].inbound && ir_cid_eq(ir_conn_initial_dcid(c), &h->dcid))
            return &ep->conns[i];
    }
    return NULL;
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
    if (idx < ep->nlinks)
        ir_rlink_send(ep->links[idx], id, buf, len, seg, ir_now_ns());
    return 1;
}

static void send_raw(ir_ep *ep, const ir_netaddr *to, const uint8_t *buf, size_t len)
{
    if (send_relay(ep, to, buf, len, len))
        return;
    struct sockaddr_storage ss;
    socklen_t sl;
    int sock = sock_for(ep, to);
    if (sock < 0 || ir_netaddr_to_sockaddr(to, &ss, &sl) != 0)
        return;
    /* a full socket buffer drops the datagram, as the network would */
    (void)sendto(ep->fd[sock], buf, len, 0, (struct sockaddr *)&ss, sl);
}

/* Sends a batch of datagrams to one destination: all of seg bytes but the last, which
 * may be shorter. With UDP GSO (Linux 4.18+) that is one system call for the batch;
 * without it (or if the kernel refuses), one sendmmsg. */
static void send_batch(ir_ep *ep, const ir_netaddr *to, uint8_t *buf, size_t len, size_t seg)
{
    if (send_relay(ep, to, buf, len, seg))
        return;
    struct sockaddr_storage ss;
    socklen_t sl;
    int sock = sock_for(ep, to);
    if (sock < 0 || ir_netaddr_to_sockaddr(to, &ss, &sl) != 0)
        return;
    if (len <= seg) {
        (void)sendto(ep->fd[sock], buf, len, 0, (struct sockaddr *)&ss, sl);
        return;
    }
    if (!ep->gso_off) {
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
        ep->gso_off = 1; /* no GSO here: fall back for good */
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

static void flush_conn(ir_ep *ep, conn_slot *s, uint64_t now)
{
    if (s->nalso) {
        /* handshake to several addresses: every datagram to each of them, until the
         * handshake is done (path 0 is then wherever the server answered from) */
        if (ir_conn_get_state(s->c) != IR_CONN_HANDSHAKE) {
            s->nalso = 0;
        } else {
            uint8_t buf[MAX_DGRAM];
            ir_netaddr to;
            size_t n;
            while ((n = ir_conn_send(s->c, buf, sizeof buf, &to, now)) > 0) {
                send_raw(ep, &to, buf, n);
                for (int i = 0; i < s->nalso; i++)
                    if (!ir_netaddr_eq(&s->also[i], &to))
                        send_raw(ep, &s->also[i], buf, n);
                if (!ir_netaddr_eq(&s->remote, &to))
                    send_raw(ep, &s->remote, buf, n);
            }
            return;
        }
    }
    /* batches of equal-size datagrams to one place: one GSO send (or relay frame) each */
    ir_netaddr to;
    size_t seg, len;
    int budget = 16; /* batches per call: keep the loop responsive under bulk sends */
    while (budget-- > 0 &&
           (len = ir_conn_send_batch(s->c, ep->batch, sizeof ep->batch, MAX_DGRAM, &to, &seg, now)) > 0)
        send_batch(ep, &to, ep->batch, len, seg);
}

void ir_ep_flush(ir_ep *ep)
{
    uint64_t now = ir_now_ns();
    if (ep->qad.c)
        flush_conn(ep, &ep->qad, now);
    for (size_t i = 0; i < ep->nconns; i++)
        flush_conn(ep, &ep->conns[i], now);
}

/* RFC 9000 10.3: a short-header packet for a connection we do not know gets a stateless
 * reset carrying the token we gave out with that CID (keyed BLAKE3 of the CID under the
 * endpoint's reset key, as ir_conn computes it). It is shorter than the packet that
 * caused it, so two endpoints cannot loop, and at most 100 go out per second. */
static void send_stateless_reset(ir_ep *ep, const ir_netaddr *to, const ir_cid *dcid,
                                 size_t trigger_len, uint64_t now)
{
    enum { MIN_LEN = 21, MAX_LEN = 43, PER_SECOND = 100 };
    if (trigger_len <= MIN_LEN || dcid->len != OUR_CID_LEN)
        return;
    if (now - ep->reset_window_start >= 1000000000ull) {
        ep->reset_window_start = now;
        ep->resets_in_window = 0;
    }
    if (ep->resets_in_window >= PER_SECOND)
        return;
    ep->resets_in_window++;
    size_t len = trigger_len - 1 < MAX_LEN ? trigger_len - 1 : MAX_LEN;
    uint8_t pkt[MAX_LEN], token[32];
    ir_random_bytes(NULL, pkt, len - IR_RESET_TOKEN_LEN);
    pkt[0] = (uint8_t)((pkt[0] & 0x3f) | 0x40); /* looks like a short header */
    ir_blake3_keyed_hash(ep->reset_key, dcid->data, dcid->len, token);
    memcpy(pkt + len - IR_RESET_TOKEN_LEN, token, IR_RESET_TOKEN_LEN);
    send_raw(ep, to, pkt, len);
    IR_LOG(IR_LOG_DEBUG, "stateless reset sent for an unknown connection id (%zu bytes)", len);
}

/* Retry tokens: expiry (8 bytes, ns) || odcid length (1) || odcid || keyed BLAKE3 of
 * (client address || those bytes), 16 bytes. Only this endpoint can make them; they are
 * bound to the client's address and valid for RETRY_TOKEN_NS. */
#define RETRY_TOKEN_NS (10ull * 1000000000ull)

static void retry_mac(const ir_ep *ep, const ir_netaddr *from, const uint8_t *body, size_t len,
                      uint8_t mac[16])
{
    uint8_t key[32], full[32];
    ir_blake3 h;
    ir_blake3_derive_key("iroh-c 2026-11 retry token key", ep->reset_key, 32, key, 32);
    ir_blake3_init_keyed(&h, key);
    ir_blake3_update(&h, &from->len, 1);
    ir_blake3_update(&h, from->data, from->len);
    ir_blake3_update(&h, body, len);
    ir_blake3_finalize(&h, full, 32);
    memcpy(mac, full, 16);
}

static void send_retry(ir_ep *ep, const ir_netaddr *from, const ir_pkt_hdr *h, uint64_t now)
{
    uint8_t token[8 + 1 + IR_MAX_CID_LEN + 16], pkt[256], r;
    uint64_t expiry = now + RETRY_TOKEN_NS;
    for (int i = 0; i < 8; i++)
        token[i] = (uint8_t)(expiry >> (56 - 8 * i));
    token[8] = h->dcid.len;
    memcpy(token + 9, h->dcid.data, h->dcid.len);
    size_t body = 9 + h->dcid.len;
    retry_mac(ep, from, token, body, token + body);
    ir_cid scid;
    scid.len = OUR_CID_LEN;
    ir_random_bytes(NULL, scid.data, OUR_CID_LEN);
    ir_random_bytes(NULL, &r, 1);
    size_t n = ir_pkt_write_retry(pkt, sizeof pkt, &h->scid, &scid, &h->dcid, token, body + 16, r);
    if (n) {
        send_raw(ep, from, pkt, n);
        IR_LOG(IR_LOG_DEBUG, "Retry sent to validate a new client");
    }
}

static int check_retry_token(const ir_ep *ep, const ir_netaddr *from, const ir_pkt_hdr *h,
                             uint64_t now, ir_cid *odcid)
{
    const uint8_t *t = h->token;
    size_t len = h->token_len;
    if (len < 9 + 16 || t[8] > IR_MAX_CID_LEN || len != 9u + t[8] + 16u)
        return -1;
    uint8_t mac[16];
    retry_mac(ep, from, t, len - 16, mac);
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

/* Incoming connections whose handshake is not complete and that still hold memory
 * (also those closing without ever completing: a ClientHello we refuse) */
static size_t half_open(const ir_ep *ep)
{
    size_t n = 0;
    for (size_t i = 0; i < ep->nconns; i++)
        n += ep->conns[i].inbound && !ir_conn_handshake_complete(ep->conns[i].c) &&
             ir_conn_get_state(ep->conns[i].c) != IR_CONN_CLOSED;
    return n;
}

void ir_ep_get_counters(const ir_ep *ep, ir_ep_counters *out)
{
    *out = ep->counters;
    out->half_open = half_open(ep);
}

static void handle_datagram(ir_ep *ep, const ir_netaddr *from, uint8_t *buf, size_t len,
                            uint64_t now)
{
    ir_pkt_hdr h;
    if (ir_pkt_parse(buf, len, OUR_CID_LEN, &h) != 0)
        return;
    conn_slot *s = route(ep, &h);
    if (s) {
        ir_conn_recv(s->c, from, buf, len, now);
        return;
    }
    if (h.type == IR_PT_1RTT) {
        send_stateless_reset(ep, from, &h.dcid, len, now);
        return;
    }
    if (h.type == IR_PT_VN)
        return;
    if (h.version != IR_QUIC_V1) {
        if (len >= IR_MIN_INITIAL_SIZE) {
            uint8_t vn[128];
            uint8_t r;
            ir_random_bytes(NULL, &r, 1);
            size_t n = ir_pkt_write_vn(vn, sizeof vn, &h.dcid, &h.scid, r);
            if (n)
                send_raw(ep, from, vn, n);
            IR_LOG(IR_LOG_DEBUG, "version negotiation for version 0x%08x", h.version);
        }
        return;
    }
    /* a new connection: only a full-size client Initial, and only if we accept */
    if (h.type != IR_PT_INITIAL || len < IR_MIN_INITIAL_SIZE || !ep->cfg.n_alpns)
        return;
    /* nothing is kept, and nothing is answered, before the Initial decrypts: anyone can
     * derive its keys from the DCID, but random bytes do not authenticate (a copy is
     * opened: the datagram stays as it came for the connection) */
    if (!ir_pkt_initial_opens(buf, &h)) {
        ep->counters.initials_undecryptable++;
        IR_LOG(IR_LOG_TRACE, "an Initial that does not decrypt: dropped");
        return;
    }
    size_t half = half_open(ep);
    if ((ep->cfg.max_connections && ep->nconns >= ep->cfg.max_connections) ||
        half >= (ep->cfg.half_open_max ? ep->cfg.half_open_max : IR_EP_HALF_OPEN_MAX)) {
        ep->counters.initials_full++;
        IR_LOG(IR_LOG_DEBUG, "new client dropped: %zu handshakes in progress, %zu connections",
               half, ep->nconns);
        return; /* full: the client will try again */
    }
    ir_conn_config cfg;
    base_config(ep, &cfg);
    /* RFC 9000 8.1.2: when configured, or under load (many handshakes in progress), no
     * state until the client proves its address with our token */
    int need_retry = ep->cfg.retry ||
                     half >= (ep->cfg.retry_above ? ep->cfg.retry_above : IR_EP_RETRY_ABOVE);
    if (h.token_len) {
        if (check_retry_token(ep, from, &h, now, &cfg.original_dcid) == 0) {
            cfg.retried = 1;
            cfg.retry_scid = h.dcid;
        } else {
            ep->counters.bad_tokens++;
            if (need_retry) {
                IR_LOG(IR_LOG_DEBUG, "invalid or expired Retry token: dropped");
                return;
            }
            /* not one of our Retry tokens (we issue no NEW_TOKEN): as if it had none */
        }
    } else if (need_retry) {
        send_retry(ep, from, &h, now);
        ep->counters.retries_sent++;
        return;
    }
    cfg.handshake_timeout_ns = (ep->cfg.handshake_timeout_ms ? ep->cfg.handshake_timeout_ms
                                                             : IR_EP_HANDSHAKE_TIMEOUT_MS) *
                               1000000ull;
    cfg.alpns = ep->cfg.alpns;
    cfg.alpn_lens = ep->cfg.alpn_lens;
    cfg.n_alpns = ep->cfg.n_alpns;
    ir_conn *c;
    if (ir_conn_server_new(&cfg, &h, from, now, &c) != IROH_OK) {
        IR_LOG(IR_LOG_WARN, "cannot start an incoming connection: %s", iroh_last_error());
        return;
    }
    IR_LOG(IR_LOG_DEBUG, "incoming connection attempt");
    ep->counters.incoming++;
    s = add_conn(ep, c, 1, from);
    if (!s) {
        ir_conn_free(c);
        return;
    }
    ir_conn_recv(c, from, buf, len, now);
}

static void run_timers(ir_ep *ep, uint64_t now)
{
    if (ep->qad.c && ir_conn_timeout(ep->qad.c) <= now)
        ir_conn_on_timeout(ep->qad.c, now);
    for (size_t i = 0; i < ep->nconns; i++)
        if (ir_conn_timeout(ep->conns[i].c) <= now)
            ir_conn_on_timeout(ep->conns[i].c, now);
}

/* QUIC address discovery (spec relay.md 4.3): a connection from our UDP socket to the
 * home relay's UDP port 7842, ALPN /iroh-qad/0, the relay's certificate checked as for
 * its https URL; the relay reports the address it sees us at (OBSERVED_ADDRESS), which
 * becomes one of our direct addresses. Kept open (keep-alive 25 s, idle 35 s) for
 * updates; retried a minute after it fails. https relays only (QAD needs TLS). */
#define QAD_RETRY_NS (60ull * 1000000000ull)

static void qad_close(ir_ep *ep, uint64_t now, int retry_soon)
{
    if (ep->qad.c) {
        if (ir_conn_get_state(ep->qad.c) < IR_CONN_CLOSING) {
            /* as iroh's client: application error 1, "finished" */
            ir_conn_close(ep->qad.c, 1, 1, "finished", now);
            flush_conn(ep, &ep->qad, now);
        }
        ir_conn_free(ep->qad.c);
    }
    memset(&ep->qad, 0, sizeof ep->qad);
    ep->qad_link = -1;
    ep->qad_retry_at = now + (retry_soon ? 0 : QAD_RETRY_NS);
}

static void qad_start(ir_ep *ep, ir_rlink *l, uint64_t now)
{
    iroh_socket_addr ip;
    if (ir_rlink_remote_ip(l, &ip) != 0)
        return;
    ip.port = ep->cfg.qad_port ? ep->cfg.qad_port : IR_QAD_DEFAULT_PORT;
    ir_netaddr path;
    ir_netaddr_from_socket_addr(&path, &ip);
    if (sock_for(ep, &path) < 0)
        return; /* no socket of the relay's family */
    ep->qad_retry_at = now + QAD_RETRY_NS; /* if this fails at once */
    if (!ep->qad_ident &&
        ir_tls_identity_new_x509_client(ep->relay_ca_file, &ep->qad_ident) != IROH_OK) {
        IR_LOG(IR_LOG_DEBUG, "address discovery: %s", iroh_last_error());
        return;
    }
    static const uint8_t alpn[] = IR_QAD_ALPN;
    const uint8_t *alpns[1] = {alpn};
    size_t lens[1] = {sizeof alpn - 1};
    ir_conn_config cfg;
    base_config(ep, &cfg);
    cfg.identity = ep->qad_ident;
    cfg.tls_server_name = ir_rlink_host(l);
    cfg.alpns = alpns;
    cfg.alpn_lens = lens;
    cfg.n_alpns = 1;
    cfg.remote_id = NULL;
    cfg.tp.has_observed_address = 1;
    cfg.tp.observed_address_role = 1; /* receive only */
    cfg.tp.max_idle_timeout = 35000;
    cfg.keep_alive_ns = 25ull * 1000000000ull;
    cfg.tp.initial_max_streams_bidi = cfg.tp.initial_max_streams_uni = 0;
    ir_conn *c;
    if (ir_conn_client_new(&cfg, &path, now, &c) != IROH_OK) {
        IR_LOG(IR_LOG_DEBUG, "address discovery: %s", iroh_last_error());
        return;
    }
    memset(&ep->qad, 0, sizeof ep->qad);
    ep->qad.c = c;
    ep->qad.remote = path;
    IR_LOG(IR_LOG_DEBUG, "address discovery with %s started", ir_rlink_url(l));
}

static void qad_tick(ir_ep *ep, uint64_t now)
{
    if (!ep->cfg.qad_client)
        return;
    int home = ep->home;
    int usable = home >= 0 && ir_rlink_established(ep->links[home]) &&
                 ir_rlink_is_tls(ep->links[home]);
    if (ep->qad.c && ep->qad_link != home) {
        qad_close(ep, now, 1); /* the home relay changed */
    }
    if (!ep->qad.c) {
        if (usable && now >= ep->qad_retry_at) {
            qad_start(ep, ep->links[home], now);
            if (ep->qad.c)
                ep->qad_link = home;
        }
        return;
    }
    ir_event ev;
    while (ir_conn_poll_event(ep->qad.c, &ev)) {
        if (ev.type != IR_EV_OBSERVED_ADDRESS)
            continue;
        iroh_socket_addr a;
        if (ir_conn_observed_addr(ep->qad.c, &a) != 0)
            continue;
        if (!ep->have_public || !same_socket_addr(&a, &ep->public_addr)) {
            char text[IROH_SOCKET_ADDR_LEN];
            iroh_socket_addr_to_string(&a, text, sizeof text);
            IR_LOG(IR_LOG_INFO, "public address (QUIC address discovery): %s", text);
        }
        ep->public_addr = a;
        ep->have_public = 1;
    }
    if (ir_conn_get_state(ep->qad.c) == IR_CONN_CLOSED) {
        const ir_close_info *ci = ir_conn_close_info(ep->qad.c);
        IR_LOG(IR_LOG_DEBUG, "address discovery closed: %s", ci->reason[0] ? ci->reason : "-");
        qad_close(ep, now, 0);
    }
}


/* Relay links: their descriptors' readiness (from the last prepare) and deadlines. */
static void run_links(ir_ep *ep, const struct pollfd *pf, uint64_t now)
{
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
}

/* Incoming connections that closed before anyone accepted them (handshakes that never
 * completed) belong to nobody: freed here. After a burst of frees the heap is trimmed:
 * glibc keeps freed memory in its arenas (also pages in the middle of a heap) until asked,
 * and a flood's memory should go back to the system. */
#define TRIM_AFTER 64                    /* connections freed */
#define TRIM_EVERY_NS 1000000000ull      /* at most once a second */

static void maybe_trim(ir_ep *ep, uint64_t now)
{
    if (ep->freed_since_trim >= TRIM_AFTER && now - ep->last_trim >= TRIM_EVERY_NS) {
#ifdef __GLIBC__
        malloc_trim(0);
#endif
        ep->counters.trims++;
        ep->freed_since_trim = 0;
        ep->last_trim = now;
    }
}

static void reap(ir_ep *ep, uint64_t now)
{
    size_t k = 0;
    for (size_t i = 0; i < ep->nconns; i++) {
        conn_slot *s = &ep->conns[i];
        if (s->inbound && !s->accepted && ir_conn_get_state(s->c) == IR_CONN_CLOSED) {
            ir_conn_free(s->c);
            ep->freed_since_trim++;
            continue;
        }
        if (k != i)
            ep->conns[k] = *s;
        k++;
    }
    ep->nconns = k;
    maybe_trim(ep, now);
}

static int next_timeout_ms(ir_ep *ep, uint64_t now, int cap_ms)
{
    uint64_t t = UINT64_MAX;
    for (size_t i = 0; i < ep->nconns; i++) {
        uint64_t d = ir_conn_timeout(ep->conns[i].c);
        if (d < t)
            t = d;
    }
    for (size_t i = 0; i < ep->nlinks; i++) {
        uint64_t d = ir_rlink_timeout(ep->links[i]);
        if (d && d < t)
            t = d;
    }
    if (ep->qad.c && ir_conn_timeout(ep->qad.c) < t)
        t = ir_conn_timeout(ep->qad.c);
    /* a trim that waits for its turn (frees also happen between rounds, by the API) */
    if (ep->freed_since_trim >= TRIM_AFTER && ep->last_trim + TRIM_EVERY_NS < t)
        t = ep->last_trim + TRIM_EVERY_NS;
    if (ep->cfg.qad_client && !ep->qad.c && ep->home >= 0 && ep->qad_retry_at > now &&
        ep->qad_retry_at < t)
        t = ep->qad_retry_at;
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
    maybe_trim(ep, ir_now_ns());
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
    return n;
}

void ir_ep_process(ir_ep *ep, const struct pollfd *pf)
{
    uint64_t now = ir_now_ns();
    for (int i = 0; i < ep->nsock; i++) {
        if (!(pf[i].revents & POLLIN))
            continue;
        /* up to 16 rounds of IR_EP_BATCH datagrams per system call */
        for (int round = 0; round < 16; round++) {
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
            int got = recvmmsg(ep->fd[i], msgs, IR_EP_BATCH, MSG_DONTWAIT, NULL);
            if (got <= 0)
                break;
            for (int k = 0; k < got; k++) {
                size_t n = msgs[k].msg_len;
                if (n > MAX_DGRAM || (msgs[k].msg_hdr.msg_flags & MSG_TRUNC))
                    continue; /* larger than any QUIC datagram we accept */
                ir_netaddr from;
                ir_netaddr_from_sockaddr(&from, (struct sockaddr *)&from_ss[k]);
                handle_datagram(ep, &from, ep->rbuf[k], n, now);
            }
            if (got < IR_EP_BATCH)
                break;
        }
    }
    run_links(ep, pf, ir_now_ns());
    run_timers(ep, ir_now_ns());
    reap(ep, ir_now_ns());
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
    for (size_t i = 0; i < ep->nconns; i++) {
        if (ep->conns[i].inbound && !ep->conns[i].accepted) {
            ep->conns[i].accepted = 1;
            return ep->conns[i].c;
        }
    }
    return NULL;
}

int ir_ep_conn_remote(const ir_ep *ep, const ir_conn *c, iroh_socket_addr *out,
                      const char **relay_url)
{
    for (size_t i = 0; i < ep->nconns; i++)
        if (ep->conns[i].c == c)
            return ir_ep_path_info(ep, &ep->conns[i].remote, out, relay_url);
    return -1;
}

size_t ir_ep_conn_count(const ir_ep *ep)
{
    return ep->nconns;
}

ir_conn *ir_ep_conn_at(const ir_ep *ep, size_t i)
{
    return i < ep->nconns ? ep->conns[i].c : NULL;
}

void ir_ep_release(ir_ep *ep, ir_conn *c)
{
    ir_ep_release_quiet(ep, c, 0);
}

void ir_ep_release_quiet(ir_ep *ep, ir_conn *c, int quiet)
{
    for (size_t i = 0; i < ep->nconns; i++) {
        if (ep->conns[i].c != c)
            continue;
        if (!quiet && ir_conn_get_state(c) < IR_CONN_CLOSING) {
            ir_conn_close(c, 1, 0, "", ir_now_ns());
            flush_conn(ep, &ep->conns[i], ir_now_ns());
        }
        ir_conn_free(c);
        memmove(&ep->conns[i], &ep->conns[i + 1], (ep->nconns - i - 1) * sizeof *ep->conns);
        ep->nconns--;
        ep->freed_since_trim++;
        return;
    }
}


/* Test hook (tests/fuzz/fuzz_ep.c): one datagram into the demux as if a socket had read it
 * from `from` at `now`, without sockets. */
void ir_ep_inject_datagram(ir_ep *ep, const ir_netaddr *from, uint8_t *data, size_t len,
                           uint64_t now)
{
    handle_datagram(ep, from, data, len, now);
}
