/* Multipath (draft-ietf-quic-multipath as noq 1.0 speaks it, spec quic-tls.md 3):
 * negotiation, the path slots (latent path ids with their connection ids, open paths,
 * abandoned ones draining), the multipath frames in and out, path idle timeouts and
 * keep-alives, the scheduler that picks the path application data goes on, and the public
 * path calls (open, status, abandon, the path list).
 *
 * Path ids: both sides' limits (initial_max_path_id, MAX_PATH_ID); a slot exists for each
 * path id up to our limit that is not freed, so at most IR_MAX_PATHS at once. The client
 * opens ids in order; an abandoned path is kept 3 PTOs (stragglers are acknowledged),
 * then its slot is freed and our limit raised by one (MAX_PATH_ID): the slot takes the
 * new id. */

#include <stdlib.h>
#include <string.h>

#include "quic/conn_internal.h"

/* ---- slots -------------------------------------------------------------------------------- */

/* A slot without a path (every one but slot 0 until a path opens in it) points here:
 * zeroes, state PS_FREE, read-only; its latent[] may hold a latent path id. */
const qpath ir_path_free_slot;

qpath *ir_conn_path_by_id(ir_conn *c, uint64_t id)
{
    for (size_t i = 0; i < c->npaths; i++)
        if (c->paths[i]->state != PS_FREE && c->paths[i]->id == id)
            return c->paths[i];
    return NULL;
}

static int owns(const qcids *k, const ir_cid *dcid)
{
    for (size_t i = 0; i < k->nlcid; i++)
        if (!k->lcid[i].retired && ir_cid_eq(&k->lcid[i].cid, dcid))
            return 1;
    return 0;
}

qpath *ir_conn_path_by_dcid(ir_conn *c, const ir_cid *dcid)
{
    for (size_t i = 0; i < c->npaths; i++) {
        qpath *p = c->paths[i];
        if (p->state != PS_FREE && owns(&p->cids, dcid))
            return p;
    }
    return NULL;
}

qlatent *ir_conn_latent_by_dcid(ir_conn *c, const ir_cid *dcid)
{
    for (size_t i = 0; i < IR_MAX_PATHS; i++)
        if (c->latent[i] && owns(&c->latent[i]->cids, dcid))
            return c->latent[i];
    return NULL;
}

qlatent *ir_conn_latent_by_id(ir_conn *c, uint64_t id)
{
    for (size_t i = 0; i < IR_MAX_PATHS; i++)
        if (c->latent[i] && c->latent[i]->id == id)
            return c->latent[i];
    return NULL;
}

qcids *ir_conn_cids_by_id(ir_conn *c, uint64_t id)
{
    qlatent *l = ir_conn_latent_by_id(c, id);
    if (l)
        return &l->cids;
    qpath *p = ir_conn_path_by_id(c, id);
    return p && p->state == PS_OPEN ? &p->cids : NULL;
}

void ir_conn_path_release(ir_conn *c, qpath *p)
{
    (void)c;
    free(p->app.sent);
    free(p->app.frames);
    ir_pn_seen_free(&p->app.seen);
    ir_ranges_free(&p->app.ack_ranges);
    p->app.sent = NULL;
    p->app.frames = NULL;
    p->app.nsent = p->app.capsent = p->app.nframes = p->app.capframes = 0;
}

/* slot i takes path id `id` as latent: its connection ids only. 0, or -1 (no memory: the
 * slot stays free and the id without a slot) */
static int slot_latent(ir_conn *c, size_t i, uint64_t id)
{
    qlatent *l = calloc(1, sizeof *l);
    if (!l)
        return -1;
    l->id = id;
    c->latent[i] = l;
    return 0;
}

/* The latent id of slot i gets its path: a qpath (slot 0: path0, else allocated) with
 * the id's connection ids, state PS_LATENT until the caller opens or abandons it. NULL
 * when there is no memory (the id stays latent). */
