//! `stack init [DIR]`: scaffold a project. Questions on a terminal; flags and
//! defaults everywhere else (`--yes`, CI, no terminal).

use std::io::IsTerminal;
use std::path::Path;

use serde_json::json;

use super::Context;
use crate::cli::InitArgs;
use crate::config::values::check_name;
use crate::error::{Diagnostic, Error, Result};
use crate::fsio::write_file;

const PROJECT_FILE: &str = crate::project::PROJECT_FILE;
const GITIGNORE: &str = ".gitignore";
const DOCKERIGNORE: &str = ".dockerignore";

/// The presets `init` offers: those `--presets` takes.
fn preset_names() -> Vec<&'static str> {
    use clap::ValueEnum;
    crate::cli::PresetArg::value_variants()
        .iter()
        .map(|p| p.as_str())
        .collect()
}

struct Answers {
    name: String,
    domain: String,
    proxy: String,
    image: String,
    /// As typed: checked by [`validate`] with the project file's parser.
    port: String,
    presets: Vec<String>,
}

pub fn run(context: &Context, args: &InitArgs) -> Result<()> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| context.global.project_dir.clone());
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    let dir = dir.canonicalize().map_err(|e| Error::io("open", &dir, e))?;
    if dir.join("stack.env").exists() && !args.force {
        return Err(
            Diagnostic::new(format!("`{}` already has a stack.env", dir.display()))
                .hint("pass `--force` to replace it")
                .into(),
        );
    }
    let interactive =
        !context.global.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let mut answers = defaults(&dir, args);
    if interactive {
        ask(&mut answers)?;
    }
    validate(&answers)?;
    let files = scaffold(&answers);
    let mut written = Vec::new();
    for (path, contents, mode) in &files {
        let target = dir.join(path);
        // `--force` replaces the project file only; the user's other files are kept.
        let contents = if *path == GITIGNORE {
            match read_existing(&target)? {
                Some(existing) => match with_ignore_lines(&existing, contents) {
                    Some(merged) => merged,
                    None => continue,
                },
                None => contents.clone(),
            }
        } else if *path != PROJECT_FILE && target.exists() {
            continue;
        } else {
            contents.clone()
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        write_file(&target, contents.as_bytes(), *mode)?;
        written.push(*path);
    }
    if context.global.json {
        context.printer.json(&json!({
            "dir": dir,
            "project": answers.name,
            "files": written,
        }));
    }
    context.printer.status(format!(
        "created project `{}` in `{}`; next: `stack build`, then `stack start`",
        answers.name,
        dir.display()
    ));
    Ok(())
}

/// The text of a file the user may already have, `None` when there is none.
fn read_existing(path: &Path) -> Result<Option<String>> {
    match crate::fsio::read_bounded(path, crate::project::syntax::MAX_FILE_BYTES as u64) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(crate::fsio::ReadError::Missing) => Ok(None),
        Err(other) => Err(other.into_error(GITIGNORE, path)),
    }
}

/// `existing` with the lines of `ours` it lacks appended (`None` when it lacks none).
/// `/.stack/`, `.stack` and `.stack/` are the same pattern here.
fn with_ignore_lines(existing: &str, ours: &str) -> Option<String> {
    let normal = |line: &str| {
        line.trim()
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string()
    };
    let present: std::collections::BTreeSet<String> = existing.lines().map(normal).collect();
    let missing: Vec<&str> = ours
        .lines()
        .filter(|line| !line.starts_with('#') && !present.contains(&normal(line)))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut merged = existing.to_string();
    if !merged.is_empty() && !merged.ends_with('\n') {
        merged.push('\n');
    }
    if !merged.is_empty() {
        merged.push('\n');
    }
    merged.push_str(ours.lines().next().unwrap_or_default());
    merged.push('\n');
    for line in missing {
        merged.push_str(line);
        merged.push('\n');
    }
    Some(merged)
}

fn defaults(dir: &Path, args: &InitArgs) -> Answers {
    let from_dir: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_start_matches(['-', '_'])
        .to_string();
    Answers {
        name: args.name.clone().unwrap_or(if from_dir.is_empty() {
            "app".into()
        } else {
            from_dir
        }),
        domain: args.domain.clone().unwrap_or_else(|| "localhost".into()),
        proxy: args
            .proxy
            .map_or("caddy", crate::cli::ProxyArg::as_str)
            .into(),
        image: args
            .image
            .clone()
            .unwrap_or_else(|| "traefik/whoami:v1.10".into()),
        port: args
            .port
            .map_or_else(|| "80".into(), |port| port.to_string()),
        presets: args
            .presets
            .iter()
            .flatten()
            .map(|p| p.as_str().to_string())
            .collect(),
    }
}

