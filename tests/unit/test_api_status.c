/* The layers' own status codes and their one conversion to IROH_ERR_* (api_status.h):
 * no internal status has the value of a public code, and each maps to the public code
 * it stands for. */
#include <string.h>

#include "endpoint/api_status.h"
#include "iroh.h"
#include "quic/conn.h"
#include "relay/tls_stream.h"
#include "test.h"

static const struct {
    long status;
    int public_code;
} quic_map[] = {
    {IR_QUIC_OK, IROH_OK},
    {IR_QUIC_AGAIN, IROH_ERR_TIMEOUT},
    {IR_QUIC_STREAM_ERR, IROH_ERR_STATE},
    {IR_QUIC_STREAM_RESET, IROH_ERR_STREAM_RESET},
    {IR_QUIC_NO_MEMORY, IROH_ERR_NO_MEMORY},
    {IR_QUIC_STREAM_STOPPED, IROH_ERR_STREAM_STOPPED},
};
#define NMAP (sizeof quic_map / sizeof quic_map[0])

TEST(quic_status_is_no_public_code)
{
    /* iroh_strerror names every public code: none of it may name an internal status
     * (IR_AGAIN and friends were once -11..-14, the values of IROH_ERR_HANDSHAKE ..
     * IROH_ERR_FINISHED_EARLY) */
    for (size_t i = 1; i < NMAP; i++) {
        CHECK(quic_map[i].status < 0);
        CHECK_STR(iroh_strerror((int)quic_map[i].status), "unknown error");
        for (size_t j = 0; j < i; j++)
            CHECK(quic_map[i].status != quic_map[j].status);
    }
    /* and no public code from 0 down past the last one is an internal status */
    for (int v = 0; v >= -100; v--)
        for (size_t i = 1; i < NMAP; i++)
            CHECK(v != quic_map[i].status);
}

TEST(relay_status_is_no_public_code)
{
    /* the TLS stream's "not now" shares a return value with its IROH_ERR_* errors (it was
     * -1, IROH_ERR_INVALID_ARGUMENT) */
    CHECK(IR_TLS_STREAM_AGAIN < 0);
    CHECK_STR(iroh_strerror(IR_TLS_STREAM_AGAIN), "unknown error");
    for (size_t i = 1; i < NMAP; i++)
        CHECK(IR_TLS_STREAM_AGAIN != quic_map[i].status);
}

TEST(quic_status_maps_to_its_public_code)
{
    for (size_t i = 0; i < NMAP; i++)
        CHECK_EQ_INT(ir_api_status_from_quic(quic_map[i].status), quic_map[i].public_code);
    /* a count is success; anything else negative is a state error, never a public code
     * passed through by accident */
    CHECK_EQ_INT(ir_api_status_from_quic(1), IROH_OK);
    CHECK_EQ_INT(ir_api_status_from_quic(65536), IROH_OK);
    CHECK_EQ_INT(ir_api_status_from_quic(-1), IROH_ERR_STATE);
    CHECK_EQ_INT(ir_api_status_from_quic(IROH_ERR_HANDSHAKE), IROH_ERR_STATE);
    CHECK_EQ_INT(ir_api_status_from_quic(-1006), IROH_ERR_STATE);
}

int main(void)
{
    RUN(quic_status_is_no_public_code);
    RUN(relay_status_is_no_public_code);
    RUN(quic_status_maps_to_its_public_code);
    TEST_EXIT();
}
