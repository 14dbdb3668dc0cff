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
        let walked = context::walk(&build.context)?;
        if !walked.withheld.is_empty() {
            progress.warn(&context::withheld_warning(&build.context, &walked.withheld));
        }
        let fingerprint = fingerprint::compute(&walked, build)?;
        if self.reuse(image, &fingerprint).await? {
            progress.step(
                service,
                &format!("`{image}` is up to date (same context, Dockerfile and arguments)"),
            );
            progress.count("build_context", 0);
            return Ok(());
        }
        let job = Job {
            engine: self,
            service,
            image,
            build,
            progress,
            labels: HashMap::from([(labels::BUILD_FINGERPRINT.to_string(), fingerprint)]),
        };
        let before = progress.totals().get("build_context").copied().unwrap_or(0);
        let how = job.run(builder, walked.entries).await?;
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
    /// not already.
    async fn reuse(&self, image: &str, fingerprint: &str) -> Result<bool> {
        if let Ok(inspect) = self.docker.inspect_image(image).await {
            let label = inspect
                .config
                .and_then(|c| c.labels)
                .and_then(|l| l.get(labels::BUILD_FINGERPRINT).cloned());
            if label.as_deref() == Some(fingerprint) {
                return Ok(true);
            }
        }
        let filter = HashMap::from([(
            "label".to_string(),
            vec![format!("{}={fingerprint}", labels::BUILD_FINGERPRINT)],
        )]);
        let found = self
            .docker
            .list_images(Some(bollard::query_parameters::ListImagesOptions {
                filters: Some(filter),
                ..Default::default()
            }))
            .await
            .map_err(|e| outside("cannot list images", e))?;
        match found.first() {
            Some(other) => {
                self.tag(&other.id, image).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl Job<'_> {
    /// Build with BuildKit or the classic builder; says which ran.
    async fn run(self, builder: Builder, entries: Vec<context::Entry>) -> Result<&'static str> {
        if builder != Builder::Classic {
            match kit::build(&self, entries).await {
                Ok(()) => return Ok("BuildKit"),
                Err(Err(error)) => return Err(error),
                Err(Ok(kit::Unavailable(why))) if builder == Builder::BuildKit => {
                    return Err(Error::Outside {
                        message: format!("service `{}`: BuildKit is not available", self.service),
                        causes: vec![why],
                        hint: Some(
                            "unset `STACK_BUILDER` to fall back to the classic builder".into(),
                        ),
                    });
                }
                Err(Ok(kit::Unavailable(why))) => {
                    self.progress
                        .detail(self.service, &format!("{why}; using the classic builder"));
                }
            }
        }
        classic::build(&self).await?;
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
