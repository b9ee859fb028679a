/* Processes: spawn (pipes or PTY), output, stdin, signals, reaping, exit reporting, process list. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"

extern char **environ;

proc_t g_procs[MAX_PROCS];
static uint64_t g_finish_seq;

proc_t *proc_find(uint32_t id) {
    for (int i = 0; i < MAX_PROCS; i++)
        if (g_procs[i].used && g_procs[i].id == id) return &g_procs[i];
    return NULL;
}

/* cgroup OOM kill counter, -1 if unreadable */
static int64_t read_oom_kills(void) {
    static const char *files[] = {"/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"};
    for (int f = 0; f < 2; f++) {
        int fd = open(files[f], O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        char b[1024];
        ssize_t n = read(fd, b, sizeof b - 1);
        close(fd);
        if (n <= 0) continue;
        b[n] = 0;
        for (char *l = b; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
            if (strncmp(l, "oom_kill ", 9) == 0) return strtoll(l + 9, NULL, 10);
        }
    }
    return -1;
}

static void free_strv(char **v) {
    if (!v) return;
    for (char **p = v; *p; p++) free(*p);
    free(v);
}

static char **read_strv(rd_t *r, uint32_t *count) {
    uint32_t n = rd_u32(r);
    if (r->bad || n > r->len / 4) { /* every string needs at least 4 bytes */
        r->bad = 1;
        return NULL;
    }
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v) {
        r->bad = 1;
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        v[i] = rd_str(r);
        if (!v[i]) {
            free_strv(v);
            r->bad = 1;
            return NULL;
        }
    }
    *count = n;
    return v;
}

