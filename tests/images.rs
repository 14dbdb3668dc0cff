//! The Debian-based test images of `scripts/build-test-images.sh`, on the real engine:
//! `stack-test/postgres:15` keeps the official image's contract (POSTGRES_* variables,
//! initdb on an empty volume only, `/docker-entrypoint-initdb.d`, password logins over the
//! network, postgres as PID 1 run by the postgres user), and every other image's main
//! binary runs with the arguments its upstream image takes.
//!
//! Nothing is skipped: a missing engine or image fails with the command to run. Every
//! container, volume and network a test creates is named `stack-img-<test>-<pid>` and
//! removed when the test ends, passed or failed.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{all_output, docker, text};

mod common;

const POSTGRES: &str = "stack-test/postgres:15";
const REDIS: &str = "stack-test/redis:7";
const DEBIAN: &str = "stack-test/debian:bookworm";

/// Containers, volumes and networks of one test; removed on drop.
struct Resources {
    prefix: String,
    containers: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
}

impl Resources {
    fn new(test: &str, images: &[&str]) -> Resources {
        common::require_engine(images);
        Resources {
            prefix: format!("stack-img-{test}-{}", std::process::id()),
            containers: Vec::new(),
            volumes: Vec::new(),
            networks: Vec::new(),
        }
    }

    /// A container name owned by this test (removed on drop).
    fn container(&mut self, name: &str) -> String {
        let full = format!("{}-{name}", self.prefix);
        self.containers.push(full.clone());
        full
    }

    fn volume(&mut self, name: &str) -> String {
        let full = format!("{}-{name}", self.prefix);
        must(&["volume", "create", &full]);
        self.volumes.push(full.clone());
        full
    }

    fn network(&mut self) -> String {
        let full = format!("{}-net", self.prefix);
        must(&["network", "create", &full]);
        self.networks.push(full.clone());
        full
    }

    /// `docker rm -f -v` one container now, with its anonymous volumes (it stays in the
    /// list; removing twice is harmless).
    fn remove(&self, container: &str) {
        docker(&["rm", "-f", "-v", container]);
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        for container in &self.containers {
            docker(&["rm", "-f", "-v", container]);
        }
        for volume in &self.volumes {
            docker(&["volume", "rm", "-f", volume]);
        }
        for network in &self.networks {
            docker(&["network", "rm", network]);
        }
    }
}

