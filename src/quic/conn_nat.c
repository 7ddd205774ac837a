/* n0's NAT traversal (QNT, spec quic-tls.md 4) and iroh's path policy (3.5, 4.4) inside
 * the connection; the calls are described in conn_nat.h.
 *
 * The state is allocated when first needed (QNT frames, our candidates, the policy once
 * multipath is on) and is bounded: IR_NAT_MAX_ADDRS candidates each way, one probe entry
 * per probed address, a few queued answers (the paths it opens wait in the connection's
 * bounded queue, ir_conn_add_path). A peer's frames cost it bytes, never our memory:
 * excess ADD_ADDRESS frames are ignored, a REACH_OUT over our limit closes the
 * connection, and answers to its probes beyond the queue drop the oldest. */

#include <stdlib.h>
#include <string.h>

#include "base/addr.h"
#include "quic/conn_internal.h"
#include "quic/path_select.h"

enum { L_FREE = 0, L_NEW, L_ADV, L_GONE };

/* one of our own candidates. Client: L_NEW while it is in the set. Server: L_NEW not
 * advertised yet (the peer's limit is reached, or QNT is not negotiated yet), L_ADV
 * advertised with ADD_ADDRESS seq, L_GONE removed: REMOVE_ADDRESS seq until acknowledged */
typedef struct nat_local {
    iroh_socket_addr a;
    uint64_t seq;
    uint8_t state;
    uint8_t pending; /* its ADD_ADDRESS / REMOVE_ADDRESS is to be sent */
} nat_local;

/* client: an address the server advertised */
typedef struct nat_remote {
    iroh_socket_addr a;
    uint64_t seq;
} nat_remote;

/* client: a REACH_OUT of the round: our candidate, and whether the frame is to be sent */
typedef struct nat_reach {
    iroh_socket_addr a;
    uint8_t pending;
} nat_reach;

/* an address probed in the current round (or, client, one we challenged in an answer to
 * the peer's probe: remaining 0, never sent on its own) */
typedef struct nat_probe {
    ir_netaddr to;
    uint8_t remaining; /* sendings left after the pending one */
    uint8_t pending;   /* a probe is to be sent */
    uint8_t succeeded; /* answered from this address */
    uint8_t nchal;     /* challenges sent this round (a ring of the newest) */
    uint8_t chal[IR_NAT_PROBE_TRIES][8];
} nat_probe;

/* an answer to a probe of the peer: PATH_RESPONSE on the path it came on, to its source */
typedef struct nat_resp {
    uint8_t data[8];
    ir_netaddr to;
    uint64_t path_id;
} nat_resp;

#define NAT_LOCAL_SLOTS (2 * IR_NAT_MAX_ADDRS)
#define NAT_PROBES (IR_NAT_MAX_ADDRS + 8)
#define NAT_RESP 8
#define NAT_RELAYS 4

/* The tables below grow with use (table_grow), up to the bound in the comment: an idle
 * connection with a few candidates each way holds a few entries, not the bounds' 11 KiB. */
struct ir_nat {
    nat_local *local; /* slots (L_FREE ones are free): caplocal, at most NAT_LOCAL_SLOTS */
    size_t caplocal;
    uint64_t next_seq; /* server: the next ADD_ADDRESS sequence number */
    nat_remote *remote; /* at most IR_NAT_MAX_ADDRS */
    size_t nremote, capremote;

    /* the round: client ours, server the peer's newest */
    uint64_t round;
    nat_reach *reach; /* client: the round's REACH_OUT frames (at most IR_NAT_MAX_ADDRS) */
    size_t nreach, capreach;
    nat_probe *probe; /* at most NAT_PROBES */
    size_t nprobe, capprobe;
    unsigned attempt;  /* sendings of the round's probes so far, less one */
    uint64_t retry_at; /* the next sending (UINT64_MAX: none) */

    nat_resp *resp; /* at most NAT_RESP */
    size_t nresp, capresp;

    /* client: iroh's round triggers */
    int started;         /* the handshake is confirmed: rounds may run */
    int trigger_due;     /* the server's candidates changed */
    uint64_t round_at;   /* a trigger scheduled (5 s after the last round, or 100 ms) */
    uint64_t upgrade_at; /* the next 60 s check */
    int have_last;
    uint64_t last_round_at;
    iroh_socket_addr *last_local, *last_remote; /* at most IR_NAT_MAX_ADDRS each */
    size_t nlast_local, nlast_remote, caplast_local, caplast_remote;

    /* the policy */
    int relay_checked; /* client: the relay path was considered */
    ir_netaddr relays[NAT_RELAYS];
    size_t nrelays;
    int policy_started;
    uint64_t selected; /* UINT64_MAX: none */
    uint64_t sig;      /* the usable paths at the last selection */
};

/* ---- small helpers ------------------------------------------------------------------------- */

static ir_nat *nat_get(ir_conn *c)
{
    if (c->nat)
        return c->nat;
    if (c->nat_nomem)
        return NULL;
    ir_nat *n = calloc(1, sizeof *n);
    if (!n) {
        c->nat_nomem = 1;
        return NULL;
    }
    n->retry_at = n->round_at = n->upgrade_at = UINT64_MAX;
    n->selected = UINT64_MAX;
    c->nat = n;
    return n;
}