static size_t name_len(const char *kv) {
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

static int has_name(char **v, const char *kv) {
    size_t l = name_len(kv);
    for (char **p = v; *p; p++)
        if (name_len(*p) == l && strncmp(*p, kv, l) == 0) return 1;
    return 0;
}

/* the child's environment: agent's environ + extra (overriding) + PATH default + FAAS_EVENTS. Pointers into
 * environ/extra, plus one malloc'd FAAS_EVENTS entry stored in *owned. */
static char **build_env(char **extra, char **owned) {
    size_t n0 = 0, n1 = 0;
    while (environ && environ[n0]) n0++;
    while (extra[n1]) n1++;
    char **e = calloc(n0 + n1 + 3, sizeof *e);
    if (!e) return NULL;
    size_t k = 0;
    int have_path = 0;
    for (size_t i = 0; i < n0; i++) {
        if (strncmp(environ[i], "FAAS_EVENTS=", 12) == 0 || has_name(extra, environ[i])) continue;
        if (strncmp(environ[i], "PATH=", 5) == 0) have_path = 1;
        e[k++] = environ[i];
    }
    for (size_t i = 0; i < n1; i++) {
        if (strncmp(extra[i], "FAAS_EVENTS=", 12) == 0) continue;
        if (strncmp(extra[i], "PATH=", 5) == 0) have_path = 1;
        e[k++] = extra[i];
    }
    if (!have_path) e[k++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    size_t fl = strlen(g_events_path) + 13;
    *owned = malloc(fl);
    if (!*owned) {
        free(e);
        return NULL;
    }
    snprintf(*owned, fl, "FAAS_EVENTS=%s", g_events_path);
    e[k++] = *owned;
    e[k] = NULL;
    return e;
}

static void send_exit(int ci, uint32_t id, int32_t code, int32_t sig, uint8_t flags) {
    uint8_t b[9];
    put_u32(b, (uint32_t)code);
    put_u32(b + 4, (uint32_t)sig);
    b[8] = flags;
    conn_send(ci, F_EXIT, id, b, sizeof b, NULL, 0);
}

static void proc_event(proc_t *p, uint8_t kind, int32_t code, int32_t sig) {
    size_t cl = p->cmd ? strlen(p->cmd) : 0;
    uint8_t b[17];
    b[0] = kind;
    put_u32(b + 1, (uint32_t)p->pid);
    put_u32(b + 5, (uint32_t)code);
    put_u32(b + 9, (uint32_t)sig);
    put_u32(b + 13, (uint32_t)cl);
    broadcast(F_PROCESS_EVENT, p->id, b, sizeof b, p->cmd, cl);
}

/* child-side failure report: stage + errno */
struct child_err {
    int stage; /* 0 exec, 1 chdir, 2 terminal, 3 stdio */
    int err;
};

static void child_fail(int fd, int stage) {
    struct child_err ce = {stage, errno};
    ssize_t w = write(fd, &ce, sizeof ce);
    (void)w;
    _exit(127);
}

static void free_slot(proc_t *p);

int proc_spawn(int ci, uint32_t id, rd_t *r) {
    uint8_t flags = rd_u8(r);
    unsigned cols = rd_u16(r), rows = rd_u16(r);
    uint32_t argc = 0, envc = 0;
    char **argv = read_strv(r, &argc);
    char **extra = argv ? read_strv(r, &envc) : NULL;
    char *cwd = extra ? rd_str(r) : NULL;
    if (r->bad || !cwd || r->off != r->len || argc == 0) {
        free_strv(argv);
        free_strv(extra);
        free(cwd);
        return -1;
    }
    int pty = flags & 1, piped = (flags & 2) != 0;
    char **envp = NULL;
    char *owned = NULL;
    int pfd[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1}, inp[2] = {-1, -1}, master = -1;
    char slave[128] = "";
    proc_t *p = NULL;

    if (id == 0) {
        conn_send_error(ci, id, "exec id 0 is reserved");
        goto out;
    }
    proc_t *dup = proc_find(id);
    if (dup && dup->finished) { /* only kept for ATTACH: ids are unique among live execs, a new SPAWN wins */
        free_slot(dup);
        dup = NULL;
    }
    if (dup) {
        conn_send_error(ci, id, "exec id %u is already in use", id);
        /* refusal: EXIT -1, unless this connection owns that exec (then the EXIT would be taken as its) */
        if (dup->conn != ci) send_exit(ci, id, -1, 0, 0);
        goto out;
    }
    for (int i = 0; i < MAX_PROCS; i++)
        if (!g_procs[i].used) {
            p = &g_procs[i];
            break;
        }
    if (!p) {
        conn_send_error(ci, id, "too many processes (limit %d)", MAX_PROCS);
        send_exit(ci, id, 126, 0, 0);
        goto out;
    }
    envp = build_env(extra, &owned);
    if (!envp || pipe2(pfd, O_CLOEXEC) < 0) goto sysfail;
    if (pty) {
        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, slave, sizeof slave) != 0)
            goto sysfail;
        struct winsize ws = {.ws_row = rows ? rows : 24, .ws_col = cols ? cols : 80};
        ioctl(master, TIOCSWINSZ, &ws);
    } else {
        if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) goto sysfail;
        if (piped && pipe2(inp, O_CLOEXEC) < 0) goto sysfail;
    }
    int64_t oom0 = read_oom_kills();
    pid_t pid = fork();
    if (pid < 0) goto sysfail;
    if (pid == 0) {
        /* child */
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        for (int s = 1; s < 65; s++)
            if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
        setsid();
        if (pty) {
            int s = open(slave, O_RDWR);
            if (s < 0) child_fail(pfd[1], 2);
            ioctl(s, TIOCSCTTY, 0);
            if (dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(s, 2) < 0) child_fail(pfd[1], 3);
            if (s > 2) close(s);
        } else {
            int in = piped ? inp[0] : open("/dev/null", O_RDONLY);
            if (in < 0 || dup2(in, 0) < 0 || dup2(outp[1], 1) < 0 || dup2(errp[1], 2) < 0) child_fail(pfd[1], 3);
        }
        int oom = open("/proc/self/oom_score_adj", O_WRONLY);
        if (oom >= 0) {
            ssize_t w = write(oom, "1000", 4);
            (void)w;
            close(oom);
        }
        if (cwd[0] != '/' && chdir(g_workspace) < 0) child_fail(pfd[1], 1);
        if (cwd[0] && chdir(cwd) < 0) child_fail(pfd[1], 1);
        environ = envp;
        execvp(argv[0], argv);
        child_fail(pfd[1], 0);
    }
    /* parent */
    close(pfd[1]);
    pfd[1] = -1;
    if (outp[1] >= 0) close(outp[1]);
    if (errp[1] >= 0) close(errp[1]);
    if (inp[0] >= 0) close(inp[0]);
    outp[1] = errp[1] = inp[0] = -1;
    struct child_err ce;
    ssize_t got;
    do got = read(pfd[0], &ce, sizeof ce);
    while (got < 0 && errno == EINTR);
    close(pfd[0]);
    pfd[0] = -1;
    if (got == (ssize_t)sizeof ce) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        const char *es = strerror(ce.err);
        if (ce.stage == 0) conn_send_error(ci, id, "exec \"%s\": %s", argv[0], es);
        else if (ce.stage == 1) conn_send_error(ci, id, "cannot change directory to \"%s\": %s", cwd[0] ? cwd : g_workspace, es);
        else conn_send_error(ci, id, "cannot set up stdio for \"%s\": %s", argv[0], es);
        send_exit(ci, id, (ce.stage == 0 && ce.err == ENOENT) ? 127 : 126, 0, 0);
        goto out;
    }
    memset(p, 0, sizeof *p);
    p->used = 1;
    p->id = id;
    p->pid = pid;
    p->conn = ci;
    p->pty = pty;
    p->oom_start = oom0;
    if (pty) {
        p->out_fd = master;
        p->err_fd = -1;
        p->in_fd = -1;
        p->in_open = 1;
        master = -1;
    } else {
        p->out_fd = outp[0];
        p->err_fd = errp[0];
        p->in_fd = inp[1];
        p->in_open = inp[1] >= 0;
        outp[0] = errp[0] = inp[1] = -1;
    }
    if (!pty) { /* bigger pipes: fewer wake-ups for chatty processes (best effort) */
        fcntl(p->out_fd, F_SETPIPE_SZ, 1 << 20);
        fcntl(p->err_fd, F_SETPIPE_SZ, 1 << 20);
    }
    set_nonblock_cloexec(p->out_fd);
    if (p->err_fd >= 0) set_nonblock_cloexec(p->err_fd);
    if (p->in_fd >= 0) set_nonblock_cloexec(p->in_fd);
    /* command: argv joined by spaces, truncated */
    p->cmd = malloc(CMD_MAX + 1);
    if (p->cmd) {
        size_t k = 0;
        for (uint32_t i = 0; i < argc && k < CMD_MAX; i++) {
            if (i) p->cmd[k++] = ' ';
            size_t l = strlen(argv[i]);
            if (l > CMD_MAX - k) l = CMD_MAX - k;
            memcpy(p->cmd + k, argv[i], l);
            k += l;
        }
        p->cmd[k] = 0;
    }
    {
        uint8_t b[4];
        put_u32(b, (uint32_t)pid);
        conn_send(ci, F_STARTED, id, b, 4, NULL, 0);
    }
    proc_event(p, 0, 0, 0);
    goto out;

