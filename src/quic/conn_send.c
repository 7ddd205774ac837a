/* Sending: the packet builder (ACK, CRYPTO, control frames, then datagrams and
 * streams), coalescing the spaces into a datagram, the anti-amplification limit,
 * congestion window and pacing checks, batches of datagrams. */

#include <stdlib.h>
#include <string.h>

#include "base/addr.h"
#include "quic/conn_internal.h"

static int ack_wanted(const ir_conn *c, const pn_space *sp)
{
    if (sp->largest_recv == UINT64_MAX)
        return 0;
    return sp->ack_pending || (sp->ack_deadline != UINT64_MAX && sp->ack_deadline <= c->now);
}

/* the ACK of space `space` (of path `path_id`: a PATH_ACK once multipath is on, in any
 * path's 1-RTT packet) */
static void write_ack(ir_conn *c, pn_space *sp, int space, uint64_t path_id, pktw *w)
{
    if (!pktw_can_record(w))
        return;
    ir_ack_range r[ACK_RANGES_MAX];
    size_t n = 0;
    for (size_t i = sp->ack_ranges.n; i-- > 0 && n < ACK_RANGES_MAX;) {
        r[n].smallest = sp->ack_ranges.r[i].start;
        r[n].largest = sp->ack_ranges.r[i].end - 1;
        n++;
    }
    if (!n)
        return;
    uint64_t delay = 0;
    if (space == SP_APP && c->now > sp->largest_recv_time)
        delay = ((c->now - sp->largest_recv_time) / NS_PER_US) >> c->cfg.tp.ack_delay_exponent;
    size_t done;
    int mp = c->multipath && space == SP_APP;
    size_t k = ir_ack_encode(w->buf + w->pos, pktw_room(w), mp, mp ? path_id : 0, r, n, delay, NULL, &done);
    if (!k)
        return;
    w->pos += k;
    pktw_record(w, &ir_sf_ack, r[0].largest, mp ? path_id : 0, 0, 0, 0);
    c->stats.path_acks_sent += (uint64_t)mp;
    sp->ack_pending = 0;
    sp->ack_eliciting_since = 0;
    sp->ack_deadline = UINT64_MAX;
}

/* the peer has our ACK frame: it need not hear again of the packets up to its largest
 * (RFC 9000 13.2.4). The largest received stays, so that later ACK frames still report
 * it (and their ACK delay is its own). Duplicates are told by `seen`, which this does not
 * touch. */
static void ack_acked(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    /* (a PATH_ACK may have gone out on another path than the one it acknowledges: b) */
    if (space == SP_APP && !(path = ir_conn_path_by_id(c, f->b)))
        return;
    pn_space *sp = &PNS(c, path, space);
    uint64_t below = f->a + 1;
    if (sp->largest_recv != UINT64_MAX && below > sp->largest_recv)
        below = sp->largest_recv;
    ir_ranges_drop_below(&sp->ack_ranges, below);
}

const sent_kind ir_sf_ack = {"ACK", ack_acked, NULL, 0};
const sent_kind ir_sf_ping = {"PING", NULL, NULL, 0};

int ir_sent_frames_reserve(pn_space *sp)
{
    if (sp->nframes < sp->capframes)
        return 1;
    size_t cap = sp->capframes ? 2 * sp->capframes : 16;
    sent_frame *f = realloc(sp->frames, cap * sizeof *f);
    if (!f)
        return 0;
    sp->frames = f;
    sp->capframes = cap;
    return 1;
}

static void write_crypto(ir_conn *c, int space, pktw *w)
{
    ir_sendbuf *b = &c->epoch[space].crypto_send;
    while (pktw_can_record(w)) {
        uint64_t off;
        size_t len, n;
        int fin;
        if (!ir_sendbuf_next(b, UINT64_MAX, pktw_room(w), &off, &len, &fin) || len == 0)
            return;
        if (ir_crypto_frame_fit(pktw_room(w), off, len, &n) != 0 || n == 0)
            return;
        ir_frame f = {.type = IR_FT_CRYPTO};
        f.u.crypto.offset = off;
        f.u.crypto.data = ir_sendbuf_at(b, off);
        f.u.crypto.len = n;
        if (!pktw_put_frame(w, &f))
            return;
        ir_sendbuf_sent(b, off, n, 0);
        pktw_record(w, &ir_sf_crypto, 0, off, n, 0, 1);
    }
}

