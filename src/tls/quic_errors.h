/* QUIC transport error codes (RFC 9000 section 20.1), defined once for every layer that
 * speaks them: the TLS layer (a TLS alert becomes CRYPTO_ERROR, RFC 9001 4.8), the frame
 * and transport-parameter codecs, the connection, the endpoint and the public API's close
 * reasons. They live in the TLS layer, the lowest one that produces them, so that tls and
 * everything above it (quic, endpoint, apps, tests) include the same names.
 *
 * These are wire values carried in CONNECTION_CLOSE frames, not function results: they
 * are unsigned 62-bit integers and never mix with IROH_ERR_* or a layer's status codes. */
#ifndef IR_TLS_QUIC_ERRORS_H
#define IR_TLS_QUIC_ERRORS_H

#include <stdint.h>

typedef enum ir_qerr {
    IR_QERR_NO_ERROR = 0x00,
    IR_QERR_INTERNAL_ERROR = 0x01,
    IR_QERR_CONNECTION_REFUSED = 0x02,
    IR_QERR_FLOW_CONTROL_ERROR = 0x03,
    IR_QERR_STREAM_LIMIT_ERROR = 0x04,
    IR_QERR_STREAM_STATE_ERROR = 0x05,
    IR_QERR_FINAL_SIZE_ERROR = 0x06,
    IR_QERR_FRAME_ENCODING_ERROR = 0x07,
    IR_QERR_TRANSPORT_PARAMETER_ERROR = 0x08,
    IR_QERR_CONNECTION_ID_LIMIT_ERROR = 0x09,
    IR_QERR_PROTOCOL_VIOLATION = 0x0a,
    IR_QERR_INVALID_TOKEN = 0x0b,
    IR_QERR_APPLICATION_ERROR = 0x0c,
    IR_QERR_CRYPTO_BUFFER_EXCEEDED = 0x0d,
    IR_QERR_KEY_UPDATE_ERROR = 0x0e,
    IR_QERR_AEAD_LIMIT_REACHED = 0x0f,
    IR_QERR_NO_VIABLE_PATH = 0x10,
    IR_QERR_CRYPTO_ERROR = 0x100, /* 0x100-0x1ff: CRYPTO_ERROR, 0x100 + the TLS alert */
} ir_qerr;

/* the CRYPTO_ERROR code of a TLS alert description (0-255) */
#define IR_QERR_CRYPTO(alert) ((uint64_t)IR_QERR_CRYPTO_ERROR + (uint64_t)(alert))
/* the alert we send when the TLS stack names none (RFC 8446 6) */
#define IR_TLS_ALERT_HANDSHAKE_FAILURE 40

/* The RFC 9000 name of a transport error code ("PROTOCOL_VIOLATION", "CRYPTO_ERROR" for
 * 0x100-0x1ff), or NULL for a code the RFC does not name. */
const char *ir_qerr_name(uint64_t code);

#endif
