#include "postcard.h"

void ir_pc_put_varint(ir_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        tmp[n++] = byte | (v ? 0x80 : 0);
    } while (v);
    ir_buf_append(b, tmp, n);
}

void ir_pc_put_bytes(ir_buf *b, const void *data, size_t len)
{
    ir_pc_put_varint(b, len);
    ir_buf_append(b, data, len);
}

void ir_pc_reader_init(ir_pc_reader *r, const uint8_t *data, size_t len)
{
    r->p = data;
    r->len = len;
    r->pos = 0;
    r->err = 0;
    r->why = NULL;
}

static int fail(ir_pc_reader *r, const char *why)
{
    if (!r->err) {
        r->err = 1;
        r->why = why;
    }
    return -1;
}

int ir_pc_get_varint(ir_pc_reader *r, uint64_t max, uint64_t *out)
{
    if (r->err)
        return -1;
    /* postcard reads at most ceil(bits/7) bytes for the target type */
    int max_bytes = max <= UINT8_MAX ? 2 : max <= UINT16_MAX ? 3 : max <= UINT32_MAX ? 5 : 10;
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        if (r->pos >= r->len)
            return fail(r, "unexpected end of input");
        uint8_t byte = r->p[r->pos++];
        uint64_t part = byte & 0x7f;
        int shift = 7 * i;
        if (shift == 63 && part > 1)
            return fail(r, "varint overflows its type");
        v |= part << shift;
        if (!(byte & 0x80)) {
            if (v > max)
                return fail(r, "varint overflows its type");
            *out = v;
            return 0;
        }
    }
    return fail(r, "varint too long for its type");
}

int ir_pc_get_u8(ir_pc_reader *r, uint8_t *out)
{
    if (r->err)
        return -1;
    if (r->pos >= r->len)
        return fail(r, "unexpected end of input");
    *out = r->p[r->pos++];
    return 0;
}

int ir_pc_get_raw(ir_pc_reader *r, size_t n, const uint8_t **out)
{
    if (r->err)
        return -1;
    if (n > r->len - r->pos)
        return fail(r, "unexpected end of input");
    *out = r->p + r->pos;
    r->pos += n;
    return 0;
}

int ir_pc_get_bytes(ir_pc_reader *r, const uint8_t **out, size_t *len)
{
    uint64_t n;
    if (ir_pc_get_varint(r, UINT64_MAX, &n) != 0)
        return -1;
    if (n > r->len - r->pos)
        return fail(r, "unexpected end of input");
    *len = (size_t)n;
    return ir_pc_get_raw(r, (size_t)n, out);
}
