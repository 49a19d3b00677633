#!/usr/bin/env bash
# End-to-end load benchmark: glance-cache-proxy side by side with what operators use today.
#
#   bash benches/load/run.sh [options]
#
# One command, one machine, one run, everything on 127.0.0.1. It
#   1. checks the tools (curl >= 7.84, ps, md5sum, python3, openssl, nginx, and haproxy for the
#      cluster rows: Debian's nginx-light and haproxy are installed with apt-get when missing
#      and we are root; their services are not started), makes the real-Glance venv
#      (tests/harness/setup-python.sh) and builds the proxy (cargo build --release) and, for the
#      cluster and remote rows, the S3 server (cargo build --release -p glance-cache-support
#      --features s3 --example s3-server: the test support's embedded s3s-fs server);
#   2. starts two real Glances (tests/harness/glance.sh, filesystem store, uWSGI): one without
#      a cache (the upstream of nginx and of the proxy, and the "direct upstream" reference)
#      and one with Glance's own cache (--cache on); nginx with proxy_cache tuned as in the
#      reference measurements (1 MiB proxy buffers, sendfile off, output_buffers 2 1m,
#      proxy_cache_lock on); and the proxy (glance-cache-proxy serve). For the cluster and
#      remote rows also: the S3 server (one bucket, in this run's temporary directory); three
#      proxies sharing it as their remote tier (remote_store_url = s3://glance-cache/loadbench,
#      each its own cache directory, port, admin endpoint and worker_self_reference_url);
#      three nginx instances with the same caching configuration (each its own cache and
#      port); and one HAProxy (mode http, balance roundrobin, option http-server-close,
#      10-minute timeouts) with one frontend over the three proxies and one over the three
#      nginx. All of them in front of the same upstream Glance;
#   3. runs benches/load/loadbench.py: for each image size, 1 client and --parallel clients,
#      in rounds (every scenario once per round, so that the machine's drift spreads evenly):
#      direct upstream, nginx cold/warm, Glance's cache miss/hit, the proxy's miss (and
#      --parallel concurrent cold requests), hit, and hit with an authorization probe on every
#      request; then --miss-rounds more rounds of the 1-client cold downloads of the largest
#      image (nginx, Glance, proxy, compared round by round); then --concurrency bursts of
#      cold requests (nginx, Glance, proxy) and of proxy
#      hits on the --big-size image; then, on the --cluster-size image, in rounds:
#      "cluster cold" (--cluster-clients concurrent clients through HAProxy for an image no
#      node has: nothing in any proxy's cache nor in the bucket, a new cache key for nginx;
#      the proxies must make exactly ONE upstream download together, nginx makes one per
#      instance), "cluster warm" (the same clients, the image cached on every node), and
#      "remote hit" (1 client of one proxy whose local copy was deleted with DELETE
#      /v2/cache/{id} while the bucket holds the image: filled from the bucket, no upstream
#      download), next to "S3 server alone" (curl GETs the bucket's copy, signed with SigV4:
#      the remote tier's own speed on this machine) and to the 1-client rows it is compared
#      with (direct upstream, Glance's miss, the proxy's miss and local hit). The upload to the
#      bucket starts when the lease holder commits (often while clients still read, as in
#      production); after each cold sample the script waits for it and the nodes' commits to
#      end (its lease gone, its object there) before the next sample, and empties the nodes
#      (DELETE /v2/cache/{id}) and the bucket before the next cold one. Upstream downloads
#      are counted from the upstream Glance's uWSGI request log, the nodes' fill sources from
#      their admin endpoints' glance_cache_remote_events_total; the proxy's peak RSS is its
#      VmHWM (reset before each sample; the cluster rows: the largest of the three);
#   4. prints ONE table of MiB/s with ratios to the reference rows (direct upstream; nginx, or
#      the nginx cluster for the cluster rows) and the targets (issues 5 and 11; the cluster:
#      exactly one upstream download per cold image for the proxies, checked; a remote hit
#      >= Glance's own cache miss and >= 0.5x the proxy's local hit, reported), writes it into
#      BENCHMARKS.md (between its loadbench markers) with the date and the machine; raw
#      samples go to target/loadbench/results.json. A run with --only writes its own block
#      inside that section (replacing the previous --only block, and replaced by the next
#      full run).
# Every process it starts is stopped by pid on exit (also on Ctrl-C), and its temporary
# directory is removed. The Glances also stop if this script is killed (glance.sh --watch-pid),
# and so do nginx, HAProxy and the proxies (a watchdog), and the S3 server (its stdin closes).
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
#   --cluster-size SIZE  image of the cluster and remote-hit rows (default: --big-size;
#                        --smoke: 64M, so that the upload to the bucket is a multipart one)
#   --cluster-clients N  concurrent clients of the cluster rows, through HAProxy, at least 3
#                        (default 24; --smoke: 6)
#   --miss-rounds N      rounds of the misses group: more 1-client cold downloads of the largest
#                        image through nginx, Glance's cache and the proxy, compared round by
#                        round (default 10; --smoke: 1)
#   --only LIST          measure only these groups of rows, comma-separated: main (the rows of
#                        every --sizes image: ceiling to ranges), misses, scrub, tls, bursts (the extra
#                        --concurrency bursts), cluster, remote (default: all). The cluster and
#                        remote rows' references (direct upstream, Glance's miss, the proxy's
#                        miss and local hit, 1 client, --cluster-size) come from the main rows
#                        when those measured that size, else the remote rows' rounds measure
#                        them too. E.g. --only cluster,remote
#   --glance-workers N   uWSGI processes per Glance (default 4, Glance's sample configuration)
#   --profile P          cargo profile of the proxy and the S3 server: release (default) or dev
#   --binary PATH        use this glance-cache-proxy binary, do not build it
#   --report FILE        write the report into FILE (default BENCHMARKS.md; --smoke: none)
#   --no-report          do not write a report file
#   --json FILE          raw samples (default target/loadbench/results.json; --smoke: none)
#   --no-sync            do not sync(2) after every sample (by default the dirty pages of a
#                        fill are written back between samples, not during the next one)
#   --keep               keep the temporary directory (logs, configs) and print its path
#   --smoke              CI check that everything works: 4 MiB image, 1 run, 2 Glance workers,
#                        dev build, no report; the cluster and remote rows on a 64 MiB image
#                        with 6 clients; about a minute once the venv and builds exist
#   -h, --help
# Exit status: 0 every download was complete and byte-correct, the proxy made exactly one
# upstream download per cold burst, the proxy cluster exactly one per cold image (and one
# upload to the bucket), and the remote hits none (each filled from the bucket); 1 otherwise
# (missed performance targets are reported, not errors); 2 usage error.
#
# Environment: GLANCE_CACHE_VENV (the Glance venv, as for tests/run.sh), GLANCE_CACHE_NO_APT=1
# (never call apt-get), CARGO_TARGET_DIR, LOADBENCH_RUST_LOG (the proxies' RUST_LOG, default
# info), GLANCE_CACHE_HAPROXY (the haproxy program; default: on PATH, else /usr/sbin/haproxy).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
COMMAND_LINE="benches/load/run.sh${*:+ $*}"

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }
log() { echo "run.sh: $*" >&2; }
die() { echo "run.sh: ERROR: $*" >&2; exit 1; }

