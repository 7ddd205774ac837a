/* pkarr SignedPacket: signing, the relay payload, verification (see pkarr.h). */
#include "pkarr.h"

#include <ldns/ldns.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"

size_t ir_pkarr_signable(uint64_t timestamp_us, const uint8_t *dns, size_t dns_len,
                         uint8_t out[IR_PKARR_SIGNABLE_MAX])
{
    if (dns_len > IR_PKARR_MAX_DNS)
        dns_len = IR_PKARR_MAX_DNS;
    /* at most 6 + 20 + 4 + 4 + 1 = 35 characters before the DNS bytes */
    int n = snprintf((char *)out, 40, "3:seqi%llue1:v%zu:", (unsigned long long)timestamp_us,
                     dns_len);
    if (n < 0 || n >= 40)
        return 0;
    if (dns_len)
        memcpy(out + n, dns, dns_len);
    return (size_t)n + dns_len;
}

int ir_pkarr_sign(const iroh_secret_key *sk, uint64_t timestamp_us, const uint8_t *dns,
                  size_t dns_len, ir_pkarr_packet *out)
{
    if (!sk || !out || (!dns && dns_len))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "pkarr sign: NULL argument");
    if (dns_len > IR_PKARR_MAX_DNS)
        return ir_fail(IROH_ERR_TOO_LONG, "pkarr: DNS packet of %zu bytes (max %d)", dns_len,
                       IR_PKARR_MAX_DNS);
    uint8_t msg[IR_PKARR_SIGNABLE_MAX];
    size_t mlen = ir_pkarr_signable(timestamp_us, dns, dns_len, msg);
    iroh_endpoint_id id;
    iroh_signature sig;
    iroh_secret_key_public(sk, &id);
    iroh_secret_key_sign(sk, msg, mlen, &sig);
    memcpy(out->key, id.bytes, 32);
    memcpy(out->sig, sig.bytes, 64);
    out->timestamp_us = timestamp_us;
    out->dns_len = dns_len;
    if (dns_len)
        memcpy(out->dns, dns, dns_len);
    return IROH_OK;
}

int ir_dns_msg_parses(const uint8_t *msg, size_t len)
{
    ldns_pkt *pkt = NULL;
    if (ldns_wire2pkt(&pkt, msg, len) != LDNS_STATUS_OK)
        return 0;
    ldns_pkt_free(pkt);
    return 1;
}

int ir_pkarr_from_relay_payload(const uint8_t key[32], const uint8_t *body, size_t len,
                                ir_pkarr_packet *out)
{
    if (!key || !out || (!body && len))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "pkarr: NULL argument");
    if (len < IR_PKARR_MIN_PAYLOAD)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT,
                       "signed packet too short: %zu bytes (min %d)", len + 32, IR_PKARR_HEADER);
    if (len > IR_PKARR_MAX_PAYLOAD)
        return ir_fail(IROH_ERR_TOO_LONG, "signed packet too large: %zu bytes (max %d)",
                       len + 32, IR_PKARR_HEADER + IR_PKARR_MAX_DNS);
    iroh_endpoint_id id;
    if (iroh_endpoint_id_from_bytes(key, &id) != IROH_OK)
        return ir_fail(IROH_ERR_INVALID_KEY, "signed packet: invalid public key");
    uint64_t ts = 0;
    for (int i = 0; i < 8; i++)
        ts = ts << 8 | body[64 + i];
    const uint8_t *dns = body + IR_PKARR_MIN_PAYLOAD;
    size_t dns_len = len - IR_PKARR_MIN_PAYLOAD;
    uint8_t msg[IR_PKARR_SIGNABLE_MAX];
    size_t mlen = ir_pkarr_signable(ts, dns, dns_len, msg);
    iroh_signature sig;
    memcpy(sig.bytes, body, 64);
    if (iroh_endpoint_id_verify(&id, msg, mlen, &sig) != IROH_OK)
        return ir_fail(IROH_ERR_INVALID_SIGNATURE, "signed packet: invalid signature");
    if (!ir_dns_msg_parses(dns, dns_len))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "signed packet: the DNS packet does not parse");
    memcpy(out->key, key, 32);
    memcpy(out->sig, body, 64);
    out->timestamp_us = ts;
    out->dns_len = dns_len;
    if (dns_len)
        memcpy(out->dns, dns, dns_len);
    return IROH_OK;
}

int ir_pkarr_from_bytes(const uint8_t *bytes, size_t len, ir_pkarr_packet *out)
{
    if (!bytes && len)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "pkarr: NULL argument");
    if (len < IR_PKARR_HEADER)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "signed packet too short: %zu bytes (min %d)",
                       len, IR_PKARR_HEADER);
    return ir_pkarr_from_relay_payload(bytes, bytes + 32, len - 32, out);
}

size_t ir_pkarr_relay_payload(const ir_pkarr_packet *p, uint8_t *out, size_t cap)
{
    if (!p || p->dns_len > IR_PKARR_MAX_DNS)
        return 0;
    size_t need = IR_PKARR_MIN_PAYLOAD + p->dns_len;
    if (!out || cap < need)
        return 0;
    memcpy(out, p->sig, 64);
    for (int i = 0; i < 8; i++)
        out[64 + i] = (uint8_t)(p->timestamp_us >> (56 - 8 * i));
    if (p->dns_len)
        memcpy(out + IR_PKARR_MIN_PAYLOAD, p->dns, p->dns_len);
    return need;
}

int ir_pkarr_more_recent(const ir_pkarr_packet *a, const ir_pkarr_packet *b)
{
    if (a->timestamp_us != b->timestamp_us)
        return a->timestamp_us > b->timestamp_us;
    /* Rust's slice order: bytewise, then the shorter prefix is smaller */
    size_t n = a->dns_len < b->dns_len ? a->dns_len : b->dns_len;
    int c = n ? memcmp(a->dns, b->dns, n) : 0;
    if (c)
        return c > 0;
    return a->dns_len > b->dns_len;
}
