//! A private PulseAudio server, for tests of capture devices that fail, vanish and come back on
//! machines without a sound card.
//!
//! The ALSA `file` device of [`super::alsa`] never fails, so it cannot stand in for a USB
//! microphone being unplugged. A PulseAudio server can: [`PulseServer::start`] runs one in the
//! foreground (no daemonizing, no `default.pa`, its own `XDG_RUNTIME_DIR` and `HOME`) with a
//! null sink `hark_null`. Whatever [`PulseServer::play`] plays into that sink (paced at real
//! time by the sink's clock) comes out of its monitor source `hark_null.monitor`, which hark
//! captures through the ALSA `pulse` PCM of `libasound2-plugins` (`hark run --device pulse` with
//! [`PulseServer::apply_env`]). Then a test can:
//!
//! - make the source vanish and come back: [`PulseServer::remove_sink`] /
//!   [`PulseServer::add_sink`] unload and reload the null sink, as module-udev-detect does when
//!   a USB card is unplugged and plugged in again;
//! - take the whole sound server away and bring it back: [`PulseServer::kill`] /
//!   [`PulseServer::restart`] (same runtime directory, so the same socket path).
//!
//! What the ALSA `pulse` PCM does then, as measured here (alsa-lib 1.2.8, alsa-plugins 1.2.7,
//! PulseAudio 16.1, cpal 0.18):
//!
//! - **Source removed** (sink unloaded): the server kills the record stream; from then on every
//!   poll of the PCM fails and cpal's ALSA worker calls the error callback with
//!   `ErrorKind::BackendError` in a tight loop (about 700 000 times a second), never with
//!   `DeviceNotAvailable`. The stream delivers nothing more.
//! - **Server killed**: no error at all. cpal's worker blocks for ever inside the plugin
//!   (`snd_pcm_poll_descriptors_revents` waiting on the plugin's mainloop mutex), so the stream
//!   silently stops delivering and dropping it (which joins that worker) never returns.
//! - **Idle sink**: while nothing plays, the null sink does not render, so its monitor delivers
//!   no samples at all (not silence): stream time stands still until something plays.
//!
//! Requires `pulseaudio`, `pactl`, `paplay` (packages `pulseaudio`, `pulseaudio-utils`) and
//! the ALSA plugin (`libasound2-plugins`); see [`PulseServer::missing`].

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The null sink every server is started with; its monitor is the source hark captures.
pub const SINK: &str = "hark_null";

/// `pactl` arguments that unload the null sink (PulseAudio's and pipewire-pulse's alike).
pub const UNLOAD_SINK: [&str; 2] = ["unload-module", "module-null-sink"];

/// `pactl` arguments that load the null sink [`SINK`].
pub fn load_sink() -> [String; 3] {
    [
        "load-module".into(),
        "module-null-sink".into(),
        format!("sink_name={SINK}"),
    ]
}
/// The source hark records from.
pub const SOURCE: &str = "hark_null.monitor";
/// The ALSA PCM (from libasound2-plugins) that records from PulseAudio: `--device pulse`.
pub const ALSA_DEVICE: &str = "pulse";

/// A PulseAudio server of the test's own. Dropping it kills the server (by its pid).
pub struct PulseServer {
    child: Option<Child>,
    /// `XDG_RUNTIME_DIR` (holds `pulse/native`, the socket) and `HOME` live here.
    dir: TempDir,
}

impl PulseServer {
    /// Fails the test, naming the package, unless a server can run here: its programs and
    /// ALSA's `pulse` PCM.
    pub fn require() {
        for tool in ["pulseaudio", "pactl", "paplay"] {
            super::tools::require(tool);
        }
        // The `pulse` PCM is defined by libasound2-plugins' configuration.
        assert!(
            Path::new("/usr/share/alsa/alsa.conf.d/pulse.conf").is_file(),
            "the ALSA `pulse` PCM is not defined: apt-get install libasound2-plugins (scripts/setup.sh --test does)"
        );
    }

