/* mDNS address lookup, the sans-IO core (see mdns.h). The timing follows swarm-discovery
 * 0.6's sender and updater: a query phase (wait tau + U[0, tau*S/10), then ask) and an
 * answer phase (wait U[0, 100 ms*S/cutoff) + an extra delay, then answer, unless cutoff
 * peers answered first), S being the number of peers known. */
#include "mdns.h"

#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/addr.h"
#include "base/encoding.h"
#include "base/key.h"
#include "base/util.h"

typedef struct mdns_peer {
    uint8_t id[32];
    uint64_t last_seen;
    ir_endpoint_info info;
} mdns_peer;

enum { PHASE_QUERY = 0, PHASE_ANSWER = 1 };

static int cmp_addr(const void *a, const void *b);

struct ir_mdns {
    uint8_t id[32];
    char label[IROH_ID_BASE32_LEN]; /* our id in lowercase base32: the instance label */
    void (*random)(void *ctx, uint8_t *buf, size_t len);
    void *random_ctx;
    ir_endpoint_info local;
    int phase;
    uint64_t timer;       /* the phase's deadline */
    ir_mdns_dest mode;    /* where our answer goes */
    uint64_t extra_delay; /* swarm-discovery's fairness delay */
    int has_responded;
    unsigned response_count;
    size_t swarm_size; /* S: starts at 1, then the peer table's size at each change */
    uint64_t gc_at;
    int want_query, want_answer; /* datagrams due */
    ir_mdns_dest answer_dest;
    mdns_peer *peers;
    size_t n_peers, cap_peers;
    ir_mdns_event *events; /* ring of IR_MDNS_MAX_EVENTS */
    size_t ev_head, ev_len;
};

/* ---- timing -------------------------------------------------------------------------- */

static uint64_t millionth(ir_mdns *m)
{
    uint8_t b[4];
    m->random(m->random_ctx, b, sizeof b);
    uint32_t v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return v % 1000000u;
}

static void enter_query(ir_mdns *m, uint64_t now)
{
    uint64_t interval = IR_MDNS_TAU_NS * m->swarm_size / 10;
    m->phase = PHASE_QUERY;
    m->timer = now + IR_MDNS_TAU_NS + interval / 1000000 * millionth(m);
}

static void enter_answer(ir_mdns *m, ir_mdns_dest mode, uint64_t now)
{
    if (m->has_responded) {
        uint64_t k = m->swarm_size / IR_MDNS_CUTOFF;
        m->extra_delay = IR_MDNS_RESPONSE_DELAY_NS * (k < 10 ? k : 10);
    } else {
        m->extra_delay = m->extra_delay > IR_MDNS_RESPONSE_DELAY_NS
                             ? m->extra_delay - IR_MDNS_RESPONSE_DELAY_NS
                             : 0;
    }
    uint64_t interval = IR_MDNS_RESPONSE_DELAY_NS * m->swarm_size / IR_MDNS_CUTOFF;
    m->phase = PHASE_ANSWER;
    m->mode = mode;
    m->has_responded = 0;
    m->response_count = 0;
    m->timer = now + interval / 1000000 * millionth(m) + m->extra_delay;
}

/* ---- lifetime ----------------------------------------------------------------------- */

ir_mdns *ir_mdns_new(const uint8_t id[32], void (*random)(void *ctx, uint8_t *buf, size_t len),
                     void *random_ctx, uint64_t now)
{
    if (!id || !random)
        return NULL;
    ir_mdns *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->events = calloc(IR_MDNS_MAX_EVENTS, sizeof *m->events);
    if (!m->events) {
        free(m);
        return NULL;
    }
    memcpy(m->id, id, 32);
    ir_b32_encode(IR_B32_RFC4648, id, 32, m->label);
    m->random = random;
    m->random_ctx = random_ctx;
    m->swarm_size = 1;
    m->gc_at = now + IR_MDNS_GC_NS;
    enter_query(m, now);
    return m;
}

void ir_mdns_free(ir_mdns *m)
{
    if (!m)
        return;
    free(m->peers);
    free(m->events);
    free(m);
}

