//! Rolling updates under load (issue #5), against a real Docker Engine, through the
//! `stack` binary.
//!
//! A busybox httpd service answers its version (`v1`, `v2`) behind the proxy. While a
//! request loop runs through the proxy (one request at a time, about 100 per second, at most
//! 12000 requests or 120 s, to 127.0.0.1 only), the version is changed with `--set` and
//! `stack start` rolls it out. The loop waits for answers, not for times: 50 answers
//! before the update starts, 200 after it returned. No request may fail, and every response after `stack start`
//! returned must come from the new version. Latency is measured by `bench/rolling.sh`, not
//! asserted here (the tests run in parallel on shared machines).
//!
//! Needs a running dockerd (`scripts/ensure-docker.sh`) and the local test images
//! (`scripts/build-test-images.sh`); fails (does not skip) without them. Every test has its
//! own project (`t-roll-<test>-<pid>`) and proxy ports, and a guard that runs
//! `stack down --volumes` when it ends, passed or failed.

use std::process::Output;
use std::time::Duration;

use common::load::{Bounds, RequestLoop};
use common::{docker, docker_ok, eventually, free_port, text, Project};

mod common;

use common::engine::BUSYBOX;
const CADDY: &str = "stack-test/caddy:latest";
const NGINX: &str = "stack-test/nginx:latest";
const ROUTE_HOST: &str = "web.localhost";

/// Bounds of the request loop: far above what a rolling update takes on a loaded 2-core
/// machine, so the loop is still running when the update returns (it stops once it has
/// [`AFTER_ANSWERS`] after the update; at 120 s, an update slowed by other builds could
/// outlast the loop and leave too few answers after it).
const MAX_REQUESTS: usize = 60_000;
const MAX_LOOP_TIME: Duration = Duration::from_secs(600);
/// About 100 requests per second.
const PACE: Duration = Duration::from_millis(10);
/// Answers the loop has before the update starts (about half a second of load).
const BEFORE_ANSWERS: usize = 50;
/// Answers to requests sent after `stack start` returned that the loop waits for before it
/// stops (about 2 s of load when the machine is idle).
const AFTER_ANSWERS: usize = 200;

fn require_engine() {
    common::require_engine(&[BUSYBOX, CADDY, NGINX]);
}

#[derive(Clone, Copy)]
enum Proxy {
    Caddy,
    Nginx,
}

impl Proxy {
    fn name(self) -> &'static str {
        match self {
            Proxy::Caddy => "caddy",
            Proxy::Nginx => "nginx",
        }
    }

    fn image(self) -> &'static str {
        match self {
            Proxy::Caddy => CADDY,
            Proxy::Nginx => NGINX,
        }
    }
}

/// The test's project and the loopback port its proxy listens on.
struct Rolling {
    project: Project,
    port: u16,
}

impl Rolling {
    /// `web`: busybox httpd answering `v$VERSION` on `/`, routed at `web.localhost`,
    /// behind `proxy`. `health` is the service's health check lines.
    fn new(test: &str, proxy: Proxy, replicas: u32, health: &str) -> Rolling {
        require_engine();
        let project = Project::named("t-roll", test);
        let port = free_port();
        let https = free_port();
        // `$$` is a literal `$` in the project file: the shell in the container expands it.
        project.write(&format!(
            "STACK_TLS=off\n\
             STACK_PROXY={proxy}\n\
             STACK_PROXY_IMAGE={image}\n\
             STACK_HTTP_PORT={port}\n\
             STACK_HTTPS_PORT={https}\n\
             STACK_SERVICES=web\n\
             SERVICE_WEB_IMAGE={BUSYBOX}\n\
             SERVICE_WEB_COMMAND=sh -c 'echo v$$VERSION > /tmp/index.html; exec httpd -f -p 8080 -h /tmp'\n\
             SERVICE_WEB_ENV_VERSION=1\n\
             SERVICE_WEB_PORT=8080\n\
             SERVICE_WEB_ROUTE={ROUTE_HOST}\n\
             SERVICE_WEB_REPLICAS={replicas}\n\
             SERVICE_WEB_HEALTH_INTERVAL=1s\n\
             {health}",
            proxy = proxy.name(),
            image = proxy.image(),
        ));
        Rolling { project, port }
    }

    /// `stack start` with the version given by `--set`. Every start of a test passes the
    /// same keys by `--set`, so only the version differs between two starts.
    fn start_version(&self, version: u32, extra: &[&str]) -> Output {
        let set = format!("SERVICE_WEB_ENV_VERSION={version}");
        let mut args = vec!["start", "--set", &set];
        for item in extra {
            args.push("--set");
            args.push(item);
        }
        self.project.run(&args)
    }

