#!/usr/bin/env bash
# Start or stop a REAL OpenStack Keystone (keystone 30.0.0 under uWSGI 2.0.31) on 127.0.0.1.
#
#   keystone.sh start --port PORT [--base DIR] [--token-expiration S] [--workers N] [--debug]
#                     [--fresh] [--watch-pid PID [--purge-with-owner]] [--timeout S]
#   keystone.sh stop   (--base DIR | --port PORT)
#   keystone.sh status (--base DIR | --port PORT)
#
# start: writes the configuration into DIR, starts a private memcached, prepares the sqlite DB,
#   starts uWSGI daemonized, waits until GET /v3 answers AND every worker has loaded Keystone,
#   then prints the identity URL (http://127.0.0.1:PORT/v3) as the only line on stdout.
#   Progress and errors go to stderr; on failure it prints the tail of the logs.
#     --port PORT       required (0 = pick a free port)
#     --base DIR        state dir (default ${TMPDIR:-/tmp}/glance-cache-keystone-PORT):
#                       etc/{keystone.conf,uwsgi.ini}  keystone.sqlite  users.json
#                       fernet-keys/ credential-keys/  run/{keystone.pid,memcached.pid,
#                       memcached.sock,watch.pid}  log/{uwsgi.log,keystone.log,memcached.log,...}
#     --token-expiration S  [token] expiration in seconds (default 3600, Keystone's default)
#     --workers N       uWSGI processes (default 2: the test machines have 2 cores)
#     --debug           Keystone debug logging
#     --fresh           wipe DIR first
#     --watch-pid PID   stop this Keystone (and its memcached) when process PID exits (a test
#                       process that is killed cannot run its cleanup); checks once a second
#     --purge-with-owner with --watch-pid: also delete DIR when PID exits
#     --timeout S       how long to wait for Keystone to come up (default 120)
# stop: SIGTERM to the uWSGI master (die-on-term: graceful), waits up to 30 s, then SIGKILLs
#   the master and its workers if still alive; then stops the private memcached. Keeps DIR.
#
# What a new DIR gets (as devstack sets Keystone up, minus Apache):
#   - sqlite DB: keystone-manage db_sync + bootstrap (user admin, project admin, roles
#     admin > manager > member > reader and service, region RegionOne, identity endpoints
#     public/internal/admin = http://127.0.0.1:PORT/v3), then via the REST API, all in domain
#     "default":
#        project service: glance    (role admin)   - the service user that validates tokens
#                         validator (role service) - a least-privilege validating user
#        project demo:    demo      (role member, which implies reader)
#                         viewer    (role reader)
#        project alt:     alt       (role member)  - "another project"
#     Passwords are fixed ("glance-cache-<user>-secret"); DIR/users.json has every user's
#     password, user_id, project_name, project_id and roles, plus the role and project ids.
#     The provisioned DB is kept in the venv (glance-cache-harness/) and copied for later
#     DIRs, whose identity endpoints are then pointed at their own port (saves ~8 s/start).
#   - fresh fernet and credential keys per DIR (32 random bytes each, Keystone's format: key
#     0 staged, key 1 primary), so tokens of one instance never validate at another.
#   - [cache] through dogpile.cache.pymemcache to a private memcached on a unix socket in
#     run/ (TCP on a free 127.0.0.1 port if that path would be too long): shared by all
#     workers, so a revoked token is 404 at once on every worker, as in production.
#   - [identity] password_hash_rounds = 4 (bcrypt's minimum): password auth then costs a few
#     ms instead of ~250 ms (the default 12 rounds). Nothing else differs.
#   Later starts on the same DIR reuse DB and keys (tokens issued before a restart stay valid).
#
# Exit status: 0 ok, 1 failure, 2 usage error, 3 the port is already in use.
# Environment: GLANCE_CACHE_KEYSTONE_VENV (default $HOME/.cache/glance-cache/keystone-venv),
# made by: tests/harness/setup-python.sh --with-keystone (also installs memcached).
set -euo pipefail

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
HARNESS=keystone.sh SERVICE=keystone PIDNAME=keystone
VENV=${GLANCE_CACHE_KEYSTONE_VENV:-${HOME:-/root}/.cache/glance-cache/keystone-venv}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$SELF")/lib.sh"
# Bump when the provisioned users/projects change: older cached DBs are then ignored.
TEMPLATE=$VENV/glance-cache-harness/keystone-provisioned-v1

