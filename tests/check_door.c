/* check_door: a toy constraint ("only even token ids") plugged into the generation loop through
 * eng's public seam, seen honoured by `run`, `serve` and `batch` alike.
 *
 * How, without a flag or protocol field for it: the commands are functions (src/cli, linked
 * from build/liblmpipe_cli.a); a forked child installs the constraint for the whole process
 * with eng_set_default_constraint() and then runs the real command entry point on pipes and
 * files, exactly as `lmpipe run ...` would. The parent first computes in-process, through the
 * same seam, what the constrained greedy text is (and checks that every token of it is even and
 * that it differs from the unconstrained text), then expects each command to produce it;
 * `serve` also returns the token ids, which must all be even. Uses the real stories260K model. */
#include "tutil.h"

#include "cli/cli.h"
#include "eng/eng.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *model(void) { return tutil_shared("models/stories260K-F32.gguf"); }

#define PROMPT "Once upon a time"
#define N_GEN 24

/* ---- the toy constraint ---- */

struct even {
    uint32_t n_vocab;
    int32_t seen[256];
    size_t n_seen;
};

static int even_check(void *self, int32_t tok)
{
    (void)self;
    return tok % 2 == 0;
}

static int even_mask(void *self, uint64_t *bits)
{
    struct even *e = self;
    for (uint32_t t = 0; t < e->n_vocab; t += 2) bits[t / 64] |= 1ull << (t % 64);
    return 0;
}

static int even_accept(void *self, int32_t tok)
{
    struct even *e = self;
    if (e->n_seen < 256) e->seen[e->n_seen++] = tok;
    return 0;
}

static void even_free(void *self) { free(self); }

static const struct eng_constraint_ops k_even = {even_check, even_mask, even_accept, NULL, NULL,
                                                 NULL, even_free};

static int make_even(void *ud, const struct vocab_view *v, struct eng_constraint *out,
                     struct err_info *ei)
{
    (void)ei;
    struct even *e = calloc(1, sizeof *e);
    if (!e) return ERR_NOMEM;
    e->n_vocab = v->n_vocab;
    out->ops = &k_even;
    out->self = e;
    (void)ud;
    return 0;
}

/* ---- the expected text, in-process ---- */

/* Greedy PROMPT continuation of N_GEN tokens, with or without the toy constraint; with it,
 * every accepted token is checked to be even. */
static void expected(bool constrained, struct tutil_text *out)
{
    struct err_info ei;
    err_clear(&ei);
    struct eng_model *em;
    ck_assert_int_eq(eng_model_open(&em, model(), 1, &ei), 0);
    struct eng_session *s;
    ck_assert_int_eq(eng_session_create(&s, em, 0, &ei), 0);
    struct eng_gen_params p;
    eng_gen_params_default(&p);
    p.samp.temp = 0;
    p.max_tokens = N_GEN;
    /* the same operations, on a constraint we keep to look at what it was told */
    static const struct eng_constraint_ops keep = {even_check, even_mask, even_accept, NULL, NULL,
                                                   NULL, NULL};
    struct even mine = {eng_model_n_vocab(em), {0}, 0};
    struct eng_constraint c = {&keep, &mine};
    if (constrained) p.constraint = &c;
    memset(out, 0, sizeof *out);
    struct eng_sink sink = {tutil_text_add, NULL, out, NULL};
    struct eng_gen_result res;
    ck_assert_int_eq(eng_generate(s, PROMPT, strlen(PROMPT), &p, &sink, &res, &ei), 0);
    if (constrained) {
        ck_assert_uint_eq(mine.n_seen, res.completion_tokens);
        ck_assert_uint_gt(mine.n_seen, 0);
        for (size_t i = 0; i < mine.n_seen; i++) ck_assert_msg(mine.seen[i] % 2 == 0, "token %d", mine.seen[i]);
    }
    eng_session_free(s);
    eng_model_free(em);
}

/* ---- running a command in a child, with the constraint installed ---- */

/* fork; in the child: stdin from in_fd (or /dev/null), stdout to out_fd, stderr to /dev/null,
 * install the toy constraint for the process, run the command function, exit with its code. */
static pid_t spawn(int (*cmd)(int, char **), char **argv, int argc, int in_fd, int out_fd)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(in_fd >= 0 ? in_fd : null, 0);
        dup2(out_fd, 1);
        dup2(null, 2);
        for (int fd = 3; fd < 1024; fd++) close(fd); /* the parent's pipe ends: EOF must reach us */
        eng_set_default_constraint(make_even, NULL);
        fflush(stdout);
        int rc = cmd(argc, argv);
        fflush(stdout);
        _exit(rc);
    }
    return pid;
}

static int wait_exit(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Everything the fd gives until EOF (at most cap - 1 bytes), NUL-terminated. */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        n += (size_t)k;
        if (n == cap - 1) break;
    }
    buf[n] = 0;
    return n;
}

