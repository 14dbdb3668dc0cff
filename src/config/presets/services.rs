//! The services of the multi-service presets: MONITORING and BACKUP.

use super::{EnvSource, PresetService, When, MONITORING_NETWORK};

/// Prometheus, Alertmanager, Grafana, Loki + Promtail, node-exporter, cAdvisor, the
/// read-only Docker API filter in front of the socket (docker-proxy) and the exporters of
/// the database presets. Their configuration files are rendered into the bundle by
/// `render::monitoring`.
///
/// Networks (README "Monitoring, proven live"): everything but the exporters is on the
/// preset's own `monitoring` network, which app containers are not on. Prometheus also
/// joins the networks of the services it scrapes (`presets::attach_networks`), Grafana
/// also joins `default` (the proxy reaches it there, and does not join `monitoring`). No
/// service mounts the Docker socket but docker-proxy, which passes only reads.
pub(super) const MONITORING_SERVICES: &[PresetService] = &[
    PresetService {
        name: "prometheus",
        when: When::Always,
        attrs: &[
            ("IMAGE", "prom/prometheus:v2.55.1"),
            ("PORT", "9090"),
            (
                "COMMAND",
                "--config.file=/etc/prometheus/prometheus.yml --storage.tsdb.path=/prometheus \
                 --storage.tsdb.retention.time={MONITORING_RETENTION}",
            ),
            // Plus the networks of the services it scrapes (`presets::attach_networks`).
            ("NETWORKS", MONITORING_NETWORK),
            ("VOLUMES", "prometheus-data:/prometheus"),
            ("HEALTH", "/-/ready"),
            ("HEALTH_INTERVAL", "10s"),
            ("HEALTH_START_PERIOD", "10s"),
            ("DEPENDS_ON", "alertmanager"),
            ("STRATEGY", "recreate"),
        ],
        // Not read by Prometheus: the renderer writes its configuration and rules from
        // them, and they show in `stack config`.
        env: &[
            (
                "STACK_SCRAPE_INTERVAL",
                EnvSource::Key("MONITORING_SCRAPE_INTERVAL"),
            ),
            ("STACK_ALERT_FOR", EnvSource::Key("MONITORING_ALERT_FOR")),
            ("STACK_DISK_PERCENT", EnvSource::Key("MONITORING_DISK_PERCENT")),
        ],
        mounts: &[("prometheus", "/etc/prometheus")],
    },
    PresetService {
        name: "alertmanager",
        when: When::Always,
        attrs: &[
            ("IMAGE", "prom/alertmanager:v0.27.0"),
            ("PORT", "9093"),
            (
                "COMMAND",
                "--config.file=/etc/alertmanager/alertmanager.yml --storage.path=/alertmanager",
            ),
            ("VOLUMES", "alertmanager-data:/alertmanager"),
            // The image's own user, said here so a secret file is readable by it (0444).
            ("USER", "nobody"),
            ("NETWORKS", MONITORING_NETWORK),
            ("HEALTH", "/-/ready"),
            ("HEALTH_INTERVAL", "10s"),
            ("STRATEGY", "recreate"),
        ],
        // Not read by Alertmanager (its configuration does not expand variables): the
        // renderer writes the receiver from it, and it shows in `stack config`. A secret
        // webhook becomes the file `ALERT_WEBHOOK_FILE` instead (`url_file`).
        env: &[
            (
                "STACK_ALERT_WEBHOOK",
                EnvSource::Key("MONITORING_ALERT_WEBHOOK"),
            ),
            ("STACK_GROUP_WAIT", EnvSource::Key("MONITORING_GROUP_WAIT")),
        ],
        mounts: &[("alertmanager", "/etc/alertmanager")],
    },
    PresetService {
        name: "grafana",
        when: When::Always,
        attrs: &[
            ("IMAGE", "grafana/grafana:11.3.0"),
            ("PORT", "3000"),
            ("ROUTE", "{MONITORING_GRAFANA_ROUTE}"),
            ("VOLUMES", "grafana-data:/var/lib/grafana"),
            // `default` first: the proxy reaches it there (and joins no `monitoring`).
            ("NETWORKS", "default,monitoring"),
            ("HEALTH", "/api/health"),
            ("HEALTH_INTERVAL", "10s"),
            ("HEALTH_START_PERIOD", "30s"),
            ("DEPENDS_ON", "prometheus,loki"),
            ("STRATEGY", "recreate"),
        ],
        env: &[
            ("GF_SECURITY_ADMIN_USER", EnvSource::Fixed("admin")),
            (
                "GF_SECURITY_ADMIN_PASSWORD",
                EnvSource::Key("MONITORING_GRAFANA_PASSWORD"),
            ),
            ("GF_USERS_ALLOW_SIGN_UP", EnvSource::Fixed("false")),
            ("GF_ANALYTICS_REPORTING_ENABLED", EnvSource::Fixed("false")),
            ("GF_ANALYTICS_CHECK_FOR_UPDATES", EnvSource::Fixed("false")),
        ],
        mounts: &[
            (
                "grafana/datasources.yml",
                "/etc/grafana/provisioning/datasources/stack.yml",
            ),
            (
                "grafana/dashboards.yml",
                "/etc/grafana/provisioning/dashboards/stack.yml",
            ),
            ("grafana/dashboards", "/etc/grafana/dashboards"),
        ],
    },
    PresetService {
        name: "loki",
        when: When::Always,
        attrs: &[
            ("IMAGE", "grafana/loki:3.2.1"),
            ("PORT", "3100"),
            (
                "COMMAND",
                "-config.file=/etc/loki/config.yml -config.expand-env=true",
            ),
            ("VOLUMES", "loki-data:/loki"),
            ("NETWORKS", MONITORING_NETWORK),
            ("STRATEGY", "recreate"),
        ],
        env: &[(
            "LOKI_RETENTION_PERIOD",
            EnvSource::Template("{LOKI_RETENTION}"),
        )],
        mounts: &[("loki", "/etc/loki")],
    },
    PresetService {
        name: "promtail",
        when: When::Always,
        attrs: &[
            ("IMAGE", "grafana/promtail:3.2.1"),
            ("PORT", "9080"),
            ("COMMAND", "-config.file=/etc/promtail/config.yml"),
            // The Docker API through docker-proxy (promtail.yml), not the socket.
            ("VOLUMES", "promtail-data:/var/lib/promtail"),
            ("NETWORKS", MONITORING_NETWORK),
            ("DEPENDS_ON", "loki,docker-proxy"),
            ("STRATEGY", "recreate"),
        ],
        env: &[],
        mounts: &[("promtail", "/etc/promtail")],
    },
    PresetService {
        name: "node-exporter",
        when: When::Always,
        attrs: &[
            ("IMAGE", "prom/node-exporter:v1.8.2"),
            ("PORT", "9100"),
            (
                "COMMAND",
                "--path.rootfs=/host --path.procfs=/host/proc --path.sysfs=/host/sys \
                 --collector.textfile.directory=/textfile \
                 '--collector.filesystem.mount-points-exclude=^/(dev|proc|sys|run|var/lib/docker/.+)($|/)'",
            ),
            ("VOLUMES", "/:/host:ro,metrics-textfile:/textfile:ro"),
            ("NETWORKS", MONITORING_NETWORK),
            ("STRATEGY", "recreate"),
        ],
        env: &[],
        mounts: &[],
    },
    PresetService {
        name: "cadvisor",
        when: When::Always,
        attrs: &[
            ("IMAGE", "gcr.io/cadvisor/cadvisor:v0.49.1"),
            ("PORT", "8080"),
            // The Docker API through docker-proxy, not the socket (no /var/run mount).
            (
                "COMMAND",
                "--docker_only=true --housekeeping_interval=30s --docker=tcp://docker-proxy:2375",
            ),
            (
                "VOLUMES",
                "/:/rootfs:ro,/sys:/sys:ro,/var/lib/docker:/var/lib/docker:ro",
            ),
            ("NETWORKS", MONITORING_NETWORK),
            ("DEPENDS_ON", "docker-proxy"),
            ("STRATEGY", "recreate"),
        ],
        env: &[],
        mounts: &[],
    },
    // haproxy in front of the Docker socket: GET and HEAD on the few paths promtail's
    // discovery and log reading and cAdvisor use, everything else 403 (docker-proxy.cfg).
    // Root, as the socket's group differs per host; no PORT, so not scraped.
    PresetService {
        name: "docker-proxy",
        when: When::Always,
        attrs: &[
            ("IMAGE", "haproxy:2.6"),
            ("USER", "root"),
            ("VOLUMES", "/var/run/docker.sock:/var/run/docker.sock:ro"),
            ("NETWORKS", MONITORING_NETWORK),
            ("STRATEGY", "recreate"),
        ],
        env: &[],
        mounts: &[(
            "docker-proxy/haproxy.cfg",
            "/usr/local/etc/haproxy/haproxy.cfg",
        )],
    },
    PresetService {
        name: "postgres-exporter",
        when: When::Preset("POSTGRES"),
        attrs: &[
            (
                "IMAGE",
                "quay.io/prometheuscommunity/postgres-exporter:v0.16.0",
            ),
            ("PORT", "9187"),
            ("DEPENDS_ON", "postgres"),
        ],
        env: &[
            (
                "DATA_SOURCE_URI",
                EnvSource::Template("postgres:5432/{POSTGRES_DB}?sslmode=disable"),
            ),
            ("DATA_SOURCE_USER", EnvSource::Key("POSTGRES_USER")),
            ("DATA_SOURCE_PASS", EnvSource::Key("POSTGRES_PASSWORD")),
        ],
        mounts: &[],
    },
    PresetService {
        name: "redis-exporter",
        when: When::Preset("REDIS"),
        attrs: &[
            ("IMAGE", "oliver006/redis_exporter:v1.66.0"),
            ("PORT", "9121"),
            ("DEPENDS_ON", "redis"),
        ],
        env: &[
            ("REDIS_ADDR", EnvSource::Fixed("redis://redis:6379")),
            ("REDIS_PASSWORD", EnvSource::Key("REDIS_PASSWORD")),
        ],
        mounts: &[],
    },
];

