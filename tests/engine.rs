//! Integration tests against a real Docker Engine, through the `stack` binary.
//!
//! Needs a running dockerd (`scripts/ensure-docker.sh`) and the local test images
//! (`scripts/build-test-images.sh`). When the engine is unreachable these tests FAIL with a
//! clear message rather than skip: CI starts dockerd, so a missing engine is a setup bug.
//!
//! Every test writes its own project into a temp dir with a unique `STACK_PROJECT`
//! (`t-<test>-<pid>`), so the tests run in parallel, and a [`Project`] guard runs
//! `stack down --volumes` when the test ends, passed or failed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use common::{docker, eventually, free_port, inspect, text, Project};

mod common;

use common::engine::BUSYBOX;
const CADDY: &str = "stack-test/caddy:latest";
const HTTPD: &str = "httpd -f -p 8080 -h /var/www";

/// Fail the test with a clear message when the engine or the test images are missing.
fn require_engine() {
    common::require_engine(&[BUSYBOX, CADDY]);
}

/// A busybox httpd service with an HTTP health check on `/health` every second.
fn httpd_service(name: &str) -> String {
    common::engine::httpd_service(name, HTTPD)
}

impl Project {
    /// A project `t-<test>-<pid>` whose project file is `STACK_TLS=off`, then `body`.
    fn new(test: &str, body: &str) -> Project {
        require_engine();
        let project = Project::named("t", test);
        project.write(&format!("STACK_TLS=off\n{body}"));
        project
    }

    /// Write the project file again: `STACK_TLS=off`, then `body`.
    fn rewrite(&self, body: &str) {
        self.write(&format!("STACK_TLS=off\n{body}"));
    }
}

fn three_services() -> String {
    format!(
        "STACK_PROXY=none\nSTACK_SERVICES=db,api,web\n{}{}SERVICE_API_DEPENDS_ON=db\n{}SERVICE_WEB_DEPENDS_ON=api\n",
        httpd_service("db"),
        httpd_service("api"),
        httpd_service("web")
    )
}

// (a) + (b) + (c)
#[test]
fn cold_start_labels_noop_and_targeted_recreate() {
    let p = Project::new("cold", &three_services());
    let started = Instant::now();
    p.ok(&["start"]);
    eprintln!("cold start took {:?}", started.elapsed());

    let names: Vec<String> = p.containers().into_iter().map(|(n, _)| n).collect();
    let mut want: Vec<String> = ["api", "db", "web"]
        .iter()
        .map(|s| p.container(s))
        .collect();
    want.sort();
    assert_eq!(names, want);
    for service in ["db", "api", "web"] {
        let c = p.container(service);
        assert_eq!(inspect(&c, "{{.State.Status}}"), "running");
        let label = |key: &str| inspect(&c, &format!("{{{{index .Config.Labels \"{key}\"}}}}"));
        assert_eq!(label("com.docker.compose.project"), p.name);
        assert_eq!(label("com.docker.compose.service"), service);
        assert_eq!(label("com.docker.compose.container-number"), "1");
        assert_eq!(label("com.docker.compose.oneoff"), "False");
        let hash = label("com.docker.compose.config-hash");
        assert!(
            !hash.is_empty() && hash != "<no value>",
            "{c}: no config-hash label"
        );
    }
    // Dependents started after their dependencies (which stack found ready first: its own
    // probe answers before Docker's first check, one interval after the start, so Docker
    // is waited for here).
    // RFC 3339 with trailing zeros of the fraction trimmed: pad it before comparing.
    let started_at = |s: &str| {
        let at = inspect(&p.container(s), "{{.State.StartedAt}}");
        let at = at.trim_end_matches('Z');
        let (whole, fraction) = at.split_once('.').unwrap_or((at, ""));
        format!("{whole}.{fraction:0<9}")
    };
    assert!(
        started_at("db") <= started_at("api"),
        "api started before db"
    );
    assert!(
        started_at("api") <= started_at("web"),
        "web started before api"
    );
    wait_docker_healthy(&[p.container("db")]);

    // (b) a second start changes nothing.
    let before = p.containers();
    let out = p.ok(&["start"]);
    assert_eq!(p.containers(), before, "a no-op start replaced containers");
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(
        all.contains("0 change"),
        "no-op start reported changes:\n{all}"
    );

    // (c) one service's env changes: only that one is recreated.
    let (db, api, web) = (p.id_of("db"), p.id_of("api"), p.id_of("web"));
    p.ok(&["start", "--set", "SERVICE_API_ENV_FOO=2"]);
    assert_eq!(p.id_of("db"), db, "db was recreated");
    assert_eq!(p.id_of("web"), web, "web was recreated");
    let new_api = p.id_of("api");
    assert_ne!(new_api, api, "api was not recreated");
    let env = inspect(&new_api, "{{json .Config.Env}}");
    assert!(env.contains("\"FOO=2\""), "api env: {env}");
    assert_eq!(p.containers().len(), 3, "{:?}", p.containers());
}

// (d)
#[test]
fn failing_health_check_exits_1_naming_the_service() {
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=sick\nSTACK_HEALTH_TIMEOUT=10s\n\
         SERVICE_SICK_IMAGE={BUSYBOX}\nSERVICE_SICK_COMMAND={HTTPD}\n\
         SERVICE_SICK_HEALTH_CMD=false\nSERVICE_SICK_HEALTH_INTERVAL=1s\nSERVICE_SICK_HEALTH_RETRIES=1\n"
    );
    let p = Project::new("sick", &body);
    let out = p.run(&["start"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("sick"),
        "stderr does not name the service:\n{stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("health"),
        "stderr does not mention health:\n{stderr}"
    );
}

// (e)
#[test]
fn unpullable_image_is_an_outside_failure() {
    let body =
        "STACK_PROXY=none\nSTACK_SERVICES=ghost\nSERVICE_GHOST_IMAGE=stack-test/does-not-exist:1\n";
    let p = Project::new("pull", body);
    let out = p.run(&["start"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    assert!(
        stderr.contains("ghost"),
        "stderr does not name the service:\n{stderr}"
    );
    assert!(
        stderr.contains("stack-test/does-not-exist"),
        "stderr does not name the image:\n{stderr}"
    );
    assert!(p.containers().is_empty(), "{:?}", p.containers());
}

// (f)
#[test]
fn orphan_service_is_removed() {
    let both = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web,old\n{}{}",
        httpd_service("web"),
        httpd_service("old")
    );
    let p = Project::new("orphan", &both);
    p.ok(&["start"]);
    assert_eq!(p.containers().len(), 2, "{:?}", p.containers());
    let web = p.id_of("web");
    p.rewrite(&format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web\n{}",
        httpd_service("web")
    ));
    p.ok(&["start"]);
    let names: Vec<String> = p.containers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec![p.container("web")], "the orphan is still there");
    assert_eq!(p.id_of("web"), web, "web was recreated");
}

// (g)
#[test]
fn down_keeps_volumes_unless_asked() {
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web\n{}SERVICE_WEB_VOLUMES=data:/data\n\
         SERVICE_WEB_COMMAND=sh -c 'echo hello > /data/f; exec {HTTPD}'\n",
        httpd_service("web")
    );
    let p = Project::new("vol", &body);
    p.ok(&["start"]);
    let c = p.container("web");
    let volume = format!("{}_data", p.name);
    assert!(
        docker(&["volume", "inspect", &volume]).status.success(),
        "volume {volume} missing"
    );
    // A marker written after start (the command would rewrite /data/f itself).
    let w = docker(&["exec", &c, "sh", "-c", "echo kept > /data/marker"]);
    assert!(w.status.success(), "{}", text(&w.stderr));

    p.ok(&["down"]);
    assert!(p.containers().is_empty(), "{:?}", p.containers());
    assert!(
        docker(&["volume", "inspect", &volume]).status.success(),
        "down removed {volume}"
    );

    p.ok(&["start"]);
    let f = docker(&["exec", &c, "cat", "/data/f"]);
    assert_eq!(text(&f.stdout).trim(), "hello", "{}", text(&f.stderr));
    let m = docker(&["exec", &c, "cat", "/data/marker"]);
    assert_eq!(
        text(&m.stdout).trim(),
        "kept",
        "volume data lost: {}",
        text(&m.stderr)
    );

    p.ok(&["down", "--volumes"]);
    assert!(
        !docker(&["volume", "inspect", &volume]).status.success(),
        "{volume} survived down --volumes"
    );
}

// (h)
#[test]
fn debian_docker_compose_sees_the_containers() {
    let p = Project::new(
        "compose",
        &format!(
            "STACK_PROXY=none\nSTACK_SERVICES=web\n{}",
            httpd_service("web")
        ),
    );
    p.ok(&["start"]);
    let yml = std::fs::read_to_string(p.bundle_dir("dev").join("docker-compose.yml")).unwrap();
    let copy: String = yml
        .lines()
        .filter(|l| !l.starts_with("name:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let copy_path = p.bundle_dir("dev").join("compose-v1.yml");
    std::fs::write(&copy_path, copy).unwrap();
    let out = StdCommand::new("docker-compose")
        .current_dir(p.bundle_dir("dev"))
        .args(["-p", &p.name, "-f"])
        .arg(&copy_path)
        .arg("ps")
        .output()
        .expect("docker-compose is installed (scripts/install-ci-deps.sh)");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "docker-compose ps failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains(&p.container("web")),
        "docker-compose ps does not list web:\n{stdout}"
    );
}

fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    http_get_as(port, "localhost", path, "")
}

