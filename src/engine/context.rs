//! A build context as the tar stream the engine expects, honouring `.dockerignore`, and
//! never holding stack's own secret-bearing files (whatever `.dockerignore` says).

use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};

use crate::error::{Diagnostic, Error, Result};

use crate::project::SECRET_PATHS;

/// The largest `.dockerignore` read.
const MAX_DOCKERIGNORE_BYTES: u64 = 1024 * 1024;

/// One `.dockerignore` rule; later rules win, `!` re-includes.
struct Rule {
    matcher: GlobMatcher,
    include: bool,
}

fn rules(context: &Path) -> Result<Vec<Rule>> {
    let path = context.join(".dockerignore");
    let text = match crate::fsio::read_bounded(&path, MAX_DOCKERIGNORE_BYTES) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(crate::fsio::ReadError::Missing) => return Ok(Vec::new()),
        Err(other) => return Err(other.into_error(&path.display().to_string(), &path)),
    };
    Ok(parse_rules(text.lines()))
}

fn parse_rules<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<Rule> {
    lines
        .into_iter()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let (include, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
            let pattern = pattern.trim_end_matches('/');
            Glob::new(pattern).ok().map(|g| Rule {
                matcher: g.compile_matcher(),
                include,
            })
        })
        .collect()
}

/// `.dockerignore`-style patterns from elsewhere (those BuildKit asks the context for).
pub struct Patterns(Vec<Rule>);

impl Patterns {
    pub fn new<'a>(lines: impl IntoIterator<Item = &'a str>) -> Patterns {
        Patterns(parse_rules(lines))
    }

    /// The last rule matching the path or one of its parents is not a `!` rule.
    pub fn matches(&self, rel: &Path) -> bool {
        excluded(&self.0, rel)
    }
}

/// Excluded when the last matching rule (on the path or a parent) excludes it.
fn excluded(rules: &[Rule], rel: &Path) -> bool {
    let mut verdict = false;
    for rule in rules {
        let hit = rel
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty())
            .any(|a| rule.matcher.is_match(a));
        if hit {
            verdict = !rule.include;
        }
    }
    verdict
}

/// `inner` (a path relative to a project directory) is one of [`SECRET_PATHS`].
pub fn is_secret_path(inner: &Path) -> bool {
    let parts: Vec<&std::ffi::OsStr> = inner.iter().collect();
    SECRET_PATHS.iter().any(|pattern| {
        let want: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
        want.len() == parts.len()
            && want
                .iter()
                .zip(&parts)
                .all(|(w, p)| *w == "*" || std::ffi::OsStr::new(w) == *p)
    })
}

/// A directory of stack's: a project (holds a `stack.env` file) or a rendered bundle
/// (holds a manifest).
fn holds_file(dir: &Path, name: &str) -> bool {
    std::fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.is_file())
}

/// A build context packed: the tar, and the secret-bearing paths stack left out that
/// `.dockerignore` did not (relative to the context; for the warning).
pub struct Packed {
    pub tar: Vec<u8>,
    pub withheld: Vec<String>,
}

/// One path of a build context, as the walk found it (never followed through a symlink).
pub struct Entry {
    /// Relative to the context, `/`-separated.
    pub rel: PathBuf,
    pub path: PathBuf,
    pub meta: std::fs::Metadata,
}

/// What a build context holds: every path sent, parents before children and siblings
/// sorted by name (the order BuildKit's file sync expects), and the withheld secrets.
pub struct Walked {
    pub entries: Vec<Entry>,
    pub withheld: Vec<String>,
}

/// Walk the context directory: `.dockerignore` honoured, and every project directory in
/// it (the context itself or one below) has its [`SECRET_PATHS`] left out, and every
/// rendered bundle directory as a whole, whatever `.dockerignore` says.
pub fn walk(context: &Path) -> Result<Walked> {
    if !context.is_dir() {
        return Err(Diagnostic::new(format!(
            "build context `{}` is not a directory",
            context.display()
        ))
        .hint("fix `SERVICE_<NAME>_BUILD`")
        .into());
    }
    let rules = rules(context)?;
    let mut walked = Walked {
        entries: Vec::new(),
        withheld: Vec::new(),
    };
    // Project directories found so far, relative to the context ("" for the context).
    let mut projects: Vec<PathBuf> = Vec::new();
    walk_dir(context, context, &rules, &mut projects, &mut walked)?;
    walked.withheld.sort();
    Ok(walked)
}

