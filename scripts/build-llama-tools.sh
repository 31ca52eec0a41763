#!/usr/bin/env bash
# Build llama.cpp's own `llama-bench` and `llama-perplexity` (CPU only) from the
# llama.cpp source bundle that node-llama-cpp ships, so benchmark scripts can
# compare lmrun against the reference tools built from the *same* source.
#
# The build lives OUTSIDE the repo, in a cache dir (default
#   ${LMRUN_LLAMA_TOOLS_DIR:-$HOME/.cache/lmrun-dev/llama-tools/<release-tag>}).
# It is idempotent: if both binaries exist and the recorded bundle sha256/size and
# build recipe match, it just prints the paths.
#
# stdout: one NAME=<abs path> line per tool, suitable for `eval "$(scripts/build-llama-tools.sh)"`:
#   LLAMA_BENCH, LLAMA_PERPLEXITY, LLAMA_SERVER, LLAMA_BATCHED_BENCH, LLAMA_COMPLETION, GGML_RPC_SERVER
# Everything else (progress, cmake/compiler output) goes to stderr.
#
# Environment knobs (all optional):
#   LMRUN_LLAMA_TOOLS_DIR         cache dir (overrides the default above)
#   LMRUN_NODE_LLAMA_CPP_DIR      node-llama-cpp package dir (default: <repo>/node_modules/node-llama-cpp)
#   LMRUN_LLAMA_TOOLS_JOBS        parallel build jobs (default: 2)
#   LMRUN_LLAMA_TOOLS_PATCHES     1 (default) = apply node-llama-cpp's llama/patches/*.diff like
#                                 node-llama-cpp does for its own source builds; 0 = pristine bundle
#   LMRUN_LLAMA_TOOLS_CMAKE_ARGS  extra cmake -D args (space separated), appended last
#   LMRUN_LLAMA_TOOLS_FORCE       1 = rebuild even if the cache looks valid
set -euo pipefail

