/* The live progress line (progress.h): a thread redraws one line on stderr every
 * PROGRESS_INTERVAL_MS while a transfer runs, from counters the command's threads add
 * to. The rate each way is the bytes of the last second (four redraws back) over the
 * time they took. The line starts with a carriage return and ends by erasing the rest
 * of the terminal line, and is cut to the terminal's width, so that each redraw
 * replaces the last one; at the end it is erased. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "apps/progress.h"

#define RATE_SAMPLES 5 /* now and four redraws back: one second */

struct progress {
    _Atomic uint64_t sent, received;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    int drawn; /* a line is on the terminal */
    iroh_connection *conn;
    pthread_t th;
    /* the thread's samples for the rates */
    struct { double t; uint64_t sent, received; } samples[RATE_SAMPLES];
    int n_samples;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "1.23 MiB" */
static void human(char *out, size_t len, double v)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, len, "%.0f B", v);
    else
        snprintf(out, len, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
}

void progress_format(char *out, size_t len, uint64_t sent, uint64_t received, double up_rate,
                     double down_rate, const char *path, int width)
{
    char s[32], r[32], us[32], ds[32];
    human(s, sizeof s, (double)sent);
    human(r, sizeof r, (double)received);
    human(us, sizeof us, up_rate);
    human(ds, sizeof ds, down_rate);
    snprintf(out, len, "iroh-c: sent %s (%s/s), received %s (%s/s)%s%s", s, us, r, ds,
             path && *path ? ", " : "", path && *path ? path : "");
    if (width > 1 && strlen(out) > (size_t)width - 1)
        out[width - 1] = '\0';
}

static int term_width(void)
{
    struct winsize ws;
    if (ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

static void write_err(const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(2, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* called with p->mu held */
static void draw(progress *p)
{
    double t = now_s();
    uint64_t sent = atomic_load(&p->sent), received = atomic_load(&p->received);
    if (p->n_samples == RATE_SAMPLES) {
        memmove(&p->samples[0], &p->samples[1], (RATE_SAMPLES - 1) * sizeof p->samples[0]);
        p->n_samples--;
    }
    p->samples[p->n_samples].t = t;
    p->samples[p->n_samples].sent = sent;
    p->samples[p->n_samples].received = received;
    p->n_samples++;
    double up = 0, down = 0, dt = t - p->samples[0].t;
    if (p->n_samples > 1 && dt > 0) {
        up = (double)(sent - p->samples[0].sent) / dt;
        down = (double)(received - p->samples[0].received) / dt;
    }
    char path[600] = "";
    if (p->conn) {
        iroh_socket_addr a;
        char url[512];
        int kind = iroh_connection_path(p->conn, &a, url, sizeof url);
        if (kind == 1) {
            snprintf(path, sizeof path, "relay %s", url);
        } else if (kind == 0) {
            char text[IROH_SOCKET_ADDR_LEN];
            iroh_socket_addr_to_string(&a, text, sizeof text);
            snprintf(path, sizeof path, "direct %s", text);
        }
    }
    char line[1024];
    line[0] = '\r';
    progress_format(line + 1, sizeof line - 4, sent, received, up, down, path, term_width());
    strcat(line, "\033[K");
    write_err(line, strlen(line));
    p->drawn = 1;
}

static void *run(void *arg)
{
    progress *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        draw(p);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)PROGRESS_INTERVAL_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &until) != ETIMEDOUT) {
        }
    }
    if (p->drawn)
        write_err("\r\033[K", 4);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

progress *progress_start(int quiet)
{
    if (quiet || !isatty(2))
        return NULL;
    progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->th, NULL, run, p) != 0) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return NULL;
    }
    return p;
}

void progress_set_conn(progress *p, iroh_connection *conn)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->conn = conn;
    pthread_mutex_unlock(&p->mu);
}

void progress_sent(progress *p, uint64_t n)
{
    if (p)
        atomic_fetch_add(&p->sent, n);
}

void progress_received(progress *p, uint64_t n)
{
    if (p)
        atomic_fetch_add(&p->received, n);
}

void progress_stop(progress *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
