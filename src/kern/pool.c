/* pool: the one persistent worker pool behind kern_matvec (and anything else that splits work
 * into independent tasks).
 *
 * Why: a forward pass issues hundreds of small matrix-vector products per token; creating
 * threads per call would cost more than the work. Workers are created once, spin briefly
 * between jobs (jobs arrive microseconds apart during a forward pass) and then sleep on a
 * condition variable so an idle server costs nothing.
 *
 * Protocol (all shared state is C11 atomics except the job description, which is published and
 * retired through them):
 *   gen      even = no job open, odd = job open. kern_pool_run bumps it to odd to open a job and
 *            back to even when every task has completed.
 *   active   workers currently inside a job. A worker joins by active++ and then re-reading gen:
 *            if the job it saw is no longer open it leaves without touching the job. The caller
 *            rewrites the job description only after closing the previous job and seeing
 *            active == 0 (seq_cst on both sides, Dekker style), so a late worker can never read a
 *            half-written job or run a task of the wrong job.
 *   next     next task index to hand out (fetch_add); the caller takes tasks too.
 *   done     tasks finished; the caller returns once done == n_tasks. Each task's writes are
 *            released by its done increment and acquired by the caller's load.
 *   sleeping workers blocked on the condition variable; the caller only takes the mutex to
 *            broadcast when it is non-zero (again Dekker: gen store, then sleeping load).
 * Which worker runs which task is timing-dependent, but callers make every task write only its
 * own outputs, so results do not depend on it.
 *
 * Invariants: one job at a time per pool; a kern_pool_run that finds the pool busy (called from
 * another thread, or from inside a task) runs its tasks inline instead of deadlocking.
 * kern_pool_destroy must not race with kern_pool_run; it stops and joins every worker. */
#include "kern.h"

#include "../util/err.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MAX_THREADS 256
#define POOL_SPIN_ITERS 20000 /* ~1 ms of pause instructions before a worker sleeps */
#define POOL_CALLER_SPIN 2000 /* caller spins this long before yielding while waiting */

struct kern_pool {
    int n_threads; /* total, the calling thread included */
    int n_workers; /* n_threads - 1 */
    pthread_t *threads; /* [n_workers] */
    bool mu_ok, cv_ok;  /* which sync objects exist (for a partial create) */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* workers wait here for a new job or stop */

    /* Own cache lines: workers spin reading gen while tasks bump next and done; sharing one
     * line would make every hand-out and completion bounce it between cores. */
    _Alignas(64) atomic_uint gen;
    atomic_int active;
    atomic_int sleeping;
    atomic_bool stop;
    atomic_bool busy;
    _Alignas(64) atomic_int next;
    _Alignas(64) atomic_int done;

    /* The job: written only while gen is even and active == 0. */
    _Alignas(64) kern_task_fn fn;
    void *arg;
    int n_tasks;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
    __asm__ __volatile__("yield" ::: "memory");
#elif defined(__riscv)
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Take tasks of the open job until none are left. */
static void run_tasks(struct kern_pool *p)
{
    kern_task_fn fn = p->fn;
    void *arg = p->arg;
    int n = p->n_tasks;
    for (;;) {
        int t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= n) break;
        fn(arg, t, n);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

/* An open generation the worker has not served yet. */
static inline bool new_job(unsigned g, unsigned last)
{
    return (g & 1u) && g != last;
}

static void *worker_main(void *vp)
{
    struct kern_pool *p = vp;
    unsigned last = 0;
    for (;;) {
        unsigned g = atomic_load(&p->gen);
        if (!new_job(g, last)) {
            int spin = 0;
            while (!new_job(g, last) && !atomic_load_explicit(&p->stop, memory_order_relaxed) &&
                   spin < POOL_SPIN_ITERS) {
                cpu_relax();
                spin++;
                g = atomic_load(&p->gen);
            }
            if (!new_job(g, last) && !atomic_load(&p->stop)) {
                pthread_mutex_lock(&p->mu);
                atomic_fetch_add(&p->sleeping, 1);
                for (;;) {
                    g = atomic_load(&p->gen);
                    if (new_job(g, last) || atomic_load(&p->stop)) break;
                    pthread_cond_wait(&p->cv, &p->mu);
                }
                atomic_fetch_sub(&p->sleeping, 1);
                pthread_mutex_unlock(&p->mu);
            }
            if (atomic_load(&p->stop)) return NULL;
            continue; /* re-read gen at the top */
        }
        /* Join job g, then make sure it is still open before touching it. */
        atomic_fetch_add(&p->active, 1);
        if (atomic_load(&p->gen) == g) {
            last = g;
            run_tasks(p);
        } else {
            last = g; /* closed already: nothing left to do for it */
        }
        atomic_fetch_sub_explicit(&p->active, 1, memory_order_release);
    }
}

static void pool_free(struct kern_pool *p, int started)
{
    if (started > 0) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->stop, true);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; i < started; i++) pthread_join(p->threads[i], NULL);
    }
    if (p->cv_ok) pthread_cond_destroy(&p->cv);
    if (p->mu_ok) pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

