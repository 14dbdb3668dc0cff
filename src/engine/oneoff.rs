//! One-off containers of a service: its image, environment and volumes, on the project
//! network, running another command (what `docker compose run --rm` does). `stack backup`
//! runs its steps this way, locally and on a server.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use bollard::query_parameters::CreateContainerOptions;
use futures_util::StreamExt;

use super::{clean_error, is_not_found, labels, outside, spec, Engine};
use crate::error::{Error, Result};
use crate::model::{Desired, DesiredService, HostPath, Mount, Placement, Secrets};

/// What a one-off container printed and how it ended.
#[derive(Debug)]
pub struct OneOffResult {
    pub exit_code: i64,
    /// Every line it printed (stdout and stderr, in order).
    pub lines: Vec<String>,
}

/// A one-off run: `entrypoint` and `args` replace the service's own.
pub struct OneOff<'a> {
    pub service: &'a DesiredService,
    pub entrypoint: Vec<String>,
    pub args: Vec<String>,
}

impl Engine {
    /// Create, start and follow a one-off container of `run.service`, then remove it.
    /// Files of the rendered bundle are not mounted (the caller passes what it needs in
    /// the command). `line` sees each output line as it comes.
    pub async fn run_oneoff(
        &self,
        desired: &Desired,
        run: OneOff<'_>,
        (placement, secrets): (&Placement, &Secrets),
        mut line: impl FnMut(&str),
    ) -> Result<OneOffResult> {
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
            Err(e) if is_not_found(&e) => {
                return Err(Error::Outside {
                    message: format!(
                        "project `{}` is not running on this engine (no network `{network}`)",
                        desired.project
                    ),
                    causes: Vec::new(),
                    hint: Some("start it first (`stack start`, or `stack deploy ENV`)".into()),
                })
            }
            Err(e) => return Err(outside("cannot inspect the project network", e)),
        }
        let image = run.service.run_image().to_string();
        if self.image_id(&image).await?.is_none() {
            return Err(Error::Outside {
                message: format!(
                    "service `{}`: image `{image}` is not on this engine",
                    run.service.name
                ),
                causes: Vec::new(),
                hint: Some("start the project first (`stack start`), which gets it".into()),
            });
        }
        // The bundle's files are not there for a one-off (and may not exist locally).
        let mut service = run.service.clone();
        service.mounts.retain(|m| {
            !matches!(
                m,
                Mount::Bind {
                    source: HostPath::Bundle(_),
                    ..
                }
            )
        });
        let (binds, anonymous) = spec::binds(desired, &service, placement);
        let mut suffix = [0u8; 4];
        getrandom::fill(&mut suffix)
            .map_err(|e| Error::outside(format!("cannot draw a random name: {e}")))?;
        let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("{}-{}-run-{suffix}", desired.project, service.name);
        let body = ContainerCreateBody {
            image: Some(image),
            entrypoint: Some(run.entrypoint),
            cmd: Some(run.args),
            user: service.options.user.as_ref().map(|u| u.to_string()),
            env: Some(secrets.environment(&service.env)),
            labels: Some(HashMap::from([
                (labels::PROJECT.to_string(), desired.project.clone()),
                (labels::SERVICE.to_string(), service.name.clone()),
                (labels::ONEOFF.to_string(), "True".to_string()),
            ])),
            volumes: Some(anonymous.into_iter().map(|p| (p, HashMap::new())).collect()),
            host_config: Some(HostConfig {
                binds: Some(binds),
                network_mode: Some(network.clone()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network, EndpointSettings::default())])),
            }),
            ..Default::default()
        };
        let id = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    platform: String::new(),
                }),
                body,
            )
            .await
            .map_err(|e| Error::Outside {
                message: format!("cannot create the one-off container `{name}`"),
                causes: vec![clean_error(&e)],
                hint: None,
            })?
            .id;
        let result = self.follow_oneoff(&id, &service.name, &mut line).await;
        let removed = self.remove(&id, Duration::from_secs(2)).await;
        let result = result?;
        removed?;
        Ok(result)
    }

    async fn follow_oneoff(
        &self,
        id: &str,
        service: &str,
        line: &mut impl FnMut(&str),
    ) -> Result<OneOffResult> {
        self.start(service, id).await?;
        let mut lines = Vec::new();
        let mut partial = String::new();
        let mut stream = Box::pin(self.logs(id, true, None));
        loop {
            let chunk = tokio::select! {
                chunk = stream.next() => chunk,
                _ = tokio::signal::ctrl_c() => {
                    return Err(Error::No("interrupted; the one-off container was removed".into()));
                }
            };
            let Some(chunk) = chunk else { break };
            partial.push_str(&chunk?);
            while let Some(end) = partial.find('\n') {
                let text: String = partial.drain(..=end).collect();
                let text = text.trim_end_matches(['\n', '\r']).to_string();
                line(&text);
                lines.push(text);
            }
        }
        if !partial.is_empty() {
            line(&partial);
            lines.push(partial);
        }
        // The log ends when the container stops; its state may lag a moment behind.
        for _ in 0..100 {
            match self.state(id).await? {
                Some(state) if state.state == "running" => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Some(state) => {
                    return Ok(OneOffResult {
                        exit_code: state.exit_code.unwrap_or(-1),
                        lines,
                    })
                }
                None => break,
            }
        }
        Err(Error::outside(format!(
            "the one-off container `{id}` did not report how it ended"
        )))
    }
}
