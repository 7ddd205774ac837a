/* The TOML subset of the servers' configuration files: see toml.h. */
#include "toml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* ---- values -------------------------------------------------------------------------- */

void ir_toml_value_free(ir_toml_value *v)
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

int ir_toml_fail(ir_toml_reader *ps, const char *fmt, ...)
{
    if (ps->failed)
        return -1;
    ps->failed = 1;
    int n = snprintf(ps->error, ps->error_cap, "line %d: ", ps->line);
    if (n < 0 || (size_t)n >= ps->error_cap)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->error + n, ps->error_cap - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

void ir_toml_note(ir_toml_reader *ps, const char *key, const char *why)
{
    size_t used = strlen(ps->notes);
    if (used < ps->notes_cap)
        snprintf(ps->notes + used, ps->notes_cap - used, "line %d: '%s' ignored (%s)\n", ps->line,
                 key, why);
}

static int is_bare(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-';
}

static void skip_ws(ir_toml_reader *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
        ps->p++;
}

static void skip_comment(ir_toml_reader *ps)
{
    if (ps->p < ps->end && *ps->p == '#')
        while (ps->p < ps->end && *ps->p != '\n')
            ps->p++;
}

/* A line end (LF or CRLF): consumed, 1; else 0. */
static int newline(ir_toml_reader *ps)
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
static void skip_blank(ir_toml_reader *ps)
{
    for (;;) {
        skip_ws(ps);
        skip_comment(ps);
        if (!newline(ps))
            return;
    }
}

/* The rest of a line after a key/value pair or a header: blanks and a comment only. */
static int end_of_line(ir_toml_reader *ps)
{
    skip_ws(ps);
    skip_comment(ps);
    if (ps->p == ps->end || newline(ps))
        return 0;
    return ir_toml_fail(ps, "unexpected '%c' after the value (one key = value per line)", *ps->p);
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
static int parse_string(ir_toml_reader *ps, char **out)
{
    char q = *ps->p;
    *out = NULL;
    if (ps->end - ps->p >= 3 && ps->p[1] == q && ps->p[2] == q)
        return ir_toml_fail(ps, "multi-line strings are not supported");
    const char *s = ++ps->p;
    /* find the closing quote first: the decoded string is never longer */
    const char *e = s;
    while (e < ps->end && *e != q && *e != '\n') {
        if (q == '"' && *e == '\\' && e + 1 < ps->end && e[1] != '\n')
            e++;
        e++;
    }
    if (e >= ps->end || *e != q)
        return ir_toml_fail(ps, "unterminated string");
    char *buf = malloc((size_t)(e - s) + 1);
    if (!buf)
        return ir_toml_fail(ps, "out of memory");
    size_t n = 0;
    for (const char *c = s; c < e; c++) {
        unsigned char ch = (unsigned char)*c;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            free(buf);
            return ir_toml_fail(ps, "control character in a string");
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
                return ir_toml_fail(ps, "invalid \\%c escape", *c);
            }
            for (int k = 1; k <= digits; k++) {
                int d = hex_digit(c[k]);
                if (d < 0) {
                    free(buf);
                    return ir_toml_fail(ps, "invalid \\%c escape", *c);
                }
                cp = cp << 4 | (uint32_t)d;
            }
            c += digits;
            if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                free(buf);
                return ir_toml_fail(ps, cp == 0 ? "NUL in a string is not supported"
                                        : "escape is not a Unicode scalar value");
            }
            put_utf8(buf, &n, cp);
            break;
        }
        default:
            free(buf);
            return ir_toml_fail(ps, "invalid escape '\\%c'", *c);
        }
    }
    buf[n] = 0;
    ps->p = e + 1;
    *out = buf;
    return 0;
}

