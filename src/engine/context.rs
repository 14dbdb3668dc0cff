//! A build context as the tar stream the engine expects, honouring `.dockerignore`.

use std::path::Path;

use globset::{Glob, GlobMatcher};

use crate::error::{Diagnostic, Error, Result};

/// One `.dockerignore` rule; later rules win, `!` re-includes.
struct Rule {
    matcher: GlobMatcher,
    include: bool,
}

fn rules(context: &Path) -> Vec<Rule> {
    let Ok(text) = std::fs::read_to_string(context.join(".dockerignore")) else {
        return Vec::new();
    };
    text.lines()
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

/// The context directory as an uncompressed tar.
pub fn tar(context: &Path) -> Result<Vec<u8>> {
    if !context.is_dir() {
        return Err(Diagnostic::new(format!(
            "build context `{}` is not a directory",
            context.display()
        ))
        .hint("fix `SERVICE_<NAME>_BUILD`")
        .into());
    }
    let rules = rules(context);
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let mut stack = vec![context.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io("read", &dir, e))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let rel = path.strip_prefix(context).unwrap_or(&path).to_path_buf();
            let keep_anyway = rel == Path::new("Dockerfile") || rel == Path::new(".dockerignore");
            if !keep_anyway && excluded(&rules, &rel) {
                continue;
            }
            let kind = entry.file_type().map_err(|e| Error::io("read", &path, e))?;
            if kind.is_dir() {
                builder
                    .append_dir(&rel, &path)
                    .map_err(|e| Error::io("pack", &path, e))?;
                stack.push(path);
            } else {
                builder
                    .append_path_with_name(&path, &rel)
                    .map_err(|e| Error::io("pack", &path, e))?;
            }
        }
    }
    builder
        .into_inner()
        .map_err(|e| Error::io("pack", context, e))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let bytes = tar(dir.path()).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.contains(&"Dockerfile".to_string()));
        assert!(names.contains(&"keep.log".to_string()));
        assert!(
            !names
                .iter()
                .any(|n| n.contains("node_modules") || n == "a.log"),
            "{names:?}"
        );
    }
}
