//! Scheduled jobs, the engine side: one run of a job in a one-off container of its
//! service ([`Engine::create_oneoff`]: the release's image, environment, secrets, volumes
//! and networks), under the job's lock (`SERVER_PATH/jobs/NAME.lock`, `flock`), recorded
//! in `NAME.runs` (JSON lines, the last 50, mode 0600) with the metrics of every job in
//! `stack_jobs.prom`. The schedule itself is [`crate::schedule`]; who fires it is
//! `stack supervise`.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::oneoff::Removal;
use super::{Engine, Grace};
use crate::config::Concurrency;
use crate::error::{Error, Result};
use crate::model::{Desired, DesiredService, Placement, Secrets};
use crate::schedule::{self, Run, Trigger};

/// How long `replace` waits for the run it stopped to let go of the lock, beyond the
/// stopped container's own grace.
const REPLACE_WAIT: Duration = Duration::from_secs(60);

/// Where a job runs: the engine, the release's desired state, where it lives.
pub struct JobSite<'a> {
    pub engine: &'a Engine,
    pub desired: &'a Desired,
    pub place: (&'a Placement, &'a Secrets),
}

/// The directory of the jobs' locks and records: `SERVER_PATH/jobs` for a release of a
/// server (`SERVER_PATH/current`, `SERVER_PATH/releases/ID`), `.stack/jobs` locally.
pub fn jobs_dir(placement: &Placement) -> PathBuf {
    base(placement).join("jobs")
}

/// `SERVER_PATH` for a release; locally `.stack`.
fn base(placement: &Placement) -> PathBuf {
    placement.state_dir()
}

/// The release a bundle is: the target of `current`, a `releases/ID` directory, else
/// `local`.
pub fn release_of(placement: &Placement) -> String {
    let bundle = &placement.bundle;
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    if let Ok(target) = std::fs::read_link(bundle) {
        return name(&target).unwrap_or_else(|| "local".into());
    }
    match bundle.parent().and_then(|p| p.file_name()) {
        Some(parent) if parent == "releases" => name(bundle).unwrap_or_else(|| "local".into()),
        _ => "local".into(),
    }
}

/// Who holds the deploy lock of the release's server (`SERVER_PATH/lock`), as one line;
/// `None` when it is free (always, off a server).
pub fn deploy_lock_holder(placement: &Placement) -> Option<String> {
    let lock = base(placement).join("lock");
    std::fs::symlink_metadata(&lock).ok()?;
    let info = std::fs::read_to_string(lock.join("info")).unwrap_or_default();
    let line = info.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(if line.is_empty() {
        "owner unknown".into()
    } else {
        line
    })
}

/// The job `name` of a release: a service with `SCHEDULE`.
pub fn job<'a>(desired: &'a Desired, name: &str) -> Result<&'a DesiredService> {
    let jobs: Vec<&str> = desired
        .services
        .iter()
        .filter(|s| s.schedule.is_some())
        .map(|s| s.name.as_str())
        .collect();
    match desired.service(name) {
        Some(service) if service.schedule.is_some() => Ok(service),
        found => {
            let what = if found.is_some() {
                format!("service `{name}` is not a job (it has no `SCHEDULE`)")
            } else {
                format!("no job `{name}` in this release")
            };
            let hint = if jobs.is_empty() {
                "a service becomes a job with `SERVICE_<NAME>_SCHEDULE=…`".to_string()
            } else {
                format!("jobs: {}", jobs.join(", "))
            };
            Err(crate::error::Diagnostic::new(what).hint(hint).into())
        }
    }
}

/// The runs recorded for job `name`, oldest first.
pub fn runs(dir: &Path, name: &str) -> Vec<Run> {
    std::fs::read_to_string(dir.join(format!("{name}.runs")))
        .map(|text| schedule::read_runs(&text))
        .unwrap_or_default()
}

/// An exclusive `flock` on a file of the jobs directory, released on drop (the kernel
/// releases it too when the process dies, so a crash never leaves a job locked).
struct Flock {
    /// Held open: closing it releases the lock.
    _held: File,
}

impl Flock {
    fn open(path: &Path) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("open", path, e))
    }

    /// Take it now, or `None` when another process (or run) holds it.
    fn try_take(path: &Path) -> Result<Option<Flock>> {
        let file = Self::open(path)?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        Ok(taken.then_some(Flock { _held: file }))
    }

    /// Wait for it (a short critical section of another run).
    fn take(path: &Path) -> Result<Flock> {
        let file = Self::open(path)?;
        // SAFETY: as above.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(Error::io("lock", path, std::io::Error::last_os_error()));
        }
        Ok(Flock { _held: file })
    }
}

/// A recorded run, and why it could not start when it did not.
pub struct Outcome {
    pub run: Run,
    pub failure: Option<Error>,
}

/// What `NAME.running` says of the run that holds a job's lock.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Holder {
    container: String,
    start: u64,
    pid: u32,
}

