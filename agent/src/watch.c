/* Recursive workspace watcher (inotify) producing FILE_EVENT broadcasts. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

#define FE_CREATED 0
#define FE_MODIFIED 1
#define FE_DELETED 2
#define FE_RENAMED 3
#define FE_OVERFLOW 4

#define WMASK (IN_CREATE | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DONT_FOLLOW | IN_EXCL_UNLINK | IN_ONLYDIR)

static int g_ifd = -1;
static char **g_wpath; /* indexed by wd; relative path ("" = workspace root) */
static int g_wcap;

#define MAX_PENDING 16
static struct {
    int used;
    uint32_t cookie;
    char *path;
    int isdir;
    int64_t deadline;
} g_pending[MAX_PENDING];

static void emit(uint8_t kind, int isdir, const char *path, const char *from) {
    size_t pl = strlen(path), fl = from ? strlen(from) : 0;
    uint8_t *b = malloc(2 + 4 + pl + 4 + fl);
    if (!b) return;
    b[0] = kind;
    b[1] = isdir ? 1 : 0;
    put_u32(b + 2, (uint32_t)pl);
    memcpy(b + 6, path, pl);
    put_u32(b + 6 + pl, (uint32_t)fl);
    if (fl) memcpy(b + 10 + pl, from, fl);
    broadcast(F_FILE_EVENT, 0, b, 10 + pl + fl, NULL, 0);
    free(b);
}

static char *join(const char *dir, const char *name) {
    size_t dl = strlen(dir), nl = strlen(name);
    char *s = malloc(dl + nl + 2);
    if (!s) return NULL;
    if (dl) {
        memcpy(s, dir, dl);
        s[dl] = '/';
        memcpy(s + dl + 1, name, nl + 1);
    } else
        memcpy(s, name, nl + 1);
    return s;
}

static void set_wpath(int wd, char *path) {
    if (wd >= g_wcap) {
        int nc = g_wcap ? g_wcap : 64;
        while (nc <= wd) nc *= 2;
        char **n = realloc(g_wpath, (size_t)nc * sizeof *n);
        if (!n) {
            free(path);
            return;
        }
        memset(n + g_wcap, 0, (size_t)(nc - g_wcap) * sizeof *n);
        g_wpath = n;
        g_wcap = nc;
    }
    free(g_wpath[wd]);
    g_wpath[wd] = path;
}

/* watch rel (a directory) and everything below it; report what is found as created if report */
static void add_tree(const char *rel, int report, int depth) {
    if (depth > 128) return;
    char *full = join(g_workspace, rel);
    if (!full) return;
    int wd = inotify_add_watch(g_ifd, full, WMASK);
    if (wd < 0) {
        if (errno == ENOSPC) logmsg("inotify watch limit reached; %s is not watched", full);
        free(full);
        return;
    }
    char *copy = strdup(rel);
    if (copy) set_wpath(wd, copy);
    DIR *d = opendir(full);
    free(full);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *child = join(rel, e->d_name);
        if (!child) continue;
        int isdir = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN) {
            struct stat st;
            char *cf = join(g_workspace, child);
            isdir = cf && lstat(cf, &st) == 0 && S_ISDIR(st.st_mode);
            free(cf);
        }
        if (report) emit(FE_CREATED, isdir, child, NULL);
        if (isdir) add_tree(child, report, depth + 1);
        free(child);
    }
    closedir(d);
}

static int under(const char *path, const char *prefix, size_t pl) {
    return strncmp(path, prefix, pl) == 0 && (path[pl] == 0 || path[pl] == '/');
}

static void rename_watches(const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to);
    for (int wd = 0; wd < g_wcap; wd++) {
        char *p = g_wpath[wd];
        if (!p || !under(p, from, fl)) continue;
        size_t rest = strlen(p + fl);
        char *n = malloc(tl + rest + 1);
        if (!n) continue;
        memcpy(n, to, tl);
        memcpy(n + tl, p + fl, rest + 1);
        free(p);
        g_wpath[wd] = n;
    }
}

