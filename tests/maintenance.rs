//! Maintenance mode (issue 22, item 3) through real proxies on the real engine, with the
//! `stack` binary: every route answers 503 with Retry-After and the page, an allowed
//! address reaches the app, the state survives a proxy restart and a `stack start`, bad
//! pages change nothing, and switching under a bounded request loop (at most 2000
//! requests or 30 s, one at a time, to 127.0.0.1) fails no request.
//!
//! The requests of the test come in through the published port: the proxy sees them from
//! the project network's side (Docker's port forwarding), so "an allowed address" is the
//! project network's subnet, read from the engine.

use std::time::Duration;

use common::load::{Bounds, RequestLoop};
use common::{docker_ok, free_port, text, Project};

mod common;

use common::engine::BUSYBOX;
const CADDY: &str = "stack-test/caddy:latest";
const NGINX: &str = "stack-test/nginx:latest";
const HOST: &str = "web.localhost";
const PAGE_MARK: &str = "Down for maintenance";

/// An answer of the proxy: status code, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 GET of `path` through the proxy on loopback.
fn get(port: u16, path: &str) -> Result<Answer, String> {
    use std::io::{Read, Write};
    let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut stream = std::net::TcpStream::connect_timeout(&address, common::CONNECT_LIMIT)
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(common::ANSWER_LIMIT))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {HOST}\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let response = text(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in `{response}`"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in `{head}`"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_string(),
    })
}

struct Site {
    project: Project,
    port: u16,
}

impl Site {
    fn new(test: &str, proxy: &str, image: &str) -> Site {
        common::require_engine(&[BUSYBOX, image]);
        let project = Project::named("t-maint", test);
        let port = free_port();
        let https = free_port();
        project.write(&format!(
            "STACK_TLS=off\n\
             STACK_PROXY={proxy}\n\
             STACK_PROXY_IMAGE={image}\n\
             STACK_HTTP_PORT={port}\n\
             STACK_HTTPS_PORT={https}\n\
             STACK_SERVICES=web\n\
             SERVICE_WEB_IMAGE={BUSYBOX}\n\
             SERVICE_WEB_COMMAND=sh -c 'mkdir -p /tmp/www/deep; echo v$$VERSION > /tmp/www/index.html; cp /tmp/www/index.html /tmp/www/deep/index.html; exec httpd -f -p 8080 -h /tmp/www'\n\
             SERVICE_WEB_ENV_VERSION=1\n\
             SERVICE_WEB_PORT=8080\n\
             SERVICE_WEB_ROUTE={HOST}\n"
        ));
        Site { project, port }
    }