void ir_nat_free(ir_conn *c)
{
    ir_nat *n = c->nat;
    if (n) {
        free(n->local);
        free(n->remote);
        free(n->reach);
        free(n->probe);
        free(n->resp);
        free(n->last_local);
        free(n->last_remote);
    }
    free(n);
    c->nat = NULL;
}

size_t ir_nat_state_bytes(const ir_conn *c)
{
    const ir_nat *n = c->nat;
    if (!n)
        return 0;
    return sizeof *n + n->caplocal * sizeof *n->local + n->capremote * sizeof *n->remote +
           n->capreach * sizeof *n->reach + n->capprobe * sizeof *n->probe +
           n->capresp * sizeof *n->resp +
           (n->caplast_local + n->caplast_remote) * sizeof(iroh_socket_addr);
}

/* Makes room for `need` entries of `size` bytes in the table tab (capacity *cap), at most
 * `max`: doubling from 4, new entries zeroed. Returns the table (moved, or tab unchanged
 * when over max or out of memory: then *cap < need). */
static void *table_grow(void *tab, size_t *cap, size_t need, size_t max, size_t size)
{
    if (need <= *cap || need > max)
        return tab;
    size_t ncap = *cap ? *cap : 4;
    while (ncap < need)
        ncap *= 2;
    if (ncap > max)
        ncap = max;
    uint8_t *t = realloc(tab, ncap * size);
    if (!t)
        return tab;
    memset(t + *cap * size, 0, (ncap - *cap) * size);
    *cap = ncap;
    return t;
}
/* 0 when n->field has room for need entries (grown if it had not), else -1 */
#define TABLE_GROW(n, field, capfield, need, max)                                              \
    (((n)->field = table_grow((n)->field, &(n)->capfield, (need), (max), sizeof *(n)->field)), \
     (need) <= (n)->capfield ? 0 : -1)

/* an IPv4-mapped IPv6 address as IPv4; 0, or -1 for another family than 4 or 6 */
static int canonical(iroh_socket_addr *out, const iroh_socket_addr *in)
{
    memset(out, 0, sizeof *out);
    if (in->family == 4) {
        out->family = 4;
        memcpy(out->ip, in->ip, 4);
    } else if (in->family == 6 && ir_ip6_is_v4_mapped(in->ip)) {
        out->family = 4;
        memcpy(out->ip, in->ip + 12, 4);
    } else if (in->family == 6) {
        out->family = 6;
        memcpy(out->ip, in->ip, 16);
    } else {
        return -1;
    }
    out->port = in->port;
    return 0;
}

static int sa_eq(const iroh_socket_addr *a, const iroh_socket_addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16) == 0;
}

static int sa_in(const iroh_socket_addr *a, const iroh_socket_addr *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (sa_eq(a, &set[i]))
            return 1;
    return 0;
}

/* the path address of a candidate (the endpoint's UDP encoding, net/netaddr.h) */
static void to_netaddr(ir_netaddr *out, const iroh_socket_addr *a)
{
    ir_netaddr_from_socket_addr(out, a);
}

static void frame_addr(ir_frame *f, uint64_t v4type, uint64_t v6type, uint64_t seq,
                       const iroh_socket_addr *a)
{
    memset(f, 0, sizeof *f);
    f->type = a->family == 4 ? v4type : v6type;
    f->u.addr.seq = seq;
    memcpy(f->u.addr.ip, a->ip, a->family == 4 ? 4 : 16);
    f->u.addr.port = a->port;
}

static void addr_of_frame(iroh_socket_addr *out, const ir_frame *f, int v6)
{
    iroh_socket_addr raw;
    memset(&raw, 0, sizeof raw);
    raw.family = v6 ? 6 : 4;
    memcpy(raw.ip, f->u.addr.ip, v6 ? 16 : 4);
    raw.port = f->u.addr.port;
    canonical(out, &raw);
}

static unsigned peer_limit(const ir_conn *c)
{
    return c->peer_tp_ok ? c->peer_tp.nat_traversal : 0;
}

/* the number of addresses the peer may give us (our transport parameter) */
static unsigned own_limit(const ir_conn *c)
{
    return c->cfg.tp.nat_traversal;
}

int ir_conn_nat_traversal(const ir_conn *c)
{
    return c->cfg.tp.nat_traversal && c->peer_tp_ok && c->peer_tp.nat_traversal &&
           ir_conn_multipath(c);
}

/* iroh's policy runs: multipath is on and our config offers NAT traversal */
static int policy_active(const ir_conn *c)
{
    return c->cfg.tp.nat_traversal && ir_conn_multipath(c) && c->state == IR_CONN_ESTABLISHED;
}

/* a direct (IP) path address: addr_of turns it into an IP address; anything else (a
 * relay path, or any path without addr_of) is not direct */
static int is_direct(const ir_conn *c, const ir_netaddr *a, iroh_socket_addr *ip)
{
    iroh_socket_addr tmp;
    return c->cfg.addr_of && c->cfg.addr_of(a, ip ? ip : &tmp) == 0;
}

static qpath *path_by_id(ir_conn *c, uint64_t id)
{
    qpath *p = ir_conn_path_by_id(c, id);
    return p && p->state == PS_OPEN ? p : NULL;
}

