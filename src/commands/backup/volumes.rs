//! Volume backups (`BACKUP_VOLUMES`): `stack backup run` archives each volume in a
//! one-off container of the backup service, its users paused around the archive when
//! `BACKUP_VOLUMES_PAUSE=true`; `stack backup restore --volume NAME` stops the users,
//! restores (the script takes the safety copy and checks every sha256), starts them again.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;

use super::list::entries;
use super::restore::{confirm, start_again};
use super::{step, Site, BACKUP, OFFSITE};
use crate::commands::Context;
use crate::error::{Diagnostic, Error, Result};
use crate::model::{EnvValue, Mount};
use crate::plan::ObservedContainer;

/// A plain variable of the backup service.
fn backup_env<'a>(site: &'a Site, var: &str) -> Option<&'a str> {
    match site.desired.service(BACKUP)?.env.get(var)? {
        EnvValue::Plain(text) => Some(text.as_str()),
        EnvValue::Secret(_) => None,
    }
}

/// The volumes of `BACKUP_VOLUMES` in the project as it runs on the site.
pub(super) fn configured(site: &Site) -> Vec<String> {
    let text = backup_env(site, "BACKUP_VOLUMES").unwrap_or("");
    crate::config::presets::backup_volumes(text)
        .into_iter()
        .map(String::from)
        .collect()
}

fn pause_enabled(site: &Site) -> bool {
    let text = backup_env(site, "BACKUP_VOLUMES_PAUSE").unwrap_or("false");
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "1"
    )
}

/// The running containers of the services that mount `volume` (the backup services aside).
async fn users(site: &Site, volume: &str) -> Result<Vec<ObservedContainer>> {
    let services: BTreeSet<&str> = site
        .desired
        .services
        .iter()
        .filter(|s| s.name != BACKUP && s.name != OFFSITE)
        .filter(|s| {
            s.mounts
                .iter()
                .any(|m| matches!(m, Mount::Volume { name, .. } if name == volume))
        })
        .map(|s| s.name.as_str())
        .collect();
    Ok(site
        .engine
        .containers(&site.desired.project)
        .await?
        .into_iter()
        .filter(|c| c.running && services.contains(c.service.as_str()))
        .collect())
}

/// The volume exists on the engine (a one-off that mounted a missing one would create it).
async fn exists(site: &Site, volume: &str) -> Result<bool> {
    let name = site.desired.volume_name(volume);
    let volumes = site.engine.project_volumes(&site.desired.project).await?;
    Ok(volumes.contains(&name))
}

fn names(containers: &[ObservedContainer]) -> String {
    let names: BTreeSet<String> = containers
        .iter()
        .map(|c| format!("`{}`", c.service))
        .collect();
    names.into_iter().collect::<Vec<_>>().join(", ")
}

/// Archive every volume of `BACKUP_VOLUMES`; one JSON object each.
pub(super) async fn archive_all(context: &Context, site: &Site) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for volume in configured(site) {
        out.push(archive(context, site, &volume).await?);
    }
    Ok(out)
}

