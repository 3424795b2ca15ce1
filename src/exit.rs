//! Exit codes, so scripts and systemd can tell failures apart.

use std::process::ExitCode;

/// Bad input, configuration or model (sysexits' EX_DATAERR is too specific; 1 is the norm).
pub const FAILURE: u8 = 1;
/// No audio capture device (EX_UNAVAILABLE): use --input FILE or --input - instead.
pub const NO_DEVICE: u8 = 69;

/// The exit code for an error that reached `main`.
pub fn code_for(e: &anyhow::Error) -> ExitCode {
    for cause in e.chain() {
        if let Some(crate::capture::CaptureError::NoDevice) = cause.downcast_ref() {
            return ExitCode::from(NO_DEVICE);
        }
    }
    ExitCode::from(FAILURE)
}
