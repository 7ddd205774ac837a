/* The congestion controllers (quic/cc.h) driven alone on synthetic acknowledgments and
 * losses: slow start, the reduction on a congestion event, one reduction per recovery
 * period, persistent congestion, the minimum window, NewReno's linear growth and CUBIC's
 * growth with time (RFC 9438). */
#include <math.h>

#include "quic/cc.h"
#include "test.h"

#define MDG 1200ull
#define MS 1000000ull
#define SEC 1000000000ull

static const ir_cc_ops *const algos[] = {&ir_cc_cubic, &ir_cc_newreno};

/* acknowledges one packet of `bytes` sent at `sent` */
static void ack(ir_cc *cc, uint64_t sent, uint64_t now, uint64_t bytes, uint64_t rtt)
{
    ir_cc_acked a = {
        .sent_time = sent,
        .bytes = bytes,
        .now = now,
        .max_datagram = MDG,
        .min_rtt = rtt,
        .smoothed_rtt = rtt,
    };
    cc->ops->on_acked(cc, &a);
}

/* One round trip at a steady rate: a window's worth of full datagrams, sent one RTT
 * before their acknowledgments, acknowledged evenly over the round. Returns the time at
 * its end. */
static uint64_t round_trip(ir_cc *cc, uint64_t now, uint64_t rtt)
{
    uint64_t n = cc->cwnd / MDG;
    if (n == 0)
        n = 1;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t t = now + rtt * (i + 1) / n;
        ack(cc, t - rtt, t, MDG, rtt);
    }
    return now + rtt;
}

/* a controller out of slow start at `window` bytes after a loss at `now` */
static void start_at(ir_cc *cc, const ir_cc_ops *ops, uint64_t window, uint64_t now)
{
    ir_cc_start(cc, ops, MDG);
    while (cc->cwnd < window)
        ack(cc, now - 1, now - 1, MDG, 50 * MS);
    cc->ops->on_congestion_event(cc, now - 1, now, MDG);
}

TEST(initial_window)
{
    for (size_t k = 0; k < 2; k++) {
        ir_cc cc;
        ir_cc_start(&cc, algos[k], MDG);
        CHECK(cc.ops == algos[k]);
        CHECK_EQ_INT(cc.cwnd, 10 * MDG);
        CHECK(cc.ssthresh == UINT64_MAX);
        CHECK(cc.recovery_start == UINT64_MAX);
    }
}

/* slow start adds every acknowledged byte: the window doubles each round trip */
TEST(slow_start_growth)
{
    for (size_t k = 0; k < 2; k++) {
        ir_cc cc;
        ir_cc_start(&cc, algos[k], MDG);
        uint64_t now = 10 * SEC;
        for (int r = 0; r < 5; r++) {
            uint64_t before = cc.cwnd;
            now = round_trip(&cc, now, 50 * MS);
            CHECK_EQ_INT(cc.cwnd, 2 * before);
        }
        CHECK_EQ_INT(cc.cwnd, 320 * MDG);
        /* a partial datagram counts by its bytes */
        ack(&cc, now, now + MS, 100, 50 * MS);
        CHECK_EQ_INT(cc.cwnd, 320 * MDG + 100);
        CHECK(cc.ssthresh == UINT64_MAX);
    }
}

/* a congestion event: CUBIC to 0.7 of the window (RFC 9438 4.6), NewReno to half (RFC
 * 9002 7.3.2); the threshold follows, and the recovery period starts now */
TEST(reduction_on_loss)
{
    uint64_t now = 10 * SEC;
    for (size_t k = 0; k < 2; k++) {
        ir_cc cc;
        ir_cc_start(&cc, algos[k], MDG);
        while (cc.cwnd < 100 * MDG)
            ack(&cc, now - SEC, now - SEC, MDG, 50 * MS);
        CHECK_EQ_INT(cc.cwnd, 100 * MDG);
        cc.ops->on_congestion_event(&cc, now - 10 * MS, now, MDG);
        uint64_t want = k == 0 ? (uint64_t)(100.0 * MDG * 0.7) : 50 * MDG;
        CHECK_EQ_INT(cc.cwnd, want);
        CHECK_EQ_INT(cc.ssthresh, want);
        CHECK_EQ_INT(cc.recovery_start, now);
    }
}

/* RFC 9002 7.3.2: one reduction per recovery period. Losses and acknowledgments of
 * packets sent before it started change nothing; a packet sent after it ends it. */
