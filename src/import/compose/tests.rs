//! The importer end to end, on files in memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

/// Files in memory.
struct Files(BTreeMap<PathBuf, String>);

impl Reader for Files {
    fn read(&self, path: &Path) -> Result<Option<String>> {
        Ok(self.0.get(path).cloned())
    }

    fn folders(&self, _dir: &Path) -> Vec<String> {
        Vec::new()
    }
}

pub(super) fn run(files: &[(&str, &str)], routes: bool) -> Imported {
    try_run(files, routes, None).unwrap()
}

fn run_with(files: &[(&str, &str)], home: Option<&str>) -> Imported {
    try_run(files, false, home).unwrap()
}

fn try_run(files: &[(&str, &str)], routes: bool, home: Option<&str>) -> Result<Imported> {
    let files = Files(
        files
            .iter()
            .map(|(p, t)| (Path::new("/src").join(p), t.to_string()))
            .collect(),
    );
    let options = Options {
        file: "/src/docker-compose.yml".into(),
        project_dir: "/project".into(),
        routes,
        caddyfile: None,
        home: home.map(PathBuf::from),
        extra_files: Vec::new(),
        profiles: Vec::new(),
    };
    import(&files, &options)
}

pub(super) fn file<'a>(imported: &'a Imported, path: &str) -> &'a str {
    &imported
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap()
        .contents
}

#[test]
fn a_secret_default_becomes_the_dev_secret_and_reserved_names_are_renamed() {
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  web:\n    image: app:${STACK_TAG:-1}\n    environment:\n      DB_PASSWORD: ${DB_PASSWORD:-devpass}\n      URL: http://x/${POSTGRES_DB}\n",
        )],
        false,
    );
    let env = file(&imported, PROJECT_FILE);
    assert!(
        env.contains("SERVICE_WEB_IMAGE=app:${IMPORTED_STACK_TAG:-1}"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_WEB_ENV_DB_PASSWORD=${DB_PASSWORD}\n"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_WEB_ENV_URL=http://x/${IMPORTED_POSTGRES_DB}"),
        "{env}"
    );
    assert!(env.contains("STACK_SECRETS=DB_PASSWORD\n"), "{env}");
    assert!(!env.contains("devpass"), "{env}");
    assert!(file(&imported, DEV_SECRETS).contains("DB_PASSWORD='devpass'"));
}

#[test]
fn long_syntax_env_files_ports_and_bind_paths() {
    let imported = run(
        &[
            (
                "docker-compose.yml",
                "services:\n  web:\n    image: nginx\n    env_file:\n      - path: ./a.env\n      - path: ./missing.env\n        required: false\n    ports:\n      - target: 80\n        published: 8080\n        host_ip: 127.0.0.1\n    volumes:\n      - ./html:/usr/share/nginx/html:ro,z\n",
            ),
            ("a.env", "A=1\nAPI_TOKEN=t0ken\n"),
        ],
        false,
    );
    let env = file(&imported, PROJECT_FILE);
    assert!(env.contains("SERVICE_WEB_ENV_A=1\n"), "{env}");
    assert!(
        env.contains("SERVICE_WEB_ENV_API_TOKEN=${API_TOKEN}\n"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_WEB_PUBLISH=127.0.0.1:8080:80\n"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_WEB_VOLUMES=/src/html:/usr/share/nginx/html:ro,z\n"),
        "{env}"
    );
    let keys: Vec<&str> = imported.not_carried().map(|f| f.key.as_str()).collect();
    assert!(keys.is_empty(), "{:?}", imported.findings);
}

proptest::proptest! {
    /// Any text, YAML or not, is an answer (a project or an error), never a panic.
    #[test]
    fn any_text_is_imported_or_refused(text in "(services:\n|  [a-z]{1,3}:|    (image|ports|volumes|environment|healthcheck|depends_on|secrets|networks|command|build|env_file): |[-:{}\\[\\],&*!<>$\"' a-z0-9/.=]{0,12}|\n){0,40}") {
        let files = Files([(PathBuf::from("/src/docker-compose.yml"), text)].into_iter().collect());
        let options = Options {
            file: "/src/docker-compose.yml".into(),
            project_dir: "/project".into(),
            routes: true,
            caddyfile: None,
            home: None,
        extra_files: Vec::new(),
        profiles: Vec::new(),
        };
        let _ = import(&files, &options);
    }
}

#[test]
fn a_published_http_port_becomes_a_route_with_routes() {
    let compose = "services:\n  web:\n    image: app\n    ports: [\"8000:8080\", \"9229:9229\"]\n  db:\n    image: postgres:16\n    ports: [\"5432:5432\"]\n";
    let imported = run(&[("docker-compose.yml", compose)], true);
    let env = file(&imported, PROJECT_FILE);
    assert!(env.contains("STACK_PROXY=caddy\n"), "{env}");
    assert!(env.contains("SERVICE_WEB_PORT=8080\n"), "{env}");
    assert!(
        env.contains("SERVICE_WEB_ROUTE=web.${STACK_DOMAIN}\n"),
        "{env}"
    );
    assert!(env.contains("SERVICE_WEB_PUBLISH=9229:9229\n"), "{env}");
    assert!(env.contains("SERVICE_DB_PUBLISH=5432:5432\n"), "{env}");
    assert!(!env.contains("SERVICE_DB_ROUTE"), "{env}");
}

