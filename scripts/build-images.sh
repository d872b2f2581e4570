#!/usr/bin/env bash
# Build the project's container images locally: no registry is ever contacted (never docker pull).
#
#   scripts/build-images.sh [--rebuild] [--rebuild-rootfs] [--base-only] [--json]
#
#   cleanroom/bookworm:latest  Debian bookworm (minbase) with python3: the docker backend's image
#   cleanroom/postgres:15      + the official postgres image's entrypoint contract (docker-images/postgres)
#   cleanroom/redis:7          + the official redis image's entrypoint contract (docker-images/redis)
#   cleanroom/mariadb:10.11    a second rootfs (minbase + mariadb-server) + the official mariadb
#                              image's entrypoint contract (docker-images/mariadb)
#
# Each `debootstrap --variant=minbase` rootfs, from the mirror apt already uses, is cached as
# $CLEANROOM_IMAGE_CACHE/rootfs-bookworm-<inputs hash>.tar (default /var/cache/cleanroom) and
# rebuilt only when missing (or with --rebuild-rootfs). MariaDB has its own rootfs, so that the
# backend's image does not carry it. The base image is `docker import`ed from it;
# postgres and redis add their entrypoint with a Dockerfile that has no RUN step. Every image carries
# the label io.cleanroom.inputs=<hash of what it was built from>: an image whose inputs are unchanged
# is skipped (unless --rebuild), one whose inputs changed is rebuilt. The engine is found through
# DOCKER_HOST (default: the socket of scripts/docker-engine.sh; scripts/podman-engine.sh images points
# it at the Podman service, where the same images serve the podman backend and services provider;
# --base-only builds the backend's image alone). --json prints a summary on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
CACHE_DIR=${CLEANROOM_IMAGE_CACHE:-/var/cache/cleanroom}
# python3 for the backend; postgresql 15 and redis 7 for the services; procps (ps, kill, pgrep) for
# tests and probes. setpriv (util-linux), find and gzip, used by the entrypoints, are in minbase.
PACKAGES=(python3 postgresql-15 postgresql-client-15 redis-server procps)
MARIADB_PACKAGES=(mariadb-server mariadb-client procps)
# Bump when customise_rootfs below changes, so that cached rootfs tarballs are rebuilt.
RECIPE=1
BASE_CHANGES=(
  'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  'WORKDIR /'
  'CMD ["bash"]'
)
export DOCKER_HOST=${DOCKER_HOST:-unix:///run/cleanroom-docker/docker.sock}
export DOCKER_BUILDKIT=0 # the classic builder needs no buildx plugin and no network for COPY-only files

rebuild=0
rebuild_rootfs=0
base_only=0
json=0
for arg in "$@"; do
  case $arg in
    --rebuild) rebuild=1 ;;
    --rebuild-rootfs) rebuild_rootfs=1 rebuild=1 ;;
    --base-only) base_only=1 ;;
    --json) json=1 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) printf 'build-images: unknown argument %s (try --help)\n' "$arg" >&2; exit 2 ;;
  esac
done

progress() { printf '[build-images] %s\n' "$*" >&2; }
die() {
  printf '[build-images] error: %s\n' "$*" >&2
  exit 1
}
sha() { sha256sum | cut -c1-16; }
# shellcheck source=lib/debian.sh
source "$(dirname "$0")/lib/debian.sh"

# --- the rootfs tarball ----------------------------------------------------------------------------
work=
cleanup() { remove_build_dir "$work"; }
trap cleanup EXIT

customise_rootfs() {
  local root=$1
  rm -f "$root/usr/sbin/policy-rc.d"
  # The Debian package creates a cluster "main"; the entrypoint runs its own initdb in $PGDATA.
  rm -rf "$root/etc/postgresql/15/main" "$root/var/lib/postgresql/15"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
  : >"$root/etc/resolv.conf"
  mkdir -p "$root/var/lib/postgresql/data" "$root/run/postgresql" "$root/data" "$root/workspace"
  chroot "$root" chown postgres:postgres /var/lib/postgresql/data /run/postgresql
  chroot "$root" chown redis:redis /data
  chmod 0700 "$root/var/lib/postgresql/data"
  chmod 03775 "$root/run/postgresql"
}

