//! `stack deploy` on machines that behave like VMs (issue #13): containers running
//! systemd as PID 1, sshd and (in `stack-test/vm-docker`) Debian's docker.io, built by
//! `scripts/build-test-images.sh`. A machine runs with every capability but
//! `SYS_RESOURCE`, no seccomp or AppArmor profile, the host's cgroup file system and a
//! volume on `/var/lib/docker` (its engine's images and containers survive a reboot,
//! which is a restart of the machine's container). Images reach a machine with
//! `docker save | docker exec -i … docker load`, as no registry is reachable.
//!
//! Each test boots its own machines (named `vm-<test>-<pid>`), so tests run in
//! parallel; a [`common::vm::Vm`] guard removes the container and its volume.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, eventually_ok, succeeded, text, wait_output, Project};

mod common;

use common::engine::BUSYBOX;

/// The machine with Docker; `STACK_TEST_VM_DOCKER_IMAGE` overrides it.
fn vm_docker_image() -> String {
    std::env::var("STACK_TEST_VM_DOCKER_IMAGE")
        .unwrap_or_else(|_| "stack-test/vm-docker:latest".into())
}

use common::vm::Vm;

/// A service answering `/health` while `/var/www/health` exists (it is recreated at start).
fn httpd_service(name: &str, extra: &str) -> String {
    let key = name.to_uppercase().replace('-', "_");
    format!(
        "SERVICE_{key}_IMAGE={BUSYBOX}\n\
         SERVICE_{key}_COMMAND=sh -c 'trap \"exit 0\" TERM; mkdir -p /var/www; echo ok > /var/www/health; httpd -f -p 8080 -h /var/www & wait'\n\
         SERVICE_{key}_PORT=8080\n\
         SERVICE_{key}_HEALTH=/health\n\
         SERVICE_{key}_HEALTH_INTERVAL=1s\n\
         SERVICE_{key}_HEALTH_RETRIES=2\n{extra}"
    )
}

impl Project {
    /// A project `name` deployed to a machine's `staging` environment.
    fn new(name: &str, body: &str) -> Project {
        let project = Project::called(name);
        std::fs::create_dir_all(project.path("environments/staging")).unwrap();
        project.write(&format!("STACK_TLS=off\nSTACK_DRAIN=0s\n{body}"));
        project
    }

