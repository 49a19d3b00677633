#!/usr/bin/env bash
# Start or stop a REAL OpenStack Glance API (glance 33.0.0 under uWSGI 2.0.31) on 127.0.0.1.
#
#   glance.sh start --port PORT [--base DIR] [--auth noauth|headers] [--workers N]
#                   [--cache off|on] [--debug] [--fresh] [--watch-pid PID [--purge-with-owner]]
#                   [--timeout SECONDS]
#   glance.sh stop  (--base DIR | --port PORT)
#   glance.sh status (--base DIR | --port PORT)
#
# start: writes the configuration into DIR, creates the sqlite DB (glance-manage db_sync) on
#   first use, starts uWSGI daemonized, waits until GET /versions answers AND every worker has
#   loaded Glance, then prints the URL (http://127.0.0.1:PORT) as the only line on stdout.
#   Progress and errors go to stderr; on failure it prints the tail of the logs.
#     --port PORT       required (0 = pick a free port)
#     --base DIR        state dir (default ${TMPDIR:-/tmp}/glance-cache-glance-PORT):
#                       etc/{glance-api.conf,glance-api-paste.ini,policy.yaml,uwsgi.ini}
#                       data/{images,staging,tasks}/ (+ data/cache/ with --cache on)
#                       glance.sqlite  locks/
#                       run/{glance-api.pid,watch.pid}  log/{uwsgi.log,glance-api.log,db_sync.log}
#     --auth noauth     (default) every request is admin: Glance's unauthenticated-context
#                       middleware plus a policy override ("context_is_admin": "@"), because
#                       Glance 33 enforces the new RBAC defaults, under which that context
#                       (is_admin=True but roles=[]) would get 403 on every write.
#     --auth headers    keystone-less header auth: Glance's ContextMiddleware trusts
#                       X-Identity-Status: Confirmed, X-Roles, X-User-Id, X-Project-Id (stock
#                       policy; X-Roles: admin is admin, member/reader are not). Requests
#                       without X-Identity-Status: Confirmed get 401.
#     --workers N       uWSGI processes (default 2: the test machines have 2 cores)
#     --cache off       (default) NO Glance image cache: no image_cache_dir, no cache
#                       middleware (this project is the cache).
#     --cache on        Glance's OWN image cache, as an operator would enable it (for
#                       side-by-side benchmarks): image_cache_dir = DIR/data/cache/,
#                       image_cache_driver = centralized_db (Glance's default), and the
#                       stock "cachemanagement" paste flavor (cache + cachemanage filters;
#                       "headerauth+cachemanagement" with --auth headers), so downloads are
#                       cached by Glance and /v2/cache answers.
#     --debug           Glance debug logging
#     --fresh           wipe DIR first
#     --watch-pid PID   stop this Glance when process PID exits (a test process that is killed
#                       cannot run its cleanup); the watcher checks once a second
#     --purge-with-owner with --watch-pid: also delete DIR when PID exits (for a DIR that
#                       belongs to that process, such as a test's temporary directory)
#     --timeout S       how long to wait for Glance to come up (default 120)
#   Without --cache on there is deliberately NO Glance image cache: this project is the cache.
# stop: SIGTERM to the uWSGI master (die-on-term: graceful), waits up to 30 s, then SIGKILLs
#   the master and the workers it had, if still alive. Keeps DIR.
#
# Exit status: 0 ok, 1 failure, 2 usage error, 3 the port is already in use.
# Environment: GLANCE_CACHE_VENV (default $HOME/.cache/glance-cache/venv), made by
# tests/harness/setup-python.sh.
set -euo pipefail

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
VENV=${GLANCE_CACHE_VENV:-${HOME:-/root}/.cache/glance-cache/venv}

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }
log() { echo "glance.sh: $*" >&2; }
die() { echo "glance.sh: ERROR: $*" >&2; exit 1; }

