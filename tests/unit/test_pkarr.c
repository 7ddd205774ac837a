/* pkarr SignedPacket and the iroh TXT records of a pkarr packet: the spec's 7.3 vector
 * byte for byte, verification in iroh's order, the newer-than rule. */
#include <string.h>

#include "dns/endpoint_info.h"
#include "dns/pkarr.h"
#include "test.h"

static const char *V_DNS =
    "0000 8000 0000 0001 0000 0000"
    "05 5f69726f68 34"
    "79716f6f787839753361656d68386d6f3577637171313679756675366a69746f7571316f347a6137353164676572316967676879 00"
    "0010 0001 0000001e 002a 29 72656c61793d68747470733a2f2f757365312d312e72656c61792e6e302e69726f682e6c696e6b2e2f";
static const char *V_SIG =
    "da2d9c99895d23c863bce687be1a43deb49d76cdb79bdf65792e8ca389fcffca"
    "b3b6cba9d8ebe1124b160edf2fb50649df639602a68e6ee80b4e2b6f1c11ef0a";
static const uint64_t V_TS = 1700000000000000ull;
static const char *V_RELAY = "https://use1-1.relay.n0.iroh.link./";

static void key_0_31(iroh_secret_key *sk)
{
    for (int i = 0; i < 32; i++)
        sk->bytes[i] = (uint8_t)i;
}

static void vector_info(ir_endpoint_info *ei)
{
    iroh_secret_key sk;
    iroh_endpoint_id id;
    key_0_31(&sk);
    iroh_secret_key_public(&sk, &id);
    memset(ei, 0, sizeof *ei);
    memcpy(ei->id, id.bytes, 32);
    strcpy(ei->relay, V_RELAY);
}

