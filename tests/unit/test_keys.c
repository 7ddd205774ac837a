/* Keys, EndpointIds and signatures: spec identity-tickets-discovery.md sections 1 and 7.1. */
#include "base/encoding.h"
#include "base/key.h"
#include "iroh.h"
#include "test.h"

#include <sys/stat.h>
#include <unistd.h>

static iroh_secret_key secret_from_hex(const char *hex)
{
    iroh_secret_key k;
    memset(&k, 0, sizeof k);
    CHECK_EQ_INT(iroh_secret_key_parse(hex, &k), IROH_OK);
    return k;
}

static void check_forms(const char *secret_hex, const char *id_hex, const char *short_hex,
                        const char *b32, const char *z32)
{
    iroh_secret_key sk = secret_from_hex(secret_hex);
    iroh_endpoint_id id;
    char buf[128];
    iroh_secret_key_public(&sk, &id);
    CHECK_EQ_INT(iroh_endpoint_id_to_hex(&id, buf, sizeof buf), IROH_OK);
    CHECK_STR(buf, id_hex);
    if (short_hex) {
        CHECK_EQ_INT(iroh_endpoint_id_fmt_short(&id, buf, sizeof buf), IROH_OK);
        CHECK_STR(buf, short_hex);
    }
    if (b32) {
        CHECK_EQ_INT(iroh_endpoint_id_to_base32(&id, buf, sizeof buf), IROH_OK);
        CHECK_STR(buf, b32);
        iroh_endpoint_id back;
        CHECK_EQ_INT(iroh_endpoint_id_parse(b32, &back), IROH_OK);
        CHECK(iroh_endpoint_id_equal(&back, &id));
    }
    if (z32) {
        CHECK_EQ_INT(iroh_endpoint_id_to_z32(&id, buf, sizeof buf), IROH_OK);
        CHECK_STR(buf, z32);
    }
    CHECK_EQ_INT(iroh_secret_key_to_hex(&sk, buf, sizeof buf), IROH_OK);
    CHECK_STR(buf, secret_hex);
}

TEST(spec_key_vectors)
{
    check_forms("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8", "03a107bff3",
                "aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4a",
                "yqooxx9u3aemh8mo5wcqq16yufu6jitouq1o4za751dger1igghy");
    check_forms("0000000000000000000000000000000000000000000000000000000000000000",
                "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29", NULL,
                "hnvcppgow2sc2yvdvdicu3ynonsteflxdxrehjr2ybekdc2z3iuq",
                "8pinxxgqs41n4aididenw5apqp1urfmzdztr8jt4abrkdn435ewo");
    check_forms("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", NULL, NULL,
                NULL);
    /* z32 of a bare id (iroh-dns endpoint_info.rs test) */
    iroh_endpoint_id id;
    char buf[64];
    CHECK_EQ_INT(iroh_endpoint_id_parse(
                     "1992d53c02cdc04566e5c0edb1ce83305cd550297953a047a445ea3264b54b18", &id),
                 IROH_OK);
    iroh_endpoint_id_to_z32(&id, buf, sizeof buf);
    CHECK_STR(buf, "dgjpkxyn3zyrk3zfads5duwdgbqpkwbjxfj4yt7rezidr3fijccy");
}

TEST(tls_name_base32hex)
{
    /* the TLS server name form: <base32hex>.iroh.invalid, for the all-zero secret */
    iroh_secret_key sk = secret_from_hex(
        "0000000000000000000000000000000000000000000000000000000000000000");
    iroh_endpoint_id id;
    char buf[64];
    iroh_secret_key_public(&sk, &id);
    ir_b32_encode(IR_B32_HEX, id.bytes, 32, buf);
    CHECK_STR(buf, "7dl2ff6emqi2qol3l382krodedij45bn3nh479hqo14a32qpr8kg");
}

static void check_sig(const char *secret_hex, const char *msg, const char *sig_hex)
{
    iroh_secret_key sk = secret_from_hex(secret_hex);
    iroh_signature sig, want;
    iroh_endpoint_id id;
    CHECK_EQ_INT(t_unhex(sig_hex, want.bytes, 64), 64);
    iroh_secret_key_sign(&sk, msg, strlen(msg), &sig);
    CHECK_MEM(sig.bytes, want.bytes, 64);
    iroh_secret_key_public(&sk, &id);
    CHECK_EQ_INT(iroh_endpoint_id_verify(&id, msg, strlen(msg), &sig), IROH_OK);
    /* any flipped bit in message or signature fails */
    sig.bytes[5] ^= 1;
    CHECK_EQ_INT(iroh_endpoint_id_verify(&id, msg, strlen(msg), &sig), IROH_ERR_INVALID_SIGNATURE);
    sig.bytes[5] ^= 1;
    sig.bytes[40] ^= 0x10;
    CHECK_EQ_INT(iroh_endpoint_id_verify(&id, msg, strlen(msg), &sig), IROH_ERR_INVALID_SIGNATURE);
    sig.bytes[40] ^= 0x10;
    CHECK_EQ_INT(iroh_endpoint_id_verify(&id, "x", 1, &sig), IROH_ERR_INVALID_SIGNATURE);
}