EXPIRATION=3600
# Keystone's own option (lib.sh's parse_command_line does the rest).
parse_option() {
  case "$1" in
    --token-expiration) EXPIRATION=${2:?--token-expiration needs a value}; SHIFT=2;;
  esac
}
parse_command_line "$@"

# lib.sh's resolve_base, plus the private memcached's pid file
resolve_paths() {
  resolve_base
  MPIDFILE=$BASE/run/memcached.pid
}

print_logs() {
  print_log_tails "$BASE/log/memcached.log" "$BASE/log/uwsgi.log" "$BASE/log/keystone.log" "$BASE/log/provision.log"
}

# ------------------------------------------------------------------------------- stop
# The private memcached's pid, if it is alive (and still a memcached: pids get reused).
memcached_pid() {
  local m
  m=$(cat "$MPIDFILE" 2>/dev/null || true)
  if is_uint "$m" && alive "$m" && ps -o args= -p "$m" 2>/dev/null | grep -q memcached; then echo "$m"; fi
}

# SIGTERM makes memcached exit at its next clock tick (up to ~2 s): stop sends it together
# with uWSGI's (term_memcached) and waits for both.
term_memcached() {
  local m
  m=$(memcached_pid)
  if [ -n "$m" ]; then kill -TERM "$m" 2>/dev/null || true; fi
}

stop_memcached() {
  [ -f "$MPIDFILE" ] || return 0
  local m _i
  m=$(memcached_pid)
  if [ -n "$m" ]; then
    kill -TERM "$m" 2>/dev/null || true
    for _i in $(seq 1 50); do
      alive "$m" || break
      sleep 0.1
    done
    if alive "$m"; then log "memcached $m still alive after 5 s: SIGKILL"; kill -KILL "$m" 2>/dev/null || true; fi
  fi
  rm -f "$MPIDFILE" "$BASE/run/memcached.sock"
}

cmd_stop() {
  resolve_paths
  stop_watcher   # the watcher calls "keystone.sh stop" itself: stop_watcher spares the caller
  stop_uwsgi term_memcached || rm -f "$PIDFILE" "$PGIDFILE"
  stop_memcached
  log "stopped (master ${STOP_PID:-none}, workers:${STOP_KIDS:- none}) in $BASE"
}

