/* PUTs per client IP: iroh-dns-server's governor settings (burst 2, one more every 4 s) as
 * a GCRA per address in a bounded, keyed table. See core.h. */
#include <stdlib.h>
#include <string.h>

#include "base/blake3.h"
#include "core.h"

int ir_dnss_rl_new(int mode, uint32_t burst, uint32_t period_ms, ir_dnss_rl **out)
{
    *out = NULL;
    if (mode == IR_DNSS_RATE_DISABLED)
        return IROH_OK;
    ir_dnss_rl *rl = calloc(1, sizeof *rl);
    if (!rl)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    rl->mode = mode;
    rl->burst = burst ? burst : 2;
    rl->period_ns = (uint64_t)(period_ms ? period_ms : 4000) * 1000000ULL;
    ir_random_bytes(NULL, rl->hkey, sizeof rl->hkey);
    *out = rl;
    return IROH_OK;
}

/* IPv6 clients count by their /64: one host has that many addresses. */
static void client_key(const uint8_t ip[16], uint8_t k[16])
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(k, ip, 16);
    if (memcmp(ip, v4mapped, 12) != 0)
        memset(k + 8, 0, 8);
}

int ir_dnss_rl_allow(ir_dnss_rl *rl, const uint8_t ip[16], uint64_t now_ns)
{
    if (!rl)
        return 1;
    uint8_t k[16], h[8];
    client_key(ip, k);
    ir_blake3 b;
    ir_blake3_init_keyed(&b, rl->hkey);
    ir_blake3_update(&b, k, sizeof k);
    ir_blake3_finalize(&b, h, sizeof h);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    rl_entry *set = rl->e[v % RL_SETS], *e = NULL, *spare = NULL, *oldest = &set[0];
    for (int i = 0; i < RL_WAYS && !e; i++) {
        if (set[i].seen_ns && memcmp(set[i].ip, k, 16) == 0)
            e = &set[i];
        else if (!spare && set[i].tat_ns <= now_ns)
            spare = &set[i]; /* free, or owes nothing */
        else if (set[i].seen_ns < oldest->seen_ns)
            oldest = &set[i];
    }
    if (!e) {
        e = spare ? spare : oldest;
        memcpy(e->ip, k, 16);
        e->tat_ns = 0;
    }
    e->seen_ns = now_ns ? now_ns : 1;
    uint64_t tat = e->tat_ns > now_ns ? e->tat_ns : now_ns;
    if (tat - now_ns > (uint64_t)(rl->burst - 1) * rl->period_ns)
        return 0;
    e->tat_ns = tat + rl->period_ns;
    return 1;
}
