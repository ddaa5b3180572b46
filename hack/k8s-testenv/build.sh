#!/usr/bin/env bash
# Build the local Kubernetes control plane used by the tests (and `reconciler demo`):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and KWOK,
# with `go build` from the Go module proxy, into ~/.cache/reconciler/k8s/<version>/.
#
# Idempotent: binaries already in the cache are reused (a few ms when warm).
# Binaries given by the user through TEST_ASSET_KUBE_APISERVER / TEST_ASSET_ETCD /
# TEST_ASSET_KUBECTL or KUBEBUILDER_ASSETS are not rebuilt (reconciler.localparts.k8s
# prefers them). Caches: GOMODCACHE (~/go/pkg/mod) and GOCACHE (~/.cache/go-build)
# stay in their defaults and should be kept between CI runs.
#
# Usage: hack/k8s-testenv/build.sh         # prints the binary directory on stdout
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"   # must match kube/go.mod
ETCD_VERSION="v3.7.3"                    # must match etcd/go.mod
KWOK_VERSION="v0.8.0"                    # must match kwok/go.mod

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${RECONCILER_CACHE:-$HOME/.cache/reconciler}/k8s"
OUT="$CACHE/$K8S_VERSION"
SRC="$CACHE/src"
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0

log() { echo "k8s-testenv: $*" >&2; }

command -v go >/dev/null || { log "go toolchain not found"; exit 1; }
mkdir -p "$OUT" "$SRC"

# have NAME: the binary is usable from the cache or from the user's assets.
have() {
  local name="$1" var="$2"
  [[ -x "$OUT/$name" ]] && return 0
  [[ -n "$var" && -n "${!var:-}" && -x "${!var}" ]] && return 0
  [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/$name" ]] && return 0
  return 1
}

# prepare MODULE: copy the helper module into a writable work dir (go.sum lands there).
prepare() {
  local mod="$1" dir="$SRC/$1"
  mkdir -p "$dir"
  cp "$HERE/$mod/go.mod" "$dir/go.mod"
  [[ -f "$HERE/$mod/go.sum" ]] && cp "$HERE/$mod/go.sum" "$dir/go.sum"
  echo "$dir"
}

# build MODULE LDFLAGS PKG... : go build the packages into a temp dir, then move in.
build() {
  local mod="$1" ldflags="$2"; shift 2
  local dir tmp start
  dir="$(prepare "$mod")"
  tmp="$(mktemp -d "$OUT/.build.XXXXXX")"
  start=$(date +%s)
  log "building $mod: $* (this can take a while on a cold cache)"
  (cd "$dir" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "$@")
  for f in "$tmp"/*; do mv -f "$f" "$OUT/"; done
  rmdir "$tmp"
  log "built $mod in $(( $(date +%s) - start ))s"
}

kube_ldflags() {
  local v="$K8S_VERSION" minor
  minor="$(echo "$v" | cut -d. -f2)"
  local flags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    flags+=" -X $p.gitCommit=$v -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

need_kube=()
have kube-apiserver TEST_ASSET_KUBE_APISERVER || need_kube+=(k8s.io/kubernetes/cmd/kube-apiserver)
have kube-controller-manager "" || need_kube+=(k8s.io/kubernetes/cmd/kube-controller-manager)
have kube-scheduler "" || need_kube+=(k8s.io/kubernetes/cmd/kube-scheduler)
have kubectl TEST_ASSET_KUBECTL || need_kube+=(k8s.io/kubernetes/cmd/kubectl)

have etcd TEST_ASSET_ETCD || build etcd "-s -w" go.etcd.io/etcd/server/v3
for n in server v3; do [[ -x "$OUT/$n" ]] && mv -f "$OUT/$n" "$OUT/etcd"; done
have kwok "" || build kwok "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
if (( ${#need_kube[@]} )); then build kube "$(kube_ldflags)" "${need_kube[@]}"; fi

printf 'k8s=%s\netcd=%s\nkwok=%s\n' "$K8S_VERSION" "$ETCD_VERSION" "$KWOK_VERSION" > "$OUT/VERSIONS"
echo "$OUT"
