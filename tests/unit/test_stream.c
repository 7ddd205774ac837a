/* Stream send and receive buffers. */
#include "quic/stream.h"
#include "test.h"

static uint32_t rs = 7;
static uint32_t rnd(void)
{
    rs = rs * 1103515245u + 12345u;
    return rs >> 8;
}

TEST(recv_reassembly_random_order)
{
    enum { N = 100000 };
    static uint8_t src[N], dst[N];
    for (int i = 0; i < N; i++)
        src[i] = (uint8_t)(i * 7 + (i >> 8));
    ir_recvbuf b;
    ir_recvbuf_init(&b);
    size_t got = 0;
    int rounds = 0;
    while (!ir_recvbuf_finished(&b) && rounds++ < 100000) {
        /* a random chunk, often duplicated or overlapping, delivered near the read point */
        uint64_t off = b.read + rnd() % 5000;
        if (off >= N)
            off = N - 1;
        size_t len = 1 + rnd() % 1500;
        if (off + len > N)
            len = N - (size_t)off;
        CHECK_EQ_INT(ir_recvbuf_put(&b, off, src + off, len, off + len == N), 0);
        if (rnd() % 3 == 0) {
            size_t n = ir_recvbuf_read(&b, dst + got, 1 + rnd() % 3000);
            got += n;
        }
        if (rnd() % 50 == 0)
            got += ir_recvbuf_read(&b, dst + got, N);
    }
    got += ir_recvbuf_read(&b, dst + got, N);
    CHECK_EQ_INT(got, N);
    CHECK(ir_recvbuf_finished(&b));
    CHECK_MEM(dst, src, N);
    /* final size rules */
    CHECK_EQ_INT(ir_recvbuf_put(&b, N, NULL, 0, 1), 0);
    CHECK_EQ_INT(ir_recvbuf_put(&b, N - 10, src, 11, 0), -2);
    CHECK_EQ_INT(ir_recvbuf_put(&b, 0, src, 10, 1), -2);
    ir_recvbuf_free(&b);
}

TEST(send_loss_and_ack)
{
    enum { N = 50000 };
    static uint8_t src[N];
    for (int i = 0; i < N; i++)
        src[i] = (uint8_t)(i * 13);
    ir_sendbuf b;
    ir_sendbuf_init(&b);
    CHECK_EQ_INT(ir_sendbuf_write(&b, src, 20000), 0);
    CHECK_EQ_INT(ir_sendbuf_write(&b, src + 20000, N - 20000), 0);
    b.fin = 1;
    /* send everything in 1000-byte pieces with a flow-control limit of 30000 */
    uint64_t off;
    size_t len;
    int fin, sent = 0;
    while (ir_sendbuf_next(&b, 30000, 1000, &off, &len, &fin)) {
        CHECK_MEM(ir_sendbuf_at(&b, off), src + off, len);
        ir_sendbuf_sent(&b, off, len, fin);
        sent++;
    }
    CHECK_EQ_INT(sent, 30);
    CHECK_EQ_INT(b.next, 30000);
    /* ack the middle, lose the first 5000 and a piece of the middle */
    ir_sendbuf_on_ack(&b, 5000, 10000, 0);
    ir_sendbuf_on_lost(&b, 0, 20000, 0); /* acked part must not come back */
    CHECK(ir_sendbuf_next(&b, N, 100000, &off, &len, &fin));
    CHECK_EQ_INT(off, 0);
    CHECK_EQ_INT(len, 5000);
    ir_sendbuf_sent(&b, off, len, fin);
    CHECK(ir_sendbuf_next(&b, N, 100000, &off, &len, &fin));
    CHECK_EQ_INT(off, 15000);
    CHECK_EQ_INT(len, 5000);
    ir_sendbuf_sent(&b, off, len, fin);
    /* then new data up to the end, with FIN */
    CHECK(ir_sendbuf_next(&b, N, 100000, &off, &len, &fin));
    CHECK_EQ_INT(off, 30000);
    CHECK_EQ_INT(len, N - 30000);
    CHECK(fin);
    ir_sendbuf_sent(&b, off, len, fin);
    CHECK(!ir_sendbuf_next(&b, N, 100000, &off, &len, &fin));
    /* ack everything: the buffer is released and done */
    ir_sendbuf_on_ack(&b, 0, 5000, 0);
    CHECK_EQ_INT(b.base, 15000);
    ir_sendbuf_on_ack(&b, 15000, N - 15000, 1);
    CHECK(ir_sendbuf_done(&b));
    ir_sendbuf_free(&b);
}

TEST(send_lone_fin_lost)
{
    ir_sendbuf b;
    uint64_t off;
    size_t len;
    int fin;
    ir_sendbuf_init(&b);
    ir_sendbuf_write(&b, (const uint8_t *)"abc", 3);
    CHECK(ir_sendbuf_next(&b, 100, 100, &off, &len, &fin));
    CHECK(!fin);
    ir_sendbuf_sent(&b, off, len, fin);
    b.fin = 1;
    CHECK(ir_sendbuf_next(&b, 100, 100, &off, &len, &fin));
    CHECK(fin && len == 0 && off == 3);
    ir_sendbuf_sent(&b, off, len, fin);
    ir_sendbuf_on_ack(&b, 0, 3, 0);
    ir_sendbuf_on_lost(&b, 3, 0, 1);
    CHECK(ir_sendbuf_next(&b, 100, 100, &off, &len, &fin));
    CHECK(fin && len == 0 && off == 3);
    ir_sendbuf_sent(&b, off, len, fin);
    ir_sendbuf_on_ack(&b, 3, 0, 1);
    CHECK(ir_sendbuf_done(&b));
    ir_sendbuf_free(&b);
}

int main(void)
{
    RUN(recv_reassembly_random_order);
    RUN(send_loss_and_ack);
    RUN(send_lone_fin_lost);
    TEST_EXIT();
}
