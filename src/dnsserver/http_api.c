/* The HTTP routes of the DNS server (iroh-dns-server's http.rs): pkarr PUT/GET, DoH,
 * health. Each request gets one complete response with Connection: close. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/encoding.h"
#include "core.h"
#include "relay/text.h"

static const char *phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void respond(ir_dnss *s, ir_buf *out, int status, const char *type, const char *extra,
                    const void *body, size_t len)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n%s%s%s%sContent-Length: %zu\r\n"
                     "Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
                     status, phrase(status), type ? "Content-Type: " : "", type ? type : "",
                     type ? "\r\n" : "", extra ? extra : "", len);
    ir_buf_append(out, head, (size_t)n);
    ir_buf_append(out, body, len);
    s->st.http_requests++;
    if (status >= 200 && status < 300)
        s->st.http_requests_success++;
    else
        s->st.http_requests_error++;
}

/* iroh-dns-server's error body: {"status":"400","detail":"..."} (detail: our own ASCII
 * texts, no quoting needed beyond what they hold) */
void ir_dnss_http_error(ir_dnss *s, int status, const char *detail, ir_buf *out)
{
    char body[512];
    int n;
    if (detail)
        n = snprintf(body, sizeof body, "{\"status\":\"%d\",\"detail\":\"%s\"}", status, detail);
    else
        n = snprintf(body, sizeof body, "{\"status\":\"%d\"}", status);
    if (n < 0 || (size_t)n >= sizeof body)
        n = snprintf(body, sizeof body, "{\"status\":\"%d\"}", status);
    respond(s, out, status, "application/json", NULL, body, (size_t)n);
}

