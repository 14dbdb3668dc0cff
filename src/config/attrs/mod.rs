//! The container attributes a real stack needs beyond image, ports and volumes
//! (`ENTRYPOINT`, `USER`, `CAP_ADD`, `TMPFS`, `ULIMITS`, …) and log rotation: their typed
//! values and the checks that read one value into them. Pure: no I/O. The model reuses
//! these types, so every consumer maps a checked value and never parses text again.
//! This file owns the types, the shared helpers and the single-value checks; the
//! runtime limits and the list items have their own submodules.

pub mod host;
pub mod image;
mod lists;
mod runtime;

pub use host::{Device, Namespace};
pub use lists::{
    alias, env_entry, env_name, extra_host, group, label, label_entries, placement, security_opt,
};
pub use runtime::{capability, logging, sysctl, tmpfs, tmpfs_entries, ulimit, CAPABILITIES};

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::Value;
use crate::error::Diagnostic;

/// Container options beyond the basics, all optional (`Default`: the engine's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerOptions {
    pub entrypoint: Option<Vec<String>>,
    pub user: Option<User>,
    /// An absolute path in the container.
    pub workdir: Option<String>,
    /// The container's host name (`HOSTNAME`).
    pub hostname: Option<String>,
    /// More names the service answers to on each of its networks (`ALIASES`).
    pub aliases: Vec<String>,
    /// Supplementary groups of the container's process (`GROUP_ADD`): names or gids.
    pub group_add: Vec<String>,
    /// `SECURITY_OPT`: `no-new-privileges:true`, `label=…`, `apparmor=…`, …
    pub security_opt: Vec<String>,
    /// `PRIVILEGED`: every device and capability of the host.
    pub privileged: bool,
    /// `TTY`: a pseudo-terminal.
    pub tty: bool,
    /// `STDIN_OPEN`: standard input kept open.
    pub stdin_open: bool,
    pub stop_signal: Option<Signal>,
    /// Between the stop signal and SIGKILL; `None`: stack's default of 10 s.
    pub stop_grace: Option<Duration>,
    pub cap_add: Vec<Capability>,
    pub cap_drop: Vec<Capability>,
    pub read_only: bool,
    pub tmpfs: Vec<Tmpfs>,
    pub sysctls: BTreeMap<String, String>,
    pub ulimits: Vec<Ulimit>,
    pub init: bool,
    pub platform: Option<Platform>,
    /// Swarm placement constraints (`node.labels.role==db`), as Docker writes them.
    pub placement: Vec<String>,
    pub shm_mb: Option<u64>,
    pub gpus: Option<Gpus>,
    // The attributes below are left out of the digest while unset, so adding them
    // replaced no container that does not use them.
    /// Host devices in the container (`DEVICES`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// `NETWORK_MODE`: the host's, none, the engine's bridge or another one's network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<Namespace>,
    /// `DNS`: name servers' addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// `DNS_SEARCH`: search domains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// `DNS_OPT`: resolver options (`ndots:2`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    /// `PIDS_LIMIT`: at most this many processes; -1: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// `MEMORY_RESERVATION_MB`: the soft memory limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation_mb: Option<u64>,
    /// `MEMORY_SWAP_MB`: memory plus swap; -1: unlimited swap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_swap_mb: Option<i64>,
    /// `MEMORY_SWAPPINESS`: 0 to 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_swappiness: Option<u8>,
    /// `CPU_SHARES`: relative CPU weight (1024 is the default's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u32>,
    /// `CPUSET`: the CPUs it may run on (`0-3`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// `OOM_SCORE_ADJ`: -1000 to 1000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i16>,
    /// `PID`: the process namespace (`host`, another service's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<Namespace>,
    /// `IPC`: the IPC namespace (`host`, `shareable`, another service's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<Namespace>,
    /// `DOMAINNAME`: the container's domain name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// `MAC_ADDRESS` on the service's network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// `RUNTIME`: the engine's runtime (`nvidia`, `sysbox-runc`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// `USERNS_MODE`: `host` turns off user-namespace remapping for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    /// `CGROUP`: the cgroup namespace, `host` or `private`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Options of the mounts of `VOLUMES` beyond read-only, by target (`Z`, `rshared`,
    /// `nocopy`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub mount_options: BTreeMap<String, crate::config::MountOptions>,
    /// `PULL_POLICY`: when `start` and `deploy` fetch the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<image::PullPolicy>,
    /// `LOGGING`: the service's own log driver, instead of the project's json-file rotation.
    pub logging: Option<LogDriver>,
}

/// A log driver and its options, as the engine takes them (`LOGGING`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogDriver {
    pub driver: String,
    pub options: BTreeMap<String, String>,
}

/// `STACK_LOG_MAX_SIZE`, `STACK_LOG_MAX_FILES`: json-file rotation of every container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRotation {
    pub max_size: ByteSize,
    pub max_files: u32,
}

impl Default for LogRotation {
    fn default() -> Self {
        LogRotation {
            max_size: ByteSize(10 * 1024 * 1024),
            max_files: 3,
        }
    }
}