log() { printf '[build-llama-tools] %s\n' "$*" >&2; }
die() { printf '[build-llama-tools] error: %s\n' "$*" >&2; exit 1; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
NLC_DIR=${LMRUN_NODE_LLAMA_CPP_DIR:-$REPO_ROOT/node_modules/node-llama-cpp}
LLAMA_PKG_DIR=$NLC_DIR/llama
BUNDLE=$LLAMA_PKG_DIR/gitRelease.bundle
INFO_JSON=$LLAMA_PKG_DIR/llama.cpp.info.json
PATCHES_DIR=$LLAMA_PKG_DIR/patches
JOBS=${LMRUN_LLAMA_TOOLS_JOBS:-2}
APPLY_PATCHES=${LMRUN_LLAMA_TOOLS_PATCHES:-1}

# Bump when the build recipe changes in a way that should invalidate old caches.
RECIPE_VERSION=2

# ---------------------------------------------------------------- preflight
[[ -f $BUNDLE ]] || die "llama.cpp source bundle not found: $BUNDLE
  (run \`npm install\` in $REPO_ROOT, or set LMRUN_NODE_LLAMA_CPP_DIR)"
command -v git >/dev/null 2>&1 || die "git not found in PATH (needed to clone $BUNDLE)"
command -v cmake >/dev/null 2>&1 || die "cmake not found in PATH (install cmake >= 3.14, e.g. \`apt-get install cmake\`)"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found in PATH"

RELEASE_TAG=unknown
if [[ -f $INFO_JSON ]]; then
    RELEASE_TAG=$(sed -n 's/.*"tag"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$INFO_JSON" | head -n1)
    RELEASE_TAG=${RELEASE_TAG:-unknown}
fi
RELEASE_TAG=${RELEASE_TAG//[^A-Za-z0-9._-]/_}

CACHE_DIR=${LMRUN_LLAMA_TOOLS_DIR:-$HOME/.cache/lmrun-dev/llama-tools/$RELEASE_TAG}
mkdir -p "$CACHE_DIR"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd)
SRC_DIR=$CACHE_DIR/src
BUILD_DIR=$CACHE_DIR/build
STAMP=$CACHE_DIR/build-stamp.txt
LLAMA_BENCH=$BUILD_DIR/bin/llama-bench
LLAMA_PERPLEXITY=$BUILD_DIR/bin/llama-perplexity
LLAMA_SERVER=$BUILD_DIR/bin/llama-server
LLAMA_BATCHED_BENCH=$BUILD_DIR/bin/llama-batched-bench
LLAMA_COMPLETION=$BUILD_DIR/bin/llama-completion
GGML_RPC_SERVER=$BUILD_DIR/bin/ggml-rpc-server
TARGETS=(llama-bench llama-perplexity llama-server llama-batched-bench llama-completion ggml-rpc-server)

# CMake recipe. Options verified against the bundled tree's CMakeLists.txt:
#  - LLAMA_CURL is deprecated/ignored in this tree (HTTP goes through cpp-httplib), so it's not passed;
#    LLAMA_OPENSSL/LLAMA_BUILD_BORINGSSL are turned off instead (same as node-llama-cpp's own build).
#  - llama-bench/llama-perplexity live under tools/, so LLAMA_BUILD_TOOLS must stay ON.
#  - GGML_OPENMP=OFF: node-llama-cpp's prebuilt binaries are built without OpenMP (ggml's own
#    threadpool); matching that keeps the threading model comparable.
#  - BUILD_SHARED_LIBS=OFF: self-contained binaries, no RPATH into the build tree.
#  - GGML_RPC=ON: llama-bench/llama-perplexity/llama-completion take --rpc, and ggml-rpc-server is built
#    from the same source (the RPC protocol version must match on both ends).
#  - LLAMA_BUILD_SERVER=ON with the web UI off: the UI's assets would be downloaded from the Hub.
CMAKE_ARGS=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=OFF
    -DGGML_NATIVE=ON
    -DGGML_OPENMP=OFF
    -DGGML_CCACHE=OFF
    -DGGML_BACKEND_DL=OFF
    -DLLAMA_BUILD_COMMON=ON
    -DLLAMA_BUILD_TOOLS=ON
    -DLLAMA_BUILD_TESTS=OFF
    -DLLAMA_BUILD_EXAMPLES=OFF
    -DLLAMA_BUILD_SERVER=ON
    -DLLAMA_BUILD_UI=OFF
    -DLLAMA_USE_PREBUILT_UI=OFF
    -DGGML_RPC=ON
    -DLLAMA_BUILD_APP=OFF
    -DLLAMA_OPENSSL=OFF
    -DLLAMA_BUILD_BORINGSSL=OFF
)
# -march=native also turns on AMX where the CPU lists it, and the tools then put their weights in ggml's AMX
# buffer type. On a VM whose cpuinfo lists amx_tile (Sapphire Rapids, kernel 6.18) their first AMX matrix
# product died with a general protection fault on ldtilecfg (llama-bench, llama-server: measured 2026-12-07),
# while node-llama-cpp's own sapphirerapids CPU variant runs there without that buffer type. Built without AMX,
# the tools run what node-llama-cpp runs.
if [[ $(uname -m) == x86_64 ]] && grep -qw amx_tile /proc/cpuinfo 2>/dev/null; then
    CMAKE_ARGS+=("-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16")
fi
if [[ -n ${LMRUN_LLAMA_TOOLS_CMAKE_ARGS:-} ]]; then
    # shellcheck disable=SC2206 # intentional word splitting of user-provided args
    CMAKE_ARGS+=($LMRUN_LLAMA_TOOLS_CMAKE_ARGS)
fi

PATCH_FILES=()
if [[ $APPLY_PATCHES == 1 && -d $PATCHES_DIR ]]; then
    shopt -s nullglob
    PATCH_FILES=("$PATCHES_DIR"/*.diff)
    shopt -u nullglob
fi
patch_fingerprint() {
    local p
    if ((${#PATCH_FILES[@]} == 0)); then echo none; return; fi
    for p in "${PATCH_FILES[@]}"; do
        printf '%s:%s ' "$(basename "$p")" "$(sha256sum "$p" | cut -d' ' -f1 | cut -c1-16)"
    done
}
RECIPE="v$RECIPE_VERSION ${CMAKE_ARGS[*]} patches=$(patch_fingerprint)"

emit_paths() {
    printf 'LLAMA_BENCH=%q\n' "$LLAMA_BENCH"
    printf 'LLAMA_PERPLEXITY=%q\n' "$LLAMA_PERPLEXITY"
    printf 'LLAMA_SERVER=%q\n' "$LLAMA_SERVER"
    printf 'LLAMA_BATCHED_BENCH=%q\n' "$LLAMA_BATCHED_BENCH"
    printf 'LLAMA_COMPLETION=%q\n' "$LLAMA_COMPLETION"
    printf 'GGML_RPC_SERVER=%q\n' "$GGML_RPC_SERVER"
}

stamp_get() { # stamp_get KEY -> value (empty if missing)
    [[ -f $STAMP ]] || return 0
    sed -n "s/^$1=//p" "$STAMP" | head -n1
}

BUNDLE_SIZE=$(stat -c %s "$BUNDLE")
BUNDLE_SHA=""
cache_valid() {
    [[ ${LMRUN_LLAMA_TOOLS_FORCE:-0} != 1 ]] || return 1
    [[ -x $LLAMA_BENCH && -x $LLAMA_PERPLEXITY && -x $LLAMA_SERVER && -x $LLAMA_BATCHED_BENCH && -f $STAMP ]] || return 1
    [[ -x $LLAMA_COMPLETION && -x $GGML_RPC_SERVER ]] || return 1
    [[ $(stamp_get bundle_size) == "$BUNDLE_SIZE" ]] || return 1
    [[ $(stamp_get recipe) == "$RECIPE" ]] || return 1
    [[ -n $BUNDLE_SHA ]] || BUNDLE_SHA=$(sha256sum "$BUNDLE" | cut -d' ' -f1)
    [[ $(stamp_get bundle_sha256) == "$BUNDLE_SHA" ]] || return 1
}

# Fast path (no lock needed: the stamp is written last, after both binaries exist).
if cache_valid; then
    log "cached build is up to date ($CACHE_DIR)"
    emit_paths
    exit 0
fi

# Serialize concurrent builds into the same cache dir.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE_DIR/.lock"
    if ! flock -n 9; then
        log "another build is running in $CACHE_DIR; waiting for it..."
        flock 9
    fi
    if cache_valid; then
        log "cached build is up to date ($CACHE_DIR)"
        emit_paths
        exit 0
    fi
fi

START_TS=$(date +%s)
[[ -n $BUNDLE_SHA ]] || BUNDLE_SHA=$(sha256sum "$BUNDLE" | cut -d' ' -f1)
rm -f "$STAMP"

# ---------------------------------------------------------------- source
# The bundle normally carries a single squashed commit referenced by HEAD.
BUNDLE_HEAD=$(git bundle list-heads "$BUNDLE" | awk '$2 == "HEAD" {print $1; exit}')
if [[ -z $BUNDLE_HEAD ]]; then
    BUNDLE_HEAD=$(git bundle list-heads "$BUNDLE" | awk 'NR == 1 {print $1}')
fi
[[ -n $BUNDLE_HEAD ]] || die "could not read any ref from $BUNDLE (corrupt bundle?)"

SRC_MARKER=$SRC_DIR/.lmrun-src-state
WANT_SRC_STATE="bundle_sha256=$BUNDLE_SHA head=$BUNDLE_HEAD patches=$(patch_fingerprint)"
if [[ -d $SRC_DIR && -f $SRC_MARKER && $(cat "$SRC_MARKER") == "$WANT_SRC_STATE" ]]; then
    log "reusing source checkout $SRC_DIR (${BUNDLE_HEAD:0:12})"
else
    log "cloning $BUNDLE -> $SRC_DIR"
    rm -rf "$SRC_DIR" "$SRC_DIR.tmp" "$BUILD_DIR"
    git clone --quiet --no-checkout "$BUNDLE" "$SRC_DIR.tmp" >&2
    git -C "$SRC_DIR.tmp" -c advice.detachedHead=false checkout --quiet --detach "$BUNDLE_HEAD" >&2
    for p in "${PATCH_FILES[@]}"; do
        name=$(basename "$p")
        if git -C "$SRC_DIR.tmp" apply --check --reverse --ignore-whitespace "$p" >/dev/null 2>&1; then
            log "patch $name: already present in source, skipping"
        elif git -C "$SRC_DIR.tmp" apply --ignore-whitespace "$p" >&2; then
            log "patch $name: applied (as node-llama-cpp does for its source builds)"
        else
            log "warning: patch $name does not apply; continuing with unpatched source"
        fi
    done
    printf '%s' "$WANT_SRC_STATE" >"$SRC_DIR.tmp/.lmrun-src-state"
    mv "$SRC_DIR.tmp" "$SRC_DIR"
fi

# ---------------------------------------------------------------- configure + build
log "configuring (release $RELEASE_TAG, commit ${BUNDLE_HEAD:0:12}) in $BUILD_DIR"
log "cmake args: ${CMAKE_ARGS[*]}"
cmake -S "$SRC_DIR" -B "$BUILD_DIR" "${CMAKE_ARGS[@]}" >&2 \
    || die "cmake configure failed (see output above)"

log "building ${TARGETS[*]} with -j$JOBS (this takes a while on few cores)"
cmake --build "$BUILD_DIR" --config Release -j "$JOBS" --target "${TARGETS[@]}" >&2 \
    || die "build failed (see output above)"

for bin in "$LLAMA_BENCH" "$LLAMA_PERPLEXITY" "$LLAMA_SERVER" "$LLAMA_BATCHED_BENCH" "$LLAMA_COMPLETION" "$GGML_RPC_SERVER"; do
    [[ -x $bin ]] || die "build finished but $bin is missing"
done

END_TS=$(date +%s)
ELAPSED=$((END_TS - START_TS))
APPLIED_PATCHES=$(patch_fingerprint)
{
    echo "release_tag=$RELEASE_TAG"
    echo "bundle_path=$BUNDLE"
    echo "bundle_size=$BUNDLE_SIZE"
    echo "bundle_sha256=$BUNDLE_SHA"
    echo "bundle_head=$BUNDLE_HEAD"
    echo "recipe=$RECIPE"
    echo "patches=$APPLIED_PATCHES"
    echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "build_seconds=$ELAPSED"
    echo "jobs=$JOBS"
    echo "compiler=$(c++ --version 2>/dev/null | head -n1 || echo unknown)"
    echo "host=$(uname -srm)"
} >"$STAMP.tmp"
mv "$STAMP.tmp" "$STAMP"

log "done in ${ELAPSED}s; stamp: $STAMP"
emit_paths
