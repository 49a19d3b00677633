# shellcheck shell=bash
# Shared shell of the uWSGI service harnesses (tests/harness/glance.sh, tests/harness/keystone.sh):
# logging, usage text, port picking, the pid/process-group bookkeeping of a daemonized uWSGI,
# waiting for it to come up, stopping it, and the watcher that stops it when its owner exits.
#
# Sourced, not run. Before sourcing, the harness sets:
#   SELF          absolute path of the harness script (the watcher runs "bash $SELF stop")
#   HARNESS       its name in messages ("glance.sh")
#   VENV          the service's venv (its python picks ports)
# before calling parse_command_line, a function parse_option for its own options (see there);
# and before calling resolve_base:
#   SERVICE       short name: default state dir ${TMPDIR:-/tmp}/glance-cache-SERVICE-PORT,
#                 watcher process "SERVICE-watch" (glance, keystone)
#   PIDNAME       run/PIDNAME.pid and run/PIDNAME.pgid of the uWSGI master (glance-api, keystone)
# Globals it reads: PORT, BASE, WORKERS, TIMEOUT, WATCH_PID, PURGE.
# Globals it sets: CMD and the common options (parse_command_line);
#   PIDFILE, PGIDFILE, WATCHFILE (resolve_base); MASTER_PID (record_pid);
#   UP_STATE, UP_CODE, UP_READY (wait_uwsgi_up); STOP_PID, STOP_KIDS (stop_uwsgi).

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }
log() { echo "$HARNESS: $*" >&2; }
die() { echo "$HARNESS: ERROR: $*" >&2; exit 1; }

is_uint() { case "$1" in ''|*[!0-9]*) return 1;; *) return 0;; esac; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# setsid when there is one: detached processes get their own session
SETSID_CMD=()
if command -v setsid >/dev/null 2>&1; then SETSID_CMD=(setsid); fi

# parse_command_line ARG...: CMD (the first ARG; usage and exit 2 without one), then the options
# every harness takes: --port PORT, --base DIR, --workers N (default 2), --debug (DEBUG=True,
# default False), --fresh (FRESH=1), --watch-pid PID, --purge-with-owner (PURGE=1), --timeout S
# (default 120), -h/--help. Any other option goes to the harness's parse_option OPTION [VALUE],
# which sets its variable and SHIFT to the number of words it took; SHIFT left at 0: unknown
# option, usage and exit 2.
# shellcheck disable=SC2034  # DEBUG and FRESH are read by the harness, not here
parse_command_line() {
  CMD=${1:-}
  [ -n "$CMD" ] || { usage >&2; exit 2; }
  shift
  PORT=""; BASE=""; WORKERS=2; DEBUG=False; FRESH=0; WATCH_PID=""; TIMEOUT=120; PURGE=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --port) PORT=${2:?--port needs a value}; shift 2;;
      --base) BASE=${2:?--base needs a value}; shift 2;;
      --workers) WORKERS=${2:?--workers needs a value}; shift 2;;
      --debug) DEBUG=True; shift;;
      --fresh) FRESH=1; shift;;
      --watch-pid) WATCH_PID=${2:?--watch-pid needs a value}; shift 2;;
      --timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2;;
      --purge-with-owner) PURGE=1; shift;;
      -h|--help) usage; exit 0;;
      *)
        SHIFT=0
        parse_option "$@"
        [ "$SHIFT" -gt 0 ] || { log "unknown option '$1'"; usage >&2; exit 2; }
        shift "$SHIFT";;
    esac
  done
}

# The options every start takes (exit 2 on a bad one).
check_start_options() {
  [ -n "$PORT" ] || { log "start needs --port PORT (0 = any free port)"; exit 2; }
  is_uint "$PORT" || { log "--port must be a number, not '$PORT'"; exit 2; }
  if ! is_uint "$WORKERS" || [ "$WORKERS" -lt 1 ]; then log "--workers must be >= 1"; exit 2; fi
  is_uint "$TIMEOUT" || { log "--timeout must be seconds"; exit 2; }
}

resolve_base() {
  if [ -z "$BASE" ]; then
    [ -n "$PORT" ] || { log "give --base DIR or --port PORT"; exit 2; }
    BASE=${TMPDIR:-/tmp}/glance-cache-$SERVICE-$PORT
  fi
  PIDFILE=$BASE/run/$PIDNAME.pid
  PGIDFILE=$BASE/run/$PIDNAME.pgid
  WATCHFILE=$BASE/run/watch.pid
}

# print_log_tails FILE...: the last 40 lines of each non-empty FILE, on stderr.
print_log_tails() {
  local f
  for f in "$@"; do
    if [ -s "$f" ]; then
      echo "---- last 40 lines of $f ----" >&2
      tail -n 40 "$f" >&2 || true
    fi
  done
  echo "---- end of logs ----" >&2
}

