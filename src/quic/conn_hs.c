/* The handshake of a QUIC connection: the TLS hooks (secrets, CRYPTO data, the peer's
 * transport parameters), Initial keys, CRYPTO frames in, handshake completion and the
 * discarding of the Initial and Handshake spaces, a client following a Retry. */

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "quic/conn_internal.h"

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
    qepoch *s = &c->epoch[space_of_level(level)];
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
    return ir_sendbuf_write(&c->epoch[space_of_level(level)].crypto_send, data, len);
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
        return IR_QERR_TRANSPORT_PARAMETER_ERROR;
    /* RFC 9000 7.3: authenticate the connection ids of the handshake */
    if (!tp.has_initial_scid || !tp_cid_eq(&tp.initial_scid, &c->initial_scid))
        return IR_QERR_TRANSPORT_PARAMETER_ERROR;
    if (!c->is_server) {
        if (!tp.has_original_dcid || !tp_cid_eq(&tp.original_dcid, &c->odcid))
            return IR_QERR_TRANSPORT_PARAMETER_ERROR;
        /* RFC 9000 7.3: retry_source_connection_id iff we followed a Retry, equal to its SCID */
        if (tp.has_retry_scid != c->retried ||
            (c->retried && !tp_cid_eq(&tp.retry_scid, &c->retry_scid)))
            return IR_QERR_TRANSPORT_PARAMETER_ERROR;
        if (tp.has_stateless_reset_token) {
            /* the server's first connection id, path 0's */
            memcpy(c->paths[0]->cids.rcid[0].token, tp.stateless_reset_token, 16);
            c->paths[0]->cids.rcid[0].has_token = 1;
        }
    }
    /* multipath needs connection ids on every path: with a zero-length one it is a
     * PROTOCOL_VIOLATION (draft 2; noq does the same) */
    if (tp.has_initial_max_path_id && c->initial_scid.len == 0)
        return IR_QERR_PROTOCOL_VIOLATION;
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

int ir_conn_start_tls(ir_conn *c)
{
    ir_tp tp = c->cfg.tp;
    /* a connection holds IR_MAX_PATHS path ids at once: no more are offered */
    if (tp.has_initial_max_path_id && tp.initial_max_path_id > IR_MAX_PATHS - 1)
        tp.initial_max_path_id = IR_MAX_PATHS - 1;
    c->cfg.tp.initial_max_path_id = tp.initial_max_path_id;
    tp.has_initial_scid = 1;
    const local_cid *first = &c->paths[0]->cids.lcid[0]; /* the handshake runs on path 0 */
    tp.initial_scid.len = first->cid.len;
    memcpy(tp.initial_scid.id, first->cid.data, first->cid.len);
    if (c->is_server) {
        tp.has_original_dcid = 1;
        tp.original_dcid.len = c->odcid.len;
        memcpy(tp.original_dcid.id, c->odcid.data, c->odcid.len);
        tp.has_stateless_reset_token = 1;
        memcpy(tp.stateless_reset_token, first->token, 16);
        if (c->retried) {
            tp.has_retry_scid = 1;
            tp.retry_scid.len = c->retry_scid.len;
            memcpy(tp.retry_scid.id, c->retry_scid.data, c->retry_scid.len);
        }
    }
    uint8_t enc[512];
    uint64_t seed;
    ir_conn_rnd(c, &seed, sizeof seed);
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

int ir_conn_install_initial_keys(ir_conn *c, const ir_cid *cid)
{
    ir_pkt_keys client, server;
    if (ir_initial_keys(cid->data, cid->len, &client, &server) != 0)
        return ir_fail(IROH_ERR_IO, "initial keys");
    qepoch *s = &c->epoch[SP_INITIAL];
    ir_pkt_keys_free(&s->rx);
    ir_pkt_keys_free(&s->tx);
    s->rx = c->is_server ? client : server;
    s->tx = c->is_server ? server : client;
    s->have_rx = s->have_tx = 1;
    return IROH_OK;
}

void ir_conn_discard_space(ir_conn *c, int s)
{
    pn_space *sp = &c->sp[s]; /* Initial or Handshake */
    if (sp->discarded)
        return;
    ir_rec_discard_space(c, s);
    qepoch *e = &c->epoch[s];
    ir_pkt_keys_free(&e->rx);
    ir_pkt_keys_free(&e->tx);
    e->have_rx = e->have_tx = 0;
    /* nothing of the space is needed any more: give its memory back */
    free(sp->sent);
    sp->sent = NULL;
    sp->capsent = 0;
    free(sp->frames);
    sp->frames = NULL;
    sp->capframes = 0;
    ir_sendbuf_free(&e->crypto_send);
    ir_recvbuf_free(&e->crypto_recv);
    ir_sendbuf_init(&e->crypto_send);
    ir_recvbuf_init(&e->crypto_recv);
    ir_pn_seen_free(&sp->seen);
    ir_ranges_free(&sp->ack_ranges);
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
        ir_conn_discard_space(c, SP_HANDSHAKE);
    }
    ir_conn_mp_on_handshake(c); /* multipath on if both offered it */
    ir_conn_issue_more_cids(c, &c->paths[0]->cids);
    ir_nat_handshake_done(c);
    c->connected_pending = 1;
}

