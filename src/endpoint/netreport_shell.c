/* The net report's shell (netreport_shell.h). */
#include "endpoint/netreport_shell.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "endpoint/ep.h"
#include "endpoint/lookup.h"
#include "endpoint/lookup_jobs.h"
#include "net/netaddr.h"

#define MAX_JOBS (IR_NR_MAX_RELAYS * (1 + IR_NR_HTTPS_ATTEMPTS) + 2)
#define MAX_QAD (IR_NR_MAX_QAD_RELAYS * 2)

enum { JOB_RESOLVE = 1, JOB_HTTPS, JOB_CAPTIVE };

/* A job is shared by its (detached) thread and the shell, each holding a reference: the
 * shell never waits for a thread (getaddrinfo cannot be bounded), and a job outlives the
 * shell if need be, with its own copies of what it reads. */
typedef struct nr_job {
    atomic_int refs;
    atomic_int done;
    atomic_int stop; /* the shell is gone or the probe no longer wanted */
    int wake;        /* the shell's eventfd (a dup: the job may outlive the shell) */
    int kind, relay;
    uint32_t probe;
    uint64_t deadline;
    char url[512];
    char *ca_file;
    /* results */
    int ok;
    uint64_t latency;
    int portal;
    int has4, has6;
    iroh_socket_addr a4, a6;
} nr_job;

struct ir_nrs {
    ir_ep *ep;
    ir_nr nr;
    const char *const *urls;
    char host[IR_NR_MAX_RELAYS][256];
    size_t n;
    const char *ca_file;
    int wake_fd; /* the jobs write it when they finish (the I/O thread polls it) */
    nr_job *jobs[MAX_JOBS];
    uint32_t run; /* the core's run the per-run state below belongs to */
    struct {
        int state; /* 0 not asked, 1 resolving, 2 done */
        int has4, has6;
        iroh_socket_addr a4, a6;
    } res[IR_NR_MAX_RELAYS];
    struct { /* QAD probes: waiting for the name (conn NULL) or running */
        int used;
        uint32_t probe;
        int relay, family;
        ir_conn *conn;
    } qad[MAX_QAD];
};

/* ---- the jobs (own threads) ------------------------------------------------------------ */

static void job_resolve(nr_job *j)
{
    ir_lookup_url u;
    if (ir_lookup_url_split(j->url, &u) != 0)
        return;
    struct addrinfo *res = NULL;
    if (ir_lookup_getaddrinfo(u.host, 0, SOCK_DGRAM, 0, j->deadline, &j->stop, &res) != 0)
        return;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        iroh_socket_addr a;
        memset(&a, 0, sizeof a);
        ir_socket_addr_from_sockaddr(&a, ai->ai_addr);
        if (a.family == 4 && !j->has4) {
            j->a4 = a;
            j->has4 = 1;
        } else if (a.family == 6 && !j->has6) {
            j->a6 = a;
            j->has6 = 1;
        }
    }
    freeaddrinfo(res);
    j->ok = 1;
}

static void job_https(nr_job *j)
{
    char url[600];
    size_t l = strlen(j->url);
    snprintf(url, sizeof url, "%s%sping", j->url, l && j->url[l - 1] == '/' ? "" : "/");
    ir_lookup_http_answer *ans = malloc(sizeof *ans);
    if (!ans)
        return;
    uint64_t t0 = ir_now_ns();
    int rc = ir_lookup_http(url, "GET", NULL, 0, j->ca_file, j->deadline, &j->stop, ans);
    uint64_t t1 = ir_now_ns();
    if (rc == IROH_OK && ans->status >= 200 && ans->status < 300) {
        j->ok = 1;
        j->latency = t1 - t0;
    } else {
        IR_LOG(IR_LOG_DEBUG, "net report: %s: %s", url,
               rc == IROH_OK ? "not a success status" : iroh_last_error());
    }
    free(ans);
}

