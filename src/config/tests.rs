//! Tests of loading whole projects.

use super::*;
use crate::error::WarningKind;
use crate::project::Resolved;

pub(crate) fn load_text(text: &str, env: &str) -> Result<Loaded> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stack.env"), text).unwrap();
    load(dir.path(), env, &[], &Options::default(), |_| None)
}

fn diagnostics(result: Result<Loaded>) -> Vec<Diagnostic> {
    match result {
        Err(Error::Invalid(diagnostics)) => diagnostics,
        Err(other) => panic!("not a configuration error: {other:?}"),
        Ok(_) => panic!("the configuration was accepted"),
    }
}

fn names(loaded: &Loaded) -> Vec<&str> {
    loaded
        .config
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect()
}

#[test]
fn preset_defaults_can_be_interpolated() {
    let loaded = load_text(
        "STACK_PROJECT=my-app\nSTACK_SERVICES=web\nPOSTGRES_ENABLED=true\n\
         SERVICE_WEB_IMAGE=web:1\nSERVICE_WEB_ENV_DB=${POSTGRES_USER}@postgres/${POSTGRES_DB}:${POSTGRES_VERSION}\n",
        "dev",
    )
    .unwrap();
    let web = &loaded.config.services[0];
    assert_eq!(web.env_value("DB").unwrap(), "my_app@postgres/my_app:16");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn backup_without_postgres_names_the_line() {
    let errors = diagnostics(load_text(
        "STACK_PROJECT=app\nREDIS_ENABLED=true\nBACKUP_ENABLED=true\n",
        "dev",
    ));
    let error = errors
        .iter()
        .find(|d| {
            d.message
                .contains("`BACKUP` preset needs the `POSTGRES` preset")
        })
        .unwrap_or_else(|| panic!("{errors:?}"));
    let span = error.span.as_ref().expect("a location");
    assert_eq!(span.line, 3);
    assert!(span.line_text.contains("BACKUP_ENABLED"));
    assert!(error
        .hint
        .as_deref()
        .unwrap()
        .contains("POSTGRES_ENABLED=true"));
}

#[test]
fn monitoring_adds_its_services_and_the_exporters_of_enabled_presets() {
    let loaded = load_text(
        "STACK_PROJECT=app\nMONITORING_ENABLED=true\nPOSTGRES_ENABLED=true\n\
         SERVICE_PROMETHEUS_IMAGE=prom/prometheus:v3.0.0\n",
        "dev",
    )
    .unwrap();
    let services = names(&loaded);
    for name in [
        "prometheus",
        "alertmanager",
        "grafana",
        "loki",
        "promtail",
        "node-exporter",
        "cadvisor",
        "postgres-exporter",
    ] {
        assert!(services.contains(&name), "{name} missing from {services:?}");
    }
    assert!(!services.contains(&"redis-exporter"));
    let prometheus = &loaded
        .config
        .services
        .iter()
        .find(|s| s.name == "prometheus");
    let prometheus = prometheus.unwrap();
    assert_eq!(prometheus.image.as_deref(), Some("prom/prometheus:v3.0.0"));
    assert!(prometheus.mounts.iter().any(|m| *m
        == Mount::Bind {
            source: HostPath::Bundle("prometheus".into()),
            target: "/etc/prometheus".into(),
            read_only: true,
        }));
    let exporter = loaded
        .config
        .services
        .iter()
        .find(|s| s.name == "postgres-exporter")
        .unwrap();
    assert!(matches!(
        exporter.env["DATA_SOURCE_PASS"],
        EnvValue::Secret(_)
    ));
    assert!(matches!(
        exporter.env["DATA_SOURCE_USER"],
        EnvValue::Plain(_)
    ));
    let grafana = loaded
        .config
        .services
        .iter()
        .find(|s| s.name == "grafana")
        .unwrap();
    assert!(grafana.routes.is_empty());
    assert!(matches!(
        grafana.env["GF_SECURITY_ADMIN_PASSWORD"],
        EnvValue::Secret(_)
    ));
}

#[test]
fn grafana_route_comes_from_its_key() {
    let loaded = load_text(
        "STACK_PROJECT=app\nSTACK_DOMAIN=example.com\nMONITORING_ENABLED=true\n\
         MONITORING_GRAFANA_ROUTE=grafana.${STACK_DOMAIN}\n",
        "dev",
    )
    .unwrap();
    let grafana = loaded
        .config
        .services
        .iter()
        .find(|s| s.name == "grafana")
        .unwrap();
    assert_eq!(grafana.routes[0].host, "grafana.example.com");
    let errors = diagnostics(load_text(
        "STACK_PROJECT=app\nMONITORING_ENABLED=true\nMONITORING_GRAFANA_ROUTE=bad host\n",
        "dev",
    ));
    assert!(
        errors
            .iter()
            .any(|d| d.span.as_ref().is_some_and(|s| s.line == 3)),
        "{errors:?}"
    );
}

/// Security issue item 8: app containers must not reach what controls the monitoring
/// (Alertmanager's API, Loki, docker-proxy) nor the Docker socket.
#[test]
fn monitoring_runs_on_its_own_network_and_only_docker_proxy_has_the_socket() {
    let loaded = load_text(
        "STACK_PROJECT=app\nSTACK_DOMAIN=example.com\nSTACK_NETWORKS=backend:internal,edge\n\
         STACK_SERVICES=api,worker,db\n\
         SERVICE_API_IMAGE=api:1\nSERVICE_API_PORT=8080\nSERVICE_API_METRICS=/metrics\n\
         SERVICE_API_NETWORKS=backend\n\
         SERVICE_WORKER_IMAGE=worker:1\nSERVICE_WORKER_NETWORKS=edge\n\
         SERVICE_DB_IMAGE=db:1\nSERVICE_DB_PORT=5432\nSERVICE_DB_NETWORKS=backend\n\
         MONITORING_ENABLED=true\nMONITORING_GRAFANA_ROUTE=grafana.${STACK_DOMAIN}\n",
        "dev",
    )
    .unwrap();
    let config = &loaded.config;
    let networks = |name: &str| -> Vec<&str> {
        config
            .services
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .networks
            .iter()
            .map(String::as_str)
            .collect()
    };
    // Declared by the preset, not internal (Alertmanager posts to webhooks outside).
    let monitoring = config.networks.iter().find(|n| n.name == "monitoring");
    assert!(
        monitoring.is_some_and(|n| !n.internal),
        "{:?}",
        config.networks
    );
    for name in [
        "alertmanager",
        "loki",
        "promtail",
        "node-exporter",
        "cadvisor",
        "docker-proxy",
    ] {
        assert_eq!(networks(name), ["monitoring"], "{name}");
    }
    // Prometheus joins what it scrapes (api on backend), not the rest (worker's edge).
    assert_eq!(networks("prometheus"), ["monitoring", "backend"]);
    assert_eq!(networks("grafana"), ["default", "monitoring"]);
    let prometheus = config.services.iter().find(|s| s.name == "prometheus");
    let command = prometheus.unwrap().command.clone().unwrap_or_default();
    assert!(
        !command.iter().any(|a| a.contains("lifecycle")),
        "{command:?}"
    );
    // Only docker-proxy mounts the socket (or /var/run).
    for service in &config.services {
        for mount in &service.mounts {
            if let Mount::Bind {
                source: HostPath::Host(source),
                ..
            } = mount
            {
                let socket = source.starts_with("/var/run") || source.starts_with("/run");
                assert!(
                    !socket || service.name == "docker-proxy",
                    "{} mounts {}",
                    service.name,
                    source.display()
                );
            }
        }
    }

    // The project's own NETWORKS for Prometheus wins.
    let loaded = load_text(
        "STACK_PROJECT=app\nSTACK_SERVICES=api\nSERVICE_API_IMAGE=api:1\n\
         SERVICE_API_PORT=8080\nSERVICE_API_METRICS=/metrics\n\
         MONITORING_ENABLED=true\nSERVICE_PROMETHEUS_NETWORKS=monitoring\n",
        "dev",
    )
    .unwrap();
    let prometheus = loaded
        .config
        .services
        .iter()
        .find(|s| s.name == "prometheus");
    assert_eq!(prometheus.unwrap().networks, ["monitoring"]);
}

#[test]
fn a_preset_service_name_is_free_while_the_preset_is_off() {
    let text =
        "STACK_PROJECT=app\nSTACK_SERVICES=grafana\nSERVICE_GRAFANA_IMAGE=grafana/grafana:11.3.0\n";
    let loaded = load_text(text, "dev").unwrap();
    assert_eq!(names(&loaded), ["grafana"]);
    let errors = diagnostics(load_text(
        &format!("{text}MONITORING_ENABLED=true\n"),
        "dev",
    ));
    assert!(
        errors
            .iter()
            .any(|d| d.message.contains("reserved for the `MONITORING` preset")),
        "{errors:?}"
    );
}

#[test]
fn backup_keys_are_checked() {
    let base = "STACK_PROJECT=app\nPOSTGRES_ENABLED=true\nBACKUP_ENABLED=true\n";
    for (line, message) in [
        ("BACKUP_SCHEDULE=0 3 * *", "4 fields instead of 5"),
        ("BACKUP_SCHEDULE=0 25 * * *", "hour"),
        ("BACKUP_VERIFY_SCHEDULE=often", "1 fields instead of 5"),
        ("BACKUP_VERIFY_MAX_AGE=soon", "BACKUP_VERIFY_MAX_AGE"),
        ("BACKUP_KEEP_DAILY=many", "whole number"),
        ("BACKUP_TARGET=backups", "neither"),
        ("BACKUP_TARGET=s3://B", "bucket"),
        ("BACKUP_TARGET=s3://bucket/db", "BACKUP_S3_ACCESS_KEY"),
    ] {
        let errors = diagnostics(load_text(&format!("{base}{line}\n"), "dev"));
        let error = errors
            .iter()
            .find(|d| d.message.contains(message))
            .unwrap_or_else(|| panic!("{line}: {errors:?}"));
        assert_eq!(error.span.as_ref().map(|s| s.line), Some(4), "{line}");
    }
}

#[test]
fn backup_to_s3_adds_the_rclone_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("stack.env"),
        "STACK_PROJECT=app\nPOSTGRES_ENABLED=true\nBACKUP_ENABLED=true\n\
         SERVICE_POSTGRES_IMAGE=stack-test/postgres:15\n\
         BACKUP_TARGET=s3://backups-bucket/app/db\nBACKUP_S3_ENDPOINT=https://s3.example.com\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("environments/dev")).unwrap();
    std::fs::write(
        dir.path().join("environments/dev/secrets.env"),
        "POSTGRES_PASSWORD=pw\nBACKUP_S3_ACCESS_KEY=AKIA1\nBACKUP_S3_SECRET_KEY=se/cr+et\n",
    )
    .unwrap();
    let loaded = load(dir.path(), "dev", &[], &Options::default(), |_| None).unwrap();
    let service = |name: &str| {
        loaded
            .config
            .services
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let sidecar = service("backup-offsite");
    let key = "RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY";
    assert!(matches!(sidecar.env[key], EnvValue::Secret(_)));
    assert_eq!(sidecar.env_value(key).unwrap(), "se/cr+et");
    assert!(matches!(
        sidecar.env["RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID"],
        EnvValue::Secret(_)
    ));
    assert_eq!(
        sidecar.env_value("RCLONE_CONFIG_OFFSITE_ENDPOINT").unwrap(),
        "https://s3.example.com"
    );
    assert_eq!(
        sidecar.env_value("BACKUP_OFFSITE").unwrap(),
        "offsite:backups-bucket/app/db"
    );
    let backup = service("backup");
    // The backup job runs the postgres service's image.
    assert_eq!(backup.image.as_deref(), Some("stack-test/postgres:15"));
    assert!(backup
        .mounts
        .iter()
        .any(|m| matches!(m, Mount::Volume { name, .. } if name == "backup-data")));
}

/// The resolved settings of a `stack.env` with `text`, for testing single phases.
fn resolve_text(text: &str) -> Resolved {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stack.env"), text).unwrap();
    let sources = project::load(dir.path(), "dev", &[]).unwrap();
    project::resolve(&sources.layers, &builtins("dev"), |_| None).unwrap()
}

#[test]
fn keys_are_classified_by_what_they_configure() {
    use phases::{classify_keys, Unknown};
    let resolved = resolve_text(
        "STACK_PROJECT=app\nSTACK_DOMIAN=example.com\nSERVICE_WEB_IMAGE=web:1\n\
         SERVICE_WEB_ENV_FOO=1\nSERVICE_WEB_PROT=80\nSERVICE_API_PORT=80\n\
         POSTGRES_DB=app\nPOSTGRES_DBB=x\nSERVER_HOST=h\nSERVER_HOSTS=h\nMY_VAR=1\n",
    );
    let names = vec!["web".to_string()];
    let index = keys::ServiceIndex::new(&names);
    let classified = classify_keys(&resolved.settings, &index, &BTreeSet::new());
    assert_eq!(
        classified.service_attrs["web"],
        [
            (keys::ServiceAttr::Attr("IMAGE"), "SERVICE_WEB_IMAGE"),
            (keys::ServiceAttr::Env("FOO".into()), "SERVICE_WEB_ENV_FOO"),
        ]
    );
    assert_eq!(classified.service_attrs.len(), 1);
    assert_eq!(classified.globals, ["STACK_PROJECT"]);
    assert_eq!(classified.server, ["SERVER_HOST"]);
    assert_eq!(classified.preset, ["POSTGRES_DB"]);
    assert_eq!(classified.other, ["MY_VAR"]);
    let unknown: Vec<String> = classified
        .unknown
        .iter()
        .map(|u| match u {
            Unknown::Service(key, _) => format!("service {key}"),
            Unknown::Global(key, _) => format!("global {key}"),
            Unknown::Server(key, _) => format!("server {key}"),
            Unknown::Preset(key, _, preset) => format!("{} {key}", preset.name),
        })
        .collect();
    assert_eq!(
        unknown,
        [
            "global STACK_DOMIAN",
            "service SERVICE_WEB_PROT",
            "service SERVICE_API_PORT",
            "POSTGRES POSTGRES_DBB",
            "server SERVER_HOSTS",
        ]
    );
}

#[test]
fn a_key_set_in_the_secrets_file_belongs_to_its_preset() {
    let resolved = resolve_text("STACK_PROJECT=app\nPOSTGRES_EXTRA=x\n");
    let names: Vec<String> = Vec::new();
    let index = keys::ServiceIndex::new(&names);
    let secret_layer = BTreeSet::from(["POSTGRES_EXTRA"]);
    let classified = phases::classify_keys(&resolved.settings, &index, &secret_layer);
    assert_eq!(classified.preset, ["POSTGRES_EXTRA"]);
    assert!(classified.unknown.is_empty());
}

#[test]
fn the_environment_filter_keeps_the_services_of_this_environment() {
    let text = "STACK_PROJECT=app\nSTACK_SERVICES=web,admin,ui\n\
                SERVICE_WEB_IMAGE=web:1\nSERVICE_ADMIN_IMAGE=admin:1\nSERVICE_UI_IMAGE=ui:1\n\
                SERVICE_ADMIN_ENVIRONMENTS=prod\nSERVICE_UI_FRONTEND=true\n";
    assert_eq!(names(&load_text(text, "dev").unwrap()), ["web", "ui"]);
    let prod = load_text(text, "prod").unwrap();
    assert_eq!(names(&prod), ["web", "admin"]);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stack.env"), text).unwrap();
    let options = Options {
        include_frontends: true,
        ..Options::default()
    };
    let with_ui = load(dir.path(), "prod", &[], &options, |_| None).unwrap();
    assert_eq!(names(&with_ui), ["web", "admin", "ui"]);

    // The phase alone: a service limited to another environment is dropped.
    let services = with_ui.config.services.clone();
    let kept = phases::in_environment(services.clone(), "staging", &Options::default());
    let kept: Vec<&str> = kept.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(kept, ["web", "ui"]);
    let kept = phases::in_environment(services, "prod", &Options::default());
    let kept: Vec<&str> = kept.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(kept, ["web", "admin"]);
}

#[test]
fn declared_services_drop_repeated_and_reserved_names() {
    let errors = diagnostics(load_text(
        "STACK_PROJECT=app\nPOSTGRES_ENABLED=true\nSTACK_SERVICES=web,web,postgres,proxy\nSERVICE_WEB_IMAGE=web:1\n",
        "dev",
    ));
    let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "service `web` is listed twice in `STACK_SERVICES`",
            "service name `postgres` is reserved for the `POSTGRES` preset",
            "service name `proxy` is reserved for the proxy stack runs",
        ]
    );
}

