/* Client Initials made by hand, for the flood tool, the endpoint's flood tests and
 * bench_flood: junk (a valid version-1 Initial header, a random payload that decrypts
 * under no key) and valid ones (a real ClientHello under the Initial keys of any DCID,
 * optionally with a Retry token). Header-only: static functions over the library's
 * internal packet and crypto code. */
#ifndef IR_TESTS_INITIALS_H
#define IR_TESTS_INITIALS_H

#include <stdint.h>
#include <string.h>

#include <iroh.h>

#include "base/util.h"
#include "crypto/crypto.h"
#include "quic/conn.h"
#include "quic/packet.h"
#include "tls/tls.h"

#define IR_FLOOD_DGRAM 1200

/* 1200 bytes at p: a version-1 Initial header with random 8-byte DCID and SCID, no token
 * and a 2-byte length that covers the rest of the datagram, then random bytes. */
static inline void ir_flood_junk(uint8_t *p)
{
    ir_random_bytes(NULL, p, IR_FLOOD_DGRAM);
    size_t o = 0;
    p[o++] = (uint8_t)(0xc0 | (p[0] & 0x0f)); /* long header, fixed bit, Initial */
    p[o++] = 0;
    p[o++] = 0;
    p[o++] = 0;
    p[o++] = 1;
    p[o++] = 8; /* DCID: 8 random bytes */
    o += 8;
    p[o++] = 8; /* SCID: 8 random bytes */
    o += 8;
    p[o++] = 0; /* no token */
    size_t length = IR_FLOOD_DGRAM - o - 2;
    p[o++] = (uint8_t)(0x40 | (length >> 8));
    p[o++] = (uint8_t)length;
}

/* The plaintext of a real client's first Initial (its CRYPTO frame with the ClientHello,
 * then padding) and the SCID it used (the ClientHello's initial_source_connection_id). */
typedef struct ir_flood_hello_t {
    uint8_t frames[IR_FLOOD_DGRAM];
    size_t len;
    ir_cid scid;
} ir_flood_hello_t;

/* A ClientHello offering alpn from a new key to a random EndpointId; 0 or -1. */
static inline int ir_flood_hello(const char *alpn, ir_flood_hello_t *out)
{
    iroh_secret_key key, peer;
    iroh_endpoint_id peer_id;
    ir_tls_identity *ident;
    if (iroh_secret_key_generate(&key) != IROH_OK || iroh_secret_key_generate(&peer) != IROH_OK ||
        ir_tls_identity_new(&key, &ident) != IROH_OK)
        return -1;
    iroh_secret_key_public(&peer, &peer_id);
    const uint8_t *alpns[1] = {(const uint8_t *)alpn};
    size_t lens[1] = {strlen(alpn)};
    ir_conn_config cfg;
    ir_conn_config_defaults(&cfg);
    cfg.identity = ident;
    cfg.alpns = alpns;
    cfg.alpn_lens = lens;
    cfg.n_alpns = 1;
    cfg.remote_id = &peer_id;
    cfg.random = ir_random_bytes;
    ir_netaddr to;
    memset(&to, 0, sizeof to);
    to.len = 1;
    ir_conn *c = NULL;
    uint8_t d[1500];
    ir_netaddr dst;
    size_t n = 0;
    int rc = -1;
    if (ir_conn_client_new(&cfg, &to, 0, &c) == IROH_OK &&
        (n = ir_conn_send(c, d, sizeof d, &dst, 0)) > 0) {
        ir_pkt_hdr h;
        ir_pkt_keys ck, sk;
        uint64_t pn;
        size_t pn_len;
        const uint8_t *payload;
        size_t plen;
        if (ir_pkt_parse(d, n, 8, &h) == 0 && h.type == IR_PT_INITIAL &&
            ir_initial_keys(h.dcid.data, h.dcid.len, &ck, &sk) == 0) {
            if (ir_pkt_unprotect_header(d, &h, &ck.hp, UINT64_MAX, &pn, &pn_len) == 0 &&
                ir_pkt_decrypt(d, &h, pn_len, &ck.aead, 0, pn, &payload, &plen) == 0 &&
                plen <= IR_FLOOD_DGRAM) {
                memcpy(out->frames, payload, plen);
                out->len = plen;
                out->scid = h.scid;
                rc = 0;
            }
            ir_pkt_keys_free(&ck);
            ir_pkt_keys_free(&sk);
        }
    }
    ir_conn_free(c);
    ir_tls_identity_free(ident);
    return rc;
}

/* 1200 bytes at p: the ClientHello under the Initial keys of dcid (NULL: a new random
 * 8-byte one), with a token if one is given. */
static inline void ir_flood_valid(const ir_flood_hello_t *hl, uint8_t *p, const ir_cid *to,
                                  const uint8_t *token, size_t token_len)
{
    ir_cid dcid;
    if (to) {
        dcid = *to;
    } else {
        dcid.len = 8;
        ir_random_bytes(NULL, dcid.data, dcid.len);
    }
    size_t lo;
    size_t hdr = ir_pkt_write_long(p, IR_FLOOD_DGRAM, IR_PT_INITIAL, IR_QUIC_V1, &dcid, &hl->scid,
                                   token, token_len, 0, 4, &lo);
    size_t room = IR_FLOOD_DGRAM - hdr - IR_AEAD_TAG_LEN;
    size_t plen = hl->len < room ? hl->len : room;
    memcpy(p + hdr, hl->frames, plen);
    memset(p + hdr + plen, 0, room - plen); /* PADDING */
    ir_pkt_keys ck, sk;
    if (ir_initial_keys(dcid.data, dcid.len, &ck, &sk) != 0) {
        memset(p, 0, IR_FLOOD_DGRAM); /* nothing valid */
        return;
    }
    ir_pkt_protect(p, hdr, 4, lo, room, &ck, 0, 0);
    ir_pkt_keys_free(&ck);
    ir_pkt_keys_free(&sk);
}

#endif
