#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int threshold = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void read_env(void)
{
    static const char *const names[] = {"off", "error", "warn", "info", "debug", "trace"};
    const char *v = getenv("IROH_LOG");
    threshold = IR_LOG_WARN;
    if (!v || !*v)
        return;
    for (int i = 0; i < 6; i++) {
        if (strcasecmp(v, names[i]) == 0) {
            threshold = i;
            return;
        }
    }
    /* said once (this runs once per process), on one line: the value is cut short and
     * anything unprintable in it shown as '?' */
    char shown[65];
    size_t n = 0;
    for (; v[n] && n < sizeof shown - 1; n++)
        shown[n] = (v[n] >= 0x20 && v[n] < 0x7f) ? v[n] : '?';
    shown[n] = 0;
    fprintf(stderr, "iroh: IROH_LOG=%s%s is not a log level (error, warn, info, debug, trace "
                    "or off); using warn\n", shown, v[n] ? "..." : "");
}

/* multipath and n0 NAT traversal, as iroh offers them */
static int holepunching = 2;
static pthread_once_t hp_once = PTHREAD_ONCE_INIT;

static void read_hp_env(void)
{
    const char *v = getenv("IROH_C_HOLEPUNCHING");
    if (!v || !*v)
        return;
    if ((v[0] == '0' || v[0] == '1' || v[0] == '2') && !v[1]) {
        holepunching = v[0] - '0';
        return;
    }
    char shown[65];
    size_t n = 0;
    for (; v[n] && n < sizeof shown - 1; n++)
        shown[n] = (v[n] >= 0x20 && v[n] < 0x7f) ? v[n] : '?';
    shown[n] = 0;
    fprintf(stderr, "iroh: IROH_C_HOLEPUNCHING=%s%s is not 0, 1 or 2; using 2\n", shown,
            v[n] ? "..." : "");
}

int ir_env_holepunching(void)
{
    pthread_once(&hp_once, read_hp_env);
    return holepunching;
}

int ir_log_enabled(ir_log_level level)
{
    pthread_once(&once, read_env);
    return (int)level <= threshold;
}

void ir_log(ir_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = {"", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%06ld %-5s iroh: ", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000, tags[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* one write per line keeps lines whole across threads */
    fprintf(stderr, "%s\n", line);
}
