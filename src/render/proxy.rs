//! Caddyfile and nginx.conf: a view model of sites and routes, rendered by templates.
//! Every host, path and upstream here was validated in `config`, so none can break
//! out of its place in the file.

use std::collections::BTreeMap;

use minijinja::context;
use serde::Serialize;

use super::{header, render_template};
use crate::config::values::compose_duration;
use crate::error::Result;
use crate::model::{Desired, ProxyKind, Routed, Routing, Tls, ACME_CA_ROOT_TARGET};

/// How the proxy reaches a service.
enum Target {
    /// A container, found through Docker's DNS by its service name.
    Container { name: String, port: u16 },
    /// An app outside Docker.
    Upstream { host: String, port: u16 },
}

impl Target {
    fn of(service: &Routed) -> Option<Target> {
        if let Some(upstream) = &service.upstream {
            // The proxy runs in a container: the host's loopback is `host.docker.internal`.
            let host = match upstream.host.as_str() {
                "localhost" | "127.0.0.1" => "host.docker.internal".to_string(),
                other => other.to_string(),
            };
            return Some(Target::Upstream {
                host,
                port: upstream.port,
            });
        }
        service.port.map(|port| Target::Container {
            name: service.name.clone(),
            port,
        })
    }

    /// Caddy's `reverse_proxy` to the target; `close_delay`: its `stream_close_delay`.
    fn caddy(&self, close_delay: Option<std::time::Duration>) -> String {
        let delay = close_delay
            .map(|delay| format!("\tstream_close_delay {}\n", compose_duration(delay)))
            .unwrap_or_default();
        match self {
            // Docker's DNS is re-read every second. A container that just left DNS may still
            // be in the list for up to that second, and dialing its vanished address
            // stalls (no one answers ARP) instead of being refused: a short dial timeout
            // and a retry on another container keep that request fast, and passive health
            // (`fail_duration`) keeps the next ones off it. One second of memory, so a new
            // container is back in rotation before the rolling update takes the old one
            // away (`STACK_DRAIN`, 2 s by default).
            Target::Container { name, port } => format!(
                "reverse_proxy {{\n{delay}\tdynamic a {{\n\t\tname {name}\n\t\tport {port}\n\t\trefresh 1s\n\t\tresolvers 127.0.0.11:53\n\t}}\n\tlb_policy round_robin\n\tlb_try_duration 10s\n\tlb_try_interval 50ms\n\tfail_duration 1s\n\ttransport http {{\n\t\tdial_timeout 100ms\n\t}}\n}}"
            ),
            Target::Upstream { host, port } => format!(
                "reverse_proxy {host}:{port} {{\n{delay}\tlb_try_duration 10s\n\tlb_try_interval 250ms\n}}"
            ),
        }
    }

    fn nginx(&self, strip: Option<&str>) -> String {
        let (host, port) = match self {
            Target::Container { name, port } => (name.as_str(), *port),
            Target::Upstream { host, port } => (host.as_str(), *port),
        };
        let mut out = format!("set $stack_upstream {host}:{port};\n");
        if let Target::Container { .. } = self {
            // On the project network a live container answers a connect at once; an
            // address that just left DNS stalls instead. Give up on it quickly and let
            // `proxy_next_upstream` try the next address.
            out.push_str("proxy_connect_timeout 100ms;\n");
        }
        if let Some(prefix) = strip {
            out.push_str(&format!("rewrite ^{prefix}/?(.*)$ /$1 break;\n"));
        }
        out.push_str("proxy_pass http://$stack_upstream;");
        out
    }
}

/// What the proxy asks before it passes a request to `service`: nothing, a forward-auth
/// endpoint (`AUTH`) or a password (`BASIC_AUTH`). Caddy's form.
fn caddy_gate(routing: &Routing, service: &Routed) -> String {
    if let Some(auth) = &service.auth {
        // The identity headers the outposts of Authentik, Authelia and oauth2-proxy set.
        return format!(
            "forward_auth {}:{} {{\n\turi {}\n\tcopy_headers {}\n}}\n",
            auth.host,
            auth.port,
            auth.path,
            IDENTITY_HEADERS.join(" ")
        );
    }
    if service.basic_auth.is_some() {
        let (file, _) = crate::model::basic_auth_file(routing.kind, &service.name);
        return format!("import {file}\n");
    }
    String::new()
}

