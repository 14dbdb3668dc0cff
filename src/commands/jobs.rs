//! `stack jobs [--on ENV]` (the scheduled jobs with their next and last runs) and
//! `stack jobs run NAME [--on ENV]` (one run now, its exit code ours). Locally they act
//! on the project's engine (records in `.stack/jobs`); with `--on ENV` they run the
//! server's own stack over the deploy SSH connection (`SERVER_PATH/bin/stack jobs
//! --bundle SERVER_PATH/current`), so a run takes the same lock and leaves the same
//! record there as a scheduled one.

use std::io::{Read, Write};
use std::path::Path;

use chrono::Utc;
use serde_json::json;

use super::target::Target;
use super::{read_desired, runtime, server_of, Context};
use crate::cli::{JobsAction, JobsArgs};
use crate::deploy::ssh::quote;
use crate::deploy::Remote;
use crate::engine::jobs::{job, jobs_dir, runs, JobSite};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{Desired, Placement};
use crate::schedule::{self, Trigger};

pub fn run(context: &Context, args: &JobsArgs) -> Result<()> {
    if let Some(env) = &args.on {
        return remote(context, env, args);
    }
    runtime()?.block_on(async {
        let target = match &args.bundle {
            Some(bundle) => deployed(bundle).await?,
            None => Target::local(context).await?,
        };
        match &args.action {
            None => list(context, &target.desired, &target.placement),
            Some(JobsAction::Run(run)) => run_now(context, &target, &run.name).await,
        }
    })
}

/// A deployed bundle on this machine, with its secrets, on the local engine.
async fn deployed(bundle: &Path) -> Result<Target> {
    let desired = read_desired(bundle)?;
    let secrets = crate::fsio::read_secrets(bundle)?;
    let bundle = std::path::absolute(bundle).map_err(|e| Error::io("resolve", bundle, e))?;
    let root = bundle.parent().unwrap_or(&bundle).to_path_buf();
    Ok(Target {
        engine: Engine::connect().await?,
        desired,
        secrets,
        placement: Placement { root, bundle },
        remote: None,
    })
}

/// One line per job: schedule, next run, last run (start, duration, exit code).
fn list(context: &Context, desired: &Desired, placement: &Placement) -> Result<()> {
    let rows = rows(desired, placement);
    if context.global.json {
        context.printer.json(&json!({ "jobs": rows }));
    } else if rows.is_empty() {
        context
            .printer
            .status("no jobs: a service becomes one with `SERVICE_<NAME>_SCHEDULE=…`");
    } else {
        context.printer.out(table(&rows));
    }
    Ok(())
}

/// Each job as `stack jobs --json` shows it.
fn rows(desired: &Desired, placement: &Placement) -> Vec<serde_json::Value> {
    let dir = jobs_dir(placement);
    let now = Utc::now();
    let mut rows = Vec::new();
    for service in &desired.services {
        let Some(schedule) = &service.schedule else {
            continue;
        };
        let next = schedule::next_after(schedule, now)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|e| e);
        let last = runs(&dir, &service.name).pop();
        rows.push(json!({
            "name": service.name,
            "schedule": schedule.written,
            "timezone": schedule.timezone,
            "concurrency": schedule.concurrency,
            "timeout_seconds": schedule.timeout.as_secs(),
            "next": next,
            "last": last.as_ref().map(|run| json!({
                "start": run.start_text(),
                "duration_ms": run.duration_ms,
                "exit_code": run.exit_code,
                "release": run.release,
                "trigger": run.trigger,
            })),
        }));
    }
    rows
}

