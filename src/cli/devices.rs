//! `hark devices`: list the audio capture devices.

use std::process::ExitCode;

/// Print one line per capture device; exit with [`crate::exit::NO_DEVICE`] when there is none.
pub fn run_devices() -> anyhow::Result<ExitCode> {
    let devices = crate::capture::list_devices()?;
    if devices.is_empty() {
        println!("no capture devices found");
        return Ok(ExitCode::from(crate::exit::NO_DEVICE));
    }
    for d in devices {
        println!("{d}");
    }
    Ok(ExitCode::SUCCESS)
}
