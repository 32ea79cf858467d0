/* tok_pre: the pre-tokenizers of byte-level BPE vocabularies, without a regex engine.
 *
 * What: tokenizer.ggml.pre names a list of regular expressions (in llama.cpp) that cut the text
 * into words before BPE merges run inside each word. Each list is applied in turn: every
 * expression re-splits every piece the previous one produced, and the text between matches
 * stays a piece of its own. Here each expression is a "pass" coded by hand over code points and
 * their class flags (unicode_tab.c, generated from the UCD by tools/gen_unicode.py).
 *
 * Why by hand: the expressions are few and fixed, a backtracking regex engine is large and slow,
 * and llama.cpp itself replaces the two most common ones (GPT-2 and Llama 3) by hand-written
 * scanners whose exact behaviour we must reproduce. The other expressions go through
 * std::regex there, so their passes below follow ECMAScript semantics: at each position the
 * first alternative that matches wins, quantifiers are greedy and backtrack. How llama.cpp
 * feeds std::regex matters too and is reproduced:
 *  - expressions using \p{..} see a "collapsed" text where a non-ASCII code point stands for
 *    its class and non-ASCII White_Space becomes \v: so \p{L} is "letter", \s is White_Space;
 *  - other expressions see the code points, with non-ASCII White_Space replaced by \v, so such
 *    a code point never matches an explicit character range (U+3000 is not in "　-。").
 * The Llama 3 scanner with one digit per number is exactly Qwen2's expression (every code point
 * matches some alternative, so the scanner's one-character fallback never differs from the
 * regex's unmatched gap).
 *
 * Invariants: passes cut inside [s, e) only, never produce empty pieces, and read no code
 * point outside the piece (a piece's end looks like the end of the text); every pass is linear
 * in the piece length (no rescans), so splitting is O(n). */
#include "tok_int.h"

#include "../util/util.h"

#include <string.h>

uint8_t tok_uni_class(uint32_t cp)
{
    if (cp < 256) return tok_uni_latin1[cp];
    uint32_t lo = 0, hi = tok_uni_n; /* last start <= cp: tok_uni_start[0] = 0x100 <= cp */
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (tok_uni_start[mid] <= cp) lo = mid;
        else hi = mid;
    }
    return tok_uni_flags[lo];
}

/* ---- UTF-8 ---- */

size_t tok_utf8_decode(const char *s, size_t len, bool escape_space, uint32_t *cp)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        i += util_utf8_decode(s + i, len - i, &c);
        cp[n++] = escape_space && c == ' ' ? 0x2581 : c;
    }
    return n;
}

/* ---- names ---- */

static const struct {
    const char *name;
    enum tok_pre pre;
    bool ignore_merges, add_bos;
} pre_names[] = {
    {"default", TOK_PRE_DEFAULT, false, false},
    {"llama3", TOK_PRE_LLAMA3, true, true},
    {"llama-v3", TOK_PRE_LLAMA3, true, true},
    {"llama-bpe", TOK_PRE_LLAMA3, true, true},
    {"falcon3", TOK_PRE_LLAMA3, true, true},
    {"falcon-h1", TOK_PRE_LLAMA3, true, true},
    {"pixtral", TOK_PRE_LLAMA3, true, true},
    {"midm-2.0", TOK_PRE_LLAMA3, true, true},
    {"lfm2", TOK_PRE_LLAMA3, true, true},
    {"dbrx", TOK_PRE_LLAMA3, false, false},
    {"smaug-bpe", TOK_PRE_LLAMA3, false, false},
    {"deepseek-llm", TOK_PRE_DEEPSEEK_LLM, false, false},
    {"deepseek-coder", TOK_PRE_DEEPSEEK_CODER, false, false},
    {"falcon", TOK_PRE_FALCON, false, false},
    {"mpt", TOK_PRE_GPT2, false, false},
    {"gpt-2", TOK_PRE_GPT2, false, false},
    {"phi-2", TOK_PRE_GPT2, false, false},
    {"jina-es", TOK_PRE_GPT2, false, false},
    {"jina-de", TOK_PRE_GPT2, false, false},
    {"jina-v2-es", TOK_PRE_GPT2, false, false},
    {"jina-v2-de", TOK_PRE_GPT2, false, false},
    {"gigachat", TOK_PRE_GPT2, false, false},
    {"a.x-4.0", TOK_PRE_GPT2, false, false},
    {"mellum", TOK_PRE_GPT2, false, false},
    {"olmo", TOK_PRE_GPT2, false, false},
    {"jais", TOK_PRE_GPT2, false, false},
    {"trillion", TOK_PRE_GPT2, false, false},
    {"granite-docling", TOK_PRE_GPT2, false, false},
    {"exaone4", TOK_PRE_GPT2, false, false},
    {"starcoder", TOK_PRE_STARCODER, false, false},
    {"refact", TOK_PRE_STARCODER, false, false},
    {"command-r", TOK_PRE_STARCODER, false, false},
    {"smollm", TOK_PRE_STARCODER, false, false},
    {"codeshell", TOK_PRE_STARCODER, false, false},
    {"exaone", TOK_PRE_STARCODER, false, false},
    {"minerva-7b", TOK_PRE_STARCODER, false, false},
    {"qwen2", TOK_PRE_QWEN2, false, false},
    {"deepseek-r1-qwen", TOK_PRE_QWEN2, false, false},
    {"megrez", TOK_PRE_QWEN2, false, false},
    {"stablelm2", TOK_PRE_QWEN2, false, false},
    {"hunyuan", TOK_PRE_QWEN2, false, false},
    {"gemma4", TOK_PRE_GEMMA4, false, false},
};