#[test]
fn interpolation_inside_a_list_entry_is_carried_whole() {
    let imported = run_with(
        &[(
            "docker-compose.yml",
            "services:\n  kong:\n    image: kong:3.6\n    volumes:\n      - kong_prefix_vol:${KONG_PREFIX:-/var/run/kong}\n      - ~/data:/data:ro\n    ports:\n      - \"${KONG_BIND:-}:8443:8443/tcp\"\n      - \":80:80\"\n",
        )],
        Some("/home/u"),
    );
    let env = file(&imported, "stack.env");
    assert!(
        env.contains("SERVICE_KONG_VOLUMES=kong_prefix_vol:${KONG_PREFIX:-/var/run/kong},/home/u/data:/data:ro\n"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_KONG_PUBLISH=${KONG_BIND:+${KONG_BIND}:}8443:8443/tcp,80:80\n"),
        "{env}"
    );
}

#[test]
fn two_services_on_one_host_port_are_refused_naming_both() {
    let Err(err) = try_run(
        &[(
            "docker-compose.yml",
            "services:\n  app:\n    image: x\n    ports: [\"9000:9000\"]\n  demo-app:\n    image: x\n    ports: [\"9000:9000\"]\n  other:\n    image: x\n    ports: [\"127.0.0.1:9000:9000\", \"9000:9000/udp\"]\n",
        )],
        false,
        None,
    )
    else {
        panic!("two services on host port 9000 were accepted");
    };
    let err = err.to_string();
    assert!(
        err.contains("host port 9000 is published by both `app` and `demo-app`"),
        "{err}"
    );
}

#[test]
fn a_port_entry_that_is_one_variable_keeps_its_default_a_port() {
    // Immich's `${EXPOSE_PORT-:2283:2283}`: unset, Compose publishes 2283 on every
    // address; set, the variable's value is the whole entry.
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  immich-server:\n    image: x\n    ports:\n      - ${EXPOSE_PORT-:2283:2283}\n      - ${OTHER:-:80:80}\n      - ${PLAIN:-8080:8080}\n",
        )],
        false,
    );
    let env = file(&imported, "stack.env");
    assert!(
        env.contains("SERVICE_IMMICH_SERVER_PUBLISH=${EXPOSE_PORT-2283:2283},${OTHER:-80:80},${PLAIN:-8080:8080}\n"),
        "{env}"
    );
}

#[test]
fn restart_policies_and_empty_values() {
    let imported = run(
        &[
            (
                "docker-compose.yml",
                "services:\n  a:\n    image: x\n    deploy:\n      restart_policy:\n        condition: any\n  b:\n    image: x\n    deploy:\n      restart_policy:\n        condition: on-failure\n        max_attempts: 3\n  c:\n    image: x\n    restart: ${RESTART_POLICY}\n    deploy:\n      restart_policy:\n        condition: none\n    environment:\n      MYSQL_SSL_KEY: \"\"\n      ADMIN_PASSWORD: ''\n      DB_PASSWORD: ${DB_PASSWORD}\n      API_TOKEN: ${API_TOKEN:-}\n      REAL_SECRET: s3cr3t\n",
            ),
            (".env", "RESTART_POLICY=always\nEMPTY_TOKEN=\n"),
        ],
        false,
    );
    let env = file(&imported, "stack.env");
    for line in [
        "SERVICE_A_RESTART=always\n",
        "SERVICE_B_RESTART=on-failure\n",
        "SERVICE_C_RESTART=${RESTART_POLICY}\n",
        "RESTART_POLICY=always\n",
        "SERVICE_C_ENV_MYSQL_SSL_KEY=\"\"\n",
        "SERVICE_C_ENV_ADMIN_PASSWORD=\"\"\n",
        "SERVICE_C_ENV_DB_PASSWORD=${DB_PASSWORD}\n",
        "SERVICE_C_ENV_API_TOKEN=${API_TOKEN:-}\n",
        "SERVICE_C_ENV_REAL_SECRET=${REAL_SECRET}\n",
        "STACK_SECRETS=REAL_SECRET\n",
    ] {
        assert!(env.contains(line), "{line} in\n{env}");
    }
    assert_eq!(
        file(&imported, DEV_SECRETS).lines().last(),
        Some("REAL_SECRET='s3cr3t'")
    );
    assert!(imported
        .findings
        .iter()
        .any(|f| f.key == "deploy.restart_policy.max_attempts" && f.not_carried));
    assert!(imported
        .findings
        .iter()
        .any(|f| f.key == "DB_PASSWORD" && f.reason.contains("as in Compose it is empty")));
}

