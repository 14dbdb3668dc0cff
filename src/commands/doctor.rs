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
use crate::cli::DoctorArgs;
use crate::config::{Config, Server, Tls};
use crate::deploy::ssh::{quote, Session};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::Desired;
use crate::printer::Paint;

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
    let out = super::default_out(&config.project_dir, &env);
    let (_, desired) = crate::render::render_all(config, &out)?;
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

/// The server: key, known_hosts, connection, engine, disk, memory, clock, and per
/// routed host DNS and certificate.
fn server_checks(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    server: &Server,
    desired: &Desired,
) -> Vec<Check> {
    let settings = ssh_settings(server);
    let mut checks = vec![ssh_key(server, &settings), known_host(server, &settings)];
    let session = match Session::open(server) {
        Ok(session) => session,
        Err(err) => {
            let mut check = Check::from_error("server", &err, "check SERVER_HOST and SERVER_PORT");
            check.detail = format!(
                "{} (its engine, disk, memory and clock were not checked)",
                check.detail
            );
            checks.push(check);
            checks.extend(routes(config, server, desired));
            return checks;
        }
    };
    checks.push(Check::ok(
        "server",
        format!(
            "`{}` port {} answers over SSH",
            session.target(),
            server.port
        ),
    ));
    checks.push(runtime.block_on(async {
        match Engine::connect_to(&session.docker_endpoint()).await {
            Ok(engine) => engine_check("server engine", &engine).await,
            Err(err) => Check::from_error(
                "server engine",
                &err,
                &format!(
                    "run `stack server setup {}`, or check that `{}` is in the `docker` group",
                    config.env, server.user
                ),
            ),
        }
    }));
    checks.extend(resources(&session, server, desired));
    checks.extend(routes(config, server, desired));
    checks
}

/// `ssh -G`'s view of the server (what `~/.ssh/config` and `STACK_SSH_CONFIG` make of it).
fn ssh_settings(server: &Server) -> Vec<(String, String)> {
    let mut command = Command::new("ssh");
    if let Ok(file) = std::env::var("STACK_SSH_CONFIG") {
        if !file.is_empty() {
            command.args(["-F", &file]);
        }
    }
    let output = command
        .args(["-G", "-p", &server.port.to_string()])
        .arg(format!("{}@{}", server.user, server.host))
        .stdin(Stdio::null())
        .output();
    let Ok(output) = output else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => Path::new(&home).join(rest).display().to_string(),
        _ => path.to_string(),
    }
}

/// The key ssh will offer: `SERVER_SSH_KEY`, else the agent's, else an identity file
/// of ssh's configuration that exists.
fn ssh_key(server: &Server, settings: &[(String, String)]) -> Check {
    let name = "ssh key";
    if let Some(key) = &server.ssh_key {
        use std::os::unix::fs::PermissionsExt;
        let path = expand_home(key);
        return match std::fs::metadata(&path) {
            Err(_) => Check::failure(
                name,
                format!("SERVER_SSH_KEY `{path}` does not exist"),
                format!("create it (`ssh-keygen -t ed25519 -f {path}`) or correct SERVER_SSH_KEY"),
            ),
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => Check::failure(
                name,
                format!("`{path}` can be read by other users, so ssh refuses it"),
                format!("chmod 600 {path}"),
            ),
            Ok(_) => Check::ok(name, format!("SERVER_SSH_KEY `{path}`")),
        };
    }
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        let listed = Command::new("ssh-add")
            .arg("-l")
            .stdin(Stdio::null())
            .output();
        if let Ok(listed) = listed {
            let keys = String::from_utf8_lossy(&listed.stdout).lines().count();
            if listed.status.success() && keys > 0 {
                return Check::ok(name, format!("the SSH agent holds {keys} key(s)"));
            }
        }
    }
    let files: Vec<String> = setting(settings, "identityfile")
        .into_iter()
        .map(expand_home)
        .filter(|f| Path::new(f).is_file())
        .collect();
    if let Some(file) = files.first() {
        return Check::ok(name, format!("no agent key; ssh offers `{file}`"));
    }
    Check::failure(
        name,
        "no SSH key: SERVER_SSH_KEY is not set, no agent holds a key and ssh has no identity file",
        "set SERVER_SSH_KEY in the environment's server.env, or load a key into an agent (`eval \"$(ssh-agent -s)\" && ssh-add KEY`)",
    )
}

