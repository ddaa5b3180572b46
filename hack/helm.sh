#!/usr/bin/env bash
# Builds `helm` (used only as `helm template`, the chart renderer of kubernetes.helm services)
# from the Go module helm.sh/helm/v3 into ~/.cache/reconciler/helm/<version>/helm.
# Kustomize needs no build: `kubectl kustomize` of the kubectl hack/k8s-testenv/build.sh builds.
#
# Idempotent: an existing binary is reused (a few ms when warm). HELM_BINARY set by the user
# to an executable is not rebuilt (reconciler.localparts.helm prefers it).
# Usage: hack/helm.sh        # prints the binary's path on stdout
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.22.0}"   # must match reconciler/localparts/helm.py
CACHE="${RECONCILER_CACHE:-$HOME/.cache/reconciler}/helm"
OUT="$CACHE/$HELM_VERSION"
log() { echo "helm: $*" >&2; }

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