/// GET `path` from `host` through loopback `port`, with `headers` (`Name: value\r\n` lines).
fn http_get_as(port: u16, host: &str, path: &str, headers: &str) -> std::io::Result<String> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), common::CONNECT_LIMIT)?;
    stream.set_read_timeout(Some(common::ANSWER_LIMIT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

// (i)
#[test]
fn routed_service_answers_through_caddy() {
    let http = free_port();
    let https = free_port();
    let body = format!(
        "STACK_PROXY=caddy\nSTACK_PROXY_IMAGE={CADDY}\nSTACK_HTTP_PORT={http}\nSTACK_HTTPS_PORT={https}\n\
         STACK_SERVICES=web\n{}SERVICE_WEB_ROUTE=localhost\n",
        httpd_service("web")
    );
    let p = Project::new("proxy", &body);
    p.ok(&["start"]);
    let response = p.wait_ok(
        &format!("a 200 through caddy on :{http}"),
        || match http_get(http, "/health") {
            Ok(response) if response.starts_with("HTTP/1.1 200") => Ok(response),
            Ok(response) => Err(response),
            Err(e) => Err(e.to_string()),
        },
    );
    assert!(response.contains("ok"), "{response}");
}

// (j)
#[test]
fn status_json_and_health_exit_codes() {
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web,api\n{}{}",
        httpd_service("web"),
        httpd_service("api")
    );
    let p = Project::new("status", &body);
    p.ok(&["start"]);
    let out = p.ok(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", text(&out.stdout)));
    let services: Vec<&str> = json["services"]
        .as_array()
        .expect("services array")
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert!(
        services.contains(&"web") && services.contains(&"api"),
        "{json}"
    );
    // `start` returns once its own HTTP probe answers; Docker's health check may still be
    // `starting` (see `health_right_after_start_is_healthy`), so wait for it here.
    wait_docker_healthy(&[p.container("web"), p.container("api")]);
    p.ok(&["health"]);

    p.ok(&["stop", "web"]);
    let out = p.run(&["health"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "health after stop web:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(all.contains("web"), "{all}");
}

fn wait_docker_healthy(containers: &[String]) {
    for c in containers {
        common::process::eventually_ok_or(
            &format!("Docker to call `{c}` healthy"),
            common::LIVE_LIMIT,
            || {
                let health = inspect(c, "{{.State.Health.Status}}");
                (health == "healthy").then_some(()).ok_or(health)
            },
            || {
                format!(
                    "last checks: {}\nlogs:\n{}",
                    inspect(c, "{{json .State.Health.Log}}"),
                    common::engine::last_logs(c)
                )
            },
        );
    }
}

// (j), the strict form: `stack start` said "every service ready", so `stack health` run
// straight after it should agree.
#[test]
fn health_right_after_start_is_healthy() {
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web\n{}",
        httpd_service("web")
    );
    let p = Project::new("health-now", &body);
    p.ok(&["start"]);
    let out = p.run(&["health"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "`stack health` right after a successful `stack start`:\n{}",
        text(&out.stderr)
    );
}

// (k)
#[test]
fn logs_are_prefixed_by_service() {
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web\n{}\
         SERVICE_WEB_COMMAND=sh -c 'for i in 1 2 3 4 5 6 7 8; do echo line$$i; done; exec {HTTPD}'\n",
        httpd_service("web")
    );
    let p = Project::new("logs", &body);
    p.ok(&["start"]);
    let out = p.ok(&["logs", "web", "--tail", "5"]);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 5, "--tail 5 printed:\n{stdout}");
    for line in &lines {
        assert!(
            line.starts_with("web-1"),
            "line without the `web-1` prefix: {line:?}"
        );
    }
    assert!(
        stdout.contains("line8") && !stdout.contains("line3"),
        "{stdout}"
    );
}

// (l)
#[test]
fn dry_run_creates_nothing() {
    let p = Project::new("dry", &three_services());
    let out = p.ok(&["start", "--dry-run"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("create"),
        "dry run printed no create action:\n{stdout}"
    );
    assert!(
        p.containers().is_empty(),
        "dry run created containers: {:?}",
        p.containers()
    );
    let net = docker(&["network", "inspect", &format!("{}_default", p.name)]);
    assert!(!net.status.success(), "dry run created the network");
}

// Ctrl-C during `start` leaves nothing the next `start` cannot converge.
#[test]
fn interrupted_start_converges_on_the_next_start() {
    // `slow` never becomes ready within the run, so the first start is still waiting
    // when it is interrupted.
    let waiting = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web,slow\nSTACK_HEALTH_TIMEOUT=60s\n{}\
         SERVICE_SLOW_IMAGE={BUSYBOX}\nSERVICE_SLOW_COMMAND={HTTPD}\n\
         SERVICE_SLOW_HEALTH_CMD=test -e /tmp/ready\nSERVICE_SLOW_HEALTH_INTERVAL=1s\n",
        httpd_service("web")
    );
    let p = Project::new("interrupt", &waiting);
    let running = p
        .command(&["start"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the slow container exists, so the interruption lands mid-convergence.
    eventually("the slow container to appear", common::LIVE_LIMIT, || {
        p.containers().iter().any(|(name, _)| name.contains("slow"))
    });
    let status = std::process::Command::new("kill")
        .args(["-INT", &running.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = running.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("interrupted"), "stderr:\n{stderr}");

    // The next start, with a health check that passes, converges and recreates only `slow`.
    let web_before = p.id_of("web");
    p.rewrite(&waiting.replace("test -e /tmp/ready", "true"));
    p.ok(&["start"]);
    assert_eq!(p.id_of("web"), web_before, "web must not be recreated");
    let health = p.run(&["health"]);
    assert_eq!(health.status.code(), Some(0), "{}", text(&health.stderr));
}

#[test]
fn status_and_health_agree_when_a_replica_is_missing() {
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web\n{}SERVICE_WEB_REPLICAS=2\n",
        httpd_service("web")
    );
    let p = Project::new("replicas-ready", &body);
    p.ok(&["start"]);
    let second = format!("{}-web-2", p.name);
    let removed = docker(&["rm", "-f", &second]);
    assert!(removed.status.success(), "{}", text(&removed.stderr));

    let out = p.ok(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let web = json["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "web")
        .unwrap_or_else(|| panic!("no web in {json}"));
    assert_eq!(
        web["ready"], false,
        "one of two replicas is not ready: {json}"
    );

    let out = p.run(&["health"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(all.contains("1 of 2 replicas"), "{all}");
}

/// The desired state of the project in `dir`, as a deploy saves it with a release.
fn write_release_state(dir: &Path) {
    let loaded = stack::config::load(dir, "dev", &[], &stack::config::Options::default(), |_| {
        None
    })
    .unwrap_or_else(|e| panic!("{}", e.render()));
    let bundle = dir.join(".stack").join("dev");
    let (_, desired) = stack::commands::bundle_of(&loaded.config, &bundle).unwrap();
    std::fs::write(
        bundle.join(stack::deploy::DESIRED_FILE),
        serde_json::to_vec(&desired).unwrap(),
    )
    .unwrap();
}

#[test]
fn supervise_honours_the_projects_health_timeout() {
    // The health check never passes and its start period keeps it `starting`, so only
    // STACK_HEALTH_TIMEOUT ends the wait (the hard-coded 300 s would outlast the test).
    let body = format!(
        "STACK_PROXY=none\nSTACK_HEALTH_TIMEOUT=3s\nSTACK_DRAIN=1s\nSTACK_SERVICES=slow\n\
         SERVICE_SLOW_IMAGE={BUSYBOX}\nSERVICE_SLOW_COMMAND=sleep 3600\n\
         SERVICE_SLOW_HEALTH_CMD=exit 1\nSERVICE_SLOW_HEALTH_INTERVAL=1s\n\
         SERVICE_SLOW_HEALTH_START_PERIOD=10m\n"
    );
    let p = Project::new("supervise-timeout", &body);
    p.ok(&["build"]);
    write_release_state(&p.dir);
    let bundle = p.bundle_dir("dev");
    let out = p.run(&["supervise", "--once", "--bundle", bundle.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not ready after 3s"), "{stderr}");
}

#[test]
fn container_attributes_are_applied() {
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=hardened,sidecar\n\
         STACK_LOG_MAX_SIZE=5m\nSTACK_LOG_MAX_FILES=2\n\
         SERVICE_HARDENED_IMAGE={BUSYBOX}\n\
         SERVICE_HARDENED_COMMAND=sleep 3600\n\
         SERVICE_HARDENED_USER=1000:1000\n\
         SERVICE_HARDENED_WORKDIR=/tmp\n\
         SERVICE_HARDENED_HOSTNAME=mail.example.com\n\
         SERVICE_HARDENED_GROUP_ADD=44,2001\n\
         SERVICE_HARDENED_CAP_DROP=ALL\n\
         SERVICE_HARDENED_CAP_ADD=NET_BIND_SERVICE\n\
         SERVICE_HARDENED_READ_ONLY=true\n\
         SERVICE_HARDENED_TMPFS=/tmp:size=16m,mode=1777\n\
         SERVICE_HARDENED_INIT=true\n\
         SERVICE_HARDENED_LABELS=com.example.team=payments\n\
         SERVICE_HARDENED_EXTRA_HOSTS=db.internal:10.0.0.5,gw.internal:host-gateway\n\
         SERVICE_HARDENED_SHM_MB=64\n\
         SERVICE_HARDENED_STOP_SIGNAL=int\n\
         SERVICE_HARDENED_STOP_GRACE=3s\n\
         SERVICE_HARDENED_ULIMITS=nofile=1024:2048\n\
         SERVICE_HARDENED_SYSCTLS=net.core.somaxconn=1024\n\
         SERVICE_HARDENED_ENV=discovery.type=single-node,http_proxy=http://proxy.internal:3128\n\
         SERVICE_HARDENED_DEVICES=/dev/zero:/dev/stack-zero:r\n\
         SERVICE_HARDENED_DNS=192.0.2.53\nSERVICE_HARDENED_DNS_SEARCH=corp.internal\n\
         SERVICE_HARDENED_DNS_OPT=ndots:3\nSERVICE_HARDENED_PIDS_LIMIT=64\n\
         SERVICE_HARDENED_MEMORY_RESERVATION_MB=32\nSERVICE_HARDENED_CPU_SHARES=512\n\
         SERVICE_HARDENED_CPUSET=0\nSERVICE_HARDENED_OOM_SCORE_ADJ=200\n\
         SERVICE_HARDENED_IPC=shareable\nSERVICE_HARDENED_DOMAINNAME=example.org\n\
         SERVICE_HARDENED_MAC_ADDRESS=02:42:ac:11:00:99\nSERVICE_HARDENED_RUNTIME=runc\n\
         SERVICE_SIDECAR_IMAGE={BUSYBOX}\nSERVICE_SIDECAR_COMMAND=sleep 3600\n\
         SERVICE_SIDECAR_NETWORK_MODE=service:hardened\nSERVICE_SIDECAR_PID=service:hardened\n\
         SERVICE_SIDECAR_IPC=service:hardened\n"
    );
    let p = Project::new("attrs", &body);
    p.ok(&["start"]);
    let c = p.container("hardened");
    let get = |format: &str| inspect(&c, format);
    assert_eq!(get("{{.State.Status}}"), "running");
    assert!(get("{{json .HostConfig.CapAdd}}").contains("NET_BIND_SERVICE"));
    assert_eq!(get("{{json .HostConfig.CapDrop}}"), r#"["ALL"]"#);
    assert_eq!(get("{{.HostConfig.ReadonlyRootfs}}"), "true");
    assert_eq!(
        get("{{json .HostConfig.Tmpfs}}"),
        r#"{"/tmp":"size=16m,mode=1777"}"#
    );
    assert_eq!(get("{{.HostConfig.Init}}"), "true");
    assert_eq!(
        get("{{.HostConfig.ShmSize}}"),
        (64 * 1024 * 1024).to_string()
    );
    let hosts = get("{{json .HostConfig.ExtraHosts}}");
    assert!(hosts.contains("db.internal:10.0.0.5"), "{hosts}");
    assert!(hosts.contains("gw.internal:host-gateway"), "{hosts}");
    assert_eq!(
        get("{{json .HostConfig.Ulimits}}"),
        r#"[{"Name":"nofile","Hard":2048,"Soft":1024}]"#
    );
    assert_eq!(
        get("{{json .HostConfig.Sysctls}}"),
        r#"{"net.core.somaxconn":"1024"}"#
    );
    assert_eq!(get("{{.HostConfig.LogConfig.Type}}"), "json-file");
    assert_eq!(
        get("{{json .HostConfig.LogConfig.Config}}"),
        r#"{"max-file":"2","max-size":"5m"}"#
    );
    assert_eq!(get("{{.Config.User}}"), "1000:1000");
    assert_eq!(get("{{.Config.WorkingDir}}"), "/tmp");
    assert_eq!(get("{{.Config.Hostname}}"), "mail.example.com");
    assert_eq!(
        get(r#"{{index .Config.Labels "com.example.team"}}"#),
        "payments"
    );
    assert_eq!(
        get(r#"{{index .Config.Labels "dev.stack.service"}}"#),
        "hardened"
    );
    assert_eq!(get("{{.Config.StopSignal}}"), "SIGINT");
    assert_eq!(get("{{.Config.StopTimeout}}"), "3");
    let env = get("{{json .Config.Env}}");
    assert!(env.contains("\"discovery.type=single-node\""), "{env}");
    assert!(
        env.contains("\"http_proxy=http://proxy.internal:3128\""),
        "{env}"
    );
    // And they take effect: the process runs as 1000 under an init, the root file
    // system refuses writes, the tmpfs takes them.
    let exec = |args: &[&str]| {
        let mut all = vec!["exec", c.as_str()];
        all.extend_from_slice(args);
        docker(&all)
    };
    assert_eq!(text(&exec(&["id", "-u"]).stdout).trim(), "1000");
    // `GROUP_ADD`: the process holds the supplementary groups besides its own.
    assert_eq!(get("{{json .HostConfig.GroupAdd}}"), r#"["44","2001"]"#);
    let groups = text(&exec(&["id", "-G"]).stdout);
    let groups: Vec<&str> = groups.split_whitespace().collect();
    assert_eq!(groups, ["1000", "44", "2001"]);
    assert!(!exec(&["touch", "/root-file"]).status.success());
    assert!(exec(&["touch", "/tmp/file"]).status.success());
    // `HOSTNAME` is the name inside the container, not only in its configuration.
    assert_eq!(text(&exec(&["hostname"]).stdout).trim(), "mail.example.com");
    let init = text(&exec(&["cat", "/proc/1/cmdline"]).stdout);
    assert!(
        init.contains("init"),
        "pid 1 is `{init}`, not docker's init"
    );
    host_attributes_are_applied(&c, &p.container("sidecar"));
}

/// `DEVICES`, `DNS*`, the cgroup knobs, `IPC`, `DOMAINNAME`, `MAC_ADDRESS`, `RUNTIME` on
/// `hardened`, and `sidecar` in its network, process and IPC namespaces: in the
/// container's configuration and in effect inside it.
fn host_attributes_are_applied(hardened: &str, sidecar: &str) {
    let get = |format: &str| inspect(hardened, format);
    let exec = |container: &str, script: &str| {
        let out = docker(&["exec", container, "sh", "-c", script]);
        (out.status.success(), text(&out.stdout).trim().to_string())
    };
    assert_eq!(
        get("{{json .HostConfig.Devices}}"),
        r#"[{"PathOnHost":"/dev/zero","PathInContainer":"/dev/stack-zero","CgroupPermissions":"r"}]"#
    );
    // The device is in the container and reads. (Whether its cgroup permission `r`
    // refuses a write depends on the host's device controller: this engine's does not
    // enforce it, so only the configuration above is asserted.)
    let read = exec(hardened, "head -c 4 /dev/stack-zero | wc -c");
    assert_eq!(read, (true, "4".to_string()));
    assert_eq!(get("{{json .HostConfig.Dns}}"), r#"["192.0.2.53"]"#);
    let resolv = exec(hardened, "cat /etc/resolv.conf").1;
    assert!(resolv.contains("search corp.internal"), "{resolv}");
    assert!(resolv.contains("ndots:3"), "{resolv}");
    assert_eq!(get("{{.HostConfig.PidsLimit}}"), "64");
    assert_eq!(
        get("{{.HostConfig.MemoryReservation}}"),
        (32 << 20).to_string()
    );
    assert_eq!(get("{{.HostConfig.CpuShares}}"), "512");
    assert_eq!(get("{{.HostConfig.CpusetCpus}}"), "0");
    assert_eq!(exec(hardened, "cat /proc/self/oom_score_adj").1, "200");
    assert_eq!(get("{{.HostConfig.IpcMode}}"), "shareable");
    assert_eq!(get("{{.Config.Domainname}}"), "example.org");
    assert_eq!(get("{{.HostConfig.Runtime}}"), "runc");
    let mac = exec(hardened, "cat /sys/class/net/eth0/address").1;
    assert_eq!(mac, "02:42:ac:11:00:99");
    // The sidecar has the hardened container's network (its MAC), processes (its init is
    // pid 1) and IPC namespace.
    let mode = inspect(sidecar, "{{.HostConfig.NetworkMode}}");
    assert!(mode.starts_with("container:"), "{mode}");
    assert_eq!(exec(sidecar, "cat /sys/class/net/eth0/address").1, mac);
    assert!(exec(sidecar, "cat /proc/1/cmdline").1.contains("init"));
    let ipc = |c: &str| exec(c, "readlink /proc/self/ns/ipc").1;
    assert_eq!(ipc(sidecar), ipc(hardened));
}

#[test]
fn build_target_and_arguments_reach_the_engine_build() {
    let p = Project::new(
        "buildargs",
        "STACK_PROXY=none\nSTACK_SERVICES=app\n\
         SERVICE_APP_BUILD=app\nSERVICE_APP_BUILD_TARGET=runtime\n\
         SERVICE_APP_BUILD_ARG_VERSION=1.2.3\nSERVICE_APP_COMMAND=sleep 3600\n",
    );
    let context = p.dir.join("app");
    std::fs::create_dir_all(&context).unwrap();
    // No `RUN`: this engine has no bridge for build containers. The last stage differs,
    // so only `BUILD_TARGET=runtime` yields `STAGE=runtime`.
    std::fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {BUSYBOX} AS runtime\nARG VERSION=unset\nENV VERSION=$VERSION STAGE=runtime\n\
             FROM runtime AS other\nENV STAGE=other\n"
        ),
    )
    .unwrap();
    p.ok(&["start"]);
    let c = p.container("app");
    let env = inspect(&c, "{{json .Config.Env}}");
    assert!(env.contains("\"VERSION=1.2.3\""), "{env}");
    assert!(env.contains("\"STAGE=runtime\""), "{env}");
}

// A context of the whole project (`BUILD=.`, `COPY . /ctx`) never carries stack's secret
// files into the image, even when `.dockerignore` re-includes everything; a warning names
// them (never their contents).
#[test]
fn build_context_of_the_project_leaves_its_secret_files_out() {
    let p = Project::new(
        "ctxsecrets",
        "STACK_PROXY=none\nSTACK_SERVICES=app\n\
         SERVICE_APP_BUILD=.\nSERVICE_APP_COMMAND=sleep 3600\n",
    );
    let files = [
        (".stack/prod/.env", "DB_PASSWORD=hunter2-bundle\n"),
        (
            "environments/prod/secrets.env",
            "DB_PASSWORD=hunter2-secrets\n",
        ),
        ("stack.local.env", "# API_TOKEN=hunter2-local\n"),
        ("backups/db-2024-01-01.dump", "hunter2-dump\n"),
        ("app/main.txt", "code\n"),
    ];
    for (rel, contents) in files {
        let path = p.dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    std::fs::write(p.dir.join(".dockerignore"), "!*\n!**\n!.stack\n!backups\n").unwrap();
    std::fs::write(
        p.dir.join("Dockerfile"),
        format!("FROM {BUSYBOX}\nCOPY . /ctx\n"),
    )
    .unwrap();
    let out = p.ok(&["start"]);
    let stderr = text(&out.stderr);
    let c = p.container("app");
    let listed = text(&docker(&["exec", &c, "find", "/ctx"]).stdout);
    assert!(listed.contains("/ctx/app/main.txt"), "{listed}");
    assert!(listed.contains("/ctx/stack.env"), "{listed}");
    for (rel, _) in &files[..4] {
        assert!(
            !listed.contains(&format!("/ctx/{rel}")),
            "{rel} in the image:\n{listed}"
        );
    }
    assert!(!listed.contains("/ctx/.stack"), "{listed}");
    assert!(!listed.contains("/ctx/backups"), "{listed}");
    let grep = docker(&["exec", &c, "grep", "-r", "hunter2", "/ctx"]);
    assert!(!grep.status.success(), "{}", text(&grep.stdout));
    for name in [
        "`.stack`",
        "`environments/prod/secrets.env`",
        "`stack.local.env`",
        "`backups`",
    ] {
        assert!(stderr.contains(name), "no warning naming {name}:\n{stderr}");
    }
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// `db` (an httpd), and `web` depending on it with a release command that records each
/// run, with the value of `VERSION` it saw, on a volume `web` shares, after reaching `db`.
fn released_project() -> String {
    format!(
        "STACK_PROXY=none\nSTACK_SERVICES=db,web\n{}{}\
         SERVICE_WEB_DEPENDS_ON=db\n\
         SERVICE_WEB_VOLUMES=data:/data\n\
         SERVICE_WEB_ENV_VERSION=1\n\
         SERVICE_WEB_RELEASE=sh -c 'wget -q -O /dev/null http://db:8080/health && echo migrating $$VERSION && echo $$VERSION >> /data/runs'\n",
        httpd_service("db"),
        httpd_service("web"),
    )
}

/// The lines the release command of [`released_project`] wrote.
fn release_runs(p: &Project) -> Vec<String> {
    let out = docker(&["exec", &p.id_of("web"), "cat", "/data/runs"]);
    text(&out.stdout).lines().map(String::from).collect()
}

/// One-off containers of the project left on the engine.
fn oneoffs(p: &Project) -> Vec<(String, String)> {
    p.containers()
        .into_iter()
        .filter(|(name, _)| {
            let rest = name.strip_prefix(&p.name).unwrap_or(name);
            rest.contains("-release-") || rest.contains("-run-")
        })
        .collect()
}

// A release command runs after its dependency is ready, before the new version starts,
// once per version, with the new configuration; its one-off container is gone after.
#[test]
fn release_command_runs_once_per_version() {
    let p = Project::new("release", &released_project());
    let out = p.ok(&["start", "--dry-run"]);
    assert!(
        text(&out.stdout).contains("web: run release command `sh -c"),
        "{}",
        text(&out.stdout)
    );
    let out = p.ok(&["start"]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("web release | migrating 1"), "{stderr}");
    assert_eq!(release_runs(&p), ["1"]);
    assert!(oneoffs(&p).is_empty(), "{:?}", oneoffs(&p));
    // Nothing changed: no second run.
    let out = p.ok(&["start"]);
    assert!(
        !text(&out.stderr).contains("release |"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(release_runs(&p), ["1"]);
    // A new configuration of `web`: it runs again and sees the new value.
    p.ok(&["start", "--set", "SERVICE_WEB_ENV_VERSION=2"]);
    assert_eq!(release_runs(&p), ["1", "2"]);
    assert!(oneoffs(&p).is_empty(), "{:?}", oneoffs(&p));
}

// A failing release command: exit 1 with its last lines, the old container untouched.
#[test]
fn failing_release_command_keeps_the_old_version() {
    let p = Project::new("release-fail", &released_project());
    p.ok(&["start"]);
    let before = p.id_of("web");
    let out = p.run(&[
        "start",
        "--set",
        "SERVICE_WEB_ENV_VERSION=2",
        "--set",
        "SERVICE_WEB_RELEASE=sh -c 'echo boom $$VERSION; exit 3'",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("exited 3"), "{stderr}");
    assert!(
        stderr.contains("  boom 2"),
        "no last lines in the error: {stderr}"
    );
    assert_eq!(p.id_of("web"), before, "the old container was replaced");
    assert_eq!(inspect(&before, "{{.State.Status}}"), "running");
    assert!(oneoffs(&p).is_empty(), "{:?}", oneoffs(&p));
}

// A release command that hangs is killed after RELEASE_TIMEOUT and counts as failed.
#[test]
fn hanging_release_command_is_stopped_after_its_timeout() {
    let p = Project::new("release-hang", &released_project());
    let out = p.run(&[
        "start",
        "--set",
        "SERVICE_WEB_RELEASE=sh -c 'echo waiting; sleep 300'",
        "--set",
        "SERVICE_WEB_RELEASE_TIMEOUT=3s",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("longer than its timeout (3s)"), "{stderr}");
    assert!(stderr.contains("web release | waiting"), "{stderr}");
    let web: Vec<_> = p
        .containers()
        .into_iter()
        .filter(|(n, _)| n.contains("-web-"))
        .collect();
    assert!(
        web.is_empty(),
        "the new version started, or the one-off stayed: {web:?}"
    );
}

/// Write `contents` to `path` under the project, executable (a CGI script for busybox httpd).
fn write_script(p: &Project, path: &str, contents: &str) {
    use std::os::unix::fs::PermissionsExt;
    let file = p.dir.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, contents).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Issue #8 item 6: networks separate services (a backend-only service cannot reach a
/// frontend-only one), an internal network is internal, and a secret arrives as a file
/// with its content and mode and never in the container's environment or any output.
#[test]
fn networks_and_secret_files_reach_the_running_containers() {
    let secret = "file-secret-5b1e0c7a";
    let serve = |name: &str, networks: &str| {
        format!(
            "{}SERVICE_{}_NETWORKS={networks}\n",
            httpd_service(name),
            name.to_uppercase()
        )
    };
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=front,api,db\n\
         STACK_NETWORKS=frontend,backend:internal\nSTACK_SECRETS=DB_PASSWORD\n\
         {}{}{}\
         SERVICE_API_SECRET_FILES=db_password=DB_PASSWORD\n\
         SERVICE_DB_SECRET_FILES=DB_PASSWORD\nSERVICE_DB_USER=1000\n",
        serve("front", "frontend"),
        serve("api", "frontend,backend"),
        serve("db", "backend"),
    );
    let p = Project::new("nets", &body);
    let secrets = p.dir.join("environments/dev/secrets.env");
    std::fs::create_dir_all(secrets.parent().unwrap()).unwrap();
    std::fs::write(&secrets, format!("DB_PASSWORD={secret}\n")).unwrap();
    let started = p.ok(&["start"]);
    let exec = |service: &str, command: &str| {
        docker(&["exec", &p.container(service), "sh", "-c", command])
    };
    // The secret: content and mode, readable by the service's user, not in the environment.
    let api = exec(
        "api",
        "cat /run/secrets/db_password; echo; stat -c %a /run/secrets/db_password",
    );
    assert_eq!(
        text(&api.stdout),
        format!("{secret}\n400\n"),
        "{}",
        text(&api.stderr)
    );
    let db = exec(
        "db",
        "id -u; cat /run/secrets/db_password; echo; stat -c %a /run/secrets/db_password",
    );
    assert_eq!(
        text(&db.stdout),
        format!("1000\n{secret}\n444\n"),
        "{}",
        text(&db.stderr)
    );
    for service in ["api", "db"] {
        let env = inspect(&p.container(service), "{{json .Config.Env}}");
        assert!(
            !env.contains(secret),
            "{service}'s environment shows the secret"
        );
    }
    let status = p.ok(&["status", "--json"]);
    for out in [&started, &status] {
        assert!(!text(&out.stdout).contains(secret) && !text(&out.stderr).contains(secret));
    }
    // Networks: the api reaches both sides; the database cannot reach the front end.
    let fetch = |from: &str, to: &str| {
        exec(
            from,
            &format!("timeout 3 wget -q -O - http://{to}:8080/health"),
        )
        .status
        .success()
    };
    assert!(fetch("api", "front"), "api cannot reach front");
    assert!(fetch("api", "db"), "api cannot reach db");
    assert!(fetch("front", "api"), "front cannot reach api");
    assert!(
        !fetch("db", "front"),
        "db (backend only) reaches front (frontend only)"
    );
    assert!(
        !fetch("front", "db"),
        "front (frontend only) reaches db (backend only)"
    );
    let internal = |network: &str| {
        let out = docker(&[
            "network",
            "inspect",
            "--format",
            "{{.Internal}}",
            &format!("{}_{network}", p.name),
        ]);
        text(&out.stdout).trim().to_string()
    };
    assert_eq!(internal("backend"), "true");
    assert_eq!(internal("frontend"), "false");
    // A second start changes nothing; down removes every network of the project.
    let ids: Vec<String> = ["front", "api", "db"].iter().map(|s| p.id_of(s)).collect();
    p.ok(&["start"]);
    let again: Vec<String> = ["front", "api", "db"].iter().map(|s| p.id_of(s)).collect();
    assert_eq!(ids, again, "a second start recreated containers");
    p.ok(&["down"]);
    for network in ["frontend", "backend", "default"] {
        let out = docker(&["network", "inspect", &format!("{}_{network}", p.name)]);
        assert!(!out.status.success(), "`{network}` is left after down");
    }
}

/// Issue #8 item 7: a route behind forward auth admits the request with the session cookie
/// (and passes the identity header on) and refuses the rest; a route behind basic auth
/// admits the password and refuses the rest — through Caddy and through nginx.
#[test]
fn routes_behind_forward_auth_and_basic_auth_through_both_proxies() {
    let hash = bcrypt::hash("open-sesame", 4).unwrap();
    for (proxy, image) in [("caddy", CADDY), ("nginx", "stack-test/nginx:latest")] {
        let http = free_port();
        let body = format!(
            "STACK_PROXY={proxy}\nSTACK_PROXY_IMAGE={image}\nSTACK_HTTP_PORT={http}\nSTACK_HTTPS_PORT={}\n\
             STACK_SERVICES=sso,app,admin\nSTACK_SECRETS=ADMIN_HASH\n\
             SERVICE_SSO_IMAGE={BUSYBOX}\nSERVICE_SSO_COMMAND=httpd -f -p 9091 -h /www\n\
             SERVICE_SSO_PORT=9091\nSERVICE_SSO_VOLUMES=./sso:/www:ro\n\
             SERVICE_APP_IMAGE={BUSYBOX}\nSERVICE_APP_COMMAND=httpd -f -p 8080 -h /www\n\
             SERVICE_APP_PORT=8080\nSERVICE_APP_VOLUMES=./app:/www:ro\n\
             SERVICE_APP_ROUTE=app.localhost\nSERVICE_APP_AUTH=sso:9091/cgi-bin/verify\n\
             SERVICE_APP_DEPENDS_ON=sso\n\
             SERVICE_ADMIN_IMAGE={BUSYBOX}\nSERVICE_ADMIN_COMMAND=httpd -f -p 8080 -h /www\n\
             SERVICE_ADMIN_PORT=8080\nSERVICE_ADMIN_VOLUMES=./app:/www:ro\n\
             SERVICE_ADMIN_ROUTE=admin.localhost\nSERVICE_ADMIN_BASIC_AUTH=admin:ADMIN_HASH\n",
            free_port()
        );
        let p = Project::new(&format!("gate-{proxy}"), &body);
        let secrets = p.dir.join("environments/dev/secrets.env");
        std::fs::create_dir_all(secrets.parent().unwrap()).unwrap();
        std::fs::write(&secrets, format!("ADMIN_HASH='{hash}'\n")).unwrap();
        // The identity provider admits one cookie; the app echoes who it was told it serves.
        write_script(
            &p,
            "sso/cgi-bin/verify",
            "#!/bin/sh\ncase \"$HTTP_COOKIE\" in\n*session=good*) printf 'Status: 200 OK\\r\\nRemote-User: alice\\r\\nContent-Type: text/plain\\r\\n\\r\\nok\\n' ;;\n*) printf 'Status: 401 Unauthorized\\r\\nContent-Type: text/plain\\r\\n\\r\\nlog in\\n' ;;\nesac\n",
        );
        write_script(
            &p,
            "app/cgi-bin/whoami",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nuser=%s\\n' \"$HTTP_REMOTE_USER\"\n",
        );
        p.ok(&["start"]);
        let get = |host: &str, headers: &str| -> String {
            p.wait_ok(
                &format!("{proxy}: an answer from {host}"),
                || match http_get_as(http, host, "/cgi-bin/whoami", headers) {
                    // 502/503/404 while the proxy finds the containers.
                    Ok(r) if !(r.starts_with("HTTP/1.1 50") || r.starts_with("HTTP/1.1 404")) => {
                        Ok(r)
                    }
                    other => Err(format!("{other:?}")),
                },
            )
        };
        let admitted = get("app.localhost", "Cookie: session=good\r\n");
        assert!(admitted.starts_with("HTTP/1.1 200"), "{proxy}: {admitted}");
        assert!(
            admitted.contains("user=alice"),
            "{proxy}: identity not passed on: {admitted}"
        );
        let refused = get("app.localhost", "Cookie: session=bad\r\n");
        assert!(refused.starts_with("HTTP/1.1 401"), "{proxy}: {refused}");
        let no_cookie = get("app.localhost", "");
        assert!(
            no_cookie.starts_with("HTTP/1.1 401"),
            "{proxy}: {no_cookie}"
        );
        use base64::Engine as _;
        let basic = |password: &str| {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"));
            get(
                "admin.localhost",
                &format!("Authorization: Basic {token}\r\n"),
            )
        };
        let ok = basic("open-sesame");
        assert!(ok.starts_with("HTTP/1.1 200"), "{proxy}: {ok}");
        let wrong = basic("guess");
        assert!(wrong.starts_with("HTTP/1.1 401"), "{proxy}: {wrong}");
        let none = get("admin.localhost", "");
        assert!(none.starts_with("HTTP/1.1 401"), "{proxy}: {none}");
    }
}

// `run`: a one-off container with the service's configuration, its exit code passed
// through, nothing left behind; `exec`: in the running container, its exit code too.
#[test]
fn run_and_exec_pass_the_exit_code_through() {
    let p = Project::new("run-exec", &released_project());
    p.ok(&["start"]);
    let out = p.run(&[
        "run",
        "web",
        "--",
        "sh",
        "-c",
        "echo version $VERSION; ls /data; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("version 1") && stdout.contains("runs"),
        "{stdout}"
    );
    assert!(oneoffs(&p).is_empty(), "{:?}", oneoffs(&p));
    let out = p.run(&["exec", "web", "--", "sh", "-c", "echo in $HOSTNAME; exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("in "),
        "{}",
        text(&out.stdout)
    );
    p.ok(&["exec", "web", "--replica", "1", "--", "true"]);
    let out = p.run(&["exec", "web", "--replica", "2", "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no running replica 2"),
        "{}",
        text(&out.stderr)
    );
    let out = p.run(&["logs", "web", "--since", "10m"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Issue #8 item 6, through the front door: a multi-service Compose file (local images) is
/// imported, started, and the running containers have what the file asked for — user,
/// capabilities, read-only root, tmpfs, a secret file (content and mode), networks that
/// separate — as the engine reports them. A service's own log options are the one thing
/// not carried (stack rotates every container's logs by project settings).
#[test]
fn an_imported_compose_file_runs_with_what_it_asked_for() {
    require_engine();
    let source = tempfile::tempdir().unwrap();
    let secret = "imported-secret-7c41";
    std::fs::write(source.path().join("db_password.txt"), secret).unwrap();
    std::fs::write(
        source.path().join("docker-compose.yml"),
        format!(
            r#"services:
  web:
    image: {BUSYBOX}
    command: ["httpd", "-f", "-p", "8080", "-h", "/var/www"]
    user: "1000:1000"
    cap_drop: [ALL]
    read_only: true
    tmpfs: ["/tmp:size=8m"]
    networks: [front, back]
    secrets: [db_password]
    logging:
      driver: json-file
      options: {{max-size: 5m, max-file: "2"}}
  db:
    image: {BUSYBOX}
    command: ["httpd", "-f", "-p", "8080", "-h", "/var/www"]
    networks: [back]
  edge:
    image: {BUSYBOX}
    command: ["httpd", "-f", "-p", "8080", "-h", "/var/www"]
    networks: [front]
networks:
  front: {{}}
  back:
    internal: true
secrets:
  db_password:
    file: ./db_password.txt
"#
        ),
    )
    .unwrap();
    let p = Project::named("t", "imported");
    let file = source.path().join("docker-compose.yml");
    let imported = p.ok(&["import", "compose", file.to_str().unwrap(), "."]);
    assert!(!text(&imported.stdout).contains(secret) && !text(&imported.stderr).contains(secret));
    assert!(
        text(&imported.stderr).contains("logging"),
        "{}",
        text(&imported.stderr)
    );
    // The imported project, under the test's project name and without a proxy.
    let body = std::fs::read_to_string(p.path("stack.env")).unwrap();
    assert!(
        !body.contains(secret),
        "stack.env holds the secret:\n{body}"
    );
    let body: String = body
        .lines()
        .filter(|l| !l.starts_with("STACK_PROJECT="))
        .map(|l| format!("{l}\n"))
        .collect();
    p.write(&format!("STACK_PROXY=none\n{body}"));
    p.ok(&["start"]);
    let web = p.container("web");
    let get = |format: &str| inspect(&web, format);
    assert_eq!(get("{{.Config.User}}"), "1000:1000");
    assert_eq!(get("{{json .HostConfig.CapDrop}}"), r#"["ALL"]"#);
    assert_eq!(get("{{.HostConfig.ReadonlyRootfs}}"), "true");
    assert!(get("{{json .HostConfig.Tmpfs}}").contains("/tmp"));
    // A json-file rotation becomes the project's (`STACK_LOG_MAX_SIZE`/`_FILES`, said at
    // import): the container rotates its log as the Compose file asked.
    assert_eq!(
        get("{{json .HostConfig.LogConfig.Config}}"),
        r#"{"max-file":"2","max-size":"5m"}"#
    );
    assert!(!get("{{json .Config.Env}}").contains(secret));
    let file = docker(&[
        "exec",
        &web,
        "sh",
        "-c",
        "cat /run/secrets/db_password; echo; stat -c %a /run/secrets/db_password",
    ]);
    assert_eq!(
        text(&file.stdout),
        format!("{secret}\n444\n"),
        "{}",
        text(&file.stderr)
    );
    let fetch = |from: &str, to: &str| {
        docker(&[
            "exec",
            &p.container(from),
            "timeout",
            "3",
            "wget",
            "-q",
            "-O",
            "/dev/null",
            &format!("http://{to}:8080/"),
        ])
        .status
        .success()
    };
    // The services' httpd may not listen yet right after `start` (no health check).
    p.wait_ok("web to reach db and edge", || {
        match (fetch("web", "db"), fetch("web", "edge")) {
            (true, true) => Ok(()),
            seen => Err(format!("web reaches (db, edge): {seen:?}")),
        }
    });
    assert!(
        !fetch("db", "edge"),
        "db (back only) reaches edge (front only)"
    );
}

/// Pulls and builds show bytes (a line per 10 % in CI) and `--json` totals them: a real
/// pull from a registry on this machine's loopback (the one test registry image), and a
/// build whose context holds 3 MB.
#[test]
fn pull_and_build_show_bytes_and_total_them_in_json() {
    require_engine();
    let port = free_port();
    let registry = format!("t-bytes-registry-{}", std::process::id());
    let started = docker(&[
        "run",
        "-d",
        "--rm",
        "--name",
        &registry,
        "-p",
        &format!("127.0.0.1:{port}:5000"),
        "stack-test/registry:2",
    ]);
    assert!(started.status.success(), "{}", text(&started.stderr));
    struct Gone(String, String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = docker(&["rm", "-f", "-v", &self.0]);
            let _ = docker(&["rmi", "-f", &self.1]);
        }
    }
    let reference = format!("127.0.0.1:{port}/t-bytes/noise:{}", std::process::id());
    let _gone = Gone(registry, reference.clone());
    // An image with 3 MB of noise, pushed and then gone from this engine.
    let noise_dir = tempfile::tempdir().unwrap();
    let noise = common::noise(
        3 << 20,
        0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id()),
    );
    std::fs::write(noise_dir.path().join("noise.bin"), &noise).unwrap();
    std::fs::write(
        noise_dir.path().join("Dockerfile"),
        format!("FROM {BUSYBOX}\nCOPY noise.bin /noise.bin\n"),
    )
    .unwrap();
    let dir = noise_dir.path().to_str().unwrap();
    eventually(
        &format!("the registry to answer on :{port}"),
        common::LIVE_LIMIT,
        || http_get(port, "/v2/").is_ok_and(|r| r.starts_with("HTTP/1.1 200")),
    );
    for args in [
        vec!["build", "-q", "-t", &reference, dir],
        vec!["push", &reference],
        vec!["rmi", &reference],
    ] {
        common::docker_ok(&args);
    }
    let p = Project::new("bytes", "");
    // The built image is named after the project, so the project's removal removes it.
    p.rewrite(&format!(
        "STACK_PROXY=none\nSTACK_SERVICES=noise,app\n\
         SERVICE_NOISE_IMAGE={reference}\nSERVICE_NOISE_COMMAND=sleep 3600\n\
         SERVICE_APP_BUILD=./app\nSERVICE_APP_IMAGE={}-app:dev\n",
        p.name
    ));
    std::fs::create_dir_all(p.dir.join("app")).unwrap();
    std::fs::write(p.dir.join("app/noise.bin"), &noise).unwrap();
    std::fs::write(
        p.dir.join("app/Dockerfile"),
        format!("FROM {BUSYBOX}\nCOPY noise.bin /noise.bin\nCMD [\"sleep\", \"3600\"]\n"),
    )
    .unwrap();
    let out = p.ok(&["start", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", text(&out.stdout)));
    let pulled = json["bytes"]["pulled"].as_u64().unwrap_or(0);
    let context = json["bytes"]["build_context"].as_u64().unwrap_or(0);
    assert!(pulled > 2 << 20, "pulled {pulled} bytes: {json}");
    assert!(context > 3 << 20, "build context {context} bytes: {json}");
    let stderr = text(&out.stderr);
    for line in ["noise: pulling: ", "app: sending context: "] {
        assert!(stderr.contains(line), "no `{line}` line:\n{stderr}");
    }
    // Lines per 10 %, not per chunk.
    let pull_lines = stderr.matches("noise: pulling: ").count();
    assert!(pull_lines <= 12, "{pull_lines} pull lines:\n{stderr}");
}

/// `STOP_GRACE` under a second or fractional reaches the engine rounded up to whole
/// seconds (the engine takes only seconds), never down to 0 (an immediate SIGKILL), and
/// the compose file carries the same duration.
#[test]
fn sub_second_stop_grace_reaches_the_engine_rounded_up() {
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=quick,slow\n\
         SERVICE_QUICK_IMAGE={BUSYBOX}\nSERVICE_QUICK_COMMAND=sleep 3600\n\
         SERVICE_QUICK_STOP_GRACE=400ms\n\
         SERVICE_SLOW_IMAGE={BUSYBOX}\nSERVICE_SLOW_COMMAND=sleep 3600\n\
         SERVICE_SLOW_STOP_GRACE=1500ms\n"
    );
    let p = Project::new("grace", &body);
    p.ok(&["start"]);
    assert_eq!(
        inspect(&p.container("quick"), "{{.Config.StopTimeout}}"),
        "1"
    );
    assert_eq!(
        inspect(&p.container("slow"), "{{.Config.StopTimeout}}"),
        "2"
    );
    p.ok(&["build"]);
    let compose = std::fs::read_to_string(p.bundle_dir("dev").join("docker-compose.yml")).unwrap();
    assert!(compose.contains("stop_grace_period: 400ms"), "{compose}");
    assert!(compose.contains("stop_grace_period: 1500ms"), "{compose}");
}

/// An image without a shell (distroless-like: one static busybox at `/busybox`, no `/bin/sh`)
/// runs with exec-form `COMMAND` and `HEALTH_CMD`: Docker runs the check as `CMD`, and
/// stack's own probe execs the program directly. A shell form would fail here.
#[test]
fn exec_form_health_check_runs_in_an_image_without_a_shell() {
    require_engine();
    let p = Project::new(
        "execform",
        "STACK_PROXY=none\nSTACK_SERVICES=app\n\
         SERVICE_APP_BUILD=./app\n\
         SERVICE_APP_COMMAND=[\"/busybox\", \"sleep\", \"3600\"]\n\
         SERVICE_APP_HEALTH_CMD=[\"/busybox\", \"test\", \"-x\", \"/busybox\"]\n\
         SERVICE_APP_HEALTH_INTERVAL=1s\n",
    );
    let app = p.dir.join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::copy("/bin/busybox", app.join("busybox")).unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /busybox\n",
    )
    .unwrap();
    p.ok(&["start"]);
    let c = p.container("app");
    assert_eq!(
        inspect(&c, "{{json .Config.Healthcheck.Test}}"),
        r#"["CMD","/busybox","test","-x","/busybox"]"#
    );
    assert_eq!(
        inspect(&c, "{{json .Config.Cmd}}"),
        r#"["/busybox","sleep","3600"]"#
    );
    let compose = std::fs::read_to_string(p.bundle_dir("dev").join("docker-compose.yml")).unwrap();
    assert!(compose.contains("- CMD\n"), "{compose}");
    let image = inspect(&c, "{{.Config.Image}}");
    p.ok(&["down"]);
    let _ = docker(&["rmi", "-f", &image]);
}

/// The deploy's temporary registry answers only requests that log in with the deploy's
/// password: no password or a wrong one gets 401 for the API root, the catalogue and a
/// blob upload, so another account cannot pull the shipped layers or fill the disk.
#[test]
fn the_temporary_registry_refuses_requests_without_the_deploys_password() {
    const REGISTRY: &str = "stack-test/registry:2";
    common::require_engine(&[REGISTRY]);
    let project = format!("t-regauth-{}", std::process::id());
    let port = common::free_port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let statuses = runtime.block_on(async {
        let engine = stack::engine::Engine::connect().await.unwrap();
        let registry = engine
            .start_registry(&project, REGISTRY, (port, "t0ken", "the-deploys-password"))
            .await
            .unwrap();
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}/v2/");
        let status = |request: reqwest::RequestBuilder| async move {
            request.send().await.map(|r| r.status().as_u16()).ok()
        };
        // Wait until it serves the right password (it starts in the background).
        common::process::eventually_async(
            "the registry to answer the right password",
            common::LIVE_LIMIT,
            || {
                let ok = client
                    .get(&base)
                    .basic_auth("stack", Some("the-deploys-password"));
                async move { status(ok).await == Some(200) }
            },
        )
        .await;
        let statuses = vec![
            status(client.get(&base)).await,
            status(client.get(&base).basic_auth("stack", Some("guess"))).await,
            status(client.get(format!("{base}_catalog"))).await,
            status(client.post(format!("{base}{project}/fill/blobs/uploads/"))).await,
        ];
        drop(registry);
        statuses
    });
    let name = format!("name={project}-stack-registry");
    common::eventually(
        "the registry's container to remove itself",
        common::LIVE_LIMIT,
        || {
            text(&docker(&["ps", "-aq", "--filter", &name]).stdout)
                .trim()
                .is_empty()
        },
    );
    let _ = docker(&["volume", "rm", "-f", &format!("{project}-stack-registry")]);
    assert_eq!(statuses, vec![Some(401); 4]);
}

/// Secret values with `${FOO}`, `$`, both quotes and a backslash reach the container's
/// environment unchanged (stack reads them back from the bundle's `.env`), with `FOO` set
/// in stack's own environment.
#[test]
fn secrets_with_dollar_braces_and_quotes_reach_the_container_unchanged() {
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=box\nSTACK_SECRETS=T1,T2\n\
         SERVICE_BOX_IMAGE={BUSYBOX}\n\
         SERVICE_BOX_COMMAND=sleep 3600\n\
         SERVICE_BOX_ENV_T1=${{T1}}\n\
         SERVICE_BOX_ENV_T2=${{T2}}\n"
    );
    let p = Project::new("dollar", &body);
    std::fs::create_dir_all(p.dir.join("environments/dev")).unwrap();
    std::fs::write(
        p.dir.join("environments/dev/secrets.env"),
        "T1='a${FOO}b$c\"d'\nT2=\"it's $${FOO} \\\"q\\\" $$5 \\\\ end\"\n",
    )
    .unwrap();
    let out = common::process::run_within(
        p.command(&["start"]).env("FOO", "SUBSTITUTED"),
        common::process::RUN_LIMIT,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let env = inspect(&p.container("box"), "{{json .Config.Env}}");
    let env: Vec<String> = serde_json::from_str(&env).unwrap();
    assert!(env.contains(&"T1=a${FOO}b$c\"d".to_string()), "{env:?}");
    assert!(
        env.contains(&"T2=it's ${FOO} \"q\" $5 \\ end".to_string()),
        "{env:?}"
    );
}

/// A Compose file whose cache is a service named `redis` (a preset's name, the preset
/// off) imports with the name kept, and the app still reaches `redis:6379`.
#[test]
fn an_imported_service_named_redis_is_still_reached_as_redis() {
    const REDIS: &str = "stack-test/redis:7";
    common::require_engine(&[BUSYBOX, REDIS]);
    let p = Project::named("t", "redisname");
    let project = p.name.clone();
    std::fs::write(
        p.path("docker-compose.yml"),
        format!(
            "name: {project}\nservices:\n  app:\n    image: {BUSYBOX}\n    command: sleep 3600\n    \
             environment:\n      REDIS_URL: redis://redis:6379\n    depends_on: [redis]\n  \
             redis:\n    image: {REDIS}\n"
        ),
    )
    .unwrap();
    p.ok(&["import", "compose", "docker-compose.yml", "."]);
    let env = std::fs::read_to_string(p.path("stack.env")).unwrap();
    assert!(env.contains("SERVICE_REDIS_IMAGE="), "{env}");
    p.ok(&["start"]);
    let app = format!("{project}-app-1");
    // A real Redis answer through the name: `PING` gets `+PONG`.
    let reached = || {
        let out = docker(&["exec", &app, "sh", "-c", "echo PING | nc -w 2 redis 6379"]);
        text(&out.stdout).contains("+PONG")
    };
    p.wait("the app to reach redis:6379", reached);
}

/// The temporary registry's storage keeps only what a kept release uses: when it starts,
/// a tag whose release image the engine no longer has (its release was pruned) is deleted
/// and its layers collected; a kept release's tag stays.
#[test]
fn the_temporary_registry_prunes_tags_of_pruned_releases() {
    const REGISTRY: &str = "stack-test/registry:2";
    common::require_engine(&[REGISTRY, BUSYBOX]);
    let project = format!("t-regprune-{}", std::process::id());
    let _removed = common::Removed(project.clone());
    let repo = format!("{project}-web");
    let password = "the-deploys-password";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tags = runtime.block_on(async {
        let engine = stack::engine::Engine::connect().await.unwrap();
        let client = reqwest::Client::new();
        // Start a registry on a free port and wait until it serves the password.
        let start = |port: u16| {
            let engine = engine.clone();
            let (project, client) = (project.clone(), client.clone());
            async move {
                let registry = engine
                    .start_registry(&project, REGISTRY, (port, "t0ken", password))
                    .await
                    .unwrap();
                let base = format!("http://127.0.0.1:{port}/v2/");
                common::process::eventually_async(
                    "the registry to answer the password",
                    common::LIVE_LIMIT,
                    || {
                        let answer = client.get(&base).basic_auth("stack", Some(password)).send();
                        async move { answer.await.is_ok_and(|r| r.status().is_success()) }
                    },
                )
                .await;
                registry
            }
        };
        let port = free_port();
        let registry = start(port).await;
        for release in ["rel1", "rel2"] {
            let local = format!("{repo}:{release}");
            let pushed = format!("127.0.0.1:{port}/{project}/{repo}:{release}");
            engine.tag(BUSYBOX, &local).await.unwrap();
            engine.tag(BUSYBOX, &pushed).await.unwrap();
            engine.push(&pushed, password, |_, _| {}).await.unwrap();
            engine.untag(&pushed).await.unwrap();
        }
        drop(registry);
        let name = format!("name={project}-stack-registry");
        common::eventually("the first registry to end", common::LIVE_LIMIT, || {
            text(&docker(&["ps", "-aq", "--filter", &name]).stdout)
                .trim()
                .is_empty()
        });
        // Release rel1 is pruned: its image is gone from the engine.
        engine.untag(&format!("{repo}:rel1")).await.unwrap();
        let port = free_port();
        let registry = start(port).await;
        let list = client
            .get(format!(
                "http://127.0.0.1:{port}/v2/{project}/{repo}/tags/list"
            ))
            .basic_auth("stack", Some(password))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        drop(registry);
        common::eventually("the second registry to end", common::LIVE_LIMIT, || {
            text(&docker(&["ps", "-aq", "--filter", &name]).stdout)
                .trim()
                .is_empty()
        });
        list
    });
    assert!(tags.contains("\"rel2\""), "{tags}");
    assert!(!tags.contains("\"rel1\""), "{tags}");
}

/// A live Compose deployment moves to stack: `docker-compose up -d` runs the project with
/// data in a named volume; `stack import` + `stack start` replace Compose's containers
/// with stack's, the named volume is the same volume (the data is still there), and
/// `docker-compose ps` and `stack status` then describe the same containers.
#[test]
fn a_running_compose_project_is_adopted_with_its_volume() {
    common::require_engine(&[BUSYBOX]);
    common::require_tool("docker-compose");
    // Compose names the project after its folder, and so does `stack import`.
    let temp = tempfile::tempdir().unwrap();
    let project = format!("tadopt{}", std::process::id());
    let dir = temp.path().join(&project);
    std::fs::create_dir(&dir).unwrap();
    let _removed = common::Removed(project.clone());
    std::fs::write(
        dir.as_path().join("docker-compose.yml"),
        format!(
            "services:\n  web:\n    image: {BUSYBOX}\n    command: sh -c 'mkdir -p /www && \
             cat /data/seed > /www/index.html; exec httpd -f -p 8080 -h /www'\n    \
             volumes:\n      - data:/data\n    healthcheck:\n      test: [\"CMD\", \"test\", \
             \"-s\", \"/www/index.html\"]\n      interval: 1s\nvolumes:\n  data:\n"
        ),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let out = StdCommand::new("docker-compose")
            .current_dir(dir.as_path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    // Compose's deployment, with data written into its named volume.
    let volume = format!("{project}_data");
    docker(&[
        "volume",
        "create",
        "--label",
        &format!("com.docker.compose.project={project}"),
        "--label",
        "com.docker.compose.volume=data",
        &volume,
    ]);
    let seeded = docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/data"),
        BUSYBOX,
        "sh",
        "-c",
        "echo kept-by-the-volume > /data/seed",
    ]);
    assert!(seeded.status.success(), "{}", text(&seeded.stderr));
    compose(&["up", "-d"]);
    let before = text(
        &docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ])
        .stdout,
    );
    assert_eq!(before.lines().count(), 1, "compose's container: {before}");
    // The project's folder is named after it, so this is no `Project` (whose folder is
    // `project`): `_removed` removes it from the engine.
    let stack = |args: &[&str]| {
        let mut command = common::stack_command();
        command.current_dir(&dir).env("CI", "true").args(args);
        let out = common::process::run_within(&mut command, common::process::RUN_LIMIT);
        text(&common::succeeded(out, &format!("stack {}", args.join(" "))).stdout)
    };
    stack(&["import", "compose", "docker-compose.yml", "."]);
    // The project keeps Compose's project name, so the volume is the same one.
    let env = std::fs::read_to_string(dir.join("stack.env")).unwrap();
    assert!(env.contains(&format!("STACK_PROJECT={project}\n")), "{env}");
    stack(&["start"]);
    let after = text(
        &docker(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ])
        .stdout,
    );
    assert_eq!(after.lines().count(), 1, "{after}");
    assert!(
        !after.contains(before.trim()),
        "compose's container was not replaced"
    );
    let web = text(
        &docker(&[
            "ps",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ])
        .stdout,
    )
    .trim()
    .to_string();
    let served = text(&docker(&["exec", &web, "cat", "/www/index.html"]).stdout);
    assert_eq!(
        served.trim(),
        "kept-by-the-volume",
        "the data did not survive"
    );
    // Both tools see the same one container, running.
    let listed = compose(&["ps"]);
    assert!(listed.contains(&web) && listed.contains("Up"), "{listed}");
    let status = stack(&["--json", "status"]);
    assert!(status.contains(&web), "{status}");
}

/// `migrate` runs to completion on a named volume before `app` starts (`app` exits at
/// once when the file is missing); a second start does not run it again; a job that
/// exits 3 fails the start with exit 1, naming it, its exit code and its log.
#[test]
fn completed_dependency_runs_to_completion_first() {
    let job = |command: &str| {
        format!(
            "STACK_PROXY=none\nSTACK_SERVICES=app,migrate\n\
             SERVICE_MIGRATE_IMAGE={BUSYBOX}\n\
             SERVICE_MIGRATE_COMMAND=sh -c '{command}'\n\
             SERVICE_MIGRATE_VOLUMES=data:/data\nSERVICE_MIGRATE_RESTART=no\n\
             SERVICE_APP_IMAGE={BUSYBOX}\n\
             SERVICE_APP_COMMAND=sh -c 'test -f /data/ok && exec {HTTPD}'\n\
             SERVICE_APP_VOLUMES=data:/data\n\
             SERVICE_APP_DEPENDS_ON=migrate:completed\n"
        )
    };
    let p = Project::new("job", &job("sleep 1; echo done > /data/ok"));
    p.ok(&["start"]);
    let migrate = p.container("migrate");
    assert_eq!(inspect(&migrate, "{{.State.Status}}"), "exited");
    assert_eq!(inspect(&migrate, "{{.State.ExitCode}}"), "0");
    assert_eq!(inspect(&p.container("app"), "{{.State.Status}}"), "running");
    let at = |c: &str, field: &str| {
        let at = inspect(c, &format!("{{{{.State.{field}}}}}"));
        let at = at.trim_end_matches('Z').to_string();
        let (whole, fraction) = at.split_once('.').unwrap_or((&at, ""));
        format!("{whole}.{fraction:0<9}")
    };
    assert!(
        at(&migrate, "FinishedAt") <= at(&p.container("app"), "StartedAt"),
        "app started before migrate finished"
    );
    // `health` counts the job that exited with code 0 as ready.
    let health = p.run(&["health"]);
    assert_eq!(health.status.code(), Some(0), "{}", text(&health.stderr));

    // A job that completed in this version is not run again.
    let started = at(&migrate, "StartedAt");
    let out = p.ok(&["start"]);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(all.contains("0 change"), "second start:\n{all}");
    assert_eq!(at(&migrate, "StartedAt"), started, "migrate ran again");

    // A new version of the job that exits 3: the start fails naming it.
    p.rewrite(&job("echo migration broke; exit 3"));
    let out = p.run(&["start"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("`migrate`"), "stderr:\n{stderr}");
    assert!(stderr.contains("code 3"), "stderr:\n{stderr}");
    assert!(stderr.contains("migration broke"), "stderr:\n{stderr}");
}

/// Build `<project>-data:1`: the busybox test image with `VOLUME /data` (an anonymous
/// volume per container). The project's guard removes it (`<project>-*` images).
fn image_with_volume(p: &Project) -> String {
    let image = format!("{}-data:1", p.name);
    let mut build = StdCommand::new("docker")
        .args(["build", "-q", "-t", &image, "-"])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    build
        .stdin
        .take()
        .unwrap()
        .write_all(format!("FROM {BUSYBOX}\nVOLUME /data\n").as_bytes())
        .unwrap();
    let out = build.wait_with_output().unwrap();
    assert!(out.status.success(), "docker build: {}", text(&out.stderr));
    image
}

/// The anonymous volumes a container mounts, as `target=name` lines, sorted.
fn anonymous_mounts(container: &str) -> Vec<String> {
    let lines = inspect(
        container,
        "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Destination}}={{.Name}}\n{{end}}{{end}}",
    );
    let mut mounts: Vec<String> = lines.lines().map(str::to_string).collect();
    mounts.sort();
    mounts
}

#[test]
fn a_replaced_container_hands_its_anonymous_volumes_on_and_down_volumes_removes_them() {
    // `roll` is replaced start-new-first (it has a health check), `redo` stop-then-start.
    let body = |image: &str, version: u32| {
        format!(
            "STACK_PROXY=none\nSTACK_SERVICES=roll,redo\n\
             SERVICE_ROLL_IMAGE={image}\nSERVICE_ROLL_COMMAND={HTTPD}\nSERVICE_ROLL_PORT=8080\n\
             SERVICE_ROLL_HEALTH_CMD=true\nSERVICE_ROLL_HEALTH_INTERVAL=1s\n\
             SERVICE_ROLL_ENV_VERSION={version}\nSERVICE_ROLL_STOP_GRACE=1s\n\
             SERVICE_REDO_IMAGE={image}\nSERVICE_REDO_COMMAND=sleep 3600\n\
             SERVICE_REDO_STRATEGY=recreate\nSERVICE_REDO_STOP_GRACE=1s\n\
             SERVICE_REDO_ENV_VERSION={version}\n"
        )
    };
    let p = Project::new("anonvol", "");
    let image = image_with_volume(&p);
    p.write(&body(&image, 1));
    p.ok(&["start"]);
    let mut seen = Vec::new();
    for service in ["roll", "redo"] {
        let id = p.id_of(service);
        let w = docker(&["exec", &id, "sh", "-c", "echo kept > /data/marker"]);
        assert!(w.status.success(), "{}", text(&w.stderr));
        let mounts = anonymous_mounts(&id);
        assert_eq!(mounts.len(), 1, "{service}: {mounts:?}");
        seen.push((service, id, mounts));
    }

    p.write(&body(&image, 2));
    p.ok(&["start"]);
    for (service, old, mounts) in &seen {
        let id = p.id_of(service);
        assert_ne!(&id, old, "{service} was not replaced");
        assert_eq!(
            &anonymous_mounts(&id),
            mounts,
            "{service}: the new container has other anonymous volumes"
        );
        let m = docker(&["exec", &id, "cat", "/data/marker"]);
        assert_eq!(
            text(&m.stdout).trim(),
            "kept",
            "{service}: data in the image's VOLUME lost on replacement: {}",
            text(&m.stderr)
        );
    }

    p.ok(&["down", "--volumes"]);
    for (service, _, mounts) in &seen {
        for mount in mounts {
            let (_, volume) = mount.split_once('=').unwrap();
            assert!(
                !docker(&["volume", "inspect", volume]).status.success(),
                "{service}: anonymous volume {volume} survived down --volumes"
            );
        }
    }
    let label = format!("label=com.docker.compose.project={}", p.name);
    let left = docker(&["volume", "ls", "-q", "--filter", &label]);
    assert!(
        text(&left.stdout).trim().is_empty(),
        "{}",
        text(&left.stdout)
    );
}

/// The `actions` of a command's `--json` output.
fn actions_of(out: &std::process::Output) -> Vec<serde_json::Value> {
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)));
    json["actions"]
        .as_array()
        .unwrap_or_else(|| panic!("no actions: {json}"))
        .clone()
}

/// `(name, state)` of every container of the project.
fn states(p: &Project) -> Vec<(String, String)> {
    p.containers()
        .into_iter()
        .map(|(name, id)| (name, inspect(&id, "{{.State.Status}}")))
        .collect()
}

// The dry runs of `start`, `restart`, `stop`, one pass of `supervise` and `down` list
// exactly the actions the real runs then perform (each executor reports what it did), and
// change nothing.
#[test]
fn dry_runs_list_the_actions_the_commands_perform() {
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=web,api\n{}{}SERVICE_WEB_VOLUMES=data:/data\n",
        httpd_service("web"),
        httpd_service("api")
    );
    let p = Project::new("dry-runs", &body);
    let volume = format!("{}_data", p.name);
    let bundle = p.bundle_dir("dev");
    let bundle = bundle.to_str().unwrap();
    let scenarios: [(&str, &[&str]); 9] = [
        ("cold start", &["start"]),
        ("api changed", &["start", "--set", "SERVICE_API_ENV_FOO=2"]),
        ("restart api", &["restart", "api"]),
        ("restart all", &["restart"]),
        ("stop api", &["stop", "api"]),
        ("stop all", &["stop"]),
        // One pass of supervise converges the release's saved state: it starts the
        // stopped `web` and recreates `api` (its state has no FOO).
        (
            "supervise once",
            &["supervise", "--bundle", bundle, "--once"],
        ),
        ("down", &["down"]),
        ("down with volumes", &["down", "--volumes"]),
    ];
    for (scenario, args) in scenarios {
        if args[0] == "supervise" {
            write_release_state(&p.dir);
        }
        let before = states(&p);
        let mut dry = vec!["--json"];
        dry.extend_from_slice(args);
        dry.push("--dry-run");
        let planned = actions_of(&p.ok(&dry));
        assert_eq!(
            states(&p),
            before,
            "{scenario}: the dry run changed the engine"
        );
        let mut real = vec!["--json"];
        real.extend_from_slice(args);
        let done = actions_of(&p.ok(&real));
        assert_eq!(planned, done, "{scenario}: the dry run and the run differ");
        // The last scenario has no container left to remove, only the volume.
        assert!(!done.is_empty(), "{scenario}: nothing done");
    }
    assert!(p.containers().is_empty(), "{:?}", p.containers());
    assert!(
        !docker(&["volume", "inspect", &volume]).status.success(),
        "{volume} survived down --volumes"
    );
}

// A change of a service's routes alone (its host or path) is the proxy's configuration,
// not the service's container: the dry run plans one action, the proxy's reload in place,
// the real run performs exactly that, and afterwards the routed service runs in the same
// container while the new route answers (issue 22, item 5).
#[test]
fn a_route_change_reloads_the_proxy_and_keeps_the_service() {
    let http = free_port();
    let https = free_port();
    let body = |route: &str| {
        format!(
            "STACK_PROXY=caddy\nSTACK_PROXY_IMAGE={CADDY}\nSTACK_HTTP_PORT={http}\nSTACK_HTTPS_PORT={https}\n\
             STACK_SERVICES=web\n{}SERVICE_WEB_ROUTE={route}\n",
            httpd_service("web")
        )
    };
    let p = Project::new("route-change", &body("one.localhost"));
    p.ok(&["start"]);
    let answers = |host: &str| {
        let host = host.to_string();
        common::process::eventually_ok_or(
            &format!("a 200 from `{host}` through caddy on :{http}"),
            Duration::from_secs(60),
            || match http_get_as(http, &host, "/health", "") {
                Ok(response) if response.starts_with("HTTP/1.1 200") => Ok(()),
                failed => Err(format!("{failed:?}")),
            },
            || common::engine::project_logs(&p.name),
        )
    };
    answers("one.localhost");
    // Caddy's reload hands the connections queued in its old socket to the new one
    // instead of resetting them, where the kernel can (Linux 5.14).
    let handover = inspect(
        &p.container("proxy"),
        r#"{{index .HostConfig.Sysctls "net.ipv4.tcp_migrate_req"}}"#,
    );
    let kernel_has_it = std::path::Path::new("/proc/sys/net/ipv4/tcp_migrate_req").exists();
    assert_eq!(handover == "1", kernel_has_it, "{handover}");
    let before = p.containers();
    p.rewrite(&body("two.localhost"));
    let planned = actions_of(&p.ok(&["--json", "start", "--dry-run"]));
    assert_eq!(p.containers(), before, "the dry run changed the engine");
    assert_eq!(
        planned,
        vec![serde_json::json!({"action": "reload", "service": "proxy"})],
        "the dry run of a route change"
    );
    let done = actions_of(&p.ok(&["--json", "start"]));
    assert_eq!(planned, done, "the dry run and the run differ");
    assert_eq!(
        p.containers(),
        before,
        "a route change recreated a container (the routed service or the proxy)"
    );
    answers("two.localhost");
    // The old host is no longer routed (Caddy answers an unknown host with an empty 200
    // or refuses it; either way not the service's `ok`).
    let old = http_get_as(http, "one.localhost", "/health", "").unwrap_or_default();
    let old_body = old.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    assert!(!old_body.contains("ok"), "{old}");
    // Nothing left to do: the proxy read its files.
    let again = actions_of(&p.ok(&["--json", "start", "--dry-run"]));
    assert!(again.is_empty(), "{again:?}");
}

/// `NETWORK_MODE` `host`, `none` and `bridge` run on the engine: the host's network
/// (its httpd answers on the host's loopback), no network but loopback, the engine's
/// default bridge with a published port; none of them joins a network of the project,
/// which is not created. `CGROUP=host` reaches the engine too.
#[test]
fn network_modes_host_none_and_bridge_run_live() {
    let (host_port, bridge_port) = (free_port(), free_port());
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=onhost,isolated,bridged\n\
         SERVICE_ONHOST_IMAGE={BUSYBOX}\nSERVICE_ONHOST_COMMAND=httpd -f -p 127.0.0.1:{host_port} -h /var/www\n\
         SERVICE_ONHOST_NETWORK_MODE=host\nSERVICE_ONHOST_CGROUP=host\n\
         SERVICE_ISOLATED_IMAGE={BUSYBOX}\nSERVICE_ISOLATED_COMMAND=sleep 3600\n\
         SERVICE_ISOLATED_NETWORK_MODE=none\nSERVICE_ISOLATED_PULL_POLICY=never\n\
         SERVICE_BRIDGED_IMAGE={BUSYBOX}\nSERVICE_BRIDGED_COMMAND={HTTPD}\n\
         SERVICE_BRIDGED_NETWORK_MODE=bridge\nSERVICE_BRIDGED_PUBLISH=127.0.0.1:{bridge_port}:8080\n"
    );
    let p = Project::new("netmodes", &body);
    p.ok(&["start"]);
    let networks = |service: &str| {
        inspect(
            &p.container(service),
            "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}",
        )
    };
    assert_eq!(networks("onhost"), "host");
    assert_eq!(networks("isolated"), "none");
    assert_eq!(networks("bridged"), "bridge");
    assert_eq!(
        inspect(&p.container("onhost"), "{{.HostConfig.CgroupnsMode}}"),
        "host"
    );
    // The project's network is neither created nor joined.
    let project_network = format!("{}_default", p.name);
    assert!(!docker(&["network", "inspect", &project_network])
        .status
        .success());
    // In effect: the host-mode httpd listens on the host's loopback, the published port
    // of the bridged one answers, and the isolated one has loopback only.
    for port in [host_port, bridge_port] {
        p.wait_ok("the httpd answers", || {
            http_get(port, "/")
                .map_err(|e| e.to_string())
                .and_then(|r| r.starts_with("HTTP/1.").then_some(()).ok_or(r))
        });
    }
    let links = docker(&["exec", &p.container("isolated"), "ls", "/sys/class/net"]);
    assert_eq!(
        text(&links.stdout).split_whitespace().collect::<Vec<_>>(),
        ["lo"]
    );
    // A second start changes nothing: stack does not try to attach them anywhere.
    assert_nothing_to_do(&p);
}

/// `PULL_POLICY=never` with an image the engine does not have: exit 3 naming the
/// service, the image and the policy, and nothing created. `always` pulls an image the
/// engine has (a local-only one fails to pull, which `missing` would not try).
#[test]
fn pull_policies_never_and_always_reach_the_engine() {
    let body = "STACK_PROXY=none\nSTACK_SERVICES=offline\n\
         SERVICE_OFFLINE_IMAGE=stack-test/never-pulled:1\nSERVICE_OFFLINE_PULL_POLICY=never\n";
    let p = Project::new("pullnever", body);
    let out = p.run(&["start"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    for part in [
        "offline",
        "stack-test/never-pulled:1",
        "`PULL_POLICY` is `never`",
    ] {
        assert!(stderr.contains(part), "{part} not in:\n{stderr}");
    }
    assert!(!stderr.contains("pulling"), "{stderr}");
    assert!(p.containers().is_empty(), "{:?}", p.containers());
    let local = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=fresh\nSERVICE_FRESH_IMAGE={BUSYBOX}\n\
         SERVICE_FRESH_COMMAND=sleep 3600\nSERVICE_FRESH_PULL_POLICY="
    );
    p.rewrite(&format!("{local}missing\n"));
    p.ok(&["start"]);
    p.rewrite(&format!("{local}always\n"));
    let out = p.run(&["start"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot pull image"), "{stderr}");
    assert!(stderr.contains(BUSYBOX), "{stderr}");
}

/// A container in another service's network and process namespaces is recreated when
/// that service is replaced (here, only that service is asked for), and joins the new
/// container's namespaces.
#[test]
fn a_namespace_users_container_is_recreated_with_its_owner() {
    let body = |version: &str| {
        format!(
            "STACK_PROXY=none\nSTACK_SERVICES=vpn,app\n\
             SERVICE_VPN_IMAGE={BUSYBOX}\nSERVICE_VPN_COMMAND=sleep 3600\n\
             SERVICE_VPN_ENV_VERSION={version}\n\
             SERVICE_APP_IMAGE={BUSYBOX}\nSERVICE_APP_COMMAND=sleep 3600\n\
             SERVICE_APP_NETWORK_MODE=service:vpn\nSERVICE_APP_PID=service:vpn\n"
        )
    };
    let p = Project::new("nsowner", &body("1"));
    p.ok(&["start"]);
    let app_before = p.id_of("app");
    let vpn_before = p.id_of("vpn");
    let namespace = |service: &str, kind: &str| {
        let out = docker(&[
            "exec",
            &p.container(service),
            "readlink",
            &format!("/proc/self/ns/{kind}"),
        ]);
        text(&out.stdout).trim().to_string()
    };
    assert_eq!(namespace("app", "net"), namespace("vpn", "net"));
    p.rewrite(&body("2"));
    p.ok(&["start", "vpn"]);
    assert_ne!(p.id_of("vpn"), vpn_before, "vpn was replaced");
    assert_ne!(p.id_of("app"), app_before, "app was recreated with it");
    assert_eq!(inspect(&p.container("app"), "{{.State.Status}}"), "running");
    assert_eq!(namespace("app", "net"), namespace("vpn", "net"));
    assert_eq!(namespace("app", "pid"), namespace("vpn", "pid"));
    // Nothing left to do.
    assert_nothing_to_do(&p);
}

/// `VOLUMES` options reach the engine: a bind relabelled (`Z`, a no-op without SELinux)
/// with `private` propagation (`rslave`/`rshared` need the host's mount to be shared,
/// which this machine's `/` is not: the engine refuses them, exit 3), read-only, and a named volume with `nocopy`, whose new
/// volume stays empty where the image has files.
#[test]
fn mount_options_reach_the_engine() {
    let body = format!(
        "STACK_PROXY=none\nSTACK_SERVICES=app\n\
         SERVICE_APP_IMAGE={BUSYBOX}\nSERVICE_APP_COMMAND=sleep 3600\n\
         SERVICE_APP_VOLUMES=./data:/data:ro,Z,private,empty:/var/www:nocopy,copied:/etc\n"
    );
    let p = Project::new("mountopts", &body);
    std::fs::create_dir_all(p.dir.join("data")).unwrap();
    std::fs::write(p.dir.join("data/file"), "kept").unwrap();
    p.ok(&["start"]);
    let c = p.container("app");
    let mount = |target: &str, field: &str| {
        inspect(
            &c,
            &format!("{{{{range .Mounts}}}}{{{{if eq .Destination \"{target}\"}}}}{{{{.{field}}}}}{{{{end}}}}{{{{end}}}}"),
        )
    };
    assert_eq!(mount("/data", "Propagation"), "private");
    assert_eq!(mount("/data", "Mode"), "ro,Z,private");
    assert_eq!(mount("/data", "RW"), "false");
    let read = docker(&["exec", &c, "cat", "/data/file"]);
    assert_eq!(text(&read.stdout), "kept");
    let binds = inspect(&c, "{{json .HostConfig.Binds}}");
    assert!(binds.contains(":/var/www:nocopy"), "{binds}");
    // `nocopy`: the new volume at /var/www did not get the image's files; /etc did.
    let volume_files = |name: &str| {
        let out = docker(&[
            "run",
            "--rm",
            "-v",
            &format!("{}_{name}:/v", p.name),
            BUSYBOX,
            "ls",
            "/v",
        ]);
        text(&out.stdout).split_whitespace().count()
    };
    assert_eq!(volume_files("empty"), 0);
    assert!(volume_files("copied") > 0);
}

/// `PULL_POLICY=build` builds at every `start`, as `--build` does: a changed context
/// reaches the running container without `--build`, where the default (`missing`) keeps
/// the image it has.
#[test]
fn pull_policy_build_builds_at_every_start() {
    let body = |policy: &str| {
        format!(
            "STACK_PROXY=none\nSTACK_SERVICES=app\nSERVICE_APP_BUILD=app\n\
             SERVICE_APP_COMMAND=sleep 3600\n{policy}"
        )
    };
    let p = Project::new("pullbuild", &body(""));
    let context = p.dir.join("app");
    std::fs::create_dir_all(&context).unwrap();
    let dockerfile = |version: &str| {
        std::fs::write(
            context.join("Dockerfile"),
            format!("FROM {BUSYBOX}\nENV VERSION={version}\n"),
        )
        .unwrap()
    };
    let version = || {
        let env = inspect(&p.container("app"), "{{json .Config.Env}}");
        ["1", "2", "3"]
            .into_iter()
            .find(|v| env.contains(&format!("\"VERSION={v}\"")))
            .unwrap_or("none")
    };
    dockerfile("1");
    p.ok(&["start"]);
    assert_eq!(version(), "1");
    // The default: the image is there, so a changed Dockerfile is not built.
    dockerfile("2");
    p.ok(&["start"]);
    assert_eq!(version(), "1");
    p.rewrite(&body("SERVICE_APP_PULL_POLICY=build\n"));
    p.ok(&["start"]);
    assert_eq!(version(), "2");
    dockerfile("3");
    p.ok(&["start"]);
    assert_eq!(version(), "3");
}

/// A dry run of `start` plans nothing: the engine already is what the project says.
fn assert_nothing_to_do(p: &Project) {
    let again = p.ok(&["start", "--dry-run"]);
    assert!(
        text(&again.stdout).trim().is_empty(),
        "{}",
        text(&again.stdout)
    );
}