#[test]
fn thousands_of_unknown_service_keys_report_a_bounded_number_of_errors() {
    let mut text = String::from("STACK_PROJECT=app\nSTACK_SERVICES=web\nSERVICE_WEB_IMAGE=web:1\n");
    for n in 0..5000 {
        text.push_str(&format!("SERVICE_X{n}_FOO=1\n"));
    }
    let started = std::time::Instant::now();
    let errors = diagnostics(load_text(&text, "dev"));
    eprintln!("{} errors in {:?}", errors.len(), started.elapsed());
    assert_eq!(errors.len(), lookup::MAX_ERRORS + 1);
    assert!(errors[..lookup::MAX_ERRORS].iter().all(|d| d
        .message
        .contains("does not belong to any declared service")));
    assert_eq!(
        errors.last().unwrap().message,
        format!("… and {} more errors", 5000 - lookup::MAX_ERRORS)
    );
}

#[test]
fn the_env_list_spells_any_name_and_env_var_keys_win() {
    let loaded = load_text(
        "STACK_PROJECT=p\nSTACK_SERVICES=search\nSTACK_SECRETS=ES_PASSWORD\nES_PASSWORD=hunter2\n\
         SERVICE_SEARCH_IMAGE=es:8\n\
         SERVICE_SEARCH_ENV=discovery.type=single-node, http_proxy=http://p:3128,MODE=list\n\
         SERVICE_SEARCH_ENV_MODE=key\n\
         SERVICE_SEARCH_ENV_ELASTIC_PASSWORD=${ES_PASSWORD}\n",
        "dev",
    )
    .unwrap();
    let service = &loaded.config.services[0];
    let env = &service.env;
    assert_eq!(env["discovery.type"], EnvValue::Plain("single-node".into()));
    assert_eq!(service.env_value("http_proxy").unwrap(), "http://p:3128");
    assert_eq!(service.env_value("MODE").unwrap(), "key");
    assert!(matches!(env["ELASTIC_PASSWORD"], EnvValue::Secret(_)));
    assert_eq!(
        crate::config::keys::secret_var("search", "discovery.type"),
        "SEARCH__ENV_646973636f766572792e74797065"
    );
    assert_eq!(
        crate::config::keys::secret_var("search", "A_1"),
        "SEARCH__A_1"
    );
}