static void write_close(ir_conn *c, int space, pktw *w)
{
    ir_frame f;
    memset(&f, 0, sizeof f);
    /* an application close is only sent in 1-RTT packets; before, it becomes the
     * transport error APPLICATION_ERROR (RFC 9000 10.2.3) */
    if (c->close.application && space == SP_APP) {
        f.type = IR_FT_APPLICATION_CLOSE;
        f.u.close.error_code = c->close.code;
    } else {
        f.type = IR_FT_CONNECTION_CLOSE;
        f.u.close.error_code = c->close.application ? IR_QERR_APPLICATION_ERROR : c->close.code;
    }
    size_t rl = strlen(c->close.reason);
    if (rl > MAX_CLOSE_REASON || (c->close.application && space != SP_APP))
        rl = c->close.application && space != SP_APP ? 0 : MAX_CLOSE_REASON;
    f.u.close.reason = (const uint8_t *)c->close.reason;
    f.u.close.reason_len = rl;
    if (!pktw_put_frame(w, &f)) {
        f.u.close.reason_len = 0;
        pktw_put_frame(w, &f);
    }
}

/* the connection's control frames (not those of one path) go out on the path data goes
 * on; so do the ACKs of abandoned paths (which send nothing more themselves) */
static int carries_connection_frames(const ir_conn *c, const qpath *path)
{
    return path == c->send_path;
}

static int ack_wanted(const ir_conn *c, const pn_space *sp);

/* control frames to send in a 1-RTT packet on the path */
/* the peer's connection id i of path p is to be retired by a RETIRE_CONNECTION_ID now:
 * never the one in use (it is retired once another replaces it). One test for both the
 * pending check and the writer, so that neither waits on a frame the other never sends. */
static int rcid_retire_due(const qcids *k, size_t i)
{
    return k->rcid[i].retire_pending && i != k->active_rcid;
}

static int lcid_announce_due(const qcids *k, size_t i)
{
    return k->lcid[i].announce_pending && !k->lcid[i].retired;
}

/* (PATH_)NEW_CONNECTION_ID, (PATH_)RETIRE_CONNECTION_ID of some path id to send: the
 * tables of every open path and latent id are looked through only while the
 * connection's mark says one may be due (set where such a flag is set), and a look that
 * finds none clears the mark */
static int cid_frames_pending(ir_conn *c)
{
    if (!c->cid_frames_due)
        return 0;
    c->stats.cid_table_scans++;
    for (size_t s = 0; s < c->npaths; s++) {
        uint64_t id;
        const qcids *k = ir_conn_slot_cids(c, s, &id);
        if (!k)
            continue;
        for (size_t i = 0; i < k->nlcid; i++)
            if (lcid_announce_due(k, i))
                return 1;
        for (size_t i = 0; i < k->nrcid; i++)
            if (rcid_retire_due(k, i))
                return 1;
    }
    c->cid_frames_due = 0;
    return 0;
}

static int app_control_pending(ir_conn *c, const qpath *path)
{
    if (ir_conn_path_frames_any(path) && ir_conn_path_frames_pending(c, path, &path->addr))
        return 1;
    if (!carries_connection_frames(c, path))
        return 0;
    if (c->handshake_done_pending || c->max_data_pending || c->max_streams_pending[0] ||
        c->max_streams_pending[1] || c->observed_pending || ir_nat_frames_pending(c))
        return 1;
    if (cid_frames_pending(c))
        return 1;
    if (c->multipath) {
        if (ir_conn_mp_frames_pending(c))
            return 1;
        for (size_t k = 0; k < c->npaths; k++)
            if (c->paths[k]->state == PS_ABANDONED && ack_wanted(c, &c->paths[k]->app))
                return 1;
    }
    return 0;
}

/* a keep-alive PING is due on the path: the connection's without multipath, each open
 * and validated path's with it (iroh: HEARTBEAT_INTERVAL for each path) */
