//! Path helpers shared by the service reader and the value checks.

use std::path::{Component, Path, PathBuf};

/// The folder a build context and an `ENV_FILE` must stay in: the repository holding the
/// project (the nearest folder with `.git` at or above it), else the project folder.
pub fn repository_root(project_dir: &Path) -> PathBuf {
    project_dir
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .unwrap_or(project_dir)
        .to_path_buf()
}

/// Lexically clean a path (`a/./b/../c` → `a/c`).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            // `..` cancels a name before it, never a `..` (`../../a` stays as it is).
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_dots_and_resolves_parents() {
        assert_eq!(normalize(Path::new("a/./b/../c")), PathBuf::from("a/c"));
        assert_eq!(normalize(Path::new("/p/x/../../y")), PathBuf::from("/y"));
        assert_eq!(normalize(Path::new("../a")), PathBuf::from("../a"));
        assert_eq!(normalize(Path::new("../../a")), PathBuf::from("../../a"));
        assert_eq!(normalize(Path::new("a/../../b")), PathBuf::from("../b"));
        assert_eq!(normalize(Path::new("/../a")), PathBuf::from("/a"));
    }
}
