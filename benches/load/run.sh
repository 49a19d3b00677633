#!/usr/bin/env bash
# End-to-end load benchmark: glance-cache-proxy side by side with what operators use today.
#
#   bash benches/load/run.sh [options]
#
# One command, one machine, one run, everything on 127.0.0.1. It
#   1. checks the tools (curl >= 7.84, ps, md5sum, python3, openssl, nginx: Debian's nginx-light is
#      installed with apt-get when missing and we are root; its service is not started), makes
#      the real-Glance venv (tests/harness/setup-python.sh) and builds the proxy (cargo build
#      --release);
#   2. starts two real Glances (tests/harness/glance.sh, filesystem store, uWSGI): one without
#      a cache (the upstream of nginx and of the proxy, and the "direct upstream" reference)
#      and one with Glance's own cache (--cache on); nginx with proxy_cache tuned as in the
#      reference measurements (1 MiB proxy buffers, sendfile off, output_buffers 2 1m,
#      proxy_cache_lock on); and the proxy (glance-cache-proxy serve);
#   3. runs benches/load/loadbench.py: for each image size, 1 client and --parallel clients,
#      in rounds (every scenario once per round, so that the machine's drift spreads evenly):
#      direct upstream, nginx cold/warm, Glance's cache miss/hit, the proxy's miss (and
#      --parallel concurrent cold requests), hit, and hit with an authorization probe on every
#      request; then --concurrency bursts of cold requests (nginx, Glance, proxy) and of proxy
#      hits on the --big-size image. Upstream downloads are counted from the upstream Glance's
#      uWSGI request log; the proxy's peak RSS is its VmHWM (reset before each sample);
#   4. prints ONE table of MiB/s with ratios to the reference rows (direct upstream; nginx) and
#      the issue's targets, and writes it into BENCHMARKS.md (between its loadbench markers)
#      with the date and the machine; raw samples go to target/loadbench/results.json.
# Every process it starts is stopped by pid on exit (also on Ctrl-C), and its temporary
# directory is removed. The Glances also stop if this script is killed (glance.sh --watch-pid),
# and so do nginx and the proxy (a watchdog).
#
# Options (defaults are issue 5's):
#   --sizes LIST         image sizes, comma-separated (default 64M,1G)
#   --runs N             samples per row; the table shows medians (default 5)
#   --parallel N         clients of the parallel rows (default 8)
#   --concurrency LIST   concurrent cold requests whose upstream downloads are counted
#                        (default 1,8,64; 1 and --parallel come from the rows above, the others
#                        are extra bursts that also give the proxy's peak RSS for hits and misses)
#   --big-size SIZE      image of the extra bursts (default: the largest of --sizes)
#   --big-runs N         samples of each extra burst (default 1)
#   --glance-workers N   uWSGI processes per Glance (default 4, Glance's sample configuration)
#   --profile P          cargo profile of the proxy: release (default) or dev
#   --binary PATH        use this glance-cache-proxy binary, do not build
#   --report FILE        write the report into FILE (default BENCHMARKS.md; --smoke: none)
#   --no-report          do not write a report file
#   --json FILE          raw samples (default target/loadbench/results.json; --smoke: none)
#   --no-sync            do not sync(2) after every sample (by default the dirty pages of a
#                        fill are written back between samples, not during the next one)
#   --keep               keep the temporary directory (logs, configs) and print its path
#   --smoke              CI check that everything works: 4 MiB image, 1 run, 2 Glance workers,
#                        dev build, no report; about a minute once the venv and build exist
#   -h, --help
# Exit status: 0 every download was complete and byte-correct and the proxy made exactly one
# upstream download per cold burst; 1 otherwise (missed performance targets are reported, not
# errors); 2 usage error.
#
# Environment: GLANCE_CACHE_VENV (the Glance venv, as for tests/run.sh), GLANCE_CACHE_NO_APT=1
# (never call apt-get), CARGO_TARGET_DIR, LOADBENCH_RUST_LOG (the proxy's RUST_LOG, default info).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
COMMAND_LINE="benches/load/run.sh${*:+ $*}"

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }
log() { echo "run.sh: $*" >&2; }
die() { echo "run.sh: ERROR: $*" >&2; exit 1; }

