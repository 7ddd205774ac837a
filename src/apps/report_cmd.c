/* iroh-c report: one net report (iroh's net_report) from an endpoint bound for it, as
 * text or as iroh's Report in JSON (its serde field names). */
#include <stdio.h>
#include <string.h>

#include "apps/cmds.h"
#include "apps/net_opts.h"

static const char USAGE_REPORT[] =
    "usage: iroh-c report [--relay URL]... [--json] [options]\n"
    "\n"
    "Runs iroh's net report against the relays (default: n0's) and prints what it found:\n"
    "UDP over IPv4 and IPv6, the public address QUIC address discovery saw from each relay,\n"
    "whether that mapping varies by destination (two relays or more), each relay's\n"
    "latency over QUIC (IPv4, IPv6) and HTTP(S) (GET /ping), the preferred relay, and\n"
    "whether a captive portal intercepts HTTP.\n"
    "\n"
    "options:\n"
    "  --relay URL          probe this relay (repeatable, at most 8)\n"
    "  --json               print iroh's Report as one line of JSON (fields udp_v4,\n"
    "                       udp_v6, mapping_varies_by_dest_ipv4/_ipv6, preferred_relay,\n"
    "                       relay_latency {ipv4, ipv6, https: URL -> {secs, nanos}},\n"
    "                       global_v4, global_v6, captive_portal; null: unknown)\n"
    "  --no-captive-check   skip the captive-portal check\n"
    "  --timeout SECS       give up after this long (default 10)\n"
    "  --relay-ca FILE      trust these PEM certificates for https relays\n"
    "  --relay-quic-port P  the relays' QUIC address discovery port (default 7842)\n"
    "  --bind IP:PORT       the UDP socket the probes go out from (repeatable: one per family)\n"
    "\n"
    "exit status: 0 a report was made (whatever it found), 1 none within the timeout,\n"
    "2 bad usage.\n";

static void json_tri(int v)
{
    fputs(v < 0 ? "null" : v ? "true" : "false", stdout);
}

static void json_latencies(const iroh_net_report *r, int which)
{
    putchar('{');
    int first = 1;
    for (size_t i = 0; i < r->n_relays; i++) {
        const iroh_net_report_relay *l = &r->relays[i];
        uint64_t us = which == 4 ? l->latency_ipv4_us
                      : which == 6 ? l->latency_ipv6_us : l->latency_https_us;
        if (!us)
            continue;
        if (!first)
            putchar(',');
        first = 0;
        cli_json_string(l->url);
        printf(":{\"secs\":%llu,\"nanos\":%llu}", (unsigned long long)(us / 1000000),
               (unsigned long long)(us % 1000000 * 1000));
    }
    putchar('}');
}

static void print_json(const iroh_net_report *r)
{
    char a[IROH_SOCKET_ADDR_LEN];
    printf("{\"udp_v4\":%s,\"udp_v6\":%s,", r->udp_v4 ? "true" : "false",
           r->udp_v6 ? "true" : "false");
    fputs("\"mapping_varies_by_dest_ipv4\":", stdout);
    json_tri(r->mapping_varies_by_dest_ipv4);
    fputs(",\"mapping_varies_by_dest_ipv6\":", stdout);
    json_tri(r->mapping_varies_by_dest_ipv6);
    fputs(",\"preferred_relay\":", stdout);
    if (r->preferred_relay)
        cli_json_string(r->preferred_relay);
    else
        fputs("null", stdout);
    fputs(",\"relay_latency\":{\"ipv4\":", stdout);
    json_latencies(r, 4);
    fputs(",\"ipv6\":", stdout);
    json_latencies(r, 6);
    fputs(",\"https\":", stdout);
    json_latencies(r, 0);
    fputs("},\"global_v4\":", stdout);
    if (r->has_global_v4) {
        iroh_socket_addr_to_string(&r->global_v4, a, sizeof a);
        cli_json_string(a);
    } else {
        fputs("null", stdout);
    }
    fputs(",\"global_v6\":", stdout);
    if (r->has_global_v6) {
        iroh_socket_addr_to_string(&r->global_v6, a, sizeof a);
        cli_json_string(a);
    } else {
        fputs("null", stdout);
    }
    fputs(",\"captive_portal\":", stdout);
    json_tri(r->captive_portal);
    fputs("}\n", stdout);
}

