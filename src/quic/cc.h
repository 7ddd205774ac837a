/* Congestion control behind one small interface: a table of operations (ir_cc_ops) over
 * one path's state (ir_cc). Loss recovery (recovery.c) measures RTT, detects losses and
 * calls the operations; the controllers (cc_cubic.c: CUBIC, RFC 9438; cc_newreno.c:
 * NewReno, RFC 9002 7.3) only move the window. Each path has its own ir_cc, and the
 * controller knows nothing of connections, so it can be driven alone (tests/unit/test_cc.c).
 *
 * The window and the slow start threshold are plain fields to read; the recovery period
 * (RFC 9002 7.3.2) is common to both controllers and kept here too: a loss or an
 * acknowledgment of a packet sent before recovery_start changes nothing. */
#ifndef IR_QUIC_CC_H
#define IR_QUIC_CC_H

#include <stdint.h>

typedef struct ir_cc_ops ir_cc_ops;

typedef struct ir_cc {
    uint64_t cwnd;           /* congestion window, bytes */
    uint64_t ssthresh;       /* slow start threshold (UINT64_MAX: still in slow start) */
    uint64_t recovery_start; /* start of the recovery period (UINT64_MAX: none) */
    const ir_cc_ops *ops;
    union {
        struct {
            uint64_t epoch;  /* start of the congestion avoidance epoch (UINT64_MAX: none) */
            uint64_t k_ns;   /* K: time to grow back to wmax */
            double wmax;     /* window before the last reduction (bytes; 0: none yet) */
            double w_est;    /* the Reno-friendly estimate (RFC 9438 4.3) */
        } cubic;
    } u;
} ir_cc;

/* one acknowledged packet that was in flight */
typedef struct ir_cc_acked {
    uint64_t sent_time;
    uint64_t bytes;
    uint64_t now;
    uint64_t max_datagram; /* the path's datagram size now */
    uint64_t min_rtt;      /* UINT64_MAX: no RTT sample yet */
    uint64_t smoothed_rtt;
} ir_cc_acked;

struct ir_cc_ops {
    const char *name;
    /* the window of a new path (or one that starts over, RFC 9000 9.4) */
    void (*init)(ir_cc *cc, uint64_t max_datagram);
    void (*on_acked)(ir_cc *cc, const ir_cc_acked *a);
    /* packets were lost (or marked with ECN-CE) of which the newest went out at sent_time */
    void (*on_congestion_event)(ir_cc *cc, uint64_t sent_time, uint64_t now, uint64_t max_datagram);
    /* losses spanning the persistent congestion period (RFC 9002 7.6): the minimum window */
    void (*on_persistent_congestion)(ir_cc *cc, uint64_t max_datagram);
};

extern const ir_cc_ops ir_cc_cubic;
extern const ir_cc_ops ir_cc_newreno;

/* the window every controller keeps at least (RFC 9002 7.2: kMinimumWindow) */
static inline uint64_t ir_cc_min_window(uint64_t max_datagram)
{
    return 2 * max_datagram;
}

/* the initial window (RFC 9002 7.2 allows min(10 x, max(14720, 2 x)); 10 datagrams) */
static inline uint64_t ir_cc_initial_window(uint64_t max_datagram)
{
    return 10 * max_datagram;
}

/* a packet sent at sent_time belongs to the current recovery period */
static inline int ir_cc_in_recovery(const ir_cc *cc, uint64_t sent_time)
{
    return cc->recovery_start != UINT64_MAX && sent_time <= cc->recovery_start;
}

/* starts a controller: cc->ops = ops, then ops->init */
static inline void ir_cc_start(ir_cc *cc, const ir_cc_ops *ops, uint64_t max_datagram)
{
    cc->ops = ops;
    ops->init(cc, max_datagram);
}

#endif
