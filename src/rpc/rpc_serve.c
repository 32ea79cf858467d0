/* rpc_serve: `lmpipe serve`: stdin/stdout on a libuv loop, one inference worker thread.
 *
 * stdin may be a pipe or socket (uv_pipe_t), a terminal (uv_tty_t) or a regular file or device
 * (uv_pipe_open is unreliable there, so uv_fs_read is issued one chunk at a time). stdout is a
 * stream (uv_write, asynchronous) or, when it is a file, written synchronously.
 *
 * Flow control in both directions: the worker waits once more than --write-buffer bytes are
 * waiting to be written (see rpc_exec.c); the loop stops reading stdin while more than four
 * times that is pending (a client that floods requests but never reads), and resumes below it.
 *
 * Shutdown (stdin EOF, SIGTERM/SIGINT, `shutdown`, or stdout gone): stop reading, cancel every
 * request (each still gets its -32800 answer), let the worker drain its queue and exit, flush
 * stdout, close the handles; uv_run returns and we exit 0. Exception: EOF of a regular file on
 * stdin cancels nothing: the file is a finite script and every request in it is answered. If stdout cannot drain within a few
 * seconds (the parent closed stdin but stopped reading) the pending writes are abandoned. SIGPIPE
 * is ignored, so a closed stdout is an EPIPE write error, handled as above. */
#include "rpc_int.h"

#include "../util/util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KILL_TIMEOUT_MS 5000

struct uvio {
    struct rpc_server *s;
    uv_loop_t loop;
    bool loop_ok;
    uv_async_t async;
    uv_signal_t sig_term, sig_int;
    uv_timer_t kill_timer;
    bool h_async, h_term, h_int, h_timer;
    /* stdin */
    uv_pipe_t in_pipe;
    uv_tty_t in_tty;
    uv_stream_t *in; /* NULL: file, read with uv_fs_read */
    uv_fs_t in_req;
    bool in_reading, in_paused, in_done;
    char in_buf[64 * 1024];
    struct rpc_lines lines;
    /* stdout */
    uv_pipe_t out_pipe;
    uv_tty_t out_tty;
    uv_stream_t *out; /* NULL: write(2) synchronously */
    size_t writes_in_flight;
    bool out_broken;
    /* worker */
    uv_thread_t worker;
    bool worker_started, worker_done;
    bool closing;
};

struct wreq {
    uv_write_t req;
    struct uvio *io;
    char *line;
    size_t len;
};

static void io_stop(struct rpc_server *s);
static void io_stop_how(struct rpc_server *s, bool cancel);
static void read_resume(struct uvio *io);

static void close_cb(uv_handle_t *h) { (void)h; }

static void close_h(uv_handle_t *h, bool *flag)
{
    if (*flag && !uv_is_closing(h)) uv_close(h, close_cb);
    *flag = false;
}

static void close_all(struct uvio *io)
{
    if (io->closing) return;
    io->closing = true;
    close_h((uv_handle_t *)&io->async, &io->h_async);
    close_h((uv_handle_t *)&io->sig_term, &io->h_term);
    close_h((uv_handle_t *)&io->sig_int, &io->h_int);
    close_h((uv_handle_t *)&io->kill_timer, &io->h_timer);
    if (io->in && !uv_is_closing((uv_handle_t *)io->in)) uv_close((uv_handle_t *)io->in, close_cb);
    if (io->out && !uv_is_closing((uv_handle_t *)io->out)) uv_close((uv_handle_t *)io->out, close_cb);
}

static void maybe_finish(struct uvio *io)
{
    if (io->s->stopping && io->worker_done && io->writes_in_flight == 0 && !io->in_reading) close_all(io);
}

/* ---------------- output ---------------- */

static void out_failed(struct uvio *io, int err)
{
    if (!io->out_broken)
        LOG_INFO("serve: stdout closed (%s); stopping", uv_strerror(err));
    io->out_broken = true;
    io_stop(io->s);
}

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct uvio *io = w->io;
    rpc_written(io->s, w->len);
    free(w->line);
    free(w);
    io->writes_in_flight--;
    if (status < 0) out_failed(io, status);
    read_resume(io);
    maybe_finish(io);
}

