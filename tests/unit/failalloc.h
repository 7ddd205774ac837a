/* Allocation failures on demand, for tests of out-of-memory paths.
 *
 * A test that includes this header (exactly one file per executable) puts the line
 *   / * link-wrap: malloc calloc realloc * /   (without the inner spaces)
 * in its source, so that tests/CMakeLists.txt links it with -Wl,--wrap=malloc etc.: every malloc/calloc/realloc of the library and the test then goes
 * through the wrappers below, which fail the allocations a test asks for and otherwise
 * call the real ones. The library itself is built exactly as always; the production
 * library has no hook. The settings are per thread, so a test can fail an allocation in a
 * call it makes on its own thread while the endpoint's I/O thread allocates normally.
 *
 *   fa_fail_nth(n)     the n-th allocation from now on this thread fails (once)
 *   fa_fail_size(n)    every allocation of exactly n bytes on this thread fails
 *   fa_reset()         no more failures on this thread
 *   fa_failures()      how many allocations the hook failed on this thread */
#ifndef IR_TEST_FAILALLOC_H
#define IR_TEST_FAILALLOC_H

#include <stddef.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static _Thread_local long fa_countdown; /* 0: off; k: the k-th allocation fails */
static _Thread_local size_t fa_size;     /* 0: off */
static _Thread_local long fa_failed;

static inline void fa_fail_nth(long n)
{
    fa_countdown = n;
}

static inline void fa_fail_size(size_t n)
{
    fa_size = n;
}

static inline void fa_reset(void)
{
    fa_countdown = 0;
    fa_size = 0;
}

static inline long fa_failures(void)
{
    return fa_failed;
}

static int fa_fails(size_t n)
{
    int fail = 0;
    if (fa_countdown > 0 && --fa_countdown == 0)
        fail = 1;
    if (fa_size && n == fa_size)
        fail = 1;
    fa_failed += fail;
    return fail;
}

void *__wrap_malloc(size_t n)
{
    return fa_fails(n) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return fa_fails(n * size) ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fa_fails(n) ? NULL : __real_realloc(p, n);
}

#endif
