//! The MONITORING preset live, against a real Docker Engine (issue 11, item 6):
//! Prometheus loads the rendered configuration and rules, every target is up, and the
//! rendered alerts fire and reach a webhook receiver that this test runs; and (item 7) the
//! provisioned Grafana dashboard, checked offline; and (security issue, item 8) an app
//! container can switch none of it off: Alertmanager and docker-proxy are on the preset's
//! own network, Prometheus has no lifecycle API, and docker-proxy passes reads only.
//!
//! Needs a running dockerd and the test images `stack-test/prometheus`,
//! `stack-test/alertmanager`, `stack-test/node-exporter`, `stack-test/docker-proxy` and
//! `stack-test/busybox`
//! (`scripts/build-test-images.sh`); a missing piece FAILS the test. Grafana, Loki,
//! Promtail and cAdvisor have no Debian-built image: the test keeps them out of its
//! environment (`SERVICE_<NAME>_ENVIRONMENTS=prod`). The project `m-<test>-<pid>` is
//! removed with its volumes when the test ends. Timings are shortened through the
//! preset's keys (`MONITORING_SCRAPE_INTERVAL`, `MONITORING_ALERT_FOR`,
//! `MONITORING_GROUP_WAIT`) and the disk threshold lowered (`MONITORING_DISK_PERCENT`).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command as StdCommand;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{docker, eventually, eventually_ok, inspect, text, Project};
use serde_json::Value;

mod common;

const PROMETHEUS: &str = "stack-test/prometheus:latest";
const ALERTMANAGER: &str = "stack-test/alertmanager:latest";
const NODE_EXPORTER: &str = "stack-test/node-exporter:latest";
use common::engine::BUSYBOX;
const DOCKER_PROXY: &str = "stack-test/docker-proxy:latest";

/// The project's own service: busybox `httpd` serving a metrics file at a path that is
/// not `/metrics` (so `METRICS` is what makes it scraped), rewritten every second with
/// a latency histogram whose every request took between 0.5 s and 1 s.
const SERVE: &str = r#"mkdir -p /www/app
i=0
while true; do
  i=$((i + 10))
  {
    echo 'http_request_duration_seconds_bucket{le="0.1"} 0'
    echo 'http_request_duration_seconds_bucket{le="0.5"} 0'
    echo "http_request_duration_seconds_bucket{le=\"1\"} $i"
    echo "http_request_duration_seconds_bucket{le=\"+Inf\"} $i"
    echo "http_request_duration_seconds_sum $((i * 3 / 4))"
    echo "http_request_duration_seconds_count $i"
  } > /www/app/metrics.tmp
  mv /www/app/metrics.tmp /www/app/metrics
  sleep 1
done &
exec httpd -f -p 8080 -h /www
"#;

