/* QUIC frame codec: byte vectors, round trips of every frame type, truncation at every
 * offset, invalid values, the per-type table and the packet-filling helpers. */
#include <stdint.h>

#include "quic/frame.h"
#include "test.h"

#include "frame_eq.h"

/* frames whose last field runs to the end of the packet */
static int runs_to_end(uint64_t t)
{
    return t == IR_FT_PADDING || t == IR_FT_DATAGRAM ||
           (t >= IR_FT_STREAM && t <= 0x0f && !(t & IR_FT_STREAM_LEN));
}

/* Decodes hex; checks it is exactly one frame; returns the decode result. */
static int decode_hex(const char *hex, unsigned char *buf, size_t cap, ir_frame *f)
{
    int n = t_unhex(hex, buf, cap);
    if (n < 0)
        return 1000;
    ir_cursor c;
    ir_cursor_init(&c, buf, (size_t)n);
    int rc = ir_frame_decode(&c, f);
    if (rc == 0 && c.pos != (size_t)n)
        return 1001;
    if (rc != 0 && c.pos != 0)
        return 1002;
    return rc;
}

TEST(varint_vectors)
{
    /* RFC 9000 section 16 / appendix A.1 */
    static const struct {
        const char *hex;
        uint64_t v;
        size_t len;
    } vec[] = {
        {"c2197c5eff14e88c", UINT64_C(151288809941952652), 8},
        {"9d7f3e7d", 494878333, 4},
        {"7bbd", 15293, 2},
        {"25", 37, 1},
        {"4025", 37, 2},
    };
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        unsigned char b[16], frame[17];
        int n = t_unhex(vec[i].hex, b, sizeof b);
        ir_cursor c;
        uint64_t v = 0;
        ir_cursor_init(&c, b, (size_t)n);
        CHECK(ir_get_varint(&c, &v) == 0);
        CHECK(v == vec[i].v);
        CHECK_EQ_INT(c.pos, vec[i].len);
        /* the same integer as a MAX_DATA value: non-minimal field encodings are fine */
        frame[0] = IR_FT_MAX_DATA;
        memcpy(frame + 1, b, (size_t)n);
        ir_frame f;
        ir_cursor_init(&c, frame, (size_t)n + 1);
        CHECK_EQ_INT(ir_frame_decode(&c, &f), 0);
        CHECK(f.u.limit == vec[i].v);
        /* and it re-encodes minimally */
        unsigned char out[16];
        size_t m = ir_frame_encode(out, sizeof out, &f);
        CHECK_EQ_INT(m, 1 + ir_varint_len(vec[i].v));
    }
}

TEST(add_address_vector)
{
    /* spec/quic-tls.md 4.2: ADD_ADDRESS seq 0 for 192.0.2.1:4433 */
    unsigned char b[64], out[64];
    ir_frame f;
    CHECK_EQ_INT(decode_hex("803d7f90 00 c0000201 1151", b, sizeof b, &f), 0);
    CHECK(f.type == IR_FT_ADD_ADDRESS_V4);
    CHECK(f.u.addr.seq == 0);
    CHECK_MEM(f.u.addr.ip, "\xc0\x00\x02\x01", 4);
    CHECK_EQ_INT(f.u.addr.port, 4433);
    CHECK_EQ_INT(ir_frame_encode(out, sizeof out, &f), 11);
    CHECK_MEM(out, b, 11);

    /* v6, REACH_OUT and REMOVE_ADDRESS codepoints */
    CHECK_EQ_INT(decode_hex("803d7f91 05 20010db8000000000000000000000001 01bb", b, sizeof b, &f),
                 0);
    CHECK(f.type == IR_FT_ADD_ADDRESS_V6 && f.u.addr.seq == 5 && f.u.addr.port == 443);
    CHECK(f.u.addr.ip[0] == 0x20 && f.u.addr.ip[15] == 1);
    CHECK_EQ_INT(decode_hex("803d7f92 01 7f000001 0050", b, sizeof b, &f), 0);
    CHECK(f.type == IR_FT_REACH_OUT_V4 && f.u.addr.seq == 1 && f.u.addr.port == 80);
    CHECK_EQ_INT(decode_hex("803d7f94 07", b, sizeof b, &f), 0);
    CHECK(f.type == IR_FT_REMOVE_ADDRESS && f.u.remove_seq == 7);
    CHECK_EQ_INT(decode_hex("803d7f90 00 c0000201 11", b, sizeof b, &f),
                 -IR_QERR_FRAME_ENCODING_ERROR);
}