sysfail:
    conn_send_error(ci, id, "cannot spawn \"%s\": %s", argv[0], strerror(errno));
    send_exit(ci, id, 126, 0, 0);
out:
    if (pfd[0] >= 0) close(pfd[0]);
    if (pfd[1] >= 0) close(pfd[1]);
    for (int i = 0; i < 2; i++) {
        if (outp[i] >= 0) close(outp[i]);
        if (errp[i] >= 0) close(errp[i]);
        if (inp[i] >= 0) close(inp[i]);
    }
    if (master >= 0) close(master);
    free(envp);
    free(owned);
    free_strv(argv);
    free_strv(extra);
    free(cwd);
    return 0;
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static void free_slot(proc_t *p) {
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
    close_fd(&p->in_fd);
    buf_free(&p->inq);
    free(p->cmd);
    memset(p, 0, sizeof *p);
    p->out_fd = p->err_fd = p->in_fd = -1;
}

static void finish(proc_t *p) {
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
    close_fd(&p->in_fd);
    p->in_open = 0;
    buf_free(&p->inq);
    int st = p->status;
    if (WIFSIGNALED(st)) {
        p->exit_signal = WTERMSIG(st);
        p->exit_code = 128 + p->exit_signal;
    } else {
        p->exit_signal = 0;
        p->exit_code = WEXITSTATUS(st);
    }
    p->exit_flags = 0;
    if (p->exit_signal == SIGKILL && p->oom_start >= 0) {
        int64_t now = read_oom_kills();
        if (now > p->oom_start) p->exit_flags |= 1;
    }
    p->finished = 1;
    p->grace_deadline = 0;
    if (p->conn >= 0 && g_conns[p->conn].fd >= 0) {
        send_exit(p->conn, p->id, p->exit_code, p->exit_signal, p->exit_flags);
        proc_event(p, 1, p->exit_code, p->exit_signal);
        free_slot(p);
        return;
    }
    proc_event(p, 1, p->exit_code, p->exit_signal);
    /* keep for ATTACH; evict the oldest beyond MAX_KEPT */
    p->conn = -1;
    p->finished_seq = ++g_finish_seq;
    int kept = 0;
    proc_t *oldest = NULL;
    for (int i = 0; i < MAX_PROCS; i++) {
        proc_t *q = &g_procs[i];
        if (q->used && q->finished) {
            kept++;
            if (!oldest || q->finished_seq < oldest->finished_seq) oldest = q;
        }
    }
    if (kept > MAX_KEPT && oldest) free_slot(oldest);
}

