//! The key catalogue: every global key and service attribute of the project file,
//! defined once — its names, one line of meaning, its default, and (for a service
//! attribute) which targets honour it and whether only a container can have it. The
//! configuration reader, `config explain` and the README's tables (generated from here: a
//! test fails when the README drifts, and prints the table to paste) use it.

/// One row of the catalogue: names that share one meaning (`HEALTH_INTERVAL`, …).
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub names: &'static [&'static str],
    pub meaning: &'static str,
    pub default: &'static str,
    /// Who honours a service attribute: `compose` (the rendered file), `engine` (stack's
    /// own containers), `swarm`, `build`, `proxy`, `monitoring`, `stack` (the tool).
    pub targets: &'static str,
    /// Only a container has it: a service with `UPSTREAM` (no container) cannot.
    pub container: bool,
}

/// Global keys (SPEC §1.3).
pub const GLOBALS: &[Key] = &[
    Key {
        names: &["STACK_PROJECT"],
        meaning: r##"project name, `[a-z0-9][a-z0-9_-]*`; the Compose project name"##,
        default: r##"required"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_SERVICES"],
        meaning: r##"your services, in order, `[a-z0-9][a-z0-9-]*`"##,
        default: r##"empty"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_DOMAIN"],
        meaning: r##"base domain for routes"##,
        default: r##"`localhost`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_PROXY"],
        meaning: r##"`caddy`, `nginx` or `none`"##,
        default: r##"`caddy`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_PROXY_IMAGE"],
        meaning: r##"proxy image"##,
        default: r##"`caddy:2.8.4-alpine` / `nginx:1.27.3-alpine`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_HTTP_PORT", "STACK_HTTPS_PORT"],
        meaning: r##"host ports of the proxy"##,
        default: r##"80, 443"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_TLS"],
        meaning: r##"`auto`, `internal`, `off`"##,
        default: r##"`internal` in dev, `auto` elsewhere"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_TLS_EMAIL"],
        meaning: r##"ACME account email"##,
        default: r##"none (`stack check` requires it for `auto`)"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_ACME_CA"],
        meaning: r##"ACME directory URL for `STACK_TLS=auto` (e.g. a staging or private CA)"##,
        default: r##"Let's Encrypt (the proxy's default)"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_ACME_CA_ROOT"],
        meaning: r##"PEM file in the project to trust for `STACK_ACME_CA` (a private or test CA)"##,
        default: r##"none (the system's roots)"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_CERTBOT_IMAGE"],
        meaning: r##"image of the `certbot` service that gets and renews nginx's certificates (`STACK_PROXY=nginx`, `STACK_TLS=auto`)"##,
        default: r##"`certbot/certbot:v2.11.0`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_CERTBOT_INTERVAL"],
        meaning: r##"how often `certbot` gets missing certificates and renews those within 30 days of expiry"##,
        default: r##"`12h`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_SECRETS"],
        meaning: r##"names of your own secret keys"##,
        default: r##"presets add theirs"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_HEALTH_TIMEOUT"],
        meaning: r##"how long `start` waits for readiness"##,
        default: r##"`120s`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_LOG_LEVEL"],
        meaning: r##"for services, by interpolation"##,
        default: r##"`debug` dev, `info` staging, `warning` prod"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_KEEP_RELEASES"],
        meaning: r##"releases kept on a server"##,
        default: r##"5"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_TARGET"],
        meaning: r##"`compose` or `swarm`"##,
        default: r##"`compose`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_DRAIN"],
        meaning: r##"*(stack's addition)* in a rolling update of a service something reaches by name (it has routes, or another service depends on it or names it in its command or environment), how long the new and the old container serve side by side (so every proxy and client has re-read DNS) before the old one is stopped; other services skip it"##,
        default: r##"`2s`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_LOG_MAX_SIZE"],
        meaning: r##"*(stack's addition)* log rotation of every container (json-file `max-size`; `k`, `m`, `g` are binary units)"##,
        default: r##"`10m`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_LOG_MAX_FILES"],
        meaning: r##"*(stack's addition)* rotated log files kept per container (json-file `max-file`)"##,
        default: r##"3"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_HOOK_PRE_BUILD"],
        meaning: r##"*(stack's addition)* a shell command (`sh -c`, in the project directory, on the machine that runs stack) before `stack build` writes the bundle and before `deploy` builds images; a failure stops with exit 1"##,
        default: r##"none"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_HOOK_PRE_DEPLOY"],
        meaning: r##"*(stack's addition)* run before a deploy takes the lock or changes anything (after the release id is known); a failure aborts the deploy, exit 1, nothing changed"##,
        default: r##"none"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_HOOK_POST_DEPLOY"],
        meaning: r##"*(stack's addition)* run after a successful deploy; a failure is a warning, the release stays"##,
        default: r##"none"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_SECRETS_COMMAND"],
        meaning: r##"*(stack's addition)* a shell command whose output (`KEY=VALUE` lines) gives the environment's secrets from where you keep them (see "Secrets from where you keep them")"##,
        default: r##"none"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_NOTIFY"],
        meaning: r##"*(stack's addition)* comma-separated URLs told about deploys (started, succeeded, failed, rolled back), forced lock releases, failed backups and jobs, and containers supervise restarted: a JSON webhook, Slack, Discord or ntfy (see "Notifications"). A secret: set it in `secrets.env` or `STACK_SECRETS_COMMAND`"##,
        default: r##"none"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_IMAGE_TRANSFER"],
        meaning: r##"*(stack's addition)* how `deploy` ships `BUILD` images: `registry` (only the layers the server lacks, through a temporary registry on the server's loopback) or `archive` (the whole image)"##,
        default: r##"`registry`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_SWARM_PUBLISH"],
        meaning: r##"*(stack's addition)* with `STACK_TARGET=swarm`: `ingress` (the routing mesh and virtual IPs, which need IPVS) or `host` (ports on the nodes that run a task, DNS round robin between services); see "Growing past one machine""##,
        default: r##"`ingress`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_SWARM_ENCRYPT"],
        meaning: r##"*(stack's addition)* with `STACK_TARGET=swarm`: the overlay networks encrypt the traffic between machines (IPsec, Docker's `encrypted` overlay option; the kernel needs the `esp` and `xfrm` modules, as on stock Debian and Ubuntu). Refused with `STACK_TARGET=compose`"##,
        default: r##"`false`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_REGISTRY_IMAGE"],
        meaning: r##"*(stack's addition)* the temporary registry's image (the distribution registry; `sh` and `cat` in it)"##,
        default: r##"`registry:2.8.3`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_PROTECTED"],
        meaning: r##"*(stack's addition)* a protected environment: `stack deploy` runs the production audit (`stack check`) first and stops when it fails, unless `--force`; the audit holds it to prod's rules (TLS, debug log level, frontends, mailpit, localhost domains). Set it in `environments/<env>/stack.env`"##,
        default: r##"`true` for `prod`, else `false`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_TIMEZONE"],
        meaning: r##"*(stack's addition)* the time zone of every job's `SCHEDULE`, an IANA name (`Europe/Berlin`, `America/New_York`); daylight saving time is followed"##,
        default: r##"`UTC`"##,
        targets: "",
        container: false,
    },
    Key {
        names: &["STACK_NETWORKS"],
        meaning: r##"networks beyond the implicit `default`: `frontend,backend:internal` (`:internal`: no way in or out of the network itself, for databases; `default` cannot be internal). The engine names them `<project>_<name>`"##,
        default: r##"none"##,
        targets: "",
        container: false,
    },
];

