/* The shell of address lookup (lookup.h): one thread per endpoint that drives the sans-IO
 * cores (the publisher's schedule, each lookup's staggered DNS attempts) on the monotonic
 * clock, and job threads for the blocking steps (a pkarr PUT or GET, one DNS exchange, a
 * user's lookup), so that nothing here ever blocks the endpoint's I/O thread. The
 * endpoint's state (home relay, direct addresses) is read through the public API at the
 * start and whenever the endpoint's address watcher says it changed
 * (ir_lookup_addr_changed, from the I/O thread); events go to the endpoint's I/O thread,
 * which calls the application.
 *
 * Locks: lk->mu, then (for events) the endpoint's mutex; never the other way round, and
 * neither is held across a network step or a user's callback. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "dns/endpoint_info.h"
#include "dns/mdns_io.h"
#include "dns/pkarr.h"
#include "dns/txt_query.h"
#include "endpoint/api_internal.h"
#include "endpoint/ep.h"
#include "endpoint/lookup.h"
#include "endpoint/lookup_jobs.h"

#define HTTP_TIMEOUT_NS (10000ull * 1000000ull) /* one pkarr PUT or GET */
#define MDNS_WAIT_NS (10000ull * 1000000ull)  /* a lookup listens to mDNS this long (iroh) */
/* With relays configured, the first record waits this long for the home relay, so that a
 * published record names it (iroh would PUT the direct addresses alone first) */
#define HOME_RELAY_WAIT_NS (5000ull * 1000000ull)

typedef struct req {
    struct req *next;
    iroh_endpoint_id id;
    uint64_t started;
    ir_lookup_dns dns;
    int dns_on;
    int mdns_on;  /* waiting for the peer to answer on mDNS, until mdns_until */
    uint64_t mdns_until;
    int pending;  /* services not yet ended (pkarr, DNS, each user lookup) */
    int jobs;     /* job threads of it still running */
    int caller;   /* the resolve call waits on it */
    int forgotten; /* no more calls of more */
    int held;     /* the resolve call's token is not yet kept or forgotten */
    int done_due; /* every service ended after keep: more(ctx, NULL) is to be called */
    int in_more;  /* threads inside more */
    ir_lookup_more_fn more;
    void *more_ctx;
    iroh_endpoint_addr *found;
    int n_found; /* services that found something */
} req;

struct ir_lookup {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* the lookup thread's wake-up, and every waiter's (broadcast) */
    pthread_condattr_t cva;
    pthread_t thread;
    int thread_started;
    int stop_state; /* ir_lookup_stop: 0 not yet, 1 running (in one caller), 2 done */
    atomic_int stop;
    int refs;       /* the endpoint's + one per job thread */
    int user_jobs;  /* user lookups running (ir_lookup_free waits for them) */
    ir_lookup_config cfg;
    iroh_secret_key key;
    iroh_endpoint_id id;
    char *ca_file;
    struct iroh_endpoint *api;
    ir_lookup_pub pub;
    atomic_int addr_dirty; /* the endpoint's address changed: read it again */
    uint64_t next_state;   /* the home relay's wait ends: read it again (UINT64_MAX: no) */
    uint64_t created; /* when the lookup (the endpoint) started */
    uint64_t last_ts_us; /* pkarr timestamps strictly increase */
    req *reqs;
    int wake_fd;       /* the lookup thread polls it (and mDNS's sockets) */
    ir_mdns_io *mdns;  /* mDNS (iroh_endpoint_builder_mdns), driven by the lookup thread */
};

/* wakes the lookup thread and every waiter (lk->mu held) */
static void kick(ir_lookup *lk)
{
    pthread_cond_broadcast(&lk->cv);
    uint64_t one = 1;
    ssize_t n = write(lk->wake_fd, &one, sizeof one);
    (void)n;
}

typedef enum job_kind { JOB_PUT, JOB_GET, JOB_DNS, JOB_USER } job_kind;

typedef struct job {
    ir_lookup *lk;
    job_kind kind;
    req *r;
    int index; /* DNS attempt, user lookup */
    uint64_t deadline; /* DNS attempt: the core's (ir_lookup_dns_poll), so both agree */
    ir_lookup_record rec; /* PUT */
} job;

static void lookup_release(ir_lookup *lk); /* with lk->mu held; unlocks */

/* ---- events ------------------------------------------------------------------------------ */

static void event(ir_lookup *lk, iroh_event_kind kind, const iroh_endpoint_id *peer,
                  const char *service, uint64_t code, const iroh_endpoint_addr *a,
                  uint64_t started)
{
    if (atomic_load(&lk->stop))
        return;
    ir_api_lookup_event(lk->api, kind, peer, service, code, a,
                        started ? (ir_now_ns() - started) / 1000 : 0);
}

/* ---- publishing ---------------------------------------------------------------------------- */

