#include "frame.h"

#include <string.h>

#include "base/postcard.h"
#include "base/util.h"
#include "text.h"

/* ---- keys ------------------------------------------------------------------------------ */

void ir_relay_keycache_init(ir_relay_keycache *c)
{
    memset(c, 0, sizeof *c);
}

static size_t cache_slot(const uint8_t k[32])
{
    /* keys are not secret and mostly random; mixing a few bytes is enough */
    uint32_t h = (uint32_t)k[0] | (uint32_t)k[7] << 8 | (uint32_t)k[19] << 16 | (uint32_t)k[31] << 24;
    h *= 0x9e3779b1u;
    return (h >> 24) % IR_RELAY_KEYCACHE_SLOTS;
}

int ir_relay_key_from_bytes(ir_relay_keycache *c, const uint8_t bytes[32], iroh_endpoint_id *out)
{
    size_t slot = 0;
    if (c) {
        slot = cache_slot(bytes);
        if (c->used[slot] && memcmp(c->keys[slot], bytes, 32) == 0) {
            memcpy(out->bytes, bytes, 32);
            return IROH_OK;
        }
    }
    int rc = iroh_endpoint_id_from_bytes(bytes, out);
    if (rc != IROH_OK)
        return rc;
    if (c) {
        memcpy(c->keys[slot], bytes, 32);
        c->used[slot] = 1;
    }
    return IROH_OK;
}

/* ---- names ----------------------------------------------------------------------------- */

const char *ir_relay_frame_type_name(uint64_t type)
{
    static const char *const names[] = {
        "ServerChallenge",       "ClientAuth",           "ServerConfirmsAuth",
        "ServerDeniesAuth",      "ClientToRelayDatagram", "ClientToRelayDatagramBatch",
        "RelayToClientDatagram", "RelayToClientDatagramBatch", "EndpointGone",
        "Ping",                  "Pong",                 "Health",
        "Restarting",            "Status",
    };
    return type <= IR_RELAY_FT_MAX ? names[type] : "Unknown";
}

const char *ir_relay_status_text(uint8_t status)
{
    switch (status) {
    case IR_RELAY_STATUS_HEALTHY:
        return "The connection is healthy and has recovered from previous problems";
    case IR_RELAY_STATUS_SAME_ENDPOINT_ID_CONNECTED:
        return "Another endpoint connected with the same endpoint id. No more messages will be "
               "received.";
    case IR_RELAY_STATUS_RATE_LIMITED:
        return "The relay is rate-limiting this endpoint; outbound relay traffic is being "
               "throttled. Send less data over the relay, or, if you operate this relay, raise "
               "Limits::client_rx. Read more about rate limiting at "
               "https://docs.iroh.computer/relays/rate-limiting";
    }
    return NULL;
}

/* ---- decoding -------------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* QUIC varint; returns its length or 0 if truncated */
static size_t get_qvarint(const uint8_t *p, size_t len, uint64_t *out)
{
    if (len == 0)
        return 0;
    size_t n = (size_t)1 << (p[0] >> 6);
    if (n > len)
        return 0;
    uint64_t v = p[0] & 0x3f;
    for (size_t i = 1; i < n; i++)
        v = v << 8 | p[i];
    *out = v;
    return n;
}

static int bad(const char *type_name, const char *why)
{
    return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid %s frame: %s", type_name, why);
}

