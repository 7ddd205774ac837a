/* The relay server's configuration file: a TOML-subset parser and upstream's keys. See
 * config.h for the subset and the keys. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* ---- values -------------------------------------------------------------------------- */

enum { V_STR, V_INT, V_FLOAT, V_BOOL, V_ARRAY };

typedef struct tval {
    int type;
    char *s; /* V_STR: NUL-terminated (no NUL inside) */
    int64_t i;
    double f;
    int b;
    char **items; /* V_ARRAY: strings */
    size_t n;
} tval;

static void tval_free(tval *v)
{
    free(v->s);
    for (size_t k = 0; k < v->n; k++)
        free(v->items[k]);
    free(v->items);
    memset(v, 0, sizeof *v);
}

/* ---- the parser ------------------------------------------------------------------------ */

#define MAX_DEPTH 8 /* key segments */
#define MAX_SEG 64  /* bytes of one key segment */

typedef struct kpath {
    int n;
    char seg[MAX_DEPTH][MAX_SEG];
} kpath;

typedef struct parser {
    const char *p, *end;
    int line;
    ir_relay_file_config *cfg;
    int failed;
    char **seen; /* keys and "[table]" headers defined so far */
    size_t nseen, capseen;
    int access_line;  /* where access was given (0: not yet) */
    int burst_line;
} parser;

static int fail(parser *ps, const char *fmt, ...) IR_PRINTF(2, 3);

static int fail(parser *ps, const char *fmt, ...)
{
    if (ps->failed)
        return -1;
    ps->failed = 1;
    ir_relay_file_config *c = ps->cfg;
    int n = snprintf(c->error, sizeof c->error, "line %d: ", ps->line);
    if (n < 0 || (size_t)n >= sizeof c->error)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error + n, sizeof c->error - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static void note(parser *ps, const char *key, const char *why)
{
    ir_relay_file_config *c = ps->cfg;
    size_t used = strlen(c->notes);
    if (used < sizeof c->notes)
        snprintf(c->notes + used, sizeof c->notes - used, "line %d: '%s' ignored (%s)\n", ps->line,
                 key, why);
}

static int is_bare(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-';
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
        ps->p++;
}

static void skip_comment(parser *ps)
{
    if (ps->p < ps->end && *ps->p == '#')
        while (ps->p < ps->end && *ps->p != '\n')
            ps->p++;
}

/* A line end (LF or CRLF): consumed, 1; else 0. */
static int newline(parser *ps)
{
    if (ps->p < ps->end && *ps->p == '\n') {
        ps->p++;
        ps->line++;
        return 1;
    }
    if (ps->end - ps->p >= 2 && ps->p[0] == '\r' && ps->p[1] == '\n') {
        ps->p += 2;
        ps->line++;
        return 1;
    }
    return 0;
}

/* Whitespace, comments and line ends (inside arrays). */
static void skip_blank(parser *ps)
{
    for (;;) {
        skip_ws(ps);
        skip_comment(ps);
        if (!newline(ps))
            return;
    }
}

/* The rest of a line after a key/value pair or a header: blanks and a comment only. */
static int end_of_line(parser *ps)
{
    skip_ws(ps);
    skip_comment(ps);
    if (ps->p == ps->end || newline(ps))
        return 0;
    return fail(ps, "unexpected '%c' after the value (one key = value per line)", *ps->p);
}

static void put_utf8(char *out, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xc0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xe0 | (cp >> 12));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*n)++] = (char)(0xf0 | (cp >> 18));
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* A basic ("...") or literal ('...') single-line string at ps->p into a new C string. */
static int parse_string(parser *ps, char **out)
{
    char q = *ps->p;
    *out = NULL;
    if (ps->end - ps->p >= 3 && ps->p[1] == q && ps->p[2] == q)
        return fail(ps, "multi-line strings are not supported");
    const char *s = ++ps->p;
    /* find the closing quote first: the decoded string is never longer */
    const char *e = s;
    while (e < ps->end && *e != q && *e != '\n') {
        if (q == '"' && *e == '\\' && e + 1 < ps->end && e[1] != '\n')
            e++;
        e++;
    }
    if (e >= ps->end || *e != q)
        return fail(ps, "unterminated string");
    char *buf = malloc((size_t)(e - s) + 1);
    if (!buf)
        return fail(ps, "out of memory");
    size_t n = 0;
    for (const char *c = s; c < e; c++) {
        unsigned char ch = (unsigned char)*c;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            free(buf);
            return fail(ps, "control character in a string");
        }
        if (q == '\'' || ch != '\\') {
            buf[n++] = (char)ch;
            continue;
        }
        c++;
        switch (*c) {
        case 'b': buf[n++] = '\b'; break;
        case 't': buf[n++] = '\t'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'r': buf[n++] = '\r'; break;
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case 'u':
        case 'U': {
            int digits = *c == 'u' ? 4 : 8;
            uint32_t cp = 0;
            if (e - c - 1 < digits) {
                free(buf);
                return fail(ps, "invalid \\%c escape", *c);
            }
            for (int k = 1; k <= digits; k++) {
                int d = hex_digit(c[k]);
                if (d < 0) {
                    free(buf);
                    return fail(ps, "invalid \\%c escape", *c);
                }
                cp = cp << 4 | (uint32_t)d;
            }
            c += digits;
            if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                free(buf);
                return fail(ps, cp == 0 ? "NUL in a string is not supported"
                                        : "escape is not a Unicode scalar value");
            }
            put_utf8(buf, &n, cp);
            break;
        }
        default:
            free(buf);
            return fail(ps, "invalid escape '\\%c'", *c);
        }
    }
    buf[n] = 0;
    ps->p = e + 1;
    *out = buf;
    return 0;
}

