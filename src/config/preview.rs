//! Preview environments (`STACK_PREVIEW_*`): the settings of an environment that hosts
//! previews, and a preview's name, normalised to a DNS label. Pure: no I/O.

use std::time::Duration;

use super::lookup::{Errors, Keys};
use super::values::Value;
use crate::error::Diagnostic;

/// The preview settings of an environment (`STACK_PREVIEW_*`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Previews {
    /// The base of the previews' host names: `preview.example.com` for
    /// `STACK_PREVIEW_DOMAIN=*.preview.example.com`; none when previews are off.
    pub domain: Option<String>,
    pub seed: Seed,
    /// `STACK_PREVIEW_SEED_COMMAND`: the service and the command run once.
    pub seed_command: Option<(String, String)>,
    #[serde(serialize_with = "super::model::ser_duration")]
    pub ttl: Duration,
    pub max: u32,
    pub memory_mb: u64,
    pub cpus: f64,
    /// Secrets a preview takes from its environment as they are.
    pub shared_secrets: Vec<String>,
}

impl Default for Previews {
    fn default() -> Self {
        Previews {
            domain: None,
            seed: Seed::Empty,
            seed_command: None,
            ttl: DEFAULT_TTL,
            max: DEFAULT_MAX,
            memory_mb: DEFAULT_MEMORY_MB,
            cpus: DEFAULT_CPUS,
            shared_secrets: Vec::new(),
        }
    }
}

/// Defaults that fit a small VM (2 CPUs, 2–4 GB) beside its environment.
const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const DEFAULT_MAX: u32 = 5;
const DEFAULT_MEMORY_MB: u64 = 256;
const DEFAULT_CPUS: f64 = 0.5;

/// What a new preview's data starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Seed {
    Empty,
    Command,
    /// The newest verified dump of the environment's BACKUP preset, restored into the
    /// preview's own Postgres when it is first initialised.
    Backup,
}

/// A preview being deployed: its name and its environment's project.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PreviewOf {
    pub name: String,
    /// The environment's `STACK_PROJECT` (the preview's is `<project>-<name>`).
    pub project: String,
}

impl PreviewOf {
    /// The network the environment's proxy shares with the previews' routers.
    pub fn shared_network(&self) -> String {
        shared_network(&self.project)
    }
}

/// The engine's name of the network an environment's proxy shares with its previews.
pub fn shared_network(project: &str) -> String {
    format!("{project}_{PREVIEWS_NETWORK}")
}

/// The short name of that network in the environment's project.
pub const PREVIEWS_NETWORK: &str = "previews";

/// Read `STACK_PREVIEW_*`.
pub(super) fn read(keys: &Keys, errors: &mut Errors) -> Previews {
    let mut out = Previews::default();
    if let Some(value) = keys.get("STACK_PREVIEW_DOMAIN") {
        out.domain = errors.take(domain(&value));
    }
    if let Some(value) = keys.get("STACK_PREVIEW_SEED") {
        match errors.take(value.choice(&["empty", "command", "backup"])) {
            Some("command") => out.seed = Seed::Command,
            Some("backup") => out.seed = Seed::Backup,
            _ => {}
        }
    }
    if let Some(value) = keys.get("STACK_PREVIEW_SEED_COMMAND") {
        out.seed_command = errors.take(seed_command(&value));
    }
    if out.seed == Seed::Command && out.seed_command.is_none() {
        if let Some(value) = keys.get("STACK_PREVIEW_SEED") {
            errors.push(
                Diagnostic::new("`STACK_PREVIEW_SEED=command` needs `STACK_PREVIEW_SEED_COMMAND`")
                    .with_span(value.span.cloned())
                    .hint("add e.g. `STACK_PREVIEW_SEED_COMMAND=api ./manage.py seed`"),
            );
        }
    }
    if out.seed == Seed::Backup {
        needs_backup(keys, errors);
    }
    if let Some(value) = keys.get("STACK_PREVIEW_TTL") {
        out.ttl = errors.take(value.duration()).unwrap_or(DEFAULT_TTL);
    }
    if let Some(value) = keys.get("STACK_PREVIEW_MAX") {
        out.max = errors
            .take(value.number::<u32>(1, 100))
            .unwrap_or(DEFAULT_MAX);
    }
    if let Some(value) = keys.get("STACK_PREVIEW_MEMORY_MB") {
        out.memory_mb = errors
            .take(value.number::<u64>(6, 1 << 20))
            .unwrap_or(DEFAULT_MEMORY_MB);
    }
    if let Some(value) = keys.get("STACK_PREVIEW_CPUS") {
        out.cpus = errors.take(value.cpus()).unwrap_or(DEFAULT_CPUS);
    }
    if let Some(value) = keys.get("STACK_PREVIEW_SECRETS") {
        out.shared_secrets = value.list();
    }
    out
}

