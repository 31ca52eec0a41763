/*
 * lmrun's persistent CPU threadpool for node-llama-cpp (Linux).
 *
 * Why: node-llama-cpp never attaches a ggml threadpool to its contexts, so every llama_decode()
 * with n_threads > 1 creates its helper threads and joins them again. On a 2-core machine a
 * helper then waits milliseconds for a core while the decoding thread spins in ggml's barrier,
 * and generation with 2 threads runs at 0.4x of llama-bench (which attaches a pool).
 *
 * How: loaded with RTLD_GLOBAL after node-llama-cpp's addon but before its first decode, this
 * library's llama_decode() and llama_free() come first when the addon's lazily bound calls are
 * resolved (the global scope is searched before the addon's own libllama). On a context's first
 * decode it creates a pool with llama.cpp's defaults (what llama-bench does), attaches it with
 * llama_attach_threadpool(), and then calls the real llama_decode(); llama_free() frees the pools
 * after the context. A context keeps one pool per thread count it uses (prompt and generation can
 * differ); ggml pauses the one not in use. Anything missing: plain pass-through.
 *
 * Being on the decode path, it also times llama_decode (run --verbose), offers the bench a
 * synchronous one-token decode (llama-bench's test_gen loop, below), and gives eval what
 * llama-perplexity's task scores use: a unified KV cache on request (llama_init_from_model is
 * interposed the same way) and the log-probability summaries of chosen rows, computed in the decode.
 *
 * It is also a small Node-API module so that process.dlopen() accepts and keeps it.
 * The declarations below mirror llama.h / ggml.h of the llama.cpp release node-llama-cpp ships
 * (VERIFIED_LLAMA_CPP_RELEASE in threadpool.ts: lmrun loads this only for that release).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <unistd.h>
#include <link.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

struct llama_context;
struct ggml_threadpool;
typedef struct ggml_backend_reg * ggml_backend_reg_t;

typedef struct llama_batch {
    int32_t n_tokens;
    int32_t * token;
    float * embd;
    int32_t * pos;
    int32_t * n_seq_id;
    int32_t ** seq_id;
    int8_t * logits;
} llama_batch;

#define LMRUN_GGML_MAX_N_THREADS 512
struct ggml_threadpool_params {
    bool cpumask[LMRUN_GGML_MAX_N_THREADS];
    int n_threads;
    int prio;
    uint32_t poll;
    bool strict_cpu;
    bool paused;
};

typedef int32_t (*decode_fn)(struct llama_context *, llama_batch);
typedef void (*free_fn)(struct llama_context *);
typedef int32_t (*n_threads_fn)(struct llama_context *);
typedef void (*attach_fn)(struct llama_context *, struct ggml_threadpool *, struct ggml_threadpool *);
typedef struct ggml_threadpool_params (*params_default_fn)(int);
typedef ggml_backend_reg_t (*reg_by_name_fn)(const char *);
typedef void * (*get_proc_fn)(ggml_backend_reg_t, const char *);
typedef struct ggml_threadpool * (*pool_new_fn)(struct ggml_threadpool_params *);
typedef void (*pool_free_fn)(struct ggml_threadpool *);
typedef llama_batch (*batch_get_one_fn)(int32_t *, int32_t);
typedef void (*synchronize_fn)(struct llama_context *);
typedef void (*set_n_threads_fn)(struct llama_context *, int32_t, int32_t);

/* llama_context_params of llama.h (VERIFIED_LLAMA_CPP_RELEASE): passed by value to llama_init_from_model. */
struct llama_model;
struct llama_vocab;
typedef struct llama_context_params {
    uint32_t n_ctx, n_batch, n_ubatch, n_seq_max, n_rs_seq, n_outputs_max, n_outputs_max_per_seq;
    int32_t n_threads, n_threads_batch;
    int ctx_type, rope_scaling_type, pooling_type, attention_type, flash_attn_type;
    float rope_freq_base, rope_freq_scale, yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow;
    uint32_t yarn_orig_ctx;
    float defrag_thold;
    void * cb_eval;
    void * cb_eval_user_data;
    int type_k, type_v;
    void * abort_callback;
    void * abort_callback_data;
    bool embeddings, offload_kqv, no_perf, op_offload, swa_full, kv_unified;
    void * samplers;
    size_t n_samplers;
    struct llama_context * ctx_other;
} llama_context_params;
typedef struct llama_context * (*init_from_model_fn)(struct llama_model *, llama_context_params);
typedef llama_context_params (*context_default_params_fn)(void);
typedef float * (*get_logits_ith_fn)(struct llama_context *, int32_t);
typedef const struct llama_model * (*get_model_fn)(const struct llama_context *);
typedef const struct llama_vocab * (*model_get_vocab_fn)(const struct llama_model *);
typedef int32_t (*vocab_n_tokens_fn)(const struct llama_vocab *);

static struct {
    decode_fn decode;
    free_fn free;
    n_threads_fn n_threads;
    n_threads_fn n_threads_batch;
    attach_fn attach;
    params_default_fn params_default;
    pool_new_fn pool_new;
    pool_free_fn pool_free;
    batch_get_one_fn batch_get_one;
    synchronize_fn synchronize;
    set_n_threads_fn set_n_threads;
    init_from_model_fn init_from_model;
    get_logits_ith_fn get_logits_ith;
    get_model_fn get_model;
    model_get_vocab_fn model_get_vocab;
    vocab_n_tokens_fn vocab_n_tokens;
    bool pools_enabled;
    /* llama_context_params has the layout declared above (checked against llama_context_default_params). */
    bool context_params_verified;
    char library[512];
    char problem[256];
} real;

static int resolved = 0;
static pthread_mutex_t resolve_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Generation threads that follow the machine's load (only when lmrun chose the thread count, see
 * setAdaptiveThreads). ggml's workers meet at a spinning barrier after every operation of a token's
 * graph (hundreds per token). When other processes keep the cores busy, a worker that the scheduler
 * has descheduled makes the others spin until its next time slice: a 135M-model token took ~0.2 s
 * with 2 threads against ~15 ms with 1 under two busy loops on 2 cores. So single-token decodes start
 * with as many threads as there are cores not busy with other processes (capped at the count asked
 * for), and every so often the shim looks again: one step fewer threads when other work appeared or
 * a token took far longer than the recent ones, one step more when cores came free. A step is kept
 * only if a few tokens with it were faster than the recent ones (a slower try is cut short).
 */
#define RECENT_TOKENS 8
#define PROBE_TOKENS 3
#define CHECK_INTERVAL_MIN 32
#define CHECK_INTERVAL_MAX 512
typedef struct {
    int requested;      /* the context's n_threads this state was made for (0: none yet) */
    int current;        /* threads single-token decodes use now */
    int probe;          /* threads being tried (0: none) */
    int probe_count;
    double probe_ms[PROBE_TOKENS];
    double recent_ms[RECENT_TOKENS];
    int recent_count, recent_next;
    bool suspect;       /* a token was much slower than the recent ones: try fewer threads */
    unsigned long tokens, next_check, interval;
} adaptive_state;

/* A context's pools, one per thread count it has used (prompt and generation may differ). */
#define MAX_CONTEXTS 64
#define POOLS_PER_CONTEXT 8
typedef struct {
    struct llama_context * ctx;
    int attached_threads, attached_threads_batch;
    int n_threads[POOLS_PER_CONTEXT];
    struct ggml_threadpool * pool[POOLS_PER_CONTEXT];
    adaptive_state adapt;
} context_pools;

static context_pools contexts[MAX_CONTEXTS];
static unsigned long pools_created = 0;
static unsigned long decodes_with_pool = 0;

static int own_marker;

