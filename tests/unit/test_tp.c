/* QUIC transport parameters: iroh's wire bytes (spec/quic-tls.md 2.2), every validation
 * rule, unknown and reserved parameters, the n0 NAT-traversal byte, grease, truncation. */
#include <stdint.h>

#include "quic/tp.h"
#include "quic/varint.h"
#include "test.h"

#define TPE (-IR_QERR_TRANSPORT_PARAMETER_ERROR)

static int cid_eq(const ir_tp_cid *a, const ir_tp_cid *b)
{
    return a->len == b->len && memcmp(a->id, b->id, a->len) == 0;
}

static int tp_eq(const ir_tp *a, const ir_tp *b)
{
    return a->max_idle_timeout == b->max_idle_timeout &&
           a->max_udp_payload_size == b->max_udp_payload_size &&
           a->initial_max_data == b->initial_max_data &&
           a->initial_max_stream_data_bidi_local == b->initial_max_stream_data_bidi_local &&
           a->initial_max_stream_data_bidi_remote == b->initial_max_stream_data_bidi_remote &&
           a->initial_max_stream_data_uni == b->initial_max_stream_data_uni &&
           a->initial_max_streams_bidi == b->initial_max_streams_bidi &&
           a->initial_max_streams_uni == b->initial_max_streams_uni &&
           a->ack_delay_exponent == b->ack_delay_exponent &&
           a->max_ack_delay == b->max_ack_delay &&
           a->active_connection_id_limit == b->active_connection_id_limit &&
           a->max_datagram_frame_size == b->max_datagram_frame_size &&
           a->has_original_dcid == b->has_original_dcid &&
           (!a->has_original_dcid || cid_eq(&a->original_dcid, &b->original_dcid)) &&
           a->has_initial_scid == b->has_initial_scid &&
           (!a->has_initial_scid || cid_eq(&a->initial_scid, &b->initial_scid)) &&
           a->has_retry_scid == b->has_retry_scid &&
           (!a->has_retry_scid || cid_eq(&a->retry_scid, &b->retry_scid)) &&
           a->has_stateless_reset_token == b->has_stateless_reset_token &&
           (!a->has_stateless_reset_token ||
            memcmp(a->stateless_reset_token, b->stateless_reset_token, 16) == 0) &&
           a->has_preferred_address == b->has_preferred_address &&
           (!a->has_preferred_address ||
            (memcmp(a->preferred_address.ipv4, b->preferred_address.ipv4, 4) == 0 &&
             a->preferred_address.ipv4_port == b->preferred_address.ipv4_port &&
             memcmp(a->preferred_address.ipv6, b->preferred_address.ipv6, 16) == 0 &&
             a->preferred_address.ipv6_port == b->preferred_address.ipv6_port &&
             cid_eq(&a->preferred_address.cid, &b->preferred_address.cid) &&
             memcmp(a->preferred_address.reset_token, b->preferred_address.reset_token, 16) ==
                 0)) &&
           a->disable_active_migration == b->disable_active_migration &&
           a->has_min_ack_delay == b->has_min_ack_delay &&
           (!a->has_min_ack_delay || a->min_ack_delay == b->min_ack_delay) &&
           a->has_initial_max_path_id == b->has_initial_max_path_id &&
           (!a->has_initial_max_path_id || a->initial_max_path_id == b->initial_max_path_id) &&
           a->nat_traversal == b->nat_traversal &&
           a->has_observed_address == b->has_observed_address &&
           (!a->has_observed_address || a->observed_address_role == b->observed_address_role) &&
           a->grease_quic_bit == b->grease_quic_bit;
}

/* Copies the parameters of p to out without the reserved ones (31*N+27); returns the new
 * length and the number of reserved ones seen, or -1 if p does not parse. */
