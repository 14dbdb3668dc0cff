//! `stack doctor [ENV]`: why something does not connect. One line per check (ok, warning
//! or failure, what was found, the fix): this machine's engine, the compose project name,
//! ports 80/443; with a server, the SSH key and agent, the host key in known_hosts, the
//! server, its engine, disk, memory and clock, and per routed host its DNS and
//! certificate. Every check runs against the real thing; none changes anything.
//! `--json` gives the same list on stdout. Exit 1 when a check fails.

use std::collections::BTreeSet;
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::Context;

mod routes;
mod server;
use crate::cli::DoctorArgs;
use crate::config::{Config, Server, Tls};
use crate::deploy::ssh::{quote, Session};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::Desired;
use crate::printer::Paint;
use routes::*;
use server::*;

/// Below this much free space on the server's disk, a check fails (images, releases
/// and dumps would not fit); below [`DISK_LOW`] it warns.
const DISK_FAIL: u64 = 1 << 30;
const DISK_LOW: u64 = 5 << 30;
/// A clock this far off warns (logs, audit times); beyond [`CLOCK_FAIL`] it fails
/// (certificates and ACME see a wrong time).
const CLOCK_WARN: f64 = 2.0;
const CLOCK_FAIL: f64 = 60.0;
/// Certificates that expire within this many seconds warn (14 days, as MONITORING).
const CERT_SOON: u64 = 14 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Failure,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warning(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Warning,
            fix: Some(fix.into()),
            ..Check::ok(name, detail)
        }
    }

    fn failure(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Failure,
            fix: Some(fix.into()),
            ..Check::ok(name, detail)
        }
    }

    /// A failed check from an error: its message and causes, its hint as the fix.
    fn from_error(name: &str, err: &Error, fix: &str) -> Check {
        let (detail, hint) = match err {
            Error::Outside {
                message,
                causes,
                hint,
            } => {
                let mut detail = message.clone();
                for cause in causes.iter().filter(|c| !c.is_empty()) {
                    detail = format!("{detail}: {}", cause.lines().last().unwrap_or(cause));
                }
                (detail, hint.clone())
            }
            other => {
                let text = other.render();
                let first = text.lines().next().unwrap_or_default();
                (first.trim_start_matches("error: ").to_string(), None)
            }
        };
        Check::failure(name, detail, hint.unwrap_or_else(|| fix.to_string()))
    }
}

pub fn run(context: &Context, args: &DoctorArgs) -> Result<()> {
    let env = context.env_or(&args.env);
    let loaded = context.load(&env)?;
    let config = &loaded.config;
    // Ports, routes, names and memory: no digest is compared, so no file is rendered.
    let desired = crate::model::unsealed(config);
    let runtime = super::runtime()?;
    let mut checks = runtime.block_on(local_checks(config, &desired));
    match &config.server {
        Some(server) => checks.extend(server_checks(&runtime, config, server, &desired)),
        None if args.env.is_some() => checks.push(Check::warning(
            "server",
            format!("environment `{env}` has no server; only this machine was checked"),
            format!("create `environments/{env}/server.env` with `SERVER_HOST=…`"),
        )),
        None => {}
    }
    report(context, &env, &checks)
}

fn report(context: &Context, env: &str, checks: &[Check]) -> Result<()> {
    let failed = checks
        .iter()
        .filter(|c| c.status == Status::Failure)
        .count();
    let warned = checks
        .iter()
        .filter(|c| c.status == Status::Warning)
        .count();
    if context.global.json {
        context.printer.json(&serde_json::json!({
            "env": env,
            "ok": failed == 0,
            "checks": checks,
        }));
    } else {
        for check in checks {
            let mark = match check.status {
                Status::Ok => context.printer.paint("ok  ", Paint::Green),
                Status::Warning => context.printer.paint("warn", Paint::Yellow),
                Status::Failure => context.printer.paint("FAIL", Paint::Red),
            };
            let fix = check
                .fix
                .as_ref()
                .map(|fix| format!(" — fix: {fix}"))
                .unwrap_or_default();
            if check.status != Status::Ok || !context.global.quiet {
                eprintln_line(&format!("{mark} {}: {}{fix}", check.name, check.detail));
            }
        }
    }
    if failed > 0 {
        return Err(Error::No(format!(
            "doctor: {failed} of {} check(s) failed",
            checks.len()
        )));
    }
    context.printer.status(format!(
        "doctor: {} check(s), no failure ({warned} warning(s))",
        checks.len()
    ));
    Ok(())
}

