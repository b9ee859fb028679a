/* Custom events: lines written to the events FIFO are broadcast as CUSTOM frames. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

#define LINE_MAX_BYTES (64 * 1024)

static int g_ffd = -1;
static uint8_t g_line[LINE_MAX_BYTES];
static size_t g_have;
static int g_skipping; /* inside an over-long line: drop until the next newline */

int events_init(const char *path) {
    struct stat st;
    if (lstat(path, &st) == 0) unlink(path);
    if (mkfifo(path, 0666) < 0) {
        logmsg("mkfifo %s: %s (custom events disabled)", path, strerror(errno));
        return -1;
    }
    chmod(path, 0666); /* any user in the sandbox may emit events, whatever the umask */
    g_ffd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (g_ffd < 0) logmsg("open %s: %s (custom events disabled)", path, strerror(errno));
    return g_ffd;
}

static void too_long(void) {
    static const char msg[] = "custom event line longer than 65536 bytes dropped";
    broadcast(F_ERROR, 0, msg, sizeof msg - 1, NULL, 0);
}

void events_on_readable(void) {
    uint8_t buf[16384];
    for (int round = 0; round < 16; round++) {
        ssize_t n = read(g_ffd, buf, sizeof buf);
        if (n <= 0) return;
        for (ssize_t i = 0; i < n; i++) {
            uint8_t ch = buf[i];
            if (ch == '\n') {
                if (!g_skipping) broadcast(F_CUSTOM, 0, g_line, g_have, NULL, 0);
                g_have = 0;
                g_skipping = 0;
            } else if (g_skipping) {
                continue;
            } else if (g_have == LINE_MAX_BYTES) {
                g_skipping = 1;
                g_have = 0;
                too_long();
            } else {
                g_line[g_have++] = ch;
            }
        }
    }
}
