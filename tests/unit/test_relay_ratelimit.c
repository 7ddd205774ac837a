/* The relay server's receive rate limit (spec 3.5) on a virtual clock: sans-IO relay
 * clients wired to the sans-IO server core in memory (no sockets, no real time), stepped
 * 1 ms at a time. The "shell" here reads from a client only while the core wants to read
 * and at most ir_relay_conn_read_max bytes, as the epoll shell does.
 *
 *  - a client flooding far above the rate gets through at the rate (plus one burst), is
 *    not disconnected, gets Status 2 (RateLimited) exactly once, and nothing it sent is
 *    dropped (it is only read later);
 *  - meanwhile another client below the rate is served at once (every datagram within a
 *    few virtual milliseconds);
 *  - without a limit the same flood goes through at the speed of the simulated link;
 *  - a burst of max_burst_bytes goes through at once, then the rate applies. */
#include <stdint.h>
#include <sys/random.h>

#include "relay/client.h"
#include "relay/server.h"
#include "test.h"

#define NS_PER_MS 1000000ull
#define LINK_PER_MS (64 * 1024) /* the simulated socket moves at most this per ms */

static void rnd(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    /* deterministic: the test must not depend on chance */
    static uint64_t x = 0x1234567;
    for (size_t i = 0; i < len; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (uint8_t)(x >> 56);
    }
}

typedef struct peer {
    ir_relay_client *cl;
    ir_relay_conn *conn;
    uint64_t dgrams, bytes;   /* datagrams / payload bytes received */
    uint64_t status_rl;       /* Status 2 events */
    uint64_t max_latency;     /* of the datagrams carrying a send time */
    int failed;
} peer;

typedef struct sim {
    ir_relay_core *core;
    peer p[4];
    int n;
    uint64_t now;
    uint8_t buf[LINK_PER_MS];
} sim;

static void sim_init(sim *s, uint32_t rate, uint32_t burst, int n)
{
    memset(s, 0, sizeof *s);
    ir_relay_server_config cfg;
    ir_relay_server_config_init(&cfg);
    cfg.rx_bytes_per_second = rate;
    cfg.rx_max_burst_bytes = burst;
    cfg.ping_interval_ms = 60000; /* no pings in the way of the byte counts */
    CHECK_EQ_INT(ir_relay_core_new(&cfg, rnd, NULL, &s->core), IROH_OK);
    s->now = 1000 * NS_PER_MS;
    s->n = n;
    for (int i = 0; i < n; i++) {
        ir_relay_client_config cc;
        ir_relay_client_config_init(&cc);
        for (int k = 0; k < 32; k++)
            cc.secret_key.bytes[k] = (uint8_t)(i * 37 + k * 3 + 5);
        cc.host = "127.0.0.1:3340";
        cc.random = rnd;
        cc.now = s->now;
        cc.ping_interval_ms = 60000;
        cc.max_queued = 4u << 20;
        CHECK_EQ_INT(ir_relay_client_new(&cc, &s->p[i].cl), IROH_OK);
        s->p[i].conn = ir_relay_core_accept(s->core, s->now);
        CHECK(s->p[i].conn != NULL);
    }
}

static void sim_free(sim *s)
{
    for (int i = 0; i < s->n; i++)
        ir_relay_client_free(s->p[i].cl);
    ir_relay_core_free(s->core);
}

/* One virtual millisecond: move bytes both ways, run the timers, take the events. */
static void sim_step(sim *s)
{
    s->now += NS_PER_MS;
    for (int i = 0; i < s->n; i++) {
        peer *p = &s->p[i];
        if (p->failed)
            continue;
        /* client -> server, throttled by the core */
        size_t budget = LINK_PER_MS;
        while (budget && (ir_relay_conn_status(p->conn) & IR_RELAY_WANT_READ)) {
            const uint8_t *d;
            size_t n = ir_relay_client_pending(p->cl, &d);
            size_t max = ir_relay_conn_read_max(p->conn);
            if (n > budget)
                n = budget;
            if (n > max)
                n = max;
            if (!n)
                break;
            memcpy(s->buf, d, n);
            ir_relay_client_consumed(p->cl, n);
            ir_relay_core_recv(s->core, p->conn, s->buf, n, s->now);
            budget -= n;
        }
        /* server -> client: everything */
        struct iovec iov[64];
        size_t k;
        while ((k = ir_relay_conn_output(p->conn, iov, 64)) > 0) {
            size_t total = 0;
            for (size_t j = 0; j < k; j++) {
                ir_relay_client_recv(p->cl, iov[j].iov_base, iov[j].iov_len, s->now);
                total += iov[j].iov_len;
            }
            ir_relay_core_sent(s->core, p->conn, total, s->now);
        }
        uint64_t t = ir_relay_client_timeout(p->cl);
        if (t && t <= s->now)
            ir_relay_client_on_timeout(p->cl, s->now);
        ir_relay_client_event ev;
        while (ir_relay_client_poll(p->cl, &ev)) {
            if (ev.kind == IR_RELAY_EV_DATAGRAM) {
                p->dgrams++;
                p->bytes += ev.dgrams.len;
                if (ev.dgrams.len >= 8) {
                    uint64_t sent;
                    memcpy(&sent, ev.dgrams.contents, 8);
                    if (sent && s->now - sent > p->max_latency)
                        p->max_latency = s->now - sent;
                }
            } else if (ev.kind == IR_RELAY_EV_STATUS && ev.status == IR_RELAY_STATUS_RATE_LIMITED) {
                p->status_rl++;
            } else if (ev.kind == IR_RELAY_EV_FAILED) {
                fprintf(stderr, "client %d failed: %s\n", i, ev.reason);
                p->failed = 1;
            }
        }
        if (ir_relay_conn_status(p->conn) & IR_RELAY_CLOSED)
            p->failed = 1;
    }
    uint64_t t = ir_relay_core_next_timeout(s->core);
    if (t && t <= s->now)
        ir_relay_core_on_timeout(s->core, s->now);
    while (ir_relay_core_next_changed(s->core))
        ;
}

