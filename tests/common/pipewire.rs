//! A private PipeWire server, for capture through the sound server Raspberry Pi OS and most
//! desktops run: `pipewire`, its session manager `wireplumber` and its PulseAudio protocol
//! server `pipewire-pulse`, with their own `XDG_RUNTIME_DIR`, `HOME` and D-Bus session bus (a
//! `dbus-daemon` of the test's own: WirePlumber exits without one). A null sink `hark_null` is
//! loaded through `pactl`; whatever [`PipeWireServer::play`] plays into it comes out of its
//! monitor, the default source.
//!
//! Requires the packages `pipewire`, `wireplumber`, `pipewire-pulse`, `dbus` and
//! `pulseaudio-utils`; see [`PipeWireServer::require`] (and `pipewire-bin` for
//! [`PipeWireServer::add_sink_without_pulse`]).
//!
//! Like [`super::pulse::PulseServer`], a test can make the source vanish and come back
//! ([`PipeWireServer::remove_sink`] / [`PipeWireServer::add_sink`]) or kill the server and
//! start it again ([`PipeWireServer::kill`] / [`PipeWireServer::restart`]: `pipewire`,
//! `wireplumber` and `pipewire-pulse` die, the bus stays).

use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::pulse::{kill_and_reap, load_sink, Player, SINK, SOURCE, UNLOAD_SINK};

/// A PipeWire server of the test's own. Dropping it kills its processes (by their pids).
pub struct PipeWireServer {
    /// The D-Bus session bus, which outlives a [`PipeWireServer::restart`].
    bus: Option<Child>,
    /// `pipewire`, `wireplumber` and `pipewire-pulse`, in the order they were started.
    server: Vec<Child>,
    dir: TempDir,
}

impl PipeWireServer {
    /// Fails the test, naming the package, unless a server can run here.
    pub fn require() {
        for tool in [
            "dbus-daemon",
            "pipewire",
            "wireplumber",
            "pipewire-pulse",
            "pactl",
            "paplay",
        ] {
            super::tools::require(tool);
        }
    }

    /// Starts the bus, the server, its session manager and its PulseAudio server, loads the
    /// null sink and makes its monitor the default source.
    pub fn start() -> PipeWireServer {
        let dir = tempfile::Builder::new()
            .prefix("hark-pw-")
            .tempdir()
            .expect("create a directory for the PipeWire server");
        std::fs::create_dir(dir.path().join("home")).unwrap();
        let mut server = PipeWireServer {
            bus: None,
            server: Vec::new(),
            dir,
        };
        let bus = format!(
            "--address=unix:path={}",
            server.dir.path().join("bus").display()
        );
        let mut c = Command::new("dbus-daemon");
        c.args(["--session", "--nofork", "--nopidfile", &bus]);
        server.bus = Some(server.spawn(c, "dbus.log"));
        server.wait_for_file("bus");
        server.start_server();
        server
    }

