/* gram_step_int: the matcher's per-byte step, inline, for the files that step bytes in their
 * loops (gram_match.c: feeds and gram_gc_walk; gram_tok.c: the mask walk, per byte per candidate
 * token). The common case - a whole position, an ASCII byte, its transition already cached in the
 * set's row - is one table read and a compare here; everything else (UTF-8, a transition not computed
 * yet) is gram_gc_step_slow in gram_trans.c, which fills the row. This header sits above
 * gram_int.h and gram_trans.c: gram_trans.c never includes it, so the step's two halves do not
 * depend on each other in a circle. */
#ifndef LMPIPE_GRAM_GRAM_STEP_INT_H
#define LMPIPE_GRAM_GRAM_STEP_INT_H

#include "gram_int.h"

/* One byte from *p: 0 (p advanced), ERR_REJECTED (p unchanged) or ERR_LIMIT. */
static inline int gc_step(struct gram_core *c, struct gram_pos *p, unsigned b)
{
    if (p->part == 0 && b < 0x80) {
        uint32_t nx = c->asc[(size_t)p->set * 128 + b];
        if (nx < GS_DEAD) {
            p->set = nx;
            return 0;
        }
        if (nx == GS_DEAD) return ERR_REJECTED;
    }
    return gram_gc_step_slow(c, p, b);
}

#endif
