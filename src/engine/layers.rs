//! An image's layer chain, and sending only the top of it: `docker save` here, the
//! layers the other engine already holds left out, the rest gzipped into its
//! `docker load`. The engine's load skips a layer whose chain it has without opening
//! its file, and tags the image only once every layer is in, so a load cut halfway
//! leaves no tag.

use std::io::{Read, Write};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::registry::Moved;
use super::{clean_error, outside, Engine};
use crate::error::{Error, Result};

/// What an image is made of, as its engine reports it.
#[derive(Debug, Clone)]
pub struct ImageLayers {
    /// The uncompressed layers' digests, bottom first.
    pub diff_ids: Vec<String>,
    /// `repo@sha256:…`: the registries' names for it (none for an image built here).
    pub repo_digests: Vec<String>,
}

impl Engine {
    /// The layers of `image`, or `None` when the engine lacks it.
    pub async fn image_layers(&self, image: &str) -> Result<Option<ImageLayers>> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(Some(ImageLayers {
                diff_ids: inspect.root_fs.and_then(|r| r.layers).unwrap_or_default(),
                repo_digests: inspect.repo_digests.unwrap_or_default(),
            })),
            Err(e) if super::is_not_found(&e) => Ok(None),
            Err(e) => Err(outside(&format!("cannot inspect image `{image}`"), e)),
        }
    }

    /// Load `image` into `target`, sending all but its `held` bottom layers (which
    /// `target` must have: its load fails otherwise, and tags nothing).
    pub async fn send_layers(
        &self,
        image: &str,
        target: &Engine,
        held: usize,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<Moved> {
        let spool = self.save_to_file(image).await?;
        let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
        let path = spool.path().to_path_buf();
        let writer = tokio::task::spawn_blocking(move || {
            let result = filter_archive(&path, held, ChannelWriter(sender.clone()));
            if let Err(e) = &result {
                let _ = sender.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
            result
        });
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        let body = tokio_stream_of(receiver).map(move |chunk| {
            if let Ok(chunk) = &chunk {
                let done =
                    counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                progress(done + chunk.len() as u64);
            }
            chunk
        });
        let loaded = load(target, image, body).await;
        let kept = writer
            .await
            .map_err(|e| Error::outside(format!("cannot filter image `{image}`: {e}")))?;
        drop(spool);
        loaded?;
        let layers =
            kept.map_err(|e| Error::outside(format!("cannot filter image `{image}`: {e}")))?;
        Ok(Moved {
            bytes: sent.load(std::sync::atomic::Ordering::Relaxed),
            layers,
            layers_skipped: held as u32,
        })
    }

    /// `docker save image` into a temporary file.
    async fn save_to_file(&self, image: &str) -> Result<tempfile::NamedTempFile> {
        let spool = tempfile::NamedTempFile::new()
            .map_err(|e| Error::outside(format!("cannot make a temporary file: {e}")))?;
        let mut file = tokio::fs::File::from_std(
            spool
                .reopen()
                .map_err(|e| Error::outside(format!("cannot open a temporary file: {e}")))?,
        );
        let mut export = self.docker.export_image(image);
        while let Some(chunk) = export.next().await {
            let chunk = chunk.map_err(|e| {
                Error::outside(format!(
                    "cannot export image `{image}`: {}",
                    clean_error(&e)
                ))
            })?;
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::outside(format!("cannot write a temporary file: {e}")))?;
        }
        file.flush()
            .await
            .map_err(|e| Error::outside(format!("cannot write a temporary file: {e}")))?;
        Ok(spool)
    }
}

/// `docker load` of `body` on `target`.
async fn load(
    target: &Engine,
    image: &str,
    body: impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
) -> Result<()> {
    let mut load = target.docker.import_image(
        bollard::query_parameters::ImportImageOptions {
            quiet: true,
            ..Default::default()
        },
        bollard::body_try_stream(body),
        None,
    );
    while let Some(item) = load.next().await {
        let info =
            item.map_err(|e| outside(&format!("cannot load image `{image}` on the server"), e))?;
        if let Some(error) = info.error_detail.and_then(|d| d.message) {
            return Err(Error::outside(format!(
                "cannot load image `{image}` on the server: {error}"
            )));
        }
    }
    Ok(())
}