#[test]
fn a_comma_inside_an_env_or_label_item_is_escaped() {
    let loaded = load_text(
        "STACK_PROJECT=p\nSTACK_SERVICES=app\nSERVICE_APP_IMAGE=a:1\n\
         SERVICE_APP_ENV=no_proxy=a\\,b\\, , x.y=c\\d\n\
         SERVICE_APP_LABELS='r=PathPrefix(`/a/`\\, `/b/`),k=a,b'\n",
        "dev",
    )
    .unwrap();
    let service = &loaded.config.services[0];
    assert_eq!(service.env_value("no_proxy").unwrap(), "a,b,");
    assert_eq!(service.env_value("x.y").unwrap(), "c\\d");
    assert_eq!(service.labels["r"], "PathPrefix(`/a/`, `/b/`)");
    // An item without `=` still continues the label before it.
    assert_eq!(service.labels["k"], "a,b");
    let errors = diagnostics(load_text(
        "STACK_PROJECT=p\nSTACK_SERVICES=app\nSERVICE_APP_IMAGE=a:1\nSERVICE_APP_ENV='a=b\\'\n",
        "dev",
    ));
    let text = errors[0].render();
    assert!(text.contains("ends with a lone backslash"), "{text}");
    assert!(text.contains("stack.env:4"), "{text}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// `LABELS` whose values hold commas, blanks and backslashes, each item escaped and
    /// the list written by the project-file writer, reads back as the same labels.
    #[test]
    fn a_list_written_by_the_writer_reads_back(values in proptest::collection::vec("[a-z,\\\\][a-z ,\\\\`()&/]{0,12}[a-z,\\\\]", 1..6)) {
        let items: Vec<String> = values.iter().enumerate().map(|(i, v)| format!("k{i}={v}")).collect();
        let escaped: Vec<String> = items.iter().map(|i| crate::config::values::escape_item(i)).collect();
        let text = format!(
            "STACK_PROJECT=p\nSTACK_SERVICES=app\nSERVICE_APP_IMAGE=a:1\nSERVICE_APP_LABELS={}\n",
            crate::project::writer::template(&escaped.join(","))
        );
        let loaded = load_text(&text, "dev").unwrap();
        let labels = &loaded.config.services[0].labels;
        for (i, v) in values.iter().enumerate() {
            proptest::prop_assert_eq!(&labels[&format!("k{i}")], v, "written as {}", text);
        }
    }
}

#[test]
fn build_attributes_need_build_and_refuse_secrets() {
    let errors = diagnostics(load_text(
        "STACK_PROJECT=p\nSTACK_SERVICES=api,web\nSTACK_SECRETS=TOKEN\nTOKEN=x\n\
         SERVICE_API_IMAGE=api:1\nSERVICE_API_BUILD_TARGET=prod\n\
         SERVICE_WEB_BUILD=.\nSERVICE_WEB_BUILD_ARG_TOKEN=${TOKEN}\n",
        "dev",
    ));
    let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`SERVICE_API_BUILD_TARGET` is set but")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("passes a secret")),
        "{messages:?}"
    );
}

