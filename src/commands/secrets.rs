//! `stack secrets generate ENV` and `stack secrets check ENV`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use super::Context;
use crate::cli::{EnvArg, SecretsCommand};
use crate::config::Loaded;
use crate::error::{Error, Result};
use crate::project::secrets_path;

/// Length of a generated secret (alphanumeric: safe in URLs, shells and env files).
pub const SECRET_LENGTH: usize = 40;
/// Shortest value `check` accepts.
pub const MIN_LENGTH: usize = 16;

/// Values that are never a real secret.
const WEAK: &[&str] = &[
    "password",
    "passw0rd",
    "changeme",
    "change-me",
    "changeit",
    "secret",
    "admin",
    "root",
    "postgres",
    "redis",
    "minio",
    "minioadmin",
    "example",
    "test",
    "default",
    "letmein",
    "123456",
    "12345678",
    "qwerty",
    "dev",
    "development",
];

/// A strong random value from the operating system's CSPRNG.
pub fn random_secret() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(SECRET_LENGTH);
    let mut buffer = [0u8; 64];
    while out.len() < SECRET_LENGTH {
        getrandom::fill(&mut buffer)
            .map_err(|e| Error::outside(format!("cannot read random bytes from the OS: {e}")))?;
        for byte in buffer {
            // 248 = 4 × 62: reject the tail so every character is equally likely.
            if byte < 248 && out.len() < SECRET_LENGTH {
                out.push(ALPHABET[(byte % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

/// Append a value for every missing secret to the environment's secrets file (0600).
/// Existing lines are kept byte for byte. Returns the names generated.
pub fn generate_missing(loaded: &Loaded) -> Result<Vec<String>> {
    let env = &loaded.config.env;
    let path = loaded.config.project_dir.join(secrets_path(env));
    let missing: Vec<String> = loaded
        .config
        .secrets
        .iter()
        .filter(|s| !s.present)
        .map(|s| s.name.clone())
        .collect();
    if missing.is_empty() {
        return Ok(missing);
    }
    let mut text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "# Secrets of environment `{env}`. Never commit this file; keep it mode 0600.\n"
        )
        .into_bytes(),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    for name in &missing {
        text.extend_from_slice(format!("{name}={}\n", random_secret()?).as_bytes());
    }
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(|e| Error::io("create", folder, e))?;
    }
    crate::fsio::write_file(&path, &text, 0o600)?;
    Ok(missing)
}

pub fn run(context: &Context, command: &SecretsCommand) -> Result<()> {
    match command {
        SecretsCommand::Generate(EnvArg { env }) => {
            let env = &context.env_or(env);
            let loaded = context.load(env)?;
            let generated = generate_missing(&loaded)?;
            if context.global.json {
                context
                    .printer
                    .json(&json!({"env": env, "generated": generated}));
            }
            if generated.is_empty() {
                context
                    .printer
                    .status(format!("every secret of `{env}` is set; nothing generated"));
            } else {
                context.printer.status(format!(
                    "generated {} secret(s) in `{}`: {}",
                    generated.len(),
                    secrets_path(env),
                    generated.join(", ")
                ));
            }
            Ok(())
        }
        SecretsCommand::Check(EnvArg { env }) => {
            let env = &context.env_or(env);
            let loaded = context.load(env)?;
            let findings = check(&loaded);
            report(context, env, "secrets check", &findings)
        }
    }
}

/// One line of an audit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub ok: bool,
    pub check: String,
    pub message: String,
}

impl Finding {
    pub fn pass(check: &str, message: impl Into<String>) -> Self {
        Finding {
            ok: true,
            check: check.into(),
            message: message.into(),
        }
    }
    pub fn fail(check: &str, message: impl Into<String>) -> Self {
        Finding {
            ok: false,
            check: check.into(),
            message: message.into(),
        }
    }
}

/// Presence and strength of every secret, and the privacy of the secrets file.
pub fn check(loaded: &Loaded) -> Vec<Finding> {
    let mut out = Vec::new();
    let env = &loaded.config.env;
    for secret in &loaded.config.secrets {
        let value = loaded.resolved.get(&secret.name).unwrap_or("");
        let finding = if value.is_empty() {
            Finding::fail(
                "secret",
                format!(
                    "`{}` is missing; run `stack secrets generate {env}`",
                    secret.name
                ),
            )
        } else if let Some(reason) = weakness(&secret.name, value) {
            Finding::fail("secret", format!("`{}` is weak: {reason}", secret.name))
        } else {
            Finding::pass("secret", format!("`{}` is set and strong", secret.name))
        };
        out.push(finding);
        if let Some(setting) = loaded.resolved.settings.get(&secret.name) {
            if setting.kind != crate::project::SourceKind::Secrets && !value.is_empty() {
                out.push(Finding::fail(
                    "secret",
                    format!(
                        "`{}` is set in `{}`, not in `{}`; move it there",
                        secret.name,
                        setting.span.source,
                        secrets_path(env)
                    ),
                ));
            }
        }
    }
    out.extend(file_checks(&loaded.config.project_dir, env));
    out
}

/// Why a value is weak, if it is.
pub fn weakness(name: &str, value: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    if WEAK.contains(&lower.as_str()) || lower == name.to_ascii_lowercase() {
        return Some("a well-known default".into());
    }
    if value.chars().count() < MIN_LENGTH {
        return Some(format!("shorter than {MIN_LENGTH} characters"));
    }
    let distinct: std::collections::BTreeSet<char> = value.chars().collect();
    if distinct.len() < 6 {
        return Some("too few distinct characters".into());
    }
    None
}

/// The secrets file is private (0600) and not tracked by git.
pub fn file_checks(dir: &Path, env: &str) -> Vec<Finding> {
    let rel = secrets_path(env);
    let path = dir.join(&rel);
    let mut out = Vec::new();
    if let Ok(meta) = std::fs::metadata(&path) {
        {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                out.push(Finding::fail(
                    "secrets-file",
                    format!("`{rel}` has mode {mode:04o}; run `chmod 600 {rel}`"),
                ));
            } else {
                out.push(Finding::pass(
                    "secrets-file",
                    format!("`{rel}` has mode {mode:04o}"),
                ));
            }
            if tracked_by_git(dir, &rel) {
                out.push(Finding::fail(
                    "secrets-file",
                    format!("`{rel}` is tracked by git; run `git rm --cached {rel}` and rotate its secrets"),
                ));
            }
        }
    }
    out
}

fn tracked_by_git(dir: &Path, rel: &str) -> bool {
    std::process::Command::new("git")
        .args(["ls-files", "--error-unmatch", "--", rel])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Print findings; exit 1 when one failed.
pub fn report(context: &Context, env: &str, what: &str, findings: &[Finding]) -> Result<()> {
    let failed = findings.iter().filter(|f| !f.ok).count();
    if context.global.json {
        context
            .printer
            .json(&json!({"env": env, "ok": failed == 0, "findings": findings}));
    } else {
        for finding in findings {
            let mark = if finding.ok {
                context.printer.paint("ok  ", crate::printer::Paint::Green)
            } else {
                context.printer.paint("FAIL", crate::printer::Paint::Red)
            };
            if !finding.ok || !context.global.quiet {
                eprintln_safe(&format!("{mark} {}", finding.message));
            }
        }
    }
    if failed == 0 {
        context.printer.status(format!("{what} of `{env}` passed"));
        Ok(())
    } else {
        Err(Error::No(format!(
            "{what} of `{env}` failed: {failed} problem(s)"
        )))
    }
}

fn eprintln_safe(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
