//! The MONITORING preset's configuration files, mounted into its services from the
//! bundle: Prometheus (scrape jobs and alert rules), Alertmanager, Grafana's data
//! sources, Loki, Promtail and docker-proxy's read-only Docker API filter (haproxy). A
//! file is rendered only when its service runs in the environment.

use super::{header, render_template, Bundle};
use crate::error::Result;
use crate::model::{Alertmanager, Desired, Prometheus};
use minijinja::context;

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

pub fn render(desired: &Desired, bundle: &mut Bundle) -> Result<()> {
    let header = header(desired);
    let monitoring = &desired.monitoring;
    if let Some(prometheus) = &monitoring.prometheus {
        prometheus_files(desired, prometheus, &header, bundle)?;
    }
    if let Some(alertmanager) = &monitoring.alertmanager {
        alertmanager_file(alertmanager, &header, bundle)?;
    }
    if monitoring.grafana {
        grafana_files(desired, &header, bundle)?;
    }
    other_files(desired, &header, bundle)
}

/// `prometheus.yml` and the alert rules.
fn prometheus_files(
    desired: &Desired,
    prometheus: &Prometheus,
    header: &str,
    bundle: &mut Bundle,
) -> Result<()> {
    bundle.add(
        PROMETHEUS_FILE,
        render_template(
            "monitoring/prometheus.yml.j2",
            context! {
                header => header,
                project => &desired.project,
                env => &desired.env,
                alertmanager => &prometheus.alertmanager,
                scrape_interval => &prometheus.scrape_interval,
                jobs => &prometheus.jobs,
            },
        )?,
    );
    bundle.add(
        ALERTS_FILE,
        render_template(
            "monitoring/alerts.yml.j2",
            context! {
                header => header,
                backup => desired.backup.is_some(),
                // `stack_certificates.prom` in node-exporter's textfile volume: written by
                // certbot (nginx) or by stack from Caddy's storage.
                certificates => !crate::model::acme_hosts(desired).is_empty(),
                alert_for => &prometheus.alert_for,
                disk_percent => &prometheus.disk_percent,
                // Read only with the backup rules.
                verify_max_age_hours => desired.backup.as_ref().map(|b| b.verify_max_age_hours),
            },
        )?,
    );
    Ok(())
}

/// `alertmanager.yml`: the webhook receiver, when one is set.
fn alertmanager_file(settings: &Alertmanager, header: &str, bundle: &mut Bundle) -> Result<()> {
    // JSON strings are YAML strings: the URL needs no further quoting.
    let webhook = settings
        .webhook
        .as_ref()
        .map(|text| serde_json::Value::String(text.clone()).to_string());
    let receiver = if webhook.is_some() || settings.webhook_file.is_some() {
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
                webhook_file => &settings.webhook_file,
                receiver => receiver,
                group_wait => &settings.group_wait,
            },
        )?,
    );
    Ok(())
}

/// Grafana's provisioned data sources, dashboard provider and dashboard.
fn grafana_files(desired: &Desired, header: &str, bundle: &mut Bundle) -> Result<()> {
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
        serde_json::to_string_pretty(&dashboard(desired)).expect("a JSON value always serializes");
    bundle.add(DASHBOARD_FILE, format!("{json}\n"));
    Ok(())
}

/// Loki's, promtail's and the Docker API proxy's configurations.
fn other_files(desired: &Desired, header: &str, bundle: &mut Bundle) -> Result<()> {
    let monitoring = &desired.monitoring;
    if monitoring.loki {
        bundle.add(
            LOKI_FILE,
            render_template("monitoring/loki.yml.j2", context! { header => header })?,
        );
    }
    if monitoring.promtail {
        bundle.add(
            PROMTAIL_FILE,
            render_template(
                "monitoring/promtail.yml.j2",
                context! { header => header, project => &desired.project, env => &desired.env },
            )?,
        );
    }
    if monitoring.docker_proxy {
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
fn dashboard(desired: &Desired) -> serde_json::Value {
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
        "uid": format!("stack-{}", desired.project),
        "title": format!("{} ({})", desired.project, desired.env),
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
