//! Notifications (`STACK_NOTIFY`): tell every endpoint about an [`Event`], from where it
//! happens (the deploying machine for deploys, rollbacks and forced unlocks; the server
//! for supervise's restarts; the backup container's script sends its own failures).
//!
//! A notification never fails what it reports on: each endpoint gets [`DEADLINE`] per
//! event, [`ATTEMPTS`] tries on a connection error or a 5xx, and a failure is a warning
//! that shows the endpoint's scheme and host only (its path and query carry the token).

use std::time::Duration;

use serde_json::json;

use crate::config::{NotifyFormat, NotifyTarget};
use crate::error::Diagnostic;
use crate::printer::Printer;

/// How long one event may take per endpoint, retries included.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Tries per endpoint and event: the first and two retries.
pub const ATTEMPTS: u32 = 3;
/// The wait before the first retry; doubled before the next.
const BACKOFF: Duration = Duration::from_millis(250);
/// The `.env` variable that carries the URLs to the server (the bundle's 0600 `.env`).
pub const VARIABLE: &str = "STACK_NOTIFY";

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A deploy took the lock and starts changing the server.
    DeployStarted {
        release: String,
    },
    DeploySucceeded {
        release: String,
    },
    /// A deploy failed (`release` is unknown when it failed before its id was known).
    DeployFailed {
        release: Option<String>,
        reason: String,
    },
    /// The server runs `to` again: after a failed health gate (`automatic`), or by
    /// `stack rollback`.
    RolledBack {
        from: Option<String>,
        to: String,
        automatic: bool,
    },
    /// `stack lock release` freed a lock someone held.
    LockReleased {
        holder: String,
    },
    /// A backup step failed (sent by the backup container's script; here for the names).
    BackupFailed {
        step: String,
        reason: String,
    },
    /// A scheduled job's run failed.
    JobFailed {
        job: String,
        code: Option<i64>,
    },
    /// supervise restarted or started again a container.
    Restarted {
        service: String,
        container: String,
        why: String,
    },
}

impl Event {
    /// The event's name in a JSON body and ntfy tags.
    pub fn name(&self) -> &'static str {
        match self {
            Event::DeployStarted { .. } => "deploy_started",
            Event::DeploySucceeded { .. } => "deploy_succeeded",
            Event::DeployFailed { .. } => "deploy_failed",
            Event::RolledBack { .. } => "rolled_back",
            Event::LockReleased { .. } => "lock_released",
            Event::BackupFailed { .. } => "backup_failed",
            Event::JobFailed { .. } => "job_failed",
            Event::Restarted { .. } => "container_restarted",
        }
    }

    /// A failure: ntfy gets a high priority.
    fn is_failure(&self) -> bool {
        matches!(
            self,
            Event::DeployFailed { .. }
                | Event::RolledBack { .. }
                | Event::BackupFailed { .. }
                | Event::JobFailed { .. }
                | Event::LockReleased { .. }
        )
    }

    /// The release the event is about, if any.
    fn release(&self) -> Option<&str> {
        match self {
            Event::DeployStarted { release } | Event::DeploySucceeded { release } => Some(release),
            Event::DeployFailed { release, .. } => release.as_deref(),
            Event::RolledBack { to, .. } => Some(to),
            _ => None,
        }
    }

    /// One line for a person.
    fn message(&self, origin: &Origin) -> String {
        let at = format!("`{}` ({})", origin.project, origin.environment);
        match self {
            Event::DeployStarted { release } => {
                format!("deploy of {at} started: release `{release}`")
            }
            Event::DeploySucceeded { release } => format!("deployed {at}: release `{release}`"),
            Event::DeployFailed {
                release: Some(release),
                reason,
            } => {
                format!("deploy of {at} failed: release `{release}`: {reason}")
            }
            Event::DeployFailed {
                release: None,
                reason,
            } => format!("deploy of {at} failed: {reason}"),
            Event::RolledBack {
                from,
                to,
                automatic,
            } => {
                let why = if *automatic {
                    "automatically, after a failed deploy"
                } else {
                    "by `stack rollback`"
                };
                let from = from
                    .as_ref()
                    .map(|f| format!(" from `{f}`"))
                    .unwrap_or_default();
                format!("{at} rolled back{from} to release `{to}` {why}")
            }
            Event::LockReleased { holder } => {
                format!("the deploy lock of {at} was released by force (was: {holder})")
            }
            Event::BackupFailed { step, reason } => {
                format!("backup of {at} failed during {step}: {reason}")
            }
            Event::JobFailed {
                job,
                code: Some(code),
            } => format!("job `{job}` of {at} failed with exit code {code}"),
            Event::JobFailed { job, code: None } => format!("job `{job}` of {at} failed"),
            Event::Restarted {
                service,
                container,
                why,
            } => {
                format!("supervise restarted `{container}` ({service}) of {at}: {why}")
            }
        }
    }
}

