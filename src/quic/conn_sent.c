/* What happens when a packet we sent is acknowledged or declared lost: each frame it
 * carried (sent_frame) is released or queued to be sent again. Called by recovery.c. */

#include <string.h>

#include "quic/conn_internal.h"

void ir_conn_on_frame_acked(ir_conn *c, int space, const sent_frame *f)
{
    qstream *s;
    switch (f->kind) {
    case SF_STREAM:
        s = ir_conn_find_stream(c, f->a);
        if (!s)
            break;
        ir_sendbuf_on_ack(&s->send, f->b, (size_t)f->c, f->fin);
        if (s->blocked_event &&
            ir_sendbuf_buffered(&s->send) < c->cfg.max_stream_send_buffer / 2) {
            s->blocked_event = 0;
            ir_conn_push_event(c, IR_EV_STREAM_WRITABLE, s->id, 0);
        }
        if (ir_sendbuf_done(&s->send))
            ir_conn_maybe_release_stream(c, s);
        break;
    case SF_CRYPTO:
        ir_sendbuf_on_ack(&SP(c, space).crypto_send, f->b, (size_t)f->c, 0);
        break;
    case SF_ACK: {
        /* the peer has our ACK frame: it need not hear again of the packets up to its
         * largest (RFC 9000 13.2.4). The largest received stays, so that later ACK frames
         * still report it (and their ACK delay is its own). Duplicates are told by
         * `seen`, which this does not touch. */
        pn_space *sp = &SP(c, space);
        uint64_t below = f->a + 1;
        if (sp->largest_recv != UINT64_MAX && below > sp->largest_recv)
            below = sp->largest_recv;
        ir_ranges_drop_below(&sp->ack_ranges, below);
        break;
    }
    case SF_MTU_PROBE:
        /* the path carries datagrams of this size: use them from now on */
        if (f->a > c->path->max_datagram)
            c->path->max_datagram = f->a;
        c->path->mtu_state = MTU_DONE;
        break;
    case SF_RESET_STREAM:
        s = ir_conn_find_stream(c, f->a);
        if (s) {
            s->reset_sent_acked = 1;
            ir_conn_maybe_release_stream(c, s);
        }
        break;
    default:
        break;
    }
}

void ir_conn_on_frame_lost(ir_conn *c, int space, const sent_frame *f)
{
    qstream *s;
    switch (f->kind) {
    case SF_STREAM:
        s = ir_conn_find_stream(c, f->a);
        if (s && !s->reset_sent && !s->reset_pending)
            ir_sendbuf_on_lost(&s->send, f->b, (size_t)f->c, f->fin);
        break;
    case SF_CRYPTO:
        if (!SP(c, space).discarded)
            ir_sendbuf_on_lost(&SP(c, space).crypto_send, f->b, (size_t)f->c, 0);
        break;
    case SF_RESET_STREAM:
        s = ir_conn_find_stream(c, f->a);
        if (s && !s->reset_sent_acked) {
            s->reset_pending = 1;
            s->reset_sent = 0;
        }
        break;
    case SF_STOP_SENDING:
        s = ir_conn_find_stream(c, f->a);
        if (s && !s->recv.have_final && !s->peer_reset)
            s->stop_pending = 1;
        break;
    case SF_MAX_DATA:
        c->max_data_pending = 1;
        break;
    case SF_MAX_STREAM_DATA:
        s = ir_conn_find_stream(c, f->a);
        if (s && !s->recv.have_final && !s->peer_reset)
            s->max_data_pending = 1;
        break;
    case SF_MAX_STREAMS:
        c->max_streams_pending[f->a ? 0 : 1] = 1;
        break;
    case SF_NEW_CID:
        for (size_t i = 0; i < c->path->nlcid; i++)
            if (c->path->lcid[i].seq == f->a && !c->path->lcid[i].retired)
                c->path->lcid[i].announce_pending = 1;
        break;
    case SF_RETIRE_CID:
        if (c->path->nrcid < MAX_REMOTE_CIDS) {
            remote_cid *r = &c->path->rcid[c->path->nrcid++];
            memset(r, 0, sizeof *r);
            r->seq = f->a;
            r->retire_pending = 1;
        }
        break;
    case SF_HANDSHAKE_DONE:
        c->handshake_done_pending = 1;
        break;
    case SF_OBSERVED_ADDRESS:
        if (f->a == c->observed_sent_seq) /* the latest report was lost: send it again */
            c->observed_pending = 1;
        break;
    case SF_MTU_PROBE:
        if (c->path->mtu_state == MTU_IN_FLIGHT) {
            /* lost: maybe the path is too narrow; twice more, a little apart */
            c->path->mtu_state = ++c->path->mtu_tries >= 3 ? MTU_DONE : MTU_DUE;
            c->path->mtu_next = c->now + (c->path->smoothed_rtt ? c->path->smoothed_rtt : 100 * NS_PER_MS);
        }
        break;
    case SF_PATH_CHALLENGE:
        if (c->path->challenge_outstanding)
            c->path->challenge_pending = 1;
        break;
    default:
        break;
    }
}
