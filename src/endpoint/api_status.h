/* The one conversion from a lower layer's own status codes to the public IROH_ERR_*
 * (include/iroh.h). The QUIC connection reports ir_quic_status (quic/conn.h); every
 * public call in api.c that gets one turns it into its IROH_ERR_* here, nowhere else.
 * (Layers that implement public calls themselves, base and relay, report IROH_ERR_* with
 * ir_fail directly; docs/ARCHITECTURE.md "Error codes".) */
#ifndef IR_ENDPOINT_API_STATUS_H
#define IR_ENDPOINT_API_STATUS_H

/* st: a count (>= 0, IROH_OK) or an ir_quic_status. IR_QUIC_AGAIN becomes
 * IROH_ERR_TIMEOUT (a call waits on it and reports that when its time is up); a value
 * that is no ir_quic_status becomes IROH_ERR_STATE. */
int ir_api_status_from_quic(long st);

#endif
