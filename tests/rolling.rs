//! Rolling updates under load (issue #5), against a real Docker Engine, through the
//! `stack` binary.
//!
//! A busybox httpd service answers its version (`v1`, `v2`) behind the proxy. While a
//! request loop runs through the proxy (one request at a time, about 100 per second, at most
//! 3000 requests or 60 s, to 127.0.0.1 only), the version is changed with `--set` and
//! `stack start` rolls it out. No request may fail, and every response after `stack start`
//! returned must come from the new version. Latency is measured by `bench/rolling.sh`, not
//! asserted here (the tests run in parallel on shared machines).
//!
//! Needs a running dockerd (`scripts/ensure-docker.sh`) and the local test images
//! (`scripts/build-test-images.sh`); fails (does not skip) without them. Every test has its
//! own project (`t-roll-<test>-<pid>`) and proxy ports, and a guard that runs
//! `stack down --volumes` when it ends, passed or failed.

use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::{docker, free_port, text};

mod common;

const BUSYBOX: &str = "stack-test/busybox:latest";
const CADDY: &str = "stack-test/caddy:latest";
const NGINX: &str = "stack-test/nginx:latest";
const ROUTE_HOST: &str = "web.localhost";

/// Bounds of the request loop.
const MAX_REQUESTS: usize = 3000;
const MAX_LOOP_TIME: Duration = Duration::from_secs(60);
/// About 100 requests per second.
const PACE: Duration = Duration::from_millis(10);
/// How long the loop keeps going after `stack start` returned.
const TAIL: Duration = Duration::from_secs(2);

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

/// One project in a temp dir behind `proxy`; removed from the engine (with volumes) on drop.
struct Project {
    dir: tempfile::TempDir,
    name: String,
    port: u16,
}

impl Project {
    /// `web`: busybox httpd answering `v$VERSION` on `/`, routed at `web.localhost`.
    /// `health` is the service's health check lines.
    fn new(test: &str, proxy: Proxy, replicas: u32, health: &str) -> Project {
        require_engine();
        let name = format!("t-roll-{}-{}", test.replace('_', "-"), std::process::id());
        let port = free_port();
        let https = free_port();
        let dir = tempfile::tempdir().unwrap();
        // `$$` is a literal `$` in the project file: the shell in the container expands it.
        let body = format!(
            "STACK_PROJECT={name}\n\
             STACK_TLS=off\n\
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
        );
        std::fs::write(dir.path().join("stack.env"), body).unwrap();
        Project { dir, name, port }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("stack").unwrap();
        cmd.current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("CI", "true")
            .env_remove("STACK_ENV")
            .args(args)
            .timeout(Duration::from_secs(120));
        cmd
    }

    fn stack(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
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
        self.stack(&args)
    }

    /// Wait (at most 20 s) until the proxy answers `want` on the route.
    fn wait_answer(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = String::new();
        while Instant::now() < deadline {
            match get(self.port) {
                Ok(version) if version == want => return,
                Ok(version) => last = version,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "`{}` never answered `{want}` through the proxy on :{}; last: {last}",
            self.name, self.port
        );
    }

    /// Names of the running containers of `web`.
    fn web_containers(&self) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let out = docker(&[
            "ps",
            "--filter",
            &filter,
            "--filter",
            "label=com.docker.compose.service=web",
            "--format",
            "{{.Names}}",
        ]);
        let mut names: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
        names.sort();
        names
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.stack(&["down", "--volumes"]);
        common::remove_project(&self.name);
    }
}

/// One GET of `/` through the proxy on loopback with the route's Host header.
fn get(port: u16) -> Result<String, String> {
    common::http_get(([127, 0, 0, 1], port).into(), ROUTE_HOST)
}

/// What the request loop saw.
#[derive(Debug, Default)]
struct Seen {
    requests: usize,
    /// `(seconds since the loop started, what went wrong)`.
    failures: Vec<(f64, String)>,
    /// Versions in answer order, with the time they came.
    answers: Vec<(f64, String)>,
    /// When the main thread said the update command had returned.
    marked_at: Option<f64>,
}

