//! One module per subcommand: thin glue between the pure core and the outside world.

pub mod backup;
pub mod build;
pub mod check;
pub mod completions;
pub mod config;
pub mod deploy;
pub mod doctor;
pub mod exec;
pub mod import;
pub mod init;
pub mod jobs;
pub mod lifecycle;
pub mod logs;
pub mod maintenance;
pub mod secrets;
pub mod server;
pub mod start;
pub mod status;
pub mod supervise;
pub mod target;
pub use target::{bundle_of, desired_of, sealed_desired};

use std::path::{Path, PathBuf};

use crate::cli::Global;
use crate::config::{Loaded, Options, Server};
use crate::deploy::Remote;
use crate::engine::converge::Converger;
use crate::engine::Engine;
use crate::error::{Diagnostic, Error, Result};
use crate::model::Desired;
use crate::model::Placement;
use crate::plan::{self, Action};
use crate::printer::Printer;
use crate::render::Bundle;

/// What every command gets: the global flags, checked.
pub struct Context {
    pub global: Global,
    pub printer: Printer,
}

impl Context {
    pub fn new(global: Global) -> Self {
        let printer = Printer::new(global.json, global.quiet, global.verbose, global.no_color);
        Context { global, printer }
    }

    /// The environment: `--env`, else `STACK_ENV`, else `dev`.
    pub fn env(&self) -> String {
        self.global.env.clone().unwrap_or_else(|| "dev".into())
    }

    /// The environment named by a command's argument, else [`Context::env`].
    pub fn env_or(&self, arg: &Option<String>) -> String {
        arg.clone().unwrap_or_else(|| self.env())
    }

    /// The project directory, absolute.
    pub fn project_dir(&self) -> Result<PathBuf> {
        let dir = &self.global.project_dir;
        dir.canonicalize().map_err(|_| {
            Diagnostic::new(format!(
                "project directory `{}` does not exist",
                dir.display()
            ))
            .hint("pass an existing directory with `--project-dir`")
            .into()
        })
    }

    fn options(&self) -> Options {
        Options {
            include_frontends: self.global.include_frontends,
            secrets_command: false,
        }
    }

    /// Load the project for `env`, printing its warnings.
    pub fn load(&self, env: &str) -> Result<Loaded> {
        self.load_as(env, false)
    }

    /// Load the project for `env` with the values of `STACK_SECRETS_COMMAND` (it runs),
    /// for commands that need the environment's secrets.
    pub fn load_secrets(&self, env: &str) -> Result<Loaded> {
        self.load_as(env, true)
    }

    fn load_as(&self, env: &str, secrets_command: bool) -> Result<Loaded> {
        let dir = self.project_dir()?;
        let options = Options {
            secrets_command,
            ..self.options()
        };
        let loaded = crate::config::load(&dir, env, &self.global.sets, &options, |name| {
            std::env::var(name).ok()
        })?;
        for warning in &loaded.warnings {
            self.printer.warn(&warning.diagnostic);
        }
        Ok(loaded)
    }

    /// Generate the missing secrets of `loaded`'s environment and save them, once the
    /// project with them has passed every check (a run that fails writes nothing).
    /// The project as loaded with them, and their names.
    pub fn generate_secrets(&self, loaded: &Loaded) -> Result<(Loaded, Vec<String>)> {
        let Some(generated) = secrets::generate_missing(loaded)? else {
            return Ok((loaded.clone(), Vec::new()));
        };
        let dir = &loaded.config.project_dir;
        let env = &loaded.config.env;
        let layer = crate::project::secrets_layer(dir, env, &generated.text)?;
        let options = Options {
            secrets_command: true,
            ..self.options()
        };
        let with = crate::config::load_with(
            dir,
            env,
            &self.global.sets,
            &options,
            |name| std::env::var(name).ok(),
            Some(layer),
        )?;
        secrets::write(&generated)?;
        Ok((with, generated.names))
    }

