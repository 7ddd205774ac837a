#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>

#include "base/encoding.h"
#include "base/key.h"
#include "base/util.h"
#include "tls/quic_errors.h"

#define QUIC_TP_EXT 0x39

/* TLS 1.3 only; AES-128/256-GCM and ChaCha20; x25519 first; Ed25519 signatures; raw
 * public keys in both directions; no middlebox compatibility mode (QUIC forbids it). */
static const char PRIORITY[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
    "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:-SIGN-ALL:+SIGN-EDDSA-ED25519:"
    "-CTYPE-ALL:+CTYPE-CLI-RAWPK:+CTYPE-SRV-RAWPK:%DISABLE_TLS13_COMPAT_MODE";

/* X.509 (address discovery with relays): the same, with ordinary certificates. */
static const char PRIORITY_X509[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
    "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:%DISABLE_TLS13_COMPAT_MODE";

static const uint8_t SPKI_PREFIX[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                        0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

void ir_ed25519_spki(const uint8_t key[32], uint8_t out[IR_SPKI_LEN])
{
    memcpy(out, SPKI_PREFIX, sizeof SPKI_PREFIX);
    memcpy(out + sizeof SPKI_PREFIX, key, 32);
}

struct ir_tls_identity {
    gnutls_certificate_credentials_t cred;
    iroh_endpoint_id id;
    int x509; /* 1: X.509 server, 2: X.509 client (trust only) */
};

int ir_tls_identity_new_x509_server(const char *cert_file, const char *key_file,
                                    ir_tls_identity **out)
{
    ir_tls_identity *ident = calloc(1, sizeof *ident);
    if (!ident)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    ident->x509 = 1;
    int rc = gnutls_certificate_allocate_credentials(&ident->cred);
    if (rc >= 0)
        rc = gnutls_certificate_set_x509_key_file(ident->cred, cert_file, key_file,
                                                  GNUTLS_X509_FMT_PEM);
    if (rc < 0) {
        ir_tls_identity_free(ident);
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "certificate %s / key %s: %s", cert_file,
                       key_file, gnutls_strerror(rc));
    }
    *out = ident;
    return IROH_OK;
}

int ir_tls_identity_new_x509_client(const char *ca_file, ir_tls_identity **out)
{
    ir_tls_identity *ident = calloc(1, sizeof *ident);
    if (!ident)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    ident->x509 = 2;
    int rc = gnutls_certificate_allocate_credentials(&ident->cred);
    if (rc >= 0)
        rc = ca_file ? gnutls_certificate_set_x509_trust_file(ident->cred, ca_file,
                                                             GNUTLS_X509_FMT_PEM)
                     : gnutls_certificate_set_x509_system_trust(ident->cred);
    if (rc <= 0) {
        ir_tls_identity_free(ident);
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "trusted certificates (%s): %s",
                       ca_file ? ca_file : "system store",
                       rc < 0 ? gnutls_strerror(rc) : "none found");
    }
    *out = ident;
    return IROH_OK;
}

int ir_tls_identity_is_x509(const ir_tls_identity *id)
{
    return id && id->x509;
}

int ir_tls_identity_new(const iroh_secret_key *key, ir_tls_identity **out)
{
    ir_tls_identity *ident = calloc(1, sizeof *ident);
    gnutls_privkey_t priv = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_pcert_st *pcert = NULL;
    int rc;
    if (!ident)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    iroh_secret_key_public(key, &ident->id);
    /* GnuTLS 3.7.9 needs the public half when importing an Ed25519 private key */
    gnutls_datum_t x = {ident->id.bytes, 32};
    gnutls_datum_t k = {(unsigned char *)key->bytes, 32};
    if ((rc = gnutls_certificate_allocate_credentials(&ident->cred)) < 0 ||
        (rc = gnutls_privkey_init(&priv)) < 0 ||
        (rc = gnutls_privkey_import_ecc_raw(priv, GNUTLS_ECC_CURVE_ED25519, &x, NULL, &k)) < 0 ||
        (rc = gnutls_pubkey_init(&pub)) < 0 ||
        (rc = gnutls_pubkey_import_ecc_raw(pub, GNUTLS_ECC_CURVE_ED25519, &x, NULL)) < 0)
        goto fail;
    pcert = gnutls_calloc(1, sizeof *pcert);
    if (!pcert) {
        rc = GNUTLS_E_MEMORY_ERROR;
        goto fail;
    }
    if ((rc = gnutls_pcert_import_rawpk(pcert, pub, 0)) < 0)
        goto fail;
    pub = NULL; /* owned by pcert now */
    if ((rc = gnutls_certificate_set_key(ident->cred, NULL, 0, pcert, 1, priv)) < 0)
        goto fail;
    gnutls_free(pcert); /* its contents now belong to the credentials */
    *out = ident;
    return IROH_OK;
fail:
    if (pcert) {
        if (pub == NULL && pcert->pubkey)
            gnutls_pcert_deinit(pcert);
        gnutls_free(pcert);
    }
    gnutls_pubkey_deinit(pub);
    gnutls_privkey_deinit(priv);
    if (ident->cred)
        gnutls_certificate_free_credentials(ident->cred);
    free(ident);
    return ir_fail(IROH_ERR_INVALID_KEY, "TLS identity: %s", gnutls_strerror(rc));
}

void ir_tls_identity_free(ir_tls_identity *ident)
{
    if (!ident)
        return;
    gnutls_certificate_free_credentials(ident->cred);
    free(ident);
}

struct ir_tls {
    gnutls_session_t s;
    ir_tls_callbacks cb;
    int is_server;
    int complete;
    int failed;
    uint64_t error;
    const char *reason;
    int have_peer;
    iroh_endpoint_id peer;
    int have_expected;
    iroh_endpoint_id expected;
    uint8_t *local_tp;
    size_t local_tp_len;
    gnutls_datum_t *alpn_list;
    size_t n_alpns;
};

static ir_tls *from_session(gnutls_session_t s)
{
    return gnutls_session_get_ptr(s);
}

static void set_error(ir_tls *t, uint64_t code, const char *reason)
{
    if (t->failed)
        return;
    t->failed = 1;
    t->error = code;
    t->reason = reason;
}

static ir_level level_of(gnutls_record_encryption_level_t l)
{
    switch (l) {
    case GNUTLS_ENCRYPTION_LEVEL_INITIAL: return IR_LEVEL_INITIAL;
    case GNUTLS_ENCRYPTION_LEVEL_EARLY: return IR_LEVEL_EARLY;
    case GNUTLS_ENCRYPTION_LEVEL_HANDSHAKE: return IR_LEVEL_HANDSHAKE;
    default: return IR_LEVEL_APP;
    }
}

static gnutls_record_encryption_level_t gnutls_level(ir_level l)
{
    switch (l) {
    case IR_LEVEL_INITIAL: return GNUTLS_ENCRYPTION_LEVEL_INITIAL;
    case IR_LEVEL_EARLY: return GNUTLS_ENCRYPTION_LEVEL_EARLY;
    case IR_LEVEL_HANDSHAKE: return GNUTLS_ENCRYPTION_LEVEL_HANDSHAKE;
    default: return GNUTLS_ENCRYPTION_LEVEL_APPLICATION;
    }
}

static uint16_t suite_id(gnutls_session_t s)
{
    switch (gnutls_cipher_get(s)) {
    case GNUTLS_CIPHER_AES_128_GCM: return 0x1301;
    case GNUTLS_CIPHER_AES_256_GCM: return 0x1302;
    case GNUTLS_CIPHER_CHACHA20_POLY1305: return 0x1303;
    default: return 0;
    }
}

static int secret_func(gnutls_session_t s, gnutls_record_encryption_level_t level,
                       const void *rx, const void *tx, size_t len)
{
    ir_tls *t = from_session(s);
    uint16_t suite = suite_id(s);
    if (!suite) {
        set_error(t, IR_QERR_CRYPTO(GNUTLS_A_HANDSHAKE_FAILURE), "unsupported cipher suite");
        return -1;
    }
    if (t->cb.on_secret && t->cb.on_secret(t->cb.ctx, level_of(level), suite, rx, tx, len) != 0) {
        set_error(t, IR_QERR_INTERNAL_ERROR, "installing keys failed");
        return -1;
    }
    return 0;
}

static int read_func(gnutls_session_t s, gnutls_record_encryption_level_t level,
                     gnutls_handshake_description_t htype, const void *data, size_t len)
{
    ir_tls *t = from_session(s);
    if (htype == GNUTLS_HANDSHAKE_CHANGE_CIPHER_SPEC)
        return 0;
    if (t->cb.on_crypto && t->cb.on_crypto(t->cb.ctx, level_of(level), data, len) != 0) {
        set_error(t, IR_QERR_INTERNAL_ERROR, "queueing handshake data failed");
        return -1;
    }
    return 0;
}

static int alert_func(gnutls_session_t s, gnutls_record_encryption_level_t level,
                      gnutls_alert_level_t alert_level, gnutls_alert_description_t desc)
{
    ir_tls *t = from_session(s);
    set_error(t, IR_QERR_CRYPTO(desc), gnutls_alert_get_strname(desc));
    return 0;
}

static int tp_send(gnutls_session_t s, gnutls_buffer_t buf)
{
    ir_tls *t = from_session(s);
    if (gnutls_buffer_append_data(buf, t->local_tp, t->local_tp_len) < 0)
        return GNUTLS_E_MEMORY_ERROR;
    return 0;
}

static int tp_recv(gnutls_session_t s, const unsigned char *data, size_t len)
{
    ir_tls *t = from_session(s);
    uint64_t err = t->cb.on_peer_tp ? t->cb.on_peer_tp(t->cb.ctx, data, len) : 0;
    if (err) {
        set_error(t, err, "invalid transport parameters");
        return GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER;
    }
    return 0;
}

int ir_tls_check_peer_spki(const uint8_t *spki, size_t len, const iroh_endpoint_id *expected,
                           iroh_endpoint_id *out, const char **reason)
{
    if (len != IR_SPKI_LEN || memcmp(spki, SPKI_PREFIX, sizeof SPKI_PREFIX) != 0) {
        *reason = "peer certificate is not one Ed25519 public key";
        return GNUTLS_A_BAD_CERTIFICATE;
    }
    const uint8_t *key = spki + sizeof SPKI_PREFIX;
    if (!ir_ed25519_point_valid(key) || ir_ed25519_small_order(key)) {
        *reason = "peer key is weak or invalid";
        return GNUTLS_A_BAD_CERTIFICATE;
    }
    if (expected && memcmp(key, expected->bytes, 32) != 0) {
        *reason = "peer key is not the EndpointId that was dialed";
        return GNUTLS_A_UNKNOWN_CA;
    }
    memcpy(out->bytes, key, 32);
    return 0;
}

/* Checks the peer's raw public key: exactly one certificate, and it passes
 * ir_tls_check_peer_spki. */
static int verify_func(gnutls_session_t s)
{
    ir_tls *t = from_session(s);
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    if (gnutls_certificate_type_get2(s, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_RAWPK) {
        set_error(t, IR_QERR_CRYPTO(GNUTLS_A_UNSUPPORTED_CERTIFICATE),
                  "peer did not present a raw public key");
        return -1;
    }
    const char *reason = "peer certificate is not one Ed25519 public key";
    int alert = !certs || n != 1 ? GNUTLS_A_BAD_CERTIFICATE
                                 : ir_tls_check_peer_spki(certs[0].data, certs[0].size,
                                                          t->have_expected ? &t->expected : NULL,
                                                          &t->peer, &reason);
    if (alert) {
        set_error(t, IR_QERR_CRYPTO(alert), reason);
        return -1;
    }
    t->have_peer = 1;
    return 0;
}

static ssize_t no_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
    gnutls_transport_set_errno((gnutls_session_t)p, EAGAIN);
    return -1;
}

static ssize_t no_push(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
    gnutls_transport_set_errno((gnutls_session_t)p, EAGAIN);
    return -1;
}

int ir_tls_new(const ir_tls_config *cfg, const ir_tls_callbacks *cb, ir_tls **out)
{
    int x509 = cfg && cfg->identity && cfg->identity->x509;
    /* the name an X.509 client checks: printable ASCII only (GnuTLS's name check would
     * skip control characters, matching "local\rhost" to a certificate for localhost) */
    int name_ok = cfg && cfg->server_name && cfg->server_name[0];
    for (const char *p = name_ok ? cfg->server_name : ""; *p; p++)
        name_ok &= *p > 0x20 && *p < 0x7f;
    if (cfg && !cfg->is_server && x509 && !name_ok)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "TLS: bad server name");
    if (!cfg || !cfg->identity || !cfg->n_alpns ||
        (!cfg->is_server && !x509 && !cfg->expected_peer) ||
        (!cfg->is_server && x509 && (!cfg->server_name || cfg->identity->x509 != 2)) ||
        (cfg->is_server && x509 && cfg->identity->x509 != 1))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "TLS config needs an identity, ALPNs and "
                                                  "(client) the expected peer or name");
    ir_tls *t = calloc(1, sizeof *t);
    if (!t)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    t->cb = *cb;
    t->is_server = cfg->is_server;
    if (cfg->expected_peer) {
        t->expected = *cfg->expected_peer;
        t->have_expected = 1;
    }
    t->local_tp = malloc(cfg->local_tp_len ? cfg->local_tp_len : 1);
    t->alpn_list = calloc(cfg->n_alpns, sizeof *t->alpn_list);
    if (!t->local_tp || !t->alpn_list)
        goto oom;
    if (cfg->local_tp_len)
        memcpy(t->local_tp, cfg->local_tp, cfg->local_tp_len);
    t->local_tp_len = cfg->local_tp_len;
    t->n_alpns = cfg->n_alpns;
    for (size_t i = 0; i < cfg->n_alpns; i++) {
        t->alpn_list[i].data = (unsigned char *)cfg->alpns[i];
        t->alpn_list[i].size = (unsigned)cfg->alpn_lens[i];
    }

    unsigned flags = (cfg->is_server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                     (x509 ? 0 : GNUTLS_ENABLE_RAWPK) | GNUTLS_NO_END_OF_EARLY_DATA |
                     GNUTLS_NO_TICKETS | GNUTLS_NONBLOCK;
    int rc;
    const char *what = "gnutls_init";
    if ((rc = gnutls_init(&t->s, flags)) < 0)
        goto fail;
    gnutls_session_set_ptr(t->s, t);
    what = "priority";
    if ((rc = gnutls_priority_set_direct(t->s, x509 ? PRIORITY_X509 : PRIORITY, NULL)) < 0)
        goto fail;
    what = "credentials";
    if ((rc = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, cfg->identity->cred)) < 0)
        goto fail;
    if (x509) {
        /* the server asks no certificate; the client checks the chain and the name */
        if (!cfg->is_server) {
            gnutls_session_set_verify_cert(t->s, cfg->server_name, 0);
            unsigned char ip[16];
            int literal = inet_pton(AF_INET, cfg->server_name, ip) == 1 ||
                          inet_pton(AF_INET6, cfg->server_name, ip) == 1;
            what = "server name";
            if (!literal && (rc = gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, cfg->server_name,
                                                         strlen(cfg->server_name))) < 0)
                goto fail;
        }
    } else {
        if (cfg->is_server)
            gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
        gnutls_session_set_verify_function(t->s, verify_func);
    }
    what = "alpn";
    if ((rc = gnutls_alpn_set_protocols(t->s, t->alpn_list, (unsigned)t->n_alpns,
                                        GNUTLS_ALPN_MANDATORY |
                                            (cfg->is_server ? GNUTLS_ALPN_SERVER_PRECEDENCE : 0))) < 0)
        goto fail;
    what = "transport parameters extension";
    if ((rc = gnutls_session_ext_register(t->s, "quic_transport_parameters", QUIC_TP_EXT,
                                          GNUTLS_EXT_TLS, tp_recv, tp_send, NULL, NULL, NULL,
                                          GNUTLS_EXT_FLAG_TLS | GNUTLS_EXT_FLAG_CLIENT_HELLO |
                                              GNUTLS_EXT_FLAG_EE)) < 0)
        goto fail;
    if (!cfg->is_server && cfg->send_sni) {
        char name[64 + 14];
        ir_b32_encode(IR_B32_HEX, cfg->expected_peer->bytes, 32, name);
        strcat(name, ".iroh.invalid");
        what = "server name";
        if ((rc = gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, name, strlen(name))) < 0)
            goto fail;
    }
    gnutls_handshake_set_secret_function(t->s, secret_func);
    gnutls_handshake_set_read_function(t->s, read_func);
    gnutls_alert_set_read_function(t->s, alert_func);
    gnutls_transport_set_ptr(t->s, t->s);
    gnutls_transport_set_pull_function(t->s, no_pull);
    gnutls_transport_set_push_function(t->s, no_push);
    *out = t;
    return IROH_OK;
