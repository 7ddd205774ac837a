/* UTS #46 ToASCII of a domain (the WHATWG "domain to ASCII", beStrict false) as Rust's idna
 * crate does it, through libidn2.
 *
 * libidn2 implements IDNA2008 plus the UTS #46 mapping of an older Unicode version,
 * so it is used per label and corrected where it differs from UTS #46 as the idna crate
 * applies it (Unicode 17):
 *  - pure ASCII labels never reach libidn2: they are lowercased (libidn2 would apply
 *    CheckHyphens and reject "-a-" or "ab--cd"); "xn--" labels are punycode-decoded here
 *    and accepted when the decoded label is not all ASCII, does not itself start with
 *    "xn--" and converts back to exactly the same A-label;
 *  - labels are split at '.', U+3002, U+FF0E and U+FF61 (the only code points UTS #46
 *    maps to a full stop); code points UTS #46 ignores are removed and fullwidth ASCII is
 *    mapped to ASCII first (a label that becomes ASCII, e.g. "xn--" in fullwidth letters,
 *    then takes the ASCII path); so are the code points that UTS #46 17.0 maps differently
 *    from libidn2 or to code points libidn2 rejects (url_idna_data.c: idna_map1[],
 *    idna_mapn[]: U+1E9E ẞ to U+00DF where libidn2 gives "ss", U+00BC '¼' to "1⁄4",
 *    Hangul compatibility jamo, Georgian capitals, ...);
 *  - libidn2 runs with IDN2_NONTRANSITIONAL | IDN2_NO_ALABEL_ROUNDTRIP (the round trip
 *    rejects labels with ASCII symbols such as "é*x" that UTS #46 accepts); when it
 *    rejects a label only for IDNA2008 reasons (a code point disallowed or unassigned
 *    there, hyphen placement, a label longer than 63 bytes), the label is converted in
 *    pieces: ASCII symbols and the code points of idna_pass[] (valid and unmapped in UTS
 *    #46 17.0 but not accepted by libidn2: emoji and other symbols, scripts newer than
 *    libidn2's tables) are kept as they are, the runs between them go through libidn2
 *    (a run too long for it in chunks, cut where the code points on both sides map alone
 *    and together the same way), Hangul jamo are composed (the one NFC composition that
 *    can happen across pieces) and the result is punycode-encoded here;
 *  - bidi: libidn2 checks the RFC 5893 rules inside a label that has right-to-left
 *    characters; the rules between labels (in a domain with a right-to-left label, every
 *    other label must start with a letter and end with a letter or digit: "1.אב" fails,
 *    as in Rust) and across pieces are checked here with approximate tables (url_bidi.c:
 *    bidi_rtl[] from Unicode 14, is_ltr_letter(), is_nsm()).
 * Remaining differences, all on unusual names: in the piecewise path the contextual rules
 * (bidi, joiners) are checked per piece, and where the approximate bidi tables are unsure
 * a label is rejected, so a few names that mix right-to-left text with symbols, long runs
 * of digits or rare scripts, and labels with combining marks newer than libidn2's tables,
 * fail here and parse in Rust. Every A-label written is checked to read back to
 * itself, so the result is always stable. */
#include <idn2.h>
#include <stdlib.h>
#include <string.h>

#include "base/url_internal.h"

enum { IDNA_OK = 0, IDNA_BAD = 1 };

/* The idna crate's limits against quadratic punycode work (ICU's too): a mapped label that
 * is not ASCII may have 1000 code points, the punycode of an A-label 2000 characters. */
enum { IDNA_MAX_ULABEL = 1000, IDNA_MAX_PUNYCODE = 2000 };

static int all_ascii(const uint32_t *cp, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cp[i] >= 0x80)
            return 0;
    return 1;
}

static int starts_xn(const uint32_t *cp, size_t n)
{
    return n >= 4 && ascii_lower(cp[0]) == 'x' && ascii_lower(cp[1]) == 'n' && cp[2] == '-' &&
           cp[3] == '-';
}

/* Runs libidn2 on one label and appends the mapped label (Unicode) to `mapped`. Returns
 * IDNA_OK, IDNA_BAD with *idn2_rc set, or IROH_ERR_NO_MEMORY. */