/* One key segment (bare or quoted). */
static int parse_key_seg(parser *ps, char seg[MAX_SEG])
{
    if (ps->p < ps->end && (*ps->p == '"' || *ps->p == '\'')) {
        char *s;
        if (parse_string(ps, &s) < 0)
            return -1;
        size_t l = strlen(s);
        if (l >= MAX_SEG) {
            free(s);
            return fail(ps, "key too long");
        }
        memcpy(seg, s, l + 1);
        free(s);
        return 0;
    }
    size_t l = 0;
    while (ps->p < ps->end && is_bare(*ps->p)) {
        if (l + 1 >= MAX_SEG)
            return fail(ps, "key too long");
        seg[l++] = *ps->p++;
    }
    seg[l] = 0;
    if (!l) {
        if (ps->p == ps->end || *ps->p == '\n' || *ps->p == '\r')
            return fail(ps, "expected a key");
        return fail(ps, "expected a key, found '%c'", *ps->p);
    }
    return 0;
}

/* A dotted key appended to k. */
static int parse_key(parser *ps, kpath *k)
{
    for (;;) {
        skip_ws(ps);
        if (k->n == MAX_DEPTH)
            return fail(ps, "key nested too deeply");
        if (parse_key_seg(ps, k->seg[k->n]) < 0)
            return -1;
        k->n++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == '.') {
            ps->p++;
            continue;
        }
        return 0;
    }
}

static void join(const kpath *k, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = 0;
    for (int i = 0; i < k->n; i++) {
        int w = snprintf(out + n, cap - n, "%s%s", i ? "." : "", k->seg[i]);
        if (w < 0 || (size_t)w >= cap - n)
            return;
        n += (size_t)w;
    }
}

/* Records a key or "[table]"; -1 if it was defined before. */
static int define(parser *ps, const char *name)
{
    for (size_t i = 0; i < ps->nseen; i++)
        if (strcmp(ps->seen[i], name) == 0)
            return -1;
    if (ps->nseen == ps->capseen) {
        size_t cap = ps->capseen ? ps->capseen * 2 : 16;
        char **s = realloc(ps->seen, cap * sizeof *s);
        if (!s)
            return fail(ps, "out of memory");
        ps->seen = s;
        ps->capseen = cap;
    }
    ps->seen[ps->nseen] = strdup(name);
    if (!ps->seen[ps->nseen])
        return fail(ps, "out of memory");
    ps->nseen++;
    return 0;
}

