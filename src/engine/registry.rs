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
//! container removes itself. It uses the host's network and listens on the server's
//! loopback only.
//!
//! Every request must carry the deploy's credentials (htpasswd, user [`REGISTRY_USER`],
//! a random password of this deploy, kept only in memory and in the bcrypt hash the
//! registry checks): another account on the server, or on this machine through the
//! forward, can neither pull the shipped layers nor push blobs to fill the disk.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, ListContainersOptions, PushImageOptions,
};
use futures_util::StreamExt;

use super::{clean_error, images::split_reference, outside, Engine};
use crate::error::{Error, Result};

/// The label that marks a temporary registry, with its project as value.
const REGISTRY_OF: &str = "dev.stack.registry-of";

/// A registry running on an engine, alive while this value is.
pub struct TempRegistry {
    pub container: String,
    /// The port it listens on, on the engine's loopback.
    pub port: u16,
    /// The value of its `X-Stack-Registry` header: an answer without it on `port` is
    /// some other program's. Not a credential (the registry sends it to anyone).
    pub token: String,
    /// The password every request must carry (user [`REGISTRY_USER`]).
    pub password: String,
    /// Closing it (on drop) ends the registry.
    _stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// The user of a temporary registry's htpasswd file.
pub const REGISTRY_USER: &str = "stack";

/// The header a temporary registry answers with, so that stack knows the answer on its
/// port is its own registry's.
pub const TOKEN_HEADER: &str = "X-Stack-Registry";

/// Bytes a transfer moved, and how many layers it skipped.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Moved {
    pub bytes: u64,
    pub layers: u32,
    pub layers_skipped: u32,
}

impl Engine {
    /// Start a temporary registry of `project` from `image`, listening on the engine's
    /// loopback at `port` (host network: no network namespace or proxy to set up, which
    /// halves its start) and answering with `token` in [`TOKEN_HEADER`]. Its storage is
    /// the volume `<project>-stack-registry`, shared by every deploy of the project. If
    /// `port` is taken the registry exits and the container with it; the caller sees an
    /// answer without its token, or none, and tries another port. Registries that an
    /// earlier deploy left stopped are removed first. Every request must log in as
    /// [`REGISTRY_USER`] with `password`.
    pub async fn start_registry(
        &self,
        project: &str,
        image: &str,
        (port, token, password): (u16, &str, &str),
    ) -> Result<TempRegistry> {
        // A random 128-bit password: the lowest bcrypt cost is as strong as any.
        let hash = bcrypt::hash(password, 4)
            .map_err(|e| Error::outside(format!("cannot hash the registry's password: {e}")))?;
        self.remove_stale_registries(project).await?;
        if self.image_id(image).await?.is_none() {
            self.pull(image, None, |_, _| {}).await?;
        }
        let keep = self.tags_with_prefix(&format!("{project}-")).await?;
        let body = registry_body(image, project, (port, token), &hash, &keep);
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(format!("{project}-stack-registry-{port}-{token}")),
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
        if let Err(e) = self
            .docker
            .start_container(
                &created.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            let _ = self
                .remove(&created.id, super::Grace::None, super::Volumes::Own)
                .await;
            return Err(outside("cannot start the temporary registry", e));
        }
        Ok(TempRegistry {
            container: created.id,
            port,
            token: token.to_string(),
            password: password.to_string(),
            _stdin: attached.input,
        })
    }

