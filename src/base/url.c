/* The WHATWG URL Standard's basic URL parser (no base URL) and URL serializer, matching
 * what iroh's RelayUrl produces: iroh wraps Rust's `url` crate (2.5.8), whose IDNA step is
 * the `idna` crate (1.1, UTS #46 non-transitional with CheckHyphens=false,
 * CheckBidi=true, CheckJoiners=true, UseSTD3ASCIIRules=false, VerifyDnsLength=false and
 * the WHATWG forbidden domain code points as deny list). This file holds the URL record,
 * the parser's states and the serializer; hosts, IDNA and the percent-encode sets are in
 * the files url_internal.h lists.
 *
 * Where the `url` crate differs from the current standard, the parser follows the crate,
 * since a ticket that iroh reads back must give the same text:
 *  - the path percent-encode set does not contain '^';
 *  - an opaque path keeps a space before '?' or '#' (no "%20");
 *  - a non-special URL whose userinfo serializes to nothing may have an empty host
 *    ("foo://@" and "foo://:@/x" parse; "foo://@/x" does not);
 *  - a port may end with '\' in a non-special URL too ("foo://h:1\x" -> "foo://h:1/\x");
 *  - "..": a last segment that is a Windows drive letter ("C:" or "C|") is never removed,
 *    in any scheme ("http://h/a/C:/.." -> "http://h/a/C:/");
 *  - file URLs: leading empty path segments are dropped ("file:////x" -> "file:///x"),
 *    a drive letter as first segment clears the host ("file://h/C|/x" -> "file:///C:/x"),
 *    but after "file:///" the drive letter is not the first segment and stays as written
 *    ("file:///C|/x" -> "file:///C|/x").
 *  - a tab or newline right after a first segment "C:" of a file path ends the segment
 *    ("file:C:<TAB>x" -> "file:///C:/x").
 * The `url` crate's parser is not idempotent on some file URLs ("file://h//C|" parses to
 * "file://h/C|", which parses to "file:///C:"). iroh parses a relay URL when it is made and
 * again when a ticket holding it is decoded, so what any iroh peer ends up with is the
 * second parse: ir_url_normalize() parses twice and returns that, which is idempotent. */
#include "base/url.h"

#include <stdlib.h>
#include <string.h>

#include "base/url_internal.h"

typedef struct url_rec {
    const uint32_t *in; /* the input, trimmed and without tab or newline */
    const uint8_t *tab; /* tab[i]: a tab or newline was removed just before in[i] */
    size_t n;
    ir_buf scheme, user, pass, host;
    int special, file, has_host;
    long port;  /* -1: none (or the scheme's default) */
    int opaque; /* the path is opaque (opath) rather than segments */
    ir_buf opath;
    ir_buf path;  /* the segments, concatenated */
    size_t *seg;  /* start of each segment in path */
    size_t nseg, segcap;
    int seg_oom;
    int has_query, has_fragment;
    ir_buf query, frag;
} url_rec;

static size_t seg_len(const url_rec *u, size_t i)
{
    return (i + 1 < u->nseg ? u->seg[i + 1] : u->path.len) - u->seg[i];
}

static const uint8_t *seg_data(const url_rec *u, size_t i)
{
    return u->path.data ? u->path.data + u->seg[i] : (const uint8_t *)"";
}

static void seg_push(url_rec *u, const uint8_t *s, size_t len)
{
    if (u->seg_oom)
        return;
    if (u->nseg == u->segcap) {
        size_t cap = u->segcap ? u->segcap * 2 : 16;
        size_t *p = cap > SIZE_MAX / sizeof *p ? NULL : realloc(u->seg, cap * sizeof *p);
        if (!p) {
            u->seg_oom = 1;
            return;
        }
        u->seg = p, u->segcap = cap;
    }
    u->seg[u->nseg++] = u->path.len;
    ir_buf_append(&u->path, s, len);
}

