/* Throughput of ir_blake3_hash: a 16 MiB buffer (MB/s) and 64-byte inputs (hashes/s).
 * Each measurement repeats for about one second. */
#include "base/blake3.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void)
{
    const size_t big = (size_t)16 << 20;
    uint8_t *buf = malloc(big);
    uint8_t out[IR_BLAKE3_OUT_LEN];
    unsigned sink = 0; /* uses the results */
    if (!buf) return 1;
    for (size_t i = 0; i < big; i++) buf[i] = (uint8_t)(i % 251);

    /* Large input. */
    ir_blake3_hash(buf, big, out); /* warm up */
    double t0 = now(), t;
    unsigned long reps = 0;
    do {
        ir_blake3_hash(buf, big, out);
        sink += out[0];
        reps++;
        t = now() - t0;
    } while (t < 1.0);
    printf("blake3 16 MiB: %.1f MB/s (%lu runs in %.2f s)\n",
           (double)big * (double)reps / t / 1e6, reps, t);

    /* Small inputs: check the clock every 4096 hashes. */
    reps = 0;
    t0 = now();
    do {
        for (int i = 0; i < 4096; i++) {
            buf[0] = (uint8_t)reps; /* vary the input */
            ir_blake3_hash(buf, 64, out);
            sink += out[0];
            reps++;
        }
        t = now() - t0;
    } while (t < 1.0);
    printf("blake3 64 B:   %.0f hashes/s (%.1f MB/s, %.0f ns/hash)\n", (double)reps / t,
           64.0 * (double)reps / t / 1e6, t / (double)reps * 1e9);

    free(buf);
    return (int)(sink & 0);
}
