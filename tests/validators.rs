//! Every fixture, in every environment, rendered and checked with the real tools of each
//! format (mirroring `shared/tools/validate-bundle`): the Compose Specification schema,
//! `docker-compose config`, `caddy validate`, `nginx -t` and `systemd-analyze verify`;
//! for the MONITORING and BACKUP presets, `promtool check config --syntax-only`,
//! `promtool check rules` and `sh -n`.
//! Also: no secret value outside `.env`, `.env` private, and byte-identical rebuilds.
//!
//! A snapshot proves stability; these prove correctness. A validator that is not
//! installed fails the test: a skipped check proves nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{compose_schema, fixture_for, fixtures, mode, read_tree, require_tool};

/// The tools, found once per test.
struct Tools {
    python: PathBuf,
    docker_compose: PathBuf,
    caddy: PathBuf,
    nginx: PathBuf,
    systemd_analyze: PathBuf,
    promtool: PathBuf,
    sh: PathBuf,
    schema: PathBuf,
}

impl Tools {
    fn find() -> Self {
        let python = require_tool("python3");
        let probe = Command::new(&python)
            .args(["-c", "import jsonschema, yaml"])
            .output()
            .unwrap();
        assert!(
            probe.status.success(),
            "python3 cannot import jsonschema and yaml: install python3-jsonschema and \
             python3-yaml (pip install jsonschema pyyaml)\n{}",
            String::from_utf8_lossy(&probe.stderr)
        );
        Tools {
            python,
            docker_compose: require_tool("docker-compose"),
            caddy: require_tool("caddy"),
            nginx: require_tool("nginx"),
            systemd_analyze: require_tool("systemd-analyze"),
            promtool: require_tool("promtool"),
            sh: require_tool("sh"),
            schema: compose_schema(),
        }
    }
}

/// Validate against the schema, then write a copy without the top-level `name:` (Compose
/// v1 predates it) for `docker-compose config`.
const SCHEMA_CHECK: &str = r#"
import json, sys, yaml, jsonschema
schema_path, compose_path, stripped_path = sys.argv[1:4]
doc = yaml.safe_load(open(compose_path))
validator = jsonschema.Draft202012Validator(json.load(open(schema_path)))
errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
for e in errors[:20]:
    print("/" + "/".join(map(str, e.path)) + ": " + e.message)
stripped = dict(doc)
stripped.pop("name", None)
yaml.safe_dump(stripped, open(stripped_path, "w"))
sys.exit(1 if errors else 0)
"#;

/// Lines of `systemd-analyze verify` that come from the test machine (missing binaries,
/// no running systemd), not from the unit's syntax. From `validate-bundle`.
const TOLERATED: &str = r"is not executable|No such file or directory|not found|Failed to prepare filename|Command .* is not|Unit .* not found|Failed to load|Cannot add dependency job";