/// `docker ARGS`, which must succeed; returns its stdout.
fn must(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "`docker {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn logs(container: &str) -> String {
    let out = docker(&["logs", container]);
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// Poll `docker ARGS` until it succeeds, for at most `limit`; returns the last output.
fn until_success(args: &[&str], limit: Duration, container: &str) -> Output {
    let mut last = None;
    let succeeded = common::process::within(limit, || {
        let out = docker(args);
        let ok = out.status.success();
        last = Some(out);
        ok
    });
    let out = last.expect("the check ran");
    assert!(
        succeeded,
        "`docker {}` did not succeed within {limit:?}; last stderr: {}\nlogs of {container}:\n{}",
        args.join(" "),
        text(&out.stderr),
        logs(container)
    );
    out
}

/// The init directory: an SQL file, a gzipped SQL file and a sourced shell script, run in
/// name order against POSTGRES_DB. World-readable: the entrypoint reads it as postgres.
fn init_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(
        dir.join("01-schema.sql"),
        "CREATE TABLE greetings (id serial PRIMARY KEY, message text NOT NULL);\n\
         INSERT INTO greetings (message) VALUES ('hello from initdb.d');\n",
    )
    .unwrap();
    // Another table: proves *.sql.gz are fed to psql.
    let gz = std::process::Command::new("sh")
        .arg("-c")
        .arg("echo 'CREATE TABLE from_gz (n int); INSERT INTO from_gz VALUES (7);' | gzip -c >\"$1\"")
        .arg("sh")
        .arg(dir.join("02-data.sql.gz"))
        .status()
        .expect("run sh and gzip");
    assert!(gz.success(), "gzip failed");
    std::fs::write(
        dir.join("03-script.sh"),
        "psql -v ON_ERROR_STOP=1 --username \"$POSTGRES_USER\" --dbname \"$POSTGRES_DB\" \
         -c \"CREATE TABLE from_sh AS SELECT '$POSTGRES_DB'::text AS db\"\n",
    )
    .unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `psql` inside `container` over its Unix socket (trusted there, as in the official image).
fn psql(container: &str, sql: &str) -> String {
    must(&[
        "exec",
        container,
        "psql",
        "-U",
        "app",
        "-d",
        "appdb",
        "-tA",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
    ])
    .trim()
    .to_string()
}

#[test]
fn postgres_image_keeps_the_official_contract() {
    let mut res = Resources::new("pg", &[POSTGRES]);
    let network = res.network();
    let volume = res.volume("data");
    let init = tempfile::tempdir().unwrap();
    init_dir(init.path());
    let mount = format!("{}:/docker-entrypoint-initdb.d:ro", init.path().display());
    let data = format!("{volume}:/var/lib/postgresql/data");

    let first = res.container("db1");
    must(&[
        "run",
        "-d",
        "--name",
        &first,
        "--network",
        &network,
        "--network-alias",
        "db",
        "-e",
        "POSTGRES_USER=app",
        "-e",
        "POSTGRES_PASSWORD=s3cret-pw",
        "-e",
        "POSTGRES_DB=appdb",
        "-v",
        &data,
        "-v",
        &mount,
        POSTGRES,
    ]);
    // Over TCP: the temporary server of the initialisation listens on the socket only, so
    // this is the real server, after the init files ran.
    until_success(
        &[
            "exec",
            &first,
            "pg_isready",
            "-h",
            "127.0.0.1",
            "-U",
            "app",
            "-d",
            "appdb",
        ],
        Duration::from_secs(90),
        &first,
    );
    assert_eq!(
        psql(&first, "SELECT current_user || ' ' || current_database()"),
        "app appdb"
    );
    assert_eq!(
        psql(&first, "SELECT message FROM greetings"),
        "hello from initdb.d"
    );
    assert_eq!(psql(&first, "SELECT n FROM from_gz"), "7");
    assert_eq!(psql(&first, "SELECT db FROM from_sh"), "appdb");
    assert_eq!(
        psql(
            &first,
            "SELECT rolsuper FROM pg_roles WHERE rolname = 'app'"
        ),
        "t",
        "POSTGRES_USER is the superuser"
    );
    // postgres itself is PID 1 (signals reach it), run by the postgres user (uid 999).
    assert_eq!(
        must(&["exec", &first, "cat", "/proc/1/comm"]).trim(),
        "postgres"
    );
    let status = must(&["exec", &first, "cat", "/proc/1/status"]);
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|id| id == "999"),
        "{uid}"
    );
    let first_logs = logs(&first);
    assert!(
        first_logs.contains("PostgreSQL init process complete"),
        "{first_logs}"
    );
    assert!(!first_logs.contains("s3cret-pw"), "the password was logged");
    psql(
        &first,
        "INSERT INTO greetings (message) VALUES ('written later')",
    );

    // From another container, over the network: the password works, a wrong one is refused.
    let client = |password: &str| {
        docker(&[
            "run",
            "--rm",
            "--network",
            &network,
            "-e",
            &format!("PGPASSWORD={password}"),
            POSTGRES,
            "psql",
            "-h",
            "db",
            "-U",
            "app",
            "-d",
            "appdb",
            "-tAc",
            "SELECT count(*) FROM greetings",
        ])
    };
    let good = client("s3cret-pw");
    assert!(
        good.status.success(),
        "login over TCP failed: {}",
        text(&good.stderr)
    );
    assert_eq!(text(&good.stdout).trim(), "2");
    let bad = client("wrong-password");
    assert!(!bad.status.success(), "a wrong password was accepted");
    assert!(
        text(&bad.stderr).contains("password authentication failed"),
        "{}",
        text(&bad.stderr)
    );
    // pg_dump and pg_restore are on PATH and read each other's format.
    let dump = docker(&[
        "run",
        "--rm",
        "--network",
        &network,
        "-e",
        "PGPASSWORD=s3cret-pw",
        POSTGRES,
        "sh",
        "-c",
        "pg_dump -h db -U app -Fc appdb >/tmp/appdb.dump && pg_restore --list /tmp/appdb.dump",
    ]);
    assert!(dump.status.success(), "{}", text(&dump.stderr));
    assert!(
        text(&dump.stdout).contains("TABLE public greetings"),
        "{}",
        text(&dump.stdout)
    );

    // SIGINT (the image's STOPSIGNAL) reaches postgres: a clean fast shutdown, exit 0.
    must(&["stop", "-t", "30", &first]);
    assert_eq!(
        must(&["inspect", "--format", "{{.State.ExitCode}}", &first]).trim(),
        "0",
        "{}",
        logs(&first)
    );
    res.remove(&first);

    // A new container on the same volume, with other settings: no second initialisation,
    // the data and the first password stay.
    let second = res.container("db2");
    must(&[
        "run",
        "-d",
        "--name",
        &second,
        "--network",
        &network,
        "--network-alias",
        "db",
        "-e",
        "POSTGRES_USER=app",
        "-e",
        "POSTGRES_PASSWORD=another-pw",
        "-e",
        "POSTGRES_DB=appdb",
        "-v",
        &data,
        "-v",
        &mount,
        POSTGRES,
    ]);
    until_success(
        &[
            "exec",
            &second,
            "pg_isready",
            "-h",
            "127.0.0.1",
            "-U",
            "app",
            "-d",
            "appdb",
        ],
        Duration::from_secs(60),
        &second,
    );
    let second_logs = logs(&second);
    assert!(
        second_logs.contains("Skipping initialization"),
        "{second_logs}"
    );
    assert!(
        !second_logs.contains("init process complete"),
        "{second_logs}"
    );
    assert_eq!(
        psql(&second, "SELECT count(*) FROM greetings"),
        "2",
        "init SQL ran again"
    );
    assert!(
        client("s3cret-pw").status.success(),
        "the first password no longer works"
    );
    assert!(
        !client("another-pw").status.success(),
        "the new POSTGRES_PASSWORD replaced the old"
    );
}

