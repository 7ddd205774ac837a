/* A TOML-subset reader for the servers' configuration files (`iroh-c relay --config`,
 * `iroh-c dns-server --config`): the syntax is read here, the keys are the caller's.
 *
 * The subset: `key = value` lines, bare and quoted keys, dotted keys (`access.allowlist`),
 * `[table]` and `[a.b.c]` headers, `#` comments, basic strings ("..." with the TOML escapes)
 * and literal strings ('...'), decimal integers (with `_` separators), floats, booleans,
 * arrays of strings (over several lines, trailing comma allowed) and inline tables
 * (`{ k = v, ... }`). Not supported (an error naming the line): multi-line strings,
 * arrays of tables, dates, hex/octal/binary integers, arrays of anything but strings.
 * A key or table given twice is an error. */
#ifndef IR_RELAY_TOML_H
#define IR_RELAY_TOML_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

enum { IR_TOML_STR, IR_TOML_INT, IR_TOML_FLOAT, IR_TOML_BOOL, IR_TOML_ARRAY };

typedef struct ir_toml_value {
    int type;
    char *s; /* IR_TOML_STR: NUL-terminated (no NUL inside); a handler may take it (set NULL) */
    int64_t i;
    double f;
    int b;
    char **items; /* IR_TOML_ARRAY: strings */
    size_t n;
} ir_toml_value;

void ir_toml_value_free(ir_toml_value *v);

typedef struct ir_toml_reader ir_toml_reader;
struct ir_toml_reader {
    /* set by the caller */
    char *error;     /* "line N: what is wrong" on failure */
    size_t error_cap;
    char *notes;     /* ir_toml_note lines are appended (NUL-terminated; may be NULL) */
    size_t notes_cap;
    /* a key (dotted with its table: "tls.cert_dir") and its value; a table header's name;
     * each returns 0, or -1 after ir_toml_fail */
    int (*key)(ir_toml_reader *r, void *ctx, const char *key, ir_toml_value *v);
    int (*table)(ir_toml_reader *r, void *ctx, const char *name);
    void *ctx;
    /* the reader's own */
    const char *p, *end;
    int line; /* the line being read, for messages */
    int failed;
    char **seen;
    size_t nseen, capseen;
};

/* Reads text; 0, or -1 with r->error set. */
int ir_toml_parse(ir_toml_reader *r, const char *text, size_t len);
/* Fails the read with "line N: <message>"; returns -1. */
int ir_toml_fail(ir_toml_reader *r, const char *fmt, ...) IR_PRINTF(2, 3);
/* Appends "line N: 'key' ignored (why)" to r->notes. */
void ir_toml_note(ir_toml_reader *r, const char *key, const char *why);

/* Typed values for key handlers: each returns 0 or -1 after ir_toml_fail naming key. */
int ir_toml_want(ir_toml_reader *r, const char *key, const ir_toml_value *v, int type);
/* a socket address string (IP:PORT); taken into *dst (freed first) unless dst is NULL */
int ir_toml_take_addr(ir_toml_reader *r, const char *key, ir_toml_value *v, char **dst);
/* a non-empty string, taken into *dst (freed first) */
int ir_toml_take_path(ir_toml_reader *r, const char *key, ir_toml_value *v, char **dst);
/* an integer 1 .. 2^32-1 */
int ir_toml_take_u32(ir_toml_reader *r, const char *key, const ir_toml_value *v, uint32_t *dst);

#endif
