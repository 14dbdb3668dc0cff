//! Every service key of the Compose Specification, classified once: carried by which
//! translator (one file of this folder), refused with the reason, or without an
//! attribute in stack. The driver reads this table and nothing else to decide what a
//! key becomes; a key that is not in it is not in the Compose Specification.

use super::yaml::Node;
use super::Import;

/// How the import treats one service key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handling {
    /// Translated by the named file of this folder (`ports` → `ports.rs`).
    Carried(&'static str),
    /// Not carried, for this reason.
    Refused(&'static str),
    /// Not carried: stack has no attribute for it.
    NoAttribute,
}

use Handling::{Carried, NoAttribute, Refused};

const EXTERNAL_LINKS: &str = "a container outside the project: put the service on an external \
     network (`STACK_NETWORKS=name:external`) the container is on, and reach it by its name";
const HOST: &str = "stack has no attribute for it; the host access it gives is `DEVICES`, \
     `PRIVILEGED`, `CAP_ADD` and the `host` namespaces";

/// The service keys of the Compose Specification, in alphabetical order.
pub(super) const KEYS: &[(&str, Handling)] = &[
    ("annotations", NoAttribute),
    ("attach", NoAttribute),
    ("blkio_config", NoAttribute),
    ("build", Carried("image")),
    ("cap_add", Carried("options")),
    ("cap_drop", Carried("options")),
    ("cgroup", Carried("host")),
    ("cgroup_parent", Refused(HOST)),
    ("command", Carried("command")),
    ("configs", Carried("configs")),
    ("container_name", Carried("networks")),
    ("cpu_count", NoAttribute),
    ("cpu_percent", NoAttribute),
    ("cpu_period", NoAttribute),
    ("cpu_quota", NoAttribute),
    ("cpu_rt_period", NoAttribute),
    ("cpu_rt_runtime", NoAttribute),
    ("cpu_shares", Carried("host")),
    ("cpus", Carried("deploy")),
    ("cpuset", Carried("host")),
    ("credential_spec", NoAttribute),
    ("depends_on", Carried("depends_on")),
    ("deploy", Carried("deploy")),
    ("develop", NoAttribute),
    ("device_cgroup_rules", Refused(HOST)),
    ("devices", Carried("host")),
    ("dns", Carried("host")),
    ("dns_opt", Carried("host")),
    ("dns_search", Carried("host")),
    ("domainname", Carried("host")),
    ("entrypoint", Carried("command")),
    ("env_file", Carried("environment")),
    ("environment", Carried("environment")),
    ("expose", Carried("options")),
    // Applied while the documents are read (`documents.rs`); none is left here.
    ("extends", NoAttribute),
    ("external_links", Refused(EXTERNAL_LINKS)),
    ("extra_hosts", Carried("options")),
    ("gpus", Carried("host")),
    ("group_add", Carried("options")),
    ("healthcheck", Carried("health")),
    ("hostname", Carried("options")),
    ("image", Carried("image")),
    ("init", Carried("options")),
    ("ipc", Carried("host")),
    ("isolation", NoAttribute),
    ("label_file", NoAttribute),
    ("labels", Carried("options")),
    ("links", Carried("networks")),
    ("logging", Carried("options")),
    ("mac_address", Carried("host")),
    ("mem_limit", Carried("deploy")),
    ("mem_reservation", Carried("host")),
    ("mem_swappiness", Carried("host")),
    ("memswap_limit", Carried("host")),
    ("models", NoAttribute),
    ("network_mode", Carried("host")),
    ("networks", Carried("networks")),
    ("oom_kill_disable", NoAttribute),
    ("oom_score_adj", Carried("host")),
    ("pid", Carried("host")),
    ("pids_limit", Carried("host")),
    ("platform", Carried("options")),
    ("ports", Carried("ports")),
    ("post_start", NoAttribute),
    ("pre_start", NoAttribute),
    ("pre_stop", NoAttribute),
    ("privileged", Carried("options")),
    ("profiles", Carried("profiles")),
    ("provider", NoAttribute),
    ("pull_policy", Carried("image")),
    ("pull_refresh_after", NoAttribute),
    ("read_only", Carried("options")),
    ("restart", Carried("deploy")),
    ("runtime", Carried("host")),
    ("scale", Carried("deploy")),
    ("secrets", Carried("secrets")),
    ("security_opt", Carried("options")),
    ("shm_size", Carried("options")),
    ("stdin_open", Carried("options")),
    ("stop_grace_period", Carried("options")),
    ("stop_signal", Carried("options")),
    ("storage_opt", NoAttribute),
    ("sysctls", Carried("options")),
    ("tmpfs", Carried("volumes")),
    ("tty", Carried("options")),
    ("ulimits", Carried("options")),
    ("use_api_socket", NoAttribute),
    ("user", Carried("options")),
    ("userns_mode", Carried("host")),
    ("uts", NoAttribute),
    ("volumes", Carried("volumes")),
    ("volumes_from", Carried("volumes")),
    ("working_dir", Carried("options")),
];

/// How the import treats service key `key`; `None` when the Compose Specification has no
/// such key.
pub(super) fn handling(key: &str) -> Option<Handling> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, h)| *h)
}

impl Import<'_> {
    /// A finding or note for each key of service `input` that no translator carries.
    pub(super) fn classify_keys(&mut self, input: &str, entries: &[(String, Node)]) {
        for (key, _) in entries {
            match handling(key) {
                Some(Carried(_)) => {}
                _ if key.starts_with("x-") => {
                    self.note(Some(input), key, "an extension field; ignored")
                }
                Some(Refused(why)) => self.finding(Some(input), key, why),
                Some(NoAttribute) => {
                    self.finding(Some(input), key, "stack has no attribute for it")
                }
                None => self.finding(
                    Some(input),
                    key,
                    "unknown key: not in the Compose Specification",
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_names_each_key_once() {
        let names: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn each_carried_key_names_a_translator_file_of_this_folder() {
        let files = [
            "image",
            "command",
            "configs",
            "ports",
            "volumes",
            "environment",
            "health",
            "depends_on",
            "deploy",
            "options",
            "networks",
            "secrets",
            "profiles",
            "host",
        ];
        for (key, handling) in KEYS {
            if let Carried(file) = handling {
                assert!(files.contains(file), "`{key}` names `{file}`");
            }
        }
    }
}
