//! The attributes that reach into the host or tune the kernel's view of a container:
//! `DEVICES`, the namespaces (`NETWORK_MODE`, `PID`, `IPC`), resolver settings (`DNS`,
//! `DNS_SEARCH`, `DNS_OPT`), cgroup knobs (`CPUSET`, …) and a few identities
//! (`DOMAINNAME`, `MAC_ADDRESS`, `RUNTIME`, `USERNS_MODE`). Their types and the checks
//! that read one value (or one list item) into them. Pure.

use serde::{Deserialize, Serialize};

use super::{bad, hostname_labels};
use crate::config::values::Value;
use crate::error::Diagnostic;

/// A host device mapped into the container (`DEVICES`): `host[:container][:permissions]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub host: String,
    /// Where it appears in the container; `None`: the same path.
    pub container: Option<String>,
    /// cgroup permissions, some of `r`, `w`, `m`; `None`: `rwm`.
    pub permissions: Option<String>,
}

impl Device {
    /// The path in the container.
    pub fn target(&self) -> &str {
        self.container.as_deref().unwrap_or(&self.host)
    }
}

impl std::fmt::Display for Device {
    /// As Compose and `docker run --device` write it, in the form it was given.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.host)?;
        if let Some(container) = &self.container {
            write!(f, ":{container}")?;
        }
        if let Some(permissions) = &self.permissions {
            write!(f, ":{permissions}")?;
        }
        Ok(())
    }
}

/// A namespace a container joins (`NETWORK_MODE`, `PID`, `IPC`): the host's, its own in
/// a given mode, another service's or another container's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Namespace {
    Host,
    None,
    Bridge,
    Private,
    Shareable,
    /// The first container of a service of the project (Compose's `service:NAME`).
    Service(String),
    /// A container outside the project, by name (`container:NAME`).
    Container(String),
}

impl Namespace {
    /// The service of the project whose namespace this is, if one is.
    pub fn service(&self) -> Option<&str> {
        match self {
            Namespace::Service(name) => Some(name),
            _ => None,
        }
    }
}

impl std::fmt::Display for Namespace {
    /// As Compose writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Namespace::Host => f.write_str("host"),
            Namespace::None => f.write_str("none"),
            Namespace::Bridge => f.write_str("bridge"),
            Namespace::Private => f.write_str("private"),
            Namespace::Shareable => f.write_str("shareable"),
            Namespace::Service(name) => write!(f, "service:{name}"),
            Namespace::Container(name) => write!(f, "container:{name}"),
        }
    }
}

/// The modes of `NETWORK_MODE`, `PID` and `IPC` besides `service:NAME` and
/// `container:NAME`.
pub const NETWORK_MODES: &[&str] = &["host", "none", "bridge"];
pub const PID_MODES: &[&str] = &["host"];
pub const IPC_MODES: &[&str] = &["host", "none", "private", "shareable"];

/// `NETWORK_MODE`, `PID` or `IPC`: one of `modes`, `service:NAME` or `container:NAME`.
pub fn namespace(value: &Value, modes: &[&str]) -> Result<Namespace, Diagnostic> {
    let text = value.text.trim();
    let named = |name: &str| {
        let mut chars = name.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && name.len() <= 128
            && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    let parsed = match text.split_once(':') {
        Some(("service", name)) if named(name) => Some(Namespace::Service(name.into())),
        Some(("container", name)) if named(name) => Some(Namespace::Container(name.into())),
        Some(_) => None,
        None if modes.contains(&text) => Some(match text {
            "host" => Namespace::Host,
            "none" => Namespace::None,
            "bridge" => Namespace::Bridge,
            "private" => Namespace::Private,
            _ => Namespace::Shareable,
        }),
        None => None,
    };
    parsed.ok_or_else(|| {
        let modes: Vec<String> = modes.iter().map(|m| format!("`{m}`")).collect();
        bad(
            value,
            format!("`{}` is not a namespace: `{text}`", value.key),
            format!(
                "write {}, `service:NAME` (a service of this project) or `container:NAME`",
                modes.join(", ")
            ),
        )
    })
}

/// One `DEVICES` item: `/dev/x`, `/dev/x:/dev/y` or `/dev/x:/dev/y:rwm`.
pub fn device(value: &Value, item: &str) -> Result<Device, Diagnostic> {
    let path = |p: &str| {
        p.starts_with('/') && p.len() > 1 && !p.chars().any(|c| c.is_whitespace() || c == ':')
    };
    let permissions = |p: &str| {
        !p.is_empty()
            && p.len() <= 3
            && p.chars().all(|c| "rwm".contains(c))
            && p.chars().collect::<std::collections::BTreeSet<_>>().len() == p.len()
    };
    let parts: Vec<&str> = item.split(':').collect();
    let device = match parts.as_slice() {
        [host] if path(host) => Some((host, None, None)),
        [host, perm] if path(host) && permissions(perm) => Some((host, None, Some(perm))),
        [host, target] if path(host) && path(target) => Some((host, Some(target), None)),
        [host, target, perm] if path(host) && path(target) && permissions(perm) => {
            Some((host, Some(target), Some(perm)))
        }
        _ => None,
    };
    let Some((host, container, permissions)) = device else {
        return Err(bad(
            value,
            format!("`{}`: `{item}` is not a device", value.key),
            "write `/dev/host[:/dev/container][:rwm]`, absolute paths and permissions from `r`, `w`, `m`, e.g. `/dev/dri:/dev/dri` or `/dev/net/tun`",
        ));
    };
    Ok(Device {
        host: host.to_string(),
        container: container.map(|c| c.to_string()),
        permissions: permissions.map(|p| p.to_string()),
    })
}

/// One `DNS` item: a name server's IP address.
pub fn dns_server(value: &Value, item: &str) -> Result<String, Diagnostic> {
    item.parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| {
            bad(
                value,
                format!("`{}`: `{item}` is not an IP address", value.key),
                "write name servers' addresses, e.g. `1.1.1.1,8.8.8.8`",
            )
        })
}

