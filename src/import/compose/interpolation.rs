//! Compose's interpolation, carried: the `.env` beside the file, values written with
//! their `${VAR}` references (reserved names renamed, secrets moved to `secrets.env`),
//! values resolved where stack needs a literal, and the `.env` keys the file uses.

use std::collections::{BTreeMap, BTreeSet};

use super::text::{as_literal, pieces, references, Piece};
use super::{
    dotenv, embeds_credentials, is_reserved_key, is_secret_name, Finding, Import, Result,
    DEV_SECRETS,
};

impl Import<'_> {
    pub(super) fn read_dotenv(&mut self) -> Result<()> {
        let path = self.dir.join(".env");
        let Some(text) = self.reader.read(&path)? else {
            return Ok(());
        };
        let (assignments, skipped) = dotenv::parse(&text);
        for skip in skipped {
            self.findings.push(Finding {
                service: None,
                key: format!(".env:{}", skip.line),
                line: Some(skip.line),
                reason: skip.reason,
                not_carried: true,
            });
        }
        for assignment in assignments {
            let earlier = self.dotenv.get(&assignment.key).map(|(t, _)| t.as_str());
            let template = match without_self(&assignment.key, &assignment.template, earlier) {
                Some(resolved) => {
                    self.findings.push(Finding {
                        service: None,
                        key: format!(".env:{}", assignment.line),
                        line: Some(assignment.line),
                        reason: format!(
                            "`{}` names itself: read as Compose reads it when the shell does not set it (`{resolved}`); set it in `stack.env` to change it",
                            assignment.key
                        ),
                        not_carried: false,
                    });
                    resolved
                }
                None => assignment.template,
            };
            self.dotenv
                .insert(assignment.key, (template, assignment.line));
        }
        Ok(())
    }

    /// A value written into `stack.env`: reserved names renamed, secret references
    /// listed in `STACK_SECRETS`, and a literal default of a secret moved to `secrets.env`.
    pub(super) fn template(&mut self, text: &str) -> String {
        self.template_at(text, 0)
    }

    /// [`Self::template`] at `depth` of nesting: past the project file's limit the text
    /// stays as it is (the reader refuses it), so a hostile input costs no more.
    fn template_at(&mut self, text: &str, depth: usize) -> String {
        if depth > crate::import::yaml::MAX_INTERPOLATION_DEPTH {
            return text.to_string();
        }
        let mut out = Vec::new();
        for piece in pieces(text) {
            let Piece::Var { name, rest, braced } = piece else {
                out.push(piece);
                continue;
            };
            let mixed = self.mixed_defaults.contains(&name);
            let name = self.var(&name);
            let op_len = rest.len() - rest.trim_start_matches([':', '-', '?', '+']).len();
            let (op, arg) = rest.split_at(op_len);
            let arg = self.template_at(arg, depth + 1);
            if is_secret_name(&name) {
                let from_dotenv = self.dotenv.contains_key(&name)
                    || self
                        .renamed_vars
                        .iter()
                        .any(|(a, b)| *b == name && self.dotenv.contains_key(a));
                let empty_default = (op == ":-" || op == "-") && arg.is_empty();
                if !from_dotenv && (op.is_empty() || empty_default || mixed) {
                    // It stays a plain reference, never a generated secret (see
                    // `unset_secrets`): with no value anywhere, Compose gives it empty (with
                    // a warning), and so does stack; where its references disagree
                    // (`${X:-a}` here, `${X}` or `${X:-b}` there), Compose applies each
                    // default only where it is written, so each reference keeps its own.
                    if !self.secrets.contains_key(&name) {
                        self.unset_secrets.insert(name.clone());
                    }
                    out.push(Piece::Var {
                        name,
                        rest: format!("{op}{arg}"),
                        braced,
                    });
                    continue;
                }
                let entry = self.secrets.entry(name.clone()).or_insert(None);
                if (op == ":-" || op == "-") && !from_dotenv {
                    // The default becomes the dev secret; stack.env keeps the reference.
                    if let Some(literal) = as_literal(&arg) {
                        if entry.is_none() {
                            *entry = Some(literal);
                        }
                        out.push(Piece::Var {
                            name,
                            rest: String::new(),
                            braced: true,
                        });
                        continue;
                    }
                }
            }
            out.push(Piece::Var {
                name,
                rest: format!("{op}{arg}"),
                braced,
            });
        }
        super::text::join(&out)
    }

    /// `text` with its interpolation applied from `.env` and defaults, as Compose would,
    /// for a key where stack needs a literal value (a size, a build context, the project
    /// name); a note says so. `None` when a variable has no value.
    pub(super) fn resolved(
        &mut self,
        service: Option<&str>,
        key: &str,
        text: &str,
    ) -> Option<String> {
        if let Some(literal) = as_literal(text) {
            return Some(literal);
        }
        let value = self.interpolate(text, 0)?;
        self.note(
            service,
            key,
            format!(
                "`{text}` is read with `.env` now, as `{value}`: stack needs a literal value here, \
                 so a later change of `.env` is not followed"
            ),
        );
        Some(value)
    }

    /// One item of `ENV`, `LABELS` or `BUILD_ARGS` (`NAME=VALUE` in `stack.env`'s form),
    /// `\,` and `\\` escaped. stack splits such a list after interpolating it, so a
    /// variable whose `.env` value holds a comma or a backslash is written as that value
    /// (a note says so); a secret's never is.
    pub(super) fn list_item(&mut self, service: &str, key: &str, item: &str) -> String {
        let mut out = Vec::new();
        for piece in pieces(item) {
            let Piece::Var { name, rest, braced } = &piece else {
                out.push(piece);
                continue;
            };
            let original = self
                .renamed_vars
                .iter()
                .find(|(_, to)| *to == name)
                .map_or(name.clone(), |(from, _)| from.clone());
            let reference = Piece::Var {
                name: original.clone(),
                rest: rest.clone(),
                braced: *braced,
            };
            let value = self.interpolate(&super::text::join(&[reference]), 0);
            match value {
                Some(value) if value.contains([',', '\\']) && !is_secret_name(&original) => {
                    self.note(
                        Some(service),
                        key,
                        format!(
                            "`${original}` holds a comma or a backslash in `.env`: its value is \
                             written into the item, since stack splits the list after \
                             interpolating it (a later change of `.env` is not followed)"
                        ),
                    );
                    out.push(Piece::Text(super::text::escape_dollars(&value)));
                }
                _ => out.push(piece),
            }
        }
        crate::config::values::escape_item(&super::text::join(&out))
    }

    pub(super) fn interpolate(&self, text: &str, depth: usize) -> Option<String> {
        interpolate_in(&self.dotenv, text, depth)
    }

    /// Record that input variable `name` becomes project key `key`, with `why` as the
    /// import's note, the first time only.
    fn rename_once(&mut self, name: &str, key: &str, why: String) {
        if !self.renamed_vars.contains_key(name) {
            self.renamed_vars.insert(name.to_string(), key.to_string());
            self.note(None, name, why);
        }
    }

    /// The project key for an input variable name (recorded as referenced).
    pub(super) fn var(&mut self, name: &str) -> String {
        // Compose's names are case-sensitive and may be lower-case (`no_proxy`,
        // LibreTranslate's `libretranslate_data_folder`); a project key is upper-case.
        let upper = name.to_ascii_uppercase();
        if !super::is_key(name) && super::is_key(&upper) {
            let free = upper != name && !self.dotenv.contains_key(&upper);
            let key = if free && !is_reserved_key(&upper) {
                upper
            } else {
                format!("IMPORTED_{upper}")
            };
            let why = format!(
                "variable `{name}` is renamed `{key}` everywhere: project keys are \
                 upper-case (where Compose would read `{name}` from the shell, stack \
                 reads `{key}`)"
            );
            self.rename_once(name, &key, why);
            self.referenced.insert(name.to_string());
            return key;
        }
        let key = if is_reserved_key(name) {
            let key = format!("IMPORTED_{name}");
            let why = format!(
                "variable `{name}` is renamed `{key}`: stack reads keys starting with \
                 `STACK_`, `SERVICE_`, `SERVER_` and the preset prefixes itself"
            );
            self.rename_once(name, &key, why);
            key
        } else {
            name.to_string()
        };
        self.referenced.insert(name.to_string());
        key
    }

    /// The `.env` values the file uses (and those they use in turn): key → template,
    /// secrets moved to `secrets`; the unused and the unset are listed.
    pub(super) fn carry_dotenv(&mut self) -> Vec<(String, String)> {
        let mut lines = Vec::new();
        let mut done = BTreeSet::new();
        let mut pending: Vec<String> = self.referenced.iter().cloned().collect();
        while let Some(name) = pending.pop() {
            if !done.insert(name.clone()) {
                continue;
            }
            let Some((template, _)) = self.dotenv.get(&name).cloned() else {
                continue;
            };
            pending.extend(references(&template));
            let key = self.var(&name);
            let value = self.template(&template);
            let credentials = as_literal(&value).is_some_and(|v| embeds_credentials(&v));
            if (is_secret_name(&key) || credentials) && !value.is_empty() {
                let literal = as_literal(&value).unwrap_or(value);
                self.secrets.insert(key, Some(literal));
            } else if is_secret_name(&key) {
                // Left empty on purpose in `.env`: an empty value, not a secret.
                self.secrets.remove(&key);
                lines.push((key, value));
            } else {
                lines.push((key, value));
            }
        }
        self.unused_dotenv(&done);
        self.unset_secret_findings();
        lines
    }

    /// A note for each `.env` key the interpolation does not use.
    fn unused_dotenv(&mut self, used: &BTreeSet<String>) {
        if self.dotenv_is_env_file {
            return;
        }
        for (name, (_, line)) in &self.dotenv {
            if used.contains(name) {
                continue;
            }
            self.findings.push(Finding {
                service: None,
                key: format!(".env:{name}"),
                line: Some(*line),
                reason: "not used by the Compose file's interpolation".into(),
                not_carried: false,
            });
        }
    }

    /// A note for each secret reference with no value anywhere.
    fn unset_secret_findings(&mut self) {
        let unset: Vec<String> = self
            .unset_secrets
            .iter()
            .filter(|name| !self.secrets.contains_key(*name))
            .cloned()
            .collect();
        for name in unset {
            self.findings.push(Finding {
                service: None,
                key: name.clone(),
                line: None,
                reason: format!(
                    "`{name}` has no value in the file or `.env`: as in Compose it is empty \
                     (with a warning), not a generated secret; give it a value in each \
                     environment's `secrets.env` (e.g. `{DEV_SECRETS}`)"
                ),
                not_carried: false,
            });
        }
    }
}

