//! The server side of a deploy: releases, the `current` link, the lock and the audit
//! log under `SERVER_PATH`, all through one SSH session. Layout:
//!
//! ```text
//! SERVER_PATH/releases/<env>-<time>-<digest>/   the bundle + desired.json (0600)
//! SERVER_PATH/current -> releases/<id>          switched atomically (rename)
//! SERVER_PATH/lock/info                         owner, time, release, message
//! SERVER_PATH/audit.log                         a tab-separated line per event
//! ```

pub mod answer;
mod audit;
pub mod base;
pub mod files;
mod lock;
pub mod pin;
pub mod preview;
mod releases;
pub mod setup;
pub mod ssh;
pub mod steps;
pub mod transfer;
mod unchanged;
mod unit;

use crate::config::Server;
use crate::error::{Error, Result};
use ssh::{quote, Session};

pub use answer::ReleaseId;
use audit::AUDIT_APPEND;
pub use releases::Release;
pub use unchanged::{Pending, Seen, Unchanged, FAST_KEY_FILE};

/// The file in each release that holds the desired state (secrets as references; 0600).
pub const DESIRED_FILE: &str = "desired.json";

/// A connected server and its paths.
pub struct Remote {
    pub session: Session,
    pub server: Server,
    pub env: String,
    leash: std::cell::RefCell<Option<Leash>>,
}

/// A shell on the server that waits for the connection to end, then removes the one-off
/// containers labelled with its token and frees a deploy lock that names it.
struct Leash {
    token: String,
    child: std::process::Child,
}

impl Drop for Leash {
    /// Ending our side is the signal: the server's side sees the end of its input and
    /// cleans up on its own (after a normal end there is nothing left to clean).
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Who runs this deploy, for the lock and the audit log.
pub fn local_user() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = crate::fsio::read_bounded(std::path::Path::new("/etc/hostname"), 4096)
        .map(|h| String::from_utf8_lossy(&h).trim().to_string())
        .unwrap_or_default();
    let who = if host.is_empty() {
        user
    } else {
        format!("{user}@{host}")
    };
    who.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "@._-".contains(*c))
        .collect()
}

/// UTC time as `YYYYMMDDTHHMMSSZ`, from the system clock (no time crate needed).
pub fn timestamp() -> String {
    timestamp_of(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

/// Unix time `secs` as `YYYYMMDDTHHMMSSZ`.
pub fn timestamp_of(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{d:02}T{h:02}{m:02}{s:02}Z")
}

impl Remote {
    pub fn connect(server: &Server, env: &str) -> Result<Remote> {
        Remote::of(Session::open(server)?, server, env)
    }

    /// The connection to `server`, whose master is on its way up ([`Session::begin`]).
    pub fn of(session: Session, server: &Server, env: &str) -> Result<Remote> {
        Ok(Remote {
            session,
            server: server.clone(),
            env: env.to_string(),
            leash: std::cell::RefCell::new(None),
        })
    }

    /// The token of this connection's leash, started on first use. Whatever way the
    /// connection ends (stack exits, is killed, or the network drops), the server then
    /// removes the one-off containers labelled with the token (a `run`, a release
    /// command) and, when the deploy lock was taken with the token, appends
    /// "connection lost" to the audit log and frees the lock: nothing on the server
    /// acts for a deploy whose stack is gone.
    pub fn leash(&self) -> Result<String> {
        if let Some(leash) = self.leash.borrow().as_ref() {
            return Ok(leash.token.clone());
        }
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::outside(format!("no randomness for a token: {e}")))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let result =
            "failed: the connection to stack ended during the deploy; the server freed the lock";
        let script = format!(
            "root={root}; export DOCKER_HOST={docker}; trap '' HUP INT TERM PIPE; \
             cat >/dev/null 2>&1; \
             docker ps -aq --filter label={label}={token} 2>/dev/null | xargs -r docker rm -f -v >/dev/null 2>&1; \
             if grep -qx leash={token} \"$root/lock/info\" 2>/dev/null; then \
               rel=$(sed -n 's/^release=//p' \"$root/lock/info\"); \
               printf '%s\\t%s\\t%s\\tdeploy\\t%s\\t%s\\n' \"$(date -u +%Y%m%dT%H%M%SZ)\" {user} {env} \"${{rel:--}}\" {result} | {AUDIT_APPEND}; \
               {free_lock}; \
             fi",
            root = quote(&self.server.path),
            docker = quote(&format!("unix://{}", self.server.docker_socket)),
            label = crate::engine::labels::LEASH,
            user = quote(&local_user()),
            env = quote(&self.env),
            result = quote(result),
            free_lock = lock::FREE_LOCK,
        );
        let child = self.session.spawn_detached(&script)?;
        *self.leash.borrow_mut() = Some(Leash {
            token: token.clone(),
            child,
        });
        Ok(token)
    }

    fn path(&self, rest: &str) -> String {
        quote(&format!("{}/{rest}", self.server.path))
    }

    pub fn release_dir(&self, id: &str) -> String {
        format!("{}/releases/{id}", self.server.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_right() {
        let t = timestamp();
        assert_eq!(t.len(), 16, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.contains('T'),
            "{t}"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("/opt/a b"), "'/opt/a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
