/* The net report's core (netreport.h): the probe plan, the report's update rules and the
 * preferred relay, as iroh's net_report, on the caller's clock. */
#include "endpoint/netreport.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { S_PLANNED, S_RUNNING, S_ANSWERED, S_FAILED, S_CANCELLED };

static void report_clear(ir_nr_report *r)
{
    memset(r, 0, sizeof *r);
    r->varies_v4 = r->varies_v6 = -1;
    r->preferred = -1;
    r->captive = -1;
}

void ir_nr_init(ir_nr *nr, const ir_nr_config *cfg)
{
    memset(nr, 0, sizeof *nr);
    nr->cfg = *cfg;
    if (nr->cfg.n_relays > IR_NR_MAX_RELAYS)
        nr->cfg.n_relays = IR_NR_MAX_RELAYS;
    report_clear(&nr->cur);
    report_clear(&nr->last);
    nr->want_run = 1;
    nr->full = 1;
}

static void plan(ir_nr *nr, int kind, int relay, uint64_t at)
{
    if (nr->nslots == IR_NR_MAX_PROBES)
        return;
    ir_nr_slot *s = &nr->slots[nr->nslots++];
    s->kind = kind;
    s->relay = relay;
    s->state = S_PLANNED;
    s->at = at;
}

static void start_run(ir_nr *nr, uint64_t now)
{
    nr->run++;
    nr->running = 1;
    nr->want_run = 0;
    nr->started = now;
    if (!nr->have_last || now - nr->last_full_at >= IR_NR_FULL_INTERVAL_NS)
        nr->full = 1;
    if (nr->full)
        nr->last_full_at = now;
    report_clear(&nr->cur);
    nr->nslots = 0;
    size_t nq = 0;
    for (size_t i = 0; i < nr->cfg.n_relays; i++) {
        if (!nr->cfg.qad[i] || nq == IR_NR_MAX_QAD_RELAYS)
            continue;
        nq++;
        if (nr->cfg.have_v4)
            plan(nr, IR_NR_QAD4, (int)i, now);
        if (nr->cfg.have_v6)
            plan(nr, IR_NR_QAD6, (int)i, now);
    }
    /* HTTPS: iroh's initial plan; with a last report that has latencies, none */
    if (nr->full || !nr->last_had_latency)
        for (size_t i = 0; i < nr->cfg.n_relays; i++)
            for (int k = 0; k < IR_NR_HTTPS_ATTEMPTS; k++)
                plan(nr, IR_NR_HTTPS, (int)i,
                     now + IR_NR_HTTPS_OFFSET_NS + (uint64_t)k * IR_NR_HTTPS_RETRANSMIT_NS);
    /* the captive portal: only without a last report (iroh) */
    if (nr->cfg.captive_check && !nr->have_last && nr->cfg.n_relays) {
        int r = nr->last.preferred >= 0 ? nr->last.preferred
                                        : (int)(nr->cfg.seed % nr->cfg.n_relays);
        plan(nr, IR_NR_CAPTIVE, r, now + IR_NR_CAPTIVE_DELAY_NS);
    }
    nr->full = 0;
}

/* the lowest latency of relay i in r (iroh's RelayLatencies::get); 0: none */
static uint64_t best_of(const ir_nr_report *r, size_t i)
{
    uint64_t b = 0;
    const uint64_t v[3] = {r->lat_https[i], r->lat_v4[i], r->lat_v6[i]};
    for (int k = 0; k < 3; k++)
        if (v[k] && (!b || v[k] < b))
            b = v[k];
    return b;
}

