//! Merging layers and resolving interpolation (Compose rules) after the merge.
//! Pure: the process environment comes in as a lookup function.

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;

use super::syntax::{Op, Piece, Template, VarRef};
use super::{Layer, SourceKind};
use crate::error::{Diagnostic, Span, Warning, WarningKind};

/// One key after merging and interpolation.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub value: String,
    /// Where the winning assignment is.
    pub span: Span,
    pub kind: SourceKind,
    /// Every assignment of the key, in precedence order (the last one won).
    pub history: Vec<Span>,
    /// Project keys this value was built from, directly or through other keys.
    pub refs: BTreeSet<String>,
}

/// The merged, interpolated project.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub settings: IndexMap<String, Setting>,
    /// Process environment variables that were read.
    pub env_refs: BTreeSet<String>,
    /// Variables that were not set and were substituted as empty, each with its warning.
    pub unset: Vec<Unset>,
}

/// A variable interpolated while unset (as an empty string), and the warning that says so.
#[derive(Debug, Clone)]
pub struct Unset {
    pub name: String,
    /// Keyed by the key whose value refers to the variable.
    pub warning: Warning,
}

impl Resolved {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(|s| s.value.as_str())
    }
}

/// Deepest chain of keys referring to keys before we call it a mistake.
const MAX_DEPTH: usize = 64;

/// Longest value after interpolation: repeated references grow a value exponentially
/// (`A1=$A0$A0`, …), so the growth is stopped here, not by the allocator.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// Most bytes interpolation may produce for the whole project: values, and the names of
/// the keys each value was built from.
pub const MAX_TOTAL_BYTES: usize = 16 * 1024 * 1024;

const GROWTH_HINT: &str =
    "a value that repeats references (`$A$A`) doubles at every step; refer to each key once";

struct Assignment<'a> {
    template: &'a Template,
    span: &'a Span,
    kind: SourceKind,
    history: Vec<Span>,
}

enum State {
    Pending,
    Active,
    Done,
}

struct Resolver<'a, F> {
    assignments: IndexMap<&'a str, Assignment<'a>>,
    builtins: &'a BTreeMap<String, String>,
    process_env: F,
    state: BTreeMap<&'a str, State>,
    done: BTreeMap<&'a str, (String, BTreeSet<String>)>,
    stack: Vec<&'a str>,
    env_refs: BTreeSet<String>,
    unset: Vec<Unset>,
    warned: BTreeSet<String>,
    /// Bytes produced so far, against [`MAX_TOTAL_BYTES`].
    produced: usize,
    /// The project went past [`MAX_TOTAL_BYTES`]: stop resolving.
    exhausted: bool,
}

/// Merge `layers` (later wins) and resolve every value. `builtins` answer names the
/// project does not set (`STACK_ENV`, defaults of global keys); `process_env` after that.
pub fn resolve<F>(
    layers: &[Layer],
    builtins: &BTreeMap<String, String>,
    process_env: F,
) -> Result<Resolved, Vec<Diagnostic>>
where
    F: Fn(&str) -> Option<String>,
{
    let assignments = merge(layers);
    let mut resolver = Resolver {
        state: assignments.keys().map(|k| (*k, State::Pending)).collect(),
        assignments,
        builtins,
        process_env,
        done: BTreeMap::new(),
        stack: Vec::new(),
        env_refs: BTreeSet::new(),
        unset: Vec::new(),
        warned: BTreeSet::new(),
        produced: 0,
        exhausted: false,
    };
    let keys: Vec<&str> = resolver.assignments.keys().copied().collect();
    let errors = resolver.resolve_all(&keys);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut settings = IndexMap::new();
    for key in keys {
        let assignment = &resolver.assignments[key];
        let (value, refs) = resolver.done.remove(key).unwrap_or_default();
        settings.insert(
            key.to_string(),
            Setting {
                value,
                span: assignment.span.clone(),
                kind: assignment.kind,
                history: assignment.history.clone(),
                refs,
            },
        );
    }
    Ok(Resolved {
        settings,
        env_refs: resolver.env_refs,
        unset: resolver.unset,
    })
}

