/* check_gram: the GBNF parser (every construct of llama.cpp's syntax, and a list of bad grammars
 * with their line:column errors), the byte matcher (accept / reject tables, UTF-8 split anywhere,
 * counted repetition, nullable rules, ambiguity, state bounds, compaction), the grammars/ folder
 * (every file parses and accepts / rejects its examples), llama.cpp's grammars when
 * LMPIPE_LLAMA_GRAMMARS names their folder, and the token level on real vocabularies (the trie
 * mask against a brute-force check of every token at many positions, forced runs, end of
 * generation, control tokens). */
#include "gram/gram.h"
#include "tok/tok.h"
#include "tutil.h"

#include <dirent.h>
#include <stdint.h>

/* ---- helpers ---- */

static struct gram *parse_ok(const char *src)
{
    struct gram *g = NULL;
    struct err_info ei;
    err_clear(&ei);
    int rc = gram_parse(src, strlen(src), &g, &ei);
    ck_assert_msg(rc == 0, "grammar should parse: %s\n%s", ei.msg, src);
    ck_assert_ptr_nonnull(g);
    return g;
}

/* A byte-level matcher for grammar src; returns the grammar (the caller frees both). */
static struct gram *byte_matcher(const char *src, struct gram_matcher *m)
{
    struct gram *g = parse_ok(src);
    ck_assert_int_eq(gram_matcher_init(m, g, NULL, NULL), 0);
    return g;
}

/* 'A' the whole text is accepted, 'P' it is a viable prefix only, 'R' rejected, 'E' other error. */
static char run_bytes(struct gram_matcher *m, const char *s, size_t n)
{
    gram_matcher_reset(m);
    int rc = gram_matcher_feed(m, s, n, NULL);
    if (rc == ERR_REJECTED) return 'R';
    if (rc) return 'E';
    return gram_matcher_can_end(m) ? 'A' : 'P';
}

struct mcase {
    const char *text;
    char want; /* A P R */
};

/* Check a table of texts against one grammar, byte-wise and split into every 1-, 2- and 3-byte
 * chunking, so partial UTF-8 across feeds is covered. */
static void check_table(const char *src, const struct mcase *cs, size_t n)
{
    struct gram *g = parse_ok(src);
    struct gram_matcher m;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(gram_matcher_init(&m, g, NULL, &ei), 0);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(cs[i].text);
        char got = run_bytes(&m, cs[i].text, len);
        ck_assert_msg(got == cs[i].want, "grammar:\n%s\ntext \"%s\": got %c, want %c", src, cs[i].text, got,
                      cs[i].want);
        for (size_t chunk = 1; chunk <= 3; chunk++) {
            gram_matcher_reset(&m);
            int rc = 0;
            for (size_t at = 0; at < len && !rc; at += chunk)
                rc = gram_matcher_feed(&m, cs[i].text + at, at + chunk <= len ? chunk : len - at, NULL);
            char got2 = rc == ERR_REJECTED ? 'R' : rc ? 'E' : gram_matcher_can_end(&m) ? 'A' : 'P';
            ck_assert_msg(got2 == cs[i].want, "text \"%s\" in chunks of %zu: got %c, want %c", cs[i].text, chunk,
                          got2, cs[i].want);
        }
    }
    gram_matcher_free(&m);
    gram_free(g);
}

#define TABLE(src, ...)                                              \
    do {                                                             \
        static const struct mcase cs_[] = {__VA_ARGS__};             \
        check_table(src, cs_, sizeof cs_ / sizeof cs_[0]);           \
    } while (0)

/* ---- parser: constructs ---- */

START_TEST(test_parse_constructs)
{
    /* alternatives, groups, comments, newlines inside groups, | continuing a line */
    TABLE("# comment\nroot ::= \"a\" | \"b\" ( \"c\"\n  | \"d\" ) # trailing\n",
          {"a", 'A'}, {"bc", 'A'}, {"bd", 'A'}, {"b", 'P'}, {"c", 'R'}, {"ab", 'R'});
    TABLE("root ::= \"x\" |\n  \"y\"\n", {"x", 'A'}, {"y", 'A'});
    TABLE("root ::= x y\r\nx ::= \"1\"\r\ny ::= \"2\"\r\n", {"12", 'A'}, {"1", 'P'}, {"2", 'R'});
    TABLE("root ::=\n  \"late\"", {"late", 'A'});
    /* escapes */
    TABLE("root ::= \"\\n\\r\\t\\\\\\\"\\[\\]\\x41\\u00e9\\U0001F600\"", {"\n\r\t\\\"[]A\xc3\xa9\xf0\x9f\x98\x80", 'A'});
    /* classes: ranges, several, negation, escapes inside, '-' at the ends, ']' escaped */
    TABLE("root ::= [a-cx] [^a-z\\n] [-+] [a-] [\\]] [\\x30-\\x39]",
          {"aA-a]5", 'A'}, {"xZ+-]0", 'A'}, {"d", 'R'}, {"ab", 'R'}, {"a\n", 'R'}, {"a\xc3\xa9+a]9", 'A'});
    /* any char; a literal repeated as a whole; stacked quantifiers */
    TABLE("root ::= . \"ab\"* \"c\"", {"zc", 'A'}, {"\xe2\x82\xac" "ababc", 'A'}, {"zac", 'R'}, {"zabab", 'P'});
    TABLE("root ::= \"a\"+ \"b\"? \"c\"*", {"a", 'A'}, {"aab", 'A'}, {"abcc", 'A'}, {"b", 'R'}, {"abb", 'R'}, {"", 'P'});
    TABLE("root ::= (\"a\"{2}){3}", {"aaaaaa", 'A'}, {"aaaaa", 'P'}, {"aaaaaaa", 'R'});
    TABLE("root ::= \"a\"{2,} \"b\"", {"aab", 'A'}, {"aaaaab", 'A'}, {"ab", 'R'});
    TABLE("root ::= \"a\"{ 1 , 3 } \"b\"", {"ab", 'A'}, {"aaab", 'A'}, {"aaaab", 'R'}, {"b", 'R'});
    TABLE("root ::= \"a\"{0} \"b\"", {"b", 'A'}, {"ab", 'R'});
    TABLE("root ::= \"a\"{0,0}", {"", 'A'}, {"a", 'R'});
    TABLE("root ::= \"a\"*?", {"", 'A'}, {"aaa", 'A'});
    /* names with digits and dashes, rules used before their definition, empty literal */
    TABLE("root ::= my-rule2 \"\"\nmy-rule2 ::= \"ok\"", {"ok", 'A'});
    TABLE("root ::= \"\" | \"a\"", {"", 'A'}, {"a", 'A'});
    TABLE("ws ::= | \" \"\nroot ::= ws \"x\" ws", {"x", 'A'}, {" x ", 'A'}, {"  x", 'R'});
    /* UTF-8 in literals and classes */
    TABLE("root ::= \"日本\" [ぁ-ゟ]+", {"日本ぁゟ", 'A'}, {"日本", 'P'}, {"日本a", 'R'});
}
END_TEST

START_TEST(test_parse_tokens_syntax)
{
    /* token references parse without a vocabulary and never match bytes */
    TABLE("root ::= \"a\" <[12]> | \"b\" !<[3]> | \"c\" <think> | \"d\" !<|im_end|>",
          {"a", 'P'}, {"b", 'P'}, {"c", 'P'}, {"d", 'P'}, {"a<", 'R'}, {"c<think>", 'R'});
    struct gram_matcher m;
    struct gram *g = byte_matcher("root ::= <[12]>", &m);
    ck_assert(!gram_matcher_complete(&m)); /* a token can still come */
    ck_assert(!gram_matcher_can_end(&m));
    gram_matcher_free(&m);
    gram_free(g);
}
END_TEST

/* ---- parser: bad grammars ---- */

struct bad {
    const char *src;
    int code;
    const char *where; /* "line L:C:" */
    const char *why;   /* substring of the reason */
};

