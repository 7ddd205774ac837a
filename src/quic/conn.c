/* The QUIC connection state machine: handshake, packet protection per space, frames in
 * and out, streams, flow control, connection ids, closing. Loss recovery and congestion
 * control live in recovery.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/addr.h"
#include "base/blake3.h"
#include "base/util.h"
#include "quic/conn_internal.h"
#include "quic/varint.h"

#define CID_LEN 8
#define CLIENT_DCID_LEN 16
#define MIN_PAYLOAD 4 /* pn + payload must allow a header-protection sample */
#define ACK_RANGES_MAX 32
/* ranges of received packet numbers kept exactly for duplicate detection (16 bytes each):
 * beyond them the oldest gap is filled, so at most 4 KiB per packet number space */
#define SEEN_RANGES_MAX 256
#define MAX_CLOSE_REASON 200

/* transport error codes (RFC 9000 20.1) */
enum {
    E_NO_ERROR = 0x0,
    E_INTERNAL = 0x1,
    E_CONNECTION_REFUSED = 0x2,
    E_FLOW_CONTROL = 0x3,
    E_STREAM_LIMIT = 0x4,
    E_STREAM_STATE = 0x5,
    E_FINAL_SIZE = 0x6,
    E_FRAME_ENCODING = 0x7,
    E_TRANSPORT_PARAMETER = 0x8,
    E_CONNECTION_ID_LIMIT = 0x9,
    E_PROTOCOL_VIOLATION = 0xa,
    E_KEY_UPDATE = 0xe,
    E_AEAD_LIMIT_REACHED = 0xf,
};

static void rnd(ir_conn *c, void *buf, size_t len)
{
    c->cfg.random(c->cfg.random_ctx, buf, len);
}

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

/* ---- events -------------------------------------------------------------------------- */

/* The queue holds the events that are hints (readable, writable, path changes, ...): when
 * it cannot grow, a new hint is dropped. The events whose loss would lose something are
 * raised without it: CONNECTED and CLOSED by flags, STREAM_OPENED from the count of the
 * peer's streams. */
void ir_conn_push_event(ir_conn *c, ir_event_type t, uint64_t id, uint64_t code)
{
    /* coalesce repeated readable/writable events for the same stream */
    for (size_t i = 0; i < c->ev_n; i++) {
        ir_event *e = &c->ev[(c->ev_head + i) % c->ev_cap];
        if (e->type == t && e->stream_id == id &&
            (t == IR_EV_STREAM_READABLE || t == IR_EV_STREAM_WRITABLE || t == IR_EV_DATAGRAM ||
             t == IR_EV_STREAMS_AVAILABLE))
            return;
    }
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
}

uint64_t ir_conn_hints_dropped(const ir_conn *c)
{
    return c->hints_dropped;
}

static uint64_t peer_stream_id(const ir_conn *c, int uni, uint64_t k);

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
            ev->stream_id = peer_stream_id(c, uni, c->opened_reported[uni]++);
            return 1;
        }
    }
    if (c->ev_n) {
        *ev = c->ev[c->ev_head];
        c->ev_head = (c->ev_head + 1) % c->ev_cap;
        c->ev_n--;
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

/* ---- closing --------------------------------------------------------------------------- */

static void enter_closed_event(ir_conn *c)
{
    if (!c->closed_event_sent) {
        c->closed_event_sent = 1;
        c->closed_pending = 1;
    }
}

static void close_with(ir_conn *c, int app, uint64_t code, const char *reason)
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
    c->close_deadline = c->now + 3 * ir_rec_pto(c, SP_APP);
    enter_closed_event(c);
}

void ir_conn_close(ir_conn *c, int app, uint64_t code, const char *reason, uint64_t now)
{
    c->now = now;
    /* before the handshake completes write_close sends an application close as the
     * transport error APPLICATION_ERROR (0x0c) without its reason (RFC 9000 10.2.3) */
    close_with(c, app, code, reason);
}

static void enter_draining(ir_conn *c, int app, uint64_t code, const uint8_t *reason, size_t len)
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
    c->close_deadline = c->now + 3 * ir_rec_pto(c, SP_APP);
    enter_closed_event(c);
}

static void set_closed(ir_conn *c)
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

/* ---- connection ids ------------------------------------------------------------------- */

static void reset_token_for(const ir_conn *c, const ir_cid *cid, uint8_t out[16])
{
    uint8_t full[32];
    ir_blake3_keyed_hash(c->cfg.reset_key, cid->data, cid->len, full);
    memcpy(out, full, 16);
}

static local_cid *issue_cid(ir_conn *c)
{
    if (c->path->nlcid >= MAX_LOCAL_CIDS)
        return NULL;
    local_cid *l = &c->path->lcid[c->path->nlcid++];
    memset(l, 0, sizeof *l);
    l->seq = c->path->next_lcid_seq++;
    l->cid.len = CID_LEN;
    rnd(c, l->cid.data, CID_LEN);
    reset_token_for(c, &l->cid, l->token);
    return l;
}

int ir_conn_owns_cid(const ir_conn *c, const uint8_t *cid, size_t len)
{
    for (size_t p = 0; p < c->npaths; p++) {
        const qpath *q = &c->paths[p];
        for (size_t i = 0; i < q->nlcid; i++)
            if (!q->lcid[i].retired && q->lcid[i].cid.len == len &&
                memcmp(q->lcid[i].cid.data, cid, len) == 0)
                return 1;
    }
    return 0;
}

const ir_cid *ir_conn_initial_dcid(const ir_conn *c)
{
    return c->is_server && c->retried ? &c->retry_scid : &c->odcid;
}

static const ir_cid *dcid(const ir_conn *c)
{
    return &c->path->rcid[c->path->active_rcid].cid;
}

/* ---- TLS callbacks ---------------------------------------------------------------------- */

static int space_of_level(ir_level l)
{
    return l == IR_LEVEL_INITIAL ? SP_INITIAL : l == IR_LEVEL_HANDSHAKE ? SP_HANDSHAKE : SP_APP;
}

static int tls_secret(void *ctx, ir_level level, uint16_t suite, const uint8_t *rx,
                      const uint8_t *tx, size_t len)
{
    ir_conn *c = ctx;
    if (level == IR_LEVEL_EARLY)
        return 0; /* no 0-RTT */
    ir_aead_alg aead;
    ir_hash_alg hash;
    if (ir_suite_algs(suite, &aead, &hash) != 0)
        return -1;
    pn_space *s = &KEYS(c, space_of_level(level));
    if (rx) {
        ir_pkt_keys_free(&s->rx);
        if (ir_pkt_keys_init(&s->rx, aead, hash, rx, len) != 0)
            return -1;
        s->have_rx = 1;
    }
    if (tx) {
        ir_pkt_keys_free(&s->tx);
        if (ir_pkt_keys_init(&s->tx, aead, hash, tx, len) != 0)
            return -1;
        s->have_tx = 1;
    }
    return 0;
}

static int tls_crypto(void *ctx, ir_level level, const uint8_t *data, size_t len)
{
    ir_conn *c = ctx;
    return ir_sendbuf_write(&SP(c, space_of_level(level)).crypto_send, data, len);
}

static int tp_cid_eq(const ir_tp_cid *a, const ir_cid *b)
{
    return a->len == b->len && memcmp(a->id, b->data, a->len) == 0;
}

static uint64_t tls_peer_tp(void *ctx, const uint8_t *data, size_t len)
{
    ir_conn *c = ctx;
    ir_tp tp;
    if (ir_tp_decode(data, len, !c->is_server, &tp) != 0)
        return E_TRANSPORT_PARAMETER;
    /* RFC 9000 7.3: authenticate the connection ids of the handshake */
    if (!tp.has_initial_scid || !tp_cid_eq(&tp.initial_scid, &c->initial_scid))
        return E_TRANSPORT_PARAMETER;
    if (!c->is_server) {
        if (!tp.has_original_dcid || !tp_cid_eq(&tp.original_dcid, &c->odcid))
            return E_TRANSPORT_PARAMETER;
        /* RFC 9000 7.3: retry_source_connection_id iff we followed a Retry, equal to its SCID */
        if (tp.has_retry_scid != c->retried ||
            (c->retried && !tp_cid_eq(&tp.retry_scid, &c->retry_scid)))
            return E_TRANSPORT_PARAMETER;
        if (tp.has_stateless_reset_token) {
            memcpy(c->path->rcid[0].token, tp.stateless_reset_token, 16);
            c->path->rcid[0].has_token = 1;
        }
    }
    c->peer_tp = tp;
    c->peer_tp_ok = 1;
    c->max_data_remote = tp.initial_max_data;
    c->peer_max_streams[0] = tp.initial_max_streams_bidi;
    c->peer_max_streams[1] = tp.initial_max_streams_uni;
    uint64_t ours = c->cfg.tp.max_idle_timeout, theirs = tp.max_idle_timeout;
    uint64_t idle = ours && theirs ? (ours < theirs ? ours : theirs) : (ours ? ours : theirs);
    c->idle_timeout_ns = idle * NS_PER_MS;
    return 0;
}

/* ---- creation --------------------------------------------------------------------------- */

static int common_init(ir_conn *c, const ir_conn_config *cfg, const ir_netaddr *path, uint64_t now)
{
    c->cfg = *cfg;
    c->now = now;
    c->state = IR_CONN_HANDSHAKE;
    c->npaths = 1; /* path 0 */
    c->path = &c->paths[0];
    for (int s = 0; s < SP_COUNT; s++) {
        pn_space *sp = &SP(c, s);
        sp->largest_acked = UINT64_MAX;
        sp->largest_recv = UINT64_MAX;
        sp->ack_deadline = UINT64_MAX;
        ir_pn_seen_init(&sp->seen, SEEN_RANGES_MAX);
        ir_ranges_init(&sp->ack_ranges, ACK_RANGES_MAX);
        ir_sendbuf_init(&sp->crypto_send);
        ir_recvbuf_init(&sp->crypto_recv);
    }
    ir_rec_init(c);
    c->path->pace_tokens = 10 * c->path->max_datagram;
    c->path->pace_time = now;
    c->path->addr = *path;
    c->path->validation_deadline = UINT64_MAX;
    c->last_activity = now;
    c->close_deadline = UINT64_MAX;
    c->handshake_deadline = UINT64_MAX;
    c->idle_timeout_ns = cfg->tp.max_idle_timeout * NS_PER_MS;
    c->max_data_local = cfg->tp.initial_max_data;
    c->conn_window = cfg->tp.initial_max_data;
    c->local_max_streams[0] = cfg->tp.initial_max_streams_bidi;
    c->local_max_streams[1] = cfg->tp.initial_max_streams_uni;
    c->key_phase_start_pn = 0;
    c->rx_old_largest = UINT64_MAX;
    return 0;
}

static int start_tls(ir_conn *c)
{
    ir_tp tp = c->cfg.tp;
    tp.has_initial_scid = 1;
    tp.initial_scid.len = c->path->lcid[0].cid.len;
    memcpy(tp.initial_scid.id, c->path->lcid[0].cid.data, c->path->lcid[0].cid.len);
    if (c->is_server) {
        tp.has_original_dcid = 1;
        tp.original_dcid.len = c->odcid.len;
        memcpy(tp.original_dcid.id, c->odcid.data, c->odcid.len);
        tp.has_stateless_reset_token = 1;
        memcpy(tp.stateless_reset_token, c->path->lcid[0].token, 16);
        if (c->retried) {
            tp.has_retry_scid = 1;
            tp.retry_scid.len = c->retry_scid.len;
            memcpy(tp.retry_scid.id, c->retry_scid.data, c->retry_scid.len);
        }
    }
    uint8_t enc[512];
    uint64_t seed;
    rnd(c, &seed, sizeof seed);
    size_t n = ir_tp_encode(enc, sizeof enc, &tp, c->is_server, seed);
    if (!n)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "transport parameters do not encode");
    ir_tls_config tc = {
        .identity = c->cfg.identity,
        .is_server = c->is_server,
        .alpns = c->cfg.alpns,
        .alpn_lens = c->cfg.alpn_lens,
        .n_alpns = c->cfg.n_alpns,
        .expected_peer = c->cfg.remote_id,
        .send_sni = c->cfg.send_sni,
        .server_name = c->cfg.tls_server_name,
        .local_tp = enc,
        .local_tp_len = n,
    };
    ir_tls_callbacks cb = {c, tls_secret, tls_crypto, tls_peer_tp};
    return ir_tls_new(&tc, &cb, &c->tls);
}

