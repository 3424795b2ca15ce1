//! Decoding, downmixing and resampling against real files.
//!
//! Fixtures are generated here, into a temporary directory: WAVs with hound, FLAC/Ogg with
//! `sox`, MP3 with whichever encoder is installed (`lame`, `ffmpeg`, or a sox built with MP3).

use std::f32::consts::PI;
use std::path::{Path, PathBuf};
use std::process::Command;

use hark::audio::{self, AudioError, AudioReader, StreamResampler};

use crate::common::shared::shared_or_skip;
use crate::common::tools::sox;

// ---------------------------------------------------------------------------------------------
// helpers

fn sine(rate: u32, secs: f32, freq: f32, amp: f32) -> Vec<f32> {
    let n = (rate as f32 * secs).round() as usize;
    (0..n)
        .map(|i| amp * (2.0 * PI * freq * i as f32 / rate as f32).sin())
        .collect()
}

/// Interleave one signal per channel.
fn interleave(channels: &[Vec<f32>]) -> Vec<f32> {
    let frames = channels[0].len();
    (0..frames)
        .flat_map(|i| channels.iter().map(move |c| c[i]))
        .collect()
}

fn write_wav_int(path: &Path, rate: u32, channels: u16, bits: u16, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let full = ((1i64 << (bits - 1)) - 1) as f32;
    for &s in samples {
        let v = (s * full).round() as i32;
        if bits == 8 {
            w.write_sample(v as i8).unwrap();
        } else {
            w.write_sample(v).unwrap();
        }
    }
    w.finalize().unwrap();
}

fn write_wav_f32(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Power of `freq` in `x` (Goertzel), normalised by length so different lengths compare.
fn goertzel(x: &[f32], rate: u32, freq: f32) -> f32 {
    let w = 2.0 * PI * freq / rate as f32;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &v in x {
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.len() as f32).powi(2)
}

/// 440 Hz must dominate every other probe frequency by a wide margin.
fn assert_440_dominates(x: &[f32], rate: u32) {
    let p440 = goertzel(x, rate, 440.0);
    for other in [220.0, 400.0, 480.0, 880.0, 1000.0, 3000.0] {
        let p = goertzel(x, rate, other);
        assert!(
            p440 > 100.0 * p,
            "440 Hz power {p440} vs {other} Hz power {p}"
        );
    }
}

fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
}

/// Tiny deterministic PRNG (xorshift) so tests need no extra crate and never flake.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn assert_names_path(err: &AudioError, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(path_str(path)),
        "error message does not name the file {}: {msg}",
        path.display()
    );
}

/// Read `path` through an [`AudioReader`] in blocks of `block` frames, checking the block
/// contract on the way: every block but the last is full, and the end stays the end.
fn stream_mono(path: &Path, block: usize) -> Vec<f32> {
    let mut reader = AudioReader::open(path).unwrap();
    let mut out = Vec::new();
    let mut ended_short = false;
    loop {
        let before = out.len();
        let n = reader.read_mono(&mut out, block).unwrap();
        assert_eq!(
            out.len() - before,
            n,
            "read_mono's count is what it appended"
        );
        if n == 0 {
            break;
        }
        assert!(!ended_short, "a short block came before the end");
        assert!(n <= block);
        ended_short = n < block;
    }
    assert_eq!(
        reader.read_mono(&mut out, block).unwrap(),
        0,
        "the end stays the end"
    );
    out
}

/// [`AudioReader`] in blocks of several sizes gives exactly `decode_file` + `downmix`, and its
/// interleaved reads exactly `decode_file`.
fn assert_streams_like_decode_file(path: &Path) {
    let whole = audio::decode_file(path).unwrap();
    let mono = audio::downmix(&whole.samples, whole.channels);
    // Blocks smaller than, equal to and not dividing the decoders' own blocks and packets.
    for block in [1, 441, 1_000, 4_096, 100_000] {
        assert_eq!(
            stream_mono(path, block),
            mono,
            "{} in blocks of {block}",
            path.display()
        );
    }
    let mut reader = AudioReader::open(path).unwrap();
    assert_eq!(
        (reader.sample_rate(), reader.channels()),
        (whole.sample_rate, whole.channels)
    );
    let mut interleaved = Vec::new();
    while reader.read_interleaved(&mut interleaved, 333).unwrap() > 0 {}
    assert_eq!(interleaved, whole.samples);
}

// ---------------------------------------------------------------------------------------------
// WAV

