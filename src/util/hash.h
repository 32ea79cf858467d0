/* hash: XXH64, the 64-bit non-cryptographic hash of the xxHash family, written from its published
 * specification (github.com/Cyan4973/xxHash, doc/xxhash_spec.md), for the model fingerprint
 * (gguf_fingerprint) and the snapshot checksum (src/kv/kv_snap.c).
 *
 * Why XXH64: a well-known function with a frozen specification and published test vectors, so a
 * value written into a file today can be recomputed by anyone, on any machine, forever; and it
 * reads 32 bytes per round, so checksumming a 50 MB snapshot costs a few milliseconds. It detects
 * accidental damage (any bit flip changes the value; a random change goes unnoticed with
 * probability 2^-64); it is not a defence against someone forging a file.
 *
 * Input bytes are read as little-endian 64/32-bit words whatever the host's byte order, so the
 * value of a byte sequence is the same everywhere. The streaming form (init / update / final)
 * gives exactly the one-shot value for any split of the input (tests/check_kvsnap.c). */
#ifndef LMPIPE_UTIL_HASH_H
#define LMPIPE_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

struct util_xxh64 {
    uint64_t acc[4];  /* the four lanes of the 32-byte stripes */
    uint64_t total;   /* bytes seen */
    uint64_t seed;
    uint8_t buf[32];  /* a partial stripe */
    uint32_t n_buf;
};

void util_xxh64_init(struct util_xxh64 *s, uint64_t seed);
void util_xxh64_update(struct util_xxh64 *s, const void *p, size_t n);
/* The hash of everything given so far (the state is unchanged: more updates may follow). */
uint64_t util_xxh64_final(const struct util_xxh64 *s);
/* One-shot. */
uint64_t util_xxh64(const void *p, size_t n, uint64_t seed);

#endif