int ir_mdns_set_local(ir_mdns *m, const ir_endpoint_info *self)
{
    if (!m || !self)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "mdns: NULL argument");
    m->local = *self;
    memcpy(m->local.id, m->id, 32);
    if (m->local.n_addrs > IR_ENDPOINT_INFO_MAX_ADDRS)
        m->local.n_addrs = IR_ENDPOINT_INFO_MAX_ADDRS;
    m->local.relay[sizeof m->local.relay - 1] = 0;
    m->local.user_data[sizeof m->local.user_data - 1] = 0;
    /* swarm-discovery keeps its own addresses sorted (address, then port) and deduplicated */
    qsort(m->local.addrs, m->local.n_addrs, sizeof m->local.addrs[0], cmp_addr);
    size_t w = 0;
    for (size_t i = 0; i < m->local.n_addrs; i++)
        if (w == 0 || cmp_addr(&m->local.addrs[w - 1], &m->local.addrs[i]) != 0)
            m->local.addrs[w++] = m->local.addrs[i];
    m->local.n_addrs = w;
    return IROH_OK;
}

size_t ir_mdns_peer_count(const ir_mdns *m)
{
    return m ? m->n_peers : 0;
}

uint64_t ir_mdns_next_timeout(const ir_mdns *m)
{
    return m->timer < m->gc_at ? m->timer : m->gc_at;
}

/* ---- events and the peer table ------------------------------------------------------- */

static void push_event(ir_mdns *m, ir_mdns_event_kind kind, const ir_endpoint_info *info)
{
    if (memcmp(info->id, m->id, 32) == 0)
        return;
    if (m->ev_len == IR_MDNS_MAX_EVENTS) { /* drop the oldest */
        m->ev_head = (m->ev_head + 1) % IR_MDNS_MAX_EVENTS;
        m->ev_len--;
    }
    ir_mdns_event *e = &m->events[(m->ev_head + m->ev_len) % IR_MDNS_MAX_EVENTS];
    e->kind = kind;
    if (kind == IR_MDNS_EV_EXPIRED) {
        memset(&e->info, 0, sizeof e->info);
        memcpy(e->info.id, info->id, 32);
    } else {
        e->info = *info;
    }
    m->ev_len++;
}

int ir_mdns_poll_event(ir_mdns *m, ir_mdns_event *ev)
{
    if (!m || !ev || m->ev_len == 0)
        return 0;
    *ev = m->events[m->ev_head];
    m->ev_head = (m->ev_head + 1) % IR_MDNS_MAX_EVENTS;
    m->ev_len--;
    return 1;
}

static mdns_peer *find_peer(const ir_mdns *m, const uint8_t id[32])
{
    for (size_t i = 0; i < m->n_peers; i++)
        if (memcmp(m->peers[i].id, id, 32) == 0)
            return &m->peers[i];
    return NULL;
}

int ir_mdns_lookup(const ir_mdns *m, const uint8_t id[32], ir_endpoint_info *out)
{
    if (!m || !id || !out)
        return 0;
    const mdns_peer *p = find_peer(m, id);
    if (!p)
        return 0;
    *out = p->info;
    return 1;
}

static void heard_peer(ir_mdns *m, const ir_endpoint_info *info, uint64_t now)
{
    mdns_peer *p = find_peer(m, info->id);
    if (!p) {
        if (m->n_peers == IR_MDNS_MAX_PEERS)
            return; /* a flood of ids costs the sender, not our memory */
        if (m->n_peers == m->cap_peers) {
            size_t nc = m->cap_peers ? m->cap_peers * 2 : 8;
            mdns_peer *np = realloc(m->peers, nc * sizeof *np);
            if (!np)
                return;
            m->peers = np;
            m->cap_peers = nc;
        }
        p = &m->peers[m->n_peers++];
        m->swarm_size = m->n_peers;
    }
    memcpy(p->id, info->id, 32);
    p->info = *info;
    p->last_seen = now;
    push_event(m, IR_MDNS_EV_DISCOVERED, info);
}

static void gc(ir_mdns *m, uint64_t now)
{
    if (m->n_peers == 0)
        return;
    uint64_t n = m->n_peers;
    uint64_t grace = 3 * IR_MDNS_TAU_NS * n / (n < IR_MDNS_CUTOFF ? n : IR_MDNS_CUTOFF);
    size_t w = 0;
    for (size_t i = 0; i < m->n_peers; i++) {
        mdns_peer *p = &m->peers[i];
        uint64_t age = now > p->last_seen ? now - p->last_seen : 0;
        if (age < grace) {
            if (w != i)
                m->peers[w] = *p;
            w++;
        } else {
            push_event(m, IR_MDNS_EV_EXPIRED, &p->info);
        }
    }
    m->n_peers = w;
    m->swarm_size = w;
}