#[test]
fn postgres_image_refuses_to_initialise_without_a_password() {
    let mut res = Resources::new("pgnopw", &[POSTGRES]);
    let name = res.container("db");
    let out = docker(&["run", "--name", &name, "-e", "POSTGRES_USER=app", POSTGRES]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("superuser password is not specified"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn redis_image_answers_other_containers() {
    let mut res = Resources::new("redis", &[REDIS]);
    let network = res.network();
    let server = res.container("redis");
    must(&[
        "run",
        "-d",
        "--name",
        &server,
        "--network",
        &network,
        "--network-alias",
        "redis",
        REDIS,
    ]);
    let ping = until_success(
        &[
            "run",
            "--rm",
            "--network",
            &network,
            REDIS,
            "redis-cli",
            "-h",
            "redis",
            "ping",
        ],
        Duration::from_secs(30),
        &server,
    );
    assert_eq!(text(&ping.stdout).trim(), "PONG");
    // The server runs as the redis user and owns /data.
    let status = must(&["exec", &server, "cat", "/proc/1/status"]);
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|id| id == "999"),
        "{uid}"
    );
    // The preset's own command: a shell that execs redis-server with a password.
    let preset = res.container("preset");
    must(&[
        "run",
        "-d",
        "--name",
        &preset,
        "--network",
        &network,
        "--network-alias",
        "locked",
        "-e",
        "REDIS_PASSWORD=pw",
        REDIS,
        "sh",
        "-c",
        "exec redis-server --requirepass \"$REDIS_PASSWORD\" --appendonly yes",
    ]);
    let auth = until_success(
        &[
            "run",
            "--rm",
            "--network",
            &network,
            "-e",
            "REDISCLI_AUTH=pw",
            REDIS,
            "redis-cli",
            "-h",
            "locked",
            "ping",
        ],
        Duration::from_secs(30),
        &preset,
    );
    assert_eq!(text(&auth.stdout).trim(), "PONG");
    let denied = docker(&[
        "run",
        "--rm",
        "--network",
        &network,
        REDIS,
        "redis-cli",
        "-h",
        "locked",
        "ping",
    ]);
    assert!(
        text(&denied.stdout).contains("NOAUTH"),
        "{}",
        text(&denied.stdout)
    );
}

/// (image, entrypoint override or "", arguments, text the output must contain)
const VERSIONS: &[(&str, &str, &[&str], &str)] = &[
    (
        "stack-test/postgres:15",
        "",
        &["postgres", "--version"],
        "postgres (PostgreSQL) 15.",
    ),
    (
        "postgres:15",
        "",
        &["pg_isready", "--version"],
        "pg_isready (PostgreSQL) 15.",
    ),
    (
        "stack-test/redis:7",
        "",
        &["redis-server", "--version"],
        "Redis server v=7.",
    ),
    ("redis:7", "", &["redis-cli", "--version"], "redis-cli 7."),
    (
        "stack-test/prometheus:latest",
        "",
        &["--version"],
        "prometheus, version 2.",
    ),
    (
        "stack-test/prometheus:latest",
        "promtool",
        &["--version"],
        "promtool, version 2.",
    ),
    (
        "stack-test/alertmanager:latest",
        "",
        &["--version"],
        "alertmanager, version 0.",
    ),
    (
        "stack-test/alertmanager:latest",
        "amtool",
        &["--version"],
        "amtool, version 0.",
    ),
    (
        "stack-test/node-exporter:latest",
        "",
        &["--version"],
        "node_exporter, version 1.",
    ),
    (
        "stack-test/postgres-exporter:latest",
        "",
        &["--version"],
        "postgres_exporter, version 0.",
    ),
    (
        "stack-test/redis-exporter:latest",
        "",
        &["--version"],
        "Redis Metrics Exporter 1.",
    ),
    // The official haproxy image's entrypoint contract: `haproxy ...` and `-...` both run
    // haproxy (with `-W -db`).
    (
        "stack-test/docker-proxy:latest",
        "",
        &["haproxy", "-v"],
        "HAProxy version 2.6",
    ),
    ("haproxy:2.6", "", &["-v"], "HAProxy version 2.6"),
    ("stack-test/rclone:latest", "", &["--version"], "rclone v1."),
    ("stack-test/vm:latest", "sshd", &["-V"], "OpenSSH_9"),
    (
        "stack-test/vm:latest",
        "systemctl",
        &["--version"],
        "systemd 252",
    ),
    (
        "stack-test/vm-docker:latest",
        "dockerd",
        &["--version"],
        "Docker version 20.10",
    ),
];

/// stack-test/vm is a bare server: no Docker, so `stack server setup` has it all to do.
#[test]
fn the_bare_vm_has_no_docker() {
    let _res = Resources::new("bare", &["stack-test/vm:latest"]);
    let out = docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        "stack-test/vm:latest",
        "-c",
        "for t in docker dockerd containerd sshd sudo ip curl systemctl; do command -v $t; done; true",
    ]);
    let found = text(&out.stdout);
    assert!(
        !found.contains("docker") && !found.contains("containerd"),
        "{found}"
    );
    for tool in ["sshd", "sudo", "ip", "curl", "systemctl"] {
        assert!(
            found.lines().any(|l| l.ends_with(&format!("/{tool}"))),
            "no {tool}: {found}"
        );
    }
}