static void job_captive(nr_job *j)
{
    ir_lookup_url u;
    if (ir_lookup_url_split(j->url, &u) != 0)
        return;
    /* iroh asks http://<host>/generate_204 (port 80); a plain-http relay answers on its
     * own port */
    uint16_t port = u.tls ? 80 : u.port;
    struct addrinfo *res = NULL;
    if (ir_lookup_getaddrinfo(u.host, port, SOCK_STREAM, 0, j->deadline, &j->stop, &res) != 0 ||
        !res)
        return;
    int fd = -1;
    char why[128];
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        if (ir_lookup_tcp_connect(&ss, ai->ai_addrlen, j->deadline, &j->stop, &fd, why,
                                  sizeof why) != IROH_OK)
            fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return;
    char req[800];
    size_t rl = ir_nr_captive_request(u.host, port == 80 ? 0 : port, req, sizeof req);
    size_t off = 0;
    while (rl && off < rl) {
        if (!ir_lookup_wait_fd(fd, POLLOUT, j->deadline, &j->stop))
            goto out;
        ssize_t w = send(fd, req + off, rl - off, MSG_NOSIGNAL);
        if (w <= 0)
            goto out;
        off += (size_t)w;
    }
    uint8_t buf[4200];
    size_t len = 0;
    for (;;) {
        if (!ir_lookup_wait_fd(fd, POLLIN, j->deadline, &j->stop))
            goto out;
        ssize_t r = recv(fd, buf + len, sizeof buf - len, 0);
        if (r < 0)
            goto out;
        len += (size_t)r;
        int v = ir_nr_captive_answer(u.host, buf, len, r == 0 || len == sizeof buf);
        if (v >= 0) {
            j->ok = 1;
            j->portal = v;
            break;
        }
    }
out:
    close(fd);
}

static void job_put(nr_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) == 1) {
        if (j->wake >= 0)
            close(j->wake);
        free(j->ca_file);
        free(j);
    }
}

static void *job_main(void *arg)
{
    nr_job *j = arg;
    if (!atomic_load(&j->stop)) {
        if (j->kind == JOB_RESOLVE)
            job_resolve(j);
        else if (j->kind == JOB_HTTPS)
            job_https(j);
        else
            job_captive(j);
    }
    atomic_store(&j->done, 1);
    uint64_t one = 1; /* the I/O thread reaps it now: no polling while jobs are out */
    ssize_t n = write(j->wake, &one, sizeof one);
    (void)n;
    job_put(j);
    return NULL;
}

static nr_job *job_start(ir_nrs *s, int kind, int relay, uint32_t probe, uint64_t deadline)
{
    size_t i = 0;
    while (i < MAX_JOBS && s->jobs[i])
        i++;
    if (i == MAX_JOBS)
        return NULL;
    nr_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->kind = kind;
    j->relay = relay;
    j->probe = probe;
    j->deadline = deadline;
    snprintf(j->url, sizeof j->url, "%s", s->urls[relay]);
    if (s->ca_file && !(j->ca_file = strdup(s->ca_file))) {
        free(j);
        return NULL;
    }
    j->wake = fcntl(s->wake_fd, F_DUPFD_CLOEXEC, 0);
    if (j->wake < 0) {
        free(j->ca_file);
        free(j);
        return NULL;
    }
    atomic_init(&j->refs, 2);
    atomic_init(&j->done, 0);
    atomic_init(&j->stop, 0);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, job_main, j);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        close(j->wake);
        free(j->ca_file);
        free(j);
        return NULL;
    }
    s->jobs[i] = j;
    return j;
}

/* ---- on the I/O thread ----------------------------------------------------------------- */

ir_nrs *ir_nrs_new(ir_ep *ep, const char *const *urls, size_t n, const char *ca_file,
                   int have_v4, int have_v6, int captive_check)
{
    ir_nrs *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->wake_fd < 0) {
        free(s);
        return NULL;
    }
    s->ep = ep;
    s->urls = urls;
    s->n = n > IR_NR_MAX_RELAYS ? IR_NR_MAX_RELAYS : n;
    s->ca_file = ca_file;
    ir_nr_config c;
    memset(&c, 0, sizeof c);
    c.n_relays = s->n;
    for (size_t i = 0; i < s->n; i++) {
        ir_lookup_url u;
        if (ir_lookup_url_split(urls[i], &u) == 0) {
            snprintf(s->host[i], sizeof s->host[i], "%s", u.host);
            c.qad[i] = u.tls; /* QAD needs the relay's certificate */
        }
    }
    c.have_v4 = have_v4;
    c.have_v6 = have_v6;
    c.captive_check = captive_check;
    c.seed = (uint32_t)ir_now_ns();
    ir_nr_init(&s->nr, &c);
    return s;
}

