//! Issue 21's import-only classes: each written the way the Compose documentation or a
//! real project writes it, imported in memory, and read back into the model.

use std::collections::BTreeMap;

use super::tests::{file, run};
use super::PROJECT_FILE;

/// The model of the imported project's service `name`.
fn model_of(env: &str, name: &str) -> crate::model::DesiredService {
    let loaded = crate::config::tests::load_text(env, "dev").unwrap();
    let desired = crate::model::desired(&loaded.config, &BTreeMap::new());
    desired.service(name).unwrap().clone()
}

/// `logging` with any driver and options: `none` (Wiki.js), `syslog` with options, a
/// json-file rotation other than the project's; the first json-file rotation stays the
/// project's.
#[test]
fn logging_drivers_and_options_are_carried() {
    let compose = "services:
  db:
    image: postgres
    logging:
      driver: none
  web:
    image: nginx
    logging:
      driver: json-file
      options:
        max-size: 10m
        max-file: \"5\"
  worker:
    image: app
    logging:
      driver: syslog
      options:
        syslog-address: \"udp://10.0.0.5:514\"
        tag: worker
  api:
    image: app
    logging:
      options:
        max-size: 50m
  cache:
    image: redis
    logging:
      driver: local
";
    let imported = run(&[("docker-compose.yml", compose)], false);
    let env = file(&imported, PROJECT_FILE);
    assert!(env.contains("SERVICE_DB_LOGGING=none\n"), "{env}");
    assert!(
        env.contains("STACK_LOG_MAX_SIZE=10m\nSTACK_LOG_MAX_FILES=5\n"),
        "{env}"
    );
    assert!(!env.contains("SERVICE_WEB_LOGGING"), "{env}");
    assert!(
        env.contains(
            "SERVICE_WORKER_LOGGING=syslog,syslog-address=udp://10.0.0.5:514,tag=worker\n"
        ),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_API_LOGGING=json-file,max-size=50m,max-file=3\n"),
        "{env}"
    );
    assert!(env.contains("SERVICE_CACHE_LOGGING=local\n"), "{env}");
    assert!(
        !imported.not_carried().any(|f| f.key.starts_with("logging")),
        "{:?}",
        imported.findings
    );
    let worker = model_of(env, "worker");
    let (driver, options) = worker.log_driver();
    assert_eq!(driver, "syslog");
    let options: BTreeMap<String, String> = options.into_iter().collect();
    assert_eq!(options["syslog-address"], "udp://10.0.0.5:514");
    assert_eq!(
        model_of(env, "db").log_driver(),
        ("none".into(), Vec::new())
    );
    let web = model_of(env, "web").log_driver();
    let max_file = ("max-file".to_string(), "5".to_string());
    assert!(web.0 == "json-file" && web.1.contains(&max_file), "{web:?}");
}

/// `entrypoint: []` resets the image's entrypoint (`ENTRYPOINT=[]`, an empty entrypoint in
/// the model); `command: []` stays the image's command.
#[test]
fn an_empty_entrypoint_resets_the_image_s() {
    let compose = "services:\n  tool:\n    image: alpine/git\n    entrypoint: []\n    command: [\"git\", \"--version\"]\n  idle:\n    image: nginx\n    entrypoint: \"\"\n    command: []\n";
    let imported = run(&[("docker-compose.yml", compose)], false);
    let env = file(&imported, PROJECT_FILE);
    assert!(env.contains("SERVICE_TOOL_ENTRYPOINT=[]\n"), "{env}");
    assert!(env.contains("SERVICE_IDLE_ENTRYPOINT=[]\n"), "{env}");
    assert!(!env.contains("SERVICE_IDLE_COMMAND"), "{env}");
    assert!(
        !imported.not_carried().any(|f| f.key == "entrypoint"),
        "{:?}",
        imported.findings
    );
    let tool = model_of(env, "tool");
    assert_eq!(tool.options.entrypoint, Some(Vec::new()));
    assert_eq!(
        tool.command,
        Some(vec!["git".to_string(), "--version".into()])
    );
    // Swarm cannot reset it: refused when the project is read, with what to write.
    let swarm = format!("STACK_TARGET=swarm\n{env}");
    let err = crate::config::tests::load_text(&swarm, "dev").unwrap_err();
    assert!(format!("{err:?}").contains("ENTRYPOINT=[]"), "{err:?}");
}

