/* The net report's core, sans-IO (iroh's net_report: report.rs, probes.rs, reportgen.rs,
 * read at n0-computer/iroh a05c9c4): which probes a report runs and when, what each
 * result changes in the report, when a report is complete, and the preferred relay.
 * The caller (netreport_shell.c on the endpoint's I/O thread, or a test on a virtual
 * clock) runs the probes and passes results and the time in; nothing here opens a
 * socket, starts a thread or reads a clock.
 *
 * A report run plans, per relay (at most IR_NR_MAX_RELAYS):
 *  - QAD over IPv4 and over IPv6 at once (QUIC address discovery, relays that serve it,
 *    the first IR_NR_MAX_QAD_RELAYS, families the endpoint has a socket of): the public
 *    address the relay sees and the connection's round trip;
 *  - HTTPS latency: GET <relay>/ping at 200, 300, 400 ms (a later attempt only when no
 *    earlier one answered), the whole request timed (iroh's probe plan);
 *  - once, in the first report: the captive-portal check at 200 ms against one relay.
 * Each probe gives up after 3 s (the captive check after 2 s), the run after 5 s. Later
 * runs (every IR_NR_INTERVAL_NS, or at once after ir_nr_trigger) probe QAD only, as
 * iroh's plan with a last report; every 5 minutes a run is full again (HTTPS too). */
#ifndef IR_ENDPOINT_NETREPORT_H
#define IR_ENDPOINT_NETREPORT_H

#include <stddef.h>
#include <stdint.h>

#include "iroh.h"

#define IR_NR_MAX_RELAYS 8
#define IR_NR_MAX_QAD_RELAYS 5 /* iroh's MAX_RELAYS for QAD probes */
#define IR_NR_MS 1000000ull
#define IR_NR_TIMEOUT_NS (5000 * IR_NR_MS)          /* a whole run */
#define IR_NR_PROBE_TIMEOUT_NS (3000 * IR_NR_MS)    /* one probe */
#define IR_NR_HTTPS_OFFSET_NS (200 * IR_NR_MS)      /* first HTTPS attempt */
#define IR_NR_HTTPS_RETRANSMIT_NS (100 * IR_NR_MS)  /* between attempts */
#define IR_NR_HTTPS_ATTEMPTS 3
#define IR_NR_CAPTIVE_DELAY_NS (200 * IR_NR_MS)
#define IR_NR_CAPTIVE_TIMEOUT_NS (2000 * IR_NR_MS)
#define IR_NR_INTERVAL_NS (60000 * IR_NR_MS)         /* between runs */
#define IR_NR_FULL_INTERVAL_NS (300000 * IR_NR_MS)   /* between full runs */
#define IR_NR_HISTORY_NS (300000 * IR_NR_MS)         /* latencies kept for the preference */
#define IR_NR_HISTORY 8

enum { IR_NR_QAD4 = 1, IR_NR_QAD6, IR_NR_HTTPS, IR_NR_CAPTIVE };

typedef struct ir_nr_config {
    size_t n_relays;
    int qad[IR_NR_MAX_RELAYS]; /* 1: the relay serves QUIC address discovery (https) */
    int have_v4, have_v6;      /* the endpoint has a socket of that family */
    int captive_check;         /* run the captive-portal check in the first report */
    uint32_t seed;             /* picks the captive check's relay when none is preferred */
} ir_nr_config;

/* iroh's Report. Latencies in ns, 0: none measured. -1: unknown (iroh's None). */
typedef struct ir_nr_report {
    int udp_v4, udp_v6;
    int varies_v4, varies_v6; /* mapping_varies_by_dest_ipv4 / _ipv6 */
    int has_global_v4, has_global_v6;
    iroh_socket_addr global_v4, global_v6;
    int preferred; /* relay index, -1: none */
    uint64_t lat_v4[IR_NR_MAX_RELAYS], lat_v6[IR_NR_MAX_RELAYS], lat_https[IR_NR_MAX_RELAYS];
    int captive; /* captive_portal */
} ir_nr_report;

