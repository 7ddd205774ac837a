/* EndpointAddr, socket address text and EndpointTicket: spec sections 2, 3 and 7.2. */
#include "base/addr.h"
#include "base/encoding.h"
#include "iroh.h"
#include "test.h"

#define ID0 "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"

static iroh_endpoint_addr *make_addr(const char *id_hex, const char *const *relays,
                                     const char *const *ips)
{
    iroh_endpoint_id id;
    CHECK_EQ_INT(iroh_endpoint_id_parse(id_hex, &id), IROH_OK);
    iroh_endpoint_addr *a = iroh_endpoint_addr_new(&id);
    for (; relays && *relays; relays++)
        CHECK_EQ_INT(iroh_endpoint_addr_add_relay(a, *relays), IROH_OK);
    for (; ips && *ips; ips++) {
        iroh_socket_addr sa;
        CHECK_EQ_INT(iroh_socket_addr_parse(*ips, &sa), IROH_OK);
        CHECK_EQ_INT(iroh_endpoint_addr_add_ip(a, &sa), IROH_OK);
    }
    return a;
}

static char *ticket_of(const iroh_endpoint_addr *a)
{
    static char buf[2048];
    size_t need = 0;
    CHECK_EQ_INT(iroh_endpoint_ticket_encode(a, NULL, 0, &need), IROH_ERR_BUFFER_TOO_SMALL);
    CHECK(need > 8 && need <= sizeof buf);
    CHECK_EQ_INT(iroh_endpoint_ticket_encode(a, buf, sizeof buf, NULL), IROH_OK);
    CHECK_EQ_INT(strlen(buf) + 1, need);
    return buf;
}

/* encodes, compares with the expected text and bytes, decodes again and re-encodes */
static void check_ticket(iroh_endpoint_addr *a, const char *want, const char *want_hex)
{
    char *t = ticket_of(a);
    CHECK_STR(t, want);
    if (want_hex) {
        uint8_t bytes[512], wantb[512];
        size_t pos;
        int n = t_unhex(want_hex, wantb, sizeof wantb);
        long m = ir_b32_decode(IR_B32_RFC4648, t + 8, strlen(t + 8), bytes, sizeof bytes, &pos);
        CHECK_EQ_INT(m, n);
        CHECK_MEM(bytes, wantb, (size_t)n);
    }
    iroh_endpoint_addr *back = NULL;
    CHECK_EQ_INT(iroh_endpoint_ticket_decode(want, &back), IROH_OK);
    if (back) {
        CHECK_STR(ticket_of(back), want);
        CHECK_EQ_INT(iroh_endpoint_addr_len(back), iroh_endpoint_addr_len(a));
    }
    iroh_endpoint_addr_free(back);
    iroh_endpoint_addr_free(a);
}

TEST(spec_tickets)
{
    const char *t1_relays[] = {"http://derp.me./", NULL}, *t1_ips[] = {"127.0.0.1:1024", NULL};
    check_ticket(make_addr("ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6",
                           t1_relays, t1_ips),
                 "endpointacxfr74igmsbvsbnn73wcecg5vt3kbzncqwfrdiampuufwnhkublmaqacbuhi5dqhixs6zdf"
                 "ojyc43lffyxqcad7aaaadaai",
                 "00 ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6 02"
                 "00 10 687474703a2f2f646572702e6d652e2f  01 00 7f000001 8008");
    check_ticket(make_addr(ID0, NULL, NULL),
                 "endpointaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qaa",
                 "00 " ID0 " 00");
    const char *t3[] = {"https://use1-1.relay.n0.iroh.link./", NULL};
    check_ticket(make_addr(ID0, t3, NULL),
                 "endpointaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qaiaenuhi5dqom5c6l3v"
                 "onstcljrfzzgk3dbpexg4mbonfzg62bonruw42zof4",
                 "00 " ID0 " 01 00 23 68747470733a2f2f757365312d312e72656c61792e6e302e69726f682e6c"
                 "696e6b2e2f");
    const char *t4[] = {"192.168.1.10:11204", "[2001:db8::1]:4433", NULL};
    check_ticket(make_addr(ID0, NULL, t4),
                 "endpointaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qaqbadakqaikyrlqcaja"
                 "aeg3qaaaaaaaaaaaaaaaaaab2era",
                 "00 " ID0 " 02 01 00 c0a8010a c457 01 01 20010db8000000000000000000000001 d122");
    const char *t5r[] = {"https://euc1-1.relay.n0.iroh.link./", NULL};
    const char *t5i[] = {"[::1]:7", "10.0.0.2:65535", "10.0.0.1:1", NULL};
    check_ticket(make_addr(ID0, t5r, t5i),
                 "endpointaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qbaaenuhi5dqom5c6l3f"
                 "ovrtcljrfzzgk3dbpexg4mbonfzg62bonruw42zof4aqacqaaaaqcaiabiaaaax774bqcaiaaaaaaaaaa"
                 "aaaaaaaaaaaaaaba4",
                 NULL);
    const char *t6[] = {"HTTPS://Example.COM:443", NULL};
    iroh_endpoint_addr *a6 = make_addr(ID0, t6, NULL);
    CHECK_STR(iroh_endpoint_addr_relay_url(a6), "https://example.com/");
    check_ticket(a6,
                 "endpointaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qaiacruhi5dqom5c6l3f"
                 "pbqw24dmmuxgg33nf4",
                 NULL);
}

