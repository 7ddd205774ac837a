/* iroh-c relay: an iroh-compatible relay server (plain HTTP, spec relay.md "local mode",
 * or HTTPS), run as iroh-relay is: --dev, -c/--config-path FILE with its TOML keys.
 * Prints "relay listening on http://IP:PORT" once it listens (and, with --metrics-listen,
 * "metrics listening on http://IP:PORT/metrics"; next to HTTPS "captive portal check on
 * http://IP:PORT/generate_204"); SIGINT/SIGTERM stop it cleanly (exit
 * 130/143, as every iroh-c command; a second one exits at once); SIGUSR1 prints a
 * "relay stats: ..." line to stderr, as does the exit. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "apps/cmds.h"
#include "relay/config.h"
#include "endpoint/qad.h"
#include "relay/server.h"
#include <pthread.h>

static ir_relay_server *volatile g_relay;
static ir_qad_server *volatile g_qad;
static volatile sig_atomic_t g_signo;

static void on_stop(int sig)
{
    if (g_signo)
        _exit(128 + sig); /* the second: at once */
    g_signo = sig;
    ir_relay_server *s = g_relay;
    if (s)
        ir_relay_server_stop(s);
    ir_qad_server *q = g_qad;
    if (q)
        ir_qad_server_stop(q);
}

static void *qad_thread(void *arg)
{
    ir_qad_server_run(arg);
    return NULL;
}

/* The address discovery thread takes no signals: they all go to the main thread, whose
 * handlers stop both servers. */
static int start_qad_thread(pthread_t *th, ir_qad_server *qad)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(th, NULL, qad_thread, qad);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
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
 * upgrade request must carry one of the tokens as "Authorization: Bearer". The config
 * file's `access` fills the same lists unless the command line gives any of them. Every
 * refusal says "not authorized", as upstream. */
