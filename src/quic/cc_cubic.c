/* CUBIC (RFC 9438): slow start as NewReno, then the window follows
 * W_cubic(t) = C (t - K)^3 + W_max from the last reduction, never below the Reno-friendly
 * estimate W_est, reduced by beta = 0.7 on congestion with fast convergence. */
#include <math.h>

#include "quic/cc.h"

#define CUBIC_C 0.4
#define CUBIC_BETA 0.7

static void cubic_init(ir_cc *cc, uint64_t max_datagram)
{
    cc->cwnd = ir_cc_initial_window(max_datagram);
    cc->ssthresh = UINT64_MAX;
    cc->recovery_start = UINT64_MAX;
    cc->u.cubic.epoch = UINT64_MAX;
    cc->u.cubic.k_ns = 0;
    cc->u.cubic.wmax = 0;
    cc->u.cubic.w_est = 0;
}

static void cubic_on_acked(ir_cc *cc, const ir_cc_acked *a)
{
    if (ir_cc_in_recovery(cc, a->sent_time))
        return;
    if (cc->cwnd < cc->ssthresh) {
        cc->cwnd += a->bytes;
        return;
    }
    /* congestion avoidance (RFC 9438 4.2, 4.3) */
    double mss = (double)a->max_datagram;
    if (cc->u.cubic.epoch == UINT64_MAX) {
        cc->u.cubic.epoch = a->now;
        double wmax = cc->u.cubic.wmax > 0 ? cc->u.cubic.wmax : (double)cc->cwnd;
        if (wmax < (double)cc->cwnd)
            wmax = (double)cc->cwnd;
        cc->u.cubic.wmax = wmax;
        double k = cbrt((wmax - (double)cc->cwnd) / mss / CUBIC_C);
        cc->u.cubic.k_ns = (uint64_t)(k * 1e9);
        cc->u.cubic.w_est = (double)cc->cwnd;
    }
    /* the window one RTT ahead (the minimum RTT; the smoothed one before any sample) */
    uint64_t rtt = a->min_rtt != UINT64_MAX ? a->min_rtt : a->smoothed_rtt;
    double t = (double)(a->now - cc->u.cubic.epoch + rtt) / 1e9;
    double dk = t - (double)cc->u.cubic.k_ns / 1e9;
    double target = (CUBIC_C * dk * dk * dk) * mss + cc->u.cubic.wmax;
    cc->u.cubic.w_est += mss * (3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA)) * (double)a->bytes /
                         (double)cc->cwnd;
    if (target < cc->u.cubic.w_est)
        target = cc->u.cubic.w_est;
    double cw = (double)cc->cwnd;
    if (target > 1.5 * cw)
        target = 1.5 * cw;
    if (target > cw)
        cc->cwnd += (uint64_t)((target - cw) * (double)a->bytes / cw);
}

static void cubic_on_congestion_event(ir_cc *cc, uint64_t sent_time, uint64_t now, uint64_t max_datagram)
{
    if (ir_cc_in_recovery(cc, sent_time))
        return;
    cc->recovery_start = now;
    double cw = (double)cc->cwnd;
    /* fast convergence (RFC 9438 4.7): a window that did not grow back releases room */
    if (cc->u.cubic.wmax > 0 && cw < cc->u.cubic.wmax)
        cc->u.cubic.wmax = cw * (1.0 + CUBIC_BETA) / 2.0;
    else
        cc->u.cubic.wmax = cw;
    cc->ssthresh = (uint64_t)(cw * CUBIC_BETA);
    cc->u.cubic.epoch = UINT64_MAX;
    if (cc->ssthresh < ir_cc_min_window(max_datagram))
        cc->ssthresh = ir_cc_min_window(max_datagram);
    cc->cwnd = cc->ssthresh;
}

static void cubic_on_persistent_congestion(ir_cc *cc, uint64_t max_datagram)
{
    cc->cwnd = ir_cc_min_window(max_datagram);
    cc->recovery_start = UINT64_MAX;
    cc->u.cubic.epoch = UINT64_MAX;
}

const ir_cc_ops ir_cc_cubic = {
    .name = "cubic",
    .init = cubic_init,
    .on_acked = cubic_on_acked,
    .on_congestion_event = cubic_on_congestion_event,
    .on_persistent_congestion = cubic_on_persistent_congestion,
};
