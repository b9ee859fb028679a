/* Client connections: accept, frame parsing, dispatch, output buffering. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"

conn_t g_conns[MAX_CONNS];

void conn_accept(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) logmsg("accept: %s", strerror(errno));
            return;
        }
        int slot = -1;
        for (int i = 0; i < MAX_CONNS; i++)
            if (g_conns[i].fd < 0) {
                slot = i;
                break;
            }
        if (slot < 0) {
            static const char msg[] = "too many connections";
            uint8_t h[HDR_LEN];
            h[0] = F_ERROR;
            put_u32(h + 1, 0);
            put_u32(h + 5, sizeof msg - 1);
            ssize_t w1 = write(fd, h, sizeof h);
            ssize_t w2 = write(fd, msg, sizeof msg - 1);
            (void)w1;
            (void)w2;
            close(fd);
            logmsg("refused a connection: too many connections");
            continue;
        }
        conn_t *c = &g_conns[slot];
        memset(c, 0, sizeof *c);
        c->fd = fd;
        int sz = 1 << 20;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    }
}

void conn_close(int ci) {
    conn_t *c = &g_conns[ci];
    if (c->fd < 0) return;
    close(c->fd);
    if (c->dropped) logmsg("connection closed; %llu broadcast events had been dropped for it", (unsigned long long)c->dropped);
    buf_free(&c->out);
    free(c->payload);
    c->payload = NULL;
    c->fd = -1;
    proc_conn_closed(ci);
}

int conn_paused(int ci) {
    if (ci < 0) return 0;
    conn_t *c = &g_conns[ci];
    if (c->fd < 0 || c->dead) return 0;
    return buf_used(&c->out) > OUT_BOUND;
}

void conn_send(int ci, uint8_t type, uint32_t id, const void *p1, size_t n1, const void *p2, size_t n2) {
    if (ci < 0) return;
    conn_t *c = &g_conns[ci];
    if (c->fd < 0 || c->dead) return;
    uint8_t *d = buf_reserve(&c->out, HDR_LEN + n1 + n2);
    if (!d) {
        logmsg("out of memory queueing a frame; closing connection");
        c->dead = 1;
        return;
    }
    d[0] = type;
    put_u32(d + 1, id);
    put_u32(d + 5, (uint32_t)(n1 + n2));
    if (n1) memcpy(d + HDR_LEN, p1, n1);
    if (n2) memcpy(d + HDR_LEN + n1, p2, n2);
    c->out.len += HDR_LEN + n1 + n2;
}

void conn_send_error(int ci, uint32_t id, const char *fmt, ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
    conn_send(ci, F_ERROR, id, msg, (size_t)n, NULL, 0);
}

void broadcast(uint8_t type, uint32_t id, const void *p1, size_t n1, const void *p2, size_t n2) {
    for (int i = 0; i < MAX_CONNS; i++) {
        conn_t *c = &g_conns[i];
        if (c->fd < 0 || !c->subscribed || c->dead || c->closing) continue;
        if (buf_used(&c->out) > OUT_BOUND) {
            c->dropped++;
            c->unreported++;
            continue;
        }
        conn_send(i, type, id, p1, n1, p2, n2);
    }
}

void conn_flush(int ci) {
    conn_t *c = &g_conns[ci];
    while (c->fd >= 0 && !c->dead && buf_used(&c->out) > 0) {
        ssize_t w = send(c->fd, c->out.data + c->out.head, buf_used(&c->out), MSG_NOSIGNAL);
        if (w > 0) {
            buf_consume(&c->out, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        c->dead = 1; /* peer gone; closed by the main loop */
        return;
    }
}

void conn_on_writable(int ci) { conn_flush(ci); }

void conn_report_drops(int ci) {
    conn_t *c = &g_conns[ci];
    if (!c->unreported || c->fd < 0 || c->dead || c->closing || buf_used(&c->out) > OUT_BOUND / 2) return;
    conn_send_error(ci, 0, "%llu broadcast events were dropped because this connection was not reading fast enough",
                    (unsigned long long)c->unreported);
    c->unreported = 0;
}

static void malformed(int ci, uint32_t id, const char *what) {
    conn_send_error(ci, id, "malformed frame: %s", what);
    g_conns[ci].closing = 1;
}

