/* The QUIC connection: creation and freeing, events, closing, timers, the public getters.
 * The rest of the connection is split by concern (docs/ARCHITECTURE.md, "The QUIC
 * connection's files"): conn_hs.c (TLS, handshake, transport parameters, Retry),
 * conn_keys.c (packet protection, key update, AEAD limits), conn_recv.c (packets and frames
 * in), conn_send.c (packets out), conn_cid.c, conn_path.c, conn_stream.c, conn_dgram.c
 * (each with the acked/lost handlers of the frames it owns, sent_kind); recovery.c has
 * loss detection and calls the congestion controller (cc.h). conn_internal.h holds the
 * state they share. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "quic/conn_internal.h"

void ir_conn_config_defaults(ir_conn_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    ir_tp_set_iroh_defaults(&cfg->tp);
    cfg->keep_alive_ns = 5000 * NS_PER_MS;
    cfg->cc = IR_CC_CUBIC;
    cfg->max_stream_window = 16u << 20;
    cfg->max_conn_window = 64u << 20;
    cfg->max_stream_send_buffer = 4u << 20;
}

/* The queue holds the events that are hints (readable, writable, path changes, ...): when
 * it cannot grow, a new hint is dropped. The events whose loss would lose something are
 * raised without it: CONNECTED and CLOSED by flags, STREAM_OPENED from the count of the
 * peer's streams. */
/* Readable and writable events of a stream, DATAGRAM and STREAMS_AVAILABLE are coalesced:
 * one of each waits in the queue at most. A bit tells it is there (the stream's ev_queued,
 * the connection's ev_queued), so that raising one costs no walk of the queue. */
static uint8_t *queued_bit(ir_conn *c, ir_event_type t, uint64_t id, uint8_t *bit)
{
    switch (t) {
    case IR_EV_STREAM_READABLE:
    case IR_EV_STREAM_WRITABLE: {
        qstream *s = ir_conn_find_stream(c, id);
        *bit = t == IR_EV_STREAM_READABLE ? 1 : 2;
        return s ? &s->ev_queued : NULL;
    }
    case IR_EV_DATAGRAM:
        *bit = 1;
        return &c->ev_queued;
    case IR_EV_STREAMS_AVAILABLE:
        *bit = 2;
        return &c->ev_queued;
    default:
        return NULL;
    }
}

void ir_conn_push_event(ir_conn *c, ir_event_type t, uint64_t id, uint64_t code)
{
    uint8_t bit = 0, *q = queued_bit(c, t, id, &bit);
    if (q && (*q & bit))
        return;
    if (c->ev_n == c->ev_cap) {
        size_t cap = c->ev_cap ? c->ev_cap * 2 : 16;
        ir_event *n = malloc(cap * sizeof *n);
        if (!n) {
            c->hints_dropped++;
            return;
        }
        for (size_t i = 0; i < c->ev_n; i++)
            n[i] = c->ev[(c->ev_head + i) % c->ev_cap];
        free(c->ev);
        c->ev = n;
        c->ev_cap = cap;
        c->ev_head = 0;
    }
    ir_event *e = &c->ev[(c->ev_head + c->ev_n) % c->ev_cap];
    e->type = t;
    e->stream_id = id;
    e->code = code;
    c->ev_n++;
    if (q)
        *q |= bit;
}

uint64_t ir_conn_hints_dropped(const ir_conn *c)
{
    return c->hints_dropped;
}

/* Order: CONNECTED, the peer's new streams, the queued hints, CLOSED last. */
int ir_conn_poll_event(ir_conn *c, ir_event *ev)
{
    memset(ev, 0, sizeof *ev);
    if (c->connected_pending) {
        c->connected_pending = 0;
        ev->type = IR_EV_CONNECTED;
        return 1;
    }
    for (int uni = 0; uni < 2; uni++) {
        if (c->opened_reported[uni] < c->peer_opened[uni]) {
            ev->type = IR_EV_STREAM_OPENED;
            ev->stream_id = ir_conn_peer_stream_id(c, uni, c->opened_reported[uni]++);
            return 1;
        }
    }
    if (c->ev_n) {
        *ev = c->ev[c->ev_head];
        c->ev_head = (c->ev_head + 1) % c->ev_cap;
        c->ev_n--;
        uint8_t bit = 0, *q = queued_bit(c, ev->type, ev->stream_id, &bit);
        if (q)
            *q &= (uint8_t)~bit;
        return 1;
    }
    if (c->closed_pending) {
        c->closed_pending = 0;
        ev->type = IR_EV_CLOSED;
        ev->code = c->close.code;
        return 1;
    }
    return 0;
}