#[test]
fn wav_integer_depths_decode_to_unit_range() {
    let dir = tempfile::tempdir().unwrap();
    let src = sine(8_000, 0.25, 440.0, 0.5);
    for bits in [8u16, 16, 24, 32] {
        let path = dir.path().join(format!("int{bits}.wav"));
        write_wav_int(&path, 8_000, 1, bits, &src);
        let d = audio::decode_file(&path).unwrap();
        assert_eq!((d.sample_rate, d.channels), (8_000, 1), "{bits}-bit");
        assert_eq!(d.samples.len(), src.len(), "{bits}-bit");
        // One quantisation step of this depth, plus the asymmetry of the full-scale constant.
        let step = 2.0 / (1u64 << (bits - 1)) as f32;
        for (i, (got, want)) in d.samples.iter().zip(&src).enumerate() {
            assert!(
                (got - want).abs() <= step,
                "{bits}-bit sample {i}: {got} vs {want}"
            );
        }
        assert!((peak(&d.samples) - 0.5).abs() < 0.01, "{bits}-bit peak");
    }
}

#[test]
fn wav_full_scale_integers_stay_within_unit_range() {
    let dir = tempfile::tempdir().unwrap();
    for bits in [8u16, 16, 24, 32] {
        let path = dir.path().join(format!("full{bits}.wav"));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        let (min, max) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
        for v in [min, max, 0] {
            if bits == 8 {
                w.write_sample(v as i8).unwrap();
            } else {
                w.write_sample(v as i32).unwrap();
            }
        }
        w.finalize().unwrap();
        let d = audio::decode_file(&path).unwrap();
        assert_eq!(d.samples[0], -1.0, "{bits}-bit minimum");
        // i32::MAX / 2^31 rounds to exactly 1.0 in f32, hence `<=`.
        assert!(
            d.samples[1] <= 1.0 && d.samples[1] > 0.99,
            "{bits}-bit maximum"
        );
        assert_eq!(d.samples[2], 0.0, "{bits}-bit zero");
    }
}

#[test]
fn wav_float32_decodes_exactly_and_clamps_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f32.wav");
    let mut src = sine(22_050, 0.1, 440.0, 0.7);
    src.extend([1.5, -3.0]);
    write_wav_f32(&path, 22_050, 1, &src);
    let d = audio::decode_file(&path).unwrap();
    assert_eq!(d.sample_rate, 22_050);
    let n = src.len();
    assert_eq!(&d.samples[..n - 2], &src[..n - 2]);
    assert_eq!(&d.samples[n - 2..], &[1.0, -1.0]);
}

#[test]
fn wav_float64_falls_back_to_symphonia() {
    // hound does not read 64-bit float; symphonia does.
    let dir = tempfile::tempdir().unwrap();
    let src_path = dir.path().join("src.wav");
    let f64_path = dir.path().join("f64.wav");
    let src = sine(16_000, 0.2, 440.0, 0.5);
    write_wav_f32(&src_path, 16_000, 1, &src);
    sox(&[
        path_str(&src_path),
        "-e",
        "floating-point",
        "-b",
        "64",
        path_str(&f64_path),
    ]);
    let d = audio::decode_file(&f64_path).unwrap();
    assert_eq!(
        (d.sample_rate, d.channels, d.samples.len()),
        (16_000, 1, src.len())
    );
    for (got, want) in d.samples.iter().zip(&src) {
        assert!((got - want).abs() < 1e-6);
    }
}

#[test]
fn wav_extensible_header_is_read() {
    // hound writes WAVE_FORMAT_EXTENSIBLE (tag 0xFFFE) for >16 bits or >2 channels; check the
    // fixture really has it so this test keeps meaning what its name says.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ext.wav");
    write_wav_int(
        &path,
        48_000,
        2,
        24,
        &interleave(&[vec![0.25; 480], vec![-0.25; 480]]),
    );
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        &bytes[20..22],
        &[0xFE, 0xFF],
        "fixture is not WAVE_FORMAT_EXTENSIBLE"
    );
    let d = audio::decode_file(&path).unwrap();
    assert_eq!((d.sample_rate, d.channels, d.frames()), (48_000, 2, 480));
    assert!((d.samples[0] - 0.25).abs() < 1e-6 && (d.samples[1] + 0.25).abs() < 1e-6);
}

#[test]
fn wav_common_rates_report_rate_and_length() {
    let dir = tempfile::tempdir().unwrap();
    for rate in [8_000u32, 22_050, 44_100, 48_000] {
        let path = dir.path().join(format!("r{rate}.wav"));
        write_wav_int(&path, rate, 1, 16, &sine(rate, 0.5, 440.0, 0.5));
        let d = audio::decode_file(&path).unwrap();
        assert_eq!(d.sample_rate, rate);
        assert_eq!(d.frames(), rate as usize / 2);
        assert!((d.duration_secs() - 0.5).abs() < 1e-9);
        // load_mono at 16 kHz keeps duration and pitch whatever the source rate.
        let mono = audio::load_mono(&path, 16_000).unwrap();
        assert_eq!(mono.len(), 8_000, "{rate} Hz → 16 kHz");
        assert_440_dominates(&mono, 16_000);
    }
}

