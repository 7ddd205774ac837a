/* HKDF (RFC 5869) over nettle's HMAC-SHA256/384, and TLS 1.3's HKDF-Expand-Label
 * (RFC 8446 section 7.1) with an empty context, as QUIC uses it (RFC 9001 5.1). */
#include "crypto.h"

#include <string.h>

#include <nettle/hkdf.h>
#include <nettle/hmac.h>
#include <nettle/sha2.h>

/* nettle's HKDF takes update/digest callbacks on a void context; these adapt the typed
 * HMAC functions without casting function pointers. */
static void mac256_update(void *ctx, size_t len, const uint8_t *data)
{
    hmac_sha256_update(ctx, len, data);
}

static void mac256_digest(void *ctx, size_t len, uint8_t *out)
{
    hmac_sha256_digest(ctx, len, out);
}

static void mac384_update(void *ctx, size_t len, const uint8_t *data)
{
    hmac_sha384_update(ctx, len, data);
}

static void mac384_digest(void *ctx, size_t len, uint8_t *out)
{
    hmac_sha384_digest(ctx, len, out);
}

/* A non-NULL pointer for empty inputs. */
static const uint8_t empty[1];

void ir_hkdf_extract(ir_hash_alg h, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                     size_t ikm_len, uint8_t *prk)
{
    /* An empty salt keys HMAC exactly as HashLen zero bytes would (RFC 5869 2.2), since
     * HMAC pads its key with zeros to the block size. */
    if (!salt || salt_len == 0) { salt = empty; salt_len = 0; }
    if (!ikm || ikm_len == 0) { ikm = empty; ikm_len = 0; }
    if (h == IR_HASH_SHA384) {
        struct hmac_sha384_ctx c;
        hmac_sha384_set_key(&c, salt_len, salt);
        hkdf_extract(&c, mac384_update, mac384_digest, SHA384_DIGEST_SIZE, ikm_len, ikm, prk);
        explicit_bzero(&c, sizeof c);
    } else {
        struct hmac_sha256_ctx c;
        hmac_sha256_set_key(&c, salt_len, salt);
        hkdf_extract(&c, mac256_update, mac256_digest, SHA256_DIGEST_SIZE, ikm_len, ikm, prk);
        explicit_bzero(&c, sizeof c);
    }
}

/* HMAC keyed once with the secret; nettle's digest leaves the context keyed again, so
 * several expansions share the key setup (two compression function calls each saved). */
typedef struct keyed_mac {
    ir_hash_alg h;
    union {
        struct hmac_sha256_ctx s256;
        struct hmac_sha384_ctx s384;
    } u;
} keyed_mac;

static void mac_init(keyed_mac *m, ir_hash_alg h, const uint8_t *key, size_t key_len)
{
    if (!key || key_len == 0) { key = empty; key_len = 0; }
    m->h = h;
    if (h == IR_HASH_SHA384)
        hmac_sha384_set_key(&m->u.s384, key_len, key);
    else
        hmac_sha256_set_key(&m->u.s256, key_len, key);
}

static void hkdf_expand_raw(keyed_mac *m, const uint8_t *info, size_t info_len, uint8_t *out,
                            size_t out_len)
{
    if (m->h == IR_HASH_SHA384)
        hkdf_expand(&m->u.s384, mac384_update, mac384_digest, SHA384_DIGEST_SIZE, info_len,
                    info, out_len, out);
    else
        hkdf_expand(&m->u.s256, mac256_update, mac256_digest, SHA256_DIGEST_SIZE, info_len,
                    info, out_len, out);
}

#define LABEL_PREFIX "tls13 "
#define LABEL_PREFIX_LEN 6
#define MAX_LABEL_LEN (255 - LABEL_PREFIX_LEN)

static void expand_label(keyed_mac *m, const char *label, uint8_t *out, size_t out_len)
{
    /* struct { uint16 length; opaque label<7..255> = "tls13 " + Label;
     *          opaque context<0..255> = ""; } HkdfLabel; */
    uint8_t info[2 + 1 + 255 + 1];
    size_t label_len = label ? strlen(label) : 0;
    size_t n = 0;

    if (out_len == 0) return;
    if (label_len > MAX_LABEL_LEN || out_len > 255 * ir_hash_len(m->h) || out_len > 0xffff) {
        memset(out, 0, out_len);
        return;
    }
    info[n++] = (uint8_t)(out_len >> 8);
    info[n++] = (uint8_t)out_len;
    info[n++] = (uint8_t)(LABEL_PREFIX_LEN + label_len);
    memcpy(info + n, LABEL_PREFIX, LABEL_PREFIX_LEN);
    n += LABEL_PREFIX_LEN;
    if (label_len) memcpy(info + n, label, label_len);
    n += label_len;
    info[n++] = 0; /* empty context */
    hkdf_expand_raw(m, info, n, out, out_len);
}

void ir_hkdf_expand_label(ir_hash_alg h, const uint8_t *secret, size_t secret_len,
                          const char *label, uint8_t *out, size_t out_len)
{
    ir_hkdf_expand_labels(h, secret, secret_len, 1, &label, &out, &out_len);
}

void ir_hkdf_expand_labels(ir_hash_alg h, const uint8_t *secret, size_t secret_len, size_t n,
                           const char *const *labels, uint8_t *const *outs, const size_t *out_lens)
{
    keyed_mac m;
    mac_init(&m, h, secret, secret_len);
    for (size_t i = 0; i < n; i++)
        expand_label(&m, labels[i], outs[i], out_lens[i]);
    explicit_bzero(&m, sizeof m);
}