fail:
    ir_tls_free(t);
    return ir_fail(IROH_ERR_IO, "TLS setup (%s): %s", what, gnutls_strerror(rc));
oom:
    ir_tls_free(t);
    return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
}

void ir_tls_free(ir_tls *t)
{
    if (!t)
        return;
    if (t->s)
        gnutls_deinit(t->s);
    free(t->local_tp);
    free(t->alpn_list);
    free(t);
}

static int advance(ir_tls *t)
{
    if (t->complete)
        return 0;
    int rc = gnutls_handshake(t->s);
    if (rc == GNUTLS_E_SUCCESS) {
        t->complete = 1;
        return 0;
    }
    if (!gnutls_error_is_fatal(rc) && !t->failed)
        return 0;
    if (!t->failed) {
        int desc = gnutls_error_to_alert(rc, NULL);
        if (rc == GNUTLS_E_NO_APPLICATION_PROTOCOL)
            desc = GNUTLS_A_NO_APPLICATION_PROTOCOL;
        set_error(t, IR_QERR_CRYPTO(desc < 0 ? GNUTLS_A_HANDSHAKE_FAILURE : desc),
                  gnutls_strerror(rc));
    }
    return -1;
}

int ir_tls_start(ir_tls *t)
{
    if (t->is_server)
        return 0;
    return advance(t);
}

