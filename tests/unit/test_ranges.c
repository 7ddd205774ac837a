/* Range sets, checked against a bitmap model with a fixed pseudo-random sequence, and the
 * received-packet-number tracker (duplicate detection, RFC 9000 12.3). */
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

TEST(in_order_appends)
{
    ir_ranges s;
    ir_ranges_init(&s, 4);
    for (uint64_t i = 0; i < 1000; i++)
        CHECK_EQ_INT(ir_ranges_add(&s, i, i + 1), 0);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_INT(s.r[0].start, 0);
    CHECK_EQ_INT(s.r[0].end, 1000);
    ir_ranges_add(&s, 1001, 1002);
    ir_ranges_add(&s, 1002, 1005); /* extends the last range */
    ir_ranges_add(&s, 1000, 1001); /* joins the two */
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_INT(s.r[0].end, 1005);
    ir_ranges_free(&s);
}

/* ---- ir_pn_seen --------------------------------------------------------------------- */

/* sorted, disjoint, non-touching, above the floor, within the bound */
static int seen_sane(const ir_pn_seen *t)
{
    const ir_ranges *s = &t->above;
    if (s->n > t->max)
        return 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->r[i].start >= s->r[i].end || s->r[i].start <= t->floor)
            return 0;
        if (i && s->r[i - 1].end >= s->r[i].start)
            return 0;
    }
    return 1;
}

#define SEEN_SPAN 3000

/* With room for every gap the tracker is exact: seen iff added, in any order. */
TEST(seen_exact)
{
    static unsigned char bits[SEEN_SPAN];
    memset(bits, 0, sizeof bits);
    ir_pn_seen t;
    ir_pn_seen_init(&t, SEEN_SPAN);
    for (int step = 0; step < 6000; step++) {
        /* mostly ascending with jumps back, as a reordering network delivers */
        uint64_t v = (uint64_t)step / 2 + rnd() % 64;
        if (rnd() % 4 == 0)
            v = rnd() % SEEN_SPAN;
        if (v >= SEEN_SPAN)
            continue;
        CHECK_EQ_INT(ir_pn_seen_has(&t, v), bits[v]);
        ir_pn_seen_add(&t, v);
        bits[v] = 1;
        if (step % 97 == 0) {
            int ok = seen_sane(&t);
            for (uint64_t w = 0; w < SEEN_SPAN && ok; w++)
                ok = ir_pn_seen_has(&t, w) == bits[w];
            CHECK(ok);
            if (!ok)
                break;
        }
    }
    /* everything from 0 on: the floor holds it all, no range is left */
    for (uint64_t v = 0; v < SEEN_SPAN; v++)
        ir_pn_seen_add(&t, v);
    CHECK_EQ_INT(t.floor, SEEN_SPAN);
    CHECK_EQ_INT(t.above.n, 0);
    ir_pn_seen_free(&t);
}

/* With a small bound: never a received number reported unseen, exact from the floor up,
 * at most max ranges, and the floor passes a gap only when the ranges are full. */
TEST(seen_bounded)
{
    static unsigned char bits[SEEN_SPAN];
    memset(bits, 0, sizeof bits);
    ir_pn_seen t;
    ir_pn_seen_init(&t, 8);
    for (int step = 0; step < 6000; step++) {
        uint64_t v = (uint64_t)step / 2 + rnd() % 40;
        if (v >= SEEN_SPAN)
            continue;
        size_t n_before = t.above.n;
        uint64_t floor_before = t.floor;
        int was = ir_pn_seen_has(&t, v);
        CHECK(!bits[v] || was);
        ir_pn_seen_add(&t, v);
        bits[v] = 1;
        CHECK(ir_pn_seen_has(&t, v));
        /* did the floor pass a number never received? only when all 8 ranges were used */
        int passed_gap = 0;
        for (uint64_t w = floor_before; w < t.floor; w++)
            passed_gap |= !bits[w];
        if (passed_gap && n_before < 8) {
            CHECK(0);
            break;
        }
        int ok = seen_sane(&t) && t.above.cap <= 8;
        for (uint64_t w = 0; w < SEEN_SPAN && ok; w++)
            ok = w < t.floor ? ir_pn_seen_has(&t, w) : ir_pn_seen_has(&t, w) == bits[w];
        CHECK(ok);
        if (!ok)
            break;
    }
    ir_pn_seen_free(&t);
}

/* A hostile peer sends every other packet number, 100,000 gaps: memory stays at the bound;
 * every packet it sent is refused when replayed; stragglers into the newest gaps are
 * still taken, those into the oldest gaps are refused (the price of the gaps). */
TEST(seen_hostile_gaps)
{
    ir_pn_seen t;
    ir_pn_seen_init(&t, 256);
    for (uint64_t pn = 1; pn < 200000; pn += 2) {
        CHECK(!ir_pn_seen_has(&t, pn));
        ir_pn_seen_add(&t, pn);
    }
    CHECK(seen_sane(&t));
    CHECK_EQ_INT(t.above.n, 256);
    CHECK(t.above.cap <= 256);
    int replay_taken = 0;
    for (uint64_t pn = 1; pn < 200000; pn += 2)
        replay_taken += !ir_pn_seen_has(&t, pn);
    CHECK_EQ_INT(replay_taken, 0);
    /* the 256 ranges hold the newest 256 odd numbers; the 256 gaps below them are open
     * (the lowest one between the floor and the first range), the older ones are filled */
    CHECK(!ir_pn_seen_has(&t, 199998));
    CHECK(!ir_pn_seen_has(&t, 200000 - 2 * 256));
    CHECK_EQ_INT(t.floor, 200000 - 2 * 256);
    CHECK(ir_pn_seen_has(&t, 200000 - 2 * 257));
    CHECK(ir_pn_seen_has(&t, 0));
    CHECK(ir_pn_seen_has(&t, 100000));
    /* a straggler into an open gap is taken once */
    ir_pn_seen_add(&t, 199998);
    CHECK(ir_pn_seen_has(&t, 199998));
    CHECK_EQ_INT(t.above.n, 255); /* it joined two ranges */
    ir_pn_seen_free(&t);
}

/* Packet numbers in order, or in order after one gap, need no search and no memory. */
TEST(seen_in_order)
{
    ir_pn_seen t;
    ir_pn_seen_init(&t, 256);
    for (uint64_t pn = 0; pn < 100000; pn++) {
        CHECK(!ir_pn_seen_has(&t, pn));
        ir_pn_seen_add(&t, pn);
    }
    CHECK_EQ_INT(t.floor, 100000);
    CHECK_EQ_INT(t.above.n, 0);
    CHECK(t.above.r == NULL);
    for (uint64_t pn = 100001; pn < 200000; pn++)
        ir_pn_seen_add(&t, pn);
    CHECK_EQ_INT(t.above.n, 1);
    CHECK(!ir_pn_seen_has(&t, 100000));
    ir_pn_seen_add(&t, 100000); /* the gap fills: the floor takes the range */
    CHECK_EQ_INT(t.floor, 200000);
    CHECK_EQ_INT(t.above.n, 0);
    ir_pn_seen_free(&t);
}

int main(void)
{
    RUN(model);
    RUN(limit_drops_lowest);
    RUN(in_order_appends);
    RUN(seen_exact);
    RUN(seen_bounded);
    RUN(seen_hostile_gaps);
    RUN(seen_in_order);
    TEST_EXIT();
}
