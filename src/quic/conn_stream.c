/* Streams of a QUIC connection: opening (ours and the peer's, implicitly), reading,
 * writing, resets, flow control windows (stream and connection), STREAM frames in and
 * the stream frames of a packet out. */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "quic/conn_internal.h"

void ir_conn_stream_free(qstream *s)
{
    ir_queue_remove(&s->data_link);
    ir_queue_remove(&s->ctrl_link);
    ir_sendbuf_free(&s->send);
    ir_recvbuf_free(&s->recv);
    free(s);
}

#define STREAM_UNI 0x2

#define STREAM_SERVER 0x1

static int stream_is_local(const ir_conn *c, uint64_t id)
{
    return (int)(id & STREAM_SERVER) == c->is_server;
}

qstream *ir_conn_find_stream(const ir_conn *c, uint64_t id)
{
    return ir_idmap_find(&c->streams, id);
}

static qstream *new_stream(ir_conn *c, uint64_t id)
{
    qstream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->id = id;
    s->local = stream_is_local(c, id);
    int uni = (id & STREAM_UNI) != 0;
    s->has_send = !uni || s->local;
    s->has_recv = !uni || !s->local;
    ir_sendbuf_init(&s->send);
    ir_recvbuf_init(&s->recv);
    /* windows: what we allow the peer on this stream, and what the peer allows us */
    const ir_tp *ours = &c->cfg.tp;
    if (uni)
        s->recv_window = ours->initial_max_stream_data_uni;
    else if (s->local)
        s->recv_window = ours->initial_max_stream_data_bidi_local;
    else
        s->recv_window = ours->initial_max_stream_data_bidi_remote;
    s->recv_max = s->recv_window;
    if (c->peer_tp_ok) {
        const ir_tp *t = &c->peer_tp;
        if (uni)
            s->send_max = t->initial_max_stream_data_uni;
        else if (s->local)
            s->send_max = t->initial_max_stream_data_bidi_remote;
        else
            s->send_max = t->initial_max_stream_data_bidi_local;
    }
    if (ir_idmap_insert(&c->streams, id, s) != 0) {
        ir_conn_stream_free(s);
        return NULL;
    }
    return s;
}

static uint64_t peer_stream_id(const ir_conn *c, int uni, uint64_t k)
{
    return (k << 2) | (uni ? STREAM_UNI : 0) | (c->is_server ? 0 : STREAM_SERVER);
}

uint64_t ir_conn_peer_streams(const ir_conn *c, int uni)
{
    return c->peer_opened[uni != 0];
}

uint64_t ir_conn_peer_stream_id(const ir_conn *c, int uni, uint64_t k)
{
    return peer_stream_id(c, uni != 0, k);
}

/* The stream a frame from the peer refers to, opening peer streams implicitly (RFC 9000
 * 3.2). Sets *err to a transport error for streams the peer may not use. NULL with
 * *err == 0 means an old stream that is gone: ignore the frame. */
qstream *ir_conn_peer_stream(ir_conn *c, uint64_t id, int sending, uint64_t *err)
{
    *err = 0;
    int uni = (id & STREAM_UNI) != 0;
    if (stream_is_local(c, id)) {
        if (uni && sending) {
            *err = IR_QERR_STREAM_STATE_ERROR; /* data on our own unidirectional stream */
            return NULL;
        }
        qstream *s = ir_conn_find_stream(c, id);
        if (!s && (id >> 2) >= c->next_stream[uni])
            *err = IR_QERR_STREAM_STATE_ERROR; /* never opened */
        return s;
    }
    if (uni && !sending) {
        /* MAX_STREAM_DATA / STOP_SENDING for the peer's uni stream: its receive-only on our side */
        *err = IR_QERR_STREAM_STATE_ERROR;
        return NULL;
    }
    uint64_t n = id >> 2;
    if (n >= c->local_max_streams[uni]) {
        *err = IR_QERR_STREAM_LIMIT_ERROR;
        return NULL;
    }
    qstream *s = ir_conn_find_stream(c, id);
    if (s || n < c->peer_opened[uni])
        return s;
    /* open every lower-numbered stream of this type too */
    for (uint64_t k = c->peer_opened[uni]; k <= n; k++) {
        uint64_t sid = peer_stream_id(c, uni, k);
        s = new_stream(c, sid);
        if (!s) {
            *err = IR_QERR_INTERNAL_ERROR;
            return NULL;
        }
        /* STREAM_OPENED comes from the count (ir_conn_poll_event) */
    }
    c->peer_opened[uni] = n + 1;
    return s;
}