SIZES=64M,1G; RUNS=5; PARALLEL=8; CONCURRENCY=1,8,64; BIG_SIZE=""; BIG_RUNS=1
WORKERS=4; PROFILE=release; BINARY=""; TARGET_DIR=""; REPORT=default; JSON=default; SYNC=1; KEEP=0; SMOKE=0
CLUSTER_SIZE=""; CLUSTER_CLIENTS=""; ONLY=main,misses,scrub,tls,bursts,cluster,remote; MISS_ROUNDS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) SIZES=${2:?--sizes needs a value}; shift 2;;
    --runs) RUNS=${2:?--runs needs a value}; shift 2;;
    --parallel) PARALLEL=${2:?--parallel needs a value}; shift 2;;
    --concurrency) CONCURRENCY=${2:?--concurrency needs a value}; shift 2;;
    --big-size) BIG_SIZE=${2:?--big-size needs a value}; shift 2;;
    --big-runs) BIG_RUNS=${2:?--big-runs needs a value}; shift 2;;
    --cluster-size) CLUSTER_SIZE=${2:?--cluster-size needs a value}; shift 2;;
    --cluster-clients) CLUSTER_CLIENTS=${2:?--cluster-clients needs a value}; shift 2;;
    --only) ONLY=${2:?--only needs a value}; shift 2;;
    --miss-rounds) MISS_ROUNDS=${2:?--miss-rounds needs a value}; shift 2;;
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
      [ -z "$CLUSTER_SIZE" ] && CLUSTER_SIZE=64M
      [ -z "$CLUSTER_CLIENTS" ] && CLUSTER_CLIENTS=6
      [ -z "$MISS_ROUNDS" ] && MISS_ROUNDS=1
      [ "$REPORT" = default ] && REPORT=""
      [ "$JSON" = default ] && JSON=""
      shift;;
    -h|--help) usage; exit 0;;
    *) log "unknown option '$1'"; usage >&2; exit 2;;
  esac