static int keepalive_due(const ir_conn *c, const qpath *path)
{
    if (!c->cfg.keep_alive_ns || c->state != IR_CONN_ESTABLISHED)
        return 0;
    if (c->multipath)
        return path->state == PS_OPEN && path->validated &&
               c->now >= path->last_eliciting_sent + c->cfg.keep_alive_ns;
    return c->keepalive_pending || c->now >= c->last_ack_eliciting_sent + c->cfg.keep_alive_ns;
}

/* (PATH_)NEW_CONNECTION_ID and (PATH_)RETIRE_CONNECTION_ID of one path id */
static void write_cid_frames(ir_conn *c, qcids *k, uint64_t id, pktw *w)
{
    int mp = c->multipath;
    /* the flags first (pktw_can_record costs more than they do) */
    for (size_t i = 0; i < k->nlcid; i++) {
        local_cid *l = &k->lcid[i];
        if (!lcid_announce_due(k, i))
            continue;
        if (!pktw_can_record(w))
            break;
        ir_frame f = {.type = mp ? IR_FT_PATH_NEW_CONNECTION_ID : IR_FT_NEW_CONNECTION_ID};
        f.u.new_cid.path_id = mp ? id : 0;
        f.u.new_cid.seq = l->seq;
        f.u.new_cid.retire_prior_to = 0;
        f.u.new_cid.cid = l->cid.data;
        f.u.new_cid.cid_len = l->cid.len;
        f.u.new_cid.reset_token = l->token;
        if (!pktw_put_frame(w, &f))
            break;
        l->announce_pending = 0;
        pktw_record(w, &ir_sf_new_cid, l->seq, id, 0, 0, 1);
        c->stats.path_cids_sent += (uint64_t)mp;
    }
    for (size_t i = 0; i < k->nrcid; i++) {
        remote_cid *r = &k->rcid[i];
        if (!rcid_retire_due(k, i))
            continue;
        if (!pktw_can_record(w))
            break;
        ir_frame f = {.type = mp ? IR_FT_PATH_RETIRE_CONNECTION_ID : IR_FT_RETIRE_CONNECTION_ID};
        f.u.retire_cid.path_id = mp ? id : 0;
        f.u.retire_cid.seq = r->seq;
        if (!pktw_put_frame(w, &f))
            break;
        r->retire_pending = 0;
        pktw_record(w, &ir_sf_retire_cid, r->seq, id, 0, 0, 1);
        /* forget it now; a loss re-adds the retirement */
        memmove(r, r + 1, (k->nrcid - i - 1) * sizeof *r);
        k->nrcid--;
        if (k->active_rcid > i)
            k->active_rcid--;
        i--;
    }
}

/* the connection's control frames, in a 1-RTT packet on the path */
static void write_app_control(ir_conn *c, qpath *path, pktw *w)
{
    if (!carries_connection_frames(c, path))
        return;
    if (c->multipath) {
        ir_conn_mp_write_frames(c, w);
        /* the stragglers of abandoned paths are acknowledged here */
        for (size_t k = 0; k < c->npaths; k++) {
            qpath *p = c->paths[k];
            if (p->state == PS_ABANDONED && ack_wanted(c, &p->app))
                write_ack(c, &p->app, SP_APP, p->id, w);
        }
    }
    if (c->observed_pending && pktw_can_record(w)) {
        iroh_socket_addr a;
        if (c->cfg.addr_of(&path->addr, &a) != 0) {
            c->observed_pending = 0; /* not an IP path (a relay): nothing to tell */
        } else {
            ir_frame f;
            memset(&f, 0, sizeof f);
            /* an IPv4-mapped IPv6 address goes out as IPv4 */
            int v4 = a.family == 4 || ir_ip6_is_v4_mapped(a.ip);
            f.type = v4 ? IR_FT_OBSERVED_ADDRESS_V4 : IR_FT_OBSERVED_ADDRESS_V6;
            f.u.addr.seq = c->observed_seq;
            memcpy(f.u.addr.ip, a.family == 4 ? a.ip : v4 ? a.ip + 12 : a.ip, v4 ? 4 : 16);
            f.u.addr.port = a.port;
            if (pktw_put_frame(w, &f)) {
                c->observed_pending = 0;
                c->observed_sent_seq = c->observed_seq++;
                pktw_record(w, &ir_sf_observed_address, c->observed_sent_seq, 0, 0, 0, 1);
            }
        }
    }
    if (c->handshake_done_pending && pktw_can_record(w)) {
        ir_frame f = {.type = IR_FT_HANDSHAKE_DONE};
        if (pktw_put_frame(w, &f)) {
            c->handshake_done_pending = 0;
            pktw_record(w, &ir_sf_handshake_done, 0, 0, 0, 0, 1);
        }
    }
    if (c->max_data_pending && pktw_can_record(w)) {
        ir_frame f = {.type = IR_FT_MAX_DATA};
        f.u.limit = c->max_data_local;
        if (pktw_put_frame(w, &f)) {
            c->max_data_pending = 0;
            pktw_record(w, &ir_sf_max_data, 0, 0, 0, 0, 1);
        }
    }
    for (int uni = 0; uni < 2; uni++) {
        if (c->max_streams_pending[uni] && pktw_can_record(w)) {
            ir_frame f = {.type = uni ? IR_FT_MAX_STREAMS_UNI : IR_FT_MAX_STREAMS_BIDI};
            f.u.limit = c->local_max_streams[uni];
            if (pktw_put_frame(w, &f)) {
                c->max_streams_pending[uni] = 0;
                pktw_record(w, &ir_sf_max_streams, (uint64_t)!uni, 0, 0, 0, 1);
            }
        }
    }
    if (!c->cid_frames_due)
        return;
    c->stats.cid_table_scans++;
    for (size_t s = 0; s < c->npaths; s++) {
        uint64_t id;
        qcids *k = ir_conn_slot_cids(c, s, &id);
        if (k)
            write_cid_frames(c, k, id, w);
    }
    /* what did not fit stays due: the next look finds it (or clears the mark) */
    (void)cid_frames_pending(c);
}