/* a peer stream whose both halves are done frees a MAX_STREAMS credit */
void ir_conn_maybe_release_stream(ir_conn *c, qstream *s)
{
    int recv_done = !s->has_recv || s->fin_read || s->peer_reset;
    int send_done = !s->has_send || ir_sendbuf_done(&s->send) || s->reset_sent_acked;
    if (!recv_done || !send_done)
        return;
    if (!s->local && !s->counted_closed) {
        int uni = (s->id & STREAM_UNI) != 0;
        s->counted_closed = 1;
        c->peer_closed[uni]++;
        /* keep the peer's credit at the configured number of concurrent streams */
        uint64_t want = c->peer_closed[uni] + (uni ? c->cfg.tp.initial_max_streams_uni
                                                   : c->cfg.tp.initial_max_streams_bidi);
        if (want > c->local_max_streams[uni] + 0) {
            c->local_max_streams[uni] = want;
            c->max_streams_pending[uni] = 1;
        }
    }
    /* a handle may still ask whether everything was delivered: keep one that was not */
    if (s->held && !ir_sendbuf_done(&s->send))
        return;
    /* free it */
    ir_idmap_remove(&c->streams, s->id);
    ir_conn_stream_free(s);
}

int ir_conn_stream_open(ir_conn *c, int bidi, uint64_t *id)
{
    int uni = !bidi;
    if (c->state != IR_CONN_ESTABLISHED && c->state != IR_CONN_HANDSHAKE)
        return IR_QUIC_STREAM_ERR;
    if (!c->peer_tp_ok || c->next_stream[uni] >= c->peer_max_streams[uni])
        return IR_QUIC_AGAIN;
    uint64_t sid = (c->next_stream[uni] << 2) | (uni ? STREAM_UNI : 0) |
                   (c->is_server ? STREAM_SERVER : 0);
    if (!new_stream(c, sid))
        return IR_QUIC_NO_MEMORY;
    c->next_stream[uni]++;
    *id = sid;
    return 0;
}

long ir_conn_stream_write(ir_conn *c, uint64_t id, const uint8_t *data, size_t len, int fin)
{
    qstream *s = ir_conn_find_stream(c, id);
    if (!s || !s->has_send || c->state >= IR_CONN_CLOSING)
        return IR_QUIC_STREAM_ERR;
    if (s->peer_stopped) /* before the reset that answers it */
        return IR_QUIC_STREAM_STOPPED;
    if (s->send.fin || s->reset_pending || s->reset_sent)
        return IR_QUIC_STREAM_ERR;
    uint64_t room = c->cfg.max_stream_send_buffer > ir_sendbuf_buffered(&s->send)
                        ? c->cfg.max_stream_send_buffer - ir_sendbuf_buffered(&s->send)
                        : 0;
    size_t n = len < room ? len : (size_t)room;
    if (n && ir_sendbuf_write(&s->send, data, n) != 0)
        return IR_QUIC_NO_MEMORY;
    if (n < len)
        s->blocked_event = 1;
    if (fin && n == len)
        s->send.fin = 1;
    ir_conn_stream_schedule(c, s);
    return (long)n;
}

