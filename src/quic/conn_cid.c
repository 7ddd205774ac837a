/* Connection ids of a QUIC connection: ours (issued, retired by the peer) and the
 * peer's (NEW_CONNECTION_ID, retirement), stateless reset tokens. */

#include <string.h>

#include "base/blake3.h"
#include "quic/conn_internal.h"

static void reset_token_for(const ir_conn *c, const ir_cid *cid, uint8_t out[16])
{
    uint8_t full[32];
    ir_blake3_keyed_hash(c->cfg.reset_key, cid->data, cid->len, full);
    memcpy(out, full, 16);
}

local_cid *ir_conn_issue_cid(ir_conn *c, qcids *k)
{
    if (k->nlcid >= MAX_LOCAL_CIDS)
        return NULL;
    local_cid *l = &k->lcid[k->nlcid++];
    memset(l, 0, sizeof *l);
    l->seq = k->next_lcid_seq++;
    l->cid.len = CID_LEN;
    ir_conn_rnd(c, l->cid.data, CID_LEN);
    reset_token_for(c, &l->cid, l->token);
    if (c->cfg.on_cid)
        c->cfg.on_cid(c->cfg.cid_ctx, &l->cid, 1);
    return l;
}

int ir_conn_rotate_dcid(ir_conn *c)
{
    qpath *p = c->send_path; /* the path data goes on */
    if (c->state != IR_CONN_ESTABLISHED || !p->cids.nrcid)
        return -1;
    for (size_t i = 0; i < p->cids.nrcid; i++) {
        if (i == p->cids.active_rcid || p->cids.rcid[i].retire_pending || !p->cids.rcid[i].cid.len)
            continue;
        p->cids.rcid[p->cids.active_rcid].retire_pending = 1; /* RETIRE_CONNECTION_ID goes out */
        p->cids.active_rcid = i;
        ir_conn_cid_frames_due(c);
        return 0;
    }
    return -1;
}

int ir_conn_peer_reset_token(const ir_conn *c, uint8_t token[16])
{
    const qpath *p = c->send_path; /* the path data goes on */
    const remote_cid *r = p->cids.nrcid ? &p->cids.rcid[p->cids.active_rcid] : NULL;
    if (!r || !r->has_token)
        return 0;
    memcpy(token, r->token, 16);
    return 1;
}

int ir_conn_owns_cid(const ir_conn *c, const uint8_t *cid, size_t len)
{
    for (size_t p = 0; p < c->npaths; p++) {
        const qpath *q = c->paths[p];
        const qcids *k = q->state != PS_FREE ? &q->cids : c->latent[p] ? &c->latent[p]->cids : NULL;
        for (size_t i = 0; k && i < k->nlcid; i++)
            if (!k->lcid[i].retired && k->lcid[i].cid.len == len &&
                memcmp(k->lcid[i].cid.data, cid, len) == 0)
                return 1;
    }
    return 0;
}

const ir_cid *ir_conn_initial_dcid(const ir_conn *c)
{
    return c->is_server && c->retried ? &c->retry_scid : &c->odcid;
}

const ir_cid *ir_conn_dcid(const qpath *path)
{
    return &path->cids.rcid[path->cids.active_rcid].cid;
}

void ir_conn_issue_more_cids(ir_conn *c, qcids *k)
{
    uint64_t limit = c->peer_tp_ok ? c->peer_tp.active_connection_id_limit : 2;
    if (limit > MAX_LOCAL_CIDS)
        limit = MAX_LOCAL_CIDS;
    size_t active = 0;
    for (size_t i = 0; i < k->nlcid; i++)
        active += !k->lcid[i].retired;
    while (active < limit && k->nlcid < MAX_LOCAL_CIDS) {
        local_cid *l = ir_conn_issue_cid(c, k);
        if (!l)
            break;
        l->announce_pending = 1;
        ir_conn_cid_frames_due(c);
        active++;
    }
}

