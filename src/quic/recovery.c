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
static void cc_reset(ir_conn *c)
{
    c->path->max_datagram = 1200;
    ir_cc_start(&c->path->cc, cc_ops(c), c->path->max_datagram);
}

void ir_rec_init(ir_conn *c)
{
    cc_reset(c);
    c->path->smoothed_rtt = INITIAL_RTT;
    c->path->rttvar = INITIAL_RTT / 2;
    c->path->min_rtt = UINT64_MAX;
    for (int s = 0; s < SP_COUNT; s++)
        SP(c, s).loss_time = UINT64_MAX;
}

void ir_rec_new_path(ir_conn *c, uint64_t now)
{
    /* RFC 9000 9.4: the congestion controller starts over on a new path (the RTT
     * estimate is kept: the peer is the same and PTOs stay sane). Losses of packets
     * sent before now belong to the old path and are not congestion here. */
    cc_reset(c);
    c->path->cc.recovery_start = now;
    c->path->pto_count = 0;
}

static uint64_t max_ack_delay_ns(const ir_conn *c)
{
    return c->peer_tp_ok ? c->peer_tp.max_ack_delay * NS_PER_MS : 25 * NS_PER_MS;
}

uint64_t ir_rec_pto(const ir_conn *c, int space)
{
    uint64_t var = 4 * c->path->rttvar;
    if (var < GRANULARITY)
        var = GRANULARITY;
    uint64_t pto = c->path->smoothed_rtt + var;
    if (space == SP_APP)
        pto += max_ack_delay_ns(c);
    return pto;
}

/* the application-space PTO of a path without an RTT sample (kInitialRtt) */
uint64_t ir_rec_initial_pto(const ir_conn *c)
{
    return INITIAL_RTT + 4 * (INITIAL_RTT / 2) + max_ack_delay_ns(c);
}

static void update_rtt(ir_conn *c, uint64_t latest, uint64_t ack_delay)
{
    c->path->latest_rtt = latest;
    if (!c->path->have_rtt) {
        c->path->have_rtt = 1;
        c->path->min_rtt = latest;
        c->path->smoothed_rtt = latest;
        c->path->rttvar = latest / 2;
        return;
    }
    if (latest < c->path->min_rtt)
        c->path->min_rtt = latest;
    if (c->handshake_confirmed && ack_delay > max_ack_delay_ns(c))
        ack_delay = max_ack_delay_ns(c);
    uint64_t adjusted = latest;
    if (latest >= c->path->min_rtt + ack_delay)
        adjusted = latest - ack_delay;
    uint64_t diff = c->path->smoothed_rtt > adjusted ? c->path->smoothed_rtt - adjusted : adjusted - c->path->smoothed_rtt;
    c->path->rttvar = (3 * c->path->rttvar + diff) / 4;
    c->path->smoothed_rtt = (7 * c->path->smoothed_rtt + adjusted) / 8;
}

void ir_rec_on_sent(ir_conn *c, int space, const sent_pkt *p)
{
    if (p->in_flight) {
        c->path->bytes_in_flight += p->size;
        if (p->ack_eliciting) {
            SP(c, space).last_ack_eliciting_time = p->time;
            SP(c, space).in_flight_ack_eliciting++;
        }
    }
}

/* ---- congestion control -------------------------------------------------------------- */