# ------------------------------------------------------------------------------- ports
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

# ------------------------------------------------------------------------------- start
# check_not_running NAME: dies when a NAME (the service) already runs in BASE; exits 3 when
# 127.0.0.1:PORT is taken.
check_not_running() {
  if [ -f "$PIDFILE" ] && alive "$(cat "$PIDFILE" 2>/dev/null || true)"; then
    die "a $1 is already running in $BASE (pid $(cat "$PIDFILE")); stop it first"
  fi
  if port_in_use "$PORT"; then log "port 127.0.0.1:$PORT is already in use"; exit 3; fi
}

# write_uwsgi_ini MODULE CONFIG_VAR [EXTRA]: $BASE/etc/uwsgi.ini serving the WSGI application
# MODULE (lazy-apps: each worker loads it) on 127.0.0.1:PORT with WORKERS processes, the
# service finding its configuration in $BASE/etc through the environment variable CONFIG_VAR;
# daemonized with pid file PIDFILE (so that start returns and stop finds the master). EXTRA:
# more lines, written after buffer-size.
write_uwsgi_ini() {
  cat > "$BASE/etc/uwsgi.ini" <<EOF
[uwsgi]
socket-timeout = 10
http-auto-chunked = true
http-chunked-input = true
http-raw-body = true
lazy-apps = true
add-header = Connection: close
buffer-size = 65535
${3:+$3
}thunder-lock = true
enable-threads = true
exit-on-reload = true
die-on-term = true
master = true
processes = $WORKERS
http-socket = 127.0.0.1:$PORT
module = $1
virtualenv = $VENV
env = $2=$BASE/etc
pidfile = $PIDFILE
daemonize = $BASE/log/uwsgi.log
procname-prefix-spaced = glance-cache-test-$SERVICE-$PORT
EOF
}

# Starts uWSGI daemonized from $BASE/etc/uwsgi.ini (its pidfile is $PIDFILE, its log
# $BASE/log/uwsgi.log; the previous log is kept as uwsgi.log.prev). Fails when uwsgi does.
launch_uwsgi() {
  rm -f "$PIDFILE" "$PGIDFILE"
  if [ -f "$BASE/log/uwsgi.log" ]; then mv "$BASE/log/uwsgi.log" "$BASE/log/uwsgi.log.prev"; fi
  "$VENV/bin/uwsgi" --ini "$BASE/etc/uwsgi.ini" < /dev/null >&2
}

# Reads the master's pid into MASTER_PID and records its process group (uWSGI's daemonize
# made a new session).
record_pid() {
  MASTER_PID=$(cat "$PIDFILE" 2>/dev/null || true)
  is_uint "$MASTER_PID" || { MASTER_PID=""; return 0; }
  local g; g=$(ps -o pgid= -p "$MASTER_PID" 2>/dev/null | tr -d ' ' || true)
  if is_uint "$g"; then echo "$g" > "$PGIDFILE"; fi
}

# wait_uwsgi_up URL "CODES": waits (bounded by TIMEOUT) for the pid file, then URL answering
# one of the space-separated HTTP CODES, then every worker having loaded the app (lazy-apps:
# each worker imports the service itself). Sets UP_STATE: up, port_in_use (uWSGI could not
# bind), master_died, no_app, or the state it was in when time ran out (wait_pid, wait_http,
# wait_workers); UP_CODE: the last status of URL; UP_READY: workers ready. When not up, it
# still waits a little for the pid file, so that a stop finds everything.
wait_uwsgi_up() {
  local url=$1 codes=" $2 " deadline=$(( $(date +%s) + TIMEOUT )) _i
  MASTER_PID=""; UP_CODE=""; UP_READY=0; UP_STATE=wait_pid
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if [ -z "$MASTER_PID" ] && [ -s "$PIDFILE" ]; then record_pid; fi
    if grep -q 'Address already in use' "$BASE/log/uwsgi.log" 2>/dev/null; then UP_STATE=port_in_use; return 0; fi
    if [ -n "$MASTER_PID" ] && ! alive "$MASTER_PID"; then UP_STATE=master_died; break; fi
    if grep -q 'no app loaded' "$BASE/log/uwsgi.log" 2>/dev/null; then UP_STATE=no_app; break; fi
    if [ -n "$MASTER_PID" ]; then
      if [ "$UP_STATE" = wait_pid ]; then UP_STATE=wait_http; fi
      if [ "$UP_STATE" = wait_http ]; then
        UP_CODE=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        case "$codes" in *" $UP_CODE "*) UP_STATE=wait_workers;; esac
      fi
      if [ "$UP_STATE" = wait_workers ]; then
        UP_READY=$(grep -c 'WSGI app 0 (mountpoint=.*) ready' "$BASE/log/uwsgi.log" 2>/dev/null || true)
        if [ "${UP_READY:-0}" -ge "$WORKERS" ]; then UP_STATE=up; return 0; fi
      fi
    fi
    sleep 0.2
  done
  for _i in $(seq 1 50); do
    [ -n "$MASTER_PID" ] && break
    if [ -s "$PIDFILE" ]; then record_pid; break; fi
    sleep 0.2
  done
}

