/* Shared pieces of the fuzz targets that need certificates or deterministic randomness
 * (not a target itself: targets are tests/fuzz/fuzz_*.c). */
#ifndef FUZZ_FIXTURE_H
#define FUZZ_FIXTURE_H

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* xorshift64: the same bytes on every run of an input */
static uint64_t fx_rng = 0x9e3779b97f4a7c15ull;
static inline void fx_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        fx_rng ^= fx_rng << 13;
        fx_rng ^= fx_rng >> 7;
        fx_rng ^= fx_rng << 17;
        buf[i] = (uint8_t)fx_rng;
    }
}

/* A self-signed ECDSA P-256 server certificate for CN=localhost with the SANs localhost and
 * 127.0.0.1, written once per process as PEM files into a temporary directory (removed
 * at exit). fx_cert_file / fx_key_file name them; the certificate is its own CA. */
static char fx_dir[64], fx_cert_file[128], fx_key_file[128];

static inline void fx_cleanup(void)
{
    unlink(fx_cert_file);
    unlink(fx_key_file);
    rmdir(fx_dir);
}

static inline int fx_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

static inline void fx_make_cert(void)
{
    if (fx_cert_file[0])
        return;
    snprintf(fx_dir, sizeof fx_dir, "/tmp/iroh-fuzz-XXXXXX");
    if (!mkdtemp(fx_dir))
        abort();
    snprintf(fx_cert_file, sizeof fx_cert_file, "%s/cert.pem", fx_dir);
    snprintf(fx_key_file, sizeof fx_key_file, "%s/key.pem", fx_dir);
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t cd = {NULL, 0}, kd = {NULL, 0};
    unsigned char ip[4], ser[4] = {0, 0, 0, 1};
    time_t now = time(NULL);
    inet_pton(AF_INET, "127.0.0.1", ip);
    if (gnutls_x509_privkey_init(&key) < 0 ||
        gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                     GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0 ||
        gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_crt_set_version(crt, 3) < 0 ||
        gnutls_x509_crt_set_serial(crt, ser, sizeof ser) < 0 ||
        gnutls_x509_crt_set_activation_time(crt, now - 3600) < 0 ||
        gnutls_x509_crt_set_expiration_time(crt, now + 30 * 86400) < 0 ||
        gnutls_x509_crt_set_dn(crt, "CN=localhost", NULL) < 0 ||
        gnutls_x509_crt_set_key(crt, key) < 0 ||
        gnutls_x509_crt_set_basic_constraints(crt, 0, -1) < 0 ||
        gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
        gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0) < 0 ||
        gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
                                             GNUTLS_FSAN_APPEND) < 0 ||
        gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4,
                                             GNUTLS_FSAN_APPEND) < 0 ||
        gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0 ||
        gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cd) < 0 ||
        gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &kd) < 0 ||
        fx_write(fx_cert_file, cd.data, cd.size) != 0 ||
        fx_write(fx_key_file, kd.data, kd.size) != 0)
        abort();
    gnutls_free(cd.data);
    gnutls_free(kd.data);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
    atexit(fx_cleanup);
}

/* A little reader for operation scripts: past the end everything reads as zero. */
typedef struct fx_rd {
    const uint8_t *p;
    size_t len, pos;
} fx_rd;

static inline uint8_t fx_u8(fx_rd *r)
{
    return r->pos < r->len ? r->p[r->pos++] : 0;
}

static inline uint16_t fx_u16(fx_rd *r)
{
    uint16_t hi = fx_u8(r);
    return (uint16_t)(hi << 8 | fx_u8(r));
}

/* up to n bytes (fewer at the end of the input) */
static inline const uint8_t *fx_bytes(fx_rd *r, size_t n, size_t *got)
{
    size_t left = r->len - r->pos;
    if (n > left)
        n = left;
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    *got = n;
    return p;
}

#endif