static void enter_closed_event(ir_conn *c)
{
    if (!c->closed_event_sent) {
        c->closed_event_sent = 1;
        c->closed_pending = 1;
    }
}

void ir_conn_close_with(ir_conn *c, int app, uint64_t code, const char *reason)
{
    if (c->state >= IR_CONN_CLOSING)
        return;
    c->close.closed = 1;
    c->close.by_peer = 0;
    c->close.application = app;
    c->close.code = code;
    snprintf(c->close.reason, sizeof c->close.reason, "%s", reason ? reason : "");
    c->state = IR_CONN_CLOSING;
    c->close_pending = 1;
    c->close_deadline = c->now + 3 * ir_rec_pto(c, c->send_path, SP_APP);
    enter_closed_event(c);
}

void ir_conn_close(ir_conn *c, int app, uint64_t code, const char *reason, uint64_t now)
{
    c->now = now;
    /* before the handshake completes write_close sends an application close as the
     * transport error APPLICATION_ERROR without its reason (RFC 9000 10.2.3) */
    ir_conn_close_with(c, app, code, reason);
}

void ir_conn_enter_draining(ir_conn *c, int app, uint64_t code, const uint8_t *reason, size_t len)
{
    if (c->state >= IR_CONN_DRAINING)
        return;
    if (c->state != IR_CONN_CLOSING) {
        c->close.closed = 1;
        c->close.by_peer = 1;
        c->close.application = app;
        c->close.code = code;
        if (len > sizeof c->close.reason - 1)
            len = sizeof c->close.reason - 1;
        memcpy(c->close.reason, reason, len);
        c->close.reason[len] = 0;
    }
    c->state = IR_CONN_DRAINING;
    c->close_pending = 0;
    c->close_deadline = c->now + 3 * ir_rec_pto(c, c->send_path, SP_APP);
    enter_closed_event(c);
}

void ir_conn_set_closed(ir_conn *c)
{
    c->state = IR_CONN_CLOSED;
    enter_closed_event(c);
}

ir_conn_state ir_conn_get_state(const ir_conn *c)
{
    return c->state;
}

int ir_conn_handshake_complete(const ir_conn *c)
{
    return c->handshake_complete;
}

const ir_close_info *ir_conn_close_info(const ir_conn *c)
{
    return &c->close;
}

static int common_init(ir_conn *c, const ir_conn_config *cfg, const ir_netaddr *addr, uint64_t now)
{
    c->cfg = *cfg;
    c->cfg.candidates = NULL; /* copied by the client (c->fanout) */
    c->cfg.n_candidates = 0;
    c->now = now;
    c->state = IR_CONN_HANDSHAKE;
    c->npaths = 1; /* path 0 */
    c->paths[0] = &c->path0;
    for (size_t i = 1; i < IR_MAX_PATHS; i++)
        c->paths[i] = IR_PATH_FREE_SLOT;
    qpath *path = c->paths[0];
    c->send_path = path;
    path->state = PS_OPEN;
    path->available = path->peer_available = 1;
    path->last_recv = path->last_eliciting_sent = now;
    c->no_path_deadline = UINT64_MAX;
    c->want_at = UINT64_MAX;
    for (int s = 0; s < SP_COUNT; s++) {
        pn_space *sp = &PNS(c, path, s);
        sp->largest_acked = UINT64_MAX;
        sp->largest_recv = UINT64_MAX;
        sp->ack_deadline = UINT64_MAX;
        ir_pn_seen_init(&sp->seen, SEEN_RANGES_MAX);
        ir_ranges_init(&sp->ack_ranges, ACK_RANGES_MAX);
        sp->key_phase_start_pn = 0;
        sp->rx_old_largest = UINT64_MAX;
        ir_sendbuf_init(&c->epoch[s].crypto_send);
        ir_recvbuf_init(&c->epoch[s].crypto_recv);
    }
    ir_rec_init(c, path);
    path->pace_tokens = 10 * path->max_datagram;
    path->pace_time = now;
    path->addr = *addr;
    c->last_activity = now;
    c->close_deadline = UINT64_MAX;
    c->handshake_deadline = UINT64_MAX;
    c->idle_timeout_ns = cfg->tp.max_idle_timeout * NS_PER_MS;
    c->max_data_local = cfg->tp.initial_max_data;
    c->conn_window = cfg->tp.initial_max_data;
    c->local_max_streams[0] = cfg->tp.initial_max_streams_bidi;
    c->local_max_streams[1] = cfg->tp.initial_max_streams_uni;
    return 0;
}