static int parse_number(parser *ps, tval *v)
{
    char tok[64];
    size_t n = 0;
    while (ps->p < ps->end && (is_bare(*ps->p) || *ps->p == '+' || *ps->p == '.' || *ps->p == ':')) {
        if (n + 1 >= sizeof tok)
            return fail(ps, "number too long");
        tok[n++] = *ps->p++;
    }
    tok[n] = 0;
    const char *d = tok + (tok[0] == '+' || tok[0] == '-');
    if (!strcmp(d, "inf") || !strcmp(d, "nan"))
        return fail(ps, "inf and nan are not supported");
    if (d[0] == '0' && (d[1] == 'x' || d[1] == 'o' || d[1] == 'b'))
        return fail(ps, "only decimal integers are supported");
    /* underscores only between digits; then drop them */
    char clean[64];
    size_t m = 0;
    int is_float = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = tok[i];
        if (ch == '_') {
            if (i == 0 || i + 1 == n || !(tok[i - 1] >= '0' && tok[i - 1] <= '9') ||
                !(tok[i + 1] >= '0' && tok[i + 1] <= '9'))
                return fail(ps, "invalid number '%s'", tok);
            continue;
        }
        if (ch == ':' || ch == 'T' || ch == 'Z' || (ch == '-' && i > 0 && tok[i - 1] != 'e' && tok[i - 1] != 'E'))
            return fail(ps, "dates and times are not supported");
        if (ch == '.' || ch == 'e' || ch == 'E')
            is_float = 1;
        else if (!(ch >= '0' && ch <= '9') && ch != '+' && ch != '-')
            return fail(ps, "invalid value '%s'", tok);
        clean[m++] = ch;
    }
    clean[m] = 0;
    const char *digits = clean + (clean[0] == '+' || clean[0] == '-');
    if (!digits[0] || !(digits[0] >= '0' && digits[0] <= '9'))
        return fail(ps, "invalid number '%s'", tok);
    if (digits[0] == '0' && digits[1] >= '0' && digits[1] <= '9')
        return fail(ps, "leading zeros are not allowed in '%s'", tok);
    char *end;
    errno = 0;
    if (is_float) {
        /* TOML: digits on both sides of the point */
        const char *dot = strchr(digits, '.');
        if (dot && (dot == digits || !(dot[1] >= '0' && dot[1] <= '9')))
            return fail(ps, "invalid number '%s'", tok);
        v->type = V_FLOAT;
        v->f = strtod(clean, &end);
    } else {
        v->type = V_INT;
        v->i = strtoll(clean, &end, 10);
    }
    if (*end || errno)
        return fail(ps, errno == ERANGE ? "number out of range '%s'" : "invalid number '%s'", tok);
    return 0;
}

/* A value other than an inline table. */
static int parse_value(parser *ps, tval *v, int in_array)
{
    memset(v, 0, sizeof *v);
    if (ps->p >= ps->end || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '#')
        return fail(ps, "expected a value");
    char ch = *ps->p;
    if (ch == '"' || ch == '\'') {
        v->type = V_STR;
        return parse_string(ps, &v->s);
    }
    if (ch == '[') {
        if (in_array)
            return fail(ps, "nested arrays are not supported");
        ps->p++;
        v->type = V_ARRAY;
        size_t cap = 0;
        for (;;) {
            skip_blank(ps);
            if (ps->p < ps->end && *ps->p == ']') {
                ps->p++;
                return 0;
            }
            tval item;
            if (ps->p < ps->end && *ps->p == '{')
                return fail(ps, "only arrays of strings are supported");
            if (parse_value(ps, &item, 1) < 0)
                return -1;
            if (item.type != V_STR) {
                tval_free(&item);
                return fail(ps, "only arrays of strings are supported");
            }
            if (v->n == cap) {
                cap = cap ? cap * 2 : 8;
                char **it = realloc(v->items, cap * sizeof *it);
                if (!it) {
                    tval_free(&item);
                    return fail(ps, "out of memory");
                }
                v->items = it;
            }
            v->items[v->n++] = item.s;
            skip_blank(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == ']') {
                ps->p++;
                return 0;
            }
            return fail(ps, ps->p < ps->end ? "expected ',' or ']' in an array" : "unterminated array");
        }
    }
    if (ch == '{')
        return fail(ps, "inline tables are not supported here");
    if (ch == 't' || ch == 'f') {
        size_t l = ch == 't' ? 4 : 5;
        if ((size_t)(ps->end - ps->p) >= l && memcmp(ps->p, ch == 't' ? "true" : "false", l) == 0 &&
            (ps->end - ps->p == (ptrdiff_t)l || !is_bare(ps->p[l]))) {
            ps->p += l;
            v->type = V_BOOL;
            v->b = ch == 't';
            return 0;
        }
    }
    if ((ch >= '0' && ch <= '9') || ch == '+' || ch == '-' || ch == 'i' || ch == 'n')
        return parse_number(ps, v);
    return fail(ps, "invalid value starting with '%c'", ch);
}

/* ---- the keys ---------------------------------------------------------------------------- */

