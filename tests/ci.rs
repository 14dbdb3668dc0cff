//! The CI recipes (issue 25, item 4): the GitHub Action (`action.yml`) and the GitLab CI
//! template (`ci/gitlab/stack.gitlab-ci.yml`) both run `ci/stack-ci.sh`, and these tests
//! run that script where a runner runs it: in the CI image (`scripts/build-ci-image.sh`:
//! bash, git, the OpenSSH client, stack), against a real sshd on loopback whose "server"
//! is this machine (as in `tests/deploy.rs`).
//!
//! The image is built from `STACK_BINARY` when set (the static binary), else from a
//! stripped copy of the test build of `stack` (dynamic; the image is Debian 12 as this
//! machine is). Needs Docker, openssh-server and openssh-client, and the test images
//! (`scripts/build-test-images.sh`); a missing piece fails the test. The image, the
//! project's containers and the sshd are removed when the test ends.

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::process::{run_within, within};
use common::{all_output, docker, free_port, text, Project};
use serde_norway::Value;

mod common;

/// Where the image puts `ci/stack-ci.sh` (and what the GitLab template runs).
const IMAGE_SCRIPT: &str = "/usr/local/lib/stack/ci/stack-ci.sh";
const LIMIT: Duration = Duration::from_secs(300);

fn yaml(path: &str) -> Value {
    let file = common::repo_root().join(path);
    let body = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&body).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn string<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {value:?}"))
}