/* a validated path (not abandoned) to addr */
static int validated_path_to(const ir_conn *c, const ir_netaddr *addr)
{
    ir_conn_path_info info[IR_CONN_MAX_PATHS];
    size_t n = ir_conn_paths(c, info, IR_CONN_MAX_PATHS);
    for (size_t i = 0; i < n && i < IR_CONN_MAX_PATHS; i++)
        if (info[i].validated && !info[i].abandoned && ir_netaddr_eq(&info[i].addr, addr))
            return 1;
    return 0;
}

/* ---- our candidates ------------------------------------------------------------------------ */

static size_t local_count(const ir_nat *n, int state)
{
    size_t k = 0;
    for (size_t i = 0; i < n->caplocal; i++)
        k += n->local[i].state == state;
    return k;
}

static nat_local *local_find(ir_nat *n, const iroh_socket_addr *a)
{
    for (size_t i = 0; i < n->caplocal; i++)
        if ((n->local[i].state == L_NEW || n->local[i].state == L_ADV) && sa_eq(&n->local[i].a, a))
            return &n->local[i];
    return NULL;
}

/* a slot for a new candidate: a free one, else a new one (the table grows), else a
 * removal (one already sent first) */
static nat_local *local_slot(ir_nat *n)
{
    nat_local *gone = NULL;
    for (size_t i = 0; i < n->caplocal; i++) {
        nat_local *l = &n->local[i];
        if (l->state == L_FREE)
            return l;
        if (l->state == L_GONE && (!gone || (gone->pending && !l->pending)))
            gone = l;
    }
    size_t used = n->caplocal;
    if (TABLE_GROW(n, local, caplocal, used + 1, NAT_LOCAL_SLOTS) == 0)
        return &n->local[used];
    return gone;
}

/* server: the addresses the peer may hold of ours: advertised, and removed with the
 * REMOVE_ADDRESS not yet acknowledged (until then an ADD_ADDRESS in its place could reach
 * the peer first and be ignored as over its limit) */
static size_t peer_held(const ir_nat *n)
{
    return local_count(n, L_ADV) + local_count(n, L_GONE);
}

/* server: advertises waiting candidates as far as the peer's limit allows */
static void advertise(ir_conn *c, ir_nat *n)
{
    if (!c->is_server || !ir_conn_nat_traversal(c))
        return;
    size_t adv = peer_held(n);
    for (size_t i = 0; i < n->caplocal && adv < peer_limit(c); i++) {
        nat_local *l = &n->local[i];
        if (l->state != L_NEW)
            continue;
        l->state = L_ADV;
        l->seq = n->next_seq++;
        l->pending = 1;
        adv++;
    }
}

static void trigger(ir_conn *c, ir_nat *n, uint64_t now);

int ir_conn_set_local_addrs(ir_conn *c, const iroh_socket_addr *addrs, size_t count, uint64_t now)
{
    iroh_socket_addr set[IR_NAT_MAX_ADDRS];
    size_t ns = 0;
    for (size_t i = 0; i < count; i++) {
        iroh_socket_addr a;
        if (canonical(&a, &addrs[i]) != 0)
            return IR_QUIC_STREAM_ERR;
        if (ns < IR_NAT_MAX_ADDRS && !sa_in(&a, set, ns))
            set[ns++] = a;
    }
    /* without NAT traversal offered the addresses have no use (no QNT frame, no policy):
     * no state is made for them (11 KiB a connection) */
    if (!c->cfg.tp.nat_traversal)
        return IR_QUIC_OK;
    ir_nat *n = nat_get(c);
    if (!n)
        return IR_QUIC_NO_MEMORY;
    c->now = now;
    /* gone from the set: forgotten (client, or never advertised), or REMOVE_ADDRESS */
    for (size_t i = 0; i < n->caplocal; i++) {
        nat_local *l = &n->local[i];
        if ((l->state != L_NEW && l->state != L_ADV) || sa_in(&l->a, set, ns))
            continue;
        if (l->state == L_ADV) {
            l->state = L_GONE;
            l->pending = 1;
        } else {
            l->state = L_FREE;
        }
    }
    for (size_t i = 0; i < ns; i++) {
        if (local_find(n, &set[i]))
            continue;
        nat_local *l = local_slot(n);
        if (!l)
            break; /* no memory (with it, IR_NAT_MAX_ADDRS current ones always fit) */
        memset(l, 0, sizeof *l);
        l->a = set[i];
        l->state = L_NEW;
    }
    advertise(c, n);
    if (!c->is_server && n->started && ir_conn_nat_traversal(c))
        trigger(c, n, now);
    return IR_QUIC_OK;
}

/* ---- rounds and probes ---------------------------------------------------------------------- */

/* the gap before the next sending once `attempt` sendings were made (noq retry_delay) */
static uint64_t probe_gap(unsigned attempt)
{
    uint64_t gap;
    if (attempt == 0)
        gap = IR_NAT_PROBE_BASE_NS;
    else
        gap = IR_NAT_PROBE_BASE_NS << ((attempt < 8 ? attempt : 8) - 1);
    return gap < IR_NAT_PROBE_MAX_GAP_NS ? gap : IR_NAT_PROBE_MAX_GAP_NS;
}

