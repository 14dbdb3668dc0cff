//! A notification receiver for the tests of `STACK_NOTIFY`: a tiny HTTP server on a free
//! port that records every request (a real socket, so the sender is the real one). It
//! answers 200, 500, or accepts and never answers (a hanging endpoint). Include it with
//! `#[path = "common/receiver.rs"] mod receiver;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    ServerError,
    /// Read the request, never answer, keep the connection open.
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub struct Receiver {
    pub port: u16,
    requests: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Listen on `address` (`127.0.0.1`, or `0.0.0.0` for a container) at a free port.
    pub fn start(address: &str, answer: Answer) -> Receiver {
        let listener = TcpListener::bind((address, 0)).expect("bind the receiver");
        let port = listener.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<Received>>> = Arc::default();
        let shared = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let shared = shared.clone();
                std::thread::spawn(move || serve(stream, answer, &shared));
            }
        });
        Receiver { port, requests }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// Wait until a request's body contains `needle`; fail the test after `limit`.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> Received {
        crate::common::eventually_ok(&format!("a request with `{needle}`"), limit, || {
            let requests = self.requests();
            match requests.iter().find(|r| r.body.contains(needle)) {
                Some(found) => Ok(found.clone()),
                None => Err(format!("received: {requests:#?}")),
            }
        })
    }
}

fn serve(stream: TcpStream, answer: Answer, requests: &Mutex<Vec<Received>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        requests.lock().unwrap().push(Received {
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let status = match answer {
            Answer::Ok => "200 OK",
            Answer::ServerError => "500 Internal Server Error",
            Answer::Hang => {
                // Hold the connection open until the sender gives up.
                let mut rest = Vec::new();
                let _ = reader.read_to_end(&mut rest);
                return;
            }
        };
        let response = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
