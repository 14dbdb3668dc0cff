//! `stack deploy ENV`, `releases`, `rollback`, `lock release`, `audit` (SPEC §4).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

mod hooks;
mod lock;
mod preview;
mod releases;
mod rollback;
mod seed;
mod ship;

use hooks::{post_deploy_hook, pre_deploy_hook};
pub use lock::lock_release;
pub use preview::preview;
pub use releases::{audit, releases};
pub use rollback::rollback;
use ship::{prune_images, refuse_foreign_unit, ship, to_nodes, Shipment};

use super::{server_of, server_placement, unleashed_server_engine, Context};
use crate::cli::DeployArgs;
use crate::deploy::files::RemoteFiles;
use crate::deploy::steps::{self, Journal, Step};
use crate::deploy::{pin, timestamp, transfer, Remote, Seen, Unchanged};
use crate::engine::converge::{Converger, Staged};
use crate::engine::Engine;
use crate::error::{Diagnostic, Error, Result};
use crate::model;
use crate::notify::{Event, Notifier};
use crate::plan;
use crate::printer::Progress;
use crate::render::Bundle;

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
    let loaded = context.load_with_secrets(&args.env)?;
    deploy_loaded(context, args, &loaded, None)
}

/// Deploy `loaded` (an environment, or a preview of one: `config.preview`).
fn deploy_loaded(
    context: &Context,
    args: &DeployArgs,
    loaded: &crate::config::Loaded,
    route: Option<&crate::deploy::preview::Route>,
) -> Result<()> {
    let server = server_of(loaded)?;
    gate(context, args, loaded)?;
    let notifier = super::notifier(context, &loaded.config);
    // The release id once it is known, for a failure's notification.
    let known = std::cell::RefCell::new(None::<String>);
    // Several threads: the temporary registry starts on the server while this one waits
    // on the lock's round trips (see `Shipper::warm`).
    let runtime = super::runtime_threads()?;
    let run = Run {
        context,
        args,
        config: &loaded.config,
        server: &server,
        notifier: &notifier,
        known: &known,
        route,
    };
    let result = runtime.block_on(run.deploy());
    if let Err(error) = &result {
        if !args.dry_run {
            let release = known.borrow_mut().take();
            let reason = first_line(error);
            runtime.block_on(notifier.send(Event::DeployFailed { release, reason }));
        }
    }
    result
}

/// One deploy: what it was asked and what it knows.
struct Run<'a> {
    context: &'a Context,
    args: &'a DeployArgs,
    config: &'a crate::config::Config,
    server: &'a crate::config::Server,
    notifier: &'a Notifier,
    /// The release id once it is known, for a failure's notification.
    known: &'a std::cell::RefCell<Option<String>>,
    /// A preview's route through its environment's proxy.
    route: Option<&'a crate::deploy::preview::Route>,
}

/// What a later deploy compares to know that nothing changed: the key, and the ID each
/// registry image resolved to.
fn fast_key(
    unchanged: &Unchanged,
    desired: &model::Desired,
    ids: &BTreeMap<String, Option<String>>,
) -> String {
    let registry_images: Vec<(String, String)> = desired
        .services
        .iter()
        .filter(|s| s.build.is_none())
        .filter_map(|s| Some((s.image.clone(), ids.get(&s.name)?.clone()?)))
        .collect();
    unchanged.file(&registry_images)
}

/// What the first phase of a deploy found: the connection, the engines, the images built
/// here.
struct Connected {
    remote: std::rc::Rc<Remote>,
    local: Option<Engine>,
    built: BTreeMap<String, Option<String>>,
}