/// Who sends: the project, its environment and this machine.
#[derive(Debug, Clone)]
pub struct Origin {
    pub project: String,
    pub environment: String,
    pub host: String,
}

impl Origin {
    /// `project` in `environment`, sent from this machine.
    pub fn here(project: &str, environment: &str) -> Origin {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        Origin {
            project: project.to_string(),
            environment: environment.to_string(),
            host,
        }
    }
}

/// One request: where, what body, which headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The request `format` wants for `event` (pure: unit-tested for every format).
pub fn request(format: NotifyFormat, event: &Event, origin: &Origin, time: &str) -> Request {
    let message = event.message(origin);
    let json_request = |body: serde_json::Value| Request {
        content_type: "application/json",
        headers: Vec::new(),
        body: body.to_string(),
    };
    match format {
        NotifyFormat::Json => json_request(json!({
            "event": event.name(),
            "project": origin.project,
            "environment": origin.environment,
            "release": event.release(),
            "message": message,
            "time": time,
            "host": origin.host,
        })),
        NotifyFormat::Slack => json_request(json!({ "text": format!("stack: {message}") })),
        NotifyFormat::Discord => json_request(json!({ "content": format!("stack: {message}") })),
        NotifyFormat::Ntfy => {
            let priority = if event.is_failure() {
                "high"
            } else {
                "default"
            };
            let tag = if event.is_failure() {
                "warning"
            } else {
                "white_check_mark"
            };
            Request {
                content_type: "text/plain; charset=utf-8",
                headers: vec![
                    (
                        "Title",
                        format!(
                            "stack: {} {}",
                            origin.project,
                            event.name().replace('_', " ")
                        ),
                    ),
                    ("Priority", priority.to_string()),
                    ("Tags", format!("{tag},{}", event.name())),
                ],
                body: message,
            }
        }
    }
}

/// The endpoints of one project, ready to send.
#[derive(Clone)]
pub struct Notifier {
    targets: Vec<NotifyTarget>,
    origin: Origin,
    printer: Printer,
}

impl Notifier {
    pub fn new(targets: Vec<NotifyTarget>, origin: Origin, printer: Printer) -> Notifier {
        Notifier {
            targets,
            origin,
            printer,
        }
    }

    /// The endpoints of a bundle's `.env` ([`VARIABLE`]) on a server; an item that does not
    /// parse is a warning (it was checked when the bundle was built).
    pub fn from_secrets(
        secrets: &crate::model::Secrets,
        origin: Origin,
        printer: Printer,
    ) -> Notifier {
        let mut targets = Vec::new();
        if let Some(value) = secrets.0.get(VARIABLE) {
            for item in crate::config::values::split_list(value) {
                match NotifyTarget::parse(&item) {
                    Ok(target) => targets.push(target),
                    Err(problem) => printer.warn(&Diagnostic::new(format!(
                        "an item of `{VARIABLE}` {problem}; it is not notified"
                    ))),
                }
            }
        }
        Notifier::new(targets, origin, printer)
    }

    /// [`Notifier::send`] for a spawned task.
    pub async fn send_owned(self, event: Event) {
        self.send(event).await
    }

