/* Counters and gauges as OpenMetrics text (what Prometheus scrapes), shared by the relay
 * server's and the DNS server's metrics listeners. */
#ifndef IR_RELAY_OPENMETRICS_H
#define IR_RELAY_OPENMETRICS_H

#include <stddef.h>
#include <stdint.h>

/* One metric family: counters get the sample suffix "_total". */
typedef struct ir_metric {
    const char *name, *help;
    int gauge;
    uint64_t v;
} ir_metric;

/* Writes "# HELP / # TYPE / sample" for each metric and the final "# EOF" line, snprintf
 * style: returns the length of the whole text (buf may be NULL with cap 0), or -1. */
int ir_openmetrics_format(const ir_metric *m, size_t n, char *buf, size_t cap);

#endif
