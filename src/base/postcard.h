/* The parts of the postcard serialization format iroh's binary forms use: unsigned LEB128
 * varints (minimal on output, non-minimal accepted on input, overflow rejected), raw
 * bytes and length-prefixed byte strings. */
#ifndef IR_BASE_POSTCARD_H
#define IR_BASE_POSTCARD_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

void ir_pc_put_varint(ir_buf *b, uint64_t v);
void ir_pc_put_bytes(ir_buf *b, const void *data, size_t len); /* varint(len) || data */

/* A reader over untrusted bytes. Every get_* returns 0 on success and -1 when the input
 * is truncated or a value overflows; the first failure sticks (err is set, further gets
 * fail), with a message in `why`. */
typedef struct ir_pc_reader {
    const uint8_t *p;
    size_t len, pos;
    int err;
    const char *why;
} ir_pc_reader;

void ir_pc_reader_init(ir_pc_reader *r, const uint8_t *data, size_t len);
/* max is the largest value of the target type (UINT16_MAX, UINT32_MAX, UINT64_MAX). */
int ir_pc_get_varint(ir_pc_reader *r, uint64_t max, uint64_t *out);
int ir_pc_get_u8(ir_pc_reader *r, uint8_t *out);
/* Points *out at the next n bytes. */
int ir_pc_get_raw(ir_pc_reader *r, size_t n, const uint8_t **out);
/* varint(len) then len bytes; the length must fit in the remaining input. */
int ir_pc_get_bytes(ir_pc_reader *r, const uint8_t **out, size_t *len);

#endif
