//! The project file and its layers (SPEC §1.1–1.2): which files are read for an
//! environment, in which order, and how their keys merge and interpolate.
//!
//! Reading files is the only I/O here (through [`read_bounded`]: regular files of at most
//! [`syntax::MAX_FILE_BYTES`]); parsing, merging and interpolation are pure.

pub mod command;
pub mod interpolate;
pub mod syntax;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Diagnostic, Error, Result, Warning, WarningKind};
use crate::fsio::{read_bounded, ReadError};
pub use interpolate::{resolve, Resolved, Setting};
pub use syntax::{Entry, Template};

/// Where a layer comes from; decides precedence and whether its keys are secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    Project,
    Overlay,
    Server,
    Secrets,
    Local,
    Flag,
}

/// One parsed source, in precedence order.
#[derive(Debug, Clone)]
pub struct Layer {
    pub kind: SourceKind,
    /// Name as shown to the user, relative to the project directory.
    pub name: Arc<str>,
    pub path: Option<PathBuf>,
    pub entries: Vec<Entry>,
}

/// All sources of one project for one environment, parsed but not yet merged.
#[derive(Debug, Clone)]
pub struct Sources {
    pub dir: PathBuf,
    pub env: String,
    pub layers: Vec<Layer>,
}

/// Environments that exist without an `environments/<name>/` folder.
pub const BUILTIN_ENVS: [&str; 3] = ["dev", "staging", "prod"];

/// The project file name.
pub const PROJECT_FILE: &str = "stack.env";

/// Paths of an environment's files, relative to the project directory.
pub fn overlay_path(env: &str) -> String {
    format!("environments/{env}/stack.env")
}
pub fn server_path(env: &str) -> String {
    format!("environments/{env}/server.env")
}
pub fn secrets_path(env: &str) -> String {
    format!("environments/{env}/secrets.env")
}
pub const LOCAL_FILE: &str = "stack.local.env";

/// The paths of a project directory that hold secrets stack wrote or reads, relative to
/// it, as ignore files write them (`*` is one path component, a trailing `/` a folder):
/// the rendered bundles (with their `.env`), the secrets of every environment, the
/// personal overrides and the database dumps of the `BACKUP` preset. Never in git
/// (`init` and `import` write them into `.gitignore`), never in an image (a build
/// context leaves them out, whatever `.dockerignore` says).
pub const SECRET_PATHS: [&str; 4] = [
    ".stack/",
    "environments/*/secrets.env",
    LOCAL_FILE,
    "backups/",
];

/// An ignore file (`.gitignore`, `.dockerignore`) of [`SECRET_PATHS`], after the comment
/// line `# stack: {why}`.
pub fn ignore_file(why: &str) -> String {
    let mut out = format!("# stack: {why}\n");
    for path in SECRET_PATHS {
        out.push_str(path);
        out.push('\n');
    }
    out
}