/* ---- messages ------------------------------------------------------------------------- */

static ldns_rdf *service_name(void)
{
    return ldns_dname_new_frm_str(IR_MDNS_SERVICE);
}

static ldns_rr *new_rr(const char *owner, ldns_rr_type type)
{
    ldns_rr *rr = ldns_rr_new();
    ldns_rdf *o = rr ? ldns_dname_new_frm_str(owner) : NULL;
    if (!o) {
        if (rr)
            ldns_rr_free(rr);
        return NULL;
    }
    ldns_rr_set_owner(rr, o);
    ldns_rr_set_type(rr, type);
    ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
    ldns_rr_set_ttl(rr, 0);
    return rr;
}

/* pushes rdf to rr, freeing rdf on failure; 0 or -1 */
static int push_rdf(ldns_rr *rr, ldns_rdf *rdf)
{
    if (!rdf)
        return -1;
    if (!ldns_rr_push_rdf(rr, rdf)) {
        ldns_rdf_deep_free(rdf);
        return -1;
    }
    return 0;
}

static int add_rr(ldns_pkt *pkt, ldns_pkt_section sec, ldns_rr *rr)
{
    if (!ldns_pkt_push_rr(pkt, sec, rr)) {
        ldns_rr_free(rr);
        return -1;
    }
    return 0;
}

static size_t write_pkt(ldns_pkt *pkt, uint8_t *out, size_t cap)
{
    uint8_t *wire = NULL;
    size_t n = 0;
    if (ldns_pkt2wire(&wire, pkt, &n) != LDNS_STATUS_OK)
        n = 0;
    if (n > cap)
        n = 0;
    if (n)
        memcpy(out, wire, n);
    free(wire);
    return n;
}

static size_t build_query(uint8_t *out, size_t cap)
{
    ldns_rdf *svc = service_name();
    if (!svc)
        return 0;
    ldns_pkt *q = ldns_pkt_query_new(svc, LDNS_RR_TYPE_PTR, LDNS_RR_CLASS_IN, 0);
    if (!q) {
        ldns_rdf_deep_free(svc);
        return 0;
    }
    ldns_pkt_set_id(q, 0);
    size_t n = write_pkt(q, out, cap);
    ldns_pkt_free(q);
    return n;
}

static int cmp_u16(const void *a, const void *b)
{
    uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
    return x < y ? -1 : x > y;
}

/* Our answer with the first n_addrs of our addresses; 0 when it cannot be built or does
 * not fit. */
