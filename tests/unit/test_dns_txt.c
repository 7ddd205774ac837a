/* iroh's TXT records read from resolver answers (spec 4.1 rules, one test each) and the
 * resolver's query / response checks (spec 4.5). Answers are built here with ldns from
 * zone-file text, so the tests say in plain words what the server sent. */
#include <ldns/ldns.h>
#include <stdarg.h>
#include <string.h>

#include "dns/endpoint_info.h"
#include "dns/txt_query.h"
#include "test.h"

/* the id of iroh's endpoint_info.rs test (spec 7.1) and another */
static const char *ID_HEX = "1992d53c02cdc04566e5c0edb1ce83305cd550297953a047a445ea3264b54b18";
static const char *NAME = "_iroh.dgjpkxyn3zyrk3zfads5duwdgbqpkwbjxfj4yt7rezidr3fijccy.dns.iroh.link.";
static uint8_t id[32];

/* A response to a TXT query for NAME (ID qid, flags given) with the answers given as zone
 * lines, NULL-terminated. */
static size_t response(uint8_t *out, size_t cap, uint16_t qid, int rcode, int tc, ...)
{
    ldns_rdf *qn = ldns_dname_new_frm_str(NAME);
    ldns_pkt *p = ldns_pkt_query_new(qn, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, LDNS_RD);
    ldns_pkt_set_id(p, qid);
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_ra(p, true);
    ldns_pkt_set_tc(p, tc != 0);
    ldns_pkt_set_rcode(p, (uint8_t)rcode);
    va_list ap;
    va_start(ap, tc);
    for (const char *line; (line = va_arg(ap, const char *)) != NULL;) {
        ldns_rr *rr = NULL;
        ldns_status st = ldns_rr_new_frm_str(&rr, line, 30, NULL, NULL);
        if (st != LDNS_STATUS_OK) {
            fprintf(stderr, "bad zone line in test: %s (%s)\n", line, ldns_get_errorstr_by_id(st));
            abort();
        }
        ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    }
    va_end(ap);
    uint8_t *wire = NULL;
    size_t n = 0;
    if (ldns_pkt2wire(&wire, p, &n) != LDNS_STATUS_OK || n > cap)
        abort();
    memcpy(out, wire, n);
    free(wire);
    ldns_pkt_free(p);
    return n;
}

#define TXT(s) "_iroh.dgjpkxyn3zyrk3zfads5duwdgbqpkwbjxfj4yt7rezidr3fijccy.dns.iroh.link. 30 IN TXT " s

static int from(ir_endpoint_info *ei, uint8_t *msg, size_t n)
{
    return ir_endpoint_info_from_dns(id, "dns.iroh.link.", msg, n, ei);
}

static void check_addr(const iroh_socket_addr *a, const char *text)
{
    char buf[IROH_SOCKET_ADDR_LEN];
    CHECK_EQ_INT(iroh_socket_addr_to_string(a, buf, sizeof buf), 0);
    CHECK_STR(buf, text);
}

TEST(iroh_hickory_vector)
{
    /* iroh-dns endpoint_info.rs test_from_hickory_lookup: two addrs, an A record, a relay
     * under another id and under the bare origin (ignored here by name), the relay */
    uint8_t m[2048];
    size_t n = response(m, sizeof m, 7, 0, 0, TXT("\"addr=192.168.96.145:60165\""),
                        TXT("\"addr=213.208.157.87:60165\""),
                        "_iroh.dgjpkxyn3zyrk3zfads5duwdgbqpkwbjxfj4yt7rezidr3fijccy.dns.iroh.link. 30 IN A 127.0.0.1",
                        "_iroh.yqooxx9u3aemh8mo5wcqq16yufu6jitouq1o4za751dger1igghy.dns.iroh.link. 30 IN TXT \"relay=https://other.example./\"",
                        "dns.iroh.link. 30 IN TXT \"relay=https://bare.example./\"",
                        TXT("\"relay=https://euw1-1.relay.iroh.network./\""), NULL);
    ir_endpoint_info ei;
    CHECK_EQ_INT(from(&ei, m, n), 3);
    CHECK_MEM(ei.id, id, 32);
    CHECK_STR(ei.relay, "https://euw1-1.relay.iroh.network./");
    CHECK_EQ_INT(ei.n_addrs, 2);
    check_addr(&ei.addrs[0], "192.168.96.145:60165");
    check_addr(&ei.addrs[1], "213.208.157.87:60165");
    CHECK_EQ_INT(ei.has_user_data, 0);
}

