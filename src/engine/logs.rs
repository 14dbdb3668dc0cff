//! Logs and events of containers.

use bollard::query_parameters::{EventsOptions, LogsOptions};
use futures_util::{Stream, StreamExt};

use super::{outside, Engine};
use crate::error::Result;

/// The container events that change what a waiter or `supervise` sees (`health_status`
/// matches `health_status: healthy` and the like; Docker sends it when the status changes).
const STATE_EVENTS: [&str; 11] = [
    "create",
    "start",
    "restart",
    "stop",
    "kill",
    "die",
    "oom",
    "destroy",
    "pause",
    "unpause",
    "health_status",
];

impl Engine {
    /// The last `tail` log lines of a container.
    pub async fn tail(&self, id: &str, tail: usize) -> Result<Vec<String>> {
        let mut stream = self.logs(id, false, Some(tail));
        let mut lines = Vec::new();
        while let Some(item) = stream.next().await {
            let item = item?;
            lines.extend(item.lines().map(String::from));
        }
        Ok(lines)
    }

    /// A container's log as text chunks.
    pub fn logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<usize>,
    ) -> impl Stream<Item = Result<String>> + Send + 'static {
        self.logs_since(id, follow, tail, None)
    }

    /// [`Engine::logs`] from `since` (Unix seconds) on.
    pub fn logs_since(
        &self,
        id: &str,
        follow: bool,
        tail: Option<usize>,
        since: Option<i64>,
    ) -> impl Stream<Item = Result<String>> + Send + 'static {
        let options = LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_string(), |t| t.to_string()),
            since: since.map_or(0, |s| s.clamp(0, i32::MAX as i64) as i32),
            ..Default::default()
        };
        let id = id.to_string();
        self.docker.logs(&id, Some(options)).map(move |item| {
            item.map(|output| String::from_utf8_lossy(&output.into_bytes()).into_owned())
                .map_err(|e| outside(&format!("cannot read the log of `{id}`"), e))
        })
    }

    /// Container events of a project: (container id, action), for the changes of its
    /// state ([`STATE_EVENTS`]).
    pub fn events(&self, project: &str) -> impl Stream<Item = (String, String)> + Send + 'static {
        let mut filters = Engine::project_filter(project);
        filters.insert("type".into(), vec!["container".into()]);
        // The changes of a container's state only: not the three `exec_*` events each
        // health check makes every interval (most of a no-op `start`'s decoding work).
        filters.insert("event".into(), STATE_EVENTS.map(String::from).to_vec());
        self.docker
            .events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .filter_map(|event| async move {
                let event = event.ok()?;
                let id = event.actor.and_then(|a| a.id)?;
                Some((id, event.action.unwrap_or_default()))
            })
    }
}
