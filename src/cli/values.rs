//! The values of arguments that clap checks while parsing: enums and the parsers of
//! durations and ports (a bad one is exit code 2 before anything runs).

use std::time::Duration;

/// `stack init --proxy`: the reverse proxy of the new project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyArg {
    Caddy,
    Nginx,
    None,
}

impl ProxyArg {
    /// The value of `STACK_PROXY`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyArg::Caddy => "caddy",
            ProxyArg::Nginx => "nginx",
            ProxyArg::None => "none",
        }
    }
}

/// `stack init --presets`: a preset to switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PresetArg {
    Postgres,
    Redis,
    Mailpit,
    Minio,
    Meilisearch,
    Monitoring,
    Backup,
}

impl PresetArg {
    /// Its name, as `init` lists it (the project file's `<NAME>_ENABLED`, lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            PresetArg::Postgres => "postgres",
            PresetArg::Redis => "redis",
            PresetArg::Mailpit => "mailpit",
            PresetArg::Minio => "minio",
            PresetArg::Meilisearch => "meilisearch",
            PresetArg::Monitoring => "monitoring",
            PresetArg::Backup => "backup",
        }
    }
}

/// A port argument, checked as `SERVICE_<NAME>_PORT` is; clap reports a bad one with
/// exit code 2.
pub(super) fn port(text: &str) -> Result<u16, String> {
    crate::config::check_port("--port", text).map_err(|d| d.message)
}

/// A duration argument (`30s`, `5m`), read by the project file's own parser; clap
/// reports a bad one with exit code 2.
pub(super) fn duration(text: &str) -> Result<Duration, String> {
    crate::config::values::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration: write e.g. `30s` or `5m`"))
}

/// A release id argument; clap reports a malformed one with exit code 2.
pub(super) fn release_id(text: &str) -> Result<crate::deploy::ReleaseId, String> {
    crate::deploy::ReleaseId::parse(text).ok_or_else(|| {
        format!("`{text}` is not a release id: `stack releases ENV` lists them (`<env>-<YYYYMMDDTHHMMSSZ>-<8 hex digits>`)")
    })
}
