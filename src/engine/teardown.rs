//! The one executor of `stop`, `restart` and `down` plans ([`crate::plan::Teardown`]): what it did
//! is what the plan said, in the plan's order, so `--dry-run` shows the real run.

use super::{Engine, Grace, Volumes};
use crate::error::Result;
use crate::plan::{Present, Teardown};

impl Engine {
    /// What `stop` and `down` plan from: the project's containers, its networks, and with
    /// `volumes` its volumes.
    pub async fn present(&self, project: &str, volumes: bool) -> Result<Present> {
        // Only networks that exist: a plan names what it changes.
        let mut networks = Vec::new();
        for name in self.project_networks(project).await? {
            if self.network_exists(&name).await? {
                networks.push(name);
            }
        }
        Ok(Present {
            containers: self.containers(project).await?,
            networks,
            volumes: match volumes {
                true => self.project_volumes(project).await?,
                false => Vec::new(),
            },
        })
    }

    /// Apply `plan`: the containers' steps at once (each with its own grace), then the
    /// networks and volumes in order. The steps performed, in the plan's order; the first
    /// failure ends the run (the containers' steps all run first).
    pub async fn teardown(&self, plan: &[Teardown]) -> Result<Vec<Teardown>> {
        let (containers, rest): (Vec<&Teardown>, Vec<&Teardown>) = plan.iter().partition(|step| {
            matches!(
                step,
                Teardown::Stop { .. } | Teardown::Restart { .. } | Teardown::Remove { .. }
            )
        });
        let runs = containers.iter().map(|step| self.teardown_step(step));
        let mut done = Vec::new();
        let mut failure = None;
        for (step, result) in containers
            .iter()
            .zip(futures_util::future::join_all(runs).await)
        {
            match result {
                Ok(()) => done.push((*step).clone()),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        for step in rest {
            self.teardown_step(step).await?;
            done.push(step.clone());
        }
        Ok(done)
    }

    async fn teardown_step(&self, step: &Teardown) -> Result<()> {
        match step {
            Teardown::Stop { container, .. } => self.stop(container, Grace::Own).await,
            Teardown::Restart { container, .. } => self.restart(container).await,
            Teardown::Remove {
                container, volumes, ..
            } => {
                let volumes = match volumes {
                    true => Volumes::All,
                    false => Volumes::Keep,
                };
                self.remove(container, Grace::Own, volumes).await
            }
            Teardown::RemoveNetwork { name } => self.remove_network(name).await,
            Teardown::RemoveVolume { name } => self.remove_volume(name).await,
        }
    }
}
