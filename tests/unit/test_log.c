/* IROH_LOG: the levels it takes, and an invalid value reported once on stderr. The
 * variable is read once per process, so each case runs in a child process. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "test.h"

/* Runs the log calls a library makes with IROH_LOG=value (NULL: unset) in a child; its
 * stderr goes to err. Returns the levels enabled as a bit mask (bit l: level l). */
static int levels_with(const char *value, char *err, size_t cap)
{
    int pe[2], pm[2];
    if (pipe(pe) != 0 || pipe(pm) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        if (value)
            setenv("IROH_LOG", value, 1);
        else
            unsetenv("IROH_LOG");
        dup2(pe[1], 2);
        int mask = 0;
        for (int round = 0; round < 3; round++) /* asked again and again: reported once */
            for (int l = IR_LOG_ERROR; l <= IR_LOG_TRACE; l++)
                if (ir_log_enabled((ir_log_level)l))
                    mask |= 1 << l;
        ssize_t w = write(pm[1], &mask, sizeof mask);
        _exit(w == sizeof mask ? 0 : 1);
    }
    close(pe[1]);
    close(pm[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(pe[0], err + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    err[n] = 0;
    int mask = -1;
    if (read(pm[0], &mask, sizeof mask) != sizeof mask)
        mask = -1;
    close(pe[0]);
    close(pm[0]);
    int st;
    waitpid(pid, &st, 0);
    return mask;
}

#define UPTO(l) (((1 << ((l) + 1)) - 1) & ~1)

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

TEST(levels)
{
    char err[1024];
    CHECK_EQ_INT(levels_with(NULL, err, sizeof err), UPTO(IR_LOG_WARN)); /* default warn */
    CHECK_STR(err, "");
    CHECK_EQ_INT(levels_with("", err, sizeof err), UPTO(IR_LOG_WARN));
    CHECK_STR(err, "");
    static const struct {
        const char *v;
        int mask;
    } ok[] = {
        {"error", UPTO(IR_LOG_ERROR)}, {"warn", UPTO(IR_LOG_WARN)},
        {"info", UPTO(IR_LOG_INFO)},   {"debug", UPTO(IR_LOG_DEBUG)},
        {"trace", UPTO(IR_LOG_TRACE)}, {"TRACE", UPTO(IR_LOG_TRACE)},
        {"off", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        CHECK_EQ_INT(levels_with(ok[i].v, err, sizeof err), ok[i].mask);
        CHECK_STR(err, "");
    }
}

TEST(invalid_value_reported_once)
{
    char err[1024];
    CHECK_EQ_INT(levels_with("verbose", err, sizeof err), UPTO(IR_LOG_WARN));
    CHECK_EQ_INT(count_lines(err), 1);
    CHECK_STR(err, "iroh: IROH_LOG=verbose is not a log level (error, warn, info, debug, "
                   "trace or off); using warn\n");
    /* what is printed of the value stays one short line */
    char odd[300];
    memset(odd, 'x', sizeof odd - 1);
    odd[sizeof odd - 1] = 0;
    odd[3] = '\n';
    odd[4] = '\033';
    CHECK_EQ_INT(levels_with(odd, err, sizeof err), UPTO(IR_LOG_WARN));
    CHECK_EQ_INT(count_lines(err), 1);
    CHECK(strlen(err) < 200);
    CHECK(strstr(err, "IROH_LOG=xxx??xxx") != NULL);
}

int main(void)
{
    RUN(levels);
    RUN(invalid_value_reported_once);
    TEST_EXIT();
}
