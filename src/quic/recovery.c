/* Loss detection (RFC 9002): RTT estimation, packet and time thresholds, the probe
 * timeout. It tells the path's congestion controller (cc.h) what was acknowledged and
 * lost. */
#include <stdlib.h>
#include <string.h>

#include "quic/conn_internal.h"

#define INITIAL_RTT (333 * NS_PER_MS) /* iroh's initial RTT (quic-tls.md 2.3) */
#define GRANULARITY NS_PER_MS
#define PACKET_THRESHOLD 3
#define PERSISTENT_CONGESTION_THRESHOLD 3

static const ir_cc_ops *cc_ops(const ir_conn *c)
{
    return c->cfg.cc == IR_CC_NEWRENO ? &ir_cc_newreno : &ir_cc_cubic;
}

/* congestion control from the start: 1200-byte datagrams, the initial window */
static void cc_reset(ir_conn *c, qpath *path)
{
    path->max_datagram = 1200;
    ir_cc_start(&path->cc, cc_ops(c), path->max_datagram);
}

void ir_rec_init(ir_conn *c, qpath *path)
{
    cc_reset(c, path);
    path->smoothed_rtt = INITIAL_RTT;
    path->rttvar = INITIAL_RTT / 2;
    path->min_rtt = UINT64_MAX;
    for (int s = ir_conn_first_space(c, path); s < SP_COUNT; s++)
        PNS(c, path, s).loss_time = UINT64_MAX;
}

void ir_rec_new_path(ir_conn *c, qpath *path, uint64_t now)
{
    /* RFC 9000 9.4: the congestion controller starts over on a new path (the RTT
     * estimate is kept: the peer is the same and PTOs stay sane). Losses of packets
     * sent before now belong to the old path and are not congestion here. */
    cc_reset(c, path);
    path->cc.recovery_start = now;
    path->pto_count = 0;
}

static uint64_t max_ack_delay_ns(const ir_conn *c)
{
    return c->peer_tp_ok ? c->peer_tp.max_ack_delay * NS_PER_MS : 25 * NS_PER_MS;
}

uint64_t ir_rec_pto(const ir_conn *c, const qpath *path, int space)
{
    uint64_t var = 4 * path->rttvar;
    if (var < GRANULARITY)
        var = GRANULARITY;
    uint64_t pto = path->smoothed_rtt + var;
    if (space == SP_APP)
        pto += max_ack_delay_ns(c);
    return pto;
}

/* the application-space PTO of a path without an RTT sample (kInitialRtt) */
uint64_t ir_rec_initial_pto(const ir_conn *c)
{
    return INITIAL_RTT + 4 * (INITIAL_RTT / 2) + max_ack_delay_ns(c);
}

static void update_rtt(ir_conn *c, qpath *path, uint64_t latest, uint64_t ack_delay)
{
    path->latest_rtt = latest;
    if (!path->have_rtt) {
        path->have_rtt = 1;
        path->min_rtt = latest;
        path->smoothed_rtt = latest;
        path->rttvar = latest / 2;
        return;
    }
    if (latest < path->min_rtt)
        path->min_rtt = latest;
    if (c->handshake_confirmed && ack_delay > max_ack_delay_ns(c))
        ack_delay = max_ack_delay_ns(c);
    uint64_t adjusted = latest;
    if (latest >= path->min_rtt + ack_delay)
        adjusted = latest - ack_delay;
    uint64_t diff = path->smoothed_rtt > adjusted ? path->smoothed_rtt - adjusted : adjusted - path->smoothed_rtt;
    path->rttvar = (3 * path->rttvar + diff) / 4;
    path->smoothed_rtt = (7 * path->smoothed_rtt + adjusted) / 8;
}

void ir_rec_on_sent(ir_conn *c, qpath *path, int space, const sent_pkt *p)
{
    if (p->in_flight) {
        path->bytes_in_flight += p->size;
        if (p->ack_eliciting) {
            PNS(c, path, space).last_ack_eliciting_time = p->time;
            PNS(c, path, space).in_flight_ack_eliciting++;
        }
    }
}

/* ---- congestion control -------------------------------------------------------------- */

static void cc_on_acked(qpath *path, const sent_pkt *p, uint64_t now)
{
    if (!p->in_flight)
        return;
    ir_cc_acked a = {
        .sent_time = p->time,
        .bytes = p->size,
        .now = now,
        .max_datagram = path->max_datagram,
        .min_rtt = path->have_rtt ? path->min_rtt : UINT64_MAX,
        .smoothed_rtt = path->smoothed_rtt,
    };
    path->cc.ops->on_acked(&path->cc, &a);
}

/* ---- sent packet bookkeeping -------------------------------------------------------- */

