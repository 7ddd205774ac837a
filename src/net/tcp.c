/* TCP listeners: see tcp.h. */
#include "tcp.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/util.h"
#include "net/netaddr.h"

int ir_tcp_listen(const char *text, int backlog, iroh_socket_addr *bound)
{
    iroh_socket_addr addr;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (iroh_socket_addr_parse(text, &addr) != IROH_OK || ir_sockaddr_from_socket_addr(&addr, &ss, &sl) < 0) {
        return ir_fail(IROH_ERR_INVALID_ADDR, "invalid listen address '%s'", text);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return ir_fail(IROH_ERR_IO, "socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        int rc = ir_fail(IROH_ERR_IO, "cannot bind %s: %s", text, strerror(errno));
        close(fd);
        return rc;
    }
    if (listen(fd, backlog) < 0) {
        int rc = ir_fail(IROH_ERR_IO, "cannot listen on %s: %s", text, strerror(errno));
        close(fd);
        return rc;
    }
    sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        int rc = ir_fail(IROH_ERR_IO, "getsockname: %s", strerror(errno));
        close(fd);
        return rc;
    }
    ir_socket_addr_from_sockaddr(bound, (struct sockaddr *)&ss);
    return fd;
}

