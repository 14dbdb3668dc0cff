//! insta snapshots of rendered bundles: every file, in path order, except the values of
//! `.env` (random secrets), of which only the keys are kept. The temporary project
//! directory becomes `[PROJECT]` and the crate version `[VERSION]`, so a snapshot only
//! changes when the rendering does.
//!
//! Update with `INSTA_UPDATE=always cargo nextest run --test snapshots` (or
//! `cargo insta accept`) after reviewing the diff.

mod common;

use common::{fixture_for, read_tree};

/// The bundle of `fixture` in `env` as one reviewable text.
fn rendered(fixture: &str, env: &str) -> String {
    let project = fixture_for(fixture, env);
    let bundle = project.build(env, None);
    let project_dir = project.dir.display().to_string();
    let version = format!("stack {}", env!("CARGO_PKG_VERSION"));
    let mut text = String::new();
    for (path, file) in read_tree(&bundle) {
        // The manifest lists the files below; it is bookkeeping, not rendered output.
        if path.ends_with('/') || path == ".stack-manifest" {
            continue;
        }
        let contents = String::from_utf8(file.contents)
            .unwrap_or_else(|_| panic!("`{path}` of `{fixture}` ({env}) is not UTF-8"));
        text.push_str(&format!("===== {path} (mode {:o}) =====\n", file.mode));
        if path.starts_with("secrets/") || path.starts_with("auth/") {
            text.push_str("[SECRET]\n");
        } else if path == ".env" {
            for line in contents.lines() {
                match line.split_once('=') {
                    Some((key, _)) if !line.trim_start().starts_with('#') => {
                        text.push_str(&format!("{key}=[SECRET]\n"));
                    }
                    _ => {
                        text.push_str(line);
                        text.push('\n');
                    }
                }
            }
        } else {
            text.push_str(&contents);
            if !contents.ends_with('\n') {
                text.push_str("\n[no newline at end of file]\n");
            }
        }
    }
    text.replace(&project_dir, "[PROJECT]")
        .replace(&version, "stack [VERSION]")
}

/// Every folder of `fixtures/`, in dev and prod: a new fixture is covered without
/// editing this file (its first run writes the snapshot to review).
#[test]
fn every_fixture_in_dev_and_prod() {
    let fixtures = common::fixtures();
    assert!(fixtures.len() >= 10, "{fixtures:?}");
    for fixture in fixtures {
        for env in ["dev", "prod"] {
            let text = rendered(&fixture, env);
            assert!(text.contains("===== docker-compose.yml"), "{text}");
            insta::assert_snapshot!(format!("{fixture}-{env}"), text);
        }
    }
}
