//! `[clips]`: a real recording through `hark run --input FILE --exit-at-end` with clips on.
//! Each event's clip holds the input's own samples from `pre_roll` before its first window to
//! `post_roll` after its end (WAV exactly; FLAC decodes to the same 16-bit samples), its
//! picture decodes at its stated size, the retention removes the oldest first, `min_free`, a
//! full or read-only filesystem (tiny tmpfs mounts) and a bad folder turn clips off while the
//! daemon runs on, a small queue under a burst of events never makes the consumer skip a
//! window, a reload moves clips to a new folder, and bad values name their keys.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hark::record::Record;

use crate::common::cli::{hark, stderr, stdout};
use crate::common::hark::{write_config, Finished, HarkRun};
use crate::common::shared::recordings_or_skip;
use crate::common::tools::require;

/// The smoke alarm of this recording (44.1 kHz mono, 16-bit) makes one event from 11.5 s.
const ALARM: &str = "first_alert_sa302.wav";

fn config(dir: &Path, extra: &str) -> PathBuf {
    let out = dir.join("clips");
    // The machine's free space must not decide these tests (the default `min_free` of 5% turned
    // every clip off on a disk 90% full): only the tests of `min_free` set it.
    let min_free = if extra.contains("min_free") {
        ""
    } else {
        "min_free = 0\n"
    };
    write_config(
        dir,
        "hark.toml",
        &format!(
            "[clips]\nenabled = true\ndir = {:?}\n{min_free}{extra}\n",
            out.to_str().unwrap()
        ),
    )
}

fn run(config: &Path, input: &Path) -> Finished {
    let done = HarkRun::new(config)
        .arg("--input")
        .arg(input)
        .args(&["--exit-at-end", "--fast"])
        .run_to_end(Duration::from_secs(120));
    done.assert_success();
    done
}

/// `(start, end, clip, image)` of every `event_end` that carries a clip.
fn clips_of(done: &Finished) -> Vec<(f64, f64, PathBuf, PathBuf)> {
    done.records
        .iter()
        .filter_map(|r| match r {
            Record::EventEnd {
                start,
                end,
                clip: Some(c),
                image: Some(i),
                ..
            } => Some((*start, *end, c.into(), i.into())),
            _ => None,
        })
        .collect()
}

/// The clips sink's counter `key` in the final status.
fn counter(done: &Finished, key: &str) -> u64 {
    let Record::Status { sinks: Some(s), .. } = done.final_status() else {
        panic!("no sinks in the final status");
    };
    s["clips"][key]
}

fn input_mono(path: &Path) -> (u32, Vec<f32>) {
    let d = hark::audio::decode_file(path).unwrap();
    (d.sample_rate, hark::audio::downmix(&d.samples, d.channels))
}

/// Checks one clip against the input: its length, and every sample (`exact`) or every sample
/// to 16 bits.
fn check_clip(clip: &Path, input: &[f32], rate: u32, span: (f64, f64), roll: (f64, f64)) {
    let (got_rate, got) = input_mono(clip);
    assert_eq!(got_rate, rate, "{}: the capture rate", clip.display());
    let from = ((span.0 - roll.0).max(0.0) * rate as f64).round() as usize;
    let to = (((span.1 + roll.1) * rate as f64).round() as usize).min(input.len());
    assert_eq!(
        got.len(),
        to - from,
        "{}: event + pre + post",
        clip.display()
    );
    let pre = ((roll.0 * rate as f64) as usize).min(got.len());
    assert!(
        pre > 0 && span.0 >= roll.0,
        "the event starts after a full pre-roll"
    );
    assert_eq!(
        got[..pre],
        input[from..from + pre],
        "the pre-roll is the input just before the event's first window"
    );
    assert_eq!(
        got,
        input[from..to],
        "{}: the input's samples",
        clip.display()
    );
}

fn check_picture(image: &Path) {
    let file = std::fs::File::open(image).unwrap();
    let reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let info = reader.info();
    assert_eq!((info.width, info.height), (800, 300), "{}", image.display());
}

fn run_format_and_check(format: &str) {
    let Some(rec) = recordings_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!("format = {format:?}\npre_roll = 3.0\npost_roll = 2.0"),
    );
    let input = rec.join(ALARM);
    let done = run(&cfg, &input);
    let clips = clips_of(&done);
    let events = done.event_starts().len();
    assert!(events >= 1, "the alarm makes an event");
    assert_eq!(clips.len(), events, "one clip per event");
    let (rate, samples) = input_mono(&input);
    for (start, end, clip, image) in &clips {
        assert!(clip.to_str().unwrap().ends_with(&format!(".{format}")));
        check_clip(clip, &samples, rate, (*start, *end), (3.0, 2.0));
        check_picture(image);
    }
    // The final status leaves the consumer before the writer has written the last clip, so
    // only what no write can change is checked there; the files themselves are checked above.
    assert_eq!(counter(&done, "dropped"), 0);
    // `hark clips` lists them with label, duration and peak.
    let listed = hark(&["clips", "--config", cfg.to_str().unwrap()]);
    let text = stdout(&listed);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let line = text
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("no clip listed: {text}"));
    assert!(line.contains(clips[0].2.to_str().unwrap()), "{line}");
    assert!(line.contains("smoke_alarm"), "{line}");
    let only_dogs = hark(&["clips", "--config", cfg.to_str().unwrap(), "--label", "dog"]);
    assert_eq!(stdout(&only_dogs).lines().count(), 1, "the header alone");
}

