/* HTTP/1.1 in the relay server core: request heads, the small pages (/, /ping,
 * /generate_204, /healthz, /robots.txt), keep-alive, and the WebSocket upgrade on
 * GET /relay (the keying-material header, the challenge). */
#include "server_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"
#include "handshake.h"

/* Largest WebSocket message taken from a client: a relay frame (a type varint of up to 8
 * bytes and a body of up to 65536) - a longer one is a protocol error either way, so
 * there is no point in buffering up to the 1 MiB WebSocket limit first. */
#define WS_MAX_MESSAGE (IR_RELAY_MAX_PACKET_SIZE + 8)

static const char INDEX_HTML[] = "<html><body>\n<h1>Iroh Relay</h1>\n<p>\n  This is an <a "
                                 "href=\"https://iroh.computer/\">Iroh</a> Relay server.\n</p>\n";

static const char ROBOTS_TXT[] = "User-agent: *\nDisallow: /\n";

/* Queues a whole response. extra: more header lines, each ending in CRLF (or NULL). */
static void respond(ir_relay_core *core, ir_relay_conn *c, int status, const char *phrase,
                    const char *extra, const char *ctype, const char *body, size_t body_len,
                    int head_only, int keep_alive, uint64_t now)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\n"
                     "strict-transport-security: " IR_RELAY_HSTS "\r\n"
                     "content-security-policy: " IR_RELAY_CSP "\r\n"
                     "%s%s%s%s",
                     status, phrase, extra ? extra : "", ctype ? "content-type: " : "",
                     ctype ? ctype : "", ctype ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof buf)
        goto fail;
    if (status != 204 && status != 304) {
        int m = snprintf(buf + n, sizeof buf - (size_t)n, "content-length: %zu\r\n", body_len);
        if (m < 0 || (size_t)m >= sizeof buf - (size_t)n)
            goto fail;
        n += m;
    }
    int m = snprintf(buf + n, sizeof buf - (size_t)n, "%s\r\n", keep_alive ? "" : "connection: close\r\n");
    if (m < 0 || (size_t)m >= sizeof buf - (size_t)n)
        goto fail;
    n += m;
    if (!head_only && body_len) {
        if (body_len > sizeof buf - (size_t)n)
            goto fail;
        memcpy(buf + n, body, body_len);
        n += (int)body_len;
    }
    if (ir_rs_send_raw(core, c, buf, (size_t)n, now) == 0)
        return;
fail:
    ir_rs_conn_close(core, c, now, "cannot build a response");
}

static int is_challenge_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '-' || ch == '_';
}

size_t ir_rs_challenge_response(const ir_http_request *req, char *out, size_t cap)
{
    out[0] = 0;
    const ir_http_header *ch = ir_http_find(req->headers, req->n_headers, "x-iroh-challenge");
    if (!ch || ch->value_len == 0 || ch->value_len >= 64)
        return 0;
    for (size_t i = 0; i < ch->value_len; i++)
        if (!is_challenge_char(ch->value[i]))
            return 0;
    int n = snprintf(out, cap, "x-iroh-response: response %.*s\r\n", (int)ch->value_len, ch->value);
    if (n < 0 || (size_t)n >= cap) {
        out[0] = 0;
        return 0;
    }
    return (size_t)n;
}

static int path_is(const ir_http_request *req, const char *p)
{
    return req->path_len == strlen(p) && memcmp(req->path, p, req->path_len) == 0;
}

/* The refused upgrade: 400 with upstream's text (or a 404 routed elsewhere). */
static void reject_upgrade(ir_relay_core *core, ir_relay_conn *c, const ir_ws_upgrade *u, uint64_t now)
{
    char buf[1024];
    size_t n;
    core->st.upgrades_refused++;
    if (ir_ws_build_reject(u, buf, sizeof buf, &n) != IROH_OK || ir_rs_send_raw(core, c, buf, n, now) < 0) {
        ir_rs_conn_close(core, c, now, "cannot build a response");
        return;
    }
    ir_rs_conn_finish(core, c, now);
}

