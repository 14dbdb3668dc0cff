//! Issue 21's import-only classes, run live: a Compose file with a logging driver, an
//! entrypoint reset, `volumes_from` and a `content:` config is imported and started on the
//! real engine, and the containers do what Compose's would.

use common::{docker, eventually, inspect, text, Project};

mod common;

use common::engine::BUSYBOX;

const REDIS: &str = "stack-test/redis:7";

#[test]
fn an_imported_file_s_logging_entrypoint_shared_volumes_and_configs_run_live() {
    common::require_engine(&[BUSYBOX, REDIS]);
    let project = Project::named("fid", "imported_runs_live");
    let compose = format!(
        "name: {}
services:
  writer:
    image: {BUSYBOX}
    command: [\"sh\", \"-c\", \"echo shared > /data/file; exec sleep 3600\"]
    volumes:
      - data:/data
    logging:
      driver: none
  reader:
    image: {REDIS}
    entrypoint: []
    command: [\"sleep\", \"3600\"]
    volumes_from:
      - writer:ro
    configs:
      - source: greeting
        target: /etc/greeting
    logging:
      driver: local
      options:
        max-size: 5m
volumes:
  data:
configs:
  greeting:
    content: hello config
",
        project.name
    );
    std::fs::write(project.path("docker-compose.yml"), compose).unwrap();
    project.ok(&["import", "compose", "docker-compose.yml", "."]);
    assert_eq!(
        std::fs::read_to_string(project.path("configs/greeting")).unwrap(),
        "hello config"
    );
    project.ok(&["start"]);
    let writer = project.container("writer");
    let reader = project.container("reader");
    // `logging`: each container has its own driver and options.
    assert_eq!(inspect(&writer, "{{.HostConfig.LogConfig.Type}}"), "none");
    assert_eq!(inspect(&reader, "{{.HostConfig.LogConfig.Type}}"), "local");
    assert_eq!(
        inspect(
            &reader,
            "{{index .HostConfig.LogConfig.Config \"max-size\"}}"
        ),
        "5m"
    );
    // `entrypoint: []`: the image's `docker-entrypoint.sh` is not run; `sleep` is PID 1.
    let entrypoint = inspect(&reader, "{{json .Config.Entrypoint}}");
    assert!(entrypoint == "null" || entrypoint == "[]", "{entrypoint}");
    let exec = |args: &[&str]| {
        let mut all = vec!["exec", reader.as_str()];
        all.extend(args);
        docker(&all)
    };
    assert_eq!(
        text(&exec(&["cat", "/proc/1/cmdline"]).stdout),
        "sleep\u{0}3600\u{0}"
    );
    // `volumes_from: [writer:ro]`: the same named volume, read-only here.
    eventually(
        "the reader sees the writer's file",
        common::LIVE_LIMIT,
        || text(&exec(&["cat", "/data/file"]).stdout).trim() == "shared",
    );
    assert!(!exec(&["touch", "/data/other"]).status.success());
    // `configs`: the written file, mounted read-only at its target.
    assert_eq!(
        text(&exec(&["cat", "/etc/greeting"]).stdout),
        "hello config"
    );
    assert!(!exec(&["sh", "-c", "echo x > /etc/greeting"])
        .status
        .success());
}
