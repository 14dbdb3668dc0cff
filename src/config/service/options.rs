//! The container options of one service (`ENTRYPOINT`, `USER`, `CAP_ADD`, `TMPFS`, …),
//! its `LABELS`, `EXTRA_HOSTS` and the `ENV` list, read with [`crate::config::attrs`].

use std::collections::BTreeMap;

use super::{command, get, AttrMap};
use crate::config::attrs::{self, host, ContainerOptions, ExtraHost};
use crate::config::lookup::Errors;
use crate::config::values::Value;
use crate::error::Diagnostic;

/// Every item of the list attribute `attr`, read by `read`; bad items are reported.
fn items<T>(
    map: &AttrMap,
    attr: &str,
    errors: &mut Errors,
    read: impl Fn(&Value, &str) -> Result<T, Diagnostic>,
) -> Vec<T> {
    get(map, attr)
        .map(|v| {
            let list = match attr {
                "TMPFS" => attrs::tmpfs_entries(v.text),
                // `\,` is a comma inside an item of these three.
                "LABELS" | "ENV" | "BUILD_ARGS" => match errors.take(v.escaped_list()) {
                    Some(list) if attr == "LABELS" => attrs::label_entries(list),
                    Some(list) => list,
                    None => Vec::new(),
                },
                _ => v.list(),
            };
            list.iter()
                .filter_map(|item| errors.take(read(v, item)))
                .collect()
        })
        .unwrap_or_default()
}

/// `ENTRYPOINT`: `[]` resets the image's entrypoint (as Compose's `entrypoint: []`);
/// anything else is a command.
fn entrypoint(value: &Value) -> Result<Vec<String>, Diagnostic> {
    if value.text.trim() == "[]" {
        return Ok(Vec::new());
    }
    command(value)
}

/// A boolean attribute, false when unset.
fn flag(map: &AttrMap, attr: &str, errors: &mut Errors) -> bool {
    get(map, attr)
        .and_then(|v| errors.take(v.boolean()))
        .unwrap_or(false)
}

/// `ENTRYPOINT` … `GPUS`.
pub(super) fn read_options(map: &AttrMap, errors: &mut Errors) -> ContainerOptions {
    let one = |attr: &str| get(map, attr);
    ContainerOptions {
        entrypoint: one("ENTRYPOINT").and_then(|v| errors.take(entrypoint(v))),
        user: one("USER").and_then(|v| errors.take(attrs::user(v))),
        workdir: one("WORKDIR").and_then(|v| errors.take(attrs::workdir(v))),
        hostname: one("HOSTNAME").and_then(|v| errors.take(attrs::hostname(v))),
        aliases: items(map, "ALIASES", errors, attrs::alias),
        group_add: items(map, "GROUP_ADD", errors, attrs::group),
        security_opt: items(map, "SECURITY_OPT", errors, attrs::security_opt),
        privileged: flag(map, "PRIVILEGED", errors),
        tty: flag(map, "TTY", errors),
        stdin_open: flag(map, "STDIN_OPEN", errors),
        stop_signal: one("STOP_SIGNAL").and_then(|v| errors.take(attrs::signal(v))),
        stop_grace: one("STOP_GRACE").and_then(|v| errors.take(v.duration())),
        cap_add: items(map, "CAP_ADD", errors, attrs::capability),
        cap_drop: items(map, "CAP_DROP", errors, attrs::capability),
        read_only: flag(map, "READ_ONLY", errors),
        tmpfs: items(map, "TMPFS", errors, attrs::tmpfs),
        sysctls: items(map, "SYSCTLS", errors, attrs::sysctl)
            .into_iter()
            .collect(),
        ulimits: items(map, "ULIMITS", errors, attrs::ulimit),
        init: flag(map, "INIT", errors),
        platform: one("PLATFORM").and_then(|v| errors.take(attrs::platform(v))),
        placement: items(map, "PLACEMENT", errors, attrs::placement),
        shm_mb: one("SHM_MB").and_then(|v| errors.take(v.number::<u64>(1, 1024 * 1024))),
        gpus: one("GPUS").and_then(|v| errors.take(attrs::gpus(v))),
        devices: items(map, "DEVICES", errors, host::device),
        network_mode: namespace(map, "NETWORK_MODE", host::NETWORK_MODES, errors),
        dns: items(map, "DNS", errors, host::dns_server),
        dns_search: items(map, "DNS_SEARCH", errors, host::dns_search),
        dns_opt: items(map, "DNS_OPT", errors, host::dns_option),
        pids_limit: one("PIDS_LIMIT").and_then(|v| errors.take(host::pids_limit(v))),
        memory_reservation_mb: one("MEMORY_RESERVATION_MB")
            .and_then(|v| errors.take(v.number::<u64>(1, 16 * 1024 * 1024))),
        memory_swap_mb: one("MEMORY_SWAP_MB").and_then(|v| errors.take(host::memory_swap(v))),
        memory_swappiness: one("MEMORY_SWAPPINESS").and_then(|v| errors.take(v.number(0, 100))),
        cpu_shares: one("CPU_SHARES").and_then(|v| errors.take(v.number(2, 262_144))),
        cpuset: one("CPUSET").and_then(|v| errors.take(host::cpuset(v))),
        oom_score_adj: one("OOM_SCORE_ADJ").and_then(|v| errors.take(v.number(-1000, 1000))),
        pid: namespace(map, "PID", host::PID_MODES, errors),
        ipc: namespace(map, "IPC", host::IPC_MODES, errors),
        domainname: one("DOMAINNAME").and_then(|v| errors.take(host::domainname(v))),
        mac_address: one("MAC_ADDRESS").and_then(|v| errors.take(host::mac_address(v))),
        runtime: one("RUNTIME").and_then(|v| errors.take(host::runtime(v))),
        userns_mode: one("USERNS_MODE")
            .and_then(|v| errors.take(v.choice(&["host"])))
            .map(str::to_string),
        cgroup: one("CGROUP")
            .and_then(|v| errors.take(v.choice(&["host", "private"])))
            .map(str::to_string),
        // Read with `VOLUMES` (`read_volumes`), which sets them.
        mount_options: Default::default(),
        pull_policy: one("PULL_POLICY").and_then(|v| errors.take(attrs::image::pull_policy(v))),
        logging: one("LOGGING").and_then(|v| errors.take(attrs::logging(v))),
    }
}

