/* EndpointTicket (iroh-tickets 1.0): "endpoint" || base32(00 || EndpointAddr postcard). */
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "encoding.h"

#define TICKET_PREFIX "endpoint"
#define TICKET_PREFIX_LEN 8
#define TICKET_VARIANT1 0

int iroh_endpoint_ticket_encode(const iroh_endpoint_addr *addr, char *buf, size_t buflen,
                                size_t *needed)
{
    if (!addr)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "addr is NULL");
    ir_buf b;
    ir_buf_init(&b);
    ir_buf_byte(&b, TICKET_VARIANT1);
    ir_endpoint_addr_encode(addr, &b);
    if (b.oom) {
        ir_buf_free(&b);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    size_t need = TICKET_PREFIX_LEN + ir_b32_encoded_len(b.len) + 1;
    if (needed)
        *needed = need;
    if (!buf || buflen < need) {
        ir_buf_free(&b);
        return ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "the ticket needs %zu bytes", need);
    }
    memcpy(buf, TICKET_PREFIX, TICKET_PREFIX_LEN);
    ir_b32_encode(IR_B32_RFC4648, b.data, b.len, buf + TICKET_PREFIX_LEN);
    ir_buf_free(&b);
    return IROH_OK;
}

int iroh_endpoint_ticket_decode(const char *ticket, iroh_endpoint_addr **out)
{
    if (!ticket || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    *out = NULL;
    size_t len = strlen(ticket);
    if (len < TICKET_PREFIX_LEN || memcmp(ticket, TICKET_PREFIX, TICKET_PREFIX_LEN) != 0)
        return ir_fail(IROH_ERR_INVALID_TICKET, "wrong prefix, expected %s", TICKET_PREFIX);
    const char *body = ticket + TICKET_PREFIX_LEN;
    size_t body_len = len - TICKET_PREFIX_LEN;
    size_t cap = ir_b32_decoded_len(body_len);
    uint8_t *bytes = malloc(cap ? cap : 1);
    if (!bytes)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    size_t pos = 0;
    long n = ir_b32_decode(IR_B32_RFC4648, body, body_len, bytes, cap, &pos);
    if (n < 0) {
        free(bytes);
        return ir_fail(IROH_ERR_INVALID_TICKET, "invalid base32: %s at %zu",
                       n == IR_B32_E_SYMBOL   ? "invalid symbol"
                       : n == IR_B32_E_LENGTH ? "invalid length"
                                              : "non-zero trailing bits",
                       pos);
    }
    ir_pc_reader r;
    ir_pc_reader_init(&r, bytes, (size_t)n);
    uint64_t variant;
    int rc;
    if (ir_pc_get_varint(&r, UINT32_MAX, &variant) != 0)
        rc = ir_fail(IROH_ERR_INVALID_TICKET, "empty ticket");
    else if (variant != TICKET_VARIANT1)
        rc = ir_fail(IROH_ERR_INVALID_TICKET, "unknown ticket version %llu",
                     (unsigned long long)variant);
    else
        rc = ir_endpoint_addr_decode(&r, IROH_ERR_INVALID_TICKET, out); /* trailing bytes ignored */
    free(bytes);
    return rc;
}
