/* iroh-c: the command line of iroh-c. Uses only the public API (iroh.h).
 * Exit status: 0 on success, 1 on failure, 2 (with one line on stderr) for bad input or
 * usage, 128 + N after signal N (listen, connect, relay). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apps/cmds.h"
#include "iroh.h"

const char *cli_cmd = NULL;

static const char USAGE[] =
    "usage: iroh-c <command> [options]\n"
    "\n"
    "commands:\n"
    "  keygen    print a new secret key, or write it to a file (mode 0600)\n"
    "  id        print the EndpointId (public key) of a secret key\n"
    "  ticket    encode or decode an EndpointTicket\n"
    "  listen    accept connections: a dumb pipe over stdin/stdout, or an echo service\n"
    "  connect   dial a ticket or an EndpointId: send stdin on a stream, print what comes back\n"
    "  listen-tcp   forward incoming streams to a TCP service (HOST:PORT), as dumbpipe\n"
    "  connect-tcp  accept local TCP connections, each carried over a stream to a ticket\n"
    "  listen-unix  forward incoming streams to a unix socket, as dumbpipe\n"
    "  connect-unix accept connections on a unix socket, each carried over a stream\n"
    "  resolve   find an EndpointId's relay and addresses with the address lookups\n"
    "  relay     run an iroh relay server\n"
    "  dns-server run an iroh DNS server and pkarr relay\n"
    "  report    run a net report against relays: UDP, public address, NAT, latencies\n"
    "  version   print the version\n"
    "\n"
    "'iroh-c <command> --help' (or 'iroh-c help <command>') describes a command.\n"
    "\n"
    "environment:\n"
    "  IROH_SECRET    the secret key of listen and connect when no --secret-file is given\n"
    "                 (64 hex or 52 base32 characters, as dumbpipe takes it)\n"
    "  IROH_LOG       log level of the library on stderr: off, error, warn (default),\n"
    "                 info, debug, trace\n"
    "  SSLKEYLOGFILE  append TLS secrets to this file (NSS key log format, for Wireshark)\n"
    "  IROH_C_ADDRESS_LOOKUP  'none' turns the n0 address lookup defaults off (options\n"
    "                 such as --pkarr-relay still apply); the tests set it\n"
    "\n"
    "exit status: 0 success, 1 failure, 2 bad usage or input (one line on stderr),\n"
    "130 after SIGINT (Ctrl-C), 143 after SIGTERM.\n";

static const char USAGE_KEYGEN[] =
    "usage: iroh-c keygen [--output FILE]\n"
    "\n"
    "Prints a new random secret key as 64 lowercase hex characters or, with --output,\n"
    "writes it to FILE, created with mode 0600 (an existing file is never overwritten).\n";

static const char USAGE_ID[] =
    "usage: iroh-c id SECRET\n"
    "       iroh-c id --secret-file FILE\n"
    "\n"
    "Prints the EndpointId (the public key, 64 hex characters) of a secret key given as\n"
    "64 hex or 52 base32 characters, or read from FILE. A key file that group or others\n"
    "may access is refused (chmod 600 FILE).\n";

static const char USAGE_TICKET[] =
    "usage: iroh-c ticket encode ID [--relay URL]... [--addr IP:PORT]...\n"
    "       iroh-c ticket decode TICKET\n"
    "\n"
    "encode prints the EndpointTicket (\"endpoint...\") of an EndpointId with relay URLs\n"
    "and direct addresses, exactly as iroh makes it. decode prints a ticket as one line\n"
    "of JSON: {\"id\":\"<hex>\",\"relay\":\"<url>\"|null,\"addrs\":[\"IP:PORT\",...]}.\n";

static const char USAGE_VERSION[] =
    "usage: iroh-c version\n"
    "\n"
    "Prints the version of iroh-c.\n";

int cli_usage(const char *fmt, const char *arg)
{
    fputs("iroh-c: ", stderr);
    fprintf(stderr, fmt, arg ? arg : "");
    if (cli_cmd)
        fprintf(stderr, " (see 'iroh-c %s --help')\n", cli_cmd);
    else
        fputs(" (see 'iroh-c --help')\n", stderr);
    return EXIT_USAGE;
}

int cli_api_error(const char *what, int rc)
{
    const char *detail = iroh_last_error();
    fprintf(stderr, "iroh-c: %s: %s%s%s\n", what, iroh_strerror(rc), *detail ? ": " : "", detail);
    return EXIT_USAGE;
}

int cli_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int cli_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
    if (strcmp(argv[*i], name) != 0)
        return 0;
    if (*i + 1 >= argc) {
        cli_usage("%s needs a value", name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

int cli_check_readable(const char *option, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || S_ISDIR(sb.st_mode)) {
        int err = fd < 0 ? errno : EISDIR;
        if (fd >= 0)
            close(fd);
        fprintf(stderr, "iroh-c: %s %s: %s\n", option, path, strerror(err));
        return EXIT_USAGE;
    }
    close(fd);
    return 0;
}

static int print_help(const char *text)
{
    fputs(text, stdout);
    return 0;
}

/* ---- keygen --------------------------------------------------------------------------- */

