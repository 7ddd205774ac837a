/* iroh-c dns-server: an iroh-dns-server-compatible DNS server and pkarr relay (see
 * src/dnsserver/dnsserver.h). Prints "dns-server listening on udp+tcp IP:PORT" and
 * "pkarr relay listening on http://IP:PORT/pkarr" once it listens; SIGINT/SIGTERM stop
 * it (exit 130/143, a second signal exits at once); the counters go to stderr at exit. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cmds.h"
#include "dnsserver/dnsserver.h"
#include "dnsserver/file_config.h"

static ir_dnss_server *volatile g_srv;
static volatile sig_atomic_t g_signo;

static void on_stop(int sig)
{
    if (g_signo)
        _exit(128 + sig);
    g_signo = sig;
    ir_dnss_server *s = g_srv;
    if (s)
        ir_dnss_server_stop(s);
}

static const char USAGE_DNS_SERVER[] =
    "usage: iroh-c dns-server [options]\n"
    "\n"
    "Runs a DNS server and pkarr relay compatible with iroh-dns-server: endpoints PUT\n"
    "their signed records to http://IP:PORT/pkarr/<z32 id>, resolvers ask for TXT\n"
    "_iroh.<z32 id>.<origin> over UDP, TCP or DNS over HTTP (/dns-query). Prints where it\n"
    "listens; serves until SIGINT or SIGTERM (exit 130, 143).\n"
    "\n"
    "options:\n"
    "  --dns-listen IP:PORT      DNS on UDP and TCP (default 127.0.0.1:5300; port 0: any)\n"
    "  --http-listen IP:PORT     pkarr relay, DoH and /healthz (default 127.0.0.1:8080;\n"
    "                            'none': no HTTP)\n"
    "  --metrics-listen IP:PORT  Prometheus metrics on a separate plain-HTTP port\n"
    "  --origin ORIGIN           the zone served (repeatable; default irohdns.example.)\n"
    "  --db FILE                 SQLite database file (created if missing; default: in\n"
    "                            memory, lost at exit)\n"
    "  --soa 'MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM'\n"
    "                            the SOA of every origin\n"
    "  --ns NAME                 an NS record for every origin\n"
    "  --rate-limit MODE         PUTs per client: simple (per IP, default), smart\n"
    "                            (X-Forwarded-For first), disabled\n"
    "  --cache N                 keys held in memory in front of the database (65536)\n"
    "  --config FILE             iroh-dns-server's TOML configuration (options win)\n";

/* Reads and parses the config file: 0, or the exit status (said on stderr). */
static int load_config(const char *path, ir_dnss_file_config *fc)
{
    char *text;
    size_t n;
    int st = cli_read_config("dns-server", path, &text, &n);
    if (st < 0)
        fprintf(stderr, "iroh-c: dns-server: config file '%s' does not exist\n", path);
    if (st)
        return EXIT_USAGE;
    ir_dnss_file_config_free(fc);
    int rc = ir_dnss_file_config_parse(text, n, fc);
    free(text);
    if (rc != IROH_OK) {
        fprintf(stderr, "iroh-c: dns-server: %s: %s\n", path, fc->error);
        return EXIT_USAGE;
    }
    cli_print_notes("dns-server", path, fc->notes);
    return 0;
}

static int parse_rate(const char *v, int *mode)
{
    if (!strcmp(v, "simple"))
        *mode = IR_DNSS_RATE_SIMPLE;
    else if (!strcmp(v, "smart"))
        *mode = IR_DNSS_RATE_SMART;
    else if (!strcmp(v, "disabled"))
        *mode = IR_DNSS_RATE_DISABLED;
    else
        return -1;
    return 0;
}

