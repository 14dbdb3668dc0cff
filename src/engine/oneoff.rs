//! One-off containers of a service: a release command before a rollout, `stack run`.
//! Built by [`spec::oneoff`] from the service's own mapping, and removed on every way
//! out: exit, failure, timeout, and a cancelled future (Ctrl-C) through [`Removal`].

use std::collections::VecDeque;
use std::time::Duration;

use bollard::query_parameters::CreateContainerOptions;
use futures_util::StreamExt;

use super::{clean_error, spec, Engine};
use crate::error::{Error, Result};
use crate::model::{Desired, DesiredService, Placement, Secrets};

/// Lines of output kept for the error of a failed command.
const LAST_LINES: usize = 20;

/// How long a one-off's log may still deliver lines once the container has exited.
const LOG_DRAIN: Duration = Duration::from_secs(5);

/// How a one-off command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Exited(i64),
    /// It ran past its timeout and was killed.
    TimedOut(Duration),
}

/// What a finished one-off command left: how it ended and its last lines of output.
#[derive(Debug, Clone)]
pub struct OneOff {
    pub ended: Ended,
    pub last_lines: Vec<String>,
}

/// Removes a one-off container when dropped while still armed: the future that ran it
/// was cancelled. It uses an engine client of its own on a thread of its own, because the
/// runtime that owns the future's client may be shutting down.
pub struct Removal {
    endpoint: String,
    id: Option<String>,
}

impl Removal {
    pub fn new(engine: &Engine, id: &str) -> Self {
        Removal {
            endpoint: engine.endpoint.clone(),
            id: Some(id.to_string()),
        }
    }

    /// Remove the container now (the normal way out).
    pub async fn now(mut self, engine: &Engine) -> Result<()> {
        match self.id.take() {
            Some(id) => {
                engine
                    .remove(&id, super::Grace::None, super::Volumes::Own)
                    .await
            }
            None => Ok(()),
        }
    }
}

impl Drop for Removal {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        let endpoint = self.endpoint.clone();
        let removal = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(engine) = Engine::connect_to(&endpoint).await {
                    let _ = engine
                        .remove(&id, super::Grace::None, super::Volumes::Own)
                        .await;
                }
            });
        });
        let _ = removal.join();
    }
}

/// A name for a one-off container: `<project>-<service>-<what>-<random>`.
pub fn oneoff_name(project: &str, service: &str, what: &str) -> String {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{project}-{service}-{what}-{suffix}")
}

impl Engine {
    /// Before a one-off container of `service`: the project's network and the service's
    /// image are on this engine (else a clear error saying to start the project first).
    pub async fn oneoff_preflight(
        &self,
        desired: &Desired,
        service: &DesiredService,
    ) -> Result<()> {
        let network = desired.network();
        match self
            .docker
            .inspect_network(
                &network,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(_) => {}
            Err(e) if super::is_not_found(&e) => {
                return Err(Error::Outside {
                    message: format!(
                        "project `{}` is not running on this engine (no network `{network}`)",
                        desired.project
                    ),
                    causes: Vec::new(),
                    hint: Some("start it first (`stack start`, or `stack deploy ENV`)".into()),
                })
            }
            Err(e) => return Err(super::outside("cannot inspect the project network", e)),
        }
        let image = service.run_image();
        if self.image_id(image).await?.is_none() {
            return Err(Error::Outside {
                message: format!(
                    "service `{}`: image `{image}` is not on this engine",
                    service.name
                ),
                causes: Vec::new(),
                hint: Some("start the project first (`stack start`), which gets it".into()),
            });
        }
        Ok(())
    }