/* what the endpoint says of itself now (without lk->mu): its home relay and every direct
 * address (all = 1, for mDNS), or only those it publishes to the pkarr relay */
static void current_record(ir_lookup *lk, ir_lookup_record *rec, int all)
{
    memset(rec, 0, sizeof *rec);
    snprintf(rec->user_data, sizeof rec->user_data, "%s", lk->cfg.user_data);
    iroh_endpoint_addr *a = NULL;
    if (iroh_endpoint_get_addr(lk->api, &a) != IROH_OK)
        return;
    size_t n = iroh_endpoint_addr_len(a);
    for (size_t i = 0; i < n; i++) {
        iroh_transport_addr t;
        if (iroh_endpoint_addr_get(a, i, &t) != IROH_OK)
            continue;
        if (t.kind == IROH_TRANSPORT_RELAY && !rec->relay[0] && strlen(t.relay_url) < sizeof rec->relay)
            strcpy(rec->relay, t.relay_url);
        else if (t.kind == IROH_TRANSPORT_IP && (all || lk->cfg.publish_addrs) &&
                 rec->n_addrs < IR_LOOKUP_MAX_ADDRS)
            rec->addrs[rec->n_addrs++] = t.ip;
    }
    iroh_endpoint_addr_free(a);
}

static void record_to_info(const iroh_endpoint_id *id, const ir_lookup_record *rec,
                           ir_endpoint_info *ei)
{
    memset(ei, 0, sizeof *ei);
    memcpy(ei->id, id->bytes, 32);
    snprintf(ei->relay, sizeof ei->relay, "%s", rec->relay);
    for (size_t i = 0; i < rec->n_addrs && i < IR_ENDPOINT_INFO_MAX_ADDRS; i++)
        ei->addrs[ei->n_addrs++] = rec->addrs[i];
    if (rec->user_data[0]) {
        snprintf(ei->user_data, sizeof ei->user_data, "%s", rec->user_data);
        ei->has_user_data = 1;
    }
}

/* the pkarr relay payload of rec, signed now */
static int make_payload(ir_lookup *lk, const ir_lookup_record *rec, uint8_t *out, size_t cap,
                        size_t *len)
{
    ir_endpoint_info ei;
    record_to_info(&lk->id, rec, &ei);
    uint8_t dns[IR_PKARR_MAX_DNS];
    size_t dlen;
    int rc = ir_endpoint_info_to_dns(&ei, IR_LOOKUP_TTL, dns, sizeof dns, &dlen);
    if (rc != IROH_OK)
        return rc;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t us = (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000;
    pthread_mutex_lock(&lk->mu);
    if (us <= lk->last_ts_us)
        us = lk->last_ts_us + 1;
    lk->last_ts_us = us;
    pthread_mutex_unlock(&lk->mu);
    ir_pkarr_packet *p = malloc(sizeof *p);
    if (!p)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    rc = ir_pkarr_sign(&lk->key, us, dns, dlen, p);
    if (rc == IROH_OK) {
        *len = ir_pkarr_relay_payload(p, out, cap);
        if (!*len)
            rc = ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "the pkarr payload does not fit");
    }
    free(p);
    return rc;
}

