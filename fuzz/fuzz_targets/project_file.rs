//! Any bytes as a project file: parse, interpolate, validate and render — never panic.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use stack::project::{syntax, Layer, SourceKind, Sources};

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = syntax::parse("stack.env", data) else {
        return;
    };
    let sources = Sources {
        dir: PathBuf::from("/fuzz/project"),
        env: "prod".into(),
        layers: vec![Layer {
            kind: SourceKind::Project,
            name: "stack.env".into(),
            path: None,
            entries,
        }],
    };
    let options = stack::config::Options::default();
    if let Ok(loaded) = stack::config::from_sources(sources, &options, |_| None) {
        let out = PathBuf::from("/fuzz/project/.stack/prod");
        let _ = stack::commands::bundle_of(&loaded.config, &out);
    }
});
