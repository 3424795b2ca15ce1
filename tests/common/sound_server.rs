//! The sound server a test captures from: a private PulseAudio ([`super::pulse`]) or PipeWire
//! ([`super::pipewire`]) server, behind one type so that a capture test runs against either.
//! Both have a null sink `hark_null` whose monitor is the source hark records, and both can
//! lose that source and get it back, or die and be started again.

use std::path::Path;
use std::process::Command;

use hark::capture::HostChoice;

use super::pipewire::PipeWireServer;
use super::pulse::{Player, PulseServer, ALSA_DEVICE, SINK, SOURCE};

/// A private sound server. Dropping it kills its processes.
pub enum SoundServer {
    Pulse(PulseServer),
    PipeWire(PipeWireServer),
}

impl SoundServer {
    /// A PulseAudio server (fails the test, naming the package, without its programs).
    pub fn start_pulse() -> SoundServer {
        PulseServer::require();
        SoundServer::Pulse(PulseServer::start())
    }

    /// A PipeWire server with pipewire-pulse (fails the test, naming the package, without its
    /// programs).
    pub fn start_pipewire() -> SoundServer {
        PipeWireServer::require();
        SoundServer::PipeWire(PipeWireServer::start())
    }

    /// The server `host` talks to natively: PipeWire for `pipewire`, PulseAudio otherwise.
    pub fn start_for(host: HostChoice) -> SoundServer {
        match host {
            HostChoice::Pipewire => Self::start_pipewire(),
            _ => Self::start_pulse(),
        }
    }

    /// What `--device` names to record [`SOURCE`] through `host`: ALSA's `pulse` PCM (which
    /// records from `PULSE_SOURCE`); for cpal's PipeWire host the sink node itself (it lists
    /// sinks, not their monitors, and a capture stream on a sink records its monitor); the
    /// source itself for the PulseAudio protocol. Naming it (not the default) makes a reopen
    /// while the sink is gone fail instead of falling back to another source.
    pub fn device_for(host: HostChoice) -> &'static str {
        match host {
            HostChoice::Alsa => ALSA_DEVICE,
            HostChoice::Pipewire => SINK,
            _ => SOURCE,
        }
    }

    /// Adds the environment that makes clients (hark, pactl, paplay) talk to this server.
    pub fn apply_env(&self, command: &mut Command) {
        match self {
            SoundServer::Pulse(s) => s.apply_env(command),
            SoundServer::PipeWire(s) => s.apply_env(command),
        }
    }

    /// Plays `file` into the null sink at real time; the player is killed on drop.
    pub fn play(&self, file: &Path) -> Player {
        match self {
            SoundServer::Pulse(s) => s.play(file),
            SoundServer::PipeWire(s) => s.play(file),
        }
    }

    /// The server's logs (for failure messages).
    pub fn log(&self) -> String {
        match self {
            SoundServer::Pulse(s) => s.log(),
            SoundServer::PipeWire(s) => s.logs(),
        }
    }

    /// Unloads the null sink: the source vanishes (a USB microphone unplugged).
    pub fn remove_sink(&self) {
        match self {
            SoundServer::Pulse(s) => s.remove_sink(),
            SoundServer::PipeWire(s) => s.remove_sink(),
        }
    }

    /// Loads the null sink again (the microphone plugged back in).
    pub fn add_sink(&self) {
        match self {
            SoundServer::Pulse(s) => s.add_sink(),
            SoundServer::PipeWire(s) => s.add_sink(),
        }
    }

    /// Kills the server (SIGKILL, as a crash would).
    pub fn kill(&mut self) {
        match self {
            SoundServer::Pulse(s) => s.kill(),
            SoundServer::PipeWire(s) => s.kill(),
        }
    }

    /// Starts the killed server again where its clients find it, with the null sink.
    pub fn restart(&mut self) {
        match self {
            SoundServer::Pulse(s) => s.restart(),
            SoundServer::PipeWire(s) => s.restart(),
        }
    }
}