/* The loaded object, other than this one, that defines llama_decode (libllama of node-llama-cpp's binding). */
static int find_libllama(struct dl_phdr_info * info, size_t size, void * data) {
    (void)size;
    void ** found = data;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "libllama")) return 0;
    void * handle = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
    if (!handle) return 0;
    void * symbol = dlsym(handle, "llama_decode");
    Dl_info where, self;
    if (symbol && dladdr(symbol, &where) && dladdr((void *)&own_marker, &self) &&
        strcmp(where.dli_fname, self.dli_fname) != 0 && strcmp(where.dli_fname, info->dlpi_name) == 0) {
        *found = handle;
        snprintf(real.library, sizeof real.library, "%s", info->dlpi_name);
        return 1;
    }
    dlclose(handle);
    return 0;
}

static void resolve(void) {
    void * libllama = NULL;
    dl_iterate_phdr(find_libllama, &libllama);
    if (!libllama) {
        snprintf(real.problem, sizeof real.problem, "libllama is not loaded");
        return;
    }
    real.decode = (decode_fn)dlsym(libllama, "llama_decode");
    real.free = (free_fn)dlsym(libllama, "llama_free");
    real.batch_get_one = (batch_get_one_fn)dlsym(libllama, "llama_batch_get_one");
    real.synchronize = (synchronize_fn)dlsym(libllama, "llama_synchronize");
    real.n_threads = (n_threads_fn)dlsym(libllama, "llama_n_threads");
    real.n_threads_batch = (n_threads_fn)dlsym(libllama, "llama_n_threads_batch");
    real.set_n_threads = (set_n_threads_fn)dlsym(libllama, "llama_set_n_threads");
    real.attach = (attach_fn)dlsym(libllama, "llama_attach_threadpool");
    real.init_from_model = (init_from_model_fn)dlsym(libllama, "llama_init_from_model");
    real.get_logits_ith = (get_logits_ith_fn)dlsym(libllama, "llama_get_logits_ith");
    real.get_model = (get_model_fn)dlsym(libllama, "llama_get_model");
    real.model_get_vocab = (model_get_vocab_fn)dlsym(libllama, "llama_model_get_vocab");
    real.vocab_n_tokens = (vocab_n_tokens_fn)dlsym(libllama, "llama_vocab_n_tokens");
    context_default_params_fn context_defaults = (context_default_params_fn)dlsym(libllama, "llama_context_default_params");
    if (context_defaults && real.init_from_model) {
        /* Fields from the start, the middle and the end of the struct at their documented defaults. */
        llama_context_params d = context_defaults();
        real.context_params_verified = d.n_ctx == 512 && d.n_batch == 2048 && d.n_ubatch == 512 && d.n_seq_max == 1 &&
            d.n_outputs_max_per_seq == 1 && d.yarn_ext_factor == -1.0f && d.defrag_thold == -1.0f && d.cb_eval == NULL &&
            d.type_k == 1 && d.type_v == 1 && d.abort_callback == NULL && !d.embeddings && d.offload_kqv && d.no_perf &&
            d.op_offload && d.swa_full && !d.kv_unified && d.samplers == NULL && d.n_samplers == 0 && d.ctx_other == NULL;
    }
    /* libllama's dependencies (libggml, libggml-base) are searched too. */
    real.params_default = (params_default_fn)dlsym(libllama, "ggml_threadpool_params_default");
    reg_by_name_fn reg_by_name = (reg_by_name_fn)dlsym(libllama, "ggml_backend_reg_by_name");
    get_proc_fn get_proc = (get_proc_fn)dlsym(libllama, "ggml_backend_reg_get_proc_address");
    if (!real.n_threads || !real.n_threads_batch || !real.set_n_threads || !real.attach || !real.params_default || !reg_by_name || !get_proc) {
        snprintf(real.problem, sizeof real.problem, "this llama.cpp build lacks the threadpool API");
        return;
    }
    ggml_backend_reg_t cpu = reg_by_name("CPU");
    if (!cpu) {
        snprintf(real.problem, sizeof real.problem, "no CPU backend is registered");
        return;
    }
    real.pool_new = (pool_new_fn)get_proc(cpu, "ggml_threadpool_new");
    real.pool_free = (pool_free_fn)get_proc(cpu, "ggml_threadpool_free");
    if (!real.pool_new || !real.pool_free) {
        snprintf(real.problem, sizeof real.problem, "the CPU backend does not offer ggml_threadpool_new");
        return;
    }
    /* A cheap check that ggml_threadpool_params still has the layout declared above. */
    struct ggml_threadpool_params probe = real.params_default(3);
    if (probe.n_threads != 3 || probe.poll > 100 || probe.paused || probe.strict_cpu) {
        snprintf(real.problem, sizeof real.problem, "ggml_threadpool_params has changed in this llama.cpp");
        return;
    }
    real.pools_enabled = true;
}

static context_pools * entry_for(struct llama_context * ctx, bool create) {
    context_pools * empty = NULL;
    for (int i = 0; i < MAX_CONTEXTS; i++) {
        if (contexts[i].ctx == ctx) return &contexts[i];
        if (!contexts[i].ctx && !empty) empty = &contexts[i];
    }
    if (!create || !empty) return NULL;
    memset(empty, 0, sizeof *empty);
    empty->ctx = ctx;
    return empty;
}

static struct ggml_threadpool * pool_for(context_pools * entry, int n_threads) {
    int free_slot = -1;
    for (int i = 0; i < POOLS_PER_CONTEXT; i++) {
        if (entry->pool[i] && entry->n_threads[i] == n_threads) return entry->pool[i];
        if (!entry->pool[i] && free_slot < 0) free_slot = i;
    }
    if (free_slot < 0) return NULL;
    /* llama.cpp's defaults (polling level 50, no affinity): what llama-bench and llama-cli use. */
    struct ggml_threadpool_params params = real.params_default(n_threads);
    struct ggml_threadpool * pool = real.pool_new(&params);
    if (!pool) return NULL;
    entry->pool[free_slot] = pool;
    entry->n_threads[free_slot] = n_threads;
    pools_created++;
    return pool;
}

/* Attaches the pools for these thread counts; false: none could be made (per-decode threads then). */
static bool attach_pools(context_pools * entry, int n_threads, int n_threads_batch) {
    if (entry->attached_threads != n_threads || entry->attached_threads_batch != n_threads_batch) {
        struct ggml_threadpool * pool = pool_for(entry, n_threads);
        struct ggml_threadpool * pool_batch = pool_for(entry, n_threads_batch);
        if (!pool || !pool_batch) pool = pool_batch = NULL; /* back to llama.cpp's per-decode threads */
        /* Switching away from a pool pauses it (ggml does that), so an unused one sleeps. */
        real.attach(entry->ctx, pool, pool_batch);
        entry->attached_threads = pool && pool_batch ? n_threads : 0;
        entry->attached_threads_batch = pool && pool_batch ? n_threads_batch : 0;
    }
    return entry->attached_threads != 0;
}

/* ---- adaptive generation threads (see adaptive_state) ---- */
static int adaptive_enabled = 0;
/* Prompt batches too (lmrun also chose --threads-batch): a short prompt's graph collapses the same way. */
static int adaptive_batch_enabled = 0;
/* LMRUN_THREADPOOL_DEBUG=1: each decision on stderr (to check the policy on a given machine). */
static int adaptive_debug = -1;
#define ADAPT_LOG(...) do { \
    if (adaptive_debug < 0) adaptive_debug = getenv("LMRUN_THREADPOOL_DEBUG") && strcmp(getenv("LMRUN_THREADPOOL_DEBUG"), "1") == 0; \
    if (adaptive_debug) fprintf(stderr, "lmrun threadpool: " __VA_ARGS__); \
} while (0)
/*
 * Greedy requests in flight (holdAdaptiveThreads): the count stays where it is. llama.cpp's answer
 * at temperature 0 depends on the thread count (its flash attention splits a long KV cache between
 * threads: -t 1 and -t 2 part after ~250 tokens), so a count switched mid-answer made the same greedy
 * request give different texts run after run. The first choice (by free cores) still follows the load.
 */
