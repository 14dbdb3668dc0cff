//! The sites a preview adds to its environment's proxy (pure): every host the preview
//! routes under its own domain, forwarded to the preview's router over the network they
//! share. TLS is the environment's: its proxy terminates it for these hosts as for its
//! own (`STACK_TLS`). Caddy reads Caddyfile sites, nginx `server` blocks.

use std::collections::BTreeSet;

use crate::config::{Config, ProxyKind, Tls};

/// The hosts of `preview` (a preview's configuration) that lie under its domain, and the
/// ones that do not (which its environment's proxy does not route).
pub fn hosts(preview: &Config) -> (Vec<String>, Vec<String>) {
    let domain = &preview.domain;
    let suffix = format!(".{domain}");
    let all: BTreeSet<&str> = preview
        .services
        .iter()
        .flat_map(|s| s.routes.iter())
        .map(|r| r.host.as_str())
        .collect();
    let (inside, outside): (Vec<&str>, Vec<&str>) = all
        .into_iter()
        .partition(|host| *host == domain || host.ends_with(&suffix));
    let owned = |hosts: Vec<&str>| hosts.into_iter().map(str::to_string).collect();
    (owned(inside), owned(outside))
}

/// The sites of one preview in the language of the environment's proxy `kind`.
pub fn sites(kind: ProxyKind, env_tls: Tls, name: &str, hosts: &[String], router: &str) -> String {
    match kind {
        ProxyKind::Nginx => nginx_sites(env_tls, name, hosts, router),
        _ => caddy_sites(env_tls, name, hosts, router),
    }
}

/// The nginx `server` blocks of one preview, read by the environment's nginx (`include
/// …/*.nginx` in its `http` block): its hosts to its router, resolved through Docker's
/// DNS on each request (the `resolver` of the environment's configuration), so a router
/// that is replaced is found again without a reload. With TLS, as for the environment's
/// own hosts: HTTP redirects, and the certificate is `/etc/nginx/certs/<host>.crt`.
fn nginx_sites(env_tls: Tls, name: &str, hosts: &[String], router: &str) -> String {
    let names = hosts.join(" ");
    let forward = format!(
        "\t\tlocation / {{\n\t\t\tset $stack_preview_router http://{router}:80;\n\t\t\tproxy_pass $stack_preview_router;\n\t\t}}\n"
    );
    let mut out = format!(
        "# The preview `{name}`, written by `stack preview up`; `stack preview down {name}` removes it.\n"
    );
    if env_tls == Tls::Off {
        out.push_str(&format!(
            "\tserver {{\n\t\tlisten 80;\n\t\tserver_name {names};\n{forward}\t}}\n"
        ));
        return out;
    }
    out.push_str(&format!(
        "\tserver {{\n\t\tlisten 80;\n\t\tserver_name {names};\n\t\tlocation /.well-known/acme-challenge/ {{\n\t\t\troot /var/www/acme;\n\t\t}}\n\t\tlocation / {{\n\t\t\treturn 308 https://$host$request_uri;\n\t\t}}\n\t}}\n"
    ));
    out.push_str(&format!(
        "\tserver {{\n\t\tlisten 443 ssl;\n\t\tserver_name {names};\n\t\tssl_certificate /etc/nginx/certs/$ssl_server_name.crt;\n\t\tssl_certificate_key /etc/nginx/certs/$ssl_server_name.key;\n\t\tssl_protocols TLSv1.2 TLSv1.3;\n{forward}\t}}\n"
    ));
    out
}

/// The Caddyfile sites of one preview, read by the environment's proxy
/// (`import …/*.caddy`): its hosts to its router, whose own Caddyfile routes them on.
fn caddy_sites(env_tls: Tls, name: &str, hosts: &[String], router: &str) -> String {
    let address = |host: &String| match env_tls {
        Tls::Off => format!("http://{host}"),
        _ => host.clone(),
    };
    let addresses: Vec<String> = hosts.iter().map(address).collect();
    format!(
        "# The preview `{name}`, written by `stack preview up`; `stack preview down {name}` removes it.\n\
         {} {{\n\
         \tencode gzip\n\
         \treverse_proxy {router}:80 {{\n\
         \t\tlb_try_duration 10s\n\
         \t\tlb_try_interval 250ms\n\
         \t}}\n\
         }}\n",
        addresses.join(", ")
    )
}

/// The script that finds the environment's newest verified dump and copies it, with the
/// script that restores it, into a preview's seed volume (`STACK_PREVIEW_SEED=backup`).
pub fn seed_script() -> crate::error::Result<String> {
    super::render_template(
        "preview/seed.sh.j2",
        minijinja::context! { header => "stack preview up: STACK_PREVIEW_SEED=backup" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_forward_the_previews_hosts_to_its_router() {
        let hosts = vec![
            "pr-1.p.example.com".to_string(),
            "api.pr-1.p.example.com".to_string(),
        ];
        let text = sites(
            ProxyKind::Caddy,
            Tls::Auto,
            "pr-1",
            &hosts,
            "shop-pr-1-proxy-1",
        );
        assert!(
            text.contains("pr-1.p.example.com, api.pr-1.p.example.com {"),
            "{text}"
        );
        assert!(
            text.contains("reverse_proxy shop-pr-1-proxy-1:80"),
            "{text}"
        );
        let plain = sites(ProxyKind::Caddy, Tls::Off, "pr-1", &hosts[..1], "r");
        assert!(plain.contains("http://pr-1.p.example.com {"), "{plain}");
    }

    #[test]
    fn nginx_servers_forward_the_previews_hosts_to_its_router() {
        let hosts = vec!["pr-1.p.test".to_string(), "api.pr-1.p.test".to_string()];
        let plain = sites(
            ProxyKind::Nginx,
            Tls::Off,
            "pr-1",
            &hosts,
            "shop-pr-1-proxy-1",
        );
        assert!(
            plain.contains("server_name pr-1.p.test api.pr-1.p.test;"),
            "{plain}"
        );
        assert!(
            plain.contains("set $stack_preview_router http://shop-pr-1-proxy-1:80;"),
            "{plain}"
        );
        assert!(!plain.contains("443"), "{plain}");
        let tls = sites(ProxyKind::Nginx, Tls::Auto, "pr-1", &hosts, "r");
        assert!(
            tls.contains("listen 443 ssl;") && tls.contains("return 308"),
            "{tls}"
        );
    }
}