done
is_uint() { case "$1" in ''|*[!0-9]*) return 1;; *) return 0;; esac; }
CLUSTER_CLIENTS=${CLUSTER_CLIENTS:-24}
for v in RUNS PARALLEL BIG_RUNS WORKERS; do
  if ! is_uint "${!v}" || [ "${!v}" -lt 1 ]; then
    log "--$(echo "$v" | tr 'A-Z_' 'a-z-') must be a number >= 1"; exit 2
  fi
done
if [ -n "$MISS_ROUNDS" ] && ! is_uint "$MISS_ROUNDS"; then
  log "--miss-rounds must be a number >= 0"; exit 2
fi
if ! is_uint "$CLUSTER_CLIENTS" || [ "$CLUSTER_CLIENTS" -lt 3 ]; then
  log "--cluster-clients must be a number >= 3 (one client per node at least)"; exit 2
fi
has_group() { case ",$ONLY," in *",$1,"*) return 0;; *) return 1;; esac; }
for g in ${ONLY//,/ }; do
  case "$g" in main|misses|scrub|tls|bursts|cluster|remote) ;;
    *) log "--only: unknown group '$g' (main, misses, scrub, tls, bursts, cluster, remote)"; exit 2;; esac
done
[ -n "${ONLY//,/}" ] || { log "--only needs at least one group"; exit 2; }
CLUSTER=0; { has_group cluster || has_group remote; } && CLUSTER=1
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
# Debian packages the script may install: with apt-get, as root, unless GLANCE_CACHE_NO_APT=1.
# The packages' own services are not started (a policy-rc.d that says no, for the install,
# when there is none): this script runs private instances with their own configuration on
# 127.0.0.1.
has_candidate() { apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [0-9]'; }
apt_install() { # TOOL PACKAGE [FALLBACK-PACKAGE]: installs the first package that has a candidate
  local tool=$1 pkg=$2 alt=${3:-}
  [ "${GLANCE_CACHE_NO_APT:-0}" != 1 ] || die "no $tool and GLANCE_CACHE_NO_APT=1 (Debian: apt-get install $pkg)"
  { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; } \
    || die "no $tool: install it as root (Debian: apt-get install $pkg)"
  if ! has_candidate "$pkg" && { [ -z "$alt" ] || ! has_candidate "$alt"; }; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
  fi
  if [ -n "$alt" ] && ! has_candidate "$pkg"; then pkg=$alt; fi
  log "installing Debian's $pkg (apt-get)"
  local made_policy=0 apt_status=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# written by benches/load/run.sh for its apt-get install: start no services\nexit 101\n' \
      > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" < /dev/null >&2 \
    || apt_status=$?
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  [ "$apt_status" = 0 ] || die "apt-get install $pkg failed"
}
# nginx-light where the release has it, else nginx
if ! command -v nginx >/dev/null 2>&1; then
  apt_install nginx nginx-light nginx
  command -v nginx >/dev/null 2>&1 || die "apt-get installed nginx but nginx is not on PATH"
fi
find_haproxy() {
  if [ -n "${GLANCE_CACHE_HAPROXY:-}" ]; then echo "$GLANCE_CACHE_HAPROXY"; return; fi
  command -v haproxy 2>/dev/null && return
  if [ -x /usr/sbin/haproxy ]; then echo /usr/sbin/haproxy; fi
}
HAPROXY=""
if [ "$CLUSTER" = 1 ]; then
  HAPROXY=$(find_haproxy || true)
  if [ -z "$HAPROXY" ]; then
    apt_install haproxy haproxy
    HAPROXY=$(find_haproxy || true)
  fi
  [ -n "$HAPROXY" ] && [ -x "$HAPROXY" ] || die "no haproxy program (${HAPROXY:-none found}): the cluster rows balance with HAProxy"
fi
export GLANCE_CACHE_VENV=${GLANCE_CACHE_VENV:-${HOME:-/root}/.cache/glance-cache/venv}
bash "$ROOT/tests/harness/setup-python.sh" --quiet || die "could not set up the Glance venv (see above)"

# the largest image and the free space it needs (source + 2 Glance stores + Glance's cache +
# the proxy's cache + nginx's cache, which holds at most 4 of the largest; for the cluster
# rows: 3 proxy caches, the bucket (during a multipart upload: the parts and the completed
# object), 3 nginx caches of at most 2 images each, with room for one more while their cache
# managers catch up)
SIZE_INFO=$(python3 - "$SIZES" "$BIG_SIZE" "$CLUSTER_SIZE" "$ONLY" <<'PY'
import re, sys
def p(t):
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", t, re.I)
    if not m: sys.exit(f"bad size '{t}' (use e.g. 4M, 64M, 1G)")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]
sizes = {p(s) for s in sys.argv[1].split(",") if s.strip()}
if not sizes: sys.exit("no --sizes")
big = p(sys.argv[2]) if sys.argv[2] else max(sizes)
cluster = p(sys.argv[3]) if sys.argv[3] else big
only = set(sys.argv[4].split(","))
used = set()
if only & {"main", "misses", "scrub", "tls"}: used |= sizes
if "bursts" in only: used.add(big)
extra = 0
if only & {"cluster", "remote"}:
    used.add(cluster)
    extra = 14 * cluster
largest = max(sizes | {big} | ({cluster} if extra else set()))
print(largest, cluster, 5 * sum(used) + 4 * max(used) + extra + (1 << 30))
PY
) || { log "bad --sizes, --big-size or --cluster-size"; exit 2; }
read -r LARGEST CLUSTER_BYTES NEED_BYTES <<< "$SIZE_INFO"