    /// Point `staging` at `vm` (its current address) as `user`.
    fn target(&self, vm: &Vm, user: &str) {
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

    /// `stack ARGS` against `vm` (killed after 300 s).
    fn on(&self, vm: &Vm, args: &[&str]) -> Output {
        wait_output(self.spawn_on(vm, args), Duration::from_secs(300))
    }

    /// `stack ARGS` against `vm`, started.
    fn spawn_on(&self, vm: &Vm, args: &[&str]) -> std::process::Child {
        self.command(args)
            .env("STACK_SSH_CONFIG", vm.ssh_config())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `stack deploy staging` to `vm` as root.
    fn deploy(&self, vm: &Vm, extra: &[&str]) -> Output {
        self.target(vm, "root");
        let mut args = vec!["deploy", "staging", "--allow-dirty"];
        args.extend_from_slice(extra);
        self.on(vm, &args)
    }

    fn deploy_ok(&self, vm: &Vm, extra: &[&str]) -> Output {
        succeeded(self.deploy(vm, extra), "deploy")
    }

    /// `stack ARGS` against `vm` as it is targeted; it must succeed.
    fn ok_on(&self, vm: &Vm, args: &[&str]) -> Output {
        succeeded(self.on(vm, args), &args.join(" "))
    }
}

/// `name status` of each of the project's containers in the machine.
fn containers(vm: &Vm, project: &str) -> String {
    vm.exec(&format!(
        "docker ps -a --filter label=com.docker.compose.project={project} --format '{{{{.Names}}}} {{{{.Status}}}}'"
    ))
}

fn all_healthy(vm: &Vm, project: &str, count: usize) -> bool {
    let list = containers(vm, project);
    list.lines().filter(|l| l.contains("(healthy)")).count() == count
        && list.lines().count() == count
}

fn journal(vm: &Vm, project: &str) -> String {
    vm.exec(&format!("journalctl -u {project} --no-pager -o cat"))
}

/// Item 3 of #13: the unit, installed by a deploy on a machine with systemd, keeps the
/// stack up across a reboot, stops it with `systemctl stop` (volumes kept), and
/// `supervise` brings back a container killed by hand or turned unhealthy.
#[test]
fn the_unit_keeps_the_stack_up_on_a_real_systemd() {
    let began = Instant::now();
    let vm = Vm::boot("unit", &vm_docker_image());
    vm.load_image(BUSYBOX);
    let name = format!("vmunit-{}", std::process::id());
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web,api\nSTACK_HEALTH_TIMEOUT=45s\n{}{}",
        httpd_service("web", "SERVICE_WEB_VOLUMES=webdata:/data\n"),
        httpd_service("api", "SERVICE_API_DEPENDS_ON=web\n")
    );
    let project = Project::new(&name, &body);
    project.deploy_ok(&vm, &[]);
    let unit = format!("{name}.service");

    // Installed, enabled, active, and ours.
    assert_eq!(
        vm.exec(&format!("systemctl is-enabled {unit}")).trim(),
        "enabled"
    );
    assert_eq!(
        vm.exec(&format!("systemctl is-active {unit}")).trim(),
        "active"
    );
    let file = vm.exec(&format!("cat /etc/systemd/system/{unit}"));
    assert!(file.starts_with("# Generated by stack "), "{file}");
    assert!(file.contains("Type=notify"), "{file}");
    assert_eq!(
        vm.exec(&format!("sha256sum /opt/{name}/bin/stack | cut -c1-8"))
            .len(),
        9
    );
    assert!(all_healthy(&vm, &name, 2), "{}", containers(&vm, &name));
    vm.exec(&format!(
        "docker exec {name}-web-1 sh -c 'echo kept > /data/proof'"
    ));

    // A container killed by hand comes back through supervise (Docker counts `docker
    // kill` as a manual stop and does not restart it), and the journal says so.
    vm.exec(&format!("docker kill {name}-web-1"));
    eventually(
        "the killed container is back",
        Duration::from_secs(30),
        || {
            journal(&vm, &name).contains(&format!("`{name}-web-1` of `web` exited (137)"))
                && all_healthy(&vm, &name, 2)
        },
    );

    // A container turned unhealthy is restarted (its command recreates the health file).
    vm.exec(&format!("docker exec {name}-api-1 rm /var/www/health"));
    eventually(
        "the unhealthy container is restarted",
        Duration::from_secs(30),
        || {
            journal(&vm, &name).contains("is unhealthy; restarting it")
                && all_healthy(&vm, &name, 2)
        },
    );

    // A reboot brings every service back healthy within STACK_HEALTH_TIMEOUT, by itself.
    let rebooted = Instant::now();
    vm.reboot();
    eventually(
        "every service is healthy after a reboot",
        Duration::from_secs(45),
        || all_healthy(&vm, &name, 2),
    );
    eprintln!(
        "reboot: every service healthy {:?} after `docker restart` began",
        rebooted.elapsed()
    );
    assert_eq!(
        vm.exec(&format!("systemctl is-active {unit}")).trim(),
        "active"
    );
    assert!(journal(&vm, &name).contains("is up; watching health"));

    // `systemctl stop` stops the containers and keeps them and the volume.
    vm.exec(&format!("systemctl stop {unit}"));
    let list = containers(&vm, &name);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.lines().all(|l| l.contains("Exited")), "{list}");
    assert!(journal(&vm, &name).contains("volumes kept"));
    assert!(vm
        .exec("docker volume ls -q")
        .contains(&format!("{name}_webdata")));
    // Stopped on purpose: supervise is gone and nothing brings them back.
    assert_eq!(
        vm.run(&format!("systemctl is-active {unit}")).status.code(),
        Some(3)
    );
    vm.exec(&format!("systemctl start {unit}"));
    // `start` returns once stack's own probes pass; Docker's health check follows.
    let list = containers(&vm, &name);
    assert!(list.lines().all(|l| l.contains(" Up ")), "{list}");
    eventually(
        "Docker sees every service healthy",
        Duration::from_secs(15),
        || all_healthy(&vm, &name, 2),
    );
    assert_eq!(
        vm.exec(&format!("docker exec {name}-web-1 cat /data/proof"))
            .trim(),
        "kept"
    );

