/* iroh-c listen / connect on the public API (include/iroh.h): an echo service, and a
 * "dumb pipe" that carries stdin/stdout over one bidirectional stream.
 *
 * Threads: the command's own (dialing or accepting, then reading the stream into
 * stdout), one reading stdin into the stream (it polls stdin together with a wake pipe,
 * so it can always be joined), the signal watcher of stop.c, and the library's. Every
 * blocking library call ends when the watcher closes the connection or the endpoint. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/net_opts.h"
#include "apps/progress.h"

#define IO_CHUNK 65536

/* what a busy dumb-pipe listener tells further clients */
#define BUSY_CODE 1
#define BUSY_REASON "busy: this listener serves one connection"
/* what a dumbpipe listener tells a peer whose stream does not start with the hello */
#define HELLO_CODE 2
#define HELLO_REASON "invalid handshake: the stream did not start with \"hello\""
/* how long a peer may take to send its hello, once its stream is open */
#define HELLO_TIMEOUT_MS 10000
#define HELLO_TIMEOUT_REASON "invalid handshake: no \"hello\" within 10 s"
#define HELLO_SHORT_REASON "invalid handshake: the stream ended inside the \"hello\""
#define HELLO_RESET_REASON "invalid handshake: the stream was reset before its \"hello\""

/* Waits until fd has input (or its end) or until woken: by wake (if >= 0) or by a signal.
 * 1: read fd now; 0: woken. */
static int wait_input(int fd, int wake)
{
    struct pollfd p[3] = {{fd, POLLIN, 0}, {cli_stop_fd(), POLLIN, 0}, {wake, POLLIN, 0}};
    for (;;) {
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1; /* let read() say what is wrong */
        }
        if (p[1].revents || p[2].revents)
            return 0;
        return 1;
    }
}

/* ---- the pipe: stdin -> send stream on a thread, recv stream -> stdout here --------- */

typedef struct pump {
    iroh_send_stream *send;
    int wake; /* read end of the pipe that ends the thread */
    int recv_only; /* stdin is not read: the stream is finished at once */
    progress *prog;
    int rc;
    char detail[300];
} pump;

static void *stdin_to_stream(void *arg)
{
    pump *p = arg;
    uint8_t *buf = malloc(IO_CHUNK);
    if (!buf) {
        p->rc = IROH_ERR_NO_MEMORY;
        snprintf(p->detail, sizeof p->detail, "out of memory");
        return NULL;
    }
    while (!p->recv_only) {
        if (!wait_input(0, p->wake))
            goto out; /* the transfer ended (or a signal): nothing more to do */
        ssize_t n = read(0, buf, IO_CHUNK);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0) {
            p->rc = IROH_ERR_IO;
            snprintf(p->detail, sizeof p->detail, "cannot read stdin: %s", strerror(errno));
            iroh_send_stream_reset(p->send, 1); /* the peer must not take it as complete */
            goto out;
        }
        if (n == 0)
            break;
        if ((p->rc = iroh_send_stream_write_all(p->send, buf, (size_t)n)) != IROH_OK)
            break;
        progress_sent(p->prog, (uint64_t)n);
    }
    if (p->rc == IROH_OK)
        p->rc = iroh_send_stream_finish(p->send);
    /* closing the connection drops what is not yet delivered: wait until the peer has
     * acknowledged all of it (or the connection ends) */
    if (p->rc == IROH_OK)
        p->rc = iroh_send_stream_flushed(p->send, -1);
    if (p->rc != IROH_OK)
        snprintf(p->detail, sizeof p->detail, "%s", iroh_last_error());
out:
    free(buf);
    return NULL;
}

/* The stream into stdout until its end; *out_closed when stdout went away (EPIPE). */
static int stream_to_stdout(iroh_recv_stream *recv, progress *prog, int *out_closed,
                            char *detail, size_t len)
{
    uint8_t *buf = malloc(IO_CHUNK);
    if (!buf) {
        snprintf(detail, len, "out of memory");
        return IROH_ERR_NO_MEMORY;
    }
    int rc;
    for (;;) {
        size_t n;
        if ((rc = iroh_recv_stream_read(recv, buf, IO_CHUNK, &n)) != IROH_OK) {
            snprintf(detail, len, "%s", iroh_last_error());
            break;
        }
        if (n == 0)
            break;
        if (write_all_fd(1, buf, n) != 0) {
            if (errno == EPIPE) {
                *out_closed = 1;
            } else {
                rc = IROH_ERR_IO;
                snprintf(detail, len, "cannot write to stdout: %s", strerror(errno));
            }
            break;
        }
        progress_received(prog, n);
    }
    free(buf);
    return rc;
}

typedef struct pipe_result {
    int rc;              /* IROH_OK, or the first error */
    char detail[300];    /* its message */
    int output_closed;   /* stdout went away: a quiet end */
} pipe_result;

