/* QUIC transport parameter codec; see tp.h. */
#include "tp.h"

#include <string.h>

#include "varint.h"

#define TPE (-IR_QERR_TRANSPORT_PARAMETER_ERROR)

void ir_tp_init(ir_tp *tp)
{
    memset(tp, 0, sizeof *tp);
    tp->max_udp_payload_size = IR_TP_DEFAULT_MAX_UDP_PAYLOAD_SIZE;
    tp->ack_delay_exponent = IR_TP_DEFAULT_ACK_DELAY_EXPONENT;
    tp->max_ack_delay = IR_TP_DEFAULT_MAX_ACK_DELAY;
    tp->active_connection_id_limit = IR_TP_DEFAULT_ACTIVE_CID_LIMIT;
}

void ir_tp_set_iroh_defaults(ir_tp *tp)
{
    ir_tp_init(tp);
    tp->max_idle_timeout = 30000;
    tp->max_udp_payload_size = 1472;
    tp->initial_max_data = IR_VARINT_MAX;
    tp->initial_max_stream_data_bidi_local = 1250000;
    tp->initial_max_stream_data_bidi_remote = 1250000;
    tp->initial_max_stream_data_uni = 1250000;
    tp->initial_max_streams_bidi = 100;
    tp->initial_max_streams_uni = 100;
    tp->active_connection_id_limit = 5;
    tp->max_datagram_frame_size = 65535;
    tp->has_min_ack_delay = 1;
    tp->min_ack_delay = 1000;
    tp->has_initial_max_path_id = 1;
    tp->initial_max_path_id = 7;
    tp->nat_traversal = 32;
}

/* ---- decoding ------------------------------------------------------------------------- */

/* A bit per known parameter, for duplicate detection; -1 for unknown ids. */
static int known_bit(uint64_t id)
{
    if (id <= IR_TP_RETRY_SCID)
        return (int)id;
    switch (id) {
    case IR_TP_MAX_DATAGRAM_FRAME_SIZE: return 17;
    case IR_TP_INITIAL_MAX_PATH_ID: return 18;
    case IR_TP_GREASE_QUIC_BIT: return 19;
    case IR_TP_OBSERVED_ADDRESS: return 20;
    case IR_TP_MIN_ACK_DELAY: return 21;
    case IR_TP_N0_NAT_TRAVERSAL: return 22;
    default: return -1;
    }
}

/* An integer parameter: one varint filling the value exactly. */
static int get_int(const uint8_t *v, size_t n, uint64_t *out)
{
    ir_cursor c;
    ir_cursor_init(&c, v, n);
    if (ir_get_varint(&c, out) || c.pos != n)
        return TPE;
    return 0;
}

static int get_cid(const uint8_t *v, size_t n, ir_tp_cid *out)
{
    if (n > sizeof out->id)
        return TPE;
    out->len = (uint8_t)n;
    if (n > 0)
        memcpy(out->id, v, n);
    return 0;
}

static int get_preferred_address(const uint8_t *v, size_t n, ir_tp_preferred_address *pa)
{
    /* IPv4 (4), port (2), IPv6 (16), port (2), CID length (1), CID, reset token (16) */
    if (n < 25)
        return TPE;
    size_t cl = v[24];
    if (cl < 1 || cl > sizeof pa->cid.id || n != 25 + cl + 16)
        return TPE;
    memcpy(pa->ipv4, v, 4);
    pa->ipv4_port = (uint16_t)(v[4] << 8 | v[5]);
    memcpy(pa->ipv6, v + 6, 16);
    pa->ipv6_port = (uint16_t)(v[22] << 8 | v[23]);
    pa->cid.len = (uint8_t)cl;
    memcpy(pa->cid.id, v + 25, cl);
    memcpy(pa->reset_token, v + 25 + cl, 16);
    return 0;
}

