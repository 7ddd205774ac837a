/* The WHATWG host parser (RFC 3986 brackets for IPv6, the WHATWG IPv4 number forms,
 * opaque hosts of non-special URLs, domains percent-decoded and through IDNA). */
#include <stdint.h>

#include "base/url_internal.h"

/* The WHATWG IPv4 number parser on s[0..n). Returns 0 with *v set (*overflow when the
 * value does not fit 32 bits), or -1 when s is not a number. */
static int ipv4_number(const uint8_t *s, size_t n, uint32_t *v, int *overflow)
{
    unsigned radix = 10;
    *v = 0, *overflow = 0;
    if (n == 0)
        return -1;
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2, n -= 2, radix = 16;
    else if (n >= 2 && s[0] == '0')
        s += 1, n -= 1, radix = 8;
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        int d = hex_value(s[i]);
        if (d < 0 || (unsigned)d >= radix)
            return -1;
        if (!*overflow) {
            acc = acc * radix + (unsigned)d;
            if (acc > UINT32_MAX)
                *overflow = 1;
        }
    }
    *v = (uint32_t)acc;
    return 0;
}

static int ends_in_number(const uint8_t *s, size_t n)
{
    if (n > 0 && s[n - 1] == '.')
        n--;
    size_t start = n;
    while (start > 0 && s[start - 1] != '.')
        start--;
    if (start == n)
        return 0;
    size_t k;
    for (k = start; k < n && is_digit(s[k]); k++)
        ;
    if (k == n)
        return 1;
    uint32_t v;
    int of;
    return ipv4_number(s + start, n - start, &v, &of) == 0;
}

/* The WHATWG IPv4 parser; on success writes the dotted form to out. */
static int ipv4_parse(const uint8_t *s, size_t n, ir_buf *out)
{
    uint32_t nums[4];
    size_t count = 0;
    if (n > 0 && s[n - 1] == '.')
        n--;
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        int of;
        while (j < n && s[j] != '.')
            j++;
        if (count == 4 || ipv4_number(s + i, j - i, &nums[count], &of) != 0 || of)
            return ir_url_fail("invalid IPv4 address");
        count++;
        i = j + 1;
    }
    uint32_t addr = nums[count - 1];
    if (count > 1 && addr >> (8 * (5 - count)) != 0)
        return ir_url_fail("invalid IPv4 address");
    for (size_t i = 0; i + 1 < count; i++) {
        if (nums[i] > 255)
            return ir_url_fail("invalid IPv4 address");
        addr += nums[i] << (8 * (3 - i));
    }
    char t[16];
    size_t len = 0;
    for (int i = 3; i >= 0; i--) {
        unsigned b = addr >> (8 * i) & 0xFF;
        if (b >= 100)
            t[len++] = (char)('0' + b / 100);
        if (b >= 10)
            t[len++] = (char)('0' + b / 10 % 10);
        t[len++] = (char)('0' + b % 10);
        if (i)
            t[len++] = '.';
    }
    ir_buf_append(out, t, len);
    return IROH_OK;
}