static void qad_drop(ir_nrs *s, int k, uint64_t now)
{
    if (s->qad[k].conn)
        ir_ep_qad_probe_close(s->ep, s->qad[k].conn, now);
    memset(&s->qad[k], 0, sizeof s->qad[k]);
}

/* a probe given up (timed out, its run over) stops early where it can */
static void stop_unwanted(ir_nrs *s)
{
    for (size_t i = 0; i < MAX_JOBS; i++) {
        nr_job *j = s->jobs[i];
        if (j && j->kind != JOB_RESOLVE && !atomic_load(&j->done) &&
            !ir_nr_probe_active(&s->nr, j->probe))
            atomic_store(&j->stop, 1);
    }
}

static void reap(ir_nrs *s, uint64_t now)
{
    for (size_t i = 0; i < MAX_JOBS; i++) {
        nr_job *j = s->jobs[i];
        if (!j || !atomic_load(&j->done))
            continue;
        s->jobs[i] = NULL;
        if (j->kind == JOB_RESOLVE) {
            if (j->probe == s->run) { /* not an earlier run's */
                s->res[j->relay].state = 2;
                s->res[j->relay].has4 = j->has4;
                s->res[j->relay].has6 = j->has6;
                s->res[j->relay].a4 = j->a4;
                s->res[j->relay].a6 = j->a6;
            }
        } else if (!j->ok) {
            ir_nr_probe_failed(&s->nr, j->probe, now);
        } else if (j->kind == JOB_HTTPS) {
            ir_nr_https_result(&s->nr, j->probe, j->latency, now);
        } else {
            ir_nr_captive_result(&s->nr, j->probe, j->portal, now);
        }
        job_put(j);
    }
}

static void start_probe(ir_nrs *s, const ir_nr_probe *p, uint64_t now)
{
    if (p->kind == IR_NR_HTTPS || p->kind == IR_NR_CAPTIVE) {
        uint64_t d = now + (p->kind == IR_NR_CAPTIVE ? IR_NR_CAPTIVE_TIMEOUT_NS
                                                     : IR_NR_PROBE_TIMEOUT_NS);
        if (!job_start(s, p->kind == IR_NR_HTTPS ? JOB_HTTPS : JOB_CAPTIVE, p->relay, p->id, d))
            ir_nr_probe_failed(&s->nr, p->id, now);
        return;
    }
    /* QAD: the relay's address first */
    if (s->res[p->relay].state == 0) {
        if (job_start(s, JOB_RESOLVE, p->relay, s->run, now + IR_NR_PROBE_TIMEOUT_NS))
            s->res[p->relay].state = 1;
        else
            s->res[p->relay].state = 2; /* nothing resolved: the probes fail */
    }
    for (int k = 0; k < MAX_QAD; k++)
        if (!s->qad[k].used) {
            s->qad[k].used = 1;
            s->qad[k].probe = p->id;
            s->qad[k].relay = p->relay;
            s->qad[k].family = p->kind == IR_NR_QAD4 ? 4 : 6;
            return;
        }
    ir_nr_probe_failed(&s->nr, p->id, now);
}

