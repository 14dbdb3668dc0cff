//! Letting the server pull a `BUILD` image's base itself: the `FROM` of the Dockerfile's
//! stage that is built, resolved to the repo digest this machine's engine knows it by,
//! is pulled by the server's engine from its registry (at the server's speed, not over
//! the deploy's connection), and only the layers above those the server then holds
//! cross the connection. When the server cannot pull it (no route to the registry, a
//! private image, the registry gone halfway), the caller sends the image the usual way.

use crate::config::BuildSpec;
use crate::engine::Engine;
use crate::error::Result;
use crate::printer::{human, Progress};

use crate::engine::registry::Moved;

/// The image the stage `target` (else the last stage) of `dockerfile` starts from, or
/// `None` for `scratch`, an unknown stage or a reference built from `ARG`s.
pub fn base_reference(dockerfile: &str, target: Option<&str>) -> Option<String> {
    let mut stages: Vec<(String, Option<String>)> = Vec::new();
    for line in logical_lines(dockerfile) {
        let mut words = line.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        let mut words = words.skip_while(|word| word.starts_with("--"));
        let Some(image) = words.next().map(String::from) else {
            continue;
        };
        let name = match (words.next(), words.next()) {
            (Some(as_word), Some(name)) if as_word.eq_ignore_ascii_case("AS") => {
                Some(name.to_ascii_lowercase())
            }
            _ => None,
        };
        stages.push((image, name));
    }
    let mut index = match target {
        Some(target) => stages
            .iter()
            .position(|(_, name)| name.as_deref() == Some(&target.to_ascii_lowercase()))?,
        None => stages.len().checked_sub(1)?,
    };
    loop {
        let image = &stages[index].0;
        let earlier = stages[..index]
            .iter()
            .position(|(_, name)| name.as_deref() == Some(&image.to_ascii_lowercase()));
        match earlier {
            Some(stage) => index = stage,
            None if image.contains('$') || image.eq_ignore_ascii_case("scratch") => return None,
            None => return Some(image.clone()),
        }
    }
}

/// The Dockerfile's instructions, continuation lines joined and comments left out.
fn logical_lines(dockerfile: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    lines.push(current);
    lines
}

/// The name by which the server can pull `base`: its repo digest for the same
/// repository (Docker Hub's short names are written in full or not, both match).
pub fn pullable(base: &str, repo_digests: &[String]) -> Option<String> {
    if base.contains('@') {
        return Some(base.to_string());
    }
    let (repository, _) = crate::engine::split_reference(base);
    let full = |name: &str| -> String {
        let name = name.strip_prefix("docker.io/").unwrap_or(name);
        let name = name.strip_prefix("library/").unwrap_or(name);
        name.to_string()
    };
    repo_digests
        .iter()
        .find(|digest| {
            let name = digest.split('@').next().unwrap_or_default();
            full(name) == full(repository)
        })
        .cloned()
}

/// How many bottom layers `image` shares with `other`.
fn shared(image: &[String], other: &[String]) -> usize {
    image.iter().zip(other).take_while(|(a, b)| a == b).count()
}

