//! Bad input: every folder of `fixtures-bad/` fails `stack build` with exit 2, at the
//! `file:line` and with the message its `expect.txt` names, and writes nothing. Plus the
//! other classes of bad input: unknown environment, undecodable project files, an
//! unrelated `--out` directory, `init` over an existing project.

mod common;

use std::fs;

use common::{bad_fixtures, copy_project, fixture, read_tree, repo_root, stack, text};
use proptest::prelude::*;

/// What `expect.txt` promises: line 1 `file:line`, line 2 a lowercase message substring.
struct Expectation {
    location: String,
    message: String,
}

fn expectation(case: &str) -> Expectation {
    let path = repo_root()
        .join("fixtures-bad")
        .join(case)
        .join("expect.txt");
    let contents = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()));
    let mut lines = contents.lines();
    let location = lines.next().unwrap_or_default().trim().to_string();
    let message = lines.next().unwrap_or_default().trim().to_string();
    assert!(
        location.contains(':') && !message.is_empty(),
        "`{}` must hold `file:line` then a message substring",
        path.display()
    );
    Expectation { location, message }
}

/// Every problem with one bad fixture.
fn check_bad(case: &str) -> Vec<String> {
    let Expectation { location, message } = expectation(case);
    let project = copy_project(&repo_root().join("fixtures-bad").join(case));
    let cwd = project.sibling("cwd");
    let before = read_tree(&project.dir);
    let output = project.stack().arg("build").output().unwrap();
    let stderr = text(&output.stderr);
    let mut problems = Vec::new();
    if output.status.code() != Some(2) {
        problems.push(format!("exit code {:?}, expected 2", output.status.code()));
    }
    if stderr.contains("panicked") {
        problems.push("the binary panicked".into());
    }
    // `--> file:line:col`: the location must start with exactly `file:line:`.
    let locations: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--> "))
        .collect();
    if !locations
        .iter()
        .any(|l| l.starts_with(&format!("{location}:")))
    {
        problems.push(format!(
            "no `--> {location}:` location; found {locations:?}"
        ));
    }
    if !stderr.to_lowercase().contains(&message.to_lowercase()) {
        problems.push(format!("stderr does not mention `{message}`"));
    }
    let after = read_tree(&project.dir);
    if before != after {
        let changed: Vec<&String> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        problems.push(format!("a failed build wrote to the project: {changed:?}"));
    }
    if project.path(".stack").exists() {
        problems.push("`.stack` was created".into());
    }
    if project.path("environments/dev/secrets.env").exists() {
        problems.push("`environments/dev/secrets.env` was created".into());
    }
    if fs::read_dir(&cwd).unwrap().next().is_some() {
        problems.push("a failed build wrote to the working directory".into());
    }
    problems
        .into_iter()
        .map(|p| format!("[{case}] {p}\n---- stderr ----\n{stderr}"))
        .collect()
}

#[test]
fn every_bad_fixture_fails_at_its_line_and_writes_nothing() {
    let cases = bad_fixtures();
    let problems: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .map(|case| scope.spawn(move || check_bad(case)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a case panicked"))
            .collect()
    });
    assert!(
        problems.is_empty(),
        "{} problem(s) in {} bad fixture(s):\n\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

#[test]
fn unknown_environment_exits_2() {
    let project = fixture("minimal");
    project
        .stack()
        .args(["--env", "nope", "build"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("unknown environment `nope`"));
    assert!(!project.path(".stack").exists());
}

#[test]
fn unknown_environment_from_stack_env_variable_exits_2() {
    let project = fixture("minimal");
    project
        .stack()
        .env("STACK_ENV", "nope")
        .arg("build")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("`nope`"));
}

#[test]
fn missing_project_directory_exits_2() {
    let project = fixture("minimal");
    stack()
        .arg("-C")
        .arg(project.temp.path().join("does-not-exist"))
        .arg("build")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("does not exist"));
}

/// In dev a missing secret is generated only once the project with it passes every
/// check: a build (or `secrets generate`) that then fails leaves the secrets file as it was.
#[test]
fn a_failed_dev_build_leaves_an_existing_secrets_file_unchanged() {
    let project = copy_project(&repo_root().join("fixtures-bad/generated-secret-then-invalid"));
    let secrets = project.path("environments/dev/secrets.env");
    fs::create_dir_all(secrets.parent().unwrap()).unwrap();
    let before = "# kept byte for byte\nOTHER=Zq8vN3xK1pL7wR2tY6uI9oA4sD5fG0hJ\n";
    fs::write(&secrets, before).unwrap();
    for args in [&["build"][..], &["secrets", "generate", "dev"]] {
        let output = project.stack().args(args).output().unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("uses the secret `API_TOKEN`"), "{stderr}");
        assert!(!stderr.contains("generated"), "{stderr}");
        assert_eq!(fs::read_to_string(&secrets).unwrap(), before, "{args:?}");
    }
}

