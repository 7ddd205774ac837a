/* Receiving: datagrams into packets (coalesced), packets decrypted and their frames
 * dispatched, ACK scheduling, stateless resets, the peer moving to another address. */

#include <stdio.h>
#include <string.h>

#include "quic/conn_internal.h"

static unsigned pkt_bit(int space)
{
    return space == SP_INITIAL ? IR_PKT_INITIAL : space == SP_HANDSHAKE ? IR_PKT_HANDSHAKE : IR_PKT_1RTT;
}

static int extension_ok(const ir_conn *c, unsigned info)
{
    if ((info & IR_FRAME_NEEDS_DATAGRAM) && !c->cfg.tp.max_datagram_frame_size)
        return 0;
    if ((info & IR_FRAME_NEEDS_ACK_FREQUENCY) && !c->cfg.tp.has_min_ack_delay)
        return 0;
    if ((info & IR_FRAME_NEEDS_ADDR_DISCOVERY) && !c->qad_recv)
        return 0; /* only a receiver of address reports may get them */
    if ((info & IR_FRAME_NEEDS_MULTIPATH) && !c->multipath)
        return 0;
    if ((info & IR_FRAME_NEEDS_NAT_TRAVERSAL) && !ir_conn_nat_traversal(c))
        return 0;
    return 1;
}

/* An ACK of the packets sent in `space` on `path`. 0, or -1 after closing. */
static int on_ack(ir_conn *c, qpath *path, int space, const ir_frame_ack *ack)
{
    if (ir_rec_on_ack(c, path, space, ack, c->now) != 0) {
        ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, "ACK of a packet never sent");
        return -1;
    }
    if (space == SP_APP && c->ku.pending_ack && ack->largest >= PNS(c, path, space).key_phase_start_pn) {
        c->ku.pending_ack = 0; /* the current key phase is confirmed */
        c->ku.confirmed = c->now ? c->now : 1;
    }
    return 0;
}