static int install_initial_keys(ir_conn *c, const ir_cid *cid)
{
    ir_pkt_keys client, server;
    if (ir_initial_keys(cid->data, cid->len, &client, &server) != 0)
        return ir_fail(IROH_ERR_IO, "initial keys");
    pn_space *s = &SP(c, SP_INITIAL);
    ir_pkt_keys_free(&s->rx);
    ir_pkt_keys_free(&s->tx);
    s->rx = c->is_server ? client : server;
    s->tx = c->is_server ? server : client;
    s->have_rx = s->have_tx = 1;
    return IROH_OK;
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
    c->path->validated = 1; /* a client trusts the address it dials */
    c->odcid.len = CLIENT_DCID_LEN;
    rnd(c, c->odcid.data, CLIENT_DCID_LEN);
    c->path->rcid[0].cid = c->odcid;
    c->path->nrcid = 1;
    issue_cid(c);
    int rc = install_initial_keys(c, &c->odcid);
    if (rc == IROH_OK)
        rc = start_tls(c);
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
    c->odcid = cfg->retried ? cfg->original_dcid : initial->dcid;
    if (cfg->retried) {
        c->retried = 1;
        c->retry_scid = cfg->retry_scid;
        c->path->validated = 1; /* the token proved the address (RFC 9000 8.1.2) */
    }
    if (cfg->handshake_timeout_ns)
        c->handshake_deadline = now + cfg->handshake_timeout_ns;
    c->initial_scid = initial->scid;
    c->path->rcid[0].cid = initial->scid;
    c->path->nrcid = 1;
    issue_cid(c);
    int rc = install_initial_keys(c, &initial->dcid);
    if (rc == IROH_OK)
        rc = start_tls(c);
    if (rc != IROH_OK) {
        ir_conn_free(c);
        return rc;
    }
    *out = c;
    return IROH_OK;
}

static void stream_free(qstream *s)
{
    ir_sendbuf_free(&s->send);
    ir_recvbuf_free(&s->recv);
    free(s);
}

void ir_conn_free(ir_conn *c)
{
    if (!c)
        return;
    ir_tls_free(c->tls);
    free(c->retry_token);
    for (size_t i = 0; i <= SP_HANDSHAKE + c->npaths; i++) {
        /* the Initial and Handshake spaces, then each path's 1-RTT space */
        pn_space *sp = i < SP_APP ? &c->sp[i] : &c->paths[i - SP_APP].app;
        ir_pkt_keys_free(&sp->rx);
        ir_pkt_keys_free(&sp->tx);
        free(sp->sent);
        ir_pn_seen_free(&sp->seen);
        ir_ranges_free(&sp->ack_ranges);
        ir_sendbuf_free(&sp->crypto_send);
        ir_recvbuf_free(&sp->crypto_recv);
    }
    ir_pkt_keys_free(&c->rx_next);
    ir_pkt_keys_free(&c->rx_prev);
    for (size_t i = 0; i < c->nstreams; i++)
        stream_free(c->streams[i]);
    free(c->streams);
    for (size_t i = 0; i < c->dg_in_n; i++)
        free(c->dg_in[(c->dg_in_head + i) % DGRAM_QUEUE].data);
    for (size_t i = 0; i < c->dg_out_n; i++)
        free(c->dg_out[(c->dg_out_head + i) % DGRAM_QUEUE].data);
    free(c->ev);
    free(c);
}

const ir_netaddr *ir_conn_path_addr(const ir_conn *c)
{
    return &c->path->addr;
}

int ir_conn_peer_id(const ir_conn *c, iroh_endpoint_id *out)
{
    return c->handshake_complete ? ir_tls_peer_id(c->tls, out) : -1;
}

const uint8_t *ir_conn_alpn(const ir_conn *c, size_t *len)
{
    return ir_tls_alpn(c->tls, len);
}

/* ---- streams -------------------------------------------------------------------------- */

#define STREAM_UNI 0x2
#define STREAM_SERVER 0x1

static int stream_is_local(const ir_conn *c, uint64_t id)
{
    return (int)(id & STREAM_SERVER) == c->is_server;
}

static qstream *find_stream(const ir_conn *c, uint64_t id)
{
    for (size_t i = 0; i < c->nstreams; i++)
        if (c->streams[i]->id == id)
            return c->streams[i];
    return NULL;
}

static qstream *new_stream(ir_conn *c, uint64_t id)
{
    if (c->nstreams == c->capstreams) {
        size_t cap = c->capstreams ? c->capstreams * 2 : 16;
        qstream **p = realloc(c->streams, cap * sizeof *p);
        if (!p)
            return NULL;
        c->streams = p;
        c->capstreams = cap;
    }
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
    c->streams[c->nstreams++] = s;
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
static qstream *peer_stream(ir_conn *c, uint64_t id, int sending, uint64_t *err)
{
    *err = 0;
    int uni = (id & STREAM_UNI) != 0;
    if (stream_is_local(c, id)) {
        if (uni && sending) {
            *err = E_STREAM_STATE; /* data on our own unidirectional stream */
            return NULL;
        }
        qstream *s = find_stream(c, id);
        if (!s && (id >> 2) >= c->next_stream[uni])
            *err = E_STREAM_STATE; /* never opened */
        return s;
    }
    if (uni && !sending) {
        /* MAX_STREAM_DATA / STOP_SENDING for the peer's uni stream: its receive-only on our side */
        *err = E_STREAM_STATE;
        return NULL;
    }
    uint64_t n = id >> 2;
    if (n >= c->local_max_streams[uni]) {
        *err = E_STREAM_LIMIT;
        return NULL;
    }
    qstream *s = find_stream(c, id);
    if (s || n < c->peer_opened[uni])
        return s;
    /* open every lower-numbered stream of this type too */
    for (uint64_t k = c->peer_opened[uni]; k <= n; k++) {
        uint64_t sid = peer_stream_id(c, uni, k);
        s = new_stream(c, sid);
        if (!s) {
            *err = E_INTERNAL;
            return NULL;
        }
        /* STREAM_OPENED comes from the count (ir_conn_poll_event) */
    }
    c->peer_opened[uni] = n + 1;
    return s;
}

/* a peer stream whose both halves are done frees a MAX_STREAMS credit */
static void maybe_release_stream(ir_conn *c, qstream *s)
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
    for (size_t i = 0; i < c->nstreams; i++) {
        if (c->streams[i] == s) {
            memmove(&c->streams[i], &c->streams[i + 1], (c->nstreams - i - 1) * sizeof *c->streams);
            c->nstreams--;
            break;
        }
    }
    stream_free(s);
}

int ir_conn_stream_open(ir_conn *c, int bidi, uint64_t *id)
{
    int uni = !bidi;
    if (c->state != IR_CONN_ESTABLISHED && c->state != IR_CONN_HANDSHAKE)
        return IR_STREAM_ERR;
    if (!c->peer_tp_ok || c->next_stream[uni] >= c->peer_max_streams[uni])
        return IR_AGAIN;
    uint64_t sid = (c->next_stream[uni] << 2) | (uni ? STREAM_UNI : 0) |
                   (c->is_server ? STREAM_SERVER : 0);
    if (!new_stream(c, sid))
        return IR_NO_MEMORY;
    c->next_stream[uni]++;
    *id = sid;
    return 0;
}

long ir_conn_stream_write(ir_conn *c, uint64_t id, const uint8_t *data, size_t len, int fin)
{
    qstream *s = find_stream(c, id);
    if (!s || !s->has_send || s->send.fin || s->reset_pending || s->reset_sent ||
        c->state >= IR_CONN_CLOSING)
        return IR_STREAM_ERR;
    if (s->peer_stopped)
        return IR_STREAM_ERR;
    uint64_t room = c->cfg.max_stream_send_buffer > ir_sendbuf_buffered(&s->send)
                        ? c->cfg.max_stream_send_buffer - ir_sendbuf_buffered(&s->send)
                        : 0;
    size_t n = len < room ? len : (size_t)room;
    if (n && ir_sendbuf_write(&s->send, data, n) != 0)
        return IR_STREAM_ERR;
    if (n < len)
        s->blocked_event = 1;
    if (fin && n == len)
        s->send.fin = 1;
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
    uint64_t rtt = c->path->have_rtt ? c->path->smoothed_rtt : 100 * NS_PER_MS;
    if (s->last_window_update && c->now - s->last_window_update < 2 * rtt &&
        s->recv_window * 2 <= c->cfg.max_stream_window)
        s->recv_window *= 2;
    s->last_window_update = c->now;
    s->recv_max = read + s->recv_window;
    s->max_data_pending = 1;
}

static void update_conn_window(ir_conn *c)
{
    if (c->read_data >= c->max_data_local) {
        /* everything allowed was consumed: advertise a full window again */
        c->max_data_local = c->read_data + c->conn_window;
        c->max_data_pending = 1;
        return;
    }
    if (c->max_data_local - c->read_data > c->conn_window / 2)
        return;
    uint64_t rtt = c->path->have_rtt ? c->path->smoothed_rtt : 100 * NS_PER_MS;
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
    qstream *s = find_stream(c, id);
    if (!s || !s->has_recv)
        return IR_STREAM_ERR;
    if (s->peer_reset) {
        if (code)
            *code = s->peer_reset_code;
        s->fin_read = 1;
        maybe_release_stream(c, s);
        return IR_STREAM_RESET;
    }
    size_t n = ir_recvbuf_read(&s->recv, buf, cap);
    if (n) {
        c->read_data += n;
        update_stream_window(c, s);
        update_conn_window(c);
        return (long)n;
    }
    if (ir_recvbuf_finished(&s->recv)) {
        if (!s->fin_read) {
            s->fin_read = 1;
            maybe_release_stream(c, s);
        }
        return 0;
    }
    if (c->state >= IR_CONN_CLOSING)
        return IR_STREAM_ERR;
    return IR_AGAIN;
}

int ir_conn_stream_reset(ir_conn *c, uint64_t id, uint64_t code)
{
    qstream *s = find_stream(c, id);
    if (!s || !s->has_send)
        return IR_STREAM_ERR;
    if (s->reset_pending || s->reset_sent || ir_sendbuf_done(&s->send))
        return 0;
    s->reset_pending = 1;
    s->reset_code = code;
    /* nothing of the stream's data is sent any more */
    s->reset_final = s->send.next;
    ir_ranges_free(&s->send.lost);
    ir_ranges_init(&s->send.lost, 0);
    return 0;
}

int ir_conn_stream_stop(ir_conn *c, uint64_t id, uint64_t code)
{
    qstream *s = find_stream(c, id);
    if (!s || !s->has_recv)
        return IR_STREAM_ERR;
    if (s->recv.have_final || s->peer_reset || s->stop_sent)
        return 0;
    s->stop_pending = 1;
    s->stop_code = code;
    return 0;
}

int ir_conn_stream_send_done(const ir_conn *c, uint64_t id)
{
    qstream *s = find_stream(c, id);
    /* a stream that is gone was finished and released */
    return !s || ir_sendbuf_done(&s->send) || s->reset_sent_acked;
}

int ir_conn_stream_send_result(const ir_conn *c, uint64_t id, uint64_t *code)
{
    qstream *s = find_stream(c, id);
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
    qstream *s = find_stream(c, id);
    if (!s)
        return;
    s->held = hold != 0;
    if (!s->held)
        maybe_release_stream(c, s);
}

/* ---- datagrams ---------------------------------------------------------------------- */

size_t ir_conn_datagram_max(const ir_conn *c)
{
    if (!c->peer_tp_ok || !c->peer_tp.max_datagram_frame_size)
        return 0;
    /* one short-header packet: 1 + dcid + 4 (pn) + tag, frame type + length */
    size_t room = c->path->max_datagram - 1 - dcid(c)->len - 4 - IR_AEAD_TAG_LEN - 1 - 2;
    if (room > c->peer_tp.max_datagram_frame_size)
        room = (size_t)c->peer_tp.max_datagram_frame_size;
    return room;
}

