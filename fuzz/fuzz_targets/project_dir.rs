//! Any bytes as a whole project directory: the input is split on `\n---\n` into the
//! files of `FILES` (in that order; a missing part is a missing file), written to a
//! temp dir, then loaded for `dev` and `prod` and run through what `stack build`
//! (render, in memory), `stack config [--json]` and `stack check` do — never panic.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stack::config::{self, Loaded, Options};

/// The files of a project, in the order their parts appear in an input.
const FILES: [&str; 5] = [
    "stack.env",
    "environments/prod/stack.env",
    "environments/prod/server.env",
    "environments/prod/secrets.env",
    "stack.local.env",
];

const ENVS: [&str; 2] = ["dev", "prod"];

/// `STACK_FUZZ_DEBUG=1`: print what each environment did (to check the seeds load).
fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("STACK_FUZZ_DEBUG").is_some())
}

const DIR_PREFIX: &str = "stack-fuzz-project-dir-";

/// One project directory per fuzzing process (`$TMPDIR/stack-fuzz-project-dir-<pid>`),
/// created on the first run; every run rewrites (or removes) each file of `FILES`.
/// libFuzzer exits without unwinding, so the directory stays behind: the next process
/// removes those of processes that are gone.
fn project_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        remove_stale(&tmp);
        let dir = tmp.join(format!("{DIR_PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(dir.join("environments/prod")).expect("create fuzz project dir");
        // Absolute and without symlinks, as `Context::project_dir` hands it to `load`.
        dir.canonicalize().expect("canonicalize fuzz project dir")
    })
}

/// Remove the project dirs of fuzzing processes that no longer run (Linux: `/proc`).
fn remove_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn write_project(dir: &Path, data: &[u8]) {
    let parts = stack_fuzz::split(data, FILES.len());
    for (index, name) in FILES.iter().enumerate() {
        let path = dir.join(name);
        match parts.get(index) {
            Some(contents) => std::fs::write(&path, contents).expect("write fuzz project file"),
            None => match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("remove {}: {e}", path.display()),
            },
        }
    }
}

/// `stack config` and `stack config --json`: every key with its value and source, the
/// typed configuration as JSON.
fn config_output(loaded: &Loaded) {
    let secrets: Vec<&str> = loaded
        .config
        .secrets
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let mut text = String::new();
    let mut keys = serde_json::Map::new();
    for (key, setting) in &loaded.resolved.settings {
        let hidden = secrets.contains(&key.as_str())
            || setting.refs.iter().any(|r| secrets.contains(&r.as_str()));
        let value = if hidden {
            config::REDACTED
        } else {
            setting.value.as_str()
        };
        let location = setting.span.location();
        text.push_str(&format!(
            "{key} = {}  # {location}\n",
            stack::printer::escape(value)
        ));
        for span in &setting.history {
            text.push_str(&span.location());
        }
        keys.insert(
            key.clone(),
            serde_json::json!({"value": value, "source": location}),
        );
    }
    let config = serde_json::to_value(&loaded.config).expect("serialise Config");
    let json = serde_json::json!({"env": loaded.config.env, "keys": keys, "config": config});
    let _ = serde_json::to_string_pretty(&json).expect("serialise config output");
    std::hint::black_box(text);
}

fuzz_target!(|data: &[u8]| {
    let dir = project_dir();
    write_project(dir, data);
    for env in ENVS {
        let loaded = match config::load(dir, env, &[], &Options::default(), |_| None) {
            Ok(loaded) => loaded,
            Err(err) => {
                // What the CLI prints when the command fails.
                let text = err.render();
                if debug() {
                    eprintln!("{env}: load failed: {text}");
                }
                continue;
            }
        };
        for warning in &loaded.warnings {
            std::hint::black_box(warning.render());
        }
        // `stack build`: the bundle and the desired state, in memory only.
        let out = stack::commands::default_out(&loaded.config.project_dir, env);
        match stack::commands::bundle_of(&loaded.config, &out) {
            Ok((bundle, desired)) => {
                if debug() {
                    eprintln!("{env}: rendered {} file(s)", bundle.files.len());
                }
                // `stack deploy` saves the desired state as JSON.
                std::hint::black_box(serde_json::to_string(&desired).expect("serialise Desired"));
            }
            Err(err) => {
                let text = err.render();
                if debug() {
                    eprintln!("{env}: render failed: {text}");
                }
            }
        }
        config_output(&loaded);
        // `stack check`.
        let findings = stack::audit::audit(&loaded);
        if debug() {
            let failed = findings.iter().filter(|f| !f.ok).count();
            eprintln!(
                "{env}: audit: {} finding(s), {failed} failed",
                findings.len()
            );
        }
        std::hint::black_box(serde_json::to_string(&findings).expect("serialise findings"));
    }
});
