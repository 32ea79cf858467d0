/* tmpl_mem: the arena every template and render allocates from, the growable output buffer,
 * and string construction.
 *
 * The arena hands out 16-aligned zeroed blocks from 64 KiB chunks (a request larger than a
 * quarter chunk gets its own chunk) and is freed in one go; `used` counts every byte handed out
 * so a render can be bounded in memory as well as in steps. Chunks come from calloc and an arena
 * never reuses memory, so every block is zero without a memset (large chunks are fresh pages). */
#include "tmpl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_blk {
    struct arena_blk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

#define ARENA_CHUNK (64u << 10)

void *tmpl_arena_alloc(struct arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (a->limit && (n > a->limit || a->used > a->limit - n)) return NULL;
    struct arena_blk *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t sz = n > ARENA_CHUNK / 4 ? n : ARENA_CHUNK;
        struct arena_blk *nb = calloc(1, sizeof *nb + sz);
        if (!nb) return NULL;
        nb->size = sz;
        nb->used = 0;
        if (b && sz != ARENA_CHUNK) {
            /* a big block goes behind the current chunk so the chunk's tail stays usable */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->used += n;
    return p;
}

void tmpl_arena_free(struct arena *a)
{
    struct arena_blk *b = a->head;
    while (b) {
        struct arena_blk *nx = b->next;
        free(b);
        b = nx;
    }
    a->head = NULL;
    a->used = 0;
}

int tmpl_buf_put(struct buf *b, const void *s, size_t n)
{
    if (n == 0) return 0;
    if (b->limit && (n > b->limit || b->n > b->limit - n)) return ERR_LIMIT;
    if (b->cap - b->n < n + 1) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc - b->n < n + 1) {
            if (nc > SIZE_MAX / 2) return ERR_NOMEM;
            nc *= 2;
        }
        char *p = realloc(b->p, nc);
        if (!p) return ERR_NOMEM;
        b->p = p;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int tmpl_buf_putc(struct buf *b, char c) { return tmpl_buf_put(b, &c, 1); }

int tmpl_buf_printf(struct buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return ERR_INVALID;
    return tmpl_buf_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

void tmpl_buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

struct str *tmpl_str_alloc(struct arena *a, size_t n)
{
    if (n > SIZE_MAX - sizeof(struct str) - 1) return NULL;
    struct str *s = tmpl_arena_alloc(a, sizeof *s + n + 1);
    if (!s) return NULL;
    s->len = n;
    s->ncp = -1;
    return s;
}

struct str *tmpl_str_new(struct arena *a, const char *p, size_t n)
{
    struct str *s = tmpl_str_alloc(a, n);
    if (s && n) memcpy(s->b, p, n);
    return s;
}

int64_t tmpl_str_ncp(struct str *s)
{
    if (s->ncp < 0) {
        int64_t k = 0;
        for (size_t i = 0; i < s->len; i++) k += ((unsigned char)s->b[i] & 0xc0) != 0x80;
        s->ncp = k;
    }
    return s->ncp;
}

struct val tmpl_v_str(struct rctx *c, const char *s, size_t n)
{
    struct str *p = tmpl_str_new(&c->ar, s, n);
    if (!p) {
        tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used more than %zu bytes of memory",
               c->ar.limit);
        return v_undef();
    }
    return v_strv(p, false);
}

struct val tmpl_v_cstr(struct rctx *c, const char *s) { return tmpl_v_str(c, s, strlen(s)); }

struct val tmpl_buf_take(struct rctx *c, struct buf *b, bool markup)
{
    struct val v = tmpl_v_str(c, b->p ? b->p : "", b->n);
    v.f = markup;
    b->n = 0;
    return v;
}

int tmpl_rt_oom(struct rctx *c)
{
    return tmpl_rt_err(c, ERR_LIMIT, "MemoryError", "the template used too much memory");
}

int tmpl_rt_bput(struct rctx *c, struct buf *b, const char *s, size_t n)
{
    int rc = tmpl_buf_put(b, s, n);
    if (rc) {
        tmpl_buf_free(b);
        return tmpl_rt_err(c, rc == ERR_LIMIT ? ERR_LIMIT : ERR_NOMEM, "MemoryError", "string too long");
    }
    return 0;
}

int tmpl_rt_take(struct rctx *c, struct buf *b, bool markup, struct val *out)
{
    *out = tmpl_buf_take(c, b, markup);
    tmpl_buf_free(b);
    return out->t == VT_STR ? 0 : -1;
}
