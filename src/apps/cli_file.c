/* Configuration files of the server commands (relay, dns-server): reading one whole and
 * printing the notes its parser left. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "apps/cmds.h"

int cli_read_config(const char *cmd, const char *path, char **text, size_t *len)
{
    enum { MAX_CONFIG = 1 << 20 };
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f && errno == ENOENT)
        return -1;
    char *buf = malloc(MAX_CONFIG + 1);
    size_t n = 0;
    if (f && buf) {
        n = fread(buf, 1, MAX_CONFIG + 1, f);
        if (ferror(f))
            n = (size_t)-1;
    }
    int err = errno;
    if (f)
        fclose(f);
    if (!f || !buf || n == (size_t)-1 || n > MAX_CONFIG) {
        fprintf(stderr, "iroh-c: %s: cannot read config file '%s': %s\n", cmd, path,
                !buf ? "out of memory" : n != (size_t)-1 && n > MAX_CONFIG ? "larger than 1 MiB" : strerror(err));
        free(buf);
        return EXIT_USAGE;
    }
    buf[n] = 0;
    *text = buf;
    *len = n;
    return 0;
}

void cli_print_notes(const char *cmd, const char *path, const char *notes)
{
    for (const char *l = notes; *l;) {
        const char *nl = strchr(l, '\n');
        int n = nl ? (int)(nl - l) : (int)strlen(l);
        fprintf(stderr, "iroh-c: %s: %s: %.*s\n", cmd, path, n, l);
        l += n + (nl != NULL);
    }
}

void cli_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}
