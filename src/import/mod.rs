//! `stack import`: translate a Compose file (and the `.env`, env files, secret files and
//! Caddyfile beside it) or an nself project into a stack project. Pure: the texts of the
//! input files come in through a [`Reader`], the files to write come out as an
//! [`Imported`]; nothing here touches the filesystem or prints.
//!
//! What cannot be carried is never dropped silently: it becomes a [`Finding`] naming the
//! service, the key and the reason.

pub mod caddyfile;
pub mod compose;
pub mod dotenv;
pub mod merge;
pub mod nself;
pub mod text;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Diagnostic, Result};

/// The project file an import writes.
pub const PROJECT_FILE: &str = "stack.env";
/// The dev secrets file an import writes (mode 0600).
pub const DEV_SECRETS: &str = "environments/dev/secrets.env";

/// Reads an input file by path, bounded; the command supplies it (the import is pure).
pub trait Reader {
    /// The text of `path`, `None` when it does not exist. Any other failure is an error.
    fn read(&self, path: &Path) -> Result<Option<String>>;
    /// The names of the folders in `dir` (none when it does not exist).
    fn folders(&self, dir: &Path) -> Vec<String>;
}

/// One finding of an import: something the project does not carry, or a note on how it
/// was carried.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The service (as named in the input), `None` for a top-level key.
    pub service: Option<String>,
    /// The key in the input (`container_name`, `networks.backend.aliases`).
    pub key: String,
    /// 1-based line in the input file, when known.
    pub line: Option<usize>,
    /// Why it is not carried, or how it was.
    pub reason: String,
    /// `false` for a note (carried differently, or without effect), which `--strict`
    /// accepts.
    pub not_carried: bool,
}

/// One file the import writes, relative to the project directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFile {
    pub path: String,
    pub contents: String,
    /// 0o600 for secrets, 0o644 otherwise.
    pub mode: u32,
}

/// What an import produces.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub files: Vec<OutFile>,
    pub findings: Vec<Finding>,
    /// The project name written.
    pub project: String,
    /// Services of the project, in order.
    pub services: Vec<String>,
    /// Input service name → project service name, where they differ.
    pub renamed: BTreeMap<String, String>,
    /// Names of the secret keys written (never their values).
    pub secrets: Vec<String>,
}

impl Imported {
    /// The findings that `--strict` refuses.
    pub fn not_carried(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.not_carried)
    }
}

/// Is a variable named `name` a secret by its name: `*PASSWORD*`, `*SECRET*`, `*TOKEN*`,
/// `*_KEY`, `*_PASS`, `*_PWD` (any case; `PASSWD`, `PASSPHRASE`, `_KEY_` and `_PASS_`
/// forms too).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase().replace(['.', '-'], "_");
    // `POSTGRES_PASSWORD_FILE` names the file that holds the secret, not the secret.
    if upper.ends_with("_FILE") {
        return false;
    }
    upper.contains("PASSWORD")
        || upper.contains("PASSWD")
        || upper.contains("SECRET")
        || upper.contains("TOKEN")
        || upper.ends_with("_PASS")
        || upper == "PASS"
        || upper.contains("_PASS_")
        || upper.contains("PASSPHRASE")
        || upper.ends_with("_PWD")
        || upper.ends_with("_KEY")
        || upper == "KEY"
        || upper.contains("_KEY_")
        || upper.ends_with("APIKEY")
}

/// Does a literal value embed a password: `scheme://user:password@host` (a database,
/// Redis, AMQP or any URL with credentials), the password not empty and not a `${…}`
/// reference (then the referenced variable is the secret, and stays referenced).
pub fn embeds_credentials(value: &str) -> bool {
    let mut rest = value;
    while let Some(at) = rest.find("://") {
        let scheme = &rest[..at];
        let after = &rest[at + 3..];
        let scheme_ok = scheme
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        let authority = after.split(['/', '?', '#', ' ']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, password)) = userinfo.split_once(':') {
                if scheme_ok && !password.is_empty() && !password.contains('$') {
                    return true;
                }
            }
        }
        rest = after;
    }
    false
}

