/* QUIC packet headers and packet protection on arbitrary datagrams: walk the coalesced
 * packets with ir_pkt_parse (short-header DCID length 8) and check what it reports
 * (lengths within the datagram, fields within the packet, progress every time); try to
 * remove the protection of every v1 Initial with the Initial keys of its own DCID and of
 * RFC 9001's sample DCID, and of short-header packets with RFC 9001 A.5's ChaCha20 key;
 * whatever authenticates must protect again to the very same bytes. Also: packet number
 * decoding round trips, Retry integrity tags (valid for a Retry we write ourselves from
 * the parsed fields) and stateless reset recognition. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "quic/packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SHORT_DCID_LEN 8

/* RFC 9001 appendix A: the client's original DCID, and A.5's 1-RTT secret */
static const uint8_t rfc_odcid[8] = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08};
static const uint8_t rfc_chacha_secret[32] = {
    0x9a, 0xc3, 0x12, 0xa7, 0xf8, 0x77, 0x46, 0x8e, 0xbe, 0x69, 0x42, 0x27, 0x48, 0xad, 0x00, 0xa1,
    0x54, 0x43, 0xf1, 0x82, 0x03, 0xa0, 0x7d, 0x60, 0x60, 0xf6, 0x88, 0xf3, 0x0f, 0x21, 0x63, 0x2b,
};
#define RFC_CHACHA_LARGEST 654360563u /* A.5's packet number is 654360564 */

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    if (!q)
        abort();
    if (n)
        memcpy(q, p, n);
    return q;
}

static void check_hdr(const uint8_t *pkt, size_t left, const ir_pkt_hdr *h)
{
    if (h->pkt_len == 0 || h->pkt_len > left || h->pn_offset > h->pkt_len)
        abort();
    if (h->dcid.len > IR_MAX_CID_LEN || h->scid.len > IR_MAX_CID_LEN)
        abort();
    if (h->token_len && (h->token < pkt || h->token + h->token_len > pkt + h->pkt_len))
        abort();
    switch (h->type) {
    case IR_PT_1RTT:
        if (!(pkt[0] & 0x40) || (pkt[0] & 0x80) || h->pkt_len != left ||
            h->pn_offset != 1 + SHORT_DCID_LEN || h->dcid.len != SHORT_DCID_LEN ||
            memcmp(h->dcid.data, pkt + 1, SHORT_DCID_LEN) != 0)
            abort();
        break;
    case IR_PT_VN:
        if (h->version != 0 || h->pkt_len != left)
            abort();
        break;
    case IR_PT_RETRY:
        if (h->version != IR_QUIC_V1 || h->pkt_len != left || !h->token ||
            h->token + h->token_len + IR_RETRY_TAG_LEN != pkt + left)
            abort();
        break;
    case IR_PT_INITIAL:
    case IR_PT_0RTT:
    case IR_PT_HANDSHAKE:
        if (h->version != IR_QUIC_V1) {
            /* unknown version: only the invariant header, the whole datagram */
            if (h->type != IR_PT_INITIAL || h->pkt_len != left)
                abort();
            break;
        }
        /* 1 + version + dcid + scid + length (+ token) before the packet number */
        if (h->pn_offset < 8 + (size_t)h->dcid.len + h->scid.len || h->dcid.len != pkt[5] ||
            memcmp(h->dcid.data, pkt + 6, h->dcid.len) != 0 ||
            (h->type != IR_PT_INITIAL && h->token_len))
            abort();
        break;
    default:
        abort();
    }
}

/* Unprotects a copy of the packet with keys k; on success, checks the results and that
 * protecting the plaintext again gives back the original bytes. */