/// Check an environment name: a built-in, or one with its own folder.
pub fn check_env(dir: &Path, env: &str) -> Result<()> {
    let valid = !env.is_empty()
        && env.len() <= 63
        && env
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && env
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(Diagnostic::new(format!(
            "invalid environment name `{env}`: use lower-case letters, digits, `-` and `_`"
        ))
        .hint("built-in environments are `dev`, `staging` and `prod`")
        .into());
    }
    if BUILTIN_ENVS.contains(&env) || dir.join("environments").join(env).is_dir() {
        return Ok(());
    }
    let mut known: Vec<String> = BUILTIN_ENVS.iter().map(|s| s.to_string()).collect();
    if let Ok(read) = std::fs::read_dir(dir.join("environments")) {
        for entry in read.flatten() {
            if entry.path().is_dir() {
                known.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    known.sort();
    known.dedup();
    Err(Diagnostic::new(format!("unknown environment `{env}`"))
        .hint(format!(
            "known environments: {}; create `environments/{env}/` to add one",
            known.join(", ")
        ))
        .into())
}

/// Read every source of `env` from `dir`, plus the `--set` flags.
pub fn load(dir: &Path, env: &str, sets: &[String]) -> Result<Sources> {
    check_env(dir, env)?;
    let mut files = vec![
        (SourceKind::Project, PROJECT_FILE.to_string(), true),
        (SourceKind::Overlay, overlay_path(env), false),
        (SourceKind::Server, server_path(env), false),
        (SourceKind::Secrets, secrets_path(env), false),
    ];
    if env == "dev" {
        files.push((SourceKind::Local, LOCAL_FILE.to_string(), false));
    }
    let mut layers = Vec::new();
    let mut errors = Vec::new();
    for (kind, name, required) in files {
        let path = dir.join(&name);
        let bytes = match read_bounded(&path, syntax::MAX_FILE_BYTES as u64) {
            Ok(bytes) => bytes,
            Err(ReadError::Missing) if !required => continue,
            Err(ReadError::Missing) => {
                return Err(
                    Diagnostic::new(format!("no `{PROJECT_FILE}` in `{}`", dir.display()))
                        .hint("run `stack init` to create a project, or pass `--project-dir`")
                        .into(),
                )
            }
            Err(err) => return Err(err.into_error(&name, &path)),
        };
        let parsed = syntax::parse(&name, &bytes).and_then(|entries| match kind {
            SourceKind::Secrets => check_secret_references(&entries).map(|()| entries),
            _ => Ok(entries),
        });
        match parsed {
            Ok(entries) => layers.push(Layer {
                kind,
                name: Arc::from(name.as_str()),
                path: Some(path),
                entries,
            }),
            Err(mut diagnostics) => errors.append(&mut diagnostics),
        }
    }
    match parse_sets(sets) {
        Ok(layer) if !layer.entries.is_empty() => layers.push(layer),
        Ok(_) => {}
        Err(mut diagnostics) => errors.append(&mut diagnostics),
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    Ok(Sources {
        dir: dir.to_path_buf(),
        env: env.to_string(),
        layers,
    })
}

/// `bytes` as the secrets file of `env` would be read: for a value about to be written,
/// checked before anything is written.
pub fn secrets_layer(dir: &Path, env: &str, bytes: &[u8]) -> Result<Layer> {
    let name = secrets_path(env);
    let entries = syntax::parse(&name, bytes)
        .and_then(|entries| check_secret_references(&entries).map(|()| entries))
        .map_err(Error::Invalid)?;
    Ok(Layer {
        kind: SourceKind::Secrets,
        path: Some(dir.join(&name)),
        name: Arc::from(name.as_str()),
        entries,
    })
}

impl Sources {
    /// Put `layer` in place of the secrets file's layer (where that file's layer goes
    /// when there is none yet: after the project, overlay and server files).
    pub fn replace_secrets(&mut self, layer: Layer) {
        if let Some(at) = self
            .layers
            .iter()
            .position(|l| l.kind == SourceKind::Secrets)
        {
            self.layers[at] = layer;
            return;
        }
        let at = self
            .layers
            .iter()
            .position(|l| {
                !matches!(
                    l.kind,
                    SourceKind::Project | SourceKind::Overlay | SourceKind::Server
                )
            })
            .unwrap_or(self.layers.len());
        self.layers.insert(at, layer);
    }
}

/// A warning for every key set twice in one file (the later line wins), naming both
/// lines. The values are not shown (a secrets file's line is masked).
pub fn duplicate_keys(layers: &[Layer]) -> Vec<Warning> {
    let mut out = Vec::new();
    for layer in layers.iter().filter(|l| l.kind != SourceKind::Flag) {
        let mut first: std::collections::HashMap<&str, &Entry> = std::collections::HashMap::new();
        for entry in &layer.entries {
            match first.get(entry.key.as_str()) {
                Some(earlier) => out.push(Warning::new(
                    WarningKind::DuplicateKey,
                    &entry.key,
                    Diagnostic::new(format!(
                        "`{}` is set twice in one file: at {}:{} and at {}:{}; the later one wins",
                        entry.key,
                        earlier.span.source,
                        earlier.span.line,
                        entry.span.source,
                        entry.span.line
                    ))
                    .at(&entry.span)
                    .hint("remove one of the two lines"),
                )),
                None => {
                    first.insert(&entry.key, entry);
                }
            }
        }
    }
    out
}

/// In a secrets file a bare `$NAME` is refused: a generated password such as `abc$def`
/// would otherwise lose its tail silently (`$def` unset) or take a value from the
/// process environment (`pa$HOME`). `${NAME}` still interpolates; `'…'` and `$$` keep `$`.
fn check_secret_references(entries: &[Entry]) -> std::result::Result<(), Vec<Diagnostic>> {
    let errors: Vec<Diagnostic> = entries
        .iter()
        .filter_map(|entry| {
            let bare = entry.value.references().into_iter().find(|r| !r.braced)?;
            // The name after `$` is part of the secret: not quoted.
            Some(
                Diagnostic::new(format!(
                    "`{}` has an unquoted `$` followed by a name, which a secrets file reads as a reference",
                    entry.key
                ))
                .at(&bare.span)
                .hint(
                    "single-quote the value (`KEY='…'`) to keep every `$` as it is, or write `$$` \
                     for one `$`; write `${NAME}` to interpolate",
                ),
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// `--set KEY=VALUE` flags, each parsed as one line of a project file.
pub fn parse_sets(sets: &[String]) -> std::result::Result<Layer, Vec<Diagnostic>> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for set in sets {
        if !set.contains('=') {
            errors.push(
                Diagnostic::new(format!("`--set {set}` has no `=`"))
                    .hint("write `--set KEY=VALUE`"),
            );
            continue;
        }
        if set.contains('\n') {
            errors.push(Diagnostic::new("a `--set` value cannot span lines"));
            continue;
        }
        match syntax::parse("--set", set.as_bytes()) {
            Ok(mut parsed) => entries.append(&mut parsed),
            Err(mut diagnostics) => errors.append(&mut diagnostics),
        }
    }
    if errors.is_empty() {
        Ok(Layer {
            kind: SourceKind::Flag,
            name: Arc::from("--set"),
            path: None,
            entries,
        })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests;