    /// Starts the server, its session manager and its PulseAudio server, loads the null sink
    /// and makes its monitor the default source.
    fn start_server(&mut self) {
        // A killed server leaves its socket; wait for the new one, not the stale one.
        let _ = std::fs::remove_file(self.dir.path().join("pipewire-0"));
        let pipewire = self.spawn(Command::new("pipewire"), "pipewire.log");
        self.server.push(pipewire);
        self.wait_for_file("pipewire-0");
        for (command, log) in [
            (Command::new("wireplumber"), "wireplumber.log"),
            (Command::new("pipewire-pulse"), "pipewire-pulse.log"),
        ] {
            let child = self.spawn(command, log);
            self.server.push(child);
        }
        self.wait_for_pactl();
        self.add_sink();
        // The monitor appears once WirePlumber has seen the sink; until then this fails.
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Err(e) = self.try_pactl(&["set-default-source", SOURCE]) {
            assert!(
                Instant::now() < deadline,
                "pactl set-default-source {SOURCE} kept failing: {e}\n{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Unloads the null sink: its monitor, the source hark records from, vanishes (a USB
    /// microphone unplugged).
    pub fn remove_sink(&self) {
        self.pactl(&UNLOAD_SINK);
    }

    /// Loads the null sink (again: the microphone plugged back in).
    pub fn add_sink(&self) {
        self.pactl(&load_sink().each_ref().map(String::as_str));
    }

    /// Kills the server's processes (SIGKILL, as a crash would) and reaps them; the bus stays.
    pub fn kill(&mut self) {
        while let Some(mut child) = self.server.pop() {
            kill_and_reap(&mut child);
        }
    }

    /// Kills pipewire-pulse alone (it was started last), as on a system without it: PipeWire
    /// stays, the null sink (created through pipewire-pulse) goes with it, and the stale
    /// `pulse/native` socket stays behind.
    pub fn kill_pulse(&mut self) {
        assert_eq!(self.server.len(), 3, "the server is not running");
        let mut pulse = self.server.pop().expect("three processes");
        kill_and_reap(&mut pulse);
    }

    /// Creates the null sink through PipeWire itself (`pw-cli`, lingering after it exits), for
    /// when pipewire-pulse is gone: cpal's PipeWire host calls a graph without any audio node
    /// unavailable.
    pub fn add_sink_without_pulse(&self) {
        let mut c = Command::new("pw-cli");
        self.apply_env(&mut c);
        let props = format!(
            "{{ factory.name=support.null-audio-sink node.name={SINK} media.class=Audio/Sink \
             object.linger=true audio.position=[FL FR] }}"
        );
        let out = c
            .args(["create-node", "adapter", &props])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run pw-cli (apt-get install pipewire-bin): {e}"));
        assert!(out.status.success(), "pw-cli create-node failed: {out:?}");
    }

    /// Starts the server again in the same runtime directory, so clients find it at the same
    /// sockets, with the null sink loaded again.
    pub fn restart(&mut self) {
        self.kill();
        self.start_server();
    }

    fn spawn(&self, mut c: Command, log: &str) -> Child {
        self.apply_env(&mut c);
        // Appended to, so that the log of a server killed by a test is kept.
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join(log))
            .unwrap();
        c.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        c.spawn()
            .unwrap_or_else(|e| panic!("start {c:?} (apt-get install pipewire): {e}"))
    }

    fn wait_for_file(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.dir.path().join(name).exists() {
            assert!(
                Instant::now() < deadline,
                "{name} did not appear within 15 s; logs:\n{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for_pactl(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self
            .try_pactl(&["info"])
            .is_ok_and(|o| o.contains("PipeWire"))
        {
            assert!(
                Instant::now() < deadline,
                "pipewire-pulse did not answer within 15 s; logs:\n{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The environment that makes clients (hark, pactl, paplay) talk to this server.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let run = self.dir.path();
        let mut pulse = OsString::from("unix:");
        pulse.push(run.join("pulse/native"));
        let mut bus = OsString::from("unix:path=");
        bus.push(run.join("bus"));
        vec![
            ("XDG_RUNTIME_DIR", run.into()),
            ("PIPEWIRE_RUNTIME_DIR", run.into()),
            ("HOME", run.join("home").into()),
            ("PULSE_SERVER", pulse),
            ("DBUS_SESSION_BUS_ADDRESS", bus),
            ("JACK_NO_START_SERVER", "1".into()),
        ]
    }

    /// Adds [`PipeWireServer::env`] to `command`.
    pub fn apply_env(&self, command: &mut Command) {
        for (k, v) in self.env() {
            command.env(k, v);
        }
    }

    /// Every log of the server's processes (for failure messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["pipewire", "wireplumber", "pipewire-pulse", "dbus"] {
            let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")));
            out.push_str(&format!("--- {name}\n{}\n", text.unwrap_or_default()));
        }
        out
    }

    fn try_pactl(&self, args: &[&str]) -> Result<String, String> {
        let mut c = Command::new("pactl");
        self.apply_env(&mut c);
        let out = c
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs pactl against this server; panics with its stderr if it fails.
    pub fn pactl(&self, args: &[&str]) -> String {
        self.try_pactl(args)
            .unwrap_or_else(|e| panic!("pactl {args:?} failed: {e}\n{}", self.logs()))
    }

    /// Plays `file` into the null sink at real time; the player is killed on drop.
    pub fn play(&self, file: &Path) -> Player {
        let mut c = Command::new("paplay");
        self.apply_env(&mut c);
        c.arg(format!("--device={SINK}"))
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Player::spawn(c)
    }
}

impl Drop for PipeWireServer {
    fn drop(&mut self) {
        // The clients of the bus and the server first, the bus last.
        self.kill();
        if let Some(mut bus) = self.bus.take() {
            kill_and_reap(&mut bus);
        }
    }
}