/* Returns 1 if the frames made the packet ack-eliciting, 0 if not, -1 after closing. */
static int process_frames(ir_conn *c, qpath *path, int space, const ir_netaddr *from,
                          const ir_cid *pkt_dcid, const uint8_t *p, size_t len, int *non_probing)
{
    ir_cursor cur;
    ir_cursor_init(&cur, p, len);
    int eliciting = 0;
    if (len == 0) {
        ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, "packet without frames");
        return -1;
    }
    while (ir_cursor_left(&cur) > 0 && c->state < IR_CONN_CLOSING) {
        ir_frame f;
        int rc = ir_frame_decode(&cur, &f);
        if (rc < 0) {
            ir_conn_close_with(c, 0, (uint64_t)-rc, "malformed frame");
            return -1;
        }
        unsigned info = ir_frame_info(f.type);
        if (!(info & pkt_bit(space)) || !extension_ok(c, info)) {
            ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, "frame not allowed here");
            return -1;
        }
        if (info & IR_FRAME_ACK_ELICITING)
            eliciting = 1;
        if (!(info & IR_FRAME_PROBING))
            *non_probing = 1;
        switch (f.type) {
        case IR_FT_PADDING:
        case IR_FT_PING:
            break;
        case IR_FT_ACK:
        case IR_FT_ACK_ECN: {
            /* with multipath a plain ACK in a 1-RTT packet is path 0's (draft 3.3) */
            qpath *ap = space == SP_APP && c->multipath ? ir_conn_path_by_id(c, 0) : path;
            if (!ap || !ir_path_live(ap))
                break; /* path 0 is gone: nothing of it to acknowledge */
            if (on_ack(c, ap, space, &f.u.ack) != 0)
                return -1;
            break;
        }
        case IR_FT_PATH_ACK:
        case IR_FT_PATH_ACK_ECN: {
            c->stats.path_acks_recv++;
            if (f.u.ack.path_id > c->local_max_path_id) {
                ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, "PATH_ACK for a path id above our maximum");
                return -1;
            }
            if (ir_conn_latent_by_id(c, f.u.ack.path_id)) { /* (nothing was sent on it) */
                ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, "PATH_ACK of a packet never sent");
                return -1;
            }
            qpath *ap = ir_conn_path_by_id(c, f.u.ack.path_id);
            if (!ap || ap->state != PS_OPEN)
                break; /* a path abandoned or gone: ignored (draft 3.4.1, 4); what was in
                        * flight on it was repaired elsewhere */
            if (on_ack(c, ap, space, &f.u.ack) != 0)
                return -1;
            break;
        }
        case IR_FT_CRYPTO:
            ir_conn_crypto_received(c, space, &f.u.crypto);
            break;
        case IR_FT_NEW_TOKEN:
            if (c->is_server) {
                ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, "NEW_TOKEN from a client");
                return -1;
            }
            break;
        case IR_FT_RESET_STREAM: {
            uint64_t err;
            qstream *s = ir_conn_peer_stream(c, f.u.reset_stream.stream_id, 1, &err);
            if (err) {
                ir_conn_close_with(c, 0, err, "RESET_STREAM for a stream the peer does not send on");
                return -1;
            }
            if (!s || s->peer_reset)
                break;
            uint64_t fs = f.u.reset_stream.final_size;
            if ((s->recv.have_final && fs != s->recv.final_size) || fs < s->recv.highest) {
                ir_conn_close_with(c, 0, IR_QERR_FINAL_SIZE_ERROR, "RESET_STREAM final size");
                return -1;
            }
            if (fs > s->recv_max) {
                ir_conn_close_with(c, 0, IR_QERR_FLOW_CONTROL_ERROR, "RESET_STREAM beyond flow control");
                return -1;
            }
            if (c->recv_data + (fs - s->recv.highest) > c->max_data_local) {
                ir_conn_close_with(c, 0, IR_QERR_FLOW_CONTROL_ERROR, "RESET_STREAM beyond connection flow control");
                return -1;
            }
            c->recv_data += fs - s->recv.highest;
            c->read_data += fs - s->recv.read; /* nothing more will be read */
            s->peer_reset = 1;
            s->peer_reset_code = f.u.reset_stream.error_code;
            ir_conn_update_conn_window(c);
            ir_conn_push_event(c, IR_EV_STREAM_READABLE, s->id, 0);
            break;
        }
        case IR_FT_STOP_SENDING: {
            uint64_t err;
            qstream *s = ir_conn_peer_stream(c, f.u.stop_sending.stream_id, 0, &err);
            if (err) {
                ir_conn_close_with(c, 0, err, "STOP_SENDING for a stream we do not send on");
                return -1;
            }
            if (!s || s->peer_stopped)
                break;
            s->peer_stopped = 1;
            ir_conn_stream_reset(c, s->id, f.u.stop_sending.error_code);
            ir_conn_push_event(c, IR_EV_STREAM_STOPPED, s->id, f.u.stop_sending.error_code);
            break;
        }
        case IR_FT_MAX_DATA:
            if (f.u.limit > c->max_data_remote) {
                c->max_data_remote = f.u.limit;
                ir_conn_streams_unblocked(c);
                size_t i = 0;
                qstream *s;
                while ((s = ir_idmap_next(&c->streams, &i)) != NULL)
                    if (s->has_send)
                        ir_conn_push_event(c, IR_EV_STREAM_WRITABLE, s->id, 0);
            }
            break;
        case IR_FT_MAX_STREAM_DATA: {
            uint64_t err;
            qstream *s = ir_conn_peer_stream(c, f.u.stream_limit.stream_id, 0, &err);
            if (err) {
                ir_conn_close_with(c, 0, err, "MAX_STREAM_DATA for a stream we do not send on");
                return -1;
            }
            if (s && f.u.stream_limit.limit > s->send_max) {
                s->send_max = f.u.stream_limit.limit;
                ir_conn_stream_schedule(c, s);
                ir_conn_push_event(c, IR_EV_STREAM_WRITABLE, s->id, 0);
            }
            break;
        }
        case IR_FT_MAX_STREAMS_BIDI:
        case IR_FT_MAX_STREAMS_UNI: {
            int uni = f.type == IR_FT_MAX_STREAMS_UNI;
            if (f.u.limit > c->peer_max_streams[uni]) {
                c->peer_max_streams[uni] = f.u.limit;
                ir_conn_push_event(c, IR_EV_STREAMS_AVAILABLE, 0, (uint64_t)uni);
            }
            break;
        }
        case IR_FT_STREAM_DATA_BLOCKED: {
            /* only a sender blocks: not on a stream the peer cannot send on (RFC 9000
             * 19.13); it opens a peer's stream like STREAM does (3.2) */
            uint64_t err;
            ir_conn_peer_stream(c, f.u.stream_limit.stream_id, 1, &err);
            if (err) {
                ir_conn_close_with(c, 0, err, "STREAM_DATA_BLOCKED for a stream the peer does not send on");
                return -1;
            }
            break;
        }
        case IR_FT_DATA_BLOCKED:
        case IR_FT_STREAMS_BLOCKED_BIDI:
        case IR_FT_STREAMS_BLOCKED_UNI:
            break;
        case IR_FT_NEW_CONNECTION_ID:
        case IR_FT_RETIRE_CONNECTION_ID: {
            /* path 0's ids (also with multipath, where PATH_* frames are the rule) */
            qcids *k0 = ir_conn_cids_by_id(c, 0);
            if (!k0)
                break;
            if (f.type == IR_FT_NEW_CONNECTION_ID)
                ir_conn_new_cid_frame(c, k0, &f.u.new_cid);
            else
                ir_conn_retire_cid_frame(c, k0, f.u.retire_cid.seq, pkt_dcid);
            break;
        }
        case IR_FT_PATH_NEW_CONNECTION_ID:
        case IR_FT_PATH_RETIRE_CONNECTION_ID:
        case IR_FT_PATH_ABANDON:
        case IR_FT_PATH_STATUS_BACKUP:
        case IR_FT_PATH_STATUS_AVAILABLE:
        case IR_FT_MAX_PATH_ID:
        case IR_FT_PATHS_BLOCKED:
        case IR_FT_PATH_CIDS_BLOCKED:
            if (ir_conn_mp_frame(c, &f, pkt_dcid) != 0)
                return -1;
            break;
        case IR_FT_PATH_CHALLENGE:
            /* with NAT traversal, one from another address is a probe (conn_nat.c) */
            if (!ir_nat_path_challenge(c, path, f.u.path_data, from))
                ir_conn_path_challenge_frame(c, path, f.u.path_data, from);
            break;
        case IR_FT_PATH_RESPONSE:
            if (!ir_nat_path_response(c, f.u.path_data, from))
                ir_conn_path_response_frame(c, f.u.path_data);
            break;
        case IR_FT_ADD_ADDRESS_V4:
        case IR_FT_ADD_ADDRESS_V6:
        case IR_FT_REACH_OUT_V4:
        case IR_FT_REACH_OUT_V6:
        case IR_FT_REMOVE_ADDRESS:
            if (ir_nat_frame(c, &f) < 0)
                return -1;
            break;
        case IR_FT_CONNECTION_CLOSE:
        case IR_FT_APPLICATION_CLOSE:
            ir_conn_enter_draining(c, f.type == IR_FT_APPLICATION_CLOSE, f.u.close.error_code,
                           f.u.close.reason, f.u.close.reason_len);
            return -1;
        case IR_FT_HANDSHAKE_DONE:
            if (c->is_server) {
                ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, "HANDSHAKE_DONE from a client");
                return -1;
            }
            if (!c->handshake_confirmed) {
                c->handshake_confirmed = 1;
                ir_conn_discard_space(c, SP_HANDSHAKE);
            }
            break;
        case IR_FT_DATAGRAM:
        case IR_FT_DATAGRAM_LEN:
            if (f.u.datagram.len > c->cfg.tp.max_datagram_frame_size) {
                ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, "DATAGRAM larger than allowed");
                return -1;
            }
            ir_conn_datagram_received(c, f.u.datagram.data, f.u.datagram.len);
            break;
        case IR_FT_IMMEDIATE_ACK:
            PNS(c, path, space).ack_pending = 1;
            break;
        case IR_FT_ACK_FREQUENCY:
            break; /* we keep our own ack policy; the peer's request is only a hint */
        case IR_FT_OBSERVED_ADDRESS_V4:
        case IR_FT_OBSERVED_ADDRESS_V6:
            ir_conn_observed_address_frame(c, &f); /* extension_ok checked that we receive them */
            break;
        default:
            if ((f.type & ~(uint64_t)7) == IR_FT_STREAM) {
                ir_conn_stream_frame(c, &f);
                break;
            }
            ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, "unexpected frame");
            return -1;
        }
    }
    return c->state >= IR_CONN_CLOSING ? -1 : eliciting;
}

