//! Getting a `BUILD` image onto the server without a registry of one's own: only the
//! layers the server lacks cross the wire (`STACK_IMAGE_TRANSFER=registry`, the default,
//! through [`crate::engine::registry`]), or the whole image as one archive
//! (`STACK_IMAGE_TRANSFER=archive`, and the fallback when the temporary registry cannot
//! start on the server).

use std::sync::Mutex;

use super::Remote;
use crate::config::BuildSpec;
use crate::engine::registry::{login, Moved, TempRegistry};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::printer::{human, ByteProgress, Progress};

/// How images travel, as `STACK_IMAGE_TRANSFER` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Registry,
    Archive,
}

/// Sends images to one server during one deploy; the temporary registry is started on
/// the first image that needs it (or ahead of it, by [`Shipper::warm`]) and ended when the
/// shipper is dropped.
pub struct Shipper<'a> {
    remote: &'a Remote,
    mode: Mode,
    registry_image: String,
    project: String,
    /// What the registry answers with, so that an answer on its port is known to be its.
    token: String,
    /// What every request to the registry must log in with (never shown, never stored).
    password: String,
    /// A registry being started ahead of the first image that needs it.
    starting: Mutex<Option<tokio::task::JoinHandle<Result<Option<TempRegistry>>>>>,
    state: tokio::sync::Mutex<Option<Open>>,
    /// Totals, for `--json`.
    pub moved: Mutex<Moved>,
}

struct Open {
    registry: TempRegistry,
    local_port: u16,
}

/// Why a registry is not reachable through the forward.
enum Unreachable {
    /// Something else answers on its port: try another.
    Taken,
    /// The registry's container ended before it answered: its port was taken on the
    /// server (by a program that does not answer HTTP, or by the previous deploy's
    /// registry, which was still going away when this one started): try another.
    Exited,
    Failed(Error),
}

impl<'a> Shipper<'a> {
    pub fn new(remote: &'a Remote, mode: Mode, registry_image: &str, project: &str) -> Self {
        let mut bytes = [0u8; 6];
        let _ = getrandom::fill(&mut bytes);
        let mut secret = [0u8; 16];
        let _ = getrandom::fill(&mut secret);
        Shipper {
            remote,
            mode,
            registry_image: registry_image.to_string(),
            project: project.to_string(),
            token: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            password: secret.iter().map(|b| format!("{b:02x}")).collect(),
            starting: Mutex::new(None),
            state: tokio::sync::Mutex::new(None),
            moved: Mutex::new(Moved::default()),
        }
    }

    /// Start the temporary registry now, on its own task, if `server` lacks any of
    /// `images` (local image IDs): it is then up by the time the lock and the other round
    /// trips before the first image are done. Needs a multi-threaded runtime to overlap
    /// with them; the images are sent either way.
    pub fn warm(&self, server: &Engine, images: Vec<String>) {
        if self.mode != Mode::Registry || images.is_empty() {
            return;
        }
        let server = server.clone();
        let (project, image) = (self.project.clone(), self.registry_image.clone());
        let (port, token) = (registry_port(&project, 0), self.token.clone());
        let password = self.password.clone();
        let task = tokio::spawn(async move {
            for id in &images {
                if server.image_id(id).await?.is_none() {
                    let registry = server
                        .start_registry(&project, &image, (port, &token, &password))
                        .await?;
                    return Ok(Some(registry));
                }
            }
            Ok(None)
        });
        if let Ok(mut starting) = self.starting.lock() {
            *starting = Some(task);
        }
    }

