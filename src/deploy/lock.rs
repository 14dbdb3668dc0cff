//! The deploy lock under `SERVER_PATH/lock`: taken with the free-space check and the
//! read of `current` in one round trip, freed with the audit line and the pruning.

use std::time::{Duration, Instant};

use super::answer::{self, LockAnswer, ReleaseId, SHELL};
use super::ssh::quote;
use super::{local_user, timestamp, Remote, AUDIT_APPEND};
use crate::error::{Error, Result};

/// Shell: take the lock `$root/lock` with its owner file `info` (the text in `$info`)
/// in one step: the folder is filled under a temporary name and renamed into place, so a
/// lock never exists without its owner, whenever the shell is killed. Succeeds when taken.
pub(super) const TAKE_LOCK: &str = "{ t=\"$root/.lock.new.$$\"; rm -rf \"$t\"; \
     mkdir \"$t\" && printf '%s' \"$info\" > \"$t/info\" && [ ! -e \"$root/lock\" ] \
     && mv -T \"$t\" \"$root/lock\" 2>/dev/null || { rm -rf \"$t\"; false; }; }";

/// Shell: free the lock `$root/lock` in one step: the folder is renamed away, then
/// removed (with any that a killed shell left renamed), so no one ever sees a lock
/// without its owner file (`rm -rf` alone removes `info` before the folder). No single
/// quote, so it can sit inside a `trap '...'`.
pub(super) const FREE_LOCK: &str = "{ o=\"$root/.lock.old.$$\"; \
     mv -T \"$root/lock\" \"$o\" 2>/dev/null; rm -rf \"$o\" \"$root\"/.lock.old.*; }";

/// What `stack lock release` and a waiting deploy say of a lock without its owner file
/// (taken by an older stack that was killed between the two steps).
const NO_OWNER: &str = "owner=unknown (the lock has no owner file)";

impl Remote {
    /// One round trip: check free space, take the lock, read `current`. Waits for the
    /// lock up to `wait`; `Err(No)` names the holder.
    /// `waiting` is told once, with the holder, when the lock is held and we wait for it.
    pub fn preflight_and_lock(
        &self,
        (release, message): (&str, &str),
        wait: Duration,
        min_free_mb: u64,
        waiting: impl Fn(&str),
    ) -> Result<Option<ReleaseId>> {
        let mut info = format!(
            "owner={}\ntime={}\nrelease={release}\nenv={}\nmessage={}\n",
            local_user(),
            timestamp(),
            self.env,
            message.replace('\n', " ")
        );
        if let Some(leash) = self.leash.borrow().as_ref() {
            info.push_str(&format!("leash={}\n", leash.token));
        }
        let script = format!(
            "{SHELL} root={root}; p=\"$root\"; while [ ! -d \"$p\" ]; do p=$(dirname \"$p\"); done; \
             free=$(df -Pk \"$p\" | awk 'NR==2 {{print $4}}'); \
             if [ \"$free\" -lt {min_kb} ]; then A lock state=nospace \"free_kb=$free\"; exit 0; fi; \
             mkdir -p \"$root\" || exit 1; info={info}; \
             if {TAKE_LOCK}; then A lock state=locked \"current=$(readlink \"$root/last-good\" 2>/dev/null || readlink \"$root/current\" 2>/dev/null)\"; \
             else A lock state=held \"holder=$(cat \"$root/lock/info\" 2>/dev/null || printf '%s' {no_owner})\"; fi",
            root = quote(&self.server.path),
            info = quote(&info),
            no_owner = quote(NO_OWNER),
            min_kb = min_free_mb * 1024
        );
        let deadline = Instant::now() + wait;
        let mut told = false;
        loop {
            let out = self
                .session
                .check("check the server and take the lock", &script, None)?;
            match LockAnswer::of(&out)? {
                LockAnswer::Locked { current } => return Ok(current),
                LockAnswer::Held { holder } if Instant::now() < deadline => {
                    if !told {
                        waiting(&holder);
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                LockAnswer::Held { holder } => {
                    return Err(Error::No(format!(
                        "the deploy lock of `{}` is held: {holder}\nhint: wait with `--lock-wait 5m`, or free a stale lock with `stack lock release {}`",
                        self.server.host, self.env
                    )));
                }
                LockAnswer::NoSpace { free_kb } => {
                    return Err(Error::outside(format!(
                        "only {} MB free under `{}` on the server; a deploy needs at least {min_free_mb} MB",
                        free_kb / 1024,
                        self.server.path
                    ))
                    .with_hint("free disk space on the server (old images: `docker image prune`)"));
                }
            }
        }
    }

    /// One round trip after a deploy or rollback: prune this environment's releases
    /// beyond `keep` (never `current`), append to the audit log, release the lock.
    /// Returns the ids of the releases it pruned.
    pub fn finish(
        &self,
        action: &str,
        release: &str,
        result: &str,
        good: bool,
        keep: Option<usize>,
    ) -> Result<Vec<ReleaseId>> {
        let line = format!(
            "{}\t{}\t{}\t{action}\t{release}\t{}\n",
            timestamp(),
            local_user(),
            self.env,
            result.replace(['\n', '\t'], " ")
        );
        let prune = match keep {
            Some(keep) => format!(
                "cur=$(basename \"$(readlink \"$root/current\" 2>/dev/null)\"); \
                 ls -1 \"$root/releases\" 2>/dev/null | grep {prefix} | grep -v '\\.partial$' | sort \
                 | awk -v keep={keep} '{{a[NR]=$0}} END {{for (i = 1; i <= NR - keep; i++) print a[i]}}' \
                 | while read -r r; do [ \"$r\" = \"$cur\" ] || {{ rm -rf \"$root/releases/$r\" && A pruned \"release=$r\"; }}; done; ",
                prefix = quote(&format!("^{}-", self.env)),
            ),
            None => String::new(),
        };
        let mark = if good {
            format!("{}; ", self.relink("last-good", release))
        } else {
            String::new()
        };
        let script = format!(
            "{SHELL} root={root}; {mark}{prune}{AUDIT_APPEND}; {FREE_LOCK}",
            root = quote(&self.server.path),
        );
        let output = self.session.check(
            "record the deploy and release the lock",
            &script,
            Some(line.as_bytes()),
        )?;
        answer::pruned(&output)
    }

    /// Who holds the lock, as one line; `None` when it is free.
    pub fn lock_holder(&self) -> Result<Option<String>> {
        // A lock without its owner file is held all the same (every deploy says so).
        let text = self.session.check(
            "read the lock",
            &format!(
                "{SHELL} lock={lock}; if [ -e \"$lock\" ] || [ -L \"$lock\" ]; then \
                 A lock state=held \"holder=$({{ cat \"$lock/info\" 2>/dev/null || echo {no_owner}; }} | awk 'NF {{ printf \"%s%s\", s, $0; s = \", \" }}')\"; \
                 else A lock state=free; fi",
                lock = self.path("lock"),
                no_owner = quote(NO_OWNER),
            ),
            None,
        )?;
        answer::lock_holder(&text)
    }

    pub fn unlock(&self) -> Result<()> {
        self.session
            .check(
                "release the lock",
                &format!("root={}; {FREE_LOCK}", quote(&self.server.path)),
                None,
            )
            .map(|_| ())
    }
}
