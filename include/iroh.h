/*
 * iroh.h - the public API of libiroh, a C implementation of iroh 1.x.
 *
 * Two kinds of functions:
 *
 *  - Values (keys, EndpointIds, signatures, addresses, tickets): computations on the
 *    caller's data. They never block and do no I/O, except iroh_secret_key_generate (the
 *    system's random source) and iroh_secret_key_save / _load (a file).
 *  - Networking (endpoints, incoming connections, connections, streams, the router). An
 *    endpoint runs an I/O thread of its own that does all its network I/O. Every call
 *    is safe from any thread. These block the calling thread (never the I/O thread)
 *    until they can complete, up to their time limit:
 *      iroh_endpoint_online, iroh_endpoint_connect / _connect_alpns (the handshake,
 *      and the address lookup before it when only an id is given), iroh_endpoint_resolve,
 *      iroh_endpoint_accept, iroh_connection_open_bi / _open_uni (while the peer's
 *      stream limit is reached), iroh_connection_accept_bi / _accept_uni,
 *      iroh_connection_read_datagram, iroh_connection_closed,
 *      iroh_send_stream_write / _write_all (while the send buffer and the peer's window
 *      are full), iroh_send_stream_flushed, iroh_recv_stream_read / _read_exact /
 *      _read_to_end, iroh_router_shutdown (until the handlers return) and
 *      iroh_endpoint_close / _free (until the I/O thread has stopped).
 *    The others return at once (they may wait briefly for the endpoint's lock).
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
 *    by iroh_<object>_free, which accepts NULL. Each handle is freed exactly once, and no
 *    call may start on a handle after it was freed.
 *  - Value objects, builders and incomings: functions on distinct objects may run
 *    concurrently; one object may be read from several threads at once but not modified
 *    or freed while another thread uses it.
 *
 * Time limits. Every blocking call has one. Calls with a timeout_ms argument take it
 * there (-1: none; 0: do not wait; below -1: IROH_ERR_INVALID_ARGUMENT, as the setters
 * below). open_bi / open_uni, writes and reads use the limit their handle carries
 * (iroh_connection_set_timeout, iroh_send_stream_set_timeout,
 * iroh_recv_stream_set_timeout; -1, none, by default), in the style of SO_RCVTIMEO;
 * connecting uses the builder's connect timeout (10 s). Past it a call fails with
 * IROH_ERR_TIMEOUT.
 *
 * Cancellation. Another thread (one that handles signals, say) ends blocked calls:
 *  - iroh_endpoint_close(ep) wakes every call blocked on the endpoint, its connections
 *    and their streams at once: iroh_endpoint_connect*, _accept and _online return
 *    IROH_ERR_CLOSED ("the endpoint was closed"), calls on connections and streams
 *    IROH_ERR_CONNECTION_CLOSED;
 *  - iroh_connection_close(c, code, reason) wakes every call blocked on c and its streams
 *    with IROH_ERR_CONNECTION_CLOSED and the close in the detail ("connection closed
 *    locally with application code 0x0: interrupted");
 *  - iroh_connection_closed returns IROH_OK in both cases. The peer sees an application
 *    close with the code (0 for an endpoint close), not a timeout.
 *
 * Freeing while another thread is blocked. Allowed for these handles, and the blocked
 * call returns at once:
 *  - a send or receive stream: the call on it returns IROH_ERR_CLOSED ("the stream was
 *    freed"); the memory goes when that call has left (a send stream freed under a
 *    write is reset, not finished: see iroh_send_stream_free);
 *  - a connection: calls on the connection itself (open_*, accept_*, read_datagram,
 *    closed) return IROH_ERR_CLOSED ("the connection was freed"), also when a stream or
 *    datagram arrived meanwhile; its streams stay valid handles that keep the
 *    connection open, and calls blocked on them go on;
 *  - an endpoint: iroh_endpoint_free closes it (waking every call as above) and waits
 *    until those threads have left the library. Its connection, stream and incoming
 *    handles must have been freed before (threads still blocked on them count as
 *    users: close first, let them return, free their handles, then free the endpoint).
 *
 * Wire and text formats are those of iroh 1.0.x (iroh-base 1.0.2, iroh-tickets 1.0.0).
 *
 * Diagnostics: the environment variable IROH_LOG sets how much the library logs to
 * stderr: error, warn, info, debug or trace (each includes the ones before it), or off;
 * case-insensitive; default warn. Another value is reported once on stderr (one line
 * naming it and the accepted ones) and the default used. IROH_C_HOLEPUNCHING=0|1|2 picks
 * the holepunching extensions endpoints offer (iroh_endpoint_builder_holepunching).
 * IROH_C_ADDRESS_LOOKUP=none turns off the n0 address lookup defaults (pkarr publishing
 * and resolving, DNS) that builder calls did not set (see "Address lookup").
 * SSLKEYLOGFILE=path appends
 * every TLS secret in NSS key log format (through GnuTLS), so that Wireshark or tshark
 * can decrypt captured QUIC packets.
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
    IROH_ERR_TIMEOUT = -9,           /* the operation's time limit passed */
    IROH_ERR_CONNECTION_CLOSED = -10, /* the connection is closed (iroh_connection_close_reason) */
    IROH_ERR_HANDSHAKE = -11,        /* the handshake failed: wrong key, ALPN, or TLS error */
    IROH_ERR_STREAM_RESET = -12,     /* the peer reset the stream (code: iroh_recv_stream_reset_code) */
    IROH_ERR_STREAM_STOPPED = -13,   /* the peer asked us to stop sending (STOP_SENDING) */
    IROH_ERR_FINISHED_EARLY = -14,   /* the stream ended before the bytes asked for */
    IROH_ERR_TOO_LONG = -15,         /* more data than the given limit */
    IROH_ERR_CLOSED = -16,           /* the endpoint (or router) is closed */
    IROH_ERR_UNSUPPORTED = -17,      /* not possible with this peer or build (e.g. datagrams) */
    IROH_ERR_STATE = -18,            /* not allowed now (e.g. writing after finish) */
    IROH_ERR_NOT_FOUND = -19,        /* no lookup found an address for the EndpointId */
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

/* Saves a key as one line of hex to a new file with mode 0600; refuses to overwrite an
 * existing file (IROH_ERR_IO with the reason). Loads a key saved so (or any file holding
 * one key in the forms iroh_secret_key_parse takes, surrounding whitespace allowed). */
IROH_EXTERN int iroh_secret_key_save(const iroh_secret_key *key, const char *path);
IROH_EXTERN int iroh_secret_key_load(const char *path, iroh_secret_key *out);

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

/* ------------------------------------------------------------------------------------ */
/* Endpoint                                                                             */
/* ------------------------------------------------------------------------------------ */

/* An endpoint: a QUIC socket identified by its EndpointId. It runs one I/O thread that
 * owns every connection of it; the functions below are safe to call from any thread,
 * and the blocking ones (see the top of this file) block the caller, never the I/O
 * thread.
 *
 * Ownership: iroh_endpoint_free frees the endpoint; every connection, stream and incoming
 * of it must be freed before. Objects are not reference counted by the caller: each
 * handle is freed exactly once (a connection stays alive inside the library while its
 * streams do). */