    /// Tell every endpoint about `event`, concurrently; a failure is a warning.
    pub async fn send(&self, event: Event) {
        if self.targets.is_empty() {
            return;
        }
        let Ok(client) = reqwest::Client::builder().build() else {
            self.printer.warn(&Diagnostic::new(
                "cannot send notifications: the HTTP client did not start",
            ));
            return;
        };
        let time = now();
        let sends = self.targets.iter().map(|target| {
            let request = request(target.format, &event, &self.origin, &time);
            let client = client.clone();
            async move {
                let outcome = tokio::time::timeout(DEADLINE, deliver(&client, target, &request))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {}s", DEADLINE.as_secs())));
                (target, outcome)
            }
        });
        for (target, outcome) in futures_util::future::join_all(sends).await {
            if let Err(problem) = outcome {
                self.printer.warn(
                    &Diagnostic::new(format!(
                        "could not notify {} of `{}`: {problem}",
                        target.redacted(),
                        event.name()
                    ))
                    .hint("the notification is dropped; what it reports on is not affected"),
                );
            }
        }
    }
}

/// Post `request` to `target`, retrying a connection error or a 5xx with backoff.
async fn deliver(
    client: &reqwest::Client,
    target: &NotifyTarget,
    request: &Request,
) -> Result<(), String> {
    let mut wait = BACKOFF;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let mut builder = client
            .post(&target.url)
            .header(reqwest::header::CONTENT_TYPE, request.content_type)
            .body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        match builder.send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) if response.status().is_server_error() => {
                last = format!("it answered {}", response.status());
            }
            Ok(response) => return Err(format!("it answered {}", response.status())),
            // reqwest's error text includes the URL: describe it without.
            Err(e) => last = describe(&e),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    Err(format!("{last} ({ATTEMPTS} attempts)"))
}

/// A transport error without its URL.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    match cause.is_empty() {
        true => kind.to_string(),
        false => format!("{kind}: {cause}"),
    }
}

/// The current time, RFC 3339 in UTC.
fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // `YYYYMMDDTHHMMSSZ` → `YYYY-MM-DDTHH:MM:SSZ`.
    let t = crate::deploy::timestamp_of(secs);
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[9..11],
        &t[11..13],
        &t[13..15]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            project: "shop".into(),
            environment: "prod".into(),
            host: "ci-1".into(),
        }
    }

    fn failed() -> Event {
        Event::DeployFailed {
            release: Some("prod-1".into()),
            reason: "`web` is unhealthy".into(),
        }
    }

    #[test]
    fn a_json_webhook_gets_every_field() {
        let request = request(
            NotifyFormat::Json,
            &failed(),
            &origin(),
            "2026-01-02T03:04:05Z",
        );
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(
            body,
            json!({
                "event": "deploy_failed",
                "project": "shop",
                "environment": "prod",
                "release": "prod-1",
                "message": "deploy of `shop` (prod) failed: release `prod-1`: `web` is unhealthy",
                "time": "2026-01-02T03:04:05Z",
                "host": "ci-1",
            })
        );
        assert_eq!(request.content_type, "application/json");
    }

    #[test]
    fn slack_gets_text_and_discord_content() {
        let slack = request(NotifyFormat::Slack, &failed(), &origin(), "t");
        assert_eq!(
            slack.body,
            r#"{"text":"stack: deploy of `shop` (prod) failed: release `prod-1`: `web` is unhealthy"}"#
        );
        let discord = request(NotifyFormat::Discord, &failed(), &origin(), "t");
        assert!(discord
            .body
            .starts_with(r#"{"content":"stack: deploy of `shop`"#));
    }

    #[test]
    fn ntfy_gets_the_message_as_body_and_headers() {
        let ntfy = request(NotifyFormat::Ntfy, &failed(), &origin(), "t");
        assert_eq!(
            ntfy.body,
            "deploy of `shop` (prod) failed: release `prod-1`: `web` is unhealthy"
        );
        assert_eq!(
            ntfy.headers,
            vec![
                ("Title", "stack: shop deploy failed".to_string()),
                ("Priority", "high".to_string()),
                ("Tags", "warning,deploy_failed".to_string()),
            ]
        );
        let ok = request(
            NotifyFormat::Ntfy,
            &Event::DeploySucceeded {
                release: "r".into(),
            },
            &origin(),
            "t",
        );
        assert_eq!(ok.headers[1].1, "default");
    }

    #[test]
    fn the_time_is_rfc_3339() {
        let time = now();
        assert_eq!(time.len(), 20, "{time}");
        assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    }
}
