/* Lifetimes of endpoints and routers when several threads close and free them at once.
 *
 * Some interleavings are hard to reach by timing alone, so this test wraps pthread_join,
 * pthread_cond_wait, pthread_create and poll at link time: a wrapper does nothing unless
 * the calling thread armed it (or, for poll, the endpoint's I/O thread the test tagged
 * when it was created), and an armed one stops the thread at a chosen point (a thread the
 * scheduler leaves waiting there is allowed by POSIX). */
/* link-wrap: pthread_join pthread_cond_wait pthread_create poll */
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "iroh.h"
#include "test.h"

int __real_pthread_join(pthread_t th, void **ret);
int __wrap_pthread_join(pthread_t th, void **ret);
int __real_pthread_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu);
int __wrap_pthread_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu);
int __real_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg);
int __wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg);
int __real_poll(struct pollfd *pf, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *pf, nfds_t n, int timeout);

static const char ALPN[] = "test/lifetimes/0";

/* ---- a small rendezvous for the test's own threads ------------------------------------ */

static pthread_mutex_t t_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t t_cv;

static void t_init(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t_cv, &ca);
    pthread_condattr_destroy(&ca);
}

static void t_set(int *flag)
{
    pthread_mutex_lock(&t_mu);
    *flag = 1;
    pthread_cond_broadcast(&t_cv);
    pthread_mutex_unlock(&t_mu);
}

/* waits up to ms for *flag; returns it */
static int t_wait(int *flag, int ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&t_mu);
    while (!*flag && pthread_cond_timedwait(&t_cv, &t_mu, &dl) == 0) {
    }
    int v = *flag;
    pthread_mutex_unlock(&t_mu);
    return v;
}

static iroh_endpoint *bind_local(int accept)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    CHECK_EQ_INT(iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0"), IROH_OK);
    if (accept)
        CHECK_EQ_INT(iroh_endpoint_builder_alpn(b, ALPN), IROH_OK);
    iroh_endpoint *ep = NULL;
    CHECK_EQ_INT(iroh_endpoint_bind(b, &ep), IROH_OK);
    iroh_endpoint_builder_free(b);
    return ep;
}

/* ---- the wrappers --------------------------------------------------------------------- */

/* armed on the thread that frees the endpoint: when iroh_endpoint_close joins the I/O
 * thread, first let the second closer in (it waits for the close to finish) */
static _Thread_local int arm_join;
static void (*at_join)(void);

int __wrap_pthread_join(pthread_t th, void **ret)
{
    if (arm_join) {
        arm_join = 0;
        at_join();
    }
    return __real_pthread_join(th, ret);
}

/* armed on the second closer: its wait for the first close ends (it has been woken and
 * holds the lock again), but it is slow to take the lock back: it lets go of the lock and
 * takes it again only after free_returned is set or a second has passed */
static _Thread_local int arm_wait;
static int second_waiting, free_returned, free_returned_early;

/* set on a thread whose waits the test follows: the wrapper sets *waiting before each
 * wait, so the test knows the thread is blocked inside the library */
static _Thread_local int *waiting;

int __wrap_pthread_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu)
{
    if (waiting && cv != &t_cv)
        t_set(waiting);
    if (!arm_wait)
        return __real_pthread_cond_wait(cv, mu);
    arm_wait = 0;
    t_set(&second_waiting);
    int rc = __real_pthread_cond_wait(cv, mu);
    pthread_mutex_unlock(mu);
    if (t_wait(&free_returned, 1000)) {
        /* the endpoint is gone: going on would use freed memory */
        free_returned_early = 1;
        pthread_exit(NULL);
    }
    pthread_mutex_lock(mu);
    return rc;
}

/* armed on the thread that binds an endpoint: the next thread it creates (the endpoint's
 * I/O thread) is tagged */
static _Thread_local int arm_create;
static _Thread_local int tagged_io;

typedef struct start_info {
    void *(*fn)(void *);
    void *arg;
} start_info;
static start_info tagged_start_info;

static void *tagged_start(void *arg)
{
    start_info *si = arg;
    tagged_io = 1;
    return si->fn(si->arg);
}

int __wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg)
{
    if (!arm_create)
        return __real_pthread_create(th, attr, fn, arg);
    arm_create = 0;
    tagged_start_info.fn = fn;
    tagged_start_info.arg = arg;
    return __real_pthread_create(th, attr, tagged_start, &tagged_start_info);
}

/* armed by the test: the tagged I/O thread, once a poll returns with a datagram waiting
 * on one of its UDP sockets, stops there (outside the endpoint's lock, before it reads
 * the datagram) until io_release is set */
static int hold_io_on_datagram, io_held, io_release;

