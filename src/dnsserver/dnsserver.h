/* `iroh-c dns-server`: an iroh-dns-server-compatible DNS server and pkarr relay.
 *
 * Two parts, as the relay server:
 *
 *  - ir_dnss, the sans-IO core: takes one DNS message (UDP, TCP or DoH) or one complete
 *    HTTP request (head and body) with the current time and gives the answer's bytes. It
 *    owns the zone configuration (origins, SOA/NS/A/AAAA from the config), the PUT rate
 *    limiter and the counters, and uses the packet store (store.h). No sockets, no
 *    clocks: the times come from the caller (Unix microseconds for the packets' ages,
 *    monotonic nanoseconds for the rate limiter).
 *  - ir_dnss_server, the shell (server.c): UDP and TCP DNS listeners, the HTTP listener
 *    (pkarr, DoH, /healthz) and an optional metrics listener, one epoll loop, the clocks,
 *    the 10 s expiry tick; ir_dnss_server_stop may be called from a signal handler.
 *
 * DNS messages are parsed and built with ldns. What the core answers (iroh-dns-server's
 * node zone handler, spec identity-tickets-discovery.md 4.6):
 *  - `[<name>.]<z32 key>.<origin>` for every configured origin (the longest matching one):
 *    the records of the key's stored packet whose owner is `<name>.<z32>` (or `<name>`
 *    relative to the key), re-rooted under `<z32>.<origin>`, with the packet's TTLs;
 *    NOERROR without answers (and the SOA as authority) when the name exists with other
 *    types only, NXDOMAIN (with the SOA) for an unknown key, an expired packet or a name
 *    the packet does not have;
 *  - the origin itself: SOA, NS, A, AAAA from the configuration;
 *  - names under no origin: REFUSED; AXFR / IXFR: REFUSED; opcodes other than QUERY:
 *    NOTIMP; a message ldns cannot parse, or with other than one question: FORMERR (a
 *    message shorter than a header, or a response, gets nothing);
 *  - over UDP an answer longer than the client's limit (512 bytes, or its EDNS size up to
 *    1232) is cut to header and question with TC set; EDNS is answered with EDNS
 *    (version 0; a query of a higher EDNS version gets BADVERS, RFC 6891 6.1.3).
 * HTTP (iroh-dns-server's routes and status codes, spec 4.3, 4.6):
 *  - PUT /pkarr/<z32>: 204 stored (or an older packet kept), 400 bad key / payload
 *    (signature, size, DNS packet) / timestamp older than the 7-day expiry, 429 over the
 *    rate limit (per client IP, burst 2, a token every 4 s), 413 body over 1104 bytes;
 *  - GET /pkarr/<z32>: 200 application/x-pkarr-signed-packet, 404 unknown, 400 bad key;
 *  - GET /dns-query?dns=<base64url> and POST /dns-query (application/dns-message): RFC
 *    8484, Cache-Control max-age / s-maxage of the smallest answer TTL; 406 for an
 *    unsupported Accept, 415 for another POST Content-Type;
 *  - GET /healthz and /healthcheck: 200; everything else 404, other methods 405.
 * Errors carry JSON {"status":"400","detail":"..."}. */
#ifndef IR_DNSSERVER_DNSSERVER_H
#define IR_DNSSERVER_DNSSERVER_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "iroh.h"
#include "relay/http.h"
#include "store.h"

#define IR_DNSS_DEFAULT_ORIGIN "irohdns.example."
#define IR_DNSS_DEFAULT_SOA "irohdns.example hostmaster.irohdns.example 0 10800 3600 604800 3600"
#define IR_DNSS_MAX_ORIGINS 16
#define IR_DNSS_UDP_MAX 1232      /* our EDNS UDP payload size */
#define IR_DNSS_MAX_BODY 65535    /* largest HTTP body taken (a DoH POST) */

enum {
    IR_DNSS_UDP = 0,
    IR_DNSS_TCP = 1,
    IR_DNSS_HTTPS = 2, /* DoH */
};

enum {
    IR_DNSS_RATE_SIMPLE = 0,   /* per client IP (iroh's default) */
    IR_DNSS_RATE_SMART = 1,    /* per X-Forwarded-For / X-Real-IP / Forwarded IP, else client IP */
    IR_DNSS_RATE_DISABLED = 2,
};

