/* QUIC frame codec; see frame.h. */
#include "frame.h"

#include <string.h>

#define FEE (-IR_QERR_FRAME_ENCODING_ERROR)
#define PV (-IR_QERR_PROTOCOL_VIOLATION)

/* ---- per-type properties -------------------------------------------------------------- */

#define I IR_PKT_INITIAL
#define Z IR_PKT_0RTT
#define H IR_PKT_HANDSHAKE
#define O IR_PKT_1RTT
#define AE (IR_FRAME_ACK_ELICITING | IR_FRAME_IN_FLIGHT)

/* Table 3 of RFC 9000, with these choices:
 * - RETIRE_CONNECTION_ID is 1-RTT only: section 12.5 says it cannot be sent in 0-RTT
 *   (the table itself lists 0-RTT).
 * - In flight follows RFC 9002's definition (ack-eliciting or PADDING), so packets of
 *   only ACK and/or CONNECTION_CLOSE are not counted.
 * - Extensions: DATAGRAM, ACK_FREQUENCY, IMMEDIATE_ACK and OBSERVED_ADDRESS may come in
 *   0-RTT and 1-RTT (application data space; we accept IMMEDIATE_ACK in 0-RTT although
 *   the draft tells senders not to put it there). Multipath and n0 NAT-traversal frames
 *   are 1-RTT only. PATH_NEW_CONNECTION_ID is probing like NEW_CONNECTION_ID (as noq
 *   treats it); OBSERVED_ADDRESS is probing per its draft. */
unsigned ir_frame_info(uint64_t type)
{
    if (type >= IR_FT_STREAM && type <= (IR_FT_STREAM | 7))
        return Z | O | AE | IR_FRAME_FLOW_CONTROLLED;
    switch (type) {
    case IR_FT_PADDING:
        return I | H | Z | O | IR_FRAME_IN_FLIGHT | IR_FRAME_PROBING;
    case IR_FT_PING:
        return I | H | Z | O | AE;
    case IR_FT_ACK:
    case IR_FT_ACK_ECN:
        return I | H | O;
    case IR_FT_RESET_STREAM:
    case IR_FT_STOP_SENDING:
    case IR_FT_MAX_DATA:
    case IR_FT_MAX_STREAM_DATA:
    case IR_FT_MAX_STREAMS_BIDI:
    case IR_FT_MAX_STREAMS_UNI:
    case IR_FT_DATA_BLOCKED:
    case IR_FT_STREAM_DATA_BLOCKED:
    case IR_FT_STREAMS_BLOCKED_BIDI:
    case IR_FT_STREAMS_BLOCKED_UNI:
        return Z | O | AE;
    case IR_FT_CRYPTO:
        return I | H | O | AE;
    case IR_FT_NEW_TOKEN:
    case IR_FT_HANDSHAKE_DONE:
    case IR_FT_RETIRE_CONNECTION_ID:
        return O | AE;
    case IR_FT_NEW_CONNECTION_ID:
    case IR_FT_PATH_CHALLENGE:
        return Z | O | AE | IR_FRAME_PROBING;
    case IR_FT_PATH_RESPONSE:
        return O | AE | IR_FRAME_PROBING;
    case IR_FT_CONNECTION_CLOSE:
        return I | H | Z | O;
    case IR_FT_APPLICATION_CLOSE:
        return Z | O;
    case IR_FT_IMMEDIATE_ACK:
    case IR_FT_ACK_FREQUENCY:
        return Z | O | AE | IR_FRAME_NEEDS_ACK_FREQUENCY;
    case IR_FT_DATAGRAM:
    case IR_FT_DATAGRAM_LEN:
        return Z | O | AE | IR_FRAME_NEEDS_DATAGRAM;
    case IR_FT_PATH_ACK:
    case IR_FT_PATH_ACK_ECN:
        return O | IR_FRAME_NEEDS_MULTIPATH;
    case IR_FT_PATH_NEW_CONNECTION_ID:
        return O | AE | IR_FRAME_PROBING | IR_FRAME_NEEDS_MULTIPATH;
    case IR_FT_PATH_ABANDON:
    case IR_FT_PATH_STATUS_BACKUP:
    case IR_FT_PATH_STATUS_AVAILABLE:
    case IR_FT_PATH_RETIRE_CONNECTION_ID:
    case IR_FT_MAX_PATH_ID:
    case IR_FT_PATHS_BLOCKED:
    case IR_FT_PATH_CIDS_BLOCKED:
        return O | AE | IR_FRAME_NEEDS_MULTIPATH;
    case IR_FT_ADD_ADDRESS_V4:
    case IR_FT_ADD_ADDRESS_V6:
    case IR_FT_REACH_OUT_V4:
    case IR_FT_REACH_OUT_V6:
    case IR_FT_REMOVE_ADDRESS:
        return O | AE | IR_FRAME_NEEDS_NAT_TRAVERSAL;
    case IR_FT_OBSERVED_ADDRESS_V4:
    case IR_FT_OBSERVED_ADDRESS_V6:
        return Z | O | AE | IR_FRAME_PROBING | IR_FRAME_NEEDS_ADDR_DISCOVERY;
    default:
        return 0;
    }
}

