/* Conversion of layer status codes to IROH_ERR_* (api_status.h). */
#include "endpoint/api_status.h"

#include "iroh.h"
#include "quic/conn.h"

int ir_api_status_from_quic(long st)
{
    if (st >= 0)
        return IROH_OK;
    switch (st) {
    case IR_QUIC_AGAIN: return IROH_ERR_TIMEOUT;
    case IR_QUIC_STREAM_ERR: return IROH_ERR_STATE;
    case IR_QUIC_STREAM_RESET: return IROH_ERR_STREAM_RESET;
    case IR_QUIC_NO_MEMORY: return IROH_ERR_NO_MEMORY;
    case IR_QUIC_STREAM_STOPPED: return IROH_ERR_STREAM_STOPPED;
    default: return IROH_ERR_STATE;
    }
}
