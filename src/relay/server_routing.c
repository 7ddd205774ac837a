/* Routing in the relay server core (upstream server/clients.rs): the EndpointId table
 * (a hash table with secret keys), registration with same-id replacement (the newest
 * connection is active, older ones wait inactive), EndpointGone to the endpoints a client
 * sent to, and forwarding datagram frames into the recipient's queue. */
#include "server_core.h"

#include <stdlib.h>
#include <string.h>

/* The set of EndpointIds an endpoint sent datagrams to (for EndpointGone). */
typedef struct id_set {
    uint8_t (*keys)[32];
    uint8_t *used;
    size_t n, cap;
} id_set;

/* The connections of one EndpointId. */
typedef struct ep_entry {
    iroh_endpoint_id id;
    uint64_t hash;
    struct ep_entry *hnext;
    ir_relay_conn *active;
    ir_relay_conn *inactive; /* most recent first, through inactive_next */
    id_set sent_to;
} ep_entry;

int ir_rs_routing_init(ir_relay_core *core)
{
    core->nbuckets = 64;
    core->buckets = calloc(core->nbuckets, sizeof *core->buckets);
    return core->buckets ? 0 : -1;
}

/* A keyed mix of the id (the keys are secret, so ids cannot be chosen to collide cheaply). */
static uint64_t id_hash(const ir_relay_core *core, const uint8_t k[32])
{
    uint64_t a, b, c;
    memcpy(&a, k, 8);
    memcpy(&b, k + 8, 8);
    memcpy(&c, k + 16, 8);
    uint64_t h = (a ^ core->hash_k0) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    h = (h ^ b ^ core->hash_k1) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    h = (h ^ c) * 0x94d049bb133111ebull;
    return h ^ (h >> 32);
}

static ep_entry *entry_find(const ir_relay_core *core, const uint8_t id[32])
{
    uint64_t h = id_hash(core, id);
    for (ep_entry *e = core->buckets[h & (core->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && memcmp(e->id.bytes, id, 32) == 0)
            return e;
    return NULL;
}

static void entry_grow(ir_relay_core *core)
{
    size_t nb = core->nbuckets * 2;
    ep_entry **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < core->nbuckets; i++) {
        ep_entry *e = core->buckets[i];
        while (e) {
            ep_entry *next = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    free(core->buckets);
    core->buckets = b;
    core->nbuckets = nb;
}

static ep_entry *entry_add(ir_relay_core *core, const iroh_endpoint_id *id)
{
    ep_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    if (core->nentries >= core->nbuckets)
        entry_grow(core);
    e->id = *id;
    e->hash = id_hash(core, id->bytes);
    size_t b = e->hash & (core->nbuckets - 1);
    e->hnext = core->buckets[b];
    core->buckets[b] = e;
    core->nentries++;
    return e;
}

static void entry_free(ep_entry *e)
{
    free(e->sent_to.keys);
    free(e->sent_to.used);
    free(e);
}

static void entry_remove(ir_relay_core *core, ep_entry *e)
{
    ep_entry **p = &core->buckets[e->hash & (core->nbuckets - 1)];
    while (*p && *p != e)
        p = &(*p)->hnext;
    if (*p)
        *p = e->hnext;
    core->nentries--;
    entry_free(e);
}

void ir_rs_routing_free(ir_relay_core *core)
{
    for (size_t i = 0; i < core->nbuckets; i++) {
        ep_entry *e = core->buckets[i];
        while (e) {
            ep_entry *next = e->hnext;
            entry_free(e);
            e = next;
        }
    }
    free(core->buckets);
}

static void id_set_add(const ir_relay_core *core, id_set *s, const uint8_t id[32])
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        uint8_t(*keys)[32] = malloc(cap * 32);
        uint8_t *used = calloc(cap, 1);
        if (!keys || !used) {
            free(keys);
            free(used);
            return; /* best effort, as upstream's notification */
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->used[i])
                continue;
            size_t j = id_hash(core, s->keys[i]) & (cap - 1);
            while (used[j])
                j = (j + 1) & (cap - 1);
            memcpy(keys[j], s->keys[i], 32);
            used[j] = 1;
        }
        free(s->keys);
        free(s->used);
        s->keys = keys;
        s->used = used;
        s->cap = cap;
    }
    size_t j = id_hash(core, id) & (s->cap - 1);
    while (s->used[j]) {
        if (memcmp(s->keys[j], id, 32) == 0)
            return;
        j = (j + 1) & (s->cap - 1);
    }
    memcpy(s->keys[j], id, 32);
    s->used[j] = 1;
    s->n++;
}

