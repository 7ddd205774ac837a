/* The packet store: SQLite under an LRU cache. See store.h. */
#include "store.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/blake3.h"
#include "base/util.h"

/* One cached key: present (with its packet) or known absent. */
typedef struct centry {
    struct centry *hnext;        /* hash chain */
    struct centry *prev, *next;  /* LRU list, most recent first */
    uint8_t key[32];
    int present;
    uint64_t ts;
    uint8_t sig[64];
    size_t dns_len;
    uint8_t dns[]; /* dns_len bytes */
} centry;

struct ir_dnss_store {
    sqlite3 *db;
    sqlite3_stmt *sel, *ins, *del_old, *count;
    int in_txn;        /* writes since the last commit are in an open transaction */
    size_t txn_writes;
    size_t cap, n, nbuckets;
    centry **buckets;
    centry *head, *tail;
    uint8_t hkey[32]; /* secret: keys come from clients, chains must not be theirs to pick */
    ir_dnss_store_stats stats;
};

/* ---- the cache ----------------------------------------------------------------------- */

static size_t bucket_of(const ir_dnss_store *st, const uint8_t key[32])
{
    uint8_t h[8];
    ir_blake3 b;
    ir_blake3_init_keyed(&b, st->hkey);
    ir_blake3_update(&b, key, 32);
    ir_blake3_finalize(&b, h, sizeof h);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return (size_t)(v & (st->nbuckets - 1));
}