static const struct bad bad_grammars[] = {
    {"", ERR_NOT_FOUND, "line 1:1:", "no 'root' rule"},
    {"# only a comment\n", ERR_NOT_FOUND, "line 2:1:", "no 'root'"},
    {"rot ::= \"a\"", ERR_NOT_FOUND, "line 1:12:", "no 'root'"},
    {"root ::= foo", ERR_NOT_FOUND, "line 1:10:", "undefined rule 'foo'"},
    {"root ::= \"a\"\nroot ::= \"b\"", ERR_DUPLICATE, "line 2:1:", "already defined at line 1:1"},
    {"root ::= root \"a\"", ERR_SYNTAX, "line 1:1:", "left recursion"},
    {"root ::= x\nx ::= x", ERR_SYNTAX, "line 2:1:", "left recursion: 'x' -> 'x'"},
    {"root ::= a \"1\"\na ::= b \"2\"\nb ::= a", ERR_SYNTAX, "line 2:1:", "'a' -> 'b' -> 'a'"},
    {"root ::= x root \"a\" | \"b\"\nx ::= \"c\"?", ERR_SYNTAX, "line 1:1:", "left recursion"},
    {"root ::= (\"x\"? root)*", ERR_SYNTAX, "line 1:1:", "left recursion"},
    {"root ::= a\na ::= b* \"x\"\nb ::= \"y\" | a", ERR_SYNTAX, "line 2:1:", "left recursion"},
    {"root ::= \"abc", ERR_SYNTAX, "line 1:10:", "unterminated string"},
    {"root ::= [a-", ERR_SYNTAX, "line 1:10:", "unterminated character class"},
    {"root ::= [a-\\", ERR_SYNTAX, "line 1:13:", "unexpected end of input after"},
    {"root ::= [ab", ERR_SYNTAX, "line 1:10:", "unterminated character class"},
    {"root ::= []", ERR_SYNTAX, "line 1:10:", "empty character class"},
    {"root ::= [^]", ERR_SYNTAX, "line 1:10:", "empty character class"},
    {"root ::= [z-a]", ERR_SYNTAX, "line 1:11:", "before its start"},
    {"root ::= \"\\q\"", ERR_SYNTAX, "line 1:11:", "unknown escape"},
    {"root ::= [\\-]", ERR_SYNTAX, "line 1:11:", "unknown escape"},
    {"root ::= \"\\x4\"", ERR_SYNTAX, "line 1:11:", "2 hex digits"},
    {"root ::= \"\\u12G4\"", ERR_SYNTAX, "line 1:11:", "4 hex digits"},
    {"root ::= \"\\U00110000\"", ERR_RANGE, "line 1:11:", "past U+10FFFF"},
    {"root ::= *", ERR_SYNTAX, "line 1:10:", "nothing to repeat"},
    {"root ::= \"a\" | +", ERR_SYNTAX, "line 1:16:", "nothing to repeat"},
    {"root ::= \"\"*", ERR_SYNTAX, "line 1:12:", "nothing to repeat"},
    {"root ::= \"a\"{0}*", ERR_SYNTAX, "line 1:16:", "nothing to repeat"},
    {"root ::= \"a\"{3,1}", ERR_SYNTAX, "line 1:13:", "below its minimum"},
    {"root ::= \"a\"{70000}", ERR_LIMIT, "line 1:14:", "exceeds 65535"},
    {"root ::= \"a\"{99999999999999999999999}", ERR_LIMIT, "line 1:14:", "exceeds"},
    {"root ::= \"a\"{1,", ERR_SYNTAX, "line 1:16:", "expecting '}'"},
    {"root ::= \"a\"{", ERR_SYNTAX, "line 1:14:", "expecting a number"},
    {"root ::= \"a\"{,2}", ERR_SYNTAX, "line 1:14:", "expecting a number"},
    {"root ::= \"a\"{2 3}", ERR_SYNTAX, "line 1:16:", "expecting ',' or '}'"},
    {"root ::= \"a\" )", ERR_SYNTAX, "line 1:14:", "unexpected ')'"},
    {"root ::= (\"a\"", ERR_SYNTAX, "line 1:14:", "expecting ')'"},
    {"root ::= (\"a\" ]", ERR_SYNTAX, "line 1:15:", "expecting ')'"},
    {"root \"a\"", ERR_SYNTAX, "line 1:6:", "expecting '::='"},
    {"root\n::= \"a\"", ERR_SYNTAX, "line 1:5:", "expecting '::='"},
    {"::= \"a\"", ERR_SYNTAX, "line 1:1:", "expecting a rule name"},
    {"root ::= \"a\"\n| \"b\"", ERR_SYNTAX, "line 2:1:", "expecting a rule name"},
    {"root ::= \"a\"\n\n  x", ERR_SYNTAX, "line 3:4:", "expecting '::='"},
    {"root ::= a_b", ERR_SYNTAX, "line 1:11:", "unexpected '_'"},
    {"root ::= <[abc]>", ERR_SYNTAX, "line 1:12:", "token id"},
    {"root ::= <[12>", ERR_SYNTAX, "line 1:14:", "expecting ']'"},
    {"root ::= <[99999999999]>", ERR_RANGE, "line 1:10:", "too large"},
    {"root ::= <think", ERR_SYNTAX, "line 1:10:", "unterminated <token>"},
    {"root ::= !x", ERR_SYNTAX, "line 1:11:", "expecting '<'"},
    {"root ::= \"a\xff\"", ERR_SYNTAX, "line 1:12:", "invalid UTF-8"},
    {"root ::= [\xc0\x80]", ERR_SYNTAX, "line 1:11:", "invalid UTF-8"},
    {"root ::= \"\xed\xa0\x80\"", ERR_SYNTAX, "line 1:11:", "invalid UTF-8"},
    {"root ::= \"caf\xc3\xa9\" ]", ERR_SYNTAX, "line 1:17:", "unexpected ']'"},
};

static void check_bad(const char *src, size_t len, int code, const char *where, const char *why)
{
    struct gram *g = (struct gram *)1;
    struct err_info ei;
    err_clear(&ei);
    int rc = gram_parse(src, len, &g, &ei);
    ck_assert_msg(rc == code, "grammar %s: code %d (%s), want %d", src, rc, ei.msg, code);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(ei.code, code);
    ck_assert_msg(strncmp(ei.msg, where, strlen(where)) == 0, "grammar %s: message \"%s\" should start \"%s\"",
                  src, ei.msg, where);
    ck_assert_msg(strstr(ei.msg, why), "grammar %s: message \"%s\" should say \"%s\"", src, ei.msg, why);
    ck_assert_uint_le(ei.offset, len);
}

START_TEST(test_parse_bad)
{
    const struct bad *b = &bad_grammars[_i];
    check_bad(b->src, strlen(b->src), b->code, b->where, b->why);
}
END_TEST

START_TEST(test_parse_limits)
{
    /* NUL byte inside the text */
    check_bad("root ::= \"a\0\"", 13, ERR_SYNTAX, "line 1:12:", "NUL byte");
    check_bad("root ::= \"a\" \0", 14, ERR_SYNTAX, "line 1:14:", "NUL");
    /* nesting deeper than GRAM_MAX_DEPTH */
    size_t depth = GRAM_MAX_DEPTH + 10, len = 9 + 2 * depth + 3;
    char *s = malloc(len + 1);
    memcpy(s, "root ::= ", 9);
    for (size_t i = 0; i < depth; i++) s[9 + i] = '(';
    memcpy(s + 9 + depth, "\"a\"", 3);
    for (size_t i = 0; i < depth; i++) s[12 + depth + i] = ')';
    check_bad(s, len, ERR_LIMIT, "line 1:", "nested deeper");
    /* ... and exactly at the limit it parses */
    size_t ok = GRAM_MAX_DEPTH;
    len = 9 + 2 * ok + 3;
    memcpy(s + 9 + ok, "\"a\"", 3);
    for (size_t i = 0; i < ok; i++) s[12 + ok + i] = ')';
    struct gram *g = NULL;
    ck_assert_int_eq(gram_parse(s, len, &g, NULL), 0);
    gram_free(g);
    free(s);
    /* oversized text: refused before any parsing */
    size_t big = (size_t)GRAM_MAX_SRC + 1;
    char *t = malloc(big);
    memset(t, ' ', big);
    check_bad(t, big, ERR_LIMIT, "line 1:1:", "more than");
    /* a long rule name */
    memset(t, 'n', 300);
    memcpy(t + 300, " ::= \"a\"", 8);
    check_bad(t, 308, ERR_LIMIT, "line 1:1:", "rule name longer");
    /* too many rules: 70000 one-character rules chained */
    size_t cap = 70000 * 24, n = 0;
    char *r = malloc(cap);
    n += (size_t)snprintf(r + n, cap - n, "root ::= r0\n");
    for (int i = 0; i < 70000; i++) n += (size_t)snprintf(r + n, cap - n, "r%d ::= \"a\" r%d\n", i, i + 1);
    check_bad(r, n, ERR_LIMIT, "line ", "more than 65536 rules");
    free(r);
    free(t);
    /* NULL text with a length is refused, NULL out too */
    ck_assert_int_eq(gram_parse(NULL, 3, &g, NULL), ERR_INVALID);
    ck_assert_int_eq(gram_parse("root ::= \"a\"", 12, NULL, NULL), ERR_INVALID);
    gram_free(NULL);
}
END_TEST

