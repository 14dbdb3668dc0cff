//! `stack stop`, `stack restart`, `stack down`. Each plans first ([`crate::plan::stop`],
//! [`crate::plan::restart`], [`crate::plan::down`]) and one executor applies the plan
//! ([`Engine::teardown`]); `--dry-run` prints the plan and changes nothing.

use serde_json::json;

use super::{check_services, runtime, Context};
use crate::cli::{DownArgs, RestartArgs, ServicesArg, StopArgs};
use crate::engine::Engine;
use crate::error::Result;
use crate::plan::{self, Teardown};

/// The project name: from a deployed bundle with `--bundle`, else from the project.
/// Each container stops with its own grace (`STOP_GRACE`, given to it at creation).
fn project_of(context: &Context, args: &ServicesArg) -> Result<String> {
    if let Some(bundle) = &args.bundle {
        return Ok(super::read_desired(bundle)?.project);
    }
    let loaded = context.load(&context.env())?;
    check_services(&super::desired_of(&loaded.config), &args.services)?;
    Ok(loaded.config.project.clone())
}

pub fn stop(context: &Context, args: &StopArgs) -> Result<()> {
    per_container(context, &args.services, args.dry_run, Verb::Stop)
}

pub fn restart(context: &Context, args: &RestartArgs) -> Result<()> {
    per_container(context, &args.services, args.dry_run, Verb::Restart)
}

/// What `stop` and `restart` do to each container.
#[derive(Clone, Copy)]
enum Verb {
    Stop,
    Restart,
}

/// `stop` or `restart`: plan one step per selected container, print the plan
/// (`--dry-run`) or apply it and say what was done (`--json`: `"stopped"` or
/// `"restarted"` and the `"actions"`).
fn per_container(context: &Context, args: &ServicesArg, dry: bool, verb: Verb) -> Result<()> {
    let project = project_of(context, args)?;
    let (planner, done_word): (fn(&_, &_) -> _, _) = match verb {
        Verb::Stop => (plan::stop, "stopped"),
        Verb::Restart => (plan::restart, "restarted"),
    };
    runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let containers = engine.containers(&project).await?;
        let planned = planner(&containers, &args.services);
        if dry {
            dry_run(context, &planned);
            return Ok(());
        }
        let done = engine.teardown(&planned).await?;
        if context.global.json {
            let names: Vec<&str> = done.iter().filter_map(container_of).collect();
            context
                .printer
                .json(&json!({ done_word: names, "actions": done }));
        }
        for step in &done {
            if let Teardown::Stop { service, container }
            | Teardown::Restart { service, container } = step
            {
                context
                    .printer
                    .status(format!("{service}: {done_word} `{container}`"));
            }
        }
        if done.is_empty() {
            context.printer.status("no containers");
        }
        Ok(())
    })
}

pub fn down(context: &Context, args: &DownArgs) -> Result<()> {
    let loaded = context.load(&context.env())?;
    let project = loaded.config.project.clone();
    runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let present = engine.present(&project, args.volumes).await?;
        let planned = plan::down(&present, args.volumes);
        if args.dry_run {
            dry_run(context, &planned);
            return Ok(());
        }
        let done = engine.teardown(&planned).await?;
        let removed: Vec<&str> = done.iter().filter_map(container_of).collect();
        let volumes: Vec<&str> = done
            .iter()
            .filter_map(|step| match step {
                Teardown::RemoveVolume { name } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        if context.global.json {
            context.printer.json(&json!({
                "removed": removed,
                "volumes_removed": volumes,
                "actions": done,
            }));
        }
        context.printer.status(format!(
            "removed {} container(s) and the networks of `{project}`{}",
            removed.len(),
            if args.volumes {
                format!(", and {} volume(s)", volumes.len())
            } else {
                "; volumes kept (use --volumes to remove them)".into()
            }
        ));
        Ok(())
    })
}

/// The container a step stops or removes.
fn container_of(step: &Teardown) -> Option<&str> {
    match step {
        Teardown::Stop { container, .. }
        | Teardown::Restart { container, .. }
        | Teardown::Remove { container, .. } => Some(container.as_str()),
        _ => None,
    }
}

/// `--dry-run`: the plan, one step a line on stdout (`--json`: `{"dry_run": true,
/// "actions": [...]}`), changing nothing.
fn dry_run(context: &Context, planned: &[Teardown]) {
    if context.global.json {
        context
            .printer
            .json(&json!({"dry_run": true, "actions": planned}));
    } else if planned.is_empty() {
        context.printer.status("nothing to change");
    } else {
        context.printer.out(
            planned
                .iter()
                .map(|step| format!("{step}\n"))
                .collect::<String>(),
        );
    }
}
