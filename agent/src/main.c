/* faas-agent entry point: options, setup and the poll() event loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

const char *g_workspace = "/workspace";
const char *g_events_path = "/.faas/run/events";
static const char *g_socket_path = "/.faas/run/agent.sock";

int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void logmsg(const char *fmt, ...) {
    char b[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof b - 2) n = sizeof b - 2;
    b[n++] = '\n';
    ssize_t w = write(2, "faas-agent: ", 12);
    w = write(2, b, (size_t)n);
    (void)w;
}

void set_nonblock_cloexec(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static void mkdir_p(const char *path) {
    char *p = strdup(path);
    if (!p) return;
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
    free(p);
}

static void mkdir_parent(const char *path) {
    char *p = strdup(path);
    if (!p) return;
    char *slash = strrchr(p, '/');
    if (slash && slash != p) {
        *slash = 0;
        mkdir_p(p);
    }
    free(p);
}

static void usage(void) {
    fprintf(stderr, "usage: faas-agent [--socket PATH] [--workspace DIR] [--events PATH]\n");
    exit(2);
}

static int listen_socket(const char *path) {
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a.sun_path) {
        logmsg("socket path too long: %s", path);
        exit(1);
    }
    strcpy(a.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            logmsg("%s exists and is not a socket; refusing to replace it", path);
            exit(1);
        }
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0) {
        logmsg("cannot listen on %s: %s", path, strerror(errno));
        exit(1);
    }
    return fd;
}

enum { K_LISTEN, K_SIG, K_INOTIFY, K_FIFO, K_CONN, K_OUT, K_ERR, K_IN };

#define MAX_PFD (4 + MAX_CONNS + 3 * MAX_PROCS)
static struct pollfd g_pfd[MAX_PFD];
static struct {
    int kind, idx;
} g_pk[MAX_PFD];

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--socket")) g_socket_path = argv[++i];
        else if (!strcmp(argv[i], "--workspace")) g_workspace = argv[++i];
        else if (!strcmp(argv[i], "--events")) g_events_path = argv[++i];
        else usage();
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        logmsg("signalfd: %s", strerror(errno));
        return 1;
    }
    for (int i = 0; i < MAX_CONNS; i++) g_conns[i].fd = -1;
    for (int i = 0; i < MAX_PROCS; i++) g_procs[i].out_fd = g_procs[i].err_fd = g_procs[i].in_fd = -1;

    mkdir_p(g_workspace);
    mkdir_parent(g_socket_path);
    mkdir_parent(g_events_path);
    int ifd = watch_init(g_workspace);
    int ffd = events_init(g_events_path);
    int lfd = listen_socket(g_socket_path);
    logmsg("listening on %s (workspace %s, events %s)", g_socket_path, g_workspace, g_events_path);

    for (;;) {
        int n = 0;
        for (int i = 0; i < MAX_CONNS; i++) {
            conn_t *c = &g_conns[i];
            if (c->fd < 0) continue;
            if (!c->dead && c->unreported) conn_report_drops(i);
            if (!c->dead && buf_used(&c->out)) conn_flush(i);
            if (c->dead || (c->closing && !buf_used(&c->out))) {
                conn_close(i);
                continue;
            }
            short ev = 0;
            if (!c->closing && !conn_read_blocked(i)) ev |= POLLIN;
            if (buf_used(&c->out)) ev |= POLLOUT;
            g_pfd[n] = (struct pollfd){c->fd, ev, 0};
            g_pk[n].kind = K_CONN;
            g_pk[n++].idx = i;
        }
        g_pfd[n] = (struct pollfd){lfd, POLLIN, 0};
        g_pk[n++].kind = K_LISTEN;
        g_pfd[n] = (struct pollfd){sfd, POLLIN, 0};
        g_pk[n++].kind = K_SIG;
        if (ifd >= 0) {
            g_pfd[n] = (struct pollfd){ifd, POLLIN, 0};
            g_pk[n++].kind = K_INOTIFY;
        }
        if (ffd >= 0) {
            g_pfd[n] = (struct pollfd){ffd, POLLIN, 0};
            g_pk[n++].kind = K_FIFO;
        }
        for (int i = 0; i < MAX_PROCS; i++) {
            proc_t *p = &g_procs[i];
            if (!p->used || p->finished) continue;
            int paused = conn_paused(p->conn);
            if (p->out_fd >= 0 && !paused) {
                g_pfd[n] = (struct pollfd){p->out_fd, POLLIN, 0};
                g_pk[n].kind = K_OUT;
                g_pk[n++].idx = i;
            }
            if (p->err_fd >= 0 && !paused) {
                g_pfd[n] = (struct pollfd){p->err_fd, POLLIN, 0};
                g_pk[n].kind = K_ERR;
                g_pk[n++].idx = i;
            }
            int infd = p->pty ? p->out_fd : p->in_fd;
            if (infd >= 0 && buf_used(&p->inq)) {
                g_pfd[n] = (struct pollfd){infd, POLLOUT, 0};
                g_pk[n].kind = K_IN;
                g_pk[n++].idx = i;
            }
        }
        int64_t d1 = proc_next_deadline(), d2 = watch_next_deadline(), d = d1;
        if (d2 && (!d || d2 < d)) d = d2;
        int timeout = -1;
        if (d) {
            int64_t t = d - now_ms();
            timeout = t < 0 ? 0 : (t > 60000 ? 60000 : (int)t);
        }
        int r = poll(g_pfd, (nfds_t)n, timeout);
        if (r < 0 && errno != EINTR) {
            logmsg("poll: %s", strerror(errno));
            return 1;
        }
        for (int k = 0; r > 0 && k < n; k++) {
            short re = g_pfd[k].revents;
            if (!re) continue;
            int fd = g_pfd[k].fd, i = g_pk[k].idx;
            switch (g_pk[k].kind) {
            case K_LISTEN:
                conn_accept(lfd);
                break;
            case K_SIG: {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                    if (si.ssi_signo == SIGCHLD) proc_reap_all();
                    else {
                        logmsg("received signal %u: killing children and exiting", si.ssi_signo);
                        proc_kill_all();
                        unlink(g_socket_path);
                        unlink(g_events_path);
                        return 0;
                    }
                }
                break;
            }
            case K_INOTIFY:
                watch_on_readable();
                break;
            case K_FIFO:
                events_on_readable();
                break;
            case K_CONN:
                if (g_conns[i].fd != fd) break;
                if (re & POLLOUT) conn_on_writable(i);
                if (re & POLLIN) conn_on_readable(i);
                else if (re & (POLLHUP | POLLERR)) g_conns[i].dead = 1;
                break;
            case K_OUT:
                if (g_procs[i].used && g_procs[i].out_fd == fd) proc_on_output(&g_procs[i], 1);
                break;
            case K_ERR:
                if (g_procs[i].used && g_procs[i].err_fd == fd) proc_on_output(&g_procs[i], 2);
                break;
            case K_IN: {
                proc_t *p = &g_procs[i];
                if (p->used && (p->pty ? p->out_fd : p->in_fd) == fd) proc_on_stdin_writable(p);
                break;
            }
            }
        }
        int64_t now = now_ms();
        proc_timers(now);
        watch_timers(now);
    }
}
