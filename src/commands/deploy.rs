//! `stack deploy ENV`, `releases`, `rollback`, `lock release`, `audit` (SPEC §4).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    missing_images, runtime, server_engine, server_of, server_placement, unleashed_server_engine,
    Context,
};
use crate::cli::{DeployArgs, EnvArg, RollbackArgs};
use crate::deploy::{pin, timestamp, transfer, Remote, Seen, Unchanged};
use crate::engine::converge::{Converger, Staged};
use crate::engine::Engine;
use crate::error::{Diagnostic, Error, Result};
use crate::model::{self, Placement};
use crate::notify::{Event, Notifier};
use crate::plan;
use crate::printer::Progress;
use crate::render::{self, Bundle};

/// Least free space on the server before a deploy starts.
const MIN_FREE_MB: u64 = 500;

/// A working tree with uncommitted changes is refused unless `--allow-dirty`.
fn check_clean(dir: &Path) -> Result<()> {
    let output = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(dir)
        .output();
    match output {
        Ok(out) if out.status.success() && !out.stdout.is_empty() => {
            Err(Diagnostic::new("the working tree has uncommitted changes")
                .hint("commit them, or pass `--allow-dirty`")
                .into())
        }
        _ => Ok(()),
    }
}

/// `<env>-<UTC time>-<digest of the bundle and the image of each service>`: two
/// releases with different code never share a digest.
fn release_id(env: &str, bundle: &Bundle, images: &BTreeMap<String, Option<String>>) -> String {
    let mut hasher = Sha256::new();
    for (path, file) in &bundle.files {
        hasher.update(path.as_bytes());
        hasher.update(file.contents.as_bytes());
    }
    for (service, id) in images {
        hasher.update(service.as_bytes());
        hasher.update(id.as_deref().unwrap_or("unresolved").as_bytes());
    }
    let digest: String = hasher.finalize()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{env}-{}-{digest}", timestamp())
}

