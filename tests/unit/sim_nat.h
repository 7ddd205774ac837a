/* A NAT box for the simulators (sim_net.h): an inside and an outside address space, IPv4
 * UDP only. Datagrams leaving the inside get their source rewritten to the box's public
 * address and a port of a mapping; datagrams arriving at the public address are let in
 * (their destination rewritten back) only through a live mapping whose filter admits the
 * sender. The box has no clock of its own: the time comes with each datagram.
 *
 * Behaviours (RFC 4787 terms):
 *   - mapping: endpoint-independent (one outside port per inside address:port, whatever
 *     the destination) or symmetric (address-and-port-dependent: a new outside port for
 *     each destination address:port);
 *   - port preservation: a new mapping takes the inside port when no live mapping holds
 *     it, else the next free port from a counter (deterministic); off: always the counter;
 *   - filtering: none (full cone: anyone may send to a mapping), address-restricted (only
 *     addresses the mapping sent to), port-restricted (only address:port pairs it sent
 *     to: Linux conntrack with MASQUERADE behaves so);
 *   - timeouts: a mapping idle (nothing sent out through it, and with refresh_inbound
 *     nothing let in) for timeout_ns is gone, and its port free; a filter permission
 *     expires the same way;
 *   - hairpinning is off: a datagram from the inside to the box's own public address is
 *     dropped.
 * Counters tell why datagrams were dropped. Mappings live in a fixed table; when it is
 * full, outbound datagrams that need a new mapping are dropped (counted). */
#ifndef IR_TEST_SIM_NAT_H
#define IR_TEST_SIM_NAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "net/netaddr.h"

#define SIM_NAT_MAPPINGS 64
#define SIM_NAT_PERMS 16

typedef enum sim_nat_mapping {
    SIM_NAT_MAP_EI = 0,        /* endpoint-independent */
    SIM_NAT_MAP_SYMMETRIC = 1, /* a new port per destination address:port */
} sim_nat_mapping;

typedef enum sim_nat_filter {
    SIM_NAT_FILTER_NONE = 0, /* full cone */
    SIM_NAT_FILTER_ADDR = 1, /* address-restricted */
    SIM_NAT_FILTER_PORT = 2, /* address-and-port-restricted (Linux conntrack) */
} sim_nat_filter;

typedef struct sim_nat_config {
    uint32_t public_ip;      /* host order, e.g. 0xcb007101 = 203.0.113.1 */
    sim_nat_mapping mapping;
    sim_nat_filter filter;
    int port_preserving;     /* try the inside port first */
    uint64_t timeout_ns;     /* mapping and permission idle timeout; 0: 30 s */
    int refresh_inbound;     /* inbound datagrams keep a mapping alive too */
    uint16_t first_port;     /* the counter's start when the port is not kept; 0: 40000 */
} sim_nat_config;

typedef struct sim_nat_perm {
    uint32_t ip;
    uint16_t port;
    uint64_t last;
} sim_nat_perm;

typedef struct sim_nat_map {
    int used;
    uint32_t in_ip;
    uint16_t in_port;
    uint32_t dst_ip; /* symmetric: the destination it is for */
    uint16_t dst_port;
    uint16_t out_port;
    uint64_t last;
    sim_nat_perm perm[SIM_NAT_PERMS];
    int nperm;
} sim_nat_map;

typedef struct sim_nat_stats {
    uint64_t out, in;                     /* datagrams translated */
    uint64_t new_mappings, expired;       /* mappings made, mappings gone by timeout */
    uint64_t drop_hairpin, drop_no_mapping, drop_filtered, drop_table_full;
    uint64_t port_clashes;                /* port preservation fell back to the counter */
} sim_nat_stats;

typedef struct sim_nat {
    sim_nat_config cfg;
    sim_nat_map map[SIM_NAT_MAPPINGS];
    uint16_t next_port;
    sim_nat_stats st;
} sim_nat;

/* ---- addresses --------------------------------------------------------------------------- */

static inline uint32_t sim_ip(unsigned a, unsigned b, unsigned c, unsigned d)
{
    return (uint32_t)a << 24 | (uint32_t)b << 16 | (uint32_t)c << 8 | (uint32_t)d;
}

