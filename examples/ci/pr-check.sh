#!/usr/bin/env bash
# The pull-request check of docs/ci.md, for any CI system: validate the head of the
# pull request (against the operator's policy when one is given), then preview what
# merging it would do as a Markdown comment (reconciler diff against the base branch).
#
#   BASE=origin/main POLICY=/path/to/policy.yaml bash pr-check.sh [REPO_DIR]
#
# BASE     the base branch as Git knows it here (default origin/main; fetch it first)
# POLICY   the operator's policy file; take it from a trusted place (the base branch, the
#          CI system's protected files), never from the pull request itself
# OUT      where the Markdown goes (default reconciler-diff.md)
# Exit: 0 when the head is valid and the preview was written (changes or not), 1 when the
# head is invalid or the preview failed.
set -uo pipefail

repo="${1:-.}"
base="${BASE:-origin/main}"
out="${OUT:-reconciler-diff.md}"
read -r -a reconciler <<< "${RECONCILER:-reconciler}"
policy=()
if [[ -n "${POLICY:-}" ]]; then
  policy=(--policy "$POLICY")
fi

if ! "${reconciler[@]}" validate "$repo" "${policy[@]}"; then
  printf '### reconciler: the desired state is invalid\n\nSee the job log: every error is `path:line:col: message`.\n' > "$out"
  exit 1
fi

"${reconciler[@]}" diff "$repo" --base "$base" -o markdown > "$out"
code=$?
case "$code" in
  0) echo "reconciler diff: no changes to the fleet ($out)" ;;
  2) echo "reconciler diff: the merge changes the fleet ($out)" ;;
  *) echo "reconciler diff failed (exit $code)" >&2
     exit 1 ;;
esac
