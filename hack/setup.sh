#!/usr/bin/env bash
# Installs everything the project needs and caches it: npm packages, the Kubernetes
# tools (built from source, hack/toolchain.sh), the GitOps test helper (Go, hack/gitops-helper.sh),
# the Python environment (.venv, hack/pyenv.sh), then compiles the TypeScript. Warm runs take seconds.
#   --tools   only the npm packages, the Kubernetes tools and the build (no Python)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
stamp=node_modules/.package-lock.json
if [[ ! -f $stamp || package-lock.json -nt $stamp ]]; then
  echo "[setup] npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
bash hack/toolchain.sh
bash hack/gitops-helper.sh
if [[ ${1:-} != --tools ]]; then bash hack/pyenv.sh; fi
echo "[setup] compiling TypeScript" >&2
npx tsc -p tsconfig.json
