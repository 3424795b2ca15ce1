//! `hark devices`: the capture devices each audio host knows, with what each supports.

use std::fmt;

use cpal::traits::{DeviceTrait, HostTrait};
use cpal::SampleFormat;

use super::device::{describe_pair, device_id, device_name};
use super::host::{open_host, HostChoice};
use super::{CaptureError, Result};

/// One host's capture devices, for `hark devices`.
#[derive(Debug)]
pub struct HostDevices {
    pub host: HostChoice,
    /// `capture.host = "auto"` would use this host now.
    pub auto_picks: bool,
    /// Its devices, or why the host could not be used (no sound server, say).
    pub devices: Result<Vec<DeviceInfo>>,
}

/// The capture devices of every host this binary was built with, in `auto`'s order.
pub fn list_all_hosts() -> Vec<HostDevices> {
    let auto = open_host(HostChoice::Auto).ok().map(|h| h.choice);
    HostChoice::built_in()
        .into_iter()
        .map(|host| HostDevices {
            host,
            auto_picks: auto == Some(host),
            devices: list_devices(host),
        })
        .collect()
}

/// A capture device and what it can do, for `hark devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// What `--device` matches exactly (ALSA PCM name).
    pub id: String,
    /// Human name from the host's description.
    pub name: String,
    /// This is the device used when no `--device` is given.
    pub is_default: bool,
    /// Channel counts the device accepts, ascending.
    pub channels: Vec<u16>,
    /// Lowest and highest sample rate over all configurations (0 when unknown).
    pub min_rate: u32,
    pub max_rate: u32,
    /// Sample formats the device can deliver, ascending in cpal's order.
    pub sample_formats: Vec<SampleFormat>,
    /// Why the configurations could not be read (the device is busy, say); the fields above
    /// are then empty.
    pub unavailable: Option<String>,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", describe_pair(&self.id, &self.name))?;
        if self.is_default {
            f.write_str("  [default]")?;
        }
        if let Some(reason) = &self.unavailable {
            return write!(f, "\n    unavailable: {reason}");
        }
        let formats: Vec<String> = self.sample_formats.iter().map(|s| s.to_string()).collect();
        let rates = if self.min_rate == self.max_rate {
            format!("{} Hz", self.min_rate)
        } else {
            format!("{}-{} Hz", self.min_rate, self.max_rate)
        };
        write!(
            f,
            "\n    channels {}; rates {rates}; formats {}",
            format_counts(&self.channels),
            formats.join(" ")
        )
    }
}

/// "1-8" for a contiguous run, "1, 2, 6" otherwise.
fn format_counts(counts: &[u16]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < counts.len() {
        let start = counts[i];
        let mut end = start;
        while i + 1 < counts.len() && counts[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        parts.push(if start == end {
            start.to_string()
        } else if end == start + 1 {
            format!("{start}, {end}")
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Lists the capture devices the audio host `choice` knows (`auto`: the one it picks), with
/// what each supports.
///
/// Devices that turn out not to support capture at all are left out; devices that cannot be
/// opened right now are listed with the reason in [`DeviceInfo::unavailable`].
pub fn list_devices(choice: HostChoice) -> Result<Vec<DeviceInfo>> {
    let host = open_host(choice)?.host;
    let default_id = host.default_input_device().map(|d| device_id(&d));
    let mut infos = Vec::new();
    for device in host.input_devices().map_err(CaptureError::Enumerate)? {
        let id = device_id(&device);
        let mut info = DeviceInfo {
            is_default: default_id.as_deref() == Some(id.as_str()),
            name: device_name(&device),
            id,
            channels: Vec::new(),
            min_rate: 0,
            max_rate: 0,
            sample_formats: Vec::new(),
            unavailable: None,
        };
        match device.supported_input_configs() {
            Ok(ranges) => {
                let ranges: Vec<_> = ranges.collect();
                if ranges.is_empty() {
                    continue;
                }
                let mut channels: Vec<u16> = ranges.iter().map(|r| r.channels()).collect();
                channels.sort_unstable();
                channels.dedup();
                let mut formats: Vec<SampleFormat> =
                    ranges.iter().map(|r| r.sample_format()).collect();
                formats.sort_unstable();
                formats.dedup();
                info.channels = channels;
                info.sample_formats = formats;
                info.min_rate = ranges
                    .iter()
                    .map(|r| r.min_sample_rate())
                    .min()
                    .unwrap_or(0);
                info.max_rate = ranges
                    .iter()
                    .map(|r| r.max_sample_rate())
                    .max()
                    .unwrap_or(0);
            }
            // An output-only PCM that ALSA's hints list without a direction.
            Err(err) if err.kind() == cpal::ErrorKind::UnsupportedOperation => continue,
            Err(err) => info.unavailable = Some(err.to_string()),
        }
        infos.push(info);
    }
    Ok(infos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_info_display_is_readable() {
        let info = DeviceInfo {
            id: "hw:CARD=USB,DEV=0".into(),
            name: "USB Audio".into(),
            is_default: true,
            channels: vec![1, 2],
            min_rate: 44100,
            max_rate: 48000,
            sample_formats: vec![SampleFormat::I16, SampleFormat::I32],
            unavailable: None,
        };
        assert_eq!(
            info.to_string(),
            "hw:CARD=USB,DEV=0 (USB Audio)  [default]\n    \
             channels 1, 2; rates 44100-48000 Hz; formats i16 i32"
        );
        let busy = DeviceInfo {
            unavailable: Some("busy".into()),
            is_default: false,
            ..info
        };
        assert_eq!(
            busy.to_string(),
            "hw:CARD=USB,DEV=0 (USB Audio)\n    unavailable: busy"
        );
    }

    #[test]
    fn channel_counts_are_shown_as_ranges() {
        assert_eq!(format_counts(&[]), "none");
        assert_eq!(format_counts(&[2]), "2");
        assert_eq!(format_counts(&(1..=64).collect::<Vec<_>>()), "1-64");
        assert_eq!(format_counts(&[1, 2, 4, 6, 7, 8]), "1, 2, 4, 6-8");
    }
}
