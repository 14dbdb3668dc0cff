//! `stack backup` against a real Docker Engine and a real Postgres (issue 11): dumps with
//! their manifests, verification in a throwaway server, restore, retention, the failure
//! paths and their metrics, and off-site copies to an S3 endpoint (moto's server).
//!
//! Needs a running dockerd, the test images `stack-test/postgres:15`, `stack-test/rclone`
//! and `stack-test/busybox` (`scripts/build-test-images.sh`) and moto's server
//! (`scripts/install-ci-deps.sh`); a missing piece FAILS the test. Each test has its own
//! project `b-<test>-<pid>`, removed with its volumes when the test ends. The databases
//! hold a few rows: the 1 GB figures are `bench/backup.sh`'s.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::Duration;

use common::{all_output, docker, docker_ok, eventually, free_port, inspect, text, Project};

mod common;

const POSTGRES: &str = "stack-test/postgres:15";
const RCLONE: &str = "stack-test/rclone:latest";
use common::engine::BUSYBOX;
const MOTO: &str = "/opt/stack-ci/moto/bin";

impl Project {
    /// A project `b-<test>-<pid>`: Postgres with the BACKUP preset (schedules that never
    /// come: the tests run each step themselves), then `body`.
    fn new(test: &str, body: &str) -> Project {
        common::require_engine(&[POSTGRES, RCLONE, BUSYBOX]);
        let project = Project::named("b", test);
        project.rewrite(body);
        project
    }

    /// Write the project file again, with `body` after the preset's lines.
    fn rewrite(&self, body: &str) {
        self.write(&format!(
            "STACK_TLS=off\nSTACK_PROXY=none\n\
             POSTGRES_ENABLED=true\nSERVICE_POSTGRES_IMAGE={POSTGRES}\n\
             POSTGRES_DB=app\nPOSTGRES_USER=app\nBACKUP_ENABLED=true\n\
             BACKUP_SCHEDULE=0 0 31 2 *\nBACKUP_VERIFY_SCHEDULE=0 0 31 2 *\n{body}"
        ));
    }

    fn backups(&self) -> PathBuf {
        self.path("backups")
    }

    /// `stack start`, then wait until the database takes connections over TCP.
    fn start(&self) {
        self.ok(&["start"]);
        common::engine::wait_for_postgres(&self.container("postgres"));
    }

