/* tmpl_err: where and why a template fails. Positions are byte offsets in the normalised source
 * (newlines \n, one trailing newline dropped); errors report them as "line L, column C" and hand
 * the caller the offset in the ORIGINAL text (t->omap), so a message points at the bytes the
 * user wrote. Parse errors (lexer and parser) and render errors (every runtime file) are recorded
 * here, first error wins; the render's step budget is charged here too, since running out of it
 * is one more render error.
 *
 * The lowest file of the interpreter after tmpl_uni: it uses nothing of the module but the
 * structs in tmpl_int.h. */
#include "tmpl_int.h"

#include <stdio.h>

/* ---- positions ---- */

void tmpl_line_col(const char *src, size_t len, uint64_t off, unsigned *line, unsigned *col)
{
    unsigned l = 1, c = 1;
    for (size_t i = 0; i < len && i < off; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch == '\n' || (ch == '\r' && !(i + 1 < len && src[i + 1] == '\n'))) {
            l++;
            c = 1;
        } else if ((ch & 0xc0) != 0x80 && ch != '\r') {
            c++;
        }
    }
    *line = l;
    *col = c;
}

void tmpl_pos_str(const struct tmpl *t, uint32_t pos, char *buf, size_t cap)
{
    unsigned l, c;
    tmpl_line_col(t->src, t->len, pos, &l, &c);
    snprintf(buf, cap, "line %u, column %u", l, c);
}

uint64_t tmpl_orig_off(const struct tmpl *t, uint32_t pos)
{
    if (!t->omap) return pos;
    return t->omap[pos < t->len ? pos : t->len];
}

/* ---- parse errors ---- */

void tmpl_errv(const struct tmpl *t, struct err_info *ei, int code, uint32_t pos, const char *fmt,
               va_list ap)
{
    char msg[200], where[48];
    vsnprintf(msg, sizeof msg, fmt, ap);
    tmpl_pos_str(t, pos, where, sizeof where);
    err_set(ei, code, tmpl_orig_off(t, pos), "%s: %s", where, msg);
}

/* ---- render errors and the step budget ---- */

int tmpl_rt_err(struct rctx *c, int code, const char *kind, const char *fmt, ...)
{
    if (!c->err) {
        char msg[ERR_MSG_MAX], where[48];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        c->err = code;
        c->err_pos = c->cur_pos;
        tmpl_pos_str(c->t, c->cur_pos, where, sizeof where);
        err_set(c->ei, code, tmpl_orig_off(c->t, c->cur_pos), "%s: %s (%s)", kind, msg, where);
    }
    return -1;
}

int tmpl_rt_steps(struct rctx *c, uint64_t n)
{
    c->steps += n;
    if (c->steps > c->max_steps)
        return tmpl_rt_err(c, ERR_LIMIT, "StepLimit",
                      "the template did more than %llu steps of work (a loop that does not end?)",
                      (unsigned long long)c->max_steps);
    return 0;
}