static int decode_handshake(uint8_t type, const uint8_t *b, size_t n, ir_relay_keycache *cache,
                            ir_relay_frame *f)
{
    const char *name = ir_relay_frame_type_name(type);
    ir_pc_reader r;
    ir_pc_reader_init(&r, b, n);
    const uint8_t *p;
    uint64_t v;
    switch (type) {
    case IR_RELAY_FT_SERVER_CHALLENGE:
        if (ir_pc_get_raw(&r, 16, &p) < 0)
            return bad(name, r.why);
        memcpy(f->u.challenge, p, 16);
        return IROH_OK;
    case IR_RELAY_FT_CLIENT_AUTH: {
        if (ir_pc_get_raw(&r, 32, &p) < 0)
            return bad(name, r.why);
        int rc = ir_relay_key_from_bytes(cache, p, &f->u.client_auth.key);
        if (rc != IROH_OK)
            return ir_fail(rc, "invalid ClientAuth frame: invalid public key");
        if (ir_pc_get_varint(&r, UINT64_MAX, &v) < 0)
            return bad(name, r.why);
        if (v != 64)
            return bad(name, "signature length is not 64");
        if (ir_pc_get_raw(&r, 64, &p) < 0)
            return bad(name, r.why);
        memcpy(f->u.client_auth.sig.bytes, p, 64);
        return IROH_OK;
    }
    case IR_RELAY_FT_SERVER_CONFIRMS_AUTH:
        return IROH_OK;
    case IR_RELAY_FT_SERVER_DENIES_AUTH: {
        size_t len;
        if (ir_pc_get_bytes(&r, &p, &len) < 0)
            return bad(name, r.why);
        if (!ir_utf8_valid(p, len))
            return bad(name, "reason is not UTF-8");
        f->u.text.text = (const char *)p;
        f->u.text.len = len;
        return IROH_OK;
    }
    }
    return bad(name, "not a handshake type");
}

static int decode_dgram(uint8_t type, const uint8_t *b, size_t n, ir_relay_keycache *cache,
                        ir_relay_frame *f)
{
    const char *name = ir_relay_frame_type_name(type);
    int batch = type == IR_RELAY_FT_C2R_DATAGRAM_BATCH || type == IR_RELAY_FT_R2C_DATAGRAM_BATCH;
    if (n < 32)
        return bad(name, "shorter than a public key");
    int rc = ir_relay_key_from_bytes(cache, b, &f->u.dgram.id);
    if (rc != IROH_OK)
        return ir_fail(rc, "invalid %s frame: invalid public key", name);
    b += 32;
    n -= 32;
    if (n < (batch ? 3u : 1u))
        return bad(name, batch ? "missing ECN or segment size" : "missing ECN byte");
    ir_relay_datagrams *d = &f->u.dgram.d;
    d->ecn = b[0] & 3;
    d->segment_size = batch ? (uint16_t)(b[1] << 8 | b[2]) : 0;
    d->contents = b + (batch ? 3 : 1);
    d->len = n - (batch ? 3 : 1);
    return IROH_OK;
}

int ir_relay_frame_decode(const uint8_t *buf, size_t len, uint32_t allowed,
                          ir_relay_keycache *cache, ir_relay_frame *f)
{
    uint64_t type;
    size_t tl = get_qvarint(buf, len, &type);
    if (tl == 0)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "not enough bytes to parse frame type");
    if (type > IR_RELAY_FT_MAX)
        return ir_fail(IROH_ERR_UNSUPPORTED, "frame type unknown: %llu", (unsigned long long)type);
    const char *name = ir_relay_frame_type_name(type);
    const uint8_t *b = buf + tl;
    size_t n = len - tl;
    if (type >= IR_RELAY_FT_C2R_DATAGRAM && n > IR_RELAY_MAX_PACKET_SIZE)
        return ir_fail(IROH_ERR_TOO_LONG, "%s frame is too large, has %zu bytes", name, n);
    if (!(allowed & IR_RELAY_BIT(type)))
        return ir_fail(IROH_ERR_UNSUPPORTED, "unexpected frame type %s", name);
    memset(f, 0, sizeof *f);
    f->type = (uint8_t)type;
    switch (type) {
    case IR_RELAY_FT_SERVER_CHALLENGE:
    case IR_RELAY_FT_CLIENT_AUTH:
    case IR_RELAY_FT_SERVER_CONFIRMS_AUTH:
    case IR_RELAY_FT_SERVER_DENIES_AUTH:
        return decode_handshake((uint8_t)type, b, n, cache, f);
    case IR_RELAY_FT_C2R_DATAGRAM:
    case IR_RELAY_FT_C2R_DATAGRAM_BATCH:
    case IR_RELAY_FT_R2C_DATAGRAM:
    case IR_RELAY_FT_R2C_DATAGRAM_BATCH:
        return decode_dgram((uint8_t)type, b, n, cache, f);
    case IR_RELAY_FT_ENDPOINT_GONE: {
        if (n != 32)
            return bad(name, "length is not 32");
        int rc = ir_relay_key_from_bytes(cache, b, &f->u.endpoint_gone);
        if (rc != IROH_OK)
            return ir_fail(rc, "invalid EndpointGone frame: invalid public key");
        return IROH_OK;
    }
    case IR_RELAY_FT_PING:
    case IR_RELAY_FT_PONG:
        if (n != 8)
            return bad(name, "length is not 8");
        memcpy(f->u.ping, b, 8);
        return IROH_OK;
    case IR_RELAY_FT_HEALTH:
        if (!ir_utf8_valid(b, n))
            return bad(name, "text is not UTF-8");
        f->u.text.text = (const char *)b;
        f->u.text.len = n;
        return IROH_OK;
    case IR_RELAY_FT_RESTARTING:
        if (n != 8)
            return bad(name, "length is not 8");
        f->u.restarting.reconnect_in_ms = be32(b);
        f->u.restarting.try_for_ms = be32(b + 4);
        return IROH_OK;
    case IR_RELAY_FT_STATUS:
        if (n < 1)
            return bad(name, "empty");
        f->u.status = b[0];
        return IROH_OK;
    }
    return ir_fail(IROH_ERR_UNSUPPORTED, "frame type unknown");
}

