#include "addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/url.h"
#include "encoding.h"

/* ---- socket address text ---------------------------------------------------------- */

typedef struct cursor {
    const char *s;
    size_t len, pos;
} cursor;

static int peek(const cursor *c)
{
    return c->pos < c->len ? (unsigned char)c->s[c->pos] : -1;
}

/* Reads a number as Rust's std::net parser does: at least one digit, at most max_digits
 * (0 = unlimited), value <= max, and no leading zero unless allow_zero_prefix. */
static int read_number(cursor *c, int radix, int max_digits, int allow_zero_prefix,
                       uint32_t max, uint32_t *out)
{
    size_t start = c->pos;
    uint64_t v = 0;
    int digits = 0;
    for (;;) {
        int ch = peek(c), d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (radix == 16 && ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else if (radix == 16 && ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10;
        else
            break;
        if (max_digits && digits == max_digits)
            break;
        v = v * (uint64_t)radix + (uint64_t)d;
        if (v > max) {
            c->pos = start;
            return -1;
        }
        digits++;
        c->pos++;
    }
    if (digits == 0 || (!allow_zero_prefix && digits > 1 && c->s[start] == '0')) {
        c->pos = start;
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int read_ipv4(cursor *c, uint8_t out[4])
{
    size_t start = c->pos;
    for (int i = 0; i < 4; i++) {
        uint32_t v;
        if (i > 0) {
            if (peek(c) != '.') {
                c->pos = start;
                return -1;
            }
            c->pos++;
        }
        if (read_number(c, 10, 3, 0, 255, &v) != 0) {
            c->pos = start;
            return -1;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* Reads up to limit 16-bit groups (an embedded IPv4 counts as two, only where two fit);
 * returns the number of groups read and whether the last thing read was an IPv4. */
static int read_groups(cursor *c, uint16_t *groups, int limit)
{
    int n = 0;
    while (n < limit) {
        size_t before = c->pos;
        if (n > 0) {
            if (peek(c) != ':')
                break;
            c->pos++;
        }
        if (n < limit - 1) {
            uint8_t v4[4];
            size_t at = c->pos;
            if (read_ipv4(c, v4) == 0) {
                groups[n++] = (uint16_t)(v4[0] << 8 | v4[1]);
                groups[n++] = (uint16_t)(v4[2] << 8 | v4[3]);
                return n;
            }
            c->pos = at;
        }
        uint32_t g;
        if (read_number(c, 16, 4, 1, 0xffff, &g) != 0) {
            c->pos = before;
            break;
        }
        groups[n++] = (uint16_t)g;
    }
    return n;
}

static int read_ipv6(cursor *c, uint8_t out[16])
{
    uint16_t head[8], tail[8], all[8] = {0};
    size_t start = c->pos;
    int nh = read_groups(c, head, 8);
    if (nh == 8) {
        memcpy(all, head, sizeof head);
    } else {
        if (c->pos + 1 >= c->len || c->s[c->pos] != ':' || c->s[c->pos + 1] != ':') {
            c->pos = start;
            return -1;
        }
        c->pos += 2;
        int limit = 8 - (nh + 1);
        int nt = read_groups(c, tail, limit);
        memcpy(all, head, (size_t)nh * 2);
        memcpy(all + 8 - nt, tail, (size_t)nt * 2);
    }
    for (int i = 0; i < 8; i++) {
        out[2 * i] = (uint8_t)(all[i] >> 8);
        out[2 * i + 1] = (uint8_t)all[i];
    }
    return 0;
}

int ir_socket_addr_parse(const char *text, size_t len, iroh_socket_addr *out)
{
    cursor c = {text, len, 0};
    iroh_socket_addr a;
    memset(&a, 0, sizeof a);
    if (peek(&c) == '[') {
        c.pos++;
        if (read_ipv6(&c, a.ip) != 0)
            return ir_fail(IROH_ERR_INVALID_ADDR, "invalid socket address syntax");
        if (peek(&c) == '%') {
            uint32_t scope;
            c.pos++;
            if (read_number(&c, 10, 0, 1, UINT32_MAX, &scope) != 0)
                return ir_fail(IROH_ERR_INVALID_ADDR, "invalid socket address syntax");
        }
        if (peek(&c) != ']')
            return ir_fail(IROH_ERR_INVALID_ADDR, "invalid socket address syntax");
        c.pos++;
        a.family = 6;
    } else {
        if (read_ipv4(&c, a.ip) != 0)
            return ir_fail(IROH_ERR_INVALID_ADDR, "invalid socket address syntax");
        a.family = 4;
    }
    uint32_t port;
    if (peek(&c) != ':')
        return ir_fail(IROH_ERR_INVALID_ADDR, "invalid socket address syntax");
    c.pos++;
    if (read_number(&c, 10, 0, 1, 65535, &port) != 0 || c.pos != c.len)
        return ir_fail(IROH_ERR_INVALID_ADDR, "invalid socket address syntax");
    a.port = (uint16_t)port;
    *out = a;
    return IROH_OK;
}

size_t ir_socket_addr_format(const iroh_socket_addr *a, char *buf)
{
    int n;
    if (a->family == 4) {
        n = snprintf(buf, IROH_SOCKET_ADDR_LEN, "%u.%u.%u.%u:%u", a->ip[0], a->ip[1], a->ip[2],
                     a->ip[3], a->port);
        return (size_t)n;
    }
    uint16_t g[8];
    for (int i = 0; i < 8; i++)
        g[i] = (uint16_t)(a->ip[2 * i] << 8 | a->ip[2 * i + 1]);
    size_t o = 0;
    buf[o++] = '[';
    if (!g[0] && !g[1] && !g[2] && !g[3] && !g[4] && g[5] == 0xffff) {
        o += (size_t)snprintf(buf + o, IROH_SOCKET_ADDR_LEN - o, "::ffff:%u.%u.%u.%u", a->ip[12],
                              a->ip[13], a->ip[14], a->ip[15]);
    } else {
        /* the first longest run of zero groups, compressed when longer than one */
        int best = -1, best_len = 0, cur = -1, cur_len = 0;
        for (int i = 0; i < 8; i++) {
            if (g[i] == 0) {
                if (cur_len == 0)
                    cur = i;
                cur_len++;
                if (cur_len > best_len) {
                    best = cur;
                    best_len = cur_len;
                }
            } else {
                cur_len = 0;
            }
        }
        if (best_len < 2)
            best = -1;
        for (int i = 0; i < 8; i++) {
            if (i == best) {
                buf[o++] = ':';
                buf[o++] = ':';
                i += best_len - 1;
                continue;
            }
            if (i > 0 && i != best + best_len)
                buf[o++] = ':';
            o += (size_t)snprintf(buf + o, IROH_SOCKET_ADDR_LEN - o, "%x", g[i]);
        }
    }
    n = snprintf(buf + o, IROH_SOCKET_ADDR_LEN - o, "]:%u", a->port);
    return o + (size_t)n;
}

int iroh_socket_addr_parse(const char *text, iroh_socket_addr *out)
{
    if (!text || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    return ir_socket_addr_parse(text, strlen(text), out);
}

int iroh_socket_addr_to_string(const iroh_socket_addr *addr, char *buf, size_t buflen)
{
    char tmp[IROH_SOCKET_ADDR_LEN];
    if (!addr || !buf || (addr->family != 4 && addr->family != 6))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument or bad address family");
    size_t n = ir_socket_addr_format(addr, tmp);
    if (buflen < n + 1)
        return ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "need %zu bytes", n + 1);
    memcpy(buf, tmp, n + 1);
    return IROH_OK;
}

size_t ir_custom_addr_format(uint64_t id, const uint8_t *data, size_t len, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%llx_", (unsigned long long)id);
    size_t o = (size_t)n;
    if (o + 2 * len + 1 > cap)
        return o + 2 * len;
    ir_hex_encode(data, len, buf + o);
    return o + 2 * len;
}

/* ---- the canonical set ------------------------------------------------------------ */

#define CUSTOM_INLINE_MAX 30

static int cmp_u64(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}

static int cmp_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return cmp_u64(alen, blen);
}

int ir_taddr_cmp(const ir_taddr *a, const ir_taddr *b)
{
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    switch (a->kind) {
    case IROH_TRANSPORT_RELAY:
        return cmp_bytes((const uint8_t *)a->relay, strlen(a->relay), (const uint8_t *)b->relay,
                         strlen(b->relay));
    case IROH_TRANSPORT_IP: {
        if (a->ip.family != b->ip.family)
            return a->ip.family < b->ip.family ? -1 : 1;
        int c = memcmp(a->ip.ip, b->ip.ip, a->ip.family == 4 ? 4 : 16);
        if (c)
            return c < 0 ? -1 : 1;
        return cmp_u64(a->ip.port, b->ip.port);
    }
    case IROH_TRANSPORT_CUSTOM: {
        int c = cmp_u64(a->custom_id, b->custom_id);
        if (c)
            return c;
        if (a->custom_heap != b->custom_heap)
            return a->custom_heap ? 1 : -1;
        if (a->custom_heap)
            return cmp_bytes(a->custom_data, a->custom_len, b->custom_data, b->custom_len);
        /* inline form: size first, then the zero-padded 30 bytes */
        c = cmp_u64(a->custom_len, b->custom_len);
        if (c)
            return c;
        return cmp_bytes(a->custom_data, a->custom_len, b->custom_data, b->custom_len);
    }
    }
    return 0;
}

static void taddr_free(ir_taddr *t)
{
    free(t->relay);
    free(t->custom_data);
}

int ir_endpoint_addr_insert(iroh_endpoint_addr *addr, const ir_taddr *t)
{
    size_t lo = 0, hi = addr->len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = ir_taddr_cmp(&addr->addrs[mid], t);
        if (c == 0)
            return IROH_OK;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (addr->len == addr->cap) {
        size_t cap = addr->cap ? addr->cap * 2 : 4;
        ir_taddr *p = realloc(addr->addrs, cap * sizeof *p);
        if (!p)
            return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
        addr->addrs = p;
        addr->cap = cap;
    }
    ir_taddr copy = *t;
    copy.relay = NULL;
    copy.custom_data = NULL;
    if (t->kind == IROH_TRANSPORT_RELAY) {
        copy.relay = strdup(t->relay);
        if (!copy.relay)
            return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    } else if (t->kind == IROH_TRANSPORT_CUSTOM) {
        copy.custom_data = malloc(t->custom_len ? t->custom_len : 1);
        if (!copy.custom_data)
            return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
        if (t->custom_len)
            memcpy(copy.custom_data, t->custom_data, t->custom_len);
    }
    memmove(&addr->addrs[lo + 1], &addr->addrs[lo], (addr->len - lo) * sizeof *addr->addrs);
    addr->addrs[lo] = copy;
    addr->len++;
    return IROH_OK;
}

/* ---- postcard ---------------------------------------------------------------------- */

void ir_endpoint_addr_encode(const iroh_endpoint_addr *addr, ir_buf *out)
{
    ir_buf_append(out, addr->id.bytes, 32);
    ir_pc_put_varint(out, addr->len);
    for (size_t i = 0; i < addr->len; i++) {
        const ir_taddr *t = &addr->addrs[i];
        ir_pc_put_varint(out, (uint64_t)t->kind);
        switch (t->kind) {
        case IROH_TRANSPORT_RELAY:
            ir_pc_put_bytes(out, t->relay, strlen(t->relay));
            break;
        case IROH_TRANSPORT_IP:
            ir_pc_put_varint(out, t->ip.family == 4 ? 0 : 1);
            ir_buf_append(out, t->ip.ip, t->ip.family == 4 ? 4 : 16);
            ir_pc_put_varint(out, t->ip.port);
            break;
        case IROH_TRANSPORT_CUSTOM:
            ir_pc_put_varint(out, t->custom_id);
            if (t->custom_heap) {
                ir_pc_put_varint(out, 1);
                ir_pc_put_bytes(out, t->custom_data, t->custom_len);
            } else {
                uint8_t pad[CUSTOM_INLINE_MAX] = {0};
                memcpy(pad, t->custom_data, t->custom_len);
                ir_pc_put_varint(out, 0);
                ir_buf_byte(out, (uint8_t)t->custom_len);
                ir_buf_append(out, pad, sizeof pad);
            }
            break;
        }
    }
}


static int decode_fail(ir_pc_reader *r, int code, const char *what)
{
    return ir_fail(code, "%s at byte %zu: %s", what, r->pos, r->why ? r->why : "invalid data");
}

int ir_endpoint_addr_decode(ir_pc_reader *r, int code, iroh_endpoint_addr **out)
{
    const uint8_t *idb;
    uint64_t count;
    *out = NULL;
    if (ir_pc_get_raw(r, 32, &idb) != 0)
        return decode_fail(r, code, "endpoint id");
    iroh_endpoint_id id;
    if (iroh_endpoint_id_from_bytes(idb, &id) != IROH_OK)
        return ir_fail(code, "endpoint id: data is not a valid public key");
    if (ir_pc_get_varint(r, UINT64_MAX, &count) != 0)
        return decode_fail(r, code, "address count");
    iroh_endpoint_addr *addr = iroh_endpoint_addr_new(&id);
    if (!addr)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    int rc = IROH_OK;
    for (uint64_t i = 0; i < count && rc == IROH_OK; i++) {
        uint64_t kind;
        ir_taddr t;
        memset(&t, 0, sizeof t);
        if (ir_pc_get_varint(r, UINT32_MAX, &kind) != 0) {
            rc = decode_fail(r, code, "transport address");
            break;
        }
        if (kind == 0) {
            const uint8_t *s;
            size_t len;
            if (ir_pc_get_bytes(r, &s, &len) != 0) {
                rc = decode_fail(r, code, "relay url");
                break;
            }
            if (!ir_utf8_valid(s, len)) {
                rc = ir_fail(code, "relay url is not valid UTF-8");
                break;
            }
            t.kind = IROH_TRANSPORT_RELAY;
            rc = ir_url_normalize((const char *)s, len, &t.relay);
            if (rc == IROH_ERR_INVALID_ADDR)
                rc = ir_fail(code, "relay url: %s", iroh_last_error());
        } else if (kind == 1) {
            uint64_t fam, port;
            const uint8_t *ip;
            t.kind = IROH_TRANSPORT_IP;
            if (ir_pc_get_varint(r, UINT32_MAX, &fam) != 0) {
                rc = decode_fail(r, code, "ip address");
                break;
            }
            if (fam > 1) {
                rc = ir_fail(code, "ip address: unknown family tag %llu", (unsigned long long)fam);
                break;
            }
            t.ip.family = fam == 0 ? 4 : 6;
            if (ir_pc_get_raw(r, fam == 0 ? 4 : 16, &ip) != 0 ||
                ir_pc_get_varint(r, UINT16_MAX, &port) != 0) {
                rc = decode_fail(r, code, "ip address");
                break;
            }
            memcpy(t.ip.ip, ip, fam == 0 ? 4 : 16);
            t.ip.port = (uint16_t)port;
        } else if (kind == 2) {
            uint64_t form;
            t.kind = IROH_TRANSPORT_CUSTOM;
            if (ir_pc_get_varint(r, UINT64_MAX, &t.custom_id) != 0 ||
                ir_pc_get_varint(r, UINT32_MAX, &form) != 0) {
                rc = decode_fail(r, code, "custom address");
                break;
            }
            const uint8_t *d;
            if (form == 0) {
                uint8_t size;
                if (ir_pc_get_u8(r, &size) != 0 || ir_pc_get_raw(r, CUSTOM_INLINE_MAX, &d) != 0) {
                    rc = decode_fail(r, code, "custom address");
                    break;
                }
                if (size > CUSTOM_INLINE_MAX) {
                    rc = ir_fail(code, "custom address: inline size %u over %d", size,
                                 CUSTOM_INLINE_MAX);
                    break;
                }
                t.custom_len = size;
            } else if (form == 1) {
                if (ir_pc_get_bytes(r, &d, &t.custom_len) != 0) {
                    rc = decode_fail(r, code, "custom address");
                    break;
                }
                t.custom_heap = 1;
            } else {
                rc = ir_fail(code, "custom address: unknown form %llu", (unsigned long long)form);
                break;
            }
            t.custom_data = (uint8_t *)d;
            rc = ir_endpoint_addr_insert(addr, &t);
            continue;
        } else {
            rc = ir_fail(code, "unknown transport address kind %llu", (unsigned long long)kind);
            break;
        }
        if (rc == IROH_OK)
            rc = ir_endpoint_addr_insert(addr, &t);
        free(t.relay);
    }
    if (rc != IROH_OK) {
        iroh_endpoint_addr_free(addr);
        return rc;
    }
    *out = addr;
    return IROH_OK;
}

/* ---- public API ------------------------------------------------------------------- */

iroh_endpoint_addr *iroh_endpoint_addr_new(const iroh_endpoint_id *id)
{
    if (!id) {
        ir_fail(IROH_ERR_INVALID_ARGUMENT, "id is NULL");
        return NULL;
    }
    iroh_endpoint_addr *a = calloc(1, sizeof *a);
    if (!a) {
        ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    a->id = *id;
    return a;
}

void iroh_endpoint_addr_free(iroh_endpoint_addr *addr)
{
    if (!addr)
        return;
    for (size_t i = 0; i < addr->len; i++)
        taddr_free(&addr->addrs[i]);
    free(addr->addrs);
    free(addr);
}

const iroh_endpoint_id *iroh_endpoint_addr_id(const iroh_endpoint_addr *addr)
{
    return addr ? &addr->id : NULL;
}

int iroh_endpoint_addr_add_relay(iroh_endpoint_addr *addr, const char *url)
{
    if (!addr || !url)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    ir_taddr t;
    memset(&t, 0, sizeof t);
    t.kind = IROH_TRANSPORT_RELAY;
    int rc = ir_url_normalize(url, strlen(url), &t.relay);
    if (rc != IROH_OK)
        return rc;
    rc = ir_endpoint_addr_insert(addr, &t);
    free(t.relay);
    return rc;
}

int iroh_endpoint_addr_add_ip(iroh_endpoint_addr *addr, const iroh_socket_addr *ip)
{
    if (!addr || !ip || (ip->family != 4 && ip->family != 6))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument or bad address family");
    ir_taddr t;
    memset(&t, 0, sizeof t);
    t.kind = IROH_TRANSPORT_IP;
    t.ip = *ip;
    if (ip->family == 4)
        memset(t.ip.ip + 4, 0, 12);
    return ir_endpoint_addr_insert(addr, &t);
}

int iroh_endpoint_addr_add_custom(iroh_endpoint_addr *addr, uint64_t id, const uint8_t *data,
                                  size_t len)
{
    if (!addr || (!data && len))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    ir_taddr t;
    memset(&t, 0, sizeof t);
    t.kind = IROH_TRANSPORT_CUSTOM;
    t.custom_id = id;
    t.custom_data = (uint8_t *)data;
    t.custom_len = len;
    t.custom_heap = len > CUSTOM_INLINE_MAX;
    return ir_endpoint_addr_insert(addr, &t);
}

size_t iroh_endpoint_addr_len(const iroh_endpoint_addr *addr)
{
    return addr ? addr->len : 0;
}

int iroh_endpoint_addr_get(const iroh_endpoint_addr *addr, size_t i, iroh_transport_addr *out)
{
    if (!addr || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    if (i >= addr->len)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "index %zu out of range", i);
    const ir_taddr *t = &addr->addrs[i];
    memset(out, 0, sizeof *out);
    out->kind = t->kind;
    out->relay_url = t->relay;
    out->ip = t->ip;
    out->custom_id = t->custom_id;
    out->custom_data = t->custom_data;
    out->custom_len = t->custom_len;
    return IROH_OK;
}

const char *iroh_endpoint_addr_relay_url(const iroh_endpoint_addr *addr)
{
    if (addr && addr->len && addr->addrs[0].kind == IROH_TRANSPORT_RELAY)
        return addr->addrs[0].relay;
    return NULL;
}

int ir_ip6_is_v4_mapped(const uint8_t ip[16])
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(ip, prefix, 12) == 0;
}
