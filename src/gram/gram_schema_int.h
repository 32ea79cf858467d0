/* gram_schema_int: what the files of the JSON Schema converter share. They form layers, each
 * using only the ones listed before it:
 *   gram_schema_emit.c  text buffers, GBNF literals and repeats, the first error, the rule list;
 *   gram_schema_cset.c  sets of code points, UTF-8 as code points;
 *   gram_schema_rx.c    ECMA-262 patterns as deterministic automata over code points;
 *   gram_schema_prim.c  the shared building blocks (whitespace, any string / number / value...)
 *                       and the rule for one JSON string character from a set, in every spelling;
 *   gram_schema_num.c   exact decimal ranges;
 *   gram_schema_str.c   strings under patterns, formats and lengths (product automata);
 *   gram_schema.c       walks the schema and builds objects, arrays and unions.
 * Module-private: nothing outside src/gram includes this.
 *
 * The converter writes a list of GBNF rules. A rule is created with a unique name before its
 * body exists (so recursive schemas can refer to it) and gets its body when the body is done;
 * the output is the rules in creation order. Every allocation failure or limit is recorded once
 * in the context (first error wins, as err_set) and turns later work into no-ops, so emitters
 * can write straight-line code and check `c->rc` at the end. */
#ifndef LMPIPE_GRAM_SCHEMA_INT_H
#define LMPIPE_GRAM_SCHEMA_INT_H

#include "gram_schema.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- growing text buffer (gram_schema_emit.c) ---- */

struct gram_js_buf {
    char *p;    /* NUL-terminated when non-NULL */
    size_t n;   /* bytes used, without the NUL */
    size_t cap;
    int oom;    /* an allocation failed: the content is incomplete */
};