    /// Load for a command that needs every secret: in `dev` missing ones are generated
    /// and saved first; elsewhere a missing secret is an error.
    pub fn load_with_secrets(&self, env: &str) -> Result<Loaded> {
        let loaded = self.load_secrets(env)?;
        let missing: Vec<&str> = loaded
            .config
            .secrets
            .iter()
            .filter(|s| !s.present)
            .map(|s| s.name.as_str())
            .collect();
        if missing.is_empty() {
            return Ok(loaded);
        }
        if env == "dev" {
            let (loaded, generated) = self.generate_secrets(&loaded)?;
            self.printer.status(format!(
                "generated {} secret(s) in `{}`: {}",
                generated.len(),
                crate::project::secrets_path(env),
                generated.join(", ")
            ));
            return Ok(loaded);
        }
        Err(Error::invalid(
            Diagnostic::new(format!(
                "environment `{env}` is missing secret(s): {}",
                missing.join(", ")
            ))
            .hint(format!("run `stack secrets generate {env}`")),
        ))
    }
}

/// The server of an environment (`environments/ENV/server.env`).
pub fn server_of(loaded: &Loaded) -> Result<Server> {
    loaded.config.server.clone().ok_or_else(|| {
        let env = &loaded.config.env;
        Diagnostic::new(format!("environment `{env}` has no server"))
            .hint(format!(
                "create `environments/{env}/server.env` with `SERVER_HOST=…` (and `SERVER_USER`, `SERVER_PATH`)"
            ))
            .into()
    })
}

/// The server's engine, through the SSH session's forwarded socket; the one-off
/// containers it starts are leashed to the connection ([`Remote::leash`]).
pub async fn server_engine(remote: &Remote) -> Result<Engine> {
    let mut engine = unleashed_server_engine(remote).await?;
    engine.leash = Some(remote.leash()?);
    Ok(engine)
}

/// [`server_engine`] without the leash (a deploy that may find nothing to do).
pub async fn unleashed_server_engine(remote: &Remote) -> Result<Engine> {
    Engine::connect_to(&remote.session.docker_endpoint())
        .await
        .map_err(|e| match e {
            Error::Outside { causes, .. } => Error::Outside {
                message: format!(
                    "the Docker engine on `{}` does not answer at `{}`",
                    remote.server.host, remote.server.docker_socket
                ),
                causes,
                hint: Some(format!(
                    "install and start Docker on the server, check that `{}` may use its socket (the `docker` group), or set `SERVER_DOCKER_SOCKET`",
                    remote.server.user
                )),
            },
            other => other,
        })
}

/// Where a project lives on its server: `SERVER_PATH`, with the bundle at `current`.
pub fn server_placement(server: &Server) -> Placement {
    Placement {
        root: server.path.clone().into(),
        bundle: Path::new(&server.path).join("current"),
    }
}

/// The `STACK_NOTIFY` endpoints of a loaded project, sending from this machine.
pub fn notifier(context: &Context, config: &crate::config::Config) -> crate::notify::Notifier {
    crate::notify::Notifier::new(
        config.notify.clone(),
        crate::notify::Origin::here(&config.project, &config.env),
        context.printer.clone(),
    )
}

/// The default bundle directory of `env`.
pub fn default_out(project_dir: &Path, env: &str) -> PathBuf {
    project_dir.join(".stack").join(env)
}

/// The largest desired state read back from a bundle.
const MAX_DESIRED_BYTES: u64 = 64 * 1024 * 1024;

