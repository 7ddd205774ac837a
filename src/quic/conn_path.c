/* The path of a QUIC connection: validation (RFC 9000 8.2, PATH_CHALLENGE and
 * PATH_RESPONSE), QUIC address discovery (OBSERVED_ADDRESS in), path MTU discovery. */

#include <string.h>

#include "base/addr.h"
#include "quic/conn_internal.h"

/* Starts validating path 0 (a new peer address, or the path MTU of the current one): a new
 * PATH_CHALLENGE, sent again after each PTO (doubling) until answered, abandoned after
 * three times the larger of the PTO and the PTO of a new path (8.2.4). */
void ir_conn_start_validation(ir_conn *c)
{
    qpath *p = c->path;
    ir_conn_rnd(c, p->challenge, 8);
    p->challenge_pending = 1;
    p->challenge_outstanding = 1;
    p->challenge_small = 0;
    p->challenge_count = 0;
    uint64_t pto = ir_rec_pto(c, SP_APP), first = ir_rec_initial_pto(c);
    p->validation_deadline = c->now + 3 * (pto > first ? pto : first);
}

void ir_conn_abandon_validation(ir_conn *c)
{
    qpath *p = c->path;
    p->challenge_pending = p->challenge_outstanding = p->challenge_small = 0;
    p->validation_deadline = UINT64_MAX;
    if (!p->validated && p->have_prev) {
        /* back to the last validated address (9.3.2); packets from the new one with higher
         * packet numbers would move us there again */
        p->addr = p->prev_addr;
        p->validated = 1;
        p->have_prev = 0;
    }
}

uint64_t ir_conn_path_timer(const ir_conn *c)
{
    const qpath *p = c->path;
    if (!p->challenge_outstanding || c->state != IR_CONN_ESTABLISHED)
        return UINT64_MAX;
    uint64_t t = p->validation_deadline;
    if (!p->challenge_pending && p->challenge_count) {
        unsigned k = p->challenge_count - 1 < 10 ? p->challenge_count - 1 : 10;
        uint64_t again = p->challenge_sent + (ir_rec_pto(c, SP_APP) << k);
        if (again < t)
            t = again;
    }
    return t;
}

void ir_conn_path_on_timeout(ir_conn *c, uint64_t now)
{
    qpath *p = c->path;
    if (!p->challenge_outstanding || c->state != IR_CONN_ESTABLISHED)
        return;
    if (now >= p->validation_deadline)
        ir_conn_abandon_validation(c);
    else if (!p->challenge_pending && p->challenge_count && ir_conn_path_timer(c) <= now)
        p->challenge_pending = 1; /* the challenge or its response was lost */
}

/* OBSERVED_ADDRESS: the newest report (by sequence number) is our address as the peer
 * sees it; an IPv4-mapped IPv6 address counts as IPv4 */
void ir_conn_observed_address_frame(ir_conn *c, const ir_frame *f)
{
    if (c->have_observed && f->u.addr.seq <= c->observed_recv_seq)
        return; /* older or repeated */
    iroh_socket_addr a;
    memset(&a, 0, sizeof a);
    if (f->type == IR_FT_OBSERVED_ADDRESS_V4) {
        a.family = 4;
        memcpy(a.ip, f->u.addr.ip, 4);
    } else if (ir_ip6_is_v4_mapped(f->u.addr.ip)) {
        a.family = 4;
        memcpy(a.ip, f->u.addr.ip + 12, 4);
    } else {
        a.family = 6;
        memcpy(a.ip, f->u.addr.ip, 16);
    }
    a.port = f->u.addr.port;
    c->observed = a;
    c->observed_recv_seq = f->u.addr.seq;
    c->have_observed = 1;
    ir_conn_push_event(c, IR_EV_OBSERVED_ADDRESS, 0, 0);
}

int ir_conn_observed_addr(const ir_conn *c, iroh_socket_addr *out)
{
    if (!c->have_observed)
        return -1;
    *out = c->observed;
    return 0;
}

/* PATH_RESPONSE and PATH_CHALLENGE go first in a packet: on a path limited by the
 * anti-amplification limit an ACK with many ranges could otherwise leave no room */
