//! `stack import compose FILE [DIR]` and `stack import nself SOURCE [DIR]`: the I/O around
//! the pure translation in [`crate::import`]. Reads the inputs with a bound, refuses to
//! replace a project, writes `stack.env` and the 0600 secrets files, checks the written
//! project with the configuration reader, and removes what it wrote when that fails.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::Context;
use crate::cli::{ImportCommand, ImportComposeArgs, ImportNselfArgs};
use crate::error::{Diagnostic, Error, Result};
use crate::fsio::{read_bounded, write_file, ReadError};
use crate::import::{self, Imported, Reader};

/// The most an input file of an import may hold.
pub const MAX_INPUT_BYTES: u64 = crate::project::syntax::MAX_FILE_BYTES as u64;

pub fn run(context: &Context, command: &ImportCommand) -> Result<()> {
    match command {
        ImportCommand::Compose(args) => compose(context, args),
        ImportCommand::Nself(args) => nself(context, args),
    }
}

/// The names Compose looks for in a folder, in its order, and their overrides.
const DEFAULT_FILES: &[(&str, &str)] = &[
    ("compose.yaml", "compose.override.yaml"),
    ("compose.yml", "compose.override.yml"),
    ("docker-compose.yml", "docker-compose.override.yml"),
    ("docker-compose.yaml", "docker-compose.override.yaml"),
];

/// The Compose files to read, in order: `-f` files as given; else FILE (or the default
/// file of the folder FILE) and its override beside it, as `docker compose` finds them.
fn compose_files(args: &ImportComposeArgs) -> Result<(Vec<PathBuf>, Option<PathBuf>)> {
    if !args.files.is_empty() {
        if args.dir.is_some() {
            return Err(Diagnostic::new(
                "with `-f`, `stack import compose` takes one more argument, the project directory",
            )
            .hint("write `stack import compose -f a.yml -f b.yml DIR`")
            .into());
        }
        let files = args
            .files
            .iter()
            .map(|f| absolute(f))
            .collect::<Result<Vec<_>>>()?;
        return Ok((files, args.file.clone()));
    }
    let Some(file) = &args.file else {
        return Err(Diagnostic::new("`stack import compose` needs the Compose file to read")
            .hint("write `stack import compose docker-compose.yml [DIR]`, or `-f FILE` (repeatable)")
            .into());
    };
    let mut file = absolute(file)?;
    if file.is_dir() {
        let found = DEFAULT_FILES
            .iter()
            .map(|(name, _)| file.join(name))
            .find(|path| path.is_file());
        match found {
            Some(found) => file = found,
            None => {
                return Err(Diagnostic::new(format!(
                    "`{}` is a folder without `compose.yaml`, `compose.yml`, `docker-compose.yml` or `docker-compose.yaml`",
                    file.display()
                ))
                .hint("name the Compose file to import")
                .into())
            }
        }
    }
    let mut files = vec![file.clone()];
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    if let Some((_, over)) = DEFAULT_FILES
        .iter()
        .find(|(base, _)| Some(*base) == name.as_deref())
    {
        let over = file.with_file_name(over);
        if std::fs::symlink_metadata(&over).is_ok() {
            files.push(over);
        }
    }
    Ok((files, args.dir.clone()))
}

fn compose(context: &Context, args: &ImportComposeArgs) -> Result<()> {
    let (mut files, dir) = compose_files(args)?;
    let file = files.remove(0);
    let dir = target_dir(context, &dir)?;
    let options = import::compose::Options {
        file,
        project_dir: dir.clone(),
        routes: args.routes,
        caddyfile: args.caddyfile.as_deref().map(absolute).transpose()?,
        home: std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from),
        extra_files: files,
        profiles: args.profiles.clone(),
    };
    let imported = import::compose::import(&FileReader, &options)?;
    finish(context, &dir, imported, args.strict)
}

