//! The Docker engine as the tests see it: the `docker` CLI, the check that the engine and
//! the test images are there, what a project's containers are, and the removal of
//! everything a test project left on the engine.

use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use super::text;

/// Run `docker ARGS` (no stdin) and return its output, whatever the exit code.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"))
}

/// Run `docker ARGS`, which must succeed; its stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `docker inspect --format FORMAT CONTAINER`, which must succeed; trimmed.
pub fn inspect(container: &str, format: &str) -> String {
    docker_ok(&["inspect", "--format", format, container])
        .trim()
        .to_string()
}

/// `(name, id)` of every container (running or not) of the project `name`, sorted.
pub fn containers_of(name: &str) -> Vec<(String, String)> {
    let filter = format!("label=com.docker.compose.project={name}");
    let listed = docker_ok(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &filter,
        "--format",
        "{{.Names}} {{.ID}}",
    ]);
    let mut rows: Vec<(String, String)> = listed
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, i)| (n.to_string(), i.to_string()))
        .collect();
    rows.sort();
    rows
}

/// What a failed wait shows of the project `name`: each container's state and health
/// and the last lines of its logs.
pub fn project_logs(name: &str) -> String {
    let mut shown = String::new();
    for (container, id) in containers_of(name) {
        let state = text(
            &docker(&[
                "inspect",
                "--format",
                "{{.State.Status}} (exit {{.State.ExitCode}}){{if .State.Health}}, health {{.State.Health.Status}}{{end}}",
                &id,
            ])
            .stdout,
        );
        shown.push_str(&format!(
            "--- {container}: {}\n{}",
            state.trim(),
            last_logs(&id)
        ));
    }
    if shown.is_empty() {
        shown = format!("(no container of `{name}`)\n");
    }
    shown
}

/// The last 30 lines a container wrote (stdout, then stderr), for a failed wait to show.
pub fn last_logs(container: &str) -> String {
    let logs = docker(&["logs", "--tail", "30", container]);
    format!("{}{}", text(&logs.stdout), text(&logs.stderr))
}

/// The test image every suite's services run on.
pub const BUSYBOX: &str = "stack-test/busybox:latest";

/// A busybox service `name` running `command` (an httpd on 8080 serving `/var/www`) with
/// an HTTP health check on `/health` every second.
pub fn httpd_service(name: &str, command: &str) -> String {
    let key = name.to_uppercase().replace('-', "_");
    format!(
        "SERVICE_{key}_IMAGE={BUSYBOX}\n\
         SERVICE_{key}_COMMAND={command}\n\
         SERVICE_{key}_PORT=8080\n\
         SERVICE_{key}_HEALTH=/health\n\
         SERVICE_{key}_HEALTH_INTERVAL=1s\n"
    )
}

/// Wait until the Postgres in `container` (user and database `app`) takes connections
/// over TCP: the image's entrypoint answers `pg_isready` on its socket while it still
/// runs its first-start server, which it then restarts.
pub fn wait_for_postgres(container: &str) {
    let ready = || {
        let out = psql(container, "SELECT 1");
        if out.status.success() {
            Ok(())
        } else {
            Err(text(&out.stderr))
        }
    };
    super::process::eventually_ok_or(
        "postgres to take connections",
        super::LIVE_LIMIT,
        ready,
        || format!("logs:\n{}", last_logs(container)),
    );
}

/// `sql` run by `psql` over TCP in the Postgres of `container` (user and database `app`),
/// quiet, unaligned, tuples only, stopping at the first error; its output, whatever the
/// exit code.
pub fn psql(container: &str, sql: &str) -> Output {
    let options = "-X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -U app -d app -c";
    let mut args = vec!["exec", container, "psql"];
    args.extend(options.split(' '));
    args.push(sql);
    docker(&args)
}

