/* Range sets, checked against a bitmap model with a fixed pseudo-random sequence. */
#include "quic/ranges.h"
#include "test.h"

#define SPAN 300

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return rnd_state >> 8;
}

static int matches(const ir_ranges *s, const unsigned char *bits)
{
    /* sorted, disjoint, non-touching, and the same membership as the bitmap */
    for (size_t i = 0; i < s->n; i++) {
        if (s->r[i].start >= s->r[i].end)
            return 0;
        if (i && s->r[i - 1].end >= s->r[i].start)
            return 0;
    }
    for (uint64_t v = 0; v < SPAN; v++)
        if (ir_ranges_contains(s, v) != bits[v])
            return 0;
    return 1;
}

TEST(model)
{
    ir_ranges s;
    unsigned char bits[SPAN] = {0};
    ir_ranges_init(&s, 0);
    for (int step = 0; step < 4000; step++) {
        uint64_t a = rnd() % SPAN, b = a + rnd() % 20;
        if (b > SPAN)
            b = SPAN;
        int op = (int)(rnd() % 4);
        if (op < 2) {
            CHECK_EQ_INT(ir_ranges_add(&s, a, b), 0);
            for (uint64_t v = a; v < b; v++) bits[v] = 1;
        } else if (op == 2) {
            CHECK_EQ_INT(ir_ranges_remove(&s, a, b), 0);
            for (uint64_t v = a; v < b; v++) bits[v] = 0;
        } else {
            int covered = 1;
            for (uint64_t v = a; v < b; v++) covered &= bits[v];
            CHECK_EQ_INT(ir_ranges_covers(&s, a, b), covered);
            uint64_t e = a;
            while (e < SPAN && bits[e]) e++;
            CHECK_EQ_INT(ir_ranges_contiguous_end(&s, a), e);
        }
        if (!matches(&s, bits)) {
            CHECK(0);
            break;
        }
        if (step % 500 == 499) {
            uint64_t cut = rnd() % SPAN;
            ir_ranges_drop_below(&s, cut);
            memset(bits, 0, cut);
            CHECK(matches(&s, bits));
        }
    }
    ir_ranges_free(&s);
}

TEST(limit_drops_lowest)
{
    ir_ranges s;
    ir_ranges_init(&s, 3);
    for (uint64_t i = 0; i < 10; i++)
        ir_ranges_add(&s, i * 10, i * 10 + 1);
    CHECK_EQ_INT(s.n, 3);
    CHECK_EQ_INT(s.r[0].start, 70);
    CHECK_EQ_INT(s.r[2].start, 90);
    ir_ranges_free(&s);
}

int main(void)
{
    RUN(model);
    RUN(limit_drops_lowest);
    TEST_EXIT();
}