int ir_tls_feed(ir_tls *t, ir_level level, const uint8_t *data, size_t len)
{
    if (t->failed)
        return -1;
    if (len) {
        int rc = gnutls_handshake_write(t->s, gnutls_level(level), data, len);
        if (rc < 0) {
            set_error(t, IR_QERR_CRYPTO(GNUTLS_A_UNEXPECTED_MESSAGE), gnutls_strerror(rc));
            return -1;
        }
    }
    if (t->complete) /* post-handshake messages (NewSessionTicket) are consumed above */
        return 0;
    return advance(t);
}

int ir_tls_complete(const ir_tls *t)
{
    return t->complete;
}

uint64_t ir_tls_error(const ir_tls *t, const char **reason)
{
    if (reason)
        *reason = t->reason ? t->reason : "";
    return t->failed ? t->error : 0;
}

int ir_tls_peer_id(const ir_tls *t, iroh_endpoint_id *out)
{
    if (!t->have_peer)
        return -1;
    *out = t->peer;
    return 0;
}

const uint8_t *ir_tls_alpn(const ir_tls *t, size_t *len)
{
    gnutls_datum_t d;
    if (gnutls_alpn_get_selected_protocol(t->s, &d) < 0)
        return NULL;
    *len = d.size;
    return d.data;
}
