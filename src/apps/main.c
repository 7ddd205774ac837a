/* iroh-c: the command line of iroh-c. Uses only the public API (iroh.h).
 * Exit status: 0 on success, 2 (with one line on stderr) for bad input or usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cmds.h"
#include "iroh.h"

#define EXIT_USAGE 2

static const char USAGE[] =
    "usage: iroh-c <command> [args]\n"
    "\n"
    "commands:\n"
    "  keygen [--output FILE]            print a new secret key (64 hex chars), or write it\n"
    "                                    to FILE (mode 0600, never overwriting)\n"
    "  id SECRET | id --secret-file FILE print the EndpointId of a secret key\n"
    "  ticket encode ID [--relay URL]... [--addr IP:PORT]...\n"
    "                                    print the EndpointTicket of an address\n"
    "  ticket decode TICKET              print a ticket's contents as one line of JSON\n"
    "  listen --alpn ALPN [--echo] [--retry] [--bind IP:PORT] [--secret-file FILE]\n"
    "                                    print a ticket; with --echo, echo every stream and\n"
    "                                    datagram of every connection until killed; without,\n"
    "                                    pipe stdin/stdout over one connection's first stream;\n"
    "                                    --retry validates clients with a QUIC Retry first\n"
    "  connect TICKET --alpn ALPN [--timeout SECS] [--streams N] [--bind IP:PORT] [--stats]\n"
    "                                    send stdin on a stream (N streams: on each), print\n"
    "                                    what comes back, close the connection; --alpn may\n"
    "                                    repeat to offer several (by preference); --stats\n"
    "                                    prints the path, RTT and packet counts at the end\n"
    "    listen and connect also take:   --relay URL (repeatable; default: n0's relays),\n"
    "                                    --no-relay, --relay-ca PEM (trust for https relays),\n"
    "                                    --relay-quic-port N (address discovery; 0: off)\n"
    "  relay [--listen IP:PORT] [--tls-cert PEM --tls-key PEM] [--ping-interval SECS]\n"
    "        [--header-timeout SECS] [--allow ID]... [--deny ID]... [--token T]...\n"
    "        [--metrics-listen IP:PORT] [--rate-limit BYTES_PER_SEC [--rate-burst BYTES]]\n"
    "        [--config FILE] [--qad-listen IP:PORT | --no-qad]\n"
    "                                    run a relay server, plain HTTP (default\n"
    "                                    127.0.0.1:3340) or HTTPS with the certificate,\n"
    "                                    until SIGINT/SIGTERM; SIGUSR1 prints its counters;\n"
    "                                    access by EndpointId lists and Bearer tokens;\n"
    "                                    Prometheus metrics on a separate plain-HTTP port;\n"
    "                                    per-client receive rate limit (burst: rate/10);\n"
    "                                    --config reads iroh-relay's TOML keys (options win);\n"
    "                                    with TLS, QUIC address discovery on UDP 7842\n"
    "  version                           print the version\n";

int cli_usage(const char *fmt, const char *arg)
{
    fputs("iroh-c: ", stderr);
    fprintf(stderr, fmt, arg ? arg : "");
    fputs(" (see 'iroh-c help')\n", stderr);
    return EXIT_USAGE;
}

int cli_api_error(const char *what, int rc)
{
    const char *detail = iroh_last_error();
    fprintf(stderr, "iroh-c: %s: %s%s%s\n", what, iroh_strerror(rc), *detail ? ": " : "", detail);
    return EXIT_USAGE;
}

/* ---- keygen --------------------------------------------------------------------------- */