#[test]
fn channel_layouts_interleave_and_downmix() {
    let dir = tempfile::tempdir().unwrap();
    // A distinct constant per channel shows both the interleaving order and the average.
    for channels in [1u16, 2, 6] {
        let levels: Vec<f32> = (0..channels).map(|c| 0.1 * (c as f32 + 1.0)).collect();
        let per_channel: Vec<Vec<f32>> = levels.iter().map(|&l| vec![l; 1_000]).collect();
        let path = dir.path().join(format!("ch{channels}.wav"));
        write_wav_int(&path, 16_000, channels, 16, &interleave(&per_channel));
        let d = audio::decode_file(&path).unwrap();
        assert_eq!((d.channels, d.frames()), (channels, 1_000));
        for (c, &l) in levels.iter().enumerate() {
            assert!(
                (d.samples[c] - l).abs() < 1e-4,
                "{channels} ch, channel {c}"
            );
        }
        let mean = levels.iter().sum::<f32>() / channels as f32;
        let mono = audio::load_mono(&path, 16_000).unwrap();
        assert_eq!(mono.len(), 1_000);
        assert!(
            mono.iter().all(|s| (s - mean).abs() < 1e-4),
            "{channels} ch downmix"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// WAV samples read in bulk: bit for bit what hound's own reader gives

/// What hound's own sample iterator gives for `path`, converted as hark converts: integers
/// scaled by 2^-(bits-1), floats clamped to [-1, 1] and non-finite ones 0. A file cut short
/// gives the samples before the cut, whole frames only.
fn hound_samples(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    let mut out: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .map_while(Result::ok)
            .map(|x| {
                if x.is_finite() {
                    x.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            let samples = reader.samples::<i32>().map_while(Result::ok);
            samples.map(|s| s as f32 * scale).collect()
        }
    };
    out.truncate(out.len() - out.len() % usize::from(spec.channels));
    out
}

/// Bit patterns, so that a mismatch is exact and -0.0 is not 0.0.
fn bit_patterns(samples: &[f32]) -> Vec<u32> {
    samples.iter().map(|x| x.to_bits()).collect()
}

/// `n` samples over the whole range of `bits`-bit integers: both extremes, 0, ±1, then noise.
fn full_range_ints(bits: u16, n: usize, rng: &mut Rng) -> Vec<i32> {
    let (min, max) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
    let span = (max - min + 1) as u64;
    let noise = (0..).map(|_| (min + (rng.next() % span) as i64) as i32);
    let edges = [min as i32, max as i32, 0, 1, -1];
    edges.into_iter().chain(noise).take(n).collect()
}

/// `n` float samples: in and out of range, signed zeros, subnormals, infinities and NaN.
fn awkward_floats(n: usize, rng: &mut Rng) -> Vec<f32> {
    let edges = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        1.5,
        -3.0,
        f32::MIN_POSITIVE / 2.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
    ];
    let noise = (0..).map(|_| f32::from_bits(rng.next() as u32) % 2.0);
    edges.into_iter().chain(noise).take(n).collect()
}

/// Write `samples` with hound in containers of `bytes` bytes (hound picks
/// WAVE_FORMAT_EXTENSIBLE for more than 16 bits or 2 channels).
fn write_wav_samples<S: hound::Sample + Copy>(
    path: &Path,
    spec: hound::WavSpec,
    bytes: u16,
    samples: &[S],
) {
    let spec_ex = hound::WavSpecEx {
        spec,
        bytes_per_sample: bytes,
    };
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = hound::WavWriter::new_with_spec_ex(file, spec_ex).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// One WAV of each layout, each several decoding blocks long and not a whole number of them:
/// 16-bit plain and extensible, 24-bit plain and extensible, 32-bit integer, 32-bit float plain
/// (with a `fact` chunk) and extensible, and the layouts hound reads itself (8-bit, 24 bits in
/// 4 bytes). The 16-bit mono one has a chunk after its data, which is not audio. Returns each
/// path with its container width and channel count.
fn wav_layouts(dir: &Path) -> Vec<(PathBuf, usize, usize)> {
    let mut rng = Rng(0x5eed);
    let spec = |channels, bits, sample_format| hound::WavSpec {
        channels,
        sample_rate: 16_000,
        bits_per_sample: bits,
        sample_format,
    };
    let int = hound::SampleFormat::Int;
    let frames = 41_234;
    let mut made = Vec::new();
    for (name, channels, bits, bytes) in [
        ("s16_mono.wav", 1, 16, 2),
        ("s16_3ch.wav", 3, 16, 2),
        ("s24_stereo.wav", 2, 24, 3),
        ("s24_in_4.wav", 2, 24, 4),
        ("s32_mono.wav", 1, 32, 4),
    ] {
        let path = dir.join(name);
        let n = frames * usize::from(channels);
        let samples = full_range_ints(bits, n, &mut rng);
        write_wav_samples(&path, spec(channels, bits, int), bytes, &samples);
        made.push((path, usize::from(bytes), usize::from(channels)));
    }
    let mut trailed = std::fs::OpenOptions::new()
        .append(true)
        .open(&made[0].0)
        .unwrap();
    std::io::Write::write_all(&mut trailed, b"LIST\x0c\0\0\0INFOISFT\0\0\0\0").unwrap();
    let u8_path = dir.join("u8.wav");
    let samples: Vec<i8> = full_range_ints(8, frames, &mut rng)
        .into_iter()
        .map(|s| s as i8)
        .collect();
    write_wav_samples(&u8_path, spec(1, 8, int), 1, &samples);
    made.push((u8_path, 1, 1));
    let f32_path = dir.join("f32_stereo.wav");
    let samples = awkward_floats(frames * 2, &mut rng);
    let float = hound::SampleFormat::Float;
    write_wav_samples(&f32_path, spec(2, 32, float), 4, &samples);
    // sox writes plain WAVE_FORMAT_PCM with -t wavpcm, and plain IEEE float by default.
    let plain_s24 = dir.join("s24_plain.wav");
    let s24 = path_str(&made[2].0);
    sox(&[s24, "-t", "wavpcm", path_str(&plain_s24)]);
    let plain_f32 = dir.join("f32_plain.wav");
    sox(&[path_str(&f32_path), path_str(&plain_f32)]);
    made.extend([(f32_path, 4, 2), (plain_s24, 3, 2), (plain_f32, 4, 2)]);
    made
}

#[test]
fn wav_layouts_decode_bit_for_bit_as_hounds_own_reader_gives() {
    let dir = tempfile::tempdir().unwrap();
    let layouts = wav_layouts(dir.path());
    let tags: Vec<[u8; 2]> = layouts
        .iter()
        .map(|(path, ..)| std::fs::read(path).unwrap()[20..22].try_into().unwrap())
        .collect();
    // The fixtures cover what they claim: plain PCM (1), IEEE float (3) and extensible headers.
    for tag in [[1, 0], [3, 0], [0xFE, 0xFF]] {
        assert!(tags.contains(&tag), "no fixture with format tag {tag:?}");
    }
    for (path, ..) in &layouts {
        let want = hound_samples(path);
        assert!(want.len() > 40_000, "{}", path.display());
        let got = audio::decode_file(path).unwrap().samples;
        assert!(
            bit_patterns(&got) == bit_patterns(&want),
            "{} differs from hound's samples",
            path.display()
        );
        assert_streams_like_decode_file(path);
    }
}

/// The pinned choice for cut-short WAVs (see `truncated_wav_data_decodes_what_is_present`),
/// checked for every layout and wherever the cut falls: inside a sample, on a frame boundary,
/// on the decoder's 16_384-sample block boundary, and inside the very first sample.
#[test]
fn wav_layouts_cut_short_decode_bit_for_bit_what_hound_reads_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    for (path, width, channels) in wav_layouts(dir.path()) {
        let bytes = std::fs::read(&path).unwrap();
        let data_len = hound::WavReader::open(&path).unwrap().len() * width as u32;
        let data_header = [*b"data", data_len.to_le_bytes()].concat();
        let data_start = 8 + bytes.windows(8).position(|w| w == data_header).unwrap();
        let frame = width * channels;
        for keep in [
            frame * 1_000 + width + 1,
            frame * 777,
            16_384 * width,
            16_384 * width + 1,
            width - 1,
        ] {
            let cut = dir.path().join("cut.wav");
            std::fs::write(&cut, &bytes[..data_start + keep]).unwrap();
            let what = format!("{} cut {keep} bytes into its data", path.display());
            let want = hound_samples(&cut);
            if want.is_empty() {
                let err = audio::decode_file(&cut).unwrap_err();
                assert!(
                    matches!(err, AudioError::NoSamples { .. }),
                    "{what}: {err:?}"
                );
                continue;
            }
            let got = audio::decode_file(&cut).unwrap().samples;
            assert_eq!(got.len(), keep / frame * channels, "{what}");
            assert!(bit_patterns(&got) == bit_patterns(&want), "{what}");
            assert_eq!(
                stream_mono(&cut, 1_000),
                audio::downmix(&got, channels as u16)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// other containers through symphonia

#[test]
fn flac_decodes_losslessly() {
    let dir = tempfile::tempdir().unwrap();
    let src = interleave(&[
        sine(44_100, 0.5, 440.0, 0.5),
        sine(44_100, 0.5, 440.0, -0.25),
    ]);
    for bits in ["16", "24"] {
        let wav = dir.path().join(format!("src{bits}.wav"));
        let flac = dir.path().join(format!("s{bits}.flac"));
        write_wav_int(&wav, 44_100, 2, bits.parse().unwrap(), &src);
        sox(&[path_str(&wav), path_str(&flac)]);
        let from_wav = audio::decode_file(&wav).unwrap();
        let from_flac = audio::decode_file(&flac).unwrap();
        assert_eq!((from_flac.sample_rate, from_flac.channels), (44_100, 2));
        assert_eq!(
            from_flac.samples, from_wav.samples,
            "{bits}-bit FLAC is not lossless"
        );
    }
}

#[test]
fn ogg_vorbis_keeps_rate_length_and_pitch() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("src.wav");
    let ogg = dir.path().join("s.ogg");
    write_wav_int(
        &wav,
        48_000,
        2,
        16,
        &interleave(&[sine(48_000, 1.0, 440.0, 0.5), sine(48_000, 1.0, 440.0, 0.5)]),
    );
    sox(&[path_str(&wav), path_str(&ogg)]);
    let d = audio::decode_file(&ogg).unwrap();
    assert_eq!((d.sample_rate, d.channels), (48_000, 2));
    assert!(
        d.frames().abs_diff(48_000) < 1_000,
        "frames: {}",
        d.frames()
    );
    let mono = audio::downmix(&d.samples, d.channels);
    assert_440_dominates(&mono[4_800..43_200], 48_000);
    assert!((peak(&mono) - 0.5).abs() < 0.05, "peak {}", peak(&mono));
}

/// Encode `wav` to MP3 with lame (listed in scripts/test-tools.txt; its absence fails the test).
fn encode_mp3(wav: &Path, mp3: &Path) {
    crate::common::tools::require("lame");
    let mut lame = Command::new("lame");
    lame.args(["--quiet", "-b", "128", path_str(wav), path_str(mp3)]);
    crate::common::tools::run(lame);
}

#[test]
fn mp3_decodes_with_gapless_length() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("src.wav");
    let mp3 = dir.path().join("s.mp3");
    write_wav_int(&wav, 44_100, 1, 16, &sine(44_100, 1.0, 440.0, 0.5));
    encode_mp3(&wav, &mp3);
    let d = audio::decode_file(&mp3).unwrap();
    assert_eq!((d.sample_rate, d.channels), (44_100, 1));
    // Gapless trimming should leave the length within one MP3 frame of the source.
    assert!(
        d.frames().abs_diff(44_100) <= 1_152,
        "frames: {}",
        d.frames()
    );
    assert_440_dominates(&d.samples[4_410..39_690], 44_100);
}

#[test]
fn content_decides_format_not_extension() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("src.wav");
    write_wav_int(&wav, 16_000, 1, 16, &sine(16_000, 0.2, 440.0, 0.5));
    // FLAC bytes under a .wav name, WAV bytes under a .mp3 name.
    let flac_as_wav = dir.path().join("really_flac.wav");
    sox(&[path_str(&wav), "-t", "flac", path_str(&flac_as_wav)]);
    let wav_as_mp3 = dir.path().join("really_wav.mp3");
    std::fs::copy(&wav, &wav_as_mp3).unwrap();
    let reference = audio::decode_file(&wav).unwrap();
    assert_eq!(audio::decode_file(&flac_as_wav).unwrap(), reference);
    assert_eq!(audio::decode_file(&wav_as_mp3).unwrap(), reference);
}

// ---------------------------------------------------------------------------------------------
// streaming: AudioReader

/// Stereo, interleaved: a sine of `hz[0]` at `amp[0]` on the left, `hz[1]` at `amp[1]` on the
/// right, so a downmix that took one channel or swapped them would show.
fn two_tones(rate: u32, secs: f32, hz: [f32; 2], amp: [f32; 2]) -> Vec<f32> {
    interleave(&[
        sine(rate, secs, hz[0], amp[0]),
        sine(rate, secs, hz[1], amp[1]),
    ])
}

#[test]
fn reader_streams_a_wav_exactly_like_decode_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mono16.wav");
    // Long enough for many of hound's blocks, and not a whole number of them.
    write_wav_int(&path, 44_100, 1, 16, &sine(44_100, 1.37, 440.0, 0.5));
    assert_streams_like_decode_file(&path);
}

#[test]
fn reader_streams_a_stereo_24_bit_wav_exactly_like_decode_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stereo24.wav");
    let src = two_tones(48_000, 1.1, [440.0, 1_000.0], [0.5, -0.3]);
    write_wav_int(&path, 48_000, 2, 24, &src);
    assert_streams_like_decode_file(&path);
    let mono = stream_mono(&path, 480);
    assert_eq!(mono.len(), src.len() / 2);
    // Averaged, not one channel: each sine is there at half its amplitude (power a²/4).
    for (freq, amp) in [(440.0, 0.25f32), (1_000.0, 0.15)] {
        let power = goertzel(&mono, 48_000, freq);
        let want = amp * amp / 4.0;
        assert!(
            (power - want).abs() < 0.05 * want,
            "{freq} Hz: {power} vs {want}"
        );
    }
}

#[test]
fn reader_streams_flac_and_mp3_exactly_like_decode_file() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("src.wav");
    let src = two_tones(44_100, 1.5, [440.0, 660.0], [0.5, 0.25]);
    write_wav_int(&wav, 44_100, 2, 16, &src);
    let flac = dir.path().join("s.flac");
    sox(&[path_str(&wav), path_str(&flac)]);
    assert_streams_like_decode_file(&flac);
    // FLAC is lossless, so the stream also matches the WAV it was made from.
    assert_eq!(
        stream_mono(&flac, 441),
        audio::downmix(&audio::decode_file(&wav).unwrap().samples, 2)
    );
    let mp3 = dir.path().join("s.mp3");
    encode_mp3(&wav, &mp3);
    assert_streams_like_decode_file(&mp3);
}

#[test]
fn reader_streams_a_wav_through_the_symphonia_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let f32_path = dir.path().join("f32.wav");
    let f64_path = dir.path().join("f64.wav");
    let src = two_tones(16_000, 0.8, [440.0, 440.0], [0.5, 0.1]);
    write_wav_f32(&f32_path, 16_000, 2, &src);
    // hound does not read 64-bit float.
    let (from, to) = (path_str(&f32_path), path_str(&f64_path));
    sox(&[from, "-e", "floating-point", "-b", "64", to]);
    assert_streams_like_decode_file(&f64_path);
}