int ir_conn_client_new(const ir_conn_config *cfg, const ir_netaddr *path, uint64_t now,
                       ir_conn **out)
{
    int x509 = ir_tls_identity_is_x509(cfg->identity);
    if ((!cfg->remote_id && !x509) || (x509 && !cfg->tls_server_name) || !cfg->random ||
        !cfg->identity || !cfg->n_alpns)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "client config incomplete");
    ir_conn *c = calloc(1, sizeof *c);
    if (!c)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    common_init(c, cfg, path, now);
    c->is_server = 0;
    qpath *path0 = c->paths[0];
    path0->validated = 1; /* a client trusts the address it dials */
    c->odcid.len = CLIENT_DCID_LEN;
    ir_conn_rnd(c, c->odcid.data, CLIENT_DCID_LEN);
    path0->cids.rcid[0].cid = c->odcid;
    path0->cids.nrcid = 1;
    ir_conn_issue_cid(c, &path0->cids);
    int rc = IROH_OK;
    if (cfg->n_candidates) {
        c->fanout = calloc(1, sizeof *c->fanout);
        if (!c->fanout)
            rc = ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
        for (size_t i = 0; c->fanout && i < cfg->n_candidates; i++)
            if (c->fanout->ncand < IR_CONN_MAX_CANDIDATES)
                c->fanout->cand[c->fanout->ncand++] = cfg->candidates[i];
    }
    if (rc == IROH_OK)
        rc = ir_conn_install_initial_keys(c, &c->odcid);
    if (rc == IROH_OK)
        rc = ir_conn_start_tls(c);
    if (rc == IROH_OK && ir_tls_start(c->tls) != 0)
        rc = ir_fail(IROH_ERR_IO, "TLS: %s", "cannot start the handshake");
    if (rc != IROH_OK) {
        ir_conn_free(c);
        return rc;
    }
    *out = c;
    return IROH_OK;
}

int ir_conn_server_new(const ir_conn_config *cfg, const ir_pkt_hdr *initial,
                       const ir_netaddr *path, uint64_t now, ir_conn **out)
{
    if (!cfg->random || !cfg->identity || !cfg->n_alpns)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "server config incomplete");
    if (initial->type != IR_PT_INITIAL || initial->dcid.len < 8)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "not a client Initial");
    ir_conn *c = calloc(1, sizeof *c);
    if (!c)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    common_init(c, cfg, path, now);
    c->is_server = 1;
    qpath *path0 = c->paths[0];
    c->odcid = cfg->retried ? cfg->original_dcid : initial->dcid;
    if (cfg->retried) {
        c->retried = 1;
        c->retry_scid = cfg->retry_scid;
        path0->validated = 1; /* the token proved the address (RFC 9000 8.1.2) */
    }
    if (cfg->handshake_timeout_ns)
        c->handshake_deadline = now + cfg->handshake_timeout_ns;
    c->initial_scid = initial->scid;
    path0->cids.rcid[0].cid = initial->scid;
    path0->cids.nrcid = 1;
    ir_conn_issue_cid(c, &path0->cids);
    int rc = ir_conn_install_initial_keys(c, &initial->dcid);
    if (rc == IROH_OK)
        rc = ir_conn_start_tls(c);
    if (rc != IROH_OK) {
        ir_conn_free(c);
        return rc;
    }
    *out = c;
    return IROH_OK;
}

