/*
 * lmrun's bridge to llama.cpp's RPC backend (Linux), for an engine build made with GGML_RPC=ON.
 *
 * node-llama-cpp exposes no devices and no RPC, but llama.cpp offloads to every registered device
 * when llama_model_params.devices is NULL (node-llama-cpp never sets it), and the device list is
 * rebuilt at each model load. So registering the workers in ggml's backend registry before
 * loadModel() is all `--rpc` needs, exactly what common/arg.cpp does for llama-cli's --rpc:
 * ggml_backend_reg_by_name("RPC") -> get_proc_address("ggml_backend_rpc_add_server") ->
 * ggml_backend_register(). The same registry offers ggml_backend_rpc_start_server, which is what
 * upstream's ggml-rpc-server runs: `lmrun rpc-server` serves from the very same build.
 *
 * --tensor-split: node-llama-cpp passes no tensor_split, so this library (loaded with RTLD_GLOBAL
 * before the first model load) defines llama_model_load_from_file, sets tensor_split when one was
 * given, and calls the real one: the addon's lazily bound call resolves here first, as the
 * threadpool shim's llama_decode does. The struct below mirrors llama.h of the llama.cpp release
 * lmrun checked (VERIFIED_LLAMA_CPP_RELEASE in rpc.ts; other releases do not load this library).
 *
 * The ggml functions are looked up through the loaded libllama (a handle lookup searches its
 * dependencies, libggml and libggml-base), so nothing is linked at build time. Node-API functions
 * are declared by hand, as in threadpool.c.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <link.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct ggml_backend_reg * ggml_backend_reg_t;
typedef struct ggml_backend_device * ggml_backend_dev_t;
enum { DEV_TYPE_CPU = 0, DEV_TYPE_GPU = 1, DEV_TYPE_IGPU = 2, DEV_TYPE_ACCEL = 3 };

/* llama.h (v0.5.0 / de3ff81): struct llama_model_params, passed by value. */
struct llama_model_params {
    ggml_backend_dev_t * devices;
    const void * tensor_buft_overrides;
    int32_t n_gpu_layers;
    int32_t split_mode;
    int32_t load_mode;
    int32_t lazy_mode;
    int32_t main_gpu;
    const float * tensor_split;
    void * progress_callback;
    void * progress_callback_user_data;
    const void * kv_overrides;
    bool vocab_only;
    bool check_tensors;
    bool use_extra_bufts;
    bool no_host;
    bool no_alloc;
    bool load_mtp;
};
struct llama_model;

typedef ggml_backend_reg_t (*reg_by_name_fn)(const char *);
typedef void * (*get_proc_fn)(ggml_backend_reg_t, const char *);
typedef void (*register_fn)(ggml_backend_reg_t);
typedef size_t (*dev_count_fn)(void);
typedef ggml_backend_dev_t (*dev_get_fn)(size_t);
typedef ggml_backend_dev_t (*dev_by_name_fn)(const char *);
typedef const char * (*dev_str_fn)(ggml_backend_dev_t);
typedef void (*dev_memory_fn)(ggml_backend_dev_t, size_t *, size_t *);
typedef int (*dev_type_fn)(ggml_backend_dev_t);
typedef ggml_backend_reg_t (*dev_reg_fn)(ggml_backend_dev_t);
typedef const char * (*reg_name_fn)(ggml_backend_reg_t);
typedef ggml_backend_reg_t (*add_server_fn)(const char *);
typedef void (*start_server_fn)(const char *, const char *, size_t, size_t, ggml_backend_dev_t *);
typedef struct llama_model * (*model_load_fn)(const char *, struct llama_model_params);

static struct {
    reg_by_name_fn reg_by_name;
    get_proc_fn get_proc;
    register_fn reg_register;
    dev_count_fn dev_count;
    dev_get_fn dev_get;
    dev_by_name_fn dev_by_name;
    dev_str_fn dev_name;
    dev_str_fn dev_description;
    dev_memory_fn dev_memory;
    dev_type_fn dev_type;
    dev_reg_fn dev_reg;
    reg_name_fn reg_name;
    model_load_fn model_load;
    bool ok;
    char problem[256];
} g;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int own_marker;

