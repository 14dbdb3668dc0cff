//! Releases under `SERVER_PATH/releases`: upload (a tar, unpacked then renamed), the
//! `current` link, listing, and reading a release's desired state and pins back.

use std::collections::BTreeMap;

use super::answer::ReleaseId;
use super::ssh::quote;
use super::{Remote, DESIRED_FILE, FAST_KEY_FILE};
use crate::error::{Error, Result};
use crate::model::{Desired, Pinned, Secrets};
use crate::render::Bundle;

/// One release on the server.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Release {
    pub id: String,
    pub current: bool,
}

impl Remote {
    /// Upload a bundle and its desired state as release `id` (written, then renamed) and
    /// point `current` at it, in one round trip. `fast_key` is what [`Remote::unchanged`]
    /// reads back.
    pub fn upload(
        &self,
        id: &str,
        bundle: &Bundle,
        desired: &Desired,
        switch: bool,
        fast_key: &str,
    ) -> Result<()> {
        let desired_json = serde_json::to_vec(desired)
            .map_err(|e| Error::outside(format!("cannot serialise the desired state: {e}")))?;
        let tar = pack(bundle, &desired_json, fast_key)?;
        let dir = quote(&self.release_dir(id));
        let tmp = quote(&format!("{}.partial", self.release_dir(id)));
        // Unpacked under umask 077 into a 0700 folder: nothing is readable by another
        // account while it unpacks. tar then gives each entry the mode of the archive
        // (0600 for `.env` and desired.json, 0700 for the folders of secrets, 0644 for
        // what the containers' users read); the release folder opens last.
        // Where the release's host paths are on the server.
        let placement = crate::model::Placement {
            root: self.server.path.clone().into(),
            bundle: self.release_dir(id).into(),
        };
        let private = desired
            .private_dirs()
            .into_iter()
            .map(|source| quote(&placement.resolve(source).display().to_string()))
            .collect::<Vec<_>>();
        let private = if private.is_empty() {
            String::new()
        } else {
            // The folders of database dumps: 0700, the deploy user's (see `private_dirs`).
            format!(
                "for d in {}; do {{ mkdir -p \"$d\" && chmod 700 \"$d\"; }} 2>/dev/null || true; done; ",
                private.join(" ")
            )
        };
        // The folders of state the proxy binds (the maintenance switch): 0755, the deploy
        // user's, kept across releases (see `state_dirs`).
        let state = desired
            .state_dirs()
            .into_iter()
            .map(|source| {
                let dir = quote(&placement.resolve(source).display().to_string());
                format!("{{ mkdir -p {dir} && chmod 755 {dir}; }} 2>/dev/null || true; ")
            })
            .collect::<String>();
        let script = format!(
            "set -e; umask 077; rm -rf {tmp}; mkdir -m 700 -p {tmp}; tar -x -p -f - -C {tmp}; \
             chmod 600 {tmp}/{DESIRED_FILE}; [ ! -e {tmp}/.env ] || chmod 600 {tmp}/.env; \
             {private}{state}chmod 755 {tmp}; rm -rf {dir}; mv -T {tmp} {dir}{relink}",
            relink = if switch {
                format!("; {}", self.relink("current", id))
            } else {
                String::new()
            }
        );
        self.session
            .check("upload the release", &script, Some(&tar))?;
        Ok(())
    }

    /// A shell command pointing the link `name` under `SERVER_PATH` at release `id`,
    /// atomically (a new link, then a rename over the old one).
    pub(super) fn relink(&self, name: &str, id: &str) -> String {
        let new = self.path(&format!("{name}.new"));
        format!(
            "ln -sfn {target} {new} && mv -T {new} {link}",
            target = quote(&format!("releases/{id}")),
            link = self.path(name)
        )
    }

    /// Remove release `id`, which `current` never pointed at (its release command failed).
    pub fn discard(&self, id: &str) -> Result<()> {
        let script = format!(
            "[ \"$(basename \"$(readlink {current} 2>/dev/null)\")\" = {id} ] || rm -rf {dir}",
            current = self.path("current"),
            id = quote(id),
            dir = quote(&self.release_dir(id))
        );
        self.session
            .check("remove the release that never went live", &script, None)
            .map(|_| ())
    }

    /// Point `current` at release `id`, atomically.
    pub fn switch(&self, id: &str) -> Result<()> {
        self.session
            .check("switch `current`", &self.relink("current", id), None)
            .map(|_| ())
    }

    /// The release `current` points at.
    pub fn current(&self) -> Result<Option<String>> {
        Ok(self.current_release()?.map(|id| id.to_string()))
    }

    /// The release `current` points at, typed.
    pub fn current_release(&self) -> Result<Option<ReleaseId>> {
        let output = self
            .session
            .run(&format!("readlink {}", self.path("current")), None)?;
        if !output.status.success() {
            return Ok(None);
        }
        Ok(ReleaseId::from_link(&String::from_utf8_lossy(
            &output.stdout,
        )))
    }

