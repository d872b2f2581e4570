#!/usr/bin/env bash
# The project's own Podman engine: Debian's podman serving its Docker-compatible API on a socket.
#
#   scripts/podman-engine.sh start           install podman if missing, start the API service (or reuse it)
#   scripts/podman-engine.sh stop            stop the service this script started
#   scripts/podman-engine.sh status [--json] running or not (exit 0 / 3)
#   scripts/podman-engine.sh env             prints: export CLEANROOM_PODMAN_HOST=unix://...
#   scripts/podman-engine.sh images          build the project's images on this engine (scripts/build-images.sh):
#                                            the podman backend's and the podman services provider's
#
# `podman system service --time=0` runs as root with its own storage (--root, --runroot), the
# cgroupfs cgroup manager and file events (no systemd or journald needed), detached, logging to a
# file. The podman backend of pytest-cleanroom finds the socket through CLEANROOM_PODMAN_HOST,
# else at this script's default place. Overrides: CLEANROOM_PODMAN_RUN_DIR,
# CLEANROOM_PODMAN_DATA_ROOT, CLEANROOM_PODMAN_START_TIMEOUT (seconds, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=${CLEANROOM_PODMAN_RUN_DIR:-/run/cleanroom-podman}
DATA_ROOT=${CLEANROOM_PODMAN_DATA_ROOT:-/var/lib/cleanroom-podman}
START_TIMEOUT=${CLEANROOM_PODMAN_START_TIMEOUT:-60}
SOCK=$RUN_DIR/podman.sock
PIDFILE=$RUN_DIR/service.pid
CONFIG=$RUN_DIR/containers.conf
LOG=$DATA_ROOT/service.log
# Debian's podman recommends most of these; without them `--init` and rootless networking fail.
PACKAGES=(podman runc catatonit uidmap slirp4netns fuse-overlayfs)

log() { printf '[podman-engine] %s\n' "$*" >&2; }
die() {
  printf '[podman-engine] error: %s\n' "$*" >&2
  exit 1
}

ENGINE="the podman service"
HOST_VARIABLE=CLEANROOM_PODMAN_HOST
# shellcheck source=lib/engine.sh
source scripts/lib/engine.sh

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

podman_cmd() {
  CONTAINERS_CONF=$CONFIG podman --root "$DATA_ROOT/storage" --runroot "$RUN_DIR/storage" --tmpdir "$RUN_DIR/tmp" \
    --cgroup-manager=cgroupfs --events-backend=file "$@"
}

# The pid of the service on our socket, else nothing.
our_pid() {
  pid_by_command_line podman "system service --time=0 unix://$SOCK"
}

answers() {
  [[ -S $SOCK ]] && timeout 10 curl -fsS --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1
}

ensure_installed() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) -eq 0 ]] || die "${missing[*]} not installed and this is not root: run 'sudo $0 start'"
  log "installing Debian's ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
}

# Our own containers.conf (CONTAINERS_CONF replaces every other), so that a host's cannot change the
# engine: catatonit as the init process, runc as the runtime (crun refuses hosts with both cgroup
# v1 hierarchies and a cgroup2 one), cgroupfs and file events (no systemd, no journald). The
# backend gives each container the service's own open-file and process limits.
write_config() {
  {
    printf '[containers]\ninit_path = "%s"\n' "$(command -v catatonit)"
    printf '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
  } >"$CONFIG"
}

cmd_start() {
  ensure_installed
  [[ $(id -u) -eq 0 ]] || die "the rootful podman service must be started as root: run 'sudo $0 start'"
  local pid launched=0
  pid=$(our_pid)
  if [[ -n $pid ]] && answers; then
    return 0 # already running: stay quiet
  fi
  mkdir -p "$RUN_DIR/tmp" "$DATA_ROOT"
  if [[ -z $pid ]]; then
    rm -f "$PIDFILE" "$SOCK"
    write_config
    log "starting podman system service (socket $SOCK, storage $DATA_ROOT, log $LOG)"
    printf '\n===== %s podman service start =====\n' "$(date -u +%FT%TZ)" >>"$LOG"
    # From /: the service outlives the checkout that started it, and fails once its working
    # directory is removed (getwd: no such file or directory).
    env -C / CONTAINERS_CONF="$CONFIG" setsid nohup podman --root "$DATA_ROOT/storage" --runroot "$RUN_DIR/storage" \
      --tmpdir "$RUN_DIR/tmp" --cgroup-manager=cgroupfs --events-backend=file \
      system service --time=0 "unix://$SOCK" </dev/null >>"$LOG" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$PIDFILE"
    launched=1
  else
    log "the podman service (pid $pid) is running but not answering yet; waiting"
  fi
  wait_until_it_answers "$pid" "$launched" CLEANROOM_PODMAN_START_TIMEOUT
  log "engine ready: podman $(podman_cmd version --format '{{.Server.Version}}' 2>/dev/null || podman --version)"
}

cmd_images() {
  answers || die "no podman service answers on $SOCK: run $0 start"
  DOCKER_HOST="unix://$SOCK" scripts/build-images.sh "$@"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) engine_stop ;;
  status) engine_status "${2:-}" ;;
  env) printf 'export CLEANROOM_PODMAN_HOST=unix://%s\n' "$SOCK" ;;
  images) shift; cmd_images "$@" ;;
  *) usage ;;
esac