int cmd_dns_server(int argc, char **argv)
{
    ir_dnss_config cfg;
    ir_dnss_config_init(&cfg);
    const char *dns_listen = NULL, *http_listen = NULL, *metrics = NULL, *db = NULL, *soa = NULL;
    const char *ns = NULL, *rate = NULL, *cache = NULL, *config_path = NULL;
    const char *origins[IR_DNSS_MAX_ORIGINS];
    size_t n_origins = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (cli_is_help(a)) {
            fputs(USAGE_DNS_SERVER, stdout);
            return 0;
        }
        const char **slot = NULL;
        static const char *const names[] = {"--dns-listen", "--http-listen", "--metrics-listen", "--db",
                                            "--soa", "--ns", "--rate-limit", "--cache", "--config"};
        const char **slots[] = {&dns_listen, &http_listen, &metrics, &db, &soa, &ns, &rate, &cache, &config_path};
        r = 0;
        for (size_t k = 0; k < sizeof names / sizeof names[0] && r == 0; k++)
            if ((r = cli_opt(argc, argv, &i, names[k], &v)) != 0)
                slot = slots[k];
        if (r < 0)
            return EXIT_USAGE;
        if (r > 0) {
            *slot = v;
            continue;
        }
        if ((r = cli_opt(argc, argv, &i, "--origin", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            if (n_origins == IR_DNSS_MAX_ORIGINS)
                return cli_usage("dns-server: at most 16 origins%s", NULL);
            origins[n_origins++] = v;
            continue;
        }
        return cli_usage("dns-server: unexpected argument '%s'", a);
    }
    ir_dnss_file_config fc;
    ir_dnss_file_config_parse("", 0, &fc);
    if (config_path) {
        int st = load_config(config_path, &fc);
        if (st) {
            ir_dnss_file_config_free(&fc);
            return st;
        }
        ir_dnss_file_config_apply(&fc, &cfg);
    }
    if (dns_listen)
        cfg.dns_listen = dns_listen;
    if (!cfg.dns_listen)
        cfg.dns_listen = "127.0.0.1:5300";
    if (http_listen)
        cfg.http_listen = strcmp(http_listen, "none") ? http_listen : NULL;
    else if (!config_path)
        cfg.http_listen = "127.0.0.1:8080";
    if (metrics)
        cfg.metrics_listen = metrics;
    if (db)
        cfg.db_path = db;
    if (soa)
        cfg.soa = soa;
    if (ns)
        cfg.rr_ns = ns;
    if (rate && parse_rate(rate, &cfg.rate_limit) < 0) {
        ir_dnss_file_config_free(&fc);
        return cli_usage("dns-server: --rate-limit takes simple, smart or disabled, not '%s'", rate);
    }
    if (cache) {
        char *end;
        errno = 0;
        unsigned long long c = strtoull(cache, &end, 10);
        if (errno || end == cache || *end || *cache == '-' || c == 0 || c > (1ULL << 24)) {
            ir_dnss_file_config_free(&fc);
            return cli_usage("dns-server: --cache takes 1 to 16777216 keys, not '%s'", cache);
        }
        cfg.cache_capacity = (size_t)c;
    }
    if (n_origins) {
        memcpy(cfg.origins, origins, n_origins * sizeof origins[0]);
        cfg.n_origins = n_origins;
    }
    ir_dnss_server *srv;
    cli_raise_fd_limit();
    int rc = ir_dnss_server_new(&cfg, &srv);
    if (rc != IROH_OK) {
        fprintf(stderr, "iroh-c: dns-server: %s\n", iroh_last_error());
        ir_dnss_file_config_free(&fc);
        return rc == IROH_ERR_IO ? 1 : EXIT_USAGE;
    }
    g_srv = srv;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    iroh_socket_addr d, h, m;
    char text[IROH_SOCKET_ADDR_LEN];
    ir_dnss_server_addrs(srv, &d, &h, &m);
    iroh_socket_addr_to_string(&d, text, sizeof text);
    printf("dns-server listening on udp+tcp %s\n", text);
    if (cfg.http_listen) {
        iroh_socket_addr_to_string(&h, text, sizeof text);
        printf("pkarr relay listening on http://%s/pkarr\n", text);
    }
    if (cfg.metrics_listen) {
        iroh_socket_addr_to_string(&m, text, sizeof text);
        printf("metrics listening on http://%s/metrics\n", text);
    }
    fflush(stdout);
    rc = ir_dnss_server_run(srv);
    g_srv = NULL;
    ir_dnss_stats st;
    ir_dnss_server_get_stats(srv, &st);
    fprintf(stderr,
            "dns-server stats: dns_requests=%llu udp=%llu tcp=%llu https=%llu success=%llu notfound=%llu "
            "error=%llu truncated=%llu http_requests=%llu puts_stored=%llu puts_noop=%llu puts_refused=%llu "
            "puts_ratelimited=%llu cache_hits=%llu cache_misses=%llu\n",
            (unsigned long long)st.dns_requests, (unsigned long long)st.dns_requests_udp,
            (unsigned long long)st.dns_requests_tcp, (unsigned long long)st.dns_requests_https,
            (unsigned long long)st.dns_lookup_success, (unsigned long long)st.dns_lookup_notfound,
            (unsigned long long)st.dns_lookup_error, (unsigned long long)st.dns_truncated,
            (unsigned long long)st.http_requests, (unsigned long long)st.pkarr_publish_update,
            (unsigned long long)st.pkarr_publish_noop, (unsigned long long)st.pkarr_put_refused,
            (unsigned long long)st.pkarr_put_ratelimited, (unsigned long long)st.store.cache_hits,
            (unsigned long long)st.store.cache_misses);
    if (rc != IROH_OK)
        fprintf(stderr, "iroh-c: dns-server: %s\n", iroh_last_error());
    ir_dnss_server_free(srv);
    ir_dnss_file_config_free(&fc);
    if (rc != IROH_OK)
        return 1;
    return g_signo ? 128 + g_signo : 0;
}
