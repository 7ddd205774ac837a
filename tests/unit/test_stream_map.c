/* The stream id map (checked against a plain array on a fixed pseudo-random sequence of
 * inserts and removals, with stream-id-like keys) and the intrusive queue. */
#include "quic/stream_map.h"
#include "test.h"

static uint64_t rnd_state = 0x1234567;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

#define KEYS 4096

TEST(map_model)
{
    static int present[KEYS];
    static int vals[KEYS];
    memset(present, 0, sizeof present);
    ir_idmap m;
    ir_idmap_init(&m);
    CHECK(ir_idmap_find(&m, 0) == NULL);
    ir_idmap_remove(&m, 4); /* nothing there: no effect */
    size_t n = 0, max_cap = 0;
    for (int round = 0; round < 200000; round++) {
        /* grow for a while, then shrink, then grow again */
        int phase = (round / 50000) % 2;
        size_t k = rnd() % KEYS;
        uint64_t id = (uint64_t)k << 2 | (k & 3); /* stream ids: number << 2 | type */
        int add = (rnd() % 100) < (phase ? 30 : 70);
        if (add && !present[k]) {
            CHECK_EQ_INT(ir_idmap_insert(&m, id, &vals[k]), 0);
            present[k] = 1;
            n++;
        } else if (!add && present[k]) {
            ir_idmap_remove(&m, id);
            present[k] = 0;
            n--;
        }
        CHECK_EQ_INT(m.n, n);
        if (m.cap > max_cap)
            max_cap = m.cap;
        /* the table stays between 1/8 and 1/2 full */
        CHECK(2 * m.n <= m.cap);
        CHECK(m.cap <= 16 || 8 * m.n >= m.cap / 2);
        if (round % 997 == 0) {
            for (size_t j = 0; j < KEYS; j++) {
                uint64_t jd = (uint64_t)j << 2 | (j & 3);
                void *v = ir_idmap_find(&m, jd);
                if (v != (present[j] ? &vals[j] : NULL)) {
                    CHECK(0);
                    break;
                }
            }
            /* iteration sees each value once */
            size_t seen = 0, i = 0;
            void *v;
            while ((v = ir_idmap_next(&m, &i)) != NULL) {
                size_t j = (size_t)((int *)v - vals);
                CHECK(j < KEYS && present[j]);
                seen++;
            }
            CHECK_EQ_INT(seen, n);
        }
    }
    CHECK(max_cap >= 4096);
    /* remove everything: the table shrinks back */
    for (size_t j = 0; j < KEYS; j++)
        if (present[j])
            ir_idmap_remove(&m, (uint64_t)j << 2 | (j & 3));
    CHECK_EQ_INT(m.n, 0);
    CHECK(m.cap <= 16);
    ir_idmap_free(&m);
}

/* many consecutive ids of one type, as a peer opening streams makes them */
TEST(map_sequential)
{
    ir_idmap m;
    ir_idmap_init(&m);
    static int dummy;
    for (uint64_t k = 0; k < 100000; k++)
        CHECK_EQ_INT(ir_idmap_insert(&m, k << 2 | 1, &dummy), 0);
    CHECK_EQ_INT(m.n, 100000);
    CHECK(ir_idmap_find(&m, 99999 << 2 | 1) == &dummy);
    CHECK(ir_idmap_find(&m, 99999 << 2) == NULL);
    CHECK(ir_idmap_find(&m, 100000 << 2 | 1) == NULL);
    /* the longest probe run stays short */
    size_t run = 0, longest = 0;
    for (size_t i = 0; i < 2 * m.cap; i++) {
        if (m.slots[i & (m.cap - 1)].val)
            run++;
        else
            run = 0;
        if (run > longest)
            longest = run;
    }
    CHECK(longest < 64);
    for (uint64_t k = 0; k < 100000; k += 2)
        ir_idmap_remove(&m, k << 2 | 1);
    CHECK_EQ_INT(m.n, 50000);
    for (uint64_t k = 0; k < 100000; k++)
        if ((ir_idmap_find(&m, k << 2 | 1) != NULL) != (k & 1)) {
            CHECK(0);
            break;
        }
    ir_idmap_free(&m);
}

typedef struct item {
    int v;
    ir_qlink link;
} item;

static int order_is(const ir_queue *q, const int *want, size_t n)
{
    if (q->n != n)
        return 0;
    size_t i = 0;
    const ir_qlink *prev = NULL;
    for (const ir_qlink *l = q->head; l; l = l->next, i++) {
        const item *it = (const item *)((const char *)l - offsetof(item, link));
        if (i >= n || it->v != want[i] || l->prev != prev || l->q != q)
            return 0;
        prev = l;
    }
    return i == n && q->tail == prev;
}

TEST(queue)
{
    item it[6];
    memset(it, 0, sizeof it);
    for (int i = 0; i < 6; i++)
        it[i].v = i;
    ir_queue a, b;
    ir_queue_init(&a);
    ir_queue_init(&b);
    for (int i = 0; i < 4; i++)
        ir_queue_push(&a, &it[i].link);
    ir_queue_push(&a, &it[1].link); /* already there: stays in place */
    CHECK(order_is(&a, (int[]){0, 1, 2, 3}, 4));
    ir_queue_rotate(&it[0].link);
    CHECK(order_is(&a, (int[]){1, 2, 3, 0}, 4));
    ir_queue_rotate(&it[0].link); /* the tail already */
    CHECK(order_is(&a, (int[]){1, 2, 3, 0}, 4));
    ir_queue_remove(&it[2].link);
    ir_queue_remove(&it[2].link); /* not queued: no effect */
    CHECK(order_is(&a, (int[]){1, 3, 0}, 3));
    CHECK(it[2].link.q == NULL);
    ir_queue_push(&b, &it[3].link); /* moves from a to b */
    ir_queue_push(&b, &it[4].link);
    CHECK(order_is(&a, (int[]){1, 0}, 2));
    CHECK(order_is(&b, (int[]){3, 4}, 2));
    ir_queue_splice(&a, &b);
    CHECK(order_is(&a, (int[]){1, 0, 3, 4}, 4));
    CHECK(order_is(&b, NULL, 0) && b.head == NULL);
    ir_queue_splice(&b, &a); /* into an empty queue */
    CHECK(order_is(&b, (int[]){1, 0, 3, 4}, 4));
    CHECK_EQ_INT(a.n, 0);
    ir_queue_splice(&b, &a); /* an empty one: nothing */
    CHECK(order_is(&b, (int[]){1, 0, 3, 4}, 4));
    while (b.head)
        ir_queue_remove(b.head);
    CHECK(b.tail == NULL && b.n == 0);
}

int main(void)
{
    RUN(map_model);
    RUN(map_sequential);
    RUN(queue);
    TEST_EXIT();
}
