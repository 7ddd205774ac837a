/* The public API in one process, two endpoints on loopback: errors, stream states,
 * closing with connections open (LeakSanitizer checks that nothing leaks in the
 * sanitizer build). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* link-wrap: malloc calloc realloc */
#include "failalloc.h"
#include "iroh.h"
#include "test.h"

static const char ALPN[] = "test/api/0";

#define BIG (16u << 20) /* more than the send buffer and the peer's window take */
static uint8_t big[BIG];

/* ---- rendezvous with threads inside the library -----------------------------------------
 *
 * A fixed sleep does not tell whether a thread got somewhere, least of all on a loaded
 * machine. The library blocks only in pthread_cond_wait / pthread_cond_timedwait, and this
 * test wraps both at link time. A thread that follows a `watch` (a call thread below, a
 * protocol handler) counts each wait it begins inside the library once the watch is armed:
 * the test then knows the thread is blocked in its call, a user of its handle, before it
 * closes or frees anything. A watch can also hold its thread once a wait returns, outside
 * the endpoint's lock, until the test lets it go: the test decides what the call finds when
 * it looks again. One test mutex guards all of it (taken inside the library's lock, never
 * the other way round). */
/* link-wrap: pthread_cond_wait pthread_cond_timedwait */
int __real_pthread_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu);
int __wrap_pthread_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu);
int __real_pthread_cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *mu,
                                  const struct timespec *at);
int __wrap_pthread_cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *mu,
                                  const struct timespec *at);

/* System calls of the I/O thread: io_syscalls_without_the_lock holds the I/O thread
 * inside one (recvmmsg, or a send) and checks that the endpoint's lock is free meanwhile.
 * Only a thread that is not the test's own (the endpoint's I/O thread) is held. */
/* link-wrap: recvmmsg sendto sendmsg sendmmsg */
int __real_recvmmsg(int fd, struct mmsghdr *m, unsigned n, int flags, struct timespec *t);
int __wrap_recvmmsg(int fd, struct mmsghdr *m, unsigned n, int flags, struct timespec *t);
ssize_t __real_sendto(int fd, const void *b, size_t n, int flags, const struct sockaddr *a,
                      socklen_t al);
ssize_t __wrap_sendto(int fd, const void *b, size_t n, int flags, const struct sockaddr *a,
                      socklen_t al);
ssize_t __real_sendmsg(int fd, const struct msghdr *m, int flags);
ssize_t __wrap_sendmsg(int fd, const struct msghdr *m, int flags);
int __real_sendmmsg(int fd, struct mmsghdr *m, unsigned n, int flags);
int __wrap_sendmmsg(int fd, struct mmsghdr *m, unsigned n, int flags);

enum { HOLD_NONE, HOLD_RECV, HOLD_SEND };
static _Atomic int io_hold;          /* which kind of call to hold next */
static _Thread_local int test_thread; /* the test's own threads are never held */
static void io_hold_here(int kind);

int __wrap_recvmmsg(int fd, struct mmsghdr *m, unsigned n, int flags, struct timespec *t)
{
    io_hold_here(HOLD_RECV);
    return __real_recvmmsg(fd, m, n, flags, t);
}

ssize_t __wrap_sendto(int fd, const void *b, size_t n, int flags, const struct sockaddr *a,
                      socklen_t al)
{
    io_hold_here(HOLD_SEND);
    return __real_sendto(fd, b, n, flags, a, al);
}

ssize_t __wrap_sendmsg(int fd, const struct msghdr *m, int flags)
{
    io_hold_here(HOLD_SEND);
    return __real_sendmsg(fd, m, flags);
}

int __wrap_sendmmsg(int fd, struct mmsghdr *m, unsigned n, int flags)
{
    io_hold_here(HOLD_SEND);
    return __real_sendmmsg(fd, m, n, flags);
}

static pthread_mutex_t t_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t t_cv; /* on CLOCK_MONOTONIC, from t_init */

static void t_init(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t_cv, &ca);
    pthread_condattr_destroy(&ca);
}

static struct timespec in_ms(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* sets *v (under the test mutex) and wakes who waits for it */
static void t_set(int *v, int value)
{
    pthread_mutex_lock(&t_mu);
    *v = value;
    pthread_cond_broadcast(&t_cv);
    pthread_mutex_unlock(&t_mu);
}

/* waits up to ms (a liveness bound: only a broken library reaches it) until *v >= at_least
 * or *stop is set (stop may be NULL); returns *v >= at_least */
static int t_wait_for(const int *v, int at_least, const int *stop, int ms)
{
    struct timespec dl = in_ms(ms);
    pthread_mutex_lock(&t_mu);
    while (*v < at_least && !(stop && *stop) &&
           pthread_cond_timedwait(&t_cv, &t_mu, &dl) == 0) {
    }
    int ok = *v >= at_least;
    pthread_mutex_unlock(&t_mu);
    return ok;
}

/* holds of the I/O thread in a system call (io_hold_here) begun, and released, so far:
 * counts, so that neither a hold nor a release is missed or seen twice */
static int io_holds, io_releases;

static void io_hold_here(int kind)
{
    int want = kind;
    if (test_thread || atomic_load(&io_hold) != kind ||
        !atomic_compare_exchange_strong(&io_hold, &want, HOLD_NONE))
        return;
    pthread_mutex_lock(&t_mu);
    int nth = ++io_holds;
    pthread_cond_broadcast(&t_cv);
    pthread_mutex_unlock(&t_mu);
    t_wait_for(&io_releases, nth, NULL, 30000);
}

typedef struct watch {
    int armed;   /* count the waits from now on */
    int waits;   /* waits begun inside the library since it was armed */
    int hold;    /* hold the thread when a counted wait returns */
    int held;    /* it is held (outside the library's lock) */
    int release; /* let it go */
} watch;

static _Thread_local watch *watched; /* the watch this thread follows, if any */

static int watched_wait(pthread_cond_t *cv, pthread_mutex_t *mu, const struct timespec *at)
{
    watch *w = cv == &t_cv ? NULL : watched;
    int counted = 0;
    if (w) {
        pthread_mutex_lock(&t_mu);
        if (w->armed) {
            w->waits++;
            counted = 1;
            pthread_cond_broadcast(&t_cv);
        }
        pthread_mutex_unlock(&t_mu);
    }
    int rc = at ? __real_pthread_cond_timedwait(cv, mu, at) : __real_pthread_cond_wait(cv, mu);
    if (!counted)
        return rc;
    pthread_mutex_lock(&t_mu);
    if (w->hold) {
        w->hold = 0;
        w->held = 1;
        pthread_cond_broadcast(&t_cv);
        pthread_mutex_unlock(mu); /* the library's lock: everyone else goes on */
        struct timespec dl = in_ms(30000);
        while (!w->release && __real_pthread_cond_timedwait(&t_cv, &t_mu, &dl) == 0) {
        }
        w->release = 0;
        w->held = 0;
        pthread_mutex_unlock(&t_mu);
        pthread_mutex_lock(mu);
    } else {
        pthread_mutex_unlock(&t_mu);
    }
    return rc;
}

int __wrap_pthread_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu)
{
    return watched_wait(cv, mu, NULL);
}

int __wrap_pthread_cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *mu,
                                  const struct timespec *at)
{
    return watched_wait(cv, mu, at);
}

static iroh_endpoint *bind_ep(int accept, iroh_accept_filter filter)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED); /* loopback only */
    iroh_endpoint *ep = NULL;
    CHECK_EQ_INT(iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0"), IROH_OK);
    if (accept)
        CHECK_EQ_INT(iroh_endpoint_builder_alpn(b, ALPN), IROH_OK);
    if (filter)
        CHECK_EQ_INT(iroh_endpoint_builder_accept_filter(b, filter, NULL), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_builder_connect_timeout_ms(b, 3000), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_bind(b, &ep), IROH_OK);
    iroh_endpoint_builder_free(b);
    return ep;
}

typedef struct server {
    iroh_endpoint *ep;
    iroh_connection *conn;
    pthread_t th;
} server;

static void *accept_one(void *arg)
{
    server *s = arg;
    iroh_incoming *inc;
    if (iroh_endpoint_accept(s->ep, 5000, &inc) == IROH_OK)
        iroh_incoming_accept(inc, &s->conn);
    return NULL;
}

static iroh_connection *pair(server *s, iroh_endpoint *client)
{
    s->conn = NULL;
    pthread_create(&s->th, NULL, accept_one, s);
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(s->ep, &addr);
    iroh_connection *c = NULL;
    CHECK_EQ_INT(iroh_endpoint_connect(client, addr, ALPN, &c), IROH_OK);
    iroh_endpoint_addr_free(addr);
    pthread_join(s->th, NULL);
    CHECK(s->conn != NULL);
    return c;
}

TEST(connect_errors)
{
    iroh_endpoint *srv = bind_ep(1, NULL), *cli = bind_ep(0, NULL);
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(srv, &addr);
    iroh_connection *c = NULL;
    /* wrong ALPN: the server refuses in the handshake */
    CHECK_EQ_INT(iroh_endpoint_connect(cli, addr, "other/0", &c), IROH_ERR_HANDSHAKE);
    CHECK(strstr(iroh_last_error(), "0x178 CRYPTO_ERROR") != NULL); /* no_application_protocol */
    /* wrong key: the address with another id */
    iroh_secret_key k;
    iroh_endpoint_id other;
    iroh_secret_key_generate(&k);
    iroh_secret_key_public(&k, &other);
    iroh_endpoint_addr *bad = iroh_endpoint_addr_new(&other);
    iroh_transport_addr t;
    iroh_endpoint_addr_get(addr, 0, &t);
    iroh_endpoint_addr_add_ip(bad, &t.ip);
    CHECK_EQ_INT(iroh_endpoint_connect(cli, bad, ALPN, &c), IROH_ERR_HANDSHAKE);
    CHECK(strstr(iroh_last_error(), "dialed") != NULL);
    iroh_endpoint_addr_free(bad);
    /* nobody listening: a timeout, not a hang */
    iroh_endpoint_addr *dead = iroh_endpoint_addr_new(&other);
    iroh_socket_addr sa;
    iroh_socket_addr_parse("127.0.0.1:9", &sa);
    iroh_endpoint_addr_add_ip(dead, &sa);
    CHECK_EQ_INT(iroh_endpoint_connect(cli, dead, ALPN, &c), IROH_ERR_TIMEOUT);
    iroh_endpoint_addr_free(dead);
    /* no direct address at all */
    iroh_endpoint_addr *none = iroh_endpoint_addr_new(&other);
    CHECK_EQ_INT(iroh_endpoint_connect(cli, none, ALPN, &c), IROH_ERR_INVALID_ADDR);
    iroh_endpoint_addr_free(none);
    /* accept times out */
    iroh_incoming *inc;
    CHECK_EQ_INT(iroh_endpoint_accept(srv, 50, &inc), IROH_ERR_TIMEOUT);
    iroh_endpoint_addr_free(addr);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(srv);
}

TEST(stream_states)
{
    server s = {bind_ep(1, NULL), NULL, 0};
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *c = pair(&s, cli);
    char alpn[256];
    CHECK_EQ_INT(iroh_connection_alpn(c, alpn, sizeof alpn), IROH_OK);
    CHECK_STR(alpn, ALPN);

    /* read_to_end over its limit, read_exact short */
    iroh_send_stream *cs, *ss;
    iroh_recv_stream *cr, *sr;
    CHECK_EQ_INT(iroh_connection_open_bi(c, &cs, &cr), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(cs, "0123456789", 10), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_finish(cs), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(cs, "x", 1), IROH_ERR_STATE);
    CHECK_EQ_INT(iroh_connection_accept_bi(s.conn, 5000, &ss, &sr), IROH_OK);
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(sr, 5, &data, &len), IROH_ERR_TOO_LONG);
    iroh_send_stream_free(ss);
    iroh_recv_stream_free(sr);
    iroh_send_stream_free(cs);
    iroh_recv_stream_free(cr);

    CHECK_EQ_INT(iroh_connection_open_bi(c, &cs, &cr), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(cs, "abc", 3), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_finish(cs), IROH_OK);
    CHECK_EQ_INT(iroh_connection_accept_bi(s.conn, 5000, &ss, &sr), IROH_OK);
    uint8_t buf[8];
    CHECK_EQ_INT(iroh_recv_stream_read_exact(sr, buf, 8), IROH_ERR_FINISHED_EARLY);
    /* the server resets its sending half: the client's read sees the code */
    CHECK_EQ_INT(iroh_send_stream_reset(ss, 77), IROH_OK);
    size_t n;
    CHECK_EQ_INT(iroh_recv_stream_read(cr, buf, sizeof buf, &n), IROH_ERR_STREAM_RESET);
    CHECK_EQ_INT(iroh_recv_stream_reset_code(cr), 77);
    iroh_send_stream_free(ss);
    iroh_recv_stream_free(sr);
    iroh_send_stream_free(cs);
    iroh_recv_stream_free(cr);

    /* STOP_SENDING: the writer learns it */
    CHECK_EQ_INT(iroh_connection_open_uni(c, &cs), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(cs, "hello", 5), IROH_OK);
    CHECK_EQ_INT(iroh_connection_accept_uni(s.conn, 5000, &sr), IROH_OK);
    CHECK_EQ_INT(iroh_recv_stream_stop(sr, 9), IROH_OK);
    /* more than the send buffer and the window take: the write waits until STOP_SENDING
     * arrives */
    CHECK_EQ_INT(iroh_send_stream_write_all(cs, big, BIG), IROH_ERR_STREAM_STOPPED);
    iroh_send_stream_free(cs);
    iroh_recv_stream_free(sr);

    /* datagrams both ways */
    CHECK(iroh_connection_max_datagram_size(c) > 1000);
    CHECK_EQ_INT(iroh_connection_send_datagram(c, "ping", 4), IROH_OK);
    char dg[16];
    CHECK_EQ_INT(iroh_connection_read_datagram(s.conn, 5000, dg, sizeof dg, &n), IROH_OK);
    CHECK(n == 4 && memcmp(dg, "ping", 4) == 0);
    CHECK_EQ_INT(iroh_connection_send_datagram(c, dg, 5000), IROH_ERR_UNSUPPORTED);

    /* close with a code: the peer sees it */
    iroh_connection_close(c, 42, "done here");
    CHECK_EQ_INT(iroh_connection_closed(s.conn, 5000), IROH_OK);
    iroh_close_reason why;
    iroh_connection_close_reason(s.conn, &why);
    CHECK_EQ_INT(why.kind, IROH_CLOSE_APPLICATION);
    CHECK_EQ_INT(why.code, 42);
    CHECK_STR(why.reason, "done here");
    CHECK_EQ_INT(iroh_connection_open_bi(s.conn, &cs, &cr), IROH_ERR_CONNECTION_CLOSED);
    iroh_connection_close_reason(c, &why);
    CHECK_EQ_INT(why.kind, IROH_CLOSE_LOCAL);
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(s.ep);
}

