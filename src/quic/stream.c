#include "quic/stream.h"

#include <stdlib.h>
#include <string.h>

void ir_sendbuf_init(ir_sendbuf *b)
{
    memset(b, 0, sizeof *b);
    ir_ranges_init(&b->acked, 0);
    ir_ranges_init(&b->lost, 0);
}

void ir_sendbuf_free(ir_sendbuf *b)
{
    free(b->data);
    ir_ranges_free(&b->acked);
    ir_ranges_free(&b->lost);
    memset(b, 0, sizeof *b);
}

int ir_sendbuf_write(ir_sendbuf *b, const uint8_t *data, size_t len)
{
    if (!len)
        return 0;
    size_t used = (size_t)(b->end - b->base);
    if (b->head + used + len > b->cap) {
        /* compact only when that moves at most 4 bytes for each byte it frees (amortized
         * O(1)): moving a nearly full buffer to gain a little room at each write would be
         * quadratic. Otherwise grow, to under 2.5 times what is held (plus len). */
        if (b->head && 4 * b->head >= used) {
            memmove(b->data, b->data + b->head, used);
            b->head = 0;
        }
        if (b->head + used + len > b->cap) {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < b->head + used + len)
                cap *= 2;
            uint8_t *p = realloc(b->data, cap);
            if (!p)
                return -1;
            b->data = p;
            b->cap = cap;
        }
    }
    memcpy(b->data + b->head + used, data, len);
    b->end += len;
    return 0;
}

int ir_sendbuf_next(const ir_sendbuf *b, uint64_t limit, size_t max, uint64_t *off, size_t *len,
                    int *fin)
{
    if (b->lost.n) {
        const ir_range *r = &b->lost.r[0];
        uint64_t n = r->end - r->start;
        if (n > max)
            n = max;
        *off = r->start;
        *len = (size_t)n;
        *fin = b->fin && b->fin_lost && r->start + n == b->end;
        return n > 0 || *fin;
    }
    if (b->fin_lost && !b->fin_acked) {
        *off = b->end;
        *len = 0;
        *fin = 1;
        return 1;
    }
    uint64_t stop = b->end < limit ? b->end : limit;
    uint64_t n = stop > b->next ? stop - b->next : 0;
    if (n > max)
        n = max;
    *off = b->next;
    *len = (size_t)n;
    *fin = b->fin && !b->fin_sent && b->next + n == b->end;
    return n > 0 || *fin;
}

const uint8_t *ir_sendbuf_at(const ir_sendbuf *b, uint64_t off)
{
    return b->data ? b->data + b->head + (size_t)(off - b->base) : NULL;
}

void ir_sendbuf_sent(ir_sendbuf *b, uint64_t off, size_t len, int fin)
{
    ir_ranges_remove(&b->lost, off, off + len);
    if (off + len > b->next)
        b->next = off + len;
    if (fin) {
        b->fin_sent = 1;
        b->fin_lost = 0;
    }
}

static void release_acked(ir_sendbuf *b)
{
    uint64_t upto = ir_ranges_contiguous_end(&b->acked, b->base);
    if (upto == b->base)
        return;
    b->head += (size_t)(upto - b->base);
    b->base = upto;
    if (b->base == b->end)
        b->head = 0;
    ir_ranges_drop_below(&b->acked, upto);
}

void ir_sendbuf_on_ack(ir_sendbuf *b, uint64_t off, size_t len, int fin)
{
    if (off + len > b->base) {
        uint64_t start = off < b->base ? b->base : off;
        ir_ranges_add(&b->acked, start, off + len);
        ir_ranges_remove(&b->lost, start, off + len);
        release_acked(b);
    }
    if (fin) {
        b->fin_acked = 1;
        b->fin_lost = 0;
    }
}

void ir_sendbuf_on_lost(ir_sendbuf *b, uint64_t off, size_t len, int fin)
{
    /* only what is not acknowledged in the meantime needs sending again */
    uint64_t start = off < b->base ? b->base : off, end = off + len;
    if (start < end && ir_ranges_add(&b->lost, start, end) == 0) {
        /* the acknowledged parts are not lost: take every acked range overlapping
         * [start, end) out again (a range at a time, not a byte at a time) */
        for (size_t i = 0; i < b->acked.n && b->acked.r[i].start < end; i++)
            if (b->acked.r[i].end > start)
                ir_ranges_remove(&b->lost, b->acked.r[i].start, b->acked.r[i].end);
    }
    if (fin && !b->fin_acked)
        b->fin_lost = 1;
}

int ir_sendbuf_done(const ir_sendbuf *b)
{
    return b->fin && b->fin_acked && b->base == b->end;
}

void ir_recvbuf_init(ir_recvbuf *b)
{
    memset(b, 0, sizeof *b);
    ir_ranges_init(&b->have, 0);
}

void ir_recvbuf_free(ir_recvbuf *b)
{
    free(b->data);
    ir_ranges_free(&b->have);
    memset(b, 0, sizeof *b);
}

int ir_recvbuf_put(ir_recvbuf *b, uint64_t off, const uint8_t *data, size_t len, int fin)
{
    uint64_t end = off + len, old_high = b->highest;
    if (b->have_final && (end > b->final_size || (fin && end != b->final_size)))
        return -2;
    if (fin) {
        if (end < b->highest)
            return -2;
        b->final_size = end;
        b->have_final = 1;
    }
    if (end > b->highest)
        b->highest = end;
    if (end <= b->read || len == 0)
        return 0;
    if (off < b->read) {
        data += b->read - off;
        len -= (size_t)(b->read - off);
        off = b->read;
    }
    size_t need = (size_t)(end - b->read);
    if (b->head + need > b->cap) {
        if (b->head) {
            memmove(b->data, b->data + b->head, old_high > b->read ? (size_t)(old_high - b->read) : 0);
            b->head = 0;
        }
        if (need > b->cap) {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < need)
                cap *= 2;
            uint8_t *p = realloc(b->data, cap);
            if (!p)
                return -1;
            b->data = p;
            b->cap = cap;
        }
    }
    memcpy(b->data + b->head + (size_t)(off - b->read), data, len);
    return ir_ranges_add(&b->have, off, end);
}

size_t ir_recvbuf_readable(const ir_recvbuf *b)
{
    return (size_t)(ir_ranges_contiguous_end(&b->have, b->read) - b->read);
}

size_t ir_recvbuf_read(ir_recvbuf *b, uint8_t *out, size_t cap)
{
    size_t n = ir_recvbuf_readable(b);
    if (n > cap)
        n = cap;
    if (!n)
        return 0;
    memcpy(out, b->data + b->head, n);
    b->head += n;
    b->read += n;
    if (b->read == b->highest)
        b->head = 0;
    ir_ranges_drop_below(&b->have, b->read);
    return n;
}

int ir_recvbuf_finished(const ir_recvbuf *b)
{
    return b->have_final && b->read == b->final_size;
}
