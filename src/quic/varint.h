/* QUIC variable-length integers (RFC 9000 section 16) over a bounded cursor. */
#ifndef IR_QUIC_VARINT_H
#define IR_QUIC_VARINT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define IR_VARINT_MAX ((uint64_t)0x3fffffffffffffff)

/* Bytes the minimal encoding of v takes (1, 2, 4 or 8); v must be <= IR_VARINT_MAX. */
static inline size_t ir_varint_len(uint64_t v)
{
    return v < 64 ? 1 : v < 16384 ? 2 : v < 1073741824 ? 4 : 8;
}

/* Writes v minimally at p (which has room for ir_varint_len(v)); returns the bytes used. */
static inline size_t ir_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = ir_varint_len(v);
    static const uint8_t prefix[9] = {0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xc0};
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    p[0] |= prefix[n];
    return n;
}

/* Writes v in exactly n bytes (n in 1, 2, 4, 8 and large enough); for length fields
 * reserved before their value is known. */
static inline void ir_varint_put_n(uint8_t *p, uint64_t v, size_t n)
{
    static const uint8_t prefix[9] = {0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xc0};
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    p[0] |= prefix[n];
}

/* A read cursor over untrusted bytes. Getters return 0, or -1 if the input is short;
 * a failed getter leaves the cursor where it was. */
typedef struct ir_cursor {
    const uint8_t *p;
    size_t len, pos;
} ir_cursor;

static inline void ir_cursor_init(ir_cursor *c, const uint8_t *p, size_t len)
{
    c->p = p;
    c->len = len;
    c->pos = 0;
}

static inline size_t ir_cursor_left(const ir_cursor *c)
{
    return c->len - c->pos;
}

static inline int ir_get_varint(ir_cursor *c, uint64_t *out)
{
    if (c->pos >= c->len)
        return -1;
    size_t n = (size_t)1 << (c->p[c->pos] >> 6);
    if (n > c->len - c->pos)
        return -1;
    uint64_t v = c->p[c->pos] & 0x3f;
    for (size_t i = 1; i < n; i++)
        v = v << 8 | c->p[c->pos + i];
    c->pos += n;
    *out = v;
    return 0;
}

static inline int ir_get_u8(ir_cursor *c, uint8_t *out)
{
    if (c->pos >= c->len)
        return -1;
    *out = c->p[c->pos++];
    return 0;
}

/* big-endian fixed-width integers of n bytes (n <= 8) */
static inline int ir_get_uint(ir_cursor *c, size_t n, uint64_t *out)
{
    if (n > c->len - c->pos)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | c->p[c->pos + i];
    c->pos += n;
    *out = v;
    return 0;
}

/* Points *out at the next n bytes. */
static inline int ir_get_bytes(ir_cursor *c, size_t n, const uint8_t **out)
{
    if (n > c->len - c->pos)
        return -1;
    *out = c->p + c->pos;
    c->pos += n;
    return 0;
}

/* A bounded writer: the first write that does not fit (or a value out of range) sets err
 * and every later write does nothing, so an encoder writes freely and checks once. */
typedef struct ir_writer {
    uint8_t *p;
    size_t cap, pos;
    int err;
} ir_writer;

static inline void ir_put_varint(ir_writer *w, uint64_t v)
{
    if (w->err || v > IR_VARINT_MAX || ir_varint_len(v) > w->cap - w->pos) {
        w->err = 1;
        return;
    }
    w->pos += ir_varint_put(w->p + w->pos, v);
}

static inline void ir_put_bytes(ir_writer *w, const uint8_t *b, size_t n)
{
    if (w->err || n > w->cap - w->pos || (n > 0 && !b)) {
        w->err = 1;
        return;
    }
    if (n > 0) {
        memcpy(w->p + w->pos, b, n);
        w->pos += n;
    }
}

#endif