static int decode_param(uint64_t id, const uint8_t *v, size_t n, int from_server, ir_tp *tp)
{
    switch (id) {
    case IR_TP_ORIGINAL_DCID:
    case IR_TP_STATELESS_RESET_TOKEN:
    case IR_TP_PREFERRED_ADDRESS:
    case IR_TP_RETRY_SCID:
        if (!from_server)
            return TPE; /* server-only (18.2) */
        break;
    default:
        break;
    }
    switch (id) {
    case IR_TP_ORIGINAL_DCID:
        tp->has_original_dcid = 1;
        return get_cid(v, n, &tp->original_dcid);
    case IR_TP_INITIAL_SCID:
        tp->has_initial_scid = 1;
        return get_cid(v, n, &tp->initial_scid);
    case IR_TP_RETRY_SCID:
        tp->has_retry_scid = 1;
        return get_cid(v, n, &tp->retry_scid);
    case IR_TP_STATELESS_RESET_TOKEN:
        if (n != 16)
            return TPE;
        tp->has_stateless_reset_token = 1;
        memcpy(tp->stateless_reset_token, v, 16);
        return 0;
    case IR_TP_PREFERRED_ADDRESS:
        tp->has_preferred_address = 1;
        return get_preferred_address(v, n, &tp->preferred_address);
    case IR_TP_DISABLE_ACTIVE_MIGRATION:
        tp->disable_active_migration = 1;
        return n == 0 ? 0 : TPE;
    case IR_TP_GREASE_QUIC_BIT:
        tp->grease_quic_bit = 1;
        return n == 0 ? 0 : TPE; /* RFC 9287: zero-length value */
    case IR_TP_N0_NAT_TRAVERSAL:
        /* one raw byte, not a varint, and non-zero (spec/quic-tls.md 2.2) */
        if (n != 1 || v[0] == 0)
            return TPE;
        tp->nat_traversal = v[0];
        return 0;
    case IR_TP_MAX_IDLE_TIMEOUT:
        return get_int(v, n, &tp->max_idle_timeout);
    case IR_TP_MAX_UDP_PAYLOAD_SIZE:
        return get_int(v, n, &tp->max_udp_payload_size);
    case IR_TP_INITIAL_MAX_DATA:
        return get_int(v, n, &tp->initial_max_data);
    case IR_TP_INITIAL_MAX_STREAM_DATA_BIDI_LOCAL:
        return get_int(v, n, &tp->initial_max_stream_data_bidi_local);
    case IR_TP_INITIAL_MAX_STREAM_DATA_BIDI_REMOTE:
        return get_int(v, n, &tp->initial_max_stream_data_bidi_remote);
    case IR_TP_INITIAL_MAX_STREAM_DATA_UNI:
        return get_int(v, n, &tp->initial_max_stream_data_uni);
    case IR_TP_INITIAL_MAX_STREAMS_BIDI:
        return get_int(v, n, &tp->initial_max_streams_bidi);
    case IR_TP_INITIAL_MAX_STREAMS_UNI:
        return get_int(v, n, &tp->initial_max_streams_uni);
    case IR_TP_ACK_DELAY_EXPONENT:
        return get_int(v, n, &tp->ack_delay_exponent);
    case IR_TP_MAX_ACK_DELAY:
        return get_int(v, n, &tp->max_ack_delay);
    case IR_TP_ACTIVE_CONNECTION_ID_LIMIT:
        return get_int(v, n, &tp->active_connection_id_limit);
    case IR_TP_MAX_DATAGRAM_FRAME_SIZE:
        return get_int(v, n, &tp->max_datagram_frame_size);
    case IR_TP_MIN_ACK_DELAY:
        tp->has_min_ack_delay = 1;
        return get_int(v, n, &tp->min_ack_delay);
    case IR_TP_INITIAL_MAX_PATH_ID:
        tp->has_initial_max_path_id = 1;
        return get_int(v, n, &tp->initial_max_path_id);
    case IR_TP_OBSERVED_ADDRESS:
        tp->has_observed_address = 1;
        return get_int(v, n, &tp->observed_address_role);
    default:
        return 0;
    }
}