static nat_probe *probe_find(ir_nat *n, const ir_netaddr *to)
{
    for (size_t i = 0; i < n->nprobe; i++)
        if (ir_netaddr_eq(&n->probe[i].to, to))
            return &n->probe[i];
    return NULL;
}

static nat_probe *probe_add(ir_nat *n, const ir_netaddr *to, int probing)
{
    if (TABLE_GROW(n, probe, capprobe, n->nprobe + 1, NAT_PROBES) != 0)
        return NULL;
    nat_probe *p = &n->probe[n->nprobe++];
    memset(p, 0, sizeof *p);
    p->to = *to;
    if (probing) {
        p->pending = 1;
        p->remaining = IR_NAT_PROBE_TRIES - 1;
    }
    return p;
}

static void probe_record(nat_probe *p, const uint8_t data[8])
{
    if (p->nchal == IR_NAT_PROBE_TRIES) {
        memmove(p->chal[0], p->chal[1], (IR_NAT_PROBE_TRIES - 1) * 8);
        p->nchal--;
    }
    memcpy(p->chal[p->nchal++], data, 8);
}

static void arm_retry(ir_nat *n, uint64_t now)
{
    int any = 0;
    for (size_t i = 0; i < n->nprobe; i++)
        any |= !n->probe[i].succeeded && n->probe[i].remaining > 0;
    n->retry_at = any ? now + probe_gap(n->attempt) : UINT64_MAX;
}

/* the retry timer: another probe to each address not answered with sendings left */
static void queue_retries(ir_nat *n, uint64_t now)
{
    n->attempt++;
    for (size_t i = 0; i < n->nprobe; i++) {
        nat_probe *p = &n->probe[i];
        if (!p->succeeded && p->remaining > 0) {
            p->remaining--;
            p->pending = 1;
        }
    }
    arm_retry(n, now);
}

/* client: a new round: REACH_OUT for our candidates, probes of the server's */
static int do_round(ir_conn *c, ir_nat *n, uint64_t now)
{
    size_t nl = 0;
    iroh_socket_addr mine[IR_NAT_MAX_ADDRS];
    for (size_t i = 0; i < n->caplocal && nl < IR_NAT_MAX_ADDRS; i++)
        if (n->local[i].state == L_NEW)
            mine[nl++] = n->local[i].a;
    if (nl == 0) {
        n->round_at = now + IR_NAT_NO_LOCAL_RETRY_NS;
        return IR_QUIC_AGAIN;
    }
    n->round++;
    n->attempt = 0;
    n->nreach = 0;
    for (size_t i = 0; i < nl && n->nreach < peer_limit(c); i++) {
        if (TABLE_GROW(n, reach, capreach, n->nreach + 1, IR_NAT_MAX_ADDRS) != 0)
            break; /* no memory: the round goes with fewer */
        n->reach[n->nreach].a = mine[i];
        n->reach[n->nreach++].pending = 1;
    }
    n->nprobe = 0;
    for (size_t i = 0; i < n->nremote; i++) {
        ir_netaddr to;
        to_netaddr(&to, &n->remote[i].a);
        if (!probe_find(n, &to))
            probe_add(n, &to, 1);
    }
    arm_retry(n, now);
    n->have_last = 1;
    n->last_round_at = now;
    /* (no memory: what fits is remembered, the rest counts as new at the next trigger) */
    n->nlast_local = TABLE_GROW(n, last_local, caplast_local, nl, IR_NAT_MAX_ADDRS) == 0 ? nl : 0;
    memcpy(n->last_local, mine, n->nlast_local * sizeof mine[0]);
    n->nlast_remote = 0;
    if (TABLE_GROW(n, last_remote, caplast_remote, n->nremote, IR_NAT_MAX_ADDRS) == 0)
        for (size_t i = 0; i < n->nremote; i++)
            n->last_remote[n->nlast_remote++] = n->remote[i].a;
    n->round_at = UINT64_MAX;
    return IR_QUIC_OK;
}

/* iroh's trigger_holepunching: a round now if there are new candidates on either side or
 * the last round is 5 s old, else one scheduled for then */
static void trigger(ir_conn *c, ir_nat *n, uint64_t now)
{
    int fresh = !n->have_last;
    for (size_t i = 0; !fresh && i < n->caplocal; i++)
        fresh = n->local[i].state == L_NEW && !sa_in(&n->local[i].a, n->last_local, n->nlast_local);
    for (size_t i = 0; !fresh && i < n->nremote; i++)
        fresh = !sa_in(&n->remote[i].a, n->last_remote, n->nlast_remote);
    if (!fresh && now < n->last_round_at + IR_NAT_ROUND_INTERVAL_NS) {
        n->round_at = n->last_round_at + IR_NAT_ROUND_INTERVAL_NS;
        return;
    }
    do_round(c, n, now);
}

int ir_conn_holepunch(ir_conn *c, uint64_t now)
{
    if (c->is_server || !ir_conn_nat_traversal(c) || c->state != IR_CONN_ESTABLISHED)
        return IR_QUIC_STREAM_ERR;
    ir_nat *n = nat_get(c);
    if (!n)
        return IR_QUIC_NO_MEMORY;
    c->now = now;
    return do_round(c, n, now);
}

uint64_t ir_conn_nat_round(const ir_conn *c)
{
    return c->nat ? c->nat->round : 0;
}