/* what the caller is asked to run */
typedef struct ir_nr_probe {
    uint32_t id; /* pass back with the result */
    int kind;    /* IR_NR_QAD4 ... */
    int relay;
} ir_nr_probe;

#define IR_NR_MAX_PROBES (IR_NR_MAX_RELAYS * (2 + IR_NR_HTTPS_ATTEMPTS) + 1)

typedef struct ir_nr_slot {
    int kind, relay;
    int state; /* 0 planned, 1 running, 2 answered, 3 failed, 4 cancelled */
    uint64_t at; /* planned: start time; running: deadline */
} ir_nr_slot;

typedef struct ir_nr {
    ir_nr_config cfg;
    uint32_t run; /* the current run's number (in probe ids) */
    int running, full, want_run;
    uint64_t started, next_run_at, last_full_at;
    ir_nr_slot slots[IR_NR_MAX_PROBES];
    size_t nslots;
    ir_nr_report cur;  /* being gathered */
    ir_nr_report last; /* the last complete one */
    uint64_t generation; /* 0: no report yet; +1 each time a complete one differs */
    int changed;         /* ir_nr_take_changed */
    int have_last, last_had_latency;
    struct {
        uint64_t at;
        uint64_t lat[IR_NR_MAX_RELAYS];
    } hist[IR_NR_HISTORY];
    size_t nhist, hist_next;
} ir_nr;

void ir_nr_init(ir_nr *nr, const ir_nr_config *cfg);
/* The next time ir_nr_handle_timeout wants to run (UINT64_MAX: never); the first run is
 * due at once. */
uint64_t ir_nr_timeout(const ir_nr *nr);
/* Starts a run when one is due, gives up probes past their deadline, ends the run when
 * it is complete or at 5 s. */
void ir_nr_handle_timeout(ir_nr *nr, uint64_t now);
/* A run as soon as possible (a network change); a full one when full. */
void ir_nr_trigger(ir_nr *nr, uint64_t now, int full);
/* The next probe to start now: 1 and *p (it is then running), 0 when none is due. */
int ir_nr_next_probe(ir_nr *nr, uint64_t now, ir_nr_probe *p);
/* 1 while the probe is still wanted (running in the current run); a caller stops and
 * forgets a probe for which this says 0. */
int ir_nr_probe_active(const ir_nr *nr, uint32_t id);
/* Results; those of probes that are not running (late, cancelled, another run) are
 * ignored. A QAD address of the other family is ignored too (iroh warns). */
void ir_nr_qad_result(ir_nr *nr, uint32_t id, const iroh_socket_addr *observed,
                      uint64_t rtt_ns, uint64_t now);
void ir_nr_https_result(ir_nr *nr, uint32_t id, uint64_t latency_ns, uint64_t now);
void ir_nr_captive_result(ir_nr *nr, uint32_t id, int portal, uint64_t now);
void ir_nr_probe_failed(ir_nr *nr, uint32_t id, uint64_t now);
int ir_nr_running(const ir_nr *nr);
/* The last complete report: NULL before the first one; *generation (may be NULL) */
const ir_nr_report *ir_nr_get(const ir_nr *nr, uint64_t *generation);
/* 1 once after a complete report that differs from the one before (or is the first) */
int ir_nr_take_changed(ir_nr *nr);

/* The captive-portal check's HTTP exchange (iroh's check_captive_portal): the request
 * for host (port 0: none in the Host header) into buf, with the challenge "ts_<host>"
 * (characters outside [A-Za-z0-9._-] written as '-', at most 63); returns its length,
 * or 0 when buf is too small. */
size_t ir_nr_captive_request(const char *host, uint16_t port, char *buf, size_t cap);
/* The answer read so far (the head is enough): -1 incomplete, 0 no captive portal (204
 * and "X-Iroh-Response: response <challenge>"), 1 a captive portal (any other status or
 * response, or a head over 4 KiB). */
int ir_nr_captive_answer(const char *host, const uint8_t *data, size_t len, int eof);

#endif