    // A second deploy with a change reloads supervise in place: same unit, new release.
    let pid = vm.exec(&format!("systemctl show -p MainPID --value {unit}"));
    project.deploy_ok(&vm, &["--set", "SERVICE_API_ENV_GREETING=hello"]);
    assert_eq!(
        vm.exec(&format!("systemctl show -p MainPID --value {unit}")),
        pid
    );
    eventually(
        "supervise reloads the new release",
        Duration::from_secs(30),
        || {
            journal(&vm, &name)
                .matches("is up; watching health")
                .count()
                >= 3
                && journal(&vm, &name).contains("reloading")
        },
    );
    let api = vm.exec(&format!(
        "docker ps -q --filter label=com.docker.compose.project={name} --filter label=com.docker.compose.service=api"
    ));
    assert!(vm
        .exec(&format!(
            "docker inspect -f '{{{{.Config.Env}}}}' {}",
            api.trim()
        ))
        .contains("GREETING=hello"));
    eprintln!("test took {:?}", began.elapsed());
}

/// A project named like a unit the server already has (a system unit, or one written by
/// hand) is refused before anything changes on the server.
#[test]
fn a_deploy_never_overwrites_a_unit_stack_did_not_write() {
    let vm = Vm::boot("foreign", &vm_docker_image());
    vm.load_image(BUSYBOX);
    let name = format!("vmforeign-{}", std::process::id());
    // A unit of the distribution's, in /lib, and later one written by hand in /etc.
    vm.exec(&format!(
        "printf '[Service]\\nExecStart=/bin/true\\n' > /lib/systemd/system/{name}.service && systemctl daemon-reload"
    ));
    let project = Project::new(
        &name,
        &format!(
            "STACK_PROXY=none\nSTACK_SERVICES=web\n{}",
            httpd_service("web", "")
        ),
    );
    let out = project.deploy(&vm, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("/lib/systemd/system/{name}.service"))
            && stderr.contains("stack did not write"),
        "{stderr}"
    );
    assert!(
        vm.run(&format!("test -e /opt/{name}")).status.code() == Some(1),
        "nothing was uploaded"
    );
    assert_eq!(
        vm.exec(&format!("cat /lib/systemd/system/{name}.service")),
        "[Service]\nExecStart=/bin/true\n"
    );

    vm.exec(&format!(
        "rm /lib/systemd/system/{name}.service && printf '# mine\\n[Service]\\nExecStart=/bin/true\\n' > /etc/systemd/system/{name}.service && systemctl daemon-reload"
    ));
    let out = project.deploy(&vm, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("/etc/systemd/system/{name}.service")));
    assert!(vm
        .exec(&format!("cat /etc/systemd/system/{name}.service"))
        .starts_with("# mine"));
}

fn ok(out: Output, what: &str) -> (String, String) {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    (text(&out.stdout), text(&out.stderr))
}

/// The bare machine image (no Docker); `STACK_TEST_VM_IMAGE` overrides it.
fn vm_image() -> String {
    std::env::var("STACK_TEST_VM_IMAGE").unwrap_or_else(|_| "stack-test/vm:latest".into())
}