customise_mariadb_rootfs() {
  local root=$1
  rm -f "$root/usr/sbin/policy-rc.d"
  # The package's postinst initialises /var/lib/mysql; the entrypoint runs its own install-db.
  rm -rf "$root"/var/lib/mysql/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc/* "$root"/usr/share/man/*
  : >"$root/etc/resolv.conf"
  mkdir -p "$root/var/lib/mysql" "$root/run/mysqld" "$root/docker-entrypoint-initdb.d"
  chroot "$root" chown mysql:mysql /var/lib/mysql /run/mysqld
  chmod 0777 "$root/run/mysqld"
}

# ensure_rootfs TAR MIRROR CUSTOMISE PACKAGE...
ensure_rootfs() {
  local tar=$1 mirror=$2 customise=$3
  shift 3
  local packages=("$@")
  if [[ -f $tar && $rebuild_rootfs == 0 ]]; then
    return 0
  fi
  command -v debootstrap >/dev/null || die "debootstrap is not installed: run scripts/setup.sh --docker"
  [[ $(id -u) -eq 0 ]] || die "debootstrap needs root: run 'sudo $0'"
  work=$(mktemp -d "$CACHE_DIR/build.XXXXXX")
  local root=$work/root
  mkdir -p "$root/usr/sbin"
  # Keep packages' postinst from starting postgres/redis inside the build chroot.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
  progress "debootstrap --variant=minbase $SUITE from $mirror with ${packages[*]} (about a minute)"
  local include
  include=$(IFS=,; printf '%s' "${packages[*]}")
  if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$root" "$mirror" 2>&1 |
    tee "$work/debootstrap.log" |
    grep --line-buffered -E '^[IEW]: (Retrieving Release|Resolving|Found|Checking component|Installing core|Unpacking the base|Configuring the base|Configuring required|Base system|Failure)|^E:' |
    sed -u 's/^/[build-images]   /' >&2; then
    :
  fi
  stop_chroot_processes "$root"
  if ! grep -q 'Base system installed successfully' "$work/debootstrap.log"; then
    printf '[build-images] last lines of the debootstrap log:\n' >&2
    tail -n 25 "$work/debootstrap.log" | sed 's/^/    /' >&2
    local logcopy=$CACHE_DIR/debootstrap-failed.log
    cp "$work/debootstrap.log" "$logcopy"
    die "debootstrap of $SUITE from $mirror failed (full log: $logcopy)"
  fi
  "$customise" "$root"
  progress "packing the rootfs into $tar"
  tar --numeric-owner -C "$root" -cf "$work/rootfs.tar" .
  mv -f "$work/rootfs.tar" "$tar"
  rm -f "$CACHE_DIR/debootstrap-failed.log"
  cleanup
  work=
}

# --- images ----------------------------------------------------------------------------------------
label_of() {
  docker image inspect --format '{{ index .Config.Labels "io.cleanroom.inputs" }}' "$1" 2>/dev/null || true
}

summary=()
record() { summary+=("{\"image\": \"$1\", \"status\": \"$2\", \"id\": \"$(docker image inspect --format '{{.Id}}' "$1")\"}"); }

# ensure_imported IMAGE TAR ROOTFS_HASH MIRROR CUSTOMISE PACKAGE...: the rootfs imported as IMAGE.
ensure_imported() {
  local image=$1 tar=$2 rootfs_hash=$3 mirror=$4 customise=$5
  shift 5
  local inputs
  inputs=$(printf '%s\n' "$rootfs_hash" "${BASE_CHANGES[@]}" | sha)
  if [[ $rebuild == 0 && $(label_of "$image") == "$inputs" ]]; then
    record "$image" present
    return 0
  fi
  ensure_rootfs "$tar" "$mirror" "$customise" "$@"
  progress "docker import $tar -> $image"
  local changes=() c
  for c in "${BASE_CHANGES[@]}"; do changes+=(--change "$c"); done
  docker import "${changes[@]}" --change "LABEL io.cleanroom.inputs=$inputs" \
    --message "debootstrap --variant=minbase $SUITE: $*" "$tar" "$image" >/dev/null
  record "$image" built
}

ensure_base() {
  local rootfs_hash=$1 mirror=$2 tar=$3
  ensure_imported cleanroom/bookworm:latest "$tar" "$rootfs_hash" "$mirror" customise_rootfs "${PACKAGES[@]}"
}

# MariaDB's own rootfs, imported as cleanroom/mariadb-rootfs:bookworm (the base of its image).
ensure_mariadb_base() {
  local mirror=$1 rootfs_hash
  rootfs_hash=$(printf '%s\n' "$SUITE" minbase "$mirror" "$RECIPE" mariadb "${MARIADB_PACKAGES[@]}" | sha)
  ensure_imported cleanroom/mariadb-rootfs:bookworm "$CACHE_DIR/rootfs-$SUITE-mariadb-$rootfs_hash.tar" \
    "$rootfs_hash" "$mirror" customise_mariadb_rootfs "${MARIADB_PACKAGES[@]}"
}

# ensure_derived IMAGE CONTEXT [BASE]
ensure_derived() {
  local image=$1 context=$2 base=${3:-cleanroom/bookworm:latest} base_id inputs
  base_id=$(docker image inspect --format '{{.Id}}' "$base")
  inputs=$( (printf '%s\n' "$base_id"; cat "$context"/*) | sha)
  if [[ $rebuild == 0 && $(label_of "$image") == "$inputs" ]]; then
    record "$image" present
    return 0
  fi
  progress "docker build $context -> $image"
  local out
  if ! out=$(docker build --pull=false --build-arg "BASE=$base" --label "io.cleanroom.inputs=$inputs" -t "$image" "$context" 2>&1); then
    printf '%s\n' "$out" | tail -n 20 | sed 's/^/    /' >&2
    die "docker build of $image failed"
  fi
  record "$image" built
}

main() {
  docker version >/dev/null 2>&1 ||
    die "no Docker engine answers at $DOCKER_HOST: run scripts/docker-engine.sh start" \
      "and eval \"\$(scripts/docker-engine.sh env)\""
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/.build.lock"
  if ! flock -n 9; then
    progress "another build-images.sh is running; waiting for it"
    flock 9
  fi
  local mirror rootfs_hash tar
  mirror=$(apt_mirror)
  rootfs_hash=$(printf '%s\n' "$SUITE" minbase "$mirror" "$RECIPE" "${PACKAGES[@]}" | sha)
  tar=$CACHE_DIR/rootfs-$SUITE-$rootfs_hash.tar
  ensure_base "$rootfs_hash" "$mirror" "$tar"
  if ((!base_only)); then
    ensure_derived cleanroom/postgres:15 docker-images/postgres
    ensure_derived cleanroom/redis:7 docker-images/redis
    ensure_mariadb_base "$mirror"
    ensure_derived cleanroom/mariadb:10.11 docker-images/mariadb cleanroom/mariadb-rootfs:bookworm
  fi
  # Images replaced by a rebuild are left untagged: remove ours.
  docker image prune -f --filter label=io.cleanroom.inputs >/dev/null
  if ((json)); then
    local IFS=,
    printf '{"images": [%s], "rootfs": "%s"}\n' "${summary[*]}" "$tar"
  fi
  local built
  built=$(printf '%s\n' "${summary[@]}" | grep -c '"built"' || true)
  ((built == 0)) || progress "done: $built image(s) built"
}

main
