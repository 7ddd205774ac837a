/* What a connection needs to find and schedule many streams cheaply:
 *
 * - ir_idmap: stream id -> pointer, a hash table (open addressing, linear probing,
 *   deletion by backward shift, so no tombstones). Find, insert and remove take constant
 *   time on average; the table doubles at half full and halves below 1/8 (never under 16
 *   slots), so a connection that once had many streams gives the memory back.
 * - ir_queue: an intrusive FIFO of ir_qlink nodes embedded in the queued objects. A node
 *   knows its queue (NULL: in none), so pushing a queued node or removing an unqueued one
 *   is a no-op, and moving a node between queues is one call. The send loop takes streams
 *   from the head and puts those that still have data at the tail: round robin without
 *   scanning streams that have nothing to send.
 *
 * Neither allocates per operation except when the table grows. */
#ifndef IR_QUIC_STREAM_MAP_H
#define IR_QUIC_STREAM_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct ir_idmap_slot {
    uint64_t id;
    void *val; /* NULL: empty slot */
} ir_idmap_slot;

typedef struct ir_idmap {
    ir_idmap_slot *slots;
    size_t cap; /* a power of two, or 0 before the first insert */
    size_t n;
} ir_idmap;

void ir_idmap_init(ir_idmap *m);
void ir_idmap_free(ir_idmap *m);
/* the value of id, or NULL */
void *ir_idmap_find(const ir_idmap *m, uint64_t id);
/* adds id -> val (val not NULL, id not yet present); -1 when out of memory */
int ir_idmap_insert(ir_idmap *m, uint64_t id, void *val);
/* removes id if present */
void ir_idmap_remove(ir_idmap *m, uint64_t id);
/* iteration over the values in no particular order: i from 0 while i < m->cap; the map
 * must not change meanwhile. Returns the next value at or after *i and moves *i past it,
 * or NULL at the end. */
void *ir_idmap_next(const ir_idmap *m, size_t *i);

typedef struct ir_queue ir_queue;

typedef struct ir_qlink {
    struct ir_qlink *next, *prev;
    ir_queue *q; /* NULL: not queued */
} ir_qlink;

struct ir_queue {
    ir_qlink *head, *tail;
    size_t n;
};

static inline void ir_queue_init(ir_queue *q)
{
    q->head = q->tail = NULL;
    q->n = 0;
}

/* removes l from its queue, if any */
static inline void ir_queue_remove(ir_qlink *l)
{
    ir_queue *q = l->q;
    if (!q)
        return;
    if (l->prev)
        l->prev->next = l->next;
    else
        q->head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        q->tail = l->prev;
    l->next = l->prev = NULL;
    l->q = NULL;
    q->n--;
}

/* appends l to q, taking it out of another queue first; no change if it is already in q */
static inline void ir_queue_push(ir_queue *q, ir_qlink *l)
{
    if (l->q == q)
        return;
    ir_queue_remove(l);
    l->next = NULL;
    l->prev = q->tail;
    if (q->tail)
        q->tail->next = l;
    else
        q->head = l;
    q->tail = l;
    l->q = q;
    q->n++;
}

/* moves l to the tail of its queue */
static inline void ir_queue_rotate(ir_qlink *l)
{
    ir_queue *q = l->q;
    if (!q || q->tail == l)
        return;
    ir_queue_remove(l);
    ir_queue_push(q, l);
}

/* appends every node of `from` to `to`, in order; `from` ends empty */
void ir_queue_splice(ir_queue *to, ir_queue *from);

#endif