bool tok_pre_by_name(const char *name, size_t len, enum tok_pre *pre, bool *ignore_merges,
                     bool *add_bos)
{
    for (size_t i = 0; i < sizeof pre_names / sizeof pre_names[0]; i++) {
        if (strlen(pre_names[i].name) != len || memcmp(pre_names[i].name, name, len) != 0) continue;
        *pre = pre_names[i].pre;
        *ignore_merges = pre_names[i].ignore_merges;
        *add_bos = pre_names[i].add_bos;
        return true;
    }
    return false;
}

/* ---- passes ---- */

enum pass {
    P_GPT2,        /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)  (scanner) */
    P_LLAMA3,      /* Llama 3 expression, \p{N}{1,3}  (scanner) */
    P_QWEN2,       /* the same with \p{N} */
    P_NL,          /* [\r\n] */
    P_DS_LETTERS,  /* \s?[<DeepSeek's cased-letter ranges>]+ */
    P_DS_PUNCT,    /* \s?[!-/:-~！-／：-～‘-‟　-。]+ */
    P_TRAIL_WS,    /* \s+$ */
    P_CJK,         /* [一-龥ࠀ-一가-퟿]+ */
    P_NUMS,        /* \p{N}+ */
    P_NUM,         /* \p{N} */
    P_LETTERS,     /* \s?\p{L}+ */
    P_PUNCTS,      /* \s?\p{P}+ */
    P_SYM_FALCON,  /* [\p{P}\$\+<=>\^~\|`]+ */
    P_SYM_DEFAULT, /* [\p{P}\$\+<=>\^~\|]+ */
    P_DIGIT3,      /* [0-9][0-9][0-9] */
    P_LINES,       /* [^\n]+|[\n]+ */
    P_END,
};

static const enum pass pipeline[][7] = {
    [TOK_PRE_DEFAULT] = {P_SYM_DEFAULT, P_GPT2, P_NUMS, P_DIGIT3, P_END},
    [TOK_PRE_GPT2] = {P_GPT2, P_END},
    [TOK_PRE_LLAMA3] = {P_LLAMA3, P_END},
    [TOK_PRE_QWEN2] = {P_QWEN2, P_END},
    [TOK_PRE_DEEPSEEK_LLM] = {P_NL, P_DS_LETTERS, P_DS_PUNCT, P_TRAIL_WS, P_CJK, P_NUMS, P_END},
    [TOK_PRE_DEEPSEEK_CODER] = {P_NL, P_LETTERS, P_PUNCTS, P_CJK, P_NUM, P_END},
    [TOK_PRE_FALCON] = {P_SYM_FALCON, P_GPT2, P_DIGIT3, P_END},
    [TOK_PRE_STARCODER] = {P_NUM, P_GPT2, P_END},
    [TOK_PRE_GEMMA4] = {P_LINES, P_END},
};

/* DeepSeek LLM's letter class, as code point ranges (it is the cased letters Lu/Ll/Lt of an
 * older Unicode, listed explicitly in the tokenizer's expression). */
