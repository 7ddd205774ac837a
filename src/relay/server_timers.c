/* The relay server core's timers: each connection's deadlines (c->t[]) and one binary heap
 * over the earliest of them; ir_relay_core_on_timeout acts on the expired ones. */
#include "server_core.h"

#include <stdlib.h>

int ir_rs_heap_reserve(ir_relay_core *core, size_t n)
{
    if (core->heap_cap < n) {
        size_t cap = core->heap_cap ? core->heap_cap * 2 : 64;
        ir_relay_conn **h = realloc(core->heap, cap * sizeof *h);
        if (!h)
            return -1;
        core->heap = h;
        core->heap_cap = cap;
    }
    return 0;
}

static void heap_set(ir_relay_core *core, size_t i, ir_relay_conn *c)
{
    core->heap[i] = c;
    c->heap_idx = i;
}

static void heap_up(ir_relay_core *core, size_t i)
{
    ir_relay_conn *c = core->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (core->heap[parent]->deadline <= c->deadline)
            break;
        heap_set(core, i, core->heap[parent]);
        i = parent;
    }
    heap_set(core, i, c);
}

static void heap_down(ir_relay_core *core, size_t i)
{
    ir_relay_conn *c = core->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        uint64_t md = c->deadline;
        if (l < core->heap_n && core->heap[l]->deadline < md) {
            m = l;
            md = core->heap[l]->deadline;
        }
        if (r < core->heap_n && core->heap[r]->deadline < md)
            m = r;
        if (m == i)
            break;
        heap_set(core, i, core->heap[m]);
        i = m;
    }
    heap_set(core, i, c);
}

void ir_rs_heap_remove(ir_relay_core *core, ir_relay_conn *c)
{
    size_t i = c->heap_idx;
    if (i == NPOS)
        return;
    c->heap_idx = NPOS;
    ir_relay_conn *last = core->heap[--core->heap_n];
    if (i == core->heap_n)
        return;
    heap_set(core, i, last);
    heap_up(core, i);
    heap_down(core, last->heap_idx);
}

/* Recomputes c's deadline from its timers and places it in the heap (whose capacity was
 * reserved when the connection was accepted). */
void ir_rs_reschedule(ir_relay_core *core, ir_relay_conn *c)
{
    uint64_t d = 0;
    for (int i = 0; i < T_COUNT; i++)
        if (c->t[i] && (!d || c->t[i] < d))
            d = c->t[i];
    if (!d) {
        ir_rs_heap_remove(core, c);
        c->deadline = 0;
        return;
    }
    if (c->heap_idx == NPOS) {
        c->deadline = d;
        heap_set(core, core->heap_n++, c);
        heap_up(core, c->heap_idx);
    } else if (d != c->deadline) {
        uint64_t old = c->deadline;
        c->deadline = d;
        if (d < old)
            heap_up(core, c->heap_idx);
        else
            heap_down(core, c->heap_idx);
    }
}

uint64_t ir_relay_core_next_timeout(const ir_relay_core *core)
{
    return core->heap_n ? core->heap[0]->deadline : 0;
}

static int expired(const ir_relay_conn *c, int t, uint64_t now)
{
    return c->t[t] && c->t[t] <= now;
}

void ir_relay_core_on_timeout(ir_relay_core *core, uint64_t now)
{
    core->now = now;
    while (core->heap_n && core->heap[0]->deadline <= now) {
        ir_relay_conn *c = core->heap[0];
        if (expired(c, T_WRITE, now)) {
            core->st.write_timeouts++;
            ir_rs_conn_close(core, c, now, "write timeout");
        } else if (expired(c, T_HEAD, now)) {
            if (c->http_started)
                core->st.header_timeouts++;
            ir_rs_conn_close(core, c, now, c->http_started ? "request header timeout" : "idle");
        } else if (expired(c, T_HANDSHAKE, now)) {
            core->st.handshake_timeouts++;
            core->st.handshake_failures++;
            ir_rs_conn_close(core, c, now, "handshake timeout");
        } else if (expired(c, T_LINGER, now)) {
            ir_rs_conn_close(core, c, now, "finished");
        } else if (expired(c, T_PONG, now)) {
            core->st.pong_timeouts++;
            ir_rs_conn_close(core, c, now, "pong timeout");
        } else if (expired(c, T_PING, now)) {
            ir_rs_send_ping(core, c, now);
        } else if (expired(c, T_RATE, now)) {
            ir_rs_rl_timer(core, c, now);
        }
        if (c->state == CS_CLOSED)
            continue;
        ir_rs_reschedule(core, c);
        if (c->deadline && c->deadline <= now) /* cannot happen; never spin */
            ir_rs_conn_close(core, c, now, "timer");
    }
}