static void lru_unlink(ir_dnss_store *st, centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        st->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        st->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_front(ir_dnss_store *st, centry *e)
{
    e->prev = NULL;
    e->next = st->head;
    if (st->head)
        st->head->prev = e;
    st->head = e;
    if (!st->tail)
        st->tail = e;
}

static centry **cache_slot(ir_dnss_store *st, const uint8_t key[32])
{
    centry **pp = &st->buckets[bucket_of(st, key)];
    while (*pp && memcmp((*pp)->key, key, 32) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

static void cache_drop(ir_dnss_store *st, centry **pp)
{
    centry *e = *pp;
    *pp = e->hnext;
    lru_unlink(st, e);
    free(e);
    st->n--;
}

/* Remembers key as present with p, or as absent (p NULL). Best effort: out of memory
 * only forgets. */
static void cache_set(ir_dnss_store *st, const uint8_t key[32], const ir_pkarr_packet *p)
{
    centry **pp = cache_slot(st, key);
    if (*pp)
        cache_drop(st, pp);
    if (st->n >= st->cap && st->tail)
        cache_drop(st, cache_slot(st, st->tail->key));
    size_t dl = p ? p->dns_len : 0;
    centry *e = malloc(sizeof *e + dl);
    if (!e)
        return;
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, 32);
    if (p) {
        e->present = 1;
        e->ts = p->timestamp_us;
        memcpy(e->sig, p->sig, 64);
        e->dns_len = dl;
        memcpy(e->dns, p->dns, dl);
    }
    pp = cache_slot(st, key);
    e->hnext = NULL;
    *pp = e;
    lru_front(st, e);
    st->n++;
}

static void fill(ir_pkarr_packet *out, const uint8_t key[32], const uint8_t sig[64], uint64_t ts,
                 const uint8_t *dns, size_t dns_len)
{
    memcpy(out->key, key, 32);
    memcpy(out->sig, sig, 64);
    out->timestamp_us = ts;
    out->dns_len = dns_len;
    memcpy(out->dns, dns, dns_len);
}

/* ---- SQLite ---------------------------------------------------------------------------- */

static int db_fail(ir_dnss_store *st, const char *what)
{
    return ir_fail(IROH_ERR_IO, "database: %s: %s", what, sqlite3_errmsg(st->db));
}

int ir_dnss_store_open(const char *path, size_t cache_capacity, ir_dnss_store **out)
{
    *out = NULL;
    ir_dnss_store *st = calloc(1, sizeof *st);
    if (!st)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    st->cap = cache_capacity ? cache_capacity : IR_DNSS_DEFAULT_CACHE;
    st->nbuckets = 16;
    while (st->nbuckets < st->cap && st->nbuckets < ((size_t)1 << 30))
        st->nbuckets <<= 1;
    st->buckets = calloc(st->nbuckets, sizeof *st->buckets);
    if (!st->buckets) {
        free(st);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    ir_random_bytes(NULL, st->hkey, sizeof st->hkey);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path ? path : ":memory:", &st->db, flags, NULL);
    if (rc != SQLITE_OK) {
        rc = ir_fail(IROH_ERR_IO, "cannot open database '%s': %s", path ? path : ":memory:",
                     st->db ? sqlite3_errmsg(st->db) : "out of memory");
        ir_dnss_store_free(st);
        return rc;
    }
    sqlite3_busy_timeout(st->db, 2000);
    /* WAL with NORMAL sync: a crash may lose the last writes, never the file */
    static const char *const setup =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=NORMAL;"
        "PRAGMA mmap_size=268435456;" /* reads through the page cache, not copies */
        "CREATE TABLE IF NOT EXISTS signed_packets ("
        " key BLOB PRIMARY KEY NOT NULL, ts INTEGER NOT NULL, payload BLOB NOT NULL) WITHOUT ROWID;"
        "CREATE INDEX IF NOT EXISTS signed_packets_ts ON signed_packets(ts);";
    char *err = NULL;
    if (sqlite3_exec(st->db, setup, NULL, NULL, &err) != SQLITE_OK) {
        rc = ir_fail(IROH_ERR_IO, "database '%s': %s", path ? path : ":memory:",
                     err ? err : "setup failed");
        sqlite3_free(err);
        ir_dnss_store_free(st);
        return rc;
    }
    if (sqlite3_prepare_v2(st->db, "SELECT ts, payload FROM signed_packets WHERE key = ?1", -1,
                           &st->sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->db,
                           "INSERT OR REPLACE INTO signed_packets (key, ts, payload) VALUES (?1, ?2, ?3)",
                           -1, &st->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->db, "DELETE FROM signed_packets WHERE ts < ?1", -1, &st->del_old,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->db, "SELECT count(*) FROM signed_packets", -1, &st->count, NULL) !=
            SQLITE_OK) {
        rc = db_fail(st, "prepare");
        ir_dnss_store_free(st);
        return rc;
    }
    *out = st;
    return IROH_OK;
}

void ir_dnss_store_free(ir_dnss_store *st)
{
    if (!st)
        return;
    if (st->db)
        ir_dnss_store_flush(st);
    sqlite3_finalize(st->sel);
    sqlite3_finalize(st->ins);
    sqlite3_finalize(st->del_old);
    sqlite3_finalize(st->count);
    if (st->db)
        sqlite3_close(st->db);
    for (centry *e = st->head, *nx; e; e = nx) {
        nx = e->next;
        free(e);
    }
    free(st->buckets);
    free(st);
}

/* The row of key: 1 (packet in *out), 0 none, <0 error. A row that does not hold a
 * payload of the right shape (a file edited by hand) counts as none. */
static int db_get(ir_dnss_store *st, const uint8_t key[32], ir_pkarr_packet *out)
{
    sqlite3_reset(st->sel);
    sqlite3_bind_blob(st->sel, 1, key, 32, SQLITE_STATIC);
    int rc = sqlite3_step(st->sel);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return db_fail(st, "select");
    const uint8_t *pl = sqlite3_column_blob(st->sel, 1);
    int n = sqlite3_column_bytes(st->sel, 1);
    if (!pl || n < 72 || n - 72 > IR_PKARR_MAX_DNS) {
        sqlite3_reset(st->sel);
        return 0;
    }
    uint64_t ts = 0;
    for (int i = 0; i < 8; i++)
        ts = ts << 8 | pl[64 + i];
    fill(out, key, pl, ts, pl + 72, (size_t)n - 72);
    sqlite3_reset(st->sel);
    return 1;
}

int ir_dnss_store_get(ir_dnss_store *st, const uint8_t key[32], uint64_t now_us, ir_pkarr_packet *out)
{
    uint64_t cutoff = now_us > IR_DNSS_EXPIRY_US ? now_us - IR_DNSS_EXPIRY_US : 0;
    centry **pp = cache_slot(st, key);
    if (*pp) {
        centry *e = *pp;
        st->stats.cache_hits++;
        lru_unlink(st, e);
        lru_front(st, e);
        if (!e->present || e->ts < cutoff)
            return 0;
        fill(out, key, e->sig, e->ts, e->dns, e->dns_len);
        return 1;
    }
    st->stats.cache_misses++;
    int rc = db_get(st, key, out);
    if (rc < 0)
        return rc;
    cache_set(st, key, rc ? out : NULL);
    if (rc && out->timestamp_us < cutoff)
        return 0;
    return rc;
}

/* forgets every cached key (the database is the truth again) */
static void cache_clear(ir_dnss_store *st)
{
    while (st->head)
        cache_drop(st, cache_slot(st, st->head->key));
}

int ir_dnss_store_flush(ir_dnss_store *st)
{
    if (!st->in_txn)
        return IROH_OK;
    st->in_txn = 0;
    st->txn_writes = 0;
    if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
        return IROH_OK;
    int rc = db_fail(st, "commit");
    /* The batch is lost, as a crash would lose it, but the store goes on: a transaction
     * SQLite left open is rolled back (else every later BEGIN fails), and the cache, which
     * holds the batch's packets, is emptied so that it says what the file says. */
    if (!sqlite3_get_autocommit(st->db))
        (void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    cache_clear(st);
    return rc;
}

int ir_dnss_store_exec(ir_dnss_store *st, const char *sql)
{
    return sqlite3_exec(st->db, sql, NULL, NULL, NULL) == SQLITE_OK ? IROH_OK : db_fail(st, "exec");
}

int ir_dnss_store_put(ir_dnss_store *st, const ir_pkarr_packet *p)
{
    ir_pkarr_packet *old = malloc(sizeof *old);
    if (!old)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    int have;
    centry **pp = cache_slot(st, p->key);
    if (*pp) {
        have = (*pp)->present;
        if (have)
            fill(old, p->key, (*pp)->sig, (*pp)->ts, (*pp)->dns, (*pp)->dns_len);
    } else {
        have = db_get(st, p->key, old);
        if (have < 0) {
            free(old);
            return have;
        }
    }
    if (have && !ir_pkarr_more_recent(p, old)) {
        free(old);
        st->stats.noop++;
        return 0;
    }
    free(old);
    uint8_t payload[72 + IR_PKARR_MAX_DNS];
    size_t n = ir_pkarr_relay_payload(p, payload, sizeof payload);
    if (n == 0)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "packet does not fit");
    if (!st->in_txn) {
        if (sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
            return db_fail(st, "begin");
        st->in_txn = 1;
    }
    sqlite3_reset(st->ins);
    sqlite3_bind_blob(st->ins, 1, p->key, 32, SQLITE_STATIC);
    /* the ts column only orders expiry: a timestamp of 2^63 or more (SQLite's integers are
     * signed) is kept as the largest, never as a negative that the next sweep deletes */
    sqlite3_bind_int64(st->ins, 2, p->timestamp_us > INT64_MAX ? INT64_MAX : (sqlite3_int64)p->timestamp_us);
    sqlite3_bind_blob(st->ins, 3, payload, (int)n, SQLITE_STATIC);
    int rc = sqlite3_step(st->ins);
    sqlite3_reset(st->ins);
    if (rc != SQLITE_DONE)
        return db_fail(st, "insert");
    if (have)
        st->stats.updated++;
    else
        st->stats.inserted++;
    cache_set(st, p->key, p);
    if (++st->txn_writes >= IR_DNSS_BATCH_MAX) {
        int rc2 = ir_dnss_store_flush(st);
        if (rc2 < 0)
            return rc2;
    }
    return 1;
}

long ir_dnss_store_expire(ir_dnss_store *st, uint64_t now_us)
{
    if (now_us <= IR_DNSS_EXPIRY_US)
        return 0;
    uint64_t cutoff = now_us - IR_DNSS_EXPIRY_US;
    sqlite3_reset(st->del_old);
    sqlite3_bind_int64(st->del_old, 1, (sqlite3_int64)cutoff);
    int rc = sqlite3_step(st->del_old);
    sqlite3_reset(st->del_old);
    if (rc != SQLITE_DONE)
        return db_fail(st, "expire");
    long n = (long)sqlite3_changes(st->db);
    st->stats.expired += (uint64_t)n;
    /* expired cache entries: lookups already skip them; drop them to give the room back */
    for (centry *e = st->head, *nx; e; e = nx) {
        nx = e->next;
        if (e->present && e->ts < cutoff)
            cache_drop(st, cache_slot(st, e->key));
    }
    return n;
}

long ir_dnss_store_count(ir_dnss_store *st)
{
    sqlite3_reset(st->count);
    long n = -1;
    if (sqlite3_step(st->count) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(st->count, 0);
    sqlite3_reset(st->count);
    return n < 0 ? db_fail(st, "count") : n;
}

void ir_dnss_store_get_stats(const ir_dnss_store *st, ir_dnss_store_stats *out)
{
    *out = st->stats;
    out->cached = st->n;
}
