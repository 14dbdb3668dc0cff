//! What the fuzz targets share: the input split into files, and one project file read,
//! loaded and rendered in memory the way `stack build` does it (no file is read or
//! written, no process environment).

use std::path::{Path, PathBuf};

use stack::config::{Loaded, Options};
use stack::project::{syntax, Layer, SourceKind, Sources};

/// Separates the files (or records) in one input.
pub const SEPARATOR: &[u8] = b"\n---\n";

/// The project folder the in-memory project stands in.
pub const PROJECT_DIR: &str = "/fuzz/project";

/// The parts of `data` split on [`SEPARATOR`]: at most `most`, the last one takes the rest.
pub fn split(data: &[u8], most: usize) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() + 1 < most {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(at) => {
                parts.push(&rest[..at]);
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

/// `text` as the only project file (`stack.env` of [`PROJECT_DIR`]), read and loaded for
/// `env`: `None` when it does not read, else what the configuration reader says.
pub fn load(text: &[u8], env: &str) -> Option<stack::error::Result<Loaded>> {
    let entries = syntax::parse("stack.env", text).ok()?;
    let sources = Sources {
        dir: PathBuf::from(PROJECT_DIR),
        env: env.into(),
        layers: vec![Layer {
            kind: SourceKind::Project,
            name: "stack.env".into(),
            path: None,
            entries,
        }],
    };
    Some(stack::config::from_sources(
        sources,
        &Options::default(),
        |_| None,
    ))
}

/// What `stack build` renders for a loaded project, in memory (errors are fine).
pub fn render(loaded: &Loaded) {
    let out = Path::new(PROJECT_DIR)
        .join(".stack")
        .join(&loaded.config.env);
    let _ = stack::commands::bundle_of(&loaded.config, &out);
}
