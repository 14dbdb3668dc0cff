//! The proxy's copies of its files on a server ([`crate::engine::proxy::HostFiles`]),
//! kept over SSH: the same steps as on this machine, in one round trip each.

use std::path::{Path, PathBuf};

use super::ssh::{quote, Channel};
use crate::engine::proxy::HostFiles;
use crate::error::{Error, Result};

/// The files of the server a deploy or a rollback converges.
pub struct RemoteFiles(pub Channel);

impl RemoteFiles {
    fn check(&self, what: &str, script: &str) -> Result<String> {
        let output = self.0.run(script)?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        Err(Error::Outside {
            message: format!("on the server: cannot {what}"),
            causes: vec![String::from_utf8_lossy(&output.stderr).trim().to_string()],
            hint: None,
        })
    }
}

fn shown(path: &Path) -> String {
    quote(&path.display().to_string())
}

impl HostFiles for RemoteFiles {
    fn sync(&self, copies: &[(PathBuf, PathBuf)], pending: &Path) -> Result<bool> {
        // `cat >` an existing file truncates it: the inode, and the proxy's bind, stay.
        let mut script = format!(
            "set -e; umask 022; p={}; copy() {{ if ! cmp -s \"$1\" \"$2\"; then \
             mkdir -p \"$(dirname \"$2\")\"; [ -e \"$p\" ] || : > \"$p\"; cat \"$1\" > \"$2\"; \
             chmod --reference=\"$1\" \"$2\"; fi; }}; ",
            shown(pending)
        );
        for (from, to) in copies {
            script.push_str(&format!("copy {} {}; ", shown(from), shown(to)));
        }
        script.push_str("if [ -e \"$p\" ]; then echo pending; else echo settled; fi");
        let answer = self.check("copy the proxy's configuration", &script)?;
        Ok(answer.trim() == "pending")
    }

    fn stale(&self, copies: &[(PathBuf, PathBuf)], pending: &Path) -> Result<bool> {
        let mut script = format!("[ -e {} ] && {{ echo stale; exit 0; }}; ", shown(pending));
        for (from, to) in copies {
            script.push_str(&format!(
                "cmp -s {} {} || {{ echo stale; exit 0; }}; ",
                shown(from),
                shown(to)
            ));
        }
        script.push_str("echo read");
        let answer = self.check("compare the proxy's configuration", &script)?;
        Ok(answer.trim() == "stale")
    }

    /// Whether the server's copies differ from `contents` (each copy's new text, as a
    /// deploy's bundle rendered here has it), or were not read yet: the reload a deploy
    /// plans before its release is uploaded. Compared by SHA-256, in one round trip.
    fn stale_contents(&self, copies: &[(&str, PathBuf)], pending: &Path) -> Result<bool> {
        use sha2::{Digest, Sha256};
        let mut script = format!("[ -e {} ] && {{ echo stale; exit 0; }}; ", shown(pending));
        for (contents, to) in copies {
            let digest: String = Sha256::digest(contents.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            script.push_str(&format!(
                "[ \"$(sha256sum < {} 2>/dev/null | cut -d' ' -f1)\" = {digest} ] || {{ echo stale; exit 0; }}; ",
                shown(to)
            ));
        }
        script.push_str("echo read");
        let answer = self.check("compare the proxy's configuration", &script)?;
        Ok(answer.trim() == "stale")
    }

    fn settle(&self, pending: &Path) -> Result<()> {
        self.check(
            "mark the proxy's configuration as read",
            &format!("rm -f {}", shown(pending)),
        )
        .map(|_| ())
    }
}