static uint64_t refuse_all(void *ctx, const iroh_endpoint_id *peer, const uint8_t *alpn, size_t n)
{
    return 451;
}

TEST(accept_filter)
{
    iroh_endpoint *srv = bind_ep(1, refuse_all), *cli = bind_ep(0, NULL);
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(srv, &addr);
    iroh_connection *c = NULL;
    int rc = iroh_endpoint_connect(cli, addr, ALPN, &c);
    if (rc == IROH_OK) {
        /* the client may finish its handshake before the refusal arrives */
        CHECK_EQ_INT(iroh_connection_closed(c, 5000), IROH_OK);
        iroh_close_reason why;
        iroh_connection_close_reason(c, &why);
        CHECK_EQ_INT(why.code, 451);
        iroh_connection_free(c);
    } else {
        CHECK_EQ_INT(rc, IROH_ERR_CONNECTION_CLOSED);
    }
    /* the refused connection never reaches the application */
    iroh_incoming *inc;
    CHECK_EQ_INT(iroh_endpoint_accept(srv, 200, &inc), IROH_ERR_TIMEOUT);
    iroh_endpoint_addr_free(addr);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(srv);
}

TEST(close_endpoint_with_open_connections)
{
    server s = {bind_ep(1, NULL), NULL, 0};
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *conns[5];
    iroh_connection *sconns[5];
    for (int i = 0; i < 5; i++) {
        conns[i] = pair(&s, cli);
        sconns[i] = s.conn;
    }
    /* streams left open on both sides */
    iroh_send_stream *cs;
    iroh_recv_stream *cr;
    CHECK_EQ_INT(iroh_connection_open_bi(conns[0], &cs, &cr), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(cs, "pending", 7), IROH_OK);
    iroh_endpoint_close(cli);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ_INT(iroh_connection_closed(sconns[i], 5000), IROH_OK);
        iroh_close_reason why;
        iroh_connection_close_reason(sconns[i], &why);
        CHECK(why.by_peer && why.kind == IROH_CLOSE_APPLICATION && why.code == 0);
    }
    size_t n;
    uint8_t b[4];
    CHECK_EQ_INT(iroh_recv_stream_read(cr, b, sizeof b, &n), IROH_ERR_CONNECTION_CLOSED);
    iroh_incoming *inc;
    CHECK_EQ_INT(iroh_endpoint_accept(cli, 10, &inc), IROH_ERR_CLOSED);
    iroh_send_stream_free(cs);
    iroh_recv_stream_free(cr);
    for (int i = 0; i < 5; i++) {
        iroh_connection_free(conns[i]);
        iroh_connection_free(sconns[i]);
    }
    iroh_endpoint_free(cli);
    iroh_endpoint_free(s.ep);
}

static int answer(void *ctx, iroh_connection *conn)
{
    iroh_send_stream *s;
    iroh_recv_stream *r;
    if (iroh_connection_accept_bi(conn, 5000, &s, &r) != IROH_OK)
        return 1;
    uint8_t *req;
    size_t len;
    if (iroh_recv_stream_read_to_end(r, 100, &req, &len) == IROH_OK)
        free(req);
    iroh_send_stream_write_all(s, ctx, strlen(ctx));
    iroh_send_stream_finish(s);
    iroh_connection_closed(conn, 5000);
    iroh_send_stream_free(s);
    iroh_recv_stream_free(r);
    return 0;
}

static void ask(iroh_endpoint *cli, const iroh_endpoint_addr *addr, const char *const *alpns,
                size_t n, const char *want_alpn, const char *want_answer)
{
    iroh_connection *c;
    CHECK_EQ_INT(iroh_endpoint_connect_alpns(cli, addr, alpns, n, &c), IROH_OK);
    char alpn[256];
    CHECK_EQ_INT(iroh_connection_alpn(c, alpn, sizeof alpn), IROH_OK);
    CHECK_STR(alpn, want_alpn);
    iroh_send_stream *s;
    iroh_recv_stream *r;
    CHECK_EQ_INT(iroh_connection_open_bi(c, &s, &r), IROH_OK);
    iroh_send_stream_write_all(s, "?", 1);
    iroh_send_stream_finish(s);
    uint8_t *resp = NULL;
    size_t len = 0;
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(r, 100, &resp, &len), IROH_OK);
    CHECK(len == strlen(want_answer) && memcmp(resp, want_answer, len) == 0);
    free(resp);
    iroh_send_stream_free(s);
    iroh_recv_stream_free(r);
    iroh_connection_close(c, 0, "bye!");
    iroh_connection_free(c);
}

TEST(router_with_several_alpns)
{
    /* two protocols on one endpoint; clients offering several versions get the server's
     * preferred one they offered */
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED); /* loopback only */
    iroh_endpoint *ep;
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    iroh_endpoint_builder_alpn(b, "proto/2");
    iroh_endpoint_builder_alpn(b, "proto/1");
    iroh_endpoint_builder_alpn(b, "other/0");
    CHECK_EQ_INT(iroh_endpoint_bind(b, &ep), IROH_OK);
    iroh_endpoint_builder_free(b);
    iroh_router_builder *rb = iroh_router_builder_new(ep);
    CHECK_EQ_INT(iroh_router_builder_accept(rb, "proto/2", answer, "two"), IROH_OK);
    CHECK_EQ_INT(iroh_router_builder_accept(rb, "proto/1", answer, "one"), IROH_OK);
    CHECK_EQ_INT(iroh_router_builder_accept(rb, "other/0", answer, "other"), IROH_OK);
    CHECK_EQ_INT(iroh_router_builder_accept(rb, "other/0", answer, "x"), IROH_ERR_INVALID_ARGUMENT);
    iroh_router *router;
    CHECK_EQ_INT(iroh_router_spawn(rb, &router), IROH_OK);
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(ep, &addr);
    iroh_endpoint *cli = bind_ep(0, NULL);
    const char *v1[] = {"proto/1"};
    const char *both[] = {"proto/1", "proto/2"};
    const char *newer[] = {"proto/3", "proto/1"};
    const char *other[] = {"other/0"};
    ask(cli, addr, v1, 1, "proto/1", "one");
    ask(cli, addr, both, 2, "proto/2", "two");
    ask(cli, addr, newer, 2, "proto/1", "one");
    ask(cli, addr, other, 1, "other/0", "other");
    iroh_endpoint_addr_free(addr);
    iroh_endpoint_free(cli);
    CHECK_EQ_INT(iroh_router_shutdown(router), IROH_OK);
    iroh_router_free(router);
}

TEST(router_builder_free_without_spawn)
{
    /* a builder given up on: its protocols go (ASan's leak check), the endpoint stays the
     * caller's and works, and a router can still be made on it */
    iroh_endpoint *ep = bind_ep(0, NULL);
    iroh_router_builder *rb = iroh_router_builder_new(ep);
    CHECK_EQ_INT(iroh_router_builder_accept(rb, "proto/1", answer, "one"), IROH_OK);
    CHECK_EQ_INT(iroh_router_builder_accept(rb, "proto/2", answer, "two"), IROH_OK);
    iroh_router_builder_free(rb);
    iroh_router_builder_free(NULL);
    iroh_endpoint_addr *addr = NULL;
    CHECK_EQ_INT(iroh_endpoint_get_addr(ep, &addr), IROH_OK);
    iroh_endpoint_addr_free(addr);
    rb = iroh_router_builder_new(ep);
    CHECK_EQ_INT(iroh_router_builder_accept(rb, "proto/1", answer, "one"), IROH_OK);
    iroh_router *router = NULL;
    CHECK_EQ_INT(iroh_router_spawn(rb, &router), IROH_OK);
    CHECK_EQ_INT(iroh_router_shutdown(router), IROH_OK);
    iroh_router_free(router); /* frees the endpoint */
}

TEST(retry_both_ends)
{
    /* our server validates with a Retry, our client follows it */
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED); /* loopback only */
    iroh_endpoint *srv;
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    iroh_endpoint_builder_alpn(b, ALPN);
    CHECK_EQ_INT(iroh_endpoint_builder_retry(b, 1), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_bind(b, &srv), IROH_OK);
    iroh_endpoint_builder_free(b);
    server s = {srv, NULL, 0};
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *c = pair(&s, cli);
    CHECK(c && s.conn);
    if (c && s.conn) {
        /* the Retry really happened, on both ends */
        iroh_connection_stats cst, sst;
        iroh_connection_stats_get(c, &cst);
        iroh_connection_stats_get(s.conn, &sst);
        CHECK(cst.retried && sst.retried);
        iroh_send_stream *cs, *ss;
        iroh_recv_stream *cr, *sr;
        CHECK_EQ_INT(iroh_connection_open_bi(c, &cs, &cr), IROH_OK);
        CHECK_EQ_INT(iroh_send_stream_write_all(cs, "x", 1), IROH_OK);
        CHECK_EQ_INT(iroh_connection_accept_bi(s.conn, 5000, &ss, &sr), IROH_OK);
        uint8_t x;
        CHECK_EQ_INT(iroh_recv_stream_read_exact(sr, &x, 1), IROH_OK);
        iroh_send_stream_free(cs);
        iroh_recv_stream_free(cr);
        iroh_send_stream_free(ss);
        iroh_recv_stream_free(sr);
    }
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(srv);
}

TEST(all_direct_addresses_at_once)
{
    /* the address sorts a dead address (port 9) before the real one: the handshake still
     * completes at once, over the address that answers */
    server s = {bind_ep(1, NULL), NULL, 0};
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_endpoint_addr *real, *both;
    iroh_endpoint_get_addr(s.ep, &real);
    iroh_endpoint_id id;
    iroh_endpoint_get_id(s.ep, &id);
    both = iroh_endpoint_addr_new(&id);
    iroh_socket_addr dead;
    iroh_socket_addr_parse("127.0.0.1:9", &dead);
    iroh_endpoint_addr_add_ip(both, &dead);
    iroh_transport_addr t;
    iroh_endpoint_addr_get(real, 0, &t);
    iroh_endpoint_addr_add_ip(both, &t.ip);
    iroh_endpoint_addr_get(both, 0, &t);
    CHECK_EQ_INT(t.ip.port, 9);
    pthread_create(&s.th, NULL, accept_one, &s);
    iroh_connection *c = NULL;
    CHECK_EQ_INT(iroh_endpoint_connect(cli, both, ALPN, &c), IROH_OK);
    pthread_join(s.th, NULL);
    CHECK(s.conn != NULL);
    if (c) {
        iroh_connection_stats st;
        iroh_connection_stats_get(c, &st);
        CHECK(!st.retried); /* no Retry without the server option */
        iroh_send_stream *cs;
        iroh_recv_stream *cr;
        CHECK_EQ_INT(iroh_connection_open_bi(c, &cs, &cr), IROH_OK);
        CHECK_EQ_INT(iroh_send_stream_write_all(cs, "y", 1), IROH_OK);
        iroh_send_stream *ss;
        iroh_recv_stream *sr;
        CHECK_EQ_INT(iroh_connection_accept_bi(s.conn, 5000, &ss, &sr), IROH_OK);
        uint8_t y;
        CHECK_EQ_INT(iroh_recv_stream_read_exact(sr, &y, 1), IROH_OK);
        iroh_send_stream_free(cs);
        iroh_recv_stream_free(cr);
        iroh_send_stream_free(ss);
        iroh_recv_stream_free(sr);
    }
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    iroh_endpoint_addr_free(real);
    iroh_endpoint_addr_free(both);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(s.ep);
}