TEST(recovery_period_reduces_once)
{
    uint64_t now = 10 * SEC;
    for (size_t k = 0; k < 2; k++) {
        ir_cc cc;
        start_at(&cc, algos[k], 100 * MDG, now);
        uint64_t w = cc.cwnd;
        /* more losses of the same flight, reported later */
        cc.ops->on_congestion_event(&cc, now - 5 * MS, now + 10 * MS, MDG);
        cc.ops->on_congestion_event(&cc, now, now + 20 * MS, MDG);
        CHECK_EQ_INT(cc.cwnd, w);
        CHECK_EQ_INT(cc.recovery_start, now);
        /* acknowledgments of that flight: no growth while recovering */
        for (int i = 0; i < 50; i++)
            ack(&cc, now - 1 - (uint64_t)i, now + 30 * MS, MDG, 50 * MS);
        CHECK_EQ_INT(cc.cwnd, w);
        /* a packet sent after the start is acknowledged: growth again */
        ack(&cc, now + 1, now + 60 * MS, MDG, 50 * MS);
        CHECK(cc.cwnd > w);
        /* and a loss of a packet sent after the start is a new congestion event */
        uint64_t w2 = cc.cwnd;
        cc.ops->on_congestion_event(&cc, now + 2, now + 70 * MS, MDG);
        CHECK(cc.cwnd < w2);
        CHECK_EQ_INT(cc.recovery_start, now + 70 * MS);
    }
}

/* repeated congestion never takes the window below two datagrams (kMinimumWindow) */
TEST(minimum_window)
{
    for (size_t k = 0; k < 2; k++) {
        ir_cc cc;
        ir_cc_start(&cc, algos[k], MDG);
        uint64_t now = 10 * SEC;
        for (int i = 0; i < 30; i++) {
            now += 100 * MS;
            cc.ops->on_congestion_event(&cc, now - 1, now, MDG);
            CHECK(cc.cwnd >= 2 * MDG);
        }
        CHECK_EQ_INT(cc.cwnd, 2 * MDG);
        /* a larger datagram size raises the floor */
        now += 100 * MS;
        cc.ops->on_congestion_event(&cc, now - 1, now, 1452);
        CHECK_EQ_INT(cc.cwnd, 2 * 1452);
    }
}

/* persistent congestion (RFC 9002 7.6.2): the minimum window, and the recovery period is
 * over: the next acknowledgment grows the window again, by slow start up to ssthresh */
TEST(persistent_congestion)
{
    uint64_t now = 10 * SEC;
    for (size_t k = 0; k < 2; k++) {
        ir_cc cc;
        start_at(&cc, algos[k], 100 * MDG, now);
        uint64_t ssthresh = cc.ssthresh;
        cc.ops->on_persistent_congestion(&cc, MDG);
        CHECK_EQ_INT(cc.cwnd, 2 * MDG);
        CHECK(cc.recovery_start == UINT64_MAX);
        CHECK_EQ_INT(cc.ssthresh, ssthresh);
        ack(&cc, now - 20 * MS, now + MS, MDG, 50 * MS); /* sent before the old recovery */
        CHECK_EQ_INT(cc.cwnd, 3 * MDG);
        uint64_t t = now + MS;
        while (cc.cwnd < ssthresh)
            t = round_trip(&cc, t, 50 * MS);
        /* slow start ended at the threshold, within one round's overshoot */
        CHECK(cc.cwnd >= ssthresh && cc.cwnd < 2 * ssthresh);
    }
}

/* NewReno congestion avoidance: one datagram per window acknowledged, once the packets
 * of the recovery period are acknowledged */
TEST(newreno_linear_growth)
{
    ir_cc cc;
    uint64_t now = 10 * SEC;
    start_at(&cc, &ir_cc_newreno, 100 * MDG, now);
    CHECK_EQ_INT(cc.cwnd, 50 * MDG);
    /* the first round went out before the loss was seen: still the recovery period */
    uint64_t t = round_trip(&cc, now, 50 * MS);
    CHECK_EQ_INT(cc.cwnd, 50 * MDG);
    for (int r = 1; r < 20; r++) {
        uint64_t before = cc.cwnd;
        t = round_trip(&cc, t, 50 * MS);
        /* about one datagram per round (integer steps lose a little) */
        CHECK(cc.cwnd > before + MDG * 9 / 10 && cc.cwnd <= before + MDG);
    }
    CHECK(cc.cwnd > 67 * MDG && cc.cwnd <= 69 * MDG);
    /* the same acknowledgments later make no difference: NewReno counts acks, not time */
    ir_cc c2;
    start_at(&c2, &ir_cc_newreno, 100 * MDG, now);
    t = now;
    for (int r = 0; r < 20; r++)
        t = round_trip(&c2, t, 500 * MS);
    CHECK_EQ_INT(c2.cwnd, cc.cwnd);
}

/* CUBIC's window is a function of the time since the reduction (RFC 9438 4.2): concave up
 * to W_max, reached at about K = cbrt(W_max (1 - beta) / C) seconds, then convex beyond */
