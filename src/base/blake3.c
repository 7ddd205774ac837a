/* BLAKE3, portable C, written from the specification (Aumasson, Neves, O'Connor,
 * Wilcox-O'Hearn, "BLAKE3: one function, fast everywhere").
 *
 * Input is split into 1024-byte chunks of 64-byte blocks. Each chunk is hashed on its own
 * (starting from the key words, with its chunk index as the counter) into a chaining
 * value (CV); CVs are combined pairwise into a binary tree of parent nodes. The hasher
 * keeps a stack of CVs of completed subtrees: after chunk n (1-based total n), one merge
 * is done per trailing zero bit of n, so the stack holds one CV per set bit of n.
 * Nothing is finalized until more input proves it is not the last: the last block of
 * the current chunk stays buffered and a full chunk is only closed when more data
 * arrives, because the root node is compressed differently (ROOT flag, output counter). */
#include "blake3.h"

#include <string.h>

enum {
    CHUNK_START = 1,
    CHUNK_END = 2,
    PARENT = 4,
    ROOT = 8,
    KEYED_HASH = 16,
    DERIVE_KEY_CONTEXT = 32,
    DERIVE_KEY_MATERIAL = 64,
};

#define BLOCK_LEN IR_BLAKE3_BLOCK_LEN
#define CHUNK_LEN IR_BLAKE3_CHUNK_LEN

static const uint32_t IV[8] = {
    0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
    0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u,
};

static inline uint32_t load32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void store32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t rotr32(uint32_t x, unsigned n)
{
    return x >> n | x << (32 - n);
}

static inline void load_block(uint32_t m[16], const uint8_t *block)
{
    for (int i = 0; i < 16; i++) m[i] = load32(block + 4 * i);
}

#define G(a, b, c, d, x, y)                                                                \
    do {                                                                                   \
        a = a + b + (x);                                                                   \
        d = rotr32(d ^ a, 16);                                                             \
        c = c + d;                                                                         \
        b = rotr32(b ^ c, 12);                                                             \
        a = a + b + (y);                                                                   \
        d = rotr32(d ^ a, 8);                                                              \
        c = c + d;                                                                         \
        b = rotr32(b ^ c, 7);                                                              \
    } while (0)

/* One round: the columns, then the diagonals. The arguments are the message word indices
 * for this round, i.e. the identity permuted r times by the message permutation
 * (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8). */
#define ROUND(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15)         \
    do {                                                                                   \
        G(v0, v4, v8, v12, m[s0], m[s1]);                                                  \
        G(v1, v5, v9, v13, m[s2], m[s3]);                                                  \
        G(v2, v6, v10, v14, m[s4], m[s5]);                                                 \
        G(v3, v7, v11, v15, m[s6], m[s7]);                                                 \
        G(v0, v5, v10, v15, m[s8], m[s9]);                                                 \
        G(v1, v6, v11, v12, m[s10], m[s11]);                                               \
        G(v2, v7, v8, v13, m[s12], m[s13]);                                                \
        G(v3, v4, v9, v14, m[s14], m[s15]);                                                \
    } while (0)

/* The compression function. Writes the 8-word truncated output (the new chaining value)
 * to out[0..8) and, if full is set, the second half of the 16-word output to out[8..16). */
