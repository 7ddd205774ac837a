/* iroh-c listen-tcp / connect-tcp / listen-unix / connect-unix: dumbpipe's tunnels on the
 * public API (include/iroh.h).
 *
 * connect-* accepts local connections (TCP or a unix socket) and carries each over its own
 * bidirectional stream of one iroh connection to the peer, opened at the first local
 * connection and opened again when it has died. listen-* accepts iroh connections and
 * forwards each of their bidirectional streams to a new local connection (TCP to
 * HOST:PORT, or the unix socket). Each stream speaks dumbpipe's protocol: ALPN DUMBPIPEV0,
 * the opener (the connect side) writes "hello" first, the acceptor checks it before any
 * data; with --alpn, raw streams on that ALPN (no hello), as dumbpipe's --custom-alpn.
 *
 * One forwarded connection is two threads: one reads the socket into the send stream, the
 * other the receive stream into the socket. Sockets are non-blocking and every wait polls
 * the stop fd (signals) and the forward's own abort eventfd as well, so nothing waits on a
 * socket for ever, and a slow local reader stalls only its own stream (QUIC's per-stream
 * flow control holds the peer's sender; the other streams go on). Memory per forward:
 * two IO_CHUNK buffers and two small thread stacks, plus the library's bounded stream
 * buffers.
 *
 * Ends: a local end of file finishes the send stream and the stream's end shuts the
 * socket's write side down (half-close both ways); a reset of the local connection
 * (ECONNRESET, EPIPE) resets the send stream and stops the receive stream, and a reset or
 * a stop from the peer (or a lost connection) closes the local connection with a TCP RST
 * (SO_LINGER 0). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "apps/net_opts.h"

#define IO_CHUNK 65536
#define THREAD_STACK (256 * 1024)
/* concurrent streams the peer may open on one connection (iroh's default is 100): the
 * connect side opens one per local connection */
#define TUNNEL_MAX_STREAMS 1024
/* forwards at once, each two threads: more local connections (or peer streams) are
 * refused with a reset until some end */
#define MAX_FORWARDS 2048
/* listen side: forwards at once for one peer (EndpointId), so that one peer cannot take
 * every slot: a quarter of the total */
#define PEER_SHARE 4
/* how long a peer may take to send its hello */
#define HELLO_TIMEOUT_MS 10000
/* how long a connection to the local target may take */
#define TARGET_CONNECT_MS 10000
/* how often a forward waiting for its local side to read checks the peer's end */
#define PEER_CHECK_MS 1000
/* the stream error code when the local side failed (dumbpipe resets with 0 as well) */
#define RESET_CODE 0

/* the connection shared by the connect side's forwards: freed by the last reference */
typedef struct shared_conn {
    iroh_connection *h;
    unsigned refs;    /* under tunnel.mu */
    unsigned streams; /* streams opened on it, under tunnel.mu */
    int own;          /* one local connection's alone (tunnel.per_stream) */
} shared_conn;

typedef struct tunnel {
    const char *cmd;       /* "listen-tcp", ... for messages */
    int is_unix;
    const char *where;     /* HOST:PORT, IP:PORT or the socket's path, as given */
    struct addrinfo *ai;   /* TCP: the resolved addresses */
    struct sockaddr_un sun;
    socklen_t sun_len;
    int raw;               /* --alpn given: no hello */
    const char *alpns[MAX_ALPNS];
    size_t n_alpns;
    int verbose;
    double timeout_s;
    iroh_endpoint *ep;
    iroh_endpoint_addr *peer; /* connect side */
    pthread_attr_t attr;      /* detached, small stacks: the jobs */
    pthread_attr_t join_attr; /* joinable, small stacks: a forward's second thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t active;            /* running forward threads */
    unsigned max_forwards;    /* MAX_FORWARDS (IROH_C_TUNNEL_MAX_FORWARDS in the tests) */
    struct peer_slot {        /* listen side: forwards per peer, under mu; max_forwards */
        iroh_endpoint_id id;
        unsigned n;
        int said;
    } *peers;
    shared_conn *conn;        /* connect side: the current connection, or NULL */
    int dialing;              /* connect side: a dial of the shared connection is under
                                 way (outside mu), under mu */
    unsigned dial_gen;        /* connect side: dials ended, under mu (cv on each) */
    int per_stream;           /* connect side: a connection per local connection, under
                                 mu (--connection-per-stream, or a peer found to close
                                 its connection after one stream: dumbpipe 0.39) */
} tunnel;

/* ---- threads --------------------------------------------------------------------------- */

typedef struct job {
    tunnel *t;
    void *(*fn)(struct job *);
    int fd;                  /* connect side: the accepted local connection */
    char peer[IROH_ID_HEX_LEN]; /* listen side: the peer's short id (for messages) */
    iroh_send_stream *send;  /* listen side: the accepted stream */
    iroh_recv_stream *recv;
    int slot;                /* listen side: its peer's entry in t->peers, else -1 */
} job;