# ------------------------------------------------------------------------------ start
# True when a memcached answers "version" at $1 (a unix socket path, or host:port).
memcached_answers() {
  "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import socket, sys
where = sys.argv[1]
if where.startswith("/"):
    s = socket.socket(socket.AF_UNIX)
    addr = where
else:
    host, port = where.rsplit(":", 1)
    s = socket.socket()
    addr = (host, int(port))
s.settimeout(1)
try:
    s.connect(addr)
    s.sendall(b"version\r\n")
    sys.exit(0 if s.recv(64).startswith(b"VERSION ") else 1)
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

# Starts the private memcached and sets MEMCACHE_SERVER (oslo.cache's memcache_servers value).
start_memcached() {
  stop_memcached
  local sock=$BASE/run/memcached.sock user_args=() attempt where m _i
  [ "$(id -u)" = 0 ] && user_args=(-u root)   # memcached refuses to run as root without -u
  for attempt in 1 2 3 4 5; do
    if [ "${#sock}" -le 100 ]; then
      where=$sock
      "${SETSID_CMD[@]}" memcached "${user_args[@]}" -s "$sock" -a 0700 -m 64 -c 1024 \
        < /dev/null >> "$BASE/log/memcached.log" 2>&1 &
    else
      # a unix socket path is limited to ~108 bytes: TCP on a free loopback port instead
      where=127.0.0.1:$(free_port)
      "${SETSID_CMD[@]}" memcached "${user_args[@]}" -l 127.0.0.1 -p "${where##*:}" -U 0 -m 64 -c 1024 \
        < /dev/null >> "$BASE/log/memcached.log" 2>&1 &
    fi
    m=$!
    echo "$m" > "$MPIDFILE"
    for _i in $(seq 1 50); do
      alive "$m" || break
      if memcached_answers "$where"; then
        if [ "${where#/}" != "$where" ]; then MEMCACHE_SERVER=unix:$where; else MEMCACHE_SERVER=$where; fi
        return 0
      fi
      sleep 0.1
    done
    stop_memcached
    log "memcached did not come up at $where (attempt $attempt)"
  done
  print_logs
  die "could not start a private memcached (log: $BASE/log/memcached.log)"
}

write_config() {
  cat > "$BASE/etc/keystone.conf" <<EOF
# written by glance-cache tests/harness/keystone.sh
[DEFAULT]
debug = $DEBUG
log_file = $BASE/log/keystone.log
use_stderr = false

[database]
connection = sqlite:///$BASE/keystone.sqlite

[token]
provider = fernet
expiration = $EXPIRATION

[fernet_tokens]
key_repository = $BASE/fernet-keys/

[fernet_receipts]
key_repository = $BASE/fernet-keys/

[credential]
key_repository = $BASE/credential-keys/

[identity]
# bcrypt's minimum: password authentication takes a few ms instead of ~250 ms
password_hash_rounds = 4

[cache]
# shared by every uWSGI worker: invalidations (token revocation) are seen by all at once
enabled = true
backend = dogpile.cache.pymemcache
memcache_servers = $MEMCACHE_SERVER

[oslo_concurrency]
lock_path = $BASE/run/locks
EOF

  # uWSGI: devstack's Keystone uwsgi settings (module keystone.wsgi.api), bound to 127.0.0.1,
  # daemonized with a pid file so that start returns and stop finds the master.
  write_uwsgi_ini keystone.wsgi.api:application OS_KEYSTONE_CONFIG_DIR
}

# Fernet and credential key repositories as keystone-manage fernet_setup / credential_setup
# leave them: key 0 (staged) and key 1 (primary), each 32 random bytes in URL-safe base64.
write_keys() {
  local repo
  for repo in fernet-keys credential-keys; do
    [ -s "$BASE/$repo/0" ] && [ -s "$BASE/$repo/1" ] && continue
    rm -rf "${BASE:?}/${repo:?}"
    (umask 077 && mkdir -p "$BASE/$repo" && "$VENV/bin/python" -c '
import base64, os, sys
for name in ("0", "1"):
    with open(os.path.join(sys.argv[1], name), "w") as f:
        f.write(base64.urlsafe_b64encode(os.urandom(32)).decode())
' "$BASE/$repo") || die "cannot write keys into $BASE/$repo"
  done
}

KEYSTONE_ADMIN_PASSWORD=glance-cache-admin-secret

# First DB of a DIR: the cached provisioned DB if there is one, else db_sync + bootstrap
# (the REST provisioning follows once Keystone is up). Sets NEED_PROVISION.
prepare_db() {
  NEED_PROVISION=0
  if [ -s "$BASE/keystone.sqlite" ] && [ -s "$BASE/users.json" ]; then return 0; fi
  rm -f "$BASE/keystone.sqlite" "$BASE/users.json"
  if [ -s "$TEMPLATE/keystone.sqlite" ] && [ -s "$TEMPLATE/users.json" ]; then
    cp "$TEMPLATE/keystone.sqlite" "$BASE/keystone.sqlite"
    cp "$TEMPLATE/users.json" "$BASE/users.json"
    return 0
  fi
  local km=("$VENV/bin/keystone-manage" --config-file "$BASE/etc/keystone.conf")
  log "new DB: keystone-manage db_sync + bootstrap (once per venv; later starts copy the result)"
  "${km[@]}" db_sync > "$BASE/log/db_sync.log" 2>&1 \
    || { tail -n 30 "$BASE/log/db_sync.log" >&2; rm -f "$BASE/keystone.sqlite"; die "keystone-manage db_sync failed (log: $BASE/log/db_sync.log)"; }
  "${km[@]}" bootstrap --bootstrap-password "$KEYSTONE_ADMIN_PASSWORD" \
      --bootstrap-username admin --bootstrap-project-name admin --bootstrap-role-name admin \
      --bootstrap-service-name keystone --bootstrap-region-id RegionOne \
      --bootstrap-admin-url "$URL" --bootstrap-internal-url "$URL" --bootstrap-public-url "$URL" \
      > "$BASE/log/bootstrap.log" 2>&1 \
    || { tail -n 30 "$BASE/log/bootstrap.log" >&2; rm -f "$BASE/keystone.sqlite"; die "keystone-manage bootstrap failed (log: $BASE/log/bootstrap.log)"; }
  NEED_PROVISION=1
}

# REST calls against the running Keystone (Python's urllib, no proxy), as admin:
#   provision: projects, users and role assignments (see the header), writes users.json
#   retarget:  points the identity endpoints at this instance's URL, rewrites users.json's url
rest_setup() {
  "$VENV/bin/python" - "$1" "$URL" "$BASE/users.json" "$KEYSTONE_ADMIN_PASSWORD" >> "$BASE/log/provision.log" 2>&1 <<'PY'
import json, os, sys, urllib.error, urllib.request

mode, url, users_path, admin_password = sys.argv[1:5]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(method, path, body=None, token=None, want=(200, 201, 204)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with opener.open(req, timeout=30) as resp:
            status, headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    print(f"{method} {path} -> {status}")
    if status not in want:
        sys.exit(f"{method} {path} answered {status}: {raw[:500]!r}")
    return headers, (json.loads(raw) if raw else {})


def token_for(name, password, project):
    headers, _ = call("POST", "/auth/tokens?nocatalog", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": name, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}})
    return headers["X-Subject-Token"]


admin = token_for("admin", admin_password, "admin")

if mode == "retarget":
    _, services = call("GET", "/services?type=identity", token=admin)
    for service in services["services"]:
        _, endpoints = call("GET", f"/endpoints?service_id={service['id']}", token=admin)
        for ep in endpoints["endpoints"]:
            if ep["url"] != url:
                call("PATCH", f"/endpoints/{ep['id']}", {"endpoint": {"url": url}}, token=admin)
    with open(users_path) as f:
        doc = json.load(f)
    doc["url"] = url
    with open(users_path + ".tmp", "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(users_path + ".tmp", users_path)
    sys.exit(0)


def find(kind, name):
    _, found = call("GET", f"/{kind}?name={name}", token=admin)
    return found[kind][0]["id"] if found[kind] else None


roles = {}
for role in ("admin", "manager", "member", "reader", "service"):
    roles[role] = find("roles", role)
    if roles[role] is None:
        sys.exit(f"bootstrap made no role {role!r}")

projects = {"admin": find("projects", "admin")}
for name, description in (("service", "service users"), ("demo", "demo tenant"), ("alt", "another tenant")):
    projects[name] = find("projects", name) or call("POST", "/projects", {"project": {
        "name": name, "domain_id": "default", "description": description}}, token=admin)[1]["project"]["id"]

users = {"admin": {"name": "admin", "password": admin_password, "user_id": find("users", "admin"),
                   "project_name": "admin", "project_id": projects["admin"], "domain": "default",
                   "roles": ["admin"]}}
for name, project, role in (("glance", "service", "admin"), ("validator", "service", "service"),
                            ("demo", "demo", "member"), ("viewer", "demo", "reader"),
                            ("alt", "alt", "member")):
    password = f"glance-cache-{name}-secret"
    uid = find("users", name) or call("POST", "/users", {"user": {
        "name": name, "domain_id": "default", "password": password,
        "default_project_id": projects[project]}}, token=admin)[1]["user"]["id"]
    call("PUT", f"/projects/{projects[project]}/users/{uid}/roles/{roles[role]}", token=admin)
    users[name] = {"name": name, "password": password, "user_id": uid, "project_name": project,
                   "project_id": projects[project], "domain": "default", "roles": [role]}

# every user really gets a token for its project
for user in users.values():
    token_for(user["name"], user["password"], user["project_name"])

doc = {"url": url, "domain": "default", "region": "RegionOne", "roles": roles,
       "projects": projects, "users": users}
with open(users_path + ".tmp", "w") as f:
    json.dump(doc, f, indent=2)
os.replace(users_path + ".tmp", users_path)
PY
}

# Keeps the provisioned DB for later DIRs (sqlite's online backup: a consistent copy).
save_template() {
  local tmp=$TEMPLATE.tmp.$$
  rm -rf "$tmp"
  mkdir -p "$tmp" || return 0
  if "$VENV/bin/python" -c '
import sqlite3, sys
src = sqlite3.connect(sys.argv[1]); dst = sqlite3.connect(sys.argv[2])
src.backup(dst); dst.close(); src.close()
' "$BASE/keystone.sqlite" "$tmp/keystone.sqlite" 2>/dev/null && cp "$BASE/users.json" "$tmp/users.json"; then
    # another start may have saved one meanwhile: theirs is as good
    mv -T "$tmp" "$TEMPLATE" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}

fail_start() {
  log "$1"
  print_logs
  exit 1   # on_start_exit stops what was started
}

# A start that fails after it began leaves nothing running (memcached, uWSGI).
on_start_exit() {
  local status=$?
  if [ "$status" -ne 0 ]; then cmd_stop >/dev/null 2>&1 || true; fi
  return "$status"
}

cmd_start() {
  check_start_options
  if ! is_uint "$EXPIRATION" || [ "$EXPIRATION" -lt 1 ]; then log "--token-expiration must be seconds >= 1"; exit 2; fi
  { [ -x "$VENV/bin/uwsgi" ] && [ -x "$VENV/bin/keystone-manage" ]; } \
    || die "no Keystone venv at $VENV (set GLANCE_CACHE_KEYSTONE_VENV, or run: bash $(dirname "$SELF")/setup-python.sh --with-keystone)"
  command -v memcached >/dev/null 2>&1 \
    || die "no memcached on PATH (bash $(dirname "$SELF")/setup-python.sh --with-keystone installs it; Debian: apt-get install memcached)"
  command -v curl >/dev/null 2>&1 || die "curl is needed (Debian: apt-get install curl)"
  if [ "$PORT" = 0 ]; then PORT=$(free_port); fi
  resolve_paths
  URL=http://127.0.0.1:$PORT/v3

  check_not_running Keystone
  if [ "$FRESH" = 1 ]; then
    cmd_stop >/dev/null 2>&1 || true   # a memcached left from an earlier start
    rm -rf "$BASE"
  fi
  mkdir -p "$BASE"/{etc,run/locks,log}
  trap on_start_exit EXIT
  local t0; t0=$(date +%s%N)
  start_memcached
  write_config
  write_keys
  prepare_db

  launch_uwsgi || fail_start "uwsgi did not start"
  wait_uwsgi_up "$URL" 200
  if [ "$UP_STATE" = port_in_use ]; then
    log "port 127.0.0.1:$PORT is already in use (uWSGI could not bind)"; exit 3   # on_start_exit stops
  fi
  if [ "$UP_STATE" != up ]; then
    fail_start "Keystone did not come up at $URL (state: $UP_STATE, last GET /v3 status: ${UP_CODE:-none}, workers ready: ${UP_READY:-0}/$WORKERS, timeout ${TIMEOUT}s)"
  fi

  if [ "$NEED_PROVISION" = 1 ]; then
    rest_setup provision || fail_start "provisioning users via the REST API failed (log: $BASE/log/provision.log)"
    save_template
  else
    rest_setup retarget || fail_start "pointing the identity endpoints at $URL failed (log: $BASE/log/provision.log)"
  fi
  if [ -n "$WATCH_PID" ]; then start_watcher 1; fi   # uWSGI died: its memcached goes too
  trap - EXIT
  log "up in $(( ($(date +%s%N) - t0) / 1000000 )) ms: pid=$MASTER_PID workers=$WORKERS token_expiration=${EXPIRATION}s memcached=$MEMCACHE_SERVER base=$BASE"
  echo "$URL"
}

run_command "$CMD"
