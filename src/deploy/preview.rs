//! The server side of previews, under the environment's `SERVER_PATH`:
//!
//! ```text
//! SERVER_PATH/previews/<name>/            a preview's own SERVER_PATH: releases, current,
//!                                         lock, audit.log (a deploy like any other)
//! SERVER_PATH/previews/<name>/created     when `preview up` first made it (UTC)
//! SERVER_PATH/previews/<name>/seeded      its seed command ran (never again)
//! SERVER_PATH/preview-routes/<name>.caddy its sites, read by the environment's proxy
//! ```
//!
//! Every command here runs in one round trip through the environment's [`Remote`].

use super::ssh::quote;
use super::{timestamp, Remote};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// What `preview list` shows of one preview.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PreviewEntry {
    pub name: String,
    /// `YYYYMMDDTHHMMSSZ`, when it was first created.
    pub created: String,
    /// The release `current` points at, none before the first deploy finished.
    pub release: Option<String>,
    /// Seconds since the epoch of the last deploy (the `current` link's change).
    pub deployed_at: Option<u64>,
    pub disk_kb: u64,
}

/// What [`Remote::find_preview`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    None,
    Free,
    /// A deploy of it holds its lock: the lock's owner line.
    Held(String),
}

/// The folder of previews under an environment's path.
pub fn previews_dir(server_path: &str) -> String {
    format!("{server_path}/previews")
}

/// A preview's own `SERVER_PATH`.
pub fn preview_path(server_path: &str, name: &str) -> String {
    format!("{}/{name}", previews_dir(server_path))
}

impl Remote {
    /// Every preview of this environment, by name.
    pub fn previews(&self) -> Result<Vec<PreviewEntry>> {
        let script = format!(
            "cd {dir} 2>/dev/null || exit 0; for d in */; do d=${{d%/}}; [ -f \"$d/created\" ] || continue; \
             rel=$(readlink \"$d/current\" 2>/dev/null); at=$(stat -c %Y \"$d/current\" 2>/dev/null); \
             printf 'preview\\t%s\\t%s\\t%s\\t%s\\t%s\\n' \"$d\" \"$(cat \"$d/created\")\" \"${{rel#releases/}}\" \"$at\" \"$(du -sk \"$d\" 2>/dev/null | cut -f1)\"; done",
            dir = quote(&previews_dir(&self.server.path)),
        );
        let out = self.session.check("list the previews", &script, None)?;
        Ok(out.lines().filter_map(parse_entry).collect())
    }

    /// Make the preview's folder (once) and say whether it was there; refused beyond
    /// `max` previews, in the same round trip.
    pub fn claim_preview(&self, name: &str, max: u32) -> Result<bool> {
        let dir = quote(&preview_path(&self.server.path, name));
        let script = format!(
            "if [ -f {dir}/created ]; then echo existing; exit 0; fi; \
             n=$(ls -d {all}/*/created 2>/dev/null | wc -l); \
             if [ \"$n\" -ge {max} ]; then echo \"full $n\"; exit 0; fi; \
             mkdir -p {dir} && printf '%s\\n' {now} > {dir}/created.new && mv {dir}/created.new {dir}/created && echo created",
            all = quote(&previews_dir(&self.server.path)),
            now = quote(&timestamp()),
        );
        let out = self
            .session
            .check("create the preview's folder", &script, None)?;
        match out.trim() {
            "existing" => Ok(true),
            "created" => Ok(false),
            full if full.starts_with("full") => Err(Error::No(format!(
                "`{}` already runs {max} previews (`STACK_PREVIEW_MAX`), so `{name}` was not created\n\
                 hint: remove one with `stack preview down NAME --on {}` (see `stack preview list --on {}`), or raise `STACK_PREVIEW_MAX`",
                self.server.host, self.env, self.env
            ))),
            other => Err(Error::outside(format!(
                "unexpected answer from the server: {other}"
            ))),
        }
    }

    /// Does `name` exist as a preview here, and who holds its deploy lock, if anyone?
    pub fn find_preview(&self, name: &str) -> Result<Found> {
        let dir = quote(&preview_path(&self.server.path, name));
        let out = self.session.check(
            "look for the preview",
            &format!(
                "if [ ! -f {dir}/created ]; then echo none; \
                 elif [ -d {dir}/lock ]; then echo held; cat {dir}/lock/info 2>/dev/null | tr '\\n' ' '; \
                 else echo free; fi"
            ),
            None,
        )?;
        let mut lines = out.lines();
        Ok(match lines.next().unwrap_or_default() {
            "free" => Found::Free,
            "held" => Found::Held(lines.next().unwrap_or("owner unknown").trim().to_string()),
            _ => Found::None,
        })
    }

    /// Write the preview's sites for the environment's proxy (atomically).
    pub fn write_preview_route(&self, env_path: &str, name: &str, sites: &str) -> Result<()> {
        let dir = routes_dir(env_path);
        let file = quote(&format!("{dir}/{name}.caddy"));
        let tmp = quote(&format!("{dir}/.{name}.caddy.new"));
        let script = format!(
            "set -e; mkdir -p {d}; chmod 755 {d}; cat > {tmp}; chmod 644 {tmp}; mv -f {tmp} {file}",
            d = quote(&dir)
        );
        self.session
            .check("write the preview's route", &script, Some(sites.as_bytes()))?;
        Ok(())
    }