pub fn deploy(context: &Context, args: &DeployArgs) -> Result<()> {
    let env = args.env.clone();
    let wait = args.lock_wait;
    let loaded = context.load_with_secrets(&env)?;
    let server = server_of(&loaded)?;
    let config = &loaded.config;
    gate(context, args, &loaded)?;
    let notifier = super::notifier(context, config);
    // The release id once it is known, for a failure's notification.
    let known = std::cell::RefCell::new(None::<String>);
    // The desired state does not depend on where the bundle lives; the bundle's files do,
    // so the release id digests a bundle rendered for `SERVER_PATH`.
    let (probe, desired) = render::render_all(config, Path::new(&server.path))?;
    let progress = Progress::new(&context.printer);
    // Several threads: the temporary registry starts on the server while this one waits
    // on the lock's round trips (see `Shipper::warm`).
    let runtime = super::runtime_threads()?;
    let result = runtime.block_on(async {
        // The connection is made while the images build.
        // (The master starts on this thread, which it dies with; another waits for it.)
        let connecting = crate::deploy::ssh::Session::begin(&server, true)?;
        let connecting = tokio::task::spawn_blocking(move || connecting.ready());
        let connected = async {
            let session = connecting
                .await
                .map_err(|e| Error::outside(format!("the SSH connection failed: {e}")))??;
            let remote = Remote::of(session, &server, &env)?;
            context
                .printer
                .status(format!("connected to `{}@{}`", server.user, server.host));
            Ok(std::rc::Rc::new(remote))
        };
        let building = async {
            let local = match desired.services.iter().any(|s| s.build.is_some()) {
                true => Some(Engine::connect().await?),
                false => None,
            };
            let built =
                pin::build_local(&desired, local.as_ref(), &progress, args.dry_run).await?;
            Ok::<_, Error>((local, built))
        };
        let (remote, (local, built)) = tokio::try_join!(connected, building)?;
        // Nothing changed: one round trip says so, and nothing else is done.
        let unchanged = Unchanged::of(&desired, &probe, &built);
        let fast_path = !args.dry_run && config.target == crate::config::Target::Compose;
        let pending = match fast_path {
            true => Some(remote.begin_unchanged(&unchanged)?),
            false => None,
        };
        let mut engine = unleashed_server_engine(&remote).await?;
        if let Some(pending) = pending {
            if nothing_changed(context, &remote, &engine, pending, &unchanged).await? {
                return Ok(());
            }
        }
        // The long way: from here, a connection that ends frees the lock and removes
        // the release commands' containers on the server.
        let mode = match config.image_transfer {
            crate::config::ImageTransfer::Registry => transfer::Mode::Registry,
            crate::config::ImageTransfer::Archive => transfer::Mode::Archive,
        };
        let shipper = transfer::Shipper::new(&remote, mode, &config.registry_image, &config.project);
        if !args.dry_run {
            shipper.warm(&engine, built.values().flatten().cloned().collect());
        }
        engine.leash = Some(remote.leash()?);
        let engines = (local.as_ref(), &engine);
        let ids = pin::resolve(&desired, &engine, (&progress, args.dry_run), built).await?;
        let registry_images: Vec<(String, String)> = desired
            .services
            .iter()
            .filter(|s| s.build.is_none())
            .filter_map(|s| Some((s.image.clone(), ids.get(&s.name)?.clone()?)))
            .collect();
        let fast_key = unchanged.file(&registry_images);
        let id = release_id(&env, &probe, &ids);
        *known.borrow_mut() = Some(id.clone());
        if args.dry_run {
            return dry_run(context, &engine, &desired, (&env, &id), config.target).await;
        }
        if config.target == crate::config::Target::Compose {
            refuse_foreign_unit(&remote, &config.project)?;
        }
        pre_deploy_hook(context, config, &remote, &id)?;
        let release_dir = format!("{}/releases/{id}", server.path);
        let bundle = render::render(config, Path::new(&release_dir))?;
        let previous = remote.preflight_and_lock((&id, &args.message), wait, MIN_FREE_MB, |holder| {
            context.printer.status(format!("waiting for the deploy lock, held by: {holder}"));
        })?;
        notifier.send(Event::DeployStarted { release: id.clone() }).await;
        let shipment = Shipment {
            bundle: &bundle,
            fast_key: &fast_key,
            id: &id,
            previous,
            swarm: config.target == crate::config::Target::Swarm,
            notifier: &notifier,
        };
        let mut desired = desired;
        let ship = async {
            pin::pin(&mut desired, &ids, engines, (&id, &progress), &shipper).await?;
            if shipment.swarm {
                to_nodes(&server, &desired, local.as_ref(), (mode, &config.registry_image), &progress).await?;
            }
            let place = (server_placement(&server), model::secrets(config));
            let mut converger = Converger::new(engine.clone(), desired, place, progress.clone());
            if !shipment.swarm {
                let (remote, id) = (remote.clone(), id.clone());
                converger.staged = Some(Staged {
                    bundle: release_dir.clone().into(),
                    switch: Box::new(move || remote.switch(&id)),
                    switched: std::cell::Cell::new(false),
                });
            }
            ship(context, &remote, &converger, shipment).await
        };
        let result = tokio::select! {
            result = ship => result,
            _ = tokio::signal::ctrl_c() => Err(Error::No("interrupted; the previous release keeps serving unless `current` was switched; run `stack deploy` again".into())),
        };
        let outcome = match &result {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("failed: {}", e.render().lines().next().unwrap_or_default()),
        };
        let keep = result.is_ok().then_some(config.keep_releases as usize);
        let finished = remote.finish("deploy", &id, &outcome, result.is_ok(), keep);
        result?;
        let pruned: BTreeSet<String> = finished?.into_iter().collect();
        prune_images(engines, &config.project, &pruned).await?;
        if context.global.json {
            let sent = shipper.moved.lock().map(|m| *m).unwrap_or_default();
            context.printer.json(&json!({"env": env, "release": id, "deployed": true, "images_sent": sent, "bytes": progress.totals()}));
        }
        context.printer.status(format!("deployed release `{id}` to `{}` ({env})", server.host));
        notifier.send(Event::DeploySucceeded { release: id.clone() }).await;
        post_deploy_hook(context, config, &remote, &id);
        Ok(())
    });
    if let Err(error) = &result {
        if !args.dry_run {
            let release = known.borrow_mut().take();
            let reason = first_line(error);
            runtime.block_on(notifier.send(Event::DeployFailed { release, reason }));
        }
    }
    result
}