    fn stack_ok(&self, args: &[&str]) -> String {
        let out = self.project.run(args);
        assert!(
            out.status.success(),
            "`stack {}` failed: {}{}",
            args.join(" "),
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Wait until `/` answers as `check` wants (a failure shows the containers' logs).
    fn wait(&self, what: &str, check: impl Fn(&Answer) -> bool) {
        self.project.wait_ok(what, || match get(self.port, "/") {
            Ok(answer) if check(&answer) => Ok(()),
            Ok(answer) => Err(format!("{} {}", answer.status, answer.body.trim())),
            Err(e) => Err(e),
        });
    }

    fn wait_app(&self, version: &str) {
        let want = version.to_string();
        self.wait(&format!("the app to answer `{version}`"), move |a| {
            a.status == 200 && a.body.trim() == want
        });
    }

    fn wait_page(&self) {
        self.wait("the maintenance page", |a| {
            a.status == 503 && a.body.contains(PAGE_MARK)
        });
    }

    /// The subnet of the project network: where the proxy sees the test's requests from.
    fn subnet(&self) -> String {
        docker_ok(&[
            "network",
            "inspect",
            &format!("{}_default", self.project.name),
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
        ])
        .split_whitespace()
        .find(|s| s.contains('.'))
        .expect("the project network has no IPv4 subnet")
        .to_string()
    }

    fn switch_file(&self) -> std::path::PathBuf {
        self.project.path(".stack/maintenance/on")
    }
}

fn maintenance_end_to_end(test: &str, proxy: &str, image: &str) {
    let site = Site::new(test, proxy, image);
    site.stack_ok(&["start"]);
    site.wait_app("v1");

    // Bad pages: exit 2, a clear message, nothing changed.
    let big = site.project.path("big.html");
    std::fs::write(&big, vec![b'a'; 2 * 1024 * 1024]).unwrap();
    std::fs::create_dir_all(site.project.path("folder.html")).unwrap();
    for (page, needle) in [
        ("missing.html", "does not exist"),
        ("big.html", "at most 1048576"),
        ("folder.html", "is a directory"),
    ] {
        let out = site.project.run(&["maintenance", "on", "--page", page]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{page}: {stderr}");
        assert!(stderr.contains(needle), "{page}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!site.switch_file().exists(), "{page} turned it on");
        let answer = get(site.port, "/").unwrap();
        assert_eq!((answer.status, answer.body.trim()), (200, "v1"));
    }

    // On: every route answers 503, Retry-After and the default page.
    site.stack_ok(&["maintenance", "on", "--retry-after", "120"]);
    site.wait_page();
    for path in ["/", "/deep/", "/no/such/path"] {
        let answer = get(site.port, path).unwrap();
        assert_eq!(answer.status, 503, "{path}: {}", answer.body);
        assert_eq!(answer.header("retry-after"), Some("120"), "{path}");
        assert!(answer.body.contains(PAGE_MARK), "{path}: {}", answer.body);
    }
    let status: serde_json::Value =
        serde_json::from_str(&site.stack_ok(&["--json", "status"])).unwrap();
    assert_eq!(status["maintenance"]["on"], true, "{status}");
    assert_eq!(status["maintenance"]["retry_after"], 120, "{status}");

    // A page of our own, an allowed range the test is not in: the page.
    std::fs::write(
        site.project.path("page.html"),
        "<h1>Migrating: back at 3</h1>\n",
    )
    .unwrap();
    site.stack_ok(&[
        "maintenance",
        "on",
        "--page",
        "page.html",
        "--allow",
        "192.0.2.0/24",
    ]);
    site.wait("the page of our own", |a| {
        a.status == 503 && a.body.contains("Migrating")
    });
    // The test's own addresses allowed: the app.
    let subnet = site.subnet();
    site.stack_ok(&[
        "maintenance",
        "on",
        "--page",
        "page.html",
        "--allow",
        &format!("192.0.2.0/24,{subnet}"),
    ]);
    site.wait_app("v1");
    let status: serde_json::Value =
        serde_json::from_str(&site.stack_ok(&["--json", "status"])).unwrap();
    assert_eq!(
        status["maintenance"]["allow"][1],
        subnet.as_str(),
        "{status}"
    );

    // Nobody allowed again; the state survives a restart of the proxy and a redeploy.
    site.stack_ok(&["maintenance", "on"]);
    site.wait_page();
    let proxy = format!("{}-proxy-1", site.project.name);
    let proxies = docker_ok(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={}", site.project.name),
        "--filter",
        "label=com.docker.compose.service=proxy",
    ]);
    let proxy_id = proxies.lines().next().unwrap_or(&proxy).to_string();
    docker_ok(&["restart", &proxy_id]);
    site.wait_page();
    site.stack_ok(&["start", "--set", "SERVICE_WEB_ENV_VERSION=2"]);
    site.wait_page();
    let answer = get(site.port, "/").unwrap();
    assert_eq!(answer.status, 503);

    // Off: the app (the new version) again.
    site.stack_ok(&["maintenance", "off"]);
    site.wait_app("v2");
    let status: serde_json::Value =
        serde_json::from_str(&site.stack_ok(&["--json", "status"])).unwrap();
    assert_eq!(status["maintenance"]["on"], false, "{status}");

    // Under load: every answer is the app or the page, whatever the switch does. The
    // loop runs until the switching is over (its bounds are far beyond it: at 2,000
    // requests or 30 s it could end before the first switch took effect on a loaded
    // machine, and see no page).
    let port = site.port;
    let bounds = Bounds {
        max: 200_000,
        limit: Duration::from_secs(600),
        pace: Duration::from_millis(5),
    };
    let load = RequestLoop::spawn(bounds, move || match get(port, "/") {
        Ok(a) if a.status == 200 && a.body.trim() == "v2" => Ok("app".into()),
        Ok(a) if a.status == 503 && a.body.contains(PAGE_MARK) => Ok("page".into()),
        Ok(a) => Err(format!("{} {}", a.status, a.body.trim())),
        Err(e) => Err(e),
    });
    for _ in 0..3 {
        site.stack_ok(&["maintenance", "on"]);
        site.wait_page();
        site.stack_ok(&["maintenance", "off"]);
        site.wait_app("v2");
    }
    let seen = load.finish();
    let (app, page, failures) = (seen.count("app"), seen.count("page"), seen.failed());
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(app > 0 && page > 0, "app {app}, page {page}");
}

#[test]
fn maintenance_through_caddy() {
    maintenance_end_to_end("caddy", "caddy", CADDY);
}

#[test]
fn maintenance_through_nginx() {
    maintenance_end_to_end("nginx", "nginx", NGINX);
}

/// Arguments are checked before anything is touched: `off` takes no page, a bad range is
/// refused while the arguments are parsed.
#[test]
fn bad_arguments_exit_2() {
    let site = Site::new("args", "caddy", CADDY);
    for args in [
        &["maintenance", "off", "--page", "x.html"][..],
        &["maintenance", "on", "--allow", "10.0.0.0/33"][..],
        &["maintenance", "on", "--retry-after", "0"][..],
    ] {
        let out = site.project.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert!(!site.switch_file().exists());
}
