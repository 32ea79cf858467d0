/* tmpl_int: the interpreter's private parts: arena, values, tokens, syntax tree, render state.
 *
 * Memory: a template owns one arena (syntax tree, literal strings, the symbol table); a render
 * owns another (every value it creates) and frees it at once at the end, so no value is ever
 * freed on its own and values may share structure freely. Values are 16-byte tagged structs
 * passed by value; strings are immutable; lists and dicts are mutable (namespace attributes,
 * list.append) but only ever reachable from one render.
 *
 * Python's types map onto few kinds: a tuple, a generator, dict_items... are lists with a
 * flavour (enum lk) that decides their repr, tests, mutability and whether iterating consumes
 * them; a Markup string (|safe, |escape) is a string with the markup flag, which changes what
 * `+`, join, replace and format do with plain strings (they escape them), as markupsafe does.
 *
 * The files form layers, each calling only files listed before it (nothing calls up, so no
 * filter, method or value operation ever re-enters the evaluator):
 *   tmpl_uni     UTF-8 and the Unicode properties Python's str methods need
 *   tmpl_err     positions ("line L, column C"), parse and render errors, the step budget
 *   tmpl_mem     arenas, byte buffers, strings
 *   tmpl_lex     source -> tokens
 *   tmpl_val     Python value semantics: containers, ==/</hash, str/repr, JSON, the method table
 *   tmpl_access  x.name, x[key], x[a:b] (jinja2's sandboxed getattr/getitem)
 *   tmpl_fmt     str.format, printf-style %, strftime
 *   tmpl_meth    str/list/dict methods, built-in argument binding
 *   tmpl_arith   + - * / // % ** and unary -/+
 *   tmpl_filt    filters and tests (and their name tables, which the parser resolves against)
 *   tmpl_parse   tokens -> syntax tree, the tmpl_parse entry point
 *   tmpl_eval    the interpreter: scopes, statements, expressions, calls, tmpl_render
 *   tmpl_req     chat request -> variables, capability probes, conversation fixes */
#ifndef LMPIPE_TMPL_TMPL_INT_H
#define LMPIPE_TMPL_TMPL_INT_H

#include "tmpl.h"

#include "../util/util.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- arena (tmpl_mem.c) ---- */

struct arena_blk;
struct arena {
    struct arena_blk *head;
    size_t used;  /* bytes handed out, for the memory bound */
    size_t limit; /* 0 = unbounded */
};
void *tmpl_arena_alloc(struct arena *a, size_t n); /* 16-aligned, zeroed; NULL past limit / OOM */
void tmpl_arena_free(struct arena *a);

/* ---- growable byte buffer, malloc'd (tmpl_mem.c) ---- */

