/* SIGINT and SIGTERM for listen and connect, built on the library's cancellation: the
 * signals are blocked in every thread and one watcher thread takes them (signalfd). The
 * first closes the watched connections with application code 0 and the reason
 * "interrupted" (the peer sees an application close, not a timeout), makes the stop pipe
 * readable (for threads that poll stdin), and closes the watched endpoint, which wakes
 * every call blocked on it. The command then unwinds normally and exits with 128 + the
 * signal number. A second signal exits at once. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "apps/cmds.h"

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started;
    int signo;               /* the first signal taken, 0 before */
    int sfd;                 /* signalfd of SIGINT and SIGTERM */
    int quit[2];             /* ends the watcher when the command is done */
    int wake[2];             /* readable once a signal came */
    pthread_t th;
    iroh_endpoint *ep;       /* closed on a signal */
    iroh_connection **conns; /* closed on a signal, before the endpoint */
    size_t nconns, cap;
} st = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .sfd = -1,
      .quit = {-1, -1}, .wake = {-1, -1}};

static void on_signal(int signo)
{
    pthread_mutex_lock(&st.mu);
    st.signo = signo;
    for (size_t i = 0; i < st.nconns; i++)
        iroh_connection_close(st.conns[i], 0, "interrupted");
    ssize_t w = write(st.wake[1], "", 1);
    (void)w;
    pthread_cond_broadcast(&st.cv);
    if (st.ep)
        iroh_endpoint_close(st.ep); /* sends the closes above before it returns */
    pthread_mutex_unlock(&st.mu);
}

static void *watcher(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p[2] = {{st.sfd, POLLIN, 0}, {st.quit[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (p[1].revents)
            return NULL;
        struct signalfd_siginfo si;
        if (read(st.sfd, &si, sizeof si) != (ssize_t)sizeof si)
            continue;
        int signo = (int)si.ssi_signo;
        pthread_mutex_lock(&st.mu);
        int again = st.signo != 0;
        pthread_mutex_unlock(&st.mu);
        if (again)
            _exit(128 + signo); /* a second Ctrl-C: at once */
        on_signal(signo);
    }
}

int cli_stop_start(void)
{
    /* a closed reader ends a write with EPIPE, which the pipe handles, not with death */
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    /* before any thread exists, so every thread (the library's too) inherits the mask */
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    st.sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (st.sfd < 0 || pipe2(st.quit, O_CLOEXEC) != 0 || pipe2(st.wake, O_CLOEXEC) != 0 ||
        pthread_create(&st.th, NULL, watcher, NULL) != 0)
        return -1;
    st.started = 1;
    return 0;
}

void cli_stop_end(void)
{
    if (st.started) {
        ssize_t w = write(st.quit[1], "", 1);
        (void)w;
        pthread_join(st.th, NULL);
        st.started = 0;
    }
    free(st.conns);
    st.conns = NULL;
    st.nconns = st.cap = 0;
}

int cli_stop_signal(void)
{
    pthread_mutex_lock(&st.mu);
    int s = st.signo;
    pthread_mutex_unlock(&st.mu);
    return s;
}

int cli_stop_fd(void)
{
    return st.wake[0];
}

int cli_stop_status(int status)
{
    int s = cli_stop_signal();
    return s ? 128 + s : status;
}

int cli_stop_wait(void)
{
    pthread_mutex_lock(&st.mu);
    while (!st.signo)
        pthread_cond_wait(&st.cv, &st.mu);
    int s = st.signo;
    pthread_mutex_unlock(&st.mu);
    return s;
}

int cli_stop_watch_endpoint(iroh_endpoint *ep)
{
    pthread_mutex_lock(&st.mu);
    st.ep = ep;
    int s = st.signo;
    pthread_mutex_unlock(&st.mu);
    if (s)
        iroh_endpoint_close(ep);
    return s ? -1 : 0;
}

void cli_stop_forget_endpoint(void)
{
    pthread_mutex_lock(&st.mu); /* waits while the watcher closes it */
    st.ep = NULL;
    pthread_mutex_unlock(&st.mu);
}

int cli_stop_watch_conn(iroh_connection *c)
{
    pthread_mutex_lock(&st.mu);
    int s = st.signo;
    if (!s && st.nconns == st.cap) {
        size_t nc = st.cap ? st.cap * 2 : 8;
        iroh_connection **p = realloc(st.conns, nc * sizeof *p);
        if (p) {
            st.conns = p;
            st.cap = nc;
        }
    }
    if (!s && st.nconns < st.cap)
        st.conns[st.nconns++] = c;
    pthread_mutex_unlock(&st.mu);
    if (s)
        iroh_connection_close(c, 0, "interrupted");
    return s ? -1 : 0;
}

void cli_stop_forget_conn(iroh_connection *c)
{
    pthread_mutex_lock(&st.mu);
    for (size_t i = 0; i < st.nconns; i++) {
        if (st.conns[i] == c) {
            st.conns[i] = st.conns[--st.nconns];
            break;
        }
    }
    pthread_mutex_unlock(&st.mu);
}