static size_t build_answer_n(const ir_mdns *m, size_t n_addrs, uint8_t *out, size_t cap)
{
    const ir_endpoint_info *l = &m->local;
    ldns_pkt *pkt = ldns_pkt_new();
    if (!pkt)
        return 0;
    ldns_pkt_set_id(pkt, 0);
    ldns_pkt_set_qr(pkt, true);
    ldns_pkt_set_aa(pkt, true);
    char srv_name[128], target[128];
    snprintf(srv_name, sizeof srv_name, "%s.%s", m->label, IR_MDNS_SERVICE);
    /* the distinct ports, ascending */
    uint16_t ports[IR_ENDPOINT_INFO_MAX_ADDRS];
    size_t np = 0;
    for (size_t i = 0; i < n_addrs; i++)
        ports[np++] = l->addrs[i].port;
    qsort(ports, np, sizeof ports[0], cmp_u16);
    size_t nd = 0;
    for (size_t i = 0; i < np; i++)
        if (nd == 0 || ports[nd - 1] != ports[i])
            ports[nd++] = ports[i];
    int bad = 0;
    for (size_t pi = 0; pi < nd && !bad; pi++) {
        snprintf(target, sizeof target, "%s-%u.local.", m->label, (unsigned)ports[pi]);
        ldns_rr *srv = new_rr(srv_name, LDNS_RR_TYPE_SRV);
        if (!srv || push_rdf(srv, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, 0)) ||
            push_rdf(srv, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, 0)) ||
            push_rdf(srv, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, ports[pi])) ||
            push_rdf(srv, ldns_dname_new_frm_str(target))) {
            if (srv)
                ldns_rr_free(srv);
            bad = 1;
            break;
        }
        if (add_rr(pkt, LDNS_SECTION_ANSWER, srv)) { /* frees srv */
            bad = 1;
            break;
        }
        for (size_t i = 0; i < n_addrs && !bad; i++) {
            const iroh_socket_addr *a = &l->addrs[i];
            if (a->port != ports[pi])
                continue;
            int v4 = a->family == 4 || ir_ip6_is_v4_mapped(a->ip);
            ldns_rr *rr = new_rr(target, v4 ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA);
            const uint8_t *ip = a->family == 4 ? a->ip : v4 ? a->ip + 12 : a->ip;
            if (!rr || push_rdf(rr, ldns_rdf_new_frm_data(v4 ? LDNS_RDF_TYPE_A : LDNS_RDF_TYPE_AAAA,
                                                          v4 ? 4 : 16, ip))) {
                if (rr)
                    ldns_rr_free(rr);
                bad = 1;
            } else if (add_rr(pkt, LDNS_SECTION_ADDITIONAL, rr)) {
                bad = 1;
            }
        }
    }
    /* the TXT record: key=value strings sorted by key (relay < user-data), each at most
     * 254 bytes as swarm-discovery keeps them */
    char kv[2][IR_ENDPOINT_INFO_RELAY_MAX + 16];
    size_t nkv = 0;
    if (l->relay[0] && 6 + strlen(l->relay) <= 254)
        snprintf(kv[nkv++], sizeof kv[0], "relay=%s", l->relay);
    if (l->has_user_data && 10 + strlen(l->user_data) <= 254)
        snprintf(kv[nkv++], sizeof kv[0], "user-data=%s", l->user_data);
    if (!bad && nkv) {
        ldns_rr *txt = new_rr(srv_name, LDNS_RR_TYPE_TXT);
        if (!txt) {
            bad = 1;
        } else {
            for (size_t i = 0; i < nkv && !bad; i++) {
                uint8_t b[256];
                size_t len = strlen(kv[i]);
                b[0] = (uint8_t)len;
                memcpy(b + 1, kv[i], len);
                if (push_rdf(txt, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, len + 1, b)))
                    bad = 1;
            }
            if (bad)
                ldns_rr_free(txt);
            else if (add_rr(pkt, LDNS_SECTION_ANSWER, txt))
                bad = 1;
        }
    }
    size_t n = bad ? 0 : write_pkt(pkt, out, cap);
    ldns_pkt_free(pkt);
    return n;
}

static size_t build_answer(const ir_mdns *m, uint8_t *out, size_t cap)
{
    /* too many addresses for one datagram: announce the first ones that fit */
    for (size_t n = m->local.n_addrs; n > 0; n--) {
        size_t len = build_answer_n(m, n, out, cap);
        if (len)
            return len;
    }
    return 0;
}

size_t ir_mdns_poll_send(ir_mdns *m, uint8_t *out, size_t cap, ir_mdns_dest *dest)
{
    if (!m || !out || !dest)
        return 0;
    while (m->want_query || m->want_answer) {
        size_t n;
        if (m->want_query) {
            m->want_query = 0;
            *dest = IR_MDNS_TO_ANY;
            n = build_query(out, cap);
        } else {
            m->want_answer = 0;
            *dest = m->answer_dest;
            n = build_answer(m, out, cap);
        }
        if (n)
            return n;
    }
    return 0;
}

void ir_mdns_handle_timeout(ir_mdns *m, uint64_t now)
{
    if (!m)
        return;
    if (now >= m->gc_at) {
        gc(m, now);
        m->gc_at = now + IR_MDNS_GC_NS;
    }
    if (now < m->timer)
        return;
    if (m->phase == PHASE_QUERY) {
        m->want_query = 1;
        enter_answer(m, IR_MDNS_TO_ANY, now);
    } else {
        if (m->local.n_addrs > 0) {
            m->want_answer = 1;
            m->answer_dest = m->mode;
            m->has_responded = 1;
        }
        enter_query(m, now);
    }
}

/* ---- reading ------------------------------------------------------------------------- */

/* 1 if the name is <one label>.<base> (base given as an rdf) */
static int under(const ldns_rdf *name, const ldns_rdf *base)
{
    if (ldns_dname_label_count(name) != ldns_dname_label_count(base) + 1)
        return 0;
    ldns_rdf *chopped = ldns_dname_left_chop(name);
    if (!chopped)
        return 0;
    int r = ldns_dname_compare(chopped, base) == 0;
    ldns_rdf_deep_free(chopped);
    return r;
}

