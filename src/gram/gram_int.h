/* gram_int: the compiled grammar's layout and the matcher's core, shared by gram_parse.c (text ->
 * builder), gram_compile.c (builder -> struct gram, analyses), gram_stack.c (frames, expansion,
 * stack sets, compaction), gram_trans.c (transitions between sets, UTF-8), gram_match.c (the byte
 * API), gram_text.c (whole texts), gram_vocab.c (the vocabulary trie) and gram_tok.c (token
 * operations). The inline per-byte step is in gram_step_int.h, one layer up: it calls
 * gram_trans.c, which includes only this header. *
 * Compiled grammar: every rule is a run of elements in one array, its alternatives separated by
 * GOP_ALT and closed by GOP_END (llama.cpp's layout). Repetition is one GOP_REP element with its
 * counts and a body rule, executed by a counter in the stack frame (never unrolled into x? x? x?).
 *
 * Parse stacks: a stack is a chain of frames, interned ("hash-consed") in an arena so that equal
 * stacks are equal ids and shared tails are stored once. Frame = (pos: the element to match next
 * in this frame, cnt: iterations done when pos is a GOP_REP, par: the frame below; 0 = the bottom,
 * so node 0 alone is the empty stack, "the grammar may end"). After expansion every stack's top is
 * a terminal (GOP_CHAR, GOP_CLASS, GOP_TOKEN, GOP_NTOKEN) or the stack is empty.
 *
 * A grammar position is an interned SET of such stacks (sorted top ids) plus the pending bytes of
 * an unfinished UTF-8 character. Sets get small integer ids; per set the core caches the 128
 * ASCII transitions (a row of next-set ids), the transition on any non-ASCII character when every
 * top treats all of them alike, and other transitions in a hash. Caches are dropped (and the
 * arena compacted around the live position) between operations when they pass a soft bound. */
#ifndef LMPIPE_GRAM_GRAM_INT_H
#define LMPIPE_GRAM_GRAM_INT_H

#include "gram.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- compiled grammar ---- */

enum gop {
    GOP_END = 0, /* end of the rule's last alternative */
    GOP_ALT,     /* end of an alternative; the next one starts after it */
    GOP_CHAR,    /* a = code point */
    GOP_CLASS,   /* a = class index */
    GOP_RULE,    /* a = rule id */
    GOP_REP,     /* a = body rule id, b = index into reps */
    GOP_TOKEN,   /* a = token reference index: that token */
    GOP_NTOKEN,  /* a = token reference index: any text token but that one */
};

struct gel {
    uint8_t op; /* enum gop */
    uint32_t a, b;
};

#define GRAM_INF UINT32_MAX /* unbounded repetition maximum */

struct grep {
    uint32_t min, max; /* max GRAM_INF: no bound; min is 0 when the body is nullable */
};

struct grule {
    uint32_t alt0, n_alt;     /* alternatives' first elements: alts[alt0 .. alt0 + n_alt) */
    uint32_t name_off, name_len; /* in text; synthesized rules carry their owner's name */
    uint64_t def_off;         /* source offset of the definition (or of the group) */
    uint8_t nullable, synth;
};

enum gclass_flag {
    GC_EMPTY = 1,   /* matches no code point at all */
    GC_NA_ALL = 2,  /* matches every valid code point >= 0x80 */
    GC_NA_NONE = 4, /* matches no code point >= 0x80 */
};

struct gclass {
    uint32_t r0, nr;  /* ranges[r0 .. r0 + nr): sorted, disjoint, within [1, 0x10FFFF] */
    uint64_t asc[2];  /* code points 1..127 */
    uint8_t flags;    /* enum gclass_flag */
};

struct grange {
    uint32_t lo, hi; /* inclusive */
};

struct gtokref {
    int64_t id;        /* <[id]>, or -1 for <text> */
    uint32_t text_off; /* <text>: the whole "<...>" in text */
    uint32_t text_len;
    uint64_t src_off;
    uint32_t line, col; /* of src_off, for errors when the reference is resolved */
};

struct gram {
    struct gel *el;     /* [n_el] */
    uint32_t n_el;
    struct grule *rules; /* [n_rules] */
    uint32_t n_rules, root;
    uint32_t *alts;     /* [n_alts] element index of each alternative's first element */
    uint32_t n_alts;
    struct grep *reps;  /* [n_reps] */
    uint32_t n_reps;
    struct gclass *cls; /* [n_cls] */
    uint32_t n_cls;
    struct grange *rng; /* [n_rng] */
    uint32_t n_rng;
    struct gtokref *toks; /* [n_toks] */
    uint32_t n_toks;
    char *text;         /* rule names and token texts */
    uint32_t n_text;
};

/* Builder filled by the parser and turned into a struct gram by gram_compile. */
struct gb_rule {
    struct gel *el;
    uint32_t n, cap;
    uint32_t name_off, name_len;
    uint64_t def_off, ref_off; /* definition; first reference (for "undefined rule") */
    bool defined, synth;
};