/// A size in bytes, written the way Docker reads it (`64m`: binary units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteSize(pub u64);

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.0;
        for (unit, size) in [("g", 1u64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
            if bytes >= size && bytes % size == 0 {
                return write!(f, "{}{unit}", bytes / size);
            }
        }
        write!(f, "{bytes}")
    }
}

/// `USER`: a user name or id, optionally with a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub user: String,
    pub group: Option<String>,
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.group {
            Some(group) => write!(f, "{}:{group}", self.user),
            None => f.write_str(&self.user),
        }
    }
}

/// A signal name as Docker takes it (`SIGTERM`, `SIGRTMIN+3`) or its number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal(pub String);

/// A Linux capability without its `CAP_` prefix, or `ALL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability(pub String);

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == "ALL" {
            f.write_str("ALL")
        } else {
            write!(f, "CAP_{}", self.0)
        }
    }
}

/// A tmpfs mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tmpfs {
    pub path: String,
    pub size: Option<ByteSize>,
    /// Permission bits (`0o1777`).
    pub mode: Option<u32>,
    /// Owner of the mount's root (Compose's `uid=`, as Whoogle's `/config/:uid=927`).
    #[serde(default)]
    pub uid: Option<u32>,
    /// Group of the mount's root (`gid=`).
    #[serde(default)]
    pub gid: Option<u32>,
}

impl Tmpfs {
    /// Mount options as Docker's `--tmpfs` takes them (`size=64m,mode=1777,uid=1000`), maybe empty.
    pub fn options(&self) -> String {
        let mut options = Vec::new();
        if let Some(size) = self.size {
            options.push(format!("size={size}"));
        }
        if let Some(mode) = self.mode {
            options.push(format!("mode={mode:o}"));
        }
        if let Some(uid) = self.uid {
            options.push(format!("uid={uid}"));
        }
        if let Some(gid) = self.gid {
            options.push(format!("gid={gid}"));
        }
        options.join(",")
    }
}

/// A resource limit (`nofile=1024:2048`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// An `/etc/hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHost {
    pub host: String,
    pub address: HostAddress,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostAddress {
    Ip(IpAddr),
    /// The engine host's address on the container's network (`host-gateway`).
    HostGateway,
}

impl std::fmt::Display for HostAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostAddress::Ip(ip) => write!(f, "{ip}"),
            HostAddress::HostGateway => f.write_str("host-gateway"),
        }
    }
}

impl std::fmt::Display for ExtraHost {
    /// `host:address`, as Compose and the engine's `ExtraHosts` take it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.address)
    }
}

/// `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// `GPUS`: every GPU, or a number of them (NVIDIA driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gpus {
    All,
    Count(u32),
}

const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "KILL", "PIPE",
    "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU",
    "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

const ARCHITECTURES: &[&str] = &[
    "386", "amd64", "arm", "arm64", "mips64le", "ppc64le", "riscv64", "s390x",
];

/// The error for `value` (or one item of it), pointing at its key.
fn bad(value: &Value, message: String, hint: impl Into<String>) -> Diagnostic {
    Diagnostic::new(message)
        .with_span(value.span.cloned())
        .hint(hint.into())
}

/// Split `name=value` (or `name<sep>value`), both sides trimmed, the name not empty.
fn pair(item: &str, sep: char) -> Option<(&str, &str)> {
    let (name, value) = item.split_once(sep)?;
    let name = name.trim();
    (!name.is_empty()).then_some((name, value.trim()))
}

/// `USER`: `name`, `uid`, `name:group`, `uid:gid`.
pub fn user(value: &Value) -> Result<User, Diagnostic> {
    let text = value.text.trim();
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 64
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    let (user, group) = match text.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (text, None),
    };
    if !part(user) || !group.is_none_or(part) {
        return Err(bad(
            value,
            format!("`{}` is not a user: {}", value.key, value.show(text)),
            "write a user name or id, optionally with a group: `app`, `1000`, `1000:1000`",
        ));
    }
    Ok(User {
        user: user.into(),
        group: group.map(Into::into),
    })
}

/// `WORKDIR`: an absolute path in the container.
pub fn workdir(value: &Value) -> Result<String, Diagnostic> {
    let text = value.line()?.trim().to_string();
    if !text.starts_with('/') {
        return Err(bad(
            value,
            format!("`{}` must be an absolute path, not `{text}`", value.key),
            "write the directory inside the container, e.g. `/app`",
        ));
    }
    Ok(text)
}

/// The longest `HOSTNAME`: a DNS label's limit. The kernel takes 64 bytes
/// (`HOST_NAME_MAX`); a longer name passes the engine's create and fails its start
/// (`sethostname: invalid argument`).
pub const HOSTNAME_MAX: usize = 63;