int ir_conn_datagram_send(ir_conn *c, const uint8_t *data, size_t len)
{
    if (c->state >= IR_CONN_CLOSING || len > ir_conn_datagram_max(c))
        return IR_STREAM_ERR;
    if (c->dg_out_n == DGRAM_QUEUE)
        return IR_AGAIN;
    dgram *d = &c->dg_out[(c->dg_out_head + c->dg_out_n) % DGRAM_QUEUE];
    d->data = malloc(len ? len : 1);
    if (!d->data)
        return IR_STREAM_ERR;
    if (len)
        memcpy(d->data, data, len);
    d->len = len;
    c->dg_out_n++;
    return 0;
}

long ir_conn_datagram_recv(ir_conn *c, uint8_t *buf, size_t cap)
{
    if (!c->dg_in_n)
        return c->state >= IR_CONN_CLOSING ? IR_STREAM_ERR : IR_AGAIN;
    dgram *d = &c->dg_in[c->dg_in_head];
    size_t n = d->len < cap ? d->len : cap;
    if (n)
        memcpy(buf, d->data, n);
    free(d->data);
    d->data = NULL;
    c->dg_in_head = (c->dg_in_head + 1) % DGRAM_QUEUE;
    c->dg_in_n--;
    return (long)n;
}

static void datagram_received(ir_conn *c, const uint8_t *data, size_t len)
{
    if (c->dg_in_n == DGRAM_QUEUE) { /* drop the oldest: datagrams are unreliable */
        free(c->dg_in[c->dg_in_head].data);
        c->dg_in_head = (c->dg_in_head + 1) % DGRAM_QUEUE;
        c->dg_in_n--;
    }
    dgram *d = &c->dg_in[(c->dg_in_head + c->dg_in_n) % DGRAM_QUEUE];
    d->data = malloc(len ? len : 1);
    if (!d->data)
        return;
    if (len)
        memcpy(d->data, data, len);
    d->len = len;
    c->dg_in_n++;
    ir_conn_push_event(c, IR_EV_DATAGRAM, 0, 0);
}

/* ---- handshake progress ---------------------------------------------------------------- */

static void discard_space(ir_conn *c, int s)
{
    if (SP(c, s).discarded)
        return;
    ir_rec_discard_space(c, s);
    ir_pkt_keys_free(&SP(c, s).rx);
    ir_pkt_keys_free(&SP(c, s).tx);
    SP(c, s).have_rx = SP(c, s).have_tx = 0;
    /* nothing of the space is needed any more: give its memory back */
    free(SP(c, s).sent);
    SP(c, s).sent = NULL;
    SP(c, s).capsent = 0;
    ir_sendbuf_free(&SP(c, s).crypto_send);
    ir_recvbuf_free(&SP(c, s).crypto_recv);
    ir_sendbuf_init(&SP(c, s).crypto_send);
    ir_recvbuf_init(&SP(c, s).crypto_recv);
    ir_pn_seen_free(&SP(c, s).seen);
    ir_ranges_free(&SP(c, s).ack_ranges);
}

static void issue_more_cids(ir_conn *c)
{
    uint64_t limit = c->peer_tp_ok ? c->peer_tp.active_connection_id_limit : 2;
    if (limit > MAX_LOCAL_CIDS)
        limit = MAX_LOCAL_CIDS;
    size_t active = 0;
    for (size_t i = 0; i < c->path->nlcid; i++)
        active += !c->path->lcid[i].retired;
    while (active < limit && c->path->nlcid < MAX_LOCAL_CIDS) {
        local_cid *l = issue_cid(c);
        if (!l)
            break;
        l->announce_pending = 1;
        active++;
    }
}

static void on_handshake_complete(ir_conn *c)
{
    if (c->handshake_complete)
        return;
    c->handshake_complete = 1;
    c->state = IR_CONN_ESTABLISHED;
    /* address discovery: we report if we may send and the peer wants to receive */
    if (c->cfg.tp.has_observed_address && c->peer_tp.has_observed_address) {
        uint64_t mine = c->cfg.tp.observed_address_role, theirs = c->peer_tp.observed_address_role;
        c->qad_send = (mine == 0 || mine == 2) && (theirs == 1 || theirs == 2) && c->cfg.addr_of;
        c->qad_recv = (mine == 1 || mine == 2) && (theirs == 0 || theirs == 2);
        c->observed_pending = c->qad_send;
    }
    if (c->is_server) {
        c->handshake_confirmed = 1;
        c->handshake_done_pending = 1;
        discard_space(c, SP_HANDSHAKE);
    }
    issue_more_cids(c);
    c->connected_pending = 1;
}

static void crypto_received(ir_conn *c, int space, const ir_frame_crypto *f)
{
    pn_space *sp = &SP(c, space);
    if (f->offset + f->len > sp->crypto_recv.read + 65536) {
        close_with(c, 0, 0x0d /* CRYPTO_BUFFER_EXCEEDED */, "too much handshake data buffered");
        return;
    }
    if (ir_recvbuf_put(&sp->crypto_recv, f->offset, f->data, f->len, 0) != 0) {
        close_with(c, 0, E_INTERNAL, "out of memory");
        return;
    }
    uint8_t buf[4096];
    size_t n;
    ir_level level = space == SP_INITIAL ? IR_LEVEL_INITIAL
                     : space == SP_HANDSHAKE ? IR_LEVEL_HANDSHAKE
                                             : IR_LEVEL_APP;
    while ((n = ir_recvbuf_read(&sp->crypto_recv, buf, sizeof buf)) > 0) {
        if (ir_tls_feed(c->tls, level, buf, n) != 0) {
            const char *why;
            uint64_t code = ir_tls_error(c->tls, &why);
            close_with(c, 0, code ? code : 0x128, why);
            return;
        }
    }
    if (ir_tls_complete(c->tls))
        on_handshake_complete(c);
}

/* ---- frames in --------------------------------------------------------------------------- */

static unsigned pkt_bit(int space)
{
    return space == SP_INITIAL ? IR_PKT_INITIAL : space == SP_HANDSHAKE ? IR_PKT_HANDSHAKE : IR_PKT_1RTT;
}

static int extension_ok(const ir_conn *c, unsigned info)
{
    if ((info & IR_FRAME_NEEDS_DATAGRAM) && !c->cfg.tp.max_datagram_frame_size)
        return 0;
    if ((info & IR_FRAME_NEEDS_ACK_FREQUENCY) && !c->cfg.tp.has_min_ack_delay)
        return 0;
    if ((info & IR_FRAME_NEEDS_ADDR_DISCOVERY) && !c->qad_recv)
        return 0; /* only a receiver of address reports may get them */
    if (info & (IR_FRAME_NEEDS_MULTIPATH | IR_FRAME_NEEDS_NAT_TRAVERSAL))
        return 0; /* not offered yet */
    return 1;
}

static void stream_frame(ir_conn *c, const ir_frame *f)
{
    uint64_t err;
    const ir_frame_stream *sf = &f->u.stream;
    qstream *s = peer_stream(c, sf->stream_id, 1, &err);
    if (err) {
        close_with(c, 0, err, "STREAM frame for a stream the peer may not send on");
        return;
    }
    if (!s || s->peer_reset)
        return;
    int fin = (f->type & IR_FT_STREAM_FIN) != 0;
    uint64_t end = sf->offset + sf->len;
    if (end > s->recv_max) {
        close_with(c, 0, E_FLOW_CONTROL, "stream flow control exceeded");
        return;
    }
    uint64_t before = s->recv.highest;
    int rc = ir_recvbuf_put(&s->recv, sf->offset, sf->data, sf->len, fin);
    if (rc == -2) {
        close_with(c, 0, E_FINAL_SIZE, "stream final size changed");
        return;
    }
    if (rc != 0) {
        close_with(c, 0, E_INTERNAL, "out of memory");
        return;
    }
    if (s->recv.highest > before) {
        c->recv_data += s->recv.highest - before;
        if (c->recv_data > c->max_data_local) {
            close_with(c, 0, E_FLOW_CONTROL, "connection flow control exceeded");
            return;
        }
    }
    if (ir_recvbuf_readable(&s->recv) || ir_recvbuf_finished(&s->recv))
        ir_conn_push_event(c, IR_EV_STREAM_READABLE, s->id, 0);
}

static void new_cid_frame(ir_conn *c, const ir_frame_new_cid *f)
{
    for (size_t i = 0; i < c->path->nrcid; i++) {
        if (c->path->rcid[i].seq == f->seq) {
            if (c->path->rcid[i].cid.len != f->cid_len || memcmp(c->path->rcid[i].cid.data, f->cid, f->cid_len))
                close_with(c, 0, E_PROTOCOL_VIOLATION, "connection id sequence reused");
            return;
        }
    }
    if (f->seq < c->path->rcid_retire_prior_to) {
        /* already retired: retire it again right away */
        if (c->path->nrcid < MAX_REMOTE_CIDS) {
            remote_cid *r = &c->path->rcid[c->path->nrcid++];
            memset(r, 0, sizeof *r);
            r->seq = f->seq;
            r->retire_pending = 1;
        }
        return;
    }
    if (f->retire_prior_to > c->path->rcid_retire_prior_to) {
        c->path->rcid_retire_prior_to = f->retire_prior_to;
        for (size_t i = 0; i < c->path->nrcid; i++)
            if (c->path->rcid[i].seq < f->retire_prior_to)
                c->path->rcid[i].retire_pending = 1;
    }
    size_t live = 0;
    for (size_t i = 0; i < c->path->nrcid; i++)
        live += !c->path->rcid[i].retire_pending;
    if (live + 1 > c->cfg.tp.active_connection_id_limit || c->path->nrcid >= MAX_REMOTE_CIDS) {
        close_with(c, 0, E_CONNECTION_ID_LIMIT, "too many connection ids");
        return;
    }
    remote_cid *r = &c->path->rcid[c->path->nrcid++];
    memset(r, 0, sizeof *r);
    r->seq = f->seq;
    r->cid.len = f->cid_len;
    memcpy(r->cid.data, f->cid, f->cid_len);
    memcpy(r->token, f->reset_token, IR_RESET_TOKEN_LEN);
    r->has_token = 1;
    /* move off a retired active id */
    if (c->path->rcid[c->path->active_rcid].retire_pending) {
        for (size_t i = 0; i < c->path->nrcid; i++) {
            if (!c->path->rcid[i].retire_pending) {
                c->path->active_rcid = i;
                break;
            }
        }
    }
}

static void retire_cid_frame(ir_conn *c, uint64_t seq, const ir_cid *pkt_dcid)
{
    if (seq >= c->path->next_lcid_seq) {
        close_with(c, 0, E_PROTOCOL_VIOLATION, "retiring a connection id never issued");
        return;
    }
    for (size_t i = 0; i < c->path->nlcid; i++) {
        local_cid *l = &c->path->lcid[i];
        if (l->seq != seq || l->retired)
            continue;
        if (ir_cid_eq(&l->cid, pkt_dcid)) {
            close_with(c, 0, E_PROTOCOL_VIOLATION, "retiring the connection id in use");
            return;
        }
        l->retired = 1;
        l->announce_pending = 0;
        /* reuse the slot: compact the table */
        memmove(l, l + 1, (c->path->nlcid - i - 1) * sizeof *l);
        c->path->nlcid--;
        issue_more_cids(c);
        return;
    }
}

/* ---- path validation (RFC 9000 8.2) ------------------------------------------------------ */

/* Starts validating path 0 (a new peer address, or the path MTU of the current one): a new
 * PATH_CHALLENGE, sent again after each PTO (doubling) until answered, abandoned after
 * three times the larger of the PTO and the PTO of a new path (8.2.4). */
static void start_validation(ir_conn *c)
{
    qpath *p = c->path;
    rnd(c, p->challenge, 8);
    p->challenge_pending = 1;
    p->challenge_outstanding = 1;
    p->challenge_small = 0;
    p->challenge_count = 0;
    uint64_t pto = ir_rec_pto(c, SP_APP), first = ir_rec_initial_pto(c);
    p->validation_deadline = c->now + 3 * (pto > first ? pto : first);
}

static void abandon_validation(ir_conn *c)
{
    qpath *p = c->path;
    p->challenge_pending = p->challenge_outstanding = p->challenge_small = 0;
    p->validation_deadline = UINT64_MAX;
    if (!p->validated && p->have_prev) {
        /* back to the last validated address (9.3.2); packets from the new one with higher
         * packet numbers would move us there again */
        p->addr = p->prev_addr;
        p->validated = 1;
        p->have_prev = 0;
    }
}

