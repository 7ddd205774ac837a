/* QUIC address discovery in the connection core (OBSERVED_ADDRESS frames, the transport
 * parameter's roles, reports after migrations, X.509 mode as the relay's QAD service):
 * fuzz_conn.c's live connection pair with the additions of fuzz_conn_qad.h. */
#define FUZZ_CONN_QAD 1
#include "fuzz_conn.c"
