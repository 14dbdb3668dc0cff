//! A bounded request loop in a thread: GETs of `/` with one Host header, about 50 a
//! second, at most `max` requests or `limit` of time, until stopped. It records every
//! answer and every failure, for a test that must show no request failed while
//! something else changed beside the service.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the loop saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub requests: usize,
    pub answers: Vec<String>,
    pub failures: Vec<String>,
}

pub struct RequestLoop {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    handle: JoinHandle<Seen>,
}

impl RequestLoop {
    /// Start the loop against `address` with `host`, and return once it has one answer.
    pub fn start(address: std::net::SocketAddr, host: &str, max: usize, limit: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let (stop_flag, count, host) = (stop.clone(), answered.clone(), host.to_string());
        let handle = std::thread::spawn(move || {
            let begin = Instant::now();
            let mut seen = Seen::default();
            while seen.requests < max
                && begin.elapsed() < limit
                && !stop_flag.load(Ordering::SeqCst)
            {
                let sent = Instant::now();
                seen.requests += 1;
                match super::http_get(address, &host) {
                    Ok(body) => {
                        seen.answers.push(body);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(reason) => seen.failures.push(reason),
                }
                // The pace of the scenario, not a wait for a state.
                if let Some(rest) = Duration::from_millis(20).checked_sub(sent.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            seen
        });
        let started = RequestLoop {
            stop,
            answered,
            handle,
        };
        super::eventually("the request loop's first answer", limit, || {
            started.answered.load(Ordering::SeqCst) > 0 || started.handle.is_finished()
        });
        started
    }

    /// Answers so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    /// Stop and return what was seen.
    pub fn finish(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("the request loop panicked")
    }
}
