//! `stack backup run | list | verify [DUMP|ARCHIVE] | restore DUMP | restore --volume NAME
//! [ARCHIVE]`: the BACKUP preset's steps,
//! run by the engine in one-off containers of the `backup` service (the postgres image),
//! locally or with `--on ENV` on that server's engine over the deploy SSH connection.
//!
//! The steps themselves are the rendered `backup.sh` (the text the scheduled `backup`
//! service runs), passed to `sh -c`: this module only chooses the engine, orders the
//! steps (the safety dump, stopping and starting the services that depend on postgres or
//! mount a volume being restored, pausing a volume's users around its archive) and reports.

mod list;
mod names;
mod restore;
mod volumes;

use std::time::Duration;

use serde_json::json;

use super::{default_out, runtime, server_engine, server_of, server_placement, Context};
use crate::cli::{BackupCommand, BackupOn};
use crate::config::Target;
use crate::deploy::Remote;
use crate::engine::oneoff::Ended;
use crate::engine::Engine;
use crate::error::{Diagnostic, Error, Result};
use crate::model::{self, Desired, DesiredService, HostPath, Mount, Placement, Secrets};
use names::{check_archive, check_name};

/// The service that runs the steps, and the one that copies dumps off-site.
const BACKUP: &str = "backup";
const OFFSITE: &str = "backup-offsite";
const DATABASE: &str = "postgres";

/// Where the steps run: an engine and the project as it runs there.
struct Site {
    engine: Engine,
    desired: Desired,
    placement: Placement,
    secrets: Secrets,
    /// `the local engine` or `server `host``, for messages.
    name: String,
    /// `--on ENV` for the hints we print.
    on: String,
    swarm: bool,
    /// Keeps the SSH connection (and its forwarded socket) open.
    _remote: Option<Remote>,
}

pub fn run(context: &Context, command: &BackupCommand) -> Result<()> {
    let on = match command {
        BackupCommand::Run(on) | BackupCommand::List(on) => on,
        BackupCommand::Verify(args) => &args.on,
        BackupCommand::Restore(args) => &args.on,
    };
    // Names are checked before anything connects.
    match command {
        BackupCommand::Verify(args) => {
            if let Some(dump) = args.dump.as_deref() {
                if names::archive_parts(dump).is_none() {
                    check_name(dump)?;
                }
            }
        }
        BackupCommand::Restore(args) => match (&args.volume, &args.dump) {
            (Some(volume), Some(archive)) => check_archive(archive, volume)?,
            (Some(_), None) => {}
            (None, dump) => check_name(dump.as_deref().unwrap_or_default())?,
        },
        _ => {}
    }
    let runtime = runtime()?;
    let site = site(context, on, &runtime)?;
    runtime.block_on(async {
        match command {
            BackupCommand::Run(_) => backup_run(context, &site).await,
            BackupCommand::List(_) => list::list(context, &site).await,
            BackupCommand::Verify(args) => verify(context, &site, args.dump.as_deref()).await,
            BackupCommand::Restore(args) => match &args.volume {
                Some(volume) => {
                    volumes::restore(context, &site, volume, args.dump.as_deref()).await
                }
                None => {
                    let dump = args.dump.as_deref().unwrap_or_default();
                    restore::restore(context, &site, dump).await
                }
            },
        }
    })
}

/// The local engine with the project as configured, or the server of `--on ENV` with its
/// current release.
fn site(context: &Context, on: &BackupOn, runtime: &tokio::runtime::Runtime) -> Result<Site> {
    match &on.on {
        None => {
            let env = context.env();
            // Refused before `dev`'s missing secrets are generated.
            enabled(&context.load(&env)?.config)?;
            let loaded = context.load_with_secrets(&env)?;
            let config = &loaded.config;
            let out = default_out(&config.project_dir, &env);
            let desired = super::sealed_desired(config, &out)?;
            let engine = runtime.block_on(Engine::connect())?;
            let placement = Placement {
                root: config.project_dir.clone(),
                bundle: out,
            };
            crate::fsio::private_dirs(&desired, &placement);
            Ok(Site {
                engine,
                desired,
                placement,
                secrets: model::secrets(config),
                name: "the local engine".into(),
                on: String::new(),
                swarm: false,
                _remote: None,
            })
        }
        Some(env) => {
            let loaded = context.load(env)?;
            enabled(&loaded.config)?;
            let server = server_of(&loaded)?;
            let remote = Remote::connect(&server, env)?;
            let current = remote.current()?.ok_or_else(|| {
                Error::No(format!(
                    "nothing is deployed to `{env}` on `{}` yet; run `stack deploy {env}` first",
                    server.host
                ))
            })?;
            let (desired, secrets) = remote.desired(&current)?;
            if desired.service(BACKUP).is_none() {
                return Err(Error::No(format!(
                    "the current release of `{env}` ({current}) has no backup service; deploy with `BACKUP_ENABLED=true` first"
                )));
            }
            let engine = runtime.block_on(server_engine(&remote))?;
            Ok(Site {
                engine,
                desired,
                placement: server_placement(&server),
                secrets,
                name: format!("`{}`", server.host),
                on: format!(" --on {env}"),
                swarm: loaded.config.target == Target::Swarm,
                _remote: Some(remote),
            })
        }
    }
}

