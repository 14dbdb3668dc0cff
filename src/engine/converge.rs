//! Executing a plan: images, then containers over the dependency graph (a service as
//! soon as the ones it depends on are ready, a few at once), waiting for readiness driven
//! by the engine's event stream. Replaced containers stop in the background; every stop
//! is waited for, and its failure reported, before the plan counts as applied.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::broadcast;

use super::oneoff::Ended;
use super::proxy::{copies, HostFiles, LocalFiles};
use super::rolling::{retire_all, Retiring};
use super::spec::Inherited;
use super::{Engine, Grace, Volumes};
use crate::config::attrs::image::PullPolicy;
use crate::error::{Error, Result};
use crate::model::{Desired, DesiredService, Placement, Secrets};
use crate::plan::{Action, Observed};
use crate::printer::Progress;

/// How many services roll out at once. A service holds a slot from when the services it
/// depends on are ready until its own new containers are; its old ones stop after that,
/// in the background, without a slot.
const PARALLEL_SERVICES: usize = 4;

/// Convergence of one project on one engine.
pub struct Converger {
    pub engine: Engine,
    pub desired: Arc<Desired>,
    /// Where the project and the bundle are on the engine's host.
    pub placement: Placement,
    /// The values of the desired state's secret references.
    pub secrets: Secrets,
    pub progress: Progress,
    /// `STACK_HEALTH_TIMEOUT`, from the desired state.
    pub timeout: Duration,
    /// `STACK_DRAIN`, from the desired state.
    pub drain: Duration,
    /// A deploy's release that `current` does not point at yet: see [`Staged`].
    pub staged: Option<Staged>,
    /// Run `RELEASE` commands (not when going back to a release that ran them already:
    /// a rollback, or the unit bringing a deployed release up again).
    pub run_releases: bool,
    /// The engine's host's files, where the proxy's copies are kept ([`super::proxy`]).
    pub files: Box<dyn HostFiles>,
    pub(super) events: broadcast::Sender<String>,
}

/// A deploy's new release, uploaded but not yet switched to: release commands run with
/// its files, and `switch` points `current` at it right before the first container
/// changes, so a failed release command leaves `current` where it was.
pub struct Staged {
    /// The release directory on the engine's host.
    pub bundle: std::path::PathBuf,
    pub switch: Box<dyn Fn() -> Result<()>>,
    /// Whether `switch` ran.
    pub switched: std::cell::Cell<bool>,
}

impl Converger {
    pub fn new(
        engine: Engine,
        desired: Desired,
        (placement, secrets): (Placement, Secrets),
        progress: Progress,
    ) -> Self {
        let (events, _) = broadcast::channel(256);
        let converger = Converger {
            engine,
            timeout: desired.rollout.health_timeout,
            drain: desired.rollout.drain,
            desired: Arc::new(desired),
            placement,
            secrets,
            progress,
            staged: None,
            run_releases: true,
            files: Box::new(LocalFiles),
            events,
        };
        converger.watch_events();
        converger
    }

    /// Forward the project's container events to waiters, so health waits need no polling.
    fn watch_events(&self) {
        let sender = self.events.clone();
        let stream = self.engine.events(&self.desired.project);
        tokio::spawn(async move {
            let mut stream = Box::pin(stream);
            while let Some((id, _action)) = stream.next().await {
                let _ = sender.send(id);
            }
        });
    }

    /// Build missing or forced images and pull missing ones; record their new IDs.
    pub async fn ensure_images(
        &self,
        observed: &mut Observed,
        force_build: bool,
        only: &[String],
    ) -> Result<()> {
        let wanted = |name: &str| only.is_empty() || only.iter().any(|s| s == name);
        for service in self.desired.services.iter().filter(|s| wanted(&s.name)) {
            if let Some(pinned) = &service.pinned {
                // A release's exact image is never rebuilt or pulled: a tag may have moved.
                if !observed.images.contains_key(&pinned.reference) {
                    return Err(missing_pin(&service.name, pinned));
                }
                continue;
            }
            let image = &service.image;
            let present = observed.images.contains_key(image);
            let policy = service.options.pull_policy.unwrap_or(PullPolicy::Missing);
            if let Some(build) = &service.build {
                if force_build || !present || policy == PullPolicy::Build {
                    self.progress
                        .step(&service.name, &format!("building `{image}`"));
                    self.engine
                        .build(&service.name, image, build, &self.progress)
                        .await?;
                }
            } else if policy == PullPolicy::Never && !present {
                return Err(never_pulled(&service.name, image));
            } else if !present || policy == PullPolicy::Always {
                self.engine
                    .pull_for(&service.name, image, (&self.progress, ""))
                    .await?;
            } else {
                continue;
            }
            if let Some(id) = self.engine.image_id(image).await? {
                observed.images.insert(image.clone(), id);
            }
        }
        Ok(())
    }