#[test]
fn completed_successfully_is_a_job() {
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  init:\n    image: x\n    command: migrate\n  seed:\n    image: x\n    restart: unless-stopped\n    scale: 2\n  app:\n    image: x\n    restart: always\n    depends_on:\n      init:\n        condition: service_completed_successfully\n      seed:\n        condition: service_completed_successfully\n  web:\n    image: x\n    depends_on: [init]\n",
        )],
        false,
    );
    let env = file(&imported, "stack.env");
    for line in [
        "SERVICE_APP_DEPENDS_ON=init:completed,seed:completed\n",
        "SERVICE_WEB_DEPENDS_ON=init:completed\n",
        "SERVICE_INIT_RESTART=no\n",
        "SERVICE_SEED_RESTART=no\n",
        "SERVICE_APP_RESTART=always\n",
    ] {
        assert!(env.contains(line), "{line} in\n{env}");
    }
    assert!(!env.contains("SERVICE_SEED_REPLICAS"), "{env}");
    let finding = |service: &str, key: &str| {
        imported
            .findings
            .iter()
            .find(|f| f.service.as_deref() == Some(service) && f.key == key)
            .unwrap_or_else(|| panic!("{service} {key}: {:?}", imported.findings))
    };
    assert!(finding("seed", "restart").not_carried);
    assert!(finding("seed", "deploy.replicas").not_carried);
    assert!(!finding("web", "depends_on.init").not_carried);
    assert!(!imported
        .findings
        .iter()
        .any(|f| f.reason.contains("one-off job is not carried")));
}

/// `network_mode` is carried (`service:NAME` under the service's name in the project);
/// the ports of a service on the host's network are listed, not carried.
#[test]
fn network_modes_are_carried_without_the_ports_they_exclude_and_terminals_carried() {
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  vpn:\n    image: wg\n    network_mode: host\n    ports: [\"51820:51820/udp\"]\n    tty: true\n    stdin_open: false\n  app_1:\n    image: a\n    network_mode: service:vpn\n  web:\n    image: b\n    network_mode: service:app_1\n",
        )],
        false,
    );
    let ports = imported
        .findings
        .iter()
        .find(|f| f.service.as_deref() == Some("vpn") && f.key == "ports")
        .cloned()
        .unwrap();
    assert!(
        ports.not_carried && ports.reason.contains("`network_mode: host`"),
        "{ports:?}"
    );
    assert!(imported
        .not_carried()
        .all(|f| f.key != "tty" && f.key != "stdin_open" && f.key != "network_mode"));
    let env = file(&imported, "stack.env");
    assert!(env.contains("SERVICE_VPN_NETWORK_MODE=host\n"), "{env}");
    assert!(!env.contains("SERVICE_VPN_PUBLISH"), "{env}");
    assert!(
        env.contains("SERVICE_APP_1_NETWORK_MODE=service:vpn\n"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_WEB_NETWORK_MODE=service:app-1\n"),
        "{env}"
    );
    assert!(env.contains("SERVICE_VPN_TTY=true\n"), "{env}");
    assert!(!env.contains("SERVICE_VPN_STDIN_OPEN"), "{env}");
    let loaded = crate::config::tests::load_text(env, "dev").unwrap();
    let web = loaded
        .config
        .services
        .iter()
        .find(|s| s.name == "web")
        .unwrap();
    assert_eq!(web.depends_on, ["app-1"]);
}

/// The host keys, written the way the Compose documentation writes them, reach the model;
/// `deploy.resources` gives the process limit and the memory reservation too.
#[test]
fn host_devices_resolver_and_cgroup_knobs_are_carried() {
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  media:\n    image: jellyfin\n    devices:\n      - /dev/dri:/dev/dri\n      - source: /dev/net/tun\n        target: /dev/net/tun\n        permissions: rwm\n    dns: 1.1.1.1\n    dns_search: [example.internal]\n    dns_opt: [\"ndots:2\"]\n    mem_reservation: 256m\n    memswap_limit: -1\n    cpu_shares: 512\n    cpuset: \"0-1\"\n    oom_score_adj: -500\n    ipc: host\n    runtime: nvidia\n    gpus: all\n    deploy:\n      resources:\n        limits:\n          pids: 100\n",
        )],
        false,
    );
    let env = file(&imported, "stack.env");
    for line in [
        "SERVICE_MEDIA_DEVICES=/dev/dri:/dev/dri,/dev/net/tun:/dev/net/tun:rwm\n",
        "SERVICE_MEDIA_DNS=1.1.1.1\n",
        "SERVICE_MEDIA_DNS_OPT=ndots:2\n",
        "SERVICE_MEDIA_MEMORY_RESERVATION_MB=256\n",
        "SERVICE_MEDIA_MEMORY_SWAP_MB=-1\n",
        "SERVICE_MEDIA_PIDS_LIMIT=100\n",
        "SERVICE_MEDIA_IPC=host\n",
        "SERVICE_MEDIA_GPUS=all\n",
    ] {
        assert!(env.contains(line), "{line} in {env}");
    }
    assert_eq!(imported.not_carried().count(), 0, "{env}");
    let loaded = crate::config::tests::load_text(env, "dev").unwrap();
    let desired = crate::model::desired(&loaded.config, &BTreeMap::new());
    let media = &desired.service("media").unwrap().options;
    assert_eq!(media.devices.len(), 2);
    assert_eq!(media.cpuset.as_deref(), Some("0-1"));
    assert_eq!(media.oom_score_adj, Some(-500));
    assert_eq!(media.runtime.as_deref(), Some("nvidia"));
}