static void update_stream_window(ir_conn *c, qstream *s)
{
    /* advertise more when half the window is used; grow the window when updates come
     * more often than every two RTTs (the peer is limited by us) */
    uint64_t read = s->recv.read;
    if (s->peer_reset || s->recv.have_final)
        return;
    if (s->recv_max - read > s->recv_window / 2)
        return;
    uint64_t rtt = c->send_path->have_rtt ? c->send_path->smoothed_rtt : 100 * NS_PER_MS;
    if (s->last_window_update && c->now - s->last_window_update < 2 * rtt &&
        s->recv_window * 2 <= c->cfg.max_stream_window)
        s->recv_window *= 2;
    s->last_window_update = c->now;
    s->recv_max = read + s->recv_window;
    s->max_data_pending = 1;
    ir_conn_stream_schedule(c, s);
}

void ir_conn_update_conn_window(ir_conn *c)
{
    if (c->read_data >= c->max_data_local) {
        /* everything allowed was consumed: advertise a full window again */
        c->max_data_local = c->read_data + c->conn_window;
        c->max_data_pending = 1;
        return;
    }
    if (c->max_data_local - c->read_data > c->conn_window / 2)
        return;
    uint64_t rtt = c->send_path->have_rtt ? c->send_path->smoothed_rtt : 100 * NS_PER_MS;
    if (c->last_conn_window_update && c->now - c->last_conn_window_update < 2 * rtt &&
        c->conn_window * 2 <= c->cfg.max_conn_window)
        c->conn_window *= 2;
    c->last_conn_window_update = c->now;
    uint64_t next = c->read_data + c->conn_window;
    if (next > c->max_data_local) {
        c->max_data_local = next;
        c->max_data_pending = 1;
    }
}

long ir_conn_stream_read(ir_conn *c, uint64_t id, uint8_t *buf, size_t cap, uint64_t *code)
{
    qstream *s = ir_conn_find_stream(c, id);
    if (!s || !s->has_recv)
        return IR_QUIC_STREAM_ERR;
    if (s->peer_reset) {
        if (code)
            *code = s->peer_reset_code;
        s->fin_read = 1;
        ir_conn_maybe_release_stream(c, s);
        return IR_QUIC_STREAM_RESET;
    }
    size_t n = ir_recvbuf_read(&s->recv, buf, cap);
    if (n) {
        c->read_data += n;
        update_stream_window(c, s);
        ir_conn_update_conn_window(c);
        return (long)n;
    }
    if (ir_recvbuf_finished(&s->recv)) {
        if (!s->fin_read) {
            s->fin_read = 1;
            ir_conn_maybe_release_stream(c, s);
        }
        return 0;
    }
    if (c->state >= IR_CONN_CLOSING)
        return IR_QUIC_STREAM_ERR;
    return IR_QUIC_AGAIN;
}

int ir_conn_stream_reset(ir_conn *c, uint64_t id, uint64_t code)
{
    qstream *s = ir_conn_find_stream(c, id);
    if (!s || !s->has_send)
        return IR_QUIC_STREAM_ERR;
    if (s->reset_pending || s->reset_sent || ir_sendbuf_done(&s->send))
        return 0;
    s->reset_pending = 1;
    s->reset_code = code;
    /* nothing of the stream's data is sent any more */
    s->reset_final = s->send.next;
    ir_ranges_free(&s->send.lost);
    ir_ranges_init(&s->send.lost, 0);
    ir_conn_stream_schedule(c, s);
    return 0;
}

int ir_conn_stream_stop(ir_conn *c, uint64_t id, uint64_t code)
{
    qstream *s = ir_conn_find_stream(c, id);
    if (!s || !s->has_recv)
        return IR_QUIC_STREAM_ERR;
    if (s->recv.have_final || s->peer_reset || s->stop_sent)
        return 0;
    s->stop_pending = 1;
    s->stop_code = code;
    ir_conn_stream_schedule(c, s);
    return 0;
}

int ir_conn_stream_send_done(const ir_conn *c, uint64_t id)
{
    qstream *s = ir_conn_find_stream(c, id);
    /* a stream that is gone was finished and released */
    return !s || ir_sendbuf_done(&s->send) || s->reset_sent_acked;
}