static int idn2_map(const uint32_t *cp, size_t n, cpvec *mapped, int *idn2_rc)
{
    ir_buf s;
    char *o = NULL;
    int r = IDNA_OK;
    ir_buf_init(&s);
    for (size_t i = 0; i < n; i++)
        ir_url_utf8_put(&s, cp[i]);
    ir_buf_byte(&s, 0);
    if (s.oom) {
        ir_buf_free(&s);
        return IROH_ERR_NO_MEMORY;
    }
    *idn2_rc = idn2_to_ascii_8z((const char *)s.data, &o,
                                IDN2_NONTRANSITIONAL | IDN2_NO_ALABEL_ROUNDTRIP);
    ir_buf_free(&s);
    if (*idn2_rc == IDN2_MALLOC)
        return IROH_ERR_NO_MEMORY;
    if (*idn2_rc != IDN2_OK || !o) {
        idn2_free(o);
        return IDNA_BAD;
    }
    size_t len = strlen(o);
    if (len >= 4 && memcmp(o, "xn--", 4) == 0) {
        cpvec d = {0};
        if (ir_url_puny_decode(o + 4, len - 4, &d) != 0)
            r = d.oom ? IROH_ERR_NO_MEMORY : IDNA_BAD;
        else
            ir_url_cp_append(mapped, d.v, d.len);
        ir_url_cp_free(&d);
    } else {
        for (size_t i = 0; i < len; i++)
            ir_url_cp_push(mapped, ascii_lower((unsigned char)o[i]));
    }
    idn2_free(o);
    if (mapped->oom)
        return IROH_ERR_NO_MEMORY;
    return r;
}

/* libidn2 errors for which the label is converted in pieces (see the top of the file). */
static int idn2_rc_is_idna2008_only(int rc)
{
    return rc == IDN2_DISALLOWED || rc == IDN2_UNASSIGNED || rc == IDN2_HYPHEN_STARTEND ||
           rc == IDN2_2HYPHEN || rc == IDN2_PUNYCODE_BIG_OUTPUT || rc == IDN2_TOO_BIG_LABEL ||
           rc == IDN2_TOO_BIG_DOMAIN || rc == IDN2_INVALID_NONTRANSITIONAL;
}

/* Canonical composition of Hangul jamo (the part of NFC that the pieces need: the other
 * code points kept by map_pieces() compose with nothing). */
static void hangul_compose(cpvec *m)
{
    size_t w = 0;
    for (size_t i = 0; i < m->len; i++) {
        uint32_t c = m->v[i], last = w ? m->v[w - 1] : 0;
        if (last >= 0x1100 && last <= 0x1112 && c >= 0x1161 && c <= 0x1175) {
            m->v[w - 1] = 0xAC00 + ((last - 0x1100) * 21 + (c - 0x1161)) * 28;
            continue;
        }
        if (last >= 0xAC00 && last <= 0xD7A3 && (last - 0xAC00) % 28 == 0 && c >= 0x11A8 &&
            c <= 0x11C2) {
            m->v[w - 1] = last + (c - 0x11A7);
            continue;
        }
        m->v[w++] = c;
    }
    m->len = w;
}

/* Whether a long run may be cut before cp[k] without changing its mapping: both code
 * points map on their own, and together to the two mappings one after the other (no
 * composition, no context rule across the cut). */
static int safe_cut(const uint32_t *cp, size_t k)
{
    cpvec a = {0}, b = {0}, ab = {0};
    int rc, ok = idn2_map(cp + k - 1, 1, &a, &rc) == IDNA_OK &&
                 idn2_map(cp + k, 1, &b, &rc) == IDNA_OK &&
                 idn2_map(cp + k - 1, 2, &ab, &rc) == IDNA_OK && ab.len == a.len + b.len;
    for (size_t i = 0; ok && i < ab.len; i++)
        ok = ab.v[i] == (i < a.len ? a.v[i] : b.v[i - a.len]);
    ir_url_cp_free(&a);
    ir_url_cp_free(&b);
    ir_url_cp_free(&ab);
    return ok;
}

static int is_big(int rc)
{
    return rc == IDN2_PUNYCODE_BIG_OUTPUT || rc == IDN2_TOO_BIG_LABEL;
}

/* Maps one run of a label with libidn2. A run that starts with a combining mark (it
 * follows a kept symbol) is mapped behind a base letter that composes with nothing
 * ('q', or alef for right-to-left text), which is then taken off again. */
