//! The static binary and the `.deb` that the image and VM tests install: built ONCE per
//! run, with the cheaper `ci-static` profile (the release profile's settings at
//! `opt-level = 1`, no LTO): the tests need a working static binary, not a fast one.
//! Tests that ask at once share one cargo build (cargo's lock on the target folder makes
//! the later ones wait, then find it up to date), and every `.deb` packages that binary.

use std::path::PathBuf;
use std::process::Command;

use super::{last_lines, repo_root, text};

/// The profile the tests build the static binary with (`STATIC_PROFILE` overrides it).
fn profile() -> String {
    std::env::var("STATIC_PROFILE").unwrap_or_else(|_| "ci-static".into())
}

/// Run one of the repository's build scripts; its stdout's one line, a path.
fn script(name: &str, env: &[(&str, &str)]) -> PathBuf {
    let mut command = Command::new(repo_root().join("scripts").join(name));
    command
        .current_dir(repo_root())
        .env("STATIC_PROFILE", profile());
    for (key, value) in env {
        command.env(key, value);
    }
    let built = command
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{name}: {e}"));
    assert!(
        built.status.success(),
        "scripts/{name} failed ({}); the end of its output:\n{}",
        built.status,
        last_lines(&built.stderr, 40)
    );
    PathBuf::from(text(&built.stdout).trim())
}

/// `scripts/build-static.sh`'s binary.
pub fn static_binary() -> PathBuf {
    let binary = script("build-static.sh", &[]);
    assert!(binary.is_file(), "no binary at `{}`", binary.display());
    binary
}

/// `scripts/build-deb.sh`'s package of [`static_binary`].
pub fn deb_package() -> PathBuf {
    let binary = static_binary();
    script(
        "build-deb.sh",
        &[("STACK_BINARY", &binary.to_string_lossy())],
    )
}