/// Item 2 of #13: `stack server setup` makes a bare Debian machine ready (Docker from
/// Debian's mirror, the deploy user with its key in the docker group, SERVER_PATH, sudo
/// rules for its unit, this binary), then a first deploy as that user needs no step by
/// hand, and a second setup changes nothing.
#[test]
fn server_setup_makes_a_bare_machine_ready_for_a_first_deploy() {
    let began = Instant::now();
    let vm = Vm::boot("setup", &vm_image());
    assert!(
        vm.run("command -v docker").status.code() != Some(0),
        "the machine is bare"
    );
    let name = format!("vmsetup-{}", std::process::id());
    let project = Project::new(
        &name,
        &format!(
            "STACK_PROXY=none\nSTACK_SERVICES=web\n{}",
            httpd_service("web", "")
        ),
    );
    project.target(&vm, "deploy");

    // --dry-run lists the steps and changes nothing.
    let (_, listing) = ok(
        project.on(&vm, &["server", "setup", "staging", "--dry-run"]),
        "setup --dry-run",
    );
    for step in [
        "docker: would install Docker",
        "deploy user: would create the user `deploy`",
        "ssh key: would",
        "stack binary: would",
    ] {
        assert!(listing.contains(step), "{listing}");
    }
    assert!(
        vm.run("id deploy").status.code() != Some(0),
        "--dry-run created the user"
    );

    let setup_began = Instant::now();
    let (_, first) = ok(project.on(&vm, &["server", "setup", "staging"]), "setup");
    eprintln!("first setup took {:?}", setup_began.elapsed());
    assert!(first.contains("step(s) changed"), "{first}");
    assert!(vm
        .exec("id -nG deploy")
        .split_whitespace()
        .any(|g| g == "docker"));
    assert_eq!(vm.exec(&format!("stat -c %U /opt/{name}")).trim(), "deploy");

    // The first deploy, as the deploy user, with the image copied in (no registry here).
    vm.load_image(BUSYBOX);
    let (_, deployed) = ok(
        project.on(&vm, &["deploy", "staging", "--allow-dirty"]),
        "deploy as deploy",
    );
    assert!(
        !deployed.contains("note:"),
        "the unit and binary install as `deploy`: {deployed}"
    );
    assert_eq!(
        vm.exec(&format!("systemctl is-active {name}.service"))
            .trim(),
        "active"
    );
    eventually("web is healthy", Duration::from_secs(15), || {
        all_healthy(&vm, &name, 1)
    });

    // Item 7: supervise runs as `deploy`, its binary is deploy's own, and sudo gives
    // `deploy` the root helper and nothing else.
    let helper = format!("/usr/local/sbin/stack-root-{name}");
    let allowed = vm.exec("su deploy -c 'sudo -n -l'");
    let commands: Vec<&str> = allowed
        .lines()
        .skip_while(|l| !l.contains("may run the following commands"))
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        commands,
        [format!("(root) NOPASSWD: {helper}")],
        "{allowed}"
    );
    // What the old rules' `releases/*/` let through (`*` matches spaces in sudoers): a
    // setuid root shell.
    vm.exec("su deploy -c 'mkdir -p /tmp/r'");
    for refused in [
        format!(
            "/usr/bin/install -m 0644 /opt/{name}/releases/ -m 4755 -t /tmp/r /bin/bash \
             /tmp/x/{name}.service /etc/systemd/system/{name}.service"
        ),
        format!("/usr/bin/install -m 0644 /opt/{name}/releases/a /tmp/evil -m 4755"),
        "/usr/bin/systemctl daemon-reload".to_string(),
        "/bin/sh -c id".to_string(),
        format!("{helper} install-unit ../../../tmp"),
        format!("{helper} stop"),
    ] {
        let out = vm.run(&format!("su deploy -c 'sudo -n {refused}'"));
        assert_ne!(out.status.code(), Some(0), "sudo -n {refused} was allowed");
    }
    assert!(vm.run("test -e /tmp/evil").status.code() != Some(0));
    assert!(
        vm.run("test -e /tmp/r/bash").status.code() != Some(0),
        "{}",
        vm.exec("ls -l /tmp/r")
    );
    assert_eq!(
        vm.exec(&format!("stat -c '%U:%G %a' {helper}")).trim(),
        "root:root 755"
    );
    let pid = vm.exec(&format!("systemctl show -p MainPID --value {name}.service"));
    assert_eq!(
        vm.exec(&format!("ps -o user= -p {}", pid.trim())).trim(),
        "deploy"
    );
    assert_eq!(
        vm.exec(&format!("stat -c %U /opt/{name}/bin/stack")).trim(),
        "deploy"
    );

    let again = Instant::now();
    let (_, second) = ok(
        project.on(&vm, &["server", "setup", "staging"]),
        "second setup",
    );
    eprintln!("second setup took {:?}", again.elapsed());
    assert!(second.contains("nothing to change"), "{second}");
    assert!(!second.contains("would"), "{second}");
    eprintln!("test took {:?}", began.elapsed());
}

