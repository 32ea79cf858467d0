/* vocab: the vocabulary view, what the sampler and the grammar may know about a vocabulary.
 *
 * samp and gram never see the tokenizer: eng builds this view once per model (tok fills it) and
 * hands it down. For every token id it gives the bytes the token adds to generated text in a
 * continuation (SentencePiece "▁" as a space, byte-fallback tokens <0xHH> as their one byte,
 * byte-level BPE characters as their bytes), its flags, and the end-of-generation set as a flag.
 * A control token's bytes are its literal text (e.g. "<|im_end|>"), so a grammar can name it;
 * VOCAB_CONTROL says it is never text a constraint may produce by spelling it out.
 *
 * The view borrows memory owned by whoever built it (tok); it stays valid until that owner is
 * freed and is read-only for everyone else. Nothing here allocates. */
#ifndef LMPIPE_UTIL_VOCAB_H
#define LMPIPE_UTIL_VOCAB_H

#include <stddef.h>
#include <stdint.h>

enum vocab_flag {
    VOCAB_CONTROL = 1u << 0, /* control / special token (BOS, EOS, <|im_start|>, ...) */
    VOCAB_EOG = 1u << 1,     /* ends generation (eos, eot, eom, end-of-turn texts) */
    VOCAB_BYTE = 1u << 2,    /* byte-fallback token: its bytes are exactly one byte */
    VOCAB_USER = 1u << 3,    /* user-defined token (recognised in text, printed as text) */
    VOCAB_UNUSED = 1u << 4,  /* unknown / unused / undefined: never generated under a constraint */
};

struct vocab_view {
    uint32_t n_vocab;
    const uint32_t *off;  /* [n_vocab + 1]: token i's bytes are text[off[i] .. off[i + 1]) */
    const char *text;     /* [off[n_vocab]] all tokens' bytes, back to back (not NUL-separated) */
    const uint8_t *flags; /* [n_vocab] enum vocab_flag bits */
    int32_t bos, eos;     /* -1 when the vocabulary has none */
};

/* Token id's bytes and their length; NULL with *len 0 for an id outside the vocabulary. */
static inline const char *vocab_bytes(const struct vocab_view *v, int32_t id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= v->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = v->off[id + 1] - v->off[id];
    return v->text + v->off[id];
}

static inline unsigned vocab_flags(const struct vocab_view *v, int32_t id)
{
    return (id < 0 || (uint32_t)id >= v->n_vocab) ? 0u : v->flags[id];
}

#endif