static qpath *slot_from_latent(ir_conn *c, size_t i)
{
    qlatent *l = c->latent[i];
    qpath *p = i == 0 ? &c->path0 : malloc(sizeof *p);
    if (!p)
        return NULL;
    memset(p, 0, sizeof *p);
    p->id = l->id;
    p->state = PS_LATENT;
    p->cids = l->cids;
    pn_space *sp = &p->app;
    sp->largest_acked = UINT64_MAX;
    sp->largest_recv = UINT64_MAX;
    sp->ack_deadline = UINT64_MAX;
    sp->loss_time = UINT64_MAX;
    sp->rx_old_largest = UINT64_MAX;
    ir_pn_seen_init(&sp->seen, SEEN_RANGES_MAX);
    ir_ranges_init(&sp->ack_ranges, ACK_RANGES_MAX);
    ir_rec_init(c, p);
    p->available = p->peer_available = 1;
    c->paths[i] = p;
    c->latent[i] = NULL;
    free(l);
    return p;
}

static size_t latent_slot(const ir_conn *c, const qlatent *l)
{
    size_t i = 0;
    while (i < IR_MAX_PATHS && c->latent[i] != l)
        i++;
    return i; /* (always found: every qlatent is in the table) */
}

/* our connection ids for the latent and open paths the peer may use (ids up to both
 * limits), min(its active_connection_id_limit, MAX_LOCAL_CIDS) each */
static void issue_path_cids(ir_conn *c)
{
    uint64_t max = c->local_max_path_id < c->remote_max_path_id ? c->local_max_path_id : c->remote_max_path_id;
    for (size_t i = 0; i < c->npaths; i++) {
        qpath *p = c->paths[i];
        qlatent *l = c->latent[i];
        if (p->state == PS_OPEN && p->id <= max)
            ir_conn_issue_more_cids(c, &p->cids);
        else if (l && l->id <= max)
            ir_conn_issue_more_cids(c, &l->cids);
    }
}

static void slot_open(ir_conn *c, qpath *p, const ir_netaddr *addr, int available)
{
    p->state = PS_OPEN;
    p->addr = *addr;
    p->validated = 0;
    p->available = available;
    p->last_recv = p->last_eliciting_sent = p->last_acked = c->now;
    p->degraded = 0;
    p->pace_tokens = 10 * p->max_datagram;
    p->pace_time = c->now;
    p->mtu_state = MTU_IDLE;
}

void ir_conn_mp_on_handshake(ir_conn *c)
{
    if (!c->cfg.tp.has_initial_max_path_id || !c->peer_tp_ok || !c->peer_tp.has_initial_max_path_id)
        return;
    c->multipath = 1;
    c->npaths = IR_MAX_PATHS;
    c->local_max_path_id = c->cfg.tp.initial_max_path_id; /* <= IR_MAX_PATHS - 1 (start_tls) */
    c->remote_max_path_id = c->peer_tp.initial_max_path_id;
    c->next_path_id = 1;
    /* out of memory: an id stays without a slot, like a freed one (no connection ids of
     * ours for it, so the peer cannot open it; ours refuses it with AGAIN) */
    for (uint64_t id = 1; id <= c->local_max_path_id; id++)
        (void)slot_latent(c, (size_t)id, id);
    issue_path_cids(c);
}

static int open_paths(const ir_conn *c, const qpath *except)
{
    int n = 0;
    for (size_t i = 0; i < c->npaths; i++)
        n += c->paths[i]->state == PS_OPEN && c->paths[i] != except;
    return n;
}

/* the path's PTO, or the initial one while it has no RTT sample */
static uint64_t path_pto(const ir_conn *c, const qpath *p)
{
    uint64_t pto = ir_rec_pto(c, p, SP_APP), first = ir_rec_initial_pto(c);
    return p->have_rtt ? pto : (pto > first ? pto : first);
}

/* PATH_ABANDON sent or received: nothing more is sent on the path (its remote ids count as
 * retired), what was in flight on it is repaired elsewhere, and its state stays 3 PTOs */
static void abandon_slot(ir_conn *c, qpath *p, uint64_t code, int send_frame)
{
    int was_open = p->state == PS_OPEN;
    p->state = PS_ABANDONED;
    p->abandoned = 1;
    p->abandon_code = code;
    p->abandon_pending = send_frame;
    p->status_pending = 0;
    memset(p->probes, 0, sizeof p->probes);
    p->nresp = 0;
    p->app.probe_pending = 0;
    p->drain_deadline = c->now + 3 * path_pto(c, p);
    ir_rec_abandon_sent(c, p);
    if (was_open) {
        c->stats.paths_abandoned++;
        ir_conn_push_event(c, IR_EV_PATH_ABANDONED, p->id, code);
    }
    if (p == c->send_path)
        ir_conn_mp_schedule(c);
}