/// stack-test/vm-docker boots like a server: systemd is PID 1 and reaches `running`,
/// root logs in over SSH with a key, dockerd runs (overlay2 on the volume, or vfs), an
/// image sent with `docker save | docker load` runs inside, and a reboot keeps it all.
#[test]
fn vm_docker_boots_systemd_ssh_and_nested_docker() {
    let mut res = Resources::new(
        "vm",
        &["stack-test/vm-docker:latest", "stack-test/busybox:latest"],
    );
    let network = res.network();
    let vm = common::vm::Vm::boot_on(
        &format!("{}-node", res.prefix),
        "stack-test/vm-docker:latest",
        &network,
    );
    assert_eq!(vm.exec("cat /proc/1/comm").trim(), "systemd");
    assert_eq!(
        vm.exec("systemctl is-active docker ssh")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["active", "active"]
    );
    let driver = vm.exec("docker info --format '{{.Driver}}'");
    assert!(
        ["overlay2", "vfs"].contains(&driver.trim()),
        "storage driver: {driver}"
    );

    let login = vm
        .ssh("id -un; hostname; sudo -n true && echo sudo-ok")
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "ssh failed: {}",
        text(&login.stderr)
    );
    let said = text(&login.stdout);
    assert_eq!(
        said.lines().collect::<Vec<_>>(),
        ["root", vm.name.as_str(), "sudo-ok"],
        "{said}"
    );
    // The VM's address on the network answers too (what other VMs use).
    assert!(!vm.ip().is_empty());

    vm.load_image("stack-test/busybox:latest");
    assert_eq!(
        vm.exec("docker run --rm stack-test/busybox:latest echo nested-ok")
            .trim(),
        "nested-ok"
    );

    vm.reboot();
    assert_eq!(
        vm.exec("docker images --format '{{.Repository}}:{{.Tag}}'")
            .trim(),
        "stack-test/busybox:latest"
    );
    let again = vm.ssh("systemctl is-system-running").output().unwrap();
    assert!(
        ["running", "degraded"].contains(&text(&again.stdout).trim()),
        "after a reboot: {}{}",
        text(&again.stdout),
        text(&again.stderr)
    );
}