static void *job_main(void *arg)
{
    job *j = arg;
    tunnel *t = j->t;
    int slot = j->slot;
    j->fn(j);
    free(j);
    pthread_mutex_lock(&t->mu);
    if (slot >= 0)
        t->peers[slot].n--;
    t->active--;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* runs j on a detached thread counted in t->active (and, with peer, in that peer's
 * entry of t->peers): 0, or -1 (j not taken; said once per burst when max_forwards are
 * running, or that peer's share) */
static int spawn_job(tunnel *t, job *j, const iroh_endpoint_id *peer, const char *who)
{
    pthread_t th;
    static int said_full;
    int slot = -1;
    j->slot = -1;
    pthread_mutex_lock(&t->mu);
    if (t->active >= t->max_forwards) {
        if (!said_full)
            fprintf(stderr, "iroh-c: %s: %u connections are being forwarded: refusing more\n",
                    t->cmd, t->max_forwards);
        said_full = 1;
        pthread_mutex_unlock(&t->mu);
        return -1;
    }
    said_full = 0;
    if (peer && t->peers) {
        /* at most active peers have forwards: a free entry is always there */
        for (unsigned i = 0; i < t->max_forwards; i++) {
            if (t->peers[i].n && memcmp(&t->peers[i].id, peer, sizeof *peer) == 0) {
                slot = (int)i;
                break;
            }
            if (slot < 0 && !t->peers[i].n)
                slot = (int)i;
        }
        struct peer_slot *ps = &t->peers[slot];
        if (!ps->n) {
            ps->id = *peer;
            ps->said = 0;
        }
        unsigned share = t->max_forwards / PEER_SHARE ? t->max_forwards / PEER_SHARE : 1;
        if (ps->n >= share) {
            if (!ps->said)
                fprintf(stderr, "iroh-c: %s: %s has %u streams being forwarded: refusing "
                                "more of its streams\n", t->cmd, who, share);
            ps->said = 1;
            pthread_mutex_unlock(&t->mu);
            return -1;
        }
        ps->said = 0;
        ps->n++;
        j->slot = slot;
    }
    t->active++;
    pthread_mutex_unlock(&t->mu);
    if (pthread_create(&th, &t->attr, job_main, j) != 0) {
        pthread_mutex_lock(&t->mu);
        if (slot >= 0)
            t->peers[slot].n--;
        t->active--;
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
        return -1;
    }
    return 0;
}

static void wait_jobs(tunnel *t)
{
    pthread_mutex_lock(&t->mu);
    while (t->active)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

/* ---- local sockets ----------------------------------------------------------------------- */

/* HOST:PORT or [IPv6]:PORT into its parts (host without brackets): 0, or -1 */
static int split_host_port(const char *s, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon;
    size_t n;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -1;
        n = (size_t)(end - s - 1);
        colon = end + 1;
        if (n == 0 || n >= hlen)
            return -1;
        memcpy(host, s + 1, n);
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -1; /* none, or a bare IPv6 address: its port is ambiguous */
        n = (size_t)(colon - s);
        if (n == 0 || n >= hlen)
            return -1;
        memcpy(host, s, n);
    }
    host[n] = 0;
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (pl == 0 || pl >= plen || strspn(p, "0123456789") != pl || atol(p) > 65535)
        return -1;
    memcpy(port, p, pl + 1);
    return 0;
}

/* resolves the option's HOST:PORT (passive: for bind): 0, or EXIT_USAGE said on stderr */
static int resolve_where(tunnel *t, const char *opt, int passive)
{
    char host[256], port[8];
    if (split_host_port(t->where, host, sizeof host, port, sizeof port) != 0)
        return cli_usage("%s takes HOST:PORT (an IPv6 address in brackets: [::1]:8080)", opt);
    if (!passive && atol(port) == 0) {
        fprintf(stderr, "iroh-c: %s: %s: port 0 cannot be connected to\n", t->cmd, t->where);
        return EXIT_USAGE;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = passive ? AI_PASSIVE : 0};
    int e = getaddrinfo(host, port, &hints, &t->ai);
    if (e != 0) {
        fprintf(stderr, "iroh-c: %s: cannot resolve '%s': %s\n", t->cmd, host, gai_strerror(e));
        return EXIT_USAGE;
    }
    return 0;
}

static int set_unix_path(tunnel *t)
{
    size_t n = strlen(t->where);
    if (n == 0 || n >= sizeof t->sun.sun_path) {
        fprintf(stderr, "iroh-c: %s: --path must have 1 to %zu bytes\n", t->cmd,
                sizeof t->sun.sun_path - 1);
        return EXIT_USAGE;
    }
    t->sun.sun_family = AF_UNIX;
    memcpy(t->sun.sun_path, t->where, n + 1);
    t->sun_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* waits for events on fd, the stop fd and (if >= 0) abort: 1 when fd is ready, 0 when a
 * signal came or abort was raised; ms -1 waits for ever, else 0 after ms */
static int wait_fd(int fd, short events, int abort_fd, int ms, int *timed_out)
{
    struct pollfd p[3] = {{fd, events, 0}, {cli_stop_fd(), POLLIN, 0}, {abort_fd, POLLIN, 0}};
    for (;;) {
        int r = poll(p, abort_fd >= 0 ? 3 : 2, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0 && timed_out)
            *timed_out = 1;
        if (r <= 0 || p[1].revents || (abort_fd >= 0 && p[2].revents))
            return r < 0 ? 1 : 0; /* poll failing: let the socket call say why */
        return 1;
    }
}

/* a new connection to the local target (non-blocking): the fd, or -1 with *why */
static int connect_target(tunnel *t, char *why, size_t len)
{
    struct sockaddr_un *sun = &t->sun;
    struct addrinfo one = {.ai_family = AF_UNIX, .ai_socktype = SOCK_STREAM,
                           .ai_addr = (struct sockaddr *)sun, .ai_addrlen = t->sun_len};
    snprintf(why, len, "no address");
    for (struct addrinfo *a = t->is_unix ? &one : t->ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            snprintf(why, len, "%s", strerror(errno));
            continue;
        }
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        if (r != 0 && errno == EINPROGRESS) {
            int to = 0, err = 0;
            socklen_t el = sizeof err;
            if (!wait_fd(fd, POLLOUT, -1, TARGET_CONNECT_MS, &to)) {
                close(fd);
                snprintf(why, len, "%s", to ? "timed out" : "interrupted");
                if (!to)
                    return -1;
                continue;
            }
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
            r = err ? -1 : 0;
            errno = err;
        }
        if (r == 0) {
            if (!t->is_unix) {
                int one_ = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof one_);
            }
            return fd;
        }
        snprintf(why, len, "%s", strerror(errno));
        close(fd);
    }
    return -1;
}

/* closes fd; with rst, so that a TCP peer sees a reset (RST) rather than an end */
static void close_socket(int fd, int rst)
{
    if (rst) {
        struct linger l = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(fd);
}

/* ---- one forwarded connection: socket <-> stream pair ------------------------------------ */

typedef struct fwd {
    tunnel *t;
    int fd;
    iroh_send_stream *send;
    iroh_recv_stream *recv;
    int abort_fd;        /* eventfd, readable once aborted: ends both directions */
    atomic_int aborted;  /* the local connection is closed with a reset */
    atomic_int peer_end; /* the peer reset or stopped (or the connection died) */
    uint64_t up, down;   /* bytes socket -> stream, stream -> socket */
} fwd;

static void fwd_abort(fwd *f, int by_peer)
{
    if (atomic_exchange(&f->aborted, 1))
        return;
    if (by_peer)
        atomic_store(&f->peer_end, 1);
    iroh_send_stream_reset(f->send, RESET_CODE);  /* wakes a blocked write */
    iroh_recv_stream_stop(f->recv, RESET_CODE);   /* wakes a blocked read */
    uint64_t one = 1;
    ssize_t w = write(f->abort_fd, &one, sizeof one);
    (void)w;
}

/* socket -> send stream, on its own thread */
static void *socket_to_stream(void *arg)
{
    fwd *f = arg;
    uint8_t *buf = malloc(IO_CHUNK);
    if (!buf) {
        fwd_abort(f, 0);
        return NULL;
    }
    for (;;) {
        ssize_t n = read(f->fd, buf, IO_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (!wait_fd(f->fd, POLLIN, f->abort_fd, -1, NULL)) {
                fwd_abort(f, 0); /* a signal (or the other direction aborted) */
                break;
            }
            continue;
        }
        if (n < 0) { /* ECONNRESET: the local side reset: so does the stream */
            fwd_abort(f, 0);
            break;
        }
        if (n == 0) { /* half-close: the local end of file is the stream's finish */
            if (iroh_send_stream_finish(f->send) != IROH_OK)
                fwd_abort(f, 1);
            break;
        }
        if (iroh_send_stream_write_all(f->send, buf, (size_t)n) != IROH_OK) {
            fwd_abort(f, 1); /* stopped by the peer, or the connection is gone */
            break;
        }
        f->up += (uint64_t)n;
    }
    free(buf);
    return NULL;
}

/* whether the peer reset the receive stream or the connection ended, asked without
 * taking any data: a read of 0 bytes that may not wait returns IROH_ERR_TIMEOUT while
 * the stream is open (data waiting or not), OK at its end, and the error otherwise */
static int peer_gone(fwd *f)
{
    size_t n;
    iroh_recv_stream_set_timeout(f->recv, 0);
    int rc = iroh_recv_stream_read(f->recv, NULL, 0, &n);
    iroh_recv_stream_set_timeout(f->recv, -1);
    return rc != IROH_OK && rc != IROH_ERR_TIMEOUT;
}

/* receive stream -> socket, in the calling thread. While the local side takes nothing,
 * the peer is asked every PEER_CHECK_MS whether it reset the stream or the connection
 * ended, so a local client that neither reads nor sends holds its forward (and the
 * connection) only that long after the peer has gone. */
static void stream_to_socket(fwd *f)
{
    uint8_t *buf = malloc(IO_CHUNK);
    if (!buf) {
        fwd_abort(f, 0);
        return;
    }
    for (;;) {
        size_t n;
        int rc = iroh_recv_stream_read(f->recv, buf, IO_CHUNK, &n);
        if (rc != IROH_OK) { /* the peer reset, the connection died, or we aborted */
            fwd_abort(f, 1);
            break;
        }
        if (n == 0) { /* the stream's end: half-close the socket */
            shutdown(f->fd, SHUT_WR);
            break;
        }
        size_t off = 0;
        while (off < n) {
            ssize_t w = send(f->fd, buf + off, n - off, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && errno == EAGAIN) {
                int to = 0;
                if (!wait_fd(f->fd, POLLOUT, f->abort_fd, PEER_CHECK_MS, &to) && !to)
                    break;
                if (to && peer_gone(f)) {
                    fwd_abort(f, 1);
                    break;
                }
                continue;
            }
            if (w < 0)
                break; /* EPIPE, ECONNRESET: the local side is gone */
            off += (size_t)w;
        }
        if (off < n) {
            fwd_abort(f, 0);
            break;
        }
        f->down += n;
    }
    free(buf);
}

/* forwards between fd and the stream pair until both directions are done; closes fd and
 * frees the streams */
static void forward(tunnel *t, int fd, iroh_send_stream *send, iroh_recv_stream *recv,
                    const char *who, int flush_ms)
{
    fwd f = {.t = t, .fd = fd, .send = send, .recv = recv};
    atomic_init(&f.aborted, 0);
    atomic_init(&f.peer_end, 0);
    f.abort_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_t th;
    if (f.abort_fd < 0 || pthread_create(&th, &t->join_attr, socket_to_stream, &f) != 0) {
        fprintf(stderr, "iroh-c: %s: cannot start forwarding %s: %s\n", t->cmd, who,
                strerror(errno));
        atomic_store(&f.aborted, 1);
        iroh_send_stream_reset(send, RESET_CODE);
        iroh_recv_stream_stop(recv, RESET_CODE);
    } else {
        stream_to_socket(&f);
        pthread_join(th, NULL);
    }
    int aborted = atomic_load(&f.aborted);
    if (t->verbose)
        fprintf(stderr, "iroh-c: %s: %s %s: %llu bytes sent, %llu received\n", t->cmd, who,
                aborted ? (atomic_load(&f.peer_end) ? "reset by the peer" : "reset")
                        : "closed",
                (unsigned long long)f.up, (unsigned long long)f.down);
    close_socket(fd, aborted);
    if (f.abort_fd >= 0)
        close(f.abort_fd);
    /* a connection of this stream alone is closed next: let the peer have it all */
    if (!aborted && flush_ms)
        iroh_send_stream_flushed(send, flush_ms);
    /* a finished send stream is delivered after this; an aborted one was reset */
    iroh_send_stream_free(send);
    iroh_recv_stream_free(recv);
}

/* ---- listen-tcp / listen-unix ------------------------------------------------------------ */

static void peer_hex(iroh_connection *c, char *hex)
{
    iroh_endpoint_id id;
    iroh_connection_remote_id(c, &id);
    iroh_endpoint_id_fmt_short(&id, hex, IROH_ID_HEX_LEN);
}

/* one accepted stream: the hello, then a new local connection */
static void *serve_stream(job *j)
{
    tunnel *t = j->t;
    char who[IROH_ID_HEX_LEN + 40], why[200];
    snprintf(who, sizeof who, "stream %llu of %s",
             (unsigned long long)iroh_recv_stream_id(j->recv), j->peer);
    if (!t->raw) {
        /* a peer that opens streams and says nothing holds no thread for long */
        iroh_recv_stream_set_timeout(j->recv, HELLO_TIMEOUT_MS);
        int rc = dumbpipe_read_hello(j->recv);
        iroh_recv_stream_set_timeout(j->recv, -1);
        if (rc != IROH_OK) {
            if (!cli_stop_signal()) {
                if (rc == 1)
                    fprintf(stderr, "iroh-c: %s: %s: invalid handshake (not dumbpipe's "
                                    "\"hello\"): stream reset\n", t->cmd, who);
                else if (rc == IROH_ERR_TIMEOUT)
                    fprintf(stderr, "iroh-c: %s: %s: no hello within %d s: stream reset\n",
                            t->cmd, who, HELLO_TIMEOUT_MS / 1000);
                else
                    fprintf(stderr, "iroh-c: %s: %s: %s\n", t->cmd, who, iroh_last_error());
            }
            iroh_send_stream_reset(j->send, RESET_CODE);
            iroh_recv_stream_stop(j->recv, RESET_CODE);
            goto out;
        }
    }
    int fd = connect_target(t, why, sizeof why);
    if (fd < 0) {
        if (!cli_stop_signal())
            fprintf(stderr, "iroh-c: %s: cannot connect to %s: %s (stream reset)\n", t->cmd,
                    t->where, why);
        iroh_send_stream_reset(j->send, RESET_CODE);
        iroh_recv_stream_stop(j->recv, RESET_CODE);
        goto out;
    }
    if (t->verbose)
        fprintf(stderr, "iroh-c: %s: %s -> %s\n", t->cmd, who, t->where);
    forward(t, fd, j->send, j->recv, who, 0);
    return NULL;
out:
    iroh_send_stream_free(j->send);
    iroh_recv_stream_free(j->recv);
    return NULL;
}

/* the router's handler for each connection: every bidirectional stream is forwarded on
 * its own thread; the streams outlive the connection handle (the router frees it) */
static int tunnel_handler(void *ctx, iroh_connection *conn)
{
    tunnel *t = ctx;
    if (cli_stop_watch_conn(conn) != 0)
        return 0;
    char peer[IROH_ID_HEX_LEN];
    iroh_endpoint_id peer_id;
    iroh_connection_remote_id(conn, &peer_id);
    peer_hex(conn, peer);
    if (t->verbose)
        fprintf(stderr, "iroh-c: %s: connection from %s\n", t->cmd, peer);
    for (;;) {
        job *j = calloc(1, sizeof *j);
        if (!j)
            break;
        j->t = t;
        memcpy(j->peer, peer, sizeof peer);
        j->fn = serve_stream;
        if (iroh_connection_accept_bi(conn, -1, &j->send, &j->recv) != IROH_OK) {
            free(j);
            break;
        }
        if (spawn_job(t, j, &peer_id, peer) != 0) {
            iroh_send_stream_reset(j->send, RESET_CODE);
            iroh_recv_stream_stop(j->recv, RESET_CODE);
            iroh_send_stream_free(j->send);
            iroh_recv_stream_free(j->recv);
            free(j);
        }
    }
    /* the stream threads go on with their streams after the router frees conn */
    cli_stop_forget_conn(conn);
    return 0;
}

/* serves until a signal; *ep_freed when the router took the endpoint (and freed it) */
static int run_listen(tunnel *t, int *ep_freed)
{
    iroh_router *router;
    if (net_router(t->ep, t->alpns, t->n_alpns, tunnel_handler, t, &router) != 0)
        return 1; /* no router: no forward started */
    fprintf(stderr, "iroh-c: forwarding incoming streams to %s\n", t->where);
    cli_stop_wait();
    /* the watcher closed the connections and the endpoint: every forward wakes (its
     * stream calls fail, its polls see the stop fd) and ends; the shutdown waits for
     * the handlers, so no forward starts after wait_jobs, and the forwards' streams are
     * all freed before the endpoint */
    cli_stop_forget_endpoint();
    iroh_router_shutdown(router);
    wait_jobs(t);
    net_metrics_stop(); /* it reads the endpoint the router frees */
    iroh_router_free(router); /* frees the endpoint */
    *ep_freed = 1;
    return 0;
}

/* ---- connect-tcp / connect-unix ---------------------------------------------------------- */

static void conn_release(tunnel *t, shared_conn *sc)
{
    pthread_mutex_lock(&t->mu);
    int last = --sc->refs == 0;
    pthread_mutex_unlock(&t->mu);
    if (last) {
        cli_stop_forget_conn(sc->h);
        iroh_connection_close(sc->h, 0, "bye!");
        iroh_connection_free(sc->h);
        free(sc);
    }
}

/* a new connection to the peer with one reference (refs), or NULL (said) */
static shared_conn *conn_dial(tunnel *t, unsigned refs)
{
    iroh_connection *h = NULL;
    shared_conn *sc;
    int rc = iroh_endpoint_connect_alpns(t->ep, t->peer, t->alpns, t->n_alpns, &h);
    if (rc != IROH_OK) {
        if (!cli_stop_signal())
            report_connect_error(rc, t->timeout_s);
        return NULL;
    }
    if (!(sc = calloc(1, sizeof *sc))) {
        iroh_connection_close(h, 0, "out of memory");
        iroh_connection_free(h);
        return NULL;
    }
    sc->h = h;
    sc->refs = refs;
    /* after a signal the watcher has closed it already: it goes with its users */
    cli_stop_watch_conn(h);
    if (t->verbose) {
        char peer[IROH_ID_HEX_LEN];
        peer_hex(h, peer);
        fprintf(stderr, "iroh-c: %s: connected to %s\n", t->cmd, peer);
    }
    return sc;
}

/* the shared connection, dialed if there is none or it died (dead: one the caller found
 * dead and still holds, dropped if it is still the current one); with per_stream a new
 * connection of the caller's own. A reference, or NULL (said). */
static shared_conn *conn_get(tunnel *t, shared_conn *dead)
{
    shared_conn *drop = NULL, *sc = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->conn && (t->conn == dead || iroh_connection_closed(t->conn->h, 0) == IROH_OK)) {
        iroh_close_reason why;
        iroh_connection_close_reason(t->conn->h, &why);
        /* dumbpipe 0.39's listen-tcp serves the first stream of a connection and then
         * drops it (code 0, no reason): the streams that come meanwhile are never
         * served, so from now on each local connection gets a connection of its own.
         * (A peer that drops the connection otherwise costs only more connections.) */
        int one_stream_peer = why.kind == IROH_CLOSE_APPLICATION && why.code == 0 &&
                              !why.reason[0] && t->conn->streams > 0;
        if (!cli_stop_signal())
            fprintf(stderr, "iroh-c: %s: the connection ended (%s%s%s)%s\n", t->cmd,
                    why.by_peer ? "by the peer" : "locally", why.reason[0] ? ": " : "",
                    why.reason,
                    one_stream_peer ? ": the peer serves one stream per connection (as "
                                      "dumbpipe's listen-tcp): a connection for each local "
                                      "connection from now on"
                                    : ": dialing again");
        if (one_stream_peer)
            t->per_stream = 1;
        drop = t->conn;
        t->conn = NULL;
    }
    if (t->per_stream) {
        pthread_mutex_unlock(&t->mu);
        if (drop)
            conn_release(t, drop);
        if (cli_stop_signal() || !(sc = conn_dial(t, 1)))
            return NULL;
        sc->own = 1;
        return sc;
    }
    /* dialed outside the lock (the accept loop and the other forwards go on meanwhile);
     * local connections that come during a dial wait for that one dial instead of
     * starting their own, and if it fails they fail with it instead of each waiting out
     * a dial of its own against a peer that is not there */
    while (!(sc = t->conn) && !cli_stop_signal()) {
        if (t->dialing) {
            unsigned gen = t->dial_gen;
            while (t->dialing && t->dial_gen == gen)
                pthread_cond_wait(&t->cv, &t->mu);
            if (!t->conn)
                break; /* that dial failed: so does this local connection */
            continue;
        }
        t->dialing = 1;
        pthread_mutex_unlock(&t->mu);
        if (drop)
            conn_release(t, drop);
        drop = NULL;
        shared_conn *n = conn_dial(t, 1); /* the tunnel's own reference */
        pthread_mutex_lock(&t->mu);
        t->dialing = 0;
        t->dial_gen++;
        t->conn = n; /* only a dialer sets it, and there is one at a time */
        pthread_cond_broadcast(&t->cv);
        if (!n)
            break;
    }
    if (sc)
        sc->refs++;
    pthread_mutex_unlock(&t->mu);
    if (drop)
        conn_release(t, drop);
    return sc;
}

/* one accepted local connection: its own stream of the shared connection */
static void *serve_local(job *j)
{
    tunnel *t = j->t;
    set_nonblock(j->fd);
    if (!t->is_unix) {
        int one = 1;
        setsockopt(j->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    iroh_send_stream *send = NULL;
    iroh_recv_stream *recv = NULL;
    shared_conn *sc = NULL, *dead = NULL;
    /* a connection that died since the last use is found here, dropped and dialed
     * again: one retry. dead keeps its reference until conn_get has compared it, so
     * its address cannot be a new connection's meanwhile. */
    for (int attempt = 0; attempt < 2; attempt++) {
        sc = conn_get(t, dead);
        if (dead)
            conn_release(t, dead);
        dead = NULL;
        if (!sc)
            break;
        pthread_mutex_lock(&t->mu);
        sc->streams++;
        pthread_mutex_unlock(&t->mu);
        if (iroh_connection_open_bi(sc->h, &send, &recv) == IROH_OK &&
            (t->raw || dumbpipe_send_hello(send) == IROH_OK))
            break;
        if (send) {
            iroh_send_stream_free(send);
            iroh_recv_stream_free(recv);
            send = NULL;
            recv = NULL;
        }
        if (iroh_connection_closed(sc->h, 0) != IROH_OK || cli_stop_signal()) {
            if (!cli_stop_signal())
                fprintf(stderr, "iroh-c: %s: cannot open a stream: %s\n", t->cmd,
                        iroh_last_error());
            conn_release(t, sc);
            sc = NULL;
            break;
        }
        dead = sc;
        sc = NULL;
    }
    if (dead)
        conn_release(t, dead);
    if (!send) {
        close_socket(j->fd, 1); /* the local client sees a reset, not an empty answer */
        return NULL;
    }
    char who[80];
    snprintf(who, sizeof who, "stream %llu", (unsigned long long)iroh_send_stream_id(send));
    if (t->verbose)
        fprintf(stderr, "iroh-c: %s: local connection -> %s\n", t->cmd, who);
    /* a connection of its own is closed after the forward: what was sent is delivered
     * first (up to 5 s) */
    forward(t, j->fd, send, recv, who, sc->own ? 5000 : 0);
    conn_release(t, sc);
    return NULL;
}

/* the local listening socket: the fd, or -1 (said on stderr) */
static int listen_local(tunnel *t)
{
    struct addrinfo one = {.ai_family = AF_UNIX, .ai_socktype = SOCK_STREAM,
                           .ai_addr = (struct sockaddr *)&t->sun, .ai_addrlen = t->sun_len};
    int err = 0;
    for (struct addrinfo *a = t->is_unix ? &one : t->ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int on = 1;
        if (!t->is_unix)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 512) == 0) {
            if (t->is_unix) {
                fprintf(stderr, "iroh-c: %s: listening on %s\n", t->cmd, t->where);
            } else {
                struct sockaddr_storage ss;
                socklen_t sl = sizeof ss;
                char h[INET6_ADDRSTRLEN], p[8];
                if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
                    getnameinfo((struct sockaddr *)&ss, sl, h, sizeof h, p, sizeof p,
                                NI_NUMERICHOST | NI_NUMERICSERV) == 0)
                    fprintf(stderr, "iroh-c: %s: listening on %s%s%s:%s\n", t->cmd,
                            ss.ss_family == AF_INET6 ? "[" : "", h,
                            ss.ss_family == AF_INET6 ? "]" : "", p);
            }
            return fd;
        }
        err = errno;
        close(fd);
    }
    fprintf(stderr, "iroh-c: %s: cannot listen on %s: %s%s\n", t->cmd, t->where, strerror(err),
            t->is_unix && err == EADDRINUSE ? " (remove the file if no one uses it)" : "");
    return -1;
}

