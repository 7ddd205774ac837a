/* Text helpers of the relay layer: base64 in the two alphabets the relay uses (standard
 * with padding for Sec-WebSocket-Key / -Accept, URL-safe without padding for the
 * x-iroh-relay-client-auth-v1 header) and strict UTF-8 validation (Rust's str rules:
 * no overlong forms, no surrogates, nothing above U+10FFFF). */
#ifndef IR_RELAY_TEXT_H
#define IR_RELAY_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "base/encoding.h"

typedef enum ir_b64_alphabet {
    IR_B64_STD = 0, /* A-Z a-z 0-9 + /, '=' padding (RFC 4648 section 4) */
    IR_B64_URL = 1, /* A-Z a-z 0-9 - _, no padding (RFC 4648 section 5, data_encoding's
                     * BASE64URL_NOPAD) */
} ir_b64_alphabet;

/* Characters encoding len bytes takes (without the NUL). */
size_t ir_b64_encoded_len(ir_b64_alphabet a, size_t len);
/* Writes ir_b64_encoded_len(a, len) characters and a NUL. */
void ir_b64_encode(ir_b64_alphabet a, const uint8_t *in, size_t len, char *out);

/* Decodes strictly: IR_B64_STD needs canonical padding to a multiple of 4, IR_B64_URL
 * takes no '=' at all; no whitespace; the unused bits of the last symbol must be zero.
 * Returns the number of bytes written, or -1 (bad symbol, length or trailing bits, or
 * more than outcap bytes). */
long ir_b64_decode(ir_b64_alphabet a, const char *text, size_t len, uint8_t *out, size_t outcap);

/* ir_utf8_valid: base/encoding.h */

#endif
