/* gram: GBNF grammars (llama.cpp's syntax) and a matcher that constrains generated text to them.
 *
 * Three layers, each usable alone:
 *  1. gram_parse: GBNF text -> an immutable compiled grammar (struct gram). Pure function of the
 *     bytes; errors say "line L:C: why" with the byte offset in err_info.offset. Shareable across
 *     threads once built.
 *  2. struct gram_matcher: the parse state over BYTES (a pushdown of stacks over code points, as
 *     llama.cpp's engine, plus the pending bytes of an unfinished UTF-8 character), so a token may
 *     end inside a character. Only valid UTF-8 is ever accepted (no overlong forms, surrogates or
 *     code points past U+10FFFF) and code point 0 never matches (as in llama.cpp, where it ends the
 *     string). A rejected feed leaves the state unchanged.
 *  3. Token level over a vocabulary view (struct gram_vocab, built once per vocabulary and shared
 *     read-only by every matcher of that model): check one token, compute the full allowed mask
 *     (a walk of the vocabulary's byte trie that prunes at the first rejected byte), accept a
 *     token, and find runs of forced tokens.
 *
 * Token semantics (what a constrained generation may emit):
 *  - a text token (not control, not unused, not end-of-generation, non-empty bytes) is allowed
 *    when its bytes continue the grammar;
 *  - an end-of-generation token is allowed only where the grammar may end (gram_matcher_can_end)
 *    or where the grammar names that token (<[id]> / <text>); accepting it ends the grammar;
 *  - a control token never matches grammar text; it is allowed only where the grammar names it
 *    positively (<[id]> or <|text|>), never through a negated reference !<...>;
 *  - an unused / unknown token is never allowed.
 *
 * Memory: the matcher keeps interned parse stacks and cached transitions that grow to a bounded
 * size and are compacted (everything but the current state dropped) between operations; no
 * operation allocates once the caches are warm. A grammar whose state explodes (more than
 * GRAM_MAX_STACKS parse stacks, or caches past their hard bound within one operation) gives
 * ERR_LIMIT, never a hang.
 *
 * Differences from llama.cpp, all on inputs llama.cpp handles by accident: invalid UTF-8 is never
 * accepted; a rule defined twice, an empty class [], a reversed range [z-a], {m,n} with n < m,
 * code points past U+10FFFF, and left recursion through rules that can match the empty string are
 * errors (llama.cpp keeps the last definition, reads [] as empty, hangs on {3,1} and on some left
 * recursion); repetition counts are exact up to GRAM_MAX_REPEAT (llama.cpp silently makes a
 * maximum above 2000 unbounded); control tokens never match text. */
#ifndef LMPIPE_GRAM_GRAM_H
#define LMPIPE_GRAM_GRAM_H

#include "../util/err.h"
#include "../util/vocab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on untrusted grammars (each is a clear ERR_LIMIT with line:column). */
#define GRAM_MAX_SRC (4u << 20)     /* grammar text bytes */
#define GRAM_MAX_RULES 65536u       /* named + synthesized (groups, repetition bodies) */
#define GRAM_MAX_ELEMS (1u << 21)   /* compiled elements */
#define GRAM_MAX_DEPTH 256u         /* nesting of ( ) groups */
#define GRAM_MAX_REPEAT 65535u      /* m and n in {m,n} */
#define GRAM_MAX_NAME 256u          /* bytes in a rule name or a <token> text */
#define GRAM_MAX_STACKS 4096u       /* parse stacks alive at one position (ambiguity bound) */

struct gram; /* compiled grammar: immutable */

/* Parse GBNF src[0..len) (need not be NUL-terminated) with `root` as the start rule. On error
 * *out is NULL and ei (optional) holds the code (ERR_SYNTAX, ERR_LIMIT, ERR_NOT_FOUND for an
 * undefined rule or a missing root, ERR_DUPLICATE), the byte offset and "line L:C: reason". */
int gram_parse(const char *src, size_t len, struct gram **out, struct err_info *ei);
void gram_free(struct gram *g); /* NULL-safe */

uint32_t gram_n_rules(const struct gram *g); /* named and synthesized */

/* ---- vocabulary: built once per model, read-only afterwards, shared by all its matchers ---- */

/* The byte trie of the text tokens in preorder (node 0 is the root, which spells nothing), the
 * ids in trie order and per-node summaries the mask walk uses to skip whole subtrees. Treat the
 * fields as private to gram; they are here so the struct can live inside the caller's model. */
