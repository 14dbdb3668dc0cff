//! The host and namespace options of a service in `docker-compose.yml` (`devices`,
//! `network_mode`, `dns*`, the cgroup knobs, `pid`, `ipc`, …): one Compose key per
//! attribute of the model, written only when set.

use serde_json::{json, Map, Value};

use crate::model::ContainerOptions;

/// Insert the options of `options` that are set into the service's mapping `out`.
pub(super) fn host_options(out: &mut Map<String, Value>, options: &ContainerOptions) {
    let mut put = |key: &str, value: Value| {
        out.insert(key.into(), value);
    };
    if !options.devices.is_empty() {
        let devices: Vec<String> = options.devices.iter().map(|d| d.to_string()).collect();
        put("devices", json!(devices));
    }
    for (key, list) in [
        ("dns", &options.dns),
        ("dns_search", &options.dns_search),
        ("dns_opt", &options.dns_opt),
    ] {
        if !list.is_empty() {
            put(key, json!(list));
        }
    }
    for (key, namespace) in [
        ("network_mode", &options.network_mode),
        ("pid", &options.pid),
        ("ipc", &options.ipc),
    ] {
        if let Some(namespace) = namespace {
            put(key, json!(namespace.to_string()));
        }
    }
    let numbers = [
        ("pids_limit", options.pids_limit),
        ("mem_swappiness", options.memory_swappiness.map(i64::from)),
        ("cpu_shares", options.cpu_shares.map(i64::from)),
        ("oom_score_adj", options.oom_score_adj.map(i64::from)),
    ];
    for (key, number) in numbers {
        if let Some(number) = number {
            put(key, json!(number));
        }
    }
    if let Some(mb) = options.memory_reservation_mb {
        put("mem_reservation", json!(format!("{mb}m")));
    }
    match options.memory_swap_mb {
        Some(-1) => put("memswap_limit", json!(-1)),
        Some(mb) => put("memswap_limit", json!(format!("{mb}m"))),
        None => {}
    }
    if let Some(policy) = options.pull_policy {
        put("pull_policy", json!(policy.compose()));
    }
    let texts = [
        ("cpuset", &options.cpuset),
        ("domainname", &options.domainname),
        ("mac_address", &options.mac_address),
        ("runtime", &options.runtime),
        ("userns_mode", &options.userns_mode),
        ("cgroup", &options.cgroup),
    ];
    for (key, text) in texts {
        if let Some(text) = text {
            put(key, json!(text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::attrs::image::PullPolicy;

    /// `PULL_POLICY` as Compose v1 spells it (`missing` is `if_not_present`), `CGROUP` as
    /// it is; neither written when unset.
    #[test]
    fn pull_policy_and_cgroup_are_written_when_set() {
        let mut out = Map::new();
        host_options(&mut out, &ContainerOptions::default());
        assert!(out.is_empty(), "{out:?}");
        for (policy, written) in [
            (PullPolicy::Missing, "if_not_present"),
            (PullPolicy::Always, "always"),
            (PullPolicy::Never, "never"),
            (PullPolicy::Build, "build"),
        ] {
            let options = ContainerOptions {
                pull_policy: Some(policy),
                cgroup: Some("host".into()),
                ..Default::default()
            };
            host_options(&mut out, &options);
            assert_eq!(out["pull_policy"], json!(written));
            assert_eq!(out["cgroup"], json!("host"));
        }
    }
}