#[test]
fn a_wav_clip_holds_the_input_exactly_from_pre_roll_to_post_roll() {
    run_format_and_check("wav");
}

#[test]
fn a_flac_clip_decodes_to_the_same_samples() {
    run_format_and_check("flac");
}

/// A clip file named as hark names them, `days` days old.
fn old_clip(dir: &Path, days: i64, id: u64, bytes: usize) -> PathBuf {
    let t = chrono::Utc::now() - chrono::Duration::days(days);
    let stem = hark::sinks::clips::store::stem(&t.to_rfc3339(), "Dog", id);
    let p = dir.join(format!("{stem}.wav"));
    std::fs::write(&p, vec![0u8; bytes]).unwrap();
    p
}

#[test]
fn retention_removes_the_oldest_first_by_age_and_by_size() {
    let Some(rec) = recordings_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clips");
    std::fs::create_dir_all(&out).unwrap();
    let ancient = old_clip(&out, 40, 1, 1000);
    let recent = old_clip(&out, 2, 2, 1_000_000);
    std::fs::write(out.join(".20200101T000000.000Z-dog-3.wav.tmp"), b"half").unwrap();
    // One WAV clip of the alarm and its picture take 2.36 MB: 3 MiB keeps it, not the 1 MB
    // clip before it.
    let cfg = config(
        dir.path(),
        "format = \"wav\"\nmax_age = 864000.0\nmax_disk = \"3M\"",
    );
    let done = run(&cfg, &rec.join(ALARM));
    let clips = clips_of(&done);
    assert_eq!(clips.len(), 1);
    assert!(!ancient.exists(), "older than max_age");
    assert!(
        !recent.exists(),
        "the oldest goes first when max_disk is reached"
    );
    assert!(
        clips[0].2.exists() && clips[0].3.exists(),
        "the new clip stays"
    );
    assert!(
        !out.join(".20200101T000000.000Z-dog-3.wav.tmp").exists(),
        "leftovers go at start"
    );
    assert_eq!(counter(&done, "removed"), 2);
    // `hark clips prune` applies a tighter limit now.
    let tight = config(dir.path(), "max_disk = 1000");
    let pruned = hark(&["clips", "prune", "--config", tight.to_str().unwrap()]);
    assert!(
        stdout(&pruned).contains("removed 1 clips"),
        "{}",
        stdout(&pruned)
    );
    assert!(!clips[0].2.exists());
}

#[test]
fn min_free_stops_writing_and_the_daemon_runs_on() {
    let Some(rec) = recordings_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "min_free = \"100%\"");
    let done = run(&cfg, &rec.join(ALARM));
    assert!(!done.event_starts().is_empty(), "events go on");
    assert!(clips_of(&done).is_empty(), "no clip is announced");
    assert!(counter(&done, "dropped") >= 1);
    assert_eq!(counter(&done, "written"), 0);
    assert!(done.stderr.contains("clips disabled"), "{}", done.stderr);
    let files = std::fs::read_dir(dir.path().join("clips")).unwrap().count();
    assert_eq!(files, 0);
}

