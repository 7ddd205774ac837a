/*
 * iroh.h - the public API of libiroh, a C implementation of iroh 1.x.
 *
 * Conventions (they hold for every function below unless its comment says otherwise):
 *
 *  - Functions that can fail return an `int`: IROH_OK (0) or a negative IROH_ERR_* code.
 *    iroh_strerror() names a code; iroh_last_error() gives a one-line detail message
 *    for the most recent failure on the calling thread (e.g. "invalid symbol at 12").
 *  - Buffers are owned by the caller. Functions that write text take `buf` and `buflen`
 *    and always NUL-terminate on success; they fail with IROH_ERR_BUFFER_TOO_SMALL when
 *    the text does not fit. The *_LEN constants give sizes that always fit.
 *  - Opaque objects are created by iroh_<object>_new (or a parse function) and released
 *    by iroh_<object>_free, which accepts NULL.
 *  - Thread safety: functions on distinct objects may run concurrently from any thread.
 *    A single object may be read from several threads at once but not modified while
 *    another thread uses it. Nothing here blocks or does I/O except
 *    iroh_secret_key_generate (which reads the system's random source).
 *
 * Wire and text formats are those of iroh 1.0.x (iroh-base 1.0.2, iroh-tickets 1.0.0).
 */
#ifndef IROH_H
#define IROH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(IROH_BUILDING_LIBRARY) && defined(__GNUC__)
#define IROH_EXTERN __attribute__((visibility("default")))
#else
#define IROH_EXTERN
#endif

#define IROH_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------------------------ */
/* Errors                                                                               */
/* ------------------------------------------------------------------------------------ */

typedef enum iroh_error {
    IROH_OK = 0,
    IROH_ERR_INVALID_ARGUMENT = -1,  /* a NULL pointer, a bad option or an out-of-range value */
    IROH_ERR_NO_MEMORY = -2,         /* an allocation failed */
    IROH_ERR_BUFFER_TOO_SMALL = -3,  /* the caller's buffer cannot hold the result */
    IROH_ERR_INVALID_KEY = -4,       /* key text or key bytes that are not a valid key */
    IROH_ERR_INVALID_SIGNATURE = -5, /* a signature that does not verify (strictly) */
    IROH_ERR_INVALID_ADDR = -6,      /* a malformed socket address or relay URL */
    IROH_ERR_INVALID_TICKET = -7,    /* a ticket with a wrong prefix, bad base32 or bad bytes */
    IROH_ERR_IO = -8,                /* an operating-system call failed (see iroh_last_error) */
} iroh_error;

/* A static English name for an error code ("invalid ticket"); never NULL. */
IROH_EXTERN const char *iroh_strerror(int code);

/* The detail message of the most recent failure on this thread; "" if none.
 * Valid until the next failing call on the same thread. */
IROH_EXTERN const char *iroh_last_error(void);

/* The library version, e.g. "0.1.0". */
IROH_EXTERN const char *iroh_version(void);

/* ------------------------------------------------------------------------------------ */
/* Keys and EndpointIds                                                                 */
/* ------------------------------------------------------------------------------------ */

/* An Ed25519 secret key: the 32-byte seed of RFC 8032. */
typedef struct iroh_secret_key {
    uint8_t bytes[32];
} iroh_secret_key;

/* An EndpointId: the endpoint's 32-byte compressed Ed25519 public key. */
typedef struct iroh_endpoint_id {
    uint8_t bytes[32];
} iroh_endpoint_id;

/* An Ed25519 signature, R || S. */
typedef struct iroh_signature {
    uint8_t bytes[64];
} iroh_signature;

/* Text sizes including the terminating NUL. */
#define IROH_ID_HEX_LEN 65       /* 64 lowercase hex characters */
#define IROH_ID_SHORT_LEN 11     /* fmt_short: hex of the first 5 bytes */
#define IROH_ID_BASE32_LEN 53    /* RFC 4648 base32, lowercase, unpadded */
#define IROH_ID_Z32_LEN 53       /* z-base-32, as in DNS names and pkarr */
#define IROH_SIGNATURE_HEX_LEN 129

/* A new random secret key from the system's random source (getrandom). */
IROH_EXTERN int iroh_secret_key_generate(iroh_secret_key *out);

/* Parses a secret key as iroh does: exactly 64 characters are lowercase hex; anything
 * else is RFC 4648 base32 (case-insensitive, unpadded, 52 characters). */
IROH_EXTERN int iroh_secret_key_parse(const char *text, iroh_secret_key *out);

/* 64 lowercase hex characters. buflen >= 65. */
IROH_EXTERN int iroh_secret_key_to_hex(const iroh_secret_key *key, char *buf, size_t buflen);

/* The EndpointId (public key) of a secret key. */
IROH_EXTERN void iroh_secret_key_public(const iroh_secret_key *key, iroh_endpoint_id *out);

/* Signs msg with plain Ed25519 (no prehash, no context). */
IROH_EXTERN void iroh_secret_key_sign(const iroh_secret_key *key, const void *msg, size_t len,
                                      iroh_signature *out);

/* Makes an EndpointId from raw bytes. Fails with IROH_ERR_INVALID_KEY when the bytes are not
 * the encoding of a curve point (as iroh: small-order points and non-canonical y pass). */
IROH_EXTERN int iroh_endpoint_id_from_bytes(const uint8_t bytes[32], iroh_endpoint_id *out);

/* Parses an EndpointId as iroh's FromStr: 64 lowercase hex characters, or 52 characters of
 * case-insensitive RFC 4648 base32; the bytes must be a valid point. */
IROH_EXTERN int iroh_endpoint_id_parse(const char *text, iroh_endpoint_id *out);

