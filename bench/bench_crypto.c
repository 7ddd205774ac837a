/* Packet protection throughput on 1200-byte packets: seal + open per packet (MB/s of
 * payload, one core), for the library path (ir_aead_seal/ir_aead_open, GnuTLS's AEAD API)
 * and, for comparison, nettle's GCM and ChaCha20-Poly1305 driven the same way (fresh
 * nonce per packet, in place). Then header protection masks per second and key set
 * derivations per second. Each measurement repeats for about one second. */
#include "crypto/crypto.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <nettle/chacha-poly1305.h>
#include <nettle/gcm.h>

#define PKT 1200
#define HDR 20
#define BATCH 1024

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *alg_name(ir_aead_alg a)
{
    switch (a) {
    case IR_AEAD_AES_128_GCM: return "AES-128-GCM";
    case IR_AEAD_AES_256_GCM: return "AES-256-GCM";
    case IR_AEAD_CHACHA20_POLY1305: return "ChaCha20-Poly1305";
    }
    return "?";
}

static void report(const char *what, ir_aead_alg a, unsigned long pkts, double t)
{
    printf("%-8s %-18s seal+open %4d B: %7.1f MB/s  (%.2f us/pkt)\n", what, alg_name(a), PKT,
           (double)PKT * (double)pkts / t / 1e6, t / (double)pkts * 1e6);
}