static int adaptive_holds = 0;
#define TOKENS_BY_THREADS_MAX 64
static unsigned long tokens_by_threads[TOKENS_BY_THREADS_MAX + 1];
static unsigned long thread_switches = 0;

static int cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int read_small_file(const char * path, char * buffer, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buffer, size - 1);
    close(fd);
    if (n < 0) return -1;
    buffer[n] = 0;
    return (int)n;
}

/* Runnable threads of this process right now (the caller is one). */
static int own_running_threads(void) {
    DIR * dir = opendir("/proc/self/task");
    if (!dir) return 1;
    int running = 0;
    struct dirent * item;
    char path[300], stat[512];
    while ((item = readdir(dir)) != NULL) {
        if (item->d_name[0] < '0' || item->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", item->d_name);
        if (read_small_file(path, stat, sizeof stat) <= 0) continue;
        const char * end = strrchr(stat, ')'); /* the name may hold spaces and parentheses */
        if (end && end[1] == ' ' && end[2] == 'R') running++;
    }
    closedir(dir);
    return running > 0 ? running : 1;
}

/* Cores not taken by other processes' runnable threads at one moment (/proc/loadavg's running count). */
static int free_cores_once(int cores) {
    char text[128];
    int own = own_running_threads();
    if (read_small_file("/proc/loadavg", text, sizeof text) <= 0) return cores;
    double a, b, c;
    int running = 0, total = 0;
    if (sscanf(text, "%lf %lf %lf %d/%d", &a, &b, &c, &running, &total) != 5) return cores;
    /* Our threads come and go between the two reads: count the most seen, so as not to take them for others. */
    int own_after = own_running_threads();
    int others = running - (own_after > own ? own_after : own);
    if (others < 0) others = 0;
    int free = cores - others;
    return free > 0 ? free : 0;
}

/* The best of a few looks: a process that runs for a moment is not a busy core (~0.1 ms each). */
static int free_cores(void) {
    int cores = cpu_count(), best = 0;
    for (int i = 0; i < 3 && best < cores; i++) {
        int free = free_cores_once(cores);
        if (free > best) best = free;
    }
    return best;
}

static uint64_t now_nanos(void);

/* free_cores() at most every 50 ms: serve's batched steps come every few milliseconds. Under pools_lock. */
#define FREE_CORES_REUSE_NS 50000000ull
static int free_cores_recent(void) {
    static int last = -1;
    static uint64_t looked_at = 0;
    uint64_t now = now_nanos();
    if (last < 0 || now - looked_at > FREE_CORES_REUSE_NS) {
        last = free_cores();
        looked_at = now;
    }
    return last;
}

static double median_of(const double * values, int count) {
    double sorted[RECENT_TOKENS > PROBE_TOKENS ? RECENT_TOKENS : PROBE_TOKENS];
    for (int i = 0; i < count; i++) {
        int j = i;
        while (j > 0 && sorted[j - 1] > values[i]) { sorted[j] = sorted[j - 1]; j--; }
        sorted[j] = values[i];
    }
    return count % 2 ? sorted[count / 2] : (sorted[count / 2 - 1] + sorted[count / 2]) / 2;
}

static int fewer_threads(int threads) { return threads > 1 ? threads / 2 : 1; }
static int more_threads(const adaptive_state * a) { return a->current * 2 < a->requested ? a->current * 2 : a->requested; }

/* The thread count for the next single-token decode of a context that asked for `requested`. */
static int adaptive_choose(adaptive_state * a, int requested) {
    if (a->requested != requested) {
        memset(a, 0, sizeof *a);
        a->requested = requested;
        int threads = requested, free = free_cores();
        while (threads > 1 && threads > free) threads = fewer_threads(threads);
        a->current = threads;
        ADAPT_LOG("start with %d of %d threads (%d cores free)\n", threads, requested, free);
        a->interval = CHECK_INTERVAL_MIN;
        a->next_check = CHECK_INTERVAL_MIN;
    }
    a->tokens++;
    if (__atomic_load_n(&adaptive_holds, __ATOMIC_RELAXED) > 0) {
        a->probe = 0;
        return a->current;
    }
    if (a->probe) return a->probe;
    if (a->tokens >= a->next_check && a->recent_count >= RECENT_TOKENS / 2) {
        a->next_check = a->tokens + a->interval;
        int free = free_cores();
        if (a->current > 1 && (a->suspect || free < a->current)) a->probe = fewer_threads(a->current);
        else if (a->current < a->requested && free >= more_threads(a)) a->probe = more_threads(a);
        if (a->probe) ADAPT_LOG("token %lu: try %d threads instead of %d (%d cores free%s)\n", a->tokens, a->probe, a->current, free, a->suspect ? ", a slow token" : "");
        a->suspect = false;
        a->probe_count = 0;
        if (a->probe) return a->probe;
    }
    return a->current;
}

static void adaptive_record(adaptive_state * a, int threads, double ms) {
    if (a->probe && threads == a->probe) {
        double recent = median_of(a->recent_ms, a->recent_count);
        a->probe_ms[a->probe_count++] = ms;
        bool worse_at_once = a->probe > a->current && ms > 3 * recent; /* more threads and far slower: stop now */
        if (!worse_at_once && a->probe_count < PROBE_TOKENS) return;
        double tried = median_of(a->probe_ms, a->probe_count);
        bool better = !worse_at_once && tried < 0.95 * recent;
        ADAPT_LOG("token %lu: %d threads %.2f ms/token vs %d threads %.2f: %s\n", a->tokens, a->probe, tried, a->current, recent, better ? "switch" : "stay");
        if (better) {
            a->current = a->probe;
            thread_switches++;
            memcpy(a->recent_ms, a->probe_ms, sizeof(double) * (size_t)a->probe_count);
            a->recent_count = a->probe_count;
            a->recent_next = a->probe_count % RECENT_TOKENS;
            a->interval = CHECK_INTERVAL_MIN;
        } else if (a->interval < CHECK_INTERVAL_MAX) {
            a->interval *= 2; /* the step did not pay: try it less often */
        }
        a->next_check = a->tokens + a->interval;
        a->probe = 0;
        return;
    }
    if (threads != a->current) return;
    if (a->current > 1 && a->recent_count >= RECENT_TOKENS / 2 && ms > 4 * median_of(a->recent_ms, a->recent_count)) {
        a->suspect = true;
        a->next_check = a->tokens + 1;
    }
    a->recent_ms[a->recent_next] = ms;
    a->recent_next = (a->recent_next + 1) % RECENT_TOKENS;
    if (a->recent_count < RECENT_TOKENS) a->recent_count++;
}

/* Retried until libllama is loaded: a status() call before the binding must not make it permanent. */
static void ensure_resolved(void) {
    if (__atomic_load_n(&resolved, __ATOMIC_ACQUIRE)) return;
    pthread_mutex_lock(&resolve_lock);
    if (!resolved) {
        memset(&real, 0, sizeof real);
        resolve();
        if (real.decode) __atomic_store_n(&resolved, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&resolve_lock);
}

/* Time spent inside the real llama_decode, so lmrun can tell decode time from its own overhead. */
static uint64_t decode_nanos = 0;
static uint64_t decode_calls = 0;

static uint64_t now_nanos(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/*
 * Synchronous generation for `lmrun bench` (test_gen as llama-bench runs it): the context of the
 * latest decode through the binding is claimed, then each token is one llama_decode of
 * llama_batch_get_one() and llama_synchronize() on the calling (JavaScript) thread, with no
 * asynchronous hand-off per token. llama_free() of the claimed context unclaims it.
 */
static struct llama_context * last_decoded_ctx = NULL;
static struct llama_context * claimed_ctx = NULL;

/* The pools and adaptive threads around the real llama_decode (called by the exported one below). */
static int32_t decode_with_pools(struct llama_context * ctx, llama_batch batch) {
    ensure_resolved();
    if (!real.decode) return -1;
    __atomic_store_n(&last_decoded_ctx, ctx, __ATOMIC_RELEASE);
    int requested = 0, threads = 0, threads_batch = 0, requested_batch = 0;
    adaptive_state * adapt = NULL;
    if (real.pools_enabled) {
        requested = threads = real.n_threads(ctx);
        threads_batch = requested_batch = real.n_threads_batch(ctx);
        pthread_mutex_lock(&pools_lock);
        context_pools * entry = entry_for(ctx, true);
        if (entry) {
            /* Prompt batches leave the generation pool as it is, so that switching back costs nothing. */
            if (__atomic_load_n(&adaptive_enabled, __ATOMIC_RELAXED) && requested > 1) {
                adapt = &entry->adapt;
                if (batch.n_tokens == 1) threads = adaptive_choose(adapt, requested);
                else if (adapt->requested == requested) threads = adapt->current;
            }
            if (batch.n_tokens != 1 && threads_batch > 1 && __atomic_load_n(&adaptive_batch_enabled, __ATOMIC_RELAXED)) {
                /* A batch is one graph, so no timing to learn from: a recent look at /proc is used (several
                 * sequences generating together make a multi-token batch of every step). */
                int free = free_cores_recent();
                while (threads_batch > 1 && threads_batch > free) threads_batch = fewer_threads(threads_batch);
            }
            if (attach_pools(entry, threads, threads_batch)) decodes_with_pool++;
            else threads = requested, threads_batch = requested_batch, adapt = NULL;
        }
        pthread_mutex_unlock(&pools_lock);
        if (batch.n_tokens != 1) adapt = NULL;
        /* llama.cpp reads the count at compute time; it goes back to what the binding set right after. */
        if (threads != requested || threads_batch != requested_batch) real.set_n_threads(ctx, threads, threads_batch);
    }
    uint64_t started = now_nanos();
    int32_t result = real.decode(ctx, batch);
    uint64_t elapsed = now_nanos() - started;
    if (threads != requested || threads_batch != requested_batch) real.set_n_threads(ctx, requested, requested_batch);
    if (adapt) {
        pthread_mutex_lock(&pools_lock);
        adaptive_record(adapt, threads, (double)elapsed / 1e6);
        tokens_by_threads[threads < TOKENS_BY_THREADS_MAX ? threads : TOKENS_BY_THREADS_MAX]++;
        pthread_mutex_unlock(&pools_lock);
    }
    __atomic_add_fetch(&decode_nanos, elapsed, __ATOMIC_RELAXED);
    __atomic_add_fetch(&decode_calls, 1, __ATOMIC_RELAXED);
    return result;
}

void llama_free(struct llama_context * ctx) {
    ensure_resolved();
    /* (compare-exchange writes the current value into `expected` when they differ: never pass ctx itself) */
    struct llama_context * expected = ctx;
    __atomic_compare_exchange_n(&last_decoded_ctx, &expected, NULL, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    expected = ctx;
    __atomic_compare_exchange_n(&claimed_ctx, &expected, NULL, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    struct ggml_threadpool * owned[POOLS_PER_CONTEXT] = {0};
    pthread_mutex_lock(&pools_lock);
    context_pools * entry = entry_for(ctx, false);
    if (entry) {
        memcpy(owned, entry->pool, sizeof owned);
        memset(entry, 0, sizeof *entry);
    }
    pthread_mutex_unlock(&pools_lock);
    if (real.free) real.free(ctx);
    /* After the context: nothing can run a graph on these pools any more. */
    for (int i = 0; i < POOLS_PER_CONTEXT; i++) {
        if (owned[i]) real.pool_free(owned[i]);
    }
}

/*
 * ---- A unified KV cache on request (lmrun eval) ----
 * node-llama-cpp hard-codes kv_unified = false: every sequence gets its own cache stream, so llama.cpp
 * splits a batch whose sequences bring different numbers of tokens into several passes, and a copy
 * of one sequence's cells to another (the endings of a HellaSwag task after its shared context)
 * moves the whole stream. llama-perplexity scores with one unified cache, where a copy only tags the
 * cells. requestUnifiedKvCache(n_seq_max) asks that contexts with that many sequences be made
 * unified until it is called again with 0 (node-llama-cpp first makes a context without memory to
 * measure one, then the real one: both are asked for). node-llama-cpp's bookkeeping (per-sequence
 * token counts) is unaffected.
 */
static int unified_requested_seq_max = 0;
static unsigned long unified_contexts = 0;

/*
 * ---- Generation contexts: logits for one token per sequence (lmrun serve, run, chat, batch) ----
 * node-llama-cpp leaves n_outputs_max at 0, so llama.cpp reserves its compute buffer for a whole batch of
 * logits (n_vocab x n_batch floats: 62 MiB for a 32k vocabulary at a batch of 512, ~300 MiB for a 152k one),
 * though generating asks for the last token's logits of each sequence only. llama-server sets
 * n_outputs_max = n_parallel; limitOutputs(n_seq_max) asks the same for contexts with that many sequences
 * (not embedding ones) until it is called again with 0. It sizes a reservation only: a batch with more
 * outputs still runs (llama.cpp grows the buffer for it).
 */
static int outputs_limited_seq_max = 0;
static unsigned long output_limited_contexts = 0;

struct llama_context * llama_init_from_model(struct llama_model * model, llama_context_params params) {
    ensure_resolved();
    if (!real.init_from_model) return NULL;
    int wanted = __atomic_load_n(&unified_requested_seq_max, __ATOMIC_ACQUIRE);
    bool unified = real.context_params_verified && wanted > 0 && (int)params.n_seq_max == wanted;
    if (unified) params.kv_unified = true;
    int limited = __atomic_load_n(&outputs_limited_seq_max, __ATOMIC_ACQUIRE);
    bool limit = real.context_params_verified && limited > 0 && (int)params.n_seq_max == limited && !params.embeddings && params.n_outputs_max == 0;
    if (limit) params.n_outputs_max = params.n_seq_max;
    struct llama_context * ctx = real.init_from_model(model, params);
    if (unified && ctx) __atomic_add_fetch(&unified_contexts, 1, __ATOMIC_RELAXED);
    if (limit && ctx) __atomic_add_fetch(&output_limited_contexts, 1, __ATOMIC_RELAXED);
    return ctx;
}

/*
 * ---- Logit taps (lmrun eval) ----
 * Scoring a HellaSwag ending needs, at each of its positions, the target token's logit, the row's
 * maximum and sum(expf(l - max)). Through node-llama-cpp that is one asynchronous sampleToken call
 * per position (a sampler pass over the vocabulary and a promise each). A tap asks for them at one
 * (sequence, position): the decode that evaluates that token gets an output row there, and right
 * after it the summary is computed here, on the decoding thread, the way llama-perplexity's
 * compute_logprobs() (float sum of expf) and softmax() (double sum) do. JavaScript reads it once the
 * evaluation has resolved.
 */
typedef struct {
    int32_t seq, pos;
    int32_t n_targets;
    int32_t * targets;
    float * target_logits;
    float max_logit;
    float sum_exp;          /* compute_logprobs() sums in float */
    double sum_exp_double;  /* softmax() in double */
    int state;
    bool dropped; /* cleared by JavaScript while its decode was running: freed when that decode ends */
} logit_tap;
enum { TAP_FREE = 0, TAP_PENDING, TAP_DECODING, TAP_DONE, TAP_FAILED };
static logit_tap ** taps = NULL;
static int taps_capacity = 0;
static int taps_pending = 0;
static pthread_mutex_t taps_lock = PTHREAD_MUTEX_INITIALIZER;

static void free_tap(int k) {
    free(taps[k]->targets);
    free(taps[k]->target_logits);
    free(taps[k]);
    taps[k] = NULL;
}

static void summarize_row(const float * row, int32_t n_vocab, logit_tap * tap) {
    float max_logit = row[0];
    for (int32_t j = 1; j < n_vocab; j++) max_logit = row[j] > max_logit ? row[j] : max_logit;
    float sum = 0.0f;
    double sum_double = 0.0;
    for (int32_t j = 0; j < n_vocab; j++) {
        float e = expf(row[j] - max_logit);
        sum += e;
        sum_double += e;
    }
    tap->max_logit = max_logit;
    tap->sum_exp = sum;
    tap->sum_exp_double = sum_double;
    for (int32_t t = 0; t < tap->n_targets; t++) {
        int32_t token = tap->targets[t];
        tap->target_logits[t] = token >= 0 && token < n_vocab ? row[token] : NAN;
    }
}

typedef struct { int tap, index; } tap_match;

/* Before the real decode (under taps_lock): gives every tapped token of the batch an output row. */
static int match_taps(llama_batch batch, tap_match ** found) {
    int matches = 0, capacity = 0;
    *found = NULL;
    for (int k = 0; k < taps_capacity; k++) {
        logit_tap * tap = taps[k];
        if (!tap || tap->state != TAP_PENDING) continue;
        for (int32_t i = 0; i < batch.n_tokens; i++) {
            if (batch.pos[i] != tap->pos || batch.n_seq_id[i] < 1 || batch.seq_id[i][0] != tap->seq) continue;
            if (matches == capacity) {
                capacity = capacity ? capacity * 2 : 64;
                tap_match * grown = realloc(*found, sizeof(tap_match) * (size_t)capacity);
                if (!grown) return matches;
                *found = grown;
            }
            (*found)[matches++] = (tap_match){ k, i };
            tap->state = TAP_DECODING;
            batch.logits[i] = 1;
            break;
        }
    }
    return matches;
}

/* Rows to summarise, shared out between threads (llama-perplexity's compute_logprobs() uses them all). */
typedef struct {
    logit_tap ** taps;
    const float ** rows;
    int count, stride, first;
    int32_t n_vocab;
} summary_work;

static void * summarize_share(void * data) {
    summary_work * work = data;
    for (int m = work->first; m < work->count; m += work->stride) summarize_row(work->rows[m], work->n_vocab, work->taps[m]);
    return NULL;
}

#define SUMMARY_THREADS_MAX 8
/* Below this many logits a second thread costs more than it saves. */
#define SUMMARY_WORK_PER_THREAD 2000000L

/* After it (under taps_lock): the summaries, from the rows llama.cpp kept. */
static void finish_taps(struct llama_context * ctx, const tap_match * found, int matches, int32_t status) {
    int32_t n_vocab = real.get_model && real.model_get_vocab && real.vocab_n_tokens ? real.vocab_n_tokens(real.model_get_vocab(real.get_model(ctx))) : 0;
    logit_tap ** todo = malloc(sizeof(logit_tap *) * (size_t)matches);
    const float ** rows = malloc(sizeof(float *) * (size_t)matches);
    int count = 0;
    for (int m = 0; m < matches; m++) {
        logit_tap * tap = taps[found[m].tap];
        __atomic_sub_fetch(&taps_pending, 1, __ATOMIC_RELEASE);
        if (tap->dropped) {
            free_tap(found[m].tap);
            continue;
        }
        const float * row = status == 0 && n_vocab > 0 && real.get_logits_ith ? real.get_logits_ith(ctx, found[m].index) : NULL;
        if (row && todo && rows) {
            todo[count] = tap;
            rows[count++] = row;
        } else if (row) {
            summarize_row(row, n_vocab, tap);
        }
        tap->state = row ? TAP_DONE : TAP_FAILED;
    }
    int threads = real.n_threads_batch ? real.n_threads_batch(ctx) : 1;
    long per_thread = (long)count * n_vocab / SUMMARY_WORK_PER_THREAD;
    if (threads > per_thread) threads = (int)per_thread;
    if (threads > SUMMARY_THREADS_MAX) threads = SUMMARY_THREADS_MAX;
    if (threads < 1) threads = 1;
    summary_work work[SUMMARY_THREADS_MAX];
    pthread_t helpers[SUMMARY_THREADS_MAX];
    bool started[SUMMARY_THREADS_MAX] = {0};
    for (int t = 0; t < threads; t++) work[t] = (summary_work){ todo, rows, count, threads, t, n_vocab };
    for (int t = 1; t < threads; t++) started[t] = pthread_create(&helpers[t], NULL, summarize_share, &work[t]) == 0;
    summarize_share(&work[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t]) pthread_join(helpers[t], NULL);
        else summarize_share(&work[t]);
    }
    free(todo);
    free(rows);
}

/*
 * ---- Shared prefixes (lmrun eval) ----
 * llama-perplexity scores a task in one llama_decode: the context's tokens carry the sequence ids of
 * all the choices (one set of cells for all of them) and each choice's tokens follow with its own id.
 * node-llama-cpp gives each token one sequence id, so eval decoded the context first, tagged its
 * cells for the other choices (an asynchronous call and a lock per choice), then decoded the choices.
 * sharePrefix(seq, count, others[]) asks that in the next decode that holds them, the tokens of `seq`
 * at positions below `count` belong to `others` too; the entry is used once. llama.cpp accepts such
 * tokens with a unified KV cache (requestUnifiedKvCache) and checks the positions itself.
 */
#define SHARED_PREFIXES_MAX 256
#define SHARED_SEQS_MAX 64
typedef struct {
    int32_t seq, count, n_ids;
    int32_t ids[SHARED_SEQS_MAX]; /* ids[0] == seq */
} shared_prefix;
static shared_prefix * shared_prefixes[SHARED_PREFIXES_MAX];
static int shared_pending = 0;
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Rewrites `batch` (a copy: node-llama-cpp's arrays are not touched) so that the shared prefixes it
 * holds carry their sequence sets. Returns the entries used, to free after the decode (their ids are
 * what the rewritten batch points to); *n_seq_id and *seq_id are the new arrays (NULL when unused).
 */
static int apply_shared_prefixes(llama_batch * batch, int32_t ** n_seq_id, int32_t *** seq_id, shared_prefix ** used) {
    int n_used = 0;
    *n_seq_id = NULL;
    *seq_id = NULL;
    pthread_mutex_lock(&shared_lock);
    for (int k = 0; k < SHARED_PREFIXES_MAX; k++) {
        shared_prefix * entry = shared_prefixes[k];
        if (!entry) continue;
        bool matched = false;
        for (int32_t i = 0; i < batch->n_tokens; i++) {
            if (batch->n_seq_id[i] != 1 || batch->seq_id[i][0] != entry->seq || batch->pos[i] >= entry->count) continue;
            if (!*n_seq_id) {
                *n_seq_id = malloc(sizeof(int32_t) * (size_t)batch->n_tokens);
                *seq_id = malloc(sizeof(int32_t *) * (size_t)batch->n_tokens);
                if (!*n_seq_id || !*seq_id) {
                    free(*n_seq_id);
                    free(*seq_id);
                    *n_seq_id = NULL;
                    *seq_id = NULL;
                    pthread_mutex_unlock(&shared_lock);
                    return n_used;
                }
                memcpy(*n_seq_id, batch->n_seq_id, sizeof(int32_t) * (size_t)batch->n_tokens);
                memcpy(*seq_id, batch->seq_id, sizeof(int32_t *) * (size_t)batch->n_tokens);
            }
            (*n_seq_id)[i] = entry->n_ids;
            (*seq_id)[i] = entry->ids;
            matched = true;
        }
        if (matched) {
            used[n_used++] = entry;
            shared_prefixes[k] = NULL;
            __atomic_sub_fetch(&shared_pending, 1, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&shared_lock);
    if (*n_seq_id) {
        batch->n_seq_id = *n_seq_id;
        batch->seq_id = *seq_id;
    }
    return n_used;
}

int32_t llama_decode(struct llama_context * ctx, llama_batch batch) {
    bool tapped = __atomic_load_n(&taps_pending, __ATOMIC_ACQUIRE) != 0 && batch.logits && batch.pos && batch.seq_id;
    bool sharing = __atomic_load_n(&shared_pending, __ATOMIC_ACQUIRE) != 0 && batch.pos && batch.seq_id && batch.n_seq_id;
    if (!tapped && !sharing) return decode_with_pools(ctx, batch);
    tap_match * found = NULL;
    int matches = 0;
    if (tapped) {
        pthread_mutex_lock(&taps_lock);
        matches = match_taps(batch, &found);
        pthread_mutex_unlock(&taps_lock);
    }
    int32_t * n_seq_id = NULL;
    int32_t ** seq_id = NULL;
    shared_prefix * used[SHARED_PREFIXES_MAX];
    int n_used = sharing ? apply_shared_prefixes(&batch, &n_seq_id, &seq_id, used) : 0;
    int32_t status = decode_with_pools(ctx, batch);
    for (int k = 0; k < n_used; k++) free(used[k]);
    free(n_seq_id);
    free(seq_id);
    if (matches > 0) {
        pthread_mutex_lock(&taps_lock);
        finish_taps(ctx, found, matches, status);
        pthread_mutex_unlock(&taps_lock);
    }
    free(found);
    return status;
}

/* ---- Node-API: `status()` for lmrun (declared by hand: the ABI is stable and needs no headers) ---- */
typedef struct napi_env__ * napi_env;
typedef struct napi_value__ * napi_value;
typedef struct napi_callback_info__ * napi_callback_info;
typedef napi_value (*napi_callback)(napi_env, napi_callback_info);
extern int napi_create_object(napi_env, napi_value *);
extern int napi_create_function(napi_env, const char *, size_t, napi_callback, void *, napi_value *);
extern int napi_set_named_property(napi_env, napi_value, const char *, napi_value);
extern int napi_get_boolean(napi_env, bool, napi_value *);
extern int napi_create_double(napi_env, double, napi_value *);
extern int napi_create_string_utf8(napi_env, const char *, size_t, napi_value *);
extern int napi_get_cb_info(napi_env, napi_callback_info, size_t *, napi_value *, napi_value *, void **);
extern int napi_get_value_uint32(napi_env, napi_value, uint32_t *);
extern int napi_create_int32(napi_env, int32_t, napi_value *);
extern int napi_get_value_bool(napi_env, napi_value, bool *);
extern int napi_get_value_int32(napi_env, napi_value, int32_t *);
extern int napi_get_array_length(napi_env, napi_value, uint32_t *);
extern int napi_get_element(napi_env, napi_value, uint32_t, napi_value *);
extern int napi_create_array_with_length(napi_env, size_t, napi_value *);
extern int napi_set_element(napi_env, napi_value, uint32_t, napi_value);
extern int napi_get_null(napi_env, napi_value *);

static void set_value(napi_env env, napi_value object, const char * key, napi_value value) {
    napi_set_named_property(env, object, key, value);
}

static napi_value status(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value result, value;
    ensure_resolved();
    pthread_mutex_lock(&pools_lock);
    bool resolved = real.decode != NULL;
    unsigned long created = pools_created, decodes = decodes_with_pool;
    pthread_mutex_unlock(&pools_lock);
    napi_create_object(env, &result);
    napi_get_boolean(env, resolved, &value);
    set_value(env, result, "resolved", value);
    napi_get_boolean(env, real.pools_enabled, &value);
    set_value(env, result, "enabled", value);
    napi_create_double(env, (double)created, &value);
    set_value(env, result, "poolsCreated", value);
    napi_create_double(env, (double)decodes, &value);
    set_value(env, result, "decodesWithPool", value);
    napi_create_double(env, (double)__atomic_load_n(&decode_calls, __ATOMIC_RELAXED), &value);
    set_value(env, result, "decodes", value);
    napi_create_double(env, (double)__atomic_load_n(&decode_nanos, __ATOMIC_RELAXED) / 1e6, &value);
    set_value(env, result, "decodeMs", value);
    napi_get_boolean(env, __atomic_load_n(&adaptive_enabled, __ATOMIC_RELAXED) != 0, &value);
    set_value(env, result, "adaptive", value);
    napi_value by_threads;
    napi_create_object(env, &by_threads);
    pthread_mutex_lock(&pools_lock);
    for (int i = 1; i <= TOKENS_BY_THREADS_MAX; i++) {
        if (!tokens_by_threads[i]) continue;
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        napi_create_double(env, (double)tokens_by_threads[i], &value);
        set_value(env, by_threads, key, value);
    }
    unsigned long switches = thread_switches;
    pthread_mutex_unlock(&pools_lock);
    set_value(env, result, "tokensByThreads", by_threads);
    napi_create_double(env, (double)switches, &value);
    set_value(env, result, "threadSwitches", value);
    napi_create_int32(env, __atomic_load_n(&adaptive_holds, __ATOMIC_RELAXED), &value);
    set_value(env, result, "adaptiveHolds", value);
    napi_create_double(env, (double)__atomic_load_n(&unified_contexts, __ATOMIC_RELAXED), &value);
    set_value(env, result, "unifiedContexts", value);
    napi_create_double(env, (double)__atomic_load_n(&output_limited_contexts, __ATOMIC_RELAXED), &value);
    set_value(env, result, "outputLimitedContexts", value);
    napi_create_string_utf8(env, real.library, strlen(real.library), &value);
    set_value(env, result, "library", value);
    napi_create_string_utf8(env, real.problem, strlen(real.problem), &value);
    set_value(env, result, "problem", value);
    return result;
}

/* setAdaptiveThreads(generation, batches): decodes may use fewer threads than asked when cores are busy. */
static napi_value set_adaptive_threads(napi_env env, napi_callback_info info) {
    size_t argc = 2;
    napi_value argv[2];
    bool on = false, batch = false;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == 0 && argc >= 1) napi_get_value_bool(env, argv[0], &on);
    if (argc >= 2) napi_get_value_bool(env, argv[1], &batch);
    __atomic_store_n(&adaptive_enabled, on ? 1 : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&adaptive_batch_enabled, batch ? 1 : 0, __ATOMIC_RELAXED);
    napi_value result;
    napi_get_boolean(env, on, &result);
    return result;
}

/* holdAdaptiveThreads(delta): +1 when a greedy request starts, -1 when it ends (see adaptive_holds). */
static napi_value hold_adaptive_threads(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    int32_t delta = 0;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == 0 && argc >= 1) napi_get_value_int32(env, argv[0], &delta);
    int holds = __atomic_add_fetch(&adaptive_holds, delta, __ATOMIC_RELAXED);
    napi_value result;
    napi_create_int32(env, holds, &result);
    return result;
}

/*
 * SIGTERM while the JavaScript thread is inside a long synchronous native call (tokenising a whole
 * corpus for perplexity takes seconds): lmrun's own handler cannot run until the call returns, so
 * a thread here ends the process by the signal if it is still alive `grace` ms after SIGTERM.
 * lmrun's handler normally ends it first, with the partial output (entry.ts). The handler that was
 * there (libuv's, which runs lmrun's) is still called first.
 */
static struct sigaction previous_term;
static int term_pipe[2] = {-1, -1};
static unsigned term_grace_ms = 2000;

static void on_term(int sig, siginfo_t * info, void * context) {
    int saved = errno;
    char byte = 1;
    if (write(term_pipe[1], &byte, 1) < 0) { /* the watchdog is already on its way */ }
    errno = saved;
    if (previous_term.sa_flags & SA_SIGINFO) {
        if (previous_term.sa_sigaction) previous_term.sa_sigaction(sig, info, context);
    } else if (previous_term.sa_handler != SIG_DFL && previous_term.sa_handler != SIG_IGN) {
        previous_term.sa_handler(sig);
    }
}

static void * term_watchdog(void * unused) {
    (void)unused;
    char byte;
    while (read(term_pipe[0], &byte, 1) < 0 && errno == EINTR) {}
    struct timespec grace = { term_grace_ms / 1000, (long)(term_grace_ms % 1000) * 1000000L };
    while (nanosleep(&grace, &grace) < 0 && errno == EINTR) {}
    signal(SIGTERM, SIG_DFL);
    kill(getpid(), SIGTERM);
    return NULL;
}

/* watchTermination(graceMs): true once the watchdog is in place (installed once per process). */
static napi_value watch_termination(napi_env env, napi_callback_info info) {
    static bool installed = false;
    size_t argc = 1;
    napi_value argv[1];
    uint32_t grace = 0;
    if (!installed && napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == 0 && argc == 1 && napi_get_value_uint32(env, argv[0], &grace) == 0 &&
        pipe2(term_pipe, O_CLOEXEC) == 0) {
        term_grace_ms = grace;
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&thread, &attributes, term_watchdog, NULL) == 0) {
            struct sigaction action;
            memset(&action, 0, sizeof action);
            action.sa_sigaction = on_term;
            action.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
            sigfillset(&action.sa_mask);
            installed = sigaction(SIGTERM, &action, &previous_term) == 0;
        }
        pthread_attr_destroy(&attributes);
    }
    napi_value result;
    napi_get_boolean(env, installed, &result);
    return result;
}

/* claimLastContext(): true when the context of the latest decode can be decoded synchronously. */
static napi_value claim_last_context(napi_env env, napi_callback_info info) {
    (void)info;
    ensure_resolved();
    struct llama_context * ctx = __atomic_load_n(&last_decoded_ctx, __ATOMIC_ACQUIRE);
    bool ok = ctx != NULL && real.decode != NULL && real.batch_get_one != NULL && real.synchronize != NULL;
    __atomic_store_n(&claimed_ctx, ok ? ctx : NULL, __ATOMIC_RELEASE);
    napi_value result;
    napi_get_boolean(env, ok, &result);
    return result;
}

/* decodeToken(token): llama_decode of one token at the next position, then llama_synchronize. */
static napi_value decode_token(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    uint32_t token = 0;
    int32_t status = -100; /* no claimed context */
    struct llama_context * ctx = __atomic_load_n(&claimed_ctx, __ATOMIC_ACQUIRE);
    if (ctx && napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == 0 && argc == 1 && napi_get_value_uint32(env, argv[0], &token) == 0) {
        int32_t id = (int32_t)token;
        status = llama_decode(ctx, real.batch_get_one(&id, 1));
        if (status == 0) real.synchronize(ctx);
    }
    napi_value result;
    napi_create_int32(env, status, &result);
    return result;
}

/* Stores a request for contexts with n_seq_max sequences (the one argument; 0 or a bad one: no request). */
static napi_value store_context_request(napi_env env, napi_callback_info info, int * request) {
    size_t argc = 1;
    napi_value argv[1];
    int32_t n_seq_max = 0;
    ensure_resolved();
    bool ok = real.context_params_verified && napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == 0 && argc == 1 &&
        napi_get_value_int32(env, argv[0], &n_seq_max) == 0 && n_seq_max > 0;
    __atomic_store_n(request, ok ? n_seq_max : 0, __ATOMIC_RELEASE);
    napi_value result;
    napi_get_boolean(env, ok, &result);
    return result;
}

/* requestUnifiedKvCache(nSeqMax): true when contexts with that many sequences will get a unified KV cache (0: no more). */
static napi_value request_unified_kv_cache(napi_env env, napi_callback_info info) {
    return store_context_request(env, info, &unified_requested_seq_max);
}

/* limitOutputs(nSeqMax): true when contexts with that many sequences will reserve logits for one token each (0: no more). */
static napi_value limit_outputs(napi_env env, napi_callback_info info) {
    return store_context_request(env, info, &outputs_limited_seq_max);
}

/* tapLogits(sequenceId, position, targets[]): a tap's id, or -1 (see logit_tap). */
static napi_value tap_logits(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3], result;
    int32_t seq = -1, pos = -1, id = -1;
    uint32_t n_targets = 0;
    ensure_resolved();
    if (real.get_logits_ith && real.vocab_n_tokens && napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == 0 && argc == 3 &&
        napi_get_value_int32(env, argv[0], &seq) == 0 && napi_get_value_int32(env, argv[1], &pos) == 0 &&
        napi_get_array_length(env, argv[2], &n_targets) == 0) {
        logit_tap * tap = calloc(1, sizeof *tap);
        int32_t * targets = malloc(sizeof(int32_t) * (n_targets ? n_targets : 1));
        float * logits = malloc(sizeof(float) * (n_targets ? n_targets : 1));
        bool ok = tap && targets && logits;
        for (uint32_t t = 0; ok && t < n_targets; t++) {
            napi_value element;
            ok = napi_get_element(env, argv[2], t, &element) == 0 && napi_get_value_int32(env, element, &targets[t]) == 0;
        }
        pthread_mutex_lock(&taps_lock);
        int slot = -1;
        for (int k = 0; ok && k < taps_capacity && slot < 0; k++) if (!taps[k]) slot = k;
        if (ok && slot < 0) {
            int capacity = taps_capacity ? taps_capacity * 2 : 1024;
            logit_tap ** grown = realloc(taps, sizeof(logit_tap *) * (size_t)capacity);
            if (grown) {
                memset(grown + taps_capacity, 0, sizeof(logit_tap *) * (size_t)(capacity - taps_capacity));
                slot = taps_capacity;
                taps = grown;
                taps_capacity = capacity;
            }
        }
        if (ok && slot >= 0) {
            *tap = (logit_tap){ seq, pos, (int32_t)n_targets, targets, logits, 0.0f, 0.0f, 0.0, TAP_PENDING, false };
            taps[slot] = tap;
            __atomic_add_fetch(&taps_pending, 1, __ATOMIC_RELEASE);
            id = slot;
        }
        pthread_mutex_unlock(&taps_lock);
        if (id < 0) {
            free(tap);
            free(targets);
            free(logits);
        }
    }
    napi_create_int32(env, id, &result);
    return result;
}

/* takeTap(id): [maxLogit, sumExp (float), sumExp (double), ...targetLogits] once its decode ran (and frees it), else null. */
static napi_value take_tap(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1], result, value;
    int32_t id = -1;
    napi_get_null(env, &result);
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != 0 || argc != 1 || napi_get_value_int32(env, argv[0], &id) != 0) return result;
    pthread_mutex_lock(&taps_lock);
    logit_tap * tap = id >= 0 && id < taps_capacity ? taps[id] : NULL;
    if (tap && tap->state == TAP_DONE) {
        napi_create_array_with_length(env, 3 + (size_t)tap->n_targets, &result);
        napi_create_double(env, tap->max_logit, &value);
        napi_set_element(env, result, 0, value);
        napi_create_double(env, tap->sum_exp, &value);
        napi_set_element(env, result, 1, value);
        napi_create_double(env, tap->sum_exp_double, &value);
        napi_set_element(env, result, 2, value);
        for (int32_t t = 0; t < tap->n_targets; t++) {
            napi_create_double(env, tap->target_logits[t], &value);
            napi_set_element(env, result, 3 + (uint32_t)t, value);
        }
    }
    if (tap && tap->state != TAP_DECODING) {
        if (tap->state == TAP_PENDING) __atomic_sub_fetch(&taps_pending, 1, __ATOMIC_RELEASE);
        free_tap(id);
    }
    pthread_mutex_unlock(&taps_lock);
    return result;
}

