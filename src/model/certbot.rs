//! nginx's ACME client: with `STACK_PROXY=nginx` and `STACK_TLS=auto`, a `certbot`
//! service beside the proxy gets a certificate for every routed host (HTTP-01 through the
//! webroot volume nginx serves), renews it, and installs it where nginx loads it on every
//! TLS handshake (volume `nginx-certs`), so neither issuance nor renewal reloads nginx.
//! Its account and certificates live in the named volume `certbot-state`, so a redeploy,
//! a restart or a reboot orders nothing again. Its script is `certbot.sh` in the bundle.

use std::time::Duration;

use super::build::labels;
use super::*;
use crate::config::Config;

/// The service's name, reserved while nginx runs.
pub const CERTBOT_SERVICE: &str = "certbot";
/// Its script in the bundle.
pub const CERTBOT_FILE: &str = "certbot.sh";
/// Where the script is in the container.
const SCRIPT_TARGET: &str = "/etc/stack/certbot.sh";
/// Renewal checks when `STACK_CERTBOT_INTERVAL` is not set.
pub const CERTBOT_INTERVAL: Duration = Duration::from_secs(12 * 3600);

/// The project runs certbot ([`super::Routing::certbot`]).
pub fn wants_certbot(config: &Config) -> bool {
    super::settings::routing(config).is_some_and(|routing| routing.certbot())
}

/// The MONITORING preset runs in this environment: the expiry metrics have a reader.
pub fn monitors(config: &Config) -> bool {
    config
        .services
        .iter()
        .any(|s| s.preset == Some(crate::config::presets::PRESET_MONITORING))
}

/// The routed hosts the proxy gets certificates for from an ACME server (`STACK_TLS=auto`).
pub fn acme_hosts(desired: &Desired) -> Vec<String> {
    let Some(routing) = desired
        .routing
        .as_ref()
        .filter(|r| r.tls == crate::config::Tls::Auto)
    else {
        return Vec::new();
    };
    let mut hosts: Vec<String> = Vec::new();
    for route in routing.services.iter().flat_map(|s| &s.routes) {
        if !hosts.contains(&route.host) {
            hosts.push(route.host.clone());
        }
    }
    hosts
}

/// The `certbot` service, when the project wants it.
pub fn certbot(config: &Config) -> Option<DesiredService> {
    if !wants_certbot(config) {
        return None;
    }
    let mut mounts = vec![Mount::Bind {
        source: HostPath::Bundle(CERTBOT_FILE.to_string()),
        target: SCRIPT_TARGET.to_string(),
        read_only: true,
    }];
    let mut env = BTreeMap::new();
    // node-exporter reads the expiry metrics from this volume (textfile collector).
    let monitoring = monitors(config);
    if let Some(root) = &config.acme.ca_root {
        mounts.push(Mount::Bind {
            source: HostPath::Project(root.clone()),
            target: ACME_CA_ROOT_TARGET.to_string(),
            read_only: true,
        });
        // certbot speaks to the ACME server through Python's requests.
        env.insert(
            "REQUESTS_CA_BUNDLE".to_string(),
            EnvValue::Plain(ACME_CA_ROOT_TARGET.to_string()),
        );
    }
    for (name, target) in [
        ("nginx-acme", "/var/www/acme"),
        ("nginx-certs", "/etc/nginx/certs"),
        ("certbot-state", "/etc/letsencrypt"),
    ]
    .into_iter()
    .chain(monitoring.then_some((METRICS_VOLUME, METRICS_TARGET)))
    {
        mounts.push(Mount::Volume {
            name: name.to_string(),
            target: target.to_string(),
            read_only: false,
        });
    }
    Some(DesiredService {
        name: CERTBOT_SERVICE.into(),
        image: config
            .acme
            .certbot_image
            .clone()
            .unwrap_or_else(|| crate::config::CERTBOT_IMAGE.to_string()),
        build: None,
        command: Some(vec![SCRIPT_TARGET.to_string()]),
        env,
        mounts,
        ports: Vec::new(),
        expose: Vec::new(),
        routes: Vec::new(),
        health: None,
        restart: Restart::UnlessStopped,
        resources: Resources::default(),
        replicas: 1,
        strategy: Strategy::Recreate,
        drain: None,
        depends_on: Vec::new(),
        job: false,
        labels: labels(config, CERTBOT_SERVICE, Strategy::Recreate),
        extra_hosts: Vec::new(),
        networks: vec![crate::config::DEFAULT_NETWORK.to_string()],
        secret_files: Vec::new(),
        options: ContainerOptions {
            // The official image's entrypoint is `certbot`; the script drives it.
            entrypoint: Some(vec!["/bin/sh".to_string()]),
            ..ContainerOptions::default()
        },
        logging: config.logging,
        release: None,
        schedule: None,
        refresh: None,
        digest: String::new(),
        pinned: None,
    })
}
