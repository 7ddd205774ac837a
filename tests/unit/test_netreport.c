/* The net report's sans-IO core (endpoint/netreport.h) on a virtual clock: the probe plan
 * (iroh's: QAD at once, HTTPS at 200/300/400 ms, the captive check at 200 ms), the
 * report's update rules (global address, mapping varies by destination), probe and run
 * timeouts, the preferred relay with its 2/3 stickiness, later runs (QAD only), stale
 * results, and the captive-portal check's HTTP exchange. */
#include <string.h>

#include "endpoint/netreport.h"
#include "test.h"

#define MS IR_NR_MS

static ir_nr_config two_relays(void)
{
    ir_nr_config c;
    memset(&c, 0, sizeof c);
    c.n_relays = 2;
    c.qad[0] = c.qad[1] = 1;
    c.have_v4 = 1;
    c.have_v6 = 1;
    c.captive_check = 1;
    return c;
}

static iroh_socket_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
    iroh_socket_addr s;
    memset(&s, 0, sizeof s);
    s.family = 4;
    s.ip[0] = a, s.ip[1] = b, s.ip[2] = c, s.ip[3] = d;
    s.port = port;
    return s;
}

/* all probes due at now, by kind and relay: ids[kind][relay] (0: none) */
static int take(ir_nr *nr, uint64_t now, uint32_t ids[5][2])
{
    int n = 0;
    ir_nr_probe p;
    while (ir_nr_next_probe(nr, now, &p)) {
        ids[p.kind][p.relay] = p.id;
        n++;
    }
    return n;
}

