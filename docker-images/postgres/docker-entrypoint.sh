#!/usr/bin/env bash
# Entrypoint of cleanroom/postgres:15, honouring the official postgres image's contract:
#   POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER (postgres),
#   POSTGRES_DB (= POSTGRES_USER), POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR,
#   POSTGRES_HOST_AUTH_METHOD (scram-sha-256), PGDATA, the *_FILE variants of the first three,
#   scripts in /docker-entrypoint-initdb.d (*.sh, *.sql, *.sql.gz) run once after initdb.
# On first start it runs initdb, a temporary server on the unix socket only (for POSTGRES_DB and the
# init scripts), stops it, prints "PostgreSQL init process complete; ready for start up." and then
# starts the real server listening on 0.0.0.0:5432, like the official image.
set -Eeo pipefail

# VAR from $VAR or from the file named by $VAR_FILE (docker secrets), never both.
file_env() {
  local var=$1 default=${2:-}
  local file_var="${var}_FILE"
  if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
    printf >&2 'error: both %s and %s are set (they are exclusive)\n' "$var" "$file_var"
    exit 1
  fi
  local value=$default
  if [[ -n ${!var:-} ]]; then
    value=${!var}
  elif [[ -n ${!file_var:-} ]]; then
    value=$(<"${!file_var}")
  fi
  export "$var"="$value"
  unset "$file_var"
}

prepare_dirs() {
  mkdir -p "$PGDATA"
  chmod 00700 "$PGDATA" 2>/dev/null || true
  mkdir -p /var/run/postgresql
  chmod 03775 /var/run/postgresql 2>/dev/null || true
  if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
    mkdir -p "$POSTGRES_INITDB_WALDIR"
    chmod 00700 "$POSTGRES_INITDB_WALDIR" 2>/dev/null || true
  fi
  if [[ $(id -u) == 0 ]]; then
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    find /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
    if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
      find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres:postgres '{}' +
    fi
  fi
}

check_password() {
  if [[ -z $POSTGRES_PASSWORD && ${POSTGRES_HOST_AUTH_METHOD:-} != trust ]]; then
    cat >&2 <<'EOF'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
       connections without a password. This is *not* recommended.
EOF
    exit 1
  fi
}

init_database_dir() {
  local args=(--username="$POSTGRES_USER")
  if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
    args+=(--waldir="$POSTGRES_INITDB_WALDIR")
  fi
  # POSTGRES_INITDB_ARGS is split on whitespace on purpose, as the official image does. The
  # password goes through a pipe (process substitution), never through a file or argv.
  if [[ -n $POSTGRES_PASSWORD ]]; then
    # shellcheck disable=SC2086
    initdb "${args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") ${POSTGRES_INITDB_ARGS:-}
  else
    # shellcheck disable=SC2086
    initdb "${args[@]}" ${POSTGRES_INITDB_ARGS:-}
  fi
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
}

setup_hba() {
  local method=${POSTGRES_HOST_AUTH_METHOD:-}
  if [[ -z $method ]]; then
    method=$(postgres -C password_encryption -D "$PGDATA")
  fi
  printf '\nhost all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"
}

temp_server_start() {
  PGUSER=$POSTGRES_USER PGPASSWORD=$POSTGRES_PASSWORD \
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
}

temp_server_stop() {
  PGUSER=$POSTGRES_USER pg_ctl -D "$PGDATA" -m fast -w stop
}

psql_init() {
  PGHOST=/var/run/postgresql PGPORT=${PGPORT:-5432} PGUSER=$POSTGRES_USER \
    PGPASSWORD=$POSTGRES_PASSWORD psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc "$@"
}

create_db() {
  [[ $POSTGRES_DB == postgres ]] && return 0
  local exists
  exists=$(psql_init --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<'EOSQL'
SELECT 1 FROM pg_database WHERE datname = :'db';
EOSQL
  )
  if [[ -z ${exists// /} ]]; then
    psql_init --dbname postgres --set db="$POSTGRES_DB" <<'EOSQL'
CREATE DATABASE :"db";
EOSQL
    printf '\n'
  fi
}

run_init_scripts() {
  local f
  shopt -s nullglob
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh)
        if [[ -x $f ]]; then
          printf '%s: running %s\n' "$0" "$f"
          "$f"
        else
          printf '%s: sourcing %s\n' "$0" "$f"
          # shellcheck disable=SC1090
          . "$f"
        fi
        ;;
      *.sql) printf '%s: running %s\n' "$0" "$f"; psql_init --dbname "$POSTGRES_DB" -f "$f"; printf '\n' ;;
      *.sql.gz) printf '%s: running %s\n' "$0" "$f"; gunzip -c "$f" | psql_init --dbname "$POSTGRES_DB"; printf '\n' ;;
      *) printf '%s: ignoring %s\n' "$0" "$f" ;;
    esac
  done
  shopt -u nullglob
}

main() {
  # `docker run cleanroom/postgres:15 -c fsync=off` means postgres with those flags.
  if [[ ${1:0:1} == - ]]; then
    set -- postgres "$@"
  fi
  if [[ $1 != postgres ]]; then
    exec "$@"
  fi

  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  prepare_dirs
  if [[ $(id -u) == 0 ]]; then
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
  fi

  if [[ -s $PGDATA/PG_VERSION ]]; then
    printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
  else
    check_password
    init_database_dir
    setup_hba
    temp_server_start
    create_db
    run_init_scripts
    temp_server_stop
    printf '\nPostgreSQL init process complete; ready for start up.\n\n'
  fi
  exec "$@"
}

main "$@"
