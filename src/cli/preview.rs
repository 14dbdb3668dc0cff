//! `stack preview …`: clap types; doc comments are the `--help` text.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::duration;

#[derive(Debug, Subcommand)]
pub enum PreviewCommand {
    /// Deploy the current project as the preview NAME (created, or updated in place)
    Up(PreviewUpArgs),
    /// The previews on the server: name, age, last deploy, address, disk used
    List(PreviewOnArgs),
    /// Remove the preview NAME: containers, networks, volumes, secrets, files, route
    Down(PreviewDownArgs),
    /// Remove the previews not deployed for longer than `STACK_PREVIEW_TTL`
    Expire(PreviewOnArgs),
}

#[derive(Debug, Args)]
pub struct PreviewUpArgs {
    /// A branch or pull request (`pr-42`, `feature/login`), made a DNS label
    pub name: String,
    /// The environment whose secrets and settings the preview starts from
    #[arg(long, value_name = "ENV", default_value = "staging")]
    pub from: String,
    /// The environment whose server and proxy host the preview (default: `--from`)
    #[arg(long, value_name = "ENV")]
    pub on: Option<String>,
    /// Deploy from a working tree with uncommitted changes
    #[arg(long)]
    pub allow_dirty: bool,
    /// Wait this long for another deploy of this preview (e.g. `5m`)
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = duration)]
    pub lock_wait: Duration,
    /// A note recorded with the lock and in the preview's audit log
    #[arg(long, short = 'm', default_value = "")]
    pub message: String,
}

#[derive(Debug, Args)]
pub struct PreviewOnArgs {
    /// The environment whose server hosts the previews
    #[arg(long, value_name = "ENV", default_value = "staging")]
    pub on: String,
}

#[derive(Debug, Args)]
pub struct PreviewDownArgs {
    /// The preview's name, as given to `preview up`
    pub name: String,
    /// The environment whose server hosts it
    #[arg(long, value_name = "ENV", default_value = "staging")]
    pub on: String,
}
