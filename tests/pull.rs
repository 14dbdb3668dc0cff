//! Issue #26 item 2: the server pulls a `BUILD` image's base from its registry itself,
//! and only the project's own layers cross the SSH connection. The server is a VM-like
//! machine (`tests/common/vm.rs`); the public registry is played by Debian's
//! distribution registry (`stack-test/registry:2`): this machine's engine pushes the
//! base to it at `127.0.0.1:PORT` (so the base has a repo digest here, as one pulled
//! from a public registry has), and the machine reaches the same storage at the same
//! name through a second registry process in its network namespace.

use std::process::Output;
use std::time::Duration;

use common::vm::{self, Vm};
use common::{docker, docker_ok, free_port, succeeded, text, Project, Watched};

mod common;

use common::engine::BUSYBOX;

const REGISTRY: &str = "stack-test/registry:2";

/// A registry standing in for a public one: `here` answers this machine's engine at
/// `127.0.0.1:port`, `there` the machine's at the same address; one storage volume.
struct PublicRegistry {
    port: u16,
    volume: String,
    here: String,
    there: String,
}

impl PublicRegistry {
    fn start(tag: &str, vm: &Vm) -> PublicRegistry {
        let port = free_port();
        let name = format!("pull-{tag}-registry-{}", std::process::id());
        let registry = PublicRegistry {
            port,
            volume: format!("{name}-data"),
            here: format!("{name}-here"),
            there: format!("{name}-there"),
        };
        let storage = format!("{}:/var/lib/registry", registry.volume);
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &registry.here,
            "-v",
            &storage,
            "-p",
            &format!("127.0.0.1:{port}:5000"),
            REGISTRY,
        ]);
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &registry.there,
            "-v",
            &storage,
            "--network",
            &format!("container:{}", vm.name),
            "-e",
            &format!("REGISTRY_HTTP_ADDR=127.0.0.1:{port}"),
            REGISTRY,
        ]);
        common::eventually("the registry to answer", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        registry
    }

    /// Build a base image of `megabytes` of noise in `layers` layers on busybox, and push
    /// it here as `127.0.0.1:PORT/<name>:1`.
    fn push_base(
        &self,
        dir: &std::path::Path,
        name: &str,
        (layers, megabytes): (usize, usize),
    ) -> String {
        let reference = format!("127.0.0.1:{}/{name}:1", self.port);
        let context = dir.join("base");
        std::fs::create_dir_all(&context).unwrap();
        let mut dockerfile = format!("FROM {BUSYBOX}\n");
        for layer in 0..layers {
            let noise = common::noise(megabytes << 20, 0x51ed_270b_2d1c_0ac3 + layer as u64);
            std::fs::write(context.join(format!("noise{layer}.bin")), noise).unwrap();
            dockerfile.push_str(&format!("COPY noise{layer}.bin /base/noise{layer}.bin\n"));
        }
        std::fs::write(context.join("Dockerfile"), dockerfile).unwrap();
        docker_ok(&["build", "-q", "-t", &reference, context.to_str().unwrap()]);
        docker_ok(&["push", &reference]);
        reference
    }
}

impl Drop for PublicRegistry {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.there, &self.here]);
        let _ = docker(&["volume", "rm", "-f", &self.volume]);
    }
}

/// Removes a local image when dropped.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

/// A project with one `BUILD` service `web` on `base`, deployed to `vm` as root.
fn project(name: &str, vm: &Vm, base: &str) -> Project {
    let project = Project::called(name);
    std::fs::create_dir_all(project.path("environments/staging")).unwrap();
    std::fs::create_dir_all(project.path("app")).unwrap();
    project.write(&format!(
        "STACK_TLS=off\nSTACK_DRAIN=0s\nSTACK_PROXY=none\nSTACK_SERVICES=web\n\
         STACK_REGISTRY_IMAGE={REGISTRY}\nSERVICE_WEB_BUILD=./app\n"
    ));
    std::fs::write(
        project.path("app/Dockerfile"),
        format!(
            "# the base the server can pull\nFROM {base} AS run\nCOPY version /www/version\n\
             CMD [\"sh\", \"-c\", \"trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait\"]\n"
        ),
    )
    .unwrap();
    project.target(vm, "root");
    project
}

fn deploy_command(project: &Project, vm: &Vm) -> std::process::Command {
    project.command_on(vm, &["deploy", "staging", "--allow-dirty", "--json"])
}

fn deploy(project: &Project, vm: &Vm) -> Output {
    project.ok_on(vm, &["deploy", "staging", "--allow-dirty", "--json"])
}

fn images_sent(out: &Output) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", common::all_output(out)));
    json["images_sent"].clone()
}

