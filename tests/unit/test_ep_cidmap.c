/* The endpoint core's routing table (endpoint/ep_cidmap.h): many keys in, half of them
 * out again (backward-shift deletion must keep every other key findable), kinds kept
 * apart, a delete by another value ignored, duplicates refused, the table shrinking once
 * nearly empty. */
#include <stdint.h>
#include <stdlib.h>

#include "test.h"

#include "endpoint/ep_cidmap.h"

#define N 20000

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_many(void)
{
    static uint8_t keys[N][8];
    static char present[N];
    ir_cidmap m;
    uint8_t secret[16] = {9, 8, 7};
    ir_cidmap_init(&m, secret);
    for (size_t i = 0; i < N; i++) {
        uint64_t r = next();
        memcpy(keys[i], &r, 8);
        CHECK(ir_cidmap_put(&m, IR_CIDMAP_OURS, keys[i], 8, &present[i]) == 0);
        present[i] = 1;
    }
    CHECK_EQ_INT(m.n, N);
    CHECK(m.n * 2 <= m.cap);
    /* the same key again: refused, the first value stays */
    CHECK(ir_cidmap_put(&m, IR_CIDMAP_OURS, keys[5], 8, &present[6]) == 1);
    CHECK(ir_cidmap_get(&m, IR_CIDMAP_OURS, keys[5], 8) == &present[5]);
    /* the same bytes as another kind or length: another key */
    CHECK(ir_cidmap_get(&m, IR_CIDMAP_INITIAL, keys[5], 8) == NULL);
    CHECK(ir_cidmap_get(&m, IR_CIDMAP_OURS, keys[5], 7) == NULL);
    /* a delete naming another value does nothing */
    ir_cidmap_del(&m, IR_CIDMAP_OURS, keys[5], 8, &present[6]);
    CHECK(ir_cidmap_get(&m, IR_CIDMAP_OURS, keys[5], 8) == &present[5]);
    /* out with a random half, in two rounds with lookups between */
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < N; i++) {
            if (present[i] && next() % 3 == 0) {
                ir_cidmap_del(&m, IR_CIDMAP_OURS, keys[i], 8, &present[i]);
                present[i] = 0;
            }
        }
        size_t live = 0, wrong = 0;
        for (size_t i = 0; i < N; i++) {
            void *v = ir_cidmap_get(&m, IR_CIDMAP_OURS, keys[i], 8);
            live += present[i];
            wrong += present[i] ? v != &present[i] : v != NULL;
        }
        CHECK_EQ_INT(wrong, 0);
        CHECK_EQ_INT(m.n, live);
    }
    /* and back in */
    for (size_t i = 0; i < N; i++)
        if (!present[i])
            CHECK(ir_cidmap_put(&m, IR_CIDMAP_OURS, keys[i], 8, &present[i]) == 0);
    CHECK_EQ_INT(m.n, N);
    for (size_t i = 0; i < N; i++)
        CHECK(ir_cidmap_get(&m, IR_CIDMAP_OURS, keys[i], 8) == &present[i]);
    /* nearly all out again: the table shrinks, the rest stays findable */
    size_t big_cap = m.cap;
    for (size_t i = 16; i < N; i++)
        ir_cidmap_del(&m, IR_CIDMAP_OURS, keys[i], 8, &present[i]);
    CHECK_EQ_INT(m.n, 16);
    CHECK(m.cap < big_cap / 100);
    CHECK(m.cap >= 64);
    for (size_t i = 0; i < 16; i++)
        CHECK(ir_cidmap_get(&m, IR_CIDMAP_OURS, keys[i], 8) == &present[i]);
    for (size_t i = 16; i < N; i += 97)
        CHECK(ir_cidmap_get(&m, IR_CIDMAP_OURS, keys[i], 8) == NULL);
    /* keys longer than a connection id are refused */
    uint8_t big[21] = {0};
    CHECK(ir_cidmap_put(&m, IR_CIDMAP_OURS, big, 21, &present[0]) == -1);
    CHECK(ir_cidmap_get(&m, IR_CIDMAP_OURS, big, 21) == NULL);
    ir_cidmap_free(&m);
}

int main(void)
{
    RUN(test_many);
    TEST_EXIT();
}