impl Run<'_> {
    async fn deploy(&self) -> Result<()> {
        let (context, args, config) = (self.context, self.args, self.config);
        // The desired state does not depend on where the bundle lives; the bundle's files
        // do, so the release id digests a bundle rendered for `SERVER_PATH`.
        let (probe, desired) = super::bundle_of(config, Path::new(&self.server.path))?;
        let progress = Progress::new(&context.printer);
        let Connected {
            remote,
            local,
            built,
        } = self.connect(&desired, &progress).await?;
        // Nothing changed: one round trip says so, and nothing else is done.
        let unchanged = Unchanged::of(&desired, &probe, &built);
        // (A dry run asks the same, taking no lock and writing nothing.)
        let pending = match config.target == crate::config::Target::Compose {
            true => Some(remote.begin_unchanged(&unchanged, args.dry_run)?),
            false => None,
        };
        let mut engine = unleashed_server_engine(&remote).await?;
        if let Some(pending) = pending {
            if nothing_changed(
                context,
                (&remote, args.dry_run),
                &engine,
                pending,
                &unchanged,
            )
            .await?
            {
                return Ok(());
            }
        }
        // The long way: from here, a connection that ends frees the lock and removes
        // the release commands' containers on the server.
        let mode = match config.image_transfer {
            crate::config::ImageTransfer::Registry => transfer::Mode::Registry,
            crate::config::ImageTransfer::Archive => transfer::Mode::Archive,
        };
        let shipper =
            transfer::Shipper::new(&remote, mode, &config.registry_image, &config.project);
        if !args.dry_run {
            shipper.warm(&engine, built.values().flatten().cloned().collect());
        }
        engine.leash = Some(remote.leash()?);
        let (planned, actions) = self
            .plan(&engine, &desired, (&built, &remote, &probe))
            .await?;
        let journal = Journal::default();
        let resolving = (&progress, args.dry_run, &journal);
        let ids = pin::resolve(&desired, &engine, resolving, built).await?;
        let fast_key = fast_key(&unchanged, &desired, &ids);
        let id = release_id(&args.env, &probe, &ids);
        *self.known.borrow_mut() = Some(id.clone());
        if args.dry_run {
            return dry_run(context, &args.env, &id, (&planned, &actions));
        }
        let long = Long {
            remote: &remote,
            engines: (local.as_ref(), &engine),
            shipper: &shipper,
            mode,
            ids: &ids,
            fast_key: &fast_key,
            progress: &progress,
            journal: &journal,
        };
        self.long_way(desired.clone(), &id, long).await?;
        // A host without a certificate does not fail the deploy: it is named here.
        engine.report_certificates(&desired, &context.printer).await;
        followed(context, "deploy", &planned, &journal.steps());
        Ok(())
    }

    /// The services whose copies on the server differ from this deploy's `bundle` (the
    /// proxy, when its configuration changed): the plan reloads them in place.
    fn stale_files(
        &self,
        desired: &model::Desired,
        remote: &Remote,
        bundle: &Bundle,
    ) -> Result<std::collections::BTreeSet<String>> {
        use crate::engine::proxy::HostFiles;
        let files = crate::deploy::files::RemoteFiles(remote.session.channel());
        let placement = server_placement(self.server);
        let mut stale = std::collections::BTreeSet::new();
        for service in &desired.services {
            let (copies, pending) =
                crate::engine::proxy::copies(service, &placement, Path::new(""));
            let contents: Vec<(&str, std::path::PathBuf)> = copies
                .into_iter()
                .map(|(rel, to)| {
                    let rel = rel.to_string_lossy();
                    let text = bundle
                        .files
                        .get(rel.as_ref())
                        .map_or("", |f| f.contents.as_str());
                    (text, to)
                })
                .collect();
            if !contents.is_empty() && files.stale_contents(&contents, &pending)? {
                stale.insert(service.name.clone());
            }
        }
        Ok(stale)
    }

    /// The steps of the long way (and the container actions among them), from what the
    /// server's engine has: what `--dry-run` prints and the real deploy performs.
    async fn plan(
        &self,
        engine: &Engine,
        desired: &model::Desired,
        (built, remote, bundle): (&BTreeMap<String, Option<String>>, &Remote, &Bundle),
    ) -> Result<(Vec<Step>, Vec<plan::Action>)> {
        let (mut pull, mut send) = (Vec::new(), Vec::new());
        for service in &desired.services {
            let named = (service.name.clone(), service.image.clone());
            match built.get(&service.name) {
                Some(Some(id)) if engine.image_id(id).await?.is_some() => {}
                Some(_) => send.push(named),
                None if engine.image_id(&service.image).await?.is_none() => pull.push(named),
                None => {}
            }
        }
        let swarm = self.config.target == crate::config::Target::Swarm;
        let (actions, swarm) = match swarm {
            true => {
                let planned = engine.swarm_plan(desired, true).await?;
                (Vec::new(), Some(planned.iter().map(steps::swarm).collect()))
            }
            false => {
                let mut observed = engine.observe(desired).await?;
                observed.stale_files = self.stale_files(desired, remote, bundle)?;
                (plan::plan(desired, &observed, &[]), None)
            }
        };
        let facts = steps::Facts {
            swarm,
            pull,
            send,
            actions: &actions,
            preview: self.route.map(|r| r.hosts.clone()),
        };
        Ok((steps::plan(&facts), actions))
    }

    /// Connect to the server while the `BUILD` images build here.
    async fn connect(&self, desired: &model::Desired, progress: &Progress) -> Result<Connected> {
        // (The master starts on this thread, which it dies with; another waits for it.)
        let connecting = crate::deploy::ssh::Session::begin(self.server, true)?;
        let connecting = tokio::task::spawn_blocking(move || connecting.ready());
        let connected = async {
            let session = connecting
                .await
                .map_err(|e| Error::outside(format!("the SSH connection failed: {e}")))??;
            let remote = Remote::of(session, self.server, &self.args.env)?;
            self.context.printer.status(format!(
                "connected to `{}@{}`",
                self.server.user, self.server.host
            ));
            Ok(std::rc::Rc::new(remote))
        };
        let building = async {
            let local = match desired.services.iter().any(|s| s.build.is_some()) {
                true => Some(Engine::connect().await?),
                false => None,
            };
            let built =
                pin::build_local(desired, local.as_ref(), progress, self.args.dry_run).await?;
            Ok::<_, Error>((local, built))
        };
        let (remote, (local, built)) = tokio::try_join!(connected, building)?;
        Ok(Connected {
            remote,
            local,
            built,
        })
    }

    /// Under the lock: pin and ship the images, upload, converge, record and prune.
    async fn long_way(&self, mut desired: model::Desired, id: &str, long: Long<'_>) -> Result<()> {
        let (context, config, server) = (self.context, self.config, self.server);
        let Long {
            remote,
            engines,
            shipper,
            mode,
            ids,
            fast_key,
            progress,
            journal,
        } = long;
        let (local, engine) = engines;
        if config.target == crate::config::Target::Compose {
            refuse_foreign_unit(remote, &config.project)?;
        }
        pre_deploy_hook(context, config, remote, id)?;
        let release_dir = format!("{}/releases/{id}", server.path);
        let (bundle, _) = super::bundle_of(config, Path::new(&release_dir))?;
        let previous = remote.preflight_and_lock(
            (id, &self.args.message),
            self.args.lock_wait,
            MIN_FREE_MB,
            |holder| {
                context
                    .printer
                    .status(format!("waiting for the deploy lock, held by: {holder}"));
            },
        )?;
        journal.record(Step::Lock);
        self.notifier
            .send(Event::DeployStarted {
                release: id.to_string(),
            })
            .await;
        let shipment = Shipment {
            bundle: &bundle,
            fast_key,
            id,
            previous,
            swarm: config.target == crate::config::Target::Swarm,
            route: self.route,
            notifier: self.notifier,
            journal,
        };
        let ship = async {
            pin::pin(&mut desired, ids, engines, (id, progress, journal), shipper).await?;
            if shipment.swarm {
                to_nodes(
                    server,
                    &desired,
                    local,
                    (mode, &config.registry_image),
                    progress,
                )
                .await?;
            }
            let place = (server_placement(server), model::secrets(config));
            let mut converger = Converger::new(engine.clone(), desired, place, progress.clone());
            converger.files = Box::new(RemoteFiles(remote.session.channel()));
            if !shipment.swarm {
                converger.staged = Some(staged(remote, id, &release_dir, journal));
            }
            ship(context, remote, &converger, shipment).await
        };
        let result = tokio::select! {
            result = ship => result,
            _ = tokio::signal::ctrl_c() => Err(Error::No("interrupted; the previous release keeps serving unless `current` was switched; run `stack deploy` again".into())),
        };
        self.finish(result, (remote, engines, shipper, progress, journal), id)
            .await
    }

    /// Record the outcome, free the lock, prune, and say so.
    async fn finish(
        &self,
        result: Result<()>,
        (remote, engines, shipper, progress, journal): Finishing<'_>,
        id: &str,
    ) -> Result<()> {
        let (context, config, env) = (self.context, self.config, &self.args.env);
        let outcome = match &result {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("failed: {}", e.render().lines().next().unwrap_or_default()),
        };
        let keep = result.is_ok().then_some(config.keep_releases as usize);
        let finished = remote.finish("deploy", id, &outcome, result.is_ok(), keep);
        result?;
        let pruned: BTreeSet<_> = finished?.into_iter().collect();
        journal.record(Step::Finish);
        prune_images(engines, &config.project, &pruned).await?;
        if context.global.json {
            let sent = shipper.moved.lock().map(|m| *m).unwrap_or_default();
            context.printer.json(&json!({"env": env, "release": id, "deployed": true, "images_sent": sent, "bytes": progress.totals(), "steps": journal.steps()}));
        }
        context.printer.status(format!(
            "deployed release `{id}` to `{}` ({env})",
            self.server.host
        ));
        self.notifier
            .send(Event::DeploySucceeded {
                release: id.to_string(),
            })
            .await;
        post_deploy_hook(context, config, remote, id);
        Ok(())
    }
}