static void check_finish(proc_t *p) {
    if (p->reaped && !p->finished && p->out_fd < 0 && p->err_fd < 0) finish(p);
}

/* Read what the process wrote, up to 16 chunks per wake-up (fewer poll round trips at high throughput),
 * stopping when the owner's output buffer goes over the bound. */
void proc_on_output(proc_t *p, int which) {
    int *fdp = which == 1 ? &p->out_fd : &p->err_fd;
    static uint8_t discard[CHUNK];
    for (int round = 0; round < 16 && *fdp >= 0; round++) {
        ssize_t n;
        int ci = p->conn;
        conn_t *c = ci >= 0 ? &g_conns[ci] : NULL;
        if (c && (c->fd < 0 || c->dead)) c = NULL;
        if (c) {
            if (buf_used(&c->out) > OUT_BOUND) return;
            uint8_t *d = buf_reserve(&c->out, HDR_LEN + CHUNK);
            if (!d) return;
            n = read(*fdp, d + HDR_LEN, CHUNK);
            if (n > 0) {
                d[0] = which == 1 ? F_STDOUT : F_STDERR;
                put_u32(d + 1, p->id);
                put_u32(d + 5, (uint32_t)n);
                c->out.len += HDR_LEN + (size_t)n;
            }
        } else {
            n = read(*fdp, discard, sizeof discard);
        }
        if (n > 0) {
            if (p->reaped) p->grace_deadline = now_ms() + EXIT_GRACE_MS;
            if (c && round % 4 == 3) conn_flush(ci);
            if (n < CHUNK) return; /* pipe drained for now */
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        /* EOF, or EIO on a PTY master once the slave side is gone */
        close_fd(fdp);
        if (p->pty) {
            p->in_open = 0;
            buf_free(&p->inq);
        }
        check_finish(p);
        return;
    }
}

static int stdin_fd(proc_t *p) { return p->pty ? p->out_fd : p->in_fd; }

void proc_on_stdin_writable(proc_t *p) {
    int fd = stdin_fd(p);
    while (fd >= 0 && buf_used(&p->inq) > 0) {
        ssize_t w = write(fd, p->inq.data + p->inq.head, buf_used(&p->inq));
        if (w > 0) {
            buf_consume(&p->inq, (size_t)w);
            p->in_progress_ms = now_ms();
            if (p->in_dropping && buf_used(&p->inq) <= STDIN_BOUND) p->in_dropping = 0;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        /* EPIPE etc.: the reader is gone */
        buf_free(&p->inq);
        p->in_open = 0;
        if (!p->pty) close_fd(&p->in_fd);
        return;
    }
    if (!p->pty && p->in_eof && buf_used(&p->inq) == 0) {
        close_fd(&p->in_fd);
        p->in_open = 0;
    }
}

void proc_stdin(proc_t *p, const uint8_t *data, size_t n) {
    if (!p->in_open || p->in_eof || p->finished) return;
    if (p->in_dropping) {
        if (p->in_dropping == 1) /* once per episode */
            conn_send_error(p->conn, p->id, "stdin of exec %u is full (the process has not read it for %d ms): input dropped",
                            p->id, STDIN_STALL_MS);
        p->in_dropping = 2;
        return;
    }
    if (buf_used(&p->inq) == 0) p->in_progress_ms = now_ms();
    buf_append(&p->inq, data, n);
    proc_on_stdin_writable(p);
}

void proc_stdin_eof(proc_t *p) {
    if (p->pty || p->finished) return; /* documented: ignored for a PTY */
    p->in_eof = 1;
    proc_on_stdin_writable(p);
}

/* A connection is not read while one of its processes has more than STDIN_BOUND queued — unless that process
 * made no progress for STDIN_STALL_MS: then its further STDIN is dropped so that control frames (SIGNAL on a
 * timeout) still get through. */
int conn_read_blocked(int ci) {
    int64_t now = 0;
    for (int i = 0; i < MAX_PROCS; i++) {
        proc_t *p = &g_procs[i];
        if (!p->used || p->conn != ci || p->in_dropping || buf_used(&p->inq) <= STDIN_BOUND) continue;
        if (!now) now = now_ms();
        if (now - p->in_progress_ms >= STDIN_STALL_MS) {
            p->in_dropping = 1;
            continue;
        }
        return 1;
    }
    return 0;
}

/* ---- tree kill via /proc ---- */
#define TREE_MAX 8192
static pid_t t_pid[TREE_MAX], t_ppid[TREE_MAX], t_sid[TREE_MAX];
static unsigned char t_mark[TREE_MAX];

static int read_stat(pid_t pid, pid_t *ppid, pid_t *sid, char *comm, size_t commlen) {
    char path[64], b[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    if (n <= 0) return -1;
    b[n] = 0;
    char *lp = strchr(b, '('), *rp = strrchr(b, ')');
    if (!lp || !rp || rp < lp) return -1;
    if (comm) {
        size_t l = (size_t)(rp - lp - 1);
        if (l >= commlen) l = commlen - 1;
        memcpy(comm, lp + 1, l);
        comm[l] = 0;
    }
    char state;
    int pp, pg, ss;
    if (sscanf(rp + 1, " %c %d %d %d", &state, &pp, &pg, &ss) != 4) return -1;
    *ppid = pp;
    *sid = ss;
    return 0;
}

static int scan_proc(void) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < TREE_MAX) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (*end || v <= 0) continue;
        pid_t pp, ss;
        if (read_stat((pid_t)v, &pp, &ss, NULL, 0) < 0) continue;
        t_pid[n] = (pid_t)v;
        t_ppid[n] = pp;
        t_sid[n] = ss;
        n++;
    }
    closedir(d);
    return n;
}