/// A `|`-separated list of patterns where `.*` is the only wildcard: enough for
/// `TOLERATED`, without a regex dependency.
fn tolerated(line: &str) -> bool {
    TOLERATED.split('|').any(|pattern| {
        let mut rest = line;
        for part in pattern.split(".*") {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        true
    })
}

fn run(command: &mut Command) -> (bool, String) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Every problem with one bundle, as readable lines.
fn validate(tools: &Tools, bundle: &Path, scratch: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut fail = |what: &str, detail: &str| problems.push(format!("{what}:\n{detail}"));

    // Compose: the schema, then docker-compose v1 on a copy inside the bundle (so `.env`
    // beside it is read).
    let compose = bundle.join("docker-compose.yml");
    let stripped = bundle.join(".validate-compose-v1.yml");
    if !compose.is_file() {
        fail("docker-compose.yml", "missing");
    } else {
        let (ok, out) = run(Command::new(&tools.python)
            .args(["-c", SCHEMA_CHECK])
            .arg(&tools.schema)
            .arg(&compose)
            .arg(&stripped));
        if !ok {
            fail("compose-spec schema", &out);
        }
        if stripped.is_file() {
            let (ok, out) = run(Command::new(&tools.docker_compose)
                .arg("-f")
                .arg(&stripped)
                .args(["config", "-q"])
                .current_dir(bundle));
            if !ok {
                fail("docker-compose config -q", &out);
            }
            let _ = std::fs::remove_file(&stripped);
        }
    }

    let caddyfile = bundle.join("Caddyfile");
    if caddyfile.is_file() {
        let home = scratch.join("caddy-home");
        std::fs::create_dir_all(&home).unwrap();
        let (ok, out) = run(Command::new(&tools.caddy)
            .args(["validate", "--adapter", "caddyfile", "--config"])
            .arg(&caddyfile)
            .env("HOME", &home)
            .env("XDG_DATA_HOME", &home)
            .env("XDG_CONFIG_HOME", &home)
            .current_dir(bundle));
        if !ok {
            fail("caddy validate", &out);
        }
    }

    let nginx_conf = bundle.join("nginx/nginx.conf");
    if nginx_conf.is_file() {
        let prefix = scratch.join("nginx-prefix");
        std::fs::create_dir_all(prefix.join("logs")).unwrap();
        let (ok, out) = run(Command::new(&tools.nginx)
            .args(["-t", "-q", "-p"])
            .arg(&prefix)
            .arg("-c")
            .arg(&nginx_conf)
            .arg("-g")
            .arg(format!("pid {}/nginx.pid;", prefix.display())));
        if !ok {
            fail("nginx -t", &out);
        }
    }

    // MONITORING: Prometheus' configuration (syntax only: the rule file is checked on
    // its own, and the scrape targets exist only inside the project's network).
    let prometheus = bundle.join("prometheus/prometheus.yml");
    if prometheus.is_file() {
        let (ok, out) = run(Command::new(&tools.promtool)
            .args(["check", "config", "--syntax-only"])
            .arg(&prometheus));
        if !ok {
            fail("promtool check config", &out);
        }
    }
    let alerts = bundle.join("prometheus/alerts.yml");
    if alerts.is_file() {
        let (ok, out) = run(Command::new(&tools.promtool)
            .args(["check", "rules"])
            .arg(&alerts));
        if !ok {
            fail("promtool check rules", &out);
        }
    }
    // BACKUP: the script busybox `sh` runs in the postgres image.
    let script = bundle.join("backup/backup.sh");
    if script.is_file() {
        let (ok, out) = run(Command::new(&tools.sh).arg("-n").arg(&script));
        if !ok {
            fail("sh -n backup/backup.sh", &out);
        }
    }

    let units: Vec<PathBuf> = std::fs::read_dir(bundle)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "service" || x == "timer")
        })
        .collect();
    if units.is_empty() {
        fail("systemd unit", "no *.service file in the bundle");
    }
    for unit in &units {
        let output = Command::new(&tools.systemd_analyze)
            .args(["verify", "--man=no", "--recursive-errors=no"])
            .arg(unit)
            .current_dir(scratch)
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let bad: Vec<&str> = all
            .lines()
            .filter(|l| !l.trim().is_empty() && !tolerated(l))
            .collect();
        if !bad.is_empty() {
            fail(
                &format!("systemd-analyze verify {}", unit.display()),
                &bad.join("\n"),
            );
        }
    }
    problems
}

/// Build `fixture` for `env` twice and check everything; returns the problems.
fn check_fixture(tools: &Tools, fixture: &str, env: &str) -> Vec<String> {
    let project = fixture_for(fixture, env);
    let out = project.temp.path().join("bundle");
    let scratch = project.sibling("scratch");
    project.build(env, Some(&out));
    let first = read_tree(&out);
    let mut problems = Vec::new();

    // Determinism: the same input renders the same bytes.
    project.build(env, Some(&out));
    let second = read_tree(&out);
    if first != second {
        let differing: Vec<&String> = first
            .keys()
            .chain(second.keys())
            .filter(|k| first.get(*k) != second.get(*k))
            .collect();
        problems.push(format!("a second build differs in {differing:?}"));
    }

    // Secrets: only in `.env` and in files of private (0700) folders, themselves not
    // readable by others than their owner unless a container user must read them.
    let secrets = project.secrets(env);
    for (path, file) in &first {
        let private_folder = path.rsplit_once('/').is_some_and(|(folder, _)| {
            first
                .get(&format!("{folder}/"))
                .is_some_and(|dir| dir.mode & 0o777 == 0o700)
        });
        if path == ".env" || path.ends_with('/') || private_folder {
            continue;
        }
        let contents = String::from_utf8_lossy(&file.contents);
        for (name, value) in &secrets {
            if !value.is_empty() && contents.contains(value.as_str()) {
                problems.push(format!("the value of secret `{name}` appears in `{path}`"));
            }
        }
    }
    let env_file = out.join(".env");
    if env_file.exists() {
        let mode = mode(&env_file);
        if mode != 0o600 {
            problems.push(format!("`.env` has mode {mode:o}, not 600"));
        }
    } else if !secrets.is_empty() {
        problems.push(format!(
            "the environment has secrets {:?} but the bundle has no `.env`",
            secrets.keys().collect::<Vec<_>>()
        ));
    }

    problems.extend(validate(tools, &out, &scratch));
    problems
        .into_iter()
        .map(|p| format!("[{fixture} / {env}] {p}"))
        .collect()
}

