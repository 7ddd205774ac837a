/* iroh's biased-RTT path selection (see path_select.h). */
#include "quic/path_select.h"

/* the sort key: tier first (0 primary, 1 backup), then the biased RTT (signed: an IPv6
 * path with an RTT under 3 ms goes below zero) */
typedef struct key {
    int tier;
    int64_t rtt;
} key;

static key key_of(const ir_path_cand *c)
{
    key k;
    k.tier = c->relay ? 1 : 0;
    int64_t rtt = c->rtt_ns > (uint64_t)INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)c->rtt_ns;
    if (!c->relay && c->ipv6)
        rtt -= (int64_t)IR_PATH_SELECT_IPV6_ADVANTAGE_NS;
    k.rtt = rtt;
    return k;
}

static int key_less(key a, key b)
{
    return a.tier < b.tier || (a.tier == b.tier && a.rtt < b.rtt);
}

int ir_path_select(const ir_path_cand *cand, size_t n, int current)
{
    int best = -1;
    key bk = {0, 0};
    for (size_t i = 0; i < n; i++) {
        key k = key_of(&cand[i]);
        if (best < 0 || key_less(k, bk)) {
            best = (int)i;
            bk = k;
        }
    }
    if (best < 0)
        return -1;
    if (current < 0 || (size_t)current >= n)
        return best;
    if (best == current)
        return -1;
    key ck = key_of(&cand[current]);
    if (ck.tier != bk.tier)
        return best; /* a better tier: at once (relay -> direct) */
    if (bk.rtt + (int64_t)IR_PATH_SELECT_SWITCH_MIN_NS <= ck.rtt)
        return best;
    return -1;
}