SIZES=64M,1G; RUNS=5; PARALLEL=8; CONCURRENCY=1,8,64; BIG_SIZE=""; BIG_RUNS=1
WORKERS=4; PROFILE=release; BINARY=""; TARGET_DIR=""; REPORT=default; JSON=default; SYNC=1; KEEP=0; SMOKE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) SIZES=${2:?--sizes needs a value}; shift 2;;
    --runs) RUNS=${2:?--runs needs a value}; shift 2;;
    --parallel) PARALLEL=${2:?--parallel needs a value}; shift 2;;
    --concurrency) CONCURRENCY=${2:?--concurrency needs a value}; shift 2;;
    --big-size) BIG_SIZE=${2:?--big-size needs a value}; shift 2;;
    --big-runs) BIG_RUNS=${2:?--big-runs needs a value}; shift 2;;
    --glance-workers) WORKERS=${2:?--glance-workers needs a value}; shift 2;;
    --profile) PROFILE=${2:?--profile needs a value}; shift 2;;
    --binary) BINARY=${2:?--binary needs a value}; shift 2;;
    --report) REPORT=${2:?--report needs a value}; shift 2;;
    --no-report) REPORT=""; shift;;
    --json) JSON=${2:?--json needs a value}; shift 2;;
    --no-sync) SYNC=0; shift;;
    --keep) KEEP=1; shift;;
    --smoke)
      SMOKE=1; SIZES=4M; RUNS=1; WORKERS=2; PROFILE=dev
      [ "$REPORT" = default ] && REPORT=""
      [ "$JSON" = default ] && JSON=""
      shift;;
    -h|--help) usage; exit 0;;
    *) log "unknown option '$1'"; usage >&2; exit 2;;
  esac
done
is_uint() { case "$1" in ''|*[!0-9]*) return 1;; *) return 0;; esac; }
for v in RUNS PARALLEL BIG_RUNS WORKERS; do
  if ! is_uint "${!v}" || [ "${!v}" -lt 1 ]; then
    log "--$(echo "$v" | tr 'A-Z_' 'a-z-') must be a number >= 1"; exit 2
  fi
done
case "$PROFILE" in release|dev) ;; *) log "--profile must be release or dev"; exit 2;; esac
[ "$REPORT" = default ] && REPORT=$ROOT/BENCHMARKS.md
START=$(date +%s)

# ---- 1. tools ---------------------------------------------------------------------------------
command -v curl >/dev/null 2>&1 || die "curl is needed (Debian: apt-get install curl)"
CURL_V=$(curl --version | awk 'NR == 1 { print $2 }')
printf '7.84.0\n%s\n' "$CURL_V" | sort -V -C 2>/dev/null \
  || die "curl $CURL_V is too old: the script reads response headers with -w '%header{...}' (curl >= 7.84)"