/// `STACK_PREVIEW_SEED=backup` restores a dump of the BACKUP preset into the POSTGRES
/// preset's database: both must be on.
fn needs_backup(keys: &Keys, errors: &mut Errors) {
    let on = |key: &str| {
        keys.get(key)
            .and_then(|value| value.boolean().ok())
            .unwrap_or(false)
    };
    if on("POSTGRES_ENABLED") && on("BACKUP_ENABLED") {
        return;
    }
    if let Some(value) = keys.get("STACK_PREVIEW_SEED") {
        errors.push(
            Diagnostic::new(
                "`STACK_PREVIEW_SEED=backup` restores the environment's newest dump, but the POSTGRES and BACKUP presets are not both enabled",
            )
            .with_span(value.span.cloned())
            .hint("set `POSTGRES_ENABLED=true` and `BACKUP_ENABLED=true`, or use `STACK_PREVIEW_SEED=command`"),
        );
    }
}

/// `*.preview.example.com` (or `preview.example.com`): the base of the previews' hosts.
fn domain(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim().to_ascii_lowercase();
    let base = text.strip_prefix("*.").unwrap_or(&text);
    let valid = !base.is_empty()
        && base.len() <= 200
        && base.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid {
        return Ok(base.to_string());
    }
    Err(Diagnostic::new(format!(
        "`{}` is not a preview domain: {}",
        value.key,
        value.quoted()
    ))
    .with_span(value.span.cloned())
    .hint("write a wildcard host such as `*.preview.example.com`"))
}

/// `SERVICE COMMAND…`.
fn seed_command(value: &Value) -> Result<(String, String), Diagnostic> {
    let text = value.text.trim();
    match text.split_once(char::is_whitespace) {
        Some((service, command)) if !command.trim().is_empty() => {
            Ok((service.to_string(), command.trim().to_string()))
        }
        _ => Err(Diagnostic::new(format!(
            "`{}` must name a service and a command, not {}",
            value.key,
            value.quoted()
        ))
        .with_span(value.span.cloned())
        .hint("write e.g. `STACK_PREVIEW_SEED_COMMAND=api ./manage.py seed`")),
    }
}

/// A branch or pull request name as a DNS label: lower case, `/`, `_`, `.` and blanks
/// become `-`, runs of `-` collapse, `-` trimmed at both ends. What cannot be one (empty,
/// other characters, longer than `room`) is an error that says why.
pub fn normalise_name(raw: &str, room: usize) -> Result<String, Diagnostic> {
    let mut label = String::new();
    for c in raw.trim().chars() {
        let c = c.to_ascii_lowercase();
        let mapped = match c {
            'a'..='z' | '0'..='9' => c,
            '-' | '/' | '_' | '.' | ' ' => '-',
            other => {
                return Err(Diagnostic::new(format!(
                    "the preview name `{}` has `{}`, which a host name cannot hold",
                    raw.escape_default(),
                    other.escape_default()
                ))
                .hint(
                    "use letters, digits, `-`, `/`, `_` or `.` (e.g. `pr-42`, `feature/login`)",
                ));
            }
        };
        if mapped == '-' && (label.is_empty() || label.ends_with('-')) {
            continue;
        }
        label.push(mapped);
    }
    let label = label.trim_end_matches('-').to_string();
    if label.is_empty() {
        return Err(Diagnostic::new(format!(
            "the preview name `{}` has no letter or digit",
            raw.escape_default()
        ))
        .hint("name it after the branch or pull request, e.g. `pr-42`"));
    }
    if label.len() > room {
        return Err(Diagnostic::new(format!(
            "the preview name `{label}` is {} characters; at most {room} fit in a host name here",
            label.len()
        ))
        .hint("use a shorter name, e.g. the pull request's number: `pr-42`"));
    }
    Ok(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(normalise_name("pr-42", 63).unwrap(), "pr-42");
        assert_eq!(
            normalise_name("Feature/Login_Form", 63).unwrap(),
            "feature-login-form"
        );
        assert_eq!(normalise_name("--a..b--", 63).unwrap(), "a-b");
        assert_eq!(normalise_name("  x ", 63).unwrap(), "x");
    }

    #[test]
    fn what_cannot_be_a_label_is_refused() {
        for bad in ["", "---", "/", "é", "a:b", "a\u{7}b"] {
            assert!(normalise_name(bad, 63).is_err(), "{bad:?}");
        }
        let long = "a".repeat(40);
        let error = normalise_name(&long, 30).unwrap_err();
        assert!(error.message.contains("at most 30"), "{}", error.message);
    }
}