/* holds the watched thread when the wait it is in (or its next one) returns */
static void watch_hold(watch *w)
{
    t_set(&w->hold, 1);
}

/* 1 once the watched thread is held (waiting up to ms) */
static int watch_held(watch *w, int ms)
{
    return t_wait_for(&w->held, 1, NULL, ms);
}

static void watch_release(watch *w)
{
    t_set(&w->release, 1);
}

/* ---- calls blocked in another thread -------------------------------------------------
 *
 * Each case starts one blocking call on a thread of its own, waits until that thread is
 * blocked inside the call (a wait of the library's, seen through the watch), then closes
 * or frees something from the main thread and checks that the call returns with the
 * expected error (within 10 s, a bound only a hang reaches). */

typedef struct call call;
typedef int (*call_fn)(call *k);
struct call {
    call_fn fn;
    const char *name;
    iroh_endpoint *ep;
    const iroh_endpoint_addr *addr;
    iroh_connection *conn;
    iroh_send_stream *send;
    iroh_recv_stream *recv;
    iroh_connection *got_conn; /* what the call produced, if anything */
    iroh_send_stream *got_send;
    iroh_recv_stream *got_recv;
    iroh_incoming *got_inc;
    size_t got_n;
    watch w; /* armed once the call meant to block is next (call_ready) */
    int rc;  /* the result, once done (under the test mutex) */
    char err[256];
    int done;
    pthread_t th;
};

static void *call_main(void *arg)
{
    call *k = arg;
    watched = &k->w;
    int rc = k->fn(k);
    watched = NULL;
    char err[256];
    snprintf(err, sizeof err, "%s", iroh_last_error());
    pthread_mutex_lock(&t_mu);
    k->rc = rc;
    memcpy(k->err, err, sizeof err);
    k->done = 1;
    pthread_cond_broadcast(&t_cv);
    pthread_mutex_unlock(&t_mu);
    return NULL;
}

static int f_write(call *k);
static int f_flushed(call *k);

/* a function that makes several calls says when the one meant to block comes next: the
 * waits of the calls before it do not count */
static void call_ready(call *k)
{
    t_set(&k->w.armed, 1);
}

static void call_start(call *k, call_fn fn, const char *name)
{
    k->fn = fn;
    k->name = name;
    k->done = 0;
    k->rc = 1;
    k->err[0] = 0;
    memset(&k->w, 0, sizeof k->w);
    k->w.armed = fn != f_write && fn != f_flushed;
    pthread_create(&k->th, NULL, call_main, k);
}

/* 1 once the call has returned, waiting up to ms */
static int call_wait(call *k, int ms)
{
    return t_wait_for(&k->done, 1, NULL, ms);
}

/* the call is blocked: it waits inside the library and has not returned (waiting up to
 * 10 s for it to get there) */
static int call_blocked(call *k)
{
    t_wait_for(&k->w.waits, 1, &k->done, 10000);
    pthread_mutex_lock(&t_mu);
    int blocked = k->w.waits > 0 && !k->done;
    pthread_mutex_unlock(&t_mu);
    if (!blocked)
        fprintf(stderr, "%s did not block: %s %d %s\n", k->name,
                call_wait(k, 0) ? "returned" : "never waited,", k->rc, k->err);
    return blocked;
}

/* the call, blocked, does not return within ms: for what must leave it blocked */
static int call_stays_blocked(call *k, int ms)
{
    int blocked = !call_wait(k, ms);
    if (!blocked)
        fprintf(stderr, "%s returned: %d %s\n", k->name, k->rc, k->err);
    return blocked;
}

/* waits up to 10 s for the call, checks its result, and joins it; 0 if it never returned
 * (then the thread is left behind) */
static int call_finish(call *k, int want_rc, const char *want_err)
{
    int done = call_wait(k, 10000);
    CHECK(done);
    if (!done) {
        fprintf(stderr, "%s still blocked after 10 s\n", k->name);
        pthread_detach(k->th);
        return 0;
    }
    pthread_join(k->th, NULL);
    CHECK_EQ_INT(k->rc, want_rc);
    if (want_err && !strstr(k->err, want_err)) {
        CHECK(strstr(k->err, want_err) != NULL);
        fprintf(stderr, "%s: error \"%s\", expected \"%s\"\n", k->name, k->err, want_err);
    }
    return 1;
}

static int f_connect(call *k)
{
    return iroh_endpoint_connect(k->ep, k->addr, ALPN, &k->got_conn);
}

static int f_accept(call *k)
{
    return iroh_endpoint_accept(k->ep, -1, &k->got_inc);
}

static int f_online(call *k)
{
    return iroh_endpoint_online(k->ep, -1);
}

static int f_open_bi(call *k)
{
    return iroh_connection_open_bi(k->conn, &k->got_send, &k->got_recv);
}

static int f_open_uni(call *k)
{
    return iroh_connection_open_uni(k->conn, &k->got_send);
}

static int f_accept_bi(call *k)
{
    return iroh_connection_accept_bi(k->conn, -1, &k->got_send, &k->got_recv);
}

static int f_accept_uni(call *k)
{
    return iroh_connection_accept_uni(k->conn, -1, &k->got_recv);
}

static int f_read_datagram(call *k)
{
    char buf[64];
    return iroh_connection_read_datagram(k->conn, -1, buf, sizeof buf, &k->got_n);
}

static int f_closed(call *k)
{
    return iroh_connection_closed(k->conn, -1);
}

static int f_write_all(call *k)
{
    return iroh_send_stream_write_all(k->send, big, BIG);
}

/* fills the send buffer (writes with a short time limit until one times out), then a
 * write that blocks */
static int f_write(call *k)
{
    int rc;
    size_t w;
    iroh_send_stream_set_timeout(k->send, 100);
    while ((rc = iroh_send_stream_write(k->send, big, 65536, &w)) == IROH_OK) {
    }
    if (rc != IROH_ERR_TIMEOUT)
        return rc;
    iroh_send_stream_set_timeout(k->send, -1);
    call_ready(k);
    return iroh_send_stream_write(k->send, big, 65536, &w);
}

/* more than the peer's window, then the end: flushed waits for the peer to read */
static int f_flushed(call *k)
{
    int rc = iroh_send_stream_write_all(k->send, big, 200000);
    if (rc == IROH_OK)
        rc = iroh_send_stream_finish(k->send);
    call_ready(k);
    if (rc == IROH_OK)
        rc = iroh_send_stream_flushed(k->send, -1);
    return rc;
}

static int f_read(call *k)
{
    char buf[64];
    return iroh_recv_stream_read(k->recv, buf, sizeof buf, &k->got_n);
}

static int f_read_exact(call *k)
{
    char buf[64];
    return iroh_recv_stream_read_exact(k->recv, buf, sizeof buf);
}

static int f_read_to_end(call *k)
{
    uint8_t *data = NULL;
    int rc = iroh_recv_stream_read_to_end(k->recv, 1000, &data, &k->got_n);
    free(data);
    return rc;
}

/* a server whose peers may open one stream of each kind and send 64 KiB on a stream
 * before it reads */
static iroh_endpoint *bind_small_server(void)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    iroh_endpoint_builder_alpn(b, ALPN);
    iroh_endpoint_builder_max_streams(b, 1, 1);
    iroh_endpoint_builder_stream_window(b, 65536, 65536);
    iroh_endpoint *ep = NULL;
    CHECK_EQ_INT(iroh_endpoint_bind(b, &ep), IROH_OK);
    iroh_endpoint_builder_free(b);
    return ep;
}

static int events_seen[8];
static iroh_socket_addr connected_path;
static void on_event(void *ctx, const iroh_event *ev)
{
    if (ev->kind < 8)
        events_seen[ev->kind]++;
    if (ev->kind == IROH_EVENT_CONNECTED && !ev->inbound)
        connected_path = ev->path;
}

TEST(transport_limits_and_events)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED); /* loopback only */
    iroh_endpoint *srv;
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    iroh_endpoint_builder_alpn(b, ALPN);
    CHECK_EQ_INT(iroh_endpoint_builder_max_streams(b, 2, 2), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_builder_stream_window(b, 65536, 1 << 20), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_builder_max_datagram_size(b, 100), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_builder_max_streams(b, 0, 2), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_endpoint_bind(b, &srv), IROH_OK);
    iroh_endpoint_builder_free(b);
    b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED); /* loopback only */
    iroh_endpoint *cli;
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    iroh_endpoint_builder_event_callback(b, on_event, NULL);
    CHECK_EQ_INT(iroh_endpoint_bind(b, &cli), IROH_OK);
    iroh_endpoint_builder_free(b);
    server s = {srv, NULL, 0};
    iroh_connection *c = pair(&s, cli);
    CHECK(iroh_connection_max_datagram_size(c) <= 100);
    CHECK_EQ_INT(iroh_connection_send_datagram(c, "x", 101), IROH_ERR_UNSUPPORTED);
    CHECK_EQ_INT(events_seen[IROH_EVENT_CONNECTED], 1);
    iroh_endpoint_addr *saddr;
    iroh_endpoint_get_addr(srv, &saddr);
    iroh_transport_addr t;
    iroh_endpoint_addr_get(saddr, 0, &t);
    CHECK(connected_path.port == t.ip.port);
    iroh_endpoint_addr_free(saddr);
    /* two streams at once are allowed, a third waits for MAX_STREAMS */
    iroh_send_stream *cs[2], *ss[2];
    iroh_recv_stream *cr[2], *sr[2];
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(iroh_connection_open_bi(c, &cs[i], &cr[i]), IROH_OK);
        CHECK_EQ_INT(iroh_send_stream_write_all(cs[i], "a", 1), IROH_OK);
        CHECK_EQ_INT(iroh_connection_accept_bi(s.conn, 5000, &ss[i], &sr[i]), IROH_OK);
    }
    call k;
    memset(&k, 0, sizeof k);
    k.conn = c;
    call_start(&k, f_open_bi, "a third open_bi");
    CHECK(call_blocked(&k));
    /* finish stream 0 both ways: the server grants a new stream */
    uint8_t *d;
    size_t n;
    iroh_send_stream_finish(cs[0]);
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(sr[0], 10, &d, &n), IROH_OK);
    free(d);
    iroh_send_stream_finish(ss[0]);
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(cr[0], 10, &d, &n), IROH_OK);
    free(d);
    if (!call_finish(&k, IROH_OK, NULL))
        return; /* the thread still uses everything: leave it all */
    iroh_send_stream_free(k.got_send);
    iroh_recv_stream_free(k.got_recv);
    for (int i = 0; i < 2; i++) {
        iroh_send_stream_free(cs[i]);
        iroh_recv_stream_free(cr[i]);
        iroh_send_stream_free(ss[i]);
        iroh_recv_stream_free(sr[i]);
    }
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    CHECK_EQ_INT(events_seen[IROH_EVENT_CLOSED], 1);
    iroh_endpoint_free(srv);
}

typedef enum {
    END_CLOSE_ENDPOINT,   /* iroh_endpoint_close on the blocked call's endpoint */
    END_CLOSE_CONNECTION, /* iroh_connection_close(0, "interrupted") */
    END_FREE_STREAM,      /* free the stream handle the call is blocked on */
    END_FREE_CONNECTION,  /* free the connection handle the call is blocked on */
} ending;

/* what a connection-level call is blocked on, and how to set it up */
typedef struct conn_case {
    const char *name;
    call_fn fn;
    int stream; /* 0: on the connection; 1: on a send stream; 2: on a receive stream */
} conn_case;

static const conn_case conn_cases[] = {
    {"open_bi", f_open_bi, 0},       {"open_uni", f_open_uni, 0},
    {"accept_bi", f_accept_bi, 0},   {"accept_uni", f_accept_uni, 0},
    {"read_datagram", f_read_datagram, 0}, {"closed", f_closed, 0},
    {"write_all", f_write_all, 1},   {"write", f_write, 1},
    {"flushed", f_flushed, 1},       {"read", f_read, 2},
    {"read_exact", f_read_exact, 2}, {"read_to_end", f_read_to_end, 2},
};

/* One blocked call on a fresh client connection to srv, ended as `how`. */
static void blocked_conn_call(iroh_endpoint *srv, const conn_case *cc, ending how)
{
    server s = {srv, NULL, 0};
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *c = pair(&s, cli);
    if (!c || !s.conn)
        return;
    /* the client's streams: one of each kind uses up the server's limits */
    iroh_send_stream *bs = NULL, *us = NULL;
    iroh_recv_stream *br = NULL;
    CHECK_EQ_INT(iroh_connection_open_bi(c, &bs, &br), IROH_OK);
    CHECK_EQ_INT(iroh_connection_open_uni(c, &us), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(bs, "x", 1), IROH_OK);
    call k;
    memset(&k, 0, sizeof k);
    k.ep = cli;
    k.conn = c;
    k.send = bs;
    k.recv = br;
    char name[64];
    snprintf(name, sizeof name, "%s (ending %d)", cc->name, (int)how);
    call_start(&k, cc->fn, name);
    CHECK(call_blocked(&k));
    int want = IROH_ERR_CONNECTION_CLOSED;
    const char *err = NULL;
    switch (how) {
    case END_CLOSE_ENDPOINT:
        iroh_endpoint_close(cli);
        err = "the endpoint was closed";
        break;
    case END_CLOSE_CONNECTION:
        iroh_connection_close(c, 0, "interrupted");
        err = "closed locally with application code 0x0: interrupted";
        break;
    case END_FREE_STREAM:
        if (cc->stream == 1) {
            iroh_send_stream_free(bs);
            bs = NULL;
        } else {
            iroh_recv_stream_free(br);
            br = NULL;
        }
        want = IROH_ERR_CLOSED;
        err = "the stream was freed";
        break;
    case END_FREE_CONNECTION:
        iroh_connection_free(c);
        c = NULL;
        want = IROH_ERR_CLOSED;
        err = "the connection was freed";
        break;
    }
    if (cc->fn == f_closed && how != END_FREE_CONNECTION) {
        want = IROH_OK;
        err = NULL;
    }
    if (!call_finish(&k, want, err))
        return; /* the thread still uses everything: leave it all */
    iroh_send_stream_free(k.got_send);
    iroh_recv_stream_free(k.got_recv);
    iroh_send_stream_free(bs);
    iroh_recv_stream_free(br);
    iroh_send_stream_free(us);
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
}