/* iroh's add_report_history_and_set_preferred_relay */
static void choose_preferred(ir_nr *nr, ir_nr_report *r, uint64_t now)
{
    int prev = nr->have_last ? nr->last.preferred : -1;
    if (nr->have_last) {
        if (r->varies_v4 < 0)
            r->varies_v4 = nr->last.varies_v4;
        if (r->varies_v6 < 0)
            r->varies_v6 = nr->last.varies_v6;
    }
    uint64_t recent[IR_NR_MAX_RELAYS];
    for (size_t i = 0; i < nr->cfg.n_relays; i++) {
        recent[i] = best_of(r, i);
        for (size_t h = 0; h < nr->nhist; h++) {
            if (now - nr->hist[h].at > IR_NR_HISTORY_NS)
                continue;
            uint64_t l = nr->hist[h].lat[i];
            if (l && (!recent[i] || l < recent[i]))
                recent[i] = l;
        }
    }
    r->preferred = -1;
    uint64_t best_any = 0, old_cur = 0;
    for (size_t i = 0; i < nr->cfg.n_relays; i++) {
        uint64_t cur = best_of(r, i);
        if (!cur)
            continue; /* only relays that answered in this report */
        if ((int)i == prev)
            old_cur = cur;
        if (r->preferred < 0 || recent[i] < best_any) {
            best_any = recent[i];
            r->preferred = (int)i;
        }
    }
    /* the old one still answers and the new one is not much better: stay */
    if (prev >= 0 && r->preferred != prev && old_cur && best_any > old_cur / 3 * 2)
        r->preferred = prev;
    /* this report joins the history */
    nr->hist[nr->hist_next].at = now;
    for (size_t i = 0; i < IR_NR_MAX_RELAYS; i++)
        nr->hist[nr->hist_next].lat[i] = i < nr->cfg.n_relays ? best_of(r, i) : 0;
    nr->hist_next = (nr->hist_next + 1) % IR_NR_HISTORY;
    if (nr->nhist < IR_NR_HISTORY)
        nr->nhist++;
}

static void finish_run(ir_nr *nr, uint64_t now)
{
    for (size_t i = 0; i < nr->nslots; i++)
        if (nr->slots[i].state <= S_RUNNING)
            nr->slots[i].state = S_CANCELLED;
    nr->running = 0;
    ir_nr_report r = nr->cur;
    choose_preferred(nr, &r, now);
    int had = nr->have_last;
    nr->last_had_latency = 0;
    for (size_t i = 0; i < nr->cfg.n_relays; i++)
        if (best_of(&r, i))
            nr->last_had_latency = 1;
    if (!had || memcmp(&r, &nr->last, sizeof r) != 0) {
        nr->generation++;
        nr->changed = 1;
    }
    nr->last = r;
    nr->have_last = 1;
    nr->next_run_at = now + IR_NR_INTERVAL_NS;
}

static int pending(const ir_nr *nr, int captive)
{
    for (size_t i = 0; i < nr->nslots; i++)
        if (nr->slots[i].state <= S_RUNNING && (nr->slots[i].kind == IR_NR_CAPTIVE) == captive)
            return 1;
    return 0;
}

/* ends the run when nothing is left to wait for; a captive check not yet started is
 * dropped once every other probe is over and UDP works (iroh's reportgen) */
static void maybe_finish(ir_nr *nr, uint64_t now)
{
    if (!nr->running || pending(nr, 0))
        return;
    if (nr->cur.udp_v4 || nr->cur.udp_v6)
        for (size_t i = 0; i < nr->nslots; i++)
            if (nr->slots[i].kind == IR_NR_CAPTIVE && nr->slots[i].state == S_PLANNED)
                nr->slots[i].state = S_CANCELLED;
    if (!pending(nr, 1))
        finish_run(nr, now);
}

uint64_t ir_nr_timeout(const ir_nr *nr)
{
    if (!nr->running)
        return nr->want_run ? 0 : nr->next_run_at;
    uint64_t t = nr->started + IR_NR_TIMEOUT_NS;
    for (size_t i = 0; i < nr->nslots; i++)
        if (nr->slots[i].state <= S_RUNNING && nr->slots[i].at < t)
            t = nr->slots[i].at;
    return t;
}

void ir_nr_handle_timeout(ir_nr *nr, uint64_t now)
{
    if (!nr->running) {
        if (nr->want_run || now >= nr->next_run_at)
            start_run(nr, now);
        return;
    }
    if (now - nr->started >= IR_NR_TIMEOUT_NS) {
        finish_run(nr, now);
        return;
    }
    for (size_t i = 0; i < nr->nslots; i++)
        if (nr->slots[i].state == S_RUNNING && now >= nr->slots[i].at)
            nr->slots[i].state = S_FAILED;
    maybe_finish(nr, now);
}

