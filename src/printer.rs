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