static int find_libllama(struct dl_phdr_info * info, size_t size, void * data) {
    (void)size;
    void ** found = data;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "libllama")) return 0;
    void * handle = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
    if (!handle) return 0;
    /* node-llama-cpp may also have loaded its prebuilt binding (it reads GGUF headers with one): the
     * engine build's libllama is the one whose ggml has the RPC backend. */
    reg_by_name_fn by_name = (reg_by_name_fn)dlsym(handle, "ggml_backend_reg_by_name");
    Dl_info self;
    if (by_name && by_name("RPC") && dladdr((void *)&own_marker, &self) && strcmp(self.dli_fname, info->dlpi_name) != 0) {
        *found = handle;
        return 1;
    }
    dlclose(handle);
    return 0;
}

static bool resolve(void) {
    if (g.ok) return true;
    void * lib = NULL;
    dl_iterate_phdr(find_libllama, &lib);
    if (!lib) {
        snprintf(g.problem, sizeof g.problem, "no loaded llama.cpp has an RPC backend (it was not built with GGML_RPC=ON)");
        return false;
    }
    g.reg_by_name = (reg_by_name_fn)dlsym(lib, "ggml_backend_reg_by_name");
    g.get_proc = (get_proc_fn)dlsym(lib, "ggml_backend_reg_get_proc_address");
    g.reg_register = (register_fn)dlsym(lib, "ggml_backend_register");
    g.dev_count = (dev_count_fn)dlsym(lib, "ggml_backend_dev_count");
    g.dev_get = (dev_get_fn)dlsym(lib, "ggml_backend_dev_get");
    g.dev_by_name = (dev_by_name_fn)dlsym(lib, "ggml_backend_dev_by_name");
    g.dev_name = (dev_str_fn)dlsym(lib, "ggml_backend_dev_name");
    g.dev_description = (dev_str_fn)dlsym(lib, "ggml_backend_dev_description");
    g.dev_memory = (dev_memory_fn)dlsym(lib, "ggml_backend_dev_memory");
    g.dev_type = (dev_type_fn)dlsym(lib, "ggml_backend_dev_type");
    g.dev_reg = (dev_reg_fn)dlsym(lib, "ggml_backend_dev_backend_reg");
    g.reg_name = (reg_name_fn)dlsym(lib, "ggml_backend_reg_name");
    g.model_load = (model_load_fn)dlsym(lib, "llama_model_load_from_file");
    if (!g.reg_by_name || !g.get_proc || !g.reg_register || !g.dev_count || !g.dev_get || !g.dev_by_name || !g.dev_name ||
        !g.dev_description || !g.dev_memory || !g.dev_type || !g.dev_reg || !g.reg_name || !g.model_load) {
        snprintf(g.problem, sizeof g.problem, "this llama.cpp lacks ggml's backend registry functions");
        return false;
    }
    g.ok = true;
    return true;
}

/* ---- --tensor-split: llama_model_load_from_file with the proportions set ---- */
#define MAX_DEVICES 16
static float tensor_split[MAX_DEVICES];
static bool tensor_split_set = false;

struct llama_model * llama_model_load_from_file(const char * path, struct llama_model_params params) {
    pthread_mutex_lock(&lock);
    bool ok = resolve();
    pthread_mutex_unlock(&lock);
    if (!g.model_load) return NULL;
    (void)ok;
    if (tensor_split_set && params.tensor_split == NULL) params.tensor_split = tensor_split;
    return g.model_load(path, params);
}

/* ---- keep a dead worker from blocking the client forever ---- */
/* llama.cpp's RPC client has no timeouts: a worker whose machine vanishes (no FIN, no RST) would leave
 * it waiting in recv() for ever. TCP keep-alive and a user timeout on its sockets make the kernel
 * fail those calls, llama.cpp then aborts, and the parent lmrun process reports it. */
