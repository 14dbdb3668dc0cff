//! Scheduled jobs on a real engine, through the `stack` binary: `stack jobs run` (exit
//! code, record, no container left), the scheduler inside `stack supervise` (the test
//! hook `STACK_JOBS_TICK` jumps its clock to the next time of a schedule every tick, so
//! no test waits for a cron minute), the overlap policies and the timeout.
//!
//! Every test writes its own project (`t-jobs-<test>-<pid>`) and removes it from the
//! engine when it ends, passed or failed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::time::Duration;

use common::process::within;
use common::{docker, text};

const BUSYBOX: &str = "stack-test/busybox:latest";

/// One project in a temp dir; removed from the engine (with volumes) on drop.
struct Project {
    dir: tempfile::TempDir,
    name: String,
}

impl Project {
    fn new(test: &str, body: &str) -> Project {
        common::require_engine(&[BUSYBOX]);
        let name = format!("t-jobs-{}-{}", test.replace('_', "-"), std::process::id());
        let project = Project {
            dir: tempfile::tempdir().unwrap(),
            name,
        };
        project.write(body);
        project
    }

    /// `stack.env`: the project name, a long-running `web` and `body` (the job).
    fn write(&self, body: &str) {
        let image = match body.contains("SERVICE_REPORT_IMAGE=") {
            true => String::new(),
            false => format!("SERVICE_REPORT_IMAGE={BUSYBOX}\n"),
        };
        std::fs::write(
            self.dir.path().join("stack.env"),
            format!(
                "STACK_PROJECT={}\nSTACK_PROXY=none\nSTACK_SERVICES=web,report\n\
                 SERVICE_WEB_IMAGE={BUSYBOX}\nSERVICE_WEB_COMMAND=sleep 3600\n\
                 SERVICE_WEB_STOP_GRACE=1s\n\
                 {image}SERVICE_REPORT_STOP_GRACE=1s\n{body}",
                self.name
            ),
        )
        .unwrap();
    }

    fn command(&self, args: &[&str]) -> StdCommand {
        let mut command = StdCommand::new(assert_cmd::cargo::cargo_bin("stack"));
        command
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("STACK_ENV")
            .env_remove("STACK_JOBS_TICK")
            .args(args);
        command
    }

    fn stack(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.stack(args);
        assert!(
            out.status.success(),
            "`stack {}` failed ({:?})\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn jobs_dir(&self) -> PathBuf {
        self.dir.path().join(".stack").join("jobs")
    }

    /// The runs recorded for `job`, as JSON values, oldest first.
    fn runs(&self, job: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.jobs_dir().join(format!("{job}.runs")))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Names of the project's containers, one-off ones included.
    fn containers(&self) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let out = docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]);
        text(&out.stdout).lines().map(str::to_string).collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.stack(&["down", "--volumes"]);
        common::remove_project(&self.name);
    }
}

/// The output of a child that ended.
fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

/// The desired state of the project in `dir`, as a deploy saves it with a release.
fn write_release_state(dir: &Path) {
    let loaded = stack::config::load(dir, "dev", &[], &stack::config::Options::default(), |_| {
        None
    })
    .unwrap_or_else(|e| panic!("{}", e.render()));
    let bundle = dir.join(".stack").join("dev");
    let (_, desired) = stack::commands::bundle_of(&loaded.config, &bundle).unwrap();
    std::fs::write(
        bundle.join(stack::deploy::DESIRED_FILE),
        serde_json::to_vec(&desired).unwrap(),
    )
    .unwrap();
}