#[test]
fn every_name_a_container_is_reached_by_stays_an_alias() {
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  rallly_db:\n    image: postgres:16\n    container_name: rallly-postgres\n    networks:\n      back:\n        aliases: [pg]\n  app:\n    image: a\n    links: [\"rallly_db:database\", \"cache\"]\n    networks: [back, shared]\n    environment:\n      DATABASE_URL: postgres://u@rallly_db/db\n  cache:\n    image: redis:7\n    container_name: cache\nnetworks:\n  back: {}\n  shared:\n    external: true\n    name: proxy_net\n",
        )],
        false,
    );
    let env = file(&imported, "stack.env");
    assert!(
        env.contains("SERVICE_RALLLY_DB_ALIASES=database,pg,rallly-postgres,rallly_db\n"),
        "{env}"
    );
    // Its own name is no alias; `cache` links by the service's own name.
    assert!(!env.contains("SERVICE_CACHE_ALIASES"), "{env}");
    assert!(
        env.contains("SERVICE_APP_NETWORKS=back,proxy_net\n"),
        "{env}"
    );
    assert!(
        env.contains("STACK_NETWORKS=back,proxy_net:external\n"),
        "{env}"
    );
    let carried = |key: &str| imported.not_carried().all(|f| f.key != key);
    for key in [
        "container_name",
        "links",
        "networks.back.aliases",
        "environment.DATABASE_URL",
    ] {
        assert!(carried(key), "{key}: {:?}", imported.findings);
    }
}

#[test]
fn literal_keys_are_read_with_dotenv_as_compose_reads_them() {
    let imported = run(
        &[
            (
                "docker-compose.yml",
                "name: ${PROJECT:-shop}\nservices:\n  app:\n    build: ${SRC:-./app}\n    mem_limit: ${APP_MEMORY}\n    shm_size: ${SHM:-64m}\n",
            ),
            (".env", "APP_MEMORY=1g\n"),
        ],
        false,
    );
    let env = file(&imported, "stack.env");
    for line in [
        "STACK_PROJECT=shop\n",
        "SERVICE_APP_BUILD=/src/app\n",
        "SERVICE_APP_MEMORY_MB=1024\n",
        "SERVICE_APP_SHM_MB=64\n",
    ] {
        assert!(env.contains(line), "{line} in\n{env}");
    }
    assert!(imported
        .findings
        .iter()
        .any(|f| f.key == "mem_limit" && f.reason.contains("read with `.env` now")));
}

#[test]
fn includes_and_extends_that_loop_are_refused() {
    let err = try_run(
        &[
            (
                "docker-compose.yml",
                "include: [a.yml, a.yml]\nservices:\n  web:\n    image: x\n",
            ),
            ("a.yml", "include: [a.yml, a.yml, a.yml]\nservices: {}\n"),
        ],
        false,
        None,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("chains deeper") || text.contains("more than"),
        "{text}"
    );
    let err = try_run(
        &[(
            "docker-compose.yml",
            "services:\n  a:\n    extends: b\n  b:\n    extends: a\n",
        )],
        false,
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("chains deeper"), "{err}");
}

#[test]
fn a_variable_without_a_value_takes_the_dotenv_value() {
    let imported = run(
        &[
            (
                "docker-compose.yml",
                "services:\n  a:\n    image: x\n    environment:\n      - TZ\n      - API_TOKEN\n      - MISSING\n",
            ),
            (".env", "TZ=Europe/Paris\nAPI_TOKEN=tok123\n"),
        ],
        false,
    );
    let env = file(&imported, "stack.env");
    assert!(env.contains("SERVICE_A_ENV_TZ=${TZ}\n"), "{env}");
    assert!(env.contains("TZ=Europe/Paris\n"), "{env}");
    assert!(
        env.contains("SERVICE_A_ENV_API_TOKEN=${API_TOKEN}\n"),
        "{env}"
    );
    assert!(!env.contains("tok123"), "{env}");
    assert!(file(&imported, DEV_SECRETS).contains("API_TOKEN='tok123'"));
    assert!(imported
        .findings
        .iter()
        .any(|f| f.key == "environment.MISSING" && f.not_carried));
}

#[test]
fn extra_hosts_spaces_are_dropped_with_a_note() {
    // Invoice Ninja ships `"in5.localhost:192.168.0.124 "` (a trailing space).
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  web:\n    image: nginx\n    extra_hosts:\n      - \"in5.localhost:192.168.0.124 \"\n      - \"db.local:10.0.0.2\"\n",
        )],
        false,
    );
    let env = file(&imported, PROJECT_FILE);
    assert!(
        env.contains("SERVICE_WEB_EXTRA_HOSTS=in5.localhost:192.168.0.124,db.local:10.0.0.2\n"),
        "{env}"
    );
    let notes: Vec<_> = imported
        .findings
        .iter()
        .filter(|f| f.key == "extra_hosts")
        .collect();
    assert_eq!(notes.len(), 1, "{:?}", imported.findings);
    assert!(!notes[0].not_carried);
    assert!(notes[0].reason.contains("`in5.localhost:192.168.0.124 `"));
}

