//! `stack stop`, `stack restart`, `stack down`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::{check_services, runtime, Context};
use crate::cli::{DownArgs, ServicesArg};
use crate::engine::converge::STOP_GRACE;
use crate::engine::Engine;
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

/// Each service's grace between the stop signal and SIGKILL (`STOP_GRACE`).
struct Graces(BTreeMap<String, Duration>);

impl Graces {
    fn of(config: &crate::config::Config) -> Graces {
        Graces(
            config
                .services
                .iter()
                .filter_map(|s| Some((s.name.clone(), s.options.stop_grace?)))
                .collect(),
        )
    }

    /// The grace of a container's service (a service no longer declared: the default).
    fn get(&self, container: &ObservedContainer) -> Duration {
        self.0
            .get(&container.service)
            .copied()
            .unwrap_or(STOP_GRACE)
    }
}

/// The project name and graces: from a deployed bundle with `--bundle`, else from the
/// project.
fn project_of(context: &Context, args: &ServicesArg) -> Result<(String, Graces)> {
    if let Some(bundle) = &args.bundle {
        let desired = super::read_desired(bundle)?;
        let graces = desired
            .services
            .iter()
            .map(|s| (s.name.clone(), s.stop_grace()))
            .collect();
        return Ok((desired.project, Graces(graces)));
    }
    let loaded = context.load(&context.env())?;
    check_services(&loaded.config, &args.services)?;
    Ok((loaded.config.project.clone(), Graces::of(&loaded.config)))
}

pub fn stop(context: &Context, args: &ServicesArg) -> Result<()> {
    let (project, graces) = project_of(context, args)?;
    runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let containers = selected(&engine, &project, &args.services).await?;
        let stops = containers.iter().map(|c| engine.stop(&c.id, graces.get(c)));
        for result in futures_util::future::join_all(stops).await {
            result?;
        }
        report(context, "stopped", &containers);
        Ok(())
    })
}

pub fn restart(context: &Context, args: &ServicesArg) -> Result<()> {
    let (project, _) = project_of(context, args)?;
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
    let graces = Graces::of(&loaded.config);
    runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let containers = selected(&engine, &project, &[]).await?;
        let removals = containers
            .iter()
            .map(|c| engine.remove(&c.id, graces.get(c)));
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