/* ---- matcher ---- */

START_TEST(test_match_utf8)
{
    /* a negated class takes any valid character; classes are over code points */
    TABLE("root ::= [^a]+",
          {"\xc3\xa9", 'A'}, {"\xe2\x82\xac", 'A'}, {"\xf0\x9f\x98\x80", 'A'}, {"\xf4\x8f\xbf\xbf", 'A'},
          {"\xe2\x82", 'P'}, {"\xf0\x9f", 'P'},
          {"\xc3", 'P'}, {"a", 'R'}, {"\xc3\xa9" "a", 'R'},
          /* invalid UTF-8 is never accepted: lone continuation, overlong, surrogate, > U+10FFFF,
           * lead without continuation, bytes that are never UTF-8 */
          {"\x80", 'R'}, {"\xbf", 'R'}, {"\xc0\x80", 'R'}, {"\xc1\xbf", 'R'}, {"\xe0\x80\x80", 'R'},
          {"\xe0\x9f\xbf", 'R'}, {"\xed\xa0\x80", 'R'}, {"\xed\xbf\xbf", 'R'}, {"\xf0\x80\x80\x80", 'R'},
          {"\xf0\x8f\xbf\xbf", 'R'}, {"\xf4\x90\x80\x80", 'R'}, {"\xf5\x80\x80\x80", 'R'}, {"\xff", 'R'},
          {"\xc3" "a", 'R'}, {"\xe2\x82" "a", 'R'}, {"\xe2" "\xc3\xa9", 'R'});
    /* the partial-character check narrows as bytes arrive: [ぁ-ゟ] is U+3041..U+309F */
    TABLE("root ::= [ぁ-ゟ]",
          {"\xe3", 'P'}, {"\xe3\x81", 'P'}, {"\xe3\x81\x81", 'A'}, {"\xe3\x82\x9f", 'A'},
          {"\xe3\x80", 'R'}, {"\xe3\x83", 'R'}, {"\xe4", 'R'}, {"\xc3", 'R'}, {"\xf0", 'R'}, {"a", 'R'});
    /* an ASCII-only class refuses a lead byte at once */
    TABLE("root ::= [a-z]*", {"abc", 'A'}, {"ab\xc3", 'R'}, {"", 'A'});
    /* single non-ASCII characters and the edges of the code space */
    TABLE("root ::= \"\\u00e9\" | \"\\U0010FFFF\" | [\\u0080-\\u07ff] \"!\"",
          {"\xc3\xa9", 'A'}, {"\xf4\x8f\xbf\xbf", 'A'}, {"\xc2\x80!", 'A'}, {"\xdf\xbf!", 'A'},
          {"\xe0\xa0\x80!", 'R'}, {"\xc3\xa8", 'P'}, {"\xc3\xa8!", 'A'}, {"\xc3\xa9!!", 'R'});
    /* code point 0 never matches, not even '.' (llama.cpp ends strings there) */
    struct gram_matcher m;
    struct gram *g = byte_matcher("root ::= .* | [\\x00-\\x10]", &m);
    ck_assert_int_eq(run_bytes(&m, "a\0", 2), 'R');
    ck_assert_int_eq(run_bytes(&m, "\0", 1), 'R');
    ck_assert_int_eq(run_bytes(&m, "\x01", 1), 'A');
    gram_matcher_free(&m);
    gram_free(g);
}
END_TEST

START_TEST(test_match_repetition)
{
    TABLE("root ::= \"a\"{2,4}", {"", 'P'}, {"a", 'P'}, {"aa", 'A'}, {"aaaa", 'A'}, {"aaaaa", 'R'});
    TABLE("root ::= (\"ab\" | \"c\"){1,2} \"!\"", {"ab!", 'A'}, {"cab!", 'A'}, {"abcc!", 'R'}, {"!", 'R'}, {"c", 'P'});
    /* big counts are counters, not unrolled rules: this compiles and runs instantly */
    TABLE("root ::= [0-9]{0,65535} \"x\" ([a-z]{1000}){1,2}", {"123x", 'P'}, {"x", 'P'}, {"xa", 'P'});
    struct gram_matcher m;
    struct gram *g = byte_matcher("root ::= [0-9]{3,60000} \".\"", &m);
    char *buf = malloc(60002);
    memset(buf, '7', 60001);
    buf[60000] = '.';
    ck_assert_int_eq(run_bytes(&m, buf, 60001), 'A');
    buf[60000] = '7';
    buf[60001] = '.';
    ck_assert_int_eq(run_bytes(&m, buf, 60002), 'R'); /* 60001 digits */
    ck_assert_int_eq(run_bytes(&m, buf, 2), 'P');
    free(buf);
    gram_matcher_free(&m);
    gram_free(g);
}
END_TEST

START_TEST(test_match_nullable)
{
    /* nullable rules, nullable repetition bodies (counted and unbounded) */
    TABLE("root ::= a b\na ::= \"x\"?\nb ::= \"y\"*", {"", 'A'}, {"x", 'A'}, {"yy", 'A'}, {"xyy", 'A'}, {"yx", 'R'});
    TABLE("root ::= (\"a\"?)* \"b\"", {"b", 'A'}, {"aaab", 'A'}, {"a", 'P'}, {"ba", 'R'});
    TABLE("root ::= (\"a\"? \"b\"?){2,3} \"!\"", {"!", 'A'}, {"ab!", 'A'}, {"ababab!", 'A'}, {"abababa", 'R'},
          {"bbb!", 'A'}, {"bbbb", 'R'}, {"aaa!", 'A'}, {"aaaa", 'R'});
    TABLE("root ::= x{3}\nx ::= \"\" | \"q\"", {"", 'A'}, {"qqq", 'A'}, {"qqqq", 'R'});
    /* right recursion does not grow the stack per character it ends (tail frames are dropped) */
    TABLE("root ::= \"(\" root \")\" | \"\"", {"", 'A'}, {"((()))", 'A'}, {"(()", 'P'}, {"())", 'R'});
    TABLE("list ::= item list | \"\"\nitem ::= \"a\"\nroot ::= list \".\"", {".", 'A'}, {"aaa.", 'A'});
}
END_TEST

START_TEST(test_match_ambiguity)
{
    /* several parses alive at once, joined where they meet */
    TABLE("root ::= (\"a\" | \"a\" \"b\" | \"ab\" \"c\")+", {"a", 'A'}, {"ab", 'A'}, {"abc", 'A'}, {"abcab", 'A'},
          {"ac", 'R'}, {"abcc", 'R'});
    TABLE("root ::= x x\nx ::= \"a\" | \"aa\"", {"aa", 'A'}, {"aaa", 'A'}, {"aaaa", 'A'}, {"aaaaa", 'R'}, {"a", 'P'});
    TABLE("root ::= [a-z]* \"ing\"", {"sing", 'A'}, {"singing", 'A'}, {"ingx", 'P'}, {"in", 'P'}, {"ING", 'R'});
}
END_TEST