size_t ir_conn_nat_remote_addrs(const ir_conn *c, iroh_socket_addr *out, size_t cap)
{
    if (!c->nat)
        return 0;
    for (size_t i = 0; i < c->nat->nremote && i < cap; i++)
        out[i] = c->nat->remote[i].a;
    return c->nat->nremote;
}

uint64_t ir_conn_nat_selected(const ir_conn *c)
{
    return c->nat ? c->nat->selected : UINT64_MAX;
}

/* ---- frames in --------------------------------------------------------------------------------- */

static int violation(ir_conn *c, const char *why)
{
    ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, why);
    return -1;
}

static int reach_out(ir_conn *c, ir_nat *n, const ir_frame *f)
{
    uint64_t round = f->u.addr.seq;
    if (round < n->round)
        return 0; /* an older round */
    iroh_socket_addr a;
    addr_of_frame(&a, f, f->type == IR_FT_REACH_OUT_V6);
    ir_netaddr to;
    to_netaddr(&to, &a);
    if (round > n->round) {
        /* a newer round replaces the probes of the last */
        n->round = round;
        n->attempt = 0;
        n->nprobe = 0;
        probe_add(n, &to, 1);
        arm_retry(n, c->now);
        return 0;
    }
    if (probe_find(n, &to))
        return 0; /* sent again */
    if (n->nprobe >= own_limit(c))
        return violation(c, "REACH_OUT: more addresses in a round than allowed");
    probe_add(n, &to, 1); /* (beyond the table, IR_NAT_MAX_ADDRS: ignored) */
    if (n->retry_at == UINT64_MAX)
        arm_retry(n, c->now);
    return 0;
}

static void add_address(ir_conn *c, ir_nat *n, const ir_frame *f)
{
    iroh_socket_addr a;
    addr_of_frame(&a, f, f->type == IR_FT_ADD_ADDRESS_V6);
    for (size_t i = 0; i < n->nremote; i++) {
        nat_remote *r = &n->remote[i];
        if (r->seq != f->u.addr.seq)
            continue;
        if (!sa_eq(&r->a, &a)) {
            r->a = a; /* another address under a known number: the newer one counts */
            n->trigger_due = 1;
        }
        return;
    }
    size_t limit = own_limit(c) < IR_NAT_MAX_ADDRS ? own_limit(c) : IR_NAT_MAX_ADDRS;
    if (n->nremote >= limit || TABLE_GROW(n, remote, capremote, n->nremote + 1, limit) != 0)
        return; /* beyond our limit (or no memory): ignored */
    n->remote[n->nremote].a = a;
    n->remote[n->nremote++].seq = f->u.addr.seq;
    n->trigger_due = 1;
}

static void remove_address(ir_nat *n, uint64_t seq)
{
    for (size_t i = 0; i < n->nremote; i++) {
        if (n->remote[i].seq != seq)
            continue;
        ir_netaddr to;
        to_netaddr(&to, &n->remote[i].a);
        nat_probe *p = probe_find(n, &to);
        if (p)
            p->remaining = p->pending = 0; /* no more probes there */
        n->remote[i] = n->remote[--n->nremote];
        n->trigger_due = 1;
        return;
    }
}

int ir_nat_frame(ir_conn *c, const ir_frame *f)
{
    int server_frame = f->type == IR_FT_ADD_ADDRESS_V4 || f->type == IR_FT_ADD_ADDRESS_V6 ||
                       f->type == IR_FT_REMOVE_ADDRESS;
    if (server_frame && c->is_server)
        return violation(c, "ADD_ADDRESS / REMOVE_ADDRESS from a client");
    if (!server_frame && !c->is_server)
        return violation(c, "REACH_OUT from a server");
    ir_nat *n = nat_get(c);
    if (!n)
        return 0; /* no memory for the state: the frame is lost, nothing else */
    if (f->type == IR_FT_REMOVE_ADDRESS) {
        remove_address(n, f->u.remove_seq);
        return 0;
    }
    if (server_frame) {
        add_address(c, n, f);
        return 0;
    }
    return reach_out(c, n, f);
}

int ir_nat_path_challenge(ir_conn *c, qpath *path, const uint8_t data[8], const ir_netaddr *from)
{
    if (!ir_conn_nat_traversal(c) || ir_netaddr_eq(from, &path->addr))
        return 0; /* RFC 9000 probing (conn_path.c) */
    /* off-path: a NAT traversal probe, answered once the handshake is confirmed, without
     * moving the path */
    ir_nat *n = c->handshake_confirmed ? nat_get(c) : NULL;
    if (!n)
        return 1;
    if (TABLE_GROW(n, resp, capresp, n->nresp + 1, NAT_RESP) != 0) {
        if (!n->nresp)
            return 1; /* no memory: not answered */
        /* full: the oldest is dropped */
        memmove(&n->resp[0], &n->resp[1], (n->nresp - 1) * sizeof n->resp[0]);
        n->nresp--;
    }
    nat_resp *r = &n->resp[n->nresp++];
    memcpy(r->data, data, 8);
    r->to = *from;
    r->path_id = path->id;
    return 1;
}