/// Put `reference` on `server` by pulling its base there and sending only the rest;
/// `None` when that does not apply or the server cannot pull the base (said in one
/// line), so the caller sends the whole image.
pub(super) async fn send_above_base(
    (service, project): (&str, &str),
    reference: &str,
    build: &BuildSpec,
    (local, server): (&Engine, &Engine),
    progress: &Progress,
) -> Result<Option<Moved>> {
    let dockerfile = build
        .context
        .join(build.dockerfile.as_deref().unwrap_or("Dockerfile"));
    let Ok(text) = std::fs::read_to_string(&dockerfile) else {
        return Ok(None);
    };
    let Some(base) = base_reference(&text, build.target.as_deref()) else {
        return Ok(None);
    };
    let (Some(image), Some(base_layers)) = (
        local.image_layers(reference).await?,
        local.image_layers(&base).await?,
    ) else {
        return Ok(None);
    };
    let Some(pull) = pullable(&base, &base_layers.repo_digests) else {
        return Ok(None);
    };
    if base_layers.diff_ids.is_empty()
        || shared(&image.diff_ids, &base_layers.diff_ids) != base_layers.diff_ids.len()
    {
        return Ok(None);
    }
    if server.image_layers(&pull).await?.is_none() {
        progress.step(service, &format!("the server pulls base `{pull}`"));
        let bytes = std::sync::Arc::new(crate::printer::ByteProgress::new(progress, service));
        let pulled = server
            .pull(&pull, None, |done, total| {
                bytes.show("server pulling base", done, total)
            })
            .await;
        match pulled {
            Ok(moved) => progress.step(
                service,
                &format!("the server pulled base `{base}` ({})", human(moved.bytes)),
            ),
            Err(e) => {
                let why = e.render();
                let why = why.lines().next().unwrap_or_default();
                progress.step(
                    service,
                    &format!(
                        "the server cannot pull base `{base}` ({}); sending its layers over SSH",
                        why.trim_start_matches("error: ")
                    ),
                );
                return Ok(None);
            }
        }
    }
    let held = held_layers(server, project, &image.diff_ids, base_layers.diff_ids.len()).await?;
    // The compressed size is known only once sent: the line after says it.
    match local.send_layers(reference, server, held, |_| {}).await {
        Ok(moved) => Ok(Some(moved)),
        Err(e) => {
            let why = e.render();
            progress.step(
                service,
                &format!(
                    "sending only the layers above the base failed ({}); sending the image",
                    why.lines()
                        .next()
                        .unwrap_or_default()
                        .trim_start_matches("error: ")
                ),
            );
            Ok(None)
        }
    }
}

/// How many bottom layers of `image` the server holds: the base's, or more when an
/// image of the project there (an earlier release) shares them.
async fn held_layers(
    server: &Engine,
    project: &str,
    image: &[String],
    base: usize,
) -> Result<usize> {
    let mut held = base;
    for tag in server.tags_with_prefix(&format!("{project}-")).await? {
        if let Some(layers) = server.image_layers(&tag).await? {
            held = held.max(shared(image, &layers.diff_ids));
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_stage_names_the_base() {
        assert_eq!(
            base_reference("FROM debian:12\nRUN true\n", None).as_deref(),
            Some("debian:12")
        );
        let multi = "# build\nFROM --platform=$BUILDPLATFORM rust:1 AS build\nRUN make\n\
                     FROM registry.example:5000/base@sha256:ab as run\nCOPY --from=build /a /a\n\
                     FROM run AS final\n";
        assert_eq!(
            base_reference(multi, None).as_deref(),
            Some("registry.example:5000/base@sha256:ab")
        );
        assert_eq!(
            base_reference(multi, Some("build")).as_deref(),
            Some("rust:1")
        );
        assert_eq!(base_reference("FROM scratch\nCOPY a /a\n", None), None);
        assert_eq!(base_reference("ARG V=1\nFROM debian:$V\n", None), None);
        assert_eq!(base_reference("FROM a AS x\n", Some("nope")), None);
        assert_eq!(
            base_reference("FROM \\\n  debian:12 \\\n  AS x\n", None).as_deref(),
            Some("debian:12")
        );
    }

    #[test]
    fn the_digest_of_the_same_repository_is_pulled() {
        let digests = vec![
            "other/thing@sha256:1".to_string(),
            "debian@sha256:2".to_string(),
        ];
        assert_eq!(
            pullable("debian:12", &digests).as_deref(),
            Some("debian@sha256:2")
        );
        assert_eq!(
            pullable("docker.io/library/debian:12", &digests).as_deref(),
            Some("debian@sha256:2")
        );
        assert_eq!(pullable("ubuntu:24.04", &digests), None);
        assert_eq!(pullable("127.0.0.1:5000/base:1", &[]), None);
    }
}
