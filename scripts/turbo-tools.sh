#!/usr/bin/env bash
# The npm packages that the remote-cache tests and benchmark use, installed once per machine
# into a cache directory (default /var/cache/cleanroom/npm, or $CLEANROOM_NPM_CACHE):
#   scripts/turbo-tools.sh server   install turborepo-remote-cache; print the path of its cli.js
#   scripts/turbo-tools.sh turbo    install turbo (for the benchmark only); print its binary
# Idempotent: a version already installed is not installed again. Needs node and npm (Debian's
# nodejs and npm packages, which scripts/setup.sh installs).
set -euo pipefail

SERVER_VERSION=2.12.0
TURBO_VERSION=2.5.0
CACHE_DIR=${CLEANROOM_NPM_CACHE:-/var/cache/cleanroom/npm}

install() {  # package version -> prints the install prefix
  local package=$1 version=$2
  local prefix="$CACHE_DIR/$package-$version"
  if [[ ! -f "$prefix/.installed" ]]; then
    mkdir -p "$CACHE_DIR"
    local staging
    staging=$(mktemp -d "$CACHE_DIR/.staging-XXXXXX")
    printf '[turbo-tools] installing %s@%s into %s\n' "$package" "$version" "$prefix" >&2
    npm install --silent --no-audit --no-fund --prefix "$staging" "$package@$version" >&2
    touch "$staging/.installed"
    rm -rf "$prefix"
    mv "$staging" "$prefix"
  fi
  printf '%s\n' "$prefix"
}

case "${1:-}" in
  server) echo "$(install turborepo-remote-cache "$SERVER_VERSION")/node_modules/turborepo-remote-cache/dist/cli.js" ;;
  turbo) echo "$(install turbo "$TURBO_VERSION")/node_modules/.bin/turbo" ;;
  *) echo "usage: $0 server|turbo" >&2; exit 2 ;;
esac
