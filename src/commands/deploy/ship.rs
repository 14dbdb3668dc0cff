//! Under the lock: upload the release, converge the server, roll back a failed health
//! gate, install the unit; the images of a swarm's other nodes and the pruning of old
//! release images.

use std::collections::BTreeSet;

use super::super::Context;
use super::rollback::rollback_to;
use crate::deploy::steps::{self, Journal, Step};
use crate::deploy::{pin, transfer, Remote};
use crate::engine::converge::Converger;
use crate::engine::Engine;
use crate::error::{Diagnostic, Error, Result};
use crate::model;
use crate::notify::{Event, Notifier};
use crate::plan;
use crate::printer::Progress;
use crate::render::Bundle;

/// What one deploy ships.
pub(super) struct Shipment<'a> {
    pub(super) bundle: &'a Bundle,
    /// What a later deploy compares to know that nothing changed.
    pub(super) fast_key: &'a str,
    pub(super) id: &'a str,
    /// The release to roll back to.
    pub(super) previous: Option<crate::deploy::ReleaseId>,
    /// `STACK_TARGET=swarm`.
    pub(super) swarm: bool,
    /// A preview's route, written instead of the systemd unit (a preview's containers'
    /// restart policies bring it back after a reboot).
    pub(super) route: Option<&'a crate::deploy::preview::Route>,
    pub(super) notifier: &'a Notifier,
    /// Where each step is recorded as it is performed.
    pub(super) journal: &'a Journal,
}

/// Everything a deploy changes, under the lock: upload, converge, and on failure roll
/// back to `previous`.
pub(super) async fn ship(
    context: &Context,
    remote: &Remote,
    converger: &Converger,
    shipment: Shipment<'_>,
) -> Result<()> {
    let Shipment {
        bundle,
        fast_key,
        id,
        previous,
        swarm,
        route,
        notifier,
        journal,
    } = shipment;
    let engine = &converger.engine;
    let mut observed = engine.observe(&converger.desired).await?;
    converger.ensure_images(&mut observed, false, &[]).await?;
    // A compose deploy points `current` at the release right before the first container
    // changes (after the release commands); swarm at once.
    remote.upload(
        id,
        bundle,
        &converger.desired,
        converger.staged.is_none(),
        fast_key,
    )?;
    journal.record(Step::Upload);
    if swarm {
        journal.record(Step::Switch);
    }
    let result = converge(converger, engine, observed, (swarm, Some(journal))).await;
    let staged = converger.staged.as_ref();
    if staged.is_some_and(|s| !s.switched.get()) {
        if let Err(failure) = result {
            // Nothing changed on the server: the release never went live.
            let _ = remote.discard(id);
            return Err(failure);
        }
        remote.switch(id)?;
        journal.record(Step::Switch);
    } else if let Err(failure) = result {
        let Some(previous) = previous.filter(|p| p.as_str() != id) else {
            return Err(failure);
        };
        context
            .printer
            .status(format!("rolling back to `{previous}`"));
        let report = failure.render();
        let place = (&converger.placement, &converger.progress);
        rollback_to(remote, engine, place, previous.as_str(), swarm).await?;
        let _ = remote.audit(
            "rollback",
            previous.as_str(),
            "automatic, after a failed health gate",
        );
        let event = Event::RolledBack {
            from: Some(id.to_string()),
            to: previous.to_string(),
            automatic: true,
        };
        notifier.send(event).await;
        return Err(Error::No(format!(
            "{}the deploy of `{id}` was rolled back to `{previous}`",
            report.trim_start_matches("error: ")
        )));
    }
    if let Some(route) = route {
        route_preview(context, (remote, engine), route, journal).await?;
    } else if !swarm {
        install_unit(context, remote, &converger.desired.project, id)?;
        journal.record(Step::Unit);
    }
    Ok(())
}

/// A preview's last step: its route through the environment's proxy, then (with
/// `STACK_TLS=auto`) a bounded wait for its hosts' certificates, warned about, never fatal.
async fn route_preview(
    context: &Context,
    (remote, engine): (&Remote, &crate::engine::Engine),
    route: &crate::deploy::preview::Route,
    journal: &Journal,
) -> Result<()> {
    crate::deploy::preview::apply_route(remote, engine, route).await?;
    journal.record(Step::Route {
        hosts: route.hosts.clone(),
    });
    let missing = crate::deploy::preview::settle_certificates(engine, route).await?;
    if let Some(warning) = super::preview::missing_certificates(route, &missing) {
        context.printer.warn(&warning);
    }
    Ok(())
}

