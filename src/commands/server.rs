//! `stack server setup ENV`: run the steps of [`crate::deploy::setup`] on the server over
//! SSH as an admin (root, or a user with passwordless sudo). Each step is checked first and
//! applied only when needed, then checked again.

use serde_json::json;
use sha2::Digest;

use super::{server_of, Context};
use crate::cli::ServerSetupArgs;
use crate::config::Server;
use crate::deploy::setup::{self, DockerSource, Options, Package, Step};
use crate::deploy::ssh::{quote, Session};
use crate::error::{Diagnostic, Error, Result};

pub fn setup(context: &Context, args: &ServerSetupArgs) -> Result<()> {
    let loaded = context.load(&args.env)?;
    let server = server_of(&loaded)?;
    let swarm = loaded.config.target == crate::config::Target::Swarm;
    let public_key = public_key(&server, args)?;
    let binary = std::env::current_exe()
        .and_then(std::fs::read)
        .map_err(|e| Error::outside(format!("cannot read this stack binary: {e}")))?;
    let sum = sha256(&binary);
    let package = package(context, args)?;
    let options = Options {
        project: loaded.config.project.clone(),
        user: server.user.clone(),
        path: server.path.clone(),
        ssh_port: server.port,
        public_key,
        docker: if args.docker_repo {
            DockerSource::DockerRepository
        } else {
            DockerSource::Distribution
        },
        firewall: server.firewall,
        unattended_upgrades: server.unattended_upgrades,
        binary: (std::env::consts::ARCH.to_string(), sum),
        package: package.as_ref().map(|(package, _)| package.clone()),
        unit: crate::render::unit_skeleton(&crate::model::unsealed(&loaded.config))?,
        swarm,
        swarm_peers: swarm_peers(&server, swarm),
    };
    let admin = Server {
        user: args.admin_user.clone(),
        ..server.clone()
    };
    let machine = Machine::connect(context, &admin)?;
    let steps = steps(&machine, &options, swarm)?;
    // With a package, the step that installs stack reads the .deb instead of the binary.
    let payload: &[u8] = match &package {
        Some((_, bytes)) => bytes,
        None => &binary,
    };
    let feed = Feed {
        binary: payload,
        token: None,
    };
    let mut outcome = machine.setup(context, &steps, feed, args.dry_run)?;
    if swarm && !server.nodes.is_empty() {
        let joined = join_workers(context, &machine, (&admin, &options), payload, args.dry_run)?;
        outcome.changed += joined.changed;
        outcome.report.extend(joined.report);
    }
    report(context, args, &server, swarm, &outcome);
    Ok(())
}

/// The swarm's nodes: the manager (the server) first, then the other nodes.
fn swarm_peers(server: &Server, swarm: bool) -> Vec<String> {
    match swarm {
        true => std::iter::once(server.host.clone())
            .chain(server.nodes.iter().cloned())
            .collect(),
        false => Vec::new(),
    }
}

/// The setup steps of the server; a swarm manager is advertised at the address this
/// connection reached it at.
fn steps(machine: &Machine, options: &Options, swarm: bool) -> Result<Vec<Step>> {
    let mut steps = setup::steps(options);
    if swarm {
        let seen = machine.session.check(
            "look at the server",
            "set -- $SSH_CONNECTION; echo \"$3\"",
            None,
        )?;
        steps.push(setup::swarm_manager(seen.trim()));
    }
    Ok(steps)
}

/// What setup did (or, in a dry run, would do): the steps as JSON, and a status line.
fn report(
    context: &Context,
    args: &ServerSetupArgs,
    server: &Server,
    swarm: bool,
    outcome: &Outcome,
) {
    if context.global.json {
        context.printer.json(&json!({
            "env": args.env, "host": server.host, "dry_run": args.dry_run, "steps": outcome.report,
        }));
    }
    let machines = match server.nodes.is_empty() || !swarm {
        true => format!("`{}`", server.host),
        false => format!("`{}` and {} node(s)", server.host, server.nodes.len()),
    };
    let message = match (outcome.changed == 0, args.dry_run) {
        (true, _) => format!("{machines}: ready, nothing to change"),
        (false, true) => format!(
            "{} step(s) to do (dry run: nothing changed)",
            outcome.changed
        ),
        (false, false) => format!(
            "{machines}: ready, {} step(s) changed; deploy with `stack deploy {}`",
            outcome.changed, args.env
        ),
    };
    context.printer.status(message);
}