static int is_drive_letter(const uint8_t *s, size_t len)
{
    return len == 2 && is_alpha(s[0]) && (s[1] == ':' || s[1] == '|');
}

/* "Shorten a URL's path" as the url crate does it: a last segment that is a Windows drive
 * letter stays, whatever the scheme. */
static void shorten_path(url_rec *u)
{
    if (u->nseg == 0)
        return;
    size_t last = u->nseg - 1;
    if (is_drive_letter(seg_data(u, last), seg_len(u, last)))
        return;
    u->path.len = u->seg[last];
    u->nseg--;
}

static int ieq(const uint8_t *a, size_t n, const char *b)
{
    if (n != strlen(b))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(a[i]) != (uint8_t)b[i])
            return 0;
    return 1;
}

static int is_single_dot(const uint8_t *s, size_t n)
{
    return ieq(s, n, ".") || ieq(s, n, "%2e");
}

static int is_double_dot(const uint8_t *s, size_t n)
{
    return ieq(s, n, "..") || ieq(s, n, ".%2e") || ieq(s, n, "%2e.") || ieq(s, n, "%2e%2e");
}

/* The path state, from *p up to '?', '#' or the end. */
static int parse_path(url_rec *u, size_t *p)
{
    ir_buf buf;
    ir_buf_init(&buf);
    for (;;) {
        int eof = *p >= u->n;
        uint32_t c = eof ? 0 : u->in[*p];
        int slash = !eof && (c == '/' || (u->special && c == '\\'));
        if (eof || slash || c == '?' || c == '#') {
            if (is_double_dot(buf.data, buf.len)) {
                shorten_path(u);
                if (!slash)
                    seg_push(u, NULL, 0);
            } else if (is_single_dot(buf.data, buf.len)) {
                if (!slash)
                    seg_push(u, NULL, 0);
            } else {
                if (u->file && u->nseg == 0 && is_drive_letter(buf.data, buf.len)) {
                    buf.data[1] = ':';
                    u->host.len = 0; /* the url crate drops the host here */
                }
                seg_push(u, buf.data, buf.len);
            }
            buf.len = 0;
            if (!slash)
                break;
            (*p)++;
            continue;
        }
        if (u->file && u->nseg == 0 && u->tab[*p] && buf.len == 2 && is_alpha(buf.data[0]) &&
            buf.data[1] == ':') {
            /* The url crate sees a first segment "C:" that a tab or newline ends as a
             * drive letter followed by '/': "file:C:<TAB>x" -> "file:///C:/x". */
            seg_push(u, buf.data, buf.len);
            buf.len = 0;
        }
        ir_url_pct_put(&buf, c, SET_PATH);
        (*p)++;
    }
    int oom = buf.oom;
    ir_buf_free(&buf);
    if (u->file) {
        /* The url crate drops leading empty segments of a file path. */
        size_t drop = 0;
        while (u->nseg - drop > 1 && seg_len(u, drop) == 0)
            drop++;
        if (drop) {
            size_t off = u->seg[drop];
            if (off > 0) {
                memmove(u->path.data, u->path.data + off, u->path.len - off);
                u->path.len -= off;
            }
            for (size_t i = drop; i < u->nseg; i++)
                u->seg[i - drop] = u->seg[i] - off;
            u->nseg -= drop;
        }
    }
    return oom ? ir_url_no_memory() : IROH_OK;
}

/* The path start state for a URL with a host. */
static int parse_path_start(url_rec *u, size_t *p)
{
    if (u->special) {
        if (*p < u->n && (u->in[*p] == '/' || u->in[*p] == '\\'))
            (*p)++;
        return parse_path(u, p);
    }
    if (*p >= u->n || u->in[*p] == '?' || u->in[*p] == '#')
        return IROH_OK;
    if (u->in[*p] == '/')
        (*p)++;
    return parse_path(u, p);
}

