#!/usr/bin/env bash
# Entrypoint of stack-test/postgres:15 (Debian's postgresql-15), honouring the contract of
# the official `postgres` image:
#   POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER
#   (default postgres), POSTGRES_DB (default = user), POSTGRES_INITDB_ARGS,
#   POSTGRES_HOST_AUTH_METHOD (default scram-sha-256), each also as *_FILE;
#   PGDATA (default /var/lib/postgresql/data); initdb only when PGDATA is empty, then the
#   files of /docker-entrypoint-initdb.d (*.sh run or sourced, *.sql, *.sql.gz, *.sql.xz,
#   *.sql.zst) in name order against POSTGRES_DB; connections over the network need the
#   password; started as root it drops to the postgres user; postgres is exec'd (PID 1).
set -Eeo pipefail

# VAR from $VAR, or from the file named by $VAR_FILE, or the default $2.
file_env() {
    local var="$1" file_var="${1}_FILE" default="${2:-}"
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        echo "error: both $var and $file_var are set (they are exclusive)" >&2
        exit 1
    fi
    local value="$default"
    if [ -n "${!var:-}" ]; then
        value="${!var}"
    elif [ -n "${!file_var:-}" ]; then
        value="$(<"${!file_var}")"
    fi
    export "$var"="$value"
    unset "$file_var"
}

# Like the official image: arguments starting with `-` are postgres options.
if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

wants_help() {
    local arg
    for arg; do
        case "$arg" in
        -'?' | --help | --describe-config | -V | --version) return 0 ;;
        esac
    done
    return 1
}

if [ "$1" != postgres ] || wants_help "$@"; then
    exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    chmod 700 "$PGDATA"
    chown postgres:postgres /var/run/postgresql
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

mkdir -p "$PGDATA"
chmod 700 "$PGDATA" 2>/dev/null || true

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"

if [ -s "$PGDATA/PG_VERSION" ]; then
    echo
    echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
    echo
    exec "$@"
fi

if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
    cat >&2 <<'EOM'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
       (Or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password;
       this is not recommended.)
EOM
    exit 1
fi

# Checked before initdb, so a fixed mount gets a fresh initialisation on the next start.
if [ -d /docker-entrypoint-initdb.d ] && { ! [ -r /docker-entrypoint-initdb.d ] || ! [ -x /docker-entrypoint-initdb.d ]; }; then
    echo "Error: /docker-entrypoint-initdb.d is not readable by $(id -un) (uid $(id -u)); make it world-readable (chmod 755)" >&2
    exit 1
fi

# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a word list, as in the official image
initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS

if [ "$POSTGRES_HOST_AUTH_METHOD" = scram-sha-256 ]; then
    echo "password_encryption = 'scram-sha-256'" >>"$PGDATA/postgresql.auto.conf"
fi
printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

# A temporary server on the Unix socket only, for the database and the init files.
export PGPASSWORD="$POSTGRES_PASSWORD"
PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start

psql_init=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
if [ "$POSTGRES_DB" != postgres ]; then
    exists="$("${psql_init[@]}" --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
    if [ -z "${exists// /}" ]; then
        "${psql_init[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;'
    fi
fi
psql_init+=(--dbname "$POSTGRES_DB")

echo
for file in /docker-entrypoint-initdb.d/*; do
    [ -e "$file" ] || continue
    case "$file" in
    *.sh)
        if [ -x "$file" ]; then
            echo "$0: running $file"
            "$file"
        else
            echo "$0: sourcing $file"
            # shellcheck disable=SC1090
            . "$file"
        fi
        ;;
    *.sql)
        echo "$0: running $file"
        "${psql_init[@]}" -f "$file"
        ;;
    *.sql.gz)
        echo "$0: running $file"
        gunzip -c "$file" | "${psql_init[@]}"
        ;;
    *.sql.xz)
        echo "$0: running $file"
        xzcat "$file" | "${psql_init[@]}"
        ;;
    *.sql.zst)
        echo "$0: running $file"
        zstd -dc "$file" | "${psql_init[@]}"
        ;;
    *) echo "$0: ignoring $file" ;;
    esac
    echo
done

pg_ctl -D "$PGDATA" -m fast -w stop
unset PGPASSWORD

echo
echo 'PostgreSQL init process complete; ready for start up.'
echo

exec "$@"