static inline void sim_addr(ir_netaddr *out, uint32_t ip, uint16_t port)
{
    iroh_socket_addr sa;
    memset(&sa, 0, sizeof sa);
    sa.family = 4;
    sa.ip[0] = (uint8_t)(ip >> 24);
    sa.ip[1] = (uint8_t)(ip >> 16);
    sa.ip[2] = (uint8_t)(ip >> 8);
    sa.ip[3] = (uint8_t)ip;
    sa.port = port;
    ir_netaddr_from_socket_addr(out, &sa);
}

/* 0 and the parts of an IPv4 UDP address; -1 for anything else (a relay path) */
static inline int sim_addr_parts(const ir_netaddr *a, uint32_t *ip, uint16_t *port)
{
    iroh_socket_addr sa;
    if (ir_netaddr_to_socket_addr(a, &sa) != 0 || sa.family != 4)
        return -1;
    *ip = (uint32_t)sa.ip[0] << 24 | (uint32_t)sa.ip[1] << 16 | (uint32_t)sa.ip[2] << 8 |
          sa.ip[3];
    *port = sa.port;
    return 0;
}

/* ---- the box ----------------------------------------------------------------------------- */

static inline void sim_nat_init(sim_nat *n, const sim_nat_config *cfg)
{
    memset(n, 0, sizeof *n);
    n->cfg = *cfg;
    if (!n->cfg.timeout_ns)
        n->cfg.timeout_ns = 30ull * 1000000000ull;
    n->next_port = n->cfg.first_port ? n->cfg.first_port : 40000;
}

static inline uint64_t sim_nat_timeout(const sim_nat *n)
{
    return n->cfg.timeout_ns;
}

/* forgets mappings and permissions idle for the timeout */
static inline void sim_nat_expire(sim_nat *n, uint64_t now)
{
    for (int i = 0; i < SIM_NAT_MAPPINGS; i++) {
        sim_nat_map *m = &n->map[i];
        if (!m->used)
            continue;
        if (now - m->last >= n->cfg.timeout_ns) {
            m->used = 0;
            n->st.expired++;
            continue;
        }
        for (int k = 0; k < m->nperm;) {
            if (now - m->perm[k].last >= n->cfg.timeout_ns)
                m->perm[k] = m->perm[--m->nperm];
            else
                k++;
        }
    }
}

/* Every mapping is gone at once (the box restarted, or its table was flushed): the next
 * datagram out gets a new one, and with flush_ports the old ports are not reused (the
 * counter moves on: a rebinding to a new public port). */
static inline void sim_nat_flush(sim_nat *n, int new_ports)
{
    for (int i = 0; i < SIM_NAT_MAPPINGS; i++)
        n->map[i].used = 0;
    if (new_ports)
        n->cfg.port_preserving = 0;
}

static inline size_t sim_nat_count(sim_nat *n, uint64_t now)
{
    sim_nat_expire(n, now);
    size_t c = 0;
    for (int i = 0; i < SIM_NAT_MAPPINGS; i++)
        c += n->map[i].used;
    return c;
}

static inline int sim_nat_port_used(const sim_nat *n, uint16_t port)
{
    for (int i = 0; i < SIM_NAT_MAPPINGS; i++)
        if (n->map[i].used && n->map[i].out_port == port)
            return 1;
    return 0;
}

static inline uint16_t sim_nat_new_port(sim_nat *n)
{
    for (int tries = 0; tries < 65536; tries++) {
        uint16_t p = n->next_port++;
        if (n->next_port < 1024)
            n->next_port = 1024;
        if (p >= 1024 && !sim_nat_port_used(n, p))
            return p;
    }
    return 0;
}

static inline void sim_nat_permit(sim_nat *n, sim_nat_map *m, uint32_t ip, uint16_t port,
                                  uint64_t now)
{
    for (int k = 0; k < m->nperm; k++) {
        if (m->perm[k].ip == ip && m->perm[k].port == port) {
            m->perm[k].last = now;
            return;
        }
    }
    int k = m->nperm < SIM_NAT_PERMS ? m->nperm++ : 0;
    if (m->nperm == SIM_NAT_PERMS && k == 0) {
        /* full: the oldest goes */
        for (int j = 1; j < SIM_NAT_PERMS; j++)
            if (m->perm[j].last < m->perm[k].last)
                k = j;
    }
    m->perm[k].ip = ip;
    m->perm[k].port = port;
    m->perm[k].last = now;
    (void)n;
}

