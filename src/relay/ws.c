#include "ws.h"

#include <nettle/sha1.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "handshake.h"
#include "text.h"

/* ---- parser ---------------------------------------------------------------------------- */

void ir_ws_parser_init(ir_ws_parser *p, ir_ws_role role, size_t max_message)
{
    memset(p, 0, sizeof *p);
    p->role = role;
    p->max_message = max_message;
}

void ir_ws_parser_free(ir_ws_parser *p)
{
    free(p->msg);
    p->msg = NULL;
    p->msg_len = p->msg_cap = 0;
}

static int is_control(uint8_t op)
{
    return (op & 0x8) != 0;
}

static int perr(ir_ws_parser *p, int code, const char *why)
{
    p->failed = code;
    return ir_fail(code, "WebSocket: %s", why);
}

/* Checks the first two header bytes and sets hdr_need. */
static int check_first(ir_ws_parser *p)
{
    uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
    uint8_t fin = b0 >> 7, op = b0 & 0x0f, masked = b1 >> 7, len7 = b1 & 0x7f;
    if (b0 & 0x70)
        return perr(p, IROH_ERR_INVALID_ARGUMENT, "reserved bits set");
    if (op != IR_WS_OP_CONT && op != IR_WS_OP_TEXT && op != IR_WS_OP_BINARY &&
        op != IR_WS_OP_CLOSE && op != IR_WS_OP_PING && op != IR_WS_OP_PONG)
        return perr(p, IROH_ERR_INVALID_ARGUMENT, "unknown opcode");
    if (is_control(op)) {
        if (!fin)
            return perr(p, IROH_ERR_INVALID_ARGUMENT, "fragmented control frame");
        if (len7 > IR_WS_MAX_CONTROL)
            return perr(p, IROH_ERR_INVALID_ARGUMENT, "control frame longer than 125 bytes");
        if (op == IR_WS_OP_CLOSE && len7 == 1)
            return perr(p, IROH_ERR_INVALID_ARGUMENT, "close frame with a 1-byte payload");
    } else if (p->msg_opcode == 0) {
        if (op == IR_WS_OP_CONT)
            return perr(p, IROH_ERR_INVALID_ARGUMENT, "continuation without a message");
    } else if (op != IR_WS_OP_CONT) {
        return perr(p, IROH_ERR_INVALID_ARGUMENT, "new message inside a fragmented one");
    }
    if (p->role == IR_WS_ROLE_SERVER && !masked)
        return perr(p, IROH_ERR_INVALID_ARGUMENT, "unmasked frame from a client");
    if (p->role == IR_WS_ROLE_CLIENT && masked)
        return perr(p, IROH_ERR_INVALID_ARGUMENT, "masked frame from a server");
    p->hdr_need = (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0));
    return IROH_OK;
}

/* The header is complete: extended length, limits, mask. */
static int finish_header(ir_ws_parser *p)
{
    uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
    uint8_t len7 = b1 & 0x7f;
    uint64_t len = len7;
    size_t off = 2;
    if (len7 == 126) {
        len = (uint64_t)p->hdr[2] << 8 | p->hdr[3];
        off = 4;
        if (len <= 125)
            return perr(p, IROH_ERR_INVALID_ARGUMENT, "non-minimal payload length");
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p->hdr[2 + i];
        off = 10;
        if (len >> 63)
            return perr(p, IROH_ERR_INVALID_ARGUMENT, "payload length with the top bit set");
        if (len <= 0xffff)
            return perr(p, IROH_ERR_INVALID_ARGUMENT, "non-minimal payload length");
    }
    p->fin = b0 >> 7;
    p->opcode = b0 & 0x0f;
    p->masked = b1 >> 7;
    if (p->masked)
        memcpy(p->mask, p->hdr + off, 4);
    if (len > p->max_message)
        return perr(p, IROH_ERR_TOO_LONG, "frame payload over the message limit");
    if (p->opcode == IR_WS_OP_CONT && p->msg_len + len > p->max_message)
        return perr(p, IROH_ERR_TOO_LONG, "message over the size limit");
    p->frame_len = len;
    p->frame_got = 0;
    p->in_frame = 1;
    p->hdr_have = p->hdr_need = 0;
    if (is_control(p->opcode)) {
        p->msg_in_buf = 0;
    } else if (p->opcode == IR_WS_OP_CONT) {
        p->msg_in_buf = 1;
    } else {
        /* first frame of a message; a fragmented one is assembled in msg */
        p->msg_len = 0;
        p->msg_in_buf = !p->fin;
        if (!p->fin)
            p->msg_opcode = p->opcode;
    }
    return IROH_OK;
}

