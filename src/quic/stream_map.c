/* A hash table from stream ids to pointers and an intrusive FIFO (stream_map.h). */
#include "quic/stream_map.h"

#include <stdlib.h>
#include <string.h>

#define MIN_CAP 16

/* Fibonacci hashing: stream ids count up by 4 in their low bits; the multiplication
 * spreads them over the high bits, which pick the slot */
static size_t slot_of(uint64_t id, size_t cap)
{
    return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

void ir_idmap_init(ir_idmap *m)
{
    memset(m, 0, sizeof *m);
}

void ir_idmap_free(ir_idmap *m)
{
    free(m->slots);
    ir_idmap_init(m);
}

void *ir_idmap_find(const ir_idmap *m, uint64_t id)
{
    if (!m->n)
        return NULL;
    for (size_t i = slot_of(id, m->cap);; i = (i + 1) & (m->cap - 1)) {
        const ir_idmap_slot *s = &m->slots[i];
        if (!s->val)
            return NULL;
        if (s->id == id)
            return s->val;
    }
}

static void put(ir_idmap_slot *slots, size_t cap, uint64_t id, void *val)
{
    size_t i = slot_of(id, cap);
    while (slots[i].val)
        i = (i + 1) & (cap - 1);
    slots[i].id = id;
    slots[i].val = val;
}

/* moves everything into a table of cap slots; -1 (nothing changed) without memory */
static int resize(ir_idmap *m, size_t cap)
{
    ir_idmap_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].val)
            put(slots, cap, m->slots[i].id, m->slots[i].val);
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int ir_idmap_insert(ir_idmap *m, uint64_t id, void *val)
{
    if (2 * (m->n + 1) > m->cap && resize(m, m->cap ? 2 * m->cap : MIN_CAP) != 0)
        return -1;
    put(m->slots, m->cap, id, val);
    m->n++;
    return 0;
}

void ir_idmap_remove(ir_idmap *m, uint64_t id)
{
    if (!m->n)
        return;
    size_t mask = m->cap - 1, i = slot_of(id, m->cap);
    for (;; i = (i + 1) & mask) {
        if (!m->slots[i].val)
            return;
        if (m->slots[i].id == id)
            break;
    }
    /* backward shift: later entries of the probe run move into the hole when their home
     * slot does not lie between the hole and themselves */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].val; j = (j + 1) & mask) {
        size_t home = slot_of(m->slots[j].id, m->cap);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].val = NULL;
    m->n--;
    if (m->cap > MIN_CAP && 8 * m->n < m->cap)
        resize(m, m->cap / 2); /* without memory it stays big: still correct */
}

void *ir_idmap_next(const ir_idmap *m, size_t *i)
{
    for (; *i < m->cap; (*i)++)
        if (m->slots[*i].val)
            return m->slots[(*i)++].val;
    return NULL;
}

void ir_queue_splice(ir_queue *to, ir_queue *from)
{
    if (!from->head)
        return;
    for (ir_qlink *l = from->head; l; l = l->next)
        l->q = to;
    from->head->prev = to->tail;
    if (to->tail)
        to->tail->next = from->head;
    else
        to->head = from->head;
    to->tail = from->tail;
    to->n += from->n;
    ir_queue_init(from);
}