int __wrap_poll(struct pollfd *pf, nfds_t n, int timeout)
{
    int rc = __real_poll(pf, n, timeout);
    if (!tagged_io || rc <= 0)
        return rc;
    int datagram = 0;
    for (nfds_t i = 0; i < n; i++) {
        int type = 0;
        socklen_t len = sizeof type;
        if ((pf[i].revents & POLLIN) &&
            getsockopt(pf[i].fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_DGRAM)
            datagram = 1;
    }
    pthread_mutex_lock(&t_mu);
    int hold = datagram && hold_io_on_datagram;
    hold_io_on_datagram &= !hold;
    pthread_mutex_unlock(&t_mu);
    if (hold) {
        t_set(&io_held);
        t_wait(&io_release, 10000);
    }
    return rc;
}

/* ---- iroh_endpoint_free while another thread is in iroh_endpoint_close ---------------- */

static iroh_endpoint *closing_ep;
static pthread_t second_closer;

static void *close_again(void *arg)
{
    (void)arg;
    arm_wait = 1;
    iroh_endpoint_close(closing_ep); /* the second caller: returns once the first is done */
    return NULL;
}

static void start_second_closer(void)
{
    pthread_create(&second_closer, NULL, close_again, NULL);
    CHECK(t_wait(&second_waiting, 10000));
}

TEST(free_waits_for_a_concurrent_close)
{
    /* the documentation: iroh_endpoint_close is safe from any thread, and a second caller
     * returns once the first has finished; iroh_endpoint_free waits until the threads in
     * calls of the endpoint have returned. So a thread may close the endpoint (a signal
     * handler's, say) while another frees it: the free must not return while the closer
     * is still inside the library */
    closing_ep = bind_local(0);
    at_join = start_second_closer;
    arm_join = 1;
    iroh_endpoint_free(closing_ep); /* its close is the first */
    t_set(&free_returned);
    pthread_join(second_closer, NULL);
    CHECK(!free_returned_early);
}

/* ---- router shutdown from several threads, and from a handler -------------------------- */

static int handler_entered, gate_open, some_shutdown_returned;
static iroh_router *gate_router;
static int gate_rc = 1;

/* a handler held by the test, not by its connection: shutdown has to wait for it. Once
 * let through it shuts the router down too, while the others' shutdown waits for it */
static int wait_at_gate(void *ctx, iroh_connection *conn)
{
    (void)ctx;
    (void)conn;
    t_set(&handler_entered);
    t_wait(&gate_open, 10000);
    gate_rc = iroh_router_shutdown(gate_router);
    return 0;
}

typedef struct shutter {
    iroh_router *r;
    pthread_t th;
    int rc, done;
    int waiting; /* it waits inside iroh_router_shutdown */
} shutter;

static void *shut(void *arg)
{
    shutter *s = arg;
    waiting = &s->waiting;
    s->rc = iroh_router_shutdown(s->r);
    waiting = NULL;
    t_set(&s->done);
    t_set(&some_shutdown_returned);
    return NULL;
}

/* a router on a new endpoint with one handler */
static iroh_router *router_with(iroh_protocol_handler fn)
{
    iroh_endpoint *ep = bind_local(1);
    iroh_router_builder *rb = iroh_router_builder_new(ep);
    CHECK_EQ_INT(iroh_router_builder_accept(rb, ALPN, fn, NULL), IROH_OK);
    iroh_router *r = NULL;
    CHECK_EQ_INT(iroh_router_spawn(rb, &r), IROH_OK);
    return r;
}

/* a client on a new endpoint connected to the router's */
static void connect_to(iroh_router *r, iroh_endpoint **cli, iroh_connection **c)
{
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(iroh_router_endpoint(r), &addr);
    *cli = bind_local(0);
    *c = NULL;
    CHECK_EQ_INT(iroh_endpoint_connect(*cli, addr, ALPN, c), IROH_OK);
    iroh_endpoint_addr_free(addr);
}

TEST(second_shutdown_waits_for_the_first)
{
    /* iroh_router_shutdown returns once the handlers have returned and the endpoint is
     * closed, also for a second caller (iroh_router_free is one: it frees the endpoint
     * and the router after it); a handler calling it meanwhile returns at once */
    iroh_router *r = router_with(wait_at_gate);
    gate_router = r;
    iroh_endpoint *cli;
    iroh_connection *c;
    connect_to(r, &cli, &c);
    CHECK(t_wait(&handler_entered, 10000));
    shutter a = {r, 0, 0, 0, 0}, b = {r, 0, 0, 0, 0};
    pthread_create(&a.th, NULL, shut, &a);
    pthread_create(&b.th, NULL, shut, &b);
    /* both wait inside the library, one for the handler, the other for the first; the
     * handler is held: neither shutdown may return */
    CHECK(t_wait(&a.waiting, 10000) && t_wait(&b.waiting, 10000));
    CHECK(!t_wait(&some_shutdown_returned, 0));
    t_set(&gate_open);
    CHECK(t_wait(&a.done, 10000) && t_wait(&b.done, 10000));
    pthread_join(a.th, NULL);
    pthread_join(b.th, NULL);
    CHECK_EQ_INT(a.rc, IROH_OK);
    CHECK_EQ_INT(b.rc, IROH_OK);
    CHECK_EQ_INT(gate_rc, IROH_OK);
    iroh_router_free(r);
    iroh_connection_free(c);
    iroh_endpoint_free(cli);
}

static iroh_router *self_router;
static int self_rc = 1, self_returned;

/* a handler that stops the server (a "quit" request, say) */
static int shut_from_handler(void *ctx, iroh_connection *conn)
{
    (void)ctx;
    (void)conn;
    self_rc = iroh_router_shutdown(self_router);
    t_set(&self_returned);
    return 0;
}

TEST(handler_shuts_the_router_down)
{
    /* a handler may shut its router down: the shutdown cannot wait for the handler that
     * called it (that would wait forever); iroh_router_free, called later from another
     * thread, joins it */
    iroh_router *r = router_with(shut_from_handler);
    self_router = r;
    iroh_endpoint *cli;
    iroh_connection *c;
    connect_to(r, &cli, &c);
    int returned = t_wait(&self_returned, 10000);
    CHECK(returned);
    if (!returned)
        return; /* that handler thread is stuck with the router: leave it all */
    CHECK_EQ_INT(self_rc, IROH_OK);
    iroh_incoming *inc;
    CHECK_EQ_INT(iroh_endpoint_accept(iroh_router_endpoint(r), 0, &inc), IROH_ERR_CLOSED);
    if (c) {
        /* the peer sees the endpoint's close */
        CHECK_EQ_INT(iroh_connection_closed(c, 5000), IROH_OK);
        iroh_close_reason why;
        iroh_connection_close_reason(c, &why);
        CHECK(why.by_peer && why.kind == IROH_CLOSE_APPLICATION && why.code == 0);
    }
    iroh_router_free(r);
    iroh_connection_free(c);
    iroh_endpoint_free(cli);
}

/* ---- a connection that begins while the endpoint closes --------------------------------- */

typedef struct dialer {
    iroh_endpoint *ep;
    iroh_endpoint_addr *addr;
    iroh_connection *conn;
    int rc, done;
    char err[256];
    pthread_t th;
} dialer;

static void *dial(void *arg)
{
    dialer *d = arg;
    d->rc = iroh_endpoint_connect(d->ep, d->addr, ALPN, &d->conn);
    snprintf(d->err, sizeof d->err, "%s", iroh_last_error());
    t_set(&d->done);
    return NULL;
}

static void release_io(void)
{
    t_set(&io_release);
}

TEST(close_reaches_a_connection_begun_in_the_last_round)
{
    /* iroh_endpoint_close closes every connection, then the I/O thread ends its round: a
     * connection that a datagram read in that round begins must be closed too (its peer
     * gets a CONNECTION_CLOSE), not left to the peer's timeout */
    arm_create = 1;
    iroh_endpoint *srv = bind_local(1);
    arm_create = 0;
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    iroh_endpoint_builder_connect_timeout_ms(b, 5000);
    dialer d;
    memset(&d, 0, sizeof d);
    CHECK_EQ_INT(iroh_endpoint_bind(b, &d.ep), IROH_OK);
    iroh_endpoint_builder_free(b);
    iroh_endpoint_get_addr(srv, &d.addr);
    t_set(&hold_io_on_datagram);
    pthread_create(&d.th, NULL, dial, &d);
    /* the server's I/O thread has the client's first flight to read and stops before it
     * does; the endpoint closes meanwhile, and lets it go on when it joins the thread */
    CHECK(t_wait(&io_held, 10000));
    at_join = release_io;
    arm_join = 1;
    iroh_endpoint_close(srv);
    CHECK(t_wait(&d.done, 10000));
    pthread_join(d.th, NULL);
    if (d.rc == IROH_OK) {
        /* the client finished its half of the handshake first: the close follows */
        CHECK_EQ_INT(iroh_connection_closed(d.conn, 5000), IROH_OK);
        iroh_close_reason why;
        iroh_connection_close_reason(d.conn, &why);
        CHECK(why.by_peer);
    } else {
        /* refused during its handshake, by the peer (not a timeout) */
        CHECK(d.rc == IROH_ERR_HANDSHAKE || d.rc == IROH_ERR_CONNECTION_CLOSED);
        if (!strstr(d.err, "by the peer")) {
            CHECK(strstr(d.err, "by the peer") != NULL);
            fprintf(stderr, "connect: %d %s\n", d.rc, d.err);
        }
    }
    iroh_connection_free(d.conn);
    iroh_endpoint_addr_free(d.addr);
    iroh_endpoint_free(d.ep);
    iroh_endpoint_free(srv);
}

int main(void)
{
    t_init();
    RUN(free_waits_for_a_concurrent_close);
    RUN(second_shutdown_waits_for_the_first);
    RUN(handler_shuts_the_router_down);
    RUN(close_reaches_a_connection_begun_in_the_last_round);
    TEST_EXIT();
}
