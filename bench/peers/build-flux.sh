#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller (the peer of the side-by-side
# benchmark, bench/peers/flux.py) from the Go module proxy into
# ~/.cache/reconciler/flux/<version>/{source-controller,kustomize-controller,crds/}.
# Bench only: not part of hack/test.sh, no test needs it.
#
# The controllers' go.mod replace their own api module with ./api, which is a separate module
# and so not in the module zip: `go install module@version` refuses a module with replace
# directives. So each module's source is copied out of the module cache, that one replace is
# dropped (the api module then comes from the proxy at the version go.mod requires), and the
# main package is built there. v1.9.6 is the newest release whose go.mod says go 1.26 (v1.10.x
# needs go 1.27, i.e. a GOTOOLCHAIN change, which we avoid). The proxy reachable here refuses
# github.com/fluxcd/pkg/artifact v0.18.3 (403 "not available"), which source-controller v1.9.6
# requires; v0.18.0 is served and builds, so it is pinned by a replace (PINS below).
#
# Idempotent: existing binaries and CRDs are reused (a few ms when warm).
# Usage: bench/peers/build-flux.sh        # prints the directory on stdout
set -euo pipefail
FLUX_VERSION="${FLUX_VERSION:-v1.9.6}"   # both controllers; must match bench/peers/flux.py
# module=version replaces applied to both controllers' go.mod (see above)
PINS=(github.com/fluxcd/pkg/artifact=github.com/fluxcd/pkg/artifact@v0.18.0)
CACHE="${RECONCILER_CACHE:-$HOME/.cache/reconciler}/flux"
OUT="$CACHE/$FLUX_VERSION"
SRC="$CACHE/src"
export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
log() { echo "build-flux: $*" >&2; }

command -v go >/dev/null || { log "go toolchain not found"; exit 1; }
mkdir -p "$OUT/crds" "$SRC"

# build NAME: source of github.com/fluxcd/NAME@FLUX_VERSION -> $OUT/NAME and its CRDs.
build() {
  local name="$1" mod="github.com/fluxcd/$1" dir tmp start
  if [[ -x "$OUT/$name" ]] && compgen -G "$OUT/crds/*${name%%-*}*" >/dev/null; then return 0; fi
  start=$(date +%s)
  log "building $name $FLUX_VERSION from the Go module proxy (minutes on a cold cache)"
  dir="$(nice -n 10 go mod download -json "$mod@$FLUX_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$dir" ]] || { log "go mod download $mod@$FLUX_VERSION gave no directory"; exit 1; }
  cp -f "$dir"/config/crd/bases/*.yaml "$OUT/crds/"
  chmod u+w "$OUT"/crds/*.yaml
  rm -rf "$SRC/$name"
  cp -r "$dir" "$SRC/$name"
  chmod -R u+w "$SRC/$name"
  tmp="$(mktemp -d "$OUT/.build.XXXXXX")"
  trap 'rm -rf "${tmp:-}"' EXIT
  local edits=(-dropreplace "$mod/api") pin
  for pin in "${PINS[@]}"; do
    grep -q "${pin%%=*} " "$SRC/$name/go.mod" && edits+=(-replace "$pin")
  done
  (cd "$SRC/$name" && go mod edit "${edits[@]}" &&
    nice -n 10 go build -trimpath -ldflags "-s -w" -o "$tmp/$name" .)
  mv -f "$tmp/$name" "$OUT/$name"
  rmdir "$tmp"
  log "built $OUT/$name in $(( $(date +%s) - start ))s"
}

build source-controller
build kustomize-controller
echo "$OUT"
