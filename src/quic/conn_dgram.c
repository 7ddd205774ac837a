/* Unreliable datagrams (RFC 9221): the queues in and out and DATAGRAM frames. */

#include <stdlib.h>
#include <string.h>

#include "quic/conn_internal.h"

size_t ir_conn_datagram_max(const ir_conn *c)
{
    if (!c->peer_tp_ok || !c->peer_tp.max_datagram_frame_size)
        return 0;
    /* one short-header packet: 1 + dcid + 4 (pn) + tag, frame type + length */
    const qpath *path = c->send_path;
    size_t room = path->max_datagram - 1 - ir_conn_dcid(path)->len - 4 - IR_AEAD_TAG_LEN - 1 - 2;
    if (room > c->peer_tp.max_datagram_frame_size)
        room = (size_t)c->peer_tp.max_datagram_frame_size;
    return room;
}

/* the ring *q, allocated when first needed: 0, or -1 (no memory) */
static int ring(dgram **q)
{
    if (!*q)
        *q = calloc(DGRAM_QUEUE, sizeof **q);
    return *q ? 0 : -1;
}

int ir_conn_datagram_send(ir_conn *c, const uint8_t *data, size_t len)
{
    if (c->state >= IR_CONN_CLOSING || len > ir_conn_datagram_max(c))
        return IR_QUIC_STREAM_ERR;
    if (c->dg_out_n == DGRAM_QUEUE)
        return IR_QUIC_AGAIN;
    if (ring(&c->dg_out) != 0)
        return IR_QUIC_NO_MEMORY;
    dgram *d = &c->dg_out[(c->dg_out_head + c->dg_out_n) % DGRAM_QUEUE];
    d->data = malloc(len ? len : 1);
    if (!d->data)
        return IR_QUIC_NO_MEMORY;
    if (len)
        memcpy(d->data, data, len);
    d->len = len;
    c->dg_out_n++;
    return 0;
}

long ir_conn_datagram_recv(ir_conn *c, uint8_t *buf, size_t cap)
{
    if (!c->dg_in_n)
        return c->state >= IR_CONN_CLOSING ? IR_QUIC_STREAM_ERR : IR_QUIC_AGAIN;
    dgram *d = &c->dg_in[c->dg_in_head];
    size_t n = d->len < cap ? d->len : cap;
    if (n)
        memcpy(buf, d->data, n);
    free(d->data);
    d->data = NULL;
    c->dg_in_head = (c->dg_in_head + 1) % DGRAM_QUEUE;
    c->dg_in_n--;
    return (long)n;
}

void ir_conn_datagram_received(ir_conn *c, const uint8_t *data, size_t len)
{
    if (ring(&c->dg_in) != 0)
        return; /* no memory: dropped, as datagrams may be */
    if (c->dg_in_n == DGRAM_QUEUE) { /* drop the oldest: datagrams are unreliable */
        free(c->dg_in[c->dg_in_head].data);
        c->dg_in_head = (c->dg_in_head + 1) % DGRAM_QUEUE;
        c->dg_in_n--;
    }
    dgram *d = &c->dg_in[(c->dg_in_head + c->dg_in_n) % DGRAM_QUEUE];
    d->data = malloc(len ? len : 1);
    if (!d->data)
        return;
    if (len)
        memcpy(d->data, data, len);
    d->len = len;
    c->dg_in_n++;
    ir_conn_push_event(c, IR_EV_DATAGRAM, 0, 0);
}

void ir_conn_write_datagrams(ir_conn *c, pktw *w)
{
    while (c->dg_out_n && pktw_can_record(w)) {
        dgram *d = &c->dg_out[c->dg_out_head];
        if (d->len > ir_conn_datagram_max(c)) {
            /* queued before the path's datagrams shrank (a black hole, a new address): it
             * fits no packet any more, and the datagrams behind it must not wait forever */
            free(d->data);
            d->data = NULL;
            c->dg_out_head = (c->dg_out_head + 1) % DGRAM_QUEUE;
            c->dg_out_n--;
            continue;
        }
        size_t max;
        if (ir_datagram_frame_fit(pktw_room(w), 1, &max) != 0 || max < d->len)
            return;
        ir_frame f = {.type = IR_FT_DATAGRAM_LEN};
        f.u.datagram.data = d->data;
        f.u.datagram.len = d->len;
        if (!pktw_put_frame(w, &f))
            return;
        pktw_record(w, &ir_sf_datagram, 0, 0, 0, 0, 1);
        free(d->data);
        d->data = NULL;
        c->dg_out_head = (c->dg_out_head + 1) % DGRAM_QUEUE;
        c->dg_out_n--;
    }
}

/* a DATAGRAM frame is never sent again (RFC 9221 5.2) */
const sent_kind ir_sf_datagram = {"DATAGRAM", NULL, NULL, 0};
