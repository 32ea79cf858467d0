/* tok: tokenizer built from a GGUF file's tokenizer.ggml.* metadata, reproducing llama.cpp's
 * llama_tokenize / llama_token_to_piece / llama_detokenize id for id.
 *
 * tokenizer.ggml.model selects the kind:
 *  - "llama": SentencePiece: pieces with scores, merged best-score-first with a heap
 *    (O(n log n)), byte fallback <0xHH>, a leading space prefix;
 *  - "gpt2": byte-level BPE: text bytes mapped to printable chars (GPT-2's byte<->unicode
 *    map), cut into words by the pre-tokenizer tokenizer.ggml.pre names (default/gpt-2,
 *    llama-bpe and the Llama 3 family, qwen2, deepseek-llm, deepseek-coder, falcon, mpt,
 *    starcoder, refact, smollm and llama.cpp's aliases of these), then merged by the rank of
 *    tokenizer.ggml.merges (lowest first, ties leftmost, heap: O(n log n));
 *  - "gemma4" (Gemma's BPE, also used for Gemma 3 vocabularies): spaces become U+2581, the
 *    text is split only at newlines, merged by rank on raw UTF-8, <0xHH> byte fallback.
 * In all kinds control tokens are recognised in the text only when asked, user-defined ones
 * always; the end-of-generation set comes from the eos/eot/eom ids, the FIM pad/repo/sep ids
 * and llama.cpp's list of end-of-turn texts.
 *
 * Untrusted metadata: ids, types, array types and lengths are checked (errors name the key);
 * a merge entry that is not "<token> <token>" is skipped (llama.cpp keeps it, but it can only
 * join symbols that are no tokens; Hugging Face refuses such files); an unknown model or
 * pre-tokenizer name is ERR_UNSUPPORTED. Invalid UTF-8 in the text reads as U+FFFD in BPE
 * vocabularies, as in llama.cpp.
 *
 * Where we differ from llama.cpp on purpose: the detokenizer streams and never applies
 * llama.cpp's optional "clean_spaces" rewrite (" ," -> ","), which llama.cpp's own streaming
 * output (token_to_piece) does not apply either; gemma4 user-defined tokens such as "▁▁" print
 * as spaces (llama.cpp prints them raw).
 *
 * The vocabulary is copied out of the GGUF buffer at load, so a tok_vocab outlives the file.
 * Nothing here allocates per call except where documented. */
#ifndef LMPIPE_TOK_TOK_H
#define LMPIPE_TOK_TOK_H

#include "../gguf/gguf.h"
#include "../util/err.h"
#include "../util/vocab.h"

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
bool tok_add_bos(const struct tok_vocab *v);      /* the file's default (SPM, Llama 3, gemma4:
                                                     true; other BPE: false) */
bool tok_add_eos(const struct tok_vocab *v);      /* the file's default (SPM: false); the caller
                                                     appends tok_eos() itself when this is true */
bool tok_is_eog(const struct tok_vocab *v, int32_t id); /* end of generation (eos, eot, ...) */
int tok_token_type(const struct tok_vocab *v, int32_t id); /* enum tok_type, or -1 */
const char *tok_model_name(const struct tok_vocab *v);  /* "llama", "gpt2" or "gemma4" */

/* The vocabulary view (util/vocab.h) for samp and gram: built by tok_load, valid until tok_free.
 * Bytes are what tok_piece_bytes prints with special = true (control tokens: their text). */
const struct vocab_view *tok_view(const struct tok_vocab *v);

/* Raw piece text as stored in the vocabulary (e.g. "▁Once", "<0x7B>", byte-level "Ġworld"),
 * with its length; it is also NUL-terminated ("" for an invalid id). */
const char *tok_piece_raw(const struct tok_vocab *v, int32_t id, size_t *len);

/* Tokenize text[0..len). Writes up to cap ids to out and sets *n_out to the number the text
 * needs (which may exceed cap: then returns ERR_LIMIT and the caller can retry larger).
 * parse_special: recognise control token texts such as "<s>" or "<|im_start|>" in the input
 * (user-defined ones are always recognised). add_bos with no BOS in the vocabulary:
 * ERR_STATE. Allocates scratch proportional to len, freed before returning. */
int tok_encode(const struct tok_vocab *v, const char *text, size_t len, bool add_bos,
               bool parse_special, int32_t *out, size_t cap, size_t *n_out);

/* The bytes a token stands for when printed: byte tokens become their byte, "▁" becomes " "
 * (SPM, gemma4), byte-level BPE chars become their bytes ("Ġ" -> " "). Control tokens give ""
 * unless `special` is true (then their text). Returns the length written (at most cap; the
 * piece is cut if cap is too small) and never more than cap. */
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
