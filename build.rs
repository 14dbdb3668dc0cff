//! Embeds every template under `templates/` into the binary: the list is the directory,
//! so a new template cannot be forgotten. Also names the commit the binary is built from
//! (`STACK_COMMIT`, shown by `stack --version`): the environment variable of that name
//! when set (a build from a tarball), else `git rev-parse`, else `unknown`.

use std::process::Command;

fn main() {
    minijinja_embed::embed_templates!("templates", &[".j2"][..]);
    println!("cargo:rerun-if-env-changed=STACK_COMMIT");
    let commit = std::env::var("STACK_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=STACK_COMMIT={commit}");
}

/// The short commit of HEAD; reruns when HEAD or the branch it names moves.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    for file in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", file]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &reference]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    Some(commit)
}
