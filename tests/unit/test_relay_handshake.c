/* The relay handshake: spec relay.md section 7 (challenge derivation, ClientAuth, deny,
 * the keying-material header, the BLAKE3 check), verification rules, and the base64 /
 * UTF-8 helpers it uses. */
#include "base/blake3.h"
#include "base/key.h"
#include "relay/handshake.h"
#include "relay/text.h"
#include "test.h"

#define PK_HEX "197f6b23e16c8532c6abc838facd5ea789be0c76b2920334039bfa8b3d368d61"
#define SIG_HEX                                                                            \
    "a28b5ebc6a930b5d80ad5aca2a8e48ad4a064e699c0866674c8b8e61a5f4ea94"                     \
    "0ee8b9f06732930250ac0735555abe77e8df740165edc3163be432f0e4f3cf0f"
#define HEADER_VECTOR                                                                      \
    "GX9rI-FshTLGq8g4-s1ep4m-DHaykgM0A5v6iz02jWFAQb98VXtFUshaBKOJKabtiBrsmgnPjpFdRpJqAzcy9jOAPc-" \
    "kOvzLgXjeT9vCG8qx2yO7aDoF4n5vbE4kJbh2CBAREhMUFRYXGBkaGxwdHh8"

static iroh_secret_key sk42;
static uint8_t challenge[16], material[32];

static void setup(void)
{
    memset(sk42.bytes, 42, 32);
    for (int i = 0; i < 16; i++)
        challenge[i] = (uint8_t)i;
    for (int i = 0; i < 32; i++)
        material[i] = (uint8_t)i;
}

TEST(blake3_check_vector)
{
    uint8_t out[32], want[32];
    ir_blake3_derive_key("BLAKE3 2019-12-27 16:29:52 test vectors context", "", 0, out, 32);
    t_unhex("2cc39783c223154fea8dfb7c1b1660f2ac2dcbd1c1de8277b0b0dd39b7e50d7d", want, 32);
    CHECK_MEM(out, want, 32);
}

TEST(challenge_message_vector)
{
    uint8_t msg[32], want[32];
    ir_relay_challenge_message(challenge, msg);
    t_unhex("b7b16e505d2cb5dbaf494800092c3b05a6c45d8d3fd4f1b888c6a77240b876c0", want, 32);
    CHECK_MEM(msg, want, 32);
}

TEST(server_challenge_frame_vector)
{
    ir_relay_frame f;
    uint8_t out[32], want[32];
    size_t w;
    ir_relay_challenge_frame(challenge, &f);
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_OK);
    int n = t_unhex("00000102030405060708090a0b0c0d0e0f", want, sizeof want);
    CHECK_EQ_INT(w, n);
    CHECK_MEM(out, want, (size_t)n);
}

TEST(client_auth_vector)
{
    ir_relay_frame f;
    uint8_t out[128], want[128];
    size_t w;
    ir_relay_client_auth_make(&sk42, challenge, &f);
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_OK);
    int n = t_unhex("01" PK_HEX "40" SIG_HEX, want, sizeof want);
    CHECK_EQ_INT(n, 98);
    CHECK_EQ_INT(w, 98);
    CHECK_MEM(out, want, 98);

    /* the server side: decode and verify */
    ir_relay_frame d;
    CHECK_EQ_INT(ir_relay_frame_decode(want, 98, IR_RELAY_HS_FROM_CLIENT, NULL, &d), IROH_OK);
    CHECK_EQ_INT(ir_relay_client_auth_verify(&d, challenge), IROH_OK);
    /* another challenge */
    uint8_t other[16];
    memcpy(other, challenge, 16);
    other[0] ^= 1;
    CHECK_EQ_INT(ir_relay_client_auth_verify(&d, other), IROH_ERR_INVALID_SIGNATURE);
    /* flipped signature bits: every byte */
    for (int i = 0; i < 64; i++) {
        ir_relay_frame t = d;
        t.u.client_auth.sig.bytes[i] ^= 0x01;
        CHECK(ir_relay_client_auth_verify(&t, challenge) == IROH_ERR_INVALID_SIGNATURE);
    }
    /* another (valid) key */
    iroh_secret_key sk2;
    memset(sk2.bytes, 7, 32);
    ir_relay_frame t = d;
    iroh_secret_key_public(&sk2, &t.u.client_auth.key);
    CHECK_EQ_INT(ir_relay_client_auth_verify(&t, challenge), IROH_ERR_INVALID_SIGNATURE);
    /* strictness: S + L (non-canonical scalar) is refused */
    static const uint8_t L[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                  0xa2, 0xde, 0xf9, 0xde, 0x14, 0,    0,    0,    0,    0,    0,
                                  0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};
    t = d;
    unsigned carry = 0;
    for (int i = 0; i < 32; i++) {
        unsigned s = t.u.client_auth.sig.bytes[32 + i] + L[i] + carry;
        t.u.client_auth.sig.bytes[32 + i] = (uint8_t)s;
        carry = s >> 8;
    }
    CHECK_EQ_INT(ir_relay_client_auth_verify(&t, challenge), IROH_ERR_INVALID_SIGNATURE);
    /* a small-order key (the identity point, y = 1) is refused */
    t = d;
    memset(t.u.client_auth.key.bytes, 0, 32);
    t.u.client_auth.key.bytes[0] = 1;
    CHECK_EQ_INT(ir_relay_client_auth_verify(&t, challenge), IROH_ERR_INVALID_SIGNATURE);
    /* not a ClientAuth frame */
    t.type = IR_RELAY_FT_PING;
    CHECK_EQ_INT(ir_relay_client_auth_verify(&t, challenge), IROH_ERR_INVALID_ARGUMENT);
}