/* The WHATWG IPv6 parser on the text between the brackets; writes "[...]" to out. */
static int ipv6_parse(const uint32_t *s, size_t n, ir_buf *out)
{
    uint16_t a[8] = {0};
    size_t piece = 0, i = 0;
    long compress = -1;
    if (n > 0 && s[0] == ':') {
        if (n < 2 || s[1] != ':')
            return ir_url_fail("invalid IPv6 address");
        i = 2;
        piece = 1;
        compress = 1;
    }
    while (i < n) {
        if (piece == 8)
            return ir_url_fail("invalid IPv6 address");
        if (s[i] == ':') {
            if (compress >= 0)
                return ir_url_fail("invalid IPv6 address");
            i++;
            piece++;
            compress = (long)piece;
            continue;
        }
        uint32_t value = 0;
        size_t len = 0;
        while (len < 4 && i < n && hex_value(s[i]) >= 0) {
            value = value * 16 + (uint32_t)hex_value(s[i]);
            i++, len++;
        }
        if (i < n && s[i] == '.') {
            if (len == 0)
                return ir_url_fail("invalid IPv6 address");
            i -= len;
            if (piece > 6)
                return ir_url_fail("invalid IPv6 address");
            int seen = 0;
            while (i < n) {
                long v4 = -1;
                if (seen > 0) {
                    if (s[i] == '.' && seen < 4)
                        i++;
                    else
                        return ir_url_fail("invalid IPv6 address");
                }
                if (i >= n || !is_digit(s[i]))
                    return ir_url_fail("invalid IPv6 address");
                while (i < n && is_digit(s[i])) {
                    long d = (long)(s[i] - '0');
                    if (v4 < 0)
                        v4 = d;
                    else if (v4 == 0)
                        return ir_url_fail("invalid IPv6 address");
                    else
                        v4 = v4 * 10 + d;
                    if (v4 > 255)
                        return ir_url_fail("invalid IPv6 address");
                    i++;
                }
                a[piece] = (uint16_t)(a[piece] * 0x100 + v4);
                seen++;
                if (seen == 2 || seen == 4)
                    piece++;
            }
            if (seen != 4)
                return ir_url_fail("invalid IPv6 address");
            break;
        } else if (i < n && s[i] == ':') {
            i++;
            if (i == n)
                return ir_url_fail("invalid IPv6 address");
        } else if (i < n) {
            return ir_url_fail("invalid IPv6 address");
        }
        a[piece++] = (uint16_t)value;
    }
    if (compress >= 0) {
        size_t swaps = piece - (size_t)compress, p = 7;
        while (p != 0 && swaps > 0) {
            uint16_t t = a[p];
            a[p] = a[(size_t)compress + swaps - 1];
            a[(size_t)compress + swaps - 1] = t;
            p--, swaps--;
        }
    } else if (piece != 8) {
        return ir_url_fail("invalid IPv6 address");
    }
    /* Serialize: compress the first longest run of two or more zero pieces. */
    int best = -1, best_len = 1;
    for (int k = 0; k < 8;) {
        if (a[k] != 0) {
            k++;
            continue;
        }
        int e = k;
        while (e < 8 && a[e] == 0)
            e++;
        if (e - k > best_len)
            best = k, best_len = e - k;
        k = e;
    }
    ir_buf_byte(out, '[');
    for (int k = 0; k < 8; k++) {
        if (k == best) {
            ir_buf_append(out, k == 0 ? "::" : ":", k == 0 ? 2 : 1);
            k += best_len - 1;
            continue;
        }
        static const char hx[] = "0123456789abcdef";
        char t[4];
        int len = 0, started = 0;
        for (int sh = 12; sh >= 0; sh -= 4) {
            int d = a[k] >> sh & 15;
            if (d || started || sh == 0)
                t[len++] = hx[d], started = 1;
        }
        ir_buf_append(out, t, (size_t)len);
        if (k < 7)
            ir_buf_byte(out, ':');
    }
    ir_buf_byte(out, ']');
    return IROH_OK;
}

static int forbidden_host(uint32_t c)
{
    return c == 0 || c == '\t' || c == '\n' || c == '\r' || c == ' ' || c == '#' ||
           c == '/' || c == ':' || c == '<' || c == '>' || c == '?' || c == '@' ||
           c == '[' || c == '\\' || c == ']' || c == '^' || c == '|';
}

/* The WHATWG host parser for s[0..n) (n > 0 unless opaque); appends the serialized host
 * to out. */
int ir_url_host_parse(const uint32_t *s, size_t n, int opaque, ir_buf *out)
{
    if (n > 0 && s[0] == '[') {
        if (s[n - 1] != ']' || n < 2)
            return ir_url_fail("invalid IPv6 address");
        return ipv6_parse(s + 1, n - 2, out);
    }
    if (opaque) {
        for (size_t i = 0; i < n; i++)
            if (forbidden_host(s[i]))
                return ir_url_fail("forbidden code point in host");
        for (size_t i = 0; i < n; i++)
            ir_url_pct_put(out, s[i], SET_C0);
        return out->oom ? ir_url_no_memory() : IROH_OK;
    }
    /* Percent-decode, then UTF-8 decode (ill-formed UTF-8 is an error, as in Rust). */
    ir_buf bytes;
    cpvec dom = {0};
    int r;
    ir_buf_init(&bytes);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            ir_buf_byte(&bytes, (uint8_t)(hex_value(s[i + 1]) << 4 | hex_value(s[i + 2])));
            i += 2;
        } else {
            ir_url_utf8_put(&bytes, s[i]);
        }
    }
    if (bytes.oom) {
        r = ir_url_no_memory();
        goto done;
    }
    if (ir_url_utf8_decode(bytes.data, bytes.len, &dom) != 0) {
        r = ir_url_fail("invalid international domain name (not UTF-8 after percent-decoding)");
        goto done;
    }
    if (dom.oom) {
        r = ir_url_no_memory();
        goto done;
    }
    ir_buf ascii;
    ir_buf_init(&ascii);
    r = ir_url_domain_to_ascii(dom.v, dom.len, &ascii);
    if (r == IROH_OK) {
        for (size_t i = 0; i < ascii.len; i++) {
            if (ir_url_forbidden_domain(ascii.data[i])) {
                r = ir_url_fail("forbidden code point in host");
                break;
            }
        }
    }
    if (r == IROH_OK && ascii.len == 0)
        r = ir_url_fail("empty host");
    if (r == IROH_OK) {
        if (ends_in_number(ascii.data, ascii.len))
            r = ipv4_parse(ascii.data, ascii.len, out);
        else
            ir_buf_append(out, ascii.data, ascii.len);
    }
    ir_buf_free(&ascii);
done:
    ir_buf_free(&bytes);
    ir_url_cp_free(&dom);
    return r;
}