static int cmd_keygen(int argc, char **argv)
{
    const char *output = NULL;
    for (int i = 0; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i]))
            return print_help(USAGE_KEYGEN);
        if ((r = cli_opt(argc, argv, &i, "--output", &output)) < 0)
            return EXIT_USAGE;
        if (r == 0)
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
    /* as ssh: a key others may read (or replace) is no secret; say so and stop */
    struct stat sb;
    if (stat(path, &sb) == 0 && (sb.st_mode & 077)) {
        fprintf(stderr, "iroh-c: permissions %04o for '%s' are too open: group or others "
                        "may access it (chmod 600 '%s')\n",
                (unsigned)(sb.st_mode & 07777), path, path);
        return EXIT_USAGE;
    }
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
    for (int i = 0; i < argc; i++)
        if (cli_is_help(argv[i]))
            return print_help(USAGE_ID);
    if (argc == 2 && strcmp(argv[0], "--secret-file") == 0) {
        if ((rc = cli_read_secret_file(argv[1], &key)) != 0)
            return rc;
    } else if (argc == 1 && argv[0][0] != '-') {
        if ((rc = iroh_secret_key_parse(argv[0], &key)) != IROH_OK)
            return cli_api_error("secret key", rc);
    } else if (argc == 1 && strcmp(argv[0], "--secret-file") == 0) {
        return cli_usage("--secret-file needs a value%s", NULL);
    } else if (argc == 0) {
        return cli_usage("id: a SECRET or --secret-file FILE is needed%s", NULL);
    } else {
        int extra = strcmp(argv[0], "--secret-file") == 0 ? 2 : argv[0][0] == '-' ? 0 : 1;
        return cli_usage("id: unexpected argument '%s'", argv[extra]);
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
    for (int i = 0; i < argc; i++)
        if (cli_is_help(argv[i]))
            return print_help(USAGE_TICKET);
    if (argc < 1)
        return cli_usage("ticket encode: an EndpointId is needed%s", NULL);
    if (argv[0][0] == '-')
        return cli_usage("ticket encode: the EndpointId comes first, before '%s'", argv[0]);
    iroh_endpoint_id id;
    int rc = iroh_endpoint_id_parse(argv[0], &id);
    if (rc != IROH_OK)
        return cli_api_error("endpoint id", rc);
    iroh_endpoint_addr *addr = iroh_endpoint_addr_new(&id);
    if (!addr)
        return cli_api_error("ticket", IROH_ERR_NO_MEMORY);
    int status = 0;
    for (int i = 1; i < argc && status == 0; i++) {
        const char *v;
        int r1 = cli_opt(argc, argv, &i, "--relay", &v), r2 = r1 ? 0 : cli_opt(argc, argv, &i, "--addr", &v);
        if (r1 < 0 || r2 < 0) {
            status = EXIT_USAGE;
        } else if (r1) {
            rc = iroh_endpoint_addr_add_relay(addr, v);
            if (rc != IROH_OK)
                status = cli_api_error("relay url", rc);
        } else if (r2) {
            iroh_socket_addr sa;
            rc = iroh_socket_addr_parse(v, &sa);
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

/* s as a JSON string on stdout (quotes, backslashes and control characters escaped) */
void cli_json_string(const char *s)
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

/* {"id":"<hex>","relay":"<url>"|null[,"relays":[...]],"addrs":["IP:PORT",...][,"custom":[...]]}
 * and a newline on stdout: the form of ticket decode and resolve */
void cli_print_addr_json(const iroh_endpoint_addr *addr)
{
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
        cli_json_string(relay);
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
            cli_json_string(t.relay_url);
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
}

static int ticket_decode(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (cli_is_help(argv[i]))
            return print_help(USAGE_TICKET);
    if (argc == 0)
        return cli_usage("ticket decode: a TICKET is needed%s", NULL);
    if (argc > 1)
        return cli_usage("ticket decode: unexpected argument '%s'", argv[1]);
    iroh_endpoint_addr *addr;
    int rc = iroh_endpoint_ticket_decode(argv[0], &addr);
    if (rc != IROH_OK)
        return cli_api_error("ticket", rc);
    cli_print_addr_json(addr);
    iroh_endpoint_addr_free(addr);
    return 0;
}

static int cmd_ticket(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "encode") == 0)
        return ticket_encode(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "decode") == 0)
        return ticket_decode(argc - 1, argv + 1);
    if (argc >= 1 && cli_is_help(argv[0]))
        return print_help(USAGE_TICKET);
    if (argc == 0)
        return cli_usage("ticket: 'encode' or 'decode' is needed%s", NULL);
    return cli_usage("ticket: unknown subcommand '%s' (encode or decode)", argv[0]);
}