/* ---- encoding -------------------------------------------------------------------------- */

static size_t pc_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t pc_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        p[n++] = byte | (v ? 0x80 : 0);
    } while (v);
    return n;
}

static int is_dgram(uint8_t t)
{
    return t >= IR_RELAY_FT_C2R_DATAGRAM && t <= IR_RELAY_FT_R2C_DATAGRAM_BATCH;
}

size_t ir_relay_dgram_header_len(uint16_t segment_size)
{
    return segment_size ? 36 : 34;
}

size_t ir_relay_dgram_header_write(uint8_t *out, int c2r, const iroh_endpoint_id *id, uint8_t ecn,
                                   uint16_t segment_size)
{
    uint8_t t = c2r ? IR_RELAY_FT_C2R_DATAGRAM : IR_RELAY_FT_R2C_DATAGRAM;
    out[0] = (uint8_t)(t + (segment_size ? 1 : 0));
    memcpy(out + 1, id->bytes, 32);
    out[33] = ecn;
    if (!segment_size)
        return 34;
    out[34] = (uint8_t)(segment_size >> 8);
    out[35] = (uint8_t)segment_size;
    return 36;
}

size_t ir_relay_frame_encoded_len(const ir_relay_frame *f)
{
    switch (f->type) {
    case IR_RELAY_FT_SERVER_CHALLENGE:
        return 17;
    case IR_RELAY_FT_CLIENT_AUTH:
        return 98;
    case IR_RELAY_FT_SERVER_CONFIRMS_AUTH:
        return 1;
    case IR_RELAY_FT_SERVER_DENIES_AUTH:
        return 1 + pc_varint_len(f->u.text.len) + f->u.text.len;
    case IR_RELAY_FT_C2R_DATAGRAM:
    case IR_RELAY_FT_C2R_DATAGRAM_BATCH:
    case IR_RELAY_FT_R2C_DATAGRAM:
    case IR_RELAY_FT_R2C_DATAGRAM_BATCH:
        return ir_relay_dgram_header_len(f->u.dgram.d.segment_size) + f->u.dgram.d.len;
    case IR_RELAY_FT_ENDPOINT_GONE:
        return 33;
    case IR_RELAY_FT_PING:
    case IR_RELAY_FT_PONG:
        return 9;
    case IR_RELAY_FT_HEALTH:
        return 1 + f->u.text.len;
    case IR_RELAY_FT_RESTARTING:
        return 9;
    case IR_RELAY_FT_STATUS:
        return 2;
    }
    return 0;
}