/* "<base>/<z32 of id>" */
static int pkarr_url(const ir_lookup *lk, const iroh_endpoint_id *id, char *out, size_t cap)
{
    char z[IROH_ID_Z32_LEN];
    iroh_endpoint_id_to_z32(id, z, sizeof z);
    const char *base = lk->cfg.pkarr_url;
    size_t bl = strlen(base);
    int n = snprintf(out, cap, "%.*s/%s", (int)(bl && base[bl - 1] == '/' ? bl - 1 : bl), base, z);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static void run_put(job *j)
{
    ir_lookup *lk = j->lk;
    uint8_t body[IR_PKARR_MAX_PAYLOAD];
    size_t len = 0;
    char url[1400];
    ir_lookup_http_answer *ans = malloc(sizeof *ans);
    int rc = ans ? make_payload(lk, &j->rec, body, sizeof body, &len) : IROH_ERR_NO_MEMORY;
    if (rc == IROH_OK && pkarr_url(lk, &lk->id, url, sizeof url) != 0)
        rc = ir_fail(IROH_ERR_INVALID_ADDR, "the pkarr URL is too long");
    if (rc == IROH_OK)
        rc = ir_lookup_http(url, "PUT", body, len, lk->ca_file, ir_now_ns() + HTTP_TIMEOUT_NS,
                            &lk->stop, ans);
    int ok = rc == IROH_OK && ans->status >= 200 && ans->status < 300;
    int status = rc == IROH_OK ? ans->status : 0;
    if (!ok && !atomic_load(&lk->stop)) {
        if (rc == IROH_OK)
            IR_LOG(IR_LOG_WARN, "pkarr publish to %s: HTTP %d %.*s", lk->cfg.pkarr_url, status,
                   (int)(ans->len < 200 ? ans->len : 200), (const char *)ans->body);
        else
            IR_LOG(IR_LOG_WARN, "pkarr publish to %s: %s", lk->cfg.pkarr_url, iroh_last_error());
    } else if (ok) {
        IR_LOG(IR_LOG_INFO, "published to %s (relay %s, %zu addresses)", lk->cfg.pkarr_url,
               j->rec.relay[0] ? j->rec.relay : "none", j->rec.n_addrs);
    }
    free(ans);
    pthread_mutex_lock(&lk->mu);
    ir_lookup_pub_done(&lk->pub, ok, ir_now_ns());
    event(lk, ok ? IROH_EVENT_PUBLISHED : IROH_EVENT_PUBLISH_FAILED, &lk->id, "pkarr",
          (uint64_t)status, NULL, 0);
}

/* ---- resolving ----------------------------------------------------------------------------- */

/* what a service found for r (lk->mu held; it is dropped and taken again around more) */
static void found(ir_lookup *lk, req *r, const ir_endpoint_info *ei, const char *service)
{
    iroh_endpoint_addr *a = iroh_endpoint_addr_new(&r->id);
    if (!a)
        return;
    if (ei->relay[0])
        iroh_endpoint_addr_add_relay(a, ei->relay);
    for (size_t i = 0; i < ei->n_addrs; i++)
        iroh_endpoint_addr_add_ip(a, &ei->addrs[i]);
    if (iroh_endpoint_addr_len(a) == 0) {
        iroh_endpoint_addr_free(a);
        return;
    }
    r->n_found++;
    size_t n = iroh_endpoint_addr_len(a);
    for (size_t i = 0; i < n; i++) {
        iroh_transport_addr t;
        iroh_endpoint_addr_get(a, i, &t);
        if (t.kind == IROH_TRANSPORT_RELAY)
            iroh_endpoint_addr_add_relay(r->found, t.relay_url);
        else if (t.kind == IROH_TRANSPORT_IP)
            iroh_endpoint_addr_add_ip(r->found, &t.ip);
    }
    event(lk, IROH_EVENT_LOOKUP_FOUND, &r->id, service, 0, a, r->started);
    if (!r->caller && r->more && !r->forgotten && !atomic_load(&lk->stop)) {
        r->in_more++;
        pthread_mutex_unlock(&lk->mu);
        r->more(r->more_ctx, a);
        pthread_mutex_lock(&lk->mu);
        r->in_more--;
    }
    iroh_endpoint_addr_free(a);
    kick(lk);
}

/* a user lookup's answer, as an endpoint info (relay and IP addresses) */
static void addr_to_info(const iroh_endpoint_addr *a, ir_endpoint_info *ei)
{
    memset(ei, 0, sizeof *ei);
    size_t n = iroh_endpoint_addr_len(a);
    for (size_t i = 0; i < n; i++) {
        iroh_transport_addr t;
        iroh_endpoint_addr_get(a, i, &t);
        if (t.kind == IROH_TRANSPORT_RELAY && !ei->relay[0] && strlen(t.relay_url) < sizeof ei->relay)
            strcpy(ei->relay, t.relay_url);
        else if (t.kind == IROH_TRANSPORT_IP && ei->n_addrs < IR_ENDPOINT_INFO_MAX_ADDRS)
            ei->addrs[ei->n_addrs++] = t.ip;
    }
}

static void run_user(job *j)
{
    ir_lookup *lk = j->lk;
    req *r = j->r;
    iroh_endpoint_addr *a = iroh_endpoint_addr_new(&r->id);
    int rc = a ? lk->cfg.user[j->index](lk->cfg.user_ctx[j->index], &r->id, a) : IROH_ERR_NO_MEMORY;
    ir_endpoint_info *ei = malloc(sizeof *ei);
    if (ei && a && rc == IROH_OK)
        addr_to_info(a, ei);
    iroh_endpoint_addr_free(a);
    pthread_mutex_lock(&lk->mu);
    if (ei && rc == IROH_OK)
        found(lk, r, ei, "user");
    free(ei);
    r->pending--;
    lk->user_jobs--;
    kick(lk);
}

static void run_get(job *j)
{
    ir_lookup *lk = j->lk;
    req *r = j->r;
    char url[1400];
    ir_lookup_http_answer *ans = malloc(sizeof *ans);
    ir_endpoint_info *ei = malloc(sizeof *ei);
    int rc = ans && ei ? IROH_OK : IROH_ERR_NO_MEMORY;
    if (rc == IROH_OK && pkarr_url(lk, &r->id, url, sizeof url) != 0)
        rc = ir_fail(IROH_ERR_INVALID_ADDR, "the pkarr URL is too long");
    if (rc == IROH_OK)
        rc = ir_lookup_http(url, "GET", NULL, 0, lk->ca_file, ir_now_ns() + HTTP_TIMEOUT_NS,
                            &lk->stop, ans);
    int ok = 0;
    if (rc == IROH_OK) {
        ok = ir_lookup_pkarr_answer(r->id.bytes, ans, ei);
        if (ok < 0)
            IR_LOG(IR_LOG_WARN, "pkarr lookup: a bad answer from %s: %s", lk->cfg.pkarr_url,
                   iroh_last_error());
    } else {
        IR_LOG(IR_LOG_DEBUG, "pkarr lookup: %s", iroh_last_error());
    }
    pthread_mutex_lock(&lk->mu);
    if (ok > 0)
        found(lk, r, ei, "pkarr");
    r->pending--;
    kick(lk);
    free(ans);
    free(ei);
}

/* which datagram is the response to a DNS attempt's query (dns/txt_query.h) */
typedef struct dns_attempt {
    const iroh_endpoint_id *id;
    const char *origin;
    uint16_t qid;
    ir_endpoint_info *ei;
    int status; /* ir_dns_txt_status of the response */
} dns_attempt;

static int classify(void *ctx, const uint8_t *msg, size_t len)
{
    dns_attempt *a = ctx;
    int st = ir_dns_txt_response(a->id->bytes, a->origin, a->qid, msg, len, a->ei, NULL);
    if (st < 0)
        return -1;
    a->status = st;
    return st == IR_DNS_TXT_TRUNCATED ? 1 : 0;
}

/* a DNS job stops waiting this long before the core ends its attempt, so that its
 * report (taking the lock) comes while the attempt still runs */
#define DNS_REPORT_NS (250ull * 1000000ull)

static void run_dns(job *j)
{
    ir_lookup *lk = j->lk;
    req *r = j->r;
    uint8_t q[512];
    size_t qlen = 0, alen = 0;
    uint8_t *ans = malloc(IR_LOOKUP_DNS_MAX);
    ir_endpoint_info *ei = malloc(sizeof *ei);
    iroh_socket_addr servers[3];
    size_t ns = 1;
    if (lk->cfg.dns_server.family)
        servers[0] = lk->cfg.dns_server;
    else
        ns = ir_lookup_resolv_conf(NULL, servers, 3);
    dns_attempt at = {.id = &r->id, .origin = lk->cfg.origin, .ei = ei, .status = -1};
    ir_random_bytes(NULL, (uint8_t *)&at.qid, sizeof at.qid);
    int rc = ans && ei ? ir_dns_txt_query(r->id.bytes, lk->cfg.origin, at.qid, q, sizeof q, &qlen)
                       : IROH_ERR_NO_MEMORY;
    int ok = 0;
    /* the attempt's end as the core set it, less a moment to report: an answer within
     * it counts (a deadline of the job's own, from its later start, outlived the core's,
     * which then dropped the answer as too late) */
    uint64_t deadline = j->deadline > DNS_REPORT_NS ? j->deadline - DNS_REPORT_NS : 0;
    /* the servers in turn, each its share of the attempt's 3 s, until one responds */
    for (size_t i = 0; rc == IROH_OK && i < ns; i++) {
        uint64_t now = ir_now_ns();
        if (now >= deadline)
            break;
        uint64_t d = now + (deadline - now) / (ns - i);
        if (ir_lookup_dns_exchange(&servers[i], q, qlen, classify, &at, d, &lk->stop, ans,
                                   IR_LOOKUP_DNS_MAX, &alen) != IROH_OK) {
            IR_LOG(IR_LOG_DEBUG, "DNS lookup: %s", iroh_last_error());
            continue;
        }
        ok = at.status == IR_DNS_TXT_FOUND && (ei->relay[0] || ei->n_addrs);
        break; /* a response (also NXDOMAIN) ends the attempt */
    }
    pthread_mutex_lock(&lk->mu);
    int was_running = r->dns.state == IR_LOOKUP_DNS_RUNNING;
    ir_lookup_dns_result(&r->dns, j->index, ok);
    if (was_running && ok)
        found(lk, r, ei, "dns");
    if (was_running && r->dns.state != IR_LOOKUP_DNS_RUNNING)
        r->pending--;
    kick(lk);
    free(ans);
    free(ei);
}

static void *job_main(void *arg)
{
    job *j = arg;
    ir_lookup *lk = j->lk;
    switch (j->kind) {
    case JOB_PUT: run_put(j); break;
    case JOB_GET: run_get(j); break;
    case JOB_DNS: run_dns(j); break;
    case JOB_USER: run_user(j); break;
    }
    /* lk->mu is held here */
    if (j->r)
        j->r->jobs--;
    free(j);
    kick(lk);
    lookup_release(lk);
    return NULL;
}

/* Job threads at once per endpoint, and each one's stack: lookups by id come from the
 * application (ids it may have from peers) and a slow or silent DNS / pkarr server keeps
 * each job for seconds, so their number is bounded; past it a job counts as failed. */
#define MAX_JOBS 64
#define JOB_STACK (256u * 1024u)

/* starts a job thread (lk->mu held); 0, or -1 (the job was not started) */
static int spawn(ir_lookup *lk, job_kind kind, req *r, int index, const ir_lookup_record *rec)
{
    if (lk->refs - 1 >= MAX_JOBS) { /* refs: the endpoint's and one per job */
        IR_LOG(IR_LOG_WARN, "address lookup: %d jobs running, this one is not started",
               MAX_JOBS);
        return -1;
    }
    job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->lk = lk;
    j->kind = kind;
    j->r = r;
    j->index = index;
    if (kind == JOB_DNS && r && index >= 0 && index < IR_LOOKUP_DNS_ATTEMPTS)
        j->deadline = r->dns.deadline[index];
    if (rec)
        j->rec = *rec;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, JOB_STACK);
    int rc = pthread_create(&t, &attr, job_main, j);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        IR_LOG(IR_LOG_WARN, "address lookup: cannot start a thread: %s", strerror(rc));
        free(j);
        return -1;
    }
    lk->refs++;
    if (r)
        r->jobs++;
    if (kind == JOB_USER)
        lk->user_jobs++;
    return 0;
}

