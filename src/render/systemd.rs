//! `<project>.service`: the unit that runs `stack supervise` on the server.

use minijinja::context;

use super::{header, render_template};
use crate::config::Config;
use crate::error::Result;

/// Where deploy installs the stack binary on a server.
pub const SERVER_BINARY: &str = "/usr/local/bin/stack";

pub fn unit(config: &Config) -> Result<String> {
    let base = config
        .server
        .as_ref()
        .map(|s| s.path.clone())
        .unwrap_or_else(|| format!("/opt/{}", config.project));
    let stop_timeout = config.health_timeout.as_secs().max(60) + 30;
    render_template(
        "unit.service.j2",
        context! {
            header => header(config),
            project => config.project,
            env => config.env,
            current => format!("{base}/current"),
            binary => SERVER_BINARY,
            stop_timeout => format!("{stop_timeout}s"),
        },
    )
}
