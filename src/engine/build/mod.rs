//! Building images from a context directory. Which way runs, in order:
//!
//! 1. **Nothing**, when an image labelled with this build's fingerprint (a hash of the
//!    context as sent, the Dockerfile, the target and the arguments; [`fingerprint`])
//!    exists: it is tagged and no request reaches the builder.
//! 2. **BuildKit** through a session ([`kit`]): the builder asks for the files it does
//!    not have from the last build of the same context, so a one-line change sends
//!    about one file.
//! 3. **The classic builder** ([`classic`]), the whole context as one tar, when BuildKit
//!    cannot be used (no session: an engine before API 1.39, or one that refuses it),
//!    or when `STACK_BUILDER=classic`.
//!
//! A build that fails or is cut leaves the tag where it was: both builders tag only a
//! finished image.

mod classic;
mod filesync;
pub mod fingerprint;
mod kit;
mod session;

use std::collections::HashMap;

use super::{context, labels, outside, Engine};
use crate::error::{Error, Result};
use crate::model::BuildSpec;
use crate::printer::Progress;

/// The builder `STACK_BUILDER` asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Builder {
    /// BuildKit, else the classic builder (unset).
    Auto,
    BuildKit,
    Classic,
}

impl Builder {
    /// From `STACK_BUILDER` (`buildkit`, `classic`, or unset / `auto`).
    pub fn from_env() -> Result<Builder> {
        match std::env::var("STACK_BUILDER").as_deref() {
            Err(_) | Ok("") | Ok("auto") => Ok(Builder::Auto),
            Ok("buildkit") => Ok(Builder::BuildKit),
            Ok("classic") => Ok(Builder::Classic),
            Ok(other) => Err(crate::error::Diagnostic::new(format!(
                "`STACK_BUILDER` is `{}`, which is not a builder",
                crate::printer::escape(other)
            ))
            .hint("use `buildkit`, `classic` or `auto` (the default), or unset it")
            .into()),
        }
    }
}

/// One build, as the builders see it.
pub(super) struct Job<'a> {
    engine: &'a Engine,
    service: &'a str,
    image: &'a str,
    build: &'a BuildSpec,
    progress: &'a Progress,
    labels: HashMap<String, String>,
}

impl Engine {
    /// Build `image` from `build`'s context (honouring `.dockerignore`, without stack's
    /// secret files whatever it says: a warning names those it had to hold back), unless
    /// an image of the same fingerprint exists. The builder's lines are `progress`
    /// details; the bytes sent to the builder count as `build_context`.
    pub async fn build(
        &self,
        service: &str,
        image: &str,
        build: &BuildSpec,
        progress: &Progress,
    ) -> Result<()> {
        let builder = Builder::from_env()?;
        let started = std::time::Instant::now();
        let walked = context::walk(&build.context)?;
        if !walked.withheld.is_empty() {
            progress.warn(&context::withheld_warning(&build.context, &walked.withheld));
        }
        let (fingerprint, (files, bytes)) = fingerprint::compute(&walked, build)?;
        progress.detail(
            service,
            &format!(
                "context: {} paths, {files} file(s) read ({}), fingerprint in {} ms",
                walked.entries.len(),
                crate::printer::human(bytes),
                started.elapsed().as_millis()
            ),
        );
        let job = Job {
            engine: self,
            service,
            image,
            build,
            progress,
            labels: HashMap::from([(labels::BUILD_FINGERPRINT.to_string(), fingerprint)]),
        };
        let fingerprint = &job.labels[labels::BUILD_FINGERPRINT];
        // The session opens while the engine is asked for an image of this fingerprint: a
        // build that is needed does not wait for one more round trip, and a skipped one
        // does not wait for the session.
        let reuse = self.reuse(image, fingerprint);
        let opening = job.session(builder, walked.entries);
        tokio::pin!(reuse, opening);
        let mut session = None;
        let reused = tokio::select! {
            reused = &mut reuse => reused?,
            opened = &mut opening => {
                session = Some(opened);
                (&mut reuse).await?
            }
        };
        if reused {
            progress.step(
                service,
                &format!("`{image}` is up to date (same context, Dockerfile and arguments)"),
            );
            progress.count("build_context", 0);
            return Ok(());
        }
        let before = progress.totals().get("build_context").copied().unwrap_or(0);
        let session = match session {
            Some(opened) => opened,
            None => opening.await,
        };
        let how = job.run(builder, session).await?;
        let sent = progress
            .totals()
            .get("build_context")
            .copied()
            .unwrap_or(0)
            .saturating_sub(before);
        progress.step(
            service,
            &format!(
                "built `{image}` ({how}, {} sent to the builder)",
                crate::printer::human(sent)
            ),
        );
        Ok(())
    }

    /// Whether an image built from the same fingerprint exists; tagged as `image` if it is
    /// not already. The tag's own image and the search by label are asked at once: one
    /// round trip to the engine, not two.
    async fn reuse(&self, image: &str, fingerprint: &str) -> Result<bool> {
        let filter = HashMap::from([(
            "label".to_string(),
            vec![format!("{}={fingerprint}", labels::BUILD_FINGERPRINT)],
        )]);
        let (inspect, found) = tokio::join!(
            self.docker.inspect_image(image),
            self.docker
                .list_images(Some(bollard::query_parameters::ListImagesOptions {
                    filters: Some(filter),
                    ..Default::default()
                }))
        );
        if let Ok(inspect) = inspect {
            let label = inspect
                .config
                .and_then(|c| c.labels)
                .and_then(|l| l.get(labels::BUILD_FINGERPRINT).cloned());
            if label.as_deref() == Some(fingerprint) {
                return Ok(true);
            }
        }
        let found = found.map_err(|e| outside("cannot list images", e))?;
        match found.first() {
            // An image removed between the list and the tag (another project's images
            // removed, `docker image prune`) is built again rather than failing the build.
            Some(other) => Ok(self.tag(&other.id, image).await.is_ok()),
            None => Ok(false),
        }
    }
}

impl Job<'_> {
    /// A BuildKit session serving `entries`, unless `STACK_BUILDER=classic`.
    async fn session(
        &self,
        builder: Builder,
        entries: Vec<context::Entry>,
    ) -> Option<std::result::Result<kit::Session, kit::Unavailable>> {
        match builder {
            Builder::Classic => None,
            _ => Some(kit::open(self, entries).await),
        }
    }

    /// Build with BuildKit on `session` or the classic builder; says which ran.
    async fn run(
        &self,
        builder: Builder,
        session: Option<std::result::Result<kit::Session, kit::Unavailable>>,
    ) -> Result<&'static str> {
        match session {
            Some(Ok(session)) => {
                kit::build(self, session).await?;
                return Ok("BuildKit");
            }
            Some(Err(kit::Unavailable(why))) if builder == Builder::BuildKit => {
                return Err(Error::Outside {
                    message: format!("service `{}`: BuildKit is not available", self.service),
                    causes: vec![why],
                    hint: Some("unset `STACK_BUILDER` to fall back to the classic builder".into()),
                });
            }
            Some(Err(kit::Unavailable(why))) => {
                self.progress
                    .detail(self.service, &format!("{why}; using the classic builder"));
            }
            None => {}
        }
        classic::build(self).await?;
        Ok("classic builder")
    }
}

/// Show a line of the builder's output, keeping the last five for an error message.
fn keep_line(service: &str, text: &str, last: &mut Vec<String>, progress: &Progress) {
    let text = text.trim_end().to_string();
    if !text.is_empty() {
        progress.detail(service, &text);
        last.push(text);
        if last.len() > 5 {
            last.remove(0);
        }
    }
}