int ir_nat_path_response(ir_conn *c, const uint8_t data[8], const ir_netaddr *from)
{
    ir_nat *n = c->nat;
    if (!n)
        return 0;
    for (size_t i = 0; i < n->nprobe; i++) {
        nat_probe *p = &n->probe[i];
        for (unsigned k = 0; k < p->nchal; k++) {
            if (memcmp(p->chal[k], data, 8) != 0)
                continue;
            if (!ir_netaddr_eq(from, &p->to))
                return 0; /* from elsewhere: not a success */
            memmove(p->chal[k], p->chal[k + 1], (size_t)(p->nchal - k - 1) * 8);
            p->nchal--;
            p->succeeded = 1;
            p->pending = 0;
            p->remaining = 0;
            if (!c->is_server) /* a path there (Backup), once the connection can */
                (void)ir_conn_add_path(c, from, c->now);
            return 1;
        }
    }
    return 0;
}

/* ---- frames out ------------------------------------------------------------------------------- */

int ir_nat_frames_pending(const ir_conn *c)
{
    const ir_nat *n = c->nat;
    if (!n || !ir_conn_nat_traversal(c))
        return 0;
    if (c->is_server) {
        size_t held = 0, waiting = 0;
        for (size_t i = 0; i < n->caplocal; i++) {
            const nat_local *l = &n->local[i];
            if ((l->state == L_ADV || l->state == L_GONE) && l->pending)
                return 1;
            held += l->state == L_ADV || l->state == L_GONE; /* as peer_held */
            waiting += l->state == L_NEW;
        }
        return waiting && held < peer_limit(c);
    }
    for (size_t i = 0; i < n->nreach; i++)
        if (n->reach[i].pending)
            return 1;
    return 0;
}

void ir_nat_write_frames(ir_conn *c, qpath *path, pktw *w)
{
    ir_nat *n = c->nat;
    (void)path;
    if (!n || !ir_conn_nat_traversal(c))
        return;
    ir_frame f;
    if (c->is_server) {
        advertise(c, n);
        for (size_t i = 0; i < n->caplocal && pktw_can_record(w); i++) {
            nat_local *l = &n->local[i];
            if (!l->pending || (l->state != L_ADV && l->state != L_GONE))
                continue;
            if (l->state == L_ADV) {
                frame_addr(&f, IR_FT_ADD_ADDRESS_V4, IR_FT_ADD_ADDRESS_V6, l->seq, &l->a);
            } else {
                memset(&f, 0, sizeof f);
                f.type = IR_FT_REMOVE_ADDRESS;
                f.u.remove_seq = l->seq;
            }
            if (!pktw_put_frame(w, &f))
                break;
            l->pending = 0;
            pktw_record(w, l->state == L_ADV ? &ir_sf_nat_add : &ir_sf_nat_remove, l->seq, 0, 0, 0, 1);
        }
        return;
    }
    for (size_t i = 0; i < n->nreach && pktw_can_record(w); i++) {
        if (!n->reach[i].pending)
            continue;
        frame_addr(&f, IR_FT_REACH_OUT_V4, IR_FT_REACH_OUT_V6, n->round, &n->reach[i].a);
        if (!pktw_put_frame(w, &f))
            break;
        n->reach[i].pending = 0;
        pktw_record(w, &ir_sf_nat_reach_out, n->round, i, 0, 0, 1);
    }
}

/* the records of sent frames: a lost frame goes again while it still says what is true */
static void nat_add_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    ir_nat *n = c->nat;
    for (size_t i = 0; n && i < n->caplocal; i++)
        if (n->local[i].state == L_ADV && n->local[i].seq == f->a)
            n->local[i].pending = 1;
}

static void nat_remove_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    ir_nat *n = c->nat;
    for (size_t i = 0; n && i < n->caplocal; i++)
        if (n->local[i].state == L_GONE && n->local[i].seq == f->a)
            n->local[i].pending = 1;
}

static void nat_remove_acked(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    ir_nat *n = c->nat;
    for (size_t i = 0; n && i < n->caplocal; i++)
        if (n->local[i].state == L_GONE && n->local[i].seq == f->a)
            n->local[i].state = L_FREE;
}

static void nat_reach_out_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    ir_nat *n = c->nat;
    if (n && f->a == n->round && f->b < n->nreach)
        n->reach[f->b].pending = 1; /* (one of an older round is not sent again) */
}

const sent_kind ir_sf_nat_add = {"ADD_ADDRESS", NULL, nat_add_lost, 0};
const sent_kind ir_sf_nat_remove = {"REMOVE_ADDRESS", nat_remove_acked, nat_remove_lost, 0};
const sent_kind ir_sf_nat_reach_out = {"REACH_OUT", NULL, nat_reach_out_lost, 0};

/* ---- probe packets ---------------------------------------------------------------------------- */

typedef struct off_path {
    nat_resp *resp;   /* an answer, or */
    nat_probe *probe; /* a probe */
} off_path;

static void put_challenge(ir_conn *c, pktw *w, nat_probe *p)
{
    uint8_t data[8];
    ir_conn_rnd(c, data, 8);
    ir_frame f = {.type = IR_FT_PATH_CHALLENGE};
    memcpy(f.u.path_data, data, 8);
    if (pktw_put_frame(w, &f))
        probe_record(p, data);
}

