//! Model manifests: parsed and checked as before loading a model.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = hark::front_door::manifest_text(text);
    }
});
