//! TLS from a real ACME server: `STACK_TLS=auto` with `STACK_ACME_CA` pointing at pebble
//! (Let's Encrypt's test server, Debian package `pebble`), which validates every host
//! with a real HTTP-01 challenge through the proxy's published port.
//!
//! Pebble runs on this machine: its mock DNS (`pebble-challtestsrv`) answers every name
//! with 127.0.0.1, and its validation port is the proxy's `STACK_HTTP_PORT`, so the
//! challenge goes through docker's port mapping to the proxy. The proxy reaches pebble's
//! directory on the host-gateway address (docker's bridge), with pebble's own TLS
//! certificate (made here with openssl) given as `STACK_ACME_CA_ROOT`. A client trusting
//! pebble's issuing root (`/roots/0` on its management port) checks what is served.
//!
//! Also: the expiry metric and `CertificateExpiresSoon` in a live Prometheus (the
//! MONITORING preset's test images), an ACME server that is down or does not answer while
//! a host is added, an ACME server that restarts and forgets Caddy's account, a deploy to
//! a VM-like machine (`tests/common/vm.rs`) across its reboot through either proxy, with
//! pebble's mock DNS answering with the machine's address, and previews' certificates on
//! such a machine through either proxy.
//!
//! Needs docker, the test images, `pebble`, `pebble-challtestsrv`, `openssl` and `curl`
//! (`scripts/install-ci-deps.sh`). The tests fail, never skip, when one is missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::engine::BUSYBOX;
use common::{
    docker, docker_ok, eventually, eventually_ok, free_port, require_tool, text, Project,
};
use tempfile::TempDir;

mod common;

const CADDY: &str = "stack-test/caddy:latest";
const HTTPD: &str = "httpd -f -p 8080 -h /var/www";

/// A pebble ACME server and its mock DNS, stopped (by process id) when dropped.
struct Pebble {
    dir: TempDir,
    /// `https://<host-gateway>:<port>/dir`, as the proxy's container sees it.
    directory: String,
    management: u16,
    /// The mock DNS' port, which pebble asks.
    dns: u16,
    /// The mock DNS' management port (`/add-a`).
    dns_management: u16,
    /// How many times pebble was started (each start logs its directory).
    starts: usize,
    children: Vec<Child>,
}

impl Pebble {
    /// Pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on `https_port` of
    /// 127.0.0.1, issuing certificates valid for `validity` seconds.
    fn start(http_port: u16, https_port: u16, validity: u64) -> Pebble {
        Pebble::start_for("127.0.0.1", http_port, https_port, validity)
    }

    /// The same, validating at `address` (its mock DNS answers every name with it).
    fn start_for(address: &str, http_port: u16, https_port: u16, validity: u64) -> Pebble {
        require_tool("pebble");
        let challtestsrv = require_tool("pebble-challtestsrv");
        require_tool("openssl");
        require_tool("curl");
        let dir = tempfile::tempdir().unwrap();
        let gateway = host_gateway();
        let (listen, management, dns) = (free_port(), free_port(), free_port());
        let dns_management = free_port();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=pebble", "-addext"])
            .arg(format!(
                "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:{gateway}"
            ))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl: {}", text(&out.stderr));
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("0.0.0.0:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": cert,
            "privateKey": key,
            "httpPort": http_port,
            "tlsPort": https_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity,
        }});
        fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let (out, err) = log(dir.path(), "dns.log");
        let dns_server = Command::new(challtestsrv)
            .args(["-defaultIPv4", address, "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        let mut pebble = Pebble {
            directory: format!("https://{gateway}:{listen}/dir"),
            management,
            dns,
            dns_management,
            starts: 0,
            children: vec![dns_server],
            dir,
        };
        pebble.resume();
        pebble
    }

    /// Start pebble (again, after [`Pebble::stop`]) on the same ports, with its own TLS
    /// certificate; it makes a new issuing root, and knows no earlier order.
    fn resume(&mut self) {
        let (out, err) = log(self.dir.path(), "pebble.log");
        let server = Command::new(require_tool("pebble"))
            .arg("-config")
            .arg(self.dir.path().join("pebble.json"))
            .args([
                "-dnsserver",
                &format!("127.0.0.1:{}", self.dns),
                "-strict=false",
            ])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .current_dir(self.dir.path())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        self.children.push(server);
        self.starts += 1;
        let starts = self.starts;
        eventually("pebble's directory", Duration::from_secs(30), || {
            self.log().matches("ACME directory available").count() == starts
        });
    }

    /// Freeze pebble (SIGSTOP): its directory accepts connections and never answers,
    /// and it keeps its accounts and orders for [`Pebble::thaw`].
    fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Let a frozen pebble go on (SIGCONT).
    fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let server = self.children.last().expect("pebble runs");
        let out = Command::new("kill")
            .args([signal, &server.id().to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "kill {signal}: {}", text(&out.stderr));
    }

    /// Stop pebble (its mock DNS stays): its directory refuses connections.
    fn stop(&mut self) {
        let mut server = self.children.pop().expect("pebble runs");
        server.kill().unwrap();
        server.wait().unwrap();
    }

    /// Make the mock DNS answer `host` with `address` (pebble then validates there).
    fn point(&self, host: &str, address: &str) {
        let body = serde_json::json!({"host": format!("{host}."), "addresses": [address]});
        let out = Command::new("curl")
            .args(["-sSf", "-X", "POST", "-d", &body.to_string()])
            .arg(format!("http://127.0.0.1:{}/add-a", self.dns_management))
            .output()
            .unwrap();
        assert!(out.status.success(), "add-a: {}", text(&out.stderr));
    }

    /// Pebble's log so far.
    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// How many certificates pebble issued so far.
    fn issued(&self) -> usize {
        self.log().matches("Issued certificate serial").count()
    }

    /// The certificate pebble serves its directory with (the proxy must trust it).
    fn tls_cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Pebble's issuing root, written beside its log; what a client must trust.
    fn root(&self) -> PathBuf {
        let path = self.dir.path().join("root.pem");
        let out = Command::new("curl")
            .args(["-sSfk", "-o"])
            .arg(&path)
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management))
            .output()
            .unwrap();
        assert!(out.status.success(), "pebble root: {}", text(&out.stderr));
        path
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Both ends of a log file in `dir` that each start appends to.
fn log(dir: &Path, name: &str) -> (Stdio, Stdio) {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap();
    (Stdio::from(file.try_clone().unwrap()), Stdio::from(file))
}