/// What the long way of a deploy works with.
struct Long<'a> {
    remote: &'a std::rc::Rc<Remote>,
    engines: (Option<&'a Engine>, &'a Engine),
    shipper: &'a transfer::Shipper<'a>,
    mode: transfer::Mode,
    ids: &'a BTreeMap<String, Option<String>>,
    fast_key: &'a str,
    progress: &'a Progress,
    journal: &'a Journal,
}

/// What [`Run::finish`] needs.
type Finishing<'a> = (
    &'a Remote,
    (Option<&'a Engine>, &'a Engine),
    &'a transfer::Shipper<'a>,
    &'a Progress,
    &'a Journal,
);

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
    (remote, dry_run): (&Remote, bool),
    engine: &Engine,
    pending: crate::deploy::Pending,
    unchanged: &Unchanged,
) -> Result<bool> {
    let seen = Seen::of(engine, unchanged).await?;
    let Some(current) = pending.finish(unchanged, &seen)? else {
        return Ok(false);
    };
    let env = &remote.env;
    let steps = [Step::Unchanged {
        release: current.to_string(),
    }];
    if dry_run {
        dry_run_unchanged(context, env, &current, &steps);
        return Ok(true);
    }
    if context.global.json {
        context.printer.json(&json!({"env": env, "release": current, "deployed": false, "unchanged": true, "steps": steps}));
    }
    context.printer.status(format!(
        "nothing changed: release `{current}` is current on `{}` ({env}) and every container runs",
        remote.server.host
    ));
    Ok(true)
}