TEST(close_wakes_blocked_calls)
{
    iroh_endpoint *srv = bind_small_server();
    for (size_t i = 0; i < sizeof conn_cases / sizeof conn_cases[0]; i++) {
        blocked_conn_call(srv, &conn_cases[i], END_CLOSE_ENDPOINT);
        blocked_conn_call(srv, &conn_cases[i], END_CLOSE_CONNECTION);
    }
    iroh_endpoint_free(srv);
}

TEST(free_wakes_blocked_calls)
{
    iroh_endpoint *srv = bind_small_server();
    for (size_t i = 0; i < sizeof conn_cases / sizeof conn_cases[0]; i++)
        blocked_conn_call(srv, &conn_cases[i],
                          conn_cases[i].stream ? END_FREE_STREAM : END_FREE_CONNECTION);
    iroh_endpoint_free(srv);
}

/* the server's writer for waiters_wake_only_for_their_own */
typedef struct writer {
    iroh_send_stream *s;
    size_t len;
    int rc;
    pthread_t th;
} writer;

static void *write_main(void *arg)
{
    writer *w = arg;
    w->rc = iroh_send_stream_write_all(w->s, big, w->len);
    if (w->rc == IROH_OK)
        w->rc = iroh_send_stream_finish(w->s);
    return NULL;
}

TEST(waiters_wake_only_for_their_own)
{
    /* Calls blocked on one stream, on the connection and on another connection of the
     * same endpoint sleep on while a stream next to them carries a MiB (dozens of I/O
     * rounds): each waits once and is woken by nothing else (with one condition variable
     * broadcast after every round, each woke and waited again every round). */
    iroh_endpoint *srv = bind_ep(1, NULL), *cli = bind_ep(0, NULL);
    server sv = {srv, NULL, 0};
    iroh_connection *c1 = pair(&sv, cli);
    iroh_connection *s1 = sv.conn;
    iroh_connection *c2 = pair(&sv, cli);
    iroh_connection *s2 = sv.conn;
    if (!c1 || !c2 || !s1 || !s2)
        return;
    /* stream A on c1 and stream D on c2 stay silent towards the client; B carries data */
    iroh_send_stream *as, *bs, *ds, *pa, *pb, *pd;
    iroh_recv_stream *ar, *br, *dr, *qa, *qb, *qd;
    CHECK_EQ_INT(iroh_connection_open_bi(c1, &as, &ar), IROH_OK);
    CHECK_EQ_INT(iroh_connection_open_bi(c1, &bs, &br), IROH_OK);
    CHECK_EQ_INT(iroh_connection_open_bi(c2, &ds, &dr), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(as, "a", 1), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(bs, "b", 1), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(ds, "d", 1), IROH_OK);
    CHECK_EQ_INT(iroh_connection_accept_bi(s1, 5000, &pa, &qa), IROH_OK);
    CHECK_EQ_INT(iroh_connection_accept_bi(s1, 5000, &pb, &qb), IROH_OK);
    CHECK_EQ_INT(iroh_connection_accept_bi(s2, 5000, &pd, &qd), IROH_OK);

    enum { N = 6 };
    static const struct {
        call_fn fn;
        const char *name;
        int conn;
    } cases[N] = {
        {f_read, "read of a silent stream next to the busy one", 1},
        {f_accept_bi, "accept_bi on the busy connection", 1},
        {f_read_datagram, "read_datagram on the busy connection", 1},
        {f_read, "read of a stream of another connection", 2},
        {f_closed, "closed on another connection", 2},
        {f_accept, "accept on the endpoint", 0},
    };
    call k[N];
    for (int i = 0; i < N; i++) {
        memset(&k[i], 0, sizeof k[i]);
        k[i].ep = cli;
        k[i].conn = cases[i].conn == 2 ? c2 : c1;
        k[i].recv = cases[i].conn == 2 ? dr : ar;
        call_start(&k[i], cases[i].fn, cases[i].name);
        CHECK(call_blocked(&k[i]));
    }

    writer w = {pb, 1u << 20, -1, 0};
    pthread_create(&w.th, NULL, write_main, &w);
    static uint8_t got[1u << 20];
    CHECK_EQ_INT(iroh_recv_stream_read_exact(br, got, w.len), IROH_OK);
    pthread_join(w.th, NULL);
    CHECK_EQ_INT(w.rc, IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_flushed(pb, 5000), IROH_OK); /* its last acknowledgements */
    for (int i = 0; i < N; i++) {
        pthread_mutex_lock(&t_mu);
        int waits = k[i].w.waits, done = k[i].done;
        pthread_mutex_unlock(&t_mu);
        if (waits != 1 || done)
            fprintf(stderr, "%s: %d waits%s\n", cases[i].name, waits, done ? ", returned" : "");
        CHECK(waits == 1 && !done);
    }

    /* and what ends them still does */
    iroh_endpoint_close(cli);
    for (int i = 0; i < N; i++) {
        int rc = cases[i].fn == f_closed ? IROH_OK
                 : cases[i].fn == f_accept ? IROH_ERR_CLOSED
                                           : IROH_ERR_CONNECTION_CLOSED;
        call_finish(&k[i], rc, rc == IROH_OK ? "" : "the endpoint was closed");
    }
    iroh_send_stream *ss[] = {as, bs, ds, pa, pb, pd};
    iroh_recv_stream *rs[] = {ar, br, dr, qa, qb, qd};
    for (int i = 0; i < 6; i++) {
        iroh_send_stream_free(ss[i]);
        iroh_recv_stream_free(rs[i]);
    }
    iroh_connection_free(c1);
    iroh_connection_free(c2);
    iroh_connection_free(s1);
    iroh_connection_free(s2);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(srv);
}

/* a call that takes the endpoint's lock and returns at once, on a thread of the test's */
typedef struct quick_call {
    iroh_endpoint *ep;
    int done;
    pthread_t th;
} quick_call;

static void *quick_main(void *arg)
{
    quick_call *q = arg;
    test_thread = 1;
    char buf[256];
    iroh_endpoint_home_relay(q->ep, buf, sizeof buf); /* no relay: IROH_ERR_STATE */
    t_set(&q->done, 1);
    return NULL;
}

/* with the I/O thread held in a system call: the endpoint's lock is free (a call that
 * takes it returns within 2 s; under the lock it would not return before the release) */
static void lock_free_while_held(iroh_endpoint *ep, const char *what, int nth)
{
    CHECK(t_wait_for(&io_holds, nth, NULL, 10000));
    quick_call q = {ep, 0, 0};
    pthread_create(&q.th, NULL, quick_main, &q);
    int free_lock = t_wait_for(&q.done, 1, NULL, 2000);
    if (!free_lock)
        fprintf(stderr, "the endpoint's lock is held while the I/O thread is in %s\n", what);
    CHECK(free_lock);
    t_set(&io_releases, nth);
    pthread_join(q.th, NULL);
    CHECK(q.done);
}

typedef struct dial {
    iroh_endpoint *ep;
    iroh_endpoint_addr *addr;
    int rc;
    pthread_t th;
} dial;

static void *dial_main(void *arg)
{
    dial *d = arg;
    test_thread = 1;
    iroh_connection *c = NULL;
    d->rc = iroh_endpoint_connect(d->ep, d->addr, ALPN, &c);
    iroh_connection_free(c);
    return NULL;
}

TEST(io_syscalls_without_the_lock)
{
    test_thread = 1;
    iroh_endpoint *ep = bind_ep(1, NULL);
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(ep, &addr);
    iroh_transport_addr t;
    CHECK_EQ_INT(iroh_endpoint_addr_get(addr, 0, &t), IROH_OK);

    /* receiving: a datagram to the endpoint's socket, the I/O thread held in recvmmsg */
    atomic_store(&io_hold, HOLD_RECV);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(t.ip.port)};
    memcpy(&to.sin_addr, t.ip.ip, 4);
    CHECK(sendto(fd, "not quic", 8, 0, (struct sockaddr *)&to, sizeof to) == 8);
    lock_free_while_held(ep, "recvmmsg", 1);
    close(fd);

    /* sending: a dial to an address that never answers; the I/O thread held in the send
     * of the first flight or of a repeat */
    atomic_store(&io_hold, HOLD_SEND);
    iroh_secret_key key;
    iroh_endpoint_id other;
    iroh_secret_key_generate(&key);
    iroh_secret_key_public(&key, &other);
    dial d = {ep, iroh_endpoint_addr_new(&other), 0, 0};
    iroh_socket_addr sa;
    iroh_socket_addr_parse("127.0.0.1:9", &sa);
    iroh_endpoint_addr_add_ip(d.addr, &sa);
    pthread_create(&d.th, NULL, dial_main, &d);
    lock_free_while_held(ep, "a send", 2);
    atomic_store(&io_hold, HOLD_NONE);
    iroh_endpoint_close(ep);
    pthread_join(d.th, NULL);
    CHECK_EQ_INT(d.rc, IROH_ERR_CLOSED);
    iroh_endpoint_addr_free(d.addr);
    iroh_endpoint_addr_free(addr);
    iroh_endpoint_free(ep);
    test_thread = 0;
}

TEST(endpoint_close_wakes_endpoint_calls)
{
    /* accept */
    iroh_endpoint *ep = bind_ep(1, NULL);
    call k;
    memset(&k, 0, sizeof k);
    k.ep = ep;
    call_start(&k, f_accept, "accept");
    CHECK(call_blocked(&k));
    iroh_endpoint_close(ep);
    if (call_finish(&k, IROH_ERR_CLOSED, "the endpoint was closed"))
        iroh_endpoint_free(ep);

    /* connect while dialing an address that never answers */
    ep = bind_ep(0, NULL);
    iroh_secret_key key;
    iroh_endpoint_id other;
    iroh_secret_key_generate(&key);
    iroh_secret_key_public(&key, &other);
    iroh_endpoint_addr *dead = iroh_endpoint_addr_new(&other);
    iroh_socket_addr sa;
    iroh_socket_addr_parse("127.0.0.1:9", &sa);
    iroh_endpoint_addr_add_ip(dead, &sa);
    memset(&k, 0, sizeof k);
    k.ep = ep;
    k.addr = dead;
    call_start(&k, f_connect, "connect");
    CHECK(call_blocked(&k));
    iroh_endpoint_close(ep);
    if (call_finish(&k, IROH_ERR_CLOSED, "the endpoint was closed"))
        iroh_endpoint_free(ep);
    iroh_endpoint_addr_free(dead);

    /* online, waiting for a relay that refuses connections */
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    CHECK_EQ_INT(iroh_endpoint_builder_relay_url(b, "http://127.0.0.1:9/"), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_bind(b, &ep), IROH_OK);
    iroh_endpoint_builder_free(b);
    memset(&k, 0, sizeof k);
    k.ep = ep;
    call_start(&k, f_online, "online");
    CHECK(call_blocked(&k));
    iroh_endpoint_close(ep);
    if (call_finish(&k, IROH_ERR_CLOSED, "the endpoint was closed"))
        iroh_endpoint_free(ep);
}

TEST(freed_connection_hands_out_nothing)
{
    /* a stream or datagram that arrives while another thread frees the connection handle
     * is not handed out by the call blocked on that handle: it says the handle was freed
     * (the caller, who freed it, would not expect streams to free) */
    static const call_fn fns[] = {f_accept_bi, f_accept_uni, f_read_datagram};
    static const char *const names[] = {"accept_bi", "accept_uni", "read_datagram"};
    for (int i = 0; i < 3; i++) {
        server s = {bind_ep(1, NULL), NULL, 0};
        iroh_endpoint *cli = bind_ep(0, NULL);
        iroh_connection *c = pair(&s, cli);
        if (!c || !s.conn)
            return;
        call k;
        memset(&k, 0, sizeof k);
        k.conn = s.conn;
        call_start(&k, fns[i], names[i]);
        CHECK(call_blocked(&k));
        watch_hold(&k.w); /* it looks again only when the test lets it */
        /* what it waits for reaches the server (a stream acknowledged up to its end; a
         * datagram goes out before the stream data written after it) */
        if (fns[i] == f_read_datagram)
            CHECK_EQ_INT(iroh_connection_send_datagram(c, "d", 1), IROH_OK);
        iroh_send_stream *cs = NULL;
        iroh_recv_stream *cr = NULL;
        CHECK_EQ_INT(fns[i] == f_accept_bi ? iroh_connection_open_bi(c, &cs, &cr)
                                           : iroh_connection_open_uni(c, &cs), IROH_OK);
        CHECK_EQ_INT(iroh_send_stream_write_all(cs, "x", 1), IROH_OK);
        CHECK_EQ_INT(iroh_send_stream_finish(cs), IROH_OK);
        CHECK_EQ_INT(iroh_send_stream_flushed(cs, 5000), IROH_OK);
        CHECK(watch_held(&k.w, 10000));
        iroh_connection_free(s.conn);
        watch_release(&k.w);
        if (!call_finish(&k, IROH_ERR_CLOSED, "the connection was freed"))
            return; /* the thread still uses everything: leave it all */
        iroh_send_stream_free(k.got_send);
        iroh_recv_stream_free(k.got_recv);
        iroh_send_stream_free(cs);
        iroh_recv_stream_free(cr);
        iroh_connection_free(c);
        iroh_endpoint_free(cli);
        iroh_endpoint_free(s.ep);
    }
}

