//! Hostile and careless input: no data lost, no secret shown, no runaway memory. Each
//! test is one class of the issue, run on the real binary in a temporary directory.

mod common;

use std::fs;
use std::time::Duration;

use common::{fixture, read_tree, stack, text};
use predicates::prelude::*;

/// Long enough for any honest run; a hang or a runaway read fails instead of blocking.
const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn build_out_never_removes_the_project() {
    let project = fixture("minimal");
    project.build("dev", None);
    // A project that keeps a copy of the generated compose file at its root.
    fs::copy(
        project.bundle_dir("dev").join("docker-compose.yml"),
        project.path("docker-compose.yml"),
    )
    .unwrap();
    fs::create_dir_all(project.path(".git")).unwrap();
    fs::write(project.path(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    fs::create_dir_all(project.path("src")).unwrap();
    fs::write(project.path("src/main.rs"), "fn main() {}\n").unwrap();
    let before = read_tree(&project.dir);
    for out in [project.dir.clone(), project.temp.path().to_path_buf()] {
        let output = project
            .stack()
            .arg("build")
            .arg("--out")
            .arg(&out)
            .timeout(DEADLINE)
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{}: {stderr}", out.display());
        assert!(stderr.contains("holds the project"), "{stderr}");
        assert_eq!(read_tree(&project.dir), before, "the project changed");
    }
    // Relative to the working directory, as a user would type it.
    stack()
        .current_dir(&project.dir)
        .args(["build", "--out", "."])
        .timeout(DEADLINE)
        .assert()
        .code(2);
    assert_eq!(read_tree(&project.dir), before, "the project changed");
}

#[test]
fn build_out_refuses_a_generated_compose_file_among_other_files() {
    let project = fixture("minimal");
    let bundle = project.build("dev", None);
    let out = project.sibling("copy");
    fs::copy(
        bundle.join("docker-compose.yml"),
        out.join("docker-compose.yml"),
    )
    .unwrap();
    fs::write(out.join("README.md"), "mine\n").unwrap();
    let before = read_tree(&out);
    project
        .stack()
        .arg("build")
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`README.md`"));
    assert_eq!(read_tree(&out), before, "the directory was changed");
}

#[test]
fn files_put_in_the_bundle_are_kept_and_named() {
    let project = fixture("minimal");
    let bundle = project.build("dev", None);
    let manifest = fs::read_to_string(bundle.join(".stack-manifest")).unwrap();
    assert!(
        manifest.lines().any(|l| l == "docker-compose.yml"),
        "{manifest}"
    );
    fs::create_dir_all(bundle.join("certs")).unwrap();
    fs::write(
        bundle.join("certs/site.pem"),
        "-----BEGIN CERTIFICATE-----\n",
    )
    .unwrap();
    fs::write(bundle.join("notes.txt"), "call Alice\n").unwrap();
    let before = read_tree(&bundle);
    project.append("SERVICE_WEB_HEALTH=/ready\n");
    project
        .stack()
        .arg("build")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`certs/site.pem`"))
        .stderr(predicate::str::contains("`notes.txt`"))
        .stderr(predicate::str::contains("hint: "))
        .stderr(predicate::str::contains("mount"));
    assert_eq!(read_tree(&bundle), before, "the bundle changed");
    // Moved out, the build replaces the bundle and leaves nothing behind.
    fs::remove_dir_all(bundle.join("certs")).unwrap();
    fs::remove_file(bundle.join("notes.txt")).unwrap();
    project.build("dev", None);
    let compose = fs::read_to_string(bundle.join("docker-compose.yml")).unwrap();
    assert!(compose.contains("/ready"), "{compose}");
    let stray: Vec<String> = fs::read_dir(project.path(".stack"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "dev")
        .collect();
    assert!(stray.is_empty(), "left behind: {stray:?}");
}

#[test]
fn a_bundle_from_before_the_manifest_is_still_replaced() {
    let project = fixture("minimal");
    let bundle = project.build("dev", None);
    fs::remove_file(bundle.join(".stack-manifest")).unwrap();
    project.build("dev", None);
    assert!(bundle.join(".stack-manifest").is_file());
    project.stack().args(["build", "--check"]).assert().code(0);
}

#[test]
fn init_force_replaces_only_the_project_file_and_completes_gitignore() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("shop");
    fs::create_dir_all(dir.join("environments/prod")).unwrap();
    fs::write(dir.join(".gitignore"), "node_modules/\n/.stack\n").unwrap();
    let server = "SERVER_HOST=db.internal\nSERVER_USER=ops\n";
    fs::write(dir.join("environments/prod/server.env"), server).unwrap();
    stack()
        .current_dir(temp.path())
        .args(["init", "--yes"])
        .arg(&dir)
        .assert()
        .success();
    let gitignore = fs::read_to_string(dir.join(".gitignore")).unwrap();
    assert!(
        gitignore.starts_with("node_modules/\n/.stack\n"),
        "{gitignore}"
    );
    for line in ["environments/*/secrets.env", "stack.local.env"] {
        assert_eq!(
            gitignore.lines().filter(|l| *l == line).count(),
            1,
            "{gitignore}"
        );
    }
    // `/.stack` already ignores the bundles; not added twice.
    assert!(!gitignore.lines().any(|l| l == ".stack/"), "{gitignore}");
    let server_path = dir.join("environments/prod/server.env");
    assert_eq!(fs::read_to_string(&server_path).unwrap(), server);

    // `--force` replaces stack.env and nothing else.
    fs::write(dir.join("stack.env"), "STACK_PROJECT=old\n").unwrap();
    fs::write(dir.join(".gitignore"), "mine\n").unwrap();
    fs::write(&server_path, server).unwrap();
    stack()
        .current_dir(temp.path())
        .args(["init", "--yes", "--force"])
        .arg(&dir)
        .assert()
        .success();
    let project = fs::read_to_string(dir.join("stack.env")).unwrap();
    assert!(project.contains("STACK_PROJECT=shop"), "{project}");
    assert_eq!(fs::read_to_string(&server_path).unwrap(), server);
    let gitignore = fs::read_to_string(dir.join(".gitignore")).unwrap();
    assert!(gitignore.starts_with("mine\n"), "{gitignore}");
    assert!(
        gitignore.contains("\nenvironments/*/secrets.env\n"),
        "{gitignore}"
    );

    // A third run adds nothing: every line is there.
    let before = fs::read(dir.join(".gitignore")).unwrap();
    stack()
        .current_dir(temp.path())
        .args(["init", "--yes", "--force"])
        .arg(&dir)
        .assert()
        .success();
    assert_eq!(fs::read(dir.join(".gitignore")).unwrap(), before);
}