/* The library path. */
static int bench_ir(ir_aead_alg a, uint8_t *buf)
{
    static const uint8_t secret48[48] = {7, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    ir_hash_alg h = a == IR_AEAD_AES_256_GCM ? IR_HASH_SHA384 : IR_HASH_SHA256;
    ir_pkt_keys k;
    unsigned long pkts = 0;
    uint64_t pn = 0;
    double t0, t;

    if (ir_pkt_keys_init(&k, a, h, secret48, ir_hash_len(h)) < 0) return -1;
    t0 = now();
    do {
        for (int i = 0; i < BATCH; i++, pn++) {
            if (ir_aead_seal(&k.aead, 0, pn, buf, HDR, buf + HDR, PKT, buf + HDR) < 0 ||
                ir_aead_open(&k.aead, 0, pn, buf, HDR, buf + HDR, PKT + IR_AEAD_TAG_LEN,
                             buf + HDR) != PKT) {
                ir_pkt_keys_free(&k);
                return -1;
            }
        }
        pkts += BATCH;
        t = now() - t0;
    } while (t < 1.0);
    report("gnutls", a, pkts, t);
    ir_pkt_keys_free(&k);
    return 0;
}

static void nonce_for(const uint8_t iv[12], uint64_t pn, uint8_t nonce[12])
{
    memcpy(nonce, iv, 12);
    for (int i = 0; i < 8; i++) nonce[4 + i] ^= (uint8_t)(pn >> (56 - 8 * i));
}

/* nettle's GCM, as a nettle backend would use it. */
static int bench_nettle_gcm(ir_aead_alg a, uint8_t *buf)
{
    static const uint8_t key[32] = {1, 2, 3}, iv[12] = {9, 8, 7};
    struct gcm_aes128_ctx c128;
    struct gcm_aes256_ctx c256;
    uint8_t nonce[12], tag[16];
    unsigned long pkts = 0;
    uint64_t pn = 0;
    double t0, t;

    gcm_aes128_set_key(&c128, key);
    gcm_aes256_set_key(&c256, key);
    t0 = now();
    do {
        for (int i = 0; i < BATCH; i++, pn++) {
            uint8_t *p = buf + HDR;
            nonce_for(iv, pn, nonce);
            if (a == IR_AEAD_AES_128_GCM) {
                gcm_aes128_set_iv(&c128, 12, nonce);
                gcm_aes128_update(&c128, HDR, buf);
                gcm_aes128_encrypt(&c128, PKT, p, p);
                gcm_aes128_digest(&c128, 16, p + PKT);
                gcm_aes128_set_iv(&c128, 12, nonce);
                gcm_aes128_update(&c128, HDR, buf);
                gcm_aes128_decrypt(&c128, PKT, p, p);
                gcm_aes128_digest(&c128, 16, tag);
            } else {
                gcm_aes256_set_iv(&c256, 12, nonce);
                gcm_aes256_update(&c256, HDR, buf);
                gcm_aes256_encrypt(&c256, PKT, p, p);
                gcm_aes256_digest(&c256, 16, p + PKT);
                gcm_aes256_set_iv(&c256, 12, nonce);
                gcm_aes256_update(&c256, HDR, buf);
                gcm_aes256_decrypt(&c256, PKT, p, p);
                gcm_aes256_digest(&c256, 16, tag);
            }
            if (!ir_ct_equal(tag, p + PKT, 16)) return -1;
        }
        pkts += BATCH;
        t = now() - t0;
    } while (t < 1.0);
    report("nettle", a, pkts, t);
    return 0;
}

static int bench_nettle_chacha(uint8_t *buf)
{
    static const uint8_t key[32] = {1, 2, 3}, iv[12] = {9, 8, 7};
    struct chacha_poly1305_ctx keyed, c;
    uint8_t nonce[12], tag[16];
    unsigned long pkts = 0;
    uint64_t pn = 0;
    double t0, t;

    chacha_poly1305_set_key(&keyed, key);
    t0 = now();
    do {
        for (int i = 0; i < BATCH; i++, pn++) {
            uint8_t *p = buf + HDR;
            nonce_for(iv, pn, nonce);
            c = keyed; /* keys stay const per packet, as a const ir_aead would need */
            chacha_poly1305_set_nonce(&c, nonce);
            chacha_poly1305_update(&c, HDR, buf);
            chacha_poly1305_encrypt(&c, PKT, p, p);
            chacha_poly1305_digest(&c, 16, p + PKT);
            c = keyed;
            chacha_poly1305_set_nonce(&c, nonce);
            chacha_poly1305_update(&c, HDR, buf);
            chacha_poly1305_decrypt(&c, PKT, p, p);
            chacha_poly1305_digest(&c, 16, tag);
            if (!ir_ct_equal(tag, p + PKT, 16)) return -1;
        }
        pkts += BATCH;
        t = now() - t0;
    } while (t < 1.0);
    report("nettle", IR_AEAD_CHACHA20_POLY1305, pkts, t);
    return 0;
}

static unsigned bench_hp(ir_aead_alg a)
{
    static const uint8_t secret[48] = {3};
    ir_hash_alg h = a == IR_AEAD_AES_256_GCM ? IR_HASH_SHA384 : IR_HASH_SHA256;
    ir_pkt_keys k;
    uint8_t sample[16] = {0}, mask[5];
    unsigned long n = 0;
    unsigned sink = 0;
    double t0, t;

    if (ir_pkt_keys_init(&k, a, h, secret, ir_hash_len(h)) < 0) return 0;
    t0 = now();
    do {
        for (int i = 0; i < BATCH * 16; i++) {
            sample[0] = (uint8_t)i;
            sample[5] = (uint8_t)(i >> 8);
            ir_hp_mask(&k.hp, sample, mask);
            sink += mask[0];
        }
        n += BATCH * 16;
        t = now() - t0;
    } while (t < 1.0);
    printf("hp mask  %-18s %10.0f masks/s (%.1f ns/mask)\n", alg_name(a), (double)n / t,
           t / (double)n * 1e9);
    ir_pkt_keys_free(&k);
    return sink;
}

static void bench_keys(void)
{
    static const uint8_t dcid[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ir_pkt_keys c, s;
    unsigned long n = 0;
    double t0 = now(), t;
    do {
        for (int i = 0; i < 256; i++) {
            if (ir_initial_keys(dcid, sizeof dcid, &c, &s) < 0) return;
            ir_pkt_keys_free(&c);
            ir_pkt_keys_free(&s);
        }
        n += 256;
        t = now() - t0;
    } while (t < 1.0);
    printf("initial keys (both directions): %.0f /s (%.1f us)\n", (double)n / t,
           t / (double)n * 1e6);
}

int main(void)
{
    static uint8_t buf[HDR + PKT + IR_AEAD_TAG_LEN];
    static const ir_aead_alg algs[3] = {IR_AEAD_AES_128_GCM, IR_AEAD_AES_256_GCM,
                                        IR_AEAD_CHACHA20_POLY1305};
    unsigned sink = 0;

    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 13);
    for (int a = 0; a < 3; a++) {
        if (bench_ir(algs[a], buf) < 0) return 1;
        if (algs[a] == IR_AEAD_CHACHA20_POLY1305) {
            if (bench_nettle_chacha(buf) < 0) return 1;
        } else if (bench_nettle_gcm(algs[a], buf) < 0) {
            return 1;
        }
    }
    for (int a = 0; a < 3; a++) sink += bench_hp(algs[a]);
    bench_keys();
    return (int)(sink & 0);
}
