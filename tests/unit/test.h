/* A minimal unit-test harness: each test file is one executable with TEST() functions
 * listed in main() through RUN(). A failed CHECK prints file:line and the expression,
 * the test goes on, and the executable exits non-zero. */
#ifndef IR_TEST_H
#define IR_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failures;
static int t_checks;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        t_checks++;                                                                        \
        if (!(cond)) {                                                                     \
            t_failures++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
        }                                                                                  \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                 \
    do {                                                                                   \
        long long t_a = (long long)(a), t_b = (long long)(b);                              \
        t_checks++;                                                                        \
        if (t_a != t_b) {                                                                  \
            t_failures++;                                                                  \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__,  \
                    #a, #b, t_a, t_b);                                                     \
        }                                                                                  \
    } while (0)

#define CHECK_STR(a, b)                                                                    \
    do {                                                                                   \
        const char *t_a = (a), *t_b = (b);                                                 \
        t_checks++;                                                                        \
        if (!t_a || !t_b || strcmp(t_a, t_b) != 0) {                                       \
            t_failures++;                                                                  \
            fprintf(stderr, "%s:%d: %s == %s failed:\n  got      \"%s\"\n  expected \"%s\"\n", \
                    __FILE__, __LINE__, #a, #b, t_a ? t_a : "(null)", t_b ? t_b : "(null)"); \
        }                                                                                  \
    } while (0)

#define CHECK_MEM(a, b, n)                                                                 \
    do {                                                                                   \
        t_checks++;                                                                        \
        if (memcmp((a), (b), (n)) != 0) {                                                  \
            t_failures++;                                                                  \
            fprintf(stderr, "%s:%d: memory %s != %s (%zu bytes)\n", __FILE__, __LINE__,    \
                    #a, #b, (size_t)(n));                                                  \
        }                                                                                  \
    } while (0)

/* TEST_ONLY=name[,name...] in the environment runs only the tests named */
static inline int t_selected(const char *name)
{
    const char *only = getenv("TEST_ONLY");
    if (!only || !*only)
        return 1;
    size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
            return 1;
    return 0;
}

#define TEST(name) static void name(void)
#define RUN(name)                                                                          \
    do {                                                                                   \
        int t_before = t_failures;                                                         \
        if (!t_selected(#name))                                                            \
            break;                                                                         \
        name();                                                                            \
        printf("%s %s\n", t_failures == t_before ? "ok  " : "FAIL", #name);                \
        fflush(stdout);                                                                    \
    } while (0)
#define TEST_EXIT()                                                                        \
    do {                                                                                   \
        printf("%d checks, %d failed\n", t_checks, t_failures);                            \
        return t_failures ? 1 : 0;                                                         \
    } while (0)

/* Decodes hex (whitespace ignored) into out; returns the byte count or -1. */
static inline int t_unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *hex; hex++) {
        int v;
        char c = *hex;
        if (c == ' ' || c == '\n' || c == '\t') continue;
        if (c >= '0' && c <= '9') v = c - '0';
        else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
        else return -1;
        if (hi < 0) { hi = v; continue; }
        if (n >= cap) return -1;
        out[n++] = (unsigned char)(hi << 4 | v);
        hi = -1;
    }
    return hi < 0 ? (int)n : -1;
}

#endif
