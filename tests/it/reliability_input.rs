//! Issue 19, hostile input: every reproduction of the list about files a user can hand
//! hark (audio headers, `.npy` arrays, feature specs, a FIFO that never writes, config values
//! that echo files), run against the real binary. Each test is named after its fix.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::cli::{assert_fails_with, hark, stderr};
use crate::common::hark::command;

/// A RIFF/WAVE file: a `fmt ` chunk (`format` 1 = PCM, 3 = float) declaring `channels` and
/// `rate`, then a second of zero samples (for one channel at 16 kHz) as its data.
fn wav_header_says(
    dir: &Path,
    name: &str,
    format: u16,
    channels: u16,
    rate: u32,
    bits: u16,
) -> PathBuf {
    let block = channels.max(1) * bits / 8;
    let data = vec![0u8; 16_000 * usize::from(block)];
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&format.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate.wrapping_mul(u32::from(block))).to_le_bytes());
    b.extend_from_slice(&block.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    let path = dir.join(name);
    std::fs::write(&path, b).unwrap();
    path
}

/// `hark classify FILE`, which must end (within a minute: it once grew to gigabytes and never
/// did) without a panic.
fn classify(path: &Path) -> std::process::Output {
    let out = hark(&["classify", path.to_str().unwrap()]);
    assert_ne!(
        out.status.code(),
        Some(101),
        "hark panicked on {}:\n{}",
        path.display(),
        stderr(&out)
    );
    out
}

#[test]
fn wav_rates_outside_1khz_to_768khz_are_refused_before_decoding_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // 16-bit PCM goes to hound; 64-bit float goes to symphonia, which panicked on a rate of 0.
    for (format, bits) in [(1u16, 16u16), (3, 64)] {
        for rate in [0u32, 1, 2, 8, 999, 768_001, u32::MAX] {
            let path = wav_header_says(
                dir.path(),
                &format!("rate{rate}-{bits}.wav"),
                format,
                1,
                rate,
                bits,
            );
            let out = classify(&path);
            assert_fails_with(
                &format!("{bits}-bit WAV at {rate} Hz"),
                &out,
                &[
                    path.to_str().unwrap(),
                    &format!("sample rate {rate} Hz"),
                    "1000 to 768000 Hz",
                ],
            );
        }
    }
    // The edges of the range are audio.
    for rate in [1_000u32, 48_000] {
        let path = wav_header_says(dir.path(), &format!("ok{rate}.wav"), 1, 1, rate, 16);
        let out = classify(&path);
        assert!(out.status.success(), "{rate} Hz: {}", stderr(&out));
    }
}

#[test]
fn wav_with_zero_channels_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (format, bits) in [(1u16, 16u16), (3, 64)] {
        let path = wav_header_says(
            dir.path(),
            &format!("ch0-{bits}.wav"),
            format,
            0,
            16_000,
            bits,
        );
        let out = classify(&path);
        assert_fails_with("0 channels", &out, &[path.to_str().unwrap(), "0 channels"]);
    }
}

