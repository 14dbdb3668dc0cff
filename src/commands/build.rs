//! `stack build`: render the bundle and write it atomically, or `--check` it.

use std::path::PathBuf;

use serde_json::json;

use super::{default_out, diff, display_path, Context};
use crate::cli::BuildArgs;
use crate::error::{Error, Result};

pub fn run(context: &Context, args: &BuildArgs) -> Result<()> {
    let env = context.env();
    // `--out` is checked before the project is loaded: loading a dev project may write
    // generated secrets, and a command that exits 2 writes nothing.
    let dir = context.project_dir()?;
    let out = match &args.out {
        Some(out) => absolute(out)?,
        None => default_out(&dir, &env),
    };
    crate::fsio::check_out_dir(&out, &dir)?;
    if std::fs::symlink_metadata(&out).is_ok_and(|m| !m.is_dir()) {
        return Err(crate::error::Diagnostic::new(format!(
            "`{}` exists and is not a directory",
            out.display()
        ))
        .hint("choose another `--out`")
        .into());
    }
    let loaded = context.load_with_secrets(&env)?;
    let dir = loaded.config.project_dir.clone();
    if let (Some(command), false) = (&loaded.config.hooks.pre_build, args.check) {
        let hook = super::Hook {
            name: "pre-build",
            command,
            release: "",
        };
        super::run_hook(context, &loaded.config, &hook)?;
    }
    let (bundle, desired) = super::bundle_of(&loaded.config, &out)?;
    warn_exposed_contexts(context, &desired, &dir)?;
    let shown = display_path(&dir, &out);
    if args.check {
        let stale = diff(&bundle, &out)?;
        if context.global.json {
            context.printer.json(&json!({"env": env, "out": out, "stale": !stale.is_empty(), "files": stale.iter().map(|(p, _)| p).collect::<Vec<_>>()}));
        }
        if stale.is_empty() {
            context
                .printer
                .status(format!("bundle `{shown}` is up to date"));
            return Ok(());
        }
        if !context.global.json {
            for (_, text) in &stale {
                context.printer.out(text);
            }
        }
        return Err(Error::No(format!(
            "bundle `{shown}` is stale ({} file(s) differ); run `stack build --env {env}`",
            stale.len()
        )));
    }
    crate::fsio::write_bundle(&bundle, &out)?;
    if context.global.json {
        context.printer.json(&json!({
            "env": env,
            "out": out,
            "files": bundle.files.keys().collect::<Vec<_>>(),
        }));
    }
    context.printer.status(format!(
        "built `{shown}` for `{env}`: {} file(s), {} service(s)",
        bundle.files.len(),
        loaded.config.services.len()
    ));
    Ok(())
}

fn absolute(path: &std::path::Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(crate::config::normalize_path(path));
    }
    let cwd =
        std::env::current_dir().map_err(|e| Error::io("read", std::path::Path::new("."), e))?;
    Ok(crate::config::normalize_path(&cwd.join(path)))
}

/// Warn about a `BUILD` context that holds the project's secret files without its
/// `.dockerignore` excluding them: stack leaves them out of what it builds, but
/// `docker compose build` on the bundle would send them (names only, never contents).
fn warn_exposed_contexts(
    context: &Context,
    desired: &crate::model::Desired,
    project_dir: &std::path::Path,
) -> Result<()> {
    for service in &desired.services {
        let Some(build) = &service.build else {
            continue;
        };
        let exposed = crate::engine::context::exposed(&build.context, project_dir)?;
        if exposed.is_empty() {
            continue;
        }
        let shown: Vec<String> = exposed.iter().map(|p| format!("`{p}`")).collect();
        context.printer.warn(
            &crate::error::Diagnostic::new(format!(
                "service `{}`: its build context holds secret files its `.dockerignore` does not exclude: {}",
                service.name,
                shown.join(", ")
            ))
            .hint(
                "stack leaves them out of the images it builds, but `docker compose build` would send them; \
                 add them to the context's `.dockerignore`",
            ),
        );
    }
    Ok(())
}
