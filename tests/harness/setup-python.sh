#!/usr/bin/env bash
# Create or update the Python venv that holds a REAL OpenStack Glance for the tests.
#
#   bash tests/harness/setup-python.sh [--quiet]
#
# Installs glance 33.0.0, python-glanceclient 4.13.0 and uWSGI 2.0.31, every dependency
# pinned by tests/harness/constraints.txt, into
#   ${GLANCE_CACHE_VENV:-$HOME/.cache/glance-cache/venv}
# Idempotent: when the venv already has those versions it only checks them (well under 1 s).
# A cold install takes about a minute on 2 cores (uWSGI is compiled from its sdist: it needs a
# C compiler and the Python headers; the script checks both before it starts and says what is
# missing). The last line printed on success is "setup-python: ready: <venv>".
#
# --with-keystone also installs a REAL OpenStack Keystone: keystone 30.0.0, pymemcache 4.0.0 and
# uWSGI 2.0.31, pinned by tests/harness/constraints-keystone.txt, into a SEPARATE venv
#   ${GLANCE_CACHE_KEYSTONE_VENV:-$HOME/.cache/glance-cache/keystone-venv}
# (so that Keystone's dependencies can never disturb Glance's), plus Debian's memcached via
# apt-get when no memcached is on PATH (tests/harness/keystone.sh runs a private one per
# Keystone). Idempotent too; a cold install takes about a minute more.
#
# Environment:
#   GLANCE_CACHE_VENV           where the Glance venv lives (default $HOME/.cache/glance-cache/venv)
#   GLANCE_CACHE_KEYSTONE_VENV  where the Keystone venv lives
#                               (default $HOME/.cache/glance-cache/keystone-venv)
#   GLANCE_CACHE_NO_APT         =1: never call apt-get (memcached must then be on PATH already)
#   PYTHON                      the interpreter the venvs are made from (default python3; >= 3.10)
#
# Components: "glance" is always installed, "keystone" with --with-keystone. Each has an
# ensure_<name> function and a flag; nothing else changes.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=${GLANCE_CACHE_VENV:-${HOME:-/root}/.cache/glance-cache/venv}
KEYSTONE_VENV=${GLANCE_CACHE_KEYSTONE_VENV:-${HOME:-/root}/.cache/glance-cache/keystone-venv}
PY=${PYTHON:-python3}
CONSTRAINTS=$HERE/constraints.txt
QUIET=0
WITH_KEYSTONE=0

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quiet) QUIET=1; shift;;
    --with-keystone) WITH_KEYSTONE=1; shift;;
    -h|--help) usage; exit 0;;
    *) echo "setup-python: unknown option '$1'" >&2; usage >&2; exit 2;;
  esac
done

say() { [ "$QUIET" = 1 ] || echo "setup-python: $*"; }
die() { echo "setup-python: ERROR: $*" >&2; exit 1; }

START=$(date +%s)
LOG=$VENV/setup-python.log

# Runs "$@" with its output in $LOG; on failure prints the log's tail and dies.
run_logged() {
  local what=$1; shift
  echo "+ $*" >> "$LOG"
  if ! "$@" >> "$LOG" 2>&1; then
    echo "setup-python: ERROR: $what failed: $*" >&2
    echo "---- last 60 lines of $LOG ----" >&2
    tail -n 60 "$LOG" >&2 || true
    echo "---- end of $LOG ----" >&2
    exit 1
  fi
}

# True when the venv's python has exactly these distributions: name==version ...
venv_has() {
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "$@" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    ok = all(version(n) == v for n, v in (a.split("==", 1) for a in sys.argv[1:]))
except PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PY
}

# Checks what building the venv needs, and says exactly what is missing.
check_build_prerequisites() {
  command -v "$PY" >/dev/null 2>&1 || die "no Python interpreter '$PY' (set PYTHON=/path/to/python3.10+)"
  "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || die "$("$PY" -V 2>&1) is too old: glance 33.0.0 needs Python >= 3.10 (set PYTHON=...)"
  "$PY" -c 'import venv, ensurepip' 2>/dev/null \
    || die "'$PY -m venv' is unavailable (module venv/ensurepip missing): on Debian 'apt-get install python3-venv'"
  local inc
  inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  [ -f "$inc/Python.h" ] \
    || die "no $inc/Python.h: uWSGI is compiled from source and needs the Python headers (Debian: apt-get install python3-dev)"
  command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 \
    || die "no C compiler: uWSGI is compiled from source (Debian: apt-get install gcc libc6-dev)"
  [ -f "$CONSTRAINTS" ] || die "missing $CONSTRAINTS"
}