TEST(value_ends_at_second_equals)
{
    uint8_t m[2048];
    size_t n = response(m, sizeof m, 1, 0, 0, TXT("\"addr=10.0.0.1:7=junk\""),
                        TXT("\"user-data=a=b=c\""), NULL);
    ir_endpoint_info ei;
    CHECK_EQ_INT(from(&ei, m, n), 2);
    CHECK_EQ_INT(ei.n_addrs, 1);
    check_addr(&ei.addrs[0], "10.0.0.1:7");
    CHECK_STR(ei.user_data, "a");
}

TEST(no_equals_fails_the_set)
{
    uint8_t m[2048];
    size_t n = response(m, sizeof m, 1, 0, 0, TXT("\"relay=https://a.example/\""),
                        TXT("\"addr=10.0.0.1:7\""), TXT("\"relay\""), NULL);
    ir_endpoint_info ei;
    CHECK_EQ_INT(from(&ei, m, n), IROH_ERR_INVALID_ARGUMENT);
    CHECK(strstr(iroh_last_error(), "'='") != NULL);
    /* nothing half-read is left behind */
    CHECK_EQ_INT(ei.n_addrs, 0);
    CHECK_STR(ei.relay, "");
    /* an empty string has no '=' either */
    n = response(m, sizeof m, 1, 0, 0, TXT("\"addr=10.0.0.1:7\""), TXT("\"\""), NULL);
    CHECK_EQ_INT(from(&ei, m, n), IROH_ERR_INVALID_ARGUMENT);
}

TEST(unknown_key_fails_the_set)
{
    const char *bad[] = { TXT("\"foo=bar\""), TXT("\"Relay=https://a.example/\""),
                          TXT("\"=x\""), TXT("\"addrs=1.2.3.4:5\""), TXT("\"user_data=x\"") };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t m[2048];
        size_t n = response(m, sizeof m, 1, 0, 0, TXT("\"addr=10.0.0.1:7\""), bad[i], NULL);
        ir_endpoint_info ei;
        CHECK_EQ_INT(from(&ei, m, n), IROH_ERR_INVALID_ARGUMENT);
        CHECK(strstr(iroh_last_error(), "unknown key") != NULL);
    }
}

TEST(bad_values_are_skipped)
{
    uint8_t m[4096];
    size_t n = response(m, sizeof m, 1, 0, 0, TXT("\"relay=not a url\""), TXT("\"relay=\""),
                        TXT("\"relay=HTTPS://Example.COM:443\""), TXT("\"relay=https://second.example/\""),
                        TXT("\"addr=1.2.3.4\""), TXT("\"addr=01.2.3.4:5\""), TXT("\"addr=[::1]:70000\""),
                        TXT("\"addr=1_abcd\""), TXT("\"addr=[2001:db8::1]:4433\""),
                        TXT("\"addr=\""), TXT("\"addr=1.2.3.4:5\""), NULL);
    ir_endpoint_info ei;
    CHECK_EQ_INT(from(&ei, m, n), 11);
    CHECK_STR(ei.relay, "https://example.com/");
    CHECK_EQ_INT(ei.n_addrs, 2);
    check_addr(&ei.addrs[0], "[2001:db8::1]:4433");
    check_addr(&ei.addrs[1], "1.2.3.4:5");
}

TEST(first_user_data_only)
{
    char long_ud[400];
    memset(long_ud, 0, sizeof long_ud);
    strcpy(long_ud, TXT("\"user-data=\" \"")); /* two strings: one cannot hold 256 bytes */
    size_t l = strlen(long_ud);
    memset(long_ud + l, 'x', 246);
    strcpy(long_ud + l + 246, "\"");
    uint8_t m[4096];
    ir_endpoint_info ei;
    /* 246 bytes: too long, and the next one does not stand in */
    size_t n = response(m, sizeof m, 1, 0, 0, long_ud, TXT("\"user-data=short\""), NULL);
    CHECK_EQ_INT(from(&ei, m, n), 2);
    CHECK_EQ_INT(ei.has_user_data, 0);
    /* 245 bytes: kept; a second one ignored */
    strcpy(long_ud + l + 245, "\"");
    n = response(m, sizeof m, 1, 0, 0, long_ud, TXT("\"user-data=short\""), NULL);
    CHECK_EQ_INT(from(&ei, m, n), 2);
    CHECK_EQ_INT(ei.has_user_data, 1);
    CHECK_EQ_INT(strlen(ei.user_data), 245);
    n = response(m, sizeof m, 1, 0, 0, TXT("\"user-data=\""), TXT("\"user-data=short\""), NULL);
    CHECK_EQ_INT(from(&ei, m, n), 2);
    CHECK_EQ_INT(ei.has_user_data, 1);
    CHECK_STR(ei.user_data, "");
}