TEST(plan_and_full_report)
{
    ir_nr nr;
    ir_nr_config c = two_relays();
    ir_nr_init(&nr, &c);
    CHECK(ir_nr_get(&nr, NULL) == NULL);
    CHECK_EQ_INT(ir_nr_timeout(&nr), 0); /* the first run is due at once */
    uint64_t t0 = 1000 * MS;
    ir_nr_handle_timeout(&nr, t0);
    CHECK(ir_nr_running(&nr));
    uint32_t ids[5][2];
    memset(ids, 0, sizeof ids);
    CHECK_EQ_INT(take(&nr, t0, ids), 4); /* QAD v4 and v6 to both relays at once */
    CHECK(ids[IR_NR_QAD4][0] && ids[IR_NR_QAD4][1] && ids[IR_NR_QAD6][0] && ids[IR_NR_QAD6][1]);
    CHECK_EQ_INT(ir_nr_timeout(&nr), t0 + 200 * MS); /* HTTPS and the captive check next */
    CHECK_EQ_INT(take(&nr, t0 + 199 * MS, ids), 0);

    iroh_socket_addr pub = v4(203, 0, 113, 7, 4242);
    ir_nr_qad_result(&nr, ids[IR_NR_QAD4][0], &pub, 30 * MS, t0 + 40 * MS);
    ir_nr_qad_result(&nr, ids[IR_NR_QAD4][1], &pub, 12 * MS, t0 + 20 * MS);
    /* an IPv4 address from the IPv6 probe: its latency counts, the address not */
    ir_nr_qad_result(&nr, ids[IR_NR_QAD6][0], &pub, 31 * MS, t0 + 41 * MS);
    ir_nr_probe_failed(&nr, ids[IR_NR_QAD6][1], t0 + 50 * MS);
    CHECK(ir_nr_running(&nr)); /* HTTPS still to come */

    memset(ids, 0, sizeof ids);
    CHECK_EQ_INT(take(&nr, t0 + 200 * MS, ids), 3); /* HTTPS to each, the captive check */
    CHECK(ids[IR_NR_HTTPS][0] && ids[IR_NR_HTTPS][1] && ids[IR_NR_CAPTIVE][0] + ids[IR_NR_CAPTIVE][1]);
    uint32_t first_https0 = ids[IR_NR_HTTPS][0];
    ir_nr_https_result(&nr, ids[IR_NR_HTTPS][1], 25 * MS, t0 + 225 * MS);
    /* relay 0's first attempt is slow: the second one starts at 300 ms */
    memset(ids, 0, sizeof ids);
    CHECK_EQ_INT(take(&nr, t0 + 300 * MS, ids), 1);
    CHECK(ids[IR_NR_HTTPS][0] && ids[IR_NR_HTTPS][0] != first_https0);
    ir_nr_https_result(&nr, ids[IR_NR_HTTPS][0], 50 * MS, t0 + 350 * MS);
    ir_nr_https_result(&nr, first_https0, 160 * MS, t0 + 360 * MS); /* the lower one wins */
    CHECK(ir_nr_running(&nr)); /* the captive check is still out */
    uint32_t cap = ids[IR_NR_CAPTIVE][0];
    (void)cap;
    /* the captive check id from the 200 ms batch */
    ir_nr_handle_timeout(&nr, t0 + 400 * MS); /* the third attempt is not needed */
    CHECK_EQ_INT(take(&nr, t0 + 400 * MS, ids), 0);
    CHECK(ir_nr_running(&nr));
    /* the captive check never answers: it gives up after 2 s and the run ends */
    CHECK_EQ_INT(ir_nr_timeout(&nr), t0 + 2200 * MS);
    ir_nr_handle_timeout(&nr, t0 + 2200 * MS);
    CHECK(!ir_nr_running(&nr));

    uint64_t gen = 0;
    const ir_nr_report *r = ir_nr_get(&nr, &gen);
    CHECK(r != NULL);
    CHECK_EQ_INT(gen, 1);
    CHECK(ir_nr_take_changed(&nr));
    CHECK(!ir_nr_take_changed(&nr));
    CHECK_EQ_INT(r->udp_v4, 1);
    CHECK_EQ_INT(r->udp_v6, 0);
    CHECK_EQ_INT(r->has_global_v4, 1);
    CHECK_EQ_INT(r->global_v4.port, 4242);
    CHECK_EQ_INT(r->has_global_v6, 0);
    CHECK_EQ_INT(r->varies_v4, 0); /* two relays saw the same address */
    CHECK_EQ_INT(r->varies_v6, -1);
    CHECK_EQ_INT(r->lat_v4[0], 30 * MS);
    CHECK_EQ_INT(r->lat_v4[1], 12 * MS);
    CHECK_EQ_INT(r->lat_v6[0], 31 * MS);
    CHECK_EQ_INT(r->lat_v6[1], 0);
    CHECK_EQ_INT(r->lat_https[0], 50 * MS);
    CHECK_EQ_INT(r->lat_https[1], 25 * MS);
    CHECK_EQ_INT(r->preferred, 1);
    CHECK_EQ_INT(r->captive, -1); /* unanswered: unknown */

    /* the next run after 60 s: QAD only (a last report with latencies), no captive check */
    CHECK_EQ_INT(ir_nr_timeout(&nr), t0 + 2200 * MS + IR_NR_INTERVAL_NS);
    uint64_t t1 = t0 + 2200 * MS + IR_NR_INTERVAL_NS;
    ir_nr_handle_timeout(&nr, t1);
    memset(ids, 0, sizeof ids);
    CHECK_EQ_INT(take(&nr, t1, ids), 4);
    CHECK_EQ_INT(ir_nr_timeout(&nr), t1 + IR_NR_PROBE_TIMEOUT_NS);
    /* relay 1 now sees another address: the mapping varies; relay 0 got faster, but not
     * below 2/3 of relay 1's: relay 1 stays preferred */
    iroh_socket_addr other = v4(203, 0, 113, 7, 5555);
    ir_nr_qad_result(&nr, ids[IR_NR_QAD4][0], &pub, 10 * MS, t1 + 10 * MS);
    ir_nr_qad_result(&nr, ids[IR_NR_QAD4][1], &other, 14 * MS, t1 + 14 * MS);
    ir_nr_probe_failed(&nr, ids[IR_NR_QAD6][0], t1 + 15 * MS);
    ir_nr_probe_failed(&nr, ids[IR_NR_QAD6][1], t1 + 15 * MS);
    CHECK(!ir_nr_running(&nr)); /* nothing else planned */
    r = ir_nr_get(&nr, &gen);
    CHECK_EQ_INT(gen, 2);
    CHECK_EQ_INT(r->varies_v4, 1);
    CHECK_EQ_INT(r->global_v4.port, 4242); /* the first one answering */
    CHECK_EQ_INT(r->preferred, 1);
    CHECK_EQ_INT(r->lat_https[0], 0);

    /* a third run: relay 0 at 5 ms is below 2/3 of relay 1's 14 ms: it takes over */
    uint64_t t2 = t1 + 15 * MS + IR_NR_INTERVAL_NS;
    ir_nr_handle_timeout(&nr, t2);
    memset(ids, 0, sizeof ids);
    take(&nr, t2, ids);
    ir_nr_qad_result(&nr, ids[IR_NR_QAD4][0], &pub, 5 * MS, t2 + 5 * MS);
    ir_nr_qad_result(&nr, ids[IR_NR_QAD4][1], &pub, 14 * MS, t2 + 14 * MS);
    ir_nr_handle_timeout(&nr, t2 + IR_NR_PROBE_TIMEOUT_NS); /* the v6 probes time out */
    CHECK(!ir_nr_running(&nr));
    r = ir_nr_get(&nr, &gen);
    CHECK_EQ_INT(r->preferred, 0);
    CHECK_EQ_INT(r->varies_v4, 0);
}

