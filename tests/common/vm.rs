//! A machine that behaves like a VM: a container of `stack-test/vm` or `vm-docker`
//! running systemd as PID 1 and sshd, reachable over SSH as root with a test key. It runs
//! with every capability but `SYS_RESOURCE`, no seccomp or AppArmor profile, the host's
//! cgroup file system and a volume on `/var/lib/docker` (its engine's images and
//! containers survive a reboot, which is a restart of the container). The guard removes
//! the container and its volume.

use std::path::PathBuf;
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::Duration;

use super::{docker, docker_ok, text};

use super::engine::BUSYBOX;

pub struct Vm {
    pub name: String,
    volume: String,
    dir: tempfile::TempDir,
}

impl Vm {
    /// Boot `image` as machine `name` and wait until systemd runs and sshd answers.
    pub fn boot(name: &str, image: &str) -> Vm {
        Vm::boot_on(name, image, "bridge")
    }

    /// Boot on the Docker network `network`.
    pub fn boot_on(name: &str, image: &str, network: &str) -> Vm {
        super::require_engine(&[image, BUSYBOX]);
        let name = format!("vm-{name}-{}", std::process::id());
        let volume = format!("{name}-docker");
        let _ = docker(&["rm", "-f", "-v", &name]);
        let _ = docker(&["volume", "rm", "-f", &volume]);
        docker_ok(&["volume", "create", &volume]);
        let mount = format!("{volume}:/var/lib/docker");
        docker_ok(&[
            "create",
            "--name",
            &name,
            "--hostname",
            &name,
            "--cap-add",
            "ALL",
            "--cap-drop",
            "SYS_RESOURCE",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/run/lock",
            "-v",
            &mount,
            "--network",
            network,
            image,
        ]);
        let vm = Vm {
            name,
            volume,
            dir: tempfile::tempdir().unwrap(),
        };
        vm.give_host_key();
        docker_ok(&["start", &vm.name]);
        vm.wait_booted();
        let key = vm.dir.path().join("key");
        let status = StdCommand::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "stack-test", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(status.success());
        let public = std::fs::read(key.with_extension("pub")).unwrap();
        vm.exec_input(
            "mkdir -p /root/.ssh && cat > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys",
            &public,
        );
        vm.trust();
        vm
    }

    /// Put a host key of the machine's own in its `/etc/ssh` before its first boot, so the
    /// image's first-boot service (`ssh-keygen -A`: RSA, ECDSA and Ed25519) finds one and
    /// does nothing. That service held a loaded machine's boot for 4-7 s, most of it the
    /// RSA key, which nothing here uses (`trust` reads the Ed25519 key); sshd serves the
    /// one key it has.
    fn give_host_key(&self) {
        let keys = self.dir.path().join("host");
        std::fs::create_dir_all(&keys).unwrap();
        let key = keys.join("ssh_host_ed25519_key");
        let made = StdCommand::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C"])
            .arg(format!("root@{}", self.name))
            .arg("-f")
            .arg(&key)
            .output()
            .expect("ssh-keygen");
        assert!(made.status.success(), "ssh-keygen: {}", text(&made.stderr));
        for file in [key.clone(), key.with_extension("pub")] {
            let into = format!("{}:/etc/ssh/", self.name);
            docker_ok(&["cp", &file.to_string_lossy(), &into]);
        }
    }

    /// Wait (at most 120 s) until systemd says the machine is up and sshd has keys.
    pub fn wait_booted(&self) {
        let booted = super::process::within(Duration::from_secs(120), || {
            let state = docker(&["exec", &self.name, "systemctl", "is-system-running"]);
            let state = text(&state.stdout);
            let ssh = docker(&["exec", &self.name, "systemctl", "is-active", "ssh"]);
            (state.trim() == "running" || state.trim() == "degraded")
                && text(&ssh.stdout).trim() == "active"
        });
        assert!(
            booted,
            "machine `{}` did not boot within 120 s: {}{}",
            self.name,
            text(&docker(&["exec", &self.name, "systemctl", "is-system-running"]).stdout),
            text(&docker(&["logs", "--tail", "30", &self.name]).stderr)
        );
    }