#undef I
#undef Z
#undef H
#undef O
#undef AE

const char *ir_frame_type_name(uint64_t type)
{
    if (type >= IR_FT_STREAM && type <= (IR_FT_STREAM | 7))
        return "STREAM";
    switch (type) {
    case IR_FT_PADDING: return "PADDING";
    case IR_FT_PING: return "PING";
    case IR_FT_ACK: return "ACK";
    case IR_FT_ACK_ECN: return "ACK_ECN";
    case IR_FT_RESET_STREAM: return "RESET_STREAM";
    case IR_FT_STOP_SENDING: return "STOP_SENDING";
    case IR_FT_CRYPTO: return "CRYPTO";
    case IR_FT_NEW_TOKEN: return "NEW_TOKEN";
    case IR_FT_MAX_DATA: return "MAX_DATA";
    case IR_FT_MAX_STREAM_DATA: return "MAX_STREAM_DATA";
    case IR_FT_MAX_STREAMS_BIDI: return "MAX_STREAMS_BIDI";
    case IR_FT_MAX_STREAMS_UNI: return "MAX_STREAMS_UNI";
    case IR_FT_DATA_BLOCKED: return "DATA_BLOCKED";
    case IR_FT_STREAM_DATA_BLOCKED: return "STREAM_DATA_BLOCKED";
    case IR_FT_STREAMS_BLOCKED_BIDI: return "STREAMS_BLOCKED_BIDI";
    case IR_FT_STREAMS_BLOCKED_UNI: return "STREAMS_BLOCKED_UNI";
    case IR_FT_NEW_CONNECTION_ID: return "NEW_CONNECTION_ID";
    case IR_FT_RETIRE_CONNECTION_ID: return "RETIRE_CONNECTION_ID";
    case IR_FT_PATH_CHALLENGE: return "PATH_CHALLENGE";
    case IR_FT_PATH_RESPONSE: return "PATH_RESPONSE";
    case IR_FT_CONNECTION_CLOSE: return "CONNECTION_CLOSE";
    case IR_FT_APPLICATION_CLOSE: return "APPLICATION_CLOSE";
    case IR_FT_HANDSHAKE_DONE: return "HANDSHAKE_DONE";
    case IR_FT_IMMEDIATE_ACK: return "IMMEDIATE_ACK";
    case IR_FT_DATAGRAM: return "DATAGRAM";
    case IR_FT_DATAGRAM_LEN: return "DATAGRAM_LEN";
    case IR_FT_ACK_FREQUENCY: return "ACK_FREQUENCY";
    case IR_FT_PATH_ACK: return "PATH_ACK";
    case IR_FT_PATH_ACK_ECN: return "PATH_ACK_ECN";
    case IR_FT_PATH_ABANDON: return "PATH_ABANDON";
    case IR_FT_PATH_STATUS_BACKUP: return "PATH_STATUS_BACKUP";
    case IR_FT_PATH_STATUS_AVAILABLE: return "PATH_STATUS_AVAILABLE";
    case IR_FT_PATH_NEW_CONNECTION_ID: return "PATH_NEW_CONNECTION_ID";
    case IR_FT_PATH_RETIRE_CONNECTION_ID: return "PATH_RETIRE_CONNECTION_ID";
    case IR_FT_MAX_PATH_ID: return "MAX_PATH_ID";
    case IR_FT_PATHS_BLOCKED: return "PATHS_BLOCKED";
    case IR_FT_PATH_CIDS_BLOCKED: return "PATH_CIDS_BLOCKED";
    case IR_FT_ADD_ADDRESS_V4: return "ADD_ADDRESS_V4";
    case IR_FT_ADD_ADDRESS_V6: return "ADD_ADDRESS_V6";
    case IR_FT_REACH_OUT_V4: return "REACH_OUT_V4";
    case IR_FT_REACH_OUT_V6: return "REACH_OUT_V6";
    case IR_FT_REMOVE_ADDRESS: return "REMOVE_ADDRESS";
    case IR_FT_OBSERVED_ADDRESS_V4: return "OBSERVED_ADDRESS_V4";
    case IR_FT_OBSERVED_ADDRESS_V6: return "OBSERVED_ADDRESS_V6";
    default: return "UNKNOWN";
    }
}

