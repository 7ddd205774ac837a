/* Equality of decoded QUIC frames, shared by unit/test_frame.c and fuzz/fuzz_frame.c. */
#ifndef IR_TEST_FRAME_EQ_H
#define IR_TEST_FRAME_EQ_H

#include <stdint.h>
#include <string.h>

#include "quic/frame.h"

static int bytes_eq(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* Field-wise equality, pointed-to bytes compared by content. ack.smallest is derived by
 * the decoder: compared only with with_smallest (two decoded frames). */
static int frame_eq(const ir_frame *a, const ir_frame *b, int with_smallest)
{
    if (a->type != b->type)
        return 0;
    uint64_t t = a->type;
    if (t >= IR_FT_STREAM && t <= 0x0f)
        return a->u.stream.stream_id == b->u.stream.stream_id &&
               a->u.stream.offset == b->u.stream.offset &&
               bytes_eq(a->u.stream.data, a->u.stream.len, b->u.stream.data, b->u.stream.len);
    switch (t) {
    case IR_FT_PADDING:
        return a->u.padding_len == b->u.padding_len;
    case IR_FT_PING:
    case IR_FT_HANDSHAKE_DONE:
    case IR_FT_IMMEDIATE_ACK:
        return 1;
    case IR_FT_ACK:
    case IR_FT_ACK_ECN:
    case IR_FT_PATH_ACK:
    case IR_FT_PATH_ACK_ECN:
        return a->u.ack.path_id == b->u.ack.path_id && a->u.ack.largest == b->u.ack.largest &&
               a->u.ack.ack_delay == b->u.ack.ack_delay &&
               a->u.ack.range_count == b->u.ack.range_count &&
               a->u.ack.first_range == b->u.ack.first_range &&
               (!with_smallest || a->u.ack.smallest == b->u.ack.smallest) &&
               bytes_eq(a->u.ack.ranges, a->u.ack.ranges_len, b->u.ack.ranges,
                        b->u.ack.ranges_len) &&
               a->u.ack.ecn.ect0 == b->u.ack.ecn.ect0 && a->u.ack.ecn.ect1 == b->u.ack.ecn.ect1 &&
               a->u.ack.ecn.ce == b->u.ack.ecn.ce;
    case IR_FT_RESET_STREAM:
        return a->u.reset_stream.stream_id == b->u.reset_stream.stream_id &&
               a->u.reset_stream.error_code == b->u.reset_stream.error_code &&
               a->u.reset_stream.final_size == b->u.reset_stream.final_size;
    case IR_FT_STOP_SENDING:
        return a->u.stop_sending.stream_id == b->u.stop_sending.stream_id &&
               a->u.stop_sending.error_code == b->u.stop_sending.error_code;
    case IR_FT_CRYPTO:
        return a->u.crypto.offset == b->u.crypto.offset &&
               bytes_eq(a->u.crypto.data, a->u.crypto.len, b->u.crypto.data, b->u.crypto.len);
    case IR_FT_NEW_TOKEN:
        return bytes_eq(a->u.new_token.token, a->u.new_token.len, b->u.new_token.token,
                        b->u.new_token.len);
    case IR_FT_MAX_DATA:
    case IR_FT_DATA_BLOCKED:
    case IR_FT_MAX_STREAMS_BIDI:
    case IR_FT_MAX_STREAMS_UNI:
    case IR_FT_STREAMS_BLOCKED_BIDI:
    case IR_FT_STREAMS_BLOCKED_UNI:
    case IR_FT_MAX_PATH_ID:
    case IR_FT_PATHS_BLOCKED:
        return a->u.limit == b->u.limit;
    case IR_FT_MAX_STREAM_DATA:
    case IR_FT_STREAM_DATA_BLOCKED:
        return a->u.stream_limit.stream_id == b->u.stream_limit.stream_id &&
               a->u.stream_limit.limit == b->u.stream_limit.limit;
    case IR_FT_NEW_CONNECTION_ID:
    case IR_FT_PATH_NEW_CONNECTION_ID:
        return a->u.new_cid.path_id == b->u.new_cid.path_id &&
               a->u.new_cid.seq == b->u.new_cid.seq &&
               a->u.new_cid.retire_prior_to == b->u.new_cid.retire_prior_to &&
               bytes_eq(a->u.new_cid.cid, a->u.new_cid.cid_len, b->u.new_cid.cid,
                        b->u.new_cid.cid_len) &&
               memcmp(a->u.new_cid.reset_token, b->u.new_cid.reset_token, 16) == 0;
    case IR_FT_RETIRE_CONNECTION_ID:
    case IR_FT_PATH_RETIRE_CONNECTION_ID:
        return a->u.retire_cid.path_id == b->u.retire_cid.path_id &&
               a->u.retire_cid.seq == b->u.retire_cid.seq;
    case IR_FT_PATH_CHALLENGE:
    case IR_FT_PATH_RESPONSE:
        return memcmp(a->u.path_data, b->u.path_data, 8) == 0;
    case IR_FT_CONNECTION_CLOSE:
    case IR_FT_APPLICATION_CLOSE:
        return a->u.close.error_code == b->u.close.error_code &&
               a->u.close.frame_type == b->u.close.frame_type &&
               bytes_eq(a->u.close.reason, a->u.close.reason_len, b->u.close.reason,
                        b->u.close.reason_len);
    case IR_FT_DATAGRAM:
    case IR_FT_DATAGRAM_LEN:
        return bytes_eq(a->u.datagram.data, a->u.datagram.len, b->u.datagram.data,
                        b->u.datagram.len);
    case IR_FT_ACK_FREQUENCY:
        return a->u.ack_frequency.seq == b->u.ack_frequency.seq &&
               a->u.ack_frequency.ack_eliciting_threshold ==
                   b->u.ack_frequency.ack_eliciting_threshold &&
               a->u.ack_frequency.request_max_ack_delay ==
                   b->u.ack_frequency.request_max_ack_delay &&
               a->u.ack_frequency.reordering_threshold == b->u.ack_frequency.reordering_threshold;
    case IR_FT_PATH_ABANDON:
        return a->u.path_abandon.path_id == b->u.path_abandon.path_id &&
               a->u.path_abandon.error_code == b->u.path_abandon.error_code;
    case IR_FT_PATH_STATUS_BACKUP:
    case IR_FT_PATH_STATUS_AVAILABLE:
        return a->u.path_status.path_id == b->u.path_status.path_id &&
               a->u.path_status.seq == b->u.path_status.seq;
    case IR_FT_PATH_CIDS_BLOCKED:
        return a->u.path_cids_blocked.path_id == b->u.path_cids_blocked.path_id &&
               a->u.path_cids_blocked.next_seq == b->u.path_cids_blocked.next_seq;
    case IR_FT_ADD_ADDRESS_V4:
    case IR_FT_REACH_OUT_V4:
    case IR_FT_OBSERVED_ADDRESS_V4:
        return a->u.addr.seq == b->u.addr.seq && a->u.addr.port == b->u.addr.port &&
               memcmp(a->u.addr.ip, b->u.addr.ip, 4) == 0;
    case IR_FT_ADD_ADDRESS_V6:
    case IR_FT_REACH_OUT_V6:
    case IR_FT_OBSERVED_ADDRESS_V6:
        return a->u.addr.seq == b->u.addr.seq && a->u.addr.port == b->u.addr.port &&
               memcmp(a->u.addr.ip, b->u.addr.ip, 16) == 0;
    case IR_FT_REMOVE_ADDRESS:
        return a->u.remove_seq == b->u.remove_seq;
    default:
        return 0;
    }
}

#endif
