/* iroh-c listen / connect on the public API (include/iroh.h): an echo service, and a
 * "dumb pipe" that carries stdin/stdout over one bidirectional stream. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/cmds.h"

#define IO_CHUNK 65536

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int write_all_fd(int fd, const uint8_t *p, size_t n)
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

/* a one-line explanation of a failed connect */
static void report_connect_error(int rc, double timeout_s)
{
    const char *d = iroh_last_error();
    if (rc == IROH_ERR_TIMEOUT) {
        const char *relay = strstr(d, " (relay ");
        fprintf(stderr, "iroh-c: timed out after %.0f s connecting to the peer%s\n", timeout_s,
                relay ? relay : "");
    }
    else if (rc == IROH_ERR_HANDSHAKE && strstr(d, "0x130"))
        fprintf(stderr, "iroh-c: wrong key: %s (unknown_ca)\n", d);
    else if (rc == IROH_ERR_HANDSHAKE && strstr(d, "0x178"))
        fprintf(stderr, "iroh-c: the peer does not speak this ALPN (no_application_protocol, 0x178)\n");
    else
        fprintf(stderr, "iroh-c: connect: %s: %s\n", iroh_strerror(rc), d);
}

/* ---- the pipe: stdin -> send stream on a thread, recv stream -> stdout here --------- */

typedef struct pump {
    iroh_send_stream *send;
    int rc;
} pump;