void ir_nr_trigger(ir_nr *nr, uint64_t now, int full)
{
    (void)now;
    nr->want_run = 1;
    if (full)
        nr->full = 1;
}

int ir_nr_next_probe(ir_nr *nr, uint64_t now, ir_nr_probe *p)
{
    if (!nr->running)
        return 0;
    for (size_t i = 0; i < nr->nslots; i++) {
        ir_nr_slot *s = &nr->slots[i];
        if (s->state != S_PLANNED || s->at > now)
            continue;
        if (s->kind == IR_NR_HTTPS && nr->cur.lat_https[s->relay]) {
            s->state = S_CANCELLED; /* an earlier attempt answered */
            continue;
        }
        s->state = S_RUNNING;
        s->at = now + (s->kind == IR_NR_CAPTIVE ? IR_NR_CAPTIVE_TIMEOUT_NS : IR_NR_PROBE_TIMEOUT_NS);
        p->id = (nr->run << 8) | (uint32_t)i;
        p->kind = s->kind;
        p->relay = s->relay;
        return 1;
    }
    return 0;
}

static ir_nr_slot *running_slot(ir_nr *nr, uint32_t id)
{
    size_t i = id & 0xff;
    if (!nr->running || (id >> 8) != (nr->run & 0xffffff) || i >= nr->nslots ||
        nr->slots[i].state != S_RUNNING)
        return NULL;
    return &nr->slots[i];
}

int ir_nr_probe_active(const ir_nr *nr, uint32_t id)
{
    return running_slot((ir_nr *)nr, id) != NULL;
}

static void update_latency(uint64_t *slot, uint64_t l)
{
    if (!l)
        l = 1; /* measured, if below the clock's resolution */
    if (!*slot || l < *slot)
        *slot = l;
}

void ir_nr_qad_result(ir_nr *nr, uint32_t id, const iroh_socket_addr *a, uint64_t rtt_ns,
                      uint64_t now)
{
    ir_nr_slot *s = running_slot(nr, id);
    if (!s || (s->kind != IR_NR_QAD4 && s->kind != IR_NR_QAD6))
        return;
    s->state = S_ANSWERED;
    ir_nr_report *r = &nr->cur;
    int v4 = s->kind == IR_NR_QAD4;
    /* iroh's Report::update: the latency counts, the address only of the probe's family */
    update_latency(v4 ? &r->lat_v4[s->relay] : &r->lat_v6[s->relay], rtt_ns);
    if (a->family == (v4 ? 4 : 6)) {
        int *udp = v4 ? &r->udp_v4 : &r->udp_v6;
        int *has = v4 ? &r->has_global_v4 : &r->has_global_v6;
        int *varies = v4 ? &r->varies_v4 : &r->varies_v6;
        iroh_socket_addr *g = v4 ? &r->global_v4 : &r->global_v6;
        *udp = 1;
        if (*has) {
            if (g->port == a->port && memcmp(g->ip, a->ip, v4 ? 4 : 16) == 0) {
                if (*varies < 0)
                    *varies = 0;
            } else {
                *varies = 1;
            }
        } else {
            *g = *a;
            *has = 1;
        }
    }
    maybe_finish(nr, now);
}

void ir_nr_https_result(ir_nr *nr, uint32_t id, uint64_t latency_ns, uint64_t now)
{
    ir_nr_slot *s = running_slot(nr, id);
    if (!s || s->kind != IR_NR_HTTPS)
        return;
    s->state = S_ANSWERED;
    update_latency(&nr->cur.lat_https[s->relay], latency_ns);
    /* the relay's later attempts are not needed */
    for (size_t i = 0; i < nr->nslots; i++)
        if (nr->slots[i].kind == IR_NR_HTTPS && nr->slots[i].relay == s->relay &&
            nr->slots[i].state == S_PLANNED)
            nr->slots[i].state = S_CANCELLED;
    maybe_finish(nr, now);
}