typedef struct iroh_endpoint_builder iroh_endpoint_builder;
typedef struct iroh_endpoint iroh_endpoint;
typedef struct iroh_incoming iroh_incoming;
typedef struct iroh_connection iroh_connection;
typedef struct iroh_send_stream iroh_send_stream;
typedef struct iroh_recv_stream iroh_recv_stream;

/* A builder with iroh's defaults: a random secret key, no ALPNs (accepts nothing), bound
 * to 0.0.0.0:0 and [::]:0 (IPv4 alone where the host has no IPv6), 5 s keep-alive,
 * 30 s idle timeout, 10 s connect timeout, n0's public relays (IROH_RELAY_MODE_DEFAULT)
 * with QUIC address discovery on their port 7842. */
IROH_EXTERN iroh_endpoint_builder *iroh_endpoint_builder_new(void);
IROH_EXTERN void iroh_endpoint_builder_free(iroh_endpoint_builder *b);
IROH_EXTERN int iroh_endpoint_builder_secret_key(iroh_endpoint_builder *b,
                                                 const iroh_secret_key *key);
/* Adds an ALPN this endpoint accepts connections for (in order of preference). */
IROH_EXTERN int iroh_endpoint_builder_alpn(iroh_endpoint_builder *b, const char *alpn);
/* Binds to "IP:PORT" (one IPv4 and/or one IPv6 address; the last of each family wins).
 * Once any is given the endpoint binds exactly those: "[::1]:P" alone opens no IPv4
 * socket, and it then reaches only peers with an IPv6 address (or through a relay). */
IROH_EXTERN int iroh_endpoint_builder_bind_addr(iroh_endpoint_builder *b, const char *addr);
IROH_EXTERN int iroh_endpoint_builder_keep_alive_ms(iroh_endpoint_builder *b, uint32_t ms);
IROH_EXTERN int iroh_endpoint_builder_idle_timeout_ms(iroh_endpoint_builder *b, uint32_t ms);
IROH_EXTERN int iroh_endpoint_builder_connect_timeout_ms(iroh_endpoint_builder *b, uint32_t ms);
/* Transport limits (iroh's defaults: 100 and 100 concurrent streams the peer may open,
 * 1.25 MB initial stream window growing up to 16 MiB, 65535-byte datagrams). */
IROH_EXTERN int iroh_endpoint_builder_max_streams(iroh_endpoint_builder *b, uint32_t bidi,
                                                  uint32_t uni);
IROH_EXTERN int iroh_endpoint_builder_stream_window(iroh_endpoint_builder *b, uint32_t initial,
                                                    uint32_t max);
IROH_EXTERN int iroh_endpoint_builder_max_datagram_size(iroh_endpoint_builder *b, uint32_t size);

/* With on != 0 the endpoint answers every new client with a QUIC Retry and keeps no state
 * until the client returns with the token (RFC 9000 8.1.2): it proves the client's address
 * at the cost of one round trip. Off by default, as in iroh. Clients always follow a
 * server's Retry. */
IROH_EXTERN int iroh_endpoint_builder_retry(iroh_endpoint_builder *b, int on);

/* Holepunching: which of iroh's extensions the endpoint offers its peers. mode 2 (the
 * default, as iroh): QUIC multipath (transport parameter initial_max_path_id,
 * draft-ietf-quic-multipath as iroh 1.0 speaks it) and n0's NAT traversal; 1: multipath
 * only; 0: neither, plain single-path QUIC (a relayed connection then stays relayed).
 * Each is used only when the peer offers it too. Without this call the environment
 * variable IROH_C_HOLEPUNCHING=0|1|2 chooses (2 when unset or invalid).
 * IROH_ERR_INVALID_ARGUMENT for another mode. */
IROH_EXTERN int iroh_endpoint_builder_holepunching(iroh_endpoint_builder *b, int mode);

/* Screening: called on the I/O thread once an incoming connection's peer is
 * authenticated; return 0 to accept it, or a non-zero application error code to close it
 * with that code (reason "refused"). Must not block or call back into the library. */
typedef uint64_t (*iroh_accept_filter)(void *ctx, const iroh_endpoint_id *peer,
                                       const uint8_t *alpn, size_t alpn_len);
IROH_EXTERN int iroh_endpoint_builder_accept_filter(iroh_endpoint_builder *b,
                                                    iroh_accept_filter fn, void *ctx);

/* A connection's events. The path events mirror iroh's (Connection::paths() and its
 * path events): a connection has one path (id 0) until multipath is negotiated, then
 * one per peer address in use (a relay path and direct ones); exactly one is "selected",
 * the one application data goes out on. */
typedef enum iroh_event_kind {
    IROH_EVENT_CONNECTED = 1,      /* a connection's handshake completed (path: its address) */
    IROH_EVENT_CLOSED = 2,         /* a connection closed (code, by_peer) */
    IROH_EVENT_PATH_CHANGED = 3,   /* the peer moved to a new address (NAT rebinding,
                                      migration); path: the new one, being validated */
    IROH_EVENT_PATH_VALIDATED = 4, /* that address answered a path challenge */
    IROH_EVENT_PATH_OPENED = 5,    /* a new path (multipath): path_id, its address */
    IROH_EVENT_PATH_SELECTED = 6,  /* the selected path changed: path_id and its address;
                                      first right after CONNECTED, then at each change
                                      (a switch between relay and direct, migration) */
    IROH_EVENT_PATH_ABANDONED = 7, /* a path was abandoned (code: the PATH_ABANDON code) */
    /* Address lookup (see "Address lookup" below). peer: our own id for PUBLISH_*, the id
     * looked up for LOOKUP_*; lookup: which service ("pkarr", "dns", "mdns", "user"). */
    IROH_EVENT_PUBLISHED = 8,      /* the pkarr relay accepted our record (code: the HTTP
                                      status, 204) */
    IROH_EVENT_PUBLISH_FAILED = 9, /* a PUT failed (code: the HTTP status, 0 when no answer
                                      came); it is retried after k s, k = failures in a row */
    IROH_EVENT_LOOKUP_FOUND = 10,  /* a lookup service found addresses of peer (path: the
                                      first direct one or all zero; relay_url: its relay or
                                      NULL); each service reports once per lookup */
    IROH_EVENT_LOOKUP_FAILED = 11, /* a lookup of peer ended and no service found anything */
    /* The endpoint's own address (iroh's Endpoint::watch_addr): its direct addresses or
     * its home relay changed (an interface came or went, QUIC address discovery found a
     * new public address, an external address was added or removed, the home relay
     * changed or went down). peer: our own id; relay_url: the home relay now (NULL: none);
     * path: the first direct address (all zero: none); code: the number of direct
     * addresses. iroh_endpoint_get_addr reads the whole address (e.g. for a fresh ticket);
     * not from the callback, which must not call into the library. */
    IROH_EVENT_ADDR_CHANGED = 12,
    IROH_EVENT_NET_REPORT = 13,    /* a net report completed and differs from the one before
                                      (or is the first): iroh_endpoint_net_report reads it
                                      (peer: our own id; no other field) */
} iroh_event_kind;