START_TEST(test_match_state)
{
    struct gram_matcher m;
    struct gram *g = byte_matcher("root ::= \"ab\" \"c\"+ | \"x\"", &m);
    ck_assert(!gram_matcher_can_end(&m));
    /* a rejected feed changes nothing and says how far it got */
    size_t ok = 99;
    ck_assert_int_eq(gram_matcher_feed(&m, "a", 1, &ok), 0);
    ck_assert_uint_eq(ok, 1);
    ck_assert_int_eq(gram_matcher_feed(&m, "bcd", 3, &ok), ERR_REJECTED);
    ck_assert_uint_eq(ok, 2);
    ck_assert_int_eq(gram_matcher_try(&m, "bc", 2), 0);
    ck_assert_int_eq(gram_matcher_try(&m, "c", 1), ERR_REJECTED);
    ck_assert_int_eq(gram_matcher_feed(&m, "bc", 2, NULL), 0);
    ck_assert(gram_matcher_can_end(&m));
    ck_assert(!gram_matcher_complete(&m)); /* more c's may follow */
    uint64_t set[4];
    ck_assert_int_eq(gram_matcher_next_bytes(&m, set), 1);
    ck_assert((set['c' >> 6] >> ('c' & 63)) & 1);
    gram_matcher_reset(&m);
    ck_assert_int_eq(gram_matcher_next_bytes(&m, set), 2);
    ck_assert_int_eq(gram_matcher_feed(&m, "x", 1, NULL), 0);
    ck_assert(gram_matcher_can_end(&m));
    ck_assert(gram_matcher_complete(&m)); /* nothing can follow "x" */
    ck_assert_int_eq(gram_matcher_next_bytes(&m, set), 0);
    ck_assert_int_eq(gram_matcher_feed(&m, "", 0, NULL), 0);
    ck_assert_int_eq(gram_matcher_feed(&m, "y", 1, NULL), ERR_REJECTED);
    /* a pending partial character: not an end, not complete */
    gram_matcher_free(&m);
    gram_free(g);
    g = byte_matcher("root ::= \"\\u00e9\"", &m);
    ck_assert_int_eq(gram_matcher_feed(&m, "\xc3", 1, NULL), 0);
    ck_assert(!gram_matcher_can_end(&m) && !gram_matcher_complete(&m));
    ck_assert_int_eq(gram_matcher_feed(&m, "\xa9", 1, NULL), 0);
    ck_assert(gram_matcher_can_end(&m) && gram_matcher_complete(&m));
    gram_matcher_free(&m);
    gram_matcher_free(&m); /* twice, and on a zeroed matcher: safe */
    struct gram_matcher z;
    memset(&z, 0, sizeof z);
    gram_matcher_free(&z);
    ck_assert_int_eq(gram_matcher_feed(&z, "a", 1, NULL), ERR_INVALID);
    gram_free(g);
}
END_TEST

START_TEST(test_match_check_text)
{
    struct gram *g = parse_ok("root ::= \"{\" [0-9]+ (\",\" [0-9]+)* \"}\"");
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(gram_check(g, "{1,23}", 6, &ei), 0);
    ck_assert_int_eq(ei.code, 0);
    ck_assert_int_eq(gram_check(g, "{1,2x}", 6, &ei), ERR_REJECTED);
    ck_assert_uint_eq(ei.offset, 4);
    ck_assert_str_eq(ei.msg, "text line 1:5: byte 0x78 cannot continue the grammar; expected , 0-9 }");
    err_clear(&ei);
    ck_assert_int_eq(gram_check(g, "{1,", 3, &ei), ERR_REJECTED);
    ck_assert_uint_eq(ei.offset, 3);
    ck_assert_str_eq(ei.msg, "text line 1:4: the text ends before the grammar does; expected 0-9");
    err_clear(&ei);
    ck_assert_int_eq(gram_check(g, "{1}\n", 4, &ei), ERR_REJECTED);
    ck_assert_str_eq(ei.msg, "text line 1:4: byte 0x0A cannot continue the grammar; expected nothing more");
    gram_free(g);
    g = parse_ok("root ::= \"a\\n\" [^a]");
    err_clear(&ei);
    ck_assert_int_eq(gram_check(g, "a\n\xc3\xa9x", 5, &ei), ERR_REJECTED);
    ck_assert_str_eq(ei.msg, "text line 2:2: byte 0x78 cannot continue the grammar; expected nothing more");
    err_clear(&ei);
    ck_assert_int_eq(gram_check(g, "a\na", 3, &ei), ERR_REJECTED);
    ck_assert_uint_eq(ei.offset, 2);
    ck_assert_msg(strstr(ei.msg, "expected \\x01-` b-\\x7F \\xC2-\\xF4"), "%s", ei.msg);
    ck_assert_int_eq(gram_check(NULL, "a", 1, NULL), ERR_INVALID);
    gram_free(g);
}
END_TEST

START_TEST(test_match_bounds)
{
    /* 3 * 2^n stacks after n "a": each may close with "b" or with "c" later, and the top is an "a"
     * of either alternative or the innermost closer; past GRAM_MAX_STACKS the feed is ERR_LIMIT (a
     * clear error, the state unchanged), never a hang */
    struct gram_matcher m;
    struct gram *g = byte_matcher("root ::= x\nx ::= \"a\" x \"b\" | \"a\" x \"c\" | \"\"", &m);
    ck_assert_int_eq(gram_matcher_feed(&m, "aaaaaaaaaa", 10, NULL), 0); /* 3072 stacks */
    ck_assert_int_eq(gram_matcher_feed(&m, "bcbcbcbcbc", 10, NULL), 0);
    ck_assert(gram_matcher_can_end(&m));
    gram_matcher_reset(&m);
    size_t ok;
    ck_assert_int_eq(gram_matcher_feed(&m, "aaaaaaaaaaaaaaaa", 16, &ok), ERR_LIMIT);
    ck_assert_uint_eq(ok, 10); /* the 11th "a" would make 6144 */
    ck_assert_int_eq(gram_matcher_feed(&m, "a", 1, NULL), 0); /* unchanged: still at the start */
    gram_matcher_free(&m);
    gram_free(g);
}
END_TEST

START_TEST(test_match_deep)
{
    /* deep nesting: 150k open brackets make ~450k live frames; caches are compacted around them
     * inside and between feeds, and the closing run is accepted */
    struct gram_matcher m;
    struct gram *g = byte_matcher("root ::= v\nv ::= \"[\" (v (\",\" v)*)? \"]\" | [0-9]", &m);
    size_t n = 150000;
    char *s = malloc(2 * n + 1);
    memset(s, '[', n);
    s[n] = '7';
    memset(s + n + 1, ']', n);
    ck_assert_int_eq(gram_matcher_feed(&m, s, n / 2, NULL), 0);
    ck_assert_int_eq(gram_matcher_feed(&m, s + n / 2, n / 2 + 1, NULL), 0);
    ck_assert(!gram_matcher_can_end(&m));
    ck_assert_int_eq(gram_matcher_feed(&m, s + n + 1, n, NULL), 0);
    ck_assert(gram_matcher_can_end(&m) && gram_matcher_complete(&m));
    ck_assert_int_eq(run_bytes(&m, s, 2 * n + 1), 'A');
    ck_assert_int_eq(run_bytes(&m, s, 2 * n), 'P'); /* one ']' short */
    s[2 * n - 1] = ',';
    ck_assert_int_eq(run_bytes(&m, s, 2 * n), 'P');
    s[2 * n] = ',';
    ck_assert_int_eq(run_bytes(&m, s, 2 * n + 1), 'R');
    free(s);
    gram_matcher_free(&m);
    gram_free(g);
}
END_TEST


/* ---- grammars/ and llama.cpp's grammars ---- */

/* Undo the escapes of an example line: \n \r \t \\ \" \xHH. */
static size_t unescape(const char *s, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            out[k++] = s[i];
            continue;
        }
        char e = s[++i];
        if (e == 'n') out[k++] = '\n';
        else if (e == 'r') out[k++] = '\r';
        else if (e == 't') out[k++] = '\t';
        else if (e == 'x' && i + 2 < n) {
            unsigned v = 0;
            ck_assert_int_eq(sscanf(s + i + 1, "%2x", &v), 1);
            out[k++] = (char)v;
            i += 2;
        } else out[k++] = e;
    }
    return k;
}

/* Run the "# accept: "..."" / "# prefix:" / "# reject:" examples of a grammar file; returns how
 * many of each kind it found (accept, prefix, reject). */