static int write_line(struct rpc_server *s, char *line, size_t len)
{
    struct uvio *io = s->sink_ud;
    if (io->out_broken || io->closing) {
        free(line);
        rpc_written(s, len);
        return ERR_IO;
    }
    if (!io->out) { /* a file: plain blocking writes */
        size_t off = 0;
        int err = 0;
        while (off < len) {
            ssize_t k = write(1, line + off, len - off);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) {
                err = errno ? -errno : UV_EIO;
                break;
            }
            off += (size_t)k;
        }
        free(line);
        rpc_written(s, len);
        if (err) out_failed(io, err);
        return err ? ERR_IO : 0;
    }
    struct wreq *w = malloc(sizeof *w);
    if (!w) {
        free(line);
        rpc_written(s, len);
        return ERR_NOMEM;
    }
    w->io = io;
    w->line = line;
    w->len = len;
    uv_buf_t b = uv_buf_init(line, (unsigned)len);
    int rc = uv_write(&w->req, io->out, &b, 1, on_written);
    if (rc) {
        free(line);
        free(w);
        rpc_written(s, len);
        out_failed(io, rc);
        return ERR_IO;
    }
    io->writes_in_flight++;
    return 0;
}

/* ---------------- input ---------------- */

static bool too_much_pending(struct rpc_server *s, size_t factor)
{
    uv_mutex_lock(&s->mu);
    bool r = s->out_pending > factor * s->cfg.write_limit;
    uv_mutex_unlock(&s->mu);
    return r;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct uvio *io = h->data;
    *buf = uv_buf_init(io->in_buf, sizeof io->in_buf);
}

static void input_end(struct uvio *io, const char *why)
{
    rpc_lines_finish(&io->lines, rpc_handle_line, io->s);
    io->in_done = true;
    LOG_INFO("serve: %s; stopping", why);
    /* A file on stdin is a script: answer all of it. A pipe or terminal closing means the
     * parent is gone or done: cancel what is left. */
    io_stop_how(io->s, io->in != NULL);
}

static void after_input(struct uvio *io)
{
    if (!io->s->stopping && too_much_pending(io->s, 4)) {
        io->in_paused = true;
        if (io->in) uv_read_stop(io->in);
    }
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct uvio *io = st->data;
    if (n > 0) {
        rpc_lines_feed(&io->lines, buf->base, (size_t)n, rpc_handle_line, io->s);
        after_input(io);
    } else if (n == UV_EOF) {
        uv_read_stop(st);
        input_end(io, "stdin closed");
    } else if (n < 0) {
        uv_read_stop(st);
        input_end(io, uv_strerror((int)n));
    }
}

static void fs_read_next(struct uvio *io);

static void on_fs_read(uv_fs_t *req)
{
    struct uvio *io = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    io->in_reading = false;
    if (n > 0 && !io->s->stopping) {
        rpc_lines_feed(&io->lines, io->in_buf, (size_t)n, rpc_handle_line, io->s);
        after_input(io);
        fs_read_next(io);
    } else if (!io->s->stopping) {
        input_end(io, n == 0 ? "stdin ended" : uv_strerror((int)n));
    }
    maybe_finish(io);
}

static void fs_read_next(struct uvio *io)
{
    if (io->in_reading || io->in_paused || io->in_done || io->s->stopping) return;
    uv_buf_t b = uv_buf_init(io->in_buf, sizeof io->in_buf);
    io->in_req.data = io;
    if (uv_fs_read(&io->loop, &io->in_req, 0, &b, 1, -1, on_fs_read) == 0) io->in_reading = true;
    else input_end(io, "cannot read stdin");
}

static void read_resume(struct uvio *io)
{
    if (!io->in_paused || io->s->stopping || too_much_pending(io->s, 1)) return;
    io->in_paused = false;
    if (io->in) uv_read_start(io->in, on_alloc, on_read);
    else fs_read_next(io);
}

/* ---------------- worker wake-up, signals, stop ---------------- */

