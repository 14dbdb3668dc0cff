//! The scheduler of jobs, run inside `stack supervise` (one process per project, kept by
//! systemd): at each time of a job's schedule it starts a run ([`JobSite::run`]) as a
//! task of its own. A time that comes while a deploy holds the lock is kept as
//! `jobs/NAME.pending` and run once the lock is free, by this process or (after the
//! deploy's reload) the next one, with the new release. Times missed while supervise was
//! not running are not caught up.
//!
//! Test hook: `STACK_JOBS_TICK=DURATION` makes the scheduler's clock jump to the next
//! time of a schedule every DURATION of wall time instead of waiting for it, so a test
//! sees one run per tick without waiting for a cron minute.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::jobs::{deploy_lock_holder, jobs_dir, JobSite, Outcome};
use super::Engine;
use crate::model::{Desired, DesiredService, Placement, Secrets};
use crate::printer::Printer;
use crate::schedule::{self, Trigger};

/// How often the scheduler looks again while it waits: the wall clock may jump
/// (suspend, NTP), and a pending run waits for the deploy lock.
const LOOK: Duration = Duration::from_secs(2);

/// What the scheduler owns: shared with each run's task.
#[derive(Clone)]
pub struct Scheduler {
    pub engine: Engine,
    pub desired: Arc<Desired>,
    pub place: Arc<(Placement, Secrets)>,
    pub printer: Printer,
    /// Told the job's name and exit code of every scheduled run that failed (supervise
    /// sends it to `STACK_NOTIFY`; the engine layer knows no notifier).
    pub failed: Option<tokio::sync::mpsc::UnboundedSender<(String, i64)>>,
}

impl Scheduler {
    /// Fire the jobs until `stop` turns true; then wait for the runs under way and
    /// return. Dropping the future instead cancels the runs (their containers are
    /// removed).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let jobs: Vec<DesiredService> = self
            .desired
            .services
            .iter()
            .filter(|s| s.schedule.is_some())
            .cloned()
            .collect();
        if jobs.is_empty() {
            return;
        }
        let tick = std::env::var("STACK_JOBS_TICK")
            .ok()
            .and_then(|t| crate::config::values::parse_duration(&t));
        let mut runs = JoinSet::new();
        let mut clock = Utc::now();
        self.printer.status(format!(
            "scheduling {} job(s): {}",
            jobs.len(),
            jobs.iter()
                .map(|j| j.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        while !*stop.borrow() {
            let Some((at, due)) = self.next(&jobs, clock) else {
                break;
            };
            let wall = tokio::time::Instant::now() + tick.unwrap_or(Duration::ZERO);
            loop {
                self.start_pending(&jobs, &mut runs);
                let left = match tick {
                    Some(_) => wall.saturating_duration_since(tokio::time::Instant::now()),
                    None => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
                };
                if left.is_zero() {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(left.min(LOOK)) => {}
                    _ = stop.changed() => break,
                }
                if *stop.borrow() {
                    break;
                }
            }
            if *stop.borrow() {
                break;
            }
            clock = at;
            for job in due {
                self.fire(job, &mut runs);
            }
            while runs.try_join_next().is_some() {}
        }
        if !runs.is_empty() {
            self.printer.status(format!(
                "waiting for {} job run(s) to end before going on",
                runs.len()
            ));
        }
        while runs.join_next().await.is_some() {}
    }

    /// The next time after `clock` and the jobs due then.
    fn next<'j>(
        &self,
        jobs: &'j [DesiredService],
        clock: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, Vec<&'j DesiredService>)> {
        let mut times = Vec::new();
        for job in jobs {
            let schedule = job.schedule.as_ref()?;
            match schedule::next_after(schedule, clock) {
                Ok(at) => times.push((at, job)),
                Err(e) => self.printer.status(format!("job `{}`: {e}", job.name)),
            }
        }
        let at = times.iter().map(|(at, _)| *at).min()?;
        let due = times
            .into_iter()
            .filter(|(t, _)| *t == at)
            .map(|(_, job)| job)
            .collect();
        Some((at, due))
    }

    fn pending_file(&self, name: &str) -> PathBuf {
        jobs_dir(&self.place.0).join(format!("{name}.pending"))
    }

    /// A time of `job`: run it, or keep it pending while a deploy holds the lock.
    fn fire(&self, job: &DesiredService, runs: &mut JoinSet<()>) {
        if let Some(holder) = deploy_lock_holder(&self.place.0) {
            let path = self.pending_file(&job.name);
            let kept = path
                .parent()
                .map(|dir| std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, "")));
            let how = match kept {
                Some(Ok(())) => "it runs when the deploy is done, with the new release",
                _ => "it could not be kept for later and is skipped",
            };
            self.printer.status(format!(
                "job `{}`: a deploy holds the lock ({holder}); {how}",
                job.name
            ));
            return;
        }
        self.spawn(job, runs);
    }

    /// Start the runs kept while a deploy held the lock, once it is free.
    fn start_pending(&self, jobs: &[DesiredService], runs: &mut JoinSet<()>) {
        if deploy_lock_holder(&self.place.0).is_some() {
            return;
        }
        for job in jobs {
            if std::fs::remove_file(self.pending_file(&job.name)).is_ok() {
                self.printer.status(format!(
                    "job `{}`: running the time kept during a deploy",
                    job.name
                ));
                self.spawn(job, runs);
            }
        }
    }

    fn spawn(&self, job: &DesiredService, runs: &mut JoinSet<()>) {
        let this = self.clone();
        let job = job.clone();
        runs.spawn(async move {
            let site = JobSite {
                engine: &this.engine,
                desired: &this.desired,
                place: (&this.place.0, &this.place.1),
            };
            let name = job.name.clone();
            let printer = this.printer.clone();
            this.printer.status(format!("job `{name}`: starting"));
            let result = site
                .run(&job, Trigger::Schedule, |line| {
                    printer.status(format!("{name} | {line}"))
                })
                .await;
            if let Ok(Outcome {
                failure: Some(e), ..
            }) = &result
            {
                this.printer.error(&e.render());
            }
            match result.map(|outcome| outcome.run) {
                Ok(run) if run.ok() => this.printer.status(format!(
                    "job `{name}`: succeeded in {:.1}s",
                    run.duration_ms as f64 / 1000.0
                )),
                Ok(run) => {
                    if let Some(failed) = &this.failed {
                        let _ = failed.send((name.clone(), run.exit_code));
                    }
                    this.printer.status(format!(
                        "job `{name}`: failed with exit code {} after {:.1}s",
                        run.exit_code,
                        run.duration_ms as f64 / 1000.0
                    ))
                }
                Err(e) => this.printer.error(&e.render()),
            }
        });
    }
}