#[test]
fn a_network_no_service_joins_is_carried() {
    // SonarQube's example declares `ipv4` and `dual`; services join
    // `${NETWORK_TYPE:-ipv4}`, so `dual` is declared but not joined as written.
    let compose = "services:\n  web:\n    image: nginx\n    networks:\n      - ${NETWORK_TYPE:-ipv4}\n  db:\n    image: postgres\n    networks: [back]\nnetworks:\n  ipv4:\n  dual:\n  back:\n";
    let imported = run(&[("docker-compose.yml", compose)], false);
    assert!(
        !imported
            .not_carried()
            .any(|f| f.key.starts_with("networks.")),
        "{:?}",
        imported.findings
    );
    let env = file(&imported, PROJECT_FILE);
    assert!(env.contains("STACK_NETWORKS=ipv4,dual,back\n"), "{env}");
    // Both are declared in the bundle, whichever the variable chooses.
    let loaded = crate::config::tests::load_text(env, "dev").unwrap();
    let desired = crate::model::desired(&loaded.config, &BTreeMap::new());
    let names: Vec<&str> = desired.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["ipv4", "dual", "back"]);
}

#[test]
fn values_compose_accepts_are_carried_with_compose_s_meaning() {
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  mail:\n    image: mailserver:14\n    command: []\n    healthcheck:\n      test: ss -l | grep smtp\n      retries: 0\n      interval: 0s\n    labels:\n      - traefik.http.middlewares.a.forwardAuth.authResponseHeaders=Remote-User,Remote-Groups\n      - bad=a, b\n",
        )],
        false,
    );
    let env = file(&imported, "stack.env");
    assert!(!env.contains("SERVICE_MAIL_COMMAND"), "{env}");
    assert!(env.contains("SERVICE_MAIL_HEALTH_RETRIES=3\n"), "{env}");
    assert!(env.contains("SERVICE_MAIL_HEALTH_INTERVAL=30s\n"), "{env}");
    // `\,` in the list, its backslash doubled in the double-quoted value.
    assert!(
        env.contains("SERVICE_MAIL_LABELS=\"traefik.http.middlewares.a.forwardAuth.authResponseHeaders=Remote-User\\\\,Remote-Groups,bad=a\\\\, b\"\n"),
        "{env}"
    );
    // A comma with a blank after it is carried, the blank kept.
    assert!(!imported.not_carried().any(|f| f.key == "labels.bad"));
}