static void try_keys(const uint8_t *pkt, const ir_pkt_hdr *h, const ir_pkt_keys *k,
                     uint64_t largest)
{
    uint8_t *p = dup_bytes(pkt, h->pkt_len);
    uint64_t pn = 0;
    size_t pn_len = 0;
    int rc = ir_pkt_unprotect_header(p, h, &k->hp, largest, &pn, &pn_len);
    int can_sample = h->pkt_len >= h->pn_offset + 4 + IR_HP_SAMPLE_LEN;
    if ((rc == 0) != can_sample || (rc != 0 && rc != -1))
        abort();
    if (rc != 0) {
        if (memcmp(p, pkt, h->pkt_len) != 0) /* nothing touched on failure */
            abort();
        free(p);
        return;
    }
    if (pn_len < 1 || pn_len > 4 || h->pn_offset + pn_len > h->pkt_len || pn >= (1ull << 62))
        abort();
    /* only the low bits of the first byte and the packet number bytes change */
    uint8_t keep = (pkt[0] & 0x80) ? 0xf0 : 0xe0;
    if ((p[0] & keep) != (pkt[0] & keep))
        abort();
    for (size_t i = 1; i < h->pkt_len; i++)
        if (p[i] != pkt[i] && (i < h->pn_offset || i >= h->pn_offset + pn_len))
            abort();
    const uint8_t *payload = NULL;
    size_t payload_len = 0;
    rc = ir_pkt_decrypt(p, h, pn_len, &k->aead, 0, pn, &payload, &payload_len);
    if (rc != 0 && rc != -1)
        abort();
    if (rc == 0) {
        size_t hdr_len = h->pn_offset + pn_len;
        if (payload != p + hdr_len || hdr_len + payload_len + IR_AEAD_TAG_LEN != h->pkt_len)
            abort();
        /* protect again (length_offset 0: the length field is left as it is) */
        size_t total = ir_pkt_protect(p, hdr_len, pn_len, 0, payload_len, k, 0, pn);
        if (total != h->pkt_len || memcmp(p, pkt, total) != 0)
            abort();
    }
    free(p);
}

static void try_initial(const uint8_t *pkt, const ir_pkt_hdr *h, uint64_t largest)
{
    ir_pkt_keys client, server;
    if (ir_initial_keys(h->dcid.data, h->dcid.len, &client, &server) != 0)
        abort();
    try_keys(pkt, h, &client, largest);
    try_keys(pkt, h, &server, largest);
    ir_pkt_keys_free(&client);
    ir_pkt_keys_free(&server);
    /* the RFC's client-chosen DCID: the server Initial of A.3 needs it */
    if (ir_initial_keys(rfc_odcid, sizeof rfc_odcid, &client, &server) != 0)
        abort();
    try_keys(pkt, h, &client, largest);
    try_keys(pkt, h, &server, largest);
    ir_pkt_keys_free(&client);
    ir_pkt_keys_free(&server);
}

static void try_short_chacha(const uint8_t *pkt, size_t len)
{
    static ir_pkt_keys k;
    static int ready;
    if (!ready) {
        if (ir_pkt_keys_init(&k, IR_AEAD_CHACHA20_POLY1305, IR_HASH_SHA256, rfc_chacha_secret,
                             sizeof rfc_chacha_secret) != 0)
            abort();
        ready = 1;
    }
    ir_pkt_hdr h;
    if (ir_pkt_parse(pkt, len, 0, &h) != 0)
        return;
    if (h.type != IR_PT_1RTT || h.pn_offset != 1 || h.pkt_len != len || h.dcid.len != 0)
        abort();
    try_keys(pkt, &h, &k, RFC_CHACHA_LARGEST);
}

/* Retry: the tag against the RFC's DCID and the packet's own; and a Retry written from
 * the parsed fields carries a valid tag for any original DCID. */
