/* Certificate checks of the TLS layer (tls/tls.h).
 *
 * Mode byte bit 0 clear: the raw-public-key check itself (ir_tls_check_peer_spki, what
 * the handshake's verify function applies) on the input as a SubjectPublicKeyInfo; bit 1
 * then gives an expected EndpointId (the input's key bytes with the last input byte XORed
 * into the first). Checked against GnuTLS's own SPKI parser: a key we accept is one that
 * GnuTLS reads as the same Ed25519 key, a valid point not of small order, and the expected
 * one.
 *
 * Bit 0 set: a whole TLS handshake in memory between two ir_tls sessions, from the
 * input: u8 the client's identity (& 7: raw keys 0-3, 4-7 X.509 client trusting the test
 * certificate), u8 the server's identity (& 7: raw keys 0-3, 4-7 X.509 server with the test
 * certificate for localhost and 127.0.0.1), u8 the key the client expects (& 3), u8 the
 * name an X.509 client checks (& 7: localhost, 127.0.0.1, ::1, other.test, LOCALHOST,
 * "localhost.", or up to 40 input bytes), then up to seven (u16 offset, u8 xor) changes
 * to the handshake bytes in flight (u8 count first). Checked: the handshake completes
 * exactly when it should (the same kind of identity on both ends, the expected key, a
 * name the certificate carries) unless bytes were changed, and then never for a wrong
 * key or name; the server sees the client's key in raw mode. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>

#include "base/key.h"
#include "tls/tls.h"
#include "fuzz_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ir_tls_identity *raw_id[4], *x509_server, *x509_client;
static iroh_endpoint_id raw_pub[4];

static void setup(void)
{
    if (x509_client)
        return;
    fx_make_cert();
    for (int i = 0; i < 4; i++) {
        iroh_secret_key k;
        memset(k.bytes, 0x10 + i, 32);
        if (ir_tls_identity_new(&k, &raw_id[i]) != IROH_OK)
            abort();
        iroh_secret_key_public(&k, &raw_pub[i]);
    }
    if (ir_tls_identity_new_x509_server(fx_cert_file, fx_key_file, &x509_server) != IROH_OK ||
        ir_tls_identity_new_x509_client(fx_cert_file, &x509_client) != IROH_OK)
        abort();
}

/* ---- the SPKI check ------------------------------------------------------------------------ */

static void spki_check(const uint8_t *d, size_t len, int with_expected)
{
    iroh_endpoint_id expected, out;
    memset(&expected, 0, sizeof expected);
    if (with_expected && len >= 44) {
        memcpy(expected.bytes, d + 12, 32);
        expected.bytes[0] ^= d[len - 1];
    }
    memset(&out, 0xee, sizeof out);
    const char *reason = NULL;
    int alert = ir_tls_check_peer_spki(d, len, with_expected ? &expected : NULL, &out, &reason);
    /* what GnuTLS makes of the same bytes */
    int gnutls_ed25519 = 0;
    uint8_t gkey[32];
    gnutls_pubkey_t pk;
    gnutls_datum_t in = {(unsigned char *)(uintptr_t)d, (unsigned)len};
    if (gnutls_pubkey_init(&pk) == 0) {
        if (gnutls_pubkey_import(pk, &in, GNUTLS_X509_FMT_DER) == 0 &&
            gnutls_pubkey_get_pk_algorithm(pk, NULL) == GNUTLS_PK_EDDSA_ED25519) {
            gnutls_datum_t x = {NULL, 0};
            if (gnutls_pubkey_export_ecc_raw2(pk, NULL, &x, NULL, GNUTLS_EXPORT_FLAG_NO_LZ) == 0 &&
                x.size == 32) {
                memcpy(gkey, x.data, 32);
                gnutls_ed25519 = 1;
            }
            gnutls_free(x.data);
        }
        gnutls_pubkey_deinit(pk);
    }
    if (alert == 0) {
        /* accepted: GnuTLS reads the same Ed25519 key, valid and not weak, the one expected */
        if (!gnutls_ed25519 || memcmp(gkey, out.bytes, 32) != 0 || len != IR_SPKI_LEN ||
            !ir_ed25519_point_valid(out.bytes) || ir_ed25519_small_order(out.bytes) ||
            (with_expected && memcmp(out.bytes, expected.bytes, 32) != 0))
            abort();
        return;
    }
    if (!reason || (alert != 42 && alert != 48))
        abort(); /* bad_certificate or unknown_ca, with a reason */
    if (alert == 48 && !with_expected)
        abort();
    /* refused although GnuTLS sees a strong key in the canonical 44-byte form we expect */
    if (gnutls_ed25519 && len == IR_SPKI_LEN && ir_ed25519_point_valid(gkey) &&
        !ir_ed25519_small_order(gkey) && (!with_expected || memcmp(gkey, expected.bytes, 32) == 0)) {
        uint8_t canon[IR_SPKI_LEN];
        ir_ed25519_spki(gkey, canon);
        if (memcmp(canon, d, IR_SPKI_LEN) == 0)
            abort();
    }
}

/* ---- a handshake in memory ------------------------------------------------------------------- */

typedef struct side {
    ir_tls *tls;
    uint8_t out[4][16384];
    size_t out_len[4];
} side;

static size_t flown; /* handshake bytes moved so far */
static uint16_t moff[7];
static uint8_t mx[7];
static unsigned nmut;

static int on_secret(void *ctx, ir_level level, uint16_t suite, const uint8_t *rx,
                     const uint8_t *tx, size_t len)
{
    return 0;
}

static int on_crypto(void *ctx, ir_level level, const uint8_t *data, size_t len)
{
    side *s = ctx;
    if (s->out_len[level] + len > sizeof s->out[level])
        return -1;
    memcpy(s->out[level] + s->out_len[level], data, len);
    s->out_len[level] += len;
    return 0;
}