/* the first label as a NUL-terminated string (at most 63 bytes) */
static int first_label(const ldns_rdf *name, char *out, size_t cap)
{
    const uint8_t *d = ldns_rdf_data(name);
    size_t sz = ldns_rdf_size(name);
    if (sz < 1 || d[0] == 0 || (size_t)d[0] + 1 > sz || (size_t)d[0] + 1 > cap)
        return -1;
    memcpy(out, d + 1, d[0]);
    out[d[0]] = 0;
    return memchr(out, 0, d[0]) ? -1 : 0;
}

typedef struct rx_peer {
    char label[64];
    ir_endpoint_info info;
    int seen_relay, seen_user_data;
    int valid;
} rx_peer;

#define RX_MAX_PEERS 16 /* peers one datagram may describe */
#define RX_MAX_SRV 64

typedef struct rx_srv {
    const ldns_rdf *target;
    uint16_t port;
    size_t peer;
} rx_srv;

static size_t rx_peer_index(rx_peer *peers, size_t *n, const char *label)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(peers[i].label, label) == 0)
            return i;
    if (*n == RX_MAX_PEERS)
        return (size_t)-1;
    rx_peer *p = &peers[*n];
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    uint8_t id[32];
    iroh_endpoint_id eid;
    p->valid = ir_key_text_decode(label, id) == 0 && iroh_endpoint_id_from_bytes(id, &eid) == 0;
    if (p->valid)
        memcpy(p->info.id, id, 32);
    return (*n)++;
}

static void rx_txt(rx_peer *p, const ldns_rr *rr)
{
    for (size_t i = 0; i < ldns_rr_rd_count(rr); i++) {
        const ldns_rdf *rd = ldns_rr_rdf(rr, i);
        const uint8_t *d = ldns_rdf_data(rd);
        size_t sz = ldns_rdf_size(rd);
        if (ldns_rdf_get_type(rd) != LDNS_RDF_TYPE_STR || sz < 2 || (size_t)d[0] + 1 != sz)
            continue;
        const uint8_t *s = d + 1;
        size_t len = sz - 1;
        if (!ir_utf8_valid(s, len) || memchr(s, 0, len))
            continue;
        const uint8_t *eq = memchr(s, '=', len);
        size_t klen = eq ? (size_t)(eq - s) : len;
        const char *v = eq ? (const char *)eq + 1 : NULL;
        size_t vlen = eq ? len - klen - 1 : 0;
        char val[256];
        if (v) {
            memcpy(val, v, vlen);
            val[vlen] = 0;
        }
        /* the first occurrence of a key counts */
        if (klen == 5 && memcmp(s, "relay", 5) == 0) {
            if (p->seen_relay++)
                continue;
            char url[IR_ENDPOINT_INFO_RELAY_MAX];
            if (v && iroh_relay_url_normalize(val, url, sizeof url) == IROH_OK)
                memcpy(p->info.relay, url, sizeof url);
        } else if (klen == 9 && memcmp(s, "user-data", 9) == 0) {
            if (p->seen_user_data++)
                continue;
            if (v && vlen <= IR_ENDPOINT_INFO_USER_DATA_MAX) {
                memcpy(p->info.user_data, val, vlen + 1);
                p->info.has_user_data = 1;
            }
        }
    }
}

static int cmp_addr(const void *a, const void *b)
{
    const iroh_socket_addr *x = a, *y = b;
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    int c = memcmp(x->ip, y->ip, x->family == 4 ? 4 : 16);
    if (c)
        return c;
    return x->port < y->port ? -1 : x->port > y->port;
}

static void rx_addr(rx_peer *p, const iroh_socket_addr *a)
{
    for (size_t i = 0; i < p->info.n_addrs; i++)
        if (cmp_addr(&p->info.addrs[i], a) == 0)
            return;
    if (p->info.n_addrs < IR_ENDPOINT_INFO_MAX_ADDRS)
        p->info.addrs[p->info.n_addrs++] = *a;
}

