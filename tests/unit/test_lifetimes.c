/* Lifetimes of endpoints and routers when several threads close and free them at once.
 *
 * Some interleavings are hard to reach by timing alone, so this test wraps pthread_join
 * and pthread_cond_wait at link time: a wrapper does nothing unless the calling thread
 * armed it, and an armed one stops the thread at a chosen point (a thread the scheduler
 * leaves waiting there is allowed by POSIX). */
/* link-wrap: pthread_join pthread_cond_wait */
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "iroh.h"
#include "test.h"

int __real_pthread_join(pthread_t th, void **ret);
int __wrap_pthread_join(pthread_t th, void **ret);
int __real_pthread_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu);
int __wrap_pthread_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu);

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

int __wrap_pthread_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu)
{
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
    CHECK(t_wait(&second_waiting, 5000));
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

int main(void)
{
    t_init();
    RUN(free_waits_for_a_concurrent_close);
    TEST_EXIT();
}
