//! The server side of previews, under the environment's `SERVER_PATH`:
//!
//! ```text
//! SERVER_PATH/previews/<name>/            a preview's own SERVER_PATH: releases, current,
//!                                         lock, audit.log (a deploy like any other)
//! SERVER_PATH/previews/<name>/created     when `preview up` first made it (UTC)
//! SERVER_PATH/previews/<name>/seeded      its seed command ran (never again)
//! SERVER_PATH/preview-routes/<name>.caddy its sites, read by the environment's proxy
//!                                         (`<name>.nginx` for nginx)
//! SERVER_PATH/preview-routes/<name>.hosts its hosts, read by the environment's certbot
//!                                         (nginx with `STACK_TLS=auto`)
//! ```
//!
//! Every command here is one shell script, run in one round trip through the
//! environment's [`Remote`] or, in `supervise` on the server itself, by [`LocalShell`]:
//! [`expire`] is the one expiry of both `stack preview expire` and `supervise`.

use std::time::Duration;

use super::ssh::{quote, Session};
use super::{timestamp, Remote};
use crate::config::ProxyKind;
use crate::engine::{Engine, Grace, Volumes};
use crate::error::{Error, Result};

/// Where the previews' scripts run: over SSH, or on the server itself.
pub trait Shell: Sync {
    /// Run `script` with `sh`; its stdout, or an error naming `what` with its stderr.
    fn script(&self, what: &str, script: &str) -> Result<String>;
}

impl Shell for Session {
    fn script(&self, what: &str, script: &str) -> Result<String> {
        self.check(what, script, None)
    }
}

/// This machine's `sh` (supervise runs on the server, as the deploy user).
pub struct LocalShell;

impl Shell for LocalShell {
    fn script(&self, what: &str, script: &str) -> Result<String> {
        let output = std::process::Command::new("sh")
            .args(["-c", script])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::outside(format!("cannot run `sh`: {e}")))?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        Err(Error::Outside {
            message: format!("cannot {what}"),
            hint: super::ssh::server_hint(&stderr),
            causes: vec![stderr],
        })
    }
}

/// The environment that hosts previews, as their removal needs it.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its `STACK_PROJECT` (a preview's is `<project>-<name>`).
    pub project: String,
    /// Its `SERVER_PATH`.
    pub path: String,
    /// Its proxy, which reads the previews' route files.
    pub kind: ProxyKind,
}

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

/// Every preview under the environment's `env_path`, by name.
pub fn previews(shell: &dyn Shell, env_path: &str) -> Result<Vec<PreviewEntry>> {
    let script = format!(
        "cd {dir} 2>/dev/null || exit 0; for d in */; do d=${{d%/}}; [ -f \"$d/created\" ] || continue; \
         rel=$(readlink \"$d/current\" 2>/dev/null); at=$(stat -c %Y \"$d/current\" 2>/dev/null); \
         printf 'preview\\t%s\\t%s\\t%s\\t%s\\t%s\\n' \"$d\" \"$(cat \"$d/created\")\" \"${{rel#releases/}}\" \"$at\" \"$(du -sk \"$d\" 2>/dev/null | cut -f1)\"; done",
        dir = quote(&previews_dir(env_path)),
    );
    let out = shell.script("list the previews", &script)?;
    Ok(out.lines().filter_map(parse_entry).collect())
}

impl Remote {
    /// Every preview of this environment, by name.
    pub fn previews(&self) -> Result<Vec<PreviewEntry>> {
        previews(&self.session, &self.server.path)
    }