void ir_conn_free(ir_conn *c)
{
    if (!c)
        return;
    ir_tls_free(c->tls);
    free(c->retry_token);
    free(c->fanout);
    ir_nat_free(c);
    free(c->want);
    for (size_t i = 0; i <= SP_HANDSHAKE + IR_MAX_PATHS; i++) {
        /* the Initial and Handshake spaces, then each allocated path slot's 1-RTT space */
        qpath *slot = i < SP_APP ? NULL : c->paths[i - SP_APP];
        if (slot == IR_PATH_FREE_SLOT || (i >= SP_APP && !slot))
            continue;
        pn_space *sp = i < SP_APP ? &c->sp[i] : &slot->app;
        free(sp->sent);
        free(sp->frames);
        ir_pn_seen_free(&sp->seen);
        ir_ranges_free(&sp->ack_ranges);
        if (slot && slot != &c->path0)
            free(slot);
    }
    for (size_t i = 0; i < IR_MAX_PATHS; i++)
        free(c->latent[i]);
    for (int s = 0; s < SP_COUNT; s++) {
        qepoch *e = &c->epoch[s];
        ir_pkt_keys_free(&e->rx);
        ir_pkt_keys_free(&e->tx);
        ir_sendbuf_free(&e->crypto_send);
        ir_recvbuf_free(&e->crypto_recv);
    }
    ir_pkt_keys_free(&c->ku.rx_next);
    ir_pkt_keys_free(&c->ku.rx_prev);
    size_t it = 0;
    qstream *s;
    while ((s = ir_idmap_next(&c->streams, &it)) != NULL)
        ir_conn_stream_free(s);
    ir_idmap_free(&c->streams);
    for (size_t i = 0; i < c->dg_in_n; i++)
        free(c->dg_in[(c->dg_in_head + i) % DGRAM_QUEUE].data);
    for (size_t i = 0; i < c->dg_out_n; i++)
        free(c->dg_out[(c->dg_out_head + i) % DGRAM_QUEUE].data);
    free(c->dg_in);
    free(c->dg_out);
    free(c->ev);
    free(c);
}

const ir_netaddr *ir_conn_path_addr(const ir_conn *c)
{
    return &c->send_path->addr;
}

int ir_conn_peer_id(const ir_conn *c, iroh_endpoint_id *out)
{
    return c->handshake_complete ? ir_tls_peer_id(c->tls, out) : -1;
}

const uint8_t *ir_conn_alpn(const ir_conn *c, size_t *len)
{
    return ir_tls_alpn(c->tls, len);
}

static uint64_t idle_deadline(const ir_conn *c)
{
    if (!c->idle_timeout_ns)
        return UINT64_MAX;
    uint64_t t = c->idle_timeout_ns, pto3 = 3 * ir_rec_pto(c, c->send_path, SP_APP);
    return c->last_activity + (t > pto3 ? t : pto3);
}

uint64_t ir_conn_timeout(const ir_conn *c)
{
    if (c->state == IR_CONN_CLOSED)
        return UINT64_MAX;
    if (c->held_len)
        return c->now; /* a datagram waits for ir_conn_send_batch */
    if (c->state >= IR_CONN_CLOSING)
        return c->close_deadline;
    uint64_t t = idle_deadline(c);
    if (c->state == IR_CONN_HANDSHAKE && c->handshake_deadline < t)
        t = c->handshake_deadline;
    uint64_t r = ir_rec_timer(c);
    if (r < t)
        t = r;
    for (size_t i = 0; i < c->npaths; i++) {
        const qpath *path = c->paths[i];
        if (!ir_path_live(path))
            continue;
        for (int s = ir_conn_first_space(c, path); s < SP_COUNT; s++)
            if (!PNS(c, path, s).discarded && PNS(c, path, s).ack_deadline < t)
                t = PNS(c, path, s).ack_deadline;
        uint64_t pt = ir_conn_path_timer(c, path);
        if (pt < t)
            t = pt;
        /* the next path MTU probe (only a future time: a due probe blocked by congestion
         * control waits for acknowledgements, not for the timer) */
        if (path->mtu_state == MTU_DUE && path->mtu_next > c->now && path->mtu_next < t)
            t = path->mtu_next;
    }
    uint64_t nt = ir_nat_timer(c); /* NAT traversal: probes, rounds, the path policy */
    if (nt < t)
        t = nt;
    /* paced data waiting for credit */
    const qpath *snd = c->send_path;
    if (c->handshake_complete && !ir_conn_pace_allows(c, snd) && ir_conn_cwnd_allows(snd) &&
        ir_conn_app_data_pending(c)) {
        uint64_t p = ir_conn_pace_deadline(c, snd);
        if (p < t)
            t = p;
    }
    /* once fired, the keep-alive waits for ir_conn_send (which may be blocked, e.g. by
     * the anti-amplification limit) instead of firing again and again */
    if (c->cfg.keep_alive_ns && c->state == IR_CONN_ESTABLISHED && !c->keepalive_pending &&
        !c->multipath) {
        uint64_t k = c->last_ack_eliciting_sent + c->cfg.keep_alive_ns;
        if (k < t)
            t = k;
    }
    if (c->multipath) {
        uint64_t m = ir_conn_mp_timer(c);
        if (m < t)
            t = m;
    }
    return t;
}

