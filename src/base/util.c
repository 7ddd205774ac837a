#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>
#include <string.h>

static _Thread_local char last_error[256];

int ir_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

const char *iroh_last_error(void)
{
    return last_error;
}

const char *iroh_version(void)
{
    return IROH_VERSION_STRING;
}

const char *iroh_strerror(int code)
{
    switch (code) {
    case IROH_OK: return "ok";
    case IROH_ERR_INVALID_ARGUMENT: return "invalid argument";
    case IROH_ERR_NO_MEMORY: return "out of memory";
    case IROH_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case IROH_ERR_INVALID_KEY: return "invalid key";
    case IROH_ERR_INVALID_SIGNATURE: return "invalid signature";
    case IROH_ERR_INVALID_ADDR: return "invalid address";
    case IROH_ERR_INVALID_TICKET: return "invalid ticket";
    case IROH_ERR_IO: return "I/O error";
    case IROH_ERR_TIMEOUT: return "timed out";
    case IROH_ERR_CONNECTION_CLOSED: return "connection closed";
    case IROH_ERR_HANDSHAKE: return "handshake failed";
    case IROH_ERR_STREAM_RESET: return "stream reset by peer";
    case IROH_ERR_STREAM_STOPPED: return "stream stopped by peer";
    case IROH_ERR_FINISHED_EARLY: return "stream finished early";
    case IROH_ERR_TOO_LONG: return "too long";
    case IROH_ERR_CLOSED: return "endpoint closed";
    case IROH_ERR_UNSUPPORTED: return "unsupported";
    case IROH_ERR_STATE: return "invalid state";
    case IROH_ERR_NOT_FOUND: return "not found";
    }
    return "unknown error";
}

void ir_buf_init(ir_buf *b)
{
    memset(b, 0, sizeof *b);
}

void ir_buf_free(ir_buf *b)
{
    free(b->data);
    ir_buf_init(b);
}

int ir_buf_reserve(ir_buf *b, size_t extra)
{
    if (b->oom)
        return IROH_ERR_NO_MEMORY;
    if (extra <= b->cap - b->len)
        return IROH_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return IROH_ERR_NO_MEMORY;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return IROH_ERR_NO_MEMORY;
    }
    b->data = p;
    b->cap = cap;
    return IROH_OK;
}

void ir_buf_append(ir_buf *b, const void *data, size_t len)
{
    if (len == 0 || ir_buf_reserve(b, len) != IROH_OK)
        return;
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void ir_buf_byte(ir_buf *b, uint8_t v)
{
    ir_buf_append(b, &v, 1);
}

void ir_random_bytes(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    while (len) {
        ssize_t n = getrandom(buf, len, 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            abort();
        }
        buf += n;
        len -= (size_t)n;
    }
}
