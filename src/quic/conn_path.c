/* The path of a QUIC connection: validation (RFC 9000 8.2, PATH_CHALLENGE and
 * PATH_RESPONSE), QUIC address discovery (OBSERVED_ADDRESS in), path MTU discovery. */

#include <string.h>

#include "base/addr.h"
#include "quic/conn_internal.h"

static qprobe *find_probe(qpath *path, const ir_netaddr *addr)
{
    for (int i = 0; i < IR_MAX_PROBES; i++)
        if (path->probes[i].state != PROBE_FREE && ir_netaddr_eq(&path->probes[i].addr, addr))
            return &path->probes[i];
    return NULL;
}

/* A fresh probe of addr: sends a PATH_CHALLENGE again after each PTO (doubling) until
 * answered, abandoned after three times the larger of the PTO and the PTO of a new path
 * (RFC 9000 8.2.4). NULL when every slot is busy with an active probe. */
static qprobe *new_probe(ir_conn *c, qpath *path, const ir_netaddr *addr, int for_path)
{
    qprobe *p = find_probe(path, addr);
    for (int i = 0; !p && i < IR_MAX_PROBES; i++)
        if (path->probes[i].state != PROBE_ACTIVE)
            p = &path->probes[i]; /* free, or a finished one */
    if (!p)
        return NULL;
    memset(p, 0, sizeof *p);
    p->addr = *addr;
    p->state = PROBE_ACTIVE;
    p->for_path = (uint8_t)for_path;
    p->pending = 1;
    uint64_t pto = ir_rec_pto(c, path, SP_APP), first = ir_rec_initial_pto(c);
    p->deadline = c->now + 3 * (pto > first ? pto : first);
    return p;
}

qprobe *ir_conn_path_probe(qpath *path)
{
    for (int i = 0; i < IR_MAX_PROBES; i++)
        if (path->probes[i].state == PROBE_ACTIVE && path->probes[i].for_path)
            return &path->probes[i];
    return NULL;
}

/* Starts validating the path's address (a new peer address, or the path MTU of the current
 * one); a validation of an address the path had before is dropped. */
void ir_conn_start_validation(ir_conn *c, qpath *path)
{
    qprobe *old = ir_conn_path_probe(path);
    if (old)
        old->state = PROBE_FREE;
    if (!new_probe(c, path, &path->addr, 1)) {
        /* every slot probes a candidate: the path's own address comes first */
        path->probes[0].state = PROBE_FREE;
        new_probe(c, path, &path->addr, 1);
    }
}

void ir_conn_abandon_validation(ir_conn *c, qpath *path)
{
    qprobe *p = ir_conn_path_probe(path);
    if (p)
        p->state = PROBE_FREE;
    if (!path->validated && path->have_prev) {
        /* back to the last validated address (9.3.2); packets from the new one with higher
         * packet numbers would move us there again */
        path->addr = path->prev_addr;
        path->validated = 1;
        path->have_prev = 0;
    }
}

int ir_conn_probe_addr(ir_conn *c, qpath *path, const ir_netaddr *addr)
{
    if (ir_netaddr_eq(addr, &path->addr) || c->state != IR_CONN_ESTABLISHED)
        return -1;
    return new_probe(c, path, addr, 0) ? 0 : -1;
}

int ir_conn_probe_state(const qpath *path, const ir_netaddr *addr)
{
    for (int i = 0; i < IR_MAX_PROBES; i++)
        if (path->probes[i].state != PROBE_FREE && ir_netaddr_eq(&path->probes[i].addr, addr))
            return path->probes[i].state;
    return PROBE_FREE;
}

/* when the probe's next PATH_CHALLENGE is due, or its deadline */
static uint64_t probe_timer(const ir_conn *c, const qpath *path, const qprobe *p)
{
    uint64_t t = p->deadline;
    if (!p->pending && p->count) {
        unsigned k = p->count - 1 < 10 ? p->count - 1 : 10;
        uint64_t again = p->sent + (ir_rec_pto(c, path, SP_APP) << k);
        if (again < t)
            t = again;
    }
    return t;
}

