/* WebSocket (RFC 6455) for the relay as a sans-IO codec: an incremental frame parser that
 * yields whole messages, a frame writer, and the HTTP/1.1 upgrade of spec relay.md
 * sections 1.2-1.4 (tokio-websockets 0.13 behaviour on both ends).
 *
 * Parser use (the relay server reads masked client frames):
 *
 *     ir_ws_parser p;
 *     ir_ws_parser_init(&p, IR_WS_ROLE_SERVER, IR_RELAY_MAX_FRAME_SIZE);
 *     ... n = read(fd, buf, sizeof buf) ...
 *     size_t off = 0;
 *     while (off < n) {
 *         size_t used;
 *         ir_ws_message m;
 *         int rc = ir_ws_parser_feed(&p, buf + off, n - off, &used, &m);
 *         off += used;
 *         if (rc < 0) close (rc and iroh_last_error() say why);
 *         if (rc == 1) handle m (m.data is valid until the next feed and while buf lives);
 *     }
 *     ir_ws_parser_free(&p);
 *
 * A frame whose payload lies wholly in the fed bytes is returned in place (masked payloads
 * are unmasked in the caller's buffer, hence `uint8_t *data`); payloads that span feeds
 * and fragmented messages are assembled in a buffer the parser owns and reuses. Ping and
 * pong are returned like other messages (the caller answers pings); a close message ends
 * the parser (further feeds fail with IROH_ERR_CLOSED).
 */
#ifndef IR_RELAY_WS_H
#define IR_RELAY_WS_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "http.h"

#define IR_WS_OP_CONT 0x0
#define IR_WS_OP_TEXT 0x1
#define IR_WS_OP_BINARY 0x2
#define IR_WS_OP_CLOSE 0x8
#define IR_WS_OP_PING 0x9
#define IR_WS_OP_PONG 0xa

#define IR_WS_MAX_CONTROL 125
#define IR_WS_MAX_HEADER 14 /* 2 + 8 + 4 */

/* Close codes. */
#define IR_WS_CLOSE_NORMAL 1000
#define IR_WS_CLOSE_PROTOCOL_ERROR 1002
#define IR_WS_CLOSE_MESSAGE_TOO_BIG 1009

typedef enum ir_ws_role {
    IR_WS_ROLE_SERVER = 0, /* reads masked frames, writes unmasked */
    IR_WS_ROLE_CLIENT = 1, /* reads unmasked frames, writes masked */
} ir_ws_role;

typedef struct ir_ws_message {
    uint8_t opcode;      /* TEXT, BINARY, CLOSE, PING or PONG */
    const uint8_t *data; /* payload (for CLOSE the whole payload: code and reason) */
    size_t len;
    uint16_t close_code; /* CLOSE: the code, or 0 when the payload was empty */
    const uint8_t *close_reason; /* CLOSE: UTF-8 reason (may be empty) */
    size_t close_reason_len;
} ir_ws_message;

typedef struct ir_ws_parser {
    ir_ws_role role;
    size_t max_message;
    int failed; /* sticky error code, or IROH_ERR_CLOSED after a close message */
    /* frame header being read */
    uint8_t hdr[IR_WS_MAX_HEADER];
    uint8_t hdr_have, hdr_need;
    /* the current frame, once its header is complete */
    int in_frame;
    uint8_t fin, opcode, masked;
    uint8_t mask[4];
    uint64_t frame_len, frame_got;
    /* a control frame's payload collected across feeds */
    uint8_t ctl[IR_WS_MAX_CONTROL];
    /* the data message being assembled */
    uint8_t msg_opcode; /* TEXT or BINARY while a fragmented message is open, else 0 */
    uint8_t *msg;
    size_t msg_len, msg_cap;
    int msg_in_buf; /* the current data frame's payload goes to msg */
} ir_ws_parser;

/* max_message bounds every frame payload and every reassembled message (use
 * IR_RELAY_MAX_FRAME_SIZE, 1 MiB, as upstream). */
void ir_ws_parser_init(ir_ws_parser *p, ir_ws_role role, size_t max_message);
void ir_ws_parser_free(ir_ws_parser *p);
/* Takes bytes up to the end of the next complete message. Returns 1 with *msg set, 0
 * when all of data was consumed without completing one, or a negative error (sticky):
 * IROH_ERR_INVALID_ARGUMENT for a protocol violation (RSV bits, unknown opcode, bad
 * masking for the role, fragmented or oversized control frame, non-minimal length, an
 * unexpected or missing continuation, bad close payload, text that is not UTF-8),
 * IROH_ERR_TOO_LONG above max_message, IROH_ERR_NO_MEMORY, IROH_ERR_CLOSED after a close
 * message was returned. *consumed says how much of data was used in every case. */
int ir_ws_parser_feed(ir_ws_parser *p, uint8_t *data, size_t len, size_t *consumed,
                      ir_ws_message *msg);

/* ---- writing --------------------------------------------------------------------------- */

/* Header bytes for a payload of len (2, 4 or 10; +4 with a mask). */
size_t ir_ws_header_len(uint64_t len, int masked);
/* Writes a frame header (fin set or not, the opcode, minimal length form, the mask key
 * when mask != NULL) and returns its length. out must have room for IR_WS_MAX_HEADER. */
size_t ir_ws_write_header(uint8_t *out, int fin, uint8_t opcode, uint64_t len, const uint8_t mask[4]);
/* XORs data with the key, starting at payload offset `offset` (so a payload can be
 * masked in pieces). */