TEST(cubic_growth_with_time)
{
    ir_cc cc;
    uint64_t now = 10 * SEC, rtt = 100 * MS;
    double wmax = 200.0 * MDG;
    start_at(&cc, &ir_cc_cubic, (uint64_t)wmax, now);
    CHECK_EQ_INT(cc.cwnd, (uint64_t)(wmax * 0.7));
    double k = cbrt(200.0 * 0.3 / 0.4); /* seconds (W_max in datagrams): 5.3 */
    enum { ROUNDS = 120 };
    uint64_t w_at[ROUNDS];
    uint64_t t = now;
    for (int r = 0; r < ROUNDS; r++) {
        t = round_trip(&cc, t, rtt);
        w_at[r] = cc.cwnd;
        if (getenv("CC_TRACE"))
            printf("%d %.1f\n", r, (double)cc.cwnd / MDG);
    }
    /* round 0 went out before the loss (no growth); the epoch starts with round 1, and
     * its acknowledgments look one RTT ahead */
    CHECK_EQ_INT(w_at[0], (uint64_t)(wmax * 0.7));
    int rk = (int)(k * SEC / rtt) - 1; /* the round at K */
    CHECK(rk == 52);
    /* at K the window is back at W_max (within the ack-clocking error) */
    CHECK(fabs((double)w_at[rk] - wmax) < 0.03 * wmax);
    /* concave before: fast growth first, slow growth close to W_max */
    uint64_t early = w_at[10] - w_at[0], late = w_at[rk] - w_at[rk - 10];
    CHECK(early > 4 * late);
    /* convex after: growth speeds up again, past W_max */
    uint64_t beyond = w_at[rk + 40] - w_at[rk + 30];
    CHECK(beyond > 4 * late);
    CHECK((double)w_at[ROUNDS - 1] > 1.4 * wmax);

    /* the same acknowledgments over more time make a bigger window, for CUBIC only */
    ir_cc fast, slow;
    start_at(&fast, &ir_cc_cubic, (uint64_t)wmax, now);
    start_at(&slow, &ir_cc_cubic, (uint64_t)wmax, now);
    uint64_t tf = now, ts = now;
    for (int i = 0; i < 2000; i++) {
        tf += MS;
        ts += 3 * MS;
        ack(&fast, tf - rtt, tf, MDG, rtt);
        ack(&slow, ts - rtt, ts, MDG, rtt);
    }
    CHECK(slow.cwnd > fast.cwnd + 10 * MDG);
}

/* RFC 9438 4.7 fast convergence: a loss before the window grew back to W_max lowers W_max
 * to cwnd (1 + beta) / 2, releasing bandwidth to newer flows */
TEST(cubic_fast_convergence)
{
    ir_cc cc;
    uint64_t now = 10 * SEC;
    start_at(&cc, &ir_cc_cubic, 100 * MDG, now);
    CHECK(fabs(cc.u.cubic.wmax - 100.0 * MDG) < 1);
    uint64_t t = round_trip(&cc, now, 20 * MS);
    double cw = (double)cc.cwnd;
    CHECK(cw < 100.0 * MDG);
    cc.ops->on_congestion_event(&cc, t - 1, t, MDG);
    CHECK(fabs(cc.u.cubic.wmax - cw * 0.85) < 1);
    CHECK_EQ_INT(cc.cwnd, (uint64_t)(cw * 0.7));
}

/* in the Reno-friendly region (a short RTT, a small W_max) the cubic curve alone would
 * stay near 0.7 W_max for seconds; the window follows the Reno estimate W_est instead,
 * which grows by 3 (1 - beta) / (1 + beta) = 0.53 datagrams per round (RFC 9438 4.3) */
TEST(cubic_reno_friendly)
{
    ir_cc cc;
    uint64_t now = 10 * SEC, rtt = MS;
    start_at(&cc, &ir_cc_cubic, 20 * MDG, now);
    uint64_t t = now;
    for (int r = 0; r < 100; r++)
        t = round_trip(&cc, t, rtt);
    /* W_cubic(0.1 s) = 0.4 (0.1 - 2.47)^3 + 20 = 14.7 datagrams; W_est about 14 + 53 */
    CHECK(cc.cwnd > 55 * MDG);
    CHECK(cc.cwnd < 75 * MDG);
}

int main(void)
{
    RUN(initial_window);
    RUN(slow_start_growth);
    RUN(reduction_on_loss);
    RUN(recovery_period_reduces_once);
    RUN(minimum_window);
    RUN(persistent_congestion);
    RUN(newreno_linear_growth);
    RUN(cubic_growth_with_time);
    RUN(cubic_fast_convergence);
    RUN(cubic_reno_friendly);
    TEST_EXIT();
}
