#!/usr/bin/env bash
# The README's main command: on a fresh machine, install reconciler and the local parts
# (Kubernetes binaries built once from the Go module proxy into ~/.cache/reconciler,
# PostgreSQL, Prometheus and bubblewrap from Debian's packages), then run `reconciler demo` on the
# bundled example fleet. The first build of the Kubernetes binaries takes ~15 minutes on
# 2 cores; later runs reuse the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
python3 -m pip install -q -e .
bash hack/k8s-testenv/build.sh >/dev/null
bash hack/postgres.sh
bash hack/prometheus.sh
bash hack/bwrap.sh >/dev/null  # Terraform runs in bubblewrap (docs/security.md)
exec reconciler demo "$@"
