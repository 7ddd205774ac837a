/* The DNS server's sans-IO core and its store, on chosen clocks: the store's newer-only
 * rule (timestamp, then DNS bytes), 7-day expiry on lookup and by the sweep, the LRU cache
 * (bounded, answering a hot key without the file: a row deleted behind its back is still
 * served), DNS answers re-rooted from the spec 7.3 packet, relative owners, NXDOMAIN /
 * NODATA, REFUSED, FORMERR, truncation by the client's EDNS size, the PUT rate limiter's
 * burst and refill on a virtual clock (per IP, IPv6 by /64), and the HTTP routes. */
#include <ctype.h>
#include <ldns/ldns.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns/endpoint_info.h"
#include "dns/pkarr.h"
#include "dnsserver/core.h"
#include "dnsserver/dnsserver.h"
#include "dnsserver/store.h"
#include "test.h"

static const uint64_t DAY_US = 86400ULL * 1000000;
static const uint64_t T0 = 1700000000000000ULL;

static void key_n(iroh_secret_key *sk, uint8_t n)
{
    for (int i = 0; i < 32; i++)
        sk->bytes[i] = (uint8_t)(i + n);
}

/* an iroh record of key n (relay URL given) signed at ts */
static void packet(uint8_t n, uint64_t ts, const char *relay, ir_pkarr_packet *p)
{
    iroh_secret_key sk;
    iroh_endpoint_id id;
    key_n(&sk, n);
    iroh_secret_key_public(&sk, &id);
    static ir_endpoint_info ei;
    memset(&ei, 0, sizeof ei);
    memcpy(ei.id, id.bytes, 32);
    snprintf(ei.relay, sizeof ei.relay, "%s", relay);
    uint8_t dns[1000];
    size_t len = 0;
    CHECK_EQ_INT(ir_endpoint_info_to_dns(&ei, 30, dns, sizeof dns, &len), IROH_OK);
    CHECK_EQ_INT(ir_pkarr_sign(&sk, ts, dns, len, p), IROH_OK);
}

static void z32_of(uint8_t n, char *z)
{
    iroh_secret_key sk;
    iroh_endpoint_id id;
    key_n(&sk, n);
    iroh_secret_key_public(&sk, &id);
    iroh_endpoint_id_to_z32(&id, z, 64);
}

static ir_pkarr_packet P1, P2, P3;

TEST(store_newer_only_and_expiry)
{
    ir_dnss_store *st;
    CHECK_EQ_INT(ir_dnss_store_open(NULL, 0, &st), IROH_OK);
    packet(0, T0, "https://a.example./", &P1);
    packet(0, T0 + 1, "https://b.example./", &P2);
    packet(0, T0 - 1, "https://c.example./", &P3);
    CHECK_EQ_INT(ir_dnss_store_put(st, &P1), 1);
    CHECK_EQ_INT(ir_dnss_store_put(st, &P1), 0); /* the same: not newer */
    CHECK_EQ_INT(ir_dnss_store_put(st, &P2), 1);
    CHECK_EQ_INT(ir_dnss_store_put(st, &P3), 0); /* older */
    static ir_pkarr_packet got;
    CHECK_EQ_INT(ir_dnss_store_get(st, P2.key, T0, &got), 1);
    CHECK_EQ_INT(got.timestamp_us, P2.timestamp_us);
    CHECK(got.dns_len == P2.dns_len && memcmp(got.dns, P2.dns, got.dns_len) == 0);
    CHECK_MEM(got.sig, P2.sig, 64);
    /* a tie on the timestamp: the larger DNS bytes win, whichever comes first */
    packet(1, T0, "https://a.example./", &P1);
    packet(1, T0, "https://z.example./", &P3);
    int a_larger = ir_pkarr_more_recent(&P1, &P3);
    CHECK_EQ_INT(ir_dnss_store_put(st, a_larger ? &P3 : &P1), 1);
    CHECK_EQ_INT(ir_dnss_store_put(st, a_larger ? &P1 : &P3), 1);
    CHECK_EQ_INT(ir_dnss_store_put(st, a_larger ? &P3 : &P1), 0);
    CHECK_EQ_INT(ir_dnss_store_get(st, P1.key, T0, &got), 1);
    CHECK(memcmp(got.dns, (a_larger ? &P1 : &P3)->dns, got.dns_len) == 0);
    CHECK_EQ_INT(ir_dnss_store_count(st), 2);
    /* expiry: 7 days after the packet's timestamp, on lookup and by the sweep */
    CHECK_EQ_INT(ir_dnss_store_get(st, P2.key, T0 + 7 * DAY_US, &got), 1);
    CHECK_EQ_INT(ir_dnss_store_get(st, P2.key, T0 + 7 * DAY_US + 2, &got), 0);
    CHECK_EQ_INT(ir_dnss_store_expire(st, T0 + 7 * DAY_US), 0);
    CHECK_EQ_INT(ir_dnss_store_expire(st, T0 + 7 * DAY_US + 2), 2);
    CHECK_EQ_INT(ir_dnss_store_count(st), 0);
    CHECK_EQ_INT(ir_dnss_store_get(st, P2.key, T0, &got), 0);
    /* an expired key takes a new packet of any age */
    CHECK_EQ_INT(ir_dnss_store_put(st, &P2), 1);
    ir_dnss_store_free(st);
}

