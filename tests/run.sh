#!/usr/bin/env bash
# The project's test command:
#
#   bash tests/run.sh [extra arguments for the first cargo test]
#
# 1. makes sure the Python venvs with a real Glance and a real Keystone (+ memcached) exist
#    (tests/harness/setup-python.sh --with-keystone; about a minute each the first time, well
#    under a second after that) and exports GLANCE_CACHE_VENV and GLANCE_CACHE_KEYSTONE_VENV
#    so that the tests find them;
# 2. cargo test --workspace --all-targets "$@"   (unit, integration, example and bench targets)
# 3. cargo test --workspace --doc                (documentation examples)
# Both cargo runs happen even if the first fails; the exit status is the first failing
# run's (0 when both pass).
#
# Environment:
#   GLANCE_CACHE_VENV      where the Glance venv lives (default $HOME/.cache/glance-cache/venv)
#   GLANCE_CACHE_KEYSTONE_VENV  where the Keystone venv lives
#                          (default $HOME/.cache/glance-cache/keystone-venv)
#   GLANCE_CACHE_NO_SETUP  =1: do not create/check the venvs (tests that need a real Glance or
#                          Keystone then fail if it is missing: no test passes without the
#                          service it needs)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
export GLANCE_CACHE_VENV=${GLANCE_CACHE_VENV:-${HOME:-/root}/.cache/glance-cache/venv}
export GLANCE_CACHE_KEYSTONE_VENV=${GLANCE_CACHE_KEYSTONE_VENV:-${HOME:-/root}/.cache/glance-cache/keystone-venv}

elapsed() { echo $(( $(date +%s) - $1 )); }

if [ "${GLANCE_CACHE_NO_SETUP:-0}" = 1 ]; then
  echo "run.sh: GLANCE_CACHE_NO_SETUP=1: not checking the venvs at $GLANCE_CACHE_VENV and $GLANCE_CACHE_KEYSTONE_VENV"
else
  t=$(date +%s)
  if ! bash tests/harness/setup-python.sh --with-keystone; then
    echo "run.sh: ERROR: could not set up the real-Glance/Keystone venvs at $GLANCE_CACHE_VENV and $GLANCE_CACHE_KEYSTONE_VENV (see above)." >&2
    echo "run.sh: set GLANCE_CACHE_NO_SETUP=1 to run the tests anyway (real-Glance/Keystone tests then fail)." >&2
    exit 1
  fi
  echo "run.sh: Glance and Keystone venvs ready in $(elapsed "$t")s: $GLANCE_CACHE_VENV $GLANCE_CACHE_KEYSTONE_VENV"
fi

t=$(date +%s)
cargo test --workspace --all-targets --no-fail-fast "$@"
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
