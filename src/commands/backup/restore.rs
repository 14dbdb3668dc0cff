//! `stack backup restore DUMP`: a safety dump, the services that use the database
//! stopped, the restore in one transaction, the services started again.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;

use super::list::entries;
use super::{step, take_dump, Site, BACKUP, DATABASE};
use crate::commands::Context;
use crate::error::{Diagnostic, Error, Result};
use crate::model::Desired;

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

/// Ask `question` (yes/no), unless `--yes`; without a terminal, refuse.
pub(super) fn confirm(context: &Context, question: String) -> Result<()> {
    if context.global.yes {
        return Ok(());
    }
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

pub(super) async fn restore(context: &Context, site: &Site, dump: &str) -> Result<()> {
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
    let question = format!(
        "Replace the database on {} with `{dump}`? (a safety dump is taken first)",
        site.name
    );
    confirm(context, question)?;
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
    let restored = step(context, site, BACKUP, &["restore", dump], None).await;
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
pub(super) async fn start_again(
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