# ---- proxy binary (and the S3 server of the cluster rows) ---------------------------------------
target_dir() {
  (cd "$ROOT" && cargo metadata -q --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
}
DIR=$PROFILE; [ "$PROFILE" = dev ] && DIR=debug
if [ -z "$BINARY" ]; then
  command -v cargo >/dev/null 2>&1 || die "cargo is needed to build the proxy (or pass --binary PATH)"
  log "building glance-cache-proxy (cargo build --profile $PROFILE)"
  (cd "$ROOT" && cargo build -q --profile "$PROFILE" -p glance-cache-proxy) || die "cargo build failed"
  TARGET_DIR=$(target_dir)
  BINARY=$TARGET_DIR/$DIR/glance-cache-proxy
fi
[ -x "$BINARY" ] || die "no executable proxy at $BINARY"
S3_BIN=""
if [ "$CLUSTER" = 1 ]; then
  command -v cargo >/dev/null 2>&1 || die "cargo is needed to build the S3 server of the cluster rows (or leave them out: --only)"
  log "building the S3 server (cargo build --profile $PROFILE -p glance-cache-support --features s3 --example s3-server)"
  (cd "$ROOT" && cargo build -q --profile "$PROFILE" -p glance-cache-support --features s3 --example s3-server) \
    || die "cargo build of the S3 server failed"
  [ -n "$TARGET_DIR" ] || TARGET_DIR=$(target_dir)
  S3_BIN=$TARGET_DIR/$DIR/examples/s3-server
  [ -x "$S3_BIN" ] || die "no executable S3 server at $S3_BIN"
fi

# ---- 2. servers -------------------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/glance-cache-loadbench.XXXXXX")
AVAIL=$(df -P -B1 "$TMP" | awk 'NR == 2 { print $4 }')
if is_uint "$AVAIL" && [ "$AVAIL" -lt "$NEED_BYTES" ]; then
  rm -rf "$TMP"
  die "$(( NEED_BYTES >> 30 )) GiB of free space needed in ${TMPDIR:-/tmp} (have $(( AVAIL >> 30 )) GiB): set TMPDIR or pass smaller --sizes"
fi
PROXY_PID=""; NGINX_PID=""; WATCHDOG_PID=""
# the cluster rows' processes: 3 proxies, 3 nginx masters, HAProxy, the S3 server and the loop
# that holds its stdin open (their pids also go to $TMP/extra.pids, for the watchdog)
NODE_PIDS=(); CNGINX_PIDS=(); HAPROXY_PID=""; S3_PID=""
# shellcheck disable=SC2317  # stop_pid and cleanup run from the EXIT trap
stop_pid() { # pid signal seconds: signal, wait, then SIGKILL
  local pid=$1 sig=$2
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then return 0; fi
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 $(( $3 * 10 ))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317
stop_pids() { # signal seconds pid...: signal them all, wait for all, then SIGKILL the rest
  local sig=$1 secs=$2; shift 2
  local pids=() p
  for p in "$@"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && pids+=("$p"); done
  [ "${#pids[@]}" -gt 0 ] || return 0
  kill "-$sig" "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 $(( secs * 10 ))); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
}
# shellcheck disable=SC2317
stop_nginx() { # master pids: QUIT (graceful), then the workers they had
  local workers="" m
  for m in "$@"; do [ -n "$m" ] && workers="$workers $(ps -o pid= --ppid "$m" 2>/dev/null || true)"; done
  stop_pids QUIT 10 "$@"
  # shellcheck disable=SC2086  # a list of pids
  stop_pids KILL 1 $workers
}
# shellcheck disable=SC2317
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  # loadbench.py restarts the proxy for the memory rows: the pid file has the current one
  PROXY_PID=$(cat "$TMP/proxy.pid" 2>/dev/null || echo "$PROXY_PID")
  stop_pids TERM 10 "$PROXY_PID" "${NODE_PIDS[@]}" "$HAPROXY_PID"
  stop_nginx "$NGINX_PID" "${CNGINX_PIDS[@]}"
  # the S3 server after the proxies (no upload in flight), then the loop holding its stdin
  stop_pids TERM 10 "$S3_PID"
  stop_pids KILL 1 "$(cat "$TMP/s3-stdin.pid" 2>/dev/null || true)"
  # both Glances at once (each stop waits for its uWSGI to finish)
  bash "$ROOT/tests/harness/glance.sh" stop --base "$TMP/glance-upstream" >/dev/null 2>&1 &
  local g1=$!
  bash "$ROOT/tests/harness/glance.sh" stop --base "$TMP/glance-cache" >/dev/null 2>&1 || true
  wait "$g1" || true
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
# nginx_conf DIR PORT MAX_SIZE [MORE_LOCATIONS [MORE_SERVERS]]: DIR/nginx.conf, a caching nginx
# on 127.0.0.1:PORT (the main one and the cluster's three share it)
nginx_conf() {
  local d=$1
  mkdir -p "$d"/{cache,tmp,logs}
  cat > "$d/nginx.conf" <<EOF
# written by glance-cache benches/load/run.sh
$USER_LINE
worker_processes 2;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fcgi; uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;
  proxy_cache_path $d/cache levels=1:2 keys_zone=glance:16m max_size=$3 inactive=1d use_temp_path=off;
  proxy_read_timeout 600s;
  server {
    listen 127.0.0.1:$2;
$CACHING_LOCATION
${4:-}
  }
${5:-}
}
EOF
}
# start_nginx DIR: starts nginx on DIR/nginx.conf and prints its master's pid
start_nginx() {
  local d=$1 pid=""
  nginx -t -q -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" || die "nginx rejects $d/nginx.conf"
  nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" || die "nginx did not start (see $d/logs/error.log)"
  for _ in $(seq 1 50); do [ -s "$d/nginx.pid" ] && break; sleep 0.1; done
  pid=$(cat "$d/nginx.pid" 2>/dev/null || true)
  is_uint "$pid" || die "nginx wrote no pid file in $d"
  echo "$pid"
}
nginx_conf "$NGX" "$NGX_PORT" $(( 4 * LARGEST )) "    # the machine's ceiling: the image files served from disk (page cache), no proxying
    location /static/ {
      alias $TMP/data/;
      sendfile off; output_buffers 2 1m;
    }" "  # the same cache over TLS (the proxy's TLS rows use the same certificate)
  server {
    listen 127.0.0.1:$NGX_TLS_PORT ssl;
    ssl_certificate $TMP/tls/cert.pem; ssl_certificate_key $TMP/tls/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
$CACHING_LOCATION
  }"
NGINX_PID=$(start_nginx "$NGX") || exit 1

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

# watchdog: if this script dies without its trap (SIGKILL), stop nginx and the proxy, and the
# cluster's processes listed in extra.pids by then (bounded: 24 h)
: > "$TMP/extra.pids"
# shellcheck disable=SC2016
bash -c 'for _ in $(seq 1 86400); do kill -0 "$1" 2>/dev/null || break; sleep 1; done
         kill -0 "$1" 2>/dev/null || kill -TERM "$(cat "$2")" "$3" $(cat "$4" 2>/dev/null) 2>/dev/null' \
  loadbench-watchdog $$ "$TMP/proxy.pid" "$NGINX_PID" "$TMP/extra.pids" < /dev/null > /dev/null 2>&1 &
WATCHDOG_PID=$!
log "up: Glance $G_UP_URL (no cache), Glance $G_CACHE_URL (own cache), nginx :$NGX_PORT, proxy :$PROXY_PORT ($BINARY)"

# ---- the cluster: S3 server, 3 proxies sharing it, 3 nginx, HAProxy in front of each trio ------
if [ "$CLUSTER" = 1 ]; then
  # The S3 server serves until its stdin ends: a pipe from a loop that ends with this script
  # (killed or not), so the server never outlives it. Its data lives in $TMP/s3.
  mkdir -p "$TMP/s3"
  # shellcheck disable=SC2016
  TMPDIR=$TMP/s3 "$S3_BIN" > "$TMP/s3.json" 2> "$TMP/s3.log" < <(
    echo "$BASHPID" > "$TMP/s3-stdin.pid"
    for _ in $(seq 1 172800); do kill -0 "$$" 2>/dev/null || break; sleep 0.5; done) &
  S3_PID=$!
  echo "$S3_PID" >> "$TMP/extra.pids"
  for _ in $(seq 1 300); do
    [ -s "$TMP/s3.json" ] && break
    kill -0 "$S3_PID" 2>/dev/null || { cat "$TMP/s3.log" >&2; die "the S3 server exited"; }
    sleep 0.1
  done
  [ -s "$TMP/s3.json" ] || { cat "$TMP/s3.log" >&2; die "the S3 server printed no endpoint within 30 s"; }
  read -r S3_ENDPOINT S3_BUCKET S3_KEY S3_SECRET S3_REGION S3_ROOT < <(python3 -c '
import json, sys
d = json.loads(open(sys.argv[1]).readline())
print(d["endpoint"], d["bucket"], d["access_key_id"], d["secret_access_key"], d["region"], d["root"])' "$TMP/s3.json") \
    || die "cannot read the S3 server's endpoint from $TMP/s3.json"
  S3_PREFIX=loadbench
  # Three proxies: each its own port, admin endpoint (metrics: remote events) and cache, one
  # bucket as their remote tier, in front of the same upstream Glance
  NODE_PORTS=(); NODE_ADMIN_PORTS=()
  for i in 1 2 3; do
    port=$(free_port); admin=$(free_port)
    NODE_PORTS+=("$port"); NODE_ADMIN_PORTS+=("$admin")
    mkdir -p "$TMP/node$i-cache"
    cat > "$TMP/node$i.conf" <<EOF
# written by glance-cache benches/load/run.sh: cluster node $i
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $port
image_cache_dir = $TMP/node$i-cache
worker_self_reference_url = http://127.0.0.1:$port

[proxy]
upstream_url = $G_UP_URL
management_auth = static
admin_tokens = $ADMIN_TOKEN
shutdown_timeout = 2
admin_listen = 127.0.0.1:$admin
remote_store_url = s3://$S3_BUCKET/$S3_PREFIX
remote_store_endpoint = $S3_ENDPOINT
remote_store_region = $S3_REGION
remote_store_access_key_id = $S3_KEY
remote_store_secret_access_key = $S3_SECRET
remote_store_allow_http = true
EOF
    RUST_LOG=$PROXY_RUST_LOG "$BINARY" serve --config-file "$TMP/node$i.conf" < /dev/null > "$TMP/node$i.log" 2>&1 &
    NODE_PIDS+=("$!")
    echo "$!" >> "$TMP/extra.pids"
  done
  # Three nginx with the main one's caching configuration, each its own cache (at most 2
  # images: the round's cold key, which the warm row reads, and the one before)
  CNGINX_PORTS=()
  for i in 1 2 3; do
    port=$(free_port)
    CNGINX_PORTS+=("$port")
    nginx_conf "$TMP/nginx$i" "$port" $(( 2 * CLUSTER_BYTES ))
    pid=$(start_nginx "$TMP/nginx$i") || exit 1
    CNGINX_PIDS+=("$pid")
    echo "$pid" >> "$TMP/extra.pids"
  done
  # One HAProxy, one frontend per trio
  HA_PX_PORT=$(free_port); HA_NGX_PORT=$(free_port)
  {
    printf '# written by glance-cache benches/load/run.sh\n'
    printf 'global\n  maxconn 4096\n'
    printf 'defaults\n  mode http\n  timeout connect 5s\n  timeout client 600s\n  timeout server 600s\n'
    printf '  timeout http-request 60s\n  option http-server-close\n'
    printf 'frontend proxies\n  bind 127.0.0.1:%s\n  default_backend proxies\n' "$HA_PX_PORT"
    printf 'frontend nginx\n  bind 127.0.0.1:%s\n  default_backend nginx\n' "$HA_NGX_PORT"
    printf 'backend proxies\n  balance roundrobin\n'
    for i in 0 1 2; do printf '  server node%s 127.0.0.1:%s\n' $(( i + 1 )) "${NODE_PORTS[$i]}"; done
    printf 'backend nginx\n  balance roundrobin\n'
    for i in 0 1 2; do printf '  server nginx%s 127.0.0.1:%s\n' $(( i + 1 )) "${CNGINX_PORTS[$i]}"; done
  } > "$TMP/haproxy.cfg"
  "$HAPROXY" -c -q -f "$TMP/haproxy.cfg" > "$TMP/haproxy.log" 2>&1 \
    || { cat "$TMP/haproxy.log" >&2; die "haproxy rejects $TMP/haproxy.cfg"; }
  "$HAPROXY" -db -f "$TMP/haproxy.cfg" < /dev/null >> "$TMP/haproxy.log" 2>&1 &
  HAPROXY_PID=$!
  echo "$HAPROXY_PID" >> "$TMP/extra.pids"
  for i in 0 1 2; do
    wait_http "http://127.0.0.1:${NODE_PORTS[$i]}/versions" 30 "${NODE_PIDS[$i]}" \
      || { tail -n 30 "$TMP/node$(( i + 1 )).log" >&2; die "cluster node $(( i + 1 )) did not answer on 127.0.0.1:${NODE_PORTS[$i]}"; }
    wait_http "http://127.0.0.1:${CNGINX_PORTS[$i]}/versions" 30 "${CNGINX_PIDS[$i]}" \
      || { tail -n 30 "$TMP/nginx$(( i + 1 ))/logs/error.log" >&2; die "cluster nginx $(( i + 1 )) did not answer"; }
  done
  for port in "$HA_PX_PORT" "$HA_NGX_PORT"; do
    wait_http "http://127.0.0.1:$port/versions" 30 "$HAPROXY_PID" \
      || { cat "$TMP/haproxy.log" >&2; die "haproxy did not answer on 127.0.0.1:$port"; }
  done
  python3 - "$TMP/cluster.json" "$S3_ROOT" "$S3_BUCKET" "$S3_PREFIX" "$S3_ENDPOINT" "$S3_PID" \
    "$HAPROXY_PID" "$HA_PX_PORT" "$HA_NGX_PORT" "$TMP" "${NODE_PORTS[*]}" "${NODE_ADMIN_PORTS[*]}" \
    "${NODE_PIDS[*]}" "${CNGINX_PORTS[*]}" "${CNGINX_PIDS[*]}" <<'PY'
import json, sys
(out, root, bucket, prefix, endpoint, s3_pid, ha_pid, ha_px, ha_ngx, tmp,
 node_ports, admin_ports, node_pids, ngx_ports, ngx_pids) = sys.argv[1:]
split = lambda v: [int(x) for x in v.split()]
json.dump({
    # endpoint, bucket, keys, region and root as the S3 server printed them
    "s3": dict(json.loads(open(tmp + "/s3.json").readline()), pid=int(s3_pid), prefix=prefix),
    "haproxy": {"pid": int(ha_pid), "proxies_port": int(ha_px), "nginx_port": int(ha_ngx)},
    "nodes": [{"port": p, "admin_port": a, "pid": i, "log": f"{tmp}/node{n + 1}.log",
               "cache_dir": f"{tmp}/node{n + 1}-cache"}
              for n, (p, a, i) in enumerate(zip(split(node_ports), split(admin_ports), split(node_pids)))],
    "nginx": [{"port": p, "pid": i} for p, i in zip(split(ngx_ports), split(ngx_pids))],
}, open(out, "w"), indent=1)
PY
  log "up: S3 $S3_ENDPOINT ($S3_ROOT), proxies :${NODE_PORTS[*]} behind HAProxy :$HA_PX_PORT, nginx :${CNGINX_PORTS[*]} behind HAProxy :$HA_NGX_PORT"
fi

# ---- 3. measure -------------------------------------------------------------------------------
GIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null | head -1)" ] && GIT="$GIT+local changes"
HAPROXY_V=""
if [ -n "$HAPROXY" ]; then HAPROXY_V=$("$HAPROXY" -v 2>/dev/null | awk 'NR == 1 { print "HAProxy " $3 }'); fi
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
    "haproxy": "$HAPROXY_V",
  },
}
import os
if os.path.exists("$TMP/cluster.json"):
    env["cluster"] = json.load(open("$TMP/cluster.json"))