/// The secret variables whose references in `doc` disagree on their default: one has a
/// literal default and another a different one or none (Plane's `${POSTGRES_PASSWORD:-plane}`
/// beside a bare `${POSTGRES_PASSWORD}`).
pub(super) fn mixed_defaults(doc: &super::yaml::Node) -> BTreeSet<String> {
    let mut forms: std::collections::BTreeMap<String, BTreeSet<Option<String>>> =
        Default::default();
    let mut stack = vec![doc];
    while let Some(node) = stack.pop() {
        match node {
            super::yaml::Node::Seq(items) => stack.extend(items),
            super::yaml::Node::Map(entries) => stack.extend(entries.iter().map(|(_, v)| v)),
            other => {
                if let Some(text) = other.scalar() {
                    record_defaults(&text, &mut forms, 0);
                }
            }
        }
    }
    forms
        .into_iter()
        .filter(|(name, forms)| is_secret_name(name) && forms.len() > 1)
        .map(|(name, _)| name)
        .collect()
}

/// Each reference of `text` (and of its defaults) as its name → its literal default.
fn record_defaults(
    text: &str,
    forms: &mut std::collections::BTreeMap<String, BTreeSet<Option<String>>>,
    depth: usize,
) {
    if depth > 8 {
        return;
    }
    for piece in pieces(text) {
        let Piece::Var { name, rest, .. } = piece else {
            continue;
        };
        let op_len = rest.len() - rest.trim_start_matches([':', '-', '?', '+']).len();
        let (op, arg) = rest.split_at(op_len);
        let default = (op == ":-" || op == "-")
            .then(|| as_literal(arg))
            .flatten()
            .filter(|d| !d.is_empty());
        forms.entry(name).or_default().insert(default);
        record_defaults(arg, forms, depth + 1);
    }
}