TEST(multipath_vectors)
{
    /* spec/quic-tls.md 3.2 type encodings */
    unsigned char b[128], out[128];
    ir_frame f;
    CHECK_EQ_INT(decode_hex("7e75 01 3e", b, sizeof b, &f), 0);
    CHECK(f.type == IR_FT_PATH_ABANDON && f.u.path_abandon.path_id == 1 &&
          f.u.path_abandon.error_code == 0x3e);
    CHECK_EQ_INT(decode_hex("7e76 02 05", b, sizeof b, &f), 0);
    CHECK(f.type == IR_FT_PATH_STATUS_BACKUP && f.u.path_status.path_id == 2 &&
          f.u.path_status.seq == 5);
    CHECK_EQ_INT(decode_hex("7e77 02 06", b, sizeof b, &f), 0);
    CHECK(f.type == IR_FT_PATH_STATUS_AVAILABLE);
    CHECK_EQ_INT(decode_hex("7e78 03 04 01 08 0102030405060708 "
                            "00112233445566778899aabbccddeeff",
                            b, sizeof b, &f),
                 0);
    CHECK(f.type == IR_FT_PATH_NEW_CONNECTION_ID && f.u.new_cid.path_id == 3 &&
          f.u.new_cid.seq == 4 && f.u.new_cid.retire_prior_to == 1 && f.u.new_cid.cid_len == 8);
    CHECK_MEM(f.u.new_cid.cid, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    CHECK(f.u.new_cid.reset_token[15] == 0xff);
    CHECK(f.u.new_cid.cid == b + 6); /* points into the packet */
    CHECK_EQ_INT(ir_frame_encode(out, sizeof out, &f), 30);
    CHECK_MEM(out, b, 30);
    CHECK_EQ_INT(decode_hex("7e79 03 02", b, sizeof b, &f), 0);
    CHECK(f.type == IR_FT_PATH_RETIRE_CONNECTION_ID && f.u.retire_cid.path_id == 3 &&
          f.u.retire_cid.seq == 2);
    CHECK_EQ_INT(decode_hex("7e7a 0f", b, sizeof b, &f), 0);
    CHECK(f.type == IR_FT_MAX_PATH_ID && f.u.limit == 15);
    CHECK_EQ_INT(decode_hex("7e7b 07", b, sizeof b, &f), 0);
    CHECK(f.type == IR_FT_PATHS_BLOCKED && f.u.limit == 7);
    CHECK_EQ_INT(decode_hex("7e7c 01 09", b, sizeof b, &f), 0);
    CHECK(f.type == IR_FT_PATH_CIDS_BLOCKED && f.u.path_cids_blocked.path_id == 1 &&
          f.u.path_cids_blocked.next_seq == 9);
    /* PATH_ACK_ECN path 1, largest 10, delay 0, no extra ranges, first 2, ECN 1 2 3 */
    CHECK_EQ_INT(decode_hex("3f 01 0a 00 00 02 01 02 03", b, sizeof b, &f), 0);
    CHECK(f.type == IR_FT_PATH_ACK_ECN && f.u.ack.path_id == 1 && f.u.ack.largest == 10 &&
          f.u.ack.smallest == 8 && f.u.ack.ecn.ect0 == 1 && f.u.ack.ecn.ect1 == 2 &&
          f.u.ack.ecn.ce == 3);
    /* path ids are 32-bit: 2^32 is refused, 2^32-1 accepted */
    CHECK_EQ_INT(decode_hex("7e75 c000000100000000 00", b, sizeof b, &f),
                 -IR_QERR_PROTOCOL_VIOLATION);
    CHECK(f.type == IR_FT_PATH_ABANDON);
    CHECK_EQ_INT(decode_hex("7e75 c0000000ffffffff 00", b, sizeof b, &f), 0);
    CHECK(f.u.path_abandon.path_id == 0xffffffffu);
    CHECK_EQ_INT(decode_hex("7e7a c000000100000000", b, sizeof b, &f),
                 -IR_QERR_PROTOCOL_VIOLATION);
    CHECK_EQ_INT(decode_hex("3e c000000100000000 00 00 00 00", b, sizeof b, &f),
                 -IR_QERR_PROTOCOL_VIOLATION);
    f.type = IR_FT_MAX_PATH_ID;
    f.u.limit = UINT64_C(0x100000000);
    CHECK_EQ_INT(ir_frame_encode(out, sizeof out, &f), 0);
}

TEST(ack_ranges)
{
    /* largest 100, delay 5, 2 more ranges, first range 3 -> [97,100];
     * gap 1 len 2 -> [92,94]; gap 0 len 0 -> [90,90] */
    unsigned char b[64], out[64];
    ir_frame f;
    CHECK_EQ_INT(decode_hex("02 4064 05 02 03 01 02 00 00", b, sizeof b, &f), 0);
    CHECK(f.type == IR_FT_ACK && f.u.ack.largest == 100 && f.u.ack.ack_delay == 5);
    CHECK(f.u.ack.range_count == 2 && f.u.ack.first_range == 3 && f.u.ack.smallest == 90);
    CHECK_EQ_INT(f.u.ack.ranges_len, 4);
    ir_ack_iter it;
    uint64_t lo, hi;
    static const uint64_t want[3][2] = {{97, 100}, {92, 94}, {90, 90}};
    ir_ack_iter_init(&it, &f.u.ack);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(ir_ack_iter_next(&it, &lo, &hi), 1);
        CHECK(lo == want[i][0] && hi == want[i][1]);
    }
    CHECK_EQ_INT(ir_ack_iter_next(&it, &lo, &hi), 0);
    CHECK_EQ_INT(ir_frame_encode(out, sizeof out, &f), 10);
    CHECK_MEM(out, b, 10);

    /* the same from ranges */
    ir_ack_range r[3] = {{97, 100}, {92, 94}, {90, 90}};
    size_t k;
    CHECK_EQ_INT(ir_ack_encode(out, sizeof out, 0, 0, r, 3, 5, NULL, &k), 10);
    CHECK_EQ_INT(k, 3);
    CHECK_MEM(out, b, 10);
    /* short of room: fewer ranges, never a broken frame */
    CHECK_EQ_INT(ir_ack_encode(out, 9, 0, 0, r, 3, 5, NULL, &k), 8);
    CHECK_EQ_INT(k, 2);
    CHECK_EQ_INT(decode_hex("02 4064 05 01 03 01 02", b, sizeof b, &f), 0);
    CHECK_MEM(out, b, 8);
    CHECK_EQ_INT(ir_ack_encode(out, 6, 0, 0, r, 3, 5, NULL, &k), 6);
    CHECK_EQ_INT(k, 1);
    CHECK_EQ_INT(ir_ack_encode(out, 5, 0, 0, r, 3, 5, NULL, &k), 0);
    CHECK_EQ_INT(k, 0);
    /* ECN and PATH_ACK forms */
    ir_ack_ecn ecn = {1, 0, 300};
    size_t n = ir_ack_encode(out, sizeof out, 0, 0, r, 3, 5, &ecn, &k);
    CHECK_EQ_INT(n, 14);
    CHECK_EQ_INT(decode_hex("03 4064 05 02 03 01 02 00 00 01 00 412c", b, sizeof b, &f), 0);
    CHECK_MEM(out, b, 14);
    n = ir_ack_encode(out, sizeof out, 1, 4, r, 3, 5, NULL, &k);
    CHECK_EQ_INT(n, 11);
    CHECK_EQ_INT(decode_hex("3e 04 4064 05 02 03 01 02 00 00", b, sizeof b, &f), 0);
    CHECK_MEM(out, b, 11);
    /* invalid range lists */
    ir_ack_range adj[2] = {{97, 100}, {90, 96}};  /* adjacent: no gap */
    ir_ack_range ovl[2] = {{97, 100}, {90, 98}};  /* overlapping */
    ir_ack_range inv[1] = {{5, 4}};               /* smallest > largest */
    ir_ack_range asc[2] = {{1, 1}, {5, 6}};       /* ascending */
    CHECK_EQ_INT(ir_ack_encode(out, sizeof out, 0, 0, adj, 2, 0, NULL, NULL), 0);
    CHECK_EQ_INT(ir_ack_encode(out, sizeof out, 0, 0, ovl, 2, 0, NULL, NULL), 0);
    CHECK_EQ_INT(ir_ack_encode(out, sizeof out, 0, 0, inv, 1, 0, NULL, NULL), 0);
    CHECK_EQ_INT(ir_ack_encode(out, sizeof out, 0, 0, asc, 2, 0, NULL, NULL), 0);
    CHECK_EQ_INT(ir_ack_encode(out, sizeof out, 0, 0, r, 0, 0, NULL, NULL), 0);
    /* packet 0 alone, and a range reaching 0 after a gap */
    ir_ack_range z[2] = {{5, 9}, {0, 2}};
    n = ir_ack_encode(out, sizeof out, 0, 0, z, 2, 0, NULL, &k);
    CHECK(n > 0 && k == 2);
    ir_cursor c;
    ir_cursor_init(&c, out, n);
    CHECK_EQ_INT(ir_frame_decode(&c, &f), 0);
    CHECK(f.u.ack.smallest == 0);

    /* decode-side arithmetic: every way below 0 is refused */
    CHECK_EQ_INT(decode_hex("02 05 00 00 06", b, sizeof b, &f), -IR_QERR_FRAME_ENCODING_ERROR);
    CHECK_EQ_INT(decode_hex("02 05 00 00 05", b, sizeof b, &f), 0); /* down to 0 */
    CHECK_EQ_INT(decode_hex("02 05 00 01 03 00 00", b, sizeof b, &f), 0); /* [2,5], [0,0] */
    CHECK(f.u.ack.smallest == 0);
    CHECK_EQ_INT(decode_hex("02 05 00 01 03 01 00", b, sizeof b, &f),
                 -IR_QERR_FRAME_ENCODING_ERROR); /* gap reaches -1 */
    CHECK_EQ_INT(decode_hex("02 05 00 01 03 00 01", b, sizeof b, &f),
                 -IR_QERR_FRAME_ENCODING_ERROR); /* range reaches -1 */
    CHECK_EQ_INT(decode_hex("02 05 00 01 04 00 00", b, sizeof b, &f),
                 -IR_QERR_FRAME_ENCODING_ERROR); /* [1,5] then gap below 0 */
    /* a huge range count with few bytes fails fast */
    CHECK_EQ_INT(decode_hex("02 05 00 bfffffff 00 00 00", b, sizeof b, &f),
                 -IR_QERR_FRAME_ENCODING_ERROR);
    /* the iterator on a hand-made (undecoded) ACK that goes below 0 */
    ir_frame_ack bad = {0};
    static const uint8_t badr[] = {0x05, 0x00};
    bad.largest = 3;
    bad.first_range = 0;
    bad.range_count = 1;
    bad.ranges = badr;
    bad.ranges_len = 2;
    ir_ack_iter_init(&it, &bad);
    CHECK_EQ_INT(ir_ack_iter_next(&it, &lo, &hi), 1);
    CHECK_EQ_INT(ir_ack_iter_next(&it, &lo, &hi), -1);
    CHECK_EQ_INT(ir_ack_iter_next(&it, &lo, &hi), 0);
    f.type = IR_FT_ACK;
    f.u.ack = bad;
    CHECK_EQ_INT(ir_frame_encode(out, sizeof out, &f), 0);
}