TEST(signatures)
{
    check_sig("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "hello iroh",
              "0d6841696055415c124b35ea9b90564bce157f9f73024b59107f161c817d7453"
              "9694930fb3d28d9ec5d06bbf316173df5441b09d3c77133f67111b0bed8ab800");
    check_sig("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "",
              "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61"
              "e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
}

/* little-endian add of the group order L to S: a valid signature made malleable */
static void add_l(uint8_t s[32])
{
    static const uint8_t L[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
                                  0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                                  [31] = 0x10};
    unsigned carry = 0;
    for (int i = 0; i < 32; i++) {
        unsigned v = s[i] + L[i] + carry;
        s[i] = (uint8_t)v;
        carry = v >> 8;
    }
}

TEST(strict_verification)
{
    iroh_secret_key sk = secret_from_hex(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    iroh_endpoint_id id;
    iroh_signature sig;
    iroh_secret_key_public(&sk, &id);
    iroh_secret_key_sign(&sk, "m", 1, &sig);
    CHECK_EQ_INT(iroh_endpoint_id_verify(&id, "m", 1, &sig), IROH_OK);
    /* S + L: same equation, non-canonical scalar, rejected */
    iroh_signature mall = sig;
    add_l(mall.bytes + 32);
    CHECK_EQ_INT(iroh_endpoint_id_verify(&id, "m", 1, &mall), IROH_ERR_INVALID_SIGNATURE);

    /* weak keys: the identity point (01 00..) and the all-zero encoding are valid EndpointIds
     * but every signature under them is refused */
    uint8_t ident[32] = {1}, zero[32] = {0};
    iroh_endpoint_id weak;
    CHECK_EQ_INT(iroh_endpoint_id_from_bytes(ident, &weak), IROH_OK);
    CHECK(ir_ed25519_small_order(ident));
    /* signature R = identity, S = 0 verifies for the identity key under plain Ed25519 */
    iroh_signature trivial;
    memset(&trivial, 0, sizeof trivial);
    trivial.bytes[0] = 1;
    CHECK_EQ_INT(iroh_endpoint_id_verify(&weak, "m", 1, &trivial), IROH_ERR_INVALID_SIGNATURE);
    CHECK_EQ_INT(iroh_endpoint_id_from_bytes(zero, &weak), IROH_OK);
    CHECK(ir_ed25519_small_order(zero));
    CHECK(!ir_ed25519_small_order(id.bytes));
}

TEST(small_order_points)
{
    /* the eight torsion points' encodings (and the non-canonical y = p, p + 1 forms) */
    static const char *small[] = {
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    };
    for (size_t i = 0; i < sizeof small / sizeof *small; i++) {
        uint8_t b[32];
        t_unhex(small[i], b, 32);
        CHECK(ir_ed25519_point_valid(b));
        CHECK(ir_ed25519_small_order(b));
    }
    uint8_t p[32];
    t_unhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", p, 32);
    CHECK(!ir_ed25519_canonical_y(p));
}

TEST(point_validity)
{
    /* observed in iroh: 00.. and 01 00.. valid, 02 00.. and 07 00.. invalid */
    uint8_t b[32] = {0};
    iroh_endpoint_id id;
    CHECK_EQ_INT(iroh_endpoint_id_from_bytes(b, &id), IROH_OK);
    b[0] = 1;
    CHECK_EQ_INT(iroh_endpoint_id_from_bytes(b, &id), IROH_OK);
    b[0] = 2;
    CHECK_EQ_INT(iroh_endpoint_id_from_bytes(b, &id), IROH_ERR_INVALID_KEY);
    CHECK_STR(iroh_last_error(), "data is not a valid public key");
    b[0] = 7;
    CHECK_EQ_INT(iroh_endpoint_id_from_bytes(b, &id), IROH_ERR_INVALID_KEY);
    /* about half of all y values are on the curve: count over a deterministic sample */
    int valid = 0;
    for (int i = 0; i < 256; i++) {
        memset(b, 0, sizeof b);
        b[0] = (uint8_t)i;
        b[7] = (uint8_t)(i * 37);
        b[31] = (uint8_t)(i * 11) & 0x7f;
        valid += ir_ed25519_point_valid(b);
    }
    CHECK(valid > 90 && valid < 166);
}

TEST(key_text_parsing)
{
    iroh_endpoint_id id;
    iroh_secret_key sk;
    const char *hex = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
    CHECK_EQ_INT(iroh_endpoint_id_parse(hex, &id), IROH_OK);
    /* uppercase hex fails (64 chars are always hex) */
    CHECK_EQ_INT(iroh_endpoint_id_parse(
                     "03A107BFF3CE10BE1D70DD18E74BC09967E4D6309BA50D5F1DDC8664125531B8", &id),
                 IROH_ERR_INVALID_KEY);
    CHECK_STR(iroh_last_error(), "failed to decode hex string");
    /* base32 is case-insensitive */
    CHECK_EQ_INT(iroh_endpoint_id_parse("AOQQPP7TZYIL4HLQ3UMOOS6ATFT6JVRQTOSQ2XY53SDGIESVGG4A", &id),
                 IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_id_parse("aoqqpp7tzyil4hlq3umOOS6ATFT6jvrqtosq2xy53sdgiesvgg4a", &id),
                 IROH_OK);
    /* wrong lengths, padding, trailing bits, z-base-32 */
    CHECK_EQ_INT(iroh_endpoint_id_parse("aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4", &id),
                 IROH_ERR_INVALID_KEY);
    CHECK_STR(iroh_last_error(), "invalid length");
    CHECK_EQ_INT(
        iroh_endpoint_id_parse("aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4a====", &id),
        IROH_ERR_INVALID_KEY);
    CHECK_EQ_INT(iroh_endpoint_id_parse("aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4b", &id),
                 IROH_ERR_INVALID_KEY);
    CHECK_STR(iroh_last_error(), "failed to decode base32 string");
    CHECK_EQ_INT(iroh_endpoint_id_parse("yqooxx9u3aemh8mo5wcqq16yufu6jitouq1o4za751dger1igghy", &id),
                 IROH_ERR_INVALID_KEY);
    CHECK_EQ_INT(iroh_endpoint_id_parse("", &id), IROH_ERR_INVALID_KEY);
    /* hex of an invalid point */
    CHECK_EQ_INT(iroh_endpoint_id_parse(
                     "0200000000000000000000000000000000000000000000000000000000000000", &id),
                 IROH_ERR_INVALID_KEY);
    CHECK_STR(iroh_last_error(), "data is not a valid public key");
    /* secret keys parse the same two forms, without a point check */
    CHECK_EQ_INT(iroh_secret_key_parse(
                     "0200000000000000000000000000000000000000000000000000000000000000", &sk),
                 IROH_OK);
    CHECK_EQ_INT(iroh_secret_key_parse("aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4a", &sk),
                 IROH_OK);
    CHECK_EQ_INT(iroh_secret_key_parse("xyz", &sk), IROH_ERR_INVALID_KEY);
}

TEST(generate_and_buffers)
{
    iroh_secret_key a, b;
    iroh_endpoint_id id;
    char small[10], hex[IROH_ID_HEX_LEN];
    CHECK_EQ_INT(iroh_secret_key_generate(&a), IROH_OK);
    CHECK_EQ_INT(iroh_secret_key_generate(&b), IROH_OK);
    CHECK(memcmp(a.bytes, b.bytes, 32) != 0);
    iroh_secret_key_public(&a, &id);
    CHECK(ir_ed25519_point_valid(id.bytes));
    CHECK_EQ_INT(iroh_endpoint_id_to_hex(&id, small, sizeof small), IROH_ERR_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(iroh_endpoint_id_to_hex(&id, hex, sizeof hex), IROH_OK);
    CHECK_EQ_INT(strlen(hex), 64);
    CHECK_EQ_INT(iroh_endpoint_id_parse(NULL, &id), IROH_ERR_INVALID_ARGUMENT);
    CHECK_STR(iroh_strerror(IROH_ERR_INVALID_TICKET), "invalid ticket");
}

TEST(save_and_load)
{
    char path[] = "/tmp/iroh-c-key-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    unlink(path);
    iroh_secret_key k, back;
    iroh_secret_key_generate(&k);
    CHECK_EQ_INT(iroh_secret_key_save(&k, path), IROH_OK);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK_EQ_INT(iroh_secret_key_save(&k, path), IROH_ERR_IO); /* never overwrites */
    CHECK_EQ_INT(iroh_secret_key_load(path, &back), IROH_OK);
    CHECK_MEM(back.bytes, k.bytes, 32);
    FILE *f = fopen(path, "w");
    fputs("  aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4a\n\n", f);
    fclose(f);
    CHECK_EQ_INT(iroh_secret_key_load(path, &back), IROH_OK);
    f = fopen(path, "w");
    fputs("two keys\nno\n", f);
    fclose(f);
    CHECK_EQ_INT(iroh_secret_key_load(path, &back), IROH_ERR_INVALID_KEY);
    unlink(path);
    CHECK_EQ_INT(iroh_secret_key_load(path, &back), IROH_ERR_IO);
}

int main(void)
{
    RUN(save_and_load);
    RUN(spec_key_vectors);
    RUN(tls_name_base32hex);
    RUN(signatures);
    RUN(strict_verification);
    RUN(small_order_points);
    RUN(point_validity);
    RUN(key_text_parsing);
    RUN(generate_and_buffers);
    TEST_EXIT();
}