void ir_ws_mask(uint8_t *data, size_t len, const uint8_t key[4], uint64_t offset);
/* One whole (fin) frame: header then payload, masked with `mask` when it is not NULL
 * (clients must mask with a fresh random key per frame, servers must not). Control frames
 * over 125 bytes are refused. IROH_ERR_BUFFER_TOO_SMALL if cap is short. */
int ir_ws_write_frame(uint8_t *out, size_t cap, uint8_t opcode, const uint8_t *payload, size_t len,
                      const uint8_t mask[4], size_t *written);
/* A close frame with a code (0: empty payload) and a UTF-8 reason of <= 123 bytes. */
int ir_ws_write_close(uint8_t *out, size_t cap, uint16_t code, const char *reason,
                      const uint8_t mask[4], size_t *written);

/* ---- the HTTP upgrade ------------------------------------------------------------------ */

#define IR_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define IR_WS_KEY_LEN 24    /* base64 of 16 bytes */
#define IR_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */
#define IR_RELAY_PATH "/relay"
#define IR_RELAY_PROTO_V1 "iroh-relay-v1"
#define IR_RELAY_PROTO_V2 "iroh-relay-v2"
#define IR_RELAY_PROTOCOLS "iroh-relay-v2, iroh-relay-v1"
#define IR_RELAY_HSTS "max-age=63072000; includeSubDomains"
#define IR_RELAY_CSP                                                                       \
    "default-src 'none'; frame-ancestors 'none'; form-action 'none'; base-uri 'self'; "   \
    "block-all-mixed-content; plugin-types 'none'"

/* Sec-WebSocket-Key from 16 random bytes: 24 characters and a NUL. */
void ir_ws_make_key(const uint8_t random16[16], char out[IR_WS_KEY_LEN + 1]);
/* Sec-WebSocket-Accept = base64(SHA-1(key || GUID)): 28 characters and a NUL. */
void ir_ws_accept_key(const char *key, size_t key_len, char out[IR_WS_ACCEPT_LEN + 1]);

/* The client's upgrade request, exactly as iroh sends it (spec 1.2). */
typedef struct ir_ws_request_opts {
    const char *host;        /* Host value: "host" or "host:port" (port only if explicit) */
    const char *path;        /* "/relay" plus the URL's "?query" if any; NULL: "/relay" */
    const char *key;         /* Sec-WebSocket-Key (ir_ws_make_key) */
    const char *protocols;   /* NULL: IR_RELAY_PROTOCOLS */
    const char *auth_token;  /* NULL or the bearer token */
    const char *client_auth; /* NULL or the x-iroh-relay-client-auth-v1 value (TLS only) */
} ir_ws_request_opts;
/* Writes the request into out[0..cap) (no NUL) and sets *written. Values containing
 * CR, LF or other control characters are refused (IROH_ERR_INVALID_ARGUMENT). */
int ir_ws_build_request(const ir_ws_request_opts *o, char *out, size_t cap, size_t *written);

/* The server's verdict on a request for GET /relay (spec 1.3, http_server.rs). Its pointers
 * point into the parsed request (i.e. into the head buffer). */
typedef struct ir_ws_upgrade {
    int version;                          /* IR_RELAY_V1 or IR_RELAY_V2 */
    const char *key;                      /* Sec-WebSocket-Key, as sent */
    size_t key_len;
    const ir_http_header *client_auth;    /* x-iroh-relay-client-auth-v1, or NULL */
    const ir_http_header *authorization;  /* first Authorization header, or NULL */
    /* on failure: */
    int status;                           /* 400 (or 404 when not GET /relay) */
    int send_version;                     /* add "Sec-WebSocket-Version: 13" to the 400 */
    char error[320];                      /* the text body (upstream's wording) */
} ir_ws_upgrade;
/* IROH_OK, or IROH_ERR_UNSUPPORTED when the request is not GET /relay (route it
 * elsewhere), or IROH_ERR_HANDSHAKE with u->status / u->error / u->send_version filled
 * for the 400. Checks, in upstream's order: Upgrade byte-equal to "websocket",
 * Sec-WebSocket-Key present, Sec-WebSocket-Version exactly "13", Sec-WebSocket-Protocol
 * visible ASCII naming a known version (the highest wins). HTTP/1.0 requests are
 * refused (no upgrades in HTTP/1.0). The caller also refuses the connection when bytes
 * followed the request head before the 101 was sent. */
int ir_ws_check_upgrade(const ir_http_request *req, ir_ws_upgrade *u);

/* The 101 Switching Protocols for an accepted upgrade (headers as hyper writes them, with
 * iroh's HSTS and CSP headers). */
int ir_ws_build_response_101(const ir_ws_upgrade *u, char *out, size_t cap, size_t *written);
/* A complete HTTP/1.1 response for a refused upgrade: status and text body of u. */
int ir_ws_build_reject(const ir_ws_upgrade *u, char *out, size_t cap, size_t *written);

/* The client's check of the server's answer (tokio-websockets + iroh client.rs): status
 * 101, the first Sec-WebSocket-Accept decoding to SHA-1(key || GUID), the (last)
 * Sec-WebSocket-Protocol naming a known version. Sets *version. IROH_ERR_HANDSHAKE
 * otherwise (with a detail). The header count limit of 25 is the parser's. */
int ir_ws_check_response(const ir_http_response *resp, const char *key, size_t key_len,
                         int *version);

#endif
