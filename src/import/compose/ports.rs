//! `ports` to `PUBLISH`, or to `PORT` + `ROUTE` behind the proxy (`--routes`, a
//! Caddyfile); two services on one host port are refused.

use std::collections::BTreeMap;

use super::text::{pieces, Piece};
use super::yaml::Node;
use super::{caddyfile, Diagnostic, Import, Result, ServiceDraft};
use crate::config::attrs::image::{image_name, DATA_STORES};

/// Container ports taken for HTTP by `--routes`.
const HTTP_PORTS: &[u16] = &[
    80, 3000, 4000, 5000, 8000, 8080, 8081, 8888, 9000, 2368, 1337, 5173, 4200, 8069,
];

impl Import<'_> {
    pub(super) fn ports(
        &mut self,
        service: &mut ServiceDraft,
        node: &Node,
        upstream: Option<&caddyfile::Upstream>,
    ) {
        let input = service.input.clone();
        let image = node.get("image").and_then(Node::scalar).unwrap_or_default();
        // A data store that speaks something else than HTTP on its ports is never routed.
        let web = !DATA_STORES
            .iter()
            .any(|store| !store.http && image_name(&image) == store.name);
        let mut publish = Vec::new();
        let mut route_port: Option<u16> = None;
        if let Some(Node::Seq(ports)) = node.get("ports") {
            for port in ports {
                let Some((text, container)) = self.port(&input, port) else {
                    continue;
                };
                let http = container.is_some_and(|c| HTTP_PORTS.contains(&c));
                if self.options.routes && upstream.is_none() && web && http && route_port.is_none()
                {
                    route_port = container;
                    continue;
                }
                publish.push(text);
            }
        } else if let Some(other) = node.get("ports") {
            self.finding(
                Some(&input),
                "ports",
                format!("`ports` is {}, not a list", other.kind()),
            );
        }
        if let Some(upstream) = upstream {
            service.set("PORT", &upstream.port.to_string());
            service.set("ROUTE", &upstream.routes.join(","));
            if upstream.strip {
                service.set("ROUTE_STRIP", "true");
            }
        } else if let Some(port) = route_port {
            service.set("PORT", &port.to_string());
            service.set("ROUTE", &format!("{}.${{STACK_DOMAIN}}", service.name));
            self.note(
                Some(&input),
                "ports",
                format!("port {port} is routed by the proxy at `{}.<STACK_DOMAIN>` instead of published", service.name),
            );
        }
        if !publish.is_empty() {
            service.set("PUBLISH", &publish.join(","));
        }
    }

    /// A port in short syntax, and its container port when it is one number.
    pub(super) fn port(&mut self, input: &str, port: &Node) -> Option<(String, Option<u16>)> {
        match port {
            Node::Map(_) => {
                let mut text = String::new();
                for (key, value) in match port {
                    Node::Map(entries) => entries.as_slice(),
                    _ => &[],
                } {
                    if !["target", "published", "host_ip", "protocol", "mode"]
                        .contains(&key.as_str())
                    {
                        self.finding(Some(input), &format!("ports.{key}"), "stack publishes ports by host IP, host port, container port and protocol");
                    }
                    if key == "mode" && value.scalar().as_deref() != Some("ingress") {
                        self.finding(
                            Some(input),
                            "ports.mode",
                            "only swarm knows port modes; stack publishes on the host",
                        );
                    }
                }
                let target = port.get("target").and_then(Node::scalar)?;
                if let Some(ip) = port.get("host_ip").and_then(Node::scalar) {
                    text.push_str(&ip);
                    text.push(':');
                }
                if let Some(published) = port.get("published").and_then(Node::scalar) {
                    text.push_str(&published);
                    text.push(':');
                } else if !text.is_empty() {
                    text.push(':');
                }
                text.push_str(&target);
                if let Some(protocol) = port.get("protocol").and_then(Node::scalar) {
                    if protocol != "tcp" {
                        text.push('/');
                        text.push_str(&protocol);
                    }
                }
                let container = target.parse().ok();
                let text = self.empty_host(input, &text);
                Some((self.template(&text), container))
            }
            other => {
                let text = other.scalar()?;
                let text = self.empty_host(input, &text);
                let body = text.split('/').next().unwrap_or(&text);
                let container = body.rsplit(':').next().and_then(|c| c.parse().ok());
                let udp = text.ends_with("/udp") || text.ends_with("/sctp");
                Some((self.template(&text), if udp { None } else { container }))
            }
        }
    }

    /// A port whose host address is empty (`:443:443`, `${BIND:-}:443:443`) publishes on
    /// every address in Compose; `PUBLISH` writes no address for that, so an empty one is
    /// dropped and a variable that may be empty adds its `:` only when set.
    fn empty_host(&mut self, input: &str, text: &str) -> String {
        // The whole entry one variable with a default (`${EXPOSE_PORT-:2283:2283}`, as
        // Immich ships it): the default is a port like any other.
        if let [Piece::Var {
            name,
            rest: op,
            braced: true,
        }] = pieces(text).as_slice()
        {
            for sign in [":-", "-"] {
                if let Some(default) = op.strip_prefix(sign) {
                    let fixed = self.empty_host(input, default);
                    if fixed != default {
                        return format!("${{{name}{sign}{fixed}}}");
                    }
                    break;
                }
            }
        }
        let parts = super::text::split_outside_vars(text, ':');
        let [ip, rest @ ..] = parts.as_slice() else {
            return text.to_string();
        };
        if rest.len() != 2 {
            return text.to_string();
        }
        let rest = rest.join(":");
        if ip.is_empty() {
            self.note(
                Some(input),
                "ports",
                format!("`{text}`: an empty host address is every address, written `{rest}`"),
            );
            return rest;
        }
        match pieces(ip).as_slice() {
            [Piece::Var { name, rest: op, .. }] if ["", "-", ":-"].contains(&op.as_str()) => {
                format!("${{{name}:+${{{name}}}:}}{rest}")
            }
            _ => text.to_string(),
        }
    }
}