struct gbuild {
    const char *src;
    size_t len;
    struct err_info *ei;
    struct gb_rule *rules;
    uint32_t n_rules, cap_rules;
    uint32_t *names; /* open-addressing table of rule id + 1 (named rules only) */
    uint32_t names_cap;
    size_t n_el_total;
    struct grep *reps;
    uint32_t n_reps, cap_reps;
    struct gclass *cls;
    uint32_t n_cls, cap_cls;
    struct grange *rng;
    uint32_t n_rng, cap_rng;
    struct gtokref *toks;
    uint32_t n_toks, cap_toks;
    char *text;
    uint32_t n_text, cap_text;
};

void gram_gb_free(struct gbuild *b);
/* 1-based line and column (in characters) of source offset off. */
void gram_linecol(const struct gbuild *b, size_t off, unsigned *line, unsigned *col);
/* Report an error at source offset off as "line L:C: ..." (first error wins); returns code. */
int gram_gb_error(const struct gbuild *b, int code, size_t off, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Analyses (undefined rules, root, nullability, left recursion) and the flat layout. Consumes
 * nothing: the caller frees the builder either way. */
int gram_compile(struct gbuild *b, struct gram **out);
/* Does class k (or a single code point) match cp? cp >= 1. */
bool gram_class_has(const struct gram *g, uint32_t k, uint32_t cp);
/* Does class k match any code point in [lo, hi]? */
bool gram_class_any(const struct gram *g, uint32_t k, uint32_t lo, uint32_t hi);

/* One trie node, all a mask walk reads of it in one cache line or two. */
struct gram_vnode {
    uint64_t sig;    /* byte groups (gram_byte_group) of every edge strictly below */
    uint32_t end;    /* preorder index just past the subtree */
    uint32_t ord_lo; /* first trie-order token at or below (the sentinel holds n_text) */
    uint16_t depth;  /* bytes from the root */
    uint16_t height; /* bytes from the node to its deepest descendant */
    uint8_t byte;    /* byte on the edge into the node */
    uint8_t flags;   /* GV_* */
};
enum { GV_VALID = 1, GV_SUBOK = 2 }; /* path from the root is valid UTF-8; so is every path below */

/* ---- matcher core ---- */

/* A position: a stack-set id and the pending UTF-8 character, packed in part as
 * (remaining continuation bytes << 28) | (first-continuation flag << 27) | value so far. */
struct gram_pos {
    uint32_t set;
    uint32_t part;
};
#define GP_NREM(p) ((p) >> 28)
#define GP_FIRST(p) (((p) >> 27) & 1u)
#define GP_VAL(p) ((p) & 0x1fffffu)

#define GS_UNKNOWN 0xffffffffu /* transition not computed yet */
#define GS_DEAD 0xfffffffeu    /* transition rejects */

enum gset_flag {
    GSF_CAN_END = 1,    /* contains the empty stack */
    GSF_TOKENS = 2,     /* some top is a token reference */
    GSF_CHARS = 4,      /* some top is a character element that matches something */
    GSF_NA_UNIFORM = 8, /* every character top matches all or none of the code points >= 0x80 */
    GSF_NA_ALL = 16,    /* some character top matches all code points >= 0x80 */
    GSF_UNI_KNOWN = 32, /* ugroups / usucc computed */
    GSF_CHAIN_KNOWN = 64, /* chain computed */
};

struct gset_info {
    uint32_t off, len;   /* tops in the core's set pool */
    uint32_t na_next;    /* GSF_NA_UNIFORM: the set after any character >= 0x80, or GS_* */
    uint8_t flags;       /* enum gset_flag */
    /* mask walk (gram_gc_chain): the byte groups whose every byte leads to one same set usucc, and
     * for how many such steps in a row the successors keep all those groups uniform */
    uint64_t ugroups;
    uint32_t usucc, chain;
};

struct gram_core {
    const struct gram *g;
    /* frames: [cap_nodes] each; node 0 is the bottom (empty stack) */
    uint32_t *npos, *ncnt, *npar, *nmark;
    uint32_t n_nodes, cap_nodes;
    uint32_t live_nodes; /* frames kept by the last compaction */
    uint32_t *nhash; /* [nhash_cap] node id, 0 = free slot */
    uint32_t nhash_cap;
    /* interned sets */
    uint32_t *spool; /* [cap_spool] tops of all sets, back to back */
    uint32_t n_spool, cap_spool;
    struct gset_info *sets; /* [cap_sets] */
    uint32_t *asc;          /* [cap_sets][128] ASCII transitions (GS_* or set id) */
    uint32_t n_sets, cap_sets;
    uint32_t *shash; /* [shash_cap] set id + 1, 0 = free */
    uint32_t shash_cap;
    /* transitions on other code points and on tokens: key -> set id */
    uint64_t *tkey;  /* [tcap] key + 1, 0 = free */
    uint32_t *tval;
    uint32_t tcap, tn;
    /* scratch for expansion */
    uint32_t *work, n_work, cap_work;
    uint32_t *out, n_out, cap_out;
    uint32_t pass;
    /* positions */
    struct gram_pos start, cur;
    bool ended; /* an end-of-generation token was accepted */
    /* token level (with a vocabulary) */
    int32_t *tokid;      /* [g->n_toks] resolved token references */
    uint64_t *obits;     /* [n_text / 64 + 1] accepted tokens in trie order */
    struct gram_pos *dstack; /* [max_depth + 1] mask walk: position per trie depth */
    uint64_t *memo_bits; /* [memo_n][n_words] recent masks */
    struct gram_pos *memo_pos;
    uint32_t *memo_age;
    uint32_t memo_n, memo_clock;
};

/* ---- gram_stack.c: frames, expansion, sets ---- */

/* Core setup: nodes/sets/caches allocated with their first capacity; start position computed. */
int gram_gc_init(struct gram_core *c, const struct gram *g);
void gram_gc_free(struct gram_core *c);
/* Drop sets and caches (and dead frames) once they pass their soft bounds, keeping the current
 * and start positions and *extra (a position in progress; may be NULL). Only between steps. */
void gram_gc_maybe_compact(struct gram_core *c, struct gram_pos *extra);
/* One transition's expansion: begin a pass (clears the output), continue the stack whose top t
 * matched (any number of times), then intern the output as a set (GS_DEAD when empty). */
void gram_gc_begin_pass(struct gram_core *c);
int gram_gc_advance_top(struct gram_core *c, uint32_t t);
int gram_gc_push_out(struct gram_core *c, uint32_t t);
int gram_gc_finish_set(struct gram_core *c, uint32_t *res);
/* Intern the sorted, distinct tops t[0..n) (ERR_LIMIT past GRAM_MAX_STACKS). */
int gram_gc_set_intern(struct gram_core *c, const uint32_t *t, uint32_t n, uint32_t *id);

static inline uint32_t gc_mix3(uint32_t a, uint32_t b, uint32_t c)
{
    uint64_t h = (uint64_t)a * 0x9e3779b97f4a7c15ull ^ (uint64_t)b * 0xc2b2ae3d27d4eb4full ^
                 (uint64_t)c * 0x165667b19e3779f9ull;
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    return (uint32_t)h;
}

/* ---- gram_trans.c: transitions ---- */

/* One byte from *p: 0 (p advanced), ERR_REJECTED (p unchanged) or ERR_LIMIT. Fills the caches;
 * callers step through gc_step (gram_step_int.h), which reads them first. */
int gram_gc_step_slow(struct gram_core *c, struct gram_pos *p, unsigned b);
/* The set after the token reference tops that match token `tok` (GS_DEAD if none); negated
 * references match only when `text` (tok is a text token). */
int gram_gc_token_step(struct gram_core *c, uint32_t set, int32_t tok, bool text, const int32_t *tokid,
                  uint32_t *res);
/* Union of two sets (either may be GS_DEAD). */
int gram_gc_union(struct gram_core *c, uint32_t a, uint32_t b, uint32_t *res);
/* Set made of the empty stack only (the grammar has ended). */
int gram_gc_empty_set(struct gram_core *c, uint32_t *res);
/* For the mask walk: the byte groups *groups of set s whose every byte (every character for the
 * non-ASCII group) leads to one same successor set, and *len = how many such steps in a row
 * (capped at cap; UINT32_MAX when the chain comes back to a set on it, e.g. a loop) keep all
 * those groups leading on uniformly. A trie subtree using only those groups and no deeper than
 * *len accepts every token in it: inside a JSON string the chain is a loop, inside a counted
 * class like [^"]{0,200} it runs until the count nears its maximum. */
int gram_gc_chain(struct gram_core *c, uint32_t s, uint32_t cap, uint64_t *groups, uint32_t *len);
/* Byte group (0..47) of a byte value: the mask walk skips a trie subtree whose bytes all lie in
 * groups that lead a set back to itself. Groups: NUL, other C0 controls, \t, \n, \r, space, each
 * ASCII punctuation mark alone, 0, 1-9, A-F, G-Z, a-f, g-z, DEL, and every byte >= 0x80. */
unsigned gram_byte_group(unsigned b);
#define GRAM_GROUP_NONASCII 47u

/* ---- gram_match.c: bytes ---- */

/* Bytes [0, n) from *p (all or nothing). */
int gram_gc_walk(struct gram_core *c, struct gram_pos *p, const uint8_t *s, size_t n);

/* May the grammar end at p? (a whole character, and the set holds the empty stack) */
static inline bool gp_can_end(const struct gram_core *c, struct gram_pos p)
{
    return p.part == 0 && (c->sets[p.set].flags & GSF_CAN_END);
}

#endif