/// Every key's last assignment across `layers` (later wins), in first-set order, with
/// the lines that set it.
fn merge(layers: &[Layer]) -> IndexMap<&str, Assignment<'_>> {
    let mut assignments: IndexMap<&str, Assignment> = IndexMap::new();
    for layer in layers {
        for entry in &layer.entries {
            let slot = assignments
                .entry(entry.key.as_str())
                .or_insert_with(|| Assignment {
                    template: &entry.value,
                    span: &entry.span,
                    kind: layer.kind,
                    history: Vec::new(),
                });
            slot.template = &entry.value;
            slot.span = &entry.span;
            slot.kind = layer.kind;
            slot.history.push(entry.span.clone());
        }
    }
    assignments
}

impl<'a, F: Fn(&str) -> Option<String>> Resolver<'a, F> {
    /// Resolve every one of `keys`; the distinct errors, stopping once the project
    /// has produced too many bytes.
    fn resolve_all(&mut self, keys: &[&'a str]) -> Vec<Diagnostic> {
        let mut errors = Vec::new();
        for key in keys {
            if let Err(diagnostic) = self.key(key) {
                if !errors.contains(&diagnostic) {
                    errors.push(diagnostic);
                }
                // Mark the failed chain done so later keys do not repeat the same error.
                for failed in std::mem::take(&mut self.stack).into_iter().chain([*key]) {
                    self.state.insert(failed, State::Done);
                    self.done.entry(failed).or_default();
                }
                if self.exhausted {
                    break;
                }
            }
        }
        errors
    }

    fn key(&mut self, key: &'a str) -> Result<(), Diagnostic> {
        match self.state.get(key) {
            // `lookup` reports a cycle before it would enter an active key.
            Some(State::Done | State::Active) | None => return Ok(()),
            Some(State::Pending) => {}
        }
        if self.stack.len() >= MAX_DEPTH {
            let span = self.assignments[key].span.clone();
            return Err(Diagnostic::new(format!(
                "interpolation nested more than {MAX_DEPTH} keys deep at `{key}`"
            ))
            .at(&span));
        }
        self.state.insert(key, State::Active);
        self.stack.push(key);
        let template = self.assignments[key].template;
        let mut refs = BTreeSet::new();
        let value = self.template(template, &mut refs)?;
        self.produced += value.len() + refs.iter().map(String::len).sum::<usize>();
        if self.produced > MAX_TOTAL_BYTES {
            self.exhausted = true;
            return Err(Diagnostic::new(format!(
                "interpolation makes the project larger than {MAX_TOTAL_BYTES} bytes at `{key}`"
            ))
            .at(self.assignments[key].span)
            .hint(GROWTH_HINT));
        }
        self.stack.pop();
        self.state.insert(key, State::Done);
        self.done.insert(key, (value, refs));
        Ok(())
    }

    /// The value of a name, `None` when unset; project keys first.
    fn lookup(
        &mut self,
        var: &'a VarRef,
        refs: &mut BTreeSet<String>,
    ) -> Result<Option<String>, Diagnostic> {
        let name = var.name.as_str();
        if let Some((key, _)) = self.assignments.get_key_value(name) {
            let key: &'a str = key;
            if matches!(self.state.get(key), Some(State::Active)) {
                let start = self.stack.iter().position(|k| *k == key).unwrap_or(0);
                let mut chain: Vec<&str> = self.stack[start..].to_vec();
                chain.push(key);
                return Err(Diagnostic::new(format!(
                    "interpolation cycle: {}",
                    chain
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" → ")
                ))
                .at(self.assignments[key].span)
                .hint("one of these keys must have a value that does not refer back"));
            }
            self.key(key)?;
            let (value, inner) = &self.done[key];
            // A key met before brought its own references along already.
            if refs.insert(key.to_string()) {
                refs.extend(inner.iter().cloned());
            }
            return Ok(Some(value.clone()));
        }
        if let Some(value) = self.builtins.get(name) {
            return Ok(Some(value.clone()));
        }
        let value = (self.process_env)(name);
        if value.is_some() {
            self.env_refs.insert(name.to_string());
        }
        Ok(value)
    }