#[test]
fn reader_streams_what_a_truncated_wav_holds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.wav");
    let src = two_tones(16_000, 2.0, [440.0, 660.0], [0.5, 0.25]);
    write_wav_int(&path, 16_000, 2, 16, &src);
    let whole = audio::decode_file(&path).unwrap();
    // Cut mid-frame, several of hound's blocks in: 20_000 whole frames plus 3 stray bytes.
    let header = std::fs::metadata(&path).unwrap().len() - src.len() as u64 * 2;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(header + 20_000 * 4 + 3).unwrap();
    let mono = stream_mono(&path, 160);
    assert_eq!(mono, audio::downmix(&whole.samples[..40_000], 2));
    assert_streams_like_decode_file(&path);
}

#[test]
fn reader_open_fails_like_decode_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.wav");
    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.wav");
    std::fs::write(&text, "milk\neggs\n").unwrap();
    let silent = dir.path().join("silent.wav");
    write_wav_int(&silent, 16_000, 1, 16, &[]);
    let flac_silent = dir.path().join("silent.flac");
    let out = path_str(&flac_silent);
    sox(&["-n", "-r", "16000", "-c", "1", out, "trim", "0", "0"]);
    for path in [&missing, &empty, &text, &silent, &flac_silent] {
        let streamed = AudioReader::open(path).unwrap_err();
        let whole = audio::decode_file(path).unwrap_err();
        assert_eq!(
            streamed.to_string(),
            whole.to_string(),
            "{}",
            path.display()
        );
        assert_names_path(&streamed, path);
    }
    assert!(matches!(
        AudioReader::open(&silent).unwrap_err(),
        AudioError::NoSamples { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// resampling

#[test]
fn resampled_sine_keeps_frequency_and_amplitude() {
    let src = sine(44_100, 2.0, 440.0, 0.5);
    let out = audio::resample(&src, 44_100, 16_000).unwrap();
    assert_eq!(out.len(), 32_000);
    // Skip the edges, where the filter sees the signal switch on and off.
    let mid = &out[1_600..30_400];
    assert_440_dominates(mid, 16_000);
    let amp = rms(mid) * std::f32::consts::SQRT_2;
    assert!((amp - 0.5).abs() < 0.01, "amplitude {amp}, want 0.5 ± 2%");
    assert!((peak(mid) - 0.5).abs() < 0.01, "peak {}", peak(mid));
    // Zero crossings confirm the pitch independently of the Goertzel probes: 2 per cycle.
    let crossings = mid
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    let expected = 2.0 * 440.0 * mid.len() as f32 / 16_000.0;
    assert!(
        (crossings as f32 - expected).abs() <= 2.0,
        "{crossings} crossings, expected {expected}"
    );
}

#[test]
fn resampling_keeps_an_impulse_at_its_time() {
    for (from, to) in [
        (44_100u32, 16_000u32),
        (48_000, 16_000),
        (22_050, 16_000),
        (8_000, 16_000),
        (192_000, 16_000),
        (16_000, 44_100),
    ] {
        let mut x = vec![0.0f32; from as usize];
        x[from as usize / 2] = 1.0;
        let y = audio::resample(&x, from, to).unwrap();
        assert_eq!(y.len(), to as usize, "{from}→{to} length");
        let at = y
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
        let t = at as f64 / f64::from(to);
        assert!(
            (t - 0.5).abs() <= 0.001,
            "{from}→{to}: impulse at {t:.5} s, want 0.5 s ± 1 ms"
        );
    }
}

#[test]
fn resample_output_length_is_rounded_ratio() {
    for (len, from, to, want) in [
        (1_000usize, 48_000u32, 16_000u32, 333usize),
        (1_001, 48_000, 16_000, 334),
        (44_100, 44_100, 16_000, 16_000),
        (12_345, 22_050, 16_000, 8_958),
        (777, 8_000, 16_000, 1_554),
    ] {
        let y = audio::resample(&vec![0.1; len], from, to).unwrap();
        assert_eq!(y.len(), want, "{len} samples {from}→{to}");
    }
}

#[test]
fn stream_resampler_matches_offline_whatever_the_chunking() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (from, to) in [
        (48_000u32, 16_000u32),
        (44_100, 16_000),
        (8_000, 16_000),
        (192_000, 16_000),
    ] {
        // A chirp-like mix so misalignment by even one sample would show.
        let n = from as usize * 2;
        let input: Vec<f32> = (0..n)
            .map(|i| {
                let t = i as f32 / from as f32;
                0.3 * (2.0 * PI * 300.0 * t).sin()
                    + 0.2 * (2.0 * PI * (1_000.0 + 500.0 * t) * t).sin()
            })
            .collect();
        let offline = audio::resample(&input, from, to).unwrap();

        let mut stream = StreamResampler::new(from, to).unwrap();
        let delay = stream.delay();
        let ratio = f64::from(to) / f64::from(from);
        let mut out = Vec::new();
        let mut pushed = 0usize;
        let mut max_lag = 0.0f64;
        while pushed < n {
            let len = (1 + rng.below(3_000)).min(n - pushed);
            stream.process(&input[pushed..pushed + len], &mut out);
            pushed += len;
            // Output never runs ahead of the input, and lags by at most one internal block.
            let ideal = pushed as f64 * ratio;
            assert!(
                out.len() as f64 <= ideal + 1.0,
                "{from}→{to}: output ahead of input"
            );
            max_lag = max_lag.max(ideal - out.len() as f64);
        }
        assert!(
            max_lag < 0.1 * f64::from(to),
            "{from}→{to}: output lags by {max_lag} samples"
        );

        let usable = out.len() - delay;
        assert!(
            usable > offline.len() / 2,
            "{from}→{to}: too little streamed output to compare"
        );
        for k in 0..usable {
            let (s, o) = (out[k + delay], offline[k]);
            assert!(
                (s - o).abs() < 1e-4,
                "{from}→{to} sample {k}: stream {s} vs offline {o}"
            );
        }
    }
}

#[test]
fn stream_resampler_reports_delay_in_output_samples() {
    // An impulse through the stream must come out `delay` samples after its ideal position.
    let (from, to) = (48_000u32, 16_000u32);
    let mut stream = StreamResampler::new(from, to).unwrap();
    let mut x = vec![0.0f32; from as usize];
    x[24_000] = 1.0;
    let mut out = Vec::new();
    stream.process(&x, &mut out);
    let at = out
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap()
        .0;
    let ideal = 8_000 + stream.delay();
    assert!(at.abs_diff(ideal) <= 1, "impulse at {at}, expected {ideal}");
    assert!(stream.delay() > 0);
}

// ---------------------------------------------------------------------------------------------
// bad input

#[test]
fn missing_file_is_not_found_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.wav");
    let err = audio::decode_file(&path).unwrap_err();
    assert!(matches!(err, AudioError::NotFound { .. }), "{err:?}");
    assert_names_path(&err, &path);
}

#[test]
fn directory_is_an_io_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let err = audio::decode_file(dir.path()).unwrap_err();
    assert!(matches!(err, AudioError::Io { .. }), "{err:?}");
    assert_names_path(&err, dir.path());
}