static void run_qad(ir_nrs *s, int k, uint64_t now)
{
    if (!ir_nr_probe_active(&s->nr, s->qad[k].probe)) {
        qad_drop(s, k, now);
        return;
    }
    int r = s->qad[k].relay;
    if (!s->qad[k].conn) {
        if (s->res[r].state != 2)
            return; /* still resolving */
        int v4 = s->qad[k].family == 4;
        if (!(v4 ? s->res[r].has4 : s->res[r].has6) ||
            ir_ep_qad_probe_open(s->ep, s->host[r], v4 ? &s->res[r].a4 : &s->res[r].a6, now,
                                 &s->qad[k].conn) != IROH_OK) {
            ir_nr_probe_failed(&s->nr, s->qad[k].probe, now);
            qad_drop(s, k, now);
        }
        return;
    }
    ir_conn *c = s->qad[k].conn;
    ir_event ev;
    while (ir_conn_poll_event(c, &ev)) {
        iroh_socket_addr a;
        if (ev.type != IR_EV_OBSERVED_ADDRESS || ir_conn_observed_addr(c, &a) != 0)
            continue;
        ir_conn_stats st;
        ir_conn_get_stats(c, &st);
        char text[IROH_SOCKET_ADDR_LEN];
        iroh_socket_addr_to_string(&a, text, sizeof text);
        IR_LOG(IR_LOG_DEBUG, "net report: %s (QAD over IPv%d) sees us at %s, rtt %.1f ms",
               s->urls[r], s->qad[k].family, text, (double)st.rtt_ns / 1e6);
        ir_nr_qad_result(&s->nr, s->qad[k].probe, &a, st.rtt_ns, now);
        qad_drop(s, k, now);
        return;
    }
    if (ir_conn_get_state(c) == IR_CONN_CLOSED) {
        ir_nr_probe_failed(&s->nr, s->qad[k].probe, now);
        qad_drop(s, k, now);
    }
}

void ir_nrs_tick(ir_nrs *s, uint64_t now)
{
    reap(s, now);
    if (now >= ir_nr_timeout(&s->nr))
        ir_nr_handle_timeout(&s->nr, now);
    if (s->nr.run != s->run) { /* a new run: names are looked up again */
        s->run = s->nr.run;
        memset(s->res, 0, sizeof s->res);
    }
    ir_nr_probe p;
    while (ir_nr_next_probe(&s->nr, now, &p))
        start_probe(s, &p, now);
    for (int k = 0; k < MAX_QAD; k++)
        if (s->qad[k].used)
            run_qad(s, k, now);
    /* a QAD answer may have ended the run: its other probes are dropped */
    if (!ir_nr_running(&s->nr))
        for (int k = 0; k < MAX_QAD; k++)
            if (s->qad[k].used)
                qad_drop(s, k, now);
    stop_unwanted(s);
}

int ir_nrs_pollfd(const ir_nrs *s, struct pollfd *pf)
{
    pf->fd = s->wake_fd;
    pf->events = POLLIN;
    pf->revents = 0;
    return 1;
}

void ir_nrs_woken(ir_nrs *s)
{
    uint64_t v;
    ssize_t n = read(s->wake_fd, &v, sizeof v);
    (void)n;
}

uint64_t ir_nrs_timeout(const ir_nrs *s, uint64_t now)
{
    (void)now; /* the jobs wake the I/O thread when they end (wake_fd): no polling */
    return ir_nr_timeout(&s->nr);
}

void ir_nrs_trigger(ir_nrs *s, uint64_t now)
{
    ir_nr_trigger(&s->nr, now, 0);
}

const ir_nr_report *ir_nrs_report(const ir_nrs *s, uint64_t *generation)
{
    return ir_nr_get(&s->nr, generation);
}

const char *ir_nrs_url(const ir_nrs *s, size_t i)
{
    return i < s->n ? s->urls[i] : NULL;
}

size_t ir_nrs_relays(const ir_nrs *s)
{
    return s->n;
}

void ir_nrs_free(ir_nrs *s, uint64_t now)
{
    if (!s)
        return;
    for (size_t i = 0; i < MAX_JOBS; i++)
        if (s->jobs[i]) { /* the thread finishes on its own and frees the job */
            atomic_store(&s->jobs[i]->stop, 1);
            job_put(s->jobs[i]);
        }
    for (int k = 0; k < MAX_QAD; k++)
        if (s->qad[k].used)
            qad_drop(s, k, now);
    close(s->wake_fd);
    free(s);
}