CMD=${1:-}
[ -n "$CMD" ] || { usage >&2; exit 2; }
shift
PORT=""; BASE=""; AUTH=noauth; CACHE=off; WORKERS=2; DEBUG=False; FRESH=0; WATCH_PID=""; TIMEOUT=120; PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT=${2:?--port needs a value}; shift 2;;
    --base) BASE=${2:?--base needs a value}; shift 2;;
    --auth) AUTH=${2:?--auth needs a value}; shift 2;;
    --workers) WORKERS=${2:?--workers needs a value}; shift 2;;
    --cache) CACHE=${2:?--cache needs a value}; shift 2;;
    --debug) DEBUG=True; shift;;
    --fresh) FRESH=1; shift;;
    --watch-pid) WATCH_PID=${2:?--watch-pid needs a value}; shift 2;;
    --timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2;;
    --purge-with-owner) PURGE=1; shift;;
    -h|--help) usage; exit 0;;
    *) log "unknown option '$1'"; usage >&2; exit 2;;
  esac
done

is_uint() { case "$1" in ''|*[!0-9]*) return 1;; *) return 0;; esac; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

resolve_base() {
  if [ -z "$BASE" ]; then
    [ -n "$PORT" ] || { log "give --base DIR or --port PORT"; exit 2; }
    BASE=${TMPDIR:-/tmp}/glance-cache-glance-$PORT
  fi
  PIDFILE=$BASE/run/glance-api.pid
  WATCHFILE=$BASE/run/watch.pid
  PGIDFILE=$BASE/run/glance-api.pgid
}

print_logs() {
  local f
  for f in "$BASE/log/uwsgi.log" "$BASE/log/glance-api.log"; do
    if [ -s "$f" ]; then
      echo "---- last 40 lines of $f ----" >&2
      tail -n 40 "$f" >&2 || true
    fi
  done
  echo "---- end of logs ----" >&2
}

# ------------------------------------------------------------------------------- stop
cmd_stop() {
  resolve_base
  if [ -f "$WATCHFILE" ]; then
    local w; w=$(cat "$WATCHFILE" 2>/dev/null || true)
    # the watcher calls "glance.sh stop" itself: don't kill the caller
    if is_uint "$w" && [ "$w" != "$$" ] && [ "$w" != "$PPID" ] && alive "$w"; then kill -TERM "$w" 2>/dev/null || true; fi
    rm -f "$WATCHFILE"
  fi
  local pid="" pgid="" kids="" _i
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  pgid=$(cat "$PGIDFILE" 2>/dev/null || true)
  if is_uint "$pid" && alive "$pid"; then
    kids=$(ps -o pid= --ppid "$pid" 2>/dev/null | tr -s ' \n' ' ' || true)
    kill -TERM "$pid" 2>/dev/null || true
    for _i in $(seq 1 300); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then log "uWSGI master $pid still alive after 30 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    for k in $kids; do
      if alive "$k"; then kill -KILL "$k" 2>/dev/null || true; fi
    done
  elif [ -z "$pgid" ]; then
    log "not running (no live pid in $PIDFILE)"; rm -f "$PIDFILE"; return 0
  fi
  # Stragglers (a worker the master had not reported yet): uWSGI's daemonize made its own
  # session and process group, recorded at start; never our own group.
  if is_uint "$pgid" && [ "$pgid" -gt 1 ] && [ "$pgid" != "$(ps -o pgid= -p $$ | tr -d ' ')" ] \
     && kill -0 -- "-$pgid" 2>/dev/null; then
    sleep 0.5
    kill -KILL -- "-$pgid" 2>/dev/null || true
    log "killed the remaining processes of group $pgid"
  fi
  rm -f "$PIDFILE" "$PGIDFILE"
  log "stopped (master ${pid:-none}, workers:${kids:- none}) in $BASE"
}

cmd_status() {
  resolve_base
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if is_uint "$pid" && alive "$pid"; then echo "running pid=$pid base=$BASE"; else echo "stopped base=$BASE"; return 1; fi
}

# ------------------------------------------------------------------------------ start
free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
port_in_use() {
  "$VENV/bin/python" - "$1" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
finally:
    s.close()
sys.exit(1)
PY
}

write_config() {
  local flavor=""
  case "$AUTH" in
    noauth) flavor="";;
    headers) flavor="headerauth";;
    *) log "--auth must be noauth or headers, not '$AUTH'"; exit 2;;
  esac
  local cache_lines=""
  case "$CACHE" in
    off) ;;
    on)
      flavor=${flavor:+$flavor+}cachemanagement
      cache_lines="image_cache_dir = $BASE/data/cache/