int kern_pool_create(struct kern_pool **out, int n_threads)
{
    if (!out) return ERR_INVALID;
    *out = NULL;
    if (n_threads < 1 || n_threads > POOL_MAX_THREADS) return ERR_INVALID;
    /* sizeof is a multiple of the 64-byte alignment, as aligned_alloc requires */
    struct kern_pool *p = aligned_alloc(_Alignof(struct kern_pool), sizeof *p);
    if (!p) return ERR_NOMEM;
    memset(p, 0, sizeof *p);
    p->n_threads = n_threads;
    p->n_workers = n_threads - 1;
    atomic_init(&p->gen, 0);
    atomic_init(&p->active, 0);
    atomic_init(&p->next, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->sleeping, 0);
    atomic_init(&p->stop, false);
    atomic_init(&p->busy, false);
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        pool_free(p, 0);
        return ERR_NOMEM;
    }
    p->mu_ok = true;
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        pool_free(p, 0);
        return ERR_NOMEM;
    }
    p->cv_ok = true;
    if (p->n_workers > 0) {
        p->threads = calloc((size_t)p->n_workers, sizeof *p->threads);
        if (!p->threads) {
            pool_free(p, 0);
            return ERR_NOMEM;
        }
        for (int i = 0; i < p->n_workers; i++) {
            if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
                pool_free(p, i);
                return ERR_NOMEM;
            }
        }
    }
    *out = p;
    return 0;
}

void kern_pool_destroy(struct kern_pool *pool)
{
    if (!pool) return;
    pool_free(pool, pool->n_workers);
}

int kern_pool_threads(const struct kern_pool *pool)
{
    return pool ? pool->n_threads : 1;
}

static void run_inline(kern_task_fn fn, void *arg, int n_tasks)
{
    for (int t = 0; t < n_tasks; t++) fn(arg, t, n_tasks);
}

void kern_pool_run(struct kern_pool *pool, kern_task_fn fn, void *arg, int n_tasks)
{
    if (!fn || n_tasks <= 0) return;
    if (!pool || pool->n_workers == 0 || n_tasks == 1) {
        run_inline(fn, arg, n_tasks);
        return;
    }
    if (atomic_exchange(&pool->busy, true)) { /* nested or concurrent use: stay correct */
        run_inline(fn, arg, n_tasks);
        return;
    }

    /* Late joiners of the previous (closed) job must be gone before the job is rewritten. */
    for (int spin = 0; atomic_load(&pool->active) != 0; spin++) {
        if (spin < POOL_CALLER_SPIN) cpu_relax();
        else sched_yield();
    }
    pool->fn = fn;
    pool->arg = arg;
    pool->n_tasks = n_tasks;
    atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    atomic_fetch_add(&pool->gen, 1); /* open: publishes the job (seq_cst, so also a release) */
    if (atomic_load(&pool->sleeping) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->cv);
        pthread_mutex_unlock(&pool->mu);
    }

    run_tasks(pool);

    for (int spin = 0; atomic_load_explicit(&pool->done, memory_order_acquire) < n_tasks; spin++) {
        if (spin < POOL_CALLER_SPIN) cpu_relax();
        else sched_yield();
    }
    atomic_fetch_add(&pool->gen, 1); /* close */
    atomic_store_explicit(&pool->busy, false, memory_order_release);
}