/// Two services that publish the same literal host port (same address and protocol):
/// Compose starts both and the second cannot bind it (`port is already allocated`), and
/// stack refuses such a project. The import refuses it first, naming both, rather than
/// silently dropping one.
pub(super) fn port_clash(services: &[(String, Node)]) -> Result<()> {
    let mut seen: BTreeMap<(String, String, String), &str> = BTreeMap::new();
    for (name, node) in services {
        let Some(Node::Seq(ports)) = node.get("ports") else {
            continue;
        };
        for port in ports {
            let Some(text) = port.scalar() else { continue };
            if text.contains('$') {
                continue;
            }
            let (body, protocol) = text.split_once('/').unwrap_or((&text, "tcp"));
            let parts: Vec<&str> = body.rsplitn(3, ':').collect();
            let (host, ip) = match parts.as_slice() {
                [_, host] => (*host, ""),
                [_, host, ip] => (*host, *ip),
                _ => continue,
            };
            if host.is_empty() || host.contains('-') {
                continue;
            }
            let key = (ip.to_string(), host.to_string(), protocol.to_string());
            if let Some(first) = seen.get(&key) {
                return Err(Diagnostic::new(format!(
                    "host port {host} is published by both `{first}` and `{name}`: Compose starts both and the second cannot bind it"
                ))
                .hint("give one of them another host port, or put one in a `profiles:` entry")
                .into());
            }
            seen.insert(key, name);
        }
    }
    Ok(())
}

/// Does the service publish a port on a fixed host port.
pub(super) fn publishes_fixed(service: &Node) -> bool {
    let Some(Node::Seq(ports)) = service.get("ports") else {
        return false;
    };
    ports.iter().any(|port| match port {
        Node::Map(_) => port.get("published").is_some(),
        other => other
            .scalar()
            .is_some_and(|p| p.split('/').next().unwrap_or_default().contains(':')),
    })
}