int ir_relay_frame_encode(const ir_relay_frame *f, uint8_t *out, size_t cap, size_t *written)
{
    *written = 0;
    if (f->type > IR_RELAY_FT_MAX)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "unknown relay frame type %u", f->type);
    const char *name = ir_relay_frame_type_name(f->type);
    if (is_dgram(f->type)) {
        if (f->u.dgram.d.len == 0)
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "%s frame with empty contents", name);
        if (f->u.dgram.d.ecn > 3)
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid ECN value %u", f->u.dgram.d.ecn);
    }
    if ((f->type == IR_RELAY_FT_HEALTH || f->type == IR_RELAY_FT_SERVER_DENIES_AUTH) &&
        !ir_utf8_valid((const uint8_t *)f->u.text.text, f->u.text.len))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "%s text is not UTF-8", name);
    size_t need = ir_relay_frame_encoded_len(f);
    if (f->type >= IR_RELAY_FT_C2R_DATAGRAM && need > IR_RELAY_MAX_PACKET_SIZE)
        return ir_fail(IROH_ERR_TOO_LONG, "%s frame of %zu bytes exceeds the maximum packet size",
                       name, need);
    if (need > cap)
        return ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "%s frame needs %zu bytes", name, need);
    uint8_t *p = out;
    *p++ = f->type;
    switch (f->type) {
    case IR_RELAY_FT_SERVER_CHALLENGE:
        memcpy(p, f->u.challenge, 16);
        break;
    case IR_RELAY_FT_CLIENT_AUTH:
        memcpy(p, f->u.client_auth.key.bytes, 32);
        p[32] = 64;
        memcpy(p + 33, f->u.client_auth.sig.bytes, 64);
        break;
    case IR_RELAY_FT_SERVER_CONFIRMS_AUTH:
        break;
    case IR_RELAY_FT_SERVER_DENIES_AUTH:
        p += pc_varint_put(p, f->u.text.len);
        if (f->u.text.len)
            memcpy(p, f->u.text.text, f->u.text.len);
        break;
    case IR_RELAY_FT_C2R_DATAGRAM:
    case IR_RELAY_FT_C2R_DATAGRAM_BATCH:
    case IR_RELAY_FT_R2C_DATAGRAM:
    case IR_RELAY_FT_R2C_DATAGRAM_BATCH: {
        const ir_relay_datagrams *d = &f->u.dgram.d;
        size_t h = ir_relay_dgram_header_write(out, f->type <= IR_RELAY_FT_C2R_DATAGRAM_BATCH,
                                               &f->u.dgram.id, d->ecn, d->segment_size);
        memcpy(out + h, d->contents, d->len);
        break;
    }
    case IR_RELAY_FT_ENDPOINT_GONE:
        memcpy(p, f->u.endpoint_gone.bytes, 32);
        break;
    case IR_RELAY_FT_PING:
    case IR_RELAY_FT_PONG:
        memcpy(p, f->u.ping, 8);
        break;
    case IR_RELAY_FT_HEALTH:
        if (f->u.text.len)
            memcpy(p, f->u.text.text, f->u.text.len);
        break;
    case IR_RELAY_FT_RESTARTING:
        put_be32(p, f->u.restarting.reconnect_in_ms);
        put_be32(p + 4, f->u.restarting.try_for_ms);
        break;
    case IR_RELAY_FT_STATUS:
        p[0] = f->u.status;
        break;
    }
    *written = need;
    return IROH_OK;
}

/* ---- datagram iteration ---------------------------------------------------------------- */

void ir_relay_dgram_iter_init(ir_relay_dgram_iter *it, const ir_relay_datagrams *d)
{
    it->p = d->contents;
    it->left = d->len;
    it->seg = d->segment_size;
}

int ir_relay_dgram_iter_next(ir_relay_dgram_iter *it, const uint8_t **dgram, size_t *len)
{
    if (it->left == 0)
        return 0;
    size_t n = it->seg && it->seg < it->left ? it->seg : it->left;
    *dgram = it->p;
    *len = n;
    it->p += n;
    it->left -= n;
    return 1;
}

size_t ir_relay_dgram_count(const ir_relay_datagrams *d)
{
    if (d->len == 0)
        return 0;
    if (d->segment_size == 0)
        return 1;
    return (d->len + d->segment_size - 1) / d->segment_size;
}
