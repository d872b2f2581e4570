#!/usr/bin/env bash
# Entrypoint of cleanroom/mariadb:10.11, honouring the official mariadb image's contract:
#   MARIADB_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD), unless MARIADB_ALLOW_EMPTY_ROOT_PASSWORD or
#   MARIADB_RANDOM_ROOT_PASSWORD is set; MARIADB_ROOT_HOST ('%'); MARIADB_DATABASE, MARIADB_USER,
#   MARIADB_PASSWORD (or their MYSQL_ names); the *_FILE variants of the passwords; scripts in
#   /docker-entrypoint-initdb.d (*.sh, *.sql, *.sql.gz) run once after the data directory is made.
# Arguments that start with '-' go to mariadbd. On first start it runs mariadb-install-db and a
# temporary server on the unix socket only (for the accounts and the init scripts), stops it and
# starts the real one on 0.0.0.0:3306; both log "ready for connections", like the official image.
set -Eeo pipefail

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock

log() { printf '%s [Note] [Entrypoint]: %s\n' "$(date -u '+%F %T')" "$*"; }
die() {
  printf '%s [ERROR] [Entrypoint]: %s\n' "$(date -u '+%F %T')" "$*" >&2
  exit 1
}

# VAR from MARIADB_VAR, MYSQL_VAR or the file named by their *_FILE variant.
env_value() {
  local name=$1 var file_var
  for var in "MARIADB_$name" "MYSQL_$name"; do
    file_var="${var}_FILE"
    if [[ -n ${!var:-} ]]; then
      printf '%s' "${!var}"
      return
    elif [[ -n ${!file_var:-} ]]; then
      cat "${!file_var}"
      return
    fi
  done
  return 0
}

sql_text() {
  local text=${1//\\/\\\\}
  printf "'%s'" "${text//\'/\\\'}"
}

sql_name() { printf '`%s`' "${1//\`/\`\`}"; }

client() { mariadb --protocol=socket --socket="$SOCKET" -uroot "$@"; }

run_init_scripts() {
  local f
  shopt -s nullglob
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh) log "running $f"; . "$f" ;;
      *.sql) log "running $f"; client "$(env_value DATABASE)" <"$f" ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | client "$(env_value DATABASE)" ;;
      *) log "ignoring $f" ;;
    esac
  done
}

setup_sql() {
  local root_password=$1 root_host database user password
  root_host=$(env_value ROOT_HOST)
  root_host=${root_host:-%}
  database=$(env_value DATABASE)
  user=$(env_value USER)
  password=$(env_value PASSWORD)
  printf 'SET @@SESSION.SQL_LOG_BIN=0;\n'
  printf "DELETE FROM mysql.global_priv WHERE User NOT IN ('mariadb.sys', 'root') OR Host NOT IN ('localhost');\n"
  printf 'ALTER USER root@localhost IDENTIFIED BY %s;\n' "$(sql_text "$root_password")"
  if [[ $root_host != localhost ]]; then
    printf 'CREATE USER root@%s IDENTIFIED BY %s;\n' "$(sql_text "$root_host")" "$(sql_text "$root_password")"
    printf 'GRANT ALL ON *.* TO root@%s WITH GRANT OPTION;\n' "$(sql_text "$root_host")"
  fi
  if [[ -n $database ]]; then
    printf 'CREATE DATABASE IF NOT EXISTS %s;\n' "$(sql_name "$database")"
  fi
  if [[ -n $user ]]; then
    printf "CREATE USER %s@'%%' IDENTIFIED BY %s;\n" "$(sql_text "$user")" "$(sql_text "$password")"
    if [[ -n $database ]]; then
      printf "GRANT ALL ON %s.* TO %s@'%%';\n" "$(sql_name "$database")" "$(sql_text "$user")"
    fi
  fi
  printf 'FLUSH PRIVILEGES;\n'
}

init_datadir() {
  local root_password
  root_password=$(env_value ROOT_PASSWORD)
  if [[ -n ${MARIADB_RANDOM_ROOT_PASSWORD:-${MYSQL_RANDOM_ROOT_PASSWORD:-}} ]]; then
    root_password=$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)
    log "GENERATED ROOT PASSWORD: $root_password"
  fi
  if [[ -z $root_password && -z ${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-${MYSQL_ALLOW_EMPTY_PASSWORD:-}} ]]; then
    die "Database is uninitialized and password option is not specified: set one of" \
      "MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD"
  fi
  log "Initializing database files"
  mariadb-install-db --datadir="$DATADIR" --user=mysql --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve --rpm "$@" >/dev/null
  log "Starting temporary server"
  mariadbd --user=mysql --datadir="$DATADIR" --skip-networking --socket="$SOCKET" \
    --skip-log-bin "$@" &
  local pid=$! i
  for i in {1..300}; do
    client -e 'SELECT 1' >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || die "the temporary server exited"
    sleep 0.1
  done
  setup_sql "$root_password" | client
  MYSQL_PWD=$root_password run_init_scripts
  log "Stopping temporary server"
  kill -TERM "$pid"
  wait "$pid" || true
  log "MariaDB init process done. Ready for start up."
}

if [[ ${1:0:1} == - ]]; then
  set -- mariadbd "$@"
fi

if [[ ${1:-} == mariadbd || ${1:-} == mysqld ]]; then
  mkdir -p "$DATADIR" /run/mysqld
  if [[ $(id -u) == 0 ]]; then
    find "$DATADIR" /run/mysqld \! -user mysql -exec chown mysql:mysql '{}' +
  fi
  if [[ ! -d $DATADIR/mysql ]]; then
    init_datadir "${@:2}"
  fi
  shift
  set -- mariadbd --user=mysql --datadir="$DATADIR" --socket="$SOCKET" --bind-address=0.0.0.0 \
    --port=3306 "$@"
fi

exec "$@"