/// A project whose `<project>.service` exists on the server and was not written by stack
/// (a system unit, or one written by hand) is refused before anything changes.
pub(super) fn refuse_foreign_unit(remote: &Remote, project: &str) -> Result<()> {
    match remote.foreign_unit(project)? {
        None => Ok(()),
        Some(path) => Err(Diagnostic::new(format!(
            "the server already has `{path}`, which stack did not write; deploying `{project}` would shadow it"
        ))
        .hint(format!("pick another `STACK_PROJECT`, e.g. `{project}-app`"))
        .into()),
    }
}

/// Install (or refresh) the systemd unit and start or reload it; what cannot be done is a
/// note, since the release itself is live.
pub(super) fn install_unit(
    context: &Context,
    remote: &Remote,
    project: &str,
    id: &str,
) -> Result<()> {
    if let Some(note) = remote.install_unit(project, id)? {
        context.printer.status(format!("note: {note}"));
    }
    Ok(())
}

/// Converge the server to a saved release and point `current` at it.
/// Converge the server's engine to `converger.desired`: containers (`compose`) or a swarm
/// stack (`swarm`), with the same desired state either way.
pub(super) async fn converge(
    converger: &Converger,
    engine: &Engine,
    observed: plan::Observed,
    (swarm, journal): (bool, Option<&Journal>),
) -> Result<()> {
    if swarm {
        let applied = engine
            .converge_swarm(
                &converger.desired,
                (&converger.placement, &converger.secrets),
                &converger.progress,
                converger.run_releases,
            )
            .await?;
        if let Some(journal) = journal {
            applied
                .iter()
                .for_each(|action| journal.record(steps::swarm(action)));
        }
        return Ok(());
    }
    // The proxy's copies are compared with the release uploaded (a deploy's) or chosen.
    let observed = plan::Observed {
        stale_files: converger.stale_files()?,
        ..observed
    };
    let actions = plan::plan(&converger.desired, &observed, &[]);
    if let Some(journal) = journal {
        actions
            .iter()
            .for_each(|action| journal.record(steps::container(action)));
    }
    converger.apply(&actions, &observed, &[]).await
}

/// A swarm's other machines (`SERVER_NODES`) get the pinned images of `BUILD` services
/// the same way the manager did, each over its own SSH connection, so a task scheduled
/// there finds its image without a registry. Images from a registry are pulled by each
/// node itself.
pub(super) async fn to_nodes(
    manager: &crate::config::Server,
    desired: &model::Desired,
    local: Option<&Engine>,
    (mode, registry_image): (transfer::Mode, &str),
    progress: &Progress,
) -> Result<()> {
    let Some(local) = local else {
        return Ok(());
    };
    let built: Vec<&model::DesiredService> = desired
        .services
        .iter()
        .filter(|s| s.build.is_some())
        .collect();
    if built.is_empty() {
        return Ok(());
    }
    for host in &manager.nodes {
        let node = crate::config::Server {
            host: host.clone(),
            nodes: Vec::new(),
            ..manager.clone()
        };
        let remote = Remote::connect(&node, "node")?;
        let engine = super::super::unleashed_server_engine(&remote).await?;
        let shipper = transfer::Shipper::new(&remote, mode, registry_image, &desired.project);
        for service in &built {
            let Some(pinned) = &service.pinned else {
                continue;
            };
            if engine.image_id(&pinned.id).await?.is_none() {
                progress.step(
                    &service.name,
                    &format!("sending `{}` to node `{host}`", service.image),
                );
                shipper
                    .send(
                        (&service.name, service.build.as_ref()),
                        &pinned.reference,
                        (local, &engine),
                        progress,
                    )
                    .await?;
            }
            engine.tag(&pinned.id, &pinned.reference).await?;
        }
    }
    Ok(())
}

/// Remove the pinned images of the `pruned` releases, on the server and where `BUILD`
/// images were built.
pub(super) async fn prune_images(
    (local, server): (Option<&Engine>, &Engine),
    project: &str,
    pruned: &BTreeSet<crate::deploy::ReleaseId>,
) -> Result<()> {
    pin::prune(server, project, pruned).await?;
    if let Some(local) = local {
        pin::prune(local, project, pruned).await?;
    }
    Ok(())
}
