/* Header protection masks (RFC 9001 5.4): AES-ECB of the sample for the AES suites, the
 * raw ChaCha20 block (counter = sample[0..3] little-endian, nonce = sample[4..15]) for
 * ChaCha20-Poly1305. nettle keys both once; a mask costs one block and no allocation. */
#include "crypto.h"

#include <string.h>

int ir_hp_init(ir_hp *hp, ir_aead_alg alg, const uint8_t *key)
{
    memset(hp, 0, sizeof *hp);
    if (!key) return -1;
    switch (alg) {
    case IR_AEAD_AES_128_GCM: aes128_set_encrypt_key(&hp->u.aes128, key); break;
    case IR_AEAD_AES_256_GCM: aes256_set_encrypt_key(&hp->u.aes256, key); break;
    case IR_AEAD_CHACHA20_POLY1305: chacha_set_key(&hp->u.chacha, key); break;
    default: return -1;
    }
    hp->alg = alg;
    hp->key_len = (uint8_t)ir_aead_key_len(alg);
    memcpy(hp->key, key, hp->key_len);
    return 0;
}

void ir_hp_mask(const ir_hp *hp, const uint8_t sample[16], uint8_t mask[5])
{
    uint8_t block[16];

    switch (hp->alg) {
    case IR_AEAD_AES_128_GCM:
        aes128_encrypt(&hp->u.aes128, sizeof block, block, sample);
        break;
    case IR_AEAD_AES_256_GCM:
        aes256_encrypt(&hp->u.aes256, sizeof block, block, sample);
        break;
    case IR_AEAD_CHACHA20_POLY1305: {
        static const uint8_t zeros[IR_HP_MASK_LEN];
        struct chacha_ctx c = hp->u.chacha; /* the key stays const; nonce/counter vary */
        chacha_set_nonce96(&c, sample + 4);
        chacha_set_counter32(&c, sample);
        chacha_crypt32(&c, IR_HP_MASK_LEN, block, zeros);
        break;
    }
    default:
        memset(block, 0, sizeof block);
        break;
    }
    memcpy(mask, block, IR_HP_MASK_LEN);
}
