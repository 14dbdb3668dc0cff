//! `stack supervise --bundle DIR`: what the systemd unit runs on a server. Converge the
//! engine to the release's saved desired state, tell systemd it is ready, then keep the
//! stack up: restart a container whose health check turns unhealthy (Docker's restart
//! policy only covers exits) and start again one that died without being stopped
//! (`docker kill`, which Docker counts as a manual stop). An environment that hosts
//! previews has them removed once idle longer than `STACK_PREVIEW_TTL` ([`previews`],
//! the same expiry as `stack preview expire`). SIGTERM stops the project's
//! containers (keeping them and their volumes) and exits; SIGHUP re-executes the binary
//! so a new release or a new stack binary takes over without touching the containers.
//! `--dry-run` prints the plan of one pass (the one `--once` applies) and changes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::signal::unix::{signal, SignalKind};

use super::{converge, print_plan, read_desired, runtime, Context};
use crate::cli::SuperviseArgs;
use crate::config::Restart;
use crate::engine::converge::Converger;
use crate::engine::scheduler::Scheduler;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{Desired, Placement};
use crate::notify::{Event, Notifier, Origin};
use crate::printer::{Printer, Progress};

/// How long after a `die` event supervise waits for Docker's own restart (or for the
/// `stop` event that marks an intended stop) before it starts the container itself.
const SETTLE: Duration = Duration::from_secs(3);

/// How often supervise rewrites the expiry of the proxy's certificates (a renewal shows
/// in Prometheus within this).
const CERTIFICATE_METRICS_EVERY: Duration = Duration::from_secs(600);

/// What supervise does about one event of a project's container ([`reaction`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reaction {
    /// Its health check turned unhealthy: restart it (Docker's policy covers exits only).
    Restart,
    /// It was stopped on purpose (`stop`, a rolling update, `docker stop`): leave its
    /// `die` alone.
    Stopped,
    /// It died: after [`SETTLE`], start it again unless it was stopped on purpose, Docker
    /// restarted it, or its restart policy says no ([`revive`]).
    Revive,
}

/// The reaction to the engine's event `action` (`health_status: unhealthy`, `stop`, …).
fn reaction(action: &str) -> Option<Reaction> {
    match action {
        // Docker's text: `health_status: unhealthy`.
        health if health.strip_prefix("health_status:").map(str::trim) == Some("unhealthy") => {
            Some(Reaction::Restart)
        }
        "stop" | "destroy" => Some(Reaction::Stopped),
        "die" => Some(Reaction::Revive),
        _ => None,
    }
}

/// What ended the watch.
enum Exit {
    /// SIGTERM or SIGINT: stop the containers.
    Stop,
    /// SIGHUP: run the binary again (new release, new stack).
    Reload,
}

pub fn run(context: &Context, args: &SuperviseArgs) -> Result<()> {
    let desired = read_desired(&args.bundle)?;
    let secrets = crate::fsio::read_secrets(&args.bundle)?;
    // `STACK_NOTIFY` reaches the server in the bundle's 0600 `.env`, like every secret.
    let origin = Origin::here(&desired.project, &desired.env);
    let notifier = Notifier::from_secrets(&secrets, origin, context.printer.clone());
    let placement = placement(&args.bundle)?;
    let progress = Progress::new(&context.printer);
    let exit = runtime()?.block_on(async {
        // Installed before the first converge, so a stop during it is not lost.
        let mut term = signal(SignalKind::terminate()).map_err(signal_error)?;
        let mut hangup = signal(SignalKind::hangup()).map_err(signal_error)?;
        let engine = Engine::connect().await?;
        let mut converger =
            Converger::new(engine.clone(), desired, (placement, secrets), progress);
        converger.run_releases = false;
        if args.dry_run {
            return print_plan(context, &converger, (&[], None)).await.map(|()| None);
        }
        let project = converger.desired.project.clone();
        notify(&format!("STATUS=converging `{project}`"));
        let actions = tokio::select! {
            result = converge(&converger, false, &[]) => result?,
            _ = term.recv() => return stop(context, &engine, &converger.desired).await.map(|()| None),
        };
        context
            .printer
            .status(format!("`{project}` is up; watching health"));
        notify(&format!("READY=1\nSTATUS=`{project}` is up; watching health"));
        if args.once {
            if context.global.json {
                let env = &converger.desired.env;
                context
                    .printer
                    .json(&serde_json::json!({"env": env, "actions": actions, "ready": true}));
            }
            return Ok(None);
        }
        let desired = Arc::new(converger.desired.clone());
        let (stop_jobs, jobs) = spawn_jobs(context, &converger, &notifier);
        let expiry = previews(context, &engine, &desired, &converger.placement);
        // Caddy's certificates for the MONITORING preset (certbot writes nginx's).
        let metrics = tokio::spawn(
            engine
                .clone()
                .keep_certificate_metrics((*desired).clone(), CERTIFICATE_METRICS_EVERY),
        );
        let signals = (&mut term, &mut hangup);
        let exit = watch(context, &engine, (&desired, &notifier), signals).await;
        if let Some(expiry) = expiry {
            expiry.abort();
        }
        match exit {
            // A reload lets the runs under way end (the next process schedules from now).
            Ok(Exit::Reload) => {
                let _ = stop_jobs.send(true);
                let _ = jobs.await;
            }
            _ => jobs.abort(),
        }
        metrics.abort();
        let exit = exit?;
        if let Exit::Stop = exit {
            notify("STOPPING=1");
            stop(context, &engine, &desired).await?;
        }
        Ok(Some(exit))
    })?;
    match exit {
        Some(Exit::Reload) => reexec(context),
        _ => Ok(()),
    }
}