/// The server's host key is in a known_hosts file ssh reads (stack connects with
/// `StrictHostKeyChecking=yes`).
fn known_host(server: &Server, settings: &[(String, String)]) -> Check {
    let name = "known host";
    let entry = if server.port == 22 {
        server.host.clone()
    } else {
        format!("[{}]:{}", server.host, server.port)
    };
    let files: Vec<String> = setting(settings, "userknownhostsfile")
        .into_iter()
        .flat_map(|v| v.split_whitespace().map(expand_home).collect::<Vec<_>>())
        .chain(["/etc/ssh/ssh_known_hosts".to_string()])
        .filter(|f| Path::new(f).is_file())
        .collect();
    for file in &files {
        let found = Command::new("ssh-keygen")
            .args(["-F", &entry, "-f", file])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if found.is_ok_and(|s| s.success()) {
            return Check::ok(name, format!("`{entry}` is in `{file}`"));
        }
    }
    Check::failure(
        name,
        format!("the host key of `{entry}` is in no known_hosts file"),
        format!(
            "check its fingerprint, then `ssh-keyscan -p {} {} >> ~/.ssh/known_hosts`",
            server.port, server.host
        ),
    )
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Free disk under SERVER_PATH, memory against the project's limits, the clock.
fn resources(session: &Session, server: &Server, desired: &Desired) -> Vec<Check> {
    let script = format!(
        "p={}; while [ ! -e \"$p\" ]; do p=$(dirname \"$p\"); done; \
         df -Pk \"$p\" | tail -n 1; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; date +%s.%N",
        quote(&server.path)
    );
    let before = now();
    let output = match session.run(&script, None) {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            let err = Error::Outside {
                message: "cannot read the server's disk, memory and clock".into(),
                causes: vec![String::from_utf8_lossy(&output.stderr).trim().to_string()],
                hint: None,
            };
            return vec![Check::from_error(
                "server resources",
                &err,
                "check that `df` and /proc/meminfo are there",
            )];
        }
        Err(err) => {
            return vec![Check::from_error(
                "server resources",
                &err,
                "check the connection",
            )]
        }
    };
    let middle = (before + now()) / 2.0;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines = text.lines();
    let disk = lines.next().unwrap_or_default();
    let mut memory = (0u64, 0u64);
    let mut clock = None;
    for line in lines {
        let kb = || {
            line.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        if line.starts_with("MemTotal:") {
            memory.0 = kb();
        } else if line.starts_with("MemAvailable:") {
            memory.1 = kb();
        } else {
            clock = line.trim().parse::<f64>().ok();
        }
    }
    vec![
        disk_check(disk, &server.path),
        memory_check(memory, desired),
        clock_check(clock.map(|remote| remote - middle)),
    ]
}

fn disk_check(df_line: &str, path: &str) -> Check {
    let name = "server disk";
    let free = df_line
        .split_whitespace()
        .nth(3)
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024);
    let Some(free) = free else {
        return Check::warning(
            name,
            format!("cannot read `df` of `{path}`: {df_line}"),
            "check `df -Pk` on the server",
        );
    };
    let detail = format!("{} free under `{path}`", crate::printer::human(free));
    let fix = "free space (`docker system prune`, old releases) or grow the disk";
    if free < DISK_FAIL {
        Check::failure(
            name,
            format!("{detail}; images and releases need more than 1 GB"),
            fix,
        )
    } else if free < DISK_LOW {
        Check::warning(name, format!("{detail}; less than 5 GB left"), fix)
    } else {
        Check::ok(name, detail)
    }
}

/// The memory the project's containers may use: the sum of `MEMORY` limits × replicas.
fn memory_check((total, available): (u64, u64), desired: &Desired) -> Check {
    let name = "server memory";
    let needed: u64 = desired
        .services
        .iter()
        .filter_map(|s| {
            s.resources
                .memory_mb
                .map(|mb| mb * 1024 * 1024 * u64::from(s.replicas.max(1)))
        })
        .sum();
    let human = crate::printer::human;
    let detail = format!("{} available of {}", human(available), human(total));
    let fix = "lower the services' `MEMORY` limits, or give the server more memory";
    if total == 0 {
        Check::warning(
            name,
            "cannot read /proc/meminfo",
            "check /proc on the server",
        )
    } else if needed > total {
        Check::failure(
            name,
            format!("{detail}; the services' limits add up to {}", human(needed)),
            fix,
        )
    } else if needed > available {
        Check::warning(
            name,
            format!("{detail}; the services' limits add up to {}", human(needed)),
            fix,
        )
    } else if needed > 0 {
        Check::ok(
            name,
            format!("{detail}; the services' limits add up to {}", human(needed)),
        )
    } else {
        Check::ok(name, format!("{detail}; no service sets `MEMORY`"))
    }
}

