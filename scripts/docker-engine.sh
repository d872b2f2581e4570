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

ENGINE="dockerd"
HOST_VARIABLE=DOCKER_HOST
# shellcheck source=lib/engine.sh
source "$(dirname "$0")/lib/engine.sh"

usage() {
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# The pid of the dockerd serving our socket, else nothing.
our_pid() {
  pid_by_command_line dockerd "-H unix://$SOCK "
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
    # From /: the engine outlives the checkout that started it.
    env -C / setsid nohup dockerd \
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
  wait_until_it_answers "$pid" "$launched" CLEANROOM_DOCKER_START_TIMEOUT
  log "engine ready: $(docker -H "unix://$SOCK" version --format 'server {{.Server.Version}}')"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) engine_stop ;;
  status) engine_status "${2:-}" ;;
  env) printf 'export DOCKER_HOST=unix://%s\n' "$SOCK" ;;
  *) usage ;;
esac
