//! The `.npy` reader, as `hark features` reads an input array.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hark::front_door::npy_bytes(data);
});
