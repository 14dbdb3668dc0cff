//! Shipping only the layers a server lacks: a temporary registry on the server's
//! loopback, reached from this machine's engine through the SSH connection. The local
//! engine pushes (a layer the registry holds is skipped), the server's engine pulls (a
//! layer it holds is skipped). The registry's storage is a volume kept between deploys,
//! so a layer crosses the wire once. Works the same with the classic image store and
//! with containerd's.
//!
//! The registry lives exactly as long as the deploy's connection: its container runs
//! `registry serve` next to a `cat` of its standard input, which stack holds open
//! through an attach; when the deploy ends in any way (done, Ctrl-C, killed, the
//! connection dropped), stdin closes, `cat` returns, the registry is stopped and the
//! container removes itself.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{AttachContainerOptions, CreateContainerOptions, PushImageOptions};
use futures_util::StreamExt;

use super::{clean_error, images::split_reference, outside, Engine};
use crate::error::{Error, Result};

/// The port the registry listens on inside its container.
const REGISTRY_PORT: &str = "5000/tcp";

/// A registry running on an engine, alive while this value is.
pub struct TempRegistry {
    pub container: String,
    /// The host port on the engine's loopback.
    pub port: u16,
    /// Closing it (on drop) ends the registry.
    _stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// Bytes a transfer moved, and how many layers it skipped.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Moved {
    pub bytes: u64,
    pub layers: u32,
    pub layers_skipped: u32,
}

impl Engine {
    /// Start the project's temporary registry from `image`, its storage in the volume
    /// `<project>-stack-registry`. A registry left by an earlier deploy is replaced.
    pub async fn start_registry(&self, project: &str, image: &str) -> Result<TempRegistry> {
        let name = format!("{project}-stack-registry");
        let _ = self.remove(&name, std::time::Duration::ZERO).await;
        if self.image_id(image).await?.is_none() {
            self.pull(image, |_| {}).await?;
        }
        let script = "registry serve /etc/docker/registry/config.yml & pid=$!; cat >/dev/null; kill $pid; wait $pid";
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec!["sh".into(), "-c".into(), script.into()]),
            cmd: Some(Vec::new()),
            open_stdin: Some(true),
            stdin_once: Some(true),
            attach_stdin: Some(true),
            // Not the project's compose label: a convergence would take it for an orphan.
            labels: Some(HashMap::from([(
                "dev.stack.registry-of".to_string(),
                project.to_string(),
            )])),
            exposed_ports: Some(HashMap::from([(REGISTRY_PORT.to_string(), HashMap::new())])),
            host_config: Some(HostConfig {
                auto_remove: Some(true),
                binds: Some(vec![format!("{name}:/var/lib/registry")]),
                port_bindings: Some(HashMap::from([(
                    REGISTRY_PORT.to_string(),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(String::new()),
                    }]),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| outside("cannot create the temporary registry", e))?;
        let attached = self
            .docker
            .attach_container(
                &created.id,
                Some(AttachContainerOptions {
                    stdin: true,
                    stream: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| outside("cannot attach to the temporary registry", e))?;
        let started = async {
            self.docker
                .start_container(
                    &created.id,
                    None::<bollard::query_parameters::StartContainerOptions>,
                )
                .await
                .map_err(|e| outside("cannot start the temporary registry", e))?;
            let inspect = self
                .docker
                .inspect_container(
                    &created.id,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await
                .map_err(|e| outside("cannot inspect the temporary registry", e))?;
            inspect
                .network_settings
                .and_then(|n| n.ports)
                .and_then(|p| p.get(REGISTRY_PORT).cloned().flatten())
                .and_then(|b| b.into_iter().find_map(|b| b.host_port))
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| Error::outside("the temporary registry published no port"))
        };
        let port = match started.await {
            Ok(port) => port,
            Err(e) => {
                let _ = self.remove(&created.id, std::time::Duration::ZERO).await;
                return Err(e);
            }
        };
        Ok(TempRegistry {
            container: created.id,
            port,
            _stdin: attached.input,
        })
    }

    /// Push `reference` (`host:port/repo:tag`) to its registry. `progress` gets (bytes
    /// done, bytes of the layer being pushed) as they go. The counts are rough: the
    /// engine's push events do not say which layer they are about.
    pub async fn push(&self, reference: &str, progress: impl Fn(u64, u64)) -> Result<Moved> {
        let (name, tag) = split_reference(reference);
        let mut stream = self.docker.push_image(
            name,
            Some(PushImageOptions {
                tag: Some(tag.to_string()),
                ..Default::default()
            }),
            None,
        );
        let mut moved = Moved::default();
        let mut last_total = 0u64;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| Error::Outside {
                message: format!("cannot send `{reference}` to the server's temporary registry"),
                causes: vec![clean_error(&e)],
                hint: None,
            })?;
            match info.status.as_deref() {
                Some("Pushing") => {
                    if let Some(detail) = info.progress_detail {
                        let current = detail.current.unwrap_or(0).max(0) as u64;
                        let total = detail.total.unwrap_or(0).max(0) as u64;
                        last_total = total;
                        progress(current, total);
                    }
                }
                Some("Pushed") => {
                    moved.layers += 1;
                    moved.bytes += last_total;
                    last_total = 0;
                }
                Some("Layer already exists") | Some("Mounted from") => moved.layers_skipped += 1,
                _ => {}
            }
        }
        Ok(moved)
    }

    /// Pull `reference` from a registry the engine reaches; the bytes it downloaded
    /// (compressed layers it lacked), counted per layer.
    pub async fn pull_counted(
        &self,
        reference: &str,
        progress: impl Fn(u64, u64),
    ) -> Result<Moved> {
        let mut layers: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut skipped = 0;
        self.pull_events(reference, |info| match info.status.as_deref() {
            Some("Downloading") => {
                if let Some(detail) = &info.progress_detail {
                    let id = info.id.clone().unwrap_or_default();
                    let entry = layers.entry(id).or_default();
                    entry.0 = detail.current.unwrap_or(0).max(0) as u64;
                    entry.1 = detail.total.unwrap_or(0).max(0) as u64;
                    let done: u64 = layers.values().map(|l| l.0).sum();
                    let total: u64 = layers.values().map(|l| l.1).sum();
                    progress(done, total);
                }
            }
            Some("Already exists") => skipped += 1,
            _ => {}
        })
        .await?;
        Ok(Moved {
            bytes: layers.values().map(|l| l.1).sum(),
            layers: layers.len() as u32,
            layers_skipped: skipped,
        })
    }
}
