//! The one request loop of the tests: a thread that sends requests at a steady pace, at
//! most `max` of them or for `limit`, until stopped. It records every answer and every
//! failure with when it came, for a test that must show no request failed while
//! something else changed beside the service (a rolling update, a proxy reload, the
//! maintenance switch, a preview deployed beside staging).
//!
//! Nothing here waits for a time: a test waits for answers ([`RequestLoop::wait_answers`],
//! [`RequestLoop::finish_after`]), so a starved run is slower, not different.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many requests, for how long, how often.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max: usize,
    pub limit: Duration,
    /// One request per `pace` (the scenario's rate, not a wait for a state).
    pub pace: Duration,
}

/// What the loop saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub requests: usize,
    /// Answers in order, with when they came (seconds since the loop started).
    pub answers: Vec<(f64, String)>,
    /// `(seconds since the loop started, what went wrong)`.
    pub failures: Vec<(f64, String)>,
    /// When the test marked the loop ([`RequestLoop::mark`]).
    pub marked_at: Option<f64>,
}

impl Seen {
    /// The answers to requests sent after the mark.
    pub fn after_mark(&self) -> Vec<&str> {
        let mark = self.marked_at.expect("the loop was never marked");
        self.answers
            .iter()
            .filter(|(at, _)| *at >= mark)
            .map(|(_, answer)| answer.as_str())
            .collect()
    }

    /// How many answers were `answer`.
    pub fn count(&self, answer: &str) -> usize {
        self.answers.iter().filter(|(_, a)| a == answer).count()
    }

    /// The failures, without their times.
    pub fn failed(&self) -> Vec<&str> {
        self.failures.iter().map(|(_, f)| f.as_str()).collect()
    }
}

/// What the test can watch of a running loop.
#[derive(Default)]
struct Progress {
    answers: AtomicUsize,
    /// Answers to requests sent after the mark.
    after_mark: AtomicUsize,
    /// The loop has ended (stopped, or one of its bounds reached).
    ended: AtomicBool,
}

pub struct RequestLoop {
    stop: Arc<AtomicBool>,
    mark: Arc<AtomicBool>,
    progress: Arc<Progress>,
    limit: Duration,
    handle: JoinHandle<Seen>,
}

impl RequestLoop {
    /// Start sending `request` (an answer, or what went wrong) within `bounds`.
    pub fn spawn(
        bounds: Bounds,
        mut request: impl FnMut() -> Result<String, String> + Send + 'static,
    ) -> RequestLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let mark = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let (stop_flag, mark_flag, shared) = (stop.clone(), mark.clone(), progress.clone());
        let handle = std::thread::spawn(move || {
            let begin = Instant::now();
            let mut seen = Seen::default();
            while seen.requests < bounds.max
                && begin.elapsed() < bounds.limit
                && !stop_flag.load(Ordering::SeqCst)
            {
                if seen.marked_at.is_none() && mark_flag.load(Ordering::SeqCst) {
                    seen.marked_at = Some(begin.elapsed().as_secs_f64());
                }
                let sent = Instant::now();
                let at = begin.elapsed().as_secs_f64();
                seen.requests += 1;
                match request() {
                    Ok(answer) => {
                        seen.answers.push((at, answer));
                        shared.answers.fetch_add(1, Ordering::SeqCst);
                        if seen.marked_at.is_some() {
                            shared.after_mark.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(reason) => seen.failures.push((at, reason)),
                }
                // The pace of the scenario, not a wait for a state.
                if let Some(rest) = bounds.pace.checked_sub(sent.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            shared.ended.store(true, Ordering::SeqCst);
            seen
        });
        RequestLoop {
            stop,
            mark,
            progress,
            limit: bounds.limit,
            handle,
        }
    }

    /// GETs of `/` at `address` with the Host header `host` (the first line of each
    /// body), about 50 a second, at most `max` or for `limit`; returns once it has one
    /// answer.
    pub fn start(address: std::net::SocketAddr, host: &str, max: usize, limit: Duration) -> Self {
        let host = host.to_string();
        let bounds = Bounds {
            max,
            limit,
            pace: Duration::from_millis(20),
        };
        let started = RequestLoop::spawn(bounds, move || super::http_get(address, &host));
        started.wait_answers("the request loop's first answer", 1);
        started
    }

    /// Wait until the loop has `count` answers, or has ended.
    pub fn wait_answers(&self, what: &str, count: usize) {
        self.wait_for(what, || self.answered() >= count);
    }

    /// Answers so far.
    pub fn answered(&self) -> usize {
        self.progress.answers.load(Ordering::SeqCst)
    }

    /// Mark the loop (an update command returned): answers from now on are counted apart
    /// ([`Seen::after_mark`], [`RequestLoop::finish_after`]).
    pub fn mark(&self) {
        self.mark.store(true, Ordering::SeqCst);
    }

    /// Run on until `count` answers came to requests sent after the mark (or a bound of
    /// the loop is reached), then stop: counting answers rather than sleeping a fixed time
    /// keeps the window the same on a loaded machine.
    pub fn finish_after(self, count: usize) -> Seen {
        self.wait_for(&format!("{count} answers after the mark"), || {
            self.progress.after_mark.load(Ordering::SeqCst) >= count
        });
        self.finish()
    }

    /// Run on until a bound of the loop is reached, then return what was seen.
    pub fn run_out(self) -> Seen {
        self.wait_for("the request loop to reach its bounds", || false);
        self.finish()
    }

    /// Stop and return what was seen.
    pub fn finish(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("the request loop panicked")
    }

    fn wait_for(&self, what: &str, check: impl Fn() -> bool) {
        // The loop's own limit bounds the wait, with room for its last request (which
        // may take as long as a client waits to connect and for an answer).
        let last = super::CONNECT_LIMIT + super::ANSWER_LIMIT;
        super::eventually(what, self.limit + last, || {
            check() || self.progress.ended.load(Ordering::SeqCst)
        });
    }
}
