#include "quic/packet.h"

#include <string.h>

#include "crypto/crypto.h"
#include "quic/varint.h"

int ir_cid_eq(const ir_cid *a, const ir_cid *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static int get_cid(ir_cursor *c, ir_cid *cid, int allow_long)
{
    uint8_t n;
    const uint8_t *d;
    if (ir_get_u8(c, &n) != 0 || (n > IR_MAX_CID_LEN && !allow_long) || ir_get_bytes(c, n, &d) != 0)
        return -1;
    if (n > IR_MAX_CID_LEN) { /* only for unknown versions: keep the first 20 bytes */
        n = IR_MAX_CID_LEN;
    }
    cid->len = n;
    memcpy(cid->data, d, n);
    return 0;
}

int ir_pkt_parse(const uint8_t *p, size_t len, size_t short_dcid_len, ir_pkt_hdr *h)
{
    memset(h, 0, sizeof *h);
    if (len < 1)
        return -1;
    ir_cursor c;
    ir_cursor_init(&c, p, len);
    uint8_t first = p[0];
    c.pos = 1;
    if (!(first & 0x80)) {
        /* short header: fixed bit, then our DCID */
        if (!(first & 0x40) || len < 1 + short_dcid_len)
            return -1;
        h->type = IR_PT_1RTT;
        h->version = IR_QUIC_V1;
        h->dcid.len = (uint8_t)short_dcid_len;
        memcpy(h->dcid.data, p + 1, short_dcid_len);
        h->pn_offset = 1 + short_dcid_len;
        h->pkt_len = len;
        return 0;
    }
    uint64_t v;
    if (ir_get_uint(&c, 4, &v) != 0)
        return -1;
    h->version = (uint32_t)v;
    if (h->version == 0) {
        h->type = IR_PT_VN;
        if (get_cid(&c, &h->dcid, 1) != 0 || get_cid(&c, &h->scid, 1) != 0)
            return -1;
        h->pn_offset = c.pos; /* start of the version list */
        h->pkt_len = len;
        return 0;
    }
    if (h->version != IR_QUIC_V1) {
        /* unknown version: the invariant header only (CIDs may be up to 255 bytes) */
        if (get_cid(&c, &h->dcid, 1) != 0 || get_cid(&c, &h->scid, 1) != 0)
            return -1;
        h->type = IR_PT_INITIAL;
        h->pkt_len = len;
        return 0;
    }
    if (!(first & 0x40))
        return -1;
    if (get_cid(&c, &h->dcid, 0) != 0 || get_cid(&c, &h->scid, 0) != 0)
        return -1;
    h->type = (ir_pkt_type)((first >> 4) & 3);
    if (h->type == IR_PT_RETRY) {
        if (ir_cursor_left(&c) < IR_RETRY_TAG_LEN)
            return -1;
        h->token = p + c.pos;
        h->token_len = ir_cursor_left(&c) - IR_RETRY_TAG_LEN;
        h->pkt_len = len;
        return 0;
    }
    if (h->type == IR_PT_INITIAL) {
        uint64_t tlen;
        if (ir_get_varint(&c, &tlen) != 0 || tlen > ir_cursor_left(&c))
            return -1;
        h->token = p + c.pos;
        h->token_len = (size_t)tlen;
        c.pos += (size_t)tlen;
    }
    uint64_t plen;
    if (ir_get_varint(&c, &plen) != 0 || plen > ir_cursor_left(&c))
        return -1;
    h->pn_offset = c.pos;
    h->pkt_len = c.pos + (size_t)plen;
    return 0;
}

size_t ir_pn_encode_len(uint64_t pn, uint64_t largest_acked)
{
    uint64_t unacked = largest_acked == UINT64_MAX ? pn + 1 : pn - largest_acked;
    /* enough bits to represent more than twice the unacknowledged range */
    if (unacked < (1u << 7))
        return 1;
    if (unacked < (1u << 15))
        return 2;
    if (unacked < (1u << 23))
        return 3;
    return 4;
}

uint64_t ir_pn_decode(uint64_t largest_pn, uint64_t truncated, size_t pn_len)
{
    uint64_t expected = largest_pn == UINT64_MAX ? 0 : largest_pn + 1;
    uint64_t win = (uint64_t)1 << (pn_len * 8);
    uint64_t hwin = win / 2, mask = win - 1;
    uint64_t candidate = (expected & ~mask) | truncated;
    if (candidate + hwin <= expected && candidate < ((uint64_t)1 << 62) - win)
        return candidate + win;
    if (candidate > expected + hwin && candidate >= win)
        return candidate - win;
    return candidate;
}

int ir_pkt_unprotect_header(uint8_t *p, const ir_pkt_hdr *h, const ir_hp *hp,
                            uint64_t largest_pn, uint64_t *pn, size_t *pn_len)
{
    size_t sample_at = h->pn_offset + 4;
    if (h->pkt_len < sample_at + IR_HP_SAMPLE_LEN)
        return -1;
    uint8_t mask[IR_HP_MASK_LEN];
    ir_hp_mask(hp, p + sample_at, mask);
    p[0] ^= mask[0] & ((p[0] & 0x80) ? 0x0f : 0x1f);
    size_t n = (size_t)(p[0] & 3) + 1;
    uint64_t t = 0;
    for (size_t i = 0; i < n; i++) {
        p[h->pn_offset + i] ^= mask[1 + i];
        t = t << 8 | p[h->pn_offset + i];
    }
    *pn_len = n;
    *pn = ir_pn_decode(largest_pn, t, n);
    return 0;
}

int ir_pkt_decrypt(uint8_t *p, const ir_pkt_hdr *h, size_t pn_len, const ir_aead *a,
                   uint32_t path_id, uint64_t pn, const uint8_t **payload, size_t *payload_len)
{
    size_t hdr_len = h->pn_offset + pn_len;
    if (h->pkt_len < hdr_len + IR_AEAD_TAG_LEN)
        return -1;
    long n = ir_aead_open(a, path_id, pn, p, hdr_len, p + hdr_len, h->pkt_len - hdr_len,
                          p + hdr_len);
    if (n < 0)
        return -1;
    *payload = p + hdr_len;
    *payload_len = (size_t)n;
    return 0;
}

int ir_pkt_initial_opens(const uint8_t *p, const ir_pkt_hdr *h)
{
    if (h->type != IR_PT_INITIAL || h->version != IR_QUIC_V1 ||
        h->pkt_len > IR_INITIAL_CHECK_MAX || h->pn_offset + 4 + IR_HP_SAMPLE_LEN > h->pkt_len)
        return 0;
    uint8_t secret[32];
    ir_pkt_keys k;
    ir_initial_secrets(h->dcid.data, h->dcid.len, secret, NULL);
    int rc = ir_pkt_keys_init(&k, IR_AEAD_AES_128_GCM, IR_HASH_SHA256, secret, sizeof secret);
    explicit_bzero(secret, sizeof secret);
    if (rc != 0)
        return 0;
    /* the header is unmasked in a copy; the payload opens from p into the copy */
    uint8_t copy[IR_INITIAL_CHECK_MAX];
    memcpy(copy, p, h->pn_offset + 4);
    uint8_t mask[IR_HP_MASK_LEN];
    ir_hp_mask(&k.hp, p + h->pn_offset + 4, mask);
    copy[0] ^= mask[0] & 0x0f;
    size_t pn_len = (size_t)(copy[0] & 3) + 1;
    uint64_t pn = 0;
    for (size_t i = 0; i < pn_len; i++) {
        copy[h->pn_offset + i] ^= mask[1 + i];
        pn = pn << 8 | copy[h->pn_offset + i];
    }
    size_t hdr_len = h->pn_offset + pn_len;
    int ok = h->pkt_len >= hdr_len + IR_AEAD_TAG_LEN &&
             ir_aead_open(&k.aead, 0, pn, copy, hdr_len, p + hdr_len, h->pkt_len - hdr_len,
                          copy + hdr_len) >= 0;
    ir_pkt_keys_free(&k);
    return ok;
}

static size_t put_pn(uint8_t *p, uint64_t pn, size_t pn_len)
{
    for (size_t i = 0; i < pn_len; i++)
        p[i] = (uint8_t)(pn >> (8 * (pn_len - 1 - i)));
    return pn_len;
}

size_t ir_pkt_write_long(uint8_t *p, size_t cap, ir_pkt_type type, uint32_t version,
                         const ir_cid *dcid, const ir_cid *scid, const uint8_t *token,
                         size_t token_len, uint64_t pn, size_t pn_len, size_t *length_offset)
{
    size_t need = 1 + 4 + 1 + dcid->len + 1 + scid->len + 2 + pn_len;
    if (type == IR_PT_INITIAL)
        need += ir_varint_len(token_len) + token_len;
    if (need > cap || pn_len < 1 || pn_len > 4)
        return 0;
    size_t o = 0;
    p[o++] = (uint8_t)(0xc0 | ((unsigned)type << 4) | (pn_len - 1));
    p[o++] = (uint8_t)(version >> 24);
    p[o++] = (uint8_t)(version >> 16);
    p[o++] = (uint8_t)(version >> 8);
    p[o++] = (uint8_t)version;
    p[o++] = dcid->len;
    memcpy(p + o, dcid->data, dcid->len);
    o += dcid->len;
    p[o++] = scid->len;
    memcpy(p + o, scid->data, scid->len);
    o += scid->len;
    if (type == IR_PT_INITIAL) {
        o += ir_varint_put(p + o, token_len);
        if (token_len)
            memcpy(p + o, token, token_len);
        o += token_len;
    }
    *length_offset = o;
    p[o++] = 0x40; /* 2-byte length, filled in by ir_pkt_protect */
    p[o++] = 0;
    o += put_pn(p + o, pn, pn_len);
    return o;
}

size_t ir_pkt_write_short(uint8_t *p, size_t cap, const ir_cid *dcid, int key_phase, int spin,
                          uint64_t pn, size_t pn_len)
{
    size_t need = 1 + dcid->len + pn_len;
    if (need > cap || pn_len < 1 || pn_len > 4)
        return 0;
    size_t o = 0;
    p[o++] = (uint8_t)(0x40 | (spin ? 0x20 : 0) | (key_phase ? 0x04 : 0) | (pn_len - 1));
    memcpy(p + o, dcid->data, dcid->len);
    o += dcid->len;
    o += put_pn(p + o, pn, pn_len);
    return o;
}

size_t ir_pkt_protect(uint8_t *p, size_t hdr_len, size_t pn_len, size_t length_offset,
                      size_t payload_len, const ir_pkt_keys *k, uint32_t path_id, uint64_t pn)
{
    size_t pn_offset = hdr_len - pn_len;
    if (length_offset) {
        size_t length = pn_len + payload_len + IR_AEAD_TAG_LEN;
        ir_varint_put_n(p + length_offset, length, 2);
    }
    ir_aead_seal(&k->aead, path_id, pn, p, hdr_len, p + hdr_len, payload_len, p + hdr_len);
    size_t total = hdr_len + payload_len + IR_AEAD_TAG_LEN;
    uint8_t mask[IR_HP_MASK_LEN];
    ir_hp_mask(&k->hp, p + pn_offset + 4, mask);
    p[0] ^= mask[0] & ((p[0] & 0x80) ? 0x0f : 0x1f);
    for (size_t i = 0; i < pn_len; i++)
        p[pn_offset + i] ^= mask[1 + i];
    return total;
}

size_t ir_pkt_write_vn(uint8_t *p, size_t cap, const ir_cid *client_dcid,
                       const ir_cid *client_scid, uint8_t unused_bits)
{
    size_t need = 1 + 4 + 1 + client_scid->len + 1 + client_dcid->len + 4;
    if (need > cap)
        return 0;
    size_t o = 0;
    p[o++] = (uint8_t)(0x80 | (unused_bits & 0x7f));
    memset(p + o, 0, 4);
    o += 4;
    /* our answer's DCID is the client's SCID and vice versa */
    p[o++] = client_scid->len;
    memcpy(p + o, client_scid->data, client_scid->len);
    o += client_scid->len;
    p[o++] = client_dcid->len;
    memcpy(p + o, client_dcid->data, client_dcid->len);
    o += client_dcid->len;
    p[o++] = 0;
    p[o++] = 0;
    p[o++] = 0;
    p[o++] = 1;
    return o;
}

size_t ir_pkt_write_retry(uint8_t *p, size_t cap, const ir_cid *client_scid, const ir_cid *new_scid,
                          const ir_cid *odcid, const uint8_t *token, size_t token_len,
                          uint8_t unused_bits)
{
    size_t need = 1 + 4 + 1 + client_scid->len + 1 + new_scid->len + token_len + IR_RETRY_TAG_LEN;
    if (need > cap || token_len == 0)
        return 0;
    size_t o = 0;
    p[o++] = (uint8_t)(0xf0 | (unused_bits & 0x0f));
    p[o++] = 0;
    p[o++] = 0;
    p[o++] = 0;
    p[o++] = 1;
    p[o++] = client_scid->len;
    memcpy(p + o, client_scid->data, client_scid->len);
    o += client_scid->len;
    p[o++] = new_scid->len;
    memcpy(p + o, new_scid->data, new_scid->len);
    o += new_scid->len;
    memcpy(p + o, token, token_len);
    o += token_len;
    if (ir_retry_tag(odcid->data, odcid->len, p, o, p + o) != 0)
        return 0;
    return o + IR_RETRY_TAG_LEN;
}

int ir_pkt_retry_valid(const uint8_t *p, size_t len, const ir_cid *odcid)
{
    uint8_t tag[IR_RETRY_TAG_LEN];
    if (len < IR_RETRY_TAG_LEN + 7)
        return 0;
    if (ir_retry_tag(odcid->data, odcid->len, p, len - IR_RETRY_TAG_LEN, tag) != 0)
        return 0;
    return ir_ct_equal(tag, p + len - IR_RETRY_TAG_LEN, IR_RETRY_TAG_LEN);
}

int ir_pkt_is_stateless_reset(const uint8_t *p, size_t len, const uint8_t token[16])
{
    if (len < IR_MIN_RESET_SIZE)
        return 0;
    return ir_ct_equal(p + len - IR_RESET_TOKEN_LEN, token, IR_RESET_TOKEN_LEN);
}
