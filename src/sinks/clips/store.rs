//! The clips folder: names, writing under a temporary name then renaming, the leftovers of a
//! crash, listing, free space and the retention (`max_disk`, `max_age`), oldest first.
//!
//! Names are `<UTC time>-<event>-<id>.<ext>`, e.g. `20261127T031200.123Z-glass-42.flac` and
//! the same stem `.png`: only `[A-Za-z0-9._-]`, never starting with `.`. Temporary names start
//! with `.` and end in `.tmp`, so nothing serving hark's names serves a half-written file.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDateTime, Utc};
use regex::Regex;

/// The time format at the start of a clip's name.
const TIME_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";

fn name_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(\d{8}T\d{6}\.\d{3}Z)-([a-z0-9_]+)-(\d+)\.(flac|wav|png)$").expect("regex")
    })
}

fn temp_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^\.[A-Za-z0-9._-]+\.(flac|wav|png)\.tmp$").expect("regex"))
}

/// An event name as it appears in file names: lower case, runs of anything but `a-z0-9` as
/// one `_` ("Smoke detector, smoke alarm" → `smoke_detector_smoke_alarm`).
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let s = out.trim_matches('_');
    if s.is_empty() {
        "event".into()
    } else {
        s.to_owned()
    }
}

/// The stem of a clip's files for event `id` called `name` that started at wall clock `time`
/// (RFC 3339; the current time if it does not parse).
pub fn stem(time: &str, name: &str, id: u64) -> String {
    let t = DateTime::parse_from_rfc3339(time)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now());
    format!("{}-{}-{id}", t.format(TIME_FORMAT), slug(name))
}

/// Whether `name` is a final clip or picture name (what may be served).
pub fn is_clip_name(name: &str) -> bool {
    name_re().is_match(name)
}

/// The temporary name `path` is written under before it is renamed.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Write `bytes` to `path` once, sequentially: into a temporary name, flushed to the disk,
/// then renamed, so a crash never leaves a partial file under the final name.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Delete what a crash left under temporary names; returns how many.
pub fn remove_leftovers(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if temp_re().is_match(&name.to_string_lossy()) && std::fs::remove_file(entry.path()).is_ok()
        {
            n += 1;
        }
    }
    Ok(n)
}

/// One clip on disk: its audio and picture files.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredClip {
    pub stem: String,
    /// When the event started (from the name).
    pub time: DateTime<Utc>,
    /// The event's name as in the file name.
    pub label: String,
    pub id: u64,
    /// The audio file, if present.
    pub audio: Option<PathBuf>,
    /// The picture, if present.
    pub image: Option<PathBuf>,
    /// Bytes of both.
    pub bytes: u64,
}

/// Every clip in `dir`, oldest first.
pub fn scan(dir: &Path) -> io::Result<Vec<StoredClip>> {
    let mut clips: Vec<StoredClip> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(c) = name_re().captures(&name) else {
            continue;
        };
        let Ok(time) = NaiveDateTime::parse_from_str(&c[1], TIME_FORMAT) else {
            continue;
        };
        let stem = name[..name.rfind('.').unwrap_or(name.len())].to_owned();
        let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
        let idx = match clips.iter().position(|s| s.stem == stem) {
            Some(i) => i,
            None => {
                clips.push(StoredClip {
                    stem,
                    time: time.and_utc(),
                    label: c[2].to_owned(),
                    id: c[3].parse().unwrap_or(0),
                    audio: None,
                    image: None,
                    bytes: 0,
                });
                clips.len() - 1
            }
        };
        let clip = &mut clips[idx];
        clip.bytes += bytes;
        if &c[4] == "png" {
            clip.image = Some(entry.path());
        } else {
            clip.audio = Some(entry.path());
        }
    }
    clips.sort_by(|a, b| (a.time, &a.stem).cmp(&(b.time, &b.stem)));
    Ok(clips)
}

/// The filesystem holding `dir`: (total bytes, bytes free to an unprivileged writer).
pub fn space(dir: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    Ok((st.f_blocks as u64 * frsize, st.f_bavail as u64 * frsize))
}

