//! The project itself: its name (`STACK_PROJECT`, which must not shadow a system
//! unit) and the keys a project file may not set.

use crate::config::lookup::{Errors, Keys};
use crate::error::Diagnostic;
use crate::project::Resolved;

/// `STACK_ENV` names the environment the command chose; a project file cannot set it.
pub(super) fn check_stack_env(resolved: &Resolved, errors: &mut Errors) {
    if let Some(setting) = resolved.settings.get("STACK_ENV") {
        errors.push(
            Diagnostic::new("`STACK_ENV` cannot be set in a project file")
                .at(&setting.span)
                .hint("choose the environment with `--env NAME` or the `STACK_ENV` variable"),
        );
    }
}

/// `STACK_PROJECT`, which must be set and a valid name.
pub(super) fn read_project(keys: &Keys, errors: &mut Errors) -> String {
    match keys.get("STACK_PROJECT") {
        Some(value) => errors
            .take(value.name("project name", "_-").and_then(|name| {
                shadowed_unit(&name).map_or(Ok(name.clone()), |unit| {
                    Err(Diagnostic::new(format!(
                        "project name `{name}` would install `{name}.service`, which shadows the system's `{unit}`"
                    ))
                    .with_span(value.span.cloned())
                    .hint("pick another `STACK_PROJECT`, e.g. `{name}-app`".replace("{name}", &name)))
                })
            }))
            .unwrap_or_default(),
        None => {
            errors.push(
                Diagnostic::new("`STACK_PROJECT` is not set")
                    .hint("add `STACK_PROJECT=myapp` to `stack.env`"),
            );
            String::new()
        }
    }
}

/// The system unit a project's `<project>.service` would shadow, if any.
fn shadowed_unit(name: &str) -> Option<&'static str> {
    const UNITS: &[&str] = &[
        "docker",
        "containerd",
        "ssh",
        "sshd",
        "network",
        "networking",
        "cron",
        "crond",
        "dbus",
        "getty",
        "rsyslog",
        "syslog",
        "ufw",
        "firewalld",
        "nftables",
        "iptables",
        "chrony",
        "chronyd",
        "apparmor",
        "polkit",
        "udev",
        "snapd",
        "multipathd",
        "unattended-upgrades",
        "nginx",
        "caddy",
        "apache2",
        "httpd",
        "postgresql",
        "redis",
        "redis-server",
        "mysql",
        "mariadb",
        "fail2ban",
        "sudo",
        "login",
        "user",
        "init",
        "emergency",
        "rescue",
        "kubelet",
        "k3s",
        "podman",
    ];
    if name.starts_with("systemd-") || name == "systemd" {
        return Some("systemd-*");
    }
    UNITS.iter().find(|u| **u == name).copied()
}
