/* The seeded random source of the simulators (test_sim, test_sim_relay): xorshift64*,
 * the same sequence for the same seed on every run. */
#ifndef IR_TEST_SIM_RNG_H
#define IR_TEST_SIM_RNG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t sim_rng_next(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

static inline void sim_rng_fill(uint64_t *state, uint8_t *buf, size_t len)
{
    while (len) {
        uint64_t r = sim_rng_next(state);
        size_t n = len < 8 ? len : 8;
        memcpy(buf, &r, n);
        buf += n;
        len -= n;
    }
}

#endif
