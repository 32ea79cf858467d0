/* cli_info: `lmpipe info MODEL [-c CTX] [--check]` and `lmpipe info --cpu`: a GGUF file described
 * from eng_file_info (the same struct the protocol's model/info prints), and the kernels this CPU
 * runs. A file whose model cannot be loaded is still described ("model: not loadable: why").
 * --check scans every tensor's stored values (eng_file_check) and lists those holding NaN or
 * infinities; exit status 1 when there are any. */
#include "cli.h"

#include "../eng/eng.h"

#include <stdio.h>
#include <stdlib.h>

static void print_cpu(void)
{
    struct eng_cpu_info ci;
    eng_cpu_info(&ci);
    printf("cpu:\n  %-22s %s\n  %-22s %s\n  %-22s", "features", ci.features, "isa", ci.chosen, "built");
    for (int i = 0; i < ci.n_isa; i++) printf(" %s%s", ci.isa[i], ci.isa_available[i] ? "" : " (unavailable)");
    printf("\n  %-22s %s%s\n", "LMPIPE_ISA", ci.requested ? ci.requested : "(unset: automatic)",
           ci.requested && !ci.request_honoured ? " (ignored: not available here)" : "");
}

static void print_kv(const struct eng_info_kv *kv)
{
    if (kv->present) printf("  %-22s %s\n", kv->label, kv->text);
}

static void print_file(const struct eng_model_info *m)
{
    printf("file: %s\n  %-22s %llu bytes (%.2f MiB)\n  %-22s v%u, %llu metadata keys, %llu tensors, alignment %u\n",
           m->path, "size", (unsigned long long)m->file_size, (double)m->file_size / 1048576.0, "gguf",
           m->gguf_version, (unsigned long long)m->n_kv, (unsigned long long)m->n_tensors, m->alignment);
    print_kv(&m->meta[ENG_META_NAME]);
    print_kv(&m->meta[ENG_META_ARCH]);
    printf("tensors: %llu parameters\n", (unsigned long long)m->n_params);
    for (int t = 0; t < BLK_T_COUNT_; t++)
        if (m->type_count[t])
            printf("  %-8s %5llu tensors %12llu bytes%s\n", blk_type_name((uint32_t)t),
                   (unsigned long long)m->type_count[t], (unsigned long long)m->type_bytes[t],
                   m->type_supported[t] ? "" : "  (not supported by this build)");
}

static void print_model(const struct eng_model_info *m)
{
    if (!m->model_ok) {
        printf("model: not loadable: %s\n", m->model_error);
        return;
    }
    printf("model: %s\n", m->arch);
    printf("  %-22s %u\n  %-22s %u\n  %-22s %u\n  %-22s %u\n  %-22s %u\n  %-22s %u\n"
           "  %-22s %u\n  %-22s %u\n  %-22s %u\n  %-22s %g\n  %-22s %g\n  %-22s %g\n  %-22s %s\n",
           "n_vocab", m->n_vocab, "context_length", m->n_ctx_train, "embedding_length", m->n_embd,
           "feed_forward_length", m->n_ff, "block_count", m->n_layer, "head_count", m->n_head,
           "head_count_kv", m->n_head_kv, "head_dim", m->head_dim, "rope_dim", m->rope_dim,
           "rms_epsilon", (double)m->rms_eps, "rope_freq_base", (double)m->rope_base, "rope_scale",
           (double)m->rope_scale, "output", m->output_tied ? "tied to token_embd" : "separate");
    /* kv.h's formula, per type: K and V, and everything a session allocates (weights excluded:
     * they stay mapped from the file) */
    for (int t = 0; t < ENG_KV_TYPES; t++) {
        char label[32];
        snprintf(label, sizeof label, "kv_cache %s%s", eng_kv_type_name(t), t == ENG_KV_DEFAULT ? " (default)" : "");
        if (!m->session_type_bytes[t])
            printf("  %-22s not available (needs a head size that is a multiple of 32)\n", label);
        else
            printf("  %-22s %.2f MiB at context %u; session total %.2f MiB\n", label,
                   (double)m->kv_type_bytes[t] / 1048576.0, m->n_ctx, (double)m->session_type_bytes[t] / 1048576.0);
    }
    printf("  %-22s %s\n", "kernels", m->isa);
}

