/* The DNS server's request handling (src/dnsserver): a script of operations against one
 * core over an in-memory store, each an operation byte and its arguments, so that
 * mutations keep their meaning:
 *
 *   0 T L.. BYTES   a DNS message (T: UDP / TCP / DoH; L: 2-byte length)
 *   1 L.. BYTES     an HTTP request (head and body) as the shell hands it over
 *   2 K S R         an honest PUT: key K of 4 signs a record at time step S with relay R,
 *                   then the record must be served over DNS and GET (the newest one)
 *   3 D             the clock moves D hours
 *   4 L.. BYTES     a configuration file (--config)
 *
 * Oracles beyond the sanitizers: every DNS answer parses, carries the query's id, QR and
 * one question, fits the transport (UDP: 512 bytes or the EDNS size up to 1232); every
 * HTTP answer is one HTTP/1.1 response whose Content-Length is its body; honest packets
 * are answered with their relay, never an older one; a config either parses or names its
 * line. */
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/endpoint_info.h"
#include "dns/pkarr.h"
#include "dnsserver/dnsserver.h"
#include "dnsserver/file_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint64_t T0 = 1700000000000000ULL;
static const uint64_t HOUR_US = 3600ULL * 1000000;

static void check_dns(const uint8_t *q, size_t qlen, int transport, const uint8_t *a, size_t alen)
{
    ldns_pkt *r = NULL;
    if (alen < 12 || ldns_wire2pkt(&r, a, alen) != LDNS_STATUS_OK)
        abort();
    if (a[0] != q[0] || a[1] != q[1] || !ldns_pkt_qr(r))
        abort();
    if (transport == IR_DNSS_UDP && alen > 1232)
        abort();
    ldns_pkt *qp = NULL;
    if (ldns_wire2pkt(&qp, q, qlen) == LDNS_STATUS_OK) {
        size_t lim = 512;
        if (ldns_pkt_edns(qp) && ldns_pkt_edns_udp_size(qp) > 512)
            lim = ldns_pkt_edns_udp_size(qp) < 1232 ? ldns_pkt_edns_udp_size(qp) : 1232;
        if (transport == IR_DNSS_UDP && alen > lim)
            abort();
        if (ldns_pkt_get_opcode(qp) == LDNS_PACKET_QUERY && ldns_pkt_qdcount(qp) == 1 && ldns_pkt_qdcount(r) != 1)
            abort();
        ldns_pkt_free(qp);
    }
    ldns_pkt_free(r);
}

static void check_http(const ir_buf *out)
{
    const char *s = (const char *)out->data;
    if (out->len < 16 || memcmp(s, "HTTP/1.1 ", 9) != 0)
        abort();
    const char *end = memmem(s, out->len, "\r\n\r\n", 4);
    const char *cl = memmem(s, out->len, "Content-Length: ", 16);
    if (!end || !cl || cl > end)
        abort();
    if ((size_t)strtoul(cl + 16, NULL, 10) != out->len - (size_t)(end + 4 - s))
        abort();
}

/* the honest PUT of op 2 and its oracle: the most recent packet of each key (timestamp,
 * then DNS bytes, as the store decides) and the relay it names */
static uint64_t newest[4];
static ir_pkarr_packet newest_p[4];
static char newest_relay[4][IR_ENDPOINT_INFO_RELAY_MAX];

