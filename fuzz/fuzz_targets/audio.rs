//! The audio front door: bytes as a file, read as `hark classify` and `hark run` read it.
#![no_main]
use libfuzzer_sys::fuzz_target;

// hark catches symphonia's panics (`audio::symphonia_stream::guarded`), turns them into an
// error for the file, and keeps the panic hook silent while it does. libfuzzer-sys's hook
// (print, then abort) therefore sees only panics hark does not catch: each is a finding, and so
// is a caught panic that reached the hook.
fuzz_target!(|data: &[u8]| {
    thread_local! {
        static DIR: tempfile_dir::Dir = tempfile_dir::Dir::new();
    }
    DIR.with(|dir| {
        let path = dir.0.join("input.audio");
        std::fs::write(&path, data).unwrap();
        let _ = hark::front_door::audio_file(&path);
    });
});

mod tempfile_dir {
    /// A directory of this process's own, in memory when /dev/shm is there.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
            let dir = std::path::Path::new(base).join(format!("hark-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
