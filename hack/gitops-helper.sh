#!/usr/bin/env bash
# Builds test/gitops (bloom-gitops: kstatus from sigs.k8s.io/cli-utils and Argo CD's gopher-lua
# health evaluation) from the Go module proxy, caches the binary under $BLOOM_CACHE (default
# ~/.cache/bloom-operator) keyed by the hash of its go.mod, go.sum and sources, and links it into
# .cluster/bin. A warm run only re-links.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${BLOOM_CACHE:-$HOME/.cache/bloom-operator}
src="$root/test/gitops"
key=$(cd "$src" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)
dir="$cache/tools/gitops-$key"
say() { printf '[gitops-helper] %s\n' "$*" >&2; }
if [[ ! -x "$dir/bin/bloom-gitops" ]]; then
  say "building bloom-gitops ($key)"
  t0=$SECONDS
  rm -rf "$dir"; mkdir -p "$dir/bin"
  # go.sum pins every module; -mod=readonly refuses to change it.
  if ! (cd "$src" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$dir/bin/bloom-gitops.tmp" .) >"$dir/build.log" 2>&1; then
    say "FAILED; last lines of $dir/build.log:"; tail -n 30 "$dir/build.log" >&2; exit 1
  fi
  mv "$dir/bin/bloom-gitops.tmp" "$dir/bin/bloom-gitops"
  say "built in $((SECONDS - t0))s"
fi
mkdir -p "$root/.cluster/bin"
ln -sfn "$dir/bin/bloom-gitops" "$root/.cluster/bin/bloom-gitops"