image_cache_driver = centralized_db
image_cache_max_size = 10737418240
image_cache_stall_time = 86400"
      ;;
    *) log "--cache must be on or off, not '$CACHE'"; exit 2;;
  esac

  # Paste pipelines: Glance's stock filters; the cache middleware only in the *cachemanagement
  # flavors (--cache on). The composite name Glance loads is "glance-api" plus "-<flavor>" when
  # [paste_deploy] flavor is set.
  cat > "$BASE/etc/glance-api-paste.ini" <<EOF
# written by glance-cache tests/harness/glance.sh
[composite:glance-api]
paste.composite_factory = glance.api:root_app_factory
/: api
/healthcheck: healthcheck

[composite:glance-api-headerauth]
paste.composite_factory = glance.api:root_app_factory
/: api
/healthcheck: healthcheck

# --cache on: Glance's own image cache (stock cache + cachemanage filters)
[composite:glance-api-cachemanagement]
paste.composite_factory = glance.api:root_app_factory
/: api
/healthcheck: healthcheck

[composite:glance-api-headerauth+cachemanagement]
paste.composite_factory = glance.api:root_app_factory
/: api
/healthcheck: healthcheck

[composite:api]
paste.composite_factory = glance.api:pipeline_factory
default = cors http_proxy_to_wsgi versionnegotiation osprofiler unauthenticated-context rootapp
headerauth = cors http_proxy_to_wsgi versionnegotiation osprofiler context rootapp
cachemanagement = cors http_proxy_to_wsgi versionnegotiation osprofiler unauthenticated-context cache cachemanage rootapp
headerauth+cachemanagement = cors http_proxy_to_wsgi versionnegotiation osprofiler context cache cachemanage rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[app:healthcheck]
paste.app_factory = oslo_middleware:Healthcheck.app_factory
backends = disable_by_file
disable_by_file_path = $BASE/run/healthcheck_disable

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory

[filter:unauthenticated-context]
paste.filter_factory = glance.api.middleware.context:UnauthenticatedContextMiddleware.factory

[filter:cache]
paste.filter_factory = glance.api.middleware.cache:CacheFilter.factory

[filter:cachemanage]
paste.filter_factory = glance.api.middleware.cache_manage:CacheManageFilter.factory

[filter:osprofiler]
paste.filter_factory = osprofiler.web:WsgiMiddleware.factory

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = glance
oslo_config_program = glance-api

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware:HTTPProxyToWSGI.factory
EOF

  local policy_line=""
  if [ "$AUTH" = noauth ]; then
    printf '%s\n' '# noauth: the unauthenticated context (is_admin=True, roles=[]) really is admin' \
      '"context_is_admin": "@"' > "$BASE/etc/policy.yaml"
    policy_line="policy_file = $BASE/etc/policy.yaml"
  else
    rm -f "$BASE/etc/policy.yaml"
  fi

  cat > "$BASE/etc/glance-api.conf" <<EOF
# written by glance-cache tests/harness/glance.sh (auth=$AUTH, cache=$CACHE)
[DEFAULT]
debug = $DEBUG
log_file = $BASE/log/glance-api.log
use_stderr = false
enabled_backends = fs:file
worker_self_reference_url = http://127.0.0.1:$PORT
allow_anonymous_access = false
$cache_lines

[database]
connection = sqlite:///$BASE/glance.sqlite

[glance_store]
default_backend = fs

[fs]
filesystem_store_datadir = $BASE/data/images/

[os_glance_staging_store]
filesystem_store_datadir = $BASE/data/staging/

[os_glance_tasks_store]
filesystem_store_datadir = $BASE/data/tasks/

[oslo_concurrency]
lock_path = $BASE/locks

[oslo_policy]
$policy_line

[paste_deploy]
flavor = $flavor
config_file = $BASE/etc/glance-api-paste.ini
EOF

  # uWSGI: Glance's own sample (httpd/glance-api-uwsgi.ini) without 'plugins = python' (the
  # pip-built uwsgi has Python built in), plus:
  #  - chunked-input-limit 10 MiB: glanceclient uploads chunked in 1 MiB chunks and uWSGI's
  #    default limit (1 MiB) makes Glance answer 500 "unable to receive chunked part";
  #  - daemonize + pidfile so that start returns and stop finds the master.
  cat > "$BASE/etc/uwsgi.ini" <<EOF