/* The query and fragment states. */
static void parse_query_fragment(url_rec *u, size_t p)
{
    if (p < u->n && u->in[p] == '?') {
        u->has_query = 1;
        for (p++; p < u->n && u->in[p] != '#'; p++)
            ir_url_pct_put(&u->query, u->in[p], u->special ? SET_SPECIAL_QUERY : SET_QUERY);
    }
    if (p < u->n && u->in[p] == '#') {
        u->has_fragment = 1;
        for (p++; p < u->n; p++)
            ir_url_pct_put(&u->frag, u->in[p], SET_FRAGMENT);
    }
}

static int is_authority_end(const url_rec *u, uint32_t c)
{
    return c == '/' || c == '?' || c == '#' || (u->special && c == '\\');
}

static int default_port(const url_rec *u)
{
    const char *s = (const char *)u->scheme.data;
    size_t n = u->scheme.len;
    if ((n == 4 && memcmp(s, "http", 4) == 0) || (n == 2 && memcmp(s, "ws", 2) == 0))
        return 80;
    if ((n == 5 && memcmp(s, "https", 5) == 0) || (n == 3 && memcmp(s, "wss", 3) == 0))
        return 443;
    if (n == 3 && memcmp(s, "ftp", 3) == 0)
        return 21;
    return -1;
}

/* The authority, host and port states, then the path. p is just after "//" (or, for
 * special schemes, after all slashes and backslashes). */
static int parse_authority(url_rec *u, size_t p)
{
    size_t end = p, at = SIZE_MAX;
    int r;
    for (; end < u->n && !is_authority_end(u, u->in[end]); end++)
        if (u->in[end] == '@')
            at = end;
    if (at != SIZE_MAX) {
        if (at == p && at + 1 < u->n && at + 1 == end)
            return ir_url_fail("empty host");
        int pw = 0;
        for (size_t i = p; i < at; i++) {
            if (u->in[i] == ':' && !pw)
                pw = 1;
            else
                ir_url_pct_put(pw ? &u->pass : &u->user, u->in[i], SET_USERINFO);
        }
        p = at + 1;
    }
    size_t h = p;
    int brackets = 0;
    for (; h < u->n; h++) {
        uint32_t c = u->in[h];
        if ((c == ':' && !brackets) || is_authority_end(u, c))
            break;
        if (c == '[')
            brackets = 1;
        else if (c == ']')
            brackets = 0;
    }
    if (u->special && h == p)
        return ir_url_fail("empty host");
    if ((r = ir_url_host_parse(u->in + p, h - p, !u->special, &u->host)) != IROH_OK)
        return r;
    u->has_host = 1;
    if (u->host.len == 0 && ((h < u->n && u->in[h] == ':') || u->user.len || u->pass.len))
        return ir_url_fail("empty host");
    p = h;
    if (p < u->n && u->in[p] == ':') {
        uint32_t port = 0;
        int any = 0;
        for (p++; p < u->n; p++) {
            uint32_t c = u->in[p];
            if (is_digit(c)) {
                port = port * 10 + (c - '0');
                if (port > 65535)
                    return ir_url_fail("invalid port number");
                any = 1;
            } else if (c == '/' || c == '\\' || c == '?' || c == '#') {
                break;
            } else {
                return ir_url_fail("invalid port number");
            }
        }
        if (any && (long)port != default_port(u))
            u->port = (long)port;
    }
    if ((r = parse_path_start(u, &p)) != IROH_OK)
        return r;
    parse_query_fragment(u, p);
    return IROH_OK;
}