#[test]
fn log_rotation_defaults_and_checks() {
    let loaded = load_text("STACK_PROJECT=p\n", "dev").unwrap();
    assert_eq!(loaded.config.logging.max_size.to_string(), "10m");
    assert_eq!(loaded.config.logging.max_files, 3);
    let errors = diagnostics(load_text(
        "STACK_PROJECT=p\nSTACK_LOG_MAX_SIZE=ten\nSTACK_LOG_MAX_FILES=0\n",
        "dev",
    ));
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn image_references_follow_the_distribution_grammar() {
    let digest = format!("sha256:{}", "a".repeat(64));
    for good in [
        "postgres",
        "postgres:16-alpine",
        "ghcr.io/acme/api:1.4.2",
        "localhost:5000/team/app",
        "Registry.Example.com:443/a/b_c__d---e.f:V1_x",
        "gcr.io/cadvisor/cadvisor:v0.49.1",
        "[::1]:5000/app:1",
        &format!("acme/api@{digest}"),
        &format!("acme/api:1.0@{digest}"),
    ] {
        assert_eq!(validate::image_reference(good), Ok(()), "{good}");
    }
    for bad in [
        "Web/App:1",
        "App",
        "acme/App:1",
        "app@sha256:xyz",
        "app@md5:abc",
        &format!("app@sha256:{}", "A".repeat(64)),
        "app:-1",
        "app:.x",
        &format!("app:{}", "x".repeat(129)),
        "acme//api",
        "acme/api.",
        "acme/_api",
        "acme/a___b",
        "acme/a.-b",
        "reg:port/app",
        "",
    ] {
        assert!(validate::image_reference(bad).is_err(), "{bad}");
    }
}

#[test]
fn retention_cannot_overflow() {
    assert_eq!(presets::retention_hours("15d"), Some(360));
    assert_eq!(presets::retention_hours("99999999999999999y"), None);
    assert_eq!(presets::retention_hours("18446744073709551615h"), None);
    assert_eq!(presets::retention_hours("101y"), None);
}

#[test]
fn route_paths_cannot_climb_out_of_their_prefix() {
    let base =
        "STACK_PROJECT=app\nSTACK_SERVICES=web\nSERVICE_WEB_IMAGE=web:1\nSERVICE_WEB_PORT=80\n";
    for route in [
        "/a/..",
        "/a/./b",
        "/%2e%2e/x",
        "/a%2Fb",
        "/a%",
        "/a%zz",
        "/a%5c",
        "/a//b",
    ] {
        let errors = diagnostics(load_text(
            &format!("{base}SERVICE_WEB_ROUTE={route}\n"),
            "dev",
        ));
        assert!(
            errors.iter().any(|d| d.message.contains("invalid route")),
            "{route}: {errors:?}"
        );
    }
    for route in ["/a..b/c", "/caf%C3%A9", "/v1.2/x"] {
        load_text(&format!("{base}SERVICE_WEB_ROUTE={route}\n"), "dev")
            .unwrap_or_else(|e| panic!("{route}: {e:?}"));
    }
}

#[test]
fn schedules_people_write_become_cron_fields() {
    use crate::config::presets::cron_schedule;
    for (written, fields) in [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("every 6h", "0 */6 * * *"),
        ("every 15m", "*/15 * * * *"),
        ("30 2 * * 1", "30 2 * * 1"),
    ] {
        assert_eq!(cron_schedule(written), fields, "{written}");
    }
    let base = "STACK_PROJECT=app\nPOSTGRES_ENABLED=true\nBACKUP_ENABLED=true\n";
    let loaded = load_text(&format!("{base}BACKUP_SCHEDULE=every 6h\n"), "dev").unwrap();
    let backup = loaded
        .config
        .services
        .iter()
        .find(|s| s.name == "backup")
        .unwrap();
    assert_eq!(backup.env_value("BACKUP_CRON").unwrap(), "0 */6 * * *");
    assert_eq!(backup.env_value("BACKUP_VERIFY_CRON").unwrap(), "0 4 * * 0");
    for bad in ["every 30h", "every day", "@often"] {
        let errors = diagnostics(load_text(&format!("{base}BACKUP_SCHEDULE={bad}\n"), "dev"));
        assert!(
            errors
                .iter()
                .any(|d| d.hint.as_deref().is_some_and(|h| h.contains("every 6h"))),
            "{bad}: {errors:?}"
        );
    }
}

#[test]
fn release_command_and_its_timeout_are_checked() {
    let base = "STACK_PROJECT=app\nSTACK_SERVICES=web\nSERVICE_WEB_IMAGE=web:1\n";
    let loaded = load_text(
        &format!("{base}SERVICE_WEB_RELEASE=bin/migrate --all\n"),
        "dev",
    )
    .unwrap();
    let release = loaded.config.services[0].release.clone().expect("release");
    assert_eq!(release.command, ["bin/migrate", "--all"]);
    assert_eq!(release.timeout, std::time::Duration::from_secs(600));
    let loaded = load_text(
        &format!("{base}SERVICE_WEB_RELEASE=migrate\nSERVICE_WEB_RELEASE_TIMEOUT=90s\n"),
        "dev",
    )
    .unwrap();
    let release = loaded.config.services[0].release.clone().expect("release");
    assert_eq!(release.timeout, std::time::Duration::from_secs(90));
    for (text, wanted) in [
        (
            "SERVICE_WEB_RELEASE_TIMEOUT=5m\n",
            "`SERVICE_WEB_RELEASE` is not",
        ),
        (
            "SERVICE_WEB_RELEASE=x\nSERVICE_WEB_RELEASE_TIMEOUT=soon\n",
            "must be a duration",
        ),
        (
            "SERVICE_WEB_RELEASE=x\nSERVICE_WEB_RELEASE_TIMEOUT=0s\n",
            "from 1s to 24h",
        ),
        ("SERVICE_WEB_RELEASE=sh -c 'open\n", "unterminated quote"),
        ("SERVICE_WEB_RELEASE=\n", "is empty"),
    ] {
        let errors = diagnostics(load_text(&format!("{base}{text}"), "dev"));
        assert!(
            errors
                .iter()
                .any(|d| d.message.contains(wanted) && d.span.is_some()),
            "{text}: {errors:?}"
        );
    }
}

/// Write `files` (path, contents) as a project and load it for `env`.
pub(crate) fn load_files(files: &[(&str, &str)], env: &str) -> Result<Loaded> {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    load(dir.path(), env, &[], &Options::default(), |_| None)
}

#[test]
fn a_key_set_twice_in_one_file_warns_with_both_lines() {
    let loaded = load_files(
        &[
            (
                "stack.env",
                "STACK_PROJECT=shop\nSTACK_SERVICES=web\nSERVICE_WEB_IMAGE=web:1\n\
                 SERVICE_WEB_PORT=80\nSTACK_SECRETS=TOKEN\nSERVICE_WEB_PORT=8080\n",
            ),
            (
                "environments/staging/secrets.env",
                "TOKEN=first-value-never-shown\n# comment\nTOKEN=second-value-never-shown\n",
            ),
            // The same key in two files is how overlays work: no warning.
            ("environments/staging/stack.env", "SERVICE_WEB_PORT=9090\n"),
        ],
        "staging",
    )
    .unwrap();
    let twice: Vec<&Diagnostic> = loaded
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::DuplicateKey)
        .map(|w| &w.diagnostic)
        .collect();
    let keys: Vec<&str> = loaded.warnings.iter().map(|w| w.key.as_str()).collect();
    assert!(keys.contains(&"TOKEN"), "{keys:?}");
    assert_eq!(twice.len(), 2, "{:?}", loaded.warnings);
    assert!(twice[0].message.contains("stack.env:4 and at stack.env:6"));
    assert_eq!(twice[0].span.as_ref().unwrap().line, 6);
    let secret = twice[1];
    assert!(secret
        .message
        .contains("environments/staging/secrets.env:1 and at environments/staging/secrets.env:3"));
    let shown = secret.render();
    assert!(!shown.contains("value-never-shown"), "{shown}");
    assert_eq!(loaded.config.services[0].port, Some(9090));
}

