//! The `[clips]` section: where clips go, how much audio around each event, which format,
//! which events, and the retention limits; and its validation.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::validate::{count_in, seconds_in, Checked, Invalid, Problems};

/// The longest pre-roll or post-roll, in seconds: the pre-roll ring holds it at the capture
/// rate (30 s at 48 kHz is 5.8 MB), and evidence of a sound is never that far from it.
pub const MAX_ROLL_SECONDS: f64 = 30.0;

/// The longest clip, in seconds (10 minutes: 115 MB of samples at 48 kHz while it is open).
pub const MAX_LENGTH_SECONDS: f64 = 600.0;

/// The oldest `max_age`, ten years; anything longer is a typo.
pub const MAX_AGE_SECONDS: f64 = 315_360_000.0;

/// The largest size in bytes `max_disk` or `min_free` take, 1 PiB.
pub const MAX_BYTES: u64 = 1 << 50;

/// The most clips waiting for the writer.
pub const MAX_QUEUE: usize = 64;

/// The audio format of clips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClipFormat {
    /// FLAC, 16-bit (flacenc): lossless for 16-bit sources, about half the size of WAV.
    Flac,
    /// WAV, 32-bit float (hound): the samples exactly as the pipeline had them.
    Wav,
}

impl ClipFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ClipFormat::Flac => "flac",
            ClipFormat::Wav => "wav",
        }
    }
}

/// A size as written in the config: whole bytes (`1073741824`), with a binary suffix
/// (`"500M"`, `"2G"`: K, M, G, T are powers of 1024) or a share of the filesystem (`"10%"`).
/// Kept as written and checked by [`ClipsSettings::validate`], so a bad value names its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SizeSetting {
    Int(i64),
    Float(f64),
    Text(String),
}

/// A checked size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    Bytes(u64),
    /// Percent of the filesystem's total size, 0 to 100.
    Percent(f64),
}

impl Size {
    /// In bytes, for a filesystem of `total` bytes.
    pub fn bytes_of(self, total: u64) -> u64 {
        match self {
            Size::Bytes(b) => b,
            Size::Percent(p) => (total as f64 * p / 100.0) as u64,
        }
    }
}

impl SizeSetting {
    /// The size, or what is wrong with it.
    pub fn parse(&self, key: &str) -> Result<Size, Invalid> {
        let allowed = "0 to 1 PiB: whole bytes, a number with K, M, G or T (powers of 1024), \
                       or a percent of the filesystem such as \"10%\"";
        let bad = |v: String| Invalid::new(key, v, "not a size").allowed(allowed);
        match self {
            SizeSetting::Int(i) if (0..=MAX_BYTES as i64).contains(i) => Ok(Size::Bytes(*i as u64)),
            SizeSetting::Int(i) => Err(bad(i.to_string())),
            SizeSetting::Float(f) => Err(bad(f.to_string())),
            SizeSetting::Text(t) => parse_size(t.trim()).ok_or_else(|| bad(format!("{t:?}"))),
        }
    }
}

fn parse_size(t: &str) -> Option<Size> {
    if let Some(p) = t.strip_suffix('%') {
        let p: f64 = p.trim().parse().ok()?;
        return (p.is_finite() && (0.0..=100.0).contains(&p)).then_some(Size::Percent(p));
    }
    let t = t.trim_end_matches(['B', 'b']).trim_end_matches('i');
    let (num, shift) = match t.char_indices().last()? {
        (i, 'K' | 'k') => (&t[..i], 10),
        (i, 'M' | 'm') => (&t[..i], 20),
        (i, 'G' | 'g') => (&t[..i], 30),
        (i, 'T' | 't') => (&t[..i], 40),
        _ => (t, 0),
    };
    let n: f64 = num.trim().parse().ok()?;
    let bytes = n * (1u64 << shift) as f64;
    let whole = shift > 0 || n.fract() == 0.0;
    (n.is_finite() && n >= 0.0 && whole && bytes <= MAX_BYTES as f64)
        .then_some(Size::Bytes(bytes as u64))
}

/// `[clips]`: a sound clip and a spectrogram picture of every event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipsSettings {
    /// Off by default: clips cost disk writes.
    pub enabled: bool,
    /// Where clips go; absolute. Default: `$STATE_DIRECTORY/clips` under systemd's
    /// `StateDirectory=` (`/var/lib/hark/clips`), else `$XDG_STATE_HOME/hark/clips`
    /// (`~/.local/state/hark/clips`).
    pub dir: PathBuf,
    /// Seconds of audio before the event's first window.
    pub pre_roll: f64,
    /// Seconds of audio after the event's end.
    pub post_roll: f64,
    /// The longest clip in seconds; a clip is cut there and the event goes on.
    pub max_length: f64,
    pub format: ClipFormat,
    /// Labels or groups whose events get clips; empty: every event (the listen list).
    pub labels: Vec<String>,
    /// Clips (with their pictures) may take at most this much; the oldest go first.
    pub max_disk: SizeSetting,
    /// Clips older than this many seconds are removed; 0 keeps them.
    pub max_age: f64,
    /// Never write when the filesystem has less free space than this.
    pub min_free: SizeSetting,
    /// Finished clips waiting for the writer; one more is dropped and counted.
    #[serde(deserialize_with = "crate::validate::whole_number")]
    pub queue: usize,
}