TEST(strings_concatenated)
{
    uint8_t m[2048];
    size_t n = response(m, sizeof m, 1, 0, 0, TXT("\"addr=10.0\" \".0.1:\" \"7\""),
                        TXT("\"rel\" \"ay=https://a.example/\""), NULL);
    ir_endpoint_info ei;
    CHECK_EQ_INT(from(&ei, m, n), 2);
    CHECK_EQ_INT(ei.n_addrs, 1);
    check_addr(&ei.addrs[0], "10.0.0.1:7");
    CHECK_STR(ei.relay, "https://a.example/");
}

TEST(owner_rules)
{
    uint8_t m[4096];
    /* the owner compares case-insensitively; a name under ours, the bare origin, another
     * id and other types are not read */
    size_t n = response(m, sizeof m, 1, 0, 0,
                        "_IROH.DGJPKXYN3ZYRK3ZFADS5DUWDGBQPKWBJXFJ4YT7REZIDR3FIJCCY.Dns.Iroh.Link. 30 IN TXT \"addr=10.0.0.1:7\"",
                        "x._iroh.dgjpkxyn3zyrk3zfads5duwdgbqpkwbjxfj4yt7rezidr3fijccy.dns.iroh.link. 30 IN TXT \"junk\"",
                        "dns.iroh.link. 30 IN TXT \"junk\"",
                        "_iroh.yqooxx9u3aemh8mo5wcqq16yufu6jitouq1o4za751dger1igghy.dns.iroh.link. 30 IN TXT \"junk\"",
                        "_iroh.dgjpkxyn3zyrk3zfads5duwdgbqpkwbjxfj4yt7rezidr3fijccy.dns.iroh.link. 30 IN SPF \"junk\"",
                        NULL);
    ir_endpoint_info ei;
    CHECK_EQ_INT(from(&ei, m, n), 1);
    CHECK_EQ_INT(ei.n_addrs, 1);
    /* a pkarr-style owner (no origin) is not the answer's name either */
    n = response(m, sizeof m, 1, 0, 0,
                 "_iroh.dgjpkxyn3zyrk3zfads5duwdgbqpkwbjxfj4yt7rezidr3fijccy. 30 IN TXT \"addr=10.0.0.1:7\"",
                 NULL);
    CHECK_EQ_INT(from(&ei, m, n), 0);
    CHECK_EQ_INT(ei.n_addrs, 0);
    CHECK_EQ_INT(ir_endpoint_info_from_dns(id, NULL, m, n, &ei), 1);
    CHECK_EQ_INT(ei.n_addrs, 1);
}

TEST(cname_chain)
{
    uint8_t m[4096];
    size_t n = response(m, sizeof m, 1, 0, 0, "_iroh.dgjpkxyn3zyrk3zfads5duwdgbqpkwbjxfj4yt7rezidr3fijccy.dns.iroh.link. 30 IN CNAME a.example.", "a.example. 30 IN CNAME b.example.",
                        "b.example. 30 IN TXT \"addr=10.0.0.9:9\"", "c.example. 30 IN TXT \"addr=10.0.0.8:8\"", NULL);
    ir_endpoint_info ei;
    CHECK_EQ_INT(from(&ei, m, n), 1);
    CHECK_EQ_INT(ei.n_addrs, 1);
    check_addr(&ei.addrs[0], "10.0.0.9:9");
    /* a CNAME loop ends */
    n = response(m, sizeof m, 1, 0, 0, "_iroh.dgjpkxyn3zyrk3zfads5duwdgbqpkwbjxfj4yt7rezidr3fijccy.dns.iroh.link. 30 IN CNAME a.example.", "a.example. 30 IN CNAME _iroh.dgjpkxyn3zyrk3zfads5duwdgbqpkwbjxfj4yt7rezidr3fijccy.dns.iroh.link.", NULL);
    CHECK_EQ_INT(from(&ei, m, n), 0);
}

TEST(not_utf8_is_skipped)
{
    uint8_t m[2048];
    /* a record that is no UTF-8 is skipped, even one that would fail the set */
    size_t n = response(m, sizeof m, 1, 0, 0, TXT("\"junk\\255\""), TXT("\"addr=10.0.0.1:7\""),
                        TXT("\"user-data=\\195\\169\""), NULL);
    ir_endpoint_info ei;
    CHECK_EQ_INT(from(&ei, m, n), 2);
    CHECK_EQ_INT(ei.n_addrs, 1);
    CHECK_STR(ei.user_data, "\xc3\xa9");
    /* a NUL inside a value: the value is skipped */
    n = response(m, sizeof m, 1, 0, 0, TXT("\"user-data=a\\000b\""), TXT("\"relay=https://a.example/\\000\""), NULL);
    CHECK_EQ_INT(from(&ei, m, n), 2);
    CHECK_EQ_INT(ei.has_user_data, 0);
    CHECK_STR(ei.relay, "");
}