#[test]
fn keys_that_read_two_ways_warn_with_both_readings() {
    let loaded = load_text(
        "STACK_PROJECT=shop\nSTACK_SERVICES=web,web-env\nSERVICE_WEB_IMAGE=web:1\n\
         SERVICE_WEB_ENV_IMAGE=other:1\n",
        "dev",
    )
    .unwrap();
    let ambiguous: Vec<&Diagnostic> = loaded
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::AmbiguousKey)
        .map(|w| &w.diagnostic)
        .collect();
    // `SERVICE_WEB_IMAGE` reads one way only.
    assert_eq!(ambiguous.len(), 1, "{:?}", loaded.warnings);
    let keyed = loaded
        .warnings
        .iter()
        .find(|w| w.kind == WarningKind::AmbiguousKey);
    assert_eq!(keyed.map(|w| w.key.as_str()), Some("SERVICE_WEB_ENV_IMAGE"));
    let warning = ambiguous[0];
    assert!(warning.message.contains("`SERVICE_WEB_ENV_IMAGE`"));
    assert!(warning
        .message
        .contains("the attribute `IMAGE` of service `web-env`"));
    assert!(warning.message.contains("the variable `IMAGE`"));
    assert!(warning.message.contains("of service `web`"));
    assert_eq!(warning.span.as_ref().unwrap().line, 4);
}