static void on_async(uv_async_t *a)
{
    struct uvio *io = a->data;
    if (rpc_drain_events(io->s) && io->worker_started) {
        uv_thread_join(&io->worker);
        io->worker_started = false;
        io->worker_done = true;
    }
    read_resume(io);
    maybe_finish(io);
}

static void wake(struct rpc_server *s)
{
    struct uvio *io = s->sink_ud;
    uv_async_send(&io->async);
}

static void on_kill_timer(uv_timer_t *t)
{
    struct uvio *io = t->data;
    LOG_WARN("serve: stdout did not drain within %d ms; exiting without it", KILL_TIMEOUT_MS);
    if (io->worker_started) { /* quit is set: the worker finishes its current step and exits */
        uv_mutex_lock(&io->s->mu);
        io->s->hurry = true;
        uv_cond_broadcast(&io->s->space_cv);
        uv_mutex_unlock(&io->s->mu);
        uv_thread_join(&io->worker);
        io->worker_started = false;
        io->worker_done = true;
        io->out_broken = true; /* answers produced now are dropped */
        rpc_drain_events(io->s);
    }
    close_all(io);
}

static void io_stop(struct rpc_server *s) { io_stop_how(s, true); }

static void io_stop_how(struct rpc_server *s, bool cancel)
{
    struct uvio *io = s->sink_ud;
    if (s->stopping) return;
    s->stopping = true;
    if (io->in && !io->in_done) uv_read_stop(io->in);
    if (cancel) rpc_cancel_all(s);
    uv_mutex_lock(&s->mu);
    s->quit = true; /* the worker exits once its queue is empty */
    s->hurry = cancel;
    uv_cond_broadcast(&s->job_cv);
    uv_cond_broadcast(&s->space_cv);
    uv_mutex_unlock(&s->mu);
    if (io->h_timer && cancel) {
        uv_timer_start(&io->kill_timer, on_kill_timer, KILL_TIMEOUT_MS, 0);
        uv_unref((uv_handle_t *)&io->kill_timer);
    }
    if (!io->worker_started) io->worker_done = true;
    maybe_finish(io);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct uvio *io = h->data;
    LOG_INFO("serve: signal %d; stopping", signum);
    io_stop(io->s);
}

/* ---------------- setup ---------------- */

static int open_stdio(struct uvio *io)
{
    uv_handle_type tin = uv_guess_handle(0), tout = uv_guess_handle(1);
    int rc = 0;
    if (tin == UV_NAMED_PIPE || tin == UV_TCP) {
        if (!(rc = uv_pipe_init(&io->loop, &io->in_pipe, 0)) && !(rc = uv_pipe_open(&io->in_pipe, 0)))
            io->in = (uv_stream_t *)&io->in_pipe;
    } else if (tin == UV_TTY) {
        if (!(rc = uv_tty_init(&io->loop, &io->in_tty, 0, 1))) io->in = (uv_stream_t *)&io->in_tty;
    }
    if (rc) { /* fall back to plain reads */
        LOG_WARN("serve: stdin as a stream failed (%s); reading it as a file", uv_strerror(rc));
        if (io->in_pipe.loop) uv_close((uv_handle_t *)&io->in_pipe, close_cb);
        io->in = NULL;
    }
    if (io->in) io->in->data = io;
    rc = 0;
    if (tout == UV_NAMED_PIPE || tout == UV_TCP) {
        if (!(rc = uv_pipe_init(&io->loop, &io->out_pipe, 0)) && !(rc = uv_pipe_open(&io->out_pipe, 1)))
            io->out = (uv_stream_t *)&io->out_pipe;
    } else if (tout == UV_TTY) {
        if (!(rc = uv_tty_init(&io->loop, &io->out_tty, 1, 0))) io->out = (uv_stream_t *)&io->out_tty;
    }
    if (rc) {
        LOG_WARN("serve: stdout as a stream failed (%s); writing it as a file", uv_strerror(rc));
        if (io->out_pipe.loop) uv_close((uv_handle_t *)&io->out_pipe, close_cb);
        io->out = NULL;
    }
    return 0;
}

/* The loop's handles, stdin, stdout and the worker; then run until the shutdown sequence has
 * closed every handle. 0, or a libuv error (said on stderr) after which nothing runs. */