/// How often supervise looks for idle previews.
const PREVIEWS_EVERY: Duration = Duration::from_secs(600);

/// An environment that hosts previews: remove those idle longer than its
/// `STACK_PREVIEW_TTL`, every [`PREVIEWS_EVERY`], with the expiry of `stack preview
/// expire` (run here, on the server, with this machine's shell and engine).
///
/// Test hook: `STACK_PREVIEWS_TICK=DURATION` looks every DURATION instead, so a test
/// sees an idle preview go without waiting ten minutes (its idleness comes from the
/// files' times, which a test sets in the past).
fn previews(
    context: &Context,
    engine: &Engine,
    desired: &Desired,
    placement: &Placement,
) -> Option<tokio::task::JoinHandle<()>> {
    let routing = desired.routing.as_ref()?;
    let ttl = routing.preview_ttl?;
    let every = std::env::var("STACK_PREVIEWS_TICK")
        .ok()
        .and_then(|t| crate::config::values::parse_duration(&t))
        .filter(|t| !t.is_zero())
        .unwrap_or(PREVIEWS_EVERY);
    let host = crate::deploy::preview::Host {
        project: desired.project.clone(),
        path: placement.root.to_string_lossy().into_owned(),
        kind: routing.kind,
    };
    let (engine, printer) = (engine.clone(), context.printer.clone());
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let now = crate::deploy::preview::now_secs();
            let expired = crate::deploy::preview::expire(
                &crate::deploy::preview::LocalShell,
                &engine,
                &host,
                (ttl, now),
                |name| {
                    printer.status(format!(
                        "removed preview `{name}`: not deployed for over {}",
                        crate::config::values::compose_duration(ttl)
                    ))
                },
            )
            .await;
            if let Err(error) = expired {
                printer.error(&error.render());
            }
        }
    }))
}

/// The jobs' scheduler: one per project, as this process is (systemd's unit); a failed
/// run is notified. The sender stops it; the handle ends when it has.
fn spawn_jobs(
    context: &Context,
    converger: &Converger,
    notifier: &Notifier,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (stop_jobs, stopping) = tokio::sync::watch::channel(false);
    let (failed, mut failures) = tokio::sync::mpsc::unbounded_channel();
    let scheduler = Scheduler {
        engine: converger.engine.clone(),
        desired: converger.desired.clone(),
        place: Arc::new((converger.placement.clone(), converger.secrets.clone())),
        printer: context.printer.clone(),
        failed: Some(failed),
    };
    let told = notifier.clone();
    tokio::spawn(async move {
        while let Some((job, code)) = failures.recv().await {
            told.send(Event::JobFailed {
                job,
                code: Some(code),
            })
            .await;
        }
    });
    (stop_jobs, tokio::spawn(scheduler.run(stopping)))
}

/// Where the release's host paths are: the unit runs `SERVER_PATH/current`; a release is
/// `SERVER_PATH/releases/<id>`.
fn placement(bundle: &std::path::Path) -> Result<Placement> {
    let bundle = std::path::absolute(bundle).map_err(|e| Error::io("resolve", bundle, e))?;
    let parent = bundle.parent().unwrap_or(&bundle);
    let root = match parent.file_name() {
        Some(name) if name == "releases" => parent.parent().unwrap_or(parent),
        _ => parent,
    }
    .to_path_buf();
    Ok(Placement { root, bundle })
}

fn signal_error(e: std::io::Error) -> Error {
    Error::outside(format!("cannot install a signal handler: {e}"))
}

