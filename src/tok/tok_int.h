/* tok_int: what the tokenizer's source files share and nothing outside src/tok may use.
 *
 * What: the vocabulary struct, the token attribute and special-slot numbering, the output
 * buffer every encoder appends to, and the entry points between tok.c (loading, special-token
 * partition, SentencePiece, detokenization), tok_bpe.c (merges, GPT-2 byte<->unicode map,
 * BPE words), tok_pre.c (pre-tokenizer splitting rules over unicode_tab.c's classes) and
 * tok_hash.c (the text -> id hash). Calls run one way: tok.c -> tok_bpe.c -> tok_pre.c, and
 * both tok.c and tok_bpe.c -> tok_hash.c.
 *
 * Why one private header: the BPE encoder needs the vocabulary's hash and attributes, and the
 * public tok.h should not show them. Symbols with external linkage keep the tok_ prefix.
 *
 * Invariants (after tok_load): see tok.c for the vocabulary; for BPE vocabularies every merge
 * pair is two token ids and every merge rank is unique (first occurrence of a pair wins). */
#ifndef LMPIPE_TOK_TOK_INT_H
#define LMPIPE_TOK_TOK_INT_H

#include "tok.h"

#include "../util/vocab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOK_MAX_VOCAB (1u << 24)
#define TOK_MAX_TEXT (1u << 20)    /* longest token text accepted */
#define TOK_MAX_INPUT (256u << 20) /* longest tok_encode input: keeps indices in uint32 */
#define TOK_MAX_MERGES (1u << 25)

/* TOK_KIND_BPE covers both byte-level BPE ("gpt2": text bytes mapped to printable unicode
 * chars first) and Gemma's raw-UTF-8 BPE ("gemma4": spaces escaped as U+2581, <0xHH> byte
 * fallback); tok_vocab.byte_level tells them apart. */
enum tok_kind { TOK_KIND_SPM, TOK_KIND_BPE };

/* Pre-tokenizers: each is a fixed list of splitting passes (tok_pre.c). */
enum tok_pre {
    TOK_PRE_DEFAULT, TOK_PRE_GPT2, TOK_PRE_LLAMA3, TOK_PRE_QWEN2, TOK_PRE_DEEPSEEK_LLM,
    TOK_PRE_DEEPSEEK_CODER, TOK_PRE_FALCON, TOK_PRE_STARCODER, TOK_PRE_GEMMA4,
};

/* llama.cpp token attributes: the file's type sets one bit, text rules add more. */
enum {
    A_UNKNOWN = 1 << 0, A_UNUSED = 1 << 1, A_NORMAL = 1 << 2, A_CONTROL = 1 << 3, A_USER = 1 << 4,
    A_BYTE = 1 << 5, A_RSTRIP = 1 << 6, A_LSTRIP = 1 << 7, A_EOG = 1 << 8,
};

enum { S_BOS, S_EOS, S_UNK, S_EOT, S_EOM, S_FPRE, S_FSUF, S_FMID, S_FPAD, S_FREP, S_FSEP, S_N };

struct tok_vocab {
    enum tok_kind kind;
    char model[16];
    char pre_name[32];
    uint32_t n;
    char *blob;      /* all texts back to back */
    size_t *off;     /* [n] text of id i = blob + off[i], len[i] bytes */
    uint32_t *len;   /* [n] */
    float *score;    /* [n] */
    int8_t *type;    /* [n] the file's enum tok_type */
    uint16_t *attr;  /* [n] A_* bits */
    uint64_t *ht;    /* [ht_mask + 1] hash << 32 | (id + 1), 0 = empty */
    uint32_t ht_mask;
    int32_t sid[S_N]; /* special ids, -1 = none */
    bool add_bos, add_eos, add_space_prefix;
    int32_t byte_tok[256];
    int32_t *special; /* ids with CONTROL/USER/UNKNOWN attr, longest text first */
    uint32_t n_special;
    size_t max_len; /* longest text, or longest printed piece if that is longer */

