/* eng_stop: the incremental stop-string matcher of the generation loop (text-level stops are
 * the engine's business; the sampler only samples).
 *
 * Invariant: the text held back is always a proper prefix of some stop string (so shorter than
 * ENG_MAX_STOP_LEN). A feed builds held+text in the caller's out buffer, looks for the match that
 * ends first (then the longest of those), which is what a byte-at-a-time matcher would see, so
 * the result does not depend on how the text was chunked. Without a match, the longest suffix
 * that could still begin a stop string is held and the rest released. */
#include "eng_int.h"

#include <stdint.h>
#include <string.h>

void eng_stop_init(struct eng_stop *st)
{
    if (st) memset(st, 0, sizeof *st);
}

int eng_stop_add(struct eng_stop *st, const char *s, size_t len)
{
    if (!st || (!s && len)) return ERR_INVALID;
    if (len == 0) return ERR_INVALID; /* an empty stop string would match before any text */
    if (len > ENG_MAX_STOP_LEN) return ERR_LIMIT;
    if (st->n_stops >= ENG_STOP_SLOTS) return ERR_LIMIT;
    memcpy(st->stops[st->n_stops], s, len);
    st->stops[st->n_stops][len] = '\0';
    st->stop_len[st->n_stops] = len;
    st->n_stops++;
    return 0;
}

/* First occurrence of needle in hay, or SIZE_MAX. */
static size_t find_bytes(const char *hay, size_t n, const char *needle, size_t m)
{
    if (m > n) return SIZE_MAX;
    const char *p = hay, *end = hay + (n - m) + 1;
    while (p < end) {
        const char *q = memchr(p, (unsigned char)needle[0], (size_t)(end - p));
        if (!q) return SIZE_MAX;
        if (memcmp(q, needle, m) == 0) return (size_t)(q - hay);
        p = q + 1;
    }
    return SIZE_MAX;
}

/* Is buf[0, n) a proper prefix of some stop string? */
static int is_stop_prefix(const struct eng_stop *st, const char *buf, size_t n)
{
    for (size_t k = 0; k < st->n_stops; k++)
        if (st->stop_len[k] > n && memcmp(st->stops[k], buf, n) == 0) return 1;
    return 0;
}

int eng_stop_feed(struct eng_stop *st, const char *text, size_t len, char *out, size_t cap,
                   size_t *out_len)
{
    if (out_len) *out_len = 0;
    if (!st || !out || !out_len || (!text && len)) return ERR_INVALID;
    if (st->n_held >= ENG_MAX_STOP_LEN) return ERR_STATE; /* struct corrupted by the caller */
    if (len > SIZE_MAX - st->n_held || cap < st->n_held + len) return ERR_INVALID;

    /* Work in out: held text then the new text; whatever is released is already in place. */
    size_t n = st->n_held + len;
    memcpy(out, st->held, st->n_held);
    if (len) memcpy(out + st->n_held, text, len);

    /* The match that ends first (then the longest): what a byte-at-a-time matcher sees. */
    size_t best_start = SIZE_MAX, best_end = SIZE_MAX;
    for (size_t k = 0; k < st->n_stops; k++) {
        size_t m = st->stop_len[k];
        /* Search only up to where it could still beat the current best. */
        size_t lim = best_end == SIZE_MAX ? n : best_end;
        size_t pos = find_bytes(out, lim, st->stops[k], m);
        if (pos == SIZE_MAX) continue;
        size_t end = pos + m;
        if (end < best_end || (end == best_end && pos < best_start)) {
            best_end = end;
            best_start = pos;
        }
    }
    if (best_start != SIZE_MAX) {
        st->n_held = 0; /* the stop string and anything after it are dropped */
        *out_len = best_start;
        return 1;
    }

    /* Hold the longest suffix that is a proper prefix of a stop string; it is shorter than
     * ENG_MAX_STOP_LEN, which bounds the struct. */
    size_t hold = 0;
    size_t from = n > ENG_MAX_STOP_LEN - 1 ? n - (ENG_MAX_STOP_LEN - 1) : 0;
    for (size_t p = from; p < n; p++) {
        if (is_stop_prefix(st, out + p, n - p)) {
            hold = n - p;
            break;
        }
    }
    memcpy(st->held, out + (n - hold), hold);
    st->n_held = hold;
    *out_len = n - hold;
    return 0;
}

size_t eng_stop_flush(struct eng_stop *st, char *out, size_t cap)
{
    if (!st || !out) return 0;
    size_t n = st->n_held < cap ? st->n_held : cap;
    memcpy(out, st->held, n);
    /* A short buffer gets what fits; the rest stays for the next flush. */
    memmove(st->held, st->held + n, st->n_held - n);
    st->n_held -= n;
    return n;
}
