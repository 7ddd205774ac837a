/* EndpointAddr and TransportAddr (iroh-base endpoint_addr.rs): the canonical set, its
 * postcard form, and socket address text as Rust writes and reads it. */
#ifndef IR_BASE_ADDR_H
#define IR_BASE_ADDR_H

#include "postcard.h"
#include "util.h"

typedef struct ir_taddr {
    iroh_transport_kind kind;
    char *relay;            /* RELAY: normalized URL */
    iroh_socket_addr ip;    /* IP */
    uint64_t custom_id;     /* CUSTOM */
    uint8_t *custom_data;
    size_t custom_len;
    int custom_heap;        /* CUSTOM: stored in iroh's "heap" form (> 30 bytes, or as decoded) */
} ir_taddr;

struct iroh_endpoint_addr {
    iroh_endpoint_id id;
    ir_taddr *addrs;
    size_t len, cap;
};

/* Parses Rust's SocketAddr text; strict like Rust (no leading zeros in IPv4 octets).
 * The IPv6 scope id is accepted and dropped, as iroh's encoding drops it. */
/* 1 if the 16-byte IPv6 address is IPv4-mapped (::ffff:a.b.c.d): an IPv4 address. */
int ir_ip6_is_v4_mapped(const uint8_t ip[16]);

int ir_socket_addr_parse(const char *text, size_t len, iroh_socket_addr *out);
/* Rust's Display; returns the length written (buf has IROH_SOCKET_ADDR_LEN bytes). */
size_t ir_socket_addr_format(const iroh_socket_addr *a, char *buf);

/* Total order of iroh's BTreeSet<TransportAddr>. */
int ir_taddr_cmp(const ir_taddr *a, const ir_taddr *b);

/* Inserts a copy of t (deep) in canonical position; a duplicate is ignored. */
int ir_endpoint_addr_insert(iroh_endpoint_addr *addr, const ir_taddr *t);

/* Postcard: id(32) || varint(n) || TransportAddr*n. */
void ir_endpoint_addr_encode(const iroh_endpoint_addr *addr, ir_buf *out);
/* Decodes from the reader; on failure returns IROH_ERR_INVALID_TICKET-style errors with
 * the given code and a detail message. */
int ir_endpoint_addr_decode(ir_pc_reader *r, int err_code, iroh_endpoint_addr **out);

/* custom address text "<id hex>_<data hex>" */
size_t ir_custom_addr_format(uint64_t id, const uint8_t *data, size_t len, char *buf, size_t cap);

#endif