/// The desired state saved in a deployed bundle.
pub fn read_desired(bundle: &Path) -> Result<Desired> {
    let path = bundle.join(crate::deploy::DESIRED_FILE);
    let unreadable = |why: String| {
        Error::from(
            Diagnostic::new(format!("cannot read `{}`: {why}", path.display()))
                .hint("point `--bundle` at a release directory written by `stack deploy`"),
        )
    };
    // A file of the bundle: a regular file (no link followed), of a bounded size.
    let text = match crate::fsio::inspect(bundle, crate::deploy::DESIRED_FILE, MAX_DESIRED_BYTES)? {
        crate::fsio::Found::File {
            contents: Some(bytes),
            ..
        } => String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8 text".into()))?,
        crate::fsio::Found::File { size, .. } => {
            return Err(unreadable(format!(
                "it is {size} bytes; it may be at most {MAX_DESIRED_BYTES}"
            )))
        }
        crate::fsio::Found::Missing => return Err(unreadable("it does not exist".into())),
        crate::fsio::Found::Other(what) => {
            return Err(unreadable(format!("it is {what}, not a regular file")))
        }
    };
    serde_json::from_str(&text).map_err(|e| {
        Diagnostic::new(format!(
            "`{}` is not a desired state this version of stack wrote: {e}",
            path.display()
        ))
        .hint("deploy the release again with this version of stack")
        .into()
    })
}

/// Observe, get the images, plan and apply: one convergence of `converger`'s engine
/// (only `services` when some are named). Returns the actions taken.
pub async fn converge(
    converger: &Converger,
    build: bool,
    services: &[String],
) -> Result<Vec<Action>> {
    let mut observed = converger.observe().await?;
    converger
        .ensure_images(&mut observed, build, services)
        .await?;
    let actions = plan::plan(&converger.desired, &observed, services);
    converger.apply(&actions, &observed, services).await?;
    Ok(actions)
}

/// `--dry-run` of a converge (`start`, one pass of `supervise`): the images to fetch and
/// the plan's actions, one a line on stdout (`--json`: `{"env", "dry_run": true,
/// "actions"}`), changing nothing. The plan is the one [`converge`] applies.
pub async fn print_plan(
    context: &Context,
    converger: &Converger,
    (services, stale): (&[String], Option<std::collections::BTreeSet<String>>),
) -> Result<()> {
    let desired = &converger.desired;
    let mut observed = converger.observe().await?;
    observed.stale_files = stale.unwrap_or(observed.stale_files);
    let actions = plan::plan(desired, &observed, services);
    if context.global.json {
        let env = &desired.env;
        context
            .printer
            .json(&serde_json::json!({"env": env, "dry_run": true, "actions": actions}));
        return Ok(());
    }
    // The images that are not on the engine yet.
    let mut lines: Vec<String> = desired
        .services
        .iter()
        .filter(|s| s.fetched_every_run() || !observed.images.contains_key(&s.image))
        .map(|s| {
            let verb = if s.build.is_some() { "build" } else { "pull" };
            format!("{}: {verb} `{}`", s.name, s.image)
        })
        .collect();
    lines.extend(actions.iter().map(|a| a.to_string()));
    match lines.is_empty() {
        true => context.printer.status("nothing to change"),
        false => context
            .printer
            .out(lines.iter().map(|l| format!("{l}\n")).collect::<String>()),
    }
    Ok(())
}

/// `path` shown relative to `base` when inside it.
pub fn display_path(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

/// A runtime for commands that talk to an engine: one thread is plenty.
/// A runtime with two worker threads, for commands whose tasks must go on while the
/// main thread waits on a blocking call (an SSH round trip).
pub fn runtime_threads() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::outside(format!("cannot start the async runtime: {e}")))
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::outside(format!("cannot start the async runtime: {e}")))
}

/// Check that every named service is one that runs (the proxy too, when there is one).
pub fn check_services(desired: &Desired, names: &[String]) -> Result<()> {
    let known: Vec<&str> = desired.services.iter().map(|s| s.name.as_str()).collect();
    for name in names {
        if !known.contains(&name.as_str()) {
            let mut diagnostic = Diagnostic::new(format!(
                "no service `{name}` in environment `{}`",
                desired.env
            ));
            diagnostic = match crate::error::nearest(name, known.iter().copied()) {
                Some(near) => diagnostic.hint(format!("did you mean `{near}`?")),
                None => diagnostic.hint(format!("services: {}", known.join(", "))),
            };
            return Err(diagnostic.into());
        }
    }
    Ok(())
}

