#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian machine for pytest-cleanroom.
#   scripts/setup.sh            system packages for the embedded default + .venv with the project
#   scripts/setup.sh --docker   also Debian's docker.io, podman and debootstrap (container backends
#                               and the container provider)
#   scripts/setup.sh --vm       also qemu and debootstrap (for scripts/test-vm.sh); flags combine
# Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_docker=0 want_vm=0
for arg in "$@"; do
  case $arg in
    --docker) want_docker=1 ;;
    --vm) want_vm=1 ;;
    *) printf '[setup] unknown argument %s (--docker, --vm)\n' "$arg" >&2; exit 2 ;;
  esac
done

log() { printf '[setup] %s\n' "$*" >&2; }

# --- system packages -------------------------------------------------------
pkgs=(bubblewrap util-linux postgresql redis-server mariadb-server git make procps iproute2 gcc
  dbus-daemon dbus-bin)
# Node.js and npm (the remote cache server's runtime): Debian's packages, unless a node with its
# own npm is installed already (NodeSource's nodejs bundles npm and conflicts with Debian's npm).
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
((want_docker)) && pkgs+=(docker.io debootstrap podman runc catatonit uidmap slirp4netns fuse-overlayfs)
((want_vm)) && pkgs+=(qemu-system-x86 qemu-utils e2fsprogs debootstrap)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # policy-rc.d keeps Debian's postinst from starting system-wide redis/postgres/docker services:
  # the project starts its own, on its own ports and sockets.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- python environment ----------------------------------------------------
py=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv with $($py --version)"
  $py -m venv .venv
fi
stamp=.venv/.cleanroom-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  log "installing the project and its dev dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
# --- npm: the Turborepo remote cache server the lifecycle's remote-cache tests start -----------
scripts/turbo-tools.sh server >/dev/null
scripts/turbo-tools.sh node >/dev/null

# pytest-asyncio for the services' driver tests, outside the environment's path (they put it on
# PYTHONPATH for their own runs): loaded into every run, it would print a warning in each one.
asyncio_dir=.venv/opt/pytest-asyncio
if [[ ! -d $asyncio_dir/pytest_asyncio ]]; then
  log "installing pytest-asyncio into $asyncio_dir"
  .venv/bin/python -m pip install -q --no-deps --target "$asyncio_dir" 'pytest-asyncio>=0.23'
fi
# pytest-django for the Django tests, apart for the same reason (and its fixtures run in every test).
django_dir=.venv/opt/pytest-django
if [[ ! -d $django_dir/pytest_django ]]; then
  log "installing pytest-django into $django_dir"
  .venv/bin/python -m pip install -q --no-deps --target "$django_dir" 'pytest-django>=4.8'
fi
# A second PostgreSQL major beside Debian's 15 (bookworm ships only 15): the pgserver wheel carries
# PostgreSQL 16's server, found by the process provider (ini cleanroom_postgres_version = 16).
# Optional: the tests of several majors need it; the plugin never imports it.
if ! .venv/bin/python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("pgserver") is None)'; then
  log "installing pgserver (PostgreSQL 16 binaries) into .venv"
  .venv/bin/python -m pip install -q 'pgserver==0.1.4'
fi
log "ready: $(.venv/bin/python --version), bwrap $(bwrap --version 2>/dev/null | awk '{print $2}')"
