/* kern_avx512: the AVX-512 tier (`kern_isa_avx512`, "avx512": AVX-512 F/BW/VL + VNNI, e.g. Zen 4,
 * Ice Lake and later).
 *
 * What: 512-bit kernels for what dominates real files, laid over a base table that is kern_avx2.c
 * built with AVX-512 VNNI on 256-bit vectors (KERN_X86_VNNI = 2), so every weight type has this
 * tier's flags and VNNI in all its kernels and the hot ones are rewritten for zmm.
 *
 * Invariants: the Makefile compiles this file with -mavx512f -mavx512bw -mavx512vl -mavx512vnni
 * -mavx2 -mfma -mf16c; its code must only run when available() (kern_cpu_has_avx512: the CPU
 * has the four extensions and the OS saves opmask and ZMM state) is true, which the dispatcher
 * guarantees. Built without those flags, the table is never available. */
#define KERN_X86_VNNI 2
#include "kern_avx2.c"

#if X86_VNNI_OK && (defined(__x86_64__) || defined(__i386__)) && defined(__AVX2__) && defined(__FMA__) && \
    defined(__F16C__)

const struct kern_isa kern_isa_avx512 = {
    .name = "avx512",
    .available = kern_cpu_has_avx512,
    .base = &kern_isa_avx512_base,
};

#else

const struct kern_isa kern_isa_avx512 = {.name = "avx512", .available = x86_unavailable};

#endif
