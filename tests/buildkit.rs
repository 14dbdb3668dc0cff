//! Builds through BuildKit's session on the real engine (issue 26, item 1): an unchanged
//! build makes no request, a one-line change sends about one file, the classic builder
//! still runs when asked, and a build whose engine connection is cut halfway leaves no
//! tag and a clear error. Each test writes its own project and context; the project's
//! removal removes its images.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::engine::BUSYBOX;
use common::{docker, noise, text, Project};

mod common;

const LIMIT: Duration = Duration::from_secs(240);

/// A project whose service `app` is built from `./app`: a Dockerfile that copies a
/// large dependency folder, then the sources (as real projects order their layers).
fn project(test: &str, megabytes: usize) -> Project {
    common::require_engine(&[BUSYBOX]);
    let p = Project::named("bk", test);
    let cache = p.sibling("cache");
    let p = p.with_env("XDG_CACHE_HOME", &cache);
    p.write(&format!(
        "STACK_PROXY=none\nSTACK_SERVICES=app\nSERVICE_APP_BUILD=./app\n\
         SERVICE_APP_IMAGE={}-app:dev\nSERVICE_APP_COMMAND=sleep 3600\n",
        p.name
    ));
    let app = p.path("app");
    std::fs::create_dir_all(app.join("vendor")).unwrap();
    std::fs::create_dir_all(app.join("src")).unwrap();
    for part in 0..megabytes {
        std::fs::write(
            app.join(format!("vendor/part-{part:03}.bin")),
            noise(1 << 20, part as u64 + 7),
        )
        .unwrap();
    }
    std::fs::write(app.join("src/main.txt"), "line one\nline two\n").unwrap();
    // The context is this project's own: an identical context built by another test (or an
    // earlier run) would be found by its fingerprint and reused, sending nothing.
    std::fs::write(app.join("src/project.txt"), &p.name).unwrap();
    std::fs::write(app.join(".dockerignore"), "*.log\n").unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        format!(
            "FROM {BUSYBOX}\nCOPY vendor/ /app/vendor/\nCOPY src/ /app/src/\n\
             CMD [\"sleep\", \"3600\"]\n"
        ),
    )
    .unwrap();
    p
}

/// `stack start --build --json` with `env`: the bytes sent to the builder and stderr.
fn start(p: &Project, env: &[(&str, &str)]) -> (u64, String) {
    let mut command = p.command(&["start", "--build", "--json", "-v"]);
    command.envs(env.iter().copied());
    let out = common::process::run_within(&mut command, LIMIT);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "start failed:\n{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", text(&out.stdout)));
    (json["bytes"]["build_context"].as_u64().unwrap_or(0), stderr)
}

fn image_id(reference: &str) -> Option<String> {
    let out = docker(&["image", "inspect", "--format", "{{.Id}}", reference]);
    out.status
        .success()
        .then(|| text(&out.stdout).trim().to_string())
}

fn file_in_image(p: &Project, path: &str) -> String {
    let image = format!("{}-app:dev", p.name);
    let out = docker(&["run", "--rm", &image, "cat", path]);
    text(&out.stdout)
}

#[test]
fn unchanged_builds_are_skipped_and_a_one_line_change_sends_about_one_file() {
    let p = project("incremental", 8);
    let image = format!("{}-app:dev", p.name);
    let (first, stderr) = start(&p, &[]);
    assert!(first > 8 << 20, "first build sent {first} bytes:\n{stderr}");
    assert!(stderr.contains("BuildKit"), "{stderr}");
    let built = image_id(&image).expect("image built");

    // Unchanged, and a change .dockerignore hides: no build request at all.
    std::fs::write(p.path("app/debug.log"), "ignored\n").unwrap();
    let (again, stderr) = start(&p, &[]);
    assert_eq!(again, 0, "{stderr}");
    assert!(stderr.contains("is up to date"), "{stderr}");
    assert_eq!(image_id(&image).as_deref(), Some(built.as_str()));

    // One line changed: about one file's bytes, and the image has it.
    std::fs::write(p.path("app/src/main.txt"), "line one\nline 2\n").unwrap();
    let (changed, stderr) = start(&p, &[]);
    assert!(
        changed < 64 << 10,
        "one-line change sent {changed} bytes:\n{stderr}"
    );
    assert!(
        stderr.contains("(cached)"),
        "dependency layer not reused:\n{stderr}"
    );
    assert_ne!(image_id(&image).as_deref(), Some(built.as_str()));
    assert_eq!(file_in_image(&p, "/app/src/main.txt"), "line one\nline 2\n");

    // A build argument is part of what is built: a new one builds again.
    p.write(&format!(
        "STACK_PROXY=none\nSTACK_SERVICES=app\nSERVICE_APP_BUILD=./app\n\
         SERVICE_APP_IMAGE={image}\nSERVICE_APP_COMMAND=sleep 3600\n\
         SERVICE_APP_BUILD_ARG_FLAVOUR=plain\n"
    ));
    let (with_arg, stderr) = start(&p, &[]);
    assert!(!stderr.contains("is up to date"), "{stderr}");
    assert!(with_arg < 64 << 10, "{with_arg} bytes:\n{stderr}");
}

