/* The sans-IO cores of address lookup: the pkarr publisher's schedule and the DNS
 * lookup's staggered attempts (lookup.h). No clock, no sockets, no randomness of their
 * own: the shell (lookup_shell.c) brings the time and the jitter. */
#include <string.h>

#include "endpoint/lookup.h"

int ir_lookup_record_empty(const ir_lookup_record *r)
{
    return !r->relay[0] && !r->n_addrs && !r->user_data[0];
}

static int addr_eq(const iroh_socket_addr *a, const iroh_socket_addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16) == 0;
}

int ir_lookup_record_equal(const ir_lookup_record *a, const ir_lookup_record *b)
{
    if (strcmp(a->relay, b->relay) != 0 || strcmp(a->user_data, b->user_data) != 0 ||
        a->n_addrs != b->n_addrs)
        return 0;
    for (size_t i = 0; i < a->n_addrs; i++)
        if (!addr_eq(&a->addrs[i], &b->addrs[i]))
            return 0;
    return 1;
}

/* ---- publisher -------------------------------------------------------------------------- */

void ir_lookup_pub_init(ir_lookup_pub *p)
{
    memset(p, 0, sizeof *p);
    p->due = UINT64_MAX;
}

void ir_lookup_pub_set(ir_lookup_pub *p, const ir_lookup_record *r, uint64_t now)
{
    if (ir_lookup_record_equal(&p->want, r))
        return; /* no change: the timer stands (republish, or a retry's backoff) */
    p->want = *r;
    if (ir_lookup_record_empty(r)) {
        /* nothing to say: nothing is published (what was stays until it expires) */
        p->due = UINT64_MAX;
        return;
    }
    /* a change: a PUT at once (after the one in flight: ir_lookup_pub_done sees it) */
    if (p->have_sent && ir_lookup_record_equal(&p->sent, r) && p->due != UINT64_MAX)
        return; /* back to what is published, its republish timer running */
    if (p->due > now)
        p->due = now;
}

int ir_lookup_pub_poll(ir_lookup_pub *p, uint64_t now, ir_lookup_record *out)
{
    if (p->in_flight || p->due > now || ir_lookup_record_empty(&p->want))
        return 0;
    p->flight = p->want;
    p->in_flight = 1;
    *out = p->flight;
    return 1;
}

void ir_lookup_pub_done(ir_lookup_pub *p, int ok, uint64_t now)
{
    if (!p->in_flight)
        return;
    p->in_flight = 0;
    if (ok) {
        p->sent = p->flight;
        p->have_sent = 1;
        p->failures = 0;
        p->due = now + IR_LOOKUP_REPUBLISH_NS;
        if (!ir_lookup_record_equal(&p->want, &p->sent) && !ir_lookup_record_empty(&p->want))
            p->due = now; /* it changed meanwhile */
    } else {
        p->failures++;
        p->due = now + (uint64_t)p->failures * 1000000000ull;
    }
    if (ir_lookup_record_empty(&p->want))
        p->due = UINT64_MAX;
}

uint64_t ir_lookup_pub_next(const ir_lookup_pub *p)
{
    return p->in_flight || ir_lookup_record_empty(&p->want) ? UINT64_MAX : p->due;
}

/* ---- DNS attempts --------------------------------------------------------------------------- */

static const uint32_t dns_delays_ms[IR_LOOKUP_DNS_ATTEMPTS] = {0, 200, 300, 600, 1000, 2000, 3000};

void ir_lookup_dns_start(ir_lookup_dns *d, uint64_t now,
                         const uint32_t jitter[IR_LOOKUP_DNS_ATTEMPTS])
{
    memset(d, 0, sizeof *d);
    for (int i = 0; i < IR_LOOKUP_DNS_ATTEMPTS; i++) {
        /* delay * (0.8 + 0.4 * jitter / 2^32), in ns */
        uint64_t base = (uint64_t)dns_delays_ms[i] * 1000000ull;
        uint64_t j = (uint64_t)(((unsigned __int128)base * 4 / 10 * jitter[i]) >> 32);
        d->at[i] = now + base * 8 / 10 + j;
    }
    d->state = IR_LOOKUP_DNS_RUNNING;
}

static void check_failed(ir_lookup_dns *d)
{
    for (int i = 0; i < IR_LOOKUP_DNS_ATTEMPTS; i++)
        if (d->attempt[i] != 2)
            return;
    if (d->state == IR_LOOKUP_DNS_RUNNING)
        d->state = IR_LOOKUP_DNS_FAILED;
}

int ir_lookup_dns_poll(ir_lookup_dns *d, uint64_t now)
{
    if (d->state != IR_LOOKUP_DNS_RUNNING)
        return -1;
    for (int i = 0; i < IR_LOOKUP_DNS_ATTEMPTS; i++)
        if (d->attempt[i] == 1 && now >= d->deadline[i])
            d->attempt[i] = 2;
    check_failed(d);
    if (d->state != IR_LOOKUP_DNS_RUNNING)
        return -1;
    for (int i = 0; i < IR_LOOKUP_DNS_ATTEMPTS; i++) {
        if (d->attempt[i] == 0 && now >= d->at[i]) {
            d->attempt[i] = 1;
            d->deadline[i] = now + IR_LOOKUP_DNS_ATTEMPT_NS;
            return i;
        }
    }
    return -1;
}

void ir_lookup_dns_result(ir_lookup_dns *d, int i, int found)
{
    if (i < 0 || i >= IR_LOOKUP_DNS_ATTEMPTS || d->attempt[i] != 1 ||
        d->state != IR_LOOKUP_DNS_RUNNING)
        return;
    d->attempt[i] = 2;
    if (found)
        d->state = IR_LOOKUP_DNS_FOUND;
    else
        check_failed(d);
}

uint64_t ir_lookup_dns_next(const ir_lookup_dns *d)
{
    if (d->state != IR_LOOKUP_DNS_RUNNING)
        return UINT64_MAX;
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < IR_LOOKUP_DNS_ATTEMPTS; i++) {
        uint64_t t = d->attempt[i] == 0 ? d->at[i] : d->attempt[i] == 1 ? d->deadline[i] : UINT64_MAX;
        if (t < next)
            next = t;
    }
    return next;
}