/// `HOSTNAME`: RFC 1123 labels (letters, digits and `-`, neither first nor last), one or
/// dot-separated, at most [`HOSTNAME_MAX`] characters in all.
pub fn hostname(value: &Value) -> Result<String, Diagnostic> {
    let text = value.line()?.trim().to_string();
    if !hostname_labels(&text) {
        return Err(bad(
            value,
            format!("`{}` is not a host name: {}", value.key, value.quoted()),
            "write letters, digits and `-` (not first or last), labels separated by `.`, e.g. `mail` or `mail.example.com`",
        ));
    }
    if text.len() > HOSTNAME_MAX {
        return Err(bad(
            value,
            format!(
                "`{}` is {} characters long, more than a container's host name may have ({HOSTNAME_MAX})",
                value.key,
                text.len()
            ),
            "write a shorter name, e.g. its first label (`mail` for `mail.example.com`)",
        ));
    }
    Ok(text)
}

/// `text` is RFC 1123 labels, one or dot-separated (its length aside).
pub(super) fn hostname_labels(text: &str) -> bool {
    text.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// `text` is a `HOSTNAME` stack accepts (what `stack import` checks before carrying one).
pub fn is_container_hostname(text: &str) -> bool {
    hostname_labels(text) && text.len() <= HOSTNAME_MAX
}

/// `STOP_SIGNAL`: a signal name with or without `SIG`, or its number.
pub fn signal(value: &Value) -> Result<Signal, Diagnostic> {
    let text = value.text.trim().to_ascii_uppercase();
    if let Ok(number) = text.parse::<u8>() {
        if (1..=64).contains(&number) {
            return Ok(Signal(number.to_string()));
        }
    }
    let name = text.strip_prefix("SIG").unwrap_or(&text);
    let realtime = |base: &str, sign: char| {
        name.strip_prefix(base).is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix(sign)
                    .and_then(|n| n.parse::<u8>().ok())
                    .is_some_and(|n| (1..=30).contains(&n))
        })
    };
    if SIGNALS.contains(&name) || realtime("RTMIN", '+') || realtime("RTMAX", '-') {
        return Ok(Signal(format!("SIG{name}")));
    }
    Err(bad(
        value,
        format!("`{}` is not a signal: `{}`", value.key, value.text.trim()),
        "write a signal name such as `SIGTERM`, `SIGQUIT` or `SIGINT`, or its number",
    ))
}

/// The bytes in one size unit, lower-case (`k`, `kb`: 1024): the units Docker and
/// Compose read and stack writes ([`ByteSize`]); `None` for any other.
pub fn size_unit(unit: &str) -> Option<u64> {
    Some(match unit {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return None,
    })
}

/// A size: digits and an optional binary unit (`b`, `k`, `m`, `g`, with or without `b`).
pub fn parse_size(text: &str) -> Option<ByteSize> {
    let text = text.trim().to_ascii_lowercase();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    number
        .checked_mul(size_unit(&text[digits..])?)
        .filter(|bytes| *bytes > 0)
        .map(ByteSize)
}

/// `STACK_LOG_MAX_SIZE`.
pub fn size(value: &Value) -> Result<ByteSize, Diagnostic> {
    parse_size(value.text).ok_or_else(|| {
        bad(
            value,
            format!("`{}` must be a size, not `{}`", value.key, value.text),
            "write a number with an optional unit, e.g. `10m`, `512k`, `1g`",
        )
    })
}

/// `PLATFORM`: `os/architecture[/variant]`.
pub fn platform(value: &Value) -> Result<Platform, Diagnostic> {
    let text = value.text.trim().to_ascii_lowercase();
    let parts: Vec<&str> = text.split('/').collect();
    let variant_ok = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric());
    match parts.as_slice() {
        [os, architecture, rest @ ..]
            if ["linux", "windows"].contains(os)
                && ARCHITECTURES.contains(architecture)
                && rest.len() <= 1
                && rest.iter().all(|v| variant_ok(v)) =>
        {
            Ok(Platform {
                os: os.to_string(),
                architecture: architecture.to_string(),
                variant: rest.first().map(|v| v.to_string()),
            })
        }
        _ => Err(bad(
            value,
            format!("`{}` is not a platform: `{}`", value.key, value.text.trim()),
            format!(
                "write `linux/<architecture>[/variant]`, e.g. `linux/amd64` or `linux/arm64/v8`; architectures: {}",
                ARCHITECTURES.join(", ")
            ),
        )),
    }
}

/// `GPUS`: `all` or a number of GPUs.
pub fn gpus(value: &Value) -> Result<Gpus, Diagnostic> {
    let text = value.text.trim().to_ascii_lowercase();
    if text == "all" {
        return Ok(Gpus::All);
    }
    match text.parse::<u32>() {
        Ok(count) if (1..=64).contains(&count) => Ok(Gpus::Count(count)),
        _ => Err(bad(
            value,
            format!(
                "`{}` must be `all` or a number of GPUs, not `{}`",
                value.key, value.text
            ),
            "write `all` or e.g. `1`",
        )),
    }
}

/// `BUILD_TARGET`: a stage name of the Dockerfile.
pub fn build_target(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let ok = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(text.to_string())
    } else {
        Err(bad(
            value,
            format!("`{}` is not a build stage name: `{text}`", value.key),
            "write the name after `AS` in a `FROM … AS <name>` line",
        ))
    }
}

#[cfg(test)]
mod tests;
