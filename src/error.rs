//! Error types, exit codes and the one place that formats a diagnostic.
//!
//! Every failure the user can cause is a [`Diagnostic`] (exit 2); failures of the
//! outside world (engine, server) are [`Error::Outside`] (exit 3). A command whose
//! answer is "no" returns [`Error::No`] (exit 1).

use std::fmt::{self, Write as _};
use std::sync::Arc;

use crate::printer::{escape, escape_lines};

/// Exit codes of the command line, as documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    pub const NO: i32 = 1;
    pub const BAD_INPUT: i32 = 2;
    pub const OUTSIDE: i32 = 3;
}

/// A place in a source: a project file, an overlay or a `--set` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The source as shown to the user (`stack.env`, `environments/prod/stack.env`, `--set`).
    pub source: Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
    /// Width of the caret underline, in characters (at least 1).
    pub len: u32,
    /// The text of the line, for the caret display.
    pub line_text: Arc<str>,
}

impl Span {
    /// `source:line:col`.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.source, self.line, self.col)
    }

    /// The span is in a secrets file (`environments/<env>/secrets.env`): its line is
    /// never shown, only its key.
    pub fn is_secret(&self) -> bool {
        self.source.rsplit('/').next() == Some(SECRETS_FILE_NAME)
    }
}

/// The file name of an environment's secrets.
const SECRETS_FILE_NAME: &str = "secrets.env";

/// What is shown of a line of a secrets file: `KEY=********`, or only the mask when the
/// line does not start with a key (it may be part of a value).
fn masked(line: &str) -> String {
    const MASK: &str = "********";
    let Some((head, _)) = line.split_once('=') else {
        return MASK.to_string();
    };
    let key = head
        .trim()
        .strip_prefix("export ")
        .unwrap_or(head.trim())
        .trim();
    let is_key = key.len() <= 100
        && key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if is_key {
        format!("{head}={MASK}")
    } else {
        MASK.to_string()
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.location())
    }
}

/// One problem with the user's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub span: Option<Span>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            span: None,
            hint: None,
        }
    }

    pub fn at(mut self, span: &Span) -> Self {
        self.span = Some(span.clone());
        self
    }

    pub fn with_span(mut self, span: Option<Span>) -> Self {
        self.span = span;
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The diagnostic as the user sees it: message, location, the line with a caret, hint.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", escape(&self.message));
        if let Some(span) = &self.span {
            let number = span.line.to_string();
            let pad = " ".repeat(number.len());
            let _ = writeln!(out, "{pad}--> {}", span.location());
            if !span.line_text.is_empty() || span.line > 0 {
                let shown: String = if span.is_secret() {
                    masked(&span.line_text)
                } else {
                    span.line_text.chars().take(200).collect()
                };
                let col = (span.col.max(1) as usize - 1).min(shown.chars().count());
                let len = (span.len.max(1) as usize).min(200usize.saturating_sub(col).max(1));
                // The caret moves with the escapes before it and widens with those under it.
                let before: String = shown.chars().take(col).collect();
                let under: String = shown.chars().skip(col).take(len).collect();
                let col = escape(&before).chars().count();
                let len = escape(&under).chars().count().max(1);
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{number} | {}", escape(&shown));
                let _ = writeln!(out, "{pad} | {}{}", " ".repeat(col), "^".repeat(len));
            }
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "hint: {}", escape(hint));
        }
        out
    }
}

/// What a warning is about: code decides on this, never on a warning's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningKind {
    /// A key assigned twice in one file.
    DuplicateKey,
    /// A variable interpolated while unset (as an empty string).
    UnsetVariable,
    /// A key that reads as an attribute of two services.
    AmbiguousKey,
    /// Mailpit routed outside `dev` without a login: the route is left out.
    UnguardedMailpit,
    /// A rolling update without a health check.
    RollingWithoutHealth,
}

/// A warning about the project: its kind, the key it is about, and what is shown (whose
/// span is the file and line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub kind: WarningKind,
    /// The project-file key (`SERVICE_WEB_ROUTE`), or the variable for an unset one.
    pub key: String,
    pub diagnostic: Diagnostic,
}

impl Warning {
    pub fn new(kind: WarningKind, key: impl Into<String>, diagnostic: Diagnostic) -> Self {
        Warning {
            kind,
            key: key.into(),
            diagnostic,
        }
    }
}

/// The error of a whole command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input or usage: exit 2.
    #[error("{}", render_all(.0))]
    Invalid(Vec<Diagnostic>),
    /// The command ran and the answer is no: exit 1. The message was already printed.
    #[error("{0}")]
    No(String),
    /// A command stack ran for the user (`exec`, `run`) ended with this code: stack
    /// exits with it and prints nothing.
    #[error("exit {0}")]
    Exit(i32),
    /// Something outside failed (engine, server, filesystem): exit 3.
    #[error("{message}")]
    Outside {
        message: String,
        causes: Vec<String>,
        hint: Option<String>,
    },
}