#[test]
fn mailpit_is_routed_outside_dev_only_behind_its_own_login() {
    let project = "STACK_PROJECT=shop\nSTACK_DOMAIN=shop.example.com\nMAILPIT_ENABLED=true\n";
    let mailpit = |loaded: &Loaded| {
        loaded
            .config
            .services
            .iter()
            .find(|s| s.name == "mailpit")
            .expect("mailpit runs")
            .routes
            .len()
    };
    let dev = load_files(&[("stack.env", project)], "dev").unwrap();
    assert_eq!(mailpit(&dev), 1);
    assert!(dev.warnings.is_empty(), "{:?}", dev.warnings);

    let staging = load_files(&[("stack.env", project)], "staging").unwrap();
    assert_eq!(mailpit(&staging), 0, "routed in staging without a login");
    let warning = staging
        .warnings
        .iter()
        .find(|w| w.kind == WarningKind::UnguardedMailpit && w.key == "SERVICE_MAILPIT_ROUTE")
        .map(|w| &w.diagnostic)
        .unwrap_or_else(|| panic!("{:?}", staging.warnings));
    assert!(warning
        .message
        .contains("`mailpit` is not routed in `staging`"));
    assert!(warning.message.contains("mail.shop.example.com"));
    assert!(warning
        .hint
        .as_deref()
        .unwrap()
        .contains("SERVICE_MAILPIT_BASIC_AUTH"));

    let hash = bcrypt::hash("open-sesame", 4).unwrap();
    let gated = load_files(
        &[
            ("stack.env", project),
            (
                "environments/staging/stack.env",
                "STACK_SECRETS=MAIL_HASH\nSERVICE_MAILPIT_BASIC_AUTH=team:MAIL_HASH\n",
            ),
            (
                "environments/staging/secrets.env",
                &format!("MAIL_HASH='{hash}'\n"),
            ),
        ],
        "staging",
    )
    .unwrap();
    assert_eq!(mailpit(&gated), 1);
    assert!(
        !gated
            .warnings
            .iter()
            .any(|w| w.kind == WarningKind::UnguardedMailpit),
        "{:?}",
        gated.warnings
    );
}