uint64_t ir_conn_path_timer(const ir_conn *c, const qpath *path)
{
    uint64_t t = UINT64_MAX;
    if (c->state != IR_CONN_ESTABLISHED)
        return t;
    for (int i = 0; i < IR_MAX_PROBES; i++) {
        const qprobe *p = &path->probes[i];
        if (p->state != PROBE_ACTIVE)
            continue;
        uint64_t pt = probe_timer(c, path, p);
        if (pt < t)
            t = pt;
    }
    return t;
}

void ir_conn_path_on_timeout(ir_conn *c, qpath *path, uint64_t now)
{
    if (c->state != IR_CONN_ESTABLISHED)
        return;
    for (int i = 0; i < IR_MAX_PROBES; i++) {
        qprobe *p = &path->probes[i];
        if (p->state != PROBE_ACTIVE)
            continue;
        if (now >= p->deadline) {
            if (p->for_path)
                ir_conn_abandon_validation(c, path);
            else
                p->state = PROBE_FAILED;
        } else if (!p->pending && p->count && probe_timer(c, path, p) <= now) {
            p->pending = 1; /* the challenge or its response was lost */
        }
    }
}

void ir_conn_path_challenge_frame(ir_conn *c, qpath *path, const uint8_t data[8],
                                  const ir_netaddr *from)
{
    /* answered on this path, to the address it came from (RFC 9000 8.2.2) */
    if (path->nresp == IR_MAX_RESPONSES) {
        memmove(&path->resp[0], &path->resp[1], (IR_MAX_RESPONSES - 1) * sizeof path->resp[0]);
        path->nresp--;
    }
    qresponse *r = &path->resp[path->nresp++];
    memcpy(r->data, data, 8);
    r->addr = *from;
    r->allow = 3 * c->rx_dgram_len;
}

void ir_conn_path_response_frame(ir_conn *c, const uint8_t data[8])
{
    /* it validates the address the challenge went out to, whatever path it comes back on
     * (RFC 9000 8.2.2, 8.2.3) */
    for (size_t i = 0; i < c->npaths; i++) {
        qpath *q = c->paths[i];
        if (q->state != PS_OPEN)
            continue;
        for (int k = 0; k < IR_MAX_PROBES; k++) {
            qprobe *p = &q->probes[k];
            int match = 0;
            for (unsigned j = 0; j < p->nchal && !match; j++)
                match = memcmp(p->chal[j], data, 8) == 0;
            if (p->state != PROBE_ACTIVE || !match)
                continue;
            if (!p->for_path) {
                p->state = PROBE_VALIDATED;
                return;
            }
            int small = p->small;
            int was = q->validated;
            q->validated = 1;
            q->have_prev = 0;
            ir_conn_abandon_validation(c, q); /* done: ends the probe and its timers */
            if (!was) {
                ir_conn_push_event(c, IR_EV_PATH_VALIDATED, q->id, 0);
                if (c->multipath)
                    ir_conn_mp_schedule(c); /* data may use it now */
            }
            /* a challenge that was not expanded leaves the path MTU to validate with one
             * in a full-size datagram (RFC 9000 8.2.1) */
            if (small)
                ir_conn_start_validation(c, q);
            return;
        }
    }
}

int ir_conn_path_frames_pending(const ir_conn *c, const qpath *path, const ir_netaddr *to)
{
    for (size_t i = 0; i < path->nresp; i++)
        if (ir_netaddr_eq(&path->resp[i].addr, to))
            return 1;
    for (int i = 0; i < IR_MAX_PROBES; i++) {
        const qprobe *p = &path->probes[i];
        if (p->state == PROBE_ACTIVE && p->pending && ir_netaddr_eq(&p->addr, to))
            return 1;
    }
    return 0;
}

