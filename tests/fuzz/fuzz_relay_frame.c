/* Relay frames, the keying-material header and the base64 / UTF-8 helpers on raw bytes:
 * rejected cleanly, or decoded to a frame whose canonical encoding decodes to itself and
 * is never longer than the input (equal to it when the input was canonical). */
#include <stdlib.h>
#include <string.h>

#include "relay/frame.h"
#include "relay/handshake.h"
#include "relay/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint32_t masks[] = {
    IR_RELAY_FROM_CLIENT,    IR_RELAY_FROM_SERVER_V1, IR_RELAY_FROM_SERVER_V2,
    IR_RELAY_HS_FROM_CLIENT, IR_RELAY_HS_FROM_SERVER,
};

static void check_iter(const ir_relay_datagrams *d)
{
    ir_relay_dgram_iter it;
    const uint8_t *p;
    size_t len, total = 0, count = 0;
    ir_relay_dgram_iter_init(&it, d);
    while (ir_relay_dgram_iter_next(&it, &p, &len)) {
        if (len == 0 || p != d->contents + total)
            abort();
        if (d->segment_size && len > d->segment_size)
            abort();
        if (d->segment_size && total + len < d->len && len != d->segment_size)
            abort(); /* only the last may be short */
        total += len;
        count++;
    }
    if (total != d->len || count != ir_relay_dgram_count(d))
        abort();
}

static int is_dgram(uint8_t t)
{
    return t >= IR_RELAY_FT_C2R_DATAGRAM && t <= IR_RELAY_FT_R2C_DATAGRAM_BATCH;
}

static void fuzz_frame(const uint8_t *data, size_t size)
{
    static ir_relay_keycache *cache; /* lazy; exercised across inputs */
    if (!cache) {
        cache = malloc(sizeof *cache);
        if (!cache)
            abort();
        ir_relay_keycache_init(cache);
    }
    ir_relay_frame f, g;
    int rc = ir_relay_frame_decode(data, size, IR_RELAY_ALLOW_ALL, NULL, &f);
    /* the cache never changes a verdict */
    if (ir_relay_frame_decode(data, size, IR_RELAY_ALLOW_ALL, cache, &g) != rc)
        abort();
    /* a mask only removes types */
    for (size_t i = 0; i < sizeof masks / sizeof *masks; i++) {
        int r = ir_relay_frame_decode(data, size, masks[i], NULL, &g);
        if (rc == IROH_OK) {
            int allowed = (masks[i] & IR_RELAY_BIT(f.type)) != 0;
            if (allowed ? r != IROH_OK : r != IROH_ERR_UNSUPPORTED)
                abort();
        } else if (r == IROH_OK) {
            abort();
        }
    }
    if (rc != IROH_OK)
        return;
    if (is_dgram(f.type)) {
        if (f.u.dgram.d.ecn > 3)
            abort();
        check_iter(&f.u.dgram.d);
    }
    if (f.type == IR_RELAY_FT_CLIENT_AUTH) {
        static const uint8_t ch[16] = {1, 2, 3};
        int v = ir_relay_client_auth_verify(&f, ch);
        if (v != IROH_OK && v != IROH_ERR_INVALID_SIGNATURE)
            abort();
    }

    size_t cap = ir_relay_frame_encoded_len(&f) + 16;
    uint8_t *out = malloc(cap), *again = malloc(cap);
    size_t w = 0, w2 = 0;
    if (!out || !again)
        abort();
    int e = ir_relay_frame_encode(&f, out, cap, &w);
    if (e != IROH_OK) {
        /* only what the encoder is stricter about: empty datagrams, 65536 bytes with the type */
        if (e == IROH_ERR_INVALID_ARGUMENT && !(is_dgram(f.type) && f.u.dgram.d.len == 0))
            abort();
        if (e == IROH_ERR_TOO_LONG && ir_relay_frame_encoded_len(&f) <= IR_RELAY_MAX_PACKET_SIZE)
            abort();
        if (e != IROH_ERR_INVALID_ARGUMENT && e != IROH_ERR_TOO_LONG)
            abort();
        goto done;
    }
    if (w != ir_relay_frame_encoded_len(&f) || w > size)
        abort();
    /* the canonical form decodes to the same frame and re-encodes identically */
    if (ir_relay_frame_decode(out, w, IR_RELAY_ALLOW_ALL, NULL, &g) != IROH_OK)
        abort();
    if (ir_relay_frame_encode(&g, again, cap, &w2) != IROH_OK || w2 != w ||
        memcmp(out, again, w) != 0)
        abort();
    /* a canonical input (one-byte type, clean ECN byte, no batch with segment size 0,
     * nothing non-minimal or trailing, which all make the input longer) is reproduced */
    int canonical = data[0] < 0x40 && w == size;
    if (canonical && is_dgram(f.type)) {
        uint8_t ecn = data[33];
        int batch = f.type & 1;
        if (ecn > 3 || (batch && f.u.dgram.d.segment_size == 0))
            canonical = 0;
    }
    if (canonical && memcmp(out, data, size) != 0)
        abort();
done:
    free(out);
    free(again);
}

static void fuzz_text(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    ir_relay_km_auth a, b;
    if (ir_relay_km_auth_decode(text, size, &a) == IROH_OK) {
        char enc[IR_RELAY_KM_AUTH_TEXT_LEN + 1];
        if (ir_relay_km_auth_encode(&a, enc, sizeof enc) != IROH_OK)
            abort();
        if (ir_relay_km_auth_decode(enc, strlen(enc), &b) != IROH_OK ||
            memcmp(&a, &b, sizeof a) != 0)
            abort();
        if (size == IR_RELAY_KM_AUTH_TEXT_LEN && memcmp(enc, text, size) != 0)
            abort();
        uint8_t m[32] = {0};
        int v = ir_relay_km_auth_verify(&a, m);
        if (v != IROH_OK && v != IROH_ERR_HANDSHAKE && v != IROH_ERR_INVALID_SIGNATURE)
            abort();
    }
    /* strict base64: whatever decodes re-encodes to the same text */
    if (size <= 4096) {
        uint8_t raw[4096];
        char back[4096 / 3 * 4 + 8];
        for (int alpha = 0; alpha < 2; alpha++) {
            long n = ir_b64_decode((ir_b64_alphabet)alpha, text, size, raw, sizeof raw);
            if (n < 0)
                continue;
            ir_b64_encode((ir_b64_alphabet)alpha, raw, (size_t)n, back);
            if (strlen(back) != size || memcmp(back, text, size) != 0)
                abort();
        }
    }
    (void)ir_utf8_valid(data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_frame(data, size);
    fuzz_text(data, size);
    return 0;
}
