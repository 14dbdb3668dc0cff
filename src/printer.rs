//! The one owner of stdout and stderr. stdout is data (`--json`, rendered text);
//! everything for people goes to stderr. A closed stdout pipe is not an error.
//!
//! Text for people never carries a raw control character from a value: [`escape`] and
//! [`escape_lines`] are the one place that makes them visible (`\e`, `\n`, `\u{7}`).

use std::io::{IsTerminal, Write};

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
}

impl Progress {
    pub fn new(printer: &Printer) -> Self {
        let multi = (printer.interactive && !printer.quiet).then(indicatif::MultiProgress::new);
        Progress {
            inner: std::sync::Arc::new(ProgressInner {
                printer: printer.clone(),
                multi,
                bars: std::sync::Mutex::new(Default::default()),
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
