/* Shared pieces of the iroh-c command. */
#ifndef IR_APPS_CMDS_H
#define IR_APPS_CMDS_H

#include "iroh.h"

/* "iroh-c: <message>" on stderr; returns exit status 2 */
int cli_usage(const char *fmt, const char *arg);
/* "iroh-c: <what>: <strerror>: <detail>"; returns 2 */
int cli_api_error(const char *what, int rc);
/* reads a secret key file (hex or base32, one line); 0 or an exit status */
int cli_read_secret_file(const char *path, iroh_secret_key *key);

int cmd_listen(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_relay(int argc, char **argv);

#endif