/* Removing a packet from the middle of the list would move everything after it, once
 * per acknowledged packet: with thousands in flight that is quadratic. A removed entry is
 * marked gone instead; leading gone entries are skipped through sent_first, and the list is
 * compacted once the holes outnumber the live entries. */
static void remove_sent(ir_conn *c, qpath *path, int space, size_t i)
{
    pn_space *s = &PNS(c, path, space);
    sent_pkt *p = &s->sent[i];
    if (p->gone)
        return;
    if (p->in_flight) {
        path->bytes_in_flight -= p->size < path->bytes_in_flight ? p->size : path->bytes_in_flight;
        if (p->ack_eliciting && s->in_flight_ack_eliciting)
            s->in_flight_ack_eliciting--;
    }
    p->gone = 1;
    s->sent_gone++;
    while (s->sent_first < s->nsent && s->sent[s->sent_first].gone)
        s->sent_first++;
}

static void compact_sent(pn_space *s)
{
    if (s->sent_first == s->nsent) {
        /* everything acknowledged or lost: start over, and give back big arrays */
        s->nsent = s->sent_first = s->sent_gone = 0;
        s->nframes = 0;
        if (s->capsent > 64) {
            free(s->sent);
            s->sent = NULL;
            s->capsent = 0;
        }
        if (s->capframes > 256) {
            free(s->frames);
            s->frames = NULL;
            s->capframes = 0;
        }
        return;
    }
    if (s->sent_gone < 16 || 2 * s->sent_gone < s->nsent)
        return;
    /* the packets and their frame records move down together (both in pn order) */
    size_t n = 0, nf = 0;
    for (size_t i = s->sent_first; i < s->nsent; i++) {
        sent_pkt *p = &s->sent[i];
        if (p->gone)
            continue;
        memmove(&s->frames[nf], &s->frames[p->first_frame], p->nframes * sizeof *s->frames);
        p->first_frame = nf;
        nf += p->nframes;
        s->sent[n++] = *p;
    }
    s->nsent = n;
    s->nframes = nf;
    s->sent_first = 0;
    s->sent_gone = 0;
}

static void packet_lost(ir_conn *c, qpath *path, int space, size_t i)
{
    pn_space *sp = &PNS(c, path, space);
    sent_pkt p = sp->sent[i];
    remove_sent(c, path, space, i);
    c->stats.pkts_lost++;
    path->pkts_lost++;
    for (uint32_t k = 0; k < p.nframes; k++) {
        const sent_frame *f = &sp->frames[p.first_frame + k];
        if (f->kind->on_lost)
            f->kind->on_lost(c, path, space, f);
    }
}

void ir_rec_detect_lost(ir_conn *c, qpath *path, int space, uint64_t now)
{
    pn_space *s = &PNS(c, path, space);
    s->loss_time = UINT64_MAX;
    if (s->largest_acked == UINT64_MAX)
        return;
    uint64_t rtt = path->latest_rtt > path->smoothed_rtt ? path->latest_rtt : path->smoothed_rtt;
    uint64_t delay = rtt * 9 / 8;
    if (delay < GRANULARITY)
        delay = GRANULARITY;
    uint64_t lost_before = now > delay ? now - delay : 0;
    uint64_t first_lost_time = UINT64_MAX, last_lost_time = 0;
    int any_lost = 0;
    for (size_t i = s->sent_first; i < s->nsent; i++) {
        sent_pkt *p = &s->sent[i];
        if (p->gone)
            continue;
        if (p->pn > s->largest_acked)
            break;
        if (p->time <= lost_before || p->pn + PACKET_THRESHOLD <= s->largest_acked) {
            /* a lost MTU probe says nothing about congestion (RFC 9000 14.4) */
            if (p->in_flight && !p->mtu_probe) {
                any_lost = 1;
                if (p->time < first_lost_time)
                    first_lost_time = p->time;
                if (p->time > last_lost_time)
                    last_lost_time = p->time;
            }
            packet_lost(c, path, space, i);
            continue;
        }
        uint64_t t = p->time + delay;
        if (t < s->loss_time)
            s->loss_time = t;
    }
    compact_sent(s);
    if (any_lost) {
        path->cc.ops->on_congestion_event(&path->cc, last_lost_time, now, path->max_datagram);
        /* persistent congestion: losses spanning 3 PTOs with an RTT sample */
        uint64_t span = (path->smoothed_rtt + (4 * path->rttvar > GRANULARITY ? 4 * path->rttvar : GRANULARITY) +
                         max_ack_delay_ns(c)) * PERSISTENT_CONGESTION_THRESHOLD;
        if (path->have_rtt && last_lost_time - first_lost_time > span && first_lost_time != UINT64_MAX) {
            /* persistent congestion after the datagrams grew: maybe they stopped fitting */
            ir_conn_mtu_black_hole(c, path);
            path->cc.ops->on_persistent_congestion(&path->cc, path->max_datagram);
        }
    }
}

