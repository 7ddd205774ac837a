/* Relay frames: every vector of spec relay.md section 7 (upstream's snapshot tests),
 * decoding rules (sizes, varint types, directions, versions, keys), encoding rules and the
 * datagram batch iterator. */
#include <stdlib.h>

#include "base/key.h"
#include "relay/frame.h"
#include "test.h"

#define PK_HEX "197f6b23e16c8532c6abc838facd5ea789be0c76b2920334039bfa8b3d368d61"
#define HELLO_HEX "48656c6c6f20576f726c6421" /* "Hello World!" */

static uint8_t pk[32];

static void setup(void)
{
    iroh_secret_key sk;
    iroh_endpoint_id id;
    memset(sk.bytes, 42, 32);
    iroh_secret_key_public(&sk, &id);
    memcpy(pk, id.bytes, 32);
}

/* Encodes f, compares with hex, decodes the bytes back (with `allowed`) and re-encodes. */
static void check_vector(const ir_relay_frame *f, const char *hex, uint32_t allowed)
{
    uint8_t want[512], got[512], again[512];
    int n = t_unhex(hex, want, sizeof want);
    CHECK(n > 0);
    size_t w = 0;
    CHECK_EQ_INT(ir_relay_frame_encode(f, got, sizeof got, &w), IROH_OK);
    CHECK_EQ_INT(w, n);
    CHECK_EQ_INT(ir_relay_frame_encoded_len(f), n);
    CHECK_MEM(got, want, (size_t)n);
    ir_relay_frame d;
    CHECK_EQ_INT(ir_relay_frame_decode(want, (size_t)n, allowed, NULL, &d), IROH_OK);
    CHECK_EQ_INT(d.type, want[0]);
    size_t w2 = 0;
    CHECK_EQ_INT(ir_relay_frame_encode(&d, again, sizeof again, &w2), IROH_OK);
    CHECK_EQ_INT(w2, n);
    CHECK_MEM(again, want, (size_t)n);
    /* every truncation fails to decode, except where the body may be empty or free text */
    for (int k = 0; k < n; k++) {
        int rc = ir_relay_frame_decode(want, (size_t)k, allowed, NULL, &d);
        int may_pass = k >= 1 && (want[0] == IR_RELAY_FT_HEALTH ||
                                  want[0] == IR_RELAY_FT_SERVER_CONFIRMS_AUTH ||
                                  ((want[0] >= 4 && want[0] <= 7) && k >= (want[0] & 1 ? 36 : 34)));
        if (!may_pass)
            CHECK(rc < 0);
    }
    /* a buffer one byte short */
    CHECK_EQ_INT(ir_relay_frame_encode(f, got, (size_t)n - 1, &w), IROH_ERR_BUFFER_TOO_SMALL);
}

static ir_relay_frame dgram(uint8_t type, uint8_t ecn, uint16_t seg, const char *contents)
{
    ir_relay_frame f;
    memset(&f, 0, sizeof f);
    f.type = type;
    memcpy(f.u.dgram.id.bytes, pk, 32);
    f.u.dgram.d.ecn = ecn;
    f.u.dgram.d.segment_size = seg;
    f.u.dgram.d.contents = (const uint8_t *)contents;
    f.u.dgram.d.len = strlen(contents);
    return f;
}

TEST(spec_vectors_relay_to_client)
{
    ir_relay_frame f;
    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_HEALTH;
    f.u.text.text = "Hello? Yes this is dog.";
    f.u.text.len = strlen(f.u.text.text);
    check_vector(&f, "0b 48656c6c6f3f20596573207468697320697320646f672e", IR_RELAY_FROM_SERVER_V1);

    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_ENDPOINT_GONE;
    memcpy(f.u.endpoint_gone.bytes, pk, 32);
    check_vector(&f, "08" PK_HEX, IR_RELAY_FROM_SERVER_V2);

    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_PING;
    memset(f.u.ping, 0x2a, 8);
    check_vector(&f, "09 2a2a2a2a2a2a2a2a", IR_RELAY_FROM_SERVER_V2);
    f.type = IR_RELAY_FT_PONG;
    check_vector(&f, "0a 2a2a2a2a2a2a2a2a", IR_RELAY_FROM_SERVER_V2);

    f = dgram(IR_RELAY_FT_R2C_DATAGRAM_BATCH, IR_RELAY_ECN_CE, 6, "Hello World!");
    check_vector(&f, "07" PK_HEX "03 0006" HELLO_HEX, IR_RELAY_FROM_SERVER_V2);
    f = dgram(IR_RELAY_FT_R2C_DATAGRAM, IR_RELAY_ECN_CE, 0, "Hello World!");
    check_vector(&f, "06" PK_HEX "03" HELLO_HEX, IR_RELAY_FROM_SERVER_V2);

    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_RESTARTING;
    f.u.restarting.reconnect_in_ms = 10;
    f.u.restarting.try_for_ms = 20;
    check_vector(&f, "0c 0000000a 00000014", IR_RELAY_FROM_SERVER_V2);

    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_STATUS;
    f.u.status = IR_RELAY_STATUS_SAME_ENDPOINT_ID_CONNECTED;
    check_vector(&f, "0d 01", IR_RELAY_FROM_SERVER_V2);
    f.u.status = IR_RELAY_STATUS_RATE_LIMITED;
    check_vector(&f, "0d 02", IR_RELAY_FROM_SERVER_V2);
    f.u.status = IR_RELAY_STATUS_HEALTHY;
    check_vector(&f, "0d 00", IR_RELAY_FROM_SERVER_V2);
}

