/* iroh-c relay: an iroh-compatible relay server (plain HTTP, spec relay.md "local mode").
 * Prints "relay listening on http://IP:PORT" once it listens (and, with --metrics-listen,
 * "metrics listening on http://IP:PORT/metrics"); SIGINT/SIGTERM stop it (exit 0); SIGUSR1
 * prints a "relay stats: ..." line to stderr, as does the exit. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "apps/cmds.h"
#include "relay/server.h"

static ir_relay_server *volatile g_relay;

static void on_stop(int sig)
{
    (void)sig;
    ir_relay_server *s = g_relay;
    if (s)
        ir_relay_server_stop(s);
}

static void on_stats(int sig)
{
    (void)sig;
    ir_relay_server *s = g_relay;
    if (s)
        ir_relay_server_request_stats(s);
}

/* Access control (relay.md 2.4): --deny IDs are refused, with --allow only the listed
 * IDs get in, and with --token (or IROH_RELAY_ACCESS_TOKEN, which replaces the list) the
 * upgrade request must carry one of the tokens as "Authorization: Bearer". Every refusal
 * says "not authorized", as upstream. */
#define MAX_ACCESS 256
typedef struct access_lists {
    iroh_endpoint_id allow[MAX_ACCESS], deny[MAX_ACCESS];
    size_t nallow, ndeny;
    const char *tokens[MAX_ACCESS];
    size_t ntokens;
} access_lists;

static int in_list(const iroh_endpoint_id *list, size_t n, const iroh_endpoint_id *id)
{
    for (size_t i = 0; i < n; i++)
        if (iroh_endpoint_id_equal(&list[i], id))
            return 1;
    return 0;
}

static int check_access(void *ctx, const iroh_endpoint_id *id, int version, const char *token,
                        size_t token_len, const char **reason)
{
    const access_lists *a = ctx;
    (void)version;
    *reason = NULL;
    if (in_list(a->deny, a->ndeny, id))
        return 0;
    if (a->nallow && !in_list(a->allow, a->nallow, id))
        return 0;
    if (a->ntokens) {
        int ok = 0;
        for (size_t i = 0; i < a->ntokens && !ok; i++)
            ok = token && strlen(a->tokens[i]) == token_len &&
                 memcmp(a->tokens[i], token, token_len) == 0;
        return ok;
    }
    return 1;
}

/* seconds (a decimal number) to milliseconds; 0 on a bad value */
static uint32_t parse_secs(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v <= 0 || v > 86400)
        return 0;
    uint32_t msec = (uint32_t)(v * 1000 + 0.5);
    return msec ? msec : 1;
}

/* a byte count 1..4294967295; 0 on a bad value */
static uint32_t parse_bytes(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v == 0 || v > UINT32_MAX)
        return 0;
    return (uint32_t)v;
}

/* Thousands of clients need thousands of descriptors: take the hard limit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int cmd_relay(int argc, char **argv)
{
    ir_relay_server_config cfg;
    ir_relay_server_config_init(&cfg);
    static access_lists acl;
    memset(&acl, 0, sizeof acl);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        uint32_t *secs = NULL;
        if ((strcmp(a, "--allow") == 0 || strcmp(a, "--deny") == 0) && i + 1 < argc) {
            int allow = a[2] == 'a';
            iroh_endpoint_id *list = allow ? acl.allow : acl.deny;
            size_t *n = allow ? &acl.nallow : &acl.ndeny;
            if (*n == MAX_ACCESS)
                return cli_usage("relay: at most 256 ids per list%s", NULL);
            if (iroh_endpoint_id_parse(argv[++i], &list[*n]) != IROH_OK)
                return cli_usage("relay: '%s' is not an EndpointId", argv[i]);
            (*n)++;
            continue;
        }
        if (strcmp(a, "--token") == 0 && i + 1 < argc) {
            if (acl.ntokens == MAX_ACCESS || !*argv[i + 1])
                return cli_usage("relay: at most 256 non-empty tokens%s", NULL);
            acl.tokens[acl.ntokens++] = argv[++i];
            continue;
        }
        if (strcmp(a, "--listen") == 0 && i + 1 < argc) {
            cfg.listen = argv[++i];
            continue;
        }
        if ((strcmp(a, "--rate-limit") == 0 || strcmp(a, "--rate-burst") == 0) && i + 1 < argc) {
            uint32_t *field = a[7] == 'l' ? &cfg.rx_bytes_per_second : &cfg.rx_max_burst_bytes;
            if (!(*field = parse_bytes(argv[++i])))
                return cli_usage("relay: invalid number of bytes '%s'", argv[i]);
            continue;
        }
        if (strcmp(a, "--metrics-listen") == 0 && i + 1 < argc) {
            cfg.metrics_listen = argv[++i];
            continue;
        }
        if (strcmp(a, "--tls-cert") == 0 && i + 1 < argc) {
            cfg.tls_cert_file = argv[++i];
            continue;
        }
        if (strcmp(a, "--tls-key") == 0 && i + 1 < argc) {
            cfg.tls_key_file = argv[++i];
            continue;
        }
        if (strcmp(a, "--ping-interval") == 0)
            secs = &cfg.ping_interval_ms;
        else if (strcmp(a, "--header-timeout") == 0)
            secs = &cfg.header_timeout_ms;
        if (!secs || i + 1 >= argc)
            return cli_usage("relay: unexpected argument '%s'", a);
        if (!(*secs = parse_secs(argv[++i])))
            return cli_usage("relay: invalid number of seconds '%s'", argv[i]);
    }
    if (cfg.rx_max_burst_bytes && !cfg.rx_bytes_per_second)
        return cli_usage("relay: --rate-burst needs --rate-limit%s", NULL);
    const char *env_token = getenv("IROH_RELAY_ACCESS_TOKEN");
    if (env_token && *env_token) {
        acl.tokens[0] = env_token;
        acl.ntokens = 1;
    }
    if (acl.nallow || acl.ndeny || acl.ntokens) {
        cfg.access = check_access;
        cfg.access_ctx = &acl;
    }
    raise_fd_limit();
    ir_relay_server *srv;
    int rc = ir_relay_server_new(&cfg, &srv);
    if (rc != IROH_OK) {
        fprintf(stderr, "iroh-c: relay: %s\n", iroh_last_error());
        return 1;
    }
    g_relay = srv;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_stats;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    iroh_socket_addr local;
    char text[IROH_SOCKET_ADDR_LEN];
    ir_relay_server_local_addr(srv, &local);
    iroh_socket_addr_to_string(&local, text, sizeof text);
    printf("relay listening on %s://%s\n", cfg.tls_cert_file ? "https" : "http", text);
    if (ir_relay_server_metrics_addr(srv, &local)) {
        iroh_socket_addr_to_string(&local, text, sizeof text);
        printf("metrics listening on http://%s/metrics\n", text);
    }
    fflush(stdout);

    rc = ir_relay_server_run(srv);
    g_relay = NULL;
    ir_relay_server_stats st;
    char line[2048];
    ir_relay_server_get_stats(srv, &st);
    ir_relay_stats_format(&st, line, sizeof line);
    fprintf(stderr, "relay stats: %s\n", line);
    if (rc != IROH_OK)
        fprintf(stderr, "iroh-c: relay: %s\n", iroh_last_error());
    ir_relay_server_free(srv);
    return rc == IROH_OK ? 0 : 1;
}