/* something may let a waiting address open (connection ids, a path id, a slot): the
 * timer tries at once (outside the frame being processed) */
static void wake_waiting(ir_conn *c)
{
    if (c->nwant)
        c->want_at = c->now;
}

/* 3 PTOs after the abandonment: the slot goes, and our limit rises by one (a new path id
 * the peer may open takes the slot) */
static void free_slot(ir_conn *c, qpath *p)
{
    ir_rec_discard_sent(c, p, SP_APP);
    for (size_t i = 0; i < p->cids.nlcid; i++)
        if (!p->cids.lcid[i].retired && c->cfg.on_cid)
            c->cfg.on_cid(c->cfg.cid_ctx, &p->cids.lcid[i].cid, 0);
    ir_conn_path_release(c, p);
    size_t i = 0;
    while (i < IR_MAX_PATHS && c->paths[i] != p)
        i++;
    memset(p, 0, sizeof *p);
    p->state = PS_FREE;
    if (p == c->send_path)
        ir_conn_mp_schedule(c);
    if (p != &c->path0) { /* (slot 0 is inline) */
        if (c->send_path == p)
            c->send_path = &c->path0; /* no open path left: never a pointer to freed memory */
        if (i < IR_MAX_PATHS)
            c->paths[i] = IR_PATH_FREE_SLOT;
        free(p);
    }
    /* the next path id the peer may open takes the slot as latent, and our limit rises by
     * one (without the memory for it, the limit stays) */
    if (i < IR_MAX_PATHS && c->local_max_path_id < IR_MAX_PATH_ID &&
        slot_latent(c, i, c->local_max_path_id + 1) == 0) {
        c->local_max_path_id++;
        c->max_path_id_pending = 1;
        issue_path_cids(c);
        wake_waiting(c);
    }
}

void ir_conn_mp_schedule(ir_conn *c)
{
    qpath *cur = c->send_path, *best = NULL;
    int best_tier = 0;
    for (size_t i = 0; i < c->npaths; i++) {
        qpath *p = c->paths[i];
        if (p->state != PS_OPEN || !p->validated || p->degraded)
            continue;
        /* Available (by our status) before Backup; the current path keeps its place in
         * its tier, else the lowest id */
        int tier = p->available ? 2 : 1;
        if (tier > best_tier || (tier == best_tier && (p == cur || (best != cur && p->id < best->id)))) {
            best = p;
            best_tier = tier;
        }
    }
    if (!best) {
        if (cur->state == PS_OPEN)
            return;
        for (size_t i = 0; i < c->npaths && !best; i++)
            if (c->paths[i]->state == PS_OPEN)
                best = c->paths[i];
        if (!best)
            return; /* no open path at all */
    }
    if (best != cur) {
        c->send_path = best;
        ir_conn_push_event(c, IR_EV_PATH_SELECTED, best->id, 0);
    }
}

/* ---- fallback from a path that stopped answering --------------------------------------- */

/* another open, validated path that is not degraded itself */
static int other_usable(const ir_conn *c, const qpath *except)
{
    for (size_t i = 0; i < c->npaths; i++) {
        const qpath *p = c->paths[i];
        if (p != except && p->state == PS_OPEN && p->validated && !p->degraded)
            return 1;
    }
    return 0;
}

int ir_conn_mp_maybe_degrade(ir_conn *c, qpath *p, uint64_t now)
{
    if (!c->multipath || c->state != IR_CONN_ESTABLISHED || p->state != PS_OPEN || !p->validated ||
        p->degraded || !p->pto_count)
        return 0;
    /* The peer set the path Backup after our last acknowledgement on it (it moved its
     * data away, typically because it marked the path degraded itself): one PTO is enough.
     * This matters for the side that mostly receives: it sends few ack-eliciting packets,
     * so its own PTOs come late. */
    int hinted = !p->peer_available && p->peer_backup_at > p->last_acked;
    if (!hinted) {
        if (p->pto_count < IR_PATH_DEGRADE_PTOS)
            return 0;
        /* nothing acknowledged for the floor either: since the last acknowledgement, or
         * since the oldest packet still waiting for one if that is later */
        const pn_space *sp = &p->app;
        uint64_t since = p->last_acked;
        if (sp->sent_first < sp->nsent && sp->sent[sp->sent_first].time > since)
            since = sp->sent[sp->sent_first].time;
        if (now < since + IR_PATH_DEGRADE_MIN_NS)
            return 0;
    }
    if (!other_usable(c, p))
        return 0;
    p->degraded = 1;
    c->stats.paths_degraded++;
    /* what is in flight on it is lost at once (no congestion signal): the typed records
     * put their frames back, and they go out on the path the scheduler picks now */
    ir_rec_abandon_sent(c, p);
    p->app.probe_pending = 1; /* and a PING probes it (its PTOs go on, capped) */
    ir_conn_mp_schedule(c);
    return 1;
}

