//! Where a command acts: the local engine with the project's configuration, or (with
//! `--on ENV`) an environment's server through the deploy SSH connection, with the
//! configuration and secrets of the release `current` there. Shared by `exec`,
//! `run` and `logs`; and how a command gets the desired state of a configuration
//! ([`bundle_of`], [`sealed_desired`], [`desired_of`]). No command imports another.

use super::{server_engine, server_of, server_placement};
use crate::deploy::Remote;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{Desired, Placement, Secrets};

/// The engine a command acts on, and what runs there.
pub struct Target {
    pub engine: Engine,
    pub desired: Desired,
    pub secrets: Secrets,
    pub placement: Placement,
    /// The SSH connection the engine is reached through (`--on`); closed on drop.
    pub remote: Option<Remote>,
}

impl Target {
    /// The local engine and the project for the current environment (`--env`).
    pub async fn local(context: &super::Context) -> Result<Target> {
        let env = context.env();
        let loaded = context.load_with_secrets(&env)?;
        let config = &loaded.config;
        let out = super::default_out(&config.project_dir, &env);
        let desired = sealed_desired(config, &out)?;
        Ok(Target {
            engine: Engine::connect().await?,
            desired,
            secrets: crate::model::secrets(config),
            placement: Placement {
                root: config.project_dir.clone(),
                bundle: out,
            },
            remote: None,
        })
    }

    /// `env`'s server: its engine through the deploy connection, and the desired state
    /// and secrets of the release `current` points at.
    pub async fn server(context: &super::Context, env: &str) -> Result<Target> {
        let loaded = context.load(env)?;
        let server = server_of(&loaded)?;
        let remote = Remote::connect(&server, env)?;
        let Some(current) = remote.current()? else {
            return Err(Error::No(format!(
                "nothing is deployed to `{env}` on `{}` yet; run `stack deploy {env}`",
                server.host
            )));
        };
        let (desired, secrets) = remote.desired(&current)?;
        Ok(Target {
            engine: server_engine(&remote).await?,
            desired,
            secrets,
            placement: server_placement(&server),
            remote: Some(remote),
        })
    }

    /// [`Target::server`] with `--on ENV`, else [`Target::local`].
    pub async fn of(context: &super::Context, on: &Option<String>) -> Result<Target> {
        match on {
            Some(env) => Target::server(context, env).await,
            None => Target::local(context).await,
        }
    }
}

/// The bundle of `config` at `out` and its desired state: the model is built from the
/// config (`model::bundle_input`), then rendered, which seals each service's digest
/// over the bundle's files it mounts.
pub fn bundle_of(
    config: &crate::config::Config,
    out: &std::path::Path,
) -> Result<(crate::render::Bundle, Desired)> {
    crate::render::render(crate::model::bundle_input(config, out))
}

/// The desired state of `config` as [`bundle_of`] seals it (the digests the containers
/// of its bundle at `out` carry), for a command that compares or waits on containers.
pub fn sealed_desired(config: &crate::config::Config, out: &std::path::Path) -> Result<Desired> {
    Ok(bundle_of(config, out)?.1)
}

/// The desired state of `config` for a command that needs only its services and their
/// settings: no bundle is rendered, so the digests leave out the files services mount.
pub fn desired_of(config: &crate::config::Config) -> Desired {
    crate::model::desired(config, &std::collections::BTreeMap::new())
}