/// The identity headers passed on to the app after a forward-auth check.
const IDENTITY_HEADERS: &[&str] = &[
    "Remote-User",
    "Remote-Groups",
    "Remote-Name",
    "Remote-Email",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Groups",
];

/// nginx's form of the gate, inside a route's location. A location that sets one proxy
/// header inherits none from `http`, so a forward-auth route sets them all again.
fn nginx_gate(routing: &Routing, service: &Routed) -> String {
    if service.auth.is_some() {
        let mut out = format!("auth_request /_stack_auth/{};\n", service.name);
        for (index, header) in IDENTITY_HEADERS.iter().enumerate() {
            let var = header.to_ascii_lowercase().replace('-', "_");
            out.push_str(&format!(
                "auth_request_set $stack_auth_{index} $upstream_http_{var};\nproxy_set_header {header} $stack_auth_{index};\n"
            ));
        }
        out.push_str(
            "proxy_set_header Host $host;\nproxy_set_header X-Real-IP $remote_addr;\nproxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\nproxy_set_header X-Forwarded-Proto $scheme;\nproxy_set_header Upgrade $http_upgrade;\nproxy_set_header Connection $connection_upgrade;\n",
        );
        return out;
    }
    if service.basic_auth.is_some() {
        let (file, _) = crate::model::basic_auth_file(routing.kind, &service.name);
        let file = file.trim_start_matches("nginx/");
        return format!(
            "auth_basic \"{}\";\nauth_basic_user_file {file};\n",
            service.name
        );
    }
    String::new()
}

/// The internal location nginx asks for a forward-auth service's routes.
fn nginx_auth_location(service: &Routed) -> Option<String> {
    let auth = service.auth.as_ref()?;
    Some(indent(&format!(
        "location = /_stack_auth/{name} {{\n\tinternal;\n\tset $stack_auth_upstream {host}:{port};\n\tproxy_pass http://$stack_auth_upstream{path};\n\tproxy_pass_request_body off;\n\tproxy_set_header Content-Length \"\";\n\tproxy_set_header Host $host;\n\tproxy_set_header X-Original-URL $scheme://$http_host$request_uri;\n\tproxy_set_header X-Original-Method $request_method;\n\tproxy_set_header X-Forwarded-Method $request_method;\n\tproxy_set_header X-Forwarded-Proto $scheme;\n\tproxy_set_header X-Forwarded-Host $http_host;\n\tproxy_set_header X-Forwarded-Uri $request_uri;\n\tproxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n}}",
        name = service.name,
        host = auth.host,
        port = auth.port,
        path = auth.path,
    )))
}

/// The `BASIC_AUTH` files of the bundle: path → contents (a comment line first).
pub fn basic_auth_files(desired: &Desired, routing: &Routing) -> Vec<(String, String)> {
    routing
        .services
        .iter()
        .filter_map(|service| {
            let auth = service.basic_auth.as_ref()?;
            let (path, _) = crate::model::basic_auth_file(routing.kind, &service.name);
            let body = match routing.kind {
                ProxyKind::Nginx => format!("{}:{}\n", auth.user, auth.hash),
                _ => format!("basicauth {{\n\t{} {}\n}}\n", auth.user, auth.hash),
            };
            Some((path, format!("# {}\n{body}", header(desired))))
        })
        .collect()
}

#[derive(Serialize)]
struct RouteView {
    matcher: String,
    path: String,
    strip: bool,
    target: String,
}

#[derive(Serialize)]
struct SiteView {
    host: String,
    address: String,
    routes: Vec<RouteView>,
    root: Option<String>,
    /// nginx: the internal locations of forward-auth checks.
    auth_locations: Vec<String>,
}

