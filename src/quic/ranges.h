/* Sets of half-open uint64 ranges [start, end), kept sorted and merged. Used for the
 * packet numbers ACK frames report, acknowledged and lost stream bytes, and reassembly;
 * and ir_pn_seen, the received packet numbers for duplicate detection. */
#ifndef IR_QUIC_RANGES_H
#define IR_QUIC_RANGES_H

#include <stddef.h>
#include <stdint.h>

typedef struct ir_range {
    uint64_t start, end;
} ir_range;

typedef struct ir_ranges {
    ir_range *r;
    size_t n, cap;
    size_t max; /* 0 = unlimited; else the lowest ranges are dropped beyond max */
} ir_ranges;

void ir_ranges_init(ir_ranges *s, size_t max);
void ir_ranges_free(ir_ranges *s);
/* Adds [start, end); returns 0, or -1 on allocation failure. */
int ir_ranges_add(ir_ranges *s, uint64_t start, uint64_t end);
/* Removes [start, end). Returns 0 or -1. */
int ir_ranges_remove(ir_ranges *s, uint64_t start, uint64_t end);
/* 1 if v lies in the set. */
int ir_ranges_contains(const ir_ranges *s, uint64_t v);
/* 1 if the set covers [start, end) completely. */
int ir_ranges_covers(const ir_ranges *s, uint64_t start, uint64_t end);
/* Removes everything below v. */
void ir_ranges_drop_below(ir_ranges *s, uint64_t v);
/* The end of the range starting at or below v and containing v, or v if none. */
uint64_t ir_ranges_contiguous_end(const ir_ranges *s, uint64_t v);

static inline int ir_ranges_empty(const ir_ranges *s)
{
    return s->n == 0;
}

/* The packet numbers received in one packet number space, to discard duplicates (RFC 9000
 * 12.3). Every number below `floor` counts as received; from floor up the set is exact, as
 * at most `max` ranges, each starting above floor. A number that would need one range more
 * fills the oldest gap instead: the floor moves up to the end of the lowest range. So a
 * peer that opens many gaps costs at most `max` ranges of memory, and what it gets for
 * them is that its oldest stragglers are refused as if seen. Nothing here depends on what
 * ACK frames report (those ranges are capped and pruned on their own). */
typedef struct ir_pn_seen {
    uint64_t floor;
    ir_ranges above; /* received numbers > floor; floor itself is never in it */
    size_t max;
} ir_pn_seen;

void ir_pn_seen_init(ir_pn_seen *t, size_t max);
void ir_pn_seen_free(ir_pn_seen *t);
/* Records pn as received. Never fails: without memory for a new range the oldest gap is
 * filled (and with no range at all, the floor moves past pn). */
void ir_pn_seen_add(ir_pn_seen *t, uint64_t pn);

/* 1 if pn was received (or lies below the floor). In-order arrivals answer from the
 * floor or the last range, without a search. */
static inline int ir_pn_seen_has(const ir_pn_seen *t, uint64_t pn)
{
    if (pn < t->floor)
        return 1;
    if (t->above.n == 0 || pn >= t->above.r[t->above.n - 1].end)
        return 0;
    return ir_ranges_contains(&t->above, pn);
}

#endif
