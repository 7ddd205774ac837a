/* iroh's path selection (iroh/src/socket/biased_rtt_path_selector.rs) as a pure function:
 * which of a connection's usable paths application data goes out on.
 *
 * Direct (IP) paths are the primary tier, relay paths the backup tier. Paths sort by
 * (tier, RTT), an IPv6 path's RTT counting 3 ms less. The best path replaces the current
 * one at once when it is of a better tier; within the current one's tier only when its
 * biased RTT is at least 5 ms lower (no flapping on jitter). */
#ifndef IR_QUIC_PATH_SELECT_H
#define IR_QUIC_PATH_SELECT_H

#include <stddef.h>
#include <stdint.h>

#define IR_PATH_SELECT_IPV6_ADVANTAGE_NS 3000000ull /* IPV6_RTT_ADVANTAGE */
#define IR_PATH_SELECT_SWITCH_MIN_NS 5000000ull     /* RTT_SWITCHING_MIN */

typedef struct ir_path_cand {
    uint64_t id;     /* the caller's (a path id) */
    int relay;       /* 1: a relay path (backup tier); 0: direct IP or custom (primary) */
    int ipv6;        /* 1: a direct IPv6 path (the 3 ms advantage) */
    uint64_t rtt_ns; /* its smoothed RTT */
} ir_path_cand;

/* The index in cand[0..n) of the path to select now, or -1 to keep the current selection
 * (nothing better enough, or no paths). current: the index of the selected path among
 * them, or -1 when none is selected (or it is gone): then the best is chosen. */
int ir_path_select(const ir_path_cand *cand, size_t n, int current);

#endif
