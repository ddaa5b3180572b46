#!/usr/bin/env bash
# Installs Debian's Prometheus server for the alarm tests and the demo, when missing.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 || [[ -n "${PROMETHEUS_BIN:-}" ]]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends prometheus >/dev/null
# Debian's package may try to start a service; the tests start their own on a free port.
command -v prometheus