#[test]
fn a_key_only_the_shorter_service_name_reads_says_so() {
    let errors = diagnostics(load_text(
        "STACK_PROJECT=shop\nSTACK_SERVICES=web,web-env\nSERVICE_WEB_IMAGE=web:1\n\
         SERVICE_WEB_ENV_IMAGE=other:1\nSERVICE_WEB_ENV_MODE=x\n",
        "dev",
    ));
    let error = &errors[0];
    assert!(
        error.message.contains("unknown attribute `MODE`"),
        "{errors:?}"
    );
    assert_eq!(error.span.as_ref().unwrap().line, 5);
    let hint = error.hint.as_deref().unwrap();
    assert!(hint.contains("the variable `MODE`"), "{hint}");
    assert!(hint.contains("of service `web`"), "{hint}");
}

pub(crate) const JOB: &str = "STACK_PROJECT=app\nSTACK_SERVICES=app,migrate\n\
     SERVICE_APP_IMAGE=app:1\nSERVICE_MIGRATE_IMAGE=app:1\n";

#[test]
fn depends_on_completed_marks_a_job() {
    let loaded = load_text(
        &format!("{JOB}SERVICE_MIGRATE_RESTART=no\nSERVICE_APP_DEPENDS_ON=migrate:completed\n"),
        "dev",
    )
    .unwrap();
    let app = &loaded.config.services[0];
    assert_eq!(app.depends_on, vec!["migrate".to_string()]);
    assert!(app.depends_completed.contains("migrate"));
}