int ir_conn_cwnd_allows(const qpath *path)
{
    return path->bytes_in_flight + path->max_datagram <= path->cc.cwnd;
}

/* Pacing (RFC 9002 7.7): credit accrues at 1.25 x cwnd / smoothed RTT and is capped at a
 * burst of 10 datagrams or 2 ms worth of sending, whichever is larger (a loop that sleeps
 * in whole milliseconds must still be able to keep up). */
static uint64_t pace_burst(const qpath *path)
{
    uint64_t rtt = path->smoothed_rtt ? path->smoothed_rtt : 1;
    uint64_t two_ms = (path->cc.cwnd * 5 / 4) * (2 * NS_PER_MS) / rtt;
    uint64_t ten = 10 * path->max_datagram;
    return two_ms > ten ? two_ms : ten;
}

static uint64_t pace_credit(const ir_conn *c, const qpath *path)
{
    uint64_t rtt = path->smoothed_rtt ? path->smoothed_rtt : 1;
    uint64_t elapsed = c->now > path->pace_time ? c->now - path->pace_time : 0;
    uint64_t burst = pace_burst(path);
    /* elapsed * rate without overflow: rate in bytes per ns = cwnd * 1.25 / rtt */
    uint64_t add = elapsed >= rtt ? burst : (uint64_t)((double)elapsed * (double)path->cc.cwnd * 1.25 / (double)rtt);
    uint64_t t = path->pace_tokens + add;
    return t > burst ? burst : t;
}

int ir_conn_pace_allows(const ir_conn *c, const qpath *path)
{
    return pace_credit(c, path) >= path->max_datagram;
}

static void pace_spend(ir_conn *c, qpath *path, uint64_t bytes)
{
    uint64_t t = pace_credit(c, path);
    path->pace_tokens = t > bytes ? t - bytes : 0;
    path->pace_time = c->now;
}

/* when enough credit for one datagram will have accrued */
uint64_t ir_conn_pace_deadline(const ir_conn *c, const qpath *path)
{
    uint64_t have = pace_credit(c, path);
    if (have >= path->max_datagram)
        return c->now;
    uint64_t rtt = path->smoothed_rtt ? path->smoothed_rtt : 1;
    double need = (double)(path->max_datagram - have);
    return c->now + (uint64_t)(need * (double)rtt / ((double)path->cc.cwnd * 1.25)) + 1;
}