    /// Remove the project's temporary registries that are not running: one a dockerd
    /// restart stopped, or one created by a deploy that was killed before it started it.
    async fn remove_stale_registries(&self, project: &str) -> Result<()> {
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([
                    (
                        "label".to_string(),
                        vec![format!("{REGISTRY_OF}={project}")],
                    ),
                    (
                        "status".to_string(),
                        vec!["created".into(), "exited".into(), "dead".into()],
                    ),
                ])),
                ..Default::default()
            }))
            .await
            .map_err(|e| outside("cannot list the temporary registries", e))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        for summary in list {
            // A concurrent deploy's registry is `created` for a moment before it starts.
            let fresh = summary.state.map(|s| s.to_string()).as_deref() == Some("created")
                && now - summary.created.unwrap_or(0) < 60;
            if let (Some(id), false) = (summary.id, fresh) {
                let _ = self
                    .remove(&id, super::Grace::None, super::Volumes::Own)
                    .await;
            }
        }
        Ok(())
    }

    /// Push `reference` (`host:port/repo:tag`) to its registry. `progress` gets (bytes
    /// done, bytes of the layer being pushed) as they go. The counts are rough: the
    /// engine's push events do not say which layer they are about.
    pub async fn push(
        &self,
        reference: &str,
        password: &str,
        progress: impl Fn(u64, u64),
    ) -> Result<Moved> {
        let (name, tag) = split_reference(reference);
        let mut stream = self.docker.push_image(
            name,
            Some(PushImageOptions {
                tag: Some(tag.to_string()),
                ..Default::default()
            }),
            Some(login(password)),
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
}

/// The credentials of a temporary registry, as the engine's push and pull take them.
pub fn login(password: &str) -> bollard::auth::DockerCredentials {
    bollard::auth::DockerCredentials {
        username: Some(REGISTRY_USER.to_string()),
        password: Some(password.to_string()),
        ..Default::default()
    }
}

/// The temporary registry's container: serves on loopback with the deploy's htpasswd,
/// after pruning the tags that no release image in `keep` has any more.
fn registry_body(
    image: &str,
    project: &str,
    (port, token): (u16, &str),
    hash: &str,
    keep: &[String],
) -> ContainerCreateBody {
    // The registry ends when stdin closes (the deploy ended) or on its own (its port
    // was taken); either way the container stops and removes itself.
    // (A background list reads /dev/null unless told otherwise, hence fd 3.)
    // The htpasswd file is written private to the container's root before the
    // registry starts reading it. Then the storage is pruned: a tag that no release
    // image on this engine has any more (its release was pruned) is deleted, and the
    // layers no remaining tag uses are collected, before the registry serves.
    // Image references hold no blank, so one space separates them.
    let script = "umask 077; printf '%s\\n' \"$STACK_REGISTRY_HTPASSWD\" > /tmp/stack-htpasswd; \
                  r=/var/lib/registry/docker/registry/v2/repositories/$STACK_PROJECT; pruned=; \
                  for t in \"$r\"/*/_manifests/tags/*; do [ -d \"$t\" ] || continue; \
                  repo=${t#\"$r\"/}; repo=${repo%%/*}; tag=${t##*/}; \
                  case \" $STACK_KEEP \" in *\" $repo:$tag \"*) ;; *) rm -rf \"$t\"; pruned=1;; esac; done; \
                  [ -z \"$pruned\" ] || registry garbage-collect --delete-untagged \
                  /etc/docker/registry/config.yml >/dev/null 2>&1; \
                  exec 3<&0; registry serve /etc/docker/registry/config.yml & pid=$!; \
                  (cat <&3 >/dev/null; kill $pid 2>/dev/null) & wait $pid";
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(vec!["sh".into(), "-c".into(), script.into()]),
        cmd: Some(Vec::new()),
        env: Some(vec![
            format!("REGISTRY_HTTP_ADDR=127.0.0.1:{port}"),
            format!("REGISTRY_HTTP_HEADERS={{\"{TOKEN_HEADER}\": [\"{token}\"]}}"),
            "REGISTRY_LOG_LEVEL=warn".into(),
            "REGISTRY_AUTH=htpasswd".into(),
            "REGISTRY_AUTH_HTPASSWD_REALM=stack".into(),
            "REGISTRY_AUTH_HTPASSWD_PATH=/tmp/stack-htpasswd".into(),
            format!("STACK_REGISTRY_HTPASSWD={REGISTRY_USER}:{hash}"),
            format!("STACK_PROJECT={project}"),
            format!("STACK_KEEP={}", keep.join(" ")),
        ]),
        open_stdin: Some(true),
        stdin_once: Some(true),
        attach_stdin: Some(true),
        // Not the project's compose label: a convergence would take it for an orphan.
        labels: Some(HashMap::from([(
            REGISTRY_OF.to_string(),
            project.to_string(),
        )])),
        host_config: Some(HostConfig {
            auto_remove: Some(true),
            network_mode: Some("host".into()),
            binds: Some(vec![format!("{project}-stack-registry:/var/lib/registry")]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