    /// Put `reference` (a local image, built from `build`) on `server` under the same
    /// name: with `registry`, the server pulls its base image itself when it can
    /// ([`super::base`]) and only the layers above it cross the connection.
    pub async fn send(
        &self,
        (service, build): (&str, Option<&BuildSpec>),
        reference: &str,
        (local, server): (&Engine, &Engine),
        progress: &Progress,
    ) -> Result<()> {
        if let (Mode::Registry, Some(build)) = (self.mode, build) {
            let names = (service, self.project.as_str());
            if let Some(moved) =
                super::base::send_above_base(names, reference, build, (local, server), progress)
                    .await?
            {
                self.count(service, moved, progress);
                return Ok(());
            }
        }
        let mut state = self.state.lock().await;
        if self.mode == Mode::Registry && state.is_none() {
            match self.open(server).await {
                Ok(open) => *state = Some(open),
                Err(e) => progress.step(
                    service,
                    &format!(
                        "the temporary registry did not start ({}); sending the whole image",
                        e.render().lines().next().unwrap_or_default()
                    ),
                ),
            }
        }
        let bytes = std::sync::Arc::new(ByteProgress::new(progress, service));
        let moved = match state.as_ref() {
            Some(open) => {
                self.through_registry(open, reference, (local, server), &bytes)
                    .await?
            }
            None => {
                let bytes = bytes.clone();
                local
                    .send_image(reference, server, move |done, total| {
                        bytes.show("sending", done, total)
                    })
                    .await?
            }
        };
        self.count(service, moved, progress);
        Ok(())
    }

    /// Say what crossed for `service`, and add it to the totals.
    fn count(&self, service: &str, moved: Moved, progress: &Progress) {
        progress.step(
            service,
            &format!(
                "sent {} ({} layer(s), {} already on the server)",
                human(moved.bytes),
                moved.layers,
                moved.layers_skipped
            ),
        );
        if let Ok(mut total) = self.moved.lock() {
            total.bytes += moved.bytes;
            total.layers += moved.layers;
            total.layers_skipped += moved.layers_skipped;
        }
    }

    /// The registry (the one [`Shipper::warm`] started, or a new one), reached through a
    /// forward from this machine's loopback. A port on the server that something else
    /// holds is left for the next of a few.
    async fn open(&self, server: &Engine) -> Result<Open> {
        let warmed = self.starting.lock().ok().and_then(|mut s| s.take());
        let mut warmed = match warmed {
            Some(task) => task.await.map_err(|e| {
                Error::outside(format!("the temporary registry's start failed: {e}"))
            })??,
            None => None,
        };
        let mut last = None;
        for attempt in 0..4 {
            let registry = match warmed.take() {
                Some(registry) => registry,
                None => {
                    let port = registry_port(&self.project, attempt);
                    server
                        .start_registry(
                            &self.project,
                            &self.registry_image,
                            (port, &self.token, &self.password),
                        )
                        .await?
                }
            };
            let local_port = self.forward(registry.port)?;
            let answers = wait_until_answers(
                (server, &registry.container),
                local_port,
                (&registry.token, &registry.password),
            );
            match answers.await {
                Ok(()) => {
                    return Ok(Open {
                        registry,
                        local_port,
                    })
                }
                Err(why) => {
                    let _ = self.remote.session.forward(local_port, registry.port, true);
                    match why {
                        Unreachable::Taken => {
                            last = Some(Error::outside(format!(
                                "port {} on the server's loopback is taken",
                                registry.port
                            )))
                        }
                        Unreachable::Exited => {
                            last = Some(Error::outside(format!(
                                "the temporary registry on port {} of the server's loopback \
                                 ended before it answered (the port is taken)",
                                registry.port
                            )))
                        }
                        Unreachable::Failed(e) => return Err(e),
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::outside("no free port for the temporary registry")))
    }

    /// Forward a local port to `remote` on the server's loopback: the same local port for
    /// the same server from one deploy to the next when it is free.
    fn forward(&self, remote: u16) -> Result<u16> {
        let session = &self.remote.session;
        let mut last = None;
        for local_port in candidate_ports(session.target()) {
            match session.forward(local_port, remote, false) {
                Ok(()) => return Ok(local_port),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::outside("no local port to forward to the registry")))
    }

    /// Push from here (the registry skips what it has), pull on the server (it skips
    /// what it has); the temporary names go again.
    async fn through_registry(
        &self,
        open: &Open,
        reference: &str,
        (local, server): (&Engine, &Engine),
        bytes: &ByteProgress,
    ) -> Result<Moved> {
        let (repo, tag) = crate::engine::split_reference(reference);
        let path = format!("{}/{}:{}", self.project, repo.replace([':', '/'], "-"), tag);
        let here = format!("127.0.0.1:{}/{path}", open.local_port);
        let there = format!("127.0.0.1:{}/{path}", open.registry.port);
        local.tag(reference, &here).await?;
        let pushed = local
            .push(&here, &open.registry.password, |done, total| {
                bytes.show("sending layer", done, total)
            })
            .await;
        let _ = local.untag(&here).await;
        pushed?;
        let pulled = server
            .pull(
                &there,
                Some(login(&open.registry.password)),
                |done, total| bytes.show("server fetching", done, total),
            )
            .await?;
        server.tag(&there, reference).await?;
        let _ = server.untag(&there).await;
        // The engine's push events name no layer, so the count is the pull's: the
        // compressed layers the server lacked, which is what the push sent unless the
        // registry kept a layer the server has since lost.
        Ok(pulled)
    }
}

impl Drop for Shipper<'_> {
    fn drop(&mut self) {
        // A registry still starting is stopped where it is; one started and never used
        // goes with the task's output (its stdin closes).
        if let Some(task) = self.starting.get_mut().ok().and_then(|s| s.take()) {
            task.abort();
        }
        if let Some(open) = self.state.get_mut().take() {
            let _ = self
                .remote
                .session
                .forward(open.local_port, open.registry.port, true);
            // Dropping the registry closes its stdin: it stops and removes itself.
            drop(open.registry);
        }
    }
}

/// The same local port for the same server from one deploy to the next: the local
/// engine remembers which layers it pushed to a registry by its address, so a new
/// address would send every layer again. Then a few neighbours if it is taken.
fn candidate_ports(target: &str) -> Vec<u16> {
    let base = 43_000 + (djb2(target) % 4_000) as u16;
    (0..8)
        .map(|i| base + i)
        .filter(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .collect()
}

/// The port the project's registry listens on, on the server's loopback: one per
/// project, then its neighbours on later attempts, all in 30000..32760, below Linux's
/// ephemeral range (32768 and up), where an outgoing connection's port would make the
/// registry's listen fail.
fn registry_port(project: &str, attempt: u16) -> u16 {
    30_000 + (djb2(project) % 690) as u16 * 4 + attempt
}

fn djb2(text: &str) -> u32 {
    text.bytes()
        .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b))
}