#[test]
fn a_password_inside_a_url_goes_to_the_secrets_file() {
    let imported = run(
        &[
            (
                "docker-compose.yml",
                "services:\n  app:\n    image: a\n    environment:\n      CMD_DB_URL: postgres://hedgedoc:password@database:5432/hedgedoc\n      CACHE: redis://:hunter2@redis:6379/0\n      REF: postgres://u:${DB_PASSWORD}@db/x\n      PLAIN: http://user@host/\n      WORKER: ${DATABASE_URL}\n",
            ),
            (".env", "DB_PASSWORD=s3cret\nDATABASE_URL=amqp://u:changeme@mq/\n"),
        ],
        false,
    );
    let env = file(&imported, "stack.env");
    let secrets = file(&imported, DEV_SECRETS);
    for value in ["password@", "hunter2", "s3cret", "changeme"] {
        assert!(!env.contains(value), "{value}: {env}");
    }
    assert!(
        env.contains("SERVICE_APP_ENV_CMD_DB_URL=${CMD_DB_URL}\n"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_APP_ENV_REF=postgres://u:${DB_PASSWORD}@db/x\n"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_APP_ENV_PLAIN=http://user@host/\n"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_APP_ENV_WORKER=${DATABASE_URL}\n"),
        "{env}"
    );
    for value in ["hedgedoc:password@", ":hunter2@", "s3cret", "u:changeme@"] {
        assert!(secrets.contains(value), "{value}: {secrets}");
    }
    assert!(embeds_credentials("x postgres://a:b@h/d"));
    assert!(!embeds_credentials("postgres://a:@h/d"));
    assert!(!embeds_credentials("https://example.com/a:b@c"));
}

#[test]
fn a_secret_in_a_command_reaches_it_through_the_environment() {
    let imported = run(
        &[
            (
                "docker-compose.yml",
                "services:\n  redis:\n    image: redis:7-alpine\n    command: --requirepass $SERVICE_PASSWORD_REDIS\n  cache:\n    image: redis:7\n    command: redis-server --requirepass ${REDIS_PASSWORD} --save 60 1\n  job:\n    image: minio/mc\n    entrypoint: [\"/bin/sh\", \"-c\"]\n    command: [\"mc alias set m http://m:9000 ${MINIO_SECRET} && echo '$$HOME'\"]\n",
            ),
            (".env", "SERVICE_PASSWORD_REDIS=fixture-redis\nREDIS_PASSWORD=hunter2\nMINIO_SECRET=s3\n"),
        ],
        false,
    );
    let env = file(&imported, "stack.env");
    for value in ["fixture-redis", "hunter2", "=s3"] {
        assert!(!env.contains(value), "{value}: {env}");
    }
    for line in [
        r#"SERVICE_REDIS_COMMAND="/bin/sh -c 'exec docker-entrypoint.sh redis-server --requirepass \"$${SERVICE_PASSWORD_REDIS}\"'""#,
        r#"SERVICE_REDIS_ENV_SERVICE_PASSWORD_REDIS=${IMPORTED_SERVICE_PASSWORD_REDIS}"#,
        r#"SERVICE_CACHE_COMMAND="/bin/sh -c 'exec docker-entrypoint.sh redis-server --requirepass \"$${REDIS_PASSWORD}\" --save 60 1'""#,
        // A literal `$` (`$$` in Compose) stays literal inside the double quotes.
        r#"SERVICE_JOB_ENTRYPOINT="/bin/sh -c 'exec /bin/sh -c \"mc alias set m http://m:9000 $${MINIO_SECRET} && echo '\\''\\$$HOME'\\''\"'""#,
    ] {
        assert!(env.lines().any(|l| l == line), "{line}\n{env}");
    }
    assert!(!env.contains("SERVICE_JOB_COMMAND"), "{env}");
    assert!(imported
        .not_carried()
        .all(|f| f.key != "command" && f.key != "entrypoint"));
    // An option first, for an image stack does not know: refused, naming what to do.
    let error = try_run(
        &[(
            "docker-compose.yml",
            "services:\n  app:\n    image: example/app:1\n    command: --password ${APP_PASSWORD}\n",
        )],
        false,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("`APP_PASSWORD`"), "{error}");
}

#[test]
fn security_options_and_privileges_are_carried() {
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  app:\n    image: a\n    security_opt:\n      - no-new-privileges:true\n      - label=disable\n    privileged: true\n    stdin_open: true\n",
        )],
        false,
    );
    let env = file(&imported, "stack.env");
    for line in [
        "SERVICE_APP_SECURITY_OPT=no-new-privileges:true,label=disable\n",
        "SERVICE_APP_PRIVILEGED=true\n",
        "SERVICE_APP_STDIN_OPEN=true\n",
    ] {
        assert!(env.contains(line), "{line}{env}");
    }
    assert_eq!(imported.not_carried().count(), 0, "{:?}", imported.findings);
}

#[test]
fn hostname_is_carried_and_reaches_the_model() {
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  web:\n    image: x\n    hostname: web-01.internal\n",
        )],
        false,
    );
    let env = file(&imported, "stack.env");
    assert!(
        env.contains("SERVICE_WEB_HOSTNAME=web-01.internal\n"),
        "{env}"
    );
    assert!(
        !imported.findings.iter().any(|f| f.key == "hostname"),
        "{:?}",
        imported.findings
    );
    let loaded = crate::config::tests::load_text(env, "dev").unwrap();
    let desired = crate::model::desired(&loaded.config, &BTreeMap::new());
    let web = desired.service("web").unwrap();
    assert_eq!(web.options.hostname.as_deref(), Some("web-01.internal"));
}

/// Compose `group_add` (names and numeric gids, YAML numbers too) becomes `GROUP_ADD`.
#[test]
fn group_add_is_carried_and_reaches_the_model() {
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  web:\n    image: x\n    group_add:\n      - video\n      - 44\n",
        )],
        false,
    );
    let env = file(&imported, "stack.env");
    assert!(env.contains("SERVICE_WEB_GROUP_ADD=video,44\n"), "{env}");
    let loaded = crate::config::tests::load_text(env, "dev").unwrap();
    let desired = crate::model::desired(&loaded.config, &BTreeMap::new());
    let web = desired.service("web").unwrap();
    assert_eq!(web.options.group_add, ["video", "44"]);
}

#[test]
fn a_hostname_no_container_can_have_is_listed_not_carried() {
    let long = format!("{}.{}", "a".repeat(30), "b".repeat(39));
    let imported = run(
        &[(
            "docker-compose.yml",
            &format!("services:\n  web:\n    image: x\n    hostname: {long}\n  api:\n    image: x\n    hostname: api_1\n"),
        )],
        false,
    );
    let env = file(&imported, "stack.env");
    assert!(!env.contains("HOSTNAME"), "{env}");
    let listed: Vec<_> = imported
        .findings
        .iter()
        .filter(|f| f.key == "hostname" && f.not_carried)
        .collect();
    assert_eq!(listed.len(), 2, "{:?}", imported.findings);
    assert!(listed.iter().any(|f| f.reason.contains("api_1")));
}

