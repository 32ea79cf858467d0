/* seeds_gbnf: writes the starting corpora of fuzz_gbnf and fuzz_gram_match into a directory,
 * at run time: every .gbnf file in grammars/ of the repository (read from the current directory),
 * a few small grammars covering each construct, and for fuzz_gram_match the same grammars
 * with the "text form" byte, a NUL and a matching text, plus generator-form seeds.
 *
 * usage: seeds_gbnf <dir> [ignored files...] (the directory name ending in gram_match picks
 * the fuzz_gram_match form) */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_written;

static int write_seed(const char *dir, const char *pre, const void *p, size_t n, const char *post)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/seed%03d", dir, n_written++);
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    size_t lp = pre ? strlen(pre) : 0, lq = post ? strlen(post) : 0;
    int bad = (lp && fwrite(pre, 1, lp, f) != lp) || fwrite(p, 1, n, f) != n || (lq && fwrite(post, 1, lq + 1, f) != lq + 1);
    if (post && !lq && fputc(0, f) == EOF) bad = 1;
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "seeds_gbnf: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

static const char *small[][2] = {
    {"root ::= \"a\" | \"b\" (\"c\" | [d-f]+)?", "bcd"},
    {"root ::= [^\"\\\\]* \"\\\"\" ws\nws ::= [ \\t\\n]{0,3}", "ab\xc3\xa9\" "},
    {"root ::= x{2,4} y*\nx ::= \"\\u00e9\" | .\ny ::= \"\" | \"z\"", "\xc3\xa9\xc3\xa9zz"},
    {"root ::= \"(\" root \")\" | \"\"", "(())"},
    {"root ::= <[3]> !<[4]> <|x|> \"t\"", "t"},
    {"# comment\nroot ::= a b\na ::= \"\\x41\"? # x\nb ::= [\\U0001F600-\\U0001F64F]+\r\n", "A\xf0\x9f\x98\x80"},
    {"root ::= (\"a\"? \"b\"?){2,3} \"!\"", "abab!"},
};

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    const char *dir = argv[1];
    size_t dl = strlen(dir);
    int match = dl >= 10 && strcmp(dir + dl - 10, "gram_match") == 0;
    int rc = 0;
    for (size_t k = 0; k < sizeof small / sizeof small[0]; k++) {
        if (match) rc |= write_seed(dir, "\x01", small[k][0], strlen(small[k][0]), small[k][1]);
        else rc |= write_seed(dir, NULL, small[k][0], strlen(small[k][0]), NULL);
    }
    DIR *d = opendir("grammars");
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".gbnf") != 0) continue;
        char path[600];
        snprintf(path, sizeof path, "grammars/%.500s", e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        static char buf[1 << 16];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (match) rc |= write_seed(dir, "\x01", buf, n, "{\"a\": [1, \"x\"]}");
        else rc |= write_seed(dir, NULL, buf, n, NULL);
    }
    if (d) closedir(d);
    if (match) { /* generator form: the even first byte and some structure bytes */
        static const unsigned char gen[][24] = {{0, 3, 2, 1, 0, 2, 7, 1, 0, 4, 3, 6, 1, 2, 0, 1, 'a', 'b'},
                                                {2, 1, 1, 2, 5, 3, 3, 7, 2, 0, 1, 9, 4, 8, 0, 0xc3, 0xa9, '"'}};
        for (size_t k = 0; k < 2; k++) rc |= write_seed(dir, NULL, gen[k], 18, NULL);
    }
    return rc;
}
