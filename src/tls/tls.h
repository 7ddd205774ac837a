/* The TLS 1.3 handshake of an iroh QUIC connection, through GnuTLS's QUIC hooks
 * (spec quic-tls.md section 1): raw Ed25519 public keys both ways (RFC 7250), client
 * authentication required, mandatory ALPN, the transport-parameters extension 0x39.
 * Sans-IO: handshake bytes come in with ir_tls_feed and leave through callbacks. */
#ifndef IR_TLS_TLS_H
#define IR_TLS_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "iroh.h"

typedef enum ir_level {
    IR_LEVEL_INITIAL = 0,
    IR_LEVEL_EARLY = 1,
    IR_LEVEL_HANDSHAKE = 2,
    IR_LEVEL_APP = 3,
} ir_level;

/* An endpoint's TLS identity: its key as a raw-public-key credential. Shared by all
 * connections of the endpoint; immutable after creation, so usable from any thread. */
typedef struct ir_tls_identity ir_tls_identity;
int ir_tls_identity_new(const iroh_secret_key *key, ir_tls_identity **out);
/* X.509 instead of raw public keys, for QUIC address discovery with a relay (spec
 * relay.md 4.3: the relay's own certificate, no client certificate). Server: a PEM
 * certificate chain and its key. Client: the certificates to trust (a PEM file, or NULL
 * for the system store); the server's name is checked (ir_tls_config.server_name).
 * IROH_ERR_INVALID_ARGUMENT for files that cannot be read. */
int ir_tls_identity_new_x509_server(const char *cert_file, const char *key_file,
                                    ir_tls_identity **out);
int ir_tls_identity_new_x509_client(const char *ca_file, ir_tls_identity **out);
int ir_tls_identity_is_x509(const ir_tls_identity *id);
void ir_tls_identity_free(ir_tls_identity *id);

typedef struct ir_tls_callbacks {
    void *ctx;
    /* New traffic secrets for a level (either may be NULL while that direction has none);
     * suite is the TLS 1.3 cipher suite (0x1301, 0x1302, 0x1303). Return 0 or -1. */
    int (*on_secret)(void *ctx, ir_level level, uint16_t suite, const uint8_t *rx,
                     const uint8_t *tx, size_t len);
    /* Handshake bytes to send in CRYPTO frames at a level. Return 0 or -1. */
    int (*on_crypto)(void *ctx, ir_level level, const uint8_t *data, size_t len);
    /* The peer's quic_transport_parameters extension body. Return 0, or a QUIC error code
     * (e.g. 0x08 TRANSPORT_PARAMETER_ERROR) to abort the handshake. */
    uint64_t (*on_peer_tp)(void *ctx, const uint8_t *data, size_t len);
} ir_tls_callbacks;

typedef struct ir_tls_config {
    const ir_tls_identity *identity;
    int is_server;
    /* Client: ALPNs offered, in order of preference. Server: ALPNs accepted, in order of
     * preference (the server's order decides). */
    const uint8_t *const *alpns;
    const size_t *alpn_lens;
    size_t n_alpns;
    /* Client: the EndpointId dialed; the server's key must be exactly this one. */
    const iroh_endpoint_id *expected_peer;
    /* Client: send SNI <base32hex(id)>.iroh.invalid as iroh 1.0.2 does (default: none). */
    int send_sni;
    /* X.509 client: the name (DNS name or IP literal) the server's certificate must carry;
     * sent as SNI when it is a DNS name. Printable ASCII only (else ir_tls_new fails). */
    const char *server_name;
    /* Our encoded transport parameters. */
    const uint8_t *local_tp;
    size_t local_tp_len;
} ir_tls_config;

typedef struct ir_tls ir_tls;

int ir_tls_new(const ir_tls_config *cfg, const ir_tls_callbacks *cb, ir_tls **out);
void ir_tls_free(ir_tls *t);

/* Client: produce the ClientHello (through on_crypto). Returns 0 or -1 (see ir_tls_error). */
int ir_tls_start(ir_tls *t);

/* Feeds handshake bytes received in order at a level and advances the handshake.
 * Returns 0 (more needed or done: see ir_tls_complete) or -1 on failure. */
int ir_tls_feed(ir_tls *t, ir_level level, const uint8_t *data, size_t len);

int ir_tls_complete(const ir_tls *t);
/* After a failure: the QUIC error code to close with (0x100 + TLS alert, or the code the
 * on_peer_tp callback returned) and a static reason text. */
uint64_t ir_tls_error(const ir_tls *t, const char **reason);
/* The peer's EndpointId (from its raw public key), once verified; -1 in X.509 mode. */
int ir_tls_peer_id(const ir_tls *t, iroh_endpoint_id *out);
/* The negotiated ALPN (NULL before it is known). */
const uint8_t *ir_tls_alpn(const ir_tls *t, size_t *len);

/* The 44-byte DER SubjectPublicKeyInfo of an Ed25519 key (spec quic-tls.md 1.4). */
#define IR_SPKI_LEN 44
void ir_ed25519_spki(const uint8_t key[32], uint8_t out[IR_SPKI_LEN]);

/* The check of a peer's raw public key during the handshake (spec quic-tls.md 6): one
 * 44-byte Ed25519 SPKI whose key is a valid point not of small order and, when expected
 * is not NULL, the EndpointId that was dialed. 0 and the key in *out, or the TLS alert to
 * send (bad_certificate, unknown_ca) and a static reason. */
int ir_tls_check_peer_spki(const uint8_t *spki, size_t len, const iroh_endpoint_id *expected,
                           iroh_endpoint_id *out, const char **reason);

#endif
