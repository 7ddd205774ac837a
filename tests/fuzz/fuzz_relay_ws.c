/* The WebSocket parser in both roles and the HTTP upgrade parsers on arbitrary bytes.
 *
 * Input: 4 bytes of chunk-size pattern, then the stream. The stream goes
 *  - to the WebSocket parser as a server and as a client, once whole and once in chunks
 *    of the pattern's sizes: both runs must yield the same messages and the same verdict,
 *    and every message must obey the protocol's rules;
 *  - to the HTTP head reader in the same chunks, then to the request and response parsers;
 *    an accepted upgrade's 101 must satisfy the client's check, a refusal must parse;
 *  - split at '\n' into host, key, token and client-auth values for the request builder,
 *    whose output must be read back by the server side as the same upgrade. */
#include <stdlib.h>
#include <string.h>

#include "relay/handshake.h"
#include "relay/http.h"
#include "relay/text.h"
#include "relay/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MESSAGE 70000 /* small enough to reach the limit, large enough for 64-bit lengths */

typedef struct run {
    int rc;        /* final verdict: 0 (all consumed) or the error */
    size_t count;  /* messages */
    uint64_t hash; /* over opcodes, lengths and payloads */
} run;

static uint64_t mix(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void check_message(const ir_ws_message *m)
{
    switch (m->opcode) {
    case IR_WS_OP_TEXT:
        if (!ir_utf8_valid(m->data, m->len))
            abort();
        /* fallthrough */
    case IR_WS_OP_BINARY:
        if (m->len > MAX_MESSAGE)
            abort();
        break;
    case IR_WS_OP_PING:
    case IR_WS_OP_PONG:
        if (m->len > IR_WS_MAX_CONTROL)
            abort();
        break;
    case IR_WS_OP_CLOSE:
        if (m->len > IR_WS_MAX_CONTROL || m->len == 1)
            abort();
        if (m->len >= 2 && (m->close_code < 1000 || m->close_code > 4999 ||
                            m->close_reason_len != m->len - 2 ||
                            !ir_utf8_valid(m->close_reason, m->close_reason_len)))
            abort();
        break;
    default:
        abort();
    }
}

/* A message written back by the writer parses to itself (in a fresh parser of the role). */
static void check_rewrite(ir_ws_role role, const ir_ws_message *m, const uint8_t key[4])
{
    size_t cap = m->len + IR_WS_MAX_HEADER, w, used;
    uint8_t *buf = malloc(cap);
    if (!buf)
        abort();
    const uint8_t *mask = role == IR_WS_ROLE_SERVER ? key : NULL;
    if (ir_ws_write_frame(buf, cap, m->opcode, m->data, m->len, mask, &w) != IROH_OK ||
        w != ir_ws_header_len(m->len, mask != NULL) + m->len)
        abort();
    ir_ws_parser p;
    ir_ws_message back;
    ir_ws_parser_init(&p, role, MAX_MESSAGE);
    if (ir_ws_parser_feed(&p, buf, w, &used, &back) != 1 || used != w ||
        back.opcode != m->opcode || back.len != m->len ||
        (m->len && memcmp(back.data, m->data, m->len) != 0) || back.close_code != m->close_code)
        abort();
    ir_ws_parser_free(&p);
    free(buf);
}

/* pat NULL: all at once (and every message is also written back with key as mask) */
static run ws_run(ir_ws_role role, const uint8_t *in, size_t len, const uint8_t pat[4],
                  const uint8_t key[4])
{
    run r = {0, 0, 0xcbf29ce484222325ull};
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        abort();
    if (len)
        memcpy(buf, in, len);
    ir_ws_parser p;
    ir_ws_parser_init(&p, role, MAX_MESSAGE);
    size_t off = 0, k = 0;
    while (off < len && r.rc == 0) {
        size_t chunk = pat ? (size_t)pat[k++ & 3] + 1 : len;
        if (chunk > len - off)
            chunk = len - off;
        size_t done = 0;
        while (done < chunk) {
            size_t used;
            ir_ws_message m;
            int rc = ir_ws_parser_feed(&p, buf + off + done, chunk - done, &used, &m);
            if (used > chunk - done)
                abort();
            done += used;
            if (rc < 0) {
                r.rc = rc;
                break;
            }
            if (rc == 0) {
                if (done != chunk)
                    abort();
                break;
            }
            check_message(&m);
            if (!pat)
                check_rewrite(role, &m, key);
            uint8_t hdr[9] = {m.opcode};
            for (int i = 0; i < 8; i++)
                hdr[1 + i] = (uint8_t)(m.len >> (8 * i));
            r.hash = mix(r.hash, hdr, sizeof hdr);
            r.hash = mix(r.hash, m.data, m.len);
            r.count++;
        }
        off += done;
    }
    ir_ws_parser_free(&p);
    free(buf);
    return r;
}

static void fuzz_ws(const uint8_t *in, size_t len, const uint8_t pat[4])
{
    for (int role = 0; role < 2; role++) {
        run whole = ws_run((ir_ws_role)role, in, len, NULL, pat);
        run parts = ws_run((ir_ws_role)role, in, len, pat, pat);
        if (whole.rc != parts.rc || whole.count != parts.count || whole.hash != parts.hash)
            abort();
    }
}

static ir_http_reader reader, reader2; /* reader2: reading back our own responses */
static ir_http_request req;
static ir_http_response resp;

static void check_own_101(const ir_ws_upgrade *u)
{
    static char out[2048];
    size_t w, used;
    if (ir_ws_build_response_101(u, out, sizeof out, &w) != IROH_OK)
        abort();
    ir_http_reader_init(&reader2);
    if (ir_http_reader_feed(&reader2, (const uint8_t *)out, w, &used) != 1 || used != w)
        abort();
    if (ir_http_parse_response(reader2.buf, reader2.len, &resp) != IROH_OK)
        abort();
    int v;
    if (ir_ws_check_response(&resp, u->key, u->key_len, &v) != IROH_OK || v != u->version)
        abort();
}

static void check_reject(const ir_ws_upgrade *u)
{
    static char out[2048];
    size_t w, used;
    if (ir_ws_build_reject(u, out, sizeof out, &w) != IROH_OK)
        abort();
    ir_http_reader_init(&reader2);
    if (ir_http_reader_feed(&reader2, (const uint8_t *)out, w, &used) != 1)
        abort();
    if (ir_http_parse_response(reader2.buf, reader2.len, &resp) != IROH_OK ||
        resp.status != u->status || w - used != strlen(u->error))
        abort();
}

static void fuzz_http(const uint8_t *in, size_t len, const uint8_t pat[4])
{
    /* the reader, in chunks */
    ir_http_reader_init(&reader);
    size_t off = 0, k = 0;
    int rc = 0;
    while (off < len) {
        size_t chunk = (size_t)pat[k++ & 3] + 1, used;
        if (chunk > len - off)
            chunk = len - off;
        rc = ir_http_reader_feed(&reader, in + off, chunk, &used);
        if (used > chunk)
            abort();
        off += used;
        if (rc != 0)
            break;
    }
    if (rc == 1) {
        if (reader.len > IR_HTTP_MAX_HEAD || reader.len > off)
            abort();
        uint8_t *head = malloc(reader.len);
        if (!head)
            abort();
        memcpy(head, reader.buf, reader.len);
        size_t hlen = reader.len;
        if (ir_http_parse_request(head, hlen, &req) == IROH_OK) {
            ir_ws_upgrade u;
            int r = ir_ws_check_upgrade(&req, &u);
            if (r == IROH_OK)
                check_own_101(&u);
            else if (r == IROH_ERR_HANDSHAKE || r == IROH_ERR_UNSUPPORTED)
                check_reject(&u);
            else
                abort();
        }
        if (ir_http_parse_response(head, hlen, &resp) == IROH_OK) {
            int v;
            (void)ir_ws_check_response(&resp, "dGhlIHNhbXBsZSBub25jZQ==", 24, &v);
            if (resp.n_headers > IR_HTTP_MAX_RESPONSE_HEADERS)
                abort();
        }
        free(head);
    }
    /* the parsers on the raw bytes too */
    (void)ir_http_parse_request(in, len, &req);
    (void)ir_http_parse_response(in, len, &resp);
}

static int trimmed(const char *s)
{
    size_t n = strlen(s);
    return n == 0 || (s[0] != ' ' && s[0] != '\t' && s[n - 1] != ' ' && s[n - 1] != '\t');
}

static void fuzz_builder(const uint8_t *in, size_t len)
{
    /* host \n key \n token \n client_auth */
    char *s = malloc(len + 1);
    if (!s)
        abort();
    memcpy(s, in, len);
    s[len] = 0;
    if (strlen(s) != len) { /* NULs would hide the rest */
        free(s);
        return;
    }
    char *field[4] = {s, NULL, NULL, NULL};
    for (int i = 1; i < 4 && field[i - 1]; i++) {
        char *nl = strchr(field[i - 1], '\n');
        if (nl) {
            *nl = 0;
            field[i] = nl + 1;
        }
    }
    ir_ws_request_opts o = {0};
    o.host = field[0];
    o.key = field[1] ? field[1] : "dGhlIHNhbXBsZSBub25jZQ==";
    o.auth_token = field[2];
    o.client_auth = field[3];
    static char out[8192];
    size_t w, used;
    if (ir_ws_build_request(&o, out, sizeof out, &w) == IROH_OK && w <= IR_HTTP_MAX_HEAD &&
        trimmed(o.key) && (!o.client_auth || trimmed(o.client_auth))) {
        ir_http_reader_init(&reader);
        if (ir_http_reader_feed(&reader, (const uint8_t *)out, w, &used) != 1 || used != w)
            abort();
        if (ir_http_parse_request(reader.buf, reader.len, &req) != IROH_OK)
            abort();
        ir_ws_upgrade u;
        if (ir_ws_check_upgrade(&req, &u) != IROH_OK || u.version != IR_RELAY_V2 ||
            u.key_len != strlen(o.key) || memcmp(u.key, o.key, u.key_len) != 0)
            abort();
        if (!o.client_auth != !u.client_auth || !o.auth_token != !u.authorization)
            abort();
        if (o.client_auth && (u.client_auth->value_len != strlen(o.client_auth) ||
                              memcmp(u.client_auth->value, o.client_auth, u.client_auth->value_len)))
            abort();
        check_own_101(&u);
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    const uint8_t *pat = data;
    fuzz_ws(data + 4, size - 4, pat);
    fuzz_http(data + 4, size - 4, pat);
    fuzz_builder(data + 4, size - 4);
    return 0;
}
