#!/usr/bin/env bash
# Builds the local control plane's tools from the Go module proxy, caches them
# keyed by version under $BLOOM_CACHE (default ~/.cache/bloom-operator), and
# links them into .cluster/bin. A warm run only re-links.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
source "$root/hack/versions.env"
cache=${BLOOM_CACHE:-$HOME/.cache/bloom-operator}
bin="$root/.cluster/bin"
mkdir -p "$cache/tools" "$bin"
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

say() { printf '[toolchain] %s\n' "$*" >&2; }

# build_once DIR DESC CMD...: runs CMD in a fresh wrapper module at DIR/src unless DIR/.done exists.
build_once() {
  local dir=$1 desc=$2; shift 2
  if [[ -f "$dir/.done" ]]; then return; fi
  say "building $desc (cold build, several minutes)"
  local t0=$SECONDS
  rm -rf "$dir"; mkdir -p "$dir/src" "$dir/bin"
  (while sleep 60; do say "  still building $desc ($((SECONDS - t0))s; log: $dir/build.log)"; done) &
  local ticker=$!
  if ! (cd "$dir/src" && "$@") >"$dir/build.log" 2>&1; then
    kill $ticker
    say "FAILED to build $desc; last lines of $dir/build.log:"; tail -n 30 "$dir/build.log" >&2; return 1
  fi
  kill $ticker
  touch "$dir/.done"
  say "built $desc in $((SECONDS - t0))s"
}

k8s_build() {
  local v=$KUBERNETES_VERSION minor
  minor=$(echo "$v" | cut -d. -f2)
  go mod init local/k8sbins >/dev/null 2>&1
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  # Every staging module is required at v0.0.0 upstream; point each at its published tag.
  for m in $(awk '$2 == "v0.0.0" && $1 ~ /^k8s.io\// {print $1}' "$gomod"); do
    go mod edit -replace="$m=$m@v0.$minor.${v##*.}"
  done
  local pkgs=(cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubectl)
  go get $(printf "k8s.io/kubernetes/%s@$v " "${pkgs[@]}") >&2
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1"
  ld+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for p in "${pkgs[@]}"; do
    echo "go build ${p#cmd/}" >&2
    go build -trimpath -tags selinux,notest -ldflags "$ld" -o ../bin/ "k8s.io/kubernetes/$p"
  done
}

etcd_build() {
  go mod init local/etcdbin >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o ../bin/etcd go.etcd.io/etcd/server/v3
}

kwok_build() {
  go mod init local/kwokbin >/dev/null 2>&1
  go get "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
  go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" -o ../bin/kwok sigs.k8s.io/kwok/cmd/kwok
}

helm_build() {
  local minor
  minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
  go mod init local/helmbin >/dev/null 2>&1
  go get "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  go build -trimpath -ldflags "$ld" -o ../bin/helm helm.sh/helm/v3/cmd/helm
}

# Kueue's manager, and its CRDs and webhook manifests from the same module (the harness installs them).
kueue_build() {
  go mod init local/kueuebin >/dev/null 2>&1
  go get "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION" >&2
  go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" -o ../bin/kueue sigs.k8s.io/kueue/cmd/kueue
  local src
  src=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)
  mkdir -p ../manifests/kueue
  cp "$src"/config/components/crd/bases/*.yaml "$src/config/components/webhook/manifests.yaml" ../manifests/kueue/
}

k8s_dir="$cache/tools/kubernetes-$KUBERNETES_VERSION"
etcd_dir="$cache/tools/etcd-$ETCD_VERSION"
kwok_dir="$cache/tools/kwok-$KWOK_VERSION"
helm_dir="$cache/tools/helm-$HELM_VERSION-k8s$KUBERNETES_VERSION"
kueue_dir="$cache/tools/kueue-$KUEUE_VERSION"

# The builds share no module graph; run them two at a time on small machines.
build_once "$etcd_dir" "etcd $ETCD_VERSION" etcd_build & p1=$!
build_once "$kwok_dir" "kwok $KWOK_VERSION" kwok_build & p2=$!
wait $p1 $p2 || true
build_once "$helm_dir" "helm $HELM_VERSION" helm_build & p1=$!
build_once "$k8s_dir" "kubernetes $KUBERNETES_VERSION (apiserver, controller-manager, scheduler, kubectl)" k8s_build & p2=$!
wait $p1 || true
build_once "$kueue_dir" "kueue $KUEUE_VERSION" kueue_build & p1=$!
wait $p1 $p2 || true

for d in "$k8s_dir" "$etcd_dir" "$kwok_dir" "$helm_dir" "$kueue_dir"; do
  [[ -f "$d/.done" ]] || { say "build failed: $d"; exit 1; }
  for f in "$d"/bin/*; do ln -sfn "$f" "$bin/$(basename "$f")"; done
done
mkdir -p "$root/.cluster/manifests"
ln -sfn "$kueue_dir/manifests/kueue" "$root/.cluster/manifests/kueue"
say "tools ready in $bin"