ensure_venv() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    return 0
  fi
  if [ -e "$VENV" ]; then
    say "venv at $VENV is broken (its interpreter does not run); recreating it"
    rm -rf "$VENV"
  fi
  say "creating venv $VENV with $("$PY" -V 2>&1)"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV" || { rm -rf "$VENV"; die "'$PY -m venv $VENV' failed"; }
  : > "$LOG"
  if ! "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel >> "$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2 || true
    rm -rf "$VENV"
    die "could not upgrade pip/setuptools/wheel in the new venv (is the package registry reachable?)"
  fi
}

GLANCE_PINS=(glance==33.0.0 python-glanceclient==4.13.0 uWSGI==2.0.31)

# True when the venv's uWSGI embeds THIS venv's Python and can import "$@" through it. (pip's
# wheel cache is keyed by the wheel tag only, so a uWSGI wheel compiled against another
# CPython 3.11 build, e.g. pyenv's, would be reused for Debian's and then fail at run time
# with "No module named '_socket'".)
uwsgi_ok() {
  [ -x "$VENV/bin/uwsgi" ] || return 1
  local want got dir status=1
  want=$("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0], sys.base_prefix)') || return 1
  dir=$(mktemp -d) || return 1
  # uWSGI sends the script's stdout to its log: the script writes its answer to a file
  printf 'import sys\nfor m in [%s]: __import__(m)\nopen(%s, "w").write("%%s %%s" %% (sys.version.split()[0], sys.base_prefix))\n' \
    "$(printf '"%s",' socket ssl sqlite3 "$@")" "'$dir/answer'" > "$dir/check.py"
  (cd "$dir" && "$VENV/bin/uwsgi" --virtualenv "$VENV" --pyrun "$dir/check.py" > "$dir/uwsgi.log" 2>&1) || true
  got=$(cat "$dir/answer" 2>/dev/null || true)
  [ "$got" = "$want" ] && status=0
  rm -rf "$dir"
  return "$status"
}

ensure_glance() {
  if venv_has "${GLANCE_PINS[@]}" && [ -x "$VENV/bin/glance-manage" ] && uwsgi_ok glance; then
    say "glance already installed (${GLANCE_PINS[*]})"
    return 0
  fi
  check_build_prerequisites
  ensure_venv
  rm -rf "$VENV/glance-cache-harness"   # glance.sh's cached empty DB belongs to the old Glance
  if ! { venv_has uWSGI==2.0.31 && uwsgi_ok; }; then
    say "compiling uWSGI 2.0.31 against $("$VENV/bin/python" -V 2>&1) (about 30 s); log: $LOG"
    # --no-cache-dir: never reuse a uWSGI wheel built for another interpreter (see uwsgi_ok)
    run_logged "building uWSGI" "$VENV/bin/python" -m pip install --no-cache-dir --force-reinstall --no-deps \
      -c "$CONSTRAINTS" uWSGI==2.0.31
    uwsgi_ok || die "$VENV/bin/uwsgi does not embed the venv's Python (see $LOG)"
  fi
  say "installing ${GLANCE_PINS[*]}; log: $LOG"
  run_logged "pip install" "$VENV/bin/python" -m pip install -c "$CONSTRAINTS" "${GLANCE_PINS[@]}"
  venv_has "${GLANCE_PINS[@]}" || die "installed, but the venv still lacks ${GLANCE_PINS[*]} (see $LOG)"
  [ -x "$VENV/bin/glance-manage" ] || die "pip installed glance but $VENV/bin/glance-manage is missing (see $LOG)"
  uwsgi_ok glance || die "uWSGI in $VENV cannot import glance through its embedded Python (see $LOG)"
}

KEYSTONE_PINS=(keystone==30.0.0 pymemcache==4.0.0 uWSGI==2.0.31)

# The helpers above work on $VENV, $LOG and $CONSTRAINTS: here they are the Keystone venv's
# (bash's dynamic scoping makes these locals visible to the functions called from here).
ensure_keystone() {
  local VENV=$KEYSTONE_VENV
  local LOG=$KEYSTONE_VENV/setup-python.log
  local CONSTRAINTS=$HERE/constraints-keystone.txt
  ensure_memcached
  if venv_has "${KEYSTONE_PINS[@]}" && [ -x "$VENV/bin/keystone-manage" ] && uwsgi_ok keystone pymemcache; then
    say "keystone already installed (${KEYSTONE_PINS[*]}) in $VENV"
    return 0
  fi
  check_build_prerequisites
  ensure_venv
  rm -rf "$VENV/glance-cache-harness"   # keystone.sh's cached initial DB belongs to the old Keystone
  if ! { venv_has uWSGI==2.0.31 && uwsgi_ok; }; then
    say "compiling uWSGI 2.0.31 for the Keystone venv (about 30 s); log: $LOG"
    run_logged "building uWSGI" "$VENV/bin/python" -m pip install --no-cache-dir --force-reinstall --no-deps \
      -c "$CONSTRAINTS" uWSGI==2.0.31
    uwsgi_ok || die "$VENV/bin/uwsgi does not embed the venv's Python (see $LOG)"
  fi
  say "installing ${KEYSTONE_PINS[*]} into $VENV; log: $LOG"
  run_logged "pip install" "$VENV/bin/python" -m pip install -c "$CONSTRAINTS" "${KEYSTONE_PINS[@]}"
  venv_has "${KEYSTONE_PINS[@]}" || die "installed, but $VENV still lacks ${KEYSTONE_PINS[*]} (see $LOG)"
  [ -x "$VENV/bin/keystone-manage" ] || die "pip installed keystone but $VENV/bin/keystone-manage is missing (see $LOG)"
  uwsgi_ok keystone pymemcache || die "uWSGI in $VENV cannot import keystone through its embedded Python (see $LOG)"
  say "keystone ready in $VENV"
}

# Debian's memcached binary (keystone.sh starts a private one per Keystone; none is left
# running by the package: Docker-style machines forbid service starts with policy-rc.d).
ensure_memcached() {
  if command -v memcached >/dev/null 2>&1; then return 0; fi
  [ "${GLANCE_CACHE_NO_APT:-0}" != 1 ] \
    || die "no memcached on PATH and GLANCE_CACHE_NO_APT=1 (Debian: apt-get install memcached)"
  command -v apt-get >/dev/null 2>&1 || die "no memcached on PATH and no apt-get to install it"
  [ "$(id -u)" = 0 ] || die "no memcached on PATH: install it as root (Debian: apt-get install memcached)"
  local apt_log=${TMPDIR:-/tmp}/glance-cache-apt-memcached.log
  say "installing Debian's memcached (apt-get); log: $apt_log"
  : > "$apt_log"
  # a machine that never ran apt-get update has no candidate for it
  if ! apt-cache policy memcached 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >> "$apt_log" 2>&1 \
      || { tail -n 20 "$apt_log" >&2; die "apt-get update failed (log: $apt_log)"; }
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends memcached < /dev/null >> "$apt_log" 2>&1 \
    || { tail -n 20 "$apt_log" >&2; die "apt-get install memcached failed (log: $apt_log)"; }
  command -v memcached >/dev/null 2>&1 || die "apt-get installed memcached but it is not on PATH"
}

# One setup at a time per venv (two concurrent pip installs into one venv corrupt it).
mkdir -p "$(dirname "$VENV")"
if command -v flock >/dev/null 2>&1; then
  exec 9> "$VENV.lock"
  flock -w 900 9 || die "another setup-python.sh holds $VENV.lock for 15 minutes"
fi

ensure_glance
if [ "$WITH_KEYSTONE" = 1 ]; then
  if command -v flock >/dev/null 2>&1; then
    mkdir -p "$(dirname "$KEYSTONE_VENV")"
    exec 8> "$KEYSTONE_VENV.lock"
    flock -w 900 8 || die "another setup-python.sh holds $KEYSTONE_VENV.lock for 15 minutes"
  fi
  ensure_keystone
fi

say "ready in $(( $(date +%s) - START ))s: glance $("$VENV/bin/python" -c 'from importlib.metadata import version as v; print(v("glance"), "/ glanceclient", v("python-glanceclient"), "/ uWSGI", v("uWSGI"))')"
if [ "$WITH_KEYSTONE" = 1 ]; then
  say "keystone $("$KEYSTONE_VENV/bin/python" -c 'from importlib.metadata import version as v; print(v("keystone"), "/ pymemcache", v("pymemcache"), "/ uWSGI", v("uWSGI"))') in $KEYSTONE_VENV; $(memcached -V 2>/dev/null || echo 'memcached ?')"
fi
say "ready: $VENV"