/// One `DNS_SEARCH` item: a domain (`example.com`), or `.` for none.
pub fn dns_search(value: &Value, item: &str) -> Result<String, Diagnostic> {
    if item == "." || (hostname_labels(item) && item.len() <= 253) {
        return Ok(item.to_string());
    }
    Err(bad(
        value,
        format!("`{}`: `{item}` is not a domain", value.key),
        "write search domains such as `example.com`, comma-separated",
    ))
}

/// One `DNS_OPT` item: a resolver option (`ndots:2`, `timeout:1`, `rotate`, `use-vc`).
pub fn dns_option(value: &Value, item: &str) -> Result<String, Diagnostic> {
    let ok = item.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && item.len() <= 64
        && item
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c));
    if ok {
        return Ok(item.to_string());
    }
    Err(bad(
        value,
        format!("`{}`: `{item}` is not a resolver option", value.key),
        "write options of resolv.conf, e.g. `ndots:2,timeout:1,rotate`",
    ))
}

/// `CPUSET`: CPU numbers and ranges (`0-3`, `0,2`, `0-1,4`).
pub fn cpuset(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let cpu = |n: &str| !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit());
    let ok = text.split(',').all(|part| match part.split_once('-') {
        Some((from, to)) => {
            cpu(from) && cpu(to) && from.parse::<u32>().ok() <= to.parse::<u32>().ok()
        }
        None => cpu(part),
    });
    if ok {
        return Ok(text.to_string());
    }
    Err(bad(
        value,
        format!("`{}` is not a set of CPUs: `{text}`", value.key),
        "write CPU numbers and ranges, e.g. `0-3` or `0,2`",
    ))
}

/// `MEMORY_SWAP_MB`: memory plus swap in MB, or `-1` for unlimited swap.
pub fn memory_swap(value: &Value) -> Result<i64, Diagnostic> {
    match value.text.trim().parse::<i64>() {
        Ok(n) if n == -1 || (6..=16 * 1024 * 1024).contains(&n) => Ok(n),
        _ => Err(bad(
            value,
            format!(
                "`{}` must be a number of MB or `-1`, not {}",
                value.key,
                value.quoted()
            ),
            "write memory plus swap in MB (at least `MEMORY_MB`), or `-1` for unlimited swap",
        )),
    }
}

/// `PIDS_LIMIT`: at most this many processes, or `-1` for no limit.
pub fn pids_limit(value: &Value) -> Result<i64, Diagnostic> {
    match value.text.trim().parse::<i64>() {
        Ok(n) if n == -1 || (1..=4_194_304).contains(&n) => Ok(n),
        _ => Err(bad(
            value,
            format!(
                "`{}` must be a number of processes or `-1`, not {}",
                value.key,
                value.quoted()
            ),
            "write e.g. `200`, or `-1` for no limit",
        )),
    }
}

/// `DOMAINNAME`: the container's NIS domain name, RFC 1123 labels.
pub fn domainname(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    if hostname_labels(text) && text.len() <= 253 {
        return Ok(text.to_string());
    }
    Err(bad(
        value,
        format!("`{}` is not a domain: `{text}`", value.key),
        "write labels of letters, digits and `-`, separated by `.`, e.g. `example.com`",
    ))
}

