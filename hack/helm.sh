#!/usr/bin/env bash
# Builds `helm` (used only as `helm template`, the chart renderer of kubernetes.helm services)
# from the Go module helm.sh/helm/v3 into ~/.cache/reconciler/helm/<version>/helm.
# Kustomize renders with `kubectl kustomize` of the kubectl hack/k8s-testenv/build.sh builds.
#
# Beside it, `helm-batch` (hack/helm-batch/main.go, the same helm.sh/helm/v3 module): renders
# many cells of a chart in one process, each exactly as `helm template` does (the cold render of
# a large fleet; reconciler/adapters/render/batch.py). Rebuilt when its source changes.
# And `kustomize-batch` (hack/kustomize-batch/main.go, the sigs.k8s.io/kustomize/api module of
# the Kustomize $KUSTOMIZE_VERSION kubectl embeds, its dependencies pinned to kubectl's) into
# ~/.cache/reconciler/kustomize/<version>/: many Kustomize cells per process, each as
# `kubectl kustomize` builds it. Rebuilt when its source changes.
#
# Idempotent: an existing binary is reused (a few ms when warm). HELM_BINARY set by the user
# to an executable is not rebuilt (reconciler.localparts.helm prefers it).
# Usage: hack/helm.sh        # prints the binary's path on stdout
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.22.0}"   # must match reconciler/localparts/helm.py
KUSTOMIZE_VERSION="v5.8.1"                # kubectl v1.37.2's; reconciler/localparts/helm.py
CACHE="${RECONCILER_CACHE:-$HOME/.cache/reconciler}/helm"
OUT="$CACHE/$HELM_VERSION"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { echo "helm: $*" >&2; }

# go_batch NAME OUTDIR VERSION LDFLAGS: builds hack/NAME into OUTDIR/NAME (rebuilt when its
# sources change; `NAME version` must print VERSION).
go_batch() {
  local name="$1" out="$2" version="$3" ldflags="$4" src="$HERE/$1" stamp tmp
  stamp="$(cat "$src/main.go" "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-16)"
  if [[ -x "$out/$name" && "$(cat "$out/$name.stamp" 2>/dev/null)" == "$stamp" ]]; then
    return 0
  fi
  command -v go >/dev/null || { log "go toolchain not found"; exit 1; }
  mkdir -p "$out"
  tmp="$(mktemp -d "$out/.build-batch.XXXXXX")"
  log "building $name for $version"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" \
     nice -n 10 go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp/$name" .)
  [[ "$("$tmp/$name" version)" == "$version" ]]
  mv -f "$tmp/$name" "$out/$name" && echo "$stamp" > "$out/$name.stamp"
  rm -rf "$tmp"
}

build_batch() {
  if ! grep -q "helm.sh/helm/v3 $HELM_VERSION\$" "$HERE/helm-batch/go.mod"; then
    log "helm-batch is pinned to another Helm than $HELM_VERSION (hack/helm-batch/go.mod): not built"
    return 0
  fi
  go_batch helm-batch "$OUT" "$HELM_VERSION" "-X main.helmVersion=$HELM_VERSION \
-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
-X helm.sh/helm/v3/internal/version.gitTreeState=clean"
}

build_kustomize_batch() {
  go_batch kustomize-batch "${RECONCILER_CACHE:-$HOME/.cache/reconciler}/kustomize/$KUSTOMIZE_VERSION" \
    "$KUSTOMIZE_VERSION" "-X main.kustomizeVersion=$KUSTOMIZE_VERSION"
}

build_batch
build_kustomize_batch
if [[ -n "${HELM_BINARY:-}" && -x "$HELM_BINARY" ]]; then echo "$HELM_BINARY"; exit 0; fi
if [[ -x "$OUT/helm" ]]; then echo "$OUT/helm"; exit 0; fi
command -v go >/dev/null || { log "go toolchain not found"; exit 1; }
mkdir -p "$OUT"
tmp="$(mktemp -d "$OUT/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
log "building helm $HELM_VERSION from the Go module proxy (this can take a while on a cold cache)"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
GOBIN="$tmp" GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 \
  nice -n 10 go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
"$tmp/helm" version --short >/dev/null
mv -f "$tmp/helm" "$OUT/helm"
log "built $OUT/helm in $(( $(date +%s) - start ))s"
echo "$OUT/helm"