static int reserve(ir_ws_parser *p, size_t need)
{
    if (need <= p->msg_cap)
        return IROH_OK;
    size_t cap = p->msg_cap ? p->msg_cap * 2 : 4096;
    while (cap < need)
        cap *= 2;
    if (cap > p->max_message && need <= p->max_message)
        cap = p->max_message;
    uint8_t *m = realloc(p->msg, cap);
    if (!m)
        return perr(p, IROH_ERR_NO_MEMORY, "out of memory");
    p->msg = m;
    p->msg_cap = cap;
    return IROH_OK;
}

static int valid_close_code(uint16_t c)
{
    if (c >= 3000 && c <= 4999)
        return 1;
    return c >= 1000 && c <= 1015 && c != 1004 && c != 1005 && c != 1006 && c != 1015;
}

/* A frame's payload is complete (in place or in a buffer). Returns 1 with a message,
 * 0 for a non-final fragment, or an error. */
static int complete_frame(ir_ws_parser *p, const uint8_t *payload, size_t n, ir_ws_message *m)
{
    memset(m, 0, sizeof *m);
    if (is_control(p->opcode)) {
        m->opcode = p->opcode;
        m->data = payload;
        m->len = n;
        if (p->opcode == IR_WS_OP_CLOSE) {
            if (n >= 2) {
                uint16_t code = (uint16_t)(payload[0] << 8 | payload[1]);
                if (!valid_close_code(code))
                    return perr(p, IROH_ERR_INVALID_ARGUMENT, "invalid close code");
                if (!ir_utf8_valid(payload + 2, n - 2))
                    return perr(p, IROH_ERR_INVALID_ARGUMENT, "close reason is not UTF-8");
                m->close_code = code;
                m->close_reason = payload + 2;
                m->close_reason_len = n - 2;
            } else {
                m->close_reason = payload;
            }
            p->failed = IROH_ERR_CLOSED;
        }
        return 1;
    }
    if (!p->fin)
        return 0;
    uint8_t op = p->opcode;
    if (p->msg_in_buf) {
        payload = p->msg ? p->msg : p->ctl; /* ctl: any valid pointer for 0 bytes */
        n = p->msg_len;
        if (op == IR_WS_OP_CONT)
            op = p->msg_opcode;
        p->msg_opcode = 0;
        p->msg_len = 0; /* the buffer stays valid until the next feed */
    }
    if (op == IR_WS_OP_TEXT && !ir_utf8_valid(payload, n))
        return perr(p, IROH_ERR_INVALID_ARGUMENT, "text message is not UTF-8");
    m->opcode = op;
    m->data = payload;
    m->len = n;
    return 1;
}