TEST(spec_7_3_dns_packet)
{
    ir_endpoint_info ei;
    vector_info(&ei);
    uint8_t want[200], got[IR_PKARR_MAX_DNS];
    int wn = t_unhex(V_DNS, want, sizeof want);
    CHECK_EQ_INT(wn, 124);
    size_t n = 0;
    CHECK_EQ_INT(ir_endpoint_info_to_dns(&ei, 30, got, sizeof got, &n), 0);
    CHECK_EQ_INT(n, 124);
    CHECK_MEM(got, want, 124);
    /* too small a buffer is refused, with the size needed */
    CHECK_EQ_INT(ir_endpoint_info_to_dns(&ei, 30, got, 100, &n), IROH_ERR_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(n, 124);
}

TEST(spec_7_3_signed_packet)
{
    iroh_secret_key sk;
    key_0_31(&sk);
    uint8_t dns[200], sig[64], body[IR_PKARR_MAX_PAYLOAD];
    int dn = t_unhex(V_DNS, dns, sizeof dns);
    CHECK_EQ_INT(t_unhex(V_SIG, sig, sizeof sig), 64);
    ir_pkarr_packet p;
    CHECK_EQ_INT(ir_pkarr_sign(&sk, V_TS, dns, (size_t)dn, &p), 0);
    CHECK_MEM(p.sig, sig, 64);
    /* the signed message starts as the spec says */
    uint8_t msg[IR_PKARR_SIGNABLE_MAX];
    size_t ml = ir_pkarr_signable(V_TS, dns, (size_t)dn, msg);
    const char *prefix = "3:seqi1700000000000000e1:v124:";
    CHECK_EQ_INT(ml, strlen(prefix) + 124);
    CHECK_MEM(msg, prefix, strlen(prefix));
    /* PUT body = sig || 00060a24181e4000 || dns (196 bytes) */
    size_t bl = ir_pkarr_relay_payload(&p, body, sizeof body);
    CHECK_EQ_INT(bl, 196);
    uint8_t ts[8];
    CHECK_EQ_INT(t_unhex("00060a24181e4000", ts, 8), 8);
    CHECK_MEM(body, sig, 64);
    CHECK_MEM(body + 64, ts, 8);
    CHECK_MEM(body + 72, dns, 124);
    CHECK_EQ_INT(ir_pkarr_relay_payload(&p, body, 195), 0);
    /* and it reads back, verified */
    ir_pkarr_packet q;
    memset(&q, 0xee, sizeof q);
    CHECK_EQ_INT(ir_pkarr_from_relay_payload(p.key, body, bl, &q), 0);
    CHECK_EQ_INT(q.timestamp_us, V_TS);
    CHECK_EQ_INT(q.dns_len, 124);
    CHECK_MEM(q.dns, dns, 124);
    CHECK_MEM(q.key, p.key, 32);
    /* the whole signed packet form */
    uint8_t whole[IR_PKARR_HEADER + IR_PKARR_MAX_DNS];
    memcpy(whole, p.key, 32);
    memcpy(whole + 32, body, bl);
    CHECK_EQ_INT(ir_pkarr_from_bytes(whole, 32 + bl, &q), 0);
    /* the z32 name of the key, as in the URL and DNS name of the vector */
    char name[300];
    CHECK(ir_endpoint_info_name(p.key, "dns.iroh.link.", name, sizeof name) > 0);
    CHECK_STR(name, "_iroh.yqooxx9u3aemh8mo5wcqq16yufu6jitouq1o4za751dger1igghy.dns.iroh.link");
    /* and the records inside say what was published */
    ir_endpoint_info ei;
    CHECK_EQ_INT(ir_endpoint_info_from_dns(q.key, NULL, q.dns, q.dns_len, &ei), 1);
    CHECK_STR(ei.relay, V_RELAY);
    CHECK_EQ_INT(ei.n_addrs, 0);
    CHECK_EQ_INT(ei.has_user_data, 0);
    CHECK_MEM(ei.id, p.key, 32);
}

TEST(verify_failures)
{
    iroh_secret_key sk;
    key_0_31(&sk);
    uint8_t dns[200], body[IR_PKARR_MAX_PAYLOAD + 8];
    int dn = t_unhex(V_DNS, dns, sizeof dns);
    ir_pkarr_packet p, q;
    CHECK_EQ_INT(ir_pkarr_sign(&sk, V_TS, dns, (size_t)dn, &p), 0);
    size_t bl = ir_pkarr_relay_payload(&p, body, sizeof body);
    memset(&q, 0x5a, sizeof q);
    ir_pkarr_packet untouched = q;

    /* a flipped bit in the signature, the timestamp or the DNS packet */
    size_t where[] = { 0, 63, 64, 71, 72, 150, bl - 1 };
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        body[where[i]] ^= 0x01;
        CHECK_EQ_INT(ir_pkarr_from_relay_payload(p.key, body, bl, &q), IROH_ERR_INVALID_SIGNATURE);
        body[where[i]] ^= 0x01;
    }
    CHECK_MEM(&q, &untouched, sizeof q);
    /* another valid key: the signature does not verify */
    uint8_t other[32] = { 0 };
    CHECK_EQ_INT(ir_pkarr_from_relay_payload(other, body, bl, &q), IROH_ERR_INVALID_SIGNATURE);
    /* no curve point: the key is refused first */
    uint8_t bad[32] = { 2 };
    CHECK_EQ_INT(ir_pkarr_from_relay_payload(bad, body, bl, &q), IROH_ERR_INVALID_KEY);
    /* sizes */
    CHECK_EQ_INT(ir_pkarr_from_relay_payload(p.key, body, 71, &q), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(ir_pkarr_from_relay_payload(p.key, body, 0, &q), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(ir_pkarr_from_bytes(body, 103, &q), IROH_ERR_INVALID_ARGUMENT);
    uint8_t big[IR_PKARR_MAX_PAYLOAD + 1];
    memset(big, 0, sizeof big);
    CHECK_EQ_INT(ir_pkarr_from_relay_payload(p.key, big, sizeof big, &q), IROH_ERR_TOO_LONG);
    CHECK_EQ_INT(ir_pkarr_sign(&sk, V_TS, big, IR_PKARR_MAX_DNS + 1, &p), IROH_ERR_TOO_LONG);
    CHECK_MEM(&q, &untouched, sizeof q);

    /* a good signature over bytes that are no DNS message: refused after verification */
    uint8_t junk[20] = { 0, 0, 0x80, 0, 0, 0, 0, 5 }; /* 5 answers, none there */
    ir_pkarr_packet j;
    CHECK_EQ_INT(ir_pkarr_sign(&sk, V_TS, junk, sizeof junk, &j), 0);
    bl = ir_pkarr_relay_payload(&j, body, sizeof body);
    CHECK_EQ_INT(ir_pkarr_from_relay_payload(j.key, body, bl, &q), IROH_ERR_INVALID_ARGUMENT);
    CHECK(strstr(iroh_last_error(), "DNS") != NULL);
    /* an empty DNS packet does not parse either (no header) */
    CHECK_EQ_INT(ir_pkarr_sign(&sk, V_TS, NULL, 0, &j), 0);
    bl = ir_pkarr_relay_payload(&j, body, sizeof body);
    CHECK_EQ_INT(bl, 72);
    CHECK_EQ_INT(ir_pkarr_from_relay_payload(j.key, body, bl, &q), IROH_ERR_INVALID_ARGUMENT);
    CHECK_MEM(&q, &untouched, sizeof q);
}

TEST(more_recent)
{
    ir_pkarr_packet a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.timestamp_us = 10;
    b.timestamp_us = 9;
    a.dns_len = 1;
    b.dns_len = 5;
    b.dns[0] = 0xff;
    CHECK_EQ_INT(ir_pkarr_more_recent(&a, &b), 1);
    CHECK_EQ_INT(ir_pkarr_more_recent(&b, &a), 0);
    /* tie: the larger DNS bytes win; a prefix is smaller */
    b.timestamp_us = 10;
    CHECK_EQ_INT(ir_pkarr_more_recent(&b, &a), 1);
    CHECK_EQ_INT(ir_pkarr_more_recent(&a, &b), 0);
    b.dns[0] = 0;
    CHECK_EQ_INT(ir_pkarr_more_recent(&b, &a), 1);
    CHECK_EQ_INT(ir_pkarr_more_recent(&a, &b), 0);
    /* the same packet is not more recent than itself */
    CHECK_EQ_INT(ir_pkarr_more_recent(&a, &a), 0);
}

TEST(many_records_compressed)
{
    /* relay, three addrs, user data: iroh's order; owners after the first are C0 0C */
    ir_endpoint_info ei;
    vector_info(&ei);
    CHECK_EQ_INT(iroh_socket_addr_parse("192.168.1.10:11204", &ei.addrs[0]), 0);
    CHECK_EQ_INT(iroh_socket_addr_parse("[2001:db8::1]:4433", &ei.addrs[1]), 0);
    CHECK_EQ_INT(iroh_socket_addr_parse("10.0.0.1:1", &ei.addrs[2]), 0);
    ei.n_addrs = 3;
    strcpy(ei.user_data, "hello=world");
    ei.has_user_data = 1;
    uint8_t dns[IR_PKARR_MAX_DNS];
    size_t n = 0;
    CHECK_EQ_INT(ir_endpoint_info_to_dns(&ei, 30, dns, sizeof dns, &n), 0);
    /* header: 5 answers */
    CHECK_EQ_INT(dns[6] << 8 | dns[7], 5);
    /* the first record: name (1+5+1+52+1 = 60) at 12, then type, class, ttl, rdlen, rdata */
    size_t off = 12 + 60;
    size_t rd = (size_t)(dns[off + 8] << 8 | dns[off + 9]);
    off += 10 + rd;
    const char *want[] = { "addr=192.168.1.10:11204", "addr=[2001:db8::1]:4433",
                           "addr=10.0.0.1:1", "user-data=hello=world" };
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(dns[off], 0xc0);
        CHECK_EQ_INT(dns[off + 1], 0x0c);
        CHECK_EQ_INT(dns[off + 2] << 8 | dns[off + 3], 16);     /* TXT */
        CHECK_EQ_INT(dns[off + 4] << 8 | dns[off + 5], 1);      /* IN */
        CHECK_EQ_INT(dns[off + 8] << 8 | dns[off + 9], 30);     /* TTL low half */
        rd = (size_t)(dns[off + 10] << 8 | dns[off + 11]);
        CHECK_EQ_INT(rd, strlen(want[i]) + 1);
        CHECK_EQ_INT(dns[off + 12], strlen(want[i]));
        CHECK_MEM(dns + off + 13, want[i], strlen(want[i]));
        off += 12 + rd;
    }
    CHECK_EQ_INT(off, n);
    /* read back: user data is cut at its second '=' as iroh cuts it */
    ir_endpoint_info back;
    CHECK_EQ_INT(ir_endpoint_info_from_dns(ei.id, "", dns, n, &back), 5);
    CHECK_STR(back.relay, V_RELAY);
    CHECK_EQ_INT(back.n_addrs, 3);
    CHECK_MEM(&back.addrs[0], &ei.addrs[0], sizeof ei.addrs[0]);
    CHECK_MEM(&back.addrs[1], &ei.addrs[1], sizeof ei.addrs[1]);
    CHECK_MEM(&back.addrs[2], &ei.addrs[2], sizeof ei.addrs[2]);
    CHECK_EQ_INT(back.has_user_data, 1);
    CHECK_STR(back.user_data, "hello");
    /* the relay is written as iroh writes a RelayUrl: normalized; no URL: refused */
    {
        ir_endpoint_info r;
        vector_info(&r);
        strcpy(r.relay, "HTTPS://Example.COM:443");
        uint8_t d[IR_PKARR_MAX_DNS];
        size_t dl = 0;
        CHECK_EQ_INT(ir_endpoint_info_to_dns(&r, 30, d, sizeof d, &dl), 0);
        const char *wr = "relay=https://example.com/";
        CHECK(dl > strlen(wr) && memcmp(d + dl - strlen(wr), wr, strlen(wr)) == 0);
        strcpy(r.relay, "not a url");
        CHECK_EQ_INT(ir_endpoint_info_to_dns(&r, 30, d, sizeof d, &dl), IROH_ERR_INVALID_ARGUMENT);
    }
    /* a TXT string over 255 bytes cannot be built */
    memset(ei.user_data, 'u', IR_ENDPOINT_INFO_USER_DATA_MAX);
    ei.user_data[IR_ENDPOINT_INFO_USER_DATA_MAX] = 0;
    CHECK_EQ_INT(ir_endpoint_info_to_dns(&ei, 30, dns, sizeof dns, &n), 0);
    ei.n_addrs = 0;
    memset(ei.relay, 'r', sizeof ei.relay - 1);
    memcpy(ei.relay, "https://", 8);
    ei.relay[sizeof ei.relay - 1] = 0;
    CHECK_EQ_INT(ir_endpoint_info_to_dns(&ei, 30, dns, sizeof dns, &n), IROH_ERR_TOO_LONG);
}

int main(void)
{
    RUN(spec_7_3_dns_packet);
    RUN(spec_7_3_signed_packet);
    RUN(verify_failures);
    RUN(more_recent);
    RUN(many_records_compressed);
    TEST_EXIT();
}
