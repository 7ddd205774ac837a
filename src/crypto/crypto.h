/* QUIC packet protection (RFC 9001 section 5, with the multipath nonce of
 * draft-ietf-quic-multipath): HKDF and TLS 1.3 HKDF-Expand-Label, per-direction packet
 * keys, AEAD seal/open, header protection masks, Initial secrets and the Retry integrity
 * tag.
 *
 * Backends, chosen by measurement with 1200-byte packets (bench/bench_crypto.c):
 * GnuTLS's AEAD API for all three AEADs (AES-GCM runs about twice as fast as nettle's
 * GCM; ChaCha20-Poly1305 is GnuTLS's nettle code either way), nettle for the AES/ChaCha20
 * blocks of header protection and for HKDF.
 *
 * Nothing on the per-packet path (ir_aead_seal, ir_aead_open, ir_hp_mask) allocates.
 * Setting keys up allocates one GnuTLS handle per ir_aead; ir_pkt_keys_free releases it.
 * An ir_aead keeps per-call state inside its GnuTLS handle even when passed as const,
 * so one key set must not be used by two threads at once (a connection owns its keys). */
#ifndef IR_CRYPTO_CRYPTO_H
#define IR_CRYPTO_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <nettle/aes.h>
#include <nettle/chacha.h>

typedef enum ir_aead_alg { IR_AEAD_AES_128_GCM, IR_AEAD_AES_256_GCM, IR_AEAD_CHACHA20_POLY1305 } ir_aead_alg;
typedef enum ir_hash_alg { IR_HASH_SHA256, IR_HASH_SHA384 } ir_hash_alg;

#define IR_AEAD_TAG_LEN 16
#define IR_AEAD_IV_LEN 12
#define IR_AEAD_MAX_KEY_LEN 32
#define IR_HP_SAMPLE_LEN 16
#define IR_HP_MASK_LEN 5
#define IR_MAX_SECRET_LEN 48
#define IR_RETRY_TAG_LEN 16

/* TLS 1.3 cipher suite id (0x1301, 0x1302, 0x1303) -> algorithms; -1 if unsupported. */
int ir_suite_algs(uint16_t suite, ir_aead_alg *aead, ir_hash_alg *hash);
size_t ir_hash_len(ir_hash_alg h);     /* 32 or 48 */
size_t ir_aead_key_len(ir_aead_alg a); /* 16, 32, 32 */

/* RFC 9001 section 6.6: packets that may be sealed with one key (confidentiality limit)
 * and packets failing authentication across all keys of a connection (integrity limit).
 * The caller must update keys, or close, before reaching them. */
uint64_t ir_aead_conf_limit(ir_aead_alg a);
uint64_t ir_aead_integrity_limit(ir_aead_alg a);

/* HKDF (RFC 5869) and TLS 1.3 HKDF-Expand-Label (RFC 8446 7.1) with an empty context.
 * prk receives ir_hash_len(h) bytes; salt may be NULL when salt_len is 0 (HashLen zeros).
 * ir_hkdf_expand_label needs strlen(label) <= 249 and out_len <= 255 * ir_hash_len(h)
 * (and <= 65535); otherwise it writes zeros (a programming error, never wire input). */
void ir_hkdf_extract(ir_hash_alg h, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                     size_t ikm_len, uint8_t *prk);
void ir_hkdf_expand_label(ir_hash_alg h, const uint8_t *secret, size_t secret_len,
                          const char *label, uint8_t *out, size_t out_len);
/* Several labels from one secret (the HMAC key is set up once): labels[i] -> outs[i] of
 * out_lens[i] bytes, each as ir_hkdf_expand_label would give it. */
void ir_hkdf_expand_labels(ir_hash_alg h, const uint8_t *secret, size_t secret_len, size_t n,
                           const char *const *labels, uint8_t *const *outs, const size_t *out_lens);

/* AEAD state for one direction: the raw key and IV ("quic key", "quic iv") and a GnuTLS
 * AEAD handle keyed with it. All-zero (handle NULL) means "no key". */
typedef struct ir_aead {
    gnutls_aead_cipher_hd_t handle;
    ir_aead_alg alg;
    uint8_t key_len;
    uint8_t key[IR_AEAD_MAX_KEY_LEN];
    uint8_t iv[IR_AEAD_IV_LEN];
} ir_aead;

/* Header protection key ("quic hp"): AES-ECB with an expanded nettle key, or the raw
 * ChaCha20 block function keyed once. A plain value: it may be copied, and needs no free. */
typedef struct ir_hp {
    ir_aead_alg alg;
    uint8_t key_len;
    uint8_t key[IR_AEAD_MAX_KEY_LEN];
    union {
        struct aes128_ctx aes128;
        struct aes256_ctx aes256;
        struct chacha_ctx chacha;
    } u;
} ir_hp;