#[test]
fn empty_file_is_reported_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.wav");
    std::fs::write(&path, b"").unwrap();
    let err = audio::decode_file(&path).unwrap_err();
    assert!(matches!(err, AudioError::Empty { .. }), "{err:?}");
    assert_names_path(&err, &path);
}

#[test]
fn text_renamed_to_wav_is_not_audio() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["notes.wav", "notes.mp3", "notes.flac"] {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            "This is a shopping list, not a recording.\nmilk\neggs\n",
        )
        .unwrap();
        let err = audio::decode_file(&path).unwrap_err();
        assert!(
            matches!(err, AudioError::NotAudio { .. }),
            "{name}: {err:?}"
        );
        assert_names_path(&err, &path);
    }
}

#[test]
fn random_bytes_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(42);
    let noise: Vec<u8> = (0..64 * 1024).map(|_| rng.next() as u8).collect();
    let path = dir.path().join("noise.wav");
    std::fs::write(&path, &noise).unwrap();
    let err = audio::decode_file(&path).unwrap_err();
    assert!(matches!(err, AudioError::NotAudio { .. }), "{err:?}");
    assert_names_path(&err, &path);

    // Noise that happens to begin with an MPEG frame sync gets past the sniffing; it must
    // still fail rather than come back as garbage audio.
    let mut synced = noise.clone();
    synced[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
    let path = dir.path().join("noise.mp3");
    std::fs::write(&path, &synced).unwrap();
    let err = audio::decode_file(&path).unwrap_err();
    assert!(
        matches!(
            err,
            AudioError::Corrupt { .. } | AudioError::NoSamples { .. }
        ),
        "{err:?}"
    );
    assert_names_path(&err, &path);
}

