/* WebSocket framing (RFC 6455 section 5.7 examples, fragmentation, control frames, every
 * protocol violation, arbitrary chunking) and the HTTP upgrade of spec relay.md 1.2-1.3
 * (the exact client request, server checks, the 101, the client's checks, the RFC 6455
 * section 1.3 Sec-WebSocket-Accept example). */
#include <stdlib.h>

#include "relay/handshake.h"
#include "relay/http.h"
#include "relay/ws.h"
#include "test.h"

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Feeds bytes in chunks of `chunk` (0: all at once), collecting messages. Returns the
 * number of messages, or the first error. Copies the input (the parser unmasks in place). */
#define MAXMSG 16
typedef struct collected {
    int n;
    uint8_t op[MAXMSG];
    size_t len[MAXMSG];
    uint8_t *data[MAXMSG];
    uint16_t close_code[MAXMSG];
} collected;

static void collected_free(collected *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->data[i]);
    c->n = 0;
}

static int feed_all(ir_ws_role role, size_t max, const uint8_t *in, size_t len, size_t chunk,
                    collected *c)
{
    ir_ws_parser p;
    ir_ws_parser_init(&p, role, max);
    uint8_t *buf = malloc(len ? len : 1);
    if (len)
        memcpy(buf, in, len);
    memset(c, 0, sizeof *c);
    size_t off = 0;
    int rc = 0;
    while (off < len || (len == 0 && off == 0)) {
        size_t n = chunk && len - off > chunk ? chunk : len - off;
        size_t done = 0;
        while (done < n || n == 0) {
            size_t used;
            ir_ws_message m;
            rc = ir_ws_parser_feed(&p, buf + off + done, n - done, &used, &m);
            if (used > n - done)
                abort();
            done += used;
            if (rc < 0)
                goto out;
            if (rc == 1 && c->n < MAXMSG) {
                c->op[c->n] = m.opcode;
                c->len[c->n] = m.len;
                c->data[c->n] = malloc(m.len + 1);
                if (m.len)
                    memcpy(c->data[c->n], m.data, m.len);
                c->close_code[c->n] = m.close_code;
                c->n++;
            }
            if (rc == 0)
                break;
        }
        off += n;
        if (len == 0)
            break;
    }
    rc = c->n;
out:
    ir_ws_parser_free(&p);
    free(buf);
    return rc;
}

static int hexbuf(const char *hex, uint8_t **out)
{
    size_t cap = strlen(hex) / 2 + 1;
    *out = malloc(cap);
    return t_unhex(hex, *out, cap);
}