/// `volumes_from` (`service`, `service:ro`, `container:NAME`) becomes the same named volumes
/// and binds in the service's own `VOLUMES`, the service's own mount winning on a target;
/// an anonymous volume of the source is named in both (with a note); a container outside
/// the project is listed.
#[test]
fn volumes_from_mounts_the_same_volumes() {
    let compose = "services:
  app:
    image: php:8-fpm
    volumes_from:
      - data
      - assets:ro
      - container:legacy
    volumes:
      - ./conf:/etc/app
  web:
    image: nginx
    volumes_from: [app]
  data:
    image: busybox
    volumes:
      - uploads:/var/www/uploads
      - /var/cache/app
  assets:
    image: busybox
    volumes:
      - ./public:/var/www/public
      - ./other:/etc/app
volumes:
  uploads:
";
    let imported = run(&[("docker-compose.yml", compose)], false);
    let env = file(&imported, PROJECT_FILE);
    let shared = "/src/conf:/etc/app,uploads:/var/www/uploads,data-var-cache-app:/var/cache/app,/src/public:/var/www/public:ro\n";
    assert!(
        env.contains(&format!("SERVICE_APP_VOLUMES={shared}")),
        "{env}"
    );
    // Chained: `web` gets `app`'s own mounts and those `app` takes from others.
    assert!(
        env.contains(&format!("SERVICE_WEB_VOLUMES={shared}")),
        "{env}"
    );
    assert!(
        env.contains(
            "SERVICE_DATA_VOLUMES=uploads:/var/www/uploads,data-var-cache-app:/var/cache/app\n"
        ),
        "{env}"
    );
    assert!(imported.findings.iter().any(|f| !f.not_carried
        && f.service.as_deref() == Some("data")
        && f.reason
            .contains("`/var/cache/app` as `data-var-cache-app`")));
    let listed: Vec<&str> = imported
        .not_carried()
        .filter(|f| f.key == "volumes_from")
        .map(|f| f.reason.as_str())
        .collect();
    assert!(
        listed.iter().any(|r| r.contains("`container:legacy`")),
        "{listed:?}"
    );
    let web = model_of(env, "web");
    assert_eq!(web.mounts.len(), 4);
}

/// `configs` as the Compose documentation writes them: a `file:` config mounted read-only
/// (short syntax at `/<name>`), a `content:` config written into the project with the long
/// syntax's `mode`, an `environment:` config from `.env`; `uid` and a secret variable are
/// listed.
#[test]
fn configs_become_read_only_file_mounts() {
    let compose = "services:
  web:
    image: nginx
    configs:
      - my_config
      - source: site
        target: /etc/nginx/conf.d/site.conf
        mode: 0440
        uid: \"101\"
      - source: tag
        target: /etc/app/tag
  api:
    image: app
    configs: [token]
configs:
  my_config:
    file: ./my_config.txt
  site:
    content: |
      server { listen 80; server_name ${HOST}; }
  tag:
    environment: APP_TAG
  token:
    environment: API_TOKEN
";
    let imported = run(
        &[
            ("docker-compose.yml", compose),
            (
                ".env",
                "HOST=example.com\nAPP_TAG=v2\nAPI_TOKEN=t0ps3cret\n",
            ),
        ],
        false,
    );
    let env = file(&imported, PROJECT_FILE);
    assert!(
        env.contains("SERVICE_WEB_VOLUMES=/src/my_config.txt:/my_config:ro,./configs/site:/etc/nginx/conf.d/site.conf:ro,./configs/tag:/etc/app/tag:ro\n"),
        "{env}"
    );
    let site = imported
        .files
        .iter()
        .find(|f| f.path == "configs/site")
        .unwrap();
    assert_eq!(
        site.contents,
        "server { listen 80; server_name example.com; }\n"
    );
    assert_eq!(site.mode, 0o440);
    assert_eq!(file(&imported, "configs/tag"), "v2");
    assert!(!env.contains("t0ps3cret"));
    assert!(!imported.files.iter().any(|f| f.path == "configs/token"));
    let listed: Vec<&str> = imported
        .not_carried()
        .filter(|f| f.key.starts_with("configs"))
        .map(|f| f.key.as_str())
        .collect();
    assert_eq!(
        listed,
        ["configs.uid", "configs"],
        "{:?}",
        imported.findings
    );
    assert_eq!(model_of(env, "web").mounts.len(), 3);
}