static int cmd_version(int argc, char **argv)
{
    if (argc >= 1 && cli_is_help(argv[0]))
        return print_help(USAGE_VERSION);
    if (argc >= 1)
        return cli_usage("version: unexpected argument '%s'", argv[0]);
    printf("iroh-c %s\n", iroh_version());
    return 0;
}

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
} COMMANDS[] = {
    {"keygen", cmd_keygen}, {"id", cmd_id},           {"ticket", cmd_ticket}, {"listen", cmd_listen},
    {"connect", cmd_connect}, {"listen-tcp", cmd_listen_tcp}, {"connect-tcp", cmd_connect_tcp},
    {"listen-unix", cmd_listen_unix}, {"connect-unix", cmd_connect_unix}, {"resolve", cmd_resolve},
    {"relay", cmd_relay}, {"dns-server", cmd_dns_server}, {"report", cmd_report}, {"version", cmd_version},
};

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (strcmp(COMMANDS[i].name, name) == 0)
            return &COMMANDS[i];
    return NULL;
}

/* Descriptors 0, 1 and 2 must be open before anything else is: a closed one would be
 * taken by the next file or socket opened (the UDP socket as stdout, and the data
 * written into it). /dev/null takes their place. */
static void keep_std_fds_open(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (n < 0)
            _exit(EXIT_USAGE); /* nowhere to say it */
        if (n != fd) {         /* cannot happen: open takes the lowest free number */
            dup2(n, fd);
            close(n);
        }
    }
}

int main(int argc, char **argv)
{
    keep_std_fds_open();
    if (argc < 2)
        return cli_usage("missing command%s", NULL);
    const char *cmd = argv[1];
    int status;
    const struct command *c = find_command(cmd);
    if (c) {
        cli_cmd = c->name;
        status = c->run(argc - 2, argv + 2);
    } else if (strcmp(cmd, "--version") == 0) {
        status = cmd_version(0, NULL);
    } else if (strcmp(cmd, "help") == 0 || cli_is_help(cmd)) {
        if (argc >= 3 && strcmp(cmd, "help") == 0) {
            char help[] = "--help";
            char *args[] = {help, NULL};
            if (!(c = find_command(argv[2])))
                return cli_usage("help: unknown command '%s'", argv[2]);
            cli_cmd = c->name;
            status = c->run(1, args);
        } else {
            fputs(USAGE, stdout);
            status = 0;
        }
    } else {
        return cli_usage("unknown command '%s'", cmd);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "iroh-c: cannot write output: %s\n", strerror(errno));
        return 1;
    }
    return status;
}