static void run_examples(const char *path, const char *src, size_t len, int counts[3])
{
    struct gram *g = NULL;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(gram_parse(src, len, &g, &ei) == 0, "%s: %s", path, ei.msg);
    struct gram_matcher m;
    ck_assert_int_eq(gram_matcher_init(&m, g, NULL, NULL), 0);
    static const char *kinds[3] = {"# accept: \"", "# prefix: \"", "# reject: \""};
    static const char want[3] = {'A', 'P', 'R'};
    for (const char *line = src; line && line < src + len; line = memchr(line, '\n', (size_t)(src + len - line))) {
        while (line < src + len && *line == '\n') line++;
        const char *eol = memchr(line, '\n', (size_t)(src + len - line));
        if (!eol) eol = src + len;
        for (int k = 0; k < 3; k++) {
            size_t kl = strlen(kinds[k]);
            if ((size_t)(eol - line) < kl + 1 || strncmp(line, kinds[k], kl) != 0) continue;
            ck_assert_msg(eol[-1] == '"', "%s: example line must end with a quote", path);
            char buf[1024];
            size_t n = (size_t)(eol - 1 - (line + kl));
            ck_assert_uint_lt(n, sizeof buf);
            n = unescape(line + kl, n, buf);
            char got = run_bytes(&m, buf, n);
            ck_assert_msg(got == want[k], "%s: example %.*s: got %c, want %c", path, (int)(eol - line), line, got,
                          want[k]);
            counts[k]++;
        }
    }
    gram_matcher_free(&m);
    gram_free(g);
}

/* Every .gbnf in a folder, sorted; returns how many. */
static int list_gbnf(const char *dir, char names[][256], int cap)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l > 5 && l < 256 && strcmp(e->d_name + l - 5, ".gbnf") == 0 && n < cap) strcpy(names[n++], e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    return n;
}

START_TEST(test_grammars_folder)
{
    static char names[64][256];
    int n = list_gbnf("grammars", names, 64);
    ck_assert_int_ge(n, 6);
    for (int i = 0; i < n; i++) {
        char path[300];
        snprintf(path, sizeof path, "grammars/%.255s", names[i]);
        size_t len;
        char *src = tutil_read(path, &len);
        ck_assert_ptr_nonnull(src);
        int counts[3] = {0, 0, 0};
        run_examples(path, src, len, counts);
        ck_assert_msg(counts[0] >= 2 && counts[2] >= 2, "%s: needs at least 2 accept and 2 reject examples", path);
        free(src);
    }
}
END_TEST

/* Our strings for llama.cpp's grammars (its grammars/ folder, commit 34af94cd); the expected
 * answers are llama.cpp's, as its own engine gives them for these strings. */
static const struct {
    const char *file, *text;
    char want;
} llama_cases[] = {
    {"arithmetic.gbnf", "1+2=3\n", 'A'},
    {"arithmetic.gbnf", "x = (a+b)\ny=2\n", 'A'},
    {"arithmetic.gbnf", "(1+2) = 3", 'P'},
    {"arithmetic.gbnf", "(1 + 2) = 3", 'R'}, /* a term cannot start with a space */
    {"arithmetic.gbnf", "x = (a+b)*c\n", 'R'},  /* after "=" one term only */
    {"arithmetic.gbnf", "1+2", 'P'},
    {"arithmetic.gbnf", "1++2=3\n", 'R'},
    {"arithmetic.gbnf", "A=1\n", 'R'},
    {"c.gbnf", "int main(){return 0;}", 'A'},
    {"c.gbnf", "int f(int x){while(x<10){x = x+1;}return x;}", 'A'},
    {"c.gbnf", "char g(){/* hi */}", 'A'},
    {"c.gbnf", "int main(", 'P'},
    {"c.gbnf", "void main(){}", 'R'},
    {"c.gbnf", "int main() {}", 'R'},
    {"chess.gbnf", "1. e4 e5\n2. Nf3 Nc6\n", 'A'},
    {"chess.gbnf", "1. d4 d5\n2. c4 dxc4\n3. O-O-O Qxd8+\n", 'A'},
    {"chess.gbnf", "1. e4 e5\n", 'P'},
    {"chess.gbnf", "1. e9 e5\n", 'R'},
    {"chess.gbnf", "2. e4 e5\n", 'R'},
    {"english.gbnf", "Hello, world!", 'A'},
    {"english.gbnf", "It's 5 o'clock.\nTime\tfor tea", 'A'},
    {"english.gbnf", "Hello ", 'P'},
    {"english.gbnf", "caf\xc3\xa9", 'R'},
    {"english.gbnf", " leading", 'R'},
    {"english.gbnf", "two  spaces", 'R'},
    {"japanese.gbnf", "\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf\xe3\x80\x81\xe4\xb8\x96\xe7\x95\x8c", 'A'},
    {"japanese.gbnf", "\xe3\x82\xab\xe3\x82\xbf\xe3\x82\xab\xe3\x83\x8a \xe6\xbc\xa2\xe5\xad\x97", 'A'},
    {"japanese.gbnf", "\xe3\x81\x82 ", 'P'},
    {"japanese.gbnf", "abc", 'R'},
    {"japanese.gbnf", "\xe3\x81\x82\xef\xbc\x81", 'R'},
    {"json.gbnf", "{}", 'A'},
    {"json.gbnf", "{\"a\": [1, 2.5, -3e7, true, null, {\"b\": \"\\u00e9\\n\"}]}", 'A'},
    {"json.gbnf", "{\n  \"k\": \"v\"\n}", 'A'},
    {"json.gbnf", "{\"a\": 1", 'P'},
    {"json.gbnf", "[1]", 'R'},
    {"json.gbnf", "{\"a\": 1.5e10}", 'R'}, /* its exponent rule: [0-9] [1-9]{0,15} */
    {"json.gbnf", "{\"a\": \"\\/\"}", 'R'},  /* no \/ escape there */
    {"json.gbnf", "{\"a\": \"\x7f\"}", 'R'},
    {"json.gbnf", "{\"a\":01}", 'R'},
    {"json_arr.gbnf", "[\n1,\n\"two\"]", 'A'},
    {"json_arr.gbnf", "[\n]", 'A'},
    {"json_arr.gbnf", "[1]", 'R'},
    {"json_arr.gbnf", "[\n{\"a\": []}]", 'A'},
    {"json_arr.gbnf", "[\n1,", 'P'},
    {"list.gbnf", "- a\n- b\n", 'A'},
    {"list.gbnf", "- caf\xc3\xa9\n", 'A'},
    {"list.gbnf", "- a", 'P'},
    {"list.gbnf", "- a\xe2\x80\xa8" "b\n", 'R'},
    {"list.gbnf", "* a\n", 'R'},
};

START_TEST(test_llama_grammars)
{
    const char *dir = getenv("LMPIPE_LLAMA_GRAMMARS");
    if (!dir || !*dir) {
        printf("check_gram: LMPIPE_LLAMA_GRAMMARS is not set: skipping llama.cpp's grammars\n");
        return;
    }
    static char names[64][256];
    int n = list_gbnf(dir, names, 64), checked = 0;
    ck_assert_int_gt(n, 0);
    for (int i = 0; i < n; i++) {
        char path[1400];
        snprintf(path, sizeof path, "%.1000s/%.255s", dir, names[i]);
        size_t len;
        char *src = tutil_read(path, &len);
        ck_assert_ptr_nonnull(src);
        struct gram *g = NULL;
        struct err_info ei;
        err_clear(&ei);
        ck_assert_msg(gram_parse(src, len, &g, &ei) == 0, "%s: %s", path, ei.msg);
        struct gram_matcher m;
        ck_assert_int_eq(gram_matcher_init(&m, g, NULL, NULL), 0);
        for (size_t k = 0; k < sizeof llama_cases / sizeof llama_cases[0]; k++) {
            if (strcmp(llama_cases[k].file, names[i]) != 0) continue;
            char got = run_bytes(&m, llama_cases[k].text, strlen(llama_cases[k].text));
            ck_assert_msg(got == llama_cases[k].want, "%s: \"%s\": got %c, llama.cpp says %c", names[i],
                          llama_cases[k].text, got, llama_cases[k].want);
            checked++;
        }
        gram_matcher_free(&m);
        gram_free(g);
        free(src);
    }
    printf("check_gram: %d llama.cpp grammars parsed, %d strings checked\n", n, checked);
}
END_TEST