static int map_short(const uint32_t *cp, size_t n, uint32_t prev, int at_label_start,
                     cpvec *m, int *rc)
{
    int r = idn2_map(cp, n, m, rc);
    if (r != IDNA_BAD || *rc != IDN2_LEADING_COMBINING || at_label_start)
        return r;
    /* A mark after one of these could compose with it (e.g. '=' U+0338 is U+2260). */
    if (prev == '<' || prev == '=' || prev == '>' || (prev >= 0x2190 && prev <= 0x22FF))
        return IDNA_BAD;
    static const uint32_t bases[2] = {'q', 0x5D0};
    for (size_t b = 0; b < 2; b++) {
        cpvec with = {0}, out = {0};
        ir_url_cp_push(&with, bases[b]);
        ir_url_cp_append(&with, cp, n);
        r = with.oom ? IROH_ERR_NO_MEMORY : idn2_map(with.v, with.len, &out, rc);
        if (r == IDNA_OK && (out.len == 0 || out.v[0] != bases[b]))
            r = IDNA_BAD;
        if (r == IDNA_OK)
            ir_url_cp_append(m, out.v + 1, out.len - 1);
        ir_url_cp_free(&with);
        ir_url_cp_free(&out);
        if (r != IDNA_BAD || is_big(*rc))
            return r;
    }
    return IDNA_BAD;
}

/* Maps a run, one too long for libidn2 (more than 63 bytes once encoded) in chunks of
 * about a dozen code points, cut where safe_cut() allows (and, in right-to-left text,
 * before a right-to-left letter, as each chunk must pass the bidi rules alone). */
static int map_run(const uint32_t *cp, size_t n, uint32_t prev, int at_label_start, cpvec *m)
{
    enum { CHUNK = 12 };
    int rc = 0, r = map_short(cp, n, prev, at_label_start, m, &rc), rtl = 0;
    if (r != IDNA_BAD || !is_big(rc))
        return r;
    for (size_t i = 0; i < n; i++)
        rtl |= ir_url_is_rtl(cp[i]);
    for (size_t start = 0; start < n;) {
        size_t k = start + CHUNK;
        if (k >= n) {
            k = n;
        } else {
            while (k < n && k < start + 3 * CHUNK &&
                   !((!rtl || (ir_url_is_rtl(cp[k]) && !ir_url_is_arabic_number(cp[k]))) && safe_cut(cp, k)))
                k++;
            if (k == start + 3 * CHUNK)
                return IDNA_BAD;
        }
        r = map_short(cp + start, k - start, start ? cp[start - 1] : prev,
                      start ? 0 : at_label_start, m, &rc);
        if (r != IDNA_OK)
            return r;
        start = k;
    }
    return IDNA_OK;
}

/* Maps a label in pieces: ASCII symbols and idna_pass[] code points are kept, the runs
 * between them go through libidn2 one by one. In a right-to-left label, a run without
 * right-to-left characters may only hold ASCII digits (see also ir_url_bidi_rtl_label_ok()). */
static int map_pieces(const uint32_t *cp, size_t n, cpvec *m)
{
    int r = IDNA_OK, rtl = 0;
    for (size_t i = 0; i < n; i++)
        rtl |= ir_url_is_rtl(cp[i]);
    if (n > 0 && ir_url_is_pass_mark(cp[0]))
        return IDNA_BAD;
    if (rtl && !ir_url_bidi_rtl_label_ok(cp, n))
        return IDNA_BAD;
    for (size_t i = 0; i < n && r == IDNA_OK;) {
        if (ir_url_piece_separator(cp[i])) {
            ir_url_cp_push(m, cp[i++]);
            continue;
        }
        size_t j = i;
        int run_rtl = 0, run_other = 0;
        for (; j < n && !ir_url_piece_separator(cp[j]); j++) {
            run_rtl |= ir_url_is_rtl(cp[j]);
            run_other |= !is_digit(cp[j]);
        }
        if (rtl && !run_rtl && run_other)
            return IDNA_BAD;
        if (all_ascii(cp + i, j - i))
            ir_url_cp_append(m, cp + i, j - i);
        else
            r = map_run(cp + i, j - i, i ? cp[i - 1] : 0, i == 0, m);
        i = j;
    }
    hangul_compose(m);
    return r;
}

static int label_from_alabel(const uint8_t *l, size_t n, ir_buf *out, cpvec *uni);

/* UTS #46 processing of a label that is not pure ASCII: appends its ASCII form to out and
 * its mapped Unicode form to uni. With check_alabel, an "xn--" result is verified to read
 * back to itself. Returns IDNA_OK, IDNA_BAD or IROH_ERR_NO_MEMORY. */