void ir_conn_crypto_received(ir_conn *c, int space, const ir_frame_crypto *f)
{
    qepoch *sp = &c->epoch[space];
    if (f->offset + f->len > sp->crypto_recv.read + 65536) {
        ir_conn_close_with(c, 0, IR_QERR_CRYPTO_BUFFER_EXCEEDED, "too much handshake data buffered");
        return;
    }
    if (ir_recvbuf_put(&sp->crypto_recv, f->offset, f->data, f->len, 0) != 0) {
        ir_conn_close_with(c, 0, IR_QERR_INTERNAL_ERROR, "out of memory");
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
            ir_conn_close_with(c, 0, code ? code : IR_QERR_CRYPTO(IR_TLS_ALERT_HANDSHAKE_FAILURE), why);
            return;
        }
    }
    if (ir_tls_complete(c->tls))
        on_handshake_complete(c);
}

/* RFC 9000 17.2.5.2: a client follows one valid Retry, before any other server packet:
 * new DCID and Initial keys, the token in every later Initial, the ClientHello again. */
int ir_conn_follow_retry(ir_conn *c, const uint8_t *p, const ir_pkt_hdr *h)
{
    if (c->is_server || c->retried || c->got_first_server_packet || h->token_len == 0 ||
        !ir_cid_eq(&h->dcid, &c->paths[0]->cids.lcid[0].cid) || ir_cid_eq(&h->scid, &c->odcid) ||
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
    qpath *path0 = c->paths[0]; /* the handshake runs on path 0 */
    path0->cids.rcid[0].cid = h->scid;
    if (ir_conn_install_initial_keys(c, &h->scid) != IROH_OK) {
        ir_conn_close_with(c, 0, IR_QERR_INTERNAL_ERROR, "initial keys");
        return 0;
    }
    /* what the Initial packets carried goes out again under the new keys */
    qepoch *sp = &c->epoch[SP_INITIAL];
    ir_rec_discard_sent(c, path0, SP_INITIAL);
    sp->crypto_send.next = sp->crypto_send.base;
    ir_ranges_free(&sp->crypto_send.lost);
    ir_ranges_init(&sp->crypto_send.lost, 0);
    path0->pto_count = 0;
    return 1;
}

/* ---- the records of handshake frames --------------------------------------------------- */

static void crypto_acked(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    ir_sendbuf_on_ack(&c->epoch[space].crypto_send, f->b, (size_t)f->c, 0);
}

static void crypto_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    if (!PNS(c, path, space).discarded)
        ir_sendbuf_on_lost(&c->epoch[space].crypto_send, f->b, (size_t)f->c, 0);
}

const sent_kind ir_sf_crypto = {"CRYPTO", crypto_acked, crypto_lost, 1};

static void handshake_done_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    c->handshake_done_pending = 1;
}

const sent_kind ir_sf_handshake_done = {"HANDSHAKE_DONE", NULL, handshake_done_lost, 0};
