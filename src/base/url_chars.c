/* The URL parser's text primitives: code point vectors, strict UTF-8, the percent-encode
 * sets (those of the `url` crate, see url.c) and the error helpers. */
#include <stdlib.h>
#include <string.h>

#include "base/url_internal.h"

int ir_url_fail(const char *msg)
{
    return ir_fail(IROH_ERR_INVALID_ADDR, "%s", msg);
}

int ir_url_no_memory(void)
{
    return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
}

void ir_url_cp_push(cpvec *c, uint32_t x)
{
    if (c->oom)
        return;
    if (c->len == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 32;
        uint32_t *p = cap > SIZE_MAX / sizeof *p ? NULL : realloc(c->v, cap * sizeof *p);
        if (!p) {
            c->oom = 1;
            return;
        }
        c->v = p;
        c->cap = cap;
    }
    c->v[c->len++] = x;
}

void ir_url_cp_append(cpvec *c, const uint32_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ir_url_cp_push(c, x[i]);
}

void ir_url_cp_free(cpvec *c)
{
    free(c->v);
    memset(c, 0, sizeof *c);
}

/* Strict UTF-8 (no overlong forms, surrogates or values above U+10FFFF).
 * Returns 0, or -1 for ill-formed input. */
int ir_url_utf8_decode(const uint8_t *s, size_t n, cpvec *out)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i], min;
        size_t k;
        if (c < 0x80) {
            ir_url_cp_push(out, c);
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1, c &= 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2, c &= 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3, c &= 0x07, min = 0x10000;
        } else {
            return -1;
        }
        if (n - i <= k)
            return -1;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return -1;
            c = c << 6 | (s[i + j] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return -1;
        ir_url_cp_push(out, c);
        i += k + 1;
    }
    return 0;
}

/* Writes the UTF-8 form of c to t; returns its length. */
static size_t utf8_encode(uint32_t c, uint8_t t[4])
{
    if (c < 0x80) {
        t[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        t[0] = (uint8_t)(0xC0 | c >> 6), t[1] = (uint8_t)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        t[0] = (uint8_t)(0xE0 | c >> 12), t[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
        t[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    t[0] = (uint8_t)(0xF0 | c >> 18), t[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
    t[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F)), t[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

void ir_url_utf8_put(ir_buf *b, uint32_t c)
{
    uint8_t t[4];
    ir_buf_append(b, t, utf8_encode(c, t));
}

/* Whether the ASCII code point c is in the set (every set holds C0 controls and all code
 * points above '~'). The sets are those of the `url` crate, see the top of url.c. */
static int in_set(enum pct_set s, uint32_t c)
{
    if (c < 0x20 || c > 0x7E)
        return 1;
    switch (s) {
    case SET_C0:
        return 0;
    case SET_FRAGMENT:
        return c == ' ' || c == '"' || c == '<' || c == '>' || c == '`';
    case SET_QUERY:
    case SET_SPECIAL_QUERY:
        return c == ' ' || c == '"' || c == '#' || c == '<' || c == '>' ||
               (s == SET_SPECIAL_QUERY && c == '\'');
    case SET_PATH:
    case SET_USERINFO:
        if (c == ' ' || c == '"' || c == '#' || c == '<' || c == '>' || c == '?' ||
            c == '`' || c == '{' || c == '}')
            return 1;
        return s == SET_USERINFO && (c == '/' || c == ':' || c == ';' || c == '=' ||
                                     c == '@' || c == '[' || c == '\\' || c == ']' ||
                                     c == '^' || c == '|');
    }
    return 1;
}

/* UTF-8 percent-encodes one code point into b. */
void ir_url_pct_put(ir_buf *b, uint32_t c, enum pct_set s)
{
    static const char hex[] = "0123456789ABCDEF";
    if (c < 0x80 && !in_set(s, c)) {
        ir_buf_byte(b, (uint8_t)c);
        return;
    }
    uint8_t tmp[4];
    size_t len = utf8_encode(c, tmp);
    for (size_t i = 0; i < len; i++) {
        char e[3] = {'%', hex[tmp[i] >> 4], hex[tmp[i] & 15]};
        ir_buf_append(b, e, 3);
    }
}