TEST(spec_vectors_client_to_relay)
{
    ir_relay_frame f;
    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_PING;
    memset(f.u.ping, 0x2a, 8);
    check_vector(&f, "09 2a2a2a2a2a2a2a2a", IR_RELAY_FROM_CLIENT);
    f.type = IR_RELAY_FT_PONG;
    check_vector(&f, "0a 2a2a2a2a2a2a2a2a", IR_RELAY_FROM_CLIENT);
    f = dgram(IR_RELAY_FT_C2R_DATAGRAM_BATCH, IR_RELAY_ECN_CE, 6, "Hello World!");
    check_vector(&f, "05" PK_HEX "03 0006" HELLO_HEX, IR_RELAY_FROM_CLIENT);
    f = dgram(IR_RELAY_FT_C2R_DATAGRAM, IR_RELAY_ECN_CE, 0, "Hello World!");
    check_vector(&f, "04" PK_HEX "03" HELLO_HEX, IR_RELAY_FROM_CLIENT);
}

TEST(spec_vectors_handshake_frames)
{
    ir_relay_frame f;
    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_SERVER_CHALLENGE;
    for (int i = 0; i < 16; i++)
        f.u.challenge[i] = (uint8_t)i;
    check_vector(&f, "00000102030405060708090a0b0c0d0e0f", IR_RELAY_HS_FROM_SERVER);

    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_SERVER_CONFIRMS_AUTH;
    check_vector(&f, "02", IR_RELAY_HS_FROM_SERVER);

    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_SERVER_DENIES_AUTH;
    f.u.text.text = "signature invalid";
    f.u.text.len = 17;
    check_vector(&f, "03 11 7369676e617475726520696e76616c6964", IR_RELAY_HS_FROM_SERVER);
    f.u.text.text = "not authorized";
    f.u.text.len = 14;
    check_vector(&f, "03 0e 6e6f7420617574686f72697a6564", IR_RELAY_HS_FROM_SERVER);

    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_CLIENT_AUTH;
    memcpy(f.u.client_auth.key.bytes, pk, 32);
    t_unhex("a28b5ebc6a930b5d80ad5aca2a8e48ad4a064e699c0866674c8b8e61a5f4ea94"
            "0ee8b9f06732930250ac0735555abe77e8df740165edc3163be432f0e4f3cf0f",
            f.u.client_auth.sig.bytes, 64);
    check_vector(&f,
                 "01" PK_HEX "40"
                 "a28b5ebc6a930b5d80ad5aca2a8e48ad4a064e699c0866674c8b8e61a5f4ea94"
                 "0ee8b9f06732930250ac0735555abe77e8df740165edc3163be432f0e4f3cf0f",
                 IR_RELAY_HS_FROM_CLIENT);
}

static int dec_hex(const char *hex, uint32_t allowed, ir_relay_frame *f)
{
    static uint8_t buf[4096];
    int n = t_unhex(hex, buf, sizeof buf);
    if (n < 0)
        return 99;
    return ir_relay_frame_decode(buf, (size_t)n, allowed, NULL, f);
}