impl Project {
    /// A project `m-<test>-<pid>`: the `web` service of [`SERVE`] with the MONITORING
    /// preset, its alerts sent to `webhook`.
    fn new(test: &str, webhook: &str) -> Project {
        common::require_engine(&[
            PROMETHEUS,
            ALERTMANAGER,
            NODE_EXPORTER,
            BUSYBOX,
            DOCKER_PROXY,
        ]);
        let project = Project::named("m", test);
        std::fs::create_dir(project.path("app")).unwrap();
        std::fs::write(project.path("app/serve.sh"), SERVE).unwrap();
        project.write(&format!(
            "STACK_TLS=off\nSTACK_PROXY=none\n\
                 STACK_SERVICES=web\n\
                 SERVICE_WEB_IMAGE={BUSYBOX}\n\
                 SERVICE_WEB_PORT=8080\n\
                 SERVICE_WEB_METRICS=/app/metrics\n\
                 SERVICE_WEB_VOLUMES=./app:/app:ro\n\
                 SERVICE_WEB_COMMAND=sh /app/serve.sh\n\
                 MONITORING_ENABLED=true\n\
                 MONITORING_SCRAPE_INTERVAL=2s\n\
                 MONITORING_ALERT_FOR=4s\n\
                 MONITORING_GROUP_WAIT=1s\n\
                 MONITORING_DISK_PERCENT=1\n\
                 MONITORING_ALERT_WEBHOOK={webhook}\n\
                 SERVICE_PROMETHEUS_IMAGE={PROMETHEUS}\n\
                 SERVICE_ALERTMANAGER_IMAGE={ALERTMANAGER}\n\
                 SERVICE_ALERTMANAGER_EXTRA_HOSTS=host.docker.internal:host-gateway\n\
                 SERVICE_NODE_EXPORTER_IMAGE={NODE_EXPORTER}\n\
                 SERVICE_DOCKER_PROXY_IMAGE={DOCKER_PROXY}\n\
                 SERVICE_GRAFANA_ENVIRONMENTS=prod\n\
                 SERVICE_LOKI_ENVIRONMENTS=prod\n\
                 SERVICE_PROMTAIL_ENVIRONMENTS=prod\n\
                 SERVICE_CADVISOR_ENVIRONMENTS=prod\n"
        ));
        project
    }

    /// `service`'s address on the project's network `network` (reachable from the host).
    fn address(&self, service: &str, network: &str) -> String {
        let format = format!(
            "{{{{(index .NetworkSettings.Networks \"{}_{network}\").IPAddress}}}}",
            self.name
        );
        let ip = inspect(&self.container(service), &format);
        assert!(
            !ip.is_empty() && ip != "<no value>",
            "{service} has no address on {network}: {ip}"
        );
        ip
    }

    /// Prometheus' address on the project network (reachable from the host).
    fn prometheus(&self) -> String {
        let ip = inspect(
            &self.container("prometheus"),
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        )
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
        assert!(!ip.is_empty(), "prometheus has no address");
        format!("{ip}:9090")
    }
}

/// A GET over plain HTTP/1.0; the body parsed as JSON.
fn get_json(address: &str, path: &str) -> Value {
    let mut stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("{address}: {e}"));
    stream.set_read_timeout(Some(common::ANSWER_LIMIT)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {response}"))
}

/// The address containers reach the host at through `host-gateway`: the default
/// bridge's gateway (docker0), which only the host and its containers see. The
/// engine records it in the bridge network's IPAM config only when it created
/// docker0 itself; when docker0 already existed (a restarted dockerd) only the
/// subnet is recorded, so the address is read from the interface.
fn bridge_gateway() -> String {
    let out = docker(&[
        "network",
        "inspect",
        "bridge",
        "-f",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
    ]);
    let ip = text(&out.stdout).trim().to_string();
    if !ip.is_empty() {
        return ip;
    }
    let out = StdCommand::new("ip")
        .args(["-4", "-o", "addr", "show", "docker0"])
        .output()
        .expect("run ip");
    let listing = text(&out.stdout);
    let ip = listing
        .split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .unwrap_or_default()
        .to_string();
    assert!(
        !ip.is_empty(),
        "no gateway on docker's bridge network: {listing}"
    );
    ip
}

/// The webhook receiver: every POST body, parsed, sent on the channel.
fn receiver(listener: TcpListener, sent: mpsc::Sender<Value>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(common::ANSWER_LIMIT));
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length.min(1 << 20)];
        if reader.read_exact(&mut body).is_err() {
            continue;
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        if let Ok(value) = serde_json::from_slice(&body) {
            if sent.send(value).is_err() {
                return;
            }
        }
    }
}