/// `NETWORK_MODE`, `PID` or `IPC`.
fn namespace(
    map: &AttrMap,
    attr: &str,
    modes: &[&str],
    errors: &mut Errors,
) -> Option<attrs::Namespace> {
    get(map, attr).and_then(|v| errors.take(host::namespace(v, modes)))
}

/// `LABELS`.
pub(super) fn read_labels(map: &AttrMap, errors: &mut Errors) -> BTreeMap<String, String> {
    items(map, "LABELS", errors, attrs::label)
        .into_iter()
        .collect()
}

/// `EXTRA_HOSTS`.
pub(super) fn read_extra_hosts(map: &AttrMap, errors: &mut Errors) -> Vec<ExtraHost> {
    items(map, "EXTRA_HOSTS", errors, attrs::extra_host)
}

/// The `ENV` list: `name=value` pairs for names `ENV_<VAR>` cannot spell.
pub(super) fn read_env_list(map: &AttrMap, errors: &mut Errors) -> Vec<(String, String)> {
    items(map, "ENV", errors, attrs::env_entry)
}

/// `BUILD_ARGS`: `name=value` items, read like the `ENV` list.
pub(super) fn read_build_args(map: &AttrMap, errors: &mut Errors) -> Vec<(String, String)> {
    items(map, "BUILD_ARGS", errors, attrs::env_entry)
}

/// The container options swarm cannot apply: `PRIVILEGED`, `SECURITY_OPT` but
/// `no-new-privileges`.
pub(super) fn swarm_refusals(
    service: &super::Service,
    prefix: &str,
    decl: &dyn Fn(&str) -> Option<crate::error::Span>,
    errors: &mut Errors,
) {
    let name = &service.name;
    if service.options.privileged {
        errors.push(
            Diagnostic::new(format!(
                "service `{name}` has `SERVICE_{prefix}_PRIVILEGED`, which swarm cannot apply"
            ))
            .with_span(decl("PRIVILEGED"))
            .hint("swarm services cannot be privileged; give the capabilities it needs with `CAP_ADD`, or use `STACK_TARGET=compose`"),
        );
    }
    if service
        .options
        .entrypoint
        .as_ref()
        .is_some_and(Vec::is_empty)
    {
        errors.push(
            Diagnostic::new(format!(
                "service `{name}` has `SERVICE_{prefix}_ENTRYPOINT=[]`, which swarm cannot apply"
            ))
            .with_span(decl("ENTRYPOINT"))
            .hint("a swarm task runs the image's entrypoint unless given one: write the whole command line as `ENTRYPOINT`, or use `STACK_TARGET=compose`"),
        );
    }
    if let Some(tmpfs) = service
        .options
        .tmpfs
        .iter()
        .find(|t| t.uid.is_some() || t.gid.is_some())
    {
        errors.push(
            Diagnostic::new(format!(
                "service `{name}` has a tmpfs `{}` with `uid=`/`gid=`, which swarm cannot apply",
                tmpfs.path
            ))
            .with_span(decl("TMPFS"))
            .hint("a swarm tmpfs mount takes `size=` and `mode=` only: use `mode=1777`, or `STACK_TARGET=compose`"),
        );
    }
    let mut others = service.options.security_opt.iter();
    if let Some(option) = others.find(|o| !o.starts_with("no-new-privileges")) {
        errors.push(
            Diagnostic::new(format!(
                "service `{name}` has the security option `{option}`, which swarm cannot apply"
            ))
            .with_span(decl("SECURITY_OPT"))
            .hint("swarm takes `no-new-privileges` only; remove the others or use `STACK_TARGET=compose`"),
        );
    }
}
