//! Integration tests of `stack deploy` against a real SSH server (SPEC §4, issue #4).
//!
//! Every test starts its own OpenSSH server (`/usr/sbin/sshd -D -e`) on a free loopback
//! port with generated host and client keys, and points `stack` at it through
//! `STACK_SSH_CONFIG` (an ssh config naming the test's known_hosts and key: ssh ignores
//! `$HOME`). The "server" is this machine: user root, its dockerd, `SERVER_PATH` in the
//! test's temp dir. Needs openssh-server and openssh-client
//! (`scripts/install-ci-deps.sh`), a running dockerd (`scripts/ensure-docker.sh`) and the
//! local test images (`scripts/build-test-images.sh`); a missing piece FAILS the test.
//!
//! Each test has a unique `STACK_PROJECT` (`d-<test>-<pid>`); a [`Project`] guard removes
//! its containers, network and volumes (and the systemd unit a deploy as root writes) when
//! the test ends, and an [`Sshd`] guard kills the server, its sessions and any ssh
//! master a killed deploy left behind.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use common::process::{eventually_ok_or, within};
use common::{
    all_output, docker, eventually, free_port, inspect, mode, text, wait_output, Project, Watched,
};

mod common;

use common::engine::BUSYBOX;
/// Debian's postgresql-15 behind the official image's entrypoint contract (#9).
const POSTGRES: &str = "stack-test/postgres:15";
/// busybox httpd as PID 1 ignores SIGTERM, so each replaced container would cost the
/// engine's whole stop grace period: a shell that exits on TERM keeps the tests quick.
const HTTPD: &str = "sh -c 'trap \"exit 0\" TERM; httpd -f -p 8080 -h /var/www & wait'";
const SSHD: &str = "/usr/sbin/sshd";

static PREREQS: Once = Once::new();

/// Panic (fail the test) with a clear message when a prerequisite is missing.
fn require_prereqs() {
    PREREQS.call_once(|| {
        for tool in ["ssh", "ssh-keygen"] {
            let ok = StdCommand::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(
                ok,
                "`{tool}` is missing: install openssh-client (scripts/install-ci-deps.sh)"
            );
        }
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (scripts/install-ci-deps.sh)"
        );
        common::require_engine(&[BUSYBOX]);
    });
}