/* A timestamp of 2^63 or more (pkarr's is a u64) is stored and served, and the sweep does
 * not take it for an expired one (SQLite's signed integer made it negative: the next sweep
 * deleted the row) */
TEST(store_timestamp_above_int64)
{
    ir_dnss_store *st;
    CHECK_EQ_INT(ir_dnss_store_open(NULL, 0, &st), IROH_OK);
    static ir_pkarr_packet p, got;
    uint64_t big = (1ULL << 63) + 5;
    packet(20, big, "https://a.example./", &p);
    CHECK_EQ_INT(ir_dnss_store_put(st, &p), 1);
    CHECK_EQ_INT(ir_dnss_store_flush(st), IROH_OK);
    CHECK_EQ_INT(ir_dnss_store_expire(st, T0), 0);
    CHECK_EQ_INT(ir_dnss_store_count(st), 1);
    CHECK_EQ_INT(ir_dnss_store_get(st, p.key, T0, &got), 1);
    CHECK(got.timestamp_us == big);
    ir_dnss_store_free(st);
}

/* A COMMIT that fails with the transaction left open (here a deferred foreign key that a
 * trigger breaks) loses that batch but does not wedge the store: the next put begins a
 * new transaction and is committed (before: every BEGIN failed from then on), and the
 * cache does not serve the lost packet */
TEST(store_failed_commit_goes_on)
{
    ir_dnss_store *st;
    CHECK_EQ_INT(ir_dnss_store_open(NULL, 0, &st), IROH_OK);
    CHECK_EQ_INT(ir_dnss_store_exec(st, "PRAGMA foreign_keys=ON;"
                                        "CREATE TABLE parent(id INTEGER PRIMARY KEY);"
                                        "CREATE TABLE child(p INTEGER REFERENCES parent(id)"
                                        " DEFERRABLE INITIALLY DEFERRED);"
                                        "CREATE TRIGGER breaks AFTER INSERT ON signed_packets"
                                        " BEGIN INSERT INTO child VALUES (1); END;"),
                 IROH_OK);
    static ir_pkarr_packet a, b, got;
    packet(21, T0, "https://a.example./", &a);
    packet(22, T0, "https://b.example./", &b);
    CHECK_EQ_INT(ir_dnss_store_put(st, &a), 1);
    CHECK_EQ_INT(ir_dnss_store_flush(st), IROH_ERR_IO);
    /* the trigger goes (and what it inserted, should the transaction still be open) */
    CHECK_EQ_INT(ir_dnss_store_exec(st, "DROP TRIGGER breaks; DELETE FROM child;"), IROH_OK);
    CHECK_EQ_INT(ir_dnss_store_put(st, &b), 1);
    CHECK_EQ_INT(ir_dnss_store_flush(st), IROH_OK);
    CHECK_EQ_INT(ir_dnss_store_get(st, b.key, T0, &got), 1);
    CHECK_EQ_INT(ir_dnss_store_get(st, a.key, T0, &got), 0); /* lost with its batch */
    CHECK_EQ_INT(ir_dnss_store_count(st), 1);
    ir_dnss_store_free(st);
}