for t in ps md5sum python3; do command -v "$t" >/dev/null 2>&1 || die "$t is needed"; done
command -v openssl >/dev/null 2>&1 || die "openssl is needed (the TLS rows' certificate): apt-get install openssl"
if ! command -v nginx >/dev/null 2>&1; then
  [ "${GLANCE_CACHE_NO_APT:-0}" != 1 ] || die "no nginx on PATH and GLANCE_CACHE_NO_APT=1 (Debian: apt-get install nginx-light)"
  { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; } \
    || die "no nginx on PATH: install it as root (Debian: apt-get install nginx-light)"
  # nginx-light where the release has it, else nginx. The package's own service is not started
  # (a policy-rc.d that says no, for the install, when there is none): this script runs a
  # private nginx with its own configuration on 127.0.0.1.
  has_candidate() { apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [0-9]'; }
  if ! has_candidate nginx-light && ! has_candidate nginx; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
  fi
  NGINX_PKG=nginx-light; has_candidate nginx-light || NGINX_PKG=nginx
  log "installing Debian's $NGINX_PKG (apt-get)"
  MADE_POLICY=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# written by benches/load/run.sh for its apt-get install: start no services\nexit 101\n' \
      > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && MADE_POLICY=1
  fi
  APT_STATUS=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$NGINX_PKG" < /dev/null >&2 \
    || APT_STATUS=$?
  if [ "$MADE_POLICY" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  [ "$APT_STATUS" = 0 ] || die "apt-get install $NGINX_PKG failed"
  command -v nginx >/dev/null 2>&1 || die "apt-get installed $NGINX_PKG but nginx is not on PATH"
fi
export GLANCE_CACHE_VENV=${GLANCE_CACHE_VENV:-${HOME:-/root}/.cache/glance-cache/venv}
bash "$ROOT/tests/harness/setup-python.sh" --quiet || die "could not set up the Glance venv (see above)"

# the largest image and the free space it needs (source + 2 Glance stores + Glance's cache +
# the proxy's cache + nginx's cache, which holds at most 4 of the largest)
SIZE_INFO=$(python3 - "$SIZES" "$BIG_SIZE" <<'PY'
import re, sys
def p(t):
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", t, re.I)
    if not m: sys.exit(f"bad size '{t}' (use e.g. 4M, 64M, 1G)")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]
sizes = {p(s) for s in sys.argv[1].split(",") if s.strip()}
if sys.argv[2]: sizes.add(p(sys.argv[2]))
print(max(sizes), 5 * sum(sizes) + 4 * max(sizes) + (1 << 30))
PY
) || { log "bad --sizes or --big-size"; exit 2; }
read -r LARGEST NEED_BYTES <<< "$SIZE_INFO"

# ---- proxy binary -----------------------------------------------------------------------------
if [ -z "$BINARY" ]; then
  command -v cargo >/dev/null 2>&1 || die "cargo is needed to build the proxy (or pass --binary PATH)"
  log "building glance-cache-proxy (cargo build --profile $PROFILE)"
  (cd "$ROOT" && cargo build -q --profile "$PROFILE" -p glance-cache-proxy) || die "cargo build failed"
  TARGET_DIR=$(cd "$ROOT" && cargo metadata -q --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  DIR=$PROFILE; [ "$PROFILE" = dev ] && DIR=debug
  BINARY=$TARGET_DIR/$DIR/glance-cache-proxy
fi
[ -x "$BINARY" ] || die "no executable proxy at $BINARY"

# ---- 2. servers -------------------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/glance-cache-loadbench.XXXXXX")
AVAIL=$(df -P -B1 "$TMP" | awk 'NR == 2 { print $4 }')
if is_uint "$AVAIL" && [ "$AVAIL" -lt "$NEED_BYTES" ]; then
  rm -rf "$TMP"
  die "$(( NEED_BYTES >> 30 )) GiB of free space needed in ${TMPDIR:-/tmp} (have $(( AVAIL >> 30 )) GiB): set TMPDIR or pass smaller --sizes"
fi
PROXY_PID=""; NGINX_PID=""; WATCHDOG_PID=""
# shellcheck disable=SC2317  # stop_pid and cleanup run from the EXIT trap
stop_pid() { # pid signal seconds: signal, wait, then SIGKILL
  local pid=$1 sig=$2
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then return 0; fi
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 $(( $3 * 10 ))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  # loadbench.py restarts the proxy for the memory rows: the pid file has the current one
  PROXY_PID=$(cat "$TMP/proxy.pid" 2>/dev/null || echo "$PROXY_PID")
  stop_pid "$PROXY_PID" TERM 10
  if [ -n "$NGINX_PID" ]; then
    local workers; workers=$(ps -o pid= --ppid "$NGINX_PID" 2>/dev/null || true)
    stop_pid "$NGINX_PID" QUIT 10
    for w in $workers; do stop_pid "$w" KILL 1; done
  fi
  bash "$ROOT/tests/harness/glance.sh" stop --base "$TMP/glance-upstream" >/dev/null 2>&1 || true
  bash "$ROOT/tests/harness/glance.sh" stop --base "$TMP/glance-cache" >/dev/null 2>&1 || true
  stop_pid "$WATCHDOG_PID" TERM 1
  if [ "$KEEP" = 1 ]; then log "kept $TMP (logs, configs)"; else rm -rf "$TMP"; fi
  log "finished in $(( $(date +%s) - START ))s, exit $status"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { # url seconds pid: until url answers, pid dies, or time is up
  local code
  for _ in $(seq 1 $(( $2 * 10 ))); do
    kill -0 "$3" 2>/dev/null || return 1
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)
    case "$code" in 2??|3??) return 0;; esac
    sleep 0.1
  done
  return 1
}

log "starting two real Glances ($WORKERS uWSGI processes each) in $TMP"
mkdir -p "$TMP/data"
bash "$ROOT/tests/harness/glance.sh" start --port 0 --base "$TMP/glance-upstream" --workers "$WORKERS" \
  --watch-pid $$ > "$TMP/glance-upstream.url" 2> "$TMP/glance-upstream.start.log" &
G1=$!
bash "$ROOT/tests/harness/glance.sh" start --port 0 --base "$TMP/glance-cache" --cache on --workers "$WORKERS" \
  --watch-pid $$ > "$TMP/glance-cache.url" 2> "$TMP/glance-cache.start.log" &
G2=$!
wait "$G1" || { cat "$TMP/glance-upstream.start.log" >&2; die "the upstream Glance did not start"; }
wait "$G2" || { cat "$TMP/glance-cache.start.log" >&2; die "the Glance with its own cache did not start"; }
G_UP_URL=$(cat "$TMP/glance-upstream.url"); G_CACHE_URL=$(cat "$TMP/glance-cache.url")
G_UP_PORT=${G_UP_URL##*:}; G_CACHE_PORT=${G_CACHE_URL##*:}
G_UP_PID=$(cat "$TMP/glance-upstream/run/glance-api.pid"); G_CACHE_PID=$(cat "$TMP/glance-cache/run/glance-api.pid")

# nginx: caching reverse proxy in front of the upstream Glance, tuned as in the reference
# measurements (proxy buffers of 1 MiB, sendfile off + 1 MiB output buffers: faster than
# sendfile on loopback here), proxy_cache_lock on so that concurrent misses wait for one fill
NGX=$TMP/nginx
NGX_PORT=$(free_port)
NGX_TLS_PORT=$(free_port)
# One certificate for the TLS rows (nginx's TLS server and the proxy's listener), made here.
mkdir -p "$TMP/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" 2> "$TMP/tls/openssl.log" \
  || { cat "$TMP/tls/openssl.log" >&2; die "openssl could not make the test certificate"; }
mkdir -p "$NGX"/{cache,tmp,logs}
USER_LINE=""; [ "$(id -u)" = 0 ] && USER_LINE="user root;"
# The caching location, the same for the plain and the TLS server.
CACHING_LOCATION="    location / {
      proxy_pass http://127.0.0.1:$G_UP_PORT;
      proxy_http_version 1.1;
      proxy_cache glance;
      proxy_cache_valid 200 1d;
      proxy_cache_lock on; proxy_cache_lock_timeout 600s; proxy_cache_lock_age 600s;
      proxy_buffer_size 1m; proxy_buffers 16 1m; proxy_busy_buffers_size 2m;
      sendfile off; output_buffers 2 1m;
      add_header X-Cache-Status \$upstream_cache_status;
    }"
cat > "$NGX/nginx.conf" <<EOF
# written by glance-cache benches/load/run.sh
$USER_LINE
worker_processes 2;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path $NGX/tmp/body; proxy_temp_path $NGX/tmp/proxy;
  fastcgi_temp_path $NGX/tmp/fcgi; uwsgi_temp_path $NGX/tmp/uwsgi; scgi_temp_path $NGX/tmp/scgi;
  proxy_cache_path $NGX/cache levels=1:2 keys_zone=glance:16m max_size=$(( 4 * LARGEST )) inactive=1d use_temp_path=off;
  proxy_read_timeout 600s;
  server {
    listen 127.0.0.1:$NGX_PORT;
$CACHING_LOCATION
    # the machine's ceiling: the image files served from disk (page cache), no proxying
    location /static/ {
      alias $TMP/data/;
      sendfile off; output_buffers 2 1m;
    }
  }
  # the same cache over TLS (the proxy's TLS rows use the same certificate)
  server {
    listen 127.0.0.1:$NGX_TLS_PORT ssl;
    ssl_certificate $TMP/tls/cert.pem; ssl_certificate_key $TMP/tls/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
$CACHING_LOCATION
  }
}
EOF
nginx -t -q -p "$NGX" -e "$NGX/logs/error.log" -c "$NGX/nginx.conf" || die "nginx rejects $NGX/nginx.conf"
nginx -p "$NGX" -e "$NGX/logs/error.log" -c "$NGX/nginx.conf" || die "nginx did not start (see $NGX/logs/error.log)"
for _ in $(seq 1 50); do [ -s "$NGX/nginx.pid" ] && break; sleep 0.1; done
NGINX_PID=$(cat "$NGX/nginx.pid" 2>/dev/null || true)
is_uint "$NGINX_PID" || die "nginx wrote no pid file"