void ir_nr_captive_result(ir_nr *nr, uint32_t id, int portal, uint64_t now)
{
    ir_nr_slot *s = running_slot(nr, id);
    if (!s || s->kind != IR_NR_CAPTIVE)
        return;
    s->state = S_ANSWERED;
    nr->cur.captive = portal ? 1 : 0;
    maybe_finish(nr, now);
}

void ir_nr_probe_failed(ir_nr *nr, uint32_t id, uint64_t now)
{
    ir_nr_slot *s = running_slot(nr, id);
    if (!s)
        return;
    s->state = S_FAILED;
    maybe_finish(nr, now);
}

int ir_nr_running(const ir_nr *nr)
{
    return nr->running;
}

const ir_nr_report *ir_nr_get(const ir_nr *nr, uint64_t *generation)
{
    if (generation)
        *generation = nr->generation;
    return nr->generation ? &nr->last : NULL;
}

int ir_nr_take_changed(ir_nr *nr)
{
    int c = nr->changed;
    nr->changed = 0;
    return c;
}

/* ---- the captive-portal check's HTTP exchange ----------------------------------------- */

static void challenge(const char *host, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "ts_%s", host);
    if (n >= cap)
        n = cap - 1;
    if (n > 63)
        n = 63;
    out[n] = 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)out[i]) && out[i] != '.' && out[i] != '_' && out[i] != '-')
            out[i] = '-';
}

size_t ir_nr_captive_request(const char *host, uint16_t port, char *buf, size_t cap)
{
    char ch[80];
    challenge(host, ch, sizeof ch);
    int v6 = strchr(host, ':') != NULL;
    char authority[300];
    if (port)
        snprintf(authority, sizeof authority, v6 ? "[%s]:%u" : "%s:%u", host, port);
    else
        snprintf(authority, sizeof authority, v6 ? "[%s]" : "%s", host);
    int n = snprintf(buf, cap,
                     "GET /generate_204 HTTP/1.1\r\nHost: %s\r\nX-Iroh-Challenge: %s\r\n"
                     "User-Agent: iroh-c/" IROH_VERSION_STRING "\r\nConnection: close\r\n\r\n",
                     authority, ch);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

#define HEAD_MAX 4096

int ir_nr_captive_answer(const char *host, const uint8_t *data, size_t len, int eof)
{
    size_t end = 0;
    for (size_t i = 0; i + 4 <= len && i + 4 <= HEAD_MAX; i++) /* the head's end within 4 KiB */
        if (memcmp(data + i, "\r\n\r\n", 4) == 0) {
            end = i + 2; /* through the last header line's CRLF */
            break;
        }
    if (!end)
        return len >= HEAD_MAX || eof ? 1 : -1;
    /* status line: HTTP/1.x 204 */
    if (end < 12 || memcmp(data, "HTTP/1.", 7) != 0 || data[8] != ' ' ||
        memcmp(data + 9, "204", 3) != 0 || (end > 12 && data[12] != ' ' && data[12] != '\r'))
        return 1;
    char want[100];
    char ch[80];
    challenge(host, ch, sizeof ch);
    snprintf(want, sizeof want, "response %s", ch);
    size_t wl = strlen(want);
    static const char name[] = "x-iroh-response:";
    const size_t nl = sizeof name - 1;
    size_t i = 0;
    while (i < end && data[i] != '\n')
        i++;
    for (i++; i < end;) {
        size_t e = i;
        while (e < end && data[e] != '\r')
            e++;
        if (e - i > nl && strncasecmp((const char *)data + i, name, nl) == 0) {
            size_t v = i + nl;
            while (v < e && (data[v] == ' ' || data[v] == '\t'))
                v++;
            size_t ve = e;
            while (ve > v && (data[ve - 1] == ' ' || data[ve - 1] == '\t'))
                ve--;
            return !(ve - v == wl && memcmp(data + v, want, wl) == 0);
        }
        i = e + 2;
    }
    return 1; /* no response header */
}