int ir_rec_on_ack(ir_conn *c, qpath *path, int space, const ir_frame_ack *ack, uint64_t now)
{
    pn_space *s = &PNS(c, path, space);
    if (ack->largest >= s->next_pn)
        return -1; /* acknowledges a packet never sent: PROTOCOL_VIOLATION */
    int newly_acked = 0, ack_eliciting_acked = 0;
    uint64_t largest_newly = 0, largest_time = 0;
    int largest_is_new = 0;
    ir_ack_iter it;
    uint64_t lo, hi;
    ir_ack_iter_init(&it, ack);
    while (ir_ack_iter_next(&it, &lo, &hi) == 1) {
        /* sent packets are in pn order: find the first >= lo */
        size_t a = s->sent_first, b = s->nsent;
        while (a < b) {
            size_t m = (a + b) / 2;
            if (s->sent[m].pn < lo)
                a = m + 1;
            else
                b = m;
        }
        for (; a < s->nsent && s->sent[a].pn <= hi; a++) {
            if (s->sent[a].gone)
                continue;
            sent_pkt p = s->sent[a];
            remove_sent(c, path, space, a);
            newly_acked = 1;
            if (p.ack_eliciting)
                ack_eliciting_acked = 1;
            if (p.pn == ack->largest) {
                largest_is_new = 1;
                largest_time = p.time;
            }
            if (p.pn >= largest_newly)
                largest_newly = p.pn;
            cc_on_acked(path, &p, now);
            for (uint32_t k = 0; k < p.nframes; k++) {
                const sent_frame *f = &s->frames[p.first_frame + k];
                if (f->kind->on_acked)
                    f->kind->on_acked(c, path, space, f);
            }
        }
    }
    if (s->largest_acked == UINT64_MAX || ack->largest > s->largest_acked)
        s->largest_acked = ack->largest;
    if (!newly_acked)
        return 0;
    path->last_acked = now;
    compact_sent(s);
    if (largest_is_new && ack_eliciting_acked) {
        uint64_t exp = c->peer_tp_ok ? c->peer_tp.ack_delay_exponent : 3;
        uint64_t delay_us = exp < 20 ? ack->ack_delay << exp : 0;
        update_rtt(c, path, now - largest_time, space == SP_APP ? delay_us * NS_PER_US : 0);
    }
    ir_rec_detect_lost(c, path, space, now);
    /* the client keeps its PTO backoff until it knows the server validated it */
    if (!(c->is_server == 0 && !c->handshake_complete && space == SP_INITIAL))
        path->pto_count = 0;
    if (path->degraded && space == SP_APP) {
        /* a degraded path answers again (one of its probes was acknowledged; the probes
         * older than it were just declared lost): congestion control starts over, as
         * after an idle period of unknown length, and the losses of the outage are no
         * congestion signal */
        ir_cc_start(&path->cc, cc_ops(c), path->max_datagram);
        path->cc.recovery_start = now;
        ir_conn_mp_recovered(c, path, now);
    }
    return 0;
}

/* earliest PTO deadline of the path's spaces with ack-eliciting data out (Initial and
 * Handshake count on path 0) */
static uint64_t pto_deadline(const ir_conn *c, const qpath *path, int *space_out)
{
    uint64_t best = UINT64_MAX;
    int best_space = -1;
    unsigned max_exp = path->degraded ? IR_PATH_DEGRADED_MAX_BACKOFF : 20; /* keeps probing */
    uint64_t backoff = (uint64_t)1 << (path->pto_count < max_exp ? path->pto_count : max_exp);
    for (int s = ir_conn_first_space(c, path); s < SP_COUNT; s++) {
        const pn_space *sp = &PNS(c, path, s);
        if (sp->discarded || !c->epoch[s].have_tx)
            continue;
        if (s == SP_APP && !c->handshake_confirmed && sp->in_flight_ack_eliciting == 0)
            continue;
        uint64_t base;
        if (sp->in_flight_ack_eliciting)
            base = sp->last_ack_eliciting_time;
        else if (!c->is_server && !c->handshake_complete && s < SP_APP &&
                 (s == SP_HANDSHAKE || !c->epoch[SP_HANDSHAKE].have_tx))
            base = c->last_ack_eliciting_sent; /* anti-deadlock probe of the client */
        else
            continue;
        uint64_t t = base + ir_rec_pto(c, path, s) * backoff;
        if (t < best) {
            best = t;
            best_space = s;
        }
    }
    if (space_out)
        *space_out = best_space;
    return best;
}