static int cmd_keygen(int argc, char **argv)
{
    const char *output = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--output") == 0 && i + 1 < argc)
            output = argv[++i];
        else
            return cli_usage("keygen: unexpected argument '%s'", argv[i]);
    }
    iroh_secret_key key;
    char hex[IROH_ID_HEX_LEN];
    int rc = iroh_secret_key_generate(&key);
    if (rc != IROH_OK) {
        cli_api_error("keygen", rc);
        return 1;
    }
    if (output) {
        rc = iroh_secret_key_save(&key, output);
        memset(&key, 0, sizeof key);
        if (rc != IROH_OK) {
            fprintf(stderr, "iroh-c: keygen: %s\n", iroh_last_error());
            return EXIT_USAGE;
        }
        return 0;
    }
    iroh_secret_key_to_hex(&key, hex, sizeof hex);
    memset(&key, 0, sizeof key);
    printf("%s\n", hex);
    return 0;
}

/* ---- id ------------------------------------------------------------------------------- */

int cli_read_secret_file(const char *path, iroh_secret_key *key)
{
    int rc = iroh_secret_key_load(path, key);
    if (rc == IROH_ERR_IO) {
        fprintf(stderr, "iroh-c: %s\n", iroh_last_error());
        return EXIT_USAGE;
    }
    if (rc != IROH_OK)
        return cli_api_error(path, rc);
    return 0;
}

static int cmd_id(int argc, char **argv)
{
    iroh_secret_key key;
    int rc;
    if (argc == 2 && strcmp(argv[0], "--secret-file") == 0) {
        if ((rc = cli_read_secret_file(argv[1], &key)) != 0)
            return rc;
    } else if (argc == 1 && argv[0][0] != '-') {
        if ((rc = iroh_secret_key_parse(argv[0], &key)) != IROH_OK)
            return cli_api_error("secret key", rc);
    } else {
        return cli_usage("usage: iroh-c id SECRET | iroh-c id --secret-file FILE%s", NULL);
    }
    iroh_endpoint_id id;
    char hex[IROH_ID_HEX_LEN];
    iroh_secret_key_public(&key, &id);
    memset(&key, 0, sizeof key);
    iroh_endpoint_id_to_hex(&id, hex, sizeof hex);
    printf("%s\n", hex);
    return 0;
}

/* ---- ticket --------------------------------------------------------------------------- */