TEST(random_keys_roundtrip)
{
    for (int i = 0; i < 8; i++) {
        iroh_secret_key sk;
        CHECK_EQ_INT(iroh_secret_key_generate(&sk), IROH_OK);
        uint8_t ch[16];
        for (int k = 0; k < 16; k++)
            ch[k] = (uint8_t)(i * 31 + k * 7);
        ir_relay_frame f, d;
        uint8_t out[128];
        size_t w;
        ir_relay_client_auth_make(&sk, ch, &f);
        CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_OK);
        CHECK_EQ_INT(ir_relay_frame_decode(out, w, IR_RELAY_HS_FROM_CLIENT, NULL, &d), IROH_OK);
        CHECK_EQ_INT(ir_relay_client_auth_verify(&d, ch), IROH_OK);

        uint8_t km[32];
        for (int k = 0; k < 32; k++)
            km[k] = (uint8_t)(i + k * 13);
        ir_relay_km_auth a, b;
        char text[IR_RELAY_KM_AUTH_TEXT_LEN + 1];
        ir_relay_km_auth_make(&sk, km, &a);
        CHECK_EQ_INT(ir_relay_km_auth_encode(&a, text, sizeof text), IROH_OK);
        CHECK_EQ_INT(strlen(text), IR_RELAY_KM_AUTH_TEXT_LEN);
        CHECK_EQ_INT(ir_relay_km_auth_decode(text, strlen(text), &b), IROH_OK);
        CHECK_EQ_INT(ir_relay_km_auth_verify(&b, km), IROH_OK);
    }
}

TEST(deny_frames)
{
    ir_relay_frame f;
    uint8_t out[64], want[64];
    size_t w;
    ir_relay_deny_frame(IR_RELAY_DENY_SIGNATURE, &f);
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_OK);
    int n = t_unhex("03 11 7369676e617475726520696e76616c6964", want, sizeof want);
    CHECK_EQ_INT(w, n);
    CHECK_MEM(out, want, (size_t)n);
    ir_relay_deny_frame(NULL, &f);
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_OK);
    n = t_unhex("03 0e 6e6f7420617574686f72697a6564", want, sizeof want);
    CHECK_EQ_INT(w, n);
    CHECK_MEM(out, want, (size_t)n);
    /* the client reads the reason */
    ir_relay_frame d;
    CHECK_EQ_INT(ir_relay_frame_decode(want, (size_t)n, IR_RELAY_HS_FROM_SERVER, NULL, &d), IROH_OK);
    CHECK_EQ_INT(d.type, IR_RELAY_FT_SERVER_DENIES_AUTH);
    CHECK_EQ_INT(d.u.text.len, 14);
    CHECK_MEM(d.u.text.text, "not authorized", 14);
}