/// Check every fixture for `env`, in parallel; fail with every problem found.
fn check_env(env: &str) {
    let tools = Tools::find();
    let names = fixtures();
    let problems: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| {
                let tools = &tools;
                scope.spawn(move || check_fixture(tools, name, env))
            })
            .collect();
        handles
            .into_iter()
            .zip(&names)
            .flat_map(|(handle, name)| {
                handle.join().unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    vec![format!("[{name} / {env}] {message}")]
                })
            })
            .collect()
    });
    assert!(
        problems.is_empty(),
        "{} problem(s) in {} fixture(s) for `{env}`:\n\n{}",
        problems.len(),
        names.len(),
        problems.join("\n\n")
    );
}

#[test]
fn every_fixture_is_valid_in_dev() {
    check_env("dev");
}

#[test]
fn every_fixture_is_valid_in_staging() {
    check_env("staging");
}

#[test]
fn every_fixture_is_valid_in_prod() {
    check_env("prod");
}

#[test]
fn tolerated_lines_match_like_the_regex() {
    assert!(tolerated(
        "foo.service: Command /usr/bin/stack is not executable"
    ));
    assert!(tolerated("Unit docker.service not found."));
    assert!(tolerated("Command stack is not executable: No such file"));
    assert!(!tolerated(
        "/tmp/x.service:7: Unknown key name 'Bogus' in section 'Service', ignoring."
    ));
    assert!(!tolerated("Unit is bound to inactive unit"));
}

