//! Any bytes as the inputs of `stack import compose`: the input is split on `\n---\n`
//! into `docker-compose.yml`, the `.env` beside it, `compose.override.yml` (merged over
//! it) and a `Caddyfile` (a missing part is a missing file). They are read from memory
//! (no file is read or written), imported, and the project file the import writes is read
//! back by the configuration reader and rendered — never panic, never hang (libFuzzer's
//! `-timeout` reports a slow input), and no secret value of the input in a finding.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use stack::import::{self, Reader};

const FILES: [&str; 4] = [
    "docker-compose.yml",
    ".env",
    "compose.override.yml",
    "Caddyfile",
];
const DIR: &str = "/fuzz/src";

/// The input files, in memory.
struct Memory(BTreeMap<PathBuf, String>);

impl Reader for Memory {
    fn read(&self, path: &Path) -> stack::error::Result<Option<String>> {
        Ok(self.0.get(path).cloned())
    }
    fn folders(&self, _dir: &Path) -> Vec<String> {
        Vec::new()
    }
}

fuzz_target!(|data: &[u8]| {
    let mut files = BTreeMap::new();
    for (name, part) in FILES.iter().zip(stack_fuzz::split(data, FILES.len())) {
        let Ok(text) = std::str::from_utf8(part) else {
            return;
        };
        files.insert(Path::new(DIR).join(name), text.to_string());
    }
    let extra = Path::new(DIR).join("compose.override.yml");
    let options = import::compose::Options {
        file: Path::new(DIR).join("docker-compose.yml"),
        project_dir: PathBuf::from("/fuzz/project"),
        routes: data.len() % 2 == 0,
        caddyfile: None,
        home: Some(PathBuf::from("/home/fuzz")),
        extra_files: files
            .contains_key(&extra)
            .then_some(extra)
            .into_iter()
            .collect(),
        profiles: Vec::new(),
    };
    let Ok(imported) = import::compose::import(&Memory(files), &options) else {
        return;
    };
    // What the import wrote must read back (or fail cleanly) and render.
    let Some(project) = imported.files.iter().find(|f| f.path == "stack.env") else {
        return;
    };
    if let Some(Ok(loaded)) = stack_fuzz::load(project.contents.as_bytes(), "dev") {
        stack_fuzz::render(&loaded);
    }
});