static const uint32_t ds_letters[][2] = {
    {0x41, 0x5a}, {0x61, 0x7a}, {0xb5, 0xb5}, {0xc0, 0xd6}, {0xd8, 0xf6}, {0xf8, 0x1ba},
    {0x1bc, 0x1bf}, {0x1c4, 0x293}, {0x295, 0x2af}, {0x370, 0x373}, {0x376, 0x377},
    {0x37b, 0x37d}, {0x37f, 0x37f}, {0x386, 0x386}, {0x388, 0x38a}, {0x38c, 0x38c},
    {0x38e, 0x3a1}, {0x3a3, 0x3f5}, {0x3f7, 0x481}, {0x48a, 0x52f}, {0x531, 0x556},
    {0x10a0, 0x10c5}, {0x13a0, 0x13f5}, {0x13f8, 0x13fd}, {0x1c90, 0x1cba}, {0x1cbd, 0x1cbf},
    {0x1d00, 0x1d2b}, {0x1d6b, 0x1d77}, {0x1d79, 0x1d9a}, {0x1e00, 0x1f15}, {0x1f18, 0x1f1d},
    {0x1f20, 0x1f45}, {0x1f48, 0x1f4d}, {0x1f50, 0x1f57}, {0x1f59, 0x1f59}, {0x1f5b, 0x1f5b},
    {0x1f5d, 0x1f5d}, {0x1f5f, 0x1f7d}, {0x1f80, 0x1fb4}, {0x1fb6, 0x1fbc}, {0x1fbe, 0x1fbe},
    {0x1fc2, 0x1fc4}, {0x1fc6, 0x1fcc}, {0x1fd0, 0x1fd3}, {0x1fd6, 0x1fdb}, {0x1fe0, 0x1fec},
    {0x1ff2, 0x1ff4}, {0x1ff6, 0x1ffc}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210a, 0x2113},
    {0x2115, 0x2115}, {0x2119, 0x211d}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
    {0x212a, 0x212d}, {0x212f, 0x2134}, {0x2139, 0x2139}, {0x213c, 0x213f}, {0x2145, 0x2149},
    {0x214e, 0x214e}, {0x2183, 0x2184}, {0x2c00, 0x2c7b}, {0x2c7e, 0x2ce4}, {0x2ceb, 0x2cee},
    {0x2cf2, 0x2cf3}, {0xa640, 0xa66d}, {0xa680, 0xa69b}, {0xa722, 0xa76f}, {0xa771, 0xa787},
    {0xa78b, 0xa78e}, {0xab70, 0xabbf}, {0xfb00, 0xfb06}, {0xfb13, 0xfb17}, {0xff21, 0xff3a},
    {0xff41, 0xff5a}, {0x10400, 0x1044f}, {0x104b0, 0x104d3}, {0x104d8, 0x104fb},
    {0x10c80, 0x10cb2}, {0x10cc0, 0x10cf2}, {0x118a0, 0x118df}, {0x1e900, 0x1e943},
};

static bool in_ranges(uint32_t c, const uint32_t (*r)[2], size_t n)
{
    size_t lo = 0, hi = n; /* ranges ascending and disjoint: binary search */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid][0]) hi = mid;
        else if (c > r[mid][1]) lo = mid + 1;
        else return true;
    }
    return false;
}

struct piece {
    const uint32_t *cp;
    const uint8_t *fl;
    uint32_t s, e;   /* the piece being split */
    uint32_t *out;   /* ends written so far */
    uint32_t n_out;
    uint32_t last;   /* end of the last word cut */
};

/* Class flags of position q with an "inside the piece" bit: the scanners treat the end of the
 * piece like llama.cpp's empty flags (no class at all, not even "undefined"). */
#define IN 0x100u
static unsigned at(const struct piece *p, uint32_t q) { return q < p->e ? p->fl[q] | IN : 0; }

static void cut(struct piece *p, uint32_t end)
{
    if (end > p->last) {
        p->out[p->n_out++] = end;
        p->last = end;
    }
}

static bool is_ws(const struct piece *p, uint32_t q) { return at(p, q) & TOK_U_WS; }

/* Explicit character ranges in a non-\p expression: non-ASCII White_Space was replaced by \v
 * before matching, so it is in no range. */
static bool explicit_ok(const struct piece *p, uint32_t q) { return p->cp[q] < 0x80 || !(p->fl[q] & TOK_U_WS); }

static bool ascii_in(uint32_t c, const char *set) { return c && c < 0x80 && strchr(set, (int)c); }

