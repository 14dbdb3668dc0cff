//! Readiness: when a container of a desired service counts as ready, for `start`'s
//! waits and for `status` and `health` alike. Docker's health status counts, and so does
//! stack's own probe (the service's check run at once, on a back-off), so a service that
//! answers at once is ready at once.

use std::time::{Duration, Instant};

use super::converge::Converger;
use super::{ContainerState, Engine};
use crate::error::{Error, Result};
use crate::model::{DesiredService, Probe, Readiness};
use crate::plan::ObservedContainer;

/// Why a container is not ready.
pub(super) struct NotReady {
    service: String,
    container: String,
    reason: String,
    health_log: Option<String>,
}

impl Converger {
    /// Wait until every container of `service` is ready.
    pub(super) async fn wait_service(
        &self,
        service: &DesiredService,
        containers: Vec<ObservedContainer>,
    ) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        let mine: Vec<_> = containers
            .into_iter()
            .filter(|c| c.service == service.name && c.digest == service.digest)
            .collect();
        if mine.is_empty() && service.replicas > 0 {
            return Err(Error::No(format!(
                "service `{}` has no container",
                service.name
            )));
        }
        let readiness = service.readiness();
        self.progress.step(&service.name, waiting_text(&readiness));
        // A container the engine's list already shows ready is not asked about again.
        let pending: Vec<_> = mine
            .iter()
            .filter(|c| !listed_ready(c, &readiness))
            .collect();
        let waits = pending
            .iter()
            .map(|c| self.wait_container(service, &c.id, deadline));
        for (result, container) in futures_util::future::join_all(waits)
            .await
            .into_iter()
            .zip(&pending)
        {
            if let Err(not_ready) = result {
                let report = self.failure(not_ready, &container.id).await;
                let word = if service.job { "failed" } else { "not ready" };
                self.progress.fail(&service.name, word);
                return Err(Error::No(report));
            }
        }
        let word = match readiness {
            Readiness::Running => "running",
            Readiness::Completed => "completed",
            _ => "healthy",
        };
        self.progress.done(&service.name, word);
        Ok(())
    }

    /// Wait until the container `id` of `service` is ready. Besides Docker's health
    /// status, stack runs the check itself right after the start, on a back-off from
    /// 50 ms up to the health interval, so a service that answers at once is ready at once
    /// instead of one Docker interval later.
    pub(super) async fn wait_container(
        &self,
        service: &DesiredService,
        id: &str,
        deadline: Instant,
    ) -> std::result::Result<(), NotReady> {
        let mut events = self.events.subscribe();
        let client = probe_client();
        let interval = service
            .health
            .as_ref()
            .map_or(Duration::from_secs(2), |h| h.interval);
        let mut backoff = Duration::from_millis(50);
        let mut last_probe = None;
        loop {
            let state = self.engine.state(id).await.ok().flatten();
            let Some(state) = state else {
                return Err(NotReady {
                    service: service.name.clone(),
                    container: id.to_string(),
                    reason: "its container disappeared".into(),
                    health_log: None,
                });
            };
            match look(&self.engine, &state, service, client.as_ref()).await {
                Look::Ready => return Ok(()),
                Look::NotYet(output) => last_probe = output.or(last_probe),
                Look::Never(reason) => {
                    return Err(NotReady {
                        service: service.name.clone(),
                        container: state.name.clone(),
                        reason,
                        health_log: state.health_log.clone().or(last_probe),
                    })
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(NotReady {
                    service: service.name.clone(),
                    container: state.name.clone(),
                    reason: if service.job {
                        format!(
                            "still running after {}",
                            crate::config::values::compose_duration(self.timeout)
                        )
                    } else {
                        format!(
                            "not ready after {} (health: {})",
                            crate::config::values::compose_duration(self.timeout),
                            state.health
                        )
                    },
                    health_log: last_probe.or(state.health_log.clone()),
                });
            }
            // Wake on any event of the project, or when the back-off is over.
            let wait = backoff.min(deadline - now);
            backoff = (backoff * 2)
                .min(interval.clamp(Duration::from_millis(50), Duration::from_secs(1)));
            tokio::select! {
                _ = events.recv() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The error text for a container that is not ready: reason, health output, log tail.
    pub(super) async fn failure(&self, not_ready: NotReady, id: &str) -> String {
        let job = self
            .desired
            .service(&not_ready.service)
            .is_some_and(|s| s.job);
        let mut text = if job {
            format!(
                "service `{}` did not complete (it is a job that others wait for with `:completed`): {}\n",
                not_ready.service, not_ready.reason
            )
        } else {
            format!(
                "service `{}` is not ready: {}\n",
                not_ready.service, not_ready.reason
            )
        };
        text.push_str(&format!("  container: {}\n", not_ready.container));
        if let Some(log) = not_ready.health_log {
            text.push_str(&format!("  last health check: {log}\n"));
        }
        if let Ok(lines) = self.engine.tail(id, 20).await {
            if !lines.is_empty() {
                text.push_str("  last log lines:\n");
                for line in lines {
                    text.push_str(&format!("    {line}\n"));
                }
            }
        }
        text
    }
}

/// Run the service's `HEALTH_CMD` in the container once, within its timeout, as Docker
/// would: `Err` holds what it said.
async fn probe(
    engine: &Engine,
    service: &DesiredService,
    id: &str,
) -> std::result::Result<(), String> {
    let Some(health) = &service.health else {
        return Ok(());
    };
    let command = health.probe.argv();
    match tokio::time::timeout(health.timeout, engine.exec(id, &command)).await {
        Ok(Ok((0, _))) => Ok(()),
        Ok(Ok((code, output))) => Err(format!("exit code {code}: {}", output.trim())),
        Ok(Err(e)) => Err(e.render()),
        Err(_) => Err(format!(
            "no answer within {}s",
            health.timeout.as_secs_f64()
        )),
    }
}

/// Ready by the engine's container list alone, by the rule of [`ready`]: running (and
/// Docker's health check passed, where the service has one), or a job's exit 0.
fn listed_ready(container: &ObservedContainer, readiness: &Readiness) -> bool {
    match readiness {
        Readiness::Running => container.running,
        Readiness::Healthy(_) => container.running && container.healthy,
        Readiness::Completed => container.completed,
    }
}

fn waiting_text(readiness: &Readiness) -> &'static str {
    match readiness {
        Readiness::Running => "waiting until running",
        Readiness::Completed => "waiting until it completes",
        _ => "waiting until healthy",
    }
}

/// Docker's view (and the HTTP probe): `Ok(true)` ready, `Ok(false)` not yet, `Err`
/// never will be.
async fn ready(
    state: &ContainerState,
    readiness: &Readiness,
    client: Option<&reqwest::Client>,
) -> std::result::Result<bool, String> {
    if *readiness == Readiness::Completed {
        return match (state.state.as_str(), state.exit_code) {
            ("exited", Some(0)) => Ok(true),
            ("exited" | "dead", code) => Err(format!(
                "its container exited with code {}",
                code.unwrap_or(-1)
            )),
            _ => Ok(false),
        };
    }
    match state.state.as_str() {
        "exited" | "dead" => {
            return Err(format!(
                "its container exited with code {}",
                state.exit_code.unwrap_or(-1)
            ))
        }
        "running" => {}
        _ => return Ok(false),
    }
    match readiness {
        Readiness::Running => Ok(true),
        Readiness::Healthy(_) if state.health == "healthy" => Ok(true),
        Readiness::Healthy(_) if state.health == "unhealthy" => {
            Err("its health check failed".into())
        }
        Readiness::Completed => Ok(false),
        Readiness::Healthy(Probe::Http { port, path }) => {
            let (Some(ip), Some(client)) = (&state.ip, client) else {
                return Ok(false);
            };
            let url = format!("http://{ip}:{port}{path}");
            Ok(client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success() || r.status().is_redirection()))
        }
        Readiness::Healthy(_) => Ok(false),
    }
}

/// One look at a container of `service`.
enum Look {
    Ready,
    /// Not yet; with what stack's own probe said, when it ran.
    NotYet(Option<String>),
    /// Never will be (exited, or Docker says unhealthy).
    Never(String),
}

/// Docker's view, then (for a `HEALTH_CMD` that Docker has not passed yet) stack's own
/// run of the check: the one rule of `start`, `status` and `health`.
async fn look(
    engine: &Engine,
    state: &ContainerState,
    service: &DesiredService,
    client: Option<&reqwest::Client>,
) -> Look {
    let readiness = service.readiness();
    // An HTTP probe of the container's address works only on the engine's host;
    // elsewhere stack runs the probe in the container, like a `HEALTH_CMD`.
    let by_address = matches!(readiness, Readiness::Healthy(Probe::Http { .. })) && engine.here;
    let client = client.filter(|_| by_address);
    match ready(state, &readiness, client).await {
        Ok(true) => Look::Ready,
        Err(reason) => Look::Never(reason),
        Ok(false)
            if matches!(readiness, Readiness::Healthy(_))
                && !by_address
                && state.state == "running" =>
        {
            match probe(engine, service, &state.id).await {
                Ok(()) => Look::Ready,
                Err(output) => Look::NotYet(Some(output)),
            }
        }
        Ok(false) => Look::NotYet(None),
    }
}

/// Ready now, by the same test `start` waits on (an HTTP probe or stack's own run of the
/// check counts before Docker's first health check has run).
pub async fn is_ready(engine: &Engine, state: &ContainerState, service: &DesiredService) -> bool {
    let client = probe_client();
    matches!(
        look(engine, state, service, client.as_ref()).await,
        Look::Ready
    )
}

/// The HTTP client of readiness probes: short timeout, never through a proxy, plain
/// HTTP only. Without root certificates: loading the system's (about 150, parsed from
/// `/etc/ssl/certs`) for every container waited on was most of a no-op `start`'s CPU
/// and memory (BENCHMARKS.md, 2026-12-07 "What stack's no-op start spent").
fn probe_client() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .no_proxy()
        .tls_built_in_root_certs(false)
        .build()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(running: bool, healthy: bool, completed: bool) -> ObservedContainer {
        ObservedContainer {
            id: "id".into(),
            name: "p-web-1".into(),
            service: "web".into(),
            number: 1,
            digest: "d".into(),
            running,
            unhealthy: false,
            healthy,
            completed,
            image_id: "sha256:x".into(),
        }
    }

    #[test]
    fn the_list_alone_counts_as_ready_only_by_the_rule_of_ready() {
        let http = Readiness::Healthy(Probe::Http {
            port: 8080,
            path: "/health".into(),
        });
        // A health check: running and Docker's `(healthy)`; starting is asked again.
        assert!(listed_ready(&listed(true, true, false), &http));
        assert!(!listed_ready(&listed(true, false, false), &http));
        assert!(!listed_ready(&listed(false, true, false), &http));
        // No health check: running is enough.
        assert!(listed_ready(
            &listed(true, false, false),
            &Readiness::Running
        ));
        assert!(!listed_ready(
            &listed(false, false, false),
            &Readiness::Running
        ));
        // A job: its exit 0.
        assert!(listed_ready(
            &listed(false, false, true),
            &Readiness::Completed
        ));
        assert!(!listed_ready(
            &listed(true, false, false),
            &Readiness::Completed
        ));
    }
}
