//! What previews change in [`Desired`] (pure). An environment with `STACK_PREVIEW_DOMAIN`
//! gives its one proxy the network it shares with the previews' routers and the folder of
//! their routes. A preview (`config.preview`) keeps its own proxy as a router that
//! publishes no port and joins that shared network, and every container of it gets the
//! preview limits unless it has its own. A preview seeded from a backup
//! (`STACK_PREVIEW_SEED=backup`) gives its Postgres the volume that holds the dump and
//! the script that restores it, as its first-start folder.

use super::*;
use crate::config::preview::{Seed, PREVIEWS_NETWORK};
use crate::config::{Config, ProxyKind};

/// Where the environment's proxy reads the previews' routes (`STATE/preview-routes`).
pub fn routes_target(kind: ProxyKind) -> &'static str {
    match kind {
        ProxyKind::Nginx => "/etc/nginx/previews",
        _ => "/etc/caddy/previews",
    }
}

/// The extension of a preview's route file for the proxy `kind` (`<name>.caddy`).
pub fn routes_extension(kind: ProxyKind) -> &'static str {
    match kind {
        ProxyKind::Nginx => "nginx",
        _ => "caddy",
    }
}

/// The preview's own volume that holds the environment's dump and the script that
/// restores it (`STACK_PREVIEW_SEED=backup`), filled before its first deploy.
pub const SEED_VOLUME: &str = "stack-preview-seed";

/// Where the preview's Postgres reads it: the image's first-start folder, run once, on
/// an empty data volume, before the server listens on the network (so before its health
/// check passes and its dependents start).
pub const SEED_TARGET: &str = "/docker-entrypoint-initdb.d";

/// The POSTGRES preset's service, which a backup seed restores into.
pub const SEED_SERVICE: &str = "postgres";

/// Where certbot reads the previews' hosts (`<name>.hosts`, from [`ROUTES_DIR`]).
pub const CERTBOT_PREVIEWS_TARGET: &str = "/etc/stack/previews";

/// The extension of the file of a preview's hosts that certbot gets certificates for.
pub const HOSTS_EXTENSION: &str = "hosts";

/// The state folder of the environment that holds one `<name>.caddy` per preview.
pub const ROUTES_DIR: &str = "preview-routes";

/// Does `config`'s proxy serve previews (the environment's side)?
pub fn hosts_previews(config: &Config) -> bool {
    config.previews.domain.is_some()
        && config.preview.is_none()
        && matches!(config.proxy.kind, ProxyKind::Caddy | ProxyKind::Nginx)
        && config.target == crate::config::Target::Compose
        && config.needs_proxy()
}

/// Adapt the services of `config` (before their digests are taken).
pub fn adapt(config: &Config, services: &mut [DesiredService]) {
    if hosts_previews(config) {
        if let Some(proxy) = services.iter_mut().find(|s| s.name == PROXY_SERVICE) {
            proxy.networks.push(PREVIEWS_NETWORK.to_string());
            proxy.mounts.push(Mount::Bind {
                source: HostPath::State(ROUTES_DIR.to_string()),
                target: routes_target(config.proxy.kind).to_string(),
                read_only: true,
            });
        }
        // certbot (nginx) gets the previews' hosts from the same folder (`<name>.hosts`).
        if let Some(certbot) = services.iter_mut().find(|s| s.name == CERTBOT_SERVICE) {
            certbot.mounts.push(Mount::Bind {
                source: HostPath::State(ROUTES_DIR.to_string()),
                target: CERTBOT_PREVIEWS_TARGET.to_string(),
                read_only: true,
            });
        }
        return;
    }
    let Some(preview) = &config.preview else {
        return;
    };
    let limits = &config.previews;
    for service in services.iter_mut() {
        let resources = &mut service.resources;
        resources.memory_mb = resources.memory_mb.or(Some(limits.memory_mb));
        resources.cpus = resources.cpus.or(Some(limits.cpus));
        if service.name == PROXY_SERVICE {
            // The router: reached by the environment's proxy by container name.
            service.ports.clear();
            service.networks.push(preview.shared_network());
        }
        if service.name == SEED_SERVICE && limits.seed == Seed::Backup {
            service.mounts.push(Mount::Volume {
                name: SEED_VOLUME.to_string(),
                target: SEED_TARGET.to_string(),
                read_only: true,
            });
        }
    }
}

/// The named volumes previews add: a backup-seeded preview's seed volume.
pub fn volumes(config: &Config) -> Option<String> {
    (config.preview.is_some() && config.previews.seed == Seed::Backup)
        .then(|| SEED_VOLUME.to_string())
}

/// The networks of `config` with the one previews share.
pub fn networks(config: &Config, mut networks: Vec<Network>) -> Vec<Network> {
    if hosts_previews(config) {
        networks.push(Network {
            name: PREVIEWS_NETWORK.to_string(),
            internal: false,
            external: false,
        });
    } else if let Some(preview) = config.preview.as_ref().filter(|_| config.needs_proxy()) {
        networks.push(Network {
            name: preview.shared_network(),
            internal: false,
            external: true,
        });
    }
    networks
}

