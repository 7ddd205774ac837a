/* postcard varints and byte strings, and the base32 / hex codecs. */
#include "base/encoding.h"
#include "base/postcard.h"
#include "test.h"

static void check_varint(uint64_t v, const char *hex)
{
    uint8_t want[16];
    int n = t_unhex(hex, want, sizeof want);
    ir_buf b;
    ir_buf_init(&b);
    ir_pc_put_varint(&b, v);
    CHECK_EQ_INT(b.len, n);
    CHECK_MEM(b.data, want, (size_t)n);
    ir_pc_reader r;
    uint64_t got = 0;
    ir_pc_reader_init(&r, b.data, b.len);
    CHECK_EQ_INT(ir_pc_get_varint(&r, UINT64_MAX, &got), 0);
    CHECK(got == v);
    CHECK_EQ_INT(r.pos, b.len);
    ir_buf_free(&b);
}

TEST(varint_encoding)
{
    check_varint(0, "00");
    check_varint(1, "01");
    check_varint(127, "7f");
    check_varint(128, "8001");
    check_varint(1024, "8008");
    check_varint(65535, "ffff03");
    check_varint(UINT32_MAX, "ffffffff0f");
    check_varint(UINT64_MAX, "ffffffffffffffffff01");
}

static int decode(const char *hex, uint64_t max, uint64_t *out)
{
    uint8_t in[16];
    int n = t_unhex(hex, in, sizeof in);
    ir_pc_reader r;
    ir_pc_reader_init(&r, in, (size_t)n);
    return ir_pc_get_varint(&r, max, out);
}

TEST(varint_decoding_rules)
{
    uint64_t v;
    /* non-minimal forms are accepted, as postcard does */
    CHECK_EQ_INT(decode("8500", UINT64_MAX, &v), 0);
    CHECK_EQ_INT(v, 5);
    CHECK_EQ_INT(decode("8100", UINT16_MAX, &v), 0);
    CHECK_EQ_INT(v, 1);
    /* overflow of the target type */
    CHECK_EQ_INT(decode("ffff03", UINT16_MAX, &v), 0);
    CHECK_EQ_INT(decode("ffff07", UINT16_MAX, &v), -1);
    CHECK_EQ_INT(decode("808080", UINT16_MAX, &v), -1); /* too long for u16 */
    CHECK_EQ_INT(decode("ffffffff1f", UINT32_MAX, &v), -1);
    CHECK_EQ_INT(decode("ffffffffffffffffff02", UINT64_MAX, &v), -1);
    CHECK_EQ_INT(decode("ffffffffffffffffff8001", UINT64_MAX, &v), -1);
    /* truncation */
    CHECK_EQ_INT(decode("80", UINT64_MAX, &v), -1);
    CHECK_EQ_INT(decode("", UINT64_MAX, &v), -1);
}

TEST(bytes_and_sticky_errors)
{
    uint8_t in[] = {3, 'a', 'b', 'c', 5, 'x'};
    ir_pc_reader r;
    const uint8_t *p;
    size_t len;
    ir_pc_reader_init(&r, in, sizeof in);
    CHECK_EQ_INT(ir_pc_get_bytes(&r, &p, &len), 0);
    CHECK_EQ_INT(len, 3);
    CHECK_MEM(p, "abc", 3);
    CHECK_EQ_INT(ir_pc_get_bytes(&r, &p, &len), -1); /* claims 5, has 1 */
    CHECK(r.err);
    uint8_t u;
    CHECK_EQ_INT(ir_pc_get_u8(&r, &u), -1); /* the failure sticks */
    /* a huge length does not overflow the bounds check */
    uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0};
    ir_pc_reader_init(&r, huge, sizeof huge);
    CHECK_EQ_INT(ir_pc_get_bytes(&r, &p, &len), -1);
}