/* ---- ACK ranges ----------------------------------------------------------------------- */

/* One (gap, length) step below a range whose smallest packet is *smallest: the next range
 * is [*smallest - gap - 2 - len, *smallest - gap - 2]. Returns 0 with *smallest and *top
 * updated, or -1 if it would go below 0. */
static int ack_step(uint64_t gap, uint64_t len, uint64_t *smallest, uint64_t *top)
{
    if (*smallest < gap || *smallest - gap < 2)
        return -1;
    uint64_t t = *smallest - gap - 2;
    if (len > t)
        return -1;
    *top = t;
    *smallest = t - len;
    return 0;
}

/* Reads and checks range_count (gap, length) pairs at c, starting below *smallest. */
static int ack_walk(ir_cursor *c, uint64_t count, uint64_t *smallest)
{
    for (uint64_t i = 0; i < count; i++) {
        uint64_t gap, len, top;
        if (ir_get_varint(c, &gap) || ir_get_varint(c, &len))
            return -1;
        if (ack_step(gap, len, smallest, &top))
            return -1;
    }
    return 0;
}

void ir_ack_iter_init(ir_ack_iter *it, const ir_frame_ack *ack)
{
    ir_cursor_init(&it->c, ack->ranges, ack->ranges_len);
    it->left = ack->range_count + 1;
    it->next_top = ack->largest;
    it->first_range = ack->first_range;
    it->prev_smallest = 0;
    it->started = 0;
}

int ir_ack_iter_next(ir_ack_iter *it, uint64_t *smallest, uint64_t *largest)
{
    if (it->left == 0)
        return 0;
    if (!it->started) {
        if (it->first_range > it->next_top) {
            it->left = 0;
            return -1;
        }
        it->started = 1;
        it->prev_smallest = it->next_top - it->first_range;
        *largest = it->next_top;
    } else {
        uint64_t gap, len, top;
        if (ir_get_varint(&it->c, &gap) || ir_get_varint(&it->c, &len) ||
            ack_step(gap, len, &it->prev_smallest, &top)) {
            it->left = 0;
            return -1;
        }
        *largest = top;
    }
    *smallest = it->prev_smallest;
    it->left--;
    return 1;
}

/* ---- decoding ------------------------------------------------------------------------- */

#define GET(v)                                                                             \
    do {                                                                                   \
        if (ir_get_varint(c, &(v)))                                                        \
            return FEE;                                                                    \
    } while (0)

/* A length-prefixed byte field that must fit in what is left. */
static int get_len_bytes(ir_cursor *c, const uint8_t **out, size_t *len)
{
    uint64_t n;
    if (ir_get_varint(c, &n) || n > ir_cursor_left(c))
        return FEE;
    *len = (size_t)n;
    *out = c->p + c->pos;
    c->pos += (size_t)n;
    return 0;
}

static int get_path_id(ir_cursor *c, uint64_t *out)
{
    GET(*out);
    return *out > IR_MAX_PATH_ID ? PV : 0;
}

static int decode_ack(ir_cursor *c, ir_frame *f, int path, int ecn)
{
    ir_frame_ack *a = &f->u.ack;
    int rc;
    if (path && (rc = get_path_id(c, &a->path_id)) != 0)
        return rc;
    GET(a->largest);
    GET(a->ack_delay);
    GET(a->range_count);
    GET(a->first_range);
    if (a->first_range > a->largest)
        return FEE;
    a->smallest = a->largest - a->first_range;
    size_t start = c->pos;
    if (ack_walk(c, a->range_count, &a->smallest))
        return FEE;
    a->ranges = c->p + start;
    a->ranges_len = c->pos - start;
    if (ecn) {
        GET(a->ecn.ect0);
        GET(a->ecn.ect1);
        GET(a->ecn.ce);
    }
    return 0;
}

static int decode_new_cid(ir_cursor *c, ir_frame *f, int path)
{
    ir_frame_new_cid *n = &f->u.new_cid;
    int rc;
    if (path && (rc = get_path_id(c, &n->path_id)) != 0)
        return rc;
    GET(n->seq);
    GET(n->retire_prior_to);
    if (ir_get_u8(c, &n->cid_len) || n->cid_len < 1 || n->cid_len > IR_MAX_CID_LEN)
        return FEE;
    if (n->retire_prior_to > n->seq)
        return FEE;
    if (ir_get_bytes(c, n->cid_len, &n->cid) ||
        ir_get_bytes(c, IR_RESET_TOKEN_LEN, &n->reset_token))
        return FEE;
    return 0;
}