    /// Wait until the proxy answers `want` on the route (a failure shows the containers'
    /// logs).
    fn wait_answer(&self, want: &str) {
        self.project.wait_ok(
            &format!(
                "`{}` to answer `{want}` through the proxy on :{}",
                self.project.name, self.port
            ),
            || match get(self.port) {
                Ok(version) if version == want => Ok(()),
                Ok(version) => Err(version),
                Err(e) => Err(e),
            },
        );
    }

    /// Names of the running containers of `web`.
    fn web_containers(&self) -> Vec<String> {
        self.web(&[])
    }

    /// Names of `web`'s containers listed by `docker ps EXTRA`, sorted.
    fn web(&self, extra: &[&str]) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.project.name);
        let mut args = vec![
            "ps",
            "--filter",
            &filter,
            "--filter",
            "label=com.docker.compose.service=web",
            "--format",
            "{{.Names}}",
        ];
        args.extend_from_slice(extra);
        let mut names: Vec<String> = docker_ok(&args).lines().map(str::to_string).collect();
        names.sort();
        names
    }
}

/// One GET of `/` through the proxy on loopback with the route's Host header.
fn get(port: u16) -> Result<String, String> {
    common::http_get(([127, 0, 0, 1], port).into(), ROUTE_HOST)
}

/// The bounded request loop of an update (`common::load`): at most [`MAX_REQUESTS`]
/// requests or [`MAX_LOOP_TIME`]; returns once it has [`BEFORE_ANSWERS`] answers, so the
/// update begins with the loop running (under a loaded machine the first requests can
/// take a while: this waits for the answers, not for a time).
fn load(port: u16) -> RequestLoop {
    let bounds = Bounds {
        max: MAX_REQUESTS,
        limit: MAX_LOOP_TIME,
        pace: PACE,
    };
    let load = RequestLoop::spawn(bounds, move || get(port));
    load.wait_answers(
        &format!("{BEFORE_ANSWERS} answers before the update"),
        BEFORE_ANSWERS,
    );
    load
}

const HTTP_HEALTH: &str = "SERVICE_WEB_HEALTH=/\n";

/// Start v1, roll out v2 under load, check nothing failed and v2 answers at the end.
fn rolling_update(test: &str, proxy: Proxy, replicas: u32) {
    let p = Rolling::new(test, proxy, replicas, HTTP_HEALTH);
    let out = p.start_version(1, &[]);
    assert!(
        out.status.success(),
        "first `stack start` failed:\n{}",
        text(&out.stderr)
    );
    p.wait_answer("v1");
    let before = p.web_containers();
    assert_eq!(before.len(), replicas as usize, "{before:?}");

    let load = load(p.port);
    let out = p.start_version(2, &[]);
    load.mark();
    let seen = load.finish_after(AFTER_ANSWERS);
    assert!(
        out.status.success(),
        "`stack start` of v2 failed ({:?}):\n{}",
        out.status.code(),
        text(&out.stderr)
    );
    eprintln!(
        "{test}: {} requests, {} failed, v1 {} / v2 {}",
        seen.requests,
        seen.failures.len(),
        seen.count("v1"),
        seen.count("v2"),
    );
    assert!(
        seen.failures.is_empty(),
        "{} of {} requests failed during the rolling update through {}; first ones: {:?}\n\
         stack start stderr:\n{}",
        seen.failures.len(),
        seen.requests,
        proxy.name(),
        &seen.failures[..seen.failures.len().min(10)],
        text(&out.stderr)
    );
    assert!(
        seen.count("v1") > 0,
        "the loop never saw v1: it started too late"
    );
    let after = seen.after_mark();
    assert!(
        after.len() >= 50,
        "only {} answers after the update returned",
        after.len()
    );
    let stale: Vec<&&str> = after.iter().filter(|v| **v != "v2").collect();
    assert!(
        stale.is_empty(),
        "{} of {} answers after `stack start` returned were not v2: {:?}",
        stale.len(),
        after.len(),
        &stale[..stale.len().min(10)]
    );
    let now = p.web_containers();
    assert_eq!(now.len(), replicas as usize, "old containers left: {now:?}");
    assert!(
        now.iter().all(|n| !before.contains(n)),
        "a container was not replaced: before {before:?}, after {now:?}"
    );
}