static int harden_sockets(const char * host, int port, int user_timeout_ms) {
    struct addrinfo hints = {0}, * found = NULL;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &found) != 0 || !found) return 0;
    struct in_addr want = ((struct sockaddr_in *)found->ai_addr)->sin_addr;
    freeaddrinfo(found);
    int hardened = 0;
    DIR * dir = opendir("/proc/self/fd");
    if (!dir) return 0;
    struct dirent * entry;
    while ((entry = readdir(dir)) != NULL) {
        int fd = atoi(entry->d_name);
        if (fd <= 2) continue;
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        int type = 0;
        socklen_t type_len = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_STREAM) continue;
        if (getpeername(fd, (struct sockaddr *)&peer, &len) != 0 || peer.sin_family != AF_INET) continue;
        if (peer.sin_addr.s_addr != want.s_addr || ntohs(peer.sin_port) != port) continue;
        int on = 1, idle = 5, interval = 2, count = 3;
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
        hardened++;
    }
    closedir(dir);
    return hardened;
}

/* ---- the server side ---- */
typedef struct {
    char endpoint[300];
    char cache_dir[4096];
    bool use_cache;
    size_t threads;
    size_t n_devices;
    ggml_backend_dev_t devices[MAX_DEVICES];
    start_server_fn start;
} server_args;

static volatile int server_state = 0; /* 0 not started, 1 running, 2 returned (could not listen) */

static void * server_thread(void * data) {
    server_args * args = data;
    args->start(args->endpoint, args->use_cache ? args->cache_dir : NULL, args->threads, args->n_devices, args->devices);
    /* ggml_backend_rpc_start_server returns only when it cannot listen or accept. */
    __atomic_store_n(&server_state, 2, __ATOMIC_RELEASE);
    return NULL;
}

/* ---- Node-API (declared by hand: the ABI is stable and needs no headers) ---- */
typedef struct napi_env__ * napi_env;
typedef struct napi_value__ * napi_value;
typedef struct napi_callback_info__ * napi_callback_info;
typedef napi_value (*napi_callback)(napi_env, napi_callback_info);
extern int napi_create_object(napi_env, napi_value *);
extern int napi_create_array(napi_env, napi_value *);
extern int napi_create_function(napi_env, const char *, size_t, napi_callback, void *, napi_value *);
extern int napi_set_named_property(napi_env, napi_value, const char *, napi_value);
extern int napi_set_element(napi_env, napi_value, uint32_t, napi_value);
extern int napi_get_element(napi_env, napi_value, uint32_t, napi_value *);
extern int napi_get_array_length(napi_env, napi_value, uint32_t *);
extern int napi_get_boolean(napi_env, bool, napi_value *);
extern int napi_create_double(napi_env, double, napi_value *);
extern int napi_create_int32(napi_env, int32_t, napi_value *);
extern int napi_create_string_utf8(napi_env, const char *, size_t, napi_value *);
extern int napi_get_cb_info(napi_env, napi_callback_info, size_t *, napi_value *, napi_value *, void **);
extern int napi_get_value_string_utf8(napi_env, napi_value, char *, size_t, size_t *);
extern int napi_get_value_double(napi_env, napi_value, double *);
extern int napi_get_value_uint32(napi_env, napi_value, uint32_t *);
extern int napi_throw_error(napi_env, const char *, const char *);

static napi_value str(napi_env env, const char * s) {
    napi_value v;
    napi_create_string_utf8(env, s ? s : "", s ? strlen(s) : 0, &v);
    return v;
}

static napi_value num(napi_env env, double d) {
    napi_value v;
    napi_create_double(env, d, &v);
    return v;
}

static napi_value undefined_or_throw(napi_env env, const char * message) {
    napi_throw_error(env, NULL, message);
    return NULL;
}

static const char * type_name(int type) {
    switch (type) {
        case DEV_TYPE_CPU: return "cpu";
        case DEV_TYPE_GPU: return "gpu";
        case DEV_TYPE_IGPU: return "igpu";
        case DEV_TYPE_ACCEL: return "accel";
        default: return "unknown";
    }
}

