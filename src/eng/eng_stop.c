/* eng_stop: the incremental stop-string matcher of the generation loop (text-level stops are
 * the engine's business; the sampler only samples).
 *
 * Invariant: the text held back is a proper prefix of some stop string (so shorter than
 * ENG_MAX_STOP_LEN), or begins at an open trigger candidate or at a stop match deferred by one
 * (then shorter than a stop string plus a trigger: it fits ENG_STOP_SLACK). A feed builds
 * held+text in the caller's out buffer, looks for the match that ends first (then the longest
 * of those), which is what a byte-at-a-time matcher would see, so the result does not depend
 * on how the text was chunked. Without a match, the longest suffix that could still begin a
 * stop string (or the trigger) is held and the rest released.
 *
 * The switch (tool calls): a trigger occurrence is looked for the same way; a stop match ending
 * after a trigger candidate begins is deferred, so the trigger wins whenever they overlap. */
#include "eng_int.h"

#include <stdbool.h>
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

int eng_stop_switch(struct eng_stop *st, const char *sw, size_t sw_len, bool at_start,
                    const char *skip, size_t skip_len)
{
    if (!st || (!sw && sw_len) || (!skip && skip_len)) return ERR_INVALID;
    if (sw_len > ENG_SWITCH_MAX || skip_len > ENG_SWITCH_MAX) return ERR_LIMIT;
    if (sw_len) memcpy(st->sw, sw, sw_len);
    if (skip_len) memcpy(st->skip, skip, skip_len);
    st->sw_len = sw_len;
    st->skip_len = skip_len;
    st->sw_at_start = at_start;
    st->skip_done = skip_len == 0;
    st->start_done = false;
    st->switched = sw_len == 0;
    return 0;
}

static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

/* The earliest trigger candidate in buf[0..n): a complete occurrence (*full) or a suffix that
 * begins it (*open), SIZE_MAX for none. A complete one always starts before an open one, so
 * the first hit in start order is the earliest candidate of either kind. */
static void find_switch(struct eng_stop *st, const char *buf, size_t n, size_t *full, size_t *open)
{
    *full = *open = SIZE_MAX;
    if (!st->sw_len || st->switched) return;
    size_t from = 0, to = n;
    if (st->sw_at_start) {
        if (st->start_done) return;
        while (from < n && is_space(buf[from])) from++;
        if (from == n) return; /* only spaces so far */
        to = from + 1;
        st->start_done = true; /* unless the candidate below is still open */
    }
    for (size_t p = from; p < to; p++) {
        size_t k = n - p < st->sw_len ? n - p : st->sw_len;
        if (memcmp(buf + p, st->sw, k) != 0) continue;
        if (k == st->sw_len) *full = p;
        else *open = p;
        break;
    }
    if (st->sw_at_start && *open != SIZE_MAX) st->start_done = false;
}

/* At the start of the text: drop skip when the text begins with it. Returns false while the
 * text so far is a proper prefix of skip (hold it all). */
static bool take_skip(struct eng_stop *st, char *buf, size_t *n)
{
    if (st->skip_done) return true;
    size_t k = *n < st->skip_len ? *n : st->skip_len;
    if (memcmp(buf, st->skip, k) != 0) {
        st->skip_done = true;
        return true;
    }
    if (*n < st->skip_len) return false;
    memmove(buf, buf + st->skip_len, *n - st->skip_len);
    *n -= st->skip_len;
    st->skip_done = true;
    return true;
}

int eng_stop_feed(struct eng_stop *st, const char *text, size_t len, char *out, size_t cap,
                   size_t *out_len)
{
    if (out_len) *out_len = 0;
    if (!st || !out || !out_len || (!text && len)) return ERR_INVALID;
    if (st->n_held > sizeof st->held) return ERR_STATE; /* struct corrupted by the caller */
    if (len > SIZE_MAX - st->n_held || cap < st->n_held + len) return ERR_INVALID;
    st->region_len = 0;
    if (st->switched) { /* all of it is call text */
        if (len) memcpy(out, text, len);
        st->region_len = len;
        return 2;
    }

    /* Work in out: held text then the new text; whatever is released is already in place. */
    size_t n = st->n_held + len;
    memcpy(out, st->held, st->n_held);
    if (len) memcpy(out + st->n_held, text, len);
    st->n_held = 0;
    if (!take_skip(st, out, &n)) {
        memcpy(st->held, out, n);
        st->n_held = n;
        return 0;
    }
    size_t sw_full, sw_open;
    find_switch(st, out, n, &sw_full, &sw_open);
    size_t cand = sw_full < sw_open ? sw_full : sw_open;

    /* The stop match that ends first (then the longest): what a byte-at-a-time matcher sees.
     * A match that ends after a trigger candidate begins is deferred (the trigger wins if it
     * completes): its start is held. */
    size_t best_start = SIZE_MAX, best_end = SIZE_MAX, deferred = SIZE_MAX;
    for (size_t k = 0; k < st->n_stops; k++) {
        size_t m = st->stop_len[k];
        size_t pos = find_bytes(out, n, st->stops[k], m);
        if (pos == SIZE_MAX) continue;
        size_t end = pos + m;
        if (end > cand) {
            if (pos < deferred) deferred = pos;
            continue;
        }
        if (end < best_end || (end == best_end && pos < best_start)) {
            best_end = end;
            best_start = pos;
        }
    }
    if (best_start != SIZE_MAX) {
        *out_len = best_start; /* the stop string and anything after it are dropped */
        return 1;
    }
    if (sw_full != SIZE_MAX) {
        st->switched = true;
        *out_len = sw_full;
        st->region_len = n - sw_full;
        return 2;
    }

    /* Hold the longest suffix that is a proper prefix of a stop string, and from an open
     * trigger candidate or a deferred stop match on. */
    size_t hold_from = n;
    size_t from = n > ENG_MAX_STOP_LEN - 1 ? n - (ENG_MAX_STOP_LEN - 1) : 0;
    for (size_t p = from; p < n; p++) {
        if (is_stop_prefix(st, out + p, n - p)) {
            hold_from = p;
            break;
        }
    }
    if (sw_open < hold_from) hold_from = sw_open;
    if (deferred < hold_from) hold_from = deferred;
    memcpy(st->held, out + hold_from, n - hold_from);
    st->n_held = n - hold_from;
    *out_len = hold_from;
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