fn eprintln_line(line: &str) {
    use std::io::Write;
    let line = crate::printer::escape(line);
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// This machine: the engine, who holds the project's name on it, ports 80 and 443.
async fn local_checks(config: &Config, desired: &Desired) -> Vec<Check> {
    let mut checks = Vec::new();
    let engine = match Engine::connect().await {
        Ok(engine) => engine,
        Err(err) => {
            checks.push(Check::from_error(
                "engine",
                &err,
                "start Docker, or set DOCKER_HOST",
            ));
            checks.extend(ports(desired, None).await);
            return checks;
        }
    };
    checks.push(engine_check("engine", &engine).await);
    checks.push(project_name(config, desired, &engine).await);
    checks.extend(ports(desired, Some(&engine)).await);
    checks
}

async fn engine_check(name: &str, engine: &Engine) -> Check {
    match engine.info().await {
        Ok(info) => Check::ok(
            name,
            format!(
                "Docker {} at `{}` (API {}), image store {}{}",
                info.version,
                engine.endpoint,
                info.api_version,
                info.driver,
                if info.containerd_store {
                    " (containerd)"
                } else {
                    ""
                }
            ),
        ),
        Err(err) => Check::from_error(name, &err, "check that the engine runs and answers"),
    }
}

/// The compose project name is this project's alone on the engine: containers that
/// carry it but were started from another directory would be converged (and removed)
/// by `stack start`.
async fn project_name(config: &Config, desired: &Desired, engine: &Engine) -> Check {
    let name = "project name";
    let dirs = match engine.project_dirs(&desired.project).await {
        Ok(dirs) => dirs,
        Err(err) => return Check::from_error(name, &err, "check that the engine answers"),
    };
    let own = config.project_dir.display().to_string();
    let foreign: Vec<&String> = dirs.iter().filter(|d| !d.starts_with(&own)).collect();
    if foreign.is_empty() {
        return Check::ok(
            name,
            format!("`{}` is not used by another project", desired.project),
        );
    }
    let from = foreign
        .iter()
        .map(|d| {
            if d.is_empty() {
                "(unknown)"
            } else {
                d.as_str()
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    Check::failure(
        name,
        format!(
            "containers of another project use the name `{}` (started from {from})",
            desired.project
        ),
        "set another `STACK_PROJECT` in stack.env, or remove that project (`docker compose -p NAME down`)",
    )
}

/// The host ports the project publishes.
fn published(desired: &Desired) -> BTreeSet<u16> {
    desired
        .services
        .iter()
        .flat_map(|s| s.ports.iter())
        .flat_map(|p| p.pairs().filter_map(|(host, _)| host).collect::<Vec<_>>())
        .collect()
}

/// Ports 80 and 443 here: free, or held by this project's own containers. Taken by
/// something else fails when the project publishes the port, else warns.
async fn ports(desired: &Desired, engine: Option<&Engine>) -> Vec<Check> {
    let published = published(desired);
    let ours = match engine {
        Some(engine) => engine
            .containers(&desired.project)
            .await
            .map(|c| c.iter().any(|c| c.running))
            .unwrap_or(false),
        None => false,
    };
    let mut checks = Vec::new();
    for port in [80u16, 443] {
        let name = format!("port {port}");
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let taken = TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok();
        let needed = published.contains(&port);
        checks.push(match (taken, needed, ours) {
            (false, _, _) => Check::ok(name, "free on this machine"),
            (true, true, true) => Check::ok(name, "in use by this project's running containers"),
            (true, needed, _) => {
                let detail = format!("something on this machine listens on port {port}");
                let fix =
                    format!("stop it (`ss -ltnp 'sport = :{port}'` names it) before `stack start`");
                if needed {
                    Check::failure(name, format!("{detail}, which the project publishes"), fix)
                } else {
                    Check::warning(name, detail, fix)
                }
            }
        });
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_thresholds() {
        let line = |kb: u64| format!("/dev/sda1 100 1 {kb} 1% /");
        assert_eq!(
            disk_check(&line(512 * 1024), "/srv").status,
            Status::Failure
        );
        assert_eq!(
            disk_check(&line(2 * 1024 * 1024), "/srv").status,
            Status::Warning
        );
        assert_eq!(
            disk_check(&line(20 * 1024 * 1024), "/srv").status,
            Status::Ok
        );
        assert_eq!(disk_check("garbage", "/srv").status, Status::Warning);
    }

    #[test]
    fn clock_thresholds() {
        assert_eq!(clock_check(Some(0.3)).status, Status::Ok);
        assert_eq!(clock_check(Some(-10.0)).status, Status::Warning);
        let far = clock_check(Some(-120.0));
        assert_eq!(far.status, Status::Failure);
        assert!(far.detail.contains("behind"), "{}", far.detail);
        assert_eq!(clock_check(None).status, Status::Warning);
    }
}
