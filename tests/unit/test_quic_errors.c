/* QUIC transport error codes (src/tls/quic_errors.h): the values and names against RFC
 * 9000 section 20.1, both as written down here and as read from the RFC's own registry
 * table (IROH_SHARED/rfc/rfc9000.md, when that file is there: it is outside the
 * repository). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/quic_errors.h"
#include "test.h"

TEST(values_and_names)
{
    /* RFC 9000 20.1, in order */
    static const struct {
        uint64_t code;
        uint64_t value;
        const char *name;
    } rfc[] = {
        {IR_QERR_NO_ERROR, 0x00, "NO_ERROR"},
        {IR_QERR_INTERNAL_ERROR, 0x01, "INTERNAL_ERROR"},
        {IR_QERR_CONNECTION_REFUSED, 0x02, "CONNECTION_REFUSED"},
        {IR_QERR_FLOW_CONTROL_ERROR, 0x03, "FLOW_CONTROL_ERROR"},
        {IR_QERR_STREAM_LIMIT_ERROR, 0x04, "STREAM_LIMIT_ERROR"},
        {IR_QERR_STREAM_STATE_ERROR, 0x05, "STREAM_STATE_ERROR"},
        {IR_QERR_FINAL_SIZE_ERROR, 0x06, "FINAL_SIZE_ERROR"},
        {IR_QERR_FRAME_ENCODING_ERROR, 0x07, "FRAME_ENCODING_ERROR"},
        {IR_QERR_TRANSPORT_PARAMETER_ERROR, 0x08, "TRANSPORT_PARAMETER_ERROR"},
        {IR_QERR_CONNECTION_ID_LIMIT_ERROR, 0x09, "CONNECTION_ID_LIMIT_ERROR"},
        {IR_QERR_PROTOCOL_VIOLATION, 0x0a, "PROTOCOL_VIOLATION"},
        {IR_QERR_INVALID_TOKEN, 0x0b, "INVALID_TOKEN"},
        {IR_QERR_APPLICATION_ERROR, 0x0c, "APPLICATION_ERROR"},
        {IR_QERR_CRYPTO_BUFFER_EXCEEDED, 0x0d, "CRYPTO_BUFFER_EXCEEDED"},
        {IR_QERR_KEY_UPDATE_ERROR, 0x0e, "KEY_UPDATE_ERROR"},
        {IR_QERR_AEAD_LIMIT_REACHED, 0x0f, "AEAD_LIMIT_REACHED"},
        {IR_QERR_NO_VIABLE_PATH, 0x10, "NO_VIABLE_PATH"},
        {IR_QERR_CRYPTO_ERROR, 0x100, "CRYPTO_ERROR"},
    };
    for (size_t i = 0; i < sizeof rfc / sizeof rfc[0]; i++) {
        CHECK_EQ_INT(rfc[i].code, rfc[i].value);
        CHECK_STR(ir_qerr_name(rfc[i].value), rfc[i].name);
    }
    /* CRYPTO_ERROR is 0x100 + the TLS alert (RFC 9001 4.8) */
    CHECK_EQ_INT(IR_QERR_CRYPTO(0), 0x100);
    CHECK_EQ_INT(IR_QERR_CRYPTO(48), 0x130);  /* unknown_ca */
    CHECK_EQ_INT(IR_QERR_CRYPTO(120), 0x178); /* no_application_protocol */
    CHECK_EQ_INT(IR_QERR_CRYPTO(IR_TLS_ALERT_HANDSHAKE_FAILURE), 0x128);
    CHECK_STR(ir_qerr_name(0x178), "CRYPTO_ERROR");
    CHECK_STR(ir_qerr_name(0x1ff), "CRYPTO_ERROR");
    /* the RFC names nothing else */
    CHECK(ir_qerr_name(0x11) == NULL);
    CHECK(ir_qerr_name(0xff) == NULL);
    CHECK(ir_qerr_name(0x200) == NULL);
    CHECK(ir_qerr_name(UINT64_MAX) == NULL);
    CHECK(ir_qerr_name((1ull << 62) - 1) == NULL);
}

/* every row "| 0x0a  | PROTOCOL_VIOLATION | ..." of the RFC's registry table */
TEST(rfc_registry_table)
{
    const char *shared = getenv("IROH_SHARED");
    if (!shared || !*shared) {
        printf("skip rfc_registry_table: IROH_SHARED is not set\n");
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/rfc/rfc9000.md", shared);
    FILE *f = fopen(path, "r");
    if (!f) { /* the RFCs are outside the repository: a checkout elsewhere has none */
        printf("skip rfc_registry_table: no %s\n", path);
        return;
    }
    char line[512];
    int rows = 0, in_table = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "| Value | Code", 14) == 0) {
            in_table = 1;
            continue;
        }
        if (!in_table)
            continue;
        if (line[0] != '|')
            break;
        unsigned long long v;
        char name[64];
        if (sscanf(line, "| 0x%llx%*[^|]| %63[A-Z_] |", &v, name) != 2)
            continue;
        /* "0x0100-0x01ff" (with a zero-width space) reads as 0x100 */
        CHECK_STR(ir_qerr_name(v), name);
        if (strcmp(name, "CRYPTO_ERROR") == 0)
            CHECK_EQ_INT(v, IR_QERR_CRYPTO_ERROR);
        rows++;
    }
    fclose(f);
    CHECK_EQ_INT(rows, 18); /* 0x00-0x10 and CRYPTO_ERROR */
}

int main(void)
{
    RUN(values_and_names);
    RUN(rfc_registry_table);
    TEST_EXIT();
}
