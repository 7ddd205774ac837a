/* Multipath (draft-ietf-quic-multipath as noq 1.0 speaks it, spec quic-tls.md 3): the
 * public path calls (open, status, abandon, the path list). */

#include <string.h>

#include "quic/conn_internal.h"

int ir_conn_multipath(const ir_conn *c)
{
    return c->multipath;
}

int ir_conn_open_path(ir_conn *c, const ir_netaddr *addr, int available, uint64_t now,
                      uint64_t *path_id)
{
    (void)addr;
    (void)available;
    (void)path_id;
    c->now = now;
    if (!c->multipath || c->is_server)
        return IR_QUIC_STREAM_ERR;
    return IR_QUIC_AGAIN;
}

int ir_conn_path_set_status(ir_conn *c, uint64_t path_id, int available)
{
    (void)path_id;
    (void)available;
    if (!c->multipath)
        return IR_QUIC_STREAM_ERR;
    return IR_QUIC_STREAM_ERR;
}

int ir_conn_path_abandon(ir_conn *c, uint64_t path_id, uint64_t code, uint64_t now)
{
    (void)path_id;
    (void)code;
    c->now = now;
    if (!c->multipath)
        return IR_QUIC_STREAM_ERR;
    return IR_QUIC_STREAM_ERR;
}

static void path_info(const ir_conn *c, const qpath *p, ir_conn_path_info *o)
{
    memset(o, 0, sizeof *o);
    o->id = p->id;
    o->addr = p->addr;
    o->validated = p->validated;
    o->available = p->available;
    o->peer_available = p->peer_available;
    o->abandoned = p->abandoned;
    o->sending = p == c->send_path;
    o->rtt_ns = p->smoothed_rtt;
    o->min_rtt_ns = p->min_rtt == UINT64_MAX ? 0 : p->min_rtt;
    o->cwnd = p->cc.cwnd;
    o->max_datagram = p->max_datagram;
    o->pkts_sent = p->pkts_sent;
    o->pkts_recv = p->pkts_recv;
    o->pkts_lost = p->pkts_lost;
    o->bytes_sent = p->tx_bytes;
    o->bytes_recv = p->rx_bytes;
}

size_t ir_conn_paths(const ir_conn *c, ir_conn_path_info *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < c->npaths; i++) {
        if (n < cap && out)
            path_info(c, &c->paths[i], &out[n]);
        n++;
    }
    return n;
}