static int strip_grease(const uint8_t *p, size_t len, uint8_t *out, size_t *out_len,
                        uint64_t *gid, size_t *glen)
{
    ir_cursor c;
    int greased = 0;
    *out_len = 0;
    ir_cursor_init(&c, p, len);
    while (ir_cursor_left(&c) > 0) {
        size_t start = c.pos;
        uint64_t id, n;
        const uint8_t *v;
        if (ir_get_varint(&c, &id) || ir_get_varint(&c, &n) || ir_get_bytes(&c, n, &v))
            return -1;
        if (id % 31 == 27) {
            greased++;
            *gid = id;
            *glen = n;
            continue;
        }
        memcpy(out + *out_len, p + start, c.pos - start);
        *out_len += c.pos - start;
    }
    return greased;
}

static int decode_hex(const char *hex, int from_server, ir_tp *tp)
{
    static unsigned char b[1024];
    int n = t_unhex(hex, b, sizeof b);
    if (n < 0)
        return 1000;
    return ir_tp_decode(b, (size_t)n, from_server, tp);
}

/* iroh's client parameters as the 2.2 table gives them, in id order, with an 8-byte
 * initial_source_connection_id */
static const char IROH_CLIENT[] = "01 04 80007530"
                                  "03 02 45c0"
                                  "04 08 ffffffffffffffff"
                                  "05 04 801312d0"
                                  "06 04 801312d0"
                                  "07 04 801312d0"
                                  "08 02 4064"
                                  "09 02 4064"
                                  "0e 01 05"
                                  "0f 08 1122334455667788"
                                  "20 04 8000ffff"
                                  "3e 01 07"
                                  "c0000000ff04de1b 02 43e8"
                                  "c0003d7f91120401 01 20";

