//! A release pins its exact images: every service's image ID is resolved at deploy time
//! and tagged `<project>-<service>:<release-id>` on the server (and, for `BUILD`
//! services, where they are built), so no later build, pull or moved tag changes what a
//! release runs, and a rollback restores the code. Tags of pruned releases are removed.

use std::collections::{BTreeMap, BTreeSet};

use super::steps::{Journal, Step};
use super::ReleaseId;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{Desired, Pinned};
use crate::printer::Progress;

/// The tag that pins `service`'s image for `release`.
pub fn release_tag(project: &str, service: &str, release: &str) -> String {
    format!("{project}-{service}:{release}")
}

/// Service → image ID of every `BUILD` service, as built here (a dry run builds
/// nothing and reads what is there).
pub async fn build_local(
    desired: &Desired,
    local: Option<&Engine>,
    progress: &Progress,
    dry_run: bool,
) -> Result<BTreeMap<String, Option<String>>> {
    let mut ids = BTreeMap::new();
    let Some(local) = local else {
        return Ok(ids);
    };
    for service in &desired.services {
        let (Some(build), image) = (&service.build, &service.image) else {
            continue;
        };
        if !dry_run {
            progress.step(&service.name, &format!("building `{image}` locally"));
            local.build(&service.name, image, build, progress).await?;
        }
        ids.insert(service.name.clone(), local.image_id(image).await?);
    }
    Ok(ids)
}

/// Service → image ID of what this deploy would run: `built` for `BUILD` services (from
/// [`build_local`]), the others as found on the server (pulled there first unless
/// `dry_run`; a dry run leaves a missing one unresolved).
pub async fn resolve(
    desired: &Desired,
    server: &Engine,
    (progress, dry_run, journal): (&Progress, bool, &Journal),
    mut built: BTreeMap<String, Option<String>>,
) -> Result<BTreeMap<String, Option<String>>> {
    let mut ids = BTreeMap::new();
    for service in &desired.services {
        let image = &service.image;
        if let Some(id) = built.remove(&service.name) {
            ids.insert(service.name.clone(), id);
            continue;
        }
        if server.image_id(image).await?.is_none() && !dry_run {
            server
                .pull_for(&service.name, image, (progress, " on the server"))
                .await?;
            journal.record(Step::Pull {
                service: service.name.clone(),
                image: image.clone(),
            });
        }
        ids.insert(service.name.clone(), server.image_id(image).await?);
    }
    Ok(ids)
}

/// Put every resolved image on the server under its release tag (sending `BUILD` images
/// the server lacks), and pin `desired` to those tags.
pub async fn pin(
    desired: &mut Desired,
    ids: &BTreeMap<String, Option<String>>,
    (local, server): (Option<&Engine>, &Engine),
    (release, progress, journal): (&str, &Progress, &Journal),
    shipper: &super::transfer::Shipper<'_>,
) -> Result<()> {
    let project = desired.project.clone();
    for service in &mut desired.services {
        let Some(Some(id)) = ids.get(&service.name) else {
            return Err(Error::outside(format!(
                "service `{}`: image `{}` is not on the server",
                service.name, service.image
            )));
        };
        let reference = release_tag(&project, &service.name, release);
        if let (Some(_), Some(local)) = (&service.build, local) {
            local.tag(id, &reference).await?;
            if server.image_id(id).await?.is_none() {
                progress.step(
                    &service.name,
                    &format!("sending `{}` to the server", service.image),
                );
                shipper
                    .send(
                        (&service.name, service.build.as_ref()),
                        &reference,
                        (local, server),
                        progress,
                    )
                    .await?;
                journal.record(Step::Send {
                    service: service.name.clone(),
                    image: service.image.clone(),
                });
            }
        }
        server.tag(id, &reference).await?;
        let repo_digest = server.repo_digests(id).await?.into_iter().next();
        service.pinned = Some(Pinned {
            reference,
            id: id.clone(),
            repo_digest,
        });
    }
    Ok(())
}

/// Refuse a release whose pinned images are gone, before anything is stopped.
pub async fn check_present(desired: &Desired, server: &Engine) -> Result<()> {
    for service in &desired.services {
        if let Some(pinned) = &service.pinned {
            if server.image_id(&pinned.reference).await?.is_none() {
                return Err(crate::engine::converge::missing_pin(&service.name, pinned));
            }
        }
    }
    Ok(())
}

/// Remove the release tags of the `pruned` releases on one engine. An image still tagged
/// otherwise, or used by a container, stays.
pub async fn prune(engine: &Engine, project: &str, pruned: &BTreeSet<ReleaseId>) -> Result<()> {
    if pruned.is_empty() {
        return Ok(());
    }
    for tag in engine.tags_with_prefix(&format!("{project}-")).await? {
        let (_, release) = crate::engine::split_reference(&tag);
        if ReleaseId::parse(release).is_some_and(|release| pruned.contains(&release)) {
            engine.untag(&tag).await?;
        }
    }
    Ok(())
}
