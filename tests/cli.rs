//! Command-line behaviour, run on the real binary in temporary directories: precedence
//! and `config explain`, redaction, `build --check`, atomic builds, secrets, `init`,
//! completions and the production audit.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{fixture, fixture_for, mode, parse_env, read_tree, stack, text};
use predicates::prelude::*;

/// The 1-based line of the first line of `file` in `project` that starts with `prefix`.
fn line_of(project: &common::Project, file: &str, prefix: &str) -> usize {
    fs::read_to_string(project.path(file))
        .unwrap()
        .lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with `{prefix}` in `{file}`"))
        + 1
}

#[test]
fn set_wins_and_explain_lists_every_source_in_order() {
    let project = fixture("wrnexus");
    let base = line_of(&project, "stack.env", "VERSION=");
    let overlay = line_of(&project, "environments/prod/stack.env", "VERSION=");

    // Without --set the overlay wins over stack.env.
    let output = project
        .stack()
        .args(["--env", "prod", "config", "explain", "VERSION"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "VERSION=1.8.3", "{stdout}");
    assert!(lines[1].contains(&format!("stack.env:{base}:")), "{stdout}");
    assert!(!lines[1].contains("environments/"), "{stdout}");
    assert!(
        lines[2].contains(&format!("environments/prod/stack.env:{overlay}:")),
        "{stdout}"
    );
    assert_eq!(lines.len(), 3, "{stdout}");

    // --set comes last and wins, also through interpolation.
    let output = project
        .stack()
        .args(["--env", "prod", "--set", "VERSION=9.9.9"])
        .args(["config", "explain", "VERSION"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "VERSION=9.9.9", "{stdout}");
    assert!(lines[1].contains(&format!("stack.env:{base}:")), "{stdout}");
    assert!(
        lines[2].contains(&format!("environments/prod/stack.env:{overlay}:")),
        "{stdout}"
    );
    assert!(lines[3].contains("--set"), "{stdout}");
    assert_eq!(lines.len(), 4, "{stdout}");

    project
        .stack()
        .args(["--env", "prod", "--set", "VERSION=9.9.9"])
        .args(["config", "explain", "SERVICE_API_IMAGE"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "SERVICE_API_IMAGE=registry.workroot.dev/wrnexus/api:9.9.9\n",
        ));

    // And the rendered bundle follows.
    project.generate_secrets("prod");
    project
        .stack()
        .args(["--env", "prod", "--set", "VERSION=9.9.9", "build"])
        .assert()
        .success();
    let compose =
        fs::read_to_string(project.bundle_dir("prod").join("docker-compose.yml")).unwrap();
    assert!(compose.contains("image: registry.workroot.dev/wrnexus/api:9.9.9"));
    assert!(!compose.contains("1.8.3"));
}

#[test]
fn explain_of_a_key_set_only_in_an_overlay() {
    let project = fixture("wrnexus");
    let overlay = line_of(
        &project,
        "environments/prod/stack.env",
        "SERVICE_API_REPLICAS=",
    );
    let output = project
        .stack()
        .args(["--env", "prod", "config", "explain", "SERVICE_API_REPLICAS"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "SERVICE_API_REPLICAS=2".to_string(),
            format!("  set by     environments/prod/stack.env:{overlay}:1"),
        ],
    );
    // In dev the overlay of prod is not read.
    project
        .stack()
        .args(["config", "explain", "SERVICE_API_REPLICAS"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not set"));
}

#[test]
fn stack_env_variable_chooses_the_environment() {
    let project = fixture("wrnexus");
    project
        .stack()
        .env("STACK_ENV", "prod")
        .args(["config", "explain", "VERSION"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("VERSION=1.8.3\n"));
    // --env wins over STACK_ENV.
    project
        .stack()
        .env("STACK_ENV", "prod")
        .args(["--env", "staging", "config", "explain", "VERSION"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("VERSION=1.9.0-rc.2\n"));
}

#[test]
fn config_redacts_secrets() {
    let project = fixture_for("wrnexus", "prod");
    let secrets = project.secrets("prod");
    assert!(secrets.len() >= 4, "{secrets:?}");

    let output = project
        .stack()
        .args(["--env", "prod", "config", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(json["env"], "prod");
    assert_eq!(json["keys"]["VERSION"]["value"], "1.8.3");
    let session = &json["keys"]["SESSION_KEY"]["value"];
    assert!(session.is_string(), "SESSION_KEY is listed: {stdout}");
    assert_ne!(session, &serde_json::json!(secrets["SESSION_KEY"]));

    let plain = project
        .stack()
        .args(["--env", "prod", "config"])
        .output()
        .unwrap();
    assert!(plain.status.success());
    let explain = project
        .stack()
        .args([
            "--env",
            "prod",
            "config",
            "explain",
            "SERVICE_API_ENV_DATABASE_URL",
        ])
        .output()
        .unwrap();
    assert!(explain.status.success());
    for (name, value) in &secrets {
        for (what, out) in [
            ("config --json", &stdout),
            ("config", &text(&plain.stdout)),
            ("config explain", &text(&explain.stdout)),
        ] {
            assert!(!out.contains(value.as_str()), "`{what}` shows `{name}`");
        }
    }
}

#[test]
fn build_check_passes_after_build_and_fails_with_a_diff_when_stale() {
    let project = fixture("minimal");
    project.build("dev", None);
    let bundle = project.bundle_dir("dev");
    let built = read_tree(&bundle);
    project.stack().args(["build", "--check"]).assert().code(0);

    project.append("SERVICE_WEB_HEALTH=/ready-check\n");
    let output = project.stack().args(["build", "--check"]).output().unwrap();
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(stdout.contains("--- a/docker-compose.yml"), "{stdout}");
    assert!(stdout.contains("+++ b/docker-compose.yml"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with('+') && l.contains("/ready-check")),
        "{stdout}"
    );
    assert!(text(&output.stderr).contains("stale"));
    assert_eq!(read_tree(&bundle), built, "--check wrote to the bundle");

    project.build("dev", None);
    project.stack().args(["build", "--check"]).assert().code(0);
}

#[test]
fn build_check_without_a_bundle_is_stale() {
    let project = fixture("minimal");
    project.stack().args(["build", "--check"]).assert().code(1);
    assert!(!project.path(".stack/dev").exists());
}

#[test]
fn a_failed_build_keeps_the_previous_bundle() {
    let project = fixture_for("wrnexus", "prod");
    project.build("prod", None);
    let bundle = project.bundle_dir("prod");
    let built = read_tree(&bundle);
    assert!(built.contains_key("docker-compose.yml"));

    // The overlay would win over a bad value of a key it sets; use one it does not.
    project.append("SERVICE_API_HEALTH_RETRIES=many\n");
    project
        .stack()
        .args(["--env", "prod", "build"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("SERVICE_API_HEALTH_RETRIES"));
    assert_eq!(read_tree(&bundle), built, "the bundle changed");
    let stray = common::leftovers(&project.path(".stack"), "prod");
    assert!(stray.is_empty(), "left behind: {stray:?}");
}

#[test]
fn build_out_writes_where_asked() {
    let project = fixture("minimal");
    let out = project.temp.path().join("elsewhere/bundle");
    project.build("dev", Some(&out));
    assert!(out.join("docker-compose.yml").is_file());
    assert!(!project.path(".stack").exists());
    // Rebuilding over a bundle stack wrote is allowed.
    project.build("dev", Some(&out));
}

#[test]
fn secrets_generate_is_strong_private_and_never_overwrites() {
    let project = fixture("wrnexus");
    project.generate_secrets("prod");
    let path = project.path("environments/prod/secrets.env");
    assert_eq!(mode(&path), 0o600);
    let secrets = project.secrets("prod");
    for name in [
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "SESSION_KEY",
        "STRIPE_WEBHOOK_SECRET",
    ] {
        let value = secrets
            .get(name)
            .unwrap_or_else(|| panic!("`{name}` was not generated: {secrets:?}"));
        assert!(value.chars().count() >= 32, "`{name}` is short: {value}");
    }
    let distinct: std::collections::BTreeSet<&String> = secrets.values().collect();
    assert_eq!(distinct.len(), secrets.len(), "two secrets share a value");

    let first = fs::read(&path).unwrap();
    project.generate_secrets("prod");
    assert_eq!(
        fs::read(&path).unwrap(),
        first,
        "a second run changed the file"
    );

    // A value the user set is kept; only the missing ones are added.
    let mine = "my-own-Strong-Value-0123456789-abcdef";
    fs::write(&path, format!("SESSION_KEY={mine}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    project.generate_secrets("prod");
    let again = project.secrets("prod");
    assert_eq!(again["SESSION_KEY"], mine);
    assert_eq!(again.len(), secrets.len(), "{again:?}");
}

#[test]
fn secrets_check_fails_on_a_weak_secret() {
    let project = fixture("otto");
    // Nothing generated yet: missing secrets fail.
    project
        .stack()
        .args(["secrets", "check", "prod"])
        .assert()
        .code(1);
    project.generate_secrets("prod");
    project
        .stack()
        .args(["secrets", "check", "prod"])
        .assert()
        .code(0);

    let path = project.path("environments/prod/secrets.env");
    let weak: String = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("POSTGRES_PASSWORD=") {
                "POSTGRES_PASSWORD=password\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(&path, weak).unwrap();
    assert_eq!(
        parse_env(&fs::read_to_string(&path).unwrap())["POSTGRES_PASSWORD"],
        "password"
    );
    project
        .stack()
        .args(["secrets", "check", "prod"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("POSTGRES_PASSWORD"));
}

#[test]
fn secrets_check_fails_on_a_readable_file() {
    let project = fixture_for("otto", "prod");
    let path = project.path("environments/prod/secrets.env");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    project
        .stack()
        .args(["secrets", "check", "prod"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("chmod 600"));
}

#[test]
fn prod_build_without_secrets_names_the_fix() {
    let project = fixture("otto");
    project
        .stack()
        .args(["--env", "prod", "build"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("stack secrets generate prod"));
    assert!(!project.path(".stack").exists());
    assert!(!project.path("environments/prod/secrets.env").exists());
}

#[test]
fn dev_build_generates_missing_secrets_once() {
    let project = fixture("otto");
    project.build("dev", None);
    let path = project.path("environments/dev/secrets.env");
    assert_eq!(mode(&path), 0o600);
    let first = fs::read(&path).unwrap();
    assert!(project.secrets("dev").contains_key("POSTGRES_PASSWORD"));
    project.build("dev", None);
    assert_eq!(fs::read(&path).unwrap(), first);
}

#[test]
fn init_writes_a_dockerignore_of_the_secret_paths_and_keeps_the_users() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("shop");
    stack()
        .current_dir(temp.path())
        .args(["init", "--yes"])
        .arg(&dir)
        .assert()
        .success();
    let ignore = fs::read_to_string(dir.join(".dockerignore")).unwrap();
    for line in [
        ".stack/",
        "environments/*/secrets.env",
        "stack.local.env",
        "backups/",
    ] {
        assert!(ignore.lines().any(|l| l == line), "{line} not in {ignore}");
    }
    let mine = temp.path().join("mine");
    fs::create_dir(&mine).unwrap();
    fs::write(mine.join(".dockerignore"), "node_modules\n").unwrap();
    stack()
        .current_dir(temp.path())
        .args(["init", "--yes"])
        .arg(&mine)
        .assert()
        .success();
    assert_eq!(
        fs::read_to_string(mine.join(".dockerignore")).unwrap(),
        "node_modules\n"
    );
}

#[test]
fn init_then_build() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("shop");
    stack()
        .current_dir(temp.path())
        .args(["init", "--yes"])
        .arg(&dir)
        .assert()
        .success();
    for file in [
        "stack.env",
        "environments/staging/stack.env",
        "environments/prod/stack.env",
        ".gitignore",
    ] {
        assert!(dir.join(file).is_file(), "init did not write `{file}`");
    }
    let gitignore = fs::read_to_string(dir.join(".gitignore")).unwrap();
    assert!(gitignore.contains("secrets.env"), "{gitignore}");
    // Dumps hold the whole database (BACKUP_TARGET defaults to ./backups).
    assert!(gitignore.lines().any(|l| l == "backups/"), "{gitignore}");
    stack()
        .current_dir(temp.path())
        .arg("-C")
        .arg(&dir)
        .arg("build")
        .assert()
        .success();
    assert!(dir.join(".stack/dev/docker-compose.yml").is_file());

    let project_file = fs::read(dir.join("stack.env")).unwrap();
    stack()
        .current_dir(temp.path())
        .args(["init", "--yes"])
        .arg(&dir)
        .assert()
        .code(2);
    assert_eq!(fs::read(dir.join("stack.env")).unwrap(), project_file);
}

/// `init --image` and `--port` are checked by the project file's own parsers: what
/// `init` accepts, `build` accepts; what it refuses is refused with exit 2 and no file.
#[test]
fn init_refuses_the_image_and_port_the_project_file_refuses() {
    let temp = tempfile::tempdir().unwrap();
    for (flag, value, message) in [
        ("--image", "Acme/API:1", "is not a valid image reference"),
        ("--image", "acme/api:1@sha256:12", "digest"),
        ("--port", "0", "must be a whole number from 1 to 65535"),
        ("--port", "70000", "must be a whole number from 1 to 65535"),
        ("--port", "http", "must be a whole number from 1 to 65535"),
    ] {
        let dir = temp.path().join("shop");
        let output = stack()
            .current_dir(temp.path())
            .args(["init", "--yes", flag, value])
            .arg(&dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{stderr}");
        assert!(stderr.contains(message), "{flag} {value}: {stderr}");
        assert!(!dir.join("stack.env").exists(), "{flag} {value}");
    }
    let dir = temp.path().join("ok");
    stack()
        .current_dir(temp.path())
        .args([
            "init",
            "--yes",
            "--image",
            "ghcr.io/acme/api:1.4.2",
            "--port",
            "8080",
        ])
        .arg(&dir)
        .assert()
        .success();
    let project = fs::read_to_string(dir.join("stack.env")).unwrap();
    assert!(project.contains("SERVICE_WEB_IMAGE=ghcr.io/acme/api:1.4.2\n"));
    assert!(project.contains("SERVICE_WEB_PORT=8080\n"));
    stack().arg("-C").arg(&dir).arg("build").assert().success();
}

/// `MONITORING_ALERT_WEBHOOK` set in secrets.env is used, not dropped: Alertmanager reads
/// it from a secret file (`url_file`), and no plain file of the bundle holds it.
#[test]
fn a_secret_alert_webhook_reaches_alertmanager_as_a_file() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let url = "https://hooks.example.com/services/T0/B1/never-in-a-plain-file";
    fs::write(
        dir.join("stack.env"),
        "STACK_PROJECT=shop\nMONITORING_ENABLED=true\n",
    )
    .unwrap();
    fs::create_dir_all(dir.join("environments/staging")).unwrap();
    fs::write(
        dir.join("environments/staging/secrets.env"),
        format!(
            "MONITORING_ALERT_WEBHOOK={url}\nMONITORING_GRAFANA_PASSWORD=Zq8vN3xK1pL7wR2tY6uI9oA4sD5fG0hJ\n"
        ),
    )
    .unwrap();
    let output = stack()
        .current_dir(dir)
        .args(["--env", "staging", "build"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bundle = dir.join(".stack/staging");
    let config = fs::read_to_string(bundle.join("alertmanager/alertmanager.yml")).unwrap();
    assert!(config.contains("receiver: webhook"), "{config}");
    assert!(
        config.contains("url_file: /run/secrets/alert_webhook"),
        "{config}"
    );
    assert!(!config.contains(url), "{config}");
    let compose = fs::read_to_string(bundle.join("docker-compose.yml")).unwrap();
    assert!(
        compose.contains("target: /run/secrets/alert_webhook"),
        "{compose}"
    );
    assert!(!compose.contains(url));
    // Alertmanager runs as `nobody`: the file is the world-readable copy (0444) in the
    // bundle's private secrets folder.
    let file = bundle.join("secrets/444/MONITORING_ALERT_WEBHOOK");
    assert_eq!(fs::read_to_string(&file).unwrap().trim(), url);
}

/// `build --check` names a stale secret file of the bundle without showing it: the
/// override file that carried a secret with `${` to Compose included.
#[test]
fn build_check_never_shows_a_stale_secret_file() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    fs::write(
        dir.join("stack.env"),
        "STACK_PROJECT=shop\nSTACK_SERVICES=api\nSTACK_SECRETS=T1\n\
         SERVICE_API_IMAGE=busybox:1.36\nSERVICE_API_ENV_T1=${T1}\n",
    )
    .unwrap();
    let secrets = dir.join("environments/dev/secrets.env");
    fs::create_dir_all(secrets.parent().unwrap()).unwrap();
    fs::write(&secrets, "T1='old-${FOO}-never-shown'\n").unwrap();
    stack().current_dir(dir).arg("build").assert().success();
    assert!(dir.join(".stack/dev/docker-compose.override.yml").is_file());
    fs::write(&secrets, "T1='new-plain-value-1234'\n").unwrap();
    let output = stack()
        .current_dir(dir)
        .args(["build", "--check"])
        .output()
        .unwrap();
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("`docker-compose.override.yml`: stack no longer writes it (not shown)"),
        "{shown}"
    );
    assert!(!shown.contains("never-shown"), "{shown}");
}

#[test]
fn completions_for_bash() {
    stack()
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_stack"))
        .stdout(predicate::str::contains("complete"))
        .stdout(predicate::str::contains("build"));
    stack()
        .args(["completions", "nosuchshell"])
        .assert()
        .code(2);
}

#[test]
fn check_prod_fails_on_an_unpinned_latest_image() {
    // minimal's only service runs `stack-test/busybox:latest`.
    let project = fixture_for("minimal", "prod");
    project
        .stack()
        .args(["check", "prod"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("service `web`"))
        .stderr(predicate::str::contains("stack-test/busybox:latest"));
}

#[test]
fn check_prod_passes_on_a_pinned_project() {
    let project = fixture_for("wrnexus", "prod");
    project
        .stack()
        .args(["check", "prod"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("passed"));
    // Pinning matters: the same project with `:latest` fails, naming the service.
    project
        .stack()
        .args(["--set", "VERSION=latest", "check", "prod"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("service `api`"));
}

#[test]
fn help_and_version_exit_0_and_usage_errors_exit_2() {
    stack()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("build"));
    stack()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
    stack().arg("no-such-command").assert().code(2);
}

/// `stack check prod` on `project`: exit 1, and stderr names every one of `needles`.
fn check_prod_fails(project: &common::Project, needles: &[&str]) {
    let output = project.stack().args(["check", "prod"]).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "no `{needle}` in:\n{stderr}");
    }
}

#[test]
fn check_prod_fails_on_the_docker_socket_mounted_into_an_app() {
    for socket in ["/var/run/docker.sock", "/run/docker.sock"] {
        let project = fixture_for("wrnexus", "prod");
        project.append(&format!(
            "SERVICE_API_VOLUMES={socket}:/var/run/docker.sock:ro\n"
        ));
        check_prod_fails(
            &project,
            &["service `api` mounts", socket, "SERVICE_API_VOLUMES"],
        );
    }
}

/// Host access the project asks for (`DEVICES`, `PRIVILEGED`, the host's network) is the
/// user's choice: `check` warns with the key, its value and its `file:line`, and passes.
#[test]
fn check_prod_warns_about_host_devices_and_privileges_by_key_and_line() {
    let project = fixture_for("wrnexus", "prod");
    project.append("SERVICE_API_DEVICES=/dev/net/tun\nSERVICE_API_PRIVILEGED=true\n");
    let lines = fs::read_to_string(project.dir.join("stack.env"))
        .unwrap()
        .lines()
        .count();
    let output = project.stack().args(["check", "prod"]).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    for needle in [
        format!(
            "WARN service `api` has `SERVICE_API_DEVICES=/dev/net/tun` (stack.env:{})",
            lines - 1
        ),
        format!("WARN service `api` has `SERVICE_API_PRIVILEGED=true` (stack.env:{lines})"),
    ] {
        assert!(stderr.contains(&needle), "no `{needle}` in:\n{stderr}");
    }
}

#[test]
fn check_prod_fails_on_the_hosts_root_mounted_into_an_app() {
    let project = fixture_for("wrnexus", "prod");
    project.append("SERVICE_API_VOLUMES=/:/host:ro\n");
    check_prod_fails(&project, &["service `api` mounts `/`", "root file system"]);
}

#[test]
fn check_prod_allows_the_host_mounts_of_the_monitoring_preset_only() {
    let project = fixture_for("monitoring", "prod");
    let output = project.stack().args(["check", "prod"]).output().unwrap();
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no app mounts the Docker socket"),
        "docker-proxy, node-exporter and cadvisor are allowed:\n{stderr}"
    );
    // The same socket in a service of the project is not.
    project.append("STACK_SERVICES=api,agent\nSERVICE_AGENT_IMAGE=acme/agent:1.0\nSERVICE_AGENT_VOLUMES=/var/run/docker.sock:/var/run/docker.sock\n");
    check_prod_fails(&project, &["service `agent` mounts `/var/run/docker.sock`"]);
}

#[test]
fn check_prod_fails_on_a_build_context_outside_the_repository() {
    let project = fixture_for("wrnexus", "prod");
    // No `.git`: the project folder is the boundary.
    project.append("SERVICE_API_BUILD=../services/api\n");
    check_prod_fails(
        &project,
        &["service `api` builds from", "outside the repository"],
    );
    // A monorepo: `../services/api` is inside the repository.
    fs::create_dir_all(project.temp.path().join("services/api")).unwrap();
    fs::create_dir(project.temp.path().join(".git")).unwrap();
    project
        .stack()
        .args(["check", "prod"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("every build context is inside"));
    // Up and out of the repository is not.
    project.append("SERVICE_API_BUILD=../../../../../../../../etc\n");
    check_prod_fails(&project, &["service `api` builds from `/etc`"]);
}

#[test]
fn check_prod_fails_on_a_wildcard_route_with_automatic_tls() {
    let project = fixture_for("wrnexus", "prod");
    project.append("SERVICE_API_ROUTE=*.${STACK_DOMAIN}\n");
    check_prod_fails(
        &project,
        &[
            "service `api` routes the wildcard `*.wrnexus.com`",
            "STACK_TLS=auto",
        ],
    );
    project
        .stack()
        .args(["--set", "STACK_TLS=internal", "check", "prod"])
        .assert()
        .code(0);
}

#[test]
fn check_prod_fails_on_a_localhost_domain() {
    let project = fixture_for("wrnexus", "prod");
    let output = project
        .stack()
        .args(["--set", "STACK_DOMAIN=wrnexus.localhost", "check", "prod"])
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`STACK_DOMAIN` is `wrnexus.localhost` in prod"),
        "{stderr}"
    );
    assert!(
        stderr.contains("service `api` routes `api.wrnexus.localhost`"),
        "{stderr}"
    );
}

/// `ENV_FILE`: a file's variables reach the service under its own `ENV_<VAR>`; a bad
/// line is exit 2 with file:line; a secret-looking name is refused without its value.
#[test]
fn env_file_variables_merge_under_the_services_own() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| fs::write(dir.path().join(path), text).unwrap();
    write(
        "stack.env",
        "STACK_PROJECT=envfile\nSTACK_PROXY=none\nSTACK_SERVICES=web\n\
         SERVICE_WEB_IMAGE=nginx:1\nSERVICE_WEB_ENV_FILE=common.env,web.env\n\
         SERVICE_WEB_ENV_MODE=from-stack-env\n",
    );
    write(
        "common.env",
        "# shared\nLOG_LEVEL=info\nMODE=from-common\nhttp_proxy=http://proxy:3128\n",
    );
    write("web.env", "export LOG_LEVEL='debug'\n");
    let out = dir.path().join("out");
    stack()
        .current_dir(dir.path())
        .args(["build", "--out"])
        .arg(&out)
        .assert()
        .success();
    let compose = fs::read_to_string(out.join("docker-compose.yml")).unwrap();
    assert!(compose.contains("LOG_LEVEL: debug"), "{compose}");
    assert!(compose.contains("MODE: from-stack-env"), "{compose}");
    assert!(
        compose.contains("http_proxy: http://proxy:3128"),
        "{compose}"
    );

    // A bad line is named by file:line, never shown: it may hold a value.
    write(
        "web.env",
        "LOG_LEVEL=debug\nnot a pair hunter2\nbad name=hunter2\n",
    );
    let bad = stack()
        .current_dir(dir.path())
        .args(["build", "--out"])
        .arg(&out)
        .assert()
        .code(2);
    let stderr = text(&bad.get_output().stderr);
    assert!(stderr.contains("web.env:2"), "{stderr}");
    assert!(stderr.contains("web.env:3"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    write("web.env", "API_TOKEN=tok-4f9a2c\n");
    let refused = stack()
        .current_dir(dir.path())
        .args(["build", "--out"])
        .arg(&out)
        .assert()
        .code(2);
    let stderr = text(&refused.get_output().stderr);
    assert!(
        stderr.contains("`API_TOKEN` looks like a secret"),
        "{stderr}"
    );
    assert!(!stderr.contains("tok-4f9a2c"), "{stderr}");

    fs::remove_file(dir.path().join("web.env")).unwrap();
    stack()
        .current_dir(dir.path())
        .args(["build", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("web.env"));
}

/// clap reads `--lock-wait` with the project file's duration parser: a bad one is exit 2
/// before anything runs, for `deploy` and `rollback` alike.
#[test]
fn a_bad_lock_wait_is_refused_by_the_argument_parser() {
    let project = fixture("wrnexus");
    for args in [
        &["deploy", "prod", "--lock-wait", "5x"][..],
        &["rollback", "prod", "--lock-wait", "soon"][..],
    ] {
        let output = project.stack().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("is not a duration"), "{stderr}");
    }
}

/// clap checks durations, enums and release ids while parsing: a bad one is exit 2, with
/// what was wrong, before anything runs.
#[test]
fn bad_argument_values_are_refused_by_the_argument_parser() {
    let project = fixture("wrnexus");
    for (args, message) in [
        (&["logs", "--since", "10 minutes"][..], "is not a duration"),
        (
            &["init", "--presets", "postgres,mysql"][..],
            "invalid value 'mysql'",
        ),
        (
            &["rollback", "prod", "prod-yesterday"][..],
            "is not a release id",
        ),
    ] {
        let output = project.stack().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

/// The production gate is a setting: a deploy of an environment with
/// `STACK_PROTECTED=true` must pass the production audit before anything connects;
/// `prod` is protected unless it says `STACK_PROTECTED=false`.
#[test]
fn a_protected_environment_must_pass_the_audit_before_a_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    // `STACK_TLS=off` fails the audit of a protected environment.
    write(
        "stack.env",
        "STACK_PROJECT=gate\nSTACK_PROXY=none\nSTACK_TLS=off\nSTACK_DOMAIN=gate.example.com\n\
         STACK_SERVICES=web\nSERVICE_WEB_IMAGE=nginx:1.27.3\n",
    );
    // Port 1 refuses at once: a deploy that passes the gate fails connecting.
    for env in ["staging", "production", "prod"] {
        write(
            &format!("environments/{env}/server.env"),
            "SERVER_HOST=127.0.0.1\nSERVER_PORT=1\nSERVER_PATH=/tmp/stack-gate-test\n",
        );
    }
    write(
        "environments/production/stack.env",
        "STACK_PROTECTED=true\n",
    );
    let deploy = |env: &str, extra: &[&str]| {
        let out = stack()
            .current_dir(dir.path())
            .env("STACK_SSH_CONFIG", "/dev/null")
            .args(["deploy", env, "--allow-dirty"])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        )
    };
    for env in ["production", "prod"] {
        let (code, said) = deploy(env, &[]);
        assert_eq!(code, Some(1), "{env}: {said}");
        assert!(
            said.contains("is protected (`STACK_PROTECTED`)") && said.contains("STACK_TLS=off"),
            "{env}: {said}"
        );
        // `--force` passes the gate (and then cannot connect).
        let (_, said) = deploy(env, &["--force"]);
        assert!(!said.contains("protected"), "{env}: {said}");
    }
    // Not protected: no audit, the deploy goes on (and cannot connect).
    let (_, said) = deploy("staging", &[]);
    assert!(!said.contains("protected"), "{said}");
    write("environments/prod/stack.env", "STACK_PROTECTED=false\n");
    let (_, said) = deploy("prod", &[]);
    assert!(!said.contains("protected"), "{said}");
    // A value that is no boolean is bad input.
    write("environments/staging/stack.env", "STACK_PROTECTED=maybe\n");
    let (code, said) = deploy("staging", &[]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("STACK_PROTECTED"), "{said}");
}

/// `--out` is checked before a dev project is loaded: a bad one exits 2 before the
/// missing dev secrets are generated, so nothing is written.
#[test]
fn a_bad_out_exits_2_before_dev_secrets_are_generated() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("stack.env"),
        "STACK_PROJECT=shop\nSTACK_PROXY=none\nSTACK_SERVICES=api\nSTACK_SECRETS=API_TOKEN\n\
         SERVICE_API_IMAGE=busybox:1.36\nSERVICE_API_ENV_API_TOKEN=${API_TOKEN}\n",
    )
    .unwrap();
    fs::write(dir.path().join("a-file"), "not a folder\n").unwrap();
    for out in ["a-file", "."] {
        let output = stack()
            .current_dir(dir.path())
            .args(["build", "--out", out])
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "--out {out}: {}",
            text(&output.stderr)
        );
        assert!(
            !dir.path().join("environments/dev/secrets.env").exists(),
            "--out {out}: secrets were generated"
        );
    }
    // A good `--out` generates them and builds.
    stack()
        .current_dir(dir.path())
        .args(["build"])
        .assert()
        .success();
    assert!(dir.path().join("environments/dev/secrets.env").exists());
}