static long rows(sqlite3 *db)
{
    sqlite3_stmt *q;
    long n = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM signed_packets", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

TEST(store_cache_lru_and_file)
{
    char path[] = "/tmp/test_dnsserver_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    ir_dnss_store *st;
    CHECK_EQ_INT(ir_dnss_store_open(path, 2, &st), IROH_OK);
    static ir_pkarr_packet p[4], got;
    for (int i = 0; i < 4; i++) {
        packet((uint8_t)(10 + i), T0, "https://a.example./", &p[i]);
        CHECK_EQ_INT(ir_dnss_store_put(st, &p[i]), 1);
    }
    ir_dnss_store_stats s0, s1;
    ir_dnss_store_get_stats(st, &s0);
    CHECK_EQ_INT(s0.cached, 2); /* bounded by the capacity */
    /* the two last put are cached: answered without the database */
    CHECK_EQ_INT(ir_dnss_store_get(st, p[3].key, T0, &got), 1);
    CHECK_EQ_INT(ir_dnss_store_get(st, p[2].key, T0, &got), 1);
    ir_dnss_store_get_stats(st, &s1);
    CHECK_EQ_INT(s1.cache_hits - s0.cache_hits, 2);
    CHECK_EQ_INT(s1.cache_misses, s0.cache_misses);
    /* a row deleted behind the store's back: the hot key is still served from memory,
     * the cold one (evicted) is read from the file and is gone */
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    /* the writes are batched: another reader sees them once flushed */
    CHECK_EQ_INT(rows(db), 0);
    CHECK_EQ_INT(ir_dnss_store_flush(st), IROH_OK);
    CHECK_EQ_INT(rows(db), 4);
    CHECK_EQ_INT(sqlite3_exec(db, "DELETE FROM signed_packets", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    CHECK_EQ_INT(ir_dnss_store_get(st, p[2].key, T0, &got), 1);
    CHECK_EQ_INT(ir_dnss_store_get(st, p[0].key, T0, &got), 0);
    /* the miss is remembered: a put replaces it */
    CHECK_EQ_INT(ir_dnss_store_put(st, &p[0]), 1);
    CHECK_EQ_INT(ir_dnss_store_get(st, p[0].key, T0, &got), 1);
    ir_dnss_store_free(st);
    /* reopened: what the file holds survives */
    CHECK_EQ_INT(ir_dnss_store_open(path, 0, &st), IROH_OK);
    CHECK_EQ_INT(ir_dnss_store_count(st), 1);
    CHECK_EQ_INT(ir_dnss_store_get(st, p[0].key, T0, &got), 1);
    CHECK(got.dns_len == p[0].dns_len && memcmp(got.dns, p[0].dns, got.dns_len) == 0);
    ir_dnss_store_free(st);
    unlink(path);
    char wal[64];
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", path);
    unlink(wal);
    CHECK(ir_dnss_store_open("/nonexistent/dir/x.db", 0, &st) == IROH_ERR_IO);
}

/* ---- DNS ------------------------------------------------------------------------------ */

static ir_dnss_store *g_st;
static ir_dnss *g_s;

static void core_new(const char *origin, int rate)
{
    ir_dnss_config cfg;
    ir_dnss_config_init(&cfg);
    cfg.origins[0] = origin;
    cfg.n_origins = 1;
    cfg.rr_ns = "ns1.example.";
    cfg.rate_limit = rate;
    CHECK_EQ_INT(ir_dnss_store_open(NULL, 0, &g_st), IROH_OK);
    CHECK_EQ_INT(ir_dnss_new(&cfg, g_st, &g_s), IROH_OK);
}

static void core_free(void)
{
    ir_dnss_free(g_s);
    ir_dnss_store_free(g_st);
}

/* asks name/type (edns: 0 none, else the UDP size) over transport; returns the parsed
 * response or NULL when nothing was sent */
static ldns_pkt *ask(int transport, const char *name, ldns_rr_type t, int edns, size_t *len)
{
    ldns_pkt *q = NULL;
    CHECK(ldns_pkt_query_new_frm_str(&q, name, t, LDNS_RR_CLASS_IN, LDNS_RD) == LDNS_STATUS_OK);
    ldns_pkt_set_id(q, 0x4242);
    if (edns)
        ldns_pkt_set_edns_udp_size(q, (uint16_t)edns);
    uint8_t *w = NULL;
    size_t wl = 0;
    CHECK(ldns_pkt2wire(&w, q, &wl) == LDNS_STATUS_OK);
    ldns_pkt_free(q);
    static uint8_t out[65536];
    size_t n = 0;
    int sent = ir_dnss_dns(g_s, transport, w, wl, T0, out, sizeof out, &n);
    free(w);
    if (!sent)
        return NULL;
    if (len)
        *len = n;
    ldns_pkt *r = NULL;
    CHECK(ldns_wire2pkt(&r, out, n) == LDNS_STATUS_OK);
    CHECK_EQ_INT(ldns_pkt_id(r), 0x4242);
    CHECK(ldns_pkt_qr(r));
    CHECK(ldns_pkt_rd(r));
    return r;
}

static char *answer_text(ldns_pkt *r, size_t i)
{
    return ldns_rr2str(ldns_rr_list_rr(ldns_pkt_answer(r), i));
}

TEST(dns_answers_spec_vector)
{
    core_new("dns.iroh.link", IR_DNSS_RATE_SIMPLE);
    /* the spec 7.3 packet: key 0..31, relay use1-1 */
    iroh_secret_key sk;
    key_n(&sk, 0);
    static ir_pkarr_packet p;
    static ir_endpoint_info ei;
    iroh_endpoint_id id;
    iroh_secret_key_public(&sk, &id);
    memcpy(ei.id, id.bytes, 32);
    strcpy(ei.relay, "https://use1-1.relay.n0.iroh.link./");
    uint8_t dns[1000];
    size_t len;
    CHECK_EQ_INT(ir_endpoint_info_to_dns(&ei, 30, dns, sizeof dns, &len), IROH_OK);
    CHECK_EQ_INT(ir_pkarr_sign(&sk, T0, dns, len, &p), IROH_OK);
    CHECK_EQ_INT(ir_dnss_store_put(g_st, &p), 1);
    const char *z = "yqooxx9u3aemh8mo5wcqq16yufu6jitouq1o4za751dger1igghy";
    char name[200];
    snprintf(name, sizeof name, "_iroh.%s.dns.iroh.link.", z);
    ldns_pkt *r = ask(IR_DNSS_UDP, name, LDNS_RR_TYPE_TXT, 0, NULL);
    CHECK(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_NOERROR && ldns_pkt_aa(r));
    CHECK_EQ_INT(ldns_pkt_ancount(r), 1);
    char *t = answer_text(r, 0);
    char want[300];
    snprintf(want, sizeof want, "%s\t30\tIN\tTXT\t\"relay=https://use1-1.relay.n0.iroh.link./\"\n", name);
    CHECK_STR(t, want);
    free(t);
    ldns_pkt_free(r);
    /* the record as dnsrec's reader (the endpoint's resolver) takes it from our answer */
    {
        ldns_pkt *q = NULL;
        ldns_pkt_query_new_frm_str(&q, name, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, 0);
        uint8_t *w;
        size_t wl, n;
        ldns_pkt2wire(&w, q, &wl);
        ldns_pkt_free(q);
        static uint8_t out[4096];
        CHECK_EQ_INT(ir_dnss_dns(g_s, IR_DNSS_TCP, w, wl, T0, out, sizeof out, &n), 1);
        free(w);
        static ir_endpoint_info got;
        CHECK_EQ_INT(ir_endpoint_info_from_dns(id.bytes, "dns.iroh.link", out, n, &got), 1); /* records read */
        CHECK_STR(got.relay, "https://use1-1.relay.n0.iroh.link./");
    }
    /* ANY gives the same record; A gives NODATA (NOERROR, SOA, no answer) */
    r = ask(IR_DNSS_UDP, name, LDNS_RR_TYPE_ANY, 0, NULL);
    CHECK(r && ldns_pkt_ancount(r) == 1);
    ldns_pkt_free(r);
    r = ask(IR_DNSS_UDP, name, LDNS_RR_TYPE_A, 0, NULL);
    CHECK(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_NOERROR && ldns_pkt_ancount(r) == 0 && ldns_pkt_nscount(r) == 1);
    ldns_pkt_free(r);
    /* the key's own name is an empty non-terminal: NODATA, not NXDOMAIN */
    snprintf(name, sizeof name, "%s.dns.iroh.link.", z);
    r = ask(IR_DNSS_UDP, name, LDNS_RR_TYPE_TXT, 0, NULL);
    CHECK(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_NOERROR && ldns_pkt_ancount(r) == 0);
    ldns_pkt_free(r);
    /* after the expiry: NXDOMAIN */
    {
        ldns_pkt *q = NULL;
        snprintf(name, sizeof name, "_iroh.%s.dns.iroh.link.", z);
        ldns_pkt_query_new_frm_str(&q, name, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, 0);
        uint8_t *w;
        size_t wl, n;
        ldns_pkt2wire(&w, q, &wl);
        ldns_pkt_free(q);
        static uint8_t out[4096];
        CHECK_EQ_INT(ir_dnss_dns(g_s, IR_DNSS_UDP, w, wl, T0 + 8 * DAY_US, out, sizeof out, &n), 1);
        free(w);
        CHECK_EQ_INT(out[3] & 0xf, LDNS_RCODE_NXDOMAIN);
    }
    /* the apex: SOA and NS from the configuration, with iroh's TTLs */
    r = ask(IR_DNSS_UDP, "DNS.iroh.LINK.", LDNS_RR_TYPE_NS, 0, NULL);
    CHECK(r && ldns_pkt_ancount(r) == 1);
    t = answer_text(r, 0);
    for (char *c = t; *c && *c != '\t'; c++) /* the owner is compressed to the question's name, its case */
        *c = (char)tolower((unsigned char)*c);
    CHECK_STR(t, "dns.iroh.link.\t43200\tIN\tNS\tns1.example.\n");
    free(t);
    ldns_pkt_free(r);
    r = ask(IR_DNSS_UDP, "dns.iroh.link.", LDNS_RR_TYPE_SOA, 0, NULL);
    t = r ? answer_text(r, 0) : NULL;
    CHECK_STR(t, "dns.iroh.link.\t1209600\tIN\tSOA\tirohdns.example. hostmaster.irohdns.example. 0 10800 3600 604800 3600\n");
    free(t);
    ldns_pkt_free(r);
    /* REFUSED: outside the zone, AXFR */
    r = ask(IR_DNSS_UDP, "example.com.", LDNS_RR_TYPE_A, 0, NULL);
    CHECK(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_REFUSED && !ldns_pkt_aa(r));
    ldns_pkt_free(r);
    r = ask(IR_DNSS_TCP, "dns.iroh.link.", LDNS_RR_TYPE_AXFR, 0, NULL);
    CHECK(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_REFUSED);
    ldns_pkt_free(r);
    /* unknown key: NXDOMAIN with the SOA (TTL min(SOA TTL, MINIMUM)) */
    char z2[64];
    z32_of(77, z2);
    snprintf(name, sizeof name, "_iroh.%s.dns.iroh.link.", z2);
    r = ask(IR_DNSS_UDP, name, LDNS_RR_TYPE_TXT, 0, NULL);
    CHECK(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_NXDOMAIN && ldns_pkt_nscount(r) == 1);
    if (r && ldns_pkt_nscount(r) == 1)
        CHECK_EQ_INT(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_authority(r), 0)), 3600);
    ldns_pkt_free(r);
    ir_dnss_stats s;
    ir_dnss_get_stats(g_s, &s);
    CHECK(s.dns_lookup_success >= 3 && s.dns_lookup_notfound >= 3 && s.dns_refused == 2);
    core_free();
}

/* DNS messages made by hand: relative owners in a packet, junk, several questions. */
TEST(dns_relative_owner_and_junk)
{
    core_new(".", IR_DNSS_RATE_SIMPLE); /* the root origin: everything is under it */
    iroh_secret_key sk;
    key_n(&sk, 5);
    iroh_endpoint_id id;
    iroh_secret_key_public(&sk, &id);
    char z[64], name[200];
    iroh_endpoint_id_to_z32(&id, z, sizeof z);
    /* a pkarr packet whose owners are "_iroh." (relative to the key) and "x.<z32>." */
    ldns_pkt *pk = ldns_pkt_new();
    ldns_pkt_set_qr(pk, true);
    ldns_rr *rr = NULL;
    CHECK(ldns_rr_new_frm_str(&rr, "_iroh. 30 IN TXT \"relay=https://rel.example./\"", 0, NULL, NULL) == LDNS_STATUS_OK);
    ldns_pkt_push_rr(pk, LDNS_SECTION_ANSWER, rr);
    snprintf(name, sizeof name, "x.%s. 40 IN TXT \"hello\"", z);
    CHECK(ldns_rr_new_frm_str(&rr, name, 0, NULL, NULL) == LDNS_STATUS_OK);
    ldns_pkt_push_rr(pk, LDNS_SECTION_ANSWER, rr);
    uint8_t *w;
    size_t wl;
    CHECK(ldns_pkt2wire(&w, pk, &wl) == LDNS_STATUS_OK);
    ldns_pkt_free(pk);
    static ir_pkarr_packet p;
    CHECK_EQ_INT(ir_pkarr_sign(&sk, T0, w, wl, &p), IROH_OK);
    free(w);
    CHECK_EQ_INT(ir_dnss_store_put(g_st, &p), 1);
    snprintf(name, sizeof name, "_iroh.%s.", z);
    ldns_pkt *r = ask(IR_DNSS_UDP, name, LDNS_RR_TYPE_TXT, 0, NULL);
    CHECK(r && ldns_pkt_ancount(r) == 1);
    ldns_pkt_free(r);
    snprintf(name, sizeof name, "X.%s.", z);
    r = ask(IR_DNSS_UDP, name, LDNS_RR_TYPE_TXT, 0, NULL);
    CHECK(r && ldns_pkt_ancount(r) == 1);
    if (r && ldns_pkt_ancount(r) == 1)
        CHECK_EQ_INT(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(r), 0)), 40);
    ldns_pkt_free(r);
    /* junk: FORMERR with the id; no header or a response: nothing */
    static uint8_t out[4096];
    size_t n;
    const uint8_t junk[] = {0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    CHECK_EQ_INT(ir_dnss_dns(g_s, IR_DNSS_UDP, junk, sizeof junk, T0, out, sizeof out, &n), 1);
    CHECK(n >= 12 && out[0] == 0xab && out[1] == 0xcd && (out[2] & 0x80) && (out[3] & 0xf) == LDNS_RCODE_FORMERR);
    CHECK_EQ_INT(ir_dnss_dns(g_s, IR_DNSS_UDP, junk, 11, T0, out, sizeof out, &n), 0);
    const uint8_t resp[] = {0xab, 0xcd, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ_INT(ir_dnss_dns(g_s, IR_DNSS_UDP, resp, sizeof resp, T0, out, sizeof out, &n), 0);
    /* two questions: FORMERR */
    ldns_pkt *q = NULL;
    ldns_pkt_query_new_frm_str(&q, "a.example.", LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, 0);
    ldns_rr *q2 = NULL;
    ldns_rr_new_question_frm_str(&q2, "b.example. IN A", NULL, NULL);
    ldns_pkt_push_rr(q, LDNS_SECTION_QUESTION, q2);
    ldns_pkt2wire(&w, q, &wl);
    ldns_pkt_free(q);
    CHECK_EQ_INT(ir_dnss_dns(g_s, IR_DNSS_UDP, w, wl, T0, out, sizeof out, &n), 1);
    CHECK_EQ_INT(out[3] & 0xf, LDNS_RCODE_FORMERR);
    free(w);
    /* another opcode: NOTIMP */
    q = ldns_pkt_new();
    ldns_pkt_set_opcode(q, LDNS_PACKET_STATUS);
    ldns_pkt2wire(&w, q, &wl);
    ldns_pkt_free(q);
    CHECK_EQ_INT(ir_dnss_dns(g_s, IR_DNSS_UDP, w, wl, T0, out, sizeof out, &n), 1);
    CHECK_EQ_INT(out[3] & 0xf, LDNS_RCODE_NOTIMPL);
    free(w);
    core_free();
}

TEST(dns_truncation_by_edns_size)
{
    core_new("dns.iroh.link", IR_DNSS_RATE_SIMPLE);
    iroh_secret_key sk;
    key_n(&sk, 9);
    iroh_endpoint_id id;
    iroh_secret_key_public(&sk, &id);
    static ir_endpoint_info ei;
    memset(&ei, 0, sizeof ei);
    memcpy(ei.id, id.bytes, 32);
    strcpy(ei.relay, "https://relay.example./");
    for (int i = 0; i < 16; i++) {
        char a[64];
        snprintf(a, sizeof a, "[2001:db8::%x]:%d", i + 1, 40000 + i);
        iroh_socket_addr_parse(a, &ei.addrs[ei.n_addrs++]);
    }
    uint8_t dns[1000];
    size_t len;
    static ir_pkarr_packet p;
    CHECK_EQ_INT(ir_endpoint_info_to_dns(&ei, 30, dns, sizeof dns, &len), IROH_OK);
    CHECK(len > 700);
    CHECK_EQ_INT(ir_pkarr_sign(&sk, T0, dns, len, &p), IROH_OK);
    CHECK_EQ_INT(ir_dnss_store_put(g_st, &p), 1);
    char z[64], name[200];
    iroh_endpoint_id_to_z32(&id, z, sizeof z);
    snprintf(name, sizeof name, "_iroh.%s.dns.iroh.link.", z);
    size_t n = 0;
    struct {
        int transport, edns, tc;
        size_t max;
    } cases[] = {
        {IR_DNSS_UDP, 0, 1, 512},      /* no EDNS: 512 */
        {IR_DNSS_UDP, 400, 1, 512},    /* below 512 counts as 512 */
        {IR_DNSS_UDP, 700, 1, 700},    /* the client's size */
        {IR_DNSS_UDP, 4096, 0, 1232},  /* ours caps it */
        {IR_DNSS_TCP, 0, 0, 65535},    /* TCP: never */
        {IR_DNSS_HTTPS, 0, 0, 65535},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ldns_pkt *r = ask(cases[i].transport, name, LDNS_RR_TYPE_TXT, cases[i].edns, &n);
        CHECK(r != NULL);
        if (!r)
            continue;
        CHECK_EQ_INT(ldns_pkt_tc(r), cases[i].tc);
        CHECK(n <= cases[i].max);
        CHECK_EQ_INT(ldns_pkt_ancount(r), cases[i].tc ? 0 : 17);
        CHECK_EQ_INT(ldns_pkt_qdcount(r), 1);
        CHECK_EQ_INT(ldns_pkt_edns(r), cases[i].edns != 0);
        if (cases[i].edns)
            CHECK_EQ_INT(ldns_pkt_edns_udp_size(r), IR_DNSS_UDP_MAX);
        ldns_pkt_free(r);
    }
    core_free();
}

/* RFC 6891 6.1.3: a query with EDNS version 1 gets BADVERS (extended RCODE 16: 1 in the
 * OPT record, 0 in the header), our version 0 and no answer, over UDP and TCP; version 0
 * is answered */
TEST(dns_edns_version_badvers)
{
    core_new("dns.iroh.link", IR_DNSS_RATE_SIMPLE);
    static ir_pkarr_packet p;
    packet(5, T0, "https://a.example./", &p);
    CHECK_EQ_INT(ir_dnss_store_put(g_st, &p), 1);
    char z[64], name[200];
    z32_of(5, z);
    snprintf(name, sizeof name, "_iroh.%s.dns.iroh.link.", z);
    int transports[2] = {IR_DNSS_UDP, IR_DNSS_TCP};
    for (int v = 0; v <= 1; v++) {
        for (int k = 0; k < 2; k++) {
            ldns_pkt *q = NULL;
            CHECK(ldns_pkt_query_new_frm_str(&q, name, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, LDNS_RD) ==
                  LDNS_STATUS_OK);
            ldns_pkt_set_id(q, 0x4242);
            ldns_pkt_set_edns_udp_size(q, 1232);
            ldns_pkt_set_edns_version(q, (uint8_t)v);
            uint8_t *w = NULL;
            size_t wl = 0;
            CHECK(ldns_pkt2wire(&w, q, &wl) == LDNS_STATUS_OK);
            ldns_pkt_free(q);
            static uint8_t out[65536];
            size_t n = 0;
            CHECK_EQ_INT(ir_dnss_dns(g_s, transports[k], w, wl, T0, out, sizeof out, &n), 1);
            free(w);
            ldns_pkt *r = NULL;
            CHECK(ldns_wire2pkt(&r, out, n) == LDNS_STATUS_OK);
            if (!r)
                continue;
            CHECK_EQ_INT(ldns_pkt_id(r), 0x4242);
            CHECK(ldns_pkt_edns(r));
            CHECK_EQ_INT(ldns_pkt_edns_version(r), 0);
            CHECK_EQ_INT(ldns_pkt_get_rcode(r), 0);
            CHECK_EQ_INT(ldns_pkt_edns_extended_rcode(r), (v == 1 ? 1 : 0));
            CHECK_EQ_INT((int)ldns_pkt_ancount(r), (v == 1 ? 0 : 1));
            CHECK_EQ_INT((int)ldns_pkt_qdcount(r), 1);
            ldns_pkt_free(r);
        }
    }
    core_free();
}

/* ---- the rate limiter and the HTTP routes ----------------------------------------------- */

TEST(ratelimit_burst_refill_per_ip)
{
    ir_dnss_rl *rl;
    CHECK_EQ_INT(ir_dnss_rl_new(IR_DNSS_RATE_SIMPLE, 2, 4000, &rl), IROH_OK);
    uint8_t a[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
    uint8_t b[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 2};
    uint64_t t = 1000000000ULL, s = 1000000000ULL;
    CHECK_EQ_INT(ir_dnss_rl_allow(rl, a, t), 1);
    CHECK_EQ_INT(ir_dnss_rl_allow(rl, a, t), 1);
    CHECK_EQ_INT(ir_dnss_rl_allow(rl, a, t), 0);
    CHECK_EQ_INT(ir_dnss_rl_allow(rl, a, t + 3 * s), 0);
    CHECK_EQ_INT(ir_dnss_rl_allow(rl, b, t), 1); /* another client */
    CHECK_EQ_INT(ir_dnss_rl_allow(rl, a, t + 4 * s), 1); /* one token back after 4 s */
    CHECK_EQ_INT(ir_dnss_rl_allow(rl, a, t + 4 * s), 0);
    CHECK_EQ_INT(ir_dnss_rl_allow(rl, a, t + 100 * s), 1); /* the burst back, not more */
    CHECK_EQ_INT(ir_dnss_rl_allow(rl, a, t + 100 * s), 1);
    CHECK_EQ_INT(ir_dnss_rl_allow(rl, a, t + 100 * s), 0);
    /* IPv6: one /64 is one client */
    uint8_t v6a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    uint8_t v6b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0xff, 0, 0, 0, 0, 0, 0, 2};
    CHECK_EQ_INT(ir_dnss_rl_allow(rl, v6a, t), 1);
    CHECK_EQ_INT(ir_dnss_rl_allow(rl, v6b, t), 1);
    CHECK_EQ_INT(ir_dnss_rl_allow(rl, v6a, t), 0);
    /* a flood of addresses: the table stays the same size, the limit still holds for a
     * client that keeps coming */
    int limited = 0;
    for (uint32_t i = 0; i < 100000; i++) {
        uint8_t ip[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        ir_dnss_rl_allow(rl, ip, t + 200 * s + i);
        if (i % 1000 == 0)
            limited += !ir_dnss_rl_allow(rl, a, t + 200 * s + i);
    }
    CHECK_EQ_INT(limited, 98); /* its burst of 2, then nothing: the flood did not reset it */
    free(rl);
}

static int http(const char *head, const uint8_t *body, size_t blen, uint64_t mono, uint64_t now, ir_buf *out)
{
    ir_http_request req;
    CHECK_EQ_INT(ir_http_parse_request((const uint8_t *)head, strlen(head), &req), IROH_OK);
    static const uint8_t ip[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
    out->len = 0;
    ir_dnss_http(g_s, &req, body, blen, ip, mono, now, out);
    int status = 0;
    if (out->len > 12)
        sscanf((const char *)out->data + 9, "%3d", &status);
    return status;
}

TEST(http_routes)
{
    core_new("dns.iroh.link", IR_DNSS_RATE_SIMPLE);
    char z[64], head[300];
    z32_of(3, z);
    static ir_pkarr_packet p, old, stale;
    packet(3, T0, "https://r.example./", &p);
    packet(3, T0 - 5, "https://old.example./", &old);
    packet(3, T0 - 8 * DAY_US, "https://stale.example./", &stale);
    uint8_t body[IR_PKARR_MAX_PAYLOAD];
    ir_buf out;
    ir_buf_init(&out);
    uint64_t s = 1000000000ULL, m = 10 * s;
    snprintf(head, sizeof head, "PUT /pkarr/%s HTTP/1.1\r\nHost: x\r\n\r\n", z);
    size_t n = ir_pkarr_relay_payload(&stale, body, sizeof body);
    CHECK_EQ_INT(http(head, body, n, m, T0, &out), 400); /* stale: refused, and counted by the limiter */
    n = ir_pkarr_relay_payload(&p, body, sizeof body);
    CHECK_EQ_INT(http(head, body, n, m, T0, &out), 204);
    n = ir_pkarr_relay_payload(&old, body, sizeof body);
    CHECK_EQ_INT(http(head, body, n, m, T0, &out), 429);
    CHECK(strstr((char *)out.data, "{\"status\":\"429\"") != NULL);
    CHECK_EQ_INT(http(head, body, n, m + 4 * s, T0, &out), 204); /* older: kept the newer */
    snprintf(head, sizeof head, "GET /pkarr/%s HTTP/1.1\r\n\r\n", z);
    CHECK_EQ_INT(http(head, NULL, 0, m, T0, &out), 200);
    n = ir_pkarr_relay_payload(&p, body, sizeof body);
    CHECK(out.len > n && memcmp(out.data + out.len - n, body, n) == 0);
    CHECK(strstr((char *)out.data, "Content-Type: application/x-pkarr-signed-packet\r\n") != NULL);
    CHECK(strstr((char *)out.data, "Connection: close\r\n") != NULL);
    char z2[64];
    z32_of(4, z2);
    snprintf(head, sizeof head, "GET /pkarr/%s HTTP/1.1\r\n\r\n", z2);
    CHECK_EQ_INT(http(head, NULL, 0, m, T0, &out), 404);
    CHECK_EQ_INT(http("GET /pkarr/abc HTTP/1.1\r\n\r\n", NULL, 0, m, T0, &out), 400);
    CHECK_EQ_INT(http("GET /pkarr/a/b HTTP/1.1\r\n\r\n", NULL, 0, m, T0, &out), 404);
    CHECK_EQ_INT(http("GET /healthz HTTP/1.1\r\n\r\n", NULL, 0, m, T0, &out), 200);
    CHECK_EQ_INT(http("POST /healthz HTTP/1.1\r\n\r\n", NULL, 0, m, T0, &out), 405);
    CHECK_EQ_INT(http("GET /dns-query HTTP/1.1\r\n\r\n", NULL, 0, m, T0, &out), 400);
    CHECK_EQ_INT(http("OPTIONS /pkarr/x HTTP/1.1\r\n\r\n", NULL, 0, m, T0, &out), 204);
    /* Content-Length rules */
    ir_http_request req;
    size_t bl;
    const char *h = "PUT /pkarr/x HTTP/1.1\r\nContent-Length: 70000\r\n\r\n";
    ir_http_parse_request((const uint8_t *)h, strlen(h), &req);
    CHECK_EQ_INT(ir_dnss_http_body_len(&req, &bl), 413);
    h = "PUT /pkarr/x HTTP/1.1\r\nContent-Length: 12x\r\n\r\n";
    ir_http_parse_request((const uint8_t *)h, strlen(h), &req);
    CHECK_EQ_INT(ir_dnss_http_body_len(&req, &bl), 400);
    h = "PUT /pkarr/x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
    ir_http_parse_request((const uint8_t *)h, strlen(h), &req);
    CHECK_EQ_INT(ir_dnss_http_body_len(&req, &bl), 400);
    h = "PUT /pkarr/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    ir_http_parse_request((const uint8_t *)h, strlen(h), &req);
    CHECK_EQ_INT(ir_dnss_http_body_len(&req, &bl), 411);
    h = "PUT /pkarr/x HTTP/1.1\r\nContent-Length: 196\r\n\r\n";
    ir_http_parse_request((const uint8_t *)h, strlen(h), &req);
    CHECK_EQ_INT(ir_dnss_http_body_len(&req, &bl), 0);
    CHECK_EQ_INT(bl, 196);
    ir_buf_free(&out);
    core_free();
}

int main(void)
{
    RUN(store_newer_only_and_expiry);
    RUN(store_cache_lru_and_file);
    RUN(store_timestamp_above_int64);
    RUN(store_failed_commit_goes_on);
    RUN(dns_answers_spec_vector);
    RUN(dns_relative_owner_and_junk);
    RUN(dns_truncation_by_edns_size);
    RUN(dns_edns_version_badvers);
    RUN(ratelimit_burst_refill_per_ip);
    RUN(http_routes);
    TEST_EXIT();
}