/// Sites by host (sorted); in each, longer paths first so the most specific wins.
fn sites(routing: &Routing, nginx: bool) -> Vec<SiteView> {
    let mut by_host: BTreeMap<&str, Vec<(&str, &Routed)>> = BTreeMap::new();
    for service in &routing.services {
        for route in &service.routes {
            by_host
                .entry(route.host.as_str())
                .or_default()
                .push((route.path.as_str(), service));
        }
    }
    by_host
        .into_iter()
        .map(|(host, mut routes)| {
            routes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
            let mut root = None;
            let mut views = Vec::new();
            let mut auth_locations: Vec<String> = Vec::new();
            for (index, (path, service)) in routes.into_iter().enumerate() {
                let Some(target) = Target::of(service) else {
                    continue;
                };
                if nginx {
                    if let Some(location) = nginx_auth_location(service) {
                        if !auth_locations.contains(&location) {
                            auth_locations.push(location);
                        }
                    }
                }
                let strip = service.route_strip && path != "/";
                let text = if nginx {
                    nginx_gate(routing, service) + &target.nginx(strip.then_some(path))
                } else {
                    caddy_gate(routing, service) + &target.caddy(routing.stream_close_delay)
                };
                if path == "/" {
                    root = Some(indent(&text));
                    continue;
                }
                views.push(RouteView {
                    matcher: format!("route{index}"),
                    path: path.to_string(),
                    strip,
                    target: indent(&text),
                });
            }
            let address = if routing.tls == Tls::Off {
                format!("http://{host}")
            } else {
                host.to_string()
            };
            SiteView {
                host: host.to_string(),
                address,
                routes: views,
                root,
                auth_locations,
            }
        })
        .collect()
}

pub fn caddyfile(desired: &Desired, routing: &Routing) -> Result<String> {
    let tls = match routing.tls {
        Tls::Auto => "auto",
        Tls::Internal => "internal",
        Tls::Off => "off",
    };
    let auto = routing.tls == Tls::Auto;
    let email = routing.email.clone().filter(|_| auto);
    let acme_ca = routing.acme_ca.clone().filter(|_| auto);
    let acme_ca_root = (auto && routing.acme_ca_root).then_some(ACME_CA_ROOT_TARGET);
    render_template(
        "Caddyfile.j2",
        context! {
            header => header(desired),
            tls => tls,
            email => email,
            acme_ca => acme_ca,
            acme_ca_root => acme_ca_root,
            sites => sites(routing, false),
            maintenance => crate::model::MAINTENANCE_TARGET,
            retry_after => super::maintenance::DEFAULT_RETRY_AFTER,
            previews => routing.previews.then_some(crate::model::preview::routes_target(routing.kind)),
        },
    )
}

/// Let's Encrypt's directory, where certbot goes without `STACK_ACME_CA`.
const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The script of the `certbot` service ([`crate::model::CERTBOT_SERVICE`]): every routed
/// host but wildcards (HTTP-01 cannot issue those).
pub fn certbot_script(desired: &Desired, routing: &Routing) -> Result<String> {
    let mut hosts: Vec<&str> = routing
        .services
        .iter()
        .flat_map(|s| s.routes.iter())
        .map(|r| r.host.as_str())
        .filter(|h| !h.starts_with('*'))
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    let account = match &routing.email {
        Some(email) => format!("--email {email}"),
        None => "--register-unsafely-without-email".to_string(),
    };
    let interval = routing.certbot_interval.as_secs().max(1);
    render_template(
        "certbot.sh.j2",
        context! {
            header => header(desired),
            ca => routing.acme_ca.as_deref().unwrap_or(LETS_ENCRYPT),
            interval => interval,
            hosts => hosts.join(" "),
            account => account,
        },
    )
}

pub fn nginx(desired: &Desired, routing: &Routing) -> Result<String> {
    render_template(
        "nginx.conf.j2",
        context! {
            header => header(desired),
            tls => routing.tls != Tls::Off,
            sites => sites(routing, true),
            maintenance => crate::model::MAINTENANCE_TARGET,
            retry_after => super::maintenance::DEFAULT_RETRY_AFTER,
            previews => routing.previews.then_some(crate::model::preview::routes_target(routing.kind)),
        },
    )
}

