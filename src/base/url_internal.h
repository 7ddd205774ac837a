/* The URL parser's parts (base/url.h offers ir_url_normalize): what url.c (the URL record,
 * the parser's states, the serializer) and the files it uses share. For src/base/url*.c
 * only. The files:
 *
 *   url.c            the WHATWG basic URL parser's states, the URL record, the serializer
 *                    and ir_url_normalize (parse twice, as iroh does)
 *   url_host.c       the host parser: IPv6, IPv4 (WHATWG number forms), opaque hosts,
 *                    domains (percent-decoded, then IDNA)
 *   url_idna.c       UTS #46 ToASCII of a domain through libidn2, with the corrections that
 *                    make it agree with Rust's idna crate
 *   url_idna_data.c  the UTS #46 17.0 data libidn2 lacks or maps differently
 *   url_bidi.c       the RFC 5893 bidi rule (approximate tables)
 *   url_punycode.c   RFC 3492
 *   url_chars.c      code point vectors, strict UTF-8, the percent-encode sets, errors
 *
 * Functions one file offers the others are prefixed ir_url_; the rest are static. */
#ifndef IR_BASE_URL_INTERNAL_H
#define IR_BASE_URL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Whether c lies in one of the n sorted, disjoint ranges {first, last} of r. */
static inline int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < r[mid][0])
            hi = mid;
        else if (c > r[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

/* ASCII classes, on code points. */
static inline int is_alpha(uint32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline int is_digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}

static inline int is_alnum(uint32_t c)
{
    return is_alpha(c) || is_digit(c);
}

static inline int hex_value(uint32_t c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (int)(c - 'A' + 10);
    return -1;
}

static inline uint32_t ascii_lower(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* A growable vector of code points; oom is set once an allocation failed. */
typedef struct cpvec {
    uint32_t *v;
    size_t len, cap;
    int oom;
} cpvec;

/* The percent-encode sets (url_chars.c). */
enum pct_set { SET_C0, SET_FRAGMENT, SET_QUERY, SET_SPECIAL_QUERY, SET_PATH, SET_USERINFO };

/* ---- url_chars.c ------------------------------------------------------------------------- */

/* IROH_ERR_INVALID_ADDR / IROH_ERR_NO_MEMORY with the error detail set. */
int ir_url_fail(const char *msg);
int ir_url_no_memory(void);
/* Appends to a code point vector; out of memory sets c->oom (later pushes do nothing). */
void ir_url_cp_push(cpvec *c, uint32_t x);
void ir_url_cp_append(cpvec *c, const uint32_t *x, size_t n);
void ir_url_cp_free(cpvec *c);
/* Strict UTF-8 to code points: 0, or -1 for ill-formed input. */
int ir_url_utf8_decode(const uint8_t *s, size_t n, cpvec *out);
void ir_url_utf8_put(ir_buf *b, uint32_t c);
/* Appends c to b, UTF-8 percent-encoded when it is in the set s. */
void ir_url_pct_put(ir_buf *b, uint32_t c, enum pct_set s);

/* ---- url_punycode.c ---------------------------------------------------------------------- */

/* Appends the punycode of cp (without "xn--"); -1 on overflow. */
int ir_url_puny_encode(const uint32_t *cp, size_t n, ir_buf *out);
/* Decodes s (without "xn--") into the empty out; -1 when invalid (or out->oom). */
int ir_url_puny_decode(const char *s, size_t n, cpvec *out);

/* ---- url_idna_data.c, url_bidi.c ---------------------------------------------------------- */

/* Appends the part of the UTS #46 mapping of c done before libidn2 (see url_idna.c). */
void ir_url_premap(cpvec *pre, uint32_t c);
/* ASCII symbols and the code points libidn2 does not take but UTS #46 keeps. */
int ir_url_piece_separator(uint32_t c);
int ir_url_is_pass_mark(uint32_t c);
int ir_url_is_rtl(uint32_t c);
int ir_url_is_arabic_number(uint32_t c);
int ir_url_bidi_ltr_label_ok(const uint32_t *cp, size_t n);
int ir_url_bidi_rtl_label_ok(const uint32_t *cp, size_t n);

/* ---- url_idna.c, url_host.c ---------------------------------------------------------------- */

int ir_url_forbidden_domain(uint32_t c);
/* UTS #46 ToASCII of a domain, appended to out; IROH_OK or an error (detail set). */
int ir_url_domain_to_ascii(const uint32_t *cp, size_t n, ir_buf *out);
/* The WHATWG host parser; appends the serialized host to out. */
int ir_url_host_parse(const uint32_t *s, size_t n, int opaque, ir_buf *out);

#endif