static int run_connect(tunnel *t)
{
    int lfd = listen_local(t);
    if (lfd < 0)
        return 1;
    int status = 0, accept_err = 0; /* the errno of the current accept failures */
    for (;;) {
        if (!wait_fd(lfd, POLLIN, -1, -1, NULL))
            break; /* a signal */
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
                continue;
            /* EMFILE and the like: say so once for the episode, and give the running
             * forwards time to end instead of spinning on the readable listener */
            if (accept_err != errno)
                fprintf(stderr, "iroh-c: %s: accept: %s (retrying)\n", t->cmd,
                        strerror(errno));
            accept_err = errno;
            poll(NULL, 0, 200);
            continue;
        }
        if (accept_err)
            fprintf(stderr, "iroh-c: %s: accepting again\n", t->cmd);
        accept_err = 0;
        job *j = calloc(1, sizeof *j);
        if (!j || (j->t = t, j->fn = serve_local, j->fd = fd, spawn_job(t, j, NULL, NULL) != 0)) {
            fprintf(stderr, "iroh-c: %s: cannot take a local connection: out of resources\n",
                    t->cmd);
            free(j);
            close_socket(fd, 1);
        }
    }
    close(lfd);
    if (t->is_unix)
        unlink(t->where);
    /* the watcher closed the connection and the endpoint: the forwards end */
    wait_jobs(t);
    pthread_mutex_lock(&t->mu);
    shared_conn *sc = t->conn;
    t->conn = NULL;
    pthread_mutex_unlock(&t->mu);
    if (sc)
        conn_release(t, sc);
    return status;
}