START_TEST(toy_constraint_run)
{
    struct tutil_text want, plain;
    expected(true, &want);
    expected(false, &plain);
    ck_assert_msg(strcmp(want.buf, plain.buf) != 0, "the constraint changed nothing: '%s'", want.buf);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    char n[16];
    snprintf(n, sizeof n, "%d", N_GEN);
    char *argv[] = {"-m", (char *)model(), "-p", PROMPT, "-n", n, "--temp", "0", "-t", "1", NULL};
    pid_t pid = spawn(cli_run_main, argv, 10, -1, p[1]);
    close(p[1]);
    static char out[8192];
    read_all(p[0], out, sizeof out);
    close(p[0]);
    ck_assert_int_eq(wait_exit(pid), 0);
    char exp[sizeof want.buf + 2];
    snprintf(exp, sizeof exp, "%s\n", want.buf);
    ck_assert_str_eq(out, exp);
}
END_TEST

/* Send a line to the server and read lines until the response with this id; the token ids of
 * its gen/delta notifications are checked to be even and their texts concatenated. */
static json_t *serve_call(int in, FILE *out, const char *line, json_int_t id, struct tutil_text *deltas,
                          size_t *n_tokens)
{
    ck_assert(write(in, line, strlen(line)) == (ssize_t)strlen(line));
    char buf[65536];
    while (fgets(buf, sizeof buf, out)) {
        json_t *j = json_loads(buf, 0, NULL);
        ck_assert_ptr_nonnull(j);
        json_t *jid = json_object_get(j, "id");
        if (json_is_integer(jid) && json_integer_value(jid) == id && !json_object_get(j, "method"))
            return j;
        json_t *prm = json_object_get(j, "params");
        const char *m = json_string_value(json_object_get(j, "method"));
        if (m && !strcmp(m, "gen/delta")) {
            json_t *toks = json_object_get(prm, "tokens");
            for (size_t i = 0; i < json_array_size(toks); i++) {
                json_int_t t = json_integer_value(json_array_get(toks, i));
                ck_assert_msg(t % 2 == 0, "serve streamed token %lld", (long long)t);
                (*n_tokens)++;
            }
            const char *t = json_string_value(json_object_get(prm, "text"));
            tutil_text_add(deltas, t, strlen(t), -1);
        }
        json_decref(j);
    }
    ck_abort_msg("the server closed before answering %lld", (long long)id);
    return NULL;
}

START_TEST(toy_constraint_serve)
{
    struct tutil_text want;
    expected(true, &want);
    int a[2], b[2];
    ck_assert_int_eq(pipe(a), 0);
    ck_assert_int_eq(pipe(b), 0);
    char *argv[] = {"-m", (char *)model(), "-t", "1", NULL};
    pid_t pid = spawn(cli_serve_main, argv, 4, a[0], b[1]);
    close(a[0]);
    close(b[1]);
    FILE *out = fdopen(b[0], "r");
    struct tutil_text deltas = {{0}, 0};
    size_t n_tokens = 0;
    json_t *r = serve_call(a[1], out, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}\n", 1,
                           &deltas, &n_tokens);
    json_decref(r);
    char line[512];
    snprintf(line, sizeof line,
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"generate\",\"params\":{\"prompt\":\"%s\","
             "\"max_tokens\":%d,\"temperature\":0,\"stream\":true,\"return_tokens\":true}}\n",
             PROMPT, N_GEN);
    r = serve_call(a[1], out, line, 2, &deltas, &n_tokens);
    json_t *res = json_object_get(r, "result");
    ck_assert_ptr_nonnull(res);
    ck_assert_str_eq(json_string_value(json_object_get(res, "text")), want.buf);
    ck_assert_str_eq(deltas.buf, want.buf);
    ck_assert_uint_gt(n_tokens, 0);
    json_decref(r);
    /* a chat goes through the same seam */
    deltas.len = 0;
    deltas.buf[0] = 0;
    n_tokens = 0;
    r = serve_call(a[1], out,
                   "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"chat\",\"params\":{\"messages\":"
                   "[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":12,\"temperature\":0,"
                   "\"stream\":true,\"return_tokens\":true}}\n",
                   3, &deltas, &n_tokens);
    ck_assert_ptr_nonnull(json_object_get(r, "result"));
    json_decref(r);
    close(a[1]); /* EOF: the server stops */
    fclose(out);
    ck_assert_int_eq(wait_exit(pid), 0);
}
END_TEST

START_TEST(toy_constraint_batch)
{
    struct tutil_text want;
    expected(true, &want);
    char dir[] = "/tmp/lmpipe_door_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char in[128], outp[128];
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(outp, sizeof outp, "%s/out.jsonl", dir);
    FILE *f = fopen(in, "w");
    fprintf(f, "{\"id\":\"g\",\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0}\n", PROMPT, N_GEN);
    fclose(f);
    char *argv[] = {"-m", (char *)model(), in, "-o", outp, "-t", "1", NULL};
    int null = open("/dev/null", O_WRONLY);
    pid_t pid = spawn(cli_batch_main, argv, 7, -1, null);
    close(null);
    ck_assert_int_eq(wait_exit(pid), 0);
    size_t len;
    char *text = tutil_read(outp, &len);
    ck_assert_ptr_nonnull(text);
    json_t *j = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "result"), "text")), want.buf);
    json_decref(j);
    free(text);
    unlink(in);
    unlink(outp);
    rmdir(dir);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("door");
    TCase *tc = tcase_create("toy_constraint");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, toy_constraint_run);
    tcase_add_test(tc, toy_constraint_serve);
    tcase_add_test(tc, toy_constraint_batch);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
