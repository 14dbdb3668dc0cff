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
    project.refuses_out(&out, "`README.md`");
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
    let stray = common::leftovers(&project.path(".stack"), "dev");
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
    for line in ["environments/*/secrets.env", "stack.local.env", "backups/"] {
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

/// Address space granted to a run on hostile input: reading a huge file whole, or
/// expanding interpolation without a bound, fails instead of swapping the machine.
const MEMORY_LIMIT_KIB: u64 = 512 * 1024;

/// `stack -C <project> ARGS` under [`MEMORY_LIMIT_KIB`] and [`DEADLINE`], with the
/// environment of [`stack`].
fn bounded(project: &common::Project, args: &[&str]) -> std::process::Output {
    let mut shell = std::process::Command::new("sh");
    shell
        .arg("-c")
        .arg(format!(
            "ulimit -v {MEMORY_LIMIT_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(assert_cmd::cargo::cargo_bin("stack"))
        .arg("-C")
        .arg(&project.dir)
        .args(args)
        .current_dir(project.sibling("cwd"));
    for (key, value) in stack().get_envs() {
        match value {
            Some(value) => shell.env(key, value),
            None => shell.env_remove(key),
        };
    }
    assert_cmd::Command::from_std(shell)
        .timeout(DEADLINE)
        .output()
        .unwrap()
}

/// `stack build` in `project` must fail with exit 2 and name `shown`, quickly, writing
/// no bundle.
fn build_fails_naming(project: &common::Project, shown: &str, what: &str) {
    let output = bounded(project, &["build"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{shown}: {stderr}");
    assert!(stderr.contains(&format!("`{shown}`")), "{stderr}");
    assert!(stderr.contains(what), "{stderr}");
    assert!(!project.path(".stack").exists(), "a bundle was written");
}

#[test]
fn a_directory_where_a_project_file_should_be_exits_2_with_its_path() {
    let project = fixture("minimal");
    fs::create_dir_all(project.path("environments/dev/secrets.env")).unwrap();
    build_fails_naming(&project, "environments/dev/secrets.env", "a directory");

    let temp = tempfile::tempdir().unwrap();
    fs::create_dir(temp.path().join("stack.env")).unwrap();
    stack()
        .current_dir(temp.path())
        .arg("build")
        .timeout(DEADLINE)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`stack.env` is a directory"));
}

#[test]
fn a_symlink_to_dev_zero_is_refused_before_reading() {
    let project = fixture("minimal");
    std::os::unix::fs::symlink("/dev/zero", project.path("stack.local.env")).unwrap();
    build_fails_naming(&project, "stack.local.env", "a character device");
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let project = fixture("minimal");
    fs::create_dir_all(project.path("environments/dev")).unwrap();
    let fifo = project.path("environments/dev/stack.env");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    build_fails_naming(&project, "environments/dev/stack.env", "FIFO");
}

#[test]
fn a_huge_project_file_is_refused_by_its_size() {
    let project = fixture("minimal");
    // Sparse: 1 GiB on paper, nothing on disk; reading it whole would take a gigabyte.
    let file = fs::File::create(project.path("stack.local.env")).unwrap();
    file.set_len(1 << 30).unwrap();
    build_fails_naming(&project, "stack.local.env", "1073741824 bytes");
}

#[test]
fn a_symlink_to_a_regular_file_is_read() {
    let project = fixture("minimal");
    fs::write(
        project.temp.path().join("shared.env"),
        "STACK_LOG_LEVEL=debug\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        project.temp.path().join("shared.env"),
        project.path("stack.local.env"),
    )
    .unwrap();
    project
        .stack()
        .args(["config", "explain", "STACK_LOG_LEVEL"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("STACK_LOG_LEVEL=debug\n"));
}

#[test]
fn doubling_interpolation_exits_2_naming_the_key() {
    let project = fixture("minimal");
    let mut lines = String::from("A0=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n");
    for i in 1..40 {
        lines.push_str(&format!("A{i}=$A{}$A{}\n", i - 1, i - 1));
    }
    project.append(&lines);
    let output = bounded(&project, &["build"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`A16` is longer than"), "{stderr}");
    assert!(!project.path(".stack").exists());

    // One key referenced three hundred thousand times: refused while parsing.
    let project = fixture("minimal");
    project.append(&format!("B=0123456789\nMANY={}\n", "$B".repeat(300_000)));
    let output = bounded(&project, &["build"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`$` references"), "{stderr}");

    // Forty thousand times a long value: past the bound of one value.
    let project = fixture("minimal");
    let long = "0123456789abcdef".repeat(4);
    project.append(&format!("B={long}\nMANY={}\n", "$B".repeat(40_000)));
    let output = bounded(&project, &["build"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`MANY` is longer than"), "{stderr}");
}

#[test]
fn control_characters_in_values_are_escaped_in_human_output() {
    let project = fixture("minimal");
    project.append(
        "NOTE=\"safe\\nSTACK_PROJECT = forged  # stack.env:1:1\"\nBELL=ring\x07\x1b[2Jcleared\n",
    );
    for args in [&["config"][..], &["config", "explain", "NOTE"]] {
        let output = project.stack().args(args).output().unwrap();
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(
            !stdout
                .lines()
                .any(|l| l.starts_with("STACK_PROJECT = forged")),
            "{args:?}: a value forged a line:\n{stdout}"
        );
        assert!(stdout.contains("safe\\nSTACK_PROJECT"), "{stdout}");
    }
    let output = project.stack().arg("config").output().unwrap();
    let stdout = text(&output.stdout);
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\x07'),
        "{stdout:?}"
    );
    assert!(stdout.contains("ring\\u{7}\\e[2Jcleared"), "{stdout}");

    // In a diagnostic: the message and the source line.
    project.append("SERVICE_WEB_REPLICAS=2\x1b]0;owned\x07\n");
    let output = project.stack().arg("build").output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains('\x1b') && !stderr.contains('\x07'),
        "{stderr:?}"
    );
    assert!(stderr.contains("2\\e]0;owned\\u{7}"), "{stderr}");
}

#[test]
fn diagnostics_on_a_secrets_line_never_show_the_value() {
    let project = fixture("minimal");
    let secrets = project.path("environments/dev/secrets.env");
    fs::create_dir_all(secrets.parent().unwrap()).unwrap();
    fs::write(
        &secrets,
        "API_TOKEN=tok-1-hunter2 $ tail-hunter2\nDB_PASSWORD=\"pw-2-hunter2\n",
    )
    .unwrap();
    let output = project.stack().arg("build").output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("environments/dev/secrets.env:1:"),
        "{stderr}"
    );
    assert!(stderr.contains("1 | API_TOKEN=********"), "{stderr}");
    assert!(
        stderr.contains("environments/dev/secrets.env:2:"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "a secret was shown:\n{stderr}");

    // An unset variable on a secrets line (an error there, not a warning) is masked too.
    fs::write(
        &secrets,
        "API_TOKEN=tok-3-hunter2${STACK_TEST_UNSET_VERSION}\n",
    )
    .unwrap();
    let output = project.stack().arg("config").output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not set"), "{stderr}");
    assert!(stderr.contains("1 | API_TOKEN=********"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "a secret was shown:\n{stderr}");
}

/// Write the dev secrets file of `project`.
fn write_dev_secrets(project: &common::Project, text: &str) {
    let secrets = project.path("environments/dev/secrets.env");
    fs::create_dir_all(secrets.parent().unwrap()).unwrap();
    fs::write(&secrets, text).unwrap();
}

#[test]
fn a_preset_variable_built_from_a_secret_goes_through_the_secret_path() {
    let project = fixture("minimal");
    project.append("POSTGRES_ENABLED=true\nPOSTGRES_USER=${DB_ADMIN_USER}\n");
    write_dev_secrets(
        &project,
        "DB_ADMIN_USER=admin-hunter2\nPOSTGRES_PASSWORD=pw-hunter2\n",
    );
    let bundle = project.build("dev", None);
    let compose = fs::read_to_string(bundle.join("docker-compose.yml")).unwrap();
    assert!(
        !compose.contains("hunter2"),
        "a secret in compose:\n{compose}"
    );
    assert!(compose.contains("POSTGRES_USER: ${"), "{compose}");
    let env = fs::read_to_string(bundle.join(".env")).unwrap();
    assert!(env.contains("admin-hunter2"), "{env}");
}

#[test]
fn a_secret_in_any_rendered_key_exits_2_naming_key_and_secret() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (A secret `MONITORING_ALERT_WEBHOOK` is carried as Alertmanager's `url_file`:
        // `cli::a_secret_alert_webhook_reaches_alertmanager_as_a_file`.)
        // An attribute written directly in secrets.env.
        (
            "",
            "SERVICE_WEB_COMMAND=httpd -f -p 8080 -h /hunter2\n",
            "SERVICE_WEB_COMMAND",
            "SERVICE_WEB_COMMAND",
        ),
        // A server key interpolating a secret listed in `STACK_SECRETS`.
        (
            "STACK_SECRETS=DEPLOY_USER\nSERVER_HOST=203.0.113.10\nSERVER_USER=${DEPLOY_USER}\n",
            "DEPLOY_USER=hunter2\n",
            "SERVER_USER",
            "DEPLOY_USER",
        ),
        // A preset attribute (the image tag) from a secret.
        (
            "POSTGRES_ENABLED=true\nPOSTGRES_VERSION=${PG_TAG}\n",
            "PG_TAG=hunter2\nPOSTGRES_PASSWORD=pw-hunter2\n",
            "POSTGRES_VERSION",
            "PG_TAG",
        ),
    ];
    for (project_lines, secret_lines, key, secret) in cases {
        let project = fixture("minimal");
        project.append(project_lines);
        write_dev_secrets(&project, secret_lines);
        let output = project.stack().arg("build").output().unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{key}: {stderr}");
        assert!(stderr.contains(&format!("`{key}`")), "{key}: {stderr}");
        assert!(stderr.contains(&format!("`{secret}`")), "{key}: {stderr}");
        assert!(stderr.contains("SERVICE_<NAME>_ENV_"), "{key}: {stderr}");
        assert!(!stderr.contains("hunter2"), "a secret was shown:\n{stderr}");
        assert!(
            !project.path(".stack").exists(),
            "{key}: a bundle was written"
        );
    }
}

#[test]
fn a_type_error_on_a_value_from_a_secret_hides_the_value() {
    let project = fixture("minimal");
    project.append("SERVICE_WEB_PORT=${SECRET_PORT}\nSERVICE_WEB_RESTART=${SECRET_PORT}\n");
    write_dev_secrets(&project, "SECRET_PORT=80-hunter2\n");
    let output = project.stack().arg("build").output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`SERVICE_WEB_PORT` must be"), "{stderr}");
    assert!(stderr.contains("`SERVICE_WEB_RESTART` must be"), "{stderr}");
    assert!(
        stderr.contains("(value hidden: it comes from a secret)"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "a secret was shown:\n{stderr}");
}

#[test]
fn an_unquoted_dollar_in_a_secret_exits_2_instead_of_cutting_the_value() {
    let project = fixture("minimal");
    project.append("SERVICE_WEB_ENV_DB_PASSWORD=${DB_PASSWORD}\n");
    write_dev_secrets(&project, "DB_PASSWORD=hunter2$tail\n");
    let output = project.stack().arg("build").output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("environments/dev/secrets.env:1:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`DB_PASSWORD` has an unquoted `$`"),
        "{stderr}"
    );
    assert!(stderr.contains("single-quote the value"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "a secret was shown:\n{stderr}");
    assert!(!project.path(".stack").exists());

    // Single-quoted, every `$` is kept.
    write_dev_secrets(&project, "DB_PASSWORD='hunter2$tail'\n");
    let bundle = project.build("dev", None);
    let env = fs::read_to_string(bundle.join(".env")).unwrap();
    assert!(env.contains("WEB__DB_PASSWORD='hunter2$tail'"), "{env}");
}

/// `build --check` on a bundle directory holding secrets that changed, a secret file stack
/// no longer writes (a `USER` change moves `secrets/<KEY>`), a stray copy of `.env`, a
/// link to `/dev/zero` and a named pipe: it ends at once, names every one of them, and
/// prints no secret value.
#[test]
fn build_check_never_prints_secrets_nor_reads_what_stack_did_not_write() {
    let project = fixture("minimal");
    project.append(
        "STACK_SECRETS=DB_PASSWORD\n\
         SERVICE_WEB_ENV_DB_PASSWORD=${DB_PASSWORD}\n\
         SERVICE_WEB_SECRET_FILES=db=DB_PASSWORD\n",
    );
    let secrets = project.path("environments/dev/secrets.env");
    fs::create_dir_all(secrets.parent().unwrap()).unwrap();
    fs::write(&secrets, "DB_PASSWORD=hunter2-old\n").unwrap();
    let bundle = project.build("dev", None);
    project.stack().args(["build", "--check"]).assert().code(0);
    let old_secret_files: Vec<String> = read_tree(&bundle.join("secrets")).into_keys().collect();
    assert!(!old_secret_files.is_empty());
    // The value changes, the secret file moves (the service now runs as a user).
    fs::write(&secrets, "DB_PASSWORD=hunter2-new\n").unwrap();
    project.append("SERVICE_WEB_USER=1000\n");
    fs::copy(bundle.join(".env"), bundle.join(".env.bak")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", bundle.join("zero")).unwrap();
    let fifo = std::ffi::CString::new(bundle.join("pipe").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let output = project
        .stack()
        .args(["build", "--check"])
        .timeout(DEADLINE)
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains("`.env` differs (secret, not shown)"),
        "{stdout}"
    );
    for extra in [".env.bak", "zero", "pipe"] {
        assert!(
            stdout.contains(&format!(
                "`{extra}`: extra, stack did not write it (not read)"
            )),
            "{extra}: {stdout}"
        );
    }
    for old in old_secret_files {
        assert!(
            stdout.contains(&format!("`secrets/{old}`: stack no longer writes it")),
            "{old}: {stdout}"
        );
    }
    // A file without secrets is still shown as a diff.
    assert!(stdout.contains("+++ b/docker-compose.yml"), "{stdout}");
}

/// `stack build` of a project whose `BUILD` context is the project itself warns, by name,
/// about the secret files `docker compose build` would send, until `.dockerignore`
/// excludes them.
#[test]
fn build_warns_about_a_context_that_would_send_secret_files() {
    let project = fixture("minimal");
    project.append("SERVICE_WEB_BUILD=.\n");
    fs::write(project.path("stack.local.env"), "# API_TOKEN=hunter2\n").unwrap();
    project.build("dev", None);
    let output = project.stack().arg("build").output().unwrap();
    assert!(output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("warning:"), "{stderr}");
    assert!(
        stderr.contains("`.stack`") && stderr.contains("`stack.local.env`"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    fs::write(
        project.path(".dockerignore"),
        ".stack/\nenvironments/*/secrets.env\nstack.local.env\nbackups/\n",
    )
    .unwrap();
    let output = project.stack().arg("build").output().unwrap();
    assert!(output.status.success());
    assert!(
        !text(&output.stderr).contains("warning:"),
        "{}",
        text(&output.stderr)
    );
}

/// `stack import compose ARGS` under [`MEMORY_LIMIT_KIB`] and [`DEADLINE`], in `dir`.
fn import_bounded(dir: &std::path::Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    let mut shell = std::process::Command::new("sh");
    shell
        .arg("-c")
        .arg(format!(
            "ulimit -v {MEMORY_LIMIT_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(assert_cmd::cargo::cargo_bin("stack"))
        .args(["import", "compose"])
        .args(args)
        .current_dir(dir);
    for (key, value) in stack().get_envs() {
        match value {
            Some(value) => shell.env(key, value),
            None => shell.env_remove(key),
        };
    }
    assert_cmd::Command::from_std(shell)
        .timeout(DEADLINE)
        .output()
        .unwrap()
}

/// Each bad input of an import: exit 2 naming the file, quickly, within the memory
/// bound, with nothing written.
#[test]
fn a_bad_compose_input_exits_2_with_its_path_and_writes_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let mut bomb = String::from("x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        bomb.push_str(&format!("x-a{i}: &a{i} [{refs}]\n"));
    }
    bomb.push_str("services:\n  web:\n    image: nginx\n    command: *a11\n");
    let deep = format!(
        "services:\n  web:\n    image: nginx\n    command: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let deep_block = format!(
        "services:\n  web:\n    image: nginx\n    command:\n{}x\n",
        "- ".repeat(100_000)
    );
    let nested = format!(
        "services:\n  web:\n    image: nginx\n    environment:\n      X: \"{}z{}\"\n",
        "${Y:-".repeat(100_000),
        "}".repeat(100_000)
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("not-yaml.yml", "services:\n  web: [a\n  b: }\n".into(), "not valid YAML"),
        ("nested.yml", nested, "more than 32 levels deep"),
        ("bomb.yml", bomb, "not valid YAML"),
        ("deep.yml", deep, "nests deeper than 128 levels"),
        ("deep-block.yml", deep_block, "nests deeper than 128 levels"),
        (
            "fifo-secret.yml",
            "services:\n  db:\n    image: postgres:16\n    secrets: [db_password]\nsecrets:\n  db_password:\n    file: ./db_password.txt\n".into(),
            "FIFO",
        ),
    ];
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("db_password.txt"))
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    // Sparse: 1 GiB on paper, nothing on disk.
    let huge = fs::File::create(dir.join("huge.yml")).unwrap();
    huge.set_len(1 << 30).unwrap();
    let mut names: Vec<(&str, &str)> = cases.iter().map(|(n, _, w)| (*n, *w)).collect();
    names.push(("huge.yml", "may be at most"));
    for (name, text, _) in &cases {
        fs::write(dir.join(name), text).unwrap();
    }
    for (name, what) in names {
        let project = dir.join(format!("project-{name}"));
        let started = std::time::Instant::now();
        let output = import_bounded(dir, &[dir.join(name).as_os_str(), project.as_os_str()]);
        let elapsed = started.elapsed();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(what), "{name}: {stderr}");
        let shown = if name == "fifo-secret.yml" {
            "db_password.txt"
        } else {
            name
        };
        assert!(stderr.contains(shown), "{name}: {stderr}");
        assert!(
            elapsed < Duration::from_secs(if name.starts_with("deep") { 1 } else { 20 }),
            "{name}: {elapsed:?}"
        );
        let written: Vec<_> = fs::read_dir(&project)
            .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(written.is_empty(), "{name}: wrote {written:?}");
    }
}

/// A folder that already holds a project is never written into, whatever the import
/// would write there.
#[test]
fn an_import_into_a_project_exits_2_with_the_path_and_changes_nothing() {
    let project = fixture("minimal");
    let compose = project.sibling("compose");
    fs::create_dir_all(&compose).unwrap();
    fs::write(
        compose.join("docker-compose.yml"),
        "services:\n  web:\n    image: nginx:1.27\n    environment:\n      API_TOKEN: abc123\n",
    )
    .unwrap();
    let before = read_tree(&project.dir);
    let output = import_bounded(
        &compose,
        &[
            compose.join("docker-compose.yml").as_os_str(),
            project.dir.as_os_str(),
        ],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&project.dir.join("stack.env").display().to_string()),
        "{stderr}"
    );
    assert!(!stderr.contains("abc123"), "{stderr}");
    assert_eq!(read_tree(&project.dir), before, "the project changed");
}

/// Each way a diagnostic could quote a secret, found by planting one and grepping every
/// output: exit 2 at the line, and the value nowhere (`build`, `config`, `config --json`).
#[test]
fn no_diagnostic_quotes_a_secret_whatever_the_mistake() {
    const SECRET: &str = "HUNTER2canaryQ7Zx";
    // (extra secrets.env lines, extra stack.env lines, what the error says)
    let cases: [(&str, &str, &str); 9] = [
        // A value pasted on a line of its own, mixed case or upper case only.
        ("HUNTER2canaryQ7Zx\n", "", "does not start with `KEY=`"),
        ("AKIAHUNTER2CANARY\n", "", "does not start with `KEY=`"),
        (
            "OTHER HUNTER2canaryQ7Zx\n",
            "",
            "does not start with `KEY=`",
        ),
        // `${VAR:?message}` whose message is a secret, or written in the secrets file.
        (
            "",
            "SERVICE_WEB_ENV_R=${NOPE:?${APP_SECRET}}\n",
            "its message is hidden",
        ),
        (
            "Q=${NOPE:?HUNTER2canaryQ7Zx}\n",
            "",
            "its message is hidden",
        ),
        // An item of a list, a user, a secret file's key, built from a secret.
        ("", "SERVICE_WEB_ENV=${APP_SECRET}\n", "is not `name=value`"),
        (
            "",
            "SERVICE_WEB_SYSCTLS=${APP_SECRET}\n",
            "is not `name=value`",
        ),
        ("", "SERVICE_WEB_USER=${APP_SECRET}!\n", "is not a user"),
        (
            "",
            "SERVICE_WEB_SECRET_FILES=${APP_SECRET}\n",
            "which is not a secret",
        ),
    ];
    for (secrets, extra, what) in cases {
        let project = fixture("minimal");
        project.append(&format!(
            "SERVICE_WEB_ENV_APP_SECRET=${{APP_SECRET}}\n{extra}"
        ));
        write_dev_secrets(&project, &format!("APP_SECRET={SECRET}\n{secrets}"));
        for args in [&["build"][..], &["config"], &["config", "--json"]] {
            let output = bounded(&project, args);
            let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
            assert_eq!(output.status.code(), Some(2), "{extra}{secrets}: {stderr}");
            assert!(stderr.contains(what), "{extra}{secrets}: {stderr}");
            assert!(stderr.contains(" --> "), "no location: {stderr}");
            for shown in [&stdout, &stderr] {
                assert!(
                    !shown.contains("HUNTER2") && !shown.contains("hunter2canary"),
                    "a secret was shown ({args:?}):\n{shown}"
                );
            }
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
        assert!(!project.path(".stack").exists(), "a bundle was written");
    }
}

/// An `ENV_FILE` is read into the bundle, so one that leads out of the repository
/// (`..`, a link, `/proc`) is refused before it is opened, at its line.
#[test]
fn an_env_file_outside_the_repository_is_refused_at_its_line() {
    for (value, shown) in [
        ("../outside/runner.env", "`../outside/runner.env`"),
        ("linked.env", "`linked.env`"),
        ("../../../../../../../../proc/self/environ", "/proc/"),
    ] {
        let project = fixture("minimal");
        let outside = project.sibling("outside");
        fs::write(
            outside.join("runner.env"),
            "AWS_ACCESS_KEY_ID=AKIAOUTSIDE\n",
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.join("runner.env"), project.path("linked.env")).unwrap();
        project.append(&format!("SERVICE_WEB_ENV_FILE={value}\n"));
        let output = bounded(&project, &["build"]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains("outside the repository"), "{stderr}");
        assert!(stderr.contains(shown), "{stderr}");
        assert!(stderr.contains("--> stack.env:"), "{stderr}");
        assert!(!stderr.contains("AKIAOUTSIDE"), "{stderr}");
        assert!(!project.path(".stack").exists(), "a bundle was written");
    }
    // Inside the repository, through a link, it is read.
    let project = fixture("minimal");
    fs::write(project.path("shared.env"), "GREETING=hello\n").unwrap();
    std::os::unix::fs::symlink("shared.env", project.path("web.env")).unwrap();
    project.append("SERVICE_WEB_ENV_FILE=web.env\n");
    let bundle = project.build("dev", None);
    let compose = fs::read_to_string(bundle.join("docker-compose.yml")).unwrap();
    assert!(compose.contains("GREETING: hello"), "{compose}");
}

/// A path that cannot be a file (a loop of links, a file where a folder should be) is
/// bad input naming the file, not an outside failure.
#[test]
fn a_link_loop_or_a_file_for_a_folder_exits_2_naming_the_file() {
    let project = fixture("minimal");
    std::os::unix::fs::symlink("loop.env", project.path("loop.env")).unwrap();
    std::os::unix::fs::symlink("loop.env", project.path("stack.local.env")).unwrap();
    build_fails_naming(&project, "stack.local.env", "a loop of symbolic links");

    let project = fixture("minimal");
    let _ = fs::remove_dir_all(project.path("environments"));
    fs::write(project.path("environments"), "not a folder\n").unwrap();
    build_fails_naming(
        &project,
        "environments/dev/stack.env",
        "a folder on its path is not a folder",
    );
}

/// A `.env` value nested 100 000 levels deep (it hung the import for minutes) is not
/// carried, said by its line; a file `extends` names that is not Compose is named, never
/// quoted (it may be any file of the machine).
#[test]
fn an_import_never_hangs_on_nesting_nor_quotes_a_file_that_is_not_compose() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("src");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("docker-compose.yml"),
        "services:\n  web:\n    image: nginx:1.27\n    environment:\n      X: ${X}\n",
    )
    .unwrap();
    let deep = format!("X={}z{}\n", "${Y:-".repeat(100_000), "}".repeat(100_000));
    fs::write(dir.join(".env"), deep).unwrap();
    let project = temp.path().join("project");
    let output = import_bounded(
        &dir,
        &[
            dir.join("docker-compose.yml").as_os_str(),
            project.as_os_str(),
        ],
    );
    let stderr = text(&output.stderr);
    assert!(stderr.contains(".env:1"), "{stderr}");
    assert!(stderr.contains("more than 32 levels deep"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    fs::write(
        temp.path().join("shadow"),
        "root:$6$SALTHASHCANARY:20228:0:99999:7:::\n",
    )
    .unwrap();
    fs::write(
        dir.join("docker-compose.yml"),
        "services:\n  web:\n    extends:\n      file: ../shadow\n      service: x\n",
    )
    .unwrap();
    fs::remove_file(dir.join(".env")).unwrap();
    let project = temp.path().join("project-2");
    let output = import_bounded(
        &dir,
        &[
            dir.join("docker-compose.yml").as_os_str(),
            project.as_os_str(),
        ],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not a Compose file"), "{stderr}");
    assert!(
        !stderr.contains("SALTHASHCANARY"),
        "the file was quoted:\n{stderr}"
    );
    let written: Vec<_> = fs::read_dir(&project)
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(written.is_empty(), "the import wrote {written:?}");
}
