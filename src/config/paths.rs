//! Path helpers shared by the service reader and the value checks.

use std::path::{Component, Path, PathBuf};

/// Lexically clean a path (`a/./b/../c` → `a/c`).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
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
    }
}
