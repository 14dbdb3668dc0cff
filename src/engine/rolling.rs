//! Rolling replacement: the new container beside the old one, into DNS once ready,
//! a drain where something reaches the service by name, and the old one's stop in the
//! background, joined before the plan counts as applied.

use std::sync::Arc;
use std::time::Instant;

use super::converge::Converger;
use super::{Engine, Grace, Volumes};
use crate::error::{Error, Result};
use crate::model::{Desired, DesiredService};
use crate::plan::needs_drain;
use crate::printer::Progress;

/// The background retirement of old containers: stop (SIGTERM, grace, SIGKILL), remove.
pub(super) type Retiring = tokio::task::JoinHandle<Result<()>>;

/// Wait for every retirement; the first error wins.
pub(super) async fn retire_all(retiring: Vec<Retiring>) -> Result<()> {
    let mut outcome = Ok(());
    for handle in retiring {
        let result = match handle.await {
            Ok(result) => result,
            Err(e) => Err(Error::No(format!(
                "stopping a replaced container failed: {e}"
            ))),
        };
        if outcome.is_ok() {
            outcome = result;
        }
    }
    outcome
}

impl Converger {
    /// Wait in the background for the stops of `service`'s replaced containers, then
    /// tell the proxies that cache DNS answers that those are gone.
    pub(super) fn retire(&self, service: &DesiredService, stopping: Vec<Retiring>) -> Retiring {
        let engine = self.engine.clone();
        let desired = Arc::clone(&self.desired);
        let progress = self.progress.clone();
        let name = service.name.clone();
        tokio::spawn(async move {
            retire_all(stopping)
                .await
                .map_err(|e| e.for_service(&name))?;
            refresh_proxies(&engine, &desired, &progress).await;
            Ok(())
        })
    }

    /// Start the new container beside the old (with the old one's anonymous volumes),
    /// outside DNS, and wait until it is ready; then put it into DNS under the service's
    /// name and, where something reaches the service by name ([`needs_drain`]), leave
    /// both in rotation for `STACK_DRAIN`, so every proxy (DNS refresh: 1 s) sees the new
    /// one; then stop the old one with its grace period, in a task the caller waits for
    /// (so the next replica and the next service can be replaced meanwhile).
    ///
    /// The old container is not disconnected from the network first: with Docker's DNS,
    /// leaving DNS means losing the address, and a request in flight on it would hang
    /// until the proxy's read timeout. Stopping it instead lets a well-behaved app stop
    /// accepting and finish what it has (the proxies retry a refused connection on the
    /// new container at once); an app that ignores SIGTERM keeps serving until SIGKILL,
    /// whose closed connections the proxies retry too. It leaves DNS when it exits, and
    /// the proxies' short dial timeout covers the second they may still try its address.
    pub(super) async fn rolling_replace(
        &self,
        service: &DesiredService,
        old: &str,
        number: u32,
    ) -> Result<Retiring> {
        self.progress.step(
            &service.name,
            &format!("rolling: starting container {number}"),
        );
        let inherited = self.engine.inheritance(old, service).await?;
        let id = self
            .create_and_start(service, number, (false, &inherited))
            .await?;
        let deadline = Instant::now() + self.timeout;
        if let Err(not_ready) = self.wait_container(service, &id, deadline).await {
            let report = self.failure(not_ready, &id).await;
            let _ = self.engine.remove(&id, Grace::None, Volumes::Own).await;
            return Err(Error::No(format!(
                "{report}the previous container of `{}` keeps serving",
                service.name
            )));
        }
        // Once in DNS, a proxy re-reads it only every second: until it has, the old
        // container may be all it knows. Taking the old one away before that would leave
        // the proxy nothing to send requests to. Nothing to wait for where nothing
        // reaches the service by name.
        let drain = needs_drain(&self.desired, service, &self.secrets);
        self.progress.step(
            &service.name,
            &if drain {
                format!("rolling: container {number} ready; letting the proxy find it")
            } else {
                format!("rolling: container {number} ready")
            },
        );
        let name = crate::model::container_name(&self.desired.project, &service.name, number);
        for network in self.desired.service_networks(service) {
            if let Err(e) = self
                .engine
                .expose(&network, &id, &name, &service.dns_names())
                .await
            {
                let _ = self.engine.remove(&id, Grace::None, Volumes::Own).await;
                return Err(e);
            }
        }
        if drain {
            tokio::time::sleep(self.drain).await;
        }
        let running = self.engine.state(&id).await.ok().flatten();
        if running.is_none_or(|state| state.state != "running") {
            let _ = self.engine.remove(&id, Grace::None, Volumes::Own).await;
            return Err(Error::No(format!(
                "service `{}`: the new container stopped right after it was ready; the \
                 previous container keeps serving",
                service.name
            )));
        }
        let grace = retirement_grace(service);
        self.progress.step(
            &service.name,
            &match grace {
                Grace::For(drain) => format!(
                    "rolling: stopping the old container; its open connections may stay up to {}",
                    crate::config::values::compose_duration(drain)
                ),
                _ => "rolling: stopping the old container".to_string(),
            },
        );
        let engine = self.engine.clone();
        let old = old.to_string();
        // Its anonymous volumes stay: the new container mounts them.
        Ok(tokio::spawn(async move {
            engine.remove(&old, grace, Volumes::Keep).await
        }))
    }
}

/// How long the replaced container of `service` gets between its stop signal and SIGKILL:
/// its own `STOP_GRACE`, or `DRAIN` when that is longer. Docker's DNS cannot drop a
/// running container without taking its address (and so its connections) away, so the
/// stop signal is what turns new connections away: an app that stops accepting on it and
/// finishes what it has (Go's `Shutdown`, Node's `server.close`) is refused by nothing but
/// new connections, which the proxies retry on the new container at once, while its
/// WebSocket and event streams stay open until they end or the drain is over.
fn retirement_grace(service: &DesiredService) -> Grace {
    match service.drain {
        Some(drain) if drain > service.stop_grace() => Grace::For(drain),
        _ => Grace::Own,
    }
}

/// Tell the proxies that cache DNS answers that replaced containers are gone. A failure
/// is reported, not fatal: the proxy re-reads DNS within seconds anyway.
async fn refresh_proxies(engine: &Engine, desired: &Desired, progress: &Progress) {
    let proxies: Vec<_> = desired
        .services
        .iter()
        .filter_map(|s| s.refresh.as_ref().map(|command| (s, command)))
        .collect();
    if proxies.is_empty() {
        return;
    }
    let Ok(containers) = engine.containers(&desired.project).await else {
        return;
    };
    for (service, command) in proxies {
        for container in containers
            .iter()
            .filter(|c| c.service == service.name && c.running)
        {
            match engine.exec(&container.id, command).await {
                Ok((0, _)) => {}
                Ok((code, output)) => progress.detail(
                    &service.name,
                    &format!("`{}` exited {code}: {}", command.join(" "), output.trim()),
                ),
                Err(e) => progress.detail(&service.name, &e.render()),
            }
        }
    }
}
