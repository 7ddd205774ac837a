/* NewReno as RFC 9002 7.3 and appendix B describe it: slow start adds every acknowledged
 * byte, congestion avoidance one datagram per window, a congestion event halves the
 * window once per recovery period, persistent congestion falls to the minimum window. */
#include "quic/cc.h"

static void newreno_init(ir_cc *cc, uint64_t max_datagram)
{
    cc->cwnd = ir_cc_initial_window(max_datagram);
    cc->ssthresh = UINT64_MAX;
    cc->recovery_start = UINT64_MAX;
}

static void newreno_on_acked(ir_cc *cc, const ir_cc_acked *a)
{
    if (ir_cc_in_recovery(cc, a->sent_time))
        return;
    if (cc->cwnd < cc->ssthresh)
        cc->cwnd += a->bytes;
    else
        cc->cwnd += a->max_datagram * a->bytes / cc->cwnd;
}

static void newreno_on_congestion_event(ir_cc *cc, uint64_t sent_time, uint64_t now, uint64_t max_datagram)
{
    if (ir_cc_in_recovery(cc, sent_time))
        return;
    cc->recovery_start = now;
    cc->ssthresh = cc->cwnd / 2; /* kLossReductionFactor */
    cc->cwnd = cc->ssthresh;
    if (cc->cwnd < ir_cc_min_window(max_datagram))
        cc->cwnd = ir_cc_min_window(max_datagram);
}

static void newreno_on_persistent_congestion(ir_cc *cc, uint64_t max_datagram)
{
    cc->cwnd = ir_cc_min_window(max_datagram);
    cc->recovery_start = UINT64_MAX;
}

const ir_cc_ops ir_cc_newreno = {
    .name = "newreno",
    .init = newreno_init,
    .on_acked = newreno_on_acked,
    .on_congestion_event = newreno_on_congestion_event,
    .on_persistent_congestion = newreno_on_persistent_congestion,
};