void gram_js_put(struct gram_js_buf *b, const char *s, size_t n);
void gram_js_puts(struct gram_js_buf *b, const char *s);
void gram_js_printf(struct gram_js_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void gram_js_buf_free(struct gram_js_buf *b);

/* Room for `need` elements of `elem` bytes in the array *pp (a T ** passed as void *) whose
 * capacity is *cap, doubling from 8. 0, or -1 when out of memory (the array is unchanged). */
int gram_js_grow(void *pp, size_t *cap, size_t need, size_t elem);

/* GBNF literal for the bytes s[0..n) (quotes included): escapes ", \ and control bytes. */
void gram_js_put_lit(struct gram_js_buf *b, const char *s, size_t n);
/* what{a,b} in the shortest GBNF form (b == UINT64_MAX: unbounded; a == b == 0: nothing). */
void gram_js_put_repeat(struct gram_js_buf *b, const char *what, uint64_t a, uint64_t bmax);

/* ---- limits (ERR_LIMIT when exceeded; each has a message naming it) ---- */

#define GRAM_JS_MAX_DEPTH 64            /* schema nesting walked */
#define GRAM_JS_MAX_RULES 20000         /* rules in one grammar */
#define GRAM_JS_MAX_BYTES (4u << 20)    /* default grammar size limit */
#define GRAM_JS_MAX_ENUM 1024           /* values in one enum */
#define GRAM_JS_MAX_DNF 256             /* alternatives one anyOf/oneOf/enum combination expands to */
#define GRAM_JS_MAX_PATTERN 4096        /* bytes of one pattern */
#define GRAM_JS_MAX_NFA 20000           /* automaton states of one pattern */
#define GRAM_JS_MAX_DFA 2000            /* deterministic states of one pattern */
#define GRAM_JS_MAX_PRODUCT 4096        /* states of patterns x formats x length counter */
#define GRAM_JS_REPEAT 65535u           /* the largest count gram's {m,n} takes */
#define GRAM_JS_MAX_COUNT 4294836225ull /* min/max length or items: 65535^2, by nesting */
#define GRAM_JS_MAX_DIGITS 400          /* decimal digits of a numeric bound */
#define GRAM_JS_MAX_PROPS 1024          /* property names of one object */
#define GRAM_JS_MAX_KEY 1024            /* bytes of one property name */
#define GRAM_JS_DEFAULT_ANY_ORDER 6     /* objects up to this many properties: any order */
#define GRAM_JS_MAX_ANY_ORDER 10

/* ---- conversion context ---- */

struct gram_js_rule {
    char *name;
    char *body; /* NULL while being built */
};

/* Shared building blocks, defined once on first use. */
enum gram_js_prim {
    GRAM_JS_P_WS,      /* bounded whitespace (only when opts.ws > 0) */
    GRAM_JS_P_CHAR,    /* one character of a JSON string, any spelling */
    GRAM_JS_P_STRING,  /* any JSON string */
    GRAM_JS_P_INT,     /* any integer-valued number (1, -0, 1.0, 1e3) */
    GRAM_JS_P_NUMBER,  /* any JSON number */
    GRAM_JS_P_VALUE,   /* any JSON value */
    GRAM_JS_P_OBJECT,  /* any JSON object */
    GRAM_JS_P_ARRAY,   /* any JSON array */
    GRAM_JS_P_NEVER,   /* matches nothing */
    GRAM_JS_P_COUNT_
};

struct gram_js_charset_memo; /* gram_schema_prim.c */
struct gram_js_str_memo;     /* gram_schema_str.c */

struct gram_js_ctx {
    struct gram_schema_opts o;
    struct err_info *ei;
    int rc; /* first error, 0 while none */
    struct gram_js_rule *rules;
    size_t n_rules, cap_rules;
    size_t *names; /* hash set of rule names: rule index + 1, 0 = empty */
    size_t names_cap, name_seq;
    size_t bytes; /* grammar bytes so far (names + bodies) */
    size_t prim[GRAM_JS_P_COUNT_]; /* rule index + 1, 0 = not defined yet */
    struct gram_js_charset_memo *cs; /* character-set rules, keyed by their code point ranges */
    struct gram_js_str_memo *str;    /* compiled patterns and written string constraints */
    void *priv; /* gram_schema.c's state */
};

/* The first error and the rule list (gram_schema_emit.c). Record an error (first wins) and
 * return it. */
int gram_js_fail(struct gram_js_ctx *c, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* New rule with a unique name derived from hint (prefix applied, characters outside
 * [a-z0-9-] replaced). Returns the index, or SIZE_MAX after recording an error. */
size_t gram_js_rule_new(struct gram_js_ctx *c, const char *hint);
/* New rule named exactly name (an entry rule the caller chose): ERR_DUPLICATE when taken.
 * Returns the index, or SIZE_MAX after recording an error. */
size_t gram_js_rule_named(struct gram_js_ctx *c, const char *name);
/* Give rule i its body (takes b's text; b is reset). */
void gram_js_rule_set(struct gram_js_ctx *c, size_t i, struct gram_js_buf *b);
const char *gram_js_rule_name(const struct gram_js_ctx *c, size_t i);


/* ---- code point sets (gram_schema_cset.c) ---- */

#define GRAM_JS_CP_MAX 0x10FFFFu /* the last code point */
#define GRAM_JS_SUR_LO 0xD800u   /* surrogates: no characters, in JSON strings or in patterns */
#define GRAM_JS_SUR_HI 0xDFFFu

/* A set of code points as sorted, disjoint, non-adjacent closed ranges. */
struct gram_js_cset {
    uint32_t *r; /* [n][2]: lo, hi */
    size_t n, cap; /* cap in uint32_t, not ranges */
    int oom;
};

void gram_js_cset_add(struct gram_js_cset *s, uint32_t lo, uint32_t hi);
void gram_js_cset_free(struct gram_js_cset *s);
void gram_js_cset_add_set(struct gram_js_cset *d, const struct gram_js_cset *s);
/* d = the code points in [0, lim] not in s (d must not be s). */
void gram_js_cset_complement(struct gram_js_cset *d, const struct gram_js_cset *s, uint32_t lim);
/* d = a without [lo, hi] (d must not be a). */
void gram_js_cset_minus_range(struct gram_js_cset *d, const struct gram_js_cset *a, uint32_t lo,
                              uint32_t hi);
/* Every character a JSON string can hold: all code points but surrogates. */
void gram_js_cset_universe(struct gram_js_cset *s);
int gram_js_cset_has(const struct gram_js_cset *s, uint32_t c);
/* d = a and b (d must be neither). */
void gram_js_cset_intersect(struct gram_js_cset *d, const struct gram_js_cset *a,
                            const struct gram_js_cset *b);
int gram_js_cset_eq(const struct gram_js_cset *a, const struct gram_js_cset *b);

/* Decode one code point of well-formed UTF-8 (jansson's strings are) at s[0..n), n >= 1;
 * returns its length. */
size_t gram_js_utf8_dec(const unsigned char *s, size_t n, uint32_t *cp);
/* Code points of well-formed UTF-8 s[0..n) into *out (malloc'd). 0 or ERR_NOMEM. */
int gram_js_utf8_cps(const char *s, size_t n, uint32_t **out, size_t *nout);

/* ---- patterns as automata (gram_schema_rx.c) ---- */

struct gram_js_dtr {
    uint32_t lo, hi; /* code points */
    int to;
};

struct gram_js_dst {
    int accept;
    struct gram_js_dtr *t; /* sorted, disjoint */
    size_t nt;
};

/* Minimal DFA; state 0 is the start (it may accept nothing: no transitions, not accepting). */
struct gram_js_dfa {
    struct gram_js_dst *s;
    size_t n;
};

/* Check that a pattern is in the supported subset; on refusal writes why. 0 or a code
 * (ERR_UNSUPPORTED, ERR_INVALID for a syntax error, ERR_LIMIT). */
int gram_js_pattern_check(const char *pat, size_t len, char *why, size_t why_len);
/* Compile; NULL with *rc and why set on failure. */
struct gram_js_dfa *gram_js_rx_compile(const char *pat, size_t len, int *rc, char *why,
                                       size_t why_len);
void gram_js_dfa_free(struct gram_js_dfa *d); /* NULL-safe */

/* ---- building blocks and character rules (gram_schema_prim.c) ---- */

/* Name of a shared building block, defining it on first use ("" after an error). */
const char *gram_js_prim(struct gram_js_ctx *c, enum gram_js_prim p);
/* Append " ws " (or a single space when whitespace is off): the gap between two tokens. */
void gram_js_gap(struct gram_js_ctx *c, struct gram_js_buf *b);
/* Members of an object or array: gap "," gap. */
void gram_js_sep(struct gram_js_ctx *c, struct gram_js_buf *b);
/* The unbounded magnitude (no sign): any number, or any integer-valued one. */
void gram_js_num_any_mag(struct gram_js_buf *b, int integer_only);
/* Name of a rule matching one character of a JSON string whose code point is in s, written in
 * any way JSON allows (literal UTF-8, \" \\ \/ \b \f \n \r \t, \uXXXX in either case, a
 * surrogate pair for U+10000 and above). Surrogate code points are never matched. */
const char *gram_js_cset_rule(struct gram_js_ctx *c, const struct gram_js_cset *s);
/* Free the character-set rules' memo (the context's cs). */
void gram_js_prim_ctx_free(struct gram_js_ctx *c);

/* ---- decimal numbers (gram_schema_num.c) ---- */

/* A finite decimal: sign, integer digits (no leading zeros, "" for 0) and fraction digits (no
 * trailing zeros). Exact: a JSON real becomes the shortest decimal that reads back as the same
 * double (the text the schema author most likely wrote). */
struct gram_js_dec {
    int neg;
    uint16_t ni, nf;
    char ip[GRAM_JS_MAX_DIGITS + 1];
    char fp[GRAM_JS_MAX_DIGITS + 1];
};

/* One side of a numeric interval: the exact decimal (what JSON Schema compares with) and the
 * JSON number it came from (what double-based validators compare with). */
struct gram_js_bound {
    int has;
    int strict; /* exclusive */
    struct gram_js_dec v;
    int is_int;  /* a JSON integer n, else a JSON real d */
    long long n;
    double d;
};

/* 0, or ERR_RANGE for a real that is not finite / has too many digits. */
int gram_js_dec_from_json(const struct json_t *j, struct gram_js_dec *d);
/* The bound a JSON number sets; 0 or ERR_RANGE / ERR_BAD_TYPE. */
int gram_js_bound_from_json(const struct json_t *j, int strict, struct gram_js_bound *b);
int gram_js_dec_cmp(const struct gram_js_dec *a, const struct gram_js_dec *b);
int gram_js_dec_is_int(const struct gram_js_dec *d);
/* Tighten *lo (lower bound) / *hi (upper) with b. */
void gram_js_bound_lower(struct gram_js_bound *lo, const struct gram_js_bound *b);
void gram_js_bound_upper(struct gram_js_bound *hi, const struct gram_js_bound *b);
/* Whether no number (no integer when integer_only) lies in [lo, hi]. */
int gram_js_num_empty(const struct gram_js_bound *lo, const struct gram_js_bound *hi,
                      int integer_only);
/* Append the grammar of a JSON number in [lo, hi] (integer-valued only when integer_only) to
 * out; *empty = 1 when there is none. Bounded ranges are written without exponents. */
void gram_js_num_emit(struct gram_js_ctx *c, const struct gram_js_bound *lo,
                      const struct gram_js_bound *hi, int integer_only, struct gram_js_buf *out,
                      int *empty);

/* ---- strings under constraints (gram_schema_str.c) ---- */

/* The canonical JSON text of a string (what Python's json.dumps(ensure_ascii=False) writes:
 * \" \\ \b \f \n \r \t, other controls as \u00xx, the rest literal) as a GBNF literal. */
void gram_js_put_json_string(struct gram_js_buf *b, const char *s, size_t n);

/* A rule matching a JSON string (quotes included) whose decoded value is none of keys[i]
 * (len[i] bytes of UTF-8 each), in any spelling. */
const char *gram_js_key_not_in(struct gram_js_ctx *c, const char *const *keys,
                               const size_t *len, size_t n, const char *hint);

/* String constraints of one flat conjunction. */
struct gram_js_strc {
    uint64_t min, max;        /* code points; max == UINT64_MAX: none */
    const char **pat;         /* [n_pat] ECMA-262 patterns (UTF-8, pat_len bytes each) */
    size_t *pat_len;
    size_t n_pat;
    unsigned formats;         /* GRAM_JS_F_* bits */
    const char *lit;          /* const/enum value, or NULL */
    size_t lit_len;
    int lit_conflict;         /* two different literal values: nothing matches */
};

enum {
    GRAM_JS_F_DATE = 1u << 0,
    GRAM_JS_F_TIME = 1u << 1,
    GRAM_JS_F_DATE_TIME = 1u << 2,
    GRAM_JS_F_UUID = 1u << 3,
    GRAM_JS_F_EMAIL = 1u << 4,
    GRAM_JS_F_IPV4 = 1u << 5,
};

/* Format name -> GRAM_JS_F_* bit, 0 when unknown. */
unsigned gram_js_format_bit(const char *name);

/* Append the grammar of a JSON string (quotes included) meeting s to out; *empty = 1 (and
 * nothing appended) when no string can. */
void gram_js_str_emit(struct gram_js_ctx *c, const struct gram_js_strc *s, const char *hint,
                      struct gram_js_buf *out, int *empty);
/* Whether no string meets s. Exact. */
int gram_js_str_empty(struct gram_js_ctx *c, const struct gram_js_strc *s);
void gram_js_str_ctx_free(struct gram_js_ctx *c);

#endif