/* builds "endpoint" + base32(hex bytes) */
static const char *ticket_from_hex(const char *hex)
{
    static char buf[1024];
    uint8_t b[400];
    int n = t_unhex(hex, b, sizeof b);
    CHECK(n >= 0);
    memcpy(buf, "endpoint", 8);
    ir_b32_encode(IR_B32_RFC4648, b, (size_t)n, buf + 8);
    return buf;
}

static void expect_reject(const char *ticket, const char *why)
{
    iroh_endpoint_addr *a = (iroh_endpoint_addr *)1;
    int rc = iroh_endpoint_ticket_decode(ticket, &a);
    if (rc != IROH_ERR_INVALID_TICKET)
        fprintf(stderr, "  expected rejection (%s): %s\n", why, ticket);
    CHECK_EQ_INT(rc, IROH_ERR_INVALID_TICKET);
    CHECK(a == NULL);
    CHECK(iroh_last_error()[0] != 0);
}

static iroh_endpoint_addr *expect_accept(const char *ticket)
{
    iroh_endpoint_addr *a = NULL;
    CHECK_EQ_INT(iroh_endpoint_ticket_decode(ticket, &a), IROH_OK);
    return a;
}

TEST(spec_decode_behaviour)
{
    const char *t2 = "endpointaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qaa";
    char buf[256];
    /* uppercase body accepted, ENDPOINT prefix rejected, '=' padding rejected */
    snprintf(buf, sizeof buf, "endpoint%s", "AAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3QAA");
    iroh_endpoint_addr_free(expect_accept(buf));
    expect_reject("ENDPOINTaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qaa", "prefix");
    CHECK_STR(iroh_last_error(), "wrong prefix, expected endpoint");
    snprintf(buf, sizeof buf, "%s=", t2);
    expect_reject(buf, "padding");
    /* one extra trailing byte accepted */
    iroh_endpoint_addr_free(expect_accept(ticket_from_hex("00 " ID0 " 00 ff")));
    /* truncated */
    expect_reject(ticket_from_hex("00 " ID0), "no count");
    expect_reject(ticket_from_hex("00 03a107bff3"), "short id");
    expect_reject(ticket_from_hex("00 " ID0 " 01 01 00 7f0000"), "short ip");
    /* tag 01 */
    expect_reject(ticket_from_hex("01 " ID0 " 00"), "ticket tag 1");
    /* transport variant 03 */
    expect_reject(ticket_from_hex("00 " ID0 " 01 03 00"), "transport kind 3");
    /* invalid key bytes */
    expect_reject(ticket_from_hex("00 0200000000000000000000000000000000000000000000000000000000000000 00"),
                  "bad key");
    /* duplicates and unsorted accepted and normalized */
    iroh_endpoint_addr *a = expect_accept(ticket_from_hex(
        "00 " ID0 " 04 01 00 0a000002 01  01 00 0a000001 01  01 00 0a000002 01  00 03 613a62"));
    if (a) {
        CHECK_EQ_INT(iroh_endpoint_addr_len(a), 3);
        iroh_transport_addr t;
        iroh_endpoint_addr_get(a, 0, &t);
        CHECK_EQ_INT(t.kind, IROH_TRANSPORT_RELAY);
        CHECK_STR(t.relay_url, "a:b");
        iroh_endpoint_addr_get(a, 1, &t);
        CHECK_EQ_INT(t.ip.ip[3], 1);
        iroh_endpoint_addr_free(a);
    }
    /* non-minimal count 81 00 = 1 */
    a = expect_accept(ticket_from_hex("00 " ID0 " 8100 01 00 7f000001 8008"));
    if (a)
        CHECK_EQ_INT(iroh_endpoint_addr_len(a), 1);
    iroh_endpoint_addr_free(a);
    /* relay string "abc" is a relative URL */
    expect_reject(ticket_from_hex("00 " ID0 " 01 00 03 616263"), "relative url");
}