int ir_rs_register(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    ep_entry *e = entry_find(core, c->key.bytes);
    if (!e) {
        e = entry_add(core, &c->key);
        if (!e)
            return -1;
    } else if (e->active) {
        /* the newest connection of an EndpointId gets the traffic; the old one stays
         * open, inactive, and is told so */
        ir_relay_conn *old = e->active;
        ir_rs_send_status(core, old, IR_RELAY_STATUS_SAME_ENDPOINT_ID_CONNECTED, now);
        old->inactive_next = e->inactive;
        e->inactive = old;
        core->st.clients_inactive++;
        core->st.clients_replaced++;
    }
    e->active = c;
    c->entry = e;
    core->st.clients++;
    return 0;
}

static void notify_gone(ir_relay_core *core, ep_entry *e, uint64_t now)
{
    ir_relay_frame f;
    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_ENDPOINT_GONE;
    f.u.endpoint_gone = e->id;
    for (size_t i = 0; i < e->sent_to.cap; i++) {
        if (!e->sent_to.used[i])
            continue;
        ep_entry *p = entry_find(core, e->sent_to.keys[i]);
        if (!p || p == e || !p->active)
            continue;
        if (ir_rs_send_frame(core, p->active, &f, now) == 0)
            core->st.endpoint_gone_sent++;
    }
}

void ir_rs_unregister(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    ep_entry *e = c->entry;
    c->entry = NULL;
    core->st.clients--;
    core->st.disconnects++;
    if (e->active == c) {
        if (e->inactive) {
            ir_relay_conn *p = e->inactive;
            e->inactive = p->inactive_next;
            p->inactive_next = NULL;
            e->active = p;
            core->st.clients_inactive--;
            core->st.clients_inactive_removed++;
            ir_rs_send_status(core, p, IR_RELAY_STATUS_HEALTHY, now);
        } else {
            e->active = NULL;
            notify_gone(core, e, now);
            entry_remove(core, e);
        }
    } else {
        ir_relay_conn **p = &e->inactive;
        while (*p && *p != c)
            p = &(*p)->inactive_next;
        if (*p) {
            *p = c->inactive_next;
            core->st.clients_inactive--;
            core->st.clients_inactive_removed++;
        }
        c->inactive_next = NULL;
    }
}

/* A 0x04/0x05 frame from c: forwarded as 0x06/0x07 with the source id, or dropped. */
void ir_rs_forward(ir_relay_core *core, ir_relay_conn *c, const ir_relay_frame *f, uint64_t now)
{
    const ir_relay_datagrams *d = &f->u.dgram.d;
    core->st.frames_recv++;
    core->st.dgram_bytes_recv += d->len;
    size_t hl = ir_relay_dgram_header_len(d->segment_size);
    if (d->len == 0 || hl + d->len > IR_RELAY_MAX_PACKET_SIZE) {
        /* upstream would forward these and break the recipient's connection (spec 3.1) */
        core->st.dropped_invalid++;
        return;
    }
    ep_entry *e = entry_find(core, f->u.dgram.id.bytes);
    if (!e || !e->active) {
        core->st.dropped_absent++;
        return;
    }
    ir_relay_conn *r = e->active;
    size_t body = hl + d->len;
    size_t wh = ir_ws_header_len(body, 0);
    if (r->dg.n >= core->cfg.queue_datagrams || r->dg.bytes + wh + body > core->cfg.queue_bytes) {
        core->st.dropped_full++;
        return;
    }
    out_frame *of = ir_rs_frame_new(wh + body);
    if (!of) {
        core->st.dropped_full++;
        return;
    }
    ir_ws_write_header(of->data, 1, IR_WS_OP_BINARY, body, NULL);
    ir_relay_dgram_header_write(of->data + wh, 0, &c->key, d->ecn, d->segment_size);
    memcpy(of->data + wh + hl, d->contents, d->len);
    ir_rs_enqueue(core, r, of, OUT_DGRAM, now);
    core->st.frames_relayed++;
    core->st.bytes_relayed += d->len;
    id_set_add(core, &c->entry->sent_to, f->u.dgram.id.bytes);
}
