//! Config files: TOML text loaded and validated as `hark check-config FILE` does.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static PATH: std::path::PathBuf = {
            let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
            std::path::Path::new(base).join(format!("hark-fuzz-config-{}.toml", std::process::id()))
        };
    }
    if std::str::from_utf8(data).is_err() {
        return;
    }
    PATH.with(|path| {
        std::fs::write(path, data).unwrap();
        let _ = hark::front_door::config_file(path);
    });
});