# the proxy, in front of the upstream Glance, with its defaults except the management token
PROXY_PORT=$(free_port)
ADMIN_TOKEN=loadbench-$$-$RANDOM
mkdir -p "$TMP/proxy-cache"
cat > "$TMP/proxy.conf" <<EOF
# written by glance-cache benches/load/run.sh
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $PROXY_PORT
image_cache_dir = $TMP/proxy-cache

[proxy]
upstream_url = $G_UP_URL
management_auth = static
admin_tokens = $ADMIN_TOKEN
shutdown_timeout = 2
EOF
PROXY_RUST_LOG=${LOADBENCH_RUST_LOG:-info}
RUST_LOG=$PROXY_RUST_LOG "$BINARY" serve --config-file "$TMP/proxy.conf" < /dev/null > "$TMP/proxy.log" 2>&1 &
PROXY_PID=$!
echo "$PROXY_PID" > "$TMP/proxy.pid"
wait_http "http://127.0.0.1:$PROXY_PORT/versions" 30 "$PROXY_PID" \
  || { tail -n 30 "$TMP/proxy.log" >&2; die "the proxy did not answer on 127.0.0.1:$PROXY_PORT"; }
wait_http "http://127.0.0.1:$NGX_PORT/versions" 30 "$NGINX_PID" \
  || { tail -n 30 "$NGX/logs/error.log" >&2; die "nginx did not answer on 127.0.0.1:$NGX_PORT"; }

