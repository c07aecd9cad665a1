#!/usr/bin/env bash
# Copies the generated CRDs (crds/*.yaml, written by `npm run crds`) into the
# Helm chart's crds/ directory. The chart never holds a hand-edited CRD: its
# crds/ copy is what Helm installs by default, and templates/crds.yaml renders
# the same file when crds.manage=true.
#   hack/sync-chart-crds.sh          copy
#   hack/sync-chart-crds.sh --check  exit 1 if the chart's copy is stale
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/crds"
dst="$root/charts/bloom-operator/crds"
check=false
[[ ${1:-} == --check ]] && check=true

shopt -s nullglob
files=("$src"/*.yaml)
if (( ${#files[@]} == 0 )); then
  echo "sync-chart-crds: no generated CRDs in $src (run: npm run build && npm run crds)" >&2
  exit 1
fi

stale=0
for f in "${files[@]}"; do
  name=$(basename "$f")
  if $check; then
    if ! cmp -s "$f" "$dst/$name"; then
      echo "sync-chart-crds: charts/bloom-operator/crds/$name is stale; run hack/sync-chart-crds.sh" >&2
      stale=1
    fi
  else
    mkdir -p "$dst"
    cp "$f" "$dst/$name"
    echo "sync-chart-crds: crds/$name -> charts/bloom-operator/crds/$name"
  fi
done
# A CRD removed from crds/ must not linger in the chart.
for f in "$dst"/*.yaml; do
  name=$(basename "$f")
  if [[ ! -f "$src/$name" ]]; then
    if $check; then
      echo "sync-chart-crds: charts/bloom-operator/crds/$name has no source in crds/" >&2
      stale=1
    else
      rm -f "$f"
      echo "sync-chart-crds: removed charts/bloom-operator/crds/$name"
    fi
  fi
done
exit $stale
