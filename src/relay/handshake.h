/* The relay handshake (iroh-relay protos/handshake.rs, spec relay.md section 2): the
 * challenge signature, ClientAuth, ServerDeniesAuth, and the TLS keying-material header
 * x-iroh-relay-client-auth-v1. Pure functions: no I/O, no randomness (the caller brings
 * the 16 challenge bytes and the exported keying material).
 *
 * Server, challenge path:                      Client:
 *   challenge <- 16 random bytes
 *   ir_relay_challenge_frame -> send             decode (IR_RELAY_HS_FROM_SERVER)
 *                                                ir_relay_client_auth_make -> encode, send
 *   decode (IR_RELAY_HS_FROM_CLIENT)
 *     (error: close without a deny frame)
 *   ir_relay_client_auth_verify
 *     (error: send ir_relay_deny_frame("signature invalid"), close)
 *   access control: ServerConfirmsAuth, or ir_relay_deny_frame(reason or NULL)
 *
 * Keying-material path (TLS only): the client exports 32 bytes with label
 * IR_RELAY_EXPORT_LABEL and its public key as context (gnutls_prf_rfc5705), and sends
 * ir_relay_km_auth_encode's text in the IR_RELAY_CLIENT_AUTH_HEADER header. The server
 * decodes it (failure: drop the connection), exports the material with the decoded key as
 * context and calls ir_relay_km_auth_verify (failure: fall back to the challenge). */
#ifndef IR_RELAY_HANDSHAKE_H
#define IR_RELAY_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "iroh.h"

#define IR_RELAY_CHALLENGE_CONTEXT "iroh-relay handshake v1 challenge signature"
#define IR_RELAY_EXPORT_LABEL "iroh-relay handshake v1"
#define IR_RELAY_EXPORT_LABEL_LEN 23
#define IR_RELAY_EXPORT_LEN 32
#define IR_RELAY_CLIENT_AUTH_HEADER "x-iroh-relay-client-auth-v1"
/* base64url-nopad of the 113-byte postcard body */
#define IR_RELAY_KM_AUTH_TEXT_LEN 151
#define IR_RELAY_DENY_DEFAULT "not authorized"
#define IR_RELAY_DENY_SIGNATURE "signature invalid"

/* msg = BLAKE3 derive_key(IR_RELAY_CHALLENGE_CONTEXT, challenge): what the client signs. */
void ir_relay_challenge_message(const uint8_t challenge[16], uint8_t msg[32]);

/* A ServerChallenge frame for the given challenge bytes. */
void ir_relay_challenge_frame(const uint8_t challenge[16], ir_relay_frame *f);

/* A ClientAuth frame: the key's public half and its signature of the challenge message. */
void ir_relay_client_auth_make(const iroh_secret_key *sk, const uint8_t challenge[16],
                               ir_relay_frame *f);

/* Verifies a decoded ClientAuth frame against the challenge that was sent, strictly
 * (verify_strict). IROH_OK, IROH_ERR_INVALID_SIGNATURE, or IROH_ERR_INVALID_ARGUMENT if f
 * is not a ClientAuth frame. */
int ir_relay_client_auth_verify(const ir_relay_frame *f, const uint8_t challenge[16]);

/* A ServerDeniesAuth frame; reason NULL means IR_RELAY_DENY_DEFAULT. The frame points at
 * reason, which must stay alive until it is encoded. */
void ir_relay_deny_frame(const char *reason, ir_relay_frame *f);

/* The keying-material authentication (KeyMaterialClientAuth). */
typedef struct ir_relay_km_auth {
    iroh_endpoint_id key;
    iroh_signature sig; /* over the first 16 bytes of the exported material */
    uint8_t suffix[16]; /* the last 16 bytes of the exported material */
} ir_relay_km_auth;

void ir_relay_km_auth_make(const iroh_secret_key *sk, const uint8_t material[32],
                           ir_relay_km_auth *out);
/* The header value: base64url without padding of key[32] 0x40 sig[64] suffix[16];
 * writes IR_RELAY_KM_AUTH_TEXT_LEN characters and a NUL (cap >= 152). */
int ir_relay_km_auth_encode(const ir_relay_km_auth *a, char *out, size_t cap);
/* Decodes a header value as upstream does (base64url-nopad, then postcard: a valid curve
 * point, a signature length varint of 64, trailing bytes ignored). IROH_ERR_INVALID_KEY for
 * a key that is not a point, IROH_ERR_INVALID_ARGUMENT otherwise. */
int ir_relay_km_auth_decode(const char *text, size_t len, ir_relay_km_auth *out);
/* Checks a decoded header against the server's own export for a->key: the suffix must
 * match (IROH_ERR_HANDSHAKE otherwise) and the signature verify strictly
 * (IROH_ERR_INVALID_SIGNATURE). */
int ir_relay_km_auth_verify(const ir_relay_km_auth *a, const uint8_t material[32]);

#endif