/// `MAC_ADDRESS`: six hexadecimal bytes separated by `:`.
pub fn mac_address(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let parts: Vec<&str> = text.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        return Ok(text.to_ascii_lowercase());
    }
    Err(bad(
        value,
        format!("`{}` is not a MAC address: `{text}`", value.key),
        "write six hexadecimal bytes, e.g. `02:42:ac:11:00:02`",
    ))
}

/// `RUNTIME`: the name of a runtime the engine knows (`runc`, `nvidia`, `sysbox-runc`).
pub fn runtime(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let mut chars = text.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && text.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        return Ok(text.to_string());
    }
    Err(bad(
        value,
        format!("`{}` is not a runtime name: `{text}`", value.key),
        "write a runtime the engine lists in `docker info`, e.g. `runc` or `nvidia`",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::attrs::tests::value;

    #[test]
    fn devices_keep_the_form_they_were_written_in() {
        let v = value("");
        for text in [
            "/dev/net/tun",
            "/dev/dri:/dev/dri",
            "/dev/sda:/dev/xvda:rw",
            "/dev/fuse:rwm",
        ] {
            assert_eq!(device(&v, text).unwrap().to_string(), text);
        }
        let tun = device(&v, "/dev/sda:r").unwrap();
        assert_eq!(
            (tun.target(), tun.permissions.as_deref()),
            ("/dev/sda", Some("r"))
        );
        for bad in [
            "dri",
            "/dev/a:/dev/b:rx",
            "/dev/a:/dev/b:rr",
            "/dev/a:b",
            "",
            "nvidia.com/gpu=all",
        ] {
            let error = device(&v, bad).unwrap_err();
            assert!(error.message.contains("is not a device"), "{bad}");
        }
    }

    #[test]
    fn namespaces() {
        let parse = |text, modes| namespace(&value(text), modes);
        assert_eq!(parse("host", NETWORK_MODES).unwrap(), Namespace::Host);
        assert_eq!(
            parse("service:vpn", NETWORK_MODES).unwrap().service(),
            Some("vpn")
        );
        assert_eq!(
            parse("container:gluetun", PID_MODES).unwrap().to_string(),
            "container:gluetun"
        );
        assert_eq!(parse("shareable", IPC_MODES).unwrap(), Namespace::Shareable);
        assert!(parse("shareable", PID_MODES).is_err());
        let error = parse("service:", NETWORK_MODES).unwrap_err();
        assert!(error.hint.unwrap().contains("`host`, `none`, `bridge`"));
        assert!(parse("overlay", NETWORK_MODES).is_err());
    }

    #[test]
    fn resolver_settings() {
        let v = value("");
        assert_eq!(dns_server(&v, "1.1.1.1").unwrap(), "1.1.1.1");
        assert_eq!(
            dns_server(&v, "2606:4700::1111").unwrap(),
            "2606:4700::1111"
        );
        assert!(dns_server(&v, "dns.example.com").is_err());
        assert!(dns_search(&v, "example.internal").is_ok());
        assert!(dns_search(&v, ".").is_ok());
        assert!(dns_search(&v, "-bad.example").is_err());
        assert!(dns_option(&v, "ndots:2").is_ok());
        assert!(dns_option(&v, "use-vc").is_ok());
        assert!(dns_option(&v, "ndots 2").is_err());
    }

    #[test]
    fn knobs() {
        assert_eq!(cpuset(&value("0-3")).unwrap(), "0-3");
        assert_eq!(cpuset(&value("0,2-3")).unwrap(), "0,2-3");
        assert!(cpuset(&value("3-1")).is_err());
        assert!(cpuset(&value("all")).is_err());
        assert_eq!(memory_swap(&value("-1")).unwrap(), -1);
        assert!(memory_swap(&value("-2")).is_err());
        assert_eq!(pids_limit(&value("200")).unwrap(), 200);
        assert!(pids_limit(&value("0")).is_err());
        assert_eq!(
            mac_address(&value("02:42:AC:11:00:02")).unwrap(),
            "02:42:ac:11:00:02"
        );
        assert!(mac_address(&value("02:42:ac:11:00")).is_err());
        assert!(domainname(&value("example.com")).is_ok());
        assert!(domainname(&value("exa mple.com")).is_err());
        assert!(runtime(&value("sysbox-runc")).is_ok());
        assert!(runtime(&value("run c")).is_err());
    }
}