TEST(reads_after_stop_fail)
{
    /* a receive stream we stopped has no end to report: a read blocked on it when
     * another thread stops it, and every later read, fail with IROH_ERR_STATE instead of
     * returning 0 bytes (a clean end of the stream) */
    server s = {bind_ep(1, NULL), NULL, 0};
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *c = pair(&s, cli);
    if (!c || !s.conn)
        return;
    iroh_send_stream *cs;
    iroh_recv_stream *sr;
    uint8_t buf[16];
    size_t n = 99;
    CHECK_EQ_INT(iroh_connection_open_uni(c, &cs), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(cs, "abc", 3), IROH_OK);
    CHECK_EQ_INT(iroh_connection_accept_uni(s.conn, 5000, &sr), IROH_OK);
    CHECK_EQ_INT(iroh_recv_stream_read_exact(sr, buf, 3), IROH_OK);
    call k;
    memset(&k, 0, sizeof k);
    k.recv = sr;
    call_start(&k, f_read, "read of a stream stopped meanwhile");
    CHECK(call_blocked(&k));
    CHECK_EQ_INT(iroh_recv_stream_stop(sr, 5), IROH_OK);
    if (!call_finish(&k, IROH_ERR_STATE, "the stream was stopped"))
        return; /* the thread still uses everything: leave it all */
    CHECK_EQ_INT(iroh_recv_stream_read(sr, buf, sizeof buf, &n), IROH_ERR_STATE);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(iroh_recv_stream_read_exact(sr, buf, 1), IROH_ERR_STATE);
    uint8_t *all = NULL;
    size_t len = 0;
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(sr, 100, &all, &len), IROH_ERR_STATE);
    free(all); /* (none) */
    all = NULL;
    iroh_send_stream_free(cs);
    iroh_recv_stream_free(sr);
    /* read_to_end over its limit stops the stream too */
    iroh_send_stream *bs, *ss;
    iroh_recv_stream *br;
    CHECK_EQ_INT(iroh_connection_open_bi(c, &bs, &br), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(bs, "0123456789", 10), IROH_OK);
    CHECK_EQ_INT(iroh_connection_accept_bi(s.conn, 5000, &ss, &sr), IROH_OK);
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(sr, 5, &all, &len), IROH_ERR_TOO_LONG);
    CHECK_EQ_INT(iroh_recv_stream_read(sr, buf, sizeof buf, &n), IROH_ERR_STATE);
    CHECK(strstr(iroh_last_error(), "stopped") != NULL);
    /* a stream read to its end stays ended: stopping it then changes nothing */
    CHECK_EQ_INT(iroh_send_stream_write_all(ss, "xy", 2), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_finish(ss), IROH_OK);
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(br, 100, &all, &len), IROH_OK);
    free(all);
    CHECK_EQ_INT(iroh_recv_stream_stop(br, 0), IROH_OK);
    n = 99;
    CHECK_EQ_INT(iroh_recv_stream_read(br, buf, sizeof buf, &n), IROH_OK);
    CHECK_EQ_INT(n, 0);
    iroh_send_stream_free(bs);
    iroh_recv_stream_free(br);
    iroh_send_stream_free(ss);
    iroh_recv_stream_free(sr);
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(s.ep);
}

TEST(free_during_a_write_resets)
{
    /* a send stream freed while another thread's write or write_all on it is blocked: the
     * write was cut short, so the peer sees a reset with code 0, not a clean end after
     * part of the data */
    static const call_fn fns[] = {f_write_all, f_write};
    for (int i = 0; i < 2; i++) {
        server s = {bind_small_server(), NULL, 0}; /* windows of 64 KiB */
        iroh_endpoint *cli = bind_ep(0, NULL);
        iroh_connection *c = pair(&s, cli);
        if (!c || !s.conn)
            return;
        iroh_send_stream *us;
        CHECK_EQ_INT(iroh_connection_open_uni(c, &us), IROH_OK);
        call k;
        memset(&k, 0, sizeof k);
        k.send = us;
        call_start(&k, fns[i], i ? "write" : "write_all");
        CHECK(call_blocked(&k));
        iroh_send_stream_free(us);
        if (!call_finish(&k, IROH_ERR_CLOSED, "the stream was freed"))
            return; /* the thread still uses everything: leave it all */
        iroh_recv_stream *sr;
        CHECK_EQ_INT(iroh_connection_accept_uni(s.conn, 5000, &sr), IROH_OK);
        CHECK_EQ_INT(iroh_recv_stream_set_timeout(sr, 20000), IROH_OK);
        uint8_t *all = NULL;
        size_t len = 0;
        int rc = iroh_recv_stream_read_to_end(sr, BIG, &all, &len);
        if (rc == IROH_OK)
            fprintf(stderr, "%s: the peer read a clean end after %zu bytes\n", k.name, len);
        CHECK_EQ_INT(rc, IROH_ERR_STREAM_RESET);
        CHECK_EQ_INT(iroh_recv_stream_reset_code(sr), 0);
        free(all);
        iroh_recv_stream_free(sr);
        iroh_connection_free(c);
        iroh_connection_free(s.conn);
        iroh_endpoint_free(cli);
        iroh_endpoint_free(s.ep);
    }
}

TEST(close_reason_survives_the_endpoint_close)
{
    /* a connection closed before its endpoint keeps its own reason; one the endpoint's
     * close closed says so */
    server s = {bind_ep(1, NULL), NULL, 0};
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *c = pair(&s, cli);
    iroh_connection *s1 = s.conn;
    iroh_connection *still_open = pair(&s, cli);
    iroh_send_stream *xs = NULL;
    iroh_recv_stream *xr = NULL;
    if (c && still_open) {
        iroh_connection_close(c, 42, "done here");
        iroh_endpoint_close(cli);
        CHECK_EQ_INT(iroh_connection_open_bi(c, &xs, &xr), IROH_ERR_CONNECTION_CLOSED);
        CHECK_STR(iroh_last_error(), "connection closed locally with application code 0x2a: "
                                     "done here");
        CHECK_EQ_INT(iroh_connection_open_bi(still_open, &xs, &xr), IROH_ERR_CONNECTION_CLOSED);
        CHECK_STR(iroh_last_error(), "the endpoint was closed");
    }
    iroh_connection_free(c);
    iroh_connection_free(still_open);
    iroh_connection_free(s1);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(s.ep);
}

TEST(time_limits_below_minus_one)
{
    /* timeout_ms below -1 is a bad argument (-1 is "none"), as the setters say; here each
     * call would otherwise return at once with what is ready */
    server s = {bind_ep(1, NULL), NULL, 0};
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *c = pair(&s, cli);
    if (!c || !s.conn)
        return;
    CHECK_EQ_INT(iroh_endpoint_online(cli, -2), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_endpoint_online(cli, -1), IROH_OK); /* relays disabled */
    /* a second connection waits to be accepted */
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(s.ep, &addr);
    iroh_connection *c2 = NULL;
    CHECK_EQ_INT(iroh_endpoint_connect(cli, addr, ALPN, &c2), IROH_OK);
    iroh_endpoint_addr_free(addr);
    iroh_incoming *inc = NULL;
    int rc = iroh_endpoint_accept(s.ep, -2, &inc);
    CHECK_EQ_INT(rc, IROH_ERR_INVALID_ARGUMENT);
    if (rc == IROH_OK)
        iroh_incoming_refuse(inc);
    /* a stream of each kind and a datagram have arrived */
    iroh_send_stream *bs, *us, *ss = NULL;
    iroh_recv_stream *br, *sr = NULL;
    CHECK_EQ_INT(iroh_connection_send_datagram(c, "d", 1), IROH_OK);
    CHECK_EQ_INT(iroh_connection_open_bi(c, &bs, &br), IROH_OK);
    CHECK_EQ_INT(iroh_connection_open_uni(c, &us), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_finish(bs), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_finish(us), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_flushed(bs, 5000), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_flushed(us, 5000), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_flushed(us, -2), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_connection_accept_bi(s.conn, -2, &ss, &sr), IROH_ERR_INVALID_ARGUMENT);
    iroh_send_stream_free(ss);
    iroh_recv_stream_free(sr);
    sr = NULL;
    CHECK_EQ_INT(iroh_connection_accept_uni(s.conn, -2, &sr), IROH_ERR_INVALID_ARGUMENT);
    iroh_recv_stream_free(sr);
    char dg[8];
    size_t n;
    CHECK_EQ_INT(iroh_connection_read_datagram(s.conn, -2, dg, sizeof dg, &n),
                 IROH_ERR_INVALID_ARGUMENT);
    iroh_connection_close(c, 0, "bye");
    CHECK_EQ_INT(iroh_connection_closed(c, -2), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_connection_closed(c, INT32_MIN), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_connection_closed(c, -1), IROH_OK);
    iroh_send_stream_free(bs);
    iroh_recv_stream_free(br);
    iroh_send_stream_free(us);
    iroh_connection_free(c);
    iroh_connection_free(c2);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(s.ep);
}

TEST(online_after_close)
{
    /* with relays disabled online has nothing to wait for, but after the endpoint's close
     * it fails as every later call does */
    iroh_endpoint *ep = bind_ep(0, NULL);
    CHECK_EQ_INT(iroh_endpoint_online(ep, 0), IROH_OK);
    iroh_endpoint_close(ep);
    CHECK_EQ_INT(iroh_endpoint_online(ep, 0), IROH_ERR_CLOSED);
    CHECK_EQ_INT(iroh_endpoint_online(ep, -1), IROH_ERR_CLOSED);
    iroh_endpoint_free(ep);
}

TEST(freed_send_stream_hears_nothing)
{
    /* the same for a stream: flushed blocked on a send stream that another thread frees
     * returns IROH_ERR_CLOSED, also when the acknowledgement it waited for came meanwhile */
    server s = {bind_small_server(), NULL, 0}; /* windows of 64 KiB */
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *c = pair(&s, cli);
    if (!c || !s.conn)
        return;
    iroh_send_stream *us;
    CHECK_EQ_INT(iroh_connection_open_uni(c, &us), IROH_OK);
    call k;
    memset(&k, 0, sizeof k);
    k.send = us;
    call_start(&k, f_flushed, "flushed");
    CHECK(call_blocked(&k));
    watch_hold(&k.w);
    /* the peer reads it all: the acknowledgement of the end reaches the client (nothing
     * of it is in flight any more) */
    iroh_recv_stream *sr;
    CHECK_EQ_INT(iroh_connection_accept_uni(s.conn, 5000, &sr), IROH_OK);
    uint8_t *all = NULL;
    size_t len = 0;
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(sr, BIG, &all, &len), IROH_OK);
    CHECK_EQ_INT(len, 200000);
    free(all);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    iroh_connection_stats st;
    do {
        usleep(1000); /* polls a condition, bounded */
        iroh_connection_stats_get(c, &st);
    } while (st.bytes_in_flight && ms_since(&t0) < 10000);
    CHECK_EQ_INT(st.bytes_in_flight, 0);
    CHECK(watch_held(&k.w, 10000));
    iroh_send_stream_free(us);
    watch_release(&k.w);
    if (!call_finish(&k, IROH_ERR_CLOSED, "the stream was freed"))
        return; /* the thread still uses everything: leave it all */
    iroh_recv_stream_free(sr);
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(s.ep);
}

TEST(stream_outlives_its_connection_handle)
{
    /* a read blocked on a stream goes on when the connection handle is freed (the
     * stream keeps the connection open) and returns the data that comes */
    server s = {bind_ep(1, NULL), NULL, 0};
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *c = pair(&s, cli);
    iroh_send_stream *cs, *ss;
    iroh_recv_stream *cr, *sr;
    CHECK_EQ_INT(iroh_connection_open_bi(c, &cs, &cr), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(cs, "q", 1), IROH_OK);
    CHECK_EQ_INT(iroh_connection_accept_bi(s.conn, 5000, &ss, &sr), IROH_OK);
    call k;
    memset(&k, 0, sizeof k);
    k.recv = cr;
    call_start(&k, f_read, "read after the connection handle is freed");
    CHECK(call_blocked(&k));
    iroh_connection_free(c);
    CHECK(call_stays_blocked(&k, 300));
    CHECK_EQ_INT(iroh_send_stream_write_all(ss, "answer", 6), IROH_OK);
    if (call_finish(&k, IROH_OK, NULL)) {
        CHECK_EQ_INT(k.got_n, 6);
        iroh_send_stream_free(cs);
        iroh_recv_stream_free(cr);
        iroh_send_stream_free(ss);
        iroh_recv_stream_free(sr);
        iroh_connection_free(s.conn);
        iroh_endpoint_free(cli);
        iroh_endpoint_free(s.ep);
    }
}

