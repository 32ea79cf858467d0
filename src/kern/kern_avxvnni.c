/* kern_avxvnni: the AVX2 kernels built a second time with AVX-VNNI (256-bit vpdpbusd / vpdpwssd,
 * e.g. Alder Lake and later without AVX-512), as `kern_isa_avxvnni` ("avx-vnni").
 *
 * Why a second copy of kern_avx2.c: the only difference is how int8 products become the
 * reference's 32-bit lanes (one vpdpbusd instead of maddubs + madd, and a vpdpwssd instead of
 * madd + add where int16 products are scaled and summed), so the body is shared by including
 * kern_avx2.c with KERN_X86_VNNI = 1 and results stay bit-identical to the AVX2 and scalar
 * kernels (integer sums are exact either way; the float operations are the same).
 *
 * Invariants: the Makefile compiles this file with -mavxvnni -mavx2 -mfma -mf16c, so its code may
 * contain VNNI instructions and must only run when available() (kern_cpu_has_avxvnni) is true;
 * the dispatcher guarantees that. Built without those flags, the table is never available. */
#define KERN_X86_VNNI 1
#include "kern_avx2.c"