static pid_t t_known[TREE_MAX];
static int t_nknown;

static int is_known(pid_t pid) {
    for (int i = 0; i < t_nknown; i++)
        if (t_known[i] == pid) return 1;
    return 0;
}

/* one /proc scan: add to t_known every process that descends from root or from a known process (by ppid,
 * transitively) or is in root's session; stop_new: SIGSTOP what was newly found. Returns how many were new. */
static int tree_scan(pid_t root, int stop_new) {
    pid_t self = getpid();
    int n = scan_proc(), added = 0;
    memset(t_mark, 0, (size_t)n);
    int changed = 1;
    while (changed) {
        changed = 0;
        for (int i = 0; i < n; i++) {
            if (t_mark[i]) continue;
            int m = t_pid[i] == root || t_sid[i] == root || is_known(t_pid[i]);
            for (int j = 0; !m && j < n; j++)
                if (t_mark[j] && t_pid[j] == t_ppid[i]) m = 1;
            if (m) {
                t_mark[i] = 1;
                changed = 1;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (!t_mark[i] || t_pid[i] == self || t_pid[i] <= 1 || is_known(t_pid[i]) || t_nknown >= TREE_MAX) continue;
        t_known[t_nknown++] = t_pid[i];
        if (stop_new) kill(t_pid[i], SIGSTOP);
        added++;
    }
    return added;
}

/* Signal the exec's process group and every descendant. For SIGKILL the tree is first frozen with SIGSTOP
 * (rescanning until nothing new appears) so that no process can fork or be re-parented out of sight. */
static void tree_kill(pid_t root, int sig) {
    t_nknown = 0;
    if (sig == SIGKILL) {
        kill(-root, SIGSTOP);
        for (int pass = 0; pass < 8 && tree_scan(root, 1) > 0; pass++) {
        }
    } else {
        tree_scan(root, 0);
    }
    kill(-root, sig);
    for (int i = 0; i < t_nknown; i++) kill(t_known[i], sig);
}

void proc_signal(proc_t *p, int sig, int tree) {
    if (p->finished) return;
    if (tree) {
        tree_kill(p->pid, sig);
        return;
    }
    kill(-p->pid, sig);
    if (!p->reaped) kill(p->pid, sig);
}

void proc_resize(proc_t *p, unsigned cols, unsigned rows) {
    if (!p->pty || p->out_fd < 0) return;
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(p->out_fd, TIOCSWINSZ, &ws);
}

void proc_attach(int ci, uint32_t id) {
    proc_t *p = proc_find(id);
    if (!p || id == 0) {
        conn_send_error(ci, id, "no such exec: %u", id);
        send_exit(ci, id, -1, 0, 0);
        return;
    }
    if (p->conn >= 0 && p->conn != ci) {
        /* tell the previous owner that it will hear no more of this exec */
        conn_send_error(p->conn, id, "exec %u was attached by another connection", id);
        send_exit(p->conn, id, -1, 0, 0);
    }
    p->conn = ci;
    uint8_t b[4];
    put_u32(b, (uint32_t)p->pid);
    conn_send(ci, F_STARTED, id, b, 4, NULL, 0);
    if (p->finished) {
        send_exit(ci, id, p->exit_code, p->exit_signal, p->exit_flags);
        free_slot(p);
    }
}

void proc_reap_all(void) {
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0) return;
        for (int i = 0; i < MAX_PROCS; i++) {
            proc_t *p = &g_procs[i];
            if (p->used && !p->finished && !p->reaped && p->pid == pid) {
                p->reaped = 1;
                p->status = st;
                p->grace_deadline = now_ms() + EXIT_GRACE_MS;
                check_finish(p);
                break;
            }
        }
    }
}