[uwsgi]
socket-timeout = 10
http-auto-chunked = true
http-chunked-input = true
http-raw-body = true
lazy-apps = true
add-header = Connection: close
buffer-size = 65535
chunked-input-limit = 10485760
thunder-lock = true
enable-threads = true
exit-on-reload = true
die-on-term = true
master = true
processes = $WORKERS
http-socket = 127.0.0.1:$PORT
module = glance.wsgi.api:application
virtualenv = $VENV
env = OS_GLANCE_CONFIG_DIR=$BASE/etc
pidfile = $PIDFILE
daemonize = $BASE/log/uwsgi.log
procname-prefix-spaced = glance-cache-test-glance-$PORT
EOF
}

start_watcher() {
  is_uint "$WATCH_PID" || { log "--watch-pid needs a pid, not '$WATCH_PID'"; exit 2; }
  local master; master=$(cat "$PIDFILE")
  # Detached (own session, no inherited stdio) so that it outlives a Ctrl-C of the test run
  # and never holds the caller's stdout/stderr pipes open. Bounded: at most 24 h.
  local setsid_cmd=()
  command -v setsid >/dev/null 2>&1 && setsid_cmd=(setsid)
  # shellcheck disable=SC2016  # the script's variables expand in the watcher, not here
  "${setsid_cmd[@]}" bash -c '
    owner=$1; master=$2; self=$3; base=$4; purge=$5
    for _ in $(seq 1 86400); do
      kill -0 "$master" 2>/dev/null || exit 0
      if ! kill -0 "$owner" 2>/dev/null; then
        echo "owner $owner gone: stopping glance"
        bash "$self" stop --base "$base"
        if [ "$purge" = 1 ]; then rm -rf "$base"; fi
        exit 0
      fi
      sleep 1
    done
    bash "$self" stop --base "$base"
  ' glance-watch "$WATCH_PID" "$master" "$SELF" "$BASE" "$PURGE" </dev/null >> "$BASE/log/watch.log" 2>&1 &
  echo $! > "$WATCHFILE"
}

# Reads the master's pid and records its process group (uWSGI's daemonize made a new session).
record_pid() {
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  is_uint "$pid" || { pid=""; return 0; }
  local g; g=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' || true)
  if is_uint "$g"; then echo "$g" > "$PGIDFILE"; fi
}