typedef struct iroh_event {
    iroh_event_kind kind;
    iroh_endpoint_id peer;
    int inbound;    /* 1: the peer dialed us */
    uint64_t code;  /* CLOSED: the close code; PATH_ABANDONED: the abandon code */
    int by_peer;    /* CLOSED: 1 if the peer closed */
    iroh_socket_addr path; /* CONNECTED, PATH_*: the peer's address on the path */
    const char *relay_url; /* the same when the path goes through a relay: its URL (and
                              path is all zero); NULL for a direct path. Valid during
                              the callback. */
    uint64_t path_id;      /* PATH_*: the path's id (0 without multipath) */
    uint64_t elapsed_us;   /* time since the connection's handshake began (a client's
                              connect call, a server's first packet of it); LOOKUP_*: since
                              the lookup began */
    const char *lookup;    /* PUBLISH_*, LOOKUP_FOUND: the service ("pkarr", "dns", "mdns",
                              "user"); NULL for other events. Static text. */
} iroh_event;

/* Called on the I/O thread for every event; must not block or call into the library. */
typedef void (*iroh_event_callback)(void *ctx, const iroh_event *ev);
IROH_EXTERN int iroh_endpoint_builder_event_callback(iroh_endpoint_builder *b,
                                                     iroh_event_callback fn, void *ctx);

/* Relays (spec: iroh-relay 1.0). DEFAULT uses n0's public relays, as iroh's N0 preset
 * (https://use1-1.relay.n0.iroh.link./ and the usw1-1, euc1-1 and aps1-1 ones); DISABLED
 * uses none (direct addresses only); CUSTOM the URLs given with
 * iroh_endpoint_builder_relay_url. The endpoint connects to its relays in the
 * background and keeps them connected: the one with the lowest latency (round trip of
 * the relay protocol's keepalive ping) becomes the home relay, advertised in
 * iroh_endpoint_get_addr and tickets, and peers can reach this endpoint through it by
 * EndpointId alone. Relays that cannot be reached never delay direct connections; the
 * endpoint keeps retrying them with backoff. Relays of peers' addresses are dialed on
 * demand. http:// URLs speak plain WebSocket (for local relays). */
typedef enum iroh_relay_mode {
    IROH_RELAY_MODE_DEFAULT = 0,
    IROH_RELAY_MODE_DISABLED = 1,
    IROH_RELAY_MODE_CUSTOM = 2,
} iroh_relay_mode;
IROH_EXTERN int iroh_endpoint_builder_relay_mode(iroh_endpoint_builder *b, iroh_relay_mode mode);
/* Adds a relay (normalized as iroh_relay_url_normalize; at most 8) and selects CUSTOM.
 * IROH_ERR_INVALID_ADDR for a malformed URL. */
IROH_EXTERN int iroh_endpoint_builder_relay_url(iroh_endpoint_builder *b, const char *url);
/* A Bearer token sent to every relay (relays with access control); NULL: none. */
IROH_EXTERN int iroh_endpoint_builder_relay_auth_token(iroh_endpoint_builder *b,
                                                       const char *token);

/* https relays: their certificates are checked against the system's trust store, or,
 * with this, against the PEM certificates of path instead (a private CA, a self-signed
 * relay). The file is read when a relay connection starts. NULL: the system store. */
IROH_EXTERN int iroh_endpoint_builder_relay_ca_file(iroh_endpoint_builder *b, const char *path);

/* QUIC address discovery: the endpoint learns its public address (as the home relay
 * sees it) over a QUIC connection from its UDP socket to the relay's UDP port, and adds
 * it to its direct addresses. https relays only (the relay's certificate is checked as
 * for its URL). port: that UDP port (default 7842, iroh's); 0 turns it off. */
IROH_EXTERN int iroh_endpoint_builder_relay_quic_port(iroh_endpoint_builder *b, uint16_t port);

/* Direct addresses. The endpoint gathers its own candidate addresses as iroh does: the
 * interfaces' addresses when bound to 0.0.0.0 / [::] (the regular ones; loopback and IPv4
 * link-local only when there is nothing else; never IPv6 link-local), a socket's address
 * when bound to a specific one, the public address QUIC address discovery found, and the
 * addresses configured here ("IP:PORT": a port forwarded on a router, a known public
 * mapping). They are in iroh_endpoint_get_addr and tickets, and every connection
 * advertises them to its peer for holepunching (with NAT traversal on, see
 * iroh_endpoint_builder_holepunching). The interfaces are read again when the system
 * reports a change (rtnetlink), and the connections get the new list.
 * builder_external_addr is repeatable (at most 16); IROH_ERR_INVALID_ADDR for a
 * malformed address, an unspecified IP or port 0. */
IROH_EXTERN int iroh_endpoint_builder_external_addr(iroh_endpoint_builder *b, const char *addr);

/* Address lookup: dialing by EndpointId alone, as iroh's address lookup services
 * (spec identity-tickets-discovery.md sections 4 and 5).
 *
 * Publishing. The endpoint publishes a signed pkarr record (a DNS packet of TXT records
 * "_iroh.<z-base-32 id>": relay=<home relay URL>, addr=<ip:port ...> when asked,
 * user-data=<text>) to its pkarr relay with HTTP PUT <pkarr relay>/<z32 id>: once bound
 * and whenever its home relay, its published addresses or its user data change, with a
 * TTL of 30 s, again every 5 minutes, and after a failed PUT again after k seconds (k =
 * failures in a row), as iroh's PkarrPublisher. Nothing is published while there is
 * nothing to say (no home relay, no published address, no user data). With relays
 * configured, the first record waits up to 5 s for the home relay, so that a published
 * record names it (iroh would put the direct addresses alone out first).
 *
 * Resolving. iroh_endpoint_connect / _connect_alpns with an address that holds only the
 * id (no relay, no direct address) first asks every configured lookup at once: DNS TXT
 * "_iroh.<z32 id>.<origin>" (through the servers of /etc/resolv.conf, or the one given
 * with iroh_endpoint_builder_dns_server; UDP, then TCP when the answer is truncated;
 * attempts at 0, 200, 300, 600, 1000, 2000 and 3000 ms, each +-20 %, each waiting up to
 * 3 s, as iroh's DnsAddressLookup), pkarr GET <pkarr relay>/<z32 id> (the signed packet is
 * verified for that id), mDNS when on, and the user's lookups. The connection starts with
 * the first answer; addresses found later are added to it as candidates (new paths,
 * validated before use; with multipath), also after the connect call returned: the
 * lookups that have not answered go on until each has answered or given up (the DNS
 * schedule's end, about 7 s; the pkarr GET's 10 s; mDNS's 10 s), then stop. A find after
 * the connection closed (or its handle was freed) or the endpoint closed is dropped.
 * Connecting fails with IROH_ERR_NOT_FOUND when every lookup ended without an
 * address, and the lookups count against the builder's connect timeout. Nothing here
 * blocks the endpoint's I/O thread: names (of the pkarr relay) are resolved and user
 * lookups run on threads of their own.
 *
 * Defaults, as iroh's N0 preset: publishing to and resolving from n0's pkarr relay
 * https://dns.iroh.link/pkarr, DNS lookup under the origin dns.iroh.link through the
 * system's resolver, only the home relay published (no direct addresses), mDNS off.
 * (n0's servers are not reachable from every network; tests use iroh-c dns-server.)
 * The environment variable IROH_C_ADDRESS_LOOKUP=none turns these defaults off (no
 * publishing, no pkarr, no DNS: an endpoint that sends nothing to n0's servers; the test
 * suite sets it); "n0" or unset keeps them; another value is reported once on stderr
 * and the defaults kept. Each explicit builder call below overrides the environment for
 * what it sets: with IROH_C_ADDRESS_LOOKUP=none and iroh_endpoint_builder_pkarr_relay
 * (b, url) the endpoint publishes to and resolves from url, and uses no DNS. */

