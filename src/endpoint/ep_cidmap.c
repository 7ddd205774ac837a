/* The routing table of the endpoint core (ep_cidmap.h). */
#include "endpoint/ep_cidmap.h"

#include "crypto/crypto.h"

#include <stdlib.h>
#include <string.h>

void ir_cidmap_init(ir_cidmap *m, const uint8_t secret[16])
{
    memset(m, 0, sizeof *m);
    memcpy(&m->k0, secret, 8);
    memcpy(&m->k1, secret + 8, 8);
}

void ir_cidmap_free(ir_cidmap *m)
{
    free(m->t);
    m->t = NULL;
    m->cap = m->n = 0;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    return h;
}

static size_t slot_of(const ir_cidmap *m, int kind, const uint8_t *key, size_t len)
{
    uint64_t h = m->k0 ^ ((uint64_t)kind << 56) ^ ((uint64_t)len << 48);
    for (size_t i = 0; i < len; i += 8) {
        uint64_t w = 0;
        memcpy(&w, key + i, len - i < 8 ? len - i : 8);
        h = mix((h ^ w) * 0x9e3779b97f4a7c15ull + m->k1);
    }
    return (size_t)(mix(h ^ m->k1) & (m->cap - 1));
}

static int same(const ir_cidmap_entry *e, int kind, const uint8_t *key, size_t len)
{
    /* constant time: a stateless reset token is compared without telling by its timing how
     * much of it matched (RFC 9000 10.3.1); connection ids pay the same few cycles */
    return e->kind == kind && e->len == len && ir_ct_equal(e->key, key, len);
}

static ir_cidmap_entry *find(const ir_cidmap *m, int kind, const uint8_t *key, size_t len)
{
    if (!m->cap || len > IR_CIDMAP_KEY_MAX)
        return NULL;
    for (size_t i = slot_of(m, kind, key, len);; i = (i + 1) & (m->cap - 1)) {
        ir_cidmap_entry *e = &m->t[i];
        if (!e->val)
            return NULL;
        if (same(e, kind, key, len))
            return e;
    }
}

/* Moves every entry into a new table of cap entries (a power of two, > n). */
static int resize(ir_cidmap *m, size_t cap)
{
    ir_cidmap_entry *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    ir_cidmap old = *m;
    m->t = t;
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++) {
        const ir_cidmap_entry *e = &old.t[i];
        if (!e->val)
            continue;
        size_t k = slot_of(m, e->kind, e->key, e->len);
        while (m->t[k].val)
            k = (k + 1) & (cap - 1);
        m->t[k] = *e;
    }
    free(old.t);
    return 0;
}

int ir_cidmap_put(ir_cidmap *m, int kind, const uint8_t *key, size_t len, void *val)
{
    if (len > IR_CIDMAP_KEY_MAX || !val)
        return -1;
    if (find(m, kind, key, len))
        return 1;
    /* grow at half full; if that fails, go on up to three quarters */
    if ((m->n + 1) * 2 > m->cap && resize(m, m->cap ? m->cap * 2 : 64) != 0 &&
        (m->n + 1) * 4 > m->cap * 3)
        return -1;
    size_t i = slot_of(m, kind, key, len);
    while (m->t[i].val)
        i = (i + 1) & (m->cap - 1);
    ir_cidmap_entry *e = &m->t[i];
    e->val = val;
    e->kind = (uint8_t)kind;
    e->len = (uint8_t)len;
    memset(e->key, 0, sizeof e->key);
    memcpy(e->key, key, len);
    m->n++;
    return 0;
}

void *ir_cidmap_get(const ir_cidmap *m, int kind, const uint8_t *key, size_t len)
{
    const ir_cidmap_entry *e = find(m, kind, key, len);
    return e ? e->val : NULL;
}

void ir_cidmap_del(ir_cidmap *m, int kind, const uint8_t *key, size_t len, const void *val)
{
    ir_cidmap_entry *e = find(m, kind, key, len);
    if (!e || e->val != val)
        return;
    /* backward-shift deletion: entries after the hole that may move into it do */
    size_t hole = (size_t)(e - m->t), mask = m->cap - 1;
    for (size_t j = (hole + 1) & mask; m->t[j].val; j = (j + 1) & mask) {
        size_t home = slot_of(m, m->t[j].kind, m->t[j].key, m->t[j].len);
        /* j's entry may fill the hole if its home is not in (hole, j] (cyclically) */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->t[hole] = m->t[j];
            hole = j;
        }
    }
    memset(&m->t[hole], 0, sizeof m->t[hole]);
    m->n--;
    /* below an eighth full, half the size (a burst of connections does not keep its
     * table); if that fails, the table stays as it is */
    if (m->cap > 64 && m->n * 8 < m->cap)
        (void)resize(m, m->cap / 2);
}
