//! Long-lived connections across deploys (issue 22, item 5), through real proxies (Caddy
//! and nginx) on the real engine, with the `stack` binary: server-sent-event streams to
//! service `live` stay open through a rolling update of service `other` (nginx reloads
//! after it) and through proxy reloads (`stack maintenance on`, twice); a rolling update of `live` itself
//! keeps the old streams on the old container (`SERVICE_LIVE_DRAIN`) while a stream
//! opened meanwhile reaches the new version, and the old container goes once its
//! streams have ended.
//!
//! The event server is a busybox httpd CGI (`tests/data/longlived/`, mounted into
//! `stack-test/busybox`) that drains as a well-behaved app does: on SIGTERM it stops
//! accepting and keeps the streams it has until they end.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, free_port, text, Project, Watched};

mod common;

use common::engine::BUSYBOX;
const CADDY: &str = "stack-test/caddy:latest";
const NGINX: &str = "stack-test/nginx:latest";
const LIVE: &str = "live.localhost";
const OTHER: &str = "other.localhost";
/// Streams held open across the deploys.
const STREAMS: usize = 5;
const WAIT: Duration = Duration::from_secs(60);

/// One server-sent-events stream through the proxy: the `data:` lines it received, and
/// whether the connection has ended.
struct Stream {
    socket: TcpStream,
    events: Arc<Mutex<Vec<String>>>,
    closed: Arc<AtomicBool>,
}