static int decode_addr(ir_cursor *c, ir_frame *f, int v6)
{
    const uint8_t *ip;
    uint64_t port;
    GET(f->u.addr.seq);
    size_t n = v6 ? 16 : 4;
    if (ir_get_bytes(c, n, &ip) || ir_get_uint(c, 2, &port))
        return FEE;
    memcpy(f->u.addr.ip, ip, n);
    f->u.addr.port = (uint16_t)port;
    return 0;
}

static int decode_body(ir_cursor *c, ir_frame *f)
{
    uint64_t t;
    size_t start = c->pos;
    if (ir_get_varint(c, &t))
        return FEE;
    f->type = t;
    /* RFC 9000 12.4: frame types MUST use the shortest encoding; a receiver MAY treat a
     * longer one as PROTOCOL_VIOLATION, which we do (unknown types stay
     * FRAME_ENCODING_ERROR however they are encoded). */
    if (c->pos - start != ir_varint_len(t))
        return ir_frame_info(t) ? PV : FEE;

    if (t >= IR_FT_STREAM && t <= (IR_FT_STREAM | 7)) {
        ir_frame_stream *s = &f->u.stream;
        GET(s->stream_id);
        if (t & IR_FT_STREAM_OFF)
            GET(s->offset);
        if (t & IR_FT_STREAM_LEN) {
            int rc = get_len_bytes(c, &s->data, &s->len);
            if (rc)
                return rc;
        } else {
            s->len = ir_cursor_left(c);
            s->data = c->p + c->pos;
            c->pos = c->len;
        }
        if (s->len > IR_VARINT_MAX - s->offset)
            return FEE;
        return 0;
    }

    int rc;
    switch (t) {
    case IR_FT_PADDING: {
        size_t n = 1;
        while (c->pos < c->len && c->p[c->pos] == 0) {
            c->pos++;
            n++;
        }
        f->u.padding_len = n;
        return 0;
    }
    case IR_FT_PING:
    case IR_FT_HANDSHAKE_DONE:
    case IR_FT_IMMEDIATE_ACK:
        return 0;
    case IR_FT_ACK:
        return decode_ack(c, f, 0, 0);
    case IR_FT_ACK_ECN:
        return decode_ack(c, f, 0, 1);
    case IR_FT_PATH_ACK:
        return decode_ack(c, f, 1, 0);
    case IR_FT_PATH_ACK_ECN:
        return decode_ack(c, f, 1, 1);
    case IR_FT_RESET_STREAM:
        GET(f->u.reset_stream.stream_id);
        GET(f->u.reset_stream.error_code);
        GET(f->u.reset_stream.final_size);
        return 0;
    case IR_FT_STOP_SENDING:
        GET(f->u.stop_sending.stream_id);
        GET(f->u.stop_sending.error_code);
        return 0;
    case IR_FT_CRYPTO:
        GET(f->u.crypto.offset);
        if ((rc = get_len_bytes(c, &f->u.crypto.data, &f->u.crypto.len)) != 0)
            return rc;
        return f->u.crypto.len > IR_VARINT_MAX - f->u.crypto.offset ? FEE : 0;
    case IR_FT_NEW_TOKEN:
        if ((rc = get_len_bytes(c, &f->u.new_token.token, &f->u.new_token.len)) != 0)
            return rc;
        return f->u.new_token.len == 0 ? FEE : 0;
    case IR_FT_MAX_DATA:
    case IR_FT_DATA_BLOCKED:
        GET(f->u.limit);
        return 0;
    case IR_FT_MAX_STREAMS_BIDI:
    case IR_FT_MAX_STREAMS_UNI:
    case IR_FT_STREAMS_BLOCKED_BIDI:
    case IR_FT_STREAMS_BLOCKED_UNI:
        GET(f->u.limit);
        return f->u.limit > IR_MAX_STREAMS_LIMIT ? FEE : 0;
    case IR_FT_MAX_STREAM_DATA:
    case IR_FT_STREAM_DATA_BLOCKED:
        GET(f->u.stream_limit.stream_id);
        GET(f->u.stream_limit.limit);
        return 0;
    case IR_FT_NEW_CONNECTION_ID:
        return decode_new_cid(c, f, 0);
    case IR_FT_PATH_NEW_CONNECTION_ID:
        return decode_new_cid(c, f, 1);
    case IR_FT_RETIRE_CONNECTION_ID:
        GET(f->u.retire_cid.seq);
        return 0;
    case IR_FT_PATH_RETIRE_CONNECTION_ID:
        if ((rc = get_path_id(c, &f->u.retire_cid.path_id)) != 0)
            return rc;
        GET(f->u.retire_cid.seq);
        return 0;
    case IR_FT_PATH_CHALLENGE:
    case IR_FT_PATH_RESPONSE: {
        const uint8_t *d;
        if (ir_get_bytes(c, 8, &d))
            return FEE;
        memcpy(f->u.path_data, d, 8);
        return 0;
    }
    case IR_FT_CONNECTION_CLOSE:
    case IR_FT_APPLICATION_CLOSE:
        GET(f->u.close.error_code);
        if (t == IR_FT_CONNECTION_CLOSE)
            GET(f->u.close.frame_type);
        return get_len_bytes(c, &f->u.close.reason, &f->u.close.reason_len);
    case IR_FT_DATAGRAM:
        f->u.datagram.len = ir_cursor_left(c);
        f->u.datagram.data = c->p + c->pos;
        c->pos = c->len;
        return 0;
    case IR_FT_DATAGRAM_LEN:
        return get_len_bytes(c, &f->u.datagram.data, &f->u.datagram.len);
    case IR_FT_ACK_FREQUENCY:
        GET(f->u.ack_frequency.seq);
        GET(f->u.ack_frequency.ack_eliciting_threshold);
        GET(f->u.ack_frequency.request_max_ack_delay);
        GET(f->u.ack_frequency.reordering_threshold);
        return 0;
    case IR_FT_PATH_ABANDON:
        if ((rc = get_path_id(c, &f->u.path_abandon.path_id)) != 0)
            return rc;
        GET(f->u.path_abandon.error_code);
        return 0;
    case IR_FT_PATH_STATUS_BACKUP:
    case IR_FT_PATH_STATUS_AVAILABLE:
        if ((rc = get_path_id(c, &f->u.path_status.path_id)) != 0)
            return rc;
        GET(f->u.path_status.seq);
        return 0;
    case IR_FT_MAX_PATH_ID:
    case IR_FT_PATHS_BLOCKED:
        return get_path_id(c, &f->u.limit);
    case IR_FT_PATH_CIDS_BLOCKED:
        if ((rc = get_path_id(c, &f->u.path_cids_blocked.path_id)) != 0)
            return rc;
        GET(f->u.path_cids_blocked.next_seq);
        return 0;
    case IR_FT_ADD_ADDRESS_V4:
    case IR_FT_REACH_OUT_V4:
    case IR_FT_OBSERVED_ADDRESS_V4:
        return decode_addr(c, f, 0);
    case IR_FT_ADD_ADDRESS_V6:
    case IR_FT_REACH_OUT_V6:
    case IR_FT_OBSERVED_ADDRESS_V6:
        return decode_addr(c, f, 1);
    case IR_FT_REMOVE_ADDRESS:
        GET(f->u.remove_seq);
        return 0;
    default:
        return FEE; /* RFC 9000 12.4: unknown frame type */
    }
}