fn render_all(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(Diagnostic::render)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    pub fn invalid(diagnostic: Diagnostic) -> Self {
        Error::Invalid(vec![diagnostic])
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::Invalid(vec![Diagnostic::new(message)])
    }

    pub fn outside(message: impl Into<String>) -> Self {
        Error::Outside {
            message: message.into(),
            causes: Vec::new(),
            hint: None,
        }
    }

    /// An I/O failure on `path` while doing `what`.
    pub fn io(what: &str, path: &std::path::Path, err: std::io::Error) -> Self {
        Error::Outside {
            message: format!("cannot {what} `{}`", path.display()),
            causes: vec![err.to_string()],
            hint: None,
        }
    }

    /// The same failure, its message prefixed with the service it happened to.
    pub fn for_service(self, service: &str) -> Self {
        match self {
            Error::Outside {
                message,
                causes,
                hint,
            } => Error::Outside {
                message: format!("service `{service}`: {message}"),
                causes,
                hint,
            },
            other => other,
        }
    }

    pub fn with_hint(self, text: impl Into<String>) -> Self {
        match self {
            Error::Outside {
                message, causes, ..
            } => Error::Outside {
                message,
                causes,
                hint: Some(text.into()),
            },
            other => other,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) => exit::BAD_INPUT,
            Error::No(_) => exit::NO,
            Error::Exit(code) => *code,
            Error::Outside { .. } => exit::OUTSIDE,
        }
    }

    /// The text printed to stderr for this error.
    pub fn render(&self) -> String {
        match self {
            Error::Invalid(diagnostics) => render_all(diagnostics),
            Error::Exit(_) => String::new(),
            Error::No(message) => {
                if message.is_empty() {
                    String::new()
                } else {
                    format!("error: {}\n", escape_lines(message))
                }
            }
            Error::Outside {
                message,
                causes,
                hint,
            } => {
                let mut out = format!("error: {}\n", escape(message));
                for cause in causes {
                    // A child's stderr keeps its lines; its escape sequences do not pass.
                    let _ = writeln!(out, "caused by: {}", escape_lines(cause));
                }
                if let Some(hint) = hint {
                    let _ = writeln!(out, "hint: {}", escape(hint));
                }
                out
            }
        }
    }
}

impl From<Diagnostic> for Error {
    fn from(diagnostic: Diagnostic) -> Self {
        Error::Invalid(vec![diagnostic])
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The nearest candidate to `input`, when one is close enough to be a likely typo.
pub fn nearest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(input, candidate);
        if score > 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_points_at_column() {
        let span = Span {
            source: "stack.env".into(),
            line: 3,
            col: 5,
            len: 3,
            line_text: "FOO=bar".into(),
        };
        let text = Diagnostic::new("bad").at(&span).hint("fix it").render();
        assert!(text.contains("--> stack.env:3:5"), "{text}");
        assert!(text.contains("3 | FOO=bar"), "{text}");
        assert!(text.contains("  |     ^^^"), "{text}");
        assert!(text.ends_with("hint: fix it\n"), "{text}");
    }

    #[test]
    fn lines_of_secrets_files_are_masked() {
        let span = |source: &str, text: &str, col| Span {
            source: source.into(),
            line: 2,
            col,
            len: 3,
            line_text: text.into(),
        };
        let secret = "hunter2-very-secret";
        for (source, text, col, shown) in [
            (
                "environments/prod/secrets.env",
                format!("DB_PASSWORD=\"{secret}"),
                13,
                "2 | DB_PASSWORD=********",
            ),
            (
                "environments/dev/secrets.env",
                format!("export API_KEY = {secret} $"),
                30,
                "2 | export API_KEY =********",
            ),
            (
                "environments/dev/secrets.env",
                secret.to_string(),
                1,
                "2 | ********",
            ),
            (
                "environments/dev/secrets.env",
                format!("{secret}=x"),
                1,
                "2 | ********",
            ),
        ] {
            let text = Diagnostic::new("bad")
                .at(&span(source, &text, col))
                .render();
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains(shown), "{text}");
            assert!(text.contains("  | ") && text.contains('^'), "{text}");
        }
        let open = Diagnostic::new("bad")
            .at(&span("environments/prod/stack.env", "A=visible", 3))
            .render();
        assert!(open.contains("2 | A=visible"), "{open}");
    }

    #[test]
    fn nearest_finds_typo() {
        assert_eq!(nearest("PROT", ["PORT", "IMAGE"]), Some("PORT"));
        assert_eq!(nearest("ZZZZ", ["PORT", "IMAGE"]), None);
    }
}
