#!/usr/bin/env bash
# The package as npm users get it: `npm pack`, the tarball checked (what it must carry, what it must
# not), installed into an empty prefix with an empty npm cache from the registry, then `npx lmrun`
# run from there with nothing of the clone in reach. Prints the sizes and the install time.
# CI (.ci/run) runs it after the tests.
#
#   scripts/test-package.sh                    # the default install (every prebuilt binary: CUDA, Vulkan, CPU)
#   LMRUN_PACKAGE_LIGHT=1 scripts/test-package.sh   # also the CPU-only install the README documents
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
expected_version="$(node -p 'require("./package.json").version')"
nlc_version="$(node -p 'require("./node_modules/node-llama-cpp/package.json").version')"
resvg_version="$(node -p 'require("./node_modules/@resvg/resvg-js/package.json").version')"

work="$(mktemp -d "${TMPDIR:-/tmp}/lmrun-package.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail() { echo "package test: $*" >&2; exit 1; }
megabytes() { du -sm "$1" | cut -f1; }

# `npm pack` runs `prepare` (tsc and the threadpool shim), so the tarball carries a fresh dist/.
tarball="$work/$(npm pack --pack-destination "$work" --silent | tail -1)"
[ -f "$tarball" ] || fail "npm pack made no tarball"
listing="$(tar -tzf "$tarball")"
for required in package/bin/lmrun.js package/dist/main.js package/dist/entry.js package/models.json \
                package/assets/models/stories260K-Q8_0.gguf package/README.md; do
  grep -qx "$required" <<<"$listing" || fail "the tarball lacks ${required#package/}"
done
if [ "$(uname -s)" = Linux ]; then
  grep -qx package/dist/native/threadpool.node <<<"$listing" || fail "the tarball lacks dist/native/threadpool.node (no C compiler when packing?)"
fi
grep -qx package/dist/vendor/node-llama-cpp.js <<<"$listing" || fail "the tarball lacks dist/vendor/node-llama-cpp.js (node-llama-cpp's one-file bundle: esbuild missing when packing?)"
unwanted="$(grep -E '^package/(src|test|scripts|\.ci)/|\.map$|\.tsbuildinfo$|^package/node_modules/' <<<"$listing" || true)"
[ -z "$unwanted" ] || fail "the tarball carries what users do not need: $(head -3 <<<"$unwanted" | tr '\n' ' ')"
echo "package test: tarball $(( $(stat -c %s "$tarball") / 1024 )) KB, $(wc -l <<<"$listing") files" >&2

# The shim needs no newer glibc than node-llama-cpp's own prebuilt binaries: where those load, it loads.
if [ "$(uname -s)" = Linux ] && command -v objdump >/dev/null; then
  newest() { objdump -T "$@" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1; }
  shim="$(newest "$root/dist/native/threadpool.node")"
  llama="$(newest "$root"/node_modules/@node-llama-cpp/linux-"$(node -p process.arch)"/bins/*/llama-addon.node)"
  if [ -n "$llama" ] && [ "$(printf '%s\n%s\n' "$shim" "$llama" | sort -V | tail -1)" != "$llama" ]; then
    fail "the threadpool shim needs $shim, newer than node-llama-cpp's prebuilt binary ($llama)"
  fi
  echo "package test: threadpool shim needs ${shim:-no versioned glibc}, node-llama-cpp's binary $llama" >&2
fi

# Install as a user would: an empty prefix, an empty cache, the registry for the dependencies.
install() { # prefix, cache, extra npm arguments...
  local prefix="$1" cache="$2"; shift 2
  mkdir -p "$prefix"
  local started=$SECONDS
  (cd "$prefix" && npm_config_update_notifier=false npm install --prefix "$prefix" --cache "$cache" --no-audit --no-fund "$@") >&2
  echo "package test: npm install $* took $((SECONDS - started)) s; cache $(megabytes "$cache") MB, installed $(megabytes "$prefix/node_modules") MB" >&2
}
check() { # prefix
  local prefix="$1"
  # From inside the prefix, as `npx lmrun` is used in a project that depends on it; HOME and LMRUN_HOME are empty.
  local out
  out="$(cd "$prefix" && npm_config_update_notifier=false HOME="$work/home" LMRUN_HOME="$work/lmrun-home" npm_config_cache="$work/npx-cache" \
         npx --no lmrun run tiny "Once upon a time" -n 16 --temp 0 2>"$work/stderr")" || { cat "$work/stderr" >&2; fail "npx lmrun run tiny failed"; }
  [ "${#out}" -gt 10 ] || fail "npx lmrun run tiny printed too little: '$out'"
  [ ! -s "$work/stderr" ] || { cat "$work/stderr" >&2; fail "npx lmrun run tiny wrote to stderr"; }
  local version
  version="$("$prefix/node_modules/.bin/lmrun" --version)"
  [ "$version" = "$expected_version" ] || fail "lmrun --version says '$version'"
  local info
  info="$(cd "$prefix" && HOME="$work/home" LMRUN_HOME="$work/lmrun-home" "$prefix/node_modules/.bin/lmrun" info)" || fail "lmrun info failed"
  grep -q "^backend: *CPU\|^backend: *CUDA\|^backend: *Vulkan\|^backend: *Metal" <<<"$info" || fail "lmrun info names no backend: $info"
  if [ "$(uname -s)" = Linux ]; then
    grep -q "^cpu threads:" <<<"$info" || fail "lmrun info says nothing about the threadpool shim"
  fi
  # The bundle is used when the installed node-llama-cpp is the version it was made from.
  local installed_nlc
  installed_nlc="$(node -p "require('$prefix/node_modules/node-llama-cpp/package.json').version")"
  if [ "$installed_nlc" = "$nlc_version" ]; then
    grep -q "^node-llama-cpp: *$nlc_version (one-file bundle)" <<<"$info" || fail "lmrun info does not report node-llama-cpp's bundle: $(grep node-llama-cpp <<<"$info")"
  else
    grep -q "^node-llama-cpp: *$installed_nlc\$" <<<"$info" || fail "with node-llama-cpp $installed_nlc (bundle of $nlc_version) lmrun info says: $(grep node-llama-cpp <<<"$info")"
  fi
  echo "package test: npx lmrun run tiny -> '${out:0:40}…'; lmrun --version $version; lmrun info: $(grep -E '^(backend|cpu threads|node-llama-cpp):' <<<"$info" | tr -s ' ' | tr '\n' ';')" >&2
}

cd "$work"
install "$work/prefix" "$work/cache" "$tarball"
check "$work/prefix"

if [ "${LMRUN_PACKAGE_LIGHT:-0}" = 1 ]; then
  # The CPU-only install (README, "Installing"): no CUDA, Vulkan or other-architecture binaries.
  arch="$(node -p process.arch)"
  install "$work/light" "$work/light-cache" --omit=optional "$tarball" "@node-llama-cpp/linux-${arch}@$nlc_version" "@resvg/resvg-js-linux-${arch}-gnu@$resvg_version"
  check "$work/light"
fi
