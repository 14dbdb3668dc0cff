//! The audit log `SERVER_PATH/audit.log`: one tab-separated line per event.

use super::ssh::quote;
use super::{local_user, timestamp, Remote};
use crate::error::Result;

/// Shell: append the audit lines on stdin to `$root/audit.log`, each with the identity
/// the server sees (its account, and the address the SSH connection came from) beside
/// the deployer's own `$USER`, which is only what the deployer's machine says.
pub(super) const AUDIT_APPEND: &str = "{ c=\"${SSH_CLIENT:-local}\"; \
     awk -v who=\"$(id -un 2>/dev/null || echo unknown) from ${c%% *}\" \
     'BEGIN { FS = OFS = \"\\t\" } { $2 = $2 \" (ssh: \" who \")\"; print }' >> \"$root/audit.log\"; }";

impl Remote {
    /// Append a line to the audit log.
    pub fn audit(&self, action: &str, release: &str, result: &str) -> Result<()> {
        let line = format!(
            "{}\t{}\t{}\t{action}\t{release}\t{}\n",
            timestamp(),
            local_user(),
            self.env,
            result.replace(['\n', '\t'], " ")
        );
        let script = format!(
            "root={root}; mkdir -p \"$root\" && {AUDIT_APPEND}",
            root = quote(&self.server.path),
        );
        self.session
            .check("append to the audit log", &script, Some(line.as_bytes()))
            .map(|_| ())
    }

    pub fn audit_log(&self) -> Result<String> {
        let output = self
            .session
            .run(&format!("cat {} 2>/dev/null", self.path("audit.log")), None)?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}
