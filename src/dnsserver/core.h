/* The DNS server core's record, shared by its files: dns_answer.c (DNS messages),
 * http_api.c (the HTTP routes), ratelimit.c (PUTs per client), core.c (setup, counters,
 * metrics text). Internal functions carry the prefix ir_dnss_. */
#ifndef IR_DNSSERVER_CORE_H
#define IR_DNSSERVER_CORE_H

#include <ldns/ldns.h>

#include "dnsserver.h"

/* The PUT rate limiter: a token bucket per client IP (IPv6 by its /64) in a fixed table
 * of RL_SETS x RL_WAYS entries (1.3 MB; keyed hash), so that a flood of addresses costs a
 * bounded table, never more memory. A new client takes an entry of its set that owes
 * nothing (its bucket full again: forgetting it changes nothing), else the least recently
 * seen one: only more than RL_WAYS new clients in one set within 4 s can make the
 * limiter forget a client's debt. */
#define RL_SETS 4096
#define RL_WAYS 8
typedef struct rl_entry {
    uint8_t ip[16];
    uint64_t seen_ns;  /* last request; 0: free */
    uint64_t tat_ns;   /* GCRA: theoretical arrival time */
} rl_entry;

typedef struct ir_dnss_rl {
    int mode;
    uint64_t period_ns;
    uint32_t burst;
    uint8_t hkey[32];
    rl_entry e[RL_SETS][RL_WAYS];
} ir_dnss_rl;

typedef struct dnss_origin {
    ldns_rdf *name;      /* canonical (lowercase), absolute */
    size_t labels;
    ldns_rr_list *apex;  /* SOA, NS, A, AAAA at the origin */
    ldns_rr *soa;        /* in apex */
    uint32_t neg_ttl;    /* min(SOA TTL, SOA minimum) for negative answers (RFC 2308) */
} dnss_origin;

struct ir_dnss {
    ir_dnss_store *store;
    dnss_origin origins[IR_DNSS_MAX_ORIGINS];
    size_t n_origins;
    ir_dnss_rl *rl;
    ir_dnss_stats st;
    uint64_t last_tick_us;
};

/* dns_answer.c: the answer to msg (see ir_dnss_dns); *min_ttl (if not NULL) is the
 * smallest answer TTL, or UINT32_MAX when there are no answers */
int ir_dnss_answer(ir_dnss *s, int transport, const uint8_t *msg, size_t len, uint64_t unix_us,
                   uint8_t *out, size_t cap, size_t *out_len, uint32_t *min_ttl);

/* ratelimit.c */
int ir_dnss_rl_new(int mode, uint32_t burst, uint32_t period_ms, ir_dnss_rl **out);
/* 1 if a PUT from ip at now is allowed (and counted), 0 when over the limit */
int ir_dnss_rl_allow(ir_dnss_rl *rl, const uint8_t ip[16], uint64_t now_ns);

#endif