static int want(parser *ps, const char *key, const tval *v, int type)
{
    static const char *const names[] = {"a string", "an integer", "a number", "a boolean",
                                        "an array of strings"};
    if (v->type == type || (type == V_FLOAT && v->type == V_INT))
        return 0;
    return fail(ps, "'%s' must be %s", key, names[type]);
}

static int take_addr(parser *ps, const char *key, tval *v, char **dst)
{
    if (want(ps, key, v, V_STR) < 0)
        return -1;
    iroh_socket_addr a;
    if (iroh_socket_addr_parse(v->s, &a) != IROH_OK)
        return fail(ps, "'%s': '%s' is not a socket address (IP:PORT)", key, v->s);
    if (dst) {
        free(*dst);
        *dst = v->s;
        v->s = NULL;
    }
    return 0;
}

static int take_path(parser *ps, const char *key, tval *v, char **dst)
{
    if (want(ps, key, v, V_STR) < 0)
        return -1;
    if (!v->s[0])
        return fail(ps, "'%s' must not be empty", key);
    free(*dst);
    *dst = v->s;
    v->s = NULL;
    return 0;
}

static int take_u32(parser *ps, const char *key, const tval *v, uint32_t *dst)
{
    if (want(ps, key, v, V_INT) < 0)
        return -1;
    if (v->i < 1 || v->i > (int64_t)UINT32_MAX)
        return fail(ps, "'%s' must be 1 to 4294967295", key);
    *dst = (uint32_t)v->i;
    return 0;
}

static int set_access(parser *ps, int mode)
{
    if (ps->access_line)
        return fail(ps, "access is given twice (first on line %d)", ps->access_line);
    ps->access_line = ps->line;
    ps->cfg->access_given = 1;
    ps->cfg->access = mode;
    return 0;
}