static int label_from_ulabel(const uint32_t *cp, size_t n, int check_alabel, ir_buf *out,
                             cpvec *uni)
{
    cpvec pre = {0}, m = {0};
    ir_buf enc;
    int r = IDNA_OK, rc = 0;
    ir_buf_init(&enc);
    for (size_t i = 0; i < n; i++)
        ir_url_premap(&pre, cp[i]);
    if (pre.oom) {
        r = IROH_ERR_NO_MEMORY;
        goto done;
    }
    if (all_ascii(pre.v, pre.len)) {
        /* Only ignored or mapped code points were not ASCII: an ASCII label after all. */
        for (size_t i = 0; i < pre.len; i++)
            ir_buf_byte(&enc, (uint8_t)pre.v[i]);
        if (enc.oom) {
            r = IROH_ERR_NO_MEMORY;
        } else if (starts_xn(pre.v, pre.len)) {
            /* "xn--" in fullwidth letters and the like. Without check_alabel, cp is a
             * decoded A-label, which must not change under the mapping: invalid. */
            r = check_alabel ? label_from_alabel(enc.data, enc.len, out, uni) : IDNA_BAD;
        } else {
            ir_buf_append(out, enc.data, enc.len);
            ir_url_cp_append(uni, pre.v, pre.len);
        }
        goto done;
    }
    /* NFC shortens a label at most fourfold: a longer one is over the limit in any case. */
    if (pre.len > 4 * IDNA_MAX_ULABEL) {
        r = IDNA_BAD;
        goto done;
    }
    r = idn2_map(pre.v, pre.len, &m, &rc);
    if (r == IDNA_BAD && idn2_rc_is_idna2008_only(rc)) {
        m.len = 0;
        r = map_pieces(pre.v, pre.len, &m);
    }
    if (r == IDNA_OK && m.oom)
        r = IROH_ERR_NO_MEMORY;
    if (r != IDNA_OK)
        goto done;
    for (size_t i = 0; i < m.len; i++) {
        if (m.v[i] == '.') { /* libidn2 mapped to several labels */
            r = IDNA_BAD;
            goto done;
        }
    }
    if (starts_xn(m.v, m.len)) {
        r = IDNA_BAD;
        goto done;
    }
    if (all_ascii(m.v, m.len)) {
        for (size_t i = 0; i < m.len; i++)
            ir_buf_byte(&enc, (uint8_t)m.v[i]);
    } else if (m.len > IDNA_MAX_ULABEL) {
        r = IDNA_BAD;
        goto done;
    } else {
        ir_buf_append(&enc, "xn--", 4);
        if (ir_url_puny_encode(m.v, m.len, &enc) != 0) {
            r = IDNA_BAD;
            goto done;
        }
    }
    if (enc.oom) {
        r = IROH_ERR_NO_MEMORY;
        goto done;
    }
    if (check_alabel && enc.len >= 4 && memcmp(enc.data, "xn--", 4) == 0) {
        ir_buf check;
        cpvec u2 = {0};
        ir_buf_init(&check);
        r = label_from_alabel(enc.data, enc.len, &check, &u2);
        ir_buf_free(&check);
        ir_url_cp_free(&u2);
        if (r != IDNA_OK)
            goto done;
    }
    ir_buf_append(out, enc.data, enc.len);
    ir_url_cp_append(uni, m.v, m.len);
done:
    ir_buf_free(&enc);
    ir_url_cp_free(&pre);
    ir_url_cp_free(&m);
    return r;
}

/* An ASCII label starting with "xn--" (lowercase): valid when its punycode decodes to a
 * label that is not all ASCII, does not start with "xn--" and converts back to l. */
static int label_from_alabel(const uint8_t *l, size_t n, ir_buf *out, cpvec *uni)
{
    cpvec u = {0}, m = {0};
    ir_buf back;
    int r;
    ir_buf_init(&back);
    if (n - 4 > IDNA_MAX_PUNYCODE || ir_url_puny_decode((const char *)l + 4, n - 4, &u) != 0 ||
        u.len == 0 || all_ascii(u.v, u.len) || starts_xn(u.v, u.len)) {
        r = u.oom ? IROH_ERR_NO_MEMORY : IDNA_BAD;
        goto done;
    }
    r = label_from_ulabel(u.v, u.len, 0, &back, &m);
    if (r == IDNA_OK && back.oom)
        r = IROH_ERR_NO_MEMORY;
    if (r == IDNA_OK && (back.len != n || memcmp(back.data, l, n) != 0))
        r = IDNA_BAD;
    if (r == IDNA_OK) {
        ir_buf_append(out, l, n);
        ir_url_cp_append(uni, u.v, u.len);
    }
done:
    ir_buf_free(&back);
    ir_url_cp_free(&u);
    ir_url_cp_free(&m);
    return r;
}

