//! A command's standard streams connected to ours: `stack exec` (a command in a running
//! container) and `stack run` (a one-off container). With `tty`, the terminal is put in
//! raw mode (restored on every way out) so Ctrl-C, Ctrl-D and the arrow keys reach the
//! remote side as they do with `docker exec -it`.

use std::io::Write;
use std::pin::Pin;

use bollard::container::LogOutput;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{outside, Engine};
use crate::error::Result;

type Output =
    Pin<Box<dyn Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> + Send>>;
type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// The terminal in raw mode while this lives.
struct RawMode(Option<libc::termios>);

impl RawMode {
    fn enter() -> RawMode {
        // SAFETY: plain termios calls on fd 0 with a zeroed struct they fill in.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return RawMode(None);
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(0, libc::TCSANOW, &raw) != 0 {
                return RawMode(None);
            }
            RawMode(Some(saved))
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = self.0.take() {
            // SAFETY: restores the attributes read in `enter`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &saved);
            }
        }
    }
}

/// Whether our stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// The terminal's size (rows, columns), when stdout is one.
fn terminal_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ fills a winsize struct.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        (libc::ioctl(1, libc::TIOCGWINSZ, &mut size) == 0 && size.ws_row > 0)
            .then_some((size.ws_row, size.ws_col))
    }
}

/// The line a wrapped exec writes first on its stderr: the command's PID in the
/// container, so Ctrl-C can be passed on without a TTY.
const PID_MARK: &str = "stack-exec-pid ";

/// The PID in a [`PID_MARK`] line at the start of `message`, and the length of that line.
fn pid_line(message: &[u8]) -> Option<(u32, usize)> {
    let rest = message.strip_prefix(PID_MARK.as_bytes())?;
    let end = rest.iter().position(|b| *b == b'\n')?;
    let pid = std::str::from_utf8(&rest[..end])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some((pid, PID_MARK.len() + end + 1))
}

/// Copy our stdin to `input` (from a thread of its own: a blocking read must not hold up
/// the runtime's shutdown), closing it at end of file; copy `output` to our stdout and
/// stderr until it ends. With `pid`, the first stderr line is the [`PID_MARK`], kept
/// there and not shown.
async fn pump(
    mut output: Output,
    mut input: Input,
    pid: Option<&std::sync::Mutex<Option<u32>>>,
) -> Result<()> {
    let mut pending = pid.is_some();
    let (send, mut receive) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin();
        let mut buffer = [0u8; 4096];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if send.blocking_send(buffer[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(chunk) = receive.recv().await {
            if input.write_all(&chunk).await.is_err() {
                return;
            }
            let _ = input.flush().await;
        }
        let _ = input.shutdown().await;
    });
    while let Some(item) = output.next().await {
        let item = item.map_err(|e| outside("the connection to the command broke", e))?;
        match item {
            LogOutput::StdErr { message } => {
                let mut skip = 0;
                if let (Some(slot), true) = (pid, pending) {
                    pending = false;
                    if let Some((found, length)) = pid_line(&message) {
                        skip = length;
                        if let Ok(mut slot) = slot.lock() {
                            *slot = Some(found);
                        }
                    }
                }
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(&message[skip..]);
                let _ = err.flush();
            }
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&message);
                let _ = out.flush();
            }
            LogOutput::StdIn { .. } => {}
        }
    }
    writer.abort();
    Ok(())
}

impl Engine {
    /// Run `command` in the running container `id` with our streams; its exit code. With
    /// a TTY, Ctrl-C is a key the command reads. Without one, the command runs under a
    /// `sh` that first tells its PID, and when `interrupt` fires (Ctrl-C) SIGINT is sent
    /// to it in the container, so the remote command ends, not just our side (an image
    /// without `sh` runs the command as it is, and an interrupt then only ends ours).
    pub async fn exec_attached(
        &self,
        id: &str,
        command: &[String],
        tty: bool,
        interrupt: impl std::future::Future<Output = ()>,
    ) -> Result<i64> {
        if tty {
            return self.exec_once(id, command, true, None).await;
        }
        let mut wrapped = vec![
            "sh".to_string(),
            "-c".to_string(),
            format!("echo \"{PID_MARK}$$\" >&2; exec \"$@\""),
            "sh".to_string(),
        ];
        wrapped.extend(command.iter().cloned());
        let pid = std::sync::Mutex::new(None);
        let run = self.exec_once(id, &wrapped, false, Some(&pid));
        tokio::pin!(run);
        tokio::pin!(interrupt);
        let code = tokio::select! {
            code = &mut run => code?,
            _ = &mut interrupt => {
                let known = pid.lock().ok().and_then(|p| *p);
                let Some(pid) = known else {
                    return Ok(130);
                };
                let kill = vec!["sh".to_string(), "-c".to_string(), format!("kill -INT {pid}")];
                let _ = self.exec(id, &kill).await;
                // The command's own end, or 130 when it ignores SIGINT for 10 s.
                match tokio::time::timeout(std::time::Duration::from_secs(10), &mut run).await {
                    Ok(code) => code?,
                    Err(_) => return Ok(130),
                }
            }
        };
        let started = pid.lock().ok().and_then(|p| *p).is_some();
        if !started && (code == 126 || code == 127) {
            // No `sh` in the image: the command never ran; run it as it is.
            return self.exec_once(id, command, false, None).await;
        }
        Ok(code)
    }

    async fn exec_once(
        &self,
        id: &str,
        command: &[String],
        tty: bool,
        pid: Option<&std::sync::Mutex<Option<u32>>>,
    ) -> Result<i64> {
        use bollard::exec::{
            CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults,
        };
        let what = || format!("cannot run `{}` in `{id}`", command.join(" "));
        let exec = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    cmd: Some(command.to_vec()),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(tty),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| outside(&what(), e))?;
        let started = self
            .docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(|e| outside(&what(), e))?;
        if let StartExecResults::Attached { output, input } = started {
            let _raw = tty.then(RawMode::enter);
            if let (true, Some((height, width))) = (tty, terminal_size()) {
                let _ = self
                    .docker
                    .resize_exec(&exec.id, ResizeExecOptions { height, width })
                    .await;
            }
            pump(output, input, pid).await?;
        }
        let inspect = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| outside(&what(), e))?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }

    /// Attach our streams to the created container `id`, start it, and wait for it; its
    /// exit code. The caller removes it.
    pub async fn run_attached(&self, service: &str, id: &str, tty: bool) -> Result<i64> {
        use bollard::query_parameters::{AttachContainerOptions, ResizeContainerTTYOptions};
        let attached = self
            .docker
            .attach_container(
                id,
                Some(AttachContainerOptions {
                    stdin: true,
                    stdout: true,
                    stderr: true,
                    stream: true,
                    logs: true,
                    detach_keys: None,
                }),
            )
            .await
            .map_err(|e| outside(&format!("cannot attach to `{id}`"), e))?;
        self.start(service, id).await?;
        let _raw = tty.then(RawMode::enter);
        if let (true, Some((height, width))) = (tty, terminal_size()) {
            let _ = self
                .docker
                .resize_container_tty(
                    id,
                    ResizeContainerTTYOptions {
                        h: i32::from(height),
                        w: i32::from(width),
                    },
                )
                .await;
        }
        pump(attached.output, attached.input, None).await?;
        self.exit_code(id).await
    }
}