/// A `.env` value that names its own variable (`DOC_ENGINE=${DOC_ENGINE:-elasticsearch}`,
/// as RAGFlow writes it) as Compose reads it: the shell's value, else an earlier line's
/// (`earlier`), else unset. stack's project keys cannot name themselves, so the shell's
/// value is not followed; `None` when the value does not name itself.
fn without_self(key: &str, template: &str, earlier: Option<&str>) -> Option<String> {
    let parts = pieces(template);
    if !parts
        .iter()
        .any(|piece| matches!(piece, Piece::Var { name, .. } if name == key))
    {
        return None;
    }
    let mut out = String::new();
    for piece in parts {
        match piece {
            Piece::Var { name, rest, .. } if name == key => {
                let op_len = rest.len() - rest.trim_start_matches([':', '-', '?', '+']).len();
                let (op, arg) = rest.split_at(op_len);
                let set = earlier.filter(|v| !(v.is_empty() && op.starts_with(':')));
                out.push_str(match (op.trim_start_matches(':'), set) {
                    ("+", Some(_)) => arg,
                    ("+", None) => "",
                    (_, Some(value)) => value,
                    ("-", None) => arg,
                    _ => "",
                });
            }
            other => out.push_str(&super::text::join(&[other])),
        }
    }
    Some(out)
}

