#!/usr/bin/env bash
# The Gateway API CRDs (standard channel) for the traffic-shifting tests: taken from the
# Go module sigs.k8s.io/gateway-api (`go mod download`, through the Go module proxy) and
# cached as one manifest under ~/.cache/reconciler/gateway-api/<version>/standard.yaml.
# The test setup (reconciler.localparts.gatewayapi) applies it to the local control plane.
#
# Idempotent: a cached manifest is reused. Prints the manifest's path on stdout.
set -euo pipefail

VERSION="${GATEWAY_API_VERSION:-v1.6.3}"   # served and accepted by this machine's Go (1.26)
CACHE="${RECONCILER_CACHE:-$HOME/.cache/reconciler}/gateway-api/$VERSION"
OUT="$CACHE/standard.yaml"

log() { echo "gateway-api: $*" >&2; }

if [[ -s "$OUT" ]]; then
  echo "$OUT"
  exit 0
fi
command -v go >/dev/null || { log "go toolchain not found"; exit 1; }
mkdir -p "$CACHE"
dir="$(cd "$CACHE" && go mod download -json "sigs.k8s.io/gateway-api@$VERSION" \
       | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
crds="$dir/config/crd/standard"
[[ -f "$crds/gateway.networking.k8s.io_httproutes.yaml" ]] || {
  log "no HTTPRoute CRD in $crds"; exit 1; }
tmp="$(mktemp "$CACHE/.standard.XXXXXX")"
for f in "$crds"/gateway.networking.k8s.io_*.yaml; do
  # CRDs only (the standard directory also holds a ValidatingAdmissionPolicy)
  if grep -q '^kind: CustomResourceDefinition' "$f"; then
    printf -- '---\n' >> "$tmp"
    cat "$f" >> "$tmp"
  fi
done
mv -f "$tmp" "$OUT"
log "CRDs of $VERSION cached in $OUT"
echo "$OUT"
