/* AEAD packet protection over GnuTLS's AEAD API (RFC 9001 5.3), with the multipath nonce
 * (iv XOR path_id || packet number). gnutls_aead_cipher_encrypt/decrypt work on caller
 * buffers, in place or not, and allocate nothing; the handle is created once per key. */
#include "crypto.h"

#include <string.h>

static gnutls_cipher_algorithm_t gnutls_alg(ir_aead_alg alg)
{
    switch (alg) {
    case IR_AEAD_AES_128_GCM: return GNUTLS_CIPHER_AES_128_GCM;
    case IR_AEAD_AES_256_GCM: return GNUTLS_CIPHER_AES_256_GCM;
    case IR_AEAD_CHACHA20_POLY1305: return GNUTLS_CIPHER_CHACHA20_POLY1305;
    }
    return GNUTLS_CIPHER_UNKNOWN;
}

int ir_aead_init(ir_aead *a, ir_aead_alg alg, const uint8_t *key, const uint8_t iv[12])
{
    size_t key_len = ir_aead_key_len(alg);
    gnutls_cipher_algorithm_t galg = gnutls_alg(alg);
    gnutls_datum_t k;

    memset(a, 0, sizeof *a);
    if (galg == GNUTLS_CIPHER_UNKNOWN || !key || !iv) return -1;
    a->alg = alg;
    a->key_len = (uint8_t)key_len;
    memcpy(a->key, key, key_len);
    memcpy(a->iv, iv, IR_AEAD_IV_LEN);
    k.data = a->key;
    k.size = (unsigned)key_len;
    if (gnutls_aead_cipher_init(&a->handle, galg, &k) < 0) {
        explicit_bzero(a, sizeof *a);
        return -1;
    }
    return 0;
}

void ir_aead_free(ir_aead *a)
{
    if (a->handle) gnutls_aead_cipher_deinit(a->handle);
    explicit_bzero(a, sizeof *a);
}

void ir_aead_nonce(const ir_aead *a, uint32_t path_id, uint64_t pn, uint8_t nonce[12])
{
    memcpy(nonce, a->iv, IR_AEAD_IV_LEN);
    for (int i = 0; i < 4; i++) nonce[i] ^= (uint8_t)(path_id >> (24 - 8 * i));
    for (int i = 0; i < 8; i++) nonce[4 + i] ^= (uint8_t)(pn >> (56 - 8 * i));
}

/* A non-NULL pointer for empty inputs, so no library sees NULL (+ 0). */
static const uint8_t empty[1];

int ir_aead_seal(const ir_aead *a, uint32_t path_id, uint64_t pn, const uint8_t *aad,
                 size_t aad_len, const uint8_t *in, size_t len, uint8_t *out)
{
    uint8_t nonce[IR_AEAD_IV_LEN];
    size_t out_len = len + IR_AEAD_TAG_LEN;

    if (!a->handle || !out) return -1;
    if (aad_len == 0) aad = empty;
    else if (!aad) return -1;
    if (len == 0) in = out; /* nothing to read; any valid pointer will do */
    else if (!in) return -1;
    ir_aead_nonce(a, path_id, pn, nonce);
    if (gnutls_aead_cipher_encrypt(a->handle, nonce, sizeof nonce, aad, aad_len,
                                   IR_AEAD_TAG_LEN, in, len, out, &out_len) < 0)
        return -1;
    return 0;
}

long ir_aead_open(const ir_aead *a, uint32_t path_id, uint64_t pn, const uint8_t *aad,
                  size_t aad_len, const uint8_t *in, size_t len, uint8_t *out)
{
    uint8_t nonce[IR_AEAD_IV_LEN];
    uint8_t dummy[1];
    size_t out_len;

    if (!a->handle || !in || len < IR_AEAD_TAG_LEN) return -1;
    out_len = len - IR_AEAD_TAG_LEN;
    if (!out) {
        if (out_len) return -1;
        out = dummy; /* a bare tag decrypts to nothing */
    }
    if (aad_len == 0) aad = empty;
    else if (!aad) return -1;
    ir_aead_nonce(a, path_id, pn, nonce);
    if (gnutls_aead_cipher_decrypt(a->handle, nonce, sizeof nonce, aad, aad_len,
                                   IR_AEAD_TAG_LEN, in, len, out, &out_len) < 0)
        return -1;
    return (long)(len - IR_AEAD_TAG_LEN);
}
