/* iroh-c listen / connect: direct QUIC connections over UDP.
 * A first cut on the endpoint core (src/endpoint/ep.h); the public-API issue moves these
 * commands onto include/iroh.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/cmds.h"
#include "endpoint/ep.h"

#define EXIT_USAGE 2
#define IO_CHUNK 65536

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static const char *tls_alert_name(uint64_t code)
{
    switch (code) {
    case 0x128: return "handshake_failure";
    case 0x12a: return "bad_certificate";
    case 0x12b: return "unsupported_certificate";
    case 0x130: return "unknown_ca";
    case 0x16d: return "missing_extension";
    case 0x178: return "no_application_protocol";
    default: return NULL;
    }
}

static void describe_close(const ir_conn *c, char *out, size_t cap)
{
    const ir_close_info *ci = ir_conn_close_info(c);
    if (ci->idle_timeout) {
        snprintf(out, cap, "timed out (no answer from the peer)");
        return;
    }
    if (ci->reset) {
        snprintf(out, cap, "the peer reset the connection (stateless reset)");
        return;
    }
    const char *alert = ci->application ? NULL : tls_alert_name(ci->code);
    if (ci->code == 0x178 && ci->by_peer)
        snprintf(out, cap, "the peer does not speak this ALPN (no_application_protocol, 0x178)");
    else if (ci->code == 0x130 && !ci->by_peer)
        snprintf(out, cap, "wrong key: %s (unknown_ca, 0x130)", ci->reason);
    else
        snprintf(out, cap, "%s %s error %s0x%llx%s%s%s%s",
                 ci->by_peer ? "the peer closed the connection with" : "connection closed with",
                 ci->application ? "application" : "transport", alert ? alert : "",
                 (unsigned long long)ci->code, alert ? "" : "", *ci->reason ? " (" : "",
                 ci->reason, *ci->reason ? ")" : "");
    if (alert && !(ci->code == 0x178 && ci->by_peer) && !(ci->code == 0x130 && !ci->by_peer)) {
        snprintf(out, cap, "%s TLS alert %s (0x%llx)%s%s%s",
                 ci->by_peer ? "the peer closed the connection with" : "handshake failed:", alert,
                 (unsigned long long)ci->code, *ci->reason ? ": " : "", ci->reason, "");
    }
}

static int parse_alpn_opt(const char *v, const uint8_t **alpn, size_t *len)
{
    size_t n = strlen(v);
    if (n == 0 || n > 255)
        return -1;
    *alpn = (const uint8_t *)v;
    *len = n;
    return 0;
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

/* ---- connect -------------------------------------------------------------------------- */