/* clearTaps(): drops every tap (a run that stopped); one in a running decode goes when the decode ends. */
static napi_value clear_taps(napi_env env, napi_callback_info info) {
    (void)info;
    pthread_mutex_lock(&taps_lock);
    for (int k = 0; k < taps_capacity; k++) {
        if (!taps[k]) continue;
        if (taps[k]->state == TAP_DECODING) {
            taps[k]->dropped = true;
            continue;
        }
        if (taps[k]->state == TAP_PENDING) __atomic_sub_fetch(&taps_pending, 1, __ATOMIC_RELEASE);
        free_tap(k);
    }
    pthread_mutex_unlock(&taps_lock);
    napi_value result;
    napi_get_null(env, &result);
    return result;
}

/* sharePrefix(sequenceId, count, otherSequenceIds[]): true when registered (see shared_prefix). */
static napi_value share_prefix(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3], result;
    int32_t seq = -1, count = 0;
    uint32_t n_others = 0;
    bool ok = napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == 0 && argc == 3 && napi_get_value_int32(env, argv[0], &seq) == 0 &&
        napi_get_value_int32(env, argv[1], &count) == 0 && napi_get_array_length(env, argv[2], &n_others) == 0 &&
        seq >= 0 && count > 0 && n_others + 1 <= SHARED_SEQS_MAX;
    shared_prefix * entry = ok ? calloc(1, sizeof *entry) : NULL;
    ok = entry != NULL;
    if (ok) {
        entry->seq = seq;
        entry->count = count;
        entry->n_ids = 1 + (int32_t)n_others;
        entry->ids[0] = seq;
        for (uint32_t o = 0; ok && o < n_others; o++) {
            napi_value element;
            ok = napi_get_element(env, argv[2], o, &element) == 0 && napi_get_value_int32(env, element, &entry->ids[1 + o]) == 0 && entry->ids[1 + o] >= 0;
        }
    }
    if (ok) {
        ok = false;
        pthread_mutex_lock(&shared_lock);
        for (int k = 0; k < SHARED_PREFIXES_MAX && !ok; k++) {
            if (shared_prefixes[k]) continue;
            shared_prefixes[k] = entry;
            __atomic_add_fetch(&shared_pending, 1, __ATOMIC_RELEASE);
            ok = true;
        }
        pthread_mutex_unlock(&shared_lock);
    }
    if (!ok) free(entry);
    napi_get_boolean(env, ok, &result);
    return result;
}

