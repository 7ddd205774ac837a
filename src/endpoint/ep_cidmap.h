/* The endpoint core's routing table (ep_core.c only): short byte strings (connection ids
 * of ours, clients' Initial DCIDs, peers' stateless reset tokens), each of a kind, mapped
 * to one value. Open addressing with linear probing and backward-shift deletion, at most
 * half full (and halved below an eighth full, down to 64 entries); the hash is keyed with
 * secret random keys, so that peers who choose some of the keys (a client's Initial DCID,
 * a peer's reset token) cannot aim at one bucket. */
#ifndef IR_ENDPOINT_EP_CIDMAP_H
#define IR_ENDPOINT_EP_CIDMAP_H

#include <stddef.h>
#include <stdint.h>

#define IR_CIDMAP_KEY_MAX 20

enum { IR_CIDMAP_OURS = 1, IR_CIDMAP_INITIAL = 2, IR_CIDMAP_TOKEN = 3 };

typedef struct ir_cidmap_entry {
    void *val; /* NULL: empty */
    uint8_t kind, len;
    uint8_t key[IR_CIDMAP_KEY_MAX];
} ir_cidmap_entry;

typedef struct ir_cidmap {
    ir_cidmap_entry *t;
    size_t cap, n; /* cap: a power of two, or 0 */
    uint64_t k0, k1;
} ir_cidmap;

void ir_cidmap_init(ir_cidmap *m, const uint8_t secret[16]);
void ir_cidmap_free(ir_cidmap *m);
/* Adds key -> val. 0: added; 1: the key is there already (left as it was); -1: out of
 * memory (nothing added). */
int ir_cidmap_put(ir_cidmap *m, int kind, const uint8_t *key, size_t len, void *val);
/* The value of key, NULL if none. */
void *ir_cidmap_get(const ir_cidmap *m, int kind, const uint8_t *key, size_t len);
/* Removes key if it maps to val (another value's entry stays). */
void ir_cidmap_del(ir_cidmap *m, int kind, const uint8_t *key, size_t len, const void *val);

#endif