void ir_conn_on_timeout(ir_conn *c, uint64_t now)
{
    c->now = now;
    if (c->state == IR_CONN_CLOSED)
        return;
    if (c->state >= IR_CONN_CLOSING) {
        if (now >= c->close_deadline)
            ir_conn_set_closed(c);
        return;
    }
    if (now >= idle_deadline(c)) {
        c->close.closed = 1;
        c->close.idle_timeout = 1;
        /* the negotiated idle timeout in seconds: "30 s", "1.5 s", "0.25 s" */
        uint64_t ms = c->idle_timeout_ns / NS_PER_MS;
        char secs[32];
        int n = snprintf(secs, sizeof secs, "%llu.%03llu", (unsigned long long)(ms / 1000),
                         (unsigned long long)(ms % 1000));
        while (n > 0 && secs[n - 1] == '0')
            secs[--n] = 0;
        if (n > 0 && secs[n - 1] == '.')
            secs[--n] = 0;
        snprintf(c->close.reason, sizeof c->close.reason,
                 "timed out: no packets from the peer for %s s", secs);
        ir_conn_set_closed(c);
        return;
    }
    if (c->state == IR_CONN_HANDSHAKE && now >= c->handshake_deadline) {
        /* silently, as an idle timeout: nothing more goes to an address that may be forged */
        c->close.closed = 1;
        c->close.idle_timeout = 1;
        snprintf(c->close.reason, sizeof c->close.reason, "handshake timed out");
        ir_conn_set_closed(c);
        return;
    }
    if (c->ku.have_rx_prev && now >= c->ku.rx_prev_expiry) {
        ir_pkt_keys_free(&c->ku.rx_prev);
        c->ku.have_rx_prev = 0;
    }
    if (c->cfg.keep_alive_ns && c->state == IR_CONN_ESTABLISHED &&
        now >= c->last_ack_eliciting_sent + c->cfg.keep_alive_ns)
        c->keepalive_pending = 1;
    if (c->multipath) {
        ir_conn_mp_on_timeout(c, now);
        if (c->state >= IR_CONN_CLOSING)
            return;
    }
    for (size_t i = 0; i < c->npaths; i++)
        if (c->paths[i]->state == PS_OPEN)
            ir_conn_path_on_timeout(c, c->paths[i], now);
    if (ir_rec_timer(c) <= now)
        ir_rec_on_timeout(c, now);
    if (ir_nat_timer(c) <= now)
        ir_nat_on_timeout(c, now);
    for (size_t i = 0; i < c->npaths; i++) {
        qpath *path = c->paths[i];
        if (!ir_path_live(path))
            continue;
        for (int s = ir_conn_first_space(c, path); s < SP_COUNT; s++) {
            pn_space *sp = &PNS(c, path, s);
            if (sp->ack_deadline <= now) {
                sp->ack_pending = 1;
                sp->ack_deadline = UINT64_MAX;
            }
        }
    }
}

void ir_conn_get_stats(const ir_conn *c, ir_conn_stats *out)
{
    const qpath *p = c->send_path; /* the path application data goes on */
    *out = c->stats;
    out->rtt_ns = p->smoothed_rtt;
    out->rtt_var_ns = p->rttvar;
    out->min_rtt_ns = p->min_rtt == UINT64_MAX ? 0 : p->min_rtt;
    out->cwnd = p->cc.cwnd;
    out->bytes_in_flight = p->bytes_in_flight;
    out->key_updates = c->ku.updates;
    out->max_datagram = p->max_datagram;
    out->retried = c->retried;
}
