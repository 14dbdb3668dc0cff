//! `stack backup run | list | verify [DUMP] | restore DUMP`: the BACKUP preset's steps,
//! run by the engine in one-off containers of the `backup` service (the postgres image),
//! locally or with `--on ENV` on that server's engine over the deploy SSH connection.
//!
//! The steps themselves are the rendered `backup.sh` (the text the scheduled `backup`
//! service runs), passed to `sh -c`: this module only chooses the engine, orders the
//! steps (the safety dump, stopping and starting the services that depend on postgres)
//! and reports.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{default_out, runtime, server_engine, server_of, server_placement, Context};
use crate::cli::{BackupCommand, BackupOn};
use crate::config::Target;
use crate::deploy::Remote;
use crate::engine::oneoff::Ended;
use crate::engine::Engine;
use crate::error::{Diagnostic, Error, Result};
use crate::model::{self, Desired, DesiredService, HostPath, Mount, Placement, Secrets};

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
            if let Some(dump) = &args.dump {
                check_name(dump)?;
            }
        }
        BackupCommand::Restore(args) => check_name(&args.dump)?,
        _ => {}
    }
    let runtime = runtime()?;
    let site = site(context, on, &runtime)?;
    runtime.block_on(async {
        match command {
            BackupCommand::Run(_) => backup_run(context, &site).await,
            BackupCommand::List(_) => list(context, &site).await,
            BackupCommand::Verify(args) => verify(context, &site, args.dump.as_deref()).await,
            BackupCommand::Restore(args) => restore(context, &site, &args.dump).await,
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
            let (_, desired) = crate::render::render_all(config, &out)?;
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

/// `dump-2026-12-01T030000Z.dump` (or `safety-…`): the names `list` shows.
fn check_name(name: &str) -> Result<()> {
    if dump_time(name).is_some() {
        return Ok(());
    }
    Err(Diagnostic::new(format!(
        "`{}` is not a dump name",
        crate::printer::escape(name)
    ))
    .hint("name a dump as `stack backup list` shows it, e.g. `dump-2026-12-01T030000Z.dump`")
    .into())
}

/// The UTC time in a dump's name, as Unix seconds.
fn dump_time(name: &str) -> Option<i64> {
    let stamp = name
        .strip_prefix("dump-")
        .or_else(|| name.strip_prefix("safety-"))?
        .strip_suffix(".dump")?;
    let bytes = stamp.as_bytes();
    if bytes.len() != 18 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[10] != b'T' {
        return None;
    }
    if bytes[17] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = &stamp[range];
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(13..15)?, number(15..17)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// How long one step may run (a dump or verification of a large database takes a while).
const STEP_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

/// Run a step of the script in a one-off container of `service`; its lines go to stderr
/// (lines starting with `::` are for us). Returns (succeeded, machine lines).
async fn step(
    context: &Context,
    site: &Site,
    service: &str,
    args: &[&str],
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

/// A dump now (`kind`: `dump` or `safety`); its name.
async fn take_dump(context: &Context, site: &Site, kind: &str) -> Result<Option<String>> {
    let (ok, machine) = step(context, site, BACKUP, &["run", kind]).await?;
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
    let offsite = site.desired.service(OFFSITE).is_some();
    let copied = if offsite {
        step(context, site, OFFSITE, &["offsite"]).await?.0
    } else {
        true
    };
    if context.global.json {
        context.printer.json(&json!({
            "dump": name,
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

/// One dump as `list` shows it.
#[derive(Debug, serde::Serialize)]
struct Entry {
    name: String,
    kind: &'static str,
    time: i64,
    size_bytes: u64,
    manifest: bool,
    /// `ok`, `failed`, or none.
    verified: Option<String>,
    verified_at: Option<i64>,
}

async fn entries(context: &Context, site: &Site) -> Result<Vec<Entry>> {
    let (ok, machine) = step(context, site, BACKUP, &["list"]).await?;
    if !ok {
        return Err(Error::No(format!(
            "cannot list the dumps on {} (above)",
            site.name
        )));
    }
    Ok(machine
        .iter()
        .filter_map(|line| {
            let mut fields = line.strip_prefix("entry\t")?.split('\t');
            let name = fields.next()?.to_string();
            let size_bytes = fields.next()?.parse().ok()?;
            let manifest = fields.next()? == "yes";
            let verified = fields.next().filter(|v| *v != "-").map(String::from);
            let verified_at = fields.next().and_then(|t| t.parse().ok());
            Some(Entry {
                time: dump_time(&name)?,
                kind: if name.starts_with("safety-") {
                    "safety"
                } else {
                    "scheduled"
                },
                name,
                size_bytes,
                manifest,
                verified,
                verified_at,
            })
        })
        .collect())
}

fn human_size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

fn human_age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn iso(time: i64) -> String {
    let stamp = crate::deploy::timestamp_of(time.max(0) as u64);
    // 20261201T030000Z → 2026-12-01 03:00:00Z
    format!(
        "{}-{}-{} {}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    )
}

async fn list(context: &Context, site: &Site) -> Result<()> {
    let entries = entries(context, site).await?;
    let now = now();
    if context.global.json {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "name": e.name, "kind": e.kind, "time": iso(e.time), "unix_time": e.time,
                    "age_seconds": now - e.time, "size_bytes": e.size_bytes,
                    "manifest": e.manifest, "verified": e.verified,
                    "verified_at": e.verified_at.map(iso),
                })
            })
            .collect();
        context.printer.json(&json!({"dumps": rows}));
        return Ok(());
    }
    if entries.is_empty() {
        context
            .printer
            .status(format!("no dumps yet on {}", site.name));
        return Ok(());
    }
    let mut text = format!(
        "{:<36} {:<21} {:>10} {:>6}  {}\n",
        "DUMP", "TIME (UTC)", "SIZE", "AGE", "VERIFIED"
    );
    for e in &entries {
        let verified = match (&e.verified, e.verified_at) {
            (Some(v), Some(at)) => format!("{v} ({} ago)", human_age(now - at)),
            (Some(v), None) => v.clone(),
            (None, _) if !e.manifest => "no manifest".into(),
            (None, _) => "not yet".into(),
        };
        text.push_str(&format!(
            "{:<36} {:<21} {:>10} {:>6}  {verified}\n",
            e.name,
            iso(e.time),
            human_size(e.size_bytes),
            human_age(now - e.time),
        ));
    }
    context.printer.out(text);
    Ok(())
}

async fn verify(context: &Context, site: &Site, dump: Option<&str>) -> Result<()> {
    let mut args = vec!["verify"];
    args.extend(dump);
    let (ok, _) = step(context, site, BACKUP, &args).await?;
    let what = dump.map_or("the newest dump".to_string(), |d| format!("`{d}`"));
    if context.global.json {
        context.printer.json(&json!({"dump": dump, "verified": ok}));
    }
    if ok {
        context.printer.status(format!(
            "{what} on {} restores and matches its manifest",
            site.name
        ));
        Ok(())
    } else {
        Err(Error::No(format!(
            "the verification of {what} on {} failed (above)",
            site.name
        )))
    }
}

/// The services that depend on postgres, directly or through another.
fn dependents(desired: &Desired) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    loop {
        let before = out.len();
        for service in &desired.services {
            if service
                .depends_on
                .iter()
                .any(|d| d.service == DATABASE || out.contains(&d.service))
            {
                out.insert(service.name.clone());
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

fn confirm(context: &Context, site: &Site, dump: &str) -> Result<()> {
    if context.global.yes {
        return Ok(());
    }
    let question = format!(
        "Replace the database on {} with `{dump}`? (a safety dump is taken first)",
        site.name
    );
    if !context.printer.interactive {
        return Err(
            Diagnostic::new(format!("{question}: no terminal to ask on"))
                .hint("pass `--yes` to restore without being asked")
                .into(),
        );
    }
    let answer = dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| Error::outside(format!("cannot read the answer: {e}")))?;
    if answer {
        Ok(())
    } else {
        Err(Error::No("restore cancelled; nothing changed".into()))
    }
}

async fn restore(context: &Context, site: &Site, dump: &str) -> Result<()> {
    if site.swarm {
        return Err(Diagnostic::new(
            "`stack backup restore` stops and starts containers, which swarm would replace",
        )
        .hint("scale the services that use the database to 0, then restore with `pg_restore` in the backup container")
        .into());
    }
    let present = entries(context, site).await?;
    if !present.iter().any(|e| e.name == dump) {
        return Err(
            Diagnostic::new(format!("no dump `{dump}` on {}", site.name))
                .hint(format!("list them with `stack backup list{}`", site.on))
                .into(),
        );
    }
    confirm(context, site, dump)?;
    context.printer.status("taking a safety dump first");
    let Some(safety) = take_dump(context, site, "safety").await? else {
        return Err(Error::No(format!(
            "the safety dump failed (above), so nothing was restored; the database on {} is unchanged",
            site.name
        )));
    };
    // Stop what uses the database, restore, start it again: whatever happens.
    let names = dependents(&site.desired);
    let containers: Vec<_> = site
        .engine
        .containers(&site.desired.project)
        .await?
        .into_iter()
        .filter(|c| c.running && names.contains(&c.service))
        .collect();
    for container in &containers {
        context.printer.status(format!(
            "stopping {} (`{}`)",
            container.service, container.name
        ));
        site.engine
            .stop(&container.id, crate::engine::Grace::Own)
            .await?;
    }
    let restored = step(context, site, BACKUP, &["restore", dump]).await;
    let started = start_again(context, site, &containers).await;
    let back = format!(
        "the safety dump `{safety}` holds the database as it was before; to go back to it: `stack backup restore {safety}{} --yes`",
        site.on
    );
    match restored {
        Ok((true, _)) => {}
        Ok((false, _)) => {
            return Err(Error::No(format!(
                "the restore of `{dump}` failed (above); it ran in one transaction, so the database should be as it was; {back}"
            )))
        }
        Err(e) => {
            context.printer.status(back);
            return Err(e);
        }
    }
    if let Err(e) = started {
        context.printer.status(back);
        return Err(e);
    }
    if context.global.json {
        context
            .printer
            .json(&json!({"restored": dump, "safety_dump": safety}));
    }
    context.printer.status(format!(
        "restored `{dump}` on {}; {} service(s) started again and ready; safety dump `{safety}`",
        site.name,
        containers.len()
    ));
    Ok(())
}

/// Start the stopped containers again, dependencies first, and wait until each is ready.
async fn start_again(
    context: &Context,
    site: &Site,
    containers: &[crate::plan::ObservedContainer],
) -> Result<()> {
    let timeout = site.desired.rollout.health_timeout;
    for level in site.desired.levels() {
        let batch: Vec<_> = containers
            .iter()
            .filter(|c| level.iter().any(|s| s.name == c.service))
            .collect();
        for container in &batch {
            site.engine.start(&container.service, &container.id).await?;
        }
        for container in &batch {
            let Some(service) = site.desired.service(&container.service) else {
                continue;
            };
            let deadline = Instant::now() + timeout;
            loop {
                let state = site.engine.state(&container.id).await?;
                let ready = match &state {
                    Some(state) => {
                        crate::engine::readiness::is_ready(&site.engine, state, service).await
                    }
                    None => false,
                };
                if ready {
                    context
                        .printer
                        .status(format!("{} is ready again", container.service));
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(Error::No(format!(
                        "{} is not ready {} after the restore; see `stack logs {}`",
                        container.service,
                        crate::config::values::compose_duration(timeout),
                        container.service
                    )));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_names_carry_their_time() {
        assert_eq!(dump_time("dump-1970-01-01T000000Z.dump"), Some(0));
        assert_eq!(
            dump_time("dump-2026-12-01T030405Z.dump"),
            Some(1_796_094_245)
        );
        assert_eq!(
            dump_time("safety-2000-03-01T000000Z.dump"),
            Some(951_868_800)
        );
        for bad in [
            "dump-2026-12-01T030405Z.dump.manifest.json",
            "../dump-2026-12-01T030405Z.dump",
            "dump-2026-13-01T030405Z.dump",
            "dump-2026-12-01 030405Z.dump",
            "dump-+026-12-01T030405Z.dump",
            "",
        ] {
            assert_eq!(dump_time(bad), None, "{bad}");
        }
        assert_eq!(iso(1_796_094_245), "2026-12-01 03:04:05Z");
    }
}