void ir_conn_mp_recovered(ir_conn *c, qpath *p, uint64_t now)
{
    (void)now;
    if (!p->degraded)
        return;
    p->degraded = 0;
    c->stats.paths_recovered++;
    ir_conn_mp_schedule(c);
}

/* ---- opening (client) and accepting (server) ------------------------------------------ */

qpath *ir_conn_mp_accept_path(ir_conn *c, qlatent *l, const ir_netaddr *from)
{
    /* only the client opens paths (noq: ServerSideNotAllowed) */
    if (!c->is_server || c->state != IR_CONN_ESTABLISHED)
        return NULL;
    qpath *p = slot_from_latent(c, latent_slot(c, l));
    if (!p)
        return NULL; /* no memory: dropped (the client's challenges come again) */
    slot_open(c, p, from, 1);
    p->initiated = 0;
    ir_conn_start_validation(c, p); /* no data on it before it answers */
    ir_conn_mp_schedule(c);          /* (only if no other path is open) */
    c->stats.paths_opened++;
    ir_conn_push_event(c, IR_EV_PATH_OPENED, p->id, 0);
    return p;
}

int ir_conn_multipath(const ir_conn *c)
{
    return c->multipath;
}

/* why a path could not open: the peer's limit or its connection ids, or one of our slots
 * (each comes with an event that wakes the waiting addresses), or memory (tried again) */
enum { OPEN_OK = 0, OPEN_WAIT, OPEN_NOMEM };
#define WANT_RETRY_NS (100 * NS_PER_MS)

static int open_path(ir_conn *c, const ir_netaddr *addr, int available, uint64_t *path_id)
{
    uint64_t id = c->next_path_id;
    if (id > c->remote_max_path_id) {
        c->paths_blocked_pending = 1; /* the peer's limit */
        return OPEN_WAIT;
    }
    qlatent *l = ir_conn_latent_by_id(c, id);
    if (!l)
        return OPEN_WAIT; /* our own limit: a slot frees when an abandoned path goes */
    const qcids *k = &l->cids;
    if (!k->nrcid || !k->rcid[k->active_rcid].cid.len || k->rcid[k->active_rcid].retire_pending) {
        l->cids_blocked_pending = 1; /* no connection id of the peer for it yet */
        return OPEN_WAIT;
    }
    qpath *p = slot_from_latent(c, latent_slot(c, l));
    if (!p)
        return OPEN_NOMEM; /* no memory for the path now */
    slot_open(c, p, addr, available != 0);
    p->initiated = 1; /* an address we chose: no anti-amplification limit */
    p->status_pending = !available; /* paths are Available until told otherwise */
    ir_conn_start_validation(c, p);
    ir_conn_mp_schedule(c);
    c->next_path_id++;
    c->stats.paths_opened++;
    ir_conn_push_event(c, IR_EV_PATH_OPENED, id, 0);
    *path_id = id;
    return OPEN_OK;
}

int ir_conn_open_path(ir_conn *c, const ir_netaddr *addr, int available, uint64_t now,
                      uint64_t *path_id)
{
    c->now = now;
    if (!c->multipath || c->is_server || c->state != IR_CONN_ESTABLISHED || !addr || !path_id)
        return IR_QUIC_STREAM_ERR;
    return open_path(c, addr, available, path_id) == OPEN_OK ? 0 : IR_QUIC_AGAIN;
}

/* ---- addresses waiting for a path (ir_conn_add_path) ---------------------------------- */

/* 1 if an open path goes to addr */
static int path_to(const ir_conn *c, const ir_netaddr *addr)
{
    for (size_t i = 0; i < c->npaths; i++)
        if (c->paths[i]->state == PS_OPEN && ir_netaddr_eq(&c->paths[i]->addr, addr))
            return 1;
    return 0;
}

