#!/usr/bin/env bash
# Profiles a burst of concurrent cold downloads through the proxy (issue 5's "8 concurrent
# cold requests" row) with `perf record -a -g`: the whole machine, so that the proxy, the
# curls, Glance and the kernel's share of the 2 cores all show.
#
#   bash benches/load/profile-burst.sh [--size 1G] [--clients 8] [--remote] [--out DIR]
#
# --remote profiles remote hits instead: the proxy gets a remote tier on the test S3 server
# (glance-cache-support's `s3-server` example), the first cold download uploads the image to
# the bucket, and each burst deletes the local copy only, so that it is filled from the bucket.
#
# Starts a real Glance (tests/harness/glance.sh, 4 uWSGI processes, its venv made by
# tests/harness/setup-python.sh) and the release proxy on 127.0.0.1, uploads a random image,
# times one cold download, then records the burst (the cache entry is deleted before each).
# Writes DIR/perf.data (default target/profile-burst) and DIR/report.txt: the busy time per
# process and per symbol. Everything it started is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SIZE=1G; CLIENTS=8; OUT=$ROOT/target/profile-burst; REMOTE=0
die() { echo "profile-burst: $*" >&2; exit 1; }
log() { echo "profile-burst: $*" >&2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE=${2:?}; shift 2;;
    --clients) CLIENTS=${2:?}; shift 2;;
    --out) OUT=${2:?}; shift 2;;
    --remote) REMOTE=1; shift;;
    -h|--help) sed -n '2,16p' "$0"; exit 0;;
    *) die "unknown option $1 (see --help)";;
  esac
done
BYTES=$(numfmt --from=iec "$SIZE") || die "--size: not a size: $SIZE"
case "$CLIENTS" in ''|*[!0-9]*|0) die "--clients: a positive number";; esac
command -v perf >/dev/null 2>&1 || die "perf is not installed (Debian: linux-perf)"
mkdir -p "$OUT"

(cd "$ROOT" && cargo build --quiet --release -p glance-cache-proxy)
BINARY=$ROOT/target/release/glance-cache-proxy
if [ "$REMOTE" = 1 ]; then
  (cd "$ROOT" && cargo build --quiet --release -p glance-cache-support --features s3 --example s3-server)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/glance-cache-profile.XXXXXX")
PROXY_PID=""; S3_PID=""
cleanup() {
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
  [ -n "$S3_PID" ] && kill "$S3_PID" 2>/dev/null && wait "$S3_PID" 2>/dev/null
  bash "$ROOT/tests/harness/glance.sh" stop --base "$TMP/glance" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting Glance"
GLANCE=$(bash "$ROOT/tests/harness/glance.sh" start --port 0 --base "$TMP/glance" --workers 4 \
  --watch-pid $$ 2> "$TMP/glance.log") || { cat "$TMP/glance.log" >&2; die "Glance did not start"; }
head -c "$BYTES" /dev/urandom > "$TMP/image.bin"
ID=$(curl -sf --noproxy '*' -X POST "$GLANCE/v2/images" -H 'content-type: application/json' \
  -d '{"name": "profile-burst", "disk_format": "raw", "container_format": "bare"}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])') || die "cannot create the image"
curl -sf --noproxy '*' -X PUT "$GLANCE/v2/images/$ID/file" -H 'content-type: application/octet-stream' \
  -T "$TMP/image.bin" -o /dev/null || die "cannot upload the image"
rm -f "$TMP/image.bin"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$TMP/cache"
cat > "$TMP/proxy.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $PORT
image_cache_dir = $TMP/cache

[proxy]
upstream_url = $GLANCE
management_auth = static
admin_tokens = profile
EOF
if [ "$REMOTE" = 1 ]; then
  # The S3 server stops when its stdin ends, that is with this script.
  mkdir -p "$TMP/s3"
  TMPDIR=$TMP/s3 "$ROOT/target/release/examples/s3-server" > "$TMP/s3.json" 2> "$TMP/s3.log" \
    < <(while kill -0 $$ 2>/dev/null; do sleep 1; done) &
  S3_PID=$!
  for _ in $(seq 1 300); do [ -s "$TMP/s3.json" ] && break; sleep 0.1; done
  [ -s "$TMP/s3.json" ] || { cat "$TMP/s3.log" >&2; die "the S3 server did not start"; }
  read -r S3_ROOT S3_BUCKET < <(python3 - "$TMP/s3.json" "$TMP/proxy.conf" "$PORT" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).readline())
