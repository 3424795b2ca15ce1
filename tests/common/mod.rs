//! Helpers shared by the integration tests (`mod common;` in a test file).

// Each test binary compiles this module on its own and uses only some of the helpers; the rest
// would otherwise be reported as dead code in that binary.
#![allow(dead_code)]

pub mod alsa;
pub mod daemon;
pub mod hark;
pub mod pulse;