int cmd_connect(int argc, char **argv)
{
    const char *ticket = NULL;
    const uint8_t *alpn = NULL;
    size_t alpn_len = 0;
    double timeout_s = 10.0;
    iroh_socket_addr bind;
    memset(&bind, 0, sizeof bind);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--alpn") == 0 && i + 1 < argc) {
            if (parse_alpn_opt(argv[++i], &alpn, &alpn_len) != 0)
                return cli_usage("--alpn takes 1 to 255 bytes%s", NULL);
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            timeout_s = atof(argv[++i]);
            if (timeout_s <= 0)
                return cli_usage("--timeout takes a positive number of seconds%s", NULL);
        } else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
            if (iroh_socket_addr_parse(argv[++i], &bind) != IROH_OK)
                return cli_usage("--bind: '%s' is not an IP:PORT address", argv[i]);
        } else if (argv[i][0] != '-' && !ticket) {
            ticket = argv[i];
        } else {
            return cli_usage("connect: unexpected argument '%s'", argv[i]);
        }
    }
    if (!ticket || !alpn)
        return cli_usage("usage: iroh-c connect TICKET --alpn ALPN [--timeout SECS]%s", NULL);
    iroh_endpoint_addr *addr;
    int rc = iroh_endpoint_ticket_decode(ticket, &addr);
    if (rc != IROH_OK)
        return cli_api_error("ticket", rc);

    ir_ep_config cfg;
    memset(&cfg, 0, sizeof cfg);
    iroh_secret_key_generate(&cfg.key);
    if (bind.family == 4)
        cfg.bind4 = bind;
    else if (bind.family == 6)
        cfg.bind6 = bind;
    else {
        /* sockets for the families the ticket has */
        size_t n = iroh_endpoint_addr_len(addr);
        for (size_t i = 0; i < n; i++) {
            iroh_transport_addr t;
            iroh_endpoint_addr_get(addr, i, &t);
            if (t.kind == IROH_TRANSPORT_IP && t.ip.family == 4)
                cfg.bind4.family = 4;
            if (t.kind == IROH_TRANSPORT_IP && t.ip.family == 6)
                cfg.bind6.family = 6;
        }
    }
    ir_ep *ep;
    if ((rc = ir_ep_new(&cfg, &ep)) != IROH_OK) {
        iroh_endpoint_addr_free(addr);
        fprintf(stderr, "iroh-c: %s\n", iroh_last_error());
        return 1;
    }
    ir_conn *c;
    rc = ir_ep_connect(ep, addr, alpn, alpn_len, &c);
    iroh_endpoint_addr_free(addr);
    if (rc != IROH_OK) {
        fprintf(stderr, "iroh-c: connect: %s\n", iroh_last_error());
        ir_ep_free(ep);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int status = -1;
    int connected = 0, stdin_eof = 0, finished = 0;
    uint64_t sid = 0;
    int have_stream = 0;
    uint8_t *pending = malloc(IO_CHUNK);
    uint8_t *rbuf = malloc(IO_CHUNK);
    size_t pend_off = 0, pend_len = 0;
    uint64_t deadline = ir_now_ns() + (uint64_t)(timeout_s * 1e9);
    int stdin_fd = 0;
    fcntl(stdin_fd, F_SETFL, fcntl(stdin_fd, F_GETFL) | O_NONBLOCK);
    char why[512];
    while (status < 0) {
        if (stop_requested) {
            fprintf(stderr, "iroh-c: interrupted\n");
            status = 1;
            break;
        }
        struct pollfd pf = {.fd = stdin_fd, .events = POLLIN};
        int want_stdin = have_stream && !stdin_eof && pend_len == 0;
        ir_ep_poll(ep, 200, want_stdin ? &pf : NULL, want_stdin ? 1 : 0);
        ir_event ev;
        while (ir_conn_poll_event(c, &ev)) {
            if (ev.type == IR_EV_CONNECTED)
                connected = 1;
        }
        if (ir_conn_get_state(c) >= IR_CONN_CLOSING) {
            describe_close(c, why, sizeof why);
            fprintf(stderr, "iroh-c: %s\n", why);
            status = 1;
            break;
        }
        if (!connected) {
            if (ir_now_ns() > deadline) {
                fprintf(stderr, "iroh-c: timed out after %.0f s connecting to the peer\n", timeout_s);
                status = 1;
            }
            continue;
        }
        if (!have_stream) {
            if (ir_conn_stream_open(c, 1, &sid) == 0)
                have_stream = 1;
            continue;
        }
        /* stdin -> stream */
        if (want_stdin && (pf.revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(stdin_fd, pending, IO_CHUNK);
            if (n > 0) {
                pend_off = 0;
                pend_len = (size_t)n;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                stdin_eof = 1;
            }
        }
        if (pend_len) {
            long w = ir_conn_stream_write(c, sid, pending + pend_off, pend_len, 0);
            if (w > 0) {
                pend_off += (size_t)w;
                pend_len -= (size_t)w;
            }
        }
        if (stdin_eof && !pend_len && !finished) {
            ir_conn_stream_write(c, sid, NULL, 0, 1);
            finished = 1;
        }
        /* stream -> stdout */
        for (;;) {
            uint64_t code;
            long r = ir_conn_stream_read(c, sid, rbuf, IO_CHUNK, &code);
            if (r > 0) {
                if (write_all_fd(1, rbuf, (size_t)r) != 0) {
                    fprintf(stderr, "iroh-c: cannot write to stdout: %s\n", strerror(errno));
                    status = 1;
                    break;
                }
                continue;
            }
            if (r == 0) {
                /* the peer finished its side: close cleanly, as the echo guide does */
                ir_conn_close(c, 1, 0, "bye!", ir_now_ns());
                status = 0;
            } else if (r == IR_STREAM_RESET) {
                fprintf(stderr, "iroh-c: the peer reset the stream (code %llu)\n",
                        (unsigned long long)code);
                ir_conn_close(c, 1, 0, "", ir_now_ns());
                status = 1;
            }
            break;
        }
    }
    ir_ep_flush(ep);
    free(pending);
    free(rbuf);
    ir_ep_free(ep);
    return status;
}

/* ---- listen ---------------------------------------------------------------------------- */

typedef struct echo_stream {
    ir_conn *c;
    uint64_t id;
    uint8_t *buf;
    size_t len, cap;
    int fin_seen, fin_sent;
} echo_stream;

int cmd_listen(int argc, char **argv)
{
    const uint8_t *alpn = NULL;
    size_t alpn_len = 0;
    int echo = 0;
    const char *secret_file = NULL;
    iroh_socket_addr bind;
    memset(&bind, 0, sizeof bind);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--alpn") == 0 && i + 1 < argc) {
            if (parse_alpn_opt(argv[++i], &alpn, &alpn_len) != 0)
                return cli_usage("--alpn takes 1 to 255 bytes%s", NULL);
        } else if (strcmp(argv[i], "--echo") == 0) {
            echo = 1;
        } else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
            if (iroh_socket_addr_parse(argv[++i], &bind) != IROH_OK)
                return cli_usage("--bind: '%s' is not an IP:PORT address", argv[i]);
        } else if (strcmp(argv[i], "--secret-file") == 0 && i + 1 < argc) {
            secret_file = argv[++i];
        } else {
            return cli_usage("listen: unexpected argument '%s'", argv[i]);
        }
    }
    if (!alpn)
        return cli_usage("usage: iroh-c listen --alpn ALPN --echo [--bind IP:PORT] "
                         "[--secret-file F]%s", NULL);
    if (!echo)
        return cli_usage("listen: only --echo is supported so far%s", NULL);
    ir_ep_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int rc;
    if (secret_file) {
        if ((rc = cli_read_secret_file(secret_file, &cfg.key)) != 0)
            return rc;
    } else {
        iroh_secret_key_generate(&cfg.key);
    }
    if (bind.family == 6)
        cfg.bind6 = bind;
    else if (bind.family == 4)
        cfg.bind4 = bind;
    const uint8_t *alpns[1] = {alpn};
    size_t lens[1] = {alpn_len};
    cfg.alpns = alpns;
    cfg.alpn_lens = lens;
    cfg.n_alpns = 1;
    ir_ep *ep;
    if ((rc = ir_ep_new(&cfg, &ep)) != IROH_OK) {
        fprintf(stderr, "iroh-c: %s\n", iroh_last_error());
        return 1;
    }
    /* the ticket: our id and direct addresses */
    iroh_endpoint_addr *me = iroh_endpoint_addr_new(ir_ep_id(ep));
    iroh_socket_addr addrs[16];
    size_t na = ir_ep_addrs(ep, addrs, 16);
    for (size_t i = 0; i < na; i++)
        iroh_endpoint_addr_add_ip(me, &addrs[i]);
    size_t need = 0;
    iroh_endpoint_ticket_encode(me, NULL, 0, &need);
    char *ticket = malloc(need);
    iroh_endpoint_ticket_encode(me, ticket, need, NULL);
    printf("%s\n", ticket);
    fflush(stdout);
    free(ticket);
    iroh_endpoint_addr_free(me);

    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    echo_stream *es = NULL;
    size_t nes = 0, capes = 0;
    uint8_t *rbuf = malloc(IO_CHUNK);
    while (!stop_requested) {
        ir_ep_poll(ep, 500, NULL, 0);
        while (ir_ep_accept(ep)) {
        }
        for (size_t i = 0; i < ir_ep_conn_count(ep); i++) {
            ir_conn *c = ir_ep_conn_at(ep, i);
            ir_event ev;
            while (ir_conn_poll_event(c, &ev)) {
                if (ev.type == IR_EV_DATAGRAM) {
                    long n;
                    while ((n = ir_conn_datagram_recv(c, rbuf, IO_CHUNK)) >= 0)
                        ir_conn_datagram_send(c, rbuf, (size_t)n);
                }
                if (ev.type == IR_EV_STREAM_OPENED && !(ev.stream_id & 2)) {
                    if (nes == capes) {
                        capes = capes ? capes * 2 : 16;
                        es = realloc(es, capes * sizeof *es);
                    }
                    memset(&es[nes], 0, sizeof es[nes]);
                    es[nes].c = c;
                    es[nes].id = ev.stream_id;
                    nes++;
                }
            }
        }
        /* move bytes: read what arrived, write it back */
        for (size_t k = 0; k < nes; k++) {
            echo_stream *s = &es[k];
            if (s->len) {
                long w = ir_conn_stream_write(s->c, s->id, s->buf, s->len, 0);
                if (w > 0) {
                    memmove(s->buf, s->buf + w, s->len - (size_t)w);
                    s->len -= (size_t)w;
                }
            }
            while (!s->fin_seen && s->len < (1u << 20)) {
                uint64_t code;
                long r = ir_conn_stream_read(s->c, s->id, rbuf, IO_CHUNK, &code);
                if (r > 0) {
                    if (s->len + (size_t)r > s->cap) {
                        s->cap = (s->len + (size_t)r) * 2;
                        s->buf = realloc(s->buf, s->cap);
                    }
                    memcpy(s->buf + s->len, rbuf, (size_t)r);
                    s->len += (size_t)r;
                    long w = ir_conn_stream_write(s->c, s->id, s->buf, s->len, 0);
                    if (w > 0) {
                        memmove(s->buf, s->buf + w, s->len - (size_t)w);
                        s->len -= (size_t)w;
                    }
                    continue;
                }
                if (r == 0 || r == IR_STREAM_RESET || r == IR_STREAM_ERR)
                    s->fin_seen = 1;
                break;
            }
            if (s->fin_seen && !s->len && !s->fin_sent) {
                ir_conn_stream_write(s->c, s->id, NULL, 0, 1);
                s->fin_sent = 1;
            }
        }
        /* forget finished streams and closed connections */
        for (size_t k = 0; k < nes;) {
            ir_conn_state st = ir_conn_get_state(es[k].c);
            if ((es[k].fin_sent && !es[k].len) || st >= IR_CONN_CLOSING) {
                free(es[k].buf);
                es[k] = es[--nes];
                continue;
            }
            k++;
        }
        for (size_t i = 0; i < ir_ep_conn_count(ep);) {
            ir_conn *c = ir_ep_conn_at(ep, i);
            if (ir_conn_get_state(c) == IR_CONN_CLOSED) {
                for (size_t k = 0; k < nes;) {
                    if (es[k].c == c) {
                        free(es[k].buf);
                        es[k] = es[--nes];
                        continue;
                    }
                    k++;
                }
                ir_ep_release(ep, c);
                continue;
            }
            i++;
        }
    }
    ir_ep_close(ep, 0, "", 500);
    for (size_t k = 0; k < nes; k++)
        free(es[k].buf);
    free(es);
    free(rbuf);
    ir_ep_free(ep);
    return 0;
}