static int apply(parser *ps, const char *key, tval *v)
{
    ir_relay_file_config *c = ps->cfg;
    if (strncmp(key, "tls.", 4) == 0)
        c->tls = 1;
    if (!strcmp(key, "enable_relay")) {
        if (want(ps, key, v, V_BOOL) < 0)
            return -1;
        if (!v->b)
            return fail(ps, "enable_relay = false is not supported (there would be nothing to serve)");
        c->enable_relay = 1;
    } else if (!strcmp(key, "http_bind_addr")) {
        return take_addr(ps, key, v, &c->http_bind_addr);
    } else if (!strcmp(key, "metrics_bind_addr")) {
        return take_addr(ps, key, v, &c->metrics_bind_addr);
    } else if (!strcmp(key, "enable_metrics")) {
        if (want(ps, key, v, V_BOOL) < 0)
            return -1;
        c->enable_metrics = v->b;
    } else if (!strcmp(key, "enable_quic_addr_discovery")) {
        if (want(ps, key, v, V_BOOL) < 0)
            return -1;
        c->enable_qad = v->b;
    } else if (!strcmp(key, "key_cache_capacity")) {
        if (want(ps, key, v, V_INT) < 0)
            return -1;
        if (v->i < 0)
            return fail(ps, "'%s' must not be negative", key);
        note(ps, key, "the key cache has a fixed size");
    } else if (!strcmp(key, "access")) {
        if (want(ps, key, v, V_STR) < 0)
            return -1;
        if (strcmp(v->s, "everyone") != 0) {
            if (!strcmp(v->s, "allowlist") || !strcmp(v->s, "denylist") || !strcmp(v->s, "shared_token"))
                return fail(ps, "access = \"%s\" needs a list: access.%s = [ ... ]", v->s, v->s);
            return fail(ps, "access must be \"everyone\", allowlist, denylist or shared_token");
        }
        return set_access(ps, IR_RELAY_ACCESS_EVERYONE);
    } else if (!strcmp(key, "access.allowlist") || !strcmp(key, "access.denylist")) {
        if (want(ps, key, v, V_ARRAY) < 0)
            return -1;
        if (set_access(ps, key[7] == 'a' ? IR_RELAY_ACCESS_ALLOWLIST : IR_RELAY_ACCESS_DENYLIST) < 0)
            return -1;
        c->ids = calloc(v->n ? v->n : 1, sizeof *c->ids);
        if (!c->ids)
            return fail(ps, "out of memory");
        for (size_t k = 0; k < v->n; k++)
            if (iroh_endpoint_id_parse(v->items[k], &c->ids[c->n_ids++]) != IROH_OK)
                return fail(ps, "'%s': '%.80s' is not an EndpointId", key, v->items[k]);
    } else if (!strcmp(key, "access.shared_token")) {
        if (want(ps, key, v, V_ARRAY) < 0 || set_access(ps, IR_RELAY_ACCESS_SHARED_TOKEN) < 0)
            return -1;
        for (size_t k = 0; k < v->n; k++)
            if (!v->items[k][0])
                return fail(ps, "'%s': tokens must not be empty", key);
        c->tokens = v->items;
        c->n_tokens = v->n;
        v->items = NULL;
        v->n = 0;
    } else if (!strncmp(key, "access.", 7)) {
        if (!strcmp(key, "access.http") || !strncmp(key, "access.http.", 12))
            return fail(ps, "access.http (asking an HTTP service) is not supported");
        return fail(ps, "unknown access mode '%s' (everyone, allowlist, denylist, shared_token)", key + 7);
    } else if (!strcmp(key, "tls.https_bind_addr")) {
        return take_addr(ps, key, v, &c->https_bind_addr);
    } else if (!strcmp(key, "tls.quic_bind_addr")) {
        return take_addr(ps, key, v, &c->quic_bind_addr);
    } else if (!strcmp(key, "tls.cert_mode")) {
        if (want(ps, key, v, V_STR) < 0)
            return -1;
        if (!strcmp(v->s, "LetsEncrypt") || !strcmp(v->s, "Reloading"))
            return fail(ps, "cert_mode \"%s\" is not supported (only \"Manual\")", v->s);
        if (strcmp(v->s, "Manual") != 0)
            return fail(ps, "unknown cert_mode \"%.40s\" (Manual, LetsEncrypt, Reloading)", v->s);
    } else if (!strcmp(key, "tls.cert_dir")) {
        return take_path(ps, key, v, &c->cert_dir);
    } else if (!strcmp(key, "tls.manual_cert_path")) {
        return take_path(ps, key, v, &c->manual_cert_path);
    } else if (!strcmp(key, "tls.manual_key_path")) {
        return take_path(ps, key, v, &c->manual_key_path);
    } else if (!strcmp(key, "tls.hostname")) {
        if (v->type != V_STR && v->type != V_ARRAY)
            return fail(ps, "'%s' must be a string or an array of strings", key);
        note(ps, key, "only used by LetsEncrypt");
    } else if (!strcmp(key, "tls.contact")) {
        if (want(ps, key, v, V_STR) < 0)
            return -1;
        note(ps, key, "only used by LetsEncrypt");
    } else if (!strcmp(key, "tls.prod_tls")) {
        if (want(ps, key, v, V_BOOL) < 0)
            return -1;
        note(ps, key, "only used by LetsEncrypt");
    } else if (!strcmp(key, "limits.accept_conn_limit") || !strcmp(key, "limits.accept_conn_burst")) {
        if (want(ps, key, v, key[19] == 'l' ? V_FLOAT : V_INT) < 0)
            return -1;
        if ((v->type == V_INT && v->i < 0) || (v->type == V_FLOAT && !(v->f >= 0)))
            return fail(ps, "'%s' must not be negative", key);
        note(ps, key, "not implemented, as upstream");
    } else if (!strcmp(key, "limits.client.rx.bytes_per_second")) {
        return take_u32(ps, key, v, &c->rx_bytes_per_second);
    } else if (!strcmp(key, "limits.client.rx.max_burst_bytes")) {
        ps->burst_line = ps->line;
        return take_u32(ps, key, v, &c->rx_max_burst_bytes);
    } else {
        return fail(ps, "unknown key '%s'", key);
    }
    return 0;
}

/* The tables a header may name. */
static int apply_table(parser *ps, const char *name)
{
    static const char *const known[] = {"tls", "limits", "limits.client", "limits.client.rx", "access"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(name, known[i])) {
            if (i == 0)
                ps->cfg->tls = 1;
            return 0;
        }
    if (!strcmp(name, "access.http") || !strncmp(name, "access.http.", 12))
        return fail(ps, "access.http (asking an HTTP service) is not supported");
    return fail(ps, "unknown table [%s]", name);
}

static int emit(parser *ps, const kpath *k, tval *v)
{
    char name[MAX_DEPTH * MAX_SEG];
    join(k, name, sizeof name);
    if (define(ps, name) < 0)
        return ps->failed ? -1 : fail(ps, "'%s' is defined twice", name);
    return apply(ps, name, v);
}

