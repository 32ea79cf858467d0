/* rpc_lines: split an inbound byte stream into '\n'-terminated lines with a hard size limit.
 *
 * Why bounded: a parent (or a bug) that sends one endless line must not make us allocate without
 * end. The buffer grows geometrically up to `max` bytes; a line that would exceed it switches the
 * splitter to discarding mode: its bytes are dropped up to the next '\n', then the callback hears
 * about it once (line NULL, len = its full length) so the server can answer an error and go on.
 * Invariants: buf holds only the current, incomplete line; len <= max; memory <= max + slack. */
#include "rpc_int.h"

#include <stdlib.h>
#include <string.h>

void rpc_lines_init(struct rpc_lines *l, size_t max)
{
    memset(l, 0, sizeof *l);
    l->max = max;
}

void rpc_lines_free(struct rpc_lines *l)
{
    if (!l) return;
    free(l->buf);
    memset(l, 0, sizeof *l);
}

static void deliver(struct rpc_lines *l, rpc_line_fn fn, void *ud)
{
    size_t n = l->len;
    if (n && l->buf[n - 1] == '\r') n--; /* CRLF senders */
    fn(ud, l->buf ? l->buf : "", n);
    l->len = 0;
}

/* Append to the current line; false when it would pass the limit or memory runs out. */
static bool append(struct rpc_lines *l, const char *p, size_t n)
{
    if (n == 0) return true; /* buf may still be NULL */
    if (n > l->max - l->len) return false;
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap : 4096;
        while (cap < l->len + n) cap = cap > l->max / 2 ? l->max : cap * 2;
        char *q = realloc(l->buf, cap);
        if (!q) return false;
        l->buf = q;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, p, n);
    l->len += n;
    return true;
}

void rpc_lines_feed(struct rpc_lines *l, const char *data, size_t n, rpc_line_fn fn, void *ud)
{
    while (n) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        if (l->discarding) {
            l->discarded += take;
        } else if (!append(l, data, take)) {
            l->discarding = true;
            l->discarded = l->len + take;
            l->len = 0;
        }
        if (!nl) return;
        if (l->discarding) {
            size_t dl = l->discarded;
            l->discarding = false;
            l->discarded = 0;
            fn(ud, NULL, dl);
        } else {
            deliver(l, fn, ud);
        }
        data += take + 1;
        n -= take + 1;
        /* give back a big buffer once the big line is gone */
        if (l->cap > ((size_t)1 << 20)) {
            free(l->buf);
            l->buf = NULL;
            l->cap = 0;
        }
    }
}

void rpc_lines_finish(struct rpc_lines *l, rpc_line_fn fn, void *ud)
{
    if (l->discarding) {
        size_t dl = l->discarded;
        l->discarding = false;
        l->discarded = 0;
        fn(ud, NULL, dl);
    } else if (l->len) {
        deliver(l, fn, ud);
    }
}
