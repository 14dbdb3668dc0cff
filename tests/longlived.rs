//! Long-lived connections across deploys (issue 22, item 5), through real proxies (Caddy
//! and nginx) on the real engine, with the `stack` binary: server-sent-event streams to
//! service `live` and WebSocket connections to service `chat` stay open through a rolling
//! update of service `other` (nginx reloads after it), through proxy reloads (`stack
//! maintenance on`, twice) and through a change of the proxy's own configuration (a route
//! added: the proxy reloads in place, never recreated). Caddy 2.6 (Debian's, the test
//! image) closes WebSockets on any reload: the test asserts that, and that they reconnect;
//! nginx keeps them, and so does Caddy 2.11 with `STACK_CADDY_STREAM_CLOSE_DELAY`. A rolling update of `live` and `chat` themselves keeps the old
//! streams and sockets on the old containers (`DRAIN`) while new ones reach the new
//! version, and the old containers go once their clients have.
//!
//! The event server is a busybox httpd CGI (`tests/data/longlived/`, mounted into
//! `stack-test/busybox`), the WebSocket echo server a Python script (`ws.py`, Python's
//! standard library, in `stack-test/python`); both drain as a well-behaved app does: on
//! SIGTERM they stop accepting and keep the connections they have until they end.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, free_port, text, Project, Watched};

mod common;

use common::engine::BUSYBOX;
const PYTHON: &str = "stack-test/python:latest";
const CADDY: &str = "stack-test/caddy:latest";
/// Caddy 2.11 (`scripts/build-test-images.sh`): it has `stream_close_delay`.
const CADDY_NEW: &str = "stack-test/caddy:2.11.7";
const NGINX: &str = "stack-test/nginx:latest";
const LIVE: &str = "live.localhost";
const OTHER: &str = "other.localhost";
const CHAT: &str = "chat.localhost";
/// The host a proxy configuration change adds to `other`, and `other`'s routes then.
const MORE: &str = "more.localhost";
const BOTH: &str = "other.localhost,more.localhost";
/// Streams held open across the deploys.
const STREAMS: usize = 5;
/// WebSocket connections held open across the deploys.
const SOCKETS: usize = 5;
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
        let mut socket = TcpStream::connect_timeout(&address, common::CONNECT_LIMIT)
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
        let first =
            common::process::within(common::LIVE_LIMIT, || stream.count() > 0 || stream.closed());
        if first && stream.count() > 0 {
            opened = Some(stream);
            return true;
        }
        false
    });
    opened.unwrap()
}

/// One WebSocket connection through the proxy to `chat`.
struct Socket {
    socket: tungstenite::WebSocket<TcpStream>,
    sent: usize,
}

impl Socket {
    fn open(port: u16) -> Result<Socket, String> {
        let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let stream = TcpStream::connect_timeout(&address, common::CONNECT_LIMIT)
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(common::ANSWER_LIMIT))
            .map_err(|e| e.to_string())?;
        let (socket, _) = tungstenite::client(format!("ws://{CHAT}/"), stream)
            .map_err(|e| format!("handshake: {e}"))?;
        Ok(Socket { socket, sent: 0 })
    }

    /// Send a message and wait for its echo: the version that answered (`v1`, `v2`), or
    /// why the connection is gone.
    fn echo(&mut self) -> Result<String, String> {
        self.sent += 1;
        let text = format!("message {}", self.sent);
        self.socket
            .send(tungstenite::Message::text(text.clone()))
            .map_err(|e| format!("send: {e}"))?;
        loop {
            match self.socket.read().map_err(|e| format!("read: {e}"))? {
                tungstenite::Message::Text(echo) => {
                    let (version, rest) = echo.split_once(' ').unwrap_or((&echo, ""));
                    assert_eq!(rest, text, "the echo of another message");
                    return Ok(version.to_string());
                }
                tungstenite::Message::Close(frame) => return Err(format!("closed: {frame:?}")),
                _ => continue,
            }
        }
    }
}

/// Open a WebSocket connection to `chat` and wait for its first echo.
fn open_socket(port: u16) -> (Socket, String) {
    common::process::eventually_ok("a WebSocket connection to echo", WAIT, || {
        let mut socket = Socket::open(port)?;
        let version = socket.echo()?;
        Ok((socket, version))
    })
}

/// Every socket is still open and echoes, from `version`.
fn all_echo(sockets: &mut [Socket], version: &str, what: &str) {
    for (index, socket) in sockets.iter_mut().enumerate() {
        match socket.echo() {
            Ok(answered) => assert_eq!(answered, version, "socket {index} {what}"),
            Err(e) => panic!("socket {index} was cut {what}: {e}"),
        }
    }
}