/// Mount options: Docker Desktop's `cached`/`delegated`/`consistency` are no-ops on Linux
/// (a note), `z`/`Z` and `nocopy` are listed with what to do; Coolify's `content:` in a
/// bind mount is written into the project and mounted from there.
#[test]
fn mount_options_and_bind_content() {
    let compose = "services:
  app:
    image: app
    volumes:
      - ./src:/app:cached
      - ./conf:/etc/app:ro,z
      - data:/data:nocopy
      - type: bind
        source: ./src2
        target: /app2
        consistency: delegated
      - type: bind
        source: ./config/configuration.yml
        target: /config/configuration.yml
        content: |
          theme: dark
volumes:
  data:
";
    let imported = run(&[("docker-compose.yml", compose)], false);
    let env = file(&imported, PROJECT_FILE);
    assert!(
        env.contains("SERVICE_APP_VOLUMES=/src/src:/app,/src/conf:/etc/app:ro,z,data:/data:nocopy,/src/src2:/app2,./config/configuration.yml:/config/configuration.yml\n"),
        "{env}"
    );
    assert_eq!(file(&imported, "config/configuration.yml"), "theme: dark\n");
    let listed: Vec<&str> = imported
        .not_carried()
        .filter(|f| f.key.starts_with("volumes"))
        .map(|f| f.reason.as_str())
        .collect();
    assert!(listed.is_empty(), "{listed:?}");
}

/// Plane's case: a secret's `${X:-default}` applies only where it is written when another
/// reference has no default (Compose gives that one an empty value); a secret whose every
/// reference has the same default keeps it as its dev value.
#[test]
fn a_secret_default_applies_only_where_compose_applies_it() {
    let compose = "services:
  db:
    image: postgres
    environment:
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:-plane}
      SESSION_SECRET: ${SESSION_SECRET:-dev-session}
  api:
    image: app
    environment:
      DATABASE_URL: ${DATABASE_URL:-postgresql://user:${POSTGRES_PASSWORD}@db/plane}
      SESSION_SECRET: ${SESSION_SECRET:-dev-session}
";
    let imported = run(&[("docker-compose.yml", compose)], false);
    let env = file(&imported, PROJECT_FILE);
    let secrets = imported
        .files
        .iter()
        .find(|f| f.path == super::DEV_SECRETS)
        .map(|f| f.contents.clone())
        .unwrap_or_default();
    assert!(!secrets.contains("POSTGRES_PASSWORD=plane"), "{secrets}");
    assert!(
        secrets.contains("SESSION_SECRET='dev-session'"),
        "{secrets}"
    );
    let loaded = crate::config::tests::load_text(env, "dev").unwrap();
    let desired = crate::model::desired(&loaded.config, &BTreeMap::new());
    let value = |service: &str, var: &str| {
        let service = desired.service(service).unwrap();
        format!("{:?}", service.env.get(var))
    };
    assert!(
        value("db", "POSTGRES_PASSWORD").contains("\"plane\""),
        "{}",
        value("db", "POSTGRES_PASSWORD")
    );
    assert!(
        value("api", "DATABASE_URL").contains("postgresql://user:@db/plane"),
        "{}",
        value("api", "DATABASE_URL")
    );
}

