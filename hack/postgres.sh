#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries for the migration and e2e tests, when
# missing. The tests start their own throwaway clusters (initdb + pg_ctl) on free ports.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends postgresql >/dev/null
compgen -G "/usr/lib/postgresql/*/bin/initdb"
