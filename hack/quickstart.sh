#!/usr/bin/env bash
# The README's main command: install reconciler and run it on the bundled example fleet.
# Validates example-repo, then shows the fleet-wide plan against a mid-rollout live
# snapshot (examples/live-mid-rollout.json) as text.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
python3 -m pip install -q -e .
reconciler validate example-repo
reconciler plan example-repo --live examples/live-mid-rollout.json --now 2026-11-22T10:00:00Z
