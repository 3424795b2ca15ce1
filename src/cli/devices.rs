//! `hark devices`: list the audio capture devices of each audio host.

use std::process::ExitCode;

use crate::capture::list_all_hosts;

/// Print each host this hark was built with and its capture devices, one entry per device;
/// exit with [`crate::exit::NO_DEVICE`] when no host has any.
pub fn run_devices() -> anyhow::Result<ExitCode> {
    let mut any = false;
    for (i, host) in list_all_hosts().into_iter().enumerate() {
        if i > 0 {
            println!();
        }
        let picked = if host.auto_picks {
            "  (capture.host = \"auto\" uses this one)"
        } else {
            ""
        };
        println!("host {}{picked}", host.host);
        match host.devices {
            Ok(devices) if devices.is_empty() => println!("  no capture devices"),
            Ok(devices) => {
                any = true;
                for d in devices {
                    println!("  {}", d.to_string().replace('\n', "\n  "));
                }
            }
            Err(err) => println!("  unavailable: {err}"),
        }
    }
    if !any {
        println!("no capture devices found");
        return Ok(ExitCode::from(crate::exit::NO_DEVICE));
    }
    Ok(ExitCode::SUCCESS)
}