void ir_conn_write_path_frames(ir_conn *c, pktw *w)
{
    if (c->path->response_pending && ir_netaddr_eq(&c->path->response_addr, &c->path->addr) &&
        pktw_can_record(w)) {
        ir_frame f = {.type = IR_FT_PATH_RESPONSE};
        memcpy(f.u.path_data, c->path->response, 8);
        if (pktw_put_frame(w, &f)) {
            c->path->response_pending = 0;
            pktw_record(w, SF_PING, 0, 0, 0, 0, 1);
        }
    }
    if (c->path->challenge_pending && pktw_can_record(w)) {
        ir_frame f = {.type = IR_FT_PATH_CHALLENGE};
        memcpy(f.u.path_data, c->path->challenge, 8);
        if (pktw_put_frame(w, &f)) {
            c->path->challenge_pending = 0;
            pktw_record(w, SF_PATH_CHALLENGE, 0, 0, 0, 0, 1);
        }
    }
}

size_t ir_conn_send_path_response_elsewhere(ir_conn *c, uint8_t *buf, size_t cap, ir_netaddr *to)
{
    /* answer a probe from another address on that address, padded (RFC 9000 8.2.2) */
    pn_space *sp = &SP(c, SP_APP);
    if (!KEYS(c, SP_APP).have_tx || cap < 1200 || !ir_conn_can_seal(c, SP_APP))
        return 0;
    uint64_t pn = sp->next_pn;
    size_t pn_len = ir_pn_encode_len(pn, sp->largest_acked);
    size_t h = ir_pkt_write_short(buf, cap, ir_conn_dcid(c), c->key_phase, 0, pn, pn_len);
    if (!h)
        return 0;
    size_t pos = h;
    buf[pos++] = IR_FT_PATH_RESPONSE;
    memcpy(buf + pos, c->path->response, 8);
    pos += 8;
    size_t end = 1200 - IR_AEAD_TAG_LEN;
    memset(buf + pos, 0, end - pos);
    size_t total = ir_pkt_protect(buf, h, pn_len, 0, end - h, &KEYS(c, SP_APP).tx,
                                  (uint32_t)c->path->id, pn);
    KEYS(c, SP_APP).tx.sealed++;
    sp->next_pn++;
    c->path->response_pending = 0;
    *to = c->path->response_addr;
    return total;
}

/* The size to probe on the current path, or 0 when there is nothing to probe. */
static size_t mtu_target(const ir_conn *c)
{
    uint64_t t = IR_MTU_PROBE_SIZE;
    if (c->peer_tp.max_udp_payload_size < t)
        t = c->peer_tp.max_udp_payload_size;
    if (c->cfg.tp.max_udp_payload_size < t)
        t = c->cfg.tp.max_udp_payload_size;
    return t > c->path->max_datagram ? (size_t)t : 0;
}

/* Sends the path MTU probe when one is due (after the handshake is confirmed and the path
 * validated, when congestion control has room for it). */
size_t ir_conn_send_mtu_probe(ir_conn *c, uint8_t *buf, size_t cap, ir_netaddr *to)
{
    qpath *p = c->path;
    if (p->mtu_state == MTU_IDLE && c->handshake_confirmed && p->validated &&
        c->state == IR_CONN_ESTABLISHED && c->peer_tp_ok)
        p->mtu_state = mtu_target(c) ? MTU_DUE : MTU_DONE;
    if (p->mtu_state != MTU_DUE || c->now < p->mtu_next)
        return 0;
    size_t size = mtu_target(c);
    if (!size) {
        p->mtu_state = MTU_DONE;
        return 0;
    }
    /* it takes the place of one ordinary packet (else a bulk transfer that keeps the
     * window full would never leave room for the larger one) */
    if (cap < size || !ir_conn_cwnd_allows(c) || !KEYS(c, SP_APP).have_tx)
        return 0;
    c->mtu_probe_writing = 1;
    size_t n = ir_conn_write_packet(c, SP_APP, buf, size, size);
    int in = c->mtu_probe_writing == 2;
    c->mtu_probe_writing = 0;
    if (n && in) {
        p->mtu_state = MTU_IN_FLIGHT;
        *to = p->addr;
    }
    return n;
}

void ir_conn_mtu_black_hole(ir_conn *c)
{
    if (c->path->max_datagram <= 1200)
        return;
    c->path->max_datagram = 1200;
    c->path->mtu_state = MTU_DONE; /* no second try on this path */
}
