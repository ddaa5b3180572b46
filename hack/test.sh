#!/usr/bin/env bash
# The test command (README): installs what the tests need on a fresh machine, builds or
# reuses the cached local components, then runs lint, type checks, layering and pytest.
# Extra arguments go to pytest (e.g. hack/test.sh tests/core -q).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

echo "== python packages"
python3 -m pip install -q -e '.[dev]'

echo "== static checks"
ruff check reconciler tests bench
mypy
lint-imports

echo "== real components (cached under ~/.cache/reconciler)"
for setup in hack/prometheus.sh hack/k8s-testenv/build.sh hack/helm.sh hack/gateway-api.sh hack/terraform.sh hack/bwrap.sh hack/postgres.sh hack/git-remotes.sh hack/chromium.sh hack/image.sh; do
  if [[ -f "$setup" ]]; then
    echo "-- $setup"
    bash "$setup"
  fi
done

echo "== tests"
python3 -m pytest -ra "$@"
