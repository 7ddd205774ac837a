#include "quic/ranges.h"

#include <stdlib.h>
#include <string.h>

void ir_ranges_init(ir_ranges *s, size_t max)
{
    memset(s, 0, sizeof *s);
    s->max = max;
}

void ir_ranges_free(ir_ranges *s)
{
    free(s->r);
    s->r = NULL;
    s->n = s->cap = 0;
}

/* index of the first range whose end >= v (ranges touching v merge) */
static size_t lower(const ir_ranges *s, uint64_t v)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->r[mid].end < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int grow(ir_ranges *s)
{
    if (s->n < s->cap)
        return 0;
    size_t cap = s->cap ? s->cap * 2 : 8;
    ir_range *r = realloc(s->r, cap * sizeof *r);
    if (!r)
        return -1;
    s->r = r;
    s->cap = cap;
    return 0;
}

int ir_ranges_add(ir_ranges *s, uint64_t start, uint64_t end)
{
    if (start >= end)
        return 0;
    if (s->n && start == s->r[s->n - 1].end) {
        /* the common case of packet numbers in order: the last range grows */
        s->r[s->n - 1].end = end;
        return 0;
    }
    size_t i = lower(s, start);
    if (i == s->n || s->r[i].start > end) {
        /* no overlap or contact: insert */
        if (grow(s) != 0)
            return -1;
        memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof *s->r);
        s->r[i].start = start;
        s->r[i].end = end;
        s->n++;
    } else {
        /* merge with range i and every following range it reaches */
        if (start < s->r[i].start)
            s->r[i].start = start;
        size_t j = i;
        while (j + 1 < s->n && s->r[j + 1].start <= end)
            j++;
        if (s->r[j].end > end)
            end = s->r[j].end;
        s->r[i].end = end > s->r[i].end ? end : s->r[i].end;
        memmove(&s->r[i + 1], &s->r[j + 1], (s->n - j - 1) * sizeof *s->r);
        s->n -= j - i;
    }
    if (s->max && s->n > s->max) {
        memmove(&s->r[0], &s->r[1], (s->n - 1) * sizeof *s->r);
        s->n--;
    }
    return 0;
}

int ir_ranges_remove(ir_ranges *s, uint64_t start, uint64_t end)
{
    if (start >= end)
        return 0;
    for (size_t i = lower(s, start + 1); i < s->n && s->r[i].start < end;) {
        ir_range *r = &s->r[i];
        if (r->start >= start && r->end <= end) {
            memmove(r, r + 1, (s->n - i - 1) * sizeof *r);
            s->n--;
            continue;
        }
        if (r->start < start && r->end > end) {
            /* split */
            if (grow(s) != 0)
                return -1;
            r = &s->r[i];
            memmove(r + 2, r + 1, (s->n - i - 1) * sizeof *r);
            r[1].start = end;
            r[1].end = r->end;
            r->end = start;
            s->n++;
            return 0;
        }
        if (r->start < start)
            r->end = start;
        else
            r->start = end;
        i++;
    }
    return 0;
}

int ir_ranges_contains(const ir_ranges *s, uint64_t v)
{
    size_t i = lower(s, v + 1);
    return i < s->n && s->r[i].start <= v && v < s->r[i].end;
}

int ir_ranges_covers(const ir_ranges *s, uint64_t start, uint64_t end)
{
    if (start >= end)
        return 1;
    size_t i = lower(s, start + 1);
    return i < s->n && s->r[i].start <= start && end <= s->r[i].end;
}

void ir_ranges_drop_below(ir_ranges *s, uint64_t v)
{
    size_t i = 0;
    while (i < s->n && s->r[i].end <= v)
        i++;
    memmove(&s->r[0], &s->r[i], (s->n - i) * sizeof *s->r);
    s->n -= i;
    if (s->n && s->r[0].start < v)
        s->r[0].start = v;
}

uint64_t ir_ranges_contiguous_end(const ir_ranges *s, uint64_t v)
{
    size_t i = lower(s, v + 1);
    if (i < s->n && s->r[i].start <= v && v < s->r[i].end)
        return s->r[i].end;
    return v;
}

/* ---- received packet numbers ------------------------------------------------------------ */

void ir_pn_seen_init(ir_pn_seen *t, size_t max)
{
    t->floor = 0;
    ir_ranges_init(&t->above, 0);
    t->max = max ? max : 1;
}

void ir_pn_seen_free(ir_pn_seen *t)
{
    ir_ranges_free(&t->above);
}

/* the gap below the lowest range counts as received from now on: the floor moves up to the
 * end of that range */
static void fill_oldest_gap(ir_pn_seen *t)
{
    ir_ranges *s = &t->above;
    t->floor = s->r[0].end;
    memmove(&s->r[0], &s->r[1], (s->n - 1) * sizeof *s->r);
    s->n--;
}

void ir_pn_seen_add(ir_pn_seen *t, uint64_t pn)
{
    ir_ranges *s = &t->above;
    for (;;) {
        if (pn < t->floor)
            return;
        if (pn == t->floor) {
            /* in order (or the oldest gap's last number): the floor moves, and takes the
             * lowest range along when it now touches it */
            t->floor = pn + 1;
            if (s->n && s->r[0].start == t->floor)
                fill_oldest_gap(t);
            return;
        }
        if (s->n && pn == s->r[s->n - 1].end) {
            s->r[s->n - 1].end = pn + 1; /* in order after a gap */
            return;
        }
        size_t i = lower(s, pn);
        if (i < s->n && s->r[i].start <= pn + 1) {
            ir_ranges_add(s, pn, pn + 1); /* inside or next to a range: no new one, no memory */
            return;
        }
        if (s->n < t->max && grow(s) == 0) {
            memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof *s->r);
            s->r[i].start = pn;
            s->r[i].end = pn + 1;
            s->n++;
            return;
        }
        if (s->n == 0) {
            t->floor = pn + 1; /* no memory even for one range: everything below is seen */
            return;
        }
        fill_oldest_gap(t); /* and try again, with room for one range */
    }
}