/// `text` with its interpolation applied from `.env` (`dotenv`) and defaults, as Compose
/// applies it; `None` when a variable has no value (or it nests too deep).
pub(super) fn interpolate_in(
    dotenv: &BTreeMap<String, (String, usize)>,
    text: &str,
    depth: usize,
) -> Option<String> {
    if depth > 8 {
        return None;
    }
    let mut out = String::new();
    for piece in pieces(text) {
        match piece {
            Piece::Text(text) => out.push_str(&text.replace("$$", "$")),
            Piece::Var { name, rest, .. } => {
                let value = match dotenv.get(&name) {
                    Some((template, _)) => Some(interpolate_in(dotenv, template, depth + 1)?),
                    None => None,
                };
                let op_len = rest.len() - rest.trim_start_matches([':', '-', '?', '+']).len();
                let (op, arg) = rest.split_at(op_len);
                let set = value.is_some();
                let full = value.as_deref().is_some_and(|v| !v.is_empty());
                let chosen = match op {
                    "" | "?" | ":?" if set && (op != ":?" || full) => value,
                    ":-" if full => value,
                    "-" if set => value,
                    ":-" | "-" => Some(interpolate_in(dotenv, arg, depth + 1)?),
                    ":+" if full => Some(interpolate_in(dotenv, arg, depth + 1)?),
                    "+" if set => Some(interpolate_in(dotenv, arg, depth + 1)?),
                    ":+" | "+" => Some(String::new()),
                    _ => None,
                };
                out.push_str(&chosen?);
            }
        }
    }
    Some(out)
}

/// The `.env` in `dir` as Compose reads it before the file: each value's template, a
/// value that names itself read without the shell (see [`without_self`]).
pub(super) fn dotenv_templates(text: &str) -> BTreeMap<String, (String, usize)> {
    let mut values: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for assignment in dotenv::parse(text).0 {
        let earlier = values.get(&assignment.key).map(|(t, _)| t.as_str());
        let template = without_self(&assignment.key, &assignment.template, earlier)
            .unwrap_or(assignment.template);
        values.insert(assignment.key, (template, assignment.line));
    }
    values
}