static bool cls(const struct piece *p, enum pass k, uint32_t q)
{
    if (q >= p->e) return false;
    uint32_t c = p->cp[q];
    unsigned f = p->fl[q];
    switch (k) {
    case P_DS_LETTERS:
        return explicit_ok(p, q) && in_ranges(c, ds_letters, sizeof ds_letters / sizeof ds_letters[0]);
    case P_DS_PUNCT:
        return explicit_ok(p, q) && ((c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x7e) ||
                                     (c >= 0xff01 && c <= 0xff0f) || (c >= 0xff1a && c <= 0xff5e) ||
                                     (c >= 0x2018 && c <= 0x201f) || (c >= 0x3000 && c <= 0x3002));
    case P_CJK:
        return explicit_ok(p, q) && ((c >= 0x800 && c <= 0x9fa5) || (c >= 0xac00 && c <= 0xd7ff));
    case P_NUMS:
    case P_NUM:
        return f & TOK_U_N;
    case P_LETTERS:
        return f & TOK_U_L;
    case P_PUNCTS:
        return f & TOK_U_P;
    case P_SYM_FALCON:
        return (f & TOK_U_P) || ascii_in(c, "$+<=>^~|`");
    case P_SYM_DEFAULT:
        return (f & TOK_U_P) || ascii_in(c, "$+<=>^~|");
    case P_DIGIT3:
        return c >= '0' && c <= '9';
    default:
        return false;
    }
}

/* Length of the match of a regex-style pass at q (0: none). None of them matches empty. */
static uint32_t match(const struct piece *p, enum pass k, uint32_t q)
{
    uint32_t r = q;
    switch (k) {
    case P_NL:
        return p->cp[q] == '\r' || p->cp[q] == '\n';
    case P_NUM:
        return cls(p, k, q);
    case P_DIGIT3:
        return cls(p, k, q) && cls(p, k, q + 1) && cls(p, k, q + 2) ? 3 : 0;
    case P_DS_LETTERS:
    case P_DS_PUNCT:
    case P_LETTERS:
    case P_PUNCTS:
        /* \s?X+: the optional space is taken only if an X follows (backtracking gives it up
         * otherwise, and a space is never an X). */
        if (is_ws(p, r) && cls(p, k, r + 1)) r++;
        if (!cls(p, k, r)) return 0;
        /* fall through */
    case P_CJK:
    case P_NUMS:
    case P_SYM_FALCON:
    case P_SYM_DEFAULT:
        while (cls(p, k, r)) r++;
        return r - q;
    case P_LINES: {
        bool nl = p->cp[q] == '\n';
        while (r < p->e && (p->cp[r] == '\n') == nl) r++;
        return r - q;
    }
    default:
        return 0;
    }
}

/* regex_iterator over the piece: matches and the gaps between them become pieces. */
static void split_regex(struct piece *p, enum pass k)
{
    for (uint32_t q = p->s; q < p->e;) {
        uint32_t l = match(p, k, q);
        if (!l) {
            q++;
            continue;
        }
        cut(p, q); /* the gap before the match, if any */
        q += l;
        cut(p, q);
    }
    cut(p, p->e);
}

/* \s+$ can match only the piece's trailing run of White_Space. */
static void split_trailing_ws(struct piece *p)
{
    uint32_t t = p->e;
    while (t > p->s && (p->fl[t - 1] & TOK_U_WS)) t--;
    cut(p, t);
    cut(p, p->e);
}

/* llama.cpp's GPT-2 scanner (unicode_regex_split_custom_gpt2), rule for rule. */
static void split_gpt2(struct piece *p)
{
    const uint32_t *cp = p->cp;
    for (uint32_t q = p->s; q < p->e;) {
        uint32_t c = cp[q];
        if (c == '\'' && q + 1 < p->e) { /* 's 't 'm 'd 're 've 'll, lower case only */
            uint32_t d = cp[q + 1];
            if (d == 's' || d == 't' || d == 'm' || d == 'd') {
                cut(p, q += 2);
                continue;
            }
            if (q + 2 < p->e) {
                uint32_t f = cp[q + 2];
                if ((d == 'r' && f == 'e') || (d == 'v' && f == 'e') || (d == 'l' && f == 'l')) {
                    cut(p, q += 3);
                    continue;
                }
            }
        }
        unsigned f2 = at(p, c == ' ' ? q + 1 : q); /* " ?" : the class after an optional space */
        unsigned want = f2 & TOK_U_L ? TOK_U_L : f2 & TOK_U_N ? TOK_U_N : 0;
        if (want) { /*  ?\p{L}+ and  ?\p{N}+ */
            q += c == ' ';
            while (at(p, q) & want) q++;
            cut(p, q);
            continue;
        }
        if ((f2 & IN) && !(f2 & (TOK_U_WS | TOK_U_L | TOK_U_N))) { /*  ?[^\s\p{L}\p{N}]+ */
            q += c == ' ';
            while ((at(p, q) & IN) && !(at(p, q) & (TOK_U_WS | TOK_U_L | TOK_U_N))) q++;
            cut(p, q);
            continue;
        }
        uint32_t nws = 0;
        while (is_ws(p, q + nws)) nws++;
        if (nws > 1 && q + nws < p->e) { /* \s+(?!\S): leave the last space to the next word */
            cut(p, q += nws - 1);
            continue;
        }
        cut(p, q += nws ? nws : 1); /* \s+, or one character nothing matched */
    }
}