struct gram_vnode; /* gram_int.h */
struct gram_vocab {
    const struct vocab_view *v; /* borrowed: must outlive this and every matcher using it */
    uint32_t n_vocab, n_words;  /* n_words = (n_vocab + 63) / 64, the mask length */
    uint32_t n_nodes;           /* trie nodes including the root */
    uint32_t n_text;            /* tokens in the trie */
    uint32_t max_depth;         /* longest text token in bytes */
    struct gram_vnode *node;    /* [n_nodes + 1] preorder, plus a sentinel */
    int32_t *order;             /* [n_text] token ids in trie order */
    uint64_t *text_bits;        /* [n_words] every text token */
    int32_t *eog;               /* [n_eog] end-of-generation ids */
    uint32_t n_eog;
};

/* Build from a vocabulary view (tok_view). ERR_LIMIT for a token longer than 65535 bytes. */
int gram_vocab_init(struct gram_vocab *gv, const struct vocab_view *v, struct err_info *ei);
void gram_vocab_free(struct gram_vocab *gv); /* safe on zeroed / partial */

/* ---- matcher ---- */

struct gram_core; /* private: stack arena, interned states, transition caches (gram_int.h) */

struct gram_matcher {
    const struct gram *g;        /* borrowed */
    const struct gram_vocab *gv; /* borrowed, may be NULL (bytes only) */
    struct gram_core *c;         /* owned */
};

/* Start at the beginning of g. gv may be NULL (byte level only); with gv, token references in
 * the grammar (<[id]>, <text>) are resolved against its vocabulary: an id past the vocabulary
 * or a text no token spells is ERR_NOT_FOUND with the reference's line:column. */
int gram_matcher_init(struct gram_matcher *m, const struct gram *g, const struct gram_vocab *gv,
                      struct err_info *ei);
void gram_matcher_free(struct gram_matcher *m); /* safe on zeroed / partial */
void gram_matcher_reset(struct gram_matcher *m); /* back to the start, caches kept */

/* Advance over bytes: 0, or ERR_REJECTED (some byte cannot continue the grammar) / ERR_LIMIT
 * (state explosion), the state then unchanged. *n_ok (optional) gets the number of bytes
 * accepted before the failing one (n on success). */
int gram_matcher_feed(struct gram_matcher *m, const void *bytes, size_t n, size_t *n_ok);
/* As feed, but never changes the state. */
int gram_matcher_try(struct gram_matcher *m, const void *bytes, size_t n);
/* The grammar may end here (no pending partial character). */
bool gram_matcher_can_end(const struct gram_matcher *m);
/* Nothing more can follow: no byte and no named token can be accepted (the generation must end;
 * also true after an end-of-generation token was accepted). */
bool gram_matcher_complete(const struct gram_matcher *m);
/* Bytes that may come next: bit b of set[b / 64]. Returns how many. */
int gram_matcher_next_bytes(struct gram_matcher *m, uint64_t set[4]);

/* Does the whole text match g (one shot, a temporary matcher)? 0 yes; else ERR_REJECTED with
 * ei->offset = the byte that cannot continue (len when the text ends too early) and a message
 * "text line L:C: ...; expected <bytes that could come there>", or ERR_LIMIT. */
int gram_check(const struct gram *g, const void *text, size_t len, struct err_info *ei);

/* ---- token level (the matcher must have been made with a gram_vocab) ---- */

/* Is token `tok` allowed here? 0 yes, ERR_REJECTED no, ERR_LIMIT / ERR_STATE on failure. */
int gram_tok_check(struct gram_matcher *m, int32_t tok);
/* Every allowed token: bit i of bits[i / 64], bits[gv->n_words]. ERR_DEAD_END when no token at
 * all is allowed (bits then all zero). */
int gram_tok_mask(struct gram_matcher *m, uint64_t *bits);
/* Advance by one token: 0, or ERR_REJECTED with the state unchanged. Accepting an
 * end-of-generation token ends the grammar (gram_matcher_complete is then true). */
int gram_tok_accept(struct gram_matcher *m, int32_t tok);
/* The run of forced tokens from here: while exactly one token id is allowed, append it and
 * advance a scratch copy of the state (the matcher itself does not move); stops after an
 * end-of-generation token or at cap. *n gets the run length (0: the next token is a choice). */
int gram_tok_forced(struct gram_matcher *m, int32_t *toks, size_t cap, size_t *n);

#endif