static void cc_on_acked(ir_conn *c, const sent_pkt *p, uint64_t now)
{
    if (!p->in_flight)
        return;
    qpath *path = c->path;
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
static void remove_sent(ir_conn *c, int space, size_t i)
{
    pn_space *s = &SP(c, space);
    sent_pkt *p = &s->sent[i];
    if (p->gone)
        return;
    if (p->in_flight) {
        c->path->bytes_in_flight -= p->size < c->path->bytes_in_flight ? p->size : c->path->bytes_in_flight;
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
        /* everything acknowledged or lost: start over, and give back a big array */
        s->nsent = s->sent_first = s->sent_gone = 0;
        if (s->capsent > 64) {
            free(s->sent);
            s->sent = NULL;
            s->capsent = 0;
        }
        return;
    }
    if (s->sent_gone < 16 || 2 * s->sent_gone < s->nsent)
        return;
    size_t n = 0;
    for (size_t i = s->sent_first; i < s->nsent; i++)
        if (!s->sent[i].gone)
            s->sent[n++] = s->sent[i];
    s->nsent = n;
    s->sent_first = 0;
    s->sent_gone = 0;
}

static void packet_lost(ir_conn *c, int space, size_t i)
{
    sent_pkt p = SP(c, space).sent[i];
    remove_sent(c, space, i);
    c->stats.pkts_lost++;
    for (unsigned k = 0; k < p.nframes; k++)
        ir_conn_on_frame_lost(c, space, &p.f[k]);
}

void ir_rec_detect_lost(ir_conn *c, int space, uint64_t now)
{
    pn_space *s = &SP(c, space);
    s->loss_time = UINT64_MAX;
    if (s->largest_acked == UINT64_MAX)
        return;
    uint64_t rtt = c->path->latest_rtt > c->path->smoothed_rtt ? c->path->latest_rtt : c->path->smoothed_rtt;
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
            packet_lost(c, space, i);
            continue;
        }
        uint64_t t = p->time + delay;
        if (t < s->loss_time)
            s->loss_time = t;
    }
    compact_sent(s);
    if (any_lost) {
        c->path->cc.ops->on_congestion_event(&c->path->cc, last_lost_time, now, c->path->max_datagram);
        /* persistent congestion: losses spanning 3 PTOs with an RTT sample */
        uint64_t span = (c->path->smoothed_rtt + (4 * c->path->rttvar > GRANULARITY ? 4 * c->path->rttvar : GRANULARITY) +
                         max_ack_delay_ns(c)) * PERSISTENT_CONGESTION_THRESHOLD;
        if (c->path->have_rtt && last_lost_time - first_lost_time > span && first_lost_time != UINT64_MAX) {
            /* persistent congestion after the datagrams grew: maybe they stopped fitting */
            ir_conn_mtu_black_hole(c);
            c->path->cc.ops->on_persistent_congestion(&c->path->cc, c->path->max_datagram);
        }
    }
}

int ir_rec_on_ack(ir_conn *c, int space, const ir_frame_ack *ack, uint64_t now)
{
    pn_space *s = &SP(c, space);
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
            remove_sent(c, space, a);
            newly_acked = 1;
            if (p.ack_eliciting)
                ack_eliciting_acked = 1;
            if (p.pn == ack->largest) {
                largest_is_new = 1;
                largest_time = p.time;
            }
            if (p.pn >= largest_newly)
                largest_newly = p.pn;
            cc_on_acked(c, &p, now);
            for (unsigned k = 0; k < p.nframes; k++)
                ir_conn_on_frame_acked(c, space, &p.f[k]);
        }
    }
    if (s->largest_acked == UINT64_MAX || ack->largest > s->largest_acked)
        s->largest_acked = ack->largest;
    if (!newly_acked)
        return 0;
    compact_sent(s);
    if (largest_is_new && ack_eliciting_acked) {
        uint64_t exp = c->peer_tp_ok ? c->peer_tp.ack_delay_exponent : 3;
        uint64_t delay_us = exp < 20 ? ack->ack_delay << exp : 0;
        update_rtt(c, now - largest_time, space == SP_APP ? delay_us * NS_PER_US : 0);
    }
    ir_rec_detect_lost(c, space, now);
    /* the client keeps its PTO backoff until it knows the server validated it */
    if (!(c->is_server == 0 && !c->handshake_complete && space == SP_INITIAL))
        c->path->pto_count = 0;
    return 0;
}