impl Default for ClipsSettings {
    fn default() -> Self {
        ClipsSettings {
            enabled: false,
            dir: default_dir(),
            pre_roll: 3.0,
            post_roll: 2.0,
            max_length: 60.0,
            format: ClipFormat::Flac,
            labels: Vec::new(),
            max_disk: SizeSetting::Text("1G".into()),
            max_age: 30.0 * 86_400.0,
            min_free: SizeSetting::Text("5%".into()),
            queue: 8,
        }
    }
}

/// `$STATE_DIRECTORY/clips` (systemd's `StateDirectory=`), else `$XDG_STATE_HOME/hark/clips`,
/// else `~/.local/state/hark/clips`.
pub fn default_dir() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(state) = var("STATE_DIRECTORY") {
        // systemd joins several directories with ':'; the first is hark's.
        let first = state
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        return Path::new(&first).join("clips");
    }
    let base = var("XDG_STATE_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    base.join("hark").join("clips")
}

impl ClipsSettings {
    /// Check every value; each problem names its key.
    pub fn validate(&self) -> Checked {
        let mut problems = Problems::default();
        for (key, v) in [
            ("clips.pre_roll", self.pre_roll),
            ("clips.post_roll", self.post_roll),
        ] {
            if let Err(p) = seconds_in(key, v, true, MAX_ROLL_SECONDS) {
                problems.push(p);
            }
        }
        if let Err(p) = seconds_in(
            "clips.max_length",
            self.max_length,
            false,
            MAX_LENGTH_SECONDS,
        ) {
            problems.push(p);
        }
        if let Err(p) = seconds_in("clips.max_age", self.max_age, true, MAX_AGE_SECONDS) {
            problems.push(p);
        }
        if let Err(p) = count_in("clips.queue", self.queue, 1, MAX_QUEUE) {
            problems.push(p);
        }
        for (key, s) in [
            ("clips.max_disk", &self.max_disk),
            ("clips.min_free", &self.min_free),
        ] {
            if let Err(p) = s.parse(key) {
                problems.push(p);
            }
        }
        if let Some(p) = self.dir_problem() {
            problems.push(p);
        }
        if self.labels.iter().any(|l| l.is_empty()) {
            problems.push(Invalid::new(
                "clips.labels",
                format!("{:?}", self.labels),
                "a label is empty",
            ));
        }
        problems.into_result()
    }

    fn dir_problem(&self) -> Option<Invalid> {
        let shown = self.dir.display().to_string();
        if !self.dir.is_absolute() {
            return Some(
                Invalid::new("clips.dir", shown, "must be an absolute path")
                    .allowed("a directory such as /var/lib/hark/clips"),
            );
        }
        let is_file = std::fs::metadata(&self.dir).is_ok_and(|m| !m.is_dir());
        is_file.then(|| {
            Invalid::new("clips.dir", shown, "exists and is not a directory")
                .allowed("a directory, or a path hark may create")
        })
    }

    /// `max_disk`, checked.
    pub fn max_disk(&self) -> Size {
        self.max_disk
            .parse("clips.max_disk")
            .unwrap_or(Size::Bytes(0))
    }

    /// `min_free`, checked.
    pub fn min_free(&self) -> Size {
        self.min_free
            .parse("clips.min_free")
            .unwrap_or(Size::Bytes(0))
    }

    /// Whether events named `name` (a label, or its group `group`) get clips.
    pub fn wants(&self, label: &str, group: Option<&str>) -> bool {
        self.labels.is_empty()
            || self
                .labels
                .iter()
                .any(|l| l == label || Some(l.as_str()) == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_every_documented_form() {
        let p = |t: &str| SizeSetting::Text(t.into()).parse("k");
        assert_eq!(p("500M").unwrap(), Size::Bytes(500 << 20));
        assert_eq!(p("2GiB").unwrap(), Size::Bytes(2 << 30));
        assert_eq!(p("1.5K").unwrap(), Size::Bytes(1536));
        assert_eq!(p("12").unwrap(), Size::Bytes(12));
        assert_eq!(p("10%").unwrap(), Size::Percent(10.0));
        assert_eq!(Size::Percent(10.0).bytes_of(1000), 100);
        for bad in ["x", "-1M", "101%", "1.5", "2000T", ""] {
            let e = p(bad).unwrap_err().to_string();
            assert!(e.contains("k = ") && e.contains("allowed"), "{bad}: {e}");
        }
        assert!(SizeSetting::Int(-1).parse("k").is_err());
        assert!(SizeSetting::Float(1.5).parse("k").is_err());
    }

    #[test]
    fn bad_values_name_their_keys() {
        let s = ClipsSettings {
            pre_roll: -1.0,
            post_roll: f64::NAN,
            dir: "relative/clips".into(),
            queue: 0,
            ..ClipsSettings::default()
        };
        let e = s.validate().unwrap_err().to_string();
        for key in [
            "clips.pre_roll",
            "clips.post_roll",
            "clips.dir",
            "clips.queue",
        ] {
            assert!(e.contains(key), "{key}: {e}");
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        let s = ClipsSettings {
            dir: file.path().into(),
            ..ClipsSettings::default()
        };
        let e = s.validate().unwrap_err().to_string();
        assert!(
            e.contains("clips.dir") && e.contains("not a directory"),
            "{e}"
        );
    }

    #[test]
    fn the_default_dir_follows_systemd_then_xdg() {
        // Only reads the environment; checked on whatever this process has.
        let d = default_dir();
        assert!(d.ends_with("clips"), "{}", d.display());
    }
}
