/* The relay client (relay/client.h) fed arbitrary bytes from "the relay server".
 *
 * Input: 1 mode byte, then the stream.
 *  - mode bit 0 clear: the stream is the server's whole answer from the first byte (the
 *    HTTP response parser, the 101 checks);
 *  - mode bit 0 set: a valid 101 for the client's request comes first (its accept value
 *    computed from the request's key), then the stream: WebSocket frames, the handshake
 *    and relay frames. Mode bit 1 makes the stream unmasked server frames built from the
 *    input (2-byte length prefix per frame, binary), so that the relay frame decoder is
 *    reached often; otherwise the bytes go raw.
 * Bits 2-4 pick a chunk size. Time advances with each chunk, so timers run too.
 * Whatever comes, the client must stay consistent: it never crashes, and once FAILED it
 * gives a reason; events are drained; datagram sends are tried in every state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/client.h"
#include "relay/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fixed_random(void *ctx, uint8_t *buf, size_t len)
{
    unsigned *n = ctx;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(++*n * 131);
}

static void drain(ir_relay_client *c)
{
    ir_relay_client_event ev;
    while (ir_relay_client_poll(c, &ev)) {
        if (ev.kind == IR_RELAY_EV_DATAGRAM) {
            ir_relay_dgram_iter it;
            ir_relay_dgram_iter_init(&it, &ev.dgrams);
            const uint8_t *d;
            size_t l;
            size_t total = 0;
            while (ir_relay_dgram_iter_next(&it, &d, &l))
                total += l;
            if (total != ev.dgrams.len)
                abort();
        }
        if (ev.kind == IR_RELAY_EV_FAILED && !ev.reason)
            abort();
    }
    const uint8_t *p;
    size_t n = ir_relay_client_pending(c, &p);
    if (n)
        ir_relay_client_consumed(c, n > 1000 ? n / 2 : n);
}

static void feed(ir_relay_client *c, const uint8_t *d, size_t len, size_t chunk, uint64_t *now)
{
    while (len) {
        size_t n = len < chunk ? len : chunk;
        uint8_t tmp[4096];
        size_t k = n < sizeof tmp ? n : sizeof tmp;
        memcpy(tmp, d, k);
        ir_relay_client_recv(c, tmp, k, *now);
        d += k;
        len -= k;
        *now += 300000000ull; /* 0.3 s per chunk */
        uint64_t t = ir_relay_client_timeout(c);
        if (t && *now >= t)
            ir_relay_client_on_timeout(c, *now);
        static const uint8_t dst[32] = {1};
        (void)ir_relay_client_send(c, dst, 0, (const uint8_t *)"x", 1);
        drain(c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    static const size_t chunks[8] = {1, 2, 7, 64, 300, 1500, 4096, 100000};
    size_t chunk = chunks[(mode >> 2) & 7];
    unsigned rnd = 0;
    ir_relay_client_config cfg;
    ir_relay_client_config_init(&cfg);
    memset(cfg.secret_key.bytes, 7, 32);
    cfg.host = "127.0.0.1:3340";
    cfg.random = fixed_random;
    cfg.random_ctx = &rnd;
    cfg.now = 1000000000ull;
    ir_relay_client *c;
    if (ir_relay_client_new(&cfg, &c) != IROH_OK)
        return 0;
    uint64_t now = cfg.now;
    const uint8_t *req;
    size_t reqlen = ir_relay_client_pending(c, &req);
    if (mode & 1) {
        /* find the request's key and answer it properly */
        char head[2048];
        size_t hl = reqlen < sizeof head - 1 ? reqlen : sizeof head - 1;
        memcpy(head, req, hl);
        head[hl] = 0;
        const char *k = strstr(head, "Sec-WebSocket-Key: ");
        if (!k)
            abort();
        k += strlen("Sec-WebSocket-Key: ");
        size_t klen = strcspn(k, "\r");
        char accept[IR_WS_ACCEPT_LEN + 1];
        ir_ws_accept_key(k, klen, accept);
        char resp[512];
        int rl = snprintf(resp, sizeof resp,
                          "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                          "connection: upgrade\r\nsec-websocket-accept: %s\r\n"
                          "sec-websocket-protocol: iroh-relay-v2\r\n\r\n",
                          accept);
        ir_relay_client_consumed(c, reqlen);
        ir_relay_client_recv(c, (uint8_t *)resp, (size_t)rl, now);
        drain(c);
        if (mode & 2) {
            /* frames: [len hi, len lo] + payload, wrapped as server binary messages */
            size_t off = 0;
            while (off + 2 <= size) {
                size_t fl = (size_t)data[off] << 8 | data[off + 1];
                off += 2;
                if (fl > size - off)
                    fl = size - off;
                uint8_t frame[10 + 65536];
                size_t h = 0;
                frame[h++] = 0x82;
                if (fl < 126) {
                    frame[h++] = (uint8_t)fl;
                } else {
                    frame[h++] = 126;
                    frame[h++] = (uint8_t)(fl >> 8);
                    frame[h++] = (uint8_t)fl;
                }
                memcpy(frame + h, data + off, fl);
                feed(c, frame, h + fl, chunk, &now);
                off += fl;
            }
            goto done;
        }
    }
    feed(c, data, size, chunk, &now);
done:
    if (ir_relay_client_state(c) == IR_RELAY_CLIENT_FAILED && !ir_relay_client_failure(c)[0])
        abort();
    ir_relay_client_eof(c, "end of input");
    drain(c);
    ir_relay_client_free(c);
    return 0;
}