/* ---- token level ---- */

struct tvocab {
    struct gguf_ctx gg;
    struct tok_vocab *tv;
    const struct vocab_view *v;
    struct gram_vocab gv;
};

static void tv_open(struct tvocab *x, const char *rel)
{
    struct err_info ei;
    err_clear(&ei);
    memset(x, 0, sizeof *x);
    ck_assert_msg(gguf_open(tutil_shared(rel), &x->gg, &ei) == 0, "%s: %s", rel, ei.msg);
    ck_assert_msg(tok_load(&x->tv, &x->gg, &ei) == 0, "%s: %s", rel, ei.msg);
    x->v = tok_view(x->tv);
    ck_assert_msg(gram_vocab_init(&x->gv, x->v, &ei) == 0, "%s: %s", rel, ei.msg);
    ck_assert_uint_eq(x->gv.n_vocab, x->v->n_vocab);
}

static void tv_close(struct tvocab *x)
{
    gram_vocab_free(&x->gv);
    gram_vocab_free(&x->gv); /* twice: safe */
    tok_free(x->tv);
    gguf_free(&x->gg);
}

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

static bool bit(const uint64_t *b, int32_t id) { return (b[id >> 6] >> (id & 63)) & 1; }

/* The reference for one token, from the byte matcher and the token rules of gram.h alone: a
 * text token is allowed when its bytes continue the grammar, an end-of-generation token when
 * the grammar may end, nothing else (these grammars name no tokens). `ref` is a byte-level
 * matcher standing at the same position. */
static bool ref_allowed(struct gram_matcher *ref, const struct vocab_view *v, int32_t id)
{
    unsigned f = vocab_flags(v, id);
    size_t len;
    const char *s = vocab_bytes(v, id, &len);
    if (f & VOCAB_UNUSED) return false;
    if (f & VOCAB_EOG) return gram_matcher_can_end(ref);
    if ((f & VOCAB_CONTROL) || len == 0) return false;
    return gram_matcher_try(ref, s, len) == 0;
}

/* Random walks through a grammar: at every position the trie mask must equal the reference
 * for every token of the vocabulary, gram_tok_check must agree, and gram_tok_forced must be
 * right by definition; then a random allowed token is accepted (end-of-generation tokens are
 * taken only as the last step). */
static void walk_compare(struct tvocab *x, const char *src, int walks, int steps)
{
    struct gram *g = parse_ok(src);
    struct gram_matcher m, ref;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(gram_matcher_init(&m, g, &x->gv, &ei) == 0, "%s", ei.msg);
    ck_assert_int_eq(gram_matcher_init(&ref, g, NULL, NULL), 0);
    uint32_t nv = x->gv.n_vocab;
    uint64_t *bits = calloc(x->gv.n_words + 1, sizeof *bits);
    int32_t *allowed = malloc(nv * sizeof *allowed);
    for (int w = 0; w < walks; w++) {
        gram_matcher_reset(&m);
        gram_matcher_reset(&ref);
        for (int step = 0; step < steps; step++) {
            int rc = gram_tok_mask(&m, bits);
            uint32_t na = 0, nbad = 0, first_bad = 0;
            for (uint32_t id = 0; id < nv; id++) { /* plain ifs: a ck_assert per token is slow */
                bool want = ref_allowed(&ref, x->v, (int32_t)id);
                if (bit(bits, (int32_t)id) != want && !nbad++) first_bad = id;
                if (want) allowed[na++] = (int32_t)id;
            }
            size_t blen;
            const char *bs = vocab_bytes(x->v, (int32_t)first_bad, &blen);
            ck_assert_msg(nbad == 0, "walk %d step %d: %u tokens differ, first %u \"%.*s\": mask %d\n%s", w, step,
                          nbad, first_bad, (int)blen, bs, bit(bits, (int32_t)first_bad), src);
            ck_assert_int_eq(rc, na ? 0 : ERR_DEAD_END);
            for (int k = 0; k < 64; k++) { /* check() on a sample of ids and on every allowed one */
                int32_t id = k < 32 && na ? allowed[rnd(na)] : (int32_t)rnd(nv);
                ck_assert_int_eq(gram_tok_check(&m, id) == 0, bit(bits, id));
            }
            int32_t run[4];
            size_t nrun = 99;
            ck_assert_int_eq(gram_tok_forced(&m, run, 4, &nrun), 0);
            ck_assert_uint_eq(nrun > 0, na == 1);
            if (nrun) ck_assert_int_eq(run[0], allowed[0]);
            if (!na) break;
            int32_t t = allowed[rnd(na)];
            bool eog = vocab_flags(x->v, t) & VOCAB_EOG;
            for (uint32_t tries = 0; eog && na > x->gv.n_eog && tries < 100 && step + 1 < steps; tries++) {
                t = allowed[rnd(na)];
                eog = vocab_flags(x->v, t) & VOCAB_EOG;
            }
            ck_assert_int_eq(gram_tok_accept(&m, t), 0);
            if (eog) {
                ck_assert(gram_matcher_complete(&m));
                break;
            }
            size_t len;
            const char *s = vocab_bytes(x->v, t, &len);
            ck_assert_int_eq(gram_matcher_feed(&ref, s, len, NULL), 0);
            ck_assert_int_eq(gram_matcher_can_end(&m), gram_matcher_can_end(&ref));
            ck_assert_int_eq(gram_matcher_complete(&m), gram_matcher_complete(&ref));
        }
    }
    free(bits);
    free(allowed);
    gram_matcher_free(&ref);
    gram_matcher_free(&m);
    gram_free(g);
}

static const char *walk_grammars[] = {
    NULL, /* grammars/json.gbnf */
    "root ::= [ぁ-ゟ一-鿿]{1,12} (\"。\" | \"、\")?\n",
    "root ::= \"id-\" [0-9]{2,5} (\",\" \" \"? [a-z]{1,3}){0,3} \"\\n\"\n",
    "root ::= (\"Q: \" [^\\n]{0,40} \"\\n\"){1,2}\n",
    "root ::= x*\nx ::= \"ab\" | \"a\" | \"\\u00e9t\\u00e9\" | \"\\U0001F600\" | [^abc\\n] [0-9]?\n",
    "root ::= \"<\" [^<>\\n]{2,30} \">\" [a-z ]{0,8}\n", /* counted classes: chains that end */
};

static void walk_vocab(const char *rel, int walks, int steps)
{
    struct tvocab x;
    tv_open(&x, rel);
    size_t len;
    char *json = tutil_read("grammars/json.gbnf", &len);
    ck_assert_ptr_nonnull(json);
    rng_state = 12345;
    for (size_t k = 0; k < sizeof walk_grammars / sizeof walk_grammars[0]; k++)
        walk_compare(&x, walk_grammars[k] ? walk_grammars[k] : json, walks, steps);
    free(json);
    tv_close(&x);
}

static int quick(void) { return getenv("LMPIPE_TEST_QUICK") && atoi(getenv("LMPIPE_TEST_QUICK")) > 0; }

START_TEST(test_tok_mask_stories) { walk_vocab("models/stories260K-F32.gguf", quick() ? 4 : 12, 40); }
END_TEST

START_TEST(test_tok_mask_spm) { walk_vocab("vocab/ggml-vocab-llama-spm.gguf", 2, quick() ? 6 : 16); }
END_TEST

START_TEST(test_tok_mask_starcoder) { walk_vocab("vocab/ggml-vocab-starcoder.gguf", 2, quick() ? 5 : 14); }
END_TEST

START_TEST(test_tok_mask_qwen2) { walk_vocab("vocab/ggml-vocab-qwen2.gguf", 1, quick() ? 5 : 14); }
END_TEST

/* A matcher over x for grammar src (which must resolve against the vocabulary). */
static struct gram *tok_matcher(struct tvocab *x, const char *src, struct gram_matcher *m)
{
    struct gram *g = parse_ok(src);
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(gram_matcher_init(m, g, &x->gv, &ei) == 0, "%s: %s", src, ei.msg);
    return g;
}