/// A tmpfs of `size` mounted at `at` with `opts`; None (after saying so) where mounting is not
/// allowed.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, opts: &str) -> Option<Mount> {
        require("mount");
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        }
        ok.then(|| Mount(at.into()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        require("umount");
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_write_cleanly_and_the_daemon_runs_on() {
    let Some(rec) = recordings_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(_m) = Mount::tmpfs(&dir.path().join("clips"), "size=256k") else {
        return;
    };
    let cfg = config(dir.path(), "format = \"wav\"\nmin_free = 0");
    let done = run(&cfg, &rec.join(ALARM));
    assert_eq!(clips_of(&done).len(), 1, "announced when queued");
    assert!(
        done.stderr.contains("No space left on device") && done.stderr.contains("clips disabled"),
        "the 2.3 MB clip does not fit: {}",
        done.stderr
    );
    let names: Vec<_> = std::fs::read_dir(dir.path().join("clips"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.is_empty(),
        "no half clip, no temporary file: {names:?}"
    );
    assert!(done.records.iter().any(|r| r.kind() == "prediction"));
}

#[test]
fn a_read_only_or_impossible_folder_turns_clips_off_with_one_line() {
    let Some(rec) = recordings_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A folder that cannot be made: its parent is a file.
    std::fs::write(dir.path().join("file"), b"").unwrap();
    let cfg = write_config(
        dir.path(),
        "bad.toml",
        &format!(
            "[clips]\nenabled = true\nmin_free = 0\ndir = {:?}\n",
            dir.path().join("file/clips").to_str().unwrap()
        ),
    );
    let done = run(&cfg, &rec.join(ALARM));
    assert!(!done.event_starts().is_empty() && clips_of(&done).is_empty());
    assert_eq!(
        done.stderr.matches("clips disabled").count(),
        1,
        "{}",
        done.stderr
    );
    // A read-only filesystem.
    let ro = dir.path().join("ro");
    let Some(_m) = Mount::tmpfs(&ro, "ro,size=64k") else {
        return;
    };
    let cfg = write_config(
        dir.path(),
        "ro.toml",
        &format!(
            "[clips]\nenabled = true\nmin_free = 0\ndir = {:?}\n",
            ro.join("clips").to_str().unwrap()
        ),
    );
    let done = run(&cfg, &rec.join(ALARM));
    assert!(done.stderr.contains("clips disabled"), "{}", done.stderr);
    assert!(clips_of(&done).is_empty());
    assert!(counter(&done, "dropped") >= 1);
}

#[test]
fn a_burst_of_events_with_a_small_queue_never_makes_the_consumer_skip() {
    let Some(rec) = recordings_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // 30 s of alarm and speech, read in real time; a hop of 0.125 s and low thresholds with no
    // smoothing, hold or minimum make events come and go several times a second.
    let input = dir.path().join("loop.wav");
    let (rate, one) = input_mono(&rec.join(ALARM));
    let looped: Vec<f32> = one[5 * rate as usize..]
        .iter()
        .chain(&one[5 * rate as usize..])
        .copied()
        .take(30 * rate as usize)
        .collect();
    crate::common::wav::write_i16(&input, rate, looped);
    let cfg = config(
        dir.path(),
        "format = \"wav\"\nqueue = 1\npre_roll = 0.5\npost_roll = 0.0\nmax_length = 2.0\n\
         [smoothing]\nwindows = 1\n[decision]\non = 0.05\noff = 0.04\nmin_duration = 0.0\n\
         hold = 0.0\nlisten = []\n",
    );
    let done = HarkRun::new(&cfg)
        .args(&["--hop", "0.125", "--input"])
        .arg(&input)
        .arg("--exit-at-end")
        .run_to_end(Duration::from_secs(90));
    done.assert_success();
    let events = done.event_starts().len();
    assert!(events >= 50, "a burst: {events} events in 30 s");
    let Record::Status {
        skipped_windows,
        overruns,
        ..
    } = done.final_status()
    else {
        unreachable!()
    };
    assert_eq!(
        (*skipped_windows, *overruns),
        (0, 0),
        "clips never hold up the consumer"
    );
    let announced = clips_of(&done).len() as u64;
    let written = counter(&done, "written");
    assert_eq!(
        written, announced,
        "every clip an event_end announced was written"
    );
    for (_, _, clip, _) in clips_of(&done) {
        assert!(clip.exists(), "{}", clip.display());
    }
}

#[test]
fn a_reload_moves_new_clips_to_the_new_folder() {
    let Some(rec) = recordings_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let mut daemon = HarkRun::new(&cfg)
        .arg("--input")
        .arg(rec.join(ALARM))
        .arg("--exit-at-end")
        .spawn();
    daemon
        .wait_for(Duration::from_secs(30), |r| r.kind() == "prediction")
        .expect("running");
    let moved = dir.path().join("moved");
    write_config(
        dir.path(),
        "hark.toml",
        &format!(
            "[clips]\nenabled = true\nmin_free = 0\ndir = {:?}\n",
            moved.to_str().unwrap()
        ),
    );
    // SAFETY: kill(2) on the pid of our running child.
    assert_eq!(unsafe { libc::kill(daemon.pid(), libc::SIGHUP) }, 0);
    let end = daemon
        .wait_for(Duration::from_secs(60), |r| r.kind() == "event_end")
        .expect("the alarm's event ends");
    let Record::EventEnd {
        clip: Some(clip), ..
    } = end
    else {
        panic!("no clip in {end:?}")
    };
    assert!(Path::new(&clip).starts_with(&moved), "{clip}");
    daemon.terminate(Duration::from_secs(20)).assert_success();
    assert!(Path::new(&clip).exists());
}

#[test]
fn bad_clips_values_name_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a_file"), b"").unwrap();
    let cases = [
        ("pre_roll = -1.0", "clips.pre_roll"),
        ("post_roll = -0.5", "clips.post_roll"),
        ("format = \"mp3\"", "format"),
        ("max_disk = \"lots\"", "clips.max_disk"),
        ("labels = [\"NoSuchLabel\"]", "clips.labels"),
    ];
    let mut all = cases.map(|(v, k)| (v.to_owned(), k)).to_vec();
    let file = dir.path().join("a_file");
    all.push((format!("dir = {:?}", file.to_str().unwrap()), "clips.dir"));
    for (value, key) in all {
        let cfg = write_config(dir.path(), "bad.toml", &format!("[clips]\n{value}\n"));
        let out = HarkRun::new(&cfg)
            .arg("--input")
            .arg(dir.path().join("a_file"))
            .run_to_end(Duration::from_secs(30));
        assert!(!out.status.success(), "{value}: accepted");
        assert!(
            out.stderr.contains(key),
            "{value}: the error does not name {key}: {}",
            out.stderr
        );
    }
}