TEST(stale_and_foreign_results_ignored)
{
    ir_nr nr;
    ir_nr_config c = two_relays();
    c.n_relays = 1;
    c.have_v6 = 0;
    c.captive_check = 0;
    ir_nr_init(&nr, &c);
    ir_nr_handle_timeout(&nr, 0);
    ir_nr_probe p;
    CHECK(ir_nr_next_probe(&nr, 0, &p));
    CHECK_EQ_INT(p.kind, IR_NR_QAD4);
    CHECK(ir_nr_probe_active(&nr, p.id));
    iroh_socket_addr a = v4(198, 51, 100, 1, 1);
    /* an id never handed out, and the right id with a wrong kind of result */
    ir_nr_qad_result(&nr, p.id + 5, &a, MS, MS);
    ir_nr_https_result(&nr, p.id, MS, MS);
    ir_nr_captive_result(&nr, p.id, 1, MS);
    CHECK(ir_nr_probe_active(&nr, p.id));
    /* the probe times out at 3 s; its late answer is ignored */
    ir_nr_handle_timeout(&nr, IR_NR_PROBE_TIMEOUT_NS);
    CHECK(!ir_nr_probe_active(&nr, p.id));
    ir_nr_qad_result(&nr, p.id, &a, MS, IR_NR_PROBE_TIMEOUT_NS + MS);
    /* the HTTPS attempts: all fail */
    ir_nr_probe q;
    while (ir_nr_running(&nr)) {
        uint64_t t = ir_nr_timeout(&nr);
        ir_nr_handle_timeout(&nr, t);
        while (ir_nr_next_probe(&nr, t, &q))
            ir_nr_probe_failed(&nr, q.id, t);
    }
    const ir_nr_report *r = ir_nr_get(&nr, NULL);
    CHECK(r != NULL);
    CHECK_EQ_INT(r->udp_v4, 0);
    CHECK_EQ_INT(r->has_global_v4, 0);
    CHECK_EQ_INT(r->preferred, -1);
    CHECK_EQ_INT(r->lat_v4[0], 0);
    CHECK(ir_nr_timeout(&nr) >= IR_NR_INTERVAL_NS);
    /* a later run is not "changed" when nothing differs */
    CHECK(ir_nr_take_changed(&nr));
    ir_nr_trigger(&nr, 0, 0);
    CHECK_EQ_INT(ir_nr_timeout(&nr), 0);
    uint64_t t = 10000 * MS;
    ir_nr_handle_timeout(&nr, t);
    while (ir_nr_running(&nr)) {
        while (ir_nr_next_probe(&nr, t, &q))
            ir_nr_probe_failed(&nr, q.id, t);
        if (!ir_nr_running(&nr))
            break; /* the last failure ended it; the next run is a minute away */
        t = ir_nr_timeout(&nr);
        ir_nr_handle_timeout(&nr, t);
    }
    CHECK(!ir_nr_take_changed(&nr));
}