/* opens paths to the waiting addresses, oldest first, until one cannot open */
static void open_waiting(ir_conn *c, uint64_t now)
{
    c->want_at = UINT64_MAX;
    while (c->nwant) {
        uint64_t id;
        int rc = path_to(c, &c->want[0]) ? OPEN_OK : open_path(c, &c->want[0], 0, &id);
        if (rc == OPEN_NOMEM)
            c->want_at = now + WANT_RETRY_NS;
        if (rc != OPEN_OK)
            return; /* OPEN_WAIT: an event wakes it (wake_waiting) */
        memmove(&c->want[0], &c->want[1], (c->nwant - 1) * sizeof c->want[0]);
        c->nwant--;
    }
}

int ir_conn_add_path(ir_conn *c, const ir_netaddr *addr, uint64_t now)
{
    c->now = now;
    if (!c->multipath || c->is_server || c->state != IR_CONN_ESTABLISHED || !addr)
        return IR_QUIC_STREAM_ERR;
    if (path_to(c, addr))
        return 0;
    for (size_t i = 0; i < c->nwant; i++)
        if (ir_netaddr_eq(&c->want[i], addr))
            return 0;
    if (c->nwant == IR_CONN_PATH_QUEUE)
        return IR_QUIC_AGAIN;
    if (!c->want && !(c->want = malloc(IR_CONN_PATH_QUEUE * sizeof *c->want)))
        return IR_QUIC_NO_MEMORY;
    c->want[c->nwant++] = *addr;
    c->want_at = now; /* opened from the timer: never inside the caller's frame processing */
    return 0;
}

size_t ir_conn_paths_waiting(const ir_conn *c)
{
    return c->nwant;
}

int ir_conn_path_set_status(ir_conn *c, uint64_t path_id, int available)
{
    qpath *p = c->multipath ? ir_conn_path_by_id(c, path_id) : NULL;
    if (!p || p->state != PS_OPEN)
        return IR_QUIC_STREAM_ERR;
    available = available != 0;
    if (p->available != available || p->status_pending) {
        p->available = available;
        p->status_pending = 1;
    }
    ir_conn_mp_schedule(c);
    return 0;
}

int ir_conn_path_abandon(ir_conn *c, uint64_t path_id, uint64_t code, uint64_t now)
{
    c->now = now;
    qpath *p = c->multipath && c->state == IR_CONN_ESTABLISHED ? ir_conn_path_by_id(c, path_id) : NULL;
    if (!p || p->state != PS_OPEN)
        return IR_QUIC_STREAM_ERR;
    if (!open_paths(c, p))
        return IR_QUIC_STREAM_ERR; /* the last path (noq: LastOpenPath); close instead */
    abandon_slot(c, p, code, 1);
    return 0;
}

/* ---- frames in ---------------------------------------------------------------------------- */

static int violation(ir_conn *c, const char *why)
{
    ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, why);
    return -1;
}