    /// Apply `actions`, then wait until every wanted container is ready. `observed` is
    /// what the plan was made from: a service without actions is checked against it.
    pub async fn apply(
        &self,
        actions: &[Action],
        observed: &Observed,
        only: &[String],
    ) -> Result<()> {
        for action in actions {
            match action {
                Action::CreateNetwork { name, internal } => {
                    self.engine
                        .create_network(&self.desired.project, name, *internal)
                        .await?
                }
                Action::CreateVolume { name } => {
                    let short = self
                        .desired
                        .volumes
                        .iter()
                        .find(|short| self.desired.volume_name(short) == *name)
                        .map(String::as_str)
                        .unwrap_or(name);
                    self.engine
                        .create_volume(&self.desired.project, name, short)
                        .await?
                }
                _ => {}
            }
        }
        let retiring = std::sync::Mutex::new(Vec::new());
        let mut outcome = self
            .converge_services(actions, observed, only, &retiring)
            .await;
        if outcome.is_ok() {
            outcome = self.remove_orphans(actions).await;
        }
        // Old containers still stopping: the plan is applied once they are gone.
        let retired = retire_all(retiring.into_inner().unwrap_or_else(|p| p.into_inner())).await;
        outcome.and(retired)
    }

    /// Remove the containers of services no longer in the project (their anonymous
    /// volumes are kept, as Compose's `--remove-orphans` keeps them).
    async fn remove_orphans(&self, actions: &[Action]) -> Result<()> {
        for action in actions {
            if let Action::Remove {
                service,
                container,
                reason,
            } = action
            {
                if self.desired.service(service).is_none() {
                    self.switch_staged()?;
                    self.progress
                        .step(service, &format!("removing `{container}` ({reason})"));
                    self.engine
                        .remove(container, Grace::Own, Volumes::Keep)
                        .await?;
                    self.progress.done(service, "removed");
                }
            }
        }
        Ok(())
    }