/// Watch the project's container events until a signal says to stop or reload.
async fn watch(
    context: &Context,
    engine: &Engine,
    (desired, notifier): (&Arc<Desired>, &Notifier),
    (term, hangup): (
        &mut tokio::signal::unix::Signal,
        &mut tokio::signal::unix::Signal,
    ),
) -> Result<Exit> {
    // Containers stopped on purpose (a `stop` event: `stack stop`, a rolling update, `docker
    // stop`), with when: their `die` is left alone.
    let stopped: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut events = Box::pin(engine.events(&desired.project));
    loop {
        tokio::select! {
            event = events.next() => {
                let Some((id, action)) = event else {
                    return Err(Error::outside("the engine's event stream ended"));
                };
                let short = id[..12.min(id.len())].to_string();
                match reaction(&action) {
                    Some(Reaction::Restart) => {
                    context.printer.status(format!("container `{short}` is unhealthy; restarting it"));
                    match engine.restart(&id).await {
                        Ok(()) => {
                            let event = restarted(engine, &id, "its health check turned unhealthy").await;
                            tokio::spawn(notifier.clone().send_owned(event));
                        }
                        Err(e) => context.printer.error(&e.render()),
                    }
                    }
                    Some(Reaction::Stopped) => {
                    let mut stopped = stopped.lock().unwrap_or_else(|e| e.into_inner());
                    stopped.retain(|_, at| at.elapsed() < Duration::from_secs(60));
                    stopped.insert(id, Instant::now());
                    }
                    Some(Reaction::Revive) => {
                    let (engine, desired, stopped) = (engine.clone(), desired.clone(), stopped.clone());
                    let (printer, notifier) = (context.printer.clone(), notifier.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(SETTLE).await;
                        match revive(&engine, &desired, &stopped, &id, &printer).await {
                            Ok(Some(event)) => notifier.send(event).await,
                            Ok(None) => {}
                            Err(e) => printer.error(&e.render()),
                        }
                    });
                    }
                    None => {}
                }
            }
            _ = term.recv() => return Ok(Exit::Stop),
            _ = hangup.recv() => return Ok(Exit::Reload),
            _ = tokio::signal::ctrl_c() => return Ok(Exit::Stop),
        }
    }
}

/// What to notify about a container supervise restarted.
async fn restarted(engine: &Engine, id: &str, why: &str) -> Event {
    let state = engine.state(id).await.ok().flatten();
    let short = id[..12.min(id.len())].to_string();
    Event::Restarted {
        service: state
            .as_ref()
            .map(|s| s.service.clone())
            .unwrap_or_default(),
        container: state.map(|s| s.name).unwrap_or(short),
        why: why.to_string(),
    }
}

/// Start again a container that died, was not stopped on purpose, and that Docker did not
/// restart, when its service's restart policy asks for it; what to notify, if it did.
async fn revive(
    engine: &Engine,
    desired: &Desired,
    stopped: &Mutex<HashMap<String, Instant>>,
    id: &str,
    printer: &Printer,
) -> Result<Option<Event>> {
    if stopped
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(id)
    {
        return Ok(None);
    }
    let Some(state) = engine.state(id).await? else {
        return Ok(None); // removed
    };
    if state.state != "exited" {
        return Ok(None); // running again, restarting, or being removed
    }
    let Some(service) = desired.services.iter().find(|s| s.name == state.service) else {
        return Ok(None);
    };
    let code = state.exit_code.unwrap_or(0);
    let wanted = match service.restart {
        Restart::No => false,
        Restart::Always | Restart::UnlessStopped => true,
        Restart::OnFailure(_) => code != 0,
    };
    if !wanted {
        return Ok(None);
    }
    printer.status(format!(
        "container `{}` of `{}` exited ({code}) and Docker did not restart it; starting it again",
        state.name, state.service
    ));
    engine.start(&state.service, id).await?;
    Ok(Some(Event::Restarted {
        service: state.service,
        container: state.name,
        why: format!("it exited ({code}) and Docker did not restart it"),
    }))
}

/// Stop every container of the project, keeping them, their networks and volumes: the
/// plan `stack stop` makes, applied by the same executor.
async fn stop(context: &Context, engine: &Engine, desired: &Desired) -> Result<()> {
    let containers = engine.containers(&desired.project).await?;
    let done = engine
        .teardown(&crate::plan::stop(&containers, &[]))
        .await?;
    context.printer.status(format!(
        "stopped {} container(s) of `{}`; volumes kept",
        done.len(),
        desired.project
    ));
    Ok(())
}

/// Run this command again in place (same pid, so systemd keeps its main process): the
/// path it was started as, which after a deploy is the new binary.
fn reexec(context: &Context) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let program = args
        .next()
        .ok_or_else(|| Error::outside("cannot re-execute: no program name"))?;
    context
        .printer
        .status("reloading: running the current release with the installed stack");
    let error = std::process::Command::new(&program).args(args).exec();
    Err(Error::outside(format!(
        "cannot re-execute `{}`: {error}",
        program.to_string_lossy()
    )))
}

/// Tell systemd about our state (`sd_notify`), when it runs us with `Type=notify`.
fn notify(state: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let _ = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name)
                .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
        }
        None => socket.send_to(state.as_bytes(), &path),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_has_one_reaction() {
        assert_eq!(
            reaction("health_status: unhealthy"),
            Some(Reaction::Restart)
        );
        assert_eq!(reaction("health_status: healthy"), None);
        assert_eq!(reaction("stop"), Some(Reaction::Stopped));
        assert_eq!(reaction("destroy"), Some(Reaction::Stopped));
        assert_eq!(reaction("die"), Some(Reaction::Revive));
        assert_eq!(reaction("start"), None);
    }
}