static napi_value device_object(napi_env env, ggml_backend_dev_t dev) {
    napi_value object;
    napi_create_object(env, &object);
    size_t free = 0, total = 0;
    g.dev_memory(dev, &free, &total);
    napi_set_named_property(env, object, "name", str(env, g.dev_name(dev)));
    napi_set_named_property(env, object, "description", str(env, g.dev_description(dev)));
    napi_set_named_property(env, object, "type", str(env, type_name(g.dev_type(dev))));
    napi_set_named_property(env, object, "backend", str(env, g.reg_name(g.dev_reg(dev))));
    napi_set_named_property(env, object, "freeBytes", num(env, (double)free));
    napi_set_named_property(env, object, "totalBytes", num(env, (double)total));
    return object;
}

static bool ensure(napi_env env) {
    pthread_mutex_lock(&lock);
    bool ok = resolve();
    pthread_mutex_unlock(&lock);
    if (!ok) napi_throw_error(env, NULL, g.problem);
    return ok;
}

/* available(): "" when the RPC backend is there, else why not. */
static napi_value available(napi_env env, napi_callback_info info) {
    (void)info;
    pthread_mutex_lock(&lock);
    bool ok = resolve();
    pthread_mutex_unlock(&lock);
    return str(env, ok ? "" : g.problem);
}

/* devices(): every device registered in this process, in registry order. */
static napi_value devices(napi_env env, napi_callback_info info) {
    (void)info;
    if (!ensure(env)) return NULL;
    napi_value list;
    napi_create_array(env, &list);
    size_t n = g.dev_count();
    for (size_t i = 0; i < n; i++) napi_set_element(env, list, (uint32_t)i, device_object(env, g.dev_get(i)));
    return list;
}

/* addServer(endpoint, userTimeoutMs): registers one worker (connects, hello, device count); returns its devices. */
static napi_value add_server(napi_env env, napi_callback_info info) {
    size_t argc = 2;
    napi_value argv[2];
    char endpoint[300];
    size_t len = 0;
    uint32_t user_timeout = 0;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != 0 || argc < 1 ||
        napi_get_value_string_utf8(env, argv[0], endpoint, sizeof endpoint, &len) != 0) {
        return undefined_or_throw(env, "addServer(endpoint, userTimeoutMs)");
    }
    if (argc > 1) napi_get_value_uint32(env, argv[1], &user_timeout);
    if (!ensure(env)) return NULL;
    add_server_fn add = (add_server_fn)g.get_proc(g.reg_by_name("RPC"), "ggml_backend_rpc_add_server");
    if (!add) return undefined_or_throw(env, "this llama.cpp's RPC backend lacks ggml_backend_rpc_add_server");
    size_t before = g.dev_count();
    ggml_backend_reg_t reg = add(endpoint);
    if (reg) g.reg_register(reg);
    napi_value list;
    napi_create_array(env, &list);
    size_t n = g.dev_count();
    for (size_t i = before; i < n; i++) napi_set_element(env, list, (uint32_t)(i - before), device_object(env, g.dev_get(i)));
    if (user_timeout > 0) {
        char host[300];
        snprintf(host, sizeof host, "%s", endpoint);
        char * colon = strchr(host, ':');
        if (colon) {
            *colon = '\0';
            harden_sockets(host, atoi(colon + 1), (int)user_timeout);
        }
    }
    return list;
}

/* setTensorSplit([p0, p1, ...] or []): the proportions the next model loads use (llama.cpp's -ts). */
static napi_value set_tensor_split(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    uint32_t length = 0;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != 0 || argc < 1 || napi_get_array_length(env, argv[0], &length) != 0 || length > MAX_DEVICES) {
        return undefined_or_throw(env, "setTensorSplit(proportions[<=16])");
    }
    memset(tensor_split, 0, sizeof tensor_split);
    for (uint32_t i = 0; i < length; i++) {
        napi_value element;
        double value = 0;
        napi_get_element(env, argv[0], i, &element);
        napi_get_value_double(env, element, &value);
        tensor_split[i] = (float)value;
    }
    tensor_split_set = length > 0;
    return num(env, length);
}