impl Stream {
    fn open(port: u16) -> Result<Stream, String> {
        let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let mut socket = TcpStream::connect_timeout(&address, Duration::from_secs(2))
            .map_err(|e| format!("connect: {e}"))?;
        write!(
            socket,
            "GET /cgi-bin/events HTTP/1.1\r\nHost: {LIVE}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| format!("write: {e}"))?;
        let reader = socket.try_clone().map_err(|e| e.to_string())?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let (seen, ended) = (Arc::clone(&events), Arc::clone(&closed));
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = text(&line);
                        if let Some(data) = line.trim().strip_prefix("data: ") {
                            seen.lock().unwrap().push(data.to_string());
                        }
                    }
                }
            }
            ended.store(true, Ordering::SeqCst);
        });
        Ok(Stream {
            socket,
            events,
            closed,
        })
    }

    fn count(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    fn last(&self) -> Option<String> {
        self.events.lock().unwrap().last().cloned()
    }

    fn closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The version (`v1`, `v2`) of the container that sends this stream.
    fn version(&self) -> Option<String> {
        self.last()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

/// Wait until every stream received another event and none has ended.
fn all_flowing(streams: &[Stream], what: &str) {
    let before: Vec<usize> = streams.iter().map(Stream::count).collect();
    for (index, stream) in streams.iter().enumerate() {
        eventually(&format!("stream {index} to go on {what}"), WAIT, || {
            assert!(
                !stream.closed(),
                "stream {index} was cut {what}; last event {:?}",
                stream.last()
            );
            stream.count() > before[index]
        });
    }
}

/// Open a stream and wait for its first event.
fn open_stream(port: u16) -> Stream {
    let mut opened = None;
    eventually("a stream to deliver its first event", WAIT, || {
        let Ok(stream) = Stream::open(port) else {
            return false;
        };
        let first = common::process::within(Duration::from_secs(10), || {
            stream.count() > 0 || stream.closed()
        });
        if first && stream.count() > 0 {
            opened = Some(stream);
            return true;
        }
        false
    });
    opened.unwrap()
}

struct Site {
    project: Project,
    port: u16,
    proxy: &'static str,
    image: &'static str,
}

impl Site {
    fn new(test: &str, proxy: &'static str, image: &'static str) -> Site {
        common::require_engine(&[BUSYBOX, image]);
        let project = Project::named("t-long", test);
        let app = common::repo_root().join("tests/data/longlived");
        std::fs::create_dir_all(project.path("app")).unwrap();
        for file in ["run.sh", "events"] {
            std::fs::copy(app.join(file), project.path("app").join(file)).unwrap();
        }
        let site = Site {
            project,
            port: free_port(),
            proxy,
            image,
        };
        site.write(1, 1);
        site
    }

    /// The project file with `live` at version `live` and `other` at `other`.
    fn write(&self, live: u32, other: u32) {
        let (proxy, image, port) = (self.proxy, self.image, self.port);
        let https = free_port();
        self.project.write(&format!(
            "STACK_TLS=off\n\
             STACK_PROXY={proxy}\n\
             STACK_PROXY_IMAGE={image}\n\
             STACK_HTTP_PORT={port}\n\
             STACK_HTTPS_PORT={https}\n\
             STACK_SERVICES=live,other\n\
             SERVICE_LIVE_IMAGE={BUSYBOX}\n\
             SERVICE_LIVE_COMMAND=sh /app/run.sh\n\
             SERVICE_LIVE_VOLUMES=./app:/app:ro\n\
             SERVICE_LIVE_ENV_VERSION={live}\n\
             SERVICE_LIVE_PORT=8080\n\
             SERVICE_LIVE_HEALTH=/health\n\
             SERVICE_LIVE_HEALTH_INTERVAL=1s\n\
             SERVICE_LIVE_ROUTE={LIVE}\n\
             SERVICE_LIVE_DRAIN=10m\n\
             SERVICE_OTHER_IMAGE={BUSYBOX}\n\
             SERVICE_OTHER_COMMAND=sh -c 'mkdir -p /tmp/www; echo v$$VERSION > /tmp/www/index.html; echo ok > /tmp/www/health; exec httpd -f -p 8080 -h /tmp/www'\n\
             SERVICE_OTHER_ENV_VERSION={other}\n\
             SERVICE_OTHER_PORT=8080\n\
             SERVICE_OTHER_HEALTH=/health\n\
             SERVICE_OTHER_HEALTH_INTERVAL=1s\n\
             SERVICE_OTHER_ROUTE={OTHER}\n"
        ));
    }

    fn stack_ok(&self, args: &[&str]) {
        self.project.ok(args);
    }
}

fn long_lived_across_deploys(test: &str, proxy: &'static str, image: &'static str) {
    let site = Site::new(test, proxy, image);
    site.stack_ok(&["start"]);
    let streams: Vec<Stream> = (0..STREAMS).map(|_| open_stream(site.port)).collect();
    for stream in &streams {
        assert_eq!(stream.version().as_deref(), Some("v1"));
    }

    // A rolling update of another service (nginx reloads once it is done).
    site.write(1, 2);
    site.stack_ok(&["start"]);
    all_flowing(&streams, "after a rolling update of `other`");

    // Proxy reloads: `maintenance on` reloads the proxy when its snippets change (the
    // first time, and with another Retry-After); the open streams keep going while new
    // requests get the page. Then off.
    for retry_after in ["30", "60"] {
        let out = site
            .project
            .ok(&["--json", "maintenance", "on", "--retry-after", retry_after]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["reloaded"], true, "{report}");
        all_flowing(&streams, "after `maintenance on` reloaded the proxy");
    }
    site.stack_ok(&["maintenance", "off"]);
    all_flowing(&streams, "after `maintenance off`");

    // A rolling update of `live` itself: the old streams stay on the old container
    // while a new stream reaches the new one.
    let old_id = site.project.id_of("live");
    site.write(2, 2);
    let mut deploy = Watched::spawn(site.project.command(&["start"]));
    deploy.wait_line("its open connections may stay up to 10m", WAIT * 2);
    // The line comes just before the stop signal; the server marks when it has stopped
    // accepting. A stream opened in between may still reach the old container.
    eventually("the old container to stop accepting", WAIT, || {
        common::docker(&["exec", &old_id, "test", "-f", "/tmp/draining"])
            .status
            .success()
    });
    let mut fresh = None;
    eventually("a new stream to come from v2", WAIT, || {
        let stream = open_stream(site.port);
        let v2 = stream.version().as_deref() == Some("v2");
        if v2 {
            fresh = Some(stream);
        }
        v2
    });
    let fresh = fresh.unwrap();
    for _ in 0..3 {
        let next = open_stream(site.port);
        assert_eq!(
            next.version().as_deref(),
            Some("v2"),
            "a new stream reached v1"
        );
    }
    all_flowing(&streams, "while `live` is replaced");
    for stream in &streams {
        assert_eq!(stream.version().as_deref(), Some("v1"), "moved streams");
    }
    assert_eq!(
        common::inspect(&old_id, "{{.State.Status}}"),
        "running",
        "the old container left before its streams ended"
    );

    // The clients go: the old container has nothing left, exits, and the rollout ends.
    drop(streams);
    let out = deploy.finish(WAIT * 2);
    assert!(
        out.status.success(),
        "the rolling update of `live` failed: {}",
        text(&out.stderr)
    );
    assert_ne!(site.project.id_of("live"), old_id, "one new container");
    all_flowing(std::slice::from_ref(&fresh), "after the rollout");
}

#[test]
fn caddy_keeps_streams_across_deploys_and_reloads() {
    long_lived_across_deploys("caddy", "caddy", CADDY);
}

#[test]
fn nginx_keeps_streams_across_deploys_and_reloads() {
    long_lived_across_deploys("nginx", "nginx", NGINX);
}

#[test]
fn drain_needs_a_rolling_update() {
    let project = Project::named("t-long", "bad-drain");
    project.write(&format!(
        "STACK_SERVICES=web\n\
         SERVICE_WEB_IMAGE={BUSYBOX}\n\
         SERVICE_WEB_STRATEGY=recreate\n\
         SERVICE_WEB_DRAIN=5m\n"
    ));
    let out = project.run(&["build"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SERVICE_WEB_DRAIN"), "{stderr}");
    assert!(stderr.contains("stack.env:"), "{stderr}");
    assert!(stderr.contains("SERVICE_WEB_STRATEGY=rolling"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    project.write(&format!(
        "STACK_SERVICES=web\n\
         SERVICE_WEB_IMAGE={BUSYBOX}\n\
         SERVICE_WEB_DRAIN=forever\n"
    ));
    let out = project.run(&["build"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SERVICE_WEB_DRAIN"), "{stderr}");
}