int ir_tp_decode(const uint8_t *p, size_t len, int from_server, ir_tp *out)
{
    ir_cursor c;
    uint32_t seen = 0;
    ir_tp_init(out);
    ir_cursor_init(&c, p, len);
    while (ir_cursor_left(&c) > 0) {
        uint64_t id, n;
        const uint8_t *v;
        if (ir_get_varint(&c, &id) || ir_get_varint(&c, &n) || n > ir_cursor_left(&c))
            return TPE;
        if (ir_get_bytes(&c, (size_t)n, &v))
            return TPE;
        int bit = known_bit(id);
        if (bit < 0)
            continue; /* unknown or reserved: ignored (7.4.2) */
        if (seen & (UINT32_C(1) << bit))
            return TPE; /* duplicate (7.4) */
        seen |= UINT32_C(1) << bit;
        int rc = decode_param(id, v, (size_t)n, from_server, out);
        if (rc)
            return rc;
    }

    if (out->max_udp_payload_size < 1200 || out->ack_delay_exponent > 20 ||
        out->max_ack_delay >= (1u << 14) || out->active_connection_id_limit < 2 ||
        out->initial_max_streams_bidi > ((uint64_t)1 << 60) ||
        out->initial_max_streams_uni > ((uint64_t)1 << 60))
        return TPE;
    /* ack-frequency: min_ack_delay (us) must not exceed max_ack_delay (ms) */
    if (out->has_min_ack_delay && out->min_ack_delay > out->max_ack_delay * 1000)
        return TPE;
    /* multipath: path ids are 32-bit */
    if (out->has_initial_max_path_id && out->initial_max_path_id > 0xffffffffu)
        return TPE;
    /* address discovery: roles 0, 1, 2 */
    if (out->has_observed_address && out->observed_address_role > 2)
        return TPE;
    return 0;
}

/* ---- encoding ------------------------------------------------------------------------- */


static void put_int_param(ir_writer *w, uint64_t id, uint64_t v)
{
    if (v > IR_VARINT_MAX) {
        w->err = 1;
        return;
    }
    ir_put_varint(w, id);
    ir_put_varint(w, ir_varint_len(v));
    ir_put_varint(w, v);
}

static void put_bytes_param(ir_writer *w, uint64_t id, const uint8_t *b, size_t n)
{
    ir_put_varint(w, id);
    ir_put_varint(w, (uint64_t)n);
    ir_put_bytes(w, b, n);
}

static void put_cid_param(ir_writer *w, uint64_t id, const ir_tp_cid *cid)
{
    if (cid->len > sizeof cid->id)
        w->err = 1;
    else
        put_bytes_param(w, id, cid->id, cid->len);
}

static void put_preferred_address(ir_writer *w, const ir_tp_preferred_address *pa)
{
    uint8_t b[25 + 20 + 16];
    size_t cl = pa->cid.len;
    if (cl < 1 || cl > sizeof pa->cid.id) {
        w->err = 1;
        return;
    }
    memcpy(b, pa->ipv4, 4);
    b[4] = (uint8_t)(pa->ipv4_port >> 8);
    b[5] = (uint8_t)pa->ipv4_port;
    memcpy(b + 6, pa->ipv6, 16);
    b[22] = (uint8_t)(pa->ipv6_port >> 8);
    b[23] = (uint8_t)pa->ipv6_port;
    b[24] = (uint8_t)cl;
    memcpy(b + 25, pa->cid.id, cl);
    memcpy(b + 25 + cl, pa->reset_token, 16);
    put_bytes_param(w, IR_TP_PREFERRED_ADDRESS, b, 25 + cl + 16);
}

/* splitmix64: spreads the caller's seed over the grease parameter's choices. */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

#define N_SLOTS 23

