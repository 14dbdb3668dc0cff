//! Preview environments (issue 23) on a machine like a VM (`stack-test/vm-docker`, see
//! tests/vm.rs): previews next to a running staging, each served at its own host through
//! staging's one proxy, under a request loop to staging that must see no failure.

use std::process::Stdio;
use std::time::Duration;

use common::load::RequestLoop;
use common::vm::{self, Vm};
use common::{eventually, eventually_ok, succeeded, text, wait_output, Project};

mod common;

use common::engine::BUSYBOX;

const CADDY: &str = "stack-test/caddy:latest";
const NGINX: &str = "stack-test/nginx:latest";
const POSTGRES: &str = "stack-test/postgres:15";
const STAGING_HOST: &str = "staging.test";

/// A project whose `web` answers `$VERSION $TOKEN`, with a volume and a secret, routed at
/// `${STACK_DOMAIN}`; staging at `staging.test`, previews under `*.preview.test`.
fn project(name: &str, vm: &Vm) -> Project {
    let project = Project::called(name);
    std::fs::create_dir_all(project.path("environments/staging")).unwrap();
    project.write(&format!(
        "STACK_TLS=off\nSTACK_DRAIN=0s\nSTACK_PROXY=caddy\nSTACK_PROXY_IMAGE={CADDY}\n\
         STACK_DOMAIN={STAGING_HOST}\nSTACK_HEALTH_TIMEOUT=90s\n\
         STACK_PREVIEW_DOMAIN=*.preview.test\nSTACK_PREVIEW_MAX=2\nSTACK_PREVIEW_MEMORY_MB=64\n\
         STACK_SECRETS=APP_TOKEN\nSTACK_SERVICES=web\n\
         SERVICE_WEB_IMAGE={BUSYBOX}\n\
         SERVICE_WEB_COMMAND=sh -c 'trap \"exit 0\" TERM; mkdir -p /www; echo \"$$VERSION\" > /www/index.html; echo ok > /data/mark; httpd -f -p 8080 -h /www & wait'\n\
         SERVICE_WEB_ENV_VERSION=staging\nSERVICE_WEB_ENV_TOKEN=${{APP_TOKEN}}\n\
         SERVICE_WEB_VOLUMES=data:/data\nSERVICE_WEB_PORT=8080\n\
         SERVICE_WEB_ROUTE=${{STACK_DOMAIN}}\nSERVICE_WEB_HEALTH=/\nSERVICE_WEB_HEALTH_INTERVAL=1s\n"
    ));
    std::fs::write(
        project.path("environments/staging/secrets.env"),
        "APP_TOKEN=staging-token-0123456789\n",
    )
    .unwrap();
    project.target(vm, "root");
    project
}

/// The first line of `/` at the machine's port 80 for `host`.
fn get(vm: &Vm, host: &str) -> Result<String, String> {
    let address = format!("{}:80", vm.ip())
        .parse()
        .map_err(|e| format!("{e}"))?;
    common::http_get(address, host)
}

