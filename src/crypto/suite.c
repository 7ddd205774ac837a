/* Algorithm tables: TLS 1.3 cipher suites, hash and key sizes, AEAD usage limits. */
#include "crypto.h"

int ir_suite_algs(uint16_t suite, ir_aead_alg *aead, ir_hash_alg *hash)
{
    ir_aead_alg a;
    ir_hash_alg h;
    switch (suite) {
    case 0x1301: a = IR_AEAD_AES_128_GCM; h = IR_HASH_SHA256; break;
    case 0x1302: a = IR_AEAD_AES_256_GCM; h = IR_HASH_SHA384; break;
    case 0x1303: a = IR_AEAD_CHACHA20_POLY1305; h = IR_HASH_SHA256; break;
    default: return -1; /* includes TLS_AES_128_CCM(_8)_SHA256, which QUIC here omits */
    }
    if (aead) *aead = a;
    if (hash) *hash = h;
    return 0;
}

size_t ir_hash_len(ir_hash_alg h)
{
    return h == IR_HASH_SHA384 ? 48 : 32;
}

size_t ir_aead_key_len(ir_aead_alg a)
{
    return a == IR_AEAD_AES_128_GCM ? 16 : 32;
}

/* RFC 9001 section 6.6 (and Appendix B): AES-GCM may seal 2^23 full-size packets per key
 * and tolerate 2^52 forgeries; ChaCha20-Poly1305 has no confidentiality limit below the
 * packet number space (2^62) and an integrity limit of 2^36. */
uint64_t ir_aead_conf_limit(ir_aead_alg a)
{
    return a == IR_AEAD_CHACHA20_POLY1305 ? (uint64_t)1 << 62 : (uint64_t)1 << 23;
}

uint64_t ir_aead_integrity_limit(ir_aead_alg a)
{
    return a == IR_AEAD_CHACHA20_POLY1305 ? (uint64_t)1 << 36 : (uint64_t)1 << 52;
}
