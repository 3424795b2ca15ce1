//! Feature specs (TOML or JSON, the first byte chooses) and the front end a valid one makes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = hark::front_door::spec_text(text, first & 1 == 1);
    }
});
