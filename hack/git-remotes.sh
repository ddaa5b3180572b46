#!/usr/bin/env bash
# Real Git remotes for the tests: git-http-backend (part of git) and an sshd from
# Debian's openssh-server package. Idempotent; needs no input (CI=true).
set -euo pipefail
if [[ ! -x /usr/lib/git-core/git-http-backend ]]; then
  echo "git-http-backend missing: install git" >&2
  exit 1
fi
if [[ ! -x /usr/sbin/sshd ]]; then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q --no-install-recommends openssh-server >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q --no-install-recommends openssh-server >/dev/null
  }
fi
/usr/sbin/sshd -V 2>&1 | head -1 || true