/// What the retention may keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Bytes all clips may take (0: no limit).
    pub max_disk: u64,
    /// Seconds a clip is kept (0: forever).
    pub max_age: f64,
}

/// Remove the oldest clips until those left are younger than `max_age` and take at most
/// `max_disk`; returns how many clips were removed.
pub fn apply_retention(dir: &Path, limits: Limits, now: DateTime<Utc>) -> io::Result<usize> {
    let clips = scan(dir)?;
    let mut total: u64 = clips.iter().map(|c| c.bytes).sum();
    let mut removed = 0;
    for c in &clips {
        let age = (now - c.time).num_milliseconds() as f64 / 1000.0;
        let too_old = limits.max_age > 0.0 && age > limits.max_age;
        let too_big = limits.max_disk > 0 && total > limits.max_disk;
        if !(too_old || too_big) {
            break;
        }
        for p in [&c.audio, &c.image].into_iter().flatten() {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        total -= c.bytes;
        removed += 1;
    }
    Ok(removed)
}

/// What a clip's picture says about it (its `tEXt` chunks), for `hark clips`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PictureText {
    /// The event's name as the model spells it.
    pub name: Option<String>,
    pub peak: Option<f32>,
    /// Seconds of audio in the clip.
    pub duration: Option<f64>,
}

/// Read the `hark:*` text of the picture at `path`.
pub fn picture_text(path: &Path) -> io::Result<PictureText> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let reader = png::Decoder::new(file)
        .read_info()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut out = PictureText::default();
    for t in &reader.info().uncompressed_latin1_text {
        match t.keyword.as_str() {
            "hark:name" => out.name = Some(t.text.clone()),
            "hark:peak" => out.peak = t.text.parse().ok(),
            "hark:duration" => out.duration = t.text.parse().ok(),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_sort_by_time() {
        let s = stem("2026-11-27T03:12:00.123Z", "Glass", 42);
        assert_eq!(s, "20261127T031200.123Z-glass-42");
        assert!(is_clip_name(&format!("{s}.flac")));
        assert_eq!(
            slug("Smoke detector, smoke alarm"),
            "smoke_detector_smoke_alarm"
        );
        assert_eq!(slug("../.."), "event");
        assert!(!is_clip_name(".20261127T031200.123Z-glass-42.flac.tmp"));
        assert!(!is_clip_name("20261127T031200.123Z-glass-42.flac/../x"));
    }

    #[test]
    fn retention_removes_the_oldest_first_and_leftovers_go() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (i, t) in [
            "2026-01-01T00:00:00.000Z",
            "2026-01-02T00:00:00.000Z",
            "2026-01-03T00:00:00.000Z",
        ]
        .iter()
        .enumerate()
        {
            let s = stem(t, "Dog", i as u64);
            write_new(&d.join(format!("{s}.wav")), &[0; 100]).unwrap();
            write_new(&d.join(format!("{s}.png")), &[0; 50]).unwrap();
        }
        std::fs::write(d.join(".20260101T000000.000Z-dog-9.wav.tmp"), b"half").unwrap();
        std::fs::write(d.join(".profile"), b"not ours").unwrap();
        assert_eq!(remove_leftovers(d).unwrap(), 1);
        assert!(d.join(".profile").exists());
        let now: DateTime<Utc> = "2026-01-03T12:00:00Z".parse().unwrap();
        let by_size = Limits {
            max_disk: 300,
            max_age: 0.0,
        };
        assert_eq!(apply_retention(d, by_size, now).unwrap(), 1);
        let left = scan(d).unwrap();
        assert_eq!(left.len(), 2);
        assert_eq!(left[0].id, 1, "the oldest went first");
        let by_age = Limits {
            max_disk: 0,
            max_age: 86_400.0,
        };
        assert_eq!(apply_retention(d, by_age, now).unwrap(), 1);
        assert_eq!(scan(d).unwrap()[0].id, 2);
    }
}