/* ---- round trip of every frame type ---------------------------------------------------- */

static const uint8_t DATA[] = "hello, quic";
static const uint8_t CID[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
static const uint8_t TOKEN[16] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
                                  0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};
static const uint8_t RANGES[] = {0x01, 0x02, 0x40, 0x00, 0x03};

static size_t make_samples(ir_frame *s, size_t cap)
{
    size_t n = 0;
#define ADD(t) (memset(&s[n], 0, sizeof s[n]), s[n].type = (t), &s[n++])
    ir_frame *f;
    f = ADD(IR_FT_PADDING);
    f->u.padding_len = 1;
    f = ADD(IR_FT_PADDING);
    f->u.padding_len = 7;
    ADD(IR_FT_PING);
    f = ADD(IR_FT_ACK);
    f->u.ack.largest = 1000;
    f->u.ack.ack_delay = 12;
    f->u.ack.first_range = 4;
    f->u.ack.range_count = 2;
    f->u.ack.ranges = RANGES;
    f->u.ack.ranges_len = sizeof RANGES;
    f = ADD(IR_FT_ACK_ECN);
    f->u.ack.largest = 0;
    f->u.ack.ecn.ect0 = 5;
    f->u.ack.ecn.ect1 = 6;
    f->u.ack.ecn.ce = IR_VARINT_MAX;
    f = ADD(IR_FT_RESET_STREAM);
    f->u.reset_stream.stream_id = 4;
    f->u.reset_stream.error_code = 0x1234;
    f->u.reset_stream.final_size = 1u << 20;
    f = ADD(IR_FT_STOP_SENDING);
    f->u.stop_sending.stream_id = 8;
    f->u.stop_sending.error_code = 77;
    f = ADD(IR_FT_CRYPTO);
    f->u.crypto.offset = 300;
    f->u.crypto.data = DATA;
    f->u.crypto.len = 11;
    f = ADD(IR_FT_CRYPTO);
    f->u.crypto.offset = 0;
    f->u.crypto.len = 0;
    f = ADD(IR_FT_NEW_TOKEN);
    f->u.new_token.token = DATA;
    f->u.new_token.len = 5;
    for (uint64_t t = 0x08; t <= 0x0f; t++) {
        f = ADD(t);
        f->u.stream.stream_id = 3;
        f->u.stream.offset = (t & IR_FT_STREAM_OFF) ? 70000 : 0;
        f->u.stream.data = DATA;
        f->u.stream.len = (t & 1) ? 0 : 11;
    }
    f = ADD(IR_FT_STREAM | IR_FT_STREAM_OFF | IR_FT_STREAM_LEN);
    f->u.stream.offset = IR_VARINT_MAX - 11;
    f->u.stream.data = DATA;
    f->u.stream.len = 11;
    f = ADD(IR_FT_MAX_DATA);
    f->u.limit = IR_VARINT_MAX;
    f = ADD(IR_FT_MAX_STREAM_DATA);
    f->u.stream_limit.stream_id = 2;
    f->u.stream_limit.limit = 1250000;
    f = ADD(IR_FT_MAX_STREAMS_BIDI);
    f->u.limit = IR_MAX_STREAMS_LIMIT;
    f = ADD(IR_FT_MAX_STREAMS_UNI);
    f->u.limit = 100;
    f = ADD(IR_FT_DATA_BLOCKED);
    f->u.limit = 65536;
    f = ADD(IR_FT_STREAM_DATA_BLOCKED);
    f->u.stream_limit.stream_id = 6;
    f->u.stream_limit.limit = 16383;
    f = ADD(IR_FT_STREAMS_BLOCKED_BIDI);
    f->u.limit = 16384;
    f = ADD(IR_FT_STREAMS_BLOCKED_UNI);
    f->u.limit = IR_MAX_STREAMS_LIMIT;
    f = ADD(IR_FT_NEW_CONNECTION_ID);
    f->u.new_cid.seq = 3;
    f->u.new_cid.retire_prior_to = 3;
    f->u.new_cid.cid = CID;
    f->u.new_cid.cid_len = 20;
    f->u.new_cid.reset_token = TOKEN;
    f = ADD(IR_FT_NEW_CONNECTION_ID);
    f->u.new_cid.seq = 1;
    f->u.new_cid.cid = CID;
    f->u.new_cid.cid_len = 1;
    f->u.new_cid.reset_token = TOKEN;
    f = ADD(IR_FT_RETIRE_CONNECTION_ID);
    f->u.retire_cid.seq = 2;
    f = ADD(IR_FT_PATH_CHALLENGE);
    memcpy(f->u.path_data, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    f = ADD(IR_FT_PATH_RESPONSE);
    memcpy(f->u.path_data, "abcdefgh", 8);
    f = ADD(IR_FT_CONNECTION_CLOSE);
    f->u.close.error_code = 0x178;
    f->u.close.frame_type = IR_FT_CRYPTO;
    f->u.close.reason = DATA;
    f->u.close.reason_len = 5;
    f = ADD(IR_FT_APPLICATION_CLOSE);
    f->u.close.error_code = 0;
    f = ADD(IR_FT_HANDSHAKE_DONE);
    ADD(IR_FT_IMMEDIATE_ACK);
    f = ADD(IR_FT_DATAGRAM);
    f->u.datagram.data = DATA;
    f->u.datagram.len = 11;
    f = ADD(IR_FT_DATAGRAM_LEN);
    f->u.datagram.data = DATA;
    f->u.datagram.len = 3;
    f = ADD(IR_FT_DATAGRAM_LEN);
    f->u.datagram.len = 0;
    f = ADD(IR_FT_ACK_FREQUENCY);
    f->u.ack_frequency.seq = 1;
    f->u.ack_frequency.ack_eliciting_threshold = 10;
    f->u.ack_frequency.request_max_ack_delay = 25000;
    f->u.ack_frequency.reordering_threshold = 3;
    f = ADD(IR_FT_PATH_ACK);
    f->u.ack.path_id = 7;
    f->u.ack.largest = 1000;
    f->u.ack.first_range = 4;
    f->u.ack.range_count = 2;
    f->u.ack.ranges = RANGES;
    f->u.ack.ranges_len = sizeof RANGES;
    f = ADD(IR_FT_PATH_ACK_ECN);
    f->u.ack.path_id = IR_MAX_PATH_ID;
    f->u.ack.largest = 9;
    f->u.ack.first_range = 9;
    f->u.ack.ecn.ce = 1;
    f = ADD(IR_FT_PATH_ABANDON);
    f->u.path_abandon.path_id = 2;
    f->u.path_abandon.error_code = 0x3e76;
    f = ADD(IR_FT_PATH_STATUS_BACKUP);
    f->u.path_status.path_id = 1;
    f->u.path_status.seq = 0;
    f = ADD(IR_FT_PATH_STATUS_AVAILABLE);
    f->u.path_status.path_id = 1;
    f->u.path_status.seq = 1;
    f = ADD(IR_FT_PATH_NEW_CONNECTION_ID);
    f->u.new_cid.path_id = 5;
    f->u.new_cid.seq = 10;
    f->u.new_cid.retire_prior_to = 2;
    f->u.new_cid.cid = CID;
    f->u.new_cid.cid_len = 8;
    f->u.new_cid.reset_token = TOKEN;
    f = ADD(IR_FT_PATH_RETIRE_CONNECTION_ID);
    f->u.retire_cid.path_id = 5;
    f->u.retire_cid.seq = 9;
    f = ADD(IR_FT_MAX_PATH_ID);
    f->u.limit = 8;
    f = ADD(IR_FT_PATHS_BLOCKED);
    f->u.limit = IR_MAX_PATH_ID;
    f = ADD(IR_FT_PATH_CIDS_BLOCKED);
    f->u.path_cids_blocked.path_id = 3;
    f->u.path_cids_blocked.next_seq = 4;
    f = ADD(IR_FT_ADD_ADDRESS_V4);
    f->u.addr.seq = 1;
    memcpy(f->u.addr.ip, "\x0a\x00\x00\x01", 4);
    f->u.addr.port = 65535;
    f = ADD(IR_FT_ADD_ADDRESS_V6);
    f->u.addr.seq = 2;
    memcpy(f->u.addr.ip, CID, 16);
    f->u.addr.port = 1;
    f = ADD(IR_FT_REACH_OUT_V4);
    f->u.addr.seq = 1;
    memcpy(f->u.addr.ip, "\xc0\xa8\x01\x02", 4);
    f->u.addr.port = 4433;
    f = ADD(IR_FT_REACH_OUT_V6);
    f->u.addr.seq = 3;
    memcpy(f->u.addr.ip, TOKEN, 16);
    f->u.addr.port = 0;
    f = ADD(IR_FT_REMOVE_ADDRESS);
    f->u.remove_seq = 4;
    f = ADD(IR_FT_OBSERVED_ADDRESS_V4);
    f->u.addr.seq = 0;
    memcpy(f->u.addr.ip, "\x01\x02\x03\x04", 4);
    f->u.addr.port = 5;
    f = ADD(IR_FT_OBSERVED_ADDRESS_V6);
    f->u.addr.seq = 1;
    memcpy(f->u.addr.ip, CID + 4, 16);
    f->u.addr.port = 6;
#undef ADD
    if (n > cap)
        abort();
    return n;
}

TEST(round_trip_every_type)
{
    ir_frame s[96];
    size_t n = make_samples(s, sizeof s / sizeof s[0]);
    unsigned seen_types = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t buf[256];
        size_t len = ir_frame_encode(buf, sizeof buf, &s[i]);
        CHECK(len > 0);
        if (len == 0) {
            fprintf(stderr, "  sample %zu (%s) did not encode\n", i,
                    ir_frame_type_name(s[i].type));
            continue;
        }
        CHECK(ir_frame_info(s[i].type) != 0);
        /* decode from an exactly sized heap copy, so ASan sees any overread */
        uint8_t *exact = malloc(len);
        memcpy(exact, buf, len);
        ir_cursor c;
        ir_frame d;
        ir_cursor_init(&c, exact, len);
        int rc = ir_frame_decode(&c, &d);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(c.pos, len);
        CHECK(frame_eq(&s[i], &d, 0));
        if (rc != 0 || !frame_eq(&s[i], &d, 0))
            fprintf(stderr, "  sample %zu (%s) differs\n", i, ir_frame_type_name(s[i].type));
        /* re-encoding the decoded frame gives the same bytes */
        uint8_t again[256];
        CHECK_EQ_INT(ir_frame_encode(again, sizeof again, &d), len);
        CHECK_MEM(again, buf, len);

        /* every smaller capacity refuses to encode (no partial frames) */
        for (size_t cap = 0; cap < len; cap++)
            CHECK_EQ_INT(ir_frame_encode(cap ? again : NULL, cap, &s[i]), 0);

        /* truncation at every offset fails cleanly, except for frames that run to the end
         * of the packet, which may decode to a shorter frame */
        for (size_t k = 0; k < len; k++) {
            uint8_t *t = malloc(k ? k : 1);
            memcpy(t, buf, k);
            ir_cursor_init(&c, k ? t : NULL, k);
            rc = ir_frame_decode(&c, &d);
            if (runs_to_end(s[i].type) && k > 0) {
                if (rc == 0)
                    CHECK_EQ_INT(c.pos, k);
                else
                    CHECK_EQ_INT(c.pos, 0);
            } else {
                CHECK_EQ_INT(rc, -IR_QERR_FRAME_ENCODING_ERROR);
                CHECK_EQ_INT(c.pos, 0);
            }
            free(t);
        }
        free(exact);
        if (s[i].type < 32)
            seen_types |= 1u << s[i].type;
    }
    CHECK(seen_types == 0xffffffffu); /* 0x00..0x1f all covered */

    /* all samples back to back in one packet: the decoder walks them in order (frames that
     * run to the end go last) */
    uint8_t pkt[4096];
    size_t pos = 0, order[96], m = 0;
    for (size_t i = 0; i < n; i++)
        if (!runs_to_end(s[i].type) || s[i].type == IR_FT_PADDING)
            order[m++] = i;
    /* consecutive PADDING frames would merge: keep only one of them */
    size_t nm = 0;
    for (size_t i = 0; i < m; i++)
        if (!(s[order[i]].type == IR_FT_PADDING && nm > 0 &&
              s[order[nm - 1]].type == IR_FT_PADDING))
            order[nm++] = order[i];
    m = nm;
    for (size_t i = 0; i < n; i++)
        if (s[i].type == 0x08) {
            order[m++] = i; /* a STREAM frame without LEN last */
            break;
        }
    for (size_t i = 0; i < m; i++) {
        size_t w = ir_frame_encode(pkt + pos, sizeof pkt - pos, &s[order[i]]);
        CHECK(w > 0);
        pos += w;
    }
    ir_cursor c;
    ir_cursor_init(&c, pkt, pos);
    for (size_t i = 0; i < m; i++) {
        ir_frame d;
        CHECK_EQ_INT(ir_frame_decode(&c, &d), 0);
        CHECK(frame_eq(&s[order[i]], &d, 0));
    }
    CHECK_EQ_INT(ir_cursor_left(&c), 0);
}

