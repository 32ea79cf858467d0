/* cli_template: `lmpipe template render FILE.jinja [REQUEST.json]`, the raw Jinja renderer for
 * debugging chat templates: the request's messages, tools, add_generation_prompt and any other
 * top-level keys (bos_token, enable_thinking, ...) become the template's variables; the output
 * is the rendered text exactly, with no newline added. No conversation fixes and no model: what
 * jinja2 with transformers' settings would print.
 *
 * Exit codes: 0 rendered; 1 the template refused the request or failed while rendering (the
 * reason on stderr), or a file could not be read; 2 a usage error, a request that is not a JSON
 * object of that shape, or a template that does not parse (with its line and column). */
#include "cli.h"

#include "../eng/eng.h"

#include <stdlib.h>
#include <string.h>

static const char k_usage[] =
    "usage: lmpipe template render FILE.jinja [REQUEST.json]\n"
    "Render a Jinja chat template the way transformers' apply_chat_template does, and print the\n"
    "text exactly (no newline added). REQUEST (stdin when absent) is a JSON object: messages,\n"
    "tools, documents, add_generation_prompt (default false), chat_template_kwargs, and any\n"
    "other key as a variable of its own (bos_token, eos_token, ...). No fixes are applied.\n"
    "strftime_now uses the clock; SOURCE_DATE_EPOCH (seconds, UTC) pins it.\n"
    "Exit: 0 rendered, 1 the template refused or failed (reason on stderr), 2 usage error, bad\n"
    "request or a template that does not parse.\n";

static int render(const char *path, const char *req_path)
{
    size_t slen, rlen;
    char *src = cli_read_file_or_die(path, &slen);
    struct eng_template *t;
    struct err_info ei;
    err_clear(&ei);
    int rc = eng_template_parse(src, slen, &t, &ei);
    free(src);
    if (rc) {
        fprintf(stderr, "lmpipe: %s: %s\n", path, ei.msg);
        return rc == ERR_NOMEM ? 1 : 2;
    }
    char *req = req_path ? cli_read_file_or_die(req_path, &rlen) : cli_slurp(stdin, &rlen);
    if (!req) {
        fprintf(stderr, "lmpipe: cannot read the request from stdin\n");
        eng_template_free(t);
        return 1;
    }
    char *out;
    size_t n;
    rc = eng_template_render(t, req, rlen, &out, &n, &ei);
    free(req);
    eng_template_free(t);
    if (rc) {
        fprintf(stderr, "lmpipe: %s: %s\n", rc == ERR_INVALID ? (req_path ? req_path : "stdin") : path,
                ei.msg);
        return rc == ERR_INVALID ? 2 : 1;
    }
    int status = fwrite(out, 1, n, stdout) == n && fflush(stdout) == 0 ? 0 : 1;
    free(out);
    return status;
}

int cli_template_main(int argc, char **argv)
{
    const char *pos[3];
    size_t n_pos = 0;
    const struct cli_spec spec = {"template", k_usage, NULL, 0, pos, 3, &n_pos,
                                  "'render FILE.jinja [REQUEST.json]'"};
    cli_parse(&spec, argc, argv);
    if (n_pos == 0 || strcmp(pos[0], "render") != 0)
        cli_usage_error("template needs a subcommand: render FILE.jinja [REQUEST.json]");
    if (n_pos < 2) cli_usage_error("template render needs a FILE.jinja");
    return render(pos[1], n_pos > 2 ? pos[2] : NULL);
}
