//! `stack rollback ENV [RELEASE]`, and the way back a failed deploy takes. A rollback is
//! worked out first ([`prepare`]: the release's desired state against the server's
//! engine, [`steps::rollback`]); `--dry-run` prints those steps, the real run records
//! each as it performs it, and the two lists are the same (tests/deploy.rs).

use serde_json::json;

use super::super::{runtime, server_engine, server_of, server_placement, Context};
use super::ship::{converge, install_unit};
use crate::cli::RollbackArgs;
use crate::deploy::steps::{self, Journal, Step};
use crate::deploy::{pin, Release, Remote};
use crate::engine::converge::Converger;
use crate::engine::{Engine, SwarmAction};
use crate::error::{Diagnostic, Error, Result};
use crate::model::Placement;
use crate::notify::Event;
use crate::plan::{self, Action, Observed};
use crate::printer::Progress;

/// A rollback worked out before anything changes.
pub(super) struct Back {
    /// The saved release's desired state on the server's engine (release commands off:
    /// they ran when it was deployed).
    target: Converger,
    observed: Observed,
    /// The container actions (compose; none for swarm).
    actions: Vec<Action>,
    /// The swarm plan (`STACK_TARGET=swarm`).
    swarm: Option<Vec<SwarmAction>>,
}

impl Back {
    /// The steps of the rollback, in the order they run.
    fn steps(&self) -> Vec<Step> {
        let swarm = self
            .swarm
            .as_ref()
            .map(|actions| actions.iter().map(steps::swarm).collect());
        steps::rollback(&self.actions, swarm)
    }
}

/// Work out going back to release `id`: its saved desired state, what the engine has, the
/// actions. With `fetch`, images that are missing and not pinned are pulled (a dry run
/// pulls nothing); a pinned one that is gone is an error either way.
pub(super) async fn prepare(
    remote: &Remote,
    engine: &Engine,
    (placement, progress): (&Placement, &Progress),
    id: &str,
    (swarm, fetch): (bool, bool),
) -> Result<Back> {
    let (desired, secrets) = remote.desired(id)?;
    pin::check_present(&desired, engine).await?;
    let mut target = Converger::new(
        engine.clone(),
        desired,
        (placement.clone(), secrets),
        progress.clone(),
    );
    target.run_releases = false;
    target.files = Box::new(crate::deploy::files::RemoteFiles(remote.session.channel()));
    let mut observed = engine.observe(&target.desired).await?;
    // Against the release gone back to: `current` points at it only once it is applied.
    observed.stale_files = target.stale_files_in(std::path::Path::new(&remote.release_dir(id)))?;
    if fetch {
        target.ensure_images(&mut observed, false, &[]).await?;
    }
    let (actions, swarm) = match swarm {
        true => (
            Vec::new(),
            Some(engine.swarm_plan(&target.desired, false).await?),
        ),
        false => (plan::plan(&target.desired, &observed, &[]), None),
    };
    Ok(Back {
        target,
        observed,
        actions,
        swarm,
    })
}

/// Apply a prepared rollback: `current` back to `id`, then the containers (or the swarm
/// services) of its plan, each step recorded in `journal`.
async fn apply(remote: &Remote, back: Back, id: &str, journal: Option<&Journal>) -> Result<()> {
    remote.switch(id)?;
    if let Some(journal) = journal {
        journal.record(Step::Switch);
    }
    let engine = back.target.engine.clone();
    // The same observed state gives the same plan as `prepare`'s (the planner is pure).
    let swarm = back.swarm.is_some();
    converge(&back.target, &engine, back.observed, (swarm, journal)).await
}

/// Go back to release `id` (a failed deploy's way back, under its lock).
pub(super) async fn rollback_to(
    remote: &Remote,
    engine: &Engine,
    place: (&Placement, &Progress),
    id: &str,
    swarm: bool,
) -> Result<()> {
    let back = prepare(remote, engine, place, id, (swarm, true)).await?;
    apply(remote, back, id, None).await
}

/// The release to go back to: the one named, else the one before current.
fn target_of(env: &str, asked: Option<&str>, releases: &[Release]) -> Result<String> {
    let current = releases.iter().position(|r| r.current);
    match asked {
        Some(id) => releases
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.id.clone())
            .ok_or_else(|| {
                Error::from(
                    Diagnostic::new(format!("no release `{id}` of `{env}` on the server"))
                        .hint(format!("list them with `stack releases {env}`")),
                )
            }),
        None => match current {
            Some(i) if i > 0 => Ok(releases[i - 1].id.clone()),
            _ => Err(
                Diagnostic::new(format!("`{env}` has no release before the current one"))
                    .hint(format!("name one: `stack rollback {env} RELEASE`"))
                    .into(),
            ),
        },
    }
}

pub fn rollback(context: &Context, args: &RollbackArgs) -> Result<()> {
    let env = args.env.clone();
    let loaded = context.load(&env)?;
    let server = server_of(&loaded)?;
    let remote = Remote::connect(&server, &env)?;
    let releases = remote.releases()?;
    let current = releases.iter().find(|r| r.current).map(|r| r.id.clone());
    let asked = args.release.as_ref().map(crate::deploy::ReleaseId::as_str);
    let target = target_of(&env, asked, &releases)?;
    let progress = Progress::new(&context.printer);
    let swarm = loaded.config.target == crate::config::Target::Swarm;
    let placement = server_placement(&server);
    runtime()?.block_on(async {
        let engine = server_engine(&remote).await?;
        let place = (&placement, &progress);
        if args.dry_run {
            let back = prepare(&remote, &engine, place, &target, (swarm, false)).await?;
            dry_run(context, &env, &target, &back);
            return Ok(());
        }
        let journal = Journal::default();
        remote.preflight_and_lock((&target, "rollback"), args.lock_wait, 0, |holder| {
            context
                .printer
                .status(format!("waiting for the deploy lock, held by: {holder}"));
        })?;
        journal.record(Step::Lock);
        let mut planned = Vec::new();
        let mut result = async {
            let back = prepare(&remote, &engine, place, &target, (swarm, true)).await?;
            planned = back.steps();
            apply(&remote, back, &target, Some(&journal)).await
        }
        .await;
        if result.is_ok() && !swarm {
            result = install_unit(context, &remote, &loaded.config.project, &target);
            if result.is_ok() {
                journal.record(Step::Unit);
            }
        }
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        let finished = remote.finish("rollback", &target, outcome, result.is_ok(), None);
        result?;
        finished?;
        journal.record(Step::Finish);
        super::followed(context, "rollback", &planned, &journal.steps());
        if context.global.json {
            context.printer.json(&json!({"env": env, "release": target, "rolled_back": true, "steps": journal.steps()}));
        }
        let event = Event::RolledBack {
            from: current,
            to: target.clone(),
            automatic: false,
        };
        super::super::notifier(context, &loaded.config)
            .send(event)
            .await;
        context
            .printer
            .status(format!("`{env}` runs release `{target}`"));
        Ok(())
    })
}

/// What a rollback would do, changing nothing: the steps of its plan.
fn dry_run(context: &Context, env: &str, target: &str, back: &Back) {
    let steps = back.steps();
    if context.global.json {
        context.printer.json(&json!({"env": env, "release": target, "dry_run": true, "actions": back.actions, "steps": steps}));
        return;
    }
    let line = |step: &Step| match step {
        Step::Switch => format!("point `current` at release `{target}`\n"),
        step => format!("{step}\n"),
    };
    context
        .printer
        .out(steps.iter().map(line).collect::<String>());
}