fn nself(context: &Context, args: &ImportNselfArgs) -> Result<()> {
    let source = absolute(&args.source)?;
    let dir = target_dir(context, &args.dir)?;
    let imported = import::nself::import(&FileReader, &source, &dir)?;
    finish(context, &dir, imported, args.strict)
}

/// `path` made absolute against the working directory.
fn absolute(path: &Path) -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| Error::io("read", Path::new("."), e))?;
    Ok(import::normalise(&cwd.join(path)))
}

/// The project directory to write, created when missing.
fn target_dir(context: &Context, dir: &Option<PathBuf>) -> Result<PathBuf> {
    let dir = dir
        .clone()
        .unwrap_or_else(|| context.global.project_dir.clone());
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    dir.canonicalize().map_err(|e| Error::io("open", &dir, e))
}

/// Reads input files with a bound; a directory, a pipe or a device is refused.
struct FileReader;

impl Reader for FileReader {
    fn read(&self, path: &Path) -> Result<Option<String>> {
        let shown = path.display().to_string();
        match read_bounded(path, MAX_INPUT_BYTES) {
            Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
                Diagnostic::new(format!("`{shown}` is not UTF-8 text"))
                    .hint("save the file as UTF-8")
                    .into()
            }),
            Err(ReadError::Missing) => Ok(None),
            Err(ReadError::TooLarge { size, limit }) => Err(Diagnostic::new(match size {
                Some(size) => format!(
                    "`{shown}` is {size} bytes; an input of an import may be at most {limit}"
                ),
                None => format!(
                    "`{shown}` is larger than {limit} bytes, the most an input of an import may be"
                ),
            })
            .hint("a Compose file or an env file holds a few kilobytes")
            .into()),
            Err(other) => Err(other.into_error(&shown, path)),
        }
    }

    fn folders(&self, dir: &Path) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .take(1000)
            .collect();
        out.sort();
        out
    }
}

/// Refuse, write, check, report.
fn finish(context: &Context, dir: &Path, imported: Imported, strict: bool) -> Result<()> {
    for file in &imported.files {
        let path = dir.join(&file.path);
        if std::fs::symlink_metadata(&path).is_ok() {
            return Err(Diagnostic::new(format!(
                "`{}` already exists; import never replaces a project",
                path.display()
            ))
            .hint("import into a new or empty directory: `stack import compose FILE DIR`")
            .into());
        }
    }
    let not_carried = imported.not_carried().count();
    if strict && not_carried > 0 {
        print_findings(context, &imported);
        return Err(Diagnostic::new(format!(
            "{not_carried} thing(s) of the input are not carried (`--strict`); nothing was written"
        ))
        .hint("drop `--strict` to import the rest, and carry these by hand")
        .into());
    }
    let mut imported = imported;
    ignore_secrets(context, dir, &mut imported)?;
    let written = write_all(dir, &imported)?;
    if let Err(err) = check(dir) {
        remove(&written);
        return Err(err);
    }
    if context.global.json {
        context.printer.json(&json!({
            "dir": dir,
            "project": imported.project,
            "services": imported.services,
            "renamed": imported.renamed,
            "files": imported.files.iter().map(|f| &f.path).collect::<Vec<_>>(),
            "secrets": imported.secrets,
            "findings": imported.findings,
            "not_carried": not_carried,
        }));
    } else {
        print_findings(context, &imported);
    }
    let files: Vec<String> = imported
        .files
        .iter()
        .map(|f| format!("`{}`", f.path))
        .collect();
    context.printer.status(format!(
        "imported {} service(s) into `{}`: wrote {}; {} secret(s); {not_carried} not carried; next: `stack build`",
        imported.services.len(),
        dir.display(),
        files.join(", "),
        imported.secrets.len(),
    ));
    Ok(())
}