static int sim_ready(sim *s)
{
    for (int step = 0; step < 1000; step++) {
        int ready = 0;
        for (int i = 0; i < s->n; i++)
            ready += ir_relay_client_state(s->p[i].cl) == IR_RELAY_CLIENT_READY;
        if (ready == s->n)
            return 1;
        sim_step(s);
    }
    return 0;
}

/* Keeps the client's queue full of 1200-byte datagrams to dst (a flood). */
static void flood(sim *s, int from, int to)
{
    uint8_t d[1200];
    memset(d, 0xab, sizeof d);
    memset(d, 0, 8); /* no send time: not a latency probe */
    const iroh_endpoint_id *dst = ir_relay_client_id(s->p[to].cl);
    while (ir_relay_client_send(s->p[from].cl, dst->bytes, 0, d, sizeof d) == IROH_OK)
        ;
}

/* Sends one 1200-byte datagram stamped with the send time. */
static void probe(sim *s, int from, int to)
{
    uint8_t d[1200];
    memset(d, 0xcd, sizeof d);
    memcpy(d, &s->now, 8);
    const iroh_endpoint_id *dst = ir_relay_client_id(s->p[to].cl);
    CHECK_EQ_INT(ir_relay_client_send(s->p[from].cl, dst->bytes, 0, d, sizeof d), IROH_OK);
}

/* Wire bytes of one 1200-byte datagram frame from a client: WebSocket header (2 + 2
 * length + 4 mask) + type + id + ECN + payload. */
#define FRAME_WIRE (8 + 1 + 32 + 1 + 1200)

TEST(test_flood_throttled_other_served)
{
    static sim s;
    const uint32_t rate = 200000, burst = 20000;
    sim_init(&s, rate, burst, 4);
    CHECK(sim_ready(&s));
    ir_relay_server_stats st0;
    ir_relay_core_stats(s.core, &st0);
    /* 0 floods 1; 2 sends a stamped datagram to 3 every 20 ms (about 62 kB/s, below the
     * rate); 10 virtual seconds */
    const int ms = 10000;
    int probes = 0;
    for (int i = 0; i < ms; i++) {
        flood(&s, 0, 1);
        if (i % 20 == 0) {
            probe(&s, 2, 3);
            probes++;
        }
        sim_step(&s);
    }
    for (int i = 0; i < 50; i++) /* let the probes in flight land */
        sim_step(&s);
    ir_relay_server_stats st;
    ir_relay_core_stats(s.core, &st);
    /* the flood: at most rate x time + one burst (plus the frame being read), and not
     * much less */
    double expect = ((double)rate * (ms + 50) / 1000 + burst) / FRAME_WIRE;
    printf("  flood: %llu datagrams forwarded in %d virtual ms (limit allows %.0f); "
           "%llu bytes held back\n",
           (unsigned long long)s.p[1].dgrams, ms + 50, expect,
           (unsigned long long)st.bytes_rx_ratelimited);
    CHECK(s.p[1].dgrams <= (uint64_t)expect + 1);
    CHECK(s.p[1].dgrams >= (uint64_t)(expect * 0.97));
    CHECK_EQ_INT(s.p[1].bytes, s.p[1].dgrams * 1200);
    /* the other client: every probe arrived, quickly */
    CHECK_EQ_INT(s.p[3].dgrams, probes);
    CHECK(s.p[3].max_latency <= 3 * NS_PER_MS);
    /* throttled, not dropped, not disconnected; Status 2 once, to the flooder only */
    CHECK(!s.p[0].failed && !s.p[1].failed && !s.p[2].failed && !s.p[3].failed);
    CHECK_EQ_INT(st.dropped_full + st.dropped_absent + st.dropped_invalid, 0);
    CHECK_EQ_INT(st.frames_relayed, st.frames_recv);
    CHECK_EQ_INT(s.p[0].status_rl, 1);
    CHECK_EQ_INT(s.p[2].status_rl + s.p[1].status_rl + s.p[3].status_rl, 0);
    CHECK_EQ_INT(st.conns_rx_ratelimited, 1);
    CHECK(st.bytes_rx_ratelimited > (uint64_t)rate * ms / 1000 * 9 / 10);
    CHECK(st.bytes_rx_ratelimited <= st.bytes_recv - st0.bytes_recv);
    /* what the flooder queued is still there, to be read later */
    const uint8_t *d;
    CHECK(ir_relay_client_pending(s.p[0].cl, &d) > 1000000);
    sim_free(&s);
}