int ir_conn_stream_send_result(const ir_conn *c, uint64_t id, uint64_t *code)
{
    qstream *s = ir_conn_find_stream(c, id);
    /* gone: released once done, and a held one that ended by a reset is kept */
    if (!s || !s->has_send || ir_sendbuf_done(&s->send))
        return IR_SEND_DELIVERED;
    if (s->peer_stopped || s->reset_pending || s->reset_sent) {
        *code = s->reset_code; /* a peer's STOP_SENDING resets with its code */
        return s->peer_stopped ? IR_SEND_STOPPED : IR_SEND_RESET;
    }
    return IR_SEND_OPEN;
}

void ir_conn_stream_hold(ir_conn *c, uint64_t id, int hold)
{
    qstream *s = ir_conn_find_stream(c, id);
    if (!s)
        return;
    s->held = hold != 0;
    if (!s->held)
        ir_conn_maybe_release_stream(c, s);
}

void ir_conn_stream_frame(ir_conn *c, const ir_frame *f)
{
    uint64_t err;
    const ir_frame_stream *sf = &f->u.stream;
    qstream *s = ir_conn_peer_stream(c, sf->stream_id, 1, &err);
    if (err) {
        ir_conn_close_with(c, 0, err, "STREAM frame for a stream the peer may not send on");
        return;
    }
    if (!s || s->peer_reset)
        return;
    int fin = (f->type & IR_FT_STREAM_FIN) != 0;
    uint64_t end = sf->offset + sf->len;
    if (end > s->recv_max) {
        ir_conn_close_with(c, 0, IR_QERR_FLOW_CONTROL_ERROR, "stream flow control exceeded");
        return;
    }
    uint64_t before = s->recv.highest;
    int rc = ir_recvbuf_put(&s->recv, sf->offset, sf->data, sf->len, fin);
    if (rc == -2) {
        ir_conn_close_with(c, 0, IR_QERR_FINAL_SIZE_ERROR, "stream final size changed");
        return;
    }
    if (rc != 0) {
        ir_conn_close_with(c, 0, IR_QERR_INTERNAL_ERROR, "out of memory");
        return;
    }
    if (s->recv.highest > before) {
        c->recv_data += s->recv.highest - before;
        if (c->recv_data > c->max_data_local) {
            ir_conn_close_with(c, 0, IR_QERR_FLOW_CONTROL_ERROR, "connection flow control exceeded");
            return;
        }
    }
    if (ir_recvbuf_readable(&s->recv) || ir_recvbuf_finished(&s->recv))
        ir_conn_push_event(c, IR_EV_STREAM_READABLE, s->id, 0);
}

static uint64_t stream_credit(const ir_conn *c)
{
    return c->max_data_remote > c->sent_data ? c->max_data_remote - c->sent_data : 0;
}

static int control_pending(const qstream *s)
{
    return s->reset_pending || s->stop_pending || s->max_data_pending;
}

/* s has data (or a FIN) to send within its own limit; *credit_free: some of it needs no
 * connection credit (lost data, a FIN alone) */
static int data_pending(const qstream *s, int *credit_free)
{
    if (!s->has_send || s->reset_sent || s->reset_pending)
        return 0;
    uint64_t off;
    size_t len;
    int fin;
    if (!ir_sendbuf_next(&s->send, s->send_max, 1200, &off, &len, &fin))
        return 0;
    *credit_free = off < s->send.next || len == 0;
    return 1;
}

void ir_conn_stream_schedule(ir_conn *c, qstream *s)
{
    if (control_pending(s))
        ir_queue_push(&c->ctrl_q, &s->ctrl_link);
    int credit_free;
    if (!data_pending(s, &credit_free))
        ir_queue_remove(&s->data_link);
    else if (s->data_link.q != &c->send_q && (credit_free || stream_credit(c) > 0))
        ir_queue_push(&c->send_q, &s->data_link);
    else if (!s->data_link.q)
        ir_queue_push(&c->conn_blocked_q, &s->data_link);
}