/// Choice pinned here: a WAV whose data chunk is shorter than its header declares decodes the
/// whole frames that are present (with a logged warning) instead of failing, because a recording
/// cut off by a crash or a full disk is still worth classifying.
#[test]
fn truncated_wav_data_decodes_what_is_present() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.wav");
    let src = interleave(&[
        sine(16_000, 0.25, 440.0, 0.5),
        sine(16_000, 0.25, 440.0, 0.25),
    ]);
    write_wav_int(&full, 16_000, 2, 16, &src);
    let bytes = std::fs::read(&full).unwrap();
    let header = bytes.len() - src.len() * 2;
    // Cut mid-frame and mid-sample: 250 whole stereo frames plus 3 stray bytes.
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &bytes[..header + 250 * 4 + 3]).unwrap();
    let d = audio::decode_file(&cut).unwrap();
    assert_eq!((d.channels, d.frames()), (2, 250));
    let whole = audio::decode_file(&full).unwrap();
    assert_eq!(d.samples[..], whole.samples[..500]);
}

#[test]
fn wav_cut_inside_its_header_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.wav");
    write_wav_int(&full, 16_000, 1, 16, &[0.0; 100]);
    let path = dir.path().join("head.wav");
    std::fs::write(&path, &std::fs::read(&full).unwrap()[..20]).unwrap();
    let err = audio::decode_file(&path).unwrap_err();
    assert!(matches!(err, AudioError::Corrupt { .. }), "{err:?}");
    assert_names_path(&err, &path);
}