static uint64_t path_timer(const ir_conn *c)
{
    const qpath *p = c->path;
    if (!p->challenge_outstanding || c->state != IR_CONN_ESTABLISHED)
        return UINT64_MAX;
    uint64_t t = p->validation_deadline;
    if (!p->challenge_pending && p->challenge_count) {
        unsigned k = p->challenge_count - 1 < 10 ? p->challenge_count - 1 : 10;
        uint64_t again = p->challenge_sent + (ir_rec_pto(c, SP_APP) << k);
        if (again < t)
            t = again;
    }
    return t;
}

static void path_on_timeout(ir_conn *c, uint64_t now)
{
    qpath *p = c->path;
    if (!p->challenge_outstanding || c->state != IR_CONN_ESTABLISHED)
        return;
    if (now >= p->validation_deadline)
        abandon_validation(c);
    else if (!p->challenge_pending && p->challenge_count && path_timer(c) <= now)
        p->challenge_pending = 1; /* the challenge or its response was lost */
}

/* Returns 1 if the frames made the packet ack-eliciting, 0 if not, -1 after closing. */
/* OBSERVED_ADDRESS: the newest report (by sequence number) is our address as the peer
 * sees it; an IPv4-mapped IPv6 address counts as IPv4 */
static void observed_address(ir_conn *c, const ir_frame *f)
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

static int process_frames(ir_conn *c, int space, const ir_netaddr *from, const ir_cid *pkt_dcid,
                          const uint8_t *p, size_t len, int *non_probing)
{
    ir_cursor cur;
    ir_cursor_init(&cur, p, len);
    int eliciting = 0;
    if (len == 0) {
        close_with(c, 0, E_PROTOCOL_VIOLATION, "packet without frames");
        return -1;
    }
    while (ir_cursor_left(&cur) > 0 && c->state < IR_CONN_CLOSING) {
        ir_frame f;
        int rc = ir_frame_decode(&cur, &f);
        if (rc < 0) {
            close_with(c, 0, (uint64_t)-rc, "malformed frame");
            return -1;
        }
        unsigned info = ir_frame_info(f.type);
        if (!(info & pkt_bit(space)) || !extension_ok(c, info)) {
            close_with(c, 0, E_PROTOCOL_VIOLATION, "frame not allowed here");
            return -1;
        }
        if (info & IR_FRAME_ACK_ELICITING)
            eliciting = 1;
        if (!(info & IR_FRAME_PROBING))
            *non_probing = 1;
        switch (f.type) {
        case IR_FT_PADDING:
        case IR_FT_PING:
            break;
        case IR_FT_ACK:
        case IR_FT_ACK_ECN:
            if (ir_rec_on_ack(c, space, &f.u.ack, c->now) != 0) {
                close_with(c, 0, E_PROTOCOL_VIOLATION, "ACK of a packet never sent");
                return -1;
            }
            if (space == SP_APP && c->key_update_pending_ack &&
                f.u.ack.largest >= c->key_phase_start_pn) {
                c->key_update_pending_ack = 0; /* the current key phase is confirmed */
                c->key_update_confirmed = c->now ? c->now : 1;
            }
            break;
        case IR_FT_CRYPTO:
            crypto_received(c, space, &f.u.crypto);
            break;
        case IR_FT_NEW_TOKEN:
            if (c->is_server) {
                close_with(c, 0, E_PROTOCOL_VIOLATION, "NEW_TOKEN from a client");
                return -1;
            }
            break;
        case IR_FT_RESET_STREAM: {
            uint64_t err;
            qstream *s = peer_stream(c, f.u.reset_stream.stream_id, 1, &err);
            if (err) {
                close_with(c, 0, err, "RESET_STREAM for a stream the peer does not send on");
                return -1;
            }
            if (!s || s->peer_reset)
                break;
            uint64_t fs = f.u.reset_stream.final_size;
            if ((s->recv.have_final && fs != s->recv.final_size) || fs < s->recv.highest) {
                close_with(c, 0, E_FINAL_SIZE, "RESET_STREAM final size");
                return -1;
            }
            if (fs > s->recv_max) {
                close_with(c, 0, E_FLOW_CONTROL, "RESET_STREAM beyond flow control");
                return -1;
            }
            if (c->recv_data + (fs - s->recv.highest) > c->max_data_local) {
                close_with(c, 0, E_FLOW_CONTROL, "RESET_STREAM beyond connection flow control");
                return -1;
            }
            c->recv_data += fs - s->recv.highest;
            c->read_data += fs - s->recv.read; /* nothing more will be read */
            s->peer_reset = 1;
            s->peer_reset_code = f.u.reset_stream.error_code;
            update_conn_window(c);
            ir_conn_push_event(c, IR_EV_STREAM_READABLE, s->id, 0);
            break;
        }
        case IR_FT_STOP_SENDING: {
            uint64_t err;
            qstream *s = peer_stream(c, f.u.stop_sending.stream_id, 0, &err);
            if (err) {
                close_with(c, 0, err, "STOP_SENDING for a stream we do not send on");
                return -1;
            }
            if (!s || s->peer_stopped)
                break;
            s->peer_stopped = 1;
            ir_conn_stream_reset(c, s->id, f.u.stop_sending.error_code);
            ir_conn_push_event(c, IR_EV_STREAM_STOPPED, s->id, f.u.stop_sending.error_code);
            break;
        }
        case IR_FT_MAX_DATA:
            if (f.u.limit > c->max_data_remote) {
                c->max_data_remote = f.u.limit;
                for (size_t i = 0; i < c->nstreams; i++)
                    if (c->streams[i]->has_send)
                        ir_conn_push_event(c, IR_EV_STREAM_WRITABLE, c->streams[i]->id, 0);
            }
            break;
        case IR_FT_MAX_STREAM_DATA: {
            uint64_t err;
            qstream *s = peer_stream(c, f.u.stream_limit.stream_id, 0, &err);
            if (err) {
                close_with(c, 0, err, "MAX_STREAM_DATA for a stream we do not send on");
                return -1;
            }
            if (s && f.u.stream_limit.limit > s->send_max) {
                s->send_max = f.u.stream_limit.limit;
                ir_conn_push_event(c, IR_EV_STREAM_WRITABLE, s->id, 0);
            }
            break;
        }
        case IR_FT_MAX_STREAMS_BIDI:
        case IR_FT_MAX_STREAMS_UNI: {
            int uni = f.type == IR_FT_MAX_STREAMS_UNI;
            if (f.u.limit > c->peer_max_streams[uni]) {
                c->peer_max_streams[uni] = f.u.limit;
                ir_conn_push_event(c, IR_EV_STREAMS_AVAILABLE, 0, (uint64_t)uni);
            }
            break;
        }
        case IR_FT_STREAM_DATA_BLOCKED: {
            /* only a sender blocks: not on a stream the peer cannot send on (RFC 9000
             * 19.13); it opens a peer's stream like STREAM does (3.2) */
            uint64_t err;
            peer_stream(c, f.u.stream_limit.stream_id, 1, &err);
            if (err) {
                close_with(c, 0, err, "STREAM_DATA_BLOCKED for a stream the peer does not send on");
                return -1;
            }
            break;
        }
        case IR_FT_DATA_BLOCKED:
        case IR_FT_STREAMS_BLOCKED_BIDI:
        case IR_FT_STREAMS_BLOCKED_UNI:
            break;
        case IR_FT_NEW_CONNECTION_ID:
            new_cid_frame(c, &f.u.new_cid);
            break;
        case IR_FT_RETIRE_CONNECTION_ID:
            retire_cid_frame(c, f.u.retire_cid.seq, pkt_dcid);
            break;
        case IR_FT_PATH_CHALLENGE:
            c->path->response_pending = 1;
            memcpy(c->path->response, f.u.path_data, 8);
            c->path->response_addr = *from;
            break;
        case IR_FT_PATH_RESPONSE:
            /* it validates the path the challenge went out on, path 0, whatever path it
             * comes back on (RFC 9000 8.2.2, 8.2.3) */
            if (c->path->challenge_outstanding && memcmp(f.u.path_data, c->path->challenge, 8) == 0) {
                int small = c->path->challenge_small;
                if (!c->path->validated)
                    ir_conn_push_event(c, IR_EV_PATH_VALIDATED, 0, 0);
                c->path->validated = 1;
                c->path->have_prev = 0;
                abandon_validation(c); /* done: clears the challenge and its timers */
                /* a challenge that was not expanded leaves the path MTU to validate with
                 * one in a full-size datagram (RFC 9000 8.2.1) */
                if (small)
                    start_validation(c);
            }
            break;
        case IR_FT_CONNECTION_CLOSE:
        case IR_FT_APPLICATION_CLOSE:
            enter_draining(c, f.type == IR_FT_APPLICATION_CLOSE, f.u.close.error_code,
                           f.u.close.reason, f.u.close.reason_len);
            return -1;
        case IR_FT_HANDSHAKE_DONE:
            if (c->is_server) {
                close_with(c, 0, E_PROTOCOL_VIOLATION, "HANDSHAKE_DONE from a client");
                return -1;
            }
            if (!c->handshake_confirmed) {
                c->handshake_confirmed = 1;
                discard_space(c, SP_HANDSHAKE);
            }
            break;
        case IR_FT_DATAGRAM:
        case IR_FT_DATAGRAM_LEN:
            if (f.u.datagram.len > c->cfg.tp.max_datagram_frame_size) {
                close_with(c, 0, E_PROTOCOL_VIOLATION, "DATAGRAM larger than allowed");
                return -1;
            }
            datagram_received(c, f.u.datagram.data, f.u.datagram.len);
            break;
        case IR_FT_IMMEDIATE_ACK:
            SP(c, space).ack_pending = 1;
            break;
        case IR_FT_ACK_FREQUENCY:
            break; /* we keep our own ack policy; the peer's request is only a hint */
        case IR_FT_OBSERVED_ADDRESS_V4:
        case IR_FT_OBSERVED_ADDRESS_V6:
            observed_address(c, &f); /* extension_ok checked that we receive them */
            break;
        default:
            if ((f.type & ~(uint64_t)7) == IR_FT_STREAM) {
                stream_frame(c, &f);
                break;
            }
            close_with(c, 0, E_PROTOCOL_VIOLATION, "unexpected frame");
            return -1;
        }
    }
    return c->state >= IR_CONN_CLOSING ? -1 : eliciting;
}

/* ---- packets in --------------------------------------------------------------------------- */

static int space_of_type(ir_pkt_type t)
{
    return t == IR_PT_INITIAL ? SP_INITIAL : t == IR_PT_HANDSHAKE ? SP_HANDSHAKE : SP_APP;
}

/* ---- AEAD limits (RFC 9001 6.6) ------------------------------------------------------- */

static uint64_t aead_limit(uint64_t suite, uint64_t cfg)
{
    if (cfg && cfg < 16)
        cfg = 16;
    return cfg && cfg < suite ? cfg : suite;
}

static uint64_t conf_limit(const ir_conn *c, const ir_pkt_keys *k)
{
    return aead_limit(ir_aead_conf_limit(k->alg), c->cfg.aead_conf_limit);
}

/* a packet did not authenticate under k: more such packets in the connection than the
 * integrity limit of the key's AEAD end it at once (RFC 9001 6.6), and nothing more is
 * processed (a closing connection only answers with its CONNECTION_CLOSE) */
static void open_failed(ir_conn *c, ir_pkt_keys *k)
{
    k->open_failed++;
    c->aead_failures++;
    if (c->aead_failures > aead_limit(ir_aead_integrity_limit(k->alg), c->cfg.aead_integrity_limit))
        close_with(c, 0, E_AEAD_LIMIT_REACHED, "AEAD integrity limit: too many packets failed authentication");
}

static int start_key_update(ir_conn *c);

/* Before a datagram is built (RFC 9001 6.6): from half the confidentiality limit on, the
 * 1-RTT keys are updated as soon as 6.1 and 6.5 allow it; a key at 15/16 of the limit that
 * was not updated (or cannot be: Initial, Handshake) closes the connection with
 * AEAD_LIMIT_REACHED, and the rest of the limit is left for the CONNECTION_CLOSE. */
