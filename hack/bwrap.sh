#!/usr/bin/env bash
# Installs Debian's bubblewrap (bwrap) when missing: `terraform.sandbox: bwrap` runs every
# Terraform command in it, and the isolation tests (tests/integration/terraform/
# test_isolation.py) need it. Then checks that it can build a sandbox here (user, PID,
# mount and network namespaces) and says why not when it cannot.
set -euo pipefail
if ! command -v bwrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends bubblewrap >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends bubblewrap >/dev/null
  }
fi
if ! out=$(bwrap --unshare-all --unshare-user --cap-drop ALL --die-with-parent \
             --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib \
             --symlink usr/lib64 /lib64 --proc /proc --dev /dev --tmpfs /tmp \
             /bin/sh -c true 2>&1); then
  echo "bwrap is installed but cannot build a sandbox here: $out" >&2
  echo "(unprivileged user namespaces off? sysctl kernel.unprivileged_userns_clone," >&2
  echo " user.max_user_namespaces, or an AppArmor/seccomp policy of the container)" >&2
  exit 1
fi