/// The address containers reach this machine on (docker's `host-gateway`).
fn host_gateway() -> String {
    let hosts = docker_ok(&[
        "run",
        "--rm",
        "--add-host=gateway:host-gateway",
        BUSYBOX,
        "cat",
        "/etc/hosts",
    ]);
    hosts
        .lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            let address = words.next()?;
            words.any(|w| w == "gateway").then(|| address.to_string())
        })
        .unwrap_or_else(|| panic!("no host-gateway address in {hosts}"))
}

/// `curl https://<host>:<port>/health` trusting only `root`, with `host` on 127.0.0.1.
fn https_get(host: &str, port: u16, root: &Path) -> Result<String, String> {
    https_get_at("127.0.0.1", host, port, root)
}

/// The same with `host` on `address`.
fn https_get_at(address: &str, host: &str, port: u16, root: &Path) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(root)
        .args(["--resolve", &format!("{host}:{port}:{address}")])
        .arg(format!("https://{host}:{port}/health"))
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// The serial and end date of the certificate served for `host` on 127.0.0.1:`port`.
fn served_certificate(host: &str, port: u16) -> String {
    served_certificate_at("127.0.0.1", host, port).unwrap_or_else(|e| panic!("{e}"))
}

/// The serial and end date of the certificate served for `host` on `address`:`port`.
fn served_certificate_at(address: &str, host: &str, port: u16) -> Result<String, String> {
    let script = format!(
        "openssl s_client -connect {address}:{port} -servername {host} </dev/null 2>/dev/null \
         | openssl x509 -noout -serial -enddate"
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let served = text(&out.stdout);
    match served.contains("serial=") {
        true => Ok(served),
        false => Err(format!("no certificate for {host}: {served}")),
    }
}

/// Wait until every host answers over HTTPS with a certificate chaining to `root`.
fn wait_for_https(hosts: &[&str], port: u16, root: &Path, pebble: &Pebble) {
    for host in hosts {
        eventually_ok(
            &format!("https://{host}:{port}/health trusted"),
            Duration::from_secs(60),
            || match https_get(host, port, root) {
                Ok(body) if body.contains("ok") => Ok(()),
                Ok(body) => Err(body),
                Err(e) => Err(format!("{e}\npebble log tail:\n{}", tail(&pebble.log()))),
            },
        );
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// How long a `start` or deploy waits for a certificate that cannot come (the ACME server
/// down on purpose, a host it cannot validate): `STACK_CERTIFICATE_WAIT`, a test hook
/// for the 60 s that stack waits otherwise. Such a step proves its warning, not the
/// minute before it; a step whose certificate must come keeps the full wait.
const NO_CERTIFICATE_WAIT: (&str, &str) = ("STACK_CERTIFICATE_WAIT", "5s");

/// `stack start` of `p`, which must succeed, waiting [`NO_CERTIFICATE_WAIT`] for new
/// hosts' certificates.
fn start_without_certificate(p: &Project) -> std::process::Output {
    let (key, value) = NO_CERTIFICATE_WAIT;
    let mut command = p.command(&["start"]);
    command.env(key, value);
    common::succeeded(
        common::process::run_within(&mut command, common::process::RUN_LIMIT),
        "stack start",
    )
}

/// A routed busybox httpd answering `ok` on `/health` at `host`.
fn routed(name: &str, host: &str) -> String {
    let key = name.to_uppercase();
    format!(
        "{}SERVICE_{key}_ROUTE={host}\n",
        common::engine::httpd_service(name, HTTPD)
    )
}

/// The project file of a Caddy project with `services` (`(name, host)`) getting
/// certificates from `pebble`.
fn caddy_project(pebble: &Pebble, http: u16, https: u16, services: &[(&str, &str)]) -> String {
    let names: Vec<&str> = services.iter().map(|(name, _)| *name).collect();
    let mut body = format!(
        "STACK_PROXY=caddy\nSTACK_PROXY_IMAGE={CADDY}\nSTACK_HTTP_PORT={http}\n\
         STACK_HTTPS_PORT={https}\nSTACK_TLS=auto\nSTACK_TLS_EMAIL=ops@example.test\n\
         STACK_ACME_CA={}\nSTACK_ACME_CA_ROOT=./pebble-ca.pem\nSTACK_SERVICES={}\n",
        pebble.directory,
        names.join(",")
    );
    for (name, host) in services {
        body.push_str(&routed(name, host));
    }
    body
}

/// Caddy gets a certificate from pebble for every routed host through a real HTTP-01
/// challenge; a proxy restart, `stack start` again, and `down` + `start` keep them (same
/// serials, no new order at pebble); a host added to the project gets its certificate on
/// the next start while the others keep theirs.
#[test]
fn caddy_gets_and_keeps_certificates_from_an_acme_server() {
    common::require_engine(&[BUSYBOX, CADDY]);
    let (http, https) = (free_port(), free_port());
    let pebble = Pebble::start(http, https, 90 * 24 * 3600);
    let p = Project::named("tls", "caddy");
    fs::copy(pebble.tls_cert(), p.path("pebble-ca.pem")).unwrap();
    let two = [("web", "a.example.test"), ("api", "b.example.test")];
    p.write(&caddy_project(&pebble, http, https, &two));
    p.ok(&["start"]);
    let root = pebble.root();
    wait_for_https(&["a.example.test", "b.example.test"], https, &root, &pebble);
    let first = [
        served_certificate("a.example.test", https),
        served_certificate("b.example.test", https),
    ];
    assert_ne!(first[0], first[1], "one certificate per host");
    assert_eq!(pebble.issued(), 2, "{}", pebble.log());
    // Caddy picks HTTP-01 or TLS-ALPN-01; pebble validates either through the proxy's
    // published ports (never `PEBBLE_VA_ALWAYS_VALID`).
    assert!(
        pebble.log().contains("Starting 3 validations")
            && pebble.log().contains("set VALID by completed challenge"),
        "a real challenge validated: {}",
        pebble.log()
    );

    let status = text(&p.ok(&["status"]).stdout);
    for host in ["a.example.test", "b.example.test"] {
        assert!(
            status.contains(&format!("certificate {host}: expires "))
                && status.contains("(in 89 days)"),
            "{status}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&p.ok(&["status", "--json"]).stdout).unwrap();
    assert!(json["certificates"]["a.example.test"].is_string(), "{json}");

    let same = |what: &str| {
        wait_for_https(&["a.example.test", "b.example.test"], https, &root, &pebble);
        let now = [
            served_certificate("a.example.test", https),
            served_certificate("b.example.test", https),
        ];
        assert_eq!(now, first, "after {what}: the same certificates");
        assert_eq!(pebble.issued(), 2, "after {what}: no new order");
    };
    let proxy = p.container("proxy");
    docker_ok(&["restart", &proxy]);
    same("a proxy restart");
    p.ok(&["start"]);
    same("`stack start` again");
    p.ok(&["down"]);
    assert!(!docker(&["container", "inspect", &proxy]).status.success());
    p.ok(&["start"]);
    same("`stack down` and `stack start`");

    let three = [two[0], two[1], ("docs", "c.example.test")];
    p.write(&caddy_project(&pebble, http, https, &three));
    p.ok(&["start"]);
    wait_for_https(&["c.example.test"], https, &root, &pebble);
    assert_eq!(pebble.issued(), 3, "one new certificate, for the new host");
    assert_eq!(served_certificate("a.example.test", https), first[0]);
    assert_eq!(served_certificate("b.example.test", https), first[1]);
}

const NGINX: &str = "stack-test/nginx:latest";
/// certbot from Debian's package (`scripts/build-test-images.sh`).
const CERTBOT: &str = "stack-test/certbot:latest";

/// The project file of an nginx project with `services` getting certificates from
/// `pebble` through the `certbot` service stack adds, which looks every `interval`.
fn nginx_project(
    pebble: &Pebble,
    http: u16,
    https: u16,
    interval: &str,
    services: &[(&str, &str)],
) -> String {
    caddy_project(pebble, http, https, services).replace(
        &format!("STACK_PROXY=caddy\nSTACK_PROXY_IMAGE={CADDY}\n"),
        &format!(
            "STACK_PROXY=nginx\nSTACK_PROXY_IMAGE={NGINX}\nSTACK_CERTBOT_IMAGE={CERTBOT}\n\
                 STACK_CERTBOT_INTERVAL={interval}\n"
        ),
    )
}

/// nginx gets a certificate for every routed host from pebble through certbot (HTTP-01
/// through nginx's webroot); `stack status` shows their expiry; `down` + `start` keep
/// them (same serials, no new order: the state is in named volumes).
#[test]
fn nginx_gets_and_keeps_certificates_through_certbot() {
    common::require_engine(&[BUSYBOX, NGINX, CERTBOT]);
    let (http, https) = (free_port(), free_port());
    let pebble = Pebble::start(http, https, 90 * 24 * 3600);
    let p = Project::named("tls", "nginx");
    fs::copy(pebble.tls_cert(), p.path("pebble-ca.pem")).unwrap();
    let two = [("web", "a.example.test"), ("api", "b.example.test")];
    p.write(&nginx_project(&pebble, http, https, "12h", &two));
    p.ok(&["start"]);
    let root = pebble.root();
    let hosts = ["a.example.test", "b.example.test"];
    wait_for_https(&hosts, https, &root, &pebble);
    let first = hosts.map(|host| served_certificate(host, https));
    assert_eq!(pebble.issued(), 2, "{}", pebble.log());
    let status = text(&p.ok(&["status"]).stdout);
    assert!(
        status.contains("certificate a.example.test: expires ") && status.contains("(in 89 days)"),
        "{status}"
    );
    p.ok(&["down"]);
    p.ok(&["start"]);
    wait_for_https(&hosts, https, &root, &pebble);
    // certbot's first round after a start: nothing missing, nothing due. Its end is
    // certbot's own line (the container is new: `down` removed the old one).
    let certbot = p.container("certbot");
    eventually(
        "certbot's first round after the start (`No renewals were attempted`)",
        Duration::from_secs(60),
        || {
            let logs = docker(&["logs", &certbot]);
            common::all_output(&logs).contains("No renewals were attempted")
        },
    );
    assert_eq!(hosts.map(|host| served_certificate(host, https)), first);
    assert_eq!(pebble.issued(), 2, "no new order after `down` + `start`");
}

/// certbot renews a certificate that is due (pebble issues them for one hour, so each is
/// within certbot's 30 days) and installs it while requests go on: every request in the
/// meantime succeeds, and nginx is never reloaded.
#[test]
fn nginx_renews_certificates_without_dropping_requests() {
    common::require_engine(&[BUSYBOX, NGINX, CERTBOT]);
    let (http, https) = (free_port(), free_port());
    let pebble = Pebble::start(http, https, 3600);
    let p = Project::named("tls", "renew");
    fs::copy(pebble.tls_cert(), p.path("pebble-ca.pem")).unwrap();
    p.write(&nginx_project(
        &pebble,
        http,
        https,
        "3s",
        &[("web", "a.example.test")],
    ));
    p.ok(&["start"]);
    let root = pebble.root();
    wait_for_https(&["a.example.test"], https, &root, &pebble);
    let proxy_started = common::inspect(&p.container("proxy"), "{{.State.StartedAt}}");
    let mut serials = vec![served_certificate("a.example.test", https)];
    let mut requests = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while serials.len() < 3 && std::time::Instant::now() < deadline {
        if let Err(e) = https_get("a.example.test", https, &root) {
            panic!("request {requests} failed during renewals: {e}");
        }
        requests += 1;
        let now = served_certificate("a.example.test", https);
        if serials.last() != Some(&now) {
            serials.push(now);
        }
    }
    assert!(
        serials.len() >= 3,
        "two renewals within 90 s: {serials:?}\n{}",
        tail(&pebble.log())
    );
    assert!(requests > 10, "{requests} requests");
    assert_eq!(
        common::inspect(&p.container("proxy"), "{{.State.StartedAt}}"),
        proxy_started,
        "nginx was not restarted"
    );
}

const PROMETHEUS: &str = "stack-test/prometheus:latest";
const NODE_EXPORTER: &str = "stack-test/node-exporter:latest";
const DOCKER_PROXY: &str = "stack-test/docker-proxy:latest";

/// `body` with the MONITORING preset: Prometheus, node-exporter and the Docker API proxy
/// from the test images (the others have none: kept out), scraping every 2 s. Alertmanager
/// is kept out too: these tests read the alerts' state from Prometheus, and the test
/// image has neither wget nor curl for its health check, which turns it unhealthy once
/// its start period is over (a second `start` would wait for it in vain). Prometheus's
/// test image lacks them too: its health check asks with `promtool` instead (the preset's
/// wget/curl probe turned it unhealthy 40 s after its start, and a second `start` on a
/// loaded machine came later than that and failed), every 2 s (the preset's 10 s held
/// each `start` for one interval before its first check).
fn with_monitoring(body: String) -> String {
    format!(
        "{body}MONITORING_ENABLED=true\nMONITORING_SCRAPE_INTERVAL=2s\n\
         SERVICE_PROMETHEUS_IMAGE={PROMETHEUS}\n\
         SERVICE_PROMETHEUS_HEALTH_CMD=promtool query instant http://127.0.0.1:9090 up\n\
         SERVICE_PROMETHEUS_HEALTH_INTERVAL=2s\n\
         SERVICE_NODE_EXPORTER_IMAGE={NODE_EXPORTER}\nSERVICE_DOCKER_PROXY_IMAGE={DOCKER_PROXY}\n\
         SERVICE_GRAFANA_ENVIRONMENTS=prod\nSERVICE_LOKI_ENVIRONMENTS=prod\n\
         SERVICE_ALERTMANAGER_ENVIRONMENTS=prod\nSERVICE_PROMETHEUS_DEPENDS_ON=node-exporter\n\
         SERVICE_PROMTAIL_ENVIRONMENTS=prod\nSERVICE_CADVISOR_ENVIRONMENTS=prod\n"
    )
}

/// `GET http://<prometheus>:9090/api/v1/<path>` with `query`, its `data`.
fn prometheus_api(p: &Project, path: &str, query: &str) -> Result<serde_json::Value, String> {
    let ip = common::inspect(
        &p.container("prometheus"),
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
    );
    let ip = ip
        .split_whitespace()
        .next()
        .ok_or("prometheus has no address")?;
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-G", "--data-urlencode", query])
        .arg(format!("http://{ip}:9090/api/v1/{path}"))
        .output()
        .map_err(|e| e.to_string())?;
    let body: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", text(&out.stderr)))?;
    Ok(body["data"].clone())
}

/// The expiry `stack status --json` reads from the proxy for `host`, in Unix seconds.
fn status_expiry(p: &Project, host: &str) -> Option<i64> {
    let json: serde_json::Value =
        serde_json::from_slice(&p.ok(&["status", "--json"]).stdout).unwrap();
    let expiry = json["certificates"][host].as_str()?;
    Some(
        chrono::DateTime::parse_from_rfc3339(expiry)
            .ok()?
            .timestamp(),
    )
}

/// A certificate pebble issues for 7 days: `start` warns that it expires within 14
/// days, Prometheus scrapes its expiry (`stack_certificate_expiry_timestamp_seconds`,
/// node-exporter's textfile collector) equal to what the proxy holds, and
/// `CertificateExpiresSoon` fires for the host. Then a host pebble cannot validate is
/// added: `start` names it, and Prometheus reads `stack_certificate_missing` 1 for it and
/// 0 for the other.
fn expiry_metric_and_alert(project: &str, nginx: bool) {
    let mut images = vec![BUSYBOX, PROMETHEUS, NODE_EXPORTER, DOCKER_PROXY];
    images.extend(if nginx {
        vec![NGINX, CERTBOT]
    } else {
        vec![CADDY]
    });
    common::require_engine(&images);
    let (http, https) = (free_port(), free_port());
    let pebble = Pebble::start(http, https, 7 * 24 * 3600);
    let p = Project::named("tls", project);
    fs::copy(pebble.tls_cert(), p.path("pebble-ca.pem")).unwrap();
    let web = [("web", "a.example.test")];
    let body = match nginx {
        true => nginx_project(&pebble, http, https, "12h", &web),
        false => caddy_project(&pebble, http, https, &web),
    };
    p.write(&with_monitoring(body));
    let started = p.ok(&["start"]);
    let stderr = text(&started.stderr);
    assert!(
        stderr.contains("the certificate of `a.example.test` expires ")
            && stderr.contains("(in 6 days) and has not been renewed"),
        "start reports the certificate due: {stderr}"
    );
    let query = "query=stack_certificate_expiry_timestamp_seconds";
    eventually_ok(
        "the expiry metric in Prometheus",
        Duration::from_secs(90),
        || {
            let data = prometheus_api(&p, "query", query)?;
            let sample = &data["result"][0];
            let value: i64 = sample["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("no sample: {data}"))?;
            match (
                sample["metric"]["host"].as_str(),
                status_expiry(&p, "a.example.test"),
            ) {
                (Some("a.example.test"), Some(held)) if held == value => Ok(()),
                (host, held) => Err(format!("{host:?} {value} vs held {held:?}: {data}")),
            }
        },
    );
    eventually_ok(
        "CertificateExpiresSoon firing",
        Duration::from_secs(60),
        || {
            let data = prometheus_api(&p, "alerts", "x=")?;
            let firing = data["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|alert| {
                    alert["labels"]["alertname"] == "CertificateExpiresSoon"
                        && alert["labels"]["host"] == "a.example.test"
                        && alert["state"] == "firing"
                });
            firing.then_some(()).ok_or(format!("{data}"))
        },
    );
    if !nginx {
        supervise_rewrites_the_metrics(&p);
    }
    // `m.example.test` points at an address nothing answers on: it gets no certificate.
    pebble.point("m.example.test", "192.0.2.1");
    let two = [web[0], ("docs", "m.example.test")];
    let body = match nginx {
        true => nginx_project(&pebble, http, https, "12h", &two),
        false => caddy_project(&pebble, http, https, &two),
    };
    p.write(&with_monitoring(body));
    let stderr = text(&start_without_certificate(&p).stderr);
    assert!(
        stderr.contains("no certificate yet for `m.example.test`"),
        "{stderr}"
    );
    eventually_ok(
        "stack_certificate_missing in Prometheus: 0 for a, 1 for m",
        Duration::from_secs(90),
        || {
            let data = prometheus_api(&p, "query", "query=stack_certificate_missing")?;
            let mut seen: Vec<(String, String)> = data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let host = s["metric"]["host"].as_str().unwrap_or_default();
                    let value = s["value"][1].as_str().unwrap_or_default();
                    (host.to_string(), value.to_string())
                })
                .collect();
            seen.sort();
            let want = [("a.example.test", "0"), ("m.example.test", "1")]
                .map(|(h, v)| (h.to_string(), v.to_string()));
            match seen == want {
                true => Ok(()),
                false => Err(format!("{seen:?}: {data}")),
            }
        },
    );
}

/// A child process killed (by its id) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server's `supervise` writes Caddy's metrics too (at its start, then every 10
/// minutes): the file removed, a `supervise` of the started bundle writes it again.
fn supervise_rewrites_the_metrics(p: &Project) {
    let file = "/metrics/stack_certificates.prom";
    let proxy = p.container("proxy");
    docker_ok(&["exec", &proxy, "rm", file]);
    let options = stack::config::Options::default();
    let loaded = stack::config::load(&p.dir, "dev", &[], &options, |_| None)
        .unwrap_or_else(|e| panic!("{}", e.render()));
    let bundle = p.dir.join(".stack").join("dev");
    let (_, desired) = stack::commands::bundle_of(&loaded.config, &bundle).unwrap();
    let state = serde_json::to_vec(&desired).unwrap();
    fs::write(bundle.join(stack::deploy::DESIRED_FILE), state).unwrap();
    let log = p.path("supervise.log");
    let _supervise = Running(
        p.command(&["supervise", "--bundle", bundle.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let metric = "stack_certificate_expiry_timestamp_seconds{host=\"a.example.test\"}";
    eventually_ok(
        "supervise writes the metrics",
        Duration::from_secs(60),
        || {
            let out = docker(&["exec", &proxy, "cat", file]);
            let metrics = text(&out.stdout);
            match metrics.contains(metric) {
                true => Ok(()),
                false => Err(format!(
                    "{metrics}{}\nsupervise: {}",
                    text(&out.stderr),
                    fs::read_to_string(&log).unwrap_or_default()
                )),
            }
        },
    );
    // The bundle is stack's again for the next `start`.
    fs::remove_file(bundle.join(stack::deploy::DESIRED_FILE)).unwrap();
}

#[test]
fn caddy_certificate_expiry_reaches_prometheus_and_its_alert_fires() {
    expiry_metric_and_alert("alert-caddy", false);
}

#[test]
fn nginx_certificate_expiry_reaches_prometheus_and_its_alert_fires() {
    expiry_metric_and_alert("alert-nginx", true);
}

/// The hosts of the ACME-down tests: one served first, then a second added.
const ONE: [(&str, &str); 1] = [("web", "a.example.test")];
const TWO: [(&str, &str); 2] = [("web", "a.example.test"), ("docs", "c.example.test")];

/// `p`, written as `written` (serving [`ONE`]), started and serving `a.example.test` with
/// pebble's certificate: that certificate.
fn serve_one(p: &Project, pebble: &Pebble, https: u16, written: &str) -> String {
    fs::copy(pebble.tls_cert(), p.path("pebble-ca.pem")).unwrap();
    p.write(written);
    p.ok(&["start"]);
    wait_for_https(&["a.example.test"], https, &pebble.root(), pebble);
    served_certificate("a.example.test", https)
}

/// With the ACME server down, `start` of `p` written as `written` (serving [`TWO`]) exits
/// 0 with a warning that names `c.example.test` and not `a.example.test`, which keeps
/// serving `first`: the start's stderr.
fn start_adding_a_host(p: &Project, https: u16, written: &str, first: &str) -> String {
    p.write(written);
    let started = start_without_certificate(p);
    let stderr = text(&started.stderr);
    let warning = stderr
        .lines()
        .find(|line| line.contains("no certificate yet for"))
        .unwrap_or_else(|| panic!("no warning: {stderr}"));
    assert!(
        warning.contains("`c.example.test`") && !warning.contains("a.example.test"),
        "{warning}"
    );
    assert_eq!(served_certificate("a.example.test", https), first);
    stderr
}

/// With the ACME server not answering (pebble frozen), a `start` that adds a host keeps
/// serving the others' certificates (same serials), names the new host in a warning and
/// exits 0; pebble back, the proxy gets it on its own (no new `start`), from the one
/// order it placed (no loop of attempts).
#[test]
fn caddy_keeps_serving_and_reports_a_host_while_the_acme_server_is_down() {
    common::require_engine(&[BUSYBOX, CADDY]);
    let (http, https) = (free_port(), free_port());
    let pebble = Pebble::start(http, https, 90 * 24 * 3600);
    let p = Project::named("tls", "down");
    let first = serve_one(
        &p,
        &pebble,
        https,
        &caddy_project(&pebble, http, https, &ONE),
    );

    pebble.freeze();
    let written = caddy_project(&pebble, http, https, &TWO);
    let stderr = start_adding_a_host(&p, https, &written, &first);
    assert!(stderr.contains("Caddy tries again"), "{stderr}");

    pebble.thaw();
    let root = pebble.root();
    let logs = || text(&docker(&["logs", &p.container("proxy")]).stderr);
    eventually_ok(
        "c.example.test's certificate after pebble is back",
        Duration::from_secs(300),
        || https_get("c.example.test", https, &root).map_err(|e| format!("{e}\n{}", logs())),
    );
    assert_eq!(served_certificate("a.example.test", https), first);
    let logs = logs();
    let attempts = logs
        .lines()
        .filter(|l| l.contains("\"obtaining certificate\"") && l.contains("c.example.test"))
        .count();
    assert_eq!(
        attempts, 1,
        "one order, waited on, not retried in a loop: {logs}"
    );
}

/// An ACME server that restarts and forgets its accounts (pebble keeps none across a
/// restart): Caddy's stored account is refused (`accountDoesNotExist`) when it orders a
/// host added later, and Caddy 2.6 never registers again on its own. The next `start`
/// (or deploy) that finds a host without a certificate and that refusal in Caddy's log
/// removes the stored account and reloads Caddy, which registers a new one and gets the
/// certificate; the other host keeps its own (same serial).
#[test]
fn caddy_recovers_from_an_acme_server_that_forgot_its_account() {
    common::require_engine(&[BUSYBOX, CADDY]);
    let (http, https) = (free_port(), free_port());
    let mut pebble = Pebble::start(http, https, 90 * 24 * 3600);
    let p = Project::named("tls", "forgot");
    fs::copy(pebble.tls_cert(), p.path("pebble-ca.pem")).unwrap();
    let one = [("web", "a.example.test")];
    p.write(&caddy_project(&pebble, http, https, &one));
    p.ok(&["start"]);
    wait_for_https(&["a.example.test"], https, &pebble.root(), &pebble);
    let first = served_certificate("a.example.test", https);

    pebble.stop();
    pebble.resume();
    let two = [one[0], ("docs", "c.example.test")];
    p.write(&caddy_project(&pebble, http, https, &two));
    let started = p.ok(&["start"]);
    let stderr = text(&started.stderr);
    let root = pebble.root();
    let logs = || text(&docker(&["logs", &p.container("proxy")]).stderr);
    eventually_ok(
        "c.example.test's certificate from the restarted ACME server",
        Duration::from_secs(90),
        || {
            https_get("c.example.test", https, &root)
                .map_err(|e| format!("{e}\nstart said: {stderr}\n{}", tail(&logs())))
        },
    );
    assert!(
        stderr.contains("no longer knows the proxy's account")
            && !stderr.contains("no certificate yet"),
        "{stderr}"
    );
    assert_eq!(served_certificate("a.example.test", https), first);
}

/// The same for nginx: certbot names the host it could not get a certificate for and
/// waits for its interval (one attempt, no loop); the others keep theirs.
#[test]
fn nginx_keeps_serving_and_reports_a_host_while_the_acme_server_is_down() {
    common::require_engine(&[BUSYBOX, NGINX, CERTBOT]);
    let (http, https) = (free_port(), free_port());
    let mut pebble = Pebble::start(http, https, 90 * 24 * 3600);
    let p = Project::named("tls", "down-nginx");
    let written = nginx_project(&pebble, http, https, "12h", &ONE);
    let first = serve_one(&p, &pebble, https, &written);

    pebble.stop();
    let written = nginx_project(&pebble, http, https, "12h", &TWO);
    let stderr = start_adding_a_host(&p, https, &written, &first);
    assert!(
        stderr.contains("certbot tries again every 43200 s"),
        "{stderr}"
    );
    // The start waited 5 s, not certbot's attempt: wait for the attempt's line.
    let said = "no certificate for c.example.test yet; next try in 43200s";
    let logs = eventually_ok("certbot's failed attempt", Duration::from_secs(90), || {
        let logs = text(&docker(&["logs", &p.container("certbot")]).stdout);
        match logs.contains(said) {
            true => Ok(logs),
            false => Err(logs),
        }
    });
    assert_eq!(
        logs.matches(said).count(),
        1,
        "one attempt, then certbot's interval: {logs}"
    );
}

/// A project file for a proxy: `(pebble, http port, https port, services)`.
type Body = fn(&Pebble, u16, u16, &[(&str, &str)]) -> String;

/// nginx's project with certbot looking every 12 h (as [`Body`]).
fn nginx_body(pebble: &Pebble, http: u16, https: u16, services: &[(&str, &str)]) -> String {
    nginx_project(pebble, http, https, "12h", services)
}

/// A deploy to a VM-like machine (systemd, its own Docker, `tests/common/vm.rs`) gets
/// Caddy's certificate from pebble on this machine (validating at the machine's address),
/// and after a reboot of the machine the same certificate is served: same serial, no new
/// order at pebble. With pebble stopped, a deploy that adds a host succeeds and names it.
#[test]
fn a_deployed_certificate_survives_a_reboot_of_the_machine() {
    survives_a_reboot("tls", &[CADDY], caddy_project);
}

/// The same through nginx: certbot's certificate, in its `certbot-state` and
/// `nginx-certs` volumes on the machine, is served again after the reboot (same serial,
/// no new order).
#[test]
fn certbots_certificate_survives_a_reboot_of_the_machine() {
    survives_a_reboot("tls-nginx", &[NGINX, CERTBOT], nginx_body);
}

/// Deploy `body`'s project (with the proxy `images`) to a fresh VM-like machine named
/// after `machine`, then reboot it, then deploy a new host with pebble stopped.
fn survives_a_reboot(machine: &str, images: &[&str], body: Body) {
    let mut needed = vec![BUSYBOX];
    needed.extend(images);
    common::require_engine(&needed);
    let vm = common::vm::Vm::boot(machine, "stack-test/vm-docker:latest");
    for image in &needed {
        vm.load_image(image);
    }
    let address = vm.ip();
    let mut pebble = Pebble::start_for(&address, 80, 443, 90 * 24 * 3600);
    let name = format!("{}vm-{}", machine.replace('-', ""), std::process::id());
    let p = Project::called(&name);
    fs::create_dir_all(p.path("environments/staging")).unwrap();
    let one = body(&pebble, 80, 443, &[("web", "a.example.test")]);
    p.write(&format!("STACK_DRAIN=0s\n{one}"));
    // The machine's address can change with a reboot (the bridge hands it out again).
    let target = || {
        let server = format!(
            "SERVER_HOST={}\nSERVER_USER=root\nSERVER_SSH_KEY={}\n",
            vm.ip(),
            vm.key().display()
        );
        fs::write(p.path("environments/staging/server.env"), server).unwrap();
    };
    target();
    // `STACK_ACME_CA_ROOT` is a project path: on a server, under `SERVER_PATH`.
    let ca = fs::read_to_string(pebble.tls_cert()).unwrap();
    vm.exec(&format!(
        "mkdir -p /opt/{name} && cat > /opt/{name}/pebble-ca.pem <<'PEM'\n{ca}PEM"
    ));
    let deploy = p
        .command(&["deploy", "staging", "--allow-dirty"])
        .env("STACK_SSH_CONFIG", vm.ssh_config())
        .output()
        .unwrap();
    assert!(
        deploy.status.success(),
        "deploy: {}{}",
        text(&deploy.stdout),
        text(&deploy.stderr)
    );
    let served = || served_certificate_at(&vm.ip(), "a.example.test", 443);
    eventually_ok(
        "a certificate from pebble",
        Duration::from_secs(90),
        || match served() {
            Ok(_) if pebble.issued() == 1 => Ok(()),
            Ok(cert) => Err(format!("{cert}, issued {}", pebble.issued())),
            Err(e) => Err(format!("{e}\n{}", tail(&pebble.log()))),
        },
    );
    let first = served().unwrap();
    assert!(
        !text(&deploy.stderr).contains("no certificate yet"),
        "the deploy waited for it: {}",
        text(&deploy.stderr)
    );

    vm.reboot();
    eventually_ok("HTTPS after the reboot", Duration::from_secs(90), || {
        served().map_err(|e| format!("{e}\n{}", vm.exec("docker ps -a")))
    });
    assert_eq!(
        served().unwrap(),
        first,
        "the same certificate after a reboot"
    );
    assert_eq!(pebble.issued(), 1, "no new order: {}", tail(&pebble.log()));

    // pebble stopped: a deploy that adds a host succeeds, names it, and keeps the other.
    pebble.stop();
    target();
    let two = [("web", "a.example.test"), ("docs", "c.example.test")];
    let two = body(&pebble, 80, 443, &two);
    p.write(&format!("STACK_DRAIN=0s\n{two}"));
    let deploy = p
        .command(&["deploy", "staging", "--allow-dirty"])
        .env("STACK_SSH_CONFIG", vm.ssh_config())
        .env(NO_CERTIFICATE_WAIT.0, NO_CERTIFICATE_WAIT.1)
        .output()
        .unwrap();
    let stderr = text(&deploy.stderr);
    assert!(deploy.status.success(), "deploy: {stderr}");
    let warning = stderr
        .lines()
        .find(|line| line.contains("no certificate yet for"))
        .unwrap_or_else(|| panic!("no warning: {stderr}"));
    assert!(
        warning.contains("`c.example.test`") && !warning.contains("a.example.test"),
        "{warning}"
    );
    assert_eq!(
        served().unwrap(),
        first,
        "the old certificate keeps serving"
    );
}

/// Previews on an environment with `STACK_TLS=auto` (Caddy): the proxy gets one
/// certificate from pebble for the preview's host when it is created, serves it over
/// HTTPS, keeps it across an update (same serial, no new order) and stops serving it
/// after `preview down`; staging's certificate is untouched.
#[test]
fn a_preview_gets_its_own_certificate_through_caddy() {
    preview_certificates("tlspc", &[CADDY], caddy_project, false);
}

/// The same through nginx: certbot is told the preview's hosts (`<name>.hosts` beside
/// its route, and a wake-up), gets its certificate at once, and deletes it (its lineage
/// and what nginx loads) after `preview down`.
#[test]
fn a_preview_gets_its_own_certificate_through_certbot() {
    preview_certificates("tlspn", &[NGINX, CERTBOT], nginx_body, true);
}

/// Staging at `staging.example.test` on a VM-like machine, previews under
/// `*.preview.example.test`, certificates from pebble validating at the machine.
fn preview_certificates(machine: &str, images: &[&str], body: Body, nginx: bool) {
    let mut needed = vec![BUSYBOX];
    needed.extend(images);
    common::require_engine(&needed);
    let vm = common::vm::Vm::boot(machine, &common::vm::docker_image());
    for image in &needed {
        vm.load_image(image);
    }
    let mut pebble = Pebble::start_for(&vm.ip(), 80, 443, 90 * 24 * 3600);
    let name = format!("{machine}{}", std::process::id());
    let p = Project::called(&name);
    let services = body(&pebble, 80, 443, &[("web", "${STACK_DOMAIN}")]);
    p.write(&format!(
        "STACK_DRAIN=0s\nSTACK_DOMAIN=staging.example.test\n\
         STACK_PREVIEW_DOMAIN=*.preview.example.test\nSTACK_PREVIEW_MEMORY_MB=64\n{services}"
    ));
    p.target(&vm, "root");
    let ca = fs::read_to_string(pebble.tls_cert()).unwrap();
    vm.exec(&format!(
        "mkdir -p /opt/{name} && cat > /opt/{name}/pebble-ca.pem <<'PEM'\n{ca}PEM"
    ));
    p.ok_on(&vm, &["deploy", "staging", "--allow-dirty"]);
    let root = pebble.root();
    let trusted = |host: &str| {
        eventually_ok(
            &format!("https://{host}/health trusted"),
            Duration::from_secs(90),
            || match https_get_at(&vm.ip(), host, 443, &root) {
                Ok(body) if body.contains("ok") => Ok(()),
                other => Err(format!("{other:?}\n{}", tail(&pebble.log()))),
            },
        );
        served_certificate_at(&vm.ip(), host, 443).unwrap()
    };
    let staging = trusted("staging.example.test");
    assert_eq!(pebble.issued(), 1);

    let host = "pr-1.preview.example.test";
    let up = p.ok_on(&vm, &["preview", "up", "pr-1", "--allow-dirty"]);
    assert_eq!(text(&up.stdout).trim(), format!("https://{host}"));
    let stderr = text(&up.stderr);
    assert!(
        !stderr.contains("no certificate yet"),
        "it waited: {stderr}"
    );
    let first = trusted(host);
    assert_ne!(first, staging);
    assert_eq!(pebble.issued(), 2, "one certificate for the preview's host");

    let set = "SERVICE_WEB_ENV_VERSION=two";
    p.ok_on(
        &vm,
        &["preview", "up", "pr-1", "--allow-dirty", "--set", set],
    );
    assert_eq!(trusted(host), first, "an update keeps the certificate");
    assert_eq!(pebble.issued(), 2, "no new order for an update");

    p.ok_on(&vm, &["preview", "down", "pr-1"]);
    eventually_ok(
        "the preview's host no longer served",
        Duration::from_secs(60),
        || match served_certificate_at(&vm.ip(), host, 443) {
            Ok(cert) if cert == first => Err(format!("still served: {cert}")),
            _ => Ok(()),
        },
    );
    if nginx {
        let certbot = format!("{name}-certbot-1");
        eventually_ok(
            "certbot deletes the preview's certificate",
            Duration::from_secs(60),
            || {
                let left = vm.exec(&format!(
                    "docker exec {certbot} sh -c 'ls /etc/letsencrypt/live /etc/letsencrypt/renewal /etc/nginx/certs -a'"
                ));
                match left.contains("pr-1") {
                    true => Err(left),
                    false => Ok(()),
                }
            },
        );
    }
    assert_eq!(trusted("staging.example.test"), staging);
    assert_eq!(pebble.issued(), 2);
    pebble.stop();
}