// action.yml holds to the structure of GitHub's action metadata (a schema check of the
// keys a composite action may have), and its steps run ci/stack-ci.sh with the inputs.
#[test]
fn action_is_a_composite_action_that_runs_the_script() {
    let action = yaml("action.yml");
    let allowed: BTreeSet<String> = [
        "name",
        "author",
        "description",
        "inputs",
        "outputs",
        "runs",
        "branding",
    ]
    .map(String::from)
    .into();
    assert!(keys(&action).is_subset(&allowed), "{:?}", keys(&action));
    for required in ["name", "description", "runs"] {
        assert!(
            action.get(required).is_some(),
            "action.yml needs `{required}`"
        );
    }
    let inputs = keys(&action["inputs"]);
    for input in [
        "command",
        "environment",
        "ssh-key",
        "known-hosts",
        "secrets",
        "deb",
        "binary",
    ] {
        assert!(inputs.contains(input), "no input `{input}`");
    }
    let input_keys: BTreeSet<String> = ["description", "required", "default"]
        .map(String::from)
        .into();
    for (name, input) in action["inputs"].as_mapping().unwrap() {
        assert!(
            keys(input).is_subset(&input_keys),
            "input {name:?}: {input:?}"
        );
        assert!(
            input["description"].is_string(),
            "input {name:?} has no description"
        );
    }
    for (name, output) in action["outputs"].as_mapping().unwrap() {
        assert!(
            output["value"].is_string(),
            "a composite output needs `value`: {name:?}"
        );
    }
    let runs = &action["runs"];
    assert_eq!(string(runs, "using"), "composite");
    let step_keys: BTreeSet<String> = [
        "name",
        "id",
        "if",
        "shell",
        "run",
        "env",
        "working-directory",
        "continue-on-error",
        "uses",
        "with",
    ]
    .map(String::from)
    .into();
    let steps = runs["steps"].as_sequence().expect("runs.steps is a list");
    let mut runs_script = false;
    for step in steps {
        assert!(keys(step).is_subset(&step_keys), "step {step:?}");
        // A composite `run` step must name its shell.
        assert_eq!(string(step, "shell"), "bash", "step {step:?}");
        let run = string(step, "run");
        // Inputs reach the shell through `env:`, never spliced into the script text
        // (a secret or a crafted input would otherwise become shell code).
        assert!(
            !run.contains("inputs."),
            "`run` reads an input directly: {run}"
        );
        for (_, value) in step["env"].as_mapping().into_iter().flatten() {
            let value = value.as_str().unwrap_or_default();
            if let Some(input) = value
                .strip_prefix("${{ inputs.")
                .and_then(|v| v.strip_suffix(" }}"))
            {
                assert!(
                    inputs.contains(input),
                    "step reads undeclared input `{input}`"
                );
            }
        }
        if run.contains(r#"/ci/stack-ci.sh" "$STACK_COMMAND" "$STACK_ENVIRONMENT""#) {
            runs_script = true;
            assert!(run.starts_with("code=0\n"), "{run}");
            assert!(
                run.contains(r#"exit "$code""#),
                "the exit code is passed through: {run}"
            );
            assert_eq!(
                string(&step["env"], "STACK_COMMAND"),
                "${{ inputs.command }}"
            );
            assert_eq!(
                string(&step["env"], "STACK_ENVIRONMENT"),
                "${{ inputs.environment }}"
            );
            assert_eq!(
                string(&step["env"], "STACK_SSH_KEY"),
                "${{ inputs.ssh-key }}"
            );
            assert_eq!(
                string(&step["env"], "STACK_KNOWN_HOSTS"),
                "${{ inputs.known-hosts }}"
            );
            assert_eq!(
                string(&step["env"], "STACK_SECRETS"),
                "${{ inputs.secrets }}"
            );
        }
        // Every script a step runs is in the repository.
        for word in run.split(['"', ' ', '\n']) {
            if let Some(path) = word.strip_prefix("${{ github.action_path }}/") {
                assert!(
                    common::repo_root().join(path).is_file(),
                    "{path} is missing"
                );
            }
        }
    }
    assert!(
        runs_script,
        "no step runs ci/stack-ci.sh with the inputs: {steps:?}"
    );
}

// The GitLab template's jobs run the script the image holds, with the right arguments,
// on merge requests (check) and the default branch (deploy).
#[test]
fn gitlab_template_jobs_run_the_script() {
    let template = yaml("ci/gitlab/stack.gitlab-ci.yml");
    let script_path = string(&template["variables"], "STACK_CI_SCRIPT");
    assert_eq!(script_path, IMAGE_SCRIPT);
    let build_script =
        std::fs::read_to_string(common::repo_root().join("scripts/build-ci-image.sh")).unwrap();
    assert!(
        build_script.contains("COPY stack-ci.sh install-stack.sh /usr/local/lib/stack/ci/"),
        "the image does not put ci/stack-ci.sh at {IMAGE_SCRIPT}"
    );
    for (job, command, rule) in [
        (".stack-check", "check", "merge_request_event"),
        (
            ".stack-deploy",
            "deploy",
            "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH",
        ),
    ] {
        let job_value = &template[job];
        let script: Vec<&str> = job_value["script"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{job} has no script"))
            .iter()
            .map(|line| line.as_str().unwrap())
            .collect();
        assert_eq!(
            script,
            [format!(
                r#""$STACK_CI_SCRIPT" {command} "$STACK_ENVIRONMENT""#
            )],
            "{job}"
        );
        assert_eq!(string(job_value, "extends"), ".stack-base");
        let rules = format!("{:?}", job_value["rules"]);
        assert!(rules.contains(rule), "{job} rules: {rules}");
    }
    assert_eq!(
        string(&template[".stack-base"]["image"], "name"),
        "$STACK_CI_IMAGE"
    );
}

// The template's preview jobs (issue 23) run the script's preview commands with the merge
// request's name, as a GitLab environment whose stop job removes the preview.
#[test]
fn gitlab_template_preview_jobs_run_the_script() {
    let template = yaml("ci/gitlab/stack.gitlab-ci.yml");
    for (job, command, action) in [
        (".stack-preview-up", "preview-up", None),
        (".stack-preview-down", "preview-down", Some("stop")),
    ] {
        let value = &template[job];
        let script = format!("{:?}", value["script"]);
        assert!(
            script.contains(&format!(
                r#"\"$STACK_CI_SCRIPT\" {command} \"$STACK_ENVIRONMENT\" \"mr-$CI_MERGE_REQUEST_IID\""#
            )),
            "{job}: {script}"
        );
        assert_eq!(
            string(&value["environment"], "name"),
            "preview/mr-$CI_MERGE_REQUEST_IID"
        );
        assert_eq!(value["environment"]["action"].as_str(), action, "{job}");
        assert!(format!("{:?}", value["rules"]).contains("merge_request_event"));
    }
    assert_eq!(
        string(&template[".stack-preview-up"]["environment"], "on_stop"),
        "preview-stop"
    );
}

/// A private sshd on a free loopback port (root's logins, this machine's engine), killed
/// with its sessions on drop.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["host_key", "client_key", "other_key"] {
            keygen(&d.join(key));
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        for _ in 0..5 {
            let port = free_port();
            std::fs::write(
                d.join("sshd_config"),
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\n\
                     PidFile {dir}/sshd.pid\nAuthorizedKeysFile {dir}/authorized_keys\n\
                     PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\n\
                     AllowStreamLocalForwarding yes\nAllowTcpForwarding yes\n\
                     MaxSessions 50\nLogLevel ERROR\n",
                    dir = d.display()
                ),
            )
            .unwrap();
            let mut child = Command::new("/usr/sbin/sshd")
                .arg("-f")
                .arg(d.join("sshd_config"))
                .args(["-D", "-e"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start /usr/sbin/sshd (install openssh-server)");
            let mut exited = false;
            let listening = within(Duration::from_secs(10), || {
                exited = child.try_wait().ok().flatten().is_some();
                exited || TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            if listening && !exited {
                return Sshd { dir, port, child };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("cannot start a test sshd");
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap()
    }

    /// The known_hosts line of this server.
    fn known_hosts(&self) -> String {
        let key = self.file("host_key.pub");
        let mut parts = key.split_whitespace();
        let (kind, blob) = (parts.next().unwrap(), parts.next().unwrap());
        format!("[127.0.0.1]:{} {kind} {blob}\n", self.port)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // The sessions are sshd's children: end them by parent pid, then sshd itself.
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ci-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (install openssh-client)");
    assert!(out.status.success(), "ssh-keygen: {}", all_output(&out));
}

/// The CI image for this test run, removed on drop.
struct Image(String);

impl Image {
    fn build() -> Image {
        let tag = format!("stack-ci-test:{}", std::process::id());
        let scratch = tempfile::tempdir().unwrap();
        let binary = match std::env::var_os("STACK_BINARY") {
            Some(binary) => PathBuf::from(binary),
            None => {
                // The debug build is 200 MB of symbols; the image needs none of them.
                let copy = scratch.path().join("stack");
                std::fs::copy(env!("CARGO_BIN_EXE_stack"), &copy).unwrap();
                let _ = Command::new("strip").arg(&copy).status();
                copy
            }
        };
        let image = Image(tag.clone());
        let out = run_within(
            Command::new(common::repo_root().join("scripts/build-ci-image.sh"))
                .env("STACK_BINARY", &binary)
                .env("STACK_CI_TAG", &tag),
            Duration::from_secs(900),
        );
        assert!(
            out.status.success(),
            "build-ci-image.sh: {}",
            all_output(&out)
        );
        assert_eq!(text(&out.stdout).trim(), tag);
        image
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

/// `stack-ci.sh ARGS` in a container of `image`, the project mounted at its own path
/// (its `SERVER_PATH` is a path of this machine, the server), on the host's network (the
/// sshd listens on loopback), with `env` set. `/keys` holds `keys` read-only.
fn runner(
    image: &Image,
    project: &Project,
    keys: &Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> Output {
    let dir = project.dir.display().to_string();
    let mut command = Command::new("docker");
    command.args(["run", "--rm", "--network", "host", "-v"]);
    command.arg(format!("{dir}:{dir}")).arg("-w").arg(&dir);
    command
        .arg("-v")
        .arg(format!("{}:/keys:ro", keys.display()));
    for (key, value) in env {
        command.args(["-e", key]).env(key, value);
    }
    command.arg(&image.0).arg(IMAGE_SCRIPT).args(args);
    run_within(&mut command, LIMIT)
}

// What the action and the template run, run where a runner runs it: check passes on a
// fresh bundle and fails (exit 1) on a tampered one; deploy ships the release over SSH;
// a refused key and a missing key fail with exit 3, and neither the key nor a secret is
// ever in the output.
#[test]
fn ci_script_checks_and_deploys_in_the_runner_image() {
    common::require_engine(&[common::engine::BUSYBOX]);
    let sshd = Sshd::start();
    let image = Image::build();
    let project = Project::named("ci", "runner");
    std::fs::create_dir_all(project.path("environments/staging")).unwrap();
    std::fs::write(
        project.path("environments/staging/server.env"),
        format!(
            "SERVER_HOST=127.0.0.1\nSERVER_PORT={}\nSERVER_USER=root\nSERVER_PATH={}\n",
            sshd.port,
            project.path("srv").display()
        ),
    )
    .unwrap();
    project.write(&format!(
        "STACK_TLS=off\nSTACK_DRAIN=0s\nSTACK_PROXY=none\nSTACK_SERVICES=web\n\
         STACK_SECRETS=APP_KEY\n{}SERVICE_WEB_ENV_APP_KEY=${{APP_KEY}}\n",
        common::engine::httpd_service(
            "web",
            "sh -c 'trap \"exit 0\" TERM; httpd -f -p 8080 -h /var/www & wait'"
        )
    ));
    std::fs::write(
        project.path(".gitignore"),
        "environments/*/secrets.env\nsrv/\n",
    )
    .unwrap();
    // The bundle as the repository would hold it, and the secrets as a CI variable.
    project.ok(&["secrets", "generate", "staging"]);
    project.ok(&["--env", "staging", "build"]);
    let secrets_file = project.path("environments/staging/secrets.env");
    let secrets = std::fs::read_to_string(&secrets_file).unwrap();
    let secret_value = common::parse_env(&secrets)["APP_KEY"].clone();
    std::fs::remove_file(&secrets_file).unwrap();
    git(&project.dir, &["init", "-q"]);
    git(&project.dir, &["add", "."]);
    git(
        &project.dir,
        &[
            "-c",
            "user.name=ci",
            "-c",
            "user.email=ci@example.com",
            "commit",
            "-q",
            "-m",
            "init",
        ],
    );
    let keys = sshd.dir.path();
    let with_secrets = [("STACK_SECRETS", secrets.as_str())];

    let out = runner(&image, &project, keys, &with_secrets, &["check", "staging"]);
    assert_eq!(out.status.code(), Some(0), "check: {}", all_output(&out));
    assert!(!all_output(&out).contains(&secret_value));
    assert!(!secrets_file.exists(), "the secrets file was left behind");

    let compose = project.path(".stack/staging/docker-compose.yml");
    let original = std::fs::read_to_string(&compose).unwrap();
    std::fs::write(&compose, format!("{original}# tampered\n")).unwrap();
    let out = runner(&image, &project, keys, &with_secrets, &["check", "staging"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "tampered check: {}",
        all_output(&out)
    );
    assert!(all_output(&out).contains("stale"), "{}", all_output(&out));
    std::fs::write(&compose, original).unwrap();

    // GitHub passes the key's contents; GitLab's file variable passes a path.
    let key = sshd.file("client_key");
    let known_hosts = sshd.known_hosts();
    let deploy_env = [
        ("STACK_SECRETS", secrets.as_str()),
        ("STACK_SSH_KEY", key.as_str()),
        ("STACK_KNOWN_HOSTS", known_hosts.as_str()),
    ];
    let out = runner(&image, &project, keys, &deploy_env, &["deploy", "staging"]);
    assert_eq!(out.status.code(), Some(0), "deploy: {}", all_output(&out));
    let output = all_output(&out);
    assert!(
        !output.contains(&secret_value) && !output.contains(key_body(&key)),
        "{output}"
    );
    assert!(
        project.path("srv/current").exists(),
        "no current release: {output}"
    );
    assert!(
        !common::containers_of(&project.name).is_empty(),
        "nothing runs: {output}"
    );
    assert!(!secrets_file.exists(), "the secrets file was left behind");

    let refused = sshd.file("other_key");
    let refused_env = [
        ("STACK_SECRETS", secrets.as_str()),
        ("STACK_SSH_KEY", "/keys/other_key"),
        ("STACK_KNOWN_HOSTS", known_hosts.as_str()),
    ];
    let out = runner(&image, &project, keys, &refused_env, &["deploy", "staging"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "refused key: {}",
        all_output(&out)
    );
    let output = all_output(&out);
    assert!(
        !output.contains(key_body(&refused)) && !output.contains(&secret_value),
        "{output}"
    );

    let no_key = [
        ("STACK_SECRETS", secrets.as_str()),
        ("STACK_KNOWN_HOSTS", known_hosts.as_str()),
    ];
    let out = runner(&image, &project, keys, &no_key, &["deploy", "staging"]);
    assert_eq!(out.status.code(), Some(3), "no key: {}", all_output(&out));
    assert!(
        all_output(&out).contains("no SSH key for the deploy"),
        "{}",
        all_output(&out)
    );
}

/// A line from the middle of a private key: what would show if it leaked.
fn key_body(key: &str) -> &str {
    key.lines().nth(1).expect("a key has a body")
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", all_output(&out));
}
