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
    // Starting waits for readiness (sd_notify); stopping gives every container its grace.
    let start_timeout = config.health_timeout.as_secs() + 120;
    let longest_grace = config
        .services
        .iter()
        .filter_map(|s| s.options.stop_grace)
        .max()
        .map_or(0, |grace| grace.as_secs());
    let stop_timeout = longest_grace.max(60) + 30;
    render_template(
        "unit.service.j2",
        context! {
            header => header(config),
            project => config.project,
            env => config.env,
            current => format!("{base}/current"),
            binary => SERVER_BINARY,
            start_timeout => format!("{start_timeout}s"),
            stop_timeout => format!("{stop_timeout}s"),
        },
    )
}