/* ---- the commands ------------------------------------------------------------------------ */

#define TUNNEL_OPTS_HELP \
    "  --alpn ALPN          speak ALPN with raw streams instead of dumbpipe's protocol\n" \
    "                       (DUMBPIPEV0 and its \"hello\"), as dumbpipe's --custom-alpn\n" \
    "  --verbose            a line on stderr for each connection and stream, and each time\n" \
    "                       the selected path changes\n" \
    "  --secret-file FILE   this endpoint's secret key (default: IROH_SECRET, else a new\n" \
    "                       random key); the file must be private (chmod 600)\n" \
    "  --bind IP:PORT       the endpoint's local UDP address (repeatable: one IPv4, one IPv6)\n" \
    "  --external-addr IP:PORT  an address this endpoint is reachable at besides its own\n" \
    "  --relay URL          use this relay (repeatable; default: n0's public relays)\n" \
    "  --no-relay           no relays: direct addresses only\n" \
    "  --relay-ca PEM       trust this certificate for https relays (not the system's)\n" \
    "  --relay-token TOKEN  access token for relays that require one\n" \
    "  --relay-quic-port N  the relays' UDP port for address discovery (default 7842, 0: off)\n" \
    METRICS_HELP \
    "  --quiet              no note of a generated secret key on a terminal\n" \
    "\n" LOOKUP_HELP "\n" \
    "environment: IROH_SECRET (a secret key), IROH_LOG; see 'iroh-c --help'.\n"

