//! Processes and waiting: a child's output with a deadline, a child whose stderr is read
//! line by line, and [`eventually`], the one way a test waits for a state.
//!
//! Nothing here sleeps as synchronisation: every wait names its condition and fails the
//! test with it when the deadline passes.

use std::io::{BufRead, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::text;

/// How long a `stack` command of a test may run before it is killed and the test fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(240);

/// Poll `check` until it holds or `limit` passes, from every 20 ms up to every 250 ms (a
/// check that asks the engine costs CPU the machine shares); whether it held.
pub fn within(limit: Duration, check: impl FnMut() -> bool) -> bool {
    poll(limit, Duration::from_millis(250), check)
}

/// Poll `check` until it holds or `limit` passes, the pause doubling from 10 ms up to
/// `longest`; whether it held.
fn poll(limit: Duration, longest: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(10);
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(longest);
    }
}

/// Wait until `check` holds, at most `limit`; fail the test saying what it waited for.
/// The one way tests wait for a state (no sleep as synchronisation).
pub fn eventually(what: &str, limit: Duration, check: impl FnMut() -> bool) {
    assert!(within(limit, check), "waited {limit:?} for {what}");
}

/// [`eventually`] for a check that is a future (in a test that runs the library's async
/// API on a tokio runtime): the runtime keeps running while it waits.
pub async fn eventually_async<F: std::future::Future<Output = bool>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(10);
    while !check().await {
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Like [`eventually`], for a check that says why it does not hold yet (the last reason
/// is part of the failure); the value it found.
pub fn eventually_ok<T>(
    what: &str,
    limit: Duration,
    check: impl FnMut() -> Result<T, String>,
) -> T {
    eventually_ok_or(what, limit, check, String::new)
}

/// [`eventually_ok`] whose failure also shows `context()` (the containers' logs, what a
/// command printed): what the test saw while it waited.
pub fn eventually_ok_or<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<T, String>,
    context: impl FnOnce() -> String,
) -> T {
    let mut last = String::new();
    let mut found = None;
    let held = within(limit, || match check() {
        Ok(value) => {
            found = Some(value);
            true
        }
        Err(reason) => {
            last = reason;
            false
        }
    });
    match found {
        Some(value) if held => value,
        _ => panic!("waited {limit:?} for {what}; last: {last}\n{}", context()),
    }
}

/// Wait for `child` (killed after `limit`), collecting its stdout and stderr.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    let stdout = child.stdout.take().map(read_all);
    let stderr = child.stderr.take().map(read_all);
    let status = wait_status(&mut child, limit);
    Output {
        status,
        stdout: stdout.map(join).unwrap_or_default(),
        stderr: stderr.map(join).unwrap_or_default(),
    }
}

/// Start `command` with piped output and wait for it ([`wait_output`]).
pub fn run_within(command: &mut Command, limit: Duration) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    wait_output(child, limit)
}

/// The exit status of `child`, killed (and the test failed) after `limit`.
fn wait_status(child: &mut Child, limit: Duration) -> ExitStatus {
    let mut status = None;
    // `try_wait` costs nothing: ask often, so a test does not idle after each command.
    if poll(limit, Duration::from_millis(20), || {
        status = child.try_wait().unwrap();
        status.is_some()
    }) {
        if let Some(status) = status {
            return status;
        }
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    panic!("the command did not finish within {limit:?} ({status})");
}

fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = from.read_to_end(&mut buffer);
        buffer
    })
}

fn join(reader: JoinHandle<Vec<u8>>) -> Vec<u8> {
    reader.join().expect("an output reader panicked")
}

/// stdout then stderr of `out`, as text.
pub fn all_output(out: &Output) -> String {
    text(&out.stdout) + &text(&out.stderr)
}

/// `out`, asserted to be a success of `what` (the failure shows both outputs).
pub fn succeeded(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "`{what}` failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// A running process whose stderr is read line by line as it comes, so a test can wait
/// for the line it means instead of sleeping.
pub struct Watched {
    pub child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    /// Its stdout so far (read as it comes, for [`Watched::stdout_so_far`]).
    stdout: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stdout_reader: JoinHandle<()>,
}

impl Watched {
    /// Start `command` with piped output.
    pub fn spawn(mut command: Command) -> Watched {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (mut from, into) = (child.stdout.take().unwrap(), stdout.clone());
        let stdout_reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(read) = from.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                into.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buffer[..read]);
            }
        });
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Watched {
            child,
            lines,
            seen: Vec::new(),
            stdout,
            stdout_reader,
        }
    }

    /// What the process wrote to stdout so far.
    pub fn stdout_so_far(&self) -> String {
        text(&self.stdout.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Wait until a stderr line contains `needle`; fail the test after `limit`.
    pub fn wait_line(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no line with `{needle}` within {limit:?}; stderr so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Wait for the process (killed after `limit`) and return all its output.
    pub fn finish(mut self, limit: Duration) -> Output {
        let status = wait_status(&mut self.child, limit);
        let mut stderr = std::mem::take(&mut self.seen);
        stderr.extend(self.lines.iter());
        self.stdout_reader
            .join()
            .expect("the stdout reader panicked");
        let stdout = std::mem::take(&mut *self.stdout.lock().unwrap_or_else(|e| e.into_inner()));
        Output {
            status,
            stdout,
            stderr: (stderr.join("\n") + "\n").into_bytes(),
        }
    }
}