impl Seen {
    fn after_mark(&self) -> Vec<&str> {
        let mark = self.marked_at.expect("the loop was never marked");
        self.answers
            .iter()
            .filter(|(at, _)| *at >= mark)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn count(&self, version: &str) -> usize {
        self.answers.iter().filter(|(_, v)| v == version).count()
    }
}

/// A bounded request loop in a thread: at most [`MAX_REQUESTS`] requests or
/// [`MAX_LOOP_TIME`], stopped earlier by [`Load::finish`].
struct Load {
    stop: Arc<AtomicBool>,
    mark: Arc<AtomicBool>,
    handle: JoinHandle<Seen>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mark = Arc::new(AtomicBool::new(false));
        let (stop_flag, mark_flag) = (stop.clone(), mark.clone());
        let handle = std::thread::spawn(move || {
            let begin = Instant::now();
            let mut seen = Seen::default();
            while seen.requests < MAX_REQUESTS
                && begin.elapsed() < MAX_LOOP_TIME
                && !stop_flag.load(Ordering::SeqCst)
            {
                if seen.marked_at.is_none() && mark_flag.load(Ordering::SeqCst) {
                    seen.marked_at = Some(begin.elapsed().as_secs_f64());
                }
                let sent = Instant::now();
                let at = begin.elapsed().as_secs_f64();
                seen.requests += 1;
                match get(port) {
                    Ok(version) => seen.answers.push((at, version)),
                    Err(reason) => seen.failures.push((at, reason)),
                }
                if let Some(rest) = PACE.checked_sub(sent.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            seen
        });
        Load { stop, mark, handle }
    }

    /// Note that the update command has returned: answers from now on are checked.
    fn mark(&self) {
        self.mark.store(true, Ordering::SeqCst);
    }

    /// Run on for [`TAIL`], then stop and return what was seen.
    fn finish(self) -> Seen {
        std::thread::sleep(TAIL);
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("the request loop panicked")
    }
}

const HTTP_HEALTH: &str = "SERVICE_WEB_HEALTH=/\n";

/// Start v1, roll out v2 under load, check nothing failed and v2 answers at the end.
fn rolling_update(test: &str, proxy: Proxy, replicas: u32) {
    let p = Project::new(test, proxy, replicas, HTTP_HEALTH);
    let out = p.start_version(1, &[]);
    assert!(
        out.status.success(),
        "first `stack start` failed:\n{}",
        text(&out.stderr)
    );
    p.wait_answer("v1");
    let before = p.web_containers();
    assert_eq!(before.len(), replicas as usize, "{before:?}");

    let load = Load::start(p.port);
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let out = p.start_version(2, &[]);
    let took = started.elapsed();
    load.mark();
    let seen = load.finish();
    assert!(
        out.status.success(),
        "`stack start` of v2 failed ({:?}):\n{}",
        out.status.code(),
        text(&out.stderr)
    );
    eprintln!(
        "{test}: {} requests, {} failed, v1 {} / v2 {}, update {:.1}s",
        seen.requests,
        seen.failures.len(),
        seen.count("v1"),
        seen.count("v2"),
        took.as_secs_f64()
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
    let p = Project::new("unhealthy", Proxy::Caddy, 1, health);
    let out = p.start_version(1, &[]);
    assert!(
        out.status.success(),
        "first `stack start` failed:\n{}",
        text(&out.stderr)
    );
    p.wait_answer("v1");
    let before = p.web_containers();

    let load = Load::start(p.port);
    std::thread::sleep(Duration::from_secs(1));
    let out = p.start_version(2, &["SERVICE_WEB_HEALTH_CMD=false"]);
    load.mark();
    let seen = load.finish();
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
    let p = Project::new("proxyrestart", Proxy::Caddy, 1, health);
    let out = p.start_version(1, &[]);
    assert!(
        out.status.success(),
        "first start failed:\n{}",
        text(&out.stderr)
    );
    p.wait_answer("v1");

    let proxy = format!("{}-proxy-1", p.name);
    let restarter = std::thread::spawn(move || {
        // The new container is being started and waited for by now.
        std::thread::sleep(Duration::from_millis(1500));
        docker(&["restart", "-t", "1", &proxy])
    });
    let out = p.start_version(2, &[]);
    let restarted = restarter.join().unwrap();
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