TEST(invalid_values)
{
    unsigned char b[128];
    ir_frame f;
    const int FEE = -IR_QERR_FRAME_ENCODING_ERROR, PV = -IR_QERR_PROTOCOL_VIOLATION;
    /* unknown types; non-minimal frame types */
    CHECK_EQ_INT(decode_hex("21", b, sizeof b, &f), FEE);
    CHECK(f.type == 0x21);
    CHECK_EQ_INT(decode_hex("4021", b, sizeof b, &f), FEE);
    CHECK_EQ_INT(decode_hex("bf000000", b, sizeof b, &f), FEE);
    CHECK_EQ_INT(decode_hex("4001", b, sizeof b, &f), PV); /* PING in two bytes */
    CHECK(f.type == IR_FT_PING);
    CHECK_EQ_INT(decode_hex("80000001", b, sizeof b, &f), PV);
    CHECK_EQ_INT(decode_hex("c0003d7f94 00", b, sizeof b, &f), FEE); /* truncated type */
    CHECK_EQ_INT(decode_hex("c0000000003d7f94 00", b, sizeof b, &f), PV);
    CHECK_EQ_INT(decode_hex("40", b, sizeof b, &f), FEE); /* truncated type */
    CHECK(f.type == 0);
    /* stream offset + length beyond 2^62-1 */
    CHECK_EQ_INT(decode_hex("0e 00 ffffffffffffffff 01 78", b, sizeof b, &f), FEE);
    CHECK_EQ_INT(decode_hex("0e 00 fffffffffffffffe 01 78", b, sizeof b, &f), 0);
    CHECK_EQ_INT(decode_hex("0c 00 ffffffffffffffff 78", b, sizeof b, &f), FEE);
    CHECK_EQ_INT(decode_hex("0d 00 ffffffffffffffff", b, sizeof b, &f), 0); /* FIN at max */
    CHECK_EQ_INT(decode_hex("0a 00 05 78", b, sizeof b, &f), FEE); /* length past the end */
    CHECK_EQ_INT(decode_hex("06 ffffffffffffffff 01 78", b, sizeof b, &f), FEE);
    CHECK_EQ_INT(decode_hex("06 ffffffffffffffff 00", b, sizeof b, &f), 0);
    CHECK_EQ_INT(decode_hex("06 00 02 78", b, sizeof b, &f), FEE);
    /* empty NEW_TOKEN */
    CHECK_EQ_INT(decode_hex("07 00", b, sizeof b, &f), FEE);
    /* MAX_STREAMS / STREAMS_BLOCKED above 2^60 */
    CHECK_EQ_INT(decode_hex("12 d000000000000000", b, sizeof b, &f), 0);
    CHECK_EQ_INT(decode_hex("12 d000000000000001", b, sizeof b, &f), FEE);
    CHECK_EQ_INT(decode_hex("13 d000000000000001", b, sizeof b, &f), FEE);
    CHECK_EQ_INT(decode_hex("16 d000000000000001", b, sizeof b, &f), FEE);
    CHECK_EQ_INT(decode_hex("17 ffffffffffffffff", b, sizeof b, &f), FEE);
    /* NEW_CONNECTION_ID: CID length 0 and 21, retire_prior_to > seq */
    CHECK_EQ_INT(decode_hex("18 01 00 00 00112233445566778899aabbccddeeff", b, sizeof b, &f),
                 FEE);
    CHECK_EQ_INT(decode_hex("18 01 00 15 000102030405060708090a0b0c0d0e0f1011121314 "
                            "00112233445566778899aabbccddeeff",
                            b, sizeof b, &f),
                 FEE);
    CHECK_EQ_INT(decode_hex("18 01 00 14 000102030405060708090a0b0c0d0e0f10111213 "
                            "00112233445566778899aabbccddeeff",
                            b, sizeof b, &f),
                 0);
    CHECK_EQ_INT(decode_hex("18 01 02 01 aa 00112233445566778899aabbccddeeff", b, sizeof b, &f),
                 FEE);
    CHECK_EQ_INT(decode_hex("18 02 02 01 aa 00112233445566778899aabbccddeeff", b, sizeof b, &f),
                 0);
    CHECK_EQ_INT(decode_hex("7e78 00 01 02 01 aa 00112233445566778899aabbccddeeff", b, sizeof b,
                            &f),
                 FEE);
    CHECK_EQ_INT(decode_hex("7e78 00 01 00 00 00112233445566778899aabbccddeeff", b, sizeof b, &f),
                 FEE);
    CHECK_EQ_INT(decode_hex("18 02 02 01 aa 00112233445566778899aabbccddee", b, sizeof b, &f),
                 FEE); /* short token */
    /* CONNECTION_CLOSE reason past the end */
    CHECK_EQ_INT(decode_hex("1c 0a 00 05 6f6f6f6f", b, sizeof b, &f), FEE);
    CHECK_EQ_INT(decode_hex("1c 0a 00 04 6f6f6f6f", b, sizeof b, &f), 0);
    CHECK(f.u.close.reason_len == 4 && f.u.close.reason == b + 4);
    CHECK_EQ_INT(decode_hex("1d 0a 05 6f6f6f6f", b, sizeof b, &f), FEE);
    CHECK_EQ_INT(decode_hex("1d 0a 04 6f6f6f6f", b, sizeof b, &f), 0);
    CHECK(f.u.close.frame_type == 0);
    /* DATAGRAM length past the end; empty datagrams are fine */
    CHECK_EQ_INT(decode_hex("31 03 6f6f", b, sizeof b, &f), FEE);
    CHECK_EQ_INT(decode_hex("31 00", b, sizeof b, &f), 0);
    CHECK_EQ_INT(decode_hex("30", b, sizeof b, &f), 0);
    CHECK_EQ_INT(f.u.datagram.len, 0);
    /* PATH_CHALLENGE short */
    CHECK_EQ_INT(decode_hex("1a 01020304050607", b, sizeof b, &f), FEE);
    /* a failed decode leaves the cursor in place, mid-packet too */
    int n = t_unhex("01 1c 0a", b, sizeof b);
    ir_cursor c;
    ir_cursor_init(&c, b, (size_t)n);
    CHECK_EQ_INT(ir_frame_decode(&c, &f), 0);
    CHECK_EQ_INT(ir_frame_decode(&c, &f), FEE);
    CHECK_EQ_INT(c.pos, 1);
    CHECK(f.type == IR_FT_CONNECTION_CLOSE);
    /* PADDING runs merge into one frame */
    n = t_unhex("00 00 00 01 00", b, sizeof b);
    ir_cursor_init(&c, b, (size_t)n);
    CHECK_EQ_INT(ir_frame_decode(&c, &f), 0);
    CHECK(f.type == IR_FT_PADDING && f.u.padding_len == 3);
    CHECK_EQ_INT(ir_frame_decode(&c, &f), 0);
    CHECK(f.type == IR_FT_PING);
    CHECK_EQ_INT(ir_frame_decode(&c, &f), 0);
    CHECK(f.type == IR_FT_PADDING && f.u.padding_len == 1);

    /* the encoder refuses what the decoder would */
    uint8_t out[64];
    memset(&f, 0, sizeof f);
    f.type = IR_FT_NEW_TOKEN;
    CHECK_EQ_INT(ir_frame_encode(out, sizeof out, &f), 0);
    f.type = IR_FT_MAX_STREAMS_BIDI;
    f.u.limit = IR_MAX_STREAMS_LIMIT + 1;
    CHECK_EQ_INT(ir_frame_encode(out, sizeof out, &f), 0);
    f.type = IR_FT_MAX_DATA;
    f.u.limit = IR_VARINT_MAX + 1;
    CHECK_EQ_INT(ir_frame_encode(out, sizeof out, &f), 0);
    f.type = 0x08; /* no OFF bit but an offset */
    f.u.stream.offset = 1;
    CHECK_EQ_INT(ir_frame_encode(out, sizeof out, &f), 0);
    memset(&f, 0, sizeof f);
    f.type = IR_FT_NEW_CONNECTION_ID;
    f.u.new_cid.cid = CID;
    f.u.new_cid.reset_token = TOKEN;
    f.u.new_cid.cid_len = 21;
    CHECK_EQ_INT(ir_frame_encode(out, sizeof out, &f), 0);
    f.u.new_cid.cid_len = 4;
    f.u.new_cid.retire_prior_to = 1;
    CHECK_EQ_INT(ir_frame_encode(out, sizeof out, &f), 0);
    f.u.new_cid.seq = 1;
    CHECK_EQ_INT(ir_frame_encode(out, sizeof out, &f), 1 + 1 + 1 + 1 + 4 + 16);
    f.type = 0x21;
    CHECK_EQ_INT(ir_frame_encode(out, sizeof out, &f), 0);
    memset(&f, 0, sizeof f);
    f.type = IR_FT_PADDING;
    CHECK_EQ_INT(ir_frame_encode(out, sizeof out, &f), 0);
}