/* One key segment (bare or quoted). */
static int parse_key_seg(ir_toml_reader *ps, char seg[MAX_SEG])
{
    if (ps->p < ps->end && (*ps->p == '"' || *ps->p == '\'')) {
        char *s;
        if (parse_string(ps, &s) < 0)
            return -1;
        size_t l = strlen(s);
        if (l >= MAX_SEG) {
            free(s);
            return ir_toml_fail(ps, "key too long");
        }
        memcpy(seg, s, l + 1);
        free(s);
        return 0;
    }
    size_t l = 0;
    while (ps->p < ps->end && is_bare(*ps->p)) {
        if (l + 1 >= MAX_SEG)
            return ir_toml_fail(ps, "key too long");
        seg[l++] = *ps->p++;
    }
    seg[l] = 0;
    if (!l) {
        if (ps->p == ps->end || *ps->p == '\n' || *ps->p == '\r')
            return ir_toml_fail(ps, "expected a key");
        return ir_toml_fail(ps, "expected a key, found '%c'", *ps->p);
    }
    return 0;
}

/* A dotted key appended to k. */
static int parse_key(ir_toml_reader *ps, kpath *k)
{
    for (;;) {
        skip_ws(ps);
        if (k->n == MAX_DEPTH)
            return ir_toml_fail(ps, "key nested too deeply");
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
static int define(ir_toml_reader *ps, const char *name)
{
    for (size_t i = 0; i < ps->nseen; i++)
        if (strcmp(ps->seen[i], name) == 0)
            return -1;
    if (ps->nseen == ps->capseen) {
        size_t cap = ps->capseen ? ps->capseen * 2 : 16;
        char **s = realloc(ps->seen, cap * sizeof *s);
        if (!s)
            return ir_toml_fail(ps, "out of memory");
        ps->seen = s;
        ps->capseen = cap;
    }
    ps->seen[ps->nseen] = strdup(name);
    if (!ps->seen[ps->nseen])
        return ir_toml_fail(ps, "out of memory");
    ps->nseen++;
    return 0;
}

static int parse_number(ir_toml_reader *ps, ir_toml_value *v)
{
    char tok[64];
    size_t n = 0;
    while (ps->p < ps->end && (is_bare(*ps->p) || *ps->p == '+' || *ps->p == '.' || *ps->p == ':')) {
        if (n + 1 >= sizeof tok)
            return ir_toml_fail(ps, "number too long");
        tok[n++] = *ps->p++;
    }
    tok[n] = 0;
    const char *d = tok + (tok[0] == '+' || tok[0] == '-');
    if (!strcmp(d, "inf") || !strcmp(d, "nan"))
        return ir_toml_fail(ps, "inf and nan are not supported");
    if (d[0] == '0' && (d[1] == 'x' || d[1] == 'o' || d[1] == 'b'))
        return ir_toml_fail(ps, "only decimal integers are supported");
    /* underscores only between digits; then drop them */
    char clean[64];
    size_t m = 0;
    int is_float = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = tok[i];
        if (ch == '_') {
            if (i == 0 || i + 1 == n || !(tok[i - 1] >= '0' && tok[i - 1] <= '9') ||
                !(tok[i + 1] >= '0' && tok[i + 1] <= '9'))
                return ir_toml_fail(ps, "invalid number '%s'", tok);
            continue;
        }
        if (ch == ':' || ch == 'T' || ch == 'Z' || (ch == '-' && i > 0 && tok[i - 1] != 'e' && tok[i - 1] != 'E'))
            return ir_toml_fail(ps, "dates and times are not supported");
        if (ch == '.' || ch == 'e' || ch == 'E')
            is_float = 1;
        else if (!(ch >= '0' && ch <= '9') && ch != '+' && ch != '-')
            return ir_toml_fail(ps, "invalid value '%s'", tok);
        clean[m++] = ch;
    }
    clean[m] = 0;
    const char *digits = clean + (clean[0] == '+' || clean[0] == '-');
    if (!digits[0] || !(digits[0] >= '0' && digits[0] <= '9'))
        return ir_toml_fail(ps, "invalid number '%s'", tok);
    if (digits[0] == '0' && digits[1] >= '0' && digits[1] <= '9')
        return ir_toml_fail(ps, "leading zeros are not allowed in '%s'", tok);
    char *end;
    errno = 0;
    if (is_float) {
        /* TOML: digits on both sides of the point */
        const char *dot = strchr(digits, '.');
        if (dot && (dot == digits || !(dot[1] >= '0' && dot[1] <= '9')))
            return ir_toml_fail(ps, "invalid number '%s'", tok);
        v->type = IR_TOML_FLOAT;
        v->f = strtod(clean, &end);
    } else {
        v->type = IR_TOML_INT;
        v->i = strtoll(clean, &end, 10);
    }
    if (*end || errno)
        return ir_toml_fail(ps, errno == ERANGE ? "number out of range '%s'" : "invalid number '%s'", tok);
    return 0;
}

/* A value other than an inline table. */
static int parse_value(ir_toml_reader *ps, ir_toml_value *v, int in_array)
{
    memset(v, 0, sizeof *v);
    if (ps->p >= ps->end || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '#')
        return ir_toml_fail(ps, "expected a value");
    char ch = *ps->p;
    if (ch == '"' || ch == '\'') {
        v->type = IR_TOML_STR;
        return parse_string(ps, &v->s);
    }
    if (ch == '[') {
        if (in_array)
            return ir_toml_fail(ps, "nested arrays are not supported");
        ps->p++;
        v->type = IR_TOML_ARRAY;
        size_t cap = 0;
        for (;;) {
            skip_blank(ps);
            if (ps->p < ps->end && *ps->p == ']') {
                ps->p++;
                return 0;
            }
            ir_toml_value item;
            if (ps->p < ps->end && *ps->p == '{')
                return ir_toml_fail(ps, "only arrays of strings are supported");
            if (parse_value(ps, &item, 1) < 0)
                return -1;
            if (item.type != IR_TOML_STR) {
                ir_toml_value_free(&item);
                return ir_toml_fail(ps, "only arrays of strings are supported");
            }
            if (v->n == cap) {
                cap = cap ? cap * 2 : 8;
                char **it = realloc(v->items, cap * sizeof *it);
                if (!it) {
                    ir_toml_value_free(&item);
                    return ir_toml_fail(ps, "out of memory");
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
            return ir_toml_fail(ps, ps->p < ps->end ? "expected ',' or ']' in an array" : "unterminated array");
        }
    }
    if (ch == '{')
        return ir_toml_fail(ps, "inline tables are not supported here");
    if (ch == 't' || ch == 'f') {
        size_t l = ch == 't' ? 4 : 5;
        if ((size_t)(ps->end - ps->p) >= l && memcmp(ps->p, ch == 't' ? "true" : "false", l) == 0 &&
            (ps->end - ps->p == (ptrdiff_t)l || !is_bare(ps->p[l]))) {
            ps->p += l;
            v->type = IR_TOML_BOOL;
            v->b = ch == 't';
            return 0;
        }
    }
    if ((ch >= '0' && ch <= '9') || ch == '+' || ch == '-' || ch == 'i' || ch == 'n')
        return parse_number(ps, v);
    return ir_toml_fail(ps, "invalid value starting with '%c'", ch);
}

/* ---- typed values for the keys --------------------------------------------------------- */

int ir_toml_want(ir_toml_reader *ps, const char *key, const ir_toml_value *v, int type)
{
    static const char *const names[] = {"a string", "an integer", "a number", "a boolean",
                                        "an array of strings"};
    if (v->type == type || (type == IR_TOML_FLOAT && v->type == IR_TOML_INT))
        return 0;
    return ir_toml_fail(ps, "'%s' must be %s", key, names[type]);
}

int ir_toml_take_addr(ir_toml_reader *ps, const char *key, ir_toml_value *v, char **dst)
{
    if (ir_toml_want(ps, key, v, IR_TOML_STR) < 0)
        return -1;
    iroh_socket_addr a;
    if (iroh_socket_addr_parse(v->s, &a) != IROH_OK)
        return ir_toml_fail(ps, "'%s': '%s' is not a socket address (IP:PORT)", key, v->s);
    if (dst) {
        free(*dst);
        *dst = v->s;
        v->s = NULL;
    }
    return 0;
}

int ir_toml_take_path(ir_toml_reader *ps, const char *key, ir_toml_value *v, char **dst)
{
    if (ir_toml_want(ps, key, v, IR_TOML_STR) < 0)
        return -1;
    if (!v->s[0])
        return ir_toml_fail(ps, "'%s' must not be empty", key);
    free(*dst);
    *dst = v->s;
    v->s = NULL;
    return 0;
}

int ir_toml_take_u32(ir_toml_reader *ps, const char *key, const ir_toml_value *v, uint32_t *dst)
{
    if (ir_toml_want(ps, key, v, IR_TOML_INT) < 0)
        return -1;
    if (v->i < 1 || v->i > (int64_t)UINT32_MAX)
        return ir_toml_fail(ps, "'%s' must be 1 to 4294967295", key);
    *dst = (uint32_t)v->i;
    return 0;
}

static int emit(ir_toml_reader *ps, const kpath *k, ir_toml_value *v)
{
    char name[MAX_DEPTH * MAX_SEG];
    join(k, name, sizeof name);
    if (define(ps, name) < 0)
        return ps->failed ? -1 : ir_toml_fail(ps, "'%s' is defined twice", name);
    return ps->key(ps, ps->ctx, name, v);
}

static int parse_assign(ir_toml_reader *ps, const kpath *prefix);

/* { k = v, ... } on one line, its keys under prefix. */
static int parse_inline_table(ir_toml_reader *ps, const kpath *prefix)
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
            return ir_toml_fail(ps, "an inline table must end on its line with '}'");
        return ir_toml_fail(ps, "expected ',' or '}' in an inline table");
    }
}

static int parse_assign(ir_toml_reader *ps, const kpath *prefix)
{
    kpath k = *prefix;
    if (parse_key(ps, &k) < 0)
        return -1;
    if (ps->p >= ps->end || *ps->p != '=')
        return ir_toml_fail(ps, "expected '=' after the key");
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '{') {
        char name[MAX_DEPTH * MAX_SEG];
        join(&k, name, sizeof name);
        if (define(ps, name) < 0)
            return ps->failed ? -1 : ir_toml_fail(ps, "'%s' is defined twice", name);
        return parse_inline_table(ps, &k);
    }
    ir_toml_value v;
    int rc = parse_value(ps, &v, 0);
    if (rc == 0)
        rc = emit(ps, &k, &v);
    ir_toml_value_free(&v);
    return rc;
}

