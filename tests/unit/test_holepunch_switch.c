/* The holepunching switch: iroh_endpoint_builder_holepunching's modes, the environment
 * variable IROH_C_HOLEPUNCHING (read once per process, so each case runs in a child), and
 * the transport parameters the endpoint core offers in each mode. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "endpoint/ep_core.h"
#include "test.h"

/* ir_env_holepunching() with IROH_C_HOLEPUNCHING=value (NULL: unset), in a child; its
 * stderr goes to err. */
static int mode_with(const char *value, char *err, size_t cap)
{
    int pe[2], pm[2];
    if (pipe(pe) != 0 || pipe(pm) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        if (value)
            setenv("IROH_C_HOLEPUNCHING", value, 1);
        else
            unsetenv("IROH_C_HOLEPUNCHING");
        dup2(pe[1], 2);
        int m = ir_env_holepunching();
        for (int i = 0; i < 3; i++) /* asked again: the same, reported once */
            if (ir_env_holepunching() != m)
                m = -2;
        ssize_t w = write(pm[1], &m, sizeof m);
        _exit(w == sizeof m ? 0 : 1);
    }
    close(pe[1]);
    close(pm[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(pe[0], err + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    err[n] = 0;
    int m = -1;
    if (read(pm[0], &m, sizeof m) != sizeof m)
        m = -1;
    close(pe[0]);
    close(pm[0]);
    int st;
    waitpid(pid, &st, 0);
    return m;
}

TEST(environment)
{
    char err[512];
    CHECK_EQ_INT(mode_with(NULL, err, sizeof err), 2);
    CHECK_STR(err, "");
    CHECK_EQ_INT(mode_with("", err, sizeof err), 2);
    CHECK_STR(err, "");
    CHECK_EQ_INT(mode_with("0", err, sizeof err), 0);
    CHECK_EQ_INT(mode_with("1", err, sizeof err), 1);
    CHECK_STR(err, "");
    CHECK_EQ_INT(mode_with("2", err, sizeof err), 2);
    CHECK_STR(err, "");
    CHECK_EQ_INT(mode_with("3", err, sizeof err), 2);
    CHECK_STR(err, "iroh: IROH_C_HOLEPUNCHING=3 is not 0, 1 or 2; using 2\n");
    CHECK_EQ_INT(mode_with("12", err, sizeof err), 2);
    CHECK(strstr(err, "IROH_C_HOLEPUNCHING=12 is not") != NULL);
}

TEST(builder)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    CHECK(b != NULL);
    CHECK_EQ_INT(iroh_endpoint_builder_holepunching(b, 0), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_builder_holepunching(b, 1), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_builder_holepunching(b, 2), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_builder_holepunching(b, 3), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_endpoint_builder_holepunching(b, -1), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_endpoint_builder_holepunching(NULL, 1), IROH_ERR_INVALID_ARGUMENT);
    iroh_endpoint_builder_free(b);
}

static void rnd(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    memset(buf, 7, len);
}

static void nosend(void *ctx, const ir_netaddr *to, const uint8_t *buf, size_t len, size_t seg)
{
    (void)ctx, (void)to, (void)buf, (void)len, (void)seg;
}

/* what a connection of the core offers in each mode */
TEST(core_offers_per_mode)
{
    static const uint8_t *alpns[] = {(const uint8_t *)"a"};
    static const size_t lens[] = {1};
    for (int mode = 0; mode <= 2; mode++) {
        ir_ep_config cfg;
        memset(&cfg, 0, sizeof cfg);
        memset(cfg.key.bytes, 5, 32);
        cfg.alpns = alpns;
        cfg.alpn_lens = lens;
        cfg.n_alpns = 1;
        cfg.holepunching = mode;
        ir_epc_io io = {.send = nosend, .random = rnd};
        ir_epc *e = NULL;
        CHECK_EQ_INT(ir_epc_new(&cfg, &io, &e), IROH_OK);
        ir_conn_config cc;
        ir_epc_base_config(e, &cc);
        CHECK_EQ_INT(cc.tp.has_initial_max_path_id, mode >= 1);
        if (mode >= 1)
            CHECK(cc.tp.initial_max_path_id == 7);
        CHECK_EQ_INT(cc.tp.nat_traversal, mode == 2 ? 32 : 0);
        ir_epc_free(e);
    }
}

int main(void)
{
    RUN(environment);
    RUN(builder);
    RUN(core_offers_per_mode);
    TEST_EXIT();
}