/* One direction's packet protection keys (RFC 9001 5.1): AEAD key + iv, header protection
 * key, and the traffic secret they come from (kept for key updates). */
typedef struct ir_pkt_keys {
    ir_aead aead;
    ir_hp hp;
    ir_aead_alg alg;
    ir_hash_alg hash;
    uint8_t secret[IR_MAX_SECRET_LEN];
    size_t secret_len;
    /* RFC 9001 6.6: how much this key was used: packets sealed with it, packets that failed
     * to authenticate under it. The user of the key counts (it knows what a packet is);
     * ir_pkt_keys_init and ir_pkt_keys_update start a key at zero. */
    uint64_t sealed;
    uint64_t open_failed;
} ir_pkt_keys;

/* Derives "quic key", "quic iv", "quic hp" from a traffic secret of ir_hash_len(hash)
 * bytes. Returns 0 or -1 (bad arguments, or GnuTLS refused the key). k need not be
 * initialized; on failure it is left zeroed (safe to free). */
int ir_pkt_keys_init(ir_pkt_keys *k, ir_aead_alg aead, ir_hash_alg hash, const uint8_t *secret,
                     size_t secret_len);
/* Key update (RFC 9001 section 6): next = HKDF-Expand-Label(secret, "quic ku"); new AEAD
 * key/iv, SAME hp key, usage counters at zero. next must not hold live keys (they would
 * leak) unless next == cur, in which case cur's keys are replaced in place. Returns 0 or
 * -1. */
int ir_pkt_keys_update(ir_pkt_keys *next, const ir_pkt_keys *cur);
/* Releases the AEAD handle and wipes all key material. Idempotent; safe on zeroed keys. */
void ir_pkt_keys_free(ir_pkt_keys *k);

/* RFC 9001 initial secrets for QUIC v1 from the client's first Destination Connection ID
 * (server_secret may be NULL: the client's only, for a server's first check). */
void ir_initial_secrets(const uint8_t *dcid, size_t dcid_len, uint8_t client_secret[32],
                        uint8_t server_secret[32]);
/* Convenience: both Initial keys (AES-128-GCM / SHA-256). Returns 0 or -1. */
int ir_initial_keys(const uint8_t *dcid, size_t dcid_len, ir_pkt_keys *client,
                    ir_pkt_keys *server);

/* Lower-level pieces of ir_pkt_keys: an AEAD from a raw key and IV (key length must be
 * ir_aead_key_len(alg)), and a header protection key. Return 0 or -1. */
int ir_aead_init(ir_aead *a, ir_aead_alg alg, const uint8_t *key, const uint8_t iv[12]);
void ir_aead_free(ir_aead *a);
int ir_hp_init(ir_hp *hp, ir_aead_alg alg, const uint8_t *key);

/* The 12-byte nonce: iv XOR (path_id as 32-bit BE || pn as 64-bit BE). */
void ir_aead_nonce(const ir_aead *a, uint32_t path_id, uint64_t pn, uint8_t nonce[12]);

/* AEAD with the multipath nonce: nonce = iv XOR (path_id as 32-bit BE || pn as 64-bit BE),
 * left-padded to 12 bytes (spec quic-tls.md 3.4; path 0 = exactly RFC 9001's nonce). out
 * may equal in (in place) but must not otherwise overlap it. aad may be NULL if aad_len
 * is 0, in may be NULL if len is 0.
 * seal writes len + 16 bytes and returns 0 (or -1 on a missing key); open returns the
 * plaintext length (len - 16) or -1 on authentication failure, in which case the first
 * len - 16 bytes of out are unspecified (an in-place ciphertext is destroyed). */
int ir_aead_seal(const ir_aead *a, uint32_t path_id, uint64_t pn, const uint8_t *aad,
                 size_t aad_len, const uint8_t *in, size_t len, uint8_t *out);
long ir_aead_open(const ir_aead *a, uint32_t path_id, uint64_t pn, const uint8_t *aad,
                  size_t aad_len, const uint8_t *in, size_t len, uint8_t *out);

/* Header protection mask (RFC 9001 5.4.3 / 5.4.4) from a 16-byte sample: 5 bytes. */
void ir_hp_mask(const ir_hp *hp, const uint8_t sample[16], uint8_t mask[5]);

/* Retry integrity tag for QUIC v1 (RFC 9001 5.8): pseudo = odcid_len || odcid || retry
 * packet without tag. odcid_len must be <= 20 (QUIC v1 limit). Returns 0 or -1.
 * A receiver compares the tag with ir_ct_equal. */
int ir_retry_tag(const uint8_t *odcid, size_t odcid_len, const uint8_t *retry_pkt, size_t len,
                 uint8_t tag[16]);

/* Constant-time comparison: 1 if the n bytes are equal, else 0. */
int ir_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);

/* Stateless reset token / other keyed needs can come later. */

#endif
