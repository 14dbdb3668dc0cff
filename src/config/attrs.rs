//! The container attributes a real stack needs beyond image, ports and volumes
//! (`ENTRYPOINT`, `USER`, `CAP_ADD`, `TMPFS`, `ULIMITS`, …) and log rotation: their typed
//! values and the checks that read one value into them. Pure: no I/O. The model reuses
//! these types, so every consumer maps a checked value and never parses text again.

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
    pub shm_mb: Option<u64>,
    pub gpus: Option<Gpus>,
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
}

impl Tmpfs {
    /// Mount options as Docker's `--tmpfs` takes them (`size=64m,mode=1777`), maybe empty.
    pub fn options(&self) -> String {
        let mut options = Vec::new();
        if let Some(size) = self.size {
            options.push(format!("size={size}"));
        }
        if let Some(mode) = self.mode {
            options.push(format!("mode={mode:o}"));
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

/// The Linux capabilities (capabilities(7)), without `CAP_`.
pub const CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// setrlimit(2) resources, as Docker names them.
const ULIMITS: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "KILL", "PIPE",
    "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU",
    "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

const ARCHITECTURES: &[&str] = &[
    "386", "amd64", "arm", "arm64", "mips64le", "ppc64le", "riscv64", "s390x",
];

/// Label prefixes stack and Compose own; a project's label there would be overwritten.
const RESERVED_LABELS: &[&str] = &["dev.stack.", "com.docker.compose.", "com.docker.stack."];

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
            format!("`{}` is not a user: `{text}`", value.key),
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

/// One capability of `CAP_ADD` / `CAP_DROP`, with or without `CAP_`, or `ALL`.
pub fn capability(value: &Value, item: &str) -> Result<Capability, Diagnostic> {
    let upper = item.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if name == "ALL" || CAPABILITIES.contains(&name) {
        return Ok(Capability(name.to_string()));
    }
    let hint = match crate::error::nearest(name, CAPABILITIES.iter().copied()) {
        Some(near) => format!("did you mean `{near}`? (see capabilities(7), or `ALL`)"),
        None => "write a Linux capability such as `NET_BIND_SERVICE`, or `ALL`".to_string(),
    };
    Err(bad(
        value,
        format!(
            "`{}`: `{}` is not a Linux capability",
            value.key,
            item.trim()
        ),
        hint,
    ))
}

/// A size: digits and an optional binary unit (`b`, `k`, `m`, `g`, with or without `b`).
pub fn parse_size(text: &str) -> Option<ByteSize> {
    let text = text.trim().to_ascii_lowercase();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let factor: u64 = match &text[digits..] {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return None,
    };
    number
        .checked_mul(factor)
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

/// `TMPFS` items: a comma after an item's options continues them (`/tmp:size=64m,mode=1777`),
/// so an entry starts at each item that starts with `/`.
pub fn tmpfs_entries(text: &str) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    for item in super::values::split_list(text) {
        match entries.last_mut() {
            Some(last) if !item.starts_with('/') && last.contains(':') => {
                last.push(',');
                last.push_str(&item);
            }
            _ => entries.push(item),
        }
    }
    entries
}

/// One `TMPFS` entry: `/path[:size=64m,mode=1777]`.
pub fn tmpfs(value: &Value, item: &str) -> Result<Tmpfs, Diagnostic> {
    let fail = |why: &str| {
        bad(
            value,
            format!("`{}`: invalid tmpfs `{item}`: {why}", value.key),
            "write `/path`, or `/path:size=64m,mode=1777`",
        )
    };
    let (path, options) = match item.split_once(':') {
        Some((path, options)) => (path.trim(), Some(options)),
        None => (item.trim(), None),
    };
    let path_ok = path.starts_with('/')
        && path.len() > 1
        && !path.chars().any(|c| c.is_whitespace() || c.is_control());
    if !path_ok {
        return Err(fail("the path must be absolute and not `/`"));
    }
    let mut tmpfs = Tmpfs {
        path: path.to_string(),
        size: None,
        mode: None,
    };
    for option in options.into_iter().flat_map(|o| o.split(',')) {
        match pair(option, '=') {
            Some(("size", size)) => {
                tmpfs.size = Some(parse_size(size).ok_or_else(|| fail("bad size"))?);
            }
            Some(("mode", mode)) => {
                let mode = u32::from_str_radix(mode, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| fail("the mode must be octal, e.g. `1777`"))?;
                tmpfs.mode = Some(mode);
            }
            _ => return Err(fail("options are `size=` and `mode=`")),
        }
    }
    Ok(tmpfs)
}

/// Whether Docker lets a container (not on the host network) set sysctl `name`.
fn namespaced_sysctl(name: &str) -> bool {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    IPC.contains(&name) || name.starts_with("fs.mqueue.") || name.starts_with("net.")
}

/// One `SYSCTLS` item: `name=value`, a sysctl Docker allows in a container.
pub fn sysctl(value: &Value, item: &str) -> Result<(String, String), Diagnostic> {
    let parsed = pair(item, '=').filter(|(name, setting)| {
        !setting.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    });
    let Some((name, setting)) = parsed else {
        return Err(bad(
            value,
            format!("`{}`: `{item}` is not `name=value`", value.key),
            "write e.g. `net.core.somaxconn=1024`",
        ));
    };
    if !namespaced_sysctl(name) {
        return Err(bad(
            value,
            format!("`{}`: Docker does not allow sysctl `{name}` in a container", value.key),
            "containers may set `net.*`, `fs.mqueue.*` and the IPC `kernel.msg*`, `kernel.sem`, `kernel.shm*` sysctls",
        ));
    }
    Ok((name.to_string(), setting.to_string()))
}

/// One `ULIMITS` item: `name=limit` or `name=soft:hard`.
pub fn ulimit(value: &Value, item: &str) -> Result<Ulimit, Diagnostic> {
    let fail = |why: String| {
        bad(
            value,
            format!("`{}`: invalid ulimit `{item}`: {why}", value.key),
            "write `nofile=1024:2048` (soft:hard) or `nproc=512`",
        )
    };
    let (name, limits) = pair(item, '=').ok_or_else(|| fail("not `name=limit`".into()))?;
    if !ULIMITS.contains(&name) {
        return Err(fail(format!(
            "`{name}` is not a resource (use one of {})",
            ULIMITS.join(", ")
        )));
    }
    let number = |text: &str| {
        text.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| fail(format!("`{}` is not a whole number", text.trim())))
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((soft, hard)) => (number(soft)?, number(hard)?),
        None => {
            let limit = number(limits)?;
            (limit, limit)
        }
    };
    if soft > hard {
        return Err(fail("the soft limit is above the hard one".into()));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// One `LABELS` item: `key=value`, outside the prefixes stack and Compose own.
pub fn label(value: &Value, item: &str) -> Result<(String, String), Diagnostic> {
    let parsed = pair(item, '=').filter(|(key, _)| {
        !key.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"')
    });
    let Some((key, text)) = parsed else {
        return Err(bad(
            value,
            format!("`{}`: `{item}` is not `key=value`", value.key),
            "write e.g. `com.example.team=payments`",
        ));
    };
    if let Some(prefix) = RESERVED_LABELS.iter().find(|p| key.starts_with(**p)) {
        return Err(bad(
            value,
            format!(
                "`{}`: label `{key}` is under `{prefix}`, which stack sets itself",
                value.key
            ),
            "choose a key under your own prefix, e.g. `com.example.`",
        ));
    }
    Ok((key.to_string(), text.to_string()))
}

/// One `EXTRA_HOSTS` item: `host:ip` or `host:host-gateway` (also `host=ip`).
pub fn extra_host(value: &Value, item: &str) -> Result<ExtraHost, Diagnostic> {
    let parsed = pair(item, '=').or_else(|| pair(item, ':'));
    let host_ok = |host: &str| {
        host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
    };
    let address = parsed.and_then(|(host, address)| {
        let address = address.trim_start_matches('[').trim_end_matches(']');
        let address = if address == "host-gateway" {
            HostAddress::HostGateway
        } else {
            HostAddress::Ip(address.parse().ok()?)
        };
        host_ok(host).then(|| ExtraHost {
            host: host.to_string(),
            address,
        })
    });
    address.ok_or_else(|| {
        bad(
            value,
            format!("`{}`: `{item}` is not `host:ip`", value.key),
            "write e.g. `db.internal:10.0.0.5` or `host.docker.internal:host-gateway`",
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

/// A container variable name as Docker takes it: not empty, no `=`, no NUL or control
/// characters (dots and lower case are fine: `discovery.type`, `http_proxy`).
pub fn env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('=') && !name.chars().any(|c| c.is_control() || c == ' ')
}

/// One item of the `ENV` list: `name=value`.
pub fn env_entry(value: &Value, item: &str) -> Result<(String, String), Diagnostic> {
    match item.split_once('=') {
        Some((name, text)) if env_name(name.trim()) => {
            Ok((name.trim().to_string(), text.trim().to_string()))
        }
        _ => Err(bad(
            value,
            format!("`{}`: `{item}` is not `name=value`", value.key),
            "write e.g. `discovery.type=single-node`; names cannot be empty or hold `=`, blanks or control characters",
        )),
    }
}

#[cfg(test)]
#[path = "attrs_tests.rs"]
mod tests;
