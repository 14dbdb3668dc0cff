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

/// Copy our stdin to `input` (from a thread of its own: a blocking read must not hold up
/// the runtime's shutdown), closing it at end of file; copy `output` to our stdout and
/// stderr until it ends.
async fn pump(mut output: Output, mut input: Input) -> Result<()> {
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
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(&message);
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
    /// Run `command` in the running container `id` with our streams; its exit code.
    pub async fn exec_attached(&self, id: &str, command: &[String], tty: bool) -> Result<i64> {
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
            pump(output, input).await?;
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
        pump(attached.output, attached.input).await?;
        self.exit_code(id).await
    }
}
