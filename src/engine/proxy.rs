//! Reloading the proxy in place: the copies of its configuration files on the engine's
//! host ([`HostPath::Proxy`](crate::model::HostPath)) and the graceful reload of its
//! running containers. A configuration-only change never recreates the proxy, so the
//! connections open through it stay open.
//!
//! The copies are rewritten in place (truncate and write, the same inode): a single-file
//! bind keeps the inode it was created with, so a renamed file would never be seen. A
//! marker (`proxy/.pending`) is made before the first copy changes and removed once the
//! proxy has read them, so a reload that failed or was interrupted is done next time.
//!
//! Caddy (2.6 and later) reloads by binding a second listening socket with
//! `SO_REUSEPORT` and closing the old one once the new configuration runs. The kernel
//! spreads new connections over both sockets meanwhile, and closing a socket resets the
//! connections queued in it that Caddy had not accepted yet: a request in flight is
//! "reset by peer". With `net.ipv4.tcp_migrate_req=1` (Linux 5.14) the kernel moves
//! them to the socket that stays instead ([`HANDOVER_SYSCTL`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::converge::Converger;
use super::Engine;
use crate::error::{Error, Result};
use crate::model::{proxy_reload, Desired, DesiredService, HostPath, Mount, Placement, PROXY_DIR};
use crate::plan::Observed;

/// The sysctl that makes the kernel hand the connections queued in a closed
/// `SO_REUSEPORT` socket to another socket of its group, instead of resetting them: set
/// on Caddy proxies, which the engine target reloads in place.
pub const HANDOVER_SYSCTL: &str = "net.ipv4.tcp_migrate_req";

/// The first kernel with [`HANDOVER_SYSCTL`].
const HANDOVER_KERNEL: (u32, u32) = (5, 14);

/// The marker of copies the running proxy has not read yet, in the state folder's `proxy/`.
pub const PENDING: &str = ".pending";

/// The files of the engine's host that the proxy binds: this machine's, or a server's
/// over SSH (`deploy`, `rollback`).
pub trait HostFiles {
    /// Copy each `(from, to)` over `to` in place (folders made, `from`'s mode kept) where
    /// the contents differ, making `pending` first; whether `pending` exists afterwards.
    fn sync(&self, copies: &[(PathBuf, PathBuf)], pending: &Path) -> Result<bool>;
    /// Remove `pending`: the proxy has read the copies.
    fn settle(&self, pending: &Path) -> Result<()>;
    /// Whether [`HostFiles::sync`] would leave `pending` (a copy differs, or was not read
    /// yet), changing nothing: what the plan and its dry run show as a reload.
    fn stale(&self, copies: &[(PathBuf, PathBuf)], pending: &Path) -> Result<bool>;
    /// The same, against each copy's new text (a bundle rendered in memory, not written
    /// yet: a dry run's).
    fn stale_contents(&self, copies: &[(&str, PathBuf)], pending: &Path) -> Result<bool>;
}

/// The files of this machine.
pub struct LocalFiles;

impl HostFiles for LocalFiles {
    fn sync(&self, copies: &[(PathBuf, PathBuf)], pending: &Path) -> Result<bool> {
        use std::os::unix::fs::PermissionsExt;
        for (from, to) in copies {
            let contents = std::fs::read(from).map_err(|e| Error::io("read", from, e))?;
            if std::fs::read(to).ok().as_deref() == Some(&contents[..]) {
                continue;
            }
            if let Some(folder) = to.parent() {
                std::fs::create_dir_all(folder).map_err(|e| Error::io("create", folder, e))?;
            }
            if !pending.exists() {
                std::fs::write(pending, b"").map_err(|e| Error::io("write", pending, e))?;
            }
            // `fs::write` truncates an existing file: the inode, and the bind, stay.
            std::fs::write(to, &contents).map_err(|e| Error::io("write", to, e))?;
            let mode = std::fs::metadata(from)
                .map_err(|e| Error::io("read", from, e))?
                .permissions()
                .mode();
            std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode & 0o777))
                .map_err(|e| Error::io("write", to, e))?;
        }
        Ok(pending.exists())
    }

    fn stale(&self, copies: &[(PathBuf, PathBuf)], pending: &Path) -> Result<bool> {
        for (from, to) in copies {
            let contents = std::fs::read(from).map_err(|e| Error::io("read", from, e))?;
            if std::fs::read(to).ok().as_deref() != Some(&contents[..]) {
                return Ok(true);
            }
        }
        Ok(pending.exists())
    }

    fn stale_contents(&self, copies: &[(&str, PathBuf)], pending: &Path) -> Result<bool> {
        Ok(pending.exists()
            || copies
                .iter()
                .any(|(text, to)| std::fs::read(to).ok().as_deref() != Some(text.as_bytes())))
    }

    fn settle(&self, pending: &Path) -> Result<()> {
        match std::fs::remove_file(pending) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("remove", pending, e))
            }
            _ => Ok(()),
        }
    }
}