static void check_conf_limits(ir_conn *c)
{
    for (int s = 0; s < SP_COUNT; s++) {
        pn_space *ks = &KEYS(c, s);
        if (!ks->have_tx || SP(c, s).discarded)
            continue;
        uint64_t limit = conf_limit(c, &ks->tx);
        if (s == SP_APP && ks->tx.sealed >= limit / 2 && c->state == IR_CONN_ESTABLISHED)
            start_key_update(c); /* refused while not allowed yet: tried again next time */
        if (ks->tx.sealed >= limit - limit / 16 && c->state < IR_CONN_CLOSING)
            close_with(c, 0, E_AEAD_LIMIT_REACHED,
                       "AEAD confidentiality limit: the keys could not be updated in time");
    }
}

/* 1 if the space's send key may seal one more packet: never beyond the limit */
static int can_seal(const ir_conn *c, int s)
{
    const ir_pkt_keys *k = &KEYS(c, s).tx;
    return k->sealed < conf_limit(c, k);
}

/* Removes the packet protection: 0, or -1 (dropped: it does not open, or a protocol
 * violation closed the connection), or 1 (a duplicate, to drop). */
static int decrypt_packet(ir_conn *c, uint8_t *p, const ir_pkt_hdr *h, int space, uint64_t *pn_out,
                          const uint8_t **payload, size_t *plen)
{
    pn_space *sp = &SP(c, space);
    uint64_t pn;
    size_t pn_len;
    pn_space *ks = &KEYS(c, space);
    if (ir_pkt_unprotect_header(p, h, &ks->rx.hp, sp->largest_recv, &pn, &pn_len) != 0)
        return -1;
    /* RFC 9000 12.3: a packet number already processed (or below the floor of what the
     * space tracks) is a duplicate. Checked only once the packet opened: dropping before
     * would tell an attacker by the timing which packet numbers were seen (RFC 9001 9.5) */
    if (space != SP_APP) {
        if (ir_pkt_decrypt(p, h, pn_len, &ks->rx.aead, 0, pn, payload, plen) != 0) {
            open_failed(c, &ks->rx);
            return -1;
        }
        if (ir_pn_seen_has(&sp->seen, pn))
            return 1;
        if (p[0] & 0x0c) {
            close_with(c, 0, E_PROTOCOL_VIOLATION, "reserved header bits set");
            return -1;
        }
        *pn_out = pn;
        return 0;
    }
    int phase = (p[0] >> 2) & 1;
    ir_pkt_keys *k = &ks->rx;
    int rotate = 0;
    if (phase != c->rx_phase) {
        if (c->have_rx_prev && pn < c->rx_phase_start_pn) {
            k = &c->rx_prev;
        } else {
            if (!c->have_rx_next) {
                if (ir_pkt_keys_update(&c->rx_next, &ks->rx) != 0)
                    return -1;
                c->have_rx_next = 1;
            }
            k = &c->rx_next;
            rotate = 1;
        }
    }
    if (ir_pkt_decrypt(p, h, pn_len, &k->aead, (uint32_t)c->path->id, pn, payload, plen) != 0) {
        open_failed(c, k);
        return -1;
    }
    /* (a duplicate never opens with the next keys: those would have been rotated in) */
    if (ir_pn_seen_has(&sp->seen, pn))
        return 1;
    if (p[0] & 0x18) {
        close_with(c, 0, E_PROTOCOL_VIOLATION, "reserved header bits set");
        return -1;
    }
    /* RFC 9001 6.4: a peer never protects a packet with older keys than a packet with a
     * lower number. Everything opened before a rotation used older keys than the new ones;
     * a packet opened with the previous keys after it must be below every new one. */
    uint64_t old_largest = rotate ? sp->largest_recv : c->rx_old_largest;
    if (k == &c->rx_prev) {
        if (c->rx_old_largest == UINT64_MAX || pn > c->rx_old_largest)
            c->rx_old_largest = pn;
    } else if (old_largest != UINT64_MAX && pn < old_largest) {
        close_with(c, 0, E_KEY_UPDATE, "a packet under old keys numbered above one under newer keys");
        return -1;
    }
    if (rotate) {
        if (!c->handshake_confirmed && !c->is_server) {
            close_with(c, 0, E_KEY_UPDATE, "key update before the handshake was confirmed");
            return -1;
        }
        ir_pkt_keys_free(&c->rx_prev);
        c->rx_prev = ks->rx;
        c->have_rx_prev = 1;
        c->rx_prev_expiry = c->now + 3 * ir_rec_pto(c, SP_APP);
        ks->rx = c->rx_next;
        memset(&c->rx_next, 0, sizeof c->rx_next);
        c->have_rx_next = 0;
        c->rx_phase ^= 1;
        c->rx_phase_start_pn = pn;
        c->rx_old_largest = sp->largest_recv;
        if (c->key_phase != c->rx_phase) {
            /* the peer started it: follow with our send keys. Like the initiator, we may
             * start the next update only once a packet of this phase is acknowledged
             * (RFC 9001 6.1). An update we started was counted when we started it. */
            if (ir_pkt_keys_update(&ks->tx, &ks->tx) != 0) {
                close_with(c, 0, E_INTERNAL, "key update failed");
                return -1;
            }
            c->key_phase = c->rx_phase;
            c->key_phase_start_pn = sp->next_pn;
            c->key_update_pending_ack = 1;
            c->key_updates++;
        }
    }
    *pn_out = pn;
    return 0;
}

static void schedule_ack(ir_conn *c, int space, uint64_t pn, int eliciting)
{
    pn_space *sp = &SP(c, space);
    if (!eliciting)
        return;
    sp->ack_eliciting_since++;
    int out_of_order = sp->largest_recv != UINT64_MAX && pn != sp->largest_recv;
    if (space != SP_APP || sp->ack_eliciting_since >= 2 || out_of_order) {
        sp->ack_pending = 1;
    } else if (sp->ack_deadline == UINT64_MAX) {
        sp->ack_deadline = c->now + c->cfg.tp.max_ack_delay * NS_PER_MS;
    }
}

/* RFC 9000 17.2.5.2: a client follows one valid Retry, before any other server packet:
 * new DCID and Initial keys, the token in every later Initial, the ClientHello again. */
static int follow_retry(ir_conn *c, const uint8_t *p, const ir_pkt_hdr *h)
{
    if (c->is_server || c->retried || c->got_first_server_packet || h->token_len == 0 ||
        !ir_cid_eq(&h->dcid, &c->path->lcid[0].cid) || ir_cid_eq(&h->scid, &c->odcid) ||
        !ir_pkt_retry_valid(p, h->pkt_len, &c->odcid))
        return 0;
    uint8_t *tok = malloc(h->token_len);
    if (!tok)
        return 0;
    memcpy(tok, h->token, h->token_len);
    c->retry_token = tok;
    c->retry_token_len = h->token_len;
    c->retried = 1;
    c->retry_scid = h->scid;
    c->path->rcid[0].cid = h->scid;
    if (install_initial_keys(c, &h->scid) != IROH_OK) {
        close_with(c, 0, E_INTERNAL, "initial keys");
        return 0;
    }
    /* what the Initial packets carried goes out again under the new keys */
    pn_space *sp = &SP(c, SP_INITIAL);
    ir_rec_discard_sent(c, SP_INITIAL);
    sp->crypto_send.next = sp->crypto_send.base;
    ir_ranges_free(&sp->crypto_send.lost);
    ir_ranges_init(&sp->crypto_send.lost, 0);
    c->path->pto_count = 0;
    return 1;
}

/* Returns 1 if the packet was processed, 0 if dropped. */
static int process_packet(ir_conn *c, const ir_netaddr *from, uint8_t *p, const ir_pkt_hdr *h)
{
    if (h->type == IR_PT_VN) {
        if (!c->is_server && !c->got_first_server_packet) {
            /* a Version Negotiation that lists version 1 is bogus; one without it ends us */
            int lists_v1 = 0;
            for (size_t o = h->pn_offset; o + 4 <= h->pkt_len; o += 4)
                lists_v1 |= p[o] == 0 && p[o + 1] == 0 && p[o + 2] == 0 && p[o + 3] == 1;
            if (!lists_v1 && ir_cid_eq(&h->dcid, &c->path->lcid[0].cid)) {
                close_with(c, 0, E_NO_ERROR, "the peer does not support QUIC version 1");
                set_closed(c);
            }
        }
        return 0;
    }
    if (h->version == IR_QUIC_V1 && h->type == IR_PT_RETRY)
        return follow_retry(c, p, h);
    if (h->version != IR_QUIC_V1 || h->type == IR_PT_0RTT)
        return 0; /* we never accept 0-RTT */
    int space = space_of_type(h->type);
    pn_space *sp = &SP(c, space);
    if (sp->discarded || !KEYS(c, space).have_rx)
        return 0;
    if (space == SP_APP && c->is_server && !c->handshake_complete)
        return 0; /* RFC 9001 5.7: no 1-RTT processing before the handshake completes */
    if (h->type != IR_PT_1RTT && !c->is_server && c->got_first_server_packet &&
        !ir_cid_eq(&h->scid, &c->initial_scid))
        return 0; /* a long header from another server instance */
    uint64_t pn;
    const uint8_t *payload;
    size_t plen;
    int rc = decrypt_packet(c, p, h, space, &pn, &payload, &plen);
    if (rc != 0)
        return rc > 0; /* dropped; a duplicate was authenticated (no stateless reset) */
    if (!c->is_server && h->type != IR_PT_1RTT && !c->got_first_server_packet) {
        c->got_first_server_packet = 1;
        c->initial_scid = h->scid;
        c->path->rcid[0].cid = h->scid;
        /* the first flight may have gone to several of the peer's addresses: path 0 is
         * wherever the first authenticated answer came from (spec quic-tls.md 2.4) */
        c->path->addr = *from;
    }
    if (c->is_server && space == SP_HANDSHAKE) {
        c->path->validated = 1; /* RFC 9000 8.1: a Handshake packet proves the address */
        discard_space(c, SP_INITIAL);
    }
    c->last_activity = c->now;
    c->stats.pkts_recv++;
    int non_probing = 0;
    int eliciting = process_frames(c, space, from, &h->dcid, payload, plen, &non_probing);
    if (eliciting < 0)
        return 1;
    ir_pn_seen_add(&sp->seen, pn);
    /* without memory for another range the lowest is dropped: that packet goes
     * unacknowledged and the peer repairs it as lost */
    ir_ranges_add(&sp->ack_ranges, pn, pn + 1);
    schedule_ack(c, space, pn, eliciting);
    if (sp->largest_recv == UINT64_MAX || pn > sp->largest_recv) {
        sp->largest_recv = pn;
        sp->largest_recv_time = c->now;
        /* connection migration / NAT rebinding: the peer's newest packet moves path 0 */
        if (space == SP_APP && non_probing && c->handshake_confirmed &&
            !ir_netaddr_eq(from, &c->path->addr)) {
            if (c->path->validated) {
                c->path->prev_addr = c->path->addr;
                c->path->have_prev = 1;
            }
            c->path->addr = *from;
            c->path->validated = 0;
            c->path->bytes_recv = 0;
            c->path->bytes_sent = 0;
            start_validation(c);
            c->observed_pending = c->qad_send; /* tell the peer its new address */
            /* a new path: its MTU and capacity are unknown again (RFC 9000 9.4) */
            ir_rec_new_path(c, c->now);
            c->path->mtu_state = MTU_IDLE;
            c->path->mtu_tries = 0;
            ir_conn_push_event(c, IR_EV_PATH_CHANGED, 0, 0);
        }
    }
    return 1;
}