/* clearSharedPrefixes(): drops the entries no decode used (a round that failed or stopped). */
static napi_value clear_shared_prefixes(napi_env env, napi_callback_info info) {
    (void)info;
    pthread_mutex_lock(&shared_lock);
    for (int k = 0; k < SHARED_PREFIXES_MAX; k++) {
        if (!shared_prefixes[k]) continue;
        free(shared_prefixes[k]);
        shared_prefixes[k] = NULL;
        __atomic_sub_fetch(&shared_pending, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&shared_lock);
    napi_value result;
    napi_get_null(env, &result);
    return result;
}

/*
 * trimMalloc(): malloc_trim(0), which hands the free pages of every glibc arena back to the system.
 * Memory the generation threads freed stays resident in their arenas otherwise: after a full
 * collection freed node-llama-cpp's samplers (nativeMemory.ts), bench:serve's memory section on the
 * 135M model measured 275-280 MB with it against 275-298 without (four runs each).
 */
static napi_value trim_malloc(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value result;
#ifdef __GLIBC__
    malloc_trim(0); /* its result says whether pages were released, which need not be so */
    napi_get_boolean(env, true, &result);
#else
    napi_get_boolean(env, false, &result); /* musl has no arenas to trim */
#endif
    return result;
}

/*
 * releaseFilePages(path): drops this process's page-table entries over its read-only mappings of that file
 * (madvise MADV_DONTNEED) and answers how many bytes they spanned. llama.cpp maps a model file whole, and the
 * CPU backend's extra buffer types (AMX, CPU_REPACK) then copy some tensors into memory of their own, reading
 * them through the mapping: those pages stay mapped and counted in RSS though nothing reads them again (the
 * 135M model on an AMX machine: 40 MiB of its 89 repacked, RSS 314 MB against 275). Pages the mapped tensors
 * use fault back in from the page cache on the next decode (minor faults); the file's data is untouched.
 */
static napi_value release_file_pages(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    napi_value result;
    char path[4096];
    size_t length = 0;
    double released = -1;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == 0 && argc == 1 &&
        napi_get_value_string_utf8(env, argv[0], path, sizeof path, &length) == 0 && length > 0 && length < sizeof path - 1) {
        FILE * maps = fopen("/proc/self/maps", "r");
        if (maps) {
            released = 0;
            char line[4096 + 256];
            while (fgets(line, sizeof line, maps)) {
                unsigned long start, end, offset, inode;
                char perms[8], dev[32];
                int name_at = 0;
                if (sscanf(line, "%lx-%lx %7s %lx %31s %lu %n", &start, &end, perms, &offset, dev, &inode, &name_at) < 6 || name_at == 0) continue;
                char * name = line + name_at;
                name[strcspn(name, "\n")] = '\0';
                /* Read-only mappings of that very file only: nothing written there can be lost. */
                if (strcmp(name, path) != 0 || perms[0] != 'r' || perms[1] != '-') continue;
                if (madvise((void *)start, end - start, MADV_DONTNEED) == 0) released += (double)(end - start);
            }
            fclose(maps);
        }
    }
    napi_create_double(env, released, &result);
    return result;
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
    napi_value fn;
    if (napi_create_function(env, "status", 6, status, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "status", fn);
    }
    if (napi_create_function(env, "claimLastContext", 16, claim_last_context, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "claimLastContext", fn);
    }
    if (napi_create_function(env, "decodeToken", 11, decode_token, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "decodeToken", fn);
    }
    if (napi_create_function(env, "setAdaptiveThreads", 18, set_adaptive_threads, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "setAdaptiveThreads", fn);
    }
    if (napi_create_function(env, "holdAdaptiveThreads", 19, hold_adaptive_threads, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "holdAdaptiveThreads", fn);
    }
    if (napi_create_function(env, "watchTermination", 16, watch_termination, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "watchTermination", fn);
    }
    if (napi_create_function(env, "requestUnifiedKvCache", 21, request_unified_kv_cache, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "requestUnifiedKvCache", fn);
    }
    if (napi_create_function(env, "limitOutputs", 12, limit_outputs, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "limitOutputs", fn);
    }
    if (napi_create_function(env, "tapLogits", 9, tap_logits, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "tapLogits", fn);
    }
    if (napi_create_function(env, "takeTap", 7, take_tap, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "takeTap", fn);
    }
    if (napi_create_function(env, "clearTaps", 9, clear_taps, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "clearTaps", fn);
    }
    if (napi_create_function(env, "sharePrefix", 11, share_prefix, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "sharePrefix", fn);
    }
    if (napi_create_function(env, "clearSharedPrefixes", 19, clear_shared_prefixes, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "clearSharedPrefixes", fn);
    }
    if (napi_create_function(env, "trimMalloc", 10, trim_malloc, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "trimMalloc", fn);
    }
    if (napi_create_function(env, "releaseFilePages", 16, release_file_pages, NULL, &fn) == 0) {
        napi_set_named_property(env, exports, "releaseFilePages", fn);
    }

    return exports;
}

int32_t node_api_module_get_api_version_v1(void) { return 8; }