TEST(base32_rfc4648_vectors)
{
    /* RFC 4648 section 10, lowercased and unpadded */
    static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *b32[] = {"", "my", "mzxq", "mzxw6", "mzxw6yq", "mzxw6ytb", "mzxw6ytboi"};
    static const char *b32hex[] = {"", "co", "cpng", "cpnmu", "cpnmuog", "cpnmuoj1", "cpnmuoj1e8"};
    for (int i = 0; i < 7; i++) {
        char out[32];
        uint8_t back[16];
        size_t pos, n = strlen(in[i]);
        ir_b32_encode(IR_B32_RFC4648, (const uint8_t *)in[i], n, out);
        CHECK_STR(out, b32[i]);
        CHECK_EQ_INT(ir_b32_decode(IR_B32_RFC4648, out, strlen(out), back, sizeof back, &pos), n);
        CHECK_MEM(back, in[i], n);
        ir_b32_encode(IR_B32_HEX, (const uint8_t *)in[i], n, out);
        CHECK_STR(out, b32hex[i]);
        CHECK_EQ_INT(ir_b32_decode(IR_B32_HEX, out, strlen(out), back, sizeof back, &pos), n);
        CHECK_MEM(back, in[i], n);
    }
}

TEST(base32_errors)
{
    uint8_t out[16];
    size_t pos;
    CHECK_EQ_INT(ir_b32_decode(IR_B32_RFC4648, "MZXW6YTBOI", 10, out, sizeof out, &pos), 6);
    CHECK_EQ_INT(ir_b32_decode(IR_B32_RFC4648, "mzxw6ytboi======", 16, out, sizeof out, &pos),
                 IR_B32_E_SYMBOL);
    CHECK_EQ_INT(pos, 10);
    CHECK_EQ_INT(ir_b32_decode(IR_B32_RFC4648, "mzx1", 4, out, sizeof out, &pos), IR_B32_E_SYMBOL);
    CHECK_EQ_INT(pos, 3);
    CHECK_EQ_INT(ir_b32_decode(IR_B32_RFC4648, "mzx", 3, out, sizeof out, &pos), IR_B32_E_LENGTH);
    CHECK_EQ_INT(ir_b32_decode(IR_B32_RFC4648, "mz", 2, out, sizeof out, &pos), IR_B32_E_TRAILING);
    CHECK_EQ_INT(ir_b32_decode(IR_B32_RFC4648, "mzxw6ytboi", 10, out, 3, &pos), IR_B32_E_SPACE);
    /* z-base-32 is case-sensitive */
    CHECK_EQ_INT(ir_b32_decode(IR_B32_Z, "YB", 2, out, sizeof out, &pos), IR_B32_E_SYMBOL);
    CHECK_EQ_INT(ir_b32_decode(IR_B32_Z, "yy", 2, out, sizeof out, &pos), 1);
    CHECK_EQ_INT(out[0], 0);
}

TEST(hex)
{
    uint8_t b[3] = {0x00, 0xab, 0xff}, back[3];
    char s[7];
    ir_hex_encode(b, 3, s);
    CHECK_STR(s, "00abff");
    CHECK_EQ_INT(ir_hex_decode("00abff", 6, back, 3, 0), 0);
    CHECK_MEM(back, b, 3);
    CHECK_EQ_INT(ir_hex_decode("00ABFF", 6, back, 3, 0), -1);
    CHECK_EQ_INT(ir_hex_decode("00ABFF", 6, back, 3, 1), 0);
    CHECK_EQ_INT(ir_hex_decode("00abf", 5, back, 3, 0), -1);
    CHECK_EQ_INT(ir_hex_decode("00abfg", 6, back, 3, 0), -1);
}

int main(void)
{
    RUN(varint_encoding);
    RUN(varint_decoding_rules);
    RUN(bytes_and_sticky_errors);
    RUN(base32_rfc4648_vectors);
    RUN(base32_errors);
    RUN(hex);
    TEST_EXIT();
}