/// `extra_hosts` in the map form (`host: ip`, `host: [ip, ip]`) and with spaces around the
/// address, as Compose's documentation and Invoice Ninja write it.
#[test]
fn extra_hosts_map_form_and_spaces() {
    let compose = "services:
  web:
    image: nginx
    extra_hosts:
      somehost: \"162.242.195.82\"
      otherhost: [\"50.31.209.229\", \"::1\"]
      host.docker.internal: host-gateway
  app:
    image: app
    extra_hosts:
      - \"in5.localhost: 192.168.0.124 \"
";
    let imported = run(&[("docker-compose.yml", compose)], false);
    let env = file(&imported, PROJECT_FILE);
    assert!(
        env.contains("SERVICE_WEB_EXTRA_HOSTS=somehost:162.242.195.82,otherhost:50.31.209.229,otherhost:::1,host.docker.internal:host-gateway\n"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_APP_EXTRA_HOSTS=in5.localhost:192.168.0.124\n"),
        "{env}"
    );
    assert_eq!(model_of(env, "web").extra_hosts.len(), 4);
}

/// Held-out set 3: names Compose allows in lower case. A `.env` key and a `${…}` of it
/// (LibreTranslate's `libretranslate_data_folder`), a variable read from the shell
/// (CVAT's `${no_proxy}`), build arguments (Crater's `args: {user: …, uid: 1000}`).
#[test]
fn lower_case_variables_and_build_arguments_are_carried() {
    let compose = "services:
  app:
    build:
      context: .
      args:
        user: crater-user
        uid: 1000
        APP_ENV: prod
    environment:
      NO_PROXY_LIST: \"opa,${no_proxy}\"
    volumes:
      - ${libretranslate_data_folder}/db:/app/db
";
    let dotenv = "libretranslate_data_folder=/srv/libretranslate\n";
    let imported = run(&[("docker-compose.yml", compose), (".env", dotenv)], false);
    let env = file(&imported, PROJECT_FILE);
    assert!(
        env.contains("LIBRETRANSLATE_DATA_FOLDER=/srv/libretranslate\n"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_APP_VOLUMES=${LIBRETRANSLATE_DATA_FOLDER}/db:/app/db"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_APP_ENV_NO_PROXY_LIST=opa,${NO_PROXY}"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_APP_BUILD_ARGS=user=crater-user,uid=1000\n"),
        "{env}"
    );
    assert!(
        env.contains("SERVICE_APP_BUILD_ARG_APP_ENV=prod\n"),
        "{env}"
    );
    // The in-memory import writes the absolute context; the reader wants it relative.
    let app = model_of(&env.replace("_BUILD=/src\n", "_BUILD=./app\n"), "app");
    let args = &app.build.as_ref().unwrap().args;
    assert_eq!(args.get("uid").map(String::as_str), Some("1000"));
    assert_eq!(args.get("user").map(String::as_str), Some("crater-user"));
    assert_eq!(args.get("APP_ENV").map(String::as_str), Some("prod"));
}

/// Held-out set 3: what `docker compose up` activates with no `--profile`. RAGFlow's
/// `.env` names a variable in its own default (`DOC_ENGINE=${DOC_ENGINE:-elasticsearch}`)
/// and sets `COMPOSE_PROFILES=${DOC_ENGINE},${DEVICE}`; PrivateGPT's services of the
/// empty profile `""` start by default.
#[test]
fn compose_profiles_of_dotenv_and_the_empty_profile_are_activated() {
    let compose = "services:
  es01:
    image: elasticsearch:8
    profiles: [elasticsearch]
  opensearch:
    image: opensearch:2
    profiles: [opensearch]
  ragflow:
    image: ragflow:${DEVICE}
    profiles: [cpu]
";
    let dotenv = "DOC_ENGINE=${DOC_ENGINE:-elasticsearch}\nDEVICE=${DEVICE:-cpu}\nCOMPOSE_PROFILES=${DOC_ENGINE},${DEVICE}\n";
    let imported = run(&[("docker-compose.yml", compose), (".env", dotenv)], false);
    assert_eq!(imported.services, vec!["es01", "ragflow"]);
    let env = file(&imported, PROJECT_FILE);
    assert!(env.contains("DEVICE=cpu\n"), "{env}");
    assert!(!env.contains("DEVICE=${DEVICE"), "{env}");
    assert_eq!(model_of(env, "ragflow").image, "ragflow:cpu");

    let compose = "services:
  private-gpt:
    image: zylonai/private-gpt
    profiles: [\"\", ollama-cpu]
  ollama-cuda:
    image: ollama/ollama
    profiles: [ollama-cuda]
  always:
    image: traefik
";
    let imported = run(&[("docker-compose.yml", compose)], false);
    assert_eq!(imported.services, vec!["private-gpt", "always"]);
}

/// Held-out set 3: OpenCTI's `.env` names the project (`COMPOSE_PROJECT_NAME=xtm`), which
/// Compose prefers to `name:` and the folder; the volumes are `xtm_<volume>`.
#[test]
fn compose_project_name_of_dotenv_names_the_project() {
    let compose = "name: other\nservices:\n  redis:\n    image: redis:7\n";
    let dotenv = "COMPOSE_PROJECT_NAME=xtm\n";
    let imported = run(&[("docker-compose.yml", compose), (".env", dotenv)], false);
    assert_eq!(imported.project, "xtm");
    let imported = run(&[("docker-compose.yml", compose)], false);
    assert_eq!(imported.project, "other");
}

/// Mount options as the Compose documentation writes them: SELinux relabelling, a bind's
/// propagation and a volume's `nocopy`, short and long syntax, are carried into
/// `VOLUMES`; `create_host_path: false` and `subpath` are listed with the reason.
#[test]
fn mount_options_are_carried_into_volumes() {
    let compose = "services:
  app:
    image: app
    volumes:
      - ./data:/data:Z
      - ./shared:/shared:ro,rslave
      - cache:/cache:nocopy
      - type: bind
        source: ./conf
        target: /etc/app
        read_only: true
        bind:
          propagation: rshared
          selinux: z
      - type: volume
        source: media
        target: /media
        volume:
          nocopy: true
      - type: bind
        source: ./must-exist
        target: /must
        bind:
          create_host_path: false
      - type: volume
        source: media
        target: /thumbs
        volume:
          subpath: thumbs
volumes:
  cache:
  media:
";
    let imported = run(&[("docker-compose.yml", compose)], false);
    let env = file(&imported, PROJECT_FILE);
    assert!(
        env.contains("SERVICE_APP_VOLUMES=/src/data:/data:Z,/src/shared:/shared:ro,rslave,cache:/cache:nocopy,/src/conf:/etc/app:ro,rshared,z,media:/media:nocopy,/src/must-exist:/must,media:/thumbs\n"),
        "{env}"
    );
    let listed: Vec<(&str, &str)> = imported
        .not_carried()
        .map(|f| (f.key.as_str(), f.reason.as_str()))
        .collect();
    assert!(
        listed
            .iter()
            .any(|(k, r)| *k == "volumes.bind.create_host_path"
                && r.contains("creates a missing host folder")),
        "{listed:?}"
    );
    assert!(
        listed
            .iter()
            .any(|(k, r)| *k == "volumes.volume.subpath" && r.contains("API 1.45")),
        "{listed:?}"
    );
    let app = model_of(env, "app");
    let options = &app.options.mount_options;
    assert_eq!(options["/data"].relabel, Some('Z'));
    assert_eq!(options["/shared"].propagation.as_deref(), Some("rslave"));
    assert!(options["/cache"].nocopy && options["/media"].nocopy);
    assert_eq!(options["/etc/app"].words(), ["z", "rshared"]);
}