static void *stdin_to_stream(void *arg)
{
    pump *p = arg;
    uint8_t *buf = malloc(IO_CHUNK);
    p->rc = buf ? IROH_OK : IROH_ERR_NO_MEMORY;
    while (p->rc == IROH_OK) {
        ssize_t n = read(0, buf, IO_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p->rc = iroh_send_stream_write_all(p->send, buf, (size_t)n);
    }
    if (p->rc == IROH_OK)
        p->rc = iroh_send_stream_finish(p->send);
    /* closing the connection drops what is not yet delivered: wait until the peer has
     * acknowledged all of it (or the connection ends) */
    if (p->rc == IROH_OK)
        p->rc = iroh_send_stream_flushed(p->send, -1);
    free(buf);
    return NULL;
}

static int stream_to_stdout(iroh_recv_stream *recv)
{
    uint8_t *buf = malloc(IO_CHUNK);
    int rc = buf ? IROH_OK : IROH_ERR_NO_MEMORY;
    for (;;) {
        size_t n;
        if (rc != IROH_OK || (rc = iroh_recv_stream_read(recv, buf, IO_CHUNK, &n)) != IROH_OK)
            break;
        if (n == 0)
            break;
        if (write_all_fd(1, buf, n) != 0) {
            fprintf(stderr, "iroh-c: cannot write to stdout: %s\n", strerror(errno));
            rc = IROH_ERR_IO;
            break;
        }
    }
    free(buf);
    return rc;
}

/* pipes stdin/stdout over the stream pair; returns IROH_OK or the first error */
static int pipe_streams(iroh_send_stream *send, iroh_recv_stream *recv)
{
    pump p = {send, IROH_OK};
    pthread_t th;
    if (pthread_create(&th, NULL, stdin_to_stream, &p) != 0)
        return IROH_ERR_IO;
    int rc = stream_to_stdout(recv);
    if (rc != IROH_OK) {
        /* the peer is gone: the stdin thread may block on a read; leave it */
        pthread_detach(th);
        return rc;
    }
    pthread_join(th, NULL);
    return p.rc;
}

static void report_stream_error(int rc)
{
    if (rc == IROH_ERR_STREAM_RESET)
        fprintf(stderr, "iroh-c: the peer reset the stream: %s\n", iroh_last_error());
    else
        fprintf(stderr, "iroh-c: %s: %s\n", iroh_strerror(rc), iroh_last_error());
}

/* ---- relays: --relay URL (repeatable), --no-relay; n0's public relays otherwise ---------- */

typedef struct relay_opts {
    const char *urls[8];
    int n;
    int none;
    const char *ca_file;
    long quic_port; /* -1: default */
} relay_opts;

/* 1 if argv[*i] was a relay option (consumed), 0 if not, -1 on a usage error */
static int relay_opt(relay_opts *r, int argc, char **argv, int *i)
{
    if (strcmp(argv[*i], "--no-relay") == 0) {
        r->none = 1;
        return 1;
    }
    if (strcmp(argv[*i], "--relay-quic-port") == 0 && *i + 1 < argc) {
        char *end;
        r->quic_port = strtol(argv[++*i], &end, 10);
        if (*end || r->quic_port < 0 || r->quic_port > 65535)
            return -2;
        return 1;
    }
    if (strcmp(argv[*i], "--relay-ca") == 0 && *i + 1 < argc) {
        r->ca_file = argv[++*i];
        return 1;
    }
    if (strcmp(argv[*i], "--relay") == 0 && *i + 1 < argc) {
        if (r->n == 8)
            return -1;
        r->urls[r->n++] = argv[++*i];
        return 1;
    }
    return 0;
}

static int relay_apply(const relay_opts *r, iroh_endpoint_builder *b)
{
    if (r->none && r->n)
        return cli_usage("--relay and --no-relay exclude each other%s", NULL);
    if (r->none)
        iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    if (r->ca_file)
        iroh_endpoint_builder_relay_ca_file(b, r->ca_file);
    if (r->quic_port >= 0)
        iroh_endpoint_builder_relay_quic_port(b, (uint16_t)r->quic_port);
    for (int i = 0; i < r->n; i++) {
        int rc = iroh_endpoint_builder_relay_url(b, r->urls[i]);
        if (rc != IROH_OK)
            return cli_usage("--relay: '%s' is not a relay URL", r->urls[i]);
    }
    return 0;
}

/* one line on stderr: the connection's path, RTT, datagram size and packet counts */
static void print_stats(iroh_connection *conn)
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

/* ---- connect ---------------------------------------------------------------------------- */

/* reads all of stdin (for --streams N, where every stream carries the same input) */
static uint8_t *slurp_stdin(size_t *len)
{
    size_t cap = IO_CHUNK, n = 0;
    uint8_t *buf = malloc(cap);
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
        ssize_t r = read(0, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

int cmd_connect(int argc, char **argv)
{
    const char *ticket = NULL, *bind = NULL;
    const char *alpns[16];
    size_t n_alpns = 0;
    double timeout_s = 10.0;
    long streams = 1;
    relay_opts relays = {.quic_port = -1};
    int ro, stats = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--alpn") == 0 && i + 1 < argc) {
            if (n_alpns == 16)
                return cli_usage("at most 16 ALPNs%s", NULL);
            alpns[n_alpns++] = argv[++i];
            if (!*alpns[n_alpns - 1] || strlen(alpns[n_alpns - 1]) > 255)
                return cli_usage("--alpn takes 1 to 255 bytes%s", NULL);
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            timeout_s = atof(argv[++i]);
            if (timeout_s <= 0 || timeout_s > 86400)
                return cli_usage("--timeout takes a positive number of seconds%s", NULL);
        } else if (strcmp(argv[i], "--streams") == 0 && i + 1 < argc) {
            streams = atol(argv[++i]);
            if (streams < 1 || streams > 10000)
                return cli_usage("--streams takes a number from 1 to 10000%s", NULL);
        } else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
            bind = argv[++i];
        } else if (strcmp(argv[i], "--stats") == 0) {
            stats = 1;
        } else if ((ro = relay_opt(&relays, argc, argv, &i)) != 0) {
            if (ro < 0)
                return cli_usage(ro == -2 ? "--relay-quic-port takes a port (0 turns it off)%s"
                                          : "at most 8 --relay options%s", NULL);
        } else if (argv[i][0] != '-' && !ticket) {
            ticket = argv[i];
        } else {
            return cli_usage("connect: unexpected argument '%s'", argv[i]);
        }
    }
    if (!ticket || !n_alpns)
        return cli_usage("usage: iroh-c connect TICKET --alpn ALPN [--timeout SECS] [--streams N] [--stats] "
                         "[--relay URL]... [--relay-ca PEM] [--relay-quic-port N] [--no-relay]%s",
                         NULL);
    iroh_endpoint_addr *addr;
    int rc = iroh_endpoint_ticket_decode(ticket, &addr);
    if (rc != IROH_OK)
        return cli_api_error("ticket", rc);

    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    if (!b)
        return cli_api_error("endpoint", IROH_ERR_NO_MEMORY);
    iroh_endpoint_builder_connect_timeout_ms(b, (uint32_t)(timeout_s * 1000));
    if ((rc = relay_apply(&relays, b)) != 0) {
        iroh_endpoint_builder_free(b);
        iroh_endpoint_addr_free(addr);
        return rc;
    }
    if (bind && (rc = iroh_endpoint_builder_bind_addr(b, bind)) != IROH_OK) {
        iroh_endpoint_builder_free(b);
        iroh_endpoint_addr_free(addr);
        return cli_usage("--bind: '%s' is not an IP:PORT address", bind);
    }
    /* without --bind the endpoint binds both families (0.0.0.0:0 and [::]:0) */
    iroh_endpoint *ep;
    rc = iroh_endpoint_bind(b, &ep);
    iroh_endpoint_builder_free(b);
    if (rc != IROH_OK) {
        iroh_endpoint_addr_free(addr);
        fprintf(stderr, "iroh-c: %s\n", iroh_last_error());
        return 1;
    }
    install_signals();
    iroh_connection *conn;
    rc = iroh_endpoint_connect_alpns(ep, addr, alpns, n_alpns, &conn);
    iroh_endpoint_addr_free(addr);
    if (rc != IROH_OK) {
        report_connect_error(rc, timeout_s);
        iroh_endpoint_free(ep);
        return 1;
    }
    int status = 0;
    if (streams == 1) {
        iroh_send_stream *send;
        iroh_recv_stream *recv;
        rc = iroh_connection_open_bi(conn, &send, &recv);
        if (rc == IROH_OK) {
            rc = pipe_streams(send, recv);
            iroh_send_stream_free(send);
            iroh_recv_stream_free(recv);
        }
        if (rc != IROH_OK) {
            report_stream_error(rc);
            status = 1;
        }
    } else {
        size_t len = 0;
        uint8_t *input = slurp_stdin(&len);
        for (long s = 0; s < streams && status == 0 && input; s++) {
            iroh_send_stream *send;
            iroh_recv_stream *recv;
            uint8_t *back = NULL;
            size_t blen = 0;
            rc = iroh_connection_open_bi(conn, &send, &recv);
            if (rc == IROH_OK) {
                if ((rc = iroh_send_stream_write_all(send, input, len)) == IROH_OK &&
                    (rc = iroh_send_stream_finish(send)) == IROH_OK &&
                    (rc = iroh_recv_stream_read_to_end(recv, (size_t)1 << 30, &back, &blen)) == IROH_OK &&
                    write_all_fd(1, back, blen) != 0)
                    rc = IROH_ERR_IO;
                free(back);
                iroh_send_stream_free(send);
                iroh_recv_stream_free(recv);
            }
            if (rc != IROH_OK) {
                report_stream_error(rc);
                status = 1;
            }
        }
        if (!input) {
            fprintf(stderr, "iroh-c: out of memory reading stdin\n");
            status = 1;
        }
        free(input);
    }
    if (stats)
        print_stats(conn);
    /* we read last: we close, as iroh's echo guide does */
    iroh_connection_close(conn, 0, "bye!");
    iroh_connection_free(conn);
    iroh_endpoint_close(ep);
    iroh_endpoint_free(ep);
    return status;
}