static int method_is(const ir_http_request *req, const char *m)
{
    return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

int ir_dnss_http_body_len(const ir_http_request *req, size_t *body_len)
{
    *body_len = 0;
    if (ir_http_find(req->headers, req->n_headers, "transfer-encoding"))
        return 411;
    const ir_http_header *cl = ir_http_find(req->headers, req->n_headers, "content-length");
    if (!cl)
        return 0;
    if (ir_http_find_last(req->headers, req->n_headers, "content-length") != cl || cl->value_len == 0 ||
        cl->value_len > 9)
        return cl->value_len > 9 ? 413 : 400;
    size_t v = 0;
    for (size_t i = 0; i < cl->value_len; i++) {
        if (cl->value[i] < '0' || cl->value[i] > '9')
            return 400;
        v = v * 10 + (size_t)(cl->value[i] - '0');
    }
    if (v > IR_DNSS_MAX_BODY)
        return 413;
    *body_len = v;
    return 0;
}

/* "/pkarr/<z32>": the key text (one segment), or NULL for another path */
static int pkarr_key(const ir_http_request *req, const char **key, size_t *len)
{
    static const char pre[] = "/pkarr/";
    if (req->path_len <= sizeof pre - 1 || memcmp(req->path, pre, sizeof pre - 1) != 0)
        return 0;
    *key = req->path + sizeof pre - 1;
    *len = req->path_len - (sizeof pre - 1);
    return memchr(*key, '/', *len) == NULL;
}

static int decode_key(const char *text, size_t len, uint8_t key[32])
{
    size_t pos;
    return len == 52 && ir_b32_decode(IR_B32_Z, text, len, key, 32, &pos) == 32;
}

/* The client for the rate limiter: in smart mode the first X-Forwarded-For entry, or
 * X-Real-IP, or a Forwarded for= (as tower_governor's SmartIpKeyExtractor), else the
 * connection's address. */
static void limiter_ip(const ir_dnss *s, const ir_http_request *req, const uint8_t peer[16], uint8_t ip[16])
{
    memcpy(ip, peer, 16);
    if (!s->rl || s->rl->mode != IR_DNSS_RATE_SMART)
        return;
    static const char *const names[] = {"x-forwarded-for", "x-real-ip", "forwarded"};
    for (size_t i = 0; i < 3; i++) {
        const ir_http_header *h = ir_http_find(req->headers, req->n_headers, names[i]);
        if (!h)
            continue;
        const char *v = h->value;
        size_t n = h->value_len;
        if (i == 2) { /* Forwarded: for=IP or for="[v6]:port" */
            const char *f = NULL;
            for (size_t k = 0; k + 4 <= n && !f; k++)
                if (strncasecmp(v + k, "for=", 4) == 0)
                    f = v + k + 4;
            if (!f)
                continue;
            n -= (size_t)(f - v);
            v = f;
            if (n && *v == '"') {
                v++;
                n--;
            }
        }
        size_t e = 0;
        while (e < n && v[e] != ',' && v[e] != ';' && v[e] != '"' && v[e] != ' ')
            e++;
        char text[64];
        if (e == 0 || e >= sizeof text)
            continue;
        memcpy(text, v, e);
        text[e] = 0;
        char *t = text;
        if (*t == '[') { /* [v6]:port */
            t++;
            char *rb = strchr(t, ']');
            if (rb)
                *rb = 0;
        }
        iroh_socket_addr a;
        char withport[80];
        snprintf(withport, sizeof withport, strchr(t, ':') ? "[%s]:0" : "%s:0", t);
        if (iroh_socket_addr_parse(withport, &a) == IROH_OK) {
            if (a.family == 4) {
                static const uint8_t pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
                memcpy(ip, pre, 12);
                memcpy(ip + 12, a.ip, 4);
            } else {
                memcpy(ip, a.ip, 16);
            }
            return;
        }
    }
}

static void pkarr_put(ir_dnss *s, const ir_http_request *req, const char *keytext, size_t keylen,
                      const uint8_t *body, size_t body_len, const uint8_t peer[16], uint64_t mono_ns,
                      uint64_t unix_us, ir_buf *out)
{
    uint8_t ip[16];
    limiter_ip(s, req, peer, ip);
    if (!ir_dnss_rl_allow(s->rl, ip, mono_ns)) {
        s->st.pkarr_put_ratelimited++;
        ir_dnss_http_error(s, 429, "too many requests: one PUT every 4 s, burst 2", out);
        return;
    }
    uint8_t key[32];
    iroh_endpoint_id id;
    if (!decode_key(keytext, keylen, key) || iroh_endpoint_id_from_bytes(key, &id) != IROH_OK) {
        s->st.pkarr_put_refused++;
        ir_dnss_http_error(s, 400, "invalid key", out);
        return;
    }
    ir_pkarr_packet *p = malloc(sizeof *p);
    if (!p) {
        ir_dnss_http_error(s, 500, "out of memory", out);
        return;
    }
    int rc = ir_pkarr_from_relay_payload(key, body, body_len, p);
    if (rc != IROH_OK) {
        char d[300];
        snprintf(d, sizeof d, "invalid body payload: %s", iroh_last_error());
        for (char *c = d; *c; c++)
            if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
                *c = '\'';
        s->st.pkarr_put_refused++;
        ir_dnss_http_error(s, 400, d, out);
        free(p);
        return;
    }
    if (unix_us > IR_DNSS_EXPIRY_US && p->timestamp_us < unix_us - IR_DNSS_EXPIRY_US) {
        s->st.pkarr_put_refused++;
        ir_dnss_http_error(s, 400, "invalid body payload: timestamp older than the 7-day expiry", out);
        free(p);
        return;
    }
    rc = ir_dnss_store_put(s->store, p);
    free(p);
    if (rc < 0) {
        ir_dnss_http_error(s, 500, "storage failed", out);
        return;
    }
    if (rc)
        s->st.pkarr_publish_update++;
    else
        s->st.pkarr_publish_noop++;
    respond(s, out, 204, NULL, NULL, NULL, 0);
}

static void pkarr_get(ir_dnss *s, const char *keytext, size_t keylen, uint64_t unix_us, ir_buf *out)
{
    uint8_t key[32];
    if (!decode_key(keytext, keylen, key)) {
        ir_dnss_http_error(s, 400, "invalid key", out);
        return;
    }
    ir_pkarr_packet *p = malloc(sizeof *p);
    if (!p) {
        ir_dnss_http_error(s, 500, "out of memory", out);
        return;
    }
    int rc = ir_dnss_store_get(s->store, key, unix_us, p);
    if (rc < 0) {
        ir_dnss_http_error(s, 500, "storage failed", out);
    } else if (rc == 0) {
        ir_dnss_http_error(s, 404, NULL, out);
    } else {
        uint8_t payload[72 + IR_PKARR_MAX_DNS];
        size_t n = ir_pkarr_relay_payload(p, payload, sizeof payload);
        respond(s, out, 200, "application/x-pkarr-signed-packet", NULL, payload, n);
    }
    free(p);
}

/* The dns= parameter of a query string (base64url without padding, RFC 8484 4.1). */
static long doh_param(const ir_http_request *req, uint8_t *msg, size_t cap)
{
    const char *q = req->query, *end = q ? q + req->query_len : NULL;
    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *e = amp ? amp : end;
        if (e - q >= 4 && memcmp(q, "dns=", 4) == 0)
            return ir_b64_decode(IR_B64_URL, q + 4, (size_t)(e - q - 4), msg, cap);
        q = amp ? amp + 1 : end;
    }
    return -2;
}