#undef GET

int ir_frame_decode(ir_cursor *c, ir_frame *f)
{
    size_t start = c->pos;
    memset(f, 0, sizeof *f);
    int rc = decode_body(c, f);
    if (rc)
        c->pos = start;
    return rc;
}

/* ---- encoding ------------------------------------------------------------------------- */


static void put_u8(ir_writer *w, uint8_t v)
{
    ir_put_bytes(w, &v, 1);
}

static void put_len_bytes(ir_writer *w, const uint8_t *b, size_t n)
{
    ir_put_varint(w, (uint64_t)n);
    ir_put_bytes(w, b, n);
}

static void put_path_id(ir_writer *w, uint64_t id)
{
    if (id > IR_MAX_PATH_ID)
        w->err = 1;
    else
        ir_put_varint(w, id);
}

static int encode_body(ir_writer *w, const ir_frame *f)
{
    uint64_t t = f->type;
    if (t >= IR_FT_STREAM && t <= (IR_FT_STREAM | 7)) {
        const ir_frame_stream *s = &f->u.stream;
        if (!(t & IR_FT_STREAM_OFF) && s->offset != 0)
            return -1;
        if (s->offset > IR_VARINT_MAX || s->len > IR_VARINT_MAX - s->offset)
            return -1;
        ir_put_varint(w, t);
        ir_put_varint(w, s->stream_id);
        if (t & IR_FT_STREAM_OFF)
            ir_put_varint(w, s->offset);
        if (t & IR_FT_STREAM_LEN)
            ir_put_varint(w, (uint64_t)s->len);
        ir_put_bytes(w, s->data, s->len);
        return 0;
    }
    if (t == IR_FT_PADDING) {
        if (f->u.padding_len == 0 || f->u.padding_len > w->cap - w->pos)
            return -1;
        memset(w->p + w->pos, 0, f->u.padding_len);
        w->pos += f->u.padding_len;
        return 0;
    }
    if (!ir_frame_info(t))
        return -1;
    ir_put_varint(w, t);
    switch (t) {
    case IR_FT_PING:
    case IR_FT_HANDSHAKE_DONE:
    case IR_FT_IMMEDIATE_ACK:
        break;
    case IR_FT_ACK:
    case IR_FT_ACK_ECN:
    case IR_FT_PATH_ACK:
    case IR_FT_PATH_ACK_ECN: {
        const ir_frame_ack *a = &f->u.ack;
        if (t == IR_FT_PATH_ACK || t == IR_FT_PATH_ACK_ECN)
            put_path_id(w, a->path_id);
        if (a->first_range > a->largest || (a->ranges_len > 0 && !a->ranges))
            return -1;
        /* the raw ranges must be exactly range_count valid pairs */
        ir_cursor rc;
        uint64_t smallest = a->largest - a->first_range;
        ir_cursor_init(&rc, a->ranges, a->ranges_len);
        if (ack_walk(&rc, a->range_count, &smallest) || rc.pos != rc.len)
            return -1;
        ir_put_varint(w, a->largest);
        ir_put_varint(w, a->ack_delay);
        ir_put_varint(w, a->range_count);
        ir_put_varint(w, a->first_range);
        ir_put_bytes(w, a->ranges, a->ranges_len);
        if (t == IR_FT_ACK_ECN || t == IR_FT_PATH_ACK_ECN) {
            ir_put_varint(w, a->ecn.ect0);
            ir_put_varint(w, a->ecn.ect1);
            ir_put_varint(w, a->ecn.ce);
        }
        break;
    }
    case IR_FT_RESET_STREAM:
        ir_put_varint(w, f->u.reset_stream.stream_id);
        ir_put_varint(w, f->u.reset_stream.error_code);
        ir_put_varint(w, f->u.reset_stream.final_size);
        break;
    case IR_FT_STOP_SENDING:
        ir_put_varint(w, f->u.stop_sending.stream_id);
        ir_put_varint(w, f->u.stop_sending.error_code);
        break;
    case IR_FT_CRYPTO:
        if (f->u.crypto.offset > IR_VARINT_MAX ||
            f->u.crypto.len > IR_VARINT_MAX - f->u.crypto.offset)
            return -1;
        ir_put_varint(w, f->u.crypto.offset);
        put_len_bytes(w, f->u.crypto.data, f->u.crypto.len);
        break;
    case IR_FT_NEW_TOKEN:
        if (f->u.new_token.len == 0)
            return -1;
        put_len_bytes(w, f->u.new_token.token, f->u.new_token.len);
        break;
    case IR_FT_MAX_DATA:
    case IR_FT_DATA_BLOCKED:
        ir_put_varint(w, f->u.limit);
        break;
    case IR_FT_MAX_STREAMS_BIDI:
    case IR_FT_MAX_STREAMS_UNI:
    case IR_FT_STREAMS_BLOCKED_BIDI:
    case IR_FT_STREAMS_BLOCKED_UNI:
        if (f->u.limit > IR_MAX_STREAMS_LIMIT)
            return -1;
        ir_put_varint(w, f->u.limit);
        break;
    case IR_FT_MAX_STREAM_DATA:
    case IR_FT_STREAM_DATA_BLOCKED:
        ir_put_varint(w, f->u.stream_limit.stream_id);
        ir_put_varint(w, f->u.stream_limit.limit);
        break;
    case IR_FT_NEW_CONNECTION_ID:
    case IR_FT_PATH_NEW_CONNECTION_ID: {
        const ir_frame_new_cid *n = &f->u.new_cid;
        if (n->cid_len < 1 || n->cid_len > IR_MAX_CID_LEN || n->retire_prior_to > n->seq ||
            !n->reset_token)
            return -1;
        if (t == IR_FT_PATH_NEW_CONNECTION_ID)
            put_path_id(w, n->path_id);
        ir_put_varint(w, n->seq);
        ir_put_varint(w, n->retire_prior_to);
        put_u8(w, n->cid_len);
        ir_put_bytes(w, n->cid, n->cid_len);
        ir_put_bytes(w, n->reset_token, IR_RESET_TOKEN_LEN);
        break;
    }
    case IR_FT_RETIRE_CONNECTION_ID:
        ir_put_varint(w, f->u.retire_cid.seq);
        break;
    case IR_FT_PATH_RETIRE_CONNECTION_ID:
        put_path_id(w, f->u.retire_cid.path_id);
        ir_put_varint(w, f->u.retire_cid.seq);
        break;
    case IR_FT_PATH_CHALLENGE:
    case IR_FT_PATH_RESPONSE:
        ir_put_bytes(w, f->u.path_data, 8);
        break;
    case IR_FT_CONNECTION_CLOSE:
    case IR_FT_APPLICATION_CLOSE:
        ir_put_varint(w, f->u.close.error_code);
        if (t == IR_FT_CONNECTION_CLOSE)
            ir_put_varint(w, f->u.close.frame_type);
        put_len_bytes(w, f->u.close.reason, f->u.close.reason_len);
        break;
    case IR_FT_DATAGRAM:
        ir_put_bytes(w, f->u.datagram.data, f->u.datagram.len);
        break;
    case IR_FT_DATAGRAM_LEN:
        put_len_bytes(w, f->u.datagram.data, f->u.datagram.len);
        break;
    case IR_FT_ACK_FREQUENCY:
        ir_put_varint(w, f->u.ack_frequency.seq);
        ir_put_varint(w, f->u.ack_frequency.ack_eliciting_threshold);
        ir_put_varint(w, f->u.ack_frequency.request_max_ack_delay);
        ir_put_varint(w, f->u.ack_frequency.reordering_threshold);
        break;
    case IR_FT_PATH_ABANDON:
        put_path_id(w, f->u.path_abandon.path_id);
        ir_put_varint(w, f->u.path_abandon.error_code);
        break;
    case IR_FT_PATH_STATUS_BACKUP:
    case IR_FT_PATH_STATUS_AVAILABLE:
        put_path_id(w, f->u.path_status.path_id);
        ir_put_varint(w, f->u.path_status.seq);
        break;
    case IR_FT_MAX_PATH_ID:
    case IR_FT_PATHS_BLOCKED:
        put_path_id(w, f->u.limit);
        break;
    case IR_FT_PATH_CIDS_BLOCKED:
        put_path_id(w, f->u.path_cids_blocked.path_id);
        ir_put_varint(w, f->u.path_cids_blocked.next_seq);
        break;
    case IR_FT_ADD_ADDRESS_V4:
    case IR_FT_REACH_OUT_V4:
    case IR_FT_OBSERVED_ADDRESS_V4:
    case IR_FT_ADD_ADDRESS_V6:
    case IR_FT_REACH_OUT_V6:
    case IR_FT_OBSERVED_ADDRESS_V6: {
        int v6 = t == IR_FT_ADD_ADDRESS_V6 || t == IR_FT_REACH_OUT_V6 ||
                 t == IR_FT_OBSERVED_ADDRESS_V6;
        uint8_t port[2] = {(uint8_t)(f->u.addr.port >> 8), (uint8_t)f->u.addr.port};
        ir_put_varint(w, f->u.addr.seq);
        ir_put_bytes(w, f->u.addr.ip, v6 ? 16 : 4);
        ir_put_bytes(w, port, 2);
        break;
    }
    case IR_FT_REMOVE_ADDRESS:
        ir_put_varint(w, f->u.remove_seq);
        break;
    default:
        return -1;
    }
    return 0;
}