/* The file state and what follows it (there is no base URL). */
static int parse_file(url_rec *u, size_t p)
{
    const uint32_t *in = u->in;
    int r;
    u->has_host = 1; /* a file URL always has a host, maybe empty */
    if (p < u->n && (in[p] == '/' || in[p] == '\\')) {
        if (p + 1 < u->n && (in[p + 1] == '/' || in[p + 1] == '\\')) {
            /* file host state */
            size_t h = p += 2;
            while (h < u->n && in[h] != '/' && in[h] != '\\' && in[h] != '?' && in[h] != '#')
                h++;
            if (h - p == 2 && is_alpha(in[p]) && (in[p + 1] == ':' || in[p + 1] == '|')) {
                r = parse_path(u, &p); /* the "host" is a drive letter: it starts the path */
            } else if (h == p) {
                r = parse_path(u, &p);
            } else {
                if ((r = ir_url_host_parse(in + p, h - p, 0, &u->host)) != IROH_OK)
                    return r;
                p = h;
                if (u->host.len == 9 && memcmp(u->host.data, "localhost", 9) == 0) {
                    u->host.len = 0;
                    r = parse_path(u, &p);
                } else {
                    r = parse_path_start(u, &p);
                }
            }
        } else {
            p++; /* file slash state, then the path */
            r = parse_path(u, &p);
        }
    } else {
        r = parse_path(u, &p);
    }
    if (r != IROH_OK)
        return r;
    parse_query_fragment(u, p);
    return IROH_OK;
}

static int parse_url(url_rec *u)
{
    const uint32_t *in = u->in;
    size_t n = u->n, k = 0, p;
    /* scheme start and scheme states */
    if (n == 0 || !is_alpha(in[0]))
        return ir_url_fail("relative URL without a base");
    while (k < n && (is_alnum(in[k]) || in[k] == '+' || in[k] == '-' || in[k] == '.'))
        k++;
    if (k == n || in[k] != ':')
        return ir_url_fail("relative URL without a base");
    for (size_t i = 0; i < k; i++)
        ir_buf_byte(&u->scheme, (uint8_t)ascii_lower(in[i]));
    if (u->scheme.oom)
        return ir_url_no_memory();
    p = k + 1;
    static const char *const special[] = {"http", "https", "ws", "wss", "ftp", "file"};
    for (size_t i = 0; i < NELEM(special); i++)
        if (u->scheme.len == strlen(special[i]) &&
            memcmp(u->scheme.data, special[i], u->scheme.len) == 0)
            u->special = 1, u->file = i == 5;
    if (u->file)
        return parse_file(u, p);
    if (u->special) {
        /* special authority slashes and ignore slashes states */
        while (p < n && (in[p] == '/' || in[p] == '\\'))
            p++;
        return parse_authority(u, p);
    }
    if (p + 1 < n && in[p] == '/' && in[p + 1] == '/')
        return parse_authority(u, p + 2);
    if (p < n && in[p] == '/') {
        /* path state without a host */
        p++;
        int r = parse_path(u, &p);
        if (r != IROH_OK)
            return r;
        parse_query_fragment(u, p);
        return IROH_OK;
    }
    /* opaque path state */
    u->opaque = 1;
    for (; p < n && in[p] != '?' && in[p] != '#'; p++)
        ir_url_pct_put(&u->opath, in[p], SET_C0);
    parse_query_fragment(u, p);
    return IROH_OK;
}

static void serialize(const url_rec *u, ir_buf *o)
{
    ir_buf_append(o, u->scheme.data, u->scheme.len);
    ir_buf_byte(o, ':');
    if (u->has_host) {
        ir_buf_append(o, "//", 2);
        if (u->user.len || u->pass.len) {
            ir_buf_append(o, u->user.data, u->user.len);
            if (u->pass.len) {
                ir_buf_byte(o, ':');
                ir_buf_append(o, u->pass.data, u->pass.len);
            }
            ir_buf_byte(o, '@');
        }
        ir_buf_append(o, u->host.data, u->host.len);
        if (u->port >= 0) {
            char t[8];
            int len = 0;
            long v = u->port, div = 10000;
            while (div > 1 && v / div == 0)
                div /= 10;
            for (; div > 0; div /= 10)
                t[len++] = (char)('0' + v / div % 10);
            ir_buf_byte(o, ':');
            ir_buf_append(o, t, (size_t)len);
        }
    } else if (!u->opaque && u->nseg > 1 && seg_len(u, 0) == 0) {
        ir_buf_append(o, "/.", 2);
    }
    if (u->opaque) {
        ir_buf_append(o, u->opath.data, u->opath.len);
    } else {
        for (size_t i = 0; i < u->nseg; i++) {
            ir_buf_byte(o, '/');
            ir_buf_append(o, seg_data(u, i), seg_len(u, i));
        }
    }
    if (u->has_query) {
        ir_buf_byte(o, '?');
        ir_buf_append(o, u->query.data, u->query.len);
    }
    if (u->has_fragment) {
        ir_buf_byte(o, '#');
        ir_buf_append(o, u->frag.data, u->frag.len);
    }
    ir_buf_byte(o, 0);
}

