#!/usr/bin/env bash
# Start or stop a REAL OpenStack Glance API (glance 33.0.0 under uWSGI 2.0.31) on 127.0.0.1.
#
#   glance.sh start --port PORT [--base DIR] [--auth noauth|headers|keystone] [--workers N]
#                   [--keystone-url URL --keystone-password PASSWORD]
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
#     --auth keystone   Glance as clouds run it: keystonemiddleware's auth_token first in the
#                       pipeline (stock "keystone" paste flavor), validating every X-Auth-Token
#                       with the Keystone at --keystone-url (its /v3 URL, e.g. a keystone.sh
#                       instance) as the service user glance (project service, domain Default,
#                       password --keystone-password); stock policy. Requests without a valid
#                       token get 401.
#     --workers N       uWSGI processes (default 2: the test machines have 2 cores)
#     --cache off       (default) NO Glance image cache: no image_cache_dir, no cache
#                       middleware (this project is the cache).
#     --cache on        Glance's OWN image cache, as an operator would enable it (for
#                       side-by-side benchmarks): image_cache_dir = DIR/data/cache/,
#                       image_cache_driver = centralized_db (Glance's default), and the
#                       stock "cachemanagement" paste flavor (cache + cachemanage filters;
#                       "headerauth+cachemanagement" with --auth headers,
#                       "keystone+cachemanagement" with --auth keystone), so downloads are
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
HARNESS=glance.sh SERVICE=glance PIDNAME=glance-api
VENV=${GLANCE_CACHE_VENV:-${HOME:-/root}/.cache/glance-cache/venv}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$SELF")/lib.sh"

AUTH=noauth; CACHE=off; KEYSTONE_URL=""; KEYSTONE_PASSWORD=""
# Glance's own options (lib.sh's parse_command_line does the rest).
parse_option() {
  case "$1" in
    --auth) AUTH=${2:?--auth needs a value}; SHIFT=2;;
    --keystone-url) KEYSTONE_URL=${2:?--keystone-url needs a value}; SHIFT=2;;
    --keystone-password) KEYSTONE_PASSWORD=${2:?--keystone-password needs a value}; SHIFT=2;;
    --cache) CACHE=${2:?--cache needs a value}; SHIFT=2;;
  esac
}
parse_command_line "$@"

print_logs() { print_log_tails "$BASE/log/uwsgi.log" "$BASE/log/glance-api.log"; }

# ------------------------------------------------------------------------------- stop
cmd_stop() {
  resolve_base
  stop_watcher   # the watcher calls "glance.sh stop" itself: stop_watcher spares the caller
  # shellcheck disable=SC2119  # no AFTER_TERM: Glance has nothing next to uWSGI
  if ! stop_uwsgi; then
    log "not running (no live pid in $PIDFILE)"; rm -f "$PIDFILE"; return 0
  fi
  log "stopped (master ${STOP_PID:-none}, workers:${STOP_KIDS:- none}) in $BASE"
}

# ------------------------------------------------------------------------------ start
write_config() {
  local flavor=""
  case "$AUTH" in
    noauth) flavor="";;
    headers) flavor="headerauth";;
    keystone)
      flavor="keystone"
      { [ -n "$KEYSTONE_URL" ] && [ -n "$KEYSTONE_PASSWORD" ]; } \
        || { log "--auth keystone needs --keystone-url and --keystone-password"; exit 2; };;
    *) log "--auth must be noauth, headers or keystone, not '$AUTH'"; exit 2;;
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

[composite:glance-api-keystone]
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

[composite:glance-api-keystone+cachemanagement]
paste.composite_factory = glance.api:root_app_factory
/: api
/healthcheck: healthcheck

[composite:api]
paste.composite_factory = glance.api:pipeline_factory
default = cors http_proxy_to_wsgi versionnegotiation osprofiler unauthenticated-context rootapp
headerauth = cors http_proxy_to_wsgi versionnegotiation osprofiler context rootapp
keystone = cors http_proxy_to_wsgi versionnegotiation osprofiler authtoken context rootapp
cachemanagement = cors http_proxy_to_wsgi versionnegotiation osprofiler unauthenticated-context cache cachemanage rootapp
headerauth+cachemanagement = cors http_proxy_to_wsgi versionnegotiation osprofiler context cache cachemanage rootapp
keystone+cachemanagement = cors http_proxy_to_wsgi versionnegotiation osprofiler authtoken context cache cachemanage rootapp

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

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
delay_auth_decision = true

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

  local keystone_lines=""
  if [ "$AUTH" = keystone ]; then
    keystone_lines="[keystone_authtoken]
www_authenticate_uri = $KEYSTONE_URL
auth_url = $KEYSTONE_URL
auth_type = password
username = glance
password = $KEYSTONE_PASSWORD
project_name = service
user_domain_name = Default
project_domain_name = Default"
  fi

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

$keystone_lines
EOF

  # uWSGI: Glance's own sample (httpd/glance-api-uwsgi.ini) without 'plugins = python' (the
  # pip-built uwsgi has Python built in), plus:
  #  - chunked-input-limit 10 MiB: glanceclient uploads chunked in 1 MiB chunks and uWSGI's
  #    default limit (1 MiB) makes Glance answer 500 "unable to receive chunked part";
  #  - daemonize + pidfile so that start returns and stop finds the master.
  write_uwsgi_ini glance.wsgi.api:application OS_GLANCE_CONFIG_DIR "chunked-input-limit = 10485760"
}

cmd_start() {
  check_start_options
  case "$CACHE" in on|off) ;; *) log "--cache must be on or off, not '$CACHE'"; exit 2;; esac
  { [ -x "$VENV/bin/uwsgi" ] && [ -x "$VENV/bin/glance-manage" ]; } \
    || die "no Glance venv at $VENV (set GLANCE_CACHE_VENV, or run: bash $(dirname "$SELF")/setup-python.sh)"
  command -v curl >/dev/null 2>&1 || die "curl is needed (Debian: apt-get install curl)"
  if [ "$PORT" = 0 ]; then PORT=$(free_port); fi
  resolve_base

  check_not_running Glance
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

  local t0; t0=$(date +%s%N)
  launch_uwsgi || { print_logs; die "uwsgi did not start"; }
  wait_uwsgi_up "http://127.0.0.1:$PORT/versions" "200 300"
  if [ "$UP_STATE" = port_in_use ]; then
    cmd_stop >/dev/null 2>&1 || true
    log "port 127.0.0.1:$PORT is already in use (uWSGI could not bind)"; exit 3
  fi
  if [ "$UP_STATE" != up ]; then
    log "Glance did not come up on 127.0.0.1:$PORT (state: $UP_STATE, last /versions status: ${UP_CODE:-none}, workers ready: ${UP_READY:-0}/$WORKERS, timeout ${TIMEOUT}s)"
    print_logs
    cmd_stop >/dev/null 2>&1 || true
    exit 1
  fi
  if [ -n "$WATCH_PID" ]; then start_watcher 0; fi
  log "up in $(( ($(date +%s%N) - t0) / 1000000 )) ms: pid=$MASTER_PID auth=$AUTH cache=$CACHE workers=$WORKERS base=$BASE"
  echo "http://127.0.0.1:$PORT"
}

run_command "$CMD"
