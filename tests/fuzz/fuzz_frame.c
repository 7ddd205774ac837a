/* QUIC frames from arbitrary bytes: decode frame after frame until the end or an error;
 * every decoded frame must re-encode (no longer than it came), decode back to the same
 * frame, and its ACK ranges must walk cleanly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quic/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "frame_eq.h"

/* The ranges of a decoded ACK walk down from largest to smallest, never below 0. */
static void check_ack(const ir_frame_ack *a)
{
    ir_ack_iter it;
    uint64_t lo, hi, prev_lo = 0, count = 0;
    int r;
    ir_ack_iter_init(&it, a);
    while ((r = ir_ack_iter_next(&it, &lo, &hi)) == 1) {
        if (lo > hi || (count == 0 && hi != a->largest) || (count > 0 && hi + 2 > prev_lo))
            abort();
        prev_lo = lo;
        count++;
    }
    if (r != 0 || count != a->range_count + 1 || prev_lo != a->smallest)
        abort();
}

/* Rebuilds a decoded ACK from its ranges with ir_ack_encode, whole and squeezed. */
static void check_ack_encode(const ir_frame *f, size_t squeeze)
{
    static ir_ack_range r[64];
    static uint8_t out[2048];
    const ir_frame_ack *a = &f->u.ack;
    if (a->range_count >= 64)
        return;
    size_t n = 0;
    ir_ack_iter it;
    ir_ack_iter_init(&it, a);
    uint64_t lo, hi;
    while (ir_ack_iter_next(&it, &lo, &hi) == 1) {
        r[n].smallest = lo;
        r[n].largest = hi;
        n++;
    }
    int mp = f->type == IR_FT_PATH_ACK || f->type == IR_FT_PATH_ACK_ECN;
    int ecn = f->type == IR_FT_ACK_ECN || f->type == IR_FT_PATH_ACK_ECN;
    size_t k, len = ir_ack_encode(out, sizeof out, mp, a->path_id, r, n, a->ack_delay,
                                  ecn ? &a->ecn : NULL, &k);
    if (len == 0 || k != n)
        abort();
    for (int pass = 0; pass < 2; pass++) {
        ir_cursor c;
        ir_frame g;
        ir_cursor_init(&c, out, len);
        if (ir_frame_decode(&c, &g) != 0 || c.pos != len || g.type != f->type ||
            g.u.ack.largest != a->largest || g.u.ack.path_id != a->path_id ||
            g.u.ack.range_count + 1 != k || g.u.ack.ecn.ce != a->ecn.ce)
            abort();
        ir_ack_iter_init(&it, &g.u.ack);
        for (size_t i = 0; i < k; i++)
            if (ir_ack_iter_next(&it, &lo, &hi) != 1 || lo != r[i].smallest ||
                hi != r[i].largest)
                abort();
        /* squeezed: fewer ranges, still a valid frame, or nothing at all */
        size_t cap = squeeze % (len + 1);
        len = ir_ack_encode(out, cap, mp, a->path_id, r, n, a->ack_delay, ecn ? &a->ecn : NULL,
                            &k);
        if (len > cap || (len == 0) != (k == 0))
            abort();
        if (len == 0)
            break;
    }
}

/* The fit helpers never promise more than fits. */
static void check_fit(const ir_frame *f, size_t cap)
{
    static uint8_t out[4096];
    ir_frame g = *f;
    size_t n;
    cap %= sizeof out;
    if (f->type >= IR_FT_STREAM && f->type <= 0x0f) {
        int with_len = (f->type & IR_FT_STREAM_LEN) != 0;
        if (ir_stream_frame_fit(cap, f->u.stream.stream_id, f->u.stream.offset, f->u.stream.len,
                                with_len, &n) != 0) {
            if (cap >= ir_stream_frame_overhead(f->u.stream.stream_id, f->u.stream.offset, 0,
                                                with_len))
                abort();
            return;
        }
        g.type = ir_stream_frame_type(f->u.stream.offset != 0, with_len, 0);
        g.u.stream.len = n;
        size_t w = ir_frame_encode(out, cap, &g);
        if (w == 0 || w > cap ||
            w != ir_stream_frame_overhead(f->u.stream.stream_id, f->u.stream.offset, n,
                                          with_len) + n)
            abort();
    } else if (f->type == IR_FT_CRYPTO) {
        if (ir_crypto_frame_fit(cap, f->u.crypto.offset, f->u.crypto.len, &n) != 0)
            return;
        g.u.crypto.len = n;
        size_t w = ir_frame_encode(out, cap, &g);
        if (w == 0 || w > cap || w != ir_crypto_frame_overhead(f->u.crypto.offset, n) + n)
            abort();
    } else if (f->type == IR_FT_DATAGRAM || f->type == IR_FT_DATAGRAM_LEN) {
        int with_len = f->type == IR_FT_DATAGRAM_LEN;
        if (ir_datagram_frame_fit(cap, with_len, &n) != 0)
            return;
        if (n > f->u.datagram.len)
            n = f->u.datagram.len;
        g.u.datagram.len = n;
        size_t w = ir_frame_encode(out, cap, &g);
        if (w == 0 || w > cap || w != ir_datagram_frame_size(n, with_len))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t enc[65536 + 64];
    ir_cursor c;
    ir_cursor_init(&c, data, size);
    while (ir_cursor_left(&c) > 0) {
        ir_frame f;
        size_t start = c.pos;
        int rc = ir_frame_decode(&c, &f);
        if (rc != 0) {
            if (c.pos != start)
                abort();
            if (rc != -IR_QERR_FRAME_ENCODING_ERROR && rc != -IR_QERR_PROTOCOL_VIOLATION)
                abort();
            break;
        }
        size_t used = c.pos - start;
        if (used == 0 || ir_frame_info(f.type) == 0)
            abort();
        if (f.type == IR_FT_ACK || f.type == IR_FT_ACK_ECN || f.type == IR_FT_PATH_ACK ||
            f.type == IR_FT_PATH_ACK_ECN) {
            check_ack(&f.u.ack);
            check_ack_encode(&f, size);
        }
        check_fit(&f, size > 0 ? data[size - 1] * 7u + size : 0);

        /* re-encode: never longer than the input (minimal varints) */
        size_t n = ir_frame_encode(enc, sizeof enc, &f);
        if (n == 0 || n > used)
            abort();
        /* and not into less room */
        if (ir_frame_encode(enc, n - 1, &f) != 0)
            abort();
        /* decode again from an exactly sized copy */
        uint8_t *copy = malloc(n);
        if (!copy)
            abort();
        memcpy(copy, enc, n);
        ir_cursor c2;
        ir_frame g;
        ir_cursor_init(&c2, copy, n);
        if (ir_frame_decode(&c2, &g) != 0 || c2.pos != n || !frame_eq(&f, &g, 1))
            abort();
        free(copy);
    }
    return 0;
}