static int ticket_encode(int argc, char **argv)
{
    if (argc < 1 || argv[0][0] == '-')
        return cli_usage("usage: iroh-c ticket encode ID [--relay URL]... [--addr IP:PORT]...%s",
                           NULL);
    iroh_endpoint_id id;
    int rc = iroh_endpoint_id_parse(argv[0], &id);
    if (rc != IROH_OK)
        return cli_api_error("endpoint id", rc);
    iroh_endpoint_addr *addr = iroh_endpoint_addr_new(&id);
    if (!addr)
        return cli_api_error("ticket", IROH_ERR_NO_MEMORY);
    int status = 0;
    for (int i = 1; i < argc && status == 0; i++) {
        if (strcmp(argv[i], "--relay") == 0 && i + 1 < argc) {
            rc = iroh_endpoint_addr_add_relay(addr, argv[++i]);
            if (rc != IROH_OK)
                status = cli_api_error("relay url", rc);
        } else if (strcmp(argv[i], "--addr") == 0 && i + 1 < argc) {
            iroh_socket_addr sa;
            rc = iroh_socket_addr_parse(argv[++i], &sa);
            if (rc == IROH_OK)
                rc = iroh_endpoint_addr_add_ip(addr, &sa);
            if (rc != IROH_OK) {
                fprintf(stderr, "iroh-c: address '%s': %s\n", argv[i], iroh_last_error());
                status = EXIT_USAGE;
            }
        } else {
            status = cli_usage("ticket encode: unexpected argument '%s'", argv[i]);
        }
    }
    if (status == 0) {
        size_t need = 0;
        iroh_endpoint_ticket_encode(addr, NULL, 0, &need);
        char *text = need ? malloc(need) : NULL;
        if (!text || (rc = iroh_endpoint_ticket_encode(addr, text, need, NULL)) != IROH_OK)
            status = cli_api_error("ticket", text ? rc : IROH_ERR_NO_MEMORY);
        else
            printf("%s\n", text);
        free(text);
    }
    iroh_endpoint_addr_free(addr);
    return status;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static int ticket_decode(int argc, char **argv)
{
    if (argc != 1)
        return cli_usage("usage: iroh-c ticket decode TICKET%s", NULL);
    iroh_endpoint_addr *addr;
    int rc = iroh_endpoint_ticket_decode(argv[0], &addr);
    if (rc != IROH_OK)
        return cli_api_error("ticket", rc);
    char hex[IROH_ID_HEX_LEN];
    iroh_endpoint_id_to_hex(iroh_endpoint_addr_id(addr), hex, sizeof hex);
    size_t n = iroh_endpoint_addr_len(addr), relays = 0, customs = 0;
    iroh_transport_addr t;
    for (size_t i = 0; i < n; i++) {
        iroh_endpoint_addr_get(addr, i, &t);
        relays += t.kind == IROH_TRANSPORT_RELAY;
        customs += t.kind == IROH_TRANSPORT_CUSTOM;
    }
    printf("{\"id\":\"%s\",\"relay\":", hex);
    const char *relay = iroh_endpoint_addr_relay_url(addr);
    if (relay)
        json_string(relay);
    else
        fputs("null", stdout);
    if (relays > 1) {
        fputs(",\"relays\":[", stdout);
        for (size_t i = 0, k = 0; i < n; i++) {
            iroh_endpoint_addr_get(addr, i, &t);
            if (t.kind != IROH_TRANSPORT_RELAY)
                continue;
            if (k++)
                putchar(',');
            json_string(t.relay_url);
        }
        putchar(']');
    }
    fputs(",\"addrs\":[", stdout);
    for (size_t i = 0, k = 0; i < n; i++) {
        char sa[IROH_SOCKET_ADDR_LEN];
        iroh_endpoint_addr_get(addr, i, &t);
        if (t.kind != IROH_TRANSPORT_IP)
            continue;
        iroh_socket_addr_to_string(&t.ip, sa, sizeof sa);
        printf("%s\"%s\"", k++ ? "," : "", sa);
    }
    putchar(']');
    if (customs) {
        fputs(",\"custom\":[", stdout);
        for (size_t i = 0, k = 0; i < n; i++) {
            iroh_endpoint_addr_get(addr, i, &t);
            if (t.kind != IROH_TRANSPORT_CUSTOM)
                continue;
            printf("%s\"%llx_", k++ ? "," : "", (unsigned long long)t.custom_id);
            for (size_t j = 0; j < t.custom_len; j++)
                printf("%02x", t.custom_data[j]);
            putchar('"');
        }
        putchar(']');
    }
    puts("}");
    iroh_endpoint_addr_free(addr);
    return 0;
}

static int cmd_ticket(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "encode") == 0)
        return ticket_encode(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "decode") == 0)
        return ticket_decode(argc - 1, argv + 1);
    return cli_usage("usage: iroh-c ticket encode|decode ...%s", NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("missing command%s", NULL);
    const char *cmd = argv[1];
    int status;
    if (strcmp(cmd, "keygen") == 0)
        status = cmd_keygen(argc - 2, argv + 2);
    else if (strcmp(cmd, "id") == 0)
        status = cmd_id(argc - 2, argv + 2);
    else if (strcmp(cmd, "ticket") == 0)
        status = cmd_ticket(argc - 2, argv + 2);
    else if (strcmp(cmd, "listen") == 0)
        status = cmd_listen(argc - 2, argv + 2);
    else if (strcmp(cmd, "connect") == 0)
        status = cmd_connect(argc - 2, argv + 2);
    else if (strcmp(cmd, "relay") == 0)
        status = cmd_relay(argc - 2, argv + 2);
    else if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("iroh-c %s\n", iroh_version());
        status = 0;
    } else if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(USAGE, stdout);
        status = 0;
    } else
        return cli_usage("unknown command '%s'", cmd);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "iroh-c: cannot write output: %s\n", strerror(errno));
        return 1;
    }
    return status;
}