#[test]
fn prometheus_scrapes_every_target_and_alerts_reach_the_webhook() {
    let gateway = bridge_gateway();
    let listener = TcpListener::bind((gateway.as_str(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sent, received) = mpsc::channel();
    std::thread::spawn(move || receiver(listener, sent));

    let project = Project::new(
        "live",
        &format!("http://host.docker.internal:{port}/alerts"),
    );
    project.ok(&["start"]);
    let prometheus = project.prometheus();

    // The configuration Prometheus runs is the rendered one, METRICS and the keys applied.
    let config = get_json(&prometheus, "/api/v1/status/config");
    let yaml = config["data"]["yaml"].as_str().unwrap_or_default();
    assert!(yaml.contains("scrape_interval: 2s"), "{yaml}");
    assert!(yaml.contains("job_name: web"), "{yaml}");
    assert!(yaml.contains("metrics_path: /app/metrics"), "{yaml}");
    assert!(yaml.contains("- /etc/prometheus/alerts.yml"), "{yaml}");

    // Every rendered rule is loaded.
    let rules = get_json(&prometheus, "/api/v1/rules");
    let names: BTreeSet<String> = rules["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    for alert in [
        "TargetDown",
        "DiskUsageHigh",
        "HttpLatencyP95High",
        "BackupTooOld",
    ] {
        assert!(names.contains(alert), "{alert} not loaded: {names:?}");
    }

    // Every target is up: the monitoring services and the project's `web`.
    let expected: BTreeSet<&str> = ["prometheus", "alertmanager", "node-exporter", "web"].into();
    eventually_ok(
        &format!("every target up ({expected:?})"),
        Duration::from_secs(180),
        || {
            let targets = get_json(&prometheus, "/api/v1/targets");
            let active = targets["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let up: BTreeSet<String> = active
                .iter()
                .filter(|t| t["health"] == "up")
                .filter_map(|t| t["labels"]["job"].as_str().map(str::to_string))
                .collect();
            let jobs: BTreeSet<String> = active
                .iter()
                .filter_map(|t| t["labels"]["job"].as_str().map(str::to_string))
                .collect();
            let jobs: BTreeSet<&str> = jobs.iter().map(String::as_str).collect();
            if jobs == expected && up.len() == expected.len() {
                Ok(())
            } else {
                Err(format!("{active:#?}"))
            }
        },
    );

    // The backup metric, as `stack backup` writes it into the textfile volume, 2 days old.
    let volume = format!("{}_metrics-textfile:/m", project.name);
    let out = docker(&[
        "run",
        "--rm",
        "-v",
        &volume,
        BUSYBOX,
        "sh",
        "-c",
        "echo \"stack_backup_last_success_timestamp_seconds $(( $(date +%s) - 172800 ))\" \
         > /m/stack_backup.prom.tmp && mv /m/stack_backup.prom.tmp /m/stack_backup.prom",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The latency alert needs the service's histogram (a rate over its scrapes) for
    // `MONITORING_ALERT_FOR`: wait until Prometheus fires it before the service goes away
    // (its series then go stale and a pending alert would vanish). Under load the first
    // scrapes come late, which made this test flaky when it stopped the service at once.
    eventually_ok(
        "HttpLatencyP95High to fire",
        Duration::from_secs(180),
        || {
            let alerts = get_json(&prometheus, "/api/v1/alerts");
            let active = alerts["data"]["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if active
                .iter()
                .any(|a| a["labels"]["alertname"] == "HttpLatencyP95High" && a["state"] == "firing")
            {
                Ok(())
            } else {
                Err(format!("{active:#?}"))
            }
        },
    );

    // A service goes down.
    let out = docker(&["stop", "-t", "1", &project.container("web")]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Alertmanager delivers each alert with its labels and summary.
    let mut seen: Vec<Value> = Vec::new();
    let wanted = [
        "TargetDown",
        "DiskUsageHigh",
        "BackupTooOld",
        "HttpLatencyP95High",
    ];
    let firing = |seen: &[Value], name: &str| -> Option<Value> {
        seen.iter()
            .flat_map(|p| p["alerts"].as_array().cloned().unwrap_or_default())
            .find(|a| a["status"] == "firing" && a["labels"]["alertname"] == name)
    };
    // Rules with `for:` windows, scrapes and Alertmanager's grouping: minutes on a loaded
    // machine; the wait ends when every alert came.
    let limit = Duration::from_secs(300);
    let deadline = Instant::now() + limit;
    while !wanted.iter().all(|n| firing(&seen, n).is_some()) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "not every alert reached the webhook within {limit:?}; received: {seen:#?}"
        );
        if let Ok(payload) = received.recv_timeout(left.min(Duration::from_secs(5))) {
            seen.push(payload);
        }
    }
    let down = firing(&seen, "TargetDown").unwrap();
    assert_eq!(down["labels"]["job"], "web", "{down:#}");
    assert_eq!(down["labels"]["project"], project.name.as_str(), "{down:#}");
    assert_eq!(
        down["annotations"]["summary"], "web (web:8080) is down",
        "{down:#}"
    );
    let latency = firing(&seen, "HttpLatencyP95High").unwrap();
    assert_eq!(latency["labels"]["job"], "web", "{latency:#}");
    let summary = latency["annotations"]["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(summary.starts_with("web: HTTP p95 is "), "{latency:#}");
    let backup = firing(&seen, "BackupTooOld").unwrap();
    let summary = backup["annotations"]["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(
        summary.starts_with("The last good backup is "),
        "{backup:#}"
    );
    let disk = firing(&seen, "DiskUsageHigh").unwrap();
    let summary = disk["annotations"]["summary"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with("Disk /") && summary.ends_with("% full"),
        "{disk:#}"
    );
}

/// Item 7: the provisioned Grafana dashboard, checked without a Grafana (none is packaged
/// by Debian, and no registry is reachable: it has NOT been loaded into a live Grafana).
/// Checked: the fields Grafana's dashboard schema (schemaVersion 39) requires, panel ids
/// and grid positions, every query on the provisioned Prometheus data source, the panels
/// the issue asks for, and every PromQL expression parsed by `promtool`.
#[test]
fn the_grafana_dashboard_has_the_schemas_fields_and_valid_queries() {
    let promtool = common::require_tool("promtool");
    let project = common::fixture("monitoring");
    project.generate_secrets("prod");
    let bundle = project.build("prod", None);
    let provider = std::fs::read_to_string(bundle.join("grafana/dashboards.yml")).unwrap();
    assert!(
        provider.contains("path: /etc/grafana/dashboards"),
        "{provider}"
    );
    let datasources = std::fs::read_to_string(bundle.join("grafana/datasources.yml")).unwrap();
    assert!(datasources.contains("uid: prometheus"), "{datasources}");
    let compose = std::fs::read_to_string(bundle.join("docker-compose.yml")).unwrap();
    assert!(
        compose.contains("/etc/grafana/provisioning/dashboards/stack.yml")
            && compose.contains("/etc/grafana/dashboards"),
        "grafana does not mount the dashboard provider and folder"
    );

    let json = std::fs::read_to_string(bundle.join("grafana/dashboards/stack.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&json).unwrap();
    let uid = dashboard["uid"].as_str().expect("uid");
    assert!(!uid.is_empty() && uid.len() <= 40, "uid {uid:?}");
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    assert!(dashboard["time"]["from"].is_string() && dashboard["time"]["to"].is_string());
    assert!(dashboard["templating"]["list"].is_array());
    assert!(dashboard["annotations"]["list"].is_array());
    assert!(
        dashboard.get("id").is_none(),
        "a provisioned dashboard has no id"
    );

    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in panels {
        let id = panel["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        assert!(
            panel["type"].is_string() && panel["title"].is_string(),
            "{panel}"
        );
        let grid = &panel["gridPos"];
        for field in ["h", "w", "x", "y"] {
            assert!(grid[field].is_u64(), "gridPos.{field}: {panel}");
        }
        assert!(
            grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24,
            "wider than the grid: {panel}"
        );
        let mut refs = BTreeSet::new();
        for target in panel["targets"].as_array().expect("targets") {
            assert!(refs.insert(target["refId"].as_str().expect("refId").to_string()));
            assert_eq!(target["datasource"]["uid"], "prometheus", "{target}");
            exprs.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    let all = exprs.join("\n");
    for metric in [
        "up",
        "http_request_duration_seconds_count",
        "http_request_duration_seconds_bucket",
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "node_filesystem_avail_bytes",
        "stack_backup_last_success_timestamp_seconds",
        "stack_backup_last_verify_timestamp_seconds",
    ] {
        assert!(all.contains(metric), "no panel shows {metric}");
    }

    // Each query as a recording rule: promtool parses the PromQL.
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, expr)| serde_json::json!({ "record": format!("stack:panel{i}"), "expr": expr }))
        .collect();
    let file = bundle.join("panel-queries.json");
    std::fs::write(
        &file,
        serde_json::json!({ "groups": [ { "name": "panels", "rules": rules } ] }).to_string(),
    )
    .unwrap();
    promtool_passes(&promtool, "check", &file, "promtool refuses a panel query");
}

/// `CertificateMissing` under `promtool test rules` with the rendered rule file: it fires
/// for a host whose `stack_certificate_missing` stays 1 for 30 minutes, not before, and
/// not for a host whose certificate came after 3 minutes.
#[test]
fn the_certificate_missing_alert_fires_under_promtool() {
    let promtool = common::require_tool("promtool");
    let project = common::fixture("monitoring");
    project.generate_secrets("prod");
    let bundle = project.build("prod", None);
    let rules = std::fs::read_to_string(bundle.join("prometheus/alerts.yml")).unwrap();
    assert!(rules.contains("alert: CertificateMissing"), "{rules}");
    let test = bundle.join("prometheus/certificates.test.yml");
    let description = "HTTPS to a routed host fails: the proxy has had no valid certificate for \
        it for 30 minutes (does its DNS point at the server? does the ACME server answer, or \
        rate-limit? see `stack doctor ENV`, `stack logs proxy`, or `stack logs certbot` for nginx).";
    std::fs::write(
        &test,
        format!(
            "rule_files: [alerts.yml]\nevaluation_interval: 1m\ntests:\n\
             - interval: 1m\n  input_series:\n\
             \x20   - series: 'stack_certificate_missing{{host=\"a.example.test\"}}'\n      values: '1x60'\n\
             \x20   - series: 'stack_certificate_missing{{host=\"b.example.test\"}}'\n      values: '1 1 1 0x60'\n\
             \x20 alert_rule_test:\n\
             \x20   - alertname: CertificateMissing\n      eval_time: 20m\n      exp_alerts: []\n\
             \x20   - alertname: CertificateMissing\n      eval_time: 40m\n      exp_alerts:\n\
             \x20       - exp_labels: {{severity: critical, host: a.example.test}}\n\
             \x20         exp_annotations:\n\
             \x20           summary: 'The proxy has no certificate for a.example.test'\n\
             \x20           description: '{description}'\n"
        ),
    )
    .unwrap();
    promtool_passes(&promtool, "test", &test, "promtool test rules");
}

/// `promtool <verb> rules <file>` succeeds; `what` and its output otherwise.
fn promtool_passes(promtool: &std::path::Path, verb: &str, file: &std::path::Path, what: &str) {
    let out = StdCommand::new(promtool)
        .args([verb, "rules"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// One HTTP/1.1 request over TCP (`Connection: close`): the status code and the body
/// ([`common::ANSWER_LIMIT`] to answer).
fn request(address: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("{address}: {e}"));
    stream.set_read_timeout(Some(common::ANSWER_LIMIT)).unwrap();
    // A body (`{}`) with every method but GET, which the engine refuses one on. HTTP/1.1:
    // haproxy refuses an HTTP/1.0 request with a body as malformed (413), and the point
    // is the filter's answer.
    let body = match method {
        "GET" => "\r\n",
        _ => "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{body}"
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status line: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// An HTTP/1.1 request from the app container `container` (busybox, on the project's
/// `default` network) with `nc` (this static busybox's `wget` crashes in its resolver):
/// the status code when an answer came, with nc's output. A name that does not resolve
/// or an address that does not answer within 3 s gives no status.
fn from_app(
    container: &str,
    host: &str,
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> (Option<u16>, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let env = format!("REQUEST={request}");
    let port = port.to_string();
    let out = docker(&[
        "exec",
        "-e",
        &env,
        container,
        "sh",
        "-c",
        r#"printf '%s' "$REQUEST" | timeout 10 nc -w 3 "$1" "$2""#,
        "sh",
        host,
        &port,
    ]);
    let stdout = text(&out.stdout);
    let status = stdout
        .lines()
        .next()
        .filter(|line| line.starts_with("HTTP/"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok());
    (status, format!("{stdout}{}", text(&out.stderr)))
}

/// Whether the app container `container` resolves `name` (busybox `nslookup`, through
/// the engine's DNS), with its output.
fn resolves(container: &str, name: &str) -> (bool, String) {
    let out = docker(&["exec", container, "timeout", "10", "nslookup", name]);
    let output = format!("{}{}", text(&out.stdout), text(&out.stderr));
    (
        out.status.success() && !output.contains("can't find"),
        output,
    )
}

/// Security issue, item 8: from an app container on `default`, Prometheus cannot be
/// quit (no lifecycle API), Alertmanager cannot be silenced and docker-proxy cannot be
/// reached (neither is on `default`); on the monitoring network docker-proxy answers the
/// reads promtail's discovery and log reading and cAdvisor make, and refuses every write
/// without the engine seeing it. Prometheus still scrapes the app (it joins `default`).
/// promtail itself has no Debian-built image: that it ships logs through the proxy is
/// NOT proven live here; the requests its docker_sd and docker target make are.
#[test]
fn an_app_container_cannot_switch_monitoring_off() {
    let project = Project::new("guard", "http://127.0.0.1:9/unused");
    project.ok(&["start"]);
    let web = project.container("web");
    let prometheus = project.prometheus();
    let prometheus_up = || {
        TcpStream::connect(&prometheus).is_ok() && request(&prometheus, "GET", "/-/ready").0 == 200
    };
    eventually("prometheus ready", Duration::from_secs(180), prometheus_up);

    // Prometheus: reachable from the app (it joins `default` to scrape it: this also
    // shows the app's requests work), but /-/quit is refused.
    let (status, output) = from_app(&web, "prometheus", 9090, "GET", "/-/ready", "");
    assert_eq!(
        status,
        Some(200),
        "the app cannot reach prometheus: {output}"
    );
    let (status, output) = from_app(&web, "prometheus", 9090, "POST", "/-/quit", "{}");
    assert_eq!(
        status,
        Some(403),
        "POST /-/quit from an app container: {output}"
    );
    // Part of the scenario, not a wait for a state: a quit that had been accepted would
    // take Prometheus down within this window; nothing happens that could be waited for.
    std::thread::sleep(Duration::from_secs(2));
    assert!(prometheus_up(), "prometheus went down after POST /-/quit");
    let (status, _) = request(&prometheus, "POST", "/-/reload");
    assert_eq!(status, 403, "the lifecycle API is on");

    // Alertmanager: neither its name nor its address answers the app, so no silence.
    let silence = r#"{"matchers":[{"name":"alertname","value":".+","isRegex":true}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"app","comment":"quiet"}"#;
    let (status, output) = from_app(
        &web,
        "alertmanager",
        9093,
        "POST",
        "/api/v2/silences",
        silence,
    );
    assert_eq!(status, None, "an app container set a silence: {output}");
    let alertmanager_ip = project.address("alertmanager", "monitoring");
    let (status, output) = from_app(
        &web,
        &alertmanager_ip,
        9093,
        "POST",
        "/api/v2/silences",
        silence,
    );
    assert_eq!(
        status, None,
        "an app container reached alertmanager at {alertmanager_ip}: {output}"
    );
    let (found, output) = resolves(&web, "alertmanager");
    assert!(!found, "an app container resolves alertmanager: {output}");
    let alertmanager = format!("{alertmanager_ip}:9093");
    let silences = get_json(&alertmanager, "/api/v2/silences");
    assert_eq!(silences, serde_json::json!([]), "{silences}");

    // docker-proxy: nor does it.
    let (status, output) = from_app(&web, "docker-proxy", 2375, "GET", "/_ping", "");
    assert_eq!(
        status, None,
        "an app container reached docker-proxy: {output}"
    );
    let proxy_ip = project.address("docker-proxy", "monitoring");
    let (status, output) = from_app(&web, &proxy_ip, 2375, "GET", "/_ping", "");
    assert_eq!(
        status, None,
        "an app container reached docker-proxy at {proxy_ip}: {output}"
    );
    let (found, output) = resolves(&web, "docker-proxy");
    assert!(!found, "an app container resolves docker-proxy: {output}");

    // On the monitoring network: the reads pass, the writes are refused.
    let proxy = format!("{proxy_ip}:2375");
    common::eventually("docker-proxy answers", common::LIVE_LIMIT, || {
        TcpStream::connect(&proxy).is_ok()
    });
    let web_id = text(&docker(&["inspect", "-f", "{{.Id}}", &web]).stdout)
        .trim()
        .to_string();
    let filter = format!(
        "/v1.41/containers/json?filters=%7B%22label%22%3A%5B%22com.docker.compose.project%3D{}%22%5D%7D",
        project.name
    );
    for path in [
        "/_ping".to_string(),
        "/version".to_string(),
        "/v1.41/info".to_string(),
        filter.clone(),
        "/v1.41/networks".to_string(),
        format!("/v1.41/containers/{web_id}/json"),
        format!("/v1.41/containers/{web_id}/logs?stdout=1&stderr=1&tail=10"),
    ] {
        let (status, body) = request(&proxy, "GET", &path);
        assert_eq!(status, 200, "GET {path}: {body}");
    }
    let (_, listed) = request(&proxy, "GET", &filter);
    assert!(listed.contains(&web_id), "the app is not listed: {listed}");
    for (method, path) in [
        ("POST", "/v1.41/containers/create".to_string()),
        ("POST", format!("/v1.41/containers/{web_id}/stop")),
        ("POST", format!("/containers/{web_id}/kill")),
        ("POST", format!("/v1.41/containers/{web_id}/exec")),
        ("DELETE", format!("/v1.41/containers/{web_id}?force=1")),
        ("PUT", format!("/v1.41/containers/{web_id}/archive?path=/")),
        ("POST", "/v1.41/images/create?fromImage=busybox".to_string()),
        ("DELETE", "/v1.41/images/busybox".to_string()),
        ("GET", "/v1.41/secrets".to_string()),
        (
            "GET",
            "/v1.41/containers/json/../../containers/create".to_string(),
        ),
    ] {
        let (status, body) = request(&proxy, method, &path);
        assert_eq!(status, 403, "{method} {path} was not refused: {body}");
    }
    let running = text(&docker(&["inspect", "-f", "{{.State.Running}}", &web]).stdout);
    assert_eq!(
        running.trim(),
        "true",
        "the app was stopped through the proxy"
    );

    // The filter docker-proxy runs is valid haproxy configuration (`haproxy -c`).
    let out = docker(&[
        "exec",
        &project.container("docker-proxy"),
        "haproxy",
        "-c",
        "-f",
        "/usr/local/etc/haproxy/haproxy.cfg",
    ]);
    assert!(
        out.status.success(),
        "haproxy -c refuses the rendered filter: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
