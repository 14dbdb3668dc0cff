//! Runtime limits of a container: capabilities (`CAP_ADD`, `CAP_DROP`), `TMPFS`,
//! `SYSCTLS`, `ULIMITS` and a service's own log driver (`LOGGING`).

use super::{bad, pair, parse_size, Capability, LogDriver, Tmpfs, Ulimit};
use crate::config::values::Value;
use crate::error::Diagnostic;

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

/// `TMPFS` items: a comma after an item's options continues them (`/tmp:size=64m,mode=1777`),
/// so an entry starts at each item that starts with `/`.
pub fn tmpfs_entries(text: &str) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    for item in crate::config::values::split_list(text) {
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

/// One `TMPFS` entry: `/path[:size=64m,mode=1777,uid=1000,gid=1000]`.
pub fn tmpfs(value: &Value, item: &str) -> Result<Tmpfs, Diagnostic> {
    let fail = |why: &str| {
        bad(
            value,
            format!("`{}`: invalid tmpfs `{item}`: {why}", value.key),
            "write `/path`, or `/path:size=64m,mode=1777,uid=1000,gid=1000`",
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
        uid: None,
        gid: None,
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
            Some(("uid", id)) => {
                tmpfs.uid = Some(id.parse().map_err(|_| fail("`uid=` takes a number"))?);
            }
            Some(("gid", id)) => {
                tmpfs.gid = Some(id.parse().map_err(|_| fail("`gid=` takes a number"))?);
            }
            _ => return Err(fail("options are `size=`, `mode=`, `uid=` and `gid=`")),
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
            format!("`{}`: {} is not `name=value`", value.key, value.show(item)),
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
    // `-1` (or `unlimited`) is no limit, as Docker and Compose write it (`memlock=-1`).
    let number = |text: &str| match text.trim() {
        "unlimited" => Ok(-1),
        text => text
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= -1)
            .ok_or_else(|| fail(format!("`{text}` is not a whole number or -1 (unlimited)"))),
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((soft, hard)) => (number(soft)?, number(hard)?),
        None => {
            let limit = number(limits)?;
            (limit, limit)
        }
    };
    let above = |n: i64| if n == -1 { i64::MAX } else { n };
    if above(soft) > above(hard) {
        return Err(fail("the soft limit is above the hard one".into()));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// `LOGGING`: the first item is the log driver (`none`, `local`, `syslog`, `gelf`,
/// `json-file`, a plugin's name), each further item one of its options, `key=value`.
pub fn logging(value: &Value) -> Result<LogDriver, Diagnostic> {
    let hint = "write the driver, then its options: `none`, `local,max-size=20m` or \
                `syslog,syslog-address=udp://10.0.0.5:514,tag=web`";
    let items = value.list();
    let driver_ok = |d: &str| {
        d.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && d.len() <= 128
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-/:".contains(c))
    };
    let Some(driver) = items.first().filter(|d| driver_ok(d)) else {
        return Err(bad(
            value,
            format!("`{}` does not start with a log driver's name", value.key),
            hint,
        ));
    };
    let mut options = std::collections::BTreeMap::new();
    for item in &items[1..] {
        let option = pair(item, '=').filter(|(k, v)| {
            k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                && !v.chars().any(char::is_control)
        });
        let Some((key, text)) = option else {
            return Err(bad(
                value,
                format!("`{}`: `{item}` is not a log option `key=value`", value.key),
                hint,
            ));
        };
        options.insert(key.to_string(), text.to_string());
    }
    Ok(LogDriver {
        driver: driver.clone(),
        options,
    })
}
