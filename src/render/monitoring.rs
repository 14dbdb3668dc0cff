//! The MONITORING preset's configuration files, mounted into its services from the
//! bundle: Prometheus (scrape jobs and alert rules), Alertmanager, Grafana's data
//! sources, Loki, Promtail and docker-proxy's read-only Docker API filter (haproxy). A
//! file is rendered only when its service runs in the environment.

use minijinja::context;
use serde::Serialize;

use super::{header, render_template, Bundle};
use crate::config::{Config, EnvValue, Service};
use crate::error::Result;

/// The preset these files belong to.
pub const PRESET: &str = "MONITORING";

/// Bundle paths (mounted by the services of `config::presets`).
pub const PROMETHEUS_FILE: &str = "prometheus/prometheus.yml";
pub const ALERTS_FILE: &str = "prometheus/alerts.yml";
pub const ALERTMANAGER_FILE: &str = "alertmanager/alertmanager.yml";
pub const DATASOURCES_FILE: &str = "grafana/datasources.yml";
pub const DASHBOARDS_FILE: &str = "grafana/dashboards.yml";
pub const DASHBOARD_FILE: &str = "grafana/dashboards/stack.json";
pub const LOKI_FILE: &str = "loki/config.yml";
pub const PROMTAIL_FILE: &str = "promtail/config.yml";
pub const DOCKER_PROXY_FILE: &str = "docker-proxy/haproxy.cfg";

/// One Prometheus scrape job.
#[derive(Serialize)]
struct Job {
    name: String,
    host: String,
    port: u16,
    path: String,
    replicas: u32,
}

fn monitoring<'a>(config: &'a Config, name: &str) -> Option<&'a Service> {
    config
        .services
        .iter()
        .find(|s| s.name == name && s.preset == Some(PRESET))
}

/// Scrape jobs: the monitoring services (the exporters included), then each of the
/// project's own containers whose `METRICS` names a path (`presets::scrape_path`).
fn jobs(config: &Config) -> Vec<Job> {
    let ours = config.services.iter().filter(|s| s.preset == Some(PRESET));
    let theirs = config.services.iter().filter(|s| s.preset.is_none());
    ours.chain(theirs)
        .filter_map(|s| {
            let path = crate::config::presets::scrape_path(s)?;
            let host = if s.name == "prometheus" {
                "localhost".to_string()
            } else {
                s.name.clone()
            };
            Some(Job {
                name: s.name.clone(),
                host,
                port: s.port?,
                path,
                replicas: s.replicas,
            })
        })
        .collect()
}

pub fn render(config: &Config, bundle: &mut Bundle) -> Result<()> {
    let header = header(config);
    if let Some(prometheus) = monitoring(config, "prometheus") {
        prometheus_files(config, prometheus, &header, bundle)?;
    }
    if let Some(service) = monitoring(config, "alertmanager") {
        alertmanager_file(service, &header, bundle)?;
    }
    if monitoring(config, "grafana").is_some() {
        grafana_files(config, &header, bundle)?;
    }
    other_files(config, &header, bundle)
}