void ir_mdns_recv(ir_mdns *m, const uint8_t *msg, size_t len, int family, uint64_t now)
{
    if (!m || !msg || len > 65535)
        return;
    ldns_pkt *pkt = NULL;
    if (ldns_wire2pkt(&pkt, msg, len) != LDNS_STATUS_OK)
        return;
    ldns_rdf *svc = service_name();
    ldns_rdf *local = ldns_dname_new_frm_str("local.");
    rx_peer *peers = calloc(RX_MAX_PEERS, sizeof *peers);
    if (!svc || !local || !peers)
        goto done;
    /* a query for our service: swarm-discovery looks no further */
    ldns_rr_list *qd = ldns_pkt_question(pkt);
    for (size_t i = 0; qd && i < ldns_rr_list_rr_count(qd); i++) {
        const ldns_rr *q = ldns_rr_list_rr(qd, i);
        if (ldns_rr_get_class(q) == LDNS_RR_CLASS_IN && ldns_rr_get_type(q) == LDNS_RR_TYPE_PTR &&
            ldns_rr_owner(q) && ldns_dname_compare(ldns_rr_owner(q), svc) == 0) {
            if (m->phase == PHASE_QUERY)
                enter_answer(m, family == 6 ? IR_MDNS_TO_V6 : IR_MDNS_TO_V4, now);
            goto done;
        }
    }
    /* answers: SRV and TXT of <label>._irohv1._udp.local. */
    size_t n_peers = 0, n_srv = 0;
    rx_srv srv[RX_MAX_SRV];
    ldns_rr_list *an = ldns_pkt_answer(pkt);
    for (size_t i = 0; an && i < ldns_rr_list_rr_count(an); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(an, i);
        if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN || !ldns_rr_owner(rr) ||
            !under(ldns_rr_owner(rr), svc))
            continue;
        char label[64];
        if (first_label(ldns_rr_owner(rr), label, sizeof label) ||
            !ir_utf8_valid((const uint8_t *)label, strlen(label)))
            continue;
        ldns_rr_type t = ldns_rr_get_type(rr);
        if (t != LDNS_RR_TYPE_SRV && t != LDNS_RR_TYPE_TXT)
            continue;
        size_t pi = rx_peer_index(peers, &n_peers, label);
        if (pi == (size_t)-1)
            continue;
        if (t == LDNS_RR_TYPE_SRV) {
            if (ldns_rr_rd_count(rr) != 4 || n_srv == RX_MAX_SRV ||
                ldns_rdf_get_type(ldns_rr_rdf(rr, 3)) != LDNS_RDF_TYPE_DNAME ||
                ldns_rdf_size(ldns_rr_rdf(rr, 2)) != 2)
                continue;
            srv[n_srv].target = ldns_rr_rdf(rr, 3);
            srv[n_srv].port = ldns_rdf2native_int16(ldns_rr_rdf(rr, 2));
            srv[n_srv].peer = pi;
            n_srv++;
        } else {
            rx_txt(&peers[pi], rr);
        }
    }
    /* additionals: A / AAAA of <target>.local. */
    ldns_rr_list *ar = ldns_pkt_additional(pkt);
    for (size_t i = 0; ar && i < ldns_rr_list_rr_count(ar); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(ar, i);
        if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN || !ldns_rr_owner(rr) ||
            !under(ldns_rr_owner(rr), local) || ldns_rr_rd_count(rr) != 1)
            continue;
        const ldns_rdf *rd = ldns_rr_rdf(rr, 0);
        iroh_socket_addr a;
        memset(&a, 0, sizeof a);
        if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_A && ldns_rdf_size(rd) == 4) {
            a.family = 4;
            memcpy(a.ip, ldns_rdf_data(rd), 4);
        } else if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_AAAA && ldns_rdf_size(rd) == 16) {
            a.family = 6;
            memcpy(a.ip, ldns_rdf_data(rd), 16);
        } else {
            continue;
        }
        for (size_t s = 0; s < n_srv; s++) {
            if (ldns_dname_compare(ldns_rr_owner(rr), srv[s].target) != 0)
                continue;
            a.port = srv[s].port;
            rx_addr(&peers[srv[s].peer], &a);
        }
    }
    /* peers with addresses are reported; they count towards the answers heard */
    unsigned answered = 0;
    for (size_t i = 0; i < n_peers; i++) {
        rx_peer *p = &peers[i];
        if (p->info.n_addrs == 0)
            continue;
        answered++;
        if (!p->valid)
            continue;
        qsort(p->info.addrs, p->info.n_addrs, sizeof p->info.addrs[0], cmp_addr);
        heard_peer(m, &p->info, now);
    }
    if (m->phase == PHASE_ANSWER) {
        m->response_count += answered;
        if (m->response_count >= IR_MDNS_CUTOFF)
            enter_query(m, now);
    }
done:
    free(peers);
    if (svc)
        ldns_rdf_deep_free(svc);
    if (local)
        ldns_rdf_deep_free(local);
    ldns_pkt_free(pkt);
}