/* Text forms: lowercase hex (iroh's Display), fmt_short, base32 and z-base-32. */
IROH_EXTERN int iroh_endpoint_id_to_hex(const iroh_endpoint_id *id, char *buf, size_t buflen);
IROH_EXTERN int iroh_endpoint_id_fmt_short(const iroh_endpoint_id *id, char *buf, size_t buflen);
IROH_EXTERN int iroh_endpoint_id_to_base32(const iroh_endpoint_id *id, char *buf, size_t buflen);
IROH_EXTERN int iroh_endpoint_id_to_z32(const iroh_endpoint_id *id, char *buf, size_t buflen);

/* Verifies a signature strictly, as ed25519-dalek's verify_strict: the key and R must not
 * be of small order, R must be canonically encoded, S must be below the group order.
 * IROH_OK or IROH_ERR_INVALID_SIGNATURE. */
IROH_EXTERN int iroh_endpoint_id_verify(const iroh_endpoint_id *id, const void *msg, size_t len,
                                        const iroh_signature *sig);

/* 1 if both ids are the same key, else 0. */
IROH_EXTERN int iroh_endpoint_id_equal(const iroh_endpoint_id *a, const iroh_endpoint_id *b);

/* ------------------------------------------------------------------------------------ */
/* Addresses                                                                            */
/* ------------------------------------------------------------------------------------ */

typedef enum iroh_transport_kind {
    IROH_TRANSPORT_RELAY = 0,  /* a relay server, by URL */
    IROH_TRANSPORT_IP = 1,     /* a UDP socket address */
    IROH_TRANSPORT_CUSTOM = 2, /* an address of a custom transport (experimental in iroh) */
} iroh_transport_kind;

/* An IP socket address: family 4 or 6; for IPv4 only ip[0..3] are used. Port in host order. */
typedef struct iroh_socket_addr {
    uint8_t family;
    uint8_t ip[16];
    uint16_t port;
} iroh_socket_addr;

/* One of an endpoint's addresses, as read from an iroh_endpoint_addr. Pointers are owned
 * by the address object and stay valid until it is modified or freed. */
typedef struct iroh_transport_addr {
    iroh_transport_kind kind;
    const char *relay_url;       /* RELAY: the normalized URL, NUL-terminated */
    iroh_socket_addr ip;         /* IP */
    uint64_t custom_id;          /* CUSTOM: transport id */
    const uint8_t *custom_data;  /* CUSTOM: opaque address bytes */
    size_t custom_len;
} iroh_transport_addr;

/* Socket address text as iroh (Rust) writes it: "1.2.3.4:5", "[2001:db8::1]:443".
 * IROH_SOCKET_ADDR_LEN always fits. */
#define IROH_SOCKET_ADDR_LEN 56
IROH_EXTERN int iroh_socket_addr_parse(const char *text, iroh_socket_addr *out);
IROH_EXTERN int iroh_socket_addr_to_string(const iroh_socket_addr *addr, char *buf,
                                           size_t buflen);

/* Normalizes a relay URL as iroh's RelayUrl does (WHATWG URL rules: lowercase scheme and
 * host, punycode, default port dropped, empty path "/"). Fails with IROH_ERR_INVALID_ADDR
 * for text that is not an absolute URL. */
IROH_EXTERN int iroh_relay_url_normalize(const char *url, char *buf, size_t buflen);

/* An EndpointAddr: an EndpointId and a set of transport addresses, kept in iroh's
 * canonical order (relays by URL, then IPv4, then IPv6, then custom) without duplicates. */
typedef struct iroh_endpoint_addr iroh_endpoint_addr;

IROH_EXTERN iroh_endpoint_addr *iroh_endpoint_addr_new(const iroh_endpoint_id *id);
IROH_EXTERN void iroh_endpoint_addr_free(iroh_endpoint_addr *addr);
IROH_EXTERN const iroh_endpoint_id *iroh_endpoint_addr_id(const iroh_endpoint_addr *addr);

/* Adding an address already present succeeds and changes nothing. */
IROH_EXTERN int iroh_endpoint_addr_add_relay(iroh_endpoint_addr *addr, const char *url);
IROH_EXTERN int iroh_endpoint_addr_add_ip(iroh_endpoint_addr *addr, const iroh_socket_addr *ip);
IROH_EXTERN int iroh_endpoint_addr_add_custom(iroh_endpoint_addr *addr, uint64_t id,
                                              const uint8_t *data, size_t len);

/* Number of transport addresses and the i-th of them (0-based, canonical order). */
IROH_EXTERN size_t iroh_endpoint_addr_len(const iroh_endpoint_addr *addr);
IROH_EXTERN int iroh_endpoint_addr_get(const iroh_endpoint_addr *addr, size_t i,
                                       iroh_transport_addr *out);

/* The first relay URL, or NULL when the address has none. */
IROH_EXTERN const char *iroh_endpoint_addr_relay_url(const iroh_endpoint_addr *addr);

/* ------------------------------------------------------------------------------------ */
/* Tickets                                                                              */
/* ------------------------------------------------------------------------------------ */

/* An EndpointTicket string: "endpoint" followed by the lowercase unpadded base32 of the
 * ticket bytes. With buf == NULL (or too small) *needed tells the size including the NUL;
 * needed may be NULL. */
IROH_EXTERN int iroh_endpoint_ticket_encode(const iroh_endpoint_addr *addr, char *buf,
                                            size_t buflen, size_t *needed);

/* Parses a ticket string exactly as iroh-tickets 1.0 does; on success *out is a new
 * address the caller frees. Errors: IROH_ERR_INVALID_TICKET with a detail message. */
IROH_EXTERN int iroh_endpoint_ticket_decode(const char *ticket, iroh_endpoint_addr **out);

#ifdef __cplusplus
}
#endif

#endif /* IROH_H */
