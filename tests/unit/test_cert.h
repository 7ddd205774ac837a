/* Test certificates made with GnuTLS (self-signed, ECDSA P-256), shared by the tests that
 * run HTTPS servers of their own (test_tls_stream.c, test_lookup.c). */
#ifndef IR_TEST_CERT_H
#define IR_TEST_CERT_H

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

static inline int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

/* A self-signed certificate for cn with a DNS SAN (dns may be NULL) and an IPv4 SAN. */
static inline int make_cert(const char *cpath, const char *kpath, const char *cn, const char *dns,
                     const char *ip4, unsigned serial)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t cd = {NULL, 0}, kd = {NULL, 0};
    int ok = -1;
    char dn[128];
    unsigned char ip[4], ser[4] = {(unsigned char)(serial >> 24), (unsigned char)(serial >> 16),
                                   (unsigned char)(serial >> 8), (unsigned char)serial};
    snprintf(dn, sizeof dn, "CN=%s", cn);
    time_t now = time(NULL);
    if (gnutls_x509_privkey_init(&key) < 0 ||
        gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                     GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0 ||
        gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_crt_set_version(crt, 3) < 0 ||
        gnutls_x509_crt_set_serial(crt, ser, sizeof ser) < 0 ||
        gnutls_x509_crt_set_activation_time(crt, now - 3600) < 0 ||
        gnutls_x509_crt_set_expiration_time(crt, now + 86400) < 0 ||
        gnutls_x509_crt_set_dn(crt, dn, NULL) < 0 || gnutls_x509_crt_set_key(crt, key) < 0 ||
        gnutls_x509_crt_set_basic_constraints(crt, 0, -1) < 0 ||
        gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
        gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0) < 0)
        goto out;
    if (dns && gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, dns,
                                                    (unsigned)strlen(dns), GNUTLS_FSAN_APPEND) < 0)
        goto out;
    if (ip4 && (inet_pton(AF_INET, ip4, ip) != 1 ||
                gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4,
                                                     GNUTLS_FSAN_APPEND) < 0))
        goto out;
    if (gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0 ||
        gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cd) < 0 ||
        gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &kd) < 0)
        goto out;
    if (write_file(cpath, cd.data, cd.size) == 0 && write_file(kpath, kd.data, kd.size) == 0)
        ok = 0;
out:
    gnutls_free(cd.data);
    gnutls_free(kd.data);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    return ok;
}

#endif