/* Does the space want a packet on the path now? */
static int space_wants(ir_conn *c, const qpath *path, int s)
{
    const pn_space *sp = &PNS(c, path, s);
    if (!c->epoch[s].have_tx || sp->discarded)
        return 0;
    if (c->state == IR_CONN_CLOSING)
        return c->close_pending;
    if (ack_wanted(c, sp) || sp->probe_pending)
        return 1;
    uint64_t off;
    size_t len;
    int fin;
    if (ir_sendbuf_next(&c->epoch[s].crypto_send, UINT64_MAX, 1200, &off, &len, &fin) && len)
        return 1;
    if (s == SP_APP && c->handshake_complete) {
        if (app_control_pending(c, path) || keepalive_due(c, path))
            return 1;
        if (carries_connection_frames(c, path) && ir_conn_cwnd_allows(path) &&
            ir_conn_pace_allows(c, path) && ir_conn_app_data_pending(c))
            return 1;
    }
    return 0;
}

size_t ir_conn_write_packet(ir_conn *c, qpath *path, int s, uint8_t *buf, size_t cap, size_t pad_to,
                            const pkt_plan *plan)
{
    pn_space *sp = &PNS(c, path, s);
    if (!ir_conn_can_seal(c, s))
        return 0;
    pktw w;
    memset(&w, 0, sizeof w);
    w.buf = buf;
    w.sp = sp;
    w.rec.first_frame = sp->nframes;
    if (!ir_sent_frames_reserve(sp))
        return 0;
    uint64_t pn = sp->next_pn;
    /* a packet to another address may arrive long after the path's packets sent later:
     * its number in full (4 bytes) so that it still decodes */
    w.pn_len = plan->on_path ? ir_pn_encode_len(pn, sp->largest_acked) : 4;
    if (s == SP_APP)
        w.hdr_len = ir_pkt_write_short(buf, cap, ir_conn_dcid(path), c->ku.key_phase, 0, pn, w.pn_len);
    else
        w.hdr_len = ir_pkt_write_long(buf, cap, s == SP_INITIAL ? IR_PT_INITIAL : IR_PT_HANDSHAKE,
                                      IR_QUIC_V1, ir_conn_dcid(path), &c->paths[0]->cids.lcid[0].cid,
                                      s == SP_INITIAL ? c->retry_token : NULL,
                                      s == SP_INITIAL ? c->retry_token_len : 0, pn, w.pn_len,
                                      &w.len_off);
    if (!w.hdr_len || cap < w.hdr_len + IR_AEAD_TAG_LEN + MIN_PAYLOAD)
        return 0;
    w.pos = w.hdr_len;
    w.end = cap - IR_AEAD_TAG_LEN;
    if (!plan->on_path) {
        /* to another address: its path frames only (probing, RFC 9000 9.1) */
        if (s == SP_APP && plan->write_frames)
            plan->write_frames(c, path, &w, plan);
        else if (s == SP_APP)
            ir_conn_write_path_frames(c, path, &w, plan->to);
    } else if (c->state == IR_CONN_CLOSING) {
        write_close(c, s, &w);
    } else {
        if (s == SP_APP && plan->mtu_probe) {
            /* a path MTU probe: its PING first, so that it is always there (ack-eliciting,
             * padded to the probed size below); other frames may share the packet */
            w.buf[w.pos++] = IR_FT_PING;
            pktw_record(&w, &ir_sf_mtu_probe, plan->mtu_probe, 0, 0, 0, 1);
            w.rec.mtu_probe = 1;
        }
        if (s == SP_APP && c->handshake_complete && ir_conn_path_frames_any(path))
            ir_conn_write_path_frames(c, path, &w, plan->to);
        if (ack_wanted(c, sp) || (sp->largest_recv != UINT64_MAX && sp->ack_eliciting_since))
            write_ack(c, sp, s, path->id, &w);
        write_crypto(c, s, &w);
        if (s == SP_APP && c->handshake_complete) {
            int probe = sp->probe_pending > 0;
            write_app_control(c, path, &w);
            if (carries_connection_frames(c, path))
                ir_nat_write_frames(c, path, &w);
            if (!carries_connection_frames(c, path)) {
                /* another path: its own frames only (a PTO probe repeats the stream data
                 * on the path data goes on) */
            } else if ((ir_conn_cwnd_allows(path) && ir_conn_pace_allows(c, path)) || probe) {
                ir_conn_write_datagrams(c, &w);
                ir_conn_write_streams(c, &w, 1);
            } else {
                ir_conn_write_streams(c, &w, 0); /* blocked by congestion control: control frames only */
            }
        }
        if ((sp->probe_pending || (s == SP_APP && keepalive_due(c, path))) && !w.rec.ack_eliciting &&
            pktw_can_record(&w) && pktw_room(&w) >= 1) {
            w.buf[w.pos++] = IR_FT_PING;
            pktw_record(&w, &ir_sf_ping, 0, 0, 0, 0, 1);
        }
    }
    size_t payload = w.pos - w.hdr_len;
    if (payload == 0) {
        sp->nframes = w.rec.first_frame;
        return 0;
    }
    /* padding: the header-protection sample, and datagram minimums */
    size_t min_end = w.hdr_len - w.pn_len + MIN_PAYLOAD;
    if (pad_to > IR_AEAD_TAG_LEN && pad_to - IR_AEAD_TAG_LEN > min_end)
        min_end = pad_to - IR_AEAD_TAG_LEN;
    if (min_end > w.end)
        min_end = w.end;
    int padded = 0;
    if (w.pos < min_end) {
        memset(w.buf + w.pos, 0, min_end - w.pos);
        w.pos = min_end;
        padded = 1;
    }
    payload = w.pos - w.hdr_len;
    /* the nonce carries the path id (multipath draft; 0 gives the RFC 9001 nonce) */
    uint32_t path_id = s == SP_APP ? (uint32_t)path->id : 0;
    size_t total = ir_pkt_protect(buf, w.hdr_len, w.pn_len, w.len_off, payload,
                                  &c->epoch[s].tx, path_id, pn);
    c->epoch[s].tx.sealed++;
    sp->next_pn++;
    c->stats.pkts_sent++;
    path->pkts_sent++;
    path->tx_bytes += total;
    if (!plan->on_path) {
        sp->nframes = w.rec.first_frame; /* its records go with it */
        return total; /* a probe elsewhere: not in flight on this path (nor its bytes) */
    }
    if (sp->probe_pending && w.rec.ack_eliciting)
        sp->probe_pending--;
    w.rec.pn = pn;
    w.rec.time = c->now;
    w.rec.size = (uint32_t)total;
    w.rec.in_flight = w.rec.ack_eliciting || padded;
    if (w.rec.ack_eliciting) {
        if (c->last_ack_eliciting_sent < c->last_activity)
            c->last_activity = c->now; /* RFC 9000 10.1: first ack-eliciting after receipt */
        c->last_ack_eliciting_sent = c->now;
        c->keepalive_pending = 0;
        path->last_eliciting_sent = c->now;
    }
    if (!w.rec.in_flight)
        sp->nframes = w.rec.first_frame; /* not kept: its records go (ACK frames only) */
    if (w.rec.in_flight) {
        if (sp->nsent == sp->capsent) {
            size_t ncap = sp->capsent ? sp->capsent * 2 : 8;
            sent_pkt *np = realloc(sp->sent, ncap * sizeof *np);
            if (!np) {
                sp->nframes = w.rec.first_frame;
                ir_conn_close_with(c, 0, IR_QERR_INTERNAL_ERROR, "out of memory");
                return total;
            }
            sp->sent = np;
            sp->capsent = ncap;
        }
        sp->sent[sp->nsent++] = w.rec;
        ir_rec_on_sent(c, path, s, &w.rec);
        pace_spend(c, path, w.rec.size);
    }
    /* the client drops its Initial keys once it sends a Handshake packet */
    if (!c->is_server && s == SP_HANDSHAKE)
        ir_conn_discard_space(c, SP_INITIAL);
    return total;
}

