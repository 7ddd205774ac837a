#include "key.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <gmp.h>
#include <nettle/eddsa.h>
#include <string.h>
#include <sys/random.h>

#include "encoding.h"
#include "util.h"

/* Curve constants of edwards25519 (RFC 8032 section 5.1). */
static const char P_DEC[] =
    "57896044618658097711785492504343953926634992332820282019728792003956564819949";
static const char D_DEC[] =
    "37095705934669439343138083508754565189542113879843219016388785533085940283555";
/* The y coordinate of the order-8 points (its negation mod p is the other one). */
static const char Y8_DEC[] =
    "2707385501144840649318225287225658788936804267575313519463743609750303402022";
/* The group order L, little-endian. */
static const uint8_t GROUP_ORDER[32] = {
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
};

/* y (sign bit cleared) as an integer, not reduced */
static void load_y(mpz_t y, const uint8_t enc[32])
{
    uint8_t b[32];
    memcpy(b, enc, 32);
    b[31] &= 0x7f;
    mpz_import(y, 32, -1, 1, 0, 0, b);
}

int ir_ed25519_canonical_y(const uint8_t enc[32])
{
    mpz_t y, p;
    mpz_inits(y, p, NULL);
    mpz_set_str(p, P_DEC, 10);
    load_y(y, enc);
    int ok = mpz_cmp(y, p) < 0;
    mpz_clears(y, p, NULL);
    return ok;
}

int ir_ed25519_point_valid(const uint8_t enc[32])
{
    /* x^2 = (y^2 - 1) / (d y^2 + 1): the point exists iff u*v is zero or a square mod p */
    mpz_t y, p, d, u, v;
    mpz_inits(y, p, d, u, v, NULL);
    mpz_set_str(p, P_DEC, 10);
    mpz_set_str(d, D_DEC, 10);
    load_y(y, enc);
    mpz_mod(y, y, p);
    mpz_mul(u, y, y);
    mpz_mod(u, u, p);
    mpz_mul(v, u, d);
    mpz_add_ui(v, v, 1);
    mpz_sub_ui(u, u, 1);
    mpz_mul(u, u, v);
    mpz_mod(u, u, p);
    int ok = mpz_jacobi(u, p) >= 0;
    mpz_clears(y, p, d, u, v, NULL);
    return ok;
}

int ir_ed25519_small_order(const uint8_t enc[32])
{
    if (!ir_ed25519_point_valid(enc))
        return 0;
    mpz_t y, p, y8, t;
    mpz_inits(y, p, y8, t, NULL);
    mpz_set_str(p, P_DEC, 10);
    mpz_set_str(y8, Y8_DEC, 10);
    load_y(y, enc);
    mpz_mod(y, y, p);
    mpz_sub(t, p, y8);
    mpz_add_ui(y, y, 1); /* compare y+1 with 0 (y = -1), 1 (y = 0), 2 (y = 1) */
    mpz_mod(y, y, p);
    int small = mpz_cmp_ui(y, 2) <= 0;
    mpz_sub_ui(y, y, 1);
    mpz_mod(y, y, p);
    small = small || mpz_cmp(y, y8) == 0 || mpz_cmp(y, t) == 0;
    mpz_clears(y, p, y8, t, NULL);
    return small;
}

int ir_key_text_decode(const char *text, uint8_t out[32])
{
    size_t len = strlen(text);
    if (len == 64) {
        if (ir_hex_decode(text, len, out, 32, 0) != 0)
            return ir_fail(IROH_ERR_INVALID_KEY, "failed to decode hex string");
        return IROH_OK;
    }
    /* iroh uppercases and decodes unpadded base32, which must yield exactly 32 bytes */
    if (len != 52)
        return ir_fail(IROH_ERR_INVALID_KEY, "invalid length");
    size_t pos;
    if (ir_b32_decode(IR_B32_RFC4648, text, len, out, 32, &pos) != 32)
        return ir_fail(IROH_ERR_INVALID_KEY, "failed to decode base32 string");
    return IROH_OK;
}

/* ---- public API ---------------------------------------------------------------------- */

int iroh_secret_key_generate(iroh_secret_key *out)
{
    if (!out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "out is NULL");
    size_t got = 0;
    while (got < sizeof out->bytes) {
        ssize_t n = getrandom(out->bytes + got, sizeof out->bytes - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return ir_fail(IROH_ERR_IO, "getrandom: %s", strerror(errno));
        }
        got += (size_t)n;
    }
    return IROH_OK;
}

int iroh_secret_key_parse(const char *text, iroh_secret_key *out)
{
    if (!text || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    return ir_key_text_decode(text, out->bytes);
}

static int put_text(const char *text, size_t len, char *buf, size_t buflen)
{
    if (!buf)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "buf is NULL");
    if (buflen < len + 1)
        return ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "need %zu bytes", len + 1);
    memcpy(buf, text, len + 1);
    return IROH_OK;
}

int iroh_secret_key_to_hex(const iroh_secret_key *key, char *buf, size_t buflen)
{
    char tmp[65];
    if (!key)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "key is NULL");
    ir_hex_encode(key->bytes, 32, tmp);
    return put_text(tmp, 64, buf, buflen);
}

