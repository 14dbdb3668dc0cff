//! `stack doctor`, against the real engine and a real SSH server (a `stack-test/vm-docker`
//! machine): checks that pass, checks that fail with their fix, the exit codes, `--json`.
//! Every container a test creates is named after the test and the process, and removed
//! when it ends, passed or failed.

use serde_json::Value;

use common::{docker, text, Project};

mod common;

/// A project `name` from `stack init` (one routed `web` service, proxy caddy) in a temp
/// dir; its staging host is `staging.NAME.example.com`. Tests run in parallel: each
/// uses its own name.
fn project(name: &str) -> Project {
    let temp = tempfile::tempdir().unwrap();
    common::stack()
        .current_dir(temp.path())
        .args(["init", "--yes", "--name", name, "app"])
        .assert()
        .success();
    let dir = temp.path().join("app").canonicalize().unwrap();
    Project::in_dir(temp, dir)
}

/// `stack doctor --json ARGS` with `envs`: exit code, the parsed report, stderr.
fn doctor(project: &Project, args: &[&str], envs: &[(&str, &str)]) -> (i32, Value, String) {
    let mut command = project.stack();
    command.args(["doctor", "--json"]).args(args);
    for (key, value) in envs {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON on stdout ({e}): {}{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report, text(&out.stderr))
}

/// The check named `name` in a report.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {report:#}"))
}

/// A report's exit code follows its checks: 1 when one failed, else 0.
fn assert_exit(code: i32, report: &Value) {
    let failed = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["status"] == "failure");
    assert_eq!(code, if failed { 1 } else { 0 }, "{report:#}");
    assert_eq!(report["ok"], !failed, "{report:#}");
}

#[test]
fn the_local_engine_passes_with_its_version_and_image_store() {
    common::require_engine(&[]);
    let project = project("doctorlocal");
    let (code, report, stderr) = doctor(&project, &[], &[]);
    assert_exit(code, &report);
    let engine = check(&report, "engine");
    assert_eq!(engine["status"], "ok", "{report:#}");
    let detail = engine["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Docker ")
            && detail.contains("(API 1.")
            && detail.contains("image store "),
        "{detail}"
    );
    assert_eq!(check(&report, "project name")["status"], "ok");
    for port in ["port 80", "port 443"] {
        assert_ne!(check(&report, port)["status"], Value::Null);
    }
    // The dev environment has no server: nothing about one is checked.
    assert!(!stderr.contains("server"), "{stderr}");
    assert!(report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| !c["name"].as_str().unwrap().starts_with("server")));
}

#[test]
fn no_engine_fails_with_the_fix_and_exit_1() {
    let project = project("doctornoengine");
    let (code, report, _) = doctor(
        &project,
        &[],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["ok"], false);
    let engine = check(&report, "engine");
    assert_eq!(engine["status"], "failure");
    assert!(
        engine["detail"]
            .as_str()
            .unwrap()
            .contains("unix:///nonexistent/docker.sock"),
        "{engine}"
    );
    assert!(
        engine["fix"].as_str().unwrap().contains("DOCKER_HOST"),
        "{engine}"
    );

    // Without --json: one line per check, the failure with its fix, on stderr.
    let out = project
        .stack()
        .arg("doctor")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("FAIL engine: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains(" — fix: start Docker"), "{line}");
    assert!(stderr.contains("error: doctor: 1 of"), "{stderr}");
}

/// Containers of another compose project with the same name, started elsewhere.
#[test]
fn a_project_name_taken_by_another_project_fails() {
    const BUSYBOX: &str = "stack-test/busybox:latest";
    common::require_engine(&[BUSYBOX]);
    let project = project("doctortaken");
    let name = format!("stack-doctor-taken-{}", std::process::id());
    // Removes every container labelled with the project name, ours included.
    let _removed = common::Removed("doctortaken".into());
    let created = docker(&[
        "create",
        "--name",
        &name,
        "--label",
        "com.docker.compose.project=doctortaken",
        "--label",
        "com.docker.compose.project.working_dir=/srv/someone-else",
        BUSYBOX,
        "true",
    ]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let (code, report, _) = doctor(&project, &[], &[]);
    assert_eq!(code, 1, "{report:#}");
    let taken = check(&report, "project name");
    assert_eq!(taken["status"], "failure", "{report:#}");
    assert!(
        taken["detail"]
            .as_str()
            .unwrap()
            .contains("/srv/someone-else"),
        "{taken}"
    );
    assert!(taken["fix"].as_str().unwrap().contains("STACK_PROJECT"));
}

#[test]
fn an_unreachable_server_and_a_missing_key_fail() {
    let project = project("doctorunreachable");
    let port = common::free_port();
    std::fs::write(
        project.path("environments/staging/server.env"),
        format!(
            "SERVER_HOST=127.0.0.1\nSERVER_PORT={port}\nSERVER_USER=deploy\nSERVER_SSH_KEY={}\n",
            project.path("no-such-key").display()
        ),
    )
    .unwrap();
    let (code, report, _) = doctor(&project, &["staging"], &[]);
    assert_eq!(code, 1, "{report:#}");
    let key = check(&report, "ssh key");
    assert_eq!(key["status"], "failure");
    assert!(key["detail"].as_str().unwrap().contains("does not exist"));
    assert!(key["fix"].as_str().unwrap().contains("ssh-keygen"));
    let known = check(&report, "known host");
    assert_eq!(known["status"], "failure", "{known}");
    assert!(known["fix"].as_str().unwrap().contains("ssh-keyscan -p"));
    let server = check(&report, "server");
    assert_eq!(server["status"], "failure", "{server}");
    assert!(
        server["detail"].as_str().unwrap().contains("not checked"),
        "{server}"
    );
    // The routed host is an example.com name: DNS does not point at 127.0.0.1.
    let dns = check(&report, "dns staging.doctorunreachable.example.com");
    assert_eq!(dns["status"], "failure", "{dns}");
}

/// A real server: key, known host, SSH, its engine, disk, memory and clock pass; the
/// routed host's DNS does not point at it, which fails with the address to set.
#[test]
fn a_reachable_server_passes_and_names_the_dns_to_fix() {
    let vm = common::vm::Vm::boot("doctor", "stack-test/vm-docker:latest");
    let project = project("doctorvm");
    std::fs::write(
        project.path("environments/staging/server.env"),
        format!(
            "SERVER_HOST={}\nSERVER_USER=root\nSERVER_PATH=/opt/doctorapp\n",
            vm.ip()
        ),
    )
    .unwrap();
    let config = vm.ssh_config();
    let (code, report, _) = doctor(
        &project,
        &["staging"],
        &[("STACK_SSH_CONFIG", config.to_str().unwrap())],
    );
    assert_exit(code, &report);
    for name in [
        "ssh key",
        "known host",
        "server",
        "server engine",
        "server clock",
    ] {
        assert_eq!(check(&report, name)["status"], "ok", "{name}: {report:#}");
    }
    let engine = check(&report, "server engine")["detail"].as_str().unwrap();
    assert!(engine.contains("Docker 20.10"), "{engine}");
    for name in ["server disk", "server memory"] {
        assert_ne!(check(&report, name)["status"], "failure", "{report:#}");
    }
    let dns = check(&report, "dns staging.doctorvm.example.com");
    assert_eq!(dns["status"], "failure", "{report:#}");
    assert!(
        dns["fix"].as_str().unwrap().contains(&vm.ip()),
        "the fix names the server's address: {dns}"
    );
    assert_eq!(code, 1);
}