static int32_t id_of(struct tvocab *x, const char *text)
{
    for (uint32_t id = 0; id < x->v->n_vocab; id++) {
        size_t len;
        const char *s = vocab_bytes(x->v, (int32_t)id, &len);
        if (len == strlen(text) && memcmp(s, text, len) == 0 && !(x->v->flags[id] & VOCAB_UNUSED)) return (int32_t)id;
    }
    ck_abort_msg("no token \"%s\"", text);
    return -1;
}

static uint32_t count_bits(const uint64_t *b, uint32_t nw)
{
    uint32_t n = 0;
    for (uint32_t w = 0; w < nw; w++) n += (uint32_t)__builtin_popcountll(b[w]);
    return n;
}

START_TEST(test_tok_eog_control)
{
    struct tvocab x;
    tv_open(&x, "vocab/ggml-vocab-qwen2.gguf");
    int32_t im_end = id_of(&x, "<|im_end|>"), im_start = id_of(&x, "<|im_start|>"), eot = id_of(&x, "<|endoftext|>");
    int32_t yes = id_of(&x, "yes");
    uint64_t *bits = calloc(x.gv.n_words, sizeof *bits);
    struct gram_matcher m;
    struct gram *g = tok_matcher(&x, "root ::= \"yes\" | \"no\"", &m);
    /* end of generation only where the grammar may end; control tokens never as text */
    ck_assert_int_eq(gram_tok_check(&m, im_end), ERR_REJECTED);
    ck_assert_int_eq(gram_tok_check(&m, im_start), ERR_REJECTED);
    ck_assert_int_eq(gram_tok_mask(&m, bits), 0);
    ck_assert(!bit(bits, im_end) && !bit(bits, eot) && !bit(bits, im_start) && bit(bits, yes));
    ck_assert_int_eq(gram_tok_accept(&m, im_end), ERR_REJECTED);
    ck_assert_int_eq(gram_tok_accept(&m, yes), 0);
    ck_assert(gram_matcher_can_end(&m) && gram_matcher_complete(&m));
    ck_assert_int_eq(gram_tok_mask(&m, bits), 0);
    ck_assert_uint_eq(count_bits(bits, x.gv.n_words), x.gv.n_eog); /* only the end tokens */
    for (uint32_t k = 0; k < x.gv.n_eog; k++) ck_assert(bit(bits, x.gv.eog[k]));
    ck_assert_int_eq(gram_tok_check(&m, yes), ERR_REJECTED);
    ck_assert_int_eq(gram_tok_check(&m, im_start), ERR_REJECTED);
    ck_assert_int_eq(gram_tok_accept(&m, im_end), 0);
    ck_assert(gram_matcher_complete(&m));
    ck_assert_int_eq(gram_tok_check(&m, -1), ERR_INVALID);
    ck_assert_int_eq(gram_tok_check(&m, (int32_t)x.gv.n_vocab), ERR_INVALID);
    gram_matcher_free(&m);
    gram_free(g);

    /* a grammar naming control tokens (by text and by id) takes them exactly there */
    char src[256];
    snprintf(src, sizeof src, "root ::= <|im_start|> \"user\" <[%d]> \"!\"", im_end);
    g = tok_matcher(&x, src, &m);
    ck_assert_int_eq(gram_tok_mask(&m, bits), 0);
    ck_assert_uint_eq(count_bits(bits, x.gv.n_words), 1);
    ck_assert(bit(bits, im_start));
    int32_t run[8];
    size_t n;
    ck_assert_int_eq(gram_tok_forced(&m, run, 8, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(run[0], im_start);
    ck_assert_int_eq(gram_tok_accept(&m, im_start), 0);
    ck_assert_int_eq(gram_tok_accept(&m, id_of(&x, "user")), 0);
    ck_assert_int_eq(gram_tok_mask(&m, bits), 0); /* an end token named mid-grammar */
    ck_assert_uint_eq(count_bits(bits, x.gv.n_words), 1);
    ck_assert(bit(bits, im_end));
    ck_assert_int_eq(gram_tok_accept(&m, im_end), 0);
    ck_assert(!gram_matcher_complete(&m) && !gram_matcher_can_end(&m));
    ck_assert_int_eq(gram_tok_accept(&m, id_of(&x, "!")), 0);
    ck_assert(gram_matcher_complete(&m));
    gram_matcher_free(&m);
    gram_free(g);

    /* !<token>: any text token but that one; never a control, end or unused token */
    g = tok_matcher(&x, "root ::= !<[9]> \".\"", &m);
    ck_assert_int_eq(gram_tok_mask(&m, bits), 0);
    for (uint32_t id = 0; id < x.gv.n_vocab; id++) {
        size_t len;
        vocab_bytes(x.v, (int32_t)id, &len);
        bool text = len && !(x.v->flags[id] & (VOCAB_CONTROL | VOCAB_EOG | VOCAB_UNUSED));
        if (bit(bits, (int32_t)id) != (text && id != 9)) ck_abort_msg("!<[9]>: token %u wrong", id);
    }
    ck_assert_int_eq(gram_tok_accept(&m, 10), 0);
    ck_assert_int_eq(gram_tok_check(&m, id_of(&x, ".")), 0);
    gram_matcher_free(&m);
    gram_free(g);

    /* user-defined tokens are text: <tool_call> by its text resolves to the user token */
    g = tok_matcher(&x, "root ::= <tool_call> \"{}\"", &m);
    int32_t tc = id_of(&x, "<tool_call>");
    ck_assert(x.v->flags[tc] & VOCAB_USER);
    ck_assert_int_eq(gram_tok_check(&m, tc), 0);
    gram_matcher_free(&m);
    gram_free(g);

    /* references the vocabulary cannot resolve: line:column of the reference */
    struct err_info ei;
    const char *bad[] = {"root ::= \"a\" <not-a-token>", "root ::= \"a\" |\n  <[999999]>"};
    const char *where[] = {"line 1:14:", "line 2:3:"};
    for (int k = 0; k < 2; k++) {
        g = parse_ok(bad[k]);
        err_clear(&ei);
        ck_assert_int_eq(gram_matcher_init(&m, g, &x.gv, &ei), ERR_NOT_FOUND);
        ck_assert_msg(strncmp(ei.msg, where[k], strlen(where[k])) == 0, "%s", ei.msg);
        gram_matcher_free(&m);
        gram_free(g);
    }
    free(bits);
    tv_close(&x);
}
END_TEST

START_TEST(test_tok_forced)
{
    struct tvocab x;
    tv_open(&x, "models/stories260K-F32.gguf"); /* one end token: </s> */
    ck_assert_uint_eq(x.gv.n_eog, 1);
    uint64_t *bits = calloc(x.gv.n_words, sizeof *bits);
    struct gram_matcher m;
    struct gram *g = tok_matcher(&x, "root ::= \"a\" <[300]> <[301]> \"b\"", &m);
    int32_t run[8];
    size_t n = 99;
    ck_assert_int_eq(gram_tok_forced(&m, run, 8, &n), 0);
    ck_assert_uint_eq(n, 0); /* "a": its token and its byte token <0x61> */
    int32_t a = id_of(&x, "a");
    ck_assert_int_eq(gram_tok_accept(&m, a), 0);
    ck_assert_int_eq(gram_tok_forced(&m, run, 8, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(run[0], 300);
    ck_assert_int_eq(run[1], 301);
    ck_assert_int_eq(gram_tok_forced(&m, run, 1, &n), 0); /* cap */
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(gram_tok_check(&m, 300), 0); /* forced() did not move the matcher */
    ck_assert_int_eq(gram_tok_check(&m, 301), ERR_REJECTED);
    ck_assert_int_eq(gram_tok_accept(&m, 300), 0);
    ck_assert_int_eq(gram_tok_accept(&m, 301), 0);
    ck_assert_int_eq(gram_tok_forced(&m, run, 8, &n), 0);
    ck_assert_uint_eq(n, 0); /* "b" and <0x62> */
    ck_assert_int_eq(gram_tok_accept(&m, id_of(&x, "b")), 0);
    ck_assert_int_eq(gram_tok_forced(&m, run, 8, &n), 0); /* only </s> can follow, and it ends */
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(run[0], x.v->eos);
    gram_matcher_free(&m);
    gram_free(g);

    /* a forced run across a literal the vocabulary spells in one way only: check each step of
     * the run by definition (exactly one allowed token) */
    g = tok_matcher(&x, "root ::= \"x\" ( <[310]> | <[311]> ) \"q\"{0,1}", &m);
    ck_assert_int_eq(gram_tok_accept(&m, id_of(&x, "x")), 0);
    ck_assert_int_eq(gram_tok_forced(&m, run, 8, &n), 0);
    ck_assert_uint_eq(n, 0); /* two named tokens */
    ck_assert_int_eq(gram_tok_mask(&m, bits), 0);
    ck_assert_uint_eq(count_bits(bits, x.gv.n_words), 2);
    gram_matcher_free(&m);
    gram_free(g);
    free(bits);
    tv_close(&x);
}
END_TEST

START_TEST(test_tok_utf8_bytes)
{
    /* SentencePiece byte fallback: "é!" as two byte tokens and a piece */
    struct tvocab x;
    tv_open(&x, "vocab/ggml-vocab-llama-spm.gguf");
    uint64_t *bits = calloc(x.gv.n_words, sizeof *bits);
    struct gram_matcher m;
    struct gram *g = tok_matcher(&x, "root ::= \"\\u00e9!\" | \"\\u00e8?\"", &m);
    int32_t c3 = id_of(&x, "\xc3"), a9 = -1, a8 = -1, c2 = id_of(&x, "\xc2");
    for (uint32_t id = 0; id < x.v->n_vocab; id++) {
        size_t len;
        const char *s = vocab_bytes(x.v, (int32_t)id, &len);
        if ((x.v->flags[id] & VOCAB_BYTE) && len == 1 && (unsigned char)s[0] == 0xa9) a9 = (int32_t)id;
        if ((x.v->flags[id] & VOCAB_BYTE) && len == 1 && (unsigned char)s[0] == 0xa8) a8 = (int32_t)id;
    }
    ck_assert(a9 >= 0 && a8 >= 0);
    ck_assert_int_eq(gram_tok_mask(&m, bits), 0);
    ck_assert(bit(bits, c3) && !bit(bits, c2) && !bit(bits, a9));
    ck_assert_int_eq(gram_tok_accept(&m, c3), 0); /* the matcher now holds half a character */
    ck_assert(!gram_matcher_can_end(&m));
    ck_assert_int_eq(gram_tok_mask(&m, bits), 0);
    ck_assert(bit(bits, a9) && bit(bits, a8) && !bit(bits, c3));
    ck_assert_uint_eq(count_bits(bits, x.gv.n_words), 2);
    ck_assert_int_eq(gram_tok_accept(&m, a8), 0);
    ck_assert_int_eq(gram_tok_check(&m, id_of(&x, "!")), ERR_REJECTED);
    ck_assert_int_eq(gram_tok_accept(&m, id_of(&x, "?")), 0);
    ck_assert(gram_matcher_complete(&m));
    gram_matcher_free(&m);
    gram_free(g);
    free(bits);
    tv_close(&x);

    /* byte-level BPE: qwen2 tokens of at most two bytes spell 3- and 4-byte characters, so
     * tokens end inside characters; each is checked, accepted, and the pieces join up */
    tv_open(&x, "vocab/ggml-vocab-qwen2.gguf");
    const char *text = "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xf0\x9f\x98\x80\xf0\x9f\xa6\x99";
    size_t tlen = strlen(text);
    g = tok_matcher(&x, "root ::= [^a-z]+", &m);
    uint32_t partial = 0;
    for (size_t at = 0; at < tlen;) {
        int32_t best = -1;
        size_t blen = 0;
        for (uint32_t id = 0; id < x.v->n_vocab; id++) {
            size_t len;
            const char *s = vocab_bytes(x.v, (int32_t)id, &len);
            if (x.v->flags[id] & (VOCAB_CONTROL | VOCAB_UNUSED)) continue;
            if (len > blen && len <= 2 && len <= tlen - at && memcmp(s, text + at, len) == 0) best = (int32_t)id, blen = len;
        }
        ck_assert_int_ge(best, 0);
        ck_assert_int_eq(gram_tok_check(&m, best), 0);
        ck_assert_int_eq(gram_tok_accept(&m, best), 0);
        at += blen;
        if (!gram_matcher_can_end(&m)) partial++;
    }
    ck_assert_uint_gt(partial, 3);
    ck_assert(gram_matcher_can_end(&m));
    /* a lone continuation byte is never allowed between characters, a lead byte is */
    for (uint32_t id = 0; id < x.v->n_vocab; id++) {
        size_t len;
        const char *s = vocab_bytes(x.v, (int32_t)id, &len);
        if (len == 1 && ((unsigned char)s[0] & 0xc0) == 0x80) ck_assert_int_eq(gram_tok_check(&m, (int32_t)id), ERR_REJECTED);
        if (len == 1 && (unsigned char)s[0] == 0xe6) ck_assert_int_eq(gram_tok_check(&m, (int32_t)id), 0);
    }
    gram_matcher_free(&m);
    gram_free(g);
    tv_close(&x);
}
END_TEST

START_TEST(test_tok_dead_end)
{
    struct tvocab x;
    tv_open(&x, "models/stories260K-F32.gguf");
    uint64_t *bits = calloc(x.gv.n_words, sizeof *bits);
    struct gram_matcher m;
    /* after "a" the grammar wants code point 0, which never matches: no token at all */
    struct gram *g = tok_matcher(&x, "root ::= \"a\" [\\x00]", &m);
    ck_assert_int_eq(gram_tok_accept(&m, id_of(&x, "a")), 0);
    ck_assert(!gram_matcher_complete(&m)); /* a character element is still on top ... */
    ck_assert_int_eq(gram_tok_mask(&m, bits), ERR_DEAD_END); /* ... but nothing spells it */
    ck_assert_uint_eq(count_bits(bits, x.gv.n_words), 0);
    size_t n = 9;
    int32_t run[2];
    ck_assert_int_eq(gram_tok_forced(&m, run, 2, &n), 0);
    ck_assert_uint_eq(n, 0);
    gram_matcher_free(&m);
    gram_free(g);
    /* token operations need a vocabulary */
    g = byte_matcher("root ::= \"a\"", &m);
    ck_assert_int_eq(gram_tok_mask(&m, bits), ERR_STATE);
    ck_assert_int_eq(gram_tok_check(&m, 5), ERR_STATE);
    gram_matcher_free(&m);
    gram_free(g);
    free(bits);
    tv_close(&x);
    struct gram_vocab z;
    memset(&z, 0, sizeof z);
    gram_vocab_free(&z);
    ck_assert_int_eq(gram_vocab_init(&z, NULL, NULL), ERR_INVALID);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("gram");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_constructs);
    tcase_add_test(tc, test_parse_tokens_syntax);
    tcase_add_loop_test(tc, test_parse_bad, 0, (int)(sizeof bad_grammars / sizeof bad_grammars[0]));
    tcase_add_test(tc, test_parse_limits);
    suite_add_tcase(s, tc);
    tc = tcase_create("match");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_match_utf8);
    tcase_add_test(tc, test_match_repetition);
    tcase_add_test(tc, test_match_nullable);
    tcase_add_test(tc, test_match_ambiguity);
    tcase_add_test(tc, test_match_state);
    tcase_add_test(tc, test_match_check_text);
    tcase_add_test(tc, test_match_bounds);
    tcase_add_test(tc, test_match_deep);
    suite_add_tcase(s, tc);
    tc = tcase_create("grammars");
    tcase_add_test(tc, test_grammars_folder);
    tcase_add_test(tc, test_llama_grammars);
    suite_add_tcase(s, tc);
    tc = tcase_create("tok");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_tok_mask_stories);
    tcase_add_test(tc, test_tok_mask_spm);
    tcase_add_test(tc, test_tok_mask_starcoder);
    tcase_add_test(tc, test_tok_mask_qwen2);
    tcase_add_test(tc, test_tok_eog_control);
    tcase_add_test(tc, test_tok_forced);
    tcase_add_test(tc, test_tok_utf8_bytes);
    tcase_add_test(tc, test_tok_dead_end);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