size_t ir_frame_encode(uint8_t *p, size_t cap, const ir_frame *f)
{
    ir_writer w = {p, cap, 0, 0};
    if (encode_body(&w, f) || w.err)
        return 0;
    return w.pos;
}

/* ---- sizing helpers ------------------------------------------------------------------- */

/* The most data bytes that fit in rem bytes after a length field (rem includes it), and
 * no more than limit. Returns -1 if not even a zero length fits. */
static int fit_with_len(size_t rem, uint64_t limit, size_t *n)
{
    static const size_t widths[4] = {1, 2, 4, 8};
    static const uint64_t maxv[4] = {63, 16383, 1073741823, IR_VARINT_MAX};
    if (rem < 1)
        return -1;
    uint64_t best = 0;
    for (int i = 0; i < 4; i++) {
        if (rem < widths[i])
            break;
        uint64_t m = rem - widths[i];
        if (m > maxv[i])
            m = maxv[i];
        if (m > limit)
            m = limit;
        if (m > best)
            best = m;
    }
    *n = (size_t)best;
    return 0;
}

size_t ir_stream_frame_overhead(uint64_t stream_id, uint64_t offset, size_t data_len,
                                int with_len)
{
    return 1 + ir_varint_len(stream_id) + (offset ? ir_varint_len(offset) : 0) +
           (with_len ? ir_varint_len((uint64_t)data_len) : 0);
}