/// Every socket has been closed (Caddy 2.6 on a reload).
fn all_cut(sockets: &mut [Socket], what: &str) {
    for (index, socket) in sockets.iter_mut().enumerate() {
        eventually(&format!("socket {index} to be closed {what}"), WAIT, || {
            socket.echo().is_err()
        });
    }
}

/// The project's versions: each service's `VERSION` and `other`'s routes.
#[derive(Clone, Copy)]
struct Versions {
    live: u32,
    other: u32,
    chat: u32,
    other_routes: &'static str,
}

const FIRST: Versions = Versions {
    live: 1,
    other: 1,
    chat: 1,
    other_routes: OTHER,
};

struct Site {
    project: Project,
    port: u16,
    /// The HTTPS port, the same in every version of the project file.
    https: u16,
    proxy: &'static str,
    image: &'static str,
    /// Project-file lines of this variant (e.g. `STACK_CADDY_STREAM_CLOSE_DELAY`).
    extra: &'static str,
}

impl Site {
    fn new(test: &str, proxy: &'static str, image: &'static str, extra: &'static str) -> Site {
        common::require_engine(&[BUSYBOX, PYTHON, image]);
        let project = Project::named("t-long", test);
        let app = common::repo_root().join("tests/data/longlived");
        std::fs::create_dir_all(project.path("app")).unwrap();
        for file in ["run.sh", "events", "ws.py"] {
            std::fs::copy(app.join(file), project.path("app").join(file)).unwrap();
        }
        let site = Site {
            project,
            port: free_port(),
            https: free_port(),
            proxy,
            image,
            extra,
        };
        site.write(FIRST);
        site
    }

    /// The project file at `versions`.
    fn write(&self, versions: Versions) {
        let (proxy, image, port, https, extra) =
            (self.proxy, self.image, self.port, self.https, self.extra);
        let Versions {
            live,
            other,
            chat,
            other_routes,
        } = versions;
        self.project.write(&format!(
            "STACK_TLS=off\n{extra}\
             STACK_PROXY={proxy}\n\
             STACK_PROXY_IMAGE={image}\n\
             STACK_HTTP_PORT={port}\n\
             STACK_HTTPS_PORT={https}\n\
             STACK_SERVICES=live,other,chat\n\
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
             SERVICE_OTHER_ROUTE={other_routes}\n\
             SERVICE_CHAT_IMAGE={PYTHON}\n\
             SERVICE_CHAT_COMMAND=python3 /app/ws.py\n\
             SERVICE_CHAT_VOLUMES=./app:/app:ro\n\
             SERVICE_CHAT_ENV_VERSION={chat}\n\
             SERVICE_CHAT_PORT=8080\n\
             SERVICE_CHAT_HEALTH=/health\n\
             SERVICE_CHAT_HEALTH_INTERVAL=1s\n\
             SERVICE_CHAT_ROUTE={CHAT}\n\
             SERVICE_CHAT_DRAIN=10m\n"
        ));
    }

    fn stack_ok(&self, args: &[&str]) {
        self.project.ok(args);
    }
}