/// Service attributes, `SERVICE_<NAME>_<ATTR>` (SPEC §1.4). `ENV_<VAR>` and
/// `BUILD_ARG_<NAME>` are patterns: the reader matches them by prefix.
pub const ATTRIBUTES: &[Key] = &[
    Key {
        names: &["IMAGE"],
        meaning: r##"image reference"##,
        default: r##"required unless `BUILD` or `UPSTREAM`"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &["BUILD", "DOCKERFILE"],
        meaning: r##"build context relative to the project, Dockerfile in it"##,
        default: r##"image tagged `<project>-<service>:<env>`"##,
        targets: "build, compose",
        container: true,
    },
    Key {
        names: &["COMMAND"],
        meaning: r##"command, split into words like a shell would; or the exec form, a JSON array of strings (`["sh", "-c", "a\nb"]`: each word exactly, line breaks as `\n`)"##,
        default: r##"the image's"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &["PORT"],
        meaning: r##"container port the proxy routes to"##,
        default: r##"none"##,
        targets: "proxy, health, monitoring",
        container: false,
    },
    Key {
        names: &["PUBLISH"],
        meaning: r##"host port mappings, Compose short syntax"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &["ROUTE"],
        meaning: r##"`host`, `/path` (on `STACK_DOMAIN`) or `host/path`, comma-separated"##,
        default: r##"none"##,
        targets: "proxy",
        container: false,
    },
    Key {
        names: &["ROUTE_STRIP"],
        meaning: r##"strip the path prefix before proxying"##,
        default: r##"false"##,
        targets: "proxy",
        container: false,
    },
    Key {
        names: &["HEALTH"],
        meaning: r##"HTTP path that answers 2xx/3xx when ready (needs `PORT`)"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["HEALTH_CMD"],
        meaning: r##"command run in the container as its health check: a shell command (Docker's `CMD-SHELL`, needs `/bin/sh`), or the exec form, a JSON array (`["pg_isready", "-U", "app"]`, Docker's `CMD`: no shell needed, for distroless images). A value that starts with `[` but no quote (`[ -f /tmp/ok ]`) is a shell command"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &[
            "HEALTH_INTERVAL",
            "HEALTH_TIMEOUT",
            "HEALTH_RETRIES",
            "HEALTH_START_PERIOD",
        ],
        meaning: r##"health check timing"##,
        default: r##"10s, 5s, 3, 0s"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["METRICS"],
        meaning: r##"HTTP path Prometheus scrapes on `PORT` (MONITORING preset; needs `PORT`), or `off`"##,
        default: r##"your services: not scraped; the preset's own: `/metrics`"##,
        targets: "monitoring",
        container: false,
    },
    Key {
        names: &["DEPENDS_ON"],
        meaning: r##"services that must be ready first; `name:completed`: a job (one replica, `RESTART=no`) that must exit with code 0 first (not on swarm)"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["ENV_<VAR>"],
        meaning: r##"container environment variable `<VAR>`"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["VOLUMES"],
        meaning: r##"Compose short syntax: `name:/path`, `./dir:/path[:ro]`, `/path`"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &["MEMORY_MB", "CPUS"],
        meaning: r##"resource limits"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["REPLICAS"],
        meaning: r##"number of containers"##,
        default: r##"1"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &["RESTART"],
        meaning: r##"`no`, `always`, `unless-stopped`, `on-failure[:N]`"##,
        default: r##"`unless-stopped`"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["ENVIRONMENTS"],
        meaning: r##"environments the service exists in"##,
        default: r##"all"##,
        targets: "stack",
        container: false,
    },
    Key {
        names: &["FRONTEND"],
        meaning: r##"runs in dev and staging; in prod only with `--include-frontends`"##,
        default: r##"false"##,
        targets: "stack",
        container: false,
    },
    Key {
        names: &["UPSTREAM"],
        meaning: r##"not a container: the proxy routes to this `host:port`"##,
        default: r##"none"##,
        targets: "proxy",
        container: false,
    },
    Key {
        names: &["STRATEGY"],
        meaning: r##"`rolling` or `recreate`"##,
        default: r##"`rolling` with a health check and no `PUBLISH`, else `recreate`"##,
        targets: "engine, swarm",
        container: false,
    },
    Key {
        names: &["ENV"],
        meaning: r##"*(stack's addition)* `name=value,…` for variable names `ENV_<VAR>` cannot spell (`discovery.type=single-node,http_proxy=http://proxy:3128`): a name is anything but empty, `=`, blanks or control characters; values cannot hold a comma; `ENV_<VAR>` wins over the same name here; a list that uses a secret is secret as a whole"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &["ENTRYPOINT"],
        meaning: r##"entrypoint, split into words like `COMMAND`, or its exec form"##,
        default: r##"the image's"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &["USER"],
        meaning: r##"`user`, `uid`, `user:group` or `uid:gid`"##,
        default: r##"the image's"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &["WORKDIR"],
        meaning: r##"working directory, an absolute path"##,
        default: r##"the image's"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &["HOSTNAME"],
        meaning: r##"the container's host name (Compose `hostname`, engine `Hostname`, swarm `Hostname`): a DNS label or dotted name, at most 253 characters"##,
        default: r##"the container id"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &["STOP_SIGNAL"],
        meaning: r##"`SIGTERM`, `QUIT`, `SIGRTMIN+3` or a number"##,
        default: r##"the image's"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["STOP_GRACE"],
        meaning: r##"time between the stop signal and SIGKILL (Compose `stop_grace_period`, engine `StopTimeout`); also what `start`, `stop`, `down` and a rolling update give the service's containers"##,
        default: r##"10s"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["CAP_ADD", "CAP_DROP"],
        meaning: r##"Linux capabilities (`NET_BIND_SERVICE` or `CAP_NET_BIND_SERVICE`), or `ALL`"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &["READ_ONLY"],
        meaning: r##"read-only root file system"##,
        default: r##"false"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["TMPFS"],
        meaning: r##"`/path[:size=64m,mode=1777]`, comma-separated (a comma inside an entry's options continues it)"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &["SYSCTLS"],
        meaning: r##"`name=value`: `net.*`, `fs.mqueue.*` and the IPC `kernel.*` ones, which Docker allows in a container"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["ULIMITS"],
        meaning: r##"`nofile=1024:2048` (soft:hard) or `nproc=512`; `-1` or `unlimited` is no limit (`memlock=-1`)"##,
        default: r##"the engine's"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["LABELS"],
        meaning: r##"`key=value` container labels; keys under `dev.stack.`, `com.docker.compose.` and `com.docker.stack.` are refused (stack sets those)"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &["EXTRA_HOSTS"],
        meaning: r##"`host:ip` or `host:host-gateway` lines for `/etc/hosts`"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["INIT"],
        meaning: r##"run an init as PID 1 that reaps zombies and forwards signals"##,
        default: r##"false"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["PLATFORM"],
        meaning: r##"`linux/amd64`, `linux/arm64/v8`… (on swarm: a placement platform)"##,
        default: r##"the engine's"##,
        targets: "compose, engine, swarm",
        container: true,
    },
    Key {
        names: &["PLACEMENT"],
        meaning: r##"swarm placement constraints, comma-separated: `node.labels.role==db`, `node.role!=manager` (see "Growing past one machine"); no effect on one machine"##,
        default: r##"none"##,
        targets: "compose, swarm",
        container: false,
    },
    Key {
        names: &["SHM_MB"],
        meaning: r##"size of `/dev/shm` (on swarm: a tmpfs of that size on `/dev/shm`)"##,
        default: r##"64"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["GPUS"],
        meaning: r##"`all` or a count of NVIDIA GPUs (Compose `deploy.resources.reservations.devices`, engine device requests). **Not applied on swarm**: swarm reserves GPUs as generic node resources, which stack does not configure, so `GPUS` with `STACK_TARGET=swarm` is refused"##,
        default: r##"none"##,
        targets: "compose, engine",
        container: true,
    },
    Key {
        names: &["BUILD_TARGET"],
        meaning: r##"Dockerfile stage to build (needs `BUILD`)"##,
        default: r##"the last"##,
        targets: "build",
        container: false,
    },
    Key {
        names: &["BUILD_ARG_<NAME>"],
        meaning: r##"build argument `<NAME>` (needs `BUILD`; a secret is refused: build arguments stay in the image's history)"##,
        default: r##"none"##,
        targets: "build",
        container: false,
    },
    Key {
        names: &["NETWORKS"],
        meaning: r##"networks the service joins (`default` or names from `STACK_NETWORKS`), the first one primary; a service that publishes ports must be on one that is not internal. The proxy joins `default` and every network a routed service (or a forward-auth endpoint) is on, but not the MONITORING preset's `monitoring` (Grafana is on `default` too)"##,
        default: r##"`default`"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["SECRET_FILES"],
        meaning: r##"secrets as read-only files instead of variables, so `docker inspect` does not show them: `name=KEY` mounts the secret `KEY` (listed in `STACK_SECRETS`) at `/run/secrets/name`, `/abs/path=KEY` at that path, a bare `KEY` at `/run/secrets/<key in lower case>`. Images' `*_FILE` convention (`POSTGRES_PASSWORD_FILE=/run/secrets/db_password`) works. Mode 0400 for a service that runs as root, 0444 when `USER` is another user (it must read it); the bundle keeps them under `secrets/`, a 0700 folder. On swarm: swarm secrets (`<project>_<key>_<hash>`, a new value is a new secret) with that mode and `USER`'s numeric uid/gid"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["ENV_FILE"],
        meaning: r##"files of `KEY=VALUE` lines (Compose's `env_file`: `#` comments, `export `, quotes stripped, values literal), relative to the project, comma-separated; a later file wins, and the service's own `ENV_<VAR>`/`ENV` win over every file. A name that says it is a secret (`*PASSWORD*`, `*SECRET*`, `*TOKEN*`, `*_KEY`) is refused: the values are written into docker-compose.yml, so secrets go to `secrets.env`. A bad line is reported by `file:line` and what is wrong, never shown (it may hold a value). (A variable named `FILE` is set through the `ENV` list.)"##,
        default: r##"none"##,
        targets: "compose, engine, swarm",
        container: false,
    },
    Key {
        names: &["AUTH"],
        meaning: r##"single sign-on in front of the service's routes: `service:port/path` of a forward-auth endpoint (Authelia `authelia:9091/api/verify?rd=https://login.example.com`, an Authentik outpost `authentik-outpost:9000/outpost.goauthentik.io/auth/caddy`, oauth2-proxy `oauth2-proxy:4180/oauth2/auth`). Caddy `forward_auth`, nginx `auth_request`; a 2xx answer lets the request through with the identity headers `Remote-User`, `Remote-Groups`, `Remote-Name`, `Remote-Email`, `X-Auth-Request-User`, `-Email`, `-Groups` passed on; any other answer goes back to the client (nginx: 401 and 403 only)"##,
        default: r##"none"##,
        targets: "proxy",
        container: false,
    },
    Key {
        names: &["BASIC_AUTH"],
        meaning: r##"a password in front of the service's routes: `user:KEY`, where the secret `KEY` holds a bcrypt hash (`caddy hash-password`, `htpasswd -nbB user pass`). In dev, a missing one is generated as the hash of a random password, so the route stays closed until you set your own. Not with `AUTH`"##,
        default: r##"none"##,
        targets: "proxy",
        container: false,
    },
    Key {
        names: &["RELEASE"],
        meaning: r##"*(stack's addition)* a command (split into words like `COMMAND`, run with the image's entrypoint) that `start` and `deploy` run **once per new version** of the service, in a one-off container of the new image with the service's new environment, secrets, volumes and network, after the services it depends on are ready and before any container of the new version starts (below). Not rendered into `docker-compose.yml`"##,
        default: r##"none"##,
        targets: "engine, swarm",
        container: true,
    },
    Key {
        names: &["RELEASE_TIMEOUT"],
        meaning: r##"*(stack's addition)* how long `RELEASE` may run; then its container is killed and the rollout fails (1s to 24h; needs `RELEASE`)"##,
        default: r##"`10m`"##,
        targets: "engine, swarm",
        container: false,
    },
    Key {
        names: &["SCHEDULE"],
        meaning: r##"*(stack's addition)* makes the service a scheduled job: at each time (five cron fields, `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`, `every 15m`, `every 6h`; in `STACK_TIMEZONE`) the server's `stack supervise` runs its `COMMAND` to completion in a one-off container of the current release (image, environment, secrets, volumes, networks). It is never started as a long-running container (`profiles: [job]` in `docker-compose.yml`); `stack jobs` lists it, `stack jobs run` runs it now"##,
        default: r##"none"##,
        targets: "engine, swarm",
        container: true,
    },
    Key {
        names: &["CONCURRENCY"],
        meaning: r##"*(stack's addition)* a job's run that starts while another run of it is still going: `forbid` (the new one is refused), `allow` (both run), `replace` (the old one is stopped). Needs `SCHEDULE`"##,
        default: r##"`forbid`"##,
        targets: "engine, swarm",
        container: false,
    },
    Key {
        names: &["TIMEOUT"],
        meaning: r##"*(stack's addition)* how long a job's run may take (1s to 24h); then its container is stopped (with `STOP_GRACE`) and the run is recorded as failed with exit code 124. Needs `SCHEDULE`"##,
        default: r##"`1h`"##,
        targets: "engine, swarm",
        container: false,
    },
];

pub use super::catalogue_lookup::{attribute_names, find, global_names, markdown};

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's tables are generated from the catalogue: when this fails, paste the
    /// table it prints into README.md.
    #[test]
    fn the_readme_tables_are_the_catalogue() {
        let readme = include_str!("../../README.md");
        for (table, what) in [
            (markdown(GLOBALS, false), "global keys"),
            (markdown(ATTRIBUTES, true), "service attributes"),
        ] {
            assert!(
                readme.contains(&table),
                "README.md's table of {what} differs from src/config/catalogue.rs; \
                 replace it with:\n{table}"
            );
        }
    }

    #[test]
    fn every_name_is_defined_once() {
        let mut names: Vec<&str> = GLOBALS
            .iter()
            .chain(ATTRIBUTES)
            .flat_map(|k| k.names.iter().copied())
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