# watchdog: if this script dies without its trap (SIGKILL), stop nginx and the proxy (bounded: 24 h)
# shellcheck disable=SC2016
bash -c 'for _ in $(seq 1 86400); do kill -0 "$1" 2>/dev/null || break; sleep 1; done
         kill -0 "$1" 2>/dev/null || kill -TERM "$(cat "$2")" "$3" 2>/dev/null' \
  loadbench-watchdog $$ "$TMP/proxy.pid" "$NGINX_PID" < /dev/null > /dev/null 2>&1 &
WATCHDOG_PID=$!
log "up: Glance $G_UP_URL (no cache), Glance $G_CACHE_URL (own cache), nginx :$NGX_PORT, proxy :$PROXY_PORT ($BINARY)"

# ---- 3. measure -------------------------------------------------------------------------------
GIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null | head -1)" ] && GIT="$GIT+local changes"
python3 - "$TMP/env.json" <<PY
import json, sys
env = {
  "data_dir": "$TMP/data",
  "glance_upstream": {"port": $G_UP_PORT, "pid": $G_UP_PID, "workers": $WORKERS,
                      "request_log": "$TMP/glance-upstream/log/uwsgi.log"},
  "glance_cache": {"port": $G_CACHE_PORT, "pid": $G_CACHE_PID, "workers": $WORKERS},
  "nginx": {"port": $NGX_PORT, "pid": $NGINX_PID},
  "tls": {"cert": "$TMP/tls/cert.pem", "key": "$TMP/tls/key.pem", "nginx_port": $NGX_TLS_PORT},
  "proxy": {"port": $PROXY_PORT, "pid": $PROXY_PID, "admin_token": "$ADMIN_TOKEN",
            "cmd": ["$BINARY", "serve", "--config-file", "$TMP/proxy.conf"], "rust_log": "$PROXY_RUST_LOG",
            "log": "$TMP/proxy.log", "pidfile": "$TMP/proxy.pid"},
  "loadavg_start": open("/proc/loadavg").read().split()[0],
  "versions": {
    "proxy": "$("$BINARY" --version 2>/dev/null | head -1) ($PROFILE build, commit $GIT)",
    "glance": "glance $("$GLANCE_CACHE_VENV/bin/python" -c 'from importlib.metadata import version as v; print(v("glance"))')",
    "nginx": "$(nginx -v 2>&1 | sed 's/^nginx version: //')",
    "curl": "curl $CURL_V",
  },
}
json.dump(env, open(sys.argv[1], "w"), indent=1)
PY
ARGS=(--sizes "$SIZES" --runs "$RUNS" --parallel "$PARALLEL" --concurrency "$CONCURRENCY"
      --big-runs "$BIG_RUNS" --command "$COMMAND_LINE")
[ -n "$BIG_SIZE" ] && ARGS+=(--big-size "$BIG_SIZE")
[ -n "$REPORT" ] && ARGS+=(--report "$REPORT")
[ "$JSON" = default ] && JSON=${TARGET_DIR:-$ROOT/target}/loadbench/results.json
[ -n "$JSON" ] && ARGS+=(--json "$JSON")
[ "$SYNC" = 0 ] && ARGS+=(--no-sync)
[ "$SMOKE" = 1 ] && ARGS+=(--smoke)
status=0
python3 "$HERE/loadbench.py" "$TMP/env.json" "${ARGS[@]}" || status=$?
PROXY_PID=$(cat "$TMP/proxy.pid")
kill -0 "$PROXY_PID" 2>/dev/null || { log "the proxy exited during the run; last lines of its log:"; tail -n 20 "$TMP/proxy.log" >&2; status=1; }
exit "$status"