/// What `web` serves on the machine.
fn version(vm: &Vm, project: &str) -> String {
    vm.exec(&format!(
        "docker exec $(docker ps -q --filter label=com.docker.compose.project={project} \
         --filter label=com.docker.compose.service=web) cat /www/version"
    ))
    .trim()
    .to_string()
}

/// The machine's images named like the base (a pull by digest tags nothing).
fn base_images(vm: &Vm, name: &str) -> Vec<String> {
    vm.exec("docker images --digests --format '{{.Repository}}:{{.Tag}}@{{.Digest}}'")
        .lines()
        .filter(|line| line.contains(name))
        .map(String::from)
        .collect()
}

#[test]
fn the_server_pulls_the_base_and_only_own_layers_cross() {
    let vm = Vm::boot("pull", &vm::docker_image());
    vm.load_image(REGISTRY);
    let registry = PublicRegistry::start("ok", &vm);
    let name = format!("pullok-{}", std::process::id());
    let temp = tempfile::tempdir().unwrap();
    // 16 MB of base in two layers over busybox's.
    let base = registry.push_base(temp.path(), &format!("{name}-base"), (2, 8));
    let _base_here = Image(base.clone());
    let project = project(&name, &vm, &base);
    std::fs::write(project.path("app/version"), "v1\n").unwrap();
    let first = deploy(&project, &vm);
    let stderr = text(&first.stderr);
    assert!(stderr.contains("the server pulls base"), "{stderr}");
    assert_eq!(version(&vm, &name), "v1");
    let sent = images_sent(&first);
    let bytes = sent["bytes"].as_u64().unwrap();
    assert!(
        bytes < 256 * 1024,
        "the first deploy sent {bytes} bytes over SSH: {sent}"
    );
    assert!(sent["layers_skipped"].as_u64().unwrap() >= 3, "{sent}");
    assert_eq!(base_images(&vm, &format!("{name}-base")).len(), 1);

    // A one-line change: the base is there, only the changed layer crosses.
    std::fs::write(project.path("app/version"), "v2\n").unwrap();
    let second = deploy(&project, &vm);
    assert!(
        !text(&second.stderr).contains("pulls base"),
        "{}",
        text(&second.stderr)
    );
    assert_eq!(version(&vm, &name), "v2");
    let bytes = images_sent(&second)["bytes"].as_u64().unwrap();
    assert!(bytes < 64 * 1024, "the second deploy sent {bytes} bytes");
}

/// The base of the registry-lost test: 4 layers of 8 MB. It was 4 of 16 MB at 40 Mbit/s,
/// the same 13 s of pulling; half the bytes halve the noise pushed here before the
/// deploy and the image the fallback sends over SSH (at a load average of 40 on 2 cores
/// those took 79 s and 163 s of the test's 301 s).
const CUT_BASE: (usize, usize) = (4, 8);

/// The registry goes away while the server pulls the base: the deploy says so in one
/// line, sends the image through the connection instead, and completes; the machine has
/// no image under the base's name.
#[test]
fn a_registry_lost_halfway_through_the_pull_falls_back_to_pushing() {
    let vm = Vm::boot("pullcut", &vm::docker_image());
    vm.load_image(REGISTRY);
    let registry = PublicRegistry::start("cut", &vm);
    let name = format!("pullcut-{}", std::process::id());
    let temp = tempfile::tempdir().unwrap();
    let base = registry.push_base(temp.path(), &format!("{name}-base"), CUT_BASE);
    let _base_here = Image(base.clone());
    let project = project(&name, &vm, &base);
    std::fs::write(project.path("app/version"), "v1\n").unwrap();
    // The machine's loopback (where its registry answers) at 20 Mbit/s: the pull of
    // 32 MB (about 13 s) is still under way when its registry goes.
    vm.exec("tc qdisc add dev lo root tbf rate 20mbit burst 64kb latency 400ms");
    let mut deploy = Watched::spawn(deploy_command(&project, &vm));
    deploy.wait_line("server pulling base", Duration::from_secs(120));
    docker_ok(&["rm", "-f", &registry.there]);
    vm.exec("tc qdisc del dev lo root");
    let out = succeeded(deploy.finish(Duration::from_secs(300)), "deploy");
    let stderr = text(&out.stderr);
    let said: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("cannot pull base"))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(said[0].contains("sending its layers over SSH"), "{stderr}");
    assert_eq!(version(&vm, &name), "v1");
    let bytes = images_sent(&out)["bytes"].as_u64().unwrap();
    let base_bytes = (CUT_BASE.0 * CUT_BASE.1) << 20;
    assert!(
        bytes > base_bytes as u64,
        "the fallback sent only {bytes} bytes, less than the base"
    );
    assert!(
        base_images(&vm, &format!("{name}-base")).is_empty(),
        "{:?}",
        base_images(&vm, &format!("{name}-base"))
    );
}
