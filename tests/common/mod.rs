//! Helpers shared by the integration tests: fixtures copied into temporary directories,
//! the `stack` binary run with a clean environment, and bundle readers.
//!
//! Every test works on a copy, so the fixtures in the repository are never written to.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

pub mod vm;

/// The repository root (where `Cargo.toml` lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The folder of one good fixture.
pub fn fixture_dir(name: &str) -> PathBuf {
    repo_root().join("fixtures").join(name)
}

/// Names of the sub-folders of `dir`, sorted (discovered at run time, so adding a
/// folder adds a case).
pub fn folders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", dir.display()))
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no folders in `{}`", dir.display());
    names
}

/// Every good fixture: the folders of `fixtures/`.
pub fn fixtures() -> Vec<String> {
    folders(&repo_root().join("fixtures"))
}

/// Every bad fixture: the folders of `fixtures-bad/`.
pub fn bad_fixtures() -> Vec<String> {
    folders(&repo_root().join("fixtures-bad"))
}

/// The environments every fixture is built for.
pub const ENVS: &[&str] = &["dev", "staging", "prod"];

/// A project copied into a temporary directory; deleted on drop.
pub struct Project {
    /// Holds the project (and anything else a test puts beside it).
    pub temp: TempDir,
    /// The project directory, canonical (the tool canonicalizes it too).
    pub dir: PathBuf,
}

impl Project {
    /// `path` inside the project.
    pub fn path(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }

    /// The default bundle directory of `env`.
    pub fn bundle_dir(&self, env: &str) -> PathBuf {
        self.dir.join(".stack").join(env)
    }

    /// A fresh directory beside the project (not inside it).
    pub fn sibling(&self, name: &str) -> PathBuf {
        let path = self.temp.path().join(name);
        fs::create_dir_all(&path).unwrap();
        path.canonicalize().unwrap()
    }

    /// `stack -C <project> ...`, run from a directory outside the project.
    pub fn stack(&self) -> assert_cmd::Command {
        let mut command = stack();
        command
            .current_dir(self.sibling("cwd"))
            .arg("-C")
            .arg(&self.dir);
        command
    }

    /// Append `text` to the project's `stack.env`.
    pub fn append(&self, text: &str) {
        let path = self.path("stack.env");
        let mut contents = fs::read_to_string(&path).unwrap();
        if !contents.ends_with('\n') {
            contents.push('\n');
        }
        contents.push_str(text);
        fs::write(path, contents).unwrap();
    }

    /// `stack secrets generate ENV`, which must succeed.
    pub fn generate_secrets(&self, env: &str) {
        self.stack()
            .args(["secrets", "generate", env])
            .assert()
            .success();
    }

    /// The secrets of `env` as written to `environments/ENV/secrets.env` (empty when
    /// the file does not exist).
    pub fn secrets(&self, env: &str) -> BTreeMap<String, String> {
        let path = self.path(&format!("environments/{env}/secrets.env"));
        match fs::read_to_string(&path) {
            Ok(text) => parse_env(&text),
            Err(_) => BTreeMap::new(),
        }
    }

    /// Build `env` into `out` (the default bundle directory when `None`); returns the
    /// bundle directory. Panics with the tool's stderr on failure.
    pub fn build(&self, env: &str, out: Option<&Path>) -> PathBuf {
        let mut command = self.stack();
        command.args(["--env", env, "build"]);
        if let Some(out) = out {
            command.arg("--out").arg(out);
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "`stack --env {env} build` failed in `{}` ({}):\n{}",
            self.dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        out.map(Path::to_path_buf)
            .unwrap_or_else(|| self.bundle_dir(env))
    }
}

/// Copy `source` into a new temporary directory as `<temp>/project`. Files that are never
/// committed (secrets, personal overrides, rendered bundles) are left out, so a stray
/// local run in the repository cannot leak into a test.
pub fn copy_project(source: &Path) -> Project {
    let temp = tempfile::Builder::new()
        .prefix("stack-test-")
        .tempdir()
        .unwrap();
    let dir = temp.path().join("project");
    copy_tree(source, &dir);
    let dir = dir.canonicalize().unwrap();
    Project { temp, dir }
}

/// Copy the good fixture `name`.
pub fn fixture(name: &str) -> Project {
    copy_project(&fixture_dir(name))
}

/// Copy the good fixture `name` and, outside `dev` (which generates its own on first
/// build), generate the secrets of `env` as a user would.
pub fn fixture_for(name: &str, env: &str) -> Project {
    let project = fixture(name);
    if env != "dev" {
        project.generate_secrets(env);
    }
    project
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if matches!(
            name_text.as_ref(),
            "secrets.env" | "stack.local.env" | ".stack"
        ) {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The `stack` binary with a predictable environment: no colour, no inherited
/// `STACK_ENV`, and none of the variables the bad fixtures rely on being unset.
pub fn stack() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("stack").unwrap();
    command
        .env("NO_COLOR", "1")
        .env_remove("STACK_ENV")
        .env_remove("STACK_TEST_UNSET_VERSION")
        .env_remove("CUSTOM_TAG_OVERRIDE")
        .env_remove("TAG_OVERRIDE")
        .env_remove("DATABASE_VM")
        .env_remove("MONITORING_VM")
        .env_remove("VERSION");
    command
}

/// `KEY=VALUE` lines of an env file (comments and blank lines skipped, one level of
/// single or double quotes removed).
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| {
            let value = value.trim();
            let unquoted = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(value);
            (key.trim().to_string(), unquoted.to_string())
        })
        .collect()
}