TEST(rfc6455_examples)
{
    collected c;
    uint8_t *b;
    int n;
    /* a single-frame unmasked text message (server to client) */
    n = hexbuf("81 05 48656c6c6f", &b);
    for (size_t chunk = 0; chunk <= 7; chunk++) {
        CHECK_EQ_INT(feed_all(IR_WS_ROLE_CLIENT, 1 << 20, b, (size_t)n, chunk, &c), 1);
        CHECK_EQ_INT(c.op[0], IR_WS_OP_TEXT);
        CHECK_EQ_INT(c.len[0], 5);
        CHECK_MEM(c.data[0], "Hello", 5);
        collected_free(&c);
    }
    /* the server refuses it: not masked */
    CHECK_EQ_INT(feed_all(IR_WS_ROLE_SERVER, 1 << 20, b, (size_t)n, 0, &c), IROH_ERR_INVALID_ARGUMENT);
    free(b);

    /* a single-frame masked text message (client to server) */
    n = hexbuf("81 85 37fa213d 7f9f4d5158", &b);
    for (size_t chunk = 0; chunk <= 11; chunk++) {
        CHECK_EQ_INT(feed_all(IR_WS_ROLE_SERVER, 1 << 20, b, (size_t)n, chunk, &c), 1);
        CHECK_EQ_INT(c.op[0], IR_WS_OP_TEXT);
        CHECK_EQ_INT(c.len[0], 5);
        CHECK_MEM(c.data[0], "Hello", 5);
        collected_free(&c);
    }
    CHECK_EQ_INT(feed_all(IR_WS_ROLE_CLIENT, 1 << 20, b, (size_t)n, 0, &c), IROH_ERR_INVALID_ARGUMENT);
    free(b);

    /* a fragmented unmasked text message */
    n = hexbuf("01 03 48656c 80 02 6c6f", &b);
    for (size_t chunk = 0; chunk <= 9; chunk++) {
        CHECK_EQ_INT(feed_all(IR_WS_ROLE_CLIENT, 1 << 20, b, (size_t)n, chunk, &c), 1);
        CHECK_EQ_INT(c.op[0], IR_WS_OP_TEXT);
        CHECK_EQ_INT(c.len[0], 5);
        CHECK_MEM(c.data[0], "Hello", 5);
        collected_free(&c);
    }
    free(b);

    /* unmasked ping, masked pong */
    n = hexbuf("89 05 48656c6c6f", &b);
    CHECK_EQ_INT(feed_all(IR_WS_ROLE_CLIENT, 1 << 20, b, (size_t)n, 0, &c), 1);
    CHECK_EQ_INT(c.op[0], IR_WS_OP_PING);
    CHECK_MEM(c.data[0], "Hello", 5);
    collected_free(&c);
    free(b);
    n = hexbuf("8a 85 37fa213d 7f9f4d5158", &b);
    CHECK_EQ_INT(feed_all(IR_WS_ROLE_SERVER, 1 << 20, b, (size_t)n, 3, &c), 1);
    CHECK_EQ_INT(c.op[0], IR_WS_OP_PONG);
    CHECK_MEM(c.data[0], "Hello", 5);
    collected_free(&c);
    free(b);

    /* 256 bytes binary in a single unmasked frame; 64 KiB likewise */
    size_t sizes[2] = {256, 65536};
    for (int s = 0; s < 2; s++) {
        size_t len = sizes[s];
        size_t hl = s == 0 ? 4 : 10;
        uint8_t *f = malloc(hl + len);
        f[0] = 0x82;
        if (s == 0) {
            f[1] = 0x7e;
            f[2] = 0x01;
            f[3] = 0x00;
        } else {
            static const uint8_t h[9] = {0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
            memcpy(f + 1, h, 9);
        }
        for (size_t i = 0; i < len; i++)
            f[hl + i] = (uint8_t)(i * 7);
        size_t chunks[4] = {0, 1, 1000, 4097};
        for (int k = 0; k < 4; k++) {
            CHECK_EQ_INT(feed_all(IR_WS_ROLE_CLIENT, 1 << 20, f, hl + len, chunks[k], &c), 1);
            CHECK_EQ_INT(c.op[0], IR_WS_OP_BINARY);
            CHECK_EQ_INT(c.len[0], len);
            CHECK_MEM(c.data[0], f + hl, len);
            collected_free(&c);
        }
        /* the writer produces the same header */
        uint8_t hdr[IR_WS_MAX_HEADER];
        CHECK_EQ_INT(ir_ws_write_header(hdr, 1, IR_WS_OP_BINARY, len, NULL), hl);
        CHECK_MEM(hdr, f, hl);
        CHECK_EQ_INT(ir_ws_header_len(len, 0), hl);
        CHECK_EQ_INT(ir_ws_header_len(len, 1), hl + 4);
        free(f);
    }
}

TEST(writer_matches_rfc)
{
    uint8_t out[64], want[64];
    size_t w;
    int n;
    CHECK_EQ_INT(ir_ws_write_frame(out, sizeof out, IR_WS_OP_TEXT, (const uint8_t *)"Hello", 5, NULL, &w),
                 IROH_OK);
    n = t_unhex("81 05 48656c6c6f", want, sizeof want);
    CHECK_EQ_INT(w, n);
    CHECK_MEM(out, want, (size_t)n);
    CHECK_EQ_INT(ir_ws_write_frame(out, sizeof out, IR_WS_OP_TEXT, (const uint8_t *)"Hello", 5, MASK, &w),
                 IROH_OK);
    n = t_unhex("81 85 37fa213d 7f9f4d5158", want, sizeof want);
    CHECK_EQ_INT(w, n);
    CHECK_MEM(out, want, (size_t)n);
    CHECK_EQ_INT(ir_ws_write_frame(out, sizeof out, IR_WS_OP_PONG, (const uint8_t *)"Hello", 5, MASK, &w),
                 IROH_OK);
    n = t_unhex("8a 85 37fa213d 7f9f4d5158", want, sizeof want);
    CHECK_MEM(out, want, (size_t)n);
    /* fragmented: headers by hand */
    CHECK_EQ_INT(ir_ws_write_header(out, 0, IR_WS_OP_TEXT, 3, NULL), 2);
    CHECK_EQ_INT(out[0], 0x01);
    CHECK_EQ_INT(out[1], 0x03);
    CHECK_EQ_INT(ir_ws_write_header(out, 1, IR_WS_OP_CONT, 2, NULL), 2);
    CHECK_EQ_INT(out[0], 0x80);
    /* in-place payload (memmove) */
    memcpy(out + 6, "Hello", 5);
    CHECK_EQ_INT(ir_ws_write_frame(out, sizeof out, IR_WS_OP_BINARY, out + 6, 5, MASK, &w), IROH_OK);
    CHECK_EQ_INT(w, 11);
    CHECK_EQ_INT(out[0], 0x82);
    /* too small, control too big */
    CHECK_EQ_INT(ir_ws_write_frame(out, 6, IR_WS_OP_TEXT, (const uint8_t *)"Hello", 5, NULL, &w),
                 IROH_ERR_BUFFER_TOO_SMALL);
    uint8_t big[200] = {0};
    uint8_t obuf[300];
    CHECK_EQ_INT(ir_ws_write_frame(obuf, sizeof obuf, IR_WS_OP_PING, big, 126, NULL, &w),
                 IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(ir_ws_write_frame(obuf, sizeof obuf, IR_WS_OP_PING, big, 125, NULL, &w), IROH_OK);
    /* close frames */
    CHECK_EQ_INT(ir_ws_write_close(out, sizeof out, 1000, "bye", NULL, &w), IROH_OK);
    n = t_unhex("88 05 03e8 627965", want, sizeof want);
    CHECK_EQ_INT(w, n);
    CHECK_MEM(out, want, (size_t)n);
    CHECK_EQ_INT(ir_ws_write_close(out, sizeof out, 0, NULL, NULL, &w), IROH_OK);
    CHECK_EQ_INT(w, 2);
    CHECK_EQ_INT(ir_ws_write_close(out, sizeof out, 1005, NULL, NULL, &w), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(ir_ws_write_close(out, sizeof out, 0, "x", NULL, &w), IROH_ERR_INVALID_ARGUMENT);
}

TEST(mask_in_pieces)
{
    uint8_t a[100], b[100];
    for (int i = 0; i < 100; i++)
        a[i] = b[i] = (uint8_t)(i * 3 + 1);
    ir_ws_mask(a, 100, MASK, 0);
    for (int i = 0; i < 100; i++)
        CHECK_EQ_INT(a[i], (uint8_t)(b[i] ^ MASK[i & 3]));
    /* masking in pieces at any offsets gives the same */
    for (size_t cut1 = 0; cut1 < 20; cut1++) {
        for (size_t cut2 = cut1; cut2 < 40; cut2 += 3) {
            uint8_t c[100];
            memcpy(c, b, 100);
            ir_ws_mask(c, cut1, MASK, 0);
            ir_ws_mask(c + cut1, cut2 - cut1, MASK, cut1);
            ir_ws_mask(c + cut2, 100 - cut2, MASK, cut2);
            CHECK(memcmp(c, a, 100) == 0);
        }
    }
}

/* Builds a stream of frames; mask != NULL masks each. */
static size_t frame(uint8_t *out, int fin, uint8_t op, const char *payload, size_t len,
                    const uint8_t *mask)
{
    size_t h = ir_ws_write_header(out, fin, op, len, mask);
    memcpy(out + h, payload, len);
    if (mask)
        ir_ws_mask(out + h, len, mask, 0);
    return h + len;
}

TEST(fragmentation_with_control_frames)
{
    for (int masked = 0; masked < 2; masked++) {
        const uint8_t *m = masked ? MASK : NULL;
        ir_ws_role role = masked ? IR_WS_ROLE_SERVER : IR_WS_ROLE_CLIENT;
        uint8_t s[512];
        size_t n = 0;
        n += frame(s + n, 0, IR_WS_OP_BINARY, "abc", 3, m);
        n += frame(s + n, 1, IR_WS_OP_PING, "p1", 2, m);
        n += frame(s + n, 0, IR_WS_OP_CONT, "", 0, m);
        n += frame(s + n, 0, IR_WS_OP_CONT, "defgh", 5, m);
        n += frame(s + n, 1, IR_WS_OP_PONG, "", 0, m);
        n += frame(s + n, 1, IR_WS_OP_CONT, "ij", 2, m);
        n += frame(s + n, 1, IR_WS_OP_TEXT, "", 0, m); /* an empty text message */
        n += frame(s + n, 1, IR_WS_OP_BINARY, "single", 6, m);
        n += frame(s + n, 1, IR_WS_OP_CLOSE, "\x03\xe8ok", 4, m);
        for (size_t chunk = 0; chunk <= n; chunk++) {
            collected c;
            int rc = feed_all(role, 1 << 20, s, n, chunk, &c);
            CHECK_EQ_INT(rc, 6);
            if (rc != 6) {
                collected_free(&c);
                continue;
            }
            CHECK_EQ_INT(c.op[0], IR_WS_OP_PING);
            CHECK_MEM(c.data[0], "p1", 2);
            CHECK_EQ_INT(c.op[1], IR_WS_OP_PONG);
            CHECK_EQ_INT(c.len[1], 0);
            CHECK_EQ_INT(c.op[2], IR_WS_OP_BINARY);
            CHECK_EQ_INT(c.len[2], 10);
            CHECK_MEM(c.data[2], "abcdefghij", 10);
            CHECK_EQ_INT(c.op[3], IR_WS_OP_TEXT);
            CHECK_EQ_INT(c.len[3], 0);
            CHECK_EQ_INT(c.op[4], IR_WS_OP_BINARY);
            CHECK_MEM(c.data[4], "single", 6);
            CHECK_EQ_INT(c.op[5], IR_WS_OP_CLOSE);
            CHECK_EQ_INT(c.close_code[5], 1000);
            CHECK_EQ_INT(c.len[5], 4);
            collected_free(&c);
        }
    }
}

static int feed_hex(ir_ws_role role, const char *hex)
{
    uint8_t *b;
    int n = hexbuf(hex, &b);
    collected c;
    int rc = feed_all(role, 1 << 20, b, (size_t)n, 0, &c);
    collected_free(&c);
    free(b);
    return rc;
}

TEST(protocol_violations)
{
    const ir_ws_role C = IR_WS_ROLE_CLIENT;
    const int E = IROH_ERR_INVALID_ARGUMENT;
    /* RSV bits */
    CHECK_EQ_INT(feed_hex(C, "c1 00"), E);
    CHECK_EQ_INT(feed_hex(C, "a1 00"), E);
    CHECK_EQ_INT(feed_hex(C, "91 00"), E);
    /* unknown opcodes */
    static const char *const ops[] = {"83 00", "84 00", "85 00", "86 00", "87 00",
                                      "8b 00", "8c 00", "8d 00", "8e 00", "8f 00"};
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(feed_hex(C, ops[i]), E);
    /* masking by role */
    CHECK_EQ_INT(feed_hex(C, "82 81 00000000 41"), E);
    CHECK_EQ_INT(feed_hex(IR_WS_ROLE_SERVER, "82 01 41"), E);
    CHECK_EQ_INT(feed_hex(IR_WS_ROLE_SERVER, "82 81 00000000 41"), 1);
    /* control frames: fragmented, too long (126 / 127 forms too) */
    CHECK_EQ_INT(feed_hex(C, "09 00"), E);
    CHECK_EQ_INT(feed_hex(C, "0a 00"), E);
    CHECK_EQ_INT(feed_hex(C, "08 00"), E);
    CHECK_EQ_INT(feed_hex(C, "89 7e 007e"), E);
    CHECK_EQ_INT(feed_hex(C, "89 7f 0000000000000100"), E);
    /* continuation rules */
    CHECK_EQ_INT(feed_hex(C, "80 00"), E);
    CHECK_EQ_INT(feed_hex(C, "00 00"), E);
    CHECK_EQ_INT(feed_hex(C, "01 01 41 81 01 42"), E);
    CHECK_EQ_INT(feed_hex(C, "02 01 41 82 01 42"), E);
    CHECK_EQ_INT(feed_hex(C, "02 01 41 80 01 42 80 01 43"), E); /* message over, then CONT */
    CHECK_EQ_INT(feed_hex(C, "02 01 41 89 00 80 01 42"), 2);     /* ping in between: fine */
    /* non-minimal lengths, top bit */
    CHECK_EQ_INT(feed_hex(C, "82 7e 007d"), E);
    CHECK_EQ_INT(feed_hex(C, "82 7e 0000"), E);
    CHECK_EQ_INT(feed_hex(C, "82 7f 000000000000ffff"), E);
    CHECK_EQ_INT(feed_hex(C, "82 7f 8000000000010000"), E);
    /* close payloads: 1 byte, bad codes, bad UTF-8 */
    CHECK_EQ_INT(feed_hex(C, "88 01 03"), E);
    CHECK_EQ_INT(feed_hex(C, "88 02 03e7"), E);  /* 999 */
    CHECK_EQ_INT(feed_hex(C, "88 02 03ec"), E);  /* 1004 */
    CHECK_EQ_INT(feed_hex(C, "88 02 03ed"), E);  /* 1005 */
    CHECK_EQ_INT(feed_hex(C, "88 02 03ee"), E);  /* 1006 */
    CHECK_EQ_INT(feed_hex(C, "88 02 03f7"), E);  /* 1015 */
    CHECK_EQ_INT(feed_hex(C, "88 02 03f8"), E);  /* 1016 */
    CHECK_EQ_INT(feed_hex(C, "88 02 0bb7"), E);  /* 2999 */
    CHECK_EQ_INT(feed_hex(C, "88 02 1388"), E);  /* 5000 */
    CHECK_EQ_INT(feed_hex(C, "88 02 0bb8"), 1);  /* 3000 */
    CHECK_EQ_INT(feed_hex(C, "88 02 1387"), 1);  /* 4999 */
    CHECK_EQ_INT(feed_hex(C, "88 02 03f3"), 1);  /* 1011 */
    CHECK_EQ_INT(feed_hex(C, "88 00"), 1);
    CHECK_EQ_INT(feed_hex(C, "88 03 03e8 ff"), E);
    /* text must be UTF-8, whole or reassembled; binary need not */
    CHECK_EQ_INT(feed_hex(C, "81 01 ff"), E);
    CHECK_EQ_INT(feed_hex(C, "82 01 ff"), 1);
    CHECK_EQ_INT(feed_hex(C, "01 01 e2 00 01 82 80 01 41"), E); /* broken across fragments */
    CHECK_EQ_INT(feed_hex(C, "01 01 e2 00 01 82 80 01 ac"), 1);
    CHECK_EQ_INT(feed_hex(C, "01 01 e2 80 01 82"), E);
    /* nothing after a close */
    CHECK_EQ_INT(feed_hex(C, "88 00 89 00"), IROH_ERR_CLOSED);
}

TEST(sticky_errors_and_close)
{
    ir_ws_parser p;
    ir_ws_message m;
    size_t used;
    uint8_t bad[2] = {0xc1, 0x00}, good[2] = {0x89, 0x00}, closef[2] = {0x88, 0x00};
    ir_ws_parser_init(&p, IR_WS_ROLE_CLIENT, 1024);
    CHECK_EQ_INT(ir_ws_parser_feed(&p, bad, 2, &used, &m), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(used, 2);
    CHECK_EQ_INT(ir_ws_parser_feed(&p, good, 2, &used, &m), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(used, 0);
    ir_ws_parser_free(&p);

    ir_ws_parser_init(&p, IR_WS_ROLE_CLIENT, 1024);
    CHECK_EQ_INT(ir_ws_parser_feed(&p, closef, 2, &used, &m), 1);
    CHECK_EQ_INT(m.opcode, IR_WS_OP_CLOSE);
    CHECK_EQ_INT(m.close_code, 0);
    CHECK_EQ_INT(ir_ws_parser_feed(&p, good, 2, &used, &m), IROH_ERR_CLOSED);
    ir_ws_parser_free(&p);

    /* one message per call: the rest of the input stays unconsumed */
    uint8_t two[4] = {0x89, 0x00, 0x8a, 0x00};
    ir_ws_parser_init(&p, IR_WS_ROLE_CLIENT, 1024);
    CHECK_EQ_INT(ir_ws_parser_feed(&p, two, 4, &used, &m), 1);
    CHECK_EQ_INT(used, 2);
    CHECK_EQ_INT(m.opcode, IR_WS_OP_PING);
    CHECK_EQ_INT(ir_ws_parser_feed(&p, two + 2, 2, &used, &m), 1);
    CHECK_EQ_INT(m.opcode, IR_WS_OP_PONG);
    CHECK_EQ_INT(ir_ws_parser_feed(&p, NULL, 0, &used, &m), 0);
    ir_ws_parser_free(&p);
}

TEST(size_limits)
{
    const size_t MAX = 1 << 20;
    uint8_t *s = malloc(MAX + 64);
    memset(s, 'x', MAX + 64);
    collected c;
    /* exactly 1 MiB in one frame */
    size_t h = ir_ws_write_header(s, 1, IR_WS_OP_BINARY, MAX, NULL);
    CHECK_EQ_INT(feed_all(IR_WS_ROLE_CLIENT, MAX, s, h + MAX, 0, &c), 1);
    CHECK_EQ_INT(c.len[0], MAX);
    collected_free(&c);
    CHECK_EQ_INT(feed_all(IR_WS_ROLE_CLIENT, MAX, s, h + MAX, 65536, &c), 1);
    collected_free(&c);
    /* one byte more: refused at the header */
    h = ir_ws_write_header(s, 1, IR_WS_OP_BINARY, MAX + 1, NULL);
    CHECK_EQ_INT(feed_all(IR_WS_ROLE_CLIENT, MAX, s, h, 0, &c), IROH_ERR_TOO_LONG);
    /* reassembled: 512 KiB + 512 KiB fine, + 1 byte more not */
    size_t half = MAX / 2, n = 0;
    uint8_t *t = malloc(MAX + 64);
    memset(t, 'y', MAX + 64);
    n += ir_ws_write_header(t + n, 0, IR_WS_OP_BINARY, half, NULL);
    n += half;
    n += ir_ws_write_header(t + n, 1, IR_WS_OP_CONT, half, NULL);
    n += half;
    CHECK_EQ_INT(feed_all(IR_WS_ROLE_CLIENT, MAX, t, n, 100000, &c), 1);
    CHECK_EQ_INT(c.len[0], MAX);
    collected_free(&c);
    n = 0;
    n += ir_ws_write_header(t + n, 0, IR_WS_OP_BINARY, half, NULL);
    n += half;
    n += ir_ws_write_header(t + n, 1, IR_WS_OP_CONT, half + 1, NULL);
    CHECK_EQ_INT(feed_all(IR_WS_ROLE_CLIENT, MAX, t, n, 0, &c), IROH_ERR_TOO_LONG);
    /* a small limit */
    CHECK_EQ_INT(feed_hex(IR_WS_ROLE_CLIENT, "82 7e 0100"), 0); /* header only: waits */
    free(s);
    free(t);
}

TEST(truncations_never_fail)
{
    /* every prefix of a valid stream is accepted without a message or an error, up to the
     * point where the first message completes */
    uint8_t s[256];
    size_t n = frame(s, 1, IR_WS_OP_BINARY, "0123456789", 10, MASK);
    size_t n2 = n + frame(s + n, 1, IR_WS_OP_PING, "x", 1, MASK);
    for (size_t k = 0; k < n; k++) {
        collected c;
        CHECK_EQ_INT(feed_all(IR_WS_ROLE_SERVER, 1024, s, k, 0, &c), 0);
        collected_free(&c);
    }
    for (size_t k = n; k < n2; k++) {
        collected c;
        CHECK_EQ_INT(feed_all(IR_WS_ROLE_SERVER, 1024, s, k, 0, &c), 1);
        collected_free(&c);
    }
    /* 64-bit length form truncated inside the length */
    uint8_t big[10] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
    for (size_t k = 0; k <= 10; k++) {
        collected c;
        CHECK_EQ_INT(feed_all(IR_WS_ROLE_CLIENT, 1 << 20, big, k, 1, &c), 0);
        collected_free(&c);
    }
}

TEST(random_chunking_against_reference)
{
    /* many masked messages of assorted sizes, fed in pseudo-random chunk sizes */
    uint32_t seed = 12345;
    uint8_t *s = malloc(1 << 20);
    size_t n = 0;
    size_t lens[MAXMSG];
    int count = 0;
    while (count < MAXMSG) {
        seed = seed * 1103515245 + 12345;
        size_t len = (seed >> 8) % (count % 4 == 3 ? 70000 : 300);
        uint8_t key[4] = {(uint8_t)seed, (uint8_t)(seed >> 8), (uint8_t)(seed >> 16), 0x5a};
        size_t h = ir_ws_write_header(s + n, 1, IR_WS_OP_BINARY, len, key);
        for (size_t i = 0; i < len; i++)
            s[n + h + i] = (uint8_t)(i + (size_t)count);
        ir_ws_mask(s + n + h, len, key, 0);
        n += h + len;
        lens[count++] = len;
    }
    ir_ws_parser p;
    ir_ws_parser_init(&p, IR_WS_ROLE_SERVER, 1 << 20);
    size_t off = 0;
    int got = 0, ok = 1;
    while (off < n) {
        seed = seed * 1103515245 + 12345;
        size_t chunk = 1 + (seed >> 8) % 5000;
        if (chunk > n - off)
            chunk = n - off;
        size_t done = 0;
        while (done < chunk) {
            size_t used;
            ir_ws_message m;
            int rc = ir_ws_parser_feed(&p, s + off + done, chunk - done, &used, &m);
            done += used;
            if (rc < 0) {
                ok = 0;
                break;
            }
            if (rc == 0)
                break;
            if (m.len != lens[got])
                ok = 0;
            for (size_t i = 0; i < m.len; i++)
                if (m.data[i] != (uint8_t)(i + (size_t)got))
                    ok = 0;
            got++;
        }
        if (!ok)
            break;
        off += chunk;
    }
    CHECK(ok);
    CHECK_EQ_INT(got, MAXMSG);
    ir_ws_parser_free(&p);
    free(s);
}

/* ---- HTTP upgrade ---------------------------------------------------------------------- */

TEST(accept_key_rfc_example)
{
    /* RFC 6455 section 1.3 (the value printed there; SHA-1 of
     * "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11" is b37a4f2c...c4ea) */
    char out[IR_WS_ACCEPT_LEN + 1];
    ir_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    char key[IR_WS_KEY_LEN + 1];
    const uint8_t nonce[16] = "the sample nonce";
    ir_ws_make_key(nonce, key);
    CHECK_STR(key, "dGhlIHNhbXBsZSBub25jZQ==");
}

#define REQUEST_FULL                                                                       \
    "GET /relay HTTP/1.1\r\n"                                                              \
    "Host: 127.0.0.1:3340\r\n"                                                             \
    "Upgrade: websocket\r\n"                                                               \
    "Connection: Upgrade\r\n"                                                              \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                                      \
    "Sec-WebSocket-Version: 13\r\n"                                                        \
    "sec-websocket-protocol: iroh-relay-v2, iroh-relay-v1\r\n"                             \
    "authorization: Bearer sekrit\r\n"                                                     \
    "x-iroh-relay-client-auth-v1: AAAA\r\n"                                                \
    "\r\n"

TEST(client_request_exact)
{
    char out[1024];
    size_t w;
    ir_ws_request_opts o = {0};
    o.host = "127.0.0.1:3340";
    o.key = "dGhlIHNhbXBsZSBub25jZQ==";
    CHECK_EQ_INT(ir_ws_build_request(&o, out, sizeof out, &w), IROH_OK);
    const char *want = "GET /relay HTTP/1.1\r\n"
                       "Host: 127.0.0.1:3340\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "sec-websocket-protocol: iroh-relay-v2, iroh-relay-v1\r\n"
                       "\r\n";
    CHECK_EQ_INT(w, strlen(want));
    CHECK_MEM(out, want, strlen(want));
    o.auth_token = "sekrit";
    o.client_auth = "AAAA";
    CHECK_EQ_INT(ir_ws_build_request(&o, out, sizeof out, &w), IROH_OK);
    CHECK_EQ_INT(w, strlen(REQUEST_FULL));
    CHECK_MEM(out, REQUEST_FULL, strlen(REQUEST_FULL));
    CHECK_EQ_INT(ir_ws_build_request(&o, out, w - 1, &w), IROH_ERR_BUFFER_TOO_SMALL);
    /* query kept, host without port */
    o.path = "/relay?token=abc";
    o.host = "relay.example";
    o.auth_token = NULL;
    o.client_auth = NULL;
    CHECK_EQ_INT(ir_ws_build_request(&o, out, sizeof out, &w), IROH_OK);
    CHECK(memcmp(out, "GET /relay?token=abc HTTP/1.1\r\nHost: relay.example\r\n", 52) == 0);
    /* header injection refused */
    o.auth_token = "x\r\nEvil: 1";
    CHECK_EQ_INT(ir_ws_build_request(&o, out, sizeof out, &w), IROH_ERR_INVALID_ARGUMENT);
    o.auth_token = NULL;
    o.host = "a b";
    CHECK_EQ_INT(ir_ws_build_request(&o, out, sizeof out, &w), IROH_ERR_INVALID_ARGUMENT);
    o.host = "h";
    o.path = "relay";
    CHECK_EQ_INT(ir_ws_build_request(&o, out, sizeof out, &w), IROH_ERR_INVALID_ARGUMENT);
}

/* Reads a head through the reader in chunks, then parses it as a request. */
static int read_request(const char *text, size_t chunk, ir_http_reader *r, ir_http_request *req,
                        size_t *leftover)
{
    size_t len = strlen(text), off = 0;
    ir_http_reader_init(r);
    int rc = 0;
    while (off < len) {
        size_t n = chunk && len - off > chunk ? chunk : len - off, used;
        rc = ir_http_reader_feed(r, (const uint8_t *)text + off, n, &used);
        off += used;
        if (rc != 0)
            break;
    }
    *leftover = len - off;
    if (rc != 1)
        return rc == 0 ? 99 : rc;
    return ir_http_parse_request(r->buf, r->len, req);
}

static ir_http_reader reader; /* 16 KiB: keep it off the stack */
static ir_http_request request;
static ir_http_response response;

TEST(server_parses_request)
{
    size_t left;
    for (size_t chunk = 0; chunk < 20; chunk++) {
        CHECK_EQ_INT(read_request(REQUEST_FULL, chunk, &reader, &request, &left), IROH_OK);
        CHECK_EQ_INT(left, 0);
    }
    CHECK_EQ_INT(request.n_headers, 8);
    CHECK_EQ_INT(request.minor_version, 1);
    ir_ws_upgrade u;
    CHECK_EQ_INT(ir_ws_check_upgrade(&request, &u), IROH_OK);
    CHECK_EQ_INT(u.version, IR_RELAY_V2);
    CHECK_EQ_INT(u.key_len, 24);
    CHECK_MEM(u.key, "dGhlIHNhbXBsZSBub25jZQ==", 24);
    CHECK(u.client_auth != NULL);
    CHECK(u.client_auth && ir_http_value_is(u.client_auth, "AAAA"));
    CHECK(u.authorization && ir_http_value_is(u.authorization, "Bearer sekrit"));

    /* bytes after the request are left to the caller (who refuses the connection) */
    char more[1024];
    snprintf(more, sizeof more, "%s\x82\x80", REQUEST_FULL);
    CHECK_EQ_INT(read_request(more, 0, &reader, &request, &left), IROH_OK);
    CHECK_EQ_INT(left, 2);
    CHECK_EQ_INT(read_request(more, 7, &reader, &request, &left), IROH_OK);
    CHECK_EQ_INT(left, 2);
    /* the reader refuses more input once complete */
    size_t used;
    CHECK_EQ_INT(ir_http_reader_feed(&reader, (const uint8_t *)"x", 1, &used), IROH_ERR_STATE);

    /* every truncation: incomplete, never an error */
    size_t len = strlen(REQUEST_FULL);
    for (size_t k = 0; k < len; k++) {
        char t[1024];
        memcpy(t, REQUEST_FULL, k);
        t[k] = 0;
        CHECK_EQ_INT(read_request(t, 0, &reader, &request, &left), 99);
    }
}

static int upgrade_of(const char *head, ir_ws_upgrade *u)
{
    size_t left;
    int rc = read_request(head, 0, &reader, &request, &left);
    if (rc != IROH_OK)
        return 100 + rc;
    return ir_ws_check_upgrade(&request, u);
}

#define H_START "GET /relay HTTP/1.1\r\nHost: x\r\n"
#define H_UP "Upgrade: websocket\r\n"
#define H_KEY "Sec-WebSocket-Key: k\r\n"
#define H_VER "Sec-WebSocket-Version: 13\r\n"

TEST(server_upgrade_checks)
{
    ir_ws_upgrade u;
    /* negotiation */
    CHECK_EQ_INT(upgrade_of(H_START H_UP H_KEY H_VER "Sec-WebSocket-Protocol: iroh-relay-v1\r\n\r\n", &u),
                 IROH_OK);
    CHECK_EQ_INT(u.version, IR_RELAY_V1);
    CHECK_EQ_INT(upgrade_of(H_START H_UP H_KEY H_VER
                            "sec-websocket-protocol: iroh-relay-v1,iroh-relay-v2\r\n\r\n",
                            &u),
                 IROH_OK);
    CHECK_EQ_INT(u.version, IR_RELAY_V2);
    CHECK_EQ_INT(upgrade_of(H_START H_UP H_KEY H_VER
                            "SEC-WEBSOCKET-PROTOCOL: foo , \t iroh-relay-v1 \t,, bar\r\n\r\n",
                            &u),
                 IROH_OK);
    CHECK_EQ_INT(u.version, IR_RELAY_V1);
    CHECK_EQ_INT(upgrade_of(H_START H_UP H_KEY H_VER "sec-websocket-protocol: iroh-relay-v3\r\n\r\n", &u),
                 IROH_ERR_HANDSHAKE);
    CHECK_EQ_INT(u.status, 400);
    CHECK(strstr(u.error, "unsupported relay version: we support iroh-relay-v2, iroh-relay-v1 "
                          "but you only provide iroh-relay-v3") != NULL);
    CHECK_EQ_INT(upgrade_of(H_START H_UP H_KEY H_VER "sec-websocket-protocol: IROH-RELAY-V2\r\n\r\n", &u),
                 IROH_ERR_HANDSHAKE);
    CHECK_EQ_INT(upgrade_of(H_START H_UP H_KEY H_VER "sec-websocket-protocol: iroh-relay-v2\xc3\xa9\r\n\r\n", &u),
                 IROH_ERR_HANDSHAKE);
    CHECK(strstr(u.error, "not ascii") != NULL);
    CHECK_EQ_INT(upgrade_of(H_START H_UP H_KEY H_VER "\r\n", &u), IROH_ERR_HANDSHAKE);
    CHECK_STR(u.error, "missing header: sec-websocket-protocol");
    /* Upgrade: case-sensitive, required */
    CHECK_EQ_INT(upgrade_of(H_START "Upgrade: WebSocket\r\n" H_KEY H_VER
                            "sec-websocket-protocol: iroh-relay-v2\r\n\r\n", &u),
                 IROH_ERR_HANDSHAKE);
    CHECK_STR(u.error, "invalid header value for upgrade: value must be websocket");
    CHECK_EQ_INT(upgrade_of(H_START H_KEY H_VER "sec-websocket-protocol: iroh-relay-v2\r\n\r\n", &u),
                 IROH_ERR_HANDSHAKE);
    CHECK_STR(u.error, "missing header: upgrade");
    /* the header name itself is case-insensitive; Connection is not checked */
    CHECK_EQ_INT(upgrade_of(H_START "UPGRADE:websocket  \r\n" H_KEY H_VER
                            "sec-websocket-protocol: iroh-relay-v2\r\n\r\n", &u),
                 IROH_OK);
    /* key */
    CHECK_EQ_INT(upgrade_of(H_START H_UP H_VER "sec-websocket-protocol: iroh-relay-v2\r\n\r\n", &u),
                 IROH_ERR_HANDSHAKE);
    CHECK_STR(u.error, "missing header: sec-websocket-key");
    /* version */
    CHECK_EQ_INT(upgrade_of(H_START H_UP H_KEY "Sec-WebSocket-Version: 8\r\n"
                            "sec-websocket-protocol: iroh-relay-v2\r\n\r\n", &u),
                 IROH_ERR_HANDSHAKE);
    CHECK_EQ_INT(u.send_version, 1);
    CHECK_EQ_INT(upgrade_of(H_START H_UP H_KEY "sec-websocket-protocol: iroh-relay-v2\r\n\r\n", &u),
                 IROH_ERR_HANDSHAKE);
    CHECK_EQ_INT(u.send_version, 0);
    /* the first of repeated headers counts */
    CHECK_EQ_INT(upgrade_of(H_START H_UP "Upgrade: nope\r\n" H_KEY H_VER
                            "sec-websocket-protocol: iroh-relay-v2\r\n\r\n", &u),
                 IROH_OK);
    /* not GET /relay: route elsewhere */
    CHECK_EQ_INT(upgrade_of("POST /relay HTTP/1.1\r\n\r\n", &u), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(u.status, 404);
    CHECK_EQ_INT(upgrade_of("GET /relay/ HTTP/1.1\r\n\r\n", &u), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(upgrade_of("GET /derp HTTP/1.1\r\n\r\n", &u), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(upgrade_of("get /relay HTTP/1.1\r\n\r\n", &u), IROH_ERR_UNSUPPORTED);
    /* the query does not change the path */
    CHECK_EQ_INT(upgrade_of("GET /relay?token=abc HTTP/1.1\r\n" H_UP H_KEY H_VER
                            "sec-websocket-protocol: iroh-relay-v2\r\n\r\n", &u),
                 IROH_OK);
    CHECK_EQ_INT(request.query_len, 9);
    CHECK_MEM(request.query, "token=abc", 9);
    /* HTTP/1.0 */
    CHECK_EQ_INT(upgrade_of("GET /relay HTTP/1.0\r\n" H_UP H_KEY H_VER
                            "sec-websocket-protocol: iroh-relay-v2\r\n\r\n", &u),
                 IROH_ERR_HANDSHAKE);
}

TEST(request_limits)
{
    /* 64 headers fine, 65 refused */
    static char head[IR_HTTP_MAX_HEAD + 200];
    for (int count = 64; count <= 65; count++) {
        size_t n = (size_t)snprintf(head, sizeof head, "GET /relay HTTP/1.1\r\n");
        for (int i = 0; i < count; i++)
            n += (size_t)snprintf(head + n, sizeof head - n, "X-H%d: v\r\n", i);
        snprintf(head + n, sizeof head - n, "\r\n");
        size_t left;
        int rc = read_request(head, 0, &reader, &request, &left);
        CHECK_EQ_INT(rc, count == 64 ? IROH_OK : IROH_ERR_TOO_LONG);
    }
    /* a head over 16 KiB */
    size_t n = (size_t)snprintf(head, sizeof head, "GET /relay HTTP/1.1\r\nX: ");
    memset(head + n, 'a', IR_HTTP_MAX_HEAD);
    head[n + IR_HTTP_MAX_HEAD] = 0;
    size_t left;
    CHECK_EQ_INT(read_request(head, 1000, &reader, &request, &left), IROH_ERR_TOO_LONG);
    /* just under the limit */
    n = (size_t)snprintf(head, sizeof head, "GET /relay HTTP/1.1\r\nX: ");
    size_t fill = IR_HTTP_MAX_HEAD - n - 4;
    memset(head + n, 'a', fill);
    memcpy(head + n + fill, "\r\n\r\n", 5);
    CHECK_EQ_INT(strlen(head), IR_HTTP_MAX_HEAD);
    CHECK_EQ_INT(read_request(head, 999, &reader, &request, &left), IROH_OK);
}

static int parse_req(const char *text)
{
    return ir_http_parse_request((const uint8_t *)text, strlen(text), &request);
}

TEST(http_syntax)
{
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\n\r\n"), IROH_OK);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\n\n"), IROH_OK);           /* bare LF */
    CHECK_EQ_INT(parse_req("\r\n\nGET / HTTP/1.1\r\n\r\n"), IROH_OK); /* leading empty lines */
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA: b\nC:d\r\n\n"), IROH_OK);
    CHECK_EQ_INT(request.n_headers, 2);
    CHECK_EQ_INT(request.headers[1].value_len, 1);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA:\r\n\r\n"), IROH_OK); /* empty value */
    CHECK_EQ_INT(request.headers[0].value_len, 0);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA: \xff\xfe\r\n\r\n"), IROH_OK); /* obs-text */
    const int E = IROH_ERR_INVALID_ARGUMENT;
    CHECK_EQ_INT(parse_req("GET  / HTTP/1.1\r\n\r\n"), E);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1 \r\n\r\n"), E);
    CHECK_EQ_INT(parse_req("GET / HTTP/2.0\r\n\r\n"), E);
    CHECK_EQ_INT(parse_req("GET / http/1.1\r\n\r\n"), E);
    CHECK_EQ_INT(parse_req("G(T / HTTP/1.1\r\n\r\n"), E);
    CHECK_EQ_INT(parse_req(" / HTTP/1.1\r\n\r\n"), E);
    CHECK_EQ_INT(parse_req("GET /\x7f HTTP/1.1\r\n\r\n"), E);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA b: c\r\n\r\n"), E);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA : c\r\n\r\n"), E);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nAb\r\n\r\n"), E);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\n: c\r\n\r\n"), E);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"), E); /* obs-fold */
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"), E);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n"), E);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA: b\r\n"), E); /* no empty line */
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\n\r\nX"), E);    /* bytes after the head */
    CHECK_EQ_INT(parse_req(""), E);
    /* every truncation of a valid head fails to parse */
    const char *valid = "GET /relay HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n";
    for (size_t k = 0; k < strlen(valid); k++)
        CHECK(ir_http_parse_request((const uint8_t *)valid, k, &request) < 0);
}