/* Pipes stdin/stdout over the stream pair of conn (recv_only: stdin is not read, the
 * send stream is finished at once); prog counts the bytes. The stdin thread is always
 * joined before this returns, so the caller may free the streams. */
static void pipe_streams(iroh_connection *conn, iroh_send_stream *send, iroh_recv_stream *recv,
                         int recv_only, progress *prog, pipe_result *res)
{
    memset(res, 0, sizeof *res);
    int wake[2];
    if (pipe2(wake, O_CLOEXEC) != 0) {
        res->rc = IROH_ERR_IO;
        snprintf(res->detail, sizeof res->detail, "pipe: %s", strerror(errno));
        return;
    }
    pump p = {send, wake[0], recv_only, prog, IROH_OK, ""};
    pthread_t th;
    if (pthread_create(&th, NULL, stdin_to_stream, &p) != 0) {
        res->rc = IROH_ERR_IO;
        snprintf(res->detail, sizeof res->detail, "cannot start a thread");
        close(wake[0]);
        close(wake[1]);
        return;
    }
    int rc = stream_to_stdout(recv, prog, &res->output_closed, res->detail, sizeof res->detail);
    if (res->output_closed || rc != IROH_OK) {
        /* the transfer is over: tell the peer, and end the stdin thread, wherever it
         * waits (on stdin: the wake pipe; in the library: the closed connection) */
        if (res->output_closed)
            iroh_recv_stream_stop(recv, 0);
        iroh_connection_close(conn, 0, res->output_closed ? "output closed" : "transfer failed");
        ssize_t w = write(wake[1], "", 1);
        (void)w;
    }
    pthread_join(th, NULL);
    close(wake[0]);
    close(wake[1]);
    if (res->output_closed) {
        res->rc = IROH_OK;
    } else if (rc != IROH_OK) {
        res->rc = rc;
    } else if (p.rc != IROH_OK) {
        res->rc = p.rc;
        snprintf(res->detail, sizeof res->detail, "%s", p.detail);
    }
}

/* ---- options both commands take: identity and relays ---------------------------------- */

/* ---- connect ---------------------------------------------------------------------------- */

const char USAGE_CONNECT[] =
    "usage: iroh-c connect TICKET [--alpn ALPN] [options]\n"
    "       iroh-c connect ID [--alpn ALPN] [options]\n"
    "\n"
    "Dials the endpoint of TICKET (its relay and all its direct addresses at once), or of\n"
    "the EndpointId ID (64 hex or 52 base32 characters) at the addresses the address\n"
    "lookups find for it (see below and 'iroh-c resolve'; the first answers are dialed,\n"
    "later ones added to the attempt; --timeout covers the lookup). It sends\n"
    "stdin on one bidirectional stream, writes what comes back to stdout, and closes the\n"
    "connection once both directions are done. A closed stdout ends the transfer quietly\n"
    "(status 0); SIGINT and SIGTERM close the connection (\"interrupted\") and exit with\n"
    "130 and 143. Failures say why on one line and exit 1.\n"
    "Without --alpn it speaks dumbpipe's protocol (ALPN " DUMBPIPE_ALPN ": the stream starts\n"
    "with the 5 bytes \"" DUMBPIPE_HELLO "\", which the listener checks), so 'iroh-c listen' and\n"
    "'dumbpipe listen' both take it; with --alpn the stream carries stdin alone.\n"
    "When stderr is a terminal (and stdout is not), it shows a progress line: bytes each\n"
    "way, rate, path.\n"
    "\n"
    "options:\n"
    "  --alpn ALPN          speak this protocol instead, with no hello (repeatable:\n"
    "                       offered by preference)\n"
    "  --recv-only          send nothing: stdin is not read, our side is finished at once\n"
    "  --quiet              no progress line, no note of a generated secret key\n"
    "  --timeout SECS       give up connecting after SECS (default 10)\n"
    "  --streams N          send all of stdin on each of N streams of one connection\n"
    "  --stats              the selected path, RTT, path MTU and packet counts on stderr\n"
    "                       at the end\n"
    "  --verbose            a line on stderr each time the selected path changes\n"
    "                       (\"iroh-c: path selected: direct IP:PORT (N ms)\" or \"relay URL\",\n"
    "                       N from the start of the handshake), and for what the address\n"
    "                       lookups found (\"iroh-c: lookup: dns found ID: relay URL (N ms)\")\n"
    "  --secret-file FILE   this endpoint's secret key (default: IROH_SECRET, hex or\n"
    "                       base32, else a new random key, shown on a terminal as\n"
    "                       dumbpipe does); the file must be private (chmod 600)\n"
    "  --bind IP:PORT       the local address, exactly (repeatable: one IPv4, one IPv6;\n"
    "                       default: any port, both families)\n"
    "  --external-addr IP:PORT  an address this endpoint is reachable at besides its own\n"
    "                       (a forwarded port; repeatable), advertised for holepunching\n"
    "  --relay URL          use this relay (repeatable; default: n0's public relays)\n"
    "  --no-relay           no relays: direct addresses only (ticket relays ignored)\n"
    "  --relay-ca PEM       trust this certificate for https relays (not the system's)\n"
    "  --relay-token TOKEN  access token for relays that require one\n"
    "  --relay-quic-port N  the relays' UDP port for address discovery (default 7842, 0: off)\n"
    METRICS_HELP
    "\n"
    LOOKUP_HELP
    "\n"
    "environment: IROH_SECRET (a secret key), IROH_LOG (library log level: off, error,\n"
    "warn, info, debug, trace), SSLKEYLOGFILE, IROH_C_ADDRESS_LOOKUP; see 'iroh-c --help'.\n";