/// Warn when what a deploy or rollback did is not what it planned (a bug, said so).
fn followed(context: &Context, what: &str, planned: &[Step], done: &[Step]) {
    if done != planned {
        let did: Vec<String> = done.iter().map(Step::to_string).collect();
        let plan: Vec<String> = planned.iter().map(Step::to_string).collect();
        context.printer.warn(&Diagnostic::new(format!(
            "the {what} did not follow its plan: planned [{}], did [{}]",
            plan.join("; "),
            did.join("; ")
        )));
    }
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

/// What a deploy would do, changing nothing: the steps of its plan.
fn dry_run(
    context: &Context,
    env: &str,
    id: &str,
    (steps, actions): (&[Step], &[plan::Action]),
) -> Result<()> {
    if context.global.json {
        context.printer.json(
            &json!({"env": env, "release": id, "dry_run": true, "actions": actions, "steps": steps}),
        );
        return Ok(());
    }
    let line = |step: &Step| match step {
        Step::Upload => format!("upload release `{id}`\n"),
        step => format!("{step}\n"),
    };
    context
        .printer
        .out(steps.iter().map(line).collect::<String>());
    Ok(())
}

/// A dry run that finds nothing changed.
fn dry_run_unchanged(
    context: &Context,
    env: &str,
    current: &crate::deploy::ReleaseId,
    steps: &[Step],
) {
    if context.global.json {
        context.printer.json(
            &json!({"env": env, "release": current, "dry_run": true, "unchanged": true, "steps": steps}),
        );
    } else {
        context.printer.out(format!("{}\n", steps[0]));
    }
}
/// The deploy's release `id`, uploaded to `release_dir`: `current` points at it right
/// before the first container changes (a step of the journal).
fn staged(remote: &std::rc::Rc<Remote>, id: &str, release_dir: &str, journal: &Journal) -> Staged {
    let (remote, id, journal) = (remote.clone(), id.to_string(), journal.clone());
    Staged {
        bundle: release_dir.into(),
        switch: Box::new(move || {
            remote.switch(&id)?;
            journal.record(Step::Switch);
            Ok(())
        }),
        switched: std::cell::Cell::new(false),
    }
}