    pub fn ip(&self) -> String {
        docker_ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &self.name,
        ])
        .trim()
        .to_string()
    }

    /// Write known_hosts (the machine's host key at its current address) and an ssh
    /// config naming it and the test key.
    pub fn trust(&self) {
        let host_key = self.exec("cat /etc/ssh/ssh_host_ed25519_key.pub");
        let mut parts = host_key.split_whitespace();
        let (kind, blob) = (parts.next().unwrap(), parts.next().unwrap());
        std::fs::write(
            self.dir.path().join("known_hosts"),
            format!("{} {kind} {blob}\n", self.ip()),
        )
        .unwrap();
        std::fs::write(
            self.ssh_config(),
            format!(
                "Host *\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  IdentityFile {}\n  IdentitiesOnly yes\n  PasswordAuthentication no\n",
                self.dir.path().join("known_hosts").display(),
                self.dir.path().join("key").display()
            ),
        )
        .unwrap();
    }

    /// The private key root (and a deploy user set up with it) logs in with.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key")
    }

    pub fn ssh_config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// Run `script` in the machine (as root); its output, whatever the exit code.
    pub fn run(&self, script: &str) -> Output {
        docker(&["exec", &self.name, "sh", "-c", script])
    }

    /// Run `script` in the machine; it must succeed.
    pub fn exec(&self, script: &str) -> String {
        let out = self.run(script);
        assert!(
            out.status.success(),
            "in `{}`: `{script}` failed: {}{}",
            self.name,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn exec_input(&self, script: &str, input: &[u8]) {
        use std::io::Write;
        let mut child = StdCommand::new("docker")
            .args(["exec", "-i", &self.name, "sh", "-c", script])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        assert!(child.wait().unwrap().success(), "`{script}` failed");
    }

    /// Copy a local image into the machine's engine.
    pub fn load_image(&self, image: &str) {
        let status = StdCommand::new("sh")
            .arg("-c")
            .arg(format!(
                "docker save {image} | docker exec -i {} docker load -q",
                self.name
            ))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cannot load `{image}` into `{}`",
            self.name
        );
    }

    /// A reboot: restart the machine's container (systemd halts on SIGRTMIN+3), wait
    /// until it is up, and trust it at its (maybe new) address.
    pub fn reboot(&self) {
        docker_ok(&["restart", "-t", "30", &self.name]);
        self.wait_booted();
        self.trust();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
        let _ = docker(&["volume", "rm", "-f", &self.volume]);
    }
}

impl Vm {
    /// `ssh root@machine REMOTE` with the machine's key and known host.
    pub fn ssh(&self, remote: &str) -> StdCommand {
        let mut command = StdCommand::new("ssh");
        command
            .arg("-F")
            .arg(self.ssh_config())
            .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
            .arg(format!("root@{}", self.ip()))
            .arg(remote)
            .stdin(Stdio::null());
        command
    }
}

/// The machine with Docker; `STACK_TEST_VM_DOCKER_IMAGE` overrides it.
pub fn docker_image() -> String {
    std::env::var("STACK_TEST_VM_DOCKER_IMAGE")
        .unwrap_or_else(|_| "stack-test/vm-docker:latest".into())
}

/// A project's `staging` environment deployed to a machine: the one set-up of the VM
/// suites (vm, preview, pull).
impl super::Project {
    /// Point `staging` at `vm` (its current address) as `user`.
    pub fn target(&self, vm: &Vm, user: &str) {
        std::fs::create_dir_all(self.path("environments/staging")).unwrap();
        std::fs::write(
            self.path("environments/staging/server.env"),
            format!(
                "SERVER_HOST={}\nSERVER_USER={user}\nSERVER_SSH_KEY={}\n",
                vm.ip(),
                vm.key().display()
            ),
        )
        .unwrap();
    }

    /// `stack ARGS` against `vm`, its output piped, not started.
    pub fn command_on(&self, vm: &Vm, args: &[&str]) -> StdCommand {
        let mut command = self.command(args);
        command
            .env("STACK_SSH_CONFIG", vm.ssh_config())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// `stack ARGS` against `vm`, started.
    pub fn spawn_on(&self, vm: &Vm, args: &[&str]) -> std::process::Child {
        self.command_on(vm, args).spawn().unwrap()
    }

    /// `stack ARGS` against `vm` (killed after 300 s).
    pub fn on(&self, vm: &Vm, args: &[&str]) -> Output {
        super::wait_output(self.spawn_on(vm, args), Duration::from_secs(300))
    }

    /// `stack ARGS` against `vm`; it must succeed.
    pub fn ok_on(&self, vm: &Vm, args: &[&str]) -> Output {
        super::succeeded(self.on(vm, args), &args.join(" "))
    }
}