static int space_of_type(ir_pkt_type t)
{
    return t == IR_PT_INITIAL ? SP_INITIAL : t == IR_PT_HANDSHAKE ? SP_HANDSHAKE : SP_APP;
}

static void schedule_ack(ir_conn *c, pn_space *sp, int space, uint64_t pn, int eliciting)
{
    if (!eliciting)
        return;
    sp->ack_eliciting_since++;
    int out_of_order = sp->largest_recv != UINT64_MAX && pn != sp->largest_recv;
    if (space != SP_APP || sp->ack_eliciting_since >= 2 || out_of_order) {
        sp->ack_pending = 1;
    } else if (sp->ack_deadline == UINT64_MAX) {
        sp->ack_deadline = c->now + c->cfg.tp.max_ack_delay * NS_PER_MS;
    }
}

/* A packet that came on `path`. Returns 1 if it was processed, 0 if dropped. */
static int process_packet(ir_conn *c, qpath *path, const ir_netaddr *from, uint8_t *p,
                          const ir_pkt_hdr *h)
{
    if (h->type == IR_PT_VN) {
        if (!c->is_server && !c->got_first_server_packet) {
            /* a Version Negotiation that lists version 1 is bogus; one without it ends us */
            int lists_v1 = 0;
            for (size_t o = h->pn_offset; o + 4 <= h->pkt_len; o += 4)
                lists_v1 |= p[o] == 0 && p[o + 1] == 0 && p[o + 2] == 0 && p[o + 3] == 1;
            if (!lists_v1 && ir_cid_eq(&h->dcid, &c->paths[0]->cids.lcid[0].cid)) {
                ir_conn_close_with(c, 0, IR_QERR_NO_ERROR, "the peer does not support QUIC version 1");
                ir_conn_set_closed(c);
            }
        }
        return 0;
    }
    if (h->version == IR_QUIC_V1 && h->type == IR_PT_RETRY)
        return ir_conn_follow_retry(c, p, h);
    if (h->version != IR_QUIC_V1 || h->type == IR_PT_0RTT)
        return 0; /* we never accept 0-RTT */
    int space = space_of_type(h->type);
    pn_space *sp = &PNS(c, path, space);
    if (sp->discarded || !c->epoch[space].have_rx)
        return 0;
    if (space == SP_APP && c->is_server && !c->handshake_complete)
        return 0; /* RFC 9001 5.7: no 1-RTT processing before the handshake completes */
    if (h->type != IR_PT_1RTT && !c->is_server && c->got_first_server_packet &&
        !ir_cid_eq(&h->scid, &c->initial_scid))
        return 0; /* a long header from another server instance */
    uint64_t pn;
    const uint8_t *payload;
    size_t plen;
    int rc = ir_conn_decrypt_packet(c, path, p, h, space, &pn, &payload, &plen);
    if (rc != 0)
        return rc > 0; /* dropped; a duplicate was authenticated (no stateless reset) */
    if (!c->is_server && h->type != IR_PT_1RTT && !c->got_first_server_packet) {
        c->got_first_server_packet = 1;
        c->initial_scid = h->scid;
        c->paths[0]->cids.rcid[0].cid = h->scid;
        /* the first flight may have gone to several of the peer's addresses: path 0 is
         * wherever the first authenticated answer came from (spec quic-tls.md 2.4) */
        c->paths[0]->addr = *from;
    }
    if (c->is_server && space == SP_HANDSHAKE) {
        c->paths[0]->validated = 1; /* RFC 9000 8.1: a Handshake packet proves the address */
        ir_conn_discard_space(c, SP_INITIAL);
    }
    c->last_activity = c->now;
    path->last_recv = c->now;
    c->stats.pkts_recv++;
    path->pkts_recv++;
    path->rx_bytes += h->pkt_len;
    int non_probing = 0;
    int eliciting = process_frames(c, path, space, from, &h->dcid, payload, plen, &non_probing);
    if (eliciting < 0)
        return 1;
    ir_pn_seen_add(&sp->seen, pn);
    /* without memory for another range the lowest is dropped: that packet goes
     * unacknowledged and the peer repairs it as lost */
    ir_ranges_add(&sp->ack_ranges, pn, pn + 1);
    schedule_ack(c, sp, space, pn, eliciting);
    if (sp->largest_recv == UINT64_MAX || pn > sp->largest_recv) {
        sp->largest_recv = pn;
        sp->largest_recv_time = c->now;
        /* connection migration / NAT rebinding: the peer's newest packet moves path 0 */
        if (space == SP_APP && non_probing && c->handshake_confirmed && path->state == PS_OPEN &&
            !ir_netaddr_eq(from, &path->addr)) {
            if (path->validated) {
                path->prev_addr = path->addr;
                path->have_prev = 1;
            }
            path->addr = *from;
            path->validated = 0;
            path->bytes_recv = 0;
            path->bytes_sent = 0;
            ir_conn_start_validation(c, path);
            c->observed_pending = c->qad_send; /* tell the peer its new address */
            /* a new path: its MTU and capacity are unknown again (RFC 9000 9.4) */
            ir_rec_new_path(c, path, c->now);
            path->mtu_state = MTU_IDLE;
            path->mtu_tries = 0;
            ir_conn_push_event(c, IR_EV_PATH_CHANGED, path->id, 0);
        }
    }
    return 1;
}