/// Set up the swarm's other nodes (`STACK_SERVER_NODES`) and join them to the manager
/// `machine` as workers.
fn join_workers(
    context: &Context,
    machine: &Machine,
    (admin, options): (&Server, &Options),
    payload: &[u8],
    dry_run: bool,
) -> Result<Outcome> {
    let mut outcome = Outcome {
        changed: 0,
        report: Vec::new(),
    };
    // The token is read only once the manager is one; a dry run of a new swarm has
    // none yet, and its workers' join is listed as to do.
    let asked = machine.session.run(
        &as_root(
            "docker swarm join-token -q worker && docker info --format '{{.Swarm.NodeAddr}}'",
            machine.sudo,
        ),
        None,
    )?;
    let answer = String::from_utf8_lossy(&asked.stdout).to_string();
    let mut lines = answer.lines().map(str::trim);
    let token = lines.next().unwrap_or_default().to_string();
    let address = lines
        .next()
        .filter(|a| !a.is_empty())
        .unwrap_or(&admin.host);
    let manager = match address.contains(':') {
        true => format!("[{address}]:2377"),
        false => format!("{address}:2377"),
    };
    let mut node_steps = setup::steps(options);
    node_steps.push(setup::swarm_worker(&manager));
    for host in &admin.nodes {
        let node = Server {
            host: host.clone(),
            nodes: Vec::new(),
            ..admin.clone()
        };
        let machine = Machine::connect(context, &node)?;
        let feed = Feed {
            binary: payload,
            token: (!token.is_empty()).then_some(token.as_str()),
        };
        let done = machine.setup(context, &node_steps, feed, dry_run)?;
        outcome.changed += done.changed;
        outcome.report.extend(done.report);
    }
    Ok(outcome)
}

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Debian architecture of this binary.
fn deb_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The `.deb` to install: `--package FILE`, else `stack_<version>_<arch>.deb` beside
/// the running binary or in `../deb/` from it (`target/deb/` of `scripts/build-deb.sh`).
fn package(context: &Context, args: &ServerSetupArgs) -> Result<Option<(Package, Vec<u8>)>> {
    let version = env!("CARGO_PKG_VERSION");
    // Only a package named on the command line: one found lying beside the binary may be
    // of another build than the one running, and would replace it on the server unseen.
    let Some(path) = args.package.clone() else {
        return Ok(None);
    };
    let bytes = std::fs::read(&path).map_err(|e| {
        Error::invalid(
            Diagnostic::new(format!("cannot read the package `{}`: {e}", path.display()))
                .hint("pass a `.deb` built by `scripts/build-deb.sh` with `--package`"),
        )
    })?;
    // A .deb is an ar archive whose first member is `debian-binary`.
    if !bytes.starts_with(b"!<arch>\ndebian-binary") {
        return Err(Error::invalid(
            Diagnostic::new(format!("`{}` is not a .deb", path.display()))
                .hint("pass a `.deb` built by `scripts/build-deb.sh` with `--package`"),
        ));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let mut parts = name.trim_end_matches(".deb").splitn(3, '_');
    let (_, package_version, arch) = (parts.next(), parts.next(), parts.next());
    let arch = arch.unwrap_or(deb_arch()).to_string();
    let package_version = package_version.unwrap_or(version).to_string();
    context
        .printer
        .status(format!("installing stack from `{}`", path.display()));
    Ok(Some((
        Package {
            arch,
            version: package_version,
            sha256: sha256(&bytes),
        },
        bytes,
    )))
}

/// What the steps' applies may read on stdin.
#[derive(Clone, Copy)]
struct Feed<'a> {
    binary: &'a [u8],
    token: Option<&'a str>,
}

/// What setting up machines changed: how many steps, and a row per step for `--json`.
struct Outcome {
    changed: usize,
    report: Vec<serde_json::Value>,
}

/// One machine being set up, over SSH as the admin.
struct Machine {
    session: Session,
    sudo: bool,
    host: String,
}

impl Machine {
    fn connect(context: &Context, admin: &Server) -> Result<Machine> {
        let session = Session::open_plain(admin)?;
        let sudo = preflight(&session, admin)?;
        context
            .printer
            .status(format!("connected to `{}@{}`", admin.user, admin.host));
        Ok(Machine {
            session,
            sudo,
            host: admin.host.clone(),
        })
    }

    /// Check each step, apply those still to do (unless `dry_run`) and check them again.
    fn setup(
        &self,
        context: &Context,
        steps: &[Step],
        feed: Feed,
        dry_run: bool,
    ) -> Result<Outcome> {
        let mut outcome = Outcome {
            changed: 0,
            report: Vec::new(),
        };
        for step in steps {
            let state = check(&self.session, self.sudo, step)?;
            let todo = matches!(state, State::Todo);
            outcome.report.push(json!({"host": self.host, "step": step.name, "does": step.does, "state": state.word()}));
            match state {
                State::Done => context.printer.status(format!("{}: ok", step.name)),
                State::Skip(reason) => context
                    .printer
                    .status(format!("{}: skipped ({reason})", step.name)),
                State::Todo if dry_run => context
                    .printer
                    .status(format!("{}: would {}", step.name, step.does)),
                State::Todo => {
                    context
                        .printer
                        .status(format!("{}: {}", step.name, step.does));
                    apply(&self.session, self.sudo, step, feed)?;
                    if !matches!(check(&self.session, self.sudo, step)?, State::Done) {
                        return Err(Error::outside(format!(
                            "on `{}`: step `{}` ran but its check still fails",
                            self.host, step.name
                        ))
                        .with_hint(
                            "run `stack server setup` again; if it persists, look at the server",
                        ));
                    }
                }
            }
            if todo {
                outcome.changed += 1;
            }
        }
        Ok(outcome)
    }
}