    /// Run SQL in the live database; its output (unaligned, tuples only).
    fn sql(&self, sql: &str) -> String {
        let out = common::engine::psql(&self.container("postgres"), sql);
        assert!(out.status.success(), "psql `{sql}`: {}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    }

    /// The dump names under ./backups, sorted.
    fn dumps(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.backups())
            .map(|dir| {
                dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".dump"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Every entry of ./backups, hidden ones too.
    fn files(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.backups())
            .map(|dir| {
                dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The metrics file the backup steps wrote into the `metrics-textfile` volume.
    fn metrics(&self) -> String {
        let volume = format!("{}_metrics-textfile:/m:ro", self.name);
        let out = docker(&[
            "run",
            "--rm",
            "-v",
            &volume,
            BUSYBOX,
            "cat",
            "/m/stack_backup.prom",
        ]);
        text(&out.stdout)
    }
}

/// The name `run` printed.
fn written(out: &Output) -> String {
    let all = all_output(out);
    let start = all.find("backup `").expect("a dump name") + "backup `".len();
    all[start..].split('`').next().unwrap().to_string()
}

/// A service that uses the database: it must be stopped during a restore and be ready
/// again after.
const APP: &str = "STACK_SERVICES=app\n\
    SERVICE_APP_IMAGE=stack-test/busybox:latest\n\
    SERVICE_APP_COMMAND=sh -c 'trap \"exit 0\" TERM; while :; do sleep 1; done & wait'\n\
    SERVICE_APP_DEPENDS_ON=postgres\n\
    SERVICE_APP_HEALTH_CMD=true\n\
    SERVICE_APP_HEALTH_INTERVAL=1s\n";

#[test]
fn a_dropped_table_comes_back_with_restore() {
    let project = Project::new("restore", APP);
    project.start();
    project.sql(
        "CREATE TABLE orders (id serial PRIMARY KEY, note text); \
         INSERT INTO orders (note) SELECT 'order ' || g FROM generate_series(1, 500) g; \
         CREATE SCHEMA billing; CREATE TABLE billing.\"Invoice Lines\" (n int); \
         INSERT INTO billing.\"Invoice Lines\" SELECT generate_series(1, 42);",
    );
    let out = project.ok(&["backup", "run"]);
    let dump = written(&out);
    assert!(
        dump.starts_with("dump-") && dump.ends_with(".dump"),
        "{dump}"
    );
    let manifest = std::fs::read_to_string(project.backups().join(format!("{dump}.manifest.json")))
        .expect("a manifest next to the dump");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["tables"]["public.orders"], 500, "{manifest}");
    assert_eq!(
        manifest["tables"]["billing.Invoice Lines"], 42,
        "{manifest}"
    );
    assert_eq!(manifest["dump"], dump.as_str());

    // The dump restores into a throwaway server and matches its manifest.
    project.ok(&["backup", "verify", &dump]);
    let list = project.ok(&["--json", "backup", "list"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let entry = &list["dumps"][0];
    assert_eq!(entry["name"], dump.as_str(), "{list}");
    assert_eq!(entry["verified"], "ok", "{list}");
    assert!(entry["size_bytes"].as_u64().unwrap() > 1000, "{list}");
    let metrics = project.metrics();
    assert!(
        metrics.contains("stack_backup_last_verify_timestamp_seconds ")
            && metrics.contains("stack_backup_last_success_timestamp_seconds ")
            && metrics.contains("stack_backup_last_ok{step=\"verify\"} 1"),
        "{metrics}"
    );

    // Lose data, then restore.
    project.sql("DROP TABLE orders; DELETE FROM billing.\"Invoice Lines\" WHERE n > 2;");
    let app_before = inspect(&project.container("app"), "{{.State.StartedAt}}");
    let out = project.ok(&["backup", "restore", &dump, "--yes"]);
    let said = all_output(&out);
    assert!(said.contains("safety dump"), "{said}");
    assert_eq!(project.sql("SELECT count(*) FROM orders"), "500");
    assert_eq!(
        project.sql("SELECT count(*) FROM billing.\"Invoice Lines\""),
        "42"
    );
    // The service that uses the database was stopped for the restore, and is back.
    assert_ne!(
        inspect(&project.container("app"), "{{.State.StartedAt}}"),
        app_before
    );
    // stack counts its own run of the health command as ready; Docker's first check
    // follows within its 1 s interval.
    eventually(
        "app to be healthy after the restore",
        common::LIVE_LIMIT,
        || inspect(&project.container("app"), "{{.State.Health.Status}}") == "healthy",
    );
    // The safety dump holds the state before the restore, without the table.
    let safety: Vec<String> = project
        .dumps()
        .into_iter()
        .filter(|d| d.starts_with("safety-"))
        .collect();
    assert_eq!(safety.len(), 1, "{:?}", project.dumps());
    let manifest = std::fs::read_to_string(
        project
            .backups()
            .join(format!("{}.manifest.json", safety[0])),
    )
    .unwrap();
    assert!(!manifest.contains("public.orders"), "{manifest}");

    // Asking without a terminal and without --yes is refused, and changes nothing.
    let out = project.run(&["backup", "restore", &dump]);
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(all_output(&out).contains("--yes"));
    // A name that is no dump is refused before anything runs.
    let out = project.run(&["backup", "restore", "../etc/passwd", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    let out = project.run(&["backup", "restore", "dump-2001-01-01T000000Z.dump", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(all_output(&out).contains("stack backup list"));
}

#[test]
fn a_truncated_dump_fails_verify_and_sets_the_metric() {
    let project = Project::new("truncated", "");
    project.start();
    project
        .sql("CREATE TABLE t AS SELECT g AS n, md5(g::text) AS h FROM generate_series(1, 20000) g");
    let dump = written(&project.ok(&["backup", "run"]));
    let path = project.backups().join(&dump);
    let size = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(size / 2).unwrap();
    drop(file);
    let out = project.run(&["backup", "verify", &dump]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("does not restore"),
        "{}",
        all_output(&out)
    );
    let metrics = project.metrics();
    assert!(
        metrics.contains("stack_backup_last_ok{step=\"verify\"} 0")
            && metrics.contains("stack_backup_last_failure_timestamp_seconds{step=\"verify\"} "),
        "{metrics}"
    );
    let list = project.ok(&["--json", "backup", "list"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["dumps"][0]["verified"], "failed", "{list}");

    // Restoring it fails in its one transaction: the data stays, the safety dump is
    // named with the command that returns to it.
    project.sql("INSERT INTO t SELECT 0, 'after the dump'");
    let out = project.run(&["backup", "restore", &dump, "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let said = all_output(&out);
    let safety = project
        .dumps()
        .into_iter()
        .find(|d| d.starts_with("safety-"))
        .expect("a safety dump");
    assert!(
        said.contains(&format!("stack backup restore {safety} --yes")),
        "{said}"
    );
    assert_eq!(project.sql("SELECT count(*) FROM t"), "20001");

    // A dump whose rows differ from its manifest fails too, naming the table.
    let dump = written(&project.ok(&["backup", "run"]));
    let manifest = project.backups().join(format!("{dump}.manifest.json"));
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("\"public.t\" : 20001", "\"public.t\" : 20002"),
    )
    .unwrap();
    let out = project.run(&["backup", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let said = all_output(&out);
    assert!(said.contains("public.t 20002 20001"), "{said}");
}

/// Dumps hold the whole database: the dump, its manifest and verification record and
/// the folder are the owner's alone, a folder made 0755 by an older stack (or by the
/// engine) included, and so is what was already in it.
#[test]
fn dumps_their_manifests_and_their_folder_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::new("private", "");
    // As an older stack left it: an open folder with an open dump in it.
    std::fs::create_dir_all(project.backups()).unwrap();
    std::fs::set_permissions(project.backups(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let old = project.backups().join("dump-2020-01-01T000000Z.dump");
    std::fs::write(&old, b"old").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    project.start();
    project
        .sql("CREATE TABLE secrets_of_the_app (n int); INSERT INTO secrets_of_the_app VALUES (1)");
    let dump = written(&project.ok(&["backup", "run"]));
    project.ok(&["backup", "verify", &dump]);
    let backups = project.backups();
    assert_eq!(common::mode(&backups), 0o700, "the folder of the dumps");
    for file in [
        dump.clone(),
        format!("{dump}.manifest.json"),
        format!("{dump}.verify"),
        "dump-2020-01-01T000000Z.dump".to_string(),
    ] {
        assert_eq!(common::mode(&backups.join(&file)), 0o600, "{file}");
    }
    assert!(
        !project.files().iter().any(|f| f.starts_with('.')),
        "{:?}",
        project.files()
    );
}

/// The names to keep, computed here from the rule: the newest of each of the last
/// `days` days that have dumps, and of each of the last `months` months.
fn expected_keep(names: &[String], days: usize, months: usize) -> BTreeSet<String> {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    sorted.reverse();
    let mut keep = BTreeSet::new();
    let (mut seen_days, mut seen_months) = (Vec::new(), Vec::new());
    for name in sorted {
        let day = &name[5..15];
        let month = &name[5..12];
        if !seen_days.contains(&day) {
            seen_days.push(day);
            if seen_days.len() <= days {
                keep.insert(name.clone());
            }
        }
        if !seen_months.contains(&month) {
            seen_months.push(month);
            if seen_months.len() <= months {
                keep.insert(name.clone());
            }
        }
    }
    keep
}

#[test]
fn retention_keeps_the_newest_of_each_day_and_month() {
    let project = Project::new("retention", "BACKUP_KEEP_DAILY=3\nBACKUP_KEEP_MONTHLY=4\n");
    project.start();
    std::fs::create_dir_all(project.backups()).unwrap();
    // Faked dumps, dated back from today: several a day, then one or two a month.
    let mut fakes = Vec::new();
    for (days_ago, times) in [
        (1, &["010000", "120000", "230000"][..]),
        (2, &["030000", "150000"][..]),
        (4, &["030000"][..]),
        (29, &["030000"][..]),
        (33, &["030000", "220000"][..]),
        (61, &["030000"][..]),
        (77, &["030000"][..]),
        (120, &["030000"][..]),
        (342, &["030000"][..]),
    ] {
        let day = days_ago_date(days_ago);
        for time in times {
            let name = format!("dump-{day}T{time}Z.dump");
            std::fs::write(project.backups().join(&name), b"fake").unwrap();
            std::fs::write(
                project.backups().join(format!("{name}.manifest.json")),
                b"{}",
            )
            .unwrap();
            fakes.push(name);
        }
    }
    let real = written(&project.ok(&["backup", "run"]));
    let mut all = fakes.clone();
    all.push(real.clone());
    let want = expected_keep(&all, 3, 4);
    // Today's real dump, the two newest faked days, and the months before.
    assert!(want.contains(&real));
    let yesterday = days_ago_date(1);
    assert!(want.contains(&format!("dump-{yesterday}T230000Z.dump")));
    assert!(!want.contains(&format!("dump-{yesterday}T010000Z.dump")));
    assert!((5..=7).contains(&want.len()), "{want:?}");
    let got: BTreeSet<String> = project.dumps().into_iter().collect();
    assert_eq!(got, want);
    // A removed dump takes its manifest along.
    let files = project.files();
    for name in &all {
        let manifest = format!("{name}.manifest.json");
        assert_eq!(files.contains(&manifest), want.contains(name), "{manifest}");
    }
}

#[test]
fn a_failing_dump_keeps_no_partial_file_and_sets_the_metric() {
    let project = Project::new("dbdown", "");
    project.start();
    project.sql("CREATE TABLE t (n int)");
    let first = written(&project.ok(&["backup", "run"]));
    let before = project.files();
    project.ok(&["stop", "postgres"]);
    let out = project.run(&["backup", "run"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let said = all_output(&out);
    assert!(said.contains("is the database up?"), "{said}");
    assert_eq!(
        project.files(),
        before,
        "no partial file, the previous dump untouched"
    );
    assert!(project.backups().join(&first).is_file());
    let metrics = project.metrics();
    assert!(
        metrics.contains("stack_backup_last_ok{step=\"run\"} 0")
            && metrics.contains("stack_backup_last_failure_timestamp_seconds{step=\"run\"} ")
            && metrics.contains("stack_backup_last_success_timestamp_seconds "),
        "{metrics}"
    );
}

#[test]
fn a_target_that_is_not_writable_is_a_clear_error() {
    let project = Project::new("readonly", "");
    project.start();
    // A file where the directory should be: nothing can be written under it.
    std::fs::remove_dir_all(project.backups()).unwrap();
    std::fs::write(project.backups(), b"not a directory").unwrap();
    let out = project.run(&["backup", "run"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let said = all_output(&out);
    assert!(said.contains("BACKUP_TARGET=./backups"), "{said}");
    assert_eq!(
        std::fs::read(project.backups()).unwrap(),
        b"not a directory"
    );
    let metrics = project.metrics();
    assert!(
        metrics.contains("stack_backup_last_ok{step=\"run\"} 0"),
        "{metrics}"
    );
}

/// moto's S3 server, with IAM auth on: one user, one key, one bucket; killed on drop.
struct Moto {
    child: std::process::Child,
    endpoint: String,
    key: (String, String),
}

impl Moto {
    /// On the project network's gateway address: loopback for the host side, and the
    /// only host address the project's containers reach.
    fn start(gateway: &str, bucket: &str) -> Moto {
        let server = Path::new(MOTO).join("moto_server");
        assert!(
            server.exists(),
            "{} is missing: run scripts/install-ci-deps.sh",
            server.display()
        );
        let port = free_port();
        let child = StdCommand::new(&server)
            .args(["-H", gateway, "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let endpoint = format!("http://{gateway}:{port}");
        eventually("moto to listen", common::LIVE_LIMIT, || {
            std::net::TcpStream::connect((gateway, port)).is_ok()
        });
        let mut moto = Moto {
            child,
            endpoint,
            key: (String::new(), String::new()),
        };
        // Three unauthenticated calls make the user and its key; the bucket needs the key.
        let out = moto.python(&format!(
            "iam = boto3.client('iam', **anon)\n\
             iam.create_user(UserName='backup')\n\
             iam.put_user_policy(UserName='backup', PolicyName='s3', PolicyDocument=json.dumps(\
             {{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow', 'Action': 's3:*', 'Resource': '*'}}]}}))\n\
             key = iam.create_access_key(UserName='backup')['AccessKey']\n\
             boto3.client('s3', endpoint_url=endpoint, region_name='us-east-1', \
             aws_access_key_id=key['AccessKeyId'], aws_secret_access_key=key['SecretAccessKey'])\
             .create_bucket(Bucket='{bucket}')\n\
             print(key['AccessKeyId'], key['SecretAccessKey'])\n"
        ));
        let mut words = out.split_whitespace();
        moto.key = (
            words.next().unwrap().to_string(),
            words.next().unwrap().to_string(),
        );
        moto
    }

    fn python(&self, body: &str) -> String {
        let script = format!(
            "import boto3, json\nendpoint = '{}'\n\
             anon = dict(endpoint_url=endpoint, region_name='us-east-1', \
             aws_access_key_id='AKIAIOSFODNN7EXAMPLE', aws_secret_access_key='x')\n{body}",
            self.endpoint
        );
        let out = StdCommand::new(Path::new(MOTO).join("python"))
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "python: {}", text(&out.stderr));
        text(&out.stdout)
    }

    fn s3(&self) -> String {
        format!(
            "s3 = boto3.client('s3', endpoint_url=endpoint, region_name='us-east-1', \
             aws_access_key_id='{}', aws_secret_access_key='{}')\n",
            self.key.0, self.key.1
        )
    }

    /// The object keys under `prefix`, sorted.
    fn objects(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let out = self.python(&format!(
            "{}for o in s3.list_objects_v2(Bucket='{bucket}', Prefix='{prefix}').get('Contents', []):\n    print(o['Key'])\n",
            self.s3()
        ));
        let mut keys: Vec<String> = out.lines().map(String::from).collect();
        keys.sort();
        keys
    }

    fn put(&self, bucket: &str, key: &str) {
        self.python(&format!(
            "{}s3.put_object(Bucket='{bucket}', Key='{key}', Body=b'fake')\n",
            self.s3()
        ));
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn offsite_copies_go_to_s3_with_retention_and_a_refused_key_fails_clearly() {
    let bucket = "stack-backups";
    let project = Project::new(
        "offsite",
        &format!(
            "BACKUP_TARGET=s3://{bucket}/db\nBACKUP_KEEP_DAILY=2\nBACKUP_KEEP_MONTHLY=1\n\
             SERVICE_BACKUP_OFFSITE_IMAGE={RCLONE}\n"
        ),
    );
    // The network first, so moto can listen on its gateway; the keys come from moto.
    let network = format!("{}_default", project.name);
    let out = docker(&[
        "network",
        "create",
        &network,
        "--label",
        &format!("com.docker.compose.project={}", project.name),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let gateway = inspect_network_gateway(&network);
    let moto = Moto::start(&gateway, bucket);
    let secrets = |key: &str, secret: &str| {
        std::fs::create_dir_all(project.dir.join("environments/dev")).unwrap();
        let path = project.dir.join("environments/dev/secrets.env");
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let kept: String = old
            .lines()
            .filter(|l| !l.starts_with("BACKUP_S3_"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(
            &path,
            format!("{kept}BACKUP_S3_ACCESS_KEY={key}\nBACKUP_S3_SECRET_KEY={secret}\n"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    secrets(&moto.key.0, &moto.key.1);
    project.rewrite(&format!(
        "BACKUP_TARGET=s3://{bucket}/db\nBACKUP_KEEP_DAILY=2\nBACKUP_KEEP_MONTHLY=1\n\
         BACKUP_S3_ENDPOINT={}\nSERVICE_BACKUP_OFFSITE_IMAGE={RCLONE}\n",
        moto.endpoint
    ));
    project.start();
    project.sql("CREATE TABLE t AS SELECT generate_series(1, 10) AS n");
    // Old dumps already in the bucket: the retention applies there too.
    let kept_day = days_ago_date(39);
    for old in [
        format!("dump-{}T030000Z.dump", days_ago_date(40)),
        format!("dump-{kept_day}T030000Z.dump"),
        format!("dump-{}T030000Z.dump", days_ago_date(70)),
    ] {
        moto.put(bucket, &format!("db/{old}"));
        moto.put(bucket, &format!("db/{old}.manifest.json"));
    }
    let dump = written(&project.ok(&["backup", "run"]));
    let objects = moto.objects(bucket, "db/");
    // Kept: the new dump (today) and the newest other day; the month of today.
    let want = vec![
        format!("db/dump-{kept_day}T030000Z.dump"),
        format!("db/dump-{kept_day}T030000Z.dump.manifest.json"),
        format!("db/{dump}"),
        format!("db/{dump}.manifest.json"),
    ];
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(objects, want_sorted);
    let metrics = project.metrics();
    assert!(
        metrics.contains("stack_backup_offsite_last_success_timestamp_seconds "),
        "{metrics}"
    );
    // The dumps are listed from the local volume.
    let list = project.ok(&["--json", "backup", "list"]);
    assert!(text(&list.stdout).contains(&dump));

    // A key the endpoint refuses: a clear error, the dumps there and here untouched.
    // (The running backup-offsite service still has the good key and would copy the new
    // dump within 30 s: stopped, so only the refused copy runs.)
    project.ok(&["stop", "backup-offsite"]);
    secrets("AKIAWRONGWRONGWRONG1", "wrong-secret");
    let out = project.run(&["backup", "run"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let said = all_output(&out);
    assert!(said.contains("off-site copy"), "{said}");
    assert!(
        said.contains("InvalidAccessKeyId") || said.contains("403"),
        "the endpoint's answer is shown: {said}"
    );
    assert!(
        !said.contains("wrong-secret"),
        "no secret in the output: {said}"
    );
    assert_eq!(moto.objects(bucket, "db/"), want_sorted);
    let metrics = project.metrics();
    assert!(
        metrics.contains("stack_backup_last_ok{step=\"offsite\"} 0")
            && metrics.contains("stack_backup_last_failure_timestamp_seconds{step=\"offsite\"} "),
        "{metrics}"
    );
}

/// The UTC date `days` days ago, `YYYY-MM-DD` (GNU date).
fn days_ago_date(days: u32) -> String {
    let out = StdCommand::new("date")
        .args(["-u", "-d", &format!("{days} days ago"), "+%Y-%m-%d"])
        .output()
        .unwrap();
    assert!(out.status.success(), "GNU date: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

fn inspect_network_gateway(network: &str) -> String {
    let gateway = docker_ok(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        network,
    ])
    .trim()
    .to_string();
    assert!(!gateway.is_empty(), "network {network} has no gateway");
    gateway
}

#[test]
fn the_scheduled_service_dumps_and_verifies_on_its_schedules() {
    let project = Project::new(
        "schedule",
        "BACKUP_SCHEDULE=* * * * *\nBACKUP_VERIFY_SCHEDULE=every 1m\n",
    );
    project.start();
    project.sql("CREATE TABLE t AS SELECT generate_series(1, 7) AS n");
    // The loop checks its schedules when it starts, then at each minute. Restarted now
    // that the database takes connections, its first check (both schedules match every
    // minute) dumps and verifies at once: no wait for the next minute of the clock.
    docker_ok(&["restart", "-t", "1", &project.container("backup")]);
    let verified = || {
        project.dumps().iter().any(|d| {
            std::fs::read_to_string(project.backups().join(format!("{d}.verify")))
                .is_ok_and(|v| v.starts_with("ok "))
        })
    };
    if !common::process::within(Duration::from_secs(120), verified) {
        panic!(
            "no verified dump from the schedule loop's first check: {:?}\n{}",
            project.files(),
            text(&project.run(&["logs", "backup"]).stdout)
        );
    }
    let metrics = project.metrics();
    assert!(
        metrics.contains("stack_backup_last_verify_timestamp_seconds ")
            && metrics.contains("stack_backup_last_ok{step=\"run\"} 1"),
        "{metrics}"
    );
}

/// A small tmpfs mounted on the host (the tests run as root, as CI does); unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let out = StdCommand::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (these tests run as root, as CI does): {}",
            text(&out.stderr)
        );
        SmallDisk(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = StdCommand::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_disk_that_fills_during_a_dump_keeps_no_partial_file() {
    let project = Project::new("diskfull", "");
    let disk = SmallDisk::mount(project.backups(), "256k");
    project.start();
    project.sql("CREATE TABLE t AS SELECT g AS n FROM generate_series(1, 100) g");
    let first = written(&project.ok(&["backup", "run"]));
    let before = project.files();
    // Random text does not compress: this dump cannot fit in what is left.
    project.sql(
        "CREATE TABLE big AS SELECT g AS n, md5(random()::text) || md5(random()::text) AS h \
         FROM generate_series(1, 20000) g",
    );
    let out = project.run(&["backup", "run"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let said = all_output(&out);
    assert!(said.contains("No space left on device"), "{said}");
    assert_eq!(
        project.files(),
        before,
        "no partial file, the previous dump untouched"
    );
    assert!(project.backups().join(&first).is_file());
    let metrics = project.metrics();
    assert!(
        metrics.contains("stack_backup_last_ok{step=\"run\"} 0"),
        "{metrics}"
    );
    drop(project);
    drop(disk);
}

/// The schedule loop's cron matcher (the rendered script, run by the host's sh and awk):
/// ranges, lists, steps, and cron's rule that a restricted day of month or day of week
/// each suffice.
#[test]
fn the_schedule_loop_matches_cron_fields_as_cron_does() {
    let project = Project::named("b", "cronmatch");
    project.write("POSTGRES_ENABLED=true\nBACKUP_ENABLED=true\n");
    project.ok(&["build"]);
    let script = project.bundle_dir("dev").join("backup/backup.sh");
    // (fields, now as `minute hour day month weekday`, matches)
    for (fields, now, want) in [
        ("0 3 * * *", "00 03 01 12 2", true),
        ("0 3 * * *", "01 03 01 12 2", false),
        ("0 3 * * *", "00 04 01 12 2", false),
        ("*/15 * * * *", "45 11 09 06 1", true),
        ("*/15 * * * *", "46 11 09 06 1", false),
        ("0 */6 * * *", "00 18 09 06 1", true),
        ("0 */6 * * *", "00 19 09 06 1", false),
        ("30 2 1-7 * *", "30 02 07 05 3", true),
        ("30 2 1-7 * *", "30 02 08 05 3", false),
        ("0 4 * * 0", "00 04 06 12 0", true),
        ("0 4 * * 7", "00 04 06 12 0", true),
        ("0 4 * * 1-5", "00 04 06 12 0", false),
        ("0 0 1,15 * *", "00 00 15 02 4", true),
        ("5/20 * * * *", "45 00 15 02 4", true),
        ("5/20 * * * *", "40 00 15 02 4", false),
        ("0 0 31 2 *", "00 00 28 02 6", false),
        // Both day fields restricted: either matches.
        ("0 0 13 * 5", "00 00 13 06 2", true),
        ("0 0 13 * 5", "00 00 14 06 5", true),
        ("0 0 13 * 5", "00 00 14 06 4", false),
        ("0 0 1 1 *", "00 00 01 01 3", true),
        ("0 0 1 1 *", "00 00 01 02 0", false),
    ] {
        let status = StdCommand::new("sh")
            .arg(&script)
            .args(["cron-match", fields, now])
            .status()
            .unwrap();
        assert_eq!(status.success(), want, "`{fields}` at `{now}`");
    }
}

#[path = "common/receiver.rs"]
mod receiver;

// Issue 22 item 2: a failed backup step is told to `STACK_NOTIFY` from the backup
// container itself (its script, with the image's client): a JSON webhook and an ntfy
// topic on a receiver at the project network's gateway. The URLs reach the container as
// a secret; no output shows their tokens.
#[test]
fn a_failed_backup_is_notified_from_the_container() {
    let project = Project::new("notify", "");
    let network = format!("{}_default", project.name);
    let out = docker(&[
        "network",
        "create",
        &network,
        "--label",
        &format!("com.docker.compose.project={}", project.name),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let gateway = inspect_network_gateway(&network);
    let receiver = receiver::Receiver::start(&gateway, receiver::Answer::Ok);
    let base = format!("http://{gateway}:{}", receiver.port);
    std::fs::create_dir_all(project.path("environments/dev")).unwrap();
    std::fs::write(
        project.path("environments/dev/secrets.env"),
        format!("STACK_NOTIFY={base}/hook/tok-backup-8a1e,ntfy+{base}/tok-topic-3b9f\n"),
    )
    .unwrap();
    project.start();
    project.ok(&["stop", "postgres"]);
    let out = project.run(&["backup", "run"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let said = all_output(&out);
    assert!(
        !said.contains("tok-backup-8a1e") && !said.contains("tok-topic-3b9f"),
        "{said}"
    );
    let event = receiver
        .wait_for("backup_failed", common::LIVE_LIMIT)
        .json();
    assert_eq!(event["project"], project.name.as_str());
    assert_eq!(event["environment"], "dev");
    let message = event["message"].as_str().unwrap();
    assert!(
        message.contains("failed during run") && message.contains("is the database up?"),
        "{event}"
    );
    let ntfy = receiver
        .requests()
        .into_iter()
        .find(|r| r.path == "/tok-topic-3b9f")
        .expect("the ntfy topic got it");
    assert_eq!(ntfy.header("priority"), Some("high"));
    assert_eq!(ntfy.header("tags"), Some("warning,backup_failed"));
    assert!(ntfy.body.starts_with("backup of "), "{ntfy:?}");
    // The rendered compose file names the variable, never its value.
    let compose =
        std::fs::read_to_string(project.path(".stack/dev/docker-compose.yml")).unwrap_or_default();
    assert!(!compose.contains("tok-backup-8a1e"), "{compose}");
}

// ---- volume backups (issue 22, item 4) ----

/// A service that keeps its files in the named volume `uploads`, and backs it up with the
/// service paused around the archive.
const UPLOADS: &str = "STACK_SERVICES=app\n\
    SERVICE_APP_IMAGE=stack-test/busybox:latest\n\
    SERVICE_APP_COMMAND=sh -c 'trap \"exit 0\" TERM; while :; do sleep 1; done & wait'\n\
    SERVICE_APP_VOLUMES=uploads:/data\n\
    SERVICE_APP_HEALTH_CMD=true\n\
    SERVICE_APP_HEALTH_INTERVAL=1s\n\
    BACKUP_VOLUMES=uploads\n\
    BACKUP_VOLUMES_PAUSE=true\n";

impl Project {
    /// A shell command in the app container.
    fn app(&self, script: &str) -> String {
        docker_ok(&["exec", &self.container("app"), "sh", "-c", script])
    }

    /// `mode uid gid sha256 path` of every file under /data, and `mode uid gid path` of
    /// every directory and link, sorted.
    fn volume_state(&self) -> String {
        self.app(
            "cd /data && find . -type f -exec sh -c 'for f; do echo \"$(stat -c \"%a %u %g\" \"$f\") $(sha256sum \"$f\")\"; done' _ {} + | sort; \
             find . ! -type f -exec stat -c '%a %u %g %F %n' {} + | sort",
        )
    }

    /// The names under ./backups that start with `prefix`, sorted.
    fn backups_named(&self, prefix: &str) -> Vec<String> {
        self.files()
            .into_iter()
            .filter(|f| f.starts_with(prefix))
            .collect()
    }
}

#[test]
fn a_volume_is_archived_verified_and_restored_to_the_exact_bytes() {
    let project = Project::new("volume", UPLOADS);
    project.start();
    project.app(
        "mkdir -p /data/sub /data/empty && echo hello >/data/a.txt && \
         head -c 200000 /dev/urandom >/data/sub/b.bin && \
         echo private >/data/p.txt && chown 1234:5678 /data/p.txt && chmod 640 /data/p.txt && \
         printf 'x y' >'/data/with space' && ln -s a.txt /data/link",
    );
    let original = project.volume_state();

    // The archive: the service paused around it, with the pause reported.
    let out = project.ok(&["backup", "run"]);
    let said = all_output(&out);
    assert!(said.contains("paused `app` for "), "{said}");
    let archives = project.backups_named("volume-uploads-");
    let archive = archives
        .iter()
        .find(|n| n.ends_with(".tar.gz"))
        .expect("an archive")
        .clone();
    assert_eq!(
        archives,
        vec![archive.clone(), format!("{archive}.sha256")],
        "the archive and its manifest, nothing partial"
    );
    for name in &archives {
        assert_eq!(
            common::mode(&project.backups().join(name)) & 0o777,
            0o600,
            "{name}"
        );
    }
    let manifest =
        std::fs::read_to_string(project.backups().join(format!("{archive}.sha256"))).unwrap();
    assert_eq!(manifest.lines().count(), 4, "{manifest}");
    assert!(manifest.contains("./sub/b.bin"), "{manifest}");
    assert_eq!(
        inspect(&project.container("app"), "{{.State.Status}}"),
        "running",
        "unpaused after the archive"
    );
    project.ok(&["backup", "verify", &archive]);
    let list = project.ok(&["--json", "backup", "list"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let entry = list["dumps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == archive.as_str())
        .expect("the archive listed");
    assert_eq!(entry["volume"], "uploads", "{list}");
    assert_eq!(entry["verified"], "ok", "{list}");

    // Lose and change files; a restore while the service runs needs --yes.
    project.app("echo changed >/data/a.txt && rm /data/sub/b.bin && echo new >/data/new.txt");
    let changed = project.volume_state();
    let out = project.run(&["backup", "restore", "--volume", "uploads"]);
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    let said = all_output(&out);
    assert!(
        said.contains("is in use by `app`") && said.contains("--yes"),
        "{said}"
    );
    assert_eq!(
        project.volume_state(),
        changed,
        "a refused restore changes nothing"
    );

    let app_before = inspect(&project.container("app"), "{{.State.StartedAt}}");
    let out = project.ok(&["backup", "restore", "--volume", "uploads", "--yes"]);
    let said = all_output(&out);
    assert!(said.contains("every sha256 as in the manifest"), "{said}");
    assert_eq!(
        project.volume_state(),
        original,
        "the exact bytes, modes and owners"
    );
    assert_ne!(
        inspect(&project.container("app"), "{{.State.StartedAt}}"),
        app_before,
        "the service was stopped for the restore and started again"
    );
    // The safety copy holds what the restore replaced.
    let safety = project.backups_named("safety-volume-uploads-");
    assert_eq!(safety.len(), 2, "{safety:?}");
    let volume = format!("{}:/b:ro", project.backups().display());
    let held = docker_ok(&[
        "run",
        "--rm",
        "-v",
        &volume,
        BUSYBOX,
        "sh",
        "-c",
        &format!(
            "tar -xzOf /b/{0} ./a.txt; tar -xzOf /b/{0} ./new.txt",
            safety[0]
        ),
    ]);
    assert_eq!(held, "changed\nnew\n");

    // A flipped byte: verify fails clearly, and says so in the list.
    let path = project.backups().join(&archive);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = project.run(&["backup", "verify", &archive]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("is corrupt"),
        "{}",
        all_output(&out)
    );
    let metrics = project.metrics();
    assert!(
        metrics.contains("stack_backup_last_ok{step=\"verify\"} 0"),
        "{metrics}"
    );
    // ... and a restore from it changes nothing.
    let out = project.run(&[
        "backup", "restore", "--volume", "uploads", &archive, "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert_eq!(project.volume_state(), original);
}

#[test]
fn a_backup_volume_that_no_service_mounts_is_a_config_error() {
    let project = Project::new(
        "novolume",
        &UPLOADS.replace("BACKUP_VOLUMES=uploads", "BACKUP_VOLUMES=uploads,photos"),
    );
    let out = project.run(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    let said = all_output(&out);
    assert!(said.contains("`BACKUP_VOLUMES` names `photos`"), "{said}");
    assert!(said.contains("stack.env:17"), "{said}");
    assert!(
        said.contains("`uploads`"),
        "the hint lists the named volumes: {said}"
    );
}

#[test]
fn a_volume_removed_before_its_archive_fails_clearly_and_leaves_nothing() {
    let project = Project::new("gone", UPLOADS);
    project.start();
    project.app("echo hello >/data/a.txt");
    // The engine refuses to remove a volume a container holds (`volume is in use`):
    // remove the containers that mount it (with their anonymous volumes: the backup
    // service's image declares one), then the volume.
    for service in ["app", "backup"] {
        docker_ok(&["rm", "-f", "-v", &project.container(service)]);
    }
    let volume = format!("{}_uploads", project.name);
    docker_ok(&["volume", "rm", &volume]);
    let out = project.run(&["backup", "run"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let said = all_output(&out);
    assert!(
        said.contains("volume `uploads` (BACKUP_VOLUMES) does not exist"),
        "{said}"
    );
    assert!(
        project.backups_named("volume-").is_empty(),
        "{:?}",
        project.files()
    );
    assert!(
        project.files().iter().all(|f| !f.ends_with(".partial")),
        "{:?}",
        project.files()
    );
    assert!(
        !docker(&["volume", "inspect", &volume]).status.success(),
        "the backup did not create the volume again"
    );
    let metrics = project.metrics();
    assert!(
        metrics.contains("stack_backup_last_ok{step=\"volumes\"} 0")
            && metrics.contains("stack_backup_last_failure_timestamp_seconds{step=\"volumes\"} "),
        "{metrics}"
    );
}
