/* The resolver's TXT query and the reading of its response (see txt_query.h). */
#include "txt_query.h"

#include <ldns/ldns.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "dns_internal.h"

static ldns_rdf *query_name(const uint8_t id[32], const char *origin)
{
    char name[260];
    if (!origin || !*origin || !ir_endpoint_info_name(id, origin, name, sizeof name) ||
        !strchr(name + 6 + 52, '.'))
        return NULL;
    return ldns_dname_new_frm_str(name);
}

int ir_dns_txt_query(const uint8_t id[32], const char *origin, uint16_t qid, uint8_t *out,
                     size_t cap, size_t *len)
{
    if (!id || !len || (!out && cap))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "DNS query: NULL argument");
    ldns_rdf *qname = query_name(id, origin);
    if (!qname)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "DNS query: no usable origin \"%.64s\"",
                       origin ? origin : "");
    /* ldns_pkt_query_new takes qname */
    ldns_pkt *q = ldns_pkt_query_new(qname, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, LDNS_RD);
    if (!q) {
        ldns_rdf_deep_free(qname);
        return ir_fail(IROH_ERR_NO_MEMORY, "DNS query: out of memory");
    }
    ldns_pkt_set_id(q, qid);
    ldns_pkt_set_edns_udp_size(q, IR_DNS_EDNS_UDP_SIZE);
    uint8_t *wire = NULL;
    size_t wlen = 0;
    int rc = 0;
    if (ldns_pkt2wire(&wire, q, &wlen) != LDNS_STATUS_OK)
        rc = ir_fail(IROH_ERR_NO_MEMORY, "DNS query could not be written");
    ldns_pkt_free(q);
    if (rc == 0) {
        *len = wlen;
        if (wlen > cap)
            rc = ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "DNS query of %zu bytes (room for %zu)",
                         wlen, cap);
        else
            memcpy(out, wire, wlen);
    }
    free(wire);
    return rc;
}

int ir_dns_txt_response(const uint8_t id[32], const char *origin, uint16_t qid,
                        const uint8_t *msg, size_t len, ir_endpoint_info *out, int *rcode)
{
    if (!id || !out || (!msg && len))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "DNS response: NULL argument");
    ldns_rdf *qname = query_name(id, origin);
    if (!qname)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "DNS response: no usable origin");
    ldns_pkt *pkt = NULL;
    int rc;
    if (ldns_wire2pkt(&pkt, msg, len) != LDNS_STATUS_OK) {
        rc = ir_fail(IROH_ERR_INVALID_ARGUMENT, "DNS response does not parse");
        goto done;
    }
    if (!ldns_pkt_qr(pkt) || ldns_pkt_id(pkt) != qid ||
        ldns_pkt_get_opcode(pkt) != LDNS_PACKET_QUERY) {
        rc = ir_fail(IROH_ERR_INVALID_ARGUMENT, "not a response to our DNS query (QR, ID, opcode)");
        goto done;
    }
    ldns_rr_list *qd = ldns_pkt_question(pkt);
    const ldns_rr *q = qd && ldns_rr_list_rr_count(qd) == 1 ? ldns_rr_list_rr(qd, 0) : NULL;
    if (!q || ldns_rr_get_type(q) != LDNS_RR_TYPE_TXT ||
        ldns_rr_get_class(q) != LDNS_RR_CLASS_IN || !ldns_rr_owner(q) ||
        ldns_dname_compare(ldns_rr_owner(q), qname) != 0) {
        rc = ir_fail(IROH_ERR_INVALID_ARGUMENT, "DNS response to another question");
        goto done;
    }
    int rcd = (int)ldns_pkt_get_rcode(pkt);
    if (rcode)
        *rcode = rcd;
    if (ldns_pkt_tc(pkt)) {
        rc = IR_DNS_TXT_TRUNCATED;
    } else if (rcd == LDNS_RCODE_NXDOMAIN) {
        rc = IR_DNS_TXT_NONE;
    } else if (rcd != LDNS_RCODE_NOERROR) {
        rc = IR_DNS_TXT_FAILED;
    } else {
        int n = ir_dns_endpoint_info_from_pkt(id, origin, pkt, len, out);
        rc = n < 0 ? IR_DNS_TXT_FAILED : n == 0 ? IR_DNS_TXT_NONE : IR_DNS_TXT_FOUND;
    }
done:
    ldns_rdf_deep_free(qname);
    if (pkt)
        ldns_pkt_free(pkt);
    return rc;
}