/* startServer(endpoint, cacheDir or "", threads, [deviceNames]): serves on a thread of its own; returns the devices served. */
static napi_value start_server(napi_env env, napi_callback_info info) {
    size_t argc = 4;
    napi_value argv[4];
    static server_args args;
    size_t len = 0;
    uint32_t threads = 1, names = 0;
    if (__atomic_load_n(&server_state, __ATOMIC_ACQUIRE) != 0) return undefined_or_throw(env, "the RPC server is already started");
    memset(&args, 0, sizeof args);
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != 0 || argc < 4 ||
        napi_get_value_string_utf8(env, argv[0], args.endpoint, sizeof args.endpoint, &len) != 0 ||
        napi_get_value_string_utf8(env, argv[1], args.cache_dir, sizeof args.cache_dir, &len) != 0 ||
        napi_get_value_uint32(env, argv[2], &threads) != 0 || napi_get_array_length(env, argv[3], &names) != 0) {
        return undefined_or_throw(env, "startServer(endpoint, cacheDir, threads, deviceNames)");
    }
    if (!ensure(env)) return NULL;
    args.use_cache = args.cache_dir[0] != '\0';
    args.threads = threads;
    args.start = (start_server_fn)g.get_proc(g.reg_by_name("RPC"), "ggml_backend_rpc_start_server");
    if (!args.start) return undefined_or_throw(env, "this llama.cpp's RPC backend lacks ggml_backend_rpc_start_server");
    if (names > 0) {
        for (uint32_t i = 0; i < names && args.n_devices < MAX_DEVICES; i++) {
            napi_value element;
            char name[128];
            napi_get_element(env, argv[3], i, &element);
            napi_get_value_string_utf8(env, element, name, sizeof name, &len);
            ggml_backend_dev_t dev = g.dev_by_name(name);
            if (!dev) {
                char message[200];
                snprintf(message, sizeof message, "unknown device \"%s\"", name);
                return undefined_or_throw(env, message);
            }
            args.devices[args.n_devices++] = dev;
        }
    } else {
        /* As ggml-rpc-server: every GPU-like device, else the CPU. */
        size_t n = g.dev_count();
        for (size_t i = 0; i < n && args.n_devices < MAX_DEVICES; i++) {
            ggml_backend_dev_t dev = g.dev_get(i);
            int type = g.dev_type(dev);
            if (type != DEV_TYPE_CPU && type != DEV_TYPE_ACCEL) args.devices[args.n_devices++] = dev;
        }
        for (size_t i = 0; i < n && args.n_devices == 0; i++) {
            ggml_backend_dev_t dev = g.dev_get(i);
            if (g.dev_type(dev) == DEV_TYPE_CPU) args.devices[args.n_devices++] = dev;
        }
    }
    if (args.n_devices == 0) return undefined_or_throw(env, "no device to serve");
    napi_value list;
    napi_create_array(env, &list);
    for (size_t i = 0; i < args.n_devices; i++) napi_set_element(env, list, (uint32_t)i, device_object(env, args.devices[i]));
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    __atomic_store_n(&server_state, 1, __ATOMIC_RELEASE);
    if (pthread_create(&thread, &attr, server_thread, &args) != 0) {
        __atomic_store_n(&server_state, 0, __ATOMIC_RELEASE);
        pthread_attr_destroy(&attr);
        return undefined_or_throw(env, "could not start the server thread");
    }
    pthread_attr_destroy(&attr);
    return list;
}

/* serverState(): "idle", "running" or "stopped" (ggml_backend_rpc_start_server returned: it could not listen). */
static napi_value server_state_fn(napi_env env, napi_callback_info info) {
    (void)info;
    int state = __atomic_load_n(&server_state, __ATOMIC_ACQUIRE);
    return str(env, state == 0 ? "idle" : state == 1 ? "running" : "stopped");
}

static void export_fn(napi_env env, napi_value exports, const char * name, napi_callback cb) {
    napi_value fn;
    if (napi_create_function(env, name, strlen(name), cb, NULL, &fn) == 0) napi_set_named_property(env, exports, name, fn);
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
    export_fn(env, exports, "available", available);
    export_fn(env, exports, "devices", devices);
    export_fn(env, exports, "addServer", add_server);
    export_fn(env, exports, "setTensorSplit", set_tensor_split);
    export_fn(env, exports, "startServer", start_server);
    export_fn(env, exports, "serverState", server_state_fn);
    return exports;
}

int32_t node_api_module_get_api_version_v1(void) { return 8; }