TEST(keying_material_header_vector)
{
    ir_relay_km_auth a, b;
    char text[IR_RELAY_KM_AUTH_TEXT_LEN + 1];
    ir_relay_km_auth_make(&sk42, material, &a);
    CHECK_EQ_INT(ir_relay_km_auth_encode(&a, text, sizeof text), IROH_OK);
    CHECK_STR(text, HEADER_VECTOR);
    CHECK_EQ_INT(strlen(HEADER_VECTOR), 151);
    CHECK_EQ_INT(ir_relay_km_auth_encode(&a, text, 151), IROH_ERR_BUFFER_TOO_SMALL);

    CHECK_EQ_INT(ir_relay_km_auth_decode(HEADER_VECTOR, 151, &b), IROH_OK);
    uint8_t want[64];
    t_unhex(PK_HEX, want, 32);
    CHECK_MEM(b.key.bytes, want, 32);
    for (int i = 0; i < 16; i++)
        CHECK_EQ_INT(b.suffix[i], 16 + i);
    CHECK_EQ_INT(ir_relay_km_auth_verify(&b, material), IROH_OK);
    /* the signature is over the first 16 bytes, unhashed */
    CHECK_EQ_INT(iroh_endpoint_id_verify(&b.key, material, 16, &b.sig), IROH_OK);

    /* other material: suffix mismatch -> fall back */
    uint8_t m2[32];
    memcpy(m2, material, 32);
    m2[31] ^= 1;
    CHECK_EQ_INT(ir_relay_km_auth_verify(&b, m2), IROH_ERR_HANDSHAKE);
    /* same suffix, other prefix: bad signature -> fall back */
    memcpy(m2, material, 32);
    m2[0] ^= 1;
    CHECK_EQ_INT(ir_relay_km_auth_verify(&b, m2), IROH_ERR_INVALID_SIGNATURE);
}

static int km_decode_raw(const uint8_t *raw, size_t n)
{
    char text[1024];
    ir_relay_km_auth a;
    ir_b64_encode(IR_B64_URL, raw, n, text);
    return ir_relay_km_auth_decode(text, strlen(text), &a);
}

TEST(keying_material_header_decoding)
{
    ir_relay_km_auth a;
    uint8_t raw[200];
    long n = ir_b64_decode(IR_B64_URL, HEADER_VECTOR, 151, raw, sizeof raw);
    CHECK_EQ_INT(n, 113);
    CHECK_EQ_INT(km_decode_raw(raw, 113), IROH_OK);
    /* every truncation of the bytes fails */
    for (size_t k = 0; k < 113; k++)
        CHECK(km_decode_raw(raw, k) < 0);
    /* every truncation of the text fails */
    for (size_t k = 0; k < 151; k++)
        CHECK(ir_relay_km_auth_decode(HEADER_VECTOR, k, &a) < 0);
    /* trailing bytes are ignored (postcard::from_bytes) */
    raw[113] = 0xff;
    raw[114] = 0x00;
    CHECK_EQ_INT(km_decode_raw(raw, 115), IROH_OK);
    /* the signature length must be 64 (a non-minimal 64 is fine) */
    uint8_t alt[200];
    memcpy(alt, raw, 33);
    alt[32] = 0xc0;
    alt[33] = 0x00;
    memcpy(alt + 34, raw + 33, 80);
    CHECK_EQ_INT(km_decode_raw(alt, 114), IROH_OK);
    raw[32] = 63;
    CHECK_EQ_INT(km_decode_raw(raw, 113), IROH_ERR_INVALID_ARGUMENT);
    raw[32] = 64;
    /* not a curve point */
    uint8_t bad[113];
    memcpy(bad, raw, 113);
    memset(bad, 0, 32);
    for (int i = 2; i < 256; i++) {
        bad[0] = (uint8_t)i;
        if (!ir_ed25519_point_valid(bad))
            break;
    }
    CHECK_EQ_INT(km_decode_raw(bad, 113), IROH_ERR_INVALID_KEY);
    /* not base64url-nopad: padding, standard alphabet, whitespace, bad trailing bits */
    char text[300];
    snprintf(text, sizeof text, "%s=", HEADER_VECTOR);
    CHECK_EQ_INT(ir_relay_km_auth_decode(text, strlen(text), &a), IROH_ERR_INVALID_ARGUMENT);
    snprintf(text, sizeof text, "%s", HEADER_VECTOR);
    text[4] = '+'; /* was '-' */
    CHECK_EQ_INT(ir_relay_km_auth_decode(text, strlen(text), &a), IROH_ERR_INVALID_ARGUMENT);
    snprintf(text, sizeof text, " %s", HEADER_VECTOR);
    CHECK_EQ_INT(ir_relay_km_auth_decode(text, strlen(text), &a), IROH_ERR_INVALID_ARGUMENT);
    snprintf(text, sizeof text, "%s", HEADER_VECTOR);
    CHECK(text[150] == '8');
    text[150] = '9'; /* 151 % 4 == 3: the last symbol carries 2 unused bits */
    CHECK_EQ_INT(ir_relay_km_auth_decode(text, strlen(text), &a), IROH_ERR_INVALID_ARGUMENT);
}