void ir_conn_recv(ir_conn *c, const ir_netaddr *from, uint8_t *data, size_t len, uint64_t now)
{
    c->now = now;
    if (c->state == IR_CONN_CLOSED || c->state == IR_CONN_DRAINING)
        return;
    c->stats.bytes_recv += len;
    c->rx_dgram_len = len;
    /* the path the datagram came on: path 0 without multipath; with it, the path of the
     * connection id its (first) 1-RTT packet was sent to (long headers: path 0's) */
    qpath *path = c->paths[0];
    if (c->multipath && c->state != IR_CONN_CLOSING) {
        ir_pkt_hdr h0;
        if (ir_pkt_parse(data, len, CID_LEN, &h0) == 0 && h0.type == IR_PT_1RTT) {
            qpath *p = ir_conn_path_by_dcid(c, &h0.dcid);
            qlatent *l = p ? NULL : ir_conn_latent_by_dcid(c, &h0.dcid);
            if (l)
                p = ir_conn_mp_accept_path(c, l, from);
            if (!p) {
                /* an id of a path gone (or none of ours): maybe the peer's stateless reset
                 * (the token of any path's id in use counts) */
                for (size_t i = 0; i < c->npaths; i++) {
                    const qpath *q = c->paths[i];
                    const remote_cid *r = q->state == PS_OPEN && q->cids.nrcid ? &q->cids.rcid[q->cids.active_rcid] : NULL;
                    if (r && r->has_token && ir_pkt_is_stateless_reset(data, len, r->token)) {
                        c->close.closed = 1;
                        c->close.by_peer = 1;
                        c->close.reset = 1;
                        snprintf(c->close.reason, sizeof c->close.reason, "stateless reset");
                        c->state = IR_CONN_DRAINING;
                        c->close_deadline = now;
                        ir_conn_set_closed(c);
                        return;
                    }
                }
                return;
            }
            path = p;
        }
    }
    int on_path = ir_netaddr_eq(from, &path->addr);
    if (on_path)
        path->bytes_recv += len;
    if (c->state == IR_CONN_CLOSING) {
        c->close_pending = 1; /* answer whatever comes with our close again */
        return;
    }
    size_t off = 0;
    int processed = 0;
    while (off < len) {
        ir_pkt_hdr h;
        if (ir_pkt_parse(data + off, len - off, CID_LEN, &h) != 0)
            break;
        if (off > 0 && h.type != IR_PT_1RTT && !ir_cid_eq(&h.dcid, &c->paths[0]->cids.lcid[0].cid) &&
            !ir_conn_owns_cid(c, h.dcid.data, h.dcid.len) && !ir_cid_eq(&h.dcid, &c->odcid))
            break; /* coalesced packets must share the DCID */
        processed |= process_packet(c, path, from, data + off, &h);
        if (c->state >= IR_CONN_CLOSING)
            return;
        off += h.pkt_len;
    }
    /* a datagram that moved the path to its address counts toward that path's
     * anti-amplification allowance (RFC 9000 8.1, 9.3) */
    if (!on_path && ir_netaddr_eq(from, &path->addr))
        path->bytes_recv += len;
    if (!processed) {
        /* a stateless reset from the peer? (RFC 9000 10.3.1). Only the token of the
         * connection id in use counts: not those of ids we have not used, nor retired
         * ones (which are forgotten). */
        const remote_cid *r = path->cids.nrcid ? &path->cids.rcid[path->cids.active_rcid] : NULL;
        if (r && r->has_token && ir_pkt_is_stateless_reset(data, len, r->token)) {
            c->close.closed = 1;
            c->close.by_peer = 1;
            c->close.reset = 1;
            snprintf(c->close.reason, sizeof c->close.reason, "stateless reset");
            c->state = IR_CONN_DRAINING;
            c->close_deadline = now;
            ir_conn_set_closed(c);
        }
    }
}