/* Comma-separated header values: items trimmed of spaces and tabs, empty ones kept. */
TEST(http_lists)
{
    static const struct {
        const char *value;
        const char *items; /* the items joined with '|' */
    } cases[] = {
        {"", ""},
        {"a", "a"},
        {" a ,\tb\t, c", "a|b|c"},
        {"a,,b", "a||b"},
        {"a, ,b,", "a||b|"},
        {",", "|"},
        {"  ", ""},
        {"x y , z", "x y|z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[64] = "";
        size_t n = 0, len;
        const char *item;
        int count = 0;
        ir_http_list l;
        ir_http_list_init(&l, cases[i].value, strlen(cases[i].value));
        while (ir_http_list_next(&l, &item, &len)) {
            if (count++)
                got[n++] = '|';
            memcpy(got + n, item, len);
            n += len;
            got[n] = 0;
        }
        CHECK(count >= 1); /* an empty value is one empty item */
        CHECK_STR(got, cases[i].items);
        CHECK_EQ_INT(ir_http_list_next(&l, &item, &len), 0);
    }
    ir_http_header h = {.name = "connection", .name_len = 10};
    h.value = "keep-alive, Close";
    h.value_len = strlen(h.value);
    CHECK(ir_http_has_token(&h, "close"));
    CHECK(ir_http_has_token(&h, "KEEP-ALIVE"));
    CHECK(!ir_http_has_token(&h, "clos"));
    CHECK(!ir_http_has_token(&h, "keep-alive, close"));
    h.value = "";
    h.value_len = 0;
    CHECK(!ir_http_has_token(&h, "close"));
}

TEST(response_101_roundtrip)
{
    ir_ws_upgrade u;
    CHECK_EQ_INT(upgrade_of(REQUEST_FULL, &u), IROH_OK);
    char out[1024];
    size_t w;
    CHECK_EQ_INT(ir_ws_build_response_101(&u, out, sizeof out, &w), IROH_OK);
    const char *want = "HTTP/1.1 101 Switching Protocols\r\n"
                       "strict-transport-security: max-age=63072000; includeSubDomains\r\n"
                       "content-security-policy: default-src 'none'; frame-ancestors 'none'; "
                       "form-action 'none'; base-uri 'self'; block-all-mixed-content; "
                       "plugin-types 'none'\r\n"
                       "upgrade: websocket\r\n"
                       "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                       "sec-websocket-protocol: iroh-relay-v2\r\n"
                       "connection: upgrade\r\n"
                       "\r\n";
    CHECK_EQ_INT(w, strlen(want));
    CHECK_MEM(out, want, strlen(want));
    CHECK_EQ_INT(ir_ws_build_response_101(&u, out, w - 1, &w), IROH_ERR_BUFFER_TOO_SMALL);

    /* the client reads it in pieces, with the ServerChallenge frame coalesced */
    char stream[1200];
    size_t n = (size_t)snprintf(stream, sizeof stream, "%s", want);
    static const uint8_t challenge_msg[19] = {0x82, 17, 0x00, 0, 1, 2, 3, 4, 5, 6, 7,
                                              8,    9,  10,   11, 12, 13, 14, 15};
    memcpy(stream + n, challenge_msg, sizeof challenge_msg);
    n += sizeof challenge_msg;
    for (size_t chunk = 1; chunk <= n; chunk += 13) {
        ir_http_reader_init(&reader);
        size_t off = 0, used;
        int rc = 0;
        while (off < n && rc == 0) {
            size_t take = n - off < chunk ? n - off : chunk;
            rc = ir_http_reader_feed(&reader, (const uint8_t *)stream + off, take, &used);
            off += used;
        }
        CHECK_EQ_INT(rc, 1);
        CHECK_EQ_INT(n - off, sizeof challenge_msg); /* kept for the WebSocket parser */
        CHECK_EQ_INT(ir_http_parse_response(reader.buf, reader.len, &response), IROH_OK);
        int version;
        CHECK_EQ_INT(ir_ws_check_response(&response, "dGhlIHNhbXBsZSBub25jZQ==", 24, &version), IROH_OK);
        CHECK_EQ_INT(version, IR_RELAY_V2);
        /* and the leftover is the first relay frame */
        ir_ws_parser p;
        ir_ws_message m;
        ir_ws_parser_init(&p, IR_WS_ROLE_CLIENT, 1 << 20);
        uint8_t rest[32];
        memcpy(rest, stream + off, n - off);
        CHECK_EQ_INT(ir_ws_parser_feed(&p, rest, n - off, &used, &m), 1);
        CHECK_EQ_INT(m.opcode, IR_WS_OP_BINARY);
        ir_relay_frame f;
        CHECK_EQ_INT(ir_relay_frame_decode(m.data, m.len, IR_RELAY_HS_FROM_SERVER, NULL, &f), IROH_OK);
        CHECK_EQ_INT(f.type, IR_RELAY_FT_SERVER_CHALLENGE);
        ir_ws_parser_free(&p);
    }
    u.version = IR_RELAY_V1;
    CHECK_EQ_INT(ir_ws_build_response_101(&u, out, sizeof out, &w), IROH_OK);
    CHECK(strstr(out, "sec-websocket-protocol: iroh-relay-v1\r\n") != NULL);
}

static int check_resp(const char *text, int *version)
{
    int rc = ir_http_parse_response((const uint8_t *)text, strlen(text), &response);
    if (rc != IROH_OK)
        return 100 + rc;
    return ir_ws_check_response(&response, "dGhlIHNhbXBsZSBub25jZQ==", 24, version);
}

#define R_101 "HTTP/1.1 101 Switching Protocols\r\n"
#define R_ACC "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"

TEST(client_response_checks)
{
    int v;
    CHECK_EQ_INT(check_resp(R_101 R_ACC "Sec-WebSocket-Protocol: iroh-relay-v1\r\n\r\n", &v), IROH_OK);
    CHECK_EQ_INT(v, IR_RELAY_V1);
    /* status */
    CHECK_EQ_INT(check_resp("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n", &v),
                 IROH_ERR_HANDSHAKE);
    CHECK_EQ_INT(check_resp("HTTP/1.1 200 OK\r\n" R_ACC "Sec-WebSocket-Protocol: iroh-relay-v2\r\n\r\n", &v),
                 IROH_ERR_HANDSHAKE);
    /* no reason phrase, HTTP/1.0 */
    CHECK_EQ_INT(check_resp("HTTP/1.1 101\r\n" R_ACC "Sec-WebSocket-Protocol: iroh-relay-v2\r\n\r\n", &v),
                 IROH_OK);
    CHECK_EQ_INT(check_resp("HTTP/1.0 101 \r\n" R_ACC "Sec-WebSocket-Protocol: iroh-relay-v2\r\n\r\n", &v),
                 IROH_OK);
    /* accept: missing, wrong, not base64, unpadded */
    CHECK_EQ_INT(check_resp(R_101 "Sec-WebSocket-Protocol: iroh-relay-v2\r\n\r\n", &v), IROH_ERR_HANDSHAKE);
    CHECK_EQ_INT(check_resp(R_101 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOA=\r\n"
                                  "Sec-WebSocket-Protocol: iroh-relay-v2\r\n\r\n", &v),
                 IROH_ERR_HANDSHAKE);
    CHECK_EQ_INT(check_resp(R_101 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo\r\n"
                                  "Sec-WebSocket-Protocol: iroh-relay-v2\r\n\r\n", &v),
                 IROH_ERR_HANDSHAKE);
    CHECK_EQ_INT(check_resp(R_101 "Sec-WebSocket-Accept: *\r\n"
                                  "Sec-WebSocket-Protocol: iroh-relay-v2\r\n\r\n", &v),
                 IROH_ERR_HANDSHAKE);
    /* the first accept counts */
    CHECK_EQ_INT(check_resp(R_101 R_ACC "Sec-WebSocket-Accept: x\r\n"
                                  "Sec-WebSocket-Protocol: iroh-relay-v2\r\n\r\n", &v),
                 IROH_OK);
    /* protocol: missing, unknown, a list, the last one counts */
    CHECK_EQ_INT(check_resp(R_101 R_ACC "\r\n", &v), IROH_ERR_HANDSHAKE);
    CHECK_EQ_INT(check_resp(R_101 R_ACC "Sec-WebSocket-Protocol: iroh-relay-v3\r\n\r\n", &v),
                 IROH_ERR_HANDSHAKE);
    CHECK_EQ_INT(check_resp(R_101 R_ACC "Sec-WebSocket-Protocol: iroh-relay-v2, iroh-relay-v1\r\n\r\n", &v),
                 IROH_ERR_HANDSHAKE);
    CHECK_EQ_INT(check_resp(R_101 R_ACC "Sec-WebSocket-Protocol: iroh-relay-v3\r\n"
                                  "sec-websocket-protocol: iroh-relay-v1\r\n\r\n", &v),
                 IROH_OK);
    CHECK_EQ_INT(v, IR_RELAY_V1);
    /* 25 headers fine, 26 refused */
    static char head[4096];
    for (int count = 25; count <= 26; count++) {
        size_t n = (size_t)snprintf(head, sizeof head, R_101 R_ACC "Sec-WebSocket-Protocol: iroh-relay-v2\r\n");
        for (int i = 2; i < count; i++)
            n += (size_t)snprintf(head + n, sizeof head - n, "x-%d: y\r\n", i);
        snprintf(head + n, sizeof head - n, "\r\n");
        CHECK_EQ_INT(check_resp(head, &v), count == 25 ? IROH_OK : 100 + IROH_ERR_TOO_LONG);
    }
    /* malformed status lines */
    CHECK_EQ_INT(check_resp("HTTP/1.1 10 Switching\r\n\r\n", &v), 100 + IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(check_resp("HTTP/1.1 1O1 x\r\n\r\n", &v), 100 + IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(check_resp("HTTP/1.1 101x\r\n\r\n", &v), 100 + IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(check_resp("HTTP/1.2 101 x\r\n\r\n", &v), 100 + IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(check_resp("HTTP/1.1  101 x\r\n\r\n", &v), 100 + IROH_ERR_INVALID_ARGUMENT);
    const char *valid = R_101 R_ACC "Sec-WebSocket-Protocol: iroh-relay-v2\r\n\r\n";
    for (size_t k = 0; k < strlen(valid); k++)
        CHECK(ir_http_parse_response((const uint8_t *)valid, k, &response) < 0);
}

TEST(reject_responses)
{
    ir_ws_upgrade u;
    char out[1024];
    size_t w;
    CHECK_EQ_INT(upgrade_of(H_START H_UP H_KEY "Sec-WebSocket-Version: 8\r\n"
                            "sec-websocket-protocol: iroh-relay-v2\r\n\r\n", &u),
                 IROH_ERR_HANDSHAKE);
    CHECK_EQ_INT(ir_ws_build_reject(&u, out, sizeof out, &w), IROH_OK);
    out[w] = 0;
    const char *body = "invalid header value for sec-websocket-version: unsupported websocket "
                       "version, only supporting 13";
    char want[1024];
    snprintf(want, sizeof want,
             "HTTP/1.1 400 Bad Request\r\n"
             "strict-transport-security: max-age=63072000; includeSubDomains\r\n"
             "content-security-policy: " IR_RELAY_CSP "\r\n"
             "sec-websocket-version: 13\r\n"
             "connection: close\r\n"
             "content-length: %zu\r\n"
             "\r\n%s",
             strlen(body), body);
    CHECK_STR(out, want);
    /* the client side sees a 400 */
    ir_http_reader_init(&reader);
    size_t used;
    CHECK_EQ_INT(ir_http_reader_feed(&reader, (const uint8_t *)out, w, &used), 1);
    CHECK_EQ_INT(w - used, strlen(body));
    CHECK_EQ_INT(ir_http_parse_response(reader.buf, reader.len, &response), IROH_OK);
    CHECK_EQ_INT(response.status, 400);
    int v;
    CHECK_EQ_INT(ir_ws_check_response(&response, "k", 1, &v), IROH_ERR_HANDSHAKE);
    /* 404 */
    CHECK_EQ_INT(upgrade_of("GET /nope HTTP/1.1\r\n\r\n", &u), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(ir_ws_build_reject(&u, out, sizeof out, &w), IROH_OK);
    CHECK(memcmp(out, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    CHECK_EQ_INT(ir_ws_build_reject(&u, out, 10, &w), IROH_ERR_BUFFER_TOO_SMALL);
}

int main(void)
{
    RUN(rfc6455_examples);
    RUN(writer_matches_rfc);
    RUN(mask_in_pieces);
    RUN(fragmentation_with_control_frames);
    RUN(protocol_violations);
    RUN(sticky_errors_and_close);
    RUN(size_limits);
    RUN(truncations_never_fail);
    RUN(random_chunking_against_reference);
    RUN(accept_key_rfc_example);
    RUN(client_request_exact);
    RUN(server_parses_request);
    RUN(server_upgrade_checks);
    RUN(request_limits);
    RUN(http_syntax);
    RUN(http_lists);
    RUN(response_101_roundtrip);
    RUN(client_response_checks);
    RUN(reject_responses);
    TEST_EXIT();
}