impl JobSite<'_> {
    /// Run `service`'s job now and wait for it, under its overlap policy; each line of
    /// its output goes to `on_line`. The run is recorded however it ends, also when its
    /// container cannot start (exit code 125, the reason in [`Outcome::failure`]); `Err`
    /// only when it did not run (the policy refused it, a deploy holds the lock) or could
    /// not be recorded.
    pub async fn run(
        &self,
        service: &DesiredService,
        trigger: Trigger,
        mut on_line: impl FnMut(&str),
    ) -> Result<Outcome> {
        let Some(job) = service.schedule.as_ref() else {
            return Err(Error::outside(format!(
                "service `{}` is not a job",
                service.name
            )));
        };
        let dir = jobs_dir(self.place.0);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io("create", &dir, e))?;
        if let Some(holder) = deploy_lock_holder(self.place.0) {
            return Err(Error::No(format!(
                "job `{}` did not run: a deploy holds the lock ({holder}); run it again when the deploy is done",
                service.name
            )));
        }
        let lock = self.lock(&dir, service, job.concurrency).await?;
        let started = SystemTime::now();
        let clock = Instant::now();
        let (exit_code, failure) = match self
            .run_container(&dir, service, job.timeout, &mut on_line)
            .await
        {
            Ok(code) => (code, None),
            Err(e) => (schedule::NOT_STARTED, Some(e)),
        };
        let run = Run {
            start: schedule::unix(started),
            duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
            exit_code,
            release: release_of(self.place.0),
            trigger,
        };
        let recorded = self.record(&dir, &service.name, &run);
        let _ = std::fs::remove_file(dir.join(format!("{}.running", service.name)));
        drop(lock);
        recorded?;
        Ok(Outcome { run, failure })
    }

    /// Take the job's lock as its policy says: `forbid` refuses when a run holds it,
    /// `replace` stops that run's container and waits for the lock, `allow` takes none.
    async fn lock(
        &self,
        dir: &Path,
        service: &DesiredService,
        concurrency: Concurrency,
    ) -> Result<Option<Flock>> {
        let path = dir.join(format!("{}.lock", service.name));
        if concurrency == Concurrency::Allow {
            return Ok(None);
        }
        if let Some(lock) = Flock::try_take(&path)? {
            return Ok(Some(lock));
        }
        let holder = std::fs::read_to_string(dir.join(format!("{}.running", service.name)))
            .ok()
            .and_then(|text| serde_json::from_str::<Holder>(&text).ok())
            .unwrap_or_default();
        let since = schedule::time_text(holder.start);
        if concurrency == Concurrency::Forbid {
            return Err(Error::No(format!(
                "job `{}` is already running (since {since}, process {}); `CONCURRENCY=forbid` refuses a second run",
                service.name, holder.pid
            )));
        }
        if !holder.container.is_empty() {
            self.engine.stop(&holder.container, Grace::Own).await?;
        }
        let deadline = Instant::now() + service.stop_grace() + REPLACE_WAIT;
        loop {
            if let Some(lock) = Flock::try_take(&path)? {
                return Ok(Some(lock));
            }
            if Instant::now() > deadline {
                return Err(Error::outside(format!(
                    "job `{}`: the run it replaces (since {since}) did not end",
                    service.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The run's container, from creation to removal; its exit code (124 past `timeout`:
    /// stopped with the service's `STOP_GRACE`).
    async fn run_container(
        &self,
        dir: &Path,
        service: &DesiredService,
        timeout: Duration,
        on_line: &mut impl FnMut(&str),
    ) -> Result<i64> {
        let engine = self.engine;
        engine.oneoff_preflight(self.desired, service).await?;
        let command = service.command.clone().unwrap_or_default();
        let id = engine
            .create_oneoff(self.desired, service, (&command, "job"), self.place, None)
            .await?;
        // Removed on every way out, a cancelled future (supervise stopping) included.
        let removal = Removal::new(engine, &id);
        let holder = Holder {
            container: id.clone(),
            start: schedule::unix(SystemTime::now()),
            pid: std::process::id(),
        };
        let running = dir.join(format!("{}.running", service.name));
        let text = serde_json::to_string(&holder).unwrap_or_default();
        std::fs::write(&running, text).map_err(|e| Error::io("write", &running, e))?;
        let mut last = VecDeque::new();
        let run = async {
            engine.start(&service.name, &id).await?;
            engine.follow(&id, &mut last, on_line).await
        };
        let code = match tokio::time::timeout(timeout, run).await {
            Ok(code) => code,
            Err(_) => {
                engine.stop(&id, Grace::Own).await?;
                Ok(schedule::TIMED_OUT)
            }
        };
        removal.now(engine).await?;
        code
    }

    /// Append `run` to the job's record (the last runs kept) and rewrite the metrics.
    fn record(&self, dir: &Path, name: &str, run: &Run) -> Result<()> {
        let path = dir.join(format!("{name}.runs"));
        let lock = Flock::take(&dir.join(".record.lock"))?;
        let mut file = Flock::open(&path)?;
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let updated = schedule::append_run(&text, run);
        let io = |e| Error::io("write", &path, e);
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(updated.as_bytes()).map_err(io)?;
        let jobs: Vec<(String, Vec<Run>)> = self
            .desired
            .services
            .iter()
            .filter(|s| s.schedule.is_some())
            .map(|s| (s.name.clone(), runs(dir, &s.name)))
            .collect();
        let prom = dir.join("stack_jobs.prom");
        let staged = dir.join(".stack_jobs.prom.new");
        std::fs::write(&staged, schedule::metrics(&jobs))
            .and_then(|()| std::fs::rename(&staged, &prom))
            .map_err(|e| Error::io("write", &prom, e))?;
        drop(lock);
        Ok(())
    }
}