/* the call returned IROH_ERR_TIMEOUT, and not before its time limit (minus the clock's
 * rounding) */
#define CHECK_TIMES_OUT(call, ms)                                                          \
    do {                                                                                   \
        struct timespec t_0;                                                               \
        clock_gettime(CLOCK_MONOTONIC, &t_0);                                              \
        CHECK_EQ_INT(call, IROH_ERR_TIMEOUT);                                              \
        CHECK(ms_since(&t_0) >= (ms) - 5);                                                 \
    } while (0)

TEST(per_handle_timeouts)
{
    for (size_t i = 0; i < BIG; i++)
        big[i] = (uint8_t)(i * 7 + (i >> 12));
    server s = {bind_small_server(), NULL, 0};
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *c = pair(&s, cli);
    if (!c || !s.conn)
        return;
    CHECK_EQ_INT(iroh_connection_set_timeout(c, -2), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_connection_set_timeout(NULL, 10), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_send_stream_set_timeout(NULL, 10), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_recv_stream_set_timeout(NULL, 10), IROH_ERR_INVALID_ARGUMENT);

    /* open_bi / open_uni at the peer's stream limit (one of each) */
    iroh_send_stream *bs, *us, *xs = NULL;
    iroh_recv_stream *br, *xr = NULL;
    CHECK_EQ_INT(iroh_connection_open_bi(c, &bs, &br), IROH_OK);
    CHECK_EQ_INT(iroh_connection_open_uni(c, &us), IROH_OK);
    CHECK_EQ_INT(iroh_connection_set_timeout(c, 200), IROH_OK);
    CHECK_TIMES_OUT(iroh_connection_open_bi(c, &xs, &xr), 200);
    CHECK(strstr(iroh_last_error(), "200 ms") != NULL);
    CHECK_TIMES_OUT(iroh_connection_open_uni(c, &xs), 200);
    CHECK_EQ_INT(iroh_connection_set_timeout(c, 0), IROH_OK); /* 0: do not wait at all */
    CHECK_EQ_INT(iroh_connection_open_uni(c, &xs), IROH_ERR_TIMEOUT);

    /* reads of a stream the peer sends nothing on */
    uint8_t buf[64];
    size_t n = 99;
    CHECK_EQ_INT(iroh_recv_stream_set_timeout(br, 150), IROH_OK);
    CHECK_TIMES_OUT(iroh_recv_stream_read(br, buf, sizeof buf, &n), 150);
    CHECK_EQ_INT(n, 0);
    CHECK_TIMES_OUT(iroh_recv_stream_read_exact(br, buf, sizeof buf), 150);
    uint8_t *all = NULL;
    size_t alen = 0;
    CHECK_TIMES_OUT(iroh_recv_stream_read_to_end(br, 100, &all, &alen), 150);
    CHECK(all == NULL);

    /* writes beyond what the send buffer and the peer's window take: write until one
     * times out having queued nothing (acknowledgements may free room for a while) */
    CHECK_EQ_INT(iroh_send_stream_set_timeout(bs, 200), IROH_OK);
    size_t off = 0, w = 0;
    int rc = IROH_OK;
    struct timespec t0;
    while (rc == IROH_OK && off < BIG / 2) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        w = 99;
        rc = iroh_send_stream_write(bs, big + off, 65536, &w);
        if (rc == IROH_OK)
            off += w;
    }
    CHECK_EQ_INT(rc, IROH_ERR_TIMEOUT);
    CHECK(ms_since(&t0) >= 195);
    CHECK_EQ_INT(w, 0);
    CHECK(off > 65536);
    CHECK_TIMES_OUT(iroh_send_stream_write_all(bs, big + off, BIG - off), 200);
    /* what write_all queued before its time ran out stays queued: the peer reads the
     * data in order, then the end */
    CHECK_EQ_INT(iroh_send_stream_set_timeout(bs, -1), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_finish(bs), IROH_OK);
    iroh_send_stream *ss;
    iroh_recv_stream *sr;
    CHECK_EQ_INT(iroh_connection_accept_bi(s.conn, 5000, &ss, &sr), IROH_OK);
    CHECK_EQ_INT(iroh_recv_stream_set_timeout(sr, 20000), IROH_OK);
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(sr, BIG, &all, &alen), IROH_OK);
    CHECK(alen >= off && alen < BIG);
    CHECK(all && memcmp(all, big, alen) == 0);
    free(all);
    iroh_send_stream_free(ss);
    iroh_recv_stream_free(sr);
    iroh_send_stream_free(bs);
    iroh_recv_stream_free(br);
    iroh_send_stream_free(us);
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(s.ep);
}

/* a handler that waits for a stream forever, watched */
static watch handler_watch;
static int wait_for_stream(void *ctx, iroh_connection *conn)
{
    iroh_send_stream *s;
    iroh_recv_stream *r;
    watched = &handler_watch;
    int rc = iroh_connection_accept_bi(conn, -1, &s, &r);
    watched = NULL;
    if (rc == IROH_OK) {
        iroh_send_stream_free(s);
        iroh_recv_stream_free(r);
    }
    return 0;
}

static int shutdown_returned;
static void *shutdown_router(void *arg)
{
    iroh_router_shutdown(arg);
    t_set(&shutdown_returned, 1);
    return NULL;
}

TEST(router_shutdown_with_a_blocked_handler)
{
    /* shutdown closes the handlers' connections (application code 0) before it waits for
     * them, so a handler blocked in accept_bi(-1) returns and shutdown ends */
    iroh_endpoint *ep = bind_ep(1, NULL);
    iroh_router_builder *rb = iroh_router_builder_new(ep);
    CHECK_EQ_INT(iroh_router_builder_accept(rb, ALPN, wait_for_stream, NULL), IROH_OK);
    iroh_router *router;
    CHECK_EQ_INT(iroh_router_spawn(rb, &router), IROH_OK);
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(ep, &addr);
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *c = NULL;
    memset(&handler_watch, 0, sizeof handler_watch);
    handler_watch.armed = 1;
    shutdown_returned = 0;
    CHECK_EQ_INT(iroh_endpoint_connect(cli, addr, ALPN, &c), IROH_OK);
    iroh_endpoint_addr_free(addr);
    /* the handler waits inside accept_bi */
    CHECK(t_wait_for(&handler_watch.waits, 1, NULL, 10000));
    pthread_t th;
    pthread_create(&th, NULL, shutdown_router, router);
    int done = t_wait_for(&shutdown_returned, 1, NULL, 10000);
    CHECK(done);
    if (c) {
        CHECK_EQ_INT(iroh_connection_closed(c, 5000), IROH_OK);
        iroh_close_reason why;
        iroh_connection_close_reason(c, &why);
        CHECK_EQ_INT(why.kind, IROH_CLOSE_APPLICATION);
        CHECK(why.by_peer && why.code == 0);
        if (!done)
            iroh_connection_close(c, 1, "unstick the handler");
        iroh_connection_free(c);
    }
    pthread_join(th, NULL);
    iroh_router_free(router);
    iroh_endpoint_free(cli);
}

/* handlers that stay until the gate opens */
static int handlers_in, handler_gate;
static int wait_at_handler_gate(void *ctx, iroh_connection *conn)
{
    (void)ctx;
    (void)conn;
    pthread_mutex_lock(&t_mu);
    handlers_in++;
    pthread_cond_broadcast(&t_cv);
    pthread_mutex_unlock(&t_mu);
    t_wait_for(&handler_gate, 1, NULL, 30000);
    return 0;
}

/* the peer closed c with an application code and reason */
static void check_app_close(iroh_connection *c, uint64_t code, const char *reason)
{
    CHECK_EQ_INT(iroh_connection_closed(c, 5000), IROH_OK);
    iroh_close_reason why;
    iroh_connection_close_reason(c, &why);
    CHECK(why.kind == IROH_CLOSE_APPLICATION && why.by_peer);
    CHECK_EQ_INT(why.code, code);
    CHECK_STR(why.reason, reason);
}

TEST(router_handler_cap)
{
    /* at most max_handlers handlers at once: a connection beyond them is closed at once
     * with application code 1, "too many connections"; a place frees when a handler
     * returns */
    iroh_endpoint *ep = bind_ep(1, NULL);
    iroh_router_builder *rb = iroh_router_builder_new(ep);
    CHECK_EQ_INT(iroh_router_builder_max_handlers(rb, 0), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_router_builder_max_handlers(NULL, 2), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_router_builder_max_handlers(rb, 2), IROH_OK);
    CHECK_EQ_INT(iroh_router_builder_accept(rb, ALPN, wait_at_handler_gate, NULL), IROH_OK);
    iroh_router *router;
    CHECK_EQ_INT(iroh_router_spawn(rb, &router), IROH_OK);
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(ep, &addr);
    iroh_endpoint *cli = bind_ep(0, NULL);
    handlers_in = handler_gate = 0;
    iroh_connection *c[4] = {NULL, NULL, NULL, NULL};
    CHECK_EQ_INT(iroh_endpoint_connect(cli, addr, ALPN, &c[0]), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_connect(cli, addr, ALPN, &c[1]), IROH_OK);
    CHECK(t_wait_for(&handlers_in, 2, NULL, 10000));
    /* two run: the third is closed */
    int rc = iroh_endpoint_connect(cli, addr, ALPN, &c[2]);
    if (rc == IROH_OK) /* the client may finish its handshake before the close comes */
        check_app_close(c[2], 1, "too many connections");
    else
        CHECK(rc == IROH_ERR_CONNECTION_CLOSED && strstr(iroh_last_error(), "too many"));
    CHECK_EQ_INT(iroh_connection_closed(c[0], 0), IROH_ERR_TIMEOUT); /* still open */
    /* the handlers return (the router closes their connections): room for one more */
    t_set(&handler_gate, 1);
    check_app_close(c[0], 0, "");
    check_app_close(c[1], 0, "");
    CHECK_EQ_INT(iroh_endpoint_connect(cli, addr, ALPN, &c[3]), IROH_OK);
    CHECK(t_wait_for(&handlers_in, 3, NULL, 10000));
    if (c[3])
        check_app_close(c[3], 0, "");
    iroh_endpoint_addr_free(addr);
    for (int i = 0; i < 4; i++)
        iroh_connection_free(c[i]);
    iroh_endpoint_free(cli);
    iroh_router_free(router);
}

/* ---- accept hands out finished connections ---------------------------------------- */

/* A UDP socket standing between a client and a server that passes on the client's first
 * datagram only: the server gets a real first flight, then the client is silent. */
typedef struct one_way {
    int fd;
    iroh_socket_addr addr;  /* where the client is told the server is */
    struct sockaddr_in srv; /* the real server */
    pthread_t th;
    int forwarded; /* the client's first datagram went to the server */
    int answered;  /* ... and the server answered it: it holds the half-open connection */
} one_way;

static void *one_way_main(void *arg)
{
    one_way *w = arg;
    uint8_t buf[1500];
    struct pollfd pf = {.fd = w->fd, .events = POLLIN};
    if (poll(&pf, 1, 10000) == 1) {
        ssize_t n = recv(w->fd, buf, sizeof buf, 0);
        if (n > 0 && sendto(w->fd, buf, (size_t)n, 0, (struct sockaddr *)&w->srv, sizeof w->srv) == n)
            w->forwarded = 1;
    }
    /* the server's answer (the client's repeats are dropped meanwhile) */
    while (w->forwarded && poll(&pf, 1, 10000) == 1) {
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        if (recvfrom(w->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen) > 0 &&
            from.sin_port == w->srv.sin_port && from.sin_addr.s_addr == w->srv.sin_addr.s_addr) {
            w->answered = 1;
            break;
        }
    }
    return NULL; /* everything after that stays unread */
}