/* earliest loss time, or the PTO deadline of the spaces with ack-eliciting data out */
static uint64_t pto_deadline(const ir_conn *c, int *space_out)
{
    uint64_t best = UINT64_MAX;
    int best_space = -1;
    uint64_t backoff = (uint64_t)1 << (c->path->pto_count < 20 ? c->path->pto_count : 20);
    for (int s = 0; s < SP_COUNT; s++) {
        const pn_space *sp = &SP(c, s);
        if (sp->discarded || !sp->have_tx)
            continue;
        if (s == SP_APP && !c->handshake_confirmed && sp->in_flight_ack_eliciting == 0)
            continue;
        uint64_t base;
        if (sp->in_flight_ack_eliciting)
            base = sp->last_ack_eliciting_time;
        else if (!c->is_server && !c->handshake_complete && s < SP_APP &&
                 (s == SP_HANDSHAKE || !SP(c, SP_HANDSHAKE).have_tx))
            base = c->last_ack_eliciting_sent; /* anti-deadlock probe of the client */
        else
            continue;
        uint64_t t = base + ir_rec_pto(c, s) * backoff;
        if (t < best) {
            best = t;
            best_space = s;
        }
    }
    if (space_out)
        *space_out = best_space;
    return best;
}

uint64_t ir_rec_timer(const ir_conn *c)
{
    uint64_t t = UINT64_MAX;
    for (int s = 0; s < SP_COUNT; s++)
        if (!SP(c, s).discarded && SP(c, s).loss_time < t)
            t = SP(c, s).loss_time;
    if (t != UINT64_MAX)
        return t;
    /* the server is blocked by the amplification limit: no PTO */
    if (c->is_server && !c->path->validated && c->path->bytes_sent >= 3 * c->path->bytes_recv)
        return UINT64_MAX;
    return pto_deadline(c, NULL);
}

void ir_rec_on_timeout(ir_conn *c, uint64_t now)
{
    for (int s = 0; s < SP_COUNT; s++) {
        if (!SP(c, s).discarded && SP(c, s).loss_time <= now) {
            ir_rec_detect_lost(c, s, now);
            return;
        }
    }
    int space;
    uint64_t t = pto_deadline(c, &space);
    if (t > now || space < 0)
        return;
    c->path->pto_count++;
    if (c->path->pto_count >= 3)
        ir_conn_mtu_black_hole(c); /* nothing gets through: try small datagrams again */
    /* probe: resend the oldest unacknowledged data of the space (its frames become
     * "lost" for repair, the packet stays in flight until acked or declared lost) */
    pn_space *sp = &SP(c, space);
    sp->probe_pending = 2;
    if (sp->sent_first < sp->nsent) {
        sent_pkt *p = &sp->sent[sp->sent_first];
        for (unsigned k = 0; k < p->nframes; k++)
            if (p->f[k].kind == SF_CRYPTO || p->f[k].kind == SF_STREAM)
                ir_conn_on_frame_lost(c, space, &p->f[k]);
    }
    /* during the handshake, probe the other space the client may be waiting on too */
    if (!c->handshake_complete && space == SP_INITIAL && SP(c, SP_HANDSHAKE).have_tx &&
        !SP(c, SP_HANDSHAKE).discarded)
        SP(c, SP_HANDSHAKE).probe_pending = 1;
}

void ir_rec_discard_sent(ir_conn *c, int space)
{
    pn_space *s = &SP(c, space);
    for (size_t i = s->sent_first; i < s->nsent; i++)
        remove_sent(c, space, i);
    s->nsent = s->sent_first = s->sent_gone = 0;
    s->loss_time = UINT64_MAX;
}

void ir_rec_discard_space(ir_conn *c, int space)
{
    pn_space *s = &SP(c, space);
    ir_rec_discard_sent(c, space);
    s->discarded = 1;
    s->probe_pending = 0;
    s->ack_pending = 0;
    s->in_flight_ack_eliciting = 0;
    c->path->pto_count = 0;
}