void ir_conn_recv(ir_conn *c, const ir_netaddr *from, uint8_t *data, size_t len, uint64_t now)
{
    c->now = now;
    if (c->state == IR_CONN_CLOSED || c->state == IR_CONN_DRAINING)
        return;
    c->stats.bytes_recv += len;
    int on_path = ir_netaddr_eq(from, &c->path->addr);
    if (on_path)
        c->path->bytes_recv += len;
    if (c->state == IR_CONN_CLOSING) {
        c->close_pending = 1; /* answer whatever comes with our close again */
        return;
    }
    size_t off = 0;
    int processed = 0;
    while (off < len) {
        ir_pkt_hdr h;
        if (ir_pkt_parse(data + off, len - off, CID_LEN, &h) != 0)
            break;
        if (off > 0 && h.type != IR_PT_1RTT && !ir_cid_eq(&h.dcid, &c->path->lcid[0].cid) &&
            !ir_conn_owns_cid(c, h.dcid.data, h.dcid.len) && !ir_cid_eq(&h.dcid, &c->odcid))
            break; /* coalesced packets must share the DCID */
        processed |= process_packet(c, from, data + off, &h);
        if (c->state >= IR_CONN_CLOSING)
            return;
        off += h.pkt_len;
    }
    /* a datagram that moved path 0 to its address counts toward that path's
     * anti-amplification allowance (RFC 9000 8.1, 9.3) */
    if (!on_path && ir_netaddr_eq(from, &c->path->addr))
        c->path->bytes_recv += len;
    if (!processed) {
        /* a stateless reset from the peer? (RFC 9000 10.3.1). Only the token of the
         * connection id in use counts: not those of ids we have not used, nor retired
         * ones (which are forgotten). */
        const remote_cid *r = c->path->nrcid ? &c->path->rcid[c->path->active_rcid] : NULL;
        if (r && r->has_token && ir_pkt_is_stateless_reset(data, len, r->token)) {
            c->close.closed = 1;
            c->close.by_peer = 1;
            c->close.reset = 1;
            snprintf(c->close.reason, sizeof c->close.reason, "stateless reset");
            c->state = IR_CONN_DRAINING;
            c->close_deadline = now;
            set_closed(c);
        }
    }
}

/* ---- frames out ------------------------------------------------------------------------ */

typedef struct pktw {
    uint8_t *buf;     /* start of the packet */
    size_t hdr_len;   /* header incl. packet number */
    size_t pn_len;
    size_t len_off;   /* long header length field, 0 for short */
    size_t pos;       /* write position (absolute within buf) */
    size_t end;       /* last byte for frames (tag excluded) */
    sent_pkt rec;
} pktw;

static size_t room(const pktw *w)
{
    return w->end > w->pos ? w->end - w->pos : 0;
}

static int can_record(const pktw *w)
{
    return w->rec.nframes < MAX_SENT_FRAMES;
}

static void record(pktw *w, uint8_t kind, uint64_t a, uint64_t b, uint64_t cc, int fin, int eliciting)
{
    sent_frame *f = &w->rec.f[w->rec.nframes++];
    f->kind = kind;
    f->a = a;
    f->b = b;
    f->c = cc;
    f->fin = (uint8_t)fin;
    if (eliciting)
        w->rec.ack_eliciting = 1;
}

static int put_frame(pktw *w, const ir_frame *f)
{
    size_t n = ir_frame_encode(w->buf + w->pos, room(w), f);
    w->pos += n;
    return n > 0;
}

static int ack_wanted(const ir_conn *c, int space)
{
    const pn_space *sp = &SP(c, space);
    if (sp->largest_recv == UINT64_MAX)
        return 0;
    return sp->ack_pending || (sp->ack_deadline != UINT64_MAX && sp->ack_deadline <= c->now);
}

static void write_ack(ir_conn *c, int space, pktw *w)
{
    pn_space *sp = &SP(c, space);
    if (!can_record(w))
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
    size_t k = ir_ack_encode(w->buf + w->pos, room(w), 0, 0, r, n, delay, NULL, &done);
    if (!k)
        return;
    w->pos += k;
    record(w, SF_ACK, r[0].largest, 0, 0, 0, 0);
    sp->ack_pending = 0;
    sp->ack_eliciting_since = 0;
    sp->ack_deadline = UINT64_MAX;
}

static void write_crypto(ir_conn *c, int space, pktw *w)
{
    ir_sendbuf *b = &SP(c, space).crypto_send;
    while (can_record(w)) {
        uint64_t off;
        size_t len, n;
        int fin;
        if (!ir_sendbuf_next(b, UINT64_MAX, room(w), &off, &len, &fin) || len == 0)
            return;
        if (ir_crypto_frame_fit(room(w), off, len, &n) != 0 || n == 0)
            return;
        ir_frame f = {.type = IR_FT_CRYPTO};
        f.u.crypto.offset = off;
        f.u.crypto.data = ir_sendbuf_at(b, off);
        f.u.crypto.len = n;
        if (!put_frame(w, &f))
            return;
        ir_sendbuf_sent(b, off, n, 0);
        record(w, SF_CRYPTO, 0, off, n, 0, 1);
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
        f.u.close.error_code = c->close.application ? 0x0c : c->close.code;
    }
    size_t rl = strlen(c->close.reason);
    if (rl > MAX_CLOSE_REASON || (c->close.application && space != SP_APP))
        rl = c->close.application && space != SP_APP ? 0 : MAX_CLOSE_REASON;
    f.u.close.reason = (const uint8_t *)c->close.reason;
    f.u.close.reason_len = rl;
    if (!put_frame(w, &f)) {
        f.u.close.reason_len = 0;
        put_frame(w, &f);
    }
}

static uint64_t stream_credit(const ir_conn *c)
{
    return c->max_data_remote > c->sent_data ? c->max_data_remote - c->sent_data : 0;
}

/* one stream's frames; returns 1 if it wrote anything */
static int write_stream(ir_conn *c, qstream *s, pktw *w, int control_only)
{
    int wrote = 0;
    if (s->reset_pending && can_record(w)) {
        ir_frame f = {.type = IR_FT_RESET_STREAM};
        f.u.reset_stream.stream_id = s->id;
        f.u.reset_stream.error_code = s->reset_code;
        f.u.reset_stream.final_size = s->reset_final;
        if (put_frame(w, &f)) {
            s->reset_pending = 0;
            s->reset_sent = 1;
            record(w, SF_RESET_STREAM, s->id, 0, 0, 0, 1);
            wrote = 1;
        }
    }
    if (s->stop_pending && can_record(w)) {
        ir_frame f = {.type = IR_FT_STOP_SENDING};
        f.u.stop_sending.stream_id = s->id;
        f.u.stop_sending.error_code = s->stop_code;
        if (put_frame(w, &f)) {
            s->stop_pending = 0;
            s->stop_sent = 1;
            record(w, SF_STOP_SENDING, s->id, 0, 0, 0, 1);
            wrote = 1;
        }
    }
    if (s->max_data_pending && can_record(w)) {
        ir_frame f = {.type = IR_FT_MAX_STREAM_DATA};
        f.u.stream_limit.stream_id = s->id;
        f.u.stream_limit.limit = s->recv_max;
        if (put_frame(w, &f)) {
            s->max_data_pending = 0;
            record(w, SF_MAX_STREAM_DATA, s->id, 0, 0, 0, 1);
            wrote = 1;
        }
    }
    if (control_only || !s->has_send || s->reset_sent || s->reset_pending)
        return wrote;
    while (can_record(w) && room(w) > 8) {
        uint64_t off;
        size_t len, n;
        int fin;
        uint64_t limit = s->send_max;
        uint64_t conn_limit = s->send.next + stream_credit(c);
        if (conn_limit < limit)
            limit = conn_limit;
        if (!ir_sendbuf_next(&s->send, limit, room(w), &off, &len, &fin))
            break;
        if (ir_stream_frame_fit(room(w), s->id, off, len, 1, &n) != 0)
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
        if (!put_frame(w, &f))
            break;
        if (off + n > s->send.next)
            c->sent_data += off + n - s->send.next;
        ir_sendbuf_sent(&s->send, off, n, fin);
        record(w, SF_STREAM, s->id, off, n, fin, 1);
        wrote = 1;
    }
    return wrote;
}

static int stream_has_data(const ir_conn *c, const qstream *s)
{
    if (s->reset_pending || s->stop_pending || s->max_data_pending)
        return 1;
    if (!s->has_send || s->reset_sent)
        return 0;
    uint64_t off;
    size_t len;
    int fin;
    uint64_t limit = s->send_max;
    uint64_t conn_limit = s->send.next + stream_credit(c);
    if (conn_limit < limit)
        limit = conn_limit;
    return ir_sendbuf_next(&s->send, limit, 1200, &off, &len, &fin);
}

static int app_control_pending(const ir_conn *c)
{
    if (c->handshake_done_pending || c->max_data_pending || c->max_streams_pending[0] ||
        c->max_streams_pending[1] || c->path->response_pending || c->path->challenge_pending ||
        c->observed_pending)
        return 1;
    for (size_t i = 0; i < c->path->nlcid; i++)
        if (c->path->lcid[i].announce_pending)
            return 1;
    for (size_t i = 0; i < c->path->nrcid; i++)
        if (c->path->rcid[i].retire_pending)
            return 1;
    return 0;
}

static int keepalive_due(const ir_conn *c)
{
    return c->cfg.keep_alive_ns && c->state == IR_CONN_ESTABLISHED &&
           (c->keepalive_pending || c->now >= c->last_ack_eliciting_sent + c->cfg.keep_alive_ns);
}

static int app_data_pending(const ir_conn *c)
{
    if (c->dg_out_n)
        return 1;
    for (size_t i = 0; i < c->nstreams; i++)
        if (stream_has_data(c, c->streams[i]))
            return 1;
    return 0;
}

/* PATH_RESPONSE and PATH_CHALLENGE go first in a packet: on a path limited by the
 * anti-amplification limit an ACK with many ranges could otherwise leave no room */
static void write_path_frames(ir_conn *c, pktw *w)
{
    if (c->path->response_pending && ir_netaddr_eq(&c->path->response_addr, &c->path->addr) &&
        can_record(w)) {
        ir_frame f = {.type = IR_FT_PATH_RESPONSE};
        memcpy(f.u.path_data, c->path->response, 8);
        if (put_frame(w, &f)) {
            c->path->response_pending = 0;
            record(w, SF_PING, 0, 0, 0, 0, 1);
        }
    }
    if (c->path->challenge_pending && can_record(w)) {
        ir_frame f = {.type = IR_FT_PATH_CHALLENGE};
        memcpy(f.u.path_data, c->path->challenge, 8);
        if (put_frame(w, &f)) {
            c->path->challenge_pending = 0;
            record(w, SF_PATH_CHALLENGE, 0, 0, 0, 0, 1);
        }
    }
}

static void write_app_control(ir_conn *c, pktw *w)
{
    if (c->observed_pending && can_record(w)) {
        iroh_socket_addr a;
        if (c->cfg.addr_of(&c->path->addr, &a) != 0) {
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
            if (put_frame(w, &f)) {
                c->observed_pending = 0;
                c->observed_sent_seq = c->observed_seq++;
                record(w, SF_OBSERVED_ADDRESS, c->observed_sent_seq, 0, 0, 0, 1);
            }
        }
    }
    if (c->handshake_done_pending && can_record(w)) {
        ir_frame f = {.type = IR_FT_HANDSHAKE_DONE};
        if (put_frame(w, &f)) {
            c->handshake_done_pending = 0;
            record(w, SF_HANDSHAKE_DONE, 0, 0, 0, 0, 1);
        }
    }
    if (c->max_data_pending && can_record(w)) {
        ir_frame f = {.type = IR_FT_MAX_DATA};
        f.u.limit = c->max_data_local;
        if (put_frame(w, &f)) {
            c->max_data_pending = 0;
            record(w, SF_MAX_DATA, 0, 0, 0, 0, 1);
        }
    }
    for (int uni = 0; uni < 2; uni++) {
        if (c->max_streams_pending[uni] && can_record(w)) {
            ir_frame f = {.type = uni ? IR_FT_MAX_STREAMS_UNI : IR_FT_MAX_STREAMS_BIDI};
            f.u.limit = c->local_max_streams[uni];
            if (put_frame(w, &f)) {
                c->max_streams_pending[uni] = 0;
                record(w, SF_MAX_STREAMS, (uint64_t)!uni, 0, 0, 0, 1);
            }
        }
    }
    for (size_t i = 0; i < c->path->nlcid && can_record(w); i++) {
        local_cid *l = &c->path->lcid[i];
        if (!l->announce_pending || l->retired)
            continue;
        ir_frame f = {.type = IR_FT_NEW_CONNECTION_ID};
        f.u.new_cid.seq = l->seq;
        f.u.new_cid.retire_prior_to = 0;
        f.u.new_cid.cid = l->cid.data;
        f.u.new_cid.cid_len = l->cid.len;
        f.u.new_cid.reset_token = l->token;
        if (!put_frame(w, &f))
            break;
        l->announce_pending = 0;
        record(w, SF_NEW_CID, l->seq, 0, 0, 0, 1);
    }
    for (size_t i = 0; i < c->path->nrcid && can_record(w); i++) {
        remote_cid *r = &c->path->rcid[i];
        if (!r->retire_pending || i == c->path->active_rcid)
            continue;
        ir_frame f = {.type = IR_FT_RETIRE_CONNECTION_ID};
        f.u.retire_cid.seq = r->seq;
        if (!put_frame(w, &f))
            break;
        r->retire_pending = 0;
        record(w, SF_RETIRE_CID, r->seq, 0, 0, 0, 1);
        /* forget it now; a loss re-adds the retirement */
        memmove(r, r + 1, (c->path->nrcid - i - 1) * sizeof *r);
        c->path->nrcid--;
        if (c->path->active_rcid > i)
            c->path->active_rcid--;
        i--;
    }
}