/// Before anything connects: the production audit of a protected environment
/// (`STACK_PROTECTED`, `prod` by default; unless `--force`), a clean worktree (unless
/// `--allow-dirty`) and the pre-build hook.
fn gate(context: &Context, args: &DeployArgs, loaded: &crate::config::Loaded) -> Result<()> {
    let config = &loaded.config;
    if config.protected && !args.force {
        let findings = crate::audit::audit(loaded);
        if findings.iter().any(|f| !f.ok) {
            super::report(context, &args.env, "audit", &findings).ok();
            return Err(Error::No(format!(
                "`{}` is protected (`STACK_PROTECTED`) and its production audit failed, so nothing was deployed; fix it, or pass `--force`",
                args.env
            )));
        }
    }
    if !args.allow_dirty {
        check_clean(&config.project_dir)?;
    }
    if let (Some(command), false) = (&config.hooks.pre_build, args.dry_run) {
        let hook = super::Hook {
            name: "pre-build",
            command,
            release: "",
        };
        super::run_hook(context, config, &hook)?;
    }
    Ok(())
}

/// Finish the no-change check with what the server's engine shows; true (and said so)
/// when nothing changed.
async fn nothing_changed(
    context: &Context,
    remote: &Remote,
    engine: &Engine,
    pending: crate::deploy::Pending,
    unchanged: &Unchanged,
) -> Result<bool> {
    let seen = Seen::of(engine, unchanged).await?;
    let Some(current) = pending.finish(unchanged, &seen)? else {
        return Ok(false);
    };
    let env = &remote.env;
    if context.global.json {
        context
            .printer
            .json(&json!({"env": env, "release": current, "deployed": false, "unchanged": true}));
    }
    context.printer.status(format!(
        "nothing changed: release `{current}` is current on `{}` ({env}) and every container runs",
        remote.server.host
    ));
    Ok(true)
}

/// Before the lock: a failing pre-deploy hook changes nothing on the server. Audited.
fn pre_deploy_hook(
    context: &Context,
    config: &crate::config::Config,
    remote: &Remote,
    id: &str,
) -> Result<()> {
    let Some(command) = &config.hooks.pre_deploy else {
        return Ok(());
    };
    let hook = super::Hook {
        name: "pre-deploy",
        command,
        release: id,
    };
    let result = super::run_hook(context, config, &hook);
    let outcome = match &result {
        Ok(()) => "pre-deploy ok".to_string(),
        Err(e) => format!("pre-deploy failed: {}; nothing was deployed", first_line(e)),
    };
    let _ = remote.audit("hook", id, &outcome);
    result.map_err(|e| {
        Error::No(format!(
            "{}; nothing was deployed",
            e.render().trim_start_matches("error: ").trim_end()
        ))
    })
}

/// The release is live: a failing post-deploy hook is reported, not rolled back. Audited.
fn post_deploy_hook(context: &Context, config: &crate::config::Config, remote: &Remote, id: &str) {
    let Some(command) = &config.hooks.post_deploy else {
        return;
    };
    let hook = super::Hook {
        name: "post-deploy",
        command,
        release: id,
    };
    let outcome = match super::run_hook(context, config, &hook) {
        Ok(()) => "post-deploy ok".to_string(),
        Err(e) => {
            let first = first_line(&e);
            context.printer.warn(&Diagnostic::new(format!(
                "{first}; the release stays deployed"
            )));
            format!("post-deploy failed: {first}")
        }
    };
    let _ = remote.audit("hook", id, &outcome);
}

/// An error's first line, without `error: `.
fn first_line(error: &Error) -> String {
    error
        .render()
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string()
}

/// A swarm's other machines (`SERVER_NODES`) get the pinned images of `BUILD` services
/// the same way the manager did, each over its own SSH connection, so a task scheduled
/// there finds its image without a registry. Images from a registry are pulled by each
/// node itself.
async fn to_nodes(
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
        let engine = super::unleashed_server_engine(&remote).await?;
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
                    .send(&service.name, &pinned.reference, (local, &engine), progress)
                    .await?;
            }
            engine.tag(&pinned.id, &pinned.reference).await?;
        }
    }
    Ok(())
}

/// Remove the pinned images of the `pruned` releases, on the server and where `BUILD`
/// images were built.
async fn prune_images(
    (local, server): (Option<&Engine>, &Engine),
    project: &str,
    pruned: &BTreeSet<String>,
) -> Result<()> {
    pin::prune(server, project, pruned).await?;
    if let Some(local) = local {
        pin::prune(local, project, pruned).await?;
    }
    Ok(())
}

