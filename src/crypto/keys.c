/* Packet protection key sets (RFC 9001 5.1), key updates (section 6) and the Initial
 * secrets of QUIC v1 (section 5.2). */
#include "crypto.h"

#include <string.h>

/* Derives key, iv (and hp unless hp_from is given) from k->secret into k. */
static int derive(ir_pkt_keys *k, const ir_hp *hp_from)
{
    uint8_t key[IR_AEAD_MAX_KEY_LEN], iv[IR_AEAD_IV_LEN], hp[IR_AEAD_MAX_KEY_LEN];
    size_t key_len = ir_aead_key_len(k->alg);
    int rc = 0;

    static const char *const labels[3] = {"quic key", "quic iv", "quic hp"};
    uint8_t *const outs[3] = {key, iv, hp};
    const size_t lens[3] = {key_len, sizeof iv, key_len};
    ir_hkdf_expand_labels(k->hash, k->secret, k->secret_len, hp_from ? 2 : 3, labels, outs, lens);
    if (ir_aead_init(&k->aead, k->alg, key, iv) < 0) rc = -1;
    if (rc == 0) {
        if (hp_from) {
            k->hp = *hp_from;
        } else {
            if (ir_hp_init(&k->hp, k->alg, hp) < 0) rc = -1;
        }
    }
    explicit_bzero(key, sizeof key);
    explicit_bzero(iv, sizeof iv);
    explicit_bzero(hp, sizeof hp);
    return rc;
}

static int valid_algs(ir_aead_alg aead, ir_hash_alg hash)
{
    return (aead == IR_AEAD_AES_128_GCM || aead == IR_AEAD_AES_256_GCM ||
            aead == IR_AEAD_CHACHA20_POLY1305) &&
           (hash == IR_HASH_SHA256 || hash == IR_HASH_SHA384);
}

int ir_pkt_keys_init(ir_pkt_keys *k, ir_aead_alg aead, ir_hash_alg hash, const uint8_t *secret,
                     size_t secret_len)
{
    memset(k, 0, sizeof *k);
    if (!valid_algs(aead, hash) || !secret || secret_len != ir_hash_len(hash)) return -1;
    k->alg = aead;
    k->hash = hash;
    memcpy(k->secret, secret, secret_len);
    k->secret_len = secret_len;
    if (derive(k, NULL) < 0) {
        ir_pkt_keys_free(k);
        return -1;
    }
    return 0;
}

int ir_pkt_keys_update(ir_pkt_keys *next, const ir_pkt_keys *cur)
{
    ir_pkt_keys t;

    memset(&t, 0, sizeof t);
    if (!cur->aead.handle || cur->secret_len != ir_hash_len(cur->hash)) return -1;
    t.alg = cur->alg;
    t.hash = cur->hash;
    t.secret_len = cur->secret_len;
    ir_hkdf_expand_label(cur->hash, cur->secret, cur->secret_len, "quic ku", t.secret,
                         t.secret_len);
    if (derive(&t, &cur->hp) < 0) {
        ir_pkt_keys_free(&t);
        return -1;
    }
    if (next == cur) ir_aead_free(&next->aead);
    *next = t;
    explicit_bzero(&t, sizeof t);
    return 0;
}

void ir_pkt_keys_free(ir_pkt_keys *k)
{
    ir_aead_free(&k->aead);
    explicit_bzero(k, sizeof *k);
}

/* RFC 9001 5.2: the QUIC v1 initial salt. */
static const uint8_t initial_salt_v1[20] = {
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
    0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
};

void ir_initial_secrets(const uint8_t *dcid, size_t dcid_len, uint8_t client_secret[32],
                        uint8_t server_secret[32])
{
    uint8_t prk[32];
    ir_hkdf_extract(IR_HASH_SHA256, initial_salt_v1, sizeof initial_salt_v1, dcid, dcid_len,
                    prk);
    static const char *const labels[2] = {"client in", "server in"};
    uint8_t *const outs[2] = {client_secret, server_secret};
    const size_t lens[2] = {32, 32};
    ir_hkdf_expand_labels(IR_HASH_SHA256, prk, sizeof prk, server_secret ? 2 : 1, labels, outs,
                          lens);
    explicit_bzero(prk, sizeof prk);
}

int ir_initial_keys(const uint8_t *dcid, size_t dcid_len, ir_pkt_keys *client,
                    ir_pkt_keys *server)
{
    uint8_t cs[32], ss[32];
    int rc = -1;

    ir_initial_secrets(dcid, dcid_len, cs, ss);
    if (ir_pkt_keys_init(client, IR_AEAD_AES_128_GCM, IR_HASH_SHA256, cs, sizeof cs) == 0) {
        if (ir_pkt_keys_init(server, IR_AEAD_AES_128_GCM, IR_HASH_SHA256, ss, sizeof ss) == 0)
            rc = 0;
        else
            ir_pkt_keys_free(client);
    }
    explicit_bzero(cs, sizeof cs);
    explicit_bzero(ss, sizeof ss);
    return rc;
}