static int accepts_dns_message(const ir_http_request *req)
{
    const ir_http_header *h = ir_http_find(req->headers, req->n_headers, "accept");
    if (!h)
        return 1;
    ir_http_list l;
    const char *item;
    size_t n;
    ir_http_list_init(&l, h->value, h->value_len);
    while (ir_http_list_next(&l, &item, &n)) {
        const char *semi = memchr(item, ';', n);
        size_t k = semi ? (size_t)(semi - item) : n;
        while (k && (item[k - 1] == ' ' || item[k - 1] == '\t'))
            k--;
        if ((k == 23 && strncasecmp(item, "application/dns-message", 23) == 0) ||
            (k == 3 && memcmp(item, "*/*", 3) == 0) ||
            (k == 13 && strncasecmp(item, "application/*", 13) == 0))
            return 1;
    }
    return 0;
}

static void doh(ir_dnss *s, const ir_http_request *req, const uint8_t *body, size_t body_len,
                uint64_t unix_us, ir_buf *out)
{
    uint8_t *msg = malloc(65536), *ans = malloc(65536);
    if (!msg || !ans) {
        free(msg);
        free(ans);
        ir_dnss_http_error(s, 500, "out of memory", out);
        return;
    }
    long len;
    if (method_is(req, "GET")) {
        if (!accepts_dns_message(req)) {
            ir_dnss_http_error(s, 406, "only application/dns-message is served", out);
            goto done;
        }
        len = doh_param(req, msg, 65535);
        if (len < 0) {
            ir_dnss_http_error(s, 400, len == -2 ? "missing dns parameter" : "invalid base64url in dns parameter", out);
            goto done;
        }
    } else {
        const ir_http_header *ct = ir_http_find(req->headers, req->n_headers, "content-type");
        if (!ct || ct->value_len < 23 || strncasecmp(ct->value, "application/dns-message", 23) != 0) {
            ir_dnss_http_error(s, 415, "Content-Type must be application/dns-message", out);
            goto done;
        }
        memcpy(msg, body, body_len);
        len = (long)body_len;
    }
    size_t alen = 0;
    uint32_t min_ttl;
    if (!ir_dnss_answer(s, IR_DNSS_HTTPS, msg, (size_t)len, unix_us, ans, 65535, &alen, &min_ttl)) {
        ir_dnss_http_error(s, 400, "not a DNS query", out);
        goto done;
    }
    char extra[64] = "";
    if (min_ttl != UINT32_MAX)
        snprintf(extra, sizeof extra, "Cache-Control: s-maxage=%u\r\n", min_ttl);
    respond(s, out, 200, "application/dns-message", extra[0] ? extra : NULL, ans, alen);
done:
    free(msg);
    free(ans);
}

void ir_dnss_http(ir_dnss *s, const ir_http_request *req, const uint8_t *body, size_t body_len,
                  const uint8_t client_ip[16], uint64_t mono_ns, uint64_t unix_us, ir_buf *out)
{
    const char *key;
    size_t keylen;
    if (method_is(req, "OPTIONS")) { /* CORS preflight: any origin, GET/POST/PUT */
        respond(s, out, 204, NULL,
                "Access-Control-Allow-Methods: GET, POST, PUT\r\nAccess-Control-Allow-Headers: *\r\n", NULL, 0);
    } else if (pkarr_key(req, &key, &keylen)) {
        if (method_is(req, "PUT"))
            pkarr_put(s, req, key, keylen, body, body_len, client_ip, mono_ns, unix_us, out);
        else if (method_is(req, "GET"))
            pkarr_get(s, key, keylen, unix_us, out);
        else
            ir_dnss_http_error(s, 405, NULL, out);
    } else if (req->path_len == 10 && memcmp(req->path, "/dns-query", 10) == 0) {
        if (method_is(req, "GET") || method_is(req, "POST"))
            doh(s, req, body, body_len, unix_us, out);
        else
            ir_dnss_http_error(s, 405, NULL, out);
    } else if ((req->path_len == 8 && memcmp(req->path, "/healthz", 8) == 0) ||
               (req->path_len == 12 && memcmp(req->path, "/healthcheck", 12) == 0)) {
        if (method_is(req, "GET"))
            respond(s, out, 200, "text/plain", NULL, "OK", 2);
        else
            ir_dnss_http_error(s, 405, NULL, out);
    } else {
        ir_dnss_http_error(s, 404, NULL, out);
    }
}