/// Indent a block by three tabs, its place in both templates.
fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("\t\t\t{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::config::{HostPath, Mount, CERTBOT_IMAGE};

    fn diagnostics(
        result: crate::error::Result<crate::config::Loaded>,
    ) -> Vec<crate::error::Diagnostic> {
        match result {
            Err(crate::error::Error::Invalid(diagnostics)) => diagnostics,
            Err(other) => panic!("not a configuration error: {other:?}"),
            Ok(_) => panic!("the configuration was accepted"),
        }
    }

    const ACME_PROJECT: &str = "STACK_PROJECT=acme\nSTACK_SERVICES=web\nSTACK_TLS=auto\n\
         SERVICE_WEB_IMAGE=web:1\nSERVICE_WEB_PORT=80\nSERVICE_WEB_ROUTE=a.example.com\n\
         STACK_ACME_CA=https://ca.example.net:14000/dir\nSTACK_ACME_CA_ROOT=./certs/../ca.pem\n";

    #[test]
    fn acme_keys_reach_caddy_and_mount_the_root() {
        let loaded = crate::config::tests::load_text(ACME_PROJECT, "prod").unwrap();
        let config = &loaded.config;
        assert_eq!(
            config.acme.ca_root.as_deref(),
            Some(std::path::Path::new("ca.pem"))
        );
        let (bundle, _) = crate::render::tests::rendered(config, "/srv/acme");
        let caddyfile = &bundle.files["Caddyfile"].contents;
        assert!(
            caddyfile.contains("\tacme_ca https://ca.example.net:14000/dir\n"),
            "{caddyfile}"
        );
        assert!(
            caddyfile.contains("\tacme_ca_root /etc/stack/acme-ca-root.pem\n"),
            "{caddyfile}"
        );
        let desired = crate::model::desired(config, &BTreeMap::new());
        let proxy = desired.service("proxy").unwrap();
        assert!(
            proxy.mounts.iter().any(|m| matches!(m,
            Mount::Bind { source: HostPath::Project(p), target, read_only: true }
                if p == std::path::Path::new("ca.pem") && target == "/etc/stack/acme-ca-root.pem"))
        );
        assert!(desired.service("certbot").is_none());
    }

    const DRAINING: &str = "STACK_PROJECT=chat\nSTACK_SERVICES=web,chat\nSTACK_TLS=off\n\
         STACK_PROXY=nginx\nSERVICE_WEB_IMAGE=web:1\nSERVICE_WEB_PORT=80\n\
         SERVICE_WEB_ROUTE=a.example.com\nSERVICE_CHAT_IMAGE=chat:1\nSERVICE_CHAT_PORT=80\n\
         SERVICE_CHAT_ROUTE=chat.example.com\n";

    #[test]
    fn nginx_does_not_bound_a_reload_s_old_workers() {
        // `worker_shutdown_timeout` would cut every long-lived connection that long after
        // each reload (a rolling update of any service reloads nginx): see the README's
        // decision.
        let text = format!("{DRAINING}SERVICE_CHAT_HEALTH=/health\nSERVICE_CHAT_DRAIN=10m\n");
        let loaded = crate::config::tests::load_text(&text, "prod").unwrap();
        let (bundle, _) = crate::render::tests::rendered(&loaded.config, "/srv/chat");
        let nginx = &bundle.files["nginx/nginx.conf"].contents;
        assert!(!nginx.contains("worker_shutdown_timeout"), "{nginx}");
    }

    #[test]
    fn the_engine_reloads_the_proxy_s_files_and_compose_binds_the_bundle_s() {
        let loaded = crate::config::tests::load_text(DRAINING, "prod").unwrap();
        let desired = crate::model::desired(&loaded.config, &BTreeMap::new());
        let proxy = desired.service("proxy").unwrap();
        let placement = crate::model::Placement {
            root: "/srv/chat".into(),
            bundle: "/srv/chat/releases/r1".into(),
        };
        let config = proxy
            .mounts
            .iter()
            .find_map(|m| match m {
                Mount::Bind { source, target, .. } if target == "/etc/nginx/nginx.conf" => {
                    Some(source)
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(config, &HostPath::Proxy("nginx/nginx.conf".into()));
        assert_eq!(
            placement.resolve(config),
            std::path::Path::new("/srv/chat/proxy/nginx/nginx.conf")
        );
        let (copies, pending) = crate::engine::proxy::copies(
            proxy,
            &placement,
            std::path::Path::new("/srv/chat/releases/r2"),
        );
        assert_eq!(
            copies,
            vec![(
                "/srv/chat/releases/r2/nginx/nginx.conf".into(),
                "/srv/chat/proxy/nginx/nginx.conf".into()
            )]
        );
        assert_eq!(pending, std::path::Path::new("/srv/chat/proxy/.pending"));
        let secrets = crate::model::BundleSecrets::default();
        let compose = crate::render::compose::render(&desired, &secrets, &placement).unwrap();
        assert!(
            compose.contains("./nginx/nginx.conf:/etc/nginx/nginx.conf:ro"),
            "{compose}"
        );
        // A swarm service changes with its files: no copies.
        let swarm = format!("{DRAINING}STACK_TARGET=swarm\n");
        let loaded = crate::config::tests::load_text(&swarm, "prod").unwrap();
        let desired = crate::model::desired(&loaded.config, &BTreeMap::new());
        let proxy = desired.service("proxy").unwrap();
        assert!(!proxy.mounts.iter().any(|m| matches!(
            m,
            Mount::Bind {
                source: HostPath::Proxy(_),
                ..
            }
        )));
    }

    #[test]
    fn acme_keys_are_checked() {
        for (line, needle) in [
            (
                "STACK_ACME_CA=http://ca.example.net/dir",
                "is not an `https://` URL",
            ),
            (
                "STACK_ACME_CA=https://ca.example.net/{x}",
                "is not an `https://` URL",
            ),
            (
                "STACK_ACME_CA_ROOT=/etc/ssl/ca.pem",
                "must be a path relative to the project",
            ),
            ("STACK_ACME_CA_ROOT=../ca.pem", "points outside the project"),
        ] {
            let errors = diagnostics(crate::config::tests::load_text(
                &format!("{ACME_PROJECT}{line}\n"),
                "prod",
            ));
            assert!(
                errors.iter().any(|d| d.message.contains(needle)),
                "{line}: {errors:?}"
            );
        }
    }

    #[test]
    fn nginx_with_acme_runs_certbot_with_its_script() {
        let text = format!(
            "{ACME_PROJECT}STACK_PROXY=nginx\nSTACK_CERTBOT_INTERVAL=5m\nSTACK_TLS_EMAIL=ops@example.com\n"
        );
        let config = crate::config::tests::load_text(&text, "prod")
            .unwrap()
            .config;
        let (bundle, _) = crate::render::tests::rendered(&config, "/srv/acme");
        let script = &bundle.files["certbot.sh"].contents;
        for needle in [
            "ca='https://ca.example.net:14000/dir'",
            "interval=300\n",
            "hosts='a.example.com'",
            "--email ops@example.com",
            "--webroot --webroot-path /var/www/acme",
        ] {
            assert!(script.contains(needle), "{needle}: {script}");
        }
        let desired = crate::model::desired(&config, &BTreeMap::new());
        let certbot = desired.service("certbot").unwrap();
        assert_eq!(certbot.image, CERTBOT_IMAGE);
        assert!(desired.volumes.iter().any(|v| v == "certbot-state"));
        // Caddy's options are not nginx's: the Caddyfile is not rendered, the proxy mounts no root.
        let proxy = desired.service("proxy").unwrap();
        assert!(!proxy
            .mounts
            .iter()
            .any(|m| m.target() == "/etc/stack/acme-ca-root.pem"));
        let user = text.replace("STACK_SERVICES=web", "STACK_SERVICES=web,certbot")
            + "SERVICE_CERTBOT_IMAGE=certbot:1\n";
        let errors = diagnostics(crate::config::tests::load_text(&user, "prod"));
        assert!(
            errors
                .iter()
                .any(|d| d.message.contains("`certbot` is reserved")),
            "{errors:?}"
        );
    }
}
