#!/usr/bin/env bash
# The project's test command:
#
#   bash tests/run.sh [extra arguments for the first cargo test]
#
# 1. makes sure the Python venv with a real Glance exists (tests/harness/setup-python.sh;
#    about a minute the first time, well under a second after that) and exports
#    GLANCE_CACHE_VENV so that the tests find it;
# 2. cargo test --workspace --all-targets "$@"   (unit, integration, example and bench targets)
# 3. cargo test --workspace --doc                (documentation examples)
# Both cargo runs happen even if the first fails; the exit status is the first failing
# run's (0 when both pass).
#
# Environment:
#   GLANCE_CACHE_VENV      where the venv lives (default $HOME/.cache/glance-cache/venv)
#   GLANCE_CACHE_NO_SETUP  =1: do not create/check the venv (tests that need a real Glance
#                          then skip if it is missing, or fail when CI=true)
#   CI                     =true: tests that need a real service fail instead of skipping
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
export GLANCE_CACHE_VENV=${GLANCE_CACHE_VENV:-${HOME:-/root}/.cache/glance-cache/venv}

elapsed() { echo $(( $(date +%s) - $1 )); }

if [ "${GLANCE_CACHE_NO_SETUP:-0}" = 1 ]; then
  echo "run.sh: GLANCE_CACHE_NO_SETUP=1: not checking the Glance venv at $GLANCE_CACHE_VENV"
else
  t=$(date +%s)
  if ! bash tests/harness/setup-python.sh; then
    echo "run.sh: ERROR: could not set up the real-Glance venv at $GLANCE_CACHE_VENV (see above)." >&2
    echo "run.sh: set GLANCE_CACHE_NO_SETUP=1 to run the tests anyway (real-Glance tests then skip)." >&2
    exit 1
  fi
  echo "run.sh: Glance venv ready in $(elapsed "$t")s: $GLANCE_CACHE_VENV"
fi

t=$(date +%s)
cargo test --workspace --all-targets "$@"
targets_status=$?
echo "run.sh: cargo test --workspace --all-targets: exit $targets_status in $(elapsed "$t")s"

t=$(date +%s)
cargo test --workspace --doc
doc_status=$?
echo "run.sh: cargo test --workspace --doc: exit $doc_status in $(elapsed "$t")s"

if [ "$targets_status" -ne 0 ] || [ "$doc_status" -ne 0 ]; then
  echo "run.sh: FAILED (all targets: exit $targets_status, doc tests: exit $doc_status)" >&2
  if [ "$targets_status" -ne 0 ]; then exit "$targets_status"; fi
  exit "$doc_status"
fi
echo "run.sh: all tests passed"
