/* OpenMetrics text: see openmetrics.h. */
#include "openmetrics.h"

#include <stdio.h>

int ir_openmetrics_format(const ir_metric *m, size_t n, char *buf, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(buf ? buf + (len < cap ? len : cap) : NULL, len < cap ? cap - len : 0,
                         "# HELP %s %s\n# TYPE %s %s\n%s%s %llu\n", m[i].name, m[i].help,
                         m[i].name, m[i].gauge ? "gauge" : "counter", m[i].name,
                         m[i].gauge ? "" : "_total", (unsigned long long)m[i].v);
        if (w < 0)
            return -1;
        len += (size_t)w;
    }
    int w = snprintf(buf ? buf + (len < cap ? len : cap) : NULL, len < cap ? cap - len : 0, "# EOF\n");
    if (w < 0)
        return -1;
    return (int)(len + (size_t)w);
}
