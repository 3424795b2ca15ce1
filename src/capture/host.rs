//! Which audio host (cpal's name for an audio API) a device is opened through:
//! `capture.host = "auto" | "alsa" | "pulseaudio" | "pipewire"`.
//!
//! Through a sound server, ALSA's `default` device is the server's ALSA plugin, and cpal's ALSA
//! worker can spin on that plugin's poll descriptor (BENCHMARKS.md, "Live capture through a
//! sound server"). The server's native protocol has no such loop, so `auto` prefers it when a
//! server answers and falls back to ALSA otherwise.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{CaptureError, Result};

/// The audio host to capture through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostChoice {
    /// The sound server's native protocol when a server answers (PulseAudio's, which PipeWire
    /// also serves through pipewire-pulse; then PipeWire's own, if built in), else ALSA.
    #[default]
    Auto,
    /// ALSA: hardware devices, and the sound server through its ALSA plugin.
    Alsa,
    /// The PulseAudio protocol (PulseAudio or pipewire-pulse): capture through libpulse,
    /// listing through cpal's pure-Rust client.
    Pulseaudio,
    /// PipeWire's own protocol through cpal's PipeWire host (needs hark built with the
    /// `pipewire` feature). cpal calls it unavailable while PipeWire's graph has no audio node.
    Pipewire,
}

impl HostChoice {
    /// Every concrete host (not `auto`), in the order `auto` tries them.
    pub const CONCRETE: [HostChoice; 3] = [
        HostChoice::Pulseaudio,
        HostChoice::Pipewire,
        HostChoice::Alsa,
    ];

    /// The name used in the config and in messages.
    pub fn name(self) -> &'static str {
        match self {
            HostChoice::Auto => "auto",
            HostChoice::Alsa => "alsa",
            HostChoice::Pulseaudio => "pulseaudio",
            HostChoice::Pipewire => "pipewire",
        }
    }

    /// Whether this binary was built with this host (`auto` always is).
    pub fn is_built_in(self) -> bool {
        match self {
            HostChoice::Auto | HostChoice::Alsa => true,
            HostChoice::Pulseaudio => cfg!(feature = "pulseaudio"),
            HostChoice::Pipewire => cfg!(feature = "pipewire"),
        }
    }

    /// The concrete hosts this binary was built with, in `auto`'s order.
    pub fn built_in() -> Vec<HostChoice> {
        Self::CONCRETE
            .into_iter()
            .filter(|h| h.is_built_in())
            .collect()
    }
}

impl std::str::FromStr for HostChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [HostChoice::Auto]
            .into_iter()
            .chain(Self::CONCRETE)
            .find(|h| h.name() == s)
            .ok_or_else(|| {
                format!("unknown audio host {s:?}; allowed: auto, alsa, pulseaudio, pipewire")
            })
    }
}

// By hand, so that a wrong name says which names are allowed.
impl<'de> Deserialize<'de> for HostChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for HostChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An opened host and which one it is.
pub struct OpenedHost {
    pub host: cpal::Host,
    /// The concrete host (`auto` resolved).
    pub choice: HostChoice,
}

/// What capture opens a device through: a cpal host, or hark's own libpulse connection (see
/// `pulse`: cheaper than cpal's PulseAudio host).
pub(super) enum CaptureHost {
    Cpal(OpenedHost),
    #[cfg(feature = "pulseaudio")]
    Pulse(super::pulse::Connection),
}

/// Opens the host `choice` names for capture, in the same order as [`open_host`]; the
/// PulseAudio protocol goes through hark's own libpulse connection.
pub(super) fn open_capture_host(choice: HostChoice) -> Result<CaptureHost> {
    #[cfg(feature = "pulseaudio")]
    {
        let auto = choice == HostChoice::Auto;
        if choice == HostChoice::Pulseaudio
            || (auto && server_socket_exists(HostChoice::Pulseaudio))
        {
            match super::pulse::connect() {
                Ok(client) => return Ok(CaptureHost::Pulse(client)),
                Err(err) if !auto => return Err(err),
                Err(err) => tracing::debug!(error = %err, "PulseAudio server not available"),
            }
        }
        if auto {
            return open_after(HostChoice::Pulseaudio).map(CaptureHost::Cpal);
        }
    }
    open_host(choice).map(CaptureHost::Cpal)
}

/// `auto` from the host after `skip` in its order on.
#[cfg(feature = "pulseaudio")]
fn open_after(skip: HostChoice) -> Result<OpenedHost> {
    for candidate in HostChoice::built_in() {
        if candidate == skip || candidate == HostChoice::Alsa || !server_socket_exists(candidate) {
            continue;
        }
        if let Ok(host) = open_concrete(candidate) {
            return Ok(OpenedHost {
                host,
                choice: candidate,
            });
        }
    }
    open_concrete(HostChoice::Alsa).map(|host| OpenedHost {
        host,
        choice: HostChoice::Alsa,
    })
}

/// Opens the host `choice` names. For `auto`: the first server protocol built in whose server
/// answers (each waits at most 2 s, cpal's limit), else ALSA.
pub fn open_host(choice: HostChoice) -> Result<OpenedHost> {
    if choice != HostChoice::Auto {
        return open_concrete(choice).map(|host| OpenedHost { host, choice });
    }
    for candidate in HostChoice::built_in() {
        if candidate == HostChoice::Alsa || !server_socket_exists(candidate) {
            continue;
        }
        match open_concrete(candidate) {
            Ok(host) => {
                return Ok(OpenedHost {
                    host,
                    choice: candidate,
                })
            }
            Err(err) => tracing::debug!(host = %candidate, error = %err, "host not available"),
        }
    }
    open_concrete(HostChoice::Alsa).map(|host| OpenedHost {
        host,
        choice: HostChoice::Alsa,
    })
}

/// Whether the server `choice` speaks to has a socket where its clients look (cpal's own
/// `is_available`, through `available_hosts`: cheap, no connection).
fn server_socket_exists(choice: HostChoice) -> bool {
    host_id(choice).is_some_and(|id| cpal::available_hosts().contains(&id))
}

/// cpal's id of a concrete host this binary was built with.
fn host_id(choice: HostChoice) -> Option<cpal::HostId> {
    match choice {
        HostChoice::Alsa => Some(cpal::HostId::Alsa),
        #[cfg(feature = "pulseaudio")]
        HostChoice::Pulseaudio => Some(cpal::HostId::PulseAudio),
        #[cfg(feature = "pipewire")]
        HostChoice::Pipewire => Some(cpal::HostId::PipeWire),
        _ => None,
    }
}

fn open_concrete(choice: HostChoice) -> Result<cpal::Host> {
    let id = host_id(choice).ok_or(CaptureError::HostNotBuilt(choice))?;
    cpal::host_from_id(id).map_err(|source| CaptureError::Host {
        host: choice,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_round_trip_through_the_config_spelling() {
        for h in [HostChoice::Auto].into_iter().chain(HostChoice::CONCRETE) {
            let toml = format!("h = {:?}", h.name());
            #[derive(Deserialize)]
            struct T {
                h: HostChoice,
            }
            let t: T = toml::from_str(&toml).unwrap();
            assert_eq!(t.h, h);
            assert_eq!(h.to_string(), h.name());
        }
        assert!(HostChoice::built_in().contains(&HostChoice::Alsa));
        assert_eq!(HostChoice::default(), HostChoice::Auto);
    }
}
