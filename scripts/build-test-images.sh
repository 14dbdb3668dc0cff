#!/usr/bin/env bash
# Build the small local images the tests and benchmarks use. No registry is needed:
# every image is assembled from binaries already installed on this machine (Debian
# packages busybox-static, caddy, nginx) and built with `docker build` from a temp context.
#
#   stack-test/busybox:latest  (also busybox:latest)  static busybox, applets in /bin
#   stack-test/caddy:latest    (also caddy:2)         busybox + /usr/bin/caddy, official layout
#   stack-test/nginx:latest    (also nginx:1)         busybox + /usr/sbin/nginx + its libraries
#
# Idempotent: an image that exists already is skipped unless FORCE=1.
set -euo pipefail

export DOCKER_BUILDKIT=0 # the classic builder needs no buildx plugin and never pulls FROM images
force="${FORCE:-0}"

work="$(mktemp -d)"
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
    log "building $tag"
    if ! docker build --quiet --tag "$tag" "$context" >"$work/build.log" 2>&1; then
        cat "$work/build.log" >&2
        log "building $tag failed"
        exit 3
    fi
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

build_caddy() {
    local context="$work/caddy"
    need_binary /usr/bin/caddy caddy
    mkdir -p "$context/root/etc/caddy" "$context/root/config/caddy" "$context/root/data/caddy" \
        "$context/root/usr/share/caddy"
    copy_with_libraries /usr/bin/caddy "$context/root"
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
    build stack-test/caddy:latest "$context" caddy:2
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

if ! docker info >/dev/null 2>&1; then
    log "docker engine does not answer; run scripts/ensure-docker.sh first"
    exit 3
fi

if should_build stack-test/busybox:latest busybox:latest; then build_busybox; force=1; fi
if should_build stack-test/caddy:latest caddy:2; then build_caddy; fi
if should_build stack-test/nginx:latest nginx:1; then build_nginx; fi
if should_build stack-test/registry:2 registry:2.8.3; then build_registry; fi

log "images ready: stack-test/busybox:latest stack-test/caddy:latest stack-test/nginx:latest"