#[test]
fn every_image_runs_its_main_binary() {
    let images: Vec<&str> = VERSIONS.iter().map(|v| v.0).collect();
    let _res = Resources::new("versions", &images);
    for (image, entrypoint, args, expected) in VERSIONS {
        let mut command = vec!["run", "--rm"];
        if !entrypoint.is_empty() {
            command.extend(["--entrypoint", entrypoint]);
        }
        command.push(image);
        command.extend(args.iter());
        let out = docker(&command);
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "`docker {}` failed: {all}",
            command.join(" ")
        );
        assert!(
            all.contains(expected),
            "`docker {}`: expected `{expected}` in: {all}",
            command.join(" ")
        );
    }
}

/// `GET url` (http://host:port/path) from a container on `network`, with bash's /dev/tcp
/// in the Debian base (no HTTP client needed in the images under test).
fn http_get(network: &str, url: &str) -> Output {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = authority.split_once(':').expect("host:port");
    let script = "exec 3<>\"/dev/tcp/$0/$1\" && printf 'GET %s HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' \"$2\" \"$0\" >&3 && timeout 10 cat <&3";
    docker(&[
        "run",
        "--rm",
        "--network",
        network,
        DEBIAN,
        "timeout",
        "15",
        "bash",
        "-c",
        script,
        host,
        port,
        path,
    ])
}