void ir_conn_streams_unblocked(ir_conn *c)
{
    if (stream_credit(c) > 0)
        ir_queue_splice(&c->send_q, &c->conn_blocked_q);
}

static qstream *stream_of(ir_qlink *l, int ctrl)
{
    return (qstream *)((char *)l - (ctrl ? offsetof(qstream, ctrl_link) : offsetof(qstream, data_link)));
}

/* one stream's control frames; 1 when all went out */
static int write_controls(qstream *s, pktw *w)
{
    if (s->reset_pending && pktw_can_record(w)) {
        ir_frame f = {.type = IR_FT_RESET_STREAM};
        f.u.reset_stream.stream_id = s->id;
        f.u.reset_stream.error_code = s->reset_code;
        f.u.reset_stream.final_size = s->reset_final;
        if (pktw_put_frame(w, &f)) {
            s->reset_pending = 0;
            s->reset_sent = 1;
            pktw_record(w, &ir_sf_reset_stream, s->id, 0, 0, 0, 1);
        }
    }
    if (s->stop_pending && pktw_can_record(w)) {
        ir_frame f = {.type = IR_FT_STOP_SENDING};
        f.u.stop_sending.stream_id = s->id;
        f.u.stop_sending.error_code = s->stop_code;
        if (pktw_put_frame(w, &f)) {
            s->stop_pending = 0;
            s->stop_sent = 1;
            pktw_record(w, &ir_sf_stop_sending, s->id, 0, 0, 0, 1);
        }
    }
    if (s->max_data_pending && pktw_can_record(w)) {
        ir_frame f = {.type = IR_FT_MAX_STREAM_DATA};
        f.u.stream_limit.stream_id = s->id;
        f.u.stream_limit.limit = s->recv_max;
        if (pktw_put_frame(w, &f)) {
            s->max_data_pending = 0;
            pktw_record(w, &ir_sf_max_stream_data, s->id, 0, 0, 0, 1);
        }
    }
    return !control_pending(s);
}

/* one stream's data; returns 1 if it wrote anything */
static int write_data(ir_conn *c, qstream *s, pktw *w)
{
    int wrote = 0;
    while (pktw_can_record(w) && pktw_room(w) > 8) {
        uint64_t off;
        size_t len, n;
        int fin;
        uint64_t limit = s->send_max;
        uint64_t conn_limit = s->send.next + stream_credit(c);
        if (conn_limit < limit)
            limit = conn_limit;
        if (!ir_sendbuf_next(&s->send, limit, pktw_room(w), &off, &len, &fin))
            break;
        if (ir_stream_frame_fit(pktw_room(w), s->id, off, len, 1, &n) != 0)
            break;
        if (n < len)
            fin = 0;
        if (n == 0 && !fin)
            break;
        ir_frame f = {.type = ir_stream_frame_type(off != 0, 1, fin)};
        f.u.stream.stream_id = s->id;
        f.u.stream.offset = off;
        f.u.stream.data = ir_sendbuf_at(&s->send, off);
        f.u.stream.len = n;
        if (!pktw_put_frame(w, &f))
            break;
        if (off + n > s->send.next)
            c->sent_data += off + n - s->send.next;
        ir_sendbuf_sent(&s->send, off, n, fin);
        pktw_record(w, &ir_sf_stream, s->id, off, n, fin, 1);
        wrote = 1;
    }
    return wrote;
}

/* Whether a packet should carry stream data: a queued stream has some that it may send.
 * Exact except right after the connection's credit ran out, when send_q may still hold
 * streams whose data waits for MAX_DATA: the next write_streams moves those out. */
int ir_conn_app_data_pending(const ir_conn *c)
{
    return c->dg_out_n || c->ctrl_q.n || c->send_q.n;
}