static void write_datagrams(ir_conn *c, pktw *w)
{
    while (c->dg_out_n && can_record(w)) {
        dgram *d = &c->dg_out[c->dg_out_head];
        size_t max;
        if (ir_datagram_frame_fit(room(w), 1, &max) != 0 || max < d->len)
            return;
        ir_frame f = {.type = IR_FT_DATAGRAM_LEN};
        f.u.datagram.data = d->data;
        f.u.datagram.len = d->len;
        if (!put_frame(w, &f))
            return;
        record(w, SF_DATAGRAM, 0, 0, 0, 0, 1);
        free(d->data);
        d->data = NULL;
        c->dg_out_head = (c->dg_out_head + 1) % DGRAM_QUEUE;
        c->dg_out_n--;
    }
}

static void write_streams(ir_conn *c, pktw *w)
{
    size_t n = c->nstreams;
    if (!n)
        return;
    if (c->rr_next >= n)
        c->rr_next = 0;
    for (size_t k = 0; k < n && can_record(w) && room(w) > 8; k++) {
        size_t i = (c->rr_next + k) % n;
        if (write_stream(c, c->streams[i], w, 0))
            c->rr_next = (i + 1) % n; /* next packet starts with the following stream */
    }
}

static int cwnd_allows(const ir_conn *c)
{
    return c->path->bytes_in_flight + c->path->max_datagram <= c->path->cwnd;
}

/* Pacing (RFC 9002 7.7): credit accrues at 1.25 x cwnd / smoothed RTT and is capped at a
 * burst of 10 datagrams or 2 ms worth of sending, whichever is larger (a loop that sleeps
 * in whole milliseconds must still be able to keep up). */
static uint64_t pace_burst(const ir_conn *c)
{
    uint64_t rtt = c->path->smoothed_rtt ? c->path->smoothed_rtt : 1;
    uint64_t two_ms = (c->path->cwnd * 5 / 4) * (2 * NS_PER_MS) / rtt;
    uint64_t ten = 10 * c->path->max_datagram;
    return two_ms > ten ? two_ms : ten;
}

static uint64_t pace_credit(const ir_conn *c)
{
    uint64_t rtt = c->path->smoothed_rtt ? c->path->smoothed_rtt : 1;
    uint64_t elapsed = c->now > c->path->pace_time ? c->now - c->path->pace_time : 0;
    uint64_t burst = pace_burst(c);
    /* elapsed * rate without overflow: rate in bytes per ns = cwnd * 1.25 / rtt */
    uint64_t add = elapsed >= rtt ? burst : (uint64_t)((double)elapsed * (double)c->path->cwnd * 1.25 / (double)rtt);
    uint64_t t = c->path->pace_tokens + add;
    return t > burst ? burst : t;
}

static int pace_allows(const ir_conn *c)
{
    return pace_credit(c) >= c->path->max_datagram;
}

static void pace_spend(ir_conn *c, uint64_t bytes)
{
    uint64_t t = pace_credit(c);
    c->path->pace_tokens = t > bytes ? t - bytes : 0;
    c->path->pace_time = c->now;
}

/* when enough credit for one datagram will have accrued */
static uint64_t pace_deadline(const ir_conn *c)
{
    uint64_t have = pace_credit(c);
    if (have >= c->path->max_datagram)
        return c->now;
    uint64_t rtt = c->path->smoothed_rtt ? c->path->smoothed_rtt : 1;
    double need = (double)(c->path->max_datagram - have);
    return c->now + (uint64_t)(need * (double)rtt / ((double)c->path->cwnd * 1.25)) + 1;
}

/* Does the space want a packet now? */
static int space_wants(const ir_conn *c, int s)
{
    const pn_space *sp = &SP(c, s);
    if (!KEYS(c, s).have_tx || sp->discarded)
        return 0;
    if (c->state == IR_CONN_CLOSING)
        return c->close_pending;
    if (ack_wanted(c, s) || sp->probe_pending)
        return 1;
    uint64_t off;
    size_t len;
    int fin;
    if (ir_sendbuf_next(&sp->crypto_send, UINT64_MAX, 1200, &off, &len, &fin) && len)
        return 1;
    if (s == SP_APP && c->handshake_complete) {
        if (app_control_pending(c) || keepalive_due(c))
            return 1;
        if (cwnd_allows(c) && pace_allows(c) && app_data_pending(c))
            return 1;
    }
    return 0;
}

/* Writes one packet of the space at buf; pad_to > 0 pads the packet so that it ends at
 * least pad_to bytes after buf. Returns its length (0: nothing written). */
static size_t write_packet(ir_conn *c, int s, uint8_t *buf, size_t cap, size_t pad_to)
{
    pn_space *sp = &SP(c, s);
    if (!can_seal(c, s))
        return 0;
    pktw w;
    memset(&w, 0, sizeof w);
    w.buf = buf;
    uint64_t pn = sp->next_pn;
    w.pn_len = ir_pn_encode_len(pn, sp->largest_acked);
    if (s == SP_APP)
        w.hdr_len = ir_pkt_write_short(buf, cap, dcid(c), c->key_phase, 0, pn, w.pn_len);
    else
        w.hdr_len = ir_pkt_write_long(buf, cap, s == SP_INITIAL ? IR_PT_INITIAL : IR_PT_HANDSHAKE,
                                      IR_QUIC_V1, dcid(c), &c->path->lcid[0].cid,
                                      s == SP_INITIAL ? c->retry_token : NULL,
                                      s == SP_INITIAL ? c->retry_token_len : 0, pn, w.pn_len,
                                      &w.len_off);
    if (!w.hdr_len || cap < w.hdr_len + IR_AEAD_TAG_LEN + MIN_PAYLOAD)
        return 0;
    w.pos = w.hdr_len;
    w.end = cap - IR_AEAD_TAG_LEN;
    if (c->state == IR_CONN_CLOSING) {
        write_close(c, s, &w);
    } else {
        if (s == SP_APP && c->mtu_probe_writing) {
            /* a path MTU probe: its PING first, so that it is always there (ack-eliciting,
             * padded to the probed size below); other frames may share the packet */
            w.buf[w.pos++] = IR_FT_PING;
            record(&w, SF_MTU_PROBE, pad_to, 0, 0, 0, 1);
            w.rec.mtu_probe = 1;
            c->mtu_probe_writing = 2; /* it is in */
        }
        if (s == SP_APP && c->handshake_complete)
            write_path_frames(c, &w);
        if (ack_wanted(c, s) || (sp->largest_recv != UINT64_MAX && sp->ack_eliciting_since))
            write_ack(c, s, &w);
        write_crypto(c, s, &w);
        if (s == SP_APP && c->handshake_complete) {
            int probe = sp->probe_pending > 0;
            write_app_control(c, &w);
            if ((cwnd_allows(c) && pace_allows(c)) || probe) {
                write_datagrams(c, &w);
                write_streams(c, &w);
            } else {
                /* blocked by congestion control: control frames only */
                for (size_t i = 0; i < c->nstreams && can_record(&w); i++)
                    write_stream(c, c->streams[i], &w, 1);
            }
        }
        if ((sp->probe_pending || (s == SP_APP && keepalive_due(c))) && !w.rec.ack_eliciting &&
            can_record(&w) && room(&w) >= 1) {
            w.buf[w.pos++] = IR_FT_PING;
            record(&w, SF_PING, 0, 0, 0, 0, 1);
        }
    }
    size_t payload = w.pos - w.hdr_len;
    if (payload == 0)
        return 0;
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
    uint32_t path_id = s == SP_APP ? (uint32_t)c->path->id : 0;
    size_t total = ir_pkt_protect(buf, w.hdr_len, w.pn_len, w.len_off, payload,
                                  &KEYS(c, s).tx, path_id, pn);
    KEYS(c, s).tx.sealed++;
    sp->next_pn++;
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
    }
    if (w.rec.in_flight) {
        if (sp->nsent == sp->capsent) {
            size_t ncap = sp->capsent ? sp->capsent * 2 : 8;
            sent_pkt *np = realloc(sp->sent, ncap * sizeof *np);
            if (!np) {
                close_with(c, 0, E_INTERNAL, "out of memory");
                return total;
            }
            sp->sent = np;
            sp->capsent = ncap;
        }
        sp->sent[sp->nsent++] = w.rec;
        ir_rec_on_sent(c, s, &w.rec);
        pace_spend(c, w.rec.size);
    }
    c->stats.pkts_sent++;
    /* the client drops its Initial keys once it sends a Handshake packet */
    if (!c->is_server && s == SP_HANDSHAKE)
        discard_space(c, SP_INITIAL);
    return total;
}