void ir_conn_new_cid_frame(ir_conn *c, qcids *k, const ir_frame_new_cid *f)
{
    ir_conn_cid_frames_due(c); /* a retirement may become due below */
    for (size_t i = 0; i < k->nrcid; i++) {
        if (k->rcid[i].seq == f->seq) {
            /* (an entry without an id: one retired already, its retirement waiting to go
             * out; the same frame again is no error, RFC 9000 19.15) */
            if (k->rcid[i].cid.len &&
                (k->rcid[i].cid.len != f->cid_len || memcmp(k->rcid[i].cid.data, f->cid, f->cid_len)))
                ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, "connection id sequence reused");
            return;
        }
    }
    if (f->seq < k->rcid_retire_prior_to) {
        /* already retired: retire it again right away */
        if (k->nrcid < MAX_REMOTE_CIDS) {
            remote_cid *r = &k->rcid[k->nrcid++];
            memset(r, 0, sizeof *r);
            r->seq = f->seq;
            r->retire_pending = 1;
        }
        return;
    }
    if (f->retire_prior_to > k->rcid_retire_prior_to) {
        k->rcid_retire_prior_to = f->retire_prior_to;
        for (size_t i = 0; i < k->nrcid; i++)
            if (k->rcid[i].seq < f->retire_prior_to)
                k->rcid[i].retire_pending = 1;
    }
    size_t live = 0;
    for (size_t i = 0; i < k->nrcid; i++)
        live += !k->rcid[i].retire_pending;
    if (live + 1 > c->cfg.tp.active_connection_id_limit || k->nrcid >= MAX_REMOTE_CIDS) {
        ir_conn_close_with(c, 0, IR_QERR_CONNECTION_ID_LIMIT_ERROR, "too many connection ids");
        return;
    }
    remote_cid *r = &k->rcid[k->nrcid++];
    memset(r, 0, sizeof *r);
    r->seq = f->seq;
    r->cid.len = f->cid_len;
    memcpy(r->cid.data, f->cid, f->cid_len);
    memcpy(r->token, f->reset_token, IR_RESET_TOKEN_LEN);
    r->has_token = 1;
    /* move off a retired active id */
    if (k->rcid[k->active_rcid].retire_pending) {
        for (size_t i = 0; i < k->nrcid; i++) {
            if (!k->rcid[i].retire_pending) {
                k->active_rcid = i;
                break;
            }
        }
    }
}

void ir_conn_retire_cid_frame(ir_conn *c, qcids *k, uint64_t seq, const ir_cid *pkt_dcid)
{
    if (seq >= k->next_lcid_seq) {
        ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, "retiring a connection id never issued");
        return;
    }
    for (size_t i = 0; i < k->nlcid; i++) {
        local_cid *l = &k->lcid[i];
        if (l->seq != seq || l->retired)
            continue;
        if (ir_cid_eq(&l->cid, pkt_dcid)) {
            ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, "retiring the connection id in use");
            return;
        }
        l->retired = 1;
        l->announce_pending = 0;
        if (c->cfg.on_cid)
            c->cfg.on_cid(c->cfg.cid_ctx, &l->cid, 0);
        /* reuse the slot: compact the table */
        memmove(l, l + 1, (k->nlcid - i - 1) * sizeof *l);
        k->nlcid--;
        ir_conn_issue_more_cids(c, k);
        return;
    }
}

/* ---- the records of connection id frames ------------------------------------------------ */

/* b: the path id of the connection id (0 without multipath) */
static void new_cid_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    qcids *k = ir_conn_cids_by_id(c, f->b);
    if (!k)
        return;
    for (size_t i = 0; i < k->nlcid; i++) {
        local_cid *l = &k->lcid[i];
        if (l->seq == f->a && !l->retired) {
            l->announce_pending = 1;
            ir_conn_cid_frames_due(c);
        }
    }
}

const sent_kind ir_sf_new_cid = {"NEW_CONNECTION_ID", NULL, new_cid_lost, 0};

static void retire_cid_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    qcids *k = ir_conn_cids_by_id(c, f->b);
    if (k && k->nrcid < MAX_REMOTE_CIDS) {
        remote_cid *r = &k->rcid[k->nrcid++];
        memset(r, 0, sizeof *r);
        r->seq = f->a;
        r->retire_pending = 1;
        ir_conn_cid_frames_due(c);
    }
}

const sent_kind ir_sf_retire_cid = {"RETIRE_CONNECTION_ID", NULL, retire_cid_lost, 0};