/* ---- the lookup thread ----------------------------------------------------------------------- */

static void ts_at(struct timespec *ts, uint64_t ns)
{
    ts->tv_sec = (time_t)(ns / 1000000000ull);
    ts->tv_nsec = (long)(ns % 1000000000ull);
}

/* mDNS (lk->mu held): datagrams, timers, and what peers announced to the lookups that
 * wait for them */
static void mdns_step(ir_lookup *lk, uint64_t now)
{
    ir_mdns_io_process(lk->mdns, now);
    ir_mdns_event ev;
    while (ir_mdns_poll_event(ir_mdns_io_core(lk->mdns), &ev)) {
        if (ev.kind != IR_MDNS_EV_DISCOVERED)
            continue;
        for (req *r = lk->reqs; r; r = r->next) {
            if (!r->mdns_on || memcmp(r->id.bytes, ev.info.id, 32) != 0)
                continue;
            r->mdns_on = 0;
            r->pending--;
            r->jobs++; /* found may let go of the lock: r stays */
            found(lk, r, &ev.info, "mdns");
            r->jobs--;
        }
    }
}

static void *lookup_main(void *arg)
{
    ir_lookup *lk = arg;
    pthread_mutex_lock(&lk->mu);
    while (!atomic_load(&lk->stop)) {
        uint64_t now = ir_now_ns();
        if ((lk->cfg.pkarr_url || lk->mdns) &&
            (atomic_exchange(&lk->addr_dirty, 0) || now >= lk->next_state)) {
            ir_lookup_record rec, all;
            pthread_mutex_unlock(&lk->mu);
            current_record(lk, &rec, 0);
            if (lk->mdns)
                current_record(lk, &all, 1);
            pthread_mutex_lock(&lk->mu);
            now = ir_now_ns();
            lk->next_state = UINT64_MAX;
            if (!rec.relay[0] && lk->cfg.wait_home_relay && !lk->pub.have_sent &&
                !lk->pub.in_flight && now - lk->created < HOME_RELAY_WAIT_NS) {
                memset(&rec, 0, sizeof rec); /* nothing yet: the home relay comes first */
                lk->next_state = lk->created + HOME_RELAY_WAIT_NS; /* then without it */
            }
            ir_lookup_pub_set(&lk->pub, &rec, now);
            if (lk->mdns && all.n_addrs) { /* iroh announces every address and the relay */
                ir_endpoint_info self;
                record_to_info(&lk->id, &all, &self);
                ir_mdns_set_local(ir_mdns_io_core(lk->mdns), &self);
            }
        }
        ir_lookup_record rec;
        if (lk->cfg.pkarr_url && ir_lookup_pub_poll(&lk->pub, now, &rec) &&
            spawn(lk, JOB_PUT, NULL, 0, &rec) != 0)
            ir_lookup_pub_done(&lk->pub, 0, now);
        if (lk->mdns)
            mdns_step(lk, now);
        uint64_t next = lk->cfg.pkarr_url || lk->mdns ? lk->next_state : now + 60000000000ull;
        uint64_t pn = ir_lookup_pub_next(&lk->pub);
        if (lk->cfg.pkarr_url && pn < next)
            next = pn;
        if (lk->mdns && ir_mdns_io_next_timeout(lk->mdns) < next)
            next = ir_mdns_io_next_timeout(lk->mdns);
        for (req **pp = &lk->reqs; *pp;) {
            req *r = *pp;
            if (r->dns_on && r->dns.state == IR_LOOKUP_DNS_RUNNING && !r->forgotten) {
                int i;
                /* a fresh clock: the attempt's deadline starts now, not when this turn of
                 * the loop began (mDNS callbacks and thread starts take time) */
                while ((i = ir_lookup_dns_poll(&r->dns, ir_now_ns())) >= 0)
                    if (spawn(lk, JOB_DNS, r, i, NULL) != 0)
                        ir_lookup_dns_result(&r->dns, i, 0);
                if (r->dns.state != IR_LOOKUP_DNS_RUNNING) {
                    r->pending--;
                    kick(lk);
                }
                uint64_t dn = ir_lookup_dns_next(&r->dns);
                if (dn < next)
                    next = dn;
            }
            if (r->mdns_on && now >= r->mdns_until) { /* nobody answered on the LAN */
                r->mdns_on = 0;
                r->pending--;
                kick(lk);
            } else if (r->mdns_on && r->mdns_until < next) {
                next = r->mdns_until;
            }
            /* kept after the call returned and every service has ended: its owner hears
             * so once (below, without the lock), then nothing more */
            if (!r->caller && !r->held && !r->forgotten && r->more && r->pending <= 0) {
                r->forgotten = 1;
                r->done_due = 1;
            }
            /* gone when nobody waits or will forget it, and no job of it runs (DNS
             * attempts not yet started are dropped with it) */
            if (!r->caller && !r->jobs && r->forgotten && !r->in_more && !r->done_due) {
                *pp = r->next;
                iroh_endpoint_addr_free(r->found);
                free(r);
                continue;
            }
            pp = &r->next;
        }
        /* the ends of kept lookups (in_more keeps r: only this thread frees requests) */
        int told = 0;
        for (req *r = lk->reqs; r; r = r->next) {
            if (!r->done_due)
                continue;
            r->done_due = 0;
            r->in_more++;
            pthread_mutex_unlock(&lk->mu);
            r->more(r->more_ctx, NULL);
            pthread_mutex_lock(&lk->mu);
            r->in_more--;
            told = 1;
        }
        if (told)
            continue; /* they can go now */
        /* sleep until then, or a kick, or an mDNS datagram */
        struct pollfd pf[3] = {{.fd = lk->wake_fd, .events = POLLIN}};
        nfds_t npf = 1;
        for (int fam = 4; lk->mdns && fam <= 6; fam += 2) {
            int fd = ir_mdns_io_fd(lk->mdns, fam);
            if (fd >= 0)
                pf[npf++] = (struct pollfd){.fd = fd, .events = POLLIN};
        }
        now = ir_now_ns();
        uint64_t wait_ms = next > now ? (next - now + 999999) / 1000000 : 0;
        pthread_mutex_unlock(&lk->mu);
        poll(pf, npf, wait_ms > 60000 ? 60000 : (int)wait_ms);
        if (pf[0].revents & POLLIN) {
            uint64_t v;
            ssize_t n = read(lk->wake_fd, &v, sizeof v);
            (void)n;
        }
        pthread_mutex_lock(&lk->mu);
    }
    pthread_mutex_unlock(&lk->mu);
    return NULL;
}