/* Writes the parameter of slot i (in id order) if tp has it. */
static void put_slot(ir_writer *w, int i, const ir_tp *tp, int is_server)
{
    switch (i) {
    case 0:
        if (is_server && tp->has_original_dcid)
            put_cid_param(w, IR_TP_ORIGINAL_DCID, &tp->original_dcid);
        break;
    case 1:
        if (tp->max_idle_timeout != 0)
            put_int_param(w, IR_TP_MAX_IDLE_TIMEOUT, tp->max_idle_timeout);
        break;
    case 2:
        if (is_server && tp->has_stateless_reset_token)
            put_bytes_param(w, IR_TP_STATELESS_RESET_TOKEN, tp->stateless_reset_token, 16);
        break;
    case 3:
        if (tp->max_udp_payload_size != IR_TP_DEFAULT_MAX_UDP_PAYLOAD_SIZE)
            put_int_param(w, IR_TP_MAX_UDP_PAYLOAD_SIZE, tp->max_udp_payload_size);
        break;
    case 4:
        if (tp->initial_max_data != 0)
            put_int_param(w, IR_TP_INITIAL_MAX_DATA, tp->initial_max_data);
        break;
    case 5:
        if (tp->initial_max_stream_data_bidi_local != 0)
            put_int_param(w, IR_TP_INITIAL_MAX_STREAM_DATA_BIDI_LOCAL,
                          tp->initial_max_stream_data_bidi_local);
        break;
    case 6:
        if (tp->initial_max_stream_data_bidi_remote != 0)
            put_int_param(w, IR_TP_INITIAL_MAX_STREAM_DATA_BIDI_REMOTE,
                          tp->initial_max_stream_data_bidi_remote);
        break;
    case 7:
        if (tp->initial_max_stream_data_uni != 0)
            put_int_param(w, IR_TP_INITIAL_MAX_STREAM_DATA_UNI, tp->initial_max_stream_data_uni);
        break;
    case 8:
        if (tp->initial_max_streams_bidi != 0)
            put_int_param(w, IR_TP_INITIAL_MAX_STREAMS_BIDI, tp->initial_max_streams_bidi);
        break;
    case 9:
        if (tp->initial_max_streams_uni != 0)
            put_int_param(w, IR_TP_INITIAL_MAX_STREAMS_UNI, tp->initial_max_streams_uni);
        break;
    case 10:
        if (tp->ack_delay_exponent != IR_TP_DEFAULT_ACK_DELAY_EXPONENT)
            put_int_param(w, IR_TP_ACK_DELAY_EXPONENT, tp->ack_delay_exponent);
        break;
    case 11:
        if (tp->max_ack_delay != IR_TP_DEFAULT_MAX_ACK_DELAY)
            put_int_param(w, IR_TP_MAX_ACK_DELAY, tp->max_ack_delay);
        break;
    case 12:
        if (tp->disable_active_migration)
            put_bytes_param(w, IR_TP_DISABLE_ACTIVE_MIGRATION, NULL, 0);
        break;
    case 13:
        if (is_server && tp->has_preferred_address)
            put_preferred_address(w, &tp->preferred_address);
        break;
    case 14:
        if (tp->active_connection_id_limit != IR_TP_DEFAULT_ACTIVE_CID_LIMIT)
            put_int_param(w, IR_TP_ACTIVE_CONNECTION_ID_LIMIT, tp->active_connection_id_limit);
        break;
    case 15:
        if (tp->has_initial_scid)
            put_cid_param(w, IR_TP_INITIAL_SCID, &tp->initial_scid);
        break;
    case 16:
        if (is_server && tp->has_retry_scid)
            put_cid_param(w, IR_TP_RETRY_SCID, &tp->retry_scid);
        break;
    case 17:
        if (tp->max_datagram_frame_size != 0)
            put_int_param(w, IR_TP_MAX_DATAGRAM_FRAME_SIZE, tp->max_datagram_frame_size);
        break;
    case 18:
        if (tp->has_initial_max_path_id)
            put_int_param(w, IR_TP_INITIAL_MAX_PATH_ID, tp->initial_max_path_id);
        break;
    case 19:
        if (tp->grease_quic_bit)
            put_bytes_param(w, IR_TP_GREASE_QUIC_BIT, NULL, 0);
        break;
    case 20:
        if (tp->has_min_ack_delay)
            put_int_param(w, IR_TP_MIN_ACK_DELAY, tp->min_ack_delay);
        break;
    case 21:
        if (tp->has_observed_address)
            put_int_param(w, IR_TP_OBSERVED_ADDRESS, tp->observed_address_role);
        break;
    case 22:
        if (tp->nat_traversal != 0)
            put_bytes_param(w, IR_TP_N0_NAT_TRAVERSAL, &tp->nat_traversal, 1);
        break;
    default:
        break;
    }
}

size_t ir_tp_encode(uint8_t *p, size_t cap, const ir_tp *tp, int is_server,
                    uint64_t grease_seed)
{
    uint64_t s = grease_seed;
    /* reserved id 31 * N + 27 <= 2^62 - 1 */
    uint64_t id = 31 * (mix(&s) % ((IR_VARINT_MAX - 27) / 31 + 1)) + 27;
    uint64_t r = mix(&s);
    size_t glen = (size_t)(r % 16);
    int gpos = (int)((r >> 8) % (N_SLOTS + 1));
    uint8_t gbytes[16];
    uint64_t b1 = mix(&s), b2 = mix(&s);
    for (int i = 0; i < 8; i++) {
        gbytes[i] = (uint8_t)(b1 >> (8 * i));
        gbytes[8 + i] = (uint8_t)(b2 >> (8 * i));
    }

    ir_writer w = {p, cap, 0, 0};
    for (int i = 0; i <= N_SLOTS; i++) {
        if (i == gpos)
            put_bytes_param(&w, id, gbytes, glen);
        if (i < N_SLOTS)
            put_slot(&w, i, tp, is_server);
    }
    return w.err ? 0 : w.pos;
}
