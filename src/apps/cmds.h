/* Shared pieces of the iroh-c command. */
#ifndef IR_APPS_CMDS_H
#define IR_APPS_CMDS_H

#include <stddef.h>

#include "iroh.h"

/* Exit statuses: 0 success, 1 failure, 2 bad input or usage; 128 + N after signal N
 * (130 for SIGINT, 143 for SIGTERM). */
#define EXIT_USAGE 2

/* The command being run ("listen"), for messages; set by main. */
extern const char *cli_cmd;

/* "iroh-c: <message> (see 'iroh-c <command> --help')" on stderr; returns EXIT_USAGE */
int cli_usage(const char *fmt, const char *arg);
/* "iroh-c: <what>: <strerror>: <detail>"; returns EXIT_USAGE */
int cli_api_error(const char *what, int rc);
/* 1 if argv[i] asks for help (--help or -h) */
int cli_is_help(const char *arg);
/* argv[*i] is the option name: 1 with *val its value (and *i moved past it), 0 if it is
 * another argument, -1 (said on stderr) when the value is missing */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **val);
/* reads a secret key file (hex or base32, one line); refuses files that group or others
 * may access, as ssh does. 0 or an exit status (said on stderr) */
int cli_read_secret_file(const char *path, iroh_secret_key *key);
/* 0 if path is a file we can read; else EXIT_USAGE, said on stderr with the option */
int cli_check_readable(const char *option, const char *path);

/* an EndpointAddr as one line of JSON on stdout, the form of 'ticket decode':
 * {"id":"<hex>","relay":"<url>"|null,"addrs":["IP:PORT",...]} (with "relays" when there
 * are several, "custom" when there are custom addresses) */
void cli_print_addr_json(const iroh_endpoint_addr *addr);
/* s as a JSON string on stdout (quotes, backslashes and control characters escaped) */
void cli_json_string(const char *s);

/* Reads a configuration file of at most 1 MiB (NUL-terminated; free *text): 0, -1 when
 * it does not exist (nothing said), or EXIT_USAGE said on stderr as "iroh-c: CMD: cannot
 * read config file 'PATH': why" (cli_file.c). */
int cli_read_config(const char *cmd, const char *path, char **text, size_t *len);
/* Prints a parser's notes ("line N: ..." lines) as "iroh-c: CMD: PATH: line N: ...". */
void cli_print_notes(const char *cmd, const char *path, const char *notes);
/* A server takes the hard limit of open files (thousands of clients, thousands of
 * descriptors); below it, accept fails with EMFILE long before the server's own limit. */
void cli_raise_fd_limit(void);

int cmd_listen(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_resolve(int argc, char **argv);
int cmd_relay(int argc, char **argv);
int cmd_dns_server(int argc, char **argv);
/* dumbpipe's tunnels (tunnel_cmds.c) */
int cmd_listen_tcp(int argc, char **argv);
int cmd_connect_tcp(int argc, char **argv);
int cmd_listen_unix(int argc, char **argv);
int cmd_connect_unix(int argc, char **argv);
int cmd_report(int argc, char **argv);

/* Signals for the network commands (stop.c). cli_stop_start, before any thread exists,
 * blocks SIGINT and SIGTERM in every thread and starts the thread that takes them; on
 * the first, the watched connections are closed (code 0, "interrupted"), the stop fd
 * becomes readable and the watched endpoint is closed, which wakes every blocked call. */
int cli_stop_start(void);
void cli_stop_end(void);                    /* ends the watcher thread */
int cli_stop_signal(void);                  /* the signal taken, 0 if none */
int cli_stop_fd(void);                      /* readable once a signal came */
int cli_stop_status(int status);            /* 128 + the signal, or status */
int cli_stop_wait(void);                    /* blocks until a signal; returns it */
/* watching returns -1 (and closes what it was given) if a signal came already */
int cli_stop_watch_endpoint(iroh_endpoint *ep);
void cli_stop_forget_endpoint(void);
int cli_stop_watch_conn(iroh_connection *c);
void cli_stop_forget_conn(iroh_connection *c);

#endif