#[test]
fn depends_on_unknown_condition_names_the_line() {
    let errors = diagnostics(load_text(
        &format!("{JOB}SERVICE_MIGRATE_RESTART=no\nSERVICE_APP_DEPENDS_ON=migrate:healthy\n"),
        "dev",
    ));
    let error = errors
        .iter()
        .find(|d| d.message.contains("unknown condition `healthy`"))
        .unwrap_or_else(|| panic!("{errors:?}"));
    assert_eq!(error.span.as_ref().expect("a location").line, 6);
    assert!(error.hint.as_deref().unwrap().contains("migrate:completed"));
}

#[test]
fn completed_dependency_must_not_restart() {
    let errors = diagnostics(load_text(
        &format!("{JOB}SERVICE_APP_DEPENDS_ON=migrate:completed\n"),
        "dev",
    ));
    let error = errors
        .iter()
        .find(|d| {
            d.message
                .contains("service `migrate` restarts (`unless-stopped`)")
        })
        .unwrap_or_else(|| panic!("{errors:?}"));
    assert!(error
        .hint
        .as_deref()
        .unwrap()
        .contains("SERVICE_MIGRATE_RESTART=no"));
}

#[test]
fn completed_dependency_has_one_replica() {
    let errors = diagnostics(load_text(
        &format!(
            "{JOB}SERVICE_MIGRATE_RESTART=no\nSERVICE_MIGRATE_REPLICAS=2\nSERVICE_APP_DEPENDS_ON=migrate:completed\n"
        ),
        "dev",
    ));
    let error = errors
        .iter()
        .find(|d| d.message.contains("service `migrate` has 2 replicas"))
        .unwrap_or_else(|| panic!("{errors:?}"));
    assert_eq!(error.span.as_ref().expect("a location").line, 6);
}

#[test]
fn completed_dependency_is_waited_for_one_way() {
    let errors = diagnostics(load_text(
        "STACK_PROJECT=app\nSTACK_SERVICES=app,web,migrate\nSERVICE_APP_IMAGE=app:1\n\
         SERVICE_WEB_IMAGE=app:1\nSERVICE_MIGRATE_IMAGE=app:1\nSERVICE_MIGRATE_RESTART=no\n\
         SERVICE_APP_DEPENDS_ON=migrate:completed\nSERVICE_WEB_DEPENDS_ON=migrate\n",
        "dev",
    ));
    assert!(
        errors.iter().any(|d| d.message.contains(
            "`app` waits for `migrate` to complete, but `web` wait(s) for it to be ready"
        )),
        "{errors:?}"
    );
}

#[test]
fn completed_dependency_is_refused_on_swarm() {
    let errors = diagnostics(load_text(
        &format!(
            "STACK_TARGET=swarm\n{JOB}SERVICE_MIGRATE_RESTART=no\nSERVICE_APP_DEPENDS_ON=migrate:completed\n"
        ),
        "dev",
    ));
    let error = errors
        .iter()
        .find(|d| d.message.contains("which stack cannot do on swarm"))
        .unwrap_or_else(|| panic!("{errors:?}"));
    assert_eq!(error.span.as_ref().expect("a location").line, 7);
}

#[test]
fn warnings_carry_their_kind_key_and_line() {
    let loaded = load_text(
        "STACK_PROJECT=shop\nSTACK_SERVICES=web\nSERVICE_WEB_IMAGE=web:1\nSERVICE_WEB_ENV_TAG=v${TAG}\n\
         SERVICE_WEB_STRATEGY=rolling\n",
        "dev",
    )
    .unwrap();
    let found = |kind: WarningKind| {
        loaded
            .warnings
            .iter()
            .find(|w| w.kind == kind)
            .unwrap_or_else(|| panic!("{kind:?} in {:?}", loaded.warnings))
    };
    let unset = found(WarningKind::UnsetVariable);
    assert_eq!(unset.key, "SERVICE_WEB_ENV_TAG");
    assert_eq!(unset.diagnostic.span.as_ref().map(|s| s.line), Some(4));
    let rolling = found(WarningKind::RollingWithoutHealth);
    assert_eq!(rolling.key, "SERVICE_WEB_STRATEGY");
    assert_eq!(rolling.diagnostic.span.as_ref().map(|s| s.line), Some(5));
}
