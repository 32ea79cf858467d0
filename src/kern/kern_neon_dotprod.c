/* kern_neon_dotprod: the aarch64 NEON kernels built a second time with the dotprod extension
 * (Armv8.2 sdot: Pi 5 / Cortex-A76 and later), as `kern_isa_neon_dotprod`.
 *
 * Why a second copy of kern_neon.c: the only difference is how 16 int8 products become the
 * reference's four 32-bit lanes (one vdotq_s32 instead of vmull + two pairwise adds), so the body
 * is shared by including kern_neon.c with KERN_NEON_DOTPROD defined, and results stay
 * bit-identical to the plain NEON and scalar kernels.
 *
 * Invariants: the Makefile compiles this file (only this one) with -march=armv8.2-a+dotprod in
 * every aarch64 build, so its code may contain sdot and must only run when available() —
 * getauxval(AT_HWCAP) & HWCAP_ASIMDDP — is true; the dispatcher guarantees that. Built without
 * that flag (another build system), on 32-bit ARM or big-endian, the table is never available;
 * on other targets the translation unit is empty. */
#define KERN_NEON_DOTPROD 1
#include "kern_neon.c"
