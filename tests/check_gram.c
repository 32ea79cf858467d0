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
    struct gram *g = parse_ok("root ::= <[12]>");
    struct gram_matcher m;
    ck_assert_int_eq(gram_matcher_init(&m, g, NULL, NULL), 0);
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
    struct gram *g = parse_ok("root ::= .* | [\\x00-\\x10]");
    struct gram_matcher m;
    ck_assert_int_eq(gram_matcher_init(&m, g, NULL, NULL), 0);
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
    struct gram *g = parse_ok("root ::= [0-9]{3,60000} \".\"");
    struct gram_matcher m;
    ck_assert_int_eq(gram_matcher_init(&m, g, NULL, NULL), 0);
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
    struct gram *g = parse_ok("root ::= \"ab\" \"c\"+ | \"x\"");
    struct gram_matcher m;
    ck_assert_int_eq(gram_matcher_init(&m, g, NULL, NULL), 0);
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
    g = parse_ok("root ::= \"\\u00e9\"");
    ck_assert_int_eq(gram_matcher_init(&m, g, NULL, NULL), 0);
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

START_TEST(test_match_bounds)
{
    /* 3 * 2^n stacks after n "a": each may close with "b" or with "c" later, and the top is an "a"
     * of either alternative or the innermost closer; past GRAM_MAX_STACKS the feed is ERR_LIMIT (a
     * clear error, the state unchanged), never a hang */
    struct gram *g = parse_ok("root ::= x\nx ::= \"a\" x \"b\" | \"a\" x \"c\" | \"\"");
    struct gram_matcher m;
    ck_assert_int_eq(gram_matcher_init(&m, g, NULL, NULL), 0);
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
    struct gram *g = parse_ok("root ::= v\nv ::= \"[\" (v (\",\" v)*)? \"]\" | [0-9]");
    struct gram_matcher m;
    ck_assert_int_eq(gram_matcher_init(&m, g, NULL, NULL), 0);
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
    tcase_add_test(tc, test_match_bounds);
    tcase_add_test(tc, test_match_deep);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