fn walk_dir(
    context: &Path,
    dir: &Path,
    rules: &[Rule],
    projects: &mut Vec<PathBuf>,
    walked: &mut Walked,
) -> Result<()> {
    if holds_file(dir, crate::project::PROJECT_FILE) {
        projects.push(dir.strip_prefix(context).unwrap_or(dir).to_path_buf());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("read", dir, e))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let rel = path.strip_prefix(context).unwrap_or(&path).to_path_buf();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io("read", &path, e))?;
        let secret = projects
            .iter()
            .any(|p| rel.strip_prefix(p).is_ok_and(is_secret_path))
            || (meta.is_dir() && holds_file(&path, crate::fsio::MANIFEST));
        let keep_anyway = rel == Path::new("Dockerfile") || rel == Path::new(".dockerignore");
        let ignored = !keep_anyway && excluded(rules, &rel);
        if secret {
            if !ignored {
                walked.withheld.push(rel.display().to_string());
            }
            continue;
        }
        if ignored {
            continue;
        }
        let is_dir = meta.is_dir();
        walked.entries.push(Entry {
            rel,
            path: path.clone(),
            meta,
        });
        if is_dir {
            walk_dir(context, &path, rules, projects, walked)?;
        }
    }
    Ok(())
}

/// The context directory as an uncompressed tar (what [`walk`] finds).
pub fn tar(context: &Path) -> Result<Packed> {
    let walked = walk(context)?;
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    for entry in &walked.entries {
        if entry.meta.is_dir() {
            builder.append_dir(&entry.rel, &entry.path)
        } else {
            builder.append_path_with_name(&entry.path, &entry.rel)
        }
        .map_err(|e| Error::io("pack", &entry.path, e))?;
    }
    let tar = builder
        .into_inner()
        .map_err(|e| Error::io("pack", context, e))?;
    Ok(Packed {
        tar,
        withheld: walked.withheld,
    })
}

/// The secret-bearing paths of `project` that a build context `context` holds and its
/// `.dockerignore` does not exclude, relative to the context: what `docker build` or
/// `docker compose build` of the rendered bundle would send (stack's own builds leave
/// them out anyway). Nothing is read but `.dockerignore` and folder listings.
pub fn exposed(context: &Path, project: &Path) -> Result<Vec<String>> {
    let Ok(inside) = project.strip_prefix(context) else {
        return Ok(Vec::new());
    };
    let mut candidates: Vec<PathBuf> = SECRET_PATHS
        .iter()
        .filter(|p| !p.contains('*'))
        .map(|p| PathBuf::from(p.trim_end_matches('/')))
        .collect();
    if let Ok(envs) = std::fs::read_dir(project.join("environments")) {
        for env in envs.flatten() {
            candidates.push(
                Path::new("environments")
                    .join(env.file_name())
                    .join("secrets.env"),
            );
        }
    }
    candidates.retain(|c| std::fs::symlink_metadata(project.join(c)).is_ok());
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let rules = rules(context)?;
    let mut out: Vec<String> = candidates
        .into_iter()
        .map(|c| inside.join(c))
        .filter(|rel| !excluded(&rules, rel))
        .map(|rel| rel.display().to_string())
        .collect();
    out.sort();
    Ok(out)
}

