//! Getting a `BUILD` image onto the server without a registry of one's own: only the
//! layers the server lacks cross the wire (`STACK_IMAGE_TRANSFER=registry`, the default,
//! through [`crate::engine::registry`]), or the whole image as one archive
//! (`STACK_IMAGE_TRANSFER=archive`, and the fallback when the temporary registry cannot
//! start on the server).

use std::sync::Mutex;

use super::Remote;
use crate::engine::registry::{Moved, TempRegistry};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::printer::Progress;

/// How images travel, as `STACK_IMAGE_TRANSFER` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Registry,
    Archive,
}

/// Sends images to one server during one deploy; the temporary registry is started on
/// the first image that needs it and ended when the shipper is dropped.
pub struct Shipper<'a> {
    remote: &'a Remote,
    mode: Mode,
    registry_image: String,
    project: String,
    state: tokio::sync::Mutex<Option<Open>>,
    /// Totals, for `--json`.
    pub moved: Mutex<Moved>,
}

struct Open {
    registry: TempRegistry,
    local_port: u16,
}

impl<'a> Shipper<'a> {
    pub fn new(remote: &'a Remote, mode: Mode, registry_image: &str, project: &str) -> Self {
        Shipper {
            remote,
            mode,
            registry_image: registry_image.to_string(),
            project: project.to_string(),
            state: tokio::sync::Mutex::new(None),
            moved: Mutex::new(Moved::default()),
        }
    }

    /// Put `reference` (a local image) on `server` under the same name.
    pub async fn send(
        &self,
        service: &str,
        reference: &str,
        (local, server): (&Engine, &Engine),
        progress: &Progress,
    ) -> Result<()> {
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
        let bytes = std::sync::Arc::new(Bytes::new(progress, service));
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
        Ok(())
    }

    async fn open(&self, server: &Engine) -> Result<Open> {
        let registry = server
            .start_registry(&self.project, &self.registry_image)
            .await?;
        let session = &self.remote.session;
        let mut last = None;
        for local_port in candidate_ports(session.target()) {
            match session.forward(local_port, registry.port, false) {
                Ok(()) => {
                    wait_until_answers(local_port).await?;
                    return Ok(Open {
                        registry,
                        local_port,
                    });
                }
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
        bytes: &Bytes,
    ) -> Result<Moved> {
        let (repo, tag) = crate::engine::split_reference(reference);
        let path = format!("{}/{}:{}", self.project, repo.replace([':', '/'], "-"), tag);
        let here = format!("127.0.0.1:{}/{path}", open.local_port);
        let there = format!("127.0.0.1:{}/{path}", open.registry.port);
        local.tag(reference, &here).await?;
        let pushed = local
            .push(&here, |done, total| {
                bytes.show("sending layer", done, total)
            })
            .await;
        let _ = local.untag(&here).await;
        pushed?;
        let pulled = server
            .pull_counted(&there, |done, total| {
                bytes.show("server fetching", done, total)
            })
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
    let hash = target
        .bytes()
        .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
    let base = 43_000 + (hash % 4_000) as u16;
    (0..8)
        .map(|i| base + i)
        .filter(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .collect()
}

/// Until the registry answers through the forward (bounded: 10 s).
async fn wait_until_answers(port: u16) -> Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(1))
        .build()
        .map_err(|e| Error::outside(format!("cannot make an HTTP client: {e}")))?;
    let url = format!("http://127.0.0.1:{port}/v2/");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(response) = client.get(&url).send().await {
            if response.status().is_success() {
                return Ok(());
            }
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::outside(
                "the temporary registry did not answer through the SSH connection within 10 s",
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Byte progress of one service's transfer: the spinner's message on a terminal, a line
/// per 10 % elsewhere.
struct Bytes {
    progress: Progress,
    service: String,
    started: std::time::Instant,
    /// The phase and decile last shown as a step, and when a detail line was last shown.
    decile: Mutex<(String, u64, std::time::Instant)>,
}

impl Bytes {
    fn new(progress: &Progress, service: &str) -> Self {
        Bytes {
            progress: progress.clone(),
            service: service.to_string(),
            started: std::time::Instant::now(),
            decile: Mutex::new((String::new(), u64::MAX, std::time::Instant::now())),
        }
    }

    fn show(&self, what: &str, done: u64, total: u64) {
        if total == 0 {
            return;
        }
        let total = total.max(done);
        let decile = done.min(total) * 10 / total;
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let left = if rate > 0.0 {
            format!(", {:.0} s left", (total.saturating_sub(done)) as f64 / rate)
        } else {
            String::new()
        };
        let line = format!(
            "{what}: {} of {} ({}/s{left})",
            human(done),
            human(total),
            human(rate as u64)
        );
        let Ok(mut last) = self.decile.lock() else {
            return;
        };
        let now = std::time::Instant::now();
        if last.0 != what || last.1 != decile {
            *last = (what.to_string(), decile, now);
            self.progress.step(&self.service, &line);
        } else if now.duration_since(last.2) >= std::time::Duration::from_millis(250) {
            // Between deciles: at most four lines a second (a bar's redraw, or `-v`).
            last.2 = now;
            self.progress.detail(&self.service, &line);
        }
    }
}

/// `12.3 MB`.
pub fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}
