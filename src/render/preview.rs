//! The sites a preview adds to its environment's proxy (pure): every host the preview
//! routes under its own domain, forwarded to the preview's router over the network they
//! share. TLS is the environment's: its proxy terminates it for these hosts as for its
//! own (`STACK_TLS`).

use std::collections::BTreeSet;

use crate::config::{Config, Tls};

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

/// The Caddyfile sites of one preview, read by the environment's proxy
/// (`import …/*.caddy`): its hosts to its router, whose own Caddyfile routes them on.
pub fn sites(env_tls: Tls, name: &str, hosts: &[String], router: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_forward_the_previews_hosts_to_its_router() {
        let hosts = vec![
            "pr-1.p.example.com".to_string(),
            "api.pr-1.p.example.com".to_string(),
        ];
        let text = sites(Tls::Auto, "pr-1", &hosts, "shop-pr-1-proxy-1");
        assert!(
            text.contains("pr-1.p.example.com, api.pr-1.p.example.com {"),
            "{text}"
        );
        assert!(
            text.contains("reverse_proxy shop-pr-1-proxy-1:80"),
            "{text}"
        );
        let plain = sites(Tls::Off, "pr-1", &hosts[..1], "r");
        assert!(plain.contains("http://pr-1.p.example.com {"), "{plain}");
    }
}
