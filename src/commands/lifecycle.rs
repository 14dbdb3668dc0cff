//! `stack stop`, `stack restart`, `stack down`.

use serde_json::json;

use super::{check_services, runtime, Context};
use crate::cli::{DownArgs, ServicesArg};
use crate::engine::{Engine, Grace, Volumes};
use crate::error::Result;
use crate::plan::ObservedContainer;

/// The project's containers of `services` (all when empty).
async fn selected(
    engine: &Engine,
    project: &str,
    services: &[String],
) -> Result<Vec<ObservedContainer>> {
    Ok(engine
        .containers(project)
        .await?
        .into_iter()
        .filter(|c| services.is_empty() || services.contains(&c.service))
        .collect())
}

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

pub fn stop(context: &Context, args: &ServicesArg) -> Result<()> {
    let project = project_of(context, args)?;
    runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let containers = selected(&engine, &project, &args.services).await?;
        let stops = containers.iter().map(|c| engine.stop(&c.id, Grace::Own));
        for result in futures_util::future::join_all(stops).await {
            result?;
        }
        report(context, "stopped", &containers);
        Ok(())
    })
}

pub fn restart(context: &Context, args: &ServicesArg) -> Result<()> {
    let project = project_of(context, args)?;
    runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let containers = selected(&engine, &project, &args.services).await?;
        let restarts = containers.iter().map(|c| engine.restart(&c.id));
        for result in futures_util::future::join_all(restarts).await {
            result?;
        }
        report(context, "restarted", &containers);
        Ok(())
    })
}

pub fn down(context: &Context, args: &DownArgs) -> Result<()> {
    let loaded = context.load(&context.env())?;
    let project = loaded.config.project.clone();
    runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let containers = selected(&engine, &project, &[]).await?;
        // `--volumes` takes the containers' anonymous volumes too (inherited ones
        // included), as `docker compose down --volumes` does with the ones it made.
        let volumes = if args.volumes {
            Volumes::All
        } else {
            Volumes::Keep
        };
        let removals = containers
            .iter()
            .map(|c| engine.remove(&c.id, Grace::Own, volumes));
        for result in futures_util::future::join_all(removals).await {
            result?;
        }
        for network in engine.project_networks(&project).await? {
            engine.remove_network(&network).await?;
        }
        let mut volumes = Vec::new();
        if args.volumes {
            volumes = engine.project_volumes(&project).await?;
            for volume in &volumes {
                engine.remove_volume(volume).await?;
            }
        }
        if context.global.json {
            context.printer.json(&json!({
                "removed": containers.iter().map(|c| &c.name).collect::<Vec<_>>(),
                "volumes_removed": volumes,
            }));
        }
        context.printer.status(format!(
            "removed {} container(s) and the networks of `{project}`{}",
            containers.len(),
            if args.volumes {
                format!(", and {} volume(s)", volumes.len())
            } else {
                "; volumes kept (use --volumes to remove them)".into()
            }
        ));
        Ok(())
    })
}

fn report(context: &Context, verb: &str, containers: &[ObservedContainer]) {
    if context.global.json {
        context
            .printer
            .json(&json!({verb: containers.iter().map(|c| &c.name).collect::<Vec<_>>()}));
    }
    for container in containers {
        context.printer.status(format!(
            "{}: {verb} `{}`",
            container.service, container.name
        ));
    }
    if containers.is_empty() {
        context.printer.status("no containers");
    }
}
