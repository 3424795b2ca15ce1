//! Deadlines for a `hark` that runs slower than native: the cross-built aarch64 tests run every
//! `hark` child under `qemu-aarch64-static` (`HARK_TEST_EMULATOR`, see [`super::hark::command`]),
//! where ONNX Runtime and CED-tiny take one to two orders of magnitude longer than on this
//! machine. `HARK_TEST_SLOW=N` (an integer 1 to 100; `scripts/test-aarch64.sh` sets it)
//! multiplies the deadlines of the wait helpers in `tests/common` (and the socket clients' read
//! timeouts) by N. Unset, N is 1 and every deadline is the one the test wrote: nothing that a
//! test checks changes, only how long a wait may take before it counts as a failure.

use std::time::Duration;

/// `HARK_TEST_SLOW`, or 1 when it is not set. A value that is not an integer in 1..=100 fails the
/// test that asks, naming the variable, rather than silently waiting for the native deadline.
pub fn factor() -> u32 {
    let Some(raw) = std::env::var_os("HARK_TEST_SLOW") else {
        return 1;
    };
    let text = raw.to_string_lossy();
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=100).contains(&n) => n,
        _ => panic!("HARK_TEST_SLOW={text:?}: expected an integer from 1 to 100"),
    }
}

/// `deadline` times [`factor`].
pub fn scaled(deadline: Duration) -> Duration {
    deadline * factor()
}

/// True when the `hark` children run under an emulator (`HARK_TEST_EMULATOR`).
pub fn emulated() -> bool {
    std::env::var_os("HARK_TEST_EMULATOR").is_some()
}
