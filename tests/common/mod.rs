//! Helpers shared by the integration tests: fixtures copied into temporary directories,
//! the `stack` binary run with a clean environment, and bundle readers; projects run on
//! the engine (`project.rs`), the engine itself (`engine.rs`), processes and waiting
//! (`process.rs`), machines like VMs (`vm.rs`) and the static binary and `.deb` the
//! image tests install (`package.rs`).
//!
//! Every test works on a copy, so the fixtures in the repository are never written to.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

pub mod engine;
pub mod load;
pub mod package;
pub mod process;
mod project;
pub mod vm;

// Each suite uses a part of what is shared.
#[allow(unused_imports)]
pub use engine::{
    containers_of, docker, docker_ok, inspect, remove_project, require_engine, Removed,
};
#[allow(unused_imports)]
pub use process::{all_output, eventually, eventually_ok, succeeded, wait_output, Watched};

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

/// A project in a temporary directory, deleted on drop: a copy of a fixture
/// ([`copy_project`]), or a project written by the test and run on the engine
/// ([`Project::named`], removed from the engine on drop).
pub struct Project {
    /// Holds the project (and anything else a test puts beside it).
    pub temp: TempDir,
    /// The project directory, canonical (the tool canonicalizes it too).
    pub dir: PathBuf,
    /// `STACK_PROJECT` of a project made by [`Project::named`]; empty for a fixture copy.
    pub name: String,
    /// Variables set for every command the project runs ([`Project::with_env`]).
    env: Vec<(String, std::ffi::OsString)>,
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
    let project = Project::empty();
    copy_tree(source, &project.dir);
    project
}

impl Project {
    /// A project a test made itself in `dir` (inside `temp`, which it keeps alive), e.g.
    /// with `stack init`; not tied to an engine project name.
    pub fn in_dir(temp: TempDir, dir: PathBuf) -> Project {
        Project {
            temp,
            dir,
            name: String::new(),
            env: Vec::new(),
        }
    }

    /// An empty project directory `<temp>/project` in a new temporary directory.
    fn empty() -> Project {
        let temp = tempfile::Builder::new()
            .prefix("stack-test-")
            .tempdir()
            .unwrap();
        let dir = temp.path().join("project");
        fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        Project {
            temp,
            dir,
            name: String::new(),
            env: Vec::new(),
        }
    }
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
    assert_cmd::Command::from_std(stack_command())
}

/// [`stack`] as a plain process, for a test that spawns it or waits for it itself.
pub fn stack_command() -> std::process::Command {
    use assert_cmd::cargo::CommandCargoExt;
    let mut command = std::process::Command::cargo_bin("stack").unwrap();
    command.env("NO_COLOR", "1");
    for variable in [
        "STACK_ENV",
        "STACK_TEST_UNSET_VERSION",
        "CUSTOM_TAG_OVERRIDE",
        "TAG_OVERRIDE",
        "DATABASE_VM",
        "MONITORING_VM",
        "VERSION",
    ] {
        command.env_remove(variable);
    }
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

/// The last `n` lines of a command's output: where a long build log says what failed
/// (a CI log cuts the middle of a long assertion message).
pub fn last_lines(bytes: &[u8], n: usize) -> String {
    let all = text(bytes);
    let lines: Vec<&str> = all.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How long a test waits for a state that involves containers, health checks, proxies,
/// DNS on the engine's networks, a second engine or a server: generous, because a loaded
/// 2-core machine shared by several builds can take tens of seconds for what takes one
/// alone. A wait ends as soon as its state holds, so this costs nothing when all is well.
pub const LIVE_LIMIT: std::time::Duration = std::time::Duration::from_secs(90);

/// How long a test's client may take to connect to a published port on loopback (a
/// loaded engine's port forwarder can be slow to accept).
pub const CONNECT_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a test's client waits for an answer that may come through a proxy: longer
/// than the longest retry window the product gives its proxies (Caddy's
/// `lb_try_duration 10s`, nginx's `proxy_next_upstream_timeout 15s`), so a proxy still
/// retrying an upstream is not taken for a hang.
pub const ANSWER_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// One HTTP/1.0 GET of `/` at `address` with the Host header `host`: the first line of
/// the body on a 200, else a description of the failure ([`CONNECT_LIMIT`] to connect,
/// [`ANSWER_LIMIT`] to answer).
pub fn http_get(address: std::net::SocketAddr, host: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&address, CONNECT_LIMIT)
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(ANSWER_LIMIT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(ANSWER_LIMIT))
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

/// A port for a test to publish or listen on, reserved for this test process: free on
/// every address (TCP and UDP) when picked, never handed out twice by any test process
/// ([`reserve`]), and outside the kernel's ephemeral range. A port that `bind(0)` picked
/// and closed could be taken again by another test or by an outgoing connection (they
/// take their ports from the ephemeral range) before the container or proxy published it.
pub fn free_port() -> u16 {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    assert!(
        ephemeral >= TEST_PORTS.end,
        "the ephemeral port range starts at {ephemeral}, inside the test ports \
         {TEST_PORTS:?}: set `net.ipv4.ip_local_port_range` to start at {} or above",
        TEST_PORTS.end
    );
    reserve("port", TEST_PORTS, |port| {
        use std::net::{TcpListener, UdpSocket};
        let port = port as u16;
        TcpListener::bind(("0.0.0.0", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("0.0.0.0", port)).is_ok()
    }) as u16
}

/// The test ports: below the temporary registry's ports (30000 and up,
/// `src/deploy/transfer.rs`) and Linux's ephemeral range (32768 and up by default).
const TEST_PORTS: std::ops::Range<u32> = 20_000..30_000;

/// One number of `range` for this test process alone, among every test process that asks
/// for the same `kind` (a port, a second engine's subnet): a lock file per number, held
/// until the process ends, and `usable` must hold for it. Each process starts looking
/// somewhere else in the range, so they rarely contend.
pub fn reserve(kind: &str, range: std::ops::Range<u32>, usable: impl Fn(u32) -> bool) -> u32 {
    use std::sync::Mutex;
    /// The lock files of this process's numbers.
    static HELD: Mutex<Vec<fs::File>> = Mutex::new(Vec::new());
    let dir = format!("/tmp/stack-test-reserved/{kind}");
    fs::create_dir_all(&dir).unwrap();
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    let width = range.end - range.start;
    let start = (u64::from(std::process::id()) * 7_919 + held.len() as u64) % u64::from(width);
    for step in 0..width {
        let number = range.start + ((start + u64::from(step)) % u64::from(width)) as u32;
        let Ok(file) = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(format!("{dir}/{number}"))
        else {
            continue;
        };
        if try_lock(&file) && usable(number) {
            held.push(file);
            return number;
        }
    }
    panic!("no {kind} left in {range:?} (lock files in {dir})");
}

/// Take `flock(LOCK_EX | LOCK_NB)` on `file` (released when the process ends): whether
/// no other open file holds it. (`File::try_lock` is newer than the crate's MSRV.)
fn try_lock(file: &fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a file descriptor this `File` owns and keeps open.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
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
