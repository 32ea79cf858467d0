/* seeds_gram_match: the corpus of fuzz_gram_match, written by seeds_gbnf.c (which picks the
 * text+NUL+bytes form from the directory name). */
#include "seeds_gbnf.c"