/// Archive one volume, its users paused around it when `BACKUP_VOLUMES_PAUSE=true`.
async fn archive(context: &Context, site: &Site, volume: &str) -> Result<serde_json::Value> {
    // A missing volume stays unmounted: the script says so and sets the metric.
    let present = exists(site, volume).await?;
    let paused = if present && pause_enabled(site) {
        users(site, volume).await?
    } else {
        Vec::new()
    };
    let mut frozen = Vec::new();
    let mut failed = None;
    for container in &paused {
        match site.engine.pause(&container.id).await {
            Ok(()) => frozen.push(container),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let started = Instant::now();
    let result = match failed {
        Some(e) => Err(e),
        None => {
            step(
                context,
                site,
                BACKUP,
                &["volumes", volume],
                present.then_some((volume, false)),
            )
            .await
        }
    };
    let pause = started.elapsed();
    // Whatever happened: nothing stays paused.
    let mut resumed = Ok(());
    for container in &frozen {
        if let Err(e) = site.engine.unpause(&container.id).await {
            resumed = Err(e);
        }
    }
    let (ok, machine) = result?;
    resumed?;
    if !frozen.is_empty() {
        context.printer.status(format!(
            "paused {} for {} around the archive of volume `{volume}`",
            names(&paused),
            seconds(pause)
        ));
    }
    let archive = machine.iter().find_map(|line| {
        let mut fields = line.strip_prefix("volume ")?.split(' ');
        (fields.next()? == volume).then(|| fields.next().map(String::from))?
    });
    let Some(archive) = archive.filter(|_| ok) else {
        return Err(Error::No(format!(
            "the archive of volume `{volume}` on {} failed (above); no archive was written",
            site.name
        )));
    };
    context
        .printer
        .status(format!("volume `{volume}` archived as `{archive}`"));
    Ok(json!({
        "volume": volume,
        "archive": archive,
        "paused_services": paused.iter().map(|c| c.service.clone()).collect::<BTreeSet<_>>(),
        "pause_seconds": (!frozen.is_empty()).then_some(pause.as_secs_f64()),
    }))
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// `stack backup restore --volume NAME [ARCHIVE]`.
pub(super) async fn restore(
    context: &Context,
    site: &Site,
    volume: &str,
    archive: Option<&str>,
) -> Result<()> {
    if site.swarm {
        return Err(Diagnostic::new(
            "`stack backup restore` stops and starts containers, which swarm would replace",
        )
        .hint(
            "scale the services that mount the volume to 0, then restore on the node that holds it",
        )
        .into());
    }
    let backed_up = configured(site);
    if !backed_up.iter().any(|v| v == volume) {
        let list: Vec<String> = backed_up.iter().map(|v| format!("`{v}`")).collect();
        return Err(Diagnostic::new(format!(
            "volume `{}` is not in `BACKUP_VOLUMES` of the project on {}",
            crate::printer::escape(volume),
            site.name
        ))
        .hint(if list.is_empty() {
            "list the volumes to back up in `BACKUP_VOLUMES`".to_string()
        } else {
            format!("the volumes backed up: {}", list.join(", "))
        })
        .into());
    }
    let archive = chosen(context, site, volume, archive).await?;
    if !exists(site, volume).await? {
        return Err(Error::No(format!(
            "volume `{volume}` does not exist on {}; start the project (`stack start`) so it is created, then restore",
            site.name
        )));
    }
    let running = users(site, volume).await?;
    in_use(context, site, volume, &archive, &running)?;
    for container in &running {
        context.printer.status(format!(
            "stopping {} (`{}`)",
            container.service, container.name
        ));
        site.engine
            .stop(&container.id, crate::engine::Grace::Own)
            .await?;
    }
    let args = ["restore-volume", archive.as_str(), volume];
    let restored = step(context, site, BACKUP, &args, Some((volume, true))).await;
    let started = start_again(context, site, &running).await;
    let (ok, machine) = restored?;
    if !ok {
        started?;
        return Err(Error::No(format!(
            "the restore of `{archive}` into volume `{volume}` failed (above); the volume holds its files as before"
        )));
    }
    started?;
    let safety = machine
        .iter()
        .find_map(|l| l.strip_prefix("safety ").map(String::from))
        .unwrap_or_default();
    if context.global.json {
        context.printer.json(&json!({
            "restored": archive, "volume": volume, "safety_copy": safety,
            "restarted_services": running.iter().map(|c| c.service.clone()).collect::<BTreeSet<_>>(),
        }));
    }
    context.printer.status(format!(
        "restored `{archive}` into volume `{volume}` on {}; {} container(s) started again and ready; the replaced files are in `{safety}` (`stack backup restore --volume {volume} {safety}{} --yes` puts them back)",
        site.name,
        running.len(),
        site.on
    ));
    Ok(())
}

/// The archive to restore: the one named (present on the site), or the volume's newest.
async fn chosen(
    context: &Context,
    site: &Site,
    volume: &str,
    archive: Option<&str>,
) -> Result<String> {
    let present = entries(context, site).await?;
    let mut ours = present
        .iter()
        .filter(|e| e.volume.as_deref() == Some(volume));
    match archive {
        Some(name) => match ours.any(|e| e.name == name) {
            true => Ok(name.to_string()),
            false => Err(Diagnostic::new(format!(
                "no archive `{name}` of volume `{volume}` on {}",
                site.name
            ))
            .hint(format!("list them with `stack backup list{}`", site.on))
            .into()),
        },
        None => ours
            .filter(|e| !e.name.starts_with("safety-"))
            .map(|e| e.name.clone())
            .max()
            .ok_or_else(|| {
                Error::No(format!(
                    "no archive of volume `{volume}` on {} yet; take one with `stack backup run{}`",
                    site.name, site.on
                ))
            }),
    }
}

/// A restore replaces the volume's files: asked (or `--yes`); a volume in use is refused
/// without a terminal to ask on, naming what would be stopped.
fn in_use(
    context: &Context,
    site: &Site,
    volume: &str,
    archive: &str,
    running: &[ObservedContainer],
) -> Result<()> {
    if context.global.yes {
        return Ok(());
    }
    if !running.is_empty() && !context.printer.interactive {
        return Err(Diagnostic::new(format!(
            "volume `{volume}` on {} is in use by {} (running); a restore replaces its files, so it stops them first",
            site.name,
            names(running)
        ))
        .hint(format!(
            "pass `--yes` to stop them, restore `{archive}` and start them again (a safety copy of the volume is taken first)"
        ))
        .into());
    }
    let users = match running.is_empty() {
        true => String::new(),
        false => format!(", stopping {} meanwhile", names(running)),
    };
    confirm(
        context,
        format!(
            "Replace the files of volume `{volume}` on {} with `{archive}`{users}? (a safety copy is taken first)",
            site.name
        ),
    )
}