static void honest(ir_dnss *s, uint8_t k, uint8_t step, uint8_t relay, uint64_t now)
{
    iroh_secret_key sk;
    memset(&sk, 0, sizeof sk);
    sk.bytes[0] = (uint8_t)(k + 1);
    iroh_endpoint_id id;
    iroh_secret_key_public(&sk, &id);
    static ir_endpoint_info ei;
    memset(&ei, 0, sizeof ei);
    memcpy(ei.id, id.bytes, 32);
    snprintf(ei.relay, sizeof ei.relay, "https://r%u.example./", relay);
    uint8_t dns[1000];
    size_t len;
    static ir_pkarr_packet p;
    uint64_t ts = T0 + (uint64_t)step * 1000000;
    if (ir_endpoint_info_to_dns(&ei, 30, dns, sizeof dns, &len) != IROH_OK ||
        ir_pkarr_sign(&sk, ts, dns, len, &p) != IROH_OK)
        abort();
    uint8_t body[IR_PKARR_MAX_PAYLOAD];
    size_t n = ir_pkarr_relay_payload(&p, body, sizeof body);
    char z[64], head[200];
    iroh_endpoint_id_to_z32(&id, z, sizeof z);
    snprintf(head, sizeof head, "PUT /pkarr/%s HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", z, n);
    ir_http_request req;
    if (ir_http_parse_request((const uint8_t *)head, strlen(head), &req) != IROH_OK)
        abort();
    static const uint8_t ip[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
    ir_buf out;
    ir_buf_init(&out);
    ir_dnss_http(s, &req, body, n, ip, 0, now, &out);
    check_http(&out);
    int stale = now > 7 * 24 * HOUR_US && ts < now - 7 * 24 * HOUR_US;
    if (memcmp(out.data, stale ? "HTTP/1.1 400" : "HTTP/1.1 204", 12) != 0)
        abort();
    ir_buf_free(&out);
    if (!stale && (!newest[k] || ir_pkarr_more_recent(&p, &newest_p[k]))) {
        newest[k] = ts;
        newest_p[k] = p;
        snprintf(newest_relay[k], sizeof newest_relay[k], "%s", ei.relay);
    }
    /* the newest live packet of k is served, over DNS */
    char name[200];
    snprintf(name, sizeof name, "_iroh.%s.dns.iroh.link.", z);
    ldns_pkt *q = NULL;
    ldns_pkt_query_new_frm_str(&q, name, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, 0);
    uint8_t *w;
    size_t wl, al;
    ldns_pkt2wire(&w, q, &wl);
    ldns_pkt_free(q);
    static uint8_t ans[65536];
    if (!ir_dnss_dns(s, IR_DNSS_TCP, w, wl, now, ans, sizeof ans, &al))
        abort();
    free(w);
    static ir_endpoint_info got;
    int live = newest[k] && !(now > 7 * 24 * HOUR_US && newest[k] < now - 7 * 24 * HOUR_US);
    int rc = ir_endpoint_info_from_dns(id.bytes, "dns.iroh.link", ans, al, &got);
    if (live && (rc != 1 || strcmp(got.relay, newest_relay[k]) != 0))
        abort();
    if (!live && rc > 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ir_dnss_store *st;
    ir_dnss *s;
    ir_dnss_config cfg;
    ir_dnss_config_init(&cfg);
    cfg.origins[0] = "dns.iroh.link";
    cfg.origins[1] = ".";
    cfg.n_origins = 2;
    cfg.rr_ns = "ns1.dns.iroh.link";
    cfg.rate_limit = IR_DNSS_RATE_DISABLED;
    if (ir_dnss_store_open(NULL, 8, &st) != IROH_OK || ir_dnss_new(&cfg, st, &s) != IROH_OK)
        abort();
    memset(newest, 0, sizeof newest);
    uint64_t now = T0;
    static uint8_t out[65536];
    size_t i = 0;
    while (i < size) {
        uint8_t op = data[i++] % 5;
        if (op == 0 || op == 1 || op == 4) {
            int transport = 0;
            if (op == 0) {
                if (i >= size)
                    break;
                transport = data[i++] % 3;
            }
            if (i + 2 > size)
                break;
            size_t len = (size_t)data[i] << 8 | data[i + 1];
            i += 2;
            if (len > size - i)
                len = size - i;
            const uint8_t *b = data + i;
            i += len;
            if (op == 0) {
                size_t al = 0;
                if (ir_dnss_dns(s, transport, b, len, now, out, sizeof out, &al))
                    check_dns(b, len, transport, out, al);
            } else if (op == 1) {
                ir_http_reader *r = malloc(sizeof *r);
                ir_http_reader_init(r);
                size_t used = 0;
                ir_http_request req;
                size_t bl;
                if (ir_http_reader_feed(r, b, len, &used) == 1 &&
                    ir_http_parse_request(r->buf, r->len, &req) == IROH_OK &&
                    ir_dnss_http_body_len(&req, &bl) == 0) {
                    if (bl > len - used)
                        bl = len - used;
                    ir_buf o;
                    ir_buf_init(&o);
                    static const uint8_t ip[16] = {0x20, 1, 0xd, 0xb8};
                    ir_dnss_http(s, &req, b + used, bl, ip, now * 1000, now, &o);
                    check_http(&o);
                    ir_buf_free(&o);
                }
                free(r);
            } else {
                ir_dnss_file_config fc;
                int rc = ir_dnss_file_config_parse((const char *)b, len, &fc);
                if (rc != IROH_OK && strncmp(fc.error, "line ", 5) != 0)
                    abort();
                ir_dnss_file_config_free(&fc);
            }
        } else if (op == 2) {
            if (i + 3 > size)
                break;
            honest(s, data[i] % 4, data[i + 1], data[i + 2], now);
            i += 3;
        } else {
            if (i >= size)
                break;
            now += (uint64_t)data[i++] * HOUR_US;
            ir_dnss_tick(s, now);
        }
    }
    ir_dnss_free(s);
    ir_dnss_store_free(st);
    return 0;
}
