/* Options and helpers shared by the network commands (net_opts.c). */
#ifndef IR_APPS_NET_OPTS_H
#define IR_APPS_NET_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "apps/cmds.h"

#define MAX_ALPNS 16

/* dumbpipe's protocol (n0-computer/dumbpipe): its ALPN, and the 5 bytes the side that
 * opens a bidirectional stream writes first; the accepting side reads and checks them
 * before any data (that is what makes the stream exist for the peer) */
#define DUMBPIPE_ALPN "DUMBPIPEV0"
#define DUMBPIPE_HELLO "hello"
#define DUMBPIPE_HELLO_LEN 5
/* the opener's side: writes the hello (IROH_OK, or the library's error) */
int dumbpipe_send_hello(iroh_send_stream *send);
/* the acceptor's side: reads the hello: IROH_OK if it is exactly "hello", 1 for other
 * bytes, else the stream's error (e.g. IROH_ERR_FINISHED_EARLY: it ended first) */
int dumbpipe_read_hello(iroh_recv_stream *recv);

/* the endpoint options of listen, connect and the tunnels: identity, relays, lookup */
typedef struct net_opts {
    const char *relays[8];
    int n_relays;
    int no_relay;
    const char *relay_ca;
    const char *relay_token;
    long quic_port; /* -1: default */
    const char *secret_file;
    const char *binds[2];
    int n_binds;
    const char *externals[16];
    int n_externals;
    int verbose;
    int quiet; /* --quiet: no progress line, no note of a generated secret key */
    /* address lookup: publishing and resolving */
    const char *pkarr_relay;
    const char *dns_origin;
    const char *dns_server;
    int publish_addrs;
    int mdns;
    int no_lookup;
    const char *metrics_addr; /* --metrics-addr IP:PORT (checked by net_opt); NULL: none */
} net_opts;

/* one of the endpoint options (net_opts above): 1 if argv[*i] was one (consumed), 0 if
 * not, -1 on a usage error (said on stderr) */
int net_opt(net_opts *o, int argc, char **argv, int *i);
/* the options into the builder (files they name are checked here), then starts the
 * signal watcher and binds (the builder is freed either way): 0 and *ep, or the exit
 * status with the reason on stderr */
int net_bind(const net_opts *o, iroh_endpoint_builder *b, iroh_endpoint **ep);
/* A router on ep with the same handler and ctx for every ALPN: 0 and *out, or 1 said on
 * stderr ("iroh-c: router: why"), with no router (the endpoint stays the caller's). */
int net_router(iroh_endpoint *ep, const char *const *alpns, size_t n_alpns,
               iroh_protocol_handler fn, void *ctx, iroh_router **out);
/* --alpn ALPN: 1 if consumed (added, duplicates skipped), 0 if another argument, -1 on a
 * usage error; at most MAX_ALPNS */
int alpn_opt(const char **alpns, size_t *n, int argc, char **argv, int *i);
/* lookup options alone (resolve): as net_opt does for the lookup fields */
int lookup_opt(net_opts *o, int argc, char **argv, int *i);

/* write(2) until done (EINTR retried): 0, or -1 with errno */
int write_all_fd(int fd, const uint8_t *p, size_t n);
/* a strictly parsed decimal number in [min, max]: 0 and *out, or -1 */
int parse_number(const char *s, double min, double max, double *out);
/* one line on stderr explaining a failed connect (timeout_s: the --timeout given) */
void report_connect_error(int rc, double timeout_s);
/* one line on stderr for a transfer that ended with rc (detail: its message) */
void report_end(iroh_connection *conn, int rc, const char *detail);
/* one line on stderr: the selected path, RTT, path MTU and packet counts */
void print_stats(iroh_connection *conn);
/* 1 if arg has the form of a bare EndpointId (52 base32 or 64 hex characters) */
int looks_like_id(const char *arg);
/* a ticket or a bare EndpointId into an address: 0, or an exit status (said on stderr) */
int parse_target(const char *arg, iroh_endpoint_addr **out);
/* the endpoint's ticket: on stdout as its first line, or on stderr as "iroh-c: ticket: " */
void print_ticket(iroh_endpoint *ep, int to_stdout);

/* --metrics-addr: after net_bind, serves the endpoint's metrics (iroh_endpoint_metrics_text)
 * over plain HTTP at GET /metrics (and /) on the address until net_metrics_stop; one
 * server per process. 0 (also without the option), or 1 when the address cannot be
 * bound (said on stderr). net_metrics_stop (idempotent, also when none runs) must come
 * before the endpoint is freed: the server reads it. */
int net_metrics_start(const net_opts *o, iroh_endpoint *ep);
void net_metrics_stop(void);
/* the option's line for the usage texts */
#define METRICS_HELP \
    "  --metrics-addr IP:PORT  serve the endpoint's counters in the Prometheus text format\n" \
    "                       at http://IP:PORT/metrics (iroh's metric names)\n"

/* the address lookup options of listen, connect and resolve, for their usage texts */
#define LOOKUP_HELP \
    "address lookup (publishing this endpoint's record, resolving ids; default: n0's\n" \
    "pkarr relay https://dns.iroh.link/pkarr and DNS origin dns.iroh.link through\n" \
    "/etc/resolv.conf, as iroh's n0 preset):\n" \
    "  --pkarr-relay URL    publish to and resolve from this pkarr relay (http:// or\n" \
    "                       https://, e.g. an 'iroh-c dns-server': http://HOST:PORT/pkarr)\n" \
    "  --dns-origin ORIGIN  resolve ids as TXT _iroh.<z32 id>.ORIGIN (default dns.iroh.link)\n" \
    "  --dns-server IP:PORT send those DNS queries here instead of /etc/resolv.conf's servers\n" \
    "  --publish-addrs      publish the direct addresses too (default: the home relay only)\n" \
    "  --mdns               announce and find endpoints on the local network (mDNS)\n" \
    "  --no-lookup          no address lookup at all: nothing published, nothing resolved\n"

#endif
