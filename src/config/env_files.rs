//! `SERVICE_<NAME>_ENV_FILE`: files of `KEY=VALUE` lines (Compose's `env_file`) whose
//! variables a service takes. [`read`] is the I/O (bounded reads of the files the
//! configuration names); [`apply`] is pure: parse, check, merge. The service's own
//! `ENV_<VAR>` and `ENV` entries win over a file's, as `environment:` wins over
//! `env_file:` in Compose.
//!
//! The values land in the rendered compose file like any `ENV_<VAR>`, so a variable whose
//! name says it is a secret is refused: it belongs in `secrets.env`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::model::Config;
use crate::error::{Diagnostic, Error, Result};

/// The contents of every `ENV_FILE` of `loaded`, by its path relative to the project.
/// A file must be a regular file inside the repository (links followed): its values are
/// written into the bundle, so a committed project cannot pull in the machine's files.
pub fn read(loaded: &super::Loaded) -> Result<BTreeMap<String, Vec<u8>>> {
    let config = &loaded.config;
    let root = super::repository_root(&config.project_dir);
    let root = root.canonicalize().unwrap_or(root);
    let mut out = BTreeMap::new();
    for service in &config.services {
        let key = format!(
            "SERVICE_{}_ENV_FILE",
            super::keys::service_key_name(&service.name)
        );
        let span = loaded.resolved.settings.get(&key).map(|s| s.span.clone());
        for rel in &service.env_files {
            if out.contains_key(rel) {
                continue;
            }
            let path = config.project_dir.join(rel);
            let at = |e: Error| match e {
                Error::Invalid(diagnostics) => Error::Invalid(
                    diagnostics
                        .into_iter()
                        .map(|d| {
                            let message = format!("`{key}`: {}", d.message);
                            Diagnostic { message, ..d }.with_span(span.clone())
                        })
                        .collect(),
                ),
                other => other,
            };
            // Looked at before reading: a file outside is never opened.
            let real = path.canonicalize().unwrap_or_else(|_| root.clone());
            if !real.starts_with(&root) {
                return Err(Diagnostic::new(format!(
                    "`{key}` names `{rel}`, which is `{}`, outside the repository `{}`",
                    real.display(),
                    root.display()
                ))
                .with_span(span.clone())
                .hint("an env file's values are written into the bundle: keep the file in the repository")
                .into());
            }
            let bytes =
                crate::fsio::read_bounded(&path, crate::project::syntax::MAX_FILE_BYTES as u64)
                    .map_err(|e| at(e.into_error(rel, &path)))?;
            out.insert(rel.clone(), bytes);
        }
    }
    Ok(out)
}

/// Merge the variables of each service's `ENV_FILE`s (in order; a later file wins) under
/// its own variables. Every bad line of every file is reported.
pub fn apply(config: &mut Config, files: &BTreeMap<String, Vec<u8>>) -> Result<()> {
    let mut errors = Vec::new();
    for service in &mut config.services {
        let mut from_files: BTreeMap<String, String> = BTreeMap::new();
        for rel in &service.env_files {
            let Some(bytes) = files.get(rel) else {
                continue;
            };
            match parse(rel, bytes) {
                Ok(entries) => from_files.extend(entries),
                Err(mut problems) => errors.append(&mut problems),
            }
        }
        for (var, value) in from_files {
            if !service.env.contains_key(&var) {
                service.set_env(var, value, false);
            }
        }
    }
    errors.dedup_by(|a, b| a.message == b.message);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

/// A name that says its value is a secret (`*PASSWORD*`, `*SECRET*`, `*TOKEN*`, `*_KEY`).
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["PASSWORD", "SECRET", "TOKEN"]
        .iter()
        .any(|word| upper.contains(word))
        || upper.ends_with("_KEY")
}

/// Compose's env file syntax: `KEY=VALUE` lines, `#` comments, blank lines, an optional
/// `export `, and a value in matching single or double quotes taken without them.
/// Values are literal (no interpolation).
fn parse(
    source: &str,
    bytes: &[u8],
) -> std::result::Result<Vec<(String, String)>, Vec<Diagnostic>> {
    let source: Arc<str> = Arc::from(source);
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(vec![Diagnostic::new(format!(
            "`{source}` is not UTF-8 text"
        ))
        .hint("an env file holds `KEY=VALUE` lines of text")]);
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // An env file is not stack's: a line of it may hold a value, so a problem is
        // told by file, line and name, never by showing the line.
        let at = format!("{source}:{}", index + 1);
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            errors.push(
                Diagnostic::new(format!("{at}: a line without `=` (not shown)"))
                    .hint("write `NAME=value`, or start a comment with `#`"),
            );
            continue;
        };
        let name = name.trim();
        if !super::attrs::env_name(name) {
            errors.push(
                Diagnostic::new(format!(
                    "{at}: the text before `=` is not a variable name (not shown)"
                ))
                .hint("a name is anything but empty, `=`, blanks or control characters"),
            );
            continue;
        }
        if looks_secret(name) {
            // The line is not shown: it holds the value.
            errors.push(
                Diagnostic::new(format!(
                    "{at}: `{name}` looks like a secret, and an env file's values are written into docker-compose.yml"
                ))
                .hint(format!(
                    "move it to `environments/<env>/secrets.env`, list it in `STACK_SECRETS`, and pass it with `SERVICE_<NAME>_ENV_{name}=${{{name}}}`"
                )),
            );
            continue;
        }
        let value = value.trim();
        let value = match (value.chars().next(), value.chars().last()) {
            (Some(q @ ('"' | '\'')), Some(end)) if value.len() >= 2 && end == q => {
                &value[1..value.len() - 1]
            }
            _ => value,
        };
        if value.chars().any(|c| c.is_control() && c != '\t') {
            errors.push(
                Diagnostic::new(format!(
                    "{at}: the value of `{name}` has a control character"
                ))
                .hint("write the value on one line, without control characters"),
            );
            continue;
        }
        out.push((name.to_string(), value.to_string()));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_env_file_syntax() {
        let text =
            b"# comment\n\nexport A=1\nb.c = two words \nQ='quoted # not a comment'\nD=\"x\"\n";
        let entries = parse("web.env", text).unwrap();
        assert_eq!(
            entries,
            vec![
                ("A".into(), "1".into()),
                ("b.c".into(), "two words".into()),
                ("Q".into(), "quoted # not a comment".into()),
                ("D".into(), "x".into()),
            ]
        );
    }

    #[test]
    fn bad_lines_and_secret_names_are_refused_with_their_line() {
        let errors = parse("web.env", b"OK=1\nno equals\nDB_PASSWORD=hunter2\n").unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].message.starts_with("web.env:2:"));
        assert!(errors[1].message.contains("web.env:3:"));
        let shown = format!("{errors:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    /// Every kind of bad line: the file and line are named, the line's text never shown
    /// (in the message, the hint or a caret display).
    #[test]
    fn a_bad_line_is_never_shown() {
        let text = "OK=1\nhunter2-alone\nhunter2 x=1\nA=hunter2\u{7}\nB=1\n";
        let errors = parse("web.env", text.as_bytes()).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        for (error, line) in errors.iter().zip([2, 3, 4]) {
            let rendered = error.render();
            assert!(!rendered.contains("hunter2"), "{rendered}");
            assert!(rendered.contains(&format!("web.env:{line}:")), "{rendered}");
        }
        assert!(errors[2].message.contains("`A`"));
    }
}
