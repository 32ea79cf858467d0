/* eng_tcon: the tool-call constraint. With tool_choice "required" or a named tool it is the call
 * section's grammar from the first token. With "auto" it is lazy: every token is allowed until
 * the text contains the family's trigger, then the grammar (which starts right after the
 * trigger) holds the rest.
 *
 * The trigger is watched on the tokens' bytes (the vocabulary view: control tokens are their
 * marker text) with a KMP automaton, so a trigger may span tokens. The token that completes it
 * may carry bytes after it: those are the grammar's first bytes, so such a token is allowed only
 * when the grammar accepts them (check() tries them, mask() asks for every token that would
 * complete the trigger), and accepting it feeds them. With at_start the trigger counts only at
 * the first non-space byte of the reply. End-of-generation tokens never trigger.
 *
 * The loop's stop matcher finds the same trigger in the detokenized text (eng_stop's switch, fed
 * the same bytes: control tokens are printed in a tool-call reply) and hands the text from there
 * on to the call parser instead of the reply. */
#include "eng_int.h"

#include "eng_tools.h"

#include <stdlib.h>
#include <string.h>

struct eng_tcon {
    struct eng_gcon gc; /* the call section's matcher (starts after the trigger when lazy) */
    struct gram *g;     /* owned */
    const struct vocab_view *v;
    bool lazy, fired;
    /* the watcher: k bytes of the trigger matched; at_start: phase 0 before the first non-space
     * byte, 1 matching from it, 2 no trigger is possible any more */
    char trig[ENG_TSYN_LIT];
    size_t trig_len;
    size_t fail[ENG_TSYN_LIT]; /* KMP: fail[i] = longest proper border of trig[0..i+1) */
    bool at_start;
    size_t k;
    int phase;
};

struct watch {
    size_t k;
    int phase;
};

static void kmp_table(struct eng_tcon *c)
{
    c->fail[0] = 0;
    for (size_t i = 1, b = 0; i < c->trig_len; i++) {
        while (b > 0 && c->trig[i] != c->trig[b]) b = c->fail[b - 1];
        if (c->trig[i] == c->trig[b]) b++;
        c->fail[i] = b;
    }
}

static bool space(char ch) { return ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r'; }

/* Run the watcher over b[0..n). Returns true when the trigger completes, with *rest = the index
 * of the first byte after it. */
static bool watch_run(const struct eng_tcon *c, struct watch *w, const char *b, size_t n, size_t *rest)
{
    for (size_t i = 0; i < n; i++) {
        char ch = b[i];
        if (c->at_start) {
            if (w->phase == 2) return false;
            if (w->phase == 0) {
                if (space(ch)) continue;
                w->phase = 1;
            }
            if (ch != c->trig[w->k]) {
                w->phase = 2;
                return false;
            }
            w->k++;
        } else {
            while (w->k > 0 && ch != c->trig[w->k]) w->k = c->fail[w->k - 1];
            if (ch == c->trig[w->k]) w->k++;
        }
        if (w->k == c->trig_len) {
            *rest = i + 1;
            return true;
        }
    }
    return false;
}

static bool waiting(const struct eng_tcon *c) { return c->lazy && !c->fired; }

/* Would tok complete the trigger, and is what follows it in tok a start of the grammar?
 * 1 allowed, 0 not. */
static int wait_check(struct eng_tcon *c, int32_t tok)
{
    if (vocab_flags(c->v, tok) & VOCAB_EOG) return 1;
    size_t n, rest;
    const char *b = vocab_bytes(c->v, tok, &n);
    struct watch w = {c->k, c->phase};
    if (!b || !watch_run(c, &w, b, n, &rest)) return 1;
    return gram_matcher_try(&c->gc.m, b + rest, n - rest) == 0;
}

static int tc_check(void *self, int32_t tok)
{
    struct eng_tcon *c = self;
    if (waiting(c)) return wait_check(c, tok);
    return eng_gcon_ops.check(&c->gc, tok);
}

static int tc_mask(void *self, uint64_t *bits)
{
    struct eng_tcon *c = self;
    if (!waiting(c)) return eng_gcon_ops.mask(&c->gc, bits);
    bool any = false;
    for (uint32_t id = 0; id < c->v->n_vocab; id++)
        if (wait_check(c, (int32_t)id)) {
            bits[id / 64] |= 1ull << (id % 64);
            any = true;
        }
    return any ? 0 : ERR_DEAD_END;
}

static int tc_accept(void *self, int32_t tok)
{
    struct eng_tcon *c = self;
    if (!waiting(c)) return eng_gcon_ops.accept(&c->gc, tok);
    if (vocab_flags(c->v, tok) & VOCAB_EOG) return 0;
    size_t n, rest;
    const char *b = vocab_bytes(c->v, tok, &n);
    struct watch w = {c->k, c->phase};
    bool fire = b && watch_run(c, &w, b, n, &rest);
    c->k = w.k;
    c->phase = w.phase;
    if (!fire) return 0;
    c->fired = true;
    /* check() allowed it, so the grammar takes these bytes; a forced or unchecked token that it
     * does not take is the caller's error */
    return gram_matcher_feed(&c->gc.m, b + rest, n - rest, NULL) == 0 ? 0 : ERR_STATE;
}

static int tc_forced(void *self, int32_t *toks, size_t cap, size_t *n)
{
    struct eng_tcon *c = self;
    *n = 0;
    return waiting(c) ? 0 : eng_gcon_ops.forced(&c->gc, toks, cap, n);
}

static int tc_complete(void *self)
{
    struct eng_tcon *c = self;
    return waiting(c) ? 0 : eng_gcon_ops.complete(&c->gc);
}

static void tc_reset(void *self)
{
    struct eng_tcon *c = self;
    gram_matcher_reset(&c->gc.m);
    c->fired = false;
    c->k = 0;
    c->phase = 0;
}

void eng_tcon_free(struct eng_tcon *c)
{
    if (!c) return;
    eng_gcon_free(&c->gc);
    gram_free(c->g);
    free(c);
}

static void tc_free(void *self) { eng_tcon_free(self); }

static const struct eng_constraint_ops k_tcon_ops = {tc_check, tc_mask, tc_accept, tc_forced,
                                                     tc_complete, tc_reset, tc_free};

int eng_tcon_make(struct eng_model *em, const char *gbnf, size_t len, const char *trigger,
                  bool at_start, bool lazy, struct eng_constraint *out, struct err_info *ei)
{
    memset(out, 0, sizeof *out);
    size_t tl = trigger ? strlen(trigger) : 0;
    if (lazy && (tl == 0 || tl >= ENG_TSYN_LIT))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "tool calls: a lazy grammar needs a trigger");
    struct eng_tcon *c = calloc(1, sizeof *c);
    if (!c) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    struct err_info pei;
    err_clear(&pei);
    int rc = gram_parse(gbnf, len, &c->g, &pei);
    if (rc) {
        free(c);
        return err_set(ei, rc, pei.offset, "tool-call grammar (a bug): %s", pei.msg);
    }
    if ((rc = eng_gcon_init(&c->gc, em, c->g, ei))) {
        eng_tcon_free(c);
        return rc;
    }
    c->v = tok_view(em->vocab);
    c->lazy = lazy;
    c->at_start = at_start;
    c->trig_len = tl;
    if (tl) memcpy(c->trig, trigger, tl);
    if (tl) kmp_table(c);
    out->ops = &k_tcon_ops;
    out->self = c;
    return 0;
}
