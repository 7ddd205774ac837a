#include "handshake.h"

#include <string.h>

#include "base/blake3.h"
#include "base/postcard.h"
#include "base/util.h"
#include "text.h"

#define KM_AUTH_BYTES (32 + 1 + 64 + 16)

void ir_relay_challenge_message(const uint8_t challenge[16], uint8_t msg[32])
{
    ir_blake3_derive_key(IR_RELAY_CHALLENGE_CONTEXT, challenge, 16, msg, 32);
}

void ir_relay_challenge_frame(const uint8_t challenge[16], ir_relay_frame *f)
{
    memset(f, 0, sizeof *f);
    f->type = IR_RELAY_FT_SERVER_CHALLENGE;
    memcpy(f->u.challenge, challenge, 16);
}

void ir_relay_client_auth_make(const iroh_secret_key *sk, const uint8_t challenge[16],
                               ir_relay_frame *f)
{
    uint8_t msg[32];
    memset(f, 0, sizeof *f);
    f->type = IR_RELAY_FT_CLIENT_AUTH;
    iroh_secret_key_public(sk, &f->u.client_auth.key);
    ir_relay_challenge_message(challenge, msg);
    iroh_secret_key_sign(sk, msg, sizeof msg, &f->u.client_auth.sig);
}

int ir_relay_client_auth_verify(const ir_relay_frame *f, const uint8_t challenge[16])
{
    if (f->type != IR_RELAY_FT_CLIENT_AUTH)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "not a ClientAuth frame");
    uint8_t msg[32];
    ir_relay_challenge_message(challenge, msg);
    return iroh_endpoint_id_verify(&f->u.client_auth.key, msg, sizeof msg, &f->u.client_auth.sig);
}

void ir_relay_deny_frame(const char *reason, ir_relay_frame *f)
{
    memset(f, 0, sizeof *f);
    f->type = IR_RELAY_FT_SERVER_DENIES_AUTH;
    f->u.text.text = reason ? reason : IR_RELAY_DENY_DEFAULT;
    f->u.text.len = strlen(f->u.text.text);
}

void ir_relay_km_auth_make(const iroh_secret_key *sk, const uint8_t material[32],
                           ir_relay_km_auth *out)
{
    iroh_secret_key_public(sk, &out->key);
    iroh_secret_key_sign(sk, material, 16, &out->sig);
    memcpy(out->suffix, material + 16, 16);
}

int ir_relay_km_auth_encode(const ir_relay_km_auth *a, char *out, size_t cap)
{
    uint8_t raw[KM_AUTH_BYTES];
    if (cap < IR_RELAY_KM_AUTH_TEXT_LEN + 1)
        return ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "client auth header needs %d bytes",
                       IR_RELAY_KM_AUTH_TEXT_LEN + 1);
    memcpy(raw, a->key.bytes, 32);
    raw[32] = 64;
    memcpy(raw + 33, a->sig.bytes, 64);
    memcpy(raw + 97, a->suffix, 16);
    ir_b64_encode(IR_B64_URL, raw, sizeof raw, out);
    return IROH_OK;
}

int ir_relay_km_auth_decode(const char *text, size_t len, ir_relay_km_auth *out)
{
    /* postcard ignores trailing bytes, so longer texts may decode too; the request head
     * limit (IR_HTTP_MAX_HEAD) bounds what can arrive */
    uint8_t raw[16384];
    long n = ir_b64_decode(IR_B64_URL, text, len, raw, sizeof raw);
    if (n < 0)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "client auth header is not base64url");
    ir_pc_reader r;
    const uint8_t *p;
    uint64_t v;
    ir_pc_reader_init(&r, raw, (size_t)n);
    if (ir_pc_get_raw(&r, 32, &p) < 0)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "client auth header: %s", r.why);
    int rc = iroh_endpoint_id_from_bytes(p, &out->key);
    if (rc != IROH_OK)
        return ir_fail(rc, "client auth header: invalid public key");
    if (ir_pc_get_varint(&r, UINT64_MAX, &v) < 0)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "client auth header: %s", r.why);
    if (v != 64)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "client auth header: signature length is not 64");
    if (ir_pc_get_raw(&r, 64, &p) < 0)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "client auth header: %s", r.why);
    memcpy(out->sig.bytes, p, 64);
    if (ir_pc_get_raw(&r, 16, &p) < 0)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "client auth header: %s", r.why);
    memcpy(out->suffix, p, 16);
    return IROH_OK;
}

int ir_relay_km_auth_verify(const ir_relay_km_auth *a, const uint8_t material[32])
{
    if (memcmp(a->suffix, material + 16, 16) != 0)
        return ir_fail(IROH_ERR_HANDSHAKE, "keying material suffix mismatch");
    return iroh_endpoint_id_verify(&a->key, material, 16, &a->sig);
}