TEST(bad_tickets)
{
    expect_reject("", "empty");
    expect_reject("endpoint", "no body");
    expect_reject("endpoin", "short prefix");
    expect_reject("nodeaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qaa", "old prefix");
    expect_reject("endpointaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qa!", "bad char");
    expect_reject("endpointaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qa1", "digit 1");
    expect_reject("endpoint aab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qaa", "space");
    expect_reject("endpointaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qab", "trailing bits");
    expect_reject("endpointaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qaaaa", "length");
    /* oversized counts and lengths */
    expect_reject(ticket_from_hex("00 " ID0 " ffffffffffffffffff01"), "huge count");
    expect_reject(ticket_from_hex("00 " ID0 " 05 01 00 7f000001 01"), "count beyond data");
    expect_reject(ticket_from_hex("00 " ID0 " 01 00 ffffffff0f 68"), "huge relay length");
    /* overlong varints */
    expect_reject(ticket_from_hex("00 " ID0 " 01 01 00 7f000001 ffff07"), "port overflow");
    expect_reject(ticket_from_hex("00 " ID0 " 01 01 00 7f000001 808080"), "port too long");
    expect_reject(ticket_from_hex("00 " ID0 " 80808080808080808080 00"), "count too long");
    expect_reject(ticket_from_hex("00 " ID0 " 01 8080808010 00"), "kind overflow");
    /* bad inner values */
    expect_reject(ticket_from_hex("00 " ID0 " 01 01 02 7f000001 01"), "ip family 2");
    expect_reject(ticket_from_hex("00 " ID0 " 01 00 02 ff61"), "relay not utf-8");
    expect_reject(ticket_from_hex("00 " ID0 " 01 00 0a 687474703a2f2f5b3a5d"), "bad ipv6 host");
    expect_reject(ticket_from_hex("00 " ID0 " 01 02 01 00 1f 00000000000000000000000000000000000000"
                                  "000000000000000000000000"),
                  "custom inline size 31");
    expect_reject(ticket_from_hex("00 " ID0 " 01 02 01 02 00"), "custom form 2");
}

TEST(custom_addrs)
{
    iroh_endpoint_id id;
    iroh_endpoint_id_parse(ID0, &id);
    iroh_endpoint_addr *a = iroh_endpoint_addr_new(&id);
    uint8_t small[6] = {0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6}, big[40];
    for (int i = 0; i < 40; i++)
        big[i] = (uint8_t)i;
    CHECK_EQ_INT(iroh_endpoint_addr_add_custom(a, 1, small, sizeof small), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_addr_add_custom(a, 1, big, sizeof big), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_addr_add_custom(a, 0, NULL, 0), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_addr_add_custom(a, 1, small, sizeof small), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_addr_len(a), 3);
    iroh_transport_addr t;
    iroh_endpoint_addr_get(a, 0, &t);
    CHECK(t.custom_id == 0 && t.custom_len == 0);
    iroh_endpoint_addr_get(a, 1, &t);
    CHECK(t.custom_id == 1 && t.custom_len == 6); /* inline before heap */
    char text[128];
    ir_custom_addr_format(t.custom_id, t.custom_data, t.custom_len, text, sizeof text);
    CHECK_STR(text, "1_a1b2c3d4e5f6");
    /* released 1.0.x postcard form: inline = 00 size 30-bytes, heap = 01 len bytes */
    ir_buf b;
    ir_buf_init(&b);
    ir_endpoint_addr_encode(a, &b);
    uint8_t want_prefix[] = {0x03, 0x02, 0x00, 0x00, 0x00};
    CHECK_MEM(b.data + 32, want_prefix, sizeof want_prefix);
    CHECK_EQ_INT(b.len, 32 + 1 + (1 + 1 + 1 + 1 + 30) * 2 + (1 + 1 + 1 + 1 + 40));
    ir_pc_reader r;
    ir_pc_reader_init(&r, b.data, b.len);
    iroh_endpoint_addr *back = NULL;
    CHECK_EQ_INT(ir_endpoint_addr_decode(&r, IROH_ERR_INVALID_TICKET, &back), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_addr_len(back), 3);
    ir_buf b2;
    ir_buf_init(&b2);
    ir_endpoint_addr_encode(back, &b2);
    CHECK_EQ_INT(b2.len, b.len);
    CHECK_MEM(b2.data, b.data, b.len);
    ir_buf_free(&b);
    ir_buf_free(&b2);
    iroh_endpoint_addr_free(back);
    iroh_endpoint_addr_free(a);
}

