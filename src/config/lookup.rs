//! What every phase of the build reads from and reports to: the resolved values
//! ([`Keys`]) and the diagnostics collected so far ([`Errors`]).

use std::collections::BTreeMap;

use super::values::Value;
use crate::error::Diagnostic;
use crate::project::Resolved;

/// Lookup of resolved values with their spans; values fall back to the built-ins.
pub(crate) struct Keys<'a> {
    pub resolved: &'a Resolved,
    pub builtins: &'a BTreeMap<String, String>,
}

impl<'a> Keys<'a> {
    /// The value of `key`: the project's, else a built-in default.
    pub fn get(&self, key: &'a str) -> Option<Value<'a>> {
        if let Some(setting) = self.resolved.settings.get(key) {
            return Some(Value {
                key,
                text: &setting.value,
                span: Some(&setting.span),
            });
        }
        self.builtins.get(key).map(|text| Value {
            key,
            text,
            span: None,
        })
    }

    /// [`Keys::get`] for a key built at run time.
    pub fn get_owned(&self, key: &str) -> Option<Value<'a>> {
        if let Some((k, setting)) = self.resolved.settings.get_key_value(key) {
            return Some(Value {
                key: k,
                text: &setting.value,
                span: Some(&setting.span),
            });
        }
        self.builtins.get_key_value(key).map(|(k, text)| Value {
            key: k,
            text,
            span: None,
        })
    }

    /// Set to a non-empty value in the project (not a built-in default).
    pub fn is_set(&self, key: &str) -> bool {
        self.resolved
            .settings
            .get(key)
            .is_some_and(|s| !s.value.is_empty())
    }
}

/// At most this many errors are reported; the rest are only counted.
pub(crate) const MAX_ERRORS: usize = 50;

/// Collects diagnostics so one run reports every problem it can, up to [`MAX_ERRORS`].
#[derive(Default)]
pub(crate) struct Errors {
    reported: Vec<Diagnostic>,
    /// Errors found after the first [`MAX_ERRORS`].
    more: usize,
}

impl Errors {
    /// The value of `result`, or `None` after recording its error.
    pub fn take<T>(&mut self, result: std::result::Result<T, Diagnostic>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(diagnostic) => {
                self.push(diagnostic);
                None
            }
        }
    }

    /// Record one error.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.push_with(|| diagnostic);
    }

    /// Record one error, building it (hints can be costly) only if it will be reported.
    pub fn push_with(&mut self, diagnostic: impl FnOnce() -> Diagnostic) {
        if self.reported.len() < MAX_ERRORS {
            self.reported.push(diagnostic());
        } else {
            self.more += 1;
        }
    }

    /// How many errors were found, reported or not.
    pub fn count(&self) -> usize {
        self.reported.len() + self.more
    }

    /// No error found yet.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The reported errors, and a last line counting those left out.
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        let mut out = self.reported;
        if self.more > 0 {
            let s = if self.more == 1 { "" } else { "s" };
            out.push(
                Diagnostic::new(format!("… and {} more error{s}", self.more))
                    .hint("fix the errors above and run again to see the rest"),
            );
        }
        out
    }
}