static inline void compress(const uint32_t cv[8], const uint32_t m[16], uint32_t block_len,
                            uint64_t counter, uint32_t flags, uint32_t *out, int full)
{
    uint32_t v0 = cv[0], v1 = cv[1], v2 = cv[2], v3 = cv[3];
    uint32_t v4 = cv[4], v5 = cv[5], v6 = cv[6], v7 = cv[7];
    uint32_t v8 = IV[0], v9 = IV[1], v10 = IV[2], v11 = IV[3];
    uint32_t v12 = (uint32_t)counter, v13 = (uint32_t)(counter >> 32);
    uint32_t v14 = block_len, v15 = flags;

    ROUND(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    ROUND(2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8);
    ROUND(3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1);
    ROUND(10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6);
    ROUND(12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4);
    ROUND(9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7);
    ROUND(11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13);

    if (full) {
        out[8] = v8 ^ cv[0];
        out[9] = v9 ^ cv[1];
        out[10] = v10 ^ cv[2];
        out[11] = v11 ^ cv[3];
        out[12] = v12 ^ cv[4];
        out[13] = v13 ^ cv[5];
        out[14] = v14 ^ cv[6];
        out[15] = v15 ^ cv[7];
    }
    out[0] = v0 ^ v8;
    out[1] = v1 ^ v9;
    out[2] = v2 ^ v10;
    out[3] = v3 ^ v11;
    out[4] = v4 ^ v12;
    out[5] = v5 ^ v13;
    out[6] = v6 ^ v14;
    out[7] = v7 ^ v15;
}

/* Replaces cv with the chaining value of compressing one block of bytes. */
static void compress_cv(uint32_t cv[8], const uint8_t block[BLOCK_LEN], uint32_t block_len,
                        uint64_t counter, uint32_t flags)
{
    uint32_t m[16], out[8];
    load_block(m, block);
    compress(cv, m, block_len, counter, flags, out, 0);
    memcpy(cv, out, sizeof out);
}

/* A node whose compression has not yet been done: enough to produce either its
 * chaining value or, as the root, any number of output bytes. */
typedef struct output {
    uint32_t cv[8];
    uint32_t m[16];
    uint64_t counter;
    uint32_t block_len;
    uint32_t flags;
} output;

static void parent_output(output *o, const uint32_t left[8], const uint32_t right[8],
                          const uint32_t key[8], uint32_t flags)
{
    memcpy(o->cv, key, sizeof o->cv);
    memcpy(o->m, left, 8 * sizeof(uint32_t));
    memcpy(o->m + 8, right, 8 * sizeof(uint32_t));
    o->counter = 0;
    o->block_len = BLOCK_LEN;
    o->flags = flags | PARENT;
}

static void output_cv(const output *o, uint32_t cv[8])
{
    compress(o->cv, o->m, o->block_len, o->counter, o->flags, cv, 0);
}

static void parent_cv(uint32_t cv[8], const uint32_t left[8], const uint32_t right[8],
                      const uint32_t key[8], uint32_t flags)
{
    uint32_t m[16];
    memcpy(m, left, 8 * sizeof(uint32_t));
    memcpy(m + 8, right, 8 * sizeof(uint32_t));
    compress(key, m, BLOCK_LEN, 0, flags | PARENT, cv, 0);
}

static void init_common(ir_blake3 *h, const uint32_t key[8], uint8_t flags)
{
    /* The CV stack is not cleared: only entries below cv_stack_len are ever read. */
    memcpy(h->key, key, sizeof h->key);
    memcpy(h->cv, key, sizeof h->cv);
    h->chunk_counter = 0;
    memset(h->buf, 0, sizeof h->buf);
    h->buf_len = 0;
    h->blocks_compressed = 0;
    h->flags = flags;
    h->cv_stack_len = 0;
}

void ir_blake3_init(ir_blake3 *h)
{
    init_common(h, IV, 0);
}

void ir_blake3_init_keyed(ir_blake3 *h, const uint8_t key[32])
{
    uint32_t k[8];
    for (int i = 0; i < 8; i++) k[i] = load32(key + 4 * i);
    init_common(h, k, KEYED_HASH);
}

void ir_blake3_init_derive_key(ir_blake3 *h, const char *context)
{
    uint8_t ctx_key[IR_BLAKE3_KEY_LEN];
    uint32_t k[8];
    init_common(h, IV, DERIVE_KEY_CONTEXT);
    ir_blake3_update(h, context, strlen(context));
    ir_blake3_finalize(h, ctx_key, sizeof ctx_key);
    for (int i = 0; i < 8; i++) k[i] = load32(ctx_key + 4 * i);
    init_common(h, k, DERIVE_KEY_MATERIAL);
}

static inline size_t chunk_len(const ir_blake3 *h)
{
    return (size_t)h->blocks_compressed * BLOCK_LEN + h->buf_len;
}

static inline uint32_t start_flag(const ir_blake3 *h)
{
    return h->blocks_compressed == 0 ? CHUNK_START : 0;
}

/* Records the CV of a completed chunk, which is known not to be the last one; total is
 * the number of chunks completed so far, including this one. Merges one completed
 * subtree per trailing zero bit of total (the subtrees cannot be the root either). */
static void push_chunk_cv(ir_blake3 *h, const uint32_t chunk_cv[8], uint64_t total)
{
    uint32_t cv[8];
    memcpy(cv, chunk_cv, sizeof cv);
    while ((total & 1) == 0) {
        h->cv_stack_len--;
        parent_cv(cv, h->cv_stack[h->cv_stack_len], cv, h->key, h->flags);
        total >>= 1;
    }
    memcpy(h->cv_stack[h->cv_stack_len], cv, sizeof cv);
    h->cv_stack_len++;
}

/* Adds up to CHUNK_LEN - chunk_len(h) bytes to the current chunk, keeping the last
 * block of input buffered. */
static void chunk_update(ir_blake3 *h, const uint8_t *in, size_t len)
{
    while (len > 0) {
        if (h->buf_len == BLOCK_LEN) {
            compress_cv(h->cv, h->buf, BLOCK_LEN, h->chunk_counter, h->flags | start_flag(h));
            h->blocks_compressed++;
            h->buf_len = 0;
            memset(h->buf, 0, sizeof h->buf);
        }
        if (h->buf_len == 0) {
            /* Whole blocks with more input after them go straight from the input. */
            while (len > BLOCK_LEN) {
                compress_cv(h->cv, in, BLOCK_LEN, h->chunk_counter, h->flags | start_flag(h));
                h->blocks_compressed++;
                in += BLOCK_LEN;
                len -= BLOCK_LEN;
            }
        }
        size_t take = BLOCK_LEN - h->buf_len;
        if (take > len) take = len;
        memcpy(h->buf + h->buf_len, in, take);
        h->buf_len = (uint8_t)(h->buf_len + take);
        in += take;
        len -= take;
    }
}

void ir_blake3_update(ir_blake3 *h, const void *data, size_t len)
{
    const uint8_t *in = data;
    while (len > 0) {
        if (chunk_len(h) == CHUNK_LEN) {
            /* More input follows, so the full current chunk is not the last. */
            compress_cv(h->cv, h->buf, BLOCK_LEN, h->chunk_counter,
                        h->flags | start_flag(h) | CHUNK_END);
            push_chunk_cv(h, h->cv, h->chunk_counter + 1);
            h->chunk_counter++;
            memcpy(h->cv, h->key, sizeof h->cv);
            memset(h->buf, 0, sizeof h->buf);
            h->buf_len = 0;
            h->blocks_compressed = 0;
        }
        if (chunk_len(h) == 0 && len > CHUNK_LEN) {
            /* A whole chunk with more input after it: hash it directly from the input. */
            uint32_t cv[8];
            memcpy(cv, h->key, sizeof cv);
            for (int b = 0; b < CHUNK_LEN / BLOCK_LEN; b++) {
                uint32_t f = h->flags;
                if (b == 0) f |= CHUNK_START;
                if (b == CHUNK_LEN / BLOCK_LEN - 1) f |= CHUNK_END;
                compress_cv(cv, in + (size_t)b * BLOCK_LEN, BLOCK_LEN, h->chunk_counter, f);
            }
            push_chunk_cv(h, cv, h->chunk_counter + 1);
            h->chunk_counter++;
            in += CHUNK_LEN;
            len -= CHUNK_LEN;
            continue;
        }
        size_t take = CHUNK_LEN - chunk_len(h);
        if (take > len) take = len;
        chunk_update(h, in, take);
        in += take;
        len -= take;
    }
}

void ir_blake3_finalize_seek(const ir_blake3 *h, uint64_t seek, uint8_t *out, size_t out_len)
{
    output o;
    if (out_len == 0) return;

    /* The current chunk's last block (possibly empty, only when there was no input). */
    memcpy(o.cv, h->cv, sizeof o.cv);
    load_block(o.m, h->buf);
    o.counter = h->chunk_counter;
    o.block_len = h->buf_len;
    o.flags = h->flags | start_flag(h) | CHUNK_END;

    /* Fold the stack from the top: each entry is the left sibling of what is to its right. */
    for (size_t i = h->cv_stack_len; i > 0; i--) {
        uint32_t right[8];
        output_cv(&o, right);
        parent_output(&o, h->cv_stack[i - 1], right, h->key, h->flags);
    }

    /* The root: the counter is the output block index. */
    uint64_t block = seek / BLOCK_LEN;
    size_t skip = (size_t)(seek % BLOCK_LEN);
    while (out_len > 0) {
        uint32_t words[16];
        uint8_t bytes[BLOCK_LEN];
        compress(o.cv, o.m, o.block_len, block, o.flags | ROOT, words, 1);
        size_t n = BLOCK_LEN - skip;
        if (n > out_len) n = out_len;
        if (skip == 0 && n == BLOCK_LEN) {
            for (int i = 0; i < 16; i++) store32(out + 4 * i, words[i]);
        } else {
            for (int i = 0; i < 16; i++) store32(bytes + 4 * i, words[i]);
            memcpy(out, bytes + skip, n);
        }
        out += n;
        out_len -= n;
        skip = 0;
        block++;
    }
}

void ir_blake3_finalize(const ir_blake3 *h, uint8_t *out, size_t out_len)
{
    ir_blake3_finalize_seek(h, 0, out, out_len);
}

void ir_blake3_hash(const void *data, size_t len, uint8_t out[32])
{
    ir_blake3 h;
    ir_blake3_init(&h);
    ir_blake3_update(&h, data, len);
    ir_blake3_finalize(&h, out, IR_BLAKE3_OUT_LEN);
}

void ir_blake3_keyed_hash(const uint8_t key[32], const void *data, size_t len, uint8_t out[32])
{
    ir_blake3 h;
    ir_blake3_init_keyed(&h, key);
    ir_blake3_update(&h, data, len);
    ir_blake3_finalize(&h, out, IR_BLAKE3_OUT_LEN);
}

void ir_blake3_derive_key(const char *context, const void *key_material, size_t len,
                          uint8_t *out, size_t out_len)
{
    ir_blake3 h;
    ir_blake3_init_derive_key(&h, context);
    ir_blake3_update(&h, key_material, len);
    ir_blake3_finalize(&h, out, out_len);
}