size_t ir_conn_send_batch(ir_conn *c, uint8_t *buf, size_t cap, size_t dgram_cap, ir_netaddr *to,
                          size_t *seg, uint64_t now)
{
    if (dgram_cap > IR_CONN_MAX_DGRAM)
        dgram_cap = IR_CONN_MAX_DGRAM;
    size_t len = 0;
    *seg = 0;
    if (c->held_len) {
        if (c->held_len > cap)
            return 0;
        memcpy(buf, c->held, c->held_len);
        *to = c->held_to;
        *seg = len = c->held_len;
        c->held_len = 0;
    }
    while (len + dgram_cap <= cap) {
        ir_netaddr t;
        size_t n = ir_conn_send(c, buf + len, dgram_cap, &t, now);
        if (!n)
            break;
        if (len == 0) {
            *to = t;
            *seg = len = n;
            continue;
        }
        if (!ir_netaddr_eq(&t, to) || n > *seg) {
            /* cannot join: keep it for the next call */
            memcpy(c->held, buf + len, n);
            c->held_len = n;
            c->held_to = t;
            break;
        }
        len += n;
        if (n < *seg)
            break; /* a shorter datagram ends the batch */
    }
    return len;
}

static size_t send_one(ir_conn *c, uint8_t *buf, size_t cap, ir_netaddr *to, uint64_t now);

