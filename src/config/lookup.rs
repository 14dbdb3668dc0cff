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

/// Collects diagnostics so one run reports every problem it can.
#[derive(Default)]
pub(crate) struct Errors(pub Vec<Diagnostic>);

impl Errors {
    /// The value of `result`, or `None` after recording its error.
    pub fn take<T>(&mut self, result: std::result::Result<T, Diagnostic>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(diagnostic) => {
                self.0.push(diagnostic);
                None
            }
        }
    }

    /// Record one error.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    /// How many errors were recorded.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// No error recorded yet.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }
}
