/* Text encodings of bytes: hex and the three base32 alphabets iroh uses. */
#ifndef IR_BASE_ENCODING_H
#define IR_BASE_ENCODING_H

#include <stddef.h>
#include <stdint.h>

/* Lowercase hex; out receives 2*len characters and a NUL. */
void ir_hex_encode(const uint8_t *in, size_t len, char *out);

/* Decodes exactly 2*outlen hex characters of text (lowercase only unless allow_upper).
 * Returns 0, or -1 on a bad character. */
int ir_hex_decode(const char *text, size_t textlen, uint8_t *out, size_t outlen, int allow_upper);

typedef enum ir_b32_alphabet {
    IR_B32_RFC4648 = 0, /* a-z2-7 (written lowercase; decoding is case-insensitive) */
    IR_B32_HEX = 1,     /* 0-9a-v, RFC 4648 section 7 */
    IR_B32_Z = 2,       /* z-base-32: ybndrfg8ejkmcpqxot1uwisza345h769, case-sensitive */
} ir_b32_alphabet;

/* Characters needed for len bytes, unpadded. */
size_t ir_b32_encoded_len(size_t len);
/* Writes ir_b32_encoded_len(len) lowercase characters and a NUL. */
void ir_b32_encode(ir_b32_alphabet a, const uint8_t *in, size_t len, char *out);

/* Decodes unpadded base32 and returns the number of bytes written, or a negative
 * IR_B32_E_* with *err_pos at the offending character. RFC4648 and HEX accept upper- and
 * lowercase; Z only lowercase. */
#define IR_B32_E_SYMBOL (-1)   /* a character outside the alphabet ('=' included) */
#define IR_B32_E_LENGTH (-2)   /* a length no byte count produces */
#define IR_B32_E_TRAILING (-3) /* non-zero bits after the last whole byte */
#define IR_B32_E_SPACE (-4)    /* outcap too small */
long ir_b32_decode(ir_b32_alphabet a, const char *text, size_t textlen, uint8_t *out,
                   size_t outcap, size_t *err_pos);

/* Bytes produced by decoding textlen base32 characters (floor(5*textlen/8)). */
size_t ir_b32_decoded_len(size_t textlen);

/* 1 if the bytes are valid UTF-8 as Rust's std::str::from_utf8 defines it, else 0. */
int ir_utf8_valid(const uint8_t *p, size_t len);

#endif