/* The pkarr relay (an http:// or https:// URL, the base the z32 id is appended to, e.g.
 * "http://127.0.0.1:8080/pkarr"): publish to it and resolve from it. NULL: no pkarr
 * relay (neither publishing nor pkarr resolving). https relays' certificates are checked
 * as those of relays (iroh_endpoint_builder_relay_ca_file). IROH_ERR_INVALID_ADDR for a
 * URL that is not http(s)://HOST[:PORT]/PATH. */
IROH_EXTERN int iroh_endpoint_builder_pkarr_relay(iroh_endpoint_builder *b, const char *url);
/* The origin of DNS lookups: names "_iroh.<z32 id>.<origin>" are asked for (a DNS name,
 * a trailing dot optional, e.g. "dns.iroh.link"). NULL: no DNS lookup.
 * IROH_ERR_INVALID_ARGUMENT for a name that is not a valid DNS name. */
IROH_EXTERN int iroh_endpoint_builder_dns_origin(iroh_endpoint_builder *b, const char *origin);
/* The DNS server ("IP:PORT", e.g. "127.0.0.1:5353", "[::1]:53") to ask instead of the
 * nameservers of /etc/resolv.conf. NULL: the system's. IROH_ERR_INVALID_ADDR. */
IROH_EXTERN int iroh_endpoint_builder_dns_server(iroh_endpoint_builder *b, const char *ip_port);
/* With on != 0 the published record also names the endpoint's direct addresses (an
 * addr= TXT string each, as iroh writes them); off (the default, as iroh's publisher's
 * relay-only filter) it names the home relay only. */
IROH_EXTERN int iroh_endpoint_builder_publish_addrs(iroh_endpoint_builder *b, int on);
/* User data published with the record (user-data=, iroh's UserData): at most 245 bytes of
 * UTF-8 text; NULL or "": none. Published over mDNS too when on. IROH_ERR_TOO_LONG. */
IROH_EXTERN int iroh_endpoint_builder_user_data(iroh_endpoint_builder *b, const char *data);
/* mDNS on the local network (iroh-mdns-address-lookup: service _irohv1._udp.local. on
 * UDP 5353, 224.0.0.251 and ff02::fb): announce this endpoint (every direct address, the
 * home relay and user data, as iroh), answer queries, and resolve peers found on the
 * LAN: a lookup answers at once from what peers announced, else listens up to 10 s.
 * Off by default, as in iroh. IROH_C_ADDRESS_LOOKUP does not touch it. When the sockets
 * cannot be opened the endpoint works without mDNS (a warning is logged). */
IROH_EXTERN int iroh_endpoint_builder_mdns(iroh_endpoint_builder *b, int on);
/* Turns every lookup and publishing off (n0's defaults, a pkarr relay, DNS, mDNS and user
 * lookups set so far), as iroh's Builder::empty(); calls after it add again. */
IROH_EXTERN int iroh_endpoint_builder_no_lookup(iroh_endpoint_builder *b);
/* A lookup of the user's own, like iroh's AddressLookup trait. It is called on a thread
 * of the library (never the I/O thread, so it may block), once per lookup, with out an
 * address holding id alone: it adds what it knows of id (iroh_endpoint_addr_add_*) and
 * returns IROH_OK, or a negative IROH_ERR_* (IROH_ERR_NOT_FOUND) when it knows nothing.
 * It must not call the endpoint it serves, and must return within the connect timeout:
 * a late answer is dropped. Several may be added (at most 8), run at once. */
typedef int (*iroh_lookup_fn)(void *ctx, const iroh_endpoint_id *id, iroh_endpoint_addr *out);
IROH_EXTERN int iroh_endpoint_builder_address_lookup(iroh_endpoint_builder *b,
                                                     iroh_lookup_fn fn, void *ctx);

/* Binds the sockets and starts the I/O thread. The builder stays the caller's. */
IROH_EXTERN int iroh_endpoint_bind(const iroh_endpoint_builder *b, iroh_endpoint **out);

IROH_EXTERN void iroh_endpoint_get_id(const iroh_endpoint *ep, iroh_endpoint_id *out);
/* The endpoint's address: its id, its home relay once connected (see
 * iroh_endpoint_online), and its direct addresses (interfaces when bound to an
 * unspecified address, plus the public address QUIC address discovery found). The
 * caller frees it. */
IROH_EXTERN int iroh_endpoint_get_addr(iroh_endpoint *ep, iroh_endpoint_addr **out);

/* The same on a bound endpoint, like iroh's add_external_addr / remove_external_addr:
 * the connections are told at once. add: IROH_OK (also when already there),
 * IROH_ERR_INVALID_ADDR, IROH_ERR_BUFFER_TOO_SMALL beyond 16; remove: IROH_OK, or
 * IROH_ERR_STATE when the address was not added. IROH_ERR_CLOSED after close. */
IROH_EXTERN int iroh_endpoint_add_external_addr(iroh_endpoint *ep, const char *addr);
IROH_EXTERN int iroh_endpoint_remove_external_addr(iroh_endpoint *ep, const char *addr);
/* Reads the interfaces' addresses again now (as on a network change the system reports
 * itself), e.g. after the application learned of a change. IROH_ERR_CLOSED after close. */
IROH_EXTERN int iroh_endpoint_network_change(iroh_endpoint *ep);

/* Waits up to timeout_ms (-1: forever) until the home relay is connected (at once when
 * relays are disabled). IROH_ERR_TIMEOUT; IROH_ERR_CLOSED once the endpoint is closed
 * (also with relays disabled or a home relay connected). */
IROH_EXTERN int iroh_endpoint_online(iroh_endpoint *ep, int timeout_ms);
/* Copies the home relay's URL into buf. IROH_ERR_STATE when there is none (yet),
 * IROH_ERR_BUFFER_TOO_SMALL. */
IROH_EXTERN int iroh_endpoint_home_relay(iroh_endpoint *ep, char *buf, size_t len);

