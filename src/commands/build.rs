//! `stack build`: render the bundle and write it atomically, or `--check` it.

use std::path::PathBuf;

use serde_json::json;

use super::{default_out, display_path, Context};
use crate::cli::BuildArgs;
use crate::error::{Error, Result};
use crate::render::{self, Bundle};

pub fn run(context: &Context, args: &BuildArgs) -> Result<()> {
    let env = context.env();
    let loaded = context.load_with_secrets(&env)?;
    let dir = loaded.config.project_dir.clone();
    let out = match &args.out {
        Some(out) => absolute(out)?,
        None => default_out(&dir, &env),
    };
    crate::fsio::check_out_dir(&out, &dir)?;
    let bundle = render::render(&loaded.config, &out)?;
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

/// Files that differ between `bundle` and `dir`, each with a unified diff (secrets
/// files are named, never shown).
pub fn diff(bundle: &Bundle, dir: &std::path::Path) -> Result<Vec<(String, String)>> {
    let on_disk = crate::fsio::read_tree(dir)?;
    let mut out = Vec::new();
    for (path, file) in &bundle.files {
        let old = on_disk.iter().find(|(p, _, _)| p == path);
        let old_text = old.map(|(_, bytes, _)| String::from_utf8_lossy(bytes).into_owned());
        let same_text = old_text.as_deref() == Some(file.contents.as_str());
        let same_mode = old.is_some_and(|(_, _, mode)| *mode == file.mode);
        if same_text && same_mode {
            continue;
        }
        let text = if file.secret {
            format!("secrets file `{path}` differs (contents not shown)\n")
        } else if same_text {
            format!(
                "`{path}`: mode is {:o}, should be {:o}\n",
                old.map(|o| o.2).unwrap_or(0),
                file.mode
            )
        } else {
            similar::TextDiff::from_lines(old_text.as_deref().unwrap_or(""), &file.contents)
                .unified_diff()
                .header(&format!("a/{path}"), &format!("b/{path}"))
                .to_string()
        };
        out.push((path.clone(), text));
    }
    for (path, bytes, _) in &on_disk {
        if !bundle.files.contains_key(path) {
            let text = if path == render::SECRETS_FILE {
                format!("secrets file `{path}` should not exist\n")
            } else {
                similar::TextDiff::from_lines(String::from_utf8_lossy(bytes).as_ref(), "")
                    .unified_diff()
                    .header(&format!("a/{path}"), "/dev/null")
                    .to_string()
            };
            out.push((path.clone(), text));
        }
    }
    Ok(out)
}
