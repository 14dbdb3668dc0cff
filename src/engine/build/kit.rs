//! A build through BuildKit: a session serves the context file by file
//! ([`super::session`], [`super::filesync`]) while `POST /build?version=2` runs; the
//! builder's progress arrives as BuildKit status messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use bollard_buildkit_proto::moby::buildkit::v1::StatusResponse;
use bytes::Bytes;
use http_body_util::BodyExt;
use prost::Message;
use sha2::{Digest, Sha256};

use super::filesync::Served;
use super::session::{self, Identity};
use super::{keep_line, Job};
use crate::error::{Error, Result};
use crate::printer::ByteProgress;

/// Why BuildKit could not run at all (the classic builder may take over): nothing was
/// built or tagged.
pub struct Unavailable(pub String);

/// Percent-encode a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The query of the build request.
fn query(job: &Job, session: &str, dockerfile: &str) -> String {
    let build = job.build;
    let mut pairs = vec![
        ("version", "2".to_string()),
        ("session", session.to_string()),
        ("remote", "client-session".to_string()),
        ("t", job.image.to_string()),
        ("dockerfile", dockerfile.to_string()),
        ("labels", serde_json::json!(job.labels).to_string()),
    ];
    if let Some(target) = &build.target {
        pairs.push(("target", target.clone()));
    }
    if !build.args.is_empty() {
        pairs.push(("buildargs", serde_json::json!(build.args).to_string()));
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Removes the session when the build ends, however it ends.
struct Abort(tokio::task::JoinHandle<()>);
impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An open BuildKit session serving one build's context, ready for the build request.
pub struct Session {
    id: String,
    dockerfile: String,
    api: String,
    total: u64,
    sent: Arc<AtomicU64>,
    /// Serving until dropped.
    _server: Abort,
}

/// Open a session that serves `entries` (the context as walked) and the Dockerfile's
/// folder. `Unavailable` when the engine offers none (nothing was sent).
pub async fn open(
    job: &Job<'_>,
    entries: Vec<crate::engine::context::Entry>,
) -> std::result::Result<Session, Unavailable> {
    let api = format!(
        "v{}.{}",
        job.engine.docker.client_version().major_version,
        job.engine.docker.client_version().minor_version
    );
    let dockerfile = job.build.dockerfile.as_deref().unwrap_or("Dockerfile");
    let dockerfile_path = job.build.context.join(dockerfile);
    let dockerfile_dir = dockerfile_path
        .parent()
        .unwrap_or(&job.build.context)
        .to_path_buf();
    let dockerfile_name = dockerfile_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".into());
    let total: u64 = entries
        .iter()
        .filter(|e| e.meta.is_file())
        .map(|e| e.meta.len())
        .sum();
    let sent = Arc::new(AtomicU64::new(0));
    let served = Served {
        context: Arc::new(entries),
        dockerfile_dir,
        dockerfile: dockerfile_name.clone(),
        sent: sent.clone(),
    };
    let context_key = job.build.context.as_os_str().as_encoded_bytes();
    let identity = Identity {
        id: random_id(),
        name: job
            .build
            .context
            .file_name()
            .map(|n| encode(&n.to_string_lossy()))
            .unwrap_or_else(|| "context".into()),
        shared_key: format!("stack-{:x}", Sha256::digest(context_key))[..30].to_string(),
    };
    let connection = session::dial(&job.engine.endpoint)
        .await
        .map_err(|e| Unavailable(format!("cannot connect for a session: {e}")))?;
    let server = session::open(connection, &api, &identity, served)
        .await
        .map_err(Unavailable)?;
    Ok(Session {
        id: identity.id,
        dockerfile: dockerfile_name,
        api,
        total,
        sent,
        _server: Abort(server),
    })
}

/// Build with BuildKit on `session`; the session ends with the build.
pub async fn build(job: &Job<'_>, session: Session) -> Result<()> {
    let meter = ByteProgress::new(job.progress, job.service);
    let sent = session.sent.clone();
    let result = request(
        job,
        &session.api,
        &query(job, &session.id, &session.dockerfile),
        |_| {
            meter.show(
                "sending context",
                sent.load(Ordering::Relaxed),
                session.total,
            );
        },
    )
    .await;
    drop(session);
    job.progress
        .count("build_context", sent.load(Ordering::Relaxed));
    result
}

/// Run the build request and read its answer; `tick` runs on every message.
async fn request(job: &Job<'_>, api: &str, query: &str, tick: impl Fn(&())) -> Result<()> {
    let failed = |cause: String| Error::Outside {
        message: format!(
            "service `{}`: cannot build image `{}` with BuildKit",
            job.service, job.image
        ),
        causes: vec![cause],
        hint: None,
    };
    let connection = session::dial(&job.engine.endpoint)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let (mut sender, driver) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(connection))
            .await
            .map_err(|e| failed(e.to_string()))?;
    let driver = Abort(tokio::spawn(async move {
        let _ = driver.await;
    }));
    let request = hyper::Request::post(format!("/{api}/build?{query}"))
        .header("Host", "docker")
        .header("Content-Type", "application/x-tar")
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| failed(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed(format!("the engine connection broke: {e}")))?;
    let status = response.status();
    let mut body = response.into_body();
    let mut buffer: Vec<u8> = Vec::new();
    let mut state = Reading::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| failed(format!("the engine connection broke: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            if !status.is_success() {
                continue;
            }
            state.message(job, &line)?;
            tick(&());
        }
    }
    drop(driver);
    if !status.is_success() {
        let text = String::from_utf8_lossy(&buffer).into_owned();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        return Err(failed(format!("{status}: {}", message.trim())));
    }
    if !buffer.is_empty() {
        state.message(job, &buffer.clone())?;
    }
    if !state.built {
        return Err(failed(
            "the engine ended the build without an image (the connection was cut)".into(),
        ));
    }
    Ok(())
}

