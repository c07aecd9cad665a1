#!/usr/bin/env bash
# Creates .venv from uv.lock (CPU is enough; the PyPI torch wheel also runs on GPUs).
# uv itself and its package cache live under $BLOOM_CACHE, so a warm run only links.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/hack/versions.env"
cache=${BLOOM_CACHE:-$HOME/.cache/bloom-operator}
uvdir="$cache/tools/uv-$UV_VERSION"
if [[ ! -x "$uvdir/bin/uv" ]]; then
  echo "[pyenv] installing uv $UV_VERSION" >&2
  python3 -m pip install -q --disable-pip-version-check --target "$uvdir/lib" "uv==$UV_VERSION"
  mkdir -p "$uvdir/bin" && ln -sfn "$uvdir/lib/bin/uv" "$uvdir/bin/uv"
fi
export UV_CACHE_DIR="$cache/uv-cache" UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=${UV_LINK_MODE:-hardlink}
cd "$root"
if [[ -f uv.lock ]]; then lock=--locked; else lock=; fi
"$uvdir/bin/uv" sync $lock --python "$(command -v python3)" --quiet
mkdir -p .cluster/bin && ln -sfn "$uvdir/bin/uv" .cluster/bin/uv
echo "[pyenv] .venv ready" >&2
