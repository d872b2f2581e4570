# Shell functions shared by the scripts that run the project's own container engines
# (docker-engine.sh, podman-engine.sh). Source it after defining ENGINE (its name in messages),
# SOCK, PIDFILE, LOG, DATA_ROOT, HOST_VARIABLE (the variable that points clients at SOCK) and the
# functions log and our_pid (the engine's pid, or nothing) and answers (exit 0 once it answers).

# The pid of the process named $1 whose command line contains $2, else nothing. Found by the
# command line, not a pidfile, so that an engine still starting up is recognised.
pid_by_command_line() {
  local name=$1 needle=$2 pid
  for pid in $(pgrep -x "$name" || true); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$needle"; then
      printf '%s' "$pid"
      return 0
    fi
  done
  return 0
}

# Print the last lines of the engine's log after an error, then exit 1.
fail_with_log() {
  log "error: $*"
  if [[ -f $LOG ]]; then
    log "last lines of $LOG:"
    tail -n 25 "$LOG" | sed 's/^/    /' >&2
  fi
  exit 1
}

# Wait until the engine (pid $1, started by this call when $2 is 1) answers on SOCK; give up after
# START_TIMEOUT seconds, stopping what this call started.
wait_until_it_answers() {
  local pid=$1 launched=$2 timeout_variable=$3
  local deadline=$((SECONDS + START_TIMEOUT))
  until answers; do
    kill -0 "$pid" 2>/dev/null || fail_with_log "$ENGINE (pid $pid) exited during start-up"
    if ((SECONDS >= deadline)); then
      # Leave nothing half-started behind: a later start begins afresh.
      ((launched)) && kill -TERM "$pid" 2>/dev/null
      fail_with_log "$ENGINE did not answer on $SOCK within ${START_TIMEOUT}s ($timeout_variable)"
    fi
    sleep 0.2
  done
}

# Stop the engine this script started: TERM, then KILL after 30 s.
engine_stop() {
  local pid
  pid=$(our_pid)
  if [[ -z $pid ]]; then
    rm -f "$PIDFILE"
    log "not running"
    return 0
  fi
  log "stopping $ENGINE (pid $pid)"
  kill -TERM "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "$ENGINE did not stop within 30s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$PIDFILE" "$SOCK"
}

# running, starting or stopped (exit 0, 3, 3); --json for a script.
engine_status() {
  local json=0 pid state key
  [[ ${1:-} == --json ]] && json=1
  pid=$(our_pid)
  if [[ -n $pid ]] && answers; then state=running
  elif [[ -n $pid ]]; then state=starting
  else state=stopped; fi
  if ((json)); then
    key=$(printf '%s' "$HOST_VARIABLE" | tr '[:upper:]' '[:lower:]')
    key=${key#cleanroom_}
    printf '{"state": "%s", "pid": %s, "%s": "unix://%s", "data_root": "%s", "log": "%s"}\n' \
      "$state" "${pid:-null}" "$key" "$SOCK" "$DATA_ROOT" "$LOG"
  else
    printf '%s%s (%s=unix://%s)\n' "$state" "${pid:+, pid $pid}" "$HOST_VARIABLE" "$SOCK"
  fi
  [[ $state == running ]] || exit 3
}
