//! A deploy that changes nothing: one round trip on the server (lock, `current`, its
//! fast key) and the engine's containers decide it.

use std::collections::BTreeMap;

use super::answer::{ReleaseId, UnchangedAnswer, SHELL};
use super::lock::{FREE_LOCK, TAKE_LOCK};
use super::ssh::quote;
use super::{local_user, timestamp, Remote, AUDIT_APPEND};
use crate::error::{Error, Result};
use crate::model::Desired;
use crate::render::Bundle;

/// The file of a release that says what it was made from: the key of [`Unchanged`],
/// then `image id` for each image pulled from a registry.
pub const FAST_KEY_FILE: &str = "fastkey";

/// What a deploy that changes nothing must find on the server.
#[derive(Debug, Clone)]
pub struct Unchanged {
    /// A digest of the rendered bundle (secrets included), the target and the ID of
    /// every `BUILD` image.
    pub key: String,
    pub project: String,
    /// The digest of every container that should run, once per replica.
    pub digests: Vec<String>,
    /// The images of services pulled from a registry (not `BUILD`), each once.
    pub registry: Vec<String>,
}

impl Unchanged {
    /// The check for a deploy of `desired` with the rendered `bundle` and the `BUILD`
    /// images `built` (service → image ID).
    pub fn of(
        desired: &Desired,
        bundle: &Bundle,
        built: &std::collections::BTreeMap<String, Option<String>>,
    ) -> Unchanged {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(format!("v1\0{}\0{}\0", desired.project, desired.env));
        for (path, file) in &bundle.files {
            hasher.update(format!(
                "{path}\0{:o}\0{}\0",
                file.mode,
                file.contents.len()
            ));
            hasher.update(file.contents.as_bytes());
        }
        for (service, id) in built {
            hasher.update(format!("{service}\0{}\0", id.as_deref().unwrap_or("-")));
        }
        let key = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let digests = desired
            .services
            .iter()
            .flat_map(|s| std::iter::repeat_n(s.digest.clone(), s.replicas as usize))
            .collect();
        let registry: std::collections::BTreeSet<String> = desired
            .services
            .iter()
            .filter(|s| s.build.is_none())
            .map(|s| s.image.clone())
            .collect();
        Unchanged {
            key,
            project: desired.project.clone(),
            digests,
            registry: registry.into_iter().collect(),
        }
    }

    /// The contents of a release's [`FAST_KEY_FILE`].
    pub fn file(&self, registry_images: &[(String, String)]) -> String {
        let mut text = format!("{}\n", self.key);
        for (image, id) in registry_images {
            text.push_str(&format!("{image} {id}\n"));
        }
        text
    }
}

/// What the server's engine shows for a no-change check: the project's containers and
/// the local ID of each registry image (`None`: not there).
pub struct Seen {
    pub containers: Vec<crate::plan::ObservedContainer>,
    pub images: BTreeMap<String, Option<String>>,
}

impl Seen {
    /// Ask `engine` (the server's) about the containers of `check` and its registry images.
    pub async fn of(engine: &crate::engine::Engine, check: &Unchanged) -> Result<Seen> {
        let containers = engine.containers(&check.project).await?;
        let ids = futures_util::future::join_all(
            check
                .registry
                .iter()
                .map(|image| async move { (image.clone(), engine.image_id(image).await) }),
        )
        .await;
        let mut images = BTreeMap::new();
        for (image, id) in ids {
            images.insert(image, id?);
        }
        Ok(Seen { containers, images })
    }
}

/// A no-change check waiting on the server for its verdict.
pub struct Pending {
    child: std::process::Child,
    /// A dry run's check: no lock taken, nothing written to the audit log.
    dry: bool,
}

/// The registry images a release pinned: (image, ID).
type Pins = Vec<(String, String)>;

/// What the server said before the verdict: `current` when it was made from the same
/// key, and the registry images it pinned (image, ID).
fn read_until_verdict(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
) -> Result<(Option<ReleaseId>, Pins)> {
    let (mut same, mut pinned) = (None, Vec::new());
    for line in lines {
        let line =
            line.map_err(|e| Error::outside(format!("cannot read the server's answer: {e}")))?;
        match UnchangedAnswer::of(&line)? {
            Some(UnchangedAnswer::Held | UnchangedAnswer::Changed | UnchangedAnswer::End) => break,
            Some(UnchangedAnswer::Same { release }) => same = release,
            Some(UnchangedAnswer::Pin { image, id }) => pinned.push((image, id)),
            _ => {}
        }
    }
    Ok((same, pinned))
}

