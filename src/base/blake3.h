/* BLAKE3: hash, keyed hash (MAC), key derivation and extendable output. A portable,
 * allocation-free implementation. A hasher is a plain value: it can be copied, and
 * finalizing does not consume it, so more input may be added afterwards. */
#ifndef IR_BASE_BLAKE3_H
#define IR_BASE_BLAKE3_H

#include <stddef.h>
#include <stdint.h>

#define IR_BLAKE3_OUT_LEN 32
#define IR_BLAKE3_KEY_LEN 32
#define IR_BLAKE3_BLOCK_LEN 64
#define IR_BLAKE3_CHUNK_LEN 1024
/* Enough for 2^54 chunks, i.e. 2^64 bytes of input. */
#define IR_BLAKE3_MAX_DEPTH 54

typedef struct ir_blake3 {
    uint32_t key[8];          /* key words: IV, the user key, or the derived context key */
    uint32_t cv[8];           /* chaining value of the current chunk */
    uint64_t chunk_counter;   /* index of the current chunk */
    uint8_t buf[IR_BLAKE3_BLOCK_LEN]; /* pending (not yet compressed) block of the chunk */
    uint8_t buf_len;          /* bytes in buf */
    uint8_t blocks_compressed; /* blocks of the current chunk already compressed */
    uint8_t flags;            /* mode flags: 0, KEYED_HASH or DERIVE_KEY_* */
    uint8_t cv_stack_len;
    uint32_t cv_stack[IR_BLAKE3_MAX_DEPTH][8]; /* chaining values of completed subtrees */
} ir_blake3;

void ir_blake3_init(ir_blake3 *h);
void ir_blake3_init_keyed(ir_blake3 *h, const uint8_t key[32]);
/* context is a NUL-terminated string; it should be hard-coded, globally unique and
 * application-specific. */
void ir_blake3_init_derive_key(ir_blake3 *h, const char *context);
void ir_blake3_update(ir_blake3 *h, const void *data, size_t len);
/* Writes out_len bytes of output (the XOF) starting at output byte offset `seek`. Does
 * not modify h, so it can be called repeatedly and update() can continue afterwards. */
void ir_blake3_finalize_seek(const ir_blake3 *h, uint64_t seek, uint8_t *out, size_t out_len);
void ir_blake3_finalize(const ir_blake3 *h, uint8_t *out, size_t out_len); /* seek 0 */

/* One-shot helpers. */
void ir_blake3_hash(const void *data, size_t len, uint8_t out[32]);
void ir_blake3_keyed_hash(const uint8_t key[32], const void *data, size_t len, uint8_t out[32]);
void ir_blake3_derive_key(const char *context, const void *key_material, size_t len,
                          uint8_t *out, size_t out_len);

#endif