static int is_label_dot(uint32_t c)
{
    return c == '.' || c == 0x3002 || c == 0xFF0E || c == 0xFF61;
}

/* The WHATWG forbidden domain code points (ASCII part), which the idna crate denies. */
int ir_url_forbidden_domain(uint32_t c)
{
    return c <= 0x20 || c == 0x7F || c == '#' || c == '%' || c == '/' || c == ':' ||
           c == '<' || c == '>' || c == '?' || c == '@' || c == '[' || c == '\\' ||
           c == ']' || c == '^' || c == '|';
}

/* UTS #46 ToASCII of a whole domain, as the WHATWG "domain to ASCII" (beStrict false).
 * Appends the result to out. Returns IROH_OK or an error code (detail recorded). */
int ir_url_domain_to_ascii(const uint32_t *cp, size_t n, ir_buf *out)
{
    cpvec uni = {0};
    size_t *bounds = NULL; /* label i of uni is [bounds[2i], bounds[2i+1]) */
    size_t nlabels = 0, cap = 0;
    int r = IROH_OK, bidi = 0;
    for (size_t i = 0; i < n; i++)
        if (cp[i] < 0x80 && ir_url_forbidden_domain(cp[i]))
            return ir_url_fail("forbidden code point in host");
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        while (j < n && !is_label_dot(cp[j]))
            j++;
        if (nlabels == cap) {
            size_t nc = cap ? cap * 2 : 8;
            size_t *p = realloc(bounds, nc * 2 * sizeof *p);
            if (!p) {
                r = ir_url_no_memory();
                goto done;
            }
            bounds = p, cap = nc;
        }
        bounds[2 * nlabels] = uni.len;
        int lr;
        if (all_ascii(cp + i, j - i)) {
            size_t start = out->len;
            for (size_t k = i; k < j; k++)
                ir_buf_byte(out, (uint8_t)ascii_lower(cp[k]));
            if (out->oom) {
                r = ir_url_no_memory();
                goto done;
            }
            if (j - i >= 4 && starts_xn(cp + i, j - i)) {
                ir_buf lab;
                ir_buf_init(&lab);
                ir_buf_append(&lab, out->data + start, out->len - start);
                out->len = start;
                lr = lab.oom ? IROH_ERR_NO_MEMORY
                             : label_from_alabel(lab.data, lab.len, out, &uni);
                ir_buf_free(&lab);
            } else {
                for (size_t k = i; k < j; k++)
                    ir_url_cp_push(&uni, ascii_lower(cp[k]));
                lr = IDNA_OK;
            }
        } else {
            lr = label_from_ulabel(cp + i, j - i, 1, out, &uni);
        }
        if (lr == IDNA_OK && (uni.oom || out->oom))
            lr = IROH_ERR_NO_MEMORY;
        if (lr == IDNA_BAD) {
            r = ir_url_fail("invalid international domain name");
            goto done;
        }
        if (lr != IDNA_OK) {
            r = ir_url_no_memory();
            goto done;
        }
        bounds[2 * nlabels + 1] = uni.len;
        nlabels++;
        if (j == n)
            break;
        ir_buf_byte(out, '.');
        i = j + 1;
    }
    for (size_t i = 0; i < uni.len; i++)
        bidi |= ir_url_is_rtl(uni.v[i]);
    if (bidi) {
        for (size_t l = 0; l < nlabels; l++) {
            const uint32_t *lv = uni.v + bounds[2 * l];
            size_t ln = bounds[2 * l + 1] - bounds[2 * l], k;
            for (k = 0; k < ln; k++)
                if (ir_url_is_rtl(lv[k]))
                    break;
            if (k == ln ? !ir_url_bidi_ltr_label_ok(lv, ln) : !ir_url_bidi_rtl_label_ok(lv, ln)) {
                r = ir_url_fail("invalid international domain name (bidi rule)");
                goto done;
            }
        }
    }
    if (out->oom)
        r = ir_url_no_memory();
done:
    ir_url_cp_free(&uni);
    free(bounds);
    return r;
}