#define CONNECT_PER_STREAM_HELP \
    "  --connection-per-stream  a connection of its own for each local connection, as\n" \
    "                       dumbpipe's connect-tcp dials (default: one for all; chosen\n" \
    "                       by itself once the peer closes a connection after its first\n" \
    "                       stream, as dumbpipe 0.39's listen-tcp does)\n"

static const char USAGE_LISTEN_TCP[] =
    "usage: iroh-c listen-tcp --host HOST:PORT [options]\n"
    "\n"
    "Forwards each bidirectional stream of every incoming connection to a new TCP\n"
    "connection to HOST:PORT (dumbpipe's listen-tcp; its ticket is printed on stderr as\n"
    "\"iroh-c: ticket: endpoint...\"). Peers run 'iroh-c connect-tcp' or 'dumbpipe\n"
    "connect-tcp' with it. Half-closes and resets travel both ways. SIGINT and SIGTERM\n"
    "end every forward and exit with 130 and 143.\n"
    "\n"
    "options:\n"
    "  --host HOST:PORT     where to forward to (a name or an IP; [IPv6]:PORT)\n" TUNNEL_OPTS_HELP;

static const char USAGE_CONNECT_TCP[] =
    "usage: iroh-c connect-tcp --addr IP:PORT TICKET [options]\n"
    "\n"
    "Accepts TCP connections on IP:PORT and carries each over its own bidirectional\n"
    "stream of one connection to the endpoint of TICKET (or an EndpointId), dialed at the\n"
    "first TCP connection and dialed again when it has died (dumbpipe's connect-tcp).\n"
    "The address actually bound is said on stderr (\"iroh-c: connect-tcp: listening on\n"
    "IP:PORT\"; port 0 takes a free one). SIGINT and SIGTERM exit with 130 and 143.\n"
    "\n"
    "options:\n"
    "  --addr IP:PORT       where to accept TCP connections (e.g. 127.0.0.1:8080)\n"
    "  --timeout SECS       give up each dial after SECS (default 10)\n"
    CONNECT_PER_STREAM_HELP TUNNEL_OPTS_HELP;

