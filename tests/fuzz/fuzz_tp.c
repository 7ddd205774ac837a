/* QUIC transport parameters from arbitrary bytes, as sent by a client and by a server:
 * rejected cleanly, or decoded to values that re-encode and decode to the same values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quic/tp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cid_eq(const ir_tp_cid *a, const ir_tp_cid *b)
{
    return a->len == b->len && memcmp(a->id, b->id, a->len) == 0;
}

static int tp_eq(const ir_tp *a, const ir_tp *b)
{
    const ir_tp_preferred_address *pa = &a->preferred_address, *pb = &b->preferred_address;
    return a->max_idle_timeout == b->max_idle_timeout &&
           a->max_udp_payload_size == b->max_udp_payload_size &&
           a->initial_max_data == b->initial_max_data &&
           a->initial_max_stream_data_bidi_local == b->initial_max_stream_data_bidi_local &&
           a->initial_max_stream_data_bidi_remote == b->initial_max_stream_data_bidi_remote &&
           a->initial_max_stream_data_uni == b->initial_max_stream_data_uni &&
           a->initial_max_streams_bidi == b->initial_max_streams_bidi &&
           a->initial_max_streams_uni == b->initial_max_streams_uni &&
           a->ack_delay_exponent == b->ack_delay_exponent &&
           a->max_ack_delay == b->max_ack_delay &&
           a->active_connection_id_limit == b->active_connection_id_limit &&
           a->max_datagram_frame_size == b->max_datagram_frame_size &&
           a->has_original_dcid == b->has_original_dcid &&
           cid_eq(&a->original_dcid, &b->original_dcid) &&
           a->has_initial_scid == b->has_initial_scid &&
           cid_eq(&a->initial_scid, &b->initial_scid) &&
           a->has_retry_scid == b->has_retry_scid && cid_eq(&a->retry_scid, &b->retry_scid) &&
           a->has_stateless_reset_token == b->has_stateless_reset_token &&
           memcmp(a->stateless_reset_token, b->stateless_reset_token, 16) == 0 &&
           a->has_preferred_address == b->has_preferred_address &&
           memcmp(pa->ipv4, pb->ipv4, 4) == 0 && pa->ipv4_port == pb->ipv4_port &&
           memcmp(pa->ipv6, pb->ipv6, 16) == 0 && pa->ipv6_port == pb->ipv6_port &&
           cid_eq(&pa->cid, &pb->cid) && memcmp(pa->reset_token, pb->reset_token, 16) == 0 &&
           a->disable_active_migration == b->disable_active_migration &&
           a->has_min_ack_delay == b->has_min_ack_delay && a->min_ack_delay == b->min_ack_delay &&
           a->has_initial_max_path_id == b->has_initial_max_path_id &&
           a->initial_max_path_id == b->initial_max_path_id &&
           a->nat_traversal == b->nat_traversal &&
           a->has_observed_address == b->has_observed_address &&
           a->observed_address_role == b->observed_address_role &&
           a->grease_quic_bit == b->grease_quic_bit;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t enc[1024], enc2[1024];
    uint64_t seed = size;
    for (size_t i = 0; i < size && i < 8; i++)
        seed = seed << 8 | data[i];
    for (int from_server = 0; from_server < 2; from_server++) {
        ir_tp tp, back;
        int rc = ir_tp_decode(data, size, from_server, &tp);
        if (rc != 0) {
            if (rc != -IR_QERR_TRANSPORT_PARAMETER_ERROR)
                abort();
            continue;
        }
        if (!from_server && (tp.has_original_dcid || tp.has_stateless_reset_token ||
                             tp.has_preferred_address || tp.has_retry_scid))
            abort();
        size_t n = ir_tp_encode(enc, sizeof enc, &tp, from_server, seed);
        if (n == 0)
            abort();
        if (ir_tp_encode(enc2, n - 1, &tp, from_server, seed) != 0)
            abort();
        uint8_t *copy = malloc(n);
        if (!copy)
            abort();
        memcpy(copy, enc, n);
        if (ir_tp_decode(copy, n, from_server, &back) != 0 || !tp_eq(&tp, &back))
            abort();
        free(copy);
    }
    return 0;
}