/* The first flight to several candidate addresses (config candidates): while the
 * handshake runs, each datagram built also goes, as it is, to every candidate but the
 * one it went to (the same packet numbers: the copies that arrive later are duplicates
 * to the server, which routes them by DCID); path 0 moves to wherever the first answer
 * comes from (conn_recv.c). */
size_t ir_conn_send(ir_conn *c, uint8_t *buf, size_t cap, ir_netaddr *to, uint64_t now)
{
    ir_fanout *f = c->fanout;
    if (f && c->state != IR_CONN_HANDSHAKE) {
        free(f);
        c->fanout = f = NULL;
    }
    while (f && f->len && f->next < f->ncand) {
        const ir_netaddr *a = &f->cand[f->next++];
        if (ir_netaddr_eq(a, &f->to) || f->len > cap)
            continue;
        memcpy(buf, f->buf, f->len);
        *to = *a;
        return f->len;
    }
    size_t n = send_one(c, buf, cap, to, now);
    if (f && n) {
        memcpy(f->buf, buf, n);
        f->len = n;
        f->to = *to;
        f->next = 0;
    }
    return n;
}

static size_t send_on_path(ir_conn *c, qpath *path, uint8_t *buf, size_t cap, ir_netaddr *to,
                           uint64_t now);

static size_t send_one(ir_conn *c, uint8_t *buf, size_t cap, ir_netaddr *to, uint64_t now)
{
    c->now = now;
    if (c->state == IR_CONN_CLOSED || c->state == IR_CONN_DRAINING)
        return 0;
    ir_conn_check_conf_limits(c);
    if (c->nat && c->state == IR_CONN_ESTABLISHED) {
        /* NAT traversal probes and the answers to the peer's, each to its address */
        size_t n = ir_nat_send(c, buf, cap, to, now);
        if (n)
            return n;
    }
    if (!c->multipath)
        return send_on_path(c, c->send_path, buf, cap, to, now);
    /* multipath: each open path in turn (round robin), so that one path's data does not
     * hold back the ACKs and probes of another */
    int any_open = 0;
    for (size_t k = 0; k < IR_MAX_PATHS; k++) {
        size_t i = (c->send_rr + k) % IR_MAX_PATHS;
        qpath *p = c->paths[i];
        if (p->state != PS_OPEN)
            continue;
        any_open = 1;
        size_t n = send_on_path(c, p, buf, cap, to, now);
        if (n) {
            c->send_rr = (i + 1) % IR_MAX_PATHS;
            return n;
        }
    }
    if (!any_open && c->state == IR_CONN_CLOSING) {
        /* no open path left (the peer abandoned the last one): the CONNECTION_CLOSE goes
         * on an abandoned one, whose ids we still know */
        for (size_t i = 0; i < IR_MAX_PATHS; i++) {
            qpath *p = c->paths[i];
            if (p->state == PS_ABANDONED && p->cids.nrcid) {
                c->send_path = p;
                return send_on_path(c, p, buf, cap, to, now);
            }
        }
    }
    return 0;
}