/// The checks can fail: a bundle broken in every format is reported by every tool.
#[test]
fn validators_catch_a_broken_bundle() {
    let tools = Tools::find();
    let temp = tempfile::tempdir().unwrap();
    let bundle = temp.path().join("bundle");
    let scratch = temp.path().join("scratch");
    std::fs::create_dir_all(bundle.join("nginx")).unwrap();
    std::fs::create_dir_all(bundle.join("prometheus")).unwrap();
    std::fs::create_dir_all(bundle.join("backup")).unwrap();
    std::fs::write(
        bundle.join("prometheus/prometheus.yml"),
        "global:\n  scrape_intervall: 15s\nscrape_configs: []\n",
    )
    .unwrap();
    std::fs::write(
        bundle.join("prometheus/alerts.yml"),
        "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: up ==\n",
    )
    .unwrap();
    std::fs::write(
        bundle.join("backup/backup.sh"),
        "#!/bin/sh\nif true; then\n  echo unterminated\n",
    )
    .unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(
        bundle.join("docker-compose.yml"),
        "name: broken\nservices:\n  web:\n    image: busybox:1.36\n    restart: sometimes\n    bogus_key: 1\n",
    )
    .unwrap();
    std::fs::write(
        bundle.join("Caddyfile"),
        "example.com {\n\treverse_proxyy web:80\n}\n",
    )
    .unwrap();
    std::fs::write(
        bundle.join("nginx/nginx.conf"),
        "events {}\nhttp {\n  server { listen 80; proxy_passs http://web; }\n}\n",
    )
    .unwrap();
    std::fs::write(
        bundle.join("broken.service"),
        "[Unit]\nDescription=broken\n[Service]\nExecStart=/bin/true\nBogusKey=1\n[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    let problems = validate(&tools, &bundle, &scratch).join("\n");
    for check in [
        "compose-spec schema",
        "docker-compose config",
        "caddy validate",
        "nginx -t",
        "systemd-analyze verify",
        "promtool check config",
        "promtool check rules",
        "sh -n backup/backup.sh",
    ] {
        assert!(
            problems.contains(check),
            "`{check}` missed the error:\n{problems}"
        );
    }
}

/// Secret values with every printable ASCII character (and some UTF-8), each between
/// letters so a trimmed or cut value shows.
fn round_trip_values() -> Vec<String> {
    let mut values: Vec<String> = (0x20u8..0x7f).map(|b| format!("a{}b", b as char)).collect();
    values.extend(
        [
            "$X",
            "$$",
            "\\x",
            "a\\\\b",
            "\\'",
            "\\\"",
            "'",
            "\"",
            "'\"'",
            "a\\nb",
            "a\\$X",
            " lead",
            "trail ",
            "a #b",
            "#x",
            "=",
            "caf\u{e9}",
            "\u{65e5}\u{672c}",
            "\u{1f980}",
            "pa$HOME",
            "$ {X}",
            "`id`",
            "a'b\"c\\d$e{f}",
        ]
        .map(String::from),
    );
    values.extend(OVERRIDE_VALUES.map(String::from));
    values
}

/// A value as a double-quoted secrets-file value.
fn double_quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' | '"' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Values docker-compose v1 cannot read exactly from `.env` (python-dotenv expands
/// `${NAME}` even single-quoted, and has no escape for it) go through the 0600
/// `docker-compose.override.yml`; stack still reads them from `.env`. Refused before.
const OVERRIDE_VALUES: [&str; 6] = ["${X}", "${X:-y}", "a'b$", "\\$ x", "a\\", "a${FOO}b$c\"d'e"];

#[test]
fn every_printable_character_of_a_secret_round_trips_through_compose() {
    let tools = Tools::find();
    let project = fixture_for("minimal", "dev");
    let values = round_trip_values();
    let mut secrets = String::new();
    let mut project_lines = String::new();
    for (i, value) in values.iter().enumerate() {
        secrets.push_str(&format!("S{i}={}\n", double_quoted(value)));
        project_lines.push_str(&format!("SERVICE_WEB_ENV_S{i}=${{S{i}}}\n"));
    }
    std::fs::create_dir_all(project.path("environments/dev")).unwrap();
    std::fs::write(project.path("environments/dev/secrets.env"), secrets).unwrap();
    project.append(&project_lines);
    let bundle = project.build("dev", None);

    // stack's own reader.
    let env_file = std::fs::read(bundle.join(".env")).unwrap();
    let read = stack::model::Secrets::parse(".env", &env_file).unwrap();
    let mut problems = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let got = read.0.get(&format!("WEB__S{i}"));
        if got != Some(value) {
            problems.push(format!("stack reads {value:?} back as {got:?}"));
        }
    }

    // docker-compose v1, from copies without the top-level `name:` of the compose file
    // and its override (which Compose reads after it), with `X` and `FOO` set.
    let mut command = Command::new(&tools.docker_compose);
    for name in ["docker-compose.yml", "docker-compose.override.yml"] {
        let compose = std::fs::read_to_string(bundle.join(name)).unwrap();
        let mut doc: serde_norway::Value = serde_norway::from_str(&compose).unwrap();
        doc.as_mapping_mut().unwrap().remove("name");
        let stripped = bundle.join(format!(".round-trip-{name}"));
        std::fs::write(&stripped, serde_norway::to_string(&doc).unwrap()).unwrap();
        command.arg("-f").arg(stripped);
    }
    let output = command
        .arg("config")
        .current_dir(&bundle)
        .env("X", "SUBSTITUTED")
        .env("FOO", "SUBSTITUTED")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "docker-compose config failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config: serde_norway::Value = serde_norway::from_slice(&output.stdout).unwrap();
    let environment = &config["services"]["web"]["environment"];
    for (i, value) in values.iter().enumerate() {
        let got = environment[format!("S{i}").as_str()].as_str();
        // `config` prints a compose file, so it writes every `$` as `$$`.
        let got = got.map(|g| g.replace("$$", "$"));
        if got.as_deref() != Some(value.as_str()) {
            problems.push(format!("docker-compose reads {value:?} back as {got:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A route host of 253 characters (labels of 63) passes `nginx -t`: the server-name hash
/// needs bigger buckets than nginx's default.
#[test]
fn a_route_host_of_253_characters_passes_nginx() {
    let tools = Tools::find();
    let project = fixture_for("nginx", "dev");
    let host = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61),
    ]
    .join(".");
    assert_eq!(host.len(), 253);
    project.append(&format!("SERVICE_SITE_ROUTE={host}\n"));
    let bundle = project.build("dev", None);
    let nginx_conf = std::fs::read_to_string(bundle.join("nginx/nginx.conf")).unwrap();
    assert!(nginx_conf.contains(&host), "the route is not rendered");
    let scratch = project.sibling("scratch");
    let problems = validate(&tools, &bundle, &scratch);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `docker-compose config` of a bundle, from a copy without the top-level `name:`.
fn compose_config(tools: &Tools, bundle: &Path) -> serde_norway::Value {
    let compose = std::fs::read_to_string(bundle.join("docker-compose.yml")).unwrap();
    let mut doc: serde_norway::Value = serde_norway::from_str(&compose).unwrap();
    doc.as_mapping_mut().unwrap().remove("name");
    let stripped = bundle.join(".config-check.yml");
    std::fs::write(&stripped, serde_norway::to_string(&doc).unwrap()).unwrap();
    let output = Command::new(&tools.docker_compose)
        .arg("-f")
        .arg(&stripped)
        .arg("config")
        .current_dir(bundle)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "docker-compose config failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_norway::from_slice(&output.stdout).unwrap()
}

/// IPv6 host addresses and a bare `:PORT` (Docker picks the host port) render as Compose
/// reads them.
#[test]
fn ipv6_and_bare_container_ports_render_as_compose_reads_them() {
    let tools = Tools::find();
    let project = fixture_for("minimal", "dev");
    project.append("SERVICE_WEB_PUBLISH=[::1]:8080:80,:81,[::1]::82/udp\n");
    let bundle = project.build("dev", None);
    let config = compose_config(&tools, &bundle);
    let ports = serde_norway::to_string(&config["services"]["web"]["ports"]).unwrap();
    for needle in ["::1", "8080", "80", "81", "82", "udp"] {
        assert!(ports.contains(needle), "no `{needle}` in:\n{ports}");
    }
    let problems = validate(&tools, &bundle, &project.sibling("scratch"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Tabs and line breaks in a container variable reach Compose unchanged.
#[test]
fn tabs_and_newlines_in_an_environment_value_survive_compose() {
    let tools = Tools::find();
    let project = fixture_for("minimal", "dev");
    project.append("SERVICE_WEB_ENV_MULTI=\"a\\tb\\nc\"\n");
    let bundle = project.build("dev", None);
    let config = compose_config(&tools, &bundle);
    let got = config["services"]["web"]["environment"]["MULTI"].as_str();
    assert_eq!(got, Some("a\tb\nc"));
}

/// A secret holding `${FOO}`, `$`, quotes and a backslash reaches the container unchanged
/// through Compose too: docker-compose v1 (python-dotenv expands `${NAME}` in `.env`, even
/// single-quoted) reads it from the 0600 `docker-compose.override.yml`, `$` written `$$`;
/// `FOO` set in Compose's environment is not substituted.
#[test]
fn secrets_with_dollar_braces_reach_compose_unchanged() {
    let docker_compose = require_tool("docker-compose");
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    std::fs::write(
        dir.join("stack.env"),
        "STACK_PROJECT=shop\nSTACK_SERVICES=api\nSTACK_SECRETS=T1,T2,T3\n\
         SERVICE_API_IMAGE=busybox:1.36\nSERVICE_API_ENV_T1=${T1}\n\
         SERVICE_API_ENV_T2=${T2}\nSERVICE_API_ENV_T3=${T3}\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("environments/dev")).unwrap();
    std::fs::write(
        dir.join("environments/dev/secrets.env"),
        "T1='a${FOO}b$c\"d'\nT2=\"it's $${FOO} \\\"q\\\" $$5 \\\\ end\"\nT3='plain-Value-123'\n",
    )
    .unwrap();
    let output = common::stack()
        .current_dir(dir)
        .arg("build")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bundle = dir.join(".stack/dev");
    assert_eq!(mode(&bundle.join("docker-compose.override.yml")), 0o600);
    // Compose v1 predates the top-level `name:`: copies without it, read together.
    let mut files = Vec::new();
    for name in ["docker-compose.yml", "docker-compose.override.yml"] {
        let text = std::fs::read_to_string(bundle.join(name)).unwrap();
        let mut doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        doc.as_mapping_mut().unwrap().remove("name");
        let copy = bundle.join(format!(".v1-{name}"));
        std::fs::write(&copy, serde_norway::to_string(&doc).unwrap()).unwrap();
        files.push(copy);
    }
    let output = Command::new(docker_compose)
        .arg("-f")
        .arg(&files[0])
        .arg("-f")
        .arg(&files[1])
        .arg("config")
        .current_dir(&bundle)
        .env("FOO", "SUBSTITUTED")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config: serde_norway::Value = serde_norway::from_slice(&output.stdout).unwrap();
    let env = &config["services"]["api"]["environment"];
    // `config` prints a literal `$` as `$$`.
    let value = |var: &str| env[var].as_str().unwrap().replace("$$", "$");
    assert_eq!(value("T1"), "a${FOO}b$c\"d");
    assert_eq!(value("T2"), "it's ${FOO} \"q\" $5 \\ end");
    assert_eq!(value("T3"), "plain-Value-123");
}
