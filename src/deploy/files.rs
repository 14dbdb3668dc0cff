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

    fn settle(&self, pending: &Path) -> Result<()> {
        self.check(
            "mark the proxy's configuration as read",
            &format!("rm -f {}", shown(pending)),
        )
        .map(|_| ())
    }
}