/* A [table] header: its name becomes the prefix of the keys that follow. */
static int parse_header(ir_toml_reader *ps, kpath *table)
{
    ps->p++;
    if (ps->p < ps->end && *ps->p == '[')
        return ir_toml_fail(ps, "arrays of tables ([[...]]) are not supported");
    kpath k;
    k.n = 0;
    if (parse_key(ps, &k) < 0)
        return -1;
    if (ps->p >= ps->end || *ps->p != ']')
        return ir_toml_fail(ps, "expected ']' after the table name");
    ps->p++;
    char name[MAX_DEPTH * MAX_SEG + 2];
    join(&k, name + 1, sizeof name - 2);
    name[0] = '[';
    strcat(name, "]");
    if (define(ps, name) < 0)
        return ps->failed ? -1 : ir_toml_fail(ps, "table %s is defined twice", name);
    name[strlen(name) - 1] = 0;
    if (ps->table(ps, ps->ctx, name + 1) < 0)
        return -1;
    *table = k;
    return 0;
}

int ir_toml_parse(ir_toml_reader *ps, const char *text, size_t len)
{
    ps->p = text;
    ps->end = text + len;
    ps->line = 1;
    ps->failed = 0;
    ps->seen = NULL;
    ps->nseen = ps->capseen = 0;
    if (ps->error_cap)
        ps->error[0] = 0;
    kpath table;
    table.n = 0;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        ps->p += 3; /* a UTF-8 byte order mark */
    while (ps->p < ps->end && !ps->failed) {
        skip_ws(ps);
        skip_comment(ps);
        if (ps->p == ps->end || newline(ps))
            continue;
        if (*ps->p == '[') {
            if (parse_header(ps, &table) < 0)
                break;
        } else if (parse_assign(ps, &table) < 0) {
            break;
        }
        if (end_of_line(ps) < 0)
            break;
    }
    for (size_t i = 0; i < ps->nseen; i++)
        free(ps->seen[i]);
    free(ps->seen);
    ps->seen = NULL;
    return ps->failed ? -1 : 0;
}