static void dispatch(int ci, uint8_t type, uint32_t id, const uint8_t *p, uint32_t n) {
    conn_t *c = &g_conns[ci];
    rd_t r = {p, n, 0, 0};
    proc_t *pr;
    switch (type) {
    case F_SPAWN:
        if (proc_spawn(ci, id, &r) < 0) malformed(ci, id, "bad SPAWN payload");
        return;
    case F_STDIN:
    case F_STDIN_EOF:
    case F_SIGNAL:
    case F_RESIZE: {
        uint32_t sig = 0, cols = 0, rows = 0;
        int tree = 0;
        if (type == F_SIGNAL) {
            sig = rd_u32(&r);
            tree = rd_u8(&r) & 1;
        } else if (type == F_RESIZE) {
            cols = rd_u16(&r);
            rows = rd_u16(&r);
        }
        if (r.bad || (type != F_STDIN && r.off != n)) {
            malformed(ci, id, "bad payload length");
            return;
        }
        pr = proc_find(id);
        if (!pr || pr->conn != ci) {
            if (type == F_STDIN || type == F_STDIN_EOF) {
                if (pr) return; /* exec exists but is not ours: ignore silently */
            }
            conn_send_error(ci, id, "no such exec: %u", id);
            return;
        }
        if (type == F_STDIN) proc_stdin(pr, p, n);
        else if (type == F_STDIN_EOF) proc_stdin_eof(pr);
        else if (type == F_SIGNAL) {
            if (sig == 0 || sig > 64) {
                conn_send_error(ci, id, "invalid signal number %u", sig);
                return;
            }
            proc_signal(pr, (int)sig, tree);
        } else
            proc_resize(pr, cols, rows);
        return;
    }
    case F_PING:
        rd_u64(&r);
        if (r.bad || r.off != n) {
            malformed(ci, id, "PING payload must be 8 bytes");
            return;
        }
        conn_send(ci, F_PONG, id, p, 8, NULL, 0);
        return;
    case F_LIST:
        if (n) {
            malformed(ci, id, "LIST payload must be empty");
            return;
        }
        proc_list(ci, id);
        return;
    case F_SUBSCRIBE:
        if (n) {
            malformed(ci, id, "SUBSCRIBE payload must be empty");
            return;
        }
        c->subscribed = 1;
        return;
    case F_ATTACH:
        if (n) {
            malformed(ci, id, "ATTACH payload must be empty");
            return;
        }
        proc_attach(ci, id);
        return;
    default: {
        char what[64];
        snprintf(what, sizeof what, "unknown frame type 0x%02x", type);
        malformed(ci, id, what);
        return;
    }
    }
}

void conn_on_readable(int ci) {
    conn_t *c = &g_conns[ci];
    static uint8_t rbuf[CHUNK];
    ssize_t n = read(c->fd, rbuf, sizeof rbuf);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        c->dead = 1;
        return;
    }
    if (n == 0) {
        c->dead = 1;
        return;
    }
    size_t off = 0;
    while (off < (size_t)n && !c->closing && !c->dead && c->fd >= 0) {
        if (c->hdr_got < HDR_LEN) {
            size_t take = HDR_LEN - c->hdr_got;
            if (take > (size_t)n - off) take = (size_t)n - off;
            memcpy(c->hdr + c->hdr_got, rbuf + off, take);
            c->hdr_got += take;
            off += take;
            if (c->hdr_got < HDR_LEN) break;
            c->plen = get_u32(c->hdr + 5);
            if (c->plen > MAX_PAYLOAD) {
                malformed(ci, get_u32(c->hdr + 1), "payload length exceeds 16 MiB");
                break;
            }
            c->pgot = 0;
            free(c->payload);
            c->payload = NULL;
            if (c->plen) {
                c->payload = malloc(c->plen);
                if (!c->payload) {
                    malformed(ci, get_u32(c->hdr + 1), "out of memory");
                    break;
                }
            }
        }
        size_t take = c->plen - c->pgot;
        if (take > (size_t)n - off) take = (size_t)n - off;
        if (take) memcpy(c->payload + c->pgot, rbuf + off, take);
        c->pgot += take;
        off += take;
        if (c->pgot == c->plen) {
            uint8_t *pl = c->payload;
            c->payload = NULL;
            c->hdr_got = 0;
            dispatch(ci, c->hdr[0], get_u32(c->hdr + 1), pl, c->plen);
            free(pl);
        }
    }
}