    /// Converge every wanted service, each as soon as the services it depends on are
    /// ready (not a whole level of them), at most [`PARALLEL_SERVICES`] at once. The
    /// first failure is returned; services that depend on a failed one do not start.
    /// The retirements of replaced containers are handed to `retiring`.
    async fn converge_services(
        &self,
        actions: &[Action],
        observed: &Observed,
        only: &[String],
        retiring: &std::sync::Mutex<Vec<Retiring>>,
    ) -> Result<()> {
        use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
        let wanted = |name: &str| only.is_empty() || only.iter().any(|s| s == name);
        let errors = std::sync::Mutex::new(Vec::new());
        let slots = tokio::sync::Semaphore::new(PARALLEL_SERVICES);
        let slots = &slots;
        let mut tasks: Vec<(&str, Shared<LocalBoxFuture<'_, bool>>)> = Vec::new();
        for service in self.desired.levels().into_iter().flatten() {
            // A service not asked for still has actions when a namespace it joins is
            // replaced (the plan forces them).
            let forced = || {
                actions
                    .iter()
                    .any(|a| action_service(a) == Some(service.name.as_str()))
            };
            if !wanted(&service.name) && !forced() {
                continue;
            }
            let dependencies: Vec<_> = tasks
                .iter()
                .filter(|(name, _)| service.depends_on.iter().any(|d| d.service == *name))
                .map(|(_, task)| task.clone())
                .collect();
            let mine: Vec<Action> = actions
                .iter()
                .filter(|a| action_service(a) == Some(service.name.as_str()))
                .cloned()
                .collect();
            let errors = &errors;
            let task = async move {
                for dependency in dependencies {
                    if !dependency.await {
                        return false;
                    }
                }
                // The semaphore is never closed: a slot always comes.
                let _slot = slots.acquire().await;
                match self
                    .converge_service(service, mine, observed, retiring)
                    .await
                {
                    Ok(()) => true,
                    Err(e) => {
                        errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                        false
                    }
                }
            };
            tasks.push((service.name.as_str(), task.boxed_local().shared()));
        }
        futures_util::future::join_all(tasks.iter().map(|(_, task)| task.clone())).await;
        drop(tasks);
        let first = errors
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .next();
        first.map_or(Ok(()), Err)
    }

    /// Run one service's actions in order, then wait for its containers. Old containers
    /// of a rolling update stop in the background, while the next replica (and the next
    /// service) is replaced: their retirement goes to `retiring`, even when a step failed.
    async fn converge_service(
        &self,
        service: &DesiredService,
        actions: Vec<Action>,
        observed: &Observed,
        retiring: &std::sync::Mutex<Vec<Retiring>>,
    ) -> Result<()> {
        // Only a reload (the plan's, or copies that changed since it was made).
        let untouched = actions
            .iter()
            .all(|action| matches!(action, Action::Reload { .. }));
        let pending = self.sync_proxy_files(service)?;
        let mut stopping = Vec::new();
        let result = self.run_actions(service, &actions, &mut stopping).await;
        if !stopping.is_empty() {
            let retirement = self.retire(service, stopping);
            retiring
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(retirement);
        }
        result?;
        let containers = if untouched {
            observed.containers.clone()
        } else {
            self.engine.containers(&self.desired.project).await?
        };
        // The replaced containers that are still stopping are not waited for.
        let replaced: Vec<&str> = actions
            .iter()
            .filter_map(|action| match action {
                Action::Replace {
                    container,
                    rolling: true,
                    ..
                } => Some(container.as_str()),
                _ => None,
            })
            .collect();
        let containers = containers
            .into_iter()
            .filter(|c| !replaced.contains(&c.name.as_str()))
            .collect();
        self.wait_service(service, containers).await?;
        match pending {
            Some(pending) => self.reload_in_place(service, untouched, &pending).await,
            None => Ok(()),
        }
    }

    /// Bring the copies of the files `service` reloads up to date with the bundle (the
    /// staged release's, in a deploy): the marker of copies it has not read yet, when
    /// there are some.
    fn sync_proxy_files(&self, service: &DesiredService) -> Result<Option<std::path::PathBuf>> {
        let bundle = match &self.staged {
            Some(staged) => staged.bundle.as_path(),
            None => self.placement.bundle.as_path(),
        };
        let (copies, pending) = copies(service, &self.placement, bundle);
        if copies.is_empty() {
            return Ok(None);
        }
        Ok(self.files.sync(&copies, &pending)?.then_some(pending))
    }

    /// A proxy whose container stays (`untouched`) reads its changed files in a graceful
    /// reload: the connections open through it stay open. A new or started one read
    /// them when it started.
    async fn reload_in_place(
        &self,
        service: &DesiredService,
        untouched: bool,
        pending: &std::path::Path,
    ) -> Result<()> {
        if untouched {
            self.switch_staged()?;
            self.progress
                .step(&service.name, "reloading its configuration in place");
            if let Some(refused) = self.engine.reload_proxy(&self.desired, service).await? {
                return Err(Error::Outside {
                    message: format!(
                        "service `{}`: the proxy refused its new configuration (`{}` exited {}); it keeps serving the previous one",
                        service.name, refused.step, refused.code
                    ),
                    causes: vec![refused.output],
                    hint: Some(format!("see `stack logs {}`", service.name)),
                });
            }
            self.progress.done(&service.name, "configuration reloaded");
        }
        self.files.settle(pending)
    }

    /// One service's actions, in order. A rolling replace hands back the retirement of
    /// the old container (stop, then remove), which runs on in the background.
    async fn run_actions(
        &self,
        service: &DesiredService,
        actions: &[Action],
        retiring: &mut Vec<Retiring>,
    ) -> Result<()> {
        for action in actions {
            if !matches!(action, Action::Release { .. }) {
                self.switch_staged()?;
            }
            match action {
                Action::Release { .. } => self.release(service).await?,
                Action::Start { container, .. } => {
                    self.progress.step(&service.name, "starting");
                    self.engine.start(&service.name, container).await?;
                }
                Action::Create { number, .. } => {
                    self.progress
                        .step(&service.name, &format!("creating container {number}"));
                    self.create_and_start(service, *number, (true, &[])).await?;
                }
                Action::Replace {
                    container,
                    number,
                    rolling: true,
                    ..
                } => {
                    retiring.push(self.rolling_replace(service, container, *number).await?);
                }
                Action::Replace {
                    container,
                    number,
                    rolling: false,
                    ..
                } => {
                    self.progress.step(&service.name, "recreating");
                    let inherited = self.engine.inheritance(container, service).await?;
                    self.engine
                        .remove(container, Grace::Own, Volumes::Keep)
                        .await?;
                    self.create_and_start(service, *number, (true, &inherited))
                        .await?;
                }
                Action::Remove {
                    container, reason, ..
                } => {
                    self.progress
                        .step(&service.name, &format!("removing `{container}` ({reason})"));
                    self.engine
                        .remove(container, Grace::Own, Volumes::Keep)
                        .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Point `current` at a staged release, once, before the first container changes.
    fn switch_staged(&self) -> Result<()> {
        if let Some(staged) = &self.staged {
            if !staged.switched.get() {
                (staged.switch)()?;
                staged.switched.set(true);
            }
        }
        Ok(())
    }

    /// Run the service's `RELEASE` command in a one-off container of the new version;
    /// a non-zero exit or the timeout fails the service's rollout before it starts.
    async fn release(&self, service: &DesiredService) -> Result<()> {
        if service.release.is_some() && !self.run_releases {
            self.progress.step(
                &service.name,
                "release command skipped (it ran when this release was deployed)",
            );
            return Ok(());
        }
        let placement = match &self.staged {
            Some(staged) => Placement {
                root: self.placement.root.clone(),
                bundle: staged.bundle.clone(),
            },
            None => self.placement.clone(),
        };
        run_release(
            &self.engine,
            (&self.desired, service),
            (&placement, &self.secrets),
            &self.progress,
        )
        .await
    }

    /// Create and start container `number`; `in_dns` and `inherited` as
    /// [`Engine::create`] takes them.
    pub(super) async fn create_and_start(
        &self,
        service: &DesiredService,
        number: u32,
        (in_dns, inherited): (bool, &[Inherited]),
    ) -> Result<String> {
        let id = self
            .engine
            .create(
                &self.desired,
                service,
                number,
                (&self.placement, &self.secrets),
                (in_dns, inherited),
            )
            .await?;
        if let Err(e) = self.engine.start(&service.name, &id).await {
            // Do not leave a container behind that can never start (nor the volumes
            // made for it; inherited ones stay, `Volumes::Own`).
            let _ = self.engine.remove(&id, Grace::None, Volumes::Own).await;
            return Err(e);
        }
        Ok(id)
    }
}

/// Run `service`'s `RELEASE` command in a one-off container, its output prefixed
/// `<service> release | `; a non-zero exit or the timeout is an error with its last lines.
pub(super) async fn run_release(
    engine: &Engine,
    (desired, service): (&Desired, &DesiredService),
    place: (&Placement, &Secrets),
    progress: &Progress,
) -> Result<()> {
    let Some(release) = &service.release else {
        return Ok(());
    };
    let shown = shell_words::join(&release.command);
    progress.step(&service.name, &format!("running release command `{shown}`"));
    let prefix = format!("{} release | ", service.name);
    let run = engine
        .run_oneoff(
            desired,
            service,
            (&release.command, "release"),
            place,
            (release.timeout, |line: &str| {
                progress.line(&format!("{prefix}{}", crate::printer::escape(line)))
            }),
        )
        .await?;
    let what = match run.ended {
        Ended::Exited(0) => {
            progress.step(&service.name, "release command done");
            return Ok(());
        }
        Ended::Exited(code) => format!("exited {code}"),
        Ended::TimedOut(timeout) => format!(
            "ran longer than its timeout ({}) and was stopped",
            crate::config::values::compose_duration(timeout)
        ),
    };
    let mut message = format!(
        "service `{}`: the release command `{shown}` {what}; no container of the new \
         version was started and the previous one keeps serving",
        service.name
    );
    if !run.last_lines.is_empty() {
        message.push_str("\nits last lines:");
        for line in &run.last_lines {
            message.push_str(&format!("\n  {}", crate::printer::escape(line)));
        }
    }
    Err(Error::No(message))
}

/// The error for a release whose pinned image is gone from the engine.
/// `PULL_POLICY=never` and the image is not on the engine: an outside failure (exit 3).
fn never_pulled(service: &str, image: &str) -> Error {
    Error::outside(format!(
        "service `{service}`: the image `{image}` is not on the engine, and its `PULL_POLICY` is `never`"
    ))
    .with_hint(format!(
        "put it there first (`docker pull {image}`, `docker load`), or set the service's `PULL_POLICY=missing`"
    ))
}

pub fn missing_pin(service: &str, pinned: &crate::model::Pinned) -> Error {
    Error::No(format!(
        "service `{service}`: the image of this release, `{}` ({}), is no longer on the engine; \
         it was pruned with an old release, so this release cannot be started again",
        pinned.reference,
        &pinned.id[..pinned.id.len().min(19)]
    ))
}

fn action_service(action: &Action) -> Option<&str> {
    match action {
        Action::Start { service, .. }
        | Action::Release { service, .. }
        | Action::Create { service, .. }
        | Action::Replace { service, .. }
        | Action::Remove { service, .. }
        | Action::Reload { service } => Some(service),
        _ => None,
    }
}