static void remove_watches(const char *prefix) {
    size_t pl = strlen(prefix);
    for (int wd = 0; wd < g_wcap; wd++) {
        char *p = g_wpath[wd];
        if (!p || !under(p, prefix, pl)) continue;
        inotify_rm_watch(g_ifd, wd);
        free(p);
        g_wpath[wd] = NULL;
    }
}

static void expire_pending(int i) {
    emit(FE_DELETED, g_pending[i].isdir, g_pending[i].path, NULL);
    if (g_pending[i].isdir) remove_watches(g_pending[i].path);
    free(g_pending[i].path);
    g_pending[i].used = 0;
}

int watch_init(const char *workspace) {
    g_ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (g_ifd < 0) {
        logmsg("inotify_init1: %s (file events disabled)", strerror(errno));
        return -1;
    }
    (void)workspace;
    add_tree("", 0, 0);
    return g_ifd;
}

static void handle(const struct inotify_event *ev) {
    if (ev->mask & IN_Q_OVERFLOW) {
        emit(FE_OVERFLOW, 0, "", NULL);
        return;
    }
    if (ev->wd < 0 || ev->wd >= g_wcap) return;
    if (ev->mask & IN_IGNORED) {
        free(g_wpath[ev->wd]);
        g_wpath[ev->wd] = NULL;
        return;
    }
    const char *dir = g_wpath[ev->wd];
    if (!dir || !ev->len || !ev->name[0]) return;
    char *rel = join(dir, ev->name);
    if (!rel) return;
    int isdir = (ev->mask & IN_ISDIR) != 0;
    if (ev->mask & IN_CREATE) {
        emit(FE_CREATED, isdir, rel, NULL);
        if (isdir) add_tree(rel, 1, 0);
    } else if (ev->mask & IN_CLOSE_WRITE) {
        emit(FE_MODIFIED, 0, rel, NULL);
    } else if (ev->mask & IN_DELETE) {
        emit(FE_DELETED, isdir, rel, NULL);
    } else if (ev->mask & IN_MOVED_FROM) {
        int slot = -1;
        for (int i = 0; i < MAX_PENDING; i++)
            if (!g_pending[i].used) {
                slot = i;
                break;
            }
        if (slot < 0) {
            slot = 0;
            for (int i = 1; i < MAX_PENDING; i++)
                if (g_pending[i].deadline < g_pending[slot].deadline) slot = i;
            expire_pending(slot);
        }
        g_pending[slot].used = 1;
        g_pending[slot].cookie = ev->cookie;
        g_pending[slot].path = rel;
        g_pending[slot].isdir = isdir;
        g_pending[slot].deadline = now_ms() + MOVE_GRACE_MS;
        return; /* rel is owned by the pending entry */
    } else if (ev->mask & IN_MOVED_TO) {
        int m = -1;
        for (int i = 0; i < MAX_PENDING; i++)
            if (g_pending[i].used && g_pending[i].cookie == ev->cookie) {
                m = i;
                break;
            }
        if (m >= 0) {
            emit(FE_RENAMED, isdir, rel, g_pending[m].path);
            if (isdir) rename_watches(g_pending[m].path, rel);
            free(g_pending[m].path);
            g_pending[m].used = 0;
        } else {
            emit(FE_CREATED, isdir, rel, NULL);
            if (isdir) add_tree(rel, 1, 0);
        }
    }
    free(rel);
}

void watch_on_readable(void) {
    static char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (int round = 0; round < 4; round++) {
        ssize_t n = read(g_ifd, buf, sizeof buf);
        if (n <= 0) return;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            handle(ev);
            p += sizeof *ev + ev->len;
        }
    }
}

void watch_timers(int64_t now) {
    for (int i = 0; i < MAX_PENDING; i++)
        if (g_pending[i].used && now >= g_pending[i].deadline) expire_pending(i);
}

int64_t watch_next_deadline(void) {
    int64_t d = 0;
    for (int i = 0; i < MAX_PENDING; i++)
        if (g_pending[i].used && (!d || g_pending[i].deadline < d)) d = g_pending[i].deadline;
    return d;
}