typedef struct ir_dnss_config {
    const char *dns_listen;      /* "IP:PORT", UDP and TCP (shell) */
    const char *http_listen;     /* "IP:PORT"; NULL: no HTTP listener (shell) */
    const char *metrics_listen;  /* "IP:PORT"; NULL: none (shell) */
    const char *db_path;         /* NULL: an in-memory database */
    size_t cache_capacity;       /* 0: IR_DNSS_DEFAULT_CACHE */
    const char *origins[IR_DNSS_MAX_ORIGINS];
    size_t n_origins;            /* 0: IR_DNSS_DEFAULT_ORIGIN */
    const char *soa;             /* "mname rname serial refresh retry expire minimum"; NULL: default */
    uint32_t default_ttl;        /* accepted for iroh's config; (iroh uses fixed SOA/NS/A TTLs) */
    const char *rr_a, *rr_aaaa, *rr_ns; /* apex records; NULL: none */
    int rate_limit;              /* IR_DNSS_RATE_* */
    uint32_t rate_burst;         /* PUTs at once (2) */
    uint32_t rate_period_ms;     /* one more PUT every this (4000) */
} ir_dnss_config;

void ir_dnss_config_init(ir_dnss_config *cfg);

typedef struct ir_dnss_stats {
    /* iroh-dns-server's counters */
    uint64_t pkarr_publish_update, pkarr_publish_noop;
    uint64_t dns_requests, dns_requests_udp, dns_requests_https;
    uint64_t dns_lookup_success, dns_lookup_notfound, dns_lookup_error;
    uint64_t http_requests, http_requests_success, http_requests_error;
    /* ours */
    uint64_t dns_requests_tcp, dns_dropped, dns_truncated, dns_formerr, dns_refused;
    uint64_t pkarr_put_refused, pkarr_put_ratelimited;
    uint64_t tcp_accepts, tcp_refused;
    ir_dnss_store_stats store;
} ir_dnss_stats;

typedef struct ir_dnss ir_dnss;

/* The core over a store it does not own. Fails with IROH_ERR_INVALID_ARGUMENT naming a
 * bad origin / SOA / record. */
int ir_dnss_new(const ir_dnss_config *cfg, ir_dnss_store *store, ir_dnss **out);
void ir_dnss_free(ir_dnss *s);

/* Answers one DNS message that came over transport (IR_DNSS_*). Writes the response
 * (at most cap bytes; 65535 is always enough) to out: 1 with *out_len set, 0 when
 * nothing is to be sent (not a query). */
int ir_dnss_dns(ir_dnss *s, int transport, const uint8_t *msg, size_t len, uint64_t unix_us,
                uint8_t *out, size_t cap, size_t *out_len);

/* Answers one HTTP request (its parsed head and its body) from client_ip (16 bytes,
 * IPv4 mapped): the whole response, with Connection: close, appended to out. */
void ir_dnss_http(ir_dnss *s, const ir_http_request *req, const uint8_t *body, size_t body_len,
                  const uint8_t client_ip[16], uint64_t mono_ns, uint64_t unix_us, ir_buf *out);

/* The status the HTTP shell answers before a body is read: 413 for a Content-Length over
 * IR_DNSS_MAX_BODY (or over 1104 on a pkarr PUT), 400 for a bad one, 0 to go on; *body_len
 * is what to read. */
int ir_dnss_http_body_len(const ir_http_request *req, size_t *body_len);
/* An error response with that status (for the shell's own refusals: 400, 408, 413, 503). */
void ir_dnss_http_error(ir_dnss *s, int status, const char *detail, ir_buf *out);

/* Called by the shell at least every second: commits the batch of pending writes, and
 * every 10 s deletes the expired packets. */
void ir_dnss_tick(ir_dnss *s, uint64_t unix_us);

void ir_dnss_get_stats(const ir_dnss *s, ir_dnss_stats *out);
/* counters the shell keeps: add them here so that /metrics shows them */
void ir_dnss_count_tcp(ir_dnss *s, int accepted);
/* The counters as OpenMetrics text (`dns_server_*` as iroh-dns-server names them, then
 * ours); returns the length it needs (snprintf style). */
int ir_dnss_metrics_format(const ir_dnss_stats *st, char *buf, size_t cap);

/* ---- the shell (server.c) ----------------------------------------------------------- */

typedef struct ir_dnss_server ir_dnss_server;
int ir_dnss_server_new(const ir_dnss_config *cfg, ir_dnss_server **out);
/* where each listener is bound (for port 0) */
void ir_dnss_server_addrs(const ir_dnss_server *srv, iroh_socket_addr *dns, iroh_socket_addr *http,
                          iroh_socket_addr *metrics);
int ir_dnss_server_run(ir_dnss_server *srv);
void ir_dnss_server_stop(ir_dnss_server *srv); /* async-signal-safe */
void ir_dnss_server_get_stats(const ir_dnss_server *srv, ir_dnss_stats *out);
void ir_dnss_server_free(ir_dnss_server *srv);

#endif