/* The net report (iroh's net_report::Report): what the endpoint finds out about its
 * network from its configured relays. A report runs at bind, again every 60 s and after
 * iroh_endpoint_network_change, each within 5 s: QUIC address discovery over IPv4 and
 * IPv6 to each https relay (the first 5; on the relay's QUIC port, see
 * iroh_endpoint_builder_relay_quic_port), HTTP(S) GET <relay>/ping for latency (at 200,
 * 300, 400 ms; in the first report and every 5 minutes), and in the first report the
 * captive-portal check: plain HTTP GET /generate_204 at one relay (port 80 of an https
 * relay's host, as iroh; an http:// relay's own port). Tri-state fields are 1, 0 or -1
 * (unknown, iroh's None). */
#define IROH_NET_REPORT_MAX_RELAYS 8
typedef struct iroh_net_report_relay {
    const char *url;              /* normalized; valid while the endpoint lives */
    uint64_t latency_ipv4_us;     /* QAD over IPv4: the connection's round trip; 0: none */
    uint64_t latency_ipv6_us;     /* QAD over IPv6 */
    uint64_t latency_https_us;    /* GET /ping, connect and TLS included */
} iroh_net_report_relay;
typedef struct iroh_net_report {
    uint64_t generation; /* grows with every report that differs from the one before */
    int udp_v4, udp_v6;  /* a QAD round trip completed over IPv4 / IPv6 */
    int mapping_varies_by_dest_ipv4; /* relays saw different addresses (needs two) */
    int mapping_varies_by_dest_ipv6;
    int has_global_v4, has_global_v6;
    iroh_socket_addr global_v4, global_v6; /* our public address as the first relay saw it */
    const char *preferred_relay; /* the lowest latency (sticky unless another is below
                                    2/3 of it), NULL: none answered; valid as url */
    int captive_portal;
    size_t n_relays;
    iroh_net_report_relay relays[IROH_NET_REPORT_MAX_RELAYS];
} iroh_net_report;
/* Copies the last complete report. IROH_ERR_STATE before the first one completed (or
 * without relays, or with the net report off); IROH_ERR_CLOSED after close. Any thread. */
IROH_EXTERN int iroh_endpoint_net_report(iroh_endpoint *ep, iroh_net_report *out);
/* Waits up to timeout_ms (-1: forever) for a report of a generation above `after`
 * (0: any report) and copies it. IROH_ERR_TIMEOUT, IROH_ERR_STATE without a net report,
 * IROH_ERR_CLOSED. */
IROH_EXTERN int iroh_endpoint_net_report_wait(iroh_endpoint *ep, uint64_t after, int timeout_ms,
                                              iroh_net_report *out);
typedef enum iroh_net_report_mode {
    IROH_NET_REPORT_OFF = 0,
    IROH_NET_REPORT_ON = 1,         /* the default */
    IROH_NET_REPORT_NO_CAPTIVE = 2, /* on, without the captive-portal check */
} iroh_net_report_mode;
IROH_EXTERN int iroh_endpoint_builder_net_report(iroh_endpoint_builder *b, int mode);

/* ---- What the endpoint sees: watchers, remote info, metrics ---- */

/* The own-address watcher. A counter that grows by one each time the endpoint's address
 * (iroh_endpoint_get_addr: its direct addresses and home relay) changes, the moment the
 * IROH_EVENT_ADDR_CHANGED event is raised; 0 until the endpoint first has an address (its
 * sockets' or interfaces' addresses, seen in the I/O thread's first rounds). A program
 * without a callback compares it with the value it last saw, or waits for a change. */
IROH_EXTERN uint64_t iroh_endpoint_addr_generation(iroh_endpoint *ep);
/* Blocks until the generation is above `after` (0: the first look) or timeout_ms passed
 * (-1: no limit); *generation (may be NULL) gets it. IROH_ERR_TIMEOUT, IROH_ERR_CLOSED
 * (also when the endpoint is closed while waiting), IROH_ERR_INVALID_ARGUMENT. The
 * address itself: iroh_endpoint_get_addr. Loop: wait(g), get_addr, print a ticket, g = *generation. */
IROH_EXTERN int iroh_endpoint_addr_wait(iroh_endpoint *ep, uint64_t after, int timeout_ms,
                                        uint64_t *generation);

/* What the endpoint knows of a peer, as iroh's Endpoint::remote_info: every address it
 * has for the peer and where each came from, whether one is in use, the latency and when
 * the peer was last heard. A snapshot, not updated. */
typedef enum iroh_addr_source {
    IROH_ADDR_SOURCE_APP = 1 << 0,        /* given to connect (a ticket, the application) */
    IROH_ADDR_SOURCE_LOOKUP = 1 << 1,     /* found by an address lookup (see `lookup`) */
    IROH_ADDR_SOURCE_HOLEPUNCH = 1 << 2,  /* the peer advertised it for holepunching (n0
                                             NAT traversal's ADD_ADDRESS) */
    IROH_ADDR_SOURCE_CONNECTION = 1 << 3, /* a path of a connection with the peer: the
                                             address it reached us from or we it at */
} iroh_addr_source;

#define IROH_REMOTE_MAX_ADDRS 16
#define IROH_RELAY_URL_LEN 256

typedef struct iroh_remote_addr {
    iroh_transport_kind kind;            /* IROH_TRANSPORT_IP or IROH_TRANSPORT_RELAY */
    iroh_socket_addr ip;                 /* IP */
    char relay_url[IROH_RELAY_URL_LEN];  /* RELAY: the relay's URL */
    unsigned sources;                    /* iroh_addr_source bits: every way we learned it */
    const char *lookup;                  /* LOOKUP: the last service that found it ("pkarr",
                                            "dns", "mdns", "user"); else NULL. Static text. */
    int active;                          /* a path of an open connection uses it now
                                            (iroh's TransportAddrUsage::Active) */
    uint64_t rtt_us;                     /* the smoothed RTT of the path on it, last known;
                                            0: none measured */
    int64_t last_seen_ms;                /* ms since a packet of the peer last came on it;
                                            -1: never */
} iroh_remote_addr;

typedef struct iroh_remote_info {
    iroh_endpoint_id id;
    size_t n_addrs;                          /* addrs[0 .. n_addrs-1]: the active ones first */
    iroh_remote_addr addrs[IROH_REMOTE_MAX_ADDRS];
    char relay_url[IROH_RELAY_URL_LEN];      /* the peer's relay as last learned ("" none) */
    uint64_t latency_us;                     /* the RTT of the selected path of its newest
                                                open connection, else the last known; 0:
                                                unknown */
    int64_t last_seen_ms;                    /* ms since anything last came from the peer;
                                                -1: never */
    unsigned connections;                    /* open connections with the peer now */
    int conn_type;                           /* the newest open connection's selected path:
                                                IROH_PATH_DIRECT or IROH_PATH_RELAY; -1 when
                                                there is none */
} iroh_remote_info;

/* Fills *out. IROH_ERR_NOT_FOUND when the endpoint has never had an address of the peer
 * nor a connection with it. The endpoint keeps what it learned for the 256 peers it
 * used last (at most IROH_REMOTE_MAX_ADDRS addresses each, the oldest dropped). */
