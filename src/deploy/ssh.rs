//! One multiplexed SSH connection through the system's OpenSSH, so `~/.ssh/config`, the
//! agent, ProxyJump and known_hosts all apply. Commands run over the master connection;
//! the server's Docker socket is forwarded to a local socket for the engine.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::config::Server;
use crate::error::{Error, Result};

/// A live master connection; closed on drop.
pub struct Session {
    target: String,
    port: u16,
    key: Option<String>,
    config_file: Option<String>,
    control: PathBuf,
    /// The server's Docker socket, forwarded here.
    pub docker_socket: PathBuf,
    master: Option<std::process::Child>,
    _dir: tempfile::TempDir,
}

/// Quote a word for the remote POSIX shell.
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Commands through a session's master connection, without borrowing the session (the
/// proxy's files during a deploy); the session must stay open meanwhile.
#[derive(Debug, Clone)]
pub struct Channel {
    args: Vec<std::ffi::OsString>,
}

impl Channel {
    /// Run `script` on the server; its output.
    pub fn run(&self, script: &str) -> Result<Output> {
        Command::new("ssh")
            .args(&self.args)
            .args(["--", script])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::outside(format!("cannot run `ssh`: {e}")))
    }
}

impl Session {
    /// A [`Channel`] through this session's master connection.
    pub fn channel(&self) -> Channel {
        let base = self.base();
        let mut args: Vec<std::ffi::OsString> = base.get_args().map(|a| a.to_owned()).collect();
        args.extend(["-o", "ControlMaster=no", &self.target].map(Into::into));
        Channel { args }
    }

    fn base(&self) -> Command {
        let mut command = Command::new("ssh");
        if let Some(file) = &self.config_file {
            command.args(["-F", file]);
        }
        command
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
            .args(["-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=10"])
            .arg("-o")
            .arg(format!("ControlPath={}", self.control.display()))
            .args(["-p", &self.port.to_string()]);
        if let Some(key) = &self.key {
            command.args(["-i", key, "-o", "IdentitiesOnly=yes"]);
        }
        command
    }

    /// Open the master connection and forward the Docker socket.
    pub fn open(server: &Server) -> Result<Session> {
        Session::connect(server, true)
    }

    /// Open the master connection only (a server that may have no Docker yet).
    pub fn open_plain(server: &Server) -> Result<Session> {
        Session::connect(server, false)
    }

    fn connect(server: &Server, forward: bool) -> Result<Session> {
        Session::begin(server, forward)?.ready()
    }

    /// Start the master connection (on this thread: the master dies with the thread that
    /// started it); [`Connecting::ready`] waits until it is up, from any thread.
    pub fn begin(server: &Server, forward: bool) -> Result<Connecting> {
        let dir = tempfile::Builder::new()
            .prefix("stack-ssh-")
            .tempdir()
            .map_err(|e| Error::outside(format!("cannot create a socket directory: {e}")))?;
        let session = Session {
            target: format!("{}@{}", server.user, server.host),
            port: server.port,
            key: server.ssh_key.as_ref().map(|k| expand_home(k)),
            config_file: std::env::var("STACK_SSH_CONFIG")
                .ok()
                .filter(|s| !s.is_empty()),
            control: dir.path().join("control"),
            docker_socket: dir.path().join("docker.sock"),
            master: None,
            _dir: dir,
        };
        // The master runs as our child, in the foreground, and dies with us even on
        // SIGKILL (PDEATHSIG): a killed deploy leaves no authenticated connection behind.
        let mut command = session.base();
        command.args(["-o", "ControlMaster=yes", "-o", "ExitOnForwardFailure=yes"]);
        if forward {
            command.arg("-L").arg(format!(
                "{}:{}",
                session.docker_socket.display(),
                server.docker_socket
            ));
        }
        command
            .args(["-N", &session.target])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| {
            Error::outside(format!("cannot run `ssh`: {e}"))
                .with_hint("install OpenSSH's client (`apt-get install openssh-client`)")
        })?;
        Ok(Connecting {
            session,
            child,
            server: server.clone(),
            forward,
        })
    }
}

/// A master connection on its way up.
pub struct Connecting {
    session: Session,
    child: std::process::Child,
    server: Server,
    forward: bool,
}

impl Connecting {
    /// Wait (up to 30 s) until the master and its Docker forward are up.
    pub fn ready(self) -> Result<Session> {
        let Connecting {
            mut session,
            mut child,
            server,
            forward,
        } = self;
        let server = &server;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let exited = child
                .try_wait()
                .map_err(|e| Error::outside(format!("ssh failed: {e}")))?;
            if exited.is_some() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                return Err(ssh_failure(server, &stderr));
            }
            if session.control.exists() && (!forward || session.docker_socket.exists()) {
                break;
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                return Err(ssh_failure(server, "timed out while connecting"));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        session.master = Some(child);
        Ok(session)
    }
}

