//! Waiting for a swarm service: until its wanted replicas of the new version run, swarm
//! rolls the update back, or the deadline passes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{Service, ServiceUpdateStatusStateEnum, Task};
use bollard::query_parameters::ListTasksOptions;

use super::{outside, service_name};
use crate::engine::{labels, Engine};
use crate::error::{Error, Result};
use crate::model::{Desired, DesiredService};
use crate::printer::Progress;

impl Engine {
    /// Wait until `service` runs its wanted replicas of its new version and swarm has
    /// settled the update; an error when swarm rolls it back or `deadline` passes.
    pub(super) async fn wait_swarm_service(
        &self,
        desired: &Desired,
        service: &DesiredService,
        deadline: Instant,
        progress: &Progress,
    ) -> Result<()> {
        let name = service_name(&desired.project, &service.name);
        progress.step(&service.name, "waiting for its tasks");
        loop {
            let inspect = self
                .docker
                .inspect_service(
                    &name,
                    None::<bollard::query_parameters::InspectServiceOptions>,
                )
                .await
                .map_err(|e| outside(&format!("cannot inspect service `{name}`"), e))?;
            let state = inspect.update_status.as_ref().and_then(|u| u.state);
            if let Some(message) = rolled_back(&inspect) {
                progress.fail(&service.name, "update failed");
                return Err(Error::No(format!(
                    "service `{}`: swarm rolled the update back: {message}",
                    service.name
                )));
            }
            let tasks = self.running_tasks(&name).await?;
            let running = current_running(&tasks, service);
            let settled = !matches!(state, Some(ServiceUpdateStatusStateEnum::UPDATING));
            if running >= service.replicas && settled {
                progress.done(&service.name, "running");
                return Ok(());
            }
            if Instant::now() >= deadline {
                progress.fail(&service.name, "not ready");
                let error = tasks
                    .iter()
                    .filter_map(|t| t.status.as_ref().and_then(|s| s.err.clone()))
                    .next()
                    .unwrap_or_else(|| format!("{running} of {} tasks running", service.replicas));
                return Err(Error::No(format!(
                    "service `{}` is not ready: {error}",
                    service.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The tasks of the swarm service `name` that swarm wants running.
    async fn running_tasks(&self, name: &str) -> Result<Vec<Task>> {
        let filters = HashMap::from([
            ("service".to_string(), vec![name.to_string()]),
            ("desired-state".to_string(), vec!["running".to_string()]),
        ]);
        self.docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| outside(&format!("cannot list the tasks of `{name}`"), e))
    }
}

/// Swarm's message when it rolled the service's update back (or paused it).
fn rolled_back(inspect: &Service) -> Option<String> {
    let update = inspect.update_status.as_ref();
    let failed = matches!(
        update.and_then(|u| u.state),
        Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED)
            | Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED)
            | Some(ServiceUpdateStatusStateEnum::PAUSED)
            | Some(ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED)
    );
    failed.then(|| update.and_then(|u| u.message.clone()).unwrap_or_default())
}

/// How many of `tasks` run the service's current version (its digest).
fn current_running(tasks: &[Task], service: &DesiredService) -> u32 {
    tasks
        .iter()
        .filter(|t| {
            let spec_digest = t
                .spec
                .as_ref()
                .and_then(|s| s.container_spec.as_ref())
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(labels::CONFIG_HASH).cloned());
            let state = t
                .status
                .as_ref()
                .and_then(|s| s.state)
                .map(|s| s.to_string());
            state.as_deref() == Some("running")
                && spec_digest.as_deref() == Some(service.digest.as_str())
        })
        .count() as u32
}