static void check_sockaddr(const char *in, const char *out)
{
    iroh_socket_addr sa;
    char buf[IROH_SOCKET_ADDR_LEN];
    int rc = iroh_socket_addr_parse(in, &sa);
    if (!out) {
        if (rc == IROH_OK)
            fprintf(stderr, "  expected rejection: %s\n", in);
        CHECK_EQ_INT(rc, IROH_ERR_INVALID_ADDR);
        return;
    }
    CHECK_EQ_INT(rc, IROH_OK);
    CHECK_EQ_INT(iroh_socket_addr_to_string(&sa, buf, sizeof buf), IROH_OK);
    CHECK_STR(buf, out);
}

TEST(socket_addr_text)
{
    check_sockaddr("1.2.3.4:5", "1.2.3.4:5");
    check_sockaddr("255.255.255.255:65535", "255.255.255.255:65535");
    check_sockaddr("0.0.0.0:0", "0.0.0.0:0");
    check_sockaddr("1.2.3.4:0080", "1.2.3.4:80");
    check_sockaddr("[::]:1", "[::]:1");
    check_sockaddr("[::1]:7", "[::1]:7");
    check_sockaddr("[fe80::1%3]:1234", "[fe80::1]:1234");
    check_sockaddr("[2001:DB8:0:0:0:0:0:1]:443", "[2001:db8::1]:443");
    check_sockaddr("[1:0:0:2:0:0:0:3]:1", "[1:0:0:2::3]:1");
    check_sockaddr("[1:0:0:2:0:0:3:4]:1", "[1::2:0:0:3:4]:1");
    check_sockaddr("[1:0:2:3:4:5:6:7]:1", "[1:0:2:3:4:5:6:7]:1");
    check_sockaddr("[::ffff:1.2.3.4]:9", "[::ffff:1.2.3.4]:9");
    check_sockaddr("[::1.2.3.4]:9", "[::102:304]:9");
    check_sockaddr("[64:ff9b::1.2.3.4]:9", "[64:ff9b::102:304]:9");
    check_sockaddr("[1:2:3:4:5:6:7::]:1", "[1:2:3:4:5:6:7:0]:1");
    check_sockaddr("[1:2:3:4:5:6:1.2.3.4]:1", "[1:2:3:4:5:6:102:304]:1");
    check_sockaddr("1.2.3.4", NULL);
    check_sockaddr("1.2.3:4", NULL);
    check_sockaddr("01.2.3.4:5", NULL);
    check_sockaddr("256.2.3.4:5", NULL);
    check_sockaddr("1.2.3.4:65536", NULL);
    check_sockaddr("1.2.3.4:", NULL);
    check_sockaddr("1.2.3.4:5 ", NULL);
    check_sockaddr("::1:7", NULL);
    check_sockaddr("[::1]", NULL);
    check_sockaddr("[1:2:3:4:5:6:7:8:9]:1", NULL);
    check_sockaddr("[1::2::3]:1", NULL);
    check_sockaddr("[12345::]:1", NULL);
    check_sockaddr("[1:2:3:4:5:6:7:8::]:1", NULL);
    check_sockaddr("[::1%]:1", NULL);
    check_sockaddr("localhost:80", NULL);
    check_sockaddr("", NULL);
}

int main(void)
{
    RUN(spec_tickets);
    RUN(spec_decode_behaviour);
    RUN(bad_tickets);
    RUN(custom_addrs);
    RUN(socket_addr_text);
    TEST_EXIT();
}
