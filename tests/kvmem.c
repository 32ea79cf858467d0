/* kvmem: a measurement program (not a test: nothing is asserted) for the KV cache types. It loads
 * a model as a session would (weights mmapped, tokenizer, thread pool), creates a state with the
 * chosen KV type, evaluates a prompt in batches and then decodes token by token (greedy), and
 * prints the decode speed over the first and last 32 tokens and over all of them, and the
 * process's RssAnon / RssFile / VmHWM from /proc/self/status at the end, when everything the
 * session ever touches is resident. It reports decode CPU time per token beside wall-clock
 * speed, which is what survives a shared machine when KV types are compared.
 *
 * With -s FILE it also measures a snapshot's worth: the time to the first token's logits counted
 * from before the snapshot is read (a fresh process: file read, checksum, restore of the common
 * prefix, then the rest of the prompt); when FILE is missing or does not match, the prompt is
 * evaluated in full and saved to FILE (the cold run).
 *
 * build: make build/tests/kvmem
 * usage: build/tests/kvmem MODEL [-k f32|f16|q8_0] [-c N_CTX] [-p N_PROMPT] [-n N_GEN] [-t THREADS]
 *                          [-s SNAPSHOT]
 *        (defaults: f16, the model's context, prompt 64, generate until the context is full) */
#include "eng/eng.h"
#include "eng/eng_int.h" /* struct eng_model: the model and pool, as a session uses them */
#include "kv/kv.h"
#include "model/model.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Print the /proc/self/status lines whose names are listed (Linux; silently nothing elsewhere). */
static void print_status(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "RssAnon:", 8) || !strncmp(line, "RssFile:", 8) || !strncmp(line, "VmHWM:", 6) ||
            !strncmp(line, "VmRSS:", 6))
            printf("kvmem: %s", line);
    fclose(f);
}

/* CPU seconds used by the process (all threads): on a shared, loaded machine a steadier measure
 * of work than wall time. */
static double cpu_now(void)
{
    struct timespec t;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) != 0) return 0;
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int32_t argmax(const float *x, uint32_t n)
{
    uint32_t b = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return (int32_t)b;
}

/* Restore the common prefix of snapshot `path` and the prompt, at most np - 1 positions (the last
 * prompt token is always evaluated, for its logits). Returns the positions restored (0 when the
 * file is missing or refused, with the reason on stderr). */
