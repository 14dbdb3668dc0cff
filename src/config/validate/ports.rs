//! `PUBLISH`: Compose short port syntax into host and container ports.

use super::bad;
use crate::config::model::Port;
use crate::config::values::Value;
use crate::error::Diagnostic;

/// Compose short syntax: `[ip:][host:]container[/protocol]`, ranges allowed.
pub fn publish(value: &Value, item: &str) -> Result<Port, Diagnostic> {
    let error =
        || {
            bad(
            value,
            format!("`{}` has an invalid port mapping {}", value.key, value.show(item)),
            "write `HOST:CONTAINER`, `IP:HOST:CONTAINER` or `CONTAINER`, optionally with `/udp`",
        )
        };
    let (rest, protocol) = match item.rsplit_once('/') {
        Some((rest, proto)) if ["tcp", "udp", "sctp"].contains(&proto) => (rest, proto),
        Some(_) => return Err(error()),
        None => (item, "tcp"),
    };
    let (ip, rest) = if let Some(stripped) = rest.strip_prefix('[') {
        let (ip, after) = stripped.split_once("]:").ok_or_else(error)?;
        (Some(ip.to_string()), after)
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            3 => (Some(parts[0].to_string()), &rest[parts[0].len() + 1..]),
            1 | 2 => (None, rest),
            _ => return Err(error()),
        }
    };
    if let Some(ip) = &ip {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(error());
        }
    }
    let ports = |text: &str| -> Option<Vec<u16>> {
        let (a, b) = text.split_once('-').unwrap_or((text, text));
        let (a, b) = (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?);
        (a >= 1 && a <= b && b - a < 1000).then(|| (a..=b).collect())
    };
    let (host_ports, container) = match rest.split_once(':') {
        Some(("", container)) => (Vec::new(), container),
        Some((host, container)) => (ports(host).ok_or_else(error)?, container),
        None => (Vec::new(), rest),
    };
    let container_ports = ports(container).ok_or_else(error)?;
    if !host_ports.is_empty() && host_ports.len() != container_ports.len() {
        return Err(error());
    }
    Ok(Port {
        host_ip: ip,
        host_ports,
        container_ports,
        protocol: protocol.to_string(),
    })
}