TEST(frame_table)
{
    static const uint64_t all[] = {
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
        0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
        0x1c, 0x1d, 0x1e, 0x1f, 0x30, 0x31, 0xaf, 0x3e, 0x3f, 0x3e75, 0x3e76, 0x3e77, 0x3e78,
        0x3e79, 0x3e7a, 0x3e7b, 0x3e7c, 0x3d7f90, 0x3d7f91, 0x3d7f92, 0x3d7f93, 0x3d7f94,
        0x9f81a6, 0x9f81a7};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        uint64_t t = all[i];
        unsigned info = ir_frame_info(t);
        CHECK(info != 0);
        CHECK(strcmp(ir_frame_type_name(t), "UNKNOWN") != 0);
        /* everything is allowed in 1-RTT */
        CHECK(ir_frame_allowed_in(t, IR_PKT_1RTT));
        /* Initial / Handshake: PADDING, PING, ACK, CRYPTO, CONNECTION_CLOSE 0x1c only */
        int ih = t <= 0x03 || t == 0x06 || t == 0x1c;
        CHECK_EQ_INT(ir_frame_allowed_in(t, IR_PKT_INITIAL), ih);
        CHECK_EQ_INT(ir_frame_allowed_in(t, IR_PKT_HANDSHAKE), ih);
        /* 0-RTT: not ACK, CRYPTO, HANDSHAKE_DONE, NEW_TOKEN, PATH_RESPONSE,
         * RETIRE_CONNECTION_ID, nor any multipath / NAT-traversal frame */
        int mp_or_nat = (t >= 0x3e && t <= 0x3f) || (t >= 0x3e75 && t <= 0x3e7c) ||
                        (t >= 0x3d7f90 && t <= 0x3d7f94);
        int zero = !(t == 0x02 || t == 0x03 || t == 0x06 || t == 0x1e || t == 0x07 ||
                     t == 0x1b || t == 0x19 || mp_or_nat);
        CHECK_EQ_INT(ir_frame_allowed_in(t, IR_PKT_0RTT), zero);
        if (ir_frame_allowed_in(t, IR_PKT_0RTT) != zero)
            fprintf(stderr, "  0-RTT mismatch for %s\n", ir_frame_type_name(t));
        /* ack-eliciting: all but ACK, PATH_ACK, PADDING, CONNECTION_CLOSE */
        int ae = !(t == 0x00 || t == 0x02 || t == 0x03 || t == 0x3e || t == 0x3f ||
                   t == 0x1c || t == 0x1d);
        CHECK_EQ_INT(ir_frame_is_ack_eliciting(t), ae);
        CHECK_EQ_INT(ir_frame_is_in_flight(t), ae || t == 0x00);
        CHECK_EQ_INT((info & IR_FRAME_NEEDS_MULTIPATH) != 0,
                     (t >= 0x3e && t <= 0x3f) || (t >= 0x3e75 && t <= 0x3e7c));
        CHECK_EQ_INT((info & IR_FRAME_NEEDS_NAT_TRAVERSAL) != 0, t >= 0x3d7f90 && t <= 0x3d7f94);
        CHECK_EQ_INT((info & IR_FRAME_FLOW_CONTROLLED) != 0, t >= 0x08 && t <= 0x0f);
    }
    CHECK(ir_frame_info(IR_FT_PATH_CHALLENGE) & IR_FRAME_PROBING);
    CHECK(ir_frame_info(IR_FT_PATH_RESPONSE) & IR_FRAME_PROBING);
    CHECK(ir_frame_info(IR_FT_NEW_CONNECTION_ID) & IR_FRAME_PROBING);
    CHECK(ir_frame_info(IR_FT_PADDING) & IR_FRAME_PROBING);
    CHECK(!(ir_frame_info(IR_FT_PING) & IR_FRAME_PROBING));
    CHECK(ir_frame_info(IR_FT_DATAGRAM_LEN) & IR_FRAME_NEEDS_DATAGRAM);
    CHECK(ir_frame_info(IR_FT_IMMEDIATE_ACK) & IR_FRAME_NEEDS_ACK_FREQUENCY);
    CHECK_EQ_INT(ir_frame_info(0x20), 0);
    CHECK_EQ_INT(ir_frame_info(0x3e74), 0);
    CHECK_STR(ir_frame_type_name(0x20), "UNKNOWN");
    CHECK_STR(ir_frame_type_name(0x0d), "STREAM");
}