fn long_lived_across_deploys(
    test: &str,
    proxy: &'static str,
    image: &'static str,
    extra: &'static str,
) {
    let site = Site::new(test, proxy, image, extra);
    // Caddy 2.6 closes upgraded connections when it reloads; Caddy 2.7 and later keep
    // them for `stream_close_delay` (`STACK_CADDY_STREAM_CLOSE_DELAY`); nginx's old
    // workers keep them.
    let reload_keeps_sockets = proxy == "nginx" || extra.contains("STREAM_CLOSE_DELAY=");
    site.stack_ok(&["start"]);
    let streams: Vec<Stream> = (0..STREAMS).map(|_| open_stream(site.port)).collect();
    for stream in &streams {
        assert_eq!(stream.version().as_deref(), Some("v1"));
    }
    let mut sockets: Vec<Socket> = (0..SOCKETS)
        .map(|_| {
            let (socket, version) = open_socket(site.port);
            assert_eq!(version, "v1");
            socket
        })
        .collect();

    // A rolling update of another service (nginx reloads once it is done).
    let rolled = Versions { other: 2, ..FIRST };
    site.write(rolled);
    site.stack_ok(&["start"]);
    all_flowing(&streams, "after a rolling update of `other`");
    all_echo(&mut sockets, "v1", "after a rolling update of `other`");

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
    let sockets = reloaded(&site, sockets, reload_keeps_sockets, "by `maintenance on`");

    // A change of the proxy's own configuration (a host added to `other`): the proxy
    // reloads in place, the same container, and the new host answers.
    let proxy_id = site.project.id_of("proxy");
    let more = Versions {
        other_routes: BOTH,
        ..rolled
    };
    site.write(more);
    let out = site.project.ok(&["start"]);
    assert!(
        text(&out.stderr).contains("reloading its configuration in place"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        site.project.id_of("proxy"),
        proxy_id,
        "a configuration change recreated the proxy"
    );
    let address = ([127, 0, 0, 1], site.port).into();
    common::process::eventually_ok("the added host to answer", WAIT, || {
        common::http_get(address, MORE).and_then(|body| match body.as_str() {
            "v2" => Ok(()),
            other => Err(format!("answered `{other}`")),
        })
    });
    all_flowing(&streams, "after the proxy reloaded a new route");
    let mut sockets = reloaded(&site, sockets, reload_keeps_sockets, "by a new route");

    // A rolling update of `live` and `chat` themselves: the old streams and sockets stay
    // on the old containers while new ones reach the new containers.
    let old_live = site.project.id_of("live");
    let old_chat = site.project.id_of("chat");
    site.write(Versions {
        live: 2,
        chat: 2,
        ..more
    });
    let mut deploy = Watched::spawn(site.project.command(&["start"]));
    deploy.wait_line("its open connections may stay up to 10m", WAIT * 2);
    // The line comes just before the stop signal; the servers mark when they have
    // stopped accepting. A connection opened in between may still reach the old one.
    for old in [&old_live, &old_chat] {
        eventually("the old container to stop accepting", WAIT, || {
            common::docker(&["exec", old, "test", "-f", "/tmp/draining"])
                .status
                .success()
        });
    }
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
    let mut fresh_sockets = Vec::new();
    for _ in 0..3 {
        let (socket, version) = open_socket(site.port);
        assert_eq!(version, "v2", "a new WebSocket connection reached v1");
        fresh_sockets.push(socket);
    }
    all_flowing(&streams, "while `live` is replaced");
    for stream in &streams {
        assert_eq!(stream.version().as_deref(), Some("v1"), "moved streams");
    }
    all_echo(&mut sockets, "v1", "while `chat` is replaced");
    for old in [&old_live, &old_chat] {
        assert_eq!(
            common::inspect(old, "{{.State.Status}}"),
            "running",
            "an old container left before its connections ended"
        );
    }

    // The clients go: the old containers have nothing left, exit, and the rollout ends.
    drop(streams);
    for mut socket in sockets {
        let _ = socket.socket.close(None);
        let _ = socket.socket.flush();
    }
    let out = deploy.finish(WAIT * 2);
    assert!(
        out.status.success(),
        "the rolling update of `live` and `chat` failed: {}",
        text(&out.stderr)
    );
    assert_ne!(site.project.id_of("live"), old_live, "one new container");
    assert_ne!(site.project.id_of("chat"), old_chat, "one new container");
    all_flowing(std::slice::from_ref(&fresh), "after the rollout");
    all_echo(&mut fresh_sockets, "v2", "after the rollout");
}

/// After a proxy reload: nginx kept every socket (each still echoes); Caddy 2.6 closed
/// them all, and new ones connect. The sockets to go on with.
fn reloaded(site: &Site, mut sockets: Vec<Socket>, kept: bool, what: &str) -> Vec<Socket> {
    if kept {
        all_echo(&mut sockets, "v1", &format!("after a reload {what}"));
        return sockets;
    }
    all_cut(&mut sockets, &format!("after a reload {what}"));
    (0..SOCKETS).map(|_| open_socket(site.port).0).collect()
}

#[test]
fn caddy_keeps_streams_and_sockets_across_deploys_and_reloads() {
    long_lived_across_deploys("caddy", "caddy", CADDY, "");
}

/// A current Caddy with `STACK_CADDY_STREAM_CLOSE_DELAY`: WebSockets stay open across
/// its reloads too (`maintenance on`, a route added), as through nginx. (Without the
/// setting, Caddy 2.11 cuts them at the first reload, as 2.6 does: checked by hand.)
#[test]
fn caddy_with_a_stream_close_delay_keeps_sockets_across_reloads() {
    long_lived_across_deploys(
        "caddy-new",
        "caddy",
        CADDY_NEW,
        "STACK_CADDY_STREAM_CLOSE_DELAY=10m\n",
    );
}

#[test]
fn nginx_keeps_streams_and_sockets_across_deploys_and_reloads() {
    long_lived_across_deploys("nginx", "nginx", NGINX, "");
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
