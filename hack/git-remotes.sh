#!/usr/bin/env bash
# Real Git remotes for the tests (reconciler/testing/gitserver.py): git-http-backend,
# which comes with git, and sshd + ssh-keygen from Debian's openssh-server package.
# Idempotent: installs nothing when both are there; runs apt-get update only when the
# package cannot be found without it. Needs no input (CI=true, no stdin).
set -euo pipefail

backend="$(git --exec-path 2>/dev/null || echo /usr/lib/git-core)/git-http-backend"
if [[ ! -x "$backend" ]]; then
  echo "git-http-backend not found at $backend: install git" >&2
  exit 1
fi

if [[ -x /usr/sbin/sshd ]] && command -v ssh-keygen >/dev/null; then
  echo "sshd: $(/usr/sbin/sshd -V 2>&1 | head -1 || true)"
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "/usr/sbin/sshd is missing and apt-get is not available: install openssh-server" >&2
  exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
install=("${sudo[@]}" apt-get install -y -q --no-install-recommends openssh-server)
echo "installing openssh-server"
if ! "${install[@]}" </dev/null >/dev/null 2>&1; then
  "${sudo[@]}" apt-get update -q </dev/null >/dev/null
  "${install[@]}" </dev/null >/dev/null
fi
/usr/sbin/sshd -V 2>&1 | head -1 || true
