/* The net report's shell: runs the probes the core (netreport.h) asks for, from the
 * endpoint's I/O thread. QAD probes are internal QUIC connections of the endpoint core
 * from the endpoint's own UDP sockets (ep.c opens them: the relay's certificate checked
 * as for its https URL, ALPN /iroh-qad/0), closed once the relay told the address; the
 * relays' names are resolved, the HTTPS latency probes (GET <relay>/ping) and the
 * captive-portal check (plain HTTP GET /generate_204) run on short-lived threads, each
 * within its probe's deadline (name lookups too: endpoint/lookup_jobs.h). A job that ends
 * writes the shell's eventfd, which the I/O thread polls (ir_nrs_pollfd): no timer runs
 * while jobs are out. */
#ifndef IR_ENDPOINT_NETREPORT_SHELL_H
#define IR_ENDPOINT_NETREPORT_SHELL_H

#include <stdint.h>

#include "endpoint/netreport.h"

typedef struct ir_ep ir_ep;
typedef struct ir_nrs ir_nrs;

/* urls: the configured relays (normalized; the strings must outlive the shell). NULL
 * when out of memory. */
ir_nrs *ir_nrs_new(ir_ep *ep, const char *const *urls, size_t n, const char *ca_file,
                   int have_v4, int have_v6, int captive_check);
void ir_nrs_tick(ir_nrs *s, uint64_t now);
uint64_t ir_nrs_timeout(const ir_nrs *s, uint64_t now);
/* the descriptor to poll for POLLIN (a job ended): fills *pf, returns 1; when it is
 * readable, ir_nrs_woken clears it, then ir_nrs_tick reaps */
struct pollfd;
int ir_nrs_pollfd(const ir_nrs *s, struct pollfd *pf);
void ir_nrs_woken(ir_nrs *s);
void ir_nrs_trigger(ir_nrs *s, uint64_t now);
/* the last complete report (NULL: none yet) and its generation */
const ir_nr_report *ir_nrs_report(const ir_nrs *s, uint64_t *generation);
const char *ir_nrs_url(const ir_nrs *s, size_t i);
size_t ir_nrs_relays(const ir_nrs *s);
/* Tells the threads to stop (they are detached and free their own state; nothing waits
 * for a getaddrinfo) and closes the QAD connections; before the endpoint core is freed. */
void ir_nrs_free(ir_nrs *s, uint64_t now);

#endif
