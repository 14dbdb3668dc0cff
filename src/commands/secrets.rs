//! `stack secrets generate ENV` and `stack secrets check ENV`.

use serde_json::json;

use super::Context;
use crate::cli::{EnvArg, SecretsCommand};
use crate::config::Loaded;
use crate::error::{Error, Result};
use crate::project::secrets_path;

/// Length of a generated secret (alphanumeric: safe in URLs, shells and env files).
pub const SECRET_LENGTH: usize = 40;
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

/// The secrets file with a value appended for every missing secret: existing lines are
/// kept byte for byte. Nothing is written: see [`write`].
pub struct Generated {
    pub path: std::path::PathBuf,
    pub text: Vec<u8>,
    /// The names generated.
    pub names: Vec<String>,
}

/// The environment's secrets file with a value for every missing secret, or `None` when
/// none is missing.
pub fn generate_missing(loaded: &Loaded) -> Result<Option<Generated>> {
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
        return Ok(None);
    }
    let mut text =
        match crate::fsio::read_bounded(&path, crate::project::syntax::MAX_FILE_BYTES as u64) {
            Ok(bytes) => bytes,
            Err(crate::fsio::ReadError::Missing) => format!(
                "# Secrets of environment `{env}`. Never commit this file; keep it mode 0600.\n"
            )
            .into_bytes(),
            Err(other) => return Err(other.into_error(&secrets_path(env), &path)),
        };
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    for name in &missing {
        // A `BASIC_AUTH` secret holds a bcrypt hash: of a random password here, so the
        // route stays closed until someone sets their own (`htpasswd -nbB user pass`).
        let hashed = loaded
            .config
            .services
            .iter()
            .any(|s| s.basic_auth.as_ref().is_some_and(|b| &b.key == name));
        let value = if hashed {
            let hash = bcrypt::hash(random_secret()?, 10)
                .map_err(|e| Error::outside(format!("cannot hash a generated password: {e}")))?;
            format!("'{hash}'")
        } else {
            random_secret()?
        };
        text.extend_from_slice(format!("{name}={value}\n").as_bytes());
    }
    Ok(Some(Generated {
        path,
        text,
        names: missing,
    }))
}

/// Save the secrets file (0600), its folder created if needed.
pub fn write(generated: &Generated) -> Result<()> {
    if let Some(folder) = generated.path.parent() {
        std::fs::create_dir_all(folder).map_err(|e| Error::io("create", folder, e))?;
    }
    crate::fsio::write_file(&generated.path, &generated.text, 0o600)
}

pub fn run(context: &Context, command: &SecretsCommand) -> Result<()> {
    match command {
        SecretsCommand::Generate(EnvArg { env }) => {
            let env = &context.env_or(env);
            let loaded = context.load_secrets(env)?;
            let generated = context.generate_secrets(&loaded)?.1;
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
            let loaded = context.load_secrets(env)?;
            let findings = crate::audit::secrets(&loaded);
            super::report(context, env, "secrets check", &findings)
        }
    }
}