static void one_way_socket(one_way *w, const iroh_socket_addr *to)
{
    memset(w, 0, sizeof *w);
    w->fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ_INT(bind(w->fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(w->fd, (struct sockaddr *)&a, &len);
    iroh_socket_addr_parse("127.0.0.1:1", &w->addr);
    w->addr.port = ntohs(a.sin_port);
    w->srv.sin_family = AF_INET;
    memcpy(&w->srv.sin_addr, to->ip, 4);
    w->srv.sin_port = htons(to->port);
}

static void one_way_start(one_way *w, const iroh_socket_addr *to)
{
    one_way_socket(w, to);
    pthread_create(&w->th, NULL, one_way_main, w);
}

/* the server's first direct address */
static iroh_socket_addr first_ip(iroh_endpoint *ep)
{
    iroh_endpoint_addr *a;
    iroh_transport_addr t;
    iroh_endpoint_get_addr(ep, &a);
    iroh_endpoint_addr_get(a, 0, &t);
    iroh_endpoint_addr_free(a);
    return t.ip;
}

typedef struct acceptor {
    iroh_endpoint *ep;
    iroh_connection *conn;
    int attempts;
    long ms; /* until the connection was handed over */
} acceptor;

/* an application's accept loop, as the router's or the command's: takes the first
 * connection whose handshake succeeds */
static void *accept_loop(void *arg)
{
    acceptor *a = arg;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    iroh_incoming *inc;
    while (!a->conn && iroh_endpoint_accept(a->ep, 10000, &inc) == IROH_OK) {
        a->attempts++;
        if (iroh_incoming_accept(inc, &a->conn) != IROH_OK)
            a->conn = NULL;
    }
    a->ms = ms_since(&t0);
    return NULL;
}

TEST(stalled_handshake_does_not_block_accept)
{
    /* a server that would wait 20 s for a handshake */
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    iroh_endpoint_builder_alpn(b, ALPN);
    iroh_endpoint_builder_connect_timeout_ms(b, 20000);
    iroh_endpoint *srv;
    CHECK_EQ_INT(iroh_endpoint_bind(b, &srv), IROH_OK);
    iroh_endpoint_builder_free(b);
    iroh_endpoint_id srv_id;
    iroh_endpoint_get_id(srv, &srv_id);
    iroh_socket_addr srv_ip = first_ip(srv);

    /* the stalled client: its first flight reaches the server, nothing after it */
    one_way w;
    one_way_start(&w, &srv_ip);
    b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    iroh_endpoint_builder_connect_timeout_ms(b, 30000);
    iroh_endpoint *stalled;
    CHECK_EQ_INT(iroh_endpoint_bind(b, &stalled), IROH_OK);
    iroh_endpoint_builder_free(b);
    iroh_endpoint_addr *via = iroh_endpoint_addr_new(&srv_id);
    iroh_endpoint_addr_add_ip(via, &w.addr);
    call k;
    memset(&k, 0, sizeof k);
    k.ep = stalled;
    k.addr = via;
    call_start(&k, f_connect, "stalled connect");
    pthread_join(w.th, NULL);
    CHECK(w.forwarded && w.answered); /* the server holds the stalled handshake */

    /* the application's accept loop, then an honest client */
    acceptor a = {srv, NULL, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, accept_loop, &a);
    iroh_endpoint *honest = bind_ep(0, NULL);
    iroh_endpoint_addr *direct = iroh_endpoint_addr_new(&srv_id);
    iroh_endpoint_addr_add_ip(direct, &srv_ip);
    iroh_connection *c = NULL;
    CHECK_EQ_INT(iroh_endpoint_connect(honest, direct, ALPN, &c), IROH_OK);
    pthread_join(th, NULL);
    /* the honest client came first, at once (not after the stalled one's 20 s) */
    printf("    accept with a stalled handshake pending: the honest client in %ld ms\n", a.ms);
    CHECK(a.conn != NULL);
    CHECK_EQ_INT(a.attempts, 1);
    CHECK(a.ms < 3000);
    if (a.conn) {
        iroh_endpoint_id want, got;
        iroh_endpoint_get_id(honest, &want);
        iroh_connection_remote_id(a.conn, &got);
        CHECK(iroh_endpoint_id_equal(&want, &got));
    }
    iroh_connection_free(a.conn);
    iroh_connection_free(c);
    iroh_endpoint_close(stalled); /* cancels the stalled connect */
    if (call_finish(&k, IROH_ERR_CLOSED, "the endpoint was closed"))
        iroh_endpoint_free(stalled);
    close(w.fd);
    iroh_endpoint_addr_free(via);
    iroh_endpoint_addr_free(direct);
    iroh_endpoint_free(honest);
    iroh_endpoint_free(srv);
}

/* counts the connections whose handshake completed at a server and that wait to be
 * accepted (the event comes once one is queued) */
static int inbound_connected;
static void count_inbound(void *ctx, const iroh_event *ev)
{
    (void)ctx;
    if (ev->kind == IROH_EVENT_CONNECTED && ev->inbound) {
        pthread_mutex_lock(&t_mu); /* briefly: the callback must not block */
        inbound_connected++;
        pthread_cond_broadcast(&t_cv);
        pthread_mutex_unlock(&t_mu);
    }
}

TEST(refuse_and_ignore)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    iroh_endpoint_builder_alpn(b, ALPN);
    iroh_endpoint_builder_event_callback(b, count_inbound, NULL);
    inbound_connected = 0;
    server s = {NULL, NULL, 0};
    CHECK_EQ_INT(iroh_endpoint_bind(b, &s.ep), IROH_OK);
    iroh_endpoint_builder_free(b);
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(s.ep, &addr);
    /* refuse: the client's connection closes with CONNECTION_REFUSED (transport 0x2) */
    iroh_connection *c = NULL;
    CHECK_EQ_INT(iroh_endpoint_connect(cli, addr, ALPN, &c), IROH_OK);
    iroh_incoming *inc;
    CHECK_EQ_INT(iroh_endpoint_accept(s.ep, 5000, &inc), IROH_OK);
    iroh_incoming_refuse(inc);
    CHECK_EQ_INT(iroh_connection_closed(c, 5000), IROH_OK);
    iroh_close_reason why;
    iroh_connection_close_reason(c, &why);
    CHECK(why.kind == IROH_CLOSE_TRANSPORT && why.by_peer && why.code == 2);
    /* a call on it says so, with the code's RFC 9000 name */
    iroh_send_stream *us = NULL;
    CHECK_EQ_INT(iroh_connection_open_uni(c, &us), IROH_ERR_CONNECTION_CLOSED);
    CHECK_STR(iroh_last_error(), "connection closed by the peer with transport code 0x2 "
                                 "(CONNECTION_REFUSED): refused");
    iroh_connection_free(c);
    /* ignore: nothing is sent, no CONNECTION_CLOSE. The server forgets the connection,
     * so the client's next packets (the handshake's last acknowledgements, say) meet
     * stateless resets, which may close it as a reset, never as a close */
    CHECK_EQ_INT(iroh_endpoint_connect(cli, addr, ALPN, &c), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_accept(s.ep, 5000, &inc), IROH_OK);
    iroh_incoming_ignore(inc);
    int rc = iroh_connection_closed(c, 300);
    if (rc == IROH_OK) {
        iroh_connection_close_reason(c, &why);
        CHECK_EQ_INT(why.kind, IROH_CLOSE_RESET);
    } else {
        CHECK_EQ_INT(rc, IROH_ERR_TIMEOUT);
    }
    iroh_connection_free(c);
    /* closing the endpoint: what waits to be accepted (its handshake complete: the event
     * says so) is closed (application 0), and accept says the endpoint is closed */
    CHECK_EQ_INT(iroh_endpoint_connect(cli, addr, ALPN, &c), IROH_OK);
    CHECK(t_wait_for(&inbound_connected, 3, NULL, 10000));
    iroh_endpoint_close(s.ep);
    CHECK_EQ_INT(iroh_endpoint_accept(s.ep, 0, &inc), IROH_ERR_CLOSED);
    CHECK_EQ_INT(iroh_connection_closed(c, 5000), IROH_OK);
    iroh_connection_close_reason(c, &why);
    CHECK(why.kind == IROH_CLOSE_APPLICATION && why.by_peer && why.code == 0);
    iroh_connection_free(c);
    iroh_endpoint_addr_free(addr);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(s.ep);
}

TEST(accept_backlog)
{
    /* connections nobody accepts wait up to a backlog of 128; beyond that new ones are
     * refused (CONNECTION_REFUSED) instead of piling up */
    server s = {bind_ep(1, NULL), NULL, 0};
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(s.ep, &addr);
    enum { BACKLOG = 128 };
    iroh_connection *conns[BACKLOG + 1];
    for (int i = 0; i < BACKLOG; i++)
        CHECK_EQ_INT(iroh_endpoint_connect(cli, addr, ALPN, &conns[i]), IROH_OK);
    int rc = iroh_endpoint_connect(cli, addr, ALPN, &conns[BACKLOG]);
    if (rc == IROH_OK) {
        /* the client may finish its handshake before the refusal arrives */
        CHECK_EQ_INT(iroh_connection_closed(conns[BACKLOG], 5000), IROH_OK);
        iroh_close_reason why;
        iroh_connection_close_reason(conns[BACKLOG], &why);
        CHECK(why.kind == IROH_CLOSE_TRANSPORT && why.code == 2);
        CHECK_STR(why.reason, "too many connections waiting to be accepted");
        iroh_connection_free(conns[BACKLOG]);
    } else {
        CHECK_EQ_INT(rc, IROH_ERR_CONNECTION_CLOSED);
    }
    CHECK_EQ_INT(iroh_connection_closed(conns[0], 0), IROH_ERR_TIMEOUT); /* still open */
    /* the first in is the first out; after it, one more fits */
    iroh_incoming *inc;
    iroh_connection *first = NULL;
    CHECK_EQ_INT(iroh_endpoint_accept(s.ep, 1000, &inc), IROH_OK);
    CHECK_EQ_INT(iroh_incoming_accept(inc, &first), IROH_OK);
    iroh_connection *extra = NULL;
    CHECK_EQ_INT(iroh_endpoint_connect(cli, addr, ALPN, &extra), IROH_OK);
    CHECK_EQ_INT(iroh_connection_closed(extra, 300), IROH_ERR_TIMEOUT);
    if (first) {
        /* the first connection dialed is the first accepted: its stream arrives there */
        iroh_send_stream *cs, *ss;
        iroh_recv_stream *cr, *sr;
        CHECK_EQ_INT(iroh_connection_open_bi(conns[0], &cs, &cr), IROH_OK);
        CHECK_EQ_INT(iroh_send_stream_write_all(cs, "1", 1), IROH_OK);
        CHECK_EQ_INT(iroh_connection_accept_bi(first, 5000, &ss, &sr), IROH_OK);
        iroh_send_stream_free(cs);
        iroh_recv_stream_free(cr);
        iroh_send_stream_free(ss);
        iroh_recv_stream_free(sr);
    }
    iroh_connection_free(first);
    iroh_connection_free(extra);
    for (int i = 0; i < BACKLOG; i++)
        iroh_connection_free(conns[i]);
    iroh_endpoint_addr_free(addr);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(s.ep);
}

TEST(accept_stream_out_of_memory)
{
    /* an allocation failing in accept_bi (either half of the stream pair) gives back what
     * was made, and the stream stays acceptable */
    server s = {bind_ep(1, NULL), NULL, 0};
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *c = pair(&s, cli);
    if (!c || !s.conn)
        return;
    iroh_send_stream *cs, *ss = NULL;
    iroh_recv_stream *cr, *sr = NULL;
    CHECK_EQ_INT(iroh_connection_open_bi(c, &cs, &cr), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(cs, "a", 1), IROH_OK);
    for (int nth = 1; nth <= 2; nth++) {
        long before = fa_failures();
        fa_fail_nth(nth); /* 1: the receive half, 2: the send half */
        CHECK_EQ_INT(iroh_connection_accept_bi(s.conn, 5000, &ss, &sr), IROH_ERR_NO_MEMORY);
        fa_reset();
        CHECK_EQ_INT(fa_failures(), before + 1);
    }
    CHECK_EQ_INT(iroh_connection_accept_bi(s.conn, 5000, &ss, &sr), IROH_OK);
    if (ss && sr) {
        CHECK_EQ_INT(iroh_recv_stream_id(sr), iroh_send_stream_id(cs));
        uint8_t a = 0;
        CHECK_EQ_INT(iroh_recv_stream_read_exact(sr, &a, 1), IROH_OK);
        CHECK_EQ_INT(a, 'a');
        iroh_send_stream_free(ss);
        iroh_recv_stream_free(sr);
    }
    /* no reference was left behind: freeing the server's handle closes the connection */
    iroh_connection_free(s.conn);
    CHECK_EQ_INT(iroh_connection_closed(c, 5000), IROH_OK);
    iroh_send_stream_free(cs);
    iroh_recv_stream_free(cr);
    iroh_connection_free(c);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(s.ep);
}

TEST(write_out_of_memory)
{
    /* the send buffer failing to grow is IROH_ERR_NO_MEMORY, not the peer's STOP_SENDING
     * (the QUIC layer once reported both with one code, and the API took every failed
     * write for a stop); nothing is taken, and the stream goes on afterwards */
    server s = {bind_ep(1, NULL), NULL, 0};
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *c = pair(&s, cli);
    if (!c || !s.conn)
        return;
    iroh_send_stream *us;
    iroh_recv_stream *ur = NULL;
    CHECK_EQ_INT(iroh_connection_open_uni(c, &us), IROH_OK);
    size_t written = 99;
    long before = fa_failures();
    fa_fail_size(4096); /* the send buffer's first allocation */
    int rc = iroh_send_stream_write(us, "hello", 5, &written);
    fa_reset();
    CHECK_EQ_INT(fa_failures(), before + 1);
    CHECK_EQ_INT(rc, IROH_ERR_NO_MEMORY);
    CHECK_EQ_INT(written, 0);
    CHECK(strstr(iroh_last_error(), "out of memory") != NULL);
    /* then the stream takes the bytes and ends as usual */
    CHECK_EQ_INT(iroh_send_stream_write_all(us, "hello", 5), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_finish(us), IROH_OK);
    CHECK_EQ_INT(iroh_connection_accept_uni(s.conn, 5000, &ur), IROH_OK);
    if (ur) {
        uint8_t buf[5] = {0};
        CHECK_EQ_INT(iroh_recv_stream_read_exact(ur, buf, sizeof buf), IROH_OK);
        CHECK_MEM(buf, "hello", 5);
        iroh_recv_stream_free(ur);
    }
    iroh_send_stream_free(us);
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(s.ep);
}

TEST(datagram_out_of_memory)
{
    /* a datagram that cannot be copied into the send queue is IROH_ERR_NO_MEMORY (it was
     * reported as sent); one that fits goes on as usual */
    server s = {bind_ep(1, NULL), NULL, 0};
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *c = pair(&s, cli);
    if (!c || !s.conn)
        return;
    CHECK(iroh_connection_max_datagram_size(c) > 1000);
    static const char odd[] = "a datagram of a size nothing else has";
    long before = fa_failures();
    fa_fail_size(sizeof odd); /* its copy in the queue */
    int rc = iroh_connection_send_datagram(c, odd, sizeof odd);
    fa_reset();
    CHECK_EQ_INT(fa_failures(), before + 1);
    CHECK_EQ_INT(rc, IROH_ERR_NO_MEMORY);
    CHECK_EQ_INT(iroh_connection_send_datagram(c, "ping", 4), IROH_OK);
    uint8_t buf[64];
    size_t n = 0;
    CHECK_EQ_INT(iroh_connection_read_datagram(s.conn, 5000, buf, sizeof buf, &n), IROH_OK);
    CHECK_EQ_INT(n, 4);
    CHECK_MEM(buf, "ping", 4);
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(s.ep);
}

TEST(open_stream_out_of_memory)
{
    /* an allocation failing in open_bi / open_uni (in the library's handles or in the
     * connection's stream) uses up no stream: with a peer that allows one stream of each
     * kind, the next open still gets it */
    for (int uni = 0; uni < 2; uni++) {
        for (int nth = 1; nth <= 4; nth++) {
            server s = {bind_small_server(), NULL, 0};
            iroh_endpoint *cli = bind_ep(0, NULL);
            iroh_connection *c = pair(&s, cli);
            iroh_send_stream *cs = NULL;
            iroh_recv_stream *cr = NULL;
            if (c && s.conn) {
                long before = fa_failures();
                fa_fail_nth(nth);
                int rc = uni ? iroh_connection_open_uni(c, &cs)
                             : iroh_connection_open_bi(c, &cs, &cr);
                fa_reset();
                if (fa_failures() > before) {
                    if (rc != IROH_ERR_NO_MEMORY)
                        fprintf(stderr, "open_%s, allocation %d failing: %d %s\n",
                                uni ? "uni" : "bi", nth, rc, iroh_last_error());
                    CHECK_EQ_INT(rc, IROH_ERR_NO_MEMORY);
                    CHECK_EQ_INT(iroh_connection_set_timeout(c, 2000), IROH_OK);
                    rc = uni ? iroh_connection_open_uni(c, &cs)
                             : iroh_connection_open_bi(c, &cs, &cr);
                    if (rc != IROH_OK)
                        fprintf(stderr, "open_%s after allocation %d failed: %s\n",
                                uni ? "uni" : "bi", nth, iroh_last_error());
                }
                CHECK_EQ_INT(rc, IROH_OK);
            }
            iroh_send_stream_free(cs);
            iroh_recv_stream_free(cr);
            iroh_connection_free(c);
            iroh_connection_free(s.conn);
            iroh_endpoint_free(cli);
            iroh_endpoint_free(s.ep);
        }
    }
}

TEST(flushed_when_the_peer_stops)
{
    /* flushed waits until everything up to the FIN is acknowledged: when the peer stops
     * the stream before it has all of it, flushed fails with IROH_ERR_STREAM_STOPPED (and
     * the peer's code) instead of reporting the data as delivered */
    for (size_t i = 0; i < BIG; i++)
        big[i] = (uint8_t)(i * 7 + (i >> 12));
    server s = {bind_small_server(), NULL, 0}; /* windows of 64 KiB */
    iroh_endpoint *cli = bind_ep(0, NULL);
    iroh_connection *c = pair(&s, cli);
    if (!c || !s.conn)
        return;
    uint8_t buf[10];
    /* more than the peer's window, and the end: the peer reads 10 bytes, then stops */
    iroh_send_stream *us;
    iroh_recv_stream *ur;
    CHECK_EQ_INT(iroh_connection_open_uni(c, &us), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(us, big, 200000), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_finish(us), IROH_OK);
    CHECK_EQ_INT(iroh_connection_accept_uni(s.conn, 5000, &ur), IROH_OK);
    CHECK_EQ_INT(iroh_recv_stream_read_exact(ur, buf, sizeof buf), IROH_OK);
    CHECK_EQ_INT(iroh_recv_stream_stop(ur, 7), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_flushed(us, 5000), IROH_ERR_STREAM_STOPPED);
    CHECK(strstr(iroh_last_error(), "code 7") != NULL);
    /* a stream never finished, stopped after its first bytes: it never got to the FIN */
    iroh_send_stream *bs, *ss;
    iroh_recv_stream *br, *sr;
    CHECK_EQ_INT(iroh_connection_open_bi(c, &bs, &br), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(bs, "hello", 5), IROH_OK);
    CHECK_EQ_INT(iroh_connection_accept_bi(s.conn, 5000, &ss, &sr), IROH_OK);
    CHECK_EQ_INT(iroh_recv_stream_read_exact(sr, buf, 5), IROH_OK);
    CHECK_EQ_INT(iroh_recv_stream_stop(sr, 8), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_flushed(bs, 5000), IROH_ERR_STREAM_STOPPED);
    CHECK(strstr(iroh_last_error(), "code 8") != NULL);
    /* the server's half of that stream, written in full and read to the end: delivered */
    CHECK_EQ_INT(iroh_send_stream_write_all(ss, "answer", 6), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_finish(ss), IROH_OK);
    uint8_t *all = NULL;
    size_t n = 0;
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(br, 100, &all, &n), IROH_OK);
    free(all);
    CHECK_EQ_INT(iroh_send_stream_flushed(ss, 5000), IROH_OK);
    iroh_send_stream_free(us);
    iroh_recv_stream_free(ur);
    iroh_send_stream_free(bs);
    iroh_recv_stream_free(br);
    iroh_send_stream_free(ss);
    iroh_recv_stream_free(sr);
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(s.ep);
}