int ir_stream_frame_fit(size_t cap, uint64_t stream_id, uint64_t offset, size_t avail,
                        int with_len, size_t *n)
{
    if (stream_id > IR_VARINT_MAX || offset > IR_VARINT_MAX)
        return -1;
    size_t base = 1 + ir_varint_len(stream_id) + (offset ? ir_varint_len(offset) : 0);
    if (cap < base)
        return -1;
    size_t rem = cap - base;
    uint64_t limit = IR_VARINT_MAX - offset;
    if ((uint64_t)avail < limit)
        limit = avail;
    if (with_len)
        return fit_with_len(rem, limit, n);
    *n = (uint64_t)rem < limit ? rem : (size_t)limit;
    return 0;
}

size_t ir_crypto_frame_overhead(uint64_t offset, size_t data_len)
{
    return 1 + ir_varint_len(offset) + ir_varint_len((uint64_t)data_len);
}

int ir_crypto_frame_fit(size_t cap, uint64_t offset, size_t avail, size_t *n)
{
    if (offset > IR_VARINT_MAX)
        return -1;
    size_t base = 1 + ir_varint_len(offset);
    if (cap < base)
        return -1;
    uint64_t limit = IR_VARINT_MAX - offset;
    if ((uint64_t)avail < limit)
        limit = avail;
    return fit_with_len(cap - base, limit, n);
}