/* One run of the parser and serializer (Rust's Url::parse then as_str). */
static int normalize_once(const char *in, size_t len, char **out)
{
    cpvec raw = {0}, cps = {0};
    uint8_t *tab = NULL;
    url_rec u;
    ir_buf o;
    int r;
    *out = NULL;
    memset(&u, 0, sizeof u);
    u.port = -1;
    ir_buf_init(&o);
    if (!in && len)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL URL");
    if (ir_url_utf8_decode((const uint8_t *)in, len, &raw) != 0) {
        r = ir_url_fail("URL is not valid UTF-8");
        goto done;
    }
    /* Strip leading and trailing C0 control or space, remove all ASCII tab or newline. */
    size_t a = 0, b = raw.len;
    int after_tab = 0;
    while (a < b && raw.v[a] <= 0x20)
        a++;
    while (b > a && raw.v[b - 1] <= 0x20)
        b--;
    tab = malloc(b - a + 1);
    if (raw.oom || !tab) {
        r = ir_url_no_memory();
        goto done;
    }
    for (size_t i = a; i < b; i++) {
        if (raw.v[i] == '\t' || raw.v[i] == '\n' || raw.v[i] == '\r') {
            after_tab = 1;
            continue;
        }
        tab[cps.len] = (uint8_t)after_tab;
        after_tab = 0;
        ir_url_cp_push(&cps, raw.v[i]);
    }
    tab[cps.len] = 0;
    if (cps.oom) {
        r = ir_url_no_memory();
        goto done;
    }
    u.in = cps.v;
    u.tab = tab;
    u.n = cps.len;
    if ((r = parse_url(&u)) != IROH_OK)
        goto done;
    if (u.scheme.oom || u.user.oom || u.pass.oom || u.host.oom || u.opath.oom || u.path.oom ||
        u.seg_oom || u.query.oom || u.frag.oom) {
        r = ir_url_no_memory();
        goto done;
    }
    serialize(&u, &o);
    if (o.oom) {
        r = ir_url_no_memory();
        goto done;
    }
    *out = (char *)o.data;
    ir_buf_init(&o);
done:
    ir_buf_free(&o);
    ir_buf_free(&u.scheme);
    ir_buf_free(&u.user);
    ir_buf_free(&u.pass);
    ir_buf_free(&u.host);
    ir_buf_free(&u.opath);
    ir_buf_free(&u.path);
    ir_buf_free(&u.query);
    ir_buf_free(&u.frag);
    free(u.seg);
    ir_url_cp_free(&raw);
    ir_url_cp_free(&cps);
    free(tab);
    return r;
}

int ir_url_normalize(const char *in, size_t len, char **out)
{
    char *once;
    int r = normalize_once(in, len, &once);
    *out = NULL;
    if (r != IROH_OK)
        return r;
    r = normalize_once(once, strlen(once), out);
    free(once);
    return r;
}

int iroh_relay_url_normalize(const char *url, char *buf, size_t buflen)
{
    char *s;
    int r;
    if (!url || !buf)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    if ((r = ir_url_normalize(url, strlen(url), &s)) != IROH_OK)
        return r;
    size_t n = strlen(s);
    if (n >= buflen) {
        free(s);
        return ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "the URL needs %zu bytes", n + 1);
    }
    memcpy(buf, s, n + 1);
    free(s);
    return IROH_OK;
}