IROH_EXTERN int iroh_endpoint_remote_info(iroh_endpoint *ep, const iroh_endpoint_id *id,
                                          iroh_remote_info *out);

/* Metrics: a snapshot of the endpoint's counters, named as iroh names them (its metrics
 * groups "socket" and "net_report": "socket_send_ipv4", ...) where iroh has the
 * counter, "irohc_" names for the rest. */
typedef enum iroh_metric_kind {
    IROH_METRIC_COUNTER = 0, /* only grows */
    IROH_METRIC_GAUGE = 1,   /* a current value */
} iroh_metric_kind;

typedef struct iroh_metric {
    const char *name;  /* static text */
    const char *help;  /* static text, one line */
    iroh_metric_kind kind;
    uint64_t value;
} iroh_metric;

/* Fills up to cap entries of out and returns how many metrics there are (out may be NULL
 * when cap is 0); the list and its order are the same for every call. 0 for NULL ep. */
IROH_EXTERN size_t iroh_endpoint_metrics(iroh_endpoint *ep, iroh_metric *out, size_t cap);

/* The same as text in the Prometheus / OpenMetrics exposition format, as iroh-metrics
 * writes it ("# HELP", "# TYPE", counters' samples with the suffix _total, a final
 * "# EOF" line). With buf NULL (or too small: IROH_ERR_BUFFER_TOO_SMALL) *needed tells
 * the size including the NUL; needed may be NULL. */
IROH_EXTERN int iroh_endpoint_metrics_text(iroh_endpoint *ep, char *buf, size_t buflen,
                                           size_t *needed);

/* Connects to addr speaking alpn; blocks until the handshake completes. An address with
 * neither a relay nor a direct address (the id alone), or none this endpoint can use
 * (say IPv6 only without an IPv6 socket, relays disabled), is looked up (see "Address
 * lookup"; IROH_ERR_NOT_FOUND when no lookup finds it, IROH_ERR_INVALID_ADDR when none is
 * configured). The first
 * flight goes to all of the address's direct addresses and its relay at once; the
 * connection starts on whichever answers first. With holepunching on (see
 * iroh_endpoint_builder_holepunching) and the peer agreeing, a connection that starts on
 * the relay opens direct paths to the addresses the peer advertises and selects one
 * once validated, keeping the relay path as a backup (iroh_connection_paths, the
 * PATH_* events); without it a relay path stays relayed. Errors: IROH_ERR_HANDSHAKE (wrong
 * key, ALPN refused; see iroh_last_error), IROH_ERR_TIMEOUT, IROH_ERR_CONNECTION_CLOSED. */
IROH_EXTERN int iroh_endpoint_connect(iroh_endpoint *ep, const iroh_endpoint_addr *addr,
                                      const char *alpn, iroh_connection **out);
/* The same offering several ALPNs (e.g. protocol versions, newest first); the server picks
 * by its own preference; iroh_connection_alpn tells which. */
IROH_EXTERN int iroh_endpoint_connect_alpns(iroh_endpoint *ep, const iroh_endpoint_addr *addr,
                                            const char *const *alpns, size_t n_alpns,
                                            iroh_connection **out);

/* Asks every configured lookup (see "Address lookup" above) for id at once and waits
 * until all have ended or timeout_ms passed (-1: until all have ended, which the DNS
 * schedule bounds to about 7 s, mDNS's listening to 10 s; 0 is refused); *out is a new address (the caller frees
 * it) with the union of what they found by then. IROH_ERR_NOT_FOUND when nothing was
 * found (also when no lookup is configured), IROH_ERR_CLOSED, IROH_ERR_INVALID_ARGUMENT. */
IROH_EXTERN int iroh_endpoint_resolve(iroh_endpoint *ep, const iroh_endpoint_id *id,
                                      int timeout_ms, iroh_endpoint_addr **out);

/* Waits up to timeout_ms (-1: forever) for an incoming connection. IROH_ERR_TIMEOUT, or
 * IROH_ERR_CLOSED once the endpoint is closed.
 *
 * The endpoint runs the handshakes of incoming connections on its I/O thread, all at
 * once; accept hands out only connections whose handshake completed (and that the
 * accept filter let through), in the order they completed, so a slow or silent peer
 * never delays another. Up to 128 such connections wait for accept; beyond that new ones
 * are closed with CONNECTION_REFUSED ("too many connections waiting to be accepted"). */
IROH_EXTERN int iroh_endpoint_accept(iroh_endpoint *ep, int timeout_ms, iroh_incoming **out);

/* An incoming connection before the application decides on it: its handshake is done and
 * the peer authenticated. Each of accept, refuse and ignore frees the incoming. */
/* The peer's address; IROH_ERR_STATE when the connection came through a relay. */
IROH_EXTERN int iroh_incoming_remote_addr(const iroh_incoming *inc, iroh_socket_addr *out);
/* Returns the connection at once (IROH_ERR_CLOSED if the endpoint was closed meanwhile).
 * The peer may have closed it since; the connection's calls then say so. */
IROH_EXTERN int iroh_incoming_accept(iroh_incoming *inc, iroh_connection **out);
/* Closes it with the transport error CONNECTION_REFUSED (0x2), reason "refused". */
IROH_EXTERN void iroh_incoming_refuse(iroh_incoming *inc);
/* Forgets it without sending anything (the peer finds out when its next packet gets a
 * stateless reset, or by its idle timeout). */
IROH_EXTERN void iroh_incoming_ignore(iroh_incoming *inc);

/* Closes every connection (application code 0, as iroh) and stops the I/O thread after
 * the CONNECTION_CLOSE frames are sent. Safe from any thread, idempotent (a second
 * caller returns once the first has finished). Every thread blocked in a call of the
 * endpoint wakes at once: iroh_endpoint_connect*, iroh_endpoint_accept and
 * iroh_endpoint_online return IROH_ERR_CLOSED ("the endpoint was closed"); calls on its
 * connections and streams return IROH_ERR_CONNECTION_CLOSED (same detail; a connection
 * that had closed before, by a timeout or a code, keeps saying how);
 * iroh_connection_closed returns IROH_OK. Later calls fail the same way. */
IROH_EXTERN void iroh_endpoint_close(iroh_endpoint *ep);
/* Closes (if needed), waits until the threads that were blocked in calls of the endpoint
 * have returned from them, and frees. Every connection, stream and incoming handle of the
 * endpoint must have been freed before, and no call may start on it or them after. */
IROH_EXTERN void iroh_endpoint_free(iroh_endpoint *ep);

/* ------------------------------------------------------------------------------------ */
/* Connection                                                                           */
/* ------------------------------------------------------------------------------------ */

IROH_EXTERN void iroh_connection_remote_id(const iroh_connection *c, iroh_endpoint_id *out);
/* The negotiated ALPN as text (NUL-terminated; buflen 256 always fits). */
IROH_EXTERN int iroh_connection_alpn(const iroh_connection *c, char *buf, size_t buflen);