/* the frames of an off-path packet (pkt_plan.write_frames): records are not kept */
static void write_off_path(ir_conn *c, qpath *path, pktw *w, const pkt_plan *plan)
{
    const off_path *op = plan->arg;
    ir_nat *n = c->nat;
    (void)path;
    if (op->probe) {
        put_challenge(c, w, op->probe);
        return;
    }
    ir_frame f = {.type = IR_FT_PATH_RESPONSE};
    memcpy(f.u.path_data, op->resp->data, 8);
    if (!pktw_put_frame(w, &f))
        return;
    /* a client challenges the prober's address too: an answer proves it reachable and
     * saves waiting for our own next probe there */
    if (!c->is_server && !validated_path_to(c, &op->resp->to)) {
        nat_probe *p = probe_find(n, &op->resp->to);
        if (!p)
            p = probe_add(n, &op->resp->to, 0);
        if (p)
            put_challenge(c, w, p);
    }
}

/* the path probes go out on: the first validated one */
static qpath *probe_path(ir_conn *c)
{
    ir_conn_path_info info[IR_CONN_MAX_PATHS];
    size_t n = ir_conn_paths(c, info, IR_CONN_MAX_PATHS);
    for (size_t i = 0; i < n && i < IR_CONN_MAX_PATHS; i++) {
        if (!info[i].validated || info[i].abandoned)
            continue;
        qpath *p = path_by_id(c, info[i].id);
        if (p && p->cids.nrcid)
            return p;
    }
    return NULL;
}

size_t ir_nat_send(ir_conn *c, uint8_t *buf, size_t cap, ir_netaddr *to, uint64_t now)
{
    ir_nat *n = c->nat;
    if (!n || c->state != IR_CONN_ESTABLISHED || !c->epoch[SP_APP].have_tx || cap < 1200)
        return 0;
    while (n->nresp) {
        nat_resp r = n->resp[0];
        memmove(&n->resp[0], &n->resp[1], (n->nresp - 1) * sizeof n->resp[0]);
        n->nresp--;
        qpath *p = path_by_id(c, r.path_id);
        if (!p || !p->cids.nrcid)
            continue;
        off_path op = {.resp = &r};
        pkt_plan plan = {.to = &r.to, .on_path = 0, .write_frames = write_off_path, .arg = &op};
        /* padded to 1200 bytes (spec quic-tls.md 4.3) */
        size_t len = ir_conn_write_packet(c, p, SP_APP, buf, cap, 1200, &plan);
        if (len) {
            *to = r.to;
            c->stats.bytes_sent += len;
            return len;
        }
    }
    qpath *p = NULL;
    for (size_t i = 0; i < n->nprobe; i++) {
        nat_probe *pr = &n->probe[i];
        if (!pr->pending)
            continue;
        if (!p && !(p = probe_path(c)))
            return 0;
        pr->pending = 0;
        off_path op = {.probe = pr};
        pkt_plan plan = {.to = &pr->to, .on_path = 0, .write_frames = write_off_path, .arg = &op};
        /* only the PATH_CHALLENGE: not padded */
        size_t len = ir_conn_write_packet(c, p, SP_APP, buf, cap, 0, &plan);
        if (len) {
            *to = pr->to;
            c->stats.bytes_sent += len;
            return len;
        }
    }
    (void)now;
    return 0;
}

/* ---- the policy ------------------------------------------------------------------------------- */

/* what the selection depends on besides RTTs: the usable paths */
static uint64_t paths_sig(const ir_conn *c)
{
    ir_conn_path_info info[IR_CONN_MAX_PATHS];
    size_t n = ir_conn_paths(c, info, IR_CONN_MAX_PATHS);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n && i < IR_CONN_MAX_PATHS; i++) {
        uint64_t v = info[i].id * 8 + (uint64_t)(info[i].validated ? 1 : 0) +
                     (uint64_t)(info[i].abandoned ? 2 : 0) + (uint64_t)(info[i].degraded ? 4 : 0);
        h = (h ^ v) * 1099511628211ull;
        for (size_t k = 0; k < info[i].addr.len; k++)
            h = (h ^ info[i].addr.data[k]) * 1099511628211ull;
    }
    return h ^ n;
}