void iroh_secret_key_public(const iroh_secret_key *key, iroh_endpoint_id *out)
{
    ed25519_sha512_public_key(out->bytes, key->bytes);
}

void iroh_secret_key_sign(const iroh_secret_key *key, const void *msg, size_t len,
                          iroh_signature *out)
{
    uint8_t pub[32];
    ed25519_sha512_public_key(pub, key->bytes);
    ed25519_sha512_sign(pub, key->bytes, len, msg, out->bytes);
}

int iroh_endpoint_id_from_bytes(const uint8_t bytes[32], iroh_endpoint_id *out)
{
    if (!bytes || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    if (!ir_ed25519_point_valid(bytes))
        return ir_fail(IROH_ERR_INVALID_KEY, "data is not a valid public key");
    memcpy(out->bytes, bytes, 32);
    return IROH_OK;
}

int iroh_endpoint_id_parse(const char *text, iroh_endpoint_id *out)
{
    uint8_t b[32];
    if (!text || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    int rc = ir_key_text_decode(text, b);
    if (rc != IROH_OK)
        return rc;
    return iroh_endpoint_id_from_bytes(b, out);
}

int iroh_endpoint_id_to_hex(const iroh_endpoint_id *id, char *buf, size_t buflen)
{
    char tmp[65];
    if (!id)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "id is NULL");
    ir_hex_encode(id->bytes, 32, tmp);
    return put_text(tmp, 64, buf, buflen);
}

int iroh_endpoint_id_fmt_short(const iroh_endpoint_id *id, char *buf, size_t buflen)
{
    char tmp[11];
    if (!id)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "id is NULL");
    ir_hex_encode(id->bytes, 5, tmp);
    return put_text(tmp, 10, buf, buflen);
}

int iroh_endpoint_id_to_base32(const iroh_endpoint_id *id, char *buf, size_t buflen)
{
    char tmp[53];
    if (!id)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "id is NULL");
    ir_b32_encode(IR_B32_RFC4648, id->bytes, 32, tmp);
    return put_text(tmp, 52, buf, buflen);
}

int iroh_endpoint_id_to_z32(const iroh_endpoint_id *id, char *buf, size_t buflen)
{
    char tmp[53];
    if (!id)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "id is NULL");
    ir_b32_encode(IR_B32_Z, id->bytes, 32, tmp);
    return put_text(tmp, 52, buf, buflen);
}

int iroh_endpoint_id_equal(const iroh_endpoint_id *a, const iroh_endpoint_id *b)
{
    return a && b && memcmp(a->bytes, b->bytes, 32) == 0;
}

/* S < L, comparing little-endian 256-bit numbers from the top byte down */
static int scalar_canonical(const uint8_t s[32])
{
    for (int i = 31; i >= 0; i--) {
        if (s[i] != GROUP_ORDER[i])
            return s[i] < GROUP_ORDER[i];
    }
    return 0;
}

int iroh_endpoint_id_verify(const iroh_endpoint_id *id, const void *msg, size_t len,
                            const iroh_signature *sig)
{
    if (!id || !sig || (!msg && len))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    const uint8_t *r = sig->bytes, *s = sig->bytes + 32;
    if (!scalar_canonical(s))
        return ir_fail(IROH_ERR_INVALID_SIGNATURE, "signature scalar is not canonical");
    if (!ir_ed25519_point_valid(r) || !ir_ed25519_canonical_y(r))
        return ir_fail(IROH_ERR_INVALID_SIGNATURE, "signature R is not a canonical point");
    if (ir_ed25519_small_order(r) || ir_ed25519_small_order(id->bytes))
        return ir_fail(IROH_ERR_INVALID_SIGNATURE, "weak key or signature R of small order");
    if (!ed25519_sha512_verify(id->bytes, len, msg, sig->bytes))
        return ir_fail(IROH_ERR_INVALID_SIGNATURE, "signature does not verify");
    return IROH_OK;
}

int iroh_secret_key_save(const iroh_secret_key *key, const char *path)
{
    if (!key || !path)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    char line[66];
    ir_hex_encode(key->bytes, 32, line);
    line[64] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return ir_fail(IROH_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    ssize_t n = write(fd, line, 65);
    int err = n == 65 ? 0 : (n < 0 ? errno : EIO);
    if (close(fd) != 0 && !err)
        err = errno;
    memset(line, 0, sizeof line);
    if (err) {
        unlink(path);
        return ir_fail(IROH_ERR_IO, "cannot write %s: %s", path, strerror(err));
    }
    return IROH_OK;
}

int iroh_secret_key_load(const char *path, iroh_secret_key *out)
{
    if (!path || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    FILE *f = fopen(path, "re");
    if (!f)
        return ir_fail(IROH_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int more = fgetc(f) != EOF;
    fclose(f);
    buf[n] = 0;
    size_t start = 0;
    while (start < n && (buf[start] == ' ' || buf[start] == '\t' || buf[start] == '\n' || buf[start] == '\r'))
        start++;
    while (n > start && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = 0;
    int rc;
    if (more || strlen(buf + start) != n - start)
        rc = ir_fail(IROH_ERR_INVALID_KEY, "%s does not hold one secret key", path);
    else
        rc = iroh_secret_key_parse(buf + start, out);
    memset(buf, 0, sizeof buf);
    return rc;
}