int ir_ws_parser_feed(ir_ws_parser *p, uint8_t *data, size_t len, size_t *consumed,
                      ir_ws_message *msg)
{
    size_t pos = 0;
    int rc;
    *consumed = 0;
    if (p->failed)
        return p->failed == IROH_ERR_CLOSED
                   ? ir_fail(IROH_ERR_CLOSED, "WebSocket: data after a close message")
                   : p->failed;
    for (;;) {
        if (!p->in_frame) {
            if (pos == len)
                break;
            while (p->hdr_have < 2 && pos < len)
                p->hdr[p->hdr_have++] = data[pos++];
            if (p->hdr_have < 2)
                break;
            if (p->hdr_need == 0 && (rc = check_first(p)) < 0) {
                *consumed = pos;
                return rc;
            }
            while (p->hdr_have < p->hdr_need && pos < len)
                p->hdr[p->hdr_have++] = data[pos++];
            if (p->hdr_have < p->hdr_need)
                break;
            if ((rc = finish_header(p)) < 0) {
                *consumed = pos;
                return rc;
            }
        }
        size_t avail = len - pos;
        uint64_t need = p->frame_len - p->frame_got;
        const uint8_t *payload;
        if (p->frame_got == 0 && !p->msg_in_buf && avail >= need) {
            /* the whole payload is here: use it in place */
            uint8_t *pl = data + pos;
            if (p->masked)
                ir_ws_mask(pl, (size_t)need, p->mask, 0);
            pos += (size_t)need;
            payload = pl;
        } else {
            size_t take = avail < need ? avail : (size_t)need;
            if (!is_control(p->opcode) && !p->msg_in_buf) {
                /* an unfragmented message split across feeds */
                p->msg_in_buf = 1;
                p->msg_len = 0;
            }
            if (take) {
                uint8_t *dst;
                if (is_control(p->opcode)) {
                    dst = p->ctl + p->frame_got;
                } else {
                    if ((rc = reserve(p, p->msg_len + take)) < 0) {
                        *consumed = pos;
                        return rc;
                    }
                    dst = p->msg + p->msg_len;
                    p->msg_len += take;
                }
                memcpy(dst, data + pos, take);
                if (p->masked)
                    ir_ws_mask(dst, take, p->mask, p->frame_got);
            }
            p->frame_got += take;
            pos += take;
            if (p->frame_got < p->frame_len)
                break;
            payload = is_control(p->opcode) ? p->ctl : NULL; /* data: complete_frame uses msg */
        }
        p->in_frame = 0;
        rc = complete_frame(p, payload, (size_t)p->frame_len, msg);
        if (rc != 0) {
            *consumed = pos;
            return rc;
        }
    }
    *consumed = pos;
    return 0;
}

/* ---- writer ---------------------------------------------------------------------------- */

size_t ir_ws_header_len(uint64_t len, int masked)
{
    return (len <= 125 ? 2 : len <= 0xffff ? 4 : 10) + (masked ? 4 : 0);
}

size_t ir_ws_write_header(uint8_t *out, int fin, uint8_t opcode, uint64_t len, const uint8_t mask[4])
{
    size_t n = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    uint8_t m = mask ? 0x80 : 0;
    if (len <= 125) {
        out[1] = (uint8_t)(m | len);
    } else if (len <= 0xffff) {
        out[1] = m | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = m | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void ir_ws_mask(uint8_t *data, size_t len, const uint8_t key[4], uint64_t offset)
{
    size_t i = 0;
    /* byte by byte up to a key boundary, then 8 bytes at a time */
    for (; i < len && ((offset + i) & 3) != 0; i++)
        data[i] ^= key[(offset + i) & 3];
    if (len - i >= 8) {
        uint8_t kk[8];
        uint64_t w;
        for (int j = 0; j < 8; j++)
            kk[j] = key[j & 3];
        memcpy(&w, kk, 8);
        for (; len - i >= 8; i += 8) {
            uint64_t d;
            memcpy(&d, data + i, 8);
            d ^= w;
            memcpy(data + i, &d, 8);
        }
    }
    for (; i < len; i++)
        data[i] ^= key[(offset + i) & 3];
}

int ir_ws_write_frame(uint8_t *out, size_t cap, uint8_t opcode, const uint8_t *payload, size_t len,
                      const uint8_t mask[4], size_t *written)
{
    *written = 0;
    if (is_control(opcode) && len > IR_WS_MAX_CONTROL)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "WebSocket control frame over 125 bytes");
    size_t h = ir_ws_header_len(len, mask != NULL);
    if (cap < h || cap - h < len)
        return ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "WebSocket frame needs %zu bytes", h + len);
    ir_ws_write_header(out, 1, opcode, len, mask);
    if (len)
        memmove(out + h, payload, len);
    if (mask)
        ir_ws_mask(out + h, len, mask, 0);
    *written = h + len;
    return IROH_OK;
}

