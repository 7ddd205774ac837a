/* Stream data buffers: the send side (unacknowledged bytes, what is lost and must be
 * sent again, FIN) and the receive side (reassembly from out-of-order frames). */
#ifndef IR_QUIC_STREAM_H
#define IR_QUIC_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "quic/ranges.h"

typedef struct ir_sendbuf {
    uint8_t *data;     /* bytes [base, end) at data[head ..) */
    size_t cap, head;
    uint64_t base;     /* everything below is acknowledged and released */
    uint64_t end;      /* bytes written by the application */
    uint64_t next;     /* first byte never sent */
    ir_ranges acked;   /* acknowledged ranges above base */
    ir_ranges lost;    /* ranges to send again */
    int fin;           /* the application finished the stream at `end` */
    int fin_sent, fin_acked, fin_lost;
} ir_sendbuf;

void ir_sendbuf_init(ir_sendbuf *b);
void ir_sendbuf_free(ir_sendbuf *b);
/* Appends application bytes; returns 0 or -1 (allocation). */
int ir_sendbuf_write(ir_sendbuf *b, const uint8_t *data, size_t len);
/* The next range to send, at most max bytes and below limit (flow control) for new
 * data: lost data first. Returns 1 and fills off/len/fin if something (data or a lone
 * FIN) is ready, 0 if not. */
int ir_sendbuf_next(const ir_sendbuf *b, uint64_t limit, size_t max, uint64_t *off,
                    size_t *len, int *fin);
/* Pointer to the bytes at off (within [base, end)). */
const uint8_t *ir_sendbuf_at(const ir_sendbuf *b, uint64_t off);
/* Records that [off, off+len) (+fin) went into a packet. */
void ir_sendbuf_sent(ir_sendbuf *b, uint64_t off, size_t len, int fin);
void ir_sendbuf_on_ack(ir_sendbuf *b, uint64_t off, size_t len, int fin);
void ir_sendbuf_on_lost(ir_sendbuf *b, uint64_t off, size_t len, int fin);
/* 1 when every byte and the FIN are acknowledged. */
int ir_sendbuf_done(const ir_sendbuf *b);
/* bytes written but not yet acknowledged */
static inline uint64_t ir_sendbuf_buffered(const ir_sendbuf *b)
{
    return b->end - b->base;
}

typedef struct ir_recvbuf {
    uint8_t *data;      /* bytes from `read` on, at data[head ..) */
    size_t cap, head;
    uint64_t read;      /* consumed by the application */
    ir_ranges have;     /* received ranges (absolute offsets) at or above read */
    uint64_t highest;   /* highest offset + 1 received */
    uint64_t final_size;
    int have_final;
} ir_recvbuf;

void ir_recvbuf_init(ir_recvbuf *b);
void ir_recvbuf_free(ir_recvbuf *b);
/* Stores a frame's data. Returns 0, -1 on allocation failure, or -2 when it conflicts
 * with a known final size (FINAL_SIZE_ERROR). */
int ir_recvbuf_put(ir_recvbuf *b, uint64_t off, const uint8_t *data, size_t len, int fin);
/* Bytes readable now from `read`. */
size_t ir_recvbuf_readable(const ir_recvbuf *b);
/* Copies up to cap readable bytes out and consumes them. */
size_t ir_recvbuf_read(ir_recvbuf *b, uint8_t *out, size_t cap);
/* 1 when everything up to the final size has been read. */
int ir_recvbuf_finished(const ir_recvbuf *b);

#endif
