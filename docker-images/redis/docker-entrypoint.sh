#!/usr/bin/env bash
# Entrypoint of cleanroom/redis:7, honouring the official redis image's contract: arguments that
# start with '-' (or a *.conf file) go to redis-server; without a config file the server binds
# 0.0.0.0:6379 with protected mode off (so published ports work); it runs as the redis user with
# /data as its working directory, and logs "Ready to accept connections".
set -Eeo pipefail

if [[ ${1:0:1} == - || ${1:-} == *.conf ]]; then
  set -- redis-server "$@"
fi

if [[ ${1:-} == redis-server ]]; then
  if [[ $(id -u) == 0 ]]; then
    find . \! -user redis -exec chown redis:redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "${BASH_SOURCE[0]}" "$@"
  fi
  # Without a config file, defaults come first so that the caller's flags override them.
  if [[ ${2:-} != *.conf && ! -f ${2:-} ]]; then
    shift
    set -- redis-server --bind 0.0.0.0 --protected-mode no --port 6379 "$@"
  fi
fi

exec "$@"