#[test]
fn jobs_run_returns_the_jobs_exit_code_and_records_the_run() {
    let p = Project::new(
        "run",
        "SERVICE_REPORT_COMMAND=sh -c 'echo nightly report; exit 3'\n\
         SERVICE_REPORT_SCHEDULE=30 2 * * *\n",
    );
    p.ok(&["start"]);
    // A job is not started as a long-running container.
    let containers = p.containers();
    assert!(
        containers.iter().all(|c| !c.contains("report")),
        "{containers:?}"
    );
    let out = p.stack(&["jobs", "run", "report"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        text(&out.stdout).contains("nightly report"),
        "{}",
        text(&out.stdout)
    );
    assert!(stderr.contains("failed with exit code 3"), "{stderr}");
    let runs = p.runs("report");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["exit_code"], 3);
    assert_eq!(runs[0]["trigger"], "manual");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(p.jobs_dir().join("report.runs"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let prom = std::fs::read_to_string(p.jobs_dir().join("stack_jobs.prom")).unwrap();
    assert!(
        prom.contains("stack_job_last_exit_code{job=\"report\"} 3"),
        "{prom}"
    );
    // The one-off container is gone.
    let left = p.containers();
    assert!(left.iter().all(|c| !c.contains("report")), "{left:?}");
    // `stack jobs` lists it with its last run.
    let out = p.ok(&["--json", "jobs"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = &list["jobs"][0];
    assert_eq!(job["name"], "report");
    assert_eq!(job["last"]["exit_code"], 3);
    assert!(
        job["next"].as_str().unwrap().ends_with("T02:30:00Z"),
        "{job}"
    );
    // A service that is not a job, and a job that does not exist: clear errors.
    let out = p.stack(&["jobs", "run", "web"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is not a job"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn supervise_fires_a_scheduled_job_at_each_tick_and_records_it() {
    let p = Project::new(
        "tick",
        "SERVICE_REPORT_COMMAND=echo tick\nSERVICE_REPORT_SCHEDULE=every 15m\n",
    );
    p.ok(&["start"]);
    write_release_state(p.dir.path());
    let bundle = p.dir.path().join(".stack").join("dev");
    let mut supervise = p.command(&["supervise", "--bundle", bundle.to_str().unwrap()]);
    supervise.env("STACK_JOBS_TICK", "1s");
    let child = supervise
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ran = within(Duration::from_secs(90), || p.runs("report").len() >= 3);
    let _ = StdCommand::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = finish(child);
    let stderr = text(&out.stderr);
    assert!(ran, "supervise did not run the job three times:\n{stderr}");
    let runs = p.runs("report");
    // One run per time: each start of a run is recorded once, none failed.
    let started = stderr.matches("job `report`: starting").count();
    assert!(started >= runs.len(), "{stderr}");
    for run in &runs {
        assert_eq!(run["exit_code"], 0, "{runs:?}");
        assert_eq!(run["trigger"], "schedule", "{runs:?}");
    }
    assert!(stderr.contains("report | tick"), "{stderr}");
}

#[test]
fn forbid_refuses_a_second_run_and_replace_stops_the_first_then_times_out() {
    let p = Project::new(
        "overlap",
        "SERVICE_REPORT_COMMAND=sleep 60\nSERVICE_REPORT_SCHEDULE=@daily\n\
         SERVICE_REPORT_TIMEOUT=2m\n",
    );
    p.ok(&["start"]);
    let first = p.spawn(&["jobs", "run", "report"]);
    let running = p.jobs_dir().join("report.running");
    assert!(
        within(Duration::from_secs(60), || running.exists()),
        "the first run did not start"
    );
    let out = p.stack(&["jobs", "run", "report"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is already running"), "{stderr}");
    assert!(stderr.contains("CONCURRENCY=forbid"), "{stderr}");

    // `replace`: the first run's container is stopped (STOP_GRACE 1s; busybox `sleep`
    // ignores SIGTERM, so it is killed), then this one runs until its timeout.
    p.write(
        "SERVICE_REPORT_COMMAND=sleep 60\nSERVICE_REPORT_SCHEDULE=@daily\n\
         SERVICE_REPORT_CONCURRENCY=replace\nSERVICE_REPORT_TIMEOUT=3s\n",
    );
    let out = p.stack(&["jobs", "run", "report"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(124), "{stderr}");
    assert!(
        stderr.contains("stopped after its timeout of 3s"),
        "{stderr}"
    );
    let first = finish(first);
    let code = first.status.code();
    assert!(
        code != Some(0) && code != Some(124),
        "the replaced run should have been stopped: {code:?}\n{}",
        text(&first.stderr)
    );
    let runs = p.runs("report");
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[1]["exit_code"], 124, "{runs:?}");
    let left = p.containers();
    assert!(left.iter().all(|c| !c.contains("report")), "{left:?}");
}

#[test]
fn a_job_whose_image_is_gone_is_recorded_as_not_started() {
    let p = Project::new(
        "gone",
        "SERVICE_REPORT_IMAGE=stack-test/no-such-image:1\nSERVICE_REPORT_SCHEDULE=@daily\n",
    );
    // `start` would pull the job's image: only the long-running service is started.
    p.ok(&["start", "web"]);
    let out = p.stack(&["jobs", "run", "report"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("is not on this engine"), "{stderr}");
    let runs = p.runs("report");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["exit_code"], 125);
}

#[test]
fn a_time_that_comes_during_a_deploy_runs_once_the_lock_is_free() {
    let p = Project::new(
        "deploy-lock",
        "SERVICE_REPORT_COMMAND=echo after the deploy\nSERVICE_REPORT_SCHEDULE=@hourly\n",
    );
    p.ok(&["start"]);
    write_release_state(p.dir.path());
    // The bundle `.stack/dev` is a release whose server path is `.stack`: a deploy's lock
    // there is `.stack/lock`, with its owner file.
    let lock = p.dir.path().join(".stack").join("lock");
    std::fs::create_dir_all(&lock).unwrap();
    std::fs::write(lock.join("info"), "owner=ci release=r2\n").unwrap();
    let bundle = p.dir.path().join(".stack").join("dev");
    let mut supervise = p.command(&["supervise", "--bundle", bundle.to_str().unwrap()]);
    supervise.env("STACK_JOBS_TICK", "1s");
    let child = supervise
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pending = p.jobs_dir().join("report.pending");
    let kept = within(Duration::from_secs(60), || pending.exists());
    let none_yet = p.runs("report").is_empty();
    std::fs::remove_dir_all(&lock).unwrap();
    let ran = within(Duration::from_secs(60), || !p.runs("report").is_empty());
    let _ = StdCommand::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stderr = text(&finish(child).stderr);
    assert!(
        kept,
        "the time was not kept while the lock was held:\n{stderr}"
    );
    assert!(
        none_yet,
        "a run started while a deploy held the lock:\n{stderr}"
    );
    assert!(
        ran,
        "the kept time did not run once the lock was free:\n{stderr}"
    );
    assert!(
        stderr.contains("a deploy holds the lock (owner=ci release=r2)"),
        "{stderr}"
    );
    assert!(stderr.contains("report | after the deploy"), "{stderr}");
}
