//! `../shared` beside the checkout: real recordings with their labels, datasets and reference
//! outputs, too large for the repository. A test that needs it says `SKIPPED:` in its log, naming
//! what is missing, and passes when it is absent (a fresh clone).

use std::path::{Path, PathBuf};

use super::hark::manifest_dir;

/// `../shared/REL` (REL `""`: `../shared` itself), if it exists.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let path = manifest_dir().join("../shared").join(rel);
    path.exists().then_some(path)
}

/// Tells the test log that the running test is skipped because `../shared/REL` is missing.
pub fn say_skipped(rel: &str) {
    let missing = Path::new("../shared").join(rel);
    // libtest names each test's thread after the test.
    match std::thread::current().name() {
        Some(test) if test != "main" => eprintln!(
            "SKIPPED: {} not found ({test})",
            missing.components().as_path().display()
        ),
        _ => eprintln!(
            "SKIPPED: {} not found",
            missing.components().as_path().display()
        ),
    }
}

/// [`shared`], or `None` after [`say_skipped`].
pub fn shared_or_skip(rel: &str) -> Option<PathBuf> {
    let found = shared(rel);
    if found.is_none() {
        say_skipped(rel);
    }
    found
}

/// `../shared/data/recordings`, or `None` after saying the test is skipped.
pub fn recordings_or_skip() -> Option<PathBuf> {
    shared_or_skip("data/recordings")
}