static int parse_assign(parser *ps, const kpath *prefix);

/* { k = v, ... } on one line, its keys under prefix. */
static int parse_inline_table(parser *ps, const kpath *prefix)
{
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return 0;
    }
    for (;;) {
        if (parse_assign(ps, prefix) < 0)
            return -1;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            return 0;
        }
        if (ps->p == ps->end || *ps->p == '\n' || *ps->p == '\r')
            return fail(ps, "an inline table must end on its line with '}'");
        return fail(ps, "expected ',' or '}' in an inline table");
    }
}

static int parse_assign(parser *ps, const kpath *prefix)
{
    kpath k = *prefix;
    if (parse_key(ps, &k) < 0)
        return -1;
    if (ps->p >= ps->end || *ps->p != '=')
        return fail(ps, "expected '=' after the key");
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '{') {
        char name[MAX_DEPTH * MAX_SEG];
        join(&k, name, sizeof name);
        if (define(ps, name) < 0)
            return ps->failed ? -1 : fail(ps, "'%s' is defined twice", name);
        return parse_inline_table(ps, &k);
    }
    tval v;
    int rc = parse_value(ps, &v, 0);
    if (rc == 0)
        rc = emit(ps, &k, &v);
    tval_free(&v);
    return rc;
}

/* A [table] header: its name becomes the prefix of the keys that follow. */
static int parse_header(parser *ps, kpath *table)
{
    ps->p++;
    if (ps->p < ps->end && *ps->p == '[')
        return fail(ps, "arrays of tables ([[...]]) are not supported");
    kpath k;
    k.n = 0;
    if (parse_key(ps, &k) < 0)
        return -1;
    if (ps->p >= ps->end || *ps->p != ']')
        return fail(ps, "expected ']' after the table name");
    ps->p++;
    char name[MAX_DEPTH * MAX_SEG + 2];
    join(&k, name + 1, sizeof name - 2);
    name[0] = '[';
    strcat(name, "]");
    if (define(ps, name) < 0)
        return ps->failed ? -1 : fail(ps, "table %s is defined twice", name);
    name[strlen(name) - 1] = 0;
    if (apply_table(ps, name + 1) < 0)
        return -1;
    *table = k;
    return 0;
}

static void config_init(ir_relay_file_config *c)
{
    memset(c, 0, sizeof *c);
    c->enable_relay = 1;
    c->enable_metrics = 1;
}

void ir_relay_file_config_free(ir_relay_file_config *c)
{
    free(c->http_bind_addr);
    free(c->metrics_bind_addr);
    free(c->https_bind_addr);
    free(c->quic_bind_addr);
    c->quic_bind_addr = NULL;
    free(c->cert_dir);
    free(c->manual_cert_path);
    free(c->manual_key_path);
    free(c->ids);
    for (size_t k = 0; k < c->n_tokens; k++)
        free(c->tokens[k]);
    free(c->tokens);
    c->http_bind_addr = c->metrics_bind_addr = c->https_bind_addr = NULL;
    c->cert_dir = c->manual_cert_path = c->manual_key_path = NULL;
    c->ids = NULL;
    c->tokens = NULL;
    c->n_ids = c->n_tokens = 0;
}

int ir_relay_file_config_parse(const char *text, size_t len, ir_relay_file_config *out)
{
    config_init(out);
    parser ps;
    memset(&ps, 0, sizeof ps);
    ps.p = text;
    ps.end = text + len;
    ps.line = 1;
    ps.cfg = out;
    kpath table;
    table.n = 0;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        ps.p += 3; /* a UTF-8 byte order mark */
    while (ps.p < ps.end && !ps.failed) {
        skip_ws(&ps);
        skip_comment(&ps);
        if (ps.p == ps.end || newline(&ps))
            continue;
        if (*ps.p == '[') {
            if (parse_header(&ps, &table) < 0)
                break;
        } else if (parse_assign(&ps, &table) < 0) {
            break;
        }
        if (end_of_line(&ps) < 0)
            break;
    }
    if (!ps.failed && out->rx_max_burst_bytes && !out->rx_bytes_per_second) {
        ps.line = ps.burst_line;
        fail(&ps, "max_burst_bytes needs bytes_per_second ([limits.client.rx])");
    }
    for (size_t i = 0; i < ps.nseen; i++)
        free(ps.seen[i]);
    free(ps.seen);
    return ps.failed ? IROH_ERR_INVALID_ARGUMENT : IROH_OK;
}