int ir_conn_mp_frame(ir_conn *c, const ir_frame *f, const ir_cid *pkt_dcid)
{
    /* (extension_ok let them through only with multipath on) */
    switch (f->type) {
    case IR_FT_PATH_NEW_CONNECTION_ID:
    case IR_FT_PATH_RETIRE_CONNECTION_ID: {
        int nc = f->type == IR_FT_PATH_NEW_CONNECTION_ID;
        uint64_t id = nc ? f->u.new_cid.path_id : f->u.retire_cid.path_id;
        if (id > c->local_max_path_id)
            return violation(c, nc ? "PATH_NEW_CONNECTION_ID for a path id above our maximum"
                                   : "PATH_RETIRE_CONNECTION_ID for a path id above our maximum");
        qcids *k = ir_conn_cids_by_id(c, id);
        if (!k)
            return 0; /* a path gone: ignored (draft 4) */
        c->stats.path_cids_recv += (uint64_t)nc;
        if (nc) {
            ir_conn_new_cid_frame(c, k, &f->u.new_cid);
            wake_waiting(c); /* perhaps the next path id's first */
        }
        else
            ir_conn_retire_cid_frame(c, k, f->u.retire_cid.seq, pkt_dcid);
        return c->state >= IR_CONN_CLOSING ? -1 : 0;
    }
    case IR_FT_PATH_ABANDON: {
        uint64_t id = f->u.path_abandon.path_id;
        if (id > c->local_max_path_id)
            return violation(c, "PATH_ABANDON for a path id above our maximum");
        qlatent *l = ir_conn_latent_by_id(c, id);
        if (l) {
            /* a path the client gave up before anything of it reached us: its id is done
             * with all the same (draft 3.4), so its slot frees and our limit rises (no
             * memory for the slot's abandoned state: ignored, the id stays latent) */
            qpath *p = slot_from_latent(c, latent_slot(c, l));
            if (p)
                abandon_slot(c, p, f->u.path_abandon.error_code, 1);
            return 0;
        }
        qpath *p = ir_conn_path_by_id(c, id);
        if (!p)
            return 0; /* gone */
        if (p->state == PS_ABANDONED) {
            /* the peer's answer to ours (or its own crossing it): 3 PTOs from now */
            uint64_t d = c->now + 3 * path_pto(c, p);
            if (d > p->drain_deadline)
                p->drain_deadline = d;
            return 0;
        }
        int last = !open_paths(c, p);
        abandon_slot(c, p, f->u.path_abandon.error_code, 1); /* answered with ours (draft 3.4) */
        if (last && c->no_path_deadline == UINT64_MAX) {
            /* our last path: a short while for a new one (the client may open one), then
             * NO_VIABLE_PATH (noq waits 3 PTOs of the initial RTT) */
            c->no_path_deadline = c->now + 3 * ir_rec_initial_pto(c);
        }
        return 0;
    }
    case IR_FT_PATH_STATUS_BACKUP:
    case IR_FT_PATH_STATUS_AVAILABLE: {
        uint64_t id = f->u.path_status.path_id;
        if (id > c->local_max_path_id)
            return violation(c, "PATH_STATUS for a path id above our maximum");
        qpath *p = ir_conn_path_by_id(c, id);
        if (!p || p->state != PS_OPEN)
            return 0;
        if (p->have_peer_status && f->u.path_status.seq <= p->peer_status_seq)
            return 0; /* older than what we know (they may arrive out of order) */
        p->have_peer_status = 1;
        p->peer_status_seq = f->u.path_status.seq;
        int avail = f->type == IR_FT_PATH_STATUS_AVAILABLE;
        if (p->peer_available && !avail) {
            /* a hint for the fallback: if the path we send on went dead, one PTO will do;
             * a PING now starts that PTO when nothing ack-eliciting is out on it */
            p->peer_backup_at = c->now;
            if (p == c->send_path && p->validated && !p->app.in_flight_ack_eliciting)
                p->app.probe_pending = 1;
        }
        p->peer_available = avail;
        return 0;
    }
    case IR_FT_MAX_PATH_ID:
        if (f->u.limit < c->peer_tp.initial_max_path_id)
            return violation(c, "MAX_PATH_ID below the peer's initial_max_path_id");
        if (f->u.limit > c->remote_max_path_id) {
            c->remote_max_path_id = f->u.limit;
            issue_path_cids(c);
            wake_waiting(c);
        }
        return 0;
    case IR_FT_PATHS_BLOCKED:
        if (f->u.limit > c->local_max_path_id)
            return violation(c, "PATHS_BLOCKED above our maximum path id");
        return 0; /* our limit rises as paths are freed */
    case IR_FT_PATH_CIDS_BLOCKED: {
        uint64_t id = f->u.path_cids_blocked.path_id;
        if (id > c->local_max_path_id)
            return violation(c, "PATH_CIDS_BLOCKED for a path id above our maximum");
        qlatent *l = ir_conn_latent_by_id(c, id);
        qpath *p = l ? NULL : ir_conn_path_by_id(c, id);
        const qcids *k = l ? &l->cids : p ? &p->cids : NULL;
        if (k && f->u.path_cids_blocked.next_seq > k->next_lcid_seq)
            return violation(c, "PATH_CIDS_BLOCKED beyond the ids we issued");
        return 0; /* we always issue what the peer allows */
    }
    default:
        return violation(c, "unexpected multipath frame");
    }
}

/* ---- frames out --------------------------------------------------------------------------- */

