//! What every phase of the build reads from and reports to: the resolved values
//! ([`Keys`]) and the diagnostics collected so far ([`Errors`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use super::values::Value;
use crate::error::Diagnostic;
use crate::project::{Resolved, Setting};

/// Lookup of resolved values with their spans; values fall back to the built-ins.
///
/// Every value the configuration reads through [`Keys::get`] ends up in a rendered file
/// (compose, proxy, unit, monitoring, backup), so those reads are recorded and
/// [`Keys::check_secret_reads`] refuses any that is, or interpolates, a secret. Only the
/// secret path (container variables kept in the bundle's 0600 `.env`) reads through
/// [`Keys::for_container`], which is not recorded.
pub(crate) struct Keys<'a> {
    pub resolved: &'a Resolved,
    pub builtins: &'a BTreeMap<String, String>,
    /// Secret names: `STACK_SECRETS`, the enabled presets' and the secrets file's keys.
    pub secrets: BTreeSet<String>,
    /// Keys read for a rendered file (owned: a borrow would make `Keys` invariant).
    read: RefCell<BTreeSet<String>>,
}

impl<'a> Keys<'a> {
    pub fn new(
        resolved: &'a Resolved,
        builtins: &'a BTreeMap<String, String>,
        secrets: BTreeSet<String>,
    ) -> Keys<'a> {
        Keys {
            resolved,
            builtins,
            secrets,
            read: RefCell::new(BTreeSet::new()),
        }
    }

    /// The secret `key` is or interpolates (directly or through other keys), if any.
    pub fn secret_of(&self, key: &str) -> Option<&str> {
        if let Some(name) = self.secrets.get(key) {
            return Some(name);
        }
        let setting = self.resolved.settings.get(key)?;
        setting
            .refs
            .iter()
            .find(|r| self.secrets.contains(*r))
            .map(String::as_str)
    }

    /// The value of `key`, for a rendered file: the project's, else a built-in default.
    pub fn get(&self, key: &'a str) -> Option<Value<'a>> {
        if let Some((k, setting)) = self.resolved.settings.get_key_value(key) {
            self.read.borrow_mut().insert(k.clone());
            return Some(self.value(k, setting));
        }
        self.builtins.get(key).map(|text| Value {
            key,
            text,
            span: None,
            secret: false,
        })
    }

    /// [`Keys::get`] for a key built at run time.
    pub fn get_owned(&self, key: &str) -> Option<Value<'a>> {
        if let Some((k, setting)) = self.resolved.settings.get_key_value(key) {
            self.read.borrow_mut().insert(k.clone());
            return Some(self.value(k, setting));
        }
        self.builtins.get_key_value(key).map(|(k, text)| Value {
            key: k,
            text,
            span: None,
            secret: false,
        })
    }

    /// The value of `key` for a container variable, which may be a secret: the caller
    /// marks it secret (see [`Keys::secret_of`]) so it goes to the bundle's `.env`,
    /// which carries any value exactly ([`super::values::env_file_value`]).
    pub fn for_container(&self, key: &str) -> Option<Value<'a>> {
        self.peek(key)
    }

    /// The value of `key`, read for a check only (nothing is rendered from it).
    pub fn peek(&self, key: &str) -> Option<Value<'a>> {
        let (k, setting) = self.resolved.settings.get_key_value(key)?;
        Some(self.value(k, setting))
    }

    /// Record that `key` was read for a rendered file without going through [`Keys::get`].
    pub fn mark_read(&self, key: &str) {
        if let Some((k, _)) = self.resolved.settings.get_key_value(key) {
            self.read.borrow_mut().insert(k.clone());
        }
    }

    fn value(&self, key: &'a String, setting: &'a Setting) -> Value<'a> {
        Value {
            key,
            text: &setting.value,
            span: Some(&setting.span),
            secret: self.secret_of(key).is_some(),
        }
    }

    /// Set to a non-empty value in the project (not a built-in default).
    pub fn is_set(&self, key: &str) -> bool {
        self.resolved
            .settings
            .get(key)
            .is_some_and(|s| !s.value.is_empty())
    }

    /// A secret may reach a container only through the secret path: refuse every key read
    /// for a rendered file whose value is, or interpolates, a secret.
    pub fn check_secret_reads(&self, errors: &mut Errors) {
        for key in self.read.borrow().iter() {
            // The list of secret names is no value of a secret.
            if key == "STACK_SECRETS" {
                continue;
            }
            let Some(secret) = self.secret_of(key) else {
                continue;
            };
            let span = &self.resolved.settings[key.as_str()].span;
            let message = if key == secret {
                format!(
                    "`{key}` is a secret, but its value would be written into a plain file of the bundle"
                )
            } else {
                format!("`{key}` uses the secret `{secret}`")
            };
            errors.push(Diagnostic::new(message).at(span).hint(format!(
                "secrets reach a container only through `SERVICE_<NAME>_ENV_<VAR>` (kept in the \
                 bundle's 0600 `.env`); to use `{secret}` in a command, pass it that way and write \
                 `$${secret}` so the container's shell expands it"
            )));
        }
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