#[test]
fn wav_with_no_samples_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.wav");
    write_wav_int(&path, 16_000, 1, 16, &[]);
    let err = audio::decode_file(&path).unwrap_err();
    assert!(matches!(err, AudioError::NoSamples { .. }), "{err:?}");
    assert_names_path(&err, &path);
}

#[test]
fn wav_with_impossible_rate_or_channels_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.wav");
    write_wav_int(&good, 16_000, 1, 16, &[0.0; 100]);
    let bytes = std::fs::read(&good).unwrap();
    // PCMWAVEFORMAT: channels at 22..24, rate at 24..28, byte rate at 28..32.
    let mut zero_rate = bytes.clone();
    zero_rate[24..32].fill(0);
    let mut zero_channels = bytes.clone();
    zero_channels[22..24].fill(0);
    let mut huge_rate = bytes.clone();
    huge_rate[24..28].copy_from_slice(&10_000_000u32.to_le_bytes());
    huge_rate[28..32].copy_from_slice(&20_000_000u32.to_le_bytes());
    for (name, data) in [
        ("zero_rate.wav", zero_rate),
        ("zero_ch.wav", zero_channels),
        ("huge_rate.wav", huge_rate),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        let err = audio::decode_file(&path).unwrap_err();
        assert!(
            matches!(
                err,
                AudioError::InvalidSpec { .. } | AudioError::BadHeader { .. }
            ),
            "{name}: {err:?}"
        );
        assert_names_path(&err, &path);
    }
}

#[test]
fn load_mono_rejects_bad_target_rate_before_decoding() {
    let err = audio::load_mono(Path::new("/definitely/not/here.wav"), 0).unwrap_err();
    assert!(
        matches!(err, AudioError::RateOutOfRange { rate: 0 }),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// a real recording

#[test]
fn real_recording_loads_at_16k() {
    let Some(path) = shared_or_skip("data/recordings/door_knock_Door5.wav") else {
        return;
    };
    let d = audio::decode_file(&path).unwrap();
    assert_eq!((d.sample_rate, d.channels), (48_000, 2));
    let mono = audio::load_mono(&path, 16_000).unwrap();
    let secs = mono.len() as f64 / 16_000.0;
    assert!((secs - 3.84).abs() < 0.01, "{secs} s");
    assert!(peak(&mono) > 0.01, "a door knock should not be silence");
    assert!(peak(&mono) <= 1.0);
}
