//! Any bytes as a project file: parse, interpolate, validate and render — never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(Ok(loaded)) = stack_fuzz::load(data, "prod") {
        stack_fuzz::render(&loaded);
    }
});