/* A datagram from the inside address `from` to `to` at `now`: 0 and *out_from (the
 * public address it leaves with), or -1 (dropped: hairpin, no free mapping, not IPv4). */
static inline int sim_nat_out(sim_nat *n, const ir_netaddr *from, const ir_netaddr *to,
                              uint64_t now, ir_netaddr *out_from)
{
    uint32_t fip, tip;
    uint16_t fport, tport;
    if (sim_addr_parts(from, &fip, &fport) != 0 || sim_addr_parts(to, &tip, &tport) != 0)
        return -1;
    if (tip == n->cfg.public_ip) {
        n->st.drop_hairpin++;
        return -1;
    }
    sim_nat_expire(n, now);
    int sym = n->cfg.mapping == SIM_NAT_MAP_SYMMETRIC;
    sim_nat_map *m = NULL;
    for (int i = 0; i < SIM_NAT_MAPPINGS && !m; i++) {
        sim_nat_map *x = &n->map[i];
        if (x->used && x->in_ip == fip && x->in_port == fport &&
            (!sym || (x->dst_ip == tip && x->dst_port == tport)))
            m = x;
    }
    if (!m) {
        for (int i = 0; i < SIM_NAT_MAPPINGS && !m; i++)
            if (!n->map[i].used)
                m = &n->map[i];
        if (!m) {
            n->st.drop_table_full++;
            return -1;
        }
        uint16_t port = 0;
        if (n->cfg.port_preserving) {
            if (!sim_nat_port_used(n, fport))
                port = fport;
            else
                n->st.port_clashes++;
        }
        if (!port)
            port = sim_nat_new_port(n);
        if (!port) {
            n->st.drop_table_full++;
            return -1;
        }
        memset(m, 0, sizeof *m);
        m->used = 1;
        m->in_ip = fip;
        m->in_port = fport;
        m->dst_ip = tip;
        m->dst_port = tport;
        m->out_port = port;
        n->st.new_mappings++;
    }
    m->last = now;
    sim_nat_permit(n, m, tip, tport, now);
    sim_addr(out_from, n->cfg.public_ip, m->out_port);
    n->st.out++;
    return 0;
}

/* A datagram from `from` (outside) to the public address `to` at `now`: 0 and *in_to (the
 * inside address it goes on to), or -1 (no live mapping on that port, or filtered). */
static inline int sim_nat_in(sim_nat *n, const ir_netaddr *from, const ir_netaddr *to,
                             uint64_t now, ir_netaddr *in_to)
{
    uint32_t fip, tip;
    uint16_t fport, tport;
    if (sim_addr_parts(from, &fip, &fport) != 0 || sim_addr_parts(to, &tip, &tport) != 0 ||
        tip != n->cfg.public_ip)
        return -1;
    sim_nat_expire(n, now);
    sim_nat_map *m = NULL;
    for (int i = 0; i < SIM_NAT_MAPPINGS && !m; i++)
        if (n->map[i].used && n->map[i].out_port == tport)
            m = &n->map[i];
    if (!m) {
        n->st.drop_no_mapping++;
        return -1;
    }
    int ok = n->cfg.filter == SIM_NAT_FILTER_NONE;
    for (int k = 0; k < m->nperm && !ok; k++)
        ok = m->perm[k].ip == fip &&
             (n->cfg.filter == SIM_NAT_FILTER_ADDR || m->perm[k].port == fport);
    if (!ok) {
        n->st.drop_filtered++;
        return -1;
    }
    if (n->cfg.refresh_inbound) {
        m->last = now;
        for (int k = 0; k < m->nperm; k++)
            if (m->perm[k].ip == fip &&
                (n->cfg.filter != SIM_NAT_FILTER_PORT || m->perm[k].port == fport))
                m->perm[k].last = now;
    }
    sim_addr(in_to, m->in_ip, m->in_port);
    n->st.in++;
    return 0;
}

#endif
