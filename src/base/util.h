/* Small helpers shared by every layer: error details and a growable byte buffer. */
#ifndef IR_BASE_UTIL_H
#define IR_BASE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "iroh.h"

#if defined(__GNUC__)
#define IR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define IR_PRINTF(a, b)
#endif

/* Records a detail message for iroh_last_error() and returns code, so that failures read
 * `return ir_fail(IROH_ERR_INVALID_TICKET, "invalid symbol at %zu", i);`. */
int ir_fail(int code, const char *fmt, ...) IR_PRINTF(2, 3);

/* A growable byte buffer. After an allocation failure `oom` is set and further appends
 * do nothing, so a writer can append freely and check once at the end. */
typedef struct ir_buf {
    uint8_t *data;
    size_t len, cap;
    int oom;
} ir_buf;

void ir_buf_init(ir_buf *b);
void ir_buf_free(ir_buf *b);
int ir_buf_reserve(ir_buf *b, size_t extra);
void ir_buf_append(ir_buf *b, const void *data, size_t len);
void ir_buf_byte(ir_buf *b, uint8_t v);

/* The earlier of two deadlines where 0 means "none" (the relay layers' timer convention). */
static inline uint64_t ir_earliest(uint64_t a, uint64_t b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    return a < b ? a : b;
}

/* Fills buf with len bytes from the kernel's CSPRNG (getrandom); aborts if there is no
 * randomness at all, as nothing safe could be done. ctx is unused: the signature fits
 * the random callbacks of the sans-IO cores. */
void ir_random_bytes(void *ctx, uint8_t *buf, size_t len);

#endif
