/* Address lookup in the endpoint (spec identity-tickets-discovery.md 4.4, 4.5): what the
 * builder configures, the sans-IO cores (the pkarr publisher's schedule, the resolver's
 * staggered DNS schedule and the state of one lookup), and the shell that runs them
 * (lookup_shell.c) beside the endpoint's I/O thread. */
#ifndef IR_ENDPOINT_LOOKUP_H
#define IR_ENDPOINT_LOOKUP_H

#include <stddef.h>
#include <stdint.h>

#include "iroh.h"

#define IR_LOOKUP_MAX_USER 8
#define IR_LOOKUP_USER_DATA_MAX 245 /* iroh's UserData::MAX_LENGTH */
#define IR_LOOKUP_DEFAULT_PKARR "https://dns.iroh.link/pkarr"
#define IR_LOOKUP_DEFAULT_ORIGIN "dns.iroh.link"

/* What iroh_endpoint_builder_* set (lookup_api.c). A string NULL with its *_set flag
 * means "off"; an unset flag means the default, unless IROH_C_ADDRESS_LOOKUP=none. */
typedef struct ir_lookup_config {
    int pkarr_set;
    char *pkarr_url; /* normalized http(s) URL */
    int origin_set;
    char *origin; /* a DNS name without the trailing dot */
    iroh_socket_addr dns_server; /* family 0: the nameservers of /etc/resolv.conf */
    int publish_addrs;
    int wait_home_relay; /* relays are configured: the first record waits for the home one */
    char user_data[IR_LOOKUP_USER_DATA_MAX + 1];
    int mdns;
    iroh_lookup_fn user[IR_LOOKUP_MAX_USER];
    void *user_ctx[IR_LOOKUP_MAX_USER];
    size_t n_user;
} ir_lookup_config;

/* Frees the strings of a configuration. */
void ir_lookup_config_clear(ir_lookup_config *c);
/* The effective configuration: defaults and IROH_C_ADDRESS_LOOKUP applied, strings
 * copied (clear it after). IROH_OK or IROH_ERR_NO_MEMORY. */
int ir_lookup_config_resolve(const ir_lookup_config *in, ir_lookup_config *out);

/* An http:// or https:// URL in its parts: host without brackets, port (80/443 when not
 * given), path (with the query) from its "/". 0, or -1 when it is no such URL. */
typedef struct ir_lookup_url {
    int tls;
    char host[256];
    char host_hdr[300]; /* the authority as written, for the Host header */
    uint16_t port;
    char path[1024];
} ir_lookup_url;
int ir_lookup_url_split(const char *url, ir_lookup_url *out);

/* ---- what is published ------------------------------------------------------------------ */

#define IR_LOOKUP_MAX_ADDRS 16
#define IR_LOOKUP_RELAY_MAX 256 /* as IR_ENDPOINT_INFO_RELAY_MAX */

typedef struct ir_lookup_record {
    char relay[IR_LOOKUP_RELAY_MAX]; /* "" when none */
    iroh_socket_addr addrs[IR_LOOKUP_MAX_ADDRS];
    size_t n_addrs;
    char user_data[IR_LOOKUP_USER_DATA_MAX + 1];
} ir_lookup_record;

/* 1 when the record says nothing (nothing is published then) */
int ir_lookup_record_empty(const ir_lookup_record *r);
int ir_lookup_record_equal(const ir_lookup_record *a, const ir_lookup_record *b);

/* ---- the publisher's schedule (sans-IO; time in ns of a monotonic clock) ------------------
 *
 * As iroh's PkarrPublisher (spec 4.4): a PUT as soon as there is something to publish
 * and whenever it changes; after a success again after 5 minutes; after a failure again
 * after k seconds, k = failures in a row (no cap). One PUT at a time. */

#define IR_LOOKUP_TTL 30
#define IR_LOOKUP_REPUBLISH_NS (300ull * 1000000000ull)

typedef struct ir_lookup_pub {
    ir_lookup_record want;   /* what should be published now */
    ir_lookup_record sent;   /* what the last successful PUT published */
    ir_lookup_record flight; /* what the PUT in flight publishes */
    int have_sent, in_flight;
    uint64_t due; /* the next PUT; UINT64_MAX: none */
    unsigned failures;
} ir_lookup_pub;

void ir_lookup_pub_init(ir_lookup_pub *p);
/* What the endpoint wants published now (its home relay, its addresses if they are
 * published, its user data): a change makes a PUT due at once. */
void ir_lookup_pub_set(ir_lookup_pub *p, const ir_lookup_record *r, uint64_t now);
/* 1 when a PUT of *out must start now (it is then in flight), else 0. */
int ir_lookup_pub_poll(ir_lookup_pub *p, uint64_t now, ir_lookup_record *out);
/* The PUT in flight ended: ok 1 (the relay accepted it) or 0. */
void ir_lookup_pub_done(ir_lookup_pub *p, int ok, uint64_t now);
/* When ir_lookup_pub_poll has something to do next; UINT64_MAX: not by itself. */
uint64_t ir_lookup_pub_next(const ir_lookup_pub *p);