TEST(addr_dedup_and_cap)
{
    static uint8_t m[16384];
    ldns_rdf *qn = ldns_dname_new_frm_str(NAME);
    ldns_pkt *p = ldns_pkt_query_new(qn, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, 0);
    ldns_pkt_set_qr(p, true);
    for (int i = 0; i < 50; i++) {
        char line[300];
        snprintf(line, sizeof line, TXT("\"addr=10.0.%d.1:%d\""), i % 40, 1000 + i % 40);
        ldns_rr *rr = NULL;
        if (ldns_rr_new_frm_str(&rr, line, 30, NULL, NULL) != LDNS_STATUS_OK)
            abort();
        ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    }
    uint8_t *wire = NULL;
    size_t n = 0;
    CHECK(ldns_pkt2wire(&wire, p, &n) == LDNS_STATUS_OK && n <= sizeof m);
    memcpy(m, wire, n);
    free(wire);
    ldns_pkt_free(p);
    ir_endpoint_info ei;
    CHECK_EQ_INT(from(&ei, m, n), 50);
    CHECK_EQ_INT(ei.n_addrs, IR_ENDPOINT_INFO_MAX_ADDRS);
    check_addr(&ei.addrs[31], "10.0.31.1:1031");
}

TEST(garbage_refused)
{
    ir_endpoint_info ei;
    uint8_t junk[] = { 0, 1, 0x80, 0, 0, 0, 0, 9, 0, 0 };
    CHECK_EQ_INT(from(&ei, junk, sizeof junk), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(from(&ei, junk, 0), IROH_ERR_INVALID_ARGUMENT);
    /* too long an origin */
    char origin[300];
    memset(origin, 'a', sizeof origin - 1);
    origin[sizeof origin - 1] = 0;
    uint8_t m[2048];
    size_t n = response(m, sizeof m, 1, 0, 0, TXT("\"addr=10.0.0.1:7\""), NULL);
    CHECK_EQ_INT(ir_endpoint_info_from_dns(id, origin, m, n, &ei), IROH_ERR_INVALID_ARGUMENT);
}

TEST(query_bytes)
{
    uint8_t q[512];
    size_t n = 0;
    CHECK_EQ_INT(ir_dns_txt_query(id, "dns.iroh.link.", 0x1234, q, sizeof q, &n), 0);
    ldns_pkt *p = NULL;
    CHECK(ldns_wire2pkt(&p, q, n) == LDNS_STATUS_OK);
    if (!p)
        return;
    CHECK_EQ_INT(ldns_pkt_id(p), 0x1234);
    CHECK(!ldns_pkt_qr(p));
    CHECK(ldns_pkt_rd(p));
    CHECK_EQ_INT(ldns_pkt_qdcount(p), 1);
    CHECK_EQ_INT(ldns_pkt_ancount(p), 0);
    CHECK_EQ_INT(ldns_pkt_edns_udp_size(p), IR_DNS_EDNS_UDP_SIZE);
    const ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_question(p), 0);
    CHECK_EQ_INT(ldns_rr_get_type(rr), LDNS_RR_TYPE_TXT);
    CHECK_EQ_INT(ldns_rr_get_class(rr), LDNS_RR_CLASS_IN);
    char *s = ldns_rdf2str(ldns_rr_owner(rr));
    CHECK_STR(s, NAME);
    free(s);
    ldns_pkt_free(p);
    /* the name on the wire: 12-byte header, then the labels */
    CHECK_EQ_INT(q[12], 5);
    CHECK_MEM(q + 13, "_iroh", 5);
    CHECK_EQ_INT(q[18], 52);
    /* origin without the dot is the same query; a tiny buffer says what it needs */
    uint8_t q2[512];
    size_t n2 = 0;
    CHECK_EQ_INT(ir_dns_txt_query(id, "dns.iroh.link", 0x1234, q2, sizeof q2, &n2), 0);
    CHECK_EQ_INT(n2, n);
    CHECK_MEM(q2, q, n);
    CHECK_EQ_INT(ir_dns_txt_query(id, "dns.iroh.link", 0x1234, q2, 10, &n2), IROH_ERR_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(n2, n);
    CHECK_EQ_INT(ir_dns_txt_query(id, "", 1, q2, sizeof q2, &n2), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(ir_dns_txt_query(id, NULL, 1, q2, sizeof q2, &n2), IROH_ERR_INVALID_ARGUMENT);
}

TEST(response_checks)
{
    uint8_t m[2048];
    ir_endpoint_info ei;
    int rcode = -1;
    const char *O = "dns.iroh.link";
    size_t n = response(m, sizeof m, 77, 0, 0, TXT("\"addr=10.0.0.1:7\""), NULL);
    CHECK_EQ_INT(ir_dns_txt_response(id, O, 77, m, n, &ei, &rcode), IR_DNS_TXT_FOUND);
    CHECK_EQ_INT(rcode, 0);
    CHECK_EQ_INT(ei.n_addrs, 1);
    /* not ours: another ID, no QR, another question */
    CHECK_EQ_INT(ir_dns_txt_response(id, O, 78, m, n, &ei, &rcode), IROH_ERR_INVALID_ARGUMENT);
    m[2] &= 0x7f;
    CHECK_EQ_INT(ir_dns_txt_response(id, O, 77, m, n, &ei, &rcode), IROH_ERR_INVALID_ARGUMENT);
    m[2] |= 0x80;
    CHECK_EQ_INT(ir_dns_txt_response(id, "dns.iroh.lin", 77, m, n, &ei, &rcode), IROH_ERR_INVALID_ARGUMENT);
    uint8_t other[32];
    CHECK_EQ_INT(iroh_endpoint_id_parse("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",
                                        (iroh_endpoint_id *)other), 0);
    CHECK_EQ_INT(ir_dns_txt_response(other, O, 77, m, n, &ei, &rcode), IROH_ERR_INVALID_ARGUMENT);
    /* a query (our own echoed) is no response */
    uint8_t q[512];
    size_t qn = 0;
    CHECK_EQ_INT(ir_dns_txt_query(id, O, 77, q, sizeof q, &qn), 0);
    CHECK_EQ_INT(ir_dns_txt_response(id, O, 77, q, qn, &ei, &rcode), IROH_ERR_INVALID_ARGUMENT);
    /* truncated, NXDOMAIN, SERVFAIL, REFUSED, empty NOERROR, records that fail parsing */
    n = response(m, sizeof m, 5, 0, 1, NULL);
    CHECK_EQ_INT(ir_dns_txt_response(id, O, 5, m, n, &ei, &rcode), IR_DNS_TXT_TRUNCATED);
    n = response(m, sizeof m, 5, LDNS_RCODE_NXDOMAIN, 0, NULL);
    CHECK_EQ_INT(ir_dns_txt_response(id, O, 5, m, n, &ei, &rcode), IR_DNS_TXT_NONE);
    CHECK_EQ_INT(rcode, 3);
    n = response(m, sizeof m, 5, LDNS_RCODE_SERVFAIL, 0, NULL);
    CHECK_EQ_INT(ir_dns_txt_response(id, O, 5, m, n, &ei, &rcode), IR_DNS_TXT_FAILED);
    n = response(m, sizeof m, 5, LDNS_RCODE_REFUSED, 0, NULL);
    CHECK_EQ_INT(ir_dns_txt_response(id, O, 5, m, n, &ei, &rcode), IR_DNS_TXT_FAILED);
    n = response(m, sizeof m, 5, 0, 0, NULL);
    CHECK_EQ_INT(ir_dns_txt_response(id, O, 5, m, n, &ei, &rcode), IR_DNS_TXT_NONE);
    n = response(m, sizeof m, 5, 0, 0, TXT("\"addr=10.0.0.1:7\""), TXT("\"bogus\""), NULL);
    CHECK_EQ_INT(ir_dns_txt_response(id, O, 5, m, n, &ei, &rcode), IR_DNS_TXT_FAILED);
    /* garbage */
    CHECK_EQ_INT(ir_dns_txt_response(id, O, 5, m, 11, &ei, &rcode), IROH_ERR_INVALID_ARGUMENT);
}

int main(void)
{
    CHECK_EQ_INT(iroh_endpoint_id_parse(ID_HEX, (iroh_endpoint_id *)id), 0);
    RUN(iroh_hickory_vector);
    RUN(value_ends_at_second_equals);
    RUN(no_equals_fails_the_set);
    RUN(unknown_key_fails_the_set);
    RUN(bad_values_are_skipped);
    RUN(first_user_data_only);
    RUN(strings_concatenated);
    RUN(owner_rules);
    RUN(cname_chain);
    RUN(not_utf8_is_skipped);
    RUN(addr_dedup_and_cap);
    RUN(garbage_refused);
    RUN(query_bytes);
    RUN(response_checks);
    TEST_EXIT();
}
