/* A small HTTP/1.x head reader and parser for the relay's upgrade handshake and its
 * plain HTTP endpoints: sans-IO, no allocation.
 *
 * ir_http_reader collects a request or response head (up to the empty line) from bytes
 * that arrive in pieces, and stops exactly after it, so that bytes following the head
 * (the first WebSocket frames coalesced with a 101) stay with the caller:
 *
 *     size_t used;
 *     int rc = ir_http_reader_feed(&r, data, len, &used);
 *     if (rc < 0) fail;                  // head too large
 *     if (rc == 0) read more;            // all of data was taken
 *     // rc == 1: r.buf[0..r.len) is the head; data[used..len) follows it
 *
 * The parsers follow httparse's rules as hyper and tokio-websockets use them: CRLF or bare
 * LF line ends, single spaces in the start line, token header names directly followed by
 * ':', values trimmed of spaces and tabs, no obsolete line folding, HTTP/1.0 or 1.1. */
#ifndef IR_RELAY_HTTP_H
#define IR_RELAY_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* Largest head the reader takes (request line or status line and all headers). */
#define IR_HTTP_MAX_HEAD 16384
/* Headers a request may have (more: 431 / refused). */
#define IR_HTTP_MAX_REQUEST_HEADERS 64
/* Headers a response may have: tokio-websockets parses the 101 into 25 slots. */
#define IR_HTTP_MAX_RESPONSE_HEADERS 25

typedef struct ir_http_reader {
    uint8_t buf[IR_HTTP_MAX_HEAD];
    size_t len;
    int state; /* end-of-head scanner state */
    int done;
} ir_http_reader;

void ir_http_reader_init(ir_http_reader *r);
/* Takes bytes up to the end of the head. Returns 1 when the head is complete (*consumed
 * bytes of data were taken, the rest follows the head), 0 when all of data was taken and
 * more is needed, IROH_ERR_TOO_LONG when the head exceeds IR_HTTP_MAX_HEAD, and
 * IROH_ERR_STATE once complete. */
int ir_http_reader_feed(ir_http_reader *r, const uint8_t *data, size_t len, size_t *consumed);

typedef struct ir_http_header {
    const char *name; /* not NUL-terminated */
    size_t name_len;
    const char *value; /* trimmed, not NUL-terminated */
    size_t value_len;
} ir_http_header;

typedef struct ir_http_request {
    const char *method;
    size_t method_len;
    const char *target; /* request-target as sent */
    size_t target_len;
    const char *path; /* target up to '?' */
    size_t path_len;
    const char *query; /* after '?', NULL if none */
    size_t query_len;
    int minor_version; /* 0 or 1 */
    size_t n_headers;
    ir_http_header headers[IR_HTTP_MAX_REQUEST_HEADERS];
} ir_http_request;

typedef struct ir_http_response {
    int minor_version;
    int status;
    const char *reason;
    size_t reason_len;
    size_t n_headers;
    ir_http_header headers[IR_HTTP_MAX_RESPONSE_HEADERS];
} ir_http_response;

/* Parse a complete head (as ir_http_reader collects it; the empty line must end it).
 * Fields point into head. IROH_ERR_INVALID_ARGUMENT for malformed input, IROH_ERR_TOO_LONG
 * for too many headers. */
int ir_http_parse_request(const uint8_t *head, size_t len, ir_http_request *req);
int ir_http_parse_response(const uint8_t *head, size_t len, ir_http_response *resp);

/* The first / last header of that name (ASCII case-insensitive), or NULL. */
const ir_http_header *ir_http_find(const ir_http_header *h, size_t n, const char *name);
const ir_http_header *ir_http_find_last(const ir_http_header *h, size_t n, const char *name);
/* 1 if the value equals s exactly (case-sensitive). */
int ir_http_value_is(const ir_http_header *h, const char *s);
/* 1 if the bytes are visible ASCII or tab (http's HeaderValue::to_str rule). */
int ir_http_visible_ascii(const char *s, size_t len);

/* The items of a comma-separated header value (RFC 9110 5.6.1), each without the spaces
 * and tabs around it, empty ones included ("a, ,b" is "a", "", "b"; "" is one empty item):
 *     ir_http_list l;
 *     ir_http_list_init(&l, h->value, h->value_len);
 *     while (ir_http_list_next(&l, &item, &item_len)) ... */
typedef struct ir_http_list {
    const char *s, *end;
    int done;
} ir_http_list;
void ir_http_list_init(ir_http_list *l, const char *value, size_t len);
int ir_http_list_next(ir_http_list *l, const char **item, size_t *item_len);
/* 1 if a comma-separated header value lists the token (ASCII case-insensitive). */
int ir_http_has_token(const ir_http_header *h, const char *tok);

#endif
