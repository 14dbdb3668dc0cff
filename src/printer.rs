//! The one owner of stdout and stderr. stdout is data (`--json`, rendered text);
//! everything for people goes to stderr. A closed stdout pipe is not an error.

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
            let _ = writeln!(std::io::stderr(), "{}", message.as_ref());
        }
    }

    /// Extra detail with `--verbose`.
    pub fn detail(&self, message: impl AsRef<str>) {
        if self.verbose {
            let _ = writeln!(std::io::stderr(), "{}", message.as_ref());
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
            Some(bar) => bar.set_message(message.to_string()),
            None => self.inner.printer.status(format!("{service}: {message}")),
        }
    }

    /// Fine-grained output (pull and build lines): on the spinner, or with `--verbose`.
    pub fn detail(&self, service: &str, message: &str) {
        match self.bar(service) {
            Some(bar) => bar.set_message(message.chars().take(70).collect::<String>()),
            None => self.inner.printer.detail(format!("{service}: {message}")),
        }
    }

    pub fn done(&self, service: &str, message: &str) {
        match self.bar(service) {
            Some(bar) => bar.finish_with_message(self.inner.printer.paint(message, Paint::Green)),
            None => self.inner.printer.status(format!("{service}: {message}")),
        }
    }

    pub fn fail(&self, service: &str, message: &str) {
        match self.bar(service) {
            Some(bar) => bar.abandon_with_message(self.inner.printer.paint(message, Paint::Red)),
            None => self.inner.printer.status(format!("{service}: {message}")),
        }
    }
}
