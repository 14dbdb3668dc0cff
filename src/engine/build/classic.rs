//! A build through the classic builder: the whole context as one tar on every build.

use std::collections::BTreeMap;

use futures_util::StreamExt;

use super::{context, keep_line, Job};
use crate::engine::clean_error;
use crate::error::{Error, Result};
use crate::printer::ByteProgress;

/// Send the context as a tar and build; the context's upload and the base images' pulls
/// show bytes, counted as `build_context` and `pulled`.
pub(super) async fn build(job: &Job<'_>) -> Result<()> {
    let (service, image, progress) = (job.service, job.image, job.progress);
    let packed = context::tar(&job.build.context)?;
    let tar = bytes::Bytes::from(packed.tar);
    let size = tar.len() as u64;
    progress.count("build_context", size);
    let meter = std::sync::Arc::new(ByteProgress::new(progress, service));
    let upload = {
        let meter = meter.clone();
        let chunks: Vec<bytes::Bytes> = (0..tar.len())
            .step_by(1 << 20)
            .map(|at| tar.slice(at..tar.len().min(at + (1 << 20))))
            .collect();
        futures_util::stream::iter(chunks).map(move |chunk| {
            let done = chunk.as_ptr() as u64 - tar.as_ptr() as u64 + chunk.len() as u64;
            meter.show("sending context", done, size);
            Ok::<_, std::io::Error>(chunk)
        })
    };
    let mut pulling: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let body = bollard::body_try_stream(upload);
    let mut stream = job
        .engine
        .docker
        .build_image(options(job), None, Some(body));
    let mut last = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| Error::Outside {
            message: format!("service `{service}`: cannot build image `{image}`"),
            causes: vec![clean_error(&e)],
            hint: None,
        })?;
        if let Some(error) = info.error_detail.as_ref().and_then(|d| d.message.clone()) {
            return Err(Error::Outside {
                message: format!("service `{service}`: building `{image}` failed"),
                causes: last.into_iter().chain([error]).collect(),
                hint: None,
            });
        }
        show_pull(&mut pulling, &info, &meter);
        if let Some(text) = info.stream {
            keep_line(service, &text, &mut last, progress);
        }
    }
    progress.count("pulled", pulling.values().map(|l| l.1).sum());
    Ok(())
}

/// The options of an image build: Dockerfile, tag, target stage, build arguments, labels.
fn options(job: &Job<'_>) -> bollard::query_parameters::BuildImageOptions {
    let build = job.build;
    bollard::query_parameters::BuildImageOptions {
        dockerfile: build
            .dockerfile
            .clone()
            .unwrap_or_else(|| "Dockerfile".into()),
        t: Some(job.image.to_string()),
        target: build.target.clone().unwrap_or_default(),
        buildargs: (!build.args.is_empty()).then(|| {
            build
                .args
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
        labels: Some(job.labels.clone()),
        rm: true,
        forcerm: true,
        ..Default::default()
    }
}

/// Show the bytes of a base image the build pulls (per layer, in `pulling`).
fn show_pull(
    pulling: &mut BTreeMap<String, (u64, u64)>,
    info: &bollard::models::BuildInfo,
    meter: &ByteProgress,
) {
    if let (Some("Downloading"), Some(id), Some(detail)) =
        (info.status.as_deref(), &info.id, &info.progress_detail)
    {
        let layer = pulling.entry(id.clone()).or_default();
        *layer = (
            detail.current.unwrap_or(0).max(0) as u64,
            detail.total.unwrap_or(0).max(0) as u64,
        );
        let done = pulling.values().map(|l| l.0).sum();
        meter.show(
            "pulling base image",
            done,
            pulling.values().map(|l| l.1).sum(),
        );
    }
}