/// The rows as an aligned table.
fn table(rows: &[serde_json::Value]) -> String {
    let field = |row: &serde_json::Value, key: &str| match &row[key] {
        serde_json::Value::String(text) => crate::printer::escape(text).into_owned(),
        other => other.to_string(),
    };
    let mut table = vec![[
        "JOB",
        "SCHEDULE",
        "NEXT (UTC)",
        "LAST RUN",
        "DURATION",
        "EXIT",
    ]
    .map(String::from)];
    for row in rows {
        let last = &row["last"];
        let (start, duration, code) = match last.is_null() {
            true => ("never".to_string(), "-".to_string(), "-".to_string()),
            false => (
                field(last, "start"),
                format!(
                    "{:.1}s",
                    last["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0
                ),
                field(last, "exit_code"),
            ),
        };
        let when = format!("{} ({})", field(row, "schedule"), field(row, "timezone"));
        table.push([
            field(row, "name"),
            when,
            field(row, "next"),
            start,
            duration,
            code,
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Run job `name` now; its output on stdout, its exit code ours.
async fn run_now(context: &Context, target: &Target, name: &str) -> Result<()> {
    let service = job(&target.desired, name)?;
    let site = JobSite {
        engine: &target.engine,
        desired: &target.desired,
        place: (&target.placement, &target.secrets),
    };
    context.printer.status(format!("job `{name}`: running now"));
    let outcome = site
        .run(service, Trigger::Manual, |line| {
            context
                .printer
                .out(format!("{}\n", crate::printer::escape(line)))
        })
        .await?;
    if let Some(e) = &outcome.failure {
        context.printer.error(&e.render());
    }
    let run = outcome.run;
    let seconds = run.duration_ms as f64 / 1000.0;
    match run.exit_code {
        0 => {
            context
                .printer
                .status(format!("job `{name}`: succeeded in {seconds:.1}s"));
            Ok(())
        }
        schedule::TIMED_OUT => {
            context.printer.status(format!(
                "job `{name}`: stopped after its timeout of {}s (recorded as exit code {})",
                service.schedule.as_ref().map_or(0, |s| s.timeout.as_secs()),
                schedule::TIMED_OUT
            ));
            Err(Error::Exit(schedule::TIMED_OUT as i32))
        }
        code => {
            context.printer.status(format!(
                "job `{name}`: failed with exit code {code} after {seconds:.1}s"
            ));
            Err(Error::Exit(i32::try_from(code).unwrap_or(1).clamp(1, 255)))
        }
    }
}

/// `--on ENV`: the same command, run by the server's stack on the release `current`;
/// its output is passed through and its exit code is ours.
fn remote(context: &Context, env: &str, args: &JobsArgs) -> Result<()> {
    let loaded = context.load(env)?;
    let server = server_of(&loaded)?;
    let remote = Remote::connect(&server, env)?;
    if remote.current()?.is_none() {
        return Err(Error::No(format!(
            "nothing is deployed to `{env}` on `{}` yet; run `stack deploy {env}`",
            server.host
        )));
    }
    let mut words = vec![
        crate::render::server_binary(&server.path),
        "jobs".into(),
        "--bundle".into(),
        format!("{}/current", server.path),
    ];
    if context.global.json {
        words.push("--json".into());
    }
    if let Some(JobsAction::Run(run)) = &args.action {
        words.extend(["run".to_string(), run.name.clone()]);
    }
    let command: Vec<String> = words.iter().map(|w| quote(w)).collect();
    let script = format!(
        "cd {} && NO_COLOR=1 STACK_ENV={} {}",
        quote(&server.path),
        quote(env),
        command.join(" ")
    );
    let mut child = remote.session.spawn(&script)?;
    drop(child.stdin.take());
    let copy = |from: Option<Box<dyn Read + Send>>, mut to: Box<dyn Write + Send>| {
        std::thread::spawn(move || {
            if let Some(mut from) = from {
                let _ = std::io::copy(&mut from, &mut to);
            }
        })
    };
    let out = copy(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        Box::new(std::io::stdout()),
    );
    let err = copy(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        Box::new(std::io::stderr()),
    );
    let status = child
        .wait()
        .map_err(|e| Error::outside(format!("ssh failed: {e}")))?;
    let _ = (out.join(), err.join());
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(Error::Exit(code)),
        None => Err(Error::outside("the SSH connection to the server ended")),
    }
}