TEST(base64)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    static const char *const url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[16];
        uint8_t back[16];
        size_t n = strlen(plain[i]);
        ir_b64_encode(IR_B64_STD, (const uint8_t *)plain[i], n, out);
        CHECK_STR(out, std[i]);
        CHECK_EQ_INT(ir_b64_encoded_len(IR_B64_STD, n), strlen(std[i]));
        CHECK_EQ_INT(ir_b64_decode(IR_B64_STD, std[i], strlen(std[i]), back, sizeof back), n);
        CHECK_MEM(back, plain[i], n);
        ir_b64_encode(IR_B64_URL, (const uint8_t *)plain[i], n, out);
        CHECK_STR(out, url[i]);
        CHECK_EQ_INT(ir_b64_encoded_len(IR_B64_URL, n), strlen(url[i]));
        CHECK_EQ_INT(ir_b64_decode(IR_B64_URL, url[i], strlen(url[i]), back, sizeof back), n);
        CHECK_MEM(back, plain[i], n);
        /* the padded form is not URL-nopad and the unpadded one is not standard */
        if (strcmp(std[i], url[i]) != 0) {
            CHECK_EQ_INT(ir_b64_decode(IR_B64_URL, std[i], strlen(std[i]), back, sizeof back), -1);
            CHECK_EQ_INT(ir_b64_decode(IR_B64_STD, url[i], strlen(url[i]), back, sizeof back), -1);
        }
    }
    uint8_t all[3] = {0xfb, 0xff, 0xbf};
    char out[8];
    uint8_t back[8];
    ir_b64_encode(IR_B64_STD, all, 3, out);
    CHECK_STR(out, "+/+/");
    ir_b64_encode(IR_B64_URL, all, 3, out);
    CHECK_STR(out, "-_-_");
    /* strictness */
    CHECK_EQ_INT(ir_b64_decode(IR_B64_STD, "Zh==", 4, back, 8), -1); /* trailing bits */
    CHECK_EQ_INT(ir_b64_decode(IR_B64_STD, "Zm9=", 4, back, 8), -1);
    CHECK_EQ_INT(ir_b64_decode(IR_B64_STD, "Z===", 4, back, 8), -1);
    CHECK_EQ_INT(ir_b64_decode(IR_B64_STD, "Zg=", 3, back, 8), -1);
    CHECK_EQ_INT(ir_b64_decode(IR_B64_STD, "Z=g=", 4, back, 8), -1);
    CHECK_EQ_INT(ir_b64_decode(IR_B64_STD, "Zm9v\n", 5, back, 8), -1);
    CHECK_EQ_INT(ir_b64_decode(IR_B64_URL, "Z", 1, back, 8), -1);
    CHECK_EQ_INT(ir_b64_decode(IR_B64_URL, "Zh", 2, back, 8), -1);
    CHECK_EQ_INT(ir_b64_decode(IR_B64_URL, "Zm9vYmFy", 8, back, 5), -1); /* outcap */
}

TEST(utf8)
{
    static const char *const good[] = {"", "abc", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                       "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf"};
    static const char *const bad[] = {"\x80", "\xc0\x80", "\xc1\xbf", "\xc3", "\xe0\x80\x80",
                                      "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf",
                                      "\xf0\x80\x80\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
                                      "\xff", "\xe2\x82", "\xe2\x28\xac", "a\xf0\x9f\x98"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        CHECK(ir_utf8_valid((const uint8_t *)good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(!ir_utf8_valid((const uint8_t *)bad[i], strlen(bad[i])));
}

int main(void)
{
    setup();
    RUN(blake3_check_vector);
    RUN(challenge_message_vector);
    RUN(server_challenge_frame_vector);
    RUN(client_auth_vector);
    RUN(random_keys_roundtrip);
    RUN(deny_frames);
    RUN(keying_material_header_vector);
    RUN(keying_material_header_decoding);
    RUN(base64);
    RUN(utf8);
    TEST_EXIT();
}