/* iroh's select_path and apply_selected_path */
static void apply_policy(ir_conn *c, ir_nat *n, uint64_t now)
{
    ir_conn_path_info info[IR_CONN_MAX_PATHS];
    size_t np = ir_conn_paths(c, info, IR_CONN_MAX_PATHS);
    if (np > IR_CONN_MAX_PATHS)
        np = IR_CONN_MAX_PATHS;
    ir_path_cand cand[IR_CONN_MAX_PATHS];
    size_t idx[IR_CONN_MAX_PATHS];
    size_t nc = 0, nip = 0;
    int current = -1;
    for (size_t i = 0; i < np; i++) {
        /* a degraded path (no acknowledgement while another works) is no candidate until it
         * answers again: the best other one is selected (the relay, across tiers at once) */
        if (!info[i].validated || info[i].abandoned || info[i].degraded)
            continue;
        iroh_socket_addr ip;
        int relay = !is_direct(c, &info[i].addr, &ip);
        cand[nc].id = info[i].id;
        cand[nc].relay = relay;
        cand[nc].ipv6 = !relay && ip.family == 6 && !ir_ip6_is_v4_mapped(ip.ip);
        cand[nc].rtt_ns = info[i].rtt_ns;
        if (info[i].id == n->selected)
            current = (int)nc;
        nip += !relay;
        idx[nc++] = i;
    }
    int pick = ir_path_select(cand, nc, current);
    if (pick >= 0)
        n->selected = cand[pick].id;
    else if (current < 0)
        n->selected = UINT64_MAX;
    if (n->selected != UINT64_MAX) {
        for (size_t k = 0; k < nc; k++) {
            const ir_conn_path_info *pi = &info[idx[k]];
            int chosen = pi->id == n->selected;
            if (!c->is_server && !cand[k].relay && !chosen && nip > 1) {
                /* only the client closes paths: one direct path is kept */
                ir_conn_path_abandon(c, pi->id, IR_PATH_APPLICATION_ABANDON, now);
                continue;
            }
            if (pi->available != chosen)
                ir_conn_path_set_status(c, pi->id, chosen);
        }
        /* a degraded path is told Backup while the data goes elsewhere */
        for (size_t i = 0; i < np; i++)
            if (info[i].degraded && !info[i].abandoned && info[i].available && info[i].id != n->selected)
                ir_conn_path_set_status(c, info[i].id, 0);
    }
    n->sig = paths_sig(c);
    n->policy_started = 1;
}

/* client: path 0 is direct and the peer has a relay: a relay path as a backup */
static void consider_relay(ir_conn *c, ir_nat *n)
{
    n->relay_checked = 1;
    qpath *p0 = path_by_id(c, 0);
    if (c->is_server || !p0 || !is_direct(c, &p0->addr, NULL))
        return;
    for (size_t i = 0; i < n->nrelays; i++)
        (void)ir_conn_add_path(c, &n->relays[i], c->now);
}

/* no direct path with an RTT of at most 10 ms: iroh looks for a better one */
static int good_enough(const ir_conn *c)
{
    ir_conn_path_info info[IR_CONN_MAX_PATHS];
    size_t np = ir_conn_paths(c, info, IR_CONN_MAX_PATHS);
    for (size_t i = 0; i < np && i < IR_CONN_MAX_PATHS; i++)
        if (info[i].validated && !info[i].abandoned && !info[i].degraded && is_direct(c, &info[i].addr, NULL) &&
            info[i].rtt_ns <= IR_NAT_GOOD_RTT_NS)
            return 1;
    return 0;
}

void ir_nat_handshake_done(ir_conn *c)
{
    /* client: remember the relay candidates of the first flight (c->fanout goes) */
    if (c->is_server || !c->cfg.tp.nat_traversal || !c->cfg.addr_of || !c->fanout)
        return;
    ir_nat *n = NULL;
    for (size_t i = 0; i < c->fanout->ncand; i++) {
        if (is_direct(c, &c->fanout->cand[i], NULL))
            continue;
        if (!n && !(n = nat_get(c)))
            return;
        if (n->nrelays < NAT_RELAYS)
            n->relays[n->nrelays++] = c->fanout->cand[i];
    }
}

uint64_t ir_nat_timer(const ir_conn *c)
{
    if (c->state != IR_CONN_ESTABLISHED)
        return UINT64_MAX;
    const ir_nat *n = c->nat;
    if (!n)
        return policy_active(c) && !c->nat_nomem ? c->now : UINT64_MAX;
    uint64_t t = n->retry_at;
    if (!c->is_server && ir_conn_nat_traversal(c)) {
        if (!n->started)
            return c->now;
        if (n->started && n->trigger_due)
            return c->now;
        if (n->round_at < t)
            t = n->round_at;
        if (n->upgrade_at < t)
            t = n->upgrade_at;
    }
    if (policy_active(c) &&
        (!n->policy_started || (!c->is_server && !n->relay_checked) || paths_sig(c) != n->sig))
        return c->now;
    return t;
}

void ir_nat_on_timeout(ir_conn *c, uint64_t now)
{
    if (c->state != IR_CONN_ESTABLISHED)
        return;
    if (!c->nat && !policy_active(c))
        return;
    ir_nat *n = nat_get(c);
    if (!n)
        return;
    if (now >= n->retry_at)
        queue_retries(n, now);
    if (!c->is_server && ir_conn_nat_traversal(c)) {
        if (!n->started) {
            /* iroh starts a round when the connection comes up: when it is handed to
             * the application, at the end of the handshake */
            n->started = 1;
            n->trigger_due = 0;
            n->upgrade_at = now + IR_NAT_UPGRADE_INTERVAL_NS;
            trigger(c, n, now);
        }
        if (n->started && n->trigger_due) {
            n->trigger_due = 0;
            trigger(c, n, now);
        }
        if (now >= n->round_at) {
            n->round_at = UINT64_MAX;
            trigger(c, n, now);
        }
        if (now >= n->upgrade_at) {
            n->upgrade_at = now + IR_NAT_UPGRADE_INTERVAL_NS;
            if (!good_enough(c))
                trigger(c, n, now);
        }
    }
    if (policy_active(c)) {
        if (!c->is_server && !n->relay_checked)
            consider_relay(c, n);
        if (!n->policy_started || paths_sig(c) != n->sig)
            apply_policy(c, n, now);
    }
}