    /// Create a one-off container of `service` running `command` (not started).
    pub async fn create_oneoff(
        &self,
        desired: &Desired,
        service: &DesiredService,
        (command, what): (&[String], &str),
        place: (&Placement, &Secrets),
        stdin: Option<bool>,
    ) -> Result<String> {
        let name = oneoff_name(&desired.project, &service.name, what);
        let mut body = spec::oneoff(desired, service, command, place, stdin);
        if let (Some(token), Some(labels)) = (&self.leash, body.labels.as_mut()) {
            labels.insert(super::labels::LEASH.into(), token.clone());
        }
        let platform = service.options.platform.as_ref().map(|p| p.to_string());
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    platform: platform.unwrap_or_default(),
                }),
                body,
            )
            .await
            .map_err(|e| Error::Outside {
                message: format!(
                    "service `{}`: cannot create the one-off container `{name}`",
                    service.name
                ),
                causes: vec![clean_error(&e)],
                hint: None,
            })?;
        Ok(created.id)
    }

    /// Run `command` in a one-off container of `service` and wait for it (at most
    /// `timeout`), handing each line of its output to `on_line`. The container is removed
    /// however this ends.
    pub async fn run_oneoff(
        &self,
        desired: &Desired,
        service: &DesiredService,
        (command, what): (&[String], &str),
        place: (&Placement, &Secrets),
        (timeout, mut on_line): (Duration, impl FnMut(&str)),
    ) -> Result<OneOff> {
        let id = self
            .create_oneoff(desired, service, (command, what), place, None)
            .await?;
        let removal = Removal::new(self, &id);
        let mut last: VecDeque<String> = VecDeque::new();
        let run = async {
            self.start(&service.name, &id).await?;
            self.follow(&id, &mut last, &mut on_line).await
        };
        let ended = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(code)) => Ended::Exited(code),
            Ok(Err(e)) => {
                let _ = removal.now(self).await;
                return Err(e);
            }
            Err(_) => Ended::TimedOut(timeout),
        };
        removal.now(self).await?;
        Ok(OneOff {
            ended,
            last_lines: last.into_iter().collect(),
        })
    }

    /// Follow the log of the started container `id` from its start until it exits,
    /// handing each line to `on_line` and keeping the last ones in `last`; its exit code.
    /// The exit is awaited beside the log, not after it: an engine's log follow can miss
    /// the end of a container that exits at once (a loaded machine, a job that only
    /// echoes) and wait on forever, so once the container has exited its log gets
    /// [`LOG_DRAIN`] to deliver the rest.
    pub async fn follow(
        &self,
        id: &str,
        last: &mut VecDeque<String>,
        on_line: &mut impl FnMut(&str),
    ) -> Result<i64> {
        let lines = async {
            let mut stream = Box::pin(self.logs(id, true, None));
            let mut pending = String::new();
            let mut keep = |line: &str| {
                on_line(line);
                last.push_back(line.to_string());
                if last.len() > LAST_LINES {
                    last.pop_front();
                }
            };
            while let Some(chunk) = stream.next().await {
                pending.push_str(&chunk?);
                while let Some(end) = pending.find('\n') {
                    let line: String = pending.drain(..=end).collect();
                    keep(line.trim_end_matches(['\n', '\r']));
                }
            }
            if !pending.is_empty() {
                keep(&pending);
            }
            Ok::<(), Error>(())
        };
        let exited = self.exit_code(id);
        tokio::pin!(lines, exited);
        tokio::select! {
            done = &mut lines => {
                done?;
                exited.await
            }
            code = &mut exited => {
                if let Ok(done) = tokio::time::timeout(LOG_DRAIN, &mut lines).await {
                    done?;
                }
                code
            }
        }
    }

    /// Wait for a container to stop; its exit code.
    pub async fn exit_code(&self, id: &str) -> Result<i64> {
        let mut wait = Box::pin(
            self.docker
                .wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>),
        );
        match wait.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(super::outside(
                &format!("cannot wait for container `{id}`"),
                e,
            )),
            None => Err(Error::outside(format!(
                "the engine ended the wait for container `{id}` without an exit code"
            ))),
        }
    }
}