/// What a deploy would do, changing nothing.
async fn dry_run(
    context: &Context,
    engine: &Engine,
    desired: &model::Desired,
    (env, id): (&str, &str),
    target: crate::config::Target,
) -> Result<()> {
    let swarm = target == crate::config::Target::Swarm;
    let observed = engine.observe(desired).await?;
    let actions = if swarm {
        Vec::new()
    } else {
        plan::plan(desired, &observed, &[])
    };
    let mut lines = vec![format!("upload release `{id}` and point `current` at it")];
    if swarm {
        lines.extend(desired.services.iter().map(|s| {
            format!(
                "{}: create or update swarm service `{}` ({} replica(s), start-first)",
                s.name,
                crate::engine::swarm_service_name(&desired.project, &s.name),
                s.replicas
            )
        }));
    }
    lines.extend(missing_images(desired, &observed, "build locally and send"));
    lines.extend(actions.iter().map(|a| a.to_string()));
    if context.global.json {
        context
            .printer
            .json(&json!({"env": env, "release": id, "dry_run": true, "actions": actions}));
    } else {
        context
            .printer
            .out(lines.iter().map(|l| format!("{l}\n")).collect::<String>());
    }
    Ok(())
}

/// What one deploy ships.
struct Shipment<'a> {
    bundle: &'a Bundle,
    /// What a later deploy compares to know that nothing changed.
    fast_key: &'a str,
    id: &'a str,
    /// The release to roll back to.
    previous: Option<String>,
    /// `STACK_TARGET=swarm`.
    swarm: bool,
    notifier: &'a Notifier,
}

/// Everything a deploy changes, under the lock: upload, converge, and on failure roll
/// back to `previous`.
async fn ship(
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
        notifier,
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
    let result = converge(converger, engine, observed, swarm).await;
    let staged = converger.staged.as_ref();
    if staged.is_some_and(|s| !s.switched.get()) {
        if let Err(failure) = result {
            // Nothing changed on the server: the release never went live.
            let _ = remote.discard(id);
            return Err(failure);
        }
        remote.switch(id)?;
    } else if let Err(failure) = result {
        let Some(previous) = previous.filter(|p| p != id) else {
            return Err(failure);
        };
        context
            .printer
            .status(format!("rolling back to `{previous}`"));
        let report = failure.render();
        let place = (&converger.placement, &converger.progress);
        rollback_to(remote, engine, place, &previous, swarm).await?;
        let _ = remote.audit(
            "rollback",
            &previous,
            "automatic, after a failed health gate",
        );
        let event = Event::RolledBack {
            from: Some(id.to_string()),
            to: previous.clone(),
            automatic: true,
        };
        notifier.send(event).await;
        return Err(Error::No(format!(
            "{}the deploy of `{id}` was rolled back to `{previous}`",
            report.trim_start_matches("error: ")
        )));
    }
    if !swarm {
        install_unit(context, remote, &converger.desired.project, id)?;
    }
    Ok(())
}