TEST(fit_helpers)
{
    static const uint64_t ids[] = {0, 63, 64, 16384, UINT64_C(1) << 40};
    static const uint64_t offs[] = {0, 1, 63, 64, 16383, 16384, 1u << 30,
                                    IR_VARINT_MAX - 100, IR_VARINT_MAX};
    static uint8_t data[20000], buf[20000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)i;
    for (size_t a = 0; a < sizeof ids / sizeof ids[0]; a++)
        for (size_t b = 0; b < sizeof offs / sizeof offs[0]; b++)
            for (int with_len = 0; with_len < 2; with_len++)
                for (size_t cap = 0; cap < 16420; cap += (cap < 80 ? 1 : cap < 16300 ? 97 : 1)) {
                    size_t avail = cap < 300 ? 150 : 20000, n;
                    int rc = ir_stream_frame_fit(cap, ids[a], offs[b], avail, with_len, &n);
                    size_t hdr0 = ir_stream_frame_overhead(ids[a], offs[b], 0, with_len);
                    if (rc < 0) {
                        CHECK(cap < hdr0);
                        continue;
                    }
                    CHECK(n <= avail);
                    CHECK(n <= IR_VARINT_MAX - offs[b]);
                    ir_frame f;
                    memset(&f, 0, sizeof f);
                    f.type = ir_stream_frame_type(offs[b] != 0, with_len, 0);
                    f.u.stream.stream_id = ids[a];
                    f.u.stream.offset = offs[b];
                    f.u.stream.data = data;
                    f.u.stream.len = n;
                    size_t w = ir_frame_encode(buf, cap, &f);
                    CHECK(w > 0 && w <= cap);
                    CHECK_EQ_INT(w, ir_stream_frame_overhead(ids[a], offs[b], n, with_len) + n);
                    /* maximal: one more byte would not fit (or none is left to send) */
                    if (n < avail && n < IR_VARINT_MAX - offs[b]) {
                        f.u.stream.len = n + 1;
                        CHECK_EQ_INT(ir_frame_encode(buf, cap, &f), 0);
                        if (!with_len)
                            CHECK_EQ_INT(w, cap); /* without LEN it fills cap exactly */
                    }
                }
    /* CRYPTO */
    for (size_t b = 0; b < 7; b++)
        for (size_t cap = 0; cap < 17000; cap += (cap < 80 ? 1 : cap < 16300 ? 89 : 1)) {
            size_t n;
            int rc = ir_crypto_frame_fit(cap, offs[b], 20000, &n);
            if (rc < 0) {
                CHECK(cap < ir_crypto_frame_overhead(offs[b], 0));
                continue;
            }
            ir_frame f;
            memset(&f, 0, sizeof f);
            f.type = IR_FT_CRYPTO;
            f.u.crypto.offset = offs[b];
            f.u.crypto.data = data;
            f.u.crypto.len = n;
            size_t w = ir_frame_encode(buf, cap, &f);
            CHECK(w > 0 && w <= cap);
            CHECK_EQ_INT(w, ir_crypto_frame_overhead(offs[b], n) + n);
            f.u.crypto.len = n + 1;
            CHECK_EQ_INT(ir_frame_encode(buf, cap, &f), 0);
        }
    /* DATAGRAM */
    for (int with_len = 0; with_len < 2; with_len++)
        for (size_t cap = 0; cap < 17000; cap += (cap < 80 ? 1 : cap < 16300 ? 89 : 1)) {
            size_t n;
            int rc = ir_datagram_frame_fit(cap, with_len, &n);
            if (rc < 0) {
                CHECK(cap < (with_len ? 2u : 1u));
                continue;
            }
            ir_frame f;
            memset(&f, 0, sizeof f);
            f.type = with_len ? IR_FT_DATAGRAM_LEN : IR_FT_DATAGRAM;
            f.u.datagram.data = data;
            f.u.datagram.len = n;
            size_t w = ir_frame_encode(buf, cap, &f);
            CHECK(w > 0 && w <= cap);
            CHECK_EQ_INT(w, ir_datagram_frame_size(n, with_len));
            f.u.datagram.len = n + 1;
            CHECK_EQ_INT(ir_frame_encode(buf, cap, &f), 0);
        }
    /* examples */
    size_t n;
    CHECK_EQ_INT(ir_stream_frame_fit(1200, 0, 0, 5000, 0, &n), 0);
    CHECK_EQ_INT(n, 1198);
    CHECK_EQ_INT(ir_stream_frame_fit(1200, 0, 0, 5000, 1, &n), 0);
    CHECK_EQ_INT(n, 1196);
    CHECK_EQ_INT(ir_stream_frame_fit(3, 0, 0, 5000, 1, &n), 0);
    CHECK_EQ_INT(n, 0); /* type, id, length 0: a bare FIN fits */
    CHECK_EQ_INT(ir_stream_frame_fit(1, 0, 0, 5000, 1, &n), -1);
    CHECK_EQ_INT(ir_stream_frame_fit(66, 0, 0, 5000, 1, &n), 0);
    CHECK_EQ_INT(n, 63); /* 1 + 1 + 1 + 63: a one-byte length is best */
    CHECK_EQ_INT(ir_stream_frame_fit(67, 0, 0, 5000, 1, &n), 0);
    CHECK_EQ_INT(n, 63); /* 64 would need a two-byte length: 1+1+2+64 = 68 */
    CHECK_EQ_INT(ir_stream_frame_fit(68, 0, 0, 5000, 1, &n), 0);
    CHECK_EQ_INT(n, 64);
    CHECK_EQ_INT(ir_datagram_frame_fit(1200, 1, &n), 0);
    CHECK_EQ_INT(n, 1197);
    CHECK_EQ_INT(ir_datagram_frame_size(1197, 1), 1200);
}