static void upgrade(ir_relay_core *core, ir_relay_conn *c, const ir_ws_upgrade *u, size_t leftover,
                    uint64_t now)
{
    if (leftover) {
        /* the client talked before it saw the 101 (spec 1.3) */
        ir_ws_upgrade bad = *u;
        bad.status = 400;
        bad.send_version = 0;
        snprintf(bad.error, sizeof bad.error, "unexpected bytes before the handshake");
        reject_upgrade(core, c, &bad, now);
        return;
    }
    int km_ok = 0;
    ir_relay_km_auth km;
    if (u->client_auth) {
        /* spec 2.3: undecodable drops the connection; a decodable one is checked against
         * the TLS exporter when there is one, else the challenge is used */
        if (ir_relay_km_auth_decode(u->client_auth->value, u->client_auth->value_len, &km) != IROH_OK) {
            core->st.handshake_failures++;
            ir_rs_conn_close(core, c, now, "undecodable client auth header");
            return;
        }
        uint8_t material[IR_RELAY_EXPORT_LEN];
        if (c->exporter && c->exporter(c->exporter_ctx, km.key.bytes, material) == 0 &&
            ir_relay_km_auth_verify(&km, material) == IROH_OK)
            km_ok = 1;
    }
    if (core->cfg.access && u->authorization) {
        const ir_http_header *a = u->authorization;
        if (a->value_len > 7 && strncasecmp(a->value, "Bearer ", 7) == 0) {
            c->token = malloc(a->value_len - 7 + 1);
            if (c->token) {
                c->token_len = a->value_len - 7;
                memcpy(c->token, a->value + 7, c->token_len);
                c->token[c->token_len] = 0;
            }
        }
    }
    char buf[1024];
    size_t n;
    if (ir_ws_build_response_101(u, buf, sizeof buf - 32, &n) != IROH_OK) {
        ir_rs_conn_close(core, c, now, "cannot build the 101");
        return;
    }
    c->version = u->version;
    if (!km_ok) {
        ir_relay_frame f;
        core->rnd(core->rnd_ctx, c->challenge, sizeof c->challenge);
        ir_relay_challenge_frame(c->challenge, &f);
        size_t fl = ir_relay_frame_encoded_len(&f), w;
        n += ir_ws_write_header((uint8_t *)buf + n, 1, IR_WS_OP_BINARY, fl, NULL);
        ir_relay_frame_encode(&f, (uint8_t *)buf + n, fl, &w);
        n += w;
    }
    if (ir_rs_send_raw(core, c, buf, n, now) < 0) {
        ir_rs_conn_close(core, c, now, "out of memory");
        return;
    }
    /* u points into the request head: done with it */
    free(c->http);
    c->http = NULL;
    c->state = CS_AUTH;
    ir_rs_rl_start(core, c, now);
    ir_ws_parser_init(&c->ws, IR_WS_ROLE_SERVER, WS_MAX_MESSAGE);
    c->ws_init = 1;
    c->t[T_HEAD] = 0;
    c->t[T_HANDSHAKE] = c->request_at + core->hs_timeout;
    core->st.upgrades++;
    if (km_ok) {
        c->key = km.key;
        ir_rs_authorized(core, c, now);
    }
}