fn tokio_stream_of<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |context| receiver.poll_recv(context))
}

/// Hands what is written to an async receiver, in chunks.
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>);

impl Write for ChannelWriter {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buffer)))
            .map_err(|_| std::io::Error::other("the load ended early"))?;
        Ok(buffer.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Copy the `docker save` archive at `path` into `out`, gzipped, without the files of
/// its `held` bottom layers (named by its `manifest.json`); the number of layers kept.
fn filter_archive(path: &std::path::Path, held: usize, out: impl Write) -> std::io::Result<u32> {
    let layers = manifest_layers(path)?;
    let dropped: std::collections::BTreeSet<&str> =
        layers.iter().take(held).map(String::as_str).collect();
    let gzip = flate2::write::GzEncoder::new(
        std::io::BufWriter::with_capacity(256 << 10, out),
        flate2::Compression::default(),
    );
    let mut builder = tar::Builder::new(gzip);
    let mut archive = tar::Archive::new(std::fs::File::open(path)?);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if dropped.contains(name.as_str()) {
            continue;
        }
        let mut header = entry.header().clone();
        if entry.header().entry_type().is_file() {
            builder.append_data(&mut header, &name, &mut entry)?;
        } else {
            let mut rest = Vec::new();
            entry.read_to_end(&mut rest)?;
            builder.append(&header, rest.as_slice())?;
        }
    }
    let mut buffered = builder.into_inner()?.finish()?;
    buffered.flush()?;
    Ok(layers.len().saturating_sub(held) as u32)
}

/// The layer files of the (one) image in a `docker save` archive, bottom first.
fn manifest_layers(path: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut archive = tar::Archive::new(std::fs::File::open(path)?);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path()?.as_os_str() != "manifest.json" {
            continue;
        }
        let mut text = String::new();
        entry.read_to_string(&mut text)?;
        let manifest: Vec<serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| std::io::Error::other(format!("unreadable manifest.json: {e}")))?;
        let layers = manifest
            .first()
            .and_then(|image| image["Layers"].as_array())
            .ok_or_else(|| std::io::Error::other("manifest.json names no layers"))?;
        return Ok(layers
            .iter()
            .filter_map(|layer| layer.as_str().map(String::from))
            .collect());
    }
    Err(std::io::Error::other("the archive has no manifest.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(files: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut builder = tar::Builder::new(file.reopen().unwrap());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.finish().unwrap();
        file
    }

    #[test]
    fn the_held_layers_files_are_left_out_and_the_rest_gzipped() {
        let manifest = br#"[{"Config":"c.json","RepoTags":["app:1"],"Layers":["a/layer.tar","b/layer.tar","c/layer.tar"]}]"#;
        let saved = archive(&[
            ("a/layer.tar", b"base"),
            ("b/json", b"{}"),
            ("b/layer.tar", b"base too"),
            ("c/layer.tar", b"own"),
            ("c.json", b"{}"),
            ("manifest.json", manifest),
        ]);
        let mut out = Vec::new();
        assert_eq!(filter_archive(saved.path(), 2, &mut out).unwrap(), 1);
        let mut names = Vec::new();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(out.as_slice()));
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut data = String::new();
            entry.read_to_string(&mut data).unwrap();
            names.push(format!("{}={data}", entry.path().unwrap().display()));
        }
        assert_eq!(
            names,
            [
                "b/json={}",
                "c/layer.tar=own",
                "c.json={}",
                &format!("manifest.json={}", String::from_utf8_lossy(manifest))
            ]
        );
    }

    #[test]
    fn an_archive_without_a_manifest_is_an_error() {
        let saved = archive(&[("a/layer.tar", b"x")]);
        assert!(filter_archive(saved.path(), 0, Vec::new()).is_err());
    }
}
