//! A project written by a test and run on the engine: its name, the `stack` commands it
//! runs, its containers, and its removal from the engine when the test ends (passed or
//! failed). Every engine suite (engine, backup, monitoring, rolling, deploy, vm) uses it.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::process::{run_within, succeeded, RUN_LIMIT};
use super::{containers_of, remove_project, Project};

impl Project {
    /// An empty project directory for `STACK_PROJECT=<prefix>-<test>-<pid>` (`_` in `test`
    /// becomes `-`), so tests run in parallel; [`Project::write`] gives it its project
    /// file. Removed from the engine (with its volumes and images) on drop.
    pub fn named(prefix: &str, test: &str) -> Project {
        Project::called(&format!(
            "{prefix}-{}-{}",
            test.replace('_', "-"),
            std::process::id()
        ))
    }

    /// An empty project directory for `STACK_PROJECT=<name>` (a name the test made
    /// unique itself), removed from the engine on drop like [`Project::named`].
    pub fn called(name: &str) -> Project {
        let mut project = Project::empty();
        project.name = name.to_string();
        project
    }

    /// Set `key` to `value` for every command this project runs.
    pub fn with_env(mut self, key: &str, value: impl AsRef<OsStr>) -> Project {
        self.env
            .push((key.to_string(), value.as_ref().to_os_string()));
        self
    }

    /// Write `stack.env`: `STACK_PROJECT=<name>`, then `body`.
    pub fn write(&self, body: &str) {
        std::fs::write(
            self.path("stack.env"),
            format!("STACK_PROJECT={}\n{body}", self.name),
        )
        .unwrap();
    }

    /// `stack ARGS` in the project directory: no stdin, no colour, `CI=true`, the
    /// predictable environment of [`super::stack_command`] and the project's own variables.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = super::stack_command();
        command
            .current_dir(&self.dir)
            .env("CI", "true")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Run `stack ARGS` (killed after [`RUN_LIMIT`]); its output, whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_within(args, RUN_LIMIT)
    }

    /// Run `stack ARGS`, killed after `limit`.
    pub fn run_within(&self, args: &[&str], limit: Duration) -> Output {
        run_within(&mut self.command(args), limit)
    }

    /// Run `stack ARGS` and fail the test with its output unless it exits 0.
    pub fn ok(&self, args: &[&str]) -> Output {
        succeeded(self.run(args), &format!("stack {}", args.join(" ")))
    }

    /// Wait up to [`super::LIVE_LIMIT`] until `check` gives a value; a failure shows the
    /// last reason and the project's containers with their logs.
    pub fn wait_ok<T>(&self, what: &str, check: impl FnMut() -> Result<T, String>) -> T {
        super::process::eventually_ok_or(what, super::LIVE_LIMIT, check, || {
            super::engine::project_logs(&self.name)
        })
    }

    /// [`Project::wait_ok`] for a condition.
    pub fn wait(&self, what: &str, mut check: impl FnMut() -> bool) {
        self.wait_ok(what, || check().then_some(()).ok_or_else(String::new));
    }

    /// The name of the first container of `service`.
    pub fn container(&self, service: &str) -> String {
        format!("{}-{service}-1", self.name)
    }

    /// `(name, id)` of every container labelled with this project, sorted by name.
    pub fn containers(&self) -> Vec<(String, String)> {
        containers_of(&self.name)
    }

    /// The id of the one container of `service` (a rolling replace numbers the new
    /// container after the old one, so the number is not always 1).
    pub fn id_of(&self, service: &str) -> String {
        let prefix = format!("{}-{service}-", self.name);
        let mine: Vec<(String, String)> = self
            .containers()
            .into_iter()
            .filter(|(n, _)| {
                n.strip_prefix(&prefix)
                    .is_some_and(|r| r.parse::<u32>().is_ok())
            })
            .collect();
        assert_eq!(mine.len(), 1, "want one container of `{service}`: {mine:?}");
        mine[0].1.clone()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        // Not `stack down --volumes`: removing the containers with their anonymous volumes
        // (which `down` leaves) is all it would do, and this removes images too.
        remove_project(&self.name);
        // A deploy as root on a machine with `systemctl` installs the unit here.
        let _ = std::fs::remove_file(format!("/etc/systemd/system/{}.service", self.name));
    }
}