/* the path's earliest loss time (and its space), else UINT64_MAX */
static uint64_t loss_deadline(const ir_conn *c, const qpath *path, int *space_out)
{
    uint64_t t = UINT64_MAX;
    for (int s = ir_conn_first_space(c, path); s < SP_COUNT; s++) {
        const pn_space *sp = &PNS(c, path, s);
        if (!sp->discarded && sp->loss_time < t) {
            t = sp->loss_time;
            *space_out = s;
        }
    }
    return t;
}

/* the path's loss or PTO timer */
static uint64_t path_timer(const ir_conn *c, const qpath *path)
{
    int space;
    uint64_t t = loss_deadline(c, path, &space);
    if (t != UINT64_MAX || path->state != PS_OPEN)
        return t; /* an abandoned path sends nothing more: no PTO */
    /* blocked by the anti-amplification limit of an unvalidated path: no PTO */
    if (!path->validated && !path->initiated && path->bytes_sent >= 3 * path->bytes_recv)
        return UINT64_MAX;
    return pto_deadline(c, path, NULL);
}

uint64_t ir_rec_timer(const ir_conn *c)
{
    uint64_t t = UINT64_MAX;
    for (size_t i = 0; i < c->npaths; i++) {
        if (!ir_path_live(c->paths[i]))
            continue;
        uint64_t p = path_timer(c, c->paths[i]);
        if (p < t)
            t = p;
    }
    return t;
}

static void path_on_timeout(ir_conn *c, qpath *path, uint64_t now)
{
    for (int s = ir_conn_first_space(c, path); s < SP_COUNT; s++) {
        if (!PNS(c, path, s).discarded && PNS(c, path, s).loss_time <= now) {
            ir_rec_detect_lost(c, path, s, now);
            return;
        }
    }
    int space;
    uint64_t t = pto_deadline(c, path, &space);
    if (t > now || space < 0)
        return;
    path->pto_count++;
    if (path->pto_count >= 3)
        ir_conn_mtu_black_hole(c, path); /* nothing gets through: try small datagrams again */
    /* multipath: a path that stopped answering while another works is left for it (its
     * packets in flight lost at once, a PING probes it) */
    if (space == SP_APP && ir_conn_mp_maybe_degrade(c, path, now))
        return;
    if (space == SP_APP && path->degraded) {
        PNS(c, path, space).probe_pending = 1; /* one PING: it carries nothing else */
        return;
    }
    /* probe: resend the oldest unacknowledged data of the space (its frames become
     * "lost" for repair, the packet stays in flight until acked or declared lost) */
    pn_space *sp = &PNS(c, path, space);
    sp->probe_pending = 2;
    if (sp->sent_first < sp->nsent) {
        sent_pkt *p = &sp->sent[sp->sent_first];
        for (uint32_t k = 0; k < p->nframes; k++) {
            const sent_frame *f = &sp->frames[p->first_frame + k];
            if (f->kind->probe_repair)
                f->kind->on_lost(c, path, space, f);
        }
    }
    /* during the handshake, probe the other space the client may be waiting on too */
    if (!c->handshake_complete && space == SP_INITIAL && c->epoch[SP_HANDSHAKE].have_tx &&
        !c->sp[SP_HANDSHAKE].discarded)
        c->sp[SP_HANDSHAKE].probe_pending = 1;
}

void ir_rec_on_timeout(ir_conn *c, uint64_t now)
{
    /* the path whose timer is due first */
    qpath *due = NULL;
    uint64_t first = UINT64_MAX;
    for (size_t i = 0; i < c->npaths; i++) {
        if (!ir_path_live(c->paths[i]))
            continue;
        uint64_t p = path_timer(c, c->paths[i]);
        if (p < first) {
            first = p;
            due = c->paths[i];
        }
    }
    if (due && first <= now)
        path_on_timeout(c, due, now);
}

void ir_rec_discard_sent(ir_conn *c, qpath *path, int space)
{
    pn_space *s = &PNS(c, path, space);
    for (size_t i = s->sent_first; i < s->nsent; i++)
        remove_sent(c, path, space, i);
    s->nsent = s->sent_first = s->sent_gone = 0;
    s->nframes = 0;
    s->loss_time = UINT64_MAX;
}

void ir_rec_abandon_sent(ir_conn *c, qpath *path)
{
    pn_space *s = &path->app;
    for (size_t i = s->sent_first; i < s->nsent; i++)
        if (!s->sent[i].gone)
            packet_lost(c, path, SP_APP, i);
    compact_sent(s);
    s->loss_time = UINT64_MAX;
}

void ir_rec_discard_space(ir_conn *c, int space)
{
    qpath *path = c->paths[0]; /* the Initial and Handshake spaces count on path 0 */
    pn_space *s = &c->sp[space];
    ir_rec_discard_sent(c, path, space);
    s->discarded = 1;
    s->probe_pending = 0;
    s->ack_pending = 0;
    s->in_flight_ack_eliciting = 0;
    path->pto_count = 0;
}