int ir_conn_mp_frames_pending(const ir_conn *c)
{
    if (c->max_path_id_pending || c->paths_blocked_pending)
        return 1;
    for (size_t i = 0; i < c->npaths; i++) {
        const qpath *p = c->paths[i];
        if (p->abandon_pending || (p->state == PS_OPEN && p->status_pending) ||
            (c->latent[i] && c->latent[i]->cids_blocked_pending))
            return 1;
    }
    return 0;
}

void ir_conn_mp_write_frames(ir_conn *c, pktw *w)
{
    if (c->max_path_id_pending && pktw_can_record(w)) {
        ir_frame f = {.type = IR_FT_MAX_PATH_ID};
        f.u.limit = c->local_max_path_id;
        if (pktw_put_frame(w, &f)) {
            c->max_path_id_pending = 0;
            pktw_record(w, &ir_sf_max_path_id, f.u.limit, 0, 0, 0, 1);
        }
    }
    if (c->paths_blocked_pending && pktw_can_record(w)) {
        ir_frame f = {.type = IR_FT_PATHS_BLOCKED};
        f.u.limit = c->remote_max_path_id;
        if (pktw_put_frame(w, &f)) {
            c->paths_blocked_pending = 0;
            pktw_record(w, &ir_sf_mp_blocked, 0, 0, 0, 0, 1);
        }
    }
    for (size_t i = 0; i < c->npaths && pktw_can_record(w); i++) {
        qpath *p = c->paths[i];
        if (p->abandon_pending) {
            ir_frame f = {.type = IR_FT_PATH_ABANDON};
            f.u.path_abandon.path_id = p->id;
            f.u.path_abandon.error_code = p->abandon_code;
            if (!pktw_put_frame(w, &f))
                return;
            p->abandon_pending = 0;
            pktw_record(w, &ir_sf_path_abandon, p->id, 0, 0, 0, 1);
        }
        if (p->state == PS_OPEN && p->status_pending && pktw_can_record(w)) {
            ir_frame f = {.type = p->available ? IR_FT_PATH_STATUS_AVAILABLE : IR_FT_PATH_STATUS_BACKUP};
            f.u.path_status.path_id = p->id;
            f.u.path_status.seq = p->status_seq;
            if (!pktw_put_frame(w, &f))
                return;
            p->status_pending = 0;
            pktw_record(w, &ir_sf_path_status, p->id, p->status_seq++, 0, 0, 1);
        }
        qlatent *l = c->latent[i];
        if (l && l->cids_blocked_pending && pktw_can_record(w)) {
            ir_frame f = {.type = IR_FT_PATH_CIDS_BLOCKED};
            f.u.path_cids_blocked.path_id = l->id;
            uint64_t next = 0;
            for (size_t k = 0; k < l->cids.nrcid; k++)
                if (l->cids.rcid[k].seq + 1 > next)
                    next = l->cids.rcid[k].seq + 1;
            f.u.path_cids_blocked.next_seq = next;
            if (!pktw_put_frame(w, &f))
                return;
            l->cids_blocked_pending = 0;
            pktw_record(w, &ir_sf_mp_blocked, l->id + 1, 0, 0, 0, 1);
        }
    }
}

static void path_abandon_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    qpath *p = ir_conn_path_by_id(c, f->a);
    if (p && p->state == PS_ABANDONED)
        p->abandon_pending = 1;
}

const sent_kind ir_sf_path_abandon = {"PATH_ABANDON", NULL, path_abandon_lost, 0};

static void path_status_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    qpath *p = ir_conn_path_by_id(c, f->a);
    if (p && p->state == PS_OPEN && f->b + 1 == p->status_seq)
        p->status_pending = 1; /* the newest status was lost: the current one goes again */
}

const sent_kind ir_sf_path_status = {"PATH_STATUS", NULL, path_status_lost, 0};

static void max_path_id_lost(ir_conn *c, qpath *path, int space, const sent_frame *f)
{
    if (f->a == c->local_max_path_id)
        c->max_path_id_pending = 1;
}

const sent_kind ir_sf_max_path_id = {"MAX_PATH_ID", NULL, max_path_id_lost, 0};
/* (blocked frames are hints: sent again when the next attempt is blocked) */
const sent_kind ir_sf_mp_blocked = {"PATHS_BLOCKED", NULL, NULL, 0};

/* ---- timers ------------------------------------------------------------------------------- */

