//! `hark classify`'s progress on a terminal: an `indicatif` bar on stderr for each file being
//! classified, showing the audio position, the speed in times real time and the time left.
//! Nothing is drawn when stderr is not a terminal (indicatif also hides its bars when `TERM`
//! is unset or `dumb`) or with `--no-progress`.
//!
//! Must not: write to stdout or stderr while bars are shown other than through
//! [`Bars::suspend`], which clears the bars for the write and draws them again after.

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// The bars of the files being classified (several at once with `-j`).
#[derive(Debug)]
pub struct Bars {
    multi: Option<MultiProgress>,
}

impl Bars {
    /// Bars when `wanted` and stderr is a terminal; otherwise a `Bars` that draws nothing.
    pub fn new(wanted: bool) -> Bars {
        let multi = (wanted && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            .filter(|m| !m.is_hidden());
        Bars { multi }
    }

    /// Whether bars are drawn.
    pub fn active(&self) -> bool {
        self.multi.is_some()
    }

    /// A bar for `file`, `seconds` of audio long if its header says (else a spinner); it goes
    /// away when dropped.
    pub fn file(&self, file: &Path, seconds: Option<f64>) -> FileBar {
        let Some(multi) = &self.multi else {
            return FileBar { bar: None };
        };
        let name = file
            .file_name()
            .unwrap_or(file.as_os_str())
            .to_string_lossy();
        let bar = match seconds {
            Some(s) => ProgressBar::new(millis(s)).with_style(style(true)),
            None => ProgressBar::no_length().with_style(style(false)),
        };
        let bar = multi.add(bar.with_prefix(name.into_owned()));
        FileBar { bar: Some(bar) }
    }

    /// Run `f` (which writes to the terminal) with the bars cleared, then draw them again.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.multi {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }
}

/// One file's bar; its position is in milliseconds of audio.
#[derive(Debug)]
pub struct FileBar {
    bar: Option<ProgressBar>,
}

impl FileBar {
    /// The file has been classified up to `seconds`.
    pub fn at(&self, seconds: f64) {
        if let Some(bar) = &self.bar {
            let pos = millis(seconds);
            bar.set_position(bar.length().map_or(pos, |len| pos.min(len)));
        }
    }
}

impl Drop for FileBar {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn millis(seconds: f64) -> u64 {
    (seconds.max(0.0) * 1000.0).round() as u64
}

/// `name [bar] 0:12:30/8:00:00  412x real time  ETA 18m`, or without a length a spinner, the
/// position and the speed.
fn style(with_length: bool) -> ProgressStyle {
    let template = if with_length {
        "{prefix} [{bar:30}] {audio_pos}/{audio_len} {speed}x real time, ETA {eta}"
    } else {
        "{prefix} {spinner} {audio_pos} {speed}x real time"
    };
    ProgressStyle::with_template(template)
        .expect("the progress template is valid")
        .progress_chars("=> ")
        .with_key(
            "audio_pos",
            |s: &ProgressState, w: &mut dyn std::fmt::Write| clock(s.pos(), w),
        )
        .with_key(
            "audio_len",
            |s: &ProgressState, w: &mut dyn std::fmt::Write| clock(s.len().unwrap_or(0), w),
        )
        .with_key("speed", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            // Milliseconds of audio per wall second / 1000: audio seconds per second.
            let _ = write!(w, "{:.0}", s.per_sec() / 1000.0);
        })
}

/// Milliseconds as `h:mm:ss`.
fn clock(ms: u64, w: &mut dyn std::fmt::Write) {
    let s = ms / 1000;
    let _ = write!(w, "{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_as_hours_minutes_seconds() {
        let mut out = String::new();
        clock(8 * 3600 * 1000 + 61_999, &mut out);
        assert_eq!(out, "8:01:01");
    }

    #[test]
    fn both_templates_parse() {
        style(true);
        style(false);
    }
}