fn clock_check(skew: Option<f64>) -> Check {
    let name = "server clock";
    let Some(skew) = skew else {
        return Check::warning(
            name,
            "cannot read the server's clock",
            "check `date +%s` on the server",
        );
    };
    let detail = format!(
        "{:.1} s {} this machine's",
        skew.abs(),
        if skew >= 0.0 { "ahead of" } else { "behind" }
    );
    let fix = "run NTP on both machines (`timedatectl set-ntp true`)";
    if skew.abs() > CLOCK_FAIL {
        Check::failure(name, detail, fix)
    } else if skew.abs() > CLOCK_WARN {
        Check::warning(name, detail, fix)
    } else {
        Check::ok(name, detail)
    }
}

/// The routed hosts, in order, once each.
fn routed_hosts(desired: &Desired) -> Vec<String> {
    let mut seen = BTreeSet::new();
    desired
        .services
        .iter()
        .flat_map(|s| s.routes.iter())
        .filter(|r| seen.insert(r.host.clone()))
        .map(|r| r.host.clone())
        .collect()
}

fn resolve(host: &str) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = (host, 443)
        .to_socket_addrs()
        .map(|a| a.map(|a| a.ip()).collect())
        .unwrap_or_default();
    ips.sort();
    ips.dedup();
    ips
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Per routed host: DNS points at the server, and what its certificate says.
fn routes(config: &Config, server: &Server, desired: &Desired) -> Vec<Check> {
    let hosts = routed_hosts(desired);
    if hosts.is_empty() {
        return Vec::new();
    }
    let server_ips = resolve(&server.host);
    let mut checks = Vec::new();
    for host in hosts {
        let name = format!("dns {host}");
        let ips = resolve(&host);
        let check = if ips.is_empty() {
            Check::failure(
                name,
                format!("`{host}` does not resolve"),
                format!(
                    "create an A/AAAA record for `{host}` pointing at {}",
                    list(&server_ips)
                ),
            )
        } else if ips.iter().any(|ip| server_ips.contains(ip)) {
            Check::ok(name, format!("`{host}` → {}, the server", list(&ips)))
        } else {
            Check::failure(
                name,
                format!(
                    "`{host}` → {}, not the server ({})",
                    list(&ips),
                    list(&server_ips)
                ),
                format!(
                    "point the A/AAAA record of `{host}` at {}",
                    list(&server_ips)
                ),
            )
        };
        let resolved = check.status == Status::Ok;
        checks.push(check);
        if resolved && config.tls != Tls::Off {
            checks.push(certificate(&host));
        }
    }
    checks
}

/// What the certificate served for `host` on port 443 says (`openssl s_client`).
fn certificate(host: &str) -> Check {
    let name = format!("certificate {host}");
    let script = "timeout 15 openssl s_client -connect \"$1:443\" -servername \"$1\" </dev/null 2>/dev/null \
                  | openssl x509 -noout -subject -issuer -enddate -checkend \"$2\"";
    let output = Command::new("sh")
        .args(["-c", script, "sh", host, &CERT_SOON.to_string()])
        .stdin(Stdio::null())
        .output();
    let Ok(output) = output else {
        return Check::warning(
            name,
            "cannot run `sh` and `openssl`",
            "install openssl to check certificates",
        );
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim_start_matches(['=', ' ']).trim().to_string())
    };
    let (Some(issuer), Some(until)) = (field("issuer"), field("notAfter")) else {
        return Check::warning(
            name,
            format!("no certificate is served on `{host}:443`"),
            format!("deploy, then check that the proxy answers on 443 (`openssl s_client -connect {host}:443`)"),
        );
    };
    let detail = format!("issued by {issuer}, valid until {until}");
    if output.status.success() {
        Check::ok(name, detail)
    } else {
        Check::warning(
            name,
            format!("{detail}: expires within 14 days"),
            "check the proxy's ACME renewal (its logs), then redeploy",
        )
    }
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