int ir_ws_write_close(uint8_t *out, size_t cap, uint16_t code, const char *reason,
                      const uint8_t mask[4], size_t *written)
{
    uint8_t pl[IR_WS_MAX_CONTROL];
    size_t n = 0;
    size_t rlen = reason ? strlen(reason) : 0;
    *written = 0;
    if (code) {
        if (!valid_close_code(code))
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid close code %u", code);
        if (rlen > IR_WS_MAX_CONTROL - 2 || !ir_utf8_valid((const uint8_t *)reason, rlen))
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "close reason too long or not UTF-8");
        pl[0] = (uint8_t)(code >> 8);
        pl[1] = (uint8_t)code;
        if (rlen)
            memcpy(pl + 2, reason, rlen);
        n = 2 + rlen;
    } else if (rlen) {
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "close reason without a code");
    }
    return ir_ws_write_frame(out, cap, IR_WS_OP_CLOSE, pl, n, mask, written);
}

/* ---- upgrade --------------------------------------------------------------------------- */

void ir_ws_make_key(const uint8_t random16[16], char out[IR_WS_KEY_LEN + 1])
{
    ir_b64_encode(IR_B64_STD, random16, 16, out);
}

static void accept_digest(const char *key, size_t key_len, uint8_t digest[SHA1_DIGEST_SIZE])
{
    struct sha1_ctx ctx;
    sha1_init(&ctx);
    sha1_update(&ctx, key_len, (const uint8_t *)key);
    sha1_update(&ctx, sizeof IR_WS_GUID - 1, (const uint8_t *)IR_WS_GUID);
    sha1_digest(&ctx, SHA1_DIGEST_SIZE, digest);
}

void ir_ws_accept_key(const char *key, size_t key_len, char out[IR_WS_ACCEPT_LEN + 1])
{
    uint8_t d[SHA1_DIGEST_SIZE];
    accept_digest(key, key_len, d);
    ir_b64_encode(IR_B64_STD, d, sizeof d, out);
}

/* An output cursor over a caller buffer; overflow is sticky. */
typedef struct out_buf {
    char *p;
    size_t cap, len;
    int overflow;
} out_buf;

