//! The one owner of stdout and stderr. stdout is data (`--json`, rendered text);
//! everything for people goes to stderr. A closed stdout pipe is not an error.
//!
//! Text for people never carries a raw control character from a value: [`escape`] and
//! [`escape_lines`] are the one place that makes them visible (`\e`, `\n`, `\u{7}`).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use crate::error::Diagnostic;

#[derive(Debug, Clone)]
pub struct Printer {
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
    pub color: bool,
    /// stderr is a terminal: progress bars instead of plain lines.
    pub interactive: bool,
}

impl Printer {
    pub fn new(json: bool, quiet: bool, verbose: bool, no_color: bool) -> Self {
        let no_color = no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let color = !no_color && std::io::stderr().is_terminal();
        console::set_colors_enabled(color);
        console::set_colors_enabled_stderr(color);
        Printer {
            json,
            quiet,
            verbose,
            color,
            interactive,
        }
    }

    /// A line for people (stderr), unless `--quiet`.
    pub fn status(&self, message: impl AsRef<str>) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr(), "{}", escape_lines(message.as_ref()));
        }
    }

    /// Extra detail with `--verbose`.
    pub fn detail(&self, message: impl AsRef<str>) {
        if self.verbose {
            let _ = writeln!(std::io::stderr(), "{}", escape_lines(message.as_ref()));
        }
    }

    pub fn warn(&self, diagnostic: &Diagnostic) {
        if self.quiet {
            return;
        }
        let text = diagnostic.render();
        let text = text.replacen("error:", &self.paint("warning:", Paint::Yellow), 1);
        let _ = write!(std::io::stderr(), "{text}");
    }

    /// The error that ends a command.
    pub fn error(&self, text: &str) {
        let text = text.replacen("error:", &self.paint("error:", Paint::Red), 1);
        let _ = write!(std::io::stderr(), "{text}");
    }

    /// Data on stdout.
    pub fn out(&self, text: impl AsRef<str>) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_ref().as_bytes());
        let _ = stdout.flush();
    }

    /// A JSON document on stdout.
    pub fn json(&self, value: &serde_json::Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
        self.out(format!("{text}\n"));
    }

    pub fn paint(&self, text: &str, paint: Paint) -> String {
        if !self.color {
            return text.to_string();
        }
        let style = match paint {
            Paint::Red => console::Style::new().red().bold(),
            Paint::Yellow => console::Style::new().yellow().bold(),
            Paint::Green => console::Style::new().green(),
            Paint::Dim => console::Style::new().dim(),
        };
        style.apply_to(text).to_string()
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Paint {
    Red,
    Yellow,
    Green,
    Dim,
}

/// Live progress, a line per service: spinners on a terminal, plain lines elsewhere.
#[derive(Clone)]
pub struct Progress {
    inner: std::sync::Arc<ProgressInner>,
}

struct ProgressInner {
    printer: Printer,
    multi: Option<indicatif::MultiProgress>,
    bars: std::sync::Mutex<std::collections::BTreeMap<String, indicatif::ProgressBar>>,
    /// Bytes moved, by kind (`pulled`, `build_context`), for `--json`.
    totals: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Progress {
    pub fn new(printer: &Printer) -> Self {
        let multi = (printer.interactive && !printer.quiet).then(indicatif::MultiProgress::new);
        Progress {
            inner: std::sync::Arc::new(ProgressInner {
                printer: printer.clone(),
                multi,
                bars: std::sync::Mutex::new(Default::default()),
                totals: Mutex::new(Default::default()),
            }),
        }
    }

    fn bar(&self, service: &str) -> Option<indicatif::ProgressBar> {
        let multi = self.inner.multi.as_ref()?;
        let mut bars = self.inner.bars.lock().ok()?;
        Some(
            bars.entry(service.to_string())
                .or_insert_with(|| {
                    let bar = multi.add(indicatif::ProgressBar::new_spinner());
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(service.to_string());
                    bar.enable_steady_tick(std::time::Duration::from_millis(100));
                    bar
                })
                .clone(),
        )
    }

    /// Count `bytes` moved of `kind`, for [`Progress::totals`].
    pub fn count(&self, kind: &'static str, bytes: u64) {
        if let Ok(mut totals) = self.inner.totals.lock() {
            *totals.entry(kind).or_default() += bytes;
        }
    }

    /// Bytes moved so far, by kind: what `--json` reports.
    pub fn totals(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.inner
            .totals
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    /// A new step of a service.
    pub fn step(&self, service: &str, message: &str) {
        match self.bar(service) {
            Some(bar) => bar.set_message(escape(message).into_owned()),
            None => self.inner.printer.status(format!("{service}: {message}")),
        }
    }

    /// Fine-grained output (pull and build lines): on the spinner, or with `--verbose`.
    pub fn detail(&self, service: &str, message: &str) {
        match self.bar(service) {
            Some(bar) => {
                bar.set_message(escape(&message.chars().take(70).collect::<String>()).into_owned())
            }
            None => self.inner.printer.detail(format!("{service}: {message}")),
        }
    }

    /// A warning, kept above the spinners.
    pub fn warn(&self, diagnostic: &Diagnostic) {
        match &self.inner.multi {
            Some(multi) => multi.suspend(|| self.inner.printer.warn(diagnostic)),
            None => self.inner.printer.warn(diagnostic),
        }
    }

    /// A whole line of a command's output (a release command), kept above the spinners.
    pub fn line(&self, text: &str) {
        match &self.inner.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => self.inner.printer.status(text),
        }
    }

    pub fn done(&self, service: &str, message: &str) {
        match self.bar(service) {
            Some(bar) => {
                bar.finish_with_message(self.inner.printer.paint(&escape(message), Paint::Green))
            }
            None => self.inner.printer.status(format!("{service}: {message}")),
        }
    }

    pub fn fail(&self, service: &str, message: &str) {
        match self.bar(service) {
            Some(bar) => {
                bar.abandon_with_message(self.inner.printer.paint(&escape(message), Paint::Red))
            }
            None => self.inner.printer.status(format!("{service}: {message}")),
        }
    }
}

/// `text` as one line for a terminal: every control character made visible (`\n`, `\r`,
/// `\e`, `\u{7}`), and so are the invisible characters that reorder text (bidi controls).
/// Tabs stay.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// [`escape`] for text of several lines: the line breaks stay, everything else is escaped.
pub fn escape_lines(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && needs_escape(c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.split('\n').map(escape).collect::<Vec<_>>().join("\n"))
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Byte progress of one service's pull, build or transfer: the spinner's message on a
/// terminal, a line per 10 % elsewhere (at most four detail lines a second with `-v`).
pub struct ByteProgress {
    progress: Progress,
    service: String,
    started: std::time::Instant,
    /// The phase and decile last shown as a step, and when a detail line was last shown.
    decile: Mutex<(String, u64, std::time::Instant)>,
}

impl ByteProgress {
    pub fn new(progress: &Progress, service: &str) -> Self {
        ByteProgress {
            progress: progress.clone(),
            service: service.to_string(),
            started: std::time::Instant::now(),
            decile: Mutex::new((String::new(), u64::MAX, std::time::Instant::now())),
        }
    }

    pub fn show(&self, what: &str, done: u64, total: u64) {
        if total == 0 {
            return;
        }
        let total = total.max(done);
        let decile = done.min(total) * 10 / total;
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let left = if rate > 0.0 {
            format!(", {:.0} s left", (total.saturating_sub(done)) as f64 / rate)
        } else {
            String::new()
        };
        let line = format!(
            "{what}: {} of {} ({}/s{left})",
            human(done),
            human(total),
            human(rate as u64)
        );
        let Ok(mut last) = self.decile.lock() else {
            return;
        };
        let now = std::time::Instant::now();
        if last.0 != what || last.1 == u64::MAX || decile > last.1 {
            *last = (what.to_string(), decile, now);
            self.progress.step(&self.service, &line);
        } else if now.duration_since(last.2) >= std::time::Duration::from_millis(250) {
            // Between deciles: at most four lines a second (a bar's redraw, or `-v`).
            last.2 = now;
            self.progress.detail(&self.service, &line);
        }
    }
}

/// `12.3 MB`.
pub fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_control_characters_visible() {
        assert_eq!(escape("plain `text`\t"), "plain `text`\t");
        assert_eq!(escape("a\nb\r\x1b[31mred\x07"), "a\\nb\\r\\e[31mred\\u{7}");
        assert_eq!(escape("\u{202e}gpj.exe"), "\\u{202e}gpj.exe");
        assert_eq!(escape_lines("one\x1b\ntwo"), "one\\e\ntwo");
    }
}