/// The public key to authorise: `--key FILE`, else `SERVER_SSH_KEY` + `.pub`; none is
/// needed when the deploy user is the admin (it logs in already).
fn public_key(server: &Server, args: &ServerSetupArgs) -> Result<Option<String>> {
    let path = match (&args.key, &server.ssh_key) {
        (Some(path), _) => path.clone(),
        (None, Some(key)) => {
            let key = match (key.strip_prefix("~/"), std::env::var("HOME")) {
                (Some(rest), Ok(home)) => std::path::Path::new(&home).join(rest),
                _ => key.into(),
            };
            let mut public = key.into_os_string();
            public.push(".pub");
            public.into()
        }
        (None, None) if server.user == args.admin_user => return Ok(None),
        (None, None) => {
            return Err(Diagnostic::new(format!(
                "no key to authorise for the deploy user `{}`",
                server.user
            ))
            .hint("set `SERVER_SSH_KEY` in server.env (its `.pub` is authorised), or pass `--key FILE.pub`")
            .into())
        }
    };
    // A public key is one short line: a device, a pipe or a huge file is refused unread.
    let text = match crate::fsio::read_bounded(&path, 64 * 1024) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(crate::fsio::ReadError::Other(e)) => {
            return Err(Error::from(
                Diagnostic::new(format!(
                    "cannot read the public key `{}`: {e}",
                    path.display()
                ))
                .hint("pass the public half (`~/.ssh/id_ed25519.pub`) with `--key`"),
            ))
        }
        Err(other) => return Err(other.into_error(&path.display().to_string(), &path)),
    };
    let line = text.trim();
    let kind = line.split_whitespace().next().unwrap_or_default();
    let known = kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
    if !known || line.lines().count() != 1 || line.contains("PRIVATE KEY") {
        return Err(Diagnostic::new(format!(
            "`{}` is not one OpenSSH public key line",
            path.display()
        ))
        .hint("pass the `.pub` file, e.g. `--key ~/.ssh/id_ed25519.pub`")
        .into());
    }
    Ok(Some(line.to_string()))
}

/// Root or passwordless sudo, on Debian or Ubuntu. Returns whether commands need sudo.
fn preflight(session: &Session, admin: &Server) -> Result<bool> {
    let text = session.check(
        "look at the server",
        "id -u; sudo -n true 2>/dev/null && echo sudo || echo nosudo; . /etc/os-release 2>/dev/null; echo \"$ID $ID_LIKE\"",
        None,
    )?;
    let mut lines = text.lines();
    let root = lines.next().map(str::trim) == Some("0");
    let sudo = lines.next().map(str::trim) == Some("sudo");
    let os = lines.next().unwrap_or_default().trim().to_string();
    if !root && !sudo {
        return Err(Error::outside(format!(
            "`{}` on the server is neither root nor allowed passwordless sudo",
            admin.user
        ))
        .with_hint("pass `--admin-user root`, or give that user `NOPASSWD` sudo"));
    }
    if !os
        .split_whitespace()
        .any(|id| id == "debian" || id == "ubuntu")
    {
        return Err(Error::No(format!(
            "`stack server setup` prepares Debian and Ubuntu servers; this one says `{os}`"
        )));
    }
    Ok(!root)
}

enum State {
    Done,
    Todo,
    Skip(String),
}

impl State {
    fn word(&self) -> &'static str {
        match self {
            State::Done => "ok",
            State::Todo => "todo",
            State::Skip(_) => "skipped",
        }
    }
}

/// Run `script` as root: directly, or through `sudo -n sh -c`.
fn as_root(script: &str, sudo: bool) -> String {
    if sudo {
        format!("sudo -n sh -c {}", quote(script))
    } else {
        script.to_string()
    }
}

fn check(session: &Session, sudo: bool, step: &Step) -> Result<State> {
    let output = session.run(&as_root(&step.check, sudo), None)?;
    if output.status.code() == Some(255) {
        return Err(Error::outside(format!(
            "the SSH connection was lost while checking `{}`",
            step.name
        ))
        .with_hint("run `stack server setup` again: it continues where it stopped"));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    if let Some(reason) = stdout.lines().find_map(|l| l.strip_prefix("skip: ")) {
        return Ok(State::Skip(reason.to_string()));
    }
    Ok(if output.status.success() {
        State::Done
    } else {
        State::Todo
    })
}

fn apply(session: &Session, sudo: bool, step: &Step, feed: Feed) -> Result<()> {
    let token = feed.token.map(|t| format!("{t}\n"));
    let input = match step.stdin {
        setup::Feed::Nothing => None,
        setup::Feed::Binary => Some(feed.binary),
        setup::Feed::JoinToken => Some(
            token
                .as_deref()
                .ok_or_else(|| Error::outside("the swarm manager gave no join token"))?
                .as_bytes(),
        ),
    };
    session
        .check(&format!("{} ({})", step.does, step.name), &as_root(&step.apply, sudo), input)
        .map(|_| ())
        .map_err(|e| e.with_hint("run `stack server setup` again: every step is checked first, so it continues where it stopped"))
}