TEST(iroh_wire_bytes)
{
    unsigned char want[256], wire[300], out[300], stripped[300];
    int wn = t_unhex(IROH_CLIENT, want, sizeof want);
    CHECK(wn > 0);
    /* as noq sends it: a reserved parameter somewhere (here: id 58, 3 bytes, in front) */
    wire[0] = 0x3a;
    wire[1] = 0x03;
    memcpy(wire + 2, "\xaa\xbb\xcc", 3);
    memcpy(wire + 5, want, (size_t)wn);
    ir_tp tp, iroh;
    CHECK_EQ_INT(ir_tp_decode(wire, (size_t)wn + 5, 0, &tp), 0);
    ir_tp_set_iroh_defaults(&iroh);
    iroh.has_initial_scid = 1;
    iroh.initial_scid.len = 8;
    memcpy(iroh.initial_scid.id, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
    CHECK(tp_eq(&tp, &iroh));
    CHECK(tp.max_idle_timeout == 30000 && tp.max_udp_payload_size == 1472);
    CHECK(tp.initial_max_data == IR_VARINT_MAX);
    CHECK(tp.initial_max_stream_data_bidi_local == 1250000 &&
          tp.initial_max_stream_data_bidi_remote == 1250000 &&
          tp.initial_max_stream_data_uni == 1250000);
    CHECK(tp.initial_max_streams_bidi == 100 && tp.initial_max_streams_uni == 100);
    CHECK(tp.ack_delay_exponent == 3 && tp.max_ack_delay == 25); /* defaults, not sent */
    CHECK(tp.active_connection_id_limit == 5 && tp.max_datagram_frame_size == 65535);
    CHECK(tp.has_min_ack_delay && tp.min_ack_delay == 1000);
    CHECK(tp.has_initial_max_path_id && tp.initial_max_path_id == 7);
    CHECK_EQ_INT(tp.nat_traversal, 32);
    CHECK(!tp.has_observed_address && !tp.grease_quic_bit && !tp.disable_active_migration);
    CHECK(!tp.has_original_dcid && !tp.has_stateless_reset_token && !tp.has_retry_scid);

    /* re-encode: the same bytes plus one reserved parameter */
    for (uint64_t seed = 0; seed < 200; seed++) {
        size_t n = ir_tp_encode(out, sizeof out, &iroh, 0, seed * 0x1234567);
        CHECK(n > 0);
        size_t sl = 0, glen = 99;
        uint64_t gid = 0;
        CHECK_EQ_INT(strip_grease(out, n, stripped, &sl, &gid, &glen), 1);
        CHECK_EQ_INT(sl, wn);
        CHECK_MEM(stripped, want, (size_t)wn);
        CHECK(gid % 31 == 27 && gid <= IR_VARINT_MAX && glen <= 15);
        ir_tp again;
        CHECK_EQ_INT(ir_tp_decode(out, n, 0, &again), 0);
        CHECK(tp_eq(&again, &iroh));
        /* deterministic in the seed */
        uint8_t out2[300];
        CHECK_EQ_INT(ir_tp_encode(out2, sizeof out2, &iroh, 0, seed * 0x1234567), n);
        CHECK_MEM(out2, out, n);
        /* no partial output */
        if (seed < 3)
            for (size_t cap = 0; cap < n; cap++)
                CHECK_EQ_INT(ir_tp_encode(cap ? out2 : NULL, cap, &iroh, 0, seed * 0x1234567), 0);
    }
    /* the grease differs between seeds */
    uint8_t a[300], b[300];
    size_t na = ir_tp_encode(a, sizeof a, &iroh, 0, 1), nb = ir_tp_encode(b, sizeof b, &iroh, 0, 2);
    CHECK(na != nb || memcmp(a, b, na) != 0);

    /* RFC defaults only: nothing but the reserved parameter */
    ir_tp def;
    ir_tp_init(&def);
    size_t n = ir_tp_encode(out, sizeof out, &def, 1, 42);
    size_t sl = 0, glen;
    uint64_t gid;
    CHECK_EQ_INT(strip_grease(out, n, stripped, &sl, &gid, &glen), 1);
    CHECK_EQ_INT(sl, 0);
    CHECK_EQ_INT(ir_tp_decode(out, n, 1, &tp), 0);
    CHECK(tp_eq(&tp, &def));
    CHECK_EQ_INT(ir_tp_decode(NULL, 0, 0, &tp), 0);
    CHECK(tp_eq(&tp, &def));
    CHECK(tp.max_udp_payload_size == 65527 && tp.ack_delay_exponent == 3 &&
          tp.max_ack_delay == 25 && tp.active_connection_id_limit == 2);
}

TEST(truncation)
{
    unsigned char w[256];
    int n = t_unhex(IROH_CLIENT, w, sizeof w);
    /* boundaries between parameters decode; every other prefix fails */
    size_t bounds[32], nb = 0;
    ir_cursor c;
    ir_cursor_init(&c, w, (size_t)n);
    bounds[nb++] = 0;
    while (ir_cursor_left(&c) > 0) {
        uint64_t id = 0, len = 0;
        const uint8_t *v;
        ir_get_varint(&c, &id);
        ir_get_varint(&c, &len);
        ir_get_bytes(&c, len, &v);
        bounds[nb++] = c.pos;
    }
    for (size_t k = 0; k <= (size_t)n; k++) {
        int at_bound = 0;
        for (size_t i = 0; i < nb; i++)
            at_bound |= bounds[i] == k;
        uint8_t *p = malloc(k ? k : 1);
        memcpy(p, w, k);
        ir_tp tp;
        CHECK_EQ_INT(ir_tp_decode(k ? p : NULL, k, 0, &tp), at_bound ? 0 : TPE);
        free(p);
    }
}

TEST(server_parameters)
{
    static const char SERVER[] =
        "00 14 000102030405060708090a0b0c0d0e0f10111213" /* original_dcid, 20 bytes */
        "02 10 f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"         /* stateless_reset_token */
        "0d 31 c0000201 1151 20010db8000000000000000000000001 01bb 08 0102030405060708 "
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"               /* preferred_address */
        "0f 08 8877665544332211"
        "10 04 deadbeef";                                /* retry_scid */
    ir_tp tp;
    CHECK_EQ_INT(decode_hex(SERVER, 1, &tp), 0);
    CHECK(tp.has_original_dcid && tp.original_dcid.len == 20 && tp.original_dcid.id[19] == 0x13);
    CHECK(tp.has_stateless_reset_token && tp.stateless_reset_token[0] == 0xf0);
    CHECK(tp.has_preferred_address);
    CHECK_MEM(tp.preferred_address.ipv4, "\xc0\x00\x02\x01", 4);
    CHECK_EQ_INT(tp.preferred_address.ipv4_port, 4433);
    CHECK(tp.preferred_address.ipv6[0] == 0x20 && tp.preferred_address.ipv6[15] == 1);
    CHECK_EQ_INT(tp.preferred_address.ipv6_port, 443);
    CHECK_EQ_INT(tp.preferred_address.cid.len, 8);
    CHECK(tp.preferred_address.reset_token[15] == 0xaf);
    CHECK(tp.has_retry_scid && tp.retry_scid.len == 4);
    /* the same from a client is an error */
    CHECK_EQ_INT(decode_hex(SERVER, 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("00 00", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("02 10 f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("10 00", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("0d 31 c0000201 1151 20010db8000000000000000000000001 01bb 08 "
                            "0102030405060708 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
                            0, &tp),
                 TPE);
    CHECK_EQ_INT(decode_hex("00 00", 1, &tp), 0); /* empty original_dcid is a value */
    CHECK(tp.has_original_dcid && tp.original_dcid.len == 0);

    /* round trip as server; a client encoding drops the server-only ones */
    CHECK_EQ_INT(decode_hex(SERVER, 1, &tp), 0);
    uint8_t out[400];
    size_t n = ir_tp_encode(out, sizeof out, &tp, 1, 7);
    ir_tp back;
    CHECK(n > 0);
    CHECK_EQ_INT(ir_tp_decode(out, n, 1, &back), 0);
    CHECK(tp_eq(&tp, &back));
    n = ir_tp_encode(out, sizeof out, &tp, 0, 7);
    CHECK(n > 0);
    CHECK_EQ_INT(ir_tp_decode(out, n, 0, &back), 0);
    CHECK(!back.has_original_dcid && !back.has_stateless_reset_token &&
          !back.has_preferred_address && !back.has_retry_scid);
    CHECK(back.has_initial_scid && cid_eq(&back.initial_scid, &tp.initial_scid));

    /* preferred_address layout */
    CHECK_EQ_INT(decode_hex("0d 29 c0000201 1151 20010db8000000000000000000000001 01bb 00 "
                            "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
                            1, &tp),
                 TPE); /* zero-length CID */
    CHECK_EQ_INT(decode_hex("0d 3e c0000201 1151 20010db8000000000000000000000001 01bb 15 "
                            "000102030405060708090a0b0c0d0e0f1011121314 "
                            "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
                            1, &tp),
                 TPE); /* 21-byte CID */
    CHECK_EQ_INT(decode_hex("0d 3d c0000201 1151 20010db8000000000000000000000001 01bb 14 "
                            "000102030405060708090a0b0c0d0e0f10111213 "
                            "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
                            1, &tp),
                 0); /* 20-byte CID */
    CHECK_EQ_INT(decode_hex("0d 32 c0000201 1151 20010db8000000000000000000000001 01bb 08 "
                            "0102030405060708 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf 00",
                            1, &tp),
                 TPE); /* a byte too many */
    CHECK_EQ_INT(decode_hex("0d 30 c0000201 1151 20010db8000000000000000000000001 01bb 08 "
                            "0102030405060708 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
                            1, &tp),
                 TPE); /* a byte short (the last byte is then a truncated parameter) */
    CHECK_EQ_INT(decode_hex("0d 18 c0000201 1151 20010db8000000000000000000000001 01bb", 1,
                            &tp),
                 TPE); /* no CID length */
    /* CID lengths and the reset token */
    CHECK_EQ_INT(decode_hex("0f 15 000102030405060708090a0b0c0d0e0f1011121314", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("0f 14 000102030405060708090a0b0c0d0e0f10111213", 0, &tp), 0);
    CHECK_EQ_INT(decode_hex("0f 00", 0, &tp), 0);
    CHECK(tp.has_initial_scid && tp.initial_scid.len == 0);
    CHECK_EQ_INT(decode_hex("00 15 000102030405060708090a0b0c0d0e0f1011121314", 1, &tp), TPE);
    CHECK_EQ_INT(decode_hex("10 15 000102030405060708090a0b0c0d0e0f1011121314", 1, &tp), TPE);
    CHECK_EQ_INT(decode_hex("02 0f f0f1f2f3f4f5f6f7f8f9fafbfcfdfe", 1, &tp), TPE);
    CHECK_EQ_INT(decode_hex("02 11 f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00", 1, &tp), TPE);
    CHECK_EQ_INT(decode_hex("02 00", 1, &tp), TPE);
    /* encoder refuses impossible values */
    ir_tp bad;
    ir_tp_init(&bad);
    bad.has_initial_scid = 1;
    bad.initial_scid.len = 21;
    CHECK_EQ_INT(ir_tp_encode(out, sizeof out, &bad, 0, 1), 0);
    ir_tp_init(&bad);
    bad.has_preferred_address = 1;
    CHECK_EQ_INT(ir_tp_encode(out, sizeof out, &bad, 1, 1), 0); /* CID length 0 */
    CHECK(ir_tp_encode(out, sizeof out, &bad, 0, 1) > 0);       /* client: not sent */
    ir_tp_init(&bad);
    bad.initial_max_data = IR_VARINT_MAX + 1;
    CHECK_EQ_INT(ir_tp_encode(out, sizeof out, &bad, 0, 1), 0);
}

TEST(validation_rules)
{
    ir_tp tp;
    /* duplicates, known parameters of every kind */
    CHECK_EQ_INT(decode_hex("01 01 05 01 01 06", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("01 01 05 4001 01 05", 0, &tp), TPE); /* same id, longer form */
    CHECK_EQ_INT(decode_hex("0f 00 0f 00", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("0c 00 0c 00", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("6ab2 00 6ab2 00", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("3e 01 01 3e 01 01", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("c0003d7f91120401 01 20 c0003d7f91120401 01 20", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("c0000000ff04de1b 01 01 c0000000ff04de1b 01 01", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("20 01 01 20 01 01", 0, &tp), TPE);
    /* non-minimal ids are the same parameter */
    CHECK_EQ_INT(decode_hex("4001 01 05", 0, &tp), 0);
    CHECK(tp.max_idle_timeout == 5);
    /* max_udp_payload_size >= 1200 */
    CHECK_EQ_INT(decode_hex("03 02 44af", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("03 02 44b0", 0, &tp), 0);
    CHECK(tp.max_udp_payload_size == 1200);
    CHECK_EQ_INT(decode_hex("03 01 00", 0, &tp), TPE);
    /* ack_delay_exponent <= 20 */
    CHECK_EQ_INT(decode_hex("0a 01 15", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("0a 01 14", 0, &tp), 0);
    CHECK(tp.ack_delay_exponent == 20);
    /* max_ack_delay < 2^14 */
    CHECK_EQ_INT(decode_hex("0b 04 80004000", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("0b 02 7fff", 0, &tp), 0);
    CHECK(tp.max_ack_delay == 16383);
    /* active_connection_id_limit >= 2 */
    CHECK_EQ_INT(decode_hex("0e 01 00", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("0e 01 01", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("0e 01 02", 0, &tp), 0);
    /* initial_max_streams <= 2^60 */
    CHECK_EQ_INT(decode_hex("08 08 d000000000000001", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("09 08 d000000000000001", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("08 08 d000000000000000 09 08 d000000000000000", 0, &tp), 0);
    CHECK(tp.initial_max_streams_bidi == ((uint64_t)1 << 60));
    /* an integer must fill its length exactly */
    CHECK_EQ_INT(decode_hex("01 02 05 00", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("01 01 4005", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("01 00", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("01 02 4005", 0, &tp), 0); /* non-minimal value is fine */
    CHECK(tp.max_idle_timeout == 5);
    /* zero-length parameters */
    CHECK_EQ_INT(decode_hex("0c 00", 0, &tp), 0);
    CHECK(tp.disable_active_migration);
    CHECK_EQ_INT(decode_hex("0c 01 00", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("6ab2 00", 0, &tp), 0);
    CHECK(tp.grease_quic_bit);
    CHECK_EQ_INT(decode_hex("6ab2 01 00", 0, &tp), TPE);
    /* min_ack_delay (us) <= max_ack_delay (ms) * 1000, in either order */
    CHECK_EQ_INT(decode_hex("c0000000ff04de1b 04 800061a8", 0, &tp), 0); /* 25000 */
    CHECK_EQ_INT(decode_hex("c0000000ff04de1b 04 800061a9", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("c0000000ff04de1b 04 80007530 0b 01 1e", 0, &tp), 0);
    CHECK(tp.min_ack_delay == 30000 && tp.max_ack_delay == 30);
    CHECK_EQ_INT(decode_hex("0b 01 1e c0000000ff04de1b 04 80007531", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("0b 01 00 c0000000ff04de1b 01 00", 0, &tp), 0);
    CHECK(tp.has_min_ack_delay && tp.min_ack_delay == 0);
    /* initial_max_path_id <= 2^32-1 */
    CHECK_EQ_INT(decode_hex("3e 08 c000000100000000", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("3e 08 c0000000ffffffff", 0, &tp), 0);
    CHECK(tp.initial_max_path_id == 0xffffffffu);
    CHECK_EQ_INT(decode_hex("3e 01 00", 0, &tp), 0);
    CHECK(tp.has_initial_max_path_id && tp.initial_max_path_id == 0);
    /* observed address role 0..2 */
    CHECK_EQ_INT(decode_hex("c00000009f81a176 01 02", 0, &tp), 0);
    CHECK(tp.has_observed_address && tp.observed_address_role == 2);
    CHECK_EQ_INT(decode_hex("c00000009f81a176 01 00", 0, &tp), 0);
    CHECK(tp.has_observed_address && tp.observed_address_role == 0);
    CHECK_EQ_INT(decode_hex("c00000009f81a176 01 03", 0, &tp), TPE);
    /* max_datagram_frame_size: any integer */
    CHECK_EQ_INT(decode_hex("20 01 00", 0, &tp), 0);
    CHECK(tp.max_datagram_frame_size == 0);
    CHECK_EQ_INT(decode_hex("20 08 ffffffffffffffff", 0, &tp), 0);
    CHECK(tp.max_datagram_frame_size == IR_VARINT_MAX);
    /* truncated encodings */
    CHECK_EQ_INT(decode_hex("01", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("c0", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("01 04 800075", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("01 c0", 0, &tp), TPE);
    CHECK_EQ_INT(decode_hex("1b ffffffffffffffff", 0, &tp), TPE); /* length past the end */
}

TEST(unknown_parameters)
{
    ir_tp tp, def;
    ir_tp_init(&def);
    /* reserved ids, unknown small and large ids, with any content, even repeated */
    CHECK_EQ_INT(decode_hex("1b 00 3a 03 aabbcc 1b 02 0102 7fff 02 0102 "
                            "c0000000deadbeef 00 c0000000deadbeef 01 ff 11 04 ffffffff "
                            "21 00 9f81a177 01 07",
                            0, &tp),
                 0);
    CHECK(tp_eq(&tp, &def));
    /* unknown ones between known ones */
    CHECK_EQ_INT(decode_hex("1b 05 0102030405 01 02 4005 3a 00 0f 01 aa", 1, &tp), 0);
    CHECK(tp.max_idle_timeout == 5 && tp.has_initial_scid && tp.initial_scid.len == 1);
    /* the largest reserved id */
    CHECK_EQ_INT(decode_hex("fffffffffffffff8 01 00", 0, &tp), 0);
    CHECK((IR_VARINT_MAX - 7) % 31 == 27);
}

TEST(nat_traversal_byte)
{
    ir_tp tp;
    CHECK_EQ_INT(decode_hex("c0003d7f91120401 01 20", 0, &tp), 0);
    CHECK_EQ_INT(tp.nat_traversal, 32);
    CHECK_EQ_INT(decode_hex("c0003d7f91120401 01 01", 0, &tp), 0);
    CHECK_EQ_INT(tp.nat_traversal, 1);
    CHECK_EQ_INT(decode_hex("c0003d7f91120401 01 ff", 0, &tp), 0);
    CHECK_EQ_INT(tp.nat_traversal, 255); /* a raw byte: 0xff is not a varint prefix here */
    CHECK_EQ_INT(decode_hex("c0003d7f91120401 01 40", 1, &tp), 0);
    CHECK_EQ_INT(tp.nat_traversal, 64);
    CHECK_EQ_INT(decode_hex("c0003d7f91120401 01 00", 0, &tp), TPE); /* zero */
    CHECK_EQ_INT(decode_hex("c0003d7f91120401 00", 0, &tp), TPE);    /* empty */
    CHECK_EQ_INT(decode_hex("c0003d7f91120401 02 0020", 0, &tp), TPE); /* two bytes */
    CHECK_EQ_INT(decode_hex("c0003d7f91120401 02 4020", 0, &tp), TPE); /* a varint */
    /* encoding: one raw byte, absent when 0 */
    ir_tp t;
    uint8_t out[64], stripped[64];
    size_t sl, glen;
    uint64_t gid;
    ir_tp_init(&t);
    t.nat_traversal = 200;
    size_t n = ir_tp_encode(out, sizeof out, &t, 0, 5);
    CHECK_EQ_INT(strip_grease(out, n, stripped, &sl, &gid, &glen), 1);
    CHECK_EQ_INT(sl, 10);
    CHECK_MEM(stripped, "\xc0\x00\x3d\x7f\x91\x12\x04\x01\x01\xc8", 10);
    CHECK_EQ_INT(ir_tp_decode(out, n, 0, &tp), 0);
    CHECK_EQ_INT(tp.nat_traversal, 200);
}

TEST(extensions_round_trip)
{
    ir_tp t, back;
    uint8_t out[512];
    ir_tp_init(&t);
    t.max_idle_timeout = 1;
    t.max_udp_payload_size = 1200;
    t.ack_delay_exponent = 0;
    t.max_ack_delay = 0;
    t.active_connection_id_limit = 8;
    t.has_initial_scid = 1;
    t.disable_active_migration = 1;
    t.grease_quic_bit = 1;
    t.has_min_ack_delay = 1;
    t.min_ack_delay = 0;
    t.has_initial_max_path_id = 1;
    t.initial_max_path_id = 0;
    t.has_observed_address = 1;
    t.observed_address_role = 1;
    t.max_datagram_frame_size = 1;
    for (uint64_t seed = 0; seed < 64; seed++) {
        size_t n = ir_tp_encode(out, sizeof out, &t, seed & 1, seed);
        CHECK(n > 0);
        CHECK_EQ_INT(ir_tp_decode(out, n, (int)(seed & 1), &back), 0);
        CHECK(tp_eq(&t, &back));
    }
    /* the non-default ack values are written; defaults are not */
    size_t n = ir_tp_encode(out, sizeof out, &t, 0, 3);
    ir_tp_init(&t);
    t.max_ack_delay = 25;
    t.ack_delay_exponent = 3;
    t.active_connection_id_limit = 2;
    t.max_udp_payload_size = 65527;
    size_t m = ir_tp_encode(out, sizeof out, &t, 0, 3);
    CHECK(m < n);
    uint8_t stripped[512];
    size_t sl, glen;
    uint64_t gid;
    CHECK_EQ_INT(strip_grease(out, m, stripped, &sl, &gid, &glen), 1);
    CHECK_EQ_INT(sl, 0);
}

int main(void)
{
    RUN(iroh_wire_bytes);
    RUN(truncation);
    RUN(server_parameters);
    RUN(validation_rules);
    RUN(unknown_parameters);
    RUN(nat_traversal_byte);
    RUN(extensions_round_trip);
    TEST_EXIT();
}