#[test]
fn build_arguments_without_a_value_or_empty_are_carried_and_secrets_are_not() {
    let imported = run(
        &[
            (
                "docker-compose.yml",
                "services:\n  web:\n    build:\n      context: .\n      args:\n        PLUGINS:\n        GITHUB_SECRET:\n        CLIENT_SECRET: \"\"\n        NEXTAUTH_SECRET: RANDOM\n        DATABASE_URL: ${DATABASE_URL}\n        APP_URL: ${APP_URL}\n        CACHE_URL: redis://:pw@cache\n",
            ),
            (".env", "DATABASE_URL=postgres://u:pw@db/app\nAPP_URL=http://localhost\n"),
        ],
        false,
    );
    let env = file(&imported, PROJECT_FILE);
    assert!(
        env.contains("SERVICE_WEB_BUILD_ARG_PLUGINS=${PLUGINS}\n"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_WEB_BUILD_ARG_GITHUB_SECRET=${GITHUB_SECRET}\n"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_WEB_BUILD_ARG_CLIENT_SECRET=\"\"\n"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_WEB_BUILD_ARG_APP_URL=${APP_URL}\n"),
        "{env}"
    );
    assert!(!env.contains("BUILD_ARG_NEXTAUTH_SECRET"), "{env}");
    assert!(!env.contains("BUILD_ARG_DATABASE_URL"), "{env}");
    assert!(!env.contains("RANDOM") && !env.contains(":pw@"), "{env}");
    for key in [
        "build.args.NEXTAUTH_SECRET",
        "build.args.DATABASE_URL",
        "build.args.CACHE_URL",
    ] {
        let finding = imported.findings.iter().find(|f| f.key == key);
        assert!(
            finding.is_some_and(|f| f.not_carried),
            "{key}: {:?}",
            imported.findings
        );
    }
}

/// `never`, `build` on a built service and `always` are `PULL_POLICY`; a schedule, and
/// a pull policy on a built service, are listed with the reason; `cgroup` is `CGROUP`.
#[test]
fn pull_policies_and_cgroup_are_carried_or_listed() {
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  offline:\n    image: app:1\n    pull_policy: never\n    cgroup: host\n  built:\n    build: .\n    pull_policy: build\n  nightly:\n    image: app:2\n    pull_policy: daily\n  mixed:\n    build: .\n    image: app:3\n    pull_policy: always\n",
        )],
        false,
    );
    let env = file(&imported, PROJECT_FILE);
    for line in [
        "SERVICE_OFFLINE_PULL_POLICY=never\n",
        "SERVICE_OFFLINE_CGROUP=host\n",
        "SERVICE_BUILT_PULL_POLICY=build\n",
    ] {
        assert!(env.contains(line), "{line} in {env}");
    }
    assert!(!env.contains("SERVICE_NIGHTLY_PULL_POLICY"), "{env}");
    assert!(!env.contains("SERVICE_MIXED_PULL_POLICY"), "{env}");
    for (service, why) in [("nightly", "a pull schedule"), ("mixed", "is built")] {
        let listed = imported
            .findings
            .iter()
            .find(|f| f.key == "pull_policy" && f.service.as_deref() == Some(service))
            .unwrap_or_else(|| panic!("{service}: {:?}", imported.findings));
        assert!(
            listed.not_carried && listed.reason.contains(why),
            "{listed:?}"
        );
    }
}

#[test]
fn pull_policies_and_optional_dependencies() {
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  web:\n    image: app\n    pull_policy: always\n    depends_on:\n      db:\n        condition: service_started\n        required: false\n      sync:\n        condition: service_completed_successfully\n        required: false\n  db:\n    image: postgres\n    pull_policy: missing\n  sync:\n    image: app\n    profiles: [analytics]\n",
        )],
        false,
    );
    let env = file(&imported, PROJECT_FILE);
    assert!(env.contains("SERVICE_WEB_DEPENDS_ON=db\n"), "{env}");
    let finding = |key: &str, service: &str| {
        imported
            .findings
            .iter()
            .find(|f| f.key == key && f.service.as_deref() == Some(service))
            .map(|f| f.not_carried)
    };
    assert_eq!(finding("pull_policy", "web"), None, "always is carried");
    assert!(env.contains("SERVICE_WEB_PULL_POLICY=always\n"), "{env}");
    assert_eq!(
        finding("pull_policy", "db"),
        Some(false),
        "missing is a note"
    );
    assert_eq!(
        finding("depends_on.sync", "web"),
        Some(false),
        "skipped, as Compose"
    );
    assert_eq!(finding("depends_on.db.required", "web"), None);
}

#[test]
fn the_legacy_format_is_refused_with_what_to_write() {
    let err = try_run(
        &[(
            "docker-compose.yml",
            "db:\n  image: mongo\nweb:\n  image: app\n  links:\n    - db:db\n",
        )],
        false,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("legacy format"), "{err}");
}