size_t ir_datagram_frame_size(size_t data_len, int with_len)
{
    return 1 + (with_len ? ir_varint_len((uint64_t)data_len) : 0) + data_len;
}

int ir_datagram_frame_fit(size_t cap, int with_len, size_t *max_data)
{
    if (cap < 1)
        return -1;
    if (with_len)
        return fit_with_len(cap - 1, UINT64_MAX, max_data);
    *max_data = cap - 1;
    return 0;
}

/* ---- ACK from ranges ------------------------------------------------------------------ */

size_t ir_ack_encode(uint8_t *p, size_t cap, int multipath, uint64_t path_id,
                     const ir_ack_range *r, size_t n, uint64_t ack_delay,
                     const ir_ack_ecn *ecn, size_t *n_encoded)
{
    if (n_encoded)
        *n_encoded = 0;
    if (n == 0 || (multipath && path_id > IR_MAX_PATH_ID) || ack_delay > IR_VARINT_MAX)
        return 0;
    if (r[0].smallest > r[0].largest || r[0].largest > IR_VARINT_MAX)
        return 0;
    for (size_t i = 1; i < n; i++)
        if (r[i].smallest > r[i].largest || r[i - 1].smallest < 2 ||
            r[i].largest > r[i - 1].smallest - 2)
            return 0;
    if (ecn && (ecn->ect0 > IR_VARINT_MAX || ecn->ect1 > IR_VARINT_MAX ||
                ecn->ce > IR_VARINT_MAX))
        return 0;

    uint64_t type = multipath ? (ecn ? IR_FT_PATH_ACK_ECN : IR_FT_PATH_ACK)
                              : (ecn ? IR_FT_ACK_ECN : IR_FT_ACK);
    size_t fixed = ir_varint_len(type) + (multipath ? ir_varint_len(path_id) : 0) +
                   ir_varint_len(r[0].largest) + ir_varint_len(ack_delay) +
                   ir_varint_len(r[0].largest - r[0].smallest);
    if (ecn)
        fixed += ir_varint_len(ecn->ect0) + ir_varint_len(ecn->ect1) + ir_varint_len(ecn->ce);

    /* find how many ranges fit: k ranges cost fixed + len(k-1) + their (gap, len) pairs */
    size_t k = 0, pairs = 0;
    for (size_t i = 0; i < n; i++) {
        size_t add = 0;
        if (i > 0)
            add = ir_varint_len(r[i - 1].smallest - r[i].largest - 2) +
                  ir_varint_len(r[i].largest - r[i].smallest);
        size_t total = fixed + ir_varint_len((uint64_t)i) + pairs + add;
        if (total > cap)
            break;
        pairs += add;
        k = i + 1;
    }
    if (k == 0)
        return 0;

    ir_writer w = {p, cap, 0, 0};
    ir_put_varint(&w, type);
    if (multipath)
        ir_put_varint(&w, path_id);
    ir_put_varint(&w, r[0].largest);
    ir_put_varint(&w, ack_delay);
    ir_put_varint(&w, (uint64_t)(k - 1));
    ir_put_varint(&w, r[0].largest - r[0].smallest);
    for (size_t i = 1; i < k; i++) {
        ir_put_varint(&w, r[i - 1].smallest - r[i].largest - 2);
        ir_put_varint(&w, r[i].largest - r[i].smallest);
    }
    if (ecn) {
        ir_put_varint(&w, ecn->ect0);
        ir_put_varint(&w, ecn->ect1);
        ir_put_varint(&w, ecn->ce);
    }
    if (w.err)
        return 0;
    if (n_encoded)
        *n_encoded = k;
    return w.pos;
}
