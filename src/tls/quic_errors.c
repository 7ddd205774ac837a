/* Names of the QUIC transport error codes (quic_errors.h). */
#include "quic_errors.h"

#include <stddef.h>

const char *ir_qerr_name(uint64_t code)
{
    static const char *const names[] = {
        [IR_QERR_NO_ERROR] = "NO_ERROR",
        [IR_QERR_INTERNAL_ERROR] = "INTERNAL_ERROR",
        [IR_QERR_CONNECTION_REFUSED] = "CONNECTION_REFUSED",
        [IR_QERR_FLOW_CONTROL_ERROR] = "FLOW_CONTROL_ERROR",
        [IR_QERR_STREAM_LIMIT_ERROR] = "STREAM_LIMIT_ERROR",
        [IR_QERR_STREAM_STATE_ERROR] = "STREAM_STATE_ERROR",
        [IR_QERR_FINAL_SIZE_ERROR] = "FINAL_SIZE_ERROR",
        [IR_QERR_FRAME_ENCODING_ERROR] = "FRAME_ENCODING_ERROR",
        [IR_QERR_TRANSPORT_PARAMETER_ERROR] = "TRANSPORT_PARAMETER_ERROR",
        [IR_QERR_CONNECTION_ID_LIMIT_ERROR] = "CONNECTION_ID_LIMIT_ERROR",
        [IR_QERR_PROTOCOL_VIOLATION] = "PROTOCOL_VIOLATION",
        [IR_QERR_INVALID_TOKEN] = "INVALID_TOKEN",
        [IR_QERR_APPLICATION_ERROR] = "APPLICATION_ERROR",
        [IR_QERR_CRYPTO_BUFFER_EXCEEDED] = "CRYPTO_BUFFER_EXCEEDED",
        [IR_QERR_KEY_UPDATE_ERROR] = "KEY_UPDATE_ERROR",
        [IR_QERR_AEAD_LIMIT_REACHED] = "AEAD_LIMIT_REACHED",
        [IR_QERR_NO_VIABLE_PATH] = "NO_VIABLE_PATH",
    };
    if (code < sizeof names / sizeof names[0])
        return names[code];
    if (code >= IR_QERR_CRYPTO_ERROR && code <= IR_QERR_CRYPTO_ERROR + 0xff)
        return "CRYPTO_ERROR";
    return NULL;
}