static size_t send_path_response_elsewhere(ir_conn *c, uint8_t *buf, size_t cap, ir_netaddr *to)
{
    /* answer a probe from another address on that address, padded (RFC 9000 8.2.2) */
    pn_space *sp = &SP(c, SP_APP);
    if (!KEYS(c, SP_APP).have_tx || cap < 1200 || !can_seal(c, SP_APP))
        return 0;
    uint64_t pn = sp->next_pn;
    size_t pn_len = ir_pn_encode_len(pn, sp->largest_acked);
    size_t h = ir_pkt_write_short(buf, cap, dcid(c), c->key_phase, 0, pn, pn_len);
    if (!h)
        return 0;
    size_t pos = h;
    buf[pos++] = IR_FT_PATH_RESPONSE;
    memcpy(buf + pos, c->path->response, 8);
    pos += 8;
    size_t end = 1200 - IR_AEAD_TAG_LEN;
    memset(buf + pos, 0, end - pos);
    size_t total = ir_pkt_protect(buf, h, pn_len, 0, end - h, &KEYS(c, SP_APP).tx,
                                  (uint32_t)c->path->id, pn);
    KEYS(c, SP_APP).tx.sealed++;
    sp->next_pn++;
    c->path->response_pending = 0;
    *to = c->path->response_addr;
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

/* The size to probe on the current path, or 0 when there is nothing to probe. */
static size_t mtu_target(const ir_conn *c)
{
    uint64_t t = IR_MTU_PROBE_SIZE;
    if (c->peer_tp.max_udp_payload_size < t)
        t = c->peer_tp.max_udp_payload_size;
    if (c->cfg.tp.max_udp_payload_size < t)
        t = c->cfg.tp.max_udp_payload_size;
    return t > c->path->max_datagram ? (size_t)t : 0;
}

/* Sends the path MTU probe when one is due (after the handshake is confirmed and the path
 * validated, when congestion control has room for it). */
static size_t send_mtu_probe(ir_conn *c, uint8_t *buf, size_t cap, ir_netaddr *to)
{
    qpath *p = c->path;
    if (p->mtu_state == MTU_IDLE && c->handshake_confirmed && p->validated &&
        c->state == IR_CONN_ESTABLISHED && c->peer_tp_ok)
        p->mtu_state = mtu_target(c) ? MTU_DUE : MTU_DONE;
    if (p->mtu_state != MTU_DUE || c->now < p->mtu_next)
        return 0;
    size_t size = mtu_target(c);
    if (!size) {
        p->mtu_state = MTU_DONE;
        return 0;
    }
    /* it takes the place of one ordinary packet (else a bulk transfer that keeps the
     * window full would never leave room for the larger one) */
    if (cap < size || !cwnd_allows(c) || !KEYS(c, SP_APP).have_tx)
        return 0;
    c->mtu_probe_writing = 1;
    size_t n = write_packet(c, SP_APP, buf, size, size);
    int in = c->mtu_probe_writing == 2;
    c->mtu_probe_writing = 0;
    if (n && in) {
        p->mtu_state = MTU_IN_FLIGHT;
        *to = p->addr;
    }
    return n;
}

void ir_conn_mtu_black_hole(ir_conn *c)
{
    if (c->path->max_datagram <= 1200)
        return;
    c->path->max_datagram = 1200;
    c->path->mtu_state = MTU_DONE; /* no second try on this path */
}

size_t ir_conn_send(ir_conn *c, uint8_t *buf, size_t cap, ir_netaddr *to, uint64_t now)
{
    c->now = now;
    if (c->state == IR_CONN_CLOSED || c->state == IR_CONN_DRAINING)
        return 0;
    check_conf_limits(c);
    if (c->state == IR_CONN_ESTABLISHED && !c->path->response_pending) {
        size_t n = send_mtu_probe(c, buf, cap, to);
        if (n)
            return n;
    }
    if (cap > c->path->max_datagram)
        cap = c->path->max_datagram;
    if (c->state != IR_CONN_CLOSING && c->path->response_pending &&
        !ir_netaddr_eq(&c->path->response_addr, &c->path->addr))
        return send_path_response_elsewhere(c, buf, cap, to);
    *to = c->path->addr;
    size_t limit = cap;
    if (c->is_server && !c->path->validated) {
        uint64_t allowed = 3 * c->path->bytes_recv;
        allowed = allowed > c->path->bytes_sent ? allowed - c->path->bytes_sent : 0;
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
    int had_challenge = c->path->challenge_pending;
    int path_frames = c->state != IR_CONN_CLOSING &&
                      (had_challenge || (c->path->response_pending &&
                                         ir_netaddr_eq(&c->path->response_addr, &c->path->addr)));
    int wants[SP_COUNT], last = -1;
    for (int s = 0; s < SP_COUNT; s++) {
        wants[s] = space_wants(c, s);
        if (wants[s])
            last = s;
    }
    if (last < 0)
        return 0;
    size_t off = 0;
    int has_initial = 0;
    for (int s = 0; s <= last; s++) {
        if (!wants[s] || !KEYS(c, s).have_tx)
            continue;
        if (s == SP_INITIAL)
            has_initial = 1;
        size_t pad = 0;
        /* every datagram with an Initial is at least 1200 bytes (RFC 9000 14.1) */
        if (s == last && (has_initial || (s == SP_APP && path_frames)))
            pad = 1200 > off ? 1200 - off : 0;
        if (limit - off < 64)
            break;
        off += write_packet(c, s, buf + off, limit - off, pad);
    }
    if (c->state == IR_CONN_CLOSING)
        c->close_pending = 0;
    if (had_challenge && !c->path->challenge_pending) {
        c->path->challenge_small = off < 1200;
        c->path->challenge_sent = now;
        c->path->challenge_count++;
    }
    if (!off)
        return 0;
    c->stats.bytes_sent += off;
    c->path->bytes_sent += off;
    return off;
}

/* ---- acks and losses of what we sent -------------------------------------------------- */

void ir_conn_on_frame_acked(ir_conn *c, int space, const sent_frame *f)
{
    qstream *s;
    switch (f->kind) {
    case SF_STREAM:
        s = find_stream(c, f->a);
        if (!s)
            break;
        ir_sendbuf_on_ack(&s->send, f->b, (size_t)f->c, f->fin);
        if (s->blocked_event &&
            ir_sendbuf_buffered(&s->send) < c->cfg.max_stream_send_buffer / 2) {
            s->blocked_event = 0;
            ir_conn_push_event(c, IR_EV_STREAM_WRITABLE, s->id, 0);
        }
        if (ir_sendbuf_done(&s->send))
            maybe_release_stream(c, s);
        break;
    case SF_CRYPTO:
        ir_sendbuf_on_ack(&SP(c, space).crypto_send, f->b, (size_t)f->c, 0);
        break;
    case SF_ACK: {
        /* the peer has our ACK frame: it need not hear again of the packets up to its
         * largest (RFC 9000 13.2.4). The largest received stays, so that later ACK frames
         * still report it (and their ACK delay is its own). Duplicates are told by
         * `seen`, which this does not touch. */
        pn_space *sp = &SP(c, space);
        uint64_t below = f->a + 1;
        if (sp->largest_recv != UINT64_MAX && below > sp->largest_recv)
            below = sp->largest_recv;
        ir_ranges_drop_below(&sp->ack_ranges, below);
        break;
    }
    case SF_MTU_PROBE:
        /* the path carries datagrams of this size: use them from now on */
        if (f->a > c->path->max_datagram)
            c->path->max_datagram = f->a;
        c->path->mtu_state = MTU_DONE;
        break;
    case SF_RESET_STREAM:
        s = find_stream(c, f->a);
        if (s) {
            s->reset_sent_acked = 1;
            maybe_release_stream(c, s);
        }
        break;
    default:
        break;
    }
}

void ir_conn_on_frame_lost(ir_conn *c, int space, const sent_frame *f)
{
    qstream *s;
    switch (f->kind) {
    case SF_STREAM:
        s = find_stream(c, f->a);
        if (s && !s->reset_sent && !s->reset_pending)
            ir_sendbuf_on_lost(&s->send, f->b, (size_t)f->c, f->fin);
        break;
    case SF_CRYPTO:
        if (!SP(c, space).discarded)
            ir_sendbuf_on_lost(&SP(c, space).crypto_send, f->b, (size_t)f->c, 0);
        break;
    case SF_RESET_STREAM:
        s = find_stream(c, f->a);
        if (s && !s->reset_sent_acked) {
            s->reset_pending = 1;
            s->reset_sent = 0;
        }
        break;
    case SF_STOP_SENDING:
        s = find_stream(c, f->a);
        if (s && !s->recv.have_final && !s->peer_reset)
            s->stop_pending = 1;
        break;
    case SF_MAX_DATA:
        c->max_data_pending = 1;
        break;
    case SF_MAX_STREAM_DATA:
        s = find_stream(c, f->a);
        if (s && !s->recv.have_final && !s->peer_reset)
            s->max_data_pending = 1;
        break;
    case SF_MAX_STREAMS:
        c->max_streams_pending[f->a ? 0 : 1] = 1;
        break;
    case SF_NEW_CID:
        for (size_t i = 0; i < c->path->nlcid; i++)
            if (c->path->lcid[i].seq == f->a && !c->path->lcid[i].retired)
                c->path->lcid[i].announce_pending = 1;
        break;
    case SF_RETIRE_CID:
        if (c->path->nrcid < MAX_REMOTE_CIDS) {
            remote_cid *r = &c->path->rcid[c->path->nrcid++];
            memset(r, 0, sizeof *r);
            r->seq = f->a;
            r->retire_pending = 1;
        }
        break;
    case SF_HANDSHAKE_DONE:
        c->handshake_done_pending = 1;
        break;
    case SF_OBSERVED_ADDRESS:
        if (f->a == c->observed_sent_seq) /* the latest report was lost: send it again */
            c->observed_pending = 1;
        break;
    case SF_MTU_PROBE:
        if (c->path->mtu_state == MTU_IN_FLIGHT) {
            /* lost: maybe the path is too narrow; twice more, a little apart */
            c->path->mtu_state = ++c->path->mtu_tries >= 3 ? MTU_DONE : MTU_DUE;
            c->path->mtu_next = c->now + (c->path->smoothed_rtt ? c->path->smoothed_rtt : 100 * NS_PER_MS);
        }
        break;
    case SF_PATH_CHALLENGE:
        if (c->path->challenge_outstanding)
            c->path->challenge_pending = 1;
        break;
    default:
        break;
    }
}

/* ---- timers ------------------------------------------------------------------------------- */

static uint64_t idle_deadline(const ir_conn *c)
{
    if (!c->idle_timeout_ns)
        return UINT64_MAX;
    uint64_t t = c->idle_timeout_ns, pto3 = 3 * ir_rec_pto(c, SP_APP);
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
    for (int s = 0; s < SP_COUNT; s++)
        if (!SP(c, s).discarded && SP(c, s).ack_deadline < t)
            t = SP(c, s).ack_deadline;
    uint64_t pt = path_timer(c);
    if (pt < t)
        t = pt;
    /* paced data waiting for credit */
    if (c->handshake_complete && !pace_allows(c) && cwnd_allows(c) && app_data_pending(c)) {
        uint64_t p = pace_deadline(c);
        if (p < t)
            t = p;
    }
    /* the next path MTU probe (only a future time: a due probe blocked by congestion
     * control waits for acknowledgements, not for the timer) */
    if (c->path->mtu_state == MTU_DUE && c->path->mtu_next > c->now && c->path->mtu_next < t)
        t = c->path->mtu_next;
    /* once fired, the keep-alive waits for ir_conn_send (which may be blocked, e.g. by
     * the anti-amplification limit) instead of firing again and again */
    if (c->cfg.keep_alive_ns && c->state == IR_CONN_ESTABLISHED && !c->keepalive_pending) {
        uint64_t k = c->last_ack_eliciting_sent + c->cfg.keep_alive_ns;
        if (k < t)
            t = k;
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
            set_closed(c);
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
        set_closed(c);
        return;
    }
    if (c->state == IR_CONN_HANDSHAKE && now >= c->handshake_deadline) {
        /* silently, as an idle timeout: nothing more goes to an address that may be forged */
        c->close.closed = 1;
        c->close.idle_timeout = 1;
        snprintf(c->close.reason, sizeof c->close.reason, "handshake timed out");
        set_closed(c);
        return;
    }
    if (c->have_rx_prev && now >= c->rx_prev_expiry) {
        ir_pkt_keys_free(&c->rx_prev);
        c->have_rx_prev = 0;
    }
    if (c->cfg.keep_alive_ns && c->state == IR_CONN_ESTABLISHED &&
        now >= c->last_ack_eliciting_sent + c->cfg.keep_alive_ns)
        c->keepalive_pending = 1;
    path_on_timeout(c, now);
    if (ir_rec_timer(c) <= now)
        ir_rec_on_timeout(c, now);
    for (int s = 0; s < SP_COUNT; s++) {
        if (SP(c, s).ack_deadline <= now) {
            SP(c, s).ack_pending = 1;
            SP(c, s).ack_deadline = UINT64_MAX;
        }
    }
}

/* RFC 9001 6.1: not before the handshake is confirmed, nor before a packet of the current
 * key phase is acknowledged (which also covers an update the peer started and we
 * followed); 6.5: three PTOs after that acknowledgment, so that the peer had time to
 * discard its old keys and make the next ones (a SHOULD, as ngtcp2 does). */
static int start_key_update(ir_conn *c)
{
    pn_space *sp = &SP(c, SP_APP);
    pn_space *ks = &KEYS(c, SP_APP);
    if (!c->handshake_confirmed || c->key_update_pending_ack || c->key_phase != c->rx_phase ||
        !ks->have_tx)
        return -1;
    if (c->key_update_confirmed && c->now < c->key_update_confirmed + 3 * ir_rec_pto(c, SP_APP))
        return -1;
    if (ir_pkt_keys_update(&ks->tx, &ks->tx) != 0)
        return -1;
    c->key_phase ^= 1;
    c->key_phase_start_pn = sp->next_pn;
    c->key_update_pending_ack = 1;
    c->key_updates++;
    return 0;
}

int ir_conn_initiate_key_update(ir_conn *c)
{
    return start_key_update(c);
}

void ir_conn_get_stats(const ir_conn *c, ir_conn_stats *out)
{
    *out = c->stats;
    out->rtt_ns = c->path->smoothed_rtt;
    out->rtt_var_ns = c->path->rttvar;
    out->min_rtt_ns = c->path->min_rtt == UINT64_MAX ? 0 : c->path->min_rtt;
    out->cwnd = c->path->cwnd;
    out->bytes_in_flight = c->path->bytes_in_flight;
    out->key_updates = c->key_updates;
    out->max_datagram = c->path->max_datagram;
    out->retried = c->retried;
}