/// The engine's answer to `docker info`, asked once per test binary: `Err` says what
/// is wrong. Kept as a value (not a `Once` that panics inside), so every test that
/// needs the engine fails with the same clear message, not with a poisoned `Once`.
static ENGINE: OnceLock<Result<(), String>> = OnceLock::new();
/// Images already found present: each is asked of the engine once per test binary.
static IMAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Fail the test with a clear message when the engine or one of `images` is missing;
/// these tests never skip (CI starts the engine and builds the images). The engine is
/// checked once per test binary, every image of every call (a later test's image is
/// checked too).
pub fn require_engine(images: &[&str]) {
    let engine = ENGINE.get_or_init(|| {
        match Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(format!(
                "the Docker engine is unreachable (`docker info` failed): {}\n\
                 start it with `scripts/ensure-docker.sh`; these tests do not skip",
                text(&out.stderr).trim()
            )),
            Err(e) => Err(format!(
                "cannot run `docker info` ({e}); install docker.io and run \
                 `scripts/ensure-docker.sh`"
            )),
        }
    });
    if let Err(message) = engine {
        panic!("{message}");
    }
    let missing: Vec<&str> = {
        let mut seen = IMAGES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut missing = Vec::new();
        for image in images {
            if seen.iter().any(|s| s == image) {
                continue;
            }
            if docker(&["image", "inspect", "--format", "{{.Id}}", image])
                .status
                .success()
            {
                seen.push(image.to_string());
            } else {
                missing.push(*image);
            }
        }
        missing
    };
    assert!(
        missing.is_empty(),
        "test image(s) {missing:?} missing: run `scripts/build-test-images.sh`"
    );
}

/// Remove everything a test project `name` left on the engine: its containers with their
/// anonymous volumes (also those inherited from a container they replaced), its networks (`<name>_*`), its volumes (labelled or `<name>_*`) and
/// its images (`<name>-<service>:<tag>`: built and release images). Every suite's
/// `Project` calls it when dropped, so a full run leaves nothing behind.
pub fn remove_project(name: &str) {
    let lines = |out: std::process::Output| -> Vec<String> {
        text(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let label = format!("label=com.docker.compose.project={name}");
    let containers = lines(docker(&["ps", "-aq", "--filter", &label]));
    // The anonymous volumes they mount, named before they go: a container that replaced
    // another mounts the old one's by its name, which `rm -v` does not remove (one empty
    // Postgres data volume was left by each full run that way).
    let mut anonymous = Vec::new();
    if !containers.is_empty() {
        let mut args = vec![
            "inspect",
            "-f",
            "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}",
        ];
        args.extend(containers.iter().map(String::as_str));
        anonymous = lines(docker(&args))
            .into_iter()
            .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect();
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(containers.iter().map(String::as_str));
        let _ = docker(&args);
    }
    let prefix = format!("{name}_");
    let networks: Vec<String> = lines(docker(&["network", "ls", "--format", "{{.Name}}"]))
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    for network in &networks {
        let _ = docker(&["network", "rm", network]);
    }
    let mut volumes = lines(docker(&["volume", "ls", "-q", "--filter", &label]));
    volumes.extend(
        lines(docker(&["volume", "ls", "-q"]))
            .into_iter()
            .filter(|v| v.starts_with(&prefix)),
    );
    // The temporary registry's storage, kept between deploys of the project.
    volumes.push(format!("{name}-stack-registry"));
    volumes.extend(anonymous);
    volumes.sort();
    volumes.dedup();
    if !volumes.is_empty() {
        let mut args = vec!["volume", "rm", "-f"];
        args.extend(volumes.iter().map(String::as_str));
        let _ = docker(&args);
    }
    // Built and release images (`<name>-<service>:<tag>`), also under a registry's
    // address (`127.0.0.1:PORT/<name>/<name>-<service>:<tag>`, a transfer cut short).
    let images: Vec<String> = lines(docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]))
        .into_iter()
        .filter(|image| {
            image.starts_with(&format!("{name}-")) || image.contains(&format!("/{name}/{name}-"))
        })
        .collect();
    if !images.is_empty() {
        let mut args = vec!["rmi", "-f"];
        args.extend(images.iter().map(String::as_str));
        let _ = docker(&args);
    }
    // What a rebuild left untagged: the earlier builds stack made (they carry the build
    // fingerprint label). Without `-f`: one a container still runs stays.
    let dangling = lines(docker(&[
        "images",
        "-q",
        "--filter",
        "dangling=true",
        "--filter",
        "label=dev.stack.build-fingerprint",
    ]));
    if !dangling.is_empty() {
        let mut args = vec!["rmi"];
        args.extend(dangling.iter().map(String::as_str));
        let _ = docker(&args);
    }
}

/// Removes a test project from the engine ([`remove_project`]) when dropped, also when
/// the test fails halfway.
pub struct Removed(pub String);

impl Drop for Removed {
    fn drop(&mut self) {
        remove_project(&self.0);
    }
}