/// Files that differ between `bundle` and `dir`, each with what to print: a unified
/// diff of a file without secrets; the others (secrets, files stack does not write) are
/// named, never shown ([`crate::fsio::compare_bundle`]).
pub fn diff(bundle: &Bundle, dir: &std::path::Path) -> Result<Vec<(String, String)>> {
    Ok(crate::fsio::compare_bundle(bundle, dir)?
        .into_iter()
        .map(|stale| (stale.path, stale.text))
        .collect())
}

/// Print findings; exit 1 when one failed.
pub fn report(
    context: &Context,
    env: &str,
    what: &str,
    findings: &[crate::audit::Finding],
) -> Result<()> {
    let failed = findings.iter().filter(|f| !f.ok).count();
    if context.global.json {
        context
            .printer
            .json(&serde_json::json!({"env": env, "ok": failed == 0, "findings": findings}));
    } else {
        for finding in findings {
            let mark = if finding.warning {
                context.printer.paint("WARN", crate::printer::Paint::Yellow)
            } else if finding.ok {
                context.printer.paint("ok  ", crate::printer::Paint::Green)
            } else {
                context.printer.paint("FAIL", crate::printer::Paint::Red)
            };
            if !finding.ok || finding.warning || !context.global.quiet {
                eprintln_safe(&format!("{mark} {}", finding.message));
            }
        }
    }
    if failed == 0 {
        context.printer.status(format!("{what} of `{env}` passed"));
        Ok(())
    } else {
        Err(Error::No(format!(
            "{what} of `{env}` failed: {failed} problem(s)"
        )))
    }
}

fn eprintln_safe(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A hook's name and the release it runs for (empty before the release id is known).
pub struct Hook<'a> {
    /// `pre-build`, `pre-deploy`, `post-deploy`.
    pub name: &'a str,
    pub command: &'a str,
    pub release: &'a str,
}

/// Run a hook with `sh -c` in the project directory, on this machine, with `STACK_ENV`,
/// `STACK_RELEASE`, `STACK_VERSION` (`git describe` of the project) and
/// `STACK_PERFORMER` (who runs stack, as the audit log names them) in its environment.
/// Its stdout goes to stderr (stdout is data), its stderr is shown as it comes.
/// A failure is `Err(No)` naming the hook and how it ended; the caller decides whether
/// that aborts.
pub fn run_hook(context: &Context, config: &crate::config::Config, hook: &Hook) -> Result<()> {
    use std::os::fd::AsFd;
    context
        .printer
        .status(format!("running the {} hook: {}", hook.name, hook.command));
    let version = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(&config.project_dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::process::Stdio::from)
        .unwrap_or_else(|_| std::process::Stdio::null());
    let status = std::process::Command::new("sh")
        .args(["-c", hook.command])
        .current_dir(&config.project_dir)
        .env("STACK_ENV", &config.env)
        .env("STACK_PROJECT", &config.project)
        .env("STACK_RELEASE", hook.release)
        .env("STACK_VERSION", version)
        .env("STACK_PERFORMER", crate::deploy::local_user())
        .env("STACK_HOOK", hook.name)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .status()
        .map_err(|e| Error::outside(format!("cannot run the {} hook with `sh`: {e}", hook.name)))?;
    if status.success() {
        return Ok(());
    }
    let how = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(code), _) => format!("exited {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "failed".to_string(),
    };
    Err(Error::No(format!(
        "the {} hook `{}` {how}",
        hook.name,
        crate::printer::escape(hook.command)
    )))
}