    /// The preview's route file, if any: what was there before, to put back.
    pub fn read_preview_route(&self, env_path: &str, name: &str) -> Result<Option<String>> {
        let file = quote(&format!("{}/{name}.caddy", routes_dir(env_path)));
        let out = self.session.run(&format!("cat {file}"), None)?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    pub fn remove_preview_route(&self, env_path: &str, name: &str) -> Result<()> {
        let file = quote(&format!("{}/{name}.caddy", routes_dir(env_path)));
        self.session
            .check("remove the preview's route", &format!("rm -f {file}"), None)?;
        Ok(())
    }

    /// Mark the preview seeded; false when it was already.
    pub fn mark_seeded(&self, name: &str) -> Result<bool> {
        let file = quote(&format!("{}/seeded", preview_path(&self.server.path, name)));
        let out = self.session.check(
            "mark the preview seeded",
            &format!("if [ -e {file} ]; then echo done; else date -u +%Y%m%dT%H%M%SZ > {file}; echo new; fi"),
            None,
        )?;
        Ok(out.trim() == "new")
    }

    /// Remove the preview's folder: its releases, lock, audit log and route.
    pub fn remove_preview_files(&self, name: &str) -> Result<()> {
        let dir = quote(&preview_path(&self.server.path, name));
        let file = quote(&format!("{}/{name}.caddy", routes_dir(&self.server.path)));
        self.session.check(
            "remove the preview's files",
            &format!("rm -f {file}; rm -rf {dir}"),
            None,
        )?;
        Ok(())
    }
}

/// The folder of the previews' routes under an environment's path.
fn routes_dir(env_path: &str) -> String {
    format!("{env_path}/{}", crate::model::preview::ROUTES_DIR)
}

/// A preview's route through its environment's proxy: written and reloaded by the
/// preview's deploy once its containers are ready ([`Step::Route`]).
///
/// [`Step::Route`]: super::steps::Step::Route
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    /// The environment's `SERVER_PATH`.
    pub env_path: String,
    /// The hosts it routes (for the plan's step).
    pub hosts: Vec<String>,
    /// The Caddyfile sites ([`crate::render::preview::sites`]).
    pub sites: String,
    /// The environment's proxy container.
    pub proxy: String,
}

/// Write the route and reload the environment's proxy (a graceful reload: no
/// connection is dropped). A configuration the proxy refuses is taken back, and the
/// proxy keeps the one it had.
pub async fn apply_route(remote: &Remote, engine: &Engine, route: &Route) -> Result<()> {
    let before = remote.read_preview_route(&route.env_path, &route.name)?;
    remote.write_preview_route(&route.env_path, &route.name, &route.sites)?;
    if let Err(error) = reload(engine, &route.proxy).await {
        match before {
            Some(text) => remote.write_preview_route(&route.env_path, &route.name, &text)?,
            None => remote.remove_preview_route(&route.env_path, &route.name)?,
        }
        return Err(error);
    }
    Ok(())
}

/// Reload the environment's Caddy with its configuration file (and the previews'
/// routes it imports).
pub async fn reload(engine: &Engine, proxy: &str) -> Result<()> {
    let command: Vec<String> = crate::model::CADDY_RELOAD
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (code, output) = engine.exec(proxy, &command).await?;
    if code == 0 {
        return Ok(());
    }
    Err(Error::Outside {
        message: format!("the environment's proxy `{proxy}` refused the previews' routes"),
        causes: output
            .lines()
            .rev()
            .take(5)
            .map(str::to_string)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect(),
        hint: Some("the proxy kept its previous configuration; see `stack logs proxy`".into()),
    })
}

/// One line of [`Remote::previews`]'s answer.
fn parse_entry(line: &str) -> Option<PreviewEntry> {
    let mut fields = line.strip_prefix("preview\t")?.split('\t');
    let name = fields.next()?.to_string();
    let created = fields.next()?.trim().to_string();
    let release = fields.next().filter(|r| !r.is_empty()).map(str::to_string);
    let deployed_at = fields.next().and_then(|t| t.trim().parse().ok());
    let disk_kb = fields
        .next()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    Some(PreviewEntry {
        name,
        created,
        release,
        deployed_at,
        disk_kb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back() {
        let entry =
            parse_entry("preview\tpr-1\t20261207T120000Z\tstaging-x-1\t1765108800\t2048").unwrap();
        assert_eq!(entry.name, "pr-1");
        assert_eq!(entry.release.as_deref(), Some("staging-x-1"));
        assert_eq!(entry.deployed_at, Some(1_765_108_800));
        assert_eq!(entry.disk_kb, 2048);
        let fresh = parse_entry("preview\tpr-2\t20261207T120000Z\t\t\t8").unwrap();
        assert_eq!((fresh.release, fresh.deployed_at), (None, None));
        assert!(parse_entry("garbage").is_none());
    }
}