/// Scheduled dumps and verifications (the postgres service's image, so `pg_dump` and the
/// throwaway verification server match the database; its script's own schedule loop,
/// since Debian's postgres image has no cron) and, for an S3 target, an rclone sidecar
/// that copies each new dump off-site and applies the retention there.
pub(super) const BACKUP_SERVICES: &[PresetService] = &[
    PresetService {
        name: "backup",
        when: When::Always,
        attrs: &[
            ("IMAGE", "{POSTGRES_IMAGE}"),
            ("COMMAND", "sh /etc/stack-backup/backup.sh schedule"),
            (
                "VOLUMES",
                "{BACKUP_STORE}:/backups,metrics-textfile:/metrics{BACKUP_VOLUME_MOUNTS}",
            ),
            ("DEPENDS_ON", "postgres"),
            ("STRATEGY", "recreate"),
        ],
        env: &[
            ("PGHOST", EnvSource::Fixed("postgres")),
            ("PGPORT", EnvSource::Fixed("5432")),
            ("PGDATABASE", EnvSource::Key("POSTGRES_DB")),
            ("PGUSER", EnvSource::Key("POSTGRES_USER")),
            ("PGPASSWORD", EnvSource::Key("POSTGRES_PASSWORD")),
            ("BACKUP_CRON", EnvSource::Template("{BACKUP_CRON}")),
            (
                "BACKUP_VERIFY_CRON",
                EnvSource::Template("{BACKUP_VERIFY_CRON}"),
            ),
            ("BACKUP_KEEP_DAILY", EnvSource::Key("BACKUP_KEEP_DAILY")),
            ("BACKUP_KEEP_MONTHLY", EnvSource::Key("BACKUP_KEEP_MONTHLY")),
            ("BACKUP_TARGET", EnvSource::Key("BACKUP_TARGET")),
            ("BACKUP_VOLUMES", EnvSource::Key("BACKUP_VOLUMES")),
            // Read by `stack backup run`, which pauses the volumes' users around each archive.
            (
                "BACKUP_VOLUMES_PAUSE",
                EnvSource::Key("BACKUP_VOLUMES_PAUSE"),
            ),
            // Read by the monitoring renderer (the BackupVerifyTooOld alert).
            (
                "BACKUP_VERIFY_MAX_AGE",
                EnvSource::Key("BACKUP_VERIFY_MAX_AGE"),
            ),
        ],
        mounts: &[("backup", "/etc/stack-backup")],
    },
    PresetService {
        name: "backup-offsite",
        when: When::KeyPrefix("BACKUP_TARGET", "s3://"),
        attrs: &[
            ("IMAGE", "rclone/rclone:1.68.2"),
            ("ENTRYPOINT", "sh"),
            ("COMMAND", "/etc/stack-backup/backup.sh offsite-watch"),
            (
                "VOLUMES",
                "backup-data:/backups:ro,metrics-textfile:/metrics",
            ),
            ("DEPENDS_ON", "backup"),
            ("STRATEGY", "recreate"),
        ],
        env: &[
            (
                "BACKUP_OFFSITE",
                EnvSource::Template("offsite:{BACKUP_S3_PATH}"),
            ),
            ("BACKUP_TARGET", EnvSource::Key("BACKUP_TARGET")),
            ("BACKUP_KEEP_DAILY", EnvSource::Key("BACKUP_KEEP_DAILY")),
            ("BACKUP_KEEP_MONTHLY", EnvSource::Key("BACKUP_KEEP_MONTHLY")),
            ("BACKUP_VOLUMES", EnvSource::Key("BACKUP_VOLUMES")),
            ("RCLONE_CONFIG_OFFSITE_TYPE", EnvSource::Fixed("s3")),
            ("RCLONE_CONFIG_OFFSITE_PROVIDER", EnvSource::Fixed("Other")),
            (
                "RCLONE_CONFIG_OFFSITE_ENDPOINT",
                EnvSource::Key("BACKUP_S3_ENDPOINT"),
            ),
            (
                "RCLONE_CONFIG_OFFSITE_REGION",
                EnvSource::Key("BACKUP_S3_REGION"),
            ),
            (
                "RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID",
                EnvSource::Key("BACKUP_S3_ACCESS_KEY"),
            ),
            (
                "RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY",
                EnvSource::Key("BACKUP_S3_SECRET_KEY"),
            ),
            // Least privilege: a key that may write objects need not create buckets.
            (
                "RCLONE_CONFIG_OFFSITE_NO_CHECK_BUCKET",
                EnvSource::Fixed("true"),
            ),
        ],
        mounts: &[("backup", "/etc/stack-backup")],
    },
];
