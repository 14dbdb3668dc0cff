//! Containers that behave like VMs: `stack-test/vm` (systemd as PID 1, sshd, sudo, no
//! Docker) and `stack-test/vm-docker` (the same with Debian's docker.io), booted with the
//! flags that work without `--privileged` (refused on hosts that lack CAP_SYS_RESOURCE):
//! every capability but SYS_RESOURCE, no seccomp or AppArmor profile, the host's cgroup
//! tree, tmpfs on /run, and a volume on /var/lib/docker so a nested dockerd can use overlay2.
//!
//! `Vm::boot` waits until systemd reports `running` or `degraded`; dropping the `Vm` removes
//! the container and its volume.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::{docker, require_engine, require_tool, text};

/// How long a boot (or a reboot) may take before the test fails.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// One VM container.
pub struct Vm {
    /// Container name, also its hostname and its DNS name on the network.
    pub name: String,
    /// The Docker network the VM is attached to.
    pub network: String,
    volume: String,
    keys: tempfile::TempDir,
}

impl Vm {
    /// Boot `image` as container `name` on `network` (which must exist), with a fresh
    /// ed25519 key authorised for root, sshd published on a loopback port, and a volume on
    /// /var/lib/docker. Waits for systemd. The name must be unique to the test.
    pub fn boot(name: &str, image: &str, network: &str) -> Vm {
        require_engine(&[]);
        assert!(
            docker(&["image", "inspect", "--format", "{{.Id}}", image])
                .status
                .success(),
            "test image `{image}` is missing: run `scripts/build-test-images.sh`"
        );
        let keygen = require_tool("ssh-keygen");
        let keys = tempfile::Builder::new()
            .prefix("stack-vm-key-")
            .tempdir()
            .unwrap();
        let key = keys.path().join("id_ed25519");
        let made = Command::new(keygen)
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&key)
            .status()
            .expect("run ssh-keygen");
        assert!(made.success(), "ssh-keygen failed");
        let volume = format!("{name}-docker");
        let authorized = format!(
            "{}:/root/.ssh/authorized_keys:ro",
            keys.path().join("id_ed25519.pub").display()
        );
        let vm = Vm {
            name: name.to_string(),
            network: network.to_string(),
            volume: volume.clone(),
            keys,
        };
        let out = docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--hostname",
            name,
            "--network",
            network,
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
            &format!("{volume}:/var/lib/docker"),
            "-v",
            &authorized,
            "-p",
            "127.0.0.1::22",
            image,
        ]);
        assert!(
            out.status.success(),
            "cannot boot {name} from {image}: {}",
            text(&out.stderr)
        );
        vm.wait_for_systemd();
        vm
    }

    /// Wait until `systemctl is-system-running` says `running` or `degraded`.
    pub fn wait_for_systemd(&self) {
        let started = Instant::now();
        loop {
            let out = self.exec(&["systemctl", "is-system-running"]);
            let state = text(&out.stdout).trim().to_string();
            if state == "running" || state == "degraded" {
                return;
            }
            assert!(
                started.elapsed() < BOOT_TIMEOUT,
                "{} did not boot within {BOOT_TIMEOUT:?} (systemd: `{state}`{}); failed units:\n{}",
                self.name,
                text(&out.stderr).trim(),
                text(&self.exec(&["systemctl", "--failed", "--no-legend"]).stdout)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `docker exec VM ARGS`, whatever the exit code.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(args);
        docker(&all)
    }

    /// `sh -c SCRIPT` inside the VM, which must succeed; returns stdout.
    pub fn sh(&self, script: &str) -> String {
        let out = self.exec(&["sh", "-c", script]);
        assert!(
            out.status.success(),
            "`{script}` failed in {} ({}):\n{}{}",
            self.name,
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// The VM's address on its network.
    pub fn ip(&self) -> String {
        let format = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            self.network
        );
        let out = docker(&["inspect", "--format", &format, &self.name]);
        let ip = text(&out.stdout).trim().to_string();
        assert!(
            !ip.is_empty(),
            "{} has no address on {}",
            self.name,
            self.network
        );
        ip
    }

    /// The loopback port sshd is published on (it may change after a reboot).
    pub fn ssh_port(&self) -> u16 {
        let out = docker(&["port", &self.name, "22/tcp"]);
        text(&out.stdout)
            .lines()
            .find_map(|line| line.rsplit(':').next()?.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "sshd of {} is not published: {}",
                    self.name,
                    text(&out.stderr)
                )
            })
    }

    /// The private key root logs in with.
    pub fn ssh_key(&self) -> PathBuf {
        self.keys.path().join("id_ed25519")
    }

    /// `ssh root@127.0.0.1 -p PORT REMOTE` with the VM's key, no host-key prompts, batch mode.
    pub fn ssh(&self, remote: &str) -> Command {
        let mut command = Command::new("ssh");
        command
            .arg("-i")
            .arg(self.ssh_key())
            .args(["-p", &self.ssh_port().to_string()])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=10",
                "root@127.0.0.1",
                remote,
            ]);
        command
    }

    /// Copy a local image into the VM's dockerd (`docker save | docker exec -i VM docker load`).
    pub fn load_image(&self, image: &str) {
        let script = format!(
            "docker save '{image}' | docker exec -i '{}' docker load",
            self.name
        );
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(
            out.status.success(),
            "`{script}` failed: {}",
            text(&out.stderr)
        );
    }

    /// A reboot: `docker restart` (systemd gets SIGRTMIN+3 and shuts down), then wait for
    /// systemd again. The volume and the container's filesystem survive.
    pub fn reboot(&self) {
        let out = docker(&["restart", "-t", "30", &self.name]);
        assert!(
            out.status.success(),
            "cannot restart {}: {}",
            self.name,
            text(&out.stderr)
        );
        self.wait_for_systemd();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        docker(&["rm", "-f", "-v", &self.name]);
        docker(&["volume", "rm", "-f", &self.volume]);
    }
}