/* ---- listen ------------------------------------------------------------------------------ */

typedef struct echo_job {
    iroh_send_stream *send;
    iroh_recv_stream *recv;
} echo_job;

static void *echo_stream(void *arg)
{
    echo_job *j = arg;
    uint8_t *buf = malloc(IO_CHUNK);
    while (buf) {
        size_t n;
        if (iroh_recv_stream_read(j->recv, buf, IO_CHUNK, &n) != IROH_OK || n == 0)
            break;
        if (iroh_send_stream_write_all(j->send, buf, n) != IROH_OK)
            break;
    }
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

/* the --echo protocol handler: every bidirectional stream and datagram comes back */
static int echo_handler(void *ctx, iroh_connection *conn)
{
    (void)ctx;
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
    return 0;
}

static void print_ticket(iroh_endpoint *ep)
{
    iroh_endpoint_addr *me;
    if (iroh_endpoint_get_addr(ep, &me) != IROH_OK)
        return;
    size_t need = 0;
    iroh_endpoint_ticket_encode(me, NULL, 0, &need);
    char *ticket = malloc(need);
    if (ticket && iroh_endpoint_ticket_encode(me, ticket, need, NULL) == IROH_OK)
        printf("%s\n", ticket);
    fflush(stdout);
    free(ticket);
    iroh_endpoint_addr_free(me);
}

int cmd_listen(int argc, char **argv)
{
    const char *alpn = NULL, *bind = NULL, *secret_file = NULL;
    int echo = 0, retry = 0, ro;
    relay_opts relays = {.quic_port = -1};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--alpn") == 0 && i + 1 < argc)
            alpn = argv[++i];
        else if (strcmp(argv[i], "--echo") == 0)
            echo = 1;
        else if (strcmp(argv[i], "--retry") == 0)
            retry = 1;
        else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc)
            bind = argv[++i];
        else if (strcmp(argv[i], "--secret-file") == 0 && i + 1 < argc)
            secret_file = argv[++i];
        else if ((ro = relay_opt(&relays, argc, argv, &i)) != 0) {
            if (ro < 0)
                return cli_usage(ro == -2 ? "--relay-quic-port takes a port (0 turns it off)%s"
                                          : "at most 8 --relay options%s", NULL);
        }
        else
            return cli_usage("listen: unexpected argument '%s'", argv[i]);
    }
    if (!alpn)
        return cli_usage("usage: iroh-c listen --alpn ALPN [--echo] [--bind IP:PORT] "
                         "[--secret-file F] [--relay URL]... [--relay-ca PEM] [--relay-quic-port N]\n"
                         "       [--no-relay]%s", NULL);
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    if (!b)
        return cli_api_error("endpoint", IROH_ERR_NO_MEMORY);
    int rc;
    if (secret_file) {
        iroh_secret_key key;
        if ((rc = cli_read_secret_file(secret_file, &key)) != 0) {
            iroh_endpoint_builder_free(b);
            return rc;
        }
        iroh_endpoint_builder_secret_key(b, &key);
        memset(&key, 0, sizeof key);
    }
    if (bind && iroh_endpoint_builder_bind_addr(b, bind) != IROH_OK) {
        iroh_endpoint_builder_free(b);
        return cli_usage("--bind: '%s' is not an IP:PORT address", bind);
    }
    iroh_endpoint_builder_retry(b, retry);
    if ((rc = relay_apply(&relays, b)) != 0) {
        iroh_endpoint_builder_free(b);
        return rc;
    }
    if ((rc = iroh_endpoint_builder_alpn(b, alpn)) != IROH_OK) {
        iroh_endpoint_builder_free(b);
        return cli_api_error("--alpn", rc);
    }
    iroh_endpoint *ep;
    rc = iroh_endpoint_bind(b, &ep);
    iroh_endpoint_builder_free(b);
    if (rc != IROH_OK) {
        fprintf(stderr, "iroh-c: %s\n", iroh_last_error());
        return 1;
    }
    install_signals();
    if (!relays.none) {
        /* the ticket names the home relay once one is connected: wait a little for it */
        if (iroh_endpoint_online(ep, 5000) != IROH_OK)
            fprintf(stderr, "iroh-c: no relay connected yet (%s); the ticket has direct "
                            "addresses only\n", iroh_last_error());
    }
    print_ticket(ep);

    if (echo) {
        iroh_router_builder *rb = iroh_router_builder_new(ep);
        iroh_router *router;
        if (!rb || (rc = iroh_router_builder_accept(rb, alpn, echo_handler, NULL)) != IROH_OK ||
            (rc = iroh_router_spawn(rb, &router)) != IROH_OK) {
            fprintf(stderr, "iroh-c: router: %s\n", iroh_last_error());
            iroh_endpoint_free(ep);
            return 1;
        }
        while (!stop_requested)
            usleep(100000);
        iroh_router_shutdown(router);
        iroh_router_free(router); /* frees the endpoint too */
        return 0;
    }

    /* dumb pipe: one connection, its first bidirectional stream <-> stdin/stdout */
    iroh_incoming *inc = NULL;
    iroh_connection *conn = NULL;
    while (!stop_requested && !conn) {
        rc = iroh_endpoint_accept(ep, 500, &inc);
        if (rc == IROH_ERR_TIMEOUT)
            continue;
        if (rc != IROH_OK)
            break;
        if (iroh_incoming_accept(inc, &conn) != IROH_OK)
            conn = NULL;
    }
    int status = 0;
    if (conn) {
        iroh_endpoint_id peer;
        char hex[IROH_ID_HEX_LEN];
        iroh_connection_remote_id(conn, &peer);
        iroh_endpoint_id_to_hex(&peer, hex, sizeof hex);
        fprintf(stderr, "iroh-c: connection from %s\n", hex);
        iroh_send_stream *send;
        iroh_recv_stream *recv;
        rc = iroh_connection_accept_bi(conn, -1, &send, &recv);
        if (rc == IROH_OK) {
            rc = pipe_streams(send, recv);
            /* the peer reads last: wait for its close, briefly */
            if (rc == IROH_OK)
                iroh_connection_closed(conn, 5000);
            iroh_send_stream_free(send);
            iroh_recv_stream_free(recv);
        }
        if (rc != IROH_OK) {
            report_stream_error(rc);
            status = 1;
        }
        iroh_connection_free(conn);
    } else if (!stop_requested) {
        fprintf(stderr, "iroh-c: %s\n", iroh_last_error());
        status = 1;
    }
    iroh_endpoint_close(ep);
    iroh_endpoint_free(ep);
    return status;
}
