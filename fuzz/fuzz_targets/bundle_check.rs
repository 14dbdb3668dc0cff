//! Any bytes as a bundle directory and a bundle: what `stack build --check` compares
//! (`fsio::compare_bundle`). The input is split on `\n---\n` into records; the first byte
//! of each says what it makes, the rest is `path` `\0` `contents`:
//!
//! | byte % 8 | record |
//! |---|---|
//! | 0 | a regular file in the directory |
//! | 1 | a symbolic link to `/dev/zero` in the directory |
//! | 2 | a symbolic link to a secret file outside the directory |
//! | 3 | a folder in the directory |
//! | 4 | a named pipe in the directory |
//! | 5 | a file of the bundle without secrets (its `contents`) |
//! | 6 | a file of the bundle with secrets (its `contents`) |
//! | 7 | a line of the directory's manifest |
//!
//! Paths are cut to at most 3 plain components. Every byte written anywhere but a file
//! the bundle would show in the open carries `FUZZSECRET`; the comparison must never
//! panic, hang (a link to a device, a pipe) or print that marker.
#![no_main]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stack::fsio::{compare_bundle, MANIFEST};
use stack::render::{Bundle, BundleFile};

const MARKER: &str = "FUZZSECRET";

/// One temp dir per fuzzing process, emptied every run.
fn root() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("stack-fuzz-bundle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// A relative path of 1 to 3 plain components, `None` when nothing is left.
fn clean(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let parts: Vec<String> = text
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .take(3)
        .map(|p| p.chars().filter(|c| *c != '\0').take(40).collect())
        .filter(|p: &String| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn run(data: &[u8]) {
    let root = root();
    let dir = root.join("bundle");
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(&dir).unwrap();
    let outside = root.join("outside-secret");
    std::fs::write(&outside, MARKER).unwrap();
    let mut bundle = Bundle::default();
    let mut manifest = String::new();
    for record in stack_fuzz::split(data, usize::MAX).into_iter().take(32) {
        let Some((&kind, rest)) = record.split_first() else {
            continue;
        };
        let (raw_path, contents) = match rest.iter().position(|b| *b == 0) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        let Some(path) = clean(raw_path) else {
            continue;
        };
        // Paths are names, shown by design; only contents carry the marker.
        if path.contains(MARKER) {
            continue;
        }
        let target = dir.join(&path);
        // One entry a path: writing into a pipe made by an earlier record would block
        // the harness itself.
        if kind % 8 < 5 && std::fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        if kind % 8 < 5 {
            if let Some(parent) = target.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
        }
        // Text that may be shown: without the marker.
        let shown = String::from_utf8_lossy(contents).replace(MARKER, "");
        let _ = match kind % 8 {
            0 => std::fs::write(&target, format!("{MARKER}{shown}")),
            1 => symlink("/dev/zero", &target),
            2 => symlink(&outside, &target),
            3 => std::fs::create_dir_all(&target),
            4 => {
                let fifo = std::ffi::CString::new(target.to_string_lossy().as_bytes()).unwrap();
                unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) };
                Ok(())
            }
            5 => {
                bundle.files.insert(
                    path,
                    BundleFile {
                        contents: shown,
                        mode: 0o644,
                        secret: false,
                    },
                );
                Ok(())
            }
            6 => {
                bundle.files.insert(
                    path,
                    BundleFile {
                        contents: format!("{MARKER}{shown}"),
                        mode: 0o600,
                        secret: true,
                    },
                );
                Ok(())
            }
            _ => {
                manifest.push_str(&path);
                manifest.push('\n');
                Ok(())
            }
        };
    }
    if !manifest.is_empty() {
        let _ = std::fs::write(dir.join(MANIFEST), manifest);
    }
    // A file on disk at the path of a file shown in the open is the old text of that
    // file: it may be shown, so it must not carry the marker.
    for (path, file) in &bundle.files {
        let target = dir.join(path);
        if !file.secret && std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_file()) {
            let _ = std::fs::write(&target, "old text\n");
        }
    }
    if let Ok(stale) = compare_bundle(&bundle, &dir) {
        for entry in stale {
            assert!(
                !entry.text.contains(MARKER),
                "a secret was shown for `{}`: {}",
                entry.path,
                entry.text
            );
        }
    }
}

fuzz_target!(|data: &[u8]| run(data));
