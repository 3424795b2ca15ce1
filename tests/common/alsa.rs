//! An ALSA capture device backed by a raw file, for testing device capture on machines
//! without a sound card (CI, containers).
//!
//! [`AlsaFileDevice::new`] writes a private ALSA configuration: a copy of the system's
//! `/usr/share/alsa/alsa.conf` followed by a PCM of ALSA's `file` plugin whose `infile` is the
//! raw audio and whose slave is the `null` PCM. Point `ALSA_CONFIG_PATH` at it (see
//! [`AlsaFileDevice::env`]) before the first cpal or ALSA call of the process (or in a child's
//! environment) and the device shows up in `hark devices` and can be opened like a sound card.
//!
//! What the plugin does, as measured here (alsa-lib 1.2.8, cpal 0.18):
//!
//! - **Configuration.** It accepts any format, 1 to 2^30 channels and any rate, so cpal's
//!   default-config heuristics pick **f32, 2 channels, 48 000 Hz** (stereo beats mono, f32 beats
//!   integers, 48 kHz beats the rest). The infile is copied into the stream byte for byte with no
//!   conversion, so it must be raw interleaved f32 little-endian stereo at 48 kHz:
//!   [`make_raw_f32_stereo_48k`] makes one from any recording. With cpal's default buffer
//!   size the period is 240 frames (5 ms), so each callback brings 480 interleaved samples.
//! - **Pacing.** None: the `null` slave is always ready, so the device delivers as fast as
//!   cpal reads it — a one-second file arrives in a few milliseconds. A ring smaller than the
//!   file overflows at once, which is how the overrun test provokes overruns; a test that
//!   wants the content must give the ring room for the whole file.
//! - **End of the infile.** Nothing marks it: no error, no xrun, no silence. The stream keeps
//!   delivering full periods at full speed, but `read(2)` on the infile returns 0, so the
//!   plugin copies nothing into them and each period holds whatever cpal's reused transfer
//!   buffer held before. The period in which the file ran out (its head the file's last
//!   frames, its tail left over from the period before) is repeated for ever. For a file of
//!   whole periods that is the last period: a sine whose period divides 240 frames, like
//!   1 kHz, just goes on. So take exactly as many samples as the file has and ignore the
//!   rest; a device source never reports `ended`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// The system ALSA configuration the private one starts from, so `null`, `default` and the
/// hardware PCMs keep their usual definitions.
const SYSTEM_ALSA_CONF: &str = "/usr/share/alsa/alsa.conf";

/// A file-backed ALSA PCM named `name`, defined in a private configuration file.
pub struct AlsaFileDevice {
    /// The PCM's name, which is also its description: what `--device` matches.
    pub name: String,
    /// The ALSA configuration to put in `ALSA_CONFIG_PATH`.
    pub config_path: PathBuf,
    /// Holds the configuration and the copy of the raw input; removed on drop.
    dir: TempDir,
}

impl AlsaFileDevice {
    /// Defines PCM `name` reading `raw_input`, which must already be in the format the stream
    /// will open (see the module docs: raw f32 LE stereo 48 kHz for cpal's default config).
    /// The input is copied, so the caller's file may go away.
    pub fn new(name: &str, raw_input: &Path) -> AlsaFileDevice {
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "ALSA PCM name {name:?} must be ASCII letters, digits, '_' or '-'"
        );
        let dir = tempfile::Builder::new()
            .prefix("hark-alsa-")
            .tempdir()
            .expect("create a temporary directory for the ALSA configuration");
        let infile = dir.path().join(format!("{name}.raw"));
        fs::copy(raw_input, &infile).unwrap_or_else(|e| {
            panic!(
                "copy raw input {} for the ALSA device: {e}",
                raw_input.display()
            )
        });
        let infile = infile
            .to_str()
            .expect("temporary paths are UTF-8")
            .to_owned();
        assert!(
            !infile.contains(['"', '\\']),
            "path {infile:?} cannot be quoted in an ALSA configuration"
        );
        let mut config = fs::read_to_string(SYSTEM_ALSA_CONF)
            .unwrap_or_else(|e| panic!("read {SYSTEM_ALSA_CONF} (is alsa-lib installed?): {e}"));
        config.push_str(&format!(
            "\n# hark test device: captures the contents of a raw file.\n\
             pcm.{name} {{\n\
             \x20   type file\n\
             \x20   slave.pcm \"null\"\n\
             \x20   file \"/dev/null\"\n\
             \x20   infile \"{infile}\"\n\
             \x20   format \"raw\"\n\
             \x20   hint {{ show on description \"{name}\" }}\n\
             }}\n"
        ));
        let config_path = dir.path().join("alsa.conf");
        fs::write(&config_path, config).expect("write the ALSA configuration");
        AlsaFileDevice {
            name: name.to_owned(),
            config_path,
            dir,
        }
    }

    /// The environment variable that makes ALSA (and so cpal) see this device, for
    /// `Command::env` or `std::env::set_var` before the first ALSA call.
    pub fn env(&self) -> (&str, PathBuf) {
        ("ALSA_CONFIG_PATH", self.config_path.clone())
    }

    /// The directory holding the configuration and the input copy.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Converts any recording sox can read into raw interleaved 32-bit float little-endian stereo
/// at 48 kHz: the format cpal opens the file device with. Mono input is duplicated to both
/// channels; no dither is added, so float input passes through exactly.
pub fn make_raw_f32_stereo_48k(src_wav: &Path, out: &Path) {
    let mut sox = Command::new("sox");
    // -D: no dither, which would add noise to float input.
    sox.arg("-D").arg(src_wav);
    sox.args([
        "-t",
        "raw",
        "-e",
        "floating-point",
        "-b",
        "32",
        "-L",
        "-c",
        "2",
        "-r",
        "48000",
    ]);
    sox.arg(out);
    super::tools::run(sox);
}

/// Writes a 32-bit float mono WAV at `rate` holding sox's `synth` effect, e.g.
/// `synth_wav(path, 48000, &["1", "sine", "1000", "vol", "0.5"])` for one second of a 1 kHz
/// sine of amplitude 0.5 (the arguments after `synth`, then any further effects).
pub fn synth_wav(out: &Path, rate: u32, synth_args: &[&str]) {
    let mut sox = Command::new("sox");
    sox.args([
        "-n",
        "-r",
        &rate.to_string(),
        "-c",
        "1",
        "-e",
        "floating-point",
        "-b",
        "32",
    ]);
    sox.arg(out).arg("synth").args(synth_args);
    super::tools::run(sox);
}

/// Reads raw interleaved f32 LE stereo back and averages it to mono: what a device source
/// should deliver for that file.
pub fn raw_f32_stereo_to_mono(raw: &Path) -> Vec<f32> {
    let bytes = fs::read(raw).unwrap_or_else(|e| panic!("read {}: {e}", raw.display()));
    bytes
        .chunks_exact(8)
        .map(|frame| {
            let left = f32::from_le_bytes(frame[..4].try_into().unwrap());
            let right = f32::from_le_bytes(frame[4..].try_into().unwrap());
            (left + right) * 0.5
        })
        .collect()
}