TEST(run_gives_up_at_5s)
{
    ir_nr nr;
    ir_nr_config c = two_relays();
    ir_nr_init(&nr, &c);
    ir_nr_handle_timeout(&nr, 0);
    ir_nr_probe p;
    /* every probe started, none ever answers: each times out, the run ends by 5 s */
    uint64_t t = 0;
    int guard = 0;
    while (ir_nr_running(&nr) && guard++ < 100) {
        while (ir_nr_next_probe(&nr, t, &p))
            ;
        t = ir_nr_timeout(&nr);
        CHECK(t <= IR_NR_TIMEOUT_NS);
        ir_nr_handle_timeout(&nr, t);
    }
    CHECK(!ir_nr_running(&nr));
    CHECK(t <= IR_NR_TIMEOUT_NS);
    const ir_nr_report *r = ir_nr_get(&nr, NULL);
    CHECK(r && !r->udp_v4 && !r->udp_v6 && r->captive == -1 && r->preferred == -1);
}

TEST(captive_portal_answer)
{
    char req[512];
    size_t n = ir_nr_captive_request("relay.example", 0, req, sizeof req);
    CHECK(n > 0);
    CHECK(strstr(req, "GET /generate_204 HTTP/1.1\r\nHost: relay.example\r\n") == req);
    CHECK(strstr(req, "\r\nX-Iroh-Challenge: ts_relay.example\r\n") != NULL);
    n = ir_nr_captive_request("::1", 3340, req, sizeof req);
    CHECK(strstr(req, "Host: [::1]:3340\r\n") != NULL);
    CHECK(strstr(req, "X-Iroh-Challenge: ts_--1\r\n") != NULL); /* ':' is no challenge char */
    CHECK_EQ_INT(ir_nr_captive_request("relay.example", 0, req, 20), 0);

    const char *ok = "HTTP/1.1 204 No Content\r\nx-iroh-response:  response ts_relay.example \r\n"
                     "Content-Length: 0\r\n\r\n";
    CHECK_EQ_INT(ir_nr_captive_answer("relay.example", (const uint8_t *)ok, strlen(ok), 0), 0);
    /* incomplete head: not yet decided; at the end of the connection: a portal */
    CHECK_EQ_INT(ir_nr_captive_answer("relay.example", (const uint8_t *)ok, 30, 0), -1);
    CHECK_EQ_INT(ir_nr_captive_answer("relay.example", (const uint8_t *)ok, 30, 1), 1);
    const char *wrong = "HTTP/1.1 204 No Content\r\nX-Iroh-Response: response ts_other\r\n\r\n";
    CHECK_EQ_INT(ir_nr_captive_answer("relay.example", (const uint8_t *)wrong, strlen(wrong), 0), 1);
    const char *none = "HTTP/1.1 204 No Content\r\n\r\n";
    CHECK_EQ_INT(ir_nr_captive_answer("relay.example", (const uint8_t *)none, strlen(none), 0), 1);
    const char *portal = "HTTP/1.1 200 OK\r\nX-Iroh-Response: response ts_relay.example\r\n\r\n<html>";
    CHECK_EQ_INT(ir_nr_captive_answer("relay.example", (const uint8_t *)portal, strlen(portal), 0), 1);
    const char *s2040 = "HTTP/1.1 2040 X\r\nX-Iroh-Response: response ts_relay.example\r\n\r\n";
    CHECK_EQ_INT(ir_nr_captive_answer("relay.example", (const uint8_t *)s2040, strlen(s2040), 0), 1);
    /* a head that never ends: a portal once 4 KiB arrived */
    static uint8_t big[5000];
    memset(big, 'a', sizeof big);
    CHECK_EQ_INT(ir_nr_captive_answer("relay.example", big, 100, 0), -1);
    CHECK_EQ_INT(ir_nr_captive_answer("relay.example", big, sizeof big, 0), 1);
}

int main(void)
{
    RUN(plan_and_full_report);
    RUN(stale_and_foreign_results_ignored);
    RUN(run_gives_up_at_5s);
    RUN(captive_portal_answer);
    TEST_EXIT();
}