/// A project of `stack.env` and the dev `secrets.env`, built: (exit code, stderr).
fn build_with_secrets(stack_env: &str, secrets_env: &str) -> (Option<i32>, String) {
    let temp = tempfile::tempdir().unwrap();
    fs::write(temp.path().join("stack.env"), stack_env).unwrap();
    fs::create_dir_all(temp.path().join("environments/dev")).unwrap();
    fs::write(
        temp.path().join("environments/dev/secrets.env"),
        secrets_env,
    )
    .unwrap();
    let output = stack()
        .current_dir(temp.path())
        .arg("build")
        .output()
        .unwrap();
    (output.status.code(), text(&output.stderr))
}

/// A `BASIC_AUTH` secret is checked as a whole bcrypt hash, not by its prefix; the error
/// names the line of `BASIC_AUTH` and never shows the value.
#[test]
fn a_truncated_bcrypt_hash_is_refused_without_showing_it() {
    let project = "STACK_PROJECT=shop\nSTACK_SERVICES=admin\nSTACK_SECRETS=ADMIN_HASH\n\
                   SERVICE_ADMIN_IMAGE=acme/admin:1\nSERVICE_ADMIN_PORT=80\n\
                   SERVICE_ADMIN_ROUTE=admin.localhost\nSERVICE_ADMIN_BASIC_AUTH=admin:ADMIN_HASH\n";
    for (hash, why) in [
        ("$2y$10$Qx7fTruncatedSaltAndHash", "not 53 characters"),
        (
            "$2y$99$abcdefghijklmnopqrstuvwxyz0123456789./ABCDEFGHIJKLMNO",
            "cost",
        ),
        (
            "$2y$10$abcdefghijklmnopqrstuvwxyz0123456789+/ABCDEFGHIJKLMNO",
            "characters other",
        ),
    ] {
        let (code, stderr) = build_with_secrets(project, &format!("ADMIN_HASH='{hash}'\n"));
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("--> stack.env:7:"), "{stderr}");
        assert!(stderr.contains("does not hold a bcrypt hash"), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert!(!stderr.contains(&hash[7..]), "the hash was shown: {stderr}");
    }
}

/// A directory where an environment's `secrets.env` belongs is an error naming it (exit
/// 2), for every command that reads secrets and in every environment; nothing is written.
#[test]
fn a_directory_for_secrets_env_exits_2() {
    for env in ["dev", "staging", "custom"] {
        let project = fixture("minimal");
        fs::create_dir_all(project.path(&format!("environments/{env}/secrets.env"))).unwrap();
        for args in [
            &["--env", env, "build"][..],
            &["--env", env, "config"],
            &["secrets", "generate", env],
            &["secrets", "check", env],
        ] {
            let output = project.stack().args(args).output().unwrap();
            let stderr = text(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&format!(
                    "`environments/{env}/secrets.env` is a directory, not a regular file"
                )),
                "{args:?}: {stderr}"
            );
        }
        assert!(!project.path(".stack").exists());
        assert!(project
            .path(&format!("environments/{env}/secrets.env"))
            .is_dir());
    }
}

/// Write `bytes` as the project file of a new project and build it.
fn build_garbage(bytes: &[u8]) -> std::process::Output {
    let temp = tempfile::tempdir().unwrap();
    fs::write(temp.path().join("stack.env"), bytes).unwrap();
    let output = stack()
        .current_dir(temp.path())
        .arg("build")
        .output()
        .unwrap();
    assert!(
        !temp.path().join(".stack").exists(),
        "a failed build wrote a bundle"
    );
    output
}

#[test]
fn invalid_utf8_exits_2_without_panicking() {
    let output = build_garbage(b"STACK_PROJECT=ok\n\xff\xfe\x00garbage\x80\n");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("UTF-8"), "{stderr}");
    assert!(stderr.contains("--> stack.env:"), "{stderr}");
}

#[test]
fn binary_garbage_exits_2_without_panicking() {
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for bytes in [
        &garbage[..],
        b"\0\0\0\0",
        b"STACK_PROJECT=\"never closed",
        b"STACK_PROJECT=a\0b\n",
        "STACK_PROJECT=caf\u{e9}\r\nSTACK_SERVICES=\u{1f600}\n".as_bytes(),
        b"=\n==\n${\n",
    ] {
        let output = build_garbage(bytes);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bytes:?}\n{stderr}");
        assert!(!stderr.contains("panicked"), "{bytes:?}\n{stderr}");
        assert!(stderr.starts_with("error: "), "{bytes:?}\n{stderr}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any bytes at all: a clean exit 2, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let output = build_garbage(&bytes);
        let stderr = text(&output.stderr);
        prop_assert_eq!(output.status.code(), Some(2), "{}", stderr);
        prop_assert!(!stderr.contains("panicked"), "{}", stderr);
    }
}

