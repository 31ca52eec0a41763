#!/usr/bin/env bash
# Runs a subset of the test suite on every other supported Node (22 and 24 by default), each taken
# from the npm registry as the `node-linux-<arch>` package (the official binary as an npm package; the
# `node` package itself only installs it from a preinstall script, which npm 11 does not run unasked).
# CI (.ci/run) calls this after `npm test` has run the whole suite on the machine's Node.
#
#   scripts/test-node-matrix.sh                 # Node 22 and 24
#   NODE_MATRIX="22" scripts/test-node-matrix.sh
#
# The binaries are kept in ~/.cache/lmrun-dev/node/<version>. dist/ is built once (by `npm test`);
# both native parts are Node-API modules (node-llama-cpp's addon and lmrun's threadpool shim), so the
# same build loads on every Node.
set -euo pipefail
cd "$(dirname "$0")/.."

# The subset: one glob per line, relative to the repository root. A glob that matches nothing here
# (a part that does not exist yet) is skipped and named. Add a line to cover more.
SUBSET=(
  "test/unit/*.test.ts"               # the fast tests
  "test/cli/run.test.ts"              # real generations with the bundled model
  "test/tui/chat.tmux.test.ts"        # the chat TUI in a real terminal (tmux)
  "test/cli/completion.test.ts"       # bash completion, sourced in a real bash
  "test/cli/shimFallback.test.ts"     # the threadpool shim (Node-API) loads, or is left out quietly
  "test/plot/charts.test.ts"          # Vega / resvg charts
  "test/server/*.test.ts"             # the HTTP server, once it exists
)

versions=(${NODE_MATRIX:-22 24})
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lmrun-dev/node"
arch="$(node -p process.arch)"
package="node-linux-${arch}"

files=()
for glob in "${SUBSET[@]}"; do
  matched=0
  for file in $glob; do
    if [ -e "$file" ]; then files+=("$file"); matched=1; fi
  done
  [ "$matched" = 1 ] || echo "node matrix: skipping ${glob} (nothing matches yet)" >&2
done

[ -f dist/main.js ] || { echo "node matrix: dist/ is not built; run npm test (or npm run build) first" >&2; exit 2; }

status=0
for major in "${versions[@]}"; do
  # The newest release of that major the registry has.
  version="$(npm view "${package}@${major}" version --json | node -e 'const v = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log(Array.isArray(v) ? v.at(-1) : v)')"
  home="${cache}/${version}"
  if [ ! -x "${home}/bin/node" ]; then
    mkdir -p "$cache"
    work="$(mktemp -d "${cache}/.fetch.XXXXXX")"
    npm pack "${package}@${version}" --pack-destination "$work" --silent >/dev/null
    mkdir -p "${work}/node"
    tar -xzf "${work}/${package}-${version}.tgz" -C "${work}/node" --strip-components=1 package/bin package/LICENSE
    rm -rf "$home" && mv "${work}/node" "$home" && rm -rf "$work"
  fi
  echo "node matrix: Node $("${home}/bin/node" --version) — ${#files[@]} files" >&2
  started=$(date +%s)
  # PATH first: tests that start `node` in a shell (the tmux test) get this Node too.
  if ! PATH="${home}/bin:${PATH}" "${home}/bin/node" node_modules/vitest/vitest.mjs run "${files[@]}"; then
    status=1
  fi
  echo "node matrix: Node ${version} took $(( $(date +%s) - started )) s" >&2
done
exit $status