void ir_conn_write_streams(ir_conn *c, pktw *w, int data)
{
    /* control frames first, in the order they became due */
    while (c->ctrl_q.head && pktw_can_record(w)) {
        qstream *s = stream_of(c->ctrl_q.head, 1);
        if (!write_controls(s, w))
            break; /* the packet is full */
        ir_queue_remove(&s->ctrl_link);
    }
    if (!data)
        return;
    /* then data, round robin: the stream at the head writes, and goes to the tail if it
     * has more, so that the next packet starts with the next stream. Each stream once per
     * packet at most. */
    for (size_t k = c->send_q.n; k > 0 && c->send_q.head && pktw_can_record(w) && pktw_room(w) > 8; k--) {
        qstream *s = stream_of(c->send_q.head, 0);
        int wrote = write_data(c, s, w);
        int credit_free;
        if (!data_pending(s, &credit_free)) {
            ir_queue_remove(&s->data_link); /* all sent, or the stream's limit reached */
            continue;
        }
        if (!credit_free && stream_credit(c) == 0) {
            ir_queue_push(&c->conn_blocked_q, &s->data_link); /* waits for MAX_DATA */
            continue;
        }
        /* more to send: the packet is full */
        if (wrote)
            ir_queue_rotate(&s->data_link);
        break;
    }
}

/* ---- the records of stream frames: acknowledged or lost ------------------------------ */

static void stream_acked(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    qstream *s = ir_conn_find_stream(c, f->a);
    if (!s)
        return;
    ir_sendbuf_on_ack(&s->send, f->b, (size_t)f->c, f->fin);
    if (s->blocked_event && ir_sendbuf_buffered(&s->send) < c->cfg.max_stream_send_buffer / 2) {
        s->blocked_event = 0;
        ir_conn_push_event(c, IR_EV_STREAM_WRITABLE, s->id, 0);
    }
    if (ir_sendbuf_done(&s->send))
        ir_conn_maybe_release_stream(c, s);
}

static void stream_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    qstream *s = ir_conn_find_stream(c, f->a);
    if (s && !s->reset_sent && !s->reset_pending) {
        ir_sendbuf_on_lost(&s->send, f->b, (size_t)f->c, f->fin);
        ir_conn_stream_schedule(c, s);
    }
}

const sent_kind ir_sf_stream = {"STREAM", stream_acked, stream_lost, 1};

static void reset_acked(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    qstream *s = ir_conn_find_stream(c, f->a);
    if (s) {
        s->reset_sent_acked = 1;
        ir_conn_maybe_release_stream(c, s);
    }
}

static void reset_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    qstream *s = ir_conn_find_stream(c, f->a);
    if (s && !s->reset_sent_acked) {
        s->reset_pending = 1;
        s->reset_sent = 0;
        ir_conn_stream_schedule(c, s);
    }
}

const sent_kind ir_sf_reset_stream = {"RESET_STREAM", reset_acked, reset_lost, 0};

static void stop_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    qstream *s = ir_conn_find_stream(c, f->a);
    if (s && !s->recv.have_final && !s->peer_reset) {
        s->stop_pending = 1;
        ir_conn_stream_schedule(c, s);
    }
}

const sent_kind ir_sf_stop_sending = {"STOP_SENDING", NULL, stop_lost, 0};

static void max_stream_data_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    qstream *s = ir_conn_find_stream(c, f->a);
    if (s && !s->recv.have_final && !s->peer_reset) {
        s->max_data_pending = 1;
        ir_conn_stream_schedule(c, s);
    }
}

const sent_kind ir_sf_max_stream_data = {"MAX_STREAM_DATA", NULL, max_stream_data_lost, 0};

static void max_data_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    c->max_data_pending = 1;
}

const sent_kind ir_sf_max_data = {"MAX_DATA", NULL, max_data_lost, 0};

static void max_streams_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    c->max_streams_pending[f->a ? 0 : 1] = 1;
}

const sent_kind ir_sf_max_streams = {"MAX_STREAMS", NULL, max_streams_lost, 0};