cmd_start() {
  [ -n "$PORT" ] || { log "start needs --port PORT (0 = any free port)"; exit 2; }
  is_uint "$PORT" || { log "--port must be a number, not '$PORT'"; exit 2; }
  if ! is_uint "$WORKERS" || [ "$WORKERS" -lt 1 ]; then log "--workers must be >= 1"; exit 2; fi
  is_uint "$TIMEOUT" || { log "--timeout must be seconds"; exit 2; }
  case "$CACHE" in on|off) ;; *) log "--cache must be on or off, not '$CACHE'"; exit 2;; esac
  { [ -x "$VENV/bin/uwsgi" ] && [ -x "$VENV/bin/glance-manage" ]; } \
    || die "no Glance venv at $VENV (set GLANCE_CACHE_VENV, or run: bash $(dirname "$SELF")/setup-python.sh)"
  command -v curl >/dev/null 2>&1 || die "curl is needed (Debian: apt-get install curl)"
  if [ "$PORT" = 0 ]; then PORT=$(free_port); fi
  resolve_base

  if [ -f "$PIDFILE" ] && alive "$(cat "$PIDFILE" 2>/dev/null || true)"; then
    die "a Glance is already running in $BASE (pid $(cat "$PIDFILE")); stop it first"
  fi
  if port_in_use "$PORT"; then log "port 127.0.0.1:$PORT is already in use"; exit 3; fi
  if [ "$FRESH" = 1 ]; then rm -rf "$BASE"; fi
  mkdir -p "$BASE"/{etc,data/images,data/staging,data/tasks,locks,run,log}
  if [ "$CACHE" = on ]; then mkdir -p "$BASE/data/cache"; fi
  write_config

  # The empty schema depends only on the Glance version (the venv's), so the first db_sync's
  # result is kept in the venv and copied on later starts (saves ~1.5 s per start).
  local template=$VENV/glance-cache-harness/glance-empty.sqlite
  if [ ! -s "$BASE/glance.sqlite" ]; then
    if [ -s "$template" ]; then
      cp "$template" "$BASE/glance.sqlite"
    else
      if ! "$VENV/bin/glance-manage" --config-file "$BASE/etc/glance-api.conf" db_sync > "$BASE/log/db_sync.log" 2>&1; then
        tail -n 30 "$BASE/log/db_sync.log" >&2 || true
        die "glance-manage db_sync failed (log: $BASE/log/db_sync.log)"
      fi
      { mkdir -p "$(dirname "$template")" && cp "$BASE/glance.sqlite" "$template.$$" \
          && mv -f "$template.$$" "$template"; } 2>/dev/null || rm -f "$template.$$" 2>/dev/null || true
    fi
  fi

  rm -f "$PIDFILE" "$PGIDFILE"
  if [ -f "$BASE/log/uwsgi.log" ]; then mv "$BASE/log/uwsgi.log" "$BASE/log/uwsgi.log.prev"; fi
  local t0; t0=$(date +%s%N)
  "$VENV/bin/uwsgi" --ini "$BASE/etc/uwsgi.ini" < /dev/null >&2 || { print_logs; die "uwsgi did not start"; }

  # Wait (bounded): pid file, then /versions answering, then every worker having loaded the
  # app (lazy-apps: each worker imports Glance itself, a few seconds each).
  local deadline=$(( $(date +%s) + TIMEOUT )) pid="" code="" ready=0 state=wait_pid
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if [ -z "$pid" ] && [ -s "$PIDFILE" ]; then record_pid; fi
    if grep -q 'Address already in use' "$BASE/log/uwsgi.log" 2>/dev/null; then
      cmd_stop >/dev/null 2>&1 || true
      log "port 127.0.0.1:$PORT is already in use (uWSGI could not bind)"; exit 3
    fi
    if [ -n "$pid" ] && ! alive "$pid"; then state=master_died; break; fi
    if grep -q 'no app loaded' "$BASE/log/uwsgi.log" 2>/dev/null; then state=no_app; break; fi
    if [ -n "$pid" ]; then
      if [ "$state" = wait_pid ]; then state=wait_http; fi
      if [ "$state" = wait_http ]; then
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/versions" || true)
        case "$code" in 200|300) state=wait_workers;; esac
      fi
      if [ "$state" = wait_workers ]; then
        ready=$(grep -c 'WSGI app 0 (mountpoint=.*) ready' "$BASE/log/uwsgi.log" 2>/dev/null || true)
        if [ "${ready:-0}" -ge "$WORKERS" ]; then state=up; break; fi
      fi
    fi
    sleep 0.2
  done

  if [ "$state" != up ]; then
    # make sure the pid and process group are known, so that the cleanup finds everything
    local _i
    for _i in $(seq 1 50); do
      [ -n "$pid" ] && break
      if [ -s "$PIDFILE" ]; then record_pid; break; fi
      sleep 0.2
    done
    log "Glance did not come up on 127.0.0.1:$PORT (state: $state, last /versions status: ${code:-none}, workers ready: ${ready:-0}/$WORKERS, timeout ${TIMEOUT}s)"
    print_logs
    cmd_stop >/dev/null 2>&1 || true
    exit 1
  fi
  if [ -n "$WATCH_PID" ]; then start_watcher; fi
  log "up in $(( ($(date +%s%N) - t0) / 1000000 )) ms: pid=$pid auth=$AUTH cache=$CACHE workers=$WORKERS base=$BASE"
  echo "http://127.0.0.1:$PORT"
}

case "$CMD" in
  start) cmd_start;;
  stop) cmd_stop;;
  status) cmd_status;;
  -h|--help|help) usage;;
  *) log "unknown command '$CMD'"; usage >&2; exit 2;;
esac
