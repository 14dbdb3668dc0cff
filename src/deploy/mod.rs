//! The server side of a deploy: releases, the `current` link, the lock and the audit
//! log under `SERVER_PATH`, all through one SSH session. Layout:
//!
//! ```text
//! SERVER_PATH/releases/<env>-<time>-<digest>/   the bundle + desired.json (0600)
//! SERVER_PATH/current -> releases/<id>          switched atomically (rename)
//! SERVER_PATH/lock/info                         owner, time, release, message
//! SERVER_PATH/audit.log                         a tab-separated line per event
//! ```

pub mod pin;
pub mod setup;
pub mod ssh;
pub mod transfer;

use std::time::{Duration, Instant};

use crate::config::Server;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

use crate::model::{Desired, Pinned, Secrets};
use crate::render::Bundle;
use ssh::{quote, Session};

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

/// One release on the server.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Release {
    pub id: String,
    pub current: bool,
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

/// Shell: take the lock `$root/lock` with its owner file `info` (the text in `$info`)
/// in one step: the folder is filled under a temporary name and renamed into place, so a
/// lock never exists without its owner, whenever the shell is killed. Succeeds when taken.
const TAKE_LOCK: &str = "{ t=\"$root/.lock.new.$$\"; rm -rf \"$t\"; \
     mkdir \"$t\" && printf '%s' \"$info\" > \"$t/info\" && [ ! -e \"$root/lock\" ] \
     && mv -T \"$t\" \"$root/lock\" 2>/dev/null || { rm -rf \"$t\"; false; }; }";

/// What `stack lock release` and a waiting deploy say of a lock without its owner file
/// (taken by an older stack that was killed between the two steps).
const NO_OWNER: &str = "owner=unknown (the lock has no owner file)";

/// Shell: append the audit lines on stdin to `$root/audit.log`, each with the identity
/// the server sees (its account, and the address the SSH connection came from) beside
/// the deployer's own `$USER`, which is only what the deployer's machine says.
const AUDIT_APPEND: &str = "{ c=\"${SSH_CLIENT:-local}\"; \
     awk -v who=\"$(id -un 2>/dev/null || echo unknown) from ${c%% *}\" \
     'BEGIN { FS = OFS = \"\\t\" } { $2 = $2 \" (ssh: \" who \")\"; print }' >> \"$root/audit.log\"; }";

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
}