TEST(undersized_datagrams_rejected)
{
    ir_relay_frame f;
    /* upstream regression: type byte only */
    CHECK_EQ_INT(dec_hex("04", IR_RELAY_FROM_CLIENT, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("05", IR_RELAY_FROM_CLIENT, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("06", IR_RELAY_FROM_SERVER_V2, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("07", IR_RELAY_FROM_SERVER_V2, &f), IROH_ERR_INVALID_ARGUMENT);
    /* key only, key + ecn without segment size */
    CHECK_EQ_INT(dec_hex("04" PK_HEX, IR_RELAY_FROM_CLIENT, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("05" PK_HEX "03", IR_RELAY_FROM_CLIENT, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("05" PK_HEX "0300", IR_RELAY_FROM_CLIENT, &f), IROH_ERR_INVALID_ARGUMENT);
    /* the minimum sizes decode, with empty contents (upstream accepts them) */
    CHECK_EQ_INT(dec_hex("04" PK_HEX "02", IR_RELAY_FROM_CLIENT, &f), IROH_OK);
    CHECK_EQ_INT(f.u.dgram.d.len, 0);
    CHECK_EQ_INT(f.u.dgram.d.ecn, IR_RELAY_ECN_ECT0);
    CHECK_EQ_INT(ir_relay_dgram_count(&f.u.dgram.d), 0);
    CHECK_EQ_INT(dec_hex("05" PK_HEX "010010", IR_RELAY_FROM_CLIENT, &f), IROH_OK);
    CHECK_EQ_INT(f.u.dgram.d.len, 0);
    CHECK_EQ_INT(f.u.dgram.d.segment_size, 16);
    /* but they cannot be encoded */
    uint8_t out[64];
    size_t w;
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_ERR_INVALID_ARGUMENT);
}

TEST(ecn_and_segment_size_semantics)
{
    ir_relay_frame f;
    /* only the low two bits of the ECN byte count */
    CHECK_EQ_INT(dec_hex("06" PK_HEX "ff 41", IR_RELAY_FROM_SERVER_V2, &f), IROH_OK);
    CHECK_EQ_INT(f.u.dgram.d.ecn, 3);
    CHECK_EQ_INT(dec_hex("06" PK_HEX "fd 41", IR_RELAY_FROM_SERVER_V2, &f), IROH_OK);
    CHECK_EQ_INT(f.u.dgram.d.ecn, 1);
    /* a batch with segment size 0 is one datagram; it re-encodes as the single type */
    CHECK_EQ_INT(dec_hex("07" PK_HEX "02 0000 414243", IR_RELAY_FROM_SERVER_V2, &f), IROH_OK);
    CHECK_EQ_INT(f.type, IR_RELAY_FT_R2C_DATAGRAM_BATCH);
    CHECK_EQ_INT(f.u.dgram.d.segment_size, 0);
    CHECK_EQ_INT(ir_relay_dgram_count(&f.u.dgram.d), 1);
    uint8_t out[128], want[128];
    size_t w;
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_OK);
    int n = t_unhex("06" PK_HEX "02 414243", want, sizeof want);
    CHECK_EQ_INT(w, n);
    CHECK_MEM(out, want, (size_t)n);
    /* a single-type frame given a segment size is written as a batch */
    f = dgram(IR_RELAY_FT_C2R_DATAGRAM, 0, 2, "abcde");
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_OK);
    CHECK_EQ_INT(out[0], IR_RELAY_FT_C2R_DATAGRAM_BATCH);
    CHECK_EQ_INT(w, 36 + 5);
    /* ECN values above 3 are refused by the encoder */
    f.u.dgram.d.ecn = 4;
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_ERR_INVALID_ARGUMENT);
}

TEST(batch_iterator)
{
    ir_relay_frame f = dgram(IR_RELAY_FT_R2C_DATAGRAM_BATCH, 0, 6, "Hello World!");
    ir_relay_dgram_iter it;
    const uint8_t *p;
    size_t len;
    ir_relay_dgram_iter_init(&it, &f.u.dgram.d);
    CHECK_EQ_INT(ir_relay_dgram_count(&f.u.dgram.d), 2);
    CHECK_EQ_INT(ir_relay_dgram_iter_next(&it, &p, &len), 1);
    CHECK_EQ_INT(len, 6);
    CHECK_MEM(p, "Hello ", 6);
    CHECK_EQ_INT(ir_relay_dgram_iter_next(&it, &p, &len), 1);
    CHECK_EQ_INT(len, 6);
    CHECK_MEM(p, "World!", 6);
    CHECK_EQ_INT(ir_relay_dgram_iter_next(&it, &p, &len), 0);

    /* the last one shorter (GSO) */
    f = dgram(IR_RELAY_FT_R2C_DATAGRAM_BATCH, 0, 5, "Hello World!");
    CHECK_EQ_INT(ir_relay_dgram_count(&f.u.dgram.d), 3);
    ir_relay_dgram_iter_init(&it, &f.u.dgram.d);
    size_t lens[4] = {0}, k = 0;
    while (ir_relay_dgram_iter_next(&it, &p, &len) && k < 4)
        lens[k++] = len;
    CHECK_EQ_INT(k, 3);
    CHECK_EQ_INT(lens[0], 5);
    CHECK_EQ_INT(lens[1], 5);
    CHECK_EQ_INT(lens[2], 2);

    /* segment size above the contents: one datagram */
    f = dgram(IR_RELAY_FT_R2C_DATAGRAM_BATCH, 0, 1200, "Hello World!");
    CHECK_EQ_INT(ir_relay_dgram_count(&f.u.dgram.d), 1);
    ir_relay_dgram_iter_init(&it, &f.u.dgram.d);
    CHECK_EQ_INT(ir_relay_dgram_iter_next(&it, &p, &len), 1);
    CHECK_EQ_INT(len, 12);
    CHECK_EQ_INT(ir_relay_dgram_iter_next(&it, &p, &len), 0);

    /* single */
    f = dgram(IR_RELAY_FT_R2C_DATAGRAM, 0, 0, "Hello World!");
    ir_relay_dgram_iter_init(&it, &f.u.dgram.d);
    CHECK_EQ_INT(ir_relay_dgram_iter_next(&it, &p, &len), 1);
    CHECK_EQ_INT(len, 12);
    CHECK_EQ_INT(ir_relay_dgram_iter_next(&it, &p, &len), 0);
}

TEST(varint_frame_types)
{
    ir_relay_frame f;
    /* longer varint forms of the type are accepted */
    CHECK_EQ_INT(dec_hex("4009 2a2a2a2a2a2a2a2a", IR_RELAY_FROM_CLIENT, &f), IROH_OK);
    CHECK_EQ_INT(f.type, IR_RELAY_FT_PING);
    CHECK_EQ_INT(dec_hex("8000000a 2a2a2a2a2a2a2a2a", IR_RELAY_FROM_CLIENT, &f), IROH_OK);
    CHECK_EQ_INT(f.type, IR_RELAY_FT_PONG);
    CHECK_EQ_INT(dec_hex("c000000000000004" PK_HEX "00 41", IR_RELAY_FROM_CLIENT, &f), IROH_OK);
    CHECK_EQ_INT(f.type, IR_RELAY_FT_C2R_DATAGRAM);
    CHECK_EQ_INT(f.u.dgram.d.len, 1);
    CHECK_EQ_INT(dec_hex("4002", IR_RELAY_HS_FROM_SERVER, &f), IROH_OK);
    /* truncated varints */
    CHECK_EQ_INT(dec_hex("", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("40", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("800000", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("c0000000000000", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    /* unknown types */
    CHECK_EQ_INT(dec_hex("0e", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(dec_hex("3f", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(dec_hex("4100", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(dec_hex("ffffffffffffffff", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_UNSUPPORTED);
    for (int t = 0x0e; t < 0x40; t++) {
        uint8_t b = (uint8_t)t;
        CHECK_EQ_INT(ir_relay_frame_decode(&b, 1, IR_RELAY_ALLOW_ALL, NULL, &f), IROH_ERR_UNSUPPORTED);
    }
}

TEST(directions_and_versions)
{
    ir_relay_frame f;
    /* a server accepts only 04, 05, 09, 0a after the handshake */
    CHECK_EQ_INT(dec_hex("06" PK_HEX "0041", IR_RELAY_FROM_CLIENT, &f), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(dec_hex("08" PK_HEX, IR_RELAY_FROM_CLIENT, &f), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(dec_hex("0d00", IR_RELAY_FROM_CLIENT, &f), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(dec_hex("02", IR_RELAY_FROM_CLIENT, &f), IROH_ERR_UNSUPPORTED);
    /* a client accepts neither 04/05 nor handshake frames */
    CHECK_EQ_INT(dec_hex("04" PK_HEX "0041", IR_RELAY_FROM_SERVER_V2, &f), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(dec_hex("00000102030405060708090a0b0c0d0e0f", IR_RELAY_FROM_SERVER_V2, &f),
                 IROH_ERR_UNSUPPORTED);
    /* Health only in v1, Status only in v2 */
    CHECK_EQ_INT(dec_hex("0b41", IR_RELAY_FROM_SERVER_V2, &f), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(dec_hex("0b41", IR_RELAY_FROM_SERVER_V1, &f), IROH_OK);
    CHECK_EQ_INT(dec_hex("0d01", IR_RELAY_FROM_SERVER_V1, &f), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(dec_hex("0d01", IR_RELAY_FROM_SERVER(IR_RELAY_V2), &f), IROH_OK);
    CHECK_EQ_INT(dec_hex("0b41", IR_RELAY_FROM_SERVER(IR_RELAY_V1), &f), IROH_OK);
    /* the server reading the handshake wants ClientAuth only */
    CHECK_EQ_INT(dec_hex("0940404040404040 40", IR_RELAY_HS_FROM_CLIENT, &f), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(dec_hex("02", IR_RELAY_HS_FROM_CLIENT, &f), IROH_ERR_UNSUPPORTED);
}

TEST(fixed_lengths)
{
    ir_relay_frame f;
    CHECK_EQ_INT(dec_hex("09 2a2a2a2a2a2a2a", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("09 2a2a2a2a2a2a2a2a2a", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("0a", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("08" PK_HEX "00", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("08", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("0c 0000000a 000000", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("0c 0000000a 0000001400", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("0c ffffffff fffffffe", IR_RELAY_ALLOW_ALL, &f), IROH_OK);
    CHECK(f.u.restarting.reconnect_in_ms == 0xffffffffu);
    CHECK(f.u.restarting.try_for_ms == 0xfffffffeu);
    /* Status: empty is invalid, unknown codes are accepted, extra bytes ignored */
    CHECK_EQ_INT(dec_hex("0d", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("0d 07", IR_RELAY_ALLOW_ALL, &f), IROH_OK);
    CHECK_EQ_INT(f.u.status, 7);
    CHECK(ir_relay_status_text(7) == NULL);
    CHECK(ir_relay_status_text(1) != NULL);
    CHECK_EQ_INT(dec_hex("0d ff", IR_RELAY_ALLOW_ALL, &f), IROH_OK);
    CHECK_EQ_INT(f.u.status, 255);
    CHECK_EQ_INT(dec_hex("0d 01 ffff", IR_RELAY_ALLOW_ALL, &f), IROH_OK);
    CHECK_EQ_INT(f.u.status, 1);
    /* Health: UTF-8 only, may be empty */
    CHECK_EQ_INT(dec_hex("0b", IR_RELAY_ALLOW_ALL, &f), IROH_OK);
    CHECK_EQ_INT(f.u.text.len, 0);
    CHECK_EQ_INT(dec_hex("0b c3a9", IR_RELAY_ALLOW_ALL, &f), IROH_OK);
    CHECK_EQ_INT(dec_hex("0b c3", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("0b eda080", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("0b c0af", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("0b f4908080", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
}

TEST(handshake_bodies_postcard_rules)
{
    ir_relay_frame f;
    const char *sig = "a28b5ebc6a930b5d80ad5aca2a8e48ad4a064e699c0866674c8b8e61a5f4ea94"
                      "0ee8b9f06732930250ac0735555abe77e8df740165edc3163be432f0e4f3cf0f";
    char hex[512];
    /* trailing bytes are ignored (postcard::from_bytes) */
    CHECK_EQ_INT(dec_hex("00000102030405060708090a0b0c0d0e0f ff", IR_RELAY_ALLOW_ALL, &f), IROH_OK);
    CHECK_EQ_INT(f.u.challenge[15], 15);
    CHECK_EQ_INT(dec_hex("02 00", IR_RELAY_ALLOW_ALL, &f), IROH_OK);
    snprintf(hex, sizeof hex, "01%s40%s00", PK_HEX, sig);
    CHECK_EQ_INT(dec_hex(hex, IR_RELAY_ALLOW_ALL, &f), IROH_OK);
    /* the signature length may be a non-minimal varint, but must be 64 */
    snprintf(hex, sizeof hex, "01%sc000%s", PK_HEX, sig);
    CHECK_EQ_INT(dec_hex(hex, IR_RELAY_ALLOW_ALL, &f), IROH_OK);
    CHECK_EQ_INT(f.u.client_auth.sig.bytes[0], 0xa2);
    snprintf(hex, sizeof hex, "01%s3f%s", PK_HEX, sig);
    CHECK_EQ_INT(dec_hex(hex, IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    snprintf(hex, sizeof hex, "01%s41%s00", PK_HEX, sig);
    CHECK_EQ_INT(dec_hex(hex, IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    /* deny reason: length varint, UTF-8, may be non-minimal, must fit */
    CHECK_EQ_INT(dec_hex("03 00", IR_RELAY_ALLOW_ALL, &f), IROH_OK);
    CHECK_EQ_INT(f.u.text.len, 0);
    CHECK_EQ_INT(dec_hex("03 8100 41", IR_RELAY_ALLOW_ALL, &f), IROH_OK);
    CHECK_EQ_INT(f.u.text.len, 1);
    CHECK_EQ_INT(dec_hex("03 02 41", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("03 01 ff", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("03", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dec_hex("03 ffffffffffffffffff01", IR_RELAY_ALLOW_ALL, &f), IROH_ERR_INVALID_ARGUMENT);
    /* the 65536 limit does not apply to handshake bodies */
    size_t big = 70000;
    uint8_t *b = malloc(big + 4);
    b[0] = IR_RELAY_FT_SERVER_DENIES_AUTH;
    b[1] = (uint8_t)(0x80 | (big & 0x7f));
    b[2] = (uint8_t)(0x80 | ((big >> 7) & 0x7f));
    b[3] = (uint8_t)(big >> 14);
    memset(b + 4, 'a', big);
    CHECK_EQ_INT(ir_relay_frame_decode(b, big + 4, IR_RELAY_ALLOW_ALL, NULL, &f), IROH_OK);
    CHECK_EQ_INT(f.u.text.len, big);
    free(b);
}

static void find_invalid_point(uint8_t out[32])
{
    memset(out, 0, 32);
    for (int i = 2; i < 256; i++) {
        out[0] = (uint8_t)i;
        if (!ir_ed25519_point_valid(out))
            return;
    }
}

TEST(invalid_keys)
{
    uint8_t bad[32], buf[128];
    ir_relay_frame f;
    find_invalid_point(bad);
    CHECK(!ir_ed25519_point_valid(bad));
    /* datagram destination, EndpointGone, ClientAuth */
    buf[0] = IR_RELAY_FT_C2R_DATAGRAM;
    memcpy(buf + 1, bad, 32);
    buf[33] = 0;
    buf[34] = 'x';
    CHECK_EQ_INT(ir_relay_frame_decode(buf, 35, IR_RELAY_ALLOW_ALL, NULL, &f), IROH_ERR_INVALID_KEY);
    buf[0] = IR_RELAY_FT_R2C_DATAGRAM_BATCH;
    buf[34] = 0;
    buf[35] = 1;
    buf[36] = 'x';
    CHECK_EQ_INT(ir_relay_frame_decode(buf, 37, IR_RELAY_ALLOW_ALL, NULL, &f), IROH_ERR_INVALID_KEY);
    buf[0] = IR_RELAY_FT_ENDPOINT_GONE;
    CHECK_EQ_INT(ir_relay_frame_decode(buf, 33, IR_RELAY_ALLOW_ALL, NULL, &f), IROH_ERR_INVALID_KEY);
    buf[0] = IR_RELAY_FT_CLIENT_AUTH;
    buf[33] = 64;
    memset(buf + 34, 0, 64);
    CHECK_EQ_INT(ir_relay_frame_decode(buf, 98, IR_RELAY_ALLOW_ALL, NULL, &f), IROH_ERR_INVALID_KEY);
    memcpy(buf + 1, pk, 32);
    CHECK_EQ_INT(ir_relay_frame_decode(buf, 98, IR_RELAY_ALLOW_ALL, NULL, &f), IROH_OK);
}

TEST(key_cache)
{
    ir_relay_keycache c;
    iroh_endpoint_id id;
    uint8_t bad[32];
    ir_relay_keycache_init(&c);
    CHECK_EQ_INT(ir_relay_key_from_bytes(&c, pk, &id), IROH_OK);
    CHECK_MEM(id.bytes, pk, 32);
    memset(&id, 0, sizeof id);
    CHECK_EQ_INT(ir_relay_key_from_bytes(&c, pk, &id), IROH_OK); /* from the cache */
    CHECK_MEM(id.bytes, pk, 32);
    find_invalid_point(bad);
    CHECK_EQ_INT(ir_relay_key_from_bytes(&c, bad, &id), IROH_ERR_INVALID_KEY);
    CHECK_EQ_INT(ir_relay_key_from_bytes(&c, bad, &id), IROH_ERR_INVALID_KEY); /* never cached */
    /* decoding through the cache */
    uint8_t buf[64];
    ir_relay_frame f;
    buf[0] = IR_RELAY_FT_ENDPOINT_GONE;
    memcpy(buf + 1, pk, 32);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(ir_relay_frame_decode(buf, 33, IR_RELAY_ALLOW_ALL, &c, &f), IROH_OK);
        CHECK_MEM(f.u.endpoint_gone.bytes, pk, 32);
    }
    memcpy(buf + 1, bad, 32);
    CHECK_EQ_INT(ir_relay_frame_decode(buf, 33, IR_RELAY_ALLOW_ALL, &c, &f), IROH_ERR_INVALID_KEY);
}

TEST(max_packet_size)
{
    size_t cap = IR_RELAY_MAX_PACKET_SIZE + 64;
    uint8_t *buf = malloc(cap), *out = malloc(cap);
    ir_relay_frame f;
    size_t w;
    /* decode: body (after the type) up to 65536 */
    buf[0] = IR_RELAY_FT_C2R_DATAGRAM;
    memcpy(buf + 1, pk, 32);
    buf[33] = 0;
    memset(buf + 34, 0xab, cap - 34);
    CHECK_EQ_INT(ir_relay_frame_decode(buf, 1 + 65536, IR_RELAY_FROM_CLIENT, NULL, &f), IROH_OK);
    CHECK_EQ_INT(f.u.dgram.d.len, 65536 - 33);
    CHECK_EQ_INT(ir_relay_frame_decode(buf, 1 + 65537, IR_RELAY_FROM_CLIENT, NULL, &f),
                 IROH_ERR_TOO_LONG);
    /* with a 2-byte type the body limit is the same */
    buf[0] = 0x40;
    buf[1] = IR_RELAY_FT_C2R_DATAGRAM;
    memcpy(buf + 2, pk, 32);
    buf[34] = 0;
    CHECK_EQ_INT(ir_relay_frame_decode(buf, 2 + 65536, IR_RELAY_FROM_CLIENT, NULL, &f), IROH_OK);
    CHECK_EQ_INT(ir_relay_frame_decode(buf, 2 + 65537, IR_RELAY_FROM_CLIENT, NULL, &f),
                 IROH_ERR_TOO_LONG);
    /* the size check comes before the direction check, as upstream */
    CHECK_EQ_INT(ir_relay_frame_decode(buf, 2 + 65537, IR_RELAY_FROM_SERVER_V2, NULL, &f),
                 IROH_ERR_TOO_LONG);
    buf[1] = IR_RELAY_FT_HEALTH;
    memset(buf + 2, 'a', 65537);
    CHECK_EQ_INT(ir_relay_frame_decode(buf, 2 + 65536, IR_RELAY_FROM_SERVER_V1, NULL, &f), IROH_OK);
    CHECK_EQ_INT(ir_relay_frame_decode(buf, 2 + 65537, IR_RELAY_FROM_SERVER_V1, NULL, &f),
                 IROH_ERR_TOO_LONG);

    /* encode: the whole frame up to 65536, i.e. 65502 / 65500 bytes of datagrams */
    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_C2R_DATAGRAM;
    memcpy(f.u.dgram.id.bytes, pk, 32);
    f.u.dgram.d.contents = buf;
    f.u.dgram.d.len = IR_RELAY_MAX_DATAGRAM_SINGLE;
    CHECK_EQ_INT(IR_RELAY_MAX_DATAGRAM_SINGLE, 65502);
    CHECK_EQ_INT(IR_RELAY_MAX_DATAGRAM_BATCH, 65500);
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, cap, &w), IROH_OK);
    CHECK_EQ_INT(w, 65536);
    f.u.dgram.d.len++;
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, cap, &w), IROH_ERR_TOO_LONG);
    f.u.dgram.d.segment_size = 1200;
    f.u.dgram.d.len = IR_RELAY_MAX_DATAGRAM_BATCH;
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, cap, &w), IROH_OK);
    CHECK_EQ_INT(w, 65536);
    CHECK_EQ_INT(out[0], IR_RELAY_FT_C2R_DATAGRAM_BATCH);
    f.u.dgram.d.len++;
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, cap, &w), IROH_ERR_TOO_LONG);
    /* Health over the limit */
    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_HEALTH;
    f.u.text.text = (const char *)buf + 2;
    f.u.text.len = 65535;
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, cap, &w), IROH_OK);
    f.u.text.len = 65536;
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, cap, &w), IROH_ERR_TOO_LONG);
    free(buf);
    free(out);
}

TEST(encoder_refusals)
{
    ir_relay_frame f;
    uint8_t out[256];
    size_t w;
    f = dgram(IR_RELAY_FT_R2C_DATAGRAM, 0, 0, "");
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_ERR_INVALID_ARGUMENT);
    f = dgram(IR_RELAY_FT_R2C_DATAGRAM_BATCH, 0, 10, "");
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_ERR_INVALID_ARGUMENT);
    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_HEALTH;
    f.u.text.text = "\xff";
    f.u.text.len = 1;
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_ERR_INVALID_ARGUMENT);
    f.type = IR_RELAY_FT_SERVER_DENIES_AUTH;
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_ERR_INVALID_ARGUMENT);
    f.type = 0x0e;
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(ir_relay_frame_encoded_len(&f), 0);
    /* a long deny reason takes a multi-byte length */
    char reason[300];
    memset(reason, 'r', sizeof reason);
    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_SERVER_DENIES_AUTH;
    f.u.text.text = reason;
    f.u.text.len = 200;
    CHECK_EQ_INT(ir_relay_frame_encode(&f, out, sizeof out, &w), IROH_OK);
    CHECK_EQ_INT(w, 1 + 2 + 200);
    CHECK_EQ_INT(out[1], 0xc8);
    CHECK_EQ_INT(out[2], 0x01);
    ir_relay_frame d;
    CHECK_EQ_INT(ir_relay_frame_decode(out, w, IR_RELAY_HS_FROM_SERVER, NULL, &d), IROH_OK);
    CHECK_EQ_INT(d.u.text.len, 200);
}

TEST(dgram_header_in_place)
{
    /* a server forwards 04 as 06 by rewriting the prefix in place */
    uint8_t in[64], want[64];
    int n = t_unhex("04" PK_HEX "02" HELLO_HEX, in, sizeof in);
    ir_relay_frame f;
    CHECK_EQ_INT(ir_relay_frame_decode(in, (size_t)n, IR_RELAY_FROM_CLIENT, NULL, &f), IROH_OK);
    iroh_endpoint_id src;
    memset(src.bytes, 0, 32);
    src.bytes[0] = 1; /* any id */
    size_t h = ir_relay_dgram_header_write(in, 0, &src, f.u.dgram.d.ecn, f.u.dgram.d.segment_size);
    CHECK_EQ_INT(h, 34);
    CHECK_EQ_INT(h, ir_relay_dgram_header_len(0));
    CHECK_EQ_INT(in[0], IR_RELAY_FT_R2C_DATAGRAM);
    CHECK_EQ_INT(in[1], 1);
    CHECK_EQ_INT(in[33], 2);
    t_unhex(HELLO_HEX, want, sizeof want);
    CHECK_MEM(in + 34, want, 12);
    uint8_t b[40];
    CHECK_EQ_INT(ir_relay_dgram_header_write(b, 1, &src, 3, 1200), 36);
    CHECK_EQ_INT(b[0], IR_RELAY_FT_C2R_DATAGRAM_BATCH);
    CHECK_EQ_INT(b[34], 0x04);
    CHECK_EQ_INT(b[35], 0xb0);
}

TEST(type_names)
{
    CHECK_STR(ir_relay_frame_type_name(0), "ServerChallenge");
    CHECK_STR(ir_relay_frame_type_name(4), "ClientToRelayDatagram");
    CHECK_STR(ir_relay_frame_type_name(13), "Status");
    CHECK_STR(ir_relay_frame_type_name(14), "Unknown");
}

int main(void)
{
    setup();
    RUN(spec_vectors_relay_to_client);
    RUN(spec_vectors_client_to_relay);
    RUN(spec_vectors_handshake_frames);
    RUN(undersized_datagrams_rejected);
    RUN(ecn_and_segment_size_semantics);
    RUN(batch_iterator);
    RUN(varint_frame_types);
    RUN(directions_and_versions);
    RUN(fixed_lengths);
    RUN(handshake_bodies_postcard_rules);
    RUN(invalid_keys);
    RUN(key_cache);
    RUN(max_packet_size);
    RUN(encoder_refusals);
    RUN(dgram_header_in_place);
    RUN(type_names);
    TEST_EXIT();
}
