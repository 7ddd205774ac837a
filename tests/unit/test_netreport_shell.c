/* The net report's shell (endpoint/netreport_shell.h) with a system resolver that never
 * answers (getaddrinfo wrapped at link time: it blocks until the test ends): while the
 * probe jobs wait, the I/O loop sleeps until the core's next timer (no 10 ms polling), the
 * name lookups give up at their probe's deadline, and a job that ends wakes the loop
 * through the shell's descriptor. */
/* link-wrap: getaddrinfo */
#include <netdb.h>
#include <stdio.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "endpoint/ep.h"
#include "endpoint/netreport_shell.h"
#include "test.h"

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

static pthread_mutex_t gai_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gai_cv = PTHREAD_COND_INITIALIZER;
static int gai_released, gai_blocked, gai_calls;

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    if (!node || strcmp(node, "silent.invalid") != 0)
        return __real_getaddrinfo(node, service, hints, res);
    pthread_mutex_lock(&gai_mu);
    gai_calls++;
    gai_blocked++;
    while (!gai_released)
        pthread_cond_wait(&gai_cv, &gai_mu);
    gai_blocked--;
    pthread_cond_broadcast(&gai_cv);
    pthread_mutex_unlock(&gai_mu);
    *res = NULL;
    return EAI_AGAIN;
}

TEST(silent_resolver_no_polling)
{
    static const char *const urls[] = {"http://silent.invalid:3340/"};
    ir_nrs *s = ir_nrs_new(NULL, urls, 1, NULL, 1, 0, 1);
    CHECK(s != NULL);
    if (!s)
        return;
    /* the I/O loop as ir_ep_prepare / ir_ep_process run it for the shell */
    uint64_t t0 = ir_now_ns();
    int rounds = 0, woken = 0;
    uint64_t first_wake = 0;
    for (;;) {
        uint64_t now = ir_now_ns();
        if (now - t0 >= 3600 * 1000000ull)
            break;
        ir_nrs_tick(s, now);
        uint64_t t = ir_nrs_timeout(s, now);
        uint64_t end = t0 + 3600 * 1000000ull;
        if (t > end)
            t = end;
        int ms = t <= now ? 0 : (int)((t - now + 999999) / 1000000);
        struct pollfd pf;
        CHECK_EQ_INT(ir_nrs_pollfd(s, &pf), 1);
        int r = poll(&pf, 1, ms);
        if (r > 0 && (pf.revents & POLLIN)) {
            ir_nrs_woken(s);
            if (!woken++)
                first_wake = ir_now_ns() - t0;
        }
        rounds++;
    }
    pthread_mutex_lock(&gai_mu);
    int calls = gai_calls, blocked = gai_blocked;
    pthread_mutex_unlock(&gai_mu);
    fprintf(stderr, "  %d rounds in 3.6 s, %d woken (first after %.0f ms), %d lookups, %d "
                    "still blocked\n",
            rounds, woken, (double)first_wake / 1e6, calls, blocked);
    /* the HTTPS attempts (200/300/400 ms) and the captive check (200 ms) were looked up */
    CHECK(calls >= 2);
    /* the core's timers only (probe starts, deadlines): 10 ms polling were ~360 rounds */
    CHECK(rounds < 60);
    /* the lookups still block, yet the jobs gave up at their deadline (the captive check
     * 2 s, the HTTPS probes 3 s) and woke the loop */
    CHECK(blocked >= 2);
    CHECK(woken >= 1);
    CHECK(first_wake > 0 && first_wake < 3500 * 1000000ull);
    ir_nrs_free(s, ir_now_ns());
    /* let the blocked lookups end, and their threads with them */
    pthread_mutex_lock(&gai_mu);
    gai_released = 1;
    pthread_cond_broadcast(&gai_cv);
    while (gai_blocked)
        pthread_cond_wait(&gai_cv, &gai_mu);
    pthread_mutex_unlock(&gai_mu);
    usleep(200 * 1000);
}

int main(void)
{
    RUN(silent_resolver_no_polling);
    TEST_EXIT();
}
