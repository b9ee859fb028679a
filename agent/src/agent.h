/* faas-agent: the in-sandbox agent. Shared types and declarations. See docs/agent-protocol.md. */
#ifndef FAAS_AGENT_H
#define FAAS_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Frame types, host -> agent */
#define F_SPAWN 0x01
#define F_STDIN 0x02
#define F_STDIN_EOF 0x03
#define F_SIGNAL 0x04
#define F_RESIZE 0x05
#define F_PING 0x06
#define F_LIST 0x07
#define F_SUBSCRIBE 0x08
#define F_ATTACH 0x09
/* agent -> host */
#define F_STARTED 0x81
#define F_STDOUT 0x82
#define F_STDERR 0x83
#define F_EXIT 0x84
#define F_ERROR 0x85
#define F_PONG 0x86
#define F_PROCESS_LIST 0x87
#define F_PROCESS_EVENT 0x88
#define F_FILE_EVENT 0x89
#define F_CUSTOM 0x8A

#define HDR_LEN 9
#define MAX_PAYLOAD (16u * 1024 * 1024)
#define CHUNK (64 * 1024)
#define OUT_BOUND (4u * 1024 * 1024)
#define STDIN_BOUND (1u * 1024 * 1024)
#define MAX_CONNS 64
#define MAX_PROCS 1024
#define MAX_KEPT 64
#define CMD_MAX 1024
#define EXIT_GRACE_MS 50
#define MOVE_GRACE_MS 20
#define STDIN_STALL_MS 1000

/* ---- growable byte buffer: valid data is data[head..len) ---- */
typedef struct {
    uint8_t *data;
    size_t head, len, cap;
} buf_t;

size_t buf_used(const buf_t *b);
uint8_t *buf_reserve(buf_t *b, size_t n); /* returns pointer to n writable bytes at data+len */
void buf_append(buf_t *b, const void *p, size_t n);
void buf_consume(buf_t *b, size_t n);
void buf_free(buf_t *b);

/* ---- big-endian helpers / payload reader ---- */
void put_u16(uint8_t *p, uint16_t v);
void put_u32(uint8_t *p, uint32_t v);
void put_u64(uint8_t *p, uint64_t v);
uint32_t get_u32(const uint8_t *p);

typedef struct {
    const uint8_t *p;
    size_t len, off;
    int bad;
} rd_t;
uint8_t rd_u8(rd_t *r);
uint16_t rd_u16(rd_t *r);
uint32_t rd_u32(rd_t *r);
uint64_t rd_u64(rd_t *r);
/* returns a malloc'd NUL-terminated copy (or NULL and sets bad) */
char *rd_str(rd_t *r);

/* ---- connections ---- */
typedef struct {
    int fd;            /* -1 = free slot */
    int subscribed;
    int closing;       /* stop reading; close once out is flushed */
    int dead;          /* peer gone or write failed: closed by the main loop */
    buf_t out;
    uint8_t hdr[HDR_LEN];
    size_t hdr_got;
    uint8_t *payload;
    uint32_t plen;
    size_t pgot;
    uint64_t dropped;   /* broadcast frames dropped for this subscriber, in total */
    uint64_t unreported; /* ... not yet reported to it */
} conn_t;

extern conn_t g_conns[MAX_CONNS];

void conn_accept(int lfd);
void conn_on_readable(int ci);
void conn_on_writable(int ci);
void conn_close(int ci);
int conn_paused(int ci);          /* output above bound (or no such conn = 0) */
int conn_read_blocked(int ci);    /* some process of this conn has a big stdin queue */
/* queue a frame: header + payload parts. Tries to flush immediately. */
void conn_send(int ci, uint8_t type, uint32_t id, const void *p1, size_t n1, const void *p2, size_t n2);
void conn_send_error(int ci, uint32_t id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* to all subscribers; dropped (counted) for subscribers over the bound */
void broadcast(uint8_t type, uint32_t id, const void *p1, size_t n1, const void *p2, size_t n2);
void conn_flush(int ci);
void conn_report_drops(int ci); /* ERROR id 0 about dropped broadcasts, once the buffer has drained */

/* ---- processes ---- */
typedef struct {
    int used;
    uint32_t id;
    pid_t pid;
    int conn;          /* owning connection or -1 */
    int pty;
    int out_fd, err_fd; /* for pty: out_fd is the master */
    int in_fd;         /* stdin pipe (not pty) or -1 */
    int in_open;       /* stdin accepts data (pipe open, or pty master open) */
    int in_eof;        /* close after queue drained */
    buf_t inq;
    int64_t in_progress_ms; /* last time stdin was written (or the queue started) */
    int in_dropping;        /* stalled over the bound for 1 s: further STDIN is dropped */
    int reaped;
    int status;
    int64_t grace_deadline; /* 0 = none */
    int64_t oom_start;
    int finished;      /* EXIT computed, kept for ATTACH */
    int32_t exit_code, exit_signal;
    uint8_t exit_flags;
    uint64_t finished_seq;
    char *cmd;
} proc_t;

extern proc_t g_procs[MAX_PROCS];

int proc_spawn(int ci, uint32_t id, rd_t *r); /* -1 = malformed payload */
proc_t *proc_find(uint32_t id);
void proc_on_output(proc_t *p, int which); /* 1 = out, 2 = err */
void proc_on_stdin_writable(proc_t *p);
void proc_stdin(proc_t *p, const uint8_t *data, size_t n);
void proc_stdin_eof(proc_t *p);
void proc_signal(proc_t *p, int sig, int tree);
void proc_resize(proc_t *p, unsigned cols, unsigned rows);
void proc_attach(int ci, uint32_t id);
void proc_reap_all(void);
void proc_timers(int64_t now);
int64_t proc_next_deadline(void);
void proc_conn_closed(int ci);
void proc_kill_all(void);
void proc_list(int ci, uint32_t reqid);

/* ---- workspace watcher ---- */
int watch_init(const char *workspace); /* returns inotify fd */
void watch_on_readable(void);
void watch_timers(int64_t now);
int64_t watch_next_deadline(void);

/* ---- custom events ---- */
int events_init(const char *path); /* returns fifo fd */
void events_on_readable(void);

/* ---- globals / util ---- */
extern const char *g_workspace;
extern const char *g_events_path;
int64_t now_ms(void);
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void set_nonblock_cloexec(int fd);

#endif