/// `prometheus.yml` and the alert rules.
fn prometheus_files(
    config: &Config,
    prometheus: &Service,
    header: &str,
    bundle: &mut Bundle,
) -> Result<()> {
    // Timings and the disk threshold, carried by the prometheus service (checked at
    // input; empty: the default).
    let setting = |name: &str| {
        prometheus
            .env_value(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let scrape_interval = setting("STACK_SCRAPE_INTERVAL").unwrap_or_else(|| "15s".into());
    let alert_for = setting("STACK_ALERT_FOR");
    let disk_percent = setting("STACK_DISK_PERCENT").unwrap_or_else(|| "80".into());
    let alertmanager = monitoring(config, "alertmanager")
        .and_then(|s| s.port)
        .map(|port| format!("alertmanager:{port}"))
        .unwrap_or_else(|| "alertmanager:9093".into());
    bundle.add(
        PROMETHEUS_FILE,
        render_template(
            "monitoring/prometheus.yml.j2",
            context! {
                header => header,
                project => &config.project,
                env => &config.env,
                alertmanager => alertmanager,
                scrape_interval => &scrape_interval,
                jobs => jobs(config),
            },
        )?,
    );
    let backup = config
        .services
        .iter()
        .find(|s| s.name == "backup" && s.preset == Some("BACKUP"));
    // BACKUP_VERIFY_MAX_AGE, carried by the backup service (checked at input).
    let verify_max_age_hours = backup
        .and_then(|s| s.env_value("BACKUP_VERIFY_MAX_AGE"))
        .and_then(crate::config::presets::retention_hours)
        .unwrap_or(8 * 24);
    bundle.add(
        ALERTS_FILE,
        render_template(
            "monitoring/alerts.yml.j2",
            context! {
                header => header,
                backup => backup.is_some(),
                // certbot writes `stack_certificates.prom` for node-exporter's textfile collector.
                certificates => crate::model::wants_certbot(config),
                alert_for => &alert_for,
                disk_percent => &disk_percent,
                verify_max_age_hours => verify_max_age_hours,
            },
        )?,
    );
    Ok(())
}

/// `alertmanager.yml`: the webhook receiver, when one is set.
fn alertmanager_file(service: &Service, header: &str, bundle: &mut Bundle) -> Result<()> {
    // JSON strings are YAML strings: the URL needs no further quoting.
    let webhook = service
        .env
        .get("STACK_ALERT_WEBHOOK")
        .and_then(|v| match v {
            EnvValue::Plain(text) if !text.is_empty() => Some(text),
            _ => None,
        })
        .map(|text| serde_json::Value::String(text.clone()).to_string());
    let group_wait = service
        .env_value("STACK_GROUP_WAIT")
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "30s".into());
    // A secret webhook: Alertmanager reads it from its secret file.
    let webhook_file = service
        .secret_files
        .iter()
        .find(|f| f.key == "MONITORING_ALERT_WEBHOOK")
        .map(|f| f.target.clone());
    let receiver = if webhook.is_some() || webhook_file.is_some() {
        "webhook"
    } else {
        "default"
    };
    bundle.add(
        ALERTMANAGER_FILE,
        render_template(
            "monitoring/alertmanager.yml.j2",
            context! {
                header => header,
                webhook => webhook,
                webhook_file => webhook_file,
                receiver => receiver,
                group_wait => group_wait,
            },
        )?,
    );
    Ok(())
}

/// Grafana's provisioned data sources, dashboard provider and dashboard.
fn grafana_files(config: &Config, header: &str, bundle: &mut Bundle) -> Result<()> {
    bundle.add(
        DATASOURCES_FILE,
        render_template(
            "monitoring/datasources.yml.j2",
            context! { header => header },
        )?,
    );
    bundle.add(
        DASHBOARDS_FILE,
        format!(
            "# {header}\napiVersion: 1\nproviders:\n  - name: stack\n    type: file\n    \
             disableDeletion: true\n    allowUiUpdates: false\n    options:\n      \
             path: /etc/grafana/dashboards\n"
        ),
    );
    let json =
        serde_json::to_string_pretty(&dashboard(config)).expect("a JSON value always serializes");
    bundle.add(DASHBOARD_FILE, format!("{json}\n"));
    Ok(())
}

/// Loki's, promtail's and the Docker API proxy's configurations.
fn other_files(config: &Config, header: &str, bundle: &mut Bundle) -> Result<()> {
    if monitoring(config, "loki").is_some() {
        bundle.add(
            LOKI_FILE,
            render_template("monitoring/loki.yml.j2", context! { header => header })?,
        );
    }
    if monitoring(config, "promtail").is_some() {
        bundle.add(
            PROMTAIL_FILE,
            render_template(
                "monitoring/promtail.yml.j2",
                context! { header => header, project => &config.project, env => &config.env },
            )?,
        );
    }
    if monitoring(config, "docker-proxy").is_some() {
        bundle.add(
            DOCKER_PROXY_FILE,
            render_template(
                "monitoring/docker-proxy.cfg.j2",
                context! { header => header },
            )?,
        );
    }
    Ok(())
}

/// One time-series panel of the dashboard, on the provisioned Prometheus data source.
fn panel(
    id: u32,
    title: &str,
    unit: &str,
    exprs: &[(&str, &str)],
    x: u32,
    y: u32,
) -> serde_json::Value {
    let targets: Vec<serde_json::Value> = exprs
        .iter()
        .zip(["A", "B", "C", "D"])
        .map(|((expr, legend), ref_id)| {
            serde_json::json!({
                "refId": ref_id,
                "datasource": { "type": "prometheus", "uid": "prometheus" },
                "expr": expr,
                "legendFormat": legend,
            })
        })
        .collect();
    serde_json::json!({
        "id": id,
        "type": "timeseries",
        "title": title,
        "datasource": { "type": "prometheus", "uid": "prometheus" },
        "gridPos": { "h": 8, "w": 12, "x": x, "y": y },
        "fieldConfig": { "defaults": { "unit": unit }, "overrides": [] },
        "options": {},
        "targets": targets,
    })
}

/// The provisioned Grafana dashboard: up/down per scrape job, request rate and p95 of
/// the services exposing `http_request_duration_seconds`, container CPU and memory
/// (cAdvisor), disk use (node-exporter), the last backup's age and the last verified
/// restore's age.
fn dashboard(config: &Config) -> serde_json::Value {
    let panels = vec![
        panel(1, "Up (1) / down (0) per service", "none", &[("up", "{{job}} {{instance}}")], 0, 0),
        panel(
            2,
            "Requests per second",
            "reqps",
            &[("sum by (job) (rate(http_request_duration_seconds_count[5m]))", "{{job}}")],
            12,
            0,
        ),
        panel(
            3,
            "HTTP p95 latency",
            "s",
            &[(
                "histogram_quantile(0.95, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))",
                "{{job}}",
            )],
            0,
            8,
        ),
        panel(
            4,
            "Container CPU",
            "percentunit",
            &[(
                "sum by (name) (rate(container_cpu_usage_seconds_total{name!=\"\"}[5m]))",
                "{{name}}",
            )],
            12,
            8,
        ),
        panel(
            5,
            "Container memory",
            "bytes",
            &[("sum by (name) (container_memory_working_set_bytes{name!=\"\"})", "{{name}}")],
            0,
            16,
        ),
        panel(
            6,
            "Disk used",
            "percent",
            &[(
                "100 * (1 - node_filesystem_avail_bytes{fstype!~\"tmpfs|ramfs|overlay|squashfs|nsfs|fuse.*\"} / node_filesystem_size_bytes{fstype!~\"tmpfs|ramfs|overlay|squashfs|nsfs|fuse.*\"})",
                "{{mountpoint}}",
            )],
            12,
            16,
        ),
        panel(
            7,
            "Backup age / last verified restore",
            "s",
            &[
                ("time() - stack_backup_last_success_timestamp_seconds", "last backup"),
                ("time() - stack_backup_last_verify_timestamp_seconds", "last verified restore"),
            ],
            0,
            24,
        ),
    ];
    serde_json::json!({
        "uid": format!("stack-{}", config.project),
        "title": format!("{} ({})", config.project, config.env),
        "tags": ["stack"],
        "timezone": "browser",
        "editable": false,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": { "from": "now-6h", "to": "now" },
        "templating": { "list": [] },
        "annotations": { "list": [] },
        "panels": panels,
    })
}