impl Session {
    /// Run a shell command on the server; `stdin` is fed to it.
    pub fn run(&self, script: &str, stdin: Option<&[u8]>) -> Result<Output> {
        let mut child = self
            .base()
            .args(["-o", "ControlMaster=no", &self.target, "--", script])
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::outside(format!("cannot run `ssh`: {e}")))?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(bytes)
                .map_err(|e| Error::outside(format!("cannot send data to the server: {e}")))?;
        }
        child
            .wait_with_output()
            .map_err(|e| Error::outside(format!("ssh failed: {e}")))
    }

    /// Start a shell command on the server with its stdin and stdout piped, to talk to
    /// it while it runs.
    pub fn spawn(&self, script: &str) -> Result<std::process::Child> {
        self.start(script, true)
    }

    /// Start a shell command on the server that only reads its stdin (its output is
    /// discarded), to run until the connection or the stdin ends.
    pub fn spawn_detached(&self, script: &str) -> Result<std::process::Child> {
        self.start(script, false)
    }

    fn start(&self, script: &str, output: bool) -> Result<std::process::Child> {
        let pipe = || match output {
            true => Stdio::piped(),
            false => Stdio::null(),
        };
        self.base()
            .args(["-o", "ControlMaster=no", &self.target, "--", script])
            .stdin(Stdio::piped())
            .stdout(pipe())
            .stderr(pipe())
            .spawn()
            .map_err(|e| Error::outside(format!("cannot run `ssh`: {e}")))
    }

    /// Run a command that must succeed; its stderr becomes the error's cause.
    pub fn check(&self, what: &str, script: &str, stdin: Option<&[u8]>) -> Result<String> {
        let output = self.run(script, stdin)?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        Err(Error::Outside {
            message: format!("on the server: cannot {what}"),
            hint: server_hint(&stderr),
            causes: vec![stderr],
        })
    }

    /// Forward `127.0.0.1:local` here to `127.0.0.1:remote` on the server, over the
    /// master connection.
    pub fn forward(&self, local: u16, remote: u16, cancel: bool) -> Result<()> {
        let output = self
            .base()
            .args(["-O", if cancel { "cancel" } else { "forward" }])
            .arg("-L")
            .arg(format!("127.0.0.1:{local}:127.0.0.1:{remote}"))
            .arg(&self.target)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::outside(format!("cannot run `ssh`: {e}")))?;
        if output.status.success() || cancel {
            return Ok(());
        }
        Err(Error::Outside {
            message: format!("cannot forward local port {local} to the server"),
            causes: vec![String::from_utf8_lossy(&output.stderr).trim().to_string()],
            hint: Some("the server's sshd must allow TCP forwarding (`AllowTcpForwarding yes`), or set `STACK_IMAGE_TRANSFER=archive`".into()),
        })
    }

    /// `user@host`, as connected.
    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn docker_endpoint(&self) -> String {
        format!("unix://{}", self.docker_socket.display())
    }
}

impl Drop for Session {
    /// The master is our child: SIGTERM makes it close the connection and its control
    /// socket (no `ssh -O exit`, which would start one more process).
    fn drop(&mut self) {
        if let Some(mut master) = self.master.take() {
            if let Ok(pid) = i32::try_from(master.id()) {
                // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            let _ = master.wait();
        }
    }
}

fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => Path::new(&home).join(rest).display().to_string(),
        _ => path.to_string(),
    }
}

/// OpenSSH's own words, turned into an error that says what to do.
fn ssh_failure(server: &Server, stderr: &str) -> Error {
    let stderr = stderr.trim();
    let hint = if stderr.contains("Host key verification failed")
        || stderr.contains("No ED25519 host key")
        || stderr.contains("host key for")
    {
        format!(
            "the host key of `{}` is not trusted yet: check its fingerprint, then run `ssh-keyscan -p {} {} >> ~/.ssh/known_hosts`",
            server.host, server.port, server.host
        )
    } else if stderr.contains("Permission denied") {
        format!(
            "the server refused the key for `{}`: add your public key to its ~/.ssh/authorized_keys, load it into ssh-agent, or set `SERVER_SSH_KEY`",
            server.user
        )
    } else if stderr.contains("Could not resolve")
        || stderr.contains("Connection refused")
        || stderr.contains("timed out")
        || stderr.contains("No route")
    {
        format!(
            "check `SERVER_HOST` and `SERVER_PORT` ({}:{}) and that sshd runs there",
            server.host, server.port
        )
    } else if stderr.contains("forwarding") || stderr.contains("docker.sock") {
        format!("the server has no Docker socket at `{}`: install Docker, or set `SERVER_DOCKER_SOCKET`", server.docker_socket)
    } else {
        "run `ssh -v` with the same host to see more".into()
    };
    Error::Outside {
        message: format!(
            "cannot connect to `{}@{}:{}` over SSH",
            server.user, server.host, server.port
        ),
        causes: vec![stderr.to_string()],
        hint: Some(hint),
    }
}

/// The way out of a server failure whose cause says what it is (the server's own words).
pub(super) fn server_hint(stderr: &str) -> Option<String> {
    if stderr.contains("No space left on device") || stderr.contains("Disk quota exceeded") {
        return Some(
            "the server's disk is full: free space there (`df -h` shows where; \
             `docker system prune` removes unused images) and run the command again"
                .into(),
        );
    }
    None
}