TEST(test_no_limit)
{
    static sim s;
    sim_init(&s, 0, 0, 2);
    CHECK(sim_ready(&s));
    for (int i = 0; i < 1000; i++) {
        flood(&s, 0, 1);
        sim_step(&s);
    }
    ir_relay_server_stats st;
    ir_relay_core_stats(s.core, &st);
    /* one virtual second at the link speed (64 KiB/ms), far above 200 kB/s */
    printf("  no limit: %llu datagrams in 1000 virtual ms\n", (unsigned long long)s.p[1].dgrams);
    CHECK(s.p[1].dgrams > 40000);
    CHECK_EQ_INT(st.conns_rx_ratelimited, 0);
    CHECK_EQ_INT(st.bytes_rx_ratelimited, 0);
    CHECK_EQ_INT(s.p[0].status_rl, 0);
    sim_free(&s);
}

TEST(test_burst_then_rate)
{
    static sim s;
    /* 100 kB/s, a burst of 50 datagrams' worth */
    const uint32_t rate = 100000, burst = 50 * FRAME_WIRE;
    sim_init(&s, rate, burst, 2);
    CHECK(sim_ready(&s));
    /* idle for a second: the bucket is full */
    for (int i = 0; i < 1000; i++)
        sim_step(&s);
    flood(&s, 0, 1);
    sim_step(&s);
    sim_step(&s);
    /* the burst went through at once (the handshake took a few bytes of the bucket
     * before the idle second refilled it) */
    CHECK(s.p[1].dgrams >= 49 && s.p[1].dgrams <= 50);
    uint64_t after_burst = s.p[1].dgrams;
    for (int i = 0; i < 98; i++) { /* the rest of 100 ms: at most one refill (10 kB) */
        flood(&s, 0, 1);
        sim_step(&s);
    }
    CHECK(s.p[1].dgrams <= after_burst + 10000 / FRAME_WIRE + 1);
    for (int i = 0; i < 1000; i++) {
        flood(&s, 0, 1);
        sim_step(&s);
    }
    /* one more second at 100 kB/s: about 80 more datagrams */
    uint64_t more = s.p[1].dgrams - after_burst;
    printf("  burst %llu datagrams, then %llu in 1.1 s\n", (unsigned long long)after_burst,
           (unsigned long long)more);
    CHECK(more >= 80 && more <= 91);
    CHECK_EQ_INT(s.p[0].status_rl, 1);
    sim_free(&s);
}

/* A bucket smaller than one frame: frames are read in pieces and all forwarded. (As
 * upstream's bucket, it holds at most max_burst_bytes, so with a burst below rate / 10
 * the rate is in effect 10 x max_burst_bytes per second: 5000 B/s here.) */
TEST(test_bucket_smaller_than_a_frame)
{
    static sim s;
    sim_init(&s, 20000, 500, 2);
    CHECK(sim_ready(&s));
    for (int i = 0; i < 3000; i++) {
        if (i % 300 == 0)
            probe(&s, 0, 1);
        sim_step(&s);
    }
    for (int i = 0; i < 1000; i++)
        sim_step(&s);
    CHECK_EQ_INT(s.p[1].dgrams, 10);
    CHECK(s.p[1].max_latency >= 200 * NS_PER_MS); /* read in 500-byte pieces, 100 ms apart */
    CHECK(!s.p[0].failed && !s.p[1].failed);
    sim_free(&s);
}

int main(void)
{
    RUN(test_flood_throttled_other_served);
    RUN(test_no_limit);
    RUN(test_burst_then_rate);
    RUN(test_bucket_smaller_than_a_frame);
    TEST_EXIT();
}
