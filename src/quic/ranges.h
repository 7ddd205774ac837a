/* Sets of half-open uint64 ranges [start, end), kept sorted and merged. Used for received
 * packet numbers (ACK ranges), acknowledged and lost stream bytes, and reassembly. */
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

#endif