conf = open(sys.argv[2]).read().replace(
    "[DEFAULT]\n", f"[DEFAULT]\nworker_self_reference_url = http://127.0.0.1:{sys.argv[3]}\n", 1)
conf += "".join(f"{k} = {v}\n" for k, v in [
    ("remote_store_url", f"s3://{d['bucket']}/profile"), ("remote_store_endpoint", d["endpoint"]),
    ("remote_store_region", d["region"]), ("remote_store_access_key_id", d["access_key_id"]),
    ("remote_store_secret_access_key", d["secret_access_key"]), ("remote_store_allow_http", "true")])
open(sys.argv[2], "w").write(conf)
print(d["root"], d["bucket"])
PY
  ) || die "cannot configure the remote tier"
  REMOTE_OBJECT=$S3_ROOT/$S3_BUCKET/profile/images/$ID
fi
RUST_LOG=warn "$BINARY" serve --config-file "$TMP/proxy.conf" < /dev/null > "$TMP/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 1 100); do
  curl -sf --noproxy '*' -o /dev/null "http://127.0.0.1:$PORT/versions" && break
  kill -0 "$PROXY_PID" 2>/dev/null || { cat "$TMP/proxy.log" >&2; die "the proxy exited"; }
  sleep 0.1
done

URL=http://127.0.0.1:$PORT/v2/images/$ID/file
export URL CLIENTS ADMIN_URL=http://127.0.0.1:$PORT/v2/cache/$ID
# shellcheck disable=SC2016  # expanded by the bash -c that runs it
# One burst: evict, let the page cache settle, N curls at once; prints the slowest client's time.
BURST='curl -s --noproxy "*" -o /dev/null -X DELETE -H "x-auth-token: profile" "$ADMIN_URL"
sync; sleep 1
for _ in $(seq 1 "$CLIENTS"); do
  curl -s --noproxy "*" -o /dev/null -w "%{http_code} %{size_download} %{time_total}\n" "$URL" &
done > "$OUT_TIMES"; wait
sort -k3 -n "$OUT_TIMES" | tail -1 | awk "{ print \"slowest client: \" \$3 \" s (\" \$1 \", \" \$2 \" bytes)\" }"'

one=$(OUT_TIMES=$TMP/one.txt CLIENTS=1 bash -c "$BURST")
log "one cold download: ${one#slowest client: }"
WHAT="cold downloads"; ONE="one cold download"
if [ "$REMOTE" = 1 ]; then
  # The upload to the bucket runs after the fill: wait for the object, then time a remote hit.
  for _ in $(seq 1 600); do [ "$(stat -c %s "$REMOTE_OBJECT" 2>/dev/null)" = "$BYTES" ] && break; sleep 0.1; done
  [ "$(stat -c %s "$REMOTE_OBJECT" 2>/dev/null)" = "$BYTES" ] || die "the image did not reach the bucket"
  one=$(OUT_TIMES=$TMP/one.txt CLIENTS=1 bash -c "$BURST")
  log "one remote hit: ${one#slowest client: }"
  WHAT="remote hits"; ONE="one remote hit"
fi
sleep 2
log "recording $CLIENTS concurrent $WHAT of $SIZE"
many=$(OUT_TIMES=$TMP/many.txt perf record -q -F 999 -a -g -o "$OUT/perf.data" -- bash -c "$BURST")
log "$CLIENTS concurrent: ${many#slowest client: }"
if grep -qv "^200 $BYTES " "$TMP/many.txt"; then die "a download failed: $(cat "$TMP/many.txt")"; fi

top() { # perf report columns, without comments; head closes the pipe early
  perf report -i "$OUT/perf.data" --no-children --sort "$1" -g none --stdio 2>/dev/null \
    | grep -v -e '^#' -e '^$' | head -"$2" || true
}
{
  echo "# $CLIENTS concurrent $WHAT of $SIZE through glance-cache-proxy ($(date -u '+%F %R UTC'))"
  echo "# $ONE: ${one#slowest client: }; the burst: ${many#slowest client: }"
  echo "# samples include the 1 s settle before the burst (idle: swapper)"
  echo "## busy time per process"
  top comm 12
  echo "## top symbols"
  top comm,sym 30
} > "$OUT/report.txt"
cat "$OUT/report.txt"
log "wrote $OUT/perf.data and $OUT/report.txt (perf report -i $OUT/perf.data -g for call graphs)"