json.dump(env, open(sys.argv[1], "w"), indent=1)
PY
ARGS=(--sizes "$SIZES" --runs "$RUNS" --parallel "$PARALLEL" --concurrency "$CONCURRENCY"
      --big-runs "$BIG_RUNS" --only "$ONLY" --cluster-clients "$CLUSTER_CLIENTS" --command "$COMMAND_LINE")
[ -n "$BIG_SIZE" ] && ARGS+=(--big-size "$BIG_SIZE")
[ -n "$CLUSTER_SIZE" ] && ARGS+=(--cluster-size "$CLUSTER_SIZE")
[ -n "$MISS_ROUNDS" ] && ARGS+=(--miss-rounds "$MISS_ROUNDS")
[ -n "$REPORT" ] && ARGS+=(--report "$REPORT")
[ "$JSON" = default ] && JSON=${TARGET_DIR:-$ROOT/target}/loadbench/results.json
[ -n "$JSON" ] && ARGS+=(--json "$JSON")
[ "$SYNC" = 0 ] && ARGS+=(--no-sync)
[ "$SMOKE" = 1 ] && ARGS+=(--smoke)
status=0
python3 "$HERE/loadbench.py" "$TMP/env.json" "${ARGS[@]}" || status=$?
PROXY_PID=$(cat "$TMP/proxy.pid")
kill -0 "$PROXY_PID" 2>/dev/null || { log "the proxy exited during the run; last lines of its log:"; tail -n 20 "$TMP/proxy.log" >&2; status=1; }
for i in "${!NODE_PIDS[@]}"; do
  kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || { log "cluster node $(( i + 1 )) exited during the run; last lines of its log:"
    tail -n 20 "$TMP/node$(( i + 1 )).log" >&2; status=1; }
done
for pid in "$HAPROXY_PID" "$S3_PID"; do
  [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || { log "HAProxy or the S3 server (pid $pid) exited during the run"; status=1; }
done
exit "$status"