static int serve_run(struct uvio *io, const char *model)
{
    struct rpc_server *s = io->s;
    int rc = uv_loop_init(&io->loop);
    if (rc == 0) {
        io->loop_ok = true;
        io->async.data = io->sig_term.data = io->sig_int.data = io->kill_timer.data = io;
        io->h_async = uv_async_init(&io->loop, &io->async, on_async) == 0;
        io->h_term = uv_signal_init(&io->loop, &io->sig_term) == 0 && uv_signal_start(&io->sig_term, on_signal, SIGTERM) == 0;
        io->h_int = uv_signal_init(&io->loop, &io->sig_int) == 0 && uv_signal_start(&io->sig_int, on_signal, SIGINT) == 0;
        io->h_timer = uv_timer_init(&io->loop, &io->kill_timer) == 0;
        if (!io->h_async) rc = UV_ENOMEM;
    }
    if (rc == 0) rc = open_stdio(io);
    if (rc == 0) rc = uv_thread_create(&io->worker, rpc_worker_main, s);
    if (rc) {
        fprintf(stderr, "lmpipe: serve: cannot start: %s\n", uv_strerror(rc));
        close_all(io);
        if (io->loop_ok) uv_run(&io->loop, UV_RUN_DEFAULT);
        return rc;
    }
    io->worker_started = true;
    LOG_INFO("serve: ready%s%s", model ? ", model " : "", model ? model : "");
    int rr = io->in ? uv_read_start(io->in, on_alloc, on_read) : 0;
    if (!io->in) fs_read_next(io);
    if (rr) input_end(io, "cannot read stdin");
    uv_run(&io->loop, UV_RUN_DEFAULT);
    return 0;
}

int rpc_serve(const struct rpc_serve_opts *o)
{
    struct rpc_config cfg = {0};
    cfg.allow_files = true;
    cfg.n_ctx = o->n_ctx;
    cfg.threads = o->threads;
    cfg.max_line_in = o->max_line;
    cfg.queue_max = o->queue;
    cfg.write_limit = o->write_buffer;
    cfg.kv_type = o->kv_type;
    cfg.chat_template = o->chat_template;
    signal(SIGPIPE, SIG_IGN);

    static struct rpc_server srv; /* large (session table); static keeps it off the stack */
    static struct uvio io;
    struct rpc_server *s = &srv;
    memset(&io, 0, sizeof io);
    if (rpc_server_init(s, &cfg)) {
        fprintf(stderr, "lmpipe: serve: cannot initialise\n");
        return 1;
    }
    struct err_info ei;
    err_clear(&ei);
    int lrc = 0;
    const char *what = "";
    if (o->pcache_dir && (lrc = rpc_exec_pcache(s, o->pcache_dir, o->pcache_min, o->pcache_max, &ei)))
        what = "cannot open the prompt cache";
    if (!lrc && o->model && (lrc = rpc_exec_load(s, o->model, cfg.n_ctx, cfg.threads, &ei)))
        what = "cannot load model";
    if (lrc) {
        char buf[512];
        fprintf(stderr, "lmpipe: serve: %s: %s\n", what, err_format(&ei, lrc, buf, sizeof buf));
        rpc_server_free(s);
        return 1;
    }
    io.s = s;
    s->sink_ud = &io;
    s->write_line = write_line;
    s->wake = wake;
    s->on_stop = io_stop;
    rpc_lines_init(&io.lines, s->cfg.max_line_in);
    int rc = serve_run(&io, o->model);
    if (io.worker_started) { /* only when the loop ended abnormally */
        uv_mutex_lock(&s->mu);
        s->quit = s->hurry = true;
        uv_cond_broadcast(&s->job_cv);
        uv_cond_broadcast(&s->space_cv);
        uv_mutex_unlock(&s->mu);
        uv_thread_join(&io.worker);
    }
    if (io.loop_ok) {
        uv_run(&io.loop, UV_RUN_NOWAIT); /* let close callbacks run */
        if (uv_loop_close(&io.loop)) LOG_WARN("serve: loop closed with handles open");
    }
    rpc_lines_free(&io.lines);
    rpc_server_free(s);
    return rc ? 1 : 0;
}