/// The monitoring images start with their upstream image's default command and answer on
/// their usual port: Prometheus reads /etc/prometheus/prometheus.yml, Alertmanager
/// /etc/alertmanager/alertmanager.yml, the exporters serve /metrics (the postgres and
/// redis exporters configured by DATA_SOURCE_* and REDIS_ADDR, as the presets set them).
#[test]
fn monitoring_images_serve_with_their_default_commands() {
    let mut res = Resources::new(
        "mon",
        &[
            DEBIAN,
            POSTGRES,
            REDIS,
            "stack-test/prometheus:latest",
            "stack-test/alertmanager:latest",
            "stack-test/node-exporter:latest",
            "stack-test/postgres-exporter:latest",
            "stack-test/redis-exporter:latest",
        ],
    );
    let network = res.network();
    let run = |res: &mut Resources, alias: &str, args: &[&str]| {
        let name = res.container(alias);
        let mut command = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &network,
            "--network-alias",
            alias,
        ];
        command.extend(args);
        must(&command);
        name
    };
    run(
        &mut res,
        "postgres",
        &[
            "-e",
            "POSTGRES_USER=app",
            "-e",
            "POSTGRES_PASSWORD=pw",
            "-e",
            "POSTGRES_DB=appdb",
            POSTGRES,
        ],
    );
    run(&mut res, "redis", &[REDIS]);
    let checks: Vec<(String, String, &str)> = vec![
        (
            run(&mut res, "prometheus", &["stack-test/prometheus:latest"]),
            "http://prometheus:9090/-/ready".into(),
            "Ready",
        ),
        (
            run(
                &mut res,
                "alertmanager",
                &["stack-test/alertmanager:latest"],
            ),
            "http://alertmanager:9093/-/ready".into(),
            "OK",
        ),
        (
            run(
                &mut res,
                "node-exporter",
                &["stack-test/node-exporter:latest"],
            ),
            "http://node-exporter:9100/metrics".into(),
            "node_exporter_build_info",
        ),
        (
            run(
                &mut res,
                "postgres-exporter",
                &[
                    "-e",
                    "DATA_SOURCE_URI=postgres:5432/appdb?sslmode=disable",
                    "-e",
                    "DATA_SOURCE_USER=app",
                    "-e",
                    "DATA_SOURCE_PASS=pw",
                    "stack-test/postgres-exporter:latest",
                ],
            ),
            "http://postgres-exporter:9187/metrics".into(),
            "pg_up 1",
        ),
        (
            run(
                &mut res,
                "redis-exporter",
                &[
                    "-e",
                    "REDIS_ADDR=redis://redis:6379",
                    "stack-test/redis-exporter:latest",
                ],
            ),
            "http://redis-exporter:9121/metrics".into(),
            "redis_up 1",
        ),
    ];
    for (container, url, expected) in &checks {
        let mut last = String::new();
        let answered = common::process::within(Duration::from_secs(90), || {
            let out = http_get(&network, url);
            last = all_output(&out);
            out.status.success() && text(&out.stdout).contains(expected)
        });
        assert!(
            answered,
            "{url} did not answer with `{expected}` within 90 s; last answer: {last}\nlogs of {container}:\n{}",
            logs(container)
        );
    }
}

