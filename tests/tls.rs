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
    children: Vec<Child>,
}

impl Pebble {
    /// Pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on `https_port` of
    /// 127.0.0.1, issuing certificates valid for `validity` seconds.
    fn start(http_port: u16, https_port: u16, validity: u64) -> Pebble {
        let pebble = require_tool("pebble");
        let challtestsrv = require_tool("pebble-challtestsrv");
        require_tool("openssl");
        require_tool("curl");
        let dir = tempfile::tempdir().unwrap();
        let gateway = host_gateway();
        let (listen, management, dns) = (free_port(), free_port(), free_port());
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
        let log = |name: &str| {
            let file = fs::File::create(dir.path().join(name)).unwrap();
            (Stdio::from(file.try_clone().unwrap()), Stdio::from(file))
        };
        let (out, err) = log("dns.log");
        let dns_server = Command::new(challtestsrv)
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        let (out, err) = log("pebble.log");
        let server = Command::new(pebble)
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}"), "-strict=false"])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .current_dir(dir.path())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        let pebble = Pebble {
            directory: format!("https://{gateway}:{listen}/dir"),
            management,
            children: vec![dns_server, server],
            dir,
        };
        eventually("pebble's directory", Duration::from_secs(30), || {
            pebble.log().contains("ACME directory available")
        });
        pebble
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
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(root)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
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
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{port} -servername {host} </dev/null 2>/dev/null \
         | openssl x509 -noout -serial -enddate"
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let served = text(&out.stdout);
    assert!(
        served.contains("serial="),
        "no certificate for {host}: {served}"
    );
    served
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
