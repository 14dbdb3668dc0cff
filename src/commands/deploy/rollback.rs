//! `stack rollback ENV [RELEASE]`, and the way back a failed deploy takes.

use super::super::{runtime, server_engine, server_of, server_placement, Context};
use super::ship::{converge, install_unit};
use crate::cli::RollbackArgs;
use crate::deploy::{pin, Remote};
use crate::engine::converge::Converger;
use crate::engine::Engine;
use crate::error::{Diagnostic, Error, Result};
use crate::model::Placement;
use crate::notify::Event;
use crate::printer::Progress;

pub(super) async fn rollback_to(
    remote: &Remote,
    engine: &Engine,
    (placement, progress): (&Placement, &Progress),
    id: &str,
    swarm: bool,
) -> Result<()> {
    let (desired, secrets) = remote.desired(id)?;
    pin::check_present(&desired, engine).await?;
    let mut target = Converger::new(
        engine.clone(),
        desired,
        (placement.clone(), secrets),
        progress.clone(),
    );
    target.run_releases = false;
    remote.switch(id)?;
    let mut observed = engine.observe(&target.desired).await?;
    target.ensure_images(&mut observed, false, &[]).await?;
    converge(&target, engine, observed, (swarm, None)).await
}

pub fn rollback(context: &Context, args: &RollbackArgs) -> Result<()> {
    let env = args.env.clone();
    let wait = args.lock_wait;
    let loaded = context.load(&env)?;
    let server = server_of(&loaded)?;
    let remote = Remote::connect(&server, &env)?;
    let releases = remote.releases()?;
    let current = releases.iter().position(|r| r.current);
    let target = match &args.release {
        Some(id) => releases
            .iter()
            .find(|r| &r.id == id)
            .map(|r| r.id.clone())
            .ok_or_else(|| {
                Error::from(
                    Diagnostic::new(format!("no release `{id}` of `{env}` on the server"))
                        .hint(format!("list them with `stack releases {env}`")),
                )
            })?,
        None => match current {
            Some(i) if i > 0 => releases[i - 1].id.clone(),
            _ => {
                return Err(Diagnostic::new(format!(
                    "`{env}` has no release before the current one"
                ))
                .hint(format!("name one: `stack rollback {env} RELEASE`"))
                .into())
            }
        },
    };
    let progress = Progress::new(&context.printer);
    runtime()?.block_on(async {
        let engine = server_engine(&remote).await?;
        remote.preflight_and_lock((&target, "rollback"), wait, 0, |holder| {
            context
                .printer
                .status(format!("waiting for the deploy lock, held by: {holder}"));
        })?;
        let swarm = loaded.config.target == crate::config::Target::Swarm;
        let placement = server_placement(&server);
        let mut result =
            rollback_to(&remote, &engine, (&placement, &progress), &target, swarm).await;
        if result.is_ok() && !swarm {
            result = install_unit(context, &remote, &loaded.config.project, &target);
        }
        let outcome = if result.is_ok() {
            "ok".to_string()
        } else {
            "failed".to_string()
        };
        let finished = remote.finish("rollback", &target, &outcome, result.is_ok(), None);
        result?;
        finished?;
        let current = current.map(|i| releases[i].id.clone());
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
