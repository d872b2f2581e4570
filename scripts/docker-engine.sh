#!/usr/bin/env bash
# The project's own Docker engine: Debian's docker.io, started as root on a private socket.
#
#   scripts/docker-engine.sh start           install docker.io if missing, start dockerd (or reuse it)
#   scripts/docker-engine.sh stop            stop the engine this script started
#   scripts/docker-engine.sh status [--json] running or not (exit 0 / 3)
#   scripts/docker-engine.sh env             prints: export DOCKER_HOST=unix://...
#
# dockerd runs with --iptables=false --ip6tables=false --storage-driver=overlay2, its own data root
# (a persistent image cache), exec root, pidfile and socket, detached, logging to a file. Ports are
# published through docker-proxy (the userland proxy), so `-p 127.0.0.1:PORT:PORT` works without
# iptables. Overrides: CLEANROOM_DOCKER_RUN_DIR, CLEANROOM_DOCKER_DATA_ROOT,
# CLEANROOM_DOCKER_START_TIMEOUT (seconds, default 60).
set -euo pipefail

RUN_DIR=${CLEANROOM_DOCKER_RUN_DIR:-/run/cleanroom-docker}
DATA_ROOT=${CLEANROOM_DOCKER_DATA_ROOT:-/var/lib/cleanroom-docker}
START_TIMEOUT=${CLEANROOM_DOCKER_START_TIMEOUT:-60}
SOCK=$RUN_DIR/docker.sock
PIDFILE=$RUN_DIR/dockerd.pid
EXEC_ROOT=$RUN_DIR/exec
CONFIG=$RUN_DIR/daemon.json
LOG=$DATA_ROOT/dockerd.log

log() { printf '[docker-engine] %s\n' "$*" >&2; }
die() {
  printf '[docker-engine] error: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# The pid of the dockerd serving our socket (found by its command line, so that an engine still
# starting up, before it writes its pidfile, is recognised), else nothing.
our_pid() {
  local pid
  for pid in $(pgrep -x dockerd || true); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-H unix://$SOCK "; then
      printf '%s' "$pid"
      return 0
    fi
  done
  return 0
}

answers() {
  [[ -S $SOCK ]] && timeout 10 docker -H "unix://$SOCK" version --format '{{.Server.Version}}' \
    >/dev/null 2>&1
}

# Other dockerd processes would fight with ours over the docker0 bridge and its addresses.
foreign_dockerds() {
  local mine=$1 pid
  for pid in $(pgrep -x dockerd || true); do
    [[ $pid == "$mine" ]] || printf '%s ' "$pid"
  done
}

ensure_installed() {
  command -v dockerd >/dev/null && command -v docker >/dev/null && return 0
  [[ $(id -u) -eq 0 ]] || die "docker.io is not installed and this is not root: run 'sudo $0 start'"
  log "installing Debian's docker.io (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the package's postinst from starting a system-wide dockerd next to ours.
  local made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  apt-get update -qq && apt-get install -y -qq --no-install-recommends docker.io >/dev/null ||
    { ((made_policy)) && rm -f /usr/sbin/policy-rc.d; die "apt-get install docker.io failed"; }
  ((made_policy)) && rm -f /usr/sbin/policy-rc.d
  command -v dockerd >/dev/null || die "docker.io installed but dockerd is not on PATH"
}

fail_with_log() {
  printf '[docker-engine] error: %s\n' "$*" >&2
  if [[ -f $LOG ]]; then
    printf '[docker-engine] last lines of %s:\n' "$LOG" >&2
    tail -n 25 "$LOG" | sed 's/^/    /' >&2
  fi
  exit 1
}

cmd_start() {
  ensure_installed
  [[ $(id -u) -eq 0 ]] || die "dockerd must be started as root: run 'sudo $0 start'"
  local pid
  pid=$(our_pid)
  if [[ -n $pid ]] && answers; then
    return 0 # already running: stay quiet
  fi
  local others launched=0
  others=$(foreign_dockerds "$pid")
  if [[ -n $others ]]; then
    die "another dockerd is running (pid ${others% }: $(tr '\0' ' ' </proc/${others%% *}/cmdline))," \
      "it would fight with ours over the docker0 bridge; stop it first (kill ${others% })"
  fi
  mkdir -p "$RUN_DIR" "$EXEC_ROOT" "$DATA_ROOT"
  if [[ -z $pid ]]; then
    rm -f "$PIDFILE" "$SOCK"
    # Our own (empty) config file, so that a host /etc/docker/daemon.json cannot change the engine.
    printf '{}\n' >"$CONFIG"
    log "starting dockerd (socket $SOCK, data root $DATA_ROOT, log $LOG)"
    printf '\n===== %s dockerd start =====\n' "$(date -u +%FT%TZ)" >>"$LOG"
    setsid nohup dockerd \
      --config-file "$CONFIG" \
      --iptables=false --ip6tables=false \
      --storage-driver=overlay2 \
      --data-root "$DATA_ROOT" \
      --exec-root "$EXEC_ROOT" \
      --pidfile "$PIDFILE" \
      -H "unix://$SOCK" \
      </dev/null >>"$LOG" 2>&1 &
    pid=$!
    launched=1
  else
    log "dockerd (pid $pid) is running but not answering yet; waiting"
  fi
  local deadline=$((SECONDS + START_TIMEOUT))
  until answers; do
    kill -0 "$pid" 2>/dev/null || fail_with_log "dockerd (pid $pid) exited during start-up"
    if ((SECONDS >= deadline)); then
      # Leave nothing half-started behind: a later start begins afresh.
      ((launched)) && kill -TERM "$pid" 2>/dev/null
      fail_with_log "dockerd did not answer on $SOCK within ${START_TIMEOUT}s" \
        "(CLEANROOM_DOCKER_START_TIMEOUT)"
    fi
    sleep 0.2
  done
  log "engine ready: $(docker -H "unix://$SOCK" version --format 'server {{.Server.Version}}')"
}

cmd_stop() {
  local pid
  pid=$(our_pid)
  if [[ -z $pid ]]; then
    rm -f "$PIDFILE"
    log "not running"
    return 0
  fi
  log "stopping dockerd (pid $pid)"
  kill -TERM "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "dockerd did not stop within 30s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$PIDFILE" "$SOCK"
}

cmd_status() {
  local json=0 pid state
  [[ ${1:-} == --json ]] && json=1
  pid=$(our_pid)
  if [[ -n $pid ]] && answers; then state=running
  elif [[ -n $pid ]]; then state=starting
  else state=stopped; fi
  if ((json)); then
    printf '{"state": "%s", "pid": %s, "docker_host": "unix://%s", "data_root": "%s", "log": "%s"}\n' \
      "$state" "${pid:-null}" "$SOCK" "$DATA_ROOT" "$LOG"
  else
    printf '%s%s (DOCKER_HOST=unix://%s)\n' "$state" "${pid:+, pid $pid}" "$SOCK"
  fi
  [[ $state == running ]] || exit 3
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status "${2:-}" ;;
  env) printf 'export DOCKER_HOST=unix://%s\n' "$SOCK" ;;
  *) usage ;;
esac