fn wait_answer(vm: &Vm, host: &str, want: &str) {
    eventually_ok(
        &format!("`{host}` to answer `{want}`"),
        Duration::from_secs(60),
        || match get(vm, host) {
            Ok(body) if body == want => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
}

/// What the machine's engine has of `project`: containers, networks, volumes.
fn engine_objects(vm: &Vm, project: &str) -> String {
    let label = format!("label=com.docker.compose.project={project}");
    vm.exec(&format!(
        "docker ps -aq --filter {label}; docker network ls -q --filter {label}; docker volume ls -q --filter {label}"
    ))
}

/// staging's running containers: `name id` lines, which must not change while previews
/// come and go.
fn staging_containers(vm: &Vm, project: &str) -> String {
    vm.exec(&format!(
        "docker ps --filter label=com.docker.compose.project={project} --format '{{{{.Names}}}} {{{{.ID}}}}' | sort"
    ))
}

/// A machine with `proxy`'s image and busybox loaded, and the project `name` on it
/// (nginx in place of Caddy when `proxy` is [`NGINX`]), not yet deployed.
fn machine(vm_name: &str, name: &str, proxy: &str) -> (Vm, Project) {
    let vm = Vm::boot(vm_name, &vm::docker_image());
    vm.load_image(BUSYBOX);
    vm.load_image(proxy);
    let project = project(name, &vm);
    if proxy == NGINX {
        let text_of = std::fs::read_to_string(project.path("stack.env")).unwrap();
        let body = text_of.split_once('\n').map_or("", |(_, rest)| rest);
        project.write(
            &body
                .replace("STACK_PROXY=caddy", "STACK_PROXY=nginx")
                .replace(CADDY, NGINX),
        );
    }
    (vm, project)
}

/// Deploy staging and wait for its answer.
fn deploy_staging(vm: &Vm, project: &Project) {
    project.ok_on(vm, &["deploy", "staging", "--allow-dirty"]);
    wait_answer(vm, STAGING_HOST, "staging");
}

/// A running staging under a request loop, with the containers it started with.
struct Watched {
    before: String,
    load: RequestLoop,
}

impl Watched {
    /// Deploy staging, note its containers and start the request loop to it.
    fn start(vm: &Vm, project: &Project, name: &str) -> Watched {
        deploy_staging(vm, project);
        let before = staging_containers(vm, name);
        let address = format!("{}:80", vm.ip()).parse().unwrap();
        let load = RequestLoop::start(address, STAGING_HOST, 20_000, Duration::from_secs(900));
        Watched { before, load }
    }

    /// Stop the loop: no request to staging failed, each answered `staging`, and
    /// staging's containers are the ones it started with.
    fn finish(self, vm: &Vm, name: &str, what: &str) {
        let seen = self.load.finish();
        eprintln!(
            "{what}: {} requests, {} failed",
            seen.requests,
            seen.failures.len()
        );
        assert!(
            seen.failures.is_empty(),
            "{} of {} requests to staging failed: {:?}",
            seen.failures.len(),
            seen.requests,
            &seen.failures[..seen.failures.len().min(5)]
        );
        assert!(seen.answers.iter().all(|(_, a)| a == "staging"));
        assert_eq!(staging_containers(vm, name), self.before, "staging changed");
    }
}

/// `stack preview up PREVIEW --set SERVICE_WEB_ENV_VERSION=VERSION` on the machine.
fn up(vm: &Vm, project: &Project, preview: &str, version: &str) -> std::process::Output {
    succeeded(
        up_unchecked(vm, project, preview, version),
        &format!("preview up {preview}"),
    )
}

/// [`up`], whatever its exit code.
fn up_unchecked(vm: &Vm, project: &Project, preview: &str, version: &str) -> std::process::Output {
    let set = format!("SERVICE_WEB_ENV_VERSION={version}");
    project.on(
        vm,
        &["preview", "up", preview, "--allow-dirty", "--set", &set],
    )
}

#[test]
fn previews_come_and_go_beside_a_running_staging() {
    let name = format!("pv{}", std::process::id());
    let (vm, project) = machine("preview", &name, CADDY);

    // Bad names and an environment without previews are refused before anything runs.
    for bad in ["é!", "---", &"x".repeat(70)] {
        let out = project.on(&vm, &["preview", "up", "--allow-dirty", "--", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("preview name"),
            "{}",
            text(&out.stderr)
        );
    }

    let watched = Watched::start(&vm, &project, &name);

    // Two previews, each at its own host through staging's proxy.
    let up = |preview: &str, version: &str| up(&vm, &project, preview, version);
    let started = std::time::Instant::now();
    let out = up("pr-1", "one");
    eprintln!("preview up pr-1 (new): {:?}", started.elapsed());
    assert_eq!(text(&out.stdout).trim(), "http://pr-1.preview.test");
    wait_answer(&vm, "pr-1.preview.test", "one");
    // The second is seeded by a command, once (a redeploy does not run it again).
    let seeded = |version: &str| {
        let set = format!("SERVICE_WEB_ENV_VERSION={version}");
        let started = std::time::Instant::now();
        let out = project.ok_on(
            &vm,
            &[
                "preview",
                "up",
                "Feature/Two",
                "--allow-dirty",
                "--set",
                &set,
                "--set",
                "STACK_PREVIEW_SEED=command",
                "--set",
                "STACK_PREVIEW_SEED_COMMAND=web echo seeded >> /data/seeded",
            ],
        );
        eprintln!(
            "preview up feature-two ({version}): {:?}",
            started.elapsed()
        );
        out
    };
    let out = seeded("two");
    assert_eq!(text(&out.stdout).trim(), "http://feature-two.preview.test");
    wait_answer(&vm, "feature-two.preview.test", "two");
    seeded("two-b");
    wait_answer(&vm, "feature-two.preview.test", "two-b");
    let seed = vm.exec(&format!(
        "docker exec $(docker ps -q --filter label=com.docker.compose.project={name}-feature-two \
         --filter label=com.docker.compose.service=web | head -1) cat /data/seeded"
    ));
    assert_eq!(
        seed, "seeded\n",
        "the seed command did not run exactly once"
    );
    wait_answer(&vm, STAGING_HOST, "staging");

    // Its own secret (derived, not staging's), its limits, its own volume.
    let env = vm.exec(&format!(
        "docker inspect -f '{{{{range .Config.Env}}}}{{{{println .}}}}{{{{end}}}}' {name}-pr-1-web-1"
    ));
    assert!(env.contains("TOKEN="), "{env}");
    assert!(!env.contains("staging-token-0123456789"), "{env}");
    let memory = vm.exec(&format!(
        "docker inspect -f '{{{{.HostConfig.Memory}}}}' {name}-pr-1-web-1"
    ));
    assert_eq!(memory.trim(), (64u64 << 20).to_string());
    assert!(vm
        .exec("docker volume ls -q")
        .contains(&format!("{name}-pr-1_data")));

    // An update in place.
    let started = std::time::Instant::now();
    up("pr-1", "one-b");
    eprintln!("preview up pr-1 (update in place): {:?}", started.elapsed());
    wait_answer(&vm, "pr-1.preview.test", "one-b");

    // Two CI jobs updating the same preview at once: they meet at the preview's lock,
    // the second waits for the first, and both succeed.
    let spawn = |version: &str| {
        let set = format!("SERVICE_WEB_ENV_VERSION={version}");
        project
            .command(&[
                "preview",
                "up",
                "pr-1",
                "--allow-dirty",
                "--lock-wait",
                "3m",
                "--set",
                &set,
            ])
            .env("STACK_SSH_CONFIG", vm.ssh_config())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn("one-c"), spawn("one-d"));
    succeeded(
        wait_output(first, Duration::from_secs(300)),
        "concurrent up",
    );
    succeeded(
        wait_output(second, Duration::from_secs(300)),
        "concurrent up",
    );
    eventually_ok(
        "pr-1 to answer one of the two",
        Duration::from_secs(60),
        || match get(&vm, "pr-1.preview.test") {
            Ok(body) if body == "one-c" || body == "one-d" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );

    // The list, and STACK_PREVIEW_MAX=2.
    let listed = text(&project.ok_on(&vm, &["preview", "list"]).stdout);
    assert!(
        listed.contains("pr-1") && listed.contains("feature-two"),
        "{listed}"
    );
    let out = project.on(&vm, &["preview", "up", "pr-3", "--allow-dirty"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("STACK_PREVIEW_MAX"),
        "{}",
        text(&out.stderr)
    );

    // `down` of what is not a preview is refused; `down` removes everything of one.
    let out = project.on(&vm, &["preview", "down", "staging"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    project.ok_on(&vm, &["preview", "down", "pr-1"]);
    assert_eq!(engine_objects(&vm, &format!("{name}-pr-1")).trim(), "");
    let files = vm.exec(&format!(
        "ls /opt/{name}/previews /opt/{name}/preview-routes 2>&1 || true"
    ));
    assert!(!files.contains("pr-1"), "{files}");
    assert!(
        get(&vm, "pr-1.preview.test").ok().as_deref() != Some("one-b"),
        "the removed preview still answers"
    );
    wait_answer(&vm, "feature-two.preview.test", "two-b");

    // With one removed, the third fits under `STACK_PREVIEW_MAX`: three previews have
    // now been served beside staging, each at its own host.
    up("pr-3", "three");
    wait_answer(&vm, "pr-3.preview.test", "three");
    wait_answer(&vm, "feature-two.preview.test", "two-b");
    project.ok_on(&vm, &["preview", "down", "pr-3"]);
    assert_eq!(engine_objects(&vm, &format!("{name}-pr-3")).trim(), "");

    // A preview whose deploy fails: reported, staging untouched, listed, removable.
    let out = project.on(
        &vm,
        &[
            "preview",
            "up",
            "broken",
            "--allow-dirty",
            "--set",
            "SERVICE_WEB_HEALTH=/missing",
            "--set",
            "STACK_HEALTH_TIMEOUT=5s",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("stack preview down broken"),
        "{}",
        text(&out.stderr)
    );
    let listed = text(&project.ok_on(&vm, &["preview", "list"]).stdout);
    assert!(listed.contains("broken"), "{listed}");
    project.ok_on(&vm, &["preview", "down", "broken"]);
    assert_eq!(engine_objects(&vm, &format!("{name}-broken")).trim(), "");

    // A preview not deployed for longer than its TTL expires.
    eventually("`feature-two` to expire", Duration::from_secs(60), || {
        project.ok_on(&vm, &["preview", "expire", "--set", "STACK_PREVIEW_TTL=1s"]);
        !text(&project.ok_on(&vm, &["preview", "list"]).stdout).contains("feature-two")
    });
    assert_eq!(
        engine_objects(&vm, &format!("{name}-feature-two")).trim(),
        ""
    );

    watched.finish(&vm, &name, "staging under previews");
    wait_answer(&vm, STAGING_HOST, "staging");
}

/// The CI recipe's commands (what the GitHub Action and the GitLab template run):
/// `ci/stack-ci.sh preview-up staging NAME` prints the address and writes it where the
/// action reads it, the preview answers there, and `preview-down` removes it. The key
/// comes as its contents (as GitHub passes it), the known hosts as a file (as GitLab
/// passes a file variable), the secrets as `STACK_SECRETS`.
#[test]
fn the_ci_recipe_creates_and_removes_a_preview() {
    let name = format!("pc{}", std::process::id());
    let (vm, project) = machine("previewci", &name, CADDY);
    deploy_staging(&vm, &project);
    let secrets = project.path("environments/staging/secrets.env");
    let secrets_text = std::fs::read_to_string(&secrets).unwrap();
    std::fs::remove_file(&secrets).unwrap();
    let key = std::fs::read_to_string(vm.key()).unwrap();
    let known_hosts = vm.ssh_config().with_file_name("known_hosts");
    let url_file = project.sibling("ci-out").join("preview-url");
    let script = |args: &[&str]| {
        let mut command = std::process::Command::new("bash");
        command
            .arg(common::repo_root().join("ci/stack-ci.sh"))
            .args(args)
            .current_dir(&project.dir)
            .env("STACK", env!("CARGO_BIN_EXE_stack"))
            .env("STACK_SSH_KEY", &key)
            .env("STACK_KNOWN_HOSTS", &known_hosts)
            .env("STACK_SECRETS", &secrets_text)
            .env("STACK_CI_PREVIEW_URL_FILE", &url_file)
            .env("STACK_CI_MESSAGE", "pr 7")
            .env_remove("SSH_AUTH_SOCK")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        wait_output(command.spawn().unwrap(), Duration::from_secs(300))
    };
    let out = succeeded(script(&["preview-up", "staging", "pr-7"]), "preview-up");
    assert_eq!(text(&out.stdout).trim(), "http://pr-7.preview.test");
    assert_eq!(
        std::fs::read_to_string(&url_file).unwrap().trim(),
        "http://pr-7.preview.test"
    );
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains("staging-token-0123456789") && !all.contains("PRIVATE KEY"));
    assert!(!secrets.exists(), "the script left the secrets file behind");
    wait_answer(&vm, "pr-7.preview.test", "staging");
    succeeded(script(&["preview-down", "staging", "pr-7"]), "preview-down");
    assert_eq!(engine_objects(&vm, &format!("{name}-pr-7")).trim(), "");
    let out = script(&["preview-up", "staging"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// Bad input is refused before anything connects: exit 2, the file and line or the
/// reason, and what to do.
#[test]
fn preview_input_errors_exit_2_with_a_hint() {
    let base = "STACK_SERVICES=web\nSERVICE_WEB_IMAGE=web:1\n\
                SERVICE_WEB_PORT=8080\nSERVICE_WEB_ROUTE=${STACK_DOMAIN}\n";
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "",
            &["preview", "up", "pr-1"],
            &["hosts no previews", "STACK_PREVIEW_DOMAIN"],
        ),
        (
            "STACK_PREVIEW_DOMAIN=*.p.test\nSTACK_TARGET=swarm\n",
            &["preview", "up", "pr-1"],
            &["runs on a swarm", "STACK_TARGET=compose"],
        ),
        (
            "STACK_PREVIEW_DOMAIN=*.p.test\nSTACK_PREVIEW_SEED=backup\n",
            &["preview", "list"],
            &["POSTGRES and BACKUP", "BACKUP_ENABLED=true", "stack.env:7"],
        ),
        (
            "STACK_PREVIEW_DOMAIN=*.p.test\nSTACK_PREVIEW_MAX=0\n",
            &["preview", "list"],
            &["STACK_PREVIEW_MAX", "stack.env:7"],
        ),
        (
            "STACK_PREVIEW_DOMAIN=*.p.test\nSTACK_PREVIEW_SEED=command\n",
            &["preview", "list"],
            &["STACK_PREVIEW_SEED_COMMAND"],
        ),
        (
            "STACK_PREVIEW_DOMAIN=bad_domain!\n",
            &["preview", "list"],
            &["not a preview domain", "*.preview.example.com"],
        ),
        // A preview whose host is one of the environment's own (staging serves
        // `pr-1.p.test`): refused before anything connects (the server is TEST-NET).
        (
            "STACK_PREVIEW_DOMAIN=*.p.test\nSTACK_DOMAIN=pr-1.p.test\n",
            &["preview", "up", "pr-1", "--allow-dirty"],
            &[
                "`pr-1.p.test` is a host of `staging` itself",
                "pick another preview name",
            ],
        ),
    ];
    for (extra, args, needles) in cases {
        let project = Project::called(&format!("pe{}", std::process::id()));
        std::fs::create_dir_all(project.path("environments/staging")).unwrap();
        project.write(&format!("{base}{extra}"));
        std::fs::write(
            project.path("environments/staging/server.env"),
            "SERVER_HOST=192.0.2.1\nSERVER_USER=deploy\n",
        )
        .unwrap();
        let out = project.run(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra}: {stderr}");
        for needle in *needles {
            assert!(
                stderr.contains(needle),
                "{extra}: no `{needle}` in {stderr}"
            );
        }
    }
}

/// `psql` in the container `container` of the machine (the socket: no password).
fn sql(vm: &Vm, container: &str, query: &str) -> String {
    vm.exec(&format!(
        "docker exec {container} psql -X -q -At -v ON_ERROR_STOP=1 -U app -d app -c \"{query}\""
    ))
}

/// A project with Postgres and its backups: `web` (the Postgres image, with busybox)
/// serves what its database held when it started (`SELECT note FROM notes`), so a page
/// shows whether the data was there before the app started.
fn postgres_project(name: &str, vm: &Vm) -> Project {
    let project = project(name, vm);
    project.write(&format!(
        "STACK_TLS=off\nSTACK_DRAIN=0s\nSTACK_PROXY=caddy\nSTACK_PROXY_IMAGE={CADDY}\n\
         STACK_DOMAIN={STAGING_HOST}\nSTACK_HEALTH_TIMEOUT=120s\n\
         STACK_PREVIEW_DOMAIN=*.preview.test\nSTACK_PREVIEW_TTL=1h\n\
         POSTGRES_ENABLED=true\nSERVICE_POSTGRES_IMAGE={POSTGRES}\nPOSTGRES_USER=app\nPOSTGRES_DB=app\n\
         BACKUP_ENABLED=true\n\
         STACK_SECRETS=APP_TOKEN\nSTACK_SERVICES=web\n\
         SERVICE_WEB_IMAGE={POSTGRES}\nSERVICE_WEB_DEPENDS_ON=postgres\n\
         SERVICE_WEB_ENV_PGPASSWORD=${{POSTGRES_PASSWORD}}\n\
         SERVICE_WEB_COMMAND=sh -c 'trap \"exit 0\" TERM; mkdir -p /www; psql -X -q -At -h postgres -U app -d app -c \"SELECT note FROM notes ORDER BY note\" > /www/index.html 2>/dev/null || echo none > /www/index.html; busybox httpd -f -p 8080 -h /www & wait'\n\
         SERVICE_WEB_PORT=8080\nSERVICE_WEB_ROUTE=${{STACK_DOMAIN}}\n\
         SERVICE_WEB_HEALTH_CMD=busybox wget -q -O /dev/null http://127.0.0.1:8080/\n\
         SERVICE_WEB_HEALTH_INTERVAL=1s\n"
    ));
    std::fs::write(
        project.path("environments/staging/secrets.env"),
        "APP_TOKEN=staging-token-0123456789\nPOSTGRES_PASSWORD=staging-db-password-0123\n",
    )
    .unwrap();
    project
}

/// `STACK_PREVIEW_SEED=backup`: the preview's database starts from staging's newest
/// verified dump, before its app starts, and what the preview writes stays in it; no dump
/// (or none verified) is refused before anything of the preview exists. Then staging's
/// `supervise` (its systemd unit, looking every second through `STACK_PREVIEWS_TICK`)
/// removes the preview that has been idle longer than `STACK_PREVIEW_TTL` and keeps the
/// one just deployed.
#[test]
fn a_preview_starts_from_the_newest_backup_and_supervise_expires_it() {
    let vm = Vm::boot("previewseed", &vm::docker_image());
    for image in [BUSYBOX, CADDY, POSTGRES] {
        vm.load_image(image);
    }
    let name = format!("ps{}", std::process::id());
    let project = postgres_project(&name, &vm);
    // The unit that `deploy` installs looks for idle previews every second.
    vm.exec(&format!(
        "mkdir -p /etc/systemd/system/{name}.service.d && \
         printf '[Service]\\nEnvironment=STACK_PREVIEWS_TICK=1s\\n' > /etc/systemd/system/{name}.service.d/tick.conf"
    ));
    project.ok_on(&vm, &["deploy", "staging", "--allow-dirty"]);
    let staging_db = format!("{name}-postgres-1");
    sql(
        &vm,
        &staging_db,
        "CREATE TABLE notes (note text); INSERT INTO notes VALUES ('from-staging')",
    );
    let seeded = ["--allow-dirty", "--set", "STACK_PREVIEW_SEED=backup"];
    let up = |preview: &str| {
        let mut args = vec!["preview", "up", preview];
        args.extend(seeded);
        project.on(&vm, &args)
    };

    // No dump yet, then a dump not verified: refused, and nothing of the preview exists.
    let out = up("pr-1");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no dump yet"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("stack backup run --on staging"),
        "{}",
        text(&out.stderr)
    );
    project.ok_on(&vm, &["backup", "run", "--on", "staging"]);
    let out = up("pr-1");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is verified"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(engine_objects(&vm, &format!("{name}-pr-1")).trim(), "");
    let files = vm.exec(&format!("ls /opt/{name}/previews 2>&1 || true"));
    assert!(!files.contains("pr-1"), "{files}");
    project.ok_on(&vm, &["backup", "verify", "--on", "staging"]);
    let staging_backups = vm.exec(&format!(
        "ls -l --time-style=+%s /opt/{name}/backups | sort"
    ));

    // Seeded: the app saw staging's row when it started.
    let started = std::time::Instant::now();
    let out = up("pr-1");
    eprintln!(
        "preview up pr-1 (new, seeded from a backup): {:?}",
        started.elapsed()
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("seeding the preview's database from `dump-"),
        "{}",
        text(&out.stderr)
    );
    wait_answer(&vm, "pr-1.preview.test", "from-staging");
    // A write in the preview stays in the preview; staging's database and dumps are as
    // they were.
    let preview_db = format!("{name}-pr-1-postgres-1");
    sql(
        &vm,
        &preview_db,
        "INSERT INTO notes VALUES ('from-preview')",
    );
    assert_eq!(
        sql(&vm, &preview_db, "SELECT count(*) FROM notes").trim(),
        "2"
    );
    assert_eq!(
        sql(&vm, &staging_db, "SELECT note FROM notes").trim(),
        "from-staging"
    );
    assert_eq!(
        vm.exec(&format!(
            "ls -l --time-style=+%s /opt/{name}/backups | sort"
        )),
        staging_backups
    );
    // An update in place keeps the preview's data (the seed runs on a new database only).
    let started = std::time::Instant::now();
    let out = up("pr-1");
    eprintln!(
        "preview up pr-1 (seeded, update in place): {:?}",
        started.elapsed()
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        sql(&vm, &preview_db, "SELECT count(*) FROM notes").trim(),
        "2"
    );

    // A second preview, just deployed; the first made idle for two hours (its last
    // deploy's time, as `preview list` reads it): supervise removes the first only.
    project.ok_on(&vm, &["preview", "up", "pr-2", "--allow-dirty"]);
    wait_answer(&vm, "pr-2.preview.test", "none");
    vm.exec(&format!(
        "touch -h -d '2 hours ago' /opt/{name}/previews/pr-1/current"
    ));
    eventually(
        "supervise to expire `pr-1`",
        Duration::from_secs(120),
        || {
            engine_objects(&vm, &format!("{name}-pr-1"))
                .trim()
                .is_empty()
                && !vm
                    .exec(&format!("ls /opt/{name}/previews"))
                    .contains("pr-1")
        },
    );
    let journal = vm.exec(&format!("journalctl -u {name} --no-pager"));
    assert!(journal.contains("removed preview `pr-1`"), "{journal}");
    assert!(!journal.contains("removed preview `pr-2`"), "{journal}");
    wait_answer(&vm, "pr-2.preview.test", "none");
    let listed = text(&project.ok_on(&vm, &["preview", "list"]).stdout);
    assert!(
        listed.contains("pr-2") && !listed.contains("pr-1"),
        "{listed}"
    );
    project.ok_on(&vm, &["preview", "down", "pr-2"]);
    assert_eq!(engine_objects(&vm, &format!("{name}-pr-2")).trim(), "");
    assert_eq!(
        sql(&vm, &staging_db, "SELECT note FROM notes").trim(),
        "from-staging"
    );
}

/// A seeded preview whose dump does not restore (a data-only dump of staging, marked
/// verified and newest, whose table a new database lacks): `preview up` fails as a failed
/// health gate does (exit 1), says the restore failed and that the preview was removed,
/// and leaves nothing of it (containers, networks, volumes, files, route); staging's
/// containers, database and dumps are as they were.
#[test]
fn a_preview_whose_seed_does_not_restore_is_reported_and_removed() {
    let vm = Vm::boot("previewbadseed", &vm::docker_image());
    for image in [BUSYBOX, CADDY, POSTGRES] {
        vm.load_image(image);
    }
    let name = format!("pb{}", std::process::id());
    let project = postgres_project(&name, &vm);
    project.ok_on(&vm, &["deploy", "staging", "--allow-dirty"]);
    let staging_db = format!("{name}-postgres-1");
    sql(
        &vm,
        &staging_db,
        "CREATE TABLE notes (note text); INSERT INTO notes VALUES ('from-staging')",
    );
    project.ok_on(&vm, &["backup", "run", "--on", "staging"]);
    project.ok_on(&vm, &["backup", "verify", "--on", "staging"]);
    let backups = format!("/opt/{name}/backups");
    let staging_backups = vm.exec(&format!("ls -l --time-style=+%s {backups} | sort"));
    let staging_before = staging_containers(&vm, &name);
    // The newest "verified" dump holds rows only: its restore fails on a new database.
    let bad = format!("{backups}/dump-2099-01-01T000000Z.dump");
    vm.exec(&format!(
        "docker exec {staging_db} pg_dump -Fc --data-only -U app app > {bad} && \
         echo 'ok planted by the test' > {bad}.verify"
    ));

    let out = project.on(
        &vm,
        &[
            "preview",
            "up",
            "pr-1",
            "--allow-dirty",
            "--set",
            "STACK_PREVIEW_SEED=backup",
            "--set",
            // Its Postgres never turns healthy (each start's restore fails, and the data
            // folder is emptied for the next): the gate fails at its timeout, whatever it
            // is; 15 s, not the project's 120 s, is all this one waits.
            "STACK_HEALTH_TIMEOUT=15s",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("seeding the preview's database from `dump-2099-01-01T000000Z.dump`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("failed while its database was restored")
            && stderr.contains("removed the failed preview `pr-1`"),
        "{stderr}"
    );
    assert_eq!(engine_objects(&vm, &format!("{name}-pr-1")).trim(), "");
    let left = vm.exec(&format!(
        "ls /opt/{name}/previews /opt/{name}/preview-routes 2>&1 || true"
    ));
    assert!(!left.contains("pr-1"), "{left}");
    let listed = text(&project.ok_on(&vm, &["preview", "list"]).stdout);
    assert!(!listed.contains("pr-1"), "{listed}");

    vm.exec(&format!("rm -f {bad} {bad}.verify"));
    assert_eq!(
        vm.exec(&format!("ls -l --time-style=+%s {backups} | sort")),
        staging_backups
    );
    assert_eq!(staging_containers(&vm, &name), staging_before);
    assert_eq!(
        sql(&vm, &staging_db, "SELECT note FROM notes").trim(),
        "from-staging"
    );
    wait_answer(&vm, STAGING_HOST, "none");
}

/// Previews on an nginx environment: each preview's servers are one file the
/// environment's nginx includes, added and removed by a reload in place (`nginx -s
/// reload`), with staging's traffic under a request loop that sees no failure.
#[test]
fn previews_on_nginx_beside_a_running_staging() {
    let name = format!("pn{}", std::process::id());
    let (vm, project) = machine("previewnginx", &name, NGINX);
    let watched = Watched::start(&vm, &project, &name);

    let up = |preview: &str, version: &str| up(&vm, &project, preview, version);
    let started = std::time::Instant::now();
    let out = up("pr-1", "one");
    eprintln!("preview up pr-1 on nginx (new): {:?}", started.elapsed());
    assert_eq!(text(&out.stdout).trim(), "http://pr-1.preview.test");
    wait_answer(&vm, "pr-1.preview.test", "one");
    up("pr-2", "two");
    wait_answer(&vm, "pr-2.preview.test", "two");
    wait_answer(&vm, "pr-1.preview.test", "one");
    let routes = vm.exec(&format!("ls /opt/{name}/preview-routes"));
    assert!(
        routes.contains("pr-1.nginx") && routes.contains("pr-2.nginx"),
        "{routes}"
    );
    // An update in place: a new router container, found again through Docker's DNS.
    let started = std::time::Instant::now();
    up("pr-1", "one-b");
    eprintln!(
        "preview up pr-1 on nginx (update in place): {:?}",
        started.elapsed()
    );
    wait_answer(&vm, "pr-1.preview.test", "one-b");
    let started = std::time::Instant::now();
    project.ok_on(&vm, &["preview", "down", "pr-1"]);
    eprintln!("preview down pr-1 on nginx: {:?}", started.elapsed());
    assert_eq!(engine_objects(&vm, &format!("{name}-pr-1")).trim(), "");
    assert!(
        get(&vm, "pr-1.preview.test").ok().as_deref() != Some("one-b"),
        "the removed preview still answers"
    );
    wait_answer(&vm, "pr-2.preview.test", "two");
    project.ok_on(&vm, &["preview", "down", "pr-2"]);
    assert_eq!(engine_objects(&vm, &format!("{name}-pr-2")).trim(), "");

    watched.finish(&vm, &name, "nginx staging under previews");
}

/// A server that runs out of disk while a preview is created (its `previews` folder on a
/// full file system): `preview up` fails with the server's own reason and the way out,
/// staging keeps serving in the same containers, what the failed preview left is listed
/// and removed by `preview down`, and once there is room the same preview comes up.
#[test]
fn a_preview_on_a_full_disk_fails_clearly_and_leaves_staging_as_it_was() {
    let name = format!("pf{}", std::process::id());
    let (vm, project) = machine("previewfull", &name, CADDY);
    deploy_staging(&vm, &project);
    let before = staging_containers(&vm, &name);
    let previews = format!("/opt/{name}/previews");
    vm.exec(&format!(
        "mkdir -p {previews} && mount -t tmpfs -o size=64k tmpfs {previews} && \
         (dd if=/dev/zero of={previews}/.fill bs=4k 2>/dev/null || true)"
    ));

    let out = up_unchecked(&vm, &project, "pr-1", "full");
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains("the server's disk is full"), "{stderr}");
    assert_eq!(staging_containers(&vm, &name), before, "staging changed");
    wait_answer(&vm, STAGING_HOST, "staging");
    // Nothing of the preview was made: no containers, networks, volumes, route or files.
    let listed = text(&project.ok_on(&vm, &["preview", "list"]).stdout);
    assert!(!listed.contains("pr-1"), "{listed}");
    assert_eq!(engine_objects(&vm, &format!("{name}-pr-1")).trim(), "");
    let left = vm.exec(&format!(
        "ls -A /opt/{name}/previews /opt/{name}/preview-routes 2>&1 || true"
    ));
    assert!(!left.contains("pr-1"), "{left}");
    eprintln!("{stderr}");

    vm.exec(&format!("umount {previews}"));
    up(&vm, &project, "pr-1", "roomy");
    wait_answer(&vm, "pr-1.preview.test", "roomy");
    project.ok_on(&vm, &["preview", "down", "pr-1"]);
    assert_eq!(staging_containers(&vm, &name), before, "staging changed");
}