/// One file of a tree on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// Every file under `dir` (relative path → contents and mode); empty when `dir` does
/// not exist.
pub fn read_tree(dir: &Path) -> BTreeMap<String, TreeFile> {
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, TreeFile>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if meta.is_dir() {
            // Directories are recorded too, so an empty new folder counts as a write.
            out.insert(
                format!("{rel}/"),
                TreeFile {
                    contents: Vec::new(),
                    mode: meta.permissions().mode() & 0o777,
                },
            );
            walk(root, &path, out);
        } else {
            out.insert(
                rel,
                TreeFile {
                    contents: fs::read(&path).unwrap(),
                    mode: meta.permissions().mode() & 0o777,
                },
            );
        }
    }
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("cannot stat `{}`: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The full path of `tool` on `PATH`, or a failure that says how to install it.
pub fn require_tool(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(tool);
        if candidate.is_file() && mode(&candidate) & 0o111 != 0 {
            return candidate;
        }
    }
    panic!(
        "`{tool}` is not installed: install {tool} (scripts/install-ci-deps.sh installs every \
         validator: docker-compose, caddy, nginx, systemd, python3-jsonschema, python3-yaml)"
    );
}

/// The Compose Specification schema, kept in the repository (`tests/data/README.md`
/// says where it came from and its licence).
pub fn compose_schema() -> PathBuf {
    let path = repo_root().join("tests/data/compose-spec.json");
    assert!(path.is_file(), "missing `{}`", path.display());
    path
}

/// Text of a command's stdout or stderr.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Run `docker ARGS` and return its output, whatever the exit code.
pub fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

/// One HTTP/1.0 GET of `/` at `address` with the Host header `host`: the first line of
/// the body on a 200, else a description of the failure (2 s to connect, 5 s to answer).
pub fn http_get(address: std::net::SocketAddr, host: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    use std::time::Duration;
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let status = response.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") && !status.ends_with(" 200") {
        return Err(format!("status `{status}`"));
    }
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default();
    Ok(body.lines().next().unwrap_or_default().trim().to_string())
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

static ENGINE: std::sync::Once = std::sync::Once::new();
/// Images already found present: each is asked of the engine once per test binary.
static IMAGES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Fail the test with a clear message when the engine or one of `images` is missing;
/// these tests never skip (CI starts the engine and builds the images). The engine is
/// checked once per test binary, every image of every call (a later test's image is
/// checked too).
pub fn require_engine(images: &[&str]) {
    ENGINE.call_once(|| {
        let info = std::process::Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output();
        match info {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "the Docker engine is unreachable (`docker info` failed): {}\n\
                 start it with `scripts/ensure-docker.sh`; these tests do not skip",
                text(&out.stderr).trim()
            ),
            Err(e) => panic!(
                "cannot run `docker info` ({e}); install docker.io and run `scripts/ensure-docker.sh`"
            ),
        }
    });
    let mut seen = IMAGES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for image in images {
        if seen.iter().any(|s| s == image) {
            continue;
        }
        let ok = docker(&["image", "inspect", "--format", "{{.Id}}", image])
            .status
            .success();
        assert!(
            ok,
            "test image `{image}` is missing: run `scripts/build-test-images.sh`"
        );
        seen.push(image.to_string());
    }
}

/// Entries of `dir` other than `keep`: what a failed or finished build left behind.
pub fn leftovers(dir: &Path, keep: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != keep)
        .collect()
}

impl Project {
    /// `stack build --out OUT` exits 2 saying `needle`, and leaves `out` as it was.
    pub fn refuses_out(&self, out: &Path, needle: &str) {
        let before = read_tree(out);
        self.stack()
            .arg("build")
            .arg("--out")
            .arg(out)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(needle));
        assert_eq!(read_tree(out), before, "the directory was changed");
    }
}

/// `len` bytes that do not compress (xorshift64 from `seed`): a layer whose size is what
/// crosses the wire.
#[allow(dead_code)]
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Remove everything a test project `name` left on the engine: its containers with their
/// anonymous volumes, its networks (`<name>_*`), its volumes (labelled or `<name>_*`) and
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
    if !containers.is_empty() {
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
}

/// Wait until `check` holds, polling every 50 ms up to `limit`; fail the test saying
/// what it waited for. The one way tests wait for a state (no sleep as synchronisation).
pub fn eventually(what: &str, limit: std::time::Duration, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited {limit:?} for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
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
