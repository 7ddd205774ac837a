/* A relay server connection's output: two queues of whole frames (control frames and
 * HTTP responses before datagrams), the frames put on them, and the accounting of what
 * the shell wrote. */
#include "server_core.h"

#include <stdlib.h>
#include <string.h>

static void q_push(out_queue *q, out_frame *f)
{
    f->next = NULL;
    if (q->tail)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
    q->n++;
    q->bytes += f->len;
}

static out_frame *q_pop(out_queue *q)
{
    out_frame *f = q->head;
    if (!f)
        return NULL;
    q->head = f->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    q->bytes -= f->len;
    return f;
}

void ir_rs_q_free(out_queue *q)
{
    out_frame *f;
    while ((f = q_pop(q)))
        free(f);
}

void ir_rs_enqueue(ir_relay_core *core, ir_relay_conn *c, out_frame *f, int kind, uint64_t now)
{
    if (!has_output(c)) {
        c->t[T_WRITE] = now + core->write_timeout;
        ir_rs_reschedule(core, c);
    }
    q_push(kind == OUT_DGRAM ? &c->dg : &c->ctl, f);
    ir_rs_mark_changed(core, c);
}

/* Queues raw bytes (an HTTP response) as a control frame. */
int ir_rs_send_raw(ir_relay_core *core, ir_relay_conn *c, const void *data, size_t len,
                    uint64_t now)
{
    out_frame *f = ir_rs_frame_new(len);
    if (!f)
        return -1;
    memcpy(f->data, data, len);
    ir_rs_enqueue(core, c, f, OUT_CTL, now);
    return 0;
}

/* Queues one WebSocket message (server frames are not masked) on the control queue. */
int ir_rs_send_ws(ir_relay_core *core, ir_relay_conn *c, uint8_t opcode, const uint8_t *payload,
                   size_t len, uint64_t now)
{
    if (ctl_full(core, c)) {
        core->st.control_dropped++;
        return -1;
    }
    size_t h = ir_ws_header_len(len, 0);
    out_frame *f = ir_rs_frame_new(h + len);
    if (!f)
        return -1;
    ir_ws_write_header(f->data, 1, opcode, len, NULL);
    if (len)
        memcpy(f->data + h, payload, len);
    ir_rs_enqueue(core, c, f, OUT_CTL, now);
    return 0;
}

/* Queues a relay frame (a binary message) on the control queue. */
int ir_rs_send_frame(ir_relay_core *core, ir_relay_conn *c, const ir_relay_frame *rf, uint64_t now)
{
    if (ctl_full(core, c)) {
        core->st.control_dropped++;
        return -1;
    }
    size_t n = ir_relay_frame_encoded_len(rf);
    size_t h = ir_ws_header_len(n, 0);
    out_frame *f = ir_rs_frame_new(h + n);
    if (!f)
        return -1;
    ir_ws_write_header(f->data, 1, IR_WS_OP_BINARY, n, NULL);
    size_t w;
    if (ir_relay_frame_encode(rf, f->data + h, n, &w) != IROH_OK) {
        free(f);
        return -1;
    }
    ir_rs_enqueue(core, c, f, OUT_CTL, now);
    return 0;
}

/* Status (v2) or the same news as Health text (v1), never the other way round. */
void ir_rs_send_status(ir_relay_core *core, ir_relay_conn *c, uint8_t status, uint64_t now)
{
    ir_relay_frame f;
    memset(&f, 0, sizeof f);
    if (c->version == IR_RELAY_V2) {
        f.type = IR_RELAY_FT_STATUS;
        f.u.status = status;
    } else {
        f.type = IR_RELAY_FT_HEALTH;
        f.u.text.text = ir_relay_status_text(status);
        f.u.text.len = strlen(f.u.text.text);
    }
    ir_rs_send_frame(core, c, &f, now);
}

size_t ir_relay_conn_output(const ir_relay_conn *c, struct iovec *iov, size_t max)
{
    size_t n = 0;
    if (c->state == CS_CLOSED)
        return 0;
    if (c->cur && n < max) {
        iov[n].iov_base = (void *)(c->cur->data + c->cur_off);
        iov[n].iov_len = c->cur->len - c->cur_off;
        n++;
    }
    for (const out_frame *f = c->ctl.head; f && n < max; f = f->next, n++) {
        iov[n].iov_base = (void *)f->data;
        iov[n].iov_len = f->len;
    }
    for (const out_frame *f = c->dg.head; f && n < max; f = f->next, n++) {
        iov[n].iov_base = (void *)f->data;
        iov[n].iov_len = f->len;
    }
    return n;
}

void ir_relay_core_sent(ir_relay_core *core, ir_relay_conn *c, size_t n, uint64_t now)
{
    core->now = now;
    int completed = 0;
    core->st.bytes_sent += n;
    while (n > 0) {
        if (!c->cur) {
            c->cur = q_pop(&c->ctl);
            if (!c->cur)
                c->cur = q_pop(&c->dg);
            c->cur_off = 0;
            if (!c->cur)
                break;
        }
        size_t left = c->cur->len - c->cur_off;
        size_t take = n < left ? n : left;
        c->cur_off += take;
        n -= take;
        if (c->cur_off == c->cur->len) {
            free(c->cur);
            c->cur = NULL;
            completed = 1;
        }
    }
    if (!has_output(c)) {
        c->t[T_WRITE] = 0;
        if (c->state == CS_CLOSING) {
            ir_rs_start_linger(core, c, now);
            return;
        }
    } else if (completed) {
        c->t[T_WRITE] = now + core->write_timeout;
    }
    ir_rs_reschedule(core, c);
    ir_rs_mark_changed(core, c);
}