/* ---- the DNS lookup's staggered attempts (sans-IO) -----------------------------------------
 *
 * As iroh's DnsAddressLookup (spec 4.5): attempts at 0, 200, 300, 600, 1000, 2000 and
 * 3000 ms after the start, each delay +-20 % (jitter[i] in [0, 2^32) maps to
 * 0.8 .. 1.2), each allowed 3 s; the first answer wins, and the lookup fails once every
 * attempt failed or ran out of time. */

#define IR_LOOKUP_DNS_ATTEMPTS 7
#define IR_LOOKUP_DNS_ATTEMPT_NS (3000ull * 1000000ull)

typedef enum ir_lookup_dns_state {
    IR_LOOKUP_DNS_RUNNING = 0,
    IR_LOOKUP_DNS_FOUND = 1,
    IR_LOOKUP_DNS_FAILED = 2,
} ir_lookup_dns_state;

typedef struct ir_lookup_dns {
    uint64_t at[IR_LOOKUP_DNS_ATTEMPTS];       /* when each attempt starts */
    uint64_t deadline[IR_LOOKUP_DNS_ATTEMPTS]; /* started + 3 s once started */
    uint8_t attempt[IR_LOOKUP_DNS_ATTEMPTS];   /* 0 waiting, 1 running, 2 ended */
    ir_lookup_dns_state state;
} ir_lookup_dns;

void ir_lookup_dns_start(ir_lookup_dns *d, uint64_t now,
                         const uint32_t jitter[IR_LOOKUP_DNS_ATTEMPTS]);
/* The index of an attempt to start now (it is then running), or -1; attempts past their
 * 3 s end here (and the lookup fails when none is left). */
int ir_lookup_dns_poll(ir_lookup_dns *d, uint64_t now);
/* Attempt i ended: found 1 (an answer with addresses) or 0 (an error, no record). An
 * attempt that already ran out of time changes nothing. */
void ir_lookup_dns_result(ir_lookup_dns *d, int i, int found);
/* The next time ir_lookup_dns_poll has something to do; UINT64_MAX once ended. */
uint64_t ir_lookup_dns_next(const ir_lookup_dns *d);

/* ---- the shell (lookup_shell.c) --------------------------------------------------------- */

typedef struct ir_lookup ir_lookup;

/* Starts the lookup thread of an endpoint (api: the endpoint whose address is published
 * and whose event callback hears the PUBLISH_* / LOOKUP_* events). cfg is the effective
 * configuration (ir_lookup_config_resolve; copied); ca_file: https certificates (NULL:
 * the system's store). IROH_OK, IROH_ERR_NO_MEMORY, IROH_ERR_IO. */
struct iroh_endpoint;
int ir_lookup_new(const ir_lookup_config *cfg, const iroh_secret_key *key, const char *ca_file,
                  struct iroh_endpoint *api, ir_lookup **out);
/* Stops (idempotent): no PUT or lookup starts after it, no event is reported, calls
 * blocked in ir_lookup_resolve return IROH_ERR_CLOSED; waits for the user's lookups that
 * run (the network jobs see it within 50 ms and end). Then free it (after every
 * ir_lookup_resolve call has returned); job threads may hold it a little longer. */
void ir_lookup_stop(ir_lookup *lk);
void ir_lookup_free(ir_lookup *lk);
/* The endpoint's address (home relay, direct addresses) changed: the lookup thread reads
 * it again and publishes what changed. Takes no lock (the I/O thread calls it with the
 * endpoint's mutex held, which comes after the lookup's); safe until ir_lookup_free. */
void ir_lookup_addr_changed(ir_lookup *lk);
/* 1 when at least one lookup service is configured (publishing aside). */
int ir_lookup_can_resolve(const ir_lookup *lk);

/* A lookup of id by every service at once (spec 4.5). Blocks the calling thread (never
 * call it on the I/O thread) until every service has ended, deadline (ns, ir_now_ns)
 * passed, or, with first, one service found something. *out: a new address with what was
 * found by then. more (may be NULL): called on a job thread or the lookup thread, without
 * any lock of the lookup's held, for each later service's find after the call returned.
 * With IROH_OK and more, *token_out is a token the caller must pass to exactly one of
 * ir_lookup_forget (no call of more after it returns, ctx is the caller's again) or
 * ir_lookup_keep (the services go on: more is called for each later find until every
 * service has ended or the lookup is stopped, then exactly once with found NULL, after
 * which ctx is never used again: that call may free it). Otherwise *token_out is NULL.
 * IROH_OK, IROH_ERR_NOT_FOUND, IROH_ERR_TIMEOUT (nothing by the deadline), IROH_ERR_CLOSED. */
typedef void (*ir_lookup_more_fn)(void *ctx, const iroh_endpoint_addr *found);
int ir_lookup_resolve(ir_lookup *lk, const iroh_endpoint_id *id, uint64_t deadline, int first,
                      ir_lookup_more_fn more, void *more_ctx, void **token_out,
                      iroh_endpoint_addr **out);
/* No more calls of that lookup's more function after this returns. */
void ir_lookup_forget(ir_lookup *lk, void *token);
/* Lets the lookup run on after the call (see ir_lookup_resolve); when it was stopped
 * already, more(ctx, NULL) is called here, on the calling thread. */
void ir_lookup_keep(ir_lookup *lk, void *token);

#endif
