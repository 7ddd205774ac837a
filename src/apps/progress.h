/* The live progress line of the network commands (progress.c): on a terminal, one line
 * on stderr with the bytes sent and received, the current rate each way and the path
 * in use, redrawn a few times a second and erased at the end. Usable by any command
 * that moves bytes (listen, connect, the tunnels): the command counts its bytes with
 * progress_sent / progress_received (from any thread) and names the connection whose
 * path is shown. Every call takes NULL (no progress line) and then does nothing. */
#ifndef IR_APPS_PROGRESS_H
#define IR_APPS_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "iroh.h"

typedef struct progress progress;

/* The redraw interval: four times a second. */
#define PROGRESS_INTERVAL_MS 250

/* Starts the line unless quiet or stderr is not a terminal (then NULL, nothing shown;
 * also NULL when it cannot start a thread). */
progress *progress_start(int quiet);
/* The connection whose selected path the line shows; NULL: none (before it is open,
 * after it is gone). Call with NULL before freeing the connection it names. */
void progress_set_conn(progress *p, iroh_connection *conn);
/* n more bytes went to the peer / came from the peer (any thread) */
void progress_sent(progress *p, uint64_t n);
void progress_received(progress *p, uint64_t n);
/* Erases the line and ends its thread; call before printing the final messages. */
void progress_stop(progress *p);

/* The line's text for the given figures (rates in bytes per second; path: e.g. "direct
 * 1.2.3.4:5", may be NULL), cut to width - 1 characters so that it never wraps; for the
 * thread above and for tests. */
void progress_format(char *out, size_t len, uint64_t sent, uint64_t received, double up_rate,
                     double down_rate, const char *path, int width);

#endif