impl Pending {
    /// Read what the server found, decide with what the engine showed, and answer the
    /// release id when nothing changed (the server has appended to the audit log, unless
    /// this is a dry run's check).
    /// Every container must run, none unhealthy, with exactly the digests `check`
    /// expects, and every registry image must still have the ID the release pinned.
    pub fn finish(mut self, check: &Unchanged, seen: &Seen) -> Result<Option<ReleaseId>> {
        use std::io::{BufRead, Write};
        let stdout = self.child.stdout.take();
        let mut lines = std::io::BufReader::new(stdout.ok_or_else(|| {
            Error::outside("cannot read the server's answer: no output pipe".to_string())
        })?)
        .lines();
        let (same, pinned) = read_until_verdict(&mut lines)?;
        let mut digests: Vec<&str> = Vec::new();
        let mut healthy = true;
        for container in &seen.containers {
            healthy &= container.running && !container.unhealthy;
            digests.push(&container.digest);
        }
        digests.sort_unstable();
        let mut expected: Vec<&str> = check.digests.iter().map(String::as_str).collect();
        expected.sort_unstable();
        let images_kept = pinned.iter().all(|(image, id)| {
            seen.images
                .get(image)
                .is_some_and(|seen| seen.as_deref() == Some(id))
        });
        let verdict = same.is_some() && healthy && digests == expected && images_kept;
        if let Some(mut stdin) = self.child.stdin.take() {
            // A server that already answered `held` or `changed` has exited; a broken
            // pipe then is expected.
            let ok = verdict && !self.dry;
            let _ = stdin.write_all(if ok { b"ok\n" } else { b"no\n" });
        }
        let kept =
            lines
                .map_while(|line| line.ok())
                .find_map(|line| match UnchangedAnswer::of(&line) {
                    Ok(Some(UnchangedAnswer::Unchanged { release })) => release,
                    _ => None,
                });
        let output = self
            .child
            .wait_with_output()
            .map_err(|e| Error::outside(format!("ssh failed: {e}")))?;
        if !output.status.success() {
            return Err(Error::Outside {
                message: "on the server: cannot check whether anything changed".into(),
                causes: vec![String::from_utf8_lossy(&output.stderr).trim().to_string()],
                hint: None,
            });
        }
        let release = if self.dry { same } else { kept };
        Ok(release.filter(|_| verdict))
    }
}

impl Remote {
    /// Start the one round trip of a deploy that changes nothing. On the server: take
    /// the lock (a held lock answers `held`: the deploy goes the long way and waits
    /// there), check that `current` is the last good release and was made from exactly
    /// `check.key`, answer the registry images it pinned, then wait for the verdict on
    /// what the engine shows (see [`Pending::finish`]): `ok` appends "unchanged" to the
    /// audit log. The lock is released on every exit, a dropped connection included.
    /// The engine is asked over the forwarded socket while this runs, so no `docker`
    /// process starts on the server. A `dry` check takes no lock and writes nothing.
    pub fn begin_unchanged(&self, check: &Unchanged, dry: bool) -> Result<Pending> {
        let line = format!(
            "{}\t{}\t{}\tdeploy\t-\tok: unchanged\n",
            timestamp(),
            local_user(),
            self.env
        );
        let info = format!(
            "owner={}\ntime={}\nrelease=-\nenv={}\nmessage=a deploy that may change nothing, checking\n",
            local_user(),
            timestamp(),
            self.env
        );
        let lock = match dry {
            true => String::new(),
            false => format!(
                "{TAKE_LOCK} || {{ A unchanged state=held; exit 0; }}; trap '{FREE_LOCK}' EXIT; "
            ),
        };
        let script = format!(
            "{SHELL} root={root}; info={info}; {lock}\
             cur=$(readlink \"$root/current\" 2>/dev/null); \
             [ -n \"$cur\" ] && [ \"$cur\" = \"$(readlink \"$root/last-good\" 2>/dev/null)\" ] || {{ A unchanged state=changed; exit 0; }}; \
             {{ read -r key && [ \"$key\" = {key} ] && A unchanged state=same \"release=${{cur##*/}}\" \
                && while read -r image id; do A pin \"image=$image\" \"id=$id\"; done; }} < \"$root/$cur/{FAST_KEY_FILE}\" 2>/dev/null \
                || {{ A unchanged state=changed; exit 0; }}; \
             A unchanged state=end; read -r verdict; [ \"$verdict\" = ok ] || exit 0; \
             printf '%s' {line} | {AUDIT_APPEND} && A unchanged state=kept \"release=${{cur##*/}}\"",
            root = quote(&self.server.path),
            info = quote(&info),
            key = quote(&check.key),
            line = quote(&line),
        );
        let child = self.session.spawn(&script)?;
        Ok(Pending { child, dry })
    }
}