/* ---- a dead peer ---------------------------------------------------------------------- */

/* A UDP relay between one client and a server that can be cut: then nothing passes. */
typedef struct relay {
    int fd;
    iroh_socket_addr addr;       /* the server's address as the client is told it */
    struct sockaddr_in srv, cli; /* the real server; the client, once it sent */
    int have_cli;
    atomic_int cut, stop; /* set by the test thread, read by the relay's */
    pthread_t th;
} relay;

static void *relay_main(void *arg)
{
    relay *r = arg;
    uint8_t buf[2048];
    while (!atomic_load(&r->stop)) {
        struct pollfd pf = {.fd = r->fd, .events = POLLIN};
        if (poll(&pf, 1, 50) != 1)
            continue;
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(r->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
        if (n <= 0 || atomic_load(&r->cut))
            continue;
        int from_srv = from.sin_port == r->srv.sin_port && from.sin_addr.s_addr == r->srv.sin_addr.s_addr;
        if (!from_srv) {
            r->cli = from;
            r->have_cli = 1;
        }
        const struct sockaddr_in *to = from_srv ? &r->cli : &r->srv;
        if (from_srv && !r->have_cli)
            continue;
        ssize_t m = sendto(r->fd, buf, (size_t)n, 0, (const struct sockaddr *)to, sizeof *to);
        (void)m;
    }
    return NULL;
}

static void relay_start(relay *r, const iroh_socket_addr *to)
{
    memset(r, 0, sizeof *r);
    one_way w; /* the same socket setup */
    one_way_socket(&w, to);
    r->fd = w.fd;
    r->addr = w.addr;
    r->srv = w.srv;
    pthread_create(&r->th, NULL, relay_main, r);
}

static void relay_stop(relay *r)
{
    atomic_store(&r->stop, 1);
    pthread_join(r->th, NULL);
    close(r->fd);
}

TEST(dead_peer_idle_timeout_reason)
{
    /* idle timeout 2 s (keep-alives every 200 ms meanwhile); the path is cut: a blocked
     * read and the close reason say what happened. The forwarder is the only way between
     * the two, so holepunching is off: with it the server's advertised address would give
     * the client a direct path that the cut does not reach. */
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    iroh_endpoint_builder_holepunching(b, 0);
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    iroh_endpoint_builder_alpn(b, ALPN);
    iroh_endpoint_builder_idle_timeout_ms(b, 2000);
    iroh_endpoint_builder_keep_alive_ms(b, 200);
    iroh_endpoint *srv;
    CHECK_EQ_INT(iroh_endpoint_bind(b, &srv), IROH_OK);
    iroh_endpoint_builder_free(b);
    b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    iroh_endpoint_builder_holepunching(b, 0);
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    iroh_endpoint_builder_idle_timeout_ms(b, 3000);
    iroh_endpoint_builder_keep_alive_ms(b, 200);
    iroh_endpoint *cli;
    CHECK_EQ_INT(iroh_endpoint_bind(b, &cli), IROH_OK);
    iroh_endpoint_builder_free(b);
    iroh_endpoint_id srv_id;
    iroh_endpoint_get_id(srv, &srv_id);
    iroh_socket_addr srv_ip = first_ip(srv);
    relay r;
    relay_start(&r, &srv_ip);
    iroh_endpoint_addr *via = iroh_endpoint_addr_new(&srv_id);
    iroh_endpoint_addr_add_ip(via, &r.addr);
    server s = {srv, NULL, 0};
    pthread_create(&s.th, NULL, accept_one, &s);
    iroh_connection *c = NULL;
    CHECK_EQ_INT(iroh_endpoint_connect(cli, via, ALPN, &c), IROH_OK);
    pthread_join(s.th, NULL);
    if (c && s.conn) {
        iroh_send_stream *cs;
        iroh_recv_stream *cr;
        CHECK_EQ_INT(iroh_connection_open_bi(c, &cs, &cr), IROH_OK);
        usleep(2500000); /* longer than the idle timeout: keep-alives hold it open */
        CHECK_EQ_INT(iroh_connection_closed(c, 0), IROH_ERR_TIMEOUT);
        call k;
        memset(&k, 0, sizeof k);
        k.recv = cr;
        call_start(&k, f_read, "read from a peer that vanishes");
        CHECK(call_blocked(&k));
        atomic_store(&r.cut, 1);
        const char *want = "timed out: no packets from the peer for 2 s";
        CHECK(call_wait(&k, 8000));
        if (call_finish(&k, IROH_ERR_CONNECTION_CLOSED, want)) {
            iroh_close_reason why;
            iroh_connection_close_reason(c, &why);
            CHECK_EQ_INT(why.kind, IROH_CLOSE_TIMED_OUT);
            CHECK_STR(why.reason, want);
            /* closing the endpoint later does not rewrite how it ended */
            iroh_endpoint_close(cli);
            uint8_t buf[8];
            size_t n;
            CHECK_EQ_INT(iroh_recv_stream_read(cr, buf, sizeof buf, &n),
                         IROH_ERR_CONNECTION_CLOSED);
            CHECK_STR(iroh_last_error(), want);
            iroh_send_stream_free(cs);
            iroh_recv_stream_free(cr);
        }
    }
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    relay_stop(&r);
    iroh_endpoint_addr_free(via);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(srv);
}

int main(void)
{
    t_init();
    RUN(transport_limits_and_events);
    RUN(all_direct_addresses_at_once);
    RUN(retry_both_ends);
    RUN(router_with_several_alpns);
    RUN(router_builder_free_without_spawn);
    RUN(connect_errors);
    RUN(stream_states);
    RUN(accept_filter);
    RUN(close_endpoint_with_open_connections);
    RUN(close_wakes_blocked_calls);
    RUN(free_wakes_blocked_calls);
    RUN(endpoint_close_wakes_endpoint_calls);
    RUN(waiters_wake_only_for_their_own);
    RUN(io_syscalls_without_the_lock);
    RUN(freed_connection_hands_out_nothing);
    RUN(freed_send_stream_hears_nothing);
    RUN(stream_outlives_its_connection_handle);
    RUN(time_limits_below_minus_one);
    RUN(online_after_close);
    RUN(close_reason_survives_the_endpoint_close);
    RUN(reads_after_stop_fail);
    RUN(free_during_a_write_resets);
    RUN(per_handle_timeouts);
    RUN(router_shutdown_with_a_blocked_handler);
    RUN(router_handler_cap);
    RUN(stalled_handshake_does_not_block_accept);
    RUN(refuse_and_ignore);
    RUN(accept_backlog);
    RUN(accept_stream_out_of_memory);
    RUN(write_out_of_memory);
    RUN(datagram_out_of_memory);
    RUN(open_stream_out_of_memory);
    RUN(flushed_when_the_peer_stops);
    RUN(dead_peer_idle_timeout_reason);
    TEST_EXIT();
}
