#!/usr/bin/env bash
# Installs Debian's headless Chromium and its WebDriver (chromium-driver, the same
# version by the package's own dependency) for the dashboard's browser tests
# (tests/integration/dashboard) and bench/dashboard.py, when missing. Nothing is
# downloaded but Debian's packages: Selenium is pointed at /usr/bin/chromium and
# /usr/bin/chromedriver, its own driver manager is never used.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core \
    >/dev/null 2>&1 || {
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core \
      >/dev/null
}
chromium --version