# start_watcher STOP_WHEN_MASTER_DIES: a detached process that runs "$SELF stop --base $BASE"
# when process WATCH_PID exits (and then deletes BASE with PURGE=1). When the uWSGI master
# dies first, the watcher runs stop too if STOP_WHEN_MASTER_DIES is 1 (to stop what the
# service had next to it), else just exits. Checks once a second, at most 24 h.
start_watcher() {
  is_uint "$WATCH_PID" || { log "--watch-pid needs a pid, not '$WATCH_PID'"; exit 2; }
  local master; master=$(cat "$PIDFILE")
  # Detached (own session, no inherited stdio) so that it outlives a Ctrl-C of the test run
  # and never holds the caller's stdout/stderr pipes open.
  # shellcheck disable=SC2016  # the script's variables expand in the watcher, not here
  "${SETSID_CMD[@]}" bash -c '
    owner=$1; master=$2; self=$3; base=$4; purge=$5; stop_on_master_exit=$6; name=$7
    for _ in $(seq 1 86400); do
      if ! kill -0 "$master" 2>/dev/null; then
        if [ "$stop_on_master_exit" = 1 ]; then bash "$self" stop --base "$base"; fi
        exit 0
      fi
      if ! kill -0 "$owner" 2>/dev/null; then
        echo "owner $owner gone: stopping $name"
        bash "$self" stop --base "$base"
        if [ "$purge" = 1 ]; then rm -rf "$base"; fi
        exit 0
      fi
      sleep 1
    done
    bash "$self" stop --base "$base"
  ' "$SERVICE-watch" "$WATCH_PID" "$master" "$SELF" "$BASE" "$PURGE" "$1" "$SERVICE" \
    </dev/null >> "$BASE/log/watch.log" 2>&1 &
  echo $! > "$WATCHFILE"
}

# -------------------------------------------------------------------------------- stop
# Stops the watcher recorded in WATCHFILE (unless it is the caller: the watcher runs stop).
stop_watcher() {
  if [ -f "$WATCHFILE" ]; then
    local w; w=$(cat "$WATCHFILE" 2>/dev/null || true)
    if is_uint "$w" && [ "$w" != "$$" ] && [ "$w" != "$PPID" ] && alive "$w"; then kill -TERM "$w" 2>/dev/null || true; fi
    rm -f "$WATCHFILE"
  fi
}

# stop_uwsgi [AFTER_TERM]: SIGTERM to the uWSGI master (die-on-term: graceful), runs the
# function AFTER_TERM if given (to stop something else meanwhile), waits up to 30 s, then
# SIGKILLs the master and the workers it had, if still alive; then SIGKILLs what is left of
# the process group recorded at start (never our own). Removes PIDFILE and PGIDFILE. Sets
# STOP_PID (the pid file's content) and STOP_KIDS (the workers). Returns 1, doing nothing,
# when there is neither a live master nor a recorded process group.
stop_uwsgi() {
  local pgid="" k _i
  STOP_PID=$(cat "$PIDFILE" 2>/dev/null || true)
  STOP_KIDS=""
  pgid=$(cat "$PGIDFILE" 2>/dev/null || true)
  if is_uint "$STOP_PID" && alive "$STOP_PID"; then
    STOP_KIDS=$(ps -o pid= --ppid "$STOP_PID" 2>/dev/null | tr -s ' \n' ' ' || true)
    kill -TERM "$STOP_PID" 2>/dev/null || true
    if [ -n "${1:-}" ]; then "$1"; fi
    for _i in $(seq 1 300); do
      alive "$STOP_PID" || break
      sleep 0.1
    done
    if alive "$STOP_PID"; then log "uWSGI master $STOP_PID still alive after 30 s: SIGKILL"; kill -KILL "$STOP_PID" 2>/dev/null || true; fi
    for k in $STOP_KIDS; do
      if alive "$k"; then kill -KILL "$k" 2>/dev/null || true; fi
    done
  elif [ -z "$pgid" ]; then
    return 1
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
}

cmd_status() {
  resolve_base
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if is_uint "$pid" && alive "$pid"; then echo "running pid=$pid base=$BASE"; else echo "stopped base=$BASE"; return 1; fi
}

# run_command CMD: start, stop or status (the harness defines cmd_start and cmd_stop).
run_command() {
  case "$1" in
    start) cmd_start;;
    stop) cmd_stop;;
    status) cmd_status;;
    -h|--help|help) usage;;
    *) log "unknown command '$1'"; usage >&2; exit 2;;
  esac
}