TEST(ack_encode_many)
{
    /* 300 ranges of 2 packets with gaps of 3, from 10000 downward */
    ir_ack_range r[300];
    uint64_t top = 10000;
    for (int i = 0; i < 300; i++) {
        r[i].largest = top;
        r[i].smallest = top - 1;
        top -= 5;
    }
    uint8_t out[1500];
    for (size_t cap = 0; cap < sizeof out; cap += 7) {
        size_t k;
        size_t n = ir_ack_encode(out, cap, 0, 0, r, 300, 1000, NULL, &k);
        if (n == 0) {
            CHECK_EQ_INT(k, 0);
            CHECK(cap < 8);
            continue;
        }
        CHECK(n <= cap && k >= 1 && k <= 300);
        ir_cursor c;
        ir_frame f;
        ir_cursor_init(&c, out, n);
        CHECK_EQ_INT(ir_frame_decode(&c, &f), 0);
        CHECK_EQ_INT(c.pos, n);
        CHECK(f.u.ack.range_count == k - 1);
        ir_ack_iter it;
        ir_ack_iter_init(&it, &f.u.ack);
        uint64_t lo, hi;
        for (size_t i = 0; i < k; i++) {
            CHECK_EQ_INT(ir_ack_iter_next(&it, &lo, &hi), 1);
            CHECK(lo == r[i].smallest && hi == r[i].largest);
        }
        CHECK_EQ_INT(ir_ack_iter_next(&it, &lo, &hi), 0);
        /* maximal: one more range would not fit */
        if (k < 300) {
            size_t k2;
            CHECK_EQ_INT(ir_ack_encode(out, cap, 0, 0, r, k + 1, 1000, NULL, &k2), n);
            CHECK_EQ_INT(k2, k);
            /* each range costs 2 bytes, and the count grows to 2 bytes at 64 ranges */
            CHECK(n + 2 > cap || (k == 64 && n + 3 > cap));
        }
    }
}

int main(void)
{
    RUN(varint_vectors);
    RUN(add_address_vector);
    RUN(multipath_vectors);
    RUN(ack_ranges);
    RUN(round_trip_every_type);
    RUN(invalid_values);
    RUN(frame_table);
    RUN(fit_helpers);
    RUN(ack_encode_many);
    TEST_EXIT();
}