/// `name` as a project key: upper case, anything else than `[A-Z0-9_]` as `_`, never
/// starting with a digit.
pub fn key_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Is `name` a project key as written (`[A-Z_][A-Z0-9_]*`).
pub fn is_key(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Key prefixes that stack reads itself: a variable of the input named so is renamed.
pub fn is_reserved_key(name: &str) -> bool {
    let prefixes = ["STACK_", "SERVICE_", "SERVER_"];
    prefixes.iter().any(|p| name.starts_with(p))
        || crate::config::presets::PRESETS
            .iter()
            .any(|p| name.starts_with(&format!("{}_", p.name)))
}

/// The project's service name for an input service name, `None` when nothing is left.
pub fn service_name(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    (!out.is_empty()).then_some(out)
}

/// The project name from a folder name or a Compose `name:`, as Compose normalises it.
pub fn project_name(name: &str) -> String {
    let out: String = name
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
        .collect();
    let out = out.trim_start_matches(['-', '_']).to_string();
    if out.is_empty() {
        "app".into()
    } else {
        out
    }
}

/// Is the service name taken by the proxy. A preset's service name is taken only while
/// the preset is enabled, and an import of a Compose file enables none: a `redis` or
/// `postgres` of the file keeps its name, so every `redis:6379` still resolves.
pub fn is_reserved_service(name: &str, proxy: bool) -> bool {
    proxy && name == "proxy"
}

/// `path` relative to `base` when under it, for messages.
pub fn shown(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// A path for a project file: `./x` when under the project, else relative with `..`
/// when the two share a folder, else absolute.
pub fn project_path(project_dir: &Path, path: &Path) -> String {
    let path = normalise(path);
    if let Ok(rest) = path.strip_prefix(project_dir) {
        let rest = rest.to_string_lossy();
        return if rest.is_empty() {
            ".".into()
        } else {
            format!("./{rest}")
        };
    }
    let rel = crate::render::relative(project_dir, &path);
    let text = rel.to_string_lossy().into_owned();
    if rel.is_absolute() || text.starts_with("..") {
        text
    } else {
        format!("./{text}")
    }
}

/// `path` with `.` and `..` components resolved lexically.
pub fn normalise(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A bad input file: exit 2 with `file:line`.
pub fn input_error(
    source: &str,
    text: &str,
    line: usize,
    col: usize,
    message: impl Into<String>,
) -> Diagnostic {
    let line_text = text.lines().nth(line.saturating_sub(1)).unwrap_or_default();
    let span = crate::error::Span {
        source: source.into(),
        line: line.max(1) as u32,
        col: col.max(1) as u32,
        len: 1,
        line_text: line_text.into(),
    };
    Diagnostic::new(message).at(&span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "POSTGRES_PASSWORD",
            "db_password",
            "JWT_SECRET",
            "GITHUB_TOKEN",
            "API_KEY",
            "STRIPE_SECRET_KEY",
            "PG_PASS",
            "smtp_pass",
            "DB_PWD",
            "GPG_PASSPHRASE",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "POSTGRES_USER",
            "KEYCLOAK_URL",
            "MONKEY",
            "PORT",
            "TOKENIZER",
            "DB_PASSWORD_FILE",
            "BYPASS",
            "PASSENGER_MODE",
        ] {
            assert_eq!(is_secret_name(name), name == "TOKENIZER", "{name}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(service_name("My_Web.App"), Some("my-web-app".into()));
        assert_eq!(service_name("__"), None);
        assert_eq!(key_name("discovery.type"), "DISCOVERY_TYPE");
        assert_eq!(key_name("1x"), "_1X");
        assert_eq!(project_name("My App!"), "myapp");
        assert!(is_reserved_key("POSTGRES_DB"));
        assert!(!is_reserved_key("VERSION"));
        assert!(!is_reserved_service("redis", false));
        assert!(is_reserved_service("proxy", true));
        assert!(!is_reserved_service("proxy", false));
    }

    #[test]
    fn project_paths() {
        let p = Path::new("/p");
        assert_eq!(project_path(p, Path::new("/p/data/./x")), "./data/x");
        assert_eq!(project_path(p, Path::new("/p")), ".");
        assert_eq!(project_path(p, Path::new("/q/data")), "/q/data");
        let p = Path::new("/w/project");
        assert_eq!(project_path(p, Path::new("/w/src/data")), "../src/data");
    }
}
