#include "http.h"

#include <string.h>
#include <strings.h>

#include "base/util.h"

/* ---- reader ---------------------------------------------------------------------------- */

void ir_http_reader_init(ir_http_reader *r)
{
    r->len = 0;
    r->state = 0;
    r->done = 0;
}

/* Scanner states: 0 inside a line, 1 just after LF, 2 after LF CR. The head ends at an
 * LF in state 1 or 2 (an empty line, CRLF or bare LF). Before the first byte of the
 * start line, CR and LF are skipped as httparse does (state 3). */
int ir_http_reader_feed(ir_http_reader *r, const uint8_t *data, size_t len, size_t *consumed)
{
    *consumed = 0;
    if (r->done)
        return ir_fail(IROH_ERR_STATE, "HTTP head already complete");
    if (r->len == 0 && r->state == 0)
        r->state = 3;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = data[i];
        if (r->state == 3) {
            if (c == '\r' || c == '\n')
                continue;
            r->state = 0;
        }
        if (r->len >= sizeof r->buf) {
            *consumed = i;
            return ir_fail(IROH_ERR_TOO_LONG, "HTTP head longer than %d bytes", IR_HTTP_MAX_HEAD);
        }
        r->buf[r->len++] = c;
        if (c == '\n') {
            if (r->state == 1 || r->state == 2) {
                r->done = 1;
                *consumed = i + 1;
                return 1;
            }
            r->state = 1;
        } else if (c == '\r' && r->state == 1) {
            r->state = 2;
        } else {
            r->state = 0;
        }
    }
    *consumed = len;
    return 0;
}

/* ---- character classes (httparse) ------------------------------------------------------ */