void proc_timers(int64_t now) {
    for (int i = 0; i < MAX_PROCS; i++) {
        proc_t *p = &g_procs[i];
        if (!p->used || p->finished || !p->reaped || !p->grace_deadline || now < p->grace_deadline) continue;
        if (conn_paused(p->conn)) {
            p->grace_deadline = now + EXIT_GRACE_MS; /* output is being held back by flow control: keep waiting */
            continue;
        }
        finish(p);
    }
}

int64_t proc_next_deadline(void) {
    int64_t d = 0;
    for (int i = 0; i < MAX_PROCS; i++) {
        proc_t *p = &g_procs[i];
        if (p->used && !p->finished && p->grace_deadline && (!d || p->grace_deadline < d)) d = p->grace_deadline;
        if (p->used && !p->finished && !p->in_dropping && buf_used(&p->inq) > STDIN_BOUND) {
            int64_t s = p->in_progress_ms + STDIN_STALL_MS;
            if (!d || s < d) d = s;
        }
    }
    return d;
}

void proc_conn_closed(int ci) {
    for (int i = 0; i < MAX_PROCS; i++) {
        proc_t *p = &g_procs[i];
        if (p->used && p->conn == ci) p->conn = -1;
    }
}

void proc_kill_all(void) {
    for (int i = 0; i < MAX_PROCS; i++) {
        proc_t *p = &g_procs[i];
        if (!p->used || p->finished) continue;
        kill(-p->pid, SIGKILL);
        if (!p->reaped) kill(p->pid, SIGKILL);
    }
}

static void json_str(buf_t *b, const char *s, size_t n) {
    buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            buf_append(b, e, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", ch);
            buf_append(b, e, 6);
        } else
            buf_append(b, &ch, 1);
    }
    buf_append(b, "\"", 1);
}

void proc_list(int ci, uint32_t reqid) {
    buf_t b = {0};
    buf_append(&b, "[", 1);
    DIR *d = opendir("/proc");
    int first = 1;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (*end || v <= 0) continue;
        pid_t pp, ss;
        char comm[64];
        if (read_stat((pid_t)v, &pp, &ss, comm, sizeof comm) < 0) continue;
        char path[64], cmd[CMD_MAX + 2];
        snprintf(path, sizeof path, "/proc/%ld/cmdline", v);
        ssize_t n = -1;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            n = read(fd, cmd, CMD_MAX);
            close(fd);
        }
        if (n > 0) {
            while (n > 0 && cmd[n - 1] == 0) n--;
            for (ssize_t i = 0; i < n; i++)
                if (cmd[i] == 0) cmd[i] = ' ';
        } else {
            n = snprintf(cmd, sizeof cmd, "[%s]", comm);
        }
        char head[96];
        int hl = snprintf(head, sizeof head, "%s{\"pid\":%ld,\"ppid\":%d,\"command\":", first ? "" : ",", v, (int)pp);
        buf_append(&b, head, (size_t)hl);
        json_str(&b, cmd, (size_t)n);
        for (int i = 0; i < MAX_PROCS; i++) {
            proc_t *p = &g_procs[i];
            if (p->used && !p->finished && p->pid == (pid_t)v) {
                hl = snprintf(head, sizeof head, ",\"execId\":%u", p->id);
                buf_append(&b, head, (size_t)hl);
                break;
            }
        }
        buf_append(&b, "}", 1);
        first = 0;
    }
    if (d) closedir(d);
    buf_append(&b, "]", 1);
    conn_send(ci, F_PROCESS_LIST, reqid, b.data + b.head, buf_used(&b), NULL, 0);
    buf_free(&b);
}