void ir_lookup_addr_changed(ir_lookup *lk)
{
    atomic_store(&lk->addr_dirty, 1);
    uint64_t one = 1;
    ssize_t n = write(lk->wake_fd, &one, sizeof one); /* no lock: see lookup.h */
    (void)n;
}

int ir_lookup_new(const ir_lookup_config *cfg, const iroh_secret_key *key, const char *ca_file,
                  struct iroh_endpoint *api, ir_lookup **out)
{
    ir_lookup *lk = calloc(1, sizeof *lk);
    if (!lk)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    lk->cfg = *cfg;
    lk->cfg.pkarr_url = cfg->pkarr_url ? strdup(cfg->pkarr_url) : NULL;
    lk->cfg.origin = cfg->origin ? strdup(cfg->origin) : NULL;
    lk->ca_file = ca_file ? strdup(ca_file) : NULL;
    if ((cfg->pkarr_url && !lk->cfg.pkarr_url) || (cfg->origin && !lk->cfg.origin) ||
        (ca_file && !lk->ca_file)) {
        ir_lookup_config_clear(&lk->cfg);
        free(lk->ca_file);
        free(lk);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    lk->key = *key;
    iroh_secret_key_public(key, &lk->id);
    lk->api = api;
    lk->refs = 1;
    lk->created = ir_now_ns();
    lk->wake_fd = -1;
    atomic_init(&lk->stop, 0);
    atomic_init(&lk->addr_dirty, 1);
    ir_lookup_pub_init(&lk->pub);
    pthread_condattr_init(&lk->cva);
    pthread_condattr_setclock(&lk->cva, CLOCK_MONOTONIC);
    pthread_cond_init(&lk->cv, &lk->cva);
    pthread_mutex_init(&lk->mu, NULL);
    lk->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (lk->wake_fd < 0) {
        int err = errno;
        pthread_mutex_lock(&lk->mu);
        lookup_release(lk);
        return ir_fail(IROH_ERR_IO, "eventfd: %s", strerror(err));
    }
    if (cfg->mdns && ir_mdns_io_open(lk->id.bytes, NULL, ir_now_ns(), &lk->mdns) != IROH_OK)
        IR_LOG(IR_LOG_WARN, "mDNS is off: %s", iroh_last_error());
    int rc = pthread_create(&lk->thread, NULL, lookup_main, lk);
    if (rc != 0) {
        pthread_mutex_lock(&lk->mu);
        lookup_release(lk);
        return ir_fail(IROH_ERR_IO, "cannot start the lookup thread: %s", strerror(rc));
    }
    lk->thread_started = 1;
    *out = lk;
    return IROH_OK;
}

static void lookup_release(ir_lookup *lk)
{
    int last = --lk->refs == 0;
    pthread_mutex_unlock(&lk->mu);
    if (!last)
        return;
    while (lk->reqs) {
        req *r = lk->reqs;
        lk->reqs = r->next;
        iroh_endpoint_addr_free(r->found);
        free(r);
    }
    ir_lookup_config_clear(&lk->cfg);
    free(lk->ca_file);
    ir_mdns_io_close(lk->mdns);
    if (lk->wake_fd >= 0)
        close(lk->wake_fd);
    memset(&lk->key, 0, sizeof lk->key);
    pthread_cond_destroy(&lk->cv);
    pthread_condattr_destroy(&lk->cva);
    pthread_mutex_destroy(&lk->mu);
    free(lk);
}

void ir_lookup_stop(ir_lookup *lk)
{
    if (!lk)
        return;
    pthread_mutex_lock(&lk->mu);
    if (lk->stop_state != 0) {
        /* another thread stops it: return once that is done (the mDNS sockets and the
         * kept lookups are that caller's to end, after the lookup thread has gone) */
        while (lk->stop_state != 2)
            pthread_cond_wait(&lk->cv, &lk->mu);
        pthread_mutex_unlock(&lk->mu);
        return;
    }
    lk->stop_state = 1;
    atomic_store(&lk->stop, 1);
    kick(lk);
    int join = lk->thread_started;
    lk->thread_started = 0;
    pthread_mutex_unlock(&lk->mu);
    if (join)
        pthread_join(lk->thread, NULL);
    pthread_mutex_lock(&lk->mu);
    ir_mdns_io_close(lk->mdns); /* nothing more announced or answered */
    lk->mdns = NULL;
    /* the user's callbacks must not run after the endpoint is gone; the network jobs see
     * stop within 50 ms and report nothing */
    while (lk->user_jobs)
        pthread_cond_wait(&lk->cv, &lk->mu);
    /* kept lookups end here: no find reaches their owner after stop; each hears of its
     * end once (a held one when its caller keeps it) */
    for (;;) {
        req *r = lk->reqs;
        while (r && !(r->done_due || (!r->caller && !r->held && !r->forgotten && r->more)))
            r = r->next;
        if (!r)
            break;
        r->forgotten = 1;
        r->done_due = 0;
        while (r->in_more)
            pthread_cond_wait(&lk->cv, &lk->mu);
        r->in_more++;
        pthread_mutex_unlock(&lk->mu);
        r->more(r->more_ctx, NULL);
        pthread_mutex_lock(&lk->mu);
        r->in_more--;
    }
    lk->stop_state = 2;
    pthread_cond_broadcast(&lk->cv);
    pthread_mutex_unlock(&lk->mu);
}

void ir_lookup_free(ir_lookup *lk)
{
    if (!lk)
        return;
    ir_lookup_stop(lk);
    pthread_mutex_lock(&lk->mu);
    lookup_release(lk);
}

int ir_lookup_can_resolve(const ir_lookup *lk)
{
    return lk && (lk->cfg.pkarr_url || lk->cfg.origin || lk->cfg.n_user || lk->cfg.mdns);
}

int ir_lookup_resolve(ir_lookup *lk, const iroh_endpoint_id *id, uint64_t deadline, int first,
                      ir_lookup_more_fn more, void *more_ctx, void **token_out,
                      iroh_endpoint_addr **out)
{
    if (!ir_lookup_can_resolve(lk))
        return ir_fail(IROH_ERR_NOT_FOUND, "no address lookup is configured");
    req *r = calloc(1, sizeof *r);
    if (!r || !(r->found = iroh_endpoint_addr_new(id))) {
        free(r);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    r->id = *id;
    r->more = more;
    r->more_ctx = more_ctx;
    r->caller = 1;
    pthread_mutex_lock(&lk->mu);
    if (atomic_load(&lk->stop)) {
        pthread_mutex_unlock(&lk->mu);
        iroh_endpoint_addr_free(r->found);
        free(r);
        return ir_fail(IROH_ERR_CLOSED, "the endpoint was closed");
    }
    uint64_t now = ir_now_ns();
    r->started = now;
    r->next = lk->reqs;
    lk->reqs = r;
    if (lk->cfg.origin) {
        uint32_t jitter[IR_LOOKUP_DNS_ATTEMPTS];
        ir_random_bytes(NULL, (uint8_t *)jitter, sizeof jitter);
        ir_lookup_dns_start(&r->dns, now, jitter);
        r->dns_on = 1;
        r->pending++;
    }
    if (lk->cfg.pkarr_url && spawn(lk, JOB_GET, r, 0, NULL) == 0)
        r->pending++;
    for (size_t i = 0; i < lk->cfg.n_user; i++)
        if (spawn(lk, JOB_USER, r, (int)i, NULL) == 0)
            r->pending++;
    if (lk->mdns) { /* what the LAN said already, else wait for an answer (iroh: 10 s) */
        ir_endpoint_info *ei = malloc(sizeof *ei);
        if (ei && ir_mdns_lookup(ir_mdns_io_core(lk->mdns), id->bytes, ei) && ei->n_addrs) {
            found(lk, r, ei, "mdns");
        } else {
            r->mdns_on = 1;
            r->mdns_until = now + MDNS_WAIT_NS;
            r->pending++;
        }
        free(ei);
    }
    kick(lk); /* the lookup thread starts the DNS attempts */
    struct timespec ts;
    ts_at(&ts, deadline);
    int rc = IROH_OK;
    while (r->pending > 0 && !(first && r->n_found)) {
        if (atomic_load(&lk->stop)) {
            rc = ir_fail(IROH_ERR_CLOSED, "the endpoint was closed");
            break;
        }
        if (pthread_cond_timedwait(&lk->cv, &lk->mu, &ts) == ETIMEDOUT)
            break;
    }
    if (rc == IROH_OK && !r->n_found) {
        rc = r->pending ? ir_fail(IROH_ERR_TIMEOUT, "no lookup found an address in time")
                        : ir_fail(IROH_ERR_NOT_FOUND, "no lookup found an address");
        event(lk, IROH_EVENT_LOOKUP_FAILED, id, NULL, 0, NULL, r->started);
    }
    if (rc == IROH_OK) {
        iroh_endpoint_addr *copy = iroh_endpoint_addr_new(id);
        size_t n = iroh_endpoint_addr_len(r->found);
        for (size_t i = 0; copy && i < n; i++) {
            iroh_transport_addr t;
            iroh_endpoint_addr_get(r->found, i, &t);
            if (t.kind == IROH_TRANSPORT_RELAY)
                iroh_endpoint_addr_add_relay(copy, t.relay_url);
            else if (t.kind == IROH_TRANSPORT_IP)
                iroh_endpoint_addr_add_ip(copy, &t.ip);
        }
        if (!copy)
            rc = ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
        *out = copy;
    }
    r->caller = 0;
    if (rc != IROH_OK || !more)
        r->forgotten = 1;
    r->held = rc == IROH_OK && more;
    if (token_out)
        *token_out = r->held ? r : NULL;
    kick(lk);
    pthread_mutex_unlock(&lk->mu);
    return rc;
}

void ir_lookup_forget(ir_lookup *lk, void *token)
{
    if (!lk || !token)
        return;
    pthread_mutex_lock(&lk->mu);
    req *r = token;
    r->forgotten = 1;
    r->held = 0;
    while (r->in_more)
        pthread_cond_wait(&lk->cv, &lk->mu);
    kick(lk);
    pthread_mutex_unlock(&lk->mu);
}

void ir_lookup_keep(ir_lookup *lk, void *token)
{
    if (!lk || !token)
        return;
    pthread_mutex_lock(&lk->mu);
    req *r = token;
    r->held = 0;
    if (!atomic_load(&lk->stop)) { /* the lookup thread goes on with it */
        kick(lk);
        pthread_mutex_unlock(&lk->mu);
        return;
    }
    /* stopped: it ends now, and its owner hears so here (r stays: the lookup thread is
     * gone or leaves without freeing requests, and ir_lookup_free waits for the caller) */
    r->forgotten = 1;
    while (r->in_more)
        pthread_cond_wait(&lk->cv, &lk->mu);
    ir_lookup_more_fn fn = r->more;
    void *ctx = r->more_ctx;
    pthread_mutex_unlock(&lk->mu);
    fn(ctx, NULL);
}
