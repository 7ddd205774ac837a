/* The relay server's receive rate limiter (spec relay.md 3.5): a token bucket per upgraded
 * connection, refilled every 100 ms on the caller's clock; a client that empties it is not
 * read from until the next refill (backpressure, nothing dropped). */
#include "server_core.h"

/* The rate limiter's refill period (spec 3.5: upstream refills every 100 ms). */
#define RL_TICK (100 * NS_PER_MS)

/* The limit applies to the upgraded stream (WebSocket frames), as upstream's. */
int ir_rs_rl_applies(const ir_relay_conn *c)
{
    return c->rl_on && (c->state == CS_AUTH || c->state == CS_RELAY);
}

int ir_rs_rl_holding(const ir_relay_conn *c)
{
    return ir_rs_rl_applies(c) && c->rl_tokens <= 0;
}

void ir_rs_rl_start(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    if (!core->rl_rate)
        return;
    c->rl_on = 1;
    c->rl_tokens = (int64_t)core->rl_burst;
    c->rl_tick_at = now;
}

/* Adds the tokens of the ticks since the last one, up to the bucket's size. */
static void rl_refill(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    if (now < c->rl_tick_at + RL_TICK)
        return;
    uint64_t ticks = (now - c->rl_tick_at) / RL_TICK;
    c->rl_tick_at += ticks * RL_TICK;
    if (c->rl_tokens > 0)
        c->rl_held = 0; /* the bucket lasted a whole period: not held back any more */
    if (ticks > 1000)
        ticks = 1000; /* 100 s: more than any bucket holds */
    uint64_t add = core->rl_rate * ticks / 10;
    if (!add)
        add = ticks;
    int64_t t = c->rl_tokens + (int64_t)add;
    if (t > (int64_t)core->rl_burst)
        t = (int64_t)core->rl_burst;
    c->rl_tokens = t;
}

/* len bytes are about to be read; 1 if this empties the bucket (the client is held back). */
int ir_rs_rl_take(ir_relay_core *core, ir_relay_conn *c, size_t len, uint64_t now)
{
    rl_refill(core, c, now);
    if (c->rl_held)
        core->st.bytes_rx_ratelimited += len;
    c->rl_tokens -= len > INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)len;
    if (c->rl_tokens > 0)
        return 0;
    c->rl_held = 1;
    if (!c->rl_counted) {
        c->rl_counted = 1;
        core->st.conns_rx_ratelimited++;
    }
    c->t[T_RATE] = c->rl_tick_at + RL_TICK;
    return 1;
}

/* The refill timer of a held-back client. */
void ir_rs_rl_timer(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    rl_refill(core, c, now);
    if (c->rl_tokens > 0) {
        c->t[T_RATE] = 0;
        ir_rs_mark_changed(core, c); /* readable again */
    } else {
        c->t[T_RATE] = c->rl_tick_at + RL_TICK;
    }
}

size_t ir_relay_conn_read_max(const ir_relay_conn *c)
{
    if (!ir_rs_rl_applies(c))
        return SIZE_MAX;
    return c->rl_tokens > 0 ? (size_t)c->rl_tokens : 0;
}