/* A complete request head is in c->http; leftover bytes of this read follow it. */
static void handle_request(ir_relay_core *core, ir_relay_conn *c, size_t leftover, uint64_t now)
{
    ir_http_request req;
    core->st.http_requests++;
    int rc = ir_http_parse_request(c->http->buf, c->http->len, &req);
    if (rc != IROH_OK) {
        core->st.http_bad++;
        if (rc == IROH_ERR_TOO_LONG)
            respond(core, c, 431, "Request Header Fields Too Large", NULL, "text/plain",
                    "Too many headers", 16, 0, 0, now);
        else
            respond(core, c, 400, "Bad Request", NULL, "text/plain", "Bad Request", 11, 0, 0, now);
        ir_rs_conn_finish(core, c, now);
        return;
    }
    if (path_is(&req, IR_RELAY_PATH)) {
        ir_ws_upgrade u;
        rc = ir_ws_check_upgrade(&req, &u);
        if (rc == IROH_OK) {
            upgrade(core, c, &u, leftover, now);
            return;
        }
        if (rc != IROH_ERR_UNSUPPORTED) {
            reject_upgrade(core, c, &u, now);
            return;
        }
        /* not a GET: a plain 404 below */
    }
    int is_get = req.method_len == 3 && memcmp(req.method, "GET", 3) == 0;
    int is_head = req.method_len == 4 && memcmp(req.method, "HEAD", 4) == 0;
    const ir_http_header *conn_h = ir_http_find(req.headers, req.n_headers, "connection");
    const ir_http_header *cl = ir_http_find(req.headers, req.n_headers, "content-length");
    const ir_http_header *te = ir_http_find(req.headers, req.n_headers, "transfer-encoding");
    /* keep-alive for HTTP/1.1 requests without a body; bodies are never read */
    int keep = req.minor_version == 1 && !(conn_h && ir_http_has_token(conn_h, "close")) && !te &&
               !(cl && !ir_http_value_is(cl, "0"));
    if (!is_get && !is_head) {
        respond(core, c, 404, "Not Found", NULL, NULL, "Not Found", 9, 0, keep, now);
    } else if (path_is(&req, "/") || path_is(&req, "/index.html")) {
        respond(core, c, 200, "OK", NULL, "text/html; charset=utf-8", INDEX_HTML,
                sizeof INDEX_HTML - 1, is_head, keep, now);
    } else if (path_is(&req, "/ping")) {
        respond(core, c, 200, "OK", "access-control-allow-origin: *\r\n", NULL, "", 0, is_head, keep,
                now);
    } else if (path_is(&req, "/generate_204")) {
        char extra[128];
        ir_rs_challenge_response(&req, extra, sizeof extra);
        respond(core, c, 204, "No Content", extra, NULL, "", 0, is_head, keep, now);
    } else if (path_is(&req, "/healthz")) {
        char body[160];
        int n = snprintf(body, sizeof body, "{\"status\":\"ok\",\"version\":\"%s\",\"git_hash\":\"unknown\"}",
                         iroh_version());
        respond(core, c, 200, "OK", NULL, "application/json", body, (size_t)n, is_head, keep, now);
    } else if (path_is(&req, "/robots.txt")) {
        respond(core, c, 200, "OK", NULL, "text/plain; charset=utf-8", ROBOTS_TXT,
                sizeof ROBOTS_TXT - 1, is_head, keep, now);
    } else {
        respond(core, c, 404, "Not Found", NULL, NULL, "Not Found", 9, is_head, keep, now);
    }
    if (c->state != CS_HTTP)
        return;
    if (!keep) {
        ir_rs_conn_finish(core, c, now);
        return;
    }
    /* the next request on this connection */
    ir_http_reader_init(c->http);
    c->http_started = 0;
    c->t[T_HEAD] = now + core->keepalive_idle;
}

void ir_rs_http_input(ir_relay_core *core, ir_relay_conn *c, const uint8_t *data, size_t len,
                       uint64_t now)
{
    while (len > 0 && c->state == CS_HTTP) {
        if (!c->http) {
            c->http = malloc(sizeof *c->http);
            if (!c->http) {
                ir_rs_conn_close(core, c, now, "out of memory");
                return;
            }
            ir_http_reader_init(c->http);
        }
        if (!c->http_started) {
            c->http_started = 1;
            c->request_at = now;
            c->t[T_HEAD] = now + core->header_timeout;
        }
        if (ctl_full(core, c)) {
            /* pipelining far ahead of reading the responses */
            ir_rs_conn_close(core, c, now, "too many pipelined requests");
            return;
        }
        size_t used;
        int rc = ir_http_reader_feed(c->http, data, len, &used);
        data += used;
        len -= used;
        if (rc < 0) {
            core->st.http_bad++;
            respond(core, c, 431, "Request Header Fields Too Large", NULL, "text/plain",
                    "Request head too large", 22, 0, 0, now);
            ir_rs_conn_finish(core, c, now);
            return;
        }
        if (rc == 0)
            return;
        handle_request(core, c, len, now);
    }
}
