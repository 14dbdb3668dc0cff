//! Images: look up, pull, build from a context, and send to another engine without a
//! registry.

use std::collections::BTreeMap;

use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;

use super::registry::Moved;
use super::{clean_error, is_not_found, outside, Engine};
pub use crate::config::attrs::image::split_reference;
use crate::error::{Error, Result};
use crate::printer::{ByteProgress, Progress};

impl Engine {
    /// The local ID of an image reference, `None` when it is not present.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(inspect.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(outside(&format!("cannot inspect image `{image}`"), e)),
        }
    }

    /// Tag the image `source` (a reference or an ID) as `target` (`repo:tag`).
    pub async fn tag(&self, source: &str, target: &str) -> Result<()> {
        let (repo, tag) = split_reference(target);
        self.docker
            .tag_image(
                source,
                Some(bollard::query_parameters::TagImageOptions {
                    repo: Some(repo.to_string()),
                    tag: Some(tag.to_string()),
                }),
            )
            .await
            .map_err(|e| outside(&format!("cannot tag `{source}` as `{target}`"), e))
    }

    /// Remove an image reference: a tag of an image that has others is only untagged,
    /// and an image a container uses is kept (the engine refuses; that is not an error).
    pub async fn untag(&self, reference: &str) -> Result<()> {
        match self
            .docker
            .remove_image(
                reference,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(outside(&format!("cannot remove image `{reference}`"), e)),
        }
    }

    /// Every `repo:tag` on the engine whose repository starts with `prefix`.
    pub async fn tags_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let images = self
            .docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .map_err(|e| outside("cannot list images", e))?;
        Ok(images
            .into_iter()
            .flat_map(|image| image.repo_tags)
            .filter(|tag| tag.starts_with(prefix))
            .collect())
    }

    /// The `repo@sha256:…` digests an image is known by.
    pub async fn repo_digests(&self, image: &str) -> Result<Vec<String>> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(inspect.repo_digests.unwrap_or_default()),
            Err(e) if is_not_found(&e) => Ok(Vec::new()),
            Err(e) => Err(outside(&format!("cannot inspect image `{image}`"), e)),
        }
    }

    /// Pull `service`'s image with byte progress (`where_` says where, for the step
    /// line: "" here, " on the server" there); the bytes are counted as `pulled`.
    pub async fn pull_for(
        &self,
        service: &str,
        image: &str,
        (progress, where_): (&Progress, &str),
    ) -> Result<()> {
        progress.step(service, &format!("pulling `{image}`{where_}"));
        let bytes = ByteProgress::new(progress, service);
        let moved = self
            .pull(image, None, |done, total| {
                bytes.show("pulling", done, total)
            })
            .await
            .map_err(|e| e.for_service(service))?;
        progress.count("pulled", moved.bytes);
        Ok(())
    }

    /// Pull an image. `progress` gets (bytes downloaded, bytes of the layers seen so
    /// far) as they go; the result counts the compressed layers the engine lacked.
    pub async fn pull(
        &self,
        reference: &str,
        login: Option<bollard::auth::DockerCredentials>,
        progress: impl Fn(u64, u64),
    ) -> Result<Moved> {
        let mut layers: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut skipped = 0;
        self.pull_events(reference, login, |info| match info.status.as_deref() {
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

    /// Pull an image, handing every progress event of the engine to `event`.
    pub(super) async fn pull_events(
        &self,
        image: &str,
        login: Option<bollard::auth::DockerCredentials>,
        mut event: impl FnMut(&bollard::models::CreateImageInfo),
    ) -> Result<()> {
        let (name, tag) = split_reference(image);
        let mut stream = self.docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(name.to_string()),
                tag: Some(tag.to_string()),
                ..Default::default()
            }),
            None,
            login,
        );
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| Error::Outside {
                message: format!("cannot pull image `{image}`"),
                causes: vec![clean_error(&e)],
                hint: Some(
                    "check the image name and tag, and that the registry is reachable".into(),
                ),
            })?;
            if let Some(error) = info.error_detail.as_ref().and_then(|d| d.message.as_ref()) {
                return Err(Error::outside(format!(
                    "cannot pull image `{image}`: {error}"
                )));
            }
            event(&info);
        }
        Ok(())
    }

    /// Copy an image from this engine to `target` as one archive (export streamed into a
    /// load): no registry needed, every layer crosses. `progress` gets (bytes sent, the
    /// image's size).
    pub async fn send_image(
        &self,
        image: &str,
        target: &Engine,
        progress: impl Fn(u64, u64) + Send + Sync + 'static,
    ) -> Result<super::registry::Moved> {
        let size = match self.docker.inspect_image(image).await {
            Ok(inspect) => inspect.size.unwrap_or(0).max(0) as u64,
            Err(e) => return Err(outside(&format!("cannot inspect image `{image}`"), e)),
        };
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        let name = image.to_string();
        let export = self.docker.export_image(image).map(move |chunk| {
            let chunk = chunk.map_err(|e| {
                std::io::Error::other(format!("cannot export image `{name}`: {}", clean_error(&e)))
            })?;
            let done = counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed)
                + chunk.len() as u64;
            progress(done, size.max(done));
            Ok(chunk)
        });
        let mut load = target.docker.import_image(
            bollard::query_parameters::ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            bollard::body_try_stream(export),
            None,
        );
        while let Some(item) = load.next().await {
            let info = item
                .map_err(|e| outside(&format!("cannot load image `{image}` on the server"), e))?;
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(Error::outside(format!(
                    "cannot load image `{image}` on the server: {error}"
                )));
            }
        }
        Ok(super::registry::Moved {
            bytes: sent.load(std::sync::atomic::Ordering::Relaxed),
            layers: 0,
            layers_skipped: 0,
        })
    }
}
