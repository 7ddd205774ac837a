/* Punycode (RFC 3492) for IDNA A-labels. */
#include <string.h>

#include "base/url_internal.h"

enum { PC_BASE = 36, PC_TMIN = 1, PC_TMAX = 26, PC_SKEW = 38, PC_DAMP = 700 };

static uint32_t pc_adapt(uint32_t delta, uint32_t points, int first)
{
    uint32_t k = 0;
    delta = first ? delta / PC_DAMP : delta / 2;
    delta += delta / points;
    while (delta > ((PC_BASE - PC_TMIN) * PC_TMAX) / 2) {
        delta /= PC_BASE - PC_TMIN;
        k += PC_BASE;
    }
    return k + (PC_BASE - PC_TMIN + 1) * delta / (delta + PC_SKEW);
}

static uint32_t pc_threshold(uint32_t k, uint32_t bias)
{
    if (k <= bias)
        return PC_TMIN;
    if (k >= bias + PC_TMAX)
        return PC_TMAX;
    return k - bias;
}

static char pc_digit(uint32_t d)
{
    return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

/* Appends the punycode form of cp (without "xn--") to out. Returns 0 or -1 on overflow. */
int ir_url_puny_encode(const uint32_t *cp, size_t n, ir_buf *out)
{
    uint64_t delta = 0;
    uint32_t next = 0x80, bias = 72;
    size_t h = 0, b;
    for (size_t i = 0; i < n; i++) {
        if (cp[i] < 0x80) {
            ir_buf_byte(out, (uint8_t)cp[i]);
            h++;
        }
    }
    b = h;
    if (b > 0)
        ir_buf_byte(out, '-');
    while (h < n) {
        uint32_t m = UINT32_MAX;
        for (size_t i = 0; i < n; i++)
            if (cp[i] >= next && cp[i] < m)
                m = cp[i];
        delta += (uint64_t)(m - next) * (h + 1);
        if (delta > UINT32_MAX)
            return -1;
        next = m;
        for (size_t i = 0; i < n; i++) {
            if (cp[i] < next && ++delta > UINT32_MAX)
                return -1;
            if (cp[i] == next) {
                uint32_t q = (uint32_t)delta;
                for (uint32_t k = PC_BASE;; k += PC_BASE) {
                    uint32_t t = pc_threshold(k, bias);
                    if (q < t)
                        break;
                    ir_buf_byte(out, (uint8_t)pc_digit(t + (q - t) % (PC_BASE - t)));
                    q = (q - t) / (PC_BASE - t);
                }
                ir_buf_byte(out, (uint8_t)pc_digit(q));
                bias = pc_adapt((uint32_t)delta, (uint32_t)(h + 1), h == b);
                delta = 0;
                h++;
            }
        }
        delta++;
        next++;
    }
    return 0;
}

/* Decodes punycode s (without "xn--") into out, which must be empty. Returns 0, or -1 if
 * s is not valid (or memory ran out: out->oom). */
int ir_url_puny_decode(const char *s, size_t n, cpvec *out)
{
    size_t start = 0, b = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '-')
            b = i, start = i + 1;
    if (start == 1) /* a delimiter in first place: no basic code points, RFC 3492 6.2 */
        start = 0, b = 0;
    for (size_t i = 0; i < b; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return -1;
        ir_url_cp_push(out, (unsigned char)s[i]);
    }
    uint32_t next = 0x80, bias = 72;
    uint64_t i = 0;
    size_t in = start;
    while (in < n) {
        uint64_t oldi = i, w = 1;
        for (uint32_t k = PC_BASE;; k += PC_BASE) {
            if (in >= n)
                return -1;
            int c = (unsigned char)s[in++], d;
            if (c >= 'a' && c <= 'z')
                d = c - 'a';
            else if (c >= 'A' && c <= 'Z')
                d = c - 'A';
            else if (c >= '0' && c <= '9')
                d = c - '0' + 26;
            else
                return -1;
            i += (uint64_t)d * w;
            if (i > UINT32_MAX)
                return -1;
            uint32_t t = pc_threshold(k, bias);
            if ((uint32_t)d < t)
                break;
            w *= PC_BASE - t;
            if (w > UINT32_MAX)
                return -1;
        }
        size_t count = out->len + 1;
        bias = pc_adapt((uint32_t)(i - oldi), (uint32_t)count, oldi == 0);
        uint64_t nn = next + i / count;
        if (nn > 0x10FFFF || (nn >= 0xD800 && nn <= 0xDFFF))
            return -1;
        next = (uint32_t)nn;
        i %= count;
        ir_url_cp_push(out, 0);
        if (out->oom)
            return -1;
        memmove(out->v + i + 1, out->v + i, (out->len - 1 - (size_t)i) * sizeof *out->v);
        out->v[i] = next;
        i++;
    }
    return 0;
}
