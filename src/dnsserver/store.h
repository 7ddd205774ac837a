/* The DNS server's packet store: SQLite (one file, or an in-memory database) with an LRU
 * cache in front, so that a hot key is answered without touching the file.
 *
 * Rows are (key BLOB PRIMARY KEY, ts INTEGER, payload BLOB): the pkarr relay payload
 * (sig || timestamp || dns) as the PUT carried it, already verified; ts is the packet's
 * timestamp for expiry, at most 2^63 - 1 (the payload keeps the exact one). A packet
 * replaces the stored one only when it is more recent (ir_pkarr_more_recent: larger
 * timestamp; on a tie the larger DNS bytes), as iroh-dns-server's store does. Expiry is
 * iroh's: a packet is gone 7 days after its own timestamp; ir_dnss_store_expire deletes
 * those rows (the server calls it every 10 s) and lookups never return an expired packet.
 *
 * Writes are batched as iroh-dns-server batches them: a put opens a transaction that
 * ir_dnss_store_flush commits (the server calls it at least every second and at exit), or
 * the put itself once IR_DNSS_BATCH_MAX writes are pending; lookups on this store see the
 * pending writes. A crash loses at most the last second of PUTs, never the file (WAL).
 *
 * The cache holds up to `cache_capacity` keys, present ones with their packet and absent
 * ones (a miss is remembered too: every write goes through this store, so a remembered
 * miss is replaced by the next put). Memory is bounded by the capacity, never by what
 * clients send. Not thread-safe: the server's single loop owns it. */
#ifndef IR_DNSSERVER_STORE_H
#define IR_DNSSERVER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "dns/pkarr.h"

/* iroh-dns-server's eviction: 7 days after the packet's timestamp */
#define IR_DNSS_EXPIRY_US (7ULL * 24 * 3600 * 1000000)
#define IR_DNSS_DEFAULT_CACHE 65536
#define IR_DNSS_BATCH_MAX 1000

typedef struct ir_dnss_store ir_dnss_store;

typedef struct ir_dnss_store_stats {
    uint64_t cache_hits, cache_misses; /* lookups answered by the cache / by SQLite */
    uint64_t inserted, updated, noop;  /* puts: new key, newer packet, not newer */
    uint64_t expired;                  /* rows deleted by expiry */
    uint64_t cached;                   /* keys in the cache now */
} ir_dnss_store_stats;

/* Opens (creating it if needed) the database at path, or an in-memory one for NULL.
 * cache_capacity 0 means IR_DNSS_DEFAULT_CACHE. Returns 0 or a negative IROH_ERR_* with
 * the detail set (e.g. "cannot open database 'x': ..."). */
int ir_dnss_store_open(const char *path, size_t cache_capacity, ir_dnss_store **out);
void ir_dnss_store_free(ir_dnss_store *st);

/* The packet stored for key and not expired at now_us (Unix time, microseconds):
 * 1 found (*out filled), 0 none, or a negative IROH_ERR_IO (detail set). */
int ir_dnss_store_get(ir_dnss_store *st, const uint8_t key[32], uint64_t now_us, ir_pkarr_packet *out);

/* Stores p (verified by the caller) unless the stored packet is as recent or more:
 * 1 stored, 0 kept the stored one, or a negative IROH_ERR_IO. */
int ir_dnss_store_put(ir_dnss_store *st, const ir_pkarr_packet *p);

/* Commits the pending writes: 0 or a negative IROH_ERR_IO. A failed commit loses the
 * batch (as a crash would: the transaction is rolled back, the cache emptied) and the
 * store goes on with the next put. */
int ir_dnss_store_flush(ir_dnss_store *st);
/* Runs SQL on the store's connection (tests: making a commit fail). 0 or IROH_ERR_IO. */
int ir_dnss_store_exec(ir_dnss_store *st, const char *sql);

/* Deletes the packets older than now_us - IR_DNSS_EXPIRY_US; returns how many, or a
 * negative IROH_ERR_IO. */
long ir_dnss_store_expire(ir_dnss_store *st, uint64_t now_us);

/* Rows in the database (a full count; for tests and benchmarks). */
long ir_dnss_store_count(ir_dnss_store *st);

void ir_dnss_store_get_stats(const ir_dnss_store *st, ir_dnss_store_stats *out);

#endif
