#!/bin/sh
# Entrypoint of stack-test/redis:7 (Debian's redis-server), like the official `redis` image:
# arguments starting with `-` or a *.conf file are redis-server's; redis-server started as
# root drops to the redis user and owns /data; without a protected-mode setting of its
# own it runs with protected mode off (the official image builds it so), so other
# containers can connect; any other command is exec'd as given.
set -e

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

if [ "$1" = redis-server ]; then
    protected=""
    for arg; do
        case "$arg" in
        --protected-mode) protected=yes ;;
        *.conf) if [ -r "$arg" ] && grep -Eq '^[[:space:]]*protected-mode' "$arg"; then protected=yes; fi ;;
        esac
    done
    if [ -z "$protected" ]; then
        set -- "$@" --protected-mode no
    fi
fi

umask 0077
exec "$@"