static const char USAGE_LISTEN_UNIX[] =
    "usage: iroh-c listen-unix --path PATH [options]\n"
    "\n"
    "As listen-tcp, forwarding each stream to a new connection to the unix socket PATH\n"
    "(dumbpipe's listen-unix; --socket-path is the same option).\n"
    "\n"
    "options:\n"
    "  --path PATH          the unix socket to forward to\n" TUNNEL_OPTS_HELP;

static const char USAGE_CONNECT_UNIX[] =
    "usage: iroh-c connect-unix --path PATH TICKET [options]\n"
    "\n"
    "As connect-tcp, accepting connections on a new unix socket at PATH (removed on exit;\n"
    "an existing file is an error) (dumbpipe's connect-unix; --socket-path is the same).\n"
    "\n"
    "options:\n"
    "  --path PATH          the unix socket to create\n"
    "  --timeout SECS       give up each dial after SECS (default 10)\n"
    CONNECT_PER_STREAM_HELP TUNNEL_OPTS_HELP;

static int run_tunnel(const char *cmd, int is_unix, int listen_side, int argc, char **argv)
{
    const char *usage = listen_side ? (is_unix ? USAGE_LISTEN_UNIX : USAGE_LISTEN_TCP)
                                    : (is_unix ? USAGE_CONNECT_UNIX : USAGE_CONNECT_TCP);
    const char *where_opt = is_unix ? "--path" : listen_side ? "--host" : "--addr";
    const char *target = NULL;
    tunnel t = {.cmd = cmd, .is_unix = is_unix, .timeout_s = 10.0,
                .max_forwards = MAX_FORWARDS};
    /* the tests' way to reach the limits with a few connections */
    const char *mf = getenv("IROH_C_TUNNEL_MAX_FORWARDS");
    if (mf && atoi(mf) > 0 && atoi(mf) <= MAX_FORWARDS)
        t.max_forwards = (unsigned)atoi(mf);
    net_opts opts = {.quic_port = -1};
    int r;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return 0;
        }
        if ((r = alpn_opt(t.alpns, &t.n_alpns, argc, argv, &i)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
        } else if ((r = cli_opt(argc, argv, &i, where_opt, &v)) != 0 ||
                   (is_unix && (r = cli_opt(argc, argv, &i, "--socket-path", &v)) != 0)) {
            if (r < 0)
                return EXIT_USAGE;
            t.where = v;
        } else if (!listen_side && (r = cli_opt(argc, argv, &i, "--timeout", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            if (parse_number(v, 0.001, 86400, &t.timeout_s) != 0)
                return cli_usage("--timeout takes a number of seconds from 0.001 to 86400, not '%s'", v);
        } else if ((r = net_opt(&opts, argc, argv, &i)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
        } else if (!listen_side && strcmp(argv[i], "--connection-per-stream") == 0) {
            t.per_stream = 1;
        } else if (!listen_side && argv[i][0] != '-' && !target) {
            target = argv[i];
        } else {
            char msg[64];
            snprintf(msg, sizeof msg, "%s: unexpected argument '%%s'", cmd);
            return cli_usage(msg, argv[i]);
        }
    }
    char need[80];
    if (!t.where) {
        snprintf(need, sizeof need, "%s: %s is needed%%s", cmd,
                 is_unix ? "--path PATH" : listen_side ? "--host HOST:PORT" : "--addr IP:PORT");
        return cli_usage(need, NULL);
    }
    if (!listen_side && !target) {
        snprintf(need, sizeof need, "%s: a TICKET or an EndpointId is needed%%s", cmd);
        return cli_usage(need, NULL);
    }
    t.raw = t.n_alpns > 0;
    if (!t.raw)
        t.alpns[t.n_alpns++] = DUMBPIPE_ALPN;
    t.verbose = opts.verbose;
    int rc = is_unix ? set_unix_path(&t) : resolve_where(&t, where_opt, !listen_side);
    if (rc != 0)
        return rc;
    if (!listen_side && (rc = parse_target(target, &t.peer)) != 0)
        goto out_addr;

    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    if (!b) {
        rc = cli_api_error("endpoint", IROH_ERR_NO_MEMORY);
        goto out_addr;
    }
    iroh_endpoint_builder_max_streams(b, TUNNEL_MAX_STREAMS, 100);
    if (listen_side) {
        for (size_t i = 0; i < t.n_alpns && rc == 0; i++)
            if ((r = iroh_endpoint_builder_alpn(b, t.alpns[i])) != IROH_OK)
                rc = cli_api_error("--alpn", r);
    } else {
        iroh_endpoint_builder_connect_timeout_ms(b, (uint32_t)(t.timeout_s * 1000 + 0.5));
    }
    if (rc != 0) {
        iroh_endpoint_builder_free(b);
        goto out_addr;
    }
    if ((rc = net_bind(&opts, b, &t.ep)) != 0)
        goto out_addr;
    pthread_attr_init(&t.attr);
    pthread_attr_setstacksize(&t.attr, THREAD_STACK);
    pthread_attr_setdetachstate(&t.attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_init(&t.join_attr);
    pthread_attr_setstacksize(&t.join_attr, THREAD_STACK);
    pthread_mutex_init(&t.mu, NULL);
    pthread_cond_init(&t.cv, NULL);
    int status = net_metrics_start(&opts, t.ep);
    if (status == 0 && cli_stop_watch_endpoint(t.ep) == 0 && listen_side && !opts.no_relay) {
        if (iroh_endpoint_online(t.ep, 5000) != IROH_OK && !cli_stop_signal())
            fprintf(stderr, "iroh-c: no home relay yet, the ticket has direct addresses "
                            "only: %s\n", iroh_last_error());
    }
    int ep_freed = 0;
    if (status == 0 && !cli_stop_signal()) {
        if (listen_side && !(t.peers = calloc(t.max_forwards, sizeof *t.peers))) {
            status = cli_api_error("listen", IROH_ERR_NO_MEMORY);
        } else if (listen_side) {
            print_ticket(t.ep, 0);
            status = run_listen(&t, &ep_freed);
        } else {
            status = run_connect(&t);
        }
    }
    net_metrics_stop();
    if (!ep_freed) {
        cli_stop_forget_endpoint();
        iroh_endpoint_close(t.ep);
        iroh_endpoint_free(t.ep);
    }
    free(t.peers);
    pthread_attr_destroy(&t.attr);
    pthread_attr_destroy(&t.join_attr);
    pthread_mutex_destroy(&t.mu);
    pthread_cond_destroy(&t.cv);
    cli_stop_end();
    rc = cli_stop_status(status);
out_addr:
    iroh_endpoint_addr_free(t.peer);
    if (t.ai)
        freeaddrinfo(t.ai);
    return rc;
}

int cmd_listen_tcp(int argc, char **argv)
{
    return run_tunnel("listen-tcp", 0, 1, argc, argv);
}

int cmd_connect_tcp(int argc, char **argv)
{
    return run_tunnel("connect-tcp", 0, 0, argc, argv);
}

int cmd_listen_unix(int argc, char **argv)
{
    return run_tunnel("listen-unix", 1, 1, argc, argv);
}

int cmd_connect_unix(int argc, char **argv)
{
    return run_tunnel("connect-unix", 1, 0, argc, argv);
}