static void try_retry(const uint8_t *pkt, const ir_pkt_hdr *h)
{
    ir_cid odcid;
    odcid.len = sizeof rfc_odcid;
    memcpy(odcid.data, rfc_odcid, sizeof rfc_odcid);
    int v = ir_pkt_retry_valid(pkt, h->pkt_len, &odcid);
    if (v != 0 && v != 1)
        abort();
    v = ir_pkt_retry_valid(pkt, h->pkt_len, &h->dcid);
    if (v != 0 && v != 1)
        abort();
    if (h->token_len == 0)
        return;
    size_t cap = 1 + 4 + 2 + h->dcid.len + h->scid.len + h->token_len + IR_RETRY_TAG_LEN;
    uint8_t *out = malloc(cap);
    if (!out)
        abort();
    /* our answer's DCID is the client's SCID: swap back what the parse gave */
    size_t n = ir_pkt_write_retry(out, cap, &h->dcid, &h->scid, &h->scid, h->token, h->token_len,
                                  pkt[0] & 0x0f);
    if (n != cap || ir_pkt_retry_valid(out, n, &h->scid) != 1)
        abort();
    ir_pkt_hdr h2;
    if (ir_pkt_parse(out, n, SHORT_DCID_LEN, &h2) != 0 || h2.type != IR_PT_RETRY ||
        !ir_cid_eq(&h2.dcid, &h->dcid) || !ir_cid_eq(&h2.scid, &h->scid) ||
        h2.token_len != h->token_len || memcmp(h2.token, h->token, h->token_len) != 0)
        abort();
    /* a flipped tag bit fails */
    out[n - 1] ^= 1;
    if (ir_pkt_retry_valid(out, n, &h->scid) != 0)
        abort();
    free(out);
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* RFC 9000 A.2/A.3: a packet number encoded for largest_acked decodes back from the
 * receiver's largest pn anywhere between largest_acked and pn - 1. */
static void check_pn(uint64_t pn, uint64_t largest_acked, uint64_t recv_pick)
{
    pn &= (1ull << 62) - 1;
    if (largest_acked != UINT64_MAX) {
        largest_acked &= (1ull << 62) - 1;
        if (largest_acked >= pn) {
            uint64_t t = pn;
            pn = largest_acked;
            largest_acked = t;
        }
        if (largest_acked == pn)
            return;
    }
    size_t len = ir_pn_encode_len(pn, largest_acked);
    if (len < 1 || len > 4)
        abort();
    uint64_t unacked = largest_acked == UINT64_MAX ? pn + 1 : pn - largest_acked;
    if (unacked >= (1ull << 31))
        return; /* beyond what 4 bytes can carry: the sender must not get there */
    uint64_t mask = (1ull << (8 * len)) - 1;
    /* the receiver has seen something in [largest_acked, pn - 1], or nothing */
    uint64_t lo = largest_acked, largest;
    if (lo == UINT64_MAX) {
        largest = pn == 0 || (recv_pick & 1) ? UINT64_MAX : (recv_pick >> 1) % pn;
    } else {
        largest = lo + recv_pick % (pn - lo);
    }
    uint64_t got = ir_pn_decode(largest, pn & mask, len);
    if (got != pn)
        abort();
    /* decoding keeps the low bits and stays below 2^62 (for any largest the peer can
     * have sent: a window below the end of the packet number space) */
    uint64_t any = ir_pn_decode(recv_pick & ((1ull << 61) - 1), recv_pick & mask, len);
    if ((any & mask) != (recv_pick & mask) || any >= (1ull << 62))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = dup_bytes(data, size);
    size_t off = 0, iter = 0;
    while (off < size) {
        ir_pkt_hdr h;
        size_t left = size - off;
        int rc = ir_pkt_parse(buf + off, left, SHORT_DCID_LEN, &h);
        if (rc != 0) {
            if (rc != -1)
                abort();
            break;
        }
        check_hdr(buf + off, left, &h);
        if (h.version == IR_QUIC_V1 && h.type == IR_PT_INITIAL)
            try_initial(buf + off, &h, iter == 0 ? UINT64_MAX : get_be(buf + off, 1) * 3);
        if (h.type == IR_PT_RETRY)
            try_retry(buf + off, &h);
        off += h.pkt_len; /* pkt_len > 0: progress */
        if (++iter > size)
            abort();
    }
    if (off > size)
        abort();
    if (size > 0 && !(buf[0] & 0x80))
        try_short_chacha(buf, size);

    /* packet numbers from the input */
    for (size_t i = 0; i + 17 <= size && i < 64 * 17; i += 17) {
        uint64_t pn = get_be(buf + i, 8), la = get_be(buf + i + 8, 8);
        if (buf[i + 16] & 0x80)
            la = UINT64_MAX;
        check_pn(pn >> (buf[i + 16] & 63), la == UINT64_MAX ? la : la >> (buf[i + 16] & 63),
                 get_be(buf + i + 4, 8) ^ buf[i + 16]);
    }
    if (size >= 9) {
        size_t pn_len = (size_t)(buf[0] & 3) + 1;
        uint64_t largest = get_be(buf + 1, 8);
        uint64_t t = get_be(buf + size - pn_len, pn_len);
        uint64_t got = ir_pn_decode(largest, t, pn_len);
        uint64_t mask = (1ull << (8 * pn_len)) - 1;
        if ((got & mask) != t)
            abort();
    }

    /* stateless resets: the datagram's own last 16 bytes always match, others never */
    if (size >= IR_RESET_TOKEN_LEN) {
        uint8_t tok[IR_RESET_TOKEN_LEN];
        memcpy(tok, buf + size - IR_RESET_TOKEN_LEN, IR_RESET_TOKEN_LEN);
        int r = ir_pkt_is_stateless_reset(buf, size, tok);
        if (r != (size >= IR_MIN_RESET_SIZE))
            abort();
        tok[size % IR_RESET_TOKEN_LEN] ^= 0x01;
        if (ir_pkt_is_stateless_reset(buf, size, tok) != 0)
            abort();
    }
    /* the input must be left as it was (nothing writes through const) */
    if (size && memcmp(buf, data, size) != 0)
        abort();
    free(buf);
    return 0;
}