/* Opening blocks while the peer's stream limit is reached, up to the connection's time
 * limit (iroh_connection_set_timeout; IROH_ERR_TIMEOUT); accepting blocks until the peer
 * opens a stream (timeout_ms -1: forever). A stream the peer opens becomes acceptable
 * when its first data (or FIN) arrives. */
/* The time limit, in the style of SO_RCVTIMEO, of each open_bi / open_uni on this handle:
 * -1 (the default) waits as long as it takes, 0 fails at once when the call would wait.
 * Calls that take a timeout_ms of their own keep it. IROH_ERR_INVALID_ARGUMENT below -1. */
IROH_EXTERN int iroh_connection_set_timeout(iroh_connection *c, int timeout_ms);
IROH_EXTERN int iroh_connection_open_bi(iroh_connection *c, iroh_send_stream **send,
                                        iroh_recv_stream **recv);
IROH_EXTERN int iroh_connection_open_uni(iroh_connection *c, iroh_send_stream **send);
IROH_EXTERN int iroh_connection_accept_bi(iroh_connection *c, int timeout_ms,
                                          iroh_send_stream **send, iroh_recv_stream **recv);
IROH_EXTERN int iroh_connection_accept_uni(iroh_connection *c, int timeout_ms,
                                           iroh_recv_stream **recv);

/* Unreliable datagrams (RFC 9221). send fails with IROH_ERR_UNSUPPORTED if the peer takes
 * none or len is over iroh_connection_max_datagram_size, and IROH_ERR_NO_MEMORY; a
 * datagram that finds the send queue full is dropped (IROH_OK), as the network could drop
 * it. read blocks up to timeout_ms and
 * cuts datagrams longer than cap (*len is the copied length). */
IROH_EXTERN int iroh_connection_send_datagram(iroh_connection *c, const void *data, size_t len);
IROH_EXTERN int iroh_connection_read_datagram(iroh_connection *c, int timeout_ms, void *buf,
                                              size_t cap, size_t *len);
IROH_EXTERN size_t iroh_connection_max_datagram_size(const iroh_connection *c);

/* Closes with an application error code and reason (does not block). Safe while other
 * threads are blocked on the connection or its streams: they wake at once and return
 * IROH_ERR_CONNECTION_CLOSED, detail e.g. "connection closed locally with application
 * code 0x0: interrupted" (iroh_connection_closed returns IROH_OK). */
IROH_EXTERN void iroh_connection_close(iroh_connection *c, uint64_t code, const char *reason);
/* Waits until the connection is closed (by either side or a timeout); IROH_OK or
 * IROH_ERR_TIMEOUT (IROH_ERR_CLOSED if another thread frees the handle meanwhile). */
IROH_EXTERN int iroh_connection_closed(iroh_connection *c, int timeout_ms);

typedef enum iroh_close_kind {
    IROH_CLOSE_NONE = 0,             /* still open */
    IROH_CLOSE_LOCAL = 1,            /* we closed it (iroh_connection_close / endpoint close) */
    IROH_CLOSE_APPLICATION = 2,      /* the peer closed with an application code */
    IROH_CLOSE_TRANSPORT = 3,        /* a transport or TLS error (either side); code: an
                                        RFC 9000 20.1 transport error code, 0x100 + the TLS
                                        alert for a TLS error (the error detail of a call
                                        names it, e.g. "0x2 (CONNECTION_REFUSED)") */
    IROH_CLOSE_TIMED_OUT = 4,        /* idle timeout; reason e.g. "timed out: no packets from
                                        the peer for 30 s" (the negotiated timeout) */
    IROH_CLOSE_RESET = 5,            /* stateless reset from the peer */
} iroh_close_kind;

typedef struct iroh_close_reason {
    iroh_close_kind kind;
    int by_peer;
    uint64_t code;
    char reason[256];
} iroh_close_reason;

IROH_EXTERN void iroh_connection_close_reason(const iroh_connection *c, iroh_close_reason *out);

typedef struct iroh_connection_stats {
    uint64_t rtt_us, min_rtt_us;
    uint64_t cwnd, bytes_in_flight;
    uint64_t packets_sent, packets_received, packets_lost;
    uint64_t bytes_sent, bytes_received;
    uint64_t path_mtu; /* UDP payload size in use on the path: 1200, more once probed */
    int retried;       /* the handshake went through a QUIC Retry (address validation) */
} iroh_connection_stats;

IROH_EXTERN void iroh_connection_stats_get(const iroh_connection *c, iroh_connection_stats *out);
IROH_EXTERN uint64_t iroh_connection_rtt_us(const iroh_connection *c);
/* The connection's selected path: 0 and *addr for a direct one; 1 and the relay's URL in
 * relay_url (if not NULL, len bytes) for a relayed one. */
IROH_EXTERN int iroh_connection_path(iroh_connection *c, iroh_socket_addr *addr,
                                     char *relay_url, size_t len);

/* The connection's paths, mirroring iroh's Connection::paths(): one (id 0) without
 * multipath; with it, each open path (a relay path, direct ones) and those abandoned
 * but not yet gone. */
typedef enum iroh_path_kind {
    IROH_PATH_DIRECT = 0, /* UDP to the peer's IP address */
    IROH_PATH_RELAY = 1,  /* through a relay server */
} iroh_path_kind;

typedef struct iroh_path_info {
    uint64_t id;           /* the path id (0 without multipath) */
    iroh_path_kind kind;
    iroh_socket_addr addr; /* DIRECT: the peer's address on it; RELAY: all zero */
    const char *relay_url; /* RELAY: the relay's URL (valid while the endpoint lives);
                              DIRECT: NULL */
    uint64_t rtt_us;       /* smoothed RTT on this path */
    int selected;          /* application data goes out on it now (exactly one, while
                              the connection is open) */
    int validated;         /* the peer answered on it (handshake or path challenge) */
    int abandoned;         /* abandoned; it goes away soon */
    uint64_t packets_sent, packets_received, packets_lost;
    uint64_t bytes_sent, bytes_received;
} iroh_path_info;

/* Fills up to cap entries of out (by path id) and returns how many paths there are (more
 * than cap: call again with more room); 0 for NULL arguments (out may be NULL when cap
 * is 0). */
IROH_EXTERN size_t iroh_connection_paths(iroh_connection *c, iroh_path_info *out, size_t cap);

/* Frees the handle. Its streams stay usable and keep the connection open until they are
 * freed too; once the connection handle and all its stream handles are freed, a
 * connection still open is closed with code 0 (as dropping the last handle does in
 * iroh). Threads blocked in calls on the connection itself (open_*, accept_*,
 * read_datagram, closed) wake and return IROH_ERR_CLOSED ("the connection was freed"),
 * never a stream or datagram that arrived meanwhile; calls blocked on its streams go
 * on. */
IROH_EXTERN void iroh_connection_free(iroh_connection *c);

/* ------------------------------------------------------------------------------------ */
/* Streams                                                                              */
/* ------------------------------------------------------------------------------------ */

IROH_EXTERN uint64_t iroh_send_stream_id(const iroh_send_stream *s);
IROH_EXTERN uint64_t iroh_recv_stream_id(const iroh_recv_stream *s);