/// How long a registry whose container still runs may take to answer: a loaded server
/// may take that long to start a container and prune its storage.
const ANSWER_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Until the registry answers through the forward with `token` (bounded by
/// [`ANSWER_LIMIT`]). An answer without it is another program's on that port. No answer
/// while the registry's container has ended means its port was taken (it exits when it
/// cannot listen): that is known at once, not after the limit, so the next port is tried
/// instead of the whole image being sent.
async fn wait_until_answers(
    (server, container): (&Engine, &str),
    port: u16,
    (token, password): (&str, &str),
) -> std::result::Result<(), Unreachable> {
    // Plain HTTP through the forward: no root certificates to load.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(1))
        .tls_built_in_root_certs(false)
        .build()
        .map_err(|e| {
            Unreachable::Failed(Error::outside(format!("cannot make an HTTP client: {e}")))
        })?;
    let url = format!("http://127.0.0.1:{port}/v2/");
    let deadline = std::time::Instant::now() + ANSWER_LIMIT;
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        let request = client
            .get(&url)
            .basic_auth(crate::engine::registry::REGISTRY_USER, Some(password));
        if let Ok(response) = request.send().await {
            let ours = response
                .headers()
                .get(crate::engine::registry::TOKEN_HEADER)
                .is_some_and(|value| value.as_bytes() == token.as_bytes());
            match (ours, response.status().is_success()) {
                (true, true) => return Ok(()),
                (false, _) => return Err(Unreachable::Taken),
                (true, false) => {}
            }
        } else if !running(server, container).await? {
            return Err(Unreachable::Exited);
        }
        if std::time::Instant::now() >= deadline {
            return Err(Unreachable::Failed(Error::outside(format!(
                "the temporary registry did not answer through the SSH connection within {} s",
                ANSWER_LIMIT.as_secs()
            ))));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(100));
    }
}

/// Whether the registry's container still runs (it removes itself when it ends).
async fn running(server: &Engine, container: &str) -> std::result::Result<bool, Unreachable> {
    match server.state(container).await {
        Ok(state) => Ok(state.is_some_and(|state| state.state == "running")),
        Err(e) => Err(Unreachable::Failed(e)),
    }
}
