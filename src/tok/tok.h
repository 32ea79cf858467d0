/* tok: tokenizer built from a GGUF file's tokenizer.ggml.* metadata.
 *
 * First slice: SentencePiece-style vocabularies (tokenizer.ggml.model = "llama"): pieces with
 * scores, merged best-score-first with a heap (O(n log n)), byte fallback <0xHH>, a leading
 * space prefix as llama.cpp does, control tokens recognised in the text only when asked.
 *
 * The vocabulary is copied out of the GGUF buffer at load, so a tok_vocab outlives the file.
 * Nothing here allocates per call except where documented. */
#ifndef LMPIPE_TOK_TOK_H
#define LMPIPE_TOK_TOK_H

#include "../gguf/gguf.h"
#include "../util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tok_type { /* tokenizer.ggml.token_type values (llama.cpp numbering) */
    TOK_T_UNDEFINED = 0,
    TOK_T_NORMAL = 1,
    TOK_T_UNKNOWN = 2,
    TOK_T_CONTROL = 3,
    TOK_T_USER_DEFINED = 4,
    TOK_T_UNUSED = 5,
    TOK_T_BYTE = 6,
};

struct tok_vocab;

/* Build from GGUF metadata; validates every id and array length. */
int tok_load(struct tok_vocab **out, const struct gguf_ctx *g, struct err_info *ei);
void tok_free(struct tok_vocab *v); /* NULL-safe */

uint32_t tok_n_vocab(const struct tok_vocab *v);
int32_t tok_bos(const struct tok_vocab *v);       /* -1 if none */
int32_t tok_eos(const struct tok_vocab *v);       /* -1 if none */
bool tok_add_bos(const struct tok_vocab *v);      /* the file's default (SPM: true) */
bool tok_add_eos(const struct tok_vocab *v);      /* the file's default (SPM: false); the caller
                                                     appends tok_eos() itself when this is true */
bool tok_is_eog(const struct tok_vocab *v, int32_t id); /* end of generation (eos, eot, ...) */
int tok_token_type(const struct tok_vocab *v, int32_t id); /* enum tok_type, or -1 */
const char *tok_model_name(const struct tok_vocab *v);  /* "llama", ... */

/* Raw piece text as stored in the vocabulary (e.g. "▁Once", "<0x7B>"), with its length; it is
 * also NUL-terminated ("" for an invalid id). */
const char *tok_piece_raw(const struct tok_vocab *v, int32_t id, size_t *len);

/* Tokenize text[0..len). Writes up to cap ids to out and sets *n_out to the number the text
 * needs (which may exceed cap: then returns ERR_LIMIT and the caller can retry larger).
 * parse_special: recognise control/user-defined token texts such as "<s>" in the input. */
int tok_encode(const struct tok_vocab *v, const char *text, size_t len, bool add_bos,
               bool parse_special, int32_t *out, size_t cap, size_t *n_out);

/* The bytes a token stands for when printed: byte tokens become their byte, "▁" becomes " ".
 * Control tokens give "" unless `special` is true (then their text). Returns the length
 * written (at most cap; the piece is cut if cap is too small) and never more than cap. */
size_t tok_piece_bytes(const struct tok_vocab *v, int32_t id, bool special, char *buf,
                       size_t cap);

/* Streaming detokenizer that never emits half a UTF-8 character. Like llama_detokenize: the
 * first token pushed (whatever it is, BOS included) may lose one leading space when the vocab
 * adds a space prefix; every byte that does not start a valid UTF-8 sequence (strict: no
 * overlong forms, surrogates or > U+10FFFF) becomes U+FFFD. */
struct tok_detok {
    char pend[8]; /* bytes of an unfinished UTF-8 sequence */
    size_t n_pend;
    bool at_start; /* drop the SPM leading space of the first piece */
    bool special;  /* print control/unknown token texts (false after tok_detok_init) */
};
void tok_detok_init(struct tok_detok *d, const struct tok_vocab *v);
/* Append token id; writes complete UTF-8 text to out and returns the number of bytes written.
 * cap >= tok_detok_max(v) is always enough; with less, output beyond cap is dropped. */
size_t tok_detok_push(struct tok_detok *d, const struct tok_vocab *v, int32_t id, char *out,
                      size_t cap);
/* End of stream: flush whatever is pending (each byte of an incomplete sequence becomes
 * U+FFFD, as llama.cpp's reference text does). cap >= 12 is always enough. */
size_t tok_detok_flush(struct tok_detok *d, char *out, size_t cap);
/* Most bytes one tok_detok_push can write for this vocabulary. */
size_t tok_detok_max(const struct tok_vocab *v);

#endif