fn ask(answers: &mut Answers) -> Result<()> {
    use dialoguer::{Input, MultiSelect, Select};
    let failed = |e: dialoguer::Error| Error::outside(format!("cannot read the answer: {e}"));
    answers.name = Input::new()
        .with_prompt("Project name")
        .default(answers.name.clone())
        .interact_text()
        .map_err(failed)?;
    answers.domain = Input::new()
        .with_prompt("Base domain")
        .default(answers.domain.clone())
        .interact_text()
        .map_err(failed)?;
    let proxies = ["caddy", "nginx", "none"];
    let current = proxies
        .iter()
        .position(|p| *p == answers.proxy)
        .unwrap_or(0);
    let index = Select::new()
        .with_prompt("Reverse proxy")
        .items(&proxies)
        .default(current)
        .interact()
        .map_err(failed)?;
    answers.proxy = proxies[index].into();
    answers.image = Input::new()
        .with_prompt("Image of your app")
        .default(answers.image.clone())
        .interact_text()
        .map_err(failed)?;
    answers.port = Input::new()
        .with_prompt("Port your app listens on")
        .default(answers.port.clone())
        .interact_text()
        .map_err(failed)?;
    let names = preset_names();
    let checked: Vec<bool> = names
        .iter()
        .map(|p| answers.presets.iter().any(|a| a == p))
        .collect();
    let chosen = MultiSelect::new()
        .with_prompt("Presets (space to toggle)")
        .items(&names)
        .defaults(&checked)
        .interact()
        .map_err(failed)?;
    answers.presets = chosen.into_iter().map(|i| names[i].to_string()).collect();
    Ok(())
}

fn validate(answers: &Answers) -> Result<()> {
    if !check_name(&answers.name, "_-") {
        return Err(
            Diagnostic::new(format!("invalid project name `{}`", answers.name))
                .hint("use lower-case letters, digits, `-` and `_`; pass `--name`")
                .into(),
        );
    }
    if !crate::config::validate_hostname(&answers.domain) {
        return Err(
            Diagnostic::new(format!("invalid domain `{}`", answers.domain))
                .hint("pass `--domain example.com`")
                .into(),
        );
    }
    // The project file's own checks, so `init` never writes what `build` refuses.
    crate::config::check_image("--image", &answers.image)?;
    crate::config::check_port("--port", &answers.port)?;
    for preset in &answers.presets {
        if !preset_names().contains(&preset.as_str()) {
            return Err(Diagnostic::new(format!("unknown preset `{preset}`"))
                .hint(format!("presets: {}", preset_names().join(", ")))
                .into());
        }
    }
    Ok(())
}

/// The project file `init` writes: the answers, a `web` service and the presets.
fn project_file(answers: &Answers) -> String {
    let Answers {
        name,
        domain,
        proxy,
        image,
        port,
        presets,
    } = answers;
    let mut project = format!(
        "# stack project file: one KEY=VALUE per line. See the README for every key.\n\
         STACK_PROJECT={name}\n\
         STACK_DOMAIN={domain}\n\
         STACK_PROXY={proxy}\n\
         STACK_SERVICES=web\n\
         \n\
         SERVICE_WEB_IMAGE={image}\n\
         SERVICE_WEB_PORT={port}\n",
        image = image.trim(),
        port = port.trim(),
    );
    if proxy != "none" {
        project.push_str("SERVICE_WEB_ROUTE=${STACK_DOMAIN}\n");
    } else {
        project.push_str(&format!("SERVICE_WEB_PUBLISH=8080:{}\n", port.trim()));
    }
    project.push_str("SERVICE_WEB_ENV_LOG_LEVEL=${STACK_LOG_LEVEL}\n");
    for preset in presets {
        project.push_str(&format!("\n{}_ENABLED=true\n", preset.to_ascii_uppercase()));
    }
    if presets.iter().any(|p| p == "postgres") {
        project.push_str(
            "SERVICE_WEB_DEPENDS_ON=postgres\n\
             SERVICE_WEB_ENV_DATABASE_URL=postgres://${POSTGRES_USER}:${POSTGRES_PASSWORD}@postgres:5432/${POSTGRES_DB}\n",
        );
    }
    project
}

/// The overlay of `env`: its domain and TLS contact.
fn overlay_file(name: &str, env: &str) -> String {
    format!(
        "# Overrides for `{env}`; keys here win over stack.env.\n\
         STACK_DOMAIN={}\n\
         STACK_TLS_EMAIL=ops@{}\n",
        if env == "prod" {
            format!("{name}.example.com")
        } else {
            format!("{env}.{name}.example.com")
        },
        "example.com"
    )
}

/// The server file of `env`: the VM `stack deploy` ships to.
fn server_file(name: &str, env: &str) -> String {
    format!(
        "# The VM `stack deploy {env}` ships to. SSH honours ~/.ssh/config and the agent.\n\
         SERVER_HOST={env}.{name}.example.com\n\
         SERVER_USER=deploy\n\
         # SERVER_PORT=22\n\
         # SERVER_PATH=/opt/{name}\n"
    )
}

/// The files `init` writes: path, text and mode.
fn scaffold(answers: &Answers) -> Vec<(&'static str, String, u32)> {
    let name = &answers.name;
    let project = project_file(answers);
    let overlay = |env: &str| overlay_file(name, env);
    let server = |env: &str| server_file(name, env);
    vec![
        (PROJECT_FILE, project, 0o644),
        ("environments/staging/stack.env", overlay("staging"), 0o644),
        ("environments/staging/server.env", server("staging"), 0o644),
        ("environments/prod/stack.env", overlay("prod"), 0o644),
        ("environments/prod/server.env", server("prod"), 0o644),
        (
            GITIGNORE,
            crate::project::ignore_file(
                "rendered bundles, secrets, database dumps and personal overrides stay out of git",
            ),
            0o644,
        ),
        // Written only when there is none: stack leaves these files out of the contexts
        // it sends anyway; this covers `docker build` and `docker compose build`.
        (
            DOCKERIGNORE,
            crate::project::ignore_file(
                "rendered bundles, secrets, personal overrides and backups stay out of images",
            ),
            0o644,
        ),
    ]
}