/// The warning for paths [`tar`] withheld: names, never contents.
pub fn withheld_warning(context: &Path, withheld: &[String]) -> Diagnostic {
    let shown: Vec<String> = withheld.iter().take(10).map(|p| format!("`{p}`")).collect();
    let more = withheld.len().saturating_sub(shown.len());
    Diagnostic::new(format!(
        "build context `{}` holds stack's secret files; they were left out of the image: {}{}",
        context.display(),
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
    .hint(format!(
        "list them in the context's `.dockerignore` ({}), or point `SERVICE_<NAME>_BUILD` at a folder without them",
        SECRET_PATHS.map(|p| format!("`{p}`")).join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(packed: &Packed) -> Vec<String> {
        let mut archive = tar::Archive::new(packed.tar.as_slice());
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn dockerignore_rules() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".dockerignore"),
            "node_modules\n*.log\n!keep.log\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("node_modules")).unwrap();
        std::fs::write(dir.path().join("node_modules/x.js"), "x").unwrap();
        std::fs::write(dir.path().join("a.log"), "x").unwrap();
        std::fs::write(dir.path().join("keep.log"), "x").unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch").unwrap();
        let packed = tar(dir.path()).unwrap();
        let names = names(&packed);
        assert!(names.contains(&"Dockerfile".to_string()));
        assert!(names.contains(&"keep.log".to_string()));
        assert!(
            !names
                .iter()
                .any(|n| n.contains("node_modules") || n == "a.log"),
            "{names:?}"
        );
        assert!(packed.withheld.is_empty());
    }

    /// A project with every kind of secret-bearing path, under `root/prefix`.
    fn project(root: &Path, prefix: &str) {
        for (rel, text) in [
            ("stack.env", "STACK_PROJECT=app\n"),
            ("Dockerfile", "FROM scratch\n"),
            ("app/main.txt", "code\n"),
            (".stack/dev/.env", "DB_PASSWORD=hunter2\n"),
            (".stack/dev/docker-compose.yml", "services: {}\n"),
            ("environments/prod/secrets.env", "DB_PASSWORD=hunter2\n"),
            ("environments/prod/stack.env", "STACK_DOMAIN=x\n"),
            ("stack.local.env", "API_TOKEN=hunter2\n"),
            ("backups/db-2024.dump", "hunter2\n"),
            ("out/.stack-manifest", "# Generated by stack\n.env\n"),
            ("out/.env", "DB_PASSWORD=hunter2\n"),
        ] {
            write(root, &format!("{prefix}{rel}"), text);
        }
    }

    const SECRET_FILES: [&str; 5] = [
        ".stack/dev/.env",
        "environments/prod/secrets.env",
        "stack.local.env",
        "backups/db-2024.dump",
        "out/.env",
    ];

    #[test]
    fn secret_paths_never_packed_even_when_dockerignore_reincludes_them() {
        for dockerignore in [
            None,
            Some("*.log\n"),
            // Re-includes of everything, and of each path by name.
            Some("!*\n!**\n!.stack\n!.stack/**\n!environments/*/secrets.env\n!stack.local.env\n!backups\n!out\n"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            project(dir.path(), "");
            if let Some(text) = dockerignore {
                write(dir.path(), ".dockerignore", text);
            }
            let packed = tar(dir.path()).unwrap();
            let names = names(&packed);
            for secret in SECRET_FILES {
                assert!(!names.iter().any(|n| n == secret), "{secret} in {names:?}");
            }
            assert!(!names.iter().any(|n| n.starts_with(".stack") || n.starts_with("backups")));
            for kept in ["stack.env", "app/main.txt", "environments/prod/stack.env"] {
                assert!(names.iter().any(|n| n == kept), "{kept} not in {names:?}");
            }
            assert_eq!(
                packed.withheld,
                vec![".stack", "backups", "environments/prod/secrets.env", "out", "stack.local.env"]
            );
        }
    }

    #[test]
    fn secret_paths_of_a_project_below_the_context() {
        let dir = tempfile::tempdir().unwrap();
        project(dir.path(), "services/api/");
        write(dir.path(), "Dockerfile", "FROM scratch\n");
        // Not a project: the same names elsewhere are the user's.
        write(dir.path(), "docs/backups/readme.txt", "x\n");
        let packed = tar(dir.path()).unwrap();
        let names = names(&packed);
        for secret in SECRET_FILES {
            let secret = format!("services/api/{secret}");
            assert!(!names.contains(&secret), "{secret} in {names:?}");
        }
        assert!(names.contains(&"docs/backups/readme.txt".to_string()));
        assert!(names.contains(&"services/api/app/main.txt".to_string()));
        assert!(packed.withheld.contains(&"services/api/.stack".to_string()));
    }

    #[test]
    fn paths_the_dockerignore_excludes_are_not_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        project(dir.path(), "");
        write(
            dir.path(),
            ".dockerignore",
            ".stack/\nenvironments/*/secrets.env\nstack.local.env\nbackups/\nout\n",
        );
        let packed = tar(dir.path()).unwrap();
        assert!(packed.withheld.is_empty(), "{:?}", packed.withheld);
        let warning = withheld_warning(dir.path(), &["stack.local.env".into()]).render();
        assert!(warning.contains("`stack.local.env`") && !warning.contains("hunter2"));
    }

    #[test]
    fn is_secret_path_matches_whole_components() {
        for yes in [
            ".stack",
            "environments/x/secrets.env",
            "stack.local.env",
            "backups",
        ] {
            assert!(is_secret_path(Path::new(yes)), "{yes}");
        }
        for no in [
            ".stacked",
            "environments/secrets.env",
            "a/stack.local.env",
            "backups2",
            "",
        ] {
            assert!(!is_secret_path(Path::new(no)), "{no}");
        }
    }

    #[test]
    fn exposed_names_what_the_dockerignore_lets_through() {
        let dir = tempfile::tempdir().unwrap();
        project(dir.path(), "api/");
        let exposed_now = exposed(dir.path(), &dir.path().join("api")).unwrap();
        assert_eq!(
            exposed_now,
            vec![
                "api/.stack",
                "api/backups",
                "api/environments/prod/secrets.env",
                "api/stack.local.env"
            ]
        );
        write(
            dir.path(),
            ".dockerignore",
            "**/.stack\n**/secrets.env\napi/stack.local.env\n",
        );
        assert_eq!(
            exposed(dir.path(), &dir.path().join("api")).unwrap(),
            vec!["api/backups"]
        );
        // A context inside the project, beside its secrets: none of them.
        assert!(
            exposed(&dir.path().join("api/app"), &dir.path().join("api"))
                .unwrap()
                .is_empty()
        );
    }
}
