/* OpenMetrics text: see openmetrics.h. */
#include "openmetrics.h"

#include <stdio.h>
#include <string.h>

/* where the next piece goes: the rest of buf, or (sizing only, or buf full) nowhere */
static char *room_at(char *buf, size_t cap, size_t len, char *scratch, size_t *room)
{
    *room = buf && len < cap ? cap - len : 0;
    return *room ? buf + len : scratch;
}

int ir_openmetrics_format(const ir_metric *m, size_t n, char *buf, size_t cap)
{
    size_t len = 0, room;
    char scratch[1];
    for (size_t i = 0; i < n; i++) {
        /* a counter's name already ending in _total keeps it once (as iroh-metrics) */
        size_t nl = strlen(m[i].name);
        int has_total = nl >= 6 && strcmp(m[i].name + nl - 6, "_total") == 0;
        char *dst = room_at(buf, cap, len, scratch, &room);
        int w = snprintf(dst, room, "# HELP %s %s\n# TYPE %s %s\n%s%s %llu\n", m[i].name, m[i].help,
                         m[i].name, m[i].gauge ? "gauge" : "counter", m[i].name,
                         m[i].gauge || has_total ? "" : "_total", (unsigned long long)m[i].v);
        if (w < 0)
            return -1;
        len += (size_t)w;
    }
    char *dst = room_at(buf, cap, len, scratch, &room);
    int w = snprintf(dst, room, "# EOF\n");
    if (w < 0)
        return -1;
    return (int)(len + (size_t)w);
}