static void put(out_buf *o, const char *s, size_t n)
{
    if (o->overflow || o->cap - o->len < n) {
        o->overflow = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(out_buf *o, const char *s)
{
    put(o, s, strlen(s));
}

static void header(out_buf *o, const char *name, const char *value)
{
    puts_(o, name);
    put(o, ": ", 2);
    puts_(o, value);
    put(o, "\r\n", 2);
}

/* http's HeaderValue::from_str rule: bytes >= 0x20 except DEL, or tab */
static int value_ok(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

static int finish(out_buf *o, size_t *written)
{
    if (o->overflow)
        return ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "HTTP message does not fit");
    *written = o->len;
    return IROH_OK;
}

int ir_ws_build_request(const ir_ws_request_opts *r, char *out, size_t cap, size_t *written)
{
    *written = 0;
    const char *path = r->path ? r->path : IR_RELAY_PATH;
    const char *protocols = r->protocols ? r->protocols : IR_RELAY_PROTOCOLS;
    if (!r->host || !*r->host || !r->key || !*r->key)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "upgrade request needs a host and a key");
    for (const char *s = r->host; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid character in host");
    if (path[0] != '/')
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "request path must start with '/'");
    for (const char *s = path; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid character in path");
    if (!value_ok(r->key) || !value_ok(protocols) || (r->auth_token && !value_ok(r->auth_token)) ||
        (r->client_auth && !value_ok(r->client_auth)))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid character in a header value");
    out_buf o = {out, cap, 0, 0};
    puts_(&o, "GET ");
    puts_(&o, path);
    puts_(&o, " HTTP/1.1\r\n");
    header(&o, "Host", r->host);
    header(&o, "Upgrade", "websocket");
    header(&o, "Connection", "Upgrade");
    header(&o, "Sec-WebSocket-Key", r->key);
    header(&o, "Sec-WebSocket-Version", "13");
    header(&o, "sec-websocket-protocol", protocols);
    if (r->auth_token) {
        puts_(&o, "authorization: Bearer ");
        puts_(&o, r->auth_token);
        put(&o, "\r\n", 2);
    }
    if (r->client_auth)
        header(&o, IR_RELAY_CLIENT_AUTH_HEADER, r->client_auth);
    put(&o, "\r\n", 2);
    return finish(&o, written);
}

static int reject(ir_ws_upgrade *u, int send_version, const char *fmt, ...) IR_PRINTF(3, 4);

static int reject(ir_ws_upgrade *u, int send_version, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->error, sizeof u->error, fmt, ap);
    va_end(ap);
    u->status = 400;
    u->send_version = send_version;
    return ir_fail(IROH_ERR_HANDSHAKE, "relay upgrade refused: %s", u->error);
}

static int protocol_version(const char *s, size_t n)
{
    if (n == sizeof IR_RELAY_PROTO_V2 - 1 && memcmp(s, IR_RELAY_PROTO_V2, n) == 0)
        return IR_RELAY_V2;
    if (n == sizeof IR_RELAY_PROTO_V1 - 1 && memcmp(s, IR_RELAY_PROTO_V1, n) == 0)
        return IR_RELAY_V1;
    return 0;
}

int ir_ws_check_upgrade(const ir_http_request *req, ir_ws_upgrade *u)
{
    memset(u, 0, sizeof *u);
    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0 ||
        req->path_len != sizeof IR_RELAY_PATH - 1 ||
        memcmp(req->path, IR_RELAY_PATH, req->path_len) != 0) {
        u->status = 404;
        snprintf(u->error, sizeof u->error, "Not Found");
        return ir_fail(IROH_ERR_UNSUPPORTED, "not a relay upgrade request");
    }
    const ir_http_header *h = req->headers;
    size_t n = req->n_headers;
    if (req->minor_version == 0)
        return reject(u, 0, "upgrades need HTTP/1.1");
    const ir_http_header *up = ir_http_find(h, n, "upgrade");
    if (!up)
        return reject(u, 0, "missing header: upgrade");
    if (!ir_http_value_is(up, "websocket"))
        return reject(u, 0, "invalid header value for upgrade: value must be websocket");
    const ir_http_header *key = ir_http_find(h, n, "sec-websocket-key");
    if (!key)
        return reject(u, 0, "missing header: sec-websocket-key");
    const ir_http_header *ver = ir_http_find(h, n, "sec-websocket-version");
    if (!ver)
        return reject(u, 0, "missing header: sec-websocket-version");
    if (!ir_http_value_is(ver, "13"))
        return reject(u, 1,
                      "invalid header value for sec-websocket-version: unsupported websocket "
                      "version, only supporting 13");
    const ir_http_header *proto = ir_http_find(h, n, "sec-websocket-protocol");
    if (!proto)
        return reject(u, 0, "missing header: sec-websocket-protocol");
    if (!ir_http_visible_ascii(proto->value, proto->value_len))
        return reject(u, 0, "invalid header value for sec-websocket-protocol: header value is "
                            "not ascii");
    int best = 0;
    const char *item;
    size_t item_len;
    ir_http_list l;
    ir_http_list_init(&l, proto->value, proto->value_len);
    while (ir_http_list_next(&l, &item, &item_len)) {
        int v = protocol_version(item, item_len);
        if (v > best)
            best = v;
    }
    if (!best)
        return reject(u, 0,
                      "invalid header value for sec-websocket-protocol: unsupported relay version: "
                      "we support %s but you only provide %.*s",
                      IR_RELAY_PROTOCOLS, (int)(proto->value_len > 200 ? 200 : proto->value_len),
                      proto->value);
    u->version = best;
    u->key = key->value;
    u->key_len = key->value_len;
    u->client_auth = ir_http_find(h, n, IR_RELAY_CLIENT_AUTH_HEADER);
    u->authorization = ir_http_find(h, n, "authorization");
    return IROH_OK;
}