static const char *tri(int v)
{
    return v < 0 ? "unknown" : v ? "yes" : "no";
}

static void ms(uint64_t us, char *buf, size_t cap)
{
    if (us)
        snprintf(buf, cap, "%.1f ms", (double)us / 1000.0);
    else
        snprintf(buf, cap, "-");
}

static void print_text(const iroh_net_report *r)
{
    char a[IROH_SOCKET_ADDR_LEN];
    if (r->has_global_v4)
        iroh_socket_addr_to_string(&r->global_v4, a, sizeof a);
    printf("UDP over IPv4: %s%s%s\n", r->udp_v4 ? "yes" : "no",
           r->has_global_v4 ? ", public address " : "", r->has_global_v4 ? a : "");
    if (r->has_global_v6)
        iroh_socket_addr_to_string(&r->global_v6, a, sizeof a);
    printf("UDP over IPv6: %s%s%s\n", r->udp_v6 ? "yes" : "no",
           r->has_global_v6 ? ", public address " : "", r->has_global_v6 ? a : "");
    printf("mapping varies by destination: IPv4 %s, IPv6 %s\n",
           tri(r->mapping_varies_by_dest_ipv4), tri(r->mapping_varies_by_dest_ipv6));
    printf("captive portal: %s\n", tri(r->captive_portal));
    printf("preferred relay: %s\n", r->preferred_relay ? r->preferred_relay : "none");
    printf("relay latencies (QUIC IPv4, QUIC IPv6, HTTPS):\n");
    for (size_t i = 0; i < r->n_relays; i++) {
        char l4[32], l6[32], lh[32];
        ms(r->relays[i].latency_ipv4_us, l4, sizeof l4);
        ms(r->relays[i].latency_ipv6_us, l6, sizeof l6);
        ms(r->relays[i].latency_https_us, lh, sizeof lh);
        printf("  %s  %s  %s  %s\n", r->relays[i].url, l4, l6, lh);
    }
}

int cmd_report(int argc, char **argv)
{
    net_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.quic_port = -1;
    int json = 0, captive = 1;
    double timeout_s = 10;
    for (int i = 0; i < argc; i++) {
        const char *v;
        int r;
        if (cli_is_help(argv[i])) {
            fputs(USAGE_REPORT, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--no-captive-check") == 0) {
            captive = 0;
        } else if ((r = cli_opt(argc, argv, &i, "--timeout", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            if (parse_number(v, 0.001, 3600, &timeout_s) != 0)
                return cli_usage("--timeout takes seconds (0.001 to 3600), not '%s'", v);
        } else if ((r = net_opt(&opts, argc, argv, &i)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
        } else {
            return cli_usage("report: unexpected argument '%s'", argv[i]);
        }
    }
    if (opts.no_relay)
        return cli_usage("report: the net report needs relays; --no-relay leaves none%s", NULL);
    opts.no_lookup = 1; /* nothing to publish or resolve */
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    if (!b)
        return cli_api_error("endpoint", IROH_ERR_NO_MEMORY);
    iroh_endpoint_builder_net_report(b, captive ? IROH_NET_REPORT_ON : IROH_NET_REPORT_NO_CAPTIVE);
    iroh_endpoint *ep;
    int rc;
    if ((rc = net_bind(&opts, b, &ep)) != 0)
        return rc;
    int status = 1;
    if (cli_stop_watch_endpoint(ep) == 0) {
        iroh_net_report r;
        rc = iroh_endpoint_net_report_wait(ep, 0, (int)(timeout_s * 1000 + 0.5), &r);
        if (rc == IROH_OK) {
            if (json)
                print_json(&r);
            else
                print_text(&r);
            fflush(stdout);
            status = 0;
        } else if (!cli_stop_signal()) {
            fprintf(stderr, "iroh-c: report: %s\n", iroh_last_error());
        }
    }
    cli_stop_forget_endpoint();
    iroh_endpoint_close(ep);
    iroh_endpoint_free(ep);
    cli_stop_end();
    return cli_stop_status(status);
}