/// The static binary of `scripts/build-static.sh` runs on Debian 11 (glibc 2.31), where the
/// default build (dynamic, glibc 2.34+) does not: `--version`, then a real `init` + `build`.
/// Built once for the whole run (`common::package`: the `ci-static` profile), shared with
/// the `.deb` tests.
#[test]
fn static_binary_runs_on_debian_bullseye() {
    const BULLSEYE: &str = "stack-test/debian:bullseye";
    let mut res = Resources::new("static", &[BULLSEYE]);
    let binary = common::package::static_binary();
    let binary = binary.display().to_string();

    let glibc = must(&["run", "--rm", BULLSEYE, "ldd", "--version"]);
    assert!(
        glibc.lines().next().unwrap_or("").ends_with(" 2.31"),
        "{glibc}"
    );

    let mount = format!("{binary}:/usr/local/bin/stack:ro");
    let name = res.container("bullseye");
    let out = docker(&[
        "run", "--name", &name, "-v", &mount, BULLSEYE, "sh", "-c",
        "set -e; stack --version; cd /tmp; stack init --yes demo >/dev/null; \
         stack -C demo build >/dev/null; test -s demo/.stack/dev/docker-compose.yml && echo rendered",
    ]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "the static binary failed on bullseye: {said}"
    );
    assert!(
        said.starts_with(&format!("stack {}", env!("CARGO_PKG_VERSION"))),
        "{said}"
    );
    assert!(said.contains("rendered"), "{said}");

    // The default (dynamic) build, for contrast: it needs a newer glibc than bullseye's.
    let dynamic = assert_cmd::cargo::cargo_bin("stack");
    let mount = format!("{}:/usr/local/bin/stack:ro", dynamic.display());
    let out = docker(&["run", "--rm", "-v", &mount, BULLSEYE, "stack", "--version"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success() && said.contains("GLIBC_2."),
        "the dynamic build was expected to need a newer glibc than 2.31: {said}"
    );
}

/// The `.deb` of `scripts/build-deb.sh` (packaging the one static binary of the run)
/// installs with apt on Debian 11 and 12 (no
/// Depends: the binary is static, and no package list is needed), then `stack --version`
/// names the version and commit, `init` + `build` render a bundle, and the man pages and
/// completions are where Debian's man and shells read them. The images drop man pages
/// (dpkg path-exclude, like Debian's container images): the test lifts that first.
#[test]
fn deb_installs_with_apt_on_bullseye_and_bookworm() {
    const IMAGES: [&str; 2] = ["stack-test/debian:bullseye", DEBIAN];
    let mut res = Resources::new("deb", &IMAGES);
    let deb = common::package::deb_package();
    let name = deb.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(
        name,
        format!("stack_{}_amd64.deb", env!("CARGO_PKG_VERSION"))
    );
    let mount = format!("{}:/pkg/{name}:ro", deb.display());
    let check = format!(
        "set -e; rm -f /etc/dpkg/dpkg.cfg.d/docker-slim; \
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q /pkg/{name} >/tmp/apt.log 2>&1 || {{ cat /tmp/apt.log; exit 1; }}; \
         command -v stack; stack --version; dpkg-query -W -f='${{Version}} ${{Architecture}}\\n' stack; \
         cd /tmp; stack init --yes demo >/dev/null; stack -C demo build >/dev/null; \
         test -s demo/.stack/dev/docker-compose.yml && echo rendered; \
         for f in /usr/share/man/man1/stack.1.gz /usr/share/man/man1/stack-doctor.1.gz \
                  /usr/share/bash-completion/completions/stack \
                  /usr/share/zsh/vendor-completions/_stack \
                  /usr/share/fish/vendor_completions.d/stack.fish; do test -s \"$f\" && echo \"has $f\"; done; \
         zcat /usr/share/man/man1/stack.1.gz | grep -m1 '^[.]TH '"
    );
    for image in IMAGES {
        let container = res.container(image.rsplit(':').next().unwrap());
        let out = docker(&[
            "run", "--name", &container, "-v", &mount, image, "sh", "-c", &check,
        ]);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "on {image}: {said}");
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(lines[0], "/usr/bin/stack", "on {image}: {said}");
        assert!(
            lines[1].starts_with(&format!("stack {} (commit ", env!("CARGO_PKG_VERSION")))
                && !lines[1].contains("unknown"),
            "on {image}, --version names the commit: {said}"
        );
        assert_eq!(
            lines[2],
            format!("{} amd64", env!("CARGO_PKG_VERSION")),
            "on {image}: {said}"
        );
        assert!(said.contains("\nrendered\n"), "on {image}: {said}");
        assert_eq!(
            said.matches("\nhas /usr/share/").count(),
            5,
            "on {image}: {said}"
        );
        assert!(said.contains("\n.TH stack 1 "), "on {image}: {said}");
        res.remove(&container);
    }
}
