//! `STACK_PREVIEW_SEED=backup`: a new preview's database starts from the newest verified
//! dump of its environment. Before anything of the preview exists, a one-off container
//! of the environment's backup image (no network, none of its secrets) finds the dump in
//! the environment's backup target, mounted read-only; once the preview is claimed, a
//! second one copies it, with the script that restores it, into the preview's own seed
//! volume. The preview's Postgres mounts that volume as its first-start folder
//! ([`crate::model::preview::SEED_TARGET`]), so the restore runs on its empty data
//! volume before it listens on the network: before its health check passes and before
//! any service that depends on it starts. The environment's volumes and database are
//! never written, and never read but for the dump file.

use std::time::Duration;

use super::super::{server_placement, Context};
use crate::config::Server;
use crate::deploy::Remote;
use crate::engine::oneoff::Ended;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::preview::SEED_VOLUME;
use crate::model::{Desired, DesiredService, HostPath, Mount, Network, Secrets};

/// The environment's service whose image (the postgres image) runs the steps.
const BACKUP: &str = "backup";

/// The environment's dump to seed a preview from, and how to reach it.
pub(super) struct SeedSource {
    pub(super) dump: String,
    /// The environment's current release, for the backup image and its target.
    desired: Desired,
    /// The environment's backup target on the server's host.
    target: String,
}

/// The newest verified dump of environment `env` (its current release's backup target);
/// an error saying what to do when there is none. Creates nothing.
pub(super) async fn newest_dump(
    context: &Context,
    (remote, server): (&Remote, &Server),
    engine: &Engine,
    env: &str,
) -> Result<SeedSource> {
    let none = |why: String, hint: String| Error::Outside {
        message: format!("the preview cannot be seeded from a backup of `{env}`: {why}"),
        causes: Vec::new(),
        hint: Some(format!("{hint}; nothing of the preview was created")),
    };
    let Some(current) = remote.current()? else {
        return Err(none(
            "nothing is deployed there".into(),
            format!("deploy it first: `stack deploy {env}`"),
        ));
    };
    let (desired, _) = remote.desired(&current)?;
    let Some(backup) = desired.service(BACKUP) else {
        return Err(none(
            format!("its current release `{current}` runs no backup service"),
            format!("deploy `{env}` with `BACKUP_ENABLED=true`"),
        ));
    };
    let target = match backup_target(backup) {
        Some(Mount::Bind { source, .. }) => Some(
            server_placement(server)
                .resolve(source)
                .to_string_lossy()
                .into_owned(),
        ),
        Some(Mount::Volume { name, .. }) => {
            engine.volume_mountpoint(&desired.volume_name(name)).await?
        }
        _ => None,
    };
    let Some(target) = target else {
        return Err(none(
            "its backup target is not on the server".into(),
            format!("run `stack backup run --on {env}` first"),
        ));
    };
    let mut source = SeedSource {
        dump: String::new(),
        desired,
        target,
    };
    let lines = step(context, engine, &source, &["find"], None).await?;
    for line in &lines {
        if let Some(dump) = line.strip_prefix("dump ") {
            source.dump = dump.to_string();
            return Ok(source);
        }
    }
    let unverified = lines.iter().find_map(|l| l.strip_prefix("unverified "));
    Err(match unverified {
        Some(count) => none(
            format!("none of its {count} dump(s) is verified"),
            format!("verify the newest with `stack backup verify --on {env}`"),
        ),
        None => none(
            "it has no dump yet".into(),
            format!(
                "take one with `stack backup run --on {env}`, then `stack backup verify --on {env}`"
            ),
        ),
    })
}

/// Has the preview `project` its seed volume already (it was seeded before)?
pub(super) async fn seeded(engine: &Engine, project: &str) -> Result<bool> {
    let volume = format!("{project}_{SEED_VOLUME}");
    Ok(engine.volume_mountpoint(&volume).await?.is_some())
}

/// Copy the dump into the preview `project`'s seed volume (made here, labelled as the
/// preview's, so `preview down` removes it), unless that volume exists already (the
/// preview was seeded, or its Postgres initialised, before).
pub(super) async fn fill(
    context: &Context,
    engine: &Engine,
    source: &SeedSource,
    project: &str,
) -> Result<()> {
    if seeded(engine, project).await? {
        return Ok(());
    }
    let volume = format!("{project}_{SEED_VOLUME}");
    context.printer.status(format!(
        "seeding the preview's database from `{}` of `{}`",
        source.dump, source.desired.env
    ));
    engine.create_volume(project, &volume, SEED_VOLUME).await?;
    let copied = step(
        context,
        engine,
        source,
        &["copy", &source.dump],
        Some(project),
    )
    .await;
    if copied.is_err() {
        let _ = engine.remove_volume(&volume).await;
    }
    copied.map(|_| ())
}

/// The backup service's mount of its target (`/backups`).
fn backup_target(service: &DesiredService) -> Option<&Mount> {
    service.mounts.iter().find(|m| match m {
        Mount::Bind { target, .. } | Mount::Volume { target, .. } => target == "/backups",
        _ => false,
    })
}

/// Run `seed.sh ARGS` in a one-off container of the environment's backup image, with no
/// network and none of its environment: the target read-only at `/from` and, for
/// `copy`, the seed volume of the preview `into` at `/to`. Its `::` lines.
async fn step(
    context: &Context,
    engine: &Engine,
    source: &SeedSource,
    args: &[&str],
    into: Option<&str>,
) -> Result<Vec<String>> {
    let mut desired = source.desired.clone();
    desired.project = into.map_or(desired.project.clone(), str::to_string);
    desired.networks = vec![Network {
        name: "none".into(),
        internal: false,
        external: true,
    }];
    let Some(mut service) = source.desired.service(BACKUP).cloned() else {
        return Err(Error::outside("the environment runs no backup service"));
    };
    let script = crate::render::preview::seed_script()?;
    service.options.entrypoint = Some(vec!["sh".into(), "-c".into(), script, "seed.sh".into()]);
    service.env = Default::default();
    service.secret_files = Vec::new();
    service.networks = vec!["none".into()];
    service.mounts = vec![Mount::Bind {
        source: HostPath::Host(source.target.clone().into()),
        target: "/from".into(),
        read_only: true,
    }];
    if into.is_some() {
        service.mounts.push(Mount::Volume {
            name: SEED_VOLUME.into(),
            target: "/to".into(),
            read_only: false,
        });
    }
    let command: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let placement = crate::model::Placement {
        root: "/".into(),
        bundle: "/".into(),
    };
    let mut machine = Vec::new();
    let ran = engine
        .run_oneoff(
            &desired,
            &service,
            (&command, "seed"),
            (&placement, &Secrets::default()),
            (Duration::from_secs(3600), |line: &str| {
                match line.strip_prefix("::") {
                    Some(data) => machine.push(data.to_string()),
                    None => context.printer.status(format!("  {line}")),
                }
            }),
        )
        .await?;
    match ran.ended {
        Ended::Exited(0) => Ok(machine),
        ended => Err(Error::Outside {
            message: format!(
                "the environment's dump could not be read for the preview ({ended:?})"
            ),
            causes: ran.last_lines,
            hint: Some(
                "see `stack backup list --on ENV` and `stack backup verify --on ENV`".into(),
            ),
        }),
    }
}