fn enabled(config: &crate::config::Config) -> Result<()> {
    let on = config
        .services
        .iter()
        .any(|s| s.name == BACKUP && s.preset == Some("BACKUP"));
    if on {
        return Ok(());
    }
    Err(Diagnostic::new(format!(
        "the BACKUP preset is not enabled in environment `{}`",
        config.env
    ))
    .hint("set `POSTGRES_ENABLED=true` and `BACKUP_ENABLED=true` in stack.env")
    .into())
}

/// How long one step may run (a dump or verification of a large database takes a while).
const STEP_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

/// Run a step of the script in a one-off container of `service`; its lines go to stderr
/// (lines starting with `::` are for us). Returns (succeeded, machine lines).
/// `volume`: the one volume of `BACKUP_VOLUMES` the step may see (read-write when `true`);
/// the others are not mounted.
async fn step(
    context: &Context,
    site: &Site,
    service: &str,
    args: &[&str],
    volume: Option<(&str, bool)>,
) -> Result<(bool, Vec<String>)> {
    let service: &DesiredService = site.desired.service(service).ok_or_else(|| {
        Error::No(format!(
            "the project on {} has no `{service}` service",
            site.name
        ))
    })?;
    site.engine.oneoff_preflight(&site.desired, service).await?;
    let script = crate::render::backup::script(
        "stack backup: the BACKUP preset's steps, run in a one-off container",
    )?;
    // The script's text instead of the bundle's file (which may not be on this machine),
    // through `sh -c` whatever the service's own entrypoint is.
    let mut service = service.clone();
    service.options.entrypoint = Some(vec!["sh".into(), "-c".into(), script, "backup.sh".into()]);
    service.mounts.retain(|m| {
        !matches!(
            m,
            Mount::Bind {
                source: HostPath::Bundle(_),
                ..
            }
        )
    });
    volume_mounts(&mut service.mounts, volume);
    let command: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let printer = &context.printer;
    let mut machine = Vec::new();
    let run = site.engine.run_oneoff(
        &site.desired,
        &service,
        (&command, args.first().copied().unwrap_or("backup")),
        (&site.placement, &site.secrets),
        (STEP_TIMEOUT, |line: &str| match line.strip_prefix("::") {
            Some(data) => machine.push(data.to_string()),
            None => printer.status(line),
        }),
    );
    // Ctrl-C drops the run, which removes its container.
    let result = tokio::select! {
        result = run => result?,
        _ = tokio::signal::ctrl_c() => {
            return Err(Error::No("interrupted; the one-off container was removed".into()));
        }
    };
    let ok = matches!(result.ended, Ended::Exited(0));
    if let Ended::TimedOut(limit) = result.ended {
        printer.status(format!(
            "backup: the step ran longer than {} h and was stopped",
            limit.as_secs() / 3600
        ));
    }
    Ok((ok, machine))
}

/// Keep the mount of `volume` only (read-write when asked) of the backup service's
/// `/volumes/<name>` mounts: a step never creates a volume that was removed.
fn volume_mounts(mounts: &mut Vec<Mount>, volume: Option<(&str, bool)>) {
    mounts.retain_mut(|mount| {
        let Mount::Volume {
            name,
            target,
            read_only,
        } = mount
        else {
            return true;
        };
        if !target.starts_with(crate::config::presets::BACKUP_VOLUMES_DIR) {
            return true;
        }
        match volume {
            Some((keep, writable)) if keep == name => {
                *read_only = !writable;
                true
            }
            _ => false,
        }
    });
}

/// A dump now (`kind`: `dump` or `safety`); its name.
async fn take_dump(context: &Context, site: &Site, kind: &str) -> Result<Option<String>> {
    let (ok, machine) = step(context, site, BACKUP, &["run", kind], None).await?;
    let name = machine
        .iter()
        .find_map(|l| l.strip_prefix("dump ").map(String::from));
    Ok(if ok { name } else { None })
}

async fn backup_run(context: &Context, site: &Site) -> Result<()> {
    let Some(name) = take_dump(context, site, "dump").await? else {
        return Err(Error::No(format!(
            "the backup on {} failed (above); no dump was written",
            site.name
        )));
    };
    let volumes = volumes::archive_all(context, site).await?;
    let offsite = site.desired.service(OFFSITE).is_some();
    let copied = if offsite {
        step(context, site, OFFSITE, &["offsite"], None).await?.0
    } else {
        true
    };
    if context.global.json {
        context.printer.json(&json!({
            "dump": name,
            "volumes": volumes,
            "offsite": if offsite { Some(copied) } else { None },
        }));
    }
    if !copied {
        return Err(Error::No(format!(
            "the dump `{name}` was written on {}, but its off-site copy failed (above)",
            site.name
        )));
    }
    context
        .printer
        .status(format!("backup `{name}` written on {}", site.name));
    Ok(())
}

async fn verify(context: &Context, site: &Site, dump: Option<&str>) -> Result<()> {
    let mut args = vec!["verify"];
    args.extend(dump);
    let (ok, _) = step(context, site, BACKUP, &args, None).await?;
    let what = dump.map_or("the newest dump".to_string(), |d| format!("`{d}`"));
    if context.global.json {
        context.printer.json(&json!({"dump": dump, "verified": ok}));
    }
    if ok {
        let how = match dump.is_some_and(|d| names::archive_parts(d).is_some()) {
            true => "extracts and every file's sha256 matches its manifest",
            false => "restores and matches its manifest",
        };
        context
            .printer
            .status(format!("{what} on {} {how}", site.name));
        Ok(())
    } else {
        Err(Error::No(format!(
            "the verification of {what} on {} failed (above)",
            site.name
        )))
    }
}