#[test]
fn wav_declaring_4_gib_of_data_reads_only_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = wav_header_says(dir.path(), "liar.wav", 1, 1, 16_000, 16);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40..44].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let out = classify(&path);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ends before the length its header declares"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn fifo_input_logs_that_it_waits_and_sigterm_stops_it_cleanly_after_handlers_are_installed() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("never-written.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut child = command()
        .env("NO_COLOR", "1")
        .args(["--log", "info", "run", "--no-socket", "--input"])
        .arg(&fifo)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    // The wait is logged after a second; give the model time to load first.
    std::thread::sleep(Duration::from_secs(4));
    // SAFETY: kill(2) on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "hark did not stop on SIGTERM while waiting on a FIFO"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = reader.join().unwrap();
    assert!(status.success(), "{status}: {text}");
    assert!(
        text.contains(&format!("waiting for data on {}", fifo.display())),
        "{text}"
    );
    assert!(text.contains("SIGTERM: stopping"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// hark features: specs and .npy

/// A valid spec (CED-tiny's front end) with `key = value` replaced.
fn spec_with(dir: &Path, key: &str, value: &str) -> PathBuf {
    let base = [
        ("sample_rate", "16000"),
        ("n_fft", "512"),
        ("win_length", "512"),
        ("hop_length", "160"),
        ("window", "\"hann\""),
        ("center", "true"),
        ("pad_mode", "\"constant\""),
        ("n_mels", "64"),
        ("fmin", "0.0"),
        ("fmax", "8000.0"),
        ("mel_scale", "\"slaney\""),
        ("mel_norm", "\"slaney\""),
        ("power", "2.0"),
        ("log", "\"db\""),
    ];
    let text: String = base
        .iter()
        .map(|(k, v)| format!("{k} = {}\n", if *k == key { value } else { v }))
        .collect();
    let path = dir.join(format!("spec-{key}-{}.toml", value.len()));
    std::fs::write(&path, text).unwrap();
    path
}

fn features(spec: &Path, input: &Path, out: &Path) -> std::process::Output {
    let o = hark(&[
        "features",
        "--spec",
        spec.to_str().unwrap(),
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ne!(
        o.status.code(),
        Some(101),
        "hark features panicked:\n{}",
        stderr(&o)
    );
    assert_ne!(
        o.status.code(),
        Some(134),
        "hark features aborted:\n{}",
        stderr(&o)
    );
    o
}

/// A float32 `.npy` with `header_dict` and `data`.
fn npy(dir: &Path, name: &str, header_dict: &str, data: &[u8]) -> PathBuf {
    let mut header = header_dict.to_owned();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    let path = dir.join(name);
    std::fs::write(&path, b).unwrap();
    path
}

#[test]
fn spec_n_fft_above_65536_and_n_mels_above_1024_are_refused_naming_key_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let input = npy(
        dir.path(),
        "in.npy",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (16000,), }",
        &[0u8; 64_000],
    );
    let out = dir.path().join("out.npy");
    for (key, value, range) in [
        ("n_fft", "65537", "from 1 to 65536"),
        ("n_fft", "4294967296", "from 1 to 65536"),
        ("n_fft", "9223372036854775807", "from 1 to 65536"),
        ("win_length", "4294967296", "from 1 to 65536"),
        ("n_mels", "1025", "from 1 to 1024"),
        ("n_mels", "1048576", "from 1 to 1024"),
        ("n_mels", "9223372036854775807", "from 1 to 1024"),
        ("hop_length", "9223372036854775807", "from 1 to 65536"),
        ("sample_rate", "8", "from 1000 to 768000"),
    ] {
        let o = features(&spec_with(dir.path(), key, value), &input, &out);
        assert_fails_with(&format!("{key} = {value}"), &o, &[key, value, range]);
    }
    // The limits themselves are accepted.
    let o = features(&spec_with(dir.path(), "n_mels", "1024"), &input, &out);
    assert!(o.status.success(), "n_mels = 1024: {}", stderr(&o));
}

#[test]
fn npy_fortran_order_with_overflowing_shape_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_with(dir.path(), "n_fft", "512");
    // 2^32 * 2^32 wraps to 0 in 64 bits: it used to pass the length check and index past the end.
    let path = npy(
        dir.path(),
        "wrap.npy",
        "{'descr': '<f4', 'fortran_order': True, 'shape': (4294967296, 4294967296), }",
        &[],
    );
    let o = features(&spec, &path, &dir.path().join("out.npy"));
    assert_fails_with(
        "overflowing shape",
        &o,
        &[path.to_str().unwrap(), "larger than hark reads"],
    );
}

#[test]
fn npy_with_huge_dims_is_refused_before_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_with(dir.path(), "n_fft", "512");
    let path = npy(
        dir.path(),
        "huge.npy",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000,), }",
        &[0; 16],
    );
    let o = features(&spec, &path, &dir.path().join("out.npy"));
    assert_fails_with(
        "huge dims",
        &o,
        &[path.to_str().unwrap(), "larger than hark reads"],
    );
}

#[test]
fn npy_path_at_dev_zero_reads_a_bounded_prefix_and_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_with(dir.path(), "n_fft", "512");
    let zero = dir.path().join("zero.npy");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let o = features(&spec, &zero, &dir.path().join("out.npy"));
    assert_fails_with("/dev/zero", &o, &[zero.to_str().unwrap(), "magic"]);
}

// ---------------------------------------------------------------------------------------------
// Config values the issue named

#[test]
fn threads_given_as_1_5_is_refused_not_rounded() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hark.toml");
    std::fs::File::create(&config)
        .unwrap()
        .write_all(b"[model]\nthreads = 1.5\n")
        .unwrap();
    let o = hark(&["check-config", config.to_str().unwrap()]);
    assert_fails_with("threads = 1.5", &o, &["model.threads", "1.5"]);
}

#[test]
fn model_name_pointing_at_a_text_file_does_not_echo_its_contents() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "root:SECRET-FIRST-LINE:0:0\nsecond\n").unwrap();
    let config = dir.path().join("hark.toml");
    std::fs::write(
        &config,
        format!("[model]\nname = {:?}\n", secret.to_str().unwrap()),
    )
    .unwrap();
    let o = command()
        .args([
            "run",
            "--no-socket",
            "--config",
            config.to_str().unwrap(),
            "--input",
        ])
        .arg(dir.path().join("none.wav"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("SECRET-FIRST-LINE"), "{}", stderr(&o));
}

/// Issue 19: a panic symphonia raises on a file is caught quietly: `hark classify` on the
/// fuzz input that makes symphonia's ADTS probe panic prints exactly one line, the error naming
/// the file, and no Rust panic message.
#[test]
fn quiet_caught_decoder_panic_gives_one_error_line_and_no_panicked_at() {
    let input = crate::common::hark::manifest_dir()
        .join("tests/fixtures/fuzz/audio/fuzz-adts-step-by-zero-panic-in-symphonia-probe");
    let out = classify(&input);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("panicked at"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line:\n{err}");
    assert!(
        lines[0].contains("the decoder failed on")
            && lines[0].contains("fuzz-adts-step-by-zero-panic-in-symphonia-probe"),
        "{err}"
    );
}