/// A Docker network for a test's machines, removed on drop.
struct Network(String);

impl Drop for Network {
    fn drop(&mut self) {
        let _ = common::docker(&["network", "rm", &self.0]);
    }
}

/// Item 4 of #13 (first part): three machines on one private network form a swarm (one
/// manager, two workers); `STACK_TARGET=swarm` spreads a service's replicas over all three
/// (each node has the image: swarm runs the release's pinned image by its ID, since the
/// release tag exists on the manager only).
/// `count` machines with Docker on a private network of their own, each with `images`
/// loaded; stack reaches every one with the first one's key (as one operator's key
/// would) and trusts them all.
fn machines(tag: &str, count: usize, images: &[&str]) -> (Network, Vec<Vm>) {
    let began = Instant::now();
    let network = Network(format!("vm-{tag}-{}", std::process::id()));
    let made = common::docker(&["network", "create", &network.0]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let image = vm_docker_image();
    let vms: Vec<Vm> = std::thread::scope(|scope| {
        let boots: Vec<_> = (1..=count)
            .map(|n| {
                let (image, network) = (&image, &network.0);
                scope.spawn(move || Vm::boot_on(&format!("{tag}{n}"), image, network))
            })
            .collect();
        boots.into_iter().map(|b| b.join().unwrap()).collect()
    });
    eprintln!("{count} machines booted in {:?}", began.elapsed());
    for vm in &vms {
        for image in images {
            vm.load_image(image);
        }
    }
    let manager = &vms[0];
    let manager_key = std::fs::read_to_string(manager.key().with_extension("pub")).unwrap();
    let known_hosts = manager.ssh_config().with_file_name("known_hosts");
    for worker in &vms[1..] {
        worker.exec(&format!(
            "echo '{}' >> /root/.ssh/authorized_keys",
            manager_key.trim()
        ));
        let host_key = worker.exec("cat /etc/ssh/ssh_host_ed25519_key.pub");
        let mut parts = host_key.split_whitespace();
        let line = format!(
            "{} {} {}\n",
            worker.ip(),
            parts.next().unwrap(),
            parts.next().unwrap()
        );
        let mut known = std::fs::read_to_string(&known_hosts).unwrap();
        known.push_str(&line);
        std::fs::write(&known_hosts, known).unwrap();
    }
    (network, vms)
}

/// Point `project`'s staging at the first machine, the others as `SERVER_NODES`, and run
/// `stack server setup staging`, which forms the swarm.
fn form_swarm(project: &Project, vms: &[Vm]) {
    let manager = &vms[0];
    let workers: Vec<String> = vms[1..].iter().map(|w| w.ip()).collect();
    project.target(manager, "root");
    let env = project.dir.join("environments/staging/server.env");
    let mut server_env = std::fs::read_to_string(&env).unwrap();
    server_env.push_str(&format!("SERVER_NODES={}\n", workers.join(",")));
    std::fs::write(&env, server_env).unwrap();
    let setup = Instant::now();
    project.ok_on(manager, &["server", "setup", "staging"]);
    eprintln!(
        "server setup of {} machines took {:?}",
        vms.len(),
        setup.elapsed()
    );
}

/// When the swarm last began updating the project's `web` service (empty before any).
fn update_started(manager: &Vm, name: &str) -> String {
    manager
        .exec(&format!(
            "docker service inspect {name}_web --format '{{{{if .UpdateStatus}}}}{{{{.UpdateStatus.StartedAt}}}}{{{{end}}}}'"
        ))
        .trim()
        .to_string()
}

/// The nodes that run a running task of `service`.
fn running_nodes(manager: &Vm, name: &str, service: &str) -> std::collections::BTreeSet<String> {
    let tasks = manager.exec(&format!(
        "docker service ps {name}_{service} --filter desired-state=running --format '{{{{.Node}}}} {{{{.CurrentState}}}}'"
    ));
    tasks
        .lines()
        .filter(|l| l.contains("Running"))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

#[test]
fn swarm_spreads_replicas_over_three_machines() {
    let began = Instant::now();
    let (_network, vms) = machines("swarm", 3, &[BUSYBOX]);
    let manager = &vms[0];
    let name = format!("vmswarm-{}", std::process::id());
    let project = Project::new(
        &name,
        &format!(
            "STACK_PROXY=none\nSTACK_TARGET=swarm\nSTACK_SWARM_ENCRYPT=true\n\
             STACK_SERVICES=web,app,db\nSTACK_HEALTH_TIMEOUT=90s\n{}{}\
             SERVICE_APP_BUILD=./app\n\
             SERVICE_DB_IMAGE={BUSYBOX}\n\
             SERVICE_DB_COMMAND=sh -c 'trap \"exit 0\" TERM; sleep 100000 & wait'\n\
             SERVICE_DB_PLACEMENT=node.labels.role==db\n",
            httpd_service("web", "SERVICE_WEB_REPLICAS=3\n"),
            httpd_service("app", "SERVICE_APP_REPLICAS=3\n").replace(
                &format!("SERVICE_APP_IMAGE={BUSYBOX}\n"),
                &format!("SERVICE_APP_IMAGE={name}-app:dev\n")
            ),
        ),
    );
    // What the build and the release leave on this machine's engine goes with the test.
    let _removed = common::Removed(name.clone());
    // A BUILD service no node has: its image must reach the workers without a registry.
    let app = project.dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        format!("FROM {BUSYBOX}\nRUN mkdir -p /var/www && echo built-{name} > /var/www/version\n"),
    )
    .unwrap();
    form_swarm(&project, &vms);
    let nodes = manager.exec("docker node ls --format '{{.Hostname}} {{.Status}}'");
    assert_eq!(
        nodes.lines().filter(|l| l.ends_with(" Ready")).count(),
        3,
        "{nodes}"
    );
    let out = project.on(manager, &["server", "setup", "staging"]);
    assert!(
        text(&out.stderr).contains("nothing to change"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("SWMTKN"),
        "the join token was shown"
    );
    // The database's machine, as in the homelab seed.
    let db_node = vms[2].exec("hostname").trim().to_string();
    manager.exec(&format!("docker node update --label-add role=db {db_node}"));

    let deploy = Instant::now();
    project.ok_on(manager, &["deploy", "staging", "--allow-dirty"]);
    eprintln!("swarm deploy of 3+3+1 replicas took {:?}", deploy.elapsed());
    for service in ["web", "app"] {
        assert_eq!(
            running_nodes(manager, &name, service).len(),
            3,
            "{service}: replicas not spread over the three machines"
        );
        assert!(
            !manager
                .exec(&format!(
                    "docker service ps {name}_{service} --format '{{{{.Error}}}}'"
                ))
                .contains("No such image"),
            "{service}: a node could not find the image"
        );
    }
    // Every node runs the built image and serves what the build wrote.
    for vm in &vms {
        let served = vm.exec(&format!(
            "docker ps -q --filter label=com.docker.swarm.service.name={name}_app | head -n1 | xargs -I@ docker exec @ cat /var/www/version"
        ));
        assert_eq!(served.trim(), format!("built-{name}"), "on {}", vm.ip());
    }
    assert_eq!(
        running_nodes(manager, &name, "db"),
        std::collections::BTreeSet::from([db_node.clone()]),
        "the database is not on the node labelled role=db"
    );
    // `STACK_SWARM_ENCRYPT=true`: the project's overlay encrypts its traffic.
    let options = manager.exec(&format!(
        "docker network inspect {name}_default --format '{{{{json .Options}}}}'"
    ));
    assert!(options.contains(r#""encrypted":"true""#), "{options}");
    eprintln!("test took {:?}", began.elapsed());
}

const CADDY: &str = "stack-test/caddy:latest";
const ROUTE_HOST: &str = "web.localhost";

/// One GET of `/` at `ip:80` with the route's Host header.
fn get(ip: &str) -> Result<String, String> {
    let address = format!("{ip}:80").parse().map_err(|e| format!("{e}"))?;
    common::http_get(address, ROUTE_HOST)
}

/// Item 4 of #13: without the routing mesh (no IPVS in this kernel), the proxy publishes
/// port 80 in host mode on the node that runs it (the manager: it bind-mounts the
/// release's Caddyfile), services find each other by DNS round robin, and a rolling
/// update of two replicas on two machines, through the proxy, drops no request.
#[test]
fn swarm_proxy_in_host_mode_rolls_two_nodes_without_dropping() {
    let began = Instant::now();
    let (_network, vms) = machines("hostmode", 2, &[BUSYBOX, CADDY]);
    let manager = &vms[0];
    let name = format!("vmhost-{}", std::process::id());
    let project = Project::new(
        &name,
        &format!(
            "STACK_TARGET=swarm\nSTACK_SWARM_PUBLISH=host\nSTACK_PROXY=caddy\n\
             STACK_PROXY_IMAGE={CADDY}\nSTACK_SERVICES=web\nSTACK_HEALTH_TIMEOUT=90s\n\
             SERVICE_WEB_IMAGE={BUSYBOX}\n\
             SERVICE_WEB_COMMAND=sh -c 'trap \"exit 0\" TERM; echo v$$VERSION > /tmp/index.html; httpd -f -p 8080 -h /tmp & wait'\n\
             SERVICE_WEB_ENV_VERSION=1\nSERVICE_WEB_PORT=8080\nSERVICE_WEB_ROUTE={ROUTE_HOST}\n\
             SERVICE_WEB_REPLICAS=2\nSERVICE_WEB_HEALTH=/\nSERVICE_WEB_HEALTH_INTERVAL=1s\n"
        ),
    );
    form_swarm(&project, &vms);
    project.ok_on(manager, &["deploy", "staging", "--allow-dirty"]);
    assert_eq!(
        running_nodes(manager, &name, "web").len(),
        2,
        "the two replicas are not on two machines"
    );
    let proxy_nodes = running_nodes(manager, &name, "proxy");
    let manager_name = manager.exec("hostname").trim().to_string();
    assert_eq!(
        proxy_nodes,
        std::collections::BTreeSet::from([manager_name]),
        "the proxy is not on the manager"
    );
    let ip = manager.ip();
    eventually_ok(
        &format!("the proxy to answer v1 on {ip}:80"),
        Duration::from_secs(60),
        || match get(&ip) {
            Ok(version) if version == "v1" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );

    // A rolling update under a bounded request loop (at most 3000 requests or 120 s).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, ip) = (stop.clone(), ip.clone());
        std::thread::spawn(move || {
            let (mut ok, mut failed, mut versions) =
                (0, Vec::new(), std::collections::BTreeSet::new());
            let until = Instant::now() + Duration::from_secs(120);
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && Instant::now() < until
                && ok + failed.len() < 3000
            {
                match get(&ip) {
                    Ok(version) => {
                        ok += 1;
                        versions.insert(version);
                    }
                    Err(e) => failed.push(e),
                }
                // The load's pace (the scenario), not a wait.
                std::thread::sleep(Duration::from_millis(20));
            }
            (ok, failed, versions)
        })
    };
    let out = project.on(
        manager,
        &[
            "deploy",
            "staging",
            "--allow-dirty",
            "--set",
            "SERVICE_WEB_ENV_VERSION=2",
        ],
    );
    // The load runs on for 2 s after the update returned: the window the scenario
    // observes, not a wait for a state.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed, versions) = load.join().unwrap();
    assert!(
        out.status.success(),
        "the update failed:\n{}",
        text(&out.stderr)
    );
    eprintln!(
        "rolling update on two machines: {ok} answered, {} failed, versions {versions:?}",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(
        get(&ip).as_deref(),
        Ok("v2"),
        "the update did not reach the proxy"
    );
    assert!(versions.contains("v2"), "{versions:?}");

    // A worker leaves in the middle of a deploy (its machine is killed while the update
    // to v3 runs): its task is rescheduled on the manager, the service keeps answering
    // through the proxy, and the deploy ends, one way or the other, and says which.
    let worker = &vms[1];
    let update_before = update_started(manager, &project.name);
    let running = project.spawn_on(
        manager,
        &[
            "deploy",
            "staging",
            "--allow-dirty",
            "--set",
            "SERVICE_WEB_ENV_VERSION=3",
        ],
    );
    // The worker leaves once the swarm has begun rolling this update out.
    eventually(
        "the swarm to start updating `web` to v3",
        Duration::from_secs(120),
        || update_started(manager, &project.name) != update_before,
    );
    common::docker(&["kill", &worker.name]);
    let left = Instant::now();
    let (mut ok, mut failed) = (0, Vec::new());
    // 40 s of requests at a steady pace after the worker left: the scenario's window.
    while left.elapsed() < Duration::from_secs(40) {
        match get(&ip) {
            Ok(_) => ok += 1,
            Err(e) => failed.push(e),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "with a worker gone mid-deploy: {ok} answered, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} requests failed after the worker left: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    let out = wait_output(running, Duration::from_secs(150));
    eprintln!(
        "deploy with a node leaving: exit {:?}\n{}",
        out.status.code(),
        text(&out.stderr)
    );
    match out.status.code() {
        Some(0) => assert_eq!(
            get(&ip).as_deref(),
            Ok("v3"),
            "deployed, but not serving v3"
        ),
        Some(1) | Some(3) => assert!(
            text(&out.stderr).contains("error"),
            "a failed deploy that says nothing:\n{}",
            text(&out.stderr)
        ),
        other => panic!("deploy exit {other:?}:\n{}", text(&out.stderr)),
    }
    eprintln!("test took {:?}", began.elapsed());
}

/// With a `.deb` (`--package`, from `scripts/build-deb.sh`), `stack server setup`
/// installs it with apt instead of copying the binary: `/usr/bin/stack` from the package,
/// its man pages, and no `/usr/local/bin/stack` shadowing it; a second run changes
/// nothing. Set `STACK_BINARY` to package a static binary already built (the script
/// builds one otherwise).
#[test]
fn server_setup_installs_the_deb_when_given_one() {
    let built = std::process::Command::new(common::repo_root().join("scripts/build-deb.sh"))
        .current_dir(common::repo_root())
        .output()
        .expect("run scripts/build-deb.sh");
    assert!(built.status.success(), "{}", text(&built.stderr));
    let deb = text(&built.stdout).trim().to_string();
    let vm = Vm::boot("setupdeb", "stack-test/vm-docker:latest");
    // What an older setup left: a copied binary that would shadow the package's. The
    // image drops man pages (dpkg path-exclude, as Debian's container images): lifted.
    vm.exec("rm -f /etc/dpkg/dpkg.cfg.d/docker-slim");
    vm.exec(
        "printf '#!/bin/sh\\necho old\\n' > /usr/local/bin/stack && chmod 755 /usr/local/bin/stack",
    );
    let name = format!("vmdeb-{}", std::process::id());
    let project = Project::new(
        &name,
        &format!(
            "STACK_PROXY=none\nSTACK_SERVICES=web\n{}",
            httpd_service("web", "")
        ),
    );
    project.target(&vm, "root");
    let args = ["server", "setup", "staging", "--package", deb.as_str()];
    let (_, first) = ok(project.on(&vm, &args), "setup --package");
    assert!(first.contains("stack package"), "{first}");
    assert_eq!(
        vm.exec("dpkg-query -W -f='${db:Status-Status} ${Version}' stack"),
        format!("installed {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(vm
        .exec("command -v stack && stack --version")
        .starts_with("/usr/bin/stack\nstack "));
    assert_eq!(
        vm.run("test -e /usr/local/bin/stack").status.code(),
        Some(1),
        "the old copy is gone"
    );
    vm.exec("test -s /usr/share/man/man1/stack-server-setup.1.gz");
    let (_, second) = ok(project.on(&vm, &args), "setup --package again");
    assert!(second.contains("nothing to change"), "{second}");
}