/* reads all of stdin (for --streams N, where every stream carries the same input); NULL
 * with *len 0 after a signal */
static uint8_t *slurp_stdin(size_t *len)
{
    size_t cap = IO_CHUNK, n = 0;
    uint8_t *buf = malloc(cap);
    *len = 0;
    while (buf) {
        if (n == cap) {
            uint8_t *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
        if (!wait_input(0, -1)) {
            free(buf);
            return NULL;
        }
        ssize_t r = read(0, buf + n, cap - n);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

/* --streams N: stdin on each of N streams, the answers to stdout in turn */
static int connect_streams(iroh_connection *conn, long streams, int dumbpipe)
{
    size_t len = 0;
    uint8_t *input = slurp_stdin(&len);
    if (!input) {
        if (!cli_stop_signal())
            fprintf(stderr, "iroh-c: out of memory reading stdin\n");
        return 1;
    }
    int status = 0;
    for (long s = 0; s < streams && status == 0; s++) {
        iroh_send_stream *send;
        iroh_recv_stream *recv;
        uint8_t *back = NULL;
        size_t blen = 0;
        int rc = iroh_connection_open_bi(conn, &send, &recv);
        char detail[300] = "";
        if (rc == IROH_OK) {
            if ((dumbpipe && (rc = dumbpipe_send_hello(send)) != IROH_OK) ||
                (rc = iroh_send_stream_write_all(send, input, len)) != IROH_OK ||
                (rc = iroh_send_stream_finish(send)) != IROH_OK ||
                (rc = iroh_recv_stream_read_to_end(recv, (size_t)1 << 30, &back, &blen)) != IROH_OK)
                snprintf(detail, sizeof detail, "%s", iroh_last_error());
            iroh_send_stream_free(send);
            iroh_recv_stream_free(recv);
        } else {
            snprintf(detail, sizeof detail, "%s", iroh_last_error());
        }
        if (rc == IROH_OK && write_all_fd(1, back, blen) != 0) {
            free(back);
            if (errno == EPIPE) { /* stdout went away: a quiet end */
                iroh_connection_close(conn, 0, "output closed");
                break;
            }
            fprintf(stderr, "iroh-c: cannot write to stdout: %s\n", strerror(errno));
            status = 1;
            break;
        }
        free(back);
        if (rc != IROH_OK) {
            report_end(conn, rc, detail);
            status = 1;
        }
    }
    free(input);
    return status;
}

int cmd_connect(int argc, char **argv)
{
    const char *ticket = NULL;
    const char *alpns[MAX_ALPNS];
    size_t n_alpns = 0;
    double timeout_s = 10.0, streams = 1;
    net_opts opts = {.quic_port = -1};
    int r, stats = 0, recv_only = 0;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (cli_is_help(argv[i])) {
            fputs(USAGE_CONNECT, stdout);
            return 0;
        }
        if ((r = alpn_opt(alpns, &n_alpns, argc, argv, &i)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
        } else if ((r = cli_opt(argc, argv, &i, "--timeout", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            if (parse_number(v, 0.001, 86400, &timeout_s) != 0)
                return cli_usage("--timeout takes a number of seconds from 0.001 to 86400, not '%s'", v);
        } else if ((r = cli_opt(argc, argv, &i, "--streams", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            if (parse_number(v, 1, 10000, &streams) != 0 || streams != (long)streams)
                return cli_usage("--streams takes a whole number from 1 to 10000, not '%s'", v);
        } else if (strcmp(argv[i], "--stats") == 0) {
            stats = 1;
        } else if (strcmp(argv[i], "--recv-only") == 0) {
            recv_only = 1;
        } else if ((r = net_opt(&opts, argc, argv, &i)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
        } else if (argv[i][0] != '-' && !ticket) {
            ticket = argv[i];
        } else {
            return cli_usage("connect: unexpected argument '%s'", argv[i]);
        }
    }
    if (!ticket)
        return cli_usage("connect: a TICKET or an EndpointId is needed%s", NULL);
    if (recv_only && streams != 1)
        return cli_usage("connect: --recv-only and --streams exclude each other (--streams "
                         "sends stdin on each stream)%s", NULL);
    /* no --alpn: dumbpipe's protocol */
    int dumbpipe = n_alpns == 0;
    if (dumbpipe)
        alpns[n_alpns++] = DUMBPIPE_ALPN;
    iroh_endpoint_addr *addr;
    int rc = parse_target(ticket, &addr);
    if (rc != 0)
        return rc;

    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    if (!b) {
        iroh_endpoint_addr_free(addr);
        return cli_api_error("endpoint", IROH_ERR_NO_MEMORY);
    }
    iroh_endpoint_builder_connect_timeout_ms(b, (uint32_t)(timeout_s * 1000 + 0.5));
    /* without --bind the endpoint binds both families (0.0.0.0:0 and [::]:0) */
    iroh_endpoint *ep;
    int status = net_bind(&opts, b, &ep);
    if (status != 0) {
        iroh_endpoint_addr_free(addr);
        return status;
    }
    iroh_connection *conn = NULL;
    if ((status = net_metrics_start(&opts, ep)) == 0 && cli_stop_watch_endpoint(ep) == 0) {
        rc = iroh_endpoint_connect_alpns(ep, addr, alpns, n_alpns, &conn);
        if (rc != IROH_OK) {
            int no_dumbpipe = dumbpipe && rc == IROH_ERR_HANDSHAKE &&
                              strstr(iroh_last_error(), "0x178");
            if (no_dumbpipe && !cli_stop_signal())
                fprintf(stderr, "iroh-c: the peer does not speak dumbpipe's protocol (ALPN "
                                DUMBPIPE_ALPN "; give its protocol with --alpn)\n");
            else if (!cli_stop_signal())
                report_connect_error(rc, timeout_s);
            status = 1;
            conn = NULL;
        }
    }
    iroh_endpoint_addr_free(addr);
    if (conn && cli_stop_watch_conn(conn) == 0) {
        if (streams == 1) {
            iroh_send_stream *send;
            iroh_recv_stream *recv;
            pipe_result res;
            /* not when stdout is the terminal too: the data would mix with the line */
            progress *prog = progress_start(opts.quiet || isatty(1));
            progress_set_conn(prog, conn);
            rc = iroh_connection_open_bi(conn, &send, &recv);
            /* dumbpipe: the opener writes the hello first (it makes the stream exist for
             * the peer, whatever stdin holds) */
            if (rc == IROH_OK && dumbpipe && (rc = dumbpipe_send_hello(send)) != IROH_OK) {
                res.rc = rc;
                snprintf(res.detail, sizeof res.detail, "%s", iroh_last_error());
                iroh_send_stream_free(send);
                iroh_recv_stream_free(recv);
            } else if (rc == IROH_OK) {
                pipe_streams(conn, send, recv, recv_only, prog, &res);
                iroh_send_stream_free(send);
                iroh_recv_stream_free(recv);
            } else {
                res.rc = rc;
                snprintf(res.detail, sizeof res.detail, "%s", iroh_last_error());
            }
            progress_stop(prog);
            if (res.rc != IROH_OK) {
                report_end(conn, res.rc, res.detail);
                status = 1;
            }
        } else {
            status = connect_streams(conn, (long)streams, dumbpipe);
        }
        if (stats)
            print_stats(conn);
    }
    if (conn) {
        /* we read last: we close, as iroh's echo guide does */
        iroh_connection_close(conn, 0, "bye!");
        cli_stop_forget_conn(conn);
        iroh_connection_free(conn);
    }
    net_metrics_stop();
    cli_stop_forget_endpoint();
    iroh_endpoint_close(ep);
    iroh_endpoint_free(ep);
    cli_stop_end();
    return cli_stop_status(status);
}

/* ---- listen ------------------------------------------------------------------------------ */

const char USAGE_LISTEN[] =
    "usage: iroh-c listen [--alpn ALPN]... [--echo] [options]\n"
    "\n"
    "Accepts connections for each ALPN given; without --alpn, for dumbpipe's protocol\n"
    "(ALPN " DUMBPIPE_ALPN "): each stream must start with the 5 bytes \"" DUMBPIPE_HELLO "\", checked\n"
    "before any data (a peer that sends other bytes, or none within 10 s, is told\n"
    "\"invalid handshake\", its connection closed with code 2, and listen exits 1), so\n"
    "'iroh-c connect' and 'dumbpipe connect' both reach it. Without --echo, a dumb\n"
    "pipe: the first connection's first bidirectional stream carries stdin to the peer\n"
    "and the peer's data to stdout. stdout carries exactly the bytes received; the\n"
    "ticket and all messages go to stderr (\"iroh-c: ticket: endpoint...\"). Further\n"
    "clients are refused at once (code 1, \"" BUSY_REASON "\").\n"
    "With --echo, a service: the ticket is the first line of stdout, and every stream and\n"
    "datagram of every connection is echoed until SIGINT or SIGTERM.\n"
    "Unless --no-lookup is given, the endpoint publishes its record (its home relay; with\n"
    "--publish-addrs its direct addresses as well) so that peers dial it by EndpointId\n"
    "alone ('iroh-c connect ID'); see the address lookup options below.\n"
    "SIGINT and SIGTERM close open connections (\"interrupted\") and exit with 130 and 143.\n"
    "When stderr is a terminal (and stdout is not), it shows a progress line: bytes each\n"
    "way, rate, path.\n"
    "\n"
    "options:\n"
    "  --alpn ALPN          a protocol to accept instead, with no hello (repeatable: all\n"
    "                       are served)\n"
    "  --echo               the echo service instead of the pipe\n"
    "  --recv-only          pipe: send nothing (stdin is not read, our side is finished)\n"
    "  --stats              pipe: the selected path, RTT, path MTU and packet counts on\n"
    "                       stderr at the end, as connect --stats\n"
    "  --quiet              no progress line, no note of a generated secret key\n"
    "  --secret-file FILE   the secret key, for a stable EndpointId (default: IROH_SECRET,\n"
    "                       hex or base32, else a new random key, shown on a terminal\n"
    "                       as dumbpipe does); the file must be private (chmod 600)\n"
    "  --bind IP:PORT       the local address, exactly (repeatable: one IPv4, one IPv6;\n"
    "                       default: any port on every interface of both families)\n"
    "  --external-addr IP:PORT  an address this endpoint is reachable at besides its own\n"
    "                       (a forwarded port; repeatable): in the ticket, and advertised\n"
    "                       to peers for holepunching\n"
    "  --verbose            a line on stderr each time a connection's selected path\n"
    "                       changes (\"iroh-c: path selected: direct IP:PORT (N ms)\" or\n"
    "                       \"relay URL\", N from the start of the handshake), and when\n"
    "                       the record is published (\"iroh-c: published our record...\")\n"
    "  --retry              validate clients' addresses with a QUIC Retry first\n"
    "  --relay URL          home on this relay (repeatable; default: n0's public relays);\n"
    "                       listen waits up to 5 s for it so that the ticket names it\n"
    "  --no-relay           no relays: direct addresses only\n"
    "  --relay-ca PEM       trust this certificate for https relays (not the system's)\n"
    "  --relay-token TOKEN  access token for relays that require one\n"
    "  --relay-quic-port N  the relays' UDP port for address discovery (default 7842, 0: off)\n"
    METRICS_HELP
    "\n"
    LOOKUP_HELP
    "\n"
    "environment: IROH_SECRET (a secret key), IROH_LOG (library log level: off, error,\n"
    "warn, info, debug, trace), SSLKEYLOGFILE, IROH_C_ADDRESS_LOOKUP; see 'iroh-c --help'.\n";

typedef struct echo_job {
    iroh_send_stream *send;
    iroh_recv_stream *recv;
    int hello; /* dumbpipe: the stream starts with the hello, not echoed */
} echo_job;

static void *echo_stream(void *arg)
{
    echo_job *j = arg;
    uint8_t *buf = malloc(IO_CHUNK);
    if (j->hello)
        iroh_recv_stream_set_timeout(j->recv, HELLO_TIMEOUT_MS);
    if (j->hello && (dumbpipe_read_hello(j->recv) != IROH_OK ||
                     iroh_recv_stream_set_timeout(j->recv, -1) != IROH_OK)) {
        /* not dumbpipe's protocol: this stream ends both ways, the others go on */
        iroh_recv_stream_stop(j->recv, HELLO_CODE);
        iroh_send_stream_reset(j->send, HELLO_CODE);
        free(buf);
        buf = NULL;
    }
    while (buf) {
        size_t n;
        if (iroh_recv_stream_read(j->recv, buf, IO_CHUNK, &n) != IROH_OK || n == 0)
            break;
        if (iroh_send_stream_write_all(j->send, buf, n) != IROH_OK)
            break;
    }
    if (buf)
        iroh_send_stream_finish(j->send);
    free(buf);
    iroh_send_stream_free(j->send);
    iroh_recv_stream_free(j->recv);
    free(j);
    return NULL;
}

static void *echo_datagrams(void *arg)
{
    iroh_connection *c = arg;
    uint8_t buf[2048];
    size_t n;
    while (iroh_connection_read_datagram(c, -1, buf, sizeof buf, &n) == IROH_OK)
        iroh_connection_send_datagram(c, buf, n);
    return NULL;
}

/* the --echo protocol handler: every bidirectional stream and datagram comes back; a
 * signal closes the connection, which ends every call below. ctx non-NULL: dumbpipe's
 * protocol (each stream's hello is checked and not echoed). */
static int echo_handler(void *ctx, iroh_connection *conn)
{
    if (cli_stop_watch_conn(conn) != 0)
        return 0;
    pthread_t dg;
    int have_dg = pthread_create(&dg, NULL, echo_datagrams, conn) == 0;
    pthread_t *threads = NULL;
    size_t nt = 0, cap = 0;
    for (;;) {
        echo_job *j = malloc(sizeof *j);
        if (!j || iroh_connection_accept_bi(conn, -1, &j->send, &j->recv) != IROH_OK) {
            free(j);
            break;
        }
        j->hello = ctx != NULL;
        if (nt == cap) {
            size_t nc = cap ? cap * 2 : 16;
            pthread_t *p = realloc(threads, nc * sizeof *p);
            if (!p) {
                echo_stream(j);
                continue;
            }
            threads = p;
            cap = nc;
        }
        if (pthread_create(&threads[nt], NULL, echo_stream, j) != 0)
            echo_stream(j);
        else
            nt++;
    }
    for (size_t i = 0; i < nt; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    if (have_dg)
        pthread_join(dg, NULL);
    cli_stop_forget_conn(conn);
    return 0;
}

/* Serves until a signal. *ep_freed when the router took the endpoint (and freed it): not
 * when no router started. */
static int serve_echo(iroh_endpoint *ep, const char *const *alpns, size_t n_alpns, int dumbpipe,
                      int *ep_freed)
{
    static int dumbpipe_ctx; /* any non-NULL pointer: the handlers check the hello */
    iroh_router *router;
    if (net_router(ep, alpns, n_alpns, echo_handler, dumbpipe ? &dumbpipe_ctx : NULL, &router) != 0)
        return 1;
    cli_stop_wait();
    /* the watcher closed the connections ("interrupted") and the endpoint; the router
     * waits for the handlers, which those closes end */
    cli_stop_forget_endpoint();
    net_metrics_stop(); /* it reads the endpoint the router frees */
    iroh_router_shutdown(router);
    iroh_router_free(router); /* frees the endpoint too */
    *ep_freed = 1;
    return 0;
}

/* the dumb pipe's listener serves one connection: later ones are closed at once with a
 * reason the client shows */
static void *refuse_others(void *arg)
{
    iroh_endpoint *ep = arg;
    iroh_incoming *inc;
    while (iroh_endpoint_accept(ep, -1, &inc) == IROH_OK) {
        iroh_connection *c;
        if (iroh_incoming_accept(inc, &c) != IROH_OK)
            continue;
        iroh_endpoint_id peer;
        char hex[IROH_ID_HEX_LEN];
        iroh_connection_remote_id(c, &peer);
        iroh_endpoint_id_to_hex(&peer, hex, sizeof hex);
        iroh_connection_close(c, BUSY_CODE, BUSY_REASON);
        iroh_connection_free(c);
        fprintf(stderr, "iroh-c: refused %s: %s\n", hex, BUSY_REASON);
    }
    return NULL;
}

typedef struct pipe_opts {
    int dumbpipe;  /* the stream starts with the hello: checked */
    int recv_only; /* stdin is not read */
    int stats;     /* --stats */
    int quiet;     /* no progress line */
} pipe_opts;

static int serve_pipe(iroh_endpoint *ep, size_t n_alpns, const pipe_opts *po)
{
    iroh_connection *conn = NULL;
    int rc = IROH_OK;
    while (!conn) {
        iroh_incoming *inc;
        if ((rc = iroh_endpoint_accept(ep, -1, &inc)) != IROH_OK)
            break;
        if (iroh_incoming_accept(inc, &conn) != IROH_OK)
            conn = NULL; /* its handshake failed: wait for the next */
    }
    if (!conn) {
        if (cli_stop_signal())
            return 0;
        fprintf(stderr, "iroh-c: accept: %s\n", iroh_last_error());
        return 1;
    }
    pthread_t refuser;
    int have_refuser = pthread_create(&refuser, NULL, refuse_others, ep) == 0;
    int status = 0;
    if (cli_stop_watch_conn(conn) == 0) {
        iroh_endpoint_id peer;
        char hex[IROH_ID_HEX_LEN], alpn[256];
        iroh_connection_remote_id(conn, &peer);
        iroh_endpoint_id_to_hex(&peer, hex, sizeof hex);
        if (n_alpns > 1 && iroh_connection_alpn(conn, alpn, sizeof alpn) == IROH_OK)
            fprintf(stderr, "iroh-c: connection from %s (ALPN %s)\n", hex, alpn);
        else
            fprintf(stderr, "iroh-c: connection from %s\n", hex);
        iroh_send_stream *send;
        iroh_recv_stream *recv;
        pipe_result res;
        int bad_hello = 0;
        progress *prog = progress_start(po->quiet || isatty(1)); /* as in connect */
        progress_set_conn(prog, conn);
        rc = iroh_connection_accept_bi(conn, -1, &send, &recv);
        int opened = rc == IROH_OK;
        /* dumbpipe: the hello (within HELLO_TIMEOUT_MS) before any data; other bytes, or
         * none in time, end the connection */
        if (opened && po->dumbpipe) {
            iroh_recv_stream_set_timeout(recv, HELLO_TIMEOUT_MS);
            if ((rc = dumbpipe_read_hello(recv)) == IROH_OK)
                rc = iroh_recv_stream_set_timeout(recv, -1);
        }
        if (opened && rc != IROH_OK) {
            /* a hello cut short by the stream's end or a reset is no hello either: the
             * peer is told so, as for wrong bytes */
            if (rc == 1 || rc == IROH_ERR_TIMEOUT || rc == IROH_ERR_FINISHED_EARLY ||
                rc == IROH_ERR_STREAM_RESET) {
                bad_hello = rc == 1 ? 1 : rc == IROH_ERR_TIMEOUT ? 2
                          : rc == IROH_ERR_FINISHED_EARLY ? 3 : 4;
                iroh_connection_close(conn, HELLO_CODE,
                                      rc == 1                  ? HELLO_REASON
                                      : rc == IROH_ERR_TIMEOUT ? HELLO_TIMEOUT_REASON
                                      : rc == IROH_ERR_FINISHED_EARLY ? HELLO_SHORT_REASON
                                                                      : HELLO_RESET_REASON);
            } else {
                res.rc = rc;
                snprintf(res.detail, sizeof res.detail, "before its hello: %s", iroh_last_error());
            }
            iroh_send_stream_free(send);
            iroh_recv_stream_free(recv);
        } else if (opened) {
            pipe_streams(conn, send, recv, po->recv_only, prog, &res);
            /* the peer reads last: wait for its close, briefly */
            if (res.rc == IROH_OK && !res.output_closed)
                iroh_connection_closed(conn, 5000);
            iroh_send_stream_free(send);
            iroh_recv_stream_free(recv);
        } else {
            res.rc = rc;
            snprintf(res.detail, sizeof res.detail, "%s", iroh_last_error());
        }
        progress_stop(prog);
        if (bad_hello == 1) {
            fprintf(stderr, "iroh-c: %s does not speak dumbpipe's protocol (its stream did "
                            "not start with \"" DUMBPIPE_HELLO "\"): connection closed\n", hex);
            status = 1;
        } else if (bad_hello >= 3) {
            fprintf(stderr, "iroh-c: %s %s before its \"" DUMBPIPE_HELLO "\" was complete: "
                            "connection closed\n", hex,
                    bad_hello == 3 ? "ended its stream" : "reset its stream");
            status = 1;
        } else if (bad_hello == 2) {
            fprintf(stderr, "iroh-c: %s sent no \"" DUMBPIPE_HELLO "\" within %d s: connection "
                            "closed\n", hex, HELLO_TIMEOUT_MS / 1000);
            status = 1;
        } else if (res.rc != IROH_OK) {
            report_end(conn, res.rc, res.detail);
            status = 1;
        }
        if (po->stats)
            print_stats(conn);
    }
    cli_stop_forget_conn(conn);
    iroh_connection_free(conn);
    /* closing the endpoint ends the refuser's accept */
    cli_stop_forget_endpoint();
    iroh_endpoint_close(ep);
    if (have_refuser)
        pthread_join(refuser, NULL);
    return status;
}

int cmd_listen(int argc, char **argv)
{
    const char *alpns[MAX_ALPNS];
    size_t n_alpns = 0;
    int echo = 0, retry = 0, r;
    pipe_opts po = {0};
    net_opts opts = {.quic_port = -1};
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(USAGE_LISTEN, stdout);
            return 0;
        }
        if ((r = alpn_opt(alpns, &n_alpns, argc, argv, &i)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
        } else if (strcmp(argv[i], "--echo") == 0) {
            echo = 1;
        } else if (strcmp(argv[i], "--retry") == 0) {
            retry = 1;
        } else if (strcmp(argv[i], "--recv-only") == 0) {
            po.recv_only = 1;
        } else if (strcmp(argv[i], "--stats") == 0) {
            po.stats = 1;
        } else if ((r = net_opt(&opts, argc, argv, &i)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
        } else {
            return cli_usage("listen: unexpected argument '%s'", argv[i]);
        }
    }
    if (echo && (po.recv_only || po.stats))
        return cli_usage("listen: --recv-only and --stats are for the pipe, not --echo%s", NULL);
    /* no --alpn: dumbpipe's protocol */
    po.dumbpipe = n_alpns == 0;
    po.quiet = opts.quiet;
    if (po.dumbpipe)
        alpns[n_alpns++] = DUMBPIPE_ALPN;
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    if (!b)
        return cli_api_error("endpoint", IROH_ERR_NO_MEMORY);
    int rc;
    iroh_endpoint_builder_retry(b, retry);
    for (size_t i = 0; i < n_alpns; i++) {
        if ((rc = iroh_endpoint_builder_alpn(b, alpns[i])) != IROH_OK) {
            iroh_endpoint_builder_free(b);
            return cli_api_error("--alpn", rc);
        }
    }
    iroh_endpoint *ep;
    if ((rc = net_bind(&opts, b, &ep)) != 0)
        return rc;
    int status = net_metrics_start(&opts, ep);
    if (status == 0 && cli_stop_watch_endpoint(ep) == 0 && !opts.no_relay) {
        /* the ticket names the home relay once one is connected: wait a little for it */
        if (iroh_endpoint_online(ep, 5000) != IROH_OK && !cli_stop_signal())
            fprintf(stderr, "iroh-c: no home relay yet, the ticket has direct addresses "
                            "only: %s\n", iroh_last_error());
    }
    if (status == 0 && !cli_stop_signal()) {
        print_ticket(ep, echo);
        if (echo) {
            int freed = 0;
            status = serve_echo(ep, alpns, n_alpns, po.dumbpipe, &freed);
            if (freed)
                ep = NULL;
        } else {
            status = serve_pipe(ep, n_alpns, &po);
        }
    }
    net_metrics_stop();
    if (ep) {
        cli_stop_forget_endpoint();
        iroh_endpoint_close(ep);
        iroh_endpoint_free(ep);
    }
    cli_stop_end();
    return cli_stop_status(status);
}

/* ---- resolve ----------------------------------------------------------------------------- */

const char USAGE_RESOLVE[] =
    "usage: iroh-c resolve ID [options]\n"
    "\n"
    "Asks every configured address lookup at once for the EndpointId ID (64 hex or 52\n"
    "base32 characters) and prints the union of what they found within the timeout as one\n"
    "line of JSON, the form of 'ticket decode':\n"
    "{\"id\":\"<hex>\",\"relay\":\"<url>\"|null,\"addrs\":[\"IP:PORT\",...]}.\n"
    "Exits 1, with one line on stderr and nothing on stdout, when nothing was found.\n"
    "The endpoint that asks uses no relay and publishes nothing.\n"
    "\n"
    "options:\n"
    "  --timeout SECS       how long to wait for answers (default 10)\n"
    "  --bind IP:PORT       the local address (repeatable: one IPv4, one IPv6)\n"
    "\n"
    LOOKUP_HELP;

int cmd_resolve(int argc, char **argv)
{
    const char *target = NULL;
    double timeout_s = 10.0;
    net_opts opts = {.quic_port = -1};
    int r;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (cli_is_help(argv[i])) {
            fputs(USAGE_RESOLVE, stdout);
            return 0;
        }
        if ((r = cli_opt(argc, argv, &i, "--timeout", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            if (parse_number(v, 0.001, 86400, &timeout_s) != 0)
                return cli_usage("--timeout takes a number of seconds from 0.001 to 86400, not '%s'", v);
        } else if ((r = cli_opt(argc, argv, &i, "--bind", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            if (opts.n_binds == 2)
                return cli_usage("at most two --bind options (one IPv4, one IPv6)%s", NULL);
            opts.binds[opts.n_binds++] = v;
        } else if ((r = lookup_opt(&opts, argc, argv, &i)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
        } else if (argv[i][0] != '-' && !target) {
            target = argv[i];
        } else {
            return cli_usage("resolve: unexpected argument '%s'", argv[i]);
        }
    }
    if (!target)
        return cli_usage("resolve: an EndpointId is needed%s", NULL);
    if (opts.no_lookup)
        return cli_usage("resolve: --no-lookup leaves nothing to ask%s", NULL);
    if (opts.publish_addrs)
        return cli_usage("resolve: --publish-addrs is for listen and connect; resolve "
                         "publishes nothing%s", NULL);
    iroh_endpoint_id id;
    int rc = iroh_endpoint_id_parse(target, &id);
    if (rc != IROH_OK)
        return cli_api_error("endpoint id", rc);

    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    if (!b)
        return cli_api_error("endpoint", IROH_ERR_NO_MEMORY);
    /* no relay: nothing to publish (the record would name the home relay), and no
     * connections to n0's relays for a lookup */
    opts.no_relay = 1;
    opts.quiet = 1; /* a throwaway identity: not worth a note */
    iroh_endpoint *ep;
    if ((rc = net_bind(&opts, b, &ep)) != 0)
        return rc;
    int status = 1;
    if (cli_stop_watch_endpoint(ep) == 0) {
        iroh_endpoint_addr *found = NULL;
        rc = iroh_endpoint_resolve(ep, &id, (int)(timeout_s * 1000 + 0.5), &found);
        if (rc == IROH_OK && found && iroh_endpoint_addr_len(found) > 0) {
            cli_print_addr_json(found);
            status = 0;
        } else if (!cli_stop_signal()) {
            char hex[IROH_ID_HEX_LEN];
            iroh_endpoint_id_to_hex(&id, hex, sizeof hex);
            const char *d = rc != IROH_OK ? iroh_last_error() : "";
            /* the detail says whether the lookups ended or the time ran out */
            fprintf(stderr, "iroh-c: resolve: nothing found for %s%s%s\n", hex, *d ? ": " : "", d);
        }
        iroh_endpoint_addr_free(found);
    }
    cli_stop_forget_endpoint();
    iroh_endpoint_close(ep);
    iroh_endpoint_free(ep);
    cli_stop_end();
    return cli_stop_status(status);
}