#[test]
fn rolling_update_through_caddy_drops_nothing() {
    rolling_update("caddy1", Proxy::Caddy, 1);
}

#[test]
fn rolling_update_through_nginx_drops_nothing() {
    rolling_update("nginx1", Proxy::Nginx, 1);
}

#[test]
fn rolling_update_of_two_replicas_through_caddy_drops_nothing() {
    rolling_update("caddy2", Proxy::Caddy, 2);
}

#[test]
fn rolling_update_of_two_replicas_through_nginx_drops_nothing() {
    rolling_update("nginx2", Proxy::Nginx, 2);
}

/// A new version that never turns healthy: `stack start` exits 1, the new container is
/// removed, and the old version keeps answering without a failed request.
#[test]
fn unhealthy_new_version_keeps_the_old_one_serving() {
    let health = "SERVICE_WEB_HEALTH_CMD=wget -q -O /dev/null http://127.0.0.1:8080/\n";
    let p = Rolling::new("unhealthy", Proxy::Caddy, 1, health);
    let out = p.start_version(1, &[]);
    assert!(
        out.status.success(),
        "first `stack start` failed:\n{}",
        text(&out.stderr)
    );
    p.wait_answer("v1");
    let before = p.web_containers();

    let load = load(p.port);
    let out = p.start_version(2, &["SERVICE_WEB_HEALTH_CMD=false"]);
    load.mark();
    let seen = load.finish_after(AFTER_ANSWERS);
    assert_eq!(
        out.status.code(),
        Some(1),
        "`stack start` of a version that never turns healthy must exit 1\nstderr:\n{}",
        text(&out.stderr)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("keeps serving"),
        "the error should say the old container keeps serving:\n{stderr}"
    );
    assert_eq!(
        seen.count("v2"),
        0,
        "a container that never turned ready must never receive a request (it joins DNS \
         only once ready)"
    );
    assert!(
        seen.failures.is_empty(),
        "{} of {} requests failed while the unhealthy version was tried: {:?}",
        seen.failures.len(),
        seen.requests,
        &seen.failures[..seen.failures.len().min(10)]
    );
    let after = seen.after_mark();
    assert!(
        after.len() >= 50,
        "only {} answers after the failed start",
        after.len()
    );
    assert!(
        after.iter().all(|v| *v == "v1"),
        "after the failed update every answer must be v1: {:?}",
        &after[..after.len().min(20)]
    );
    assert_eq!(
        p.web_containers(),
        before,
        "the old container must keep running and the new one be gone"
    );
}

/// The proxy container restarted in the middle of a rolling update: the update still
/// completes (or fails cleanly), and afterwards the new version answers and a second
/// `stack start` has nothing left to do.
#[test]
fn proxy_restarted_mid_update_then_converges() {
    let health = "SERVICE_WEB_HEALTH=/index.html\n";
    let p = Rolling::new("proxyrestart", Proxy::Caddy, 1, health);
    let out = p.start_version(1, &[]);
    assert!(
        out.status.success(),
        "first start failed:\n{}",
        text(&out.stderr)
    );
    p.wait_answer("v1");

    let proxy = format!("{}-proxy-1", p.project.name);
    let (out, restarted) = std::thread::scope(|scope| {
        let restarter = scope.spawn(|| {
            // Restart the proxy once the new container exists: the update is then starting
            // it and waiting for it to turn ready.
            eventually(
                "the new web container to be created",
                Duration::from_secs(60),
                || p.web(&["-a"]).len() > 1,
            );
            docker(&["restart", "-t", "1", &proxy])
        });
        let out = p.start_version(2, &[]);
        (out, restarter.join().unwrap())
    });
    assert!(
        restarted.status.success(),
        "docker restart failed: {}",
        text(&restarted.stderr)
    );
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "stack start must finish cleanly, not crash:\n{}",
        text(&out.stderr)
    );
    // Whatever the first attempt did, the next start converges and v2 answers.
    let again = p.start_version(2, &[]);
    assert!(
        again.status.success(),
        "second start failed:\n{}",
        text(&again.stderr)
    );
    p.wait_answer("v2");
    assert_eq!(
        p.web_containers().len(),
        1,
        "one web container: {:?}",
        p.web_containers()
    );
    let noop = p.start_version(2, &[]);
    let stderr = text(&noop.stderr);
    assert!(noop.status.success(), "{stderr}");
    assert!(
        stderr.contains("0 change(s)"),
        "a third start must change nothing:\n{stderr}"
    );
}
