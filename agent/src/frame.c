/* Byte buffers, big-endian encoding and payload parsing. */
#include <stdlib.h>
#include <string.h>

#include "agent.h"

size_t buf_used(const buf_t *b) { return b->len - b->head; }

uint8_t *buf_reserve(buf_t *b, size_t n) {
    if (b->head > 0 && (b->head == b->len || b->len + n > b->cap)) {
        memmove(b->data, b->data + b->head, b->len - b->head);
        b->len -= b->head;
        b->head = 0;
    }
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n) nc *= 2;
        uint8_t *nd = realloc(b->data, nc);
        if (!nd) return NULL;
        b->data = nd;
        b->cap = nc;
    }
    return b->data + b->len;
}

void buf_append(buf_t *b, const void *p, size_t n) {
    if (n == 0) return;
    uint8_t *d = buf_reserve(b, n);
    if (!d) return; /* out of memory: drop (never crash) */
    memcpy(d, p, n);
    b->len += n;
}

void buf_consume(buf_t *b, size_t n) {
    b->head += n;
    if (b->head >= b->len) {
        b->head = b->len = 0;
        /* give back memory of big idle buffers */
        if (b->cap > 1024 * 1024) {
            free(b->data);
            b->data = NULL;
            b->cap = 0;
        }
    }
}

void buf_free(buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->head = b->len = b->cap = 0;
}

void put_u16(uint8_t *p, uint16_t v) {
    p[0] = v >> 8;
    p[1] = v;
}
void put_u32(uint8_t *p, uint32_t v) {
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}
void put_u64(uint8_t *p, uint64_t v) {
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}
uint32_t get_u32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int rd_need(rd_t *r, size_t n) {
    if (r->bad || r->len - r->off < n) {
        r->bad = 1;
        return 0;
    }
    return 1;
}
uint8_t rd_u8(rd_t *r) {
    if (!rd_need(r, 1)) return 0;
    return r->p[r->off++];
}
uint16_t rd_u16(rd_t *r) {
    if (!rd_need(r, 2)) return 0;
    uint16_t v = (uint16_t)((r->p[r->off] << 8) | r->p[r->off + 1]);
    r->off += 2;
    return v;
}
uint32_t rd_u32(rd_t *r) {
    if (!rd_need(r, 4)) return 0;
    uint32_t v = get_u32(r->p + r->off);
    r->off += 4;
    return v;
}
uint64_t rd_u64(rd_t *r) {
    uint64_t hi = rd_u32(r);
    uint64_t lo = rd_u32(r);
    return (hi << 32) | lo;
}
char *rd_str(rd_t *r) {
    uint32_t n = rd_u32(r);
    if (!rd_need(r, n)) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) {
        r->bad = 1;
        return NULL;
    }
    memcpy(s, r->p + r->off, n);
    s[n] = 0;
    r->off += n;
    return s;
}