static uint32_t restore(const struct model *m, struct model_state *st, const char *path, const int32_t *prompt,
                        uint32_t np)
{
    struct kv_snap_expect x;
    model_snap_expect(m, st, &x);
    struct err_info ei;
    err_clear(&ei);
    uint8_t *buf;
    size_t len;
    if (kv_snap_read_file(path, kv_snap_size(x.kv_type, x.n_layer, x.kv_dim, x.n_ctx), &buf, &len, &ei)) {
        fprintf(stderr, "kvmem: no snapshot: %s\n", ei.msg);
        return 0;
    }
    struct kv_snap s;
    uint32_t n = 0;
    if (kv_snap_parse(buf, len, &x, &s, &ei)) {
        fprintf(stderr, "kvmem: snapshot refused (%s): %s\n", err_kind(ei.code), ei.msg);
    } else {
        n = kv_snap_common_prefix(&s, prompt, np);
        if (n >= np) n = np - 1;
        kv_snap_restore(&st->kv, &s, n);
    }
    free(buf);
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: kvmem MODEL [-k f32|f16|q8_0] [-c N_CTX] [-p N_PROMPT] [-n N_GEN] [-t THREADS]\n");
        return 2;
    }
    int type = KV_F16, threads = 1;
    const char *snap = NULL;
    int64_t n_ctx = 0, n_prompt = 64, n_gen = -1;
    for (int i = 2; i + 1 < argc; i += 2) {
        int bad = 0;
        if (!strcmp(argv[i], "-k")) bad = kv_type_parse(argv[i + 1], &type);
        else if (!strcmp(argv[i], "-c")) bad = util_parse_i64(argv[i + 1], 1, 1 << 24, &n_ctx);
        else if (!strcmp(argv[i], "-p")) bad = util_parse_i64(argv[i + 1], 1, 1 << 24, &n_prompt);
        else if (!strcmp(argv[i], "-n")) bad = util_parse_i64(argv[i + 1], 0, 1 << 24, &n_gen);
        else if (!strcmp(argv[i], "-s")) snap = argv[i + 1];
        else if (!strcmp(argv[i], "-t")) {
            int64_t t;
            bad = util_parse_i64(argv[i + 1], 1, 256, &t);
            threads = (int)t;
        } else
            bad = 1;
        if (bad) {
            fprintf(stderr, "kvmem: bad option %s %s\n", argv[i], argv[i + 1]);
            return 2;
        }
    }
    struct err_info ei;
    err_clear(&ei);
    struct eng_model *em;
    if (eng_model_open(&em, argv[1], threads, &ei)) {
        fprintf(stderr, "kvmem: %s\n", ei.msg);
        return 1;
    }
    struct model_state st;
    if (model_state_init_kv(&st, &em->model, (uint32_t)n_ctx, type, em->pool, &ei)) {
        fprintf(stderr, "kvmem: %s\n", ei.msg);
        return 1;
    }
    uint32_t ctx = st.n_ctx, np = (uint32_t)(n_prompt < ctx ? n_prompt : ctx - 1);
    uint32_t ng = n_gen < 0 || (uint64_t)n_gen > ctx - np ? ctx - np : (uint32_t)n_gen;
    printf("kvmem: %s, KV %s, n_ctx %u: state %.2f MiB (KV %.2f MiB), prompt %u, generate %u, %d thread(s)\n",
           argv[1], kv_type_name(type), ctx, (double)model_state_bytes_kv(&em->model, ctx, type) / 1048576.0,
           (double)kv_mem_bytes(type, st.kv.n_layer, ctx, st.kv.kv_dim) / 1048576.0, np, ng, threads);
    int32_t *prompt = malloc(np * sizeof *prompt);
    if (!prompt) return 1;
    for (uint32_t i = 0; i < np; i++) prompt[i] = (int32_t)((i * 2654435761u) % em->model.hp.n_vocab);
    double t0 = util_now();
    uint32_t done = snap ? restore(&em->model, &st, snap, prompt, np) : 0;
    for (uint32_t p = done; p < np;) {
        uint32_t k = np - p < MODEL_BATCH ? np - p : MODEL_BATCH;
        if (model_forward_batch(&em->model, &st, prompt + p, k, p, MODEL_LOGITS_LAST, NULL, NULL)) return 1;
        p += k;
    }
    double t1 = util_now(), t_first = 0, t_last = 0, tp = t1;
    printf("kvmem: prefill %.1f tok/s; first token after %.1f ms (%u of %u prompt tokens from a snapshot)\n",
           (np - done) / (t1 - t0), (t1 - t0) * 1e3, done, np);
    if (snap && !done) {
        err_clear(&ei);
        if (kv_snap_write(snap, &st.kv, em->model.fingerprint, prompt, np, NULL, NULL, &ei))
            fprintf(stderr, "kvmem: %s\n", ei.msg);
        else
            printf("kvmem: saved %s in %.1f ms\n", snap, (util_now() - t1) * 1e3);
        t1 = tp = util_now();
    }
    double c1 = cpu_now();
    for (uint32_t i = 0; i < ng; i++) {
        if (model_forward(&em->model, &st, argmax(st.logits, em->model.hp.n_vocab), np + i, true)) return 1;
        double now = util_now();
        if (i < 32) t_first += now - tp;
        if (i + 32 >= ng) t_last += now - tp;
        tp = now;
    }
    double t2 = util_now(), c2 = cpu_now();
    if (ng)
        printf("kvmem: decode %.2f tok/s overall, first %u: %.2f tok/s, last %u: %.2f tok/s; %.2f ms cpu/token\n",
               ng / (t2 - t1), ng < 32 ? ng : 32, (ng < 32 ? ng : 32) / t_first, ng < 32 ? ng : 32,
               (ng < 32 ? ng : 32) / t_last, (c2 - c1) * 1e3 / ng);
    print_status();
    free(prompt);
    model_state_free(&st);
    eng_model_free(em);
    return 0;
}