/* The time limit, in the style of SO_SNDTIMEO / SO_RCVTIMEO, of each blocking call on this
 * stream handle (write, write_all; read, read_exact, read_to_end): -1 (the default) waits
 * as long as it takes, 0 fails at once when the call would wait; a call that runs out
 * returns IROH_ERR_TIMEOUT. The limit covers the whole call. iroh_send_stream_flushed
 * keeps its own timeout_ms. IROH_ERR_INVALID_ARGUMENT below -1. */
IROH_EXTERN int iroh_send_stream_set_timeout(iroh_send_stream *s, int timeout_ms);
IROH_EXTERN int iroh_recv_stream_set_timeout(iroh_recv_stream *s, int timeout_ms);

/* write blocks until at least one byte is buffered and stores the count in *written
 * (after IROH_ERR_TIMEOUT it is 0: nothing was queued, there was no room at the
 * deadline); a write that blocked resumes once half the stream's send buffer is free, so
 * it then takes a large piece at once. write_all blocks until all are
 * (after IROH_ERR_TIMEOUT what it queued stays queued and will be sent: the stream is
 * then at an unknown offset, so reset it or write on knowing that).
 * IROH_ERR_STREAM_STOPPED if the peer stopped it, IROH_ERR_NO_MEMORY when the send buffer
 * cannot grow (what was taken before stays queued; *written says how much). */
IROH_EXTERN int iroh_send_stream_write(iroh_send_stream *s, const void *data, size_t len,
                                       size_t *written);
IROH_EXTERN int iroh_send_stream_write_all(iroh_send_stream *s, const void *data, size_t len);
/* Marks the end of the stream (does not wait for delivery). */
IROH_EXTERN int iroh_send_stream_finish(iroh_send_stream *s);
/* Waits until the peer has acknowledged everything up to the FIN (or timeout).
 * IROH_ERR_STREAM_STOPPED if the peer stopped the stream before that (not all of it was
 * delivered; the code is in the detail), IROH_ERR_STATE after iroh_send_stream_reset. */
IROH_EXTERN int iroh_send_stream_flushed(iroh_send_stream *s, int timeout_ms);
IROH_EXTERN int iroh_send_stream_reset(iroh_send_stream *s, uint64_t code);
/* Frees the handle; an unfinished stream is finished (as dropping it in iroh): what was
 * written so far is delivered, then the end. Safe while another thread is blocked in a
 * call on this stream: that call returns IROH_ERR_CLOSED ("the stream was freed") and
 * the memory goes when it has left. If that call is a write or write_all, its data was
 * cut short, so the stream is reset with code 0 instead of finished: the peer sees
 * IROH_ERR_STREAM_RESET, not a clean end after part of the data. */
IROH_EXTERN void iroh_send_stream_free(iroh_send_stream *s);

/* read blocks until data, the end, or an error: *n = 0 at the end of the stream.
 * After IROH_ERR_TIMEOUT from read_exact or read_to_end, the bytes they had read are
 * lost to the caller (the stream goes on after them). */
IROH_EXTERN int iroh_recv_stream_read(iroh_recv_stream *s, void *buf, size_t cap, size_t *n);
/* exactly len bytes, or IROH_ERR_FINISHED_EARLY */
IROH_EXTERN int iroh_recv_stream_read_exact(iroh_recv_stream *s, void *buf, size_t len);
/* everything to the end into a new buffer (free with free()); IROH_ERR_TOO_LONG if the
 * stream holds more than limit bytes (the stream is then stopped with code 0). */
IROH_EXTERN int iroh_recv_stream_read_to_end(iroh_recv_stream *s, size_t limit, uint8_t **out,
                                             size_t *len);
IROH_EXTERN uint64_t iroh_recv_stream_reset_code(const iroh_recv_stream *s);
/* Asks the peer to stop sending (STOP_SENDING with code); what arrives is discarded. A
 * stream stopped before its end has none to report: every read on it, also one blocked
 * in another thread when it was stopped, fails with IROH_ERR_STATE ("the stream was
 * stopped"). After the end was read it changes nothing. */
IROH_EXTERN int iroh_recv_stream_stop(iroh_recv_stream *s, uint64_t code);
/* Frees the handle; an unfinished stream is stopped with code 0. Safe while another
 * thread is blocked in a call on this stream, as iroh_send_stream_free. */
IROH_EXTERN void iroh_recv_stream_free(iroh_recv_stream *s);

/* ------------------------------------------------------------------------------------ */
/* Router                                                                               */
/* ------------------------------------------------------------------------------------ */

/* A protocol handler runs on its own thread for each accepted connection of its ALPN (at
 * most iroh_router_builder_max_handlers at once), the counterpart of iroh's
 * ProtocolHandler::accept. The router frees the connection when the handler returns
 * (closing it with code 0 if the handler left it open). Return 0, or non-zero to have
 * the router log the failure. */
typedef int (*iroh_protocol_handler)(void *ctx, iroh_connection *conn);

typedef struct iroh_router_builder iroh_router_builder;
typedef struct iroh_router iroh_router;

/* The router takes the endpoint: iroh_router_shutdown closes it, iroh_router_free frees it. */
IROH_EXTERN iroh_router_builder *iroh_router_builder_new(iroh_endpoint *ep);
IROH_EXTERN int iroh_router_builder_accept(iroh_router_builder *rb, const char *alpn,
                                           iroh_protocol_handler fn, void *ctx);
/* At most n handlers run at once (n > 0; default 1024), each on its thread. A connection
 * that comes while n are running is closed at once with application code 1 and reason
 * "too many connections" (its peer sees that close); a place is free again as soon as a
 * handler returns. */
IROH_EXTERN int iroh_router_builder_max_handlers(iroh_router_builder *rb, uint32_t n);
/* Starts the accept loop; consumes the builder (also on failure). Connections whose ALPN
 * has no handler are closed with code 0, as iroh's router does. */
IROH_EXTERN int iroh_router_spawn(iroh_router_builder *rb, iroh_router **out);
/* Frees a builder that will not be spawned (NULL is ignored); the endpoint stays the
 * caller's. */
IROH_EXTERN void iroh_router_builder_free(iroh_router_builder *rb);
IROH_EXTERN iroh_endpoint *iroh_router_endpoint(const iroh_router *r);
/* Stops accepting (within 200 ms), closes the connections of running handlers with
 * application code 0 and reason "shutting down" (so handlers blocked on them return
 * and the peers see an application close), waits for the handlers to return, then
 * closes the endpoint. A handler blocked on something other than its connection delays
 * this until it returns. A handler may call it: it then waits for the other handlers,
 * not for the one calling (iroh_router_free joins that one later). Safe from any thread;
 * a second caller returns once the first has finished (a handler's at once). */
IROH_EXTERN int iroh_router_shutdown(iroh_router *r);
/* Shuts down if needed, waits for every handler to return, then frees the router and its
 * endpoint. Not from a handler of the router. */
IROH_EXTERN void iroh_router_free(iroh_router *r);

#ifdef __cplusplus
}
#endif

#endif /* IROH_H */
