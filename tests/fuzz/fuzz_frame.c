/* QUIC frames from arbitrary bytes: decode frame after frame until the end or an error;
 * every decoded frame must re-encode (no longer than it came), decode back to the same
 * frame, and its ACK ranges must walk cleanly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quic/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int bytes_eq(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

static int ack_eq(const ir_frame_ack *a, const ir_frame_ack *b)
{
    return a->path_id == b->path_id && a->largest == b->largest &&
           a->ack_delay == b->ack_delay && a->range_count == b->range_count &&
           a->first_range == b->first_range && a->smallest == b->smallest &&
           bytes_eq(a->ranges, a->ranges_len, b->ranges, b->ranges_len) &&
           a->ecn.ect0 == b->ecn.ect0 && a->ecn.ect1 == b->ecn.ect1 && a->ecn.ce == b->ecn.ce;
}

static int frame_eq(const ir_frame *a, const ir_frame *b)
{
    uint64_t t = a->type;
    if (t != b->type)
        return 0;
    if (t >= IR_FT_STREAM && t <= 0x0f)
        return a->u.stream.stream_id == b->u.stream.stream_id &&
               a->u.stream.offset == b->u.stream.offset &&
               bytes_eq(a->u.stream.data, a->u.stream.len, b->u.stream.data, b->u.stream.len);
    switch (t) {
    case IR_FT_PADDING:
        return a->u.padding_len == b->u.padding_len;
    case IR_FT_PING:
    case IR_FT_HANDSHAKE_DONE:
    case IR_FT_IMMEDIATE_ACK:
        return 1;
    case IR_FT_ACK:
    case IR_FT_ACK_ECN:
    case IR_FT_PATH_ACK:
    case IR_FT_PATH_ACK_ECN:
        return ack_eq(&a->u.ack, &b->u.ack);
    case IR_FT_RESET_STREAM:
        return memcmp(&a->u.reset_stream, &b->u.reset_stream, sizeof a->u.reset_stream) == 0;
    case IR_FT_STOP_SENDING:
        return memcmp(&a->u.stop_sending, &b->u.stop_sending, sizeof a->u.stop_sending) == 0;
    case IR_FT_CRYPTO:
        return a->u.crypto.offset == b->u.crypto.offset &&
               bytes_eq(a->u.crypto.data, a->u.crypto.len, b->u.crypto.data, b->u.crypto.len);
    case IR_FT_NEW_TOKEN:
        return bytes_eq(a->u.new_token.token, a->u.new_token.len, b->u.new_token.token,
                        b->u.new_token.len);
    case IR_FT_MAX_DATA:
    case IR_FT_DATA_BLOCKED:
    case IR_FT_MAX_STREAMS_BIDI:
    case IR_FT_MAX_STREAMS_UNI:
    case IR_FT_STREAMS_BLOCKED_BIDI:
    case IR_FT_STREAMS_BLOCKED_UNI:
    case IR_FT_MAX_PATH_ID:
    case IR_FT_PATHS_BLOCKED:
        return a->u.limit == b->u.limit;
    case IR_FT_MAX_STREAM_DATA:
    case IR_FT_STREAM_DATA_BLOCKED:
        return memcmp(&a->u.stream_limit, &b->u.stream_limit, sizeof a->u.stream_limit) == 0;
    case IR_FT_NEW_CONNECTION_ID:
    case IR_FT_PATH_NEW_CONNECTION_ID:
        return a->u.new_cid.path_id == b->u.new_cid.path_id &&
               a->u.new_cid.seq == b->u.new_cid.seq &&
               a->u.new_cid.retire_prior_to == b->u.new_cid.retire_prior_to &&
               bytes_eq(a->u.new_cid.cid, a->u.new_cid.cid_len, b->u.new_cid.cid,
                        b->u.new_cid.cid_len) &&
               memcmp(a->u.new_cid.reset_token, b->u.new_cid.reset_token,
                      IR_RESET_TOKEN_LEN) == 0;
    case IR_FT_RETIRE_CONNECTION_ID:
    case IR_FT_PATH_RETIRE_CONNECTION_ID:
        return memcmp(&a->u.retire_cid, &b->u.retire_cid, sizeof a->u.retire_cid) == 0;
    case IR_FT_PATH_CHALLENGE:
    case IR_FT_PATH_RESPONSE:
        return memcmp(a->u.path_data, b->u.path_data, 8) == 0;
    case IR_FT_CONNECTION_CLOSE:
    case IR_FT_APPLICATION_CLOSE:
        return a->u.close.error_code == b->u.close.error_code &&
               a->u.close.frame_type == b->u.close.frame_type &&
               bytes_eq(a->u.close.reason, a->u.close.reason_len, b->u.close.reason,
                        b->u.close.reason_len);
    case IR_FT_DATAGRAM:
    case IR_FT_DATAGRAM_LEN:
        return bytes_eq(a->u.datagram.data, a->u.datagram.len, b->u.datagram.data,
                        b->u.datagram.len);
    case IR_FT_ACK_FREQUENCY:
        return memcmp(&a->u.ack_frequency, &b->u.ack_frequency, sizeof a->u.ack_frequency) == 0;
    case IR_FT_PATH_ABANDON:
        return memcmp(&a->u.path_abandon, &b->u.path_abandon, sizeof a->u.path_abandon) == 0;
    case IR_FT_PATH_STATUS_BACKUP:
    case IR_FT_PATH_STATUS_AVAILABLE:
        return memcmp(&a->u.path_status, &b->u.path_status, sizeof a->u.path_status) == 0;
    case IR_FT_PATH_CIDS_BLOCKED:
        return memcmp(&a->u.path_cids_blocked, &b->u.path_cids_blocked,
                      sizeof a->u.path_cids_blocked) == 0;
    case IR_FT_ADD_ADDRESS_V4:
    case IR_FT_REACH_OUT_V4:
    case IR_FT_OBSERVED_ADDRESS_V4:
        return a->u.addr.seq == b->u.addr.seq && a->u.addr.port == b->u.addr.port &&
               memcmp(a->u.addr.ip, b->u.addr.ip, 4) == 0;
    case IR_FT_ADD_ADDRESS_V6:
    case IR_FT_REACH_OUT_V6:
    case IR_FT_OBSERVED_ADDRESS_V6:
        return a->u.addr.seq == b->u.addr.seq && a->u.addr.port == b->u.addr.port &&
               memcmp(a->u.addr.ip, b->u.addr.ip, 16) == 0;
    case IR_FT_REMOVE_ADDRESS:
        return a->u.remove_seq == b->u.remove_seq;
    default:
        return 0;
    }
}

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
        if (ir_frame_decode(&c2, &g) != 0 || c2.pos != n || !frame_eq(&f, &g))
            abort();
        free(copy);
    }
    return 0;
}