#[test]
fn an_env_file_reference_to_an_earlier_line_takes_its_value() {
    // Misskey's `.config/docker.env`: `DATABASE_URL="postgres://${POSTGRES_USER}:…"` after
    // `POSTGRES_USER=…`, which python-dotenv and Compose read from the file itself.
    let imported = run(
        &[
            (
                "docker-compose.yml",
                "services:\n  db:\n    image: postgres:16\n    env_file: [db.env]\n",
            ),
            (
                "db.env",
                "POSTGRES_USER=app\nPOSTGRES_PASSWORD=pw1\nDATABASE_URL=\"postgres://${POSTGRES_USER}:${POSTGRES_PASSWORD}@db/app\"\nGREETING=\"hi ${POSTGRES_USER} ${UNSET}\"\nCOPY=${POSTGRES_PASSWORD}\n",
            ),
        ],
        false,
    );
    let env = file(&imported, "stack.env");
    assert!(env.contains("hi app ${UNSET}"), "{env}");
    assert!(env.contains("SERVICE_DB_ENV_COPY=${"), "{env}");
    assert!(env.contains("SERVICE_DB_ENV_DATABASE_URL=${"), "{env}");
    assert!(
        !env.contains("pw1"),
        "a secret's value reached stack.env:\n{env}"
    );
    let secrets = file(&imported, "environments/dev/secrets.env");
    assert!(secrets.contains("postgres://app:pw1@db/app"), "{secrets}");
}

#[test]
fn a_bind_source_whose_env_value_is_in_the_home_folder_is_expanded() {
    // AFFiNE's `${UPLOAD_LOCATION}:/root/.affine/storage` with
    // `UPLOAD_LOCATION=~/.affine/self-host/storage` in `.env`.
    let imported = run_with(
        &[
            (
                "docker-compose.yml",
                "services:\n  app:\n    image: x\n    volumes:\n      - ${DATA}:/data\n      - ${CACHE:-~/cache}:/cache\n",
            ),
            (".env", "DATA=~/app-data\n"),
        ],
        Some("/home/u"),
    );
    let env = file(&imported, "stack.env");
    assert!(
        env.contains("SERVICE_APP_VOLUMES=/home/u/app-data:/data,/home/u/cache:/cache\n"),
        "{env}"
    );
}

#[test]
fn a_shell_health_check_of_several_words_is_what_docker_runs() {
    // ZITADEL's `["CMD-SHELL", "pg_isready", "-d", "zitadel"]`: Docker runs
    // `/bin/sh -c pg_isready -d zitadel` (the other words are the shell's `$0`, `$1`).
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  db:\n    image: postgres:16\n    healthcheck:\n      test: [\"CMD-SHELL\", \"pg_isready\", \"-d\", \"zitadel\"]\n",
        )],
        false,
    );
    let env = file(&imported, "stack.env");
    assert!(
        env.contains(
            r#"SERVICE_DB_HEALTH_CMD="[\"/bin/sh\",\"-c\",\"pg_isready\",\"-d\",\"zitadel\"]""#
        ),
        "{env}"
    );
}

#[test]
fn a_comma_that_a_variable_brings_into_a_list_item_stays_in_the_item() {
    let imported = run(
        &[
            (
                "docker-compose.yml",
                "services:\n  app:\n    image: app:1\n    environment:\n      no_proxy: db,${NO_PROXY}\n    labels:\n      - rule=${RULE}\n      - tag=${TAG}\n",
            ),
            (".env", "NO_PROXY=cache,queue\nRULE=Host(`a`) || Host(`b`)\nTAG=v1\n"),
        ],
        false,
    );
    let env = file(&imported, "stack.env");
    // The value is written into the item, its comma escaped (`\,`, doubled in quotes).
    assert!(
        env.contains("SERVICE_APP_ENV=\"no_proxy=db\\\\,cache\\\\,queue\"\n"),
        "{env}"
    );
    // Without a comma the reference stays.
    assert!(env.contains("tag=${TAG}"), "{env}");
    assert!(env.contains("rule=${RULE}"), "{env}");
}

#[test]
fn a_dockerfile_outside_the_context_is_listed_and_one_inside_is_made_relative() {
    let imported = run(
        &[(
            "docker-compose.yml",
            "services:\n  out:\n    build:\n      context: ./app\n      dockerfile: ../Dockerfile\n  abs:\n    build:\n      context: ./app\n      dockerfile: /etc/os-release\n  inside:\n    build:\n      context: ./app\n      dockerfile: /src/app/docker/Dockerfile\n",
        )],
        false,
    );
    let env = file(&imported, PROJECT_FILE);
    assert!(
        env.contains("SERVICE_INSIDE_DOCKERFILE=docker/Dockerfile\n"),
        "{env}"
    );
    assert!(!env.contains("SERVICE_OUT_DOCKERFILE"), "{env}");
    assert!(!env.contains("SERVICE_ABS_DOCKERFILE"), "{env}");
    for service in ["out", "abs"] {
        assert!(
            imported
                .findings
                .iter()
                .any(|f| f.service.as_deref() == Some(service)
                    && f.key == "build.dockerfile"
                    && f.not_carried
                    && f.reason.contains("outside the build context")),
            "{service}: {:?}",
            imported.findings
        );
    }
}