/// The container of a preview's router, which the environment's proxy forwards to.
pub fn router(preview_project: &str) -> String {
    container_name(preview_project, PROXY_SERVICE, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT: &str = "STACK_PROJECT=shop\nSTACK_DOMAIN=example.com\nSTACK_SERVICES=web\n\
        SERVICE_WEB_IMAGE=web:1\nSERVICE_WEB_PORT=8080\nSERVICE_WEB_ROUTE=${STACK_DOMAIN}\n\
        STACK_PREVIEW_DOMAIN=*.preview.example.com\n";

    #[test]
    fn the_environments_proxy_shares_a_network_and_reads_the_routes() {
        let config = crate::config::tests::load_text(PROJECT, "staging")
            .unwrap()
            .config;
        let desired = crate::model::desired(&config, &Default::default());
        let proxy = desired.service(PROXY_SERVICE).unwrap();
        assert!(proxy.networks.contains(&"previews".to_string()));
        assert!(proxy.mounts.iter().any(|m| matches!(m,
            Mount::Bind { source: HostPath::State(dir), target, read_only: true }
                if dir == ROUTES_DIR && target == "/etc/caddy/previews")));
        assert!(desired
            .networks
            .iter()
            .any(|n| n.name == "previews" && !n.external));
        assert_eq!(desired.network_name("previews"), "shop_previews");
    }

    #[test]
    fn the_environments_certbot_reads_the_previews_hosts() {
        let text = format!(
            "{PROJECT}STACK_PROXY=nginx\nSTACK_TLS=auto\nSTACK_TLS_EMAIL=ops@example.com\n"
        );
        let config = crate::config::tests::load_text(&text, "staging")
            .unwrap()
            .config;
        let desired = crate::model::desired(&config, &Default::default());
        let certbot = desired.service(CERTBOT_SERVICE).unwrap();
        assert!(certbot.mounts.iter().any(|m| matches!(m,
            Mount::Bind { source: HostPath::State(dir), target, read_only: true }
                if dir == ROUTES_DIR && target == CERTBOT_PREVIEWS_TARGET)));
    }

    #[test]
    fn a_preview_routes_through_a_router_with_limits() {
        let mut config = crate::config::tests::load_text(PROJECT, "staging")
            .unwrap()
            .config;
        config.project = "shop-pr-1".into();
        config.preview = Some(crate::config::preview::PreviewOf {
            name: "pr-1".into(),
            project: "shop".into(),
        });
        let desired = crate::model::desired(&config, &Default::default());
        let proxy = desired.service(PROXY_SERVICE).unwrap();
        assert!(proxy.ports.is_empty(), "{:?}", proxy.ports);
        assert!(proxy.networks.contains(&"shop_previews".to_string()));
        assert_eq!(desired.network_name("shop_previews"), "shop_previews");
        let web = desired.service("web").unwrap();
        assert_eq!(web.resources.memory_mb, Some(256));
        assert_eq!(web.resources.cpus, Some(0.5));
        assert!(!web.networks.iter().any(|n| n == "shop_previews"));
        assert_eq!(router("shop-pr-1"), "shop-pr-1-proxy-1");
    }

    #[test]
    fn a_backup_seeded_preview_gives_its_postgres_the_seed_volume() {
        let text = format!(
            "{PROJECT}POSTGRES_ENABLED=true\nPOSTGRES_PASSWORD=pw-0123456789abcdef\nBACKUP_ENABLED=true\n\
             STACK_PREVIEW_SEED=backup\n"
        );
        let mut config = crate::config::tests::load_text(&text, "staging")
            .unwrap()
            .config;
        let environment = crate::model::desired(&config, &Default::default());
        assert!(!environment.volumes.contains(&SEED_VOLUME.to_string()));
        config.preview = Some(crate::config::preview::PreviewOf {
            name: "pr-1".into(),
            project: "shop".into(),
        });
        let desired = crate::model::desired(&config, &Default::default());
        assert!(desired.volumes.contains(&SEED_VOLUME.to_string()));
        let postgres = desired.service(SEED_SERVICE).unwrap();
        assert!(postgres.mounts.iter().any(|m| matches!(m,
            Mount::Volume { name, target, read_only: true }
                if name == SEED_VOLUME && target == SEED_TARGET)));
        let web = desired.service("web").unwrap();
        assert!(!web
            .mounts
            .iter()
            .any(|m| matches!(m, Mount::Volume { name, .. } if name == SEED_VOLUME)));
    }

    #[test]
    fn nginx_environments_host_previews_and_swarm_ones_do_not() {
        let nginx = format!("{PROJECT}STACK_PROXY=nginx\n");
        let config = crate::config::tests::load_text(&nginx, "staging")
            .unwrap()
            .config;
        let desired = crate::model::desired(&config, &Default::default());
        let proxy = desired.service(PROXY_SERVICE).unwrap();
        assert!(proxy.mounts.iter().any(|m| matches!(m,
            Mount::Bind { target, read_only: true, .. } if target == "/etc/nginx/previews")));
        let swarm = format!("{PROJECT}STACK_TARGET=swarm\n");
        let config = crate::config::tests::load_text(&swarm, "staging")
            .unwrap()
            .config;
        assert!(!hosts_previews(&config));
    }
}