#[test]
fn the_classic_builder_sends_the_whole_context_when_asked() {
    let p = project("classic", 4);
    let (sent, stderr) = start(&p, &[("STACK_BUILDER", "classic")]);
    assert!(sent > 4 << 20, "{sent} bytes:\n{stderr}");
    assert!(stderr.contains("classic builder"), "{stderr}");
    std::fs::write(p.path("app/src/main.txt"), "changed\n").unwrap();
    let (again, stderr) = start(&p, &[("STACK_BUILDER", "classic")]);
    assert!(again > 4 << 20, "{again} bytes:\n{stderr}");
    assert_eq!(file_in_image(&p, "/app/src/main.txt"), "changed\n");
    // A wrong value is refused before anything runs.
    let out = common::process::run_within(
        p.command(&["start", "--build"]).env("STACK_BUILDER", "kit"),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("`STACK_BUILDER`"));
}

/// The one content-hash cache file of `p`'s context, once written.
fn hash_cache(p: &Project) -> Option<PathBuf> {
    let folder = p.sibling("cache").join("stack/context-hashes");
    let files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .ok()?
        .map(|e| e.unwrap().path())
        .collect();
    assert!(files.len() <= 1, "{files:?}");
    files.into_iter().next()
}

#[test]
fn a_hash_cache_others_may_write_is_ignored_and_rebuilt() {
    use std::os::unix::fs::PermissionsExt;
    let p = project("hostilecache", 2);
    start(&p, &[]);
    // Unchanged: skipped; once the files are out of the racy window (2 s after their
    // writes), a start caches their hashes.
    let mut stored = serde_json::Value::Null;
    common::process::eventually("the context's hashes cached", LIMIT, || {
        let (_, stderr) = start(&p, &[]);
        assert!(stderr.contains("is up to date"), "{stderr}");
        stored = hash_cache(&p)
            .and_then(|cache| std::fs::read(cache).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        stored["files"].as_object().is_some_and(|f| f.len() > 2)
    });
    let cache = hash_cache(&p).expect("the cache file");
    let files = stored["files"].as_object_mut().expect("files");
    // Another user rewrites every hash in a cache they may write: believed, it would
    // change the fingerprint and build again from a lie.
    for known in files.values_mut() {
        known["sha256"] = serde_json::json!("0".repeat(64));
    }
    std::fs::write(&cache, serde_json::to_vec(&stored).unwrap()).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (sent, stderr) = start(&p, &[]);
    assert!(stderr.contains("is up to date"), "{stderr}");
    assert_eq!(sent, 0, "{stderr}");
    // Replaced by the user's own, with the real hashes.
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = String::from_utf8(std::fs::read(&cache).unwrap()).unwrap();
    assert!(!text.contains(&"0".repeat(64)), "{text}");
}

/// A proxy for the engine's socket that cuts every connection once `limit` bytes went
/// from the client to the engine.
struct Cutter {
    path: PathBuf,
    cut: Arc<AtomicBool>,
}

fn cutter(dir: &Path, limit: u64) -> Cutter {
    let path = dir.join("engine.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let open: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
    let flag = cut.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(engine) = UnixStream::connect("/var/run/docker.sock") else {
                continue;
            };
            let mut all = open.lock().unwrap();
            all.push(client.try_clone().unwrap());
            all.push(engine.try_clone().unwrap());
            drop(all);
            let (open, sent, flag) = (open.clone(), sent.clone(), flag.clone());
            let (mut from, mut to) = (client.try_clone().unwrap(), engine.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut buffer = vec![0; 64 << 10];
                while let Ok(n @ 1..) = from.read(&mut buffer) {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                    if sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64 > limit {
                        flag.store(true, Ordering::SeqCst);
                        for stream in open.lock().unwrap().iter() {
                            let _ = stream.shutdown(std::net::Shutdown::Both);
                        }
                        break;
                    }
                }
            });
            let (mut from, mut to) = (engine, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    Cutter { path, cut }
}

#[test]
fn a_build_cut_halfway_leaves_no_tag_and_a_clear_error() {
    for builder in ["buildkit", "classic"] {
        let p = project(&format!("cut-{builder}"), 24);
        let image = format!("{}-app:dev", p.name);
        let proxy = cutter(&p.sibling("proxy"), 6 << 20);
        let host = format!("unix://{}", proxy.path.display());
        let mut command = p.command(&["start", "--build"]);
        command
            .env("DOCKER_HOST", &host)
            .env("STACK_BUILDER", builder);
        let out = common::process::run_within(&mut command, LIMIT);
        let stderr = text(&out.stderr);
        assert!(
            proxy.cut.load(Ordering::SeqCst),
            "{builder}: never cut:\n{stderr}"
        );
        assert_eq!(out.status.code(), Some(3), "{builder}:\n{stderr}");
        assert!(
            stderr.contains("error: service `app`: cannot build image"),
            "{builder}:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(image_id(&image), None, "{builder}: a cut build was tagged");
        // The next build, uncut, completes.
        let (_, stderr) = start(&p, &[("STACK_BUILDER", builder)]);
        assert!(image_id(&image).is_some(), "{builder}:\n{stderr}");
    }
}