/// The copies `service` binds: (the bundle's file, the copy) under `placement`, reading
/// the bundle at `bundle` (a deploy's staged release); and the pending marker.
pub fn copies(
    service: &DesiredService,
    placement: &Placement,
    bundle: &Path,
) -> (Vec<(PathBuf, PathBuf)>, PathBuf) {
    let copies = service
        .mounts
        .iter()
        .filter_map(|mount| match mount {
            Mount::Bind {
                source: source @ HostPath::Proxy(rel),
                ..
            } => Some((bundle.join(rel), placement.resolve(source))),
            _ => None,
        })
        .collect();
    (copies, placement.state_dir().join(PROXY_DIR).join(PENDING))
}

/// The step of a proxy's reload that failed.
#[derive(Debug)]
pub struct Refused {
    /// The command, as shown.
    pub step: String,
    pub code: i64,
    pub output: String,
}

/// Whether the kernel version `version` (`6.1.0-13-amd64`) is at least `(major, minor)`.
fn kernel_at_least(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let found = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    found >= (major, minor)
}

impl Engine {
    /// The sysctls a container of `service` gets beside its own: [`HANDOVER_SYSCTL`] for
    /// a Caddy proxy, when the engine's kernel has it (an older kernel refuses to start a
    /// container that names it; there a reload can still reset a queued connection).
    pub async fn proxy_sysctls(&self, service: &DesiredService) -> Result<Vec<(String, String)>> {
        let caddy = proxy_reload(service)
            .first()
            .and_then(|step| step.first())
            .is_some_and(|program| program == "caddy");
        if !caddy || service.options.sysctls.contains_key(HANDOVER_SYSCTL) {
            return Ok(Vec::new());
        }
        let kernel = self.kernel_version().await?;
        Ok(kernel_at_least(&kernel, HANDOVER_KERNEL)
            .then(|| (HANDOVER_SYSCTL.to_string(), "1".to_string()))
            .into_iter()
            .collect())
    }

    /// Let every running container of `service` (the proxy) read its configuration
    /// again, gracefully ([`proxy_reload`]): `Ok(Some(_))` when one refused it. A proxy
    /// that is not running reads it when it starts.
    pub async fn reload_proxy(
        &self,
        desired: &Desired,
        service: &DesiredService,
    ) -> Result<Option<Refused>> {
        let steps = proxy_reload(service);
        let containers = self.containers(&desired.project).await?;
        for container in containers
            .iter()
            .filter(|c| c.service == service.name && c.running)
        {
            for step in &steps {
                let (code, output) = self.exec(&container.id, step).await?;
                if code != 0 {
                    // nginx's graceful reload is a script: show what it does.
                    let shown = match step.first().map(String::as_str) {
                        Some("sh") => "nginx -s reload".to_string(),
                        _ => step.join(" "),
                    };
                    return Ok(Some(Refused {
                        step: shown,
                        code,
                        output: output.trim().to_string(),
                    }));
                }
            }
        }
        Ok(None)
    }
}

impl Converger {
    /// The engine's state of the project, and the services whose files on the engine's
    /// host the plan must reload ([`Observed::stale_files`]), read without changing them.
    pub async fn observe(&self) -> Result<Observed> {
        let mut observed = self.engine.observe(&self.desired).await?;
        observed.stale_files = self.stale_files()?;
        Ok(observed)
    }