    fn template(
        &mut self,
        template: &'a Template,
        refs: &mut BTreeSet<String>,
    ) -> Result<String, Diagnostic> {
        let mut out = String::new();
        for piece in &template.pieces {
            let added = match piece {
                Piece::Literal(text) => std::borrow::Cow::Borrowed(text.as_str()),
                Piece::Var(var) => std::borrow::Cow::Owned(self.var(var, refs)?),
            };
            if out.len() + added.len() > MAX_VALUE_BYTES {
                return Err(self.too_long());
            }
            out.push_str(&added);
        }
        Ok(out)
    }

    /// The key being resolved grew past [`MAX_VALUE_BYTES`].
    fn too_long(&self) -> Diagnostic {
        let key = self.stack.last().copied().unwrap_or_default();
        let mut diagnostic = Diagnostic::new(format!(
            "`{key}` is longer than {MAX_VALUE_BYTES} bytes after interpolation"
        ))
        .hint(GROWTH_HINT);
        if let Some(assignment) = self.assignments.get(key) {
            diagnostic = diagnostic.at(assignment.span);
        }
        diagnostic
    }

    /// The key being resolved is set in a secrets file.
    fn in_secrets_file(&self) -> bool {
        self.stack
            .last()
            .and_then(|key| self.assignments.get(key))
            .is_some_and(|a| a.kind == SourceKind::Secrets)
    }

    /// The error of `${VAR:?message}` (or `?`) on an unset `VAR`. A message written in a
    /// secrets file, or built from a secret, is not shown.
    fn required(&mut self, var: &'a VarRef) -> Result<Diagnostic, Diagnostic> {
        let mut used = BTreeSet::new();
        let message = self.template(&var.arg, &mut used)?;
        let secret = self.in_secrets_file()
            || used.iter().any(|name| {
                self.assignments
                    .get(name.as_str())
                    .is_some_and(|a| a.kind == SourceKind::Secrets)
            });
        let message = if message.is_empty() {
            format!("`{}` must be set", var.name)
        } else if secret {
            format!(
                "`{}` must be set (its message is hidden: it comes from a secret)",
                var.name
            )
        } else {
            format!("`{}` must be set: {message}", var.name)
        };
        Ok(Diagnostic::new(message).at(&var.span).hint(format!(
            "set `{}` in the project file, an overlay, `--set` or the environment",
            var.name
        )))
    }

    fn var(&mut self, var: &'a VarRef, refs: &mut BTreeSet<String>) -> Result<String, Diagnostic> {
        let value = self.lookup(var, refs)?;
        let empty = value.as_deref().is_none_or(str::is_empty);
        let unset = value.is_none();
        Ok(match var.op {
            Op::Plain => match value {
                Some(value) => value,
                None if self.in_secrets_file() => {
                    return Err(Diagnostic::new(format!(
                        "`{}` refers to `{}`, which is not set",
                        self.stack.last().copied().unwrap_or_default(),
                        var.name
                    ))
                    .at(&var.span)
                    .hint(
                        "a secret is never silently empty: set it, or single-quote the value \
                         (`KEY='…'`) to keep `$` as it is",
                    ));
                }
                None => {
                    if self.warned.insert(var.name.clone()) {
                        self.unset.push(Unset {
                            name: var.name.clone(),
                            warning: Warning::new(
                                WarningKind::UnsetVariable,
                                self.stack.last().copied().unwrap_or(var.name.as_str()),
                                Diagnostic::new(format!(
                                    "`{}` is not set; using an empty string",
                                    var.name
                                ))
                                .at(&var.span)
                                .hint(format!("set it, or write `${{{}:-default}}`", var.name)),
                            ),
                        });
                    }
                    String::new()
                }
            },
            Op::DefaultIfEmpty if empty => self.template(&var.arg, refs)?,
            Op::DefaultIfUnset if unset => self.template(&var.arg, refs)?,
            Op::ErrorIfEmpty | Op::ErrorIfUnset
                if (var.op == Op::ErrorIfEmpty && empty) || unset =>
            {
                return Err(self.required(var)?);
            }
            Op::AltIfNonEmpty => {
                if empty {
                    String::new()
                } else {
                    self.template(&var.arg, refs)?
                }
            }
            Op::AltIfSet => {
                if unset {
                    String::new()
                } else {
                    self.template(&var.arg, refs)?
                }
            }
            _ => value.unwrap_or_default(),
        })
    }
}