/* Which template chat renders with, and why. */
static void print_chat(const struct eng_chat_info *c)
{
    printf("  %-22s ", "chat renders with");
    switch (c->source) {
    case ENG_CHAT_MODEL:
    case ENG_CHAT_FILE:
        printf("jinja: %s%s", c->source == ENG_CHAT_FILE ? c->name : "the model's tokenizer.chat_template",
               c->tool_use ? " (tokenizer.chat_template.tool_use for requests with tools)" : "");
        if (c->end_of_turn[0]) printf("; end of turn \"%s\"", c->end_of_turn);
        else printf("; no end-of-turn text found");
        printf("\n  %-22s system %s, tools %s, tool calls %s, parallel calls %s\n", "template accepts",
               c->system_role ? "yes" : "no", c->tools ? "yes" : "no", c->tool_calls ? "yes" : "no",
               c->parallel_calls ? "yes" : "no");
        break;
    case ENG_CHAT_DETECTED:
        printf("built-in %s: the model's template does not parse as Jinja (%s)%s\n", c->builtin,
               c->parse_error, c->fallback ? " and is not recognised (fallback)" : ", detected from its text");
        break;
    default:
        printf("none: the file has no chat template (chat falls back to the built-in %s)\n", c->builtin);
        break;
    }
}

static void print_tokenizer(const struct eng_model_info *m)
{
    printf("tokenizer:\n");
    print_kv(&m->meta[ENG_META_TOK_MODEL]);
    print_kv(&m->meta[ENG_META_TOK_PRE]);
    if (m->n_tokens) printf("  %-22s %llu\n", "tokens", (unsigned long long)m->n_tokens);
    for (int i = ENG_META_FIRST_SPECIAL; i < ENG_META_N_; i++) print_kv(&m->meta[i]);
    printf("  %-22s %s", "chat_template", m->has_chat_template ? "present" : "absent");
    if (m->has_chat_template) printf(" (%llu bytes)", (unsigned long long)m->chat_template_bytes);
    printf("\n");
    print_chat(&m->chat);
}

/* --check: the scan's numbers, then every bad tensor. 0 when all is finite, else 1. */
static int print_check(const char *path)
{
    struct eng_check c;
    struct err_info ei;
    err_clear(&ei);
    int rc = eng_file_check(path, &c, &ei);
    if (rc) cli_die("cannot check the model", &ei, rc);
    double mb = (double)c.bytes / 1e6;
    printf("check: %llu tensors, %.2f MB of tensor data in %.1f ms (%.0f MB/s)\n",
           (unsigned long long)c.n_tensors, mb, c.seconds * 1e3, c.seconds > 0 ? mb / c.seconds : 0.0);
    if (c.n_checked < c.n_tensors)
        printf("  %llu tensors of a type with no check (IQ1_M)\n",
               (unsigned long long)(c.n_tensors - c.n_checked));
    if (!c.n_bad) printf("  every value is finite\n");
    else
        printf("  %zu tensors hold %llu NaN or infinite values (elements, or block scales):\n",
               c.n_bad, (unsigned long long)c.n_bad_values);
    for (size_t i = 0; i < c.n_bad; i++)
        printf("  %-40s %-7s %llu\n", c.bad[i].name, blk_type_name(c.bad[i].type),
               (unsigned long long)c.bad[i].n_bad);
    rc = c.n_bad ? 1 : 0;
    if (rc) {
        eng_check_error(&c, &ei);
        fprintf(stderr, "lmpipe: %s\n", ei.msg);
    }
    eng_check_free(&c);
    return rc;
}

int cli_info_main(int argc, char **argv)
{
    const char *path = NULL, *pos = NULL;
    int64_t n_ctx = 0;
    bool cpu = false, check = false;
    const struct cli_opt opts[] = {
        {.name = "--check", .kind = CLI_SET, .dst = &check},
        {.name = "-m", .alt = "--model", .kind = CLI_STR, .dst = &path},
        {.name = "-c", .kind = CLI_INT, .dst = &n_ctx, .lo = 1, .hi = 1 << 24},
        {.name = "--cpu", .kind = CLI_SET, .dst = &cpu},
    };
    const struct cli_spec spec = {"info", NULL, opts, sizeof opts / sizeof opts[0], &pos, 1, NULL,
                                  "one MODEL argument"};
    cli_parse(&spec, argc, argv);
    if (path && pos) cli_usage_error("info takes one MODEL (got -m %s and '%s')", path, pos);
    if (!path) path = pos;
    if (cpu) {
        print_cpu();
        if (!path) return 0;
    }
    if (!path) cli_usage_error("info needs a MODEL path");
    struct err_info ei;
    err_clear(&ei);
    struct eng_model_info *m = malloc(sizeof *m);
    if (!m) {
        fprintf(stderr, "lmpipe: out of memory\n");
        return 1;
    }
    int rc = eng_file_info(path, (uint32_t)n_ctx, m, &ei);
    if (rc) {
        free(m);
        cli_die("cannot read model", &ei, rc);
    }
    print_file(m);
    print_model(m);
    print_tokenizer(m);
    free(m);
    return check ? print_check(path) : 0;
}