    /// Make the preview's folder (once) and say whether it was there; refused beyond
    /// `max` previews, in the same round trip. A folder it cannot finish (a full disk)
    /// is removed again: without its `created` mark it would be no preview that `list`
    /// shows or `down` removes.
    pub fn claim_preview(&self, name: &str, max: u32) -> Result<bool> {
        let dir = quote(&preview_path(&self.server.path, name));
        let script = format!(
            "if [ -f {dir}/created ]; then echo existing; exit 0; fi; \
             n=$(ls -d {all}/*/created 2>/dev/null | wc -l); \
             if [ \"$n\" -ge {max} ]; then echo \"full $n\"; exit 0; fi; \
             mkdir -p {dir} && printf '%s\\n' {now} > {dir}/created.new && mv {dir}/created.new {dir}/created && echo created \
             || {{ s=$?; rm -rf {dir}; exit $s; }}",
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
    pub fn write_preview_route(&self, route: &Route, sites: &str) -> Result<()> {
        let file = route_file(&route.env_path, &route.name, route.kind);
        self.write_route_file(route, &file, sites)
    }

    /// Write the preview's hosts for the environment's certbot (atomically).
    pub fn write_preview_hosts(&self, route: &Route) -> Result<()> {
        let file = hosts_file(&route.env_path, &route.name);
        let hosts: String = route.hosts.iter().map(|h| format!("{h}\n")).collect();
        self.write_route_file(route, &file, &hosts)
    }

    fn write_route_file(&self, route: &Route, file: &str, contents: &str) -> Result<()> {
        let dir = routes_dir(&route.env_path);
        let tmp = quote(&format!("{dir}/.{}.new", route.name));
        let script = format!(
            "set -e; mkdir -p {d}; chmod 755 {d}; cat > {tmp}; chmod 644 {tmp}; mv -f {tmp} {file}",
            d = quote(&dir),
            file = quote(file)
        );
        self.session.check(
            "write the preview's route",
            &script,
            Some(contents.as_bytes()),
        )?;
        Ok(())
    }

    /// The preview's route file, if any: what was there before, to put back.
    pub fn read_preview_route(&self, route: &Route) -> Result<Option<String>> {
        let file = quote(&route_file(&route.env_path, &route.name, route.kind));
        let out = self.session.run(&format!("cat {file}"), None)?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
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
}

/// Take the preview's route away (either proxy's file).
fn remove_route(shell: &dyn Shell, env_path: &str, name: &str) -> Result<()> {
    let files: Vec<String> = [ProxyKind::Caddy, ProxyKind::Nginx]
        .into_iter()
        .map(|kind| route_file(env_path, name, kind))
        .chain([hosts_file(env_path, name)])
        .map(|file| quote(&file))
        .collect();
    shell.script(
        "remove the preview's route",
        &format!("rm -f {}", files.join(" ")),
    )?;
    Ok(())
}

/// Remove the preview's folder: its releases, lock, audit log and seed marker.
fn remove_files(shell: &dyn Shell, env_path: &str, name: &str) -> Result<()> {
    let dir = quote(&preview_path(env_path, name));
    shell.script("remove the preview's files", &format!("rm -rf {dir}"))?;
    Ok(())
}

/// The file of a preview's sites for the proxy `kind`.
fn route_file(env_path: &str, name: &str, kind: ProxyKind) -> String {
    format!(
        "{}/{name}.{}",
        routes_dir(env_path),
        crate::model::preview::routes_extension(kind)
    )
}

/// The file of a preview's hosts for the environment's certbot.
fn hosts_file(env_path: &str, name: &str) -> String {
    format!(
        "{}/{name}.{}",
        routes_dir(env_path),
        crate::model::preview::HOSTS_EXTENSION
    )
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
    /// The sites in the proxy's language ([`crate::render::preview::sites`]).
    pub sites: String,
    /// The environment's proxy container.
    pub proxy: String,
    pub kind: ProxyKind,
    /// The proxy gets the hosts' certificates from an ACME server (`STACK_TLS=auto`).
    pub acme: bool,
    /// The environment's certbot container (nginx with `STACK_TLS=auto`), told the hosts.
    pub certbot: Option<String>,
}

/// Write the route and reload the environment's proxy (a graceful reload: no
/// connection is dropped). A configuration the proxy refuses is taken back, and the
/// proxy keeps the one it had.
pub async fn apply_route(remote: &Remote, engine: &Engine, route: &Route) -> Result<()> {
    let before = remote.read_preview_route(route)?;
    remote.write_preview_route(route, &route.sites)?;
    if let Err(error) = reload(engine, &route.proxy, route.kind).await {
        match before {
            Some(text) => remote.write_preview_route(route, &text)?,
            None => remove_route(&remote.session, &route.env_path, &route.name)?,
        }
        // The proxy reads the files it had again (a refused reload changed nothing).
        let _ = reload(engine, &route.proxy, route.kind).await;
        return Err(error);
    }
    if let Some(certbot) = &route.certbot {
        remote.write_preview_hosts(route)?;
        wake_certbot(engine, certbot).await?;
    }
    Ok(())
}

/// With `STACK_TLS=auto`: wait (at most [`crate::engine::certificates::wait`]) until the
/// environment's proxy holds a certificate for each of the preview's hosts; those it has
/// none for then. The proxy orders each host once and keeps it across updates, so an
/// update waits for nothing.
pub async fn settle_certificates(engine: &Engine, route: &Route) -> Result<Vec<String>> {
    if !route.acme {
        return Ok(Vec::new());
    }
    let wait = crate::engine::certificates::wait();
    let found = engine
        .wait_for_certificates(&route.proxy, &route.hosts, wait)
        .await?;
    Ok(found.missing)
}

/// Wake the environment's certbot (SIGUSR1): it reads the previews' hosts again, gets the
/// new ones their certificates and deletes those of removed previews, now.
async fn wake_certbot(engine: &Engine, certbot: &str) -> Result<()> {
    let running = engine
        .state(certbot)
        .await?
        .is_some_and(|s| s.state == "running");
    match running {
        true => engine.signal(certbot, "SIGUSR1").await,
        false => Ok(()),
    }
}

/// Reload the environment's proxy in place with its configuration (and the previews'
/// route files it reads): `caddy reload`, or `nginx -t` then `nginx -s reload` (the old
/// workers finish their requests; the listening sockets stay open): [`crate::model::reload_commands`].
pub async fn reload(engine: &Engine, proxy: &str, kind: ProxyKind) -> Result<()> {
    let commands = crate::model::reload_commands(kind);
    for command in &commands {
        let (code, output) = engine.exec(proxy, command).await?;
        if code != 0 {
            return Err(refused(proxy, &output));
        }
    }
    Ok(())
}

fn refused(proxy: &str, output: &str) -> Error {
    let lines: Vec<String> = output.lines().map(str::to_string).collect();
    Error::Outside {
        message: format!("the environment's proxy `{proxy}` refused the previews' routes"),
        causes: lines[lines.len().saturating_sub(5)..].to_vec(),
        hint: Some("the proxy kept its previous configuration; see `stack logs proxy`".into()),
    }
}

/// Remove a preview: its route first (a reload of the environment's proxy, when it
/// runs), then its containers, networks and volumes, then its files. The number of
/// containers removed.
pub async fn remove(shell: &dyn Shell, engine: &Engine, host: &Host, name: &str) -> Result<usize> {
    remove_route(shell, &host.path, name)?;
    let proxy = crate::model::container_name(&host.project, crate::model::PROXY_SERVICE, 1);
    if engine
        .state(&proxy)
        .await?
        .is_some_and(|s| s.state == "running")
    {
        reload(engine, &proxy, host.kind).await?;
    }
    let certbot = crate::model::container_name(&host.project, crate::model::CERTBOT_SERVICE, 1);
    wake_certbot(engine, &certbot).await?;
    let project = format!("{}-{name}", host.project);
    let containers = engine.containers(&project).await?;
    for container in &containers {
        engine
            .remove(&container.id, Grace::Own, Volumes::All)
            .await?;
    }
    for network in engine.project_networks(&project).await? {
        engine.remove_network(&network).await?;
    }
    for volume in engine.project_volumes(&project).await? {
        engine.remove_volume(&volume).await?;
    }
    remove_files(shell, &host.path, name)?;
    Ok(containers.len())
}

/// The previews idle longer than `ttl` at `now` (seconds since the epoch): not deployed
/// since, or, never deployed, created before.
pub fn idle(entries: &[PreviewEntry], ttl: Duration, now: u64) -> Vec<String> {
    entries
        .iter()
        .filter(|entry| {
            let since = entry
                .deployed_at
                .unwrap_or_else(|| created_secs(&entry.created));
            now.saturating_sub(since) > ttl.as_secs()
        })
        .map(|entry| entry.name.clone())
        .collect()
}

/// The one expiry of previews, for `stack preview expire` (over SSH) and `supervise` (on
/// the server): remove those idle longer than `ttl`, skipping one whose deploy holds its
/// lock. The names removed; `on_removed` is told each.
pub async fn expire(
    shell: &dyn Shell,
    engine: &Engine,
    host: &Host,
    (ttl, now): (Duration, u64),
    mut on_removed: impl FnMut(&str),
) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in idle(&previews(shell, &host.path)?, ttl, now) {
        let lock = quote(&format!("{}/lock", preview_path(&host.path, &name)));
        let held = shell.script(
            "look at the preview's lock",
            &format!("[ -d {lock} ] && echo held || echo free"),
        )?;
        if held.trim() == "held" {
            continue;
        }
        remove(shell, engine, host, &name).await?;
        on_removed(&name);
        removed.push(name);
    }
    Ok(removed)
}

/// Seconds since the epoch, now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYYMMDDTHHMMSSZ` as seconds since the epoch (0 when it does not read).
pub fn created_secs(stamp: &str) -> u64 {
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 14 {
        return 0;
    }
    let field = |range: std::ops::Range<usize>| digits[range].parse::<i64>().unwrap_or(0);
    let (y, m, d) = (field(0..4), field(4..6), field(6..8));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + field(8..10) * 3600 + field(10..12) * 60 + field(12..14);
    secs.max(0) as u64
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
        assert_eq!((fresh.release.clone(), fresh.deployed_at), (None, None));
        assert!(parse_entry("garbage").is_none());
        // Idle: by the last deploy, else by the creation.
        let created = created_secs("20261207T120000Z");
        let day = Duration::from_secs(86_400);
        assert_eq!(
            idle(&[entry.clone(), fresh.clone()], day, 1_765_108_800 + 1000),
            Vec::<String>::new()
        );
        assert_eq!(
            idle(&[entry, fresh], day, created + 2 * 86_400),
            vec!["pr-1", "pr-2"]
        );
    }

    #[test]
    fn created_stamps_read_back() {
        let secs = 1_765_108_800;
        assert_eq!(created_secs(&crate::deploy::timestamp_of(secs)), secs);
        assert_eq!(created_secs("garbage"), 0);
    }
}