#define MAX_ACCESS 256
typedef struct access_lists {
    const iroh_endpoint_id *allow, *deny;
    size_t nallow, ndeny;
    const char *const *tokens;
    size_t ntokens;
    int nobody; /* an empty allowlist or token list in the config file */
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
    if (a->nobody)
        return 0;
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

/* Reads and parses the config file into *fc. A missing file gives the defaults (upstream
 * does the same), said on stderr. 0, or the exit status for an error (said on stderr). */
static int load_config(const char *path, ir_relay_file_config *fc)
{
    char *text;
    size_t n;
    int st = cli_read_config("relay", path, &text, &n);
    if (st < 0) {
        fprintf(stderr, "iroh-c: relay: config file '%s' does not exist; using the defaults\n", path);
        ir_relay_file_config_parse("", 0, fc);
        return 0;
    }
    if (st) {
        ir_relay_file_config_parse("", 0, fc);
        return st;
    }
    int rc = ir_relay_file_config_parse(text, n, fc);
    free(text);
    if (rc != IROH_OK) {
        fprintf(stderr, "iroh-c: relay: %s: %s\n", path, fc->error);
        return 2;
    }
    cli_print_notes("relay", path, fc->notes);
    return 0;
}

/* whether this host has IPv6 (for --dev's [::]:3340) */
static int have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

/* "IP:PORT" of addr's IP (or the default listen address's) with another port. */
static const char *with_port(const char *addr, uint16_t port, char *buf, size_t cap)
{
    iroh_socket_addr a;
    if (iroh_socket_addr_parse(addr ? addr : IR_RELAY_DEFAULT_LISTEN, &a) != IROH_OK)
        iroh_socket_addr_parse(IR_RELAY_DEFAULT_LISTEN, &a);
    a.port = port;
    iroh_socket_addr_to_string(&a, buf, cap);
    return buf;
}

static const char USAGE_RELAY[] =
    "usage: iroh-c relay [options]\n"
    "\n"
    "Runs an iroh relay server: plain HTTP (iroh's local mode) or, with --tls-cert and\n"
    "--tls-key, HTTPS (then also QUIC address discovery on UDP 7842, and the captive-portal\n"
    "check on plain HTTP port 80 when it can be had). Prints \"relay listening on URL\"\n"
    "once it listens; serves until SIGINT or SIGTERM (exit 130, 143); SIGUSR1 prints its\n"
    "counters on stderr.\n"
    "\n"
    "options:\n"
    "  --dev                     as iroh-relay --dev: plain HTTP on [::]:3340 (or the\n"
    "                            file's http_bind_addr), metrics on port 9090 when free;\n"
    "                            a certificate serves only QUIC address discovery\n"
    "  -c, --config-path FILE    iroh-relay's TOML configuration (options win; unknown\n"
    "                            keys are an error); --config FILE is the same\n"
    "  --listen IP:PORT          where to listen (default 127.0.0.1:3340)\n"
    "  --tls-cert PEM --tls-key PEM\n"
    "                            serve HTTPS with this certificate and key\n"
    "  --http-listen IP:PORT     with HTTPS: the plain-HTTP captive-portal check\n"
    "                            (/generate_204) here (default: port 80 if free)\n"
    "  --qad-listen IP:PORT      QUIC address discovery here (default: the relay's IP,\n"
    "                            UDP 7842); --no-qad: none\n"
    "  --metrics-listen IP:PORT  Prometheus metrics on a separate plain-HTTP port\n"
    "  --allow ID, --deny ID     admit only / refuse these EndpointIds (repeatable)\n"
    "  --token TOKEN             admit only clients with this Bearer token (repeatable;\n"
    "                            IROH_RELAY_ACCESS_TOKEN replaces the list)\n"
    "  --rate-limit BYTES_PER_SEC [--rate-burst BYTES]\n"
    "                            limit what each client may send (burst: rate/10)\n"
    "  --ping-interval SECS      keepalive ping interval\n"
    "  --header-timeout SECS     time a client has to send its HTTP request\n";

int cmd_relay(int argc, char **argv)
{
    ir_relay_server_config cfg;
    ir_relay_server_config_init(&cfg);
    static access_lists acl;
    static iroh_endpoint_id allow[MAX_ACCESS], deny[MAX_ACCESS];
    static const char *tokens[MAX_ACCESS];
    size_t nallow = 0, ndeny = 0, ntokens = 0;
    memset(&acl, 0, sizeof acl);
    /* the command line, applied over the config file below */
    const char *config_path = NULL, *listen = NULL, *metrics = NULL, *cert = NULL, *key = NULL;
    const char *qad_listen = NULL, *http_listen = NULL;
    int no_qad = 0, qad_on = 0, qad_explicit = 0, dev = 0;
    uint32_t rate = 0, burst = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        uint32_t *secs = NULL;
        int r;
        if (cli_is_help(a)) {
            fputs(USAGE_RELAY, stdout);
            return 0;
        }
        if ((r = cli_opt(argc, argv, &i, "--allow", &v)) != 0 ||
            (r = cli_opt(argc, argv, &i, "--deny", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            int is_allow = a[2] == 'a';
            iroh_endpoint_id *list = is_allow ? allow : deny;
            size_t *n = is_allow ? &nallow : &ndeny;
            if (*n == MAX_ACCESS)
                return cli_usage("relay: at most 256 ids per list%s", NULL);
            if (iroh_endpoint_id_parse(v, &list[*n]) != IROH_OK)
                return cli_usage("relay: '%s' is not an EndpointId", v);
            (*n)++;
            continue;
        }
        if (strcmp(a, "--no-qad") == 0) {
            no_qad = 1;
            continue;
        }
        if (strcmp(a, "--dev") == 0) {
            dev = 1;
            continue;
        }
        if (strncmp(a, "--config-path=", 14) == 0 || strncmp(a, "--config=", 9) == 0) {
            config_path = strchr(a, '=') + 1;
            if (!*config_path)
                return cli_usage("relay: %s needs a file", a);
            continue;
        }
        if ((r = cli_opt(argc, argv, &i, "--token", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            if (ntokens == MAX_ACCESS || !*v)
                return cli_usage("relay: at most 256 non-empty tokens%s", NULL);
            tokens[ntokens++] = v;
            continue;
        }
        const char **text = strcmp(a, "--listen") == 0           ? &listen
                            : strcmp(a, "--metrics-listen") == 0 ? &metrics
                            : strcmp(a, "--tls-cert") == 0       ? &cert
                            : strcmp(a, "--tls-key") == 0        ? &key
                            : strcmp(a, "--config") == 0         ? &config_path
                            : strcmp(a, "--config-path") == 0    ? &config_path
                            : strcmp(a, "-c") == 0               ? &config_path
                            : strcmp(a, "--http-listen") == 0    ? &http_listen
                            : strcmp(a, "--qad-listen") == 0     ? &qad_listen
                                                                 : NULL;
        if (text) {
            if (cli_opt(argc, argv, &i, a, text) < 0)
                return EXIT_USAGE;
            continue;
        }
        if (strcmp(a, "--rate-limit") == 0 || strcmp(a, "--rate-burst") == 0) {
            uint32_t *field = a[7] == 'l' ? &rate : &burst;
            if (cli_opt(argc, argv, &i, a, &v) < 0)
                return EXIT_USAGE;
            if (!(*field = parse_bytes(v)))
                return cli_usage("relay: invalid number of bytes '%s' (1 to 4294967295)", v);
            continue;
        }
        if (strcmp(a, "--ping-interval") == 0)
            secs = &cfg.ping_interval_ms;
        else if (strcmp(a, "--header-timeout") == 0)
            secs = &cfg.header_timeout_ms;
        if (!secs)
            return cli_usage("relay: unexpected argument '%s'", a);
        if (cli_opt(argc, argv, &i, a, &v) < 0)
            return EXIT_USAGE;
        if (!(*secs = parse_secs(v)))
            return cli_usage("relay: invalid number of seconds '%s' (more than 0, at most 86400)", v);
    }

    /* the config file (upstream's keys; see src/relay/config.h) */
    static ir_relay_file_config fc;
    static char listen_buf[IROH_SOCKET_ADDR_LEN], metrics_buf[IROH_SOCKET_ADDR_LEN];
    static char cert_buf[4096], key_buf[4096], captive_buf[IROH_SOCKET_ADDR_LEN];
    int captive_file = 0;
    if (config_path) {
        int st = load_config(config_path, &fc);
        if (st) {
            ir_relay_file_config_free(&fc);
            return st;
        }
        if (fc.tls) {
            /* all relay services on the HTTPS address (upstream then serves only the
             * captive portal on http_bind_addr, which we do not) */
            cfg.listen = fc.https_bind_addr ? fc.https_bind_addr
                                            : with_port(fc.http_bind_addr, 443, listen_buf, sizeof listen_buf);
            const char *dir = fc.cert_dir ? fc.cert_dir : ".";
            if (fc.manual_cert_path)
                cfg.tls_cert_file = fc.manual_cert_path;
            else if (snprintf(cert_buf, sizeof cert_buf, "%s/default.crt", dir) < (int)sizeof cert_buf)
                cfg.tls_cert_file = cert_buf;
            if (fc.manual_key_path)
                cfg.tls_key_file = fc.manual_key_path;
            else if (snprintf(key_buf, sizeof key_buf, "%s/default.key", dir) < (int)sizeof key_buf)
                cfg.tls_key_file = key_buf;
            /* upstream then serves only the captive-portal check on http_bind_addr
             * (default: port 80); --dev (below) serves everything there instead */
            captive_file = 1;
        } else if (fc.http_bind_addr) {
            cfg.listen = fc.http_bind_addr;
        }
        if (fc.enable_metrics)
            cfg.metrics_listen = fc.metrics_bind_addr
                                     ? fc.metrics_bind_addr
                                     : with_port(fc.http_bind_addr, 9090, metrics_buf, sizeof metrics_buf);
        if (fc.enable_qad && !fc.tls) {
            fprintf(stderr, "iroh-c: relay: %s: enable_quic_addr_discovery needs a [tls] section\n",
                    config_path);
            ir_relay_file_config_free(&fc);
            return 2;
        }
        if (fc.enable_qad) {
            qad_explicit = 1;
            if (!qad_listen && fc.quic_bind_addr)
                qad_listen = fc.quic_bind_addr;
        }
        cfg.rx_bytes_per_second = fc.rx_bytes_per_second;
        cfg.rx_max_burst_bytes = fc.rx_max_burst_bytes;
        if (fc.access == IR_RELAY_ACCESS_ALLOWLIST) {
            acl.allow = fc.ids;
            acl.nallow = fc.n_ids;
            acl.nobody = !fc.n_ids;
        } else if (fc.access == IR_RELAY_ACCESS_DENYLIST) {
            acl.deny = fc.ids;
            acl.ndeny = fc.n_ids;
        } else if (fc.access == IR_RELAY_ACCESS_SHARED_TOKEN) {
            acl.tokens = (const char *const *)fc.tokens;
            acl.ntokens = fc.n_tokens;
            acl.nobody = !fc.n_tokens;
        }
    }

    /* the command line wins */
    if (listen)
        cfg.listen = listen;
    if (metrics)
        cfg.metrics_listen = metrics;
    if (cert)
        cfg.tls_cert_file = cert;
    if (key)
        cfg.tls_key_file = key;
    if (rate) {
        cfg.rx_bytes_per_second = rate;
        cfg.rx_max_burst_bytes = burst;
    } else if (burst) {
        if (!cfg.rx_bytes_per_second)
            return cli_usage("relay: --rate-burst needs --rate-limit%s", NULL);
        cfg.rx_max_burst_bytes = burst;
    }
    if (nallow || ndeny || ntokens) {
        acl.nobody = 0;
        acl.allow = allow;
        acl.nallow = nallow;
        acl.deny = deny;
        acl.ndeny = ndeny;
        acl.tokens = tokens;
        acl.ntokens = ntokens;
    }
    const char *env_token = getenv("IROH_RELAY_ACCESS_TOKEN");
    static const char *env_tokens[1];
    if (env_token && *env_token) {
        env_tokens[0] = env_token;
        acl.tokens = env_tokens;
        acl.ntokens = 1;
        if (!acl.nallow)
            acl.nobody = 0; /* the environment's token replaces an empty token list */
    }
    if (acl.nallow || acl.ndeny || acl.ntokens || acl.nobody) {
        cfg.access = check_access;
        cfg.access_ctx = &acl;
    }
    /* --dev, as iroh-relay --dev: plain HTTP on http_bind_addr (default [::]:3340, an
     * IPv4-only host: 0.0.0.0:3340); a certificate ([tls] or --tls-cert) then serves QUIC
     * address discovery only, never HTTPS */
    const char *qad_cert = cfg.tls_cert_file, *qad_key = cfg.tls_key_file;
    int dev_default_metrics = 0;
    if (dev) {
        if (!listen)
            cfg.listen = config_path && fc.http_bind_addr ? fc.http_bind_addr
                         : have_ipv6()                     ? "[::]:3340"
                                                           : "0.0.0.0:3340";
        cfg.tls_cert_file = cfg.tls_key_file = NULL;
        captive_file = 0;
        /* upstream's metrics default (enable_metrics, port 9090 of http_bind_addr's IP),
         * had when it can be */
        if (!config_path && !metrics) {
            cfg.metrics_listen = with_port(cfg.listen, 9090, metrics_buf, sizeof metrics_buf);
            dev_default_metrics = 1;
        }
    }
    /* the captive-portal check on plain HTTP next to HTTPS, as iroh-relay serves it on
     * http_bind_addr: --http-listen or the file's http_bind_addr (explicit: must bind), else
     * port 80 of the relay's IP when it can be had */
    int captive_explicit = 0;
    if (http_listen && !cfg.tls_cert_file) {
        ir_relay_file_config_free(&fc);
        return cli_usage("relay: --http-listen is the captive-portal port next to HTTPS (needs "
                         "--tls-cert and --tls-key, not --dev); a plain-HTTP relay answers "
                         "/generate_204 itself%s", NULL);
    }
    if (cfg.tls_cert_file) {
        if (http_listen || (captive_file && fc.http_bind_addr)) {
            cfg.captive_listen = http_listen ? http_listen : fc.http_bind_addr;
            captive_explicit = 1;
        } else {
            cfg.captive_listen = with_port(cfg.listen, 80, captive_buf, sizeof captive_buf);
        }
    }
    /* QUIC address discovery (relay.md 4.3): with TLS, on the relay's IP at UDP 7842
     * unless moved by --qad-listen or turned off by --no-qad */
    if (qad_listen && !qad_cert)
        return cli_usage("relay: --qad-listen needs --tls-cert and --tls-key (QUIC address "
                         "discovery uses the relay's certificate)%s", NULL);
    if (qad_listen)
        qad_explicit = 1;
    /* a config file follows upstream: off unless enable_quic_addr_discovery */
    qad_on = !no_qad && qad_cert && qad_key &&
             (!config_path || fc.enable_qad || qad_listen);
    int bad_file;
    if ((qad_cert && (bad_file = cli_check_readable("relay: TLS certificate", qad_cert))) ||
        (qad_key && (bad_file = cli_check_readable("relay: TLS key", qad_key)))) {
        ir_relay_file_config_free(&fc);
        return bad_file;
    }
    cli_raise_fd_limit();
    ir_relay_server *srv;
    int rc = ir_relay_server_new(&cfg, &srv);
    if (rc == IROH_ERR_IO && dev_default_metrics) {
        fprintf(stderr, "iroh-c: relay: no metrics on %s: %s\n", cfg.metrics_listen, iroh_last_error());
        cfg.metrics_listen = NULL;
        rc = ir_relay_server_new(&cfg, &srv);
    }
    if (rc == IROH_ERR_IO && cfg.captive_listen && !captive_explicit) {
        /* the default captive-portal port is not ours to have (not root, or taken) */
        fprintf(stderr, "iroh-c: relay: no captive-portal check on %s: %s\n", cfg.captive_listen,
                iroh_last_error());
        cfg.captive_listen = NULL;
        rc = ir_relay_server_new(&cfg, &srv);
    }
    if (rc != IROH_OK) {
        fprintf(stderr, "iroh-c: relay: %s\n", iroh_last_error());
        ir_relay_file_config_free(&fc);
        return rc == IROH_ERR_IO ? 1 : EXIT_USAGE; /* a port taken, or a bad value */
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
    if (cfg.rx_bytes_per_second)
        fprintf(stderr, "iroh-c: relay: receive rate limit %lu bytes/s per client, burst %lu\n",
                (unsigned long)cfg.rx_bytes_per_second,
                (unsigned long)(cfg.rx_max_burst_bytes ? cfg.rx_max_burst_bytes
                                : cfg.rx_bytes_per_second / 10 ? cfg.rx_bytes_per_second / 10 : 1));
    if (ir_relay_server_metrics_addr(srv, &local)) {
        iroh_socket_addr_to_string(&local, text, sizeof text);
        printf("metrics listening on http://%s/metrics\n", text);
    }
    ir_qad_server *qad = NULL;
    pthread_t qad_th;
    if (qad_on) {
        char where[IROH_SOCKET_ADDR_LEN];
        if (qad_listen) {
            snprintf(where, sizeof where, "%s", qad_listen);
        } else {
            ir_relay_server_local_addr(srv, &local);
            local.port = IR_QAD_DEFAULT_PORT;
            iroh_socket_addr_to_string(&local, where, sizeof where);
        }
        if (ir_qad_server_new(where, qad_cert, qad_key, &qad) != IROH_OK) {
            fprintf(stderr, "iroh-c: relay: QUIC address discovery on %s: %s\n", where,
                    iroh_last_error());
            if (qad_explicit) {
                g_relay = NULL;
                ir_relay_server_free(srv);
                ir_relay_file_config_free(&fc);
                return 1;
            }
            qad = NULL; /* the default place is taken: serve without it */
        } else if (start_qad_thread(&qad_th, qad) != 0) {
            ir_qad_server_free(qad);
            qad = NULL;
        } else {
            g_qad = qad;
            ir_qad_server_local_addr(qad, &local);
            iroh_socket_addr_to_string(&local, text, sizeof text);
            printf("QUIC address discovery on udp %s\n", text);
        }
    }
    if (ir_relay_server_captive_addr(srv, &local)) {
        iroh_socket_addr_to_string(&local, text, sizeof text);
        printf("captive portal check on http://%s/generate_204\n", text);
    }
    fflush(stdout);

    rc = ir_relay_server_run(srv);
    g_relay = NULL;
    if (qad) {
        g_qad = NULL; /* signals reach this thread only: no handler can hold it now */
        ir_qad_server_stop(qad);
        pthread_join(qad_th, NULL);
        ir_qad_stats qs;
        ir_qad_server_stats(qad, &qs);
        fprintf(stderr, "qad stats: connections=%llu\n", (unsigned long long)qs.connections);
        ir_qad_server_free(qad);
    }
    ir_relay_server_stats st;
    char line[2048];
    ir_relay_server_get_stats(srv, &st);
    ir_relay_stats_format(&st, line, sizeof line);
    fprintf(stderr, "relay stats: %s\n", line);
    if (rc != IROH_OK)
        fprintf(stderr, "iroh-c: relay: %s\n", iroh_last_error());
    ir_relay_server_free(srv);
    ir_relay_file_config_free(&fc);
    if (rc != IROH_OK)
        return 1;
    return g_signo ? 128 + g_signo : 0;
}