/// A project whose `<project>.service` exists on the server and was not written by stack
/// (a system unit, or one written by hand) is refused before anything changes.
fn refuse_foreign_unit(remote: &Remote, project: &str) -> Result<()> {
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
fn install_unit(context: &Context, remote: &Remote, project: &str, id: &str) -> Result<()> {
    if let Some(note) = remote.install_unit(project, id)? {
        context.printer.status(format!("note: {note}"));
    }
    Ok(())
}

/// Converge the server to a saved release and point `current` at it.
/// Converge the server's engine to `converger.desired`: containers (`compose`) or a swarm
/// stack (`swarm`), with the same desired state either way.
async fn converge(
    converger: &Converger,
    engine: &Engine,
    observed: plan::Observed,
    swarm: bool,
) -> Result<()> {
    if swarm {
        return engine
            .converge_swarm(
                &converger.desired,
                (&converger.placement, &converger.secrets),
                &converger.progress,
                converger.run_releases,
            )
            .await;
    }
    let actions = plan::plan(&converger.desired, &observed, &[]);
    converger.apply(&actions, &observed, &[]).await
}

async fn rollback_to(
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
    converge(&target, engine, observed, swarm).await
}

pub fn releases(context: &Context, args: &EnvArg) -> Result<()> {
    let env = context.env_or(&args.env);
    let loaded = context.load(&env)?;
    let server = server_of(&loaded)?;
    let remote = Remote::connect(&server, &env)?;
    let releases = remote.releases()?;
    let ids: Vec<String> = releases.iter().map(|r| r.id.clone()).collect();
    let pins = remote.pins(&ids)?;
    // Which pinned images the server still has: a release without them cannot come back.
    let missing: BTreeMap<String, Vec<String>> = runtime()?.block_on(async {
        let engine = server_engine(&remote).await?;
        let mut missing = BTreeMap::new();
        for (id, images) in &pins {
            let mut gone = Vec::new();
            for (_, pinned) in images {
                if engine.image_id(&pinned.reference).await?.is_none() {
                    gone.push(pinned.reference.clone());
                }
            }
            missing.insert(id.clone(), gone);
        }
        Ok::<_, Error>(missing)
    })?;
    let rows: Vec<_> = releases
        .iter()
        .map(|r| {
            let images: Vec<_> = pins.get(&r.id).into_iter().flatten().map(|(service, p)| {
                json!({"service": service, "image": p.reference, "id": p.id, "repo_digest": p.repo_digest})
            }).collect();
            let gone = missing.get(&r.id).cloned().unwrap_or_default();
            json!({"id": r.id, "current": r.current, "images": images, "missing_images": gone, "restorable": gone.is_empty()})
        })
        .collect();
    if context.global.json {
        context.printer.json(&json!({"env": env, "releases": rows}));
        return Ok(());
    }
    if releases.is_empty() {
        context
            .printer
            .status(format!("no releases of `{env}` on `{}`", server.host));
    }
    let mut text = String::new();
    for release in &releases {
        let mark = if release.current { "*" } else { " " };
        text.push_str(&format!("{mark} {}\n", release.id));
        for (service, pinned) in pins.get(&release.id).into_iter().flatten() {
            let short = pinned.id.trim_start_matches("sha256:");
            text.push_str(&format!(
                "    {service:<16} {}\n",
                &short[..short.len().min(12)]
            ));
        }
        for gone in missing.get(&release.id).into_iter().flatten() {
            text.push_str(&format!(
                "    cannot be rolled back to: image `{gone}` is gone\n"
            ));
        }
    }
    context.printer.out(text);
    Ok(())
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
        super::notifier(context, &loaded.config).send(event).await;
        context
            .printer
            .status(format!("`{env}` runs release `{target}`"));
        Ok(())
    })
}

pub fn lock_release(context: &Context, args: &EnvArg) -> Result<()> {
    let env = context.env_or(&args.env);
    let loaded = context.load(&env)?;
    let server = server_of(&loaded)?;
    let remote = Remote::connect(&server, &env)?;
    match remote.lock_holder()? {
        None => context
            .printer
            .status(format!("the lock of `{env}` is free")),
        Some(holder) => {
            remote.unlock()?;
            remote.audit(
                "lock-release",
                "-",
                &format!("freed a lock held by {holder}"),
            )?;
            context
                .printer
                .status(format!("freed the lock of `{env}` (was: {holder})"));
            let event = Event::LockReleased { holder };
            runtime()?.block_on(super::notifier(context, &loaded.config).send(event));
        }
    }
    Ok(())
}

pub fn audit(context: &Context, args: &EnvArg) -> Result<()> {
    let env = context.env_or(&args.env);
    let loaded = context.load(&env)?;
    let server = server_of(&loaded)?;
    let remote = Remote::connect(&server, &env)?;
    let log = remote.audit_log()?;
    if context.global.json {
        let entries: Vec<_> = log
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                // `user (ssh: account from address)`: the deployer's name, then who the
                // server saw (lines written before stack recorded it have no `ssh`).
                let (user, ssh) = match f.get(1)?.split_once(" (ssh: ") {
                    Some((user, rest)) => (user, Some(rest.trim_end_matches(')'))),
                    None => (f[1], None),
                };
                (f.len() == 6).then(|| json!({"time": f[0], "user": user, "ssh": ssh, "env": f[2], "action": f[3], "release": f[4], "result": f[5]}))
            })
            .collect();
        context
            .printer
            .json(&json!({"env": env, "entries": entries}));
    } else {
        context.printer.out(log);
    }
    Ok(())
}