    /// The services whose copies on the engine's host differ from the bundle's (a
    /// deploy's staged release, once uploaded), or were not read yet.
    pub fn stale_files(&self) -> Result<BTreeSet<String>> {
        let bundle = match &self.staged {
            Some(staged) => staged.bundle.as_path(),
            None => self.placement.bundle.as_path(),
        };
        self.stale_files_in(bundle)
    }

    /// [`Converger::stale_files`] against the bundle at `bundle` on the engine's host (a
    /// rollback's release before `current` points at it).
    pub fn stale_files_in(&self, bundle: &std::path::Path) -> Result<BTreeSet<String>> {
        let mut stale = BTreeSet::new();
        for service in &self.desired.services {
            let (copies, pending) = copies(service, &self.placement, bundle);
            if !copies.is_empty() && self.files.stale(&copies, &pending)? {
                stale.insert(service.name.clone());
            }
        }
        Ok(stale)
    }

    /// [`Converger::stale_files`] against a bundle rendered in memory (`rendered`: its
    /// files' text by relative path), not written yet.
    pub fn stale_files_of(&self, rendered: &BTreeMap<String, String>) -> Result<BTreeSet<String>> {
        let mut stale = BTreeSet::new();
        for service in &self.desired.services {
            let (copies, pending) = copies(service, &self.placement, std::path::Path::new(""));
            let texts: Vec<(&str, std::path::PathBuf)> = copies
                .into_iter()
                .map(|(rel, to)| {
                    let text = rendered.get(rel.to_string_lossy().as_ref());
                    (text.map_or("", String::as_str), to)
                })
                .collect();
            if !texts.is_empty() && self.files.stale_contents(&texts, &pending)? {
                stale.insert(service.name.clone());
            }
        }
        Ok(stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_compare_by_major_and_minor() {
        assert!(kernel_at_least("6.1.0-13-amd64", (5, 14)));
        assert!(kernel_at_least("5.14.0", (5, 14)));
        assert!(kernel_at_least("6.18.44-fc-v1300", (5, 14)));
        assert!(!kernel_at_least("5.10.0-26-amd64", (5, 14)));
        assert!(!kernel_at_least("4.19.0", (5, 14)));
        assert!(!kernel_at_least("", (5, 14)));
    }

    #[test]
    fn copies_are_rewritten_in_place_and_marked_until_read() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let (bundle, state) = (dir.path().join("bundle"), dir.path().join("proxy"));
        std::fs::create_dir_all(bundle.join("auth")).unwrap();
        std::fs::write(bundle.join("Caddyfile"), "one\n").unwrap();
        std::fs::write(bundle.join("auth/web"), "user hash\n").unwrap();
        let copies = vec![
            (bundle.join("Caddyfile"), state.join("Caddyfile")),
            (bundle.join("auth/web"), state.join("auth/web")),
        ];
        let pending = state.join(PENDING);
        assert!(
            LocalFiles.stale(&copies, &pending).unwrap(),
            "no copies yet"
        );
        assert!(!pending.exists(), "looking changed something");
        assert!(LocalFiles.sync(&copies, &pending).unwrap(), "first copies");
        assert!(LocalFiles.stale(&copies, &pending).unwrap(), "not read yet");
        LocalFiles.settle(&pending).unwrap();
        assert!(
            !LocalFiles.sync(&copies, &pending).unwrap(),
            "nothing changed"
        );
        assert!(!LocalFiles.stale(&copies, &pending).unwrap());
        let inode = std::fs::metadata(state.join("Caddyfile")).unwrap().ino();
        std::fs::write(bundle.join("Caddyfile"), "two\n").unwrap();
        assert!(LocalFiles.sync(&copies, &pending).unwrap(), "a change");
        assert_eq!(
            std::fs::read_to_string(state.join("Caddyfile")).unwrap(),
            "two\n"
        );
        assert_eq!(
            std::fs::metadata(state.join("Caddyfile")).unwrap().ino(),
            inode,
            "a new inode: the proxy's bind would not see it"
        );
        // Not read yet (a reload failed): still pending, though the copies are equal.
        assert!(LocalFiles.sync(&copies, &pending).unwrap());
        LocalFiles.settle(&pending).unwrap();
        LocalFiles.settle(&pending).unwrap();
        assert!(!LocalFiles.sync(&copies, &pending).unwrap());
    }
}