#[test]
fn build_out_refuses_an_unrelated_non_empty_directory() {
    let project = fixture("minimal");
    let out = project.sibling("precious");
    fs::write(out.join("notes.txt"), "keep me\n").unwrap();
    fs::create_dir(out.join("sub")).unwrap();
    fs::write(out.join("sub/data"), [0u8, 1, 2]).unwrap();
    project.refuses_out(&out, "is not empty");
    let leftovers: Vec<_> = fs::read_dir(project.temp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary folders left: {leftovers:?}"
    );
}

#[test]
fn init_refuses_a_directory_with_a_project_file() {
    let project = fixture("minimal");
    let before = read_tree(&project.dir);
    stack()
        .current_dir(project.temp.path())
        .args(["init", "--yes"])
        .arg(&project.dir)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("already has a stack.env"));
    assert_eq!(read_tree(&project.dir), before, "init changed the project");
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let project = fixture("minimal");
    project.append("SERVICE_WEB_PROT=8080\n");
    let line = fs::read_to_string(project.path("stack.env"))
        .unwrap()
        .lines()
        .count();
    project
        .stack()
        .arg("build")
        .assert()
        .code(2)
        .stderr(predicates::str::contains(format!("--> stack.env:{line}:")))
        .stderr(predicates::str::contains("PORT"));
}

/// `dev` generates missing secrets before building; a project that fails validation
/// must not get a secrets file (or anything else) first.
#[test]
fn a_failing_dev_build_does_not_generate_secrets() {
    let project = fixture("otto");
    project.append("SERVICE_APP_REPLICAS=two\n");
    let before = read_tree(&project.dir);
    project
        .stack()
        .arg("build")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("SERVICE_APP_REPLICAS"));
    assert!(!project.path("environments/dev/secrets.env").exists());
    assert_eq!(
        read_tree(&project.dir),
        before,
        "a failed build wrote to the project"
    );
    // The same project, fixed, does generate them.
    project.append("SERVICE_APP_REPLICAS=2\n");
    project.build("dev", None);
    assert!(project.path("environments/dev/secrets.env").is_file());
}

/// `STACK_NOTIFY` (issue 22): URLs with tokens come from a secret. Written in the project
/// file it is refused at its line without showing it; a bad item in the secrets file is
/// refused without showing it; an interpolation of a secret is fine, and the URLs reach
/// the bundle's 0600 `.env` only.
#[test]
fn notify_urls_are_secrets() {
    let base = "STACK_PROJECT=shop\nSTACK_SERVICES=api\nSERVICE_API_IMAGE=acme/api:1\n";
    let token = "T0K3N-b4f1";
    let (code, stderr) =
        build_with_secrets(&format!("{base}STACK_NOTIFY=https://ntfy.sh/{token}\n"), "");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--> stack.env:4:"), "{stderr}");
    assert!(stderr.contains("secrets.env"), "no hint: {stderr}");
    assert!(!stderr.contains(token), "the token was shown: {stderr}");

    let (code, stderr) =
        build_with_secrets(base, &format!("STACK_NOTIFY=ftp://example.com/{token}\n"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("item 1 of `STACK_NOTIFY`"), "{stderr}");
    assert!(!stderr.contains(token), "the token was shown: {stderr}");

    let temp = tempfile::tempdir().unwrap();
    fs::write(
        temp.path().join("stack.env"),
        format!("{base}STACK_NOTIFY=${{ALERTS}}\n"),
    )
    .unwrap();
    fs::create_dir_all(temp.path().join("environments/dev")).unwrap();
    fs::write(
        temp.path().join("environments/dev/secrets.env"),
        format!("ALERTS=https://hooks.slack.com/services/{token}\n"),
    )
    .unwrap();
    let out = stack()
        .current_dir(temp.path())
        .arg("build")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bundle = temp.path().join(".stack/dev");
    let dotenv = fs::read_to_string(bundle.join(".env")).unwrap();
    assert!(
        dotenv.contains(&format!(
            "STACK_NOTIFY='slack+https://hooks.slack.com/services/{token}'"
        )),
        "{dotenv}"
    );
    for (path, file) in read_tree(&bundle) {
        let holds = String::from_utf8_lossy(&file.contents).contains(token);
        assert!(path == ".env" || !holds, "`{path}` holds the token");
    }
}