static size_t send_on_path(ir_conn *c, qpath *path, uint8_t *buf, size_t cap, ir_netaddr *to,
                           uint64_t now)
{
    if (c->state == IR_CONN_ESTABLISHED && !path->nresp) {
        size_t n = ir_conn_send_mtu_probe(c, path, buf, cap, to);
        if (n)
            return n;
    }
    if (cap > path->max_datagram)
        cap = path->max_datagram;
    const ir_netaddr *elsewhere =
        c->state != IR_CONN_CLOSING && ir_conn_path_frames_any(path)
            ? ir_conn_path_frames_elsewhere(c, path)
            : NULL;
    if (elsewhere && cap >= 1200 && c->epoch[SP_APP].have_tx) {
        /* PATH_RESPONSEs and PATH_CHALLENGEs for another address go in a datagram of
         * their own to it, padded to 1200 bytes (RFC 9000 8.2.1, 8.2.2) */
        ir_netaddr dest = *elsewhere; /* (it points into the queue the packet empties) */
        pkt_plan plan = {.to = &dest, .on_path = 0};
        *to = dest;
        qprobe *pr = NULL;
        for (int i = 0; i < IR_MAX_PROBES; i++)
            if (path->probes[i].state == PROBE_ACTIVE && path->probes[i].pending &&
                ir_netaddr_eq(&path->probes[i].addr, &dest))
                pr = &path->probes[i];
        /* a datagram with only PATH_RESPONSEs is expanded as far as the anti-amplification
         * limit of that address allows (RFC 9000 8.2.2, 9.3): three times what came from
         * it (a challenge of ours goes to an address we chose, padded in full) */
        size_t pad = 1200;
        if (!pr) {
            size_t allow = 0;
            for (size_t i = 0; i < path->nresp; i++)
                if (ir_netaddr_eq(&path->resp[i].addr, &dest) && path->resp[i].allow > allow)
                    allow = path->resp[i].allow;
            if (allow < pad)
                pad = allow;
        }
        size_t n = ir_conn_write_packet(c, path, SP_APP, buf, cap, pad, &plan);
        if (pr && !pr->pending) {
            pr->sent = now;
            pr->count++;
        }
        if (n) {
            c->stats.bytes_sent += n;
            return n;
        }
    }
    *to = path->addr;
    pkt_plan plan = {.to = &path->addr, .on_path = 1};
    size_t limit = cap;
    /* any endpoint, the client too after the server's address changed (RFC 9000 8, 9.3);
     * a client's first path counts as validated */
    if (!path->validated && !path->initiated) {
        uint64_t allowed = 3 * path->bytes_recv;
        allowed = allowed > path->bytes_sent ? allowed - path->bytes_sent : 0;
        if (allowed < limit)
            limit = (size_t)allowed;
        /* anti-amplification: during the handshake, wait until a whole padded datagram
         * is allowed; on a new path after a migration, send what is allowed (PATH_CHALLENGE
         * in a smaller datagram if need be, RFC 9000 8.2.1) */
        if (limit < 1200 && c->state != IR_CONN_CLOSING && !c->handshake_complete)
            return 0;
    }
    /* datagrams with PATH_CHALLENGE or PATH_RESPONSE are expanded to 1200 bytes when the
     * anti-amplification limit allows it (RFC 9000 8.2.1, 8.2.2) */
    qprobe *own = ir_conn_path_probe(path);
    int had_challenge = own && own->pending;
    int path_frames = c->state != IR_CONN_CLOSING &&
                      ir_conn_path_frames_any(path) &&
                      ir_conn_path_frames_pending(c, path, &path->addr);
    int wants[SP_COUNT], last = -1;
    for (int s = 0; s < SP_COUNT; s++) {
        wants[s] = space_wants(c, path, s);
        if (wants[s])
            last = s;
    }
    if (last < 0)
        return 0;
    size_t off = 0;
    int has_initial = 0;
    for (int s = 0; s <= last; s++) {
        if (!wants[s] || !c->epoch[s].have_tx)
            continue;
        if (s == SP_INITIAL)
            has_initial = 1;
        size_t pad = 0;
        /* every datagram with an Initial is at least 1200 bytes (RFC 9000 14.1) */
        if (s == last && (has_initial || (s == SP_APP && path_frames)))
            pad = 1200 > off ? 1200 - off : 0;
        if (limit - off < 64)
            break;
        off += ir_conn_write_packet(c, path, s, buf + off, limit - off, pad, &plan);
    }
    if (c->state == IR_CONN_CLOSING)
        c->close_pending = 0;
    if (had_challenge && !own->pending) {
        own->small = off < 1200;
        own->sent = now;
        own->count++;
    }
    if (!off)
        return 0;
    c->stats.bytes_sent += off;
    path->bytes_sent += off;
    return off;
}