/* llama.cpp's Llama 3 scanner (unicode_regex_split_custom_llama3); max_digits 1 gives
 * Qwen2's expression. */
static void split_llama3(struct piece *p, uint32_t max_digits)
{
    const uint32_t *cp = p->cp;
    for (uint32_t q = p->s; q < p->e;) {
        uint32_t c = cp[q];
        unsigned f = at(p, q);
        if (c == '\'' && q + 1 < p->e) { /* (?i:'s|'t|'re|'ve|'m|'ll|'d): ASCII folding suffices
                                            (tools/gen_unicode.py checks it) */
            uint32_t d = cp[q + 1] | (cp[q + 1] >= 'A' && cp[q + 1] <= 'Z' ? 0x20 : 0);
            if (d == 's' || d == 't' || d == 'm' || d == 'd') {
                cut(p, q += 2);
                continue;
            }
            if (q + 2 < p->e) {
                uint32_t e = cp[q + 2] | (cp[q + 2] >= 'A' && cp[q + 2] <= 'Z' ? 0x20 : 0);
                if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e') || (d == 'l' && e == 'l')) {
                    cut(p, q += 3);
                    continue;
                }
            }
        }
        /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        if (!(c == '\r' || c == '\n' || (f & TOK_U_N)) && ((f & TOK_U_L) || (at(p, q + 1) & TOK_U_L))) {
            q++;
            while (at(p, q) & TOK_U_L) q++;
            cut(p, q);
            continue;
        }
        if (f & TOK_U_N) { /* \p{N}{1,max} */
            uint32_t from = q;
            while (at(p, q) & TOK_U_N) {
                if (++q - from >= max_digits) {
                    cut(p, q);
                    from = q;
                }
            }
            cut(p, q);
            continue;
        }
        unsigned f2 = at(p, c == ' ' ? q + 1 : q);
        if (!(f2 & (TOK_U_WS | TOK_U_L | TOK_U_N))) { /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
            q += c == ' ';
            while ((at(p, q) & IN) && !(at(p, q) & (TOK_U_WS | TOK_U_L | TOK_U_N))) q++;
            while (q < p->e && (cp[q] == '\r' || cp[q] == '\n')) q++;
            cut(p, q);
            continue;
        }
        uint32_t nws = 0, nl_end = 0;
        for (; is_ws(p, q + nws); nws++)
            if (cp[q + nws] == '\r' || cp[q + nws] == '\n') nl_end = q + nws + 1;
        if (nl_end) { /* \s*[\r\n]+ */
            cut(p, q = nl_end);
            continue;
        }
        if (nws > 1 && q + nws < p->e) { /* \s+(?!\S) */
            cut(p, q += nws - 1);
            continue;
        }
        cut(p, q += nws ? nws : 1); /* \s+, or one unmatched character */
    }
}

uint32_t tok_pre_split(enum tok_pre pre, const uint32_t *cp, const uint8_t *fl, uint32_t n,
                       uint32_t *seg, uint32_t *tmp)
{
    if (n == 0) return 0;
    uint32_t *cur = seg, *nxt = tmp, n_cur = 1;
    cur[0] = n;
    for (const enum pass *k = pipeline[pre]; *k != P_END; k++) {
        struct piece p = {.cp = cp, .fl = fl, .out = nxt};
        for (uint32_t i = 0; i < n_cur; i++) {
            p.s = p.last = i ? cur[i - 1] : 0;
            p.e = cur[i];
            switch (*k) {
            case P_GPT2: split_gpt2(&p); break;
            case P_LLAMA3: split_llama3(&p, 3); break;
            case P_QWEN2: split_llama3(&p, 1); break;
            case P_TRAIL_WS: split_trailing_ws(&p); break;
            default: split_regex(&p, *k); break;
            }
        }
        n_cur = p.n_out;
        uint32_t *t = cur;
        cur = nxt;
        nxt = t;
    }
    if (cur != seg) memcpy(seg, cur, n_cur * sizeof *seg);
    return n_cur;
}
