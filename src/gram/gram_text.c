/* gram_text: whole-text matching with a useful refusal, for `lmpipe grammar check` and for
 * tests (the schema converter's among them): where the text stops matching and which bytes the
 * grammar would have taken there, as compact ranges. */
#include "gram_int.h"

#include <stdio.h>
#include <string.h>

/* "a-z", "'\"'", "\xC3": one byte or a range, appended to buf. */
static size_t show_byte(char *buf, size_t cap, size_t n, unsigned b)
{
    if (n >= cap) return n;
    int w;
    if (b == '\'' || b == '\\') w = snprintf(buf + n, cap - n, "\\%c", b);
    else if (b > 0x20 && b < 0x7f) w = snprintf(buf + n, cap - n, "%c", b);
    else if (b == ' ') w = snprintf(buf + n, cap - n, "' '");
    else if (b == '\n') w = snprintf(buf + n, cap - n, "\\n");
    else if (b == '\t') w = snprintf(buf + n, cap - n, "\\t");
    else w = snprintf(buf + n, cap - n, "\\x%02X", b);
    return w > 0 ? n + (size_t)w : n;
}

/* The set of next bytes as "0-9 } ," (at most cap bytes, "..." when cut). */
static void show_set(const uint64_t set[4], char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (unsigned b = 0; b < 256; b++) {
        if (!((set[b >> 6] >> (b & 63)) & 1)) continue;
        unsigned e = b;
        while (e + 1 < 256 && ((set[(e + 1) >> 6] >> ((e + 1) & 63)) & 1)) e++;
        if (n && n + 1 < cap) buf[n++] = ' ';
        n = show_byte(buf, cap, n, b);
        if (e > b) {
            if (n + 1 < cap) buf[n++] = '-';
            n = show_byte(buf, cap, n, e);
        }
        b = e;
        if (n + 8 >= cap) {
            snprintf(buf + (cap > 8 ? cap - 8 : 0), 8, " ...");
            return;
        }
    }
    if (n < cap) buf[n] = 0;
}

int gram_check(const struct gram *g, const void *text, size_t len, struct err_info *ei)
{
    if (!g || (!text && len)) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "gram_check: no grammar or text");
    struct gram_matcher m;
    int rc = gram_matcher_init(&m, g, NULL, ei);
    if (rc) return rc;
    size_t ok = 0;
    rc = gram_matcher_feed(&m, text, len, &ok);
    if (!rc && gram_matcher_can_end(&m)) {
        gram_matcher_free(&m);
        return 0;
    }
    /* where: line and column (in characters) of the byte that failed, or of the end */
    const unsigned char *s = text;
    unsigned line = 1, col = 1;
    for (size_t i = 0; i < ok; i++) {
        if (s[i] == '\n') line++, col = 1;
        else if ((s[i] & 0xc0) != 0x80) col++;
    }
    uint64_t set[4];
    char exp[120];
    /* the state is the one before the failing byte (a rejected feed changes nothing), so feed
     * the accepted part to see what could have come instead */
    gram_matcher_reset(&m);
    if (gram_matcher_feed(&m, text, ok, NULL) == 0) {
        gram_matcher_next_bytes(&m, set);
        show_set(set, exp, sizeof exp);
    } else {
        exp[0] = 0;
    }
    if (rc == ERR_LIMIT)
        rc = err_set(ei, ERR_LIMIT, ok, "text line %u:%u: more than %u parse stacks (the grammar is too ambiguous here)",
                     line, col, GRAM_MAX_STACKS);
    else if (rc)
        rc = err_set(ei, ERR_REJECTED, ok, "text line %u:%u: byte 0x%02X cannot continue the grammar; expected %s", line,
                     col, s[ok], exp[0] ? exp : "nothing more");
    else
        rc = err_set(ei, ERR_REJECTED, len, "text line %u:%u: the text ends before the grammar does; expected %s", line,
                     col, exp[0] ? exp : "a named token");
    gram_matcher_free(&m);
    return rc;
}