impl Pending {
    /// Read what the server found, decide with what the engine showed, and answer the
    /// release id when nothing changed (the server has appended to the audit log).
    /// Every container must run, none unhealthy, with exactly the digests `check`
    /// expects, and every registry image must still have the ID the release pinned.
    pub fn finish(mut self, check: &Unchanged, seen: &Seen) -> Result<Option<String>> {
        use std::io::{BufRead, Write};
        let stdout = self.child.stdout.take();
        let mut lines = std::io::BufReader::new(stdout.ok_or_else(|| {
            Error::outside("cannot read the server's answer: no output pipe".to_string())
        })?)
        .lines();
        let mut pinned = Vec::new();
        let mut same = false;
        for line in lines.by_ref() {
            let line =
                line.map_err(|e| Error::outside(format!("cannot read the server's answer: {e}")))?;
            match line.as_str() {
                "held" | "changed" => break,
                "same" => same = true,
                "end" => break,
                _ if same => pinned.push(line),
                _ => {}
            }
        }
        let mut digests: Vec<&str> = Vec::new();
        let mut healthy = true;
        for container in &seen.containers {
            healthy &= container.running && !container.unhealthy;
            digests.push(&container.digest);
        }
        digests.sort_unstable();
        let mut expected: Vec<&str> = check.digests.iter().map(String::as_str).collect();
        expected.sort_unstable();
        let images_kept = pinned.iter().all(|line| {
            let (image, id) = line.split_once(' ').unwrap_or((line, ""));
            seen.images
                .get(image)
                .is_some_and(|seen| seen.as_deref() == Some(id))
        });
        let verdict = same && healthy && digests == expected && images_kept;
        if let Some(mut stdin) = self.child.stdin.take() {
            // A server that already answered `held` or `changed` has exited; a broken
            // pipe then is expected.
            let _ = stdin.write_all(if verdict { b"ok\n" } else { b"no\n" });
        }
        let release = lines.map_while(|line| line.ok()).find_map(|line| {
            line.strip_prefix("unchanged ")
                .map(|id| id.trim().to_string())
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
        Ok(release.filter(|_| verdict))
    }
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
             docker ps -aq --filter label={label}={token} 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1; \
             if grep -qx leash={token} \"$root/lock/info\" 2>/dev/null; then \
               rel=$(sed -n 's/^release=//p' \"$root/lock/info\"); \
               printf '%s\\t%s\\t%s\\tdeploy\\t%s\\t%s\\n' \"$(date -u +%Y%m%dT%H%M%SZ)\" {user} {env} \"${{rel:--}}\" {result} | {AUDIT_APPEND}; \
               rm -rf \"$root/lock\"; \
             fi",
            root = quote(&self.server.path),
            docker = quote(&format!("unix://{}", self.server.docker_socket)),
            label = crate::engine::labels::LEASH,
            user = quote(&local_user()),
            env = quote(&self.env),
            result = quote(result),
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

    /// One round trip: check free space, take the lock, read `current`. Waits for the
    /// lock up to `wait`; `Err(No)` names the holder.
    /// `waiting` is told once, with the holder, when the lock is held and we wait for it.
    pub fn preflight_and_lock(
        &self,
        (release, message): (&str, &str),
        wait: Duration,
        min_free_mb: u64,
        waiting: impl Fn(&str),
    ) -> Result<Option<String>> {
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
            "root={root}; p=\"$root\"; while [ ! -d \"$p\" ]; do p=$(dirname \"$p\"); done; \
             free=$(df -Pk \"$p\" | awk 'NR==2 {{print $4}}'); \
             if [ \"$free\" -lt {min_kb} ]; then echo \"nospace $free\"; exit 0; fi; \
             mkdir -p \"$root\" || exit 1; info={info}; \
             if {TAKE_LOCK}; then echo locked; \
             else echo held; tr '\\n' ' ' 2>/dev/null < \"$root/lock/info\" || printf '%s' {no_owner}; echo; fi; \
             echo \"current=$(readlink \"$root/last-good\" 2>/dev/null || readlink \"$root/current\" 2>/dev/null)\"",
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
            let mut lines = out.lines();
            match lines.next().unwrap_or_default() {
                "locked" => {
                    let current = out
                        .lines()
                        .find_map(|l| l.strip_prefix("current="))
                        .and_then(|c| c.trim().rsplit('/').next().map(String::from))
                        .filter(|c| !c.is_empty());
                    return Ok(current);
                }
                "held" if Instant::now() < deadline => {
                    if !told {
                        waiting(lines.next().unwrap_or("unknown").trim());
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                "held" => {
                    let holder = lines.next().unwrap_or("unknown").trim().to_string();
                    return Err(Error::No(format!(
                        "the deploy lock of `{}` is held: {holder}\nhint: wait with `--lock-wait 5m`, or free a stale lock with `stack lock release {}`",
                        self.server.host, self.env
                    )));
                }
                other => {
                    let free_kb: u64 = other
                        .strip_prefix("nospace ")
                        .and_then(|n| n.trim().parse().ok())
                        .unwrap_or(0);
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
    ) -> Result<Vec<String>> {
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
                 | while read -r r; do [ \"$r\" = \"$cur\" ] || {{ rm -rf \"$root/releases/$r\" && echo \"pruned $r\"; }}; done; ",
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
            "root={root}; {mark}{prune}{AUDIT_APPEND}; rm -rf \"$root/lock\"",
            root = quote(&self.server.path),
        );
        let output = self.session.check(
            "record the deploy and release the lock",
            &script,
            Some(line.as_bytes()),
        )?;
        Ok(output
            .lines()
            .filter_map(|l| l.strip_prefix("pruned "))
            .map(String::from)
            .collect())
    }

    /// Who holds the lock, as one line; `None` when it is free.
    pub fn lock_holder(&self) -> Result<Option<String>> {
        // A lock without its owner file is held all the same (every deploy says so).
        let text = self.session.check(
            "read the lock",
            &format!(
                "lock={lock}; if [ -e \"$lock\" ] || [ -L \"$lock\" ]; then echo held; \
                 cat \"$lock/info\" 2>/dev/null || echo {no_owner}; else echo free; fi",
                lock = self.path("lock"),
                no_owner = quote(NO_OWNER),
            ),
            None,
        )?;
        let mut lines = text.lines();
        if lines.next() != Some("held") {
            return Ok(None);
        }
        Ok(Some(
            lines
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join(", "),
        ))
    }

    pub fn unlock(&self) -> Result<()> {
        self.session
            .check(
                "release the lock",
                &format!("rm -rf {}", self.path("lock")),
                None,
            )
            .map(|_| ())
    }

    /// Start the one round trip of a deploy that changes nothing. On the server: take
    /// the lock (a held lock answers `held`: the deploy goes the long way and waits
    /// there), check that `current` is the last good release and was made from exactly
    /// `check.key`, answer the registry images it pinned, then wait for the verdict on
    /// what the engine shows (see [`Pending::finish`]): `ok` appends "unchanged" to the
    /// audit log. The lock is released on every exit, a dropped connection included.
    /// The engine is asked over the forwarded socket while this runs, so no `docker`
    /// process starts on the server.
    pub fn begin_unchanged(&self, check: &Unchanged) -> Result<Pending> {
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
        let script = format!(
            "root={root}; info={info}; \
             {TAKE_LOCK} || {{ echo held; exit 0; }}; \
             trap 'rm -rf \"$root/lock\"' EXIT; \
             cur=$(readlink \"$root/current\" 2>/dev/null); \
             [ -n \"$cur\" ] && [ \"$cur\" = \"$(readlink \"$root/last-good\" 2>/dev/null)\" ] || {{ echo changed; exit 0; }}; \
             {{ read -r key && [ \"$key\" = {key} ] && echo same && cat; }} < \"$root/$cur/{FAST_KEY_FILE}\" 2>/dev/null || {{ echo changed; exit 0; }}; \
             echo end; read -r verdict; [ \"$verdict\" = ok ] || exit 0; \
             printf '%s' {line} | {AUDIT_APPEND} && echo \"unchanged ${{cur##*/}}\"",
            root = quote(&self.server.path),
            info = quote(&info),
            key = quote(&check.key),
            line = quote(&line),
        );
        let child = self.session.spawn(&script)?;
        Ok(Pending { child })
    }

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
    fn relink(&self, name: &str, id: &str) -> String {
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
        let output = self
            .session
            .run(&format!("readlink {}", self.path("current")), None)?;
        if !output.status.success() {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&output.stdout);
        Ok(text
            .trim()
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .map(String::from))
    }

    /// This environment's releases, oldest first.
    pub fn releases(&self) -> Result<Vec<Release>> {
        let output = self.session.run(
            &format!("ls -1 {} 2>/dev/null", self.path("releases")),
            None,
        )?;
        let current = self.current()?;
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
                current: current.as_deref() == Some(id.as_str()),
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

    /// The unit file `<project>.service` that the server has and stack did not write (a
    /// system unit of that name, or one written by hand), which a deploy must not shadow.
    pub fn foreign_unit(&self, project: &str) -> Result<Option<String>> {
        let script = format!(
            "[ -d /run/systemd/system ] || exit 0; name={name}; dest=/etc/systemd/system/$name; \
             if [ -e \"$dest\" ] && ! grep -q {marker} \"$dest\"; then echo \"$dest\"; exit 0; fi; \
             frag=$(systemctl show -p FragmentPath --value \"$name\" 2>/dev/null); \
             if [ -n \"$frag\" ] && [ \"$frag\" != \"$dest\" ]; then echo \"$frag\"; fi",
            name = quote(&format!("{project}.service")),
            marker = quote(UNIT_MARKER),
        );
        let text = self.session.check("look for the unit", &script, None)?;
        Ok(text
            .lines()
            .next()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from))
    }

    /// Install the unit of release `release` and enable it, install this binary as
    /// `SERVER_PATH/bin/stack` (the deploy user's, no sudo) when the server's OS and
    /// architecture match, then start the unit (or reload it, so a running `supervise`
    /// takes the new release and binary without touching the containers). As root the
    /// unit is installed directly; another user goes through the root helper `stack server
    /// setup` wrote (`sudo -n`), or, without one, plain `sudo -n` (an admin's own rules). A
    /// server without systemd or root gets a note, not a failure.
    pub fn install_unit(&self, project: &str, release: &str) -> Result<Option<String>> {
        let unit = format!("{}/{project}.service", self.release_dir(release));
        let script = format!(
            "[ -d /run/systemd/system ] || {{ echo 'no systemd'; exit 0; }}; \
             {as_root} name={name}; dest=/etc/systemd/system/$name; \
             if [ -e \"$dest\" ] && ! grep -q {marker} \"$dest\"; then echo \"foreign $dest\"; exit 0; fi; \
             if [ -n \"$H\" ]; then cmp -s {unit} \"$dest\" || $H install-unit {release}; \
             else cmp -s {unit} \"$dest\" || {{ $S install -m 0644 {unit} \"$dest\" && $S systemctl daemon-reload; }}; fi \
             && {{ if [ -n \"$H\" ]; then $H enable; else $S systemctl enable \"$name\"; fi; }} >/dev/null || exit 1; \
             echo installed; uname -sm; sha256sum {binary} 2>/dev/null || echo none",
            as_root = reach_root(project),
            unit = quote(&unit),
            release = quote(release),
            name = quote(&format!("{project}.service")),
            marker = quote(UNIT_MARKER),
            binary = quote(&crate::render::server_binary(&self.server.path)),
        );
        let output = self.session.run(&script, None)?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut lines = text.lines();
        match (output.status.success(), lines.next().unwrap_or_default()) {
            (true, "installed") => {}
            (true, "no systemd") => {
                return Ok(Some(
                    "the server has no systemd; the unit was not installed".into(),
                ))
            }
            (true, line) if line.starts_with("foreign ") => {
                return Ok(Some(format!(
                    "`{}` was not written by stack, so it was left alone and the stack will not come back after a reboot; rename `STACK_PROJECT`",
                    &line["foreign ".len()..]
                )))
            }
            _ => {
                return Ok(Some(format!(
                    "could not install the systemd unit (needs root, the root helper of `stack server setup` or passwordless sudo): {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                )))
            }
        }
        let uname = lines.next().unwrap_or_default().to_ascii_lowercase();
        let remote_sum = lines.next().unwrap_or_default();
        let arch = std::env::consts::ARCH;
        if !(uname.starts_with(std::env::consts::OS) && uname.ends_with(arch)) {
            return Ok(Some(format!(
                "the server is `{uname}` and this stack is {}/{arch}: install a matching stack binary at {} for `stack supervise`; the unit is enabled but not started",
                std::env::consts::OS,
                crate::render::server_binary(&self.server.path)
            )));
        }
        let binary = std::env::current_exe()
            .and_then(std::fs::read)
            .map_err(|e| Error::outside(format!("cannot read this stack binary: {e}")))?;
        if !remote_sum.starts_with(&sha256_hex(&binary)) {
            // The unit runs it as the deploy user, who owns it: no sudo.
            let install = format!(
                "b={b}; mkdir -p \"${{b%/*}}\" && cat > \"$b.new\" && chmod 755 \"$b.new\" && mv -f \"$b.new\" \"$b\"",
                b = quote(&crate::render::server_binary(&self.server.path))
            );
            self.session
                .check("install the stack binary", &install, Some(&binary))?;
        }
        // `start` waits for supervise's READY (its converge finds nothing to do);
        // `reload` makes a running supervise re-execute itself.
        let start = format!(
            "{as_root} name={name}; if systemctl is-active -q \"$name\"; then c=reload; else c=start; fi; \
             if [ -n \"$H\" ]; then $H $c; else $S systemctl $c \"$name\"; fi \
             || {{ systemctl status --no-pager -n 20 \"$name\" >&2; exit 1; }}",
            as_root = reach_root(project),
            name = quote(&format!("{project}.service")),
        );
        let output = self.session.run(&start, None)?;
        if !output.status.success() {
            return Ok(Some(format!(
                "the unit `{project}.service` did not start: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(None)
    }
}

/// The first words of every unit stack writes (the bundle's header).
const UNIT_MARKER: &str = "# Generated by stack ";

/// How a script reaches root: `H`, `project`'s root helper through `sudo -n` when the
/// user is not root and `stack server setup` wrote one, else `S`: nothing for root,
/// `sudo -n` for another user.
fn reach_root(project: &str) -> String {
    format!(
        "S=; H=; if [ \"$(id -u)\" != 0 ]; then S='sudo -n'; [ -x {helper} ] && H=\"sudo -n \"{helper}; fi;",
        helper = quote(&setup::root_helper_path(project))
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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

    #[test]
    fn timestamps_look_right() {
        let t = timestamp();
        assert_eq!(t.len(), 16, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.contains('T'),
            "{t}"
        );
    }

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

    #[test]
    fn quoting() {
        assert_eq!(quote("/opt/a b"), "'/opt/a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