const ir_netaddr *ir_conn_path_frames_elsewhere(const ir_conn *c, const qpath *path)
{
    for (size_t i = 0; i < path->nresp; i++)
        if (!ir_netaddr_eq(&path->resp[i].addr, &path->addr))
            return &path->resp[i].addr;
    if (c->state != IR_CONN_ESTABLISHED)
        return NULL;
    for (int i = 0; i < IR_MAX_PROBES; i++) {
        const qprobe *p = &path->probes[i];
        if (p->state == PROBE_ACTIVE && p->pending && !ir_netaddr_eq(&p->addr, &path->addr))
            return &p->addr;
    }
    return NULL;
}

/* OBSERVED_ADDRESS: the newest report (by sequence number) is our address as the peer
 * sees it; an IPv4-mapped IPv6 address counts as IPv4 */
void ir_conn_observed_address_frame(ir_conn *c, const ir_frame *f)
{
    if (c->have_observed && f->u.addr.seq <= c->observed_recv_seq)
        return; /* older or repeated */
    iroh_socket_addr a;
    memset(&a, 0, sizeof a);
    if (f->type == IR_FT_OBSERVED_ADDRESS_V4) {
        a.family = 4;
        memcpy(a.ip, f->u.addr.ip, 4);
    } else if (ir_ip6_is_v4_mapped(f->u.addr.ip)) {
        a.family = 4;
        memcpy(a.ip, f->u.addr.ip + 12, 4);
    } else {
        a.family = 6;
        memcpy(a.ip, f->u.addr.ip, 16);
    }
    a.port = f->u.addr.port;
    c->observed = a;
    c->observed_recv_seq = f->u.addr.seq;
    c->have_observed = 1;
    ir_conn_push_event(c, IR_EV_OBSERVED_ADDRESS, 0, 0);
}

int ir_conn_observed_addr(const ir_conn *c, iroh_socket_addr *out)
{
    if (!c->have_observed)
        return -1;
    *out = c->observed;
    return 0;
}

/* PATH_RESPONSE and PATH_CHALLENGE go first in a packet: on a path limited by the
 * anti-amplification limit an ACK with many ranges could otherwise leave no room */
void ir_conn_write_path_frames(ir_conn *c, qpath *path, pktw *w, const ir_netaddr *to)
{
    for (size_t i = 0; i < path->nresp && pktw_can_record(w);) {
        qresponse *r = &path->resp[i];
        if (!ir_netaddr_eq(&r->addr, to)) {
            i++;
            continue;
        }
        ir_frame f = {.type = IR_FT_PATH_RESPONSE};
        memcpy(f.u.path_data, r->data, 8);
        if (!pktw_put_frame(w, &f))
            break;
        pktw_record(w, &ir_sf_ping, 0, 0, 0, 0, 1);
        memmove(r, r + 1, (path->nresp - i - 1) * sizeof *r);
        path->nresp--;
    }
    for (int i = 0; i < IR_MAX_PROBES; i++) {
        qprobe *p = &path->probes[i];
        if (p->state != PROBE_ACTIVE || !p->pending || !ir_netaddr_eq(&p->addr, to) ||
            !pktw_can_record(w))
            continue;
        /* new data every time; the oldest outstanding one makes room */
        uint8_t data[8];
        ir_conn_rnd(c, data, 8);
        ir_frame f = {.type = IR_FT_PATH_CHALLENGE};
        memcpy(f.u.path_data, data, 8);
        if (!pktw_put_frame(w, &f))
            break;
        if (p->nchal == IR_PROBE_CHALLENGES) {
            memmove(p->chal[0], p->chal[1], (IR_PROBE_CHALLENGES - 1) * 8);
            p->nchal--;
        }
        memcpy(p->chal[p->nchal++], data, 8);
        p->pending = 0;
        uint64_t a;
        memcpy(&a, data, 8);
        pktw_record(w, &ir_sf_path_challenge, a, 0, 0, 0, 1);
    }
}

