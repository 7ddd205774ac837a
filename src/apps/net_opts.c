/* The options and pieces shared by the network commands (listen, connect, resolve and
 * the tunnels): endpoint options into a builder, binding with the signal watcher, the
 * ticket, one-line reports of how a connection or transfer ended. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/net_opts.h"

int write_all_fd(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* a strictly parsed decimal number in [min, max]; 0 on success */
int parse_number(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

/* a one-line explanation of a failed connect */
void report_connect_error(int rc, double timeout_s)
{
    const char *d = iroh_last_error();
    if (rc == IROH_ERR_TIMEOUT && strstr(d, "no address found")) {
        fprintf(stderr, "iroh-c: timed out after %g s looking up the EndpointId: no address "
                        "lookup answered\n", timeout_s);
    } else if (rc == IROH_ERR_TIMEOUT) {
        const char *relay = strstr(d, " (relay ");
        fprintf(stderr, "iroh-c: timed out after %g s connecting to the peer%s\n", timeout_s,
                relay ? relay : "");
    } else if (rc == IROH_ERR_NOT_FOUND) {
        fprintf(stderr, "iroh-c: no address found for the EndpointId%s%s\n", *d ? ": " : "", d);
    } else if (rc == IROH_ERR_HANDSHAKE && strstr(d, "0x130")) {
        fprintf(stderr, "iroh-c: wrong key: the peer is not the endpoint the ticket names "
                        "(TLS unknown_ca): %s\n", d);
    } else if (rc == IROH_ERR_HANDSHAKE && strstr(d, "0x178")) {
        fprintf(stderr, "iroh-c: the peer does not speak this ALPN (no_application_protocol, 0x178)\n");
    } else {
        fprintf(stderr, "iroh-c: connect: %s: %s\n", iroh_strerror(rc), d);
    }
}

/* One line on stderr for a transfer that ended with rc (detail: its message): the
 * connection's close reason when it is closed (the peer's words, or the library's for a
 * timeout), else the stream error. Nothing after a signal: the user asked for the end. */
void report_end(iroh_connection *conn, int rc, const char *detail)
{
    if (cli_stop_signal())
        return;
    iroh_close_reason cr;
    iroh_connection_close_reason(conn, &cr);
    const char *why = cr.reason[0] ? cr.reason : detail;
    switch (cr.kind) {
    case IROH_CLOSE_APPLICATION:
        fprintf(stderr, "iroh-c: the peer closed the connection: %s (code %llu)\n",
                cr.reason[0] ? cr.reason : "no reason given", (unsigned long long)cr.code);
        return;
    case IROH_CLOSE_TIMED_OUT:
        fprintf(stderr, "iroh-c: connection lost: %s\n", *why ? why : "timed out");
        return;
    case IROH_CLOSE_TRANSPORT:
        fprintf(stderr, "iroh-c: connection failed: %s (%s transport error 0x%llx)\n",
                *why ? why : "no reason given", cr.by_peer ? "the peer's" : "a local",
                (unsigned long long)cr.code);
        return;
    case IROH_CLOSE_RESET:
        fprintf(stderr, "iroh-c: connection lost: the peer reset it (stateless reset)\n");
        return;
    default:
        break;
    }
    if (rc == IROH_ERR_STREAM_STOPPED)
        fprintf(stderr, "iroh-c: the peer stopped reading%s%s\n", *detail ? ": " : "", detail);
    else if (*detail)
        fprintf(stderr, "iroh-c: %s\n", detail);
    else
        fprintf(stderr, "iroh-c: %s\n", iroh_strerror(rc));
}

/* The address lookup options (listen, connect, resolve): 1 if argv[*i] was one
 * (consumed), 0 if not, -1 on a usage error (said on stderr). Values are checked when
 * they go into the builder (lookup_apply). */
int lookup_opt(net_opts *o, int argc, char **argv, int *i)
{
    int r;
    if (strcmp(argv[*i], "--publish-addrs") == 0) {
        o->publish_addrs = 1;
        return 1;
    }
    if (strcmp(argv[*i], "--mdns") == 0) {
        o->mdns = 1;
        return 1;
    }
    if (strcmp(argv[*i], "--no-lookup") == 0) {
        o->no_lookup = 1;
        return 1;
    }
    if ((r = cli_opt(argc, argv, i, "--pkarr-relay", &o->pkarr_relay)) != 0)
        return r;
    if ((r = cli_opt(argc, argv, i, "--dns-origin", &o->dns_origin)) != 0)
        return r;
    return cli_opt(argc, argv, i, "--dns-server", &o->dns_server);
}

/* The lookup options into the builder: 0, or an exit status (said on stderr) */
static int lookup_apply(const net_opts *o, iroh_endpoint_builder *b)
{
    if (o->no_lookup) {
        if (o->pkarr_relay || o->dns_origin || o->dns_server || o->publish_addrs || o->mdns)
            return cli_usage("--no-lookup excludes --pkarr-relay, --dns-origin, --dns-server, "
                             "--publish-addrs and --mdns%s", NULL);
        iroh_endpoint_builder_no_lookup(b);
        return 0;
    }
    if (o->pkarr_relay && iroh_endpoint_builder_pkarr_relay(b, o->pkarr_relay) != IROH_OK)
        return cli_usage("--pkarr-relay: '%s' is not an http:// or https:// URL", o->pkarr_relay);
    if (o->dns_origin && iroh_endpoint_builder_dns_origin(b, o->dns_origin) != IROH_OK)
        return cli_usage("--dns-origin: '%s' is not a domain name", o->dns_origin);
    if (o->dns_server) {
        iroh_socket_addr a;
        if (iroh_socket_addr_parse(o->dns_server, &a) != IROH_OK || a.port == 0 ||
            iroh_endpoint_builder_dns_server(b, o->dns_server) != IROH_OK)
            return cli_usage("--dns-server: '%s' is not an IP:PORT address", o->dns_server);
    }
    if (o->publish_addrs)
        iroh_endpoint_builder_publish_addrs(b, 1);
    if (o->mdns)
        iroh_endpoint_builder_mdns(b, 1);
    return 0;
}

/* 1 if argv[*i] was one of these options (consumed), 0 if not, -1 on a usage error
 * (said on stderr) */
int net_opt(net_opts *o, int argc, char **argv, int *i)
{
    const char *v;
    int r;
    if (strcmp(argv[*i], "--no-relay") == 0) {
        o->no_relay = 1;
        return 1;
    }
    if (strcmp(argv[*i], "--verbose") == 0) {
        o->verbose = 1;
        return 1;
    }
    if (strcmp(argv[*i], "--quiet") == 0) {
        o->quiet = 1;
        return 1;
    }
    if ((r = lookup_opt(o, argc, argv, i)) != 0)
        return r;
    if ((r = cli_opt(argc, argv, i, "--external-addr", &v)) != 0) {
        iroh_socket_addr a;
        static const uint8_t zero[16];
        if (r < 0)
            return -1;
        if (iroh_socket_addr_parse(v, &a) != IROH_OK || a.port == 0 ||
            memcmp(a.ip, zero, a.family == 4 ? 4 : 16) == 0) {
            cli_usage("--external-addr: '%s' is not an IP:PORT address with a specified IP "
                      "and port", v);
            return -1;
        }
        if (o->n_externals == 16) {
            cli_usage("at most 16 --external-addr options%s", NULL);
            return -1;
        }
        o->externals[o->n_externals++] = v;
        return 1;
    }
    if ((r = cli_opt(argc, argv, i, "--metrics-addr", &v)) != 0) {
        iroh_socket_addr a;
        if (r < 0)
            return -1;
        if (iroh_socket_addr_parse(v, &a) != IROH_OK) {
            cli_usage("--metrics-addr: '%s' is not an IP:PORT address", v);
            return -1;
        }
        o->metrics_addr = v;
        return 1;
    }
    if ((r = cli_opt(argc, argv, i, "--relay-quic-port", &v)) != 0) {
        double port;
        if (r < 0)
            return -1;
        if (parse_number(v, 0, 65535, &port) != 0 || port != (long)port) {
            cli_usage("--relay-quic-port takes a port number (0 turns it off), not '%s'", v);
            return -1;
        }
        o->quic_port = (long)port;
        return 1;
    }
    if ((r = cli_opt(argc, argv, i, "--relay-ca", &o->relay_ca)) != 0)
        return r;
    if ((r = cli_opt(argc, argv, i, "--relay-token", &o->relay_token)) != 0)
        return r;
    if ((r = cli_opt(argc, argv, i, "--secret-file", &o->secret_file)) != 0)
        return r;
    if ((r = cli_opt(argc, argv, i, "--relay", &v)) != 0) {
        if (r < 0)
            return -1;
        if (o->n_relays == 8) {
            cli_usage("at most 8 --relay options%s", NULL);
            return -1;
        }
        o->relays[o->n_relays++] = v;
        return 1;
    }
    if ((r = cli_opt(argc, argv, i, "--bind", &v)) != 0) {
        if (r < 0)
            return -1;
        if (o->n_binds == 2) {
            cli_usage("at most two --bind options (one IPv4, one IPv6)%s", NULL);
            return -1;
        }
        o->binds[o->n_binds++] = v;
        return 1;
    }
    return 0;
}

/* --verbose: one line on stderr each time a connection's selected path changes, and for
 * the address lookup's events: our record published (or not), what a lookup found (the
 * events come on the endpoint's I/O thread; a line is one write) */
static void on_path_event(void *ctx, const iroh_event *ev)
{
    (void)ctx;
    unsigned long long ms = (unsigned long long)(ev->elapsed_us + 500) / 1000;
    char text[IROH_SOCKET_ADDR_LEN], who[16];
    switch (ev->kind) {
    case IROH_EVENT_PATH_SELECTED:
        if (ev->relay_url) {
            fprintf(stderr, "iroh-c: path selected: relay %s (%llu ms)\n", ev->relay_url, ms);
        } else {
            iroh_socket_addr_to_string(&ev->path, text, sizeof text);
            fprintf(stderr, "iroh-c: path selected: direct %s (%llu ms)\n", text, ms);
        }
        return;
    case IROH_EVENT_PUBLISHED:
        fprintf(stderr, "iroh-c: published our record to the pkarr relay (HTTP %llu)\n",
                (unsigned long long)ev->code);
        return;
    case IROH_EVENT_PUBLISH_FAILED:
        if (ev->code)
            fprintf(stderr, "iroh-c: publishing our record failed (HTTP %llu); retrying\n",
                    (unsigned long long)ev->code);
        else
            fprintf(stderr, "iroh-c: publishing our record failed (no answer); retrying\n");
        return;
    case IROH_EVENT_LOOKUP_FOUND: {
        int has_ip = ev->path.family != 0; /* all zero: no direct address */
        iroh_endpoint_id_fmt_short(&ev->peer, who, sizeof who);
        if (has_ip)
            iroh_socket_addr_to_string(&ev->path, text, sizeof text);
        fprintf(stderr, "iroh-c: lookup: %s found %s:%s%s%s%s (%llu ms)\n",
                ev->lookup ? ev->lookup : "a lookup", who, ev->relay_url ? " relay " : "",
                ev->relay_url ? ev->relay_url : "", has_ip ? " direct " : "", has_ip ? text : "", ms);
        return;
    }
    case IROH_EVENT_LOOKUP_FAILED:
        iroh_endpoint_id_fmt_short(&ev->peer, who, sizeof who);
        fprintf(stderr, "iroh-c: lookup: nothing found for %s (%llu ms)\n", who, ms);
        return;
    default:
        return;
    }
}

/* The options into the builder: 0, or an exit status (said on stderr). Files named by
 * the options are checked here, at the start, not when they are first needed. */
static int net_apply(const net_opts *o, iroh_endpoint_builder *b)
{
    int rc;
    if (o->no_relay && o->n_relays)
        return cli_usage("--relay and --no-relay exclude each other%s", NULL);
    /* the identity: --secret-file, else IROH_SECRET (hex or base32), else a new random
     * key, said on stderr as dumbpipe does when stderr is a terminal (not with --quiet) */
    iroh_secret_key key;
    char made[IROH_ID_HEX_LEN] = ""; /* a new key, in hex (64 characters, as an id) */
    const char *env = getenv("IROH_SECRET");
    if (o->secret_file) {
        if ((rc = cli_read_secret_file(o->secret_file, &key)) != 0)
            return rc;
        iroh_endpoint_builder_secret_key(b, &key);
    } else if (env && *env) {
        if ((rc = iroh_secret_key_parse(env, &key)) != IROH_OK) {
            fprintf(stderr, "iroh-c: IROH_SECRET is not a secret key (64 hex or 52 base32 "
                            "characters): %s\n", iroh_last_error());
            return EXIT_USAGE;
        }
        iroh_endpoint_builder_secret_key(b, &key);
    } else if (!o->quiet && isatty(2)) {
        /* as dumbpipe: a new key, shown (once every option passed) so that the user can
         * keep this EndpointId; only to a person at a terminal: a secret does not belong
         * in the logs of scripts, whose stderr carries only what went wrong */
        if ((rc = iroh_secret_key_generate(&key)) != IROH_OK ||
            (rc = iroh_secret_key_to_hex(&key, made, sizeof made)) != IROH_OK)
            return cli_api_error("secret key", rc);
        iroh_endpoint_builder_secret_key(b, &key);
    }
    memset(&key, 0, sizeof key);
    for (int i = 0; i < o->n_binds; i++)
        if (iroh_endpoint_builder_bind_addr(b, o->binds[i]) != IROH_OK)
            return cli_usage("--bind: '%s' is not an IP:PORT address", o->binds[i]);
    for (int i = 0; i < o->n_externals; i++)
        if (iroh_endpoint_builder_external_addr(b, o->externals[i]) != IROH_OK)
            return cli_usage("--external-addr: '%s' is not an IP:PORT address with a "
                             "specified IP and port", o->externals[i]);
    if (o->verbose)
        iroh_endpoint_builder_event_callback(b, on_path_event, NULL);
    if (o->no_relay)
        iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    if (o->relay_ca) {
        if ((rc = cli_check_readable("--relay-ca", o->relay_ca)) != 0)
            return rc;
        iroh_endpoint_builder_relay_ca_file(b, o->relay_ca);
    }
    if (o->relay_token && (!*o->relay_token ||
                           iroh_endpoint_builder_relay_auth_token(b, o->relay_token) != IROH_OK))
        return cli_usage("--relay-token: a token is one word of printable characters%s", NULL);
    if (o->quic_port >= 0)
        iroh_endpoint_builder_relay_quic_port(b, (uint16_t)o->quic_port);
    for (int i = 0; i < o->n_relays; i++)
        if (iroh_endpoint_builder_relay_url(b, o->relays[i]) != IROH_OK)
            return cli_usage("--relay: '%s' is not a relay URL", o->relays[i]);
    if ((rc = lookup_apply(o, b)) != 0)
        return rc;
    if (*made) {
        fprintf(stderr, "iroh-c: using secret key %s (IROH_SECRET=<it> keeps this EndpointId)\n",
                made);
        memset(made, 0, sizeof made);
    }
    return 0;
}

/* Applies the options, starts the signal watcher and binds the endpoint (the builder is
 * freed either way): 0 and *ep, or the command's exit status with the reason on stderr. */
int net_bind(const net_opts *o, iroh_endpoint_builder *b, iroh_endpoint **ep)
{
    int rc = net_apply(o, b);
    if (rc != 0) {
        iroh_endpoint_builder_free(b);
        return rc;
    }
    if (cli_stop_start() != 0) {
        iroh_endpoint_builder_free(b);
        fprintf(stderr, "iroh-c: cannot set up signal handling: %s\n", strerror(errno));
        return 1;
    }
    rc = iroh_endpoint_bind(b, ep);
    iroh_endpoint_builder_free(b);
    if (rc != IROH_OK) {
        fprintf(stderr, "iroh-c: %s\n", iroh_last_error());
        cli_stop_end();
        return cli_stop_status(1);
    }
    return 0;
}

/* --alpn ALPN: 1 if consumed (added to alpns, duplicates skipped), 0 if another
 * argument, -1 on a usage error */
int alpn_opt(const char **alpns, size_t *n, int argc, char **argv, int *i)
{
    const char *v;
    int r = cli_opt(argc, argv, i, "--alpn", &v);
    if (r <= 0)
        return r;
    if (!*v || strlen(v) > 255) {
        cli_usage("--alpn takes 1 to 255 bytes%s", NULL);
        return -1;
    }
    for (size_t k = 0; k < *n; k++)
        if (strcmp(alpns[k], v) == 0)
            return 1;
    if (*n == MAX_ALPNS) {
        cli_usage("at most 16 ALPNs%s", NULL);
        return -1;
    }
    alpns[(*n)++] = v;
    return 1;
}

/* one line on stderr: the connection's path, RTT, datagram size and packet counts */
void print_stats(iroh_connection *conn)
{
    iroh_connection_stats st;
    iroh_connection_stats_get(conn, &st);
    iroh_socket_addr a;
    char where[600], url[512];
    int kind = iroh_connection_path(conn, &a, url, sizeof url);
    if (kind == 1) {
        snprintf(where, sizeof where, "relay %s", url);
    } else if (kind == 0) {
        char text[IROH_SOCKET_ADDR_LEN];
        iroh_socket_addr_to_string(&a, text, sizeof text);
        snprintf(where, sizeof where, "direct %s", text);
    } else {
        snprintf(where, sizeof where, "unknown");
    }
    fprintf(stderr,
            "iroh-c: connection stats: path %s, rtt %.1f ms, path mtu %llu, packets sent %llu, "
            "received %llu, lost %llu\n",
            where, (double)st.rtt_us / 1000.0, (unsigned long long)st.path_mtu,
            (unsigned long long)st.packets_sent, (unsigned long long)st.packets_received,
            (unsigned long long)st.packets_lost);
}

/* 1 if arg has the form of a bare EndpointId: 52 characters (base32), or 64 hex ones. A
 * ticket never has either form: "endpoint" and at least 34 bytes in base32 are 63
 * characters or more, and not hex. */
int looks_like_id(const char *arg)
{
    size_t n = strlen(arg);
    if (n == 52)
        return 1;
    if (n != 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdefABCDEF", arg[i]))
            return 0;
    return 1;
}

/* What connect dials: a ticket, or a bare EndpointId whose addresses the lookups find
 * (the endpoint resolves an address that holds only an id). 0, or an exit status (said
 * on stderr). */
int parse_target(const char *arg, iroh_endpoint_addr **out)
{
    int rc;
    if (looks_like_id(arg)) {
        iroh_endpoint_id id;
        if ((rc = iroh_endpoint_id_parse(arg, &id)) != IROH_OK)
            return cli_api_error("endpoint id", rc);
        if (!(*out = iroh_endpoint_addr_new(&id)))
            return cli_api_error("endpoint id", IROH_ERR_NO_MEMORY);
        return 0;
    }
    if ((rc = iroh_endpoint_ticket_decode(arg, out)) != IROH_OK)
        return cli_api_error("ticket", rc);
    return 0;
}

/* the endpoint's ticket: on stdout as its first line (echo), or on stderr (pipe) */
void print_ticket(iroh_endpoint *ep, int to_stdout)
{
    iroh_endpoint_addr *me;
    if (iroh_endpoint_get_addr(ep, &me) != IROH_OK)
        return;
    size_t need = 0;
    iroh_endpoint_ticket_encode(me, NULL, 0, &need);
    char *ticket = malloc(need);
    if (ticket && iroh_endpoint_ticket_encode(me, ticket, need, NULL) == IROH_OK) {
        if (to_stdout) {
            printf("%s\n", ticket);
            fflush(stdout);
            clearerr(stdout); /* nobody reads it (>&-, a closed pipe): serve anyway */
        } else {
            fprintf(stderr, "iroh-c: ticket: %s\n", ticket);
        }
    }
    free(ticket);
    iroh_endpoint_addr_free(me);
}

int dumbpipe_send_hello(iroh_send_stream *send)
{
    return iroh_send_stream_write_all(send, (const uint8_t *)DUMBPIPE_HELLO, DUMBPIPE_HELLO_LEN);
}

int dumbpipe_read_hello(iroh_recv_stream *recv)
{
    uint8_t got[DUMBPIPE_HELLO_LEN];
    int rc = iroh_recv_stream_read_exact(recv, got, sizeof got);
    if (rc != IROH_OK)
        return rc;
    return memcmp(got, DUMBPIPE_HELLO, DUMBPIPE_HELLO_LEN) == 0 ? IROH_OK : 1;
}

int net_router(iroh_endpoint *ep, const char *const *alpns, size_t n_alpns,
               iroh_protocol_handler fn, void *ctx, iroh_router **out)
{
    *out = NULL;
    iroh_router_builder *rb = iroh_router_builder_new(ep);
    int rc = rb ? IROH_OK : IROH_ERR_NO_MEMORY;
    for (size_t i = 0; i < n_alpns && rc == IROH_OK; i++)
        rc = iroh_router_builder_accept(rb, alpns[i], fn, ctx);
    if (rc != IROH_OK)
        iroh_router_builder_free(rb); /* not half a router: none */
    else
        rc = iroh_router_spawn(rb, out); /* consumes the builder */
    if (rc != IROH_OK) {
        fprintf(stderr, "iroh-c: router: %s\n", iroh_last_error());
        return 1;
    }
    return 0;
}