struct buf {
    char *p;
    size_t n, cap;
    size_t limit; /* 0 = unbounded; appending past it fails */
};
int tmpl_buf_put(struct buf *b, const void *s, size_t n); /* 0, ERR_LIMIT or ERR_NOMEM */
int tmpl_buf_putc(struct buf *b, char c);
int tmpl_buf_printf(struct buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void tmpl_buf_free(struct buf *b);

/* ---- strings ---- */

struct str {
    size_t len;
    int64_t ncp; /* code points, -1 until counted */
    char b[];    /* len bytes + NUL */
};

/* ---- values ---- */

enum vt {
    VT_UNDEF,
    VT_NONE,
    VT_BOOL,
    VT_INT,
    VT_FLOAT,
    VT_STR,
    VT_LIST,
    VT_DICT,
    VT_NS,     /* jinja2 Namespace: a dict reached by attribute */
    VT_FUNC,   /* global function (enum fn in id) */
    VT_METHOD, /* bound method: receiver + enum meth in id */
    VT_MACRO,
    VT_LOOP,
    VT_FILTER_, /* internal: never a value */
};

/* list flavours */
enum lk {
    LK_LIST,
    LK_TUPLE,
    LK_GEN,    /* generator: tmpl_truthy, no len, iterating consumes it */
    LK_REVIT,  /* list_reverseiterator: as a generator */
    LK_ITEMS,  /* dict_items */
    LK_KEYS,   /* dict_keys */
    LK_VALUES, /* dict_values */
};

struct list;
struct dict;
struct undef;
struct macro;
struct loop;
struct method;

struct val {
    uint8_t t;   /* enum vt */
    uint8_t f;   /* VT_STR: 1 = Markup; VT_LIST: enum lk */
    uint16_t id; /* VT_FUNC: enum fn; VT_METHOD: unused */
    uint32_t pad_;
    union {
        bool b;
        int64_t i;
        double d;
        struct str *s;
        struct list *l;
        struct dict *m; /* VT_DICT, VT_NS */
        struct undef *u;
        struct macro *mac;
        struct loop *lp;
        struct method *bm;
    } u;
};

struct list {
    size_t n, cap;
    size_t pos; /* generators: items before pos are consumed */
    struct val *v;
};

struct kv {
    struct val k, v;
    uint64_t h;
};
struct dict {
    size_t n, cap;
    struct kv *e;     /* insertion order */
    uint32_t *idx;    /* open-addressing index into e (+1; 0 empty), built when n > 8 */
    size_t icap;
};

/* Why a value is undefined, for the error when it is used (jinja2's messages). */
struct undef {
    struct val key;      /* the missing name / attribute / item */
    const char *objtype; /* NULL: a name; else "dict object", "None", ... */
    uint8_t is_item;     /* "has no element" rather than "has no attribute" */
    const char *hint;    /* a whole message instead */
};

enum meth {
    M_NONE,
    /* str */
    M_S_STRIP, M_S_LSTRIP, M_S_RSTRIP, M_S_SPLIT, M_S_RSPLIT, M_S_SPLITLINES, M_S_STARTSWITH,
    M_S_ENDSWITH, M_S_REPLACE, M_S_UPPER, M_S_LOWER, M_S_TITLE, M_S_CAPITALIZE, M_S_SWAPCASE,
    M_S_CASEFOLD, M_S_FORMAT, M_S_JOIN, M_S_FIND, M_S_RFIND, M_S_INDEX, M_S_RINDEX, M_S_COUNT,
    M_S_CENTER, M_S_LJUST, M_S_RJUST, M_S_ZFILL, M_S_PARTITION, M_S_RPARTITION,
    M_S_REMOVEPREFIX, M_S_REMOVESUFFIX, M_S_ISDIGIT, M_S_ISDECIMAL, M_S_ISNUMERIC, M_S_ISALPHA,
    M_S_ISALNUM, M_S_ISSPACE, M_S_ISLOWER, M_S_ISUPPER, M_S_ISTITLE, M_S_ISIDENTIFIER,
    M_S_EXPANDTABS, M_S_ENCODE_,
    /* list */
    M_L_APPEND, M_L_EXTEND, M_L_POP, M_L_INSERT, M_L_REMOVE, M_L_INDEX, M_L_COUNT, M_L_COPY,
    M_L_CLEAR, M_L_REVERSE, M_L_SORT,
    /* dict */
    M_D_GET, M_D_ITEMS, M_D_KEYS, M_D_VALUES, M_D_POP, M_D_UPDATE, M_D_COPY, M_D_SETDEFAULT,
    M_D_CLEAR, M_D_POPITEM,
    /* loop, joiner, cycler */
    M_LOOP_CYCLE, M_LOOP_CHANGED, M_JOINER_CALL, M_CYCLER_NEXT, M_CYCLER_RESET,
    M_COUNT_
};

struct method {
    struct val self;
    enum meth m;
};

struct scope;

/* A macro, or the `caller` of a call block: its definition and the scope it closes over (names
 * resolve late, as Python closures do: a macro sees a top-level variable set after it). */
struct macro {
    struct str *name;
    const struct node *def; /* N_MACRO or N_CALLBLOCK */
    struct scope *closure;
};

/* The `loop` variable of one for loop (one per loop, updated per iteration). */
struct loop {
    struct list *items;   /* what is iterated (after the loop's `if` filter) */
    size_t i;             /* index0 */
    uint32_t depth0;      /* recursive loops: nesting */
    struct val last_changed;
    bool has_changed;
    const struct node *def; /* the N_FOR (recursive calls render its body again) */
    struct scope *scope;    /* the scope the loop runs in */
};

enum fn {
    FN_RAISE,
    FN_STRFTIME,
    FN_NAMESPACE,
    FN_RANGE,
    FN_DICT,
    FN_JOINER,
    FN_CYCLER,
    FN_COUNT_
};

/* ---- tokens ---- */

enum tk {
    TK_EOF,
    TK_DATA,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    /* operators */
    TK_ADD, TK_SUB, TK_DIV, TK_FLOORDIV, TK_MUL, TK_MOD, TK_POW, TK_TILDE, TK_LBRACKET,
    TK_RBRACKET, TK_LPAREN, TK_RPAREN, TK_LBRACE, TK_RBRACE, TK_EQ, TK_NE, TK_GT, TK_GTEQ, TK_LT,
    TK_LTEQ, TK_ASSIGN, TK_DOT, TK_COLON, TK_PIPE, TK_COMMA, TK_SEMICOLON,
};

struct token {
    uint8_t t;       /* enum tk */
    uint32_t pos;    /* byte offset in the normalised source */
    struct str *s;   /* DATA, NAME, STRING: text (template arena) */
    union {
        int64_t i;
        double d;
    } num;
};

/* ---- syntax tree ---- */

enum nk {
    /* expressions */
    N_CONST, N_NAME, N_GETATTR, N_GETITEM, N_SLICE, N_CALL, N_FILTER, N_TEST, N_NEG, N_POS,
    N_NOT, N_BINOP, N_AND, N_OR, N_CONCAT, N_COMPARE, N_COND, N_LIST, N_TUPLE, N_DICT, N_NSREF,
    /* statements */
    N_TEXT, N_OUTPUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_CALLBLOCK, N_FILTERBLOCK,
    N_WITH, N_BREAK, N_CONTINUE, N_BODY, /* N_BODY: block/generation: just its body */
};

enum tmpl_binop { B_ADD, B_SUB, B_MUL, B_DIV, B_FLOORDIV, B_MOD, B_POW, B_POW_NEGCONST };
/* B_POW_NEGCONST: `-2 ** x` with x not constant. jinja2 folds -2 into a constant and emits the
 * Python source "-2 ** x", which Python reads as -(2 ** x); the quirk is reproduced. */
#define NODE_CONST_SLICE 1 /* N_SLICE flag: every part is a constant, jinja2 folds it with its
                              forgiving getitem (a TypeError becomes undefined) */
enum cmpop { C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE, C_IN, C_NOTIN };

struct node;
struct nodes {
    size_t n;
    struct node **v;
};

struct node {
    uint8_t k;    /* enum nk */
    uint8_t op;   /* tmpl_binop / cmpop / flags */
    uint32_t pos; /* byte offset (normalised source) for errors */
    union {
        struct val c;                   /* N_CONST */
        struct { uint32_t sym; } name;  /* N_NAME */
        struct { struct node *obj; struct str *attr; } ga;      /* N_GETATTR */
        struct { struct node *obj, *key; } gi;                  /* N_GETITEM */
        struct { struct node *obj, *a, *b, *c; } sl;            /* N_SLICE (a/b/c may be NULL) */
        struct {                                                /* N_CALL, N_FILTER, N_TEST */
            struct node *obj;   /* callee / filtered value (NULL: the block body) */
            int16_t fid;        /* filter / test id; -1: unknown (an error when evaluated) */
            struct str *fname;  /* filter / test name, for that error */
            struct nodes args;
            struct str **kwn;   /* keyword names [nkw] */
            struct nodes kwv;
        } call;
        struct { struct node *a, *b; } bin;                     /* tmpl_binop, and, or, not/neg */
        struct { struct node *first; struct nodes rhs; uint8_t *ops; } cmp; /* N_COMPARE */
        struct { struct node *test, *a, *b; } cond;             /* N_COND (b may be NULL) */
        struct nodes items;                                     /* list, tuple, concat */
        struct { struct nodes keys, vals; } dict;               /* N_DICT */
        struct { uint32_t sym; struct str *attr; } ns;          /* N_NSREF */
        struct str *text;                                       /* N_TEXT */
        struct nodes out;                                       /* N_OUTPUT */
        struct { struct node *test; struct nodes body, els; } iff; /* N_IF */
        struct {
            struct node *target, *iter, *test;
            struct nodes body, els;
            bool recursive;
        } loop;                                                 /* N_FOR */
        struct { struct node *target, *value; } set;            /* N_SET */
        struct { struct node *target, *filter; struct nodes body; } setb; /* N_SETBLOCK */
        struct {
            uint32_t sym;          /* macro name (N_MACRO) */
            struct str *name;
            uint32_t *params;      /* [nparams] symbols */
            size_t nparams;
            struct nodes defaults; /* for the last defaults.n params */
            struct node *call;     /* N_CALLBLOCK: the call expression */
            struct nodes body;
            bool uses_caller, uses_varargs, uses_kwargs;
        } mac;                                                  /* N_MACRO, N_CALLBLOCK */
        struct { struct node *filter; struct nodes body; } fb;  /* N_FILTERBLOCK */
        struct { struct nodes targets, vals, body; } with;      /* N_WITH */
        struct nodes body;                                      /* N_BODY */
    } u;
};

/* ---- filters and tests (tmpl_filt.c) ---- */
/* The filter/test tables (names are what jinja2 3.1 registers). */

enum filt {
    F_ABS, F_ATTR, F_BATCH, F_CAPITALIZE, F_CENTER, F_COUNT, F_D, F_DEFAULT, F_DICTSORT, F_E,
    F_ESCAPE, F_FIRST, F_FLOAT, F_FORCEESCAPE, F_FORMAT, F_INDENT, F_INT, F_ITEMS, F_JOIN,
    F_LAST, F_LENGTH, F_LIST, F_LOWER, F_MAP, F_MAX, F_MIN, F_REJECT, F_REJECTATTR, F_REPLACE,
    F_REVERSE, F_ROUND, F_SAFE, F_SELECT, F_SELECTATTR, F_SLICE, F_SORT, F_STRING, F_SUM, F_TITLE,
    F_TOJSON, F_TRIM, F_TRUNCATE, F_UNIQUE, F_UPPER, F_WORDCOUNT,
    F_COUNT_
};
enum test {
    T_ODD, T_EVEN, T_DIVISIBLEBY, T_DEFINED, T_UNDEFINED, T_FILTER, T_TEST, T_NONE, T_BOOLEAN,
    T_FALSE, T_TRUE, T_INTEGER, T_FLOAT, T_LOWER, T_UPPER, T_STRING, T_MAPPING, T_NUMBER,
    T_SEQUENCE, T_ITERABLE, T_CALLABLE, T_SAMEAS, T_ESCAPED, T_IN, T_EQ, T_NE, T_GT, T_GE, T_LT,
    T_LE, T_COUNT_
};
/* Name lookups: the id, -1 when jinja2 has no such filter/test, -2 when jinja2 has it but we do
 * not (a parse error that says so). */
int tmpl_filt_lookup(const char *name, size_t len);
int tmpl_test_lookup(const char *name, size_t len);

/* ---- the template ---- */

struct tmpl {
    struct arena ar;
    char *src;           /* normalised source (newlines \n), for positions */
    size_t len;
    uint32_t *omap;      /* normalised offset -> original offset, NULL when identical */
    struct nodes body;
    struct str **syms;   /* symbol table: interned names [nsyms] */
    size_t nsyms;
    uint32_t sym_loop, sym_caller, sym_varargs, sym_kwargs; /* UINT32_MAX when absent */
};

#define SYM_NONE UINT32_MAX
#define TMPL_MAX_CDEPTH 3000

/* ---- render state ---- */

struct scope {
    struct scope *parent;
    size_t n, cap;
    uint32_t *sym;
    struct val *v;
};

struct rctx {
    const struct tmpl *t;
    struct arena ar;
    struct buf *out; /* where output goes now (macros and blocks swap it) */
    struct scope *globals;
    struct val *gvals;  /* [nsyms] the variables and built-ins */
    bool *gset;         /* [nsyms] */
    uint64_t steps, max_steps;
    size_t max_output;
    uint32_t depth, max_depth; /* macro / caller / recursive loop calls */
    uint32_t cdepth;           /* C recursion (eval + exec), bounded by TMPL_MAX_CDEPTH */
    int64_t now;
    int32_t utc_offset;
    struct err_info *ei;
    int err;            /* first error code, 0 while fine */
    uint32_t err_pos;   /* where it happened */
    uint32_t cur_pos;   /* the node being evaluated */
};

/* ---- positions and errors (tmpl_err.c) ---- */

/* "line L, column C" of a normalised offset, as the error prefix. */
void tmpl_pos_str(const struct tmpl *t, uint32_t pos, char *buf, size_t cap);
uint64_t tmpl_orig_off(const struct tmpl *t, uint32_t pos);
/* Record a parse error at normalised offset pos: "line L, column C: <message>". */
void tmpl_errv(const struct tmpl *t, struct err_info *ei, int code, uint32_t pos, const char *fmt,
               va_list ap);
/* Record a render error (first wins) and return -1. kind: the Python exception name. */
int tmpl_rt_err(struct rctx *c, int code, const char *kind, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Charge `n` steps; -1 (with the error recorded) when the budget is spent. */
int tmpl_rt_steps(struct rctx *c, uint64_t n);

/* ---- render buffers (tmpl_mem.c) ---- */

/* Buffer helpers for render code: append (on failure the buffer is freed and a MemoryError /
 * limit recorded), turn a buffer into a string value (freeing it), record "too much memory". */
int tmpl_rt_bput(struct rctx *c, struct buf *b, const char *s, size_t n);
int tmpl_rt_take(struct rctx *c, struct buf *b, bool markup, struct val *out);
int tmpl_rt_oom(struct rctx *c);

/* ---- values (tmpl_val.c) ---- */

static inline struct val v_undef(void) { struct val v = {0}; v.t = VT_UNDEF; return v; }
static inline struct val v_none(void) { struct val v = {0}; v.t = VT_NONE; return v; }
static inline struct val v_bool(bool b) { struct val v = {0}; v.t = VT_BOOL; v.u.b = b; return v; }
static inline struct val v_int(int64_t i) { struct val v = {0}; v.t = VT_INT; v.u.i = i; return v; }
static inline struct val v_float(double d) { struct val v = {0}; v.t = VT_FLOAT; v.u.d = d; return v; }
static inline struct val v_strv(struct str *s, bool markup)
{
    struct val v = {0};
    v.t = VT_STR;
    v.f = markup;
    v.u.s = s;
    return v;
}
static inline struct val v_listv(struct list *l, enum lk k)
{
    struct val v = {0};
    v.t = VT_LIST;
    v.f = (uint8_t)k;
    v.u.l = l;
    return v;
}
static inline struct val v_dictv(struct dict *d)
{
    struct val v = {0};
    v.t = VT_DICT;
    v.u.m = d;
    return v;
}
static inline bool v_is_seqlike(struct val v) { return v.t == VT_LIST; }
static inline bool v_is_gen(struct val v)
{
    return v.t == VT_LIST && (v.f == LK_GEN || v.f == LK_REVIT);
}

/* An int (or bool) usable as an index. */
static inline bool v_as_index(struct val k, int64_t *i)
{
    if (k.t == VT_INT) *i = k.u.i;
    else if (k.t == VT_BOOL) *i = k.u.b;
    else return false;
    return true;
}

/* memcpy of n values that tolerates n == 0 with NULL arrays (empty lists have none). */
static inline void vcopy(struct val *dst, const struct val *src, size_t n)
{
    if (n) memcpy(dst, src, n * sizeof *dst);
}

/* strings and string values (tmpl_mem.c) */
struct str *tmpl_str_new(struct arena *a, const char *s, size_t n);
struct str *tmpl_str_alloc(struct arena *a, size_t n); /* uninitialised bytes, NUL-terminated */
int64_t tmpl_str_ncp(struct str *s);                   /* code point count (cached) */
struct val tmpl_v_str(struct rctx *c, const char *s, size_t n); /* VT_UNDEF + error on OOM */
struct val tmpl_v_cstr(struct rctx *c, const char *s);
/* Copy a finished buffer into a string value (the buffer is reset, not freed). */
struct val tmpl_buf_take(struct rctx *c, struct buf *b, bool markup);
/* containers, undefined values, Python semantics (tmpl_val.c) */
struct list *tmpl_list_new(struct rctx *c, size_t cap);
int tmpl_list_push(struct rctx *c, struct list *l, struct val v);
struct dict *tmpl_dict_new(struct rctx *c, size_t cap);
/* tmpl_dict_get: the value, or NULL; key must be hashable (else -1 error via c). */
struct val *tmpl_dict_get(struct rctx *c, struct dict *d, struct val key, int *rc);
int tmpl_dict_set(struct rctx *c, struct dict *d, struct val key, struct val v);
int tmpl_dict_del(struct rctx *c, struct dict *d, struct val key, struct val *old);
struct val *tmpl_dict_get_cstr(struct dict *d, const char *k, size_t n);

struct val tmpl_v_undef_name(struct rctx *c, struct val key, const char *objtype, bool is_item);
struct val tmpl_v_undef_hint(struct rctx *c, const char *hint);
/* Raise UndefinedError for u (always returns -1). */
int tmpl_undef_fail(struct rctx *c, struct val u);

/* The method `name` of obj's type (M_NONE: none; tuples have index and count only), a method's
 * name (for repr), and a bound method value (obj.method before it is called). */
enum meth tmpl_meth_lookup(struct val obj, const char *name, size_t len);
const char *tmpl_meth_name(enum meth m);
int tmpl_v_method(struct rctx *c, struct val self, enum meth m, struct val *out);

const char *tmpl_type_name(struct val v); /* Python's type name: 'int', 'NoneType', 'dict'... */
bool tmpl_truthy(struct val v);
/* Python ==, <, hash (rc -1 on TypeError). */
bool tmpl_v_eq(struct val a, struct val b);
int tmpl_v_cmp(struct rctx *c, struct val a, struct val b, int *out); /* <0, 0, >0 */
int tmpl_v_hash(struct rctx *c, struct val v, uint64_t *h);
/* str() and repr() appended to b; -1 on error (recorded). */
int tmpl_v_str_to(struct rctx *c, struct buf *b, struct val v);
int tmpl_v_repr_to(struct rctx *c, struct buf *b, struct val v);
/* str(v) as a string value (strings pass through, Markup kept when keep_markup). */
int tmpl_v_to_str(struct rctx *c, struct val v, struct val *out);
/* Python's float repr. */
void tmpl_fmt_float(char *buf, size_t cap, double d);
/* JSON text of v (json.dumps with transformers' arguments). indent: NULL = none; else string. */
struct json_opts {
    bool ensure_ascii, sort_keys;
    const char *indent; /* NULL: single line */
    size_t indent_len;
    const char *item_sep, *key_sep;
    size_t item_sep_len, key_sep_len;
};
int tmpl_v_tojson(struct rctx *c, struct buf *b, struct val v, const struct json_opts *o, int depth);
/* JSON (jansson) -> value, and back for from_json. */
int tmpl_v_from_json(struct rctx *c, const json_t *j, struct val *out, int depth);
/* HTML escaping (markupsafe.escape) appended to b. */
int tmpl_html_escape_to(struct buf *b, const char *s, size_t n);
/* Make a plain string value Markup-escaped (escape(v)): Markup stays as is. */
int tmpl_v_escape(struct rctx *c, struct val v, struct val *out);
/* Materialise an iterable into a fresh list (dict: keys; string: characters; generator:
 * consumes it). Undefined -> empty; non-iterable -> TypeError. */
int tmpl_v_iter_list(struct rctx *c, struct val v, struct list **out);
/* len() or -1 with TypeError. */
int tmpl_v_len(struct rctx *c, struct val v, int64_t *out);
/* Python `in`. */
int tmpl_v_contains(struct rctx *c, struct val hay, struct val needle, bool *out);

/* ---- attribute, item and slice access (tmpl_access.c) ---- */

/* obj.name / obj[key] as jinja2's sandbox does them: a miss is an undefined value (0 returned),
 * an error only for an undefined obj. */
int tmpl_get_attr(struct rctx *c, struct val obj, struct str *name, struct val *out);
int tmpl_get_item(struct rctx *c, struct val obj, struct val key, struct val *out);
/* obj[a:b:c]; sv[k] is used where given[k]. forgiving: a slice jinja2 folded into a constant
 * (a TypeError there becomes undefined). */
int tmpl_get_slice(struct rctx *c, struct val obj, const struct val *sv, const bool *given,
                   bool forgiving, struct val *out);

/* ---- operators (tmpl_arith.c) ---- */

/* a <op> b for op an enum tmpl_binop; -a (neg) or +a. */
int tmpl_binop(struct rctx *c, int op, struct val a, struct val b, struct val *out);
int tmpl_unary(struct rctx *c, bool neg, struct val a, struct val *out);

/* ---- unicode helpers (tmpl_uni.c) ---- */

uint32_t tmpl_utf8_dec(const char *s, size_t n, size_t *adv); /* U+FFFD + adv 1 on a bad byte */
size_t tmpl_utf8_enc(uint32_t cp, char *out);                 /* 1..4 bytes */
bool tmpl_uni_isspace(uint32_t cp);                           /* Python str.isspace */
bool tmpl_uni_isprintable(uint32_t cp);                       /* Python str.isprintable (approx.) */
uint32_t tmpl_uni_upper(uint32_t cp);
uint32_t tmpl_uni_lower(uint32_t cp);
bool tmpl_uni_isalpha(uint32_t cp);
bool tmpl_uni_isdigit(uint32_t cp);
bool tmpl_uni_islinebreak(uint32_t cp); /* str.splitlines boundaries */
/* First occurrence of needle in hay, or NULL (memmem is not POSIX): util's. */
#define mem_find util_mem_find
/* Byte offset of code point index i (0..ncp) in s. */
size_t tmpl_utf8_off(const struct str *s, int64_t i);

/* ---- Python's formatting languages (tmpl_fmt.c) ---- */

/* fmt.format(*args, **kw); fmt % args (args a tuple, a dict or one value); strftime of t
 * (seconds since the epoch, already shifted to local time) appended to b. */
int tmpl_str_format(struct rctx *c, struct val fmt, struct val *args, size_t nargs, struct str **kwn,
               struct val *kwv, size_t nkw, struct val *out);
int tmpl_str_percent(struct rctx *c, struct val fmt, struct val args, struct val *out);
int tmpl_strftime_fmt(struct rctx *c, const char *fmt, size_t n, int64_t t, struct buf *b);

/* ---- methods and argument binding (tmpl_meth.c) ---- */

int tmpl_call_method(struct rctx *c, struct method *m, struct val *args, size_t nargs,
                struct str **kwn, struct val *kwv, size_t nkw, struct val *out);
/* Keyword/positional argument binding for built-ins: names[] in Python order; vals[] is filled
 * (VT_UNDEF = not given). Returns -1 with a TypeError on extra / unknown arguments. */
int tmpl_bind_args(struct rctx *c, const char *what, const char *const *names, size_t nnames,
              struct val *args, size_t nargs, struct str **kwn, struct val *kwv, size_t nkw,
              struct val *vals);

/* ---- applying filters and tests (tmpl_filt.c; their ids and names are above) ---- */

int tmpl_apply_filter(struct rctx *c, int fid, struct val v, struct val *args, size_t nargs,
                 struct str **kwn, struct val *kwv, size_t nkw, struct val *out);
int tmpl_apply_test(struct rctx *c, int tid, struct val v, struct val *args, size_t nargs,
               bool *out);

/* ---- lexer / parser ---- */

struct lexed {
    struct token *v;
    size_t n, cap;
};
int tmpl_lex(struct tmpl *t, struct lexed *out, struct err_info *ei);
int tmpl_parse_tokens(struct tmpl *t, const struct lexed *lx, struct err_info *ei);

#endif