    /* ---- BPE only ---- */
    enum tok_pre pre;
    bool byte_level;     /* GPT-2 byte<->unicode mapping (false: raw UTF-8, "gemma4") */
    bool escape_spaces;  /* ' ' -> U+2581 before splitting ("gemma4") */
    bool ignore_merges;  /* a word that is a whole token is emitted as is (Llama 3) */
    uint32_t n_merges;   /* merges kept; rank = index */
    uint32_t n_merges_skipped;
    int32_t *m_left, *m_right, *m_res; /* [n_merges] part ids, result id or -1 */
    uint32_t *m_ht;      /* [m_mask + 1] merge index + 1, 0 = empty; key (left, right) */
    uint32_t m_mask;
    int32_t sym_byte[256];  /* byte-level: id of the unicode char byte b maps to, or -1 */
    int32_t sym_ascii[128]; /* raw BPE: id of the one-char ASCII text, or -1 */
    int32_t fallback[256];  /* id emitted for byte b of a symbol that is no token, or -1 */
    char *dec_blob;         /* byte-level: printed bytes of each NORMAL token */
    size_t *dec_off;        /* [n] */
    uint32_t *dec_len;      /* [n] */

    /* ---- the vocabulary view (util/vocab.h), built once at load ---- */
    struct vocab_view view;
    uint32_t *view_off;   /* [n + 1] */
    char *view_text;      /* printed bytes of every token (control ones: their text) */
    uint8_t *view_flags;  /* [n] */
};

/* Token ids appended in order; counting goes on past cap so the caller learns the size. */
struct tok_out {
    int32_t *ids;
    size_t cap, n;
};

static inline void tok_out_emit(struct tok_out *o, int32_t id)
{
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* tok_hash.c: the text -> id hash (below tok.c and tok_bpe.c) */
int tok_hash_build(struct tok_vocab *v, struct err_info *ei);
int32_t tok_lookup(const struct tok_vocab *v, const char *s, size_t n); /* id or -1 */
struct tok_key {
    const char *s;
    size_t n;
};
/* out[i] = tok_lookup(v, k[i].s, k[i].n), faster for many keys at once. */
void tok_lookup_many(const struct tok_vocab *v, const struct tok_key *k, size_t cnt, int32_t *out);

/* tok_bpe.c: read merges and build the BPE tables (after the tokens are loaded). */
int tok_bpe_load(struct tok_vocab *v, const struct gguf_ctx *g, struct err_info *ei);
void tok_bpe_free(struct tok_vocab *v);

/* Scratch reused across the fragments of one tok_encode call. */
struct tok_bpe_scratch {
    uint32_t *cp, *seg, *seg2; /* [cap_cp] code points, segment ends (two buffers) */
    uint8_t *fl;               /* [cap_cp] class flags */
    size_t cap_cp;
    char *word;                /* [cap_word] one encoded word */
    void *sym, *heap;          /* [cap_sym], [cap_heap] (types private to tok_bpe.c) */
    size_t cap_word, cap_sym, cap_heap;
};
void tok_bpe_scratch_free(struct tok_bpe_scratch *s);
/* One raw-text fragment (between special tokens) through pre-tokenizer and merges. */
int tok_bpe_fragment(const struct tok_vocab *v, struct tok_bpe_scratch *s, const char *text,
                     size_t len, struct tok_out *o);

/* ---- tok_pre.c ---- */

/* Class flags of a code point (unicode_tab.c): general category class and White_Space. */
enum {
    TOK_U_L = 1, TOK_U_N = 2, TOK_U_P = 4, TOK_U_S = 8, TOK_U_M = 16, TOK_U_Z = 32, TOK_U_C = 64,
    TOK_U_WS = 128,
};
extern const char tok_uni_version[];
extern const uint8_t tok_uni_latin1[256];
extern const uint32_t tok_uni_n;
extern const uint32_t tok_uni_start[];
extern const uint8_t tok_uni_flags[];
uint8_t tok_uni_class(uint32_t cp);

/* Pre-tokenizer of a tokenizer.ggml.pre name; false if unknown. *ignore_merges and *add_bos
 * are set to the name's defaults (llama.cpp's: true for the Llama 3 family). */
bool tok_pre_by_name(const char *name, size_t len, enum tok_pre *pre, bool *ignore_merges,
                     bool *add_bos);

/* Decode all of s[0..len) with util_utf8_decode (the lenient policy: as llama.cpp reads text).
 * escape_space turns ' ' into U+2581. cp must hold len entries; returns the count. */
size_t tok_utf8_decode(const char *s, size_t len, bool escape_space, uint32_t *cp);

/* Split cp[0..n) into words: writes the ascending end offsets to seg (the last one is n) and
 * returns their number. fl holds the class of each code point; tmp is n entries of scratch. */
uint32_t tok_pre_split(enum tok_pre pre, const uint32_t *cp, const uint8_t *fl, uint32_t n,
                       uint32_t *seg, uint32_t *tmp);

#endif