/* a relay path (not an IP address) idles out later (iroh: 30 s instead of 15 s) */
static uint64_t idle_ns(const ir_conn *c, const qpath *p)
{
    iroh_socket_addr a;
    if (c->cfg.addr_of && c->cfg.addr_of(&p->addr, &a) != 0)
        return IR_RELAY_PATH_IDLE_NS;
    return IR_PATH_IDLE_NS;
}

uint64_t ir_conn_mp_timer(const ir_conn *c)
{
    uint64_t t = c->no_path_deadline;
    if (c->state != IR_CONN_ESTABLISHED)
        return t;
    if (c->nwant && c->want_at < t)
        t = c->want_at;
    int open = open_paths(c, NULL);
    for (size_t i = 0; i < c->npaths; i++) {
        const qpath *p = c->paths[i];
        uint64_t d = UINT64_MAX;
        if (p->state == PS_ABANDONED) {
            if (open)
                d = p->drain_deadline;
        } else if (p->state == PS_OPEN) {
            /* the last open path is left to the connection's idle timeout */
            if (open > 1)
                d = p->last_recv + idle_ns(c, p);
            if (c->cfg.keep_alive_ns && p->validated) {
                uint64_t k = p->last_eliciting_sent + c->cfg.keep_alive_ns;
                if (k < d)
                    d = k;
            }
        }
        if (d < t)
            t = d;
    }
    return t;
}

void ir_conn_mp_on_timeout(ir_conn *c, uint64_t now)
{
    if (c->state != IR_CONN_ESTABLISHED)
        return;
    for (size_t i = 0; i < c->npaths; i++) {
        qpath *p = c->paths[i];
        /* (with no open path left it stays: the CONNECTION_CLOSE goes on it) */
        if (p->state == PS_ABANDONED && now >= p->drain_deadline && open_paths(c, NULL))
            free_slot(c, p);
        else if (p->state == PS_OPEN && open_paths(c, p) && now >= p->last_recv + idle_ns(c, p))
            abandon_slot(c, p, IR_PATH_UNSTABLE_OR_POOR, 1); /* idle (iroh: 0x3e76) */
    }
    if (c->no_path_deadline != UINT64_MAX && now >= c->no_path_deadline) {
        c->no_path_deadline = UINT64_MAX;
        if (!open_paths(c, NULL))
            ir_conn_close_with(c, 0, IR_QERR_NO_VIABLE_PATH, "no viable path");
    }
    if (c->state == IR_CONN_ESTABLISHED && c->nwant && now >= c->want_at)
        open_waiting(c, now);
}

/* ---- the path list ------------------------------------------------------------------------ */

static void path_info(const ir_conn *c, const qpath *p, ir_conn_path_info *o)
{
    memset(o, 0, sizeof *o);
    o->id = p->id;
    o->addr = p->addr;
    o->validated = p->validated;
    o->available = p->available;
    o->peer_available = p->peer_available;
    o->abandoned = p->abandoned;
    o->sending = p == c->send_path && p->state == PS_OPEN;
    o->degraded = p->degraded;
    o->rtt_ns = p->smoothed_rtt;
    o->min_rtt_ns = p->min_rtt == UINT64_MAX ? 0 : p->min_rtt;
    o->cwnd = p->cc.cwnd;
    o->max_datagram = p->max_datagram;
    o->pkts_sent = p->pkts_sent;
    o->pkts_recv = p->pkts_recv;
    o->pkts_lost = p->pkts_lost;
    o->bytes_sent = p->tx_bytes;
    o->bytes_recv = p->rx_bytes;
    o->last_recv_ns = p->pkts_recv ? p->last_recv : 0;
}

size_t ir_conn_paths(const ir_conn *c, ir_conn_path_info *out, size_t cap)
{
    const qpath *list[IR_MAX_PATHS];
    size_t n = 0;
    for (size_t i = 0; i < c->npaths; i++) {
        const qpath *p = c->paths[i];
        if (!ir_path_live(p))
            continue;
        size_t k = n++;
        while (k > 0 && list[k - 1]->id > p->id) { /* by path id */
            list[k] = list[k - 1];
            k--;
        }
        list[k] = p;
    }
    for (size_t i = 0; i < n && i < cap && out; i++)
        path_info(c, list[i], &out[i]);
    return n;
}