    /// Starts a server with the null sink and waits until it answers.
    pub fn start() -> PulseServer {
        // Not under CARGO_TARGET_TMPDIR: the socket path must fit in sun_path (108 bytes).
        let dir = tempfile::Builder::new()
            .prefix("hark-pulse-")
            .tempdir()
            .expect("create a directory for the PulseAudio server");
        std::fs::create_dir(dir.path().join("home")).unwrap();
        let mut server = PulseServer { child: None, dir };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        assert!(
            self.child.is_none(),
            "the PulseAudio server is running already"
        );
        let log_path = self.log_path();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut c = Command::new("pulseaudio");
        self.apply_env(&mut c);
        c.args([
            "--daemonize=no",
            // No default.pa: only the modules below.
            "-n",
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            "--realtime=no",
            "--high-priority=no",
            "--log-target=stderr",
            "--load=module-native-protocol-unix",
        ])
        .arg(format!("--load=module-null-sink sink_name={SINK}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("start {c:?} (apt-get install pulseaudio): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.try_pactl(&["info"]).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "pulseaudio exited with {status} at start; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "pulseaudio did not answer within 15 s; its log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The environment that makes PulseAudio clients (hark through the ALSA plugin, pactl,
    /// paplay) talk to this server and record from [`SOURCE`].
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let run = self.dir.path();
        let mut server = OsString::from("unix:");
        server.push(self.socket_path());
        vec![
            ("XDG_RUNTIME_DIR", run.into()),
            ("HOME", run.join("home").into()),
            ("PULSE_SERVER", server),
            // The pulse PCM records from the client's default source; name it, so a reopen
            // while the sink is gone fails instead of falling back to something else.
            ("PULSE_SOURCE", SOURCE.into()),
            ("PULSE_SINK", SINK.into()),
            // Enumerating ALSA devices probes the `jack` PCM too; it must not start a server.
            ("JACK_NO_START_SERVER", "1".into()),
        ]
    }

    /// Adds [`PulseServer::env`] to `command`.
    pub fn apply_env(&self, command: &mut Command) {
        for (k, v) in self.env() {
            command.env(k, v);
        }
    }

    /// The server's socket.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("pulse/native")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("pulseaudio.log")
    }

    /// What the server logged (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
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
            .unwrap_or_else(|e| panic!("pactl {args:?} failed: {e}"))
    }

    /// Unloads the null sink: its monitor, the source hark records from, vanishes (a USB
    /// microphone unplugged). Streams on it are killed.
    pub fn remove_sink(&self) {
        self.pactl(&UNLOAD_SINK);
    }

    /// Loads the null sink again (the microphone plugged back in).
    pub fn add_sink(&self) {
        self.pactl(&load_sink().each_ref().map(String::as_str));
    }

    /// Plays `file` into the null sink at real time; the returned player is killed on drop.
    /// It ends by itself at the end of the file, or when the sink or the server goes away.
    pub fn play(&self, file: &Path) -> Player {
        let mut c = Command::new("paplay");
        self.apply_env(&mut c);
        c.arg(format!("--device={SINK}"))
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Player(
            c.spawn()
                .unwrap_or_else(|e| panic!("start {c:?} (apt-get install pulseaudio-utils): {e}")),
        )
    }

    /// Kills the server (SIGKILL, as a crash would) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }

    /// Starts the server again in the same directory, so clients find it at the same socket.
    pub fn restart(&mut self) {
        self.kill();
        // A killed server leaves its socket file; the new one replaces it.
        self.spawn();
    }
}

impl Drop for PulseServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `paplay` process; killed (by its pid) on drop.
pub struct Player(Child);

impl Player {
    /// Starts `command` (a `paplay` with its server's environment).
    pub fn spawn(mut command: Command) -> Player {
        Player(command.spawn().unwrap_or_else(|e| {
            panic!("start {command:?} (apt-get install pulseaudio-utils): {e}")
        }))
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        kill_and_reap(&mut self.0);
    }
}

/// Kills `child` (SIGKILL to its pid only) unless it has exited, and reaps it.
pub fn kill_and_reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        // Child::kill sends SIGKILL to this child's pid only.
        let _ = child.kill();
    }
    let _ = child.wait();
}