static void common_headers(out_buf *o)
{
    header(o, "strict-transport-security", IR_RELAY_HSTS);
    header(o, "content-security-policy", IR_RELAY_CSP);
}

int ir_ws_build_response_101(const ir_ws_upgrade *u, char *out, size_t cap, size_t *written)
{
    char accept[IR_WS_ACCEPT_LEN + 1];
    *written = 0;
    if (u->version != IR_RELAY_V1 && u->version != IR_RELAY_V2)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "no negotiated relay version");
    ir_ws_accept_key(u->key, u->key_len, accept);
    out_buf o = {out, cap, 0, 0};
    puts_(&o, "HTTP/1.1 101 Switching Protocols\r\n");
    common_headers(&o);
    header(&o, "upgrade", "websocket");
    header(&o, "sec-websocket-accept", accept);
    header(&o, "sec-websocket-protocol", u->version == IR_RELAY_V2 ? IR_RELAY_PROTO_V2 : IR_RELAY_PROTO_V1);
    header(&o, "connection", "upgrade");
    put(&o, "\r\n", 2);
    return finish(&o, written);
}

int ir_ws_build_reject(const ir_ws_upgrade *u, char *out, size_t cap, size_t *written)
{
    char line[64];
    *written = 0;
    int status = u->status ? u->status : 400;
    const char *phrase = status == 404 ? "Not Found" : "Bad Request";
    size_t body = strlen(u->error);
    out_buf o = {out, cap, 0, 0};
    snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, phrase);
    puts_(&o, line);
    common_headers(&o);
    if (u->send_version)
        header(&o, "sec-websocket-version", "13");
    header(&o, "connection", "close");
    snprintf(line, sizeof line, "%zu", body);
    header(&o, "content-length", line);
    put(&o, "\r\n", 2);
    put(&o, u->error, body);
    return finish(&o, written);
}

int ir_ws_check_response(const ir_http_response *resp, const char *key, size_t key_len,
                         int *version)
{
    *version = 0;
    if (resp->status != 101)
        return ir_fail(IROH_ERR_HANDSHAKE,
                       "expected HTTP 101 Switching Protocols, got status code %d", resp->status);
    const ir_http_header *acc =
        ir_http_find(resp->headers, resp->n_headers, "sec-websocket-accept");
    if (!acc)
        return ir_fail(IROH_ERR_HANDSHAKE, "missing required header: Sec-WebSocket-Accept");
    uint8_t got[SHA1_DIGEST_SIZE], want[SHA1_DIGEST_SIZE];
    accept_digest(key, key_len, want);
    if (ir_b64_decode(IR_B64_STD, acc->value, acc->value_len, got, sizeof got) != sizeof got ||
        memcmp(got, want, sizeof got) != 0)
        return ir_fail(IROH_ERR_HANDSHAKE, "mismatching Sec-WebSocket-Accept header");
    const ir_http_header *proto =
        ir_http_find_last(resp->headers, resp->n_headers, "sec-websocket-protocol");
    int v = proto && ir_http_visible_ascii(proto->value, proto->value_len)
                ? protocol_version(proto->value, proto->value_len)
                : 0;
    if (!v)
        return ir_fail(IROH_ERR_HANDSHAKE, "bad relay protocol version header: %.*s",
                       proto ? (int)(proto->value_len > 100 ? 100 : proto->value_len) : 6,
                       proto ? proto->value : "(none)");
    *version = v;
    return IROH_OK;
}