fn print_findings(context: &Context, imported: &Imported) {
    if context.global.json {
        return;
    }
    for finding in &imported.findings {
        // A key that names its file and line (`.env.dev:16`) needs no place before it.
        let named = finding
            .line
            .is_some_and(|line| finding.key.ends_with(&format!(":{line}")));
        let place = match (&finding.service, finding.line) {
            (None, _) if named => String::new(),
            (Some(service), Some(line)) => format!("service `{service}` (line {line})"),
            (Some(service), None) => format!("service `{service}`"),
            (None, Some(line)) => format!("line {line}"),
            (None, None) => "top level".into(),
        };
        let what = if finding.not_carried {
            context
                .printer
                .paint("not carried", crate::printer::Paint::Yellow)
        } else {
            "note".into()
        };
        let place = if place.is_empty() {
            place
        } else {
            format!("{place}: ")
        };
        context.printer.status(format!(
            "{what}: {place}`{}`: {}",
            finding.key, finding.reason
        ));
    }
}

/// A `.gitignore` when the directory has none; a warning when one exists and does not
/// name the secrets files.
fn ignore_secrets(context: &Context, dir: &Path, imported: &mut Imported) -> Result<()> {
    let path = dir.join(".gitignore");
    match read_bounded(&path, MAX_INPUT_BYTES) {
        Err(ReadError::Missing) => imported.files.push(import::OutFile {
            path: ".gitignore".into(),
            contents: crate::project::ignore_file(
                "rendered bundles, secrets, database dumps and personal overrides stay out of git",
            ),
            mode: 0o644,
        }),
        Ok(bytes) => {
            if !String::from_utf8_lossy(&bytes).contains("secrets.env") {
                context.printer.warn(
                    &Diagnostic::new("`.gitignore` does not ignore the secrets files")
                        .hint("add `environments/*/secrets.env` to `.gitignore` before committing"),
                );
            }
        }
        Err(other) => return Err(other.into_error(".gitignore", &path)),
    }
    Ok(())
}

/// Write every file (secrets first), creating folders; returns what was created, for a
/// removal when a later step fails.
fn write_all(dir: &Path, imported: &Imported) -> Result<Vec<PathBuf>> {
    let mut created: Vec<PathBuf> = Vec::new();
    let mut files: Vec<&import::OutFile> = imported.files.iter().collect();
    // Secrets first, so a project file never names secrets that were not written.
    files.sort_by_key(|f| f.mode != 0o600);
    for file in files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            let mut missing = Vec::new();
            let mut folder = parent.to_path_buf();
            while !folder.exists() && folder.starts_with(dir) {
                missing.push(folder.clone());
                folder.pop();
            }
            if let Err(e) = std::fs::create_dir_all(parent) {
                remove(&created);
                return Err(Error::io("create", parent, e));
            }
            created.extend(missing.into_iter().rev());
        }
        if let Err(err) = write_file(&path, file.contents.as_bytes(), file.mode) {
            remove(&created);
            return Err(err);
        }
        created.push(path);
    }
    Ok(created)
}

/// Remove files, then the folders, that this import created (newest first).
fn remove(created: &[PathBuf]) {
    for path in created.iter().rev() {
        if path.is_dir() {
            let _ = std::fs::remove_dir(path);
        } else {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Read the written project as `stack build` would, in every environment it has.
fn check(dir: &Path) -> Result<()> {
    let mut envs = vec!["dev".to_string()];
    if let Ok(entries) = std::fs::read_dir(dir.join("environments")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !envs.contains(&name) && entry.path().is_dir() {
                envs.push(name);
            }
        }
    }
    for env in envs {
        let options = crate::config::Options::default();
        if let Err(err) =
            crate::config::load(dir, &env, &[], &options, |name| std::env::var(name).ok())
        {
            return Err(match err {
                Error::Invalid(mut diagnostics) => {
                    if let Some(first) = diagnostics.first_mut() {
                        first.hint = Some(format!(
                            "the imported project does not read back in `{env}`; nothing was \
                             written. This is a gap in `stack import`: please report it with the input"
                        ));
                    }
                    Error::Invalid(diagnostics)
                }
                other => other,
            });
        }
    }
    Ok(())
}