fn run_ok(cmd: &mut StdCommand) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Pids of every process whose parent is `pid`, recursively.
fn descendants(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            break;
        };
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid …`: comm may hold spaces, so split after the last `)`.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if ppid == Some(parent) && !all.contains(&child) {
                all.push(child);
                frontier.push(child);
            }
        }
    }
    all
}

/// `(pid, command line)` of processes whose command line mentions `needle` (here: a
/// test's own ssh config).
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (pid != std::process::id() && cmdline.contains(needle)).then_some((pid, cmdline))
        })
        .collect()
}

fn kill(pid: u32) {
    let _ = StdCommand::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// A private sshd on a free loopback port, killed (with its sessions) on drop.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Sshd {
    fn start() -> Sshd {
        require_prereqs();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (key, comment) in [("host_key", "host"), ("client_key", "client")] {
            run_ok(
                StdCommand::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                    .arg(d.join(key)),
            );
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let mut last_error = String::new();
        // A port picked free can be taken before sshd binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            std::fs::write(
                d.join("sshd_config"),
                format!(
                    "Port {port}\n\
                     ListenAddress 127.0.0.1\n\
                     HostKey {dir}/host_key\n\
                     PidFile {dir}/sshd.pid\n\
                     AuthorizedKeysFile {dir}/authorized_keys\n\
                     PermitRootLogin prohibit-password\n\
                     PasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\n\
                     StrictModes no\n\
                     UsePAM no\n\
                     AllowStreamLocalForwarding yes\n\
                     AllowTcpForwarding yes\n\
                     MaxSessions 50\n\
                     MaxStartups 100:30:200\n\
                     LogLevel ERROR\n",
                    dir = d.display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(d.join("sshd.log")).unwrap();
            let mut child = StdCommand::new(SSHD)
                .arg("-f")
                .arg(d.join("sshd_config"))
                .args(["-D", "-e"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sshd");
            // Listening, or exited (the port was taken): whichever comes first.
            let mut exited = None;
            let listening = within(common::LIVE_LIMIT, || {
                exited = child.try_wait().ok().flatten();
                exited.is_some() || TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            match exited {
                None if listening => {
                    let sshd = Sshd { dir, port, child };
                    sshd.trust_host();
                    sshd.write_ssh_config();
                    return sshd;
                }
                Some(status) => {
                    last_error = format!(
                        "sshd exited ({status}): {}",
                        std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
                    );
                }
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = "sshd did not listen within 10 s".into();
                }
            }
        }
        panic!("cannot start a test sshd: {last_error}");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write `known_hosts` with this server's host key.
    fn trust_host(&self) {
        let key = std::fs::read_to_string(self.path("host_key.pub")).unwrap();
        let mut parts = key.split_whitespace();
        let (kind, blob) = (parts.next().unwrap(), parts.next().unwrap());
        std::fs::write(
            self.path("known_hosts"),
            format!("[127.0.0.1]:{} {kind} {blob}\n", self.port),
        )
        .unwrap();
    }

    /// Forget the host key: ssh then has nothing to check it against.
    fn distrust_host(&self) {
        std::fs::write(self.path("known_hosts"), "").unwrap();
    }

    fn write_ssh_config(&self) {
        std::fs::write(
            self.path("ssh_config"),
            format!(
                "Host *\n\
                 \x20 UserKnownHostsFile {known}\n\
                 \x20 GlobalKnownHostsFile /dev/null\n\
                 \x20 IdentityFile {key}\n\
                 \x20 IdentitiesOnly yes\n\
                 \x20 PasswordAuthentication no\n",
                known = self.path("known_hosts").display(),
                key = self.path("client_key").display()
            ),
        )
        .unwrap();
    }

    fn ssh_config(&self) -> PathBuf {
        self.path("ssh_config")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // ssh masters of deploys killed with SIGKILL outlive them (ControlPersist), and so
        // do their socket directories: the masters name this test's ssh config and the
        // directory (`ControlPath=/tmp/stack-ssh-…/control`) on their command line.
        for (pid, cmdline) in processes_mentioning(&self.ssh_config().display().to_string()) {
            kill(pid);
            for word in cmdline.split_whitespace() {
                if let Some(control) = word.strip_prefix("ControlPath=") {
                    if let Some(dir) = Path::new(control).parent() {
                        if dir.to_string_lossy().contains("stack-ssh-") {
                            let _ = std::fs::remove_dir_all(dir);
                        }
                    }
                }
            }
        }
        let sessions = descendants(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in sessions {
            kill(pid);
        }
    }
}

/// A busybox httpd service with an HTTP health check on `/health` every second.
fn httpd_service(name: &str) -> String {
    common::engine::httpd_service(name, HTTPD)
}

/// Two services, `web` and `api`, and a secret handed to `web` (so the release has `.env`).
fn two_services() -> String {
    format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web,api\nSTACK_SECRETS=APP_KEY\n{}{}\
         SERVICE_WEB_ENV_APP_KEY=${{APP_KEY}}\n",
        httpd_service("web"),
        httpd_service("api")
    )
}

fn one_service() -> String {
    format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web\n{}",
        httpd_service("web")
    )
}

impl Project {
    /// A project `d-<test>-<pid>` whose `staging` environment is deployed to `sshd` (its
    /// `SERVER_PATH` is `srv` in the project); its containers, network, volumes and
    /// systemd unit are removed on drop.
    fn new(test: &str, sshd: &Sshd, body: &str) -> Project {
        let project = Project::named("d", test).with_env("STACK_SSH_CONFIG", sshd.ssh_config());
        std::fs::create_dir_all(project.path("environments/staging")).unwrap();
        std::fs::write(
            project.path("environments/staging/server.env"),
            format!(
                "SERVER_HOST=127.0.0.1\nSERVER_PORT={}\nSERVER_USER=root\nSERVER_PATH={}\n",
                sshd.port,
                project.srv().display()
            ),
        )
        .unwrap();
        project.rewrite(body);
        if body.contains("STACK_SECRETS") {
            project.ok(&["secrets", "generate", "staging"]);
        }
        project
    }

    /// Write the project file again: `STACK_TLS=off`, `STACK_DRAIN=0s`, then `body`.
    fn rewrite(&self, body: &str) {
        self.write(&format!("STACK_TLS=off\nSTACK_DRAIN=0s\n{body}"));
    }

    /// The server's `SERVER_PATH`.
    fn srv(&self) -> PathBuf {
        self.path("srv")
    }

    /// A deploy of a version that never turns healthy, so it is surely still running
    /// when a test interrupts it.
    fn stuck_deploy(&self) -> StdCommand {
        self.command(&[
            "deploy",
            "staging",
            "--allow-dirty",
            "--set",
            "SERVICE_WEB_HEALTH=/nope",
            "--set",
            "STACK_HEALTH_TIMEOUT=60s",
        ])
    }

    /// `stack deploy staging --allow-dirty EXTRA…`, which must succeed.
    fn deploy(&self, extra: &[&str]) -> Output {
        let mut args = vec!["deploy", "staging", "--allow-dirty"];
        args.extend_from_slice(extra);
        self.ok(&args)
    }

    fn deploy_any(&self, extra: &[&str]) -> Output {
        let mut args = vec!["deploy", "staging", "--allow-dirty"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `stack releases staging`: `(id, current)` oldest first.
    fn releases(&self) -> Vec<(String, bool)> {
        let out = self.ok(&["releases", "staging"]);
        text(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("    "))
            .map(|l| (l[2..].trim().to_string(), l.starts_with('*')))
            .collect()
    }

    fn current_release(&self) -> Option<String> {
        let target = std::fs::read_link(self.srv().join("current")).ok()?;
        let target = target.to_str()?.to_string();
        assert!(
            target.starts_with("releases/") || target.contains("/releases/"),
            "`current` points outside releases/: {target}"
        );
        Some(target.rsplit('/').next().unwrap().to_string())
    }

    /// Release directories on the server (without `.partial` leftovers).
    fn release_dirs(&self) -> Vec<String> {
        let mut dirs: Vec<String> = std::fs::read_dir(self.srv().join("releases"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs
    }

    fn lock_dir(&self) -> PathBuf {
        self.srv().join("lock")
    }

    fn audit_log(&self) -> String {
        std::fs::read_to_string(self.srv().join("audit.log")).unwrap_or_default()
    }
}

/// The httpd in `container` answers `/health` (busybox wget from inside the container).
fn answers(container: &str) -> bool {
    let out = docker(&[
        "exec",
        container,
        "wget",
        "-q",
        "-O",
        "-",
        "http://127.0.0.1:8080/health",
    ]);
    out.status.success()
}

// A first deploy: the release on the server, `current`, secrets 0600, containers running,
// the audit log.
#[test]
fn first_deploy_creates_a_release_and_runs_it() {
    let sshd = Sshd::start();
    let p = Project::new("first", &sshd, &two_services());
    let out = p.deploy(&["-m", "first one"]);
    eprintln!("first deploy:\n{}", all_output(&out));

    let releases = p.releases();
    assert_eq!(releases.len(), 1, "{releases:?}");
    let (id, current) = &releases[0];
    assert!(current, "the release is not marked current: {releases:?}");
    assert!(id.starts_with("staging-"), "{id}");
    assert_eq!(p.current_release().as_deref(), Some(id.as_str()));
    let link = std::fs::read_link(p.srv().join("current")).unwrap();
    assert!(
        link.to_string_lossy().contains("releases/"),
        "`current` -> {}",
        link.display()
    );

    let release = p.srv().join("releases").join(id);
    assert_eq!(mode(&release.join("desired.json")), 0o600);
    assert_eq!(mode(&release.join(".env")), 0o600);
    let env = std::fs::read_to_string(release.join(".env")).unwrap();
    assert!(env.contains("APP_KEY="), ".env has no APP_KEY:\n{env}");

    for service in ["web", "api"] {
        let c = p.id_of(service);
        assert_eq!(inspect(&c, "{{.State.Status}}"), "running", "{service}");
    }
    let web_env = inspect(&p.id_of("web"), "{{json .Config.Env}}");
    assert!(web_env.contains("APP_KEY="), "web env: {web_env}");

    assert!(!p.lock_dir().exists(), "the deploy left its lock");
    let audit = p.audit_log();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\tdeploy\t") && l.contains(id.as_str()) && l.ends_with("ok")),
        "audit.log:\n{audit}"
    );
    let out = p.ok(&["audit", "staging", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("audit --json is not JSON ({e}):\n{}", text(&out.stdout)));
    let entries = json["entries"].as_array().expect("entries");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "deploy" && e["release"] == id.as_str()),
        "{json}"
    );
}

// A redeploy that changes nothing recreates nothing; a deploy that changes one service
// recreates only that one.
#[test]
fn redeploy_unchanged_then_one_service_changed() {
    let sshd = Sshd::start();
    let p = Project::new("redeploy", &sshd, &two_services());
    p.deploy(&[]);
    let (web, api) = (p.id_of("web"), p.id_of("api"));

    let started = Instant::now();
    let out = p.deploy(&[]);
    eprintln!(
        "a redeploy with nothing changed took {:?}",
        started.elapsed()
    );
    // One round trip found nothing to do, and said so in the audit log.
    assert!(
        text(&out.stderr).contains("nothing changed"),
        "{}",
        all_output(&out)
    );
    assert_eq!(p.id_of("web"), web, "an unchanged redeploy recreated web");
    assert_eq!(p.id_of("api"), api, "an unchanged redeploy recreated api");
    assert!(!p.lock_dir().exists(), "the deploy left its lock");
    let audit = p.audit_log();
    assert!(
        audit.lines().last().unwrap().ends_with("ok: unchanged"),
        "{audit}"
    );

    // A container that stopped is not "nothing changed": the deploy goes the long way
    // and starts it again.
    let _ = docker(&["stop", "-t", "0", &web]);
    let out = p.deploy(&[]);
    assert!(
        !text(&out.stderr).contains("nothing changed"),
        "{}",
        all_output(&out)
    );
    assert_eq!(
        inspect(&p.id_of("web"), "{{.State.Status}}"),
        "running",
        "the long way did not start web again"
    );
    let web = p.id_of("web");

    p.deploy(&["--set", "SERVICE_API_ENV_FOO=2"]);
    assert_eq!(
        p.id_of("web"),
        web,
        "web was recreated although only api changed"
    );
    let new_api = p.id_of("api");
    assert_ne!(new_api, api, "api was not recreated");
    let env = inspect(&new_api, "{{json .Config.Env}}");
    assert!(env.contains("\"FOO=2\""), "api env: {env}");
    assert_eq!(p.containers().len(), 2, "{:?}", p.containers());
    let releases = p.releases();
    assert!(releases.last().is_some_and(|r| r.1), "{releases:?}");
    assert_eq!(p.current_release(), releases.last().map(|r| r.0.clone()));
}

// A new version that never turns healthy: exit 1, rolled back, the old version answers.
#[test]
fn unhealthy_deploy_rolls_back() {
    let sshd = Sshd::start();
    let p = Project::new("rollback-auto", &sshd, &one_service());
    p.deploy(&[]);
    let good = p.current_release().expect("a current release");
    let web = p.id_of("web");

    let started = Instant::now();
    let out = p.deploy_any(&[
        "--set",
        "SERVICE_WEB_HEALTH=/nope",
        "--set",
        "STACK_HEALTH_TIMEOUT=8s",
    ]);
    let stderr = text(&out.stderr);
    eprintln!("the failed deploy took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("rolled back"), "stderr:\n{stderr}");
    assert!(
        stderr.contains("web"),
        "stderr does not name the service:\n{stderr}"
    );
    assert!(
        stderr.contains(&good),
        "stderr does not name the release it went back to:\n{stderr}"
    );

    assert_eq!(p.current_release().as_deref(), Some(good.as_str()));
    let releases = p.releases();
    assert!(
        releases.iter().any(|(id, cur)| *cur && id == &good),
        "{releases:?}"
    );
    let now = p.id_of("web");
    assert_eq!(inspect(&now, "{{.State.Status}}"), "running");
    assert!(
        answers(&now),
        "the old version does not answer after the rollback"
    );
    let health = inspect(&now, "{{json .Config.Healthcheck}}");
    assert!(
        !health.contains("/nope"),
        "the failed version is running: {health}"
    );
    assert_eq!(now, web, "the old container was replaced rather than kept");
    assert!(!p.lock_dir().exists(), "the failed deploy left its lock");
    let audit = p.audit_log();
    assert!(audit.contains("\trollback\t"), "audit.log:\n{audit}");
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\tdeploy\t") && l.contains("failed")),
        "audit.log:\n{audit}"
    );
}

// Two deploys at once: each either succeeds or fails on the lock naming its holder, and no
// lock is left.
#[test]
fn two_deploys_at_once() {
    let sshd = Sshd::start();
    let p = Project::new("concurrent", &sshd, &one_service());
    p.deploy(&[]);

    let spawn = |n: &str| {
        p.command(&[
            "deploy",
            "staging",
            "--allow-dirty",
            "--set",
            &format!("SERVICE_WEB_ENV_N={n}"),
            "-m",
            &format!("deploy {n}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (a, b) = (spawn("a"), spawn("b"));
    let (a, b) = (
        wait_output(a, Duration::from_secs(180)),
        wait_output(b, Duration::from_secs(180)),
    );
    let mut ok = 0;
    for out in [&a, &b] {
        match out.status.code() {
            Some(0) => ok += 1,
            Some(1) => {
                let stderr = text(&out.stderr);
                assert!(
                    stderr.contains("lock") && stderr.contains("owner="),
                    "a deploy failed for another reason than the lock:\n{stderr}"
                );
                assert!(
                    stderr.contains("deploy a") || stderr.contains("deploy b"),
                    "the lock error does not name the holder's deploy:\n{stderr}"
                );
            }
            other => panic!("deploy exited {other:?}:\n{}", all_output(out)),
        }
    }
    assert!(
        ok >= 1,
        "neither deploy succeeded:\n{}\n---\n{}",
        all_output(&a),
        all_output(&b)
    );
    assert!(!p.lock_dir().exists(), "a lock was left behind");
    assert_eq!(p.containers().len(), 1, "{:?}", p.containers());
    assert_eq!(inspect(&p.id_of("web"), "{{.State.Status}}"), "running");

    // A waiting deploy gets the lock once the holder is done.
    std::fs::create_dir_all(p.lock_dir()).unwrap();
    std::fs::write(p.lock_dir().join("info"), "owner=someone\n").unwrap();
    let mut waiting = Watched::spawn(p.command(&[
        "deploy",
        "staging",
        "--allow-dirty",
        "--lock-wait",
        "60s",
        "--set",
        "SERVICE_WEB_ENV_N=c",
    ]));
    waiting.wait_line("waiting for the deploy lock", Duration::from_secs(60));
    std::fs::remove_dir_all(p.lock_dir()).unwrap();
    let out = waiting.finish(Duration::from_secs(120));
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(!p.lock_dir().exists(), "a lock was left behind");
}

// A lock left behind: deploy fails naming the holder; `stack lock release` frees it and
// says so in the audit log; the next deploy goes through.
#[test]
fn stale_lock_blocks_until_released() {
    let sshd = Sshd::start();
    let p = Project::new("stale-lock", &sshd, &one_service());
    std::fs::create_dir_all(p.lock_dir()).unwrap();
    std::fs::write(
        p.lock_dir().join("info"),
        "owner=ci-runner@build-42\ntime=20240101T000000Z\nrelease=staging-x\nenv=staging\nmessage=killed job\n",
    )
    .unwrap();

    let out = p.deploy_any(&[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("ci-runner@build-42"),
        "the holder is not named:\n{stderr}"
    );
    assert!(
        stderr.contains("lock release"),
        "no hint to free it:\n{stderr}"
    );
    assert!(
        p.lock_dir().join("info").exists(),
        "the failed deploy removed another's lock"
    );
    assert!(p.containers().is_empty(), "{:?}", p.containers());
    assert!(p.release_dirs().is_empty(), "{:?}", p.release_dirs());

    let out = p.ok(&["lock", "release", "staging"]);
    assert!(
        all_output(&out).contains("ci-runner@build-42"),
        "{}",
        all_output(&out)
    );
    assert!(!p.lock_dir().exists(), "`lock release` left the lock");
    let out = p.ok(&["audit", "staging"]);
    let audit = text(&out.stdout);
    assert!(audit.contains("lock-release"), "audit:\n{audit}");
    // Releasing a free lock is fine.
    p.ok(&["lock", "release", "staging"]);

    p.deploy(&[]);
    assert_eq!(inspect(&p.id_of("web"), "{{.State.Status}}"), "running");
}

// `stack rollback staging RELEASE` switches `current` and converges to it.
#[test]
fn rollback_to_a_named_release() {
    let sshd = Sshd::start();
    let p = Project::new("rollback-named", &sshd, &one_service());
    p.deploy(&["--set", "SERVICE_WEB_ENV_V=one"]);
    let first = p.current_release().unwrap();
    p.deploy(&["--set", "SERVICE_WEB_ENV_V=two"]);
    let second = p.current_release().unwrap();
    assert_ne!(first, second);
    assert!(inspect(&p.id_of("web"), "{{json .Config.Env}}").contains("\"V=two\""));

    p.ok(&["rollback", "staging", &first]);
    assert_eq!(p.current_release().as_deref(), Some(first.as_str()));
    let releases = p.releases();
    assert_eq!(
        releases,
        vec![(first.clone(), true), (second.clone(), false)],
        "{releases:?}"
    );
    let web = p.id_of("web");
    assert!(
        inspect(&web, "{{json .Config.Env}}").contains("\"V=one\""),
        "the rollback did not converge"
    );
    assert_eq!(inspect(&web, "{{.State.Status}}"), "running");
    assert!(!p.lock_dir().exists(), "the rollback left its lock");
    assert!(p.audit_log().contains("\trollback\t"), "{}", p.audit_log());

    // An unknown release is bad input.
    let out = p.run(&["rollback", "staging", "staging-nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert_eq!(p.current_release().as_deref(), Some(first.as_str()));
}

// A change of the proxy's configuration only (a host added to a route) reloads the
// running proxy on the server, the same container, over SSH; so does a rollback to the
// release without it; the server's copies are what the proxy serves.
#[test]
fn a_new_route_reloads_the_proxy_in_place_on_the_server() {
    let sshd = Sshd::start();
    let port = free_port();
    let body = format!(
        "STACK_PROXY=caddy\nSTACK_PROXY_IMAGE=stack-test/caddy:latest\n\
         STACK_HTTP_PORT={port}\nSTACK_HTTPS_PORT={}\nSTACK_SERVICES=web\n{}\
         SERVICE_WEB_ROUTE=a.localhost\n",
        free_port(),
        httpd_service("web")
    );
    let p = Project::new("proxy-reload", &sshd, &body);
    p.deploy(&[]);
    let first = p.current_release().unwrap();
    let proxy = p.id_of("proxy");
    let address = ([127, 0, 0, 1], port).into();
    // The app answers `ok`; Caddy answers a host it does not route with an empty 200.
    let routed = |host: &str| common::http_get(address, host).is_ok_and(|body| body == "ok");
    eventually("a.localhost to answer", Duration::from_secs(60), || {
        routed("a.localhost")
    });
    assert!(
        !routed("b.localhost"),
        "b.localhost is routed before its deploy"
    );

    // The dry run plans the reload, and only it: the routed service's container stays
    // (its routes are the proxy's configuration); the deploy then does exactly that.
    let web = p.id_of("web");
    let change = ["--set", "SERVICE_WEB_ROUTE=a.localhost,b.localhost"];
    let planned = steps_of(&p.deploy(&[&["--json", "--dry-run"][..], &change].concat()));
    let reload = |steps: &[serde_json::Value]| -> Vec<String> {
        steps
            .iter()
            .filter(|s| s["step"] == "container")
            .map(|s| s["action"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        reload(&planned),
        ["proxy: reload its configuration in place"],
        "{planned:?}"
    );
    let out = p.deploy(&[&["--json"][..], &change].concat());
    assert!(
        text(&out.stderr).contains("reloading its configuration in place")
            && !text(&out.stderr).contains("did not follow its plan"),
        "{}",
        all_output(&out)
    );
    assert_eq!(steps_of(&out), planned, "the dry run and the deploy differ");
    assert_eq!(p.id_of("proxy"), proxy, "the deploy recreated the proxy");
    assert_eq!(
        p.id_of("web"),
        web,
        "a route change rolled the routed service"
    );
    eventually("b.localhost to answer", Duration::from_secs(60), || {
        routed("b.localhost")
    });
    let copy = std::fs::read_to_string(p.srv().join("proxy/Caddyfile")).unwrap();
    assert!(copy.contains("b.localhost"), "{copy}");
    assert!(!p.srv().join("proxy/.pending").exists(), "left pending");

    let planned = steps_of(&p.ok(&["--json", "rollback", "staging", &first, "--dry-run"]));
    let out = p.ok(&["--json", "rollback", "staging", &first]);
    assert!(
        text(&out.stderr).contains("reloading its configuration in place")
            && !text(&out.stderr).contains("did not follow its plan"),
        "{}",
        all_output(&out)
    );
    assert_eq!(
        steps_of(&out),
        planned,
        "the dry run and the rollback differ"
    );
    assert_eq!(p.id_of("proxy"), proxy, "the rollback recreated the proxy");
    assert_eq!(
        p.id_of("web"),
        web,
        "the rollback rolled the routed service"
    );
    eventually("b.localhost to go", Duration::from_secs(60), || {
        !routed("b.localhost")
    });
    assert!(routed("a.localhost"));
}

// STACK_KEEP_RELEASES=2 after four deploys leaves two releases, current among them.
#[test]
fn old_releases_are_pruned() {
    let sshd = Sshd::start();
    let p = Project::new(
        "prune",
        &sshd,
        &format!("STACK_KEEP_RELEASES=2\n{}", one_service()),
    );
    // Another environment's release in the same directory is never pruned.
    std::fs::create_dir_all(p.srv().join("releases/prod-20000101T000000Z-deadbeef")).unwrap();
    for i in 1..=4 {
        p.deploy(&["--set", &format!("SERVICE_WEB_ENV_N={i}")]);
    }
    let releases = p.releases();
    assert_eq!(releases.len(), 2, "{releases:?}");
    assert!(releases[1].1, "the newest is not current: {releases:?}");
    let dirs = p.release_dirs();
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    assert!(
        dirs.contains(&"prod-20000101T000000Z-deadbeef".to_string()),
        "{dirs:?}"
    );
    let current = p.current_release().unwrap();
    assert!(dirs.contains(&current), "{dirs:?} / {current}");
    assert!(
        inspect(&p.id_of("web"), "{{json .Config.Env}}").contains("\"N=4\""),
        "the last deploy is not running"
    );
}

// An unknown host key is refused (exit 3) with a hint on how to trust it.
#[test]
fn unknown_host_key_is_refused() {
    let sshd = Sshd::start();
    sshd.distrust_host();
    let p = Project::new("hostkey", &sshd, &one_service());
    let out = p.deploy_any(&[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    assert!(
        stderr.contains("ssh-keyscan"),
        "no hint on how to trust the host:\n{stderr}"
    );
    assert!(!p.srv().exists(), "something changed on the server");
    assert!(p.containers().is_empty(), "{:?}", p.containers());
    // Nothing was added to known_hosts behind the user's back.
    let known = std::fs::read_to_string(sshd.path("known_hosts")).unwrap();
    assert!(known.trim().is_empty(), "known_hosts:\n{known}");
}

// A missing server.env is bad input (exit 2) naming the file.
#[test]
fn missing_server_env_is_bad_input() {
    let sshd = Sshd::start();
    let p = Project::new("no-server", &sshd, &one_service());
    std::fs::remove_file(p.dir.join("environments/staging/server.env")).unwrap();
    std::fs::write(p.dir.join("environments/staging/stack.env"), "").unwrap();
    let out = p.deploy_any(&[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("server.env"),
        "stderr does not name server.env:\n{stderr}"
    );
    assert!(!p.srv().exists());
}

// `deploy --dry-run` prints what would change and changes nothing.
#[test]
fn dry_run_changes_nothing() {
    let sshd = Sshd::start();
    let p = Project::new("dry", &sshd, &two_services());
    let out = p.deploy(&["--dry-run"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("upload release"), "stdout:\n{stdout}");
    assert!(
        stdout.contains("create"),
        "no create action printed:\n{stdout}"
    );
    assert!(!p.srv().exists(), "the dry run created SERVER_PATH");
    assert!(p.containers().is_empty(), "{:?}", p.containers());
    let net = docker(&["network", "inspect", &format!("{}_default", p.name)]);
    assert!(!net.status.success(), "the dry run created the network");
}

/// The `"steps"` of a `--json` deploy (a dry run's plan, or what a real one did).
fn steps_of(out: &Output) -> Vec<serde_json::Value> {
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", all_output(out)));
    json["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps: {json}"))
        .clone()
}

/// The step names in `steps`, for a readable assertion.
fn step_names(steps: &[serde_json::Value]) -> Vec<String> {
    steps
        .iter()
        .map(|s| s["step"].as_str().unwrap_or_default().to_string())
        .collect()
}

// The dry run lists exactly the steps the real deploy then performs: a first deploy, a
// redeploy with nothing changed, and a deploy where one service changed.
#[test]
fn a_dry_run_lists_the_steps_the_deploy_performs() {
    let sshd = Sshd::start();
    let p = Project::new("plan", &sshd, &two_services());
    let scenarios: [(&str, &[&str]); 3] = [
        ("first deploy", &[]),
        ("nothing changed", &[]),
        ("api changed", &["--set", "SERVICE_API_ENV_FOO=2"]),
    ];
    let mut seen = Vec::new();
    for (scenario, extra) in scenarios {
        let mut dry = vec!["--json", "--dry-run"];
        dry.extend_from_slice(extra);
        let planned = steps_of(&p.deploy(&dry));
        let mut real = vec!["--json"];
        real.extend_from_slice(extra);
        let out = p.deploy(&real);
        assert!(
            !text(&out.stderr).contains("did not follow its plan"),
            "{scenario}: {}",
            all_output(&out)
        );
        let done = steps_of(&out);
        assert_eq!(
            planned, done,
            "{scenario}: the dry run and the deploy differ"
        );
        seen.push((step_names(&done), done));
    }
    let long = ["lock", "upload", "switch", "unit", "finish"];
    for (names, _) in &seen {
        if names != &["unchanged"] {
            assert!(
                long.iter().all(|s| names.contains(&s.to_string())),
                "{names:?}"
            );
        }
    }
    // The first deploy creates both services, the redeploy does nothing, the change
    // touches api alone.
    let actions = |steps: &[serde_json::Value]| -> Vec<String> {
        steps
            .iter()
            .filter(|s| s["step"] == "container")
            .map(|s| s["action"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let first = actions(&seen[0].1);
    assert!(first.iter().any(|a| a.starts_with("web")), "{first:?}");
    assert!(first.iter().any(|a| a.starts_with("api")), "{first:?}");
    assert_eq!(seen[1].0, ["unchanged"], "the redeploy was not `unchanged`");
    let changed = actions(&seen[2].1);
    assert!(!changed.is_empty(), "{:?}", seen[2].0);
    assert!(changed.iter().all(|a| a.starts_with("api")), "{changed:?}");
}

// The dry run of a rollback lists exactly the steps the rollback then performs, takes no
// lock and changes nothing: back to the release before (only `api` changed between them),
// then forward again to the newer one by name.
#[test]
fn a_dry_run_lists_the_steps_the_rollback_performs() {
    let sshd = Sshd::start();
    let p = Project::new("plan-back", &sshd, &two_services());
    p.deploy(&[]);
    let first = p.current_release().unwrap();
    p.deploy(&["--set", "SERVICE_API_ENV_FOO=2"]);
    let second = p.current_release().unwrap();
    let scenarios: [(&str, &[&str], &str); 2] = [
        ("back to the one before", &[], &first),
        ("forward by name", &[second.as_str()], &second),
    ];
    for (scenario, extra, to) in scenarios {
        let before = (p.current_release(), p.containers());
        let mut dry = vec!["--json", "rollback", "staging", "--dry-run"];
        dry.extend_from_slice(extra);
        let planned = steps_of(&p.ok(&dry));
        assert_eq!(
            (p.current_release(), p.containers()),
            before,
            "{scenario}: the dry run changed the server"
        );
        assert!(
            !p.lock_dir().exists(),
            "{scenario}: the dry run left a lock"
        );
        let mut real = vec!["--json", "rollback", "staging"];
        real.extend_from_slice(extra);
        let out = p.ok(&real);
        assert!(
            !text(&out.stderr).contains("did not follow its plan"),
            "{scenario}: {}",
            all_output(&out)
        );
        let done = steps_of(&out);
        assert_eq!(
            planned, done,
            "{scenario}: the dry run and the rollback differ"
        );
        assert_eq!(p.current_release().as_deref(), Some(to), "{scenario}");
        let names = step_names(&done);
        assert_eq!(names.first().map(String::as_str), Some("lock"), "{names:?}");
        assert!(
            ["switch", "unit", "finish"]
                .iter()
                .all(|s| names.contains(&s.to_string())),
            "{scenario}: {names:?}"
        );
        // Only `api` differs between the two releases.
        let actions: Vec<&str> = done
            .iter()
            .filter(|s| s["step"] == "container")
            .map(|s| s["action"].as_str().unwrap_or_default())
            .collect();
        assert!(!actions.is_empty(), "{scenario}: {names:?}");
        assert!(actions.iter().all(|a| a.starts_with("api")), "{actions:?}");
    }
}

// A deploy killed midway (SIGKILL), then the lock released and the deploy run again.
#[test]
fn killed_deploy_then_rerun() {
    let sshd = Sshd::start();
    let p = Project::new("killed", &sshd, &two_services());
    p.deploy(&[]);
    let good = p.current_release().unwrap();

    let mut deploy = Watched::spawn(p.command(&[
        "deploy",
        "staging",
        "--allow-dirty",
        "--set",
        "SERVICE_WEB_ENV_N=1",
        "--set",
        "SERVICE_API_ENV_N=1",
    ]));
    // Killed in the middle of shipping: after the lock, while a service is replaced.
    deploy.wait_line("rolling: starting container", Duration::from_secs(90));
    deploy.child.kill().unwrap(); // SIGKILL
    deploy.child.wait().unwrap();
    eprintln!(
        "after the kill: current={:?} lock={} releases={:?} containers={:?}",
        p.current_release(),
        p.lock_dir().exists(),
        p.release_dirs(),
        p.containers()
    );
    // Whatever it reached, something still serves.
    assert!(p.current_release().is_some(), "no `current` after the kill");
    assert!(
        p.containers()
            .iter()
            .any(|(n, id)| n.contains("-web-") && inspect(id, "{{.State.Status}}") == "running"),
        "no web container runs after the kill: {:?}",
        p.containers()
    );

    // The server saw the connection end: it freed the lock and said so.
    assert!(
        within(common::LIVE_LIMIT, || !p.lock_dir().exists()),
        "the killed deploy's lock was not freed"
    );
    let audit = p.audit_log();
    assert!(
        audit
            .lines()
            .last()
            .is_some_and(|l| l.contains("connection to stack ended")),
        "{audit}"
    );
    p.ok(&["lock", "release", "staging"]);
    assert!(!p.lock_dir().exists());
    p.deploy(&[
        "--set",
        "SERVICE_WEB_ENV_N=1",
        "--set",
        "SERVICE_API_ENV_N=1",
    ]);
    let current = p.current_release().unwrap();
    assert_ne!(current, good);
    for service in ["web", "api"] {
        let c = p.id_of(service);
        assert_eq!(inspect(&c, "{{.State.Status}}"), "running", "{service}");
        assert!(
            inspect(&c, "{{json .Config.Env}}").contains("\"N=1\""),
            "{service}"
        );
        assert!(answers(&c), "{service} does not answer");
    }
    assert!(!p.lock_dir().exists(), "the re-run left its lock");
    assert!(
        !p.release_dirs().iter().any(|d| d.ends_with(".partial")),
        "a partial upload survived the next deploy: {:?}",
        p.release_dirs()
    );
}

// Ctrl-C (SIGINT) during a deploy: the command stops, records it, frees the lock, and the
// next deploy converges.
#[test]
fn interrupted_deploy_frees_its_lock() {
    let sshd = Sshd::start();
    let p = Project::new("sigint", &sshd, &one_service());
    p.deploy(&[]);
    // A new version that never turns healthy, so the deploy is surely still running.
    let mut deploy = Watched::spawn(p.stuck_deploy());
    let pid = deploy.child.id();
    // Interrupted while it waits for the new container, which never turns ready.
    deploy.wait_line("rolling: starting container", Duration::from_secs(90));
    run_ok(StdCommand::new("kill").args(["-INT", &pid.to_string()]));
    let out = deploy.finish(Duration::from_secs(60));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("interrupted"), "stderr:\n{stderr}");
    assert!(
        !p.lock_dir().exists(),
        "the interrupted deploy left its lock"
    );
    let audit = p.audit_log();
    assert!(
        audit
            .lines()
            .last()
            .is_some_and(|l| l.contains("\tdeploy\t") && l.contains("failed")),
        "audit.log:\n{audit}"
    );
    // Something still serves, and the next deploy converges to one container.
    assert!(
        p.containers()
            .iter()
            .any(|(n, id)| n.contains("-web-") && answers(id)),
        "nothing answers after the interrupt: {:?}",
        p.containers()
    );
    p.deploy(&["--set", "SERVICE_WEB_ENV_N=2"]);
    let web = p.id_of("web");
    assert!(answers(&web));
    assert!(inspect(&web, "{{json .Config.Env}}").contains("\"N=2\""));
}

// No sshd on the port: an outside failure (exit 3) that says what to check.
#[test]
fn unreachable_host_is_an_outside_failure() {
    let sshd = Sshd::start();
    let p = Project::new("unreachable", &sshd, &one_service());
    let port = free_port();
    std::fs::write(
        p.dir.join("environments/staging/server.env"),
        format!(
            "SERVER_HOST=127.0.0.1\nSERVER_PORT={port}\nSERVER_USER=root\nSERVER_PATH={}\n",
            p.srv().display()
        ),
    )
    .unwrap();
    let out = p.deploy_any(&[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    assert!(
        stderr.contains("SERVER_PORT") || stderr.contains("SERVER_HOST"),
        "stderr:\n{stderr}"
    );
    assert!(!p.srv().exists());
}

// The server does not know the client's key: exit 3 with a hint about the key.
#[test]
fn refused_key_is_an_outside_failure() {
    let sshd = Sshd::start();
    std::fs::write(sshd.path("authorized_keys"), "").unwrap();
    let p = Project::new("refused", &sshd, &one_service());
    let out = p.deploy_any(&[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    assert!(
        stderr.contains("authorized_keys"),
        "no hint about the key:\n{stderr}"
    );
    assert!(!p.srv().exists());
}

// A server whose Docker socket is not there: exit 3 before anything changes on the server.
#[test]
fn server_without_docker_changes_nothing() {
    let sshd = Sshd::start();
    let p = Project::new("no-docker", &sshd, &one_service());
    let path = p.dir.join("environments/staging/server.env");
    let mut server = std::fs::read_to_string(&path).unwrap();
    server.push_str("SERVER_DOCKER_SOCKET=/run/no-such-docker.sock\n");
    std::fs::write(&path, server).unwrap();
    let out = p.deploy_any(&[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    assert!(stderr.contains("Docker"), "stderr:\n{stderr}");
    assert!(!p.srv().exists(), "the deploy changed the server");
    assert!(p.containers().is_empty(), "{:?}", p.containers());
}

// A deploy killed with SIGKILL cannot close its SSH master itself; with
// `ControlPersist=yes` the master (an authenticated connection forwarding the server's
// Docker socket) then lives forever. It should go away once nothing uses it.
#[test]
fn killed_deploy_leaves_no_ssh_master() {
    let sshd = Sshd::start();
    let p = Project::new("master-leak", &sshd, &one_service());
    p.deploy(&[]);
    let mut child = p
        .stuck_deploy()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the deploy to take its lock", common::LIVE_LIMIT, || {
        p.lock_dir().exists()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let config = sshd.ssh_config().display().to_string();
    common::eventually_ok(
        "the ssh processes of the killed deploy to end",
        Duration::from_secs(90),
        || {
            let left = processes_mentioning(&config);
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    );
}

/// `stack jobs run NAME --on ENV` runs the server's stack over SSH: the job runs on the
/// release `current` there, its exit code is ours, the run is recorded in
/// `SERVER_PATH/jobs`, and `stack jobs --on ENV` lists it. While a deploy holds the lock
/// the run is refused, naming the holder.
#[test]
fn jobs_run_on_a_server_runs_the_servers_stack() {
    let sshd = Sshd::start();
    let body = format!(
        "{}STACK_SERVICES=web,report\nSERVICE_REPORT_IMAGE={BUSYBOX}\n\
         SERVICE_REPORT_COMMAND=sh -c 'echo nightly report; exit 4'\n\
         SERVICE_REPORT_SCHEDULE=@daily\n",
        one_service().replace("STACK_SERVICES=web\n", "")
    );
    let p = Project::new("jobs-on", &sshd, &body);
    p.deploy(&[]);
    // The server's stack: a deploy installs it with the unit, and this server has no
    // systemd, so the test puts it where the unit would run it from.
    let binary = p.srv().join("bin").join("stack");
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    std::fs::copy(assert_cmd::cargo::cargo_bin("stack"), &binary).unwrap();
    let out = p.run(&["jobs", "run", "report", "--on", "staging"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        text(&out.stdout).contains("nightly report"),
        "{}",
        text(&out.stdout)
    );
    let runs = std::fs::read_to_string(p.srv().join("jobs").join("report.runs")).unwrap();
    assert!(runs.contains("\"exit_code\":4"), "{runs}");
    let out = p.ok(&["--json", "jobs", "--on", "staging"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["jobs"][0]["last"]["exit_code"], 4, "{list}");
    // A held deploy lock: refused, nothing run.
    std::fs::create_dir_all(p.srv().join("lock")).unwrap();
    std::fs::write(p.srv().join("lock").join("info"), "owner=ci release=r2\n").unwrap();
    let out = p.run(&["jobs", "run", "report", "--on", "staging"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("a deploy holds the lock (owner=ci release=r2)"),
        "{stderr}"
    );
    std::fs::remove_dir_all(p.srv().join("lock")).unwrap();
}

/// What the systemd unit runs: `stack supervise --bundle SERVER_PATH/current` brings the
/// release up (nothing to change after a deploy) and restarts a container whose health
/// check turns unhealthy, which Docker's restart policy alone would not.
#[test]
fn supervise_restarts_an_unhealthy_container() {
    let sshd = Sshd::start();
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web\n\
         SERVICE_WEB_IMAGE={BUSYBOX}\n\
         SERVICE_WEB_COMMAND=sh -c 'rm -f /tmp/broken; exec httpd -f -p 8080 -h /var/www'\n\
         SERVICE_WEB_HEALTH_CMD=test ! -e /tmp/broken\n\
         SERVICE_WEB_HEALTH_INTERVAL=1s\nSERVICE_WEB_HEALTH_RETRIES=1\n"
    );
    let p = Project::new("supervise", &sshd, &body);
    p.deploy(&[]);
    let bundle = p.srv().join("current");
    let bundle = bundle.to_str().unwrap();
    let once = p.ok(&["supervise", "--bundle", bundle, "--once"]);
    assert!(text(&once.stderr).contains("up"), "{}", text(&once.stderr));
    let web = p.id_of("web");
    let started = inspect(&web, "{{.State.StartedAt}}");

    let mut supervisor = Watched::spawn(p.command(&["supervise", "--bundle", bundle]));
    supervisor.wait_line("watching health", Duration::from_secs(60));
    let broke = docker(&["exec", &web, "touch", "/tmp/broken"]);
    assert!(broke.status.success(), "{}", text(&broke.stderr));
    let restarted = within(common::LIVE_LIMIT, || {
        inspect(&web, "{{.State.StartedAt}}") != started
    });
    kill(supervisor.child.id());
    let out = supervisor.finish(common::LIVE_LIMIT);
    assert!(
        restarted,
        "supervise did not restart the unhealthy container; its output:\n{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("unhealthy"),
        "supervise should say why it restarted:\n{}",
        text(&out.stderr)
    );
}

/// `STACK_TARGET=swarm`: the engine becomes a single-node swarm for this test (and leaves
/// it again if the test made it one). Deploy creates the stack's services, a change
/// updates them start-first, and a version that never turns healthy is rolled back.
#[test]
fn swarm_target_deploys_updates_and_rolls_back() {
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    let was_swarm = text(&state.stdout).trim() == "active";
    struct Leave(bool);
    impl Drop for Leave {
        fn drop(&mut self) {
            if self.0 {
                let _ = docker(&["swarm", "leave", "--force"]);
                // `swarm init` made this bridge and leaving keeps it.
                let _ = docker(&["network", "rm", "docker_gwbridge"]);
            }
        }
    }
    if !was_swarm {
        let init = docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        assert!(
            init.status.success(),
            "docker swarm init: {}",
            text(&init.stderr)
        );
    }
    let _leave = Leave(!was_swarm);
    let sshd = Sshd::start();
    let body = format!(
        "STACK_TARGET=swarm\nSTACK_PROXY=none\nSTACK_SERVICES=web\nSTACK_HEALTH_TIMEOUT=60s\n{}\
         SERVICE_WEB_REPLICAS=2\nSERVICE_WEB_RELEASE=sh -c 'echo released $$V'\n",
        httpd_service("web")
    );
    let p = Project::new("swarm", &sshd, &body);
    let service = format!("{}_web", p.name);
    struct RemoveService(String);
    impl Drop for RemoveService {
        fn drop(&mut self) {
            let _ = docker(&["service", "rm", &self.0]);
        }
    }
    let _cleanup = RemoveService(service.clone());

    p.deploy(&[]);
    let replicas = |service: &str| {
        text(
            &docker(&[
                "service",
                "ls",
                "--filter",
                &format!("name={service}"),
                "--format",
                "{{.Replicas}}",
            ])
            .stdout,
        )
        .trim()
        .to_string()
    };
    assert_eq!(replicas(&service), "2/2");

    // The release command runs as a one-off container on the overlay network, with the
    // new configuration, before the service is updated.
    let out = p.deploy(&["--set", "SERVICE_WEB_ENV_V=2"]);
    assert!(
        text(&out.stderr).contains("web release | released 2"),
        "{}",
        all_output(&out)
    );
    let out = p.deploy(&["--set", "SERVICE_WEB_ENV_V=2"]);
    assert!(
        !text(&out.stderr).contains("release |"),
        "{}",
        all_output(&out)
    );
    let env = inspect(&service, "{{json .Spec.TaskTemplate.ContainerSpec.Env}}");
    assert!(env.contains("V=2"), "{env}");
    let good = p.current_release().unwrap();

    let out = p.deploy_any(&[
        "--set",
        "SERVICE_WEB_ENV_V=3",
        "--set",
        "SERVICE_WEB_HEALTH=/nope",
    ]);
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("rolled"), "{all}");
    assert_eq!(p.current_release().as_deref(), Some(good.as_str()));
    let env = inspect(&service, "{{json .Spec.TaskTemplate.ContainerSpec.Env}}");
    assert!(
        env.contains("V=2"),
        "the service must be back on V=2: {env}"
    );
    assert_eq!(replicas(&service), "2/2");
}

/// A second Docker engine on its own socket, data root and exec root: a server whose
/// images are not the ones `stack` builds with, as on a real VM. Its default bridge is
/// one of its own (with `--bridge none` dockerd deletes the host's `docker0`), and no
/// iptables (the host's engine owns those); the tests look inside containers with `exec`.
struct SecondEngine {
    dir: PathBuf,
    exec_root: PathBuf,
    bridge: String,
    child: Child,
}

impl SecondEngine {
    fn start(name: &str) -> SecondEngine {
        require_prereqs();
        let dir = PathBuf::from(format!(
            "/var/lib/stack-test-engines/{name}-{}",
            std::process::id()
        ));
        let exec_root = PathBuf::from(format!("/run/stk-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let bridge = format!(
            "stk{}{}",
            &name[..name.len().min(4)],
            std::process::id() % 100_000
        );
        // Its bridge's subnet and its address pool, apart from every other second
        // engine of a concurrent test (`pid % 200` and `% 40` could meet).
        let slot = common::reserve("second-engine", 0..40, |_| true);
        let subnet = 20 + slot;
        run_ok(StdCommand::new("ip").args(["link", "add", "name", &bridge, "type", "bridge"]));
        run_ok(StdCommand::new("ip").args([
            "addr",
            "add",
            &format!("10.213.{subnet}.1/24"),
            "dev",
            &bridge,
        ]));
        run_ok(StdCommand::new("ip").args(["link", "set", &bridge, "up"]));
        let child = StdCommand::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args(["--bridge", &bridge, "--iptables=false", "--ip6tables=false"])
            // Its own address pool: project networks of this engine never take the
            // ranges the host's engine hands out.
            .args([
                "--default-address-pool",
                &format!("base=10.{}.0.0/16,size=24", 214 + slot),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a second dockerd");
        let engine = SecondEngine {
            dir,
            exec_root,
            bridge,
            child,
        };
        let answers = within(Duration::from_secs(60), || {
            engine.docker(&["info"]).status.success()
        });
        assert!(
            answers,
            "the second dockerd did not answer within 60 s:\n{}",
            std::fs::read_to_string(engine.dir.join("dockerd.log")).unwrap_or_default()
        );
        engine
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    fn docker(&self, args: &[&str]) -> Output {
        StdCommand::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {}: {}",
            args.join(" "),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Copy an image of the host's engine into this one.
    fn load(&self, image: &str) {
        let save = StdCommand::new("docker")
            .args(["save", image])
            .output()
            .unwrap();
        assert!(save.status.success(), "{}", text(&save.stderr));
        let mut load = StdCommand::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(["load", "-q"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut load.stdin.take().unwrap(), &save.stdout).unwrap();
        assert!(load.wait().unwrap().success(), "docker load of {image}");
    }

    /// What the running container of `project`'s `service` serves at `/www/version`.
    fn version(&self, project: &str, service: &str) -> String {
        let filter = format!("label=com.docker.compose.service={service}");
        let project_filter = format!("label=com.docker.compose.project={project}");
        let ids = self.ok(&["ps", "-q", "--filter", &filter, "--filter", &project_filter]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        assert_eq!(ids.len(), 1, "want one running `{service}`: {ids:?}");
        self.ok(&["exec", ids[0], "cat", "/www/version"])
            .trim()
            .to_string()
    }

    fn image_exists(&self, image: &str) -> bool {
        self.docker(&["image", "inspect", image]).status.success()
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        // The bridges of its project networks outlive a killed daemon; note them first.
        let networks = StdCommand::new("docker")
            .arg("--host")
            .arg(format!("unix://{}", self.socket().display()))
            .args([
                "network",
                "ls",
                "--quiet",
                "--no-trunc",
                "--filter",
                "driver=bridge",
            ])
            .output()
            .map(|o| text(&o.stdout))
            .unwrap_or_default();
        let bridges: Vec<String> = networks
            .split_whitespace()
            .map(|id| format!("br-{}", &id[..12.min(id.len())]))
            .collect();
        let _ = StdCommand::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = StdCommand::new("rm").arg("-rf").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.exec_root);
        for bridge in bridges.iter().chain(std::iter::once(&self.bridge)) {
            let _ = StdCommand::new("ip")
                .args(["link", "delete", bridge])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// A project deployed to `engine`, whose `web` serves the text of `app/version`.
fn pinned_project(test: &str, sshd: &Sshd, engine: &SecondEngine, body: &str) -> Project {
    let p = Project::new(test, sshd, body);
    let server = p.dir.join("environments/staging/server.env");
    let mut text = std::fs::read_to_string(&server).unwrap();
    text.push_str(&format!(
        "SERVER_DOCKER_SOCKET={}\n",
        engine.socket().display()
    ));
    std::fs::write(&server, text).unwrap();
    p
}

const PINNED_WEB: &str = "STACK_PROXY=none\nSTACK_SERVICES=web\nSTACK_HEALTH_TIMEOUT=20s\n\
    SERVICE_WEB_PORT=8080\nSERVICE_WEB_STRATEGY=recreate\n\
    SERVICE_WEB_HEALTH_CMD=wget -q -O /dev/null http://127.0.0.1:8080/version\n\
    SERVICE_WEB_HEALTH_INTERVAL=1s\n";

fn write_app(p: &Project, version: &str) {
    let app = p.dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        format!(
            "FROM {BUSYBOX}\nCOPY version /www/version\n\
             CMD [\"sh\", \"-c\", \"trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(app.join("version"), format!("{version}\n")).unwrap();
}

// A `BUILD` service whose code changes between releases, on a server with its own
// engine: each release runs its own image, an unhealthy `recreate` release rolls back to
// the previous code, and a rollback restores the code, not only the configuration.
#[test]
fn rollback_restores_the_code_of_a_build_service() {
    let sshd = Sshd::start();
    let engine = SecondEngine::start("build");
    let body = format!("{PINNED_WEB}SERVICE_WEB_BUILD=./app\n");
    let p = pinned_project("pin-build", &sshd, &engine, &body);

    write_app(&p, "v1");
    p.deploy(&[]);
    let v1 = p.current_release().unwrap();
    assert_eq!(engine.version(&p.name, "web"), "v1");

    write_app(&p, "v2");
    p.deploy(&[]);
    let v2 = p.current_release().unwrap();
    assert_eq!(engine.version(&p.name, "web"), "v2");
    let digest = |id: &str| id.rsplit('-').next().unwrap().to_string();
    assert_ne!(digest(&v1), digest(&v2), "different code, same digest");

    // v3 never turns healthy; `recreate` has already removed v2's container.
    write_app(&p, "v3");
    let out = p.deploy_any(&["--set", "SERVICE_WEB_HEALTH_CMD=test -e /www/never"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert_eq!(p.current_release().as_deref(), Some(v2.as_str()));
    assert_eq!(
        engine.version(&p.name, "web"),
        "v2",
        "the rollback ran v3's code"
    );

    p.ok(&["rollback", "staging", &v1]);
    assert_eq!(
        engine.version(&p.name, "web"),
        "v1",
        "the rollback kept v2's code"
    );

    let releases = text(&p.ok(&["releases", "staging"]).stdout);
    assert!(
        releases.contains("web"),
        "no images in `releases`:\n{releases}"
    );
}

// A registry image whose tag moves between deploys: the release keeps the image it was
// deployed with. Pruning removes the images of pruned releases only, and a rollback to a
// release whose image is gone is refused before anything stops.
#[test]
fn moved_tags_and_pruned_releases() {
    let sshd = Sshd::start();
    let engine = SecondEngine::start("tags");
    let body =
        format!("{PINNED_WEB}STACK_KEEP_RELEASES=2\nSERVICE_WEB_IMAGE=registry.test/app:1\n");
    let p = pinned_project("pin-tags", &sshd, &engine, &body);
    // Two versions of the "registry" image, built here and loaded into the server.
    for version in ["v1", "v2"] {
        write_app(&p, version);
        let tag = format!("stack-test/{}:{version}", p.name);
        run_ok(
            StdCommand::new("docker")
                .args(["build", "-q", "-t", &tag])
                .arg(p.dir.join("app")),
        );
        engine.load(&tag);
        let _ = docker(&["rmi", &tag]);
    }
    let image = |version: &str| format!("stack-test/{}:{version}", p.name);
    let id_a = engine
        .ok(&["image", "inspect", "-f", "{{.Id}}", &image("v1")])
        .trim()
        .to_string();
    engine.ok(&["tag", &image("v1"), "registry.test/app:1"]);
    engine.ok(&["rmi", &image("v1")]);
    p.deploy(&[]);
    let first = p.current_release().unwrap();
    assert_eq!(engine.version(&p.name, "web"), "v1");

    // The tag moves (a re-pushed `app:1`).
    engine.ok(&["tag", &image("v2"), "registry.test/app:1"]);
    p.deploy(&[]);
    let second = p.current_release().unwrap();
    assert_ne!(first, second);
    assert_eq!(engine.version(&p.name, "web"), "v2");

    p.ok(&["rollback", "staging", &first]);
    assert_eq!(
        engine.version(&p.name, "web"),
        "v1",
        "rollback ran the moved tag"
    );

    // A third release prunes the first (two kept): its image goes, the kept ones stay.
    p.deploy(&["--set", "SERVICE_WEB_ENV_N=3"]);
    let third = p.current_release().unwrap();
    assert_eq!(p.release_dirs(), vec![second.clone(), third.clone()]);
    assert!(
        !engine.image_exists(&id_a),
        "the pruned release's image is still there"
    );
    for kept in [&second, &third] {
        let tag = format!("{}-web:{kept}", p.name);
        assert!(
            engine.image_exists(&tag),
            "kept release image `{tag}` is gone"
        );
    }

    // The second release's image tag removed by hand: its rollback is refused, nothing stops.
    engine.ok(&["rmi", &format!("{}-web:{second}", p.name)]);
    let before = engine.ok(&["ps", "-q"]);
    let out = p.run(&["rollback", "staging", &second]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        text(&out.stderr).contains("is no longer on the engine"),
        "{}",
        all_output(&out)
    );
    assert_eq!(
        engine.ok(&["ps", "-q"]),
        before,
        "a refused rollback touched containers"
    );
    assert_eq!(p.current_release().as_deref(), Some(third.as_str()));
    let releases = text(&p.ok(&["releases", "staging"]).stdout);
    assert!(releases.contains("cannot be rolled back to"), "{releases}");
}

/// Issue #12 item 2: a `BUILD` image reaches the server through a temporary registry on
/// the server's loopback: the second release sends only its new layer, the big base layer
/// stays on the server, and the registry is gone after the deploy. `archive` still works.
#[test]
fn only_missing_layers_cross_to_the_server() {
    let sshd = Sshd::start();
    let engine = SecondEngine::start("layers");
    engine.load("stack-test/registry:2");
    let body = format!(
        "{PINNED_WEB}SERVICE_WEB_BUILD=./app\nSTACK_REGISTRY_IMAGE=stack-test/registry:2\n"
    );
    let p = pinned_project("layers", &sshd, &engine, &body);
    // A 4 MB layer of random bytes under a one-line change.
    let app = p.dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    let noise = common::noise(4 << 20, 0x2545_f491_4f6c_dd1d);
    std::fs::write(app.join("noise.bin"), &noise).unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        format!(
            "FROM {BUSYBOX}\nCOPY noise.bin /noise.bin\nCOPY version /www/version\n\
             CMD [\"sh\", \"-c\", \"trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait\"]\n"
        ),
    )
    .unwrap();
    let sent = |out: &Output| -> serde_json::Value {
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("not JSON: {}", all_output(out)));
        json["images_sent"].clone()
    };
    std::fs::write(app.join("version"), "v1\n").unwrap();
    let first = p.deploy(&["--json"]);
    assert_eq!(engine.version(&p.name, "web"), "v1");
    let first = sent(&first);
    assert!(first["bytes"].as_u64().unwrap() > 4 << 20, "{first}");

    std::fs::write(app.join("version"), "v2\n").unwrap();
    let second_run = p.deploy(&["--json"]);
    assert_eq!(engine.version(&p.name, "web"), "v2");
    let second = sent(&second_run);
    let bytes = second["bytes"].as_u64().unwrap();
    // The deploy's own lines say why the whole image went (a registry that did not
    // answer in time, a port taken) when it did.
    assert!(
        bytes < 64 * 1024,
        "the second release sent {bytes} bytes: {second}\n{}",
        all_output(&second_run)
    );
    assert!(second["layers_skipped"].as_u64().unwrap() >= 2, "{second}");
    // The temporary registry went with the deploy (it removes itself as its stdin
    // closes, a moment after the deploy returned).
    common::eventually_ok(
        "the temporary registry to remove itself",
        common::LIVE_LIMIT,
        || {
            let registries = engine.ok(&["ps", "-a", "--format", "{{.Names}}"]);
            if registries.contains("stack-registry") {
                Err(registries)
            } else {
                Ok(())
            }
        },
    );

    // A program holding the registry's port on the server's loopback (the server here
    // is this machine) answers without the deploy's token: the registry moves to the
    // next port, and still only the new layer crosses.
    let hash = p
        .name
        .bytes()
        .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
    let port = 30_000 + (hash % 690) as u16 * 4;
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    // And one that holds the next port and never answers (as the previous deploy's
    // registry does while it goes away): the registry started there cannot listen and
    // ends, and the deploy moves on to the port after it at once. (It used to wait for
    // an answer until its deadline and then send the whole image.)
    let silent = std::net::TcpListener::bind(("127.0.0.1", port + 1)).unwrap();
    let hung_up = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hung_up_counter = hung_up.clone();
    std::thread::spawn(move || {
        for stream in silent.incoming() {
            drop(stream);
            hung_up_counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    std::thread::spawn(move || {
        for stream in squatter.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 1024];
            let _ = std::io::Read::read(&mut stream, &mut buffer);
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            );
        }
    });
    std::fs::write(app.join("version"), "v2b\n").unwrap();
    let third_run = p.deploy(&["--json"]);
    assert_eq!(engine.version(&p.name, "web"), "v2b");
    let moved = sent(&third_run);
    assert!(
        moved["bytes"].as_u64().unwrap() < 64 * 1024,
        "{moved}\n{}",
        all_output(&third_run)
    );
    assert!(
        asked.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the deploy never asked the program on port {port}"
    );
    assert!(
        hung_up.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the deploy never asked the silent program on port {}",
        port + 1
    );

    // The whole archive, when asked.
    std::fs::write(app.join("version"), "v3\n").unwrap();
    let third = p.deploy(&["--json", "--set", "STACK_IMAGE_TRANSFER=archive"]);
    assert_eq!(engine.version(&p.name, "web"), "v3");
    let third = sent(&third);
    assert!(third["bytes"].as_u64().unwrap() > 4 << 20, "{third}");
}

/// Issue #12 faults: a transfer cut halfway (SIGKILL, then Ctrl-C) leaves no image under
/// the release's tag on the server, no temporary registry and no lock; the next deploy
/// completes and serves.
#[test]
fn a_transfer_cut_halfway_leaves_no_tag_no_registry_and_the_next_deploy_completes() {
    let sshd = Sshd::start();
    let engine = SecondEngine::start("cut");
    engine.load("stack-test/registry:2");
    let body = format!(
        "{PINNED_WEB}SERVICE_WEB_BUILD=./app\nSTACK_REGISTRY_IMAGE=stack-test/registry:2\n"
    );
    let p = pinned_project("cut", &sshd, &engine, &body);
    let app = p.dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    // 96 MB of noise: the push takes a while, so the cut lands in the middle of it.
    let noise = common::noise(
        96 << 20,
        0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()),
    );
    std::fs::write(app.join("noise.bin"), &noise).unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        format!(
            "FROM {BUSYBOX}\nCOPY noise.bin /noise.bin\nCOPY version /www/version\n\
             CMD [\"sh\", \"-c\", \"trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(app.join("version"), "v1\n").unwrap();
    let release_tags = || {
        engine
            .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .lines()
            .filter(|l| l.starts_with(&format!("{}-web:", p.name)))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    for signal in ["-KILL", "-INT"] {
        let mut deploy = Watched::spawn(p.command(&["deploy", "staging", "--allow-dirty"]));
        deploy.wait_line("web: sending layer", Duration::from_secs(120));
        let pid = deploy.child.id();
        run_ok(StdCommand::new("kill").args([signal, &pid.to_string()]));
        let _ = deploy.finish(Duration::from_secs(60));
        assert!(
            within(common::LIVE_LIMIT, || engine
                .ok(&["ps", "-aq", "--filter", "label=dev.stack.registry-of"])
                .trim()
                .is_empty()),
            "after {signal}, a temporary registry is still on the server"
        );
        assert!(
            release_tags().is_empty(),
            "after {signal}, the server has a release tag: {:?}",
            release_tags()
        );
        assert!(
            within(common::LIVE_LIMIT, || !p.lock_dir().exists()),
            "after {signal}, the lock is still held"
        );
        assert!(
            p.current_release().is_none(),
            "after {signal}, a release went live"
        );
    }
    p.deploy(&[]);
    assert_eq!(engine.version(&p.name, "web"), "v1");
    assert_eq!(release_tags().len(), 1, "{:?}", release_tags());
}

/// `stack backup --on ENV` runs the backup steps on the server's engine over the deploy
/// connection, against the current release (its model, secrets and pinned images).
#[test]
fn backup_runs_on_the_server_over_the_deploy_connection() {
    common::require_engine(&[POSTGRES]);
    let sshd = Sshd::start();
    let p = Project::new(
        "backup",
        &sshd,
        &format!(
            "STACK_PROXY=none\nPOSTGRES_ENABLED=true\nSERVICE_POSTGRES_IMAGE={POSTGRES}\n\
             POSTGRES_USER=app\nPOSTGRES_DB=app\nBACKUP_ENABLED=true\n\
             BACKUP_SCHEDULE=0 0 31 2 *\nBACKUP_VERIFY_SCHEDULE=0 0 31 2 *\n"
        ),
    );
    // Nothing deployed yet: said plainly.
    p.ok(&["secrets", "generate", "staging"]);
    let out = p.run(&["backup", "list", "--on", "staging"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(all_output(&out).contains("stack deploy staging"));
    p.deploy(&[]);
    let container = format!("{}-postgres-1", p.name);
    common::engine::wait_for_postgres(&container);
    let psql = |sql: &str| common::engine::psql(&container, sql);
    assert!(psql("CREATE TABLE t AS SELECT generate_series(1, 3) AS n")
        .status
        .success());
    let out = p.ok(&["backup", "run", "--on", "staging"]);
    let said = all_output(&out);
    assert!(said.contains("written on `127.0.0.1`"), "{said}");
    // `./backups` is under SERVER_PATH on the server.
    let dumps: Vec<String> = std::fs::read_dir(p.srv().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dump"))
        .collect();
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    let out = p.ok(&["--json", "backup", "list", "--on", "staging"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["dumps"][0]["name"], dumps[0].as_str(), "{list}");
    p.ok(&["backup", "verify", &dumps[0], "--on", "staging"]);
    let out = p.ok(&["--json", "backup", "list", "--on", "staging"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["dumps"][0]["verified"], "ok", "{list}");

    // `restore --on`: the table dropped after the dump is back, and a safety dump of the
    // state before the restore was taken on the server.
    assert!(psql("DROP TABLE t").status.success());
    let out = p.ok(&["backup", "restore", &dumps[0], "--on", "staging", "--yes"]);
    let said = all_output(&out);
    let count = psql("SELECT count(*) FROM t");
    assert_eq!(text(&count.stdout).trim(), "3", "after the restore: {said}");
    let after: Vec<String> = std::fs::read_dir(p.srv().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dump"))
        .collect();
    assert_eq!(
        after.len(),
        2,
        "no safety dump beside the restored one: {after:?}"
    );
}

/// `web` (busybox httpd, so "the old version still answers" can be asked) with a volume
/// and a release command that appends `VERSION` to `/data/runs` when it got the secret
/// `APP_KEY`; the real migration is [`migrated_service`].
fn released_service() -> String {
    format!(
        "{}SERVICE_WEB_VOLUMES=data:/data\nSERVICE_WEB_ENV_VERSION=1\n\
         SERVICE_WEB_RELEASE=sh -c 'echo migrating $$VERSION; [ -n \"$$APP_KEY\" ] && echo $$VERSION >> /data/runs'\n",
        two_services()
    )
}

/// `web` in the Postgres image, whose release command is a real migration: it creates
/// the table `runs` if needed and inserts `VERSION`, so a second run of one version would
/// show as a second row.
fn migrated_service() -> String {
    format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web\n\
         POSTGRES_ENABLED=true\nSERVICE_POSTGRES_IMAGE={POSTGRES}\n\
         POSTGRES_USER=app\nPOSTGRES_DB=app\n\
         SERVICE_WEB_IMAGE={POSTGRES}\n\
         SERVICE_WEB_COMMAND=sh -c 'trap \"exit 0\" TERM; sleep infinity & wait'\n\
         SERVICE_WEB_DEPENDS_ON=postgres\n\
         SERVICE_WEB_ENV_VERSION=1\n\
         SERVICE_WEB_ENV_PGPASSWORD=${{POSTGRES_PASSWORD}}\n\
         SERVICE_WEB_RELEASE=sh -c 'echo migrating $$VERSION; psql -X -q -v ON_ERROR_STOP=1 -h postgres -U app -d app -c \"CREATE TABLE IF NOT EXISTS runs (version int); INSERT INTO runs VALUES ($$VERSION)\"'\n"
    )
}

/// The versions the migration recorded, in order.
fn migrations(p: &Project) -> Vec<String> {
    let out = common::engine::psql(
        &p.container("postgres"),
        "SELECT version FROM runs ORDER BY version",
    );
    text(&out.stdout).lines().map(String::from).collect()
}

// Two deploys of a new version at once: the lock orders them, and the release command (a
// migration of a real Postgres) runs once (the second deploy finds the version's
// containers and has nothing to do).
#[test]
fn release_command_runs_once_across_two_concurrent_deploys() {
    common::require_engine(&[POSTGRES]);
    let sshd = Sshd::start();
    let p = Project::new("release-once", &sshd, &migrated_service());
    p.ok(&["secrets", "generate", "staging"]);
    let out = p.deploy(&[]);
    assert!(
        text(&out.stderr).contains("web release | migrating 1"),
        "{}",
        all_output(&out)
    );
    assert_eq!(migrations(&p), ["1"]);
    let out = p.ok(&[
        "deploy",
        "staging",
        "--allow-dirty",
        "--dry-run",
        "--set",
        "SERVICE_WEB_ENV_VERSION=2",
    ]);
    assert!(
        text(&out.stdout).contains("web: run release command"),
        "{}",
        all_output(&out)
    );
    let spawn = || {
        p.command(&[
            "deploy",
            "staging",
            "--allow-dirty",
            "--lock-wait",
            "150s",
            "--set",
            "SERVICE_WEB_ENV_VERSION=2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (
        wait_output(a, Duration::from_secs(180)),
        wait_output(b, Duration::from_secs(180)),
    );
    for out in [&a, &b] {
        assert!(out.status.success(), "{}", all_output(out));
    }
    let ran = [&a, &b]
        .iter()
        .filter(|o| text(&o.stderr).contains("web release | migrating 2"))
        .count();
    assert_eq!(ran, 1, "{}\n---\n{}", all_output(&a), all_output(&b));
    assert_eq!(migrations(&p), ["1", "2"]);
    assert!(!p.lock_dir().exists(), "a lock was left behind");
    let oneoffs: Vec<_> = p
        .containers()
        .into_iter()
        .filter(|(n, _)| n.contains("-web-release-"))
        .collect();
    assert!(oneoffs.is_empty(), "{oneoffs:?}");
}

// A failing release command: nothing replaced, `current` not switched (the new release
// directory is removed), the audit log says so, exit 1 with the command's last lines.
#[test]
fn failing_release_command_leaves_current_and_the_old_version() {
    let sshd = Sshd::start();
    let p = Project::new("release-fail", &sshd, &released_service());
    p.deploy(&[]);
    let before = p.current_release().expect("current");
    let web = p.id_of("web");
    let out = p.deploy_any(&[
        "--set",
        "SERVICE_WEB_ENV_VERSION=2",
        "--set",
        "SERVICE_WEB_RELEASE=sh -c 'echo cannot migrate $$VERSION >&2; exit 4'",
    ]);
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("exited 4") && all.contains("  cannot migrate 2"),
        "{all}"
    );
    assert!(!all.contains("rolling back"), "{all}");
    assert_eq!(p.current_release().as_deref(), Some(before.as_str()));
    assert_eq!(p.release_dirs(), std::slice::from_ref(&before));
    assert_eq!(p.id_of("web"), web, "web was replaced");
    assert!(answers(&web), "the old web does not answer");
    assert!(!p.lock_dir().exists(), "a lock was left behind");
    let audit = p.audit_log();
    assert!(
        audit
            .lines()
            .last()
            .is_some_and(|l| l.contains("\tdeploy\t") && l.contains("failed")),
        "{audit}"
    );
    assert!(!p
        .containers()
        .iter()
        .any(|(n, _)| n.contains("-web-release-")));
}

// Hooks run on this machine with their variables; a failing pre-deploy hook changes
// nothing; a failing post-deploy hook is reported and the release stays; both audited.
#[test]
fn hooks_see_their_variables_and_a_failing_pre_hook_changes_nothing() {
    let sshd = Sshd::start();
    let body = format!(
        "{}STACK_HOOK_PRE_BUILD=echo built > pre-build.out\n\
         STACK_HOOK_PRE_DEPLOY=echo \"$$STACK_ENV|$$STACK_RELEASE|$$STACK_PERFORMER\" > pre-deploy.out\n\
         STACK_HOOK_POST_DEPLOY=echo \"$$STACK_RELEASE\" > post-deploy.out; echo post says no >&2; exit 5\n",
        one_service()
    );
    let p = Project::new("hooks", &sshd, &body);
    let out = p.deploy(&[]);
    let all = all_output(&out);
    let id = p.current_release().expect("current");
    let read = |name: &str| std::fs::read_to_string(p.dir.join(name)).unwrap_or_default();
    assert_eq!(read("pre-build.out").trim(), "built");
    let pre = read("pre-deploy.out");
    let fields: Vec<&str> = pre.trim().split('|').collect();
    assert_eq!(fields.len(), 3, "{pre}");
    assert_eq!(fields[0], "staging");
    assert_eq!(fields[1], id);
    assert!(!fields[2].is_empty() && fields[2] != "unknown", "{pre}");
    assert_eq!(read("post-deploy.out").trim(), id);
    assert!(
        all.contains("post says no") && all.contains("exited 5"),
        "{all}"
    );
    let audit = p.audit_log();
    assert!(
        audit.contains("\thook\t") && audit.contains("pre-deploy ok"),
        "{audit}"
    );
    assert!(audit.contains("post-deploy failed"), "{audit}");

    let web = p.id_of("web");
    let out = p.deploy_any(&[
        "--set",
        "SERVICE_WEB_ENV_V=2",
        "--set",
        "STACK_HOOK_PRE_DEPLOY=echo checks failed >&2; exit 3",
    ]);
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("checks failed") && all.contains("pre-deploy hook"),
        "{all}"
    );
    assert_eq!(p.current_release().as_deref(), Some(id.as_str()));
    assert_eq!(p.release_dirs(), std::slice::from_ref(&id));
    assert_eq!(p.id_of("web"), web);
    assert!(!p.lock_dir().exists());
    assert!(
        p.audit_log().contains("pre-deploy failed"),
        "{}",
        p.audit_log()
    );
}

/// Every file under `dir` whose bytes contain `needle`, relative to `dir`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap().flatten() {
                stack.push(entry.path());
            }
        } else if meta.is_file() {
            let bytes = std::fs::read(&path).unwrap_or_default();
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

// `STACK_SECRETS_COMMAND` (a plain script here: Debian bookworm does not package sops):
// its values reach the container and no file but the release's 0600 `.env`; a failing
// command or a malformed line is exit 2 naming the command, never a value.
#[test]
fn secrets_from_a_command_reach_the_container_and_no_other_file() {
    let sshd = Sshd::start();
    let p = Project::new("secrets-command", &sshd, &two_services());
    std::fs::remove_file(p.dir.join("environments/staging/secrets.env")).unwrap();
    // The script holds the value reversed, so the value itself is in no project file.
    let value = "Zq8vN3kLp2Wx7RtY5mHc9JdF4gBs6AeUo1Ti";
    let reversed: String = value.chars().rev().collect();
    std::fs::write(
        p.dir.join("get-secrets.sh"),
        format!("echo '# from the vault'\nprintf 'APP_KEY=%s\\n' \"$(echo {reversed} | rev)\"\n"),
    )
    .unwrap();
    std::fs::write(
        p.dir.join("environments/staging/stack.env"),
        "STACK_SECRETS_COMMAND=sh ./get-secrets.sh\n",
    )
    .unwrap();
    let out = p.deploy(&[]);
    assert!(!all_output(&out).contains(value), "{}", all_output(&out));
    let env = inspect(&p.id_of("web"), "{{json .Config.Env}}");
    assert!(env.contains(&format!("APP_KEY={value}")), "{env}");
    let id = p.current_release().unwrap();
    assert_eq!(
        files_containing(&p.srv(), value),
        [format!("releases/{id}/.env")]
    );
    assert_eq!(
        mode(&p.srv().join("releases").join(&id).join(".env")),
        0o600
    );
    let local: Vec<String> = files_containing(&p.dir, value)
        .into_iter()
        .filter(|f| !f.starts_with("srv/"))
        .collect();
    assert!(local.is_empty(), "the value is in local files: {local:?}");
    let out = p.ok(&["secrets", "check", "staging"]);
    assert!(!all_output(&out).contains(value));

    for (command, wanted) in [
        (
            "sh -c 'echo vault sealed >&2; exit 7'",
            "exited 7; it said: vault sealed",
        ),
        (
            "printf 'APP_KEY=ok\\n'; echo enil-2retnuh | rev",
            "malformed line 2",
        ),
    ] {
        let out = p.run(&[
            "deploy",
            "staging",
            "--allow-dirty",
            "--set",
            &format!("STACK_SECRETS_COMMAND={command}"),
        ]);
        let all = all_output(&out);
        assert_eq!(out.status.code(), Some(2), "{all}");
        assert!(
            all.contains("STACK_SECRETS_COMMAND") && all.contains(wanted),
            "{all}"
        );
        assert!(!all.contains("hunter2"), "{all}");
        assert_eq!(p.current_release().as_deref(), Some(id.as_str()));
    }
}

// `--on ENV`: through the deploy connection, with the release `current` there: `exec`
// returns the remote exit code, `run` sees the release's secrets and leaves no container,
// `logs -f` follows a remote container until SIGINT.
#[test]
fn exec_run_and_logs_on_the_server() {
    let sshd = Sshd::start();
    let p = Project::new("on-server", &sshd, &two_services());
    p.deploy(&[]);
    let out = p.run(&["exec", "web", "--on", "staging", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", all_output(&out));
    let out = p.run(&[
        "run",
        "web",
        "--on",
        "staging",
        "--",
        "sh",
        "-c",
        "test -n \"$APP_KEY\" && echo has-key",
    ]);
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        text(&out.stdout).contains("has-key"),
        "{}",
        all_output(&out)
    );
    assert!(
        !p.containers().iter().any(|(n, _)| n.contains("-web-run-")),
        "{:?}",
        p.containers()
    );

    // Without a TTY, Ctrl-C (SIGINT to stack) ends the remote command itself: its trap
    // runs and its exit code comes back.
    let mut exec = Watched::spawn(p.command(&[
        "exec",
        "web",
        "--on",
        "staging",
        "--",
        "sh",
        "-c",
        "trap 'echo got-int >&2; exit 5' INT; echo ready >&2; while true; do sleep 0.2; done",
    ]));
    exec.wait_line("ready", common::LIVE_LIMIT);
    let _ = StdCommand::new("kill")
        .args(["-INT", &exec.child.id().to_string()])
        .status();
    let out = exec.finish(common::LIVE_LIMIT);
    assert_eq!(out.status.code(), Some(5), "{}", all_output(&out));
    assert!(
        text(&out.stderr).contains("got-int"),
        "{}",
        all_output(&out)
    );
    assert!(
        !all_output(&out).contains("stack-exec-pid"),
        "{}",
        all_output(&out)
    );

    let web = p.id_of("web");
    let mut follow =
        Watched::spawn(p.command(&["logs", "web", "-f", "--on", "staging", "--tail", "0"]));
    // Lines written after `logs -f` started come through the connection: a line is
    // written until one comes (`--tail 0`: the lines written before the follow reached
    // the server never come, and on a loaded machine that can take seconds), then a
    // second, later one, while the follow is still running.
    for round in ["first", "second"] {
        let marker = format!("marker-{round}-{}", std::process::id());
        eventually_ok_or(
            &format!("the {round} line through `logs -f`"),
            common::LIVE_LIMIT,
            || {
                assert!(
                    follow.child.try_wait().unwrap().is_none(),
                    "logs -f ended early: {}",
                    follow.stdout_so_far()
                );
                let _ = docker(&[
                    "exec",
                    &web,
                    "sh",
                    "-c",
                    &format!("echo {marker} > /proc/1/fd/1"),
                ]);
                let seen = follow.stdout_so_far();
                seen.contains(&marker).then_some(()).ok_or(seen)
            },
            || {
                format!(
                    "web's logs:\n{}",
                    text(&docker(&["logs", "--tail", "20", &web]).stdout)
                )
            },
        );
    }
    let _ = StdCommand::new("kill")
        .args(["-INT", &follow.child.id().to_string()])
        .status();
    let out = follow.finish(common::LIVE_LIMIT);
    assert!(out.status.success(), "{}", all_output(&out));
}

// `status` and `health` with `--on ENV` read the server's engine for the release
// `current` there, and an HTTP readiness probe of a server's container runs inside that
// container: the app here answers only on the container's own loopback, and Docker's
// first health check is five minutes away, so only a probe where the container is can
// see it ready (an address probed from here could be another machine's container).
#[test]
fn status_and_health_on_the_server_probe_inside_the_container() {
    let sshd = Sshd::start();
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web\n\
         SERVICE_WEB_IMAGE={BUSYBOX}\n\
         SERVICE_WEB_COMMAND=sh -c 'trap \"exit 0\" TERM; httpd -f -p 127.0.0.1:8080 -h /var/www & wait'\n\
         SERVICE_WEB_PORT=8080\n\
         SERVICE_WEB_HEALTH=/health\n\
         SERVICE_WEB_HEALTH_INTERVAL=5m\n"
    );
    let p = Project::new("status-on", &sshd, &body);
    p.deploy(&[]);
    let web = p.id_of("web");
    assert!(
        inspect(&web, "{{.State.Health.Status}}") == "starting",
        "Docker's own check ran already; the test proves nothing"
    );

    let out = p.ok(&["--json", "status", "--on", "staging"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        status["project"].as_str().unwrap().contains("status-on"),
        "{status}"
    );
    assert_eq!(status["services"][0]["service"], "web", "{status}");
    assert_eq!(status["services"][0]["ready"], true, "{status}");
    p.ok(&["health", "--on", "staging"]);

    let _ = docker(&["stop", "-t", "0", &web]);
    let out = p.run(&["health", "--on", "staging"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(text(&out.stderr).contains("web"), "{}", all_output(&out));
}

/// Kill (SIGKILL) the SSH master connection of a running stack: the connection drops
/// while stack itself still runs.
fn drop_connection(stack: &Child) {
    let mine = descendants(stack.id());
    let masters: Vec<u32> = processes_mentioning("ControlMaster=yes")
        .into_iter()
        .filter(|(pid, _)| mine.contains(pid))
        .map(|(pid, _)| pid)
        .collect();
    assert!(!masters.is_empty(), "no ssh master under stack");
    for pid in masters {
        kill(pid);
    }
}

// The connection drops (its ssh master is killed, stack lives on): the server removes the
// one-off container of a `run --on` and of a release command, frees the deploy lock and
// says so in the audit log; the next deploy completes.
#[test]
fn a_dropped_connection_leaves_no_container_and_no_lock() {
    let sshd = Sshd::start();
    let p = Project::new("dropped", &sshd, &one_service());
    p.deploy(&[]);
    let oneoff = |what: &str| {
        let what = format!("-web-{what}-");
        p.containers().iter().any(|(n, _)| n.contains(&what))
    };

    let run = Watched::spawn(p.command(&["run", "web", "--on", "staging", "--", "sleep", "300"]));
    assert!(
        within(Duration::from_secs(60), || oneoff("run")),
        "the run never started"
    );
    drop_connection(&run.child);
    assert!(
        within(common::LIVE_LIMIT, || !oneoff("run")),
        "the run's container outlived the connection: {:?}",
        p.containers()
    );
    let out = run.finish(Duration::from_secs(60));
    assert!(!out.status.success(), "{}", all_output(&out));

    let mut deploy = Watched::spawn(p.command(&[
        "deploy",
        "staging",
        "--allow-dirty",
        "--set",
        "SERVICE_WEB_RELEASE=sleep 300",
    ]));
    deploy.wait_line("running release command", Duration::from_secs(90));
    assert!(
        within(common::LIVE_LIMIT, || oneoff("release")),
        "no release container"
    );
    assert!(p.lock_dir().exists(), "the deploy holds no lock");
    drop_connection(&deploy.child);
    assert!(
        within(common::LIVE_LIMIT, || !oneoff("release")
            && !p.lock_dir().exists()),
        "after the connection dropped: lock={} containers={:?}",
        p.lock_dir().exists(),
        p.containers()
    );
    let out = deploy.finish(Duration::from_secs(60));
    assert!(!out.status.success(), "{}", all_output(&out));
    let audit = p.audit_log();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("connection to stack ended")),
        "{audit}"
    );
    p.deploy(&["--set", "SERVICE_WEB_RELEASE=true"]);
    assert!(!p.lock_dir().exists(), "the next deploy left its lock");
}

/// The server unpacks a release under umask 077: the secrets, the `.env`, the desired
/// state and the proxy's password hashes are the deploy user's alone (the hashes' folder
/// 0700; the file itself stays readable for nginx's workers through their mount), and
/// only what the containers' users read is open. The proxy still checks the password.
#[test]
fn a_release_keeps_its_secrets_and_password_hashes_private_on_the_server() {
    let sshd = Sshd::start();
    let http = free_port();
    let body = format!(
        "STACK_PROXY=nginx\nSTACK_PROXY_IMAGE=stack-test/nginx:latest\n\
         STACK_HTTP_PORT={http}\nSTACK_HTTPS_PORT={}\n\
         STACK_SERVICES=web\nSTACK_SECRETS=APP_KEY,ADMIN_HASH\n{}\
         SERVICE_WEB_ROUTE=web.localhost\nSERVICE_WEB_BASIC_AUTH=admin:ADMIN_HASH\n\
         SERVICE_WEB_SECRET_FILES=app_key=APP_KEY\nSERVICE_WEB_ENV_APP_KEY=${{APP_KEY}}\n",
        free_port(),
        httpd_service("web")
    );
    let p = Project::new("private-release", &sshd, &body);
    let hash = bcrypt::hash("open-sesame", 4).unwrap();
    std::fs::write(
        p.dir.join("environments/staging/secrets.env"),
        format!("APP_KEY=k3y-value-for-the-test\nADMIN_HASH='{hash}'\n"),
    )
    .unwrap();
    p.deploy(&[]);
    let id = p.current_release().unwrap();
    let release = p.srv().join("releases").join(&id);
    for (path, wanted) in [
        (".env", 0o600),
        ("desired.json", 0o600),
        ("fastkey", 0o600),
        ("secrets", 0o700),
        ("secrets/APP_KEY", 0o400),
        ("nginx/auth", 0o700),
        ("nginx/auth/web", 0o644),
        ("nginx", 0o755),
        ("nginx/nginx.conf", 0o644),
        ("docker-compose.yml", 0o644),
        ("", 0o755),
    ] {
        assert_eq!(
            mode(&release.join(path)),
            wanted,
            "`{path}` is {:o}",
            mode(&release.join(path))
        );
    }
    // nginx's workers still read the hash: the password opens the route, nothing else does.
    let url = format!("http://127.0.0.1:{http}/health");
    let code = |auth: &[&str]| {
        let out = StdCommand::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Host: web.localhost",
            ])
            .args(auth)
            .arg(&url)
            .output()
            .unwrap();
        text(&out.stdout)
    };
    assert!(
        within(common::LIVE_LIMIT, || code(&["-u", "admin:open-sesame"])
            == "200"),
        "the password does not open the route: {}",
        code(&["-u", "admin:open-sesame"])
    );
    assert_eq!(code(&[]), "401");
}

/// Every path that takes the server's lock writes its owner with it: a lock never exists
/// without its owner file (watched here while a deploy that changes nothing holds it).
/// A lock without an owner file (left by an older stack) is held all the same: a deploy
/// says so, and `lock release` frees it. The audit log records who the server saw.
#[test]
fn the_lock_always_has_its_owner_and_an_ownerless_lock_can_be_released() {
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let sshd = Sshd::start();
    let p = Project::new("lock-owner", &sshd, &one_service());
    p.deploy(&[]);

    // Watch the lock during a deploy that changes nothing.
    let stop = Arc::new(AtomicBool::new(false));
    let lock = p.lock_dir();
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut seen, mut ownerless) = (false, false);
            while !stop.load(Ordering::Relaxed) {
                if let Ok(meta) = std::fs::metadata(&lock) {
                    seen = true;
                    // The lock is renamed away before it is emptied, so a folder still in
                    // place (the same one) after its file was missing was ownerless. (This
                    // looked again after 3 ms, which a loaded machine's `rm -rf` outlasts.)
                    if !lock.join("info").exists() {
                        let same = std::fs::metadata(&lock).is_ok_and(|m| m.ino() == meta.ino());
                        ownerless |= same;
                    }
                }
                // The watcher's sampling rate (the scenario), not a wait.
                std::thread::sleep(Duration::from_micros(200));
            }
            (seen, ownerless)
        })
    };
    let out = p.deploy(&[]);
    stop.store(true, Ordering::Relaxed);
    let (seen, ownerless) = watcher.join().unwrap();
    assert!(
        text(&out.stderr).contains("nothing changed"),
        "{}",
        all_output(&out)
    );
    assert!(seen, "the watcher never saw the lock");
    assert!(
        !ownerless,
        "the no-change deploy held a lock without its owner file"
    );
    let leftovers: Vec<String> = std::fs::read_dir(p.srv())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Beside the deployer's own name, the account and address the server saw.
    let audit = p.audit_log();
    let last = audit.lines().last().unwrap();
    assert!(last.contains("(ssh: root from 127.0.0.1)"), "{audit}");
    assert!(last.ends_with("ok: unchanged"), "{audit}");
    let out = p.ok(&["audit", "staging", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = json["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(entry["ssh"], "root from 127.0.0.1", "{json}");
    assert!(!entry["user"].as_str().unwrap().contains("ssh"), "{json}");

    // A lock without its owner file, as an older stack killed between its two steps left it.
    std::fs::create_dir(p.lock_dir()).unwrap();
    let out = p.deploy_any(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        text(&out.stderr).contains("no owner file") && text(&out.stderr).contains("lock release"),
        "{}",
        all_output(&out)
    );
    let out = p.ok(&["lock", "release", "staging"]);
    assert!(
        all_output(&out).contains("freed the lock") && all_output(&out).contains("no owner file"),
        "{}",
        all_output(&out)
    );
    assert!(
        !p.lock_dir().exists(),
        "`lock release` left the ownerless lock"
    );
    assert!(
        p.audit_log().lines().last().is_some_and(
            |l| l.contains("\tlock-release\t") && l.contains("(ssh: root from 127.0.0.1)")
        ),
        "{}",
        p.audit_log()
    );
    p.deploy(&[]);
}

#[path = "common/receiver.rs"]
mod receiver;

/// The tokens of the notification URLs: no output may show them.
const NOTIFY_TOKENS: [&str; 4] = [
    "tok-json-5f3a",
    "tok-slack-91c2",
    "tok-discord-77e0",
    "tok-ntfy-c4d1",
];

/// `STACK_NOTIFY` in the secrets file: one endpoint of each format, all on `receiver`.
fn notify_secrets(p: &Project, port: u16) {
    let [json, slack, discord, ntfy] = NOTIFY_TOKENS;
    let base = format!("http://127.0.0.1:{port}");
    let line = format!(
        "STACK_NOTIFY=json+{base}/hook/{json},slack+{base}/services/{slack},\
         discord+{base}/api/webhooks/{discord},ntfy+{base}/{ntfy}\n"
    );
    let path = p.path("environments/staging/secrets.env");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, old + &line).unwrap();
}

fn assert_no_token(out: &Output) {
    let all = all_output(out);
    for token in NOTIFY_TOKENS {
        assert!(
            !all.contains(token),
            "a notification URL's token is in the output:\n{all}"
        );
    }
}

/// The JSON bodies of `event` the receiver got on its generic webhook.
fn json_events(receiver: &receiver::Receiver, event: &str) -> Vec<serde_json::Value> {
    receiver
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/hook/"))
        .map(|r| r.json())
        .filter(|body| body["event"] == event)
        .collect()
}

// Issue 22 item 2: every event of a deploy, an automatic and a manual rollback and a
// forced unlock reaches a local receiver in each format (JSON, Slack, Discord, ntfy),
// and no output shows the URLs' tokens.
#[test]
fn notifications_tell_about_deploys_rollbacks_and_forced_unlocks() {
    let sshd = Sshd::start();
    let receiver = receiver::Receiver::start("127.0.0.1", receiver::Answer::Ok);
    let p = Project::new("notify", &sshd, &one_service());
    notify_secrets(&p, receiver.port);

    let out = p.deploy(&[]);
    assert_no_token(&out);
    let first = p.current_release().unwrap();
    let started = receiver
        .wait_for("deploy_started", common::LIVE_LIMIT)
        .json();
    assert_eq!(started["project"], p.name.as_str());
    assert_eq!(started["environment"], "staging");
    assert_eq!(started["release"], first.as_str());
    let succeeded = receiver
        .wait_for("deploy_succeeded", common::LIVE_LIMIT)
        .json();
    assert_eq!(succeeded["release"], first.as_str());
    assert!(
        succeeded["time"].as_str().unwrap().ends_with('Z'),
        "{succeeded}"
    );
    assert!(
        succeeded["message"].as_str().unwrap().contains("deployed"),
        "{succeeded}"
    );
    let requests = receiver.requests();
    let slack = requests
        .iter()
        .find(|r| r.path.starts_with("/services/"))
        .expect("slack");
    assert!(
        slack.json()["text"]
            .as_str()
            .unwrap()
            .starts_with("stack: "),
        "{slack:?}"
    );
    assert_eq!(slack.header("content-type"), Some("application/json"));
    let discord = requests
        .iter()
        .find(|r| r.path.starts_with("/api/webhooks/"))
        .expect("discord");
    assert!(
        discord.json()["content"].as_str().unwrap().contains(&first),
        "{discord:?}"
    );
    let ntfy = requests
        .iter()
        .find(|r| r.path == format!("/{}", NOTIFY_TOKENS[3]) && r.body.starts_with("deployed"))
        .expect("ntfy");
    assert_eq!(
        ntfy.header("title"),
        Some(format!("stack: {} deploy succeeded", p.name).as_str())
    );
    assert_eq!(ntfy.header("priority"), Some("default"));

    // A version that never turns healthy: failed, and rolled back automatically.
    let out = p.deploy_any(&[
        "--set",
        "SERVICE_WEB_HEALTH=/nope",
        "--set",
        "STACK_HEALTH_TIMEOUT=5s",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert_no_token(&out);
    let failed = receiver
        .wait_for("deploy_failed", common::LIVE_LIMIT)
        .json();
    assert!(
        failed["release"].is_string() && failed["release"] != first.as_str(),
        "{failed}"
    );
    assert!(
        failed["message"].as_str().unwrap().contains("failed"),
        "{failed}"
    );
    let rolled = receiver.wait_for("rolled_back", common::LIVE_LIMIT).json();
    assert_eq!(rolled["release"], first.as_str());
    assert!(
        rolled["message"]
            .as_str()
            .unwrap()
            .contains("automatically"),
        "{rolled}"
    );
    let ntfy_failed = receiver
        .requests()
        .into_iter()
        .find(|r| r.header("tags") == Some("warning,deploy_failed"))
        .expect("the ntfy endpoint got the failure");
    assert_eq!(ntfy_failed.header("priority"), Some("high"));

    // A manual rollback.
    p.deploy(&["--set", "SERVICE_WEB_ENV_V=two"]);
    let out = p.ok(&["rollback", "staging", &first]);
    assert_no_token(&out);
    let manual = json_events(&receiver, "rolled_back");
    assert!(
        manual.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("by `stack rollback`")
            && e["release"] == first.as_str()),
        "{manual:?}"
    );

    // A lock freed by force names its holder.
    std::fs::create_dir_all(p.lock_dir()).unwrap();
    std::fs::write(
        p.lock_dir().join("info"),
        "owner=ci-runner@build-7\ntime=20240101T000000Z\nrelease=staging-x\nenv=staging\nmessage=killed job\n",
    )
    .unwrap();
    let out = p.ok(&["lock", "release", "staging"]);
    assert_no_token(&out);
    let forced = receiver
        .wait_for("lock_released", common::LIVE_LIMIT)
        .json();
    assert!(
        forced["message"]
            .as_str()
            .unwrap()
            .contains("ci-runner@build-7"),
        "{forced}"
    );
    // Nothing the server keeps in a plain file holds a token: only the 0600 `.env`.
    for token in NOTIFY_TOKENS {
        let holders: Vec<String> = files_containing(&p.srv(), token)
            .into_iter()
            .filter(|f| !f.ends_with("/.env"))
            .collect();
        assert!(holders.is_empty(), "`{token}` is in {holders:?}");
    }
}

// An endpoint that hangs and one that answers 500 are warnings (scheme and host only, no
// token): the deploy succeeds, the hanging one is given up after the deadline, the
// failing one is tried three times.
#[test]
fn a_hanging_or_failing_endpoint_is_a_warning_and_the_deploy_succeeds() {
    let sshd = Sshd::start();
    let hanging = receiver::Receiver::start("127.0.0.1", receiver::Answer::Hang);
    let failing = receiver::Receiver::start("127.0.0.1", receiver::Answer::ServerError);
    let p = Project::new("notify-down", &sshd, &one_service());
    let path = p.path("environments/staging/secrets.env");
    std::fs::write(
        &path,
        format!(
            "STACK_NOTIFY=http://127.0.0.1:{}/hook/{},http://127.0.0.1:{}/hook/{}\n",
            hanging.port, NOTIFY_TOKENS[0], failing.port, NOTIFY_TOKENS[1]
        ),
    )
    .unwrap();
    let out = p.deploy(&[]);
    assert_no_token(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "could not notify http://127.0.0.1:{} of `deploy_started`: no answer within 5s",
            hanging.port
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "could not notify http://127.0.0.1:{} of `deploy_succeeded`: it answered 500",
            failing.port
        )),
        "{stderr}"
    );
    assert_eq!(inspect(&p.id_of("web"), "{{.State.Status}}"), "running");
    let tries = failing
        .requests()
        .iter()
        .filter(|r| r.body.contains("deploy_succeeded"))
        .count();
    assert_eq!(tries, 3, "a 5xx is retried twice");
    assert!(hanging
        .requests()
        .iter()
        .any(|r| r.body.contains("deploy_started")));
}

// supervise on the server tells the endpoints about a container it restarted.
#[test]
fn supervise_notifies_a_restarted_container() {
    let sshd = Sshd::start();
    let receiver = receiver::Receiver::start("127.0.0.1", receiver::Answer::Ok);
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web\n\
         SERVICE_WEB_IMAGE={BUSYBOX}\n\
         SERVICE_WEB_COMMAND=sh -c 'rm -f /tmp/broken; exec httpd -f -p 8080 -h /var/www'\n\
         SERVICE_WEB_HEALTH_CMD=test ! -e /tmp/broken\n\
         SERVICE_WEB_HEALTH_INTERVAL=1s\nSERVICE_WEB_HEALTH_RETRIES=1\n"
    );
    let p = Project::new("notify-supervise", &sshd, &body);
    notify_secrets(&p, receiver.port);
    p.deploy(&[]);
    let bundle = p.srv().join("current");
    let bundle = bundle.to_str().unwrap();
    let web = p.id_of("web");
    let mut supervisor = Watched::spawn(p.command(&["supervise", "--bundle", bundle]));
    supervisor.wait_line("watching health", Duration::from_secs(60));
    let broke = docker(&["exec", &web, "touch", "/tmp/broken"]);
    assert!(broke.status.success(), "{}", text(&broke.stderr));
    let event = receiver
        .wait_for("container_restarted", Duration::from_secs(60))
        .json();
    kill(supervisor.child.id());
    let out = supervisor.finish(common::LIVE_LIMIT);
    assert_no_token(&out);
    let message = event["message"].as_str().unwrap();
    assert!(
        message.contains("(web)") && message.contains("unhealthy"),
        "{event}"
    );
    assert_eq!(event["project"], p.name.as_str());
    assert_eq!(event["environment"], "staging");
}