static uint64_t on_peer_tp(void *ctx, const uint8_t *data, size_t len)
{
    return 0;
}

static int move(side *a, side *b)
{
    int moved = 0;
    for (int l = 0; l < 4; l++) {
        size_t n = a->out_len[l];
        if (!n)
            continue;
        uint8_t tmp[16384];
        memcpy(tmp, a->out[l], n);
        a->out_len[l] = 0;
        for (unsigned i = 0; i < nmut; i++)
            if (moff[i] >= flown && moff[i] < flown + n)
                tmp[moff[i] - flown] ^= mx[i];
        flown += n;
        moved = 1;
        if (ir_tls_feed(b->tls, (ir_level)l, tmp, n) != 0)
            return -1;
    }
    return moved;
}

static void handshake(fx_rd *r)
{
    uint8_t ci = fx_u8(r) & 7, si = fx_u8(r) & 7, ei = fx_u8(r) & 3, ni = fx_u8(r) & 7;
    static const char *names[6] = {"localhost", "127.0.0.1", "::1", "other.test", "LOCALHOST",
                                   "localhost."};
    char name[41];
    if (ni < 6) {
        snprintf(name, sizeof name, "%s", names[ni]);
    } else {
        size_t n;
        const uint8_t *b = fx_bytes(r, fx_u8(r) % 41, &n);
        memcpy(name, b, n);
        name[n] = 0;
    }
    nmut = fx_u8(r) & 7u;
    int disturbed = 0;
    for (unsigned i = 0; i < nmut; i++) {
        moff[i] = fx_u16(r);
        mx[i] = fx_u8(r);
        disturbed |= mx[i] != 0;
    }
    flown = 0;
    int cx = ci >= 4, sx = si >= 4;
    static const uint8_t *alpns[1] = {(const uint8_t *)"fuzz/1"};
    static const size_t alpn_lens[1] = {6};
    static const uint8_t tp[] = {0x01, 0x04, 0x80, 0x00, 0x75, 0x30};
    ir_tls_config cc = {.identity = cx ? x509_client : raw_id[ci], .is_server = 0,
                        .alpns = alpns, .alpn_lens = alpn_lens, .n_alpns = 1,
                        .expected_peer = cx ? NULL : &raw_pub[ei],
                        .server_name = cx ? name : NULL, .local_tp = tp,
                        .local_tp_len = sizeof tp};
    ir_tls_config sc = {.identity = sx ? x509_server : raw_id[si], .is_server = 1,
                        .alpns = alpns, .alpn_lens = alpn_lens, .n_alpns = 1,
                        .local_tp = tp, .local_tp_len = sizeof tp};
    ir_tls_callbacks cb = {.on_secret = on_secret, .on_crypto = on_crypto, .on_peer_tp = on_peer_tp};
    static side c, s;
    memset(&c, 0, sizeof c);
    memset(&s, 0, sizeof s);
    cb.ctx = &c;
    int crc = ir_tls_new(&cc, &cb, &c.tls);
    cb.ctx = &s;
    int src = ir_tls_new(&sc, &cb, &s.tls);
    if (crc != IROH_OK || src != IROH_OK) {
        /* only an X.509 client may be refused at setup (a name GnuTLS does not take) */
        if (crc != IROH_OK && !cx)
            abort();
        if (src != IROH_OK)
            abort();
        ir_tls_free(c.tls);
        ir_tls_free(s.tls);
        return;
    }
    int failed = ir_tls_start(c.tls) != 0;
    for (int k = 0; k < 16 && !failed; k++) {
        int a = move(&c, &s), b = a < 0 ? -1 : move(&s, &c);
        if (a < 0 || b < 0)
            failed = 1;
        else if (!a && !b)
            break;
    }
    int done = !failed && ir_tls_complete(c.tls) && ir_tls_complete(s.tls);
    /* what should happen */
    int name_ok = strcmp(name, "localhost") == 0 || strcmp(name, "127.0.0.1") == 0 ||
                  strcmp(name, "LOCALHOST") == 0;
    /* names that cannot match the certificate: no digit, no ':', no "localhost" */
    int name_bad = strcmp(name, "::1") == 0 || strcmp(name, "other.test") == 0;
    if (ni >= 6) {
        name_bad = !strcasestr(name, "localhost") && !strchr(name, ':');
        for (const char *p = name; *p; p++)
            if (*p >= '0' && *p <= '9')
                name_bad = 0;
    }
    int should = cx == sx && (cx ? name_ok : ei == si);
    int never = cx != sx || (cx ? name_bad : ei != si);
    if (done && never)
        abort(); /* a wrong key, kind of identity or name was accepted */
    if (!done && should && !disturbed)
        abort(); /* a good handshake failed */
    if (done && !cx) {
        iroh_endpoint_id id;
        if (ir_tls_peer_id(s.tls, &id) != 0 || memcmp(id.bytes, raw_pub[ci].bytes, 32) != 0 ||
            ir_tls_peer_id(c.tls, &id) != 0 || memcmp(id.bytes, raw_pub[si].bytes, 32) != 0)
            abort();
    }
    if (failed) {
        const char *why = NULL;
        if (ir_tls_error(c.tls, &why) == 0 && ir_tls_error(s.tls, &why) == 0 && !disturbed)
            abort(); /* a failure without an error code */
    }
    ir_tls_free(c.tls);
    ir_tls_free(s.tls);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    setup();
    if (data[0] & 1) {
        fx_rd r = {data, size, 1};
        handshake(&r);
    } else {
        spki_check(data + 1, size - 1, (data[0] >> 1) & 1);
    }
    return 0;
}