    /// This environment's releases, oldest first.
    pub fn releases(&self) -> Result<Vec<Release>> {
        let output = self.session.run(
            &format!("ls -1 {} 2>/dev/null", self.path("releases")),
            None,
        )?;
        let current = self.current_release()?;
        let prefix = format!("{}-", self.env);
        let mut ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| l.starts_with(&prefix) && !l.ends_with(".partial"))
            .map(String::from)
            .collect();
        ids.sort();
        Ok(ids
            .into_iter()
            .map(|id| Release {
                current: current.as_ref().map(ReleaseId::as_str) == Some(id.as_str()),
                id,
            })
            .collect())
    }

    /// The desired state saved with a release and the values of its secrets, in one
    /// round trip.
    pub fn desired(&self, id: &str) -> Result<(Desired, Secrets)> {
        let dir = self.release_dir(id);
        let text = self.session.check(
            &format!("read release `{id}`"),
            &format!(
                "cat {}; printf '\\0'; cat {} 2>/dev/null || true",
                quote(&format!("{dir}/{DESIRED_FILE}")),
                quote(&format!("{dir}/{}", crate::render::SECRETS_FILE)),
            ),
            None,
        )?;
        let (json, env) = text.split_once('\0').unwrap_or((&text, ""));
        let desired = serde_json::from_str(json).map_err(|e| {
            Error::outside(format!(
                "release `{id}` has an unreadable {DESIRED_FILE}: {e}"
            ))
            .with_hint("releases made by an older stack cannot be rolled back to; deploy again")
        })?;
        let secrets = Secrets::parse(&format!("{dir}/.env"), env.as_bytes())?;
        Ok((desired, secrets))
    }

    /// The pinned images of each of `ids` (service, pin), read in one round trip; a
    /// release made before pinning, or unreadable, has none.
    pub fn pins(&self, ids: &[String]) -> Result<BTreeMap<String, Vec<(String, Pinned)>>> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let dirs: Vec<String> = ids.iter().map(|id| quote(&self.release_dir(id))).collect();
        let script = format!(
            "for d in {}; do cat \"$d/{DESIRED_FILE}\" 2>/dev/null | tr -d '\\n'; echo; done",
            dirs.join(" ")
        );
        let text = self.session.check("read the releases", &script, None)?;
        let mut out = BTreeMap::new();
        for (id, line) in ids.iter().zip(text.lines()) {
            let pins = serde_json::from_str::<Desired>(line)
                .map(|desired| {
                    desired
                        .services
                        .into_iter()
                        .filter_map(|s| s.pinned.map(|p| (s.name, p)))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(id.clone(), pins);
        }
        Ok(out)
    }
}

/// The tar archive of a release: its folders first, each with its mode (a folder of
/// secrets 0700, see [`Bundle::folders`]), so tar creates none with the server's umask,
/// then its files with their modes, the desired state and the fast key (0600).
fn pack(bundle: &Bundle, desired_json: &[u8], fast_key: &str) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    // Folders first, with their modes (a folder of secrets is 0700), so tar creates
    // none with the server's umask.
    for (path, mode) in bundle.folders() {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, format!("{path}/"), std::io::empty())
            .map_err(|e| Error::outside(format!("cannot pack the release: {e}")))?;
    }
    let mut add = |path: &str, contents: &[u8], mode: u32| -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, path, contents)
            .map_err(|e| Error::outside(format!("cannot pack the release: {e}")))
    };
    for (path, file) in &bundle.files {
        add(path, file.contents.as_bytes(), file.mode)?;
    }
    add(DESIRED_FILE, desired_json, 0o600)?;
    add(FAST_KEY_FILE, fast_key.as_bytes(), 0o600)?;
    builder
        .into_inner()
        .map_err(|e| Error::outside(format!("cannot pack the release: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unpacked as the server does (umask 077, `tar -x -p`), a release's folder of
    /// secrets and of password hashes is 0700 and the rest keeps the archive's modes.
    #[test]
    fn a_packed_release_unpacks_with_private_folders() {
        use std::os::unix::fs::PermissionsExt;
        let mut bundle = Bundle::default();
        for (path, mode, secret) in [
            ("nginx/nginx.conf", 0o644, false),
            ("nginx/auth/web", 0o644, true),
            ("secrets/KEY", 0o400, true),
            ("secrets/444/OTHER", 0o444, true),
            (".env", 0o600, true),
            ("docker-compose.yml", 0o644, false),
        ] {
            bundle.files.insert(
                path.into(),
                crate::render::BundleFile {
                    contents: "x".into(),
                    mode,
                    secret,
                },
            );
        }
        let tar = pack(&bundle, b"{}", "key").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "umask 077; tar -x -p -f - -C \"$0\"",
                &dir.path().display().to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), &tar).unwrap();
        assert!(child.wait().unwrap().success());
        let mode = |path: &str| {
            std::fs::metadata(dir.path().join(path))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        for (path, wanted) in [
            ("nginx", 0o755),
            ("nginx/nginx.conf", 0o644),
            ("nginx/auth", 0o700),
            ("nginx/auth/web", 0o644),
            ("secrets", 0o700),
            ("secrets/444", 0o700),
            ("secrets/KEY", 0o400),
            (".env", 0o600),
            (DESIRED_FILE, 0o600),
            (FAST_KEY_FILE, 0o600),
            ("docker-compose.yml", 0o644),
        ] {
            assert_eq!(mode(path), wanted, "`{path}` is {:o}", mode(path));
        }
    }
}