/// What the build's answer said so far.
#[derive(Default)]
struct Reading {
    last: Vec<String>,
    shown: std::collections::BTreeSet<String>,
    built: bool,
}

impl Reading {
    /// One JSON message of the build's answer.
    fn message(&mut self, job: &Job<'_>, line: &[u8]) -> Result<()> {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
            return Ok(());
        };
        if let Some(error) = value["errorDetail"]["message"]
            .as_str()
            .or(value["error"].as_str())
        {
            return Err(Error::Outside {
                message: format!("service `{}`: building `{}` failed", job.service, job.image),
                causes: self.last.drain(..).chain([error.to_string()]).collect(),
                hint: None,
            });
        }
        if let Some(text) = value["stream"].as_str() {
            keep_line(job.service, text, &mut self.last, job.progress);
        }
        match value["id"].as_str() {
            Some("moby.image.id") => self.built = true,
            Some("moby.buildkit.trace") => {
                let status = value["aux"]
                    .as_str()
                    .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
                    .and_then(|bytes| StatusResponse::decode(bytes.as_slice()).ok());
                if let Some(status) = status {
                    self.status(job, status);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Show each step once when it completes, and the steps' own output.
    fn status(&mut self, job: &Job<'_>, status: StatusResponse) {
        for vertex in status.vertexes {
            if vertex.completed.is_some() && self.shown.insert(vertex.digest.clone()) {
                let cached = if vertex.cached { " (cached)" } else { "" };
                keep_line(
                    job.service,
                    &format!("{}{cached}", vertex.name),
                    &mut self.last,
                    job.progress,
                );
            }
            if !vertex.error.is_empty() {
                self.last.push(vertex.error);
            }
        }
        for log in status.logs {
            for text in String::from_utf8_lossy(&log.msg).lines() {
                keep_line(job.service, text, &mut self.last, job.progress);
            }
        }
    }
}