/// The maintenance folder of a project (`stack maintenance`, `status`): here, or on its
/// server through the deploy connection. Files are replaced whole (written beside, then
/// renamed), 0644 in a 0755 folder: the proxy's workers read them.
pub enum MaintenanceDir<'a> {
    Local(PathBuf),
    Server(&'a crate::deploy::Remote, String),
}

impl MaintenanceDir<'_> {
    /// The folder of `target`'s project, where its proxy binds it.
    pub fn of(target: &target::Target) -> MaintenanceDir<'_> {
        let source = crate::model::HostPath::State(crate::model::MAINTENANCE_DIR.into());
        let dir = target.placement.resolve(&source);
        match &target.remote {
            Some(remote) => MaintenanceDir::Server(remote, dir.display().to_string()),
            None => MaintenanceDir::Local(dir),
        }
    }

    /// Where it is, for messages.
    pub fn display(&self) -> String {
        match self {
            MaintenanceDir::Local(dir) => dir.display().to_string(),
            MaintenanceDir::Server(remote, dir) => format!("{}:{dir}", remote.server.host),
        }
    }

    /// The contents of `name`, `None` when it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self {
            MaintenanceDir::Local(dir) => match std::fs::read(dir.join(name)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io("read", &dir.join(name), e)),
            },
            MaintenanceDir::Server(remote, dir) => {
                let path = crate::deploy::ssh::quote(&format!("{dir}/{name}"));
                let output = remote.session.run(
                    &format!("if [ -e {path} ]; then cat {path}; else exit 9; fi"),
                    None,
                )?;
                match output.status.code() {
                    Some(0) => Ok(Some(output.stdout)),
                    Some(9) => Ok(None),
                    _ => Err(Error::Outside {
                        message: format!("on the server: cannot read `{dir}/{name}`"),
                        causes: vec![String::from_utf8_lossy(&output.stderr).trim().to_string()],
                        hint: None,
                    }),
                }
            }
        }
    }

    /// Replace `name` with `bytes` (the folder is made when missing).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        match self {
            MaintenanceDir::Local(dir) => crate::fsio::replace_shared(dir, name, bytes),
            MaintenanceDir::Server(remote, dir) => {
                let folder = crate::deploy::ssh::quote(dir);
                let path = crate::deploy::ssh::quote(&format!("{dir}/{name}"));
                let partial = crate::deploy::ssh::quote(&format!("{dir}/.{name}.partial"));
                remote
                    .session
                    .check(
                        &format!("write `{dir}/{name}`"),
                        &format!(
                            "set -e; umask 022; mkdir -p {folder}; chmod 755 {folder}; cat > {partial}; chmod 644 {partial}; mv -f {partial} {path}"
                        ),
                        Some(bytes),
                    )
                    .map(|_| ())
            }
        }
    }

    /// Remove `name` (nothing to do when it does not exist).
    pub fn remove(&self, name: &str) -> Result<()> {
        match self {
            MaintenanceDir::Local(dir) => match std::fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::io("remove", &dir.join(name), e))
                }
                _ => Ok(()),
            },
            MaintenanceDir::Server(remote, dir) => {
                let path = crate::deploy::ssh::quote(&format!("{dir}/{name}"));
                remote
                    .session
                    .check(
                        &format!("remove `{dir}/{name}`"),
                        &format!("rm -f {path}"),
                        None,
                    )
                    .map(|_| ())
            }
        }
    }

    /// The state maintenance mode was turned on with; `None` while it is off.
    pub fn state(&self) -> Result<Option<crate::render::maintenance::State>> {
        let Some(bytes) = self.read(crate::render::maintenance::SWITCH_FILE)? else {
            return Ok(None);
        };
        // A switch stack did not write (made by hand) is on all the same.
        Ok(Some(serde_json::from_slice(&bytes).unwrap_or(
            crate::render::maintenance::State {
                since: "unknown".into(),
                allow: Vec::new(),
                retry_after: crate::render::maintenance::DEFAULT_RETRY_AFTER,
            },
        )))
    }
}
