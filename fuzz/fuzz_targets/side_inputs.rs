//! Any bytes as the inputs that are not a project file and had no target: the first byte
//! picks one, the rest is its text.
//!
//! - 0: an `ENV_FILE` a service names (`env_files::apply` on a loaded project; a
//!   finding must not show a value of the file);
//! - 1: the standard output of `STACK_SECRETS_COMMAND` (`project::command::parse`; a
//!   finding never shows its text);
//! - 2: what a server answers: every answer parser of `deploy::answer`, the preview
//!   list, a release's desired state (`cat desired.json; printf '\0'; cat .env`) and the
//!   bundle's `.env` read back.
//!
//! Pure: no file is read or written, no process started. Never panic, never hang.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use stack::deploy::answer;
use stack::deploy::preview::{self, Shell};

/// The project the `ENV_FILE` is given to: one service that names it.
const PROJECT: &str = "STACK_PROJECT=fuzz\nSTACK_SERVICES=web\n\
    SERVICE_WEB_IMAGE=nginx:1.27\nSERVICE_WEB_ENV_FILE=web.env\nSERVICE_WEB_ENV_KEEP=1\n";

/// A value planted in every input that may be shown nowhere.
const MARKER: &str = "FUZZSECRETMARKER";

/// A server whose every answer is the input.
struct Server(String);

impl Shell for Server {
    fn script(&self, _what: &str, _script: &str) -> stack::error::Result<String> {
        Ok(self.0.clone())
    }
}

fn env_file(text: &[u8]) {
    let mut loaded = stack_fuzz::load(PROJECT.as_bytes(), "prod")
        .expect("the project reads")
        .expect("the project loads");
    let mut bytes = text.to_vec();
    bytes.extend_from_slice(format!("\nX={MARKER} y\n{MARKER}\n").as_bytes());
    let files = BTreeMap::from([("web.env".to_string(), bytes)]);
    if let Err(e) = stack::config::env_files::apply(&mut loaded.config, &files) {
        let shown = e.render();
        assert!(!shown.contains(MARKER), "a value was shown: {shown}");
    }
}

fn secrets_command(text: &[u8]) {
    let mut bytes = text.to_vec();
    bytes.extend_from_slice(format!("\n{MARKER}\nK={MARKER}\n").as_bytes());
    if let Err(d) = stack::project::command::parse("print-secrets", &bytes) {
        let shown = stack::error::Error::Invalid(vec![d]).render();
        assert!(!shown.contains(MARKER), "the output was shown: {shown}");
    }
}

fn server(text: &[u8]) {
    let text = String::from_utf8_lossy(text).into_owned();
    let _ = answer::parse(&text);
    let _ = answer::LockAnswer::of(&text);
    let _ = answer::lock_holder(&text);
    let _ = answer::pruned(&text);
    let _ = answer::UnitAnswer::of(&text);
    for line in text.lines() {
        let _ = answer::UnchangedAnswer::of(line);
        if let Some(id) = answer::ReleaseId::from_link(line) {
            let _ = id.env();
        }
        let _ = preview::created_secs(line);
    }
    if let Ok(entries) = preview::previews(&Server(text.clone()), "/srv/fuzz") {
        let _ = preview::idle(&entries, std::time::Duration::from_secs(3600), u64::MAX);
        let _ = preview::idle(&entries, std::time::Duration::MAX, 0);
    }
    let (json, env) = text.split_once('\0').unwrap_or((&text, ""));
    let _ = serde_json::from_str::<stack::model::Desired>(json);
    let _ = stack::model::Secrets::parse("/srv/fuzz/.env", env.as_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    match pick % 3 {
        0 => env_file(rest),
        1 => secrets_command(rest),
        _ => server(rest),
    }
});