/* The size to probe on the path, or 0 when there is nothing to probe. */
static size_t mtu_target(const ir_conn *c, const qpath *path)
{
    uint64_t t = IR_MTU_PROBE_SIZE;
    if (c->peer_tp.max_udp_payload_size < t)
        t = c->peer_tp.max_udp_payload_size;
    if (c->cfg.tp.max_udp_payload_size < t)
        t = c->cfg.tp.max_udp_payload_size;
    return t > path->max_datagram ? (size_t)t : 0;
}

/* Sends the path MTU probe when one is due (after the handshake is confirmed and the path
 * validated, when congestion control has room for it). */
size_t ir_conn_send_mtu_probe(ir_conn *c, qpath *p, uint8_t *buf, size_t cap, ir_netaddr *to)
{
    if (p->mtu_state == MTU_IDLE && c->handshake_confirmed && p->validated &&
        c->state == IR_CONN_ESTABLISHED && c->peer_tp_ok)
        p->mtu_state = mtu_target(c, p) ? MTU_DUE : MTU_DONE;
    if (p->mtu_state != MTU_DUE || c->now < p->mtu_next)
        return 0;
    size_t size = mtu_target(c, p);
    if (!size) {
        p->mtu_state = MTU_DONE;
        return 0;
    }
    /* it takes the place of one ordinary packet (else a bulk transfer that keeps the
     * window full would never leave room for the larger one) */
    if (cap < size || !ir_conn_cwnd_allows(p) || !c->epoch[SP_APP].have_tx)
        return 0;
    pkt_plan plan = {.to = &p->addr, .on_path = 1, .mtu_probe = size};
    size_t n = ir_conn_write_packet(c, p, SP_APP, buf, size, size, &plan);
    if (n) {
        p->mtu_state = MTU_IN_FLIGHT;
        *to = p->addr;
    }
    return n;
}

void ir_conn_mtu_black_hole(ir_conn *c, qpath *path)
{
    if (path->max_datagram <= 1200)
        return;
    path->max_datagram = 1200;
    path->mtu_state = MTU_DONE; /* no second try on this path */
}

/* ---- the records of path frames ------------------------------------------------------------ */

/* a PATH_CHALLENGE was lost: another goes out if it was its probe's newest */
static void path_challenge_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    uint8_t data[8];
    memcpy(data, &f->a, 8);
    for (int k = 0; k < IR_MAX_PROBES; k++) {
        qprobe *p = &path->probes[k];
        if (p->state == PROBE_ACTIVE && p->nchal && memcmp(p->chal[p->nchal - 1], data, 8) == 0)
            p->pending = 1;
    }
}

const sent_kind ir_sf_path_challenge = {"PATH_CHALLENGE", NULL, path_challenge_lost, 0};

static void observed_address_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    if (f->a == c->observed_sent_seq) /* the latest report was lost: send it again */
        c->observed_pending = 1;
}

const sent_kind ir_sf_observed_address = {"OBSERVED_ADDRESS", NULL, observed_address_lost, 0};

static void mtu_probe_acked(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    /* the path carries datagrams of this size: use them from now on */
    if (f->a > path->max_datagram)
        path->max_datagram = f->a;
    path->mtu_state = MTU_DONE;
}

static void mtu_probe_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    if (path->mtu_state == MTU_IN_FLIGHT) {
        /* lost: maybe the path is too narrow; twice more, a little apart */
        path->mtu_state = ++path->mtu_tries >= 3 ? MTU_DONE : MTU_DUE;
        path->mtu_next = c->now + (path->smoothed_rtt ? path->smoothed_rtt : 100 * NS_PER_MS);
    }
}

const sent_kind ir_sf_mtu_probe = {"PING (path MTU probe)", mtu_probe_acked, mtu_probe_lost, 0};