static int is_tchar(uint8_t c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_uri_char(uint8_t c)
{
    return (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

static int is_value_char(uint8_t c)
{
    return c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80;
}

/* ---- line scanning --------------------------------------------------------------------- */

typedef struct line_cursor {
    const uint8_t *p;
    size_t len, pos;
} line_cursor;

/* The next line without its CRLF / LF; -1 at the end of input or on a CR not followed by
 * LF. */
static int next_line(line_cursor *c, const uint8_t **line, size_t *n)
{
    size_t start = c->pos;
    for (size_t i = start; i < c->len; i++) {
        if (c->p[i] == '\n') {
            size_t end = i;
            if (end > start && c->p[end - 1] == '\r')
                end--;
            for (size_t k = start; k < end; k++)
                if (c->p[k] == '\r')
                    return -1; /* bare CR */
            *line = c->p + start;
            *n = end - start;
            c->pos = i + 1;
            return 0;
        }
    }
    return -1;
}

static int skip_empty_lines(line_cursor *c)
{
    while (c->pos < c->len && (c->p[c->pos] == '\r' || c->p[c->pos] == '\n')) {
        if (c->p[c->pos] == '\r' && (c->pos + 1 >= c->len || c->p[c->pos + 1] != '\n'))
            return -1;
        c->pos += c->p[c->pos] == '\r' ? 2 : 1;
    }
    return 0;
}

static int parse_version(const uint8_t *p, size_t n, int *minor)
{
    if (n != 8 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
        return -1;
    *minor = p[7] - '0';
    return 0;
}

/* Parses the header lines up to the empty line. */
static int parse_headers(line_cursor *c, ir_http_header *h, size_t max, size_t *count)
{
    size_t n = 0;
    for (;;) {
        const uint8_t *line;
        size_t len;
        if (next_line(c, &line, &len) < 0)
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid HTTP header line");
        if (len == 0)
            break;
        size_t i = 0;
        while (i < len && is_tchar(line[i]))
            i++;
        if (i == 0 || i >= len || line[i] != ':')
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid HTTP header name");
        size_t name_len = i++;
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        size_t vstart = i, vend = len;
        for (size_t k = vstart; k < len; k++)
            if (!is_value_char(line[k]))
                return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid HTTP header value");
        while (vend > vstart && (line[vend - 1] == ' ' || line[vend - 1] == '\t'))
            vend--;
        if (n >= max)
            return ir_fail(IROH_ERR_TOO_LONG, "more than %zu HTTP headers", max);
        h[n].name = (const char *)line;
        h[n].name_len = name_len;
        h[n].value = (const char *)line + vstart;
        h[n].value_len = vend - vstart;
        n++;
    }
    if (c->pos != c->len)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "bytes after the HTTP head");
    *count = n;
    return IROH_OK;
}

int ir_http_parse_request(const uint8_t *head, size_t len, ir_http_request *req)
{
    line_cursor c = {head, len, 0};
    const uint8_t *line;
    size_t n;
    memset(req, 0, offsetof(ir_http_request, headers));
    if (skip_empty_lines(&c) < 0 || next_line(&c, &line, &n) < 0)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid HTTP request line");
    size_t i = 0;
    while (i < n && is_tchar(line[i]))
        i++;
    if (i == 0 || i >= n || line[i] != ' ')
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid HTTP method");
    req->method = (const char *)line;
    req->method_len = i++;
    size_t t = i;
    while (i < n && is_uri_char(line[i]))
        i++;
    if (i == t || i >= n || line[i] != ' ')
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid HTTP request target");
    req->target = (const char *)line + t;
    req->target_len = i - t;
    i++;
    if (parse_version(line + i, n - i, &req->minor_version) < 0)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid HTTP version");
    req->path = req->target;
    req->path_len = req->target_len;
    const char *q = memchr(req->target, '?', req->target_len);
    if (q) {
        req->path_len = (size_t)(q - req->target);
        req->query = q + 1;
        req->query_len = req->target_len - req->path_len - 1;
    }
    return parse_headers(&c, req->headers, IR_HTTP_MAX_REQUEST_HEADERS, &req->n_headers);
}

int ir_http_parse_response(const uint8_t *head, size_t len, ir_http_response *resp)
{
    line_cursor c = {head, len, 0};
    const uint8_t *line;
    size_t n;
    memset(resp, 0, offsetof(ir_http_response, headers));
    if (skip_empty_lines(&c) < 0 || next_line(&c, &line, &n) < 0)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid HTTP status line");
    if (n < 12 || parse_version(line, 8, &resp->minor_version) < 0 || line[8] != ' ')
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid HTTP status line");
    int status = 0;
    for (size_t i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9')
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid HTTP status code");
        status = status * 10 + (line[i] - '0');
    }
    resp->status = status;
    resp->reason = (const char *)line + n;
    if (n > 12) {
        if (line[12] != ' ')
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid HTTP status line");
        for (size_t i = 13; i < n; i++)
            if (!is_value_char(line[i]))
                return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid HTTP reason phrase");
        resp->reason = (const char *)line + 13;
        resp->reason_len = n - 13;
    }
    return parse_headers(&c, resp->headers, IR_HTTP_MAX_RESPONSE_HEADERS, &resp->n_headers);
}

/* ---- header lookup --------------------------------------------------------------------- */

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int name_is(const ir_http_header *h, const char *name)
{
    size_t n = strlen(name);
    if (h->name_len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)h->name[i]) != lower((unsigned char)name[i]))
            return 0;
    return 1;
}

const ir_http_header *ir_http_find(const ir_http_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (name_is(&h[i], name))
            return &h[i];
    return NULL;
}

const ir_http_header *ir_http_find_last(const ir_http_header *h, size_t n, const char *name)
{
    for (size_t i = n; i-- > 0;)
        if (name_is(&h[i], name))
            return &h[i];
    return NULL;
}

int ir_http_value_is(const ir_http_header *h, const char *s)
{
    size_t n = strlen(s);
    return h->value_len == n && memcmp(h->value, s, n) == 0;
}


int ir_http_visible_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(c == '\t' || (c >= 0x20 && c < 0x7f)))
            return 0;
    }
    return 1;
}

void ir_http_list_init(ir_http_list *l, const char *value, size_t len)
{
    l->s = value;
    l->end = value + len;
    l->done = 0;
}

int ir_http_list_next(ir_http_list *l, const char **item, size_t *item_len)
{
    if (l->done)
        return 0;
    const char *comma = memchr(l->s, ',', (size_t)(l->end - l->s));
    const char *e = comma ? comma : l->end;
    const char *a = l->s, *b = e;
    while (a < b && (*a == ' ' || *a == '\t'))
        a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
        b--;
    *item = a;
    *item_len = (size_t)(b - a);
    if (comma)
        l->s = comma + 1;
    else
        l->done = 1;
    return 1;
}

int ir_http_has_token(const ir_http_header *h, const char *tok)
{
    size_t tl = strlen(tok), n;
    const char *a;
    ir_http_list l;
    ir_http_list_init(&l, h->value, h->value_len);
    while (ir_http_list_next(&l, &a, &n))
        if (n == tl && strncasecmp(a, tok, tl) == 0)
            return 1;
    return 0;
}
